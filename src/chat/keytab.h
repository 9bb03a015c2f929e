/* Internal: a bounded table of short string keys, each with two numbers and
 * an expiry — what the chat's coalescing (one typing push per user and
 * conversation per interval, the last read receipt pushed) and its
 * connection rate limits (a token bucket per user and per address) keep.
 *
 * Bounded on purpose: a client chooses the keys (any direct conversation,
 * any address of a /64), so the table never holds more than `max` entries.
 * Entries past their expiry are reclaimed when the table fills; when it is
 * still full, dx__keytab_get returns NULL and the caller picks its failure
 * (fail closed for typing, fail open for connections). No timers: expiry is
 * compared with the `now` the caller passes. Single-threaded. */
#ifndef DX_CHAT_KEYTAB_H
#define DX_CHAT_KEYTAB_H

#include <stddef.h>
#include <stdint.h>

#define DX_KEYTAB_KEY_MAX 104 /* uid (32) + NUL + conversation id (at most 67) */

typedef struct dx__keyent {
    int64_t until; /* reclaimable when now >= until */
    int64_t a, b;  /* the caller's */
    uint8_t len;   /* 0: free */
    char key[DX_KEYTAB_KEY_MAX];
} dx__keyent;

typedef struct dx__keytab {
    dx__keyent *slots;
    size_t cap, used, max; /* cap: a power of two, grown up to the one above max */
    int64_t full_until;    /* after a reclaim that freed too little: no retry before */
} dx__keytab;

/* An empty table of at most `max` live entries (nothing allocated yet). */
void dx__keytab_init(dx__keytab *t, size_t max);
void dx__keytab_free(dx__keytab *t);
/* Forgets every entry, keeping the memory. */
void dx__keytab_clear(dx__keytab *t);

/* The entry of `key` (`len` bytes, 1..DX_KEYTAB_KEY_MAX). An expired one is
 * returned as if new. With `create`, a missing key gets a new entry (until,
 * a, b all 0) and *fresh = 1; NULL when the key is too long, the table is
 * full of live entries, or out of memory. Without `create`, NULL when
 * missing or expired. The pointer is valid until the next call. */
dx__keyent *dx__keytab_get(dx__keytab *t, const char *key, size_t len, int64_t now, int create,
                           int *fresh);

/* A token bucket in an entry: `burst` tokens, one more every `every_ms`.
 * Returns 0 and takes a token when one is there, else how many ms until
 * one will be (> 0). Uses a (tokens, scaled) and b (last refill ms) and
 * sets until to when the bucket will be full again. */
int64_t dx__keytab_take(dx__keyent *e, int fresh, int64_t now, uint32_t burst, int64_t every_ms);

#endif

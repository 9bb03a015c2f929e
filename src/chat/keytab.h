/* Internal: a bounded table of short string keys, each with two numbers and
 * an expiry, and the chat's one token bucket — what its per-user rates
 * (limits.h), its coalescing (one typing push per user and conversation per
 * interval, the last read receipt pushed) and its connection rate limits (a
 * bucket per user and per address) keep.
 *
 * Bounded on purpose: a client chooses the keys (any direct conversation,
 * any address of a /64), so the table never holds more than `max` entries.
 * Entries past their expiry are reclaimed when the table fills; when it is
 * still full, dx__keytab_get returns NULL and the caller picks its failure
 * (fail closed for typing and for the per-user rates, fail open for
 * connections). No timers: expiry is compared with the `now` the caller
 * passes. Single-threaded. */
#ifndef DX_CHAT_KEYTAB_H
#define DX_CHAT_KEYTAB_H

#include <stddef.h>
#include <stdint.h>

#define DX_KEYTAB_KEY_MAX 104 /* uid (32) + NUL + conversation id (at most 67) */
/* After a reclaim that left the table full of live entries, dx__keytab_get
 * does not try again for this long (in the unit of `now`: ms). */
#define DX_KEYTAB_RETRY 1000

typedef struct dx__keyent {
    int64_t until; /* reclaimable when now >= until */
    int64_t a, b;  /* the caller's (dx__keytab_take: a) */
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

/* The token bucket of an entry, as GCRA keeps it: one number, the time at
 * which the bucket is full again. Full, it holds `burst` tokens (at least
 * one); one more comes every `every_us` µs (at least 1). Takes `cost`
 * tokens and returns 0, or, when fewer are there, how many ms until they
 * will be (> 0; never, when cost > burst) and changes nothing. `now` is in
 * ms; a clock that goes back costs at most one full refill. Keeps the time
 * in a (µs) and sets until to it (in ms, rounded up): an entry that has
 * expired is a full bucket, so a new or reclaimed entry is one too. */
int64_t dx__keytab_take(dx__keyent *e, int64_t now, uint32_t cost, uint32_t burst,
                        int64_t every_us);

#endif

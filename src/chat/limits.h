/* Internal: the chat's per-user token buckets (dx_chat_limits in
 * include/duplex/chat.h). Sans-I/O: the caller passes the time.
 *
 * Each bucket is one entry of a keytab (keytab.h), keyed by kind and uid,
 * which keeps the time at which it will be full again (dx__keytab_take,
 * GCRA): a request of cost c pushes it c / rate later, and is refused when
 * that would put it more than burst / rate ahead of now. A bucket whose
 * time has passed is full, which is the same as no entry at all — so the
 * entry expires then, and the table holds only the buckets used within
 * their refill time (burst / rate: 256 s for bytes, 5 s at most for the
 * others with the defaults), at most DX__CHAT_LIMITER_MAX of them; when it
 * is full of live ones, users not in it are refused for a second (see
 * limits.c for why). Dropping only full buckets means that closing every
 * device and reconnecting gives a user nothing back. */
#ifndef DX_CHAT_LIMITS_H
#define DX_CHAT_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#include <duplex/chat.h>

enum dx__chat_kind {
    DX__CHAT_SEND,
    DX__CHAT_BYTES,
    DX__CHAT_JOIN,
    DX__CHAT_READ,
    DX__CHAT_TYPING,
    DX__CHAT_PRESENCE,
    DX__CHAT_FETCH,
    DX__CHAT_KINDS,
    DX__CHAT_NONE = -1
};

/* The defaults (chat.h says the same). */
#define DX__CHAT_MAX_ROOMS 1000
#define DX__CHAT_SYNC_PAGE 200

/* The name of a kind as errors show it ("send", "bytes", ...). */
const char *dx__chat_kind_name(int kind);

/* Copies `in` (NULL: all defaults) to `out` with the defaults in place of
 * the zeros: a rate of 0 takes the kind's default rate and burst, a burst
 * of 0 the default burst but at least one second of rate; the bytes burst
 * is at least 4000 (one message); rates over 1,000,000 a second count as
 * unlimited. */
void dx__chat_limits_resolve(const dx_chat_limits *in, dx_chat_limits *out);

/* The most buckets held (one per user and kind in use): 136 bytes each,
 * and twice that at most in slots (17 MiB), allocated as they are needed. */
#define DX__CHAT_LIMITER_MAX 65536

typedef struct dx__chat_limiter dx__chat_limiter;

/* An empty table with the limits `l` (resolved). NULL: out of memory. */
dx__chat_limiter *dx__chat_limiter_new(const dx_chat_limits *l);
void dx__chat_limiter_free(dx__chat_limiter *lim);

/* Takes `cost` from `uid`'s bucket of `kind`, and `cost2` from its bucket
 * of `kind2` (DX__CHAT_NONE for none): both or neither. `now_ms` is any
 * clock in ms; a clock that goes back never locks a user out for more than
 * one full refill. Returns 0 when taken, else how many ms to wait before
 * the same request would pass (> 0), with *which (may be NULL) set to the
 * kind that refused — also when the table is full (then DX_KEYTAB_RETRY
 * ms, the first kind limited); or DX_ENOMEM. */
int64_t dx__chat_limiter_take(dx__chat_limiter *lim, const char *uid, int64_t now_ms, int kind,
                              uint32_t cost, int kind2, uint32_t cost2, int *which);

/* Entries held, expired ones until the next reclaim (for tests). */
size_t dx__chat_limiter_size(const dx__chat_limiter *lim);

#endif

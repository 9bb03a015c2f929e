/* Internal: exponential backoff with jitter as pure functions — the one
 * backoff of the library, under the client's reconnect policy
 * (client/reconnect.h) and the Redis connections (io/redis.c). Neither
 * reads a clock nor draws a random number: the caller passes 64 random
 * bits, so the tests can check every bound. */
#ifndef DX_CORE_BACKOFF_H
#define DX_CORE_BACKOFF_H

#include <duplex/common.h>

typedef struct dx__backoff {
    uint32_t base_ms; /* bound of the first reconnect's delay */
    uint32_t max_ms;  /* bounds never grow past this (the cap) */
    double factor;    /* each attempt multiplies the bound by this (>= 1) */
    double jitter;    /* 0..1: the share of the bound drawn at random */
} dx__backoff;

/* The bound of attempt `attempt` (1 = the first reconnect):
 * min(max_ms, base_ms × factor^(attempt − 1)); 0 for attempt 0. Never
 * overflows, whatever the attempt number. */
uint64_t dx__backoff_bound(const dx__backoff *b, unsigned attempt);

/* The delay of that attempt: uniform in [bound − ⌊bound × jitter⌋, bound],
 * chosen by the random bits `rnd`. jitter 1 is "full jitter" ([0, bound]):
 * clients that lost the same server at the same moment come back spread
 * over the whole window instead of all at once. */
uint64_t dx__backoff_delay(const dx__backoff *b, unsigned attempt, uint64_t rnd);

#endif

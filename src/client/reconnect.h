/* Internal: the reconnect policy as pure functions — how long to wait
 * before each attempt (exponential backoff with jitter) and whether to try
 * again at all. Neither reads a clock nor draws a random number: the caller
 * passes how long the connection stayed open and 64 random bits, so the
 * tests can check every bound and every branch. */
#ifndef DX_CLIENT_RECONNECT_H
#define DX_CLIENT_RECONNECT_H

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

typedef struct dx__retry_policy {
    dx__backoff backoff;
    uint32_t max_retries;        /* reconnects in a row before giving up; 0 = no limit */
    uint32_t stable_ms;          /* open at least this long: the count starts again */
    const uint16_t *final_codes; /* close codes that end everything */
    size_t num_final;
} dx__retry_policy;

/* Why dx__retry_next said what it said. */
enum dx__retry_verdict {
    DX__RETRY = 0,           /* reconnect after *delay_ms */
    DX__STOP_APP_CLOSED = 1, /* the application closed: never reconnect */
    DX__STOP_FINAL_CODE = 2, /* the close code is one of final_codes */
    DX__STOP_EXHAUSTED = 3,  /* max_retries reconnects failed in a row */
};

/* Decides what follows the end of a connection or of an attempt that never
 * opened. `*attempt` is the number of reconnects made since the last stable
 * connection (0 at first); `code` the close code reported for this end;
 * `open_ms` how long it stayed OPEN (0 if it never opened). A connection
 * that stayed open stable_ms or longer resets *attempt to 0 first. On
 * DX__RETRY, *attempt is incremented and *delay_ms set from the backoff;
 * otherwise neither changes. */
enum dx__retry_verdict dx__retry_next(const dx__retry_policy *p, unsigned *attempt, uint16_t code,
                                      int app_closed, uint64_t open_ms, uint64_t rnd,
                                      uint64_t *delay_ms);

#endif

/* Internal: the reconnect policy as pure functions — how long to wait
 * before each attempt (exponential backoff with jitter, core/backoff.h)
 * and whether to try again at all. Neither reads a clock nor draws a
 * random number: the caller passes how long the connection stayed open and
 * 64 random bits, so the tests can check every bound and every branch. */
#ifndef DX_CLIENT_RECONNECT_H
#define DX_CLIENT_RECONNECT_H

#include <duplex/common.h>

#include "core/backoff.h"

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

/* The reconnect policy (see reconnect.h): pure arithmetic, no state. */
#include "client/reconnect.h"

enum dx__retry_verdict dx__retry_next(const dx__retry_policy *p, unsigned *attempt, uint16_t code,
                                      int app_closed, uint64_t open_ms, uint64_t rnd,
                                      uint64_t *delay_ms) {
    if (app_closed) return DX__STOP_APP_CLOSED;
    for (size_t i = 0; i < p->num_final; i++)
        if (p->final_codes[i] == code) return DX__STOP_FINAL_CODE;
    unsigned n = *attempt;
    if (open_ms && open_ms >= p->stable_ms) n = 0;
    if (p->max_retries && n >= p->max_retries) return DX__STOP_EXHAUSTED; /* n is *attempt here */
    *attempt = n + 1;
    *delay_ms = dx__backoff_delay(&p->backoff, n + 1, rnd);
    return DX__RETRY;
}

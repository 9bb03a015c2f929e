/* Exponential backoff with jitter (see backoff.h): pure arithmetic. */
#include "core/backoff.h"

uint64_t dx__backoff_bound(const dx__backoff *b, unsigned attempt) {
    if (attempt == 0) return 0;
    double max = b->max_ms, bound = b->base_ms < b->max_ms ? b->base_ms : b->max_ms;
    if (!(b->factor > 1.0)) return (uint64_t)bound;
    /* base × factor^(attempt−1) by squaring: O(log attempt) steps, and it
     * stops as soon as the cap is reached (doubles reach +inf, not UB). */
    double f = b->factor;
    for (unsigned e = attempt - 1; e && bound < max; e >>= 1) {
        if (e & 1) bound *= f;
        f *= f;
    }
    return bound < max ? (uint64_t)bound : (uint64_t)max;
}

uint64_t dx__backoff_delay(const dx__backoff *b, unsigned attempt, uint64_t rnd) {
    uint64_t bound = dx__backoff_bound(b, attempt);
    double j = b->jitter < 0 ? 0 : b->jitter > 1 ? 1 : b->jitter;
    uint64_t span = (uint64_t)((double)bound * j);
    if (span > bound) span = bound;
    /* The modulo's bias is below 2^-32 for any bound a timer can hold. */
    return bound - (span ? rnd % (span + 1) : 0);
}

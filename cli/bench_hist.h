/* A latency histogram in the style of HdrHistogram: log-linear buckets
 * (128 linear sub-buckets per power of two, so any recorded value is known
 * to within 1/64 of itself), a fixed array with no allocation, O(1) record,
 * and exact count and maximum. Values are nanoseconds. Not thread-safe: one
 * histogram per generator thread, merged at the end. */
#ifndef DX_CLI_BENCH_HIST_H
#define DX_CLI_BENCH_HIST_H

#include <stdint.h>

#define DX_HIST_SUB 128 /* sub-buckets per power of two (a power of two) */
#define DX_HIST_SUB_BITS 7
/* Values below 128 have their own bucket; then 64 buckets per power of two
 * up to 2^63. */
#define DX_HIST_BUCKETS (DX_HIST_SUB + (64 - DX_HIST_SUB_BITS) * (DX_HIST_SUB / 2))

typedef struct dx_hist {
    uint64_t count;
    uint64_t max;
    uint64_t sum; /* for the mean */
    uint64_t b[DX_HIST_BUCKETS];
} dx_hist;

void dx_hist_record(dx_hist *h, uint64_t v);
/* Adds every value of `from` into `into`. */
void dx_hist_merge(dx_hist *into, const dx_hist *from);
/* The value at percentile `p` (0..100): the highest value of the bucket
 * that holds it, never more than the exact maximum; 0 when empty. */
uint64_t dx_hist_percentile(const dx_hist *h, double p);

#endif

/* The latency histogram; see bench_hist.h for the bucket layout. */
#include "cli/bench_hist.h"

/* Bucket of a value: below DX_HIST_SUB the value itself; above, the top
 * DX_HIST_SUB_BITS bits (the leading one and the next six) pick one of 64
 * buckets in the value's power of two. */
static unsigned bucket_of(uint64_t v) {
    if (v < DX_HIST_SUB) return (unsigned)v;
    unsigned top = 63u - (unsigned)__builtin_clzll(v);   /* >= DX_HIST_SUB_BITS */
    unsigned shift = top - (DX_HIST_SUB_BITS - 1);        /* >= 1 */
    unsigned sub = (unsigned)(v >> shift) - DX_HIST_SUB / 2; /* 0..63 */
    return DX_HIST_SUB + (shift - 1) * (DX_HIST_SUB / 2) + sub;
}

/* Highest value that lands in bucket `i`. */
static uint64_t bucket_high(unsigned i) {
    if (i < DX_HIST_SUB) return i;
    unsigned k = i - DX_HIST_SUB;
    unsigned shift = k / (DX_HIST_SUB / 2) + 1;
    uint64_t sub = k % (DX_HIST_SUB / 2) + DX_HIST_SUB / 2;
    return ((sub + 1) << shift) - 1;
}

void dx_hist_record(dx_hist *h, uint64_t v) {
    h->b[bucket_of(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max) h->max = v;
}

void dx_hist_merge(dx_hist *into, const dx_hist *from) {
    for (unsigned i = 0; i < DX_HIST_BUCKETS; i++)
        into->b[i] += from->b[i];
    into->count += from->count;
    into->sum += from->sum;
    if (from->max > into->max) into->max = from->max;
}

uint64_t dx_hist_percentile(const dx_hist *h, double p) {
    if (h->count == 0) return 0;
    if (p >= 100) return h->max;
    /* The rank of the value at p, 1-based, rounded up. */
    uint64_t rank = (uint64_t)(p / 100.0 * (double)h->count + 0.9999999);
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < DX_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t v = bucket_high(i);
            return v < h->max ? v : h->max;
        }
    }
    return h->max;
}

/* Internal: the loop's counters, read by dx_server_stats_get (server.c).
 * Written only by the loop's thread, as plain words: a reader on another
 * thread sees each naturally aligned 64-bit word whole, if a moment old. */
#ifndef DX_IO_LOOPSTATS_H
#define DX_IO_LOOPSTATS_H

#include <stdint.h>
#include <time.h>

#include <duplex/conn.h>
#include <duplex/loop.h>

typedef struct dx__loop_stats {
    uint64_t turns;  /* iterations of dx_loop_run */
    uint64_t timers; /* timer callbacks run */
    uint64_t turn_us[DX_LOOP_TURN_BUCKETS];
    uint64_t turn_us_sum;
    /* What the connections on this loop did: bound to the thread while
     * dx_loop_run runs (conn.h, "counters"). */
    dx_conn_counters conn;
} dx__loop_stats;

/* Microseconds of CLOCK_MONOTONIC: the clock of every latency the loop's
 * histograms hold. */
static inline uint64_t dx__clock_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Counts `us` into a histogram in the loop's buckets (DX_LOOP_TURN_BUCKETS
 * counts over DX_LOOP_TURN_BOUNDS_US, not cumulative, the last over every
 * bound): a few compares, the short turns of a busy loop leaving at the
 * first. */
static inline void dx__hist_us_add(uint64_t *b, uint64_t *sum, uint64_t us) {
    static const uint32_t bounds[] = DX_LOOP_TURN_BOUNDS_US;
    unsigned i = 0;
    while (i < sizeof bounds / sizeof bounds[0] && us > bounds[i])
        i++;
    b[i]++;
    *sum += us;
}

const dx__loop_stats *dx__loop_get_stats(const dx_loop *loop);
/* 1 when the loop waits on an io_uring (open WebSockets may be on it). */
int dx__loop_has_uring(const dx_loop *loop);
/* How much one socket should read at a time in this dispatch of epoll's
 * events (at most the loop's buffer): a share of what a turn should read
 * in all, so that many flooding peers do not make the turn long. */
size_t dx__loop_read_share(const dx_loop *loop);

#endif

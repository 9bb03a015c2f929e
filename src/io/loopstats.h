/* Internal: the loop's counters, read by dx_server_stats_get (server.c).
 * Written only by the loop's thread, as plain words: a reader on another
 * thread sees each naturally aligned 64-bit word whole, if a moment old. */
#ifndef DX_IO_LOOPSTATS_H
#define DX_IO_LOOPSTATS_H

#include <stdint.h>

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

const dx__loop_stats *dx__loop_get_stats(const dx_loop *loop);
/* 1 when the loop waits on an io_uring (open WebSockets may be on it). */
int dx__loop_has_uring(const dx_loop *loop);

#endif

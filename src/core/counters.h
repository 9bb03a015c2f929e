/* Internal: the thread's bound dx_conn_counters (conn.h, "counters"). The
 * core adds to them where it handles a frame; one thread-local read and a
 * predictable branch per call, nothing per connection. */
#ifndef DX_CORE_COUNTERS_H
#define DX_CORE_COUNTERS_H

#include <duplex/conn.h>

extern _Thread_local dx_conn_counters *dx__counters_bound;
extern _Thread_local dx_conn_counters dx__counters_own;

/* The set the calling thread counts into now. */
static inline dx_conn_counters *dx__counters(void) {
    dx_conn_counters *k = dx__counters_bound;
    return k ? k : &dx__counters_own;
}

#endif

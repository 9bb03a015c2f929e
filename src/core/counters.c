/* The thread's binding of dx_conn_counters (conn.h). A thread-local
 * pointer rather than one in each dx_conn: an idle connection's bytes are
 * budgeted (tests/unit/test_sizes.c), and the sums wanted are per loop. */
#include "core/counters.h"

#include <stddef.h>

_Thread_local dx_conn_counters *dx__counters_bound;
_Thread_local dx_conn_counters dx__counters_own;

dx_conn_counters *dx_conn_counters_bind(dx_conn_counters *k) {
    dx_conn_counters *prev = dx__counters_bound;
    dx__counters_bound = k;
    return prev;
}

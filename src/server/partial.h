/* Internal: the budget and deadline of messages not yet complete
 * (partial.c), below the connection layer. */
#ifndef DX_SERVER_PARTIAL_H
#define DX_SERVER_PARTIAL_H

#include <stddef.h>
#include <stdint.h>

#include "server/state.h"

/* After a read (dx_conn_recv) of a P_WS connection that held `before` bytes
 * (dx_conn_partial) and may hold more now: updates the total, marks when
 * a new partial message began, closes the biggest holders (1009) while
 * the total is over max_partial_total. */
void dx__partial_read(dx_server_conn *c, size_t before);
/* Before a P_WS connection is killed: its bytes leave the total. */
void dx__partial_forget(dx_server_conn *c);
/* From the sweep: closes (1008) a message unfinished after
 * partial_timeout_ms; returns 1 when it did. */
int dx__partial_sweep(dx_server_conn *c, uint32_t now);

#endif

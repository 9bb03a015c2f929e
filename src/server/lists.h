/* Internal: the bottom of the server's layers (lists.c): the server's
 * clock, the connection lists and the flush timer. Calls nothing else in
 * src/server/. */
#ifndef DX_SERVER_LISTS_H
#define DX_SERVER_LISTS_H

#include <stdint.h>

#include "server/state.h"

/* Milliseconds since the server started (the loop's cached clock). */
uint32_t dx__srv_now(const dx_server *s);
/* Moves `c` from the list its phase names (open, other or dead) to `to`;
 * the caller then sets the phase that matches `to`. */
void dx__srv_move(dx_server_conn *c, dx_server_conn **to);
/* Arms the zero-delay flush timer (server.c's on_flush: flush the dirty
 * connections, free the dead, finish a shutdown). */
void dx__srv_schedule(dx_server *s);
/* A connection went: while shutting down, let the flush look at it. */
void dx__srv_check_done(dx_server *s);

#endif

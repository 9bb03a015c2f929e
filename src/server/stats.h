/* Internal: the server's events and counters (stats.c), above the
 * connection layer. */
#ifndef DX_SERVER_STATS_H
#define DX_SERVER_STATS_H

#include "server/state.h"

/* Tells cfg.on_event, when set, about `name` on `c`. */
void dx__srv_event(dx_server_conn *c, const char *name, int status, const char *reason);

#endif

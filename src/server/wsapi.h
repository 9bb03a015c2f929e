/* Internal: the per-connection public API (wsapi.c), above the connection
 * layer and stats.c. */
#ifndef DX_SERVER_WSAPI_H
#define DX_SERVER_WSAPI_H

#include "server/state.h"

/* A send found max_buffered bytes queued on `c`: counts it, applies the
 * backpressure policy and returns DX_EBUSY. */
int dx__sc_refuse_slow(dx_server_conn *c);

#endif

/* Internal: every header of the server's layers at once, for the unit
 * tests that look inside (test_server.c, test_sizes.c). No file of
 * src/server/ includes it: each includes the narrow headers of the layers
 * below it (docs/embedding.md, "Inside the server"; the layout test checks
 * that the graph has no cycle). From the bottom:
 *   state.h     the data: phases, flags, dx_server_conn, dx_server, hooks
 *   lists.c     the server's clock, the connection lists, the flush timer
 *   partial.c   the budget and deadline of unfinished messages
 *   sconn.c     one connection's I/O: read, write (corked flush), close
 *   stats.c     dx_server_stats_get (the counters live in dx_server.st)
 *   wsapi.c     the per-connection public API (send, close, accessors)
 *   topics.c    local broadcast and pub/sub topics
 *   respond.c   plain HTTP answers and the admission of an upgrade
 *   static.c    static files from a directory
 *   broker.c    the broker hook: broadcast/publish to the cluster, deliver,
 *               /healthz with the broker's state
 *   session.c   the HTTP session transport (docs/fallback.md): a WebSocket
 *               carried by SSE / long polls and POSTs
 *   session_req.c  the parsing of a session request's target (pure, fuzzed)
 *   request.c   the HTTP phase's input: request head, upgrade, routes
 *   server.c    the server object, listener, accept, sweep, shutdown; it
 *               sets the hooks (srv->hooks) that sconn.c calls upward
 *   redis_fanout.c  the Redis broker (duplex/fanout.h)
 */
#ifndef DX_SERVER_INTERNAL_H
#define DX_SERVER_INTERNAL_H

#include "server/broker.h"
#include "server/handoff.h"
#include "server/lists.h"
#include "server/partial.h"
#include "server/request.h"
#include "server/respond.h"
#include "server/sconn.h"
#include "server/session.h"
#include "server/state.h"
#include "server/static.h"
#include "server/stats.h"
#include "server/topics.h"
#include "server/wsapi.h"

#endif

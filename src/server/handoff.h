/* Internal: servers on several threads that share one listener
 * (dx_server_listen_shared) form a group, so that an HTTP session opened on
 * one of them can be reached from a connection that another one accepted.
 * The kernel hands each new connection to whichever thread accepts first,
 * and a session's requests come on connections of their own (a poll, the
 * next POST after a reconnect), so most of them land on the wrong thread.
 * Such a connection is handed, with the bytes read from it, to the thread
 * whose server owns the session: a session's SID carries its server's
 * index in the group (session.c), and the rest of it is random.
 *
 * It sits above sconn.c (it makes and kills connections) and below
 * session.c, the only caller of dx__handoff; the adopted connection's bytes
 * go up through srv->hooks.http_input, as a read's would. */
#ifndef DX_SERVER_HANDOFF_H
#define DX_SERVER_HANDOFF_H

#include <stddef.h>

#include "server/state.h"

/* Servers in a group at most: an index must fit in a SID's first byte. */
#define DX__GROUP_MAX 256

/* `s` joins the group of `first` (made when `first` has none; `first`
 * is then its member 0). Called by dx_server_listen_shared, before the
 * servers' loops run or from the thread of `first`'s loop. A server beyond
 * DX__GROUP_MAX stays out: its sessions are then reached only through
 * connections it accepted itself. Returns 0 or DX_ENOMEM. */
int dx__group_join(dx_server *s, dx_server *first);
/* `s` takes no more connections from the others (it shuts down). */
void dx__group_close(dx_server *s);
/* `s` leaves its group (dx_server_free); the last one frees it. */
void dx__group_leave(dx_server *s);

/* The request in `bytes` (`n`, everything read from `c` so far) names a
 * session whose SID says it belongs to the group's server `index`: hands
 * `c`'s socket, its TLS and those bytes to that server's thread, where the
 * request is read again as if it had arrived there; `c` itself ends here
 * without closing the socket. Returns 0 when handed off (`c` is dead),
 * DX_EINVAL when there is no such other server taking connections (the
 * caller answers 404 as for any unknown session), DX_ENOMEM. */
int dx__handoff(dx_server_conn *c, unsigned index, const void *bytes, size_t n);

#endif

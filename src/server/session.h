/* Internal: the HTTP session transport (docs/fallback.md). A session is a
 * dx_server_conn in phase P_WS with F_SESS set and no socket: its dx_conn is
 * the real WebSocket state machine, its up bytes come in the bodies of
 * POSTs and its down bytes leave on the attached down request (SSE or a
 * long poll), which is an ordinary HTTP connection kept in P_STREAM.
 *
 * The down byte stream is never copied out of the dx_conn's output queue:
 * the queue is the retransmit buffer. Its first byte is the down offset
 * `acked` (released by the client); the bytes up to `sent` went out on the
 * current down request; the rest waits for it. dx_conn_buffered() is thus
 * the unacknowledged bytes, and max_buffered, the backpressure policy and
 * on_drain apply to them unchanged. */
#ifndef DX_SERVER_SESSION_H
#define DX_SERVER_SESSION_H

#include <stdint.h>

#include "server/session_req.h"
#include "server/state.h"

typedef struct dx__sess {
    struct dx__sess *hnext; /* in its srv->sess_slots chain, once it has a SID */
    dx_server_conn *c;      /* the session's own connection */
    dx_server_conn *down;   /* the attached down request, or NULL */
    uint64_t up;            /* E: the next up offset expected */
    uint64_t acked;         /* A: down bytes released */
    uint64_t sent;          /* S: down bytes sent (acked <= sent) */
    uint32_t t_req;         /* server ms of the last request */
    char *origin;           /* Origin of the open request, NULL when none */
    char sid[DX__SID_LEN + 1];
    char remote[64]; /* of the open request */
} dx__sess;

/* request.c: a request that may be for the session transport (sessions
 * enabled, not an upgrade). Returns 0 when it is not one (route it as
 * plain HTTP), 1 when it was handled (answered, attached, or the session
 * opened), 2 when it is an up request whose body is not all here yet (keep
 * the bytes and call again with more). `rest` is what follows the head. */
int dx__sess_request(dx_server_conn *c, const dx_http_request *req, uint8_t *rest, size_t rest_len);

/* sconn.c: dx__sc_flush of a session: hands queued bytes to the down
 * request, frees the session once it is closed and acknowledged. */
void dx__sess_flush(dx_server_conn *c);
/* sconn.c: dx__sc_kill of a session (after on_close ran) or of a down
 * request: the two are detached; a killed session is freed. */
void dx__sess_kill(dx_server_conn *c);

/* server.c: the sweep. For a session: the idle expiry (returns 1 when it
 * killed it). For a down request: the poll's hold time, the stream's
 * keep-alive comment and its end after 60 s. */
int dx__sess_sweep(dx_server_conn *c, uint32_t now);
void dx__sess_sweep_down(dx_server_conn *c, uint32_t now);

/* server.c: dx_server_free, after every connection is gone. */
void dx__sess_free_table(dx_server *s);

#endif

/* Internal: the answers of the HTTP phase (respond.c): plain HTTP answers
 * and the admission checks of an upgrade, used by request.c, static.c,
 * broker.c and the HTTP sessions (session.c). Above the connection layer;
 * it routes nothing. */
#ifndef DX_SERVER_RESPOND_H
#define DX_SERVER_RESPOND_H

#include <stddef.h>
#include <stdint.h>

#include "server/state.h"

/* Queues a whole HTTP answer (head built here) and moves to P_RESP.
 * `body` NULL with `len` > 0: the head announces `len` bytes that the
 * caller streams (a static file). */
int dx__req_respond(dx_server_conn *c, int status, const char *ctype, const char *extra,
                    const void *body, size_t len, int head_only);
/* The same with a body of `len` bytes streamed from `fd` at `off` (a static
 * file, a chat download). `fd` is taken in every case: kept until the body
 * is written, closed at once for HEAD, an empty body or an error. */
int dx__req_respond_fd(dx_server_conn *c, int status, const char *ctype, const char *extra, int fd,
                       uint64_t off, uint64_t len, int head_only);
int dx__req_error(dx_server_conn *c, int status, const char *reason, const char *extra);
/* Writes the header line "<name>: <v>\r\n" and a NUL at `out` (room for
 * strlen(name) + 25 bytes): its length. By hand, as the answers' heads:
 * an answer per message on the session transport, where snprintf was 7 %
 * of the server's time. */
size_t dx__hline_u64(char *out, const char *name, uint64_t v);

/* 1 when Origin `o` (n bytes) is in cfg->origins (which is not NULL). */
int dx__req_origin_allowed(const dx_server_config *cfg, const char *o, size_t n);
/* The checks of an upgrade, in order: shutting down (503), Origin (403),
 * max_connections (503), then on_upgrade with `app` (the connection the
 * application will own) and `u` (filled from `req` and `info` here; the
 * chosen protocol is in u->protocol after). Returns 0 when accepted, or
 * answers `c` with the refusal (plus the header lines `xh`, may be NULL)
 * and returns -1. */
int dx__req_admit(dx_server_conn *c, dx_server_conn *app, const dx_http_request *req,
                  const dx_handshake_info *info, dx_upgrade *u, const char *xh);

#endif

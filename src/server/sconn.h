/* Internal: one connection's I/O (sconn.c): reads through the loop's
 * buffer, corked writes of the protocol's output queue, and the way down
 * (flush, shut down, linger, close). It sits below HTTP, the topics and
 * the sessions: what it needs of them goes through srv->hooks
 * (state.h). It keeps the HTTP state's memory (dx__http) because it
 * writes the answer that request.c/respond.c put there, but it neither
 * parses nor routes a request. */
#ifndef DX_SERVER_SCONN_H
#define DX_SERVER_SCONN_H

#include <stddef.h>
#include <stdint.h>

#include "server/state.h"

/* A connection of `s`, in phase P_HTTP and in no list yet: its dx_conn with
 * the server's settings and room for the dx_server_conn and the inline
 * user data (freed with dx_conn_free until dx__sc_link). */
dx_server_conn *dx__sc_alloc(dx_server *s);
/* Puts a new connection at the head of s->other (a kill then frees it). */
void dx__sc_link(dx_server_conn *c);
/* dx__sc_alloc, then the socket `fd` (and TLS) watched, and linked. */
dx_server_conn *dx__sc_new(dx_server *s, int fd);
void dx__sc_io(dx_loop *loop, dx_io *w, unsigned events);
void dx__sc_mark(dx_server_conn *c);   /* queue the connection for the flush */
void dx__sc_queued(dx_server_conn *c); /* after queuing: watermarks, flush */
void dx__sc_flush(dx_server_conn *c);
/* Writes now, outside the queue: bytes written (maybe fewer), 0 when the
 * socket is full, DX_EIO/DX_ETLS on error. */
int64_t dx__sc_write_now(dx_server_conn *c, const void *buf, size_t len);
/* A message this large goes straight from the caller's memory to the
 * socket when nothing waits ahead of it: echoing 64 KiB messages, the copy
 * into the queue was a tenth of the server's time. Smaller ones are queued,
 * so that those sent together leave in one write. */
#define DX__SC_THROUGH_MIN 16384
/* dx_server_send's path for those: written through where it can be
 * (dx_conn_send_through), queued where not; then as after any send. */
int dx__sc_send_through(dx_server_conn *c, enum dx_opcode op, const void *data, size_t len);
/* Keeps the unwritten rest of a 101 answer (flushed before any frame). */
int dx__sc_hold_101(dx_server_conn *c, const char *rest, size_t len);
void dx__sc_drop_101(dx_server_conn *c);
void dx__sc_kill(dx_server_conn *c, uint16_t code); /* drop the transport now */
/* The code a dropped transport reports: 1008 after the backpressure
 * policy closed it, 1006 otherwise. */
uint16_t dx__sc_drop_code(const dx_server_conn *c);
void dx__sc_start_close(dx_server_conn *c, unsigned code, const char *reason);
void dx__sc_update(dx_server_conn *c); /* watched events from the state */
int dx__sc_remote(const dx_server_conn *c, char *out, size_t cap);
extern const dx_conn_callbacks dx__sc_callbacks;

/* The HTTP state of `c`, made (zeroed, no file) when it has none; NULL
 * when out of memory. */
dx__http *dx__http_of(dx_server_conn *c);
void dx__http_free(dx__http *h);

#endif

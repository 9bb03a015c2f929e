/* Internal: the server's shared state, split over small files:
 *   server.c    the server object, listener, accept, lists, sweep timer,
 *               broadcast and shutdown
 *   sconn.c     one connection's I/O: read, write (corked flush), close
 *   request.c   the HTTP phase: request head, upgrade, plain HTTP routes
 *   static.c    static files from a directory
 *   topics.c    pub/sub topics
 *   wsapi.c     the per-connection public API (send, close, accessors)
 *   broker.c    the broker hook: broadcast/publish to the cluster, deliver,
 *               /healthz with the broker's state
 *   redis_fanout.c  the Redis broker (duplex/fanout.h)
 *   stats.c     dx_server_stats_get (the counters live in dx_server.st)
 *   session.c   the HTTP session transport (docs/fallback.md): a WebSocket
 *               carried by SSE / long polls and POSTs
 *   session_req.c  the parsing of a session request's target (pure, fuzzed)
 */
#ifndef DX_SERVER_INTERNAL_H
#define DX_SERVER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <duplex/conn.h>
#include <duplex/handshake.h>
#include <duplex/http.h>
#include <duplex/loop.h>
#include <duplex/server.h>

#include "io/tls.h"

/* Where a connection is in its life. */
enum {
    P_TLS = 1, /* TLS handshake */
    P_HTTP,    /* reading the request head */
    P_RESP,    /* writing a plain HTTP answer, then linger */
    P_STREAM,  /* a session's down request, kept open while the session
                  writes to it (session.c) */
    P_WS,      /* WebSocket: dx_conn OPEN or CLOSING */
    P_DRAIN,   /* dx_conn CLOSED: flushing what is queued */
    P_LINGER,  /* output done and shut down: waiting for the peer's EOF */
    P_DEAD,    /* transport closed, waiting to be freed after the dispatch */
};

enum {
    F_DIRTY = 1 << 0,      /* in the server's flush list */
    F_PING = 1 << 1,       /* a heartbeat ping is unanswered */
    F_PAUSED = 1 << 2,     /* reading stopped for backpressure */
    F_ABOVE_LOW = 1 << 3,  /* output went above low_water: on_drain owed */
    F_SLOW = 1 << 4,       /* closed by the backpressure policy */
    F_TLS_WANT_W = 1 << 5, /* TLS needs the socket writable to go on */
    F_IN_ROUTE = 1 << 6,   /* inside on_http: dx_server_http_respond allowed */
    F_OPENED = 1 << 7,     /* on_open ran, so on_close is owed */
    F_HEAD = 1 << 8,       /* the plain HTTP request was HEAD */
    F_FRAG = 1 << 9,       /* a fragmented send is in progress */
    F_101 = 1 << 10,       /* part of the 101 answer waits in srv->pending101 */
    F_READING = 1 << 11,   /* in dx__sc_io's read: a flush follows it at once */
    F_MARKED = 1 << 12,    /* marked while F_READING: F_DIRTY, but not in the list */
    F_URING = 1 << 13,     /* the socket is on the loop's io_uring (uslot), not epoll */
    F_BROKEN = 1 << 14,    /* a write-through failed: dropped by the next flush */
    F_SESS = 1 << 15,      /* an HTTP session (session.c): no socket, `sess` set */
};

/* State of the HTTP phase, on the heap only while it lasts. */
typedef struct dx__http {
    char *in; /* request bytes, when the head came in several reads */
    size_t in_len;
    char *out; /* the answer's head (and small body) */
    size_t out_len;
    size_t out_off;
    int file_fd; /* static file body, -1 when none */
    uint64_t file_off;
    uint64_t file_end;
    int outq; /* P_RESP: answer bytes in the kernel at the last sweep */
    /* P_STREAM (session.c): the session this down request serves. */
    dx_server_conn *sess;
    uint64_t stream_bytes; /* session bytes sent on this stream */
    uint32_t t_last;       /* last write on this stream */
    uint8_t poll;          /* mode=poll rather than mode=stream */
    /* Answer with "Connection: keep-alive" and read the next request after
     * it (session.c sets it for a session's up and poll requests). */
    uint8_t keep;
    /* P_STREAM: the request came with the session's Origin, so its answer
     * carries the CORS lines (session.c). */
    uint8_t cors;
} dx__http;

struct dx__sess;

typedef struct dx__sub dx__sub;

/* One connection. It lives in the `extra` bytes of its dx_conn (one
 * allocation per connection); the application's inline data follows it.
 * Every byte here is paid once per idle connection, so the dx_conn is
 * found by a fixed offset instead of a pointer (sc_conn), the flush list
 * is an array in the server, and the HTTP state and the subscriptions,
 * which never live at the same time, share one pointer. */
struct dx_server_conn {
    dx_io io;
    dx_server *srv;
    dx_server_conn *prev, *next; /* in srv->open or srv->other; srv->dead once dead */
    union {
        dx__http *http; /* P_TLS, P_HTTP, P_RESP (NULL when not needed) */
        dx__sub *subs;  /* P_WS */
    } u;
    union {
        dx_tls *tls;           /* without F_SESS: the socket's TLS, or NULL */
        struct dx__sess *sess; /* with F_SESS: the session (session.h) */
    };
    uint32_t t_rx;   /* server ms of the last bytes received */
    uint32_t t_mark; /* accepted at / ping sent at / closing since */
    uint16_t flags;
    uint8_t phase;
    uint32_t uslot; /* with F_URING: its slot on the ring (in what was padding) */
};

/* The rest of a 101 answer the socket did not take at once (rare). */
typedef struct dx__pending101 {
    struct dx__pending101 *next;
    dx_server_conn *c;
    size_t len, off;
    char data[];
} dx__pending101;

typedef struct dx__topics {
    struct dx__topic **slots;
    size_t cap; /* power of two, or 0 */
    size_t count;
} dx__topics;

struct dx_server {
    dx_loop *loop;
    dx_server_config cfg;
    char *static_root; /* realpath of cfg.static_dir */
    dx_tls_ctx *tls;
    size_t conn_offset; /* of the dx_server_conn in its dx_conn */
    dx_io lio;
    int port;
    int listening;
    size_t data_offset;   /* of the application's inline data in `extra` */
    dx_server_conn *open; /* WebSockets, OPEN or CLOSING */
    size_t open_count;
    dx_server_conn *other;  /* every other live connection */
    dx_server_conn **dirty; /* to flush after this iteration */
    size_t dirty_len, dirty_cap;
    int dirty_overflow; /* the array could not grow: scan the lists */
    dx__pending101 *pending101;
    dx_server_conn *dead; /* to free after this iteration */
    dx_timer flush;       /* after this iteration's I/O: flush, free */
    dx_timer sweep;
    uint32_t sweep_ms;
    dx_timer accept_pause;
    uint64_t t0;
    dx__topics topics;
    int shutting;
    dx_timer deadline;
    dx_post_fn done;
    void *done_arg;
    int done_called;
    dx_server_broker broker;      /* publish NULL: none (a single node) */
    int no_uring;                 /* the loop has no io_uring (or it is off): epoll only */
    size_t partial_total;         /* dx_conn_partial over the P_WS connections (partial.c) */
    dx_server_conn *partial_in;   /* in its dx_conn_recv: counted by dx__partial_read */
    struct dx__sess **sess_slots; /* HTTP sessions by SID (session.c): chained */
    size_t sess_cap;              /* power of two, or 0 */
    size_t sess_count;
    /* Counters (dx_server_stats_get, in stats.c): plain words added to on
     * this thread as things happen, read whole from any thread. The
     * fields that belong to the loop or are computed stay zero here. */
    dx_server_stats st;
};

/* Index of a close code in dx_server_stats.closed and .close_sent. */
static inline unsigned dx__close_slot(unsigned code) {
    return code >= 1000 && code <= 1015 ? code - 1000 : DX_STATS_CLOSE_OTHER;
}

/* Index of a data opcode in the stats' message counters. */
static inline unsigned dx__op_slot(enum dx_opcode op) {
    return op == DX_OP_BINARY;
}

/* Reading resumes (or the connection ends): the end of a backpressure
 * pause, kept in the st.paused_now gauge. */
static inline void dx__sc_unpause(dx_server_conn *c) {
    if (c->flags & F_PAUSED) {
        c->flags &= (uint16_t)~F_PAUSED;
        c->srv->st.paused_now--;
    }
}

static inline dx_conn *sc_conn(const dx_server_conn *c) {
    return (dx_conn *)((char *)c - c->srv->conn_offset);
}

/* HTTP state, when the phase has one. */
static inline dx__http *sc_http(const dx_server_conn *c) {
    return c->phase == P_WS || c->phase >= P_DRAIN ? NULL : c->u.http;
}

/* server.c */
uint32_t dx__srv_now(const dx_server *s);
void dx__srv_schedule(dx_server *s);
void dx__srv_move(dx_server_conn *c, dx_server_conn **to);
void dx__srv_check_done(dx_server *s);
/* Queues a shared frame under the backpressure policy. */
int dx__srv_send_shared(dx_server_conn *c, dx_shared *sh);

/* sconn.c */
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
/* A send found max_buffered bytes queued on `c`: counts it, applies the
 * backpressure policy and returns DX_EBUSY (wsapi.c). */
int dx__sc_refuse_slow(dx_server_conn *c);
/* Tells cfg.on_event, when set, about `name` on `c` (stats.c). */
void dx__srv_event(dx_server_conn *c, const char *name, int status, const char *reason);
extern const dx_conn_callbacks dx__sc_callbacks;

/* request.c */
void dx__req_input(dx_server_conn *c, uint8_t *buf, size_t len);
void dx__http_free(dx__http *h);
/* A kept-alive answer is all out: back to reading a request (P_HTTP). */
void dx__req_next(dx_server_conn *c);
/* Queues a whole HTTP answer (head built here) and moves to P_RESP. */
/* `body` NULL with `len` > 0: the head announces `len` bytes that the
 * caller streams (a static file). */
int dx__req_respond(dx_server_conn *c, int status, const char *ctype, const char *extra,
                    const void *body, size_t len, int head_only);
/* The same with a body of `len` bytes streamed from `fd` at `off` (a static
 * file, a chat download). `fd` is taken in every case: kept until the body
 * is written, closed at once for HEAD, an empty body or an error. */
int dx__req_respond_fd(dx_server_conn *c, int status, const char *ctype, const char *extra, int fd,
                       uint64_t off, uint64_t len, int head_only);
int dx__req_error(dx_server_conn *c, int status, const char *reason, const char *extra);
/* The end of a stats call that grows at its end (server.h, fanout.h):
 * copies `src` (`have` bytes, its own size field set to `have`) into `out`
 * up to the `want` bytes the caller's header knows, zeroes what the caller
 * knows beyond it, and sets out's size (its first field) to what was
 * written. */
static inline void dx__stats_copy(void *out, const void *src, size_t have, size_t want) {
    if (want > have) {
        memset((char *)out + have, 0, want - have);
        want = have;
    }
    memcpy(out, src, want);
    memcpy(out, &want, sizeof want);
}

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

/* static.c: answers GET/HEAD for `path` (raw target path) from the root.
 * Returns 1 when it answered. */
int dx__static_serve(dx_server_conn *c, const char *method, size_t method_len, const char *path,
                     size_t path_len, const dx_http_header *h, size_t nh);

/* topics.c */
void dx__topics_drop_conn(dx_server_conn *c);
void dx__topics_free(dx__topics *t);
int dx__topics_publish_local(dx_server *srv, const char *topic, enum dx_opcode op, const void *data,
                             size_t len, const dx_server_conn *except);

/* server.c: dx_server_broadcast without the broker. */
int dx__srv_broadcast_local(dx_server *s, enum dx_opcode op, const void *data, size_t len,
                            const dx_server_conn *except);

/* partial.c: the budget and deadline of messages not yet complete. After
 * a read (dx_conn_recv) of a P_WS connection that held `before` bytes
 * (dx_conn_partial) and may hold more now: updates the total, marks when
 * a new partial message began, closes the biggest holders (1009) while
 * the total is over max_partial_total. */
void dx__partial_read(dx_server_conn *c, size_t before);
/* Before a P_WS connection is killed: its bytes leave the total. */
void dx__partial_forget(dx_server_conn *c);
/* From the sweep: closes (1008) a message unfinished after
 * partial_timeout_ms; returns 1 when it did. */
int dx__partial_sweep(dx_server_conn *c, uint32_t now);

/* broker.c: the /healthz answer (200 "ok" without a broker). */
void dx__broker_healthz(dx_server_conn *c, int head);

#endif

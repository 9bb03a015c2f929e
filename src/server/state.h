/* Internal: the server's data, seen by every layer of src/server/ (the
 * layers and what each may call are in docs/embedding.md, "Inside the
 * server"): the phases and flags of a connection, struct dx_server_conn,
 * struct dx_server, and the hooks through which the connection layer
 * (sconn.c) reaches the layers above it without calling them by name. */
#ifndef DX_SERVER_STATE_H
#define DX_SERVER_STATE_H

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

/* What the connection layer (sconn.c, below HTTP, the topics and the
 * sessions) calls above itself. dx_server_new sets them; none is NULL.
 * They run once per HTTP-phase read, per connection end or per session
 * flush: never per WebSocket message. */
typedef struct dx__srv_hooks {
    /* Bytes read in P_HTTP (request.c: dx__req_input). */
    void (*http_input)(dx_server_conn *c, uint8_t *buf, size_t len);
    /* A P_WS connection with subscriptions is closing (topics.c). */
    void (*drop_subs)(dx_server_conn *c);
    /* Output queued on an HTTP session, which has no socket (session.c). */
    void (*sess_flush)(dx_server_conn *c);
    /* An HTTP session, or a down request of one, is killed (session.c). */
    void (*sess_kill)(dx_server_conn *c);
    /* The address of the request that opened `c`'s session (64 bytes,
     * NUL-terminated), or NULL (server.c). */
    const char *(*sess_remote)(const dx_server_conn *c);
} dx__srv_hooks;

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
    dx__srv_hooks hooks;          /* set by dx_server_new */
    dx_server_broker broker;      /* publish NULL: none (a single node) */
    int no_uring;                 /* the loop has no io_uring (or it is off): epoll only */
    size_t partial_total;         /* dx_conn_partial over the P_WS connections (partial.c) */
    dx_server_conn *partial_in;   /* in its dx_conn_recv: counted by dx__partial_read */
    struct dx__sess **sess_slots; /* HTTP sessions by SID (session.c): chained */
    size_t sess_cap;              /* power of two, or 0 */
    size_t sess_count;
    struct dx__group *group; /* servers sharing the listener (handoff.h), or NULL */
    uint8_t group_index;     /* this server's index in it: a SID's first byte */
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

#endif

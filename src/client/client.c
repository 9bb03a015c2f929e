/* The client: resolve, connect, TLS, the HTTP upgrade, then the WebSocket
 * through the sans-I/O dx_conn, and the way down. One timer per client
 * holds the deadline of the current phase (resolve and connect, handshake,
 * close answer, linger). */
#include <duplex/client.h>
#include <duplex/conn.h>
#include <duplex/handshake.h>
#include <duplex/http.h>
#include <duplex/sock.h>
#include <duplex/utf8.h>

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/config.h"
#include "client/queue.h"
#include "client/reconnect.h"
#include <duplex/url.h>
#include "core/alloc.h"
#include "io/dns.h"
#include "io/net.h"
#include "io/tls.h"

#define MAX_ADDRS 8 /* addresses of one host tried in turn */
/* Reads per readiness event under TLS, where a record may wait inside
 * OpenSSL with nothing left on the socket. On plain TCP one read of the
 * loop's buffer per event: the rest keeps the socket readable for the
 * next turn (epoll is level-triggered), so one busy connection cannot
 * hold the other connections and the timers of its loop. */
#define READ_ROUNDS 64
#define IOV_BATCH 64

enum phase {
    P_START,   /* created; the timer starts the attempt on the next turn */
    P_RESOLVE, /* a host name being resolved on a helper thread */
    P_CONNECT, /* TCP connect in progress */
    P_TLS,     /* TLS handshake */
    P_UPGRADE, /* request going out, waiting for the 101 */
    P_OPEN,    /* WebSocket, dx_conn OPEN or CLOSING */
    P_LINGER,  /* dx_conn CLOSED: flush, then wait for the server's EOF */
    P_ENDING,  /* transport gone; on_close on the next turn */
    P_WAIT,    /* reconnect: the timer starts the next attempt */
    P_CLOSED,  /* on_close delivered */
};

struct dx_client {
    dx_loop *loop;
    dx_client_config cfg; /* the strings in it point to `own` */
    dx__client_own own;
    dx_url url;
    int phase;
    int fd;
    dx_io io;
    dx_timer timer;
    dx_tls_ctx *tls_ctx;
    dx_tls *tls;
    unsigned tls_want; /* what TLS waits for after DX_EBUSY (DX_IO_READ/WRITE) */
    dx__dns *rs;       /* P_RESOLVE: the request */
    dx_addr addrs[MAX_ADDRS];
    int naddrs, addr_i;
    uint64_t deadline; /* of resolve and connect together, loop time */
    char key[DX_KEY_LEN + 1];
    char *req; /* the upgrade request until it is written */
    size_t req_len, req_off;
    char *resp; /* the server's answer until its head is complete */
    size_t resp_len;
    dx_conn *conn;
    char *protocol;   /* negotiated; "" when none */
    char *extensions; /* accepted; "" when none */
    /* How it ended, for on_close. */
    uint16_t close_code;
    uint8_t was_clean;
    uint8_t close_reason_len;
    char close_reason[123];
    /* Callbacks may free the client: `depth` counts the loop callbacks on
     * the stack and `dead` defers the release until the outermost returns. */
    int depth;
    int dead;
    char msg[256];
    /* Resilience (heartbeat, reconnect, offline queue; see client.h). */
    dx_timer hb_timer;
    uint64_t last_rx;   /* loop time of the last byte received */
    uint64_t ping_at;   /* when the unanswered heartbeat ping left; 0: none */
    uint64_t opened_at; /* loop time of this connection's on_open */
    int opened;         /* this attempt reached OPEN */
    int app_closed;     /* dx_client_close was called: never reconnect */
    int fatal;          /* a config error: never reconnect */
    unsigned attempt;   /* reconnects since the last stable connection */
    uint32_t wait_delay;
    size_t url_i; /* failover: the URL being tried (0: cfg->url, i: own.urls[i-1]) */
    dx__retry_policy retry;
    dx__queue queue;
};

static const char empty[] = "";

/* ---- life and death ------------------------------------------------------ */

static void enter(dx_client *c) {
    c->depth++;
}

static void destroy(dx_client *c);

static void leave(dx_client *c) {
    if (--c->depth == 0 && c->dead) destroy(c);
}

static void update_io(dx_client *c);
static void on_io(dx_loop *loop, dx_io *w, unsigned events);
static void hb_arm(dx_client *c);

/* Closes the socket and drops every phase's buffers; the dx_conn stays
 * (its close record may still be needed). */
static void drop_transport(dx_client *c) {
    dx__dns_cancel(c->rs);
    c->rs = NULL;
    dx_io_stop(c->loop, &c->io);
    dx_timer_stop(c->loop, &c->timer);
    dx_timer_stop(c->loop, &c->hb_timer);
    if (c->tls) {
        dx_tls_free(c->tls);
        c->tls = NULL;
    }
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    dx__free(c->req);
    c->req = NULL;
    dx__free(c->resp);
    c->resp = NULL;
}

static void destroy(dx_client *c) {
    drop_transport(c);
    dx_conn_free(c->conn);
    if (c->tls_ctx) dx_tls_ctx_free(c->tls_ctx);
    dx_url_free(&c->url);
    dx__client_own_free(&c->own);
    dx__queue_clear(&c->queue);
    if (c->protocol != empty) dx__free(c->protocol);
    if (c->extensions != empty) dx__free(c->extensions);
    dx__free(c);
}

/* With reconnect: whether another attempt follows this end, and after
 * what delay. Only finish() asks, once per attempt, and the answer moves
 * the client to P_WAIT with its one timer: that is the lock that keeps two
 * failures from ever starting two attempts. */
static int will_retry(dx_client *c, uint64_t *delay) {
    if (!c->cfg.reconnect || c->fatal) return 0;
    uint64_t rnd = 0;
    (void)dx_random(&rnd, sizeof rnd); /* on failure: no jitter, still a delay */
    uint64_t open_ms = c->opened ? dx_loop_now(c->loop) - c->opened_at : 0;
    if (c->opened && open_ms == 0) open_ms = 1;
    return dx__retry_next(&c->retry, &c->attempt, c->close_code, c->app_closed, open_ms, rnd,
                          delay) == DX__RETRY;
}

/* The end of a connection: the transport is closed and on_close reports
 * what was recorded; then, with reconnect, on_reconnecting. Only from loop
 * callbacks. */
static void finish(dx_client *c) {
    if (c->tls && (c->phase == P_OPEN || c->phase == P_LINGER)) dx_tls_shutdown(c->tls);
    drop_transport(c);
    dx_conn_free(c->conn);
    c->conn = NULL;
    uint64_t delay = 0;
    if (will_retry(c, &delay)) {
        c->phase = P_WAIT; /* so on_close sees DX_CONNECTING */
        c->wait_delay = (uint32_t)delay;
        dx_timer_start(c->loop, &c->timer, delay);
    } else {
        c->phase = P_CLOSED;
        dx__queue_clear(&c->queue);
    }
    if (c->cfg.on_close)
        c->cfg.on_close(c, c->cfg.user, c->close_code, c->close_reason, c->close_reason_len,
                        c->was_clean);
    if (!c->dead && c->phase == P_WAIT && c->cfg.on_reconnecting)
        c->cfg.on_reconnecting(c, c->cfg.user, c->attempt, c->wait_delay);
}

static void record_close(dx_client *c, uint16_t code, const void *reason, size_t len, int clean) {
    if (len > sizeof c->close_reason) len = sizeof c->close_reason;
    c->close_code = code;
    c->was_clean = (uint8_t)clean;
    c->close_reason_len = (uint8_t)len;
    if (len) memcpy(c->close_reason, reason, len);
}

/* Formats the message and calls on_error. Returns 0 when the client was
 * freed by the callback (the caller must return at once), 1 otherwise. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int
report(dx_client *c, int err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof c->msg, fmt, ap);
    va_end(ap);
    if (c->cfg.on_error) c->cfg.on_error(c, c->cfg.user, err, c->msg);
    return !c->dead;
}

/* A failure before the connection opened: on_error, then on_close 1006. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
fail(dx_client *c, int err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof c->msg, fmt, ap);
    va_end(ap);
    drop_transport(c);
    record_close(c, DX_CLOSE_ABNORMAL, NULL, 0, 0);
    if (c->cfg.on_error) c->cfg.on_error(c, c->cfg.user, err, c->msg);
    if (!c->dead) finish(c);
}

static void update_io(dx_client *c) {
    if (c->fd < 0) return;
    unsigned ev = 0;
    switch (c->phase) {
    case P_CONNECT:
        ev = DX_IO_WRITE;
        break;
    case P_TLS:
        ev = c->tls_want ? c->tls_want : DX_IO_READ;
        break;
    case P_UPGRADE:
        ev = DX_IO_READ | (c->req_off < c->req_len ? DX_IO_WRITE : 0) | (c->tls_want & DX_IO_WRITE);
        break;
    case P_OPEN:
    case P_LINGER:
        ev = DX_IO_READ;
        if ((c->conn && dx_conn_buffered(c->conn)) || (c->tls_want & DX_IO_WRITE))
            ev |= DX_IO_WRITE;
        break;
    default:
        break;
    }
    (void)dx_io_update(c->loop, &c->io, ev);
}

/* ---- the WebSocket phase ------------------------------------------------- */

static void cb_message(dx_conn *conn, void *user, enum dx_opcode op, uint8_t *data, size_t len) {
    dx_client *c = user;
    if (!c->dead && c->cfg.on_message) c->cfg.on_message(c, c->cfg.user, op, data, len);
}

static void cb_pong(dx_conn *conn, void *user, const uint8_t *data, size_t len) {
    dx_client *c = user;
    if (!c->dead && c->cfg.on_pong) c->cfg.on_pong(c, c->cfg.user, data, len);
}

/* The protocol reached CLOSED. The application hears of it once the
 * transport is closed too (as a browser's close event). */
static void cb_close(dx_conn *conn, void *user, uint16_t code, const uint8_t *reason,
                     size_t reason_len, int was_clean) {
    record_close(user, code, reason, reason_len, was_clean);
}

static const dx_conn_callbacks conn_callbacks = {
    .on_message = cb_message,
    .on_pong = cb_pong,
    .on_close = cb_close,
};

/* The transport ended (EOF, reset, write failure) or must be dropped. */
static void transport_gone(dx_client *c) {
    if (c->conn && dx_conn_state(c->conn) != DX_CLOSED) dx_conn_eof(c->conn, DX_CLOSE_ABNORMAL);
    finish(c);
}

/* RFC 6455 §7.1.1: after the closing handshake the server closes TCP
 * first; we wait for its EOF a little, then close anyway. After a failure
 * of ours we also shut our side down, so the server sees the end at once. */
static void start_linger(dx_client *c) {
    c->phase = P_LINGER;
    dx_timer_start(c->loop, &c->timer, DX_CLIENT_LINGER_MS);
}

static void linger_flushed(dx_client *c) {
    if (c->was_clean) return;
    dx_sock_shutdown(c->fd, c->tls);
}

/* Writes what the protocol queued. Returns 0, or -1 when the transport
 * failed and the client has finished. */
static int flush(dx_client *c) {
    if (!c->conn || c->fd < 0) return 0;
    c->tls_want = 0;
    size_t before = dx_conn_buffered(c->conn);
    for (;;) {
        struct iovec iov[IOV_BATCH];
        int n = dx_conn_out_iov(c->conn, iov, IOV_BATCH);
        if (n == 0) break;
        size_t total = 0;
        for (int i = 0; i < n; i++)
            total += iov[i].iov_len;
        int64_t w = dx_sock_writev(c->fd, c->tls, iov, n, &c->tls_want);
        if (w == DX_EBUSY) break;
        if (w < 0) {
            if (c->phase == P_OPEN && !report(c, (int)w, "write: %s", dx_sock_why(c->tls, w)))
                return -1;
            transport_gone(c);
            return -1;
        }
        dx_conn_out_consume(c->conn, (size_t)w);
        if ((size_t)w < total) break;
    }
    if (c->phase == P_LINGER && before && !dx_conn_buffered(c->conn)) linger_flushed(c);
    update_io(c);
    return 0;
}

/* After bytes went into the protocol: react to a close, write what it
 * queued. */
static void after_recv(dx_client *c) {
    if (c->phase == P_OPEN && dx_conn_state(c->conn) == DX_CLOSED) {
        start_linger(c);
        if (!dx_conn_buffered(c->conn)) linger_flushed(c);
    }
    (void)flush(c);
}

/* Feeds received bytes. Returns 0, or -1 when the client finished or was
 * freed. */
static int feed(dx_client *c, uint8_t *buf, size_t len) {
    if (c->phase != P_OPEN) return 0; /* lingering: late bytes are dropped */
    int64_t r = dx_conn_recv(c->conn, buf, len);
    if (c->dead) return -1;
    if (r < 0 && !report(c, (int)r, "%s from the server: closing with %u", dx_strerror((int)r),
                         (unsigned)dx_error_close_code((int)r)))
        return -1;
    return 0;
}

static void read_ws(dx_client *c) {
    size_t cap;
    uint8_t *buf = dx_loop_rbuf(c->loop, &cap);
    for (int i = 0; i < READ_ROUNDS; i++) {
        int64_t n = dx_sock_read(c->fd, c->tls, buf, cap, &c->tls_want);
        if (n == DX_EBUSY) break;
        if (n <= 0) {
            if (n < 0 && c->phase == P_OPEN &&
                !report(c, (int)n, "read: %s", dx_sock_why(c->tls, n)))
                return;
            transport_gone(c);
            return;
        }
        c->last_rx = dx_loop_now(c->loop); /* any byte proves the server alive */
        if (c->ping_at) {
            /* The answer: the next ping is an interval from now. */
            c->ping_at = 0;
            hb_arm(c);
        }
        if (feed(c, buf, (size_t)n) < 0) return;
        if (!c->tls) break;
    }
    after_recv(c);
}

/* ---- heartbeat and offline queue ----------------------------------------- */

/* One timer, armed for the moment to ping (an interval after the last
 * byte received) or for the deadline of the ping in flight. Bytes arriving
 * only record the time (the timer, when it fires, sees that the ping can
 * wait); only the first read after a ping re-arms it, once per ping. */
static void hb_arm(dx_client *c) {
    uint64_t now = dx_loop_now(c->loop);
    uint64_t due =
        c->ping_at ? c->ping_at + c->cfg.ping_timeout_ms : c->last_rx + c->cfg.ping_interval_ms;
    dx_timer_start(c->loop, &c->hb_timer, due > now ? due - now : 0);
}

static void on_hb(dx_loop *loop, dx_timer *t) {
    dx_client *c = (dx_client *)((char *)t - offsetof(dx_client, hb_timer));
    /* Once closing, close_timeout_ms is what bounds the wait. */
    if (c->phase != P_OPEN || dx_conn_state(c->conn) != DX_OPEN) return;
    enter(c);
    uint64_t now = dx_loop_now(loop);
    if (c->ping_at && now >= c->ping_at + c->cfg.ping_timeout_ms) {
        /* Dead: nobody would answer a closing handshake, so drop it (1006). */
        if (report(c, DX_ETIMEDOUT, "heartbeat: nothing from the server within %u ms of a ping",
                   (unsigned)c->cfg.ping_timeout_ms))
            transport_gone(c);
    } else {
        if (!c->ping_at && now >= c->last_rx + c->cfg.ping_interval_ms) {
            /* A ping that could not be queued (no memory) still starts the
             * deadline: the timer must not spin, and silence is silence. */
            c->ping_at = now;
            if (dx_conn_ping(c->conn, NULL, 0) == 0) update_io(c);
        }
        hb_arm(c);
    }
    leave(c);
}

/* The connection just opened (before on_open): start the heartbeat, and
 * hand the offline queue to the protocol in order, so that it goes out
 * before anything on_open sends. Returns -1 when the client was freed. */
static int opened(dx_client *c) {
    c->opened = 1;
    c->opened_at = c->last_rx = dx_loop_now(c->loop);
    c->ping_at = 0;
    if (c->cfg.ping_interval_ms) hb_arm(c);
    const dx__qmsg *m;
    while ((m = dx__queue_peek(&c->queue))) {
        int rc = dx_conn_send(c->conn, (enum dx_opcode)m->op, m->data, m->len);
        if (rc < 0) {
            /* Kept for the next connection: report and carry on. */
            if (!report(c, rc, "offline queue: %s (%zu messages kept)", dx_strerror(rc),
                        c->queue.count))
                return -1;
            break;
        }
        dx__queue_pop(&c->queue);
    }
    update_io(c);
    return 0;
}

/* ---- the opening handshake ------------------------------------------------ */

static int build_request(dx_client *c) {
    int rc = dx_handshake_client_key(c->key);
    if (rc) return rc;
    const dx__client_own *o = &c->own;
    char offer[160]; /* permessage-deflate, when enabled */
    const char *ext = NULL;
    if (c->cfg.deflate.enable) {
        rc = dx_deflate_offer(&c->cfg.deflate, offer, sizeof offer);
        if (rc < 0) return rc;
        ext = offer;
    }
    size_t cap = 256 + sizeof offer + strlen(c->url.host_header) + strlen(c->url.target) +
                 (o->protocols ? strlen(o->protocols) : 0) + (o->origin ? strlen(o->origin) : 0) +
                 (o->headers ? strlen(o->headers) : 0);
    c->req = dx__malloc(cap);
    if (!c->req) return DX_ENOMEM;
    rc = dx_handshake_write_request(c->req, cap, c->url.host_header, c->url.target, c->key,
                                    o->protocols, ext, o->origin, o->headers);
    if (rc < 0) return rc;
    c->req_len = (size_t)rc;
    c->req_off = 0;
    return 0;
}

static void open_ws(dx_client *c, size_t head_len, const dx_http_response *res) {
    const char *why = NULL, *proto = NULL, *ext = NULL;
    size_t proto_len = 0, ext_len = 0;
    if (res->status != 101) {
        fail(c, DX_EHANDSHAKE, "handshake: unexpected status %d %.*s", res->status,
             (int)(res->reason_len > 64 ? 64 : res->reason_len), res->reason);
        return;
    }
    if (dx_handshake_verify(res, c->key, c->own.protocols, c->cfg.deflate.enable, &proto,
                            &proto_len, &ext, &ext_len, &why) < 0) {
        fail(c, DX_EHANDSHAKE, "handshake: %s", why ? why : "invalid answer");
        return;
    }
    /* An extension in the answer can only be our permessage-deflate offer,
     * accepted as offered (RFC 7692 §5: anything else fails the connection). */
    dx_deflate_params agreed = {0}; /* filled by dx_deflate_verify when ext */
    if (ext && dx_deflate_verify(&c->cfg.deflate, ext, ext_len, &agreed, &why) < 0) {
        fail(c, DX_EHANDSHAKE, "handshake: %s", why ? why : "invalid extension answer");
        return;
    }
    dx_conn_config cc = {
        .role = DX_ROLE_CLIENT,
        .max_message = c->cfg.max_message,
        .cb = &conn_callbacks,
        .user = c,
    };
    c->conn = dx_conn_new(&cc, 0);
    if (proto && proto_len) {
        c->protocol = dx__strndup(proto, proto_len);
        if (!c->protocol) c->protocol = (char *)empty;
    }
    if (ext && c->conn) {
        c->extensions = dx__strndup(ext, ext_len);
        if (!c->extensions) c->extensions = (char *)empty;
    }
    if (!c->conn || (c->protocol == empty && proto_len) || (ext && c->extensions == empty) ||
        (ext && dx_conn_set_deflate(c->conn, &agreed, &c->cfg.deflate) < 0)) {
        fail(c, DX_ENOMEM, "out of memory");
        return;
    }
    dx_conn_open(c->conn);
    dx__free(c->req);
    c->req = NULL;
    dx_timer_stop(c->loop, &c->timer);
    c->phase = P_OPEN;
    if (opened(c) < 0) return;
    if (c->cfg.on_open) {
        c->cfg.on_open(c, c->cfg.user);
        if (c->dead) return;
    }
    /* Frames may have come with the 101: they belong to the protocol now. */
    if (c->phase == P_OPEN && c->resp_len > head_len &&
        feed(c, (uint8_t *)c->resp + head_len, c->resp_len - head_len) < 0)
        return;
    dx__free(c->resp);
    c->resp = NULL;
    c->resp_len = 0;
    if (c->phase != P_OPEN) return;
    /* Under TLS more may already sit decrypted inside OpenSSL, where the
     * socket's readiness would never show it. */
    read_ws(c);
}

static void read_response(dx_client *c) {
    for (;;) {
        int64_t n = dx_sock_read(c->fd, c->tls, c->resp + c->resp_len,
                                 DX_CLIENT_MAX_RESPONSE - c->resp_len, &c->tls_want);
        if (n == DX_EBUSY) {
            update_io(c);
            return;
        }
        if (n == 0) {
            fail(c, DX_EHANDSHAKE, "handshake: connection closed by the server before its answer");
            return;
        }
        if (n < 0) {
            fail(c, (int)n, "handshake: read: %s", dx_sock_why(c->tls, n));
            return;
        }
        c->resp_len += (size_t)n;
        dx_http_header headers[DX_CLIENT_MAX_HEADERS];
        dx_http_response res = {.headers = headers, .num_headers = DX_CLIENT_MAX_HEADERS};
        int r = dx_http_parse_response(c->resp, c->resp_len, DX_CLIENT_MAX_RESPONSE, &res);
        if (r == DX_EHTTP) {
            fail(c, DX_EHANDSHAKE, "handshake: malformed HTTP answer");
            return;
        }
        if (r < 0) {
            fail(c, DX_EHANDSHAKE, "handshake: answer head too large (over %d bytes or %d headers)",
                 DX_CLIENT_MAX_RESPONSE, DX_CLIENT_MAX_HEADERS);
            return;
        }
        if (r > 0) {
            open_ws(c, (size_t)r, &res);
            return;
        }
    }
}

static void write_request(dx_client *c) {
    while (c->req_off < c->req_len) {
        struct iovec iov = {c->req + c->req_off, c->req_len - c->req_off};
        int64_t w = dx_sock_writev(c->fd, c->tls, &iov, 1, &c->tls_want);
        if (w == DX_EBUSY) break;
        if (w < 0) {
            fail(c, (int)w, "handshake: write: %s", dx_sock_why(c->tls, w));
            return;
        }
        c->req_off += (size_t)w;
    }
    update_io(c);
}

static void start_upgrade(dx_client *c) {
    int rc = build_request(c);
    if (rc < 0) {
        fail(c, rc, "handshake: cannot build the request: %s", dx_strerror(rc));
        return;
    }
    c->resp = dx__malloc(DX_CLIENT_MAX_RESPONSE);
    if (!c->resp) {
        fail(c, DX_ENOMEM, "out of memory");
        return;
    }
    c->resp_len = 0;
    c->phase = P_UPGRADE;
    c->tls_want = 0;
    write_request(c);
    /* Under TLS the answer may already be inside OpenSSL. */
    if (c->phase == P_UPGRADE && !c->dead && c->tls) read_response(c);
}

static void do_tls(dx_client *c) {
    unsigned want = 0;
    const char *why = NULL;
    int r = dx_tls_handshake(c->tls, &want, &why);
    if (r < 0) {
        fail(c, DX_ETLS, "%s", why ? why : "TLS handshake failed");
        return;
    }
    if (r == 0) {
        c->tls_want = want & (DX_IO_READ | DX_IO_WRITE);
        update_io(c);
        return;
    }
    start_upgrade(c);
}

/* ---- resolve and connect --------------------------------------------------- */

static void try_connect(dx_client *c);

/* Every address of the host, in the resolver's order (so "localhost" that
 * gives ::1 first still reaches a server listening on 127.0.0.1 only). */
static void take_addrs(dx_client *c, const struct addrinfo *res) {
    c->naddrs = 0;
    for (const struct addrinfo *ai = res; ai && c->naddrs < MAX_ADDRS; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof c->addrs[0].ss) continue;
        dx_addr *a = &c->addrs[c->naddrs++];
        memset(a, 0, sizeof *a);
        memcpy(&a->ss, ai->ai_addr, ai->ai_addrlen);
        a->len = ai->ai_addrlen;
    }
    if (c->naddrs == 0) {
        fail(c, DX_EADDR, "cannot resolve host '%s': no address", c->url.host);
        return;
    }
    c->addr_i = 0;
    try_connect(c);
}

static void resolve_failed(dx_client *c, int rc, int e) {
    fail(c, DX_EADDR, "cannot resolve host '%s': %s", c->url.host,
         rc == EAI_SYSTEM ? strerror(e) : gai_strerror(rc));
}

static void on_resolved(void *ctx, int rc, int e, const struct addrinfo *res) {
    dx_client *c = ctx;
    c->rs = NULL; /* the request ends with this call */
    enter(c);
    if (rc)
        resolve_failed(c, rc, e);
    else
        take_addrs(c, res);
    leave(c);
}

/* An address literal is taken at once; a name goes to a helper thread
 * (io/dns.h), the connect deadline running meanwhile. */
static void resolve(dx_client *c) {
    char port[8];
    snprintf(port, sizeof port, "%d", c->url.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_NUMERICHOST};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(c->url.host, port, &hints, &res);
    if (rc == 0) {
        take_addrs(c, res);
        freeaddrinfo(res);
        return;
    }
    if (rc != EAI_NONAME) {
        resolve_failed(c, rc, errno);
        return;
    }
    c->rs = dx__dns_start(c->loop, c->url.host, c->url.port, on_resolved, c);
    if (!c->rs) {
        fail(c, DX_ENOMEM, "cannot resolve host '%s': %s", c->url.host, strerror(errno));
        return;
    }
    c->phase = P_RESOLVE;
    uint64_t now = dx_loop_now(c->loop);
    dx_timer_start(c->loop, &c->timer, c->deadline > now ? c->deadline - now : 0);
}

static void connect_failed(dx_client *c, int err, int e) {
    if (err == DX_ECONNREFUSED)
        snprintf(c->msg, sizeof c->msg, "connection refused");
    else
        snprintf(c->msg, sizeof c->msg, "connect: %s", strerror(e ? e : EIO));
}

/* Tries the addresses from addr_i on; each failure moves to the next, all
 * within one connect deadline. */
static void try_connect(dx_client *c) {
    int err = DX_EIO;
    for (; c->addr_i < c->naddrs; c->addr_i++) {
        int fd = dx__connect(&c->addrs[c->addr_i]);
        if (fd < 0) {
            err = fd;
            connect_failed(c, err, errno);
            continue;
        }
        if (dx_io_start(c->loop, &c->io, fd, DX_IO_WRITE, on_io) < 0) {
            err = DX_EIO;
            connect_failed(c, err, errno);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->phase = P_CONNECT;
        uint64_t now = dx_loop_now(c->loop);
        dx_timer_start(c->loop, &c->timer, c->deadline > now ? c->deadline - now : 0);
        return;
    }
    char why[sizeof c->msg];
    memcpy(why, c->msg, sizeof why);
    fail(c, err, "%s", why);
}

static void connected(dx_client *c) {
    int r = dx__connect_result(c->fd);
    if (r == DX_EBUSY) return;
    if (r < 0) {
        connect_failed(c, r, errno);
        dx_io_stop(c->loop, &c->io);
        close(c->fd);
        c->fd = -1;
        c->addr_i++;
        if (c->addr_i < c->naddrs && dx_loop_now(c->loop) < c->deadline) {
            try_connect(c);
        } else {
            char why[sizeof c->msg];
            memcpy(why, c->msg, sizeof why);
            fail(c, r, "%s", why);
        }
        return;
    }
    dx_timer_start(c->loop, &c->timer, c->cfg.handshake_timeout_ms);
    if (!c->url.secure) {
        start_upgrade(c);
        return;
    }
    c->tls = dx_tls_new(c->tls_ctx, c->fd, 0, c->url.host);
    if (!c->tls) {
        fail(c, DX_ENOMEM, "TLS: out of memory");
        return;
    }
    c->phase = P_TLS;
    do_tls(c);
}

static void start(dx_client *c) {
    if (c->own.err) {
        c->fatal = 1; /* the same config would fail again */
        fail(c, c->own.err, "%s", c->own.why);
        return;
    }
    if (c->url.secure && !c->tls_ctx) {
        const char *why = NULL;
        c->tls_ctx = dx_tls_client_ctx(c->cfg.insecure, c->cfg.ca_file, &why);
        if (!c->tls_ctx) {
            fail(c, DX_ETLS, "%s", why ? why : "TLS: cannot create a context");
            return;
        }
    }
    c->deadline = dx_loop_now(c->loop) + c->cfg.connect_timeout_ms;
    resolve(c);
}

/* ---- attempts -------------------------------------------------------------------- */

/* An attempt starts (the first, or a reconnect): on_connecting, then the
 * work. */
static void begin(dx_client *c) {
    if (c->cfg.on_connecting && !c->own.err) {
        c->cfg.on_connecting(c, c->cfg.user, dx_client_url(c), c->attempt);
        if (c->dead || c->phase != P_START) return; /* freed or closed */
    }
    start(c);
}

/* The wait is over: the next URL of the list, a fresh connection state. */
static void next_attempt(dx_client *c) {
    size_t n = 1 + c->own.nurls;
    c->url_i = (c->url_i + 1) % n;
    const char *u = c->url_i ? c->own.urls[c->url_i - 1] : c->own.url, *why = NULL;
    int rc = 0;
    if (n > 1) {
        dx_url_free(&c->url);
        rc = dx_url_parse(u, strlen(u), &c->url, &why);
    }
    if (c->protocol != empty) dx__free(c->protocol);
    if (c->extensions != empty) dx__free(c->extensions);
    c->protocol = c->extensions = (char *)empty;
    c->opened = 0;
    c->tls_want = 0;
    record_close(c, DX_CLOSE_ABNORMAL, NULL, 0, 0);
    c->phase = P_START;
    if (rc < 0) {
        /* Checked at creation, so only ENOMEM is left: the attempt is
         * announced all the same, then fails like any other. */
        if (c->cfg.on_connecting) {
            c->cfg.on_connecting(c, c->cfg.user, u, c->attempt);
            if (c->dead || c->phase != P_START) return;
        }
        fail(c, rc, "invalid URL '%.100s': %s", u, why ? why : dx_strerror(rc));
        return;
    }
    begin(c);
}

/* The policy and the queue from the config (defaults for zeros), and every
 * failover URL checked now, so that a typo fails at once, not hours later. */
static int init_resilience(dx_client *c) {
    dx_client_config *g = &c->cfg;
    if (g->ping_interval_ms && !g->ping_timeout_ms) g->ping_timeout_ms = g->ping_interval_ms;
    dx__backoff *b = &c->retry.backoff;
    b->base_ms = g->reconnect_base_ms ? g->reconnect_base_ms : DX_CLIENT_RECONNECT_BASE_MS;
    b->max_ms = g->reconnect_max_ms ? g->reconnect_max_ms : DX_CLIENT_RECONNECT_MAX_MS;
    double f = g->reconnect_factor, j = g->reconnect_jitter;
    b->factor = f == 0 ? 2.0 : f >= 1 ? f : 1.0;
    b->jitter = j == 0 ? 1.0 : j > 1 ? 1.0 : j > 0 ? j : 0.0;
    c->retry.max_retries = g->max_retries;
    c->retry.stable_ms = g->stable_ms ? g->stable_ms : DX_CLIENT_STABLE_MS;
    c->retry.final_codes = c->own.final_codes;
    c->retry.num_final = c->own.nfinal;
    dx__queue_init(&c->queue,
                   g->queue_max_messages ? g->queue_max_messages : DX_CLIENT_QUEUE_MESSAGES,
                   g->queue_max_bytes ? g->queue_max_bytes : DX_CLIENT_QUEUE_BYTES,
                   g->queue_policy == DX_QUEUE_DROP_OLDEST);
    g->urls = NULL; /* the copies are in own */
    g->final_codes = NULL;
    for (size_t i = 0; i < c->own.nurls && !c->own.err; i++) {
        dx_url u;
        const char *why = NULL;
        int rc = dx_url_parse(c->own.urls[i], strlen(c->own.urls[i]), &u, &why);
        if (rc == DX_ENOMEM) return rc;
        if (rc < 0)
            dx__client_own_error(&c->own, DX_EADDR, "invalid URL '%.100s': %s", c->own.urls[i],
                                 why);
        else
            dx_url_free(&u);
    }
    return 0;
}

/* ---- loop callbacks ---------------------------------------------------------- */

static void on_io(dx_loop *loop, dx_io *w, unsigned events) {
    dx_client *c = (dx_client *)((char *)w - offsetof(dx_client, io));
    enter(c);
    switch (c->phase) {
    case P_CONNECT:
        connected(c);
        break;
    case P_TLS:
        do_tls(c);
        break;
    case P_UPGRADE:
        if (events & DX_IO_WRITE) write_request(c);
        if (c->phase == P_UPGRADE && !c->dead && (events & (DX_IO_READ | DX_IO_ERROR)))
            read_response(c);
        break;
    case P_OPEN:
    case P_LINGER:
        if ((events & DX_IO_WRITE) && flush(c) < 0) break;
        if (c->dead || c->phase > P_LINGER) break;
        if (events & (DX_IO_READ | DX_IO_ERROR)) read_ws(c);
        break;
    default:
        break;
    }
    leave(c);
}

static void on_timer(dx_loop *loop, dx_timer *t) {
    dx_client *c = (dx_client *)((char *)t - offsetof(dx_client, timer));
    enter(c);
    switch (c->phase) {
    case P_START:
        begin(c);
        break;
    case P_WAIT:
        next_attempt(c);
        break;
    case P_RESOLVE:
        fail(c, DX_ETIMEDOUT, "cannot resolve host '%s': no answer in %u ms", c->url.host,
             (unsigned)c->cfg.connect_timeout_ms);
        break;
    case P_CONNECT:
        fail(c, DX_ETIMEDOUT, "connect timed out after %u ms", (unsigned)c->cfg.connect_timeout_ms);
        break;
    case P_TLS:
    case P_UPGRADE:
        fail(c, DX_ETIMEDOUT, "handshake timed out after %u ms",
             (unsigned)c->cfg.handshake_timeout_ms);
        break;
    case P_OPEN: /* our close got no answer */
        if (report(c, DX_ETIMEDOUT, "close timed out: no answer from the server in %u ms",
                   (unsigned)c->cfg.close_timeout_ms))
            transport_gone(c);
        break;
    case P_LINGER:
    case P_ENDING:
        finish(c);
        break;
    default:
        break;
    }
    leave(c);
}

/* ---- the API -------------------------------------------------------------------- */

dx_client *dx_client_new(dx_loop *loop, const dx_client_config *cfg) {
    if (!loop || !cfg || !cfg->url) return NULL;
    dx_client *c = dx__calloc(1, sizeof *c);
    if (!c) return NULL;
    c->loop = loop;
    c->fd = -1;
    c->io.fd = -1;
    c->protocol = (char *)empty;
    c->extensions = (char *)empty;
    dx_timer_init(&c->timer, on_timer);
    dx_timer_init(&c->hb_timer, on_hb);
    if (dx__client_own_init(&c->own, cfg) < 0) {
        dx__client_own_free(&c->own);
        dx__free(c);
        return NULL;
    }
    c->cfg = *cfg;
    c->cfg.url = c->own.url;
    c->cfg.origin = c->own.origin;
    c->cfg.ca_file = c->own.ca_file;
    c->cfg.headers = NULL;
    c->cfg.protocols = NULL;
    if (!c->cfg.connect_timeout_ms) c->cfg.connect_timeout_ms = DX_CLIENT_CONNECT_TIMEOUT_MS;
    if (!c->cfg.handshake_timeout_ms) c->cfg.handshake_timeout_ms = DX_CLIENT_HANDSHAKE_TIMEOUT_MS;
    if (!c->cfg.close_timeout_ms) c->cfg.close_timeout_ms = DX_CLIENT_CLOSE_TIMEOUT_MS;
    if (!c->own.err) {
        const char *why = NULL;
        int rc = dx_url_parse(cfg->url, strlen(cfg->url), &c->url, &why);
        if (rc == DX_ENOMEM) {
            destroy(c);
            return NULL;
        }
        if (rc < 0) dx__client_own_error(&c->own, DX_EADDR, "invalid URL: %s", why);
    }
    if (init_resilience(c) < 0) {
        destroy(c);
        return NULL;
    }
    c->phase = P_START;
    dx_timer_start(loop, &c->timer, 0);
    return c;
}

void dx_client_free(dx_client *c) {
    if (!c) return;
    if (c->depth) {
        /* Inside one of its callbacks: nothing more may happen, and the
         * memory goes when the outermost callback returns. */
        c->dead = 1;
        dx_io_stop(c->loop, &c->io);
        dx_timer_stop(c->loop, &c->timer);
        return; /* buffers may be in use up the stack: destroy() frees them */
    }
    destroy(c);
}

/* The offline queue takes messages while not OPEN, until the end. */
static int queue_open(const dx_client *c) {
    return c->cfg.reconnect && c->cfg.queue_policy != DX_QUEUE_OFF && !c->app_closed && !c->fatal &&
           c->phase != P_CLOSED;
}

static int client_send(dx_client *c, enum dx_opcode op, const void *data, size_t len) {
    if (!c) return DX_EINVAL;
    if (c->dead) return DX_ESTATE;
    if (c->phase != P_OPEN || dx_conn_state(c->conn) != DX_OPEN)
        return queue_open(c) ? dx__queue_push(&c->queue, op, data, len) : DX_ESTATE;
    int rc = dx_conn_send(c->conn, op, data, len);
    if (rc == 0) update_io(c);
    return rc;
}

int dx_client_send_text(dx_client *c, const char *data, size_t len) {
    if (!data && len) return DX_EINVAL;
    if (len && dx_utf8_valid((const uint8_t *)data, len) < 0) return DX_EUTF8;
    return client_send(c, DX_OP_TEXT, data, len);
}

int dx_client_send_binary(dx_client *c, const void *data, size_t len) {
    if (!data && len) return DX_EINVAL;
    return client_send(c, DX_OP_BINARY, data, len);
}

int dx_client_ping(dx_client *c, const void *data, size_t len) {
    if (!c || (!data && len)) return DX_EINVAL;
    if (len > 125) return DX_EINVAL;
    if (c->dead || c->phase != P_OPEN || dx_conn_state(c->conn) != DX_OPEN) return DX_ESTATE;
    int rc = dx_conn_ping(c->conn, data, len);
    if (rc == 0) update_io(c);
    return rc;
}

int dx_client_close(dx_client *c, unsigned code, const char *reason) {
    if (!c) return DX_EINVAL;
    if (code != 0 && code != DX_CLOSE_NORMAL && (code < 3000 || code > 4999)) return DX_EINVAL;
    size_t rlen = reason ? strlen(reason) : 0;
    if (rlen > 123 || (rlen && dx_utf8_valid((const uint8_t *)reason, rlen) < 0)) return DX_EINVAL;
    if (code == 0 && rlen) code = DX_CLOSE_NORMAL;
    if (c->dead) return 0;
    if (c->phase != P_CLOSED) {
        c->app_closed = 1; /* for good: no reconnect follows */
        dx__queue_clear(&c->queue);
    }
    switch (c->phase) {
    case P_START:
    case P_RESOLVE:
    case P_CONNECT:
    case P_TLS:
    case P_UPGRADE:
    case P_WAIT:
        /* Abandon the attempt; on_close on the next turn, never inside
         * this call. */
        drop_transport(c);
        record_close(c, DX_CLOSE_ABNORMAL, NULL, 0, 0);
        c->phase = P_ENDING;
        dx_timer_start(c->loop, &c->timer, 0);
        return 0;
    case P_OPEN:
        if (dx_conn_state(c->conn) != DX_OPEN) return 0;
        if (dx_conn_close(c->conn, code, reason, rlen) == 0) {
            dx_timer_start(c->loop, &c->timer, c->cfg.close_timeout_ms);
            update_io(c);
        }
        return 0;
    default:
        return 0;
    }
}

enum dx_ready_state dx_client_ready_state(const dx_client *c) {
    switch (c->phase) {
    case P_START:
    case P_RESOLVE:
    case P_CONNECT:
    case P_TLS:
    case P_UPGRADE:
        return DX_CONNECTING;
    case P_OPEN:
        return dx_conn_state(c->conn) == DX_OPEN ? DX_OPEN : DX_CLOSING;
    case P_LINGER:
    case P_ENDING:
        return DX_CLOSING;
    case P_WAIT:
        return DX_CONNECTING;
    default:
        return DX_CLOSED;
    }
}

size_t dx_client_buffered_amount(const dx_client *c) {
    return (c->conn ? dx_conn_buffered(c->conn) : 0) + c->queue.bytes;
}

int dx_client_reconnect(dx_client *c) {
    if (!c || c->dead || c->phase != P_WAIT) return DX_ESTATE;
    c->wait_delay = 0;
    dx_timer_start(c->loop, &c->timer, 0); /* restarting the one timer: one attempt */
    return 0;
}

const char *dx_client_protocol(const dx_client *c) {
    return c->protocol;
}

const char *dx_client_extensions(const dx_client *c) {
    return c->extensions;
}

const char *dx_client_url(const dx_client *c) {
    return c->url.href ? c->url.href : c->own.url;
}

dx_loop *dx_client_loop(const dx_client *c) {
    return c->loop;
}

void *dx_client_user(const dx_client *c) {
    return c->cfg.user;
}

/* One connection's I/O: reads through the loop's shared buffer, corked
 * writes from the protocol's output queue, and the way down (flush, shut
 * down, linger for the peer's EOF, close). Below HTTP, the topics and the
 * sessions: it reaches them only through srv->hooks (sconn.h). */
#include <errno.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <duplex/sock.h>

#include "core/alloc.h"
#include "io/loopstats.h"
#include "io/net.h"
#include "io/uring.h"
#include "server/lists.h"
#include "server/partial.h"
#include "server/sconn.h"

#define IOV_MAX_BATCH 64

/* ---- the HTTP state's memory ------------------------------------------------ */

dx__http *dx__http_of(dx_server_conn *c) {
    if (!c->u.http) {
        c->u.http = dx__calloc(1, sizeof *c->u.http);
        if (c->u.http) c->u.http->file_fd = -1;
    }
    return c->u.http;
}

void dx__http_free(dx__http *h) {
    if (!h) return;
    dx__free(h->in);
    dx__free(h->out);
    if (h->file_fd >= 0) close(h->file_fd);
    dx__free(h);
}

/* A kept-alive answer is all out: back to reading a request (P_HTTP). */
static void next_request(dx_server_conn *c) {
    /* As a fresh connection: no HTTP state until bytes come, and the
     * handshake timeout bounds how long it may wait for them. Bytes of a
     * next request already sent wait in the socket (P_RESP reads none). */
    dx__http_free(sc_http(c));
    c->u.http = NULL;
    c->phase = P_HTTP;
    c->flags &= (uint16_t)~F_HEAD;
    c->t_mark = dx__srv_now(c->srv);
    dx__sc_update(c);
}

/* ---- protocol callbacks --------------------------------------------------- */

static dx_server_conn *sc_of(dx_conn *conn) {
    return dx_conn_extra(conn);
}

static void cb_message(dx_conn *conn, void *user, enum dx_opcode op, uint8_t *data, size_t len) {
    dx_server_conn *c = sc_of(conn);
    dx_server *s = c->srv;
    s->st.msgs_in[dx__op_slot(op)]++;
    s->st.bytes_in[dx__op_slot(op)] += len;
    if (s->cfg.app_heartbeat && op == DX_OP_TEXT && len == 4 && !memcmp(data, "ping", 4)) {
        if (dx_conn_send(conn, DX_OP_TEXT, "pong", 4) == 0) dx__sc_queued(c);
        return;
    }
    if (s->cfg.on_message) s->cfg.on_message(c, user, op, data, len);
}

static void cb_pong(dx_conn *conn, void *user, const uint8_t *data, size_t len) {
    dx_server_conn *c = sc_of(conn);
    c->srv->st.pongs_in++;
    if (c->srv->cfg.on_pong) c->srv->cfg.on_pong(c, user, data, len);
}

/* The protocol reached CLOSED (closing handshake done, failure, or
 * dx_conn_eof from a kill). The transport is flushed and closed after. */
static void cb_close(dx_conn *conn, void *user, uint16_t code, const uint8_t *reason,
                     size_t reason_len, int was_clean) {
    dx_server_conn *c = sc_of(conn);
    dx_server *s = c->srv;
    if (c->phase == P_WS) {
        if (c->u.subs) s->hooks.drop_subs(c);
        if (c->flags & F_SESS) s->st.sessions_open--; /* the gauge, with open_count */
        dx__srv_move(c, &s->other);
        c->phase = P_DRAIN;
        c->t_mark = dx__srv_now(s);
        dx__sc_unpause(c);
        c->flags &= (uint16_t)~F_PING;
        dx__sc_mark(c);
    }
    if (c->flags & F_OPENED) s->st.closed[dx__close_slot(code)]++;
    if ((c->flags & F_OPENED) && s->cfg.on_close) {
        c->flags &= (uint16_t)~F_OPENED;
        s->cfg.on_close(c, user, code, reason, reason_len, was_clean);
    }
    dx__srv_check_done(s);
}

const dx_conn_callbacks dx__sc_callbacks = {
    .on_message = cb_message,
    .on_pong = cb_pong,
    .on_close = cb_close,
};

/* ---- life ----------------------------------------------------------------- */

dx_server_conn *dx__sc_alloc(dx_server *s) {
    dx_conn_config cc = {
        .role = DX_ROLE_SERVER,
        .max_message = s->cfg.max_message,
        .cb = &dx__sc_callbacks,
        .user = s->cfg.user,
    };
    size_t extra =
        s->cfg.conn_data_size ? s->data_offset + s->cfg.conn_data_size : sizeof(dx_server_conn);
    dx_conn *conn = dx_conn_new(&cc, extra);
    if (!conn) return NULL;
    dx_server_conn *c = dx_conn_extra(conn);
    c->srv = s;
    c->t_rx = c->t_mark = dx__srv_now(s);
    c->phase = P_HTTP;
    return c;
}

void dx__sc_link(dx_server_conn *c) {
    dx_server *s = c->srv;
    c->next = s->other;
    if (s->other) s->other->prev = c;
    s->other = c;
}

dx_server_conn *dx__sc_new(dx_server *s, int fd) {
    dx_server_conn *c = dx__sc_alloc(s);
    if (!c) return NULL;
    dx_conn *conn = sc_conn(c);
    if (s->tls) {
        c->tls = dx_tls_new(s->tls, fd, 1, NULL);
        if (!c->tls) {
            dx_conn_free(conn);
            return NULL;
        }
        c->phase = P_TLS;
    }
    if (dx_io_start(s->loop, &c->io, fd, DX_IO_READ, dx__sc_io) < 0) {
        if (c->tls) dx_tls_free(c->tls);
        dx_conn_free(conn);
        return NULL;
    }
    dx__sc_link(c);
    return c;
}

void dx__sc_update(dx_server_conn *c) {
    if (c->flags & F_SESS) return; /* no socket */
    unsigned ev = 0;
    switch (c->phase) {
    case P_TLS:
    case P_HTTP:
    case P_STREAM: /* the peer's EOF ends a down request */
    case P_LINGER:
        ev = DX_IO_READ;
        break;
    case P_WS:
    case P_DRAIN:
        if (!(c->flags & F_PAUSED)) ev = DX_IO_READ;
        break;
    case P_RESP:
        /* An answer on a kept connection (a session's POSTs and polls):
         * reading stays as it was, since the next request is read as soon
         * as this answer is out, usually in this same turn. Turning it off
         * and on again cost two epoll_ctl calls per request; a request
         * that comes before the answer is out turns it off then
         * (read_some). */
        if (c->u.http && c->u.http->keep) ev = c->io.events & DX_IO_READ;
        break;
    default:
        break;
    }
    if (c->flags & F_URING) {
        /* Sends finish by themselves: only receiving is switched. */
        if (dx__uring_recv(dx__loop_uring(c->srv->loop, 0), c->uslot, (ev & DX_IO_READ) != 0) < 0)
            dx__sc_kill(c, DX_CLOSE_ABNORMAL);
        return;
    }
    dx__http *h = sc_http(c);
    int pending = dx_conn_buffered(sc_conn(c)) > 0 || (c->flags & F_101) ||
                  (h && (h->out_off < h->out_len || h->file_fd >= 0));
    /* Output that a flush pass will write (F_DIRTY) needs no writability
     * yet: that pass asks for it if the socket does not take it all.
     * Asking now cost a request two epoll_ctl calls (on, then off after
     * the write) for nothing; one already asked for stays. */
    if (pending && (c->flags & F_DIRTY) && !(c->io.events & DX_IO_WRITE)) pending = 0;
    if (pending || (c->flags & F_TLS_WANT_W)) ev |= DX_IO_WRITE;
    (void)dx_io_update(c->srv->loop, &c->io, ev);
}

/* Drops the transport at once. A WebSocket still open is reported closed
 * with `code` (1006 for a dead peer or a reset). */
void dx__sc_kill(dx_server_conn *c, uint16_t code) {
    if (c->phase == P_DEAD) return;
    dx_server *s = c->srv;
    dx_conn *conn = sc_conn(c);
    if (c->flags & F_URING) {
        /* First, while the queue is intact: a send in flight reads it. */
        dx__uring_detach(dx__loop_uring(s->loop, 0), c->uslot);
        c->flags &= (uint16_t)~F_URING;
        s->st.uring_open--;
    }
    dx__partial_forget(c); /* before dx_conn_eof frees its partial message */
    if (dx_conn_state(conn) != DX_CLOSED && dx_conn_state(conn) != DX_CONNECTING)
        dx_conn_eof(conn, code ? code : DX_CLOSE_ABNORMAL); /* runs cb_close */
    if (c->phase == P_WS && c->u.subs) s->hooks.drop_subs(c);
    if (c->flags & F_101) dx__sc_drop_101(c);
    if ((c->flags & F_SESS) || c->phase == P_STREAM) s->hooks.sess_kill(c); /* after on_close */
    int fd = c->io.fd;
    dx_io_stop(s->loop, &c->io);
    if (c->tls && !(c->flags & F_SESS)) {
        dx_tls_free(c->tls);
        c->tls = NULL;
    }
    if (fd >= 0) close(fd);
    c->io.fd = -1;
    dx__http_free(sc_http(c));
    c->u.http = NULL;
    dx__srv_move(c, &s->dead);
    c->phase = P_DEAD;
    dx__srv_schedule(s);
    dx__srv_check_done(s);
}

uint16_t dx__sc_drop_code(const dx_server_conn *c) {
    return c->flags & F_SLOW ? DX_CLOSE_POLICY : DX_CLOSE_ABNORMAL;
}

void dx__sc_start_close(dx_server_conn *c, unsigned code, const char *reason) {
    if (c->phase != P_WS) return;
    if (dx_conn_close(sc_conn(c), code, reason, reason ? strlen(reason) : 0) == 0) {
        c->srv->st.close_sent[dx__close_slot(code)]++;
        c->t_mark = dx__srv_now(c->srv);
        c->flags &= (uint16_t)~F_PING;
        dx__sc_mark(c);
    }
}

int dx__sc_remote(const dx_server_conn *c, char *out, size_t cap) {
    char tmp[64];
    if (c->flags & F_SESS) {
        /* No socket: the address of the request that opened the session. */
        const char *r = c->srv->hooks.sess_remote(c);
        if (!r || !r[0]) {
            if (cap) out[0] = 0;
            return DX_EIO;
        }
        memcpy(tmp, r, sizeof tmp);
    } else {
        dx_addr a;
        a.len = sizeof a.ss;
        if (c->io.fd < 0 || getpeername(c->io.fd, (struct sockaddr *)&a.ss, &a.len) < 0) {
            if (cap) out[0] = 0;
            return DX_EIO;
        }
        dx__addr_str(&a, tmp, sizeof tmp);
    }
    size_t n = strlen(tmp);
    if (cap == 0) return (int)n;
    size_t k = n < cap - 1 ? n : cap - 1;
    memcpy(out, tmp, k);
    out[k] = 0;
    return (int)n;
}

/* ---- writing ---------------------------------------------------------------- */

void dx__sc_mark(dx_server_conn *c) {
    if (c->flags & F_DIRTY) return;
    if (c->flags & F_READING) {
        /* dx__sc_io flushes this connection right after its read: no
         * flush-list entry, and no flush pass scheduled for it. */
        c->flags |= F_DIRTY | F_MARKED;
        return;
    }
    dx_server *s = c->srv;
    c->flags |= F_DIRTY;
    if (s->dirty_len == s->dirty_cap) {
        size_t cap = s->dirty_cap ? s->dirty_cap * 2 : 64;
        dx_server_conn **d = dx__realloc(s->dirty, cap * sizeof *d);
        if (d) {
            s->dirty = d;
            s->dirty_cap = cap;
        }
    }
    if (s->dirty_len < s->dirty_cap)
        s->dirty[s->dirty_len++] = c;
    else
        s->dirty_overflow = 1; /* found by its F_DIRTY flag instead */
    dx__srv_schedule(s);
}

void dx__sc_queued(dx_server_conn *c) {
    size_t b = dx_conn_buffered(sc_conn(c));
    const dx_server_config *cfg = &c->srv->cfg;
    if (b > cfg->low_water) c->flags |= F_ABOVE_LOW;
    if (b >= cfg->max_buffered / 2 && !(c->flags & F_PAUSED)) {
        c->flags |= F_PAUSED;
        c->srv->st.paused++;
        c->srv->st.paused_now++;
    }
    dx__sc_mark(c);
}

/* The transport's write, with this connection's bookkeeping. */
static int64_t sock_writev(dx_server_conn *c, const struct iovec *iov, int n) {
    unsigned want = 0;
    int64_t r = dx_sock_writev(c->io.fd, c->tls, iov, n, &want);
    if (want & DX_IO_WRITE) c->flags |= F_TLS_WANT_W;
    if (r > 0) c->srv->st.wire_out += (uint64_t)r;
    return r;
}

/* Writes now, outside the queue (a dx_conn_writer): bytes taken, 0 when
 * the socket is full, < 0 on error. */
static int64_t write_now(void *ctx, const struct iovec *iov, int n) {
    int64_t w = sock_writev(ctx, iov, n);
    return w == DX_EBUSY ? 0 : w;
}

int64_t dx__sc_write_now(dx_server_conn *c, const void *buf, size_t len) {
    struct iovec iov = {(void *)buf, len};
    return write_now(c, &iov, 1);
}

int dx__sc_send_through(dx_server_conn *c, enum dx_opcode op, const void *data, size_t len) {
    dx_conn *conn = sc_conn(c);
    int rc;
    /* Not under TLS (records are copied anyway), not behind the rest of a
     * 101, nor behind a send still on the ring, nor after a cut frame. */
    if (c->tls || (c->flags & (F_101 | F_BROKEN | F_SESS)) ||
        ((c->flags & F_URING) && dx__uring_sending(dx__loop_uring(c->srv->loop, 0), c->uslot)))
        rc = dx_conn_send(conn, op, data, len);
    else
        rc = dx_conn_send_through(conn, op, data, len, write_now, c);
    if (rc == DX_EIO) {
        /* The socket failed, or the frame is cut (its rest could not be
         * queued): the next flush drops the connection, as after any
         * failed write, rather than this send from inside the caller. */
        c->flags |= F_BROKEN;
        dx__sc_mark(c);
        return rc;
    }
    if (rc == 0 && dx_conn_buffered(conn)) dx__sc_queued(c);
    return rc;
}

/* Writes the static file body: sendfile on plain TCP, through the loop's
 * buffer under TLS. Returns 1 when done, 0 when the socket is full, < 0 on
 * error. */
static int write_file(dx_server_conn *c) {
    dx__http *h = c->u.http;
    while (h->file_off < h->file_end) {
        int64_t n;
        uint64_t left = h->file_end - h->file_off;
        if (!c->tls) {
            off_t off = (off_t)h->file_off;
            ssize_t k = sendfile(c->io.fd, h->file_fd, &off, left > (1u << 20) ? (1u << 20) : left);
            if (k < 0) return errno == EAGAIN ? 0 : DX_EIO;
            if (k == 0) return DX_EIO; /* the file shrank */
            n = k;
            c->srv->st.wire_out += (uint64_t)k;
        } else {
            size_t cap;
            uint8_t *buf = dx_loop_rbuf(c->srv->loop, &cap);
            if (cap > 16384) cap = 16384;
            if (left < cap) cap = (size_t)left;
            ssize_t k = pread(h->file_fd, buf, cap, (off_t)h->file_off);
            if (k <= 0) return DX_EIO;
            struct iovec iov = {buf, (size_t)k};
            n = sock_writev(c, &iov, 1);
            if (n == DX_EBUSY) return 0;
            if (n < 0) return (int)n;
        }
        h->file_off += (uint64_t)n;
        /* The close timeout of an answer counts from its last progress, not
         * from its start: a big file to a slow reader is not cut, a reader
         * that stopped is (server.c's sweep). */
        c->t_mark = dx__srv_now(c->srv);
    }
    close(h->file_fd);
    h->file_fd = -1;
    return 1;
}

/* Starts the last act: our side is shut down, and the peer's EOF (or the
 * close timeout) ends it. Closing at once could turn the peer's late bytes
 * into a reset that destroys our last frames in flight. */
static void start_linger(dx_server_conn *c) {
    if (c->phase == P_RESP) {
        dx__http_free(c->u.http);
        c->u.http = NULL;
    }
    dx_sock_shutdown(c->io.fd, c->tls);
    c->phase = P_LINGER;
    c->t_mark = dx__srv_now(c->srv);
}

static dx__pending101 **find_101(dx_server_conn *c) {
    dx__pending101 **pp = &c->srv->pending101;
    while (*pp && (*pp)->c != c)
        pp = &(*pp)->next;
    return pp;
}

int dx__sc_hold_101(dx_server_conn *c, const char *rest, size_t len) {
    dx__pending101 *p = dx__malloc(sizeof *p + len);
    if (!p) return DX_ENOMEM;
    p->c = c;
    p->len = len;
    p->off = 0;
    memcpy(p->data, rest, len);
    p->next = c->srv->pending101;
    c->srv->pending101 = p;
    c->flags |= F_101;
    dx__sc_mark(c);
    return 0;
}

void dx__sc_drop_101(dx_server_conn *c) {
    dx__pending101 **pp = find_101(c);
    dx__pending101 *p = *pp;
    if (p) {
        *pp = p->next;
        dx__free(p);
    }
    c->flags &= (uint16_t)~F_101;
}

static void flushed(dx_server_conn *c);

/* The two ways bytes leave a socket on the ring `u`: written now (`now`),
 * or handed to the ring, copied when small, else read from the caller's
 * memory until DX_IO_SENT. Returns the bytes the caller may drop at once
 * (written, or copied; 0 when the socket is full), or -1 once `c` is
 * killed for a failed write. */
static int64_t ring_out(dx_server_conn *c, dx__uring *u, const struct iovec *iov, int n, int now) {
    int64_t r = now ? dx__writev(c->io.fd, iov, n) : dx__uring_send(u, c->uslot, iov, n);
    if (now && r == DX_EBUSY) r = 0;
    if (r < 0) {
        dx__sc_kill(c, DX_CLOSE_ABNORMAL);
        return -1;
    }
    c->srv->st.wire_out += (uint64_t)r;
    return r;
}

/* On the ring: one send in flight at a time, a copy when small, otherwise
 * straight from the queue (its memory does not move); the completion
 * consumes what went out and sends what queued meanwhile. */
static void uring_flush(dx_server_conn *c) {
    dx__uring *u = dx__loop_uring(c->srv->loop, 0);
    if (!dx__uring_sending(u, c->uslot)) {
        struct iovec iov[IOV_MAX_BATCH];
        int n = dx_conn_out_iov(sc_conn(c), iov, IOV_MAX_BATCH);
        size_t total = 0;
        for (int i = 0; i < n; i++)
            total += iov[i].iov_len;
        if (total > DX__URING_COPY_MAX) {
            /* Large: written now, as on epoll, so that the queue's memory
             * is freed at once rather than held by every connection with
             * a send in flight (which made the heap grow and shrink, a
             * page fault per 4 KiB); only what the socket does not take
             * waits on the ring. */
            int64_t w = ring_out(c, u, iov, n, 1);
            if (w < 0) return;
            if (w > 0) {
                dx_conn_out_consume(sc_conn(c), (size_t)w);
                n = dx_conn_out_iov(sc_conn(c), iov, IOV_MAX_BATCH);
            }
        }
        int64_t r = n > 0 ? ring_out(c, u, iov, n, 0) : 0;
        if (r < 0) return;
        if (r > 0) dx_conn_out_consume(sc_conn(c), (size_t)r); /* copied: on its way */
    }
    flushed(c);
}

/* On the ring under TLS: the queue is encrypted into OpenSSL's memory
 * BIO (io/tls.h) a socket buffer's worth at a time, and the ciphertext
 * goes out as plain bytes do above: a copy when small, else written now
 * and what the socket does not take sent from the BIO's buffer, which
 * stays put until the completion. */
static void uring_flush_tls(dx_server_conn *c) {
    dx__uring *u = dx__loop_uring(c->srv->loop, 0);
    dx_conn *conn = sc_conn(c);
    while (!dx__uring_sending(u, c->uslot)) {
        struct iovec iov[IOV_MAX_BATCH];
        int n = dx_conn_out_iov(conn, iov, IOV_MAX_BATCH);
        if (n > 0) {
            unsigned want = 0;
            int64_t w = dx_tls_writev(c->tls, iov, n, &want);
            if (w < 0 && w != DX_EBUSY) {
                dx__sc_kill(c, DX_CLOSE_ABNORMAL);
                return;
            }
            if (w > 0) dx_conn_out_consume(conn, (size_t)w);
        }
        const uint8_t *p;
        size_t len = dx__tls_out(c->tls, &p);
        if (len == 0) break;
        struct iovec one = {(void *)p, len};
        if (len > DX__URING_COPY_MAX) {
            int64_t w = ring_out(c, u, &one, 1, 1);
            if (w < 0) return;
            if (w > 0) {
                dx__tls_out_consume(c->tls, (size_t)w);
                if ((size_t)w == len) continue; /* all out: encrypt more */
                one = (struct iovec){(void *)(p + w), len - (size_t)w};
            }
        }
        int64_t r = ring_out(c, u, &one, 1, 0);
        if (r < 0) return;
        if (r > 0) dx__tls_out_consume(c->tls, (size_t)r); /* copied: on its way */
    }
    flushed(c);
}

void dx__sc_flush(dx_server_conn *c) {
    if (c->phase == P_DEAD || c->phase == P_TLS) {
        if (c->phase == P_TLS) dx__sc_update(c);
        return;
    }
    if (c->flags & F_SESS) {
        c->srv->hooks.sess_flush(c); /* no socket: the down request carries the bytes */
        return;
    }
    if (c->flags & F_BROKEN) {
        dx__sc_kill(c, DX_CLOSE_ABNORMAL);
        return;
    }
    if (c->flags & F_URING) {
        if (c->tls)
            uring_flush_tls(c);
        else
            uring_flush(c);
        return;
    }
    dx_conn *conn = sc_conn(c);
    dx__http *h = sc_http(c);
    /* Bytes that go before the protocol's queue: an HTTP answer, or the
     * rest of a 101. */
    char *head_buf = NULL;
    size_t *head_off = NULL, head_len = 0;
    dx__pending101 *p101 = (c->flags & F_101) ? *find_101(c) : NULL;
    if (h) {
        head_buf = h->out;
        head_off = &h->out_off;
        head_len = h->out_len;
    } else if (p101) {
        head_buf = p101->data;
        head_off = &p101->off;
        head_len = p101->len;
    }
    c->flags &= (uint16_t)~F_TLS_WANT_W;
    for (;;) {
        struct iovec iov[IOV_MAX_BATCH];
        int n = 0;
        size_t head = 0;
        if (head_buf && *head_off < head_len) {
            head = head_len - *head_off;
            iov[n++] = (struct iovec){head_buf + *head_off, head};
        }
        n += dx_conn_out_iov(conn, iov + n, IOV_MAX_BATCH - n);
        if (n == 0) break;
        size_t total = 0;
        for (int i = 0; i < n; i++)
            total += iov[i].iov_len;
        int64_t w = sock_writev(c, iov, n);
        if (w == DX_EBUSY) break;
        if (w < 0) {
            dx__sc_kill(c, DX_CLOSE_ABNORMAL);
            return;
        }
        size_t left = (size_t)w;
        if (head) {
            size_t k = left < head ? left : head;
            *head_off += k;
            left -= k;
        }
        if (left) dx_conn_out_consume(conn, left);
        if (c->phase == P_RESP && w > 0) c->t_mark = dx__srv_now(c->srv); /* as in write_file */
        /* A short write means the socket is full; a full one of fewer
         * iovecs than the array holds means the queue is empty (no need
         * to walk it again to find out). */
        if ((size_t)w < total || n < IOV_MAX_BATCH) break;
    }
    if (p101 && p101->off >= p101->len) dx__sc_drop_101(c);
    if (h && h->out_off >= h->out_len && h->file_fd >= 0 && write_file(c) < 0) {
        dx__sc_kill(c, DX_CLOSE_ABNORMAL);
        return;
    }
    flushed(c);
}

/* After a write: the way down once everything is out, on_drain, and the
 * events to watch. */
static void flushed(dx_server_conn *c) {
    dx_conn *conn = sc_conn(c);
    dx__http *h = sc_http(c);
    /* A copied send on the ring has left the queue but not the host. */
    int pending =
        dx_conn_buffered(conn) > 0 || (c->flags & F_101) ||
        (h && (h->out_off < h->out_len || h->file_fd >= 0)) ||
        ((c->flags & F_URING) && dx__uring_sending(dx__loop_uring(c->srv->loop, 0), c->uslot));
    if (!pending && c->phase == P_RESP && h && h->keep)
        next_request(c); /* a session's request on a kept connection */
    else if (!pending && (c->phase == P_RESP || c->phase == P_DRAIN))
        start_linger(c);
    if (c->flags & (F_ABOVE_LOW | F_PAUSED)) {
        const dx_server_config *cfg = &c->srv->cfg;
        if (dx_conn_buffered(conn) <= cfg->low_water) {
            int owed = c->flags & F_ABOVE_LOW;
            dx__sc_unpause(c);
            c->flags &= (uint16_t)~F_ABOVE_LOW;
            if (owed && c->phase == P_WS && dx_conn_state(conn) == DX_OPEN && cfg->on_drain)
                cfg->on_drain(c, dx_conn_user(conn));
        }
    }
    if (c->phase != P_DEAD) dx__sc_update(c);
}

/* ---- reading ---------------------------------------------------------------- */

static void handle_eof(dx_server_conn *c) {
    /* A peer that ends a WebSocket without a close frame: 1006. */
    dx__sc_kill(c, DX_CLOSE_ABNORMAL);
}

static void tls_handshake(dx_server_conn *c) {
    unsigned want = 0;
    const char *why = NULL;
    int r = dx_tls_handshake(c->tls, &want, &why);
    if (r < 0) {
        dx__sc_kill(c, DX_CLOSE_ABNORMAL);
        return;
    }
    if (r == 0) {
        c->flags =
            (uint16_t)((c->flags & ~F_TLS_WANT_W) | ((want & DX_IO_WRITE) ? F_TLS_WANT_W : 0));
        dx__sc_update(c);
        return;
    }
    c->flags &= (uint16_t)~F_TLS_WANT_W;
    c->phase = P_HTTP;
    dx__sc_update(c);
}

/* Bytes from the peer, by phase. */
static void deliver(dx_server_conn *c, uint8_t *buf, size_t n) {
    c->t_rx = dx__srv_now(c->srv);
    c->flags &= (uint16_t)~F_PING;
    c->srv->st.wire_in += n;
    switch (c->phase) {
    case P_HTTP:
        c->srv->hooks.http_input(c, buf, n); /* request.c */
        break;
    case P_WS: {
        /* Bytes held for unfinished messages, counted per server: a read
         * that neither starts nor ends one skips the accounting. */
        size_t held = dx_conn_partial(sc_conn(c));
        c->srv->partial_in = c;
        (void)dx_conn_recv(sc_conn(c), buf, n); /* failures close it via cb_close */
        c->srv->partial_in = NULL;
        if (held || dx_conn_partial(sc_conn(c))) dx__partial_read(c, held);
        if (dx_conn_buffered(sc_conn(c))) dx__sc_queued(c);
        break;
    }
    default:
        break; /* draining or lingering: the peer's bytes are discarded */
    }
}

static void read_some(dx_server_conn *c) {
    dx_server *s = c->srv;
    size_t cap;
    uint8_t *buf = dx_loop_rbuf(s->loop, &cap);
    /* Under TLS a record may be decrypted and waiting inside OpenSSL with
     * nothing left on the socket, so read until it would block (16 reads
     * of at most a 16 KiB record). On plain TCP one read per wake-up, of
     * at most this socket's share of the turn (dx__loop_read_share): what
     * is left keeps the socket readable for the next iteration (epoll is
     * level-triggered), so a peer that writes back to back gets its share
     * like everyone else, and the timers and deferred calls run in
     * between. */
    if (!c->tls) cap = dx__loop_read_share(s->loop);
    for (int i = 0; i < 16; i++) {
        if (c->phase == P_DEAD) return;
        if ((c->phase == P_WS || c->phase == P_DRAIN) && (c->flags & F_PAUSED)) return;
        if (c->phase == P_RESP) {
            /* The next request of a kept connection, early (P_RESP above
             * left reading on): read once the answer is out. */
            (void)dx_io_update(s->loop, &c->io, c->io.events & DX_IO_WRITE);
            return;
        }
        unsigned want = 0;
        int64_t n = dx_sock_read(c->io.fd, c->tls, buf, cap, &want);
        if (want & DX_IO_WRITE) {
            c->flags |= F_TLS_WANT_W;
            dx__sc_update(c);
        }
        if (n == DX_EBUSY) return;
        if (n == 0) {
            handle_eof(c);
            return;
        }
        if (n < 0) {
            dx__sc_kill(c, DX_CLOSE_ABNORMAL);
            return;
        }
        deliver(c, buf, (size_t)n);
        if (!c->tls) return;
    }
}

/* After a read (F_READING set for it): send at once what the messages just
 * read produced (echoes, pongs): one write per read, as a plain TCP echo
 * server does, instead of waiting with every other connection for the end
 * of the iteration. The output block then goes straight back to the
 * per-thread cache, so a burst of ready connections never holds a block
 * each (which cost a malloc per message and left the heap, and RSS,
 * grown). */
static void read_done(dx_server_conn *c) {
    c->flags &= (uint16_t)~F_READING;
    if ((c->flags & F_MARKED) && c->phase != P_WS) {
        /* Not flushed below (or dead): into the flush list after all. */
        c->flags &= (uint16_t) ~(F_DIRTY | F_MARKED);
        if (c->phase != P_DEAD) dx__sc_mark(c);
    }
    if ((c->flags & F_DIRTY) && c->phase == P_WS) {
        /* A flush-list entry, if it has one, is skipped. */
        c->flags &= (uint16_t) ~(F_DIRTY | F_MARKED);
        dx__sc_flush(c);
    }
}

/* Under TLS on the ring: decrypts what dx__tls_feed lent (all of it: the
 * ring's buffer is gone after the callback) and delivers it. */
static void tls_ring_read(dx_server_conn *c) {
    size_t cap;
    uint8_t *buf = dx_loop_rbuf(c->srv->loop, &cap);
    for (;;) {
        unsigned want = 0;
        int64_t n = dx_tls_read(c->tls, buf, cap, &want);
        if (n == DX_EBUSY) break;
        if (n <= 0) {
            if (n == 0)
                handle_eof(c); /* close_notify */
            else
                dx__sc_kill(c, DX_CLOSE_ABNORMAL);
            return;
        }
        deliver(c, buf, (size_t)n);
        if (c->phase == P_DEAD) return;
    }
    dx__tls_feed(c->tls, NULL, 0);
    /* What reading wrote (a KeyUpdate's answer, an alert) goes out too. */
    const uint8_t *p;
    if (dx__tls_out(c->tls, &p) > 0) dx__sc_mark(c);
}

/* Completions of a socket on the ring. */
static void sc_uring_cb(dx_loop *loop, dx_io *w, unsigned events) {
    dx_server_conn *c = (dx_server_conn *)((char *)w - offsetof(dx_server_conn, io));
    uint8_t *data;
    int64_t n = dx__uring_got(dx__loop_uring(loop, 0), &data);
    if (events & DX_IO_SENT) {
        if (n < 0) {
            dx__sc_kill(c, DX_CLOSE_ABNORMAL);
            return;
        }
        c->srv->st.wire_out += (uint64_t)n;
        if (c->tls) {
            dx__tls_out_consume(c->tls, (size_t)n);
            uring_flush_tls(c);
        } else {
            dx_conn_out_consume(sc_conn(c), (size_t)n);
            uring_flush(c);
        }
        return;
    }
    if (n <= 0) {
        handle_eof(c); /* EOF or a reset: 1006 either way */
        return;
    }
    c->flags |= F_READING;
    if (c->tls) {
        dx__tls_feed(c->tls, data, (size_t)n);
        tls_ring_read(c);
    } else {
        deliver(c, data, (size_t)n);
    }
    read_done(c);
}

/* An open WebSocket on plain TCP leaves epoll for the loop's ring (see
 * io/uring.h), once its 101 is out. */
static void to_uring(dx_server_conn *c) {
    dx_server *s = c->srv;
    int fd = c->io.fd;
    /* Under TLS, OpenSSL works on memory from here (io/tls.h). */
    if (c->tls && dx__tls_memory(c->tls, 1) < 0) return;
    dx_io_stop(s->loop, &c->io);
    if (dx__uring_attach(dx__loop_uring(s->loop, 1), &c->io, fd, sc_uring_cb, &c->uslot) < 0) {
        s->no_uring = 1; /* no ring on this loop: stay on epoll from now on */
        if (c->tls) (void)dx__tls_memory(c->tls, 0);
        if (dx_io_start(s->loop, &c->io, fd, 0, dx__sc_io) < 0) {
            c->io.fd = fd;
            dx__sc_kill(c, DX_CLOSE_ABNORMAL);
            return;
        }
    } else {
        c->flags |= F_URING;
        s->st.uring_open++;
        if (c->tls) {
            /* A record read whole from the socket before may wait in
             * OpenSSL, decrypted. */
            c->flags |= F_READING;
            tls_ring_read(c);
            if (c->phase == P_DEAD) return;
            read_done(c);
            if (c->phase == P_DEAD) return;
        }
    }
    dx__sc_update(c);
}

void dx__sc_io(dx_loop *loop, dx_io *w, unsigned events) {
    dx_server_conn *c = (dx_server_conn *)((char *)w - offsetof(dx_server_conn, io));
    if (c->phase == P_TLS) {
        tls_handshake(c);
        if (c->phase != P_HTTP) return;
        events |= DX_IO_READ; /* the request may already be inside OpenSSL */
    }
    if (events & DX_IO_WRITE) dx__sc_flush(c);
    if (c->phase == P_DEAD) return;
    if (events & (DX_IO_READ | DX_IO_ERROR)) {
        c->flags |= F_READING;
        read_some(c);
    }
    read_done(c);
    if (c->phase == P_DEAD) return;
    if (c->tls && (c->flags & F_TLS_WANT_W)) dx__sc_update(c);
    /* Under TLS once OpenSSL has nothing left for the socket either. */
    if (c->phase == P_WS && !(c->flags & (F_101 | F_TLS_WANT_W)) && !c->srv->no_uring &&
        dx_conn_buffered(sc_conn(c)) == 0)
        to_uring(c);
}

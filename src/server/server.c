/* The server object: listener, accept, the connection lists, the coarse
 * sweep that enforces every timeout, broadcast and graceful shutdown. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <duplex/server.h>

#include "core/alloc.h"
#include "io/net.h"
#include "io/uring.h"
#include "server/handoff.h"
#include "server/lists.h"
#include "server/partial.h"
#include "server/request.h"
#include "server/sconn.h"
#include "server/session.h"
#include "server/topics.h"

static _Thread_local const char *new_why = "no error";

const char *dx_server_new_why(void) {
    return new_why;
}

static void finish_shutdown(dx_server *s) {
    if (!s->shutting || s->done_called || s->open || s->other) return;
    s->done_called = 1;
    dx_timer_stop(s->loop, &s->deadline);
    dx_timer_stop(s->loop, &s->sweep);
    if (s->done) s->done(s->loop, s->done_arg);
}

/* After the iteration's I/O callbacks: flush each connection touched once
 * (corking), then free the connections that died, since none of them can be
 * on the stack any more. A zero-delay timer rather than dx_loop_defer, so
 * that dx_server_free can cancel it. */
static void flush_list(dx_server_conn *c) {
    for (dx_server_conn *n; c; c = n) {
        n = c->next;
        if (c->flags & F_DIRTY) {
            c->flags &= (uint16_t)~F_DIRTY;
            dx__sc_flush(c);
        }
    }
}

static void on_flush(dx_loop *loop, dx_timer *t) {
    dx_server *s = (dx_server *)((char *)t - offsetof(dx_server, flush));
    /* Flushing may queue more (on_drain sends): the array can grow while
     * it is walked, hence the index. */
    for (size_t i = 0; i < s->dirty_len; i++) {
        dx_server_conn *c = s->dirty[i];
        if (!(c->flags & F_DIRTY)) continue;
        c->flags &= (uint16_t)~F_DIRTY;
        if (c->phase != P_DEAD) dx__sc_flush(c);
    }
    s->dirty_len = 0;
    if (s->dirty_overflow) {
        s->dirty_overflow = 0;
        flush_list(s->open);
        flush_list(s->other);
    }
    while (s->dead) {
        dx_server_conn *c = s->dead;
        s->dead = c->next;
        dx__sc_unpause(c); /* the gauge: a connection dropped while paused */
        dx_conn_free(sc_conn(c));
    }
    /* A mark from inside this pass restarted the timer, 1 ms out (a timer
     * restarted from a timer callback is), though the walk above flushed
     * what it marked. Left armed, it would hold back the next iteration's
     * marks, which find it active and do not schedule (lists.c): every
     * flush outside a read, such as a poll's answer, waited up to 1 ms. */
    if (!s->dirty_len && !s->dirty_overflow) dx_timer_stop(loop, &s->flush);
    finish_shutdown(s); /* last: `done` may free the server */
}

/* ---- timeouts ----------------------------------------------------------- */

static int expired(uint32_t now, uint32_t since, uint32_t limit) {
    return limit && (uint32_t)(now - since) >= limit;
}

/* An HTTP answer's close timeout counts from its last progress (sconn.c
 * sets t_mark at each write). The peer reading is progress too: a large
 * send buffer drains for seconds before the socket is writable again, so
 * the bytes the kernel still holds (SIOCOUTQ) are looked at each sweep. */
static void resp_progress(dx_server_conn *c, uint32_t now) {
    int q = 0;
    if (!c->u.http || ioctl(c->io.fd, SIOCOUTQ, &q) < 0) return;
    if (q != c->u.http->outq) {
        c->u.http->outq = q;
        c->t_mark = now;
    }
}

static void sweep_conn(dx_server *s, dx_server_conn *c, uint32_t now) {
    const dx_server_config *cfg = &s->cfg;
    if ((c->flags & F_SESS) && dx__sess_sweep(c, now)) return; /* expired */
    switch (c->phase) {
    case P_STREAM:
        dx__sess_sweep_down(c, now);
        return;
    case P_TLS:
    case P_HTTP:
        if (expired(now, c->t_mark, cfg->handshake_timeout_ms)) dx__sc_kill(c, DX_CLOSE_ABNORMAL);
        return;
    case P_RESP:
        resp_progress(c, now);
        if (expired(now, c->t_mark, cfg->close_timeout_ms)) dx__sc_kill(c, dx__sc_drop_code(c));
        return;
    case P_DRAIN:
    case P_LINGER:
        if (expired(now, c->t_mark, cfg->close_timeout_ms)) dx__sc_kill(c, dx__sc_drop_code(c));
        return;
    case P_WS:
        break;
    default:
        return;
    }
    if (dx_conn_state(sc_conn(c)) == DX_CLOSING) {
        if (expired(now, c->t_mark, cfg->close_timeout_ms)) dx__sc_kill(c, dx__sc_drop_code(c));
        return;
    }
    if (dx__partial_sweep(c, now)) return; /* a message unfinished for too long */
    if (c->flags & F_PING) {
        if (expired(now, c->t_mark, cfg->ping_timeout_ms)) dx__sc_kill(c, DX_CLOSE_ABNORMAL);
        return;
    }
    if (expired(now, c->t_rx, cfg->idle_timeout_ms)) {
        dx__sc_start_close(c, DX_CLOSE_GOING_AWAY, "idle timeout");
        return;
    }
    if (expired(now, c->t_rx, cfg->ping_interval_ms) && dx_conn_ping(sc_conn(c), NULL, 0) == 0) {
        c->flags |= F_PING;
        c->t_mark = now;
        s->st.pings_out++;
        dx__sc_queued(c);
    }
}

static void on_sweep(dx_loop *loop, dx_timer *t) {
    dx_server *s = (dx_server *)((char *)t - offsetof(dx_server, sweep));
    uint32_t now = dx__srv_now(s);
    /* A kill moves the connection to the dead list, so take `next` first. */
    for (dx_server_conn *c = s->other, *n; c; c = n) {
        n = c->next;
        sweep_conn(s, c, now);
    }
    for (dx_server_conn *c = s->open, *n; c; c = n) {
        n = c->next;
        sweep_conn(s, c, now);
    }
    dx_timer_start(loop, t, s->sweep_ms);
}

static uint32_t min_nonzero(uint32_t a, uint32_t b) {
    return !a ? b : !b ? a : a < b ? a : b;
}

/* ---- accept ------------------------------------------------------------- */

static void on_accept_pause(dx_loop *loop, dx_timer *t) {
    dx_server *s = (dx_server *)((char *)t - offsetof(dx_server, accept_pause));
    if (s->listening) (void)dx_io_update(loop, &s->lio, DX_IO_READ);
}

static void on_listen(dx_loop *loop, dx_io *w, unsigned events) {
    dx_server *s = (dx_server *)((char *)w - offsetof(dx_server, lio));
    /* A bounded batch per wake-up keeps accepting fair to established
     * connections under a connection storm. */
    for (int i = 0; i < 128 && s->listening; i++) {
        dx_addr peer;
        int fd = dx__accept(s->lio.fd, &peer);
        if (fd == DX_EBUSY) {
            if (errno == EMFILE || errno == ENFILE) {
                /* Out of descriptors: the listener stays readable, so stop
                 * watching it for a moment instead of spinning. */
                (void)dx_io_update(loop, &s->lio, 0);
                dx_timer_start(loop, &s->accept_pause, 100);
            }
            return;
        }
        if (fd < 0) return;
        s->st.accepted++;
        if (!dx__sc_new(s, fd)) close(fd);
    }
}

/* ---- the server --------------------------------------------------------- */

/* hooks.sess_remote: session.h's struct, which sconn.c does not see. */
static const char *sess_remote(const dx_server_conn *c) {
    return c->sess ? c->sess->remote : NULL;
}

dx_server *dx_server_new(dx_loop *loop, const dx_server_config *cfg) {
    static const dx_server_config zero;
    if (!cfg) cfg = &zero;
    if (!loop) {
        new_why = "no loop";
        return NULL;
    }
    if (!cfg->cert_file != !cfg->key_file) {
        new_why = "give both a certificate and a key";
        return NULL;
    }
    if (cfg->port < 0 || cfg->port > 65535) {
        new_why = "port out of range";
        return NULL;
    }
    if (cfg->deflate.enable && dx_deflate_offer(&cfg->deflate, NULL, 0) == DX_EINVAL) {
        new_why = "deflate: window bits must be 8-15 (or 0)";
        return NULL;
    }
    dx_server *s = dx__calloc(1, sizeof *s);
    if (!s) {
        new_why = "out of memory";
        return NULL;
    }
    s->loop = loop;
    s->cfg = *cfg;
    /* The connection layer (sconn.c) is below HTTP, the topics and the
     * sessions: it reaches them through these. */
    s->hooks = (dx__srv_hooks){
        .http_input = dx__req_input,
        .drop_subs = dx__topics_drop_conn,
        .sess_flush = dx__sess_flush,
        .sess_kill = dx__sess_kill,
        .sess_remote = sess_remote,
    };
    dx_server_config *c = &s->cfg;
    if (!c->max_message) c->max_message = DX_DEFAULT_MAX_MESSAGE;
    if (!c->max_header_size) c->max_header_size = 8192;
    if (!c->handshake_timeout_ms) c->handshake_timeout_ms = 10000;
    if (!c->ping_timeout_ms) c->ping_timeout_ms = c->ping_interval_ms;
    if (!c->close_timeout_ms) c->close_timeout_ms = 5000;
    if (!c->max_buffered) c->max_buffered = 1u << 20;
    if (!c->low_water) c->low_water = 16384;
    if (c->low_water > c->max_buffered / 2) c->low_water = c->max_buffered / 2;
    if (!c->backlog) c->backlog = 65535; /* listen() caps it at somaxconn */
    if (!c->max_partial_total) {
        /* Room for a few messages of the largest size at once. */
        c->max_partial_total = (size_t)64 << 20;
        if (c->max_message > SIZE_MAX / 4)
            c->max_partial_total = SIZE_MAX; /* messages without a limit: none either */
        else if (c->max_partial_total < c->max_message * 4)
            c->max_partial_total = (size_t)c->max_message * 4;
    }
    if (!c->partial_timeout_ms) c->partial_timeout_ms = 60000;
    if (!c->sessions.idle_ms) c->sessions.idle_ms = 30000;
    if (!c->sessions.poll_ms) c->sessions.poll_ms = 25000;
    c->static_dir = NULL;
    s->no_uring = c->epoll_only;
    s->lio.fd = -1;
    s->t0 = dx_loop_now(loop);
    s->data_offset = (sizeof(dx_server_conn) + alignof(max_align_t) - 1) / alignof(max_align_t) *
                     alignof(max_align_t);
    /* Where dx_conn_extra puts our state: the same for every connection,
     * so one probe tells it, and no connection stores a pointer back. */
    dx_conn_config probe_cfg = {.role = DX_ROLE_SERVER};
    dx_conn *probe = dx_conn_new(&probe_cfg, 0);
    if (!probe) {
        new_why = "out of memory";
        dx__free(s);
        return NULL;
    }
    s->conn_offset = (size_t)((char *)dx_conn_extra(probe) - (char *)probe);
    dx_conn_free(probe);
    dx_timer_init(&s->sweep, on_sweep);
    dx_timer_init(&s->accept_pause, on_accept_pause);
    dx_timer_init(&s->flush, on_flush);
    dx_timer_init(&s->deadline, NULL);

    if (cfg->static_dir) {
        s->static_root = realpath(cfg->static_dir, NULL);
        if (!s->static_root) {
            /* Name the path: it is the one thing the user has to fix. */
            static _Thread_local char why[PATH_MAX + 64];
            snprintf(why, sizeof why, "static directory %s: %s", cfg->static_dir, strerror(errno));
            new_why = why;
            dx__free(s);
            return NULL;
        }
    }
    if (cfg->cert_file) {
        const char *why = "TLS setup failed";
        s->tls = dx_tls_server_ctx(cfg->cert_file, cfg->key_file, &why);
        if (!s->tls) {
            new_why = why;
            free(s->static_root);
            dx__free(s);
            return NULL;
        }
    }
    uint32_t shortest = min_nonzero(c->handshake_timeout_ms, c->close_timeout_ms);
    shortest = min_nonzero(shortest, c->idle_timeout_ms);
    shortest = min_nonzero(shortest, c->ping_interval_ms);
    shortest = min_nonzero(shortest, c->ping_timeout_ms);
    if (c->partial_timeout_ms != UINT32_MAX)
        shortest = min_nonzero(shortest, c->partial_timeout_ms);
    if (c->sessions.enable) {
        shortest = min_nonzero(shortest, c->sessions.idle_ms);
        shortest = min_nonzero(shortest, c->sessions.poll_ms);
    }
    s->sweep_ms = shortest / 4;
    if (s->sweep_ms < 50) s->sweep_ms = 50;
    if (s->sweep_ms > 1000) s->sweep_ms = 1000;
    return s;
}

/* Starts accepting on `fd`, which the server then owns (closed on failure). */
static int listen_start(dx_server *s, int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET)
            s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            s->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    int rc = dx_io_start(s->loop, &s->lio, fd, DX_IO_READ, on_listen);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    s->listening = 1;
    if (!s->no_uring) dx__loop_want_uring(s->loop);
    dx_timer_start(s->loop, &s->sweep, s->sweep_ms);
    return 0;
}

int dx_server_listen(dx_server *s) {
    if (s->listening || s->shutting || s->lio.fd >= 0) return DX_ESTATE;
    const char *host = s->cfg.host ? s->cfg.host : "127.0.0.1";
    int fd = dx__listen(host, s->cfg.port, s->cfg.backlog, s->cfg.reuseport);
    if (fd < 0) return fd;
    return listen_start(s, fd);
}

/* One socket watched by every thread's epoll rather than one SO_REUSEPORT
 * socket per thread: the kernel lets any process of the same user join a
 * SO_REUSEPORT group, so a second server started by mistake on the same port
 * would take a share of the connections instead of failing to start. The
 * price is that every idle thread wakes for a new connection and all but one
 * find nothing to accept (EAGAIN, handled); the one that takes it is the
 * first free one, which also spreads the load by how busy threads are. */
int dx_server_listen_shared(dx_server *s, const dx_server *first) {
    if (s->listening || s->shutting || s->lio.fd >= 0) return DX_ESTATE;
    if (!first->listening || first->lio.fd < 0) return DX_ESTATE;
    /* The group is the one thing of `first` this changes (made on the
     * first join, before or on `first`'s thread: server.h). */
    if (dx__group_join(s, (dx_server *)first) < 0) return DX_ENOMEM;
    int fd = fcntl(first->lio.fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return DX_EIO;
    return listen_start(s, fd);
}

int dx_server_port(const dx_server *s) {
    return s->port;
}
dx_loop *dx_server_loop(const dx_server *s) {
    return s->loop;
}
void *dx_server_user(const dx_server *s) {
    return s->cfg.user;
}
size_t dx_server_count(const dx_server *s) {
    return s->open_count;
}
dx_server_conn *dx_server_first(const dx_server *s) {
    return s->open;
}

dx_server_conn *dx_server_next(const dx_server_conn *c) {
    /* A connection that left the open list during the iteration points into
     * another list: stop there rather than wander into it. */
    dx_server_conn *n = c->next;
    return n && n->phase == P_WS ? n : NULL;
}

static void on_deadline(dx_loop *loop, dx_timer *t) {
    dx_server *s = (dx_server *)((char *)t - offsetof(dx_server, deadline));
    while (s->open)
        dx__sc_kill(s->open, DX_CLOSE_ABNORMAL);
    while (s->other)
        dx__sc_kill(s->other, DX_CLOSE_ABNORMAL);
    dx__srv_schedule(s);
}

static void stop_listening(dx_server *s) {
    if (s->lio.fd < 0) return;
    dx_io_stop(s->loop, &s->lio);
    close(s->lio.fd);
    s->lio.fd = -1;
    s->listening = 0;
    dx_timer_stop(s->loop, &s->accept_pause);
}

int dx_server_shutdown(dx_server *s, uint32_t deadline_ms, dx_post_fn done, void *arg) {
    if (s->shutting) return DX_ESTATE;
    s->shutting = 1;
    s->done = done;
    s->done_arg = arg;
    stop_listening(s);
    dx__group_close(s);
    for (dx_server_conn *c = s->other, *n; c; c = n) {
        n = c->next;
        if (c->phase == P_TLS || c->phase == P_HTTP) dx__sc_kill(c, DX_CLOSE_ABNORMAL);
    }
    for (dx_server_conn *c = s->open; c; c = c->next)
        if (dx_conn_state(sc_conn(c)) == DX_OPEN)
            dx__sc_start_close(c, DX_CLOSE_GOING_AWAY, "going away");
    dx_timer_init(&s->deadline, on_deadline);
    dx_timer_start(s->loop, &s->deadline, deadline_ms);
    if (!dx_timer_active(&s->sweep)) dx_timer_start(s->loop, &s->sweep, s->sweep_ms);
    dx__srv_schedule(s);
    return 0;
}

void dx_server_free(dx_server *s) {
    if (!s) return;
    stop_listening(s);
    dx__group_leave(s);
    while (s->open)
        dx__sc_kill(s->open, DX_CLOSE_ABNORMAL);
    while (s->other)
        dx__sc_kill(s->other, DX_CLOSE_ABNORMAL);
    while (s->dead) {
        dx_server_conn *c = s->dead;
        s->dead = c->next;
        dx_conn_free(sc_conn(c));
    }
    dx__free(s->dirty);
    dx__sess_free_table(s);
    dx_timer_stop(s->loop, &s->flush);
    dx_timer_stop(s->loop, &s->sweep);
    dx_timer_stop(s->loop, &s->deadline);
    dx__topics_free(&s->topics);
    if (s->tls) dx_tls_ctx_free(s->tls);
    free(s->static_root);
    dx__free(s);
}

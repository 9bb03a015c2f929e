/* One Redis connection on the duplex loop (see redis.h): hiredis's async
 * context driven by a dx_io watcher, plus the timers hiredis 0.14 does not
 * have (connect timeout, PING liveness, reconnect with backoff).
 *
 * Ownership of the hiredis context is the delicate part. hiredis frees a
 * context by itself when a connect fails or the connection breaks (after
 * calling onConnect(ERR) or onDisconnect), and redisAsyncFree() called
 * from inside one of its reply callbacks only marks the context and frees
 * it when the callback returns. So r->ac is cleared the moment we learn
 * the context is going away, by either side, and a context we drop
 * ourselves has its `data` cleared first, so that the callbacks hiredis
 * still runs while freeing it (pending replies with NULL, onDisconnect)
 * find no dx__redis and do nothing. A new attempt only ever starts from a
 * timer, after the old context is gone, so the one dx_io watcher is never
 * shared by two contexts. */
#include "io/redis.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/sds.h>

#include "core/alloc.h"
#include "core/backoff.h"
#include "io/dns.h"

enum { ST_DOWN, ST_RESOLVING, ST_CONNECTING, ST_HANDSHAKE, ST_UP, ST_FREEING };

struct dx__redis {
    dx_loop *loop;
    dx__redis_config cfg;
    redisAsyncContext *ac; /* NULL between attempts */
    dx__dns *dns;          /* ST_RESOLVING: the host name's request */
    dx_io io;
    unsigned want; /* DX_IO_READ|DX_IO_WRITE as hiredis asked */
    int io_on;
    int state;
    unsigned failures; /* attempts since the last success: the backoff step */
    int ping_out;      /* a PING is unanswered */
    uint64_t ping_sent;
    dx_timer t_connect, t_retry, t_ping;
    uint64_t attempts, ups;
    char why[160];
};

#define CONTAINER(p, type, field) ((type *)(void *)((char *)(p)-offsetof(type, field)))

uint32_t dx__redis_backoff(uint32_t base, uint32_t max, unsigned n, uint32_t rnd) {
    /* The client's reconnect arithmetic, doubling with half the delay
     * drawn at random: one backoff in the library. */
    const dx__backoff b = {.base_ms = base ? base : 1, .max_ms = max, .factor = 2, .jitter = 0.5};
    return (uint32_t)dx__backoff_delay(&b, n + 1, rnd);
}

/* ---- hiredis's event hooks, on one dx_io ---- */

static void on_io(dx_loop *loop, dx_io *w, unsigned events);

static void apply(dx__redis *r) {
    if (!r->ac) return;
    if (!r->io_on) {
        if (dx_io_start(r->loop, &r->io, r->ac->c.fd, r->want, on_io) == 0) r->io_on = 1;
    } else {
        (void)dx_io_update(r->loop, &r->io, r->want);
    }
}

static void ev_add_read(void *p) {
    dx__redis *r = p;
    r->want |= DX_IO_READ;
    apply(r);
}

static void ev_del_read(void *p) {
    dx__redis *r = p;
    r->want &= ~(unsigned)DX_IO_READ;
    apply(r);
}

static void ev_add_write(void *p) {
    dx__redis *r = p;
    r->want |= DX_IO_WRITE;
    apply(r);
}

static void ev_del_write(void *p) {
    dx__redis *r = p;
    r->want &= ~(unsigned)DX_IO_WRITE;
    apply(r);
}

/* hiredis is freeing the context: stop watching its fd before it closes. */
static void ev_cleanup(void *p) {
    dx__redis *r = p;
    dx_io_stop(r->loop, &r->io);
    r->io_on = 0;
    r->want = 0;
}

static void on_io(dx_loop *loop, dx_io *w, unsigned events) {
    dx__redis *r = CONTAINER(w, dx__redis, io);
    redisAsyncContext *ac = r->ac;
    if (!ac) return;
    /* An error or hang-up goes to whichever side hiredis is waiting on, so
     * that its own read or write finds the error and tears down. */
    if ((events & DX_IO_READ) || ((events & DX_IO_ERROR) && (r->want & DX_IO_READ))) {
        redisAsyncHandleRead(ac);
        /* hiredis reads at most 16 KiB per call. A subscriber of a busy
         * cluster whose loop turns are long (a chat node waiting on its
         * database) would then take in less per turn than the others
         * publish, and fall behind without bound: drain what the socket
         * holds, up to 1 MiB per turn so that clients are not starved. */
        int avail = 0;
        for (int i = 0;
             i < 64 && r->ac == ac && ioctl(ac->c.fd, FIONREAD, &avail) == 0 && avail > 0; i++)
            redisAsyncHandleRead(ac);
    }
    if (r->ac != ac) return; /* the read dropped the connection */
    if ((events & DX_IO_WRITE) || ((events & DX_IO_ERROR) && (r->want & DX_IO_WRITE)))
        redisAsyncHandleWrite(ac);
}

/* ---- connection life ---- */

static void set_why(dx__redis *r, const char *why) {
    snprintf(r->why, sizeof r->why, "%s", why && *why ? why : "connection lost");
}

static void schedule_retry(dx__redis *r) {
    uint32_t rnd = 0;
    (void)dx_random(&rnd, sizeof rnd);
    uint32_t base = r->cfg.backoff_base_ms ? r->cfg.backoff_base_ms : 100;
    uint32_t max = r->cfg.backoff_max_ms ? r->cfg.backoff_max_ms : 5000;
    if (max < base) max = base;
    dx_timer_start(r->loop, &r->t_retry, dx__redis_backoff(base, max, r->failures, rnd));
    if (r->failures < 64) r->failures++;
}

/* The connection is over. `free_ctx`: we drop it (hiredis has not freed
 * it and will not). Otherwise hiredis is freeing it right now. */
static void lost(dx__redis *r, const char *why, int free_ctx) {
    redisAsyncContext *ac = r->ac;
    int was_up = r->state == ST_UP;
    set_why(r, why); /* before the free: `why` may be the context's errstr */
    r->ac = NULL;
    dx__dns_cancel(r->dns);
    r->dns = NULL;
    r->state = ST_DOWN;
    r->ping_out = 0;
    dx_timer_stop(r->loop, &r->t_connect);
    dx_timer_stop(r->loop, &r->t_ping);
    if (ac && free_ctx) {
        ac->data = NULL;
        redisAsyncFree(ac); /* deferred by hiredis when inside its callback */
    }
    if (was_up && r->cfg.on_down) r->cfg.on_down(r, r->cfg.user, r->why);
    schedule_retry(r);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    dx__redis *r = ac->data;
    if (!r || r->ac != ac) return;
    lost(r, status == REDIS_OK ? "connection closed" : ac->errstr, 0);
}

static void on_ping_tick(dx_loop *loop, dx_timer *t);

static void on_ready(redisAsyncContext *ac, void *reply, void *priv) {
    dx__redis *r = priv;
    redisReply *rep = reply;
    if (!rep || !ac->data || r->ac != ac) return; /* dropped meanwhile */
    if (rep->type == REDIS_REPLY_ERROR) {
        char why[160];
        snprintf(why, sizeof why, "SELECT %d: %s", r->cfg.addr.db, rep->str);
        lost(r, why, 1);
        return;
    }
    r->state = ST_UP;
    r->failures = 0;
    r->ups++;
    dx_timer_stop(r->loop, &r->t_connect);
    if (r->cfg.ping_interval_ms) dx_timer_start(r->loop, &r->t_ping, r->cfg.ping_interval_ms);
    if (r->cfg.on_up) r->cfg.on_up(r, r->cfg.user);
}

static void on_auth(redisAsyncContext *ac, void *reply, void *priv) {
    dx__redis *r = priv;
    redisReply *rep = reply;
    if (!rep || !ac->data || r->ac != ac) return;
    if (rep->type == REDIS_REPLY_ERROR) {
        char why[160];
        snprintf(why, sizeof why, "AUTH: %s", rep->str);
        lost(r, why, 1);
    }
}

static void on_connect(const redisAsyncContext *cac, int status) {
    dx__redis *r = cac->data;
    if (!r || r->ac != cac) return;
    redisAsyncContext *ac = r->ac; /* the same, without const */
    if (status != REDIS_OK) {
        lost(r, ac->errstr, 0); /* hiredis frees the context on return */
        return;
    }
    /* A peer that vanishes without a FIN is otherwise only noticed at the
     * next write; keepalive bounds that for an idle subscriber. */
    (void)redisEnableKeepAlive(&ac->c);
    r->state = ST_HANDSHAKE;
    if (r->cfg.addr.password[0]) {
        const char *argv[2] = {"AUTH", r->cfg.addr.password};
        (void)redisAsyncCommandArgv(ac, on_auth, r, 2, argv, NULL);
    }
    char db[16];
    snprintf(db, sizeof db, "%d", r->cfg.addr.db);
    const char *argv[2] = {"SELECT", db};
    if (redisAsyncCommandArgv(ac, on_ready, r, 2, argv, NULL) != REDIS_OK)
        lost(r, "cannot queue SELECT", 1);
}

/* Connects to `ip` (an address literal: hiredis would resolve a name with
 * a blocking getaddrinfo on the loop's thread). */
static void connect_to(dx__redis *r, const char *ip) {
    r->state = ST_CONNECTING;
    redisAsyncContext *ac = redisAsyncConnect(ip, r->cfg.addr.port);
    if (!ac || ac->err) {
        char why[160];
        snprintf(why, sizeof why, "%s", ac ? ac->errstr : "out of memory");
        if (ac) redisAsyncFree(ac);
        lost(r, why, 1);
        return;
    }
    r->ac = ac;
    ac->data = r;
    ac->ev.data = r;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    (void)redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* Setting the connect callback asks for the first write event, which
     * tells that connect(2) finished: the hooks must be in place before. */
    (void)redisAsyncSetConnectCallback(ac, on_connect);
}

/* A name's addresses: the first IPv4 one, else the first IPv6 one, the
 * order hiredis itself tries (so "localhost" reaches a Redis bound to
 * 127.0.0.1 where ::1 comes first). */
static void on_resolved(void *ctx, int rc, int e, const struct addrinfo *res) {
    dx__redis *r = ctx;
    r->dns = NULL; /* the request ends with this call */
    char why[160];
    if (rc) {
        snprintf(why, sizeof why, "cannot resolve %.80s: %s", r->cfg.addr.host,
                 rc == EAI_SYSTEM ? strerror(e) : gai_strerror(rc));
        lost(r, why, 1);
        return;
    }
    const struct addrinfo *pick = NULL;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
        if (ai->ai_family == AF_INET6 && !pick) pick = ai;
    }
    char ip[INET6_ADDRSTRLEN];
    const void *in = NULL;
    if (pick && pick->ai_family == AF_INET)
        in = &((const struct sockaddr_in *)(const void *)pick->ai_addr)->sin_addr;
    else if (pick)
        in = &((const struct sockaddr_in6 *)(const void *)pick->ai_addr)->sin6_addr;
    if (!in || !inet_ntop(pick->ai_family, in, ip, sizeof ip)) {
        snprintf(why, sizeof why, "cannot resolve %.80s: no IPv4 or IPv6 address",
                 r->cfg.addr.host);
        lost(r, why, 1);
        return;
    }
    connect_to(r, ip);
}

/* One attempt: resolve (a name, on a helper thread), connect, AUTH and
 * SELECT, all within connect_timeout_ms. */
static void attempt(dx__redis *r) {
    r->attempts++;
    dx_timer_start(r->loop, &r->t_connect,
                   r->cfg.connect_timeout_ms ? r->cfg.connect_timeout_ms : 2000);
    unsigned char bin[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, r->cfg.addr.host, bin) == 1 ||
        inet_pton(AF_INET6, r->cfg.addr.host, bin) == 1) {
        connect_to(r, r->cfg.addr.host);
        return;
    }
    r->state = ST_RESOLVING;
    r->dns = dx__dns_start(r->loop, r->cfg.addr.host, r->cfg.addr.port, on_resolved, r);
    if (!r->dns) lost(r, "cannot resolve: out of memory or threads", 1);
}

static void on_retry(dx_loop *loop, dx_timer *t) {
    dx__redis *r = CONTAINER(t, dx__redis, t_retry);
    if (r->state == ST_DOWN) attempt(r);
}

static void on_connect_timeout(dx_loop *loop, dx_timer *t) {
    dx__redis *r = CONTAINER(t, dx__redis, t_connect);
    if (r->state == ST_RESOLVING || r->state == ST_CONNECTING || r->state == ST_HANDSHAKE)
        lost(r, "connect timeout", 1);
}

static void on_pong(redisAsyncContext *ac, void *reply, void *priv) {
    dx__redis *r = priv;
    if (reply && ac->data && r->ac == ac) r->ping_out = 0;
}

static void on_ping_tick(dx_loop *loop, dx_timer *t) {
    dx__redis *r = CONTAINER(t, dx__redis, t_ping);
    if (r->state != ST_UP) return;
    uint64_t now = dx_loop_now(loop);
    uint32_t interval = r->cfg.ping_interval_ms;
    uint32_t timeout = r->cfg.ping_timeout_ms ? r->cfg.ping_timeout_ms : interval;
    if (r->ping_out) {
        if (now - r->ping_sent >= timeout) {
            lost(r, "PING timeout", 1);
            return;
        }
        dx_timer_start(loop, t, r->ping_sent + timeout - now);
        return;
    }
    const char *argv[1] = {"PING"};
    if (redisAsyncCommandArgv(r->ac, on_pong, r, 1, argv, NULL) == REDIS_OK) {
        r->ping_out = 1;
        r->ping_sent = now;
    }
    dx_timer_start(loop, t, interval < timeout ? interval : timeout);
}

/* ---- public ---- */

dx__redis *dx__redis_new(dx_loop *loop, const dx__redis_config *cfg) {
    dx__redis *r = dx__calloc(1, sizeof *r);
    if (!r) return NULL;
    r->loop = loop;
    r->cfg = *cfg;
    if (!r->cfg.addr.port) r->cfg.addr.port = 6379;
    dx_timer_init(&r->t_connect, on_connect_timeout);
    dx_timer_init(&r->t_retry, on_retry);
    dx_timer_init(&r->t_ping, on_ping_tick);
    attempt(r);
    return r;
}

void dx__redis_free(dx__redis *r) {
    if (!r) return;
    r->state = ST_FREEING;
    dx_timer_stop(r->loop, &r->t_connect);
    dx_timer_stop(r->loop, &r->t_retry);
    dx_timer_stop(r->loop, &r->t_ping);
    dx__dns_cancel(r->dns);
    r->dns = NULL;
    redisAsyncContext *ac = r->ac;
    r->ac = NULL;
    if (ac) {
        ac->data = NULL;
        redisAsyncFree(ac); /* runs pending callbacks (NULL) and ev_cleanup */
    }
    dx_io_stop(r->loop, &r->io);
    dx__free(r);
}

int dx__redis_up(const dx__redis *r) {
    return r && r->state == ST_UP;
}

int dx__redis_command(dx__redis *r, dx__redis_reply_fn *fn, void *privdata, int argc,
                      const char **argv, const size_t *argvlen) {
    if (!r || r->state != ST_UP || !r->ac) return DX_ESTATE;
    if (redisAsyncCommandArgv(r->ac, (redisCallbackFn *)fn, privdata, argc, argv, argvlen) !=
        REDIS_OK)
        return r->ac->err ? DX_ESTATE : DX_ENOMEM;
    return 0;
}

void dx__redis_reset(dx__redis *r, const char *why) {
    if (r && r->ac) lost(r, why, 1);
}

size_t dx__redis_queued(const dx__redis *r) {
    return r && r->ac && r->ac->c.obuf ? sdslen(r->ac->c.obuf) : 0;
}

const char *dx__redis_why(const dx__redis *r) {
    return r->why;
}

uint64_t dx__redis_attempts(const dx__redis *r) {
    return r->attempts;
}
uint64_t dx__redis_ups(const dx__redis *r) {
    return r->ups;
}

/* ---- redis:// URLs ---- */

static int copy_slice(char *dst, size_t cap, const char *s, size_t n) {
    if (n >= cap) return -1;
    memcpy(dst, s, n);
    dst[n] = 0;
    return 0;
}

static int parse_int(const char *s, size_t n, int max, int *out) {
    if (n == 0 || n > 9) return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max) return -1;
    *out = v;
    return 0;
}

int dx__redis_parse_url(const char *url, dx__redis_addr *out, const char **why) {
    static const char scheme[] = "redis://";
    const char *dummy;
    if (!why) why = &dummy;
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (!url || strncmp(url, scheme, sizeof scheme - 1) != 0) {
        *why = "the URL must start with redis://";
        return DX_EINVAL;
    }
    const char *p = url + sizeof scheme - 1;
    const char *end = p + strcspn(p, "/?#");
    const char *at = memchr(p, '@', (size_t)(end - p));
    if (at) {
        /* user:password@ (Redis 6 ACL users are not sent: AUTH password). */
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon && copy_slice(out->password, sizeof out->password, colon + 1,
                                (size_t)(at - colon - 1)) < 0) {
            *why = "password too long";
            return DX_EINVAL;
        }
        p = at + 1;
    }
    const char *host_end, *port_at = NULL;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb) {
            *why = "unclosed [ in the host";
            return DX_EINVAL;
        }
        if (copy_slice(out->host, sizeof out->host, p + 1, (size_t)(rb - p - 1)) < 0) {
            *why = "host too long";
            return DX_EINVAL;
        }
        host_end = rb + 1;
        if (host_end < end && *host_end != ':') {
            *why = "junk after the host";
            return DX_EINVAL;
        }
        if (host_end < end) port_at = host_end + 1;
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        host_end = colon ? colon : end;
        if (copy_slice(out->host, sizeof out->host, p, (size_t)(host_end - p)) < 0) {
            *why = "host too long";
            return DX_EINVAL;
        }
        if (colon) port_at = colon + 1;
    }
    if (!out->host[0]) {
        *why = "no host";
        return DX_EINVAL;
    }
    if (port_at &&
        (parse_int(port_at, (size_t)(end - port_at), 65535, &out->port) < 0 || out->port == 0)) {
        *why = "bad port";
        return DX_EINVAL;
    }
    if (*end == '/' && end[1]) {
        const char *db = end + 1;
        size_t n = strcspn(db, "?#");
        if (parse_int(db, n, 1 << 20, &out->db) < 0) {
            *why = "bad database number";
            return DX_EINVAL;
        }
        end = db + n;
    } else if (*end == '/') {
        end++;
    }
    if (*end) {
        *why = "query and fragment are not supported";
        return DX_EINVAL;
    }
    return 0;
}

/* The Redis broker of a server (include/duplex/fanout.h). */
#include <duplex/fanout.h>

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "core/alloc.h"
#include "io/redis.h"
#include "server/internal.h"

#define HDR 13              /* 'd' 'x' 1, node id, opcode, topic length */
#define PROBE_EVERY_MS 1000 /* subscriber end-to-end check */
#define PROBE_TIMEOUT_MS 3000
#define PUB_PING_MS 2000                      /* publisher PING interval and timeout */
#define MAX_QUEUED ((size_t)64 * 1024 * 1024) /* unwritten PUBLISH bytes: drop above */
#define BUF_KEEP ((size_t)1024 * 1024)        /* a larger publish buffer is freed after use */

/* The configuration as kept: the URL parsed. */
typedef struct fanout_cfg {
    dx__redis_addr addr;
    uint8_t node_id[8];
    void (*on_state)(void *user, int up, const char *why);
    void *user;
} fanout_cfg;

struct dx_fanout {
    dx_server *srv;
    dx_loop *loop;
    fanout_cfg cfg;
    dx__redis *pub, *sub;
    int confirmed; /* SUBSCRIBE confirmations received (2 channels) */
    int reported;  /* last health given to on_state: -1 none yet */
    char channel[48];
    char probe[64];
    uint8_t *buf;
    size_t cap;
    dx_timer t_probe;
    int probe_out;
    uint64_t probe_sent;
    uint64_t probe_sent_us; /* its clock, for the bus latency */
    dx_fanout_stats st;
    dx_fanout_link_stats link; /* bus_us, bus_us_sum; the rest filled when read */
};

#define CONTAINER(p, type, field) ((type *)(void *)((char *)(p)-offsetof(type, field)))

static int is_up(const dx_fanout *f) {
    return dx__redis_up(f->pub) && f->confirmed >= 2;
}

int dx_fanout_up(const dx_fanout *f) {
    return f && is_up(f);
}

static void report(dx_fanout *f) {
    int up = is_up(f);
    if (up == f->reported) return;
    f->reported = up;
    if (!f->cfg.on_state) return;
    const char *why = "";
    if (!up) {
        why = !dx__redis_up(f->pub) ? dx__redis_why(f->pub) : dx__redis_why(f->sub);
        if (!*why) why = "not connected yet";
    }
    f->cfg.on_state(f->cfg.user, up, why);
}

/* ---- the broker hook: publish ---- */

static int broker_publish(void *ctx, const char *topic, enum dx_opcode op, const uint8_t *data,
                          size_t len) {
    dx_fanout *f = ctx;
    size_t tl = topic ? strlen(topic) : 0;
    if (tl > 255) return DX_EINVAL;
    if (!dx__redis_up(f->pub) || dx__redis_queued(f->pub) > MAX_QUEUED) {
        f->st.dropped++;
        return DX_ESTATE;
    }
    size_t need = HDR + tl + len;
    if (need > f->cap) {
        uint8_t *nb = dx__realloc(f->buf, need);
        if (!nb) {
            f->st.dropped++;
            return DX_ENOMEM;
        }
        f->buf = nb;
        f->cap = need;
    }
    uint8_t *p = f->buf;
    p[0] = 'd';
    p[1] = 'x';
    p[2] = 1;
    memcpy(p + 3, f->cfg.node_id, 8);
    p[11] = op == DX_OP_BINARY ? 2 : 1;
    p[12] = (uint8_t)tl;
    if (tl) memcpy(p + HDR, topic, tl);
    if (len) memcpy(p + HDR + tl, data, len);
    const char *argv[3] = {"PUBLISH", f->channel, (const char *)p};
    size_t lens[3] = {7, strlen(f->channel), need};
    int rc = dx__redis_command(f->pub, NULL, NULL, 3, argv, lens);
    if (rc < 0)
        f->st.dropped++;
    else
        f->st.published++;
    /* hiredis copied the command: a buffer grown for one huge message is
     * not kept for the life of the process. */
    if (f->cap > BUF_KEEP) {
        dx__free(f->buf);
        f->buf = NULL;
        f->cap = 0;
    }
    return rc;
}

static int broker_up(void *ctx) {
    return is_up(ctx);
}

/* ---- the subscriber ---- */

static void on_payload(dx_fanout *f, const uint8_t *p, size_t n) {
    if (n < HDR || p[0] != 'd' || p[1] != 'x' || p[2] != 1 || (p[11] != 1 && p[11] != 2) ||
        n < (size_t)HDR + p[12]) {
        f->st.invalid++;
        return;
    }
    if (!memcmp(p + 3, f->cfg.node_id, 8)) {
        f->st.own++; /* delivered locally when it was sent */
        return;
    }
    size_t tl = p[12];
    char topic[256];
    if (tl) {
        memcpy(topic, p + HDR, tl);
        topic[tl] = 0;
        if (strlen(topic) != tl) { /* a NUL inside: not a name we could have sent */
            f->st.invalid++;
            return;
        }
    }
    f->st.received++;
    (void)dx_server_deliver(f->srv, tl ? topic : NULL, p[11] == 2 ? DX_OP_BINARY : DX_OP_TEXT,
                            p + HDR + tl, n - HDR - tl);
}

static int str_is(const redisReply *r, const char *s) {
    return r->type == REDIS_REPLY_STRING && r->len == strlen(s) && !memcmp(r->str, s, r->len);
}

static void on_sub_reply(struct redisAsyncContext *ac, void *reply, void *priv) {
    dx_fanout *f = priv;
    redisReply *r = reply;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3) return;
    redisReply *kind = r->element[0], *chan = r->element[1], *msg = r->element[2];
    if (str_is(kind, "message") && msg->type == REDIS_REPLY_STRING) {
        if (str_is(chan, f->channel))
            on_payload(f, (const uint8_t *)msg->str, (size_t)msg->len);
        else if (str_is(chan, f->probe) && f->probe_out) {
            f->probe_out = 0;
            dx__bus_sample(f->link.bus_us, &f->link.bus_us_sum,
                           dx__redis_clock_us() - f->probe_sent_us);
        }
    } else if (str_is(kind, "subscribe")) {
        f->confirmed++;
        report(f);
    }
}

static void on_sub_up(dx__redis *r, void *user) {
    dx_fanout *f = user;
    f->confirmed = 0;
    f->probe_out = 0;
    const char *argv[3] = {"SUBSCRIBE", f->channel, f->probe};
    if (dx__redis_command(r, on_sub_reply, f, 3, argv, NULL) < 0)
        dx__redis_reset(r, "cannot queue SUBSCRIBE");
}

static void on_sub_down(dx__redis *r, void *user, const char *why) {
    dx_fanout *f = user;
    f->confirmed = 0;
    f->probe_out = 0;
    report(f);
}

static void on_pub_up(dx__redis *r, void *user) {
    report(user);
}

static void on_pub_down(dx__redis *r, void *user, const char *why) {
    dx_fanout *f = user;
    f->probe_out = 0; /* a probe in flight may have died with the publisher */
    report(f);
}

/* Once a second: report the state (so a Redis that is down from the start
 * is reported too), and send a probe through Redis from the publisher to
 * our own subscriber; one that does not come back means the subscriber is
 * deaf (a half-open connection) although its socket looks fine. */
static void on_probe(dx_loop *loop, dx_timer *t) {
    dx_fanout *f = CONTAINER(t, dx_fanout, t_probe);
    dx_timer_start(loop, t, PROBE_EVERY_MS);
    report(f);
    if (!is_up(f)) {
        f->probe_out = 0;
        return;
    }
    uint64_t now = dx_loop_now(loop);
    if (f->probe_out) {
        if (now - f->probe_sent >= PROBE_TIMEOUT_MS) {
            f->probe_out = 0;
            dx__redis_reset(f->sub, "subscriber probe lost");
            report(f);
        }
        return;
    }
    const char *argv[3] = {"PUBLISH", f->probe, "p"};
    if (dx__redis_command(f->pub, NULL, NULL, 3, argv, NULL) == 0) {
        f->probe_out = 1;
        f->probe_sent = now;
        f->probe_sent_us = dx__redis_clock_us();
    }
}

int dx_fanout_check_url(const char *url, const char **why) {
    dx__redis_addr a;
    const char *w = "no Redis URL";
    int rc = url ? dx__redis_parse_url(url, &a, &w) : DX_EINVAL;
    if (rc < 0 && why) *why = w;
    return rc < 0 ? DX_EINVAL : 0;
}

dx_fanout *dx_fanout_new(dx_server *srv, const dx_fanout_config *cfg, const char **why) {
    const char *w = "no Redis URL";
    fanout_cfg fc = {.on_state = cfg ? cfg->on_state : NULL, .user = cfg ? cfg->user : NULL};
    if (!srv || !cfg || !cfg->url || dx__redis_parse_url(cfg->url, &fc.addr, &w) < 0) {
        if (why) *why = !srv || !cfg ? "invalid argument" : w;
        return NULL;
    }
    static const uint8_t zero[8];
    memcpy(fc.node_id, cfg->node_id, sizeof fc.node_id);
    if (!memcmp(fc.node_id, zero, sizeof zero) && dx_random(fc.node_id, sizeof fc.node_id) < 0) {
        if (why) *why = "no random bytes for the node id";
        return NULL;
    }
    dx_fanout *f = dx__calloc(1, sizeof *f);
    if (!f) {
        if (why) *why = "out of memory";
        return NULL;
    }
    f->srv = srv;
    f->loop = dx_server_loop(srv);
    f->cfg = fc;
    f->reported = -1;
    /* Redis pub/sub ignores SELECT: the database number goes into the
     * channel name so that clusters sharing a Redis on different
     * databases stay apart. */
    snprintf(f->channel, sizeof f->channel, "duplex:%d:fanout", fc.addr.db);
    uint8_t rnd[8] = {0};
    (void)dx_random(rnd, sizeof rnd);
    snprintf(f->probe, sizeof f->probe, "duplex:%d:probe:%02x%02x%02x%02x%02x%02x%02x%02x",
             fc.addr.db, rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    dx__redis_config rc = {
        .addr = fc.addr,
        .ping_interval_ms = PUB_PING_MS,
        .on_up = on_pub_up,
        .on_down = on_pub_down,
        .user = f,
    };
    f->pub = dx__redis_new(f->loop, &rc);
    rc.ping_interval_ms = 0; /* subscribed: checked by the probe instead */
    rc.on_up = on_sub_up;
    rc.on_down = on_sub_down;
    f->sub = f->pub ? dx__redis_new(f->loop, &rc) : NULL;
    if (!f->sub) {
        dx__redis_free(f->pub);
        dx__free(f);
        if (why) *why = "out of memory";
        return NULL;
    }
    dx_timer_init(&f->t_probe, on_probe);
    dx_timer_start(f->loop, &f->t_probe, PROBE_EVERY_MS);
    dx_server_broker b = {.publish = broker_publish, .up = broker_up, .name = "redis", .ctx = f};
    (void)dx_server_set_broker(srv, &b);
    return f;
}

void dx_fanout_free(dx_fanout *f) {
    if (!f) return;
    (void)dx_server_set_broker(f->srv, NULL);
    dx_timer_stop(f->loop, &f->t_probe);
    dx__redis_free(f->sub);
    dx__redis_free(f->pub);
    dx__free(f->buf);
    dx__free(f);
}

void dx_fanout_stats_get(const dx_fanout *f, dx_fanout_stats *out) {
    *out = f->st;
}

int dx_fanout_link_stats_get(const dx_fanout *f, dx_fanout_link_stats *out) {
    if (!f || !out || out->size < offsetof(dx_fanout_link_stats, reconnects)) return DX_EINVAL;
    size_t want = out->size;
    dx_fanout_link_stats st = f->link;
    st.size = sizeof st;
    st.up = (uint64_t)is_up(f);
    uint64_t a = dx__redis_ups(f->pub), b = dx__redis_ups(f->sub);
    st.reconnects = (a > 1 ? a - 1 : 0) + (b > 1 ? b - 1 : 0);
    dx__stats_copy(out, &st, sizeof st, want);
    return 0;
}

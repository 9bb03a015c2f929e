/* The Redis bus of a cluster node (see redisbus.h): a publisher and a
 * subscriber dx__redis, the node tag on every message, and the probe that
 * tells whether the subscriber still hears the channel. */
#include "io/redisbus.h"

#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "core/alloc.h"
#include "io/loopstats.h"

#define TAG 11 /* 'd' 'x' format | node id */
#define PUB_PING_MS 2000
#define MAX_QUEUED ((size_t)64 * 1024 * 1024)
#define BUF_KEEP ((size_t)1024 * 1024) /* a larger publish buffer is freed after use */

struct dx__rbus {
    dx_loop *loop;
    dx__rbus_config cfg;
    dx__redis *pub, *sub;
    int confirmed; /* SUBSCRIBE confirmations: the channel and the probe */
    int reported;  /* last health given to on_state: -1 none yet */
    char channel[64];
    char probe[64];
    uint8_t *buf;
    size_t cap;
    dx_timer t_probe;
    int probe_out;
    uint64_t probe_sent;    /* loop ms, for the timeout */
    uint64_t probe_sent_us; /* its clock, for the latency */
    dx__rbus_stats st;      /* own, invalid, bus_us, bus_us_sum; the rest filled when read */
};

#define CONTAINER(p, type, field) ((type *)(void *)((char *)(p)-offsetof(type, field)))

int dx__rbus_up(const dx__rbus *b) {
    return b && dx__redis_up(b->pub) && b->confirmed >= 2;
}

static void report(dx__rbus *b) {
    int up = dx__rbus_up(b);
    if (up == b->reported) return;
    b->reported = up;
    if (!b->cfg.on_state) return;
    const char *why = "";
    if (!up) {
        why = !dx__redis_up(b->pub) ? dx__redis_why(b->pub) : dx__redis_why(b->sub);
        if (!*why) why = "not connected yet";
    }
    b->cfg.on_state(b->cfg.user, up, why);
}

/* ---- publishing ---- */

int dx__rbus_publish(dx__rbus *b, const struct iovec *iov, int n) {
    if (!dx__redis_up(b->pub) || dx__redis_queued(b->pub) > b->cfg.max_queued) return DX_ESTATE;
    size_t need = TAG;
    for (int i = 0; i < n; i++)
        need += iov[i].iov_len;
    if (need > b->cap) {
        uint8_t *nb = dx__realloc(b->buf, need);
        if (!nb) return DX_ENOMEM;
        b->buf = nb;
        b->cap = need;
    }
    uint8_t *p = b->buf;
    p[0] = 'd';
    p[1] = 'x';
    p[2] = b->cfg.format;
    memcpy(p + 3, b->cfg.node_id, 8);
    size_t at = TAG;
    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len) memcpy(p + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
    }
    const char *argv[3] = {"PUBLISH", b->channel, (const char *)p};
    size_t lens[3] = {7, strlen(b->channel), need};
    int rc = dx__redis_command(b->pub, NULL, NULL, 3, argv, lens);
    /* hiredis copied the command: a buffer grown for one huge message is
     * not kept for the life of the process. */
    if (b->cap > BUF_KEEP) {
        dx__free(b->buf);
        b->buf = NULL;
        b->cap = 0;
    }
    return rc;
}

int dx__rbus_command(dx__rbus *b, int argc, const char **argv, const size_t *argvlen) {
    return dx__redis_command(b->pub, NULL, NULL, argc, argv, argvlen);
}

/* ---- the subscriber ---- */

static void on_payload(dx__rbus *b, const uint8_t *p, size_t n) {
    if (n < TAG || p[0] != 'd' || p[1] != 'x' || p[2] != b->cfg.format) {
        b->st.invalid++;
        return;
    }
    if (!memcmp(p + 3, b->cfg.node_id, 8)) {
        b->st.own++; /* its user handled it locally when it was sent */
        return;
    }
    b->cfg.on_message(b->cfg.user, p + 3, p + TAG, n - TAG);
}

static int str_is(const redisReply *r, const char *s) {
    return r->type == REDIS_REPLY_STRING && r->len == strlen(s) && !memcmp(r->str, s, r->len);
}

static void on_sub_reply(struct redisAsyncContext *ac, void *reply, void *priv) {
    dx__rbus *b = priv;
    redisReply *r = reply;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3) return;
    redisReply *kind = r->element[0], *chan = r->element[1], *msg = r->element[2];
    if (str_is(kind, "message") && msg->type == REDIS_REPLY_STRING) {
        if (str_is(chan, b->channel))
            on_payload(b, (const uint8_t *)msg->str, (size_t)msg->len);
        else if (str_is(chan, b->probe) && b->probe_out) {
            b->probe_out = 0;
            /* The loop's clock is milliseconds of the turn; the latency wants finer. */
            dx__hist_us_add(b->st.bus_us, &b->st.bus_us_sum, dx__clock_us() - b->probe_sent_us);
        }
    } else if (str_is(kind, "subscribe")) {
        b->confirmed++;
        report(b);
    }
}

static void on_sub_up(dx__redis *r, void *user) {
    dx__rbus *b = user;
    b->confirmed = 0;
    b->probe_out = 0;
    const char *argv[3] = {"SUBSCRIBE", b->channel, b->probe};
    if (dx__redis_command(r, on_sub_reply, b, 3, argv, NULL) < 0)
        dx__redis_reset(r, "cannot queue SUBSCRIBE");
}

static void on_sub_down(dx__redis *r, void *user, const char *why) {
    dx__rbus *b = user;
    b->confirmed = 0;
    b->probe_out = 0;
    report(b);
}

static void on_pub_up(dx__redis *r, void *user) {
    report(user);
}

static void on_pub_down(dx__redis *r, void *user, const char *why) {
    dx__rbus *b = user;
    b->probe_out = 0; /* a probe in flight may have died with the publisher */
    report(b);
}

/* Every probe_ms: report the health (so that a Redis down from the start
 * is told too), and send a probe from the publisher to our own subscriber
 * unless the last one is still out. */
static void on_probe(dx_loop *loop, dx_timer *t) {
    dx__rbus *b = CONTAINER(t, dx__rbus, t_probe);
    dx_timer_start(loop, t, b->cfg.probe_ms);
    report(b);
    if (!dx__rbus_up(b)) {
        b->probe_out = 0;
        return;
    }
    uint64_t now = dx_loop_now(loop);
    if (b->probe_out) {
        if (now - b->probe_sent >= b->cfg.probe_timeout_ms) {
            b->probe_out = 0;
            dx__redis_reset(b->sub, "subscriber probe lost");
            report(b);
        }
        return;
    }
    const char *argv[3] = {"PUBLISH", b->probe, "p"};
    if (dx__redis_command(b->pub, NULL, NULL, 3, argv, NULL) == 0) {
        b->probe_out = 1;
        b->probe_sent = now;
        b->probe_sent_us = dx__clock_us();
    }
}

/* ---- life ---- */

dx__rbus *dx__rbus_new(dx_loop *loop, const dx__rbus_config *cfg) {
    if (!cfg->channel || strlen(cfg->channel) >= sizeof((dx__rbus *)0)->channel) return NULL;
    dx__rbus *b = dx__calloc(1, sizeof *b);
    if (!b) return NULL;
    b->loop = loop;
    b->cfg = *cfg;
    if (!b->cfg.probe_ms) b->cfg.probe_ms = 1000;
    if (!b->cfg.probe_timeout_ms) b->cfg.probe_timeout_ms = 3000;
    if (!b->cfg.max_queued) b->cfg.max_queued = MAX_QUEUED;
    b->reported = -1;
    snprintf(b->channel, sizeof b->channel, "%s", cfg->channel);
    b->cfg.channel = b->channel;
    /* Private to this bus, so that no other node hears our probes. */
    uint8_t rnd[8] = {0};
    (void)dx_random(rnd, sizeof rnd);
    snprintf(b->probe, sizeof b->probe, "duplex:%d:probe:%02x%02x%02x%02x%02x%02x%02x%02x",
             cfg->addr.db, rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    dx__redis_config rc = {
        .addr = cfg->addr,
        .ping_interval_ms = PUB_PING_MS,
        .on_up = on_pub_up,
        .on_down = on_pub_down,
        .user = b,
    };
    b->pub = dx__redis_new(loop, &rc);
    rc.ping_interval_ms = 0; /* subscribed: checked by the probe instead */
    rc.on_up = on_sub_up;
    rc.on_down = on_sub_down;
    b->sub = b->pub ? dx__redis_new(loop, &rc) : NULL;
    if (!b->sub) {
        dx__redis_free(b->pub);
        dx__free(b);
        return NULL;
    }
    dx_timer_init(&b->t_probe, on_probe);
    dx_timer_start(loop, &b->t_probe, b->cfg.probe_ms);
    return b;
}

void dx__rbus_free(dx__rbus *b) {
    if (!b) return;
    dx_timer_stop(b->loop, &b->t_probe);
    dx__redis_free(b->sub);
    dx__redis_free(b->pub);
    dx__free(b->buf);
    dx__free(b);
}

void dx__rbus_stats_get(const dx__rbus *b, dx__rbus_stats *out) {
    *out = b->st;
    out->up = (uint64_t)dx__rbus_up(b);
    uint64_t p = dx__redis_ups(b->pub), s = dx__redis_ups(b->sub);
    out->reconnects = (p > 1 ? p - 1 : 0) + (s > 1 ? s - 1 : 0);
}

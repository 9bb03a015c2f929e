/* The Redis broker of a server (include/duplex/fanout.h). */
#include <duplex/fanout.h>

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "io/redisbus.h"
#include "server/state.h"

#define HDR 2 /* after the bus's tag: opcode, topic length */

struct dx_fanout {
    dx_server *srv;
    dx__rbus *bus;
    void (*on_state)(void *user, int up, const char *why);
    void *user;
    dx_fanout_stats st; /* own and invalid: the bus's added when read */
};

int dx_fanout_up(const dx_fanout *f) {
    return f && dx__rbus_up(f->bus);
}

/* ---- the broker hook: publish ---- */

static int broker_publish(void *ctx, const char *topic, enum dx_opcode op, const uint8_t *data,
                          size_t len) {
    dx_fanout *f = ctx;
    size_t tl = topic ? strlen(topic) : 0;
    if (tl > 255) return DX_EINVAL;
    uint8_t hdr[HDR] = {op == DX_OP_BINARY ? 2 : 1, (uint8_t)tl};
    struct iovec iov[3] = {
        {hdr, HDR}, {(void *)(uintptr_t)topic, tl}, {(void *)(uintptr_t)data, len}};
    int rc = dx__rbus_publish(f->bus, iov, 3);
    if (rc < 0)
        f->st.dropped++;
    else
        f->st.published++;
    return rc;
}

static int broker_up(void *ctx) {
    return dx__rbus_up(((dx_fanout *)ctx)->bus);
}

/* ---- what other nodes published ---- */

static void on_message(void *user, const uint8_t *node, const uint8_t *p, size_t n) {
    dx_fanout *f = user;
    (void)node;
    if (n < HDR || (p[0] != 1 && p[0] != 2) || n < (size_t)HDR + p[1]) {
        f->st.invalid++;
        return;
    }
    size_t tl = p[1];
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
    (void)dx_server_deliver(f->srv, tl ? topic : NULL, p[0] == 2 ? DX_OP_BINARY : DX_OP_TEXT,
                            p + HDR + tl, n - HDR - tl);
}

static void on_state(void *user, int up, const char *why) {
    dx_fanout *f = user;
    if (f->on_state) f->on_state(f->user, up, why);
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
    dx__rbus_config bc = {.format = 1, .on_message = on_message, .on_state = on_state};
    if (!srv || !cfg || !cfg->url || dx__redis_parse_url(cfg->url, &bc.addr, &w) < 0) {
        if (why) *why = !srv || !cfg ? "invalid argument" : w;
        return NULL;
    }
    static const uint8_t zero[8];
    memcpy(bc.node_id, cfg->node_id, sizeof bc.node_id);
    if (!memcmp(bc.node_id, zero, sizeof zero) && dx_random(bc.node_id, sizeof bc.node_id) < 0) {
        if (why) *why = "no random bytes for the node id";
        return NULL;
    }
    dx_fanout *f = dx__calloc(1, sizeof *f);
    if (!f) {
        if (why) *why = "out of memory";
        return NULL;
    }
    f->srv = srv;
    f->on_state = cfg->on_state;
    f->user = cfg->user;
    char channel[48];
    snprintf(channel, sizeof channel, "duplex:%d:fanout", bc.addr.db);
    bc.channel = channel;
    bc.user = f;
    f->bus = dx__rbus_new(dx_server_loop(srv), &bc);
    if (!f->bus) {
        dx__free(f);
        if (why) *why = "out of memory";
        return NULL;
    }
    dx_server_broker b = {.publish = broker_publish, .up = broker_up, .name = "redis", .ctx = f};
    (void)dx_server_set_broker(srv, &b);
    return f;
}

void dx_fanout_free(dx_fanout *f) {
    if (!f) return;
    (void)dx_server_set_broker(f->srv, NULL);
    dx__rbus_free(f->bus);
    dx__free(f);
}

void dx_fanout_stats_get(const dx_fanout *f, dx_fanout_stats *out) {
    dx__rbus_stats bs;
    dx__rbus_stats_get(f->bus, &bs);
    *out = f->st;
    out->own = bs.own;
    out->invalid += bs.invalid;
}

int dx_fanout_link_stats_get(const dx_fanout *f, dx_fanout_link_stats *out) {
    if (!f || !out || out->size < offsetof(dx_fanout_link_stats, reconnects)) return DX_EINVAL;
    size_t want = out->size;
    dx__rbus_stats bs;
    dx__rbus_stats_get(f->bus, &bs);
    dx_fanout_link_stats st = {.size = sizeof st, .up = bs.up, .reconnects = bs.reconnects};
    memcpy(st.bus_us, bs.bus_us, sizeof st.bus_us);
    st.bus_us_sum = bs.bus_us_sum;
    dx__stats_copy(out, &st, sizeof st, want);
    return 0;
}

/* The chat broker over Redis (see broker_redis.h): deliveries and presence
 * events on one pub/sub channel, presence keys with a TTL, and a mirror of
 * the other nodes' device counts so that the broker interface can answer
 * synchronously. */
#include "chat/broker_redis.h"

#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include <duplex/common.h>

#include "core/alloc.h"

#define UID_MAX 32
#define MAX_NODES 256
#define SELF 0xffffu
#define HDR 13                /* 'd' 'x' 2, node id, kind, uid length */
#define PROBE_TIMEOUT_MS 3000 /* our own heartbeat must come back by then */
#define PUB_PING_MS 2000

typedef struct node {
    uint8_t id[8];
    uint64_t last; /* loop ms when last heard of */
    uint32_t gen;  /* bumped when it expires: its old entries no longer count */
    int alive;
} node;

typedef struct entry {
    char uid[UID_MAX + 1]; /* "" = free slot */
    uint16_t node;         /* index in nodes[], or SELF */
    uint32_t gen;
    int64_t count;
} entry;

typedef struct redis_broker {
    dx__chat_broker base;
    dx_loop *loop;
    dx__chat_redis_config cfg;
    dx__redis *pub, *sub;
    int confirmed;
    int reported; /* -1 before the first report */
    char channel[48];
    char key_prefix[48];
    char node_hex[17];
    node nodes[MAX_NODES];
    unsigned nnodes;
    entry *tab;
    size_t cap, used;
    uint8_t *buf;
    size_t bufcap;
    dx_timer t_beat;
    uint32_t beat_ms;
    int h_out; /* our heartbeat is on its way back to us */
    uint64_t h_sent;
    uint64_t h_sent_us; /* its clock, for the bus latency */
    uint64_t bus_us[DX_LOOP_TURN_BUCKETS];
    uint64_t bus_us_sum;
} redis_broker;

#define CONTAINER(p, type, field) ((type *)(void *)((char *)(p)-offsetof(type, field)))

/* ---- the mirror: (node, uid) -> count ---- */

static uint64_t hash(const char *s, unsigned node_ix) {
    uint64_t h = 1469598103934665603ull ^ node_ix; /* FNV-1a, seeded by the node */
    while (*s)
        h = (h ^ (uint8_t)*s++) * 1099511628211ull;
    return h;
}

static entry *find(redis_broker *b, unsigned nix, const char *uid, int create) {
    size_t n = strlen(uid);
    if (n == 0 || n > UID_MAX) return NULL;
    if (create && (b->used + 1) * 2 > b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 64;
        entry *nt = dx__calloc(ncap, sizeof *nt);
        if (!nt) return NULL;
        for (size_t i = 0; i < b->cap; i++) {
            if (!b->tab[i].uid[0]) continue;
            size_t j = hash(b->tab[i].uid, b->tab[i].node) & (ncap - 1);
            while (nt[j].uid[0])
                j = (j + 1) & (ncap - 1);
            nt[j] = b->tab[i];
        }
        dx__free(b->tab);
        b->tab = nt;
        b->cap = ncap;
    }
    if (!b->cap) return NULL;
    size_t i = hash(uid, nix) & (b->cap - 1);
    while (b->tab[i].uid[0]) {
        if (b->tab[i].node == nix && !strcmp(b->tab[i].uid, uid)) return &b->tab[i];
        i = (i + 1) & (b->cap - 1);
    }
    if (!create) return NULL;
    memcpy(b->tab[i].uid, uid, n + 1);
    b->tab[i].node = (uint16_t)nix;
    b->tab[i].gen = nix == SELF ? 0 : b->nodes[nix].gen;
    b->tab[i].count = 0;
    b->used++;
    return &b->tab[i];
}

static int64_t remote_count(redis_broker *b, unsigned nix, const char *uid) {
    if (!b->nodes[nix].alive) return 0;
    entry *e = find(b, nix, uid, 0);
    return e && e->gen == b->nodes[nix].gen ? e->count : 0;
}

static int64_t total(redis_broker *b, const char *uid) {
    entry *e = find(b, SELF, uid, 0);
    int64_t n = e ? e->count : 0;
    for (unsigned i = 0; i < b->nnodes; i++)
        n += remote_count(b, i, uid);
    return n;
}

/* The node's index, added (or revived) when new; -1 when the table is
 * full of live nodes. */
/* Marks the node heard now. *fresh is set when we hold nothing of it (a
 * node we had given up for dead, or one never heard): its counts must be
 * asked for, since its announcements came while we could not hear them. */
static int node_touch(redis_broker *b, const uint8_t *id, int *fresh) {
    uint64_t now = dx_loop_now(b->loop);
    int free_ix = -1;
    *fresh = 0;
    for (unsigned i = 0; i < b->nnodes; i++) {
        if (!memcmp(b->nodes[i].id, id, 8)) {
            *fresh = !b->nodes[i].alive;
            b->nodes[i].alive = 1;
            b->nodes[i].last = now;
            return (int)i;
        }
        if (!b->nodes[i].alive && free_ix < 0) free_ix = (int)i;
    }
    if (free_ix < 0) {
        if (b->nnodes >= MAX_NODES) return -1;
        free_ix = (int)b->nnodes++;
    }
    node *n = &b->nodes[free_ix];
    n->gen++; /* whatever a previous occupant left no longer counts */
    memcpy(n->id, id, 8);
    n->alive = 1;
    n->last = now;
    *fresh = 1;
    return free_ix;
}

/* ---- sending ---- */

static int up(const redis_broker *b) {
    return dx__redis_up(b->pub) && b->confirmed;
}

static int send_kind(redis_broker *b, char kind, const char *uid, const void *body, size_t len) {
    if (!dx__redis_up(b->pub)) return DX_EIO;
    size_t ul = uid ? strlen(uid) : 0;
    size_t need = HDR + ul + len;
    if (need > b->bufcap) {
        uint8_t *nb = dx__realloc(b->buf, need);
        if (!nb) return DX_ENOMEM;
        b->buf = nb;
        b->bufcap = need;
    }
    uint8_t *p = b->buf;
    p[0] = 'd';
    p[1] = 'x';
    p[2] = 2;
    memcpy(p + 3, b->cfg.node_id, 8);
    p[11] = (uint8_t)kind;
    p[12] = (uint8_t)ul;
    if (ul) memcpy(p + HDR, uid, ul);
    if (len) memcpy(p + HDR + ul, body, len);
    const char *argv[3] = {"PUBLISH", b->channel, (const char *)p};
    size_t lens[3] = {7, strlen(b->channel), need};
    int rc = dx__redis_command(b->pub, NULL, NULL, 3, argv, lens);
    return rc < 0 ? DX_EIO : 0;
}

static void announce(redis_broker *b, const char *uid, int64_t count) {
    uint32_t c = count > 0 && count < UINT32_MAX ? (uint32_t)count : 0;
    uint8_t be[4] = {(uint8_t)(c >> 24), (uint8_t)(c >> 16), (uint8_t)(c >> 8), (uint8_t)c};
    (void)send_kind(b, 'P', uid, be, 4);
}

/* The presence key of (uid, this node): the count with a TTL, or gone. */
static void set_key(redis_broker *b, const char *uid, int64_t count) {
    char key[128], val[24], ttl[16];
    snprintf(key, sizeof key, "%s%s:%s", b->key_prefix, uid, b->node_hex);
    if (count > 0) {
        snprintf(val, sizeof val, "%lld", (long long)count);
        snprintf(ttl, sizeof ttl, "%u", b->cfg.presence_ttl_ms);
        const char *argv[5] = {"SET", key, val, "PX", ttl};
        (void)dx__redis_command(b->pub, NULL, NULL, 5, argv, NULL);
    } else {
        const char *argv[2] = {"DEL", key};
        (void)dx__redis_command(b->pub, NULL, NULL, 2, argv, NULL);
    }
}

/* Every device count of this node: announced and written again. */
static void announce_all(redis_broker *b, int keys) {
    for (size_t i = 0; i < b->cap; i++) {
        entry *e = &b->tab[i];
        if (e->uid[0] && e->node == SELF && e->count > 0) {
            announce(b, e->uid, e->count);
            if (keys) set_key(b, e->uid, e->count);
        }
    }
}

static void report(redis_broker *b) {
    int u = up(b);
    if (u == b->reported) return;
    b->reported = u;
    if (!b->cfg.on_state) return;
    const char *why = "";
    if (!u) {
        why = !dx__redis_up(b->pub) ? dx__redis_why(b->pub) : dx__redis_why(b->sub);
        if (!*why) why = "not connected yet";
    }
    b->cfg.on_state(b->cfg.user, u, why);
}

/* ---- the broker interface ---- */

static int rb_publish(dx__chat_broker *base, const char *uid, const char *data, size_t len,
                      const void *except) {
    redis_broker *b = (redis_broker *)base;
    base->deliver(base->deliver_arg, uid, data, len, except);
    return send_kind(b, 'M', uid, data, len);
}

static int64_t rb_online(dx__chat_broker *base, const char *uid) {
    redis_broker *b = (redis_broker *)base;
    entry *e = find(b, SELF, uid, 1);
    if (!e) return DX_ENOMEM;
    e->count++;
    announce(b, uid, e->count);
    set_key(b, uid, e->count);
    return total(b, uid);
}

static int64_t rb_offline(dx__chat_broker *base, const char *uid) {
    redis_broker *b = (redis_broker *)base;
    entry *e = find(b, SELF, uid, 0);
    if (e && e->count > 0) {
        e->count--;
        announce(b, uid, e->count);
        set_key(b, uid, e->count);
    }
    return total(b, uid);
}

static int64_t rb_devices(dx__chat_broker *base, const char *uid) {
    return total((redis_broker *)base, uid);
}

static void rb_free(dx__chat_broker *base) {
    redis_broker *b = (redis_broker *)base;
    dx_timer_stop(b->loop, &b->t_beat);
    dx__redis_free(b->sub);
    dx__redis_free(b->pub);
    dx__free(b->tab);
    dx__free(b->buf);
    dx__free(b);
}

static const dx__chat_broker_ops RB_OPS = {
    .free = rb_free,
    .publish = rb_publish,
    .online = rb_online,
    .offline = rb_offline,
    .devices = rb_devices,
};

int dx__chat_broker_redis_up(const dx__chat_broker *base) {
    return up((const redis_broker *)base);
}

void dx__chat_broker_redis_stats(const dx__chat_broker *base, dx_chat_stats *out) {
    const redis_broker *b = (const redis_broker *)base;
    out->redis_up = (uint64_t)up(b);
    uint64_t p = dx__redis_ups(b->pub), s = dx__redis_ups(b->sub);
    out->redis_reconnects = (p > 1 ? p - 1 : 0) + (s > 1 ? s - 1 : 0);
    memcpy(out->bus_us, b->bus_us, sizeof out->bus_us);
    out->bus_us_sum = b->bus_us_sum;
}

/* ---- receiving ---- */

static void on_event(redis_broker *b, const uint8_t *p, size_t n) {
    if (n < HDR || p[0] != 'd' || p[1] != 'x' || p[2] != 2 || n < (size_t)HDR + p[12] ||
        p[12] > UID_MAX)
        return;
    char kind = (char)p[11];
    if (!memcmp(p + 3, b->cfg.node_id, 8)) {
        if (kind == 'H' && b->h_out) { /* our subscriber hears us */
            b->h_out = 0;
            dx__bus_sample(b->bus_us, &b->bus_us_sum, dx__redis_clock_us() - b->h_sent_us);
        }
        return;
    }
    char uid[UID_MAX + 1];
    size_t ul = p[12];
    memcpy(uid, p + HDR, ul);
    uid[ul] = 0;
    if (strlen(uid) != ul) return;
    const uint8_t *body = p + HDR + ul;
    size_t blen = n - HDR - ul;
    int fresh;
    int nix = node_touch(b, p + 3, &fresh);
    /* A node back from the dead (after a Redis outage, say) announced its
     * devices while we were deaf to it: ask again (everyone answers). */
    if (fresh && kind != 'R') (void)send_kind(b, 'R', NULL, NULL, 0);
    switch (kind) {
    case 'M':
        if (ul) b->base.deliver(b->base.deliver_arg, uid, (const char *)body, blen, NULL);
        break;
    case 'P': {
        if (!ul || blen != 4 || nix < 0) break;
        int64_t c = (int64_t)((uint32_t)body[0] << 24 | (uint32_t)body[1] << 16 |
                              (uint32_t)body[2] << 8 | body[3]);
        entry *e = find(b, (unsigned)nix, uid, 1);
        if (!e) break;
        int64_t old = e->gen == b->nodes[nix].gen ? e->count : 0;
        e->gen = b->nodes[nix].gen;
        e->count = c;
        if ((old > 0) != (c > 0) && b->cfg.on_remote)
            b->cfg.on_remote(b->cfg.user, uid, total(b, uid));
        break;
    }
    case 'R':
        announce_all(b, 0);
        break;
    default: /* 'H' or a kind from a newer node: being heard is enough */
        break;
    }
}

static int str_is(const redisReply *r, const char *s) {
    return r->type == REDIS_REPLY_STRING && r->len == strlen(s) && !memcmp(r->str, s, r->len);
}

static void on_sub_reply(struct redisAsyncContext *ac, void *reply, void *priv) {
    redis_broker *b = priv;
    redisReply *r = reply;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3) return;
    if (str_is(r->element[0], "message") && str_is(r->element[1], b->channel) &&
        r->element[2]->type == REDIS_REPLY_STRING) {
        on_event(b, (const uint8_t *)r->element[2]->str, r->element[2]->len);
    } else if (str_is(r->element[0], "subscribe")) {
        b->confirmed = 1;
        b->h_out = 0;
        /* We may have missed announcements while away, and the others may
         * have dropped us: ask for theirs, give ours. */
        (void)send_kind(b, 'R', NULL, NULL, 0);
        announce_all(b, 1);
        report(b);
    }
}

static void on_sub_up(dx__redis *r, void *user) {
    redis_broker *b = user;
    b->confirmed = 0;
    const char *argv[2] = {"SUBSCRIBE", b->channel};
    if (dx__redis_command(r, on_sub_reply, b, 2, argv, NULL) < 0)
        dx__redis_reset(r, "cannot queue SUBSCRIBE");
}

static void on_sub_down(dx__redis *r, void *user, const char *why) {
    redis_broker *b = user;
    b->confirmed = 0;
    b->h_out = 0;
    report(b);
}

static void on_pub_up(dx__redis *r, void *user) {
    redis_broker *b = user;
    /* The keys may have expired while we were away, and the request for
     * the others' counts made when the subscription came back could not
     * be sent without this connection: both now. */
    if (b->confirmed) {
        (void)send_kind(b, 'R', NULL, NULL, 0);
        announce_all(b, 1);
    }
    report(b);
}

static void on_pub_down(dx__redis *r, void *user, const char *why) {
    redis_broker *b = user;
    b->h_out = 0;
    report(b);
}

/* Every third of the TTL: expire silent nodes, say we are alive (which
 * also checks that our subscriber hears the channel), refresh our keys. */
static void on_beat(dx_loop *loop, dx_timer *t) {
    redis_broker *b = CONTAINER(t, redis_broker, t_beat);
    dx_timer_start(loop, t, b->beat_ms);
    uint64_t now = dx_loop_now(loop);
    for (unsigned i = 0; i < b->nnodes; i++) {
        node *n = &b->nodes[i];
        if (!n->alive || now - n->last < b->cfg.presence_ttl_ms) continue;
        n->alive = 0;
        if (b->cfg.on_remote) {
            for (size_t k = 0; k < b->cap; k++) {
                entry *e = &b->tab[k];
                if (e->uid[0] && e->node == i && e->gen == n->gen && e->count > 0)
                    b->cfg.on_remote(b->cfg.user, e->uid, total(b, e->uid));
            }
        }
        n->gen++;
    }
    report(b);
    if (!up(b)) return;
    if (b->h_out && now - b->h_sent >= PROBE_TIMEOUT_MS) {
        b->h_out = 0;
        dx__redis_reset(b->sub, "subscriber probe lost");
        report(b);
        return;
    }
    if (send_kind(b, 'H', NULL, NULL, 0) == 0 && !b->h_out) {
        b->h_out = 1;
        b->h_sent = now;
        b->h_sent_us = dx__redis_clock_us();
    }
    for (size_t k = 0; k < b->cap; k++) {
        entry *e = &b->tab[k];
        if (e->uid[0] && e->node == SELF && e->count > 0) set_key(b, e->uid, e->count);
    }
}

dx__chat_broker *dx__chat_broker_redis(dx_loop *loop, const dx__chat_redis_config *cfg,
                                       dx__chat_deliver_fn deliver, void *arg) {
    redis_broker *b = dx__calloc(1, sizeof *b);
    if (!b) return NULL;
    b->base = (dx__chat_broker){.ops = &RB_OPS, .deliver = deliver, .deliver_arg = arg};
    b->loop = loop;
    b->cfg = *cfg;
    if (!b->cfg.presence_ttl_ms) b->cfg.presence_ttl_ms = 15000;
    b->beat_ms = b->cfg.presence_ttl_ms / 3 ? b->cfg.presence_ttl_ms / 3 : 1;
    b->reported = -1;
    snprintf(b->channel, sizeof b->channel, "duplex:%d:chat", cfg->addr.db);
    snprintf(b->key_prefix, sizeof b->key_prefix, "duplex:%d:presence:", cfg->addr.db);
    for (int i = 0; i < 8; i++)
        snprintf(b->node_hex + 2 * i, 3, "%02x", cfg->node_id[i]);
    dx__redis_config rc = {
        .addr = cfg->addr,
        .ping_interval_ms = PUB_PING_MS,
        .on_up = on_pub_up,
        .on_down = on_pub_down,
        .user = b,
    };
    b->pub = dx__redis_new(loop, &rc);
    rc.ping_interval_ms = 0; /* subscribed: our own heartbeat checks it */
    rc.on_up = on_sub_up;
    rc.on_down = on_sub_down;
    b->sub = b->pub ? dx__redis_new(loop, &rc) : NULL;
    if (!b->sub) {
        dx__redis_free(b->pub);
        dx__free(b);
        return NULL;
    }
    dx_timer_init(&b->t_beat, on_beat);
    dx_timer_start(loop, &b->t_beat, b->beat_ms);
    return &b->base;
}

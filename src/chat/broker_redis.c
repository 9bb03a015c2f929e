/* The chat broker over Redis (see broker_redis.h): deliveries and presence
 * events on one pub/sub channel, presence keys with a TTL, and a mirror of
 * the other nodes' device counts so that the broker interface can answer
 * synchronously. */
#include "chat/broker_redis.h"

#include <stdio.h>
#include <string.h>

#include <duplex/common.h>

#include "core/alloc.h"
#include "io/redisbus.h"

#define UID_MAX 32
#define MAX_NODES 256
#define SELF 0xffffu
#define HDR 2 /* after the bus's tag: kind, uid length */

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
    dx__rbus *bus;
    char key_prefix[48];
    char node_hex[17];
    node nodes[MAX_NODES];
    unsigned nnodes;
    entry *tab;
    size_t cap, used;
    dx_timer t_beat;
    uint32_t beat_ms;
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

static int send_kind(redis_broker *b, char kind, const char *uid, const void *body, size_t len) {
    size_t ul = uid ? strlen(uid) : 0;
    uint8_t hdr[HDR] = {(uint8_t)kind, (uint8_t)ul};
    struct iovec iov[3] = {
        {hdr, HDR}, {(void *)(uintptr_t)uid, ul}, {(void *)(uintptr_t)body, len}};
    int rc = dx__rbus_publish(b->bus, iov, 3);
    return rc == DX_ENOMEM ? rc : rc < 0 ? DX_EIO : 0;
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
        (void)dx__rbus_command(b->bus, 5, argv, NULL);
    } else {
        const char *argv[2] = {"DEL", key};
        (void)dx__rbus_command(b->bus, 2, argv, NULL);
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
    dx__rbus_free(b->bus);
    dx__free(b->tab);
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
    return dx__rbus_up(((const redis_broker *)base)->bus);
}

void dx__chat_broker_redis_stats(const dx__chat_broker *base, dx_chat_stats *out) {
    dx__rbus_stats st;
    dx__rbus_stats_get(((const redis_broker *)base)->bus, &st);
    out->redis_up = st.up;
    out->redis_reconnects = st.reconnects;
    memcpy(out->bus_us, st.bus_us, sizeof out->bus_us);
    out->bus_us_sum = st.bus_us_sum;
}

/* ---- receiving ---- */

static void on_event(void *user, const uint8_t *node_id, const uint8_t *p, size_t n) {
    redis_broker *b = user;
    if (n < HDR || n < (size_t)HDR + p[1] || p[1] > UID_MAX) return;
    char kind = (char)p[0];
    char uid[UID_MAX + 1];
    size_t ul = p[1];
    memcpy(uid, p + HDR, ul);
    uid[ul] = 0;
    if (strlen(uid) != ul) return;
    const uint8_t *body = p + HDR + ul;
    size_t blen = n - HDR - ul;
    int fresh;
    int nix = node_touch(b, node_id, &fresh);
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

/* The bus came up (subscribed, publisher ready) or went down. We may have
 * missed announcements while away, the others may have dropped us, and
 * our keys may have expired: ask for their counts, give ours. */
static void on_state(void *user, int up, const char *why) {
    redis_broker *b = user;
    if (up) {
        (void)send_kind(b, 'R', NULL, NULL, 0);
        announce_all(b, 1);
    }
    if (b->cfg.on_state) b->cfg.on_state(b->cfg.user, up, why);
}

/* Every third of the TTL: expire silent nodes, say we are alive, refresh
 * our keys. */
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
    if (!dx__rbus_up(b->bus)) return;
    (void)send_kind(b, 'H', NULL, NULL, 0);
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
    snprintf(b->key_prefix, sizeof b->key_prefix, "duplex:%d:presence:", cfg->addr.db);
    for (int i = 0; i < 8; i++)
        snprintf(b->node_hex + 2 * i, 3, "%02x", cfg->node_id[i]);
    char channel[48];
    snprintf(channel, sizeof channel, "duplex:%d:chat", cfg->addr.db);
    /* The bus's probe at the heartbeat's pace: the subscriber is checked,
     * and the latency sampled, once a beat. */
    dx__rbus_config bc = {
        .addr = cfg->addr,
        .channel = channel,
        .format = 2,
        .probe_ms = b->beat_ms,
        .on_message = on_event,
        .on_state = on_state,
        .user = b,
    };
    memcpy(bc.node_id, cfg->node_id, sizeof bc.node_id);
    b->bus = dx__rbus_new(loop, &bc);
    if (!b->bus) {
        dx__free(b);
        return NULL;
    }
    dx_timer_init(&b->t_beat, on_beat);
    dx_timer_start(loop, &b->t_beat, b->beat_ms);
    return &b->base;
}

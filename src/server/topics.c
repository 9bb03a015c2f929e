/* Fan-out on this node: dx_server_broadcast's local part and pub/sub
 * topics. Topics: a hash table of topics, each with its list of
 * subscriptions; each connection keeps its own subscriptions linked so
 * they all go when it closes. A publish frames the message once and
 * queues the same shared frame on every subscriber. A topic exists only
 * while it has subscribers, so an idle connection with no subscriptions
 * costs one NULL pointer here. */
#include <string.h>

#include "core/alloc.h"
#include "server/sconn.h"
#include "server/topics.h"
#include "server/wsapi.h"

#define TOPIC_MAX 255

typedef struct dx__topic {
    struct dx__topic *next; /* hash chain */
    dx__sub *subs;
    size_t count;
    uint64_t hash;
    size_t len;
    char name[];
} dx__topic;

struct dx__sub {
    dx__topic *t;
    dx_server_conn *c;
    dx__sub *c_next;          /* the connection's subscriptions */
    dx__sub *t_prev, *t_next; /* the topic's subscribers */
};

/* Queues a shared frame on `c` under the backpressure policy. */
static int send_shared(dx_server_conn *c, dx_shared *sh) {
    if (c->phase != P_WS || dx_conn_state(sc_conn(c)) != DX_OPEN) return DX_ESTATE;
    if (dx_conn_buffered(sc_conn(c)) >= c->srv->cfg.max_buffered) return dx__sc_refuse_slow(c);
    int rc = dx_conn_send_shared(sc_conn(c), sh);
    if (rc == 0) dx__sc_queued(c);
    return rc;
}

/* Local delivery of dx_server_broadcast (broker.c adds the cluster). */
int dx__srv_broadcast_local(dx_server *s, enum dx_opcode op, const void *data, size_t len,
                            const dx_server_conn *except) {
    if (op != DX_OP_TEXT && op != DX_OP_BINARY) return DX_EINVAL;
    if (!s->open || (s->open == except && !s->open->next)) return 0;
    dx_shared *sh = dx_shared_new(op, data, len);
    if (!sh) return DX_ENOMEM;
    int n = 0;
    for (dx_server_conn *c = s->open; c; c = c->next)
        if (c != except && send_shared(c, sh) == 0) n++;
    dx_shared_release(sh);
    s->st.msgs_out[dx__op_slot(op)] += (uint64_t)n;
    s->st.bytes_out[dx__op_slot(op)] += (uint64_t)n * len;
    return n;
}

static uint64_t hash_of(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return h;
}

static dx__topic *find(const dx__topics *tt, const char *name, size_t len, uint64_t h) {
    if (!tt->cap) return NULL;
    for (dx__topic *t = tt->slots[h & (tt->cap - 1)]; t; t = t->next)
        if (t->hash == h && t->len == len && !memcmp(t->name, name, len)) return t;
    return NULL;
}

static int grow(dx__topics *tt) {
    size_t cap = tt->cap ? tt->cap * 2 : 16;
    dx__topic **slots = dx__calloc(cap, sizeof *slots);
    if (!slots) return DX_ENOMEM;
    for (size_t i = 0; i < tt->cap; i++) {
        for (dx__topic *t = tt->slots[i], *n; t; t = n) {
            n = t->next;
            t->next = slots[t->hash & (cap - 1)];
            slots[t->hash & (cap - 1)] = t;
        }
    }
    dx__free(tt->slots);
    tt->slots = slots;
    tt->cap = cap;
    return 0;
}

static void remove_topic(dx__topics *tt, dx__topic *t) {
    dx__topic **pp = &tt->slots[t->hash & (tt->cap - 1)];
    while (*pp != t)
        pp = &(*pp)->next;
    *pp = t->next;
    tt->count--;
    dx__free(t);
}

static void unlink_sub(dx__topics *tt, dx__sub *s) {
    dx__topic *t = s->t;
    if (s->t_prev)
        s->t_prev->t_next = s->t_next;
    else
        t->subs = s->t_next;
    if (s->t_next) s->t_next->t_prev = s->t_prev;
    if (--t->count == 0) remove_topic(tt, t);
    dx__free(s);
}

static int check_name(const char *topic, size_t *len) {
    if (!topic) return DX_EINVAL;
    *len = strlen(topic);
    return *len == 0 || *len > TOPIC_MAX ? DX_EINVAL : 0;
}

int dx_server_subscribe(dx_server_conn *c, const char *topic) {
    size_t len;
    if (check_name(topic, &len)) return DX_EINVAL;
    if (c->phase != P_WS || dx_conn_state(sc_conn(c)) != DX_OPEN) return DX_ESTATE;
    if (dx_server_subscribed(c, topic)) return 0;
    dx__topics *tt = &c->srv->topics;
    uint64_t h = hash_of(topic, len);
    dx__topic *t = find(tt, topic, len, h);
    dx__sub *s = dx__calloc(1, sizeof *s);
    if (!s) return DX_ENOMEM;
    if (!t) {
        if (tt->count >= tt->cap && grow(tt) < 0) {
            dx__free(s);
            return DX_ENOMEM;
        }
        t = dx__calloc(1, sizeof *t + len + 1);
        if (!t) {
            dx__free(s);
            return DX_ENOMEM;
        }
        t->hash = h;
        t->len = len;
        memcpy(t->name, topic, len);
        t->next = tt->slots[h & (tt->cap - 1)];
        tt->slots[h & (tt->cap - 1)] = t;
        tt->count++;
    }
    s->t = t;
    s->c = c;
    s->t_next = t->subs;
    if (t->subs) t->subs->t_prev = s;
    t->subs = s;
    t->count++;
    s->c_next = c->u.subs;
    c->u.subs = s;
    return 0;
}

int dx_server_unsubscribe(dx_server_conn *c, const char *topic) {
    size_t len;
    if (check_name(topic, &len)) return DX_EINVAL;
    for (dx__sub **pp = &c->u.subs; *pp; pp = &(*pp)->c_next) {
        dx__sub *s = *pp;
        if (s->t->len == len && !memcmp(s->t->name, topic, len)) {
            *pp = s->c_next;
            unlink_sub(&c->srv->topics, s);
            return 0;
        }
    }
    return 0;
}

int dx_server_subscribed(const dx_server_conn *c, const char *topic) {
    size_t len;
    if (check_name(topic, &len)) return 0;
    for (const dx__sub *s = c->u.subs; s; s = s->c_next)
        if (s->t->len == len && !memcmp(s->t->name, topic, len)) return 1;
    return 0;
}

void dx__topics_drop_conn(dx_server_conn *c) {
    while (c->u.subs) {
        dx__sub *s = c->u.subs;
        c->u.subs = s->c_next;
        unlink_sub(&c->srv->topics, s);
    }
}

size_t dx_server_topic_count(const dx_server *srv, const char *topic) {
    size_t len;
    if (check_name(topic, &len)) return 0;
    const dx__topic *t = find(&srv->topics, topic, len, hash_of(topic, len));
    return t ? t->count : 0;
}

/* Sends to the topic's subscribers on this server, but `except` and, when
 * max_queued is not SIZE_MAX, those with max_queued bytes queued already
 * (measured before the frame is built: such a subscriber misses this
 * message and keeps its connection, which the backpressure policy would
 * not let it). The frame is built once, at the first subscriber it goes
 * to. Sending never unsubscribes (a policy close only starts the closing
 * handshake), so the list is stable while we walk it. */
static int publish_to(dx_server *srv, const char *topic, enum dx_opcode op, const void *data,
                      size_t len, const dx_server_conn *except, size_t max_queued) {
    size_t tlen;
    if (check_name(topic, &tlen) || (op != DX_OP_TEXT && op != DX_OP_BINARY) || (!data && len))
        return DX_EINVAL;
    dx__topic *t = find(&srv->topics, topic, tlen, hash_of(topic, tlen));
    if (!t) return 0;
    dx_shared *sh = NULL;
    int n = 0;
    for (dx__sub *s = t->subs; s; s = s->t_next) {
        if (s->c == except) continue;
        if (max_queued != SIZE_MAX && dx_server_conn_buffered(s->c) + len >= max_queued) continue;
        if (!sh && !(sh = dx_shared_new(op, data, len))) return DX_ENOMEM;
        if (send_shared(s->c, sh) == 0) n++;
    }
    if (sh) dx_shared_release(sh);
    srv->st.msgs_out[dx__op_slot(op)] += (uint64_t)n;
    srv->st.bytes_out[dx__op_slot(op)] += (uint64_t)n * len;
    return n;
}

/* Local delivery of dx_server_publish (broker.c adds the cluster). */
int dx__topics_publish_local(dx_server *srv, const char *topic, enum dx_opcode op, const void *data,
                             size_t len, const dx_server_conn *except) {
    return publish_to(srv, topic, op, data, len, except, SIZE_MAX);
}

int dx_server_publish_lossy(dx_server *srv, const char *topic, enum dx_opcode op, const void *data,
                            size_t len, const dx_server_conn *except, size_t max_queued) {
    return srv ? publish_to(srv, topic, op, data, len, except, max_queued) : DX_EINVAL;
}

void dx__topics_free(dx__topics *tt) {
    for (size_t i = 0; i < tt->cap; i++) {
        for (dx__topic *t = tt->slots[i], *n; t; t = n) {
            n = t->next;
            for (dx__sub *s = t->subs, *sn; s; s = sn) {
                sn = s->t_next;
                s->c->u.subs = NULL;
                dx__free(s);
            }
            dx__free(t);
        }
    }
    dx__free(tt->slots);
    tt->slots = NULL;
    tt->cap = tt->count = 0;
}

/* The in-process chat broker: one node, so publishing is a direct call and
 * presence is a table of device counts (open addressing, linear probing).
 * Entries are never removed: a user who has been online keeps a slot with
 * count 0, which bounds the table by the number of distinct users. */
#include <string.h>

#include <duplex/common.h>

#include "chat/broker.h"
#include "core/alloc.h"

#define UID_MAX 32

typedef struct slot {
    char uid[UID_MAX + 1]; /* "" = free */
    int64_t count;
} slot;

typedef struct local_broker {
    dx__chat_broker base;
    slot *slots;
    size_t cap, used; /* cap is a power of two */
} local_broker;

static uint64_t hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    while (*s)
        h = (h ^ (uint8_t)*s++) * 1099511628211ull;
    return h;
}

static slot *find(local_broker *b, const char *uid, int create) {
    if (strlen(uid) > UID_MAX || !*uid) return NULL;
    if (create && (b->used + 1) * 2 > b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 64;
        slot *ns = dx__calloc(ncap, sizeof *ns);
        if (!ns) return NULL;
        for (size_t i = 0; i < b->cap; i++) {
            if (!b->slots[i].uid[0]) continue;
            size_t j = hash(b->slots[i].uid) & (ncap - 1);
            while (ns[j].uid[0])
                j = (j + 1) & (ncap - 1);
            ns[j] = b->slots[i];
        }
        dx__free(b->slots);
        b->slots = ns;
        b->cap = ncap;
    }
    if (!b->cap) return NULL;
    size_t i = hash(uid) & (b->cap - 1);
    while (b->slots[i].uid[0]) {
        if (!strcmp(b->slots[i].uid, uid)) return &b->slots[i];
        i = (i + 1) & (b->cap - 1);
    }
    if (!create) return NULL;
    strcpy(b->slots[i].uid, uid);
    b->slots[i].count = 0;
    b->used++;
    return &b->slots[i];
}

static void lb_free(dx__chat_broker *base) {
    local_broker *b = (local_broker *)base;
    dx__free(b->slots);
    dx__free(b);
}

static int lb_publish(dx__chat_broker *base, const char *uid, const char *data, size_t len,
                      const void *except) {
    base->deliver(base->deliver_arg, uid, data, len, except);
    return 0;
}

static int64_t lb_online(dx__chat_broker *base, const char *uid) {
    slot *s = find((local_broker *)base, uid, 1);
    return s ? ++s->count : DX_ENOMEM;
}

static int64_t lb_offline(dx__chat_broker *base, const char *uid) {
    slot *s = find((local_broker *)base, uid, 0);
    if (!s || s->count == 0) return 0;
    return --s->count;
}

static int64_t lb_devices(dx__chat_broker *base, const char *uid) {
    slot *s = find((local_broker *)base, uid, 0);
    return s ? s->count : 0;
}

static const dx__chat_broker_ops LB_OPS = {
    .free = lb_free,
    .publish = lb_publish,
    .online = lb_online,
    .offline = lb_offline,
    .devices = lb_devices,
};

dx__chat_broker *dx__chat_broker_local(dx__chat_deliver_fn deliver, void *arg) {
    local_broker *b = dx__calloc(1, sizeof *b);
    if (!b) return NULL;
    b->base = (dx__chat_broker){.ops = &LB_OPS, .deliver = deliver, .deliver_arg = arg};
    return &b->base;
}

/* A bounded, expiring string-keyed table (see keytab.h): open addressing
 * with linear probing and no tombstones — entries are never removed one
 * by one, only dropped when the table is rebuilt, which is also when
 * expired entries go. */
#include <string.h>

#include "chat/keytab.h"
#include "core/alloc.h"

#define MIN_CAP 64

static uint64_t hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

void dx__keytab_init(dx__keytab *t, size_t max) {
    *t = (dx__keytab){.max = max ? max : 1};
}

void dx__keytab_free(dx__keytab *t) {
    dx__free(t->slots);
    t->slots = NULL;
    t->cap = t->used = 0;
}

void dx__keytab_clear(dx__keytab *t) {
    if (t->used && t->slots) memset(t->slots, 0, t->cap * sizeof *t->slots);
    t->used = 0;
}

static dx__keyent *probe(dx__keyent *slots, size_t cap, const char *key, size_t len) {
    size_t i = hash(key, len) & (cap - 1);
    while (slots[i].len && !(slots[i].len == len && !memcmp(slots[i].key, key, len)))
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

/* Copies the live entries into a table sized for them (load under 1/2),
 * at most the power of two above 2 * max. 0, or -1 when out of memory. */
static int rebuild(dx__keytab *t, int64_t now) {
    size_t live = 0;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].len && t->slots[i].until > now) live++;
    size_t ncap = MIN_CAP, top = MIN_CAP;
    while (top < t->max * 2)
        top *= 2;
    while (ncap < (live + 1) * 2 && ncap < top)
        ncap *= 2;
    dx__keyent *ns = dx__calloc(ncap, sizeof *ns);
    if (!ns) return -1;
    for (size_t i = 0; i < t->cap; i++) {
        dx__keyent *e = &t->slots[i];
        if (e->len && e->until > now) *probe(ns, ncap, e->key, e->len) = *e;
    }
    dx__free(t->slots);
    t->slots = ns;
    t->cap = ncap;
    t->used = live;
    return 0;
}

dx__keyent *dx__keytab_get(dx__keytab *t, const char *key, size_t len, int64_t now, int create,
                           int *fresh) {
    if (fresh) *fresh = 0;
    if (len == 0 || len > DX_KEYTAB_KEY_MAX) return NULL;
    if (t->cap) {
        dx__keyent *e = probe(t->slots, t->cap, key, len);
        if (e->len) {
            if (e->until > now) return e;
            if (!create) return NULL;
            /* Expired: the same slot starts over. */
            e->until = e->a = e->b = 0;
            if (fresh) *fresh = 1;
            return e;
        }
        if (!create) return NULL;
    }
    if (!create) return NULL;
    /* Keep the load under 3/4 for short probes, and never more than max
     * live entries: past that, reclaim the expired ones, but not again for
     * a second when that freed too little (a table full of live entries
     * would otherwise be rebuilt on every call). */
    if (t->used + 1 > t->max || (t->used + 1) * 4 > t->cap * 3) {
        if (t->used + 1 > t->max && now < t->full_until) return NULL;
        if (rebuild(t, now) < 0) return NULL;
        if (t->used + 1 > t->max) {
            t->full_until = now + DX_KEYTAB_RETRY;
            return NULL;
        }
    }
    dx__keyent *e = probe(t->slots, t->cap, key, len);
    memset(e, 0, sizeof *e);
    memcpy(e->key, key, len);
    e->len = (uint8_t)len;
    t->used++;
    if (fresh) *fresh = 1;
    return e;
}

/* GCRA rather than tokens and a last refill: one number, any cost, µs
 * resolution without drift, and the time it holds is also when the entry
 * may go. A refused request changes nothing, so retrying early costs the
 * client nothing more. */
int64_t dx__keytab_take(dx__keyent *e, int64_t now, uint32_t cost, uint32_t burst,
                        int64_t every_us) {
    if (every_us < 1) every_us = 1;
    int64_t us = now * 1000, tol = (int64_t)(burst ? burst : 1) * every_us;
    int64_t t = e->a > us ? e->a : us;
    if (t > us + tol) t = us + tol; /* the clock went back */
    int64_t next = t + (int64_t)cost * every_us;
    if (next - us > tol) return (next - us - tol + 999) / 1000;
    e->a = next;
    e->until = (next + 999) / 1000;
    return 0;
}

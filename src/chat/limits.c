/* Per-user token buckets for the chat (see limits.h). */
#include <string.h>

#include <duplex/common.h>

#include "chat/engine.h"
#include "chat/limits.h"
#include "core/alloc.h"

/* Rates above this many a second are treated as no limit: one token a
 * microsecond is the resolution of the buckets. */
#define RATE_MAX 1000000u
#define TABLE_MIN 64

static const char *const NAMES[DX__CHAT_KINDS] = {
    [DX__CHAT_SEND] = "send",   [DX__CHAT_BYTES] = "bytes",   [DX__CHAT_JOIN] = "join",
    [DX__CHAT_READ] = "read",   [DX__CHAT_TYPING] = "typing", [DX__CHAT_PRESENCE] = "presence",
    [DX__CHAT_FETCH] = "fetch",
};

/* Why these defaults: each is far above what a person does by hand, and a
 * client that resends its backlog after a reconnection fits in the burst.
 * send: a fast typist manages one message a second; 20/s with 100 saved
 * lets a client flush 100 unsent messages at once, and caps a script at 20
 * rows a second instead of the thousands the issue measured. bytes: 1 KiB/s
 * with 256 KiB saved (64 messages of the 4000-byte maximum at once, or
 * thousands of ordinary ones) caps what one user can add to the database at
 * about 86 MB a day, against 17-26 MB a second without it. join: nobody
 * joins more than a few rooms a second. read: one per conversation looked
 * at. typing: clients send one per conversation every 2 s. presence: each
 * asks about up to 100 users. fetch: one sync per (re)connection and a
 * history page per scroll; a sync split into pages costs one per page. */
static const dx_chat_rate DEFAULTS[DX__CHAT_KINDS] = {
    [DX__CHAT_SEND] = {20, 100}, [DX__CHAT_BYTES] = {1024, 256 * 1024},
    [DX__CHAT_JOIN] = {5, 20},   [DX__CHAT_READ] = {20, 100},
    [DX__CHAT_TYPING] = {5, 20}, [DX__CHAT_PRESENCE] = {5, 20},
    [DX__CHAT_FETCH] = {10, 40},
};

typedef struct entry {
    char uid[DX_CHAT_UID_MAX + 1];   /* "" = free slot */
    int64_t full_at[DX__CHAT_KINDS]; /* µs: when each bucket is full again */
} entry;

struct dx__chat_limiter {
    int64_t interval[DX__CHAT_KINDS];  /* µs per token; 0 = no limit */
    int64_t tolerance[DX__CHAT_KINDS]; /* burst * interval */
    entry *tab;
    size_t cap, used; /* cap is 0 or a power of two */
};

const char *dx__chat_kind_name(int kind) {
    return kind >= 0 && kind < DX__CHAT_KINDS ? NAMES[kind] : "?";
}

static dx_chat_rate *rate_of(dx_chat_limits *l, int k) {
    dx_chat_rate *r[DX__CHAT_KINDS] = {&l->send,   &l->bytes,    &l->join, &l->read,
                                       &l->typing, &l->presence, &l->fetch};
    return r[k];
}

void dx__chat_limits_resolve(const dx_chat_limits *in, dx_chat_limits *out) {
    static const dx_chat_limits zero;
    *out = in ? *in : zero;
    for (int k = 0; k < DX__CHAT_KINDS; k++) {
        dx_chat_rate *r = rate_of(out, k);
        if (r->rate > RATE_MAX) {
            *r = (dx_chat_rate){DX_CHAT_UNLIMITED, 0};
            continue;
        }
        if (!r->rate) *r = DEFAULTS[k];
        if (!r->burst) r->burst = DEFAULTS[k].burst > r->rate ? DEFAULTS[k].burst : r->rate;
        if (k == DX__CHAT_BYTES && r->burst < DX_CHAT_TEXT_MAX) r->burst = DX_CHAT_TEXT_MAX;
    }
    if (!out->max_rooms) out->max_rooms = DX__CHAT_MAX_ROOMS;
    if (!out->sync_page) out->sync_page = DX__CHAT_SYNC_PAGE;
}

dx__chat_limiter *dx__chat_limiter_new(const dx_chat_limits *l) {
    dx__chat_limiter *lim = dx__calloc(1, sizeof *lim);
    if (!lim) return NULL;
    dx_chat_limits copy = *l;
    for (int k = 0; k < DX__CHAT_KINDS; k++) {
        const dx_chat_rate *r = rate_of(&copy, k);
        if (r->rate == DX_CHAT_UNLIMITED || !r->rate) continue;
        lim->interval[k] = 1000000 / r->rate;
        lim->tolerance[k] = (int64_t)r->burst * lim->interval[k];
    }
    return lim;
}

void dx__chat_limiter_free(dx__chat_limiter *lim) {
    if (!lim) return;
    dx__free(lim->tab);
    dx__free(lim);
}

size_t dx__chat_limiter_size(const dx__chat_limiter *lim) {
    return lim->used;
}

static size_t hash(const char *s) {
    size_t h = 1469598103934665603u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

/* The slot of `uid`, or the free slot where it would go. */
static entry *slot(entry *tab, size_t cap, const char *uid) {
    for (size_t i = hash(uid) & (cap - 1);; i = (i + 1) & (cap - 1))
        if (!tab[i].uid[0] || !strcmp(tab[i].uid, uid)) return &tab[i];
}

static int idle(const entry *e, int64_t now) {
    for (int k = 0; k < DX__CHAT_KINDS; k++)
        if (e->full_at[k] > now) return 0;
    return 1;
}

/* Copies the entries that still hold something into a table sized for
 * them: twice what they need at least, so that a rebuild comes only after
 * cap/4 new users, and the work stays constant per request. */
static int rebuild(dx__chat_limiter *lim, int64_t now) {
    size_t live = 0;
    for (size_t i = 0; i < lim->cap; i++)
        live += lim->tab[i].uid[0] && !idle(&lim->tab[i], now);
    size_t ncap = TABLE_MIN;
    while (ncap < live * 4)
        ncap *= 2;
    entry *nt = dx__calloc(ncap, sizeof *nt);
    if (!nt) return DX_ENOMEM;
    for (size_t i = 0; i < lim->cap; i++) {
        entry *e = &lim->tab[i];
        if (e->uid[0] && !idle(e, now)) *slot(nt, ncap, e->uid) = *e;
    }
    dx__free(lim->tab);
    lim->tab = nt;
    lim->cap = ncap;
    lim->used = live;
    return 0;
}

static entry *find(dx__chat_limiter *lim, const char *uid, int64_t now) {
    entry *e = lim->cap ? slot(lim->tab, lim->cap, uid) : NULL;
    if (e && e->uid[0]) return e;
    if ((lim->used + 1) * 4 > lim->cap * 3) {
        /* When the memory is not there, the old table still has room
         * until it is one slot from full (probing needs a free slot). */
        if (rebuild(lim, now) < 0 && lim->used + 2 > lim->cap) return NULL;
        e = slot(lim->tab, lim->cap, uid);
    }
    size_t n = strlen(uid);
    if (n > DX_CHAT_UID_MAX) n = DX_CHAT_UID_MAX;
    memset(e, 0, sizeof *e);
    memcpy(e->uid, uid, n);
    lim->used++;
    return e;
}

int64_t dx__chat_limiter_take(dx__chat_limiter *lim, const char *uid, int64_t now_ms, int kind,
                              uint32_t cost, int kind2, uint32_t cost2, int *which) {
    int kinds[2] = {kind, kind2};
    uint32_t costs[2] = {cost, cost2};
    int on = 0;
    for (int i = 0; i < 2; i++) {
        if (kinds[i] < 0 || kinds[i] >= DX__CHAT_KINDS || !lim->interval[kinds[i]])
            kinds[i] = DX__CHAT_NONE;
        else
            on = 1;
    }
    if (!on || !uid[0]) return 0;
    int64_t now = now_ms * 1000;
    entry *e = find(lim, uid, now);
    if (!e) return DX_ENOMEM;
    int64_t next[2] = {0, 0}, wait = 0;
    for (int i = 0; i < 2; i++) {
        int k = kinds[i];
        if (k < 0) continue;
        int64_t tol = lim->tolerance[k];
        int64_t t = e->full_at[k];
        if (t < now) t = now;
        if (t > now + tol) t = now + tol; /* the clock went back */
        next[i] = t + (int64_t)costs[i] * lim->interval[k];
        if (next[i] - now > tol && next[i] - now - tol > wait) {
            wait = next[i] - now - tol;
            if (which) *which = k;
        }
    }
    if (wait > 0) return (wait + 999) / 1000;
    for (int i = 0; i < 2; i++)
        if (kinds[i] >= 0) e->full_at[kinds[i]] = next[i];
    return 0;
}

/* Per-user token buckets for the chat (see limits.h). */
#include <string.h>

#include <duplex/common.h>

#include "chat/engine.h"
#include "chat/keytab.h"
#include "chat/limits.h"
#include "core/alloc.h"

/* Rates above this many a second are treated as no limit: one token a
 * microsecond is the resolution of the buckets. */
#define RATE_MAX 1000000u

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

/* When the table is full of live buckets, a user without one is refused
 * (for DX_KEYTAB_RETRY ms, when the table tries to reclaim again) rather
 * than let through. Filling it takes tens of thousands of buckets that are
 * not full, each a recent request of an identified user: thousands of
 * accounts, a flood already. Letting the users outside the table through
 * would hand that flood the means to switch the limits off — keep the
 * table full with some accounts and send unmetered, unrecorded, from
 * another, at the 17-26 MB a second of stores that the limits are there to
 * stop. Refusing costs the users not yet in the table a delay that their
 * clients already honour (retry_after), loses nothing, and leaves the
 * users already in it served; and, as with expiry, nobody gets a bucket
 * back by being dropped from the table. */

struct dx__chat_limiter {
    int64_t interval[DX__CHAT_KINDS]; /* µs per token; 0 = no limit */
    uint32_t burst[DX__CHAT_KINDS];
    dx__keytab tab; /* kind '0'+k, then the uid → its bucket of kind k */
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
        lim->burst[k] = r->burst;
    }
    dx__keytab_init(&lim->tab, DX__CHAT_LIMITER_MAX);
    return lim;
}

void dx__chat_limiter_free(dx__chat_limiter *lim) {
    if (!lim) return;
    dx__keytab_free(&lim->tab);
    dx__free(lim);
}

size_t dx__chat_limiter_size(const dx__chat_limiter *lim) {
    return lim->tab.used;
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
    size_t n = strlen(uid);
    if (n > DX_CHAT_UID_MAX) n = DX_CHAT_UID_MAX;
    char key[2][1 + DX_CHAT_UID_MAX];
    dx__keyent was[2]; /* a and until before a take that passed */
    int took[2] = {0, 0};
    int64_t wait = 0;
    for (int i = 0; i < 2; i++) {
        int k = kinds[i];
        if (k < 0) continue;
        key[i][0] = (char)('0' + k);
        memcpy(key[i] + 1, uid, n);
        dx__keyent *e = dx__keytab_get(&lim->tab, key[i], n + 1, now_ms, 1, NULL);
        int64_t w = DX_KEYTAB_RETRY; /* full: fail closed (see above) */
        if (e) {
            was[i] = *e;
            w = dx__keytab_take(e, now_ms, costs[i], lim->burst[k], lim->interval[k]);
            took[i] = w == 0;
        } else if (lim->tab.used < lim->tab.max) { /* not full: out of memory */
            wait = DX_ENOMEM;
            break;
        }
        if (w > wait) {
            wait = w;
            if (which) *which = k;
        }
    }
    if (wait == 0) return 0;
    /* Both or neither: put back what a take that passed changed. Making the
     * second entry may have moved the first, so it is looked up again; a
     * take of cost 0 may have left it expired, and then had changed
     * nothing that counts. */
    for (int i = 0; i < 2; i++) {
        dx__keyent *e = took[i] ? dx__keytab_get(&lim->tab, key[i], n + 1, now_ms, 0, NULL) : NULL;
        if (e) {
            e->a = was[i].a;
            e->until = was[i].until;
        }
    }
    return wait;
}

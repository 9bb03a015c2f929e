/* The chat engine: connections in, protocol replies out (see engine.h and
 * docs/chat-protocol.md). Requests are parsed and validated here with
 * jansson; every failure becomes an `error` reply, never a crash. This file
 * holds the dispatch, the turn (pending replies, group commit, coalesced
 * pushes), presence and the requests of version 1 that write; the reads are
 * in fetch.c, and revision 2 in groups.c, edits.c, search.c and attach.c,
 * which share engine_int.h. */
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <duplex/common.h>

#include "chat/engine_int.h"
#include "chat/jsonr.h"
#include "chat/worker.h"
#include "core/alloc.h"

/* ---- helpers ----------------------------------------------------------- */

char *dx__chat_dump(json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

static int wait_push(dx__chat *chat, const pending *p);

void dx__chat_send_json(dx__chat *chat, dx__chat_dev *d, json_t *j) {
    char *s = dx__chat_dump(j);
    if (!s) return;
    if (chat->hold) {
        /* A reply to a read that may show what is not durable yet: it
         * leaves after the last commit, in order (before_read). */
        pending p = {.dev = d, .reply = s, .no = chat->commits};
        if (wait_push(chat, &p) == 0) return;
    }
    chat->io.send(chat->io.arg, d, s, strlen(s));
    free(s);
}

static void send_error(dx__chat *chat, dx__chat_dev *d, json_t *id, const char *code,
                       const char *msg, const char *field) {
    json_t *j = dx__chat_env("error");
    if (!j) return;
    if (id) json_object_set(j, "id", id);
    json_object_set_new(j, "code", json_string(code));
    json_object_set_new(j, "message", json_string(msg));
    if (field) json_object_set_new(j, "field", json_string(field));
    dx__chat_send_json(chat, d, j);
}

int dx__chat_publish(dx__chat *chat, const char *uid, const char *data,
                     const dx__chat_dev *except) {
    return chat->broker->ops->publish(chat->broker, uid, data, strlen(data), except);
}

/* Opens the turn's transaction on the first write. */
int dx__chat_tx(dx__chat *chat) {
    if (chat->in_tx) return 0;
    int rc = chat->st->ops->begin(chat->st);
    if (rc < 0) return rc;
    chat->in_tx = 1;
    if (!chat->scheduled) {
        chat->scheduled = 1;
        chat->io.schedule(chat->io.arg);
    }
    return 0;
}

/* Room for one more pending entry: 0 or DX_ENOMEM. */
static int pend_reserve(dx__chat *chat) {
    if (chat->npend < chat->cap) return 0;
    size_t ncap = chat->cap ? chat->cap * 2 : 64;
    pending *np = dx__realloc(chat->pend, ncap * sizeof *np);
    if (!np) return DX_ENOMEM;
    chat->pend = np;
    chat->cap = ncap;
    return 0;
}

int dx__chat_add_pending(dx__chat *chat, dx__chat_dev *d, json_t *id, json_t *reply,
                         const char *conv, json_t *bcast, int self, const char *also) {
    if (pend_reserve(chat) < 0) goto nomem;
    pending *p = &chat->pend[chat->npend];
    *p = (pending){.dev = d, .bcast_self = self};
    if (also) snprintf(p->also, sizeof p->also, "%s", also);
    p->reply = reply ? dx__chat_dump(reply) : NULL;
    p->bcast = bcast ? dx__chat_dump(bcast) : NULL;
    p->conv = conv ? dx__strndup(conv, strlen(conv)) : NULL;
    reply = bcast = NULL;
    if ((!p->reply && !p->bcast) || (conv && !p->conv)) {
        free(p->reply);
        free(p->bcast);
        dx__free(p->conv);
        goto nomem;
    }
    p->id = id ? json_incref(id) : NULL;
    p->t0 = chat->t_req;
    chat->npend++;
    return 0;
nomem:
    json_decref(reply);
    json_decref(bcast);
    return DX_ENOMEM;
}

typedef struct bcast_arg {
    dx__chat *chat;
    const char *data;
    const dx__chat_dev *except;
    const char *skip_uid; /* a member left out entirely, or NULL */
} bcast_arg;

static int bcast_one(void *arg, const char *uid, int64_t n) {
    bcast_arg *a = arg;
    if (a->skip_uid && !strcmp(uid, a->skip_uid)) return 0;
    (void)dx__chat_publish(a->chat, uid, a->data, a->except);
    return 0;
}

/* To every device of every member of `conv`. */
static int to_members(dx__chat *chat, const char *conv, const char *data,
                      const dx__chat_dev *except) {
    if (conv[0] == 'd') {
        /* A direct conversation names its two members: no query. */
        char x[DX_CHAT_UID_MAX + 1], y[DX_CHAT_UID_MAX + 1];
        dx__chat_direct_uids(conv, x, y);
        int rc = dx__chat_publish(chat, x, data, except);
        return rc < 0 ? rc : dx__chat_publish(chat, y, data, except);
    }
    bcast_arg a = {chat, data, except, NULL};
    return chat->st->ops->members(chat->st, conv, INT64_MAX, NULL, bcast_one, &a);
}

/* The key of (uid, conv) in the coalescing tables, after `kind` when not
 * 0; its length. */
static size_t fo_key(char out[DX_KEYTAB_KEY_MAX], char kind, const char *uid, const char *conv) {
    size_t n = 0, u = strlen(uid), c = conv ? strlen(conv) : 0;
    if ((kind != 0) + u + 1 + c > DX_KEYTAB_KEY_MAX) return 0;
    if (kind) out[n++] = kind;
    memcpy(out + n, uid, u);
    n += u;
    if (conv) {
        out[n++] = 0;
        memcpy(out + n, conv, c);
        n += c;
    }
    return n;
}

static void presence_push(dx__chat *chat, const char *uid, int online, int64_t ts);

/* Presence is settled once per turn: a user whose devices all left and
 * came back within it (or the reverse) changed nothing its contacts need
 * to hear about. Runs before the commit, since going offline writes
 * last_seen. Entries that changed nothing get was_online = -1. */
static void presence_settle(dx__chat *chat, int64_t now) {
    for (size_t i = 0; i < chat->fo.npres; i++) {
        struct pres *p = &chat->fo.pres[i];
        int on = chat->broker->ops->devices(chat->broker, p->uid) > 0;
        if (on == p->was_online)
            p->was_online = -1;
        else if (!on && !chat->worker && dx__chat_tx(chat) == 0)
            (void)chat->st->ops->touch_user(chat->st, p->uid, now);
    }
}

/* Queues `j` (taken) for every member of `conv` (NULL: none) and then
 * `uid` (NULL: none), behind this turn's commit like a delivery, but not
 * counted as one. */
static int add_push(dx__chat *chat, const char *conv, json_t *j, const char *uid) {
    int rc = dx__chat_add_pending(chat, NULL, NULL, NULL, conv, j, 1, uid);
    if (rc == 0) chat->pend[chat->npend - 1].is_push = 1;
    return rc;
}

/* This turn's receipts, one per reader and conversation with its highest
 * seq, and only when that is not what was pushed last (a read that did not
 * move the position tells nobody anything). */
static void receipts_push(dx__chat *chat, int64_t now) {
    for (size_t i = 0; i < chat->fo.nrcpt; i++) {
        struct receipt *rc = &chat->fo.rcpt[i];
        char key[DX_KEYTAB_KEY_MAX];
        size_t kn = fo_key(key, 0, rc->uid, rc->conv);
        int fresh = 0;
        dx__keyent *e = dx__keytab_get(&chat->fo.rcpt_sent, key, kn, now, 1, &fresh);
        if (e && !fresh && e->a == rc->seq) continue;
        if (e) {
            e->a = rc->seq;
            e->until = now + RCPT_SENT_MS;
        }
        json_t *j = json_pack("{s:i, s:s, s:s, s:s, s:I}", "v", DX_CHAT_PROTO, "type", "read",
                              "conv", rc->conv, "uid", rc->uid, "seq", (json_int_t)rc->seq);
        if (j) (void)add_push(chat, rc->conv, j, NULL);
    }
}

/* Notes that `uid` became a member of the room `conv` this turn: one
 * `members` push per room at the flush, however many joined. */
static int members_note(dx__chat *chat, const char *conv, const char *uid) {
    char key[DX_KEYTAB_KEY_MAX];
    size_t kn = fo_key(key, 'm', conv, NULL);
    int fresh = 0;
    dx__keyent *e =
        dx__keytab_get(&chat->fo.turn_ix, key, kn, chat->io.now_ms(chat->io.arg), 1, &fresh);
    struct mnote *m = NULL;
    if (e && !fresh) {
        m = &chat->fo.mem[e->a];
    } else {
        /* A turn with more rooms than the index holds: the rest get an
         * entry each (a push each), as without coalescing. */
        if (chat->fo.nmem == chat->fo.mcap) {
            size_t ncap = chat->fo.mcap ? chat->fo.mcap * 2 : 8;
            struct mnote *nm = dx__realloc(chat->fo.mem, ncap * sizeof *nm);
            if (!nm) return DX_ENOMEM;
            chat->fo.mem = nm;
            chat->fo.mcap = ncap;
        }
        json_t *joined = json_array();
        if (!joined) return DX_ENOMEM;
        if (e) {
            e->a = (int64_t)chat->fo.nmem;
            e->until = INT64_MAX;
        }
        m = &chat->fo.mem[chat->fo.nmem++];
        snprintf(m->conv, sizeof m->conv, "%s", conv);
        m->joined = joined;
    }
    json_array_append_new(m->joined, json_string(uid));
    return 0;
}

static int count_only(void *arg, const char *uid, int64_t n) {
    return 0;
}

/* The member count of a large room, remembered for COUNT_MS: counting is
 * a scan of the room's members, which a lobby of 10,000 would otherwise
 * pay in every sync and every turn that brings an arrival. */
#define COUNT_MS 1000
#define COUNT_KEYS 1024

int dx__chat_count_cached(dx__chat *chat, const char *conv, int64_t *count) {
    dx__keyent *e =
        dx__keytab_get(&chat->counts, conv, strlen(conv), chat->io.now_ms(chat->io.arg), 0, NULL);
    if (!e) return 0;
    *count = e->a;
    return 1;
}

void dx__chat_count_note(dx__chat *chat, const char *conv, int64_t count) {
    int64_t now = chat->io.now_ms(chat->io.arg);
    int fresh = 0;
    dx__keyent *e = dx__keytab_get(&chat->counts, conv, strlen(conv), now, 1, &fresh);
    if (!e) return;
    if (fresh) e->until = now + COUNT_MS;
    e->a = count;
}

/* The rooms that gained members this turn, after the commit, one push per
 * room: a room of at most MEMBERS_LIST members (whose list sync gives)
 * tells every member's devices the new count and who joined; a larger one
 * tells only the newcomers (their count), so that an arrival costs
 * O(1) messages however big the room: the others see the count at their
 * next sync (docs/chat-protocol.md, "join"). */
static void members_push(dx__chat *chat) {
    for (size_t i = 0; i < chat->fo.nmem; i++) {
        struct mnote *m = &chat->fo.mem[i];
        int64_t count = 0;
        size_t n = json_array_size(m->joined);
        if (dx__chat_count_cached(chat, m->conv, &count) && count > MEMBERS_LIST)
            count += (int64_t)n;
        else if (chat->st->ops->members(chat->st, m->conv, 0, &count, count_only, NULL) < 0)
            count = -1;
        if (count > MEMBERS_LIST) dx__chat_count_note(chat, m->conv, count);
        for (size_t k = 0; count >= 0 && k < (count > MEMBERS_LIST ? n : 1); k++) {
            json_t *j = json_pack("{s:i, s:s, s:s, s:I}", "v", DX_CHAT_PROTO, "type", "members",
                                  "conv", m->conv, "count", (json_int_t)count);
            if (!j) break;
            if (count <= MEMBERS_LIST) {
                json_object_set(j, "joined", m->joined);
                (void)add_push(chat, m->conv, j, NULL);
            } else {
                (void)add_push(chat, NULL, j, json_string_value(json_array_get(m->joined, k)));
            }
        }
        json_decref(m->joined);
    }
    chat->fo.nmem = 0;
}

static const int64_t latency_bounds[DX_CHAT_LATENCY_BUCKETS] = DX_CHAT_LATENCY_BOUNDS_US;

void dx__chat_observe(uint64_t *buckets, uint64_t *sum, int64_t us) {
    if (us < 0) us = 0;
    size_t i = 0;
    while (i < DX_CHAT_LATENCY_BUCKETS && us > latency_bounds[i])
        i++;
    buckets[i]++;
    *sum += (uint64_t)us;
}

static int64_t mono_us(dx__chat *chat) {
    return chat->io.mono_us ? chat->io.mono_us(chat->io.arg) : 0;
}

/* ---- durability --------------------------------------------------------
 * A turn's outputs (acks, deliveries, receipts, members pushes, and the
 * replies of reads that may show them) leave only once the commit that
 * holds them is durable. For a store whose commit() is the durability
 * point that is at once; for one with sync() (SQLite: store_sqlite.c),
 * they wait in `wait`, numbered by commit, while io.sync runs the fsync on
 * the transport's store thread; the loop goes on meanwhile, and the turns
 * that commit during one fsync share the next (group commit, sized by what
 * arrived while the disk was busy). Typing and presence never wait. */

static void pending_free(pending *p) {
    json_decref(p->id);
    if (p->own) {
        dx__free(p->own);
        return;
    }
    free(p->reply);
    free(p->bcast);
    dx__free(p->conv);
}

static int wait_push(dx__chat *chat, const pending *p) {
    if (chat->nwait == chat->wcap) {
        if (chat->whead > 0) {
            memmove(chat->wait, chat->wait + chat->whead,
                    (chat->nwait - chat->whead) * sizeof *chat->wait);
            chat->nwait -= chat->whead;
            chat->whead = 0;
        }
        if (chat->nwait == chat->wcap) {
            size_t ncap = chat->wcap ? chat->wcap * 2 : 64;
            pending *nw = dx__realloc(chat->wait, ncap * sizeof *nw);
            if (!nw) return DX_ENOMEM;
            chat->wait = nw;
            chat->wcap = ncap;
        }
    }
    chat->wait[chat->nwait++] = *p;
    return 0;
}

/* Sends what `p` carried (ok) or tells its request the store failed. */
static void pending_out(dx__chat *chat, pending *p, int ok, int64_t t_sent) {
    if (!ok) {
        if (p->dev && p->reply)
            send_error(chat, p->dev, p->id, "store_failed",
                       "the database refused the write; nothing was stored", NULL);
        return;
    }
    if (p->dev && p->reply) chat->io.send(chat->io.arg, p->dev, p->reply, strlen(p->reply));
    if (p->is_ack) {
        chat->stats.acks++;
        if (chat->io.mono_us)
            dx__chat_observe(chat->stats.ack_us, &chat->stats.ack_us_sum, t_sent - p->t0);
    }
    if (p->conv && p->bcast) {
        if (!p->is_push) chat->stats.deliveries++;
        (void)to_members(chat, p->conv, p->bcast, p->bcast_self ? NULL : p->dev);
    }
    /* A removed member hears of its removal last, and only here: the
     * lookup above no longer finds it. */
    if (p->also[0] && p->bcast) (void)dx__chat_publish(chat, p->also, p->bcast, NULL);
    if (p->fid[0] || p->tid[0]) dx__chat_files_release(chat, p->fid, p->tid);
}

/* Sends what waited for commits up to chat->durable; `failed` commits
 * (from `failed_from` on) get store_failed instead. Entries are taken one
 * at a time: sending may close a device, which clears its entries. */
static void release(dx__chat *chat, uint64_t failed_from) {
    int64_t t_sent = chat->io.mono_us ? mono_us(chat) : 0;
    while (chat->whead < chat->nwait && chat->wait[chat->whead].no <= chat->durable) {
        pending p = chat->wait[chat->whead++];
        pending_out(chat, &p, !failed_from || p.no < failed_from, t_sent);
        pending_free(&p);
    }
    if (chat->whead == chat->nwait) chat->whead = chat->nwait = 0;
}

void dx__chat_durable(dx__chat *chat, uint64_t no, int rc) {
    if (no <= chat->durable) return;
    uint64_t failed_from = 0;
    if (rc < 0) {
        chat->stats.store_errors++;
        failed_from = chat->durable + 1;
    }
    chat->durable = no;
    release(chat, failed_from);
}

int dx__chat_flush(dx__chat *chat) {
    int64_t now = chat->fo.npres || chat->fo.nrcpt ? chat->io.now_ms(chat->io.arg) : 0;
    presence_settle(chat, now);
    chat->scheduled = 0;
    int rc = 0, wrote = 0;
    if (chat->in_tx) {
        int64_t t0 = mono_us(chat);
        rc = chat->st->ops->commit(chat->st);
        if (rc < 0) {
            chat->st->ops->rollback(chat->st);
            chat->stats.store_errors++;
        } else {
            wrote = 1;
            chat->stats.commits++;
            chat->stats.committed += chat->npend;
            if (chat->io.mono_us)
                dx__chat_observe(chat->stats.commit_us, &chat->stats.commit_us_sum,
                                 mono_us(chat) - t0);
        }
        chat->in_tx = 0;
    }
    if (rc < 0) {
        /* Nothing of this turn was stored: its requests hear so at once
         * (what earlier turns committed still waits for its fsync), and
         * the direct conversations it created may not exist. */
        dx__keytab_clear(&chat->directs);
        for (size_t i = 0; i < chat->npend; i++) {
            pending_out(chat, &chat->pend[i], 0, 0);
            pending_free(&chat->pend[i]);
        }
        chat->npend = 0;
        chat->fo.nrcpt = 0;
        for (size_t i = 0; i < chat->fo.nmem; i++)
            json_decref(chat->fo.mem[i].joined);
        chat->fo.nmem = 0;
    } else {
        /* Receipts and memberships only once their positions are
         * committed: they follow this turn's deliveries. */
        receipts_push(chat, now);
        chat->fo.nrcpt = 0;
        members_push(chat);
        if (wrote) chat->commits++;
        size_t i = 0;
        for (; i < chat->npend; i++) {
            chat->pend[i].no = chat->commits;
            if (wait_push(chat, &chat->pend[i]) < 0) break;
        }
        /* Out of memory for the queue: those requests get no ack, as if
         * the connection had dropped; a resend is answered as a dup. */
        for (; i < chat->npend; i++)
            pending_free(&chat->pend[i]);
        chat->npend = 0;
        if (!wrote)
            release(chat, 0); /* nothing new to wait for */
        else if (!chat->st->ops->sync)
            dx__chat_durable(chat, chat->commits, 0);
        else if (chat->io.sync)
            chat->io.sync(chat->io.arg, chat->commits);
        else
            dx__chat_durable(chat, chat->commits, chat->st->ops->sync(chat->st));
    }
    /* Presence is about connections, not the store: it goes either way,
     * and at once. A push may close a device (a slow consumer), whose
     * close adds an entry meanwhile: that one is settled at the next
     * flush, which its dx__chat_close asked for. */
    size_t np = chat->fo.npres;
    for (size_t i = 0; i < np; i++)
        if (chat->fo.pres[i].was_online >= 0)
            presence_push(chat, chat->fo.pres[i].uid, !chat->fo.pres[i].was_online, now);
    chat->fo.npres -= np;
    /* pres is NULL until the first presence change: no memmove of nothing
     * from it (UB, which UBSan aborts on). */
    if (np) memmove(chat->fo.pres, chat->fo.pres + np, chat->fo.npres * sizeof *chat->fo.pres);
    dx__keytab_clear(&chat->fo.turn_ix);
    return rc < 0 ? DX_EIO : 0;
}

/* ---- presence ---------------------------------------------------------- */

static json_t *presence_entry(const char *uid, int online, int64_t last_seen) {
    return json_pack("{s:s, s:b, s:I}", "uid", uid, "online", online, "last_seen",
                     (json_int_t)last_seen);
}

typedef struct presence_arg {
    dx__chat *chat;
    const char *data; /* to push, or NULL to collect */
    json_t *list;
} presence_arg;

static int presence_one(void *arg, const char *uid, int64_t last_seen) {
    presence_arg *a = arg;
    if (a->data) {
        (void)dx__chat_publish(a->chat, uid, a->data, NULL);
    } else {
        int on = a->chat->broker->ops->devices(a->chat->broker, uid) > 0;
        json_array_append_new(a->list, presence_entry(uid, on, last_seen));
    }
    return 0;
}

int dx__chat_contacts_json(dx__chat *chat, const char *uid, json_t *list) {
    presence_arg pa = {chat, NULL, list};
    return chat->st->ops->contacts(chat->st, uid, presence_one, &pa);
}

/* Tells every contact of `uid` that it went online or offline; with the
 * store thread, the thread does (and writes last_seen first). */
static void presence_push(dx__chat *chat, const char *uid, int online, int64_t ts) {
    if (chat->worker) {
        (void)dx__chat_worker_submit(chat->worker, DX__JOB_PRES, NULL, uid, strlen(uid), online, ts,
                                     0);
        return;
    }
    json_t *j = dx__chat_env("presence");
    json_t *users = json_array();
    if (!j || !users) {
        json_decref(j);
        json_decref(users);
        return;
    }
    json_array_append_new(users, presence_entry(uid, online, ts));
    json_object_set_new(j, "users", users);
    char *s = dx__chat_dump(j);
    if (!s) return;
    presence_arg a = {chat, s, NULL};
    (void)chat->st->ops->contacts(chat->st, uid, presence_one, &a);
    free(s);
}

/* Notes that `uid`'s device count crossed zero; what it was before the
 * turn is what the first note of the turn says. The flush decides. */
static void presence_note(dx__chat *chat, const char *uid, int was_online) {
    char key[DX_KEYTAB_KEY_MAX];
    size_t kn = fo_key(key, 'p', uid, NULL);
    int fresh = 0;
    int64_t now = chat->io.now_ms(chat->io.arg);
    dx__keyent *e = dx__keytab_get(&chat->fo.turn_ix, key, kn, now, 1, &fresh);
    if (e && !fresh) return;
    if (chat->fo.npres == chat->fo.pcap) {
        size_t ncap = chat->fo.pcap ? chat->fo.pcap * 2 : 16;
        struct pres *np = dx__realloc(chat->fo.pres, ncap * sizeof *np);
        if (!np) return; /* out of memory: this change is not announced */
        chat->fo.pres = np;
        chat->fo.pcap = ncap;
    }
    if (e) {
        e->a = (int64_t)chat->fo.npres;
        e->until = INT64_MAX;
    }
    struct pres *p = &chat->fo.pres[chat->fo.npres++];
    snprintf(p->uid, sizeof p->uid, "%s", uid);
    p->was_online = was_online;
    if (!chat->scheduled) {
        chat->scheduled = 1;
        chat->io.schedule(chat->io.arg);
    }
}

/* last_seen says when a user's last device left; the write on connecting
 * only keeps it from being far in the past after a crash (no close then),
 * so it is skipped when the user was seen this recently — a reconnecting
 * user then costs one write per cycle, not two. */
#define TOUCH_OPEN_MS 60000

void dx__chat_presence_store(dx__chat *chat, const char *uid, int online, int64_t ts) {
    if (!online && dx__chat_tx(chat) == 0) (void)chat->st->ops->touch_user(chat->st, uid, ts);
    presence_push(chat, uid, online, ts);
}

void dx__chat_open_store(dx__chat *chat, dx__chat_dev *d, int64_t n) {
    if (dx__chat_tx(chat) < 0) return;
    int64_t now = chat->io.now_ms(chat->io.arg), seen = 0;
    if (n == 1 &&
        (chat->st->ops->last_seen(chat->st, d->uid, &seen) < 0 || now - seen >= TOUCH_OPEN_MS))
        (void)chat->st->ops->touch_user(chat->st, d->uid, now);
    /* A user's first connection joins the lobby: its members hear of it
     * at the flush. */
    if (chat->lobby[0] && chat->st->ops->join(chat->st, chat->lobby, d->uid) == 1)
        (void)members_note(chat, chat->lobby, d->uid);
}

void dx__chat_open(dx__chat *chat, dx__chat_dev *d) {
    int64_t now = chat->io.now_ms(chat->io.arg);
    int64_t n = chat->broker->ops->online(chat->broker, d->uid);
    if (n > 0) d->online = 1;
    chat->stats.devices += d->online;
    d->jobs = NULL;
    if (chat->worker)
        (void)dx__chat_worker_submit(chat->worker, DX__JOB_OPEN, d, NULL, 0, n, 0, 0);
    else
        dx__chat_open_store(chat, d, n);
    json_t *w = dx__chat_env("welcome");
    if (w) {
        json_object_set_new(w, "uid", json_string(d->uid));
        json_object_set_new(w, "proto", json_integer(DX_CHAT_PROTO));
        json_object_set_new(w, "rev", json_integer(DX_CHAT_REV));
        json_object_set_new(w, "server", json_string("duplex/" DX_VERSION_STRING));
        json_object_set_new(w, "time", json_integer(now));
        json_object_set_new(
            w, "limits",
            json_pack("{s:i, s:i}", "text", DX_CHAT_TEXT_MAX, "request", DX_CHAT_REQUEST_MAX));
        dx__chat_send_json(chat, d, w);
    }
    if (n == 1) presence_note(chat, d->uid, 0);
}

void dx__chat_close(dx__chat *chat, dx__chat_dev *d) {
    if (chat->worker) dx__chat_worker_forget(chat->worker, d);
    for (size_t i = 0; i < chat->npend; i++)
        if (chat->pend[i].dev == d) chat->pend[i].dev = NULL;
    for (size_t i = chat->whead; i < chat->nwait; i++)
        if (chat->wait[i].dev == d) chat->wait[i].dev = NULL;
    if (!d->online) return;
    d->online = 0;
    chat->stats.devices--;
    if (chat->broker->ops->offline(chat->broker, d->uid) == 0) presence_note(chat, d->uid, 1);
}

/* ---- requests ---------------------------------------------------------- */

void dx__chat_fail(dx__chat_req *r, const char *code, const char *msg, const char *field) {
    send_error(r->chat, r->dev, r->id, code, msg, field);
}

void dx__chat_store_fail(dx__chat_req *r, int rc) {
    if (rc == DX_ENOMEM)
        dx__chat_fail(r, "internal", "out of memory", NULL);
    else
        dx__chat_fail(r, "store_failed", "the database failed; nothing was changed", NULL);
}

/* Takes the request's tokens from the user's buckets (limits.h); 1 when
 * it was refused, after replying rate_limited with the wait in
 * retry_after (ms) and the bucket in `limit`. Nothing else has happened
 * yet, so a refused request leaves no trace. */
static int limited(dx__chat_req *r, int kind, uint32_t cost, int kind2, uint32_t cost2) {
    dx__chat *chat = r->chat;
    int which = kind;
    int64_t wait = dx__chat_limiter_take(chat->lim, r->dev->uid, chat->io.now_ms(chat->io.arg),
                                         kind, cost, kind2, cost2, &which);
    if (wait == 0) return 0;
    if (wait < 0) {
        dx__chat_fail(r, "internal", "out of memory", NULL);
        return 1;
    }
    char msg[96];
    snprintf(msg, sizeof msg, "too many %s requests: retry after %lld ms",
             which == DX__CHAT_BYTES ? "bytes in send" : dx__chat_kind_name(which),
             (long long)wait);
    json_t *j = dx__chat_env("error");
    if (!j) return 1;
    if (r->id) json_object_set(j, "id", r->id);
    json_object_set_new(j, "code", json_string("rate_limited"));
    json_object_set_new(j, "message", json_string(msg));
    json_object_set_new(j, "limit", json_string(dx__chat_kind_name(which)));
    json_object_set_new(j, "retry_after", json_integer(wait));
    dx__chat_send_json(chat, r->dev, j);
    return 1;
}

json_t *dx__chat_reply(dx__chat_req *r, const char *type) {
    json_t *j = dx__chat_env(type);
    if (j && r->id) json_object_set(j, "id", r->id);
    return j;
}

const char *dx__chat_need_conv(dx__chat_req *r, int *kind) {
    const char *conv = json_string_value(json_object_get(r->root, "conv"));
    if (!conv) {
        dx__chat_fail(r, "bad_field", "conv must be a conversation id string", "conv");
        return NULL;
    }
    int k = dx__chat_conv_kind(conv, r->dev->uid);
    if (k == DX_CHAT_CONV_BAD) {
        dx__chat_fail(r, "bad_field", "conv must be d:UID1:UID2 (in byte order), g:NAME or p:ID",
                      "conv");
        return NULL;
    }
    if (k == DX_CHAT_CONV_OTHERS) {
        dx__chat_fail(r, "not_member", "this direct conversation is not yours", "conv");
        return NULL;
    }
    if (k == DX_CHAT_CONV_GROUP) {
        /* One answer for "not a member", "no longer one" and "no such
         * group", so that an id tells a non-member nothing. */
        int role = r->chat->st->ops->role(r->chat->st, conv, r->dev->uid);
        if (role < 0) {
            dx__chat_store_fail(r, role);
            return NULL;
        }
        if (role == DX_CHAT_ROLE_NONE) {
            dx__chat_fail(r, "forbidden", "not a member of this group (or no such group)", "conv");
            return NULL;
        }
        r->role = role;
    }
    *kind = k;
    return conv;
}

/* For a room: 1 when the caller is a member, else replies not_member. */
int dx__chat_need_member(dx__chat_req *r, const char *conv) {
    int m = r->chat->st->ops->is_member(r->chat->st, conv, r->dev->uid);
    if (m < 0) {
        dx__chat_store_fail(r, m);
        return 0;
    }
    if (!m) dx__chat_fail(r, "not_member", "join this room first", "conv");
    return m == 1;
}

static int target_json(void *arg, const dx__chat_msg *m) {
    json_t **out = arg;
    *out = dx__chat_msg_json(NULL, m);
    return 0;
}

json_t *dx__chat_msg_json(dx__chat *chat, const dx__chat_msg *m) {
    json_t *j = json_pack("{s:s, s:I, s:I, s:s, s:s, s:s, s:I}", "conv", m->conv, "seq",
                          (json_int_t)m->seq, "mid", (json_int_t)m->mid, "cid", m->cid, "from",
                          m->from, "text", m->text, "ts", (json_int_t)m->ts);
    if (!j) return NULL;
    if (m->sys) {
        json_t *sys = json_loads(m->sys, 0, NULL);
        json_t *seq = json_object_get(sys, "seq");
        const char *op = json_string_value(json_object_get(sys, "op"));
        /* An event message carries its target as it is now: a client that
         * missed the event still ends with the right copy. */
        if (chat && json_is_integer(seq) && op && (!strcmp(op, "recall") || !strcmp(op, "edit"))) {
            json_t *t = NULL;
            (void)chat->st->ops->get(chat->st, m->conv, json_integer_value(seq), target_json, &t);
            if (t) json_object_set_new(j, "target", t);
        }
        if (sys) json_object_set_new(j, "sys", sys);
    }
    if (m->file) {
        json_t *f = json_loads(m->file, 0, NULL);
        if (f) json_object_set_new(j, "file", f);
    }
    if (m->edited) json_object_set_new(j, "edited", json_integer(m->edited));
    if (m->recalled) json_object_set_new(j, "recalled", json_true());
    return j;
}

int dx__chat_check_text(dx__chat_req *r, json_t *tj, int may_be_empty) {
    const char *text = json_string_value(tj);
    if (!text || (json_string_length(tj) == 0 && !may_be_empty) ||
        strlen(text) != json_string_length(tj)) {
        dx__chat_fail(r, "bad_field", "text must be a non-empty string", "text");
        return -1;
    }
    if (json_string_length(tj) > DX_CHAT_TEXT_MAX) {
        dx__chat_fail(r, "too_large", "text is limited to 4000 bytes", "text");
        return -1;
    }
    return 0;
}

/* Queues a send's ack and, for a new message (which has no file: those
 * take the jansson path), its deliver: both written by the hand encoder
 * into the engine's buffer and copied with the conversation into one
 * block, one allocation per send. 0 or DX_ENOMEM. */
static int queue_send(dx__chat_req *r, const dx__chat_msg *m, int dup) {
    dx__chat *chat = r->chat;
    dx__jsonw *w = &chat->jw;
    dx__jsonw_reset(w);
    dx__chat_ack_write(w, r->id, m, dup);
    dx__jsonw_raw(w, "", 1);
    size_t bcast_at = w->len, conv_at = w->len;
    if (!dup) {
        dx__chat_deliver_write(w, m);
        dx__jsonw_raw(w, "", 1);
        conv_at = w->len;
        dx__jsonw_raw(w, m->conv, strlen(m->conv) + 1);
    }
    if (w->oom || pend_reserve(chat) < 0) return DX_ENOMEM;
    char *own = dx__malloc(w->len);
    if (!own) return DX_ENOMEM;
    memcpy(own, w->p, w->len);
    pending *p = &chat->pend[chat->npend++];
    *p = (pending){.dev = r->dev,
                   .id = r->id ? json_incref(r->id) : NULL,
                   .reply = own,
                   .conv = dup ? NULL : own + conv_at,
                   .bcast = dup ? NULL : own + bcast_at,
                   .own = own,
                   .t0 = chat->t_req,
                   .is_ack = 1};
    return 0;
}

static void do_send(dx__chat_req *r) {
    dx__chat *chat = r->chat;
    int kind;
    const char *conv = dx__chat_need_conv(r, &kind);
    if (!conv) return;
    const char *cid = json_string_value(json_object_get(r->root, "cid"));
    if (!cid || !dx__chat_valid_cid(cid)) {
        dx__chat_fail(r, "bad_field", "cid must be 1-64 printable ASCII characters", "cid");
        return;
    }
    json_t *tj = json_object_get(r->root, "text");
    int has_file = json_object_get(r->root, "file") != NULL;
    if (dx__chat_check_text(r, tj, has_file) < 0) return;
    const char *text = json_string_value(tj);
    /* Checked here rather than at dispatch: the bytes are known now. */
    if (limited(r, DX__CHAT_SEND, 1, DX__CHAT_BYTES, (uint32_t)json_string_length(tj))) return;
    char *file = NULL;
    const char *fid = NULL, *thumb = NULL;
    if (has_file && dx__chat_attach(r, &file, &fid, &thumb) < 0) return;
    int rc = dx__chat_tx(chat);
    if (rc < 0) {
        dx__free(file);
        dx__chat_store_fail(r, rc);
        return;
    }
    int64_t now = chat->io.now_ms(chat->io.arg);
    if (kind == DX_CHAT_CONV_DIRECT &&
        !dx__keytab_get(&chat->directs, conv, strlen(conv), now, 0, NULL)) {
        /* The first message creates the conversation for both; the table
         * remembers it exists, which saves four writes per send after. */
        char a[DX_CHAT_UID_MAX + 1], b[DX_CHAT_UID_MAX + 1];
        dx__chat_direct_uids(conv, a, b);
        if ((rc = chat->st->ops->join(chat->st, conv, a)) < 0 ||
            (rc = chat->st->ops->join(chat->st, conv, b)) < 0) {
            dx__free(file);
            dx__chat_store_fail(r, rc);
            return;
        }
        dx__keyent *e = dx__keytab_get(&chat->directs, conv, strlen(conv), now, 1, NULL);
        if (e) e->until = now + DIRECTS_MS;
    } else if (kind == DX_CHAT_CONV_ROOM && !dx__chat_need_member(r, conv)) {
        dx__free(file);
        return;
    }
    dx__chat_msg m, in = {.conv = conv,
                          .from = r->dev->uid,
                          .cid = cid,
                          .text = text,
                          .ts = now,
                          .file = file,
                          .file_id = fid,
                          .thumb_id = thumb};
    int dup = 0;
    rc = chat->st->ops->put_msg(chat->st, &in, &m, &dup);
    if (rc < 0) {
        dx__free(file);
        dx__chat_store_fail(r, rc);
        return;
    }
    chat->stats.sends++;
    chat->stats.duplicates += dup != 0;
    if (!file && !m.sys) {
        if (queue_send(r, &m, dup) < 0) goto nomem;
        return;
    }
    json_t *ack = dx__chat_reply(r, "ack");
    if (!ack) goto nomem;
    json_object_set_new(ack, "conv", json_string(m.conv));
    json_object_set_new(ack, "cid", json_string(cid));
    json_object_set_new(ack, "mid", json_integer(m.mid));
    json_object_set_new(ack, "seq", json_integer(m.seq));
    json_object_set_new(ack, "ts", json_integer(m.ts));
    json_t *deliver = NULL;
    if (dup) {
        json_object_set_new(ack, "dup", json_true());
    } else {
        deliver = dx__chat_env("deliver");
        json_t *mj = dx__chat_msg_json(chat, &m);
        if (!deliver || !mj) {
            json_decref(deliver);
            json_decref(mj);
            json_decref(ack);
            goto nomem;
        }
        json_object_set_new(deliver, "msg", mj);
    }
    dx__free(file);
    file = NULL;
    if (dx__chat_add_pending(chat, r->dev, r->id, ack, dup ? NULL : m.conv, deliver, 0, NULL) < 0)
        goto nomem;
    chat->pend[chat->npend - 1].is_ack = 1;
    return;
nomem:
    dx__free(file);
    dx__chat_fail(r, "internal", "out of memory", NULL);
}

/* Keeps the receipt of (uid, conv) for the flush: one per turn, the
 * highest seq, however many reads asked for it. */
static int receipt_note(dx__chat *chat, const char *uid, const char *conv, int64_t seq) {
    char key[DX_KEYTAB_KEY_MAX];
    size_t kn = fo_key(key, 'r', uid, conv);
    int fresh = 0;
    dx__keyent *e =
        dx__keytab_get(&chat->fo.turn_ix, key, kn, chat->io.now_ms(chat->io.arg), 1, &fresh);
    if (e && !fresh) {
        struct receipt *rc = &chat->fo.rcpt[e->a];
        if (seq > rc->seq) rc->seq = seq;
        return 0;
    }
    /* A turn with more readers than the index holds: the rest get an entry
     * each, as before coalescing. */
    if (chat->fo.nrcpt == chat->fo.rcap) {
        size_t ncap = chat->fo.rcap ? chat->fo.rcap * 2 : 16;
        struct receipt *nr = dx__realloc(chat->fo.rcpt, ncap * sizeof *nr);
        if (!nr) return DX_ENOMEM;
        chat->fo.rcpt = nr;
        chat->fo.rcap = ncap;
    }
    if (e) {
        e->a = (int64_t)chat->fo.nrcpt;
        e->until = INT64_MAX;
    }
    struct receipt *rc = &chat->fo.rcpt[chat->fo.nrcpt++];
    snprintf(rc->uid, sizeof rc->uid, "%s", uid);
    snprintf(rc->conv, sizeof rc->conv, "%s", conv);
    rc->seq = seq;
    return 0;
}

static void do_read(dx__chat_req *r) {
    dx__chat *chat = r->chat;
    int kind;
    const char *conv = dx__chat_need_conv(r, &kind);
    if (!conv) return;
    json_t *sj = json_object_get(r->root, "seq");
    if (!json_is_integer(sj) || json_integer_value(sj) < 0) {
        dx__chat_fail(r, "bad_field", "seq must be an integer >= 0", "seq");
        return;
    }
    int rc = dx__chat_tx(chat);
    if (rc < 0) {
        dx__chat_store_fail(r, rc);
        return;
    }
    int64_t now = 0;
    rc = chat->st->ops->mark_read(chat->st, conv, r->dev->uid, json_integer_value(sj), &now);
    if (rc == DX_EINVAL) {
        dx__chat_fail(r, "not_member", "not a member of this conversation", "conv");
        return;
    }
    if (rc < 0) {
        dx__chat_store_fail(r, rc);
        return;
    }
    if (dx__chat_add_pending(chat, r->dev, r->id, dx__chat_reply(r, "ok"), NULL, NULL, 0, NULL) <
            0 ||
        receipt_note(chat, r->dev->uid, conv, now) < 0)
        dx__chat_fail(r, "internal", "out of memory", NULL);
}

static void do_join(dx__chat_req *r) {
    dx__chat *chat = r->chat;
    const char *pj = json_string_value(json_object_get(r->root, "conv"));
    if (pj && !strncmp(pj, "p:", 2)) {
        /* Groups are joined by invitation (group_add) only; the answer is
         * the same for members, non-members and unknown ids. */
        dx__chat_fail(r, "forbidden", "groups are joined by invitation only", "conv");
        return;
    }
    int kind;
    const char *conv = dx__chat_need_conv(r, &kind);
    if (!conv) return;
    if (kind == DX_CHAT_CONV_DIRECT) {
        dx__chat_fail(r, "bad_field", "direct conversations start with their first message",
                      "conv");
        return;
    }
    int rc = dx__chat_tx(chat);
    if (rc == 0 && chat->limits.max_rooms != DX_CHAT_UNLIMITED && strcmp(conv, chat->lobby)) {
        /* Every room a user is in costs each of its syncs some work, so
         * their number is capped (joining one already held is fine). The
         * count reads the open transaction: this turn's joins are in it. */
        int64_t n = 0;
        rc = chat->st->ops->is_member(chat->st, conv, r->dev->uid);
        if (rc == 0) rc = chat->st->ops->rooms_of(chat->st, r->dev->uid, &n);
        if (rc == 0 && n >= chat->limits.max_rooms) {
            char msg[96];
            snprintf(msg, sizeof msg, "a user may be in %u rooms at most",
                     (unsigned)chat->limits.max_rooms);
            dx__chat_fail(r, "too_many_rooms", msg, "conv");
            return;
        }
        if (rc > 0) rc = 0;
    }
    if (rc == 0) rc = chat->st->ops->join(chat->st, conv, r->dev->uid);
    if (rc < 0) {
        dx__chat_store_fail(r, rc);
        return;
    }
    /* A new member: every member hears the new count after the commit
     * (out of memory only loses that push; the join itself holds). */
    if (rc == 1) (void)members_note(chat, conv, r->dev->uid);
    if (dx__chat_add_pending(chat, r->dev, r->id, dx__chat_reply(r, "ok"), NULL, NULL, 0, NULL) < 0)
        dx__chat_fail(r, "internal", "out of memory", NULL);
}

static void do_typing(dx__chat_req *r) {
    int kind;
    const char *conv = dx__chat_need_conv(r, &kind);
    if (!conv) return;
    int direct = kind == DX_CHAT_CONV_DIRECT;
    /* Members only, but typing is not worth a flush: a room's membership is
     * read as it stands in the open transaction (a group's was, by
     * need_conv). */
    if (kind == DX_CHAT_CONV_ROOM && !dx__chat_need_member(r, conv)) return;
    /* One push per user and conversation per interval, whatever the client
     * sends: a notice that the user is typing is as true after one push as
     * after a hundred, and each costs a message to every member. A table
     * full of live entries (a flood of distinct conversations) absorbs the
     * notice too. */
    dx__chat *chat = r->chat;
    char key[DX_KEYTAB_KEY_MAX];
    size_t kn = fo_key(key, 0, r->dev->uid, conv);
    int64_t now = chat->io.now_ms(chat->io.arg);
    dx__keyent *e = dx__keytab_get(&chat->fo.typing, key, kn, now, 1, NULL);
    if (!e || dx__keytab_take(e, now, 1, 1, (int64_t)chat->fo.typing_ms * 1000) > 0) return;
    json_t *j = json_pack("{s:i, s:s, s:s, s:s}", "v", DX_CHAT_PROTO, "type", "typing", "conv",
                          conv, "uid", r->dev->uid);
    char *s = j ? dx__chat_dump(j) : NULL;
    if (!s) return;
    /* To the other members only: none of the sender's devices, here or on
     * another node, is told that its own user is typing. */
    if (direct) {
        char a[DX_CHAT_UID_MAX + 1], b[DX_CHAT_UID_MAX + 1];
        dx__chat_direct_uids(conv, a, b);
        const char *other = strcmp(a, r->dev->uid) ? a : b;
        if (strcmp(other, r->dev->uid)) (void)dx__chat_publish(chat, other, s, NULL);
    } else {
        bcast_arg ba = {chat, s, NULL, r->dev->uid};
        (void)chat->st->ops->members(chat->st, conv, INT64_MAX, NULL, bcast_one, &ba);
    }
    free(s);
}

static void do_presence(dx__chat_req *r) {
    dx__chat *chat = r->chat;
    json_t *uids = json_object_get(r->root, "uids");
    size_t n = json_array_size(uids);
    if (!json_is_array(uids) || n < 1 || n > 100) {
        dx__chat_fail(r, "bad_field", "uids must be an array of 1-100 user ids", "uids");
        return;
    }
    json_t *users = json_array(), *j = dx__chat_reply(r, "presence");
    if (!users || !j) goto nomem;
    for (size_t i = 0; i < n; i++) {
        const char *u = json_string_value(json_array_get(uids, i));
        if (!u || !dx__chat_valid_uid(u, strlen(u))) {
            json_decref(users);
            json_decref(j);
            dx__chat_fail(r, "bad_field", "uids must be an array of 1-100 user ids", "uids");
            return;
        }
        int64_t seen = 0;
        int rc = chat->st->ops->last_seen(chat->st, u, &seen);
        if (rc < 0) {
            json_decref(users);
            json_decref(j);
            dx__chat_store_fail(r, rc);
            return;
        }
        int on = chat->broker->ops->devices(chat->broker, u) > 0;
        json_array_append_new(users, presence_entry(u, on, seen));
    }
    json_object_set_new(j, "users", users);
    dx__chat_send_json(chat, r->dev, j);
    return;
nomem:
    json_decref(users);
    json_decref(j);
    dx__chat_fail(r, "internal", "out of memory", NULL);
}

/* `kind`: the user's bucket that the request takes a token from before it
 * runs (limits.h); send takes its own, with its bytes, once they are known. */
static const struct {
    const char *type;
    void (*fn)(dx__chat_req *r);
    int kind;
} HANDLERS[] = {
    {"send", do_send, DX__CHAT_NONE},
    {"read", do_read, DX__CHAT_READ},
    {"history", dx__chat_do_history, DX__CHAT_FETCH},
    {"sync", dx__chat_do_sync, DX__CHAT_FETCH},
    {"join", do_join, DX__CHAT_JOIN},
    {"typing", do_typing, DX__CHAT_TYPING},
    {"presence", do_presence, DX__CHAT_PRESENCE},
    /* Revision 2: membership changes count as joins, reads of lists and
     * search as fetches, recall and edit as sends. */
    {"group_create", dx__chat_do_group_create, DX__CHAT_JOIN},
    {"group_add", dx__chat_do_group_add, DX__CHAT_JOIN},
    {"group_remove", dx__chat_do_group_remove, DX__CHAT_JOIN},
    {"group_rename", dx__chat_do_group_rename, DX__CHAT_JOIN},
    {"group_role", dx__chat_do_group_role, DX__CHAT_JOIN},
    {"leave", dx__chat_do_leave, DX__CHAT_JOIN},
    {"group_members", dx__chat_do_group_members, DX__CHAT_FETCH},
    {"recall", dx__chat_do_recall, DX__CHAT_SEND},
    {"edit", dx__chat_do_edit, DX__CHAT_SEND},
    {"search", dx__chat_do_search, DX__CHAT_FETCH},
    {"upload", dx__chat_do_upload, DX__CHAT_SEND},
};

static void message(dx__chat *chat, dx__chat_dev *d, const char *data, size_t len, int binary);

/* With the store thread: 1 for what the loop answers itself — typing in
 * a direct conversation, which reads no store (the id names both
 * members), or in one that is not the caller's, or with no valid
 * conversation id (refused without the store too). Its token comes from
 * the loop's buckets, a room's typing from the thread's: each kind has
 * the typing limit of its own. */
static int typing_here(dx__chat_dev *d, const char *data, size_t len) {
    if (len > DX_CHAT_REQUEST_MAX || !memmem(data, len, "\"typing\"", 8)) return 0;
    json_t *root = dx__jsonr_flat(data, len);
    if (!root) root = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
    const char *type = json_string_value(json_object_get(root, "type"));
    const char *conv = json_string_value(json_object_get(root, "conv"));
    int k = conv ? dx__chat_conv_kind(conv, d->uid) : DX_CHAT_CONV_BAD;
    int here = type && !strcmp(type, "typing") && k != DX_CHAT_CONV_ROOM && k != DX_CHAT_CONV_GROUP;
    json_decref(root);
    return here;
}

/* A request the store thread could not take: out of memory, or its queue
 * full because the store stopped answering. The request's id is read so
 * that the client can tell which one failed; a send then stays "failed"
 * on the client, to be resent with its cid. */
static void refuse_queued(dx__chat *chat, dx__chat_dev *d, const char *data, size_t len, int binary,
                          int rc) {
    json_t *root = binary ? NULL : dx__jsonr_flat(data, len);
    if (!binary && !root) root = json_loadb(data, len, 0, NULL);
    json_t *id = json_object_get(root, "id");
    if (!json_is_integer(id) && !json_is_string(id)) id = NULL;
    if (rc == DX_EBUSY)
        send_error(chat, d, id, "store_failed",
                   "the database is not answering and too much waits for it; nothing was stored",
                   NULL);
    else
        send_error(chat, d, id, "internal", "out of memory", NULL);
    json_decref(root);
}

void dx__chat_message(dx__chat *chat, dx__chat_dev *d, const char *data, size_t len, int binary) {
    if (chat->worker && (binary || !typing_here(d, data, len))) {
        int rc = dx__chat_worker_submit(chat->worker, binary ? DX__JOB_BIN : DX__JOB_MSG, d, data,
                                        len, 0, 0, mono_us(chat));
        if (rc < 0) refuse_queued(chat, d, data, len, binary, rc);
        return;
    }
    dx__chat_message_at(chat, d, data, len, binary, mono_us(chat));
}

void dx__chat_message_at(dx__chat *chat, dx__chat_dev *d, const char *data, size_t len, int binary,
                         int64_t t_req) {
    chat->t_req = t_req;
    message(chat, d, data, len, binary);
    chat->hold = 0; /* set by a read (before_read) for its own replies */
}

static void message(dx__chat *chat, dx__chat_dev *d, const char *data, size_t len, int binary) {
    dx__chat_req r = {chat, d, NULL, NULL, 0};
    if (binary) {
        /* Upload chunks (docs/chat-protocol.md, "Files and pictures"). */
        if (chat->files)
            dx__chat_upload_chunk(&r, (const uint8_t *)data, len);
        else
            /* What revision 1 answered a binary message, kept for its
             * clients (the version rules). */
            dx__chat_fail(&r, "bad_json", "uploads are off on this server: no binary messages",
                          NULL);
        return;
    }
    if (len > DX_CHAT_REQUEST_MAX) {
        dx__chat_fail(&r, "too_large", "requests are limited to 16384 bytes", NULL);
        return;
    }
    json_error_t jerr;
    /* The common flat request skips jansson's parser; anything else, and
     * every error, goes through it (jsonr.h). */
    r.root = dx__jsonr_flat(data, len);
    if (!r.root) r.root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(r.root)) {
        dx__chat_fail(&r, "bad_json", r.root ? "a request is a JSON object" : jerr.text, NULL);
        json_decref(r.root);
        return;
    }
    json_t *id = json_object_get(r.root, "id");
    if (id) {
        size_t n = json_string_length(id);
        if (!(json_is_integer(id) || (json_is_string(id) && n >= 1 && n <= 64))) {
            dx__chat_fail(&r, "bad_field", "id must be an integer or a string of 1-64 bytes", "id");
            goto done;
        }
        r.id = id;
    }
    json_t *v = json_object_get(r.root, "v");
    if (!json_is_integer(v) || json_integer_value(v) != DX_CHAT_PROTO) {
        dx__chat_fail(&r, "bad_version", "this server speaks protocol version 1 (\"v\":1)", "v");
        goto done;
    }
    const char *type = json_string_value(json_object_get(r.root, "type"));
    if (!type) {
        dx__chat_fail(&r, "bad_type", "type is missing", "type");
        goto done;
    }
    for (size_t i = 0; i < sizeof HANDLERS / sizeof HANDLERS[0]; i++) {
        if (!strcmp(type, HANDLERS[i].type)) {
            if (!limited(&r, HANDLERS[i].kind, 1, DX__CHAT_NONE, 0)) HANDLERS[i].fn(&r);
            goto done;
        }
    }
    dx__chat_fail(&r, "bad_type", "unknown request type", "type");
done:
    json_decref(r.root);
}

/* ---- lifetime ---------------------------------------------------------- */

/* The broker hands this node's share of a publish back here. */
/* 1 for a push a device may miss: typing and presence changes (a later
 * one, or the next sync, says the same). Told apart by the type the engine
 * itself wrote first in the envelope, here, where every push arrives from
 * the broker — so neither the broker interface nor the Redis wire format
 * carries a flag, and another node's pushes are classed the same way. */
static int best_effort(const char *data, size_t len) {
    static const char typing[] = "{\"v\":1,\"type\":\"typing\"";
    static const char presence[] = "{\"v\":1,\"type\":\"presence\"";
    return (len >= sizeof typing - 1 && !memcmp(data, typing, sizeof typing - 1)) ||
           (len >= sizeof presence - 1 && !memcmp(data, presence, sizeof presence - 1));
}

void dx__chat_deliver_here(void *engine, const char *uid, const char *data, size_t len,
                           const void *except) {
    dx__chat *chat = engine;
    if (chat->io.deliver_best && best_effort(data, len))
        chat->io.deliver_best(chat->io.arg, uid, data, len, except);
    else
        chat->io.deliver(chat->io.arg, uid, data, len, except);
}

/* The settings below go to the store thread's engine too (worker.h). */
void dx__chat_set_typing_interval(dx__chat *chat, uint32_t typing_interval_ms) {
    chat->fo.typing_ms = typing_interval_ms ? typing_interval_ms : DX_CHAT_TYPING_INTERVAL_MS;
    if (chat->worker)
        dx__chat_set_typing_interval(dx__chat_worker_engine(chat->worker), typing_interval_ms);
}

void dx__chat_set_recall_window(dx__chat *chat, int64_t ms) {
    chat->recall_ms = ms > 0 ? ms : DX_CHAT_RECALL_WINDOW_MS;
    if (chat->worker) dx__chat_set_recall_window(dx__chat_worker_engine(chat->worker), ms);
}

void dx__chat_set_files(dx__chat *chat, dx__chat_files *f) {
    chat->files = f;
    if (chat->worker) dx__chat_set_files(dx__chat_worker_engine(chat->worker), f);
}

int dx__chat_use_thread(dx__chat *chat, dx_loop *loop, dx__chat_store *st, const char **why) {
    dx__chat_worker *w =
        dx__chat_worker_new(loop, chat, st, chat->lobby[0] ? chat->lobby + 2 : NULL, why);
    if (!w) return DX_ENOMEM;
    dx__chat *s = dx__chat_worker_engine(w);
    if (dx__chat_set_limits(s, &chat->limits) < 0) {
        *why = "out of memory";
        dx__chat_worker_free(w);
        return DX_ENOMEM;
    }
    s->fo.typing_ms = chat->fo.typing_ms;
    s->recall_ms = chat->recall_ms;
    s->files = chat->files;
    chat->worker = w;
    return 0;
}

uint64_t dx__chat_store_errors(const dx__chat *chat) {
    uint64_t n = chat->st->errors;
    if (chat->worker) {
        dx_chat_stats st = {.size = sizeof st};
        uint64_t e = 0;
        dx__chat_worker_stats(chat->worker, &st, &e);
        n += e;
    }
    return n;
}

void dx__chat_use_broker(dx__chat *chat, dx__chat_broker *b) {
    if (!b) return;
    chat->broker->ops->free(chat->broker);
    chat->broker = b;
}

typedef struct local_push {
    dx__chat *chat;
    const char *data;
} local_push;

static int push_local(void *arg, const char *uid, int64_t n) {
    local_push *p = arg;
    dx__chat_deliver_here(p->chat, uid, p->data, strlen(p->data), NULL);
    return 0;
}

void dx__chat_remote_presence(dx__chat *chat, const char *uid, int64_t devices) {
    if (chat->worker) {
        (void)dx__chat_worker_submit(chat->worker, DX__JOB_REMOTE, NULL, uid, strlen(uid), devices,
                                     0, 0);
        return;
    }
    int64_t seen = 0;
    if (devices <= 0) (void)chat->st->ops->last_seen(chat->st, uid, &seen);
    if (devices > 0) seen = chat->io.now_ms(chat->io.arg);
    json_t *j = dx__chat_env("presence");
    json_t *users = json_array();
    if (!j || !users || json_array_append_new(users, presence_entry(uid, devices > 0, seen)) < 0) {
        json_decref(j);
        json_decref(users);
        return;
    }
    json_object_set_new(j, "users", users);
    char *s = dx__chat_dump(j);
    if (!s) return;
    local_push p = {chat, s};
    (void)chat->st->ops->contacts(chat->st, uid, push_local, &p);
    free(s);
}

dx__chat *dx__chat_new(const dx__chat_io *io, dx__chat_store *store, const char *lobby,
                       const char **why) {
    dx__chat *chat = dx__calloc(1, sizeof *chat);
    if (!chat) {
        *why = "out of memory";
        return NULL;
    }
    chat->io = *io;
    chat->st = store;
    chat->fo.typing_ms = DX_CHAT_TYPING_INTERVAL_MS;
    chat->recall_ms = DX_CHAT_RECALL_WINDOW_MS;
    dx__keytab_init(&chat->fo.typing, TYPING_KEYS);
    dx__keytab_init(&chat->fo.turn_ix, TURN_KEYS);
    dx__keytab_init(&chat->fo.rcpt_sent, RCPT_SENT_KEYS);
    dx__keytab_init(&chat->counts, COUNT_KEYS);
    dx__keytab_init(&chat->directs, DIRECTS_KEYS);
    if (lobby && *lobby) {
        if (!dx__chat_valid_uid(lobby, strlen(lobby))) {
            *why = "bad lobby room name (1-32 of A-Z a-z 0-9 _ -)";
            dx__free(chat);
            return NULL;
        }
        snprintf(chat->lobby, sizeof chat->lobby, "g:%s", lobby);
    }
    chat->broker = dx__chat_broker_local(dx__chat_deliver_here, chat);
    if (!chat->broker || dx__chat_set_limits(chat, NULL) < 0) {
        *why = "out of memory";
        if (chat->broker) chat->broker->ops->free(chat->broker);
        dx__free(chat);
        return NULL;
    }
    return chat;
}

int dx__chat_set_limits(dx__chat *chat, const dx_chat_limits *l) {
    dx_chat_limits r;
    dx__chat_limits_resolve(l, &r);
    dx__chat_limiter *lim = dx__chat_limiter_new(&r);
    if (!lim) return DX_ENOMEM;
    dx__chat_limiter_free(chat->lim);
    chat->lim = lim;
    chat->limits = r;
    if (chat->worker) return dx__chat_set_limits(dx__chat_worker_engine(chat->worker), l);
    return 0;
}

void dx__chat_free(dx__chat *chat) {
    if (!chat) return;
    /* Pending presence too: a user whose last device just left gets its
     * last_seen written. */
    if (chat->in_tx || chat->npend || chat->fo.npres || chat->fo.nrcpt || chat->fo.nmem)
        (void)dx__chat_flush(chat);
    /* Runs what the flush queued (last_seen of who just left), then stops. */
    dx__chat_worker_free(chat->worker);
    chat->worker = NULL;
    /* What still waits for its fsync (the transport's store thread has
     * stopped): synced here, so that recalled files are released. */
    if (chat->whead < chat->nwait)
        dx__chat_durable(chat, chat->commits,
                         chat->st->ops->sync ? chat->st->ops->sync(chat->st) : 0);
    for (size_t i = chat->whead; i < chat->nwait; i++)
        pending_free(&chat->wait[i]);
    dx__free(chat->wait);
    dx__free(chat->pend);
    dx__keytab_free(&chat->fo.typing);
    dx__keytab_free(&chat->fo.turn_ix);
    dx__keytab_free(&chat->fo.rcpt_sent);
    dx__keytab_free(&chat->counts);
    dx__keytab_free(&chat->directs);
    dx__jsonw_free(&chat->jw);
    dx__free(chat->fo.rcpt);
    dx__free(chat->fo.pres);
    dx__free(chat->fo.mem);
    dx__chat_limiter_free(chat->lim);
    chat->broker->ops->free(chat->broker);
    chat->st->ops->close(chat->st);
    dx__free(chat);
}

void dx__chat_stats_get(const dx__chat *chat, dx_chat_stats *out) {
    if (chat->worker) {
        /* The thread's engine counts the requests; the devices are here. */
        uint64_t e;
        dx__chat_worker_stats(chat->worker, out, &e);
        if (out->size >= offsetof(dx_chat_stats, devices) + sizeof out->devices)
            out->devices = chat->stats.devices;
        return;
    }
    size_t want = out->size < sizeof chat->stats ? out->size : sizeof chat->stats;
    dx_chat_stats st = chat->stats;
    st.size = want;
    memcpy(out, &st, want);
}

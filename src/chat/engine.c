/* The chat engine: connections in, protocol replies out (see engine.h and
 * docs/chat-protocol.md). Requests are parsed and validated here with
 * jansson; every failure becomes an `error` reply, never a crash. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include <duplex/common.h>

#include "chat/engine.h"
#include "chat/keytab.h"
#include "chat/limits.h"
#include "chat/proto.h"
#include "core/alloc.h"

/* Something that must wait for the commit: a reply for the requesting
 * device, and a message for every member of a conversation. */
typedef struct pending {
    dx__chat_dev *dev; /* NULL once the device closed */
    json_t *id;        /* the request id, for store_failed */
    char *reply;       /* sent to dev after the commit */
    char *conv;        /* NULL: no broadcast */
    char *bcast;       /* sent to every member's devices */
    int bcast_self;    /* 0: not to dev itself */
} pending;

/* A read receipt waiting for the flush: the highest seq of the turn. */
struct receipt {
    char uid[DX_CHAT_UID_MAX + 1];
    char conv[DX_KEYTAB_KEY_MAX];
    int64_t seq;
};

/* A user whose device count crossed zero this turn, as it was before. */
struct pres {
    char uid[DX_CHAT_UID_MAX + 1];
    int was_online;
};

/* A room that gained members this turn, and who (at most MEMBERS_LIST of
 * them: past that the push carries the count only). */
struct mnote {
    char conv[DX_KEYTAB_KEY_MAX];
    json_t *joined; /* array of uids, or NULL past MEMBERS_LIST */
};

/* Rooms of at most this many members are listed in full: in sync
 * (`members`, `reads`) and in the `members` push (`joined`). */
#define MEMBERS_LIST 64

/* Bounds of the coalescing tables (keytab.h): each entry is 136 bytes, and
 * a table holds at most twice its limit in slots. Typing entries live one
 * interval; when the table is full of live ones, typing is absorbed. The
 * receipts pushed are remembered for RCPT_SENT_MS so that a read that does
 * not move the reader's position is not pushed again; when that table is
 * full, receipts are pushed as before (only the suppression is lost). */
#define TYPING_KEYS 4096
#define TURN_KEYS 8192
#define RCPT_SENT_KEYS 8192
#define RCPT_SENT_MS (10 * 60 * 1000)

struct dx__chat {
    dx__chat_io io;
    dx__chat_store *st;
    dx__chat_broker *broker;
    char lobby[40]; /* "g:NAME" or "" */
    int in_tx;      /* a transaction is open */
    int scheduled;  /* io.schedule was called and flush has not run */
    pending *pend;
    size_t npend, cap;
    dx_chat_limits limits; /* resolved: no zeros */
    dx__chat_limiter *lim; /* the users' token buckets */
    /* Fan-out coalescing (docs/chat-protocol.md, "Typing", "read",
     * "Presence"): what this turn changed, pushed once at the flush. */
    struct fanout {
        uint32_t typing_ms;   /* one typing push per (uid, conv) per this */
        dx__keytab typing;    /* uid NUL conv → when the next push may go */
        struct receipt *rcpt; /* this turn's receipts, one per (uid, conv) */
        size_t nrcpt, rcap;
        dx__keytab turn_ix;   /* 'r' uid NUL conv, or 'p' uid → index in rcpt or pres */
        dx__keytab rcpt_sent; /* uid NUL conv → the last seq pushed */
        struct pres *pres;    /* users whose device count crossed 0 this turn */
        size_t npres, pcap;
        struct mnote *mem; /* rooms that gained members this turn */
        size_t nmem, mcap;
    } fo;
};

/* ---- helpers ----------------------------------------------------------- */

static char *dump(json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

static void send_json(dx__chat *chat, dx__chat_dev *d, json_t *j) {
    char *s = dump(j);
    if (s) {
        chat->io.send(chat->io.arg, d, s, strlen(s));
        free(s);
    }
}

static void send_error(dx__chat *chat, dx__chat_dev *d, json_t *id, const char *code,
                       const char *msg, const char *field) {
    json_t *j = dx__chat_env("error");
    if (!j) return;
    if (id) json_object_set(j, "id", id);
    json_object_set_new(j, "code", json_string(code));
    json_object_set_new(j, "message", json_string(msg));
    if (field) json_object_set_new(j, "field", json_string(field));
    send_json(chat, d, j);
}

static int publish(dx__chat *chat, const char *uid, const char *data, const dx__chat_dev *except) {
    return chat->broker->ops->publish(chat->broker, uid, data, strlen(data), except);
}

/* Opens the turn's transaction on the first write. */
static int tx(dx__chat *chat) {
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

static int add_pending(dx__chat *chat, dx__chat_dev *d, json_t *id, json_t *reply, const char *conv,
                       json_t *bcast, int self) {
    if (chat->npend == chat->cap) {
        size_t ncap = chat->cap ? chat->cap * 2 : 64;
        pending *np = dx__realloc(chat->pend, ncap * sizeof *np);
        if (!np) goto nomem;
        chat->pend = np;
        chat->cap = ncap;
    }
    pending *p = &chat->pend[chat->npend];
    *p = (pending){.dev = d, .bcast_self = self};
    p->reply = reply ? dump(reply) : NULL;
    p->bcast = bcast ? dump(bcast) : NULL;
    p->conv = conv ? dx__strndup(conv, strlen(conv)) : NULL;
    reply = bcast = NULL;
    if ((!p->reply && !p->bcast) || (conv && !p->conv)) {
        free(p->reply);
        free(p->bcast);
        dx__free(p->conv);
        goto nomem;
    }
    p->id = id ? json_incref(id) : NULL;
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
    (void)publish(a->chat, uid, a->data, a->except);
    return 0;
}

/* To every device of every member of `conv`. */
static int to_members(dx__chat *chat, const char *conv, const char *data,
                      const dx__chat_dev *except) {
    if (conv[0] == 'd') {
        /* A direct conversation names its two members: no query. */
        char x[DX_CHAT_UID_MAX + 1], y[DX_CHAT_UID_MAX + 1];
        dx__chat_direct_uids(conv, x, y);
        int rc = publish(chat, x, data, except);
        return rc < 0 ? rc : publish(chat, y, data, except);
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
        else if (!on && tx(chat) == 0)
            (void)chat->st->ops->touch_user(chat->st, p->uid, now);
    }
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
        char *s = j ? dump(j) : NULL;
        if (s) (void)to_members(chat, rc->conv, s, NULL);
        free(s);
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
    if (m->joined && json_array_size(m->joined) >= MEMBERS_LIST) {
        json_decref(m->joined);
        m->joined = NULL;
    }
    if (m->joined) json_array_append_new(m->joined, json_string(uid));
    return 0;
}

static int count_only(void *arg, const char *uid, int64_t n) {
    return 0;
}

/* The rooms that gained members this turn, after the commit: every
 * member's devices (the new ones' included) get the room's count, and who
 * joined while the room is small enough to be listed in sync. One push per
 * room per turn, so a burst of arrivals costs each member one message. */
static void members_push(dx__chat *chat) {
    for (size_t i = 0; i < chat->fo.nmem; i++) {
        struct mnote *m = &chat->fo.mem[i];
        int64_t count = 0;
        if (chat->st->ops->members(chat->st, m->conv, 0, &count, count_only, NULL) == 0) {
            json_t *j = json_pack("{s:i, s:s, s:s, s:I}", "v", DX_CHAT_PROTO, "type", "members",
                                  "conv", m->conv, "count", (json_int_t)count);
            if (j && m->joined && count <= MEMBERS_LIST) json_object_set(j, "joined", m->joined);
            char *s = j ? dump(j) : NULL;
            if (s) (void)to_members(chat, m->conv, s, NULL);
            free(s);
        }
        json_decref(m->joined);
    }
    chat->fo.nmem = 0;
}

int dx__chat_flush(dx__chat *chat) {
    int64_t now = chat->fo.npres || chat->fo.nrcpt ? chat->io.now_ms(chat->io.arg) : 0;
    presence_settle(chat, now);
    chat->scheduled = 0;
    int rc = 0;
    if (chat->in_tx) {
        rc = chat->st->ops->commit(chat->st);
        if (rc < 0) chat->st->ops->rollback(chat->st);
        chat->in_tx = 0;
    }
    /* Entries are taken one at a time so that a reply's own effects cannot
     * see a half-processed list. */
    for (size_t i = 0; i < chat->npend; i++) {
        pending *p = &chat->pend[i];
        if (rc < 0) {
            if (p->dev && p->reply)
                send_error(chat, p->dev, p->id, "store_failed",
                           "the database refused the write; nothing was stored", NULL);
        } else {
            if (p->dev && p->reply) chat->io.send(chat->io.arg, p->dev, p->reply, strlen(p->reply));
            if (p->conv && p->bcast)
                (void)to_members(chat, p->conv, p->bcast, p->bcast_self ? NULL : p->dev);
        }
        json_decref(p->id);
        free(p->reply);
        free(p->bcast);
        dx__free(p->conv);
    }
    chat->npend = 0;
    /* Receipts only once their position is committed; presence is about
     * connections, not the store, so it goes either way. */
    if (rc >= 0) receipts_push(chat, now);
    chat->fo.nrcpt = 0;
    /* Memberships likewise; a failed commit joined nobody. */
    if (rc >= 0) {
        members_push(chat);
    } else {
        for (size_t i = 0; i < chat->fo.nmem; i++)
            json_decref(chat->fo.mem[i].joined);
        chat->fo.nmem = 0;
    }
    /* A push may close a device (a slow consumer), whose close adds an
     * entry meanwhile: that one is settled at the next flush, which its
     * dx__chat_close asked for. */
    size_t np = chat->fo.npres;
    for (size_t i = 0; i < np; i++)
        if (chat->fo.pres[i].was_online >= 0)
            presence_push(chat, chat->fo.pres[i].uid, !chat->fo.pres[i].was_online, now);
    chat->fo.npres -= np;
    memmove(chat->fo.pres, chat->fo.pres + np, chat->fo.npres * sizeof *chat->fo.pres);
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
        (void)publish(a->chat, uid, a->data, NULL);
    } else {
        int on = a->chat->broker->ops->devices(a->chat->broker, uid) > 0;
        json_array_append_new(a->list, presence_entry(uid, on, last_seen));
    }
    return 0;
}

/* Tells every contact of `uid` that it went online or offline. */
static void presence_push(dx__chat *chat, const char *uid, int online, int64_t ts) {
    json_t *j = dx__chat_env("presence");
    json_t *users = json_array();
    if (!j || !users) {
        json_decref(j);
        json_decref(users);
        return;
    }
    json_array_append_new(users, presence_entry(uid, online, ts));
    json_object_set_new(j, "users", users);
    char *s = dump(j);
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

void dx__chat_open(dx__chat *chat, dx__chat_dev *d) {
    int64_t now = chat->io.now_ms(chat->io.arg);
    int64_t n = chat->broker->ops->online(chat->broker, d->uid);
    if (n > 0) d->online = 1;
    if (tx(chat) == 0) {
        int64_t seen = 0;
        if (n == 1 &&
            (chat->st->ops->last_seen(chat->st, d->uid, &seen) < 0 || now - seen >= TOUCH_OPEN_MS))
            (void)chat->st->ops->touch_user(chat->st, d->uid, now);
        /* A user's first connection joins the lobby: its members hear of
         * it at the flush. */
        if (chat->lobby[0] && chat->st->ops->join(chat->st, chat->lobby, d->uid) == 1)
            (void)members_note(chat, chat->lobby, d->uid);
    }
    json_t *w = dx__chat_env("welcome");
    if (w) {
        json_object_set_new(w, "uid", json_string(d->uid));
        json_object_set_new(w, "proto", json_integer(DX_CHAT_PROTO));
        json_object_set_new(w, "server", json_string("duplex/" DX_VERSION_STRING));
        json_object_set_new(w, "time", json_integer(now));
        json_object_set_new(
            w, "limits",
            json_pack("{s:i, s:i}", "text", DX_CHAT_TEXT_MAX, "request", DX_CHAT_REQUEST_MAX));
        send_json(chat, d, w);
    }
    if (n == 1) presence_note(chat, d->uid, 0);
}

void dx__chat_close(dx__chat *chat, dx__chat_dev *d) {
    for (size_t i = 0; i < chat->npend; i++)
        if (chat->pend[i].dev == d) chat->pend[i].dev = NULL;
    if (!d->online) return;
    d->online = 0;
    if (chat->broker->ops->offline(chat->broker, d->uid) == 0) presence_note(chat, d->uid, 1);
}

/* ---- requests ---------------------------------------------------------- */

typedef struct req {
    dx__chat *chat;
    dx__chat_dev *dev;
    json_t *root;
    json_t *id; /* borrowed from root, or NULL */
} req;

static void fail(req *r, const char *code, const char *msg, const char *field) {
    send_error(r->chat, r->dev, r->id, code, msg, field);
}

static void store_fail(req *r, int rc) {
    if (rc == DX_ENOMEM)
        fail(r, "internal", "out of memory", NULL);
    else
        fail(r, "store_failed", "the database failed; nothing was changed", NULL);
}

/* Takes the request's tokens from the user's buckets (limits.h); 1 when
 * it was refused, after replying rate_limited with the wait in
 * retry_after (ms) and the bucket in `limit`. Nothing else has happened
 * yet, so a refused request leaves no trace. */
static int limited(req *r, int kind, uint32_t cost, int kind2, uint32_t cost2) {
    dx__chat *chat = r->chat;
    int which = kind;
    int64_t wait = dx__chat_limiter_take(chat->lim, r->dev->uid, chat->io.now_ms(chat->io.arg),
                                         kind, cost, kind2, cost2, &which);
    if (wait == 0) return 0;
    if (wait < 0) {
        fail(r, "internal", "out of memory", NULL);
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
    send_json(chat, r->dev, j);
    return 1;
}

static json_t *reply(req *r, const char *type) {
    json_t *j = dx__chat_env(type);
    if (j && r->id) json_object_set(j, "id", r->id);
    return j;
}

/* Reads "conv", checks its form and the caller's right to it. Returns the
 * string, or NULL after replying with an error. */
static const char *need_conv(req *r, int *direct) {
    const char *conv = json_string_value(json_object_get(r->root, "conv"));
    if (!conv) {
        fail(r, "bad_field", "conv must be a conversation id string", "conv");
        return NULL;
    }
    int k = dx__chat_conv_kind(conv, r->dev->uid);
    if (k == DX_CHAT_CONV_BAD) {
        fail(r, "bad_field", "conv must be d:UID1:UID2 (in byte order) or g:NAME", "conv");
        return NULL;
    }
    if (k == DX_CHAT_CONV_OTHERS) {
        fail(r, "not_member", "this direct conversation is not yours", "conv");
        return NULL;
    }
    *direct = k == DX_CHAT_CONV_DIRECT;
    return conv;
}

/* For a room: 1 when the caller is a member, else replies not_member. */
static int need_member(req *r, const char *conv) {
    int m = r->chat->st->ops->is_member(r->chat->st, conv, r->dev->uid);
    if (m < 0) {
        store_fail(r, m);
        return 0;
    }
    if (!m) fail(r, "not_member", "join this room first", "conv");
    return m == 1;
}

static json_t *msg_json(const dx__chat_msg *m) {
    return json_pack("{s:s, s:I, s:I, s:s, s:s, s:s, s:I}", "conv", m->conv, "seq",
                     (json_int_t)m->seq, "mid", (json_int_t)m->mid, "cid", m->cid, "from", m->from,
                     "text", m->text, "ts", (json_int_t)m->ts);
}

static void do_send(req *r) {
    dx__chat *chat = r->chat;
    int direct;
    const char *conv = need_conv(r, &direct);
    if (!conv) return;
    const char *cid = json_string_value(json_object_get(r->root, "cid"));
    if (!cid || !dx__chat_valid_cid(cid)) {
        fail(r, "bad_field", "cid must be 1-64 printable ASCII characters", "cid");
        return;
    }
    json_t *tj = json_object_get(r->root, "text");
    const char *text = json_string_value(tj);
    if (!text || json_string_length(tj) == 0 || strlen(text) != json_string_length(tj)) {
        fail(r, "bad_field", "text must be a non-empty string", "text");
        return;
    }
    if (json_string_length(tj) > DX_CHAT_TEXT_MAX) {
        fail(r, "too_large", "text is limited to 4000 bytes", "text");
        return;
    }
    /* Checked here rather than at dispatch: the bytes are known now. */
    if (limited(r, DX__CHAT_SEND, 1, DX__CHAT_BYTES, (uint32_t)json_string_length(tj))) return;
    int rc = tx(chat);
    if (rc < 0) {
        store_fail(r, rc);
        return;
    }
    if (direct) {
        /* The first message creates the conversation for both. */
        char a[DX_CHAT_UID_MAX + 1], b[DX_CHAT_UID_MAX + 1];
        dx__chat_direct_uids(conv, a, b);
        if ((rc = chat->st->ops->join(chat->st, conv, a)) < 0 ||
            (rc = chat->st->ops->join(chat->st, conv, b)) < 0) {
            store_fail(r, rc);
            return;
        }
    } else if (!need_member(r, conv)) {
        return;
    }
    dx__chat_msg m;
    int dup = 0;
    rc = chat->st->ops->put(chat->st, conv, r->dev->uid, cid, text, chat->io.now_ms(chat->io.arg),
                            &m, &dup);
    if (rc < 0) {
        store_fail(r, rc);
        return;
    }
    json_t *ack = reply(r, "ack");
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
        json_t *mj = msg_json(&m);
        if (!deliver || !mj) {
            json_decref(deliver);
            json_decref(mj);
            json_decref(ack);
            goto nomem;
        }
        json_object_set_new(deliver, "msg", mj);
    }
    if (add_pending(chat, r->dev, r->id, ack, dup ? NULL : m.conv, deliver, 0) < 0) goto nomem;
    return;
nomem:
    fail(r, "internal", "out of memory", NULL);
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

static void do_read(req *r) {
    dx__chat *chat = r->chat;
    int direct;
    const char *conv = need_conv(r, &direct);
    if (!conv) return;
    json_t *sj = json_object_get(r->root, "seq");
    if (!json_is_integer(sj) || json_integer_value(sj) < 0) {
        fail(r, "bad_field", "seq must be an integer >= 0", "seq");
        return;
    }
    int rc = tx(chat);
    if (rc < 0) {
        store_fail(r, rc);
        return;
    }
    int64_t now = 0;
    rc = chat->st->ops->mark_read(chat->st, conv, r->dev->uid, json_integer_value(sj), &now);
    if (rc == DX_EINVAL) {
        fail(r, "not_member", "not a member of this conversation", "conv");
        return;
    }
    if (rc < 0) {
        store_fail(r, rc);
        return;
    }
    if (add_pending(chat, r->dev, r->id, reply(r, "ok"), NULL, NULL, 0) < 0 ||
        receipt_note(chat, r->dev->uid, conv, now) < 0)
        fail(r, "internal", "out of memory", NULL);
}

static void do_join(req *r) {
    dx__chat *chat = r->chat;
    int direct;
    const char *conv = need_conv(r, &direct);
    if (!conv) return;
    if (direct) {
        fail(r, "bad_field", "direct conversations start with their first message", "conv");
        return;
    }
    int rc = tx(chat);
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
            fail(r, "too_many_rooms", msg, "conv");
            return;
        }
        if (rc > 0) rc = 0;
    }
    if (rc == 0) rc = chat->st->ops->join(chat->st, conv, r->dev->uid);
    if (rc < 0) {
        store_fail(r, rc);
        return;
    }
    /* A new member: every member hears the new count after the commit
     * (out of memory only loses that push; the join itself holds). */
    if (rc == 1) (void)members_note(chat, conv, r->dev->uid);
    if (add_pending(chat, r->dev, r->id, reply(r, "ok"), NULL, NULL, 0) < 0)
        fail(r, "internal", "out of memory", NULL);
}

static int collect_msg(void *arg, const dx__chat_msg *m) {
    json_t *mj = msg_json(m);
    return mj && json_array_append_new(arg, mj) == 0 ? 0 : DX_ENOMEM;
}

/* Reads on committed data only (see engine.h). */
static void before_read(dx__chat *chat) {
    if (chat->in_tx || chat->npend) (void)dx__chat_flush(chat);
}

static int opt_int(req *r, const char *name, int64_t dflt, int64_t lo, int64_t hi, int64_t *out) {
    json_t *j = json_object_get(r->root, name);
    if (!j || json_is_null(j)) {
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(j) || json_integer_value(j) < lo || json_integer_value(j) > hi) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s must be an integer from %lld to %lld", name, (long long)lo,
                 (long long)hi);
        fail(r, "bad_field", msg, name);
        return -1;
    }
    *out = json_integer_value(j);
    return 0;
}

static void do_history(req *r) {
    dx__chat *chat = r->chat;
    int direct;
    const char *conv = need_conv(r, &direct);
    if (!conv) return;
    int64_t before, limit;
    if (opt_int(r, "before", 0, 0, INT64_MAX, &before) < 0 ||
        opt_int(r, "limit", 50, 1, 100, &limit) < 0)
        return;
    before_read(chat);
    if (!need_member(r, conv)) return;
    json_t *msgs = json_array(), *j = reply(r, "history");
    int more = 0, rc = DX_ENOMEM;
    if (msgs && j)
        rc = chat->st->ops->messages(chat->st, conv, 0, before, (int)limit, 1, collect_msg, msgs,
                                     &more);
    if (rc < 0) {
        json_decref(msgs);
        json_decref(j);
        store_fail(r, rc);
        return;
    }
    json_object_set_new(j, "conv", json_string(conv));
    json_object_set_new(j, "msgs", msgs);
    json_object_set_new(j, "more", json_boolean(more));
    send_json(chat, r->dev, j);
}

/* A sync reply holds at most this many bytes of messages (about), so that
 * it stays well under the connection's output limit; what does not fit is
 * marked `more` and comes with the next sync. */
#define SYNC_BUDGET (256 * 1024)

typedef struct sync_arg {
    req *r;
    json_t *since; /* object or NULL */
    json_t *convs;
    size_t budget; /* bytes of messages left for this reply */
    int64_t page;  /* conversations in this reply, at most */
    int64_t seen;  /* conversations the store listed so far */
} sync_arg;

typedef struct budget_arg {
    json_t *msgs;
    size_t *budget;
    int cut; /* stopped for lack of budget */
} budget_arg;

static int collect_budget(void *arg, const dx__chat_msg *m) {
    budget_arg *b = arg;
    size_t cost = strlen(m->text) + strlen(m->cid) + strlen(m->conv) + 128;
    if (cost > *b->budget) {
        b->cut = 1;
        return 1;
    }
    *b->budget -= cost;
    return collect_msg(b->msgs, m);
}

static int member_read(void *arg, const char *uid, int64_t seq) {
    json_t *reads = json_object_get(arg, "reads"), *members = json_object_get(arg, "members");
    json_array_append_new(members, json_string(uid));
    json_object_set_new(reads, uid, json_integer(seq));
    return 0;
}

static int sync_conv(void *arg, const dx__chat_conv *c) {
    sync_arg *a = arg;
    dx__chat *chat = a->r->chat;
    /* The store lists one more than a page: that one only says "more". */
    if (++a->seen > a->page) return 0;
    const char *uid = a->r->dev->uid;
    json_t *o =
        json_pack("{s:s, s:I, s:I, s:[], s:{}}", "conv", c->conv, "last_seq",
                  (json_int_t)c->last_seq, "read_seq", (json_int_t)c->read_seq, "members", "reads");
    json_t *msgs = json_array();
    if (!o || !msgs) goto nomem;
    int64_t unread = 0, count = 0;
    int rc = chat->st->ops->unread(chat->st, c->conv, uid, c->read_seq, &unread);
    if (rc < 0) goto err;
    json_object_set_new(o, "unread", json_integer(unread));
    rc = chat->st->ops->members(chat->st, c->conv, MEMBERS_LIST, &count, member_read, o);
    if (rc < 0) goto err;
    if (count > MEMBERS_LIST) {
        json_object_del(o, "members");
        json_object_del(o, "reads");
        json_object_set_new(o, "members_count", json_integer(count));
    }
    json_t *have = a->since ? json_object_get(a->since, c->conv) : NULL;
    int more = 0;
    budget_arg b = {msgs, &a->budget, 0};
    if (have)
        rc = chat->st->ops->messages(chat->st, c->conv, json_integer_value(have), 0, 100, 0,
                                     collect_budget, &b, &more);
    else
        rc = chat->st->ops->messages(chat->st, c->conv, 0, 0, 50, 1, collect_budget, &b, &more);
    if (rc < 0) goto err;
    if (b.cut) {
        /* Newest-first pages that were cut would leave a hole: send none
         * of that conversation's messages rather than a part. */
        if (!have) json_array_clear(msgs);
        more = 1;
    }
    json_object_set_new(o, "msgs", msgs);
    json_object_set_new(o, "more", json_boolean(more));
    return json_array_append_new(a->convs, o) == 0 ? 0 : DX_ENOMEM;
nomem:
    rc = DX_ENOMEM;
err:
    json_decref(o);
    json_decref(msgs);
    return rc;
}

/* A sync covers at most limits.sync_page conversations (in byte order of
 * their ids): a user in thousands of them would otherwise hold the loop,
 * and every other user with it, for the whole reply (0.7 s for 30,000).
 * The reply then carries `next`, and the client asks again with
 * "after": next; the loop serves others between the pages. */
static void do_sync(req *r) {
    dx__chat *chat = r->chat;
    json_t *aj = json_object_get(r->root, "after");
    const char *after = json_string_value(aj);
    if (aj && !json_is_null(aj) && (!after || !*after || json_string_length(aj) > 80)) {
        fail(r, "bad_field", "after must be the string a sync reply gave as next", "after");
        return;
    }
    json_t *since = json_object_get(r->root, "since");
    if (since && !json_is_null(since)) {
        if (!json_is_object(since)) {
            fail(r, "bad_field", "since must be an object {conv: last seq}", "since");
            return;
        }
        const char *k;
        json_t *v;
        json_object_foreach(since, k, v) {
            if (!json_is_integer(v) || json_integer_value(v) < 0) {
                fail(r, "bad_field", "since values must be integers >= 0", "since");
                return;
            }
        }
    } else {
        since = NULL;
    }
    before_read(chat);
    uint32_t page = chat->limits.sync_page;
    sync_arg a = {r,
                  since,
                  json_array(),
                  SYNC_BUDGET,
                  page == DX_CHAT_UNLIMITED ? INT64_MAX - 1 : (int64_t)page,
                  0};
    json_t *j = reply(r, "sync"), *pres = json_array();
    int rc = DX_ENOMEM;
    if (a.convs && j && pres) {
        rc = chat->st->ops->convs_of(chat->st, r->dev->uid, after, a.page + 1, sync_conv, &a);
        /* The contacts come once, with the first page. */
        presence_arg pa = {chat, NULL, pres};
        if (rc == 0 && !after)
            rc = chat->st->ops->contacts(chat->st, r->dev->uid, presence_one, &pa);
    }
    if (rc < 0) {
        json_decref(a.convs);
        json_decref(j);
        json_decref(pres);
        store_fail(r, rc);
        return;
    }
    if (a.seen > a.page) {
        json_t *last = json_array_get(a.convs, json_array_size(a.convs) - 1);
        json_object_set(j, "next", json_object_get(last, "conv"));
    }
    json_object_set_new(j, "convs", a.convs);
    json_object_set_new(j, "presence", pres);
    send_json(chat, r->dev, j);
}

static void do_typing(req *r) {
    int direct;
    const char *conv = need_conv(r, &direct);
    if (!conv) return;
    /* Members only, but typing is not worth a flush: a room's membership is
     * read as it stands in the open transaction. */
    if (!direct && !need_member(r, conv)) return;
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
    char *s = j ? dump(j) : NULL;
    if (!s) return;
    /* To the other members only: none of the sender's devices, here or on
     * another node, is told that its own user is typing. */
    if (direct) {
        char a[DX_CHAT_UID_MAX + 1], b[DX_CHAT_UID_MAX + 1];
        dx__chat_direct_uids(conv, a, b);
        const char *other = strcmp(a, r->dev->uid) ? a : b;
        if (strcmp(other, r->dev->uid)) (void)publish(chat, other, s, NULL);
    } else {
        bcast_arg ba = {chat, s, NULL, r->dev->uid};
        (void)chat->st->ops->members(chat->st, conv, INT64_MAX, NULL, bcast_one, &ba);
    }
    free(s);
}

static void do_presence(req *r) {
    dx__chat *chat = r->chat;
    json_t *uids = json_object_get(r->root, "uids");
    size_t n = json_array_size(uids);
    if (!json_is_array(uids) || n < 1 || n > 100) {
        fail(r, "bad_field", "uids must be an array of 1-100 user ids", "uids");
        return;
    }
    json_t *users = json_array(), *j = reply(r, "presence");
    if (!users || !j) goto nomem;
    for (size_t i = 0; i < n; i++) {
        const char *u = json_string_value(json_array_get(uids, i));
        if (!u || !dx__chat_valid_uid(u, strlen(u))) {
            json_decref(users);
            json_decref(j);
            fail(r, "bad_field", "uids must be an array of 1-100 user ids", "uids");
            return;
        }
        int64_t seen = 0;
        int rc = chat->st->ops->last_seen(chat->st, u, &seen);
        if (rc < 0) {
            json_decref(users);
            json_decref(j);
            store_fail(r, rc);
            return;
        }
        int on = chat->broker->ops->devices(chat->broker, u) > 0;
        json_array_append_new(users, presence_entry(u, on, seen));
    }
    json_object_set_new(j, "users", users);
    send_json(chat, r->dev, j);
    return;
nomem:
    json_decref(users);
    json_decref(j);
    fail(r, "internal", "out of memory", NULL);
}

/* `kind`: the user's bucket that the request takes a token from before it
 * runs (limits.h); send takes its own, with its bytes, once they are known. */
static const struct {
    const char *type;
    void (*fn)(req *r);
    int kind;
} HANDLERS[] = {
    {"send", do_send, DX__CHAT_NONE},
    {"read", do_read, DX__CHAT_READ},
    {"history", do_history, DX__CHAT_FETCH},
    {"sync", do_sync, DX__CHAT_FETCH},
    {"join", do_join, DX__CHAT_JOIN},
    {"typing", do_typing, DX__CHAT_TYPING},
    {"presence", do_presence, DX__CHAT_PRESENCE},
};

void dx__chat_message(dx__chat *chat, dx__chat_dev *d, const char *data, size_t len, int binary) {
    req r = {chat, d, NULL, NULL};
    if (binary) {
        fail(&r, "bad_json", "binary messages are not part of the protocol", NULL);
        return;
    }
    if (len > DX_CHAT_REQUEST_MAX) {
        fail(&r, "too_large", "requests are limited to 16384 bytes", NULL);
        return;
    }
    json_error_t jerr;
    r.root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(r.root)) {
        fail(&r, "bad_json", r.root ? "a request is a JSON object" : jerr.text, NULL);
        json_decref(r.root);
        return;
    }
    json_t *id = json_object_get(r.root, "id");
    if (id) {
        size_t n = json_string_length(id);
        if (!(json_is_integer(id) || (json_is_string(id) && n >= 1 && n <= 64))) {
            fail(&r, "bad_field", "id must be an integer or a string of 1-64 bytes", "id");
            goto done;
        }
        r.id = id;
    }
    json_t *v = json_object_get(r.root, "v");
    if (!json_is_integer(v) || json_integer_value(v) != DX_CHAT_PROTO) {
        fail(&r, "bad_version", "this server speaks protocol version 1 (\"v\":1)", "v");
        goto done;
    }
    const char *type = json_string_value(json_object_get(r.root, "type"));
    if (!type) {
        fail(&r, "bad_type", "type is missing", "type");
        goto done;
    }
    for (size_t i = 0; i < sizeof HANDLERS / sizeof HANDLERS[0]; i++) {
        if (!strcmp(type, HANDLERS[i].type)) {
            if (!limited(&r, HANDLERS[i].kind, 1, DX__CHAT_NONE, 0)) HANDLERS[i].fn(&r);
            goto done;
        }
    }
    fail(&r, "bad_type", "unknown request type", "type");
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

void dx__chat_set_typing_interval(dx__chat *chat, uint32_t typing_interval_ms) {
    chat->fo.typing_ms = typing_interval_ms ? typing_interval_ms : DX_CHAT_TYPING_INTERVAL_MS;
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
    char *s = dump(j);
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
    dx__keytab_init(&chat->fo.typing, TYPING_KEYS);
    dx__keytab_init(&chat->fo.turn_ix, TURN_KEYS);
    dx__keytab_init(&chat->fo.rcpt_sent, RCPT_SENT_KEYS);
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
    return 0;
}

void dx__chat_free(dx__chat *chat) {
    if (!chat) return;
    /* Pending presence too: a user whose last device just left gets its
     * last_seen written. */
    if (chat->in_tx || chat->npend || chat->fo.npres || chat->fo.nrcpt || chat->fo.nmem)
        (void)dx__chat_flush(chat);
    dx__free(chat->pend);
    dx__keytab_free(&chat->fo.typing);
    dx__keytab_free(&chat->fo.turn_ix);
    dx__keytab_free(&chat->fo.rcpt_sent);
    dx__free(chat->fo.rcpt);
    dx__free(chat->fo.pres);
    dx__free(chat->fo.mem);
    dx__chat_limiter_free(chat->lim);
    chat->broker->ops->free(chat->broker);
    chat->st->ops->close(chat->st);
    dx__free(chat);
}

/* The reads of the chat protocol: history and sync (docs/chat-protocol.md).
 * Both answer from committed data only, and show messages as they are now
 * (edited, recalled, with the target of each event message). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include <duplex/common.h>

#include "chat/engine_int.h"

typedef struct collect_arg {
    dx__chat *chat;
    json_t *msgs;
} collect_arg;

static int collect_msg(void *arg, const dx__chat_msg *m) {
    collect_arg *a = arg;
    json_t *mj = dx__chat_msg_json(a->chat, m);
    return mj && json_array_append_new(a->msgs, mj) == 0 ? 0 : DX_ENOMEM;
}

/* Reads on committed data only (see engine.h); a reply that may show
 * what is not durable yet leaves after it (engine.c, "durability"). */
void dx__chat_before_read(dx__chat *chat) {
    if (chat->in_tx || chat->npend) (void)dx__chat_flush(chat);
    if (chat->whead < chat->nwait) chat->hold = 1;
}

int dx__chat_opt_int(dx__chat_req *r, const char *name, int64_t dflt, int64_t lo, int64_t hi,
                     int64_t *out) {
    json_t *j = json_object_get(r->root, name);
    if (!j || json_is_null(j)) {
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(j) || json_integer_value(j) < lo || json_integer_value(j) > hi) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s must be an integer from %lld to %lld", name, (long long)lo,
                 (long long)hi);
        dx__chat_fail(r, "bad_field", msg, name);
        return -1;
    }
    *out = json_integer_value(j);
    return 0;
}

void dx__chat_do_history(dx__chat_req *r) {
    dx__chat *chat = r->chat;
    int kind;
    const char *conv = dx__chat_need_conv(r, &kind);
    if (!conv) return;
    int64_t before, limit;
    if (dx__chat_opt_int(r, "before", 0, 0, INT64_MAX, &before) < 0 ||
        dx__chat_opt_int(r, "limit", 50, 1, 100, &limit) < 0)
        return;
    dx__chat_before_read(chat);
    if (kind != DX_CHAT_CONV_GROUP && !dx__chat_need_member(r, conv)) return;
    json_t *msgs = json_array(), *j = dx__chat_reply(r, "history");
    int more = 0, rc = DX_ENOMEM;
    collect_arg ca = {chat, msgs};
    if (msgs && j)
        rc = chat->st->ops->messages(chat->st, conv, 0, before, (int)limit, 1, collect_msg, &ca,
                                     &more);
    if (rc < 0) {
        json_decref(msgs);
        json_decref(j);
        dx__chat_store_fail(r, rc);
        return;
    }
    json_object_set_new(j, "conv", json_string(conv));
    json_object_set_new(j, "msgs", msgs);
    json_object_set_new(j, "more", json_boolean(more));
    dx__chat_send_json(chat, r->dev, j);
}

/* A sync reply holds at most this many bytes of messages (about), so that
 * it stays well under the connection's output limit; what does not fit is
 * marked `more` and comes with the next sync. */
#define SYNC_BUDGET (256 * 1024)

typedef struct sync_arg {
    dx__chat_req *r;
    json_t *since; /* object or NULL */
    json_t *convs;
    size_t budget; /* bytes of messages left for this reply */
    int64_t page;  /* conversations in this reply, at most */
    int64_t seen;  /* conversations the store listed so far */
} sync_arg;

typedef struct budget_arg {
    collect_arg c;
    size_t *budget;
    int cut; /* stopped for lack of budget */
} budget_arg;

static int collect_budget(void *arg, const dx__chat_msg *m) {
    budget_arg *b = arg;
    size_t cost = strlen(m->text) + strlen(m->cid) + strlen(m->conv) + 128 +
                  (m->file ? strlen(m->file) : 0) + (m->sys ? strlen(m->sys) + 4096 : 0);
    if (cost > *b->budget) {
        b->cut = 1;
        return 1;
    }
    *b->budget -= cost;
    return collect_msg(&b->c, m);
}

static int member_read(void *arg, const char *uid, int64_t seq) {
    json_t *reads = json_object_get(arg, "reads"), *members = json_object_get(arg, "members");
    json_array_append_new(members, json_string(uid));
    json_object_set_new(reads, uid, json_integer(seq));
    return 0;
}

static int role_of(void *arg, const char *uid, int64_t role) {
    json_object_set_new(arg, uid, json_string(role == DX_CHAT_ROLE_OWNER ? "owner" : "admin"));
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
    /* A large room's count is remembered a second (engine.c): the whole
     * lobby syncing after a restart would count it once each otherwise. */
    if (!dx__chat_count_cached(chat, c->conv, &count) || count <= MEMBERS_LIST) {
        rc = chat->st->ops->members(chat->st, c->conv, MEMBERS_LIST, &count, member_read, o);
        if (rc < 0) goto err;
        if (count > MEMBERS_LIST) dx__chat_count_note(chat, c->conv, count);
    }
    if (count > MEMBERS_LIST) {
        json_object_del(o, "members");
        json_object_del(o, "reads");
        json_object_set_new(o, "members_count", json_integer(count));
    }
    /* Revision 2: the kind, and a group's title and roles. */
    int kind = dx__chat_conv_kind(c->conv, uid);
    json_object_set_new(o, "kind",
                        json_string(kind == DX_CHAT_CONV_GROUP  ? "group"
                                    : kind == DX_CHAT_CONV_ROOM ? "room"
                                                                : "direct"));
    if (kind == DX_CHAT_CONV_GROUP) {
        json_t *roles = json_object();
        json_object_set_new(o, "title", json_string(c->title ? c->title : ""));
        if (!roles) goto nomem;
        json_object_set_new(o, "roles", roles);
        rc = chat->st->ops->admins(chat->st, c->conv, role_of, roles);
        if (rc < 0) goto err;
    }
    json_t *have = a->since ? json_object_get(a->since, c->conv) : NULL;
    int more = 0;
    budget_arg b = {{chat, msgs}, &a->budget, 0};
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
void dx__chat_do_sync(dx__chat_req *r) {
    dx__chat *chat = r->chat;
    chat->stats.syncs++;
    json_t *aj = json_object_get(r->root, "after");
    const char *after = json_string_value(aj);
    if (aj && !json_is_null(aj) && (!after || !*after || json_string_length(aj) > 80)) {
        dx__chat_fail(r, "bad_field", "after must be the string a sync reply gave as next",
                      "after");
        return;
    }
    json_t *since = json_object_get(r->root, "since");
    if (since && !json_is_null(since)) {
        if (!json_is_object(since)) {
            dx__chat_fail(r, "bad_field", "since must be an object {conv: last seq}", "since");
            return;
        }
        const char *k;
        json_t *v;
        json_object_foreach(since, k, v) {
            if (!json_is_integer(v) || json_integer_value(v) < 0) {
                dx__chat_fail(r, "bad_field", "since values must be integers >= 0", "since");
                return;
            }
        }
    } else {
        since = NULL;
    }
    dx__chat_before_read(chat);
    uint32_t page = chat->limits.sync_page;
    sync_arg a = {r,
                  since,
                  json_array(),
                  SYNC_BUDGET,
                  page == DX_CHAT_UNLIMITED ? INT64_MAX - 1 : (int64_t)page,
                  0};
    json_t *j = dx__chat_reply(r, "sync"), *pres = json_array();
    int rc = DX_ENOMEM;
    if (a.convs && j && pres) {
        rc = chat->st->ops->convs_of(chat->st, r->dev->uid, after, a.page + 1, sync_conv, &a);
        /* The contacts come once, with the first page. */
        if (rc == 0 && !after) rc = dx__chat_contacts_json(chat, r->dev->uid, pres);
    }
    if (rc < 0) {
        json_decref(a.convs);
        json_decref(j);
        json_decref(pres);
        dx__chat_store_fail(r, rc);
        return;
    }
    if (a.seen > a.page) {
        json_t *last = json_array_get(a.convs, json_array_size(a.convs) - 1);
        json_object_set(j, "next", json_object_get(last, "conv"));
    }
    json_object_set_new(j, "convs", a.convs);
    json_object_set_new(j, "presence", pres);
    dx__chat_send_json(chat, r->dev, j);
}

/* Private groups (docs/chat-protocol.md, "Revision 2"): group_create,
 * group_add, group_remove, group_rename, group_role, leave, group_members,
 * and the system messages that record each change in the conversation.
 *
 * Who may do what is checked against the role the store holds now
 * (need_conv reads it), and a change is a write plus a system message in
 * the turn's transaction, delivered after the commit to the members as
 * they are then: a member removed in this turn is no longer among them,
 * and gets the message of its own removal separately (pending.also), last. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include <duplex/common.h>

#include "chat/engine_int.h"
#include "core/alloc.h"

#define TITLE_MAX 64
#define CREATE_MEMBERS_MAX 199
#define ADD_MAX 100
#define MEMBERS_PAGE_MAX 200

int dx__chat_sys_cid(char cid[40]) {
    uint8_t b[12];
    if (dx_random(b, sizeof b) < 0) return DX_EIO;
    memcpy(cid, "sys-", 4);
    for (size_t i = 0; i < sizeof b; i++)
        snprintf(cid + 4 + 2 * i, 3, "%02x", b[i]);
    return 0;
}

int dx__chat_valid_label(const char *t, size_t len, size_t max) {
    if (len < 1 || len > max || strlen(t) != len) return 0;
    /* jansson checked the UTF-8; what is left are the control characters:
     * C0, DEL, and C1 (U+0080-U+009F, encoded C2 80-C2 9F). */
    const unsigned char *u = (const unsigned char *)t;
    for (size_t i = 0; i < len; i++) {
        if (u[i] < 0x20 || u[i] == 0x7f) return 0;
        if (u[i] == 0xc2 && i + 1 < len && u[i + 1] >= 0x80 && u[i + 1] <= 0x9f) return 0;
    }
    return 1;
}

int dx__chat_put_sys(dx__chat_req *r, const char *conv, json_t *sys, const char *text,
                     const char *also) {
    dx__chat *chat = r->chat;
    char cid[40], *sj = sys ? dx__chat_dump(sys) : NULL;
    if (!sj || dx__chat_sys_cid(cid) < 0) {
        free(sj);
        dx__chat_fail(r, "internal", "out of memory", NULL);
        return -1;
    }
    dx__chat_msg m, in = {.conv = conv,
                          .from = r->dev->uid,
                          .cid = cid,
                          .text = text,
                          .ts = chat->io.now_ms(chat->io.arg),
                          .sys = sj};
    int dup = 0, rc = chat->st->ops->put_msg(chat->st, &in, &m, &dup);
    if (rc < 0) {
        free(sj);
        dx__chat_store_fail(r, rc);
        return -1;
    }
    json_t *d = dx__chat_env("deliver"), *mj = dx__chat_msg_json(chat, &m);
    free(sj);
    if (!d || !mj) {
        json_decref(d);
        json_decref(mj);
        dx__chat_fail(r, "internal", "out of memory", NULL);
        return -1;
    }
    json_object_set_new(d, "msg", mj);
    /* To the requesting device too: it has no other copy of the message. */
    if (dx__chat_add_pending(chat, r->dev, NULL, NULL, conv, d, 1, also) < 0) {
        dx__chat_fail(r, "internal", "out of memory", NULL);
        return -1;
    }
    return 0;
}

/* "a, b, c and 7 others": the uids of a system message's text. */
static void uid_list(char *out, size_t cap, json_t *uids) {
    size_t n = json_array_size(uids), k = 0;
    out[0] = 0;
    for (size_t i = 0; i < n && i < 5; i++)
        k += (size_t)snprintf(out + k, k < cap ? cap - k : 0, "%s%s",
                              i == 0       ? ""
                              : i == n - 1 ? " and "
                                           : ", ",
                              json_string_value(json_array_get(uids, i)));
    if (n > 5 && k < cap) snprintf(out + k, cap - k, " and %zu others", n - 5);
}

/* The conversation of a group request: a group the caller is a member of
 * with at least `min_role`; NULL after replying. */
static const char *need_group(dx__chat_req *r, int min_role) {
    int kind;
    const char *conv = dx__chat_need_conv(r, &kind);
    if (!conv) return NULL;
    if (kind != DX_CHAT_CONV_GROUP) {
        dx__chat_fail(r, "bad_field", "conv must be a group (p:...)", "conv");
        return NULL;
    }
    if (r->role < min_role) {
        dx__chat_fail(r, "forbidden", "your role in this group does not allow this", NULL);
        return NULL;
    }
    return conv;
}

/* A title field: 1-64 bytes of UTF-8 without control characters. */
static const char *need_title(dx__chat_req *r) {
    json_t *t = json_object_get(r->root, "title");
    const char *s = json_string_value(t);
    if (!s || !dx__chat_valid_label(s, json_string_length(t), TITLE_MAX)) {
        dx__chat_fail(r, "bad_field", "title must be 1-64 bytes of text without control characters",
                      "title");
        return NULL;
    }
    return s;
}

/* An array field of 0..max distinct valid uids, without the caller's:
 * a new array, or NULL after replying. */
static json_t *need_uids(dx__chat_req *r, const char *field, size_t min, size_t max) {
    json_t *a = json_object_get(r->root, field), *out = json_array();
    size_t n = json_array_size(a);
    if (!out) {
        dx__chat_fail(r, "internal", "out of memory", NULL);
        return NULL;
    }
    if ((a || min) && (!json_is_array(a) || n < min || n > max)) goto bad;
    for (size_t i = 0; i < n; i++) {
        const char *u = json_string_value(json_array_get(a, i));
        if (!u || !dx__chat_valid_uid(u, strlen(u))) goto bad;
        if (!strcmp(u, r->dev->uid)) continue;
        int seen = 0;
        for (size_t k = 0; k < json_array_size(out) && !seen; k++)
            seen = !strcmp(u, json_string_value(json_array_get(out, k)));
        if (!seen) json_array_append_new(out, json_string(u));
    }
    if (json_array_size(out) < min) goto bad;
    return out;
bad:
    json_decref(out);
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be an array of %zu-%zu user ids (not yours)", field, min,
             max);
    dx__chat_fail(r, "bad_field", msg, field);
    return NULL;
}

/* A uid field naming a member other than the caller; its role in *role. */
static const char *need_other(dx__chat_req *r, const char *conv, int *role) {
    const char *u = json_string_value(json_object_get(r->root, "uid"));
    if (!u || !dx__chat_valid_uid(u, strlen(u)) || !strcmp(u, r->dev->uid)) {
        dx__chat_fail(r, "bad_field", "uid must be another member's user id", "uid");
        return NULL;
    }
    *role = r->chat->st->ops->role(r->chat->st, conv, u);
    if (*role < 0) {
        dx__chat_store_fail(r, *role);
        return NULL;
    }
    if (*role == DX_CHAT_ROLE_NONE) {
        dx__chat_fail(r, "bad_field", "uid is not a member of this group", "uid");
        return NULL;
    }
    return u;
}

static int begin(dx__chat_req *r) {
    int rc = dx__chat_tx(r->chat);
    if (rc < 0) dx__chat_store_fail(r, rc);
    return rc;
}

static void ok(dx__chat_req *r) {
    if (dx__chat_add_pending(r->chat, r->dev, r->id, dx__chat_reply(r, "ok"), NULL, NULL, 0, NULL) <
        0)
        dx__chat_fail(r, "internal", "out of memory", NULL);
}

static int title_of(void *arg, const dx__chat_msg *m) {
    json_t *sys = m->sys ? json_loads(m->sys, 0, NULL) : NULL;
    const char *op = json_string_value(json_object_get(sys, "op"));
    int found = op && !strcmp(op, "create");
    if (found) json_object_set(arg, "title", json_object_get(sys, "title"));
    json_decref(sys);
    return found ? 0 : 1;
}

void dx__chat_do_group_create(dx__chat_req *r) {
    dx__chat *chat = r->chat;
    const char *cid = json_string_value(json_object_get(r->root, "cid"));
    if (!cid || !dx__chat_valid_cid(cid)) {
        dx__chat_fail(r, "bad_field", "cid must be 1-64 printable ASCII characters", "cid");
        return;
    }
    const char *title = need_title(r);
    if (!title) return;
    json_t *uids = need_uids(r, "members", 0, CREATE_MEMBERS_MAX);
    if (!uids) return;
    char conv[24], text[200];
    json_t *sys = json_pack("{s:s, s:s, s:O}", "op", "create", "title", title, "uids", uids);
    char *sj = sys ? dx__chat_dump(sys) : NULL;
    size_t n = json_array_size(uids);
    const char **list = dx__malloc((n ? n : 1) * sizeof *list);
    if (!sj || !list) {
        free(sj);
        dx__free(list);
        json_decref(uids);
        dx__chat_fail(r, "internal", "out of memory", NULL);
        return;
    }
    for (size_t i = 0; i < n; i++)
        list[i] = json_string_value(json_array_get(uids, i));
    snprintf(text, sizeof text, "%s created the group \"%s\"", r->dev->uid, title);
    int dup = 0, rc = dx__chat_group_id(conv);
    dx__chat_msg m, in = {.conv = conv,
                          .from = r->dev->uid,
                          .cid = cid,
                          .text = text,
                          .ts = chat->io.now_ms(chat->io.arg),
                          .sys = sj};
    if (rc == 0) rc = dx__chat_tx(chat);
    if (rc == 0) rc = chat->st->ops->group_create(chat->st, &in, title, list, n, &m, &dup);
    dx__free(list);
    json_decref(uids);
    json_t *rep = rc < 0 ? NULL : dx__chat_reply(r, "group"), *d = NULL;
    if (rc < 0) {
        free(sj);
        dx__chat_store_fail(r, rc);
        return;
    }
    if (!rep) goto nomem;
    json_object_set_new(rep, "conv", json_string(m.conv));
    if (dup) {
        /* The group this cid created before, with its first title; a cid
         * that named an ordinary message is not a group's. */
        json_object_set_new(rep, "dup", json_true());
        rc = chat->st->ops->get(chat->st, m.conv, m.seq, title_of, rep);
        if (rc != 0) {
            json_decref(rep);
            free(sj);
            if (rc < 0 && rc != DX_EINVAL)
                dx__chat_store_fail(r, rc);
            else
                dx__chat_fail(r, "bad_field", "cid was used for a message already", "cid");
            return;
        }
    } else {
        json_object_set_new(rep, "title", json_string(title));
        d = dx__chat_env("deliver");
        json_t *mj = dx__chat_msg_json(chat, &m);
        if (!d || !mj) {
            json_decref(d);
            json_decref(mj);
            json_decref(rep);
            goto nomem;
        }
        json_object_set_new(d, "msg", mj);
    }
    free(sj);
    sj = NULL;
    if (dx__chat_add_pending(chat, r->dev, r->id, rep, dup ? NULL : conv, d, 1, NULL) < 0)
        goto nomem;
    return;
nomem:
    free(sj);
    dx__chat_fail(r, "internal", "out of memory", NULL);
}

void dx__chat_do_group_add(dx__chat_req *r) {
    const char *conv = need_group(r, DX_CHAT_ROLE_ADMIN);
    if (!conv) return;
    json_t *uids = need_uids(r, "uids", 1, ADD_MAX), *added = json_array();
    if (!uids || !added || begin(r) < 0) {
        if (uids && !added) dx__chat_fail(r, "internal", "out of memory", NULL);
        json_decref(uids);
        json_decref(added);
        return;
    }
    dx__chat *chat = r->chat;
    for (size_t i = 0; i < json_array_size(uids); i++) {
        const char *u = json_string_value(json_array_get(uids, i));
        int rc = chat->st->ops->add_member(chat->st, conv, u, DX_CHAT_ROLE_MEMBER);
        if (rc < 0) {
            json_decref(uids);
            json_decref(added);
            dx__chat_store_fail(r, rc);
            return;
        }
        if (rc == 1) json_array_append_new(added, json_string(u));
    }
    json_decref(uids);
    if (json_array_size(added) > 0) {
        char list[256], text[320];
        uid_list(list, sizeof list, added);
        snprintf(text, sizeof text, "%s added %s", r->dev->uid, list);
        json_t *sys = json_pack("{s:s, s:O}", "op", "add", "uids", added);
        if (dx__chat_put_sys(r, conv, sys, text, NULL) < 0) {
            json_decref(added);
            return;
        }
    }
    json_decref(added);
    ok(r);
}

void dx__chat_do_group_remove(dx__chat_req *r) {
    const char *conv = need_group(r, DX_CHAT_ROLE_ADMIN);
    int role;
    const char *u = conv ? need_other(r, conv, &role) : NULL;
    if (!u) return;
    /* The owner removes anyone (but itself: it leaves); an admin, members. */
    if (r->role != DX_CHAT_ROLE_OWNER && role != DX_CHAT_ROLE_MEMBER) {
        dx__chat_fail(r, "forbidden", "an admin may remove members only", "uid");
        return;
    }
    if (begin(r) < 0) return;
    char text[96];
    snprintf(text, sizeof text, "%s removed %s", r->dev->uid, u);
    json_t *sys = json_pack("{s:s, s:[s]}", "op", "remove", "uids", u);
    /* The message first (the removed one is told, as `also`), then the
     * membership goes: from here on nothing of the group reaches it. */
    if (dx__chat_put_sys(r, conv, sys, text, u) < 0) return;
    int rc = r->chat->st->ops->remove_member(r->chat->st, conv, u);
    if (rc < 0) {
        dx__chat_store_fail(r, rc);
        return;
    }
    ok(r);
}

void dx__chat_do_group_rename(dx__chat_req *r) {
    const char *conv = need_group(r, DX_CHAT_ROLE_ADMIN);
    const char *title = conv ? need_title(r) : NULL;
    if (!title || begin(r) < 0) return;
    int rc = r->chat->st->ops->set_title(r->chat->st, conv, title);
    if (rc < 0) {
        dx__chat_store_fail(r, rc);
        return;
    }
    char text[160];
    snprintf(text, sizeof text, "%s renamed the group to \"%s\"", r->dev->uid, title);
    if (dx__chat_put_sys(r, conv, json_pack("{s:s, s:s}", "op", "rename", "title", title), text,
                         NULL) == 0)
        ok(r);
}

void dx__chat_do_group_role(dx__chat_req *r) {
    const char *conv = need_group(r, DX_CHAT_ROLE_OWNER);
    int role;
    const char *u = conv ? need_other(r, conv, &role) : NULL;
    if (!u) return;
    const char *name = json_string_value(json_object_get(r->root, "role"));
    int want = !name                     ? 0
               : !strcmp(name, "admin")  ? DX_CHAT_ROLE_ADMIN
               : !strcmp(name, "member") ? DX_CHAT_ROLE_MEMBER
                                         : 0;
    if (!want) {
        dx__chat_fail(r, "bad_field", "role must be \"admin\" or \"member\"", "role");
        return;
    }
    if (want == role) {
        ok(r); /* nothing changes, nothing to tell */
        return;
    }
    if (begin(r) < 0) return;
    int rc = r->chat->st->ops->set_role(r->chat->st, conv, u, want);
    if (rc < 0) {
        dx__chat_store_fail(r, rc);
        return;
    }
    char text[96];
    snprintf(text, sizeof text, "%s made %s %s", r->dev->uid, u,
             want == DX_CHAT_ROLE_ADMIN ? "an admin" : "a member");
    if (dx__chat_put_sys(r, conv,
                         json_pack("{s:s, s:[s], s:s}", "op", "role", "uids", u, "role", name),
                         text, NULL) == 0)
        ok(r);
}

void dx__chat_do_leave(dx__chat_req *r) {
    dx__chat *chat = r->chat;
    int kind;
    const char *conv = dx__chat_need_conv(r, &kind);
    if (!conv) return;
    if (kind == DX_CHAT_CONV_DIRECT || !strcmp(conv, chat->lobby)) {
        dx__chat_fail(r, "bad_field", "only groups and rooms (not the lobby) can be left", "conv");
        return;
    }
    if (kind == DX_CHAT_CONV_ROOM && !dx__chat_need_member(r, conv)) return;
    if (begin(r) < 0) return;
    char text[96];
    snprintf(text, sizeof text, "%s left", r->dev->uid);
    if (dx__chat_put_sys(r, conv, json_pack("{s:s}", "op", "leave"), text, r->dev->uid) < 0) return;
    int rc = chat->st->ops->remove_member(chat->st, conv, r->dev->uid);
    char heir[DX_CHAT_UID_MAX + 1];
    /* A group keeps an owner while it has members: the earliest admin, else
     * the earliest member. */
    if (rc >= 0 && kind == DX_CHAT_CONV_GROUP && r->role == DX_CHAT_ROLE_OWNER &&
        (rc = chat->st->ops->successor(chat->st, conv, heir)) == 1) {
        rc = chat->st->ops->set_role(chat->st, conv, heir, DX_CHAT_ROLE_OWNER);
        snprintf(text, sizeof text, "%s is now the owner", heir);
        if (rc >= 0 &&
            dx__chat_put_sys(r, conv, json_pack("{s:s, s:[s]}", "op", "owner", "uids", heir), text,
                             NULL) < 0)
            return;
    }
    if (rc < 0) {
        dx__chat_store_fail(r, rc);
        return;
    }
    ok(r);
}

static int member_json(void *arg, const char *uid, int role, int64_t read_seq) {
    static const char *const NAMES[] = {"", "member", "admin", "owner"};
    json_t *o =
        json_pack("{s:s, s:s, s:I}", "uid", uid, "role", NAMES[role >= 1 && role <= 3 ? role : 1],
                  "read_seq", (json_int_t)read_seq);
    return o && json_array_append_new(arg, o) == 0 ? 0 : DX_ENOMEM;
}

void dx__chat_do_group_members(dx__chat_req *r) {
    const char *conv = need_group(r, DX_CHAT_ROLE_MEMBER);
    if (!conv) return;
    json_t *aj = json_object_get(r->root, "after");
    const char *after = json_string_value(aj);
    if (aj && !json_is_null(aj) && (!after || !dx__chat_valid_uid(after, strlen(after)))) {
        dx__chat_fail(r, "bad_field", "after must be a user id (the last one received)", "after");
        return;
    }
    int64_t limit;
    if (dx__chat_opt_int(r, "limit", MEMBERS_PAGE_MAX, 1, MEMBERS_PAGE_MAX, &limit) < 0) return;
    dx__chat_before_read(r->chat);
    json_t *list = json_array(), *j = dx__chat_reply(r, "group_members");
    int rc = DX_ENOMEM;
    if (list && j)
        rc = r->chat->st->ops->members_page(r->chat->st, conv, after, limit + 1, member_json, list);
    if (rc < 0) {
        json_decref(list);
        json_decref(j);
        dx__chat_store_fail(r, rc);
        return;
    }
    if ((int64_t)json_array_size(list) > limit) {
        json_array_remove(list, json_array_size(list) - 1);
        json_object_set(j, "next",
                        json_object_get(json_array_get(list, json_array_size(list) - 1), "uid"));
    }
    json_object_set_new(j, "conv", json_string(conv));
    json_object_set_new(j, "members", list);
    dx__chat_send_json(r->chat, r->dev, j);
}

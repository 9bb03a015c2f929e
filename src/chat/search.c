/* Search (docs/chat-protocol.md, "Search"): substrings of the text of the
 * messages people wrote, in the conversations the user is a member of now,
 * newest first. The matching itself is the store's (an FTS5 trigram index
 * in SQLite, pg_trgm or a scan in PostgreSQL); here the request is checked
 * and the reply built. */
#include <jansson.h>
#include <string.h>

#include <duplex/common.h>

#include "chat/engine_int.h"

#define Q_MIN 2
#define Q_MAX 100
#define LIMIT_MAX 50
#define LIMIT_DEFAULT 20

typedef struct found {
    dx__chat *chat;
    json_t *list;
} found;

static int collect(void *arg, const dx__chat_msg *m) {
    found *f = arg;
    json_t *mj = dx__chat_msg_json(f->chat, m);
    return mj && json_array_append_new(f->list, mj) == 0 ? 0 : DX_ENOMEM;
}

void dx__chat_do_search(dx__chat_req *r) {
    dx__chat *chat = r->chat;
    json_t *qj = json_object_get(r->root, "q");
    const char *q = json_string_value(qj);
    size_t qn = json_string_length(qj);
    if (!q || qn < Q_MIN || qn > Q_MAX || strlen(q) != qn) {
        dx__chat_fail(r, "bad_field", "q must be a string of 2-100 bytes", "q");
        return;
    }
    const char *conv = NULL;
    json_t *cj = json_object_get(r->root, "conv");
    if (cj && !json_is_null(cj)) {
        int kind;
        if (!(conv = dx__chat_need_conv(r, &kind))) return;
        if (kind == DX_CHAT_CONV_ROOM && !dx__chat_need_member(r, conv)) return;
    }
    int64_t before, limit;
    if (dx__chat_opt_int(r, "before", 0, 1, INT64_MAX, &before) < 0 ||
        dx__chat_opt_int(r, "limit", LIMIT_DEFAULT, 1, LIMIT_MAX, &limit) < 0)
        return;
    dx__chat_before_read(chat);
    found f = {chat, json_array()};
    json_t *j = dx__chat_reply(r, "search");
    int64_t next = 0;
    int rc = DX_ENOMEM;
    if (f.list && j)
        rc = chat->st->ops->search(chat->st, r->dev->uid, conv, q, before, (int)limit, collect, &f,
                                   &next);
    if (rc < 0) {
        json_decref(f.list);
        json_decref(j);
        dx__chat_store_fail(r, rc);
        return;
    }
    json_object_set_new(j, "results", f.list);
    if (next > 0) json_object_set_new(j, "next", json_integer(next));
    dx__chat_send_json(chat, r->dev, j);
}

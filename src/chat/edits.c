/* Recall and edit (docs/chat-protocol.md, "Recall and edit").
 *
 * Both change a stored message in place and add an event message to the
 * conversation (sys op "recall" or "edit", with the target's seq), so that
 * a device that was offline learns of the change from sync like any other
 * message; every output of an event message carries the target as it is
 * now (engine.c, dx__chat_msg_json). A recall really deletes: the store
 * empties the text and the file and takes the words out of the search
 * index, and the file's bytes go after the commit when no other message
 * holds them. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include <duplex/common.h>

#include "chat/engine_int.h"
#include "core/alloc.h"

/* What recall and edit need to know of their target, copied out of the
 * store's row. */
typedef struct target {
    char from[DX_CHAT_UID_MAX + 1];
    int64_t ts;
    int sys, recalled, file;
    char fid[DX_CHAT_FILE_ID_LEN + 1], tid[DX_CHAT_FILE_ID_LEN + 1];
} target;

static int copy_target(void *arg, const dx__chat_msg *m) {
    target *t = arg;
    snprintf(t->from, sizeof t->from, "%s", m->from);
    t->ts = m->ts;
    t->sys = m->sys != NULL;
    t->recalled = m->recalled;
    t->file = m->file != NULL;
    snprintf(t->fid, sizeof t->fid, "%s", m->file_id ? m->file_id : "");
    snprintf(t->tid, sizeof t->tid, "%s", m->thumb_id ? m->thumb_id : "");
    return 0;
}

/* The conversation and seq of a recall or an edit, and the target read in
 * the turn's transaction (opened here). NULL after replying. */
static const char *need_target(dx__chat_req *r, const char *verb, int64_t *seq, target *t) {
    dx__chat *chat = r->chat;
    int kind;
    const char *conv = dx__chat_need_conv(r, &kind);
    if (!conv) return NULL;
    json_t *sj = json_object_get(r->root, "seq");
    if (!json_is_integer(sj) || json_integer_value(sj) < 1) {
        dx__chat_fail(r, "bad_field", "seq must be an integer >= 1", "seq");
        return NULL;
    }
    *seq = json_integer_value(sj);
    if (kind == DX_CHAT_CONV_ROOM && !dx__chat_need_member(r, conv)) return NULL;
    int rc = dx__chat_tx(chat);
    if (rc == 0) rc = chat->st->ops->get(chat->st, conv, *seq, copy_target, t);
    if (rc == DX_EINVAL) {
        dx__chat_fail(r, "bad_field", "no such message", "seq");
        return NULL;
    }
    if (rc < 0) {
        dx__chat_store_fail(r, rc);
        return NULL;
    }
    char msg[64];
    if (t->sys) {
        snprintf(msg, sizeof msg, "system messages cannot be %s", verb);
        dx__chat_fail(r, "bad_field", msg, "seq");
        return NULL;
    }
    if (strcmp(t->from, r->dev->uid)) {
        snprintf(msg, sizeof msg, "only its sender can %s a message", verb);
        dx__chat_fail(r, "forbidden", msg, "seq");
        return NULL;
    }
    return conv;
}

/* The event message of `op` on `seq`, and the reply; for a recall, the
 * files to let go after the commit (on the reply's pending entry). */
static void event(dx__chat_req *r, const char *conv, const char *op, int64_t seq, const target *t) {
    char text[96];
    snprintf(text, sizeof text, "%s %s a message", r->dev->uid,
             !strcmp(op, "recall") ? "recalled" : "edited");
    json_t *sys = json_pack("{s:s, s:I}", "op", op, "seq", (json_int_t)seq);
    if (dx__chat_put_sys(r, conv, sys, text, NULL) < 0) return;
    dx__chat *chat = r->chat;
    if (dx__chat_add_pending(chat, r->dev, r->id, dx__chat_reply(r, "ok"), NULL, NULL, 0, NULL) <
        0) {
        dx__chat_fail(r, "internal", "out of memory", NULL);
        return;
    }
    if (t) {
        pending *p = &chat->pend[chat->npend - 1];
        snprintf(p->fid, sizeof p->fid, "%s", t->fid);
        snprintf(p->tid, sizeof p->tid, "%s", t->tid);
    }
}

void dx__chat_do_recall(dx__chat_req *r) {
    dx__chat *chat = r->chat;
    int64_t seq;
    target t;
    const char *conv = need_target(r, "recall", &seq, &t);
    if (!conv) return;
    if (t.recalled) {
        /* A repeat (the first one's ok was lost): already done. */
        if (dx__chat_add_pending(chat, r->dev, r->id, dx__chat_reply(r, "ok"), NULL, NULL, 0,
                                 NULL) < 0)
            dx__chat_fail(r, "internal", "out of memory", NULL);
        return;
    }
    if (chat->io.now_ms(chat->io.arg) - t.ts > chat->recall_ms) {
        char msg[96];
        snprintf(msg, sizeof msg, "a message can be recalled for %lld s after it was sent",
                 (long long)(chat->recall_ms / 1000));
        dx__chat_fail(r, "too_late", msg, "seq");
        return;
    }
    int rc = chat->st->ops->recall(chat->st, conv, seq);
    if (rc < 0) {
        dx__chat_store_fail(r, rc);
        return;
    }
    event(r, conv, "recall", seq, &t);
}

void dx__chat_do_edit(dx__chat_req *r) {
    dx__chat *chat = r->chat;
    json_t *tj = json_object_get(r->root, "text");
    if (dx__chat_check_text(r, tj, 0) < 0) return;
    int64_t seq;
    target t;
    const char *conv = need_target(r, "edit", &seq, &t);
    if (!conv) return;
    if (t.recalled || t.file) {
        dx__chat_fail(r, "bad_field", "only text messages that were not recalled can be edited",
                      "seq");
        return;
    }
    int rc = chat->st->ops->edit(chat->st, conv, seq, json_string_value(tj),
                                 chat->io.now_ms(chat->io.arg));
    if (rc < 0) {
        dx__chat_store_fail(r, rc);
        return;
    }
    event(r, conv, "edit", seq, NULL);
}

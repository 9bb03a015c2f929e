/* The engine's side of files (docs/chat-protocol.md, "Files and
 * pictures"): routing the `upload` request and binary messages to files.c,
 * checking the `file` a send attaches, letting bytes go after a recall,
 * and telling the service who may download what. The bytes themselves
 * are files.c's business. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include <duplex/common.h>

#include "chat/engine_int.h"
#include "core/alloc.h"

#define NAME_MAX_BYTES 255
#define SIDE_MAX 100000 /* w and h, in pixels */

static void off(dx__chat_req *r, const char *field) {
    dx__chat_fail(r, "bad_type", "uploads are off on this server", field);
}

/* Sends what files.c answered, with the request's id. */
static void answer(dx__chat_req *r, json_t *j) {
    if (!j) {
        dx__chat_fail(r, "internal", "out of memory", NULL);
        return;
    }
    if (r->id) json_object_set(j, "id", r->id);
    dx__chat_send_json(r->chat, r->dev, j);
}

void dx__chat_do_upload(dx__chat_req *r) {
    if (!r->chat->files) {
        off(r, NULL);
        return;
    }
    answer(r, dx__chat_files_upload(r->chat->files, r->dev->uid, r->root));
}

void dx__chat_upload_chunk(dx__chat_req *r, const uint8_t *data, size_t len) {
    answer(r, dx__chat_files_chunk(r->chat->files, r->dev->uid, data, len));
}

/* 1 when `uid` may attach file `id`: it uploaded it, or the file is in a
 * conversation it can read (forwarding). Negative on a store error. */
static int may_attach(dx__chat *chat, const char *uid, const char *id) {
    if (dx__chat_files_owned(chat->files, uid, id)) return 1;
    int rc = chat->st->ops->file_find(chat->st, uid, NULL, id, NULL, 0);
    return rc < 0 ? rc : rc > 0;
}

int dx__chat_attach(dx__chat_req *r, char **file, const char **id, const char **thumb) {
    dx__chat *chat = r->chat;
    if (!chat->files) {
        off(r, "file");
        return -1;
    }
    json_t *f = json_object_get(r->root, "file");
    const char *fid = json_string_value(json_object_get(f, "id"));
    json_t *nj = json_object_get(f, "name"), *tj = json_object_get(f, "thumb");
    const char *name = json_string_value(nj), *tid = json_string_value(tj);
    if (!json_is_object(f) || !fid || !dx__chat_file_id_valid(fid)) {
        dx__chat_fail(r, "bad_field", "file must be {id: sha256 hex, name, thumb?, w?, h?}",
                      "file");
        return -1;
    }
    if (!name || !dx__chat_valid_label(name, json_string_length(nj), NAME_MAX_BYTES)) {
        dx__chat_fail(r, "bad_field",
                      "file.name must be 1-255 bytes of text without control characters", "file");
        return -1;
    }
    if ((tj && !json_is_null(tj) && (!tid || !dx__chat_file_id_valid(tid)))) {
        dx__chat_fail(r, "bad_field", "file.thumb must be a sha256 in hex", "file");
        return -1;
    }
    json_t *out = json_pack("{s:s, s:s}", "id", fid, "name", name);
    if (!out) goto nomem;
    static const char *const SIDES[] = {"w", "h"};
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(f, SIDES[i]);
        if (!v || json_is_null(v)) continue;
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > SIDE_MAX) {
            json_decref(out);
            dx__chat_fail(r, "bad_field", "file.w and file.h must be integers of 1-100000", "file");
            return -1;
        }
        json_object_set(out, SIDES[i], v);
    }
    int64_t size = 0;
    char type[DX_CHAT_FILE_TYPE_MAX];
    int ok = may_attach(chat, r->dev->uid, fid);
    if (ok == 1) ok = dx__chat_files_stat(chat->files, fid, &size, type) == 0;
    if (ok == 1 && tid) {
        int64_t tsize;
        char ttype[DX_CHAT_FILE_TYPE_MAX];
        ok = may_attach(chat, r->dev->uid, tid);
        if (ok == 1) ok = dx__chat_files_stat(chat->files, tid, &tsize, ttype) == 0;
    }
    if (ok < 0) {
        json_decref(out);
        dx__chat_store_fail(r, ok);
        return -1;
    }
    if (!ok) {
        json_decref(out);
        dx__chat_fail(r, "no_file", "no such file, or not yours to attach", "file");
        return -1;
    }
    /* Size and type are the server's own, never the client's word. */
    json_object_set_new(out, "size", json_integer(size));
    json_object_set_new(out, "type", json_string(type));
    if (tid) json_object_set_new(out, "thumb", json_string(tid));
    char *s = dx__chat_dump(out);
    if (!s) goto nomem;
    *file = dx__strndup(s, strlen(s));
    free(s);
    if (!*file) goto nomem;
    *id = fid;
    *thumb = tid;
    return 0;
nomem:
    dx__chat_fail(r, "internal", "out of memory", NULL);
    return -1;
}

void dx__chat_files_release(dx__chat *chat, const char *id, const char *thumb) {
    const char *ids[2] = {id, thumb};
    for (int i = 0; i < 2; i++) {
        int64_t n = 1;
        if (chat->files && ids[i] && ids[i][0] &&
            chat->st->ops->file_refs(chat->st, ids[i], &n) == 0 && n == 0)
            dx__chat_files_unlink(chat->files, ids[i]);
    }
}

int dx__chat_file_visible(dx__chat *chat, const char *uid, const char *conv, const char *id,
                          char name[256]) {
    name[0] = 0;
    if (!dx__chat_valid_uid(uid, strlen(uid)) || !dx__chat_file_id_valid(id) ||
        dx__chat_conv_kind(conv, uid) == DX_CHAT_CONV_BAD)
        return 0;
    dx__chat_before_read(chat); /* committed messages only */
    chat->hold = 0;             /* no reply of the engine's follows: HTTP answers */
    char file[2048];
    int rc = chat->st->ops->file_find(chat->st, uid, conv, id, file, sizeof file);
    if (rc <= 0) return rc;
    if (rc == 2) {
        snprintf(name, 256, "thumb.jpg");
        return 1;
    }
    json_t *j = json_loads(file, 0, NULL);
    const char *n = json_string_value(json_object_get(j, "name"));
    snprintf(name, 256, "%s", n ? n : id);
    json_decref(j);
    return 1;
}

/* Stub, replaced by the files work of issue 18 (files.h says what it does). */
#include "chat/files.h"

#include <duplex/common.h>

#include "chat/proto.h"

dx__chat_files *dx__chat_files_new(const char *dir, uint64_t max_upload, const char **why) {
    (void)dir, (void)max_upload;
    *why = "files are not implemented yet";
    return NULL;
}
void dx__chat_files_free(dx__chat_files *f) {
    (void)f;
}
static json_t *not_yet(void) {
    json_t *j = dx__chat_env("error");
    if (j) {
        json_object_set_new(j, "code", json_string("bad_type"));
        json_object_set_new(j, "message", json_string("uploads are off on this server"));
    }
    return j;
}
json_t *dx__chat_files_upload(dx__chat_files *f, const char *uid, json_t *req) {
    (void)f, (void)uid, (void)req;
    return not_yet();
}
json_t *dx__chat_files_chunk(dx__chat_files *f, const char *uid, const uint8_t *data, size_t len) {
    (void)f, (void)uid, (void)data, (void)len;
    return not_yet();
}
int dx__chat_file_id_valid(const char *id) {
    (void)id;
    return 0;
}
int dx__chat_files_stat(dx__chat_files *f, const char *id, int64_t *size,
                        char type[DX_CHAT_FILE_TYPE_MAX]) {
    (void)f, (void)id, (void)size, (void)type;
    return DX_EINVAL;
}
int dx__chat_files_owned(dx__chat_files *f, const char *uid, const char *id) {
    (void)f, (void)uid, (void)id;
    return 0;
}
void dx__chat_files_unlink(dx__chat_files *f, const char *id) {
    (void)f, (void)id;
}
int dx__chat_files_serve(dx__chat_files *f, dx_server_conn *c, const dx_http_route *r,
                         const char *id, const char *name) {
    (void)f, (void)r, (void)id, (void)name;
    (void)dx_server_http_respond(c, 404, NULL, "not found\n", 10);
    return 1;
}

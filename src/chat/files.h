/* Internal: the chat's files — uploads over binary WebSocket messages,
 * content-addressed storage on disk, downloads over HTTP
 * (docs/chat-protocol.md, "Files and pictures"). The engine routes the
 * `upload` request and binary messages here, and asks here whether a file
 * exists and whether a user may attach it; the service routes
 * GET /files/... here after the engine said the user may see the file. */
#ifndef DX_CHAT_FILES_H
#define DX_CHAT_FILES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include <duplex/server.h>

#define DX_CHAT_MAX_UPLOAD_DEFAULT (25u << 20)
#define DX_CHAT_FILE_ID_LEN 64 /* sha256 in lowercase hex */
#define DX_CHAT_FILE_TYPE_MAX 64

typedef struct dx__chat_files dx__chat_files;

/* Opens (creating when needed) the store of files in `dir`; `max_upload`
 * bytes per file (0: DX_CHAT_MAX_UPLOAD_DEFAULT). NULL with a one-line
 * reason in *why (static) on failure. */
dx__chat_files *dx__chat_files_new(const char *dir, uint64_t max_upload, const char **why);
void dx__chat_files_free(dx__chat_files *f);

/* The `upload` request `req` of `uid`: returns the reply to send (an
 * `upload`, `uploaded` or `error` envelope without "id": the caller adds
 * it), or NULL when out of memory. */
json_t *dx__chat_files_upload(dx__chat_files *f, const char *uid, json_t *req);
/* A binary message of `uid` (a chunk): returns the reply to send
 * (`upload_progress`, `uploaded` or `error`), or NULL when out of memory. */
json_t *dx__chat_files_chunk(dx__chat_files *f, const char *uid, const uint8_t *data, size_t len);

/* 1 when `id` is 64 lowercase hex digits. */
int dx__chat_file_id_valid(const char *id);
/* A stored file: 0 with its size and detected type (allow-listed MIME
 * type, or application/octet-stream), DX_EINVAL when there is none. */
int dx__chat_files_stat(dx__chat_files *f, const char *id, int64_t *size,
                        char type[DX_CHAT_FILE_TYPE_MAX]);
/* 1 when `uid` finished an upload of file `id`, else 0. */
int dx__chat_files_owned(dx__chat_files *f, const char *uid, const char *id);
/* Deletes the bytes of file `id` (a recall left no message holding it). */
void dx__chat_files_unlink(dx__chat_files *f, const char *id);

/* Answers GET/HEAD /files/<id> on `c` (inside on_http) with the file's
 * bytes: type from the allow-list, nosniff, sandbox CSP, attachment unless
 * an image, ETag, one Range. `name` is the display name for
 * Content-Disposition. The caller checked the user's right to it. Returns
 * 1 (answered). */
int dx__chat_files_serve(dx__chat_files *f, dx_server_conn *c, const dx_http_route *r,
                         const char *id, const char *name);

#endif

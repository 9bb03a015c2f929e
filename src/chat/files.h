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

/* Opens (creating when needed: the directory, then tmp/ and by/ in it) the
 * store of files in `dir`; `max_upload` bytes per file (0:
 * DX_CHAT_MAX_UPLOAD_DEFAULT). NULL with a one-line reason in *why
 * (static) when it cannot be created, opened or written. */
dx__chat_files *dx__chat_files_new(const char *dir, uint64_t max_upload, const char **why);
/* Closes the sessions in memory; their temp files stay, to be resumed. */
void dx__chat_files_free(dx__chat_files *f);

/* Every function below takes f NULL (uploads off): upload then answers
 * `error` `bad_type` "uploads are off" (a request this server does not
 * take), chunk `bad_json` (a binary message, as in revision 1), stat
 * DX_EINVAL, owned 0, serve 404. `uid` is a valid uid (checked again: it is part of file
 * names). Errors about an upload carry its token as "upload". */

/* The `upload` request `req` of `uid`: returns the reply to send — an
 * `upload` (token, offset, chunk), an `uploaded` (with a known `sha256`,
 * or a resumed upload that was complete), or an `error` (bad_field with
 * field name/size/sha256/upload, too_large, rate_limited with limit
 * "uploads" when the user has 4 uploads going, store_failed) — without
 * "id": the caller adds it. NULL when out of memory. A token of another
 * user, or an unknown or expired one, starts a new upload (a new token,
 * offset 0). */
json_t *dx__chat_files_upload(dx__chat_files *f, const char *uid, json_t *req);
/* A binary message of `uid` (a chunk: 16 bytes of token, 8 of big-endian
 * offset, at most `chunk` bytes): returns the reply to send —
 * `upload_progress`, `uploaded` (carrying the "id" of the `upload`
 * request, kept from it), or `error` (bad_offset with `offset`, bad_field
 * for an unknown token, too_large past `size`, store_failed; bad_json for
 * a message under 24 bytes, as revision 1 answered any binary message) —
 * or NULL when out of memory. */
json_t *dx__chat_files_chunk(dx__chat_files *f, const char *uid, const uint8_t *data, size_t len);

/* 1 when `id` is 64 lowercase hex digits. */
int dx__chat_file_id_valid(const char *id);
/* A stored file: 0 with its size and detected type (allow-listed MIME
 * type without parameters, e.g. "text/plain", or application/octet-stream;
 * either pointer may be NULL), DX_EINVAL when there is none. */
int dx__chat_files_stat(dx__chat_files *f, const char *id, int64_t *size,
                        char type[DX_CHAT_FILE_TYPE_MAX]);
/* 1 when `uid` finished an upload of file `id` (or named it by sha256
 * while it was stored) and the file is still there, else 0. */
int dx__chat_files_owned(dx__chat_files *f, const char *uid, const char *id);
/* Deletes the bytes of file `id` (a recall left no message holding it). */
void dx__chat_files_unlink(dx__chat_files *f, const char *id);

/* Answers GET/HEAD /files/<id> on `c` (inside on_http) with the file's
 * bytes, streamed: type from the allow-list, nosniff, sandbox CSP,
 * attachment unless an image, ETag (304 on If-None-Match), one Range
 * (206, 416), immutable caching; 405 for other methods, 404 when the file
 * is not there. `name` is the display name for Content-Disposition ("file"
 * when NULL or not a valid name). The caller checked the user's right to
 * it. Returns 1 (answered). */
int dx__chat_files_serve(dx__chat_files *f, dx_server_conn *c, const dx_http_route *r,
                         const char *id, const char *name);

#endif

/* duplex — the WebSocket opening handshake (RFC 6455 §4), both roles.
 *
 * Server side: parse the request with dx_http_parse_request, then
 * dx_handshake_check() validates it and extracts what the application needs
 * (key, Origin, offered subprotocols and extensions). The application
 * decides (accept, pick a subprotocol, reject with a status); then
 * dx_handshake_write_101() or dx_http_write_error() produces the answer.
 *
 * Client side: dx_handshake_client_key() makes a random key,
 * dx_handshake_write_request() the request; when the answer arrives,
 * dx_handshake_verify() checks it.
 *
 * SHA-1 and base64 are our own (src/core/sha1.c): no libcrypto here.
 */
#ifndef DUPLEX_HANDSHAKE_H
#define DUPLEX_HANDSHAKE_H

#include "common.h"
#include "http.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DX_KEY_LEN 24    /* base64 of 16 bytes */
#define DX_ACCEPT_LEN 28 /* base64 of a 20-byte SHA-1 */

/* What dx_handshake_check found in a valid request. All slices point into
 * the request buffer. */
typedef struct dx_handshake_info {
    const char *path; /* target up to '?' */
    size_t path_len;
    const char *query; /* after '?', without it; NULL when absent */
    size_t query_len;
    const char *key; /* Sec-WebSocket-Key, DX_KEY_LEN bytes */
    const char *origin; /* NULL when absent */
    size_t origin_len;
    const char *host;
    size_t host_len;
    const char *protocols; /* Sec-WebSocket-Protocol value(s), NULL when absent */
    size_t protocols_len;
    const char *extensions; /* Sec-WebSocket-Extensions value(s), NULL when absent.
                               Several header lines are not joined: see
                               dx_handshake_check's note. */
    size_t extensions_len;
} dx_handshake_info;

/* Why a request was refused, for the HTTP answer. */
typedef struct dx_handshake_error {
    int status;           /* 400, 405, 426... */
    const char *reason;   /* static text: "missing Sec-WebSocket-Key" */
    const char *headers;  /* extra headers for the answer, or NULL
                             ("Sec-WebSocket-Version: 13\r\n" for 426
                             and a missing version; "Allow: GET\r\n"
                             for 405) */
} dx_handshake_error;

/* Validates a parsed request (`req` as filled by dx_http_parse_request) as a
 * WebSocket upgrade. Returns 0 and fills `info` (may be NULL), or
 * DX_EHANDSHAKE and fills `err` (may be NULL) with the status to answer, a
 * static reason naming the problem and any extra headers; answer it with
 * dx_http_write_error(out, cap, err->status, err->reason, err->headers).
 * DX_EINVAL when `req` is NULL. The checks, in this order:
 *   - no Upgrade header at all: status 0, "not a WebSocket upgrade request".
 *     Not an error: serve the request as plain HTTP (any method, HTTP/1.0
 *     included).
 *   - method not GET (case-sensitive): 405 with "Allow: GET\r\n".
 *   - HTTP/1.0: 400 (an upgrade needs HTTP/1.1 or later).
 *   - Host missing, empty or on more than one line: 400.
 *   - request target not starting with '/': 400.
 *   - no Upgrade line whose token list holds "websocket", or no Connection
 *     line whose token list holds "upgrade" (both case-insensitive, so
 *     "Connection: keep-alive, Upgrade" passes): 400.
 *   - Sec-WebSocket-Version missing (400, a malformed handshake as in
 *     RFC 6455 §4.2.1 and Node's ws) or on several lines (400); present but
 *     not exactly "13": 426. Missing and 426 carry
 *     "Sec-WebSocket-Version: 13\r\n" in err->headers.
 *   - Sec-WebSocket-Key missing, on several lines, or not 22 base64
 *     characters and "==" (base64 of exactly 16 bytes): 400.
 * Sec-WebSocket-Protocol and Sec-WebSocket-Extensions may legally be split
 * over several lines (RFC 6455 §11.3); only the first line of each is
 * reported in `info`. A server that wants them all walks req->headers
 * itself. Origin and Host are reported as sent (first line). */
DX_API int dx_handshake_check(const dx_http_request *req, dx_handshake_info *info,
                              dx_handshake_error *err);

/* Computes Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)).
 * `out` receives DX_ACCEPT_LEN characters and a NUL; if libcrypto cannot
 * hash (out of memory), `out` is the empty string. */
DX_API void dx_handshake_accept(const char *key, size_t key_len, char out[DX_ACCEPT_LEN + 1]);

/* Writes the "101 Switching Protocols" answer for `key` into `out`.
 * `key` is the DX_KEY_LEN bytes of the client's key (info->key; it need not
 * be NUL-terminated). `protocol` (the chosen subprotocol) and `extensions`
 * (the accepted extension string) are NUL-terminated and may be NULL.
 * `extra_headers`, if not NULL, is inserted verbatim and must end in CRLF.
 * A NUL follows the answer when `cap` leaves room for it. Returns the
 * length, DX_ENOSPC, DX_EINVAL when `protocol` or `extensions` contains CR
 * or LF. */
DX_API int dx_handshake_write_101(char *out, size_t cap, const char *key, const char *protocol,
                                  const char *extensions, const char *extra_headers);

/* Picks the first protocol of the client's list (`offered`, a header value)
 * that appears in `supported` (a NULL-terminated array, in our order of
 * preference: the first supported one that the client offered wins).
 * Returns the index in `supported`, or -1 when none matches. */
DX_API int dx_handshake_select_protocol(const char *offered, size_t offered_len,
                                        const char *const *supported);

/* Client: a fresh random key (base64 of 16 CSPRNG bytes from dx_random)
 * and a NUL. Returns 0, or the error of dx_random (DX_EIO). */
DX_API int dx_handshake_client_key(char out[DX_KEY_LEN + 1]);

/* Client: writes the upgrade request. `host` is the Host header value
 * (with ":port" when not the default), `target` the path and query
 * ("/" when NULL or empty), `key` the NUL-terminated key from
 * dx_handshake_client_key. `protocols` and `extensions` (header values) and
 * `origin` may be NULL; `extra_headers` is inserted verbatim and must end in
 * CRLF. A NUL follows the request when `cap` leaves room for it. Returns
 * the length, or DX_ENOSPC, or DX_EINVAL when `host` or `key` is missing, a
 * value contains CR or LF, or `target` contains a space or control
 * character. */
DX_API int dx_handshake_write_request(char *out, size_t cap, const char *host, const char *target,
                                      const char *key, const char *protocols, const char *extensions,
                                      const char *origin, const char *extra_headers);

/* Client: validates the server's answer to a request sent with `key`
 * (NUL-terminated): status 101, "Upgrade: websocket", Connection containing
 * "upgrade", the right Sec-WebSocket-Accept, a Sec-WebSocket-Protocol only if one was
 * offered and then one of those offered (`offered_protocols`, the request's
 * header value or NULL), and Sec-WebSocket-Extensions only when
 * `extensions_allowed` is non-zero (the extension layer checks the values).
 * Subprotocols are compared exactly, as browsers do; Sec-WebSocket-Accept,
 * -Protocol and -Extensions on more than one line are refused (RFC 6455
 * §11.3). Returns 0, or DX_EHANDSHAKE with a static reason in *why
 * (DX_EINVAL when `res` or `key` is NULL). On success *protocol and
 * *extensions point into the response (NULL when absent). Any of the out
 * pointers may be NULL. */
DX_API int dx_handshake_verify(const dx_http_response *res, const char *key,
                               const char *offered_protocols, int extensions_allowed,
                               const char **protocol, size_t *protocol_len,
                               const char **extensions, size_t *extensions_len, const char **why);

/* One extension offer or answer, as in
 * "permessage-deflate; client_max_window_bits; server_max_window_bits=10".
 * Parameter values have their quotes removed (into the caller's storage). */
#define DX_EXT_MAX_PARAMS 8
typedef struct dx_ext_param {
    const char *name;
    size_t name_len;
    const char *value; /* NULL when the parameter has no value */
    size_t value_len;
} dx_ext_param;

typedef struct dx_ext {
    const char *name;
    size_t name_len;
    dx_ext_param params[DX_EXT_MAX_PARAMS];
    size_t num_params;
} dx_ext;

/* Parses the next extension from a Sec-WebSocket-Extensions value (RFC 6455
 * §9.1 grammar: tokens, ';' parameters, '=' values as tokens or quoted
 * strings, ',' between extensions). Start with *pos = 0. Returns 1 and fills
 * `ext` (slices point into `value`; a quoted value is returned without its
 * quotes and, as §9.1 requires, must be a token once unquoted: no escapes,
 * no spaces), 0 at the end of the list, or DX_EHTTP when the element is
 * malformed (then *pos has skipped past the next comma that is outside
 * quotes, so a caller may decline that one offer and go on; `ext` is
 * zeroed). More than DX_EXT_MAX_PARAMS parameters is malformed.
 * Whitespace is allowed around ';', '=' and ','. Parameter names are not
 * checked for repeats: that is the extension's business. */
DX_API int dx_ext_next(const char *value, size_t len, size_t *pos, dx_ext *ext);

#ifdef __cplusplus
}
#endif
#endif

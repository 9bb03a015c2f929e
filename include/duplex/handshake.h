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
 * SHA-1 and base64 come from OpenSSL's libcrypto.
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
                             ("Sec-WebSocket-Version: 13\r\n" for 426) */
} dx_handshake_error;

/* Validates a parsed request as a WebSocket upgrade: method GET, HTTP/1.1
 * or later, Host present, "Upgrade: websocket" and a Connection header whose
 * token list contains "upgrade" (both case-insensitive), a
 * Sec-WebSocket-Key that is base64 of exactly 16 bytes, and
 * Sec-WebSocket-Version 13 (else 426 with "Sec-WebSocket-Version: 13").
 * Returns 0 and fills `info`, or DX_EHANDSHAKE and fills `err`. A request
 * that is not an upgrade at all (no Upgrade header) gives DX_EHANDSHAKE with
 * status 0 so a server can serve it as plain HTTP. When
 * Sec-WebSocket-Extensions appears on several lines only the first is
 * reported in info->extensions and info->extensions_more is not provided;
 * use dx_http_find in a loop if you need all. */
DX_API int dx_handshake_check(const dx_http_request *req, dx_handshake_info *info,
                              dx_handshake_error *err);

/* Computes Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)).
 * `out` receives DX_ACCEPT_LEN characters and a NUL. */
DX_API void dx_handshake_accept(const char *key, size_t key_len, char out[DX_ACCEPT_LEN + 1]);

/* Writes the "101 Switching Protocols" answer for `key` into `out`.
 * `protocol` (the chosen subprotocol) and `extensions` (the accepted
 * extension string) may be NULL. `extra_headers`, if not NULL, is inserted
 * verbatim and must end in CRLF. Returns the length, or DX_ENOSPC. */
DX_API int dx_handshake_write_101(char *out, size_t cap, const char *key, const char *protocol,
                                  const char *extensions, const char *extra_headers);

/* Picks the first protocol of the client's list (`offered`, a header value)
 * that appears in `supported` (a NULL-terminated array, in our order of
 * preference: the first supported one that the client offered wins).
 * Returns the index in `supported`, or -1 when none matches. */
DX_API int dx_handshake_select_protocol(const char *offered, size_t offered_len,
                                        const char *const *supported);

/* Client: a fresh random key (base64 of 16 CSPRNG bytes) and a NUL. */
DX_API int dx_handshake_client_key(char out[DX_KEY_LEN + 1]);

/* Client: writes the upgrade request. `host` is the Host header value
 * (with ":port" when not the default), `target` the path and query
 * ("/" when empty). `protocols` and `extensions` (header values) and
 * `origin` may be NULL; `extra_headers` is inserted verbatim and must end in
 * CRLF. Returns the length, or DX_ENOSPC, or DX_EINVAL when a value contains
 * CR or LF. */
DX_API int dx_handshake_write_request(char *out, size_t cap, const char *host, const char *target,
                                      const char *key, const char *protocols, const char *extensions,
                                      const char *origin, const char *extra_headers);

/* Client: validates the server's answer to a request sent with `key`:
 * status 101, "Upgrade: websocket", Connection containing "upgrade", the
 * right Sec-WebSocket-Accept, a Sec-WebSocket-Protocol only if one was
 * offered and then one of those offered (`offered_protocols`, the request's
 * header value or NULL), and Sec-WebSocket-Extensions only when
 * `extensions_allowed` is non-zero (the extension layer checks the values).
 * Returns 0, or DX_EHANDSHAKE with a static reason in *why. On success
 * *protocol and *extensions point into the response (NULL when absent). */
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
 * quotes and must not contain escapes), 0 at the end of the list, or
 * DX_EHTTP when the element is malformed (then *pos has skipped to the next
 * element, so a caller may decline that one offer and go on). */
DX_API int dx_ext_next(const char *value, size_t len, size_t *pos, dx_ext *ext);

#ifdef __cplusplus
}
#endif
#endif

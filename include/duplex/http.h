/* duplex — a small HTTP/1.1 request and response parser.
 *
 * Parses the head of a request or response (request/status line and
 * headers, up to the empty line) into slices of the caller's buffer, with a
 * caller-supplied header array: no allocation, no copy. Bodies are not
 * parsed. Input that arrives in pieces is parsed again from the start when
 * more arrives: call with the whole buffer so far each time; `max_size`
 * stops a peer that never ends its headers (slowloris) from growing it.
 */
#ifndef DUPLEX_HTTP_H
#define DUPLEX_HTTP_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dx_http_header {
    const char *name; /* not NUL-terminated */
    size_t name_len;
    const char *value; /* leading and trailing spaces/tabs removed */
    size_t value_len;
} dx_http_header;

typedef struct dx_http_request {
    const char *method;
    size_t method_len;
    const char *target; /* request target as sent: "/chat?uid=7" */
    size_t target_len;
    int minor_version;       /* 1 for HTTP/1.1, 0 for HTTP/1.0 */
    dx_http_header *headers; /* the caller's array */
    size_t num_headers;      /* in: capacity of `headers`; out: count parsed */
} dx_http_request;

typedef struct dx_http_response {
    int minor_version;
    int status;
    const char *reason;
    size_t reason_len;
    dx_http_header *headers;
    size_t num_headers; /* in: capacity; out: count */
} dx_http_response;

/* Parses a request head from `buf` (`len` bytes received so far).
 * Returns the length of the head (> 0, the body or the next request starts
 * there) when it is complete; 0 when more input is needed; DX_EHTTP when the
 * input is not HTTP/1.x, or when the length of its body is ambiguous (RFC
 * 9112 §6.3: a Content-Length that is not digits, several that differ, or
 * one with Transfer-Encoding) (answer 400); DX_EHDRSIZE when there are more
 * headers than req->num_headers, or when the head is not complete within
 * `max_size` bytes (answer 431). The slices point into `buf`. */
DX_API int dx_http_parse_request(const char *buf, size_t len, size_t max_size,
                                 dx_http_request *req);

/* Same for a response head (client side of the handshake). */
DX_API int dx_http_parse_response(const char *buf, size_t len, size_t max_size,
                                  dx_http_response *res);

/* Finds a header by name, case-insensitively. Returns the first match or
 * NULL. */
DX_API const dx_http_header *dx_http_find(const dx_http_header *h, size_t n, const char *name);

/* Iterates over the comma-separated elements of a header value (as in
 * "Connection: keep-alive, Upgrade"), skipping empty elements and the
 * spaces around each. Start with *pos = 0; each call sets *tok and *tok_len to
 * the next element and returns 1, or returns 0 at the end. Quoted strings
 * are kept whole, so a comma inside quotes does not split. */
DX_API int dx_http_next_token(const char *value, size_t len, size_t *pos, const char **tok,
                              size_t *tok_len);

/* 1 when the comma-separated list `value` contains `token`
 * (case-insensitively), else 0. */
DX_API int dx_http_has_token(const char *value, size_t len, const char *token);

/* Case-insensitive comparison of a slice with a NUL-terminated string:
 * 1 when equal. */
DX_API int dx_http_ieq(const char *s, size_t len, const char *lit);

/* Writes a complete HTTP/1.1 error response ("HTTP/1.1 431 Request Header
 * Fields Too Large", Content-Type text/plain, Connection: close and the
 * reason as the body) into `out` (capacity `cap`). `extra_headers`, if not
 * NULL, is inserted verbatim and must end in CRLF. Control characters in
 * `reason` are replaced so peer-supplied text can never inject headers; the
 * body ends with one newline, whether or not `reason` ends with one.
 * Returns the length written, or DX_ENOSPC. */
DX_API int dx_http_write_error(char *out, size_t cap, int status, const char *reason,
                               const char *extra_headers);

/* The standard reason phrase of a status code ("Not Found"); "Unknown" for
 * codes it does not know. */
DX_API const char *dx_http_status_text(int status);

#ifdef __cplusplus
}
#endif
#endif

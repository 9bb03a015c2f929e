/* WebSocket URLs (RFC 6455 §3, with the WHATWG URL rules that
 * browsers apply to `new WebSocket(url)` where the RFC is silent).
 *
 * Accepted:
 *   scheme    "ws" or "wss", case-insensitive; "http" and "https" are taken
 *             as aliases of "ws" and "wss" (as browsers now do) and the URL
 *             is rewritten with the WebSocket scheme.
 *   host      a DNS name or IPv4 address (letters, digits, '-', '.', '_';
 *             lower-cased), or an IPv6 literal in brackets ("[::1]",
 *             checked with inet_pton; zone ids are refused). At most 255
 *             bytes.
 *   port      1-65535 after ':'; absent or empty means 80 for ws, 443 for
 *             wss.
 *   target    the path (default "/") and the query, kept as the request
 *             target. Spaces, '"', '<', '>', '`' and bytes >= 0x80 are
 *             percent-encoded as a browser would; other characters are
 *             kept as written (existing %XX escapes are not decoded).
 * Refused: other schemes, userinfo ("user:pass@host"), a fragment ('#'
 * anywhere: RFC 6455 §3 says it must be escaped as %23), control
 * characters, empty hosts, bad ports, and URLs longer than DX_URL_MAX.
 *
 * Everything the parse produces lives in one allocation made by
 * dx_url_parse and released by dx_url_free. */
#ifndef DUPLEX_URL_H
#define DUPLEX_URL_H

#include <duplex/common.h>

#define DX_URL_MAX 8192     /* bytes of URL accepted */
#define DX_URL_HOST_MAX 255 /* bytes of host name */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dx_url {
    int secure;        /* 1 for wss (and https) */
    int port;          /* 1-65535, the default filled in */
    int default_port;  /* 1 when port is the scheme's default */
    int ipv6;          /* host is an IPv6 literal */
    char *host;        /* for DNS and TLS: "example.com", "10.0.0.1", "::1" */
    char *host_header; /* Host header value: "example.com", "[::1]:8080" */
    char *target;      /* request target: "/", "/chat?uid=7" */
    char *href;        /* the URL as normalized: "ws://[::1]:8080/chat?uid=7" */
    char *mem;         /* the one allocation behind the strings above */
} dx_url;

/* Parses `len` bytes of `s` (which need not be NUL-terminated). Returns 0
 * and fills `u` (release it with dx_url_free), DX_EINVAL when `s` or `u`
 * is NULL, DX_EADDR for a URL that is not a valid WebSocket URL (then *why,
 * if `why` is not NULL, names the problem: "fragment not allowed"), or
 * DX_ENOMEM. On failure `u` holds nothing to free (dx_url_free is still
 * safe on it). */
DX_API int dx_url_parse(const char *s, size_t len, dx_url *u, const char **why);

/* Releases what dx_url_parse allocated and zeroes `u`. Safe on a zeroed
 * or already freed `u`. */
DX_API void dx_url_free(dx_url *u);

#ifdef __cplusplus
}
#endif

#endif

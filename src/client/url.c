/* WebSocket URL parsing: see url.h for what is accepted and why. */
#include <duplex/url.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"

static int fail(const char **why, const char *msg) {
    if (why) *why = msg;
    return DX_EADDR;
}

static char lower(char c) {
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static int scheme_is(const char *s, size_t n, const char *lit) {
    size_t k = strlen(lit);
    if (n != k) return 0;
    for (size_t i = 0; i < n; i++)
        if (lower(s[i]) != lit[i]) return 0;
    return 1;
}

static int host_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

/* Characters of the target that a browser percent-encodes in a path or a
 * query. Everything else printable is sent as written. */
static int needs_escape(unsigned char c) {
    return c == ' ' || c == '"' || c == '<' || c == '>' || c == '`' || c >= 0x80;
}

/* Checks an IPv6 literal (without brackets) by the C library's own rules;
 * the alphabet check first keeps zone ids ("fe80::1%eth0") and any odd
 * byte out before inet_pton sees them. */
static int ipv6_ok(const char *s, size_t n) {
    char buf[INET6_ADDRSTRLEN + 1];
    if (n == 0 || n >= sizeof buf) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
              c == ':' || c == '.'))
            return 0;
    }
    memcpy(buf, s, n);
    buf[n] = 0;
    unsigned char addr[16];
    return inet_pton(AF_INET6, buf, addr) == 1;
}

int dx_url_parse(const char *s, size_t len, dx_url *u, const char **why) {
    if (u) memset(u, 0, sizeof *u);
    if (!s || !u) return DX_EINVAL;
    /* Spaces around a pasted URL are dropped, as browsers do. */
    while (len && (s[0] == ' ' || s[0] == '\t')) {
        s++;
        len--;
    }
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len == 0) return fail(why, "empty URL");
    if (len > DX_URL_MAX) return fail(why, "URL too long");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) return fail(why, "control character in URL");
        if (c == '#')
            return fail(why, "fragment not allowed in a WebSocket URL (escape '#' as %23)");
    }

    /* scheme "://" */
    size_t i = 0;
    while (i < len && s[i] != ':' && s[i] != '/')
        i++;
    if (i == len || s[i] != ':') return fail(why, "missing scheme (use ws:// or wss://)");
    int secure;
    if (scheme_is(s, i, "ws") || scheme_is(s, i, "http"))
        secure = 0;
    else if (scheme_is(s, i, "wss") || scheme_is(s, i, "https"))
        secure = 1;
    else
        return fail(why, "unsupported scheme (use ws:// or wss://)");
    if (len - i < 3 || s[i + 1] != '/' || s[i + 2] != '/')
        return fail(why, "missing '//' after the scheme");
    size_t a = i + 3, ae = a;
    while (ae < len && s[ae] != '/' && s[ae] != '?')
        ae++;
    if (memchr(s + a, '@', ae - a)) return fail(why, "user name or password not allowed in URL");

    /* host [":" port] */
    const char *host;
    size_t host_len, p = a;
    int ipv6 = 0;
    if (p < ae && s[p] == '[') {
        const char *close = memchr(s + p, ']', ae - p);
        if (!close) return fail(why, "unterminated IPv6 address");
        host = s + p + 1;
        host_len = (size_t)(close - host);
        if (!ipv6_ok(host, host_len)) return fail(why, "bad IPv6 address");
        ipv6 = 1;
        p = (size_t)(close - s) + 1;
        if (p < ae && s[p] != ':') return fail(why, "unexpected character after IPv6 address");
    } else {
        host = s + p;
        while (p < ae && s[p] != ':') {
            if (!host_char((unsigned char)s[p])) return fail(why, "bad character in host name");
            p++;
        }
        host_len = (size_t)(s + p - host);
    }
    if (host_len == 0) return fail(why, "empty host");
    if (host_len > DX_URL_HOST_MAX) return fail(why, "host name too long");
    int default_port = secure ? 443 : 80, port = default_port;
    if (p < ae) { /* s[p] == ':' */
        p++;
        if (p < ae) {
            long v = 0;
            for (; p < ae; p++) {
                if (s[p] < '0' || s[p] > '9') return fail(why, "bad port");
                v = v * 10 + (s[p] - '0');
                if (v > 65535) return fail(why, "port out of range (1-65535)");
            }
            if (v == 0) return fail(why, "port out of range (1-65535)");
            port = (int)v;
        }
    }

    /* The rest is the target. Sizes are bounded by the URL's length: each
     * byte of the target grows to at most 3 when escaped. */
    const char *rest = s + ae;
    size_t rest_len = len - ae;
    size_t host_cap = host_len + 1;
    size_t hh_cap = host_len + 2 + 6 + 1; /* brackets, ":65535", NUL */
    size_t tgt_cap = 1 + 3 * rest_len + 1;
    size_t href_cap = 6 + hh_cap + tgt_cap;
    char *mem = dx__malloc(host_cap + hh_cap + tgt_cap + href_cap);
    if (!mem) return DX_ENOMEM;
    u->mem = mem;
    u->host = mem;
    u->host_header = u->host + host_cap;
    u->target = u->host_header + hh_cap;
    u->href = u->target + tgt_cap;

    for (size_t k = 0; k < host_len; k++)
        u->host[k] = lower(host[k]);
    u->host[host_len] = 0;

    int is_default = port == default_port;
    if (is_default)
        snprintf(u->host_header, hh_cap, ipv6 ? "[%s]" : "%s", u->host);
    else
        snprintf(u->host_header, hh_cap, ipv6 ? "[%s]:%d" : "%s:%d", u->host, port);

    static const char hex[] = "0123456789ABCDEF";
    char *t = u->target;
    if (rest_len == 0 || rest[0] != '/') *t++ = '/';
    for (size_t k = 0; k < rest_len; k++) {
        unsigned char c = (unsigned char)rest[k];
        if (needs_escape(c)) {
            *t++ = '%';
            *t++ = hex[c >> 4];
            *t++ = hex[c & 15];
        } else {
            *t++ = (char)c;
        }
    }
    *t = 0;

    snprintf(u->href, href_cap, "%s://%s%s", secure ? "wss" : "ws", u->host_header, u->target);
    u->secure = secure;
    u->port = port;
    u->default_port = is_default;
    u->ipv6 = ipv6;
    return 0;
}

void dx_url_free(dx_url *u) {
    if (!u) return;
    dx__free(u->mem);
    memset(u, 0, sizeof *u);
}

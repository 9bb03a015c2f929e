/* The client's config: copies and checks (see config.h). */
#include "client/config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <duplex/http.h>

#include "core/alloc.h"

#define MAX_PROTOCOLS 64 /* subprotocols offered */
#define MAX_HEADERS 64   /* extra header lines */

/* Headers the handshake writes itself; giving them again would make a
 * request the server must refuse, or silently change the handshake. */
static const char *const reserved[] = {
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    NULL,
};

static int tchar(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int is_token(const char *s, size_t n) {
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (!tchar((unsigned char)s[i])) return 0;
    return 1;
}

/* Header values may hold any visible byte, spaces and tabs; no CR, LF or
 * other control character. */
static int value_ok(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) return 0;
    }
    return 1;
}

void dx__client_own_error(dx__client_own *o, int err, const char *fmt, ...) {
    if (o->err) return;
    o->err = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->why, sizeof o->why, fmt, ap);
    va_end(ap);
}

static char *copy_str(const char *s) {
    return s ? dx__strndup(s, strlen(s)) : NULL;
}

static int copy_headers(dx__client_own *o, const dx_client_config *cfg) {
    if (!cfg->headers || !cfg->headers[0]) return 0;
    size_t total = 1, n = 0;
    for (; cfg->headers[n]; n++) {
        if (n == MAX_HEADERS) {
            dx__client_own_error(o, DX_EINVAL, "more than %d extra headers", MAX_HEADERS);
            return 0;
        }
        total += strlen(cfg->headers[n]) + 2;
    }
    char *out = dx__malloc(total), *p = out;
    if (!out) return DX_ENOMEM;
    o->headers = out;
    for (size_t i = 0; i < n; i++) {
        const char *line = cfg->headers[i], *colon = strchr(line, ':');
        size_t name_len = colon ? (size_t)(colon - line) : strlen(line);
        if (!colon || !is_token(line, name_len)) {
            dx__client_own_error(o, DX_EINVAL, "bad header line '%.60s' (want 'Name: value')",
                                 line);
            return 0;
        }
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t vlen = strlen(v);
        while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        if (!value_ok(v, vlen)) {
            dx__client_own_error(o, DX_EINVAL, "control character in header '%.*s'", (int)name_len,
                                 line);
            return 0;
        }
        for (const char *const *r = reserved; *r; r++)
            if (dx_http_ieq(line, name_len, *r)) {
                dx__client_own_error(o, DX_EINVAL, "header '%.*s' is set by the handshake itself",
                                     (int)name_len, line);
                return 0;
            }
        if (cfg->origin && dx_http_ieq(line, name_len, "origin")) {
            dx__client_own_error(o, DX_EINVAL, "Origin given twice (header and origin)");
            return 0;
        }
        memcpy(p, line, name_len);
        p += name_len;
        memcpy(p, ": ", 2);
        p += 2;
        memcpy(p, v, vlen);
        p += vlen;
        memcpy(p, "\r\n", 2);
        p += 2;
    }
    *p = 0;
    return 0;
}

static int copy_protocols(dx__client_own *o, const dx_client_config *cfg) {
    if (!cfg->protocols || !cfg->protocols[0]) return 0;
    size_t total = 1, n = 0;
    for (; cfg->protocols[n]; n++) {
        const char *s = cfg->protocols[n];
        if (n == MAX_PROTOCOLS) {
            dx__client_own_error(o, DX_EINVAL, "more than %d subprotocols", MAX_PROTOCOLS);
            return 0;
        }
        if (!is_token(s, strlen(s))) {
            dx__client_own_error(o, DX_EINVAL, "bad subprotocol '%.60s' (must be a token)", s);
            return 0;
        }
        for (size_t k = 0; k < n; k++)
            if (!strcmp(cfg->protocols[k], s)) {
                dx__client_own_error(o, DX_EINVAL, "subprotocol '%.60s' offered twice", s);
                return 0;
            }
        total += strlen(s) + 2;
    }
    char *out = dx__malloc(total), *p = out;
    if (!out) return DX_ENOMEM;
    o->protocols = out;
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(cfg->protocols[i]);
        if (i) {
            memcpy(p, ", ", 2);
            p += 2;
        }
        memcpy(p, cfg->protocols[i], k);
        p += k;
    }
    *p = 0;
    return 0;
}

static int copy_resilience(dx__client_own *o, const dx_client_config *cfg) {
    size_t n = 0;
    if (cfg->urls) {
        while (cfg->urls[n])
            n++;
        if (n) {
            o->urls = dx__calloc(n, sizeof *o->urls);
            if (!o->urls) return DX_ENOMEM;
            o->nurls = n;
            for (size_t i = 0; i < n; i++)
                if (!(o->urls[i] = copy_str(cfg->urls[i]))) return DX_ENOMEM;
        }
    }
    n = 0;
    if (cfg->final_codes) {
        while (cfg->final_codes[n]) {
            if (n == DX_CLIENT_MAX_FINAL_CODES) {
                dx__client_own_error(o, DX_EINVAL, "more than %d final close codes",
                                     DX_CLIENT_MAX_FINAL_CODES);
                return 0;
            }
            if (cfg->final_codes[n] < 1000 || cfg->final_codes[n] > 4999) {
                dx__client_own_error(o, DX_EINVAL, "bad final close code %u (1000-4999)",
                                     (unsigned)cfg->final_codes[n]);
                return 0;
            }
            n++;
        }
        if (n) {
            o->final_codes = dx__malloc(n * sizeof *o->final_codes);
            if (!o->final_codes) return DX_ENOMEM;
            memcpy(o->final_codes, cfg->final_codes, n * sizeof *o->final_codes);
            o->nfinal = n;
        }
    }
    return 0;
}

int dx__client_own_init(dx__client_own *o, const dx_client_config *cfg) {
    memset(o, 0, sizeof *o);
    o->url = copy_str(cfg->url);
    if (!o->url) return DX_ENOMEM;
    if (cfg->origin) {
        o->origin = copy_str(cfg->origin);
        if (!o->origin) return DX_ENOMEM;
        if (!value_ok(o->origin, strlen(o->origin)))
            dx__client_own_error(o, DX_EINVAL, "control character in origin");
    }
    if (cfg->ca_file) {
        o->ca_file = copy_str(cfg->ca_file);
        if (!o->ca_file) return DX_ENOMEM;
    }
    if (copy_headers(o, cfg) < 0 || copy_protocols(o, cfg) < 0) return DX_ENOMEM;
    if (copy_resilience(o, cfg) < 0) return DX_ENOMEM;
    return 0;
}

void dx__client_own_free(dx__client_own *o) {
    dx__free(o->url);
    dx__free(o->origin);
    dx__free(o->ca_file);
    dx__free(o->headers);
    dx__free(o->protocols);
    for (size_t i = 0; i < o->nurls; i++)
        dx__free(o->urls[i]);
    dx__free(o->urls);
    dx__free(o->final_codes);
    memset(o, 0, sizeof *o);
}

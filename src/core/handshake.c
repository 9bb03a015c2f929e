/* The opening handshake (RFC 6455 §4) for both roles, on top of the HTTP
 * head parser. Nothing here allocates: the request and response are read in
 * place, answers are written into the caller's buffer, and the accept value
 * is hashed with our own SHA-1 (core/sha1.h says why not libcrypto's). */
#include <limits.h>
#include <string.h>

#include <duplex/handshake.h>

#include "core/sha1.h"
#include "core/wbuf.h"

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* ---- small helpers ---------------------------------------------------- */

static int is_ows(char c) { return c == ' ' || c == '\t'; }

static int is_tchar(unsigned char c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static size_t skip_ows(const char *v, size_t len, size_t i) {
    while (i < len && is_ows(v[i])) i++;
    return i;
}

static size_t token_end(const char *v, size_t len, size_t i) {
    while (i < len && is_tchar((unsigned char)v[i])) i++;
    return i;
}

/* How many header lines carry `name`; *first gets the first of them. */
static size_t count_headers(const dx_http_header *h, size_t n, const char *name,
                            const dx_http_header **first) {
    size_t count = 0;
    *first = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!dx_http_ieq(h[i].name, h[i].name_len, name)) continue;
        if (!count) *first = &h[i];
        count++;
    }
    return count;
}

/* A header may legally be split over several lines (RFC 9110 §5.3), so a
 * token is looked for in every line of that name. */
static int any_has_token(const dx_http_header *h, size_t n, const char *name, const char *tok) {
    for (size_t i = 0; i < n; i++) {
        if (dx_http_ieq(h[i].name, h[i].name_len, name) &&
            dx_http_has_token(h[i].value, h[i].value_len, tok))
            return 1;
    }
    return 0;
}

static int is_b64(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

/* Base64 of exactly 16 bytes: 22 alphabet characters and "==". The unused
 * low bits of the last character are not checked, as no client gets them
 * wrong and Node's ws does not check them either. */
static int key_valid(const char *k, size_t len) {
    if (len != DX_KEY_LEN) return 0;
    for (size_t i = 0; i < 22; i++) {
        if (!is_b64((unsigned char)k[i])) return 0;
    }
    return k[22] == '=' && k[23] == '=';
}

static int has_crlf(const char *s) { return s && strpbrk(s, "\r\n") != NULL; }

/* ---- server: checking the request ------------------------------------- */

static int refuse(dx_handshake_error *err, int status, const char *reason, const char *headers) {
    err->status = status;
    err->reason = reason;
    err->headers = headers;
    return DX_EHANDSHAKE;
}

int dx_handshake_check(const dx_http_request *req, dx_handshake_info *info,
                       dx_handshake_error *err) {
    dx_handshake_error scratch;
    if (!err) err = &scratch;
    if (!req || (!req->headers && req->num_headers)) {
        refuse(err, 500, "no request given", NULL);
        return DX_EINVAL;
    }
    const dx_http_header *h = req->headers, *hd;
    size_t n = req->num_headers;

    /* No Upgrade header at all: an ordinary request (a page, a health
     * check, HEAD or POST) that the server answers as plain HTTP. This comes
     * before the method check so that a POST is not refused as a bad
     * upgrade. */
    if (!count_headers(h, n, "Upgrade", &hd))
        return refuse(err, 0, "not a WebSocket upgrade request", NULL);
    if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0)
        return refuse(err, 405, "WebSocket upgrade requires GET", "Allow: GET\r\n");
    if (req->minor_version < 1)
        return refuse(err, 400, "WebSocket upgrade requires HTTP/1.1", NULL);

    const dx_http_header *host;
    size_t hosts = count_headers(h, n, "Host", &host);
    if (hosts == 0) return refuse(err, 400, "missing Host", NULL);
    /* RFC 9112 §3.2: more than one Host line MUST be answered with 400. */
    if (hosts > 1) return refuse(err, 400, "duplicate Host", NULL);
    if (host->value_len == 0) return refuse(err, 400, "empty Host", NULL);
    if (req->target_len == 0 || req->target[0] != '/')
        return refuse(err, 400, "request target must be an absolute path", NULL);

    if (!any_has_token(h, n, "Upgrade", "websocket"))
        return refuse(err, 400, "Upgrade header does not name websocket", NULL);
    if (!any_has_token(h, n, "Connection", "upgrade"))
        return refuse(err, 400, "Connection header does not contain Upgrade", NULL);

    /* A missing version is a malformed handshake (RFC 6455 §4.2.1: 400); a
     * version we do not speak is answered with 426 and the one we do
     * (§4.2.2). Both carry the version header, which helps either client. */
    const dx_http_header *ver;
    size_t vers = count_headers(h, n, "Sec-WebSocket-Version", &ver);
    if (vers == 0)
        return refuse(err, 400, "missing Sec-WebSocket-Version", "Sec-WebSocket-Version: 13\r\n");
    if (vers > 1) return refuse(err, 400, "duplicate Sec-WebSocket-Version", NULL);
    if (ver->value_len != 2 || memcmp(ver->value, "13", 2) != 0)
        return refuse(err, 426, "unsupported Sec-WebSocket-Version",
                      "Sec-WebSocket-Version: 13\r\n");

    const dx_http_header *key;
    size_t keys = count_headers(h, n, "Sec-WebSocket-Key", &key);
    if (keys == 0) return refuse(err, 400, "missing Sec-WebSocket-Key", NULL);
    if (keys > 1) return refuse(err, 400, "duplicate Sec-WebSocket-Key", NULL);
    if (!key_valid(key->value, key->value_len))
        return refuse(err, 400, "invalid Sec-WebSocket-Key", NULL);

    err->status = 0;
    err->reason = NULL;
    err->headers = NULL;
    if (!info) return 0;
    memset(info, 0, sizeof *info);
    const char *q = memchr(req->target, '?', req->target_len);
    info->path = req->target;
    info->path_len = q ? (size_t)(q - req->target) : req->target_len;
    if (q) {
        info->query = q + 1;
        info->query_len = req->target_len - info->path_len - 1;
    }
    info->key = key->value;
    info->host = host->value;
    info->host_len = host->value_len;
    if ((hd = dx_http_find(h, n, "Origin"))) {
        info->origin = hd->value;
        info->origin_len = hd->value_len;
    }
    if ((hd = dx_http_find(h, n, "Sec-WebSocket-Protocol"))) {
        info->protocols = hd->value;
        info->protocols_len = hd->value_len;
    }
    if ((hd = dx_http_find(h, n, "Sec-WebSocket-Extensions"))) {
        info->extensions = hd->value;
        info->extensions_len = hd->value_len;
    }
    return 0;
}

/* ---- the accept value ------------------------------------------------- */

static void compute_accept(const char *key, size_t key_len, char out[DX_ACCEPT_LEN + 1]) {
    dx__sha1 s;
    uint8_t md[20];
    dx__sha1_init(&s);
    dx__sha1_update(&s, key, key_len);
    dx__sha1_update(&s, ws_guid, sizeof ws_guid - 1);
    dx__sha1_final(&s, md);
    dx__base64(out, md, sizeof md);
}

void dx_handshake_accept(const char *key, size_t key_len, char out[DX_ACCEPT_LEN + 1]) {
    if (!out) return;
    if (!key && key_len) {
        out[0] = '\0';
        return;
    }
    compute_accept(key ? key : "", key_len, out);
}

/* ---- writing heads ---------------------------------------------------- */

static void put_header(wbuf *b, const char *name, const char *value) {
    if (!value) return;
    put_str(b, name);
    put_str(b, ": ");
    put_str(b, value);
    put_str(b, "\r\n");
}

int dx_handshake_write_101(char *out, size_t cap, const char *key, const char *protocol,
                           const char *extensions, const char *extra_headers) {
    if ((!out && cap) || !key) return DX_EINVAL;
    if (has_crlf(protocol) || has_crlf(extensions)) return DX_EINVAL;
    char accept[DX_ACCEPT_LEN + 1];
    compute_accept(key, DX_KEY_LEN, accept);
    wbuf b = {out, cap, 0, 0};
    put_str(&b, "HTTP/1.1 101 Switching Protocols\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n");
    put_header(&b, "Sec-WebSocket-Accept", accept);
    put_header(&b, "Sec-WebSocket-Protocol", protocol);
    put_header(&b, "Sec-WebSocket-Extensions", extensions);
    if (extra_headers) put_str(&b, extra_headers);
    put_str(&b, "\r\n");
    return wbuf_finish(&b);
}

/* Subprotocol names are compared exactly: browsers check the server's
 * choice against what they offered byte for byte, so answering "CHAT" to
 * an offer of "chat" would fail the connection. */
int dx_handshake_select_protocol(const char *offered, size_t offered_len,
                                 const char *const *supported) {
    if (!offered || !supported) return -1;
    for (int i = 0; supported[i] && i < INT_MAX; i++) {
        size_t pos = 0, tl, sl = strlen(supported[i]);
        const char *t;
        while (dx_http_next_token(offered, offered_len, &pos, &t, &tl)) {
            if (tl == sl && memcmp(t, supported[i], sl) == 0) return i;
        }
    }
    return -1;
}

/* ---- client ----------------------------------------------------------- */

int dx_handshake_client_key(char out[DX_KEY_LEN + 1]) {
    unsigned char raw[16];
    if (!out) return DX_EINVAL;
    int rc = dx_random(raw, sizeof raw);
    if (rc) return rc;
    dx__base64(out, raw, sizeof raw);
    memset(raw, 0, sizeof raw);
    return 0;
}

static int target_valid(const char *t) {
    for (; *t; t++) {
        unsigned char c = (unsigned char)*t;
        if (c <= 0x20 || c == 0x7f) return 0;
    }
    return 1;
}

int dx_handshake_write_request(char *out, size_t cap, const char *host, const char *target,
                               const char *key, const char *protocols, const char *extensions,
                               const char *origin, const char *extra_headers) {
    if ((!out && cap) || !host || !*host || !key) return DX_EINVAL;
    if (!target || !*target) target = "/";
    /* Every value lands in a header line: a CR or LF in any of them would
     * end that line early and let the value write headers of its own. */
    if (has_crlf(host) || has_crlf(key) || has_crlf(protocols) || has_crlf(extensions) ||
        has_crlf(origin) || !target_valid(target))
        return DX_EINVAL;
    wbuf b = {out, cap, 0, 0};
    put_str(&b, "GET ");
    put_str(&b, target);
    put_str(&b, " HTTP/1.1\r\n");
    put_header(&b, "Host", host);
    put_str(&b, "Upgrade: websocket\r\nConnection: Upgrade\r\n");
    put_header(&b, "Sec-WebSocket-Key", key);
    put_str(&b, "Sec-WebSocket-Version: 13\r\n");
    put_header(&b, "Sec-WebSocket-Protocol", protocols);
    put_header(&b, "Sec-WebSocket-Extensions", extensions);
    put_header(&b, "Origin", origin);
    if (extra_headers) put_str(&b, extra_headers);
    put_str(&b, "\r\n");
    return wbuf_finish(&b);
}

static int reject(const char **why, const char *reason) {
    if (why) *why = reason;
    return DX_EHANDSHAKE;
}

int dx_handshake_verify(const dx_http_response *res, const char *key,
                        const char *offered_protocols, int extensions_allowed,
                        const char **protocol, size_t *protocol_len, const char **extensions,
                        size_t *extensions_len, const char **why) {
    if (protocol) *protocol = NULL;
    if (protocol_len) *protocol_len = 0;
    if (extensions) *extensions = NULL;
    if (extensions_len) *extensions_len = 0;
    if (why) *why = NULL;
    if (!res || !key || (!res->headers && res->num_headers)) {
        if (why) *why = "invalid argument";
        return DX_EINVAL;
    }
    const dx_http_header *h = res->headers, *hd;
    size_t n = res->num_headers;

    if (res->status != 101) return reject(why, "server did not answer 101 Switching Protocols");
    if (!any_has_token(h, n, "Upgrade", "websocket"))
        return reject(why, "missing or wrong Upgrade header in the answer");
    if (!any_has_token(h, n, "Connection", "upgrade"))
        return reject(why, "missing or wrong Connection header in the answer");

    size_t count = count_headers(h, n, "Sec-WebSocket-Accept", &hd);
    if (count == 0) return reject(why, "missing Sec-WebSocket-Accept");
    if (count > 1) return reject(why, "duplicate Sec-WebSocket-Accept");
    char expect[DX_ACCEPT_LEN + 1];
    compute_accept(key, strlen(key), expect);
    if (hd->value_len != DX_ACCEPT_LEN || memcmp(hd->value, expect, DX_ACCEPT_LEN) != 0)
        return reject(why, "wrong Sec-WebSocket-Accept");

    /* RFC 6455 §11.3: in a response, the protocol and the extensions each
     * appear at most once. */
    const dx_http_header *proto;
    count = count_headers(h, n, "Sec-WebSocket-Protocol", &proto);
    if (count > 1) return reject(why, "duplicate Sec-WebSocket-Protocol in the answer");
    if (proto) {
        if (!offered_protocols)
            return reject(why, "server chose a subprotocol although none was offered");
        size_t pos = 0, tl;
        const char *t;
        int found = 0;
        while (proto->value_len &&
               dx_http_next_token(offered_protocols, strlen(offered_protocols), &pos, &t, &tl)) {
            if (tl == proto->value_len && memcmp(t, proto->value, tl) == 0) {
                found = 1;
                break;
            }
        }
        if (!found) return reject(why, "server chose a subprotocol that was not offered");
    }

    const dx_http_header *ext;
    count = count_headers(h, n, "Sec-WebSocket-Extensions", &ext);
    if (count > 1) return reject(why, "duplicate Sec-WebSocket-Extensions in the answer");
    if (ext && !extensions_allowed)
        return reject(why, "server accepted an extension that was not offered");

    if (proto) {
        if (protocol) *protocol = proto->value;
        if (protocol_len) *protocol_len = proto->value_len;
    }
    if (ext) {
        if (extensions) *extensions = ext->value;
        if (extensions_len) *extensions_len = ext->value_len;
    }
    return 0;
}

/* ---- Sec-WebSocket-Extensions ----------------------------------------- */

/* Index just past the next comma that is not inside a quoted string, or
 * `len`: where the element after a malformed one begins. */
static size_t skip_element(const char *v, size_t len, size_t i) {
    int quoted = 0;
    for (; i < len; i++) {
        if (quoted) {
            if (v[i] == '\\' && i + 1 < len) i++;
            else if (v[i] == '"') quoted = 0;
        } else if (v[i] == '"') {
            quoted = 1;
        } else if (v[i] == ',') {
            return i + 1;
        }
    }
    return len;
}

/* extension-list = 1#( extension-token *( ";" extension-param ) )
 * extension-param = token [ "=" ( token | quoted-string ) ]
 * with optional whitespace around every separator (RFC 6455 §9.1, which
 * uses RFC 2616's implied *LWS). A quoted value must be a token once
 * unquoted (§9.1), so it can hold no escapes and is returned in place. */
int dx_ext_next(const char *value, size_t len, size_t *pos, dx_ext *ext) {
    if (!pos || !ext) return DX_EINVAL;
    if (!value || *pos >= len) {
        *pos = len;
        return 0;
    }
    size_t i = *pos;
    while (i < len && (is_ows(value[i]) || value[i] == ',')) i++;
    if (i == len) {
        *pos = len;
        return 0;
    }
    size_t start = i, j;
    memset(ext, 0, sizeof *ext);
    j = token_end(value, len, i);
    if (j == i) goto bad;
    ext->name = value + i;
    ext->name_len = j - i;
    i = skip_ows(value, len, j);
    for (;;) {
        if (i == len) break;
        if (value[i] == ',') {
            i++;
            break;
        }
        if (value[i] != ';') goto bad;
        i = skip_ows(value, len, i + 1);
        j = token_end(value, len, i);
        if (j == i || ext->num_params == DX_EXT_MAX_PARAMS) goto bad;
        dx_ext_param *p = &ext->params[ext->num_params++];
        p->name = value + i;
        p->name_len = j - i;
        i = skip_ows(value, len, j);
        if (i < len && value[i] == '=') {
            i = skip_ows(value, len, i + 1);
            if (i < len && value[i] == '"') {
                j = token_end(value, len, i + 1);
                if (j == i + 1 || j == len || value[j] != '"') goto bad;
                p->value = value + i + 1;
                p->value_len = j - i - 1;
                i = j + 1;
            } else {
                j = token_end(value, len, i);
                if (j == i) goto bad;
                p->value = value + i;
                p->value_len = j - i;
                i = j;
            }
            i = skip_ows(value, len, i);
        }
    }
    *pos = i;
    return 1;
bad:
    memset(ext, 0, sizeof *ext);
    *pos = skip_element(value, len, start);
    return DX_EHTTP;
}

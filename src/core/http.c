/* The HTTP/1.x head parser behind the opening handshake, in the manner of
 * picohttpparser: slices of the caller's buffer, the caller's header array,
 * no allocation, and the whole buffer parsed again when more arrives.
 *
 * Every read is bounded by an explicit end pointer, never by a terminator,
 * so a buffer that stops anywhere (even in the middle of a CRLF) is read up
 * to its last byte and no further. The parser only ever looks at the first
 * `max_size` bytes: a head that has not ended by then is refused whatever
 * follows, which bounds both the work per call and what a slow or hostile
 * peer can make a server keep. */
#include <limits.h>
#include <string.h>

#include <duplex/http.h>

#include "core/wbuf.h"

/* RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" /
 * "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA. */
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1, ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,  ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1,  ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,  ['d'] = 1, ['e'] = 1,
    ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,  ['l'] = 1, ['m'] = 1,
    ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,  ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

/* Internal results: negative codes are final errors, MORE means the input
 * ended before the element did, DONE that the element was consumed. */
enum { MORE = 0, DONE = 1 };

typedef struct cursor {
    const unsigned char *p;
    const unsigned char *end;
} cursor;

static int is_ows(unsigned char c) {
    return c == ' ' || c == '\t';
}

/* A line ends with CRLF, or with a bare LF as many real clients and
 * picohttpparser accept. A CR followed by anything else is not HTTP. */
static int eat_eol(cursor *c) {
    if (c->p == c->end) return MORE;
    if (*c->p == '\n') {
        c->p++;
        return DONE;
    }
    if (*c->p != '\r') return DX_EHTTP;
    if (c->end - c->p < 2) return MORE;
    if (c->p[1] != '\n') return DX_EHTTP;
    c->p += 2;
    return DONE;
}

/* A non-empty token ended by `stop`, which is consumed. Any other byte is
 * an error at once, so a peer speaking something else (TLS, HTTP/2's
 * preface, binary noise) is refused at its first impossible byte. */
static int eat_token(cursor *c, unsigned char stop, const char **tok, size_t *len) {
    const unsigned char *start = c->p;
    while (c->p < c->end && tchar[*c->p])
        c->p++;
    if (c->p == c->end) return MORE;
    if (*c->p != stop || c->p == start) return DX_EHTTP;
    *tok = (const char *)start;
    *len = (size_t)(c->p - start);
    c->p++;
    return DONE;
}

/* "HTTP/1." DIGIT. The name is case-sensitive (RFC 9112 §2.3). */
static int eat_version(cursor *c, int *minor) {
    static const char lit[] = "HTTP/1.";
    for (size_t i = 0; i < sizeof lit - 1; i++) {
        if (c->p + i == c->end) return MORE;
        if (c->p[i] != (unsigned char)lit[i]) return DX_EHTTP;
    }
    if (c->end - c->p < (ptrdiff_t)sizeof lit) return MORE;
    unsigned char d = c->p[sizeof lit - 1];
    if (d < '0' || d > '9') return DX_EHTTP;
    *minor = d - '0';
    c->p += sizeof lit;
    return DONE;
}

/* Header lines up to and including the empty line. */
static int eat_headers(cursor *c, dx_http_header *h, size_t cap, size_t *count) {
    size_t n = 0;
    for (;;) {
        if (c->p == c->end) return MORE;
        if (*c->p == '\r' || *c->p == '\n') {
            int rc = eat_eol(c);
            if (rc != DONE) return rc;
            *count = n;
            return DONE;
        }
        /* Whitespace at the start of a line is obs-fold (RFC 9112 §5.2), or
         * whitespace between the start line and the first header (§2.2):
         * both are refused, as they are how requests get smuggled past
         * proxies that read them differently. */
        if (is_ows(*c->p)) return DX_EHTTP;
        /* Refuse as soon as one header too many begins rather than when the
         * head ends, so a flood of tiny headers costs nothing more. */
        if (n == cap) return DX_EHDRSIZE;
        dx_http_header *hd = &h[n];
        int rc = eat_token(c, ':', &hd->name, &hd->name_len);
        if (rc != DONE) return rc;
        while (c->p < c->end && is_ows(*c->p))
            c->p++;
        const unsigned char *start = c->p, *vend = c->p;
        while (c->p < c->end && *c->p != '\r' && *c->p != '\n') {
            unsigned char ch = *c->p;
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return DX_EHTTP;
            c->p++;
            if (!is_ows(ch)) vend = c->p;
        }
        rc = eat_eol(c);
        if (rc != DONE) return rc;
        hd->value = (const char *)start;
        hd->value_len = (size_t)(vend - start);
        n++;
    }
}

/* What the public parsers share: how much of the buffer to look at, and
 * what an incomplete parse means once that much has been seen. */
static size_t parse_limit(size_t max_size) {
    return max_size < (size_t)INT_MAX ? max_size : (size_t)INT_MAX;
}

static int finish(int rc, const cursor *c, const char *buf, size_t len, size_t limit) {
    if (rc < 0) return rc;
    if (rc == MORE) return len >= limit ? DX_EHDRSIZE : 0;
    return (int)((const char *)c->p - buf);
}

/* RFC 9112 §6.3: a request whose body length is ambiguous is refused
 * whole, since a proxy in front that read it the other way would see
 * another next request (smuggling). Every Content-Length must be digits and
 * all must agree; with Transfer-Encoding it is refused too, as §6.1 allows.
 * (The server reads no request body; this keeps it so if one day it does.) */
static int check_framing(const dx_http_header *h, size_t n) {
    int have_cl = 0, have_te = 0;
    uint64_t cl = 0;
    for (size_t i = 0; i < n; i++) {
        if (dx_http_ieq(h[i].name, h[i].name_len, "Transfer-Encoding")) have_te = 1;
        if (!dx_http_ieq(h[i].name, h[i].name_len, "Content-Length")) continue;
        if (!h[i].value_len) return DX_EHTTP;
        uint64_t v = 0;
        for (size_t k = 0; k < h[i].value_len; k++) {
            unsigned char d = (unsigned char)h[i].value[k];
            if (d < '0' || d > '9' || v > (UINT64_MAX - 9) / 10) return DX_EHTTP;
            v = v * 10 + (uint64_t)(d - '0');
        }
        if (have_cl && v != cl) return DX_EHTTP;
        have_cl = 1;
        cl = v;
    }
    return have_cl && have_te ? DX_EHTTP : DONE;
}

static int parse_request(cursor *c, dx_http_request *r) {
    /* RFC 9112 §2.2: a server SHOULD ignore empty lines before the request
     * line (some clients send a CRLF after a POST body). */
    while (c->p < c->end && (*c->p == '\r' || *c->p == '\n')) {
        int rc = eat_eol(c);
        if (rc != DONE) return rc;
    }
    int rc = eat_token(c, ' ', &r->method, &r->method_len);
    if (rc != DONE) return rc;
    const unsigned char *start = c->p;
    while (c->p < c->end && *c->p != ' ') {
        if (*c->p < 0x20 || *c->p == 0x7f) return DX_EHTTP;
        c->p++;
    }
    if (c->p == c->end) return MORE;
    if (c->p == start) return DX_EHTTP;
    r->target = (const char *)start;
    r->target_len = (size_t)(c->p - start);
    c->p++;
    rc = eat_version(c, &r->minor_version);
    if (rc != DONE) return rc;
    rc = eat_eol(c);
    if (rc != DONE) return rc;
    rc = eat_headers(c, r->headers, r->num_headers, &r->num_headers);
    return rc == DONE ? check_framing(r->headers, r->num_headers) : rc;
}

int dx_http_parse_request(const char *buf, size_t len, size_t max_size, dx_http_request *req) {
    if (!req || (!buf && len) || (!req->headers && req->num_headers)) return DX_EINVAL;
    size_t limit = parse_limit(max_size);
    if (len == 0) return limit == 0 ? DX_EHDRSIZE : 0;
    size_t avail = len < limit ? len : limit;
    cursor c = {(const unsigned char *)buf, (const unsigned char *)buf + avail};
    /* Parse into a copy so that an incomplete or refused head leaves the
     * caller's struct, and the header capacity in it, as it was. */
    dx_http_request r = *req;
    int rc = finish(parse_request(&c, &r), &c, buf, len, limit);
    if (rc > 0) *req = r;
    return rc;
}

static int parse_response(cursor *c, dx_http_response *r) {
    int rc = eat_version(c, &r->minor_version);
    if (rc != DONE) return rc;
    if (c->p == c->end) return MORE;
    if (*c->p != ' ') return DX_EHTTP;
    c->p++;
    int status = 0;
    for (int i = 0; i < 3; i++) {
        if (c->p == c->end) return MORE;
        if (*c->p < '0' || *c->p > '9') return DX_EHTTP;
        status = status * 10 + (*c->p - '0');
        c->p++;
    }
    if (status < 100) return DX_EHTTP;
    r->status = status;
    if (c->p == c->end) return MORE;
    /* The reason phrase may be empty, and some servers then drop the space
     * too ("HTTP/1.1 101\r\n"). */
    const unsigned char *start = c->p, *vend = c->p;
    if (*c->p == ' ') {
        c->p++;
        start = vend = c->p;
        while (c->p < c->end && *c->p != '\r' && *c->p != '\n') {
            unsigned char ch = *c->p;
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return DX_EHTTP;
            c->p++;
            if (!is_ows(ch)) vend = c->p;
        }
    }
    rc = eat_eol(c);
    if (rc != DONE) return rc;
    r->reason = (const char *)start;
    r->reason_len = (size_t)(vend - start);
    return eat_headers(c, r->headers, r->num_headers, &r->num_headers);
}

int dx_http_parse_response(const char *buf, size_t len, size_t max_size, dx_http_response *res) {
    if (!res || (!buf && len) || (!res->headers && res->num_headers)) return DX_EINVAL;
    size_t limit = parse_limit(max_size);
    if (len == 0) return limit == 0 ? DX_EHDRSIZE : 0;
    size_t avail = len < limit ? len : limit;
    cursor c = {(const unsigned char *)buf, (const unsigned char *)buf + avail};
    dx_http_response r = *res;
    int rc = finish(parse_response(&c, &r), &c, buf, len, limit);
    if (rc > 0) *res = r;
    return rc;
}

/* ASCII only: header names and tokens are ASCII, and the C library's
 * tolower() would depend on the locale. */
static unsigned char lower(unsigned char c) {
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

int dx_http_ieq(const char *s, size_t len, const char *lit) {
    if (!lit || (!s && len)) return 0;
    for (size_t i = 0; i < len; i++) {
        if (lit[i] == '\0' || lower((unsigned char)s[i]) != lower((unsigned char)lit[i])) return 0;
    }
    return lit[len] == '\0';
}

const dx_http_header *dx_http_find(const dx_http_header *h, size_t n, const char *name) {
    if (!h || !name) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (dx_http_ieq(h[i].name, h[i].name_len, name)) return &h[i];
    }
    return NULL;
}

int dx_http_next_token(const char *value, size_t len, size_t *pos, const char **tok,
                       size_t *tok_len) {
    if (!value || !pos || *pos >= len) {
        if (pos) *pos = len;
        return 0;
    }
    size_t i = *pos;
    while (i < len && (is_ows((unsigned char)value[i]) || value[i] == ','))
        i++;
    if (i == len) {
        *pos = len;
        return 0;
    }
    size_t start = i, end = i;
    int quoted = 0;
    while (i < len) {
        char ch = value[i++];
        if (quoted) {
            /* quoted-pair: the escaped byte can neither close the string
             * nor split the list. */
            if (ch == '\\' && i < len)
                i++;
            else if (ch == '"')
                quoted = 0;
            end = i;
        } else if (ch == ',') {
            break;
        } else {
            if (ch == '"') quoted = 1;
            if (!is_ows((unsigned char)ch)) end = i;
        }
    }
    *pos = i;
    if (tok) *tok = value + start;
    if (tok_len) *tok_len = end - start;
    return 1;
}

int dx_http_has_token(const char *value, size_t len, const char *token) {
    size_t pos = 0, tl;
    const char *t;
    while (dx_http_next_token(value, len, &pos, &t, &tl)) {
        if (dx_http_ieq(t, tl, token)) return 1;
    }
    return 0;
}

const char *dx_http_status_text(int status) {
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

static void put_uint(wbuf *b, size_t v) {
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(b, tmp + i, sizeof tmp - i);
}

int dx_http_write_error(char *out, size_t cap, int status, const char *reason,
                        const char *extra_headers) {
    if (!out && cap) return DX_EINVAL;
    /* A status that is not three digits would corrupt the status line; it
     * can only be a caller's bug, and a 500 is the honest answer to it. */
    if (status < 100 || status > 999) status = 500;
    const char *text = dx_http_status_text(status);
    if (!reason) reason = text;
    size_t rlen = strlen(reason);
    /* The body ends with a newline added below: one the caller put at the
     * end already is that one, not a control byte to replace. */
    if (rlen && reason[rlen - 1] == '\n') rlen--;
    wbuf b = {out, cap, 0, 0};
    put_str(&b, "HTTP/1.1 ");
    put_uint(&b, (size_t)status);
    put(&b, " ", 1);
    put_str(&b, text);
    put_str(&b, "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ");
    put_uint(&b, rlen + 1);
    put_str(&b, "\r\nConnection: close\r\n");
    if (extra_headers) put_str(&b, extra_headers);
    put_str(&b, "\r\n");
    /* The reason often quotes the peer (a header value, a path), so no
     * control byte of it may reach the output: a CR or LF would let the
     * peer write its own headers or a second response. */
    size_t body = b.len;
    put(&b, reason, rlen);
    if (!b.full) {
        for (size_t i = body; i < b.len; i++) {
            unsigned char ch = (unsigned char)out[i];
            if (ch < 0x20 || ch == 0x7f) out[i] = '?';
        }
    }
    put(&b, "\n", 1);
    return wbuf_finish(&b);
}

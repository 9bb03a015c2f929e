/* The server side of the opening handshake: the HTTP request head parser
 * (src/core/http.c) and the upgrade checks (src/core/handshake.c).
 *
 * cfg bits 0-1: max_size 64, 512, 8 KiB (the server's default) or 1 MiB;
 * bits 2-7: header capacity 0-63. The data is fed as a server gathers it,
 * growing a prefix piece by piece and parsing the whole prefix each time:
 * every prefix shorter than the head must answer "more" (0) or the same
 * error as the whole input, never a different verdict. A complete head
 * then goes through dx_handshake_check; an accepted upgrade gets a 101 that
 * the client side must parse and verify, a refused one an HTTP error whose
 * body must not carry a control byte of the request (no header injection),
 * even when the reason quotes the request target. */
#include <duplex/handshake.h>
#include <duplex/http.h>

#include "fuzz.h"

static const size_t max_sizes[4] = {64, 512, 8192, 1u << 20};

static void check_slice(const char *s, size_t n, const uint8_t *buf, size_t len) {
    FZ_CHECK(n == 0 || ((const uint8_t *)s >= buf && (const uint8_t *)s + n <= buf + len));
}

/* The body of an HTTP answer written by dx_http_write_error: no byte below
 * 0x20 but its final LF, no DEL. */
static void check_error_answer(const char *out, int n) {
    FZ_CHECK(n > 0);
    const char *body = memmem(out, (size_t)n, "\r\n\r\n", 4);
    FZ_CHECK(body != NULL);
    body += 4;
    const char *end = out + n - 1;
    FZ_CHECK(*end == '\n');
    for (const char *p = body; p < end; p++)
        FZ_CHECK((unsigned char)*p >= 0x20 && (unsigned char)*p != 0x7f);
    dx_http_header hh[16];
    dx_http_response res = {.headers = hh, .num_headers = 16};
    FZ_CHECK(dx_http_parse_response(out, (size_t)n, 4096, &res) == (int)(body - out));
}

static void after_head(const dx_http_request *req, const uint8_t *buf, size_t len) {
    FZ_CHECK(req->method_len > 0 && req->target_len > 0);
    check_slice(req->method, req->method_len, buf, len);
    check_slice(req->target, req->target_len, buf, len);
    for (size_t i = 0; i < req->num_headers; i++) {
        FZ_CHECK(req->headers[i].name_len > 0);
        check_slice(req->headers[i].name, req->headers[i].name_len, buf, len);
        check_slice(req->headers[i].value, req->headers[i].value_len, buf, len);
    }

    dx_handshake_info info;
    dx_handshake_error err;
    int rc = dx_handshake_check(req, &info, &err);
    char out[2048];
    if (rc == DX_EHANDSHAKE) {
        FZ_CHECK(err.reason != NULL);
        if (err.status == 0) return; /* plain HTTP */
        FZ_CHECK(err.status >= 400 && err.status <= 599);
        int n = dx_http_write_error(out, sizeof out, err.status, err.reason, err.headers);
        check_error_answer(out, n);
        /* A server that quotes the peer in its answer: the target, at most
         * what fits. */
        char reason[512];
        size_t rl = req->target_len < sizeof reason - 1 ? req->target_len : sizeof reason - 1;
        memcpy(reason, req->target, rl);
        reason[rl] = 0;
        n = dx_http_write_error(out, sizeof out, 400, reason, NULL);
        check_error_answer(out, n);
        return;
    }
    FZ_CHECK(rc == 0);
    check_slice(info.path, info.path_len, buf, len);
    check_slice(info.host, info.host_len, buf, len);
    check_slice(info.key, DX_KEY_LEN, buf, len);
    if (info.query) check_slice(info.query, info.query_len, buf, len);
    if (info.origin) check_slice(info.origin, info.origin_len, buf, len);
    FZ_CHECK(info.path_len >= 1 && info.path[0] == '/');

    static const char *const supported[] = {"chat", "superchat", "v2.duplex", NULL};
    int proto = -1;
    if (info.protocols) {
        check_slice(info.protocols, info.protocols_len, buf, len);
        proto = dx_handshake_select_protocol(info.protocols, info.protocols_len, supported);
        FZ_CHECK(proto >= -1 && proto <= 2);
    }
    if (info.extensions) {
        check_slice(info.extensions, info.extensions_len, buf, len);
        size_t pos = 0;
        dx_ext ext;
        int r;
        while ((r = dx_ext_next(info.extensions, info.extensions_len, &pos, &ext)) != 0)
            FZ_CHECK(r == 1 || r == DX_EHTTP);
    }

    /* The 101 must be what a client accepts. */
    char key[DX_KEY_LEN + 1];
    memcpy(key, info.key, DX_KEY_LEN);
    key[DX_KEY_LEN] = 0;
    const char *chosen = proto >= 0 ? supported[proto] : NULL;
    int n = dx_handshake_write_101(out, sizeof out, key, chosen, NULL, NULL);
    FZ_CHECK(n > 0);
    dx_http_header hh[16];
    dx_http_response res = {.headers = hh, .num_headers = 16};
    FZ_CHECK(dx_http_parse_response(out, (size_t)n, 4096, &res) == n);
    const char *why = NULL, *p = NULL;
    size_t pl = 0;
    FZ_CHECK(dx_handshake_verify(&res, key, chosen ? "superchat, chat, v2.duplex" : NULL, 0, &p,
                                 &pl, NULL, NULL, &why) == 0);
    FZ_CHECK(!chosen || (pl == strlen(chosen) && !memcmp(p, chosen, pl)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_input in;
    if (!fz_input_init(&in, data, size)) return 0;
    size_t max_size = max_sizes[in.cfg & 3];
    size_t cap = (size_t)(in.cfg >> 2);
    dx_http_header hdrs[64];

    /* The verdict on the whole input first. */
    uint8_t *all = fz_dup(in.data, in.len);
    dx_http_request req = {.headers = hdrs, .num_headers = cap};
    int whole = dx_http_parse_request((const char *)all, in.len, max_size, &req);
    FZ_CHECK(whole >= DX_EHDRSIZE && whole <= (int)in.len);
    FZ_CHECK(whole == 0 || whole == DX_EHTTP || whole == DX_EHDRSIZE || whole > 0);
    if (whole > 0) {
        FZ_CHECK((size_t)whole <= max_size);
        FZ_CHECK(req.num_headers <= cap);
        after_head(&req, all, in.len);
    } else {
        FZ_CHECK(req.num_headers == cap); /* left as it was */
    }
    free(all);

    /* Then as the server sees it: prefixes that grow piece by piece. */
    size_t have = 0;
    while (have < in.len) {
        have += fz_piece(&in, in.len - have);
        uint8_t *pre = fz_dup(in.data, have);
        dx_http_request r = {.headers = hdrs, .num_headers = cap};
        int rc = dx_http_parse_request((const char *)pre, have, max_size, &r);
        free(pre);
        if (whole > 0 && have >= (size_t)whole) {
            FZ_CHECK(rc == whole);
            break;
        }
        if (rc == 0) continue;
        FZ_CHECK(rc == whole);
        break;
    }
    return 0;
}

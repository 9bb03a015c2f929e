/* Tests for the HTTP/1.x head parser and its helpers (src/core/http.c). */
#include <sys/mman.h>
#include <unistd.h>

#include <duplex/http.h>

#include "test.h"

#define MAX_HEAD 8192

static const char curl_req[] = "GET /chat?room=1 HTTP/1.1\r\n"
                               "Host: localhost:8080\r\n"
                               "User-Agent: curl/8.5.0\r\n"
                               "Accept: */*\r\n"
                               "Connection: Upgrade\r\n"
                               "Upgrade: websocket\r\n"
                               "Sec-WebSocket-Version: 13\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                               "\r\n";

static const char chrome_req[] =
    "GET /ws HTTP/1.1\r\n"
    "Host: example.com:8080\r\n"
    "Connection: Upgrade\r\n"
    "Pragma: no-cache\r\n"
    "Cache-Control: no-cache\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36\r\n"
    "Upgrade: websocket\r\n"
    "Origin: http://example.com:8080\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Cookie: session=abc; theme=dark\r\n"
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "\r\n";

static const char firefox_req[] = "GET /socket?token=a%20b HTTP/1.1\r\n"
                                  "Host: example.com\r\n"
                                  "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:125.0) "
                                  "Gecko/20100101 Firefox/125.0\r\n"
                                  "Accept: */*\r\n"
                                  "Accept-Language: en-US,en;q=0.5\r\n"
                                  "Accept-Encoding: gzip, deflate, br\r\n"
                                  "Sec-WebSocket-Version: 13\r\n"
                                  "Origin: http://example.com\r\n"
                                  "Sec-WebSocket-Extensions: permessage-deflate\r\n"
                                  "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n"
                                  "Connection: keep-alive, Upgrade\r\n"
                                  "Sec-Fetch-Dest: empty\r\n"
                                  "Sec-Fetch-Mode: websocket\r\n"
                                  "Sec-Fetch-Site: same-origin\r\n"
                                  "Pragma: no-cache\r\n"
                                  "Cache-Control: no-cache\r\n"
                                  "Upgrade: websocket\r\n"
                                  "\r\n";

static const char resp_101[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                               "\r\n";

static int slice_is(const char *s, size_t len, const char *lit) {
    return s && strlen(lit) == len && memcmp(s, lit, len) == 0;
}

static int parse_req(const char *buf, size_t len, size_t max, dx_http_request *req,
                     dx_http_header *h, size_t cap) {
    memset(req, 0, sizeof *req);
    req->headers = h;
    req->num_headers = cap;
    return dx_http_parse_request(buf, len, max, req);
}

static int parse_res(const char *buf, size_t len, size_t max, dx_http_response *res,
                     dx_http_header *h, size_t cap) {
    memset(res, 0, sizeof *res);
    res->headers = h;
    res->num_headers = cap;
    return dx_http_parse_response(buf, len, max, res);
}

static int req_str(const char *s) {
    dx_http_request req;
    dx_http_header h[32];
    return parse_req(s, strlen(s), MAX_HEAD, &req, h, 32);
}

static int res_str(const char *s) {
    dx_http_response res;
    dx_http_header h[32];
    return parse_res(s, strlen(s), MAX_HEAD, &res, h, 32);
}

/* ---- guard pages: the input ends exactly where a PROT_NONE page begins,
 * so reading one byte past it crashes the test. */

typedef struct guard {
    char *map;
    size_t map_len;
    char *end; /* first byte of the PROT_NONE page */
} guard;

static int guard_open(guard *g, size_t len) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = (len + page - 1) / page + 1;
    g->map_len = (data_pages + 1) * page;
    g->map = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g->map == MAP_FAILED) return -1;
    g->end = g->map + data_pages * page;
    return mprotect(g->end, page, PROT_NONE);
}

static void guard_close(guard *g) {
    munmap(g->map, g->map_len);
}

static const char *guard_place(guard *g, const char *s, size_t n) {
    memcpy(g->end - n, s, n);
    return g->end - n;
}

static void check_request_lines(void) {
    dx_http_request req;
    dx_http_header h[32];
    int rc = parse_req(curl_req, strlen(curl_req), MAX_HEAD, &req, h, 32);
    CHECK_EQ_INT(rc, strlen(curl_req));
    CHECK(slice_is(req.method, req.method_len, "GET"));
    CHECK(slice_is(req.target, req.target_len, "/chat?room=1"));
    CHECK_EQ_INT(req.minor_version, 1);
    CHECK_EQ_INT(req.num_headers, 7);
    CHECK(slice_is(h[0].name, h[0].name_len, "Host"));
    CHECK(slice_is(h[0].value, h[0].value_len, "localhost:8080"));
    CHECK(slice_is(h[2].value, h[2].value_len, "*/*"));
    CHECK(slice_is(h[6].name, h[6].name_len, "Sec-WebSocket-Key"));
    CHECK(slice_is(h[6].value, h[6].value_len, "dGhlIHNhbXBsZSBub25jZQ=="));
}

static void check_browsers(void) {
    dx_http_request req;
    dx_http_header h[32];
    int rc = parse_req(chrome_req, strlen(chrome_req), MAX_HEAD, &req, h, 32);
    CHECK_EQ_INT(rc, strlen(chrome_req));
    CHECK_EQ_INT(req.num_headers, 13);
    const dx_http_header *x = dx_http_find(h, req.num_headers, "sec-websocket-extensions");
    REQUIRE(x != NULL);
    CHECK(slice_is(x->value, x->value_len, "permessage-deflate; client_max_window_bits"));
    x = dx_http_find(h, req.num_headers, "USER-AGENT");
    REQUIRE(x != NULL);
    CHECK(x->value_len > 50);

    rc = parse_req(firefox_req, strlen(firefox_req), MAX_HEAD, &req, h, 32);
    CHECK_EQ_INT(rc, strlen(firefox_req));
    CHECK_EQ_INT(req.num_headers, 16);
    CHECK(slice_is(req.target, req.target_len, "/socket?token=a%20b"));
    x = dx_http_find(h, req.num_headers, "Connection");
    REQUIRE(x != NULL);
    CHECK(dx_http_has_token(x->value, x->value_len, "upgrade"));
    CHECK(dx_http_has_token(x->value, x->value_len, "KEEP-ALIVE"));
    CHECK(!dx_http_has_token(x->value, x->value_len, "close"));
}

static void check_head_then_body(void) {
    /* Bytes after the head (the first WebSocket frame) are not consumed. */
    char buf[512];
    size_t n = strlen(curl_req);
    memcpy(buf, curl_req, n);
    memcpy(buf + n, "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
    dx_http_request req;
    dx_http_header h[16];
    CHECK_EQ_INT(parse_req(buf, n + 11, MAX_HEAD, &req, h, 16), n);
    /* Pipelined second request: only the first is parsed. */
    memcpy(buf + n, curl_req, n);
    CHECK_EQ_INT(parse_req(buf, 2 * n, MAX_HEAD, &req, h, 16), n);
}

static void check_line_endings_and_ows(void) {
    dx_http_request req;
    dx_http_header h[8];
    const char *lf = "GET / HTTP/1.1\nHost: a\nX:  b  c \t\n\n";
    CHECK_EQ_INT(parse_req(lf, strlen(lf), MAX_HEAD, &req, h, 8), strlen(lf));
    CHECK_EQ_INT(req.num_headers, 2);
    CHECK(slice_is(h[1].value, h[1].value_len, "b  c"));

    const char *mixed = "GET / HTTP/1.0\r\nHost: a\n\r\n";
    CHECK_EQ_INT(parse_req(mixed, strlen(mixed), MAX_HEAD, &req, h, 8), strlen(mixed));
    CHECK_EQ_INT(req.minor_version, 0);

    const char *empty = "GET / HTTP/1.1\r\nX-Empty:\r\nY: \t \r\nZ:z\r\n\r\n";
    CHECK_EQ_INT(parse_req(empty, strlen(empty), MAX_HEAD, &req, h, 8), strlen(empty));
    CHECK_EQ_INT(req.num_headers, 3);
    CHECK_EQ_INT(h[0].value_len, 0);
    CHECK_EQ_INT(h[1].value_len, 0);
    CHECK(slice_is(h[2].value, h[2].value_len, "z"));

    /* Leading empty lines are skipped (RFC 9112 §2.2) and counted. */
    const char *lead = "\r\n\nGET / HTTP/1.1\r\n\r\n";
    CHECK_EQ_INT(parse_req(lead, strlen(lead), MAX_HEAD, &req, h, 8), strlen(lead));
    CHECK(slice_is(req.method, req.method_len, "GET"));
    CHECK_EQ_INT(req.num_headers, 0);

    /* No headers at all, other methods, obs-text and high bytes. */
    const char *other = "OPTIONS * HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n";
    CHECK_EQ_INT(parse_req(other, strlen(other), MAX_HEAD, &req, h, 8), strlen(other));
    CHECK(slice_is(req.target, req.target_len, "*"));
    CHECK(slice_is(h[0].value, h[0].value_len, "caf\xc3\xa9"));
    const char *tabs = "M-SEARCH /p HTTP/1.9\r\nX: a\tb\r\n\r\n";
    CHECK_EQ_INT(parse_req(tabs, strlen(tabs), MAX_HEAD, &req, h, 8), strlen(tabs));
    CHECK_EQ_INT(req.minor_version, 9);
    CHECK(slice_is(h[0].value, h[0].value_len, "a\tb"));
}

#define B(lit)                                                                                     \
    { lit, sizeof lit - 1 }

static void check_bad_requests(void) {
    static const struct {
        const char *s;
        size_t n;
    } bad[] = {
        B(" GET / HTTP/1.1\r\n\r\n"),
        B("GE T / HTTP/1.1\r\n\r\n"),
        B("G@T / HTTP/1.1\r\n\r\n"),
        B("GET  / HTTP/1.1\r\n\r\n"),
        B("GET / HTTP/1.1 \r\n\r\n"),
        B("GET /  HTTP/1.1\r\n\r\n"),
        B("GET / HTTP/1.1x\r\n\r\n"),
        B("GET / HTTP/2.0\r\n\r\n"),
        B("GET / http/1.1\r\n\r\n"),
        B("GET / HTTP/1.\r\n\r\n"),
        B("GET / HTTP/1.a\r\n\r\n"),
        B("GET /\x01 HTTP/1.1\r\n\r\n"),
        B("GET /\x7f HTTP/1.1\r\n\r\n"),
        B("GET /a\tb HTTP/1.1\r\n\r\n"),
        B("GET\t/ HTTP/1.1\r\n\r\n"),
        B("GET / HTTP/1.1\rX\r\n\r\n"),
        B("GET / HTTP/1.1\r\nHost : x\r\n\r\n"),
        B("GET / HTTP/1.1\r\n: x\r\n\r\n"),
        B("GET / HTTP/1.1\r\nHo\x01st: x\r\n\r\n"),
        B("GET / HTTP/1.1\r\nHo(st: x\r\n\r\n"),
        B("GET / HTTP/1.1\r\nHost x\r\n\r\n"),
        B("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n"),
        B("GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n"),
        B("GET / HTTP/1.1\r\n Host: x\r\n\r\n"),
        B("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"),
        B("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n"),
        B("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"),
        B("GET / HTTP/1.1\r\nX: a\r\n\rZ"),
        B("\rGET / HTTP/1.1\r\n\r\n"),
        B("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
        B("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        B("\xff\xfe\x00\x01"),
        B("{\"type\":\"hello\"}\n"),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = bad[i].n;
        dx_http_request req;
        dx_http_header h[8];
        int rc = parse_req(bad[i].s, n, MAX_HEAD, &req, h, 8);
        if (rc != DX_EHTTP) fprintf(stderr, "bad[%zu] gave %d\n", i, rc);
        CHECK_EQ_INT(rc, DX_EHTTP);
        /* Every prefix is incomplete or already refused, never accepted. */
        for (size_t k = 0; k < n; k++) {
            rc = parse_req(bad[i].s, k, MAX_HEAD, &req, h, 8);
            CHECK(rc == 0 || rc == DX_EHTTP);
        }
    }
    /* Recognised as garbage at the first impossible byte. */
    CHECK_EQ_INT(parse_req("\x16", 1, MAX_HEAD, &(dx_http_request){0}, NULL, 0), DX_EHTTP);
    dx_http_request req;
    dx_http_header h[4];
    CHECK_EQ_INT(parse_req("GE\x00", 3, MAX_HEAD, &req, h, 4), DX_EHTTP);
    CHECK_EQ_INT(parse_req("GET / HTTX", 10, MAX_HEAD, &req, h, 4), DX_EHTTP);
    CHECK_EQ_INT(parse_req("GET / HTT", 9, MAX_HEAD, &req, h, 4), 0);
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r", 15, MAX_HEAD, &req, h, 4), 0);
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\nX", 17, MAX_HEAD, &req, h, 4), 0);
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\n ", 17, MAX_HEAD, &req, h, 4), DX_EHTTP);
}

static void check_every_prefix(void) {
    const char *reqs[] = {curl_req, chrome_req, firefox_req, "GET / HTTP/1.1\nHost: a\n\n"};
    for (size_t r = 0; r < 4; r++) {
        size_t n = strlen(reqs[r]);
        guard g;
        REQUIRE(guard_open(&g, n) == 0);
        for (size_t k = 0; k <= n; k++) {
            const char *p = guard_place(&g, reqs[r], k);
            dx_http_request req;
            dx_http_header h[32];
            req.headers = h;
            req.num_headers = 32;
            int rc = dx_http_parse_request(p, k, MAX_HEAD, &req);
            CHECK_EQ_INT(rc, k == n ? (int)n : 0);
            /* An incomplete parse leaves the capacity for the next call. */
            if (k < n) CHECK_EQ_INT(req.num_headers, 32);
        }
        guard_close(&g);
    }
    /* Responses too. */
    size_t n = strlen(resp_101);
    guard g;
    REQUIRE(guard_open(&g, n) == 0);
    for (size_t k = 0; k <= n; k++) {
        const char *p = guard_place(&g, resp_101, k);
        dx_http_response res;
        dx_http_header h[8];
        CHECK_EQ_INT(parse_res(p, k, MAX_HEAD, &res, h, 8), k == n ? (int)n : 0);
    }
    guard_close(&g);
}

static void check_guard_bad_prefixes(void) {
    /* Inputs that end right after a CR, inside a token, inside a value:
     * the parser must stop at the guard page, whatever the verdict. */
    const char *inputs[] = {
        "GET / HTTP/1.1\r",        "GET / HTTP/1.1\r\nHost: a\r", "GET",          "GET /abc",
        "GET / HTTP/1.1\r\nHost",  "GET / HTTP/1.1\r\nHost:   ",  "HTTP/1.1 101", "HTTP/1.1 1",
        "HTTP/1.1 101 Switching\r"};
    guard g;
    REQUIRE(guard_open(&g, 64) == 0);
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        size_t n = strlen(inputs[i]);
        for (size_t k = 0; k <= n; k++) {
            const char *p = guard_place(&g, inputs[i], k);
            dx_http_request req;
            dx_http_response res;
            dx_http_header h[4];
            int rc = parse_req(p, k, MAX_HEAD, &req, h, 4);
            CHECK(rc == 0 || rc == DX_EHTTP);
            rc = parse_res(p, k, MAX_HEAD, &res, h, 4);
            CHECK(rc == 0 || rc == DX_EHTTP);
        }
    }
    guard_close(&g);
}

static void check_max_size(void) {
    size_t n = strlen(curl_req);
    dx_http_request req;
    dx_http_header h[16];
    CHECK_EQ_INT(parse_req(curl_req, n, n, &req, h, 16), n);
    CHECK_EQ_INT(parse_req(curl_req, n, n - 1, &req, h, 16), DX_EHDRSIZE);
    /* Incomplete and under the limit: wait. At the limit without an end:
     * refuse at once. */
    CHECK_EQ_INT(parse_req(curl_req, n - 10, n - 1, &req, h, 16), 0);
    CHECK_EQ_INT(parse_req(curl_req, n - 1, n - 1, &req, h, 16), DX_EHDRSIZE);
    CHECK_EQ_INT(parse_req(curl_req, n, 64, &req, h, 16), DX_EHDRSIZE);
    /* A request line alone over the limit. */
    CHECK_EQ_INT(parse_req(curl_req, n, 10, &req, h, 16), DX_EHDRSIZE);
    CHECK_EQ_INT(parse_req(curl_req, 9, 10, &req, h, 16), 0);
    /* Garbage inside the limit is still named garbage. */
    CHECK_EQ_INT(parse_req("G\x01T / HTTP/1.1\r\n", 16, 8, &req, h, 16), DX_EHTTP);
    /* A zero limit admits nothing. */
    CHECK_EQ_INT(parse_req(curl_req, 0, 0, &req, h, 16), DX_EHDRSIZE);
    CHECK_EQ_INT(parse_req(curl_req, 0, 10, &req, h, 16), 0);
    /* Responses obey the same limit. */
    dx_http_response res;
    size_t rn = strlen(resp_101);
    CHECK_EQ_INT(parse_res(resp_101, rn, rn, &res, h, 16), rn);
    CHECK_EQ_INT(parse_res(resp_101, rn, rn - 1, &res, h, 16), DX_EHDRSIZE);
    CHECK_EQ_INT(parse_res(resp_101, rn - 1, rn, &res, h, 16), 0);
}

static void check_huge_request_line(void) {
    /* 1 MiB of request line that never ends: refused once max_size bytes
     * are in, long before the end would arrive. */
    size_t big = 1u << 20;
    char *buf = malloc(big);
    REQUIRE(buf != NULL);
    memcpy(buf, "GET /", 5);
    memset(buf + 5, 'a', big - 5);
    dx_http_request req;
    dx_http_header h[16];
    CHECK_EQ_INT(parse_req(buf, MAX_HEAD - 1, MAX_HEAD, &req, h, 16), 0);
    CHECK_EQ_INT(parse_req(buf, MAX_HEAD, MAX_HEAD, &req, h, 16), DX_EHDRSIZE);
    CHECK_EQ_INT(parse_req(buf, big, MAX_HEAD, &req, h, 16), DX_EHDRSIZE);
    /* Even with no limit to speak of, an unfinished head is just partial. */
    CHECK_EQ_INT(parse_req(buf, big, SIZE_MAX, &req, h, 16), 0);
    /* A huge header value (slowloris growing one header). */
    memcpy(buf, "GET / HTTP/1.1\r\nX: ", 19);
    CHECK_EQ_INT(parse_req(buf, 4096, MAX_HEAD, &req, h, 16), 0);
    CHECK_EQ_INT(parse_req(buf, big, MAX_HEAD, &req, h, 16), DX_EHDRSIZE);
    free(buf);
}

static void check_slowloris_headers(void) {
    /* Many small headers, fed as they come: 431 exactly when the buffer
     * reaches max_size without an end. */
    char buf[MAX_HEAD + 64];
    size_t n = 0;
    n += (size_t)sprintf(buf, "GET / HTTP/1.1\r\n");
    dx_http_header h[2048];
    dx_http_request req;
    int rc = 0;
    for (int i = 0; n + 16 < sizeof buf; i++) {
        n += (size_t)sprintf(buf + n, "X-%d: y\r\n", i % 1000);
        rc = parse_req(buf, n < MAX_HEAD ? n : MAX_HEAD, MAX_HEAD, &req, h, 2048);
        if (n < MAX_HEAD) CHECK_EQ_INT(rc, 0);
    }
    CHECK_EQ_INT(rc, DX_EHDRSIZE);
}

static void check_header_count(void) {
    const char *three = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    const char *four = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    dx_http_request req;
    dx_http_header h[4];
    CHECK_EQ_INT(parse_req(three, strlen(three), MAX_HEAD, &req, h, 3), strlen(three));
    CHECK_EQ_INT(req.num_headers, 3);
    CHECK_EQ_INT(parse_req(four, strlen(four), MAX_HEAD, &req, h, 3), DX_EHDRSIZE);
    CHECK_EQ_INT(req.num_headers, 3); /* left as the caller set it */
    /* Refused as soon as the fourth header starts, before the end. */
    CHECK_EQ_INT(parse_req(four, 35, MAX_HEAD, &req, h, 3), DX_EHDRSIZE);
    CHECK_EQ_INT(parse_req(four, 34, MAX_HEAD, &req, h, 3), 0);
    CHECK_EQ_INT(parse_req(four, strlen(four), MAX_HEAD, &req, h, 4), strlen(four));
    /* Zero capacity: only a head without headers fits. */
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\n\r\n", 18, MAX_HEAD, &req, NULL, 0), 18);
    CHECK_EQ_INT(parse_req(three, strlen(three), MAX_HEAD, &req, NULL, 0), DX_EHDRSIZE);
    /* A response with too many headers. */
    dx_http_response res;
    CHECK_EQ_INT(parse_res(resp_101, strlen(resp_101), MAX_HEAD, &res, h, 2), DX_EHDRSIZE);
}

static void check_random_garbage(void) {
    dx_t_seed();
    char buf[512];
    guard g;
    REQUIRE(guard_open(&g, sizeof buf) == 0);
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = (size_t)(dx_t_rand() % sizeof buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)dx_t_rand();
        const char *p = guard_place(&g, buf, n);
        dx_http_request req;
        dx_http_response res;
        dx_http_header h[8];
        int rc = parse_req(p, n, 256, &req, h, 8);
        CHECK(rc == 0 || rc == DX_EHTTP || rc == DX_EHDRSIZE || (rc > 0 && (size_t)rc <= n));
        /* Random bytes starting with a non-token byte are refused at once. */
        if (n > 0 && (unsigned char)buf[0] >= 0x80) CHECK_EQ_INT(rc, DX_EHTTP);
        rc = parse_res(p, n, 256, &res, h, 8);
        CHECK(rc == 0 || rc == DX_EHTTP || rc == DX_EHDRSIZE || (rc > 0 && (size_t)rc <= n));
    }
    /* Mutations of a valid request: one byte changed at a random place. */
    size_t n = strlen(chrome_req);
    char *m = malloc(n);
    REQUIRE(m != NULL);
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(m, chrome_req, n);
        m[dx_t_rand() % n] = (char)dx_t_rand();
        size_t k = (size_t)(dx_t_rand() % (n + 1));
        const char *p = guard_place(&g, m, k);
        dx_http_request req;
        dx_http_header h[32];
        int rc = parse_req(p, k, MAX_HEAD, &req, h, 32);
        CHECK(rc == 0 || rc == DX_EHTTP || rc == DX_EHDRSIZE || (rc > 0 && (size_t)rc <= k));
        if (rc > 0) {
            for (size_t i = 0; i < req.num_headers; i++) {
                CHECK(h[i].name >= p && h[i].name + h[i].name_len <= p + rc);
                CHECK(h[i].value >= p && h[i].value + h[i].value_len <= p + rc);
            }
        }
    }
    free(m);
    guard_close(&g);
}

static void check_responses(void) {
    dx_http_response res;
    dx_http_header h[8];
    int rc = parse_res(resp_101, strlen(resp_101), MAX_HEAD, &res, h, 8);
    CHECK_EQ_INT(rc, strlen(resp_101));
    CHECK_EQ_INT(res.status, 101);
    CHECK_EQ_INT(res.minor_version, 1);
    CHECK(slice_is(res.reason, res.reason_len, "Switching Protocols"));
    CHECK_EQ_INT(res.num_headers, 3);
    CHECK(slice_is(h[2].value, h[2].value_len, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));

    const char *noreason = "HTTP/1.1 101\r\nUpgrade: websocket\r\n\r\n";
    CHECK_EQ_INT(parse_res(noreason, strlen(noreason), MAX_HEAD, &res, h, 8), strlen(noreason));
    CHECK_EQ_INT(res.status, 101);
    CHECK_EQ_INT(res.reason_len, 0);
    const char *empty = "HTTP/1.0 404 \n\n";
    CHECK_EQ_INT(parse_res(empty, strlen(empty), MAX_HEAD, &res, h, 8), strlen(empty));
    CHECK_EQ_INT(res.status, 404);
    CHECK_EQ_INT(res.minor_version, 0);
    CHECK_EQ_INT(res.reason_len, 0);
    const char *body = "HTTP/1.1 400 Bad Request\r\nContent-Length: 5\r\n\r\nhello";
    CHECK_EQ_INT(parse_res(body, strlen(body), MAX_HEAD, &res, h, 8), strlen(body) - 5);

    static const char *bad[] = {
        "HTTP/1.1 20 OK\r\n\r\n",  "HTTP/1.1 2000 OK\r\n\r\n",   "HTTP/1.1  101\r\n\r\n",
        "XTTP/1.1 101\r\n\r\n",    "HTTP/2 101\r\n\r\n",         "HTTP/1.1 1O1 x\r\n\r\n",
        "HTTP/1.1 099 x\r\n\r\n",  "HTTP/1.1 101 a\x01\r\n\r\n", "HTTP/1.1 101 x\r\nA b\r\n\r\n",
        "HTTP/1.1\t101 x\r\n\r\n", "SSH-2.0-OpenSSH_9.6\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = res_str(bad[i]);
        if (rc != DX_EHTTP) fprintf(stderr, "bad response %zu gave %d\n", i, rc);
        CHECK_EQ_INT(rc, DX_EHTTP);
    }
    /* A request is not a response, and the reverse. */
    CHECK_EQ_INT(res_str(curl_req), DX_EHTTP);
    CHECK_EQ_INT(req_str(resp_101), DX_EHTTP);
    CHECK_EQ_INT(dx_http_parse_response(NULL, 5, 10, &res), DX_EINVAL);
    CHECK_EQ_INT(dx_http_parse_request("x", 1, 10, NULL), DX_EINVAL);
    dx_http_request nohdr = {0};
    nohdr.num_headers = 4; /* capacity without an array */
    CHECK_EQ_INT(dx_http_parse_request("GET / HTTP/1.1\r\n\r\n", 18, 64, &nohdr), DX_EINVAL);
}

static void check_find_and_ieq(void) {
    dx_http_request req;
    dx_http_header h[32];
    REQUIRE(parse_req(chrome_req, strlen(chrome_req), MAX_HEAD, &req, h, 32) > 0);
    CHECK(dx_http_find(h, req.num_headers, "HOST") == &h[0]);
    CHECK(dx_http_find(h, req.num_headers, "sec-websocket-key") != NULL);
    CHECK(dx_http_find(h, req.num_headers, "Sec-WebSocket-Ke") == NULL);
    CHECK(dx_http_find(h, req.num_headers, "Sec-WebSocket-Keys") == NULL);
    CHECK(dx_http_find(h, 0, "Host") == NULL);
    CHECK(dx_http_find(NULL, 0, "Host") == NULL);

    CHECK(dx_http_ieq("Upgrade", 7, "upgrade"));
    CHECK(dx_http_ieq("UPGRADE", 7, "upgrade"));
    CHECK(!dx_http_ieq("Upgrade", 6, "upgrade"));
    CHECK(!dx_http_ieq("Upgrades", 8, "upgrade"));
    CHECK(dx_http_ieq("", 0, ""));
    CHECK(!dx_http_ieq("a", 1, ""));
    CHECK(!dx_http_ieq("\xc1", 1, "\xe1")); /* ASCII folding only */
    CHECK(!dx_http_ieq("[", 1, "{"));
    CHECK(!dx_http_ieq("@", 1, "`"));
}

static void check_tokens(void) {
    const char *v = " keep-alive ,, Upgrade,\t\"a, b\" , x;q=\"1,\\\"2\",last ";
    size_t pos = 0, tl;
    const char *t;
    const char *want[] = {"keep-alive", "Upgrade", "\"a, b\"", "x;q=\"1,\\\"2\"", "last"};
    size_t k = 0;
    while (dx_http_next_token(v, strlen(v), &pos, &t, &tl)) {
        REQUIRE(k < 5);
        if (!slice_is(t, tl, want[k])) fprintf(stderr, "token %zu: %.*s\n", k, (int)tl, t);
        CHECK(slice_is(t, tl, want[k]));
        k++;
    }
    CHECK_EQ_INT(k, 5);
    CHECK_EQ_INT(pos, strlen(v));
    CHECK(!dx_http_next_token(v, strlen(v), &pos, &t, &tl));

    pos = 0;
    CHECK(!dx_http_next_token("", 0, &pos, &t, &tl));
    pos = 0;
    CHECK(!dx_http_next_token(" , ,\t", 5, &pos, &t, &tl));
    pos = 0;
    CHECK(dx_http_next_token("\"unterminated, x", 16, &pos, &t, &tl));
    CHECK_EQ_INT(tl, 16);

    CHECK(dx_http_has_token("keep-alive, Upgrade", 19, "upgrade"));
    CHECK(dx_http_has_token("UPGRADE", 7, "upgrade"));
    CHECK(dx_http_has_token("Upgrade,keep-alive", 18, "Keep-Alive"));
    CHECK(!dx_http_has_token("upgrade2", 8, "upgrade"));
    CHECK(!dx_http_has_token("keep-alive", 10, "upgrade"));
    CHECK(!dx_http_has_token("\"upgrade, x\"", 12, "upgrade"));
    CHECK(!dx_http_has_token("", 0, "upgrade"));
    CHECK(dx_http_has_token("websocket", 9, "WebSocket"));
    /* The length bounds the value: nothing past it is looked at. */
    CHECK(!dx_http_has_token("keep-alive, upgrade", 10, "upgrade"));
}

static void check_status_text(void) {
    static const struct {
        int code;
        const char *text;
    } t[] = {
        {101, "Switching Protocols"},
        {200, "OK"},
        {204, "No Content"},
        {301, "Moved Permanently"},
        {302, "Found"},
        {304, "Not Modified"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {413, "Content Too Large"},
        {426, "Upgrade Required"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {503, "Service Unavailable"},
        {999, "Unknown"},
        {0, "Unknown"},
        {-1, "Unknown"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        CHECK(strcmp(dx_http_status_text(t[i].code), t[i].text) == 0);
    }
}

static void check_write_error(void) {
    char out[512];
    int n = dx_http_write_error(out, sizeof out, 431, "headers too large", NULL);
    const char *want = "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                       "Content-Type: text/plain; charset=utf-8\r\n"
                       "Content-Length: 18\r\n"
                       "Connection: close\r\n"
                       "\r\n"
                       "headers too large\n";
    CHECK_EQ_INT(n, strlen(want));
    CHECK(strcmp(out, want) == 0);

    n = dx_http_write_error(out, sizeof out, 426, "unsupported Sec-WebSocket-Version",
                            "Sec-WebSocket-Version: 13\r\n");
    REQUIRE(n > 0);
    CHECK(strstr(out, "HTTP/1.1 426 Upgrade Required\r\n") == out);
    CHECK(strstr(out, "\r\nConnection: close\r\nSec-WebSocket-Version: 13\r\n\r\n") != NULL);
    CHECK(strstr(out, "Content-Length: 34\r\n") != NULL);

    /* NULL reason: the status text is the body. */
    n = dx_http_write_error(out, sizeof out, 404, NULL, NULL);
    REQUIRE(n > 0);
    CHECK(strstr(out, "\r\n\r\nNot Found\n") != NULL);
    CHECK(strstr(out, "Content-Length: 10\r\n") != NULL);

    /* The result parses as a response with a body of Content-Length. */
    n = dx_http_write_error(out, sizeof out, 400, "bad", "X-A: 1\r\n");
    dx_http_response res;
    dx_http_header h[8];
    int head = parse_res(out, (size_t)n, MAX_HEAD, &res, h, 8);
    REQUIRE(head > 0);
    CHECK_EQ_INT(res.status, 400);
    CHECK_EQ_INT(res.num_headers, 4);
    CHECK_EQ_INT(n - head, 4);

    /* Exact fit works (no NUL), one byte short is ENOSPC, as is every
     * shorter buffer, and nothing is written past cap. */
    int full = dx_http_write_error(out, sizeof out, 405, "use GET", "Allow: GET\r\n");
    REQUIRE(full > 0);
    for (int cap = 0; cap <= full; cap++) {
        char small[512];
        memset(small, '#', sizeof small);
        int rc = dx_http_write_error(small, (size_t)cap, 405, "use GET", "Allow: GET\r\n");
        CHECK_EQ_INT(rc, cap == full ? full : DX_ENOSPC);
        CHECK(small[cap] == '#');
    }
    CHECK_EQ_INT(dx_http_write_error(NULL, 0, 400, "x", NULL), DX_ENOSPC);
    /* A nonsense status from a caller still yields a valid status line. */
    n = dx_http_write_error(out, sizeof out, 42, "x", NULL);
    CHECK(n > 0 && strncmp(out, "HTTP/1.1 500 Internal Server Error\r\n", 36) == 0);
}

static void check_write_error_escaping(void) {
    /* A reason that quotes the peer cannot inject headers or a response. */
    char out[512];
    const char *evil = "bad key\r\nSet-Cookie: pwn=1\r\n\r\nHTTP/1.1 200 OK\x7f\x01\x1b[31m\tend";
    int n = dx_http_write_error(out, sizeof out, 400, evil, NULL);
    REQUIRE(n > 0);
    char *body = strstr(out, "\r\n\r\n");
    REQUIRE(body != NULL);
    body += 4;
    CHECK(strchr(body, '\r') == NULL);
    CHECK(strchr(body, '\t') == NULL);
    CHECK(strchr(body, 0x7f) == NULL);
    CHECK(strchr(body, 0x1b) == NULL);
    CHECK(strchr(body, '\n') == out + n - 1); /* only the final newline */
    CHECK(strstr(out, "Set-Cookie: pwn") == body + 9);
    CHECK(strcmp(body, "bad key??Set-Cookie: pwn=1????HTTP/1.1 200 OK???[31m?end\n") == 0);
    /* The head is exactly the four standard lines. */
    dx_http_response res;
    dx_http_header h[8];
    CHECK(parse_res(out, (size_t)n, MAX_HEAD, &res, h, 8) == body - out);
    CHECK_EQ_INT(res.num_headers, 3);
    /* UTF-8 in the reason passes through. */
    n = dx_http_write_error(out, sizeof out, 400, "caf\xc3\xa9", NULL);
    REQUIRE(n > 0);
    CHECK(strstr(out, "\r\n\r\ncaf\xc3\xa9\n") != NULL);
    CHECK(strstr(out, "Content-Length: 6\r\n") != NULL);
}

/* RFC 9112 §6.3: a body length read two ways is how requests are
 * smuggled past a proxy, so the head is refused (400) rather than guessed. */
static void check_content_length_framing(void) {
    static const char *const bad[] = {
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 0\r\nCONTENT-LENGTH: 10\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\nHost: a\r\n\r\n",
    };
    dx_http_request req;
    dx_http_header h[8];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = parse_req(bad[i], strlen(bad[i]), MAX_HEAD, &req, h, 8);
        if (rc != DX_EHTTP) fprintf(stderr, "  framing case %zu: %d\n", i, rc);
        CHECK_EQ_INT(rc, DX_EHTTP);
    }
    static const char *const good[] = {
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length:  5 \r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 005\r\nContent-Length: 5\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-Content-Length: 1\r\nX-Content-Length: 2\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        CHECK_EQ_INT(parse_req(good[i], strlen(good[i]), MAX_HEAD, &req, h, 8),
                     (int)strlen(good[i]));
}

/* A reason that ends with the newline the writer adds anyway keeps it as
 * the one final newline, not as a control byte turned into '?'. */
static void check_write_error_final_newline(void) {
    char out[512];
    int n = dx_http_write_error(out, sizeof out, 401, "invalid or expired token\n", NULL);
    REQUIRE(n > 0);
    const char *body = strstr(out, "\r\n\r\n") + 4;
    CHECK(strcmp(body, "invalid or expired token\n") == 0);
    CHECK(strstr(out, "Content-Length: 25\r\n") != NULL);
    /* Only the last one: others are still replaced. */
    n = dx_http_write_error(out, sizeof out, 400, "a\n\n", NULL);
    REQUIRE(n > 0);
    CHECK(strcmp(strstr(out, "\r\n\r\n") + 4, "a?\n") == 0);
}

int main(void) {
    RUN(check_content_length_framing);
    RUN(check_write_error_final_newline);
    RUN(check_request_lines);
    RUN(check_browsers);
    RUN(check_head_then_body);
    RUN(check_line_endings_and_ows);
    RUN(check_bad_requests);
    RUN(check_every_prefix);
    RUN(check_guard_bad_prefixes);
    RUN(check_max_size);
    RUN(check_huge_request_line);
    RUN(check_slowloris_headers);
    RUN(check_header_count);
    RUN(check_random_garbage);
    RUN(check_responses);
    RUN(check_find_and_ieq);
    RUN(check_tokens);
    RUN(check_status_text);
    RUN(check_write_error);
    RUN(check_write_error_escaping);
    return TEST_DONE();
}

/* Tests for the opening handshake (src/core/handshake.c): the server's
 * checks, the accept value, the answers, the client's request and
 * verification, and the extension-list parser. */
#include <duplex/handshake.h>

#include "test.h"

#define MAX_HEAD 8192

static int slice_is(const char *s, size_t len, const char *lit) {
    return s && strlen(lit) == len && memcmp(s, lit, len) == 0;
}

/* A parsed request kept with its storage. */
typedef struct parsed {
    char buf[4096];
    dx_http_header h[64];
    dx_http_request req;
    int rc;
} parsed;

static void parse(parsed *p, const char *text) {
    size_t n = strlen(text);
    memcpy(p->buf, text, n + 1);
    memset(&p->req, 0, sizeof p->req);
    p->req.headers = p->h;
    p->req.num_headers = 64;
    p->rc = dx_http_parse_request(p->buf, n, MAX_HEAD, &p->req);
}

/* Runs dx_handshake_check on `text`, which must parse. */
static int check_text(const char *text, dx_handshake_info *info, dx_handshake_error *err) {
    static parsed p;
    parse(&p, text);
    if (p.rc <= 0) {
        fprintf(stderr, "request did not parse (%d): %s\n", p.rc, text);
        return 999;
    }
    return dx_handshake_check(&p.req, info, err);
}

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define KEY_LINE "Sec-WebSocket-Key: " KEY "\r\n"

static const char curl_req[] = "GET /chat HTTP/1.1\r\n"
                               "Host: localhost:8080\r\n"
                               "User-Agent: curl/8.5.0\r\n"
                               "Accept: */*\r\n"
                               "Connection: Upgrade\r\n"
                               "Upgrade: websocket\r\n"
                               "Sec-WebSocket-Version: 13\r\n" KEY_LINE "\r\n";

static const char chrome_req[] =
    "GET /ws?room=lobby&user=7 HTTP/1.1\r\n"
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
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "\r\n";

static const char firefox_req[] = "GET / HTTP/1.1\r\n"
                                  "Host: example.com\r\n"
                                  "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:125.0) "
                                  "Gecko/20100101 Firefox/125.0\r\n"
                                  "Accept: */*\r\n"
                                  "Sec-WebSocket-Version: 13\r\n"
                                  "Origin: http://example.com\r\n"
                                  "Sec-WebSocket-Extensions: permessage-deflate\r\n"
                                  "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n"
                                  "Connection: keep-alive, Upgrade\r\n"
                                  "Sec-Fetch-Mode: websocket\r\n"
                                  "Upgrade: websocket\r\n"
                                  "\r\n";

static void check_rfc_accept(void) {
    char out[DX_ACCEPT_LEN + 1];
    memset(out, 'x', sizeof out);
    dx_handshake_accept(KEY, strlen(KEY), out);
    CHECK(strcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
    /* The Chrome key above, checked against Python's hashlib. */
    dx_handshake_accept("x3JJHMbDL1EzLkh9GBhXDw==", 24, out);
    CHECK(strcmp(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=") == 0);
    /* Only key_len bytes count. */
    dx_handshake_accept(KEY "garbage", 24, out);
    CHECK(strcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
    CHECK_EQ_INT(strlen(out), DX_ACCEPT_LEN);
}

static void check_valid_requests(void) {
    dx_handshake_info info;
    dx_handshake_error err = {0};
    CHECK_EQ_INT(check_text(curl_req, &info, &err), 0);
    CHECK(slice_is(info.path, info.path_len, "/chat"));
    CHECK(info.query == NULL);
    CHECK(memcmp(info.key, KEY, DX_KEY_LEN) == 0);
    CHECK(slice_is(info.host, info.host_len, "localhost:8080"));
    CHECK(info.origin == NULL);
    CHECK(info.protocols == NULL);
    CHECK(info.extensions == NULL);
    CHECK_EQ_INT(err.status, 0);

    CHECK_EQ_INT(check_text(chrome_req, &info, &err), 0);
    CHECK(slice_is(info.path, info.path_len, "/ws"));
    CHECK(slice_is(info.query, info.query_len, "room=lobby&user=7"));
    CHECK(memcmp(info.key, "x3JJHMbDL1EzLkh9GBhXDw==", DX_KEY_LEN) == 0);
    CHECK(slice_is(info.origin, info.origin_len, "http://example.com:8080"));
    CHECK(slice_is(info.protocols, info.protocols_len, "chat, superchat"));
    CHECK(slice_is(info.extensions, info.extensions_len,
                   "permessage-deflate; client_max_window_bits"));

    CHECK_EQ_INT(check_text(firefox_req, &info, &err), 0);
    CHECK(slice_is(info.path, info.path_len, "/"));
    CHECK(slice_is(info.extensions, info.extensions_len, "permessage-deflate"));

    /* info and err may be NULL. */
    CHECK_EQ_INT(check_text(curl_req, NULL, NULL), 0);
    CHECK_EQ_INT(check_text("GET / HTTP/1.1\r\nHost: a\r\n\r\n", NULL, NULL), DX_EHANDSHAKE);
    CHECK_EQ_INT(dx_handshake_check(NULL, &info, &err), DX_EINVAL);
}

static void check_mixed_case(void) {
    dx_handshake_info info;
    dx_handshake_error err;
    const char *req = "GET /x?a=1?b HTTP/1.1\r\n"
                      "host: h\r\n"
                      "UPGRADE: WebSocket\r\n"
                      "connection: keep-alive, UPGRADE\r\n"
                      "sec-websocket-version: 13\r\n"
                      "SEC-WEBSOCKET-KEY:   " KEY "  \r\n"
                      "ORIGIN: null\r\n"
                      "\r\n";
    CHECK_EQ_INT(check_text(req, &info, &err), 0);
    CHECK(slice_is(info.path, info.path_len, "/x"));
    CHECK(slice_is(info.query, info.query_len, "a=1?b"));
    CHECK(slice_is(info.origin, info.origin_len, "null"));
    /* Tokens split over several lines and lists with odd spacing. */
    const char *split = "GET /? HTTP/1.1\r\n"
                        "Host: h\r\n"
                        "Upgrade: h2c\r\n"
                        "Upgrade: websocket\r\n"
                        "Connection: keep-alive\r\n"
                        "Connection:  ,\tUpgrade ,\r\n"
                        "Sec-WebSocket-Version: 13\r\n" KEY_LINE "\r\n";
    CHECK_EQ_INT(check_text(split, &info, &err), 0);
    CHECK(slice_is(info.path, info.path_len, "/"));
    CHECK(info.query != NULL && info.query_len == 0);
    /* HTTP/1.9 is "1.1 or later". */
    const char *later = "GET / HTTP/1.9\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
                        "Sec-WebSocket-Version: 13\r\n" KEY_LINE "\r\n";
    CHECK_EQ_INT(check_text(later, &info, &err), 0);
}

typedef struct bad_case {
    const char *req;
    int status;
    const char *reason; /* a substring the reason must contain */
    const char *headers;
} bad_case;

#define UPG "Upgrade: websocket\r\nConnection: Upgrade\r\n"
#define VER "Sec-WebSocket-Version: 13\r\n"
#define WITH_KEY(k) "GET / HTTP/1.1\r\nHost: h\r\n" UPG VER "Sec-WebSocket-Key: " k "\r\n\r\n"

static void check_refusals(void) {
    static const bad_case cases[] = {
        /* Not an upgrade at all: plain HTTP, whatever the method. */
        {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 0, "not a WebSocket upgrade", NULL},
        {"POST /api HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", 0, "not a WebSocket",
         NULL},
        {"GET / HTTP/1.0\r\n\r\n", 0, "not a WebSocket", NULL},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n" VER KEY_LINE "\r\n", 0,
         "not a WebSocket", NULL},
        /* Wrong method. */
        {"POST / HTTP/1.1\r\nHost: h\r\n" UPG VER KEY_LINE "\r\n", 405, "GET", "Allow: GET\r\n"},
        {"get / HTTP/1.1\r\nHost: h\r\n" UPG VER KEY_LINE "\r\n", 405, "GET", "Allow: GET\r\n"},
        {"HEAD / HTTP/1.1\r\nHost: h\r\n" UPG VER KEY_LINE "\r\n", 405, "GET", "Allow: GET\r\n"},
        /* HTTP/1.0 cannot upgrade. */
        {"GET / HTTP/1.0\r\nHost: h\r\n" UPG VER KEY_LINE "\r\n", 400, "HTTP/1.1", NULL},
        /* Host. */
        {"GET / HTTP/1.1\r\n" UPG VER KEY_LINE "\r\n", 400, "missing Host", NULL},
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n" UPG VER KEY_LINE "\r\n", 400,
         "duplicate Host", NULL},
        {"GET / HTTP/1.1\r\nHost:\r\n" UPG VER KEY_LINE "\r\n", 400, "empty Host", NULL},
        /* Target. */
        {"GET * HTTP/1.1\r\nHost: h\r\n" UPG VER KEY_LINE "\r\n", 400, "target", NULL},
        {"GET http://h/ HTTP/1.1\r\nHost: h\r\n" UPG VER KEY_LINE "\r\n", 400, "target", NULL},
        /* Upgrade and Connection. */
        {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n" VER KEY_LINE
         "\r\n",
         400, "Upgrade", NULL},
        {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket2\r\nConnection: Upgrade\r\n" VER
             KEY_LINE "\r\n",
         400, "Upgrade", NULL},
        {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade:\r\nConnection: Upgrade\r\n" VER KEY_LINE "\r\n",
         400, "Upgrade", NULL},
        {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n" VER KEY_LINE "\r\n", 400,
         "Connection", NULL},
        {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n" VER
             KEY_LINE "\r\n",
         400, "Connection", NULL},
        {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgraded\r\n" VER
             KEY_LINE "\r\n",
         400, "Connection", NULL},
        /* Version: missing is malformed (400), unknown is 426. */
        {"GET / HTTP/1.1\r\nHost: h\r\n" UPG KEY_LINE "\r\n", 400, "missing Sec-WebSocket-Version",
         "Sec-WebSocket-Version: 13\r\n"},
        {"GET / HTTP/1.1\r\nHost: h\r\n" UPG "Sec-WebSocket-Version: 8\r\n" KEY_LINE "\r\n", 426,
         "Sec-WebSocket-Version", "Sec-WebSocket-Version: 13\r\n"},
        {"GET / HTTP/1.1\r\nHost: h\r\n" UPG "Sec-WebSocket-Version: 13, 8\r\n" KEY_LINE "\r\n",
         426, "Sec-WebSocket-Version", "Sec-WebSocket-Version: 13\r\n"},
        {"GET / HTTP/1.1\r\nHost: h\r\n" UPG "Sec-WebSocket-Version: 130\r\n" KEY_LINE "\r\n", 426,
         "Sec-WebSocket-Version", "Sec-WebSocket-Version: 13\r\n"},
        {"GET / HTTP/1.1\r\nHost: h\r\n" UPG "Sec-WebSocket-Version:\r\n" KEY_LINE "\r\n", 426,
         "Sec-WebSocket-Version", "Sec-WebSocket-Version: 13\r\n"},
        {"GET / HTTP/1.1\r\nHost: h\r\n" UPG VER VER KEY_LINE "\r\n", 400,
         "duplicate Sec-WebSocket-Version", NULL},
        /* Key. */
        {"GET / HTTP/1.1\r\nHost: h\r\n" UPG VER "\r\n", 400, "missing Sec-WebSocket-Key", NULL},
        {"GET / HTTP/1.1\r\nHost: h\r\n" UPG VER KEY_LINE KEY_LINE "\r\n", 400,
         "duplicate Sec-WebSocket-Key", NULL},
        {"GET / HTTP/1.1\r\nHost: h\r\n" UPG VER KEY_LINE
         "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n\r\n",
         400, "duplicate Sec-WebSocket-Key", NULL},
        {WITH_KEY("dGhlIHNhbXBsZSBub25jZQ="), 400, "invalid Sec-WebSocket-Key", NULL},
        {WITH_KEY("dGhlIHNhbXBsZSBub25jZQ==="), 400, "invalid Sec-WebSocket-Key", NULL},
        {WITH_KEY("dGhlIHNhbXBsZSBub25jZQAA"), 400, "invalid Sec-WebSocket-Key", NULL},
        {WITH_KEY("dGhlIHNhbXBsZSBub25j-Q=="), 400, "invalid Sec-WebSocket-Key", NULL},
        {WITH_KEY("dGhlIHNhbXBsZSBub2 jZQ=="), 400, "invalid Sec-WebSocket-Key", NULL},
        {WITH_KEY("c2FtcGxlIG5vbmNlIDEyMzQ1Njc="), 400, "invalid Sec-WebSocket-Key", NULL},
        {"GET / HTTP/1.1\r\nHost: h\r\n" UPG VER "Sec-WebSocket-Key:\r\n\r\n", 400,
         "invalid Sec-WebSocket-Key", NULL},
        {"GET / HTTP/1.1\r\nHost: h\r\n" UPG VER "Sec-WebSocket-Key: hello\r\n\r\n", 400,
         "invalid Sec-WebSocket-Key", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dx_handshake_info info;
        dx_handshake_error err = {-1, NULL, NULL};
        int rc = check_text(cases[i].req, &info, &err);
        if (rc != DX_EHANDSHAKE || err.status != cases[i].status)
            fprintf(stderr, "case %zu: rc %d status %d reason %s\n", i, rc, err.status,
                    err.reason ? err.reason : "(null)");
        CHECK_EQ_INT(rc, DX_EHANDSHAKE);
        CHECK_EQ_INT(err.status, cases[i].status);
        REQUIRE(err.reason != NULL);
        if (!strstr(err.reason, cases[i].reason))
            fprintf(stderr, "case %zu: reason \"%s\" lacks \"%s\"\n", i, err.reason,
                    cases[i].reason);
        CHECK(strstr(err.reason, cases[i].reason) != NULL);
        if (cases[i].headers) {
            CHECK(err.headers && strcmp(err.headers, cases[i].headers) == 0);
        } else {
            CHECK(err.headers == NULL);
        }
        /* The refusal becomes a well-formed answer. */
        if (err.status) {
            char out[512];
            int n = dx_http_write_error(out, sizeof out, err.status, err.reason, err.headers);
            CHECK(n > 0);
            char line[32];
            snprintf(line, sizeof line, "HTTP/1.1 %d ", err.status);
            CHECK(strncmp(out, line, strlen(line)) == 0);
        }
    }
}

static void check_several_lines(void) {
    /* Protocol and extensions split over lines: the first line is
     * reported. */
    const char *req = "GET / HTTP/1.1\r\nHost: h\r\n" UPG VER KEY_LINE
                      "Sec-WebSocket-Protocol: a, b\r\n"
                      "Sec-WebSocket-Protocol: c\r\n"
                      "Sec-WebSocket-Extensions: permessage-deflate\r\n"
                      "Sec-WebSocket-Extensions: x-foo\r\n"
                      "\r\n";
    dx_handshake_info info;
    dx_handshake_error err;
    CHECK_EQ_INT(check_text(req, &info, &err), 0);
    CHECK(slice_is(info.protocols, info.protocols_len, "a, b"));
    CHECK(slice_is(info.extensions, info.extensions_len, "permessage-deflate"));
}

static void check_write_101(void) {
    char out[512];
    int n = dx_handshake_write_101(out, sizeof out, KEY, NULL, NULL, NULL);
    const char *want = "HTTP/1.1 101 Switching Protocols\r\n"
                       "Upgrade: websocket\r\n"
                       "Connection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                       "\r\n";
    CHECK_EQ_INT(n, strlen(want));
    CHECK(strcmp(out, want) == 0);

    /* The key is read as DX_KEY_LEN bytes, as info->key is not
     * NUL-terminated. */
    n = dx_handshake_write_101(out, sizeof out, KEY "\r\nHost: x", "chat",
                               "permessage-deflate; server_no_context_takeover",
                               "X-Server: duplex\r\n");
    const char *want2 = "HTTP/1.1 101 Switching Protocols\r\n"
                        "Upgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                        "Sec-WebSocket-Protocol: chat\r\n"
                        "Sec-WebSocket-Extensions: permessage-deflate; "
                        "server_no_context_takeover\r\n"
                        "X-Server: duplex\r\n"
                        "\r\n";
    CHECK_EQ_INT(n, strlen(want2));
    CHECK(strcmp(out, want2) == 0);

    for (size_t cap = 0; cap <= strlen(want2); cap++) {
        char small[512];
        memset(small, '#', sizeof small);
        int rc = dx_handshake_write_101(small, cap, KEY, "chat",
                                        "permessage-deflate; server_no_context_takeover",
                                        "X-Server: duplex\r\n");
        CHECK_EQ_INT(rc, cap == strlen(want2) ? (int)cap : DX_ENOSPC);
        CHECK(small[cap] == '#');
    }
    CHECK_EQ_INT(dx_handshake_write_101(out, sizeof out, KEY, "chat\r\nX: 1", NULL, NULL),
                 DX_EINVAL);
    CHECK_EQ_INT(dx_handshake_write_101(out, sizeof out, KEY, NULL, "a\nb", NULL), DX_EINVAL);
    CHECK_EQ_INT(dx_handshake_write_101(out, sizeof out, NULL, NULL, NULL, NULL), DX_EINVAL);
}

static void check_select_protocol(void) {
    const char *const sup[] = {"superchat", "chat", NULL};
    CHECK_EQ_INT(dx_handshake_select_protocol("chat, superchat", 15, sup), 0);
    CHECK_EQ_INT(dx_handshake_select_protocol("chat", 4, sup), 1);
    CHECK_EQ_INT(dx_handshake_select_protocol(" foo ,chat ", 11, sup), 1);
    CHECK_EQ_INT(dx_handshake_select_protocol("CHAT", 4, sup), -1);
    CHECK_EQ_INT(dx_handshake_select_protocol("chatty, superchat2", 18, sup), -1);
    CHECK_EQ_INT(dx_handshake_select_protocol("", 0, sup), -1);
    CHECK_EQ_INT(dx_handshake_select_protocol(NULL, 0, sup), -1);
    const char *const none[] = {NULL};
    CHECK_EQ_INT(dx_handshake_select_protocol("chat", 4, none), -1);
    CHECK_EQ_INT(dx_handshake_select_protocol("chat", 4, NULL), -1);
    /* Only offered_len bytes are read. */
    CHECK_EQ_INT(dx_handshake_select_protocol("foo, chat", 3, sup), -1);
}

static int fixed_random(void *buf, size_t len) {
    for (size_t i = 0; i < len; i++) ((unsigned char *)buf)[i] = (unsigned char)(i + 1);
    return 0;
}

static int failing_random(void *buf, size_t len) { return DX_EIO; }

static void check_client_key(void) {
    char a[DX_KEY_LEN + 1], b[DX_KEY_LEN + 1];
    CHECK_EQ_INT(dx_handshake_client_key(a), 0);
    CHECK_EQ_INT(dx_handshake_client_key(b), 0);
    CHECK_EQ_INT(strlen(a), DX_KEY_LEN);
    CHECK(strcmp(a, b) != 0);
    CHECK(a[22] == '=' && a[23] == '=');
    /* A fresh key passes the server's check. */
    char req[512];
    snprintf(req, sizeof req, WITH_KEY("%s"), a);
    CHECK_EQ_INT(check_text(req, NULL, NULL), 0);

    dx_set_random(fixed_random);
    CHECK_EQ_INT(dx_handshake_client_key(a), 0);
    CHECK(strcmp(a, "AQIDBAUGBwgJCgsMDQ4PEA==") == 0);
    dx_set_random(failing_random);
    CHECK_EQ_INT(dx_handshake_client_key(a), DX_EIO);
    dx_set_random(NULL);
}

static void check_write_request(void) {
    char out[1024];
    int n = dx_handshake_write_request(out, sizeof out, "example.com:8080", "/chat?x=1", KEY, NULL,
                                       NULL, NULL, NULL);
    const char *want = "GET /chat?x=1 HTTP/1.1\r\n"
                       "Host: example.com:8080\r\n"
                       "Upgrade: websocket\r\n"
                       "Connection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n"
                       "\r\n";
    CHECK_EQ_INT(n, strlen(want));
    CHECK(strcmp(out, want) == 0);

    n = dx_handshake_write_request(out, sizeof out, "h", NULL, KEY, "chat, superchat",
                                   "permessage-deflate; client_max_window_bits",
                                   "http://h", "Authorization: Bearer t\r\n");
    REQUIRE(n > 0);
    CHECK(strncmp(out, "GET / HTTP/1.1\r\n", 16) == 0);
    CHECK(strstr(out, "\r\nSec-WebSocket-Protocol: chat, superchat\r\n") != NULL);
    CHECK(strstr(out, "\r\nSec-WebSocket-Extensions: permessage-deflate; "
                      "client_max_window_bits\r\n") != NULL);
    CHECK(strstr(out, "\r\nOrigin: http://h\r\n") != NULL);
    CHECK(strstr(out, "\r\nAuthorization: Bearer t\r\n\r\n") != NULL);
    CHECK_EQ_INT(dx_handshake_write_request(out, sizeof out, "h", "", KEY, NULL, NULL, NULL,
                                            NULL),
                 strlen(want) - strlen("/chat?x=1") + 1 - strlen("example.com:8080") + 1);
    CHECK(strncmp(out, "GET / HTTP/1.1\r\n", 16) == 0);

    /* No value can smuggle a line break into the request. */
    CHECK_EQ_INT(dx_handshake_write_request(out, sizeof out, "h\r\nX: 1", "/", KEY, NULL, NULL,
                                            NULL, NULL),
                 DX_EINVAL);
    CHECK_EQ_INT(dx_handshake_write_request(out, sizeof out, "h", "/ HTTP/1.0\r\n", KEY, NULL,
                                            NULL, NULL, NULL),
                 DX_EINVAL);
    CHECK_EQ_INT(dx_handshake_write_request(out, sizeof out, "h", "/a b", KEY, NULL, NULL, NULL,
                                            NULL),
                 DX_EINVAL);
    CHECK_EQ_INT(dx_handshake_write_request(out, sizeof out, "h", "/", KEY, "a\nb", NULL, NULL,
                                            NULL),
                 DX_EINVAL);
    CHECK_EQ_INT(dx_handshake_write_request(out, sizeof out, "h", "/", KEY, NULL, "a\rb", NULL,
                                            NULL),
                 DX_EINVAL);
    CHECK_EQ_INT(dx_handshake_write_request(out, sizeof out, "h", "/", KEY, NULL, NULL,
                                            "http://h\r\nCookie: x", NULL),
                 DX_EINVAL);
    CHECK_EQ_INT(dx_handshake_write_request(out, sizeof out, "h", "/", "k\r\n", NULL, NULL, NULL,
                                            NULL),
                 DX_EINVAL);
    CHECK_EQ_INT(dx_handshake_write_request(out, sizeof out, NULL, "/", KEY, NULL, NULL, NULL,
                                            NULL),
                 DX_EINVAL);
    CHECK_EQ_INT(dx_handshake_write_request(out, sizeof out, "", "/", KEY, NULL, NULL, NULL,
                                            NULL),
                 DX_EINVAL);
    CHECK_EQ_INT(dx_handshake_write_request(out, sizeof out, "h", "/", NULL, NULL, NULL, NULL,
                                            NULL),
                 DX_EINVAL);

    size_t full = strlen(want);
    for (size_t cap = 0; cap <= full; cap++) {
        char small[512];
        memset(small, '#', sizeof small);
        int rc = dx_handshake_write_request(small, cap, "example.com:8080", "/chat?x=1", KEY, NULL,
                                            NULL, NULL, NULL);
        CHECK_EQ_INT(rc, cap == full ? (int)full : DX_ENOSPC);
        CHECK(small[cap] == '#');
    }
}

static int parse_response(const char *buf, size_t len, dx_http_response *res, dx_http_header *h,
                          size_t cap) {
    memset(res, 0, sizeof *res);
    res->headers = h;
    res->num_headers = cap;
    return dx_http_parse_response(buf, len, MAX_HEAD, res);
}

static void check_round_trip(void) {
    /* Client request → server parser → check → 101 → client verify. */
    char key[DX_KEY_LEN + 1];
    REQUIRE(dx_handshake_client_key(key) == 0);
    char wire[1024];
    int n = dx_handshake_write_request(wire, sizeof wire, "localhost:9001", "/echo?v=2", key,
                                       "v2.chat, v1.chat", "permessage-deflate", "http://localhost",
                                       NULL);
    REQUIRE(n > 0);

    /* The server gets the request a byte at a time. */
    dx_http_header h[32];
    dx_http_request req;
    int rc = 0;
    for (int k = 0; k <= n; k++) {
        memset(&req, 0, sizeof req);
        req.headers = h;
        req.num_headers = 32;
        rc = dx_http_parse_request(wire, (size_t)k, MAX_HEAD, &req);
        CHECK_EQ_INT(rc, k == n ? n : 0);
    }
    REQUIRE(rc == n);
    dx_handshake_info info;
    dx_handshake_error err;
    REQUIRE(dx_handshake_check(&req, &info, &err) == 0);
    CHECK(slice_is(info.path, info.path_len, "/echo"));
    CHECK(slice_is(info.query, info.query_len, "v=2"));
    CHECK(slice_is(info.host, info.host_len, "localhost:9001"));
    CHECK(slice_is(info.origin, info.origin_len, "http://localhost"));
    CHECK(memcmp(info.key, key, DX_KEY_LEN) == 0);

    const char *const sup[] = {"v1.chat", NULL};
    int sel = dx_handshake_select_protocol(info.protocols, info.protocols_len, sup);
    REQUIRE(sel == 0);
    size_t pos = 0;
    dx_ext ext;
    REQUIRE(dx_ext_next(info.extensions, info.extensions_len, &pos, &ext) == 1);
    CHECK(slice_is(ext.name, ext.name_len, "permessage-deflate"));

    char answer[512];
    int an = dx_handshake_write_101(answer, sizeof answer, info.key, sup[sel],
                                    "permessage-deflate", NULL);
    REQUIRE(an > 0);
    /* Followed by the server's first frame in the same read. */
    memcpy(answer + an, "\x81\x02hi", 4);
    dx_http_response res;
    rc = parse_response(answer, (size_t)an + 4, &res, h, 32);
    REQUIRE(rc == an);
    const char *proto, *exts, *why = NULL;
    size_t proto_len, exts_len;
    rc = dx_handshake_verify(&res, key, "v2.chat, v1.chat", 1, &proto, &proto_len, &exts,
                             &exts_len, &why);
    if (rc) fprintf(stderr, "verify: %s\n", why);
    CHECK_EQ_INT(rc, 0);
    CHECK(slice_is(proto, proto_len, "v1.chat"));
    CHECK(slice_is(exts, exts_len, "permessage-deflate"));
    CHECK(why == NULL);

    /* Out pointers may be NULL. */
    CHECK_EQ_INT(dx_handshake_verify(&res, key, "v1.chat", 1, NULL, NULL, NULL, NULL, NULL), 0);
}

/* Builds a 101 answer for KEY with the given extra lines, parses it and
 * runs verify. */
static int verify_text(const char *text, const char *offered, int ext_ok, const char **why) {
    static char buf[2048];
    static dx_http_header h[32];
    dx_http_response res;
    snprintf(buf, sizeof buf, "%s", text);
    int rc = parse_response(buf, strlen(buf), &res, h, 32);
    if (rc <= 0) {
        fprintf(stderr, "response did not parse (%d): %s\n", rc, text);
        return 999;
    }
    const char *p, *e;
    size_t pl, el;
    return dx_handshake_verify(&res, KEY, offered, ext_ok, &p, &pl, &e, &el, why);
}

#define ACC "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
#define S101 "HTTP/1.1 101 Switching Protocols\r\n"

static void check_verify(void) {
    const char *why;
    CHECK_EQ_INT(verify_text(S101 UPG ACC "\r\n", NULL, 0, &why), 0);
    CHECK_EQ_INT(verify_text("HTTP/1.1 101\r\nupgrade: WebSocket\r\nCONNECTION: upgrade\r\n" ACC
                             "\r\n",
                             NULL, 0, &why),
                 0);
    static const struct {
        const char *text;
        const char *offered;
        int ext_ok;
        const char *why;
    } bad[] = {
        {S101 UPG "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo\r\n\r\n", NULL, 0,
         "wrong Sec-WebSocket-Accept"},
        {S101 UPG "Sec-WebSocket-Accept: S3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", NULL, 0,
         "wrong Sec-WebSocket-Accept"},
        {S101 UPG "Sec-WebSocket-Accept: HSmrc0sMlYUkAGmm5OPpG2HaGWk=\r\n\r\n", NULL, 0,
         "wrong Sec-WebSocket-Accept"},
        {S101 UPG "\r\n", NULL, 0, "missing Sec-WebSocket-Accept"},
        {S101 UPG ACC ACC "\r\n", NULL, 0, "duplicate Sec-WebSocket-Accept"},
        {"HTTP/1.1 200 OK\r\n" UPG ACC "\r\n", NULL, 0, "101"},
        {"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", NULL, 0, "101"},
        {S101 "Connection: Upgrade\r\n" ACC "\r\n", NULL, 0, "Upgrade"},
        {S101 "Upgrade: h2c\r\nConnection: Upgrade\r\n" ACC "\r\n", NULL, 0, "Upgrade"},
        {S101 "Upgrade: websocket\r\n" ACC "\r\n", NULL, 0, "Connection"},
        {S101 UPG ACC "Sec-WebSocket-Protocol: chat\r\n\r\n", NULL, 0, "none was offered"},
        {S101 UPG ACC "Sec-WebSocket-Protocol: chat\r\n\r\n", "superchat, chat2", 0,
         "not offered"},
        {S101 UPG ACC "Sec-WebSocket-Protocol: CHAT\r\n\r\n", "chat", 0, "not offered"},
        {S101 UPG ACC "Sec-WebSocket-Protocol: chat, superchat\r\n\r\n", "chat, superchat", 0,
         "not offered"},
        {S101 UPG ACC "Sec-WebSocket-Protocol:\r\n\r\n", "chat", 0, "not offered"},
        {S101 UPG ACC "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
         "chat", 0, "duplicate Sec-WebSocket-Protocol"},
        {S101 UPG ACC "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n", NULL, 0,
         "extension"},
        {S101 UPG ACC "Sec-WebSocket-Extensions: a\r\nSec-WebSocket-Extensions: b\r\n\r\n", NULL,
         1, "duplicate Sec-WebSocket-Extensions"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        int rc = verify_text(bad[i].text, bad[i].offered, bad[i].ext_ok, &why);
        if (rc != DX_EHANDSHAKE || !why || !strstr(why, bad[i].why))
            fprintf(stderr, "verify case %zu: rc %d why %s\n", i, rc, why ? why : "(null)");
        CHECK_EQ_INT(rc, DX_EHANDSHAKE);
        CHECK(why != NULL && strstr(why, bad[i].why) != NULL);
    }
    /* Protocol offered and chosen; extensions allowed. */
    CHECK_EQ_INT(verify_text(S101 UPG ACC "Sec-WebSocket-Protocol: chat\r\n\r\n",
                             "superchat, chat", 0, &why),
                 0);
    CHECK_EQ_INT(verify_text(S101 UPG ACC "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
                             NULL, 1, &why),
                 0);
    /* A protocol offered but none chosen is fine (the browser reports ""). */
    CHECK_EQ_INT(verify_text(S101 UPG ACC "\r\n", "chat", 0, &why), 0);

    /* On failure the out pointers are cleared. */
    dx_http_header h[8];
    dx_http_response res;
    const char *text = "HTTP/1.1 200 OK\r\n\r\n";
    REQUIRE(parse_response(text, strlen(text), &res, h, 8) > 0);
    const char *p = "x", *e = "x";
    size_t pl = 9, el = 9;
    CHECK_EQ_INT(dx_handshake_verify(&res, KEY, NULL, 1, &p, &pl, &e, &el, &why), DX_EHANDSHAKE);
    CHECK(p == NULL && e == NULL && pl == 0 && el == 0);
    CHECK_EQ_INT(dx_handshake_verify(NULL, KEY, NULL, 1, &p, &pl, &e, &el, &why), DX_EINVAL);
    CHECK_EQ_INT(dx_handshake_verify(&res, NULL, NULL, 1, &p, &pl, &e, &el, &why), DX_EINVAL);
}

/* ---- dx_ext_next ------------------------------------------------------ */

static int ext_is(const dx_ext *e, const char *name, size_t np) {
    return slice_is(e->name, e->name_len, name) && e->num_params == np;
}

static int param_is(const dx_ext *e, size_t i, const char *name, const char *value) {
    const dx_ext_param *p = &e->params[i];
    if (!slice_is(p->name, p->name_len, name)) return 0;
    if (!value) return p->value == NULL && p->value_len == 0;
    return slice_is(p->value, p->value_len, value);
}

static void check_ext_valid(void) {
    dx_ext e;
    size_t pos = 0;
    const char *v = "permessage-deflate";
    CHECK_EQ_INT(dx_ext_next(v, strlen(v), &pos, &e), 1);
    CHECK(ext_is(&e, "permessage-deflate", 0));
    CHECK_EQ_INT(dx_ext_next(v, strlen(v), &pos, &e), 0);

    v = "permessage-deflate; client_max_window_bits; server_max_window_bits=10";
    pos = 0;
    CHECK_EQ_INT(dx_ext_next(v, strlen(v), &pos, &e), 1);
    CHECK(ext_is(&e, "permessage-deflate", 2));
    CHECK(param_is(&e, 0, "client_max_window_bits", NULL));
    CHECK(param_is(&e, 1, "server_max_window_bits", "10"));
    CHECK_EQ_INT(dx_ext_next(v, strlen(v), &pos, &e), 0);

    v = "permessage-deflate;server_max_window_bits=\"10\";client_no_context_takeover";
    pos = 0;
    CHECK_EQ_INT(dx_ext_next(v, strlen(v), &pos, &e), 1);
    CHECK(ext_is(&e, "permessage-deflate", 2));
    CHECK(param_is(&e, 0, "server_max_window_bits", "10"));
    CHECK(param_is(&e, 1, "client_no_context_takeover", NULL));

    /* Whitespace wherever the grammar allows it, and several offers. */
    v = "  permessage-deflate ;  client_max_window_bits = 15 ; server_no_context_takeover  ,"
        "\tpermessage-deflate; client_max_window_bits , x-webkit-deflate-frame ";
    pos = 0;
    CHECK_EQ_INT(dx_ext_next(v, strlen(v), &pos, &e), 1);
    CHECK(ext_is(&e, "permessage-deflate", 2));
    CHECK(param_is(&e, 0, "client_max_window_bits", "15"));
    CHECK(param_is(&e, 1, "server_no_context_takeover", NULL));
    CHECK_EQ_INT(dx_ext_next(v, strlen(v), &pos, &e), 1);
    CHECK(ext_is(&e, "permessage-deflate", 1));
    CHECK(param_is(&e, 0, "client_max_window_bits", NULL));
    CHECK_EQ_INT(dx_ext_next(v, strlen(v), &pos, &e), 1);
    CHECK(ext_is(&e, "x-webkit-deflate-frame", 0));
    CHECK_EQ_INT(dx_ext_next(v, strlen(v), &pos, &e), 0);
    CHECK_EQ_INT(dx_ext_next(v, strlen(v), &pos, &e), 0);

    /* Empty elements are skipped; an empty list has none. */
    v = ",, a ,,b,";
    pos = 0;
    CHECK_EQ_INT(dx_ext_next(v, strlen(v), &pos, &e), 1);
    CHECK(ext_is(&e, "a", 0));
    CHECK_EQ_INT(dx_ext_next(v, strlen(v), &pos, &e), 1);
    CHECK(ext_is(&e, "b", 0));
    CHECK_EQ_INT(dx_ext_next(v, strlen(v), &pos, &e), 0);
    pos = 0;
    CHECK_EQ_INT(dx_ext_next("", 0, &pos, &e), 0);
    pos = 0;
    CHECK_EQ_INT(dx_ext_next(" , \t,", 5, &pos, &e), 0);
    pos = 0;
    CHECK_EQ_INT(dx_ext_next(NULL, 0, &pos, &e), 0);
    pos = 100;
    CHECK_EQ_INT(dx_ext_next("abc", 3, &pos, &e), 0);

    /* Exactly DX_EXT_MAX_PARAMS parameters is fine. */
    v = "x; a; b; c; d; e; f; g; h=1";
    pos = 0;
    CHECK_EQ_INT(dx_ext_next(v, strlen(v), &pos, &e), 1);
    CHECK(ext_is(&e, "x", DX_EXT_MAX_PARAMS));
    CHECK(param_is(&e, 7, "h", "1"));

    /* Only len bytes are read. */
    v = "a; b=1, c";
    pos = 0;
    CHECK_EQ_INT(dx_ext_next(v, 6, &pos, &e), 1);
    CHECK(ext_is(&e, "a", 1));
    CHECK(param_is(&e, 0, "b", "1"));
    CHECK_EQ_INT(dx_ext_next(v, 6, &pos, &e), 0);
}

/* Parses a whole list and renders what it found as "name(params)" or "!"
 * for a malformed element, e.g. "a(b=1) ! c()". */
static void render(const char *v, char *out, size_t cap) {
    size_t pos = 0, o = 0;
    dx_ext e;
    out[0] = '\0';
    for (int guard = 0; guard < 64; guard++) {
        size_t before = pos;
        int rc = dx_ext_next(v, strlen(v), &pos, &e);
        if (rc == 0) break;
        if (o) o += (size_t)snprintf(out + o, cap - o, " ");
        if (rc == DX_EHTTP) {
            o += (size_t)snprintf(out + o, cap - o, "!");
            CHECK(e.name == NULL && e.num_params == 0);
        } else {
            CHECK_EQ_INT(rc, 1);
            o += (size_t)snprintf(out + o, cap - o, "%.*s(", (int)e.name_len, e.name);
            for (size_t i = 0; i < e.num_params; i++) {
                o += (size_t)snprintf(out + o, cap - o, "%s%.*s", i ? ";" : "",
                                      (int)e.params[i].name_len, e.params[i].name);
                if (e.params[i].value)
                    o += (size_t)snprintf(out + o, cap - o, "=%.*s", (int)e.params[i].value_len,
                                          e.params[i].value);
            }
            o += (size_t)snprintf(out + o, cap - o, ")");
        }
        CHECK(pos > before); /* always progresses */
        CHECK(pos <= strlen(v));
    }
}

static void check_ext_malformed(void) {
    static const struct {
        const char *in;
        const char *out;
    } t[] = {
        {"permessage-deflate; =1, foo", "! foo()"},
        {"a; b=\"x,y\", c", "! c()"},
        {"a; b=\"x\\\"y, z\", c", "! c()"},
        {"a; b=\"1, c", "!"},
        {"; x, c", "! c()"},
        {"a b, c", "! c()"},
        {"a;b=, c", "! c()"},
        {"a; b=\"\", c", "! c()"},
        {"a; b=\"1 2\", c", "! c()"},
        {"a;, c", "! c()"},
        {"a=1, c", "! c()"},
        {"\"a\", c", "! c()"},
        {"a; b=1=2, c", "! c()"},
        {"a; b c, d", "! d()"},
        {"a; b=1 2, c", "! c()"},
        {"a; b=\"1\"2, c", "! c()"},
        {"a;;b, c", "! c()"},
        {"a; b=@, c", "! c()"},
        {"a/1, c", "! c()"},
        {"x; a; b; c; d; e; f; g; h; i, y", "! y()"},
        {"ok; p=1, bad;, ok2", "ok(p=1) ! ok2()"},
        {"a, b; c=\"d\", e;f", "a() b(c=d) e(f)"},
        {"a;", "!"},
        {"a; b=\"", "!"},
        {"a\x01, b", "! b()"},
    };
    char out[256];
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        render(t[i].in, out, sizeof out);
        if (strcmp(out, t[i].out) != 0)
            fprintf(stderr, "ext case %zu: \"%s\" gave \"%s\", want \"%s\"\n", i, t[i].in, out,
                    t[i].out);
        CHECK(strcmp(out, t[i].out) == 0);
    }
}

static void check_ext_random(void) {
    /* Random strings over the grammar's alphabet: never stuck, never out of
     * bounds, slices always inside the value. */
    static const char alphabet[] = "ab=;,\" \t\\1";
    dx_t_seed();
    char v[64];
    for (int iter = 0; iter < 50000; iter++) {
        size_t n = (size_t)(dx_t_rand() % sizeof v);
        for (size_t i = 0; i < n; i++) v[i] = alphabet[dx_t_rand() % (sizeof alphabet - 1)];
        size_t pos = 0;
        dx_ext e;
        int rc, steps = 0;
        while ((rc = dx_ext_next(v, n, &pos, &e)) != 0) {
            REQUIRE(++steps <= 64);
            REQUIRE(pos <= n);
            if (rc == 1) {
                CHECK(e.name >= v && e.name + e.name_len <= v + n && e.name_len > 0);
                CHECK(e.num_params <= DX_EXT_MAX_PARAMS);
                for (size_t i = 0; i < e.num_params; i++) {
                    CHECK(e.params[i].name_len > 0);
                    if (e.params[i].value)
                        CHECK(e.params[i].value >= v &&
                              e.params[i].value + e.params[i].value_len <= v + n &&
                              e.params[i].value_len > 0);
                }
            } else {
                CHECK_EQ_INT(rc, DX_EHTTP);
            }
        }
    }
}

int main(void) {
    RUN(check_rfc_accept);
    RUN(check_valid_requests);
    RUN(check_mixed_case);
    RUN(check_refusals);
    RUN(check_several_lines);
    RUN(check_write_101);
    RUN(check_select_protocol);
    RUN(check_client_key);
    RUN(check_write_request);
    RUN(check_round_trip);
    RUN(check_verify);
    RUN(check_ext_valid);
    RUN(check_ext_malformed);
    RUN(check_ext_random);
    return TEST_DONE();
}

/* The server, end to end over loopback: each test forks a server process
 * (its own loop, port 0) and talks to it with plain blocking sockets, a
 * hand-built handshake and hand-masked frames. The server reports what its
 * callbacks saw on an event pipe ("close 3001 1"), so both ends are
 * checked. Every wait is bounded. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <duplex/loop.h>
#include <duplex/server.h>

#include "io/uring.h"
#include "server/internal.h"
#include "srvproc.h"
#include "test.h"

/* ---- the server process ------------------------------------------------- */

/* The test application: echo, plus a few commands in text messages. */
static void app_message(dx_server_conn *c, void *user, enum dx_opcode op, const uint8_t *d,
                        size_t n) {
    dx_server *s = dx_server_conn_server(c);
    char buf[512];
    size_t k = n < sizeof buf - 1 ? n : sizeof buf - 1;
    memcpy(buf, d, k);
    buf[k] = 0;
    if (op == DX_OP_TEXT && starts(d, n, "sub:")) {
        CHECK_EQ_INT(dx_server_subscribe(c, buf + 4), 0);
        dx_server_send_text(c, "subscribed");
    } else if (op == DX_OP_TEXT && starts(d, n, "pub:")) {
        char *msg = strchr(buf + 4, ':');
        if (!msg) return;
        *msg++ = 0;
        int r = dx_server_publish(s, buf + 4, DX_OP_TEXT, msg, strlen(msg), NULL);
        ev("published %d", r);
    } else if (op == DX_OP_TEXT && starts(d, n, "bcast:")) {
        int r = dx_server_broadcast(s, DX_OP_TEXT, buf + 6, strlen(buf + 6), NULL);
        ev("broadcast %d", r);
    } else if (op == DX_OP_TEXT && starts(d, n, "bigcast:")) {
        /* Many large broadcasts: a client that never reads must hit the
         * backpressure policy while the others keep up. */
        int count = atoi(buf + 8);
        static uint8_t blob[65536];
        size_t most = 0;
        for (int i = 0; i < count; i++) {
            (void)dx_server_broadcast(s, DX_OP_BINARY, blob, sizeof blob, c);
            for (dx_server_conn *o = dx_server_first(s); o; o = dx_server_next(o))
                if (dx_server_conn_buffered(o) > most) most = dx_server_conn_buffered(o);
        }
        ev("bigcast done %zu", most);
    } else if (op == DX_OP_TEXT && starts(d, n, "close:")) {
        int code = atoi(buf + 6);
        char *reason = strchr(buf + 6, ':');
        dx_server_close(c, (unsigned)code, reason ? reason + 1 : NULL);
    } else if (op == DX_OP_TEXT && starts(d, n, "count")) {
        snprintf(buf, sizeof buf, "count %zu", dx_server_count(s));
        dx_server_send_text(c, buf);
    } else if (op == DX_OP_TEXT && starts(d, n, "remote")) {
        dx_server_conn_remote(c, buf, sizeof buf);
        dx_server_send_text(c, buf);
    } else if (op == DX_OP_TEXT && starts(d, n, "ring")) {
        /* Whether this connection is on the loop's io_uring, and whether
         * the loop has one (kernel, DUPLEX_NO_IO_URING). */
        snprintf(buf, sizeof buf, "ring %d %d", (c->flags & F_URING) != 0,
                 dx__loop_uring(dx_server_loop(s), 0) != NULL);
        dx_server_send_text(c, buf);
    } else if (op == DX_OP_TEXT && starts(d, n, "sndbuf:")) {
        /* A small send buffer, so that sends end short and wait. */
        int v = atoi(buf + 7);
        CHECK(setsockopt(c->io.fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v) == 0);
        dx_server_send_text(c, "sndbuf");
    } else if (op == DX_OP_TEXT && starts(d, n, "burst:")) {
        /* Numbered small messages in one go: far more than the socket
         * takes, so sends end short and queue behind one in flight. */
        int count = atoi(buf + 6);
        for (int i = 0; i < count; i++) {
            char m[32];
            int mk = snprintf(m, sizeof m, "m%07d", i);
            if (dx_server_send(c, DX_OP_TEXT, m, (size_t)mk) != 0) break;
        }
        ev("burst done");
    } else if (op == DX_OP_TEXT && starts(d, n, "data")) {
        dx_server_send_text(c, (const char *)dx_server_conn_data(c));
    } else {
        dx_server_send(c, op, d, n);
    }
}

static void app_open(dx_server_conn *c, void *user) {
    ev("open");
}

static void app_close(dx_server_conn *c, void *user, uint16_t code, const uint8_t *reason,
                      size_t reason_len, int was_clean) {
    ev("close %u %d %.*s", code, was_clean, (int)reason_len, (const char *)reason);
}

static int app_upgrade(dx_server_conn *c, void *user, dx_upgrade *u) {
    if (u->query && u->query_len >= 6 && !memcmp(u->query, "reject", 6)) {
        u->reason = "token required";
        return 401;
    }
    /* Keep the path in the inline data, as an application keeps a user id. */
    char *data = dx_server_conn_data(c);
    size_t k = u->path_len < 63 ? u->path_len : 63;
    memcpy(data, u->path, k);
    data[k] = 0;
    ev("upgrade %.*s %s", (int)u->path_len, u->path, u->remote);
    return 0;
}

static int app_http(dx_server_conn *c, void *user, const dx_http_route *r) {
    if (r->path_len == 7 && !memcmp(r->path, "/custom", 7)) {
        CHECK_EQ_INT(dx_server_http_respond(c, 200, "application/json", "{\"a\":1}", 7), 0);
        return 1;
    }
    return 0;
}

static const char *protocols[] = {"chat.v2", "chat.v1", NULL};
static const char *origins[] = {"https://good.example", NULL};
static char static_dir[256];

static void srvproc_config(dx_server_config *cfg) {
    *cfg = (dx_server_config){
        .port = 0,
        .on_message = app_message,
        .on_open = app_open,
        .on_close = app_close,
        .on_upgrade = app_upgrade,
        .on_http = app_http,
        .conn_data_size = 64,
        .protocols = protocols,
        .close_timeout_ms = 1000,
    };
}

static void srvproc_stopped(dx_server *srv) {
    (void)srv;
}

static long server_rss_kib(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kib = atol(line + 6);
    fclose(f);
    return kib;
}

/* ---- the client side ------------------------------------------------------ */

typedef struct client {
    int fd;
    uint8_t buf[65536];
    size_t len;
} client;

static client *cl_connect(int port) {
    client *c = calloc(1, sizeof *c);
    c->fd = tcp_connect(port);
    if (c->fd < 0) {
        free(c);
        return NULL;
    }
    return c;
}

static void cl_free(client *c) {
    if (!c) return;
    close(c->fd);
    free(c);
}

/* Reads more bytes into the buffer: > 0, 0 on EOF, -1 on error/timeout. */
static int cl_fill(client *c) {
    if (c->len == sizeof c->buf) return -1;
    ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (r > 0) c->len += (size_t)r;
    return r > 0 ? 1 : r == 0 ? 0 : -1;
}

static int cl_read(client *c, void *out, size_t n) {
    uint8_t *o = out;
    while (n) {
        if (!c->len && cl_fill(c) <= 0) return -1;
        size_t k = n < c->len ? n : c->len;
        memcpy(o, c->buf, k);
        memmove(c->buf, c->buf + k, c->len - k);
        c->len -= k;
        o += k;
        n -= k;
    }
    return 0;
}

/* Reads an HTTP response head (and, with Content-Length, its body) into
 * `out`. Returns the status, or -1. */
static int cl_http_response(client *c, char *out, size_t cap) {
    char *end;
    for (;;) {
        c->buf[c->len < sizeof c->buf ? c->len : sizeof c->buf - 1] = 0;
        if ((end = strstr((char *)c->buf, "\r\n\r\n"))) break;
        if (cl_fill(c) <= 0) return -1;
    }
    size_t head = (size_t)(end + 4 - (char *)c->buf);
    size_t body = 0;
    char *cl = strcasestr((char *)c->buf, "\r\ncontent-length:");
    if (cl && cl < end) body = (size_t)atol(cl + 17);
    if (strncmp((char *)c->buf, "HTTP/1.1 101", 12) == 0 ||
        strstr((char *)c->buf, "HTTP/1.1 304") || strstr((char *)c->buf, "HTTP/1.1 204"))
        body = 0;
    while (c->len < head + body && body < sizeof c->buf - head)
        if (cl_fill(c) <= 0) break;
    size_t total = head + body <= c->len ? head + body : c->len;
    size_t k = total < cap - 1 ? total : cap - 1;
    memcpy(out, c->buf, k);
    out[k] = 0;
    memmove(c->buf, c->buf + total, c->len - total);
    c->len -= total;
    return atoi(out + 9);
}

static const char *KEY = "dGhlIHNhbXBsZSBub25jZQ==";

/* Sends an upgrade request with `extra` headers; returns the status. */
static int cl_upgrade(client *c, const char *target, const char *extra, char *resp, size_t cap) {
    size_t cap2 = 1024 + strlen(target) + (extra ? strlen(extra) : 0);
    char *req = malloc(cap2);
    snprintf(req, cap2,
             "GET %s HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
             target, KEY, extra ? extra : "");
    int w = dx_t_write_all(c->fd, req, strlen(req));
    free(req);
    if (w) return -1;
    char tmp[4096];
    return cl_http_response(c, resp ? resp : tmp, resp ? cap : sizeof tmp);
}

static client *ws_open(int port) {
    client *c = cl_connect(port);
    if (!c) return NULL;
    if (cl_upgrade(c, "/", NULL, NULL, 0) != 101) {
        cl_free(c);
        return NULL;
    }
    return c;
}

/* Writes one frame; `mask` 0 sends it unmasked (a protocol error). */
static int cl_frame(client *c, int fin, int op, const void *data, size_t n, int mask) {
    static const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    uint8_t *p = malloc(14 + n + 1);
    size_t len = dx_t_frame(p, fin, 0, op, data, n, mask ? key : NULL);
    int r = dx_t_write_all(c->fd, p, len);
    free(p);
    return r;
}

/* Reads one frame; returns the opcode (with 0x80 set when fin), -1 on
 * EOF/timeout. The payload is malloc'd into *out. */
static int cl_read_frame(client *c, uint8_t **out, size_t *n) {
    uint8_t h[2];
    if (cl_read(c, h, 2)) return -1;
    uint64_t len = h[1] & 0x7f;
    if (h[1] & 0x80) return -2; /* servers never mask */
    if (len == 126) {
        uint8_t e[2];
        if (cl_read(c, e, 2)) return -1;
        len = (uint64_t)e[0] << 8 | e[1];
    } else if (len == 127) {
        uint8_t e[8];
        if (cl_read(c, e, 8)) return -1;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | e[i];
    }
    uint8_t *p = malloc(len + 1);
    if (cl_read(c, p, len)) {
        free(p);
        return -1;
    }
    p[len] = 0;
    *out = p;
    *n = len;
    return h[0] & 0x8f;
}

/* Reads frames until a data message or close; returns the opcode. */
static int cl_read_msg(client *c, uint8_t **out, size_t *n) {
    for (;;) {
        int op = cl_read_frame(c, out, n);
        if (op < 0) return op;
        if ((op & 0xf) == DX_OP_PING || (op & 0xf) == DX_OP_PONG) {
            free(*out);
            continue;
        }
        return op & 0xf;
    }
}

static int expect_text(client *c, const char *want) {
    uint8_t *p = NULL;
    size_t n;
    int op = cl_read_msg(c, &p, &n);
    int ok = op == DX_OP_TEXT && n == strlen(want) && !memcmp(p, want, n);
    if (!ok)
        fprintf(stderr, "  wanted text '%s', got op %d '%.*s'\n", want, op, op >= 0 ? (int)n : 0,
                p ? (char *)p : "");
    free(p);
    return ok;
}

static int send_text(client *c, const char *s) {
    return cl_frame(c, 1, DX_OP_TEXT, s, strlen(s), 1);
}

/* Reads until a close frame; returns its code (1005 for none), -1 without. */
static int expect_close(client *c, char *reason, size_t cap) {
    for (;;) {
        uint8_t *p = NULL;
        size_t n;
        int op = cl_read_frame(c, &p, &n);
        if (op < 0) return -1;
        if ((op & 0xf) == DX_OP_CLOSE) {
            int code = n >= 2 ? p[0] << 8 | p[1] : 1005;
            if (reason) {
                size_t k = n > 2 ? n - 2 : 0;
                if (k > cap - 1) k = cap - 1;
                memcpy(reason, p + 2, k);
                reason[k] = 0;
            }
            free(p);
            return code;
        }
        free(p);
    }
}

static int close_payload(client *c, int code, const char *reason) {
    uint8_t p[125] = {(uint8_t)(code >> 8), (uint8_t)code};
    size_t n = strlen(reason);
    memcpy(p + 2, reason, n);
    return cl_frame(c, 1, DX_OP_CLOSE, p, 2 + n, 1);
}

/* 1 when the server closes the TCP connection within the timeout. */
static int expect_eof(client *c) {
    for (;;) {
        int r = cl_fill(c);
        if (r == 0) return 1;
        if (r < 0) return 0;
        c->len = 0;
    }
}

/* A plain HTTP request; returns the status and the response in `out`. */
static int http_req(int port, const char *req, char *out, size_t cap) {
    client *c = cl_connect(port);
    if (!c) return -1;
    dx_t_write_all(c->fd, req, strlen(req));
    int st = cl_http_response(c, out, cap);
    cl_free(c);
    return st;
}

/* ---- tests ---------------------------------------------------------------- */

static void echo_sizes(void) {
    SERVER(sp, NULL);
    client *c = ws_open(sp.port);
    REQUIRE(c);
    CHECK(wait_event(&sp, "upgrade / 127.0.0.1:", NULL, 0, 2000) == 0);
    CHECK(wait_event(&sp, "open", NULL, 0, 2000) == 0);
    size_t sizes[] = {0, 1, 125, 126, 127, 65535, 65536, 65537, 1 << 20, 16u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        uint8_t *d = malloc(n + 1);
        for (size_t k = 0; k < n; k++)
            d[k] = (uint8_t)('a' + k % 26);
        int op = i % 2 ? DX_OP_BINARY : DX_OP_TEXT;
        CHECK(cl_frame(c, 1, op, d, n, 1) == 0);
        uint8_t *p = NULL;
        size_t got = 0;
        int rop = cl_read_msg(c, &p, &got);
        CHECK_EQ_INT(rop, op);
        CHECK_EQ_INT(got, n);
        CHECK(p && (n == 0 || !memcmp(p, d, n)));
        free(p);
        free(d);
    }
    CHECK(send_text(c, "remote") == 0);
    uint8_t *p = NULL;
    size_t n;
    CHECK_EQ_INT(cl_read_msg(c, &p, &n), DX_OP_TEXT);
    CHECK(p && !strncmp((char *)p, "127.0.0.1:", 10));
    free(p);
    CHECK(send_text(c, "data") == 0);
    CHECK(expect_text(c, "/"));
    cl_free(c);
    CHECK(wait_event(&sp, "close 1006 0", NULL, 0, 3000) == 0);
    CHECK_EQ_INT(stop_server(&sp), 0);
}

static void fragments_and_pings(void) {
    SERVER(sp, NULL);
    client *c = ws_open(sp.port);
    REQUIRE(c);
    CHECK(cl_frame(c, 0, DX_OP_TEXT, "Hel", 3, 1) == 0);
    CHECK(cl_frame(c, 1, DX_OP_PING, "hb", 2, 1) == 0);
    CHECK(cl_frame(c, 0, DX_OP_CONT, "lo, ", 4, 1) == 0);
    CHECK(cl_frame(c, 1, DX_OP_CONT, "w\xc3\xb6rld", 6, 1) == 0);
    uint8_t *p = NULL;
    size_t n;
    int op = cl_read_frame(c, &p, &n);
    CHECK_EQ_INT(op, 0x80 | DX_OP_PONG);
    CHECK(n == 2 && p && !memcmp(p, "hb", 2));
    free(p);
    CHECK(expect_text(c, "Hello, w\xc3\xb6rld"));
    /* A text message whose UTF-8 code point is split over fragments. */
    CHECK(cl_frame(c, 0, DX_OP_TEXT, "\xe2\x82", 2, 1) == 0);
    CHECK(cl_frame(c, 1, DX_OP_CONT, "\xac", 1, 1) == 0);
    CHECK(expect_text(c, "\xe2\x82\xac"));
    /* Frames sent one byte at a time. */
    uint8_t frame[16];
    uint8_t key[4] = {1, 2, 3, 4};
    frame[0] = 0x81;
    frame[1] = 0x80 | 5;
    memcpy(frame + 2, key, 4);
    for (int i = 0; i < 5; i++)
        frame[6 + i] = (uint8_t)("slow!"[i] ^ key[i & 3]);
    for (int i = 0; i < 11; i++) {
        CHECK(dx_t_write_all(c->fd, frame + i, 1) == 0);
        usleep(2000);
    }
    CHECK(expect_text(c, "slow!"));
    /* Application heartbeat is off by default: "ping" is echoed. */
    CHECK(send_text(c, "ping") == 0);
    CHECK(expect_text(c, "ping"));
    cl_free(c);
    CHECK_EQ_INT(stop_server(&sp), 0);
}

static void close_echoed(void) {
    SERVER(sp, NULL);
    client *c = ws_open(sp.port);
    REQUIRE(c);
    CHECK(close_payload(c, 3001, "user left") == 0);
    CHECK_EQ_INT(expect_close(c, NULL, 0), 3001);
    CHECK(expect_eof(c));
    char line[256];
    CHECK(wait_event(&sp, "close", line, sizeof line, 2000) == 0);
    CHECK(!strcmp(line, "close 3001 1 user left"));
    cl_free(c);
    /* The server closes: its code and reason arrive, we answer, it ends. */
    c = ws_open(sp.port);
    REQUIRE(c);
    CHECK(send_text(c, "close:4000:bye now") == 0);
    char reason[128];
    CHECK_EQ_INT(expect_close(c, reason, sizeof reason), 4000);
    CHECK(!strcmp(reason, "bye now"));
    CHECK(close_payload(c, 4000, "") == 0);
    CHECK(expect_eof(c));
    CHECK(wait_event(&sp, "close", line, sizeof line, 2000) == 0);
    CHECK(!strncmp(line, "close 4000 1", 12));
    cl_free(c);
    CHECK_EQ_INT(stop_server(&sp), 0);
}

static void cfg_small_message(dx_server_config *cfg) {
    cfg->max_message = 1024;
}

static void protocol_errors(void) {
    SERVER(sp, cfg_small_message);
    char line[256];
    /* 1009: a message over max_message, decided from the header. */
    client *c = ws_open(sp.port);
    REQUIRE(c);
    uint8_t big[2000] = {0};
    CHECK(cl_frame(c, 1, DX_OP_BINARY, big, sizeof big, 1) == 0);
    CHECK_EQ_INT(expect_close(c, NULL, 0), 1009);
    CHECK(expect_eof(c));
    CHECK(wait_event(&sp, "close", line, sizeof line, 2000) == 0);
    CHECK(!strncmp(line, "close 1009 0", 12));
    cl_free(c);
    /* 1009 also for fragments that add up past the limit. */
    c = ws_open(sp.port);
    REQUIRE(c);
    CHECK(cl_frame(c, 0, DX_OP_BINARY, big, 600, 1) == 0);
    CHECK(cl_frame(c, 1, DX_OP_CONT, big, 600, 1) == 0);
    CHECK_EQ_INT(expect_close(c, NULL, 0), 1009);
    cl_free(c);
    /* 1002: an unmasked frame. */
    c = ws_open(sp.port);
    REQUIRE(c);
    CHECK(cl_frame(c, 1, DX_OP_TEXT, "hi", 2, 0) == 0);
    CHECK_EQ_INT(expect_close(c, NULL, 0), 1002);
    CHECK(expect_eof(c));
    cl_free(c);
    /* 1007: invalid UTF-8 in a text message. */
    c = ws_open(sp.port);
    REQUIRE(c);
    CHECK(cl_frame(c, 1, DX_OP_TEXT, "ok\xff", 3, 1) == 0);
    CHECK_EQ_INT(expect_close(c, NULL, 0), 1007);
    cl_free(c);
    /* 1002: a reserved opcode. */
    c = ws_open(sp.port);
    REQUIRE(c);
    CHECK(cl_frame(c, 1, 3, "x", 1, 1) == 0);
    CHECK_EQ_INT(expect_close(c, NULL, 0), 1002);
    cl_free(c);
    CHECK_EQ_INT(stop_server(&sp), 0);
}

static void cfg_one_conn(dx_server_config *cfg) {
    cfg->max_connections = 1;
    cfg->max_header_size = 4096;
}

static void handshake_errors(void) {
    SERVER(sp, cfg_one_conn);
    char resp[8192];
    /* 431: headers over max_header_size. */
    client *c = cl_connect(sp.port);
    REQUIRE(c);
    char *huge = malloc(20000);
    strcpy(huge, "X-Big: ");
    memset(huge + 7, 'a', 10000);
    strcpy(huge + 10007, "\r\n");
    CHECK_EQ_INT(cl_upgrade(c, "/", huge, resp, sizeof resp), 431);
    free(huge);
    cl_free(c);
    /* 400 with a reason: a bad key. */
    c = cl_connect(sp.port);
    REQUIRE(c);
    const char *bad_key =
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n";
    dx_t_write_all(c->fd, bad_key, strlen(bad_key));
    CHECK_EQ_INT(cl_http_response(c, resp, sizeof resp), 400);
    CHECK(strcasestr(resp, "key") != NULL);
    cl_free(c);
    /* 426 for version 12, naming the version we speak. */
    c = cl_connect(sp.port);
    REQUIRE(c);
    const char *v12 =
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 12\r\n\r\n";
    dx_t_write_all(c->fd, v12, strlen(v12));
    CHECK_EQ_INT(cl_http_response(c, resp, sizeof resp), 426);
    CHECK(strstr(resp, "Sec-WebSocket-Version: 13") != NULL);
    cl_free(c);
    /* 400 for garbage. */
    CHECK_EQ_INT(http_req(sp.port, "\x16\x03\x01garbage\r\n\r\n", resp, sizeof resp), 400);
    /* 503 over max_connections; 101 again once the first is gone. */
    client *a = ws_open(sp.port);
    REQUIRE(a);
    CHECK(wait_event(&sp, "open", NULL, 0, 2000) == 0);
    c = cl_connect(sp.port);
    REQUIRE(c);
    CHECK_EQ_INT(cl_upgrade(c, "/", NULL, resp, sizeof resp), 503);
    cl_free(c);
    close_payload(a, 1000, "");
    CHECK_EQ_INT(expect_close(a, NULL, 0), 1000);
    cl_free(a);
    CHECK(wait_event(&sp, "close 1000", NULL, 0, 2000) == 0);
    c = ws_open(sp.port);
    CHECK(c != NULL);
    cl_free(c);
    /* on_upgrade refuses with a status and reason. */
    c = cl_connect(sp.port);
    REQUIRE(c);
    CHECK_EQ_INT(cl_upgrade(c, "/room?reject=1", NULL, resp, sizeof resp), 401);
    CHECK(strstr(resp, "token required") != NULL);
    cl_free(c);
    /* Subprotocol: our first choice among those offered. */
    CHECK(wait_event(&sp, "close", NULL, 0, 2000) == 0);
    c = cl_connect(sp.port);
    REQUIRE(c);
    CHECK_EQ_INT(
        cl_upgrade(c, "/", "Sec-WebSocket-Protocol: chat.v1, chat.v2\r\n", resp, sizeof resp), 101);
    CHECK(strstr(resp, "Sec-WebSocket-Protocol: chat.v2\r\n") != NULL);
    CHECK(strstr(resp, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != NULL);
    cl_free(c);
    CHECK_EQ_INT(stop_server(&sp), 0);
}

static void make_static_dir(void) {
    snprintf(static_dir, sizeof static_dir, "/tmp/dx-static-%d", (int)getpid());
    mkdir(static_dir, 0755);
    char p[512];
    snprintf(p, sizeof p, "%s/index.html", static_dir);
    FILE *f = fopen(p, "w");
    fputs("<h1>hi</h1>\n", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/sub", static_dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/sub/app.js", static_dir);
    f = fopen(p, "w");
    fputs("export const x = 1;\n", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/big.bin", static_dir);
    f = fopen(p, "w");
    for (int i = 0; i < 300000; i++)
        fputc(i & 0xff, f);
    fclose(f);
    snprintf(p, sizeof p, "%s/escape", static_dir);
    symlink("/etc", p);
}

static void remove_static_dir(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", static_dir);
    CHECK(system(cmd) == 0);
}

static void cfg_static(dx_server_config *cfg) {
    cfg->static_dir = static_dir;
}

static void http_routes(void) {
    make_static_dir();
    SERVER(sp, cfg_static);
    char r[8192];
    CHECK_EQ_INT(http_req(sp.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", r, sizeof r), 200);
    CHECK(strstr(r, "\r\n\r\nok") != NULL);
    CHECK_EQ_INT(http_req(sp.port, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", r, sizeof r), 404);
    CHECK_EQ_INT(http_req(sp.port, "GET /custom HTTP/1.1\r\nHost: x\r\n\r\n", r, sizeof r), 200);
    CHECK(strstr(r, "application/json") && strstr(r, "{\"a\":1}"));
    CHECK_EQ_INT(http_req(sp.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", r, sizeof r), 200);
    CHECK(strstr(r, "text/html") && strstr(r, "<h1>hi</h1>"));
    char *etag = strstr(r, "ETag: ");
    REQUIRE(etag);
    char tag[64];
    sscanf(etag + 6, "%63s", tag);
    CHECK(strstr(r, "Last-Modified: ") != NULL);
    char req[512];
    snprintf(req, sizeof req, "GET /index.html HTTP/1.1\r\nHost: x\r\nIf-None-Match: %s\r\n\r\n",
             tag);
    CHECK_EQ_INT(http_req(sp.port, req, r, sizeof r), 304);
    CHECK(strstr(r, "<h1>") == NULL);
    CHECK_EQ_INT(http_req(sp.port, "HEAD /sub/app.js HTTP/1.1\r\nHost: x\r\n\r\n", r, sizeof r),
                 200);
    CHECK(strstr(r, "text/javascript") && strstr(r, "Content-Length: 20\r\n") &&
          !strstr(r, "export"));
    CHECK_EQ_INT(http_req(sp.port, "GET /sub/app.js HTTP/1.1\r\nHost: x\r\n\r\n", r, sizeof r),
                 200);
    CHECK(strstr(r, "export const x = 1;"));
    CHECK_EQ_INT(http_req(sp.port,
                          "POST /index.html HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", r,
                          sizeof r),
                 405);
    /* Ways out of the directory. */
    CHECK_EQ_INT(
        http_req(sp.port, "GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", r, sizeof r), 404);
    CHECK_EQ_INT(http_req(sp.port, "GET /sub/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
                          r, sizeof r),
                 404);
    CHECK_EQ_INT(http_req(sp.port, "GET /escape/passwd HTTP/1.1\r\nHost: x\r\n\r\n", r, sizeof r),
                 404);
    CHECK_EQ_INT(
        http_req(sp.port, "GET /sub/..%5c..%5cetc HTTP/1.1\r\nHost: x\r\n\r\n", r, sizeof r), 404);
    CHECK(strstr(r, "root:") == NULL);
    /* A file bigger than the socket buffer, streamed whole. */
    client *c = cl_connect(sp.port);
    REQUIRE(c);
    const char *g = "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n";
    dx_t_write_all(c->fd, g, strlen(g));
    size_t total = 0;
    uint8_t chunk[65536];
    ssize_t k;
    while ((k = recv(c->fd, chunk, sizeof chunk, 0)) > 0)
        total += (size_t)k;
    CHECK(total > 300000 && total < 300400);
    cl_free(c);
    CHECK_EQ_INT(stop_server(&sp), 0);
    remove_static_dir();
}

static void cfg_origin(dx_server_config *cfg) {
    cfg->origins = origins;
}

static void origin_allow_list(void) {
    SERVER(sp, cfg_origin);
    char r[4096];
    client *c = cl_connect(sp.port);
    REQUIRE(c);
    CHECK_EQ_INT(cl_upgrade(c, "/", "Origin: https://evil.example\r\n", r, sizeof r), 403);
    cl_free(c);
    c = cl_connect(sp.port);
    REQUIRE(c);
    CHECK_EQ_INT(cl_upgrade(c, "/", "Origin: https://GOOD.example\r\n", r, sizeof r), 101);
    cl_free(c);
    c = cl_connect(sp.port);
    REQUIRE(c);
    CHECK_EQ_INT(cl_upgrade(c, "/", NULL, r, sizeof r), 101); /* not a browser */
    cl_free(c);
    CHECK_EQ_INT(stop_server(&sp), 0);
}

static void cfg_heartbeat(dx_server_config *cfg) {
    cfg->ping_interval_ms = 200;
    cfg->ping_timeout_ms = 300;
    cfg->app_heartbeat = 1;
    cfg->handshake_timeout_ms = 400;
}

static void heartbeats(void) {
    SERVER(sp, cfg_heartbeat);
    /* A live peer: pings arrive, pongs keep it open. */
    client *live = ws_open(sp.port);
    REQUIRE(live);
    for (int i = 0; i < 3; i++) {
        uint8_t *p = NULL;
        size_t n;
        int op = cl_read_frame(live, &p, &n);
        CHECK_EQ_INT(op, 0x80 | DX_OP_PING);
        free(p);
        CHECK(cl_frame(live, 1, DX_OP_PONG, "", 0, 1) == 0);
    }
    /* The application heartbeat never reaches on_message. */
    CHECK(send_text(live, "ping") == 0);
    CHECK(expect_text(live, "pong"));
    close_payload(live, 1000, "");
    CHECK_EQ_INT(expect_close(live, NULL, 0), 1000);
    cl_free(live);
    /* A silent peer is dropped and reported as 1006. */
    client *dead = ws_open(sp.port);
    REQUIRE(dead);
    char line[128];
    CHECK(expect_eof(dead));
    CHECK(wait_event(&sp, "close 1006 0", line, sizeof line, 3000) == 0);
    cl_free(dead);
    /* A connection that never sends its request: dropped at the handshake
     * timeout. */
    client *mute = cl_connect(sp.port);
    REQUIRE(mute);
    CHECK(expect_eof(mute));
    cl_free(mute);
    CHECK_EQ_INT(stop_server(&sp), 0);
}

static void cfg_idle(dx_server_config *cfg) {
    cfg->idle_timeout_ms = 300;
}

static void idle_timeout(void) {
    SERVER(sp, cfg_idle);
    client *c = ws_open(sp.port);
    REQUIRE(c);
    char reason[128];
    CHECK_EQ_INT(expect_close(c, reason, sizeof reason), 1001);
    CHECK(!strcmp(reason, "idle timeout"));
    close_payload(c, 1001, "");
    CHECK(expect_eof(c));
    cl_free(c);
    CHECK_EQ_INT(stop_server(&sp), 0);
}

static void graceful_shutdown(void) {
    SERVER(sp, NULL);
    client *a = ws_open(sp.port), *b = ws_open(sp.port);
    REQUIRE(a && b);
    CHECK(wait_event(&sp, "open", NULL, 0, 2000) == 0);
    CHECK(wait_event(&sp, "open", NULL, 0, 2000) == 0);
    kill(sp.pid, SIGTERM);
    char reason[128];
    CHECK_EQ_INT(expect_close(a, reason, sizeof reason), 1001);
    CHECK(!strcmp(reason, "going away"));
    CHECK(close_payload(a, 1001, "") == 0);
    /* b never answers: the deadline drops it. */
    CHECK_EQ_INT(expect_close(b, NULL, 0), 1001);
    CHECK(expect_eof(a));
    CHECK(wait_event(&sp, "close 1001 1", NULL, 0, 2000) == 0);
    CHECK(wait_event(&sp, "close 1006 0", NULL, 0, 3000) == 0);
    CHECK(wait_event(&sp, "shutdown done", NULL, 0, 3000) == 0);
    /* Nothing is accepted any more. */
    int status = -1;
    for (int i = 0; i < 300 && waitpid(sp.pid, &status, WNOHANG) != sp.pid; i++)
        usleep(10000);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(sp.ev);
    cl_free(a);
    cl_free(b);
}

static void cfg_slow(dx_server_config *cfg) {
    cfg->max_buffered = 256 * 1024;
    cfg->close_timeout_ms = 500;
}

static void slow_reader(void) {
    SERVER(sp, cfg_slow);
    client *slow = ws_open(sp.port);
    client *fast = ws_open(sp.port);
    REQUIRE(slow && fast);
    int rcv = 4096;
    setsockopt(slow->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    CHECK(wait_event(&sp, "open", NULL, 0, 2000) == 0);
    CHECK(wait_event(&sp, "open", NULL, 0, 2000) == 0);
    long rss0 = server_rss_kib(sp.pid);
    /* 200 broadcasts of 64 KiB (12.5 MiB) to a client that never reads:
     * its queue never holds more than max_buffered plus one message. */
    char line[128];
    for (int round = 0; round < 4; round++) {
        CHECK(send_text(fast, "bigcast:50") == 0);
        CHECK(wait_event(&sp, "bigcast done", line, sizeof line, 5000) == 0);
        size_t most = (size_t)atol(line + 13);
        CHECK(most <= 256 * 1024 + 65536 + 16);
    }
    CHECK(wait_event(&sp, "close", line, sizeof line, 5000) == 0);
    CHECK(!strncmp(line, "close 1008 0", 12));
    long rss1 = server_rss_kib(sp.pid);
    fprintf(stderr, "  slow reader: server RSS %ld KiB -> %ld KiB\n", rss0, rss1);
#if !defined(__SANITIZE_ADDRESS__)
    /* (ASan keeps freed memory in quarantine, so RSS says nothing there.) */
    CHECK(rss1 - rss0 < 4 * 1024);
#endif
    /* The fast one is still served. */
    CHECK(send_text(fast, "still here") == 0);
    CHECK(expect_text(fast, "still here"));
    cl_free(slow);
    cl_free(fast);
    CHECK_EQ_INT(stop_server(&sp), 0);
}

/* The io_uring path (io/uring.h) where the kernel has it, epoll where not
 * or with DUPLEX_NO_IO_URING=1 (CTest runs this file both ways): small
 * copied sends that end short, sends from the queue, a reader that stops
 * and comes back, large sends written through, receives that run out of
 * buffers, and a peer that resets with sends in flight. */
static void ring_paths(void) {
    SERVER(sp, NULL);
    client *c = ws_open(sp.port);
    REQUIRE(c);
    CHECK(send_text(c, "ring") == 0);
    uint8_t *p = NULL;
    size_t n = 0;
    CHECK_EQ_INT(cl_read_msg(c, &p, &n), DX_OP_TEXT);
    int on = 0, has = 0;
    CHECK(p && sscanf((char *)p, "ring %d %d", &on, &has) == 2);
    free(p);
    const char *off = getenv("DUPLEX_NO_IO_URING");
    int want_off = off && *off && strcmp(off, "0") != 0;
    fprintf(stderr, "  ring: loop has io_uring %d, connection on it %d%s\n", has, on,
            want_off ? " (DUPLEX_NO_IO_URING)" : "");
    CHECK_EQ_INT(on, has); /* with a ring, an open plain-TCP socket is on it */
    if (want_off) CHECK_EQ_INT(has, 0);
    /* 30,000 messages (570 KB) to a small receive buffer that is not read
     * for a while: every one arrives, in order. */
    int rcv = 8192;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    CHECK(send_text(c, "sndbuf:4096") == 0);
    CHECK(expect_text(c, "sndbuf"));
    /* In several callbacks, so that some queue behind a send in flight. */
    for (int i = 0; i < 30; i++)
        CHECK(send_text(c, "burst:1000") == 0);
    for (int i = 0; i < 30; i++)
        CHECK(wait_event(&sp, "burst done", NULL, 0, 5000) == 0);
    usleep(200000);
    int next = 0, bad = 0;
    while (next < 30000 && !bad) {
        p = NULL;
        if (cl_read_msg(c, &p, &n) != DX_OP_TEXT || n != 8) {
            bad = 1;
        } else {
            char want[16];
            snprintf(want, sizeof want, "m%07d", next % 1000);
            if (memcmp(p, want, 8)) bad = 1;
            next++;
        }
        free(p);
    }
    CHECK_EQ_INT(next, 30000);
    CHECK_EQ_INT(bad, 0);
    /* Echoes of 1,500 bytes one at a time into the full socket: small
     * sends (copied on the ring) that end short. */
    uint8_t big[1500];
    for (int i = 0; i < 300; i++) {
        memset(big, 'a' + i % 26, sizeof big);
        CHECK(cl_frame(c, 1, DX_OP_BINARY, big, sizeof big, 1) == 0);
        usleep(1000);
    }
    bad = 0;
    for (int i = 0; i < 300 && !bad; i++) {
        p = NULL;
        if (cl_read_msg(c, &p, &n) != DX_OP_BINARY || n != sizeof big) bad = 1;
        for (size_t k = 0; !bad && k < n; k++)
            if (p[k] != 'a' + i % 26) bad = 1;
        free(p);
    }
    CHECK_EQ_INT(bad, 0);
    /* Echoes of 100 KB, large enough to go from the received bytes
     * straight to the socket (dx_conn_send_through), into the full socket,
     * each behind a small echo (so some are queued behind others): every
     * byte in order. */
    size_t bl = 100000;
    uint8_t *bb = malloc(bl);
    REQUIRE(bb);
    for (int i = 0; i < 4; i++) {
        CHECK(send_text(c, "tiny") == 0);
        memset(bb, 'A' + i, bl);
        CHECK(cl_frame(c, 1, DX_OP_BINARY, bb, bl, 1) == 0);
        usleep(i * 20000);
    }
    bad = 0;
    for (int i = 0; i < 4 && !bad; i++) {
        if (!expect_text(c, "tiny")) bad = 1;
        p = NULL;
        if (!bad && (cl_read_msg(c, &p, &n) != DX_OP_BINARY || n != bl)) bad = 2;
        for (size_t k = 0; !bad && k < n; k++)
            if (p[k] != 'A' + i) bad = 3;
        free(p);
    }
    CHECK_EQ_INT(bad, 0);
    /* A small echo and a large one from one read: the large one must not
     * overtake the small one, whose send may still wait on the ring. */
    static const uint8_t key[4] = {9, 8, 7, 6};
    size_t sl = 20000;
    for (int i = 0; i < 20 && !bad; i++) {
        memset(bb, 'a' + i, sl);
        size_t k = dx_t_frame(bb + sl, 1, 0, DX_OP_TEXT, (const uint8_t *)"tiny", 4, key);
        k += dx_t_frame(bb + sl + k, 1, 0, DX_OP_BINARY, bb, sl, key);
        CHECK(dx_t_write_all(c->fd, bb + sl, k) == 0);
        if (!expect_text(c, "tiny")) bad = 1;
        p = NULL;
        if (!bad && (cl_read_msg(c, &p, &n) != DX_OP_BINARY || n != sl || p[0] != 'a' + i)) bad = 2;
        free(p);
    }
    CHECK_EQ_INT(bad, 0);
    /* Forty connections send 100 KB each at once: far more than the
     * ring's receive buffers hold, so receives end for want of buffers
     * and must be armed again in turn. Every echo comes back whole. */
    enum { NB = 40 };
    client *many[NB];
    int opened = 0;
    for (int i = 0; i < NB; i++)
        if ((many[i] = ws_open(sp.port)) != NULL) opened++;
    REQUIRE(opened == NB);
    for (int i = 0; i < NB; i++) {
        memset(bb, 'A' + i % 26, bl);
        CHECK(cl_frame(many[i], 1, DX_OP_BINARY, bb, bl, 1) == 0);
    }
    bad = 0;
    for (int i = 0; i < NB; i++) {
        p = NULL;
        if (cl_read_msg(many[i], &p, &n) != DX_OP_BINARY || n != bl) bad++;
        for (size_t k = 0; p && n == bl && k < n; k++)
            if (p[k] != 'A' + i % 26) {
                bad++;
                break;
            }
        free(p);
        cl_free(many[i]);
    }
    CHECK_EQ_INT(bad, 0);
    free(bb);
    /* Still an echo after that. */
    CHECK(send_text(c, "after") == 0);
    CHECK(expect_text(c, "after"));
    /* A peer that resets while 100,000 messages are being sent to it: the
     * connection ends with 1006 and the server goes on. */
    client *r = ws_open(sp.port);
    REQUIRE(r);
    CHECK(send_text(r, "burst:100000") == 0);
    usleep(20000);
    struct linger lg = {1, 0};
    setsockopt(r->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    cl_free(r);
    char line[128];
    CHECK(wait_event(&sp, "close 1006", line, sizeof line, 5000) == 0);
    CHECK(send_text(c, "still") == 0);
    CHECK(expect_text(c, "still"));
    cl_free(c);
    CHECK_EQ_INT(stop_server(&sp), 0);
}

static void pubsub_broadcast(void) {
    SERVER(sp, NULL);
    client *c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = ws_open(sp.port);
        REQUIRE(c[i]);
    }
    for (int i = 0; i < 3; i++) {
        CHECK(send_text(c[i], "sub:news") == 0);
        CHECK(expect_text(c[i], "subscribed"));
    }
    char line[128];
    CHECK(send_text(c[3], "pub:news:hello subscribers") == 0);
    CHECK(wait_event(&sp, "published", line, sizeof line, 2000) == 0);
    CHECK(!strcmp(line, "published 3"));
    for (int i = 0; i < 3; i++)
        CHECK(expect_text(c[i], "hello subscribers"));
    CHECK(send_text(c[3], "pub:nobody:x") == 0);
    CHECK(wait_event(&sp, "published", line, sizeof line, 2000) == 0);
    CHECK(!strcmp(line, "published 0"));
    CHECK(send_text(c[0], "bcast:to everyone") == 0);
    CHECK(wait_event(&sp, "broadcast", line, sizeof line, 2000) == 0);
    CHECK(!strcmp(line, "broadcast 4"));
    for (int i = 0; i < 4; i++)
        CHECK(expect_text(c[i], "to everyone"));
    /* A subscriber that leaves is unsubscribed. */
    cl_free(c[1]);
    CHECK(wait_event(&sp, "close", NULL, 0, 2000) == 0);
    CHECK(send_text(c[3], "pub:news:again") == 0);
    CHECK(wait_event(&sp, "published", line, sizeof line, 2000) == 0);
    CHECK(!strcmp(line, "published 2"));
    CHECK(expect_text(c[0], "again"));
    CHECK(expect_text(c[2], "again"));
    CHECK(send_text(c[0], "count") == 0);
    CHECK(expect_text(c[0], "count 3"));
    cl_free(c[0]);
    cl_free(c[2]);
    cl_free(c[3]);
    CHECK_EQ_INT(stop_server(&sp), 0);
}

static void frames_with_handshake(void) {
    SERVER(sp, NULL);
    client *c = cl_connect(sp.port);
    REQUIRE(c);
    /* The request and a first frame in one write, the head in two pieces. */
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET /x HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                     "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     KEY);
    CHECK(dx_t_write_all(c->fd, req, 20) == 0);
    usleep(20000);
    uint8_t frame[11] = {0x81, 0x85, 1, 2, 3, 4};
    for (int i = 0; i < 5; i++)
        frame[6 + i] = (uint8_t)("early"[i] ^ frame[2 + (i & 3)]);
    memcpy(req + n, frame, sizeof frame);
    CHECK(dx_t_write_all(c->fd, req + 20, (size_t)n - 20 + sizeof frame) == 0);
    char r[2048];
    CHECK_EQ_INT(cl_http_response(c, r, sizeof r), 101);
    CHECK(expect_text(c, "early"));
    cl_free(c);
    CHECK_EQ_INT(stop_server(&sp), 0);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    alarm(240);
    RUN(echo_sizes);
    RUN(fragments_and_pings);
    RUN(close_echoed);
    RUN(protocol_errors);
    RUN(handshake_errors);
    RUN(http_routes);
    RUN(origin_allow_list);
    RUN(heartbeats);
    RUN(idle_timeout);
    RUN(graceful_shutdown);
    RUN(slow_reader);
    RUN(ring_paths);
    RUN(pubsub_broadcast);
    RUN(frames_with_handshake);
    return TEST_DONE();
}

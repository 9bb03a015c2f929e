/* The HTTP session transport (docs/fallback.md), end to end over loopback:
 * each test forks a server process (its own loop, port 0, sessions on) and
 * talks to it with plain blocking sockets: the open POST, long polls and
 * SSE streams down, POSTs of hand-masked client frames up. The server
 * reports what its callbacks saw on an event pipe ("close 3001 1"), so both
 * ends are checked. Every wait is bounded. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <duplex/loop.h>
#include <duplex/server.h>

#include "server/session.h"
#define SRVPROC_SHUTDOWN_MS 3000
#include "srvproc.h"
#include "test.h"

/* ---- the server process ------------------------------------------------- */

static void app_message(dx_server_conn *c, void *user, enum dx_opcode op, const uint8_t *d,
                        size_t n) {
    char buf[256];
    size_t k = n < sizeof buf - 1 ? n : sizeof buf - 1;
    memcpy(buf, d, k);
    buf[k] = 0;
    if (op == DX_OP_TEXT && starts(d, n, "close:")) {
        char *reason = strchr(buf + 6, ':');
        dx_server_close(c, (unsigned)atoi(buf + 6), reason ? reason + 1 : NULL);
    } else if (op == DX_OP_TEXT && starts(d, n, "buf")) {
        ev("buffered %zu", dx_server_conn_buffered(c));
    } else if (op == DX_OP_TEXT && starts(d, n, "fill:")) {
        /* 1000-byte messages until the policy refuses one. */
        static uint8_t blob[1000];
        int count = atoi(buf + 5), sent = 0, rc = 0;
        for (; sent < count; sent++)
            if ((rc = dx_server_send(c, DX_OP_BINARY, blob, sizeof blob)) != 0) break;
        ev("fill %d %d %zu", sent, rc, dx_server_conn_buffered(c));
    } else if (op == DX_OP_TEXT && starts(d, n, "attached")) {
        /* Whether a down request waits on this session (no timing in the
         * tests: they ask until it does). */
        ev("attached %d", c->sess && c->sess->down != NULL);
    } else if (op == DX_OP_TEXT && starts(d, n, "bcast:")) {
        /* Shared frames, too big to be copied into the queue: one segment
         * each in the retransmit buffer. */
        static uint8_t blob[300];
        int count = atoi(buf + 6), sent = 0;
        for (int i = 0; i < count; i++) {
            memset(blob, 'a' + i % 26, sizeof blob);
            sent +=
                dx_server_broadcast(dx_server_conn_server(c), DX_OP_TEXT, blob, sizeof blob, NULL);
        }
        ev("bcast %d", sent);
    } else if (op == DX_OP_TEXT && starts(d, n, "gauges")) {
        dx_server_stats st = {.size = sizeof st};
        dx_server_stats_get(dx_server_conn_server(c), &st);
        ev("gauges open %llu sessions %llu", (unsigned long long)st.open,
           (unsigned long long)st.sessions_open);
    } else if (op == DX_OP_TEXT && starts(d, n, "remote")) {
        char r[64];
        dx_server_conn_remote(c, r, sizeof r);
        ev("remote %s", r);
    } else {
        ev("msg %d %s", (int)op, op == DX_OP_TEXT ? buf : "-");
        dx_server_send(c, op, d, n);
    }
}

static void app_open(dx_server_conn *c, void *user) {
    ev("open %s", dx_transport_name(dx_server_conn_transport(c)));
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
    ev("upgrade %.*s %.*s %s", (int)u->path_len, u->path, (int)u->query_len,
       u->query ? u->query : "", u->protocol ? u->protocol : "-");
    return 0;
}

static int app_http(dx_server_conn *c, void *user, const dx_http_route *r) {
    ev("http %.*s %.*s", (int)r->method_len, r->method, (int)r->path_len, r->path);
    return 0;
}

static const char *protocols[] = {"chat.v2", "chat.v1", NULL};
static const char *origins[] = {"https://good.example", "https://other.example", NULL};

static void srvproc_config(dx_server_config *cfg) {
    *cfg = (dx_server_config){
        .on_message = app_message,
        .on_open = app_open,
        .on_close = app_close,
        .on_upgrade = app_upgrade,
        .on_http = app_http,
        .protocols = protocols,
        .close_timeout_ms = 2000,
    };
    cfg->sessions.enable = 1;
}

static void srvproc_stopped(dx_server *srv) {
    dx_server_stats st = {.size = sizeof st};
    dx_server_stats_get(srv, &st);
    ev("stats sessions %llu", (unsigned long long)st.sessions_opened);
}

/* ---- HTTP by hand ----------------------------------------------------------- */

typedef struct resp {
    int status;
    char head[2048];
    uint8_t *body;
    size_t body_len;
} resp;

/* Sends a request (head lines after the request line, then `body`). */
/* Writes a request on `fd` (keep-alive unless `close`). */
static int req_write(int fd, const char *method, const char *target, const char *headers,
                     const void *body, size_t body_len, int close_it) {
    char head[2048];
    int n = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: localhost\r\n%s%s", method, target,
                     close_it ? "Connection: close\r\n" : "", headers ? headers : "");
    if (body) n += snprintf(head + n, sizeof head - (size_t)n, "Content-Length: %zu\r\n", body_len);
    n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
    return dx_t_write_all(fd, head, (size_t)n) || (body_len && dx_t_write_all(fd, body, body_len))
               ? -1
               : 0;
}

/* A request on a new connection that asks the server to close it after
 * the answer, which req_finish then reads to its end. */
static int req_send(int port, const char *method, const char *target, const char *headers,
                    const void *body, size_t body_len) {
    int fd = tcp_connect(port);
    if (fd < 0) return -1;
    if (req_write(fd, method, target, headers, body, body_len, 1) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads one answer on a kept connection: its head into `head` and a body
 * of Content-Length bytes into `body` (NUL-terminated; its length in
 * `*blen_out`). Returns the status, -1 on EOF or error. */
static int read_one(int fd, char *head, size_t hcap, char *body, size_t bcap, size_t *blen_out) {
    size_t len = 0;
    char *end = NULL;
    while (!end) {
        if (len + 1 >= hcap) return -1;
        ssize_t k = recv(fd, head + len, hcap - 1 - len, 0);
        if (k <= 0) return -1;
        len += (size_t)k;
        head[len] = 0;
        end = strstr(head, "\r\n\r\n");
    }
    size_t hl = (size_t)(end + 4 - head), blen = 0, have = len - hl;
    const char *cl = strcasestr(head, "\r\nContent-Length:");
    if (cl) blen = (size_t)atoll(cl + 17);
    if (blen + 1 > bcap || have > blen) return -1;
    memcpy(body, head + hl, have);
    while (have < blen) {
        ssize_t k = recv(fd, body + have, blen - have, 0);
        if (k <= 0) return -1;
        have += (size_t)k;
    }
    body[blen] = 0;
    head[hl] = 0;
    *blen_out = blen;
    return atoi(head + 9);
}

static void resp_free(resp *r) {
    free(r->body);
    r->body = NULL;
}

/* Reads the whole answer (the server closes after it). Returns the status. */
static int req_finish(int fd, resp *r) {
    memset(r, 0, sizeof *r);
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (len == cap) buf = realloc(buf, cap *= 2);
        ssize_t k = recv(fd, buf + len, cap - len, 0);
        if (k <= 0) break;
        len += (size_t)k;
    }
    close(fd);
    uint8_t *end = NULL;
    for (size_t i = 0; i + 4 <= len; i++)
        if (!memcmp(buf + i, "\r\n\r\n", 4)) {
            end = buf + i + 4;
            break;
        }
    if (!end) {
        free(buf);
        return r->status = -1;
    }
    size_t hl = (size_t)(end - buf);
    size_t k = hl < sizeof r->head - 1 ? hl : sizeof r->head - 1;
    memcpy(r->head, buf, k);
    r->head[k] = 0;
    r->body_len = len - hl;
    r->body = malloc(r->body_len + 1);
    memcpy(r->body, end, r->body_len);
    r->body[r->body_len] = 0;
    free(buf);
    r->status = atoi(r->head + 9);
    return r->status;
}

static int req(int port, const char *method, const char *target, const char *headers,
               const void *body, size_t body_len, resp *r) {
    int fd = req_send(port, method, target, headers, body, body_len);
    if (fd < 0) return -1;
    return req_finish(fd, r);
}

/* A header's value as a number (-1 when absent). */
static long long header_num(const resp *r, const char *name) {
    char pat[64];
    snprintf(pat, sizeof pat, "\r\n%s:", name);
    const char *p = strcasestr(r->head, pat);
    return p ? atoll(p + strlen(pat)) : -1;
}

static int has_header(const resp *r, const char *line) {
    return strcasestr(r->head, line) != NULL;
}

/* ---- a session from the client's side ------------------------------------------ */

/* Down bytes received and not yet parsed into frames (one session at a
 * time, and messages up to 1.5 MiB). */
static uint8_t pend_store[3 << 20];

typedef struct sess {
    int port;
    char sid[33];
    uint64_t up;   /* next up offset */
    uint64_t recv; /* down bytes received */
    uint64_t ack;  /* what the next request acknowledges (recv, unless a test says) */
    uint8_t *pend;
    size_t pend_len;
} sess;

static int sess_open(sess *s, int port, const char *target, const char *headers, resp *out) {
    memset(s, 0, sizeof *s);
    s->port = port;
    s->pend = pend_store;
    char h[512];
    snprintf(h, sizeof h, "X-Duplex-Session: 1\r\n%s", headers ? headers : "");
    resp r;
    int st = req(port, "POST", target, h, "", 0, &r);
    if (st == 200) {
        const char *p = strstr((char *)r.body, "\"sid\":\"");
        if (p) memcpy(s->sid, p + 7, 32);
    }
    if (out)
        *out = r;
    else
        resp_free(&r);
    return st;
}

/* POSTs `len` up bytes at offset `seq`; returns the status. */
static int sess_up_at(sess *s, uint64_t seq, const void *data, size_t len, const char *headers,
                      resp *out) {
    char t[160];
    snprintf(t, sizeof t, "/.duplex/%s/up?seq=%llu&ack=%llu", s->sid, (unsigned long long)seq,
             (unsigned long long)s->ack);
    resp r;
    int st = req(s->port, "POST", t, headers, data ? data : "", len, &r);
    if (out)
        *out = r;
    else
        resp_free(&r);
    return st;
}

static int sess_frame(sess *s, int op, const void *p, size_t n) {
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    uint8_t *f = malloc(n + 14);
    if (n > (1 << 20) - 14) { /* over two POSTs, the way a client cuts its bytes */
        size_t len = dx_t_frame(f, 1, 0, op, p, n, key), half = 1 << 20;
        int st = sess_up_at(s, s->up, f, half, NULL, NULL);
        if (st == 204) st = sess_up_at(s, s->up + half, f + half, len - half, NULL, NULL);
        if (st == 204) s->up += len;
        free(f);
        return st;
    }
    size_t len = dx_t_frame(f, 1, 0, op, p, n, key);
    int st = sess_up_at(s, s->up, f, len, NULL, NULL);
    if (st == 204) s->up += len;
    free(f);
    return st;
}

static int sess_text(sess *s, const char *t) {
    return sess_frame(s, DX_OP_TEXT, t, strlen(t));
}

static void target_down(sess *s, const char *mode, char *t, size_t cap) {
    snprintf(t, cap, "/.duplex/%s/down?ack=%llu&mode=%s", s->sid, (unsigned long long)s->ack, mode);
}

/* Starts a poll (answered later): the socket. */
static int sess_poll_start(sess *s, const char *headers) {
    char t[160];
    target_down(s, "poll", t, sizeof t);
    return req_send(s->port, "GET", t, headers, NULL, 0);
}

/* A poll's answer: its bytes join the unparsed ones. */
static int sess_poll_finish(sess *s, int fd, resp *out) {
    resp r;
    int st = req_finish(fd, &r);
    if (st == 200) {
        CHECK_EQ_INT(header_num(&r, "X-Duplex-Offset"), (long long)s->recv);
        CHECK(has_header(&r, "Cache-Control: no-store"));
        memcpy(s->pend + s->pend_len, r.body, r.body_len);
        s->pend_len += r.body_len;
        s->recv += r.body_len;
        s->ack = s->recv;
    }
    if (out)
        *out = r;
    else
        resp_free(&r);
    return st;
}

static int sess_poll(sess *s) {
    int fd = sess_poll_start(s, NULL);
    return fd < 0 ? -1 : sess_poll_finish(s, fd, NULL);
}

/* Parses one server frame from the pending bytes: its opcode (0x80 when
 * fin), -1 when incomplete. */
static int sess_next_frame(sess *s, uint8_t *payload, size_t *n) {
    if (s->pend_len < 2) return -1;
    uint8_t *b = s->pend;
    size_t hl = 2;
    uint64_t len = b[1] & 0x7f;
    if (b[1] & 0x80) return -2; /* servers never mask */
    if (len == 126) {
        if (s->pend_len < 4) return -1;
        len = (uint64_t)b[2] << 8 | b[3];
        hl = 4;
    } else if (len == 127) {
        if (s->pend_len < 10) return -1;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | b[2 + i];
        hl = 10;
    }
    if (s->pend_len < hl + len) return -1;
    if (payload) memcpy(payload, b + hl, (size_t)len);
    if (n) *n = (size_t)len;
    int op = b[0] & 0x8f;
    memmove(s->pend, b + hl + len, s->pend_len - hl - (size_t)len);
    s->pend_len -= hl + (size_t)len;
    return op;
}

/* Polls until a frame is complete; returns it as sess_next_frame. */
static int sess_read_frame(sess *s, uint8_t *payload, size_t *n) {
    for (int i = 0; i < 20; i++) {
        int op = sess_next_frame(s, payload, n);
        if (op != -1) return op;
        if (sess_poll(s) != 200) return -3;
    }
    return -4;
}

/* Asks until the server has the down request started on `fd` attached. */
static int wait_attached(server_proc *sp, sess *s) {
    char line[64];
    for (int i = 0; i < 200; i++) {
        if (sess_text(s, "attached") != 204 || wait_event(sp, "attached", line, sizeof line, 3000))
            return -1;
        if (!strcmp(line, "attached 1")) return 0;
        usleep(5000);
    }
    return -1;
}

static int expect_msg(sess *s, int op_want, const char *want, size_t want_len) {
    static uint8_t p[2 << 20];
    size_t n = 0;
    int op = sess_read_frame(s, p, &n);
    int ok = op == (0x80 | op_want) && n == want_len && !memcmp(p, want, n);
    if (!ok)
        fprintf(stderr, "  wanted op %d '%.*s', got op %d (%zu bytes)\n", op_want, (int)want_len,
                want, op, n);
    return ok;
}

/* ---- tests ---------------------------------------------------------------- */

/* Open, then a text and a binary message up and back down by polls. */
static void open_up_poll(void) {
    SERVER(sp, NULL);
    sess s;
    resp r;
    char line[256];
    CHECK_EQ_INT(
        sess_open(&s, sp.port, "/chat?token=T", "X-Duplex-Protocol: chat.v1, chat.v2\r\n", &r),
        200);
    CHECK(has_header(&r, "Content-Type: application/json"));
    CHECK(has_header(&r, "Cache-Control: no-store"));
    CHECK(strstr((char *)r.body, "\"protocol\":\"chat.v2\"") != NULL);
    CHECK(strstr((char *)r.body, "\"idle\":30000") != NULL);
    CHECK(strstr((char *)r.body, "\"poll\":25000") != NULL);
    CHECK_EQ_INT(strlen(s.sid), 32);
    resp_free(&r);
    CHECK(wait_event(&sp, "upgrade", line, sizeof line, 3000) == 0);
    CHECK(strcmp(line, "upgrade /chat token=T chat.v2") == 0);
    CHECK(wait_event(&sp, "open", line, sizeof line, 3000) == 0);
    CHECK(strcmp(line, "open http") == 0);

    CHECK_EQ_INT(sess_text(&s, "hello"), 204);
    CHECK(wait_event(&sp, "msg", line, sizeof line, 3000) == 0);
    CHECK(strcmp(line, "msg 1 hello") == 0);
    CHECK(expect_msg(&s, DX_OP_TEXT, "hello", 5));

    uint8_t bin[300];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (uint8_t)(i * 7);
    CHECK_EQ_INT(sess_frame(&s, DX_OP_BINARY, bin, sizeof bin), 204);
    CHECK(wait_event(&sp, "msg 2", NULL, 0, 3000) == 0);
    CHECK(expect_msg(&s, DX_OP_BINARY, (const char *)bin, sizeof bin));

    CHECK_EQ_INT(sess_text(&s, "remote"), 204);
    CHECK(wait_event(&sp, "remote 127.0.0.1:", NULL, 0, 3000) == 0);

    /* The client closes: the server answers with its close frame. */
    uint8_t cp[] = {0x03, 0xe8, 'b', 'y', 'e'};
    CHECK_EQ_INT(sess_frame(&s, DX_OP_CLOSE, cp, sizeof cp), 204);
    CHECK(wait_event(&sp, "close", line, sizeof line, 3000) == 0);
    CHECK(strcmp(line, "close 1000 1 bye") == 0);
    uint8_t p[128];
    size_t n;
    CHECK_EQ_INT(sess_read_frame(&s, p, &n), 0x80 | DX_OP_CLOSE);
    /* Acknowledged: the session is gone. */
    CHECK_EQ_INT(sess_poll(&s), 404);
    CHECK_EQ_INT(stop_server(&sp), 0);
}

/* A retried POST is delivered once; one past a gap is refused (409) until
 * the gap is sent. */
static void dup_and_reorder(void) {
    SERVER(sp, NULL);
    sess s;
    char line[256];
    REQUIRE(sess_open(&s, sp.port, "/", NULL, NULL) == 200);
    static const uint8_t key[4] = {1, 2, 3, 4};
    uint8_t a[64], b[64], c[64];
    size_t al = dx_t_frame(a, 1, 0, DX_OP_TEXT, "first", 5, key);
    size_t bl = dx_t_frame(b, 1, 0, DX_OP_TEXT, "second", 6, key);
    size_t cl = dx_t_frame(c, 1, 0, DX_OP_TEXT, "third", 5, key);
    resp r;
    CHECK_EQ_INT(sess_up_at(&s, 0, a, al, NULL, &r), 204);
    CHECK_EQ_INT(header_num(&r, "X-Duplex-Seq"), (long long)al);
    resp_free(&r);
    CHECK_EQ_INT(sess_up_at(&s, 0, a, al, NULL, &r), 204); /* the retry */
    CHECK_EQ_INT(header_num(&r, "X-Duplex-Seq"), (long long)al);
    resp_free(&r);
    /* "third" before "second": a gap. */
    CHECK_EQ_INT(sess_up_at(&s, al + bl, c, cl, NULL, &r), 409);
    CHECK_EQ_INT(header_num(&r, "X-Duplex-Seq"), (long long)al);
    resp_free(&r);
    /* A retry overlapping what was fed: only the new part counts. */
    uint8_t ab[128];
    memcpy(ab, a, al);
    memcpy(ab + al, b, bl);
    CHECK_EQ_INT(sess_up_at(&s, 0, ab, al + bl, NULL, &r), 204);
    CHECK_EQ_INT(header_num(&r, "X-Duplex-Seq"), (long long)(al + bl));
    resp_free(&r);
    CHECK_EQ_INT(sess_up_at(&s, al + bl, c, cl, NULL, NULL), 204);
    CHECK(wait_event(&sp, "msg", line, sizeof line, 3000) == 0);
    CHECK(strcmp(line, "msg 1 first") == 0);
    CHECK(wait_event(&sp, "msg", line, sizeof line, 3000) == 0);
    CHECK(strcmp(line, "msg 1 second") == 0);
    CHECK(wait_event(&sp, "msg", line, sizeof line, 3000) == 0);
    CHECK(strcmp(line, "msg 1 third") == 0);
    CHECK(expect_msg(&s, DX_OP_TEXT, "first", 5));
    CHECK(expect_msg(&s, DX_OP_TEXT, "second", 6));
    CHECK(expect_msg(&s, DX_OP_TEXT, "third", 5));
    CHECK_EQ_INT(stop_server(&sp), 0);
}

/* A poll waiting while the server closes is answered with the close frame;
 * the client's answer completes the handshake. */
static void poll_races_close(void) {
    SERVER(sp, NULL);
    sess s;
    char line[256];
    REQUIRE(sess_open(&s, sp.port, "/", NULL, NULL) == 200);
    int fd = sess_poll_start(&s, NULL);
    REQUIRE(fd >= 0);
    CHECK(wait_attached(&sp, &s) == 0); /* the poll waits, then the close */
    CHECK_EQ_INT(sess_text(&s, "close:3001:done"), 204);
    CHECK_EQ_INT(sess_poll_finish(&s, fd, NULL), 200);
    uint8_t p[128];
    size_t n = 0;
    CHECK_EQ_INT(sess_next_frame(&s, p, &n), 0x80 | DX_OP_CLOSE);
    CHECK(n == 6 && p[0] == 0x0b && p[1] == 0xb9 && !memcmp(p + 2, "done", 4));
    uint8_t cp[] = {0x0b, 0xb9};
    CHECK_EQ_INT(sess_frame(&s, DX_OP_CLOSE, cp, 2), 204); /* acks the close too */
    CHECK(wait_event(&sp, "close", line, sizeof line, 3000) == 0);
    CHECK(strcmp(line, "close 3001 1 ") == 0);
    CHECK_EQ_INT(sess_poll(&s), 404);
    CHECK_EQ_INT(stop_server(&sp), 0);
}

/* Down bytes count as buffered until acknowledged; an ack releases them,
 * and an ack past what was sent, or below what was released, is refused. */
static void ack_releases(void) {
    SERVER(sp, NULL);
    sess s;
    char line[256];
    REQUIRE(sess_open(&s, sp.port, "/", NULL, NULL) == 200);
    CHECK_EQ_INT(sess_text(&s, "fill:3"), 204);
    CHECK(wait_event(&sp, "fill", line, sizeof line, 3000) == 0);
    CHECK(strcmp(line, "fill 3 0 3012") == 0); /* 3 x (4-byte head + 1000) */
    CHECK_EQ_INT(sess_poll(&s), 200);          /* sent, not acknowledged */
    CHECK_EQ_INT(s.pend_len, 3012);
    s.ack = 0;
    CHECK_EQ_INT(sess_text(&s, "buf"), 204);
    CHECK(wait_event(&sp, "buffered", line, sizeof line, 3000) == 0);
    CHECK(strcmp(line, "buffered 3012") == 0);
    /* An ack past what was sent. */
    char t[160];
    snprintf(t, sizeof t, "/.duplex/%s/down?ack=999999&mode=poll", s.sid);
    resp r;
    CHECK_EQ_INT(req(sp.port, "GET", t, NULL, NULL, 0, &r), 400);
    resp_free(&r);
    /* Two frames acknowledged, by a pure ack (an empty up body). */
    s.ack = 2008;
    CHECK_EQ_INT(sess_up_at(&s, s.up, NULL, 0, NULL, NULL), 204);
    CHECK_EQ_INT(sess_text(&s, "buf"), 204);
    CHECK(wait_event(&sp, "buffered", line, sizeof line, 3000) == 0);
    CHECK(strcmp(line, "buffered 1004") == 0);
    /* An ack below what was released: 409 on a down request. */
    snprintf(t, sizeof t, "/.duplex/%s/down?ack=0&mode=poll", s.sid);
    CHECK_EQ_INT(req(sp.port, "GET", t, NULL, NULL, 0, &r), 409);
    resp_free(&r);
    /* The rest comes again from the ack (as for a client that lost it). */
    snprintf(t, sizeof t, "/.duplex/%s/down?ack=2008&mode=poll", s.sid);
    CHECK_EQ_INT(req(sp.port, "GET", t, NULL, NULL, 0, &r), 200);
    CHECK_EQ_INT(header_num(&r, "X-Duplex-Offset"), 2008);
    CHECK_EQ_INT(r.body_len, 1004);
    resp_free(&r);
    CHECK_EQ_INT(stop_server(&sp), 0);
}

static void cfg_idle(dx_server_config *cfg) {
    cfg->sessions.idle_ms = 200;
    cfg->sessions.poll_ms = 600;
}

/* A session without any request for idle_ms is dropped: 1006. */
static void expiry(void) {
    SERVER(sp, cfg_idle);
    sess s;
    char line[256];
    resp r;
    REQUIRE(sess_open(&s, sp.port, "/", NULL, &r) == 200);
    CHECK(strstr((char *)r.body, "\"idle\":200") != NULL);
    CHECK(strstr((char *)r.body, "\"poll\":600") != NULL);
    resp_free(&r);
    CHECK(wait_event(&sp, "open", NULL, 0, 3000) == 0);
    /* A poll in progress counts as a request: held past idle_ms, then
     * answered empty, and the session is still there. */
    int fd = sess_poll_start(&s, NULL);
    CHECK_EQ_INT(sess_poll_finish(&s, fd, &r), 200);
    CHECK_EQ_INT(r.body_len, 0);
    resp_free(&r);
    CHECK(!saw_event(&sp, "close", 0));
    CHECK(wait_event(&sp, "close", line, sizeof line, 5000) == 0);
    CHECK(strcmp(line, "close 1006 0 ") == 0);
    CHECK_EQ_INT(sess_poll(&s), 404);
    CHECK_EQ_INT(stop_server(&sp), 0);
}

static void cfg_origins(dx_server_config *cfg) {
    cfg->origins = origins;
}

/* The Origin checks: at the open (the allow-list) and after (the open
 * request's); unknown sessions and paths. */
static void origins_and_unknown(void) {
    SERVER(sp, cfg_origins);
    sess s;
    resp r;
    CHECK_EQ_INT(sess_open(&s, sp.port, "/", "Origin: https://evil.example\r\n", &r), 403);
    CHECK(has_header(&r, "Cache-Control: no-store"));
    resp_free(&r);
    CHECK_EQ_INT(sess_open(&s, sp.port, "/?reject", NULL, NULL), 401);
    REQUIRE(sess_open(&s, sp.port, "/", "Origin: https://good.example\r\n", NULL) == 200);
    int fd = sess_poll_start(&s, "Origin: https://other.example\r\n");
    CHECK_EQ_INT(req_finish(fd, &r), 403);
    resp_free(&r);
    CHECK_EQ_INT(sess_up_at(&s, 0, NULL, 0, "Origin: https://other.example\r\n", NULL), 403);
    CHECK_EQ_INT(sess_up_at(&s, 0, NULL, 0, "Origin: https://good.example\r\n", NULL), 204);
    CHECK_EQ_INT(sess_text(&s, "hi"), 204); /* no Origin (same-origin GET/POST) */
    CHECK(expect_msg(&s, DX_OP_TEXT, "hi", 2));
    /* Unknown session, malformed paths, wrong methods. */
    CHECK_EQ_INT(req(sp.port, "GET",
                     "/.duplex/0123456789abcdef0123456789abcdef/down?ack=0&mode=poll", NULL, NULL,
                     0, &r),
                 404);
    resp_free(&r);
    CHECK_EQ_INT(req(sp.port, "GET", "/.duplex/nope", NULL, NULL, 0, &r), 404);
    resp_free(&r);
    char t[160];
    snprintf(t, sizeof t, "/.duplex/%s/down?ack=0&mode=poll", s.sid);
    CHECK_EQ_INT(req(sp.port, "POST", t, NULL, "", 0, &r), 405);
    resp_free(&r);
    snprintf(t, sizeof t, "/.duplex/%s/down?ack=0&mode=wat", s.sid);
    CHECK_EQ_INT(req(sp.port, "GET", t, NULL, NULL, 0, &r), 400);
    resp_free(&r);
    /* An up request without Content-Length, and one over 1 MiB. */
    snprintf(t, sizeof t, "/.duplex/%s/up?seq=0", s.sid);
    CHECK_EQ_INT(req(sp.port, "POST", t, NULL, NULL, 0, &r), 411);
    resp_free(&r);
    CHECK_EQ_INT(req(sp.port, "POST", t, "Content-Length: 1048577\r\n", NULL, 0, &r), 413);
    resp_free(&r);
    /* /.duplex/ is never given to on_http. */
    CHECK(!saw_event(&sp, "http", 200));
    CHECK_EQ_INT(stop_server(&sp), 0);
}

/* Pages of another origin (CORS): the open's preflight is answered for an
 * allowed origin only and only when it asks about X-Duplex-Session; every
 * answer to that origin's requests (the open, up, polls, SSE heads and
 * errors) echoes it and exposes the offset headers; same-origin requests
 * (no Origin) get no CORS lines. */
static void cors(void) {
    SERVER(sp, cfg_origins);
    static const char *const aco = "Access-Control-Allow-Origin: https://good.example\r\n";
    static const char *const pre =
        "Origin: https://good.example\r\n"
        "Access-Control-Request-Method: POST\r\n"
        "Access-Control-Request-Headers: content-type, x-duplex-session\r\n";
    resp r;
    CHECK_EQ_INT(req(sp.port, "OPTIONS", "/chat?x=1", pre, NULL, 0, &r), 204);
    CHECK(has_header(&r, aco));
    CHECK(has_header(&r, "Access-Control-Allow-Headers: X-Duplex-Session, X-Duplex-Protocol"));
    CHECK(has_header(&r, "Access-Control-Allow-Methods: POST"));
    CHECK(has_header(&r, "Access-Control-Max-Age: 600"));
    CHECK(!has_header(&r, "Access-Control-Allow-Credentials"));
    resp_free(&r);
    /* An origin not on the list: 403 without CORS lines (the browser then
     * refuses the open: the page learns nothing). */
    CHECK_EQ_INT(req(sp.port, "OPTIONS", "/chat",
                     "Origin: https://evil.example\r\nAccess-Control-Request-Method: POST\r\n"
                     "Access-Control-Request-Headers: x-duplex-session\r\n",
                     NULL, 0, &r),
                 403);
    CHECK(!has_header(&r, "Access-Control-Allow-Origin"));
    resp_free(&r);
    /* A preflight about something else is the application's (on_http). */
    CHECK_EQ_INT(req(sp.port, "OPTIONS", "/chat",
                     "Origin: https://good.example\r\nAccess-Control-Request-Method: PUT\r\n", NULL,
                     0, &r),
                 404);
    CHECK(!has_header(&r, "Access-Control-Allow-Origin"));
    resp_free(&r);
    CHECK(saw_event(&sp, "http OPTIONS /chat", 2000));

    sess s;
    REQUIRE(sess_open(&s, sp.port, "/", "Origin: https://good.example\r\n", &r) == 200);
    CHECK(has_header(&r, aco));
    CHECK(has_header(&r, "Access-Control-Expose-Headers: X-Duplex-Offset, X-Duplex-Seq"));
    CHECK(has_header(&r, "Vary: Origin"));
    resp_free(&r);
    /* up: 204 and a 409 gap both readable by the page. */
    CHECK_EQ_INT(sess_up_at(&s, 0, NULL, 0, "Origin: https://good.example\r\n", &r), 204);
    CHECK(has_header(&r, aco));
    CHECK_EQ_INT(header_num(&r, "X-Duplex-Seq"), 0);
    resp_free(&r);
    CHECK_EQ_INT(sess_up_at(&s, 5, "x", 1, "Origin: https://good.example\r\n", &r), 409);
    CHECK(has_header(&r, aco));
    CHECK_EQ_INT(header_num(&r, "X-Duplex-Seq"), 0);
    resp_free(&r);
    /* A message, then a poll from the page's origin: answered later (the
     * session's down bytes), with the CORS lines. */
    CHECK_EQ_INT(sess_text(&s, "hi"), 204);
    int fd = sess_poll_start(&s, "Origin: https://good.example\r\n");
    CHECK_EQ_INT(sess_poll_finish(&s, fd, &r), 200);
    CHECK(has_header(&r, aco));
    resp_free(&r);
    uint8_t pl[16];
    size_t n = 0;
    CHECK(sess_next_frame(&s, pl, &n) == (0x80 | DX_OP_TEXT) && n == 2 && !memcmp(pl, "hi", 2));
    /* A same-origin poll (no Origin): no CORS lines. */
    fd = sess_poll_start(&s, NULL);
    CHECK_EQ_INT(sess_text(&s, "again"), 204);
    CHECK_EQ_INT(sess_poll_finish(&s, fd, &r), 200);
    CHECK(!has_header(&r, "Access-Control-Allow-Origin"));
    resp_free(&r);
    /* An SSE stream's head. */
    char t[160];
    target_down(&s, "stream", t, sizeof t);
    fd = req_send(sp.port, "GET", t, "Origin: https://good.example\r\n", NULL, 0);
    char head[2048] = "";
    size_t hl = 0;
    while (hl < sizeof head - 1 && !strstr(head, "\r\n\r\n")) {
        ssize_t k = recv(fd, head + hl, sizeof head - 1 - hl, 0);
        if (k <= 0) break;
        hl += (size_t)k;
        head[hl] = 0;
    }
    CHECK(strstr(head, "text/event-stream") != NULL && strstr(head, aco) != NULL);
    close(fd);
    /* A request of an unknown session from that origin: 404, readable. */
    CHECK_EQ_INT(req(sp.port, "GET",
                     "/.duplex/0123456789abcdef0123456789abcdef/down?ack=0&mode=poll",
                     "Origin: https://good.example\r\n", NULL, 0, &r),
                 404);
    CHECK(has_header(&r, aco));
    resp_free(&r);
    /* An origin with a comma or a control byte is not echoed. */
    CHECK_EQ_INT(req(sp.port, "GET", "/.duplex/nope", "Origin: https://a.example, https://b\r\n",
                     NULL, 0, &r),
                 404);
    CHECK(!has_header(&r, "Access-Control-Allow-Origin"));
    resp_free(&r);
    CHECK_EQ_INT(stop_server(&sp), 0);
}

static void cfg_off(dx_server_config *cfg) {
    cfg->sessions.enable = 0;
}

/* Sessions off: the open POST is a plain request (on_http, then 404). */
static void disabled(void) {
    SERVER(sp, cfg_off);
    sess s;
    char line[256];
    CHECK_EQ_INT(sess_open(&s, sp.port, "/chat", NULL, NULL), 404);
    CHECK(wait_event(&sp, "http", line, sizeof line, 3000) == 0);
    CHECK(strcmp(line, "http POST /chat") == 0);
    resp r;
    CHECK_EQ_INT(req(sp.port, "GET", "/.duplex/x/down", NULL, NULL, 0, &r), 404);
    resp_free(&r);
    CHECK(wait_event(&sp, "http GET /.duplex/x/down", NULL, 0, 3000) == 0);
    CHECK(!saw_event(&sp, "open", 100));
    CHECK_EQ_INT(stop_server(&sp), 0);
}

static void cfg_small(dx_server_config *cfg) {
    cfg->max_buffered = 8192;
    cfg->low_water = 1024;
    cfg->backpressure = DX_BACKPRESSURE_DROP;
}

/* max_buffered counts the bytes the client has not acknowledged. */
static void backpressure(void) {
    SERVER(sp, cfg_small);
    sess s;
    char line[256];
    REQUIRE(sess_open(&s, sp.port, "/", NULL, NULL) == 200);
    CHECK_EQ_INT(sess_text(&s, "fill:100"), 204);
    CHECK(wait_event(&sp, "fill", line, sizeof line, 3000) == 0);
    CHECK(strcmp(line, "fill 9 -6 9036") == 0 || strncmp(line, "fill 9 ", 7) == 0);
    /* Sent on a poll but not acknowledged: still refused. */
    CHECK_EQ_INT(sess_poll(&s), 200);
    s.ack = 0;
    CHECK_EQ_INT(sess_text(&s, "fill:1"), 204);
    CHECK(wait_event(&sp, "fill", line, sizeof line, 3000) == 0);
    CHECK(strncmp(line, "fill 0 ", 7) == 0);
    /* Acknowledged: room again. */
    s.ack = s.recv;
    CHECK_EQ_INT(sess_text(&s, "fill:1"), 204); /* carries the ack */
    CHECK(wait_event(&sp, "fill", line, sizeof line, 3000) == 0);
    CHECK(strcmp(line, "fill 1 0 1004") == 0);
    CHECK_EQ_INT(stop_server(&sp), 0);
}

static size_t b64_decode(const char *in, size_t n, uint8_t *out) {
    static const char *A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint32_t acc = 0;
    int bits = 0;
    size_t k = 0;
    for (size_t i = 0; i < n && in[i] != '='; i++) {
        const char *p = strchr(A, in[i]);
        if (!p || !in[i]) break;
        acc = acc << 6 | (uint32_t)(p - A);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[k++] = (uint8_t)(acc >> bits);
        }
    }
    return k;
}

/* Reads from a stream socket until one whole SSE event ("data: ...\n\n",
 * comments skipped) is in `buf`; decodes it into the session's pending
 * bytes. Returns 0, -1 on EOF/timeout. */
static int sse_event(sess *s, int fd, char *buf, size_t *len, size_t cap) {
    for (;;) {
        char *end = memmem(buf, *len, "\n\n", 2);
        if (end) {
            size_t ev_len = (size_t)(end - buf) + 2;
            int ok = 0;
            if (!strncmp(buf, "data: ", 6)) {
                size_t k = b64_decode(buf + 6, ev_len - 8, s->pend + s->pend_len);
                s->pend_len += k;
                s->recv += k;
                s->ack = s->recv;
                ok = 1;
            }
            memmove(buf, buf + ev_len, *len - ev_len);
            *len -= ev_len;
            if (ok) return 0;
            continue;
        }
        ssize_t k = recv(fd, buf + *len, cap - *len, 0);
        if (k <= 0) return -1;
        *len += (size_t)k;
    }
}

/* SSE: base64 data events that decode to the frames. */
static void sse_stream(void) {
    SERVER(sp, NULL);
    sess s;
    REQUIRE(sess_open(&s, sp.port, "/", NULL, NULL) == 200);
    CHECK_EQ_INT(sess_text(&s, "one"), 204);
    char t[160];
    target_down(&s, "stream", t, sizeof t);
    int fd = req_send(sp.port, "GET", t, NULL, NULL, 0);
    REQUIRE(fd >= 0);
    /* The head, then the events. */
    char buf[16384];
    size_t len = 0;
    char *end = NULL;
    while (!end) {
        ssize_t k = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (k <= 0) break;
        len += (size_t)k;
        buf[len] = 0;
        end = strstr(buf, "\r\n\r\n");
    }
    REQUIRE(end != NULL);
    *end = 0;
    CHECK(strncmp(buf, "HTTP/1.1 200", 12) == 0);
    CHECK(strcasestr(buf, "Content-Type: text/event-stream") != NULL);
    CHECK(strcasestr(buf, "X-Accel-Buffering: no") != NULL);
    CHECK(strcasestr(buf, "Cache-Control: no-store") != NULL);
    CHECK(strcasestr(buf, "X-Duplex-Offset: 0") != NULL);
    size_t hl = (size_t)(end + 4 - buf);
    memmove(buf, buf + hl, len - hl);
    len -= hl;
    CHECK_EQ_INT(sse_event(&s, fd, buf, &len, sizeof buf), 0);
    uint8_t p[256];
    size_t n = 0;
    CHECK_EQ_INT(sess_next_frame(&s, p, &n), 0x80 | DX_OP_TEXT);
    CHECK(n == 3 && !memcmp(p, "one", 3));
    /* Later messages come on the same stream. */
    CHECK_EQ_INT(sess_text(&s, "two"), 204);
    CHECK_EQ_INT(sse_event(&s, fd, buf, &len, sizeof buf), 0);
    CHECK_EQ_INT(sess_next_frame(&s, p, &n), 0x80 | DX_OP_TEXT);
    CHECK(n == 3 && !memcmp(p, "two", 3));
    /* A new down request ends this one. */
    int fd2 = sess_poll_start(&s, NULL);
    char tmp[256];
    while (recv(fd, tmp, sizeof tmp, 0) > 0) {
    }
    close(fd);
    CHECK_EQ_INT(sess_text(&s, "three"), 204);
    CHECK_EQ_INT(sess_poll_finish(&s, fd2, NULL), 200);
    CHECK_EQ_INT(sess_next_frame(&s, p, &n), 0x80 | DX_OP_TEXT);
    CHECK(n == 5 && !memcmp(p, "three", 5));
    CHECK_EQ_INT(stop_server(&sp), 0);
}

/* Reads the head of a stream answer; the bytes after it stay in `buf`.
 * Returns the X-Duplex-Offset, or -1. */
static long long sse_head(int fd, char *buf, size_t *len, size_t cap) {
    char *end = NULL;
    *len = 0;
    while (!end) {
        ssize_t k = recv(fd, buf + *len, cap - 1 - *len, 0);
        if (k <= 0) return -1;
        *len += (size_t)k;
        buf[*len] = 0;
        end = strstr(buf, "\r\n\r\n");
    }
    const char *o = strcasestr(buf, "X-Duplex-Offset:");
    long long off = o && o < end ? atoll(o + 16) : -1;
    size_t hl = (size_t)(end + 4 - buf);
    memmove(buf, buf + hl, *len - hl);
    *len -= hl;
    return off;
}

/* Messages over the 1 MiB of an up body, a poll answer and a stream: up in
 * two POSTs, down in two polls, then in two streams. */
static void large_messages(void) {
    SERVER(sp, NULL);
    sess s;
    REQUIRE(sess_open(&s, sp.port, "/", NULL, NULL) == 200);
    size_t big = (3u << 20) / 2;
    uint8_t *m = malloc(big);
    for (size_t i = 0; i < big; i++)
        m[i] = (uint8_t)(i * 31 + (i >> 12));
    CHECK_EQ_INT(sess_frame(&s, DX_OP_BINARY, m, big), 204);
    CHECK(wait_event(&sp, "msg 2", NULL, 0, 5000) == 0);
    CHECK_EQ_INT(sess_poll(&s), 200);
    CHECK_EQ_INT(s.recv, 1 << 20); /* a poll answer holds 1 MiB at most */
    CHECK(expect_msg(&s, DX_OP_BINARY, (const char *)m, big));
    /* Again, by streams: the first ends after 1 MiB, the next goes on. */
    CHECK_EQ_INT(sess_frame(&s, DX_OP_BINARY, m, big), 204);
    size_t cap = 1 << 18, len;
    char *buf = malloc(cap);
    uint64_t start = s.recv;
    for (int i = 0; i < 2; i++) {
        char t[160];
        target_down(&s, "stream", t, sizeof t);
        int fd = req_send(sp.port, "GET", t, NULL, NULL, 0);
        CHECK_EQ_INT(sse_head(fd, buf, &len, cap), (long long)s.recv);
        while (s.recv - start < 10 + big && sse_event(&s, fd, buf, &len, cap) == 0) {
        }
        if (i == 0) CHECK_EQ_INT(s.recv - start, 1 << 20);
        close(fd);
    }
    CHECK(expect_msg(&s, DX_OP_BINARY, (const char *)m, big));
    free(buf);
    free(m);
    CHECK_EQ_INT(stop_server(&sp), 0);
}

/* Many shared frames (a segment each) in the retransmit buffer: those
 * after what a stream sent are found past the unacknowledged ones. */
static void shared_frames(void) {
    SERVER(sp, NULL);
    sess s;
    char line[64];
    REQUIRE(sess_open(&s, sp.port, "/", NULL, NULL) == 200);
    char t[160];
    target_down(&s, "stream", t, sizeof t);
    int fd = req_send(sp.port, "GET", t, NULL, NULL, 0);
    size_t cap = 1 << 18, len;
    char *buf = malloc(cap);
    CHECK_EQ_INT(sse_head(fd, buf, &len, cap), 0);
    for (int round = 0; round < 2; round++) {
        s.ack = 0; /* nothing acknowledged: all of it stays buffered */
        CHECK_EQ_INT(sess_text(&s, "bcast:100"), 204);
        CHECK(wait_event(&sp, "bcast", line, sizeof line, 3000) == 0);
        CHECK(strcmp(line, "bcast 100") == 0);
        while (s.recv < (uint64_t)(round + 1) * 100 * 304 &&
               sse_event(&s, fd, buf, &len, cap) == 0) {
        }
        CHECK_EQ_INT(s.recv, (round + 1) * 100 * 304);
    }
    close(fd);
    free(buf);
    char want[300];
    int ok = 1;
    for (int i = 0; i < 200 && ok; i++) {
        memset(want, 'a' + i % 100 % 26, sizeof want);
        ok = expect_msg(&s, DX_OP_TEXT, want, sizeof want);
    }
    CHECK(ok);
    CHECK_EQ_INT(sess_text(&s, "buf"), 204); /* acknowledges everything */
    CHECK(wait_event(&sp, "buffered", line, sizeof line, 3000) == 0);
    CHECK(strcmp(line, "buffered 0") == 0);
    CHECK_EQ_INT(stop_server(&sp), 0);
}

/* One down request at a time: a new poll ends the one waiting (an empty
 * 200); a stream whose client goes away is detached. */
static void one_down_at_a_time(void) {
    SERVER(sp, NULL);
    sess s;
    char line[64];
    REQUIRE(sess_open(&s, sp.port, "/", NULL, NULL) == 200);
    int a = sess_poll_start(&s, NULL);
    CHECK(wait_attached(&sp, &s) == 0);
    int b = sess_poll_start(&s, NULL);
    resp r;
    CHECK_EQ_INT(sess_poll_finish(&s, a, &r), 200);
    CHECK_EQ_INT(r.body_len, 0);
    resp_free(&r);
    CHECK_EQ_INT(sess_text(&s, "later"), 204);
    CHECK_EQ_INT(sess_poll_finish(&s, b, NULL), 200);
    CHECK(expect_msg(&s, DX_OP_TEXT, "later", 5));
    /* A stream, then its client leaves. */
    char t[160];
    target_down(&s, "stream", t, sizeof t);
    int fd = req_send(sp.port, "GET", t, NULL, NULL, 0);
    CHECK(wait_attached(&sp, &s) == 0);
    close(fd);
    int detached = 0;
    for (int i = 0; i < 200 && !detached; i++) {
        CHECK_EQ_INT(sess_text(&s, "attached"), 204);
        CHECK(wait_event(&sp, "attached", line, sizeof line, 3000) == 0);
        detached = !strcmp(line, "attached 0");
        if (!detached) usleep(5000);
    }
    CHECK(detached);
    CHECK_EQ_INT(stop_server(&sp), 0);
}

static void cfg_one(dx_server_config *cfg) {
    cfg->max_connections = 1;
}

/* max_connections counts sessions; a protocol error up closes with 1002. */
static void limits_and_errors(void) {
    SERVER(sp, cfg_one);
    sess s, s2;
    char line[256];
    resp r;
    REQUIRE(sess_open(&s, sp.port, "/", NULL, NULL) == 200);
    CHECK_EQ_INT(sess_open(&s2, sp.port, "/", NULL, &r), 503);
    CHECK(has_header(&r, "Retry-After: 1"));
    CHECK(has_header(&r, "Cache-Control: no-store"));
    resp_free(&r);
    /* An unmasked frame: the protocol fails the connection (1002). */
    uint8_t f[16];
    size_t n = dx_t_frame(f, 1, 0, DX_OP_TEXT, "bad", 3, NULL);
    CHECK_EQ_INT(sess_up_at(&s, 0, f, n, NULL, NULL), 204);
    CHECK(wait_event(&sp, "close", line, sizeof line, 3000) == 0);
    CHECK(strncmp(line, "close 1002 0", 12) == 0);
    uint8_t p[128];
    size_t pn = 0;
    CHECK_EQ_INT(sess_read_frame(&s, p, &pn), 0x80 | DX_OP_CLOSE);
    CHECK(pn >= 2 && (p[0] << 8 | p[1]) == 1002);
    /* The close acknowledged, the session is gone: room for another. */
    CHECK_EQ_INT(sess_poll(&s), 404);
    CHECK_EQ_INT(sess_open(&s2, sp.port, "/", NULL, NULL), 200);
    CHECK_EQ_INT(stop_server(&sp), 0);
}

/* Enough sessions to grow the table of SIDs, each its own connection. */
static void many_sessions(void) {
    SERVER(sp, NULL);
    enum { N = 150 };
    static sess all[N];
    int ok = 1;
    for (int i = 0; i < N && ok; i++) {
        ok = sess_open(&all[i], sp.port, "/", NULL, NULL) == 200;
        all[i].pend = NULL;
    }
    REQUIRE(ok);
    for (int i = 0; i < N; i += 7) {
        char t[32];
        snprintf(t, sizeof t, "n%d", i);
        all[i].pend = pend_store;
        CHECK_EQ_INT(sess_text(&all[i], t), 204);
        CHECK(expect_msg(&all[i], DX_OP_TEXT, t, strlen(t)));
        all[i].pend = NULL;
    }
    CHECK_EQ_INT(stop_server(&sp), 0);
}

/* Shutdown: a waiting poll gets the close frame (1001). */
static void shutdown_closes(void) {
    SERVER(sp, NULL);
    sess s;
    char line[256];
    REQUIRE(sess_open(&s, sp.port, "/", NULL, NULL) == 200);
    CHECK(wait_event(&sp, "open", NULL, 0, 3000) == 0);
    int fd = sess_poll_start(&s, NULL);
    REQUIRE(fd >= 0);
    CHECK(wait_attached(&sp, &s) == 0);
    kill(sp.pid, SIGTERM);
    CHECK_EQ_INT(sess_poll_finish(&s, fd, NULL), 200);
    uint8_t p[128];
    size_t n = 0;
    CHECK_EQ_INT(sess_next_frame(&s, p, &n), 0x80 | DX_OP_CLOSE);
    CHECK(n >= 2 && (p[0] << 8 | p[1]) == 1001);
    CHECK(wait_event(&sp, "close 1001", line, sizeof line, 3000) == 0);
    CHECK(wait_event(&sp, "shutdown done", NULL, 0, 3000) == 0);
    CHECK(wait_event(&sp, "stats sessions 1", NULL, 0, 3000) == 0);
    CHECK_EQ_INT(stop_server(&sp), 0);
}

/* poll_races_close with an Origin on every request, as a browser sends it: the up
 * POST whose close frame (and ack) ends the session is still answered with
 * the session's CORS lines, written before the session and its origin were
 * freed (a use after free, caught by ASan, in the e2e sign-in refusal). */
static void close_answer_cross_origin(void) {
    static const uint8_t key[4] = {0x5a, 0x01, 0x7e, 0x33};
    static const char *const og = "Origin: https://good.example\r\n";
    SERVER(sp, cfg_origins);
    sess s;
    resp r;
    char line[256];
    REQUIRE(sess_open(&s, sp.port, "/", og, NULL) == 200);
    int fd = sess_poll_start(&s, og);
    REQUIRE(fd >= 0);
    CHECK(wait_attached(&sp, &s) == 0);
    uint8_t f[64];
    size_t fl = dx_t_frame(f, 1, 0, DX_OP_TEXT, "close:4401:expired", 18, key);
    CHECK_EQ_INT(sess_up_at(&s, s.up, f, fl, og, NULL), 204);
    s.up += fl;
    CHECK_EQ_INT(sess_poll_finish(&s, fd, NULL), 200);
    uint8_t p[128];
    size_t n = 0;
    CHECK_EQ_INT(sess_next_frame(&s, p, &n), 0x80 | DX_OP_CLOSE);
    uint8_t cp[] = {0x11, 0x31};
    fl = dx_t_frame(f, 1, 0, DX_OP_CLOSE, cp, 2, key);
    CHECK_EQ_INT(sess_up_at(&s, s.up, f, fl, og, &r), 204); /* acks the close too */
    CHECK(has_header(&r, "Access-Control-Allow-Origin: https://good.example"));
    char want[64];
    snprintf(want, sizeof want, "X-Duplex-Seq: %llu", (unsigned long long)(s.up + fl));
    CHECK(has_header(&r, want));
    resp_free(&r);
    CHECK(wait_event(&sp, "close", line, sizeof line, 3000) == 0);
    CHECK(strcmp(line, "close 4401 1 ") == 0);
    CHECK_EQ_INT(sess_poll(&s), 404); /* the session is gone */
    CHECK_EQ_INT(stop_server(&sp), 0);
}

/* Session id reuse by another client refused. The SID is a bearer
 * credential (docs/fallback.md, "Security"): a second client that presents
 * it with another Origin is refused (403) and feeds nothing, the owner
 * carries on; once the session is closed its SID answers 404 to every
 * request, down or up, feeds nothing and never opens a new session. */
static void sid_reuse_refused(void) {
    static const uint8_t key[4] = {0x11, 0x22, 0x33, 0x44};
    SERVER(sp, cfg_origins);
    sess s;
    resp r;
    char line[256], t[160];
    uint8_t f[64];
    REQUIRE(sess_open(&s, sp.port, "/", "Origin: https://good.example\r\n", NULL) == 200);
    CHECK(wait_event(&sp, "open http", NULL, 0, 3000) == 0);

    /* Another client (an allowed Origin, but not the session's) with the
     * SID: refused down and up, and its frame never reaches the session. */
    size_t fl = dx_t_frame(f, 1, 0, DX_OP_TEXT, "intruder", 8, key);
    CHECK_EQ_INT(sess_up_at(&s, s.up, f, fl, "Origin: https://other.example\r\n", &r), 403);
    CHECK(has_header(&r, "Cache-Control: no-store"));
    resp_free(&r);
    int fd = sess_poll_start(&s, "Origin: https://other.example\r\n");
    CHECK_EQ_INT(req_finish(fd, &r), 403);
    resp_free(&r);
    target_down(&s, "stream", t, sizeof t);
    CHECK_EQ_INT(req(sp.port, "GET", t, "Origin: https://other.example\r\n", NULL, 0, &r), 403);
    resp_free(&r);
    /* The owner's next bytes are still expected at offset 0. */
    CHECK_EQ_INT(s.up, 0);
    CHECK_EQ_INT(sess_text(&s, "owner"), 204);
    CHECK(wait_event(&sp, "msg", line, sizeof line, 3000) == 0);
    CHECK(strcmp(line, "msg 1 owner") == 0);
    CHECK(expect_msg(&s, DX_OP_TEXT, "owner", 5));
    CHECK_EQ_INT(sess_text(&s, "gauges"), 204);
    CHECK(wait_event(&sp, "gauges", line, sizeof line, 3000) == 0);
    CHECK(strcmp(line, "gauges open 1 sessions 1") == 0);

    /* Closed and acknowledged: the session is gone. */
    uint8_t cp[] = {0x03, 0xe8};
    CHECK_EQ_INT(sess_frame(&s, DX_OP_CLOSE, cp, sizeof cp), 204);
    CHECK(wait_event(&sp, "close 1000 1", NULL, 0, 3000) == 0);
    uint8_t p[128];
    size_t n;
    CHECK_EQ_INT(sess_read_frame(&s, p, &n), 0x80 | DX_OP_CLOSE);
    CHECK_EQ_INT(sess_poll(&s), 404);

    /* Its SID, reused by the owner or anyone: 404 everywhere. */
    CHECK_EQ_INT(sess_poll(&s), 404);
    target_down(&s, "stream", t, sizeof t);
    CHECK_EQ_INT(req(sp.port, "GET", t, "Origin: https://good.example\r\n", NULL, 0, &r), 404);
    resp_free(&r);
    fl = dx_t_frame(f, 1, 0, DX_OP_TEXT, "ghost", 5, key);
    CHECK_EQ_INT(sess_up_at(&s, s.up, f, fl, NULL, NULL), 404);
    CHECK_EQ_INT(sess_up_at(&s, 0, f, fl, "Origin: https://good.example\r\n", NULL), 404);
    CHECK_EQ_INT(sess_up_at(&s, s.up, f, fl, "Origin: https://other.example\r\n", NULL), 404);
    /* An open request aimed at the old SID opens nothing. */
    snprintf(t, sizeof t, "/.duplex/%s/up?seq=%llu", s.sid, (unsigned long long)s.up);
    CHECK_EQ_INT(req(sp.port, "POST", t, "X-Duplex-Session: 1\r\n", f, fl, &r), 404);
    resp_free(&r);
    snprintf(t, sizeof t, "/.duplex/%s", s.sid);
    CHECK_EQ_INT(req(sp.port, "POST", t, "X-Duplex-Session: 1\r\n", "", 0, &r), 404);
    resp_free(&r);
    CHECK(!saw_event(&sp, "msg", 200));
    CHECK(!saw_event(&sp, "open", 0));
    /* A new session gets a new SID. */
    char old[33];
    memcpy(old, s.sid, sizeof old);
    sess s2;
    REQUIRE(sess_open(&s2, sp.port, "/", "Origin: https://good.example\r\n", NULL) == 200);
    CHECK(strlen(s2.sid) == 32 && strcmp(s2.sid, old) != 0);
    CHECK(wait_event(&sp, "open http", NULL, 0, 3000) == 0);
    /* The closed one left the gauge (stats.sessions_open, the metrics'
     * transport="http"). */
    CHECK_EQ_INT(sess_text(&s2, "gauges"), 204);
    CHECK(wait_event(&sp, "gauges", line, sizeof line, 3000) == 0);
    CHECK(strcmp(line, "gauges open 1 sessions 1") == 0);
    /* Nothing was fed and nothing else opened: "intruder" and "ghost" never
     * came, one open per open request (two in all). */
    kill(sp.pid, SIGTERM);
    CHECK(wait_event(&sp, "shutdown done", line, sizeof line, 3000) == 0);
    CHECK(wait_event(&sp, "stats sessions", line, sizeof line, 3000) == 0);
    CHECK(strcmp(line, "stats sessions 2") == 0);
    CHECK_EQ_INT(stop_server(&sp), 0);
}

/* Up POSTs and polls of a session on one kept connection, as browsers
 * send them: each answer says keep-alive and the next request is read on
 * the same socket; a request with "Connection: close" is answered so and
 * the connection ends. */
static void keep_alive(void) {
    static const uint8_t key[4] = {1, 2, 3, 4};
    SERVER(sp, NULL);
    sess s;
    REQUIRE(sess_open(&s, sp.port, "/", NULL, NULL) == 200);
    CHECK(wait_event(&sp, "open http", NULL, 0, 3000) == 0);
    int fd = tcp_connect(sp.port);
    REQUIRE(fd >= 0);
    char head[4096], body[4096], t[160];
    uint8_t f[64];
    uint64_t recv_off = 0;
    size_t blen = 0;
    for (int i = 0; i < 3; i++) {
        char msg[16];
        int ml = snprintf(msg, sizeof msg, "kept %d", i);
        size_t fl = dx_t_frame(f, 1, 0, DX_OP_TEXT, msg, (size_t)ml, key);
        snprintf(t, sizeof t, "/.duplex/%s/up?seq=%llu&ack=%llu", s.sid, (unsigned long long)s.up,
                 (unsigned long long)recv_off);
        CHECK_EQ_INT(req_write(fd, "POST", t, NULL, f, fl, 0), 0);
        CHECK_EQ_INT(read_one(fd, head, sizeof head, body, sizeof body, &blen), 204);
        CHECK(strcasestr(head, "Connection: keep-alive") != NULL);
        s.up += fl;
        snprintf(t, sizeof t, "/.duplex/%s/down?ack=%llu&mode=poll", s.sid,
                 (unsigned long long)recv_off);
        CHECK_EQ_INT(req_write(fd, "GET", t, NULL, NULL, 0, 0), 0);
        CHECK_EQ_INT(read_one(fd, head, sizeof head, body, sizeof body, &blen), 200);
        CHECK(strcasestr(head, "Connection: keep-alive") != NULL);
        /* The echo, as one unmasked text frame. */
        CHECK(blen == (size_t)ml + 2 && (uint8_t)body[0] == 0x81 && (uint8_t)body[1] == ml &&
              !memcmp(body + 2, msg, (size_t)ml));
        recv_off += blen;
    }
    snprintf(t, sizeof t, "/.duplex/%s/down?ack=%llu&mode=poll", s.sid,
             (unsigned long long)recv_off);
    CHECK_EQ_INT(req_write(fd, "GET", t, "Connection: close\r\n", NULL, 0, 0), 0);
    /* Nothing to send: the poll is held, so end the session's wait with
     * a message the echo answers. */
    size_t fl = dx_t_frame(f, 1, 0, DX_OP_TEXT, "last", 4, key);
    snprintf(t, sizeof t, "/.duplex/%s/up?seq=%llu", s.sid, (unsigned long long)s.up);
    resp r;
    CHECK_EQ_INT(req(sp.port, "POST", t, NULL, f, fl, &r), 204);
    CHECK(has_header(&r, "Connection: close"));
    resp_free(&r);
    CHECK_EQ_INT(read_one(fd, head, sizeof head, body, sizeof body, &blen), 200);
    CHECK(strcasestr(head, "Connection: close") != NULL);
    CHECK(blen == 6 && !memcmp(body + 2, "last", 4));
    char c;
    CHECK(recv(fd, &c, 1, 0) == 0); /* and the server closed it */
    close(fd);
    CHECK_EQ_INT(stop_server(&sp), 0);
}

/* POSTs one text frame with mode=poll (the client polls): the status. */
static int up_carry(sess *s, const char *text, resp *r) {
    static const uint8_t key[4] = {9, 8, 7, 6};
    uint8_t f[160];
    size_t fl = dx_t_frame(f, 1, 0, DX_OP_TEXT, text, strlen(text), key);
    char t[160];
    snprintf(t, sizeof t, "/.duplex/%s/up?seq=%llu&ack=%llu&mode=poll", s->sid,
             (unsigned long long)s->up, (unsigned long long)s->ack);
    int st = req(s->port, "POST", t, NULL, f, fl, r);
    if (st == 200 || st == 204) s->up += fl;
    return st;
}

/* 1 when `fd` has nothing to read within `ms`. */
static int quiet(int fd, int ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 0;
}

/* A polling client's POST (mode=poll) carries back what waits, as a poll
 * would, while the poll it holds stays held; that poll answers later from
 * where the POST's answer left off (past its own ack). With a stream
 * attached nothing is carried (its offsets are implicit). */
static void carry(void) {
    SERVER(sp, NULL);
    sess s;
    resp r;
    REQUIRE(sess_open(&s, sp.port, "/", NULL, NULL) == 200);
    CHECK(wait_event(&sp, "open http", NULL, 0, 3000) == 0);
    /* No down request yet: the echo comes in the answer. */
    CHECK_EQ_INT(up_carry(&s, "one", &r), 200);
    CHECK(has_header(&r, "Content-Type: application/octet-stream"));
    CHECK(has_header(&r, "Cache-Control: no-store"));
    CHECK_EQ_INT(header_num(&r, "X-Duplex-Offset"), 0);
    CHECK_EQ_INT(header_num(&r, "X-Duplex-Seq"), (long long)s.up);
    CHECK(r.body_len == 5 && r.body[0] == 0x81 && r.body[1] == 3 && !memcmp(r.body + 2, "one", 3));
    resp_free(&r);
    s.recv = s.ack = 5;
    /* A poll held; the next POST's answer carries the echo, the poll
     * stays held. */
    int pfd = sess_poll_start(&s, NULL);
    REQUIRE(pfd >= 0);
    CHECK(wait_attached(&sp, &s) == 0);
    CHECK_EQ_INT(up_carry(&s, "two", &r), 200);
    CHECK_EQ_INT(header_num(&r, "X-Duplex-Offset"), 5);
    CHECK(r.body_len == 5 && !memcmp(r.body + 2, "two", 3));
    resp_free(&r);
    CHECK(quiet(pfd, 200));
    /* Nothing waits (this message sends nothing back): 204. */
    char line[64];
    CHECK_EQ_INT(up_carry(&s, "gauges", &r), 204);
    resp_free(&r);
    CHECK(wait_event(&sp, "gauges", line, sizeof line, 3000) == 0);
    /* What the server sends outside a carrying POST goes to the held
     * poll, from offset 10: past the poll's ack (5). */
    CHECK_EQ_INT(sess_text(&s, "bcast:1"), 204);
    CHECK_EQ_INT(req_finish(pfd, &r), 200);
    CHECK_EQ_INT(header_num(&r, "X-Duplex-Offset"), 10);
    CHECK(r.body_len == 304 && r.body[0] == 0x81 && r.body[1] == 126 && r.body[4] == 'a');
    resp_free(&r);
    s.recv = s.ack = 314;
    /* A stream attached: no carrying, the echo goes down the stream. */
    char t[160];
    target_down(&s, "stream", t, sizeof t);
    int sfd = req_send(s.port, "GET", t, NULL, NULL, 0);
    REQUIRE(sfd >= 0);
    CHECK(wait_attached(&sp, &s) == 0);
    CHECK_EQ_INT(up_carry(&s, "three", &r), 204);
    resp_free(&r);
    CHECK(!quiet(sfd, 3000));
    close(sfd);
    /* A mode that is neither. */
    snprintf(t, sizeof t, "/.duplex/%s/up?seq=%llu&mode=push", s.sid, (unsigned long long)s.up);
    CHECK_EQ_INT(req(s.port, "POST", t, NULL, "", 0, &r), 400);
    CHECK(strstr((char *)r.body, "mode must be stream or poll") != NULL);
    resp_free(&r);
    CHECK_EQ_INT(stop_server(&sp), 0);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    RUN(open_up_poll);
    RUN(dup_and_reorder);
    RUN(poll_races_close);
    RUN(close_answer_cross_origin);
    RUN(ack_releases);
    RUN(expiry);
    RUN(origins_and_unknown);
    RUN(cors);
    RUN(disabled);
    RUN(backpressure);
    RUN(sse_stream);
    RUN(large_messages);
    RUN(many_sessions);
    RUN(shared_frames);
    RUN(one_down_at_a_time);
    RUN(limits_and_errors);
    RUN(shutdown_closes);
    RUN(sid_reuse_refused);
    RUN(keep_alive);
    RUN(carry);
    return TEST_DONE();
}

/* Tests for the sans-I/O connection (src/core/conn.c) and its output queue
 * (src/core/outq.c): pairs of connections, a client's bytes fed into a
 * server and back, plus fail-every-allocation and idle-memory checks. */
#include <pthread.h>
#include <stdalign.h>
#include <stddef.h>

#include <duplex/conn.h>
#include <duplex/frame.h>

#include "conn_test.h"
#include "core/outq.h"
#include "test.h"

/* ---- allocation hooks: count live blocks, fail the Nth allocation ------- */

static long live_allocs;
static long alloc_count;
static long fail_at; /* 0: never */
static size_t last_size;

static int should_fail(void) {
    return fail_at && ++alloc_count == fail_at;
}

static void *t_malloc(size_t n) {
    if (should_fail()) return NULL;
    void *p = malloc(n);
    if (p) live_allocs++, last_size = n;
    return p;
}

static void *t_realloc(void *p, size_t n) {
    if (should_fail()) return NULL;
    void *q = realloc(p, n);
    if (q && !p) live_allocs++;
    if (q) last_size = n;
    return q;
}

static void t_free(void *p) {
    if (p) live_allocs--;
    free(p);
}

static void hooks_on(void) {
    dx__outq_cache_trim();
    dx_set_allocator(t_malloc, t_realloc, t_free);
    live_allocs = alloc_count = fail_at = 0;
}

static void hooks_off(void) {
    dx__outq_cache_trim();
    dx_set_allocator(NULL, NULL, NULL);
    fail_at = 0;
}

/* ---- a recorder of everything a connection reports -------------------- */

typedef struct msg {
    int op;
    uint8_t *data;
    size_t len;
} msg;

typedef struct rec {
    msg msgs[64];
    int nmsgs;
    size_t total_msgs; /* including those beyond the array */
    int in_place;      /* last message was delivered from the fed buffer */
    const uint8_t *feed_lo, *feed_hi;
    uint8_t pieces[4096];
    size_t npieces;
    int piece_first, piece_fin, piece_calls, piece_op;
    uint8_t ping[128];
    size_t ping_len;
    int pings;
    uint8_t pong[128];
    size_t pong_len;
    int pongs;
    int closes;
    unsigned close_code;
    char reason[128];
    size_t reason_len;
    int was_clean;
    /* behaviours on the next message */
    int echo;
    int close_on_msg;
    int eof_on_msg;
    int eof_on_ping;
} rec;

static void rec_clear(rec *r) {
    for (int i = 0; i < r->nmsgs; i++)
        free(r->msgs[i].data);
    memset(r, 0, sizeof *r);
}

static void on_message(dx_conn *c, void *u, enum dx_opcode op, uint8_t *data, size_t len) {
    rec *r = u;
    r->total_msgs++;
    r->in_place = r->feed_lo && data >= r->feed_lo && data + len <= r->feed_hi;
    if (r->nmsgs < 64) {
        msg *m = &r->msgs[r->nmsgs++];
        m->op = op;
        m->len = len;
        m->data = malloc(len ? len : 1);
        if (len) memcpy(m->data, data, len);
    }
    if (r->echo) (void)dx_conn_send(c, op, data, len);
    if (r->close_on_msg) (void)dx_conn_close(c, 1000, "done", 4);
    if (r->eof_on_msg) dx_conn_eof(c, 0);
}

static void on_fragment(dx_conn *c, void *u, enum dx_opcode op, const uint8_t *data, size_t len,
                        int first, int fin) {
    rec *r = u;
    if (first) r->piece_first++;
    if (fin) r->piece_fin++;
    r->piece_calls++;
    r->piece_op = op;
    if (r->npieces + len <= sizeof r->pieces) memcpy(r->pieces + r->npieces, data, len);
    r->npieces += len;
}

static void on_ping(dx_conn *c, void *u, const uint8_t *data, size_t len) {
    rec *r = u;
    r->pings++;
    r->ping_len = len;
    memcpy(r->ping, data, len);
    if (r->eof_on_ping) dx_conn_eof(c, 0);
}

static void on_pong(dx_conn *c, void *u, const uint8_t *data, size_t len) {
    rec *r = u;
    r->pongs++;
    r->pong_len = len;
    memcpy(r->pong, data, len);
}

static void on_close(dx_conn *c, void *u, uint16_t code, const uint8_t *reason, size_t reason_len,
                     int was_clean) {
    rec *r = u;
    r->closes++;
    r->close_code = code;
    r->reason_len = reason_len;
    if (reason_len) memcpy(r->reason, reason, reason_len);
    r->was_clean = was_clean;
    /* Nothing may be sent once CLOSED. */
    if (dx_conn_send(c, DX_OP_TEXT, "x", 1) != DX_ESTATE) r->closes += 100;
}

static const dx_conn_callbacks cbs = {on_message, on_fragment, on_ping, on_pong, on_close};

static dx_conn *mk(enum dx_role role, rec *r, uint64_t max, int stream) {
    dx_conn_config cfg = {
        .role = role, .max_message = max, .stream = stream, .cb = &cbs, .user = r};
    dx_conn *c = dx_conn_new(&cfg, 0);
    if (c) dx_conn_open(c);
    return c;
}

/* ---- moving bytes ------------------------------------------------------- */

typedef dx_t_bytes bytes;

/* Feeds `b` into `c` in pieces of `step` bytes (0: all at once); returns
 * the first error, or 0. */
static int64_t feed(dx_conn *c, rec *r, uint8_t *p, size_t len, size_t step) {
    int64_t err = 0;
    size_t pos = 0;
    do {
        size_t n = step && len - pos > step ? step : len - pos;
        if (r) r->feed_lo = p + pos, r->feed_hi = p + pos + n;
        int64_t rc = dx_conn_recv(c, p + pos, n);
        if (rc < 0 && !err) err = rc;
        if (rc >= 0 && (size_t)rc != n && !err) err = -1000;
        pos += n;
    } while (pos < len);
    if (r) r->feed_lo = r->feed_hi = NULL;
    return err;
}

/* Moves everything `from` queued into `to`. */
static int64_t pump(dx_conn *from, dx_conn *to, rec *r, size_t step) {
    bytes b = dx_t_take(from, 3);
    int64_t rc = feed(to, r, b.p, b.len, step);
    free(b.p);
    return rc;
}

/* Decodes the first frame of `b` at *pos (as a peer would). */
static int next_frame(const bytes *b, size_t *pos, int *op, int *fin, uint8_t *payload,
                      size_t *plen) {
    size_t i = *pos;
    if (i + 2 > b->len) return 0;
    *fin = b->p[i] >> 7;
    *op = b->p[i] & 15;
    int masked = b->p[i + 1] >> 7;
    uint64_t len = b->p[i + 1] & 127;
    i += 2;
    if (len == 126) {
        len = ((uint64_t)b->p[i] << 8) | b->p[i + 1];
        i += 2;
    } else if (len == 127) {
        len = 0;
        for (int k = 0; k < 8; k++)
            len = (len << 8) | b->p[i + k];
        i += 8;
    }
    uint8_t key[4] = {0};
    if (masked) memcpy(key, b->p + i, 4), i += 4;
    for (uint64_t k = 0; k < len; k++)
        payload[k] = b->p[i + k] ^ key[k & 3];
    *plen = (size_t)len;
    *pos = i + (size_t)len;
    return 1;
}

/* The close code of the only frame `c` queued (a close), or -1. */
static int queued_close(dx_conn *c) {
    bytes b = dx_t_take(c, 3);
    size_t pos = 0, plen;
    int op, fin, code = -1;
    uint8_t pl[256];
    while (next_frame(&b, &pos, &op, &fin, pl, &plen)) {
        if (op == DX_OP_CLOSE) code = plen >= 2 ? (pl[0] << 8 | pl[1]) : 0;
    }
    free(b.p);
    return code;
}

/* ---- tests -------------------------------------------------------------- */

static void test_rfc_examples(void) {
    /* RFC 6455 §5.7: a masked "Hello" to a server, whole and byte by byte. */
    for (size_t step = 0; step <= 1; step++) {
        rec r = {0};
        dx_conn *s = mk(DX_ROLE_SERVER, &r, 0, 0);
        uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
        CHECK_EQ_INT(feed(s, &r, masked, sizeof masked, step), 0);
        REQUIRE(r.nmsgs == 1);
        CHECK(r.msgs[0].op == DX_OP_TEXT && r.msgs[0].len == 5);
        CHECK(memcmp(r.msgs[0].data, "Hello", 5) == 0);
        CHECK(r.in_place == (step == 0));
        rec_clear(&r);
        dx_conn_free(s);
    }
    /* Unmasked "Hello", a fragmented "Hel"+"lo" and an unmasked ping to a
     * client. */
    rec r = {0};
    dx_conn *c = mk(DX_ROLE_CLIENT, &r, 0, 0);
    uint8_t in[] = {0x81, 0x05, 'H', 'e', 'l',  'l',  'o', 0x01, 0x03, 'H', 'e', 'l',
                    0x80, 0x02, 'l', 'o', 0x89, 0x05, 'H', 'e',  'l',  'l', 'o'};
    CHECK_EQ_INT(feed(c, &r, in, sizeof in, 0), 0);
    REQUIRE(r.nmsgs == 2);
    CHECK(memcmp(r.msgs[1].data, "Hello", 5) == 0 && r.msgs[1].len == 5);
    CHECK(r.pings == 1 && r.ping_len == 5 && memcmp(r.ping, "Hello", 5) == 0);
    /* The pong goes out masked, with the ping's payload. */
    bytes b = dx_t_take(c, 3);
    size_t pos = 0, plen;
    int op, fin;
    uint8_t pl[200];
    CHECK(b.len == 2 + 4 + 5 && (b.p[1] & 0x80));
    REQUIRE(next_frame(&b, &pos, &op, &fin, pl, &plen));
    CHECK(op == DX_OP_PONG && fin && plen == 5 && memcmp(pl, "Hello", 5) == 0);
    free(b.p);
    rec_clear(&r);
    dx_conn_free(c);
}

static void test_pair_roundtrip(void) {
    rec rc = {0}, rs = {0};
    dx_conn *c = mk(DX_ROLE_CLIENT, &rc, 0, 0);
    dx_conn *s = mk(DX_ROLE_SERVER, &rs, 0, 0);
    CHECK_EQ_INT(dx_conn_send(c, DX_OP_TEXT, "hello", 5), 0);
    CHECK_EQ_INT(dx_conn_send(c, DX_OP_BINARY, "\0\1\2", 3), 0);
    CHECK_EQ_INT(dx_conn_send(c, DX_OP_TEXT, NULL, 0), 0);
    CHECK_EQ_INT(dx_conn_buffered(c), (2 + 4 + 5) + (2 + 4 + 3) + (2 + 4));
    CHECK_EQ_INT(pump(c, s, &rs, 0), 0);
    CHECK_EQ_INT(dx_conn_buffered(c), 0);
    REQUIRE(rs.nmsgs == 3);
    CHECK(rs.msgs[0].op == DX_OP_TEXT && rs.msgs[0].len == 5 &&
          !memcmp(rs.msgs[0].data, "hello", 5));
    CHECK(rs.msgs[1].op == DX_OP_BINARY && rs.msgs[1].len == 3 &&
          !memcmp(rs.msgs[1].data, "\0\1\2", 3));
    CHECK(rs.msgs[2].op == DX_OP_TEXT && rs.msgs[2].len == 0);
    /* Server to client, split at every byte. */
    rs.echo = 1;
    CHECK_EQ_INT(dx_conn_send(c, DX_OP_BINARY, "ping-pong", 9), 0);
    CHECK_EQ_INT(pump(c, s, &rs, 0), 0);
    CHECK_EQ_INT(dx_conn_buffered(s), 2 + 9);
    CHECK_EQ_INT(pump(s, c, &rc, 1), 0);
    REQUIRE(rc.nmsgs == 1);
    CHECK(rc.msgs[0].op == DX_OP_BINARY && rc.msgs[0].len == 9);
    CHECK(!memcmp(rc.msgs[0].data, "ping-pong", 9) && !rc.in_place);
    CHECK(dx_conn_state(c) == DX_OPEN && dx_conn_state(s) == DX_OPEN);
    CHECK(!dx_conn_should_close(c));
    rec_clear(&rc);
    rec_clear(&rs);
    dx_conn_free(c);
    dx_conn_free(s);
}

static void test_states_and_args(void) {
    rec r = {0};
    dx_conn_config cfg = {.role = DX_ROLE_SERVER, .cb = &cbs, .user = &r};
    dx_conn *c = dx_conn_new(&cfg, 0);
    REQUIRE(c);
    CHECK(dx_conn_state(c) == DX_CONNECTING);
    CHECK_EQ_INT(dx_conn_send(c, DX_OP_TEXT, "a", 1), DX_ESTATE);
    CHECK_EQ_INT(dx_conn_ping(c, NULL, 0), DX_ESTATE);
    CHECK_EQ_INT(dx_conn_close(c, 1000, NULL, 0), DX_ESTATE);
    uint8_t in[8] = {0x81, 0x80, 1, 2, 3, 4};
    CHECK_EQ_INT(dx_conn_recv(c, in, 6), DX_ESTATE);
    CHECK(dx_conn_state(c) == DX_CONNECTING && r.closes == 0);
    dx_conn_open(c);
    dx_conn_open(c);
    CHECK(dx_conn_state(c) == DX_OPEN);
    CHECK(dx_conn_user(c) == &r);
    dx_conn_set_user(c, NULL);
    CHECK(dx_conn_user(c) == NULL);
    dx_conn_set_user(c, &r);
    CHECK_EQ_INT(dx_conn_send(c, DX_OP_PING, "a", 1), DX_EINVAL);
    CHECK_EQ_INT(dx_conn_send(c, DX_OP_CONT, "a", 1), DX_EINVAL);
    CHECK_EQ_INT(dx_conn_send(c, DX_OP_TEXT, NULL, 1), DX_EINVAL);
    uint8_t big[126] = {0};
    CHECK_EQ_INT(dx_conn_ping(c, big, 126), DX_EINVAL);
    CHECK_EQ_INT(dx_conn_pong(c, big, 126), DX_EINVAL);
    CHECK_EQ_INT(dx_conn_ping(c, big, 125), 0);
    CHECK_EQ_INT(dx_conn_pong(c, big, 0), 0);
    CHECK_EQ_INT(dx_conn_buffered(c), 2 + 125 + 2);
    CHECK_EQ_INT(dx_conn_send_fragment(c, DX_OP_CONT, "a", 1, 0), DX_EINVAL);
    CHECK_EQ_INT(dx_conn_send_fragment(c, DX_OP_PING, "a", 1, 0), DX_EINVAL);
    /* Close argument checks. */
    CHECK_EQ_INT(dx_conn_close(c, 1005, NULL, 0), DX_EINVAL);
    CHECK_EQ_INT(dx_conn_close(c, 999, NULL, 0), DX_EINVAL);
    CHECK_EQ_INT(dx_conn_close(c, 1004, NULL, 0), DX_EINVAL);
    CHECK_EQ_INT(dx_conn_close(c, 1006, NULL, 0), DX_EINVAL);
    CHECK_EQ_INT(dx_conn_close(c, 1015, NULL, 0), DX_EINVAL);
    CHECK_EQ_INT(dx_conn_close(c, 2999, NULL, 0), DX_EINVAL);
    CHECK_EQ_INT(dx_conn_close(c, 5000, NULL, 0), DX_EINVAL);
    CHECK_EQ_INT(dx_conn_close(c, 0, "x", 1), DX_EINVAL);
    CHECK_EQ_INT(dx_conn_close(c, 1000, NULL, 3), DX_EINVAL);
    char reason[124];
    memset(reason, 'r', sizeof reason);
    CHECK_EQ_INT(dx_conn_close(c, 1000, reason, 124), DX_EINVAL);
    CHECK_EQ_INT(dx_conn_close(c, 1000, "\xc3\x28", 2), DX_EINVAL);
    CHECK(dx_conn_state(c) == DX_OPEN);
    CHECK_EQ_INT(dx_conn_close(c, 4999, reason, 123), 0);
    CHECK(dx_conn_state(c) == DX_CLOSING && !dx_conn_should_close(c));
    CHECK_EQ_INT(dx_conn_close(c, 1000, NULL, 0), DX_ESTATE);
    CHECK_EQ_INT(dx_conn_send(c, DX_OP_TEXT, "a", 1), DX_ESTATE);
    CHECK_EQ_INT(dx_conn_ping(c, "a", 1), DX_ESTATE);
    CHECK(r.closes == 0);
    dx_conn_eof(c, 0);
    CHECK(r.closes == 1 && r.close_code == 1006 && !r.was_clean);
    dx_conn_eof(c, 1015);
    CHECK(r.closes == 1);
    CHECK(dx_conn_should_close(c));
    CHECK(dx_conn_state(c) == DX_CLOSED);
    CHECK_EQ_INT(dx_conn_recv(c, in, 6), 6);
    /* Bad configurations. */
    dx_conn_config bad = {.role = (enum dx_role)7};
    CHECK(dx_conn_new(&bad, 0) == NULL);
    CHECK(dx_conn_new(NULL, 0) == NULL);
    dx_conn_free(NULL);
    dx_conn_free(c);
}

static void test_eof_codes(void) {
    rec r = {0};
    dx_conn *c = mk(DX_ROLE_CLIENT, &r, 0, 0);
    dx_conn_eof(c, 1015);
    CHECK(r.closes == 1 && r.close_code == 1015 && !r.was_clean);
    CHECK(dx_conn_buffered(c) == 0); /* eof sends nothing */
    dx_conn_free(c);
    /* eof while a message is half reassembled frees it. */
    memset(&r, 0, sizeof r);
    c = mk(DX_ROLE_CLIENT, &r, 0, 0);
    uint8_t in[] = {0x01, 0x03, 'a', 'b', 'c'};
    CHECK_EQ_INT(feed(c, &r, in, sizeof in, 0), 0);
    dx_conn_eof(c, 0);
    CHECK(r.closes == 1 && r.close_code == 1006 && r.nmsgs == 0);
    dx_conn_free(c);
}

static void test_close_handshake(void) {
    rec rc = {0}, rs = {0};
    dx_conn *c = mk(DX_ROLE_CLIENT, &rc, 0, 0);
    dx_conn *s = mk(DX_ROLE_SERVER, &rs, 0, 0);
    CHECK_EQ_INT(dx_conn_close(c, 1000, "bye", 3), 0);
    CHECK(dx_conn_state(c) == DX_CLOSING);
    CHECK_EQ_INT(pump(c, s, &rs, 0), 0);
    CHECK(dx_conn_state(s) == DX_CLOSED && dx_conn_should_close(s));
    CHECK(rs.closes == 1 && rs.close_code == 1000 && rs.was_clean);
    CHECK(rs.reason_len == 3 && !memcmp(rs.reason, "bye", 3));
    CHECK_EQ_INT(dx_conn_send(s, DX_OP_TEXT, "a", 1), DX_ESTATE);
    /* The echo carries the same code, no reason. */
    CHECK_EQ_INT(dx_conn_buffered(s), 4);
    CHECK_EQ_INT(pump(s, c, &rc, 0), 0);
    CHECK(dx_conn_state(c) == DX_CLOSED && dx_conn_should_close(c));
    CHECK(rc.closes == 1 && rc.close_code == 1000 && rc.was_clean && rc.reason_len == 0);
    CHECK(dx_conn_buffered(c) == 0);
    dx_conn_eof(c, 0);
    dx_conn_eof(s, 0);
    CHECK(rc.closes == 1 && rs.closes == 1);
    dx_conn_free(c);
    dx_conn_free(s);

    /* A close without status: reported as 1005, echoed empty; the server
     * starts it this time. */
    memset(&rc, 0, sizeof rc);
    memset(&rs, 0, sizeof rs);
    c = mk(DX_ROLE_CLIENT, &rc, 0, 0);
    s = mk(DX_ROLE_SERVER, &rs, 0, 0);
    CHECK_EQ_INT(dx_conn_close(s, 0, NULL, 0), 0);
    CHECK_EQ_INT(dx_conn_buffered(s), 2);
    CHECK_EQ_INT(pump(s, c, &rc, 0), 0);
    CHECK(rc.closes == 1 && rc.close_code == 1005 && rc.was_clean);
    CHECK_EQ_INT(dx_conn_buffered(c), 6); /* empty masked close */
    CHECK_EQ_INT(pump(c, s, &rs, 0), 0);
    CHECK(rs.closes == 1 && rs.close_code == 1005 && rs.was_clean);
    dx_conn_free(c);
    dx_conn_free(s);

    /* Both close at once: each gets the other's close while CLOSING. */
    memset(&rc, 0, sizeof rc);
    memset(&rs, 0, sizeof rs);
    c = mk(DX_ROLE_CLIENT, &rc, 0, 0);
    s = mk(DX_ROLE_SERVER, &rs, 0, 0);
    CHECK_EQ_INT(dx_conn_close(c, 4000, NULL, 0), 0);
    CHECK_EQ_INT(dx_conn_close(s, 1001, NULL, 0), 0);
    bytes bc = dx_t_take(c, 3), bs = dx_t_take(s, 3);
    CHECK_EQ_INT(feed(s, &rs, bc.p, bc.len, 0), 0);
    CHECK_EQ_INT(feed(c, &rc, bs.p, bs.len, 0), 0);
    CHECK(rs.close_code == 4000 && rs.was_clean && rc.close_code == 1001 && rc.was_clean);
    CHECK(dx_conn_buffered(c) == 0 && dx_conn_buffered(s) == 0); /* no second close */
    free(bc.p);
    free(bs.p);
    dx_conn_free(c);
    dx_conn_free(s);
}

static void test_close_errors(void) {
    struct {
        uint8_t payload[8];
        size_t len;
        unsigned code;
    } rows[] = {
        {{0x03}, 1, 1002},                         /* 1-byte payload */
        {{0x03, 0xed}, 2, 1002},                   /* 1005 */
        {{0x00, 0x00}, 2, 1002},                   /* 0 */
        {{0x13, 0x88}, 2, 1002},                   /* 5000 */
        {{0x03, 0xe8, 0xc0, 0xaf}, 4, 1007},       /* overlong reason */
        {{0x03, 0xe8, 0xed, 0xa0, 0x80}, 5, 1007}, /* surrogate */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        rec r = {0};
        dx_conn *s = mk(DX_ROLE_SERVER, &r, 0, 0);
        uint8_t in[64];
        size_t n = dx_t_peer_frame(in, 1, 0, DX_OP_CLOSE, rows[i].payload, rows[i].len, 1);
        n += dx_t_peer_frame(in + n, 1, 0, DX_OP_TEXT, "after", 5, 1);
        int64_t rc = feed(s, &r, in, n, 0);
        CHECK_EQ_INT(rc, rows[i].code == 1002 ? DX_EPROTO : DX_EUTF8);
        CHECK_EQ_INT(r.close_code, rows[i].code);
        CHECK(r.closes == 1 && !r.was_clean && r.nmsgs == 0);
        CHECK_EQ_INT(queued_close(s), (int)rows[i].code);
        dx_conn_free(s);
    }
}

static void test_fail_then_ignored(void) {
    rec r = {0};
    dx_conn *s = mk(DX_ROLE_SERVER, &r, 0, 0);
    uint8_t in[64];
    size_t n = dx_t_peer_frame(in, 1, 0, DX_OP_TEXT, "ok", 2, 0); /* unmasked to a server */
    CHECK_EQ_INT(dx_conn_recv(s, in, n), DX_EPROTO);
    CHECK(r.closes == 1 && r.close_code == 1002 && !r.was_clean);
    CHECK(dx_conn_state(s) == DX_CLOSED && dx_conn_should_close(s));
    n = dx_t_peer_frame(in, 1, 0, DX_OP_TEXT, "ok", 2, 1);
    CHECK_EQ_INT(dx_conn_recv(s, in, n), (int64_t)n);
    CHECK(r.nmsgs == 0 && r.closes == 1);
    CHECK_EQ_INT(queued_close(s), 1002);
    dx_conn_free(s);

    /* A masked frame to a client. */
    memset(&r, 0, sizeof r);
    dx_conn *c = mk(DX_ROLE_CLIENT, &r, 0, 0);
    n = dx_t_peer_frame(in, 1, 0, DX_OP_BINARY, "ok", 2, 1);
    CHECK_EQ_INT(dx_conn_recv(c, in, n), DX_EPROTO);
    CHECK(r.close_code == 1002 && r.closes == 1);
    /* The client's failing close is masked. */
    bytes b = dx_t_take(c, 3);
    CHECK(b.len == 2 + 4 + 2 && b.p[0] == 0x88 && (b.p[1] & 0x80));
    free(b.p);
    dx_conn_free(c);
}

static void test_ping_pong(void) {
    rec rc = {0}, rs = {0};
    dx_conn *c = mk(DX_ROLE_CLIENT, &rc, 0, 0);
    dx_conn *s = mk(DX_ROLE_SERVER, &rs, 0, 0);
    CHECK_EQ_INT(dx_conn_ping(s, "beat", 4), 0);
    CHECK_EQ_INT(pump(s, c, &rc, 0), 0);
    CHECK(rc.pings == 1 && rc.ping_len == 4 && !memcmp(rc.ping, "beat", 4));
    CHECK_EQ_INT(pump(c, s, &rs, 1), 0);
    CHECK(rs.pongs == 1 && rs.pong_len == 4 && !memcmp(rs.pong, "beat", 4));
    CHECK(rs.pings == 0);
    /* An unsolicited pong is reported and not answered. */
    CHECK_EQ_INT(dx_conn_pong(c, "u", 1), 0);
    CHECK_EQ_INT(pump(c, s, &rs, 0), 0);
    CHECK(rs.pongs == 2 && dx_conn_buffered(s) == 0);
    dx_conn_free(c);
    dx_conn_free(s);

    /* no_auto_pong */
    memset(&rs, 0, sizeof rs);
    dx_conn_config cfg = {.role = DX_ROLE_SERVER, .no_auto_pong = 1, .cb = &cbs, .user = &rs};
    s = dx_conn_new(&cfg, 0);
    dx_conn_open(s);
    uint8_t in[64];
    size_t n = dx_t_peer_frame(in, 1, 0, DX_OP_PING, "x", 1, 1);
    CHECK_EQ_INT(feed(s, &rs, in, n, 0), 0);
    CHECK(rs.pings == 1 && dx_conn_buffered(s) == 0);
    /* No pong once we sent our close. */
    CHECK_EQ_INT(dx_conn_close(s, 1000, NULL, 0), 0);
    dx_conn_free(s);
    memset(&rs, 0, sizeof rs);
    s = mk(DX_ROLE_SERVER, &rs, 0, 0);
    CHECK_EQ_INT(dx_conn_close(s, 1000, NULL, 0), 0);
    size_t before = dx_conn_buffered(s);
    CHECK_EQ_INT(feed(s, &rs, in, n, 0), 0);
    CHECK(rs.pings == 1 && dx_conn_buffered(s) == before);
    dx_conn_free(s);
}

static void test_split_control(void) {
    /* A ping, then a close with a reason, each split at every byte, in the
     * middle of a fragmented message being reassembled. */
    rec r = {0};
    dx_conn *s = mk(DX_ROLE_SERVER, &r, 0, 0);
    uint8_t in[512];
    size_t n = dx_t_peer_frame(in, 0, 0, DX_OP_TEXT, "frag", 4, 1);
    uint8_t pp[125];
    for (int i = 0; i < 125; i++)
        pp[i] = (uint8_t)i;
    n += dx_t_peer_frame(in + n, 1, 0, DX_OP_PING, pp, 125, 1);
    n += dx_t_peer_frame(in + n, 1, 0, DX_OP_CONT, "ment", 4, 1);
    n += dx_t_peer_frame(in + n, 1, 0, DX_OP_CLOSE, "\x03\xe8goodbye", 9, 1);
    CHECK_EQ_INT(feed(s, &r, in, n, 1), 0);
    CHECK(r.pings == 1 && r.ping_len == 125 && !memcmp(r.ping, pp, 125));
    REQUIRE(r.nmsgs == 1);
    CHECK(r.msgs[0].len == 8 && !memcmp(r.msgs[0].data, "fragment", 8));
    CHECK(r.closes == 1 && r.close_code == 1000 && r.was_clean);
    CHECK(r.reason_len == 7 && !memcmp(r.reason, "goodbye", 7));
    bytes b = dx_t_take(s, 3);
    size_t pos = 0, plen;
    int op, fin;
    uint8_t pl[200];
    REQUIRE(next_frame(&b, &pos, &op, &fin, pl, &plen));
    CHECK(op == DX_OP_PONG && plen == 125 && !memcmp(pl, pp, 125));
    REQUIRE(next_frame(&b, &pos, &op, &fin, pl, &plen));
    CHECK(op == DX_OP_CLOSE && plen == 2 && pl[0] == 0x03 && pl[1] == 0xe8);
    CHECK(pos == b.len);
    free(b.p);
    rec_clear(&r);
    dx_conn_free(s);
}

static void test_reentrant_callbacks(void) {
    /* A callback that closes: later messages in the same buffer are still
     * delivered (the peer may send until it sees our close). */
    rec r = {0};
    dx_conn *s = mk(DX_ROLE_SERVER, &r, 0, 0);
    uint8_t in[256];
    size_t n = dx_t_peer_frame(in, 1, 0, DX_OP_TEXT, "one", 3, 1);
    n += dx_t_peer_frame(in + n, 1, 0, DX_OP_TEXT, "two", 3, 1);
    r.echo = 1;
    r.close_on_msg = 1;
    CHECK_EQ_INT(feed(s, &r, in, n, 0), 0);
    CHECK(r.nmsgs == 2 && dx_conn_state(s) == DX_CLOSING);
    bytes b = dx_t_take(s, 3);
    size_t pos = 0, plen;
    int op, fin;
    uint8_t pl[200];
    REQUIRE(next_frame(&b, &pos, &op, &fin, pl, &plen));
    CHECK(op == DX_OP_TEXT && plen == 3 && !memcmp(pl, "one", 3));
    REQUIRE(next_frame(&b, &pos, &op, &fin, pl, &plen));
    CHECK(op == DX_OP_CLOSE && plen == 6 && !memcmp(pl + 2, "done", 4));
    CHECK(pos == b.len); /* the second echo and close were refused */
    free(b.p);
    rec_clear(&r);
    dx_conn_free(s);

    /* A callback that ends the transport: nothing more is delivered. */
    memset(&r, 0, sizeof r);
    s = mk(DX_ROLE_SERVER, &r, 0, 0);
    r.eof_on_msg = 1;
    n = dx_t_peer_frame(in, 1, 0, DX_OP_TEXT, "one", 3, 1); /* fed bytes were unmasked in place */
    n += dx_t_peer_frame(in + n, 1, 0, DX_OP_TEXT, "two", 3, 1);
    CHECK_EQ_INT(feed(s, &r, in, n, 0), 0);
    CHECK(r.nmsgs == 1 && r.closes == 1 && r.close_code == 1006);
    rec_clear(&r);
    dx_conn_free(s);

    /* The same from a ping split over calls and from a reassembled message. */
    memset(&r, 0, sizeof r);
    s = mk(DX_ROLE_SERVER, &r, 0, 0);
    r.eof_on_ping = 1;
    n = dx_t_peer_frame(in, 0, 0, DX_OP_TEXT, "ab", 2, 1);
    n += dx_t_peer_frame(in + n, 1, 0, DX_OP_PING, "pp", 2, 1);
    n += dx_t_peer_frame(in + n, 1, 0, DX_OP_CONT, "cd", 2, 1);
    CHECK_EQ_INT(feed(s, &r, in, n, 3), 0);
    CHECK(r.pings == 1 && r.closes == 1 && r.nmsgs == 0);
    dx_conn_free(s);
    memset(&r, 0, sizeof r);
    s = mk(DX_ROLE_SERVER, &r, 0, 0);
    r.eof_on_msg = 1;
    n = dx_t_peer_frame(in, 0, 0, DX_OP_TEXT, "ab", 2, 1);
    n += dx_t_peer_frame(in + n, 1, 0, DX_OP_PING, "pp", 2, 1);
    n += dx_t_peer_frame(in + n, 1, 0, DX_OP_CONT, "cd", 2, 1);
    CHECK_EQ_INT(feed(s, &r, in, n, 1), 0);
    CHECK(r.nmsgs == 1 && r.msgs[0].len == 4 && !memcmp(r.msgs[0].data, "abcd", 4));
    CHECK(r.closes == 1 && r.close_code == 1006);
    rec_clear(&r);
    dx_conn_free(s);
}

static void test_send_fragment(void) {
    rec rc = {0}, rs = {0};
    dx_conn *c = mk(DX_ROLE_CLIENT, &rc, 0, 0);
    dx_conn *s = mk(DX_ROLE_SERVER, &rs, 0, 0);
    CHECK_EQ_INT(dx_conn_send_fragment(c, DX_OP_TEXT, "caf", 3, 0), 0);
    CHECK_EQ_INT(dx_conn_send(c, DX_OP_TEXT, "x", 1), DX_ESTATE);
    CHECK_EQ_INT(dx_conn_ping(c, "p", 1), 0);
    CHECK_EQ_INT(dx_conn_send_fragment(c, DX_OP_BINARY, "\xc3", 1, 0), 0); /* op ignored */
    CHECK_EQ_INT(dx_conn_send_fragment(c, DX_OP_BINARY, "\xa9", 1, 1), 0);
    CHECK_EQ_INT(dx_conn_send(c, DX_OP_BINARY, "y", 1), 0);
    bytes b = dx_t_take(c, 3);
    size_t pos = 0, plen;
    int op, fin;
    uint8_t pl[200];
    int ops[5], fins[5], k = 0;
    while (k < 5 && next_frame(&b, &pos, &op, &fin, pl, &plen))
        ops[k] = op, fins[k++] = fin;
    REQUIRE(k == 5);
    CHECK(ops[0] == DX_OP_TEXT && !fins[0] && ops[1] == DX_OP_PING && ops[2] == DX_OP_CONT &&
          !fins[2] && ops[3] == DX_OP_CONT && fins[3] && ops[4] == DX_OP_BINARY && fins[4]);
    CHECK_EQ_INT(feed(s, &rs, b.p, b.len, 2), 0);
    free(b.p);
    REQUIRE(rs.nmsgs == 2);
    CHECK(rs.msgs[0].op == DX_OP_TEXT && rs.msgs[0].len == 5 &&
          !memcmp(rs.msgs[0].data, "caf\xc3\xa9", 5));
    CHECK(rs.msgs[1].op == DX_OP_BINARY && rs.msgs[1].len == 1);
    CHECK(rs.pings == 1);
    /* A close may interrupt a fragmented send. */
    CHECK_EQ_INT(dx_conn_send_fragment(s, DX_OP_BINARY, "a", 1, 0), 0);
    dx_shared *sh = dx_shared_new(DX_OP_TEXT, "s", 1);
    CHECK_EQ_INT(dx_conn_send_shared(s, sh), DX_ESTATE);
    dx_shared_release(sh);
    CHECK_EQ_INT(dx_conn_close(s, 1000, NULL, 0), 0);
    CHECK_EQ_INT(dx_conn_send_fragment(s, DX_OP_BINARY, "b", 1, 1), DX_ESTATE);
    rec_clear(&rc);
    rec_clear(&rs);
    dx_conn_free(c);
    dx_conn_free(s);
}

static void test_stream_mode(void) {
    rec r = {0};
    dx_conn *s = mk(DX_ROLE_SERVER, &r, 0, 1);
    uint8_t in[256];
    /* "añb€" split inside code points, in two frames, fed byte by byte. */
    size_t n = dx_t_peer_frame(in, 0, 0, DX_OP_TEXT, "a\xc3", 2, 1);
    n += dx_t_peer_frame(in + n, 1, 0, DX_OP_CONT,
                         "\xb1"
                         "b\xe2\x82\xac",
                         5, 1);
    CHECK_EQ_INT(feed(s, &r, in, n, 1), 0);
    CHECK(r.nmsgs == 0 && r.piece_first == 1 && r.piece_fin == 1 && r.piece_op == DX_OP_TEXT);
    CHECK(r.npieces == 7 && !memcmp(r.pieces,
                                    "a\xc3\xb1"
                                    "b\xe2\x82\xac",
                                    7));
    CHECK(r.piece_calls == 7);
    /* A whole message comes as one piece, first and fin. */
    memset(&r, 0, sizeof r);
    n = dx_t_peer_frame(in, 1, 0, DX_OP_BINARY, "whole", 5, 1);
    CHECK_EQ_INT(feed(s, &r, in, n, 0), 0);
    CHECK(r.piece_calls == 1 && r.piece_first == 1 && r.piece_fin == 1 && r.npieces == 5);
    /* Empty messages still give one piece. */
    memset(&r, 0, sizeof r);
    n = dx_t_peer_frame(in, 0, 0, DX_OP_TEXT, "", 0, 1);
    n += dx_t_peer_frame(in + n, 1, 0, DX_OP_CONT, "", 0, 1);
    CHECK_EQ_INT(feed(s, &r, in, n, 0), 0);
    CHECK(r.piece_calls == 1 && r.piece_first == 1 && r.piece_fin == 1 && r.npieces == 0);
    /* A bad byte fails the call it arrives in; earlier pieces went out. */
    memset(&r, 0, sizeof r);
    n = dx_t_peer_frame(in, 0, 0, DX_OP_TEXT, "ok", 2, 1);
    size_t m = dx_t_peer_frame(in + n, 1, 0, DX_OP_CONT, "x\xff", 2, 1);
    CHECK_EQ_INT(feed(s, &r, in, n, 0), 0);
    CHECK(r.npieces == 2);
    CHECK_EQ_INT(feed(s, &r, in + n, m, 0), DX_EUTF8);
    CHECK(r.npieces == 2 && r.close_code == 1007);
    dx_conn_free(s);
}

static void test_utf8_fail_fast(void) {
    /* The bad byte is in the second fragment of a text message; the call
     * that carries it fails, before the message could end. */
    for (int split = 0; split < 2; split++) {
        rec r = {0};
        dx_conn *c = mk(DX_ROLE_CLIENT, &r, 0, 0);
        uint8_t in[256];
        size_t n = dx_t_peer_frame(in, 0, 0, DX_OP_TEXT, "hello ", 6, 0);
        size_t m = dx_t_peer_frame(in + n, 0, 0, DX_OP_CONT, "w\xf5rld", 5, 0);
        size_t k = dx_t_peer_frame(in + n + m, 1, 0, DX_OP_CONT, "!", 1, 0);
        CHECK_EQ_INT(feed(c, &r, in, n, 0), 0);
        if (split) {
            CHECK_EQ_INT(feed(c, &r, in + n, 3, 0), 0); /* header + 'w' */
            CHECK_EQ_INT(feed(c, &r, in + n + 3, m - 3 + k, 0), DX_EUTF8);
        } else {
            CHECK_EQ_INT(feed(c, &r, in + n, m, 0), DX_EUTF8);
        }
        CHECK(r.closes == 1 && r.close_code == 1007 && !r.was_clean && r.nmsgs == 0);
        CHECK_EQ_INT(queued_close(c), 1007);
        dx_conn_free(c);
    }
    /* A text that stops inside a code point fails at its end. */
    rec r = {0};
    dx_conn *c = mk(DX_ROLE_CLIENT, &r, 0, 0);
    uint8_t in[16];
    size_t n = dx_t_peer_frame(in, 1, 0, DX_OP_TEXT, "ab\xe2\x82", 4, 0);
    CHECK_EQ_INT(feed(c, &r, in, n, 0), DX_EUTF8);
    CHECK(r.nmsgs == 0 && r.close_code == 1007);
    dx_conn_free(c);
    /* Binary messages are not checked. */
    memset(&r, 0, sizeof r);
    c = mk(DX_ROLE_CLIENT, &r, 0, 0);
    n = dx_t_peer_frame(in, 1, 0, DX_OP_BINARY, "\xff\xfe", 2, 0);
    CHECK_EQ_INT(feed(c, &r, in, n, 0), 0);
    CHECK(r.nmsgs == 1);
    rec_clear(&r);
    dx_conn_free(c);
}

static void test_max_message(void) {
    uint8_t in[64];
    /* Decided from the header: only 2 header bytes of a 200-byte frame. */
    rec r = {0};
    dx_conn *c = mk(DX_ROLE_CLIENT, &r, 100, 0);
    uint8_t hdr[] = {0x82, 126, 0, 200};
    CHECK_EQ_INT(feed(c, &r, hdr, sizeof hdr, 0), DX_ETOOBIG);
    CHECK(r.close_code == 1009 && r.closes == 1);
    CHECK_EQ_INT(queued_close(c), 1009);
    dx_conn_free(c);
    /* Fragmented: 60 + 60 > 100. */
    memset(&r, 0, sizeof r);
    c = mk(DX_ROLE_CLIENT, &r, 100, 0);
    uint8_t pl[60] = {0};
    size_t n = dx_t_peer_frame(in, 0, 0, DX_OP_BINARY, pl, 60, 0);
    CHECK_EQ_INT(feed(c, &r, in, n, 0), 0);
    n = dx_t_peer_frame(in, 1, 0, DX_OP_CONT, pl, 60, 0);
    CHECK_EQ_INT(feed(c, &r, in, 2, 0), DX_ETOOBIG);
    CHECK(r.close_code == 1009 && r.nmsgs == 0);
    dx_conn_free(c);
    /* Exactly the limit passes. */
    memset(&r, 0, sizeof r);
    c = mk(DX_ROLE_CLIENT, &r, 60, 0);
    n = dx_t_peer_frame(in, 1, 0, DX_OP_BINARY, pl, 60, 0);
    CHECK_EQ_INT(feed(c, &r, in, n, 0), 0);
    CHECK(r.nmsgs == 1);
    rec_clear(&r);
    dx_conn_free(c);
    /* 0 is the 16 MiB default. */
    c = mk(DX_ROLE_CLIENT, &r, 0, 0);
    uint8_t big[] = {0x82, 127, 0, 0, 0, 0, 0x01, 0, 0, 1};
    CHECK_EQ_INT(feed(c, &r, big, sizeof big, 0), DX_ETOOBIG);
    dx_conn_free(c);
    memset(&r, 0, sizeof r);
    c = mk(DX_ROLE_CLIENT, &r, 0, 0);
    uint8_t edge[] = {0x82, 127, 0, 0, 0, 0, 0x01, 0, 0, 0};
    CHECK_EQ_INT(feed(c, &r, edge, sizeof edge, 0), 0);
    dx_conn_free(c);
    /* UINT64_MAX: no limit; an announced 1 TiB costs only what arrived. */
    hooks_on();
    memset(&r, 0, sizeof r);
    c = mk(DX_ROLE_CLIENT, &r, UINT64_MAX, 0);
    uint8_t huge[16] = {0x82, 127, 0, 0, 0x01, 0, 0, 0, 0, 0, 'a', 'b', 'c'};
    CHECK_EQ_INT(feed(c, &r, huge, 13, 0), 0);
    CHECK(r.closes == 0 && live_allocs == 2 && last_size < 4096);
    dx_conn_free(c);
    CHECK_EQ_INT(live_allocs, 0);
    hooks_off();
}

static void test_shared(void) {
    CHECK(dx_shared_new(DX_OP_PING, "a", 1) == NULL);
    CHECK(dx_shared_new(DX_OP_CLOSE, NULL, 0) == NULL);
    CHECK(dx_shared_new(DX_OP_TEXT, NULL, 5) == NULL);
    uint8_t payload[300];
    for (int i = 0; i < 300; i++)
        payload[i] = (uint8_t)('a' + i % 26);
    dx_shared *sh = dx_shared_new(DX_OP_TEXT, payload, 300);
    REQUIRE(sh);
    CHECK_EQ_INT(dx_shared_size(sh), 4 + 300);
    static rec rs[3];
    rec rc = {0};
    memset(rs, 0, sizeof rs);
    dx_conn *s[3];
    for (int i = 0; i < 3; i++) {
        s[i] = mk(DX_ROLE_SERVER, &rs[i], 0, 0);
        CHECK_EQ_INT(dx_conn_send(s[i], DX_OP_BINARY, "pre", 3), 0);
        CHECK_EQ_INT(dx_conn_send_shared(s[i], sh), 0);
        CHECK_EQ_INT(dx_conn_send(s[i], DX_OP_BINARY, "post", 4), 0);
        CHECK_EQ_INT(dx_conn_buffered(s[i]), 5 + 304 + 6);
    }
    /* The same memory is queued on every connection. */
    struct iovec iov[3][4];
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(dx_conn_out_iov(s[i], iov[i], 4), 3);
    CHECK(iov[0][1].iov_base == iov[1][1].iov_base && iov[1][1].iov_base == iov[2][1].iov_base);
    CHECK(iov[0][1].iov_len == 304);
    dx_shared_release(sh); /* the queues keep it alive */
    dx_conn *c = mk(DX_ROLE_CLIENT, &rc, 0, 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(pump(s[i], c, &rc, i == 1 ? 7 : 0), 0);
        dx_conn_free(s[i]);
    }
    REQUIRE(rc.nmsgs == 9);
    for (int i = 0; i < 3; i++) {
        CHECK(rc.msgs[3 * i + 1].len == 300 && !memcmp(rc.msgs[3 * i + 1].data, payload, 300));
        CHECK(rc.msgs[3 * i + 2].len == 4);
    }
    /* Clients cannot send server frames; a freed queue releases its
     * reference. */
    sh = dx_shared_new(DX_OP_BINARY, NULL, 0);
    CHECK_EQ_INT(dx_conn_send_shared(c, sh), DX_EINVAL);
    dx_conn *s2 = mk(DX_ROLE_SERVER, &rs[0], 0, 0);
    CHECK_EQ_INT(dx_conn_send_shared(s2, sh), 0);
    CHECK_EQ_INT(dx_conn_send_shared(s2, NULL), DX_EINVAL);
    dx_shared_release(sh);
    dx_shared_release(NULL);
    dx_conn_free(s2); /* frees the frame: ASan would see a leak otherwise */
    rec_clear(&rc);
    dx_conn_free(c);
}

static void test_corking_and_iov(void) {
    rec r = {0};
    dx_conn *s = mk(DX_ROLE_SERVER, &r, 0, 0);
    for (int i = 0; i < 100; i++)
        CHECK_EQ_INT(dx_conn_send(s, DX_OP_TEXT, "0123456789", 10), 0);
    struct iovec iov[8];
    CHECK_EQ_INT(dx_conn_out_iov(s, iov, 8), 1);
    CHECK_EQ_INT(iov[0].iov_len, 1200);
    CHECK_EQ_INT(dx_conn_out_iov(s, iov, 0), 0);
    /* Partial consumption keeps the rest (and its address). */
    uint8_t *base = iov[0].iov_base;
    dx_conn_out_consume(s, 5);
    CHECK_EQ_INT(dx_conn_out_iov(s, iov, 8), 1);
    CHECK(iov[0].iov_base == base + 5 && iov[0].iov_len == 1195);
    /* A frame bigger than a block gets a block of its own; a small frame
     * after it a new one. */
    size_t big = 40000;
    uint8_t *p = malloc(big);
    memset(p, 'z', big);
    CHECK_EQ_INT(dx_conn_send(s, DX_OP_BINARY, p, big), 0);
    CHECK_EQ_INT(dx_conn_send(s, DX_OP_BINARY, "t", 1), 0);
    CHECK_EQ_INT(dx_conn_out_iov(s, iov, 8), 3);
    CHECK_EQ_INT(iov[1].iov_len, big + 4);
    CHECK_EQ_INT(dx_conn_out_iov(s, iov, 2), 2);
    CHECK_EQ_INT(dx_conn_buffered(s), 1195 + big + 4 + 3);
    /* Filling a standard block spills into a second one. */
    dx_conn_out_consume(s, SIZE_MAX);
    CHECK_EQ_INT(dx_conn_buffered(s), 0);
    CHECK_EQ_INT(dx_conn_out_iov(s, iov, 8), 0);
    for (int i = 0; i < 20; i++)
        CHECK_EQ_INT(dx_conn_send(s, DX_OP_BINARY, p, 1000), 0);
    CHECK_EQ_INT(dx_conn_out_iov(s, iov, 8), 2);
    CHECK_EQ_INT(iov[0].iov_len + iov[1].iov_len, 20 * 1004);
    /* Consuming byte by byte yields the same stream. */
    rec rc = {0};
    dx_conn *c = mk(DX_ROLE_CLIENT, &rc, 0, 0);
    size_t total = dx_conn_buffered(s);
    uint8_t *all = malloc(total);
    for (size_t i = 0; i < total; i++) {
        CHECK(dx_conn_out_iov(s, iov, 1) == 1);
        all[i] = *(uint8_t *)iov[0].iov_base;
        dx_conn_out_consume(s, 1);
    }
    CHECK_EQ_INT(feed(c, &rc, all, total, 0), 0);
    CHECK(rc.total_msgs == 20 && rc.msgs[19].len == 1000);
    free(all);
    free(p);
    rec_clear(&rc);
    dx_conn_free(c);
    dx_conn_free(s);
}

/* A writer that takes at most `cap` more bytes (or fails). */
typedef struct tw {
    uint8_t *buf;
    size_t len, cap;
    int calls, fail;
} tw;

static int64_t tw_write(void *ctx, const struct iovec *iov, int n) {
    tw *w = ctx;
    w->calls++;
    if (w->fail) return -1;
    size_t took = 0;
    for (int i = 0; i < n && w->len < w->cap; i++) {
        size_t k = iov[i].iov_len < w->cap - w->len ? iov[i].iov_len : w->cap - w->len;
        memcpy(w->buf + w->len, iov[i].iov_base, k);
        w->len += k;
        took += k;
    }
    return (int64_t)took;
}

/* What `w` took followed by what `s` queued, fed to a client: it must be
 * exactly the messages sent. */
static void check_through_stream(dx_conn *s, tw *w, rec *rc) {
    dx_conn *c = mk(DX_ROLE_CLIENT, rc, 0, 0);
    bytes b = dx_t_take(s, 3);
    uint8_t *all = malloc(w->len + b.len + 1);
    memcpy(all, w->buf, w->len);
    memcpy(all + w->len, b.p, b.len);
    CHECK_EQ_INT(feed(c, rc, all, w->len + b.len, 0), 0);
    free(all);
    free(b.p);
    dx_conn_free(c);
}

static void test_send_through(void) {
    size_t big = 70000; /* a 10-byte header */
    uint8_t *p = malloc(big);
    for (size_t i = 0; i < big; i++)
        p[i] = (uint8_t)(i * 7);
    tw w = {malloc(big + 64), 0, 0, 0, 0};
    /* Taken whole, in part (inside the header, at its end, in the
     * payload), or not at all: the writer's bytes and the queue's make
     * the one frame, and only the rest is queued. */
    size_t caps[] = {SIZE_MAX, 0, 1, 5, 10, 11, 1000, big + 9};
    for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
        rec r = {0}, rc = {0};
        dx_conn *s = mk(DX_ROLE_SERVER, &r, 0, 0);
        w.len = 0;
        w.cap = caps[k];
        w.calls = 0;
        CHECK_EQ_INT(dx_conn_send_through(s, DX_OP_BINARY, p, big, tw_write, &w), 0);
        CHECK_EQ_INT(w.calls, 1);
        CHECK_EQ_INT(w.len, caps[k] < big + 10 ? caps[k] : big + 10);
        CHECK_EQ_INT(dx_conn_buffered(s), big + 10 - w.len);
        check_through_stream(s, &w, &rc);
        CHECK(rc.nmsgs == 1 && rc.msgs[0].op == DX_OP_BINARY && rc.msgs[0].len == big &&
              !memcmp(rc.msgs[0].data, p, big));
        rec_clear(&rc);
        dx_conn_free(s);
    }
    /* Behind queued bytes it is queued, in order; the writer is not asked. */
    rec r = {0}, rc = {0};
    dx_conn *s = mk(DX_ROLE_SERVER, &r, 0, 0);
    w.len = 0;
    w.cap = SIZE_MAX;
    w.calls = 0;
    CHECK_EQ_INT(dx_conn_send(s, DX_OP_TEXT, "first", 5), 0);
    CHECK_EQ_INT(dx_conn_send_through(s, DX_OP_BINARY, p, big, tw_write, &w), 0);
    CHECK_EQ_INT(w.calls, 0);
    CHECK_EQ_INT(dx_conn_buffered(s), 7 + big + 10);
    check_through_stream(s, &w, &rc);
    CHECK(rc.nmsgs == 2 && rc.msgs[0].len == 5 && rc.msgs[1].len == big &&
          !memcmp(rc.msgs[1].data, p, big));
    rec_clear(&rc);
    /* An empty message goes through too; a failed writer queues nothing. */
    CHECK_EQ_INT(dx_conn_send_through(s, DX_OP_TEXT, NULL, 0, tw_write, &w), 0);
    CHECK_EQ_INT(w.len, 2);
    CHECK_EQ_INT(dx_conn_buffered(s), 0);
    w.fail = 1;
    CHECK_EQ_INT(dx_conn_send_through(s, DX_OP_BINARY, p, big, tw_write, &w), DX_EIO);
    CHECK_EQ_INT(dx_conn_buffered(s), 0);
    w.fail = 0;
    /* No memory for the rest: DX_ENOMEM when nothing went out, DX_EIO
     * (drop the transport) when part of the frame did. */
    dx_conn *s2 = mk(DX_ROLE_SERVER, &r, 0, 0);
    hooks_on();
    for (size_t cap = 0; cap <= 100; cap += 100) {
        w.len = 0;
        w.cap = cap;
        alloc_count = 0;
        fail_at = 1;
        CHECK_EQ_INT(dx_conn_send_through(s2, DX_OP_BINARY, p, big, tw_write, &w),
                     cap ? DX_EIO : DX_ENOMEM);
        CHECK_EQ_INT(dx_conn_buffered(s2), 0);
    }
    hooks_off();
    dx_conn_free(s2);
    /* Not in the middle of a fragmented message, nor after a close; bad
     * arguments are refused as by dx_conn_send. */
    CHECK_EQ_INT(dx_conn_send_through(s, DX_OP_CONT, p, 10, tw_write, &w), DX_EINVAL);
    CHECK_EQ_INT(dx_conn_send_through(s, DX_OP_TEXT, NULL, 10, tw_write, &w), DX_EINVAL);
    CHECK_EQ_INT(dx_conn_send_fragment(s, DX_OP_BINARY, p, 10, 0), 0);
    w.calls = 0;
    CHECK_EQ_INT(dx_conn_send_through(s, DX_OP_BINARY, p, big, tw_write, &w), DX_ESTATE);
    CHECK_EQ_INT(dx_conn_send_fragment(s, DX_OP_BINARY, p, 10, 1), 0);
    CHECK_EQ_INT(dx_conn_close(s, 1000, NULL, 0), 0);
    CHECK_EQ_INT(dx_conn_send_through(s, DX_OP_BINARY, p, big, tw_write, &w), DX_ESTATE);
    CHECK_EQ_INT(w.calls, 0);
    dx_conn_free(s);
    /* A client's message is masked, so queued (copied) instead. */
    dx_conn *c = mk(DX_ROLE_CLIENT, &r, 0, 0);
    CHECK_EQ_INT(dx_conn_send_through(c, DX_OP_BINARY, p, big, tw_write, &w), 0);
    CHECK_EQ_INT(w.calls, 0);
    CHECK_EQ_INT(dx_conn_buffered(c), big + 14);
    dx_conn_free(c);
    free(w.buf);
    free(p);
}

static void test_extra(void) {
    rec r = {0};
    dx_conn_config cfg = {.role = DX_ROLE_SERVER, .cb = &cbs, .user = &r};
    dx_conn *a = dx_conn_new(&cfg, 100);
    dx_conn *b = dx_conn_new(&cfg, 1);
    REQUIRE(a && b);
    uint8_t *ea = dx_conn_extra(a);
    CHECK((uintptr_t)ea % alignof(max_align_t) == 0);
    CHECK((uintptr_t)dx_conn_extra(b) % alignof(max_align_t) == 0);
    int zero = 1;
    for (int i = 0; i < 100; i++)
        zero &= ea[i] == 0;
    CHECK(zero);
    memset(ea, 0xff, 100);
    CHECK(dx_conn_state(a) == DX_CONNECTING && dx_conn_user(a) == &r);
    dx_conn_open(a);
    CHECK_EQ_INT(dx_conn_send(a, DX_OP_TEXT, "ok", 2), 0);
    dx_conn_free(a);
    dx_conn_free(b);
}

/* An idle connection holds no heap besides itself, whatever it did. */
static void test_idle_memory(void) {
    hooks_on();
    rec rc = {0}, rs = {0};
    dx_conn *c = mk(DX_ROLE_CLIENT, &rc, 0, 0);
    size_t conn_size = last_size;
    dx_conn *s = mk(DX_ROLE_SERVER, &rs, 0, 0);
    fprintf(stderr, "sizeof(struct dx_conn) rounded for extra data: %zu bytes\n", conn_size);
    CHECK(conn_size < 200);
    CHECK_EQ_INT(live_allocs, 2);
    uint8_t m[5000];
    memset(m, 'm', sizeof m);
    CHECK_EQ_INT(dx_conn_send(c, DX_OP_TEXT, m, sizeof m), 0);
    CHECK_EQ_INT(dx_conn_send_fragment(c, DX_OP_TEXT, m, 10, 0), 0);
    CHECK_EQ_INT(dx_conn_ping(c, "p", 1), 0);
    CHECK_EQ_INT(dx_conn_send_fragment(c, DX_OP_TEXT, m, 10, 1), 0);
    CHECK_EQ_INT(pump(c, s, &rs, 3), 0); /* reassembly + split controls */
    CHECK_EQ_INT(pump(s, c, &rc, 0), 0);
    CHECK(rs.nmsgs == 2 && rs.pings == 1 && rc.pongs == 1);
    dx__outq_cache_trim();
    CHECK_EQ_INT(live_allocs, 2);
    dx_shared *sh = dx_shared_new(DX_OP_BINARY, m, 100);
    CHECK_EQ_INT(dx_conn_send_shared(s, sh), 0);
    dx_shared_release(sh);
    CHECK_EQ_INT(pump(s, c, &rc, 0), 0);
    dx__outq_cache_trim();
    CHECK_EQ_INT(live_allocs, 2);
    rec_clear(&rc);
    rec_clear(&rs);
    dx_conn_free(c);
    dx_conn_free(s);
    CHECK_EQ_INT(live_allocs, 0);
    hooks_off();
}

/* A full scenario in which the Nth allocation fails. Returns 1 when no
 * allocation failed (the scenario ran to its end). */
static int alloc_scenario(long n) {
    hooks_on();
    fail_at = n;
    rec rc = {0}, rs = {0};
    dx_conn *c = mk(DX_ROLE_CLIENT, &rc, 0, 0);
    dx_conn *s = mk(DX_ROLE_SERVER, &rs, 0, 0);
    int ok = 1;
    if (c && s) {
        uint8_t big[20000];
        memset(big, 'b', sizeof big);
        /* A failed fragment leaves the message open: later sends get
         * DX_ESTATE. */
        int e[9];
        e[0] = dx_conn_send(c, DX_OP_TEXT, "hi", 2);
        e[1] = dx_conn_send(c, DX_OP_BINARY, big, sizeof big);
        e[2] = dx_conn_send_fragment(c, DX_OP_TEXT, "fr", 2, 0);
        e[3] = dx_conn_ping(c, "p", 1);
        e[4] = dx_conn_send_fragment(c, DX_OP_TEXT, "ag", 2, 1);
        for (int i = 0; i < 4; i++)
            e[5 + i] = dx_conn_send(c, DX_OP_BINARY, big, 4000);
        for (int i = 0; i < 9; i++) {
            if (e[i] && e[i] != DX_ENOMEM && !(e[i] == DX_ESTATE && i > 4)) ok = 0;
        }
        int64_t rc1 = pump(c, s, &rs, 1000);
        if (rc1 && rc1 != DX_ENOMEM) ok = 0;
        if (rc1 == DX_ENOMEM && (rs.close_code != 1011 || dx_conn_state(s) != DX_CLOSED)) ok = 0;
        dx_shared *sh = dx_shared_new(DX_OP_TEXT, "shared", 6);
        if (sh) {
            int r = dx_conn_send_shared(s, sh);
            if (r && r != DX_ENOMEM && r != DX_ESTATE) ok = 0;
            dx_shared_release(sh);
        }
        int r2 = dx_conn_close(c, 1000, "bye", 3);
        if (r2 && r2 != DX_ENOMEM) ok = 0;
        int64_t rc2 = pump(c, s, &rs, 3);
        if (rc2 && rc2 != DX_ENOMEM) ok = 0;
        int64_t rc3 = pump(s, c, &rc, 5);
        if (rc3 && rc3 != DX_ENOMEM) ok = 0;
        if (rc3 == DX_ENOMEM && rc.close_code != 1011) ok = 0;
        if (!ok) fprintf(stderr, "alloc scenario %ld: unexpected error\n", n);
        if (n == 0 || alloc_count < n) {
            /* Nothing failed: the whole exchange must have worked. */
            if (rs.nmsgs != 7 || rs.pings != 1 || rc.pongs != 1 || rc.nmsgs != 1) ok = 0;
            if (!rs.was_clean || !rc.was_clean || rc.close_code != 1000) ok = 0;
        }
    }
    rec_clear(&rc);
    rec_clear(&rs);
    dx_conn_free(c);
    dx_conn_free(s);
    dx__outq_cache_trim();
    CHECK_EQ_INT(live_allocs, 0);
    CHECK(ok);
    int done = alloc_count < n;
    hooks_off();
    return done;
}

static void test_fail_every_allocation(void) {
    CHECK(alloc_scenario(0) == 0); /* sanity: the scenario passes */
    long n = 1;
    while (!alloc_scenario(n) && n < 10000)
        n++;
    CHECK(n > 5 && n < 10000);
    fprintf(stderr, "fail-every-allocation: %ld allocations\n", n - 1);
}

/* Reassembly buffers are sized by what arrived, never by what a header
 * announced, and are freed once delivered. */
static void test_reassembly_memory(void) {
    hooks_on();
    rec r = {0};
    dx_conn *c = mk(DX_ROLE_CLIENT, &r, 0, 0);
    static uint8_t in[70000];
    uint8_t *pl = malloc(65536);
    for (int i = 0; i < 65536; i++)
        pl[i] = (uint8_t)i;
    size_t n = dx_t_peer_frame(in, 1, 0, DX_OP_BINARY, pl, 65536, 0);
    CHECK_EQ_INT(feed(c, &r, in, 100, 0), 0);
    CHECK(live_allocs == 2 && last_size <= 256);
    CHECK_EQ_INT(feed(c, &r, in + 100, n - 100, 0), 0);
    REQUIRE(r.nmsgs == 1);
    CHECK(r.msgs[0].len == 65536 && !memcmp(r.msgs[0].data, pl, 65536));
    CHECK_EQ_INT(live_allocs, 1);
    rec_clear(&r);
    free(pl);
    dx_conn_free(c);
    hooks_off();
}

/* dx_conn_partial counts what an unfinished message holds (nothing for a
 * whole one), the caller's mark lives and dies with it, and dx_conn_fail
 * frees it at once, queueing the caller's close code and reason. */
static void test_partial(void) {
    rec r = {0};
    dx_conn *c = mk(DX_ROLE_CLIENT, &r, 0, 0);
    static uint8_t in[1100];
    uint8_t pl[1000];
    memset(pl, 'p', sizeof pl);
    dx_conn_set_partial_mark(c, 7);
    CHECK(dx_conn_partial(c) == 0 && dx_conn_partial_mark(c) == 0);
    size_t n = dx_t_peer_frame(in, 1, 0, DX_OP_TEXT, pl, sizeof pl, 0);
    CHECK_EQ_INT(feed(c, &r, in, n, 0), 0);
    CHECK(r.nmsgs == 1 && dx_conn_partial(c) == 0);
    n = dx_t_peer_frame(in, 0, 0, DX_OP_TEXT, pl, sizeof pl, 0);
    CHECK_EQ_INT(feed(c, &r, in, n, 0), 0);
    CHECK(dx_conn_partial(c) >= sizeof pl && dx_conn_partial(c) <= 2 * sizeof pl);
    dx_conn_set_partial_mark(c, 7);
    CHECK_EQ_INT(dx_conn_partial_mark(c), 7);
    n = dx_t_peer_frame(in, 1, 0, DX_OP_CONT, pl, sizeof pl, 0);
    CHECK_EQ_INT(feed(c, &r, in, n, 0), 0);
    CHECK(r.nmsgs == 2 && r.msgs[1].len == 2 * sizeof pl);
    CHECK(dx_conn_partial(c) == 0 && dx_conn_partial_mark(c) == 0);
    /* Started again, then failed by the caller (a budget). */
    n = dx_t_peer_frame(in, 0, 0, DX_OP_BINARY, pl, sizeof pl, 0);
    CHECK_EQ_INT(feed(c, &r, in, n, 0), 0);
    dx_conn_set_partial_mark(c, 9);
    CHECK_EQ_INT(dx_conn_fail(c, 1005, NULL, 0), DX_EINVAL); /* may not be sent */
    CHECK(dx_conn_partial(c) > 0 && dx_conn_state(c) == DX_OPEN);
    CHECK_EQ_INT(dx_conn_fail(c, 1009, "budget", 6), 0);
    CHECK(dx_conn_partial(c) == 0 && dx_conn_partial_mark(c) == 0);
    CHECK(dx_conn_state(c) == DX_CLOSED && r.closes == 1 && r.close_code == 1009 && !r.was_clean);
    CHECK(r.reason_len == 6 && !memcmp(r.reason, "budget", 6));
    struct iovec iov[4];
    int k = dx_conn_out_iov(c, iov, 4);
    /* A client's close frame: 2 + 4 (mask) header bytes, masked payload. */
    REQUIRE(k == 1 && iov[0].iov_len == 6 + 8);
    const uint8_t *f = iov[0].iov_base;
    CHECK(f[0] == 0x88 && (f[1] & 0x7f) == 8);
    CHECK(((f[6] ^ f[2]) << 8 | (f[7] ^ f[3])) == 1009);
    CHECK_EQ_INT(dx_conn_fail(c, 1009, NULL, 0), DX_ESTATE);
    CHECK_EQ_INT(r.closes, 1);
    rec_clear(&r);
    dx_conn_free(c);
}

/* Garbage and mutated streams never crash, leak or report twice: each ends
 * open or failed with exactly one on_close. */
static void test_garbage(void) {
    for (int iter = 0; iter < 3000; iter++) {
        enum dx_role role = iter & 1 ? DX_ROLE_CLIENT : DX_ROLE_SERVER;
        rec r = {0};
        dx_conn *c = mk(role, &r, 1 + dx_t_rand() % 5000, (int)(dx_t_rand() % 2));
        uint8_t in[600];
        size_t n = 0;
        if (iter % 3) {
            /* Valid-looking frames, then a few bytes flipped. */
            while (n < 400) {
                static const int ops[] = {1, 2, 0, 8, 9, 10};
                uint8_t pl[130];
                size_t len = dx_t_rand() % 130;
                for (size_t i = 0; i < len; i++)
                    pl[i] = (uint8_t)(dx_t_rand() % 128);
                n += dx_t_peer_frame(in + n, (int)(dx_t_rand() % 2), 0, ops[dx_t_rand() % 6], pl,
                                     len, role == DX_ROLE_SERVER);
            }
            for (int k = 0; k < 3; k++)
                in[dx_t_rand() % n] ^= (uint8_t)(1u << (dx_t_rand() % 8));
        } else {
            n = dx_t_rand() % sizeof in;
            for (size_t i = 0; i < n; i++)
                in[i] = (uint8_t)dx_t_rand();
        }
        size_t pos = 0;
        while (pos < n) {
            size_t step = 1 + dx_t_rand() % 40;
            if (step > n - pos) step = n - pos;
            int64_t rc = dx_conn_recv(c, in + pos, step);
            CHECK(rc == (int64_t)step || rc == DX_EPROTO || rc == DX_EUTF8 || rc == DX_ETOOBIG);
            pos += step;
        }
        CHECK(r.closes <= 1);
        dx_conn_eof(c, 0);
        CHECK(r.closes == 1);
        rec_clear(&r);
        dx_conn_free(c);
    }
}

/* A thread's cache of spare blocks is freed when the thread exits. */
static void *thread_sends(void *arg) {
    dx_conn *s = mk(DX_ROLE_SERVER, NULL, 0, 0);
    if (!s) return NULL;
    for (int i = 0; i < 3; i++) {
        (void)dx_conn_send(s, DX_OP_BINARY, "data", 4);
        dx_conn_out_consume(s, SIZE_MAX); /* the block goes to the cache */
    }
    dx_conn_free(s);
    *(long *)arg = live_allocs;
    return NULL;
}

static void test_thread_cache(void) {
    hooks_on();
    long in_thread = -1;
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, thread_sends, &in_thread) == 0);
    pthread_join(t, NULL);
    CHECK_EQ_INT(in_thread, 1); /* one cached block while the thread lived */
    CHECK_EQ_INT(live_allocs, 0);
    hooks_off();
}

int main(void) {
    dx_t_seed();
    RUN(test_rfc_examples);
    RUN(test_pair_roundtrip);
    RUN(test_states_and_args);
    RUN(test_eof_codes);
    RUN(test_close_handshake);
    RUN(test_close_errors);
    RUN(test_fail_then_ignored);
    RUN(test_ping_pong);
    RUN(test_split_control);
    RUN(test_reentrant_callbacks);
    RUN(test_send_fragment);
    RUN(test_stream_mode);
    RUN(test_utf8_fail_fast);
    RUN(test_max_message);
    RUN(test_shared);
    RUN(test_corking_and_iov);
    RUN(test_send_through);
    RUN(test_extra);
    RUN(test_idle_memory);
    RUN(test_reassembly_memory);
    RUN(test_partial);
    RUN(test_fail_every_allocation);
    RUN(test_thread_cache);
    RUN(test_garbage);
    return TEST_DONE();
}

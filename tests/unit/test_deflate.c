/* Tests for the permessage-deflate data path (src/core/deflate.c and its
 * use in src/core/conn.c): the RFC 7692 examples byte for byte, round trips
 * of random messages at random split points under every context-takeover
 * combination and window size, RSV1 rules, corrupt data, compression bombs
 * against the message limit (with the heap measured), memory per
 * connection, stream mode, re-entrant callbacks, and fail-every-allocation. */
#include <duplex/conn.h>
#include <duplex/deflate.h>

#include <zlib.h>

#include "core/deflate.h"
#include "core/outq.h"
#include "conn_test.h"
#include "test.h"

/* ---- allocation hooks: live bytes, peak, fail the Nth ------------------- */

typedef union hdr {
    size_t size;
    max_align_t align;
} hdr;

static long live_blocks, alloc_count, fail_at;
static size_t live_bytes, peak_bytes;

static int should_fail(void) {
    return fail_at && ++alloc_count == fail_at;
}

static void account(size_t add, size_t sub) {
    live_bytes += add;
    live_bytes -= sub;
    if (live_bytes > peak_bytes) peak_bytes = live_bytes;
}

static void *t_malloc(size_t n) {
    if (should_fail()) return NULL;
    hdr *h = malloc(sizeof *h + n);
    if (!h) return NULL;
    h->size = n;
    live_blocks++;
    account(n, 0);
    return h + 1;
}

static void *t_realloc(void *p, size_t n) {
    if (!p) return t_malloc(n);
    if (should_fail()) return NULL;
    hdr *old = (hdr *)p - 1;
    size_t was = old->size;
    hdr *h = realloc(old, sizeof *h + n);
    if (!h) return NULL;
    h->size = n;
    account(n, was);
    return h + 1;
}

static void t_free(void *p) {
    if (!p) return;
    hdr *h = (hdr *)p - 1;
    live_blocks--;
    account(0, h->size);
    free(h);
}

static void trim(void) {
    dx__outq_cache_trim();
    dx__pmd_thread_trim();
}

static void hooks_on(void) {
    trim();
    dx_set_allocator(t_malloc, t_realloc, t_free);
    live_blocks = alloc_count = fail_at = 0;
    live_bytes = peak_bytes = 0;
}

static void hooks_off(void) {
    trim();
    dx_set_allocator(NULL, NULL, NULL);
    fail_at = 0;
}

/* ---- a recorder --------------------------------------------------------- */

#define MAXMSG 64

typedef struct rec {
    int op[MAXMSG];
    uint8_t *data[MAXMSG];
    size_t len[MAXMSG];
    int n;
    uint8_t *pieces; /* stream mode */
    size_t npieces;
    int piece_first, piece_fin;
    int closes;
    unsigned code;
    int echo;         /* echo every message */
    dx_conn *forward; /* feed a compressed message into it from the callback */
    const uint8_t *fwd;
    size_t fwd_len;
} rec;

static void rec_clear(rec *r) {
    for (int i = 0; i < r->n; i++)
        free(r->data[i]);
    free(r->pieces);
    memset(r, 0, sizeof *r);
}

static void on_message(dx_conn *c, void *u, enum dx_opcode op, uint8_t *data, size_t len) {
    rec *r = u;
    if (r->n < MAXMSG) {
        r->op[r->n] = op;
        r->len[r->n] = len;
        r->data[r->n] = malloc(len ? len : 1);
        if (len) memcpy(r->data[r->n], data, len);
        r->n++;
    }
    if (r->echo) (void)dx_conn_send(c, op, data, len);
    if (r->forward) {
        uint8_t *copy = malloc(r->fwd_len);
        memcpy(copy, r->fwd, r->fwd_len);
        (void)dx_conn_recv(r->forward, copy, r->fwd_len);
        free(copy);
    }
}

static void on_fragment(dx_conn *c, void *u, enum dx_opcode op, const uint8_t *data, size_t len,
                        int first, int fin) {
    rec *r = u;
    r->piece_first += first;
    r->piece_fin += fin;
    r->pieces = realloc(r->pieces, r->npieces + len + 1);
    if (len) memcpy(r->pieces + r->npieces, data, len);
    r->npieces += len;
}

static void on_close(dx_conn *c, void *u, uint16_t code, const uint8_t *reason, size_t rl,
                     int clean) {
    rec *r = u;
    r->closes++;
    r->code = code;
}

static const dx_conn_callbacks cbs = {on_message, on_fragment, NULL, NULL, on_close};

static dx_deflate_params params(int snct, int cnct, int smwb, int cmwb) {
    dx_deflate_params p = {(uint8_t)snct, (uint8_t)cnct, (uint8_t)smwb, (uint8_t)cmwb};
    return p;
}

/* A connection, opened, with deflate on when `p` is given. */
static dx_conn *mk(enum dx_role role, rec *r, uint64_t max, int stream, const dx_deflate_params *p,
                   const dx_deflate_config *cfg) {
    dx_conn_config cc = {.role = role, .max_message = max, .stream = stream, .cb = &cbs, .user = r};
    dx_conn *c = dx_conn_new(&cc, 0);
    if (!c) return NULL;
    dx_conn_open(c);
    if (p && dx_conn_set_deflate(c, p, cfg) != 0) {
        dx_conn_free(c);
        return NULL;
    }
    return c;
}

/* ---- bytes -------------------------------------------------------------- */

typedef dx_t_bytes bytes;

/* Feeds p in pieces: `step` bytes each, 0 for all at once, SIZE_MAX for
 * random sizes. Returns the first error or 0. */
static int64_t feed(dx_conn *c, uint8_t *p, size_t len, size_t step) {
    size_t pos = 0;
    int64_t err = 0;
    do {
        size_t n = len - pos;
        if (step == SIZE_MAX) {
            size_t r = (size_t)(dx_t_rand() % 5000) + 1;
            if (r < n) n = r;
        } else if (step && step < n) {
            n = step;
        }
        int64_t rc = dx_conn_recv(c, p + pos, n);
        if (rc < 0 && !err) err = rc;
        pos += n;
    } while (pos < len);
    return err;
}

static int64_t pump(dx_conn *from, dx_conn *to, size_t step) {
    bytes b = dx_t_take(from, 4);
    int64_t rc = feed(to, b.p, b.len, step);
    free(b.p);
    return rc;
}


/* The frames of `b`: first byte (FIN, RSV, opcode) of each, up to `max`. */
static int frame_heads(const bytes *b, uint8_t *heads, int max) {
    size_t i = 0;
    int n = 0;
    while (i + 2 <= b->len && n < max) {
        heads[n++] = b->p[i];
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
        i += (masked ? 4 : 0) + (size_t)len;
    }
    return n;
}

/* Raw DEFLATE of `in` with a sync flush, the tail removed (as a peer would
 * compress one message); `finish` ends with a final block instead. */
static bytes zip(const void *in, size_t len, int level, int finish, const void *dict,
                 size_t dict_len) {
    z_stream z = {0};
    deflateInit2(&z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    if (dict) deflateSetDictionary(&z, dict, (uInt)dict_len);
    bytes b = {malloc(deflateBound(&z, len) + 64), 0};
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = b.p;
    z.avail_out = (uInt)(deflateBound(&z, len) + 64);
    deflate(&z, finish ? Z_FINISH : Z_SYNC_FLUSH);
    b.len = z.total_out;
    if (!finish) b.len -= 4;
    deflateEnd(&z);
    return b;
}

/* Random message contents: text-like (compressible) or noise. */
static uint8_t *content(size_t len, int noise) {
    static const char words[] = "{\"id\":42,\"user\":\"alice\",\"text\":\"hello there\"} ";
    uint8_t *p = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        p[i] = noise ? (uint8_t)dx_t_rand() : (uint8_t)words[(i + (i / 97)) % (sizeof words - 1)];
    return p;
}

/* ---- tests -------------------------------------------------------------- */

/* RFC 7692 §7.2.3: the examples, received by a client. */
static void test_rfc_examples(void) {
    rec r = {0};
    dx_deflate_params keep = params(0, 0, 15, 15);
    dx_conn *c = mk(DX_ROLE_CLIENT, &r, 0, 0, &keep, NULL);
    REQUIRE(c);
    /* §7.2.3.1 "Hello", one frame; §7.2.3.2 the same again using the
     * context (a back-reference into the first message). */
    uint8_t a[] = {0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    uint8_t b[] = {0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00};
    /* §7.2.3.1 fragmented; §7.2.3.3 a stored block; §7.2.3.4 BFINAL set;
     * §7.2.3.6 an empty message. */
    uint8_t f[] = {0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00};
    uint8_t s[] = {0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00};
    uint8_t e[] = {0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00};
    uint8_t z[] = {0xc1, 0x01, 0x00};
    CHECK_EQ_INT(feed(c, a, sizeof a, 0), 0);
    CHECK_EQ_INT(feed(c, b, sizeof b, 1), 0);
    CHECK_EQ_INT(feed(c, f, sizeof f, 1), 0);
    CHECK_EQ_INT(feed(c, s, sizeof s, 0), 0);
    CHECK_EQ_INT(feed(c, e, sizeof e, 3), 0);
    /* After the final block the context goes on: "Hello" again by reference. */
    CHECK_EQ_INT(feed(c, b, sizeof b, 0), 0);
    CHECK_EQ_INT(feed(c, z, sizeof z, 0), 0);
    REQUIRE(r.n == 7);
    for (int i = 0; i < 6; i++) {
        CHECK_EQ_INT(r.op[i], DX_OP_TEXT);
        CHECK(r.len[i] == 5 && !memcmp(r.data[i], "Hello", 5));
    }
    CHECK_EQ_INT(r.len[6], 0);
    CHECK_EQ_INT(r.closes, 0);
    dx_conn_free(c);
    rec_clear(&r);

    /* Our own "Hello" twice with context takeover is the RFC's bytes
     * (with takeover a message that did not shrink still goes compressed). */
    dx_deflate_params nct = params(1, 1, 15, 15);
    dx_deflate_config one = {.enable = 1, .threshold = 1};
    c = mk(DX_ROLE_SERVER, &r, 0, 0, &keep, &one);
    REQUIRE(c);
    CHECK_EQ_INT(dx_conn_send(c, DX_OP_TEXT, "Hello", 5), 0);
    CHECK_EQ_INT(dx_conn_send(c, DX_OP_TEXT, "Hello", 5), 0);
    bytes w = dx_t_take(c, 4);
    CHECK(w.len == sizeof a + sizeof b && !memcmp(w.p, a, sizeof a) &&
          !memcmp(w.p + sizeof a, b, sizeof b));
    free(w.p);
    dx_conn_free(c);
    /* Without takeover, "Hello" does not shrink: it goes as it is. */
    c = mk(DX_ROLE_SERVER, &r, 0, 0, &nct, &one);
    CHECK_EQ_INT(dx_conn_send(c, DX_OP_TEXT, "Hello", 5), 0);
    w = dx_t_take(c, 4);
    CHECK(w.len == 7 && w.p[0] == 0x81 && !memcmp(w.p + 2, "Hello", 5));
    free(w.p);
    one.threshold = 0; /* the default */
    dx_conn_free(c);
    c = mk(DX_ROLE_SERVER, &r, 0, 0, &nct, &one);
    CHECK_EQ_INT(dx_conn_send_fragment(c, DX_OP_TEXT, "Hel", 3, 0), 0);
    CHECK_EQ_INT(dx_conn_send_fragment(c, DX_OP_TEXT, "lo", 2, 1), 0);
    w = dx_t_take(c, 4);
    uint8_t heads[4];
    CHECK_EQ_INT(frame_heads(&w, heads, 4), 2);
    CHECK_EQ_INT(heads[0], 0x01); /* small: the message goes uncompressed */
    CHECK_EQ_INT(heads[1], 0x80);
    free(w.p);
    dx_conn_free(c);
    rec_clear(&r);
}

/* Client and server with deflate, the client sends random messages (whole
 * and fragmented), the server echoes them, bytes move at random split
 * points; every combination of context takeover and some windows. */
static void roundtrip(int snct, int cnct, int sbits, int cbits, int level) {
    rec rs = {.echo = 1}, rc = {0};
    dx_deflate_params p = params(snct, cnct, sbits, cbits);
    dx_deflate_config cfg = {.enable = 1, .level = level};
    dx_conn *s = mk(DX_ROLE_SERVER, &rs, 0, 0, &p, &cfg);
    dx_conn *c = mk(DX_ROLE_CLIENT, &rc, 0, 0, &p, &cfg);
    REQUIRE(s && c);
    enum { N = 24 };
    uint8_t *sent[N];
    size_t lens[N];
    int ops[N];
    for (int i = 0; i < N; i++) {
        int kind = (int)(dx_t_rand() % 4);
        size_t len = kind == 0   ? (size_t)(dx_t_rand() % 200)
                     : kind == 1 ? (size_t)(dx_t_rand() % 5000)
                                 : (size_t)(dx_t_rand() % 150000);
        int noise = dx_t_rand() % 5 == 0;
        ops[i] = noise ? DX_OP_BINARY : DX_OP_TEXT;
        sent[i] = content(len, noise);
        lens[i] = len;
        if (dx_t_rand() % 3 == 0 && len > 10) {
            size_t cut1 = len / 3, cut2 = len / 2;
            CHECK_EQ_INT(dx_conn_send_fragment(c, ops[i], sent[i], cut1, 0), 0);
            CHECK_EQ_INT(dx_conn_ping(c, "p", 1), 0); /* control frames in between */
            CHECK_EQ_INT(dx_conn_send_fragment(c, ops[i], sent[i] + cut1, cut2 - cut1, 0), 0);
            CHECK_EQ_INT(dx_conn_send_fragment(c, ops[i], sent[i] + cut2, len - cut2, 1), 0);
        } else {
            CHECK_EQ_INT(dx_conn_send(c, ops[i], sent[i], len), 0);
        }
        if (dx_t_rand() % 2) {
            CHECK_EQ_INT(pump(c, s, SIZE_MAX), 0);
            CHECK_EQ_INT(pump(s, c, SIZE_MAX), 0);
        }
    }
    CHECK_EQ_INT(pump(c, s, SIZE_MAX), 0);
    CHECK_EQ_INT(pump(s, c, SIZE_MAX), 0);
    CHECK_EQ_INT(rs.n, N);
    CHECK_EQ_INT(rc.n, N);
    int bad = 0;
    for (int i = 0; i < N && i < rc.n && i < rs.n; i++) {
        if (rs.len[i] != lens[i] || (lens[i] && memcmp(rs.data[i], sent[i], lens[i])) ||
            rs.op[i] != ops[i])
            bad++;
        if (rc.len[i] != lens[i] || (lens[i] && memcmp(rc.data[i], sent[i], lens[i])) ||
            rc.op[i] != ops[i])
            bad++;
    }
    if (bad)
        fprintf(stderr, "roundtrip snct %d cnct %d bits %d/%d: %d bad\n", snct, cnct, sbits, cbits,
                bad);
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(rs.closes + rc.closes, 0);
    for (int i = 0; i < N; i++)
        free(sent[i]);
    dx_conn_free(s);
    dx_conn_free(c);
    rec_clear(&rs);
    rec_clear(&rc);
}

static void test_roundtrips(void) {
    for (int t = 0; t < 4; t++) {
        roundtrip(t & 1, t >> 1, 15, 15, 1);
        roundtrip(t & 1, t >> 1, 9, 10, 6);
        roundtrip(t & 1, t >> 1, 8, 8, 9); /* 8 bits: sent uncompressed */
    }
}

/* What goes on the wire: RSV1 on the first frame of a compressed message
 * only, never on control frames, nothing below the threshold, and an
 * incompressible message sent as it is unless the compressor keeps context. */
static void test_wire(void) {
    rec r = {0};
    dx_deflate_params nct = params(1, 1, 15, 15);
    dx_conn *s = mk(DX_ROLE_SERVER, &r, 0, 0, &nct, NULL);
    REQUIRE(s);
    uint8_t *text = content(4000, 0), *noise = content(4000, 1);
    CHECK_EQ_INT(dx_conn_send(s, DX_OP_TEXT, text, DX_DEFLATE_THRESHOLD - 1), 0);
    CHECK_EQ_INT(dx_conn_send(s, DX_OP_TEXT, text, DX_DEFLATE_THRESHOLD), 0);
    CHECK_EQ_INT(dx_conn_send(s, DX_OP_BINARY, noise, 4000), 0);
    CHECK_EQ_INT(dx_conn_send_fragment(s, DX_OP_TEXT, text, 2000, 0), 0);
    CHECK_EQ_INT(dx_conn_ping(s, text, 100), 0);
    CHECK_EQ_INT(dx_conn_send_fragment(s, DX_OP_TEXT, text + 2000, 1000, 0), 0);
    CHECK_EQ_INT(dx_conn_send_fragment(s, DX_OP_TEXT, text + 3000, 1000, 1), 0);
    CHECK_EQ_INT(dx_conn_pong(s, text, 100), 0);
    CHECK_EQ_INT(dx_conn_close(s, 1000, "bye", 3), 0);
    bytes w = dx_t_take(s, 4);
    uint8_t h[16];
    CHECK_EQ_INT(frame_heads(&w, h, 16), 9);
    CHECK_EQ_INT(h[0], 0x81); /* under the threshold */
    CHECK_EQ_INT(h[1], 0xc1); /* compressed */
    CHECK_EQ_INT(h[2], 0x82); /* noise: did not shrink, sent as is */
    CHECK_EQ_INT(h[3], 0x41); /* first fragment: RSV1 */
    CHECK_EQ_INT(h[4], 0x89); /* ping: never compressed */
    CHECK_EQ_INT(h[5], 0x00); /* continuations: no RSV1 */
    CHECK_EQ_INT(h[6], 0x80);
    CHECK_EQ_INT(h[7], 0x8a);
    CHECK_EQ_INT(h[8], 0x88);
    CHECK(w.len < 2 * 4000); /* the text shrank */
    free(w.p);
    dx_conn_free(s);

    /* With context takeover the noise must go compressed all the same. */
    dx_deflate_params keep = params(0, 0, 15, 15);
    s = mk(DX_ROLE_SERVER, &r, 0, 0, &keep, NULL);
    CHECK_EQ_INT(dx_conn_send(s, DX_OP_BINARY, noise, 4000), 0);
    w = dx_t_take(s, 4);
    CHECK_EQ_INT(frame_heads(&w, h, 16), 1);
    CHECK_EQ_INT(h[0], 0xc2);
    free(w.p);
    dx_conn_free(s);
    /* A threshold of SIZE_MAX: never compress, still receive. */
    dx_deflate_config never = {.enable = 1, .threshold = SIZE_MAX};
    s = mk(DX_ROLE_SERVER, &r, 0, 0, &keep, &never);
    CHECK_EQ_INT(dx_conn_send(s, DX_OP_TEXT, text, 4000), 0);
    w = dx_t_take(s, 4);
    CHECK_EQ_INT(frame_heads(&w, h, 16), 1);
    CHECK_EQ_INT(h[0], 0x81);
    free(w.p);
    CHECK_EQ_INT(dx_conn_deflate(s), 1);
    CHECK_EQ_INT(dx_conn_set_deflate(s, &keep, NULL), DX_ESTATE);
    dx_conn_free(s);
    free(text);
    free(noise);
    rec_clear(&r);
}

/* RSV1 is 1002 without the extension, on a continuation, on a control frame. */
static void test_rsv1_errors(void) {
    uint8_t buf[64];
    bytes hello = zip("Hello", 5, 6, 0, NULL, 0);
    dx_deflate_params p = params(0, 0, 15, 15);
    for (int t = 0; t < 4; t++) {
        rec r = {0};
        dx_conn *s = mk(DX_ROLE_SERVER, &r, 0, 0, t ? &p : NULL, NULL);
        REQUIRE(s);
        size_t n;
        if (t == 0) {
            n = dx_t_peer_frame(buf, 1, 4, DX_OP_TEXT, hello.p, hello.len, 1);
        } else if (t == 1) {
            n = dx_t_peer_frame(buf, 0, 4, DX_OP_TEXT, hello.p, 2, 1);
            n += dx_t_peer_frame(buf + n, 1, 4, DX_OP_CONT, hello.p + 2, hello.len - 2, 1);
        } else if (t == 2) {
            n = dx_t_peer_frame(buf, 1, 4, DX_OP_PING, "x", 1, 1);
        } else {
            n = dx_t_peer_frame(buf, 1, 2, DX_OP_TEXT, hello.p, hello.len, 1); /* RSV2: not ours */
        }
        CHECK_EQ_INT(feed(s, buf, n, 0), DX_EPROTO);
        CHECK_EQ_INT(r.code, 1002);
        dx_conn_free(s);
        rec_clear(&r);
    }
    free(hello.p);
}

/* Corrupt data: 1007 in a text message, 1002 in a binary one; invalid UTF-8
 * inside valid compressed text: 1007; whole and split, in both modes. */
static void test_corrupt(void) {
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x12, 0x34};
    bytes badutf = zip("ok \xc3\x28 no", 9, 6, 0, NULL, 0);
    dx_deflate_params p = params(1, 1, 15, 15);
    for (int t = 0; t < 12; t++) {
        int op = t % 2 ? DX_OP_BINARY : DX_OP_TEXT;
        int utf = (t / 2) % 2;
        int stream = t >= 4 && t < 8;
        size_t step = t >= 8 ? 1 : 0;
        if (utf && op == DX_OP_BINARY) continue;
        rec r = {0};
        dx_conn *s = mk(DX_ROLE_SERVER, &r, 0, stream, &p, NULL);
        REQUIRE(s);
        uint8_t buf[64];
        size_t n = utf ? dx_t_peer_frame(buf, 1, 4, op, badutf.p, badutf.len, 1)
                       : dx_t_peer_frame(buf, 1, 4, op, junk, sizeof junk, 1);
        int64_t rc = feed(s, buf, n, step);
        CHECK(rc == (utf ? DX_EUTF8 : DX_EEXT));
        CHECK_EQ_INT(r.code, op == DX_OP_TEXT ? 1007 : 1002);
        CHECK_EQ_INT(r.n, 0);
        CHECK_EQ_INT(dx_conn_state(s), DX_CLOSED);
        dx_conn_free(s);
        rec_clear(&r);
    }
    free(badutf.p);
}

/* A compression bomb: 64 MiB of zeros (64 KiB compressed) against a limit
 * of 1 MiB, whole, split and in stream mode: 1009, and the heap never
 * holds more than the limit plus a fixed amount. */
static void test_bomb(void) {
    size_t big = 64u << 20;
    uint8_t *zeros = calloc(1, big);
    bytes z = zip(zeros, big, 9, 0, NULL, 0);
    free(zeros);
    CHECK(z.len < 128 * 1024);
    uint8_t *wire = malloc(z.len + 16);
    size_t n = dx_t_peer_frame(wire, 1, 4, DX_OP_BINARY, z.p, z.len, 1);
    dx_deflate_params p = params(1, 1, 15, 15), keep = params(0, 0, 15, 15);
    const uint64_t limit = 1u << 20;
    for (int t = 0; t < 6; t++) {
        rec r = {0};
        hooks_on();
        dx_conn *s = mk(DX_ROLE_SERVER, &r, limit, t >= 4, t % 2 ? &keep : &p, NULL);
        REQUIRE(s);
        size_t base = live_bytes;
        peak_bytes = live_bytes;
        uint8_t *copy = malloc(n);
        memcpy(copy, wire, n);
        int64_t rc = feed(s, copy, n, t >= 2 && t < 4 ? 4096 : 0);
        free(copy);
        CHECK_EQ_INT(rc, DX_ETOOBIG);
        CHECK_EQ_INT(r.code, 1009);
        CHECK_EQ_INT(r.n, 0);
        /* The limit, plus zlib's state (about 40 KiB) and one step. */
        size_t used = peak_bytes - base;
        if (used > limit + 256 * 1024) fprintf(stderr, "bomb case %d: peak %zu bytes\n", t, used);
        CHECK(used <= limit + 256 * 1024);
        if (t >= 4) CHECK(r.npieces <= limit);
        dx_conn_free(s);
        hooks_off();
        rec_clear(&r);
    }
    /* Just under the limit is fine. */
    uint8_t *ones = malloc(limit);
    memset(ones, 'a', limit);
    bytes ok = zip(ones, limit, 6, 0, NULL, 0);
    uint8_t *w2 = malloc(ok.len + 16);
    size_t n2 = dx_t_peer_frame(w2, 1, 4, DX_OP_TEXT, ok.p, ok.len, 1);
    rec r = {0};
    dx_conn *s = mk(DX_ROLE_SERVER, &r, limit, 0, &p, NULL);
    CHECK_EQ_INT(feed(s, w2, n2, 0), 0);
    CHECK(r.n == 1 && r.len[0] == limit && !memcmp(r.data[0], ones, limit));
    dx_conn_free(s);
    rec_clear(&r);
    free(ones);
    free(ok.p);
    free(w2);
    free(z.p);
    free(wire);
}

/* Memory: an idle connection with deflate costs a small struct; without
 * context takeover no zlib state stays after a message; with it the state
 * stays, smaller with a smaller window. */
static void test_memory(void) {
    rec r = {0};
    hooks_on();
    dx_conn *plain = mk(DX_ROLE_SERVER, &r, 0, 0, NULL, NULL);
    size_t b_plain = live_bytes;
    dx_deflate_params nct = params(1, 1, 15, 15);
    dx_conn *d = mk(DX_ROLE_SERVER, &r, 0, 0, &nct, NULL);
    size_t b_deflate = live_bytes - b_plain;
    fprintf(stderr, "connection: %zu bytes, with deflate negotiated %zu bytes\n", b_plain,
            b_deflate);
    CHECK(b_deflate <= b_plain + 96);
    dx_conn_free(plain);
    dx_conn_free(d);
    CHECK_EQ_INT(live_bytes, 0);

    uint8_t *text = content(20000, 0);
    size_t held[3];
    for (int t = 0; t < 3; t++) {
        dx_deflate_params p = t == 0   ? params(1, 1, 15, 15)
                              : t == 1 ? params(0, 0, 15, 15)
                                       : params(0, 0, 9, 9);
        dx_deflate_config cfg = {.enable = 1, .mem_level = t == 2 ? 1 : 0};
        rec rs = {.echo = 1}, rc = {0};
        dx_conn *s = mk(DX_ROLE_SERVER, &rs, 0, 0, &p, &cfg);
        dx_conn *c = mk(DX_ROLE_CLIENT, &rc, 0, 0, &p, &cfg);
        trim();
        size_t before = live_bytes;
        for (int i = 0; i < 3; i++) {
            CHECK_EQ_INT(dx_conn_send(c, DX_OP_TEXT, text, 20000), 0);
            CHECK_EQ_INT(pump(c, s, i == 1 ? 1000 : 0), 0);
            CHECK_EQ_INT(pump(s, c, 0), 0);
        }
        CHECK_EQ_INT(rc.n, 3);
        trim(); /* the thread's shared streams and buffers */
        held[t] = live_bytes - before;
        fprintf(stderr, "after 3 echoes (case %d): the pair holds %zu bytes of zlib state\n", t,
                held[t]);
        dx_conn_free(s);
        dx_conn_free(c);
        rec_clear(&rs);
        rec_clear(&rc);
    }
    CHECK_EQ_INT(held[0], 0);
    CHECK(held[1] > 200 * 1024);  /* two compressors of 256 KiB... */
    CHECK(held[2] < held[1] / 8); /* ...and 9 bits with memLevel 1: far less */
    free(text);
    hooks_off();
    CHECK_EQ_INT(live_blocks, 0);
    rec_clear(&r);
}

/* Stream mode delivers the decompressed pieces, first and fin once. */
static void test_stream_mode(void) {
    dx_deflate_params p = params(0, 0, 15, 15);
    uint8_t *text = content(300000, 0);
    bytes z = zip(text, 300000, 6, 0, NULL, 0);
    uint8_t *wire = malloc(z.len + 64);
    size_t n = dx_t_peer_frame(wire, 0, 4, DX_OP_TEXT, z.p, z.len / 2, 1);
    n += dx_t_peer_frame(wire + n, 1, 0, DX_OP_CONT, z.p + z.len / 2, z.len - z.len / 2, 1);
    for (int step = 0; step < 2; step++) {
        rec r = {0};
        dx_conn *s = mk(DX_ROLE_SERVER, &r, 0, 1, &p, NULL);
        uint8_t *copy = malloc(n);
        memcpy(copy, wire, n);
        CHECK_EQ_INT(feed(s, copy, n, step ? 777 : 0), 0);
        free(copy);
        CHECK(r.npieces == 300000 && !memcmp(r.pieces, text, 300000));
        CHECK_EQ_INT(r.piece_first, 1);
        CHECK_EQ_INT(r.piece_fin, 1);
        dx_conn_free(s);
        rec_clear(&r);
    }
    free(text);
    free(z.p);
    free(wire);
}

/* A final block in the middle of a conversation with context takeover:
 * the next message may still refer to the earlier ones. */
static void test_bfinal_keeps_context(void) {
    dx_deflate_params p = params(0, 0, 15, 15);
    rec r = {0};
    dx_conn *c = mk(DX_ROLE_CLIENT, &r, 0, 0, &p, NULL);
    const char *m1 = "the quick brown fox jumps over the lazy dog, again and again";
    bytes z1 = zip(m1, strlen(m1), 6, 1, NULL, 0);        /* ends with BFINAL */
    bytes z2 = zip(m1, strlen(m1), 6, 0, m1, strlen(m1)); /* refers back to m1 */
    uint8_t buf[256];
    size_t n = dx_t_peer_frame(buf, 1, 4, DX_OP_TEXT, z1.p, z1.len, 0);
    CHECK_EQ_INT(feed(c, buf, n, 0), 0);
    n = dx_t_peer_frame(buf, 1, 4, DX_OP_TEXT, z2.p, z2.len, 0);
    CHECK(z2.len < 16); /* it really is a back-reference */
    CHECK_EQ_INT(feed(c, buf, n, 0), 0);
    CHECK_EQ_INT(r.n, 2);
    for (int i = 0; i < r.n; i++)
        CHECK(r.len[i] == strlen(m1) && !memcmp(r.data[i], m1, r.len[i]));
    dx_conn_free(c);
    rec_clear(&r);
    free(z1.p);
    free(z2.p);
}

/* on_message of one connection feeds another (the thread's buffer is lent
 * out already) and echoes (the compressor runs while it is lent). */
static void test_reentrant(void) {
    dx_deflate_params p = params(1, 1, 15, 15);
    uint8_t *text = content(50000, 0);
    bytes z = zip(text, 50000, 6, 0, NULL, 0);
    uint8_t *w = malloc(z.len + 16);
    size_t n = dx_t_peer_frame(w, 1, 4, DX_OP_TEXT, z.p, z.len, 1);
    rec r1 = {.echo = 1}, r2 = {0};
    dx_conn *a = mk(DX_ROLE_SERVER, &r1, 0, 0, &p, NULL);
    dx_conn *b = mk(DX_ROLE_SERVER, &r2, 0, 0, &p, NULL);
    r1.forward = b;
    r1.fwd = w;
    r1.fwd_len = n;
    uint8_t *copy = malloc(n);
    memcpy(copy, w, n);
    CHECK_EQ_INT(feed(a, copy, n, 0), 0);
    free(copy);
    CHECK(r1.n == 1 && r1.len[0] == 50000 && !memcmp(r1.data[0], text, 50000));
    CHECK(r2.n == 1 && r2.len[0] == 50000 && !memcmp(r2.data[0], text, 50000));
    /* The echo, decompressed by a client, is the text. */
    rec rc = {0};
    dx_conn *c = mk(DX_ROLE_CLIENT, &rc, 0, 0, &p, NULL);
    CHECK_EQ_INT(pump(a, c, 0), 0);
    CHECK(rc.n == 1 && rc.len[0] == 50000 && !memcmp(rc.data[0], text, 50000));
    dx_conn_free(a);
    dx_conn_free(b);
    dx_conn_free(c);
    rec_clear(&r1);
    rec_clear(&r2);
    rec_clear(&rc);
    free(text);
    free(z.p);
    free(w);
}

/* Every allocation of a compressed exchange fails in turn: errors are
 * returned (never a crash), and nothing leaks. */
static int alloc_scenario(long k) {
    hooks_on();
    fail_at = k;
    int done = 0;
    dx_deflate_params p = params(0, 1, 12, 15);
    rec rs = {.echo = 1}, rc = {0};
    dx_conn *s = mk(DX_ROLE_SERVER, &rs, 0, 0, &p, NULL);
    dx_conn *c = mk(DX_ROLE_CLIENT, &rc, 0, 0, &p, NULL);
    uint8_t *text = malloc(30000);
    for (int i = 0; i < 30000; i++)
        text[i] = (uint8_t) "abcdefgh"[(i * 7 / 5) % 8];
    if (s && c) {
        int ok = dx_conn_send(c, DX_OP_TEXT, text, 30000) == 0 &&
                 dx_conn_send_fragment(c, DX_OP_BINARY, text, 10000, 0) == 0 &&
                 dx_conn_send_fragment(c, DX_OP_BINARY, text + 10000, 20000, 1) == 0;
        ok = ok && pump(c, s, 3000) == 0 && pump(s, c, 0) == 0;
        done = ok && rc.n == 2 && rs.n == 2 && rc.len[0] == 30000 && rc.len[1] == 30000 &&
               !memcmp(rc.data[1], text, 30000);
    }
    free(text);
    dx_conn_free(s);
    dx_conn_free(c);
    trim();
    long left = live_blocks;
    hooks_off();
    rec_clear(&rs);
    rec_clear(&rc);
    if (left != 0) {
        fprintf(stderr, "failing allocation %ld: %ld blocks leaked\n", k, left);
        return -1;
    }
    return done;
}

static void test_fail_every_allocation(void) {
    long k = 1;
    int rc;
    while ((rc = alloc_scenario(k)) == 0 && k < 2000)
        k++;
    CHECK_EQ_INT(rc, 1); /* finally passes with no failure injected... */
    CHECK(k > 5);        /* ...after failing each allocation it made */
    CHECK_EQ_INT(alloc_scenario(0), 1);
}

/* A broadcast frame is compressed once and shared by every connection
 * whose compressor keeps no context (window permitting); the others
 * compress it themselves; every client decodes the same message. */
static void test_shared_frames(void) {
    uint8_t *text = content(30000, 0);
    struct {
        dx_deflate_params p;
        int deflate, want_rsv1;
    } k[] = {
        {params(1, 1, 12, 15), 1, 1}, /* first: makes the compressed twin, 12 bits */
        {params(1, 1, 15, 15), 1, 1}, /* a larger window may take it */
        {params(1, 1, 10, 15), 1, 1}, /* a smaller one compresses its own */
        {params(0, 0, 15, 15), 1, 1}, /* context takeover: its own compressor */
        {params(1, 1, 15, 15), 0, 0}, /* no deflate at all */
    };
    enum { K = 5 };
    hooks_on();
    dx_shared *sh = dx_shared_new(DX_OP_TEXT, text, 30000);
    REQUIRE(sh);
    bytes wires[K];
    for (int i = 0; i < K; i++) {
        rec rs = {0}, rc = {0};
        dx_conn *s = mk(DX_ROLE_SERVER, &rs, 0, 0, k[i].deflate ? &k[i].p : NULL, NULL);
        dx_conn *c = mk(DX_ROLE_CLIENT, &rc, 0, 0, k[i].deflate ? &k[i].p : NULL, NULL);
        REQUIRE(s && c);
        CHECK_EQ_INT(dx_conn_send_shared(s, sh), 0);
        wires[i] = dx_t_take(s, 4);
        CHECK_EQ_INT(wires[i].p[0], k[i].want_rsv1 ? 0xc1 : 0x81);
        uint8_t *copy = malloc(wires[i].len);
        memcpy(copy, wires[i].p, wires[i].len);
        CHECK_EQ_INT(feed(c, copy, wires[i].len, 0), 0);
        free(copy);
        CHECK(rc.n == 1 && rc.len[0] == 30000 && !memcmp(rc.data[0], text, 30000));
        dx_conn_free(s);
        dx_conn_free(c);
        rec_clear(&rs);
        rec_clear(&rc);
    }
    /* Compressed once: the two shared copies are the same bytes; the
     * 10-bit one differs (compressed on its own). */
    CHECK(wires[0].len == wires[1].len && !memcmp(wires[0].p, wires[1].p, wires[0].len));
    CHECK(wires[2].len != wires[0].len || memcmp(wires[2].p, wires[0].p, wires[0].len));
    CHECK(wires[0].len < 30000 / 3);
    for (int i = 0; i < K; i++)
        free(wires[i].p);
    dx_shared_release(sh);
    trim();
    CHECK_EQ_INT(live_blocks, 0); /* the twin went with the frame */
    hooks_off();
    free(text);
}

/* The inflate API on its own, as a fuzz harness uses it. */
static int sink_count(void *arg, const uint8_t *d, size_t n) {
    *(size_t *)arg += n;
    return 0;
}

static void test_inflate_api(void) {
    dx_deflate_params p = params(1, 1, 15, 15);
    int err = 0;
    dx__pmd *x = dx__pmd_new(DX_ROLE_CLIENT, &p, NULL, &err);
    REQUIRE(x);
    bytes hello = zip("Hello, world", 12, 6, 0, NULL, 0);
    dx__pmd_buf b;
    dx__pmd_buf_take(&b);
    CHECK_EQ_INT(dx__pmd_inflate(x, hello.p, hello.len, 1, 1, 0, &b, NULL, NULL), 0);
    CHECK(b.len == 12 && !memcmp(b.data, "Hello, world", 12));
    dx__pmd_buf_give(&b);
    size_t got = 0;
    for (size_t i = 0; i < hello.len; i++)
        CHECK_EQ_INT(
            dx__pmd_inflate(x, hello.p + i, 1, i + 1 == hello.len, 0, 0, NULL, sink_count, &got),
            0);
    CHECK_EQ_INT(got, 12);
    CHECK_EQ_INT(dx__pmd_inflate(x, hello.p, hello.len, 1, 1, 5, NULL, sink_count, &got),
                 DX_ETOOBIG);
    CHECK_EQ_INT(dx__pmd_mem(x), 0);
    /* A buffer already large (from a bigger message) still receives at
     * most limit + 1 bytes of a message over the limit. */
    uint8_t *big = content(200000, 0);
    bytes zb = zip(big, 200000, 6, 0, NULL, 0);
    dx__pmd_buf_take(&b);
    CHECK_EQ_INT(dx__pmd_inflate(x, zb.p, zb.len, 1, 1, 0, &b, NULL, NULL), 0);
    CHECK(b.len == 200000 && b.cap >= 200000);
    b.len = 0;
    CHECK_EQ_INT(dx__pmd_inflate(x, zb.p, zb.len, 1, 1, 1000, &b, NULL, NULL), DX_ETOOBIG);
    CHECK(b.len <= 1001);
    dx__pmd_buf_give(&b);
    free(big);
    free(zb.p);
    dx__pmd_free(x);
    free(hello.p);
    dx_deflate_params bad = params(0, 0, 7, 15);
    CHECK(dx__pmd_new(DX_ROLE_SERVER, &bad, NULL, &err) == NULL);
    CHECK_EQ_INT(err, DX_EINVAL);
    dx_deflate_config lvl = {.enable = 1, .level = 11};
    CHECK(dx__pmd_new(DX_ROLE_SERVER, &p, &lvl, &err) == NULL);
}

int main(void) {
    dx_t_seed();
    RUN(test_rfc_examples);
    RUN(test_roundtrips);
    RUN(test_wire);
    RUN(test_rsv1_errors);
    RUN(test_corrupt);
    RUN(test_bomb);
    RUN(test_memory);
    RUN(test_stream_mode);
    RUN(test_bfinal_keeps_context);
    RUN(test_reentrant);
    RUN(test_fail_every_allocation);
    RUN(test_shared_frames);
    RUN(test_inflate_api);
    trim();
    return TEST_DONE();
}

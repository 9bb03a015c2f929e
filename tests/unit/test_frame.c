/* The frame parser and writer: RFC 6455 §5.7 examples whole, one byte at a
 * time and at every split point; every header rule with its error, in both
 * roles; random round trips; close payloads; a guard page behind the input
 * so any over-read crashes. */
#include <sys/mman.h>
#include <unistd.h>

#include <duplex/frame.h>
#include <duplex/mask.h>

#include "test.h"

/* Parses `len` bytes (copied, since the parser unmasks in place) cut into
 * pieces of `step` bytes (0 = whole). Collects the payload of every frame
 * into `out` and the last header into `*hdr`. Returns the number of
 * complete frames or the error. */
typedef struct result {
    int frames;
    uint8_t payload[70000];
    size_t plen;
    dx_frame_header hdr;
} result;

static int parse_all(enum dx_role role, uint64_t max, uint8_t rsv, const uint8_t *in, size_t len,
                     size_t step, result *r) {
    uint8_t *buf = malloc(len ? len : 1);
    memcpy(buf, in, len);
    dx_frame_parser p;
    dx_frame_parser_init(&p, role, max);
    dx_frame_parser_allow_rsv(&p, rsv);
    r->frames = 0;
    r->plen = 0;
    size_t pos = 0;
    int rc = 0;
    while (pos < len) {
        size_t piece = step ? (len - pos < step ? len - pos : step) : len - pos;
        uint8_t *q = buf + pos;
        size_t left = piece;
        while (left > 0) {
            dx_frame_chunk ch;
            int64_t n = dx_frame_parse(&p, q, left, &ch);
            if (n < 0) {
                rc = (int)n;
                goto out;
            }
            if (ch.present) {
                if (ch.first) r->hdr = *ch.hdr;
                if (r->plen + ch.len <= sizeof r->payload) memcpy(r->payload + r->plen, ch.data, ch.len);
                r->plen += ch.len;
                if (ch.last) r->frames++;
            }
            q += n;
            left -= (size_t)n;
        }
        pos += piece;
    }
    rc = r->frames;
out:
    free(buf);
    return rc;
}

static result R;

/* Every way of splitting gives the same frames and payload. */
static void check_all_splits(enum dx_role role, const uint8_t *in, size_t len, int frames,
                             const char *payload, size_t plen) {
    for (size_t step = 0; step <= len; step++) {
        CHECK_EQ_INT(parse_all(role, 0, 0, in, len, step, &R), frames);
        CHECK_EQ_INT(R.plen, plen);
        CHECK(memcmp(R.payload, payload, plen) == 0);
    }
    /* Two pieces at every cut point. */
    for (size_t cut = 1; cut < len; cut++) {
        uint8_t *buf = malloc(len);
        memcpy(buf, in, len);
        dx_frame_parser p;
        dx_frame_parser_init(&p, role, 0);
        size_t got = 0, n_frames = 0;
        uint8_t acc[600];
        size_t pieces[2][2] = {{0, cut}, {cut, len}};
        for (int k = 0; k < 2; k++) {
            uint8_t *q = buf + pieces[k][0];
            size_t left = pieces[k][1] - pieces[k][0];
            while (left) {
                dx_frame_chunk ch;
                int64_t n = dx_frame_parse(&p, q, left, &ch);
                REQUIRE(n >= 0);
                if (ch.present) {
                    if (got + ch.len <= sizeof acc) memcpy(acc + got, ch.data, ch.len);
                    got += ch.len;
                    n_frames += ch.last;
                }
                q += n;
                left -= (size_t)n;
            }
        }
        CHECK_EQ_INT(n_frames, frames);
        CHECK(got == plen && (plen > sizeof acc || memcmp(acc, payload, plen) == 0));
        free(buf);
    }
}

static void test_rfc_examples(void) {
    static const uint8_t hello[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                     0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const uint8_t frag[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
    static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                   0x7f, 0x9f, 0x4d, 0x51, 0x58};
    check_all_splits(DX_ROLE_CLIENT, hello, sizeof hello, 1, "Hello", 5);
    CHECK_EQ_INT(R.hdr.opcode, DX_OP_TEXT);
    CHECK_EQ_INT(R.hdr.fin, 1);
    check_all_splits(DX_ROLE_SERVER, masked, sizeof masked, 1, "Hello", 5);
    CHECK(R.hdr.masked && R.hdr.key[0] == 0x37 && R.hdr.key[3] == 0x3d);
    check_all_splits(DX_ROLE_CLIENT, frag, sizeof frag, 2, "Hello", 5);
    check_all_splits(DX_ROLE_CLIENT, ping, sizeof ping, 1, "Hello", 5);
    CHECK_EQ_INT(R.hdr.opcode, DX_OP_PING);
    check_all_splits(DX_ROLE_SERVER, pong, sizeof pong, 1, "Hello", 5);
    CHECK_EQ_INT(R.hdr.opcode, DX_OP_PONG);

    /* The writer produces the unmasked examples byte for byte. */
    uint8_t out[80000];
    CHECK_EQ_INT(dx_frame_write(out, sizeof out, DX_ROLE_SERVER, 1, 0, DX_OP_TEXT, "Hello", 5), 7);
    CHECK(memcmp(out, hello, 7) == 0);
    CHECK_EQ_INT(dx_frame_write(out, sizeof out, DX_ROLE_SERVER, 0, 0, DX_OP_TEXT, "Hel", 3), 5);
    CHECK(memcmp(out, frag, 5) == 0);
    CHECK_EQ_INT(dx_frame_write(out, sizeof out, DX_ROLE_SERVER, 1, 0, DX_OP_CONT, "lo", 2), 4);
    CHECK(memcmp(out, frag + 5, 4) == 0);
    CHECK_EQ_INT(dx_frame_write(out, sizeof out, DX_ROLE_SERVER, 1, 0, DX_OP_PING, "Hello", 5), 7);
    CHECK(memcmp(out, ping, 7) == 0);

    /* 256 bytes and 64 KiB binary: 16-bit and 64-bit lengths (§5.7). */
    static uint8_t data[65536];
    CHECK_EQ_INT(dx_frame_write(out, sizeof out, DX_ROLE_SERVER, 1, 0, DX_OP_BINARY, data, 256), 260);
    CHECK(out[0] == 0x82 && out[1] == 0x7E && out[2] == 0x01 && out[3] == 0x00);
    CHECK_EQ_INT(dx_frame_write(out, sizeof out, DX_ROLE_SERVER, 1, 0, DX_OP_BINARY, data, 65536),
                 65546);
    static const uint8_t len64[] = {0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0};
    CHECK(memcmp(out, len64, 10) == 0);
    CHECK_EQ_INT(parse_all(DX_ROLE_CLIENT, 0, 0, out, 65546, 1000, &R), 1);
    CHECK_EQ_INT(R.plen, 65536);
}

/* Builds a frame by hand: b0, then the length encoding, then (if key) the
 * key, then `plen` payload bytes of 'a' (masked with key). */
static size_t build(uint8_t *out, uint8_t b0, int masked, uint64_t plen, int enc) {
    size_t n = 0;
    out[n++] = b0;
    uint8_t m = masked ? 0x80 : 0;
    if (enc == 0) out[n++] = m | (uint8_t)plen;
    else if (enc == 1) {
        out[n++] = m | 126;
        out[n++] = (uint8_t)(plen >> 8);
        out[n++] = (uint8_t)plen;
    } else {
        out[n++] = m | 127;
        for (int i = 0; i < 8; i++) out[n++] = (uint8_t)(plen >> (56 - 8 * i));
    }
    uint8_t key[4] = {9, 8, 7, 6};
    if (masked) {
        memcpy(out + n, key, 4);
        n += 4;
    }
    if (plen <= 200) {
        memset(out + n, 'a', (size_t)plen);
        if (masked) dx_mask(out + n, (size_t)plen, key, 0);
        n += (size_t)plen;
    }
    return n;
}

/* Expects `err` from the header alone, in the role that receives it. */
static void expect_err(enum dx_role role, uint64_t max, uint8_t rsv, const uint8_t *in, size_t len,
                       int err) {
    for (size_t step = 0; step <= 3; step++) CHECK_EQ_INT(parse_all(role, max, rsv, in, len, step, &R), err);
}

static void test_rules(void) {
    uint8_t f[300], g[600];
    for (int r = 0; r < 2; r++) {
        enum dx_role role = r ? DX_ROLE_CLIENT : DX_ROLE_SERVER;
        int m = role == DX_ROLE_SERVER; /* what the peer sends */
        for (int op = 3; op <= 0xF; op++) {
            if (op >= 8 && op <= 0xA) continue;
            expect_err(role, 0, 0, f, build(f, (uint8_t)(0x80 | op), m, 1, 0), DX_EPROTO);
        }
        for (int bit = 4; bit <= 6; bit++)
            expect_err(role, 0, 0, f, build(f, (uint8_t)(0x81 | 1 << bit), m, 1, 0), DX_EPROTO);
        /* RSV1 allowed on a first data frame once negotiated... */
        CHECK_EQ_INT(parse_all(role, 0, DX_RSV1, f, build(f, 0xC1, m, 3, 0), 0, &R), 1);
        CHECK_EQ_INT(R.hdr.rsv, DX_RSV1);
        /* ...but never on continuations or control frames. */
        size_t n = build(g, 0x41, m, 3, 0);
        n += build(g + n, 0xC0, m, 3, 0);
        expect_err(role, 0, DX_RSV1, g, n, DX_EPROTO);
        expect_err(role, 0, DX_RSV1, f, build(f, 0xC9, m, 1, 0), DX_EPROTO);
        /* Control frames: fragmented, or over 125 bytes. */
        expect_err(role, 0, 0, f, build(f, 0x09, m, 1, 0), DX_EPROTO);
        expect_err(role, 0, 0, f, build(f, 0x89, m, 126, 1), DX_EPROTO);
        expect_err(role, 0, 0, f, build(f, 0x88, m, 126, 1), DX_EPROTO);
        CHECK_EQ_INT(parse_all(role, 0, 0, f, build(f, 0x89, m, 125, 0), 0, &R), 1);
        /* Masking the wrong way round. */
        expect_err(role, 0, 0, f, build(f, 0x81, !m, 1, 0), DX_EPROTO);
        /* 64-bit length with the top bit set. */
        expect_err(role, 0, 0, f, build(f, 0x82, m, 1ull << 63, 2), DX_EPROTO);
        /* Continuation without a start; data frame inside a fragmented one. */
        expect_err(role, 0, 0, f, build(f, 0x80, m, 1, 0), DX_EPROTO);
        n = build(g, 0x01, m, 2, 0);
        n += build(g + n, 0x81, m, 2, 0);
        expect_err(role, 0, 0, g, n, DX_EPROTO);
        n = build(g, 0x02, m, 2, 0);
        n += build(g + n, 0x02, m, 2, 0);
        expect_err(role, 0, 0, g, n, DX_EPROTO);
        /* Control frames between fragments are fine. */
        n = build(g, 0x01, m, 2, 0);
        n += build(g + n, 0x89, m, 2, 0);
        n += build(g + n, 0x8A, m, 0, 0);
        n += build(g + n, 0x80, m, 2, 0);
        CHECK_EQ_INT(parse_all(role, 0, 0, g, n, 1, &R), 4);
        /* max_message: a single frame, from the header alone... */
        n = build(f, 0x82, m, 1000, 1);
        expect_err(role, 999, 0, f, n, DX_ETOOBIG);
        CHECK_EQ_INT(parse_all(role, 1000, 0, f, n, 0, &R), 0); /* header only: ok, no frame yet */
        expect_err(role, 1 << 20, 0, f, build(f, 0x82, m, 1ull << 62, 2), DX_ETOOBIG);
        /* ...and the sum of fragments. */
        n = build(g, 0x02, m, 100, 0);
        n += build(g + n, 0x00, m, 100, 0);
        n += build(g + n, 0x80, m, 100, 0);
        expect_err(role, 250, 0, g, n, DX_ETOOBIG);
        CHECK_EQ_INT(parse_all(role, 300, 0, g, n, 7, &R), 3);
        /* A bound above 4 GiB - 1 is kept as 4 GiB - 1: a 4 GiB frame is too
         * big under a 16 GiB bound, one byte less is not (header only). */
        expect_err(role, 1ull << 34, 0, f, build(f, 0x82, m, 1ull << 32, 2), DX_ETOOBIG);
        CHECK_EQ_INT(
            parse_all(role, 1ull << 34, 0, f, build(f, 0x82, m, (1ull << 32) - 1, 2), 0, &R), 0);
        /* max 0 means no limit. */
        CHECK_EQ_INT(parse_all(role, 0, 0, f, build(f, 0x82, m, 200, 1), 0, &R), 1);
    }
}

static void test_round_trip(void) {
    size_t cap = (1 << 20) + 64;
    uint8_t *wire = malloc(cap * 2), *payload = malloc(1 << 20), *got = malloc(1 << 20);
    REQUIRE(wire && payload && got);
    static const uint64_t edges[] = {0, 1, 125, 126, 127, 65535, 65536, 65537};
    for (int iter = 0; iter < 300; iter++) {
        enum dx_role writer = iter & 1 ? DX_ROLE_CLIENT : DX_ROLE_SERVER;
        enum dx_role reader = writer == DX_ROLE_CLIENT ? DX_ROLE_SERVER : DX_ROLE_CLIENT;
        size_t len = iter < 8 ? (size_t)edges[iter] : iter % 50 == 0 ? (size_t)(dx_t_rand() % (1 << 20))
                                                                     : (size_t)(dx_t_rand() % 2000);
        for (size_t i = 0; i < len; i++) payload[i] = (uint8_t)dx_t_rand();
        /* A message cut into 1-3 fragments, with a ping in between. */
        size_t cut = len ? (size_t)(dx_t_rand() % (len + 1)) : 0;
        size_t n = 0;
        int64_t w = dx_frame_write(wire, cap * 2, writer, 0, 0, DX_OP_BINARY, payload, cut);
        REQUIRE(w > 0);
        n += (size_t)w;
        w = dx_frame_write(wire + n, cap * 2 - n, writer, 1, 0, DX_OP_PING, "p", 1);
        n += (size_t)w;
        w = dx_frame_write(wire + n, cap * 2 - n, writer, 1, 0, DX_OP_CONT, payload + cut, len - cut);
        REQUIRE(w > 0);
        n += (size_t)w;
        /* Then a whole message of the first `cut` bytes. */
        w = dx_frame_write(wire + n, cap * 2 - n, writer, 1, 0, DX_OP_BINARY, payload, cut);
        CHECK_EQ_INT(w, dx_frame_header_size(cut, writer == DX_ROLE_CLIENT) + cut);
        n += (size_t)w;
        /* Parse at random split points. */
        dx_frame_parser p;
        dx_frame_parser_init(&p, reader, 0);
        size_t pos = 0, glen = 0;
        int frames = 0, data_frames = 0;
        while (pos < n) {
            size_t piece = 1 + dx_t_rand() % (iter % 3 == 0 ? 7 : 5000);
            if (piece > n - pos) piece = n - pos;
            uint8_t *q = wire + pos;
            size_t left = piece;
            while (left) {
                dx_frame_chunk ch;
                int64_t k = dx_frame_parse(&p, q, left, &ch);
                REQUIRE(k >= 0);
                if (ch.present && ch.hdr->opcode != DX_OP_PING) {
                    memcpy(got + glen, ch.data, ch.len);
                    glen += ch.len;
                    CHECK(ch.offset + ch.len <= ch.hdr->length);
                    data_frames += ch.last;
                }
                frames += ch.present && ch.last;
                q += k;
                left -= (size_t)k;
            }
            pos += piece;
        }
        CHECK_EQ_INT(frames, 4);
        CHECK_EQ_INT(data_frames, 3);
        CHECK_EQ_INT(glen, len + cut);
        CHECK(memcmp(got, payload, len) == 0);
        CHECK(memcmp(got + len, payload, cut) == 0);
    }
    free(wire);
    free(payload);
    free(got);
}

static void test_close_payload(void) {
    uint8_t out[125];
    CHECK_EQ_INT(dx_close_payload(out, 1000, "bye", 3), 5);
    CHECK(out[0] == 0x03 && out[1] == 0xE8 && memcmp(out + 2, "bye", 3) == 0);
    CHECK_EQ_INT(dx_close_payload(out, 0, NULL, 0), 0);
    CHECK_EQ_INT(dx_close_payload(out, 0, "x", 1), DX_EINVAL);
    static const unsigned bad[] = {1, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(dx_close_payload(out, bad[i], NULL, 0), DX_EINVAL);
        uint8_t p[2] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
        uint16_t code;
        const uint8_t *reason;
        size_t rl;
        CHECK_EQ_INT(dx_close_parse(p, 2, &code, &reason, &rl), DX_EPROTO);
    }
    static const unsigned good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012,
                                    1013, 1014, 3000, 4999};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        CHECK_EQ_INT(dx_close_payload(out, good[i], "ok", 2), 4);
        uint16_t code;
        const uint8_t *reason;
        size_t rl;
        CHECK_EQ_INT(dx_close_parse(out, 4, &code, &reason, &rl), 0);
        CHECK(code == good[i] && rl == 2 && memcmp(reason, "ok", 2) == 0);
    }
    char r123[124];
    memset(r123, 'r', sizeof r123);
    CHECK_EQ_INT(dx_close_payload(out, 1000, r123, 123), 125);
    CHECK_EQ_INT(dx_close_payload(out, 1000, r123, 124), DX_EINVAL);
    CHECK_EQ_INT(dx_close_payload(out, 1000, "\xff", 1), DX_EINVAL);
    uint16_t code;
    const uint8_t *reason;
    size_t rl;
    CHECK_EQ_INT(dx_close_parse(out, 0, &code, &reason, &rl), 0);
    CHECK_EQ_INT(code, 1005);
    CHECK_EQ_INT(dx_close_parse((const uint8_t *)"\x03", 1, &code, &reason, &rl), DX_EPROTO);
    CHECK_EQ_INT(dx_close_parse((const uint8_t *)"\x03\xe8\xc0\xaf", 4, &code, &reason, &rl), DX_EUTF8);
}

static void test_writer_errors(void) {
    uint8_t out[200];
    char big[126] = {0};
    CHECK_EQ_INT(dx_frame_write(out, 6, DX_ROLE_SERVER, 1, 0, DX_OP_TEXT, "Hello", 5), DX_ENOSPC);
    CHECK_EQ_INT(dx_frame_write(out, 10, DX_ROLE_CLIENT, 1, 0, DX_OP_TEXT, "Hello", 5), DX_ENOSPC);
    CHECK_EQ_INT(dx_frame_write(out, sizeof out, DX_ROLE_SERVER, 1, 0, DX_OP_PING, big, 126), DX_EINVAL);
    CHECK_EQ_INT(dx_frame_write(out, sizeof out, DX_ROLE_SERVER, 0, 0, DX_OP_PING, "", 0), DX_EINVAL);
    CHECK_EQ_INT(dx_frame_write(out, sizeof out, DX_ROLE_SERVER, 1, 0, 3, "", 0), DX_EINVAL);
    CHECK_EQ_INT(dx_frame_write(out, sizeof out, DX_ROLE_SERVER, 1, 0, 0xB, "", 0), DX_EINVAL);
    /* A client's frame is masked with a fresh key, and the payload is not modified. */
    char msg[] = "Hello";
    CHECK_EQ_INT(dx_frame_write(out, sizeof out, DX_ROLE_CLIENT, 1, 0, DX_OP_TEXT, msg, 5), 11);
    CHECK(strcmp(msg, "Hello") == 0 && (out[1] & 0x80));
    uint8_t out2[20];
    dx_frame_write(out2, sizeof out2, DX_ROLE_CLIENT, 1, 0, DX_OP_TEXT, msg, 5);
    CHECK(memcmp(out + 2, out2 + 2, 4) != 0); /* keys differ (1 in 2^32 false failure) */
}

/* Input ending right before a PROT_NONE page: any read past it faults. */
static void test_guard_page(void) {
    long pg = sysconf(_SC_PAGESIZE);
    uint8_t *mem = mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(mem != MAP_FAILED);
    REQUIRE(mprotect(mem + pg, (size_t)pg, PROT_NONE) == 0);
    uint8_t f[300];
    size_t flen = build(f, 0x82, 1, 200, 1);
    for (size_t len = 1; len <= flen; len++) {
        uint8_t *in = mem + pg - len;
        memcpy(in, f, len);
        dx_frame_parser p;
        dx_frame_parser_init(&p, DX_ROLE_SERVER, 0);
        size_t left = len;
        while (left) {
            dx_frame_chunk ch;
            int64_t n = dx_frame_parse(&p, in, left, &ch);
            REQUIRE(n >= 0);
            in += n;
            left -= (size_t)n;
        }
    }
    munmap(mem, (size_t)pg * 2);
}

/* Whole small messages (the parser's fastest path) of every length under
 * 126, both roles, text and binary: the payload comes back unmasked, the
 * header is reported, max_message is enforced, and each rule still holds
 * (a data frame inside an open fragmented message, RSV bits, the wrong
 * masking for the role). */
static void test_small_whole_frames(void) {
    uint8_t payload[125], wire[140];
    for (size_t i = 0; i < sizeof payload; i++) payload[i] = (uint8_t)dx_t_rand();
    for (int role = 0; role < 2; role++) {
        enum dx_role reader = role ? DX_ROLE_SERVER : DX_ROLE_CLIENT;
        enum dx_role writer = role ? DX_ROLE_CLIENT : DX_ROLE_SERVER;
        for (size_t len = 0; len <= 125; len++) {
            uint8_t op = len & 1 ? DX_OP_BINARY : DX_OP_TEXT;
            int64_t w = dx_frame_write(wire, sizeof wire, writer, 1, 0, op, payload, len);
            REQUIRE(w > 0);
            /* Trailing bytes of a next frame must not be taken. */
            wire[w] = 0x81;
            dx_frame_parser p;
            dx_frame_parser_init(&p, reader, 125);
            dx_frame_chunk ch;
            CHECK_EQ_INT(dx_frame_parse(&p, wire, (size_t)w + 1, &ch), w);
            CHECK(ch.present && ch.first && ch.last && ch.msg_first);
            CHECK_EQ_INT(ch.len, len);
            CHECK_EQ_INT(ch.offset, 0);
            CHECK_EQ_INT(ch.hdr->opcode, op);
            CHECK_EQ_INT(ch.hdr->length, len);
            CHECK_EQ_INT(ch.hdr->masked, reader == DX_ROLE_SERVER);
            CHECK(ch.hdr->fin && ch.hdr->rsv == 0);
            CHECK(len == 0 || memcmp(ch.data, payload, len) == 0);
            /* One byte short: nothing reported yet, then the rest. */
            w = dx_frame_write(wire, sizeof wire, writer, 1, 0, op, payload, len);
            dx_frame_parser_init(&p, reader, 0);
            size_t got = 0;
            int64_t n = dx_frame_parse(&p, wire, (size_t)w - 1, &ch);
            REQUIRE(n >= 0);
            if (ch.present) got += ch.len;
            CHECK(!ch.present || !ch.last);
            int64_t m = dx_frame_parse(&p, wire + n, (size_t)(w - n), &ch);
            CHECK_EQ_INT(n + m, w);
            CHECK(ch.present && ch.last);
            got += ch.len;
            CHECK_EQ_INT(got, len);
            if (len == 0) continue;
            /* Over max_message (0 would mean no limit). */
            if (len > 1) {
                w = dx_frame_write(wire, sizeof wire, writer, 1, 0, op, payload, len);
                dx_frame_parser_init(&p, reader, len - 1);
                CHECK_EQ_INT(dx_frame_parse(&p, wire, (size_t)w, &ch), DX_ETOOBIG);
            }
            /* RSV1 not negotiated. */
            w = dx_frame_write(wire, sizeof wire, writer, 1, DX_RSV1, op, payload, len);
            dx_frame_parser_init(&p, reader, 0);
            CHECK_EQ_INT(dx_frame_parse(&p, wire, (size_t)w, &ch), DX_EPROTO);
            /* Masked as the other role would. */
            w = dx_frame_write(wire, sizeof wire, reader, 1, 0, op, payload, len);
            dx_frame_parser_init(&p, reader, 0);
            CHECK_EQ_INT(dx_frame_parse(&p, wire, (size_t)w, &ch), DX_EPROTO);
            /* A new message while a fragmented one is open. */
            dx_frame_parser_init(&p, reader, 0);
            w = dx_frame_write(wire, sizeof wire, writer, 0, 0, op, payload, len);
            CHECK_EQ_INT(dx_frame_parse(&p, wire, (size_t)w, &ch), w);
            w = dx_frame_write(wire, sizeof wire, writer, 1, 0, op, payload, len);
            CHECK_EQ_INT(dx_frame_parse(&p, wire, (size_t)w, &ch), DX_EPROTO);
        }
    }
}

int main(void) {
    dx_t_seed();
    RUN(test_rfc_examples);
    RUN(test_rules);
    RUN(test_round_trip);
    RUN(test_small_whole_frames);
    RUN(test_close_payload);
    RUN(test_writer_errors);
    RUN(test_guard_page);
    return TEST_DONE();
}

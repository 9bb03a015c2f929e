/* The frame parser (src/core/frame.c), both roles, every limit.
 *
 * cfg bit 0: role (server expects masked frames, client unmasked);
 * bits 1-2: max_message 0 (none), 125, 1000 or 1 MiB; bits 3-5: RSV bits
 * allowed (as an extension would). The data is parsed twice, in one call
 * per chunk and in fuzzer-chosen pieces, and the two traces (headers and
 * unmasked payload bytes, then the error) must be identical: splitting the
 * input anywhere must change nothing. Every chunk is checked against the
 * rules the parser promises (control frames, limits, slices inside the
 * buffer). Then the writer: a frame built from the data must parse back to
 * itself in the other role. */
#include <duplex/frame.h>
#include <duplex/utf8.h>

#include "fuzz.h"

static const uint64_t limits[4] = {0, 125, 1000, 1u << 20};

typedef struct run {
    fz_buf trace;
    int err;
    uint64_t msg_total; /* bytes announced in the current data message */
} run;

static void check_chunk(const dx_frame_parser *p, const dx_frame_chunk *ch, const uint8_t *buf,
                        size_t len, uint64_t max, run *r) {
    const dx_frame_header *h = ch->hdr;
    FZ_CHECK(h != NULL);
    FZ_CHECK(ch->len == 0 || (ch->data >= buf && ch->data + ch->len <= buf + len));
    FZ_CHECK(ch->offset + ch->len <= h->length);
    FZ_CHECK(ch->last == (ch->offset + ch->len == h->length));
    FZ_CHECK(h->masked == (p->role == DX_ROLE_SERVER));
    if (h->opcode >= 8) {
        FZ_CHECK(h->opcode <= DX_OP_PONG);
        FZ_CHECK(h->fin && h->rsv == 0 && h->length <= 125);
        FZ_CHECK(!ch->msg_first);
    } else {
        FZ_CHECK(h->opcode <= DX_OP_BINARY);
        if (h->opcode == DX_OP_CONT)
            FZ_CHECK(h->rsv == 0 && !ch->msg_first);
        else
            FZ_CHECK(ch->msg_first == ch->first);
        if (ch->first) {
            if (h->opcode != DX_OP_CONT) r->msg_total = 0;
            r->msg_total += h->length;
            if (max) FZ_CHECK(r->msg_total <= max);
        }
    }
}

/* Feeds `data` in pieces (or whole when `in` is NULL) and records the trace. */
static void parse_all(const uint8_t *data, size_t len, fz_input *in, int role, uint64_t max,
                      uint8_t rsv, run *r) {
    dx_frame_parser p;
    dx_frame_parser_init(&p, (enum dx_role)role, max);
    dx_frame_parser_allow_rsv(&p, rsv);
    r->err = 0;
    r->msg_total = 0;
    size_t off = 0;
    while (off < len) {
        size_t n = in ? fz_piece(in, len - off) : len - off;
        uint8_t *buf = fz_dup(data + off, n);
        size_t pos = 0;
        int stalls = 0;
        while (pos < n) {
            dx_frame_chunk ch;
            int64_t got = dx_frame_parse(&p, buf + pos, n - pos, &ch);
            if (got < 0) {
                FZ_CHECK(got == DX_EPROTO || got == DX_ETOOBIG);
                r->err = (int)got;
                free(buf);
                return;
            }
            FZ_CHECK((size_t)got <= n - pos);
            if (ch.present) {
                check_chunk(&p, &ch, buf + pos, n - pos, max, r);
                if (ch.first) {
                    const dx_frame_header *h = ch.hdr;
                    uint8_t rec[4] = {h->fin, h->rsv, h->opcode, 0xff};
                    fz_put(&r->trace, rec, sizeof rec);
                    fz_put_u64(&r->trace, h->length);
                }
                fz_put(&r->trace, ch.data, ch.len);
            }
            pos += (size_t)got;
            /* A call that consumes nothing and reports nothing must not
             * happen with input left; twice in a row would be a hang. */
            stalls = got == 0 && !ch.present ? stalls + 1 : 0;
            FZ_CHECK(stalls < 2);
        }
        free(buf);
        off += n;
    }
}

/* Writer → parser round trip in the other role. */
static void round_trip(const uint8_t *data, size_t len, uint8_t cfg) {
    int role = cfg & 1;
    uint8_t opcode = (uint8_t[]){DX_OP_TEXT, DX_OP_BINARY, DX_OP_PING, DX_OP_CONT}[(cfg >> 6) & 3];
    int fin = opcode != DX_OP_CONT;
    if (opcode == DX_OP_PING && len > 125) len = 125;
    size_t cap = len + DX_FRAME_MAX_HEADER;
    uint8_t *out = malloc(cap);
    if (!out) abort();
    int64_t n = dx_frame_write(out, cap, (enum dx_role)role, fin, 0, opcode, data, len);
    FZ_CHECK(n == (int64_t)(dx_frame_header_size(len, role == DX_ROLE_CLIENT) + len));
    FZ_CHECK(dx_frame_write(out, (size_t)n - 1, (enum dx_role)role, fin, 0, opcode, data, len) ==
             DX_ENOSPC);
    dx_frame_parser p;
    dx_frame_parser_init(&p, role == DX_ROLE_CLIENT ? DX_ROLE_SERVER : DX_ROLE_CLIENT, 0);
    if (opcode == DX_OP_CONT) {
        /* A continuation needs an open message: a one-byte-short first
         * frame opens it. */
        uint8_t open[2 + 4 + 0];
        size_t h = dx_frame_write_header(open, 0, 0, DX_OP_BINARY, 0,
                                         role == DX_ROLE_CLIENT ? (const uint8_t *)"abcd" : NULL);
        dx_frame_chunk ch;
        FZ_CHECK(dx_frame_parse(&p, open, h, &ch) == (int64_t)h && ch.present);
    }
    dx_frame_chunk ch;
    int64_t got = dx_frame_parse(&p, out, (size_t)n, &ch);
    FZ_CHECK(got == n && ch.present && ch.first && ch.last);
    FZ_CHECK(ch.len == len && (len == 0 || memcmp(ch.data, data, len) == 0));
    FZ_CHECK(ch.hdr->opcode == opcode && ch.hdr->fin == fin);
    free(out);

    /* Close payloads: what dx_close_parse accepts, dx_close_payload rebuilds. */
    uint16_t code;
    const uint8_t *reason;
    size_t rlen;
    size_t clen = len > 125 ? 125 : len;
    if (dx_close_parse(data, clen, &code, &reason, &rlen) == 0 && clen >= 2) {
        uint8_t again[125];
        FZ_CHECK(dx_close_payload(again, code, (const char *)reason, rlen) == (int)clen);
        FZ_CHECK(memcmp(again, data, clen) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_input in;
    if (!fz_input_init(&in, data, size)) return 0;
    int role = in.cfg & 1;
    uint64_t max = limits[(in.cfg >> 1) & 3];
    uint8_t rsv = (in.cfg >> 3) & 7;

    run whole = {0}, split = {0};
    parse_all(in.data, in.len, NULL, role, max, rsv, &whole);
    parse_all(in.data, in.len, &in, role, max, rsv, &split);
    FZ_CHECK(whole.err == split.err);
    FZ_CHECK(whole.trace.len == split.trace.len);
    FZ_CHECK(whole.trace.len == 0 || memcmp(whole.trace.p, split.trace.p, whole.trace.len) == 0);
    free(whole.trace.p);
    free(split.trace.p);

    round_trip(in.data, in.len, in.cfg);
    return 0;
}

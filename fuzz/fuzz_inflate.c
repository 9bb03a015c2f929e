/* The permessage-deflate data path (src/core/deflate.c): a peer's
 * compressed messages decompressed with every agreed parameter, split at
 * fuzzer-chosen points, into the thread's buffer or a sink.
 *
 * cfg bit 0: our role; bit 1: the peer keeps its context between messages
 * (so our own decompressor carries the window over); bits 2-4: the peer's
 * window bits 8-15; bit 5: sink mode (stream delivery) instead of a buffer;
 * bits 6-7: the message limit none, 1000, 64 KiB or 1 MiB.
 *
 * The data is a run of messages: each piece ends its message with
 * probability 1/4 (and the last piece always does). Properties: every call
 * returns 0 or a documented error; output never passes the limit by more
 * than one 16 KiB step, and a success never passes it at all (the
 * decompression-bomb bound); sink pieces are at most 16 KiB; without
 * context takeover, a message that zlib itself decompresses gives exactly
 * zlib's bytes. Then a round trip: the data compressed by a peer's
 * dx__pmd_deflate decompresses to itself. */
#include <zlib.h>

#include "core/deflate.h"

#include "fuzz.h"

static const uint64_t limits[4] = {0, 1000, 65536, 1u << 20};

typedef struct sink_state {
    fz_buf out;
} sink_state;

static int sink(void *arg, const uint8_t *data, size_t len) {
    sink_state *s = arg;
    FZ_CHECK(len > 0 && len <= 16384);
    fz_put(&s->out, data, len);
    return 0;
}

/* zlib's own answer for one message (raw inflate of data + 00 00 ff ff),
 * or -1 when zlib finds it corrupt or it exceeds `cap`. */
static int reference(const uint8_t *in, size_t len, fz_buf *out, size_t cap) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, -15) != Z_OK) abort();
    static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
    uint8_t *msg = malloc(len + 4);
    if (!msg) abort();
    if (len) memcpy(msg, in, len);
    memcpy(msg + len, tail, 4);
    z.next_in = msg;
    z.avail_in = (uInt)(len + 4);
    uint8_t step[16384];
    int rc = 0;
    for (;;) {
        z.next_out = step;
        z.avail_out = sizeof step;
        int zr = inflate(&z, Z_SYNC_FLUSH);
        fz_put(out, step, sizeof step - z.avail_out);
        if (out->len > cap) {
            rc = -1;
            break;
        }
        if (zr == Z_STREAM_END) break;
        if (zr == Z_BUF_ERROR && z.avail_in == 0) break; /* all consumed */
        if (zr != Z_OK) {
            rc = -1;
            break;
        }
    }
    inflateEnd(&z);
    free(msg);
    return rc;
}

static void round_trip(const uint8_t *data, size_t len, int role, const dx_deflate_params *a) {
    /* The sender is the peer; threshold 1 so that everything is compressed. */
    dx_deflate_config scfg = {.enable = 1, .threshold = 1};
    int err = 0;
    dx__pmd *tx =
        dx__pmd_new(role == DX_ROLE_SERVER ? DX_ROLE_CLIENT : DX_ROLE_SERVER, a, &scfg, &err);
    dx__pmd *rx = dx__pmd_new((enum dx_role)role, a, NULL, &err);
    FZ_CHECK(tx && rx);
    if (dx__pmd_want(tx, len) && len) {
        const uint8_t *z;
        size_t zl;
        FZ_CHECK(dx__pmd_deflate(tx, data, len, 1, &z, &zl) == 0);
        uint8_t *copy = fz_dup(z, zl);
        dx__pmd_buf b;
        dx__pmd_buf_take(&b);
        FZ_CHECK(dx__pmd_inflate(rx, copy, zl, 1, 1, 0, &b, NULL, NULL) == 0);
        FZ_CHECK(b.len == len && memcmp(b.data, data, len) == 0);
        dx__pmd_buf_give(&b);
        free(copy);
    }
    dx__pmd_free(tx);
    dx__pmd_free(rx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_input in;
    if (!fz_input_init(&in, data, size)) return 0;
    int role = in.cfg & 1;
    int peer_keeps = (in.cfg >> 1) & 1;
    int bits = 8 + ((in.cfg >> 2) & 7);
    int sink_mode = (in.cfg >> 5) & 1;
    uint64_t limit = limits[in.cfg >> 6];

    /* The peer's side of the agreement is what we receive with. */
    dx_deflate_params a = {0, 0, 15, 15};
    if (role == DX_ROLE_SERVER) {
        a.client_no_context_takeover = (uint8_t)!peer_keeps;
        a.client_max_window_bits = (uint8_t)bits;
    } else {
        a.server_no_context_takeover = (uint8_t)!peer_keeps;
        a.server_max_window_bits = (uint8_t)bits;
    }
    int err = 0;
    dx__pmd *p = dx__pmd_new((enum dx_role)role, &a, NULL, &err);
    FZ_CHECK(p != NULL);

    size_t off = 0, msg_start = 0;
    int pieces = 0;
    sink_state s = {{0}};
    dx__pmd_buf b;
    int have_buf = 0;
    while (off < in.len) {
        size_t n = fz_piece(&in, in.len - off);
        int fin = off + n == in.len || (fz_rand(&in) & 3) == 0;
        int whole = fin && pieces == 0;
        uint8_t *piece = fz_dup(in.data + off, n);
        if (!sink_mode && !have_buf) {
            dx__pmd_buf_take(&b);
            have_buf = 1;
        }
        int rc = dx__pmd_inflate(p, piece, n, fin, whole, limit, sink_mode ? NULL : &b,
                                 sink_mode ? sink : NULL, &s);
        free(piece);
        FZ_CHECK(rc == 0 || rc == DX_ETOOBIG || rc == DX_EEXT || rc == DX_ENOMEM);
        size_t got = sink_mode ? s.out.len : b.len;
        if (limit) FZ_CHECK(got <= limit + (rc == DX_ETOOBIG ? 16384 : 0));
        if (rc == DX_ETOOBIG) FZ_CHECK(limit != 0);
        off += n;
        pieces++;
        if (rc != 0) break; /* the connection is failed */
        if (!fin) continue;
        /* A whole message without context: zlib must agree. */
        if (!peer_keeps) {
            fz_buf ref = {0};
            size_t cap = limit ? (size_t)limit : (64u << 20);
            const uint8_t *out = sink_mode ? s.out.p : b.data;
            if (reference(in.data + msg_start, off - msg_start, &ref, cap) == 0) {
                FZ_CHECK(ref.len == got);
                FZ_CHECK(got == 0 || memcmp(ref.p, out, got) == 0);
            }
            free(ref.p);
        }
        s.out.len = 0;
        if (have_buf) {
            dx__pmd_buf_give(&b);
            have_buf = 0;
        }
        msg_start = off;
        pieces = 0;
    }
    if (have_buf) dx__pmd_buf_give(&b);
    free(s.out.p);
    FZ_CHECK(peer_keeps || dx__pmd_mem(p) == 0 || pieces > 0);
    dx__pmd_free(p);

    round_trip(in.data, in.len > 65536 ? 65536 : in.len, role, &a);
    dx__pmd_thread_trim();
    return 0;
}

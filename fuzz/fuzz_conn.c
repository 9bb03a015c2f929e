/* The whole sans-I/O connection (src/core/conn.c and everything under it)
 * fed random bytes after a valid opening handshake, in either role.
 *
 * The handshake is done for real with the core's own functions: the
 * request (or, for a client, the 101 answer) is written, the fuzz data is
 * appended to it as if it came in the same read, the head is parsed and
 * checked, and what follows it is fed to dx_conn_recv in fuzzer-chosen
 * pieces, with the output drained in random amounts in between.
 *
 * cfg bit 0: role; bit 1: stream mode; bit 2: the application echoes every
 * message (exercising sends from inside callbacks); bit 3: no automatic
 * pong; bits 4-5: max_message default, 64, 4096 or unlimited; bit 6: fail
 * allocations (every Nth, N from the split seed); bit 7: the application
 * closes (1000) after its third message. The split-seed byte also says:
 * bit 7, permessage-deflate negotiated (bit 6: both sides keep their
 * context; bit 5: windows of 9 bits instead of 15).
 *
 * Properties: text handed to the application is valid UTF-8 by the
 * reference validator; on_close runs exactly once, and a failed recv leaves
 * the connection CLOSED; everything the connection writes parses cleanly
 * with a peer's parser, and nothing follows its close frame; and when the
 * application echoes whole messages, the peer reads back (decompressing
 * with its own permessage-deflate state when the message is compressed)
 * exactly the messages that were echoed, in order. */
#include <duplex/conn.h>
#include <duplex/deflate.h>
#include <duplex/frame.h>
#include <duplex/handshake.h>
#include <duplex/http.h>

#include "core/deflate.h"

#include "fuzz.h"

static const char key[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const uint64_t limits[4] = {0, 64, 4096, UINT64_MAX};

/* Allocation failure injection: dx_set_allocator once, a countdown per
 * input (0 = off). */
static unsigned long fail_every, alloc_count;
static void *f_malloc(size_t n) {
    if (fail_every && ++alloc_count % fail_every == 0) return NULL;
    return malloc(n);
}
static void *f_realloc(void *p, size_t n) {
    if (fail_every && ++alloc_count % fail_every == 0) return NULL;
    return realloc(p, n);
}
static void f_free(void *p) {
    free(p);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    dx_set_allocator(f_malloc, f_realloc, f_free);
    return 0;
}

typedef struct app {
    uint8_t cfg;
    int closes;
    int messages;
    uint16_t close_code;
    fz_buf text; /* stream mode: the text message so far */
    int in_text;
    fz_buf echoed; /* messages echoed: op (1 byte), length (8), bytes */
} app;

/* What a send from inside a callback may return. */
static void check_send(int rc) {
    if (rc == 0 || rc == DX_ESTATE || rc == DX_ENOMEM || rc == DX_EIO) return;
    fprintf(stderr, "send returned %d (%s)\n", rc, dx_strerror(rc));
    FZ_CHECK(!"a send returned an undocumented error");
}

static void check_text(const uint8_t *d, size_t n) {
    FZ_CHECK(fz_utf8_first_bad(d, n) == n);
}

static void on_message(dx_conn *c, void *user, enum dx_opcode op, uint8_t *data, size_t len) {
    app *a = user;
    FZ_CHECK(op == DX_OP_TEXT || op == DX_OP_BINARY);
    FZ_CHECK(dx_conn_state(c) != DX_CLOSED);
    if (op == DX_OP_TEXT) check_text(data, len);
    if (len) data[0] ^= 0x55; /* writable scratch, as documented */
    if (len) data[0] ^= 0x55;
    a->messages++;
    if (a->cfg & 4) {
        int rc = dx_conn_send(c, op, data, len);
        check_send(rc);
        if (rc == 0) {
            uint8_t o = (uint8_t)op;
            fz_put(&a->echoed, &o, 1);
            fz_put_u64(&a->echoed, len);
            fz_put(&a->echoed, data, len);
        }
    }
    if ((a->cfg & 0x80) && a->messages == 3) {
        check_send(dx_conn_close(c, 1000, "bye", 3));
    }
}

static void on_fragment(dx_conn *c, void *user, enum dx_opcode op, const uint8_t *data, size_t len,
                        int first, int fin) {
    app *a = user;
    FZ_CHECK(op == DX_OP_TEXT || op == DX_OP_BINARY);
    if (first) {
        a->text.len = 0;
        a->in_text = op == DX_OP_TEXT;
    }
    if (a->in_text) fz_put(&a->text, data, len);
    if (a->cfg & 4) {
        check_send(dx_conn_send_fragment(c, op, data, len, fin));
    }
    if (fin) {
        if (a->in_text) check_text(a->text.p, a->text.len);
        a->messages++;
    } else if (a->in_text) {
        /* Valid so far: a prefix may end inside a code point. */
        FZ_CHECK(fz_utf8_first_bad(a->text.p, a->text.len) >= a->text.len);
    }
}

static void on_ping(dx_conn *c, void *user, const uint8_t *data, size_t len) {
    FZ_CHECK(len <= 125);
}

static void on_close(dx_conn *c, void *user, uint16_t code, const uint8_t *reason, size_t len,
                     int was_clean) {
    app *a = user;
    a->closes++;
    a->close_code = code;
    FZ_CHECK(a->closes == 1);
    FZ_CHECK(dx_conn_state(c) == DX_CLOSED);
    FZ_CHECK(len <= 123);
    if (len) check_text(reason, len);
    FZ_CHECK(dx_close_code_valid(code) || code == 1005 || code == 1006);
    /* Sends after CLOSED are refused. */
    FZ_CHECK(dx_conn_send(c, DX_OP_TEXT, "x", 1) == DX_ESTATE);
}

static const dx_conn_callbacks cbs = {on_message, NULL, on_ping, NULL, on_close};
static const dx_conn_callbacks stream_cbs = {NULL, on_fragment, on_ping, NULL, on_close};

/* The peer reads what we wrote: it must be valid frames, and nothing may
 * follow our close frame. */
typedef struct peer {
    dx_frame_parser p;
    int closed;
    app *a;
    dx__pmd *pmd;   /* the peer's permessage-deflate state, when negotiated */
    int verify;     /* compare data messages with a->echoed */
    size_t exp_off; /* next record in a->echoed */
    fz_buf msg;     /* the data message being read */
    uint8_t msg_op, msg_rsv;
} peer;

/* A whole data message read by the peer: the next one echoed. Allocation
 * failures are suspended meanwhile: the peer is not under test. */
static void peer_message(peer *pr) {
    if (!pr->verify) return;
    app *a = pr->a;
    FZ_CHECK(pr->exp_off + 9 <= a->echoed.len);
    uint8_t op = a->echoed.p[pr->exp_off];
    uint64_t len;
    memcpy(&len, a->echoed.p + pr->exp_off + 1, 8);
    const uint8_t *want = a->echoed.p + pr->exp_off + 9;
    pr->exp_off += 9 + (size_t)len;
    FZ_CHECK(pr->msg_op == op);
    const uint8_t *got = pr->msg.p;
    size_t got_len = pr->msg.len;
    dx__pmd_buf b;
    int inflated = 0;
    unsigned long saved = fail_every;
    fail_every = 0;
    if (pr->msg_rsv & DX_RSV1) {
        FZ_CHECK(pr->pmd != NULL);
        dx__pmd_buf_take(&b);
        FZ_CHECK(dx__pmd_inflate(pr->pmd, pr->msg.p, pr->msg.len, 1, 0, 0, &b, NULL, NULL) == 0);
        got = b.data;
        got_len = b.len;
        inflated = 1;
    } else {
        FZ_CHECK(pr->msg_rsv == 0);
    }
    FZ_CHECK(got_len == len && (len == 0 || memcmp(got, want, len) == 0));
    if (inflated) dx__pmd_buf_give(&b);
    fail_every = saved;
}

static void drain(dx_conn *c, peer *pr, fz_input *in, int all) {
    for (;;) {
        struct iovec iov[4];
        int n = dx_conn_out_iov(c, iov, 4);
        FZ_CHECK(n >= 0 && n <= 4);
        if (n == 0) {
            FZ_CHECK(dx_conn_buffered(c) == 0);
            return;
        }
        size_t total = 0;
        for (int i = 0; i < n; i++) {
            FZ_CHECK(iov[i].iov_len > 0);
            total += iov[i].iov_len;
        }
        FZ_CHECK(total <= dx_conn_buffered(c));
        /* Consume part of what is offered, as a short write would. */
        size_t take = all ? total : 1 + fz_rand(in) % total;
        size_t left = take;
        for (int i = 0; i < n && left; i++) {
            size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
            uint8_t *copy = fz_dup(iov[i].iov_base, k);
            size_t pos = 0;
            while (pos < k) {
                dx_frame_chunk ch;
                int64_t got = dx_frame_parse(&pr->p, copy + pos, k - pos, &ch);
                FZ_CHECK(got >= 0);
                if (ch.present && ch.first) {
                    FZ_CHECK(!pr->closed);
                    if (ch.hdr->opcode == DX_OP_CLOSE) pr->closed = 1;
                }
                if (ch.present && ch.hdr->opcode < 8) {
                    if (ch.first && ch.msg_first) {
                        pr->msg.len = 0;
                        pr->msg_op = ch.hdr->opcode;
                        pr->msg_rsv = ch.hdr->rsv;
                    }
                    fz_put(&pr->msg, ch.data, ch.len);
                    if (ch.last && ch.hdr->fin) peer_message(pr);
                }
                pos += (size_t)got;
                if (got == 0 && !ch.present) break;
            }
            free(copy);
            left -= k;
        }
        dx_conn_out_consume(c, take);
        if (!all) return;
    }
}

/* Builds the handshake for `role`, followed by the data; returns the
 * buffer and sets *head to the length of the handshake head. */
static uint8_t *handshake(int role, const uint8_t *data, size_t len, size_t *total, size_t *head) {
    char hs[512];
    int n = role == DX_ROLE_SERVER
                ? dx_handshake_write_request(hs, sizeof hs, "example.com", "/chat?x=1", key, "chat",
                                             NULL, "https://example.com", NULL)
                : dx_handshake_write_101(hs, sizeof hs, key, NULL, NULL, NULL);
    FZ_CHECK(n > 0);
    uint8_t *buf = malloc((size_t)n + len + 1);
    if (!buf) abort();
    memcpy(buf, hs, (size_t)n);
    if (len) memcpy(buf + n, data, len);
    *total = (size_t)n + len;
    dx_http_header h[16];
    int rc;
    if (role == DX_ROLE_SERVER) {
        dx_http_request req = {.headers = h, .num_headers = 16};
        rc = dx_http_parse_request((const char *)buf, *total, 8192, &req);
        FZ_CHECK(rc == n);
        dx_handshake_info info;
        FZ_CHECK(dx_handshake_check(&req, &info, NULL) == 0);
        FZ_CHECK(info.path_len == 5 && info.query_len == 3);
    } else {
        dx_http_response res = {.headers = h, .num_headers = 16};
        rc = dx_http_parse_response((const char *)buf, *total, 8192, &res);
        FZ_CHECK(rc == n);
        FZ_CHECK(dx_handshake_verify(&res, key, NULL, 0, NULL, NULL, NULL, NULL, NULL) == 0);
    }
    *head = (size_t)rc;
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_input in;
    if (!fz_input_init(&in, data, size)) return 0;
    int role = in.cfg & 1;
    size_t total, head;
    uint8_t *buf = handshake(role, in.data, in.len, &total, &head);

    app a = {.cfg = in.cfg};
    dx_conn_config cfg = {
        .role = (enum dx_role)role,
        .max_message = limits[(in.cfg >> 4) & 3],
        .stream = (in.cfg >> 1) & 1,
        .no_auto_pong = (in.cfg >> 3) & 1,
        .cb = (in.cfg & 2) ? &stream_cbs : &cbs,
        .user = &a,
    };
    alloc_count = 0;
    fail_every = (in.cfg & 0x40) ? 2 + (data[1] >> 2) % 16 : 0;
    dx_conn *c = dx_conn_new(&cfg, 32);
    if (!c) {
        FZ_CHECK(fail_every);
        fail_every = 0;
        free(buf);
        return 0;
    }
    FZ_CHECK(dx_conn_state(c) == DX_CONNECTING);
    FZ_CHECK(dx_conn_recv(c, buf, 0) == DX_ESTATE);
    peer pr = {.a = &a, .verify = (in.cfg & 6) == 4}; /* echo, not stream mode */
    enum dx_role peer_role = role == DX_ROLE_SERVER ? DX_ROLE_CLIENT : DX_ROLE_SERVER;
    dx_frame_parser_init(&pr.p, peer_role, 0);
    if (data[1] & 0x80) {
        int nct = !(data[1] & 0x40);
        uint8_t bits = (data[1] & 0x20) ? 9 : 15;
        dx_deflate_params agreed = {(uint8_t)nct, (uint8_t)nct, bits, bits};
        dx_deflate_config dcfg = {.enable = 1, .threshold = 16};
        int rc = dx_conn_set_deflate(c, &agreed, &dcfg);
        FZ_CHECK(rc == 0 || (rc == DX_ENOMEM && fail_every));
        if (rc == 0) {
            FZ_CHECK(dx_conn_deflate(c));
            FZ_CHECK(dx_conn_set_deflate(c, &agreed, &dcfg) == DX_ESTATE);
            dx_frame_parser_allow_rsv(&pr.p, DX_RSV1);
            unsigned long saved = fail_every;
            fail_every = 0;
            int err = 0;
            pr.pmd = dx__pmd_new(peer_role, &agreed, NULL, &err);
            fail_every = saved;
            FZ_CHECK(pr.pmd != NULL);
        }
    }
    dx_conn_open(c);
    FZ_CHECK(dx_conn_state(c) == DX_OPEN);

    size_t off = head;
    while (off < total) {
        size_t n = fz_piece(&in, total - off);
        uint8_t *piece = fz_dup(buf + off, n);
        int64_t rc = dx_conn_recv(c, piece, n);
        free(piece);
        if (rc < 0) {
            FZ_CHECK(rc == DX_EPROTO || rc == DX_EUTF8 || rc == DX_ETOOBIG || rc == DX_ENOMEM ||
                     rc == DX_EIO || rc == DX_EEXT);
            FZ_CHECK(dx_conn_state(c) == DX_CLOSED && a.closes == 1);
            /* Corrupt compressed text is 1007, corrupt binary 1002. */
            FZ_CHECK(a.close_code == dx_error_close_code((int)rc) ||
                     (rc == DX_EEXT && a.close_code == DX_CLOSE_INVALID_DATA));
        } else {
            FZ_CHECK((size_t)rc == n);
        }
        if (fz_rand(&in) & 1) drain(c, &pr, &in, 0);
        off += n;
    }
    FZ_CHECK(dx_conn_should_close(c) == (dx_conn_state(c) == DX_CLOSED));
    dx_conn_eof(c, 0);
    FZ_CHECK(a.closes == 1 && dx_conn_state(c) == DX_CLOSED);
    fail_every = 0;
    drain(c, &pr, &in, 1);
    /* Everything echoed came out: echoes are queued before any close. */
    if (pr.verify) FZ_CHECK(pr.exp_off == a.echoed.len);
    dx_conn_free(c);
    dx__pmd_free(pr.pmd);
    dx__pmd_thread_trim();
    free(pr.msg.p);
    free(a.echoed.p);
    free(a.text.p);
    free(buf);
    return 0;
}

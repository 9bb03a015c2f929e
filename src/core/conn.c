/* The sans-I/O WebSocket connection: the frame parser drives it, the output
 * queue takes what it sends. See include/duplex/conn.h for the contract. */
#include <duplex/conn.h>

#include <stdalign.h>
#include <stddef.h>
#include <string.h>

#include <duplex/deflate.h>
#include <duplex/frame.h>
#include <duplex/utf8.h>

#include "core/alloc.h"
#include "core/counters.h"
#include "core/deflate.h"
#include "core/outq.h"

/* A message being reassembled (and a control frame split over calls, kept
 * after the message bytes): one heap block holding its own sizes, so an
 * idle connection pays one pointer for it (bench/README.md, idle memory). */
typedef struct dx__rbuf {
    size_t len;    /* message bytes in data */
    size_t cap;    /* bytes data can hold */
    uint32_t mark; /* the caller's: see dx_conn_partial_mark */
    uint8_t data[];
} dx__rbuf;

struct dx_conn {
    const dx_conn_callbacks *cb;
    void *user;
    dx_frame_parser parser;
    dx__outq out;
    /* Reassembly of a message split over calls or fragmented, and the
     * payload of a control frame split over calls (kept after the message
     * bytes). NULL whenever nothing is pending, so an idle connection holds
     * no heap. A split control frame is rare enough that the heap is
     * preferred to 125 inline bytes in every connection. */
    dx__rbuf *rb;
    dx__pmd *pmd;       /* permessage-deflate state, NULL when not negotiated */
    dx_utf8 utf8;       /* validator of the text message being received */
    uint8_t role;       /* enum dx_role */
    uint8_t state;      /* enum dx_ready_state */
    uint8_t stream;     /* deliver on_fragment pieces */
    uint8_t auto_pong;  /* answer pings */
    uint8_t close_sent; /* our close frame is queued: no more frames */
    uint8_t sending;    /* a fragmented send is in progress (SEND_*) */
    uint8_t msg_op;     /* TEXT or BINARY: the message being received */
    uint8_t msg_flags;  /* MSG_* */
};

enum {
    MSG_CHECK_UTF8 = 1, /* text without extension bits: validate */
    MSG_PIECE_SENT = 2, /* stream mode: the first piece went out */
    MSG_DEFLATE = 4,    /* RSV1 with permessage-deflate: decompress */
};

enum {
    SEND_ON = 1,      /* a fragmented send is in progress */
    SEND_DEFLATE = 2, /* ... and its pieces are compressed */
};

/* The user bytes start here, aligned for any type. */
#define EXTRA_OFFSET                                                                               \
    ((sizeof(struct dx_conn) + alignof(max_align_t) - 1) / alignof(max_align_t) *                  \
     alignof(max_align_t))

dx_conn *dx_conn_new(const dx_conn_config *cfg, size_t extra) {
    if (!cfg || (cfg->role != DX_ROLE_SERVER && cfg->role != DX_ROLE_CLIENT)) return NULL;
    if (extra > SIZE_MAX - EXTRA_OFFSET) return NULL;
    dx_conn *c = dx__calloc(1, EXTRA_OFFSET + extra);
    if (!c) return NULL;
    c->cb = cfg->cb;
    c->user = cfg->user;
    uint64_t max = cfg->max_message;
    if (max == 0)
        max = DX_DEFAULT_MAX_MESSAGE;
    else if (max == UINT64_MAX)
        max = 0; /* the parser's "no limit" */
    dx_frame_parser_init(&c->parser, cfg->role, max);
    c->role = (uint8_t)cfg->role;
    c->state = DX_CONNECTING;
    c->stream = cfg->stream != 0;
    c->auto_pong = !cfg->no_auto_pong;
    return c;
}

static void buf_drop(dx_conn *c) {
    dx__free(c->rb);
    c->rb = NULL;
}

static size_t buf_len(const dx_conn *c) {
    return c->rb ? c->rb->len : 0;
}

void dx_conn_free(dx_conn *c) {
    if (!c) return;
    dx__outq_clear(&c->out);
    dx__free(c->rb);
    dx__pmd_free(c->pmd);
    dx__free(c);
}

void *dx_conn_extra(dx_conn *c) {
    return (uint8_t *)c + EXTRA_OFFSET;
}
void dx_conn_set_user(dx_conn *c, void *user) {
    c->user = user;
}
void *dx_conn_user(const dx_conn *c) {
    return c->user;
}

void dx_conn_open(dx_conn *c) {
    if (c->state == DX_CONNECTING) c->state = DX_OPEN;
}

void dx_conn_allow_rsv(dx_conn *c, uint8_t rsv_bits) {
    dx_frame_parser_allow_rsv(&c->parser, rsv_bits);
}

int dx_conn_set_deflate(dx_conn *c, const dx_deflate_params *agreed, const dx_deflate_config *cfg) {
    if (!c || !agreed) return DX_EINVAL;
    if (c->pmd) return DX_ESTATE;
    int err = DX_ENOMEM;
    c->pmd = dx__pmd_new((enum dx_role)c->role, agreed, cfg, &err);
    if (!c->pmd) return err;
    /* RSV1 marks a compressed message on its first frame; the parser keeps
     * refusing it on continuations and control frames (1002). */
    dx_frame_parser_allow_rsv(&c->parser, (uint8_t)(c->parser.rsv_allowed | DX_RSV1));
    return 0;
}

int dx_conn_deflate(const dx_conn *c) {
    return c && c->pmd != NULL;
}

enum dx_ready_state dx_conn_state(const dx_conn *c) {
    return (enum dx_ready_state)c->state;
}

/* ---- closing ---------------------------------------------------------- */

/* Moves to CLOSED and reports it. The state changes first so that the
 * callback sees CLOSED and cannot queue anything more. */
static void finish(dx_conn *c, uint16_t code, const uint8_t *reason, size_t reason_len,
                   int was_clean) {
    c->state = DX_CLOSED;
    buf_drop(c);
    if (c->cb && c->cb->on_close) c->cb->on_close(c, c->user, code, reason, reason_len, was_clean);
}

static int queue_close(dx_conn *c, unsigned code) {
    uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    int rc = dx__outq_frame(&c->out, (enum dx_role)c->role, 1, 0, DX_OP_CLOSE, p, code ? 2 : 0);
    if (rc == 0) c->close_sent = 1;
    return rc;
}

/* Fails the connection: our close carries the error's code (unless a close
 * was already sent), on_close reports it as unclean. */
static int fail(dx_conn *c, int err) {
    if (c->state == DX_CLOSED) return err;
    uint16_t code = dx_error_close_code(err);
    /* Compressed data that cannot be decompressed: for a text message the
     * data is invalid (1007), for a binary one the framing is (1002). */
    if (err == DX_EEXT && c->msg_op == DX_OP_TEXT) code = DX_CLOSE_INVALID_DATA;
    if (!c->close_sent) (void)queue_close(c, code); /* best effort: we are failing anyway */
    finish(c, code, NULL, 0, 0);
    return err;
}

void dx_conn_eof(dx_conn *c, uint16_t code) {
    if (c->state == DX_CLOSED) return;
    finish(c, code ? code : DX_CLOSE_ABNORMAL, NULL, 0, 0);
}

int dx_conn_fail(dx_conn *c, unsigned code, const char *reason, size_t reason_len) {
    if (!reason && reason_len) return DX_EINVAL;
    uint8_t p[125];
    int n = dx_close_payload(p, code, reason ? reason : "", reason_len);
    if (n < 0) return DX_EINVAL;
    if (c->state != DX_OPEN && c->state != DX_CLOSING) return DX_ESTATE;
    /* Best effort, as for a protocol failure: the connection ends anyway. */
    if (!c->close_sent &&
        dx__outq_frame(&c->out, (enum dx_role)c->role, 1, 0, DX_OP_CLOSE, p, (size_t)n) == 0)
        c->close_sent = 1;
    finish(c, (uint16_t)code, (const uint8_t *)(reason ? reason : ""), reason_len, 0);
    return 0;
}

size_t dx_conn_partial(const dx_conn *c) {
    return c->rb ? c->rb->cap : 0;
}

uint32_t dx_conn_partial_mark(const dx_conn *c) {
    return c->rb ? c->rb->mark : 0;
}

void dx_conn_set_partial_mark(dx_conn *c, uint32_t mark) {
    if (c->rb) c->rb->mark = mark;
}

/* ---- receiving -------------------------------------------------------- */

/* Makes room for `need` bytes in buf. `exact` is the final size when it is
 * known (the last frame of a message, a control frame), so the buffer is
 * not grown past it; otherwise it doubles. Growth follows the bytes that
 * actually arrived, never a length the peer merely announced. */
static int buf_reserve(dx_conn *c, size_t need, uint64_t exact) {
    size_t have = c->rb ? c->rb->cap : 0;
    if (need <= have && c->rb) return 0;
    const size_t max = SIZE_MAX - sizeof(dx__rbuf);
    if (need > max) return DX_ENOMEM;
    size_t cap = have > max / 2 ? max : have * 2;
    if (cap < 256 - sizeof(dx__rbuf)) cap = 256 - sizeof(dx__rbuf); /* a 256-byte block */
    if (cap < need) cap = need;
    if (exact >= need && cap > exact) cap = (size_t)exact;
    dx__rbuf *p = dx__realloc(c->rb, sizeof *p + cap);
    if (!p) return DX_ENOMEM;
    if (!c->rb) {
        p->len = 0;
        p->mark = 0;
    }
    p->cap = cap;
    c->rb = p;
    return 0;
}

static int on_control(dx_conn *c, uint8_t op, uint8_t *data, size_t len) {
    const dx_conn_callbacks *cb = c->cb;
    if (op == DX_OP_PING) {
        if (c->state == DX_OPEN && c->auto_pong) {
            int rc = dx__outq_frame(&c->out, (enum dx_role)c->role, 1, 0, DX_OP_PONG, data, len);
            if (rc) return rc;
        }
        if (cb && cb->on_ping) cb->on_ping(c, c->user, data, len);
        return 0;
    }
    if (op == DX_OP_PONG) {
        if (cb && cb->on_pong) cb->on_pong(c, c->user, data, len);
        return 0;
    }
    uint16_t code;
    const uint8_t *reason;
    size_t reason_len;
    int rc = dx_close_parse(data, len, &code, &reason, &reason_len);
    if (rc) return rc;
    if (!c->close_sent) {
        /* Echo the status code (none when the peer sent none). */
        rc = queue_close(c, code == DX_CLOSE_NO_STATUS ? 0 : code);
        if (rc) return rc;
    }
    finish(c, code, reason, reason_len, 1);
    return 0;
}

static void deliver_piece(dx_conn *c, const uint8_t *data, size_t len, int fin) {
    int first = !(c->msg_flags & MSG_PIECE_SENT);
    if (len == 0 && !fin) return;
    c->msg_flags |= MSG_PIECE_SENT;
    if (c->cb && c->cb->on_fragment)
        c->cb->on_fragment(c, c->user, (enum dx_opcode)c->msg_op, data, len, first, fin);
}

/* Delivers the reassembled message in buf. The buffer is handed over
 * before the callback, which may end the connection (and so drop buffers)
 * from inside. */
static void deliver_buf(dx_conn *c) {
    dx__rbuf *b = c->rb;
    c->rb = NULL;
    if (c->cb && c->cb->on_message) {
        uint8_t empty[1];
        c->cb->on_message(c, c->user, (enum dx_opcode)c->msg_op, b ? b->data : empty,
                          b ? b->len : 0);
    }
    dx__free(b);
}

/* permessage-deflate sinks: decompressed bytes of a message that came in
 * several pieces, checked as UTF-8 as they come (so a bad byte fails fast). */
static int sink_buf(void *arg, const uint8_t *data, size_t len) {
    dx_conn *c = arg;
    dx__counters()->inflate_out += len;
    if ((c->msg_flags & MSG_CHECK_UTF8) && dx_utf8_feed(&c->utf8, data, len)) return DX_EUTF8;
    if (!len) return 0;
    /* Never grown past max_message, which the inflater enforces. */
    size_t have = buf_len(c);
    if (len > SIZE_MAX - have) return DX_ENOMEM;
    int rc = buf_reserve(c, have + len, c->parser.max_message);
    if (rc) return rc;
    memcpy(c->rb->data + have, data, len);
    c->rb->len = have + len;
    return 0;
}

static int sink_piece(void *arg, const uint8_t *data, size_t len) {
    dx_conn *c = arg;
    dx__counters()->inflate_out += len;
    if ((c->msg_flags & MSG_CHECK_UTF8) && dx_utf8_feed(&c->utf8, data, len)) return DX_EUTF8;
    deliver_piece(c, data, len, 0);
    return c->state == DX_CLOSED ? DX_ECLOSED : 0;
}

/* A chunk of a compressed message. The decompressed size is bounded by
 * the same max_message as any message, checked while decompressing. */
static int on_deflated(dx_conn *c, const dx_frame_chunk *ch) {
    const dx_frame_header *h = ch->hdr;
    int final = ch->last && h->fin;
    int check = c->msg_flags & MSG_CHECK_UTF8;
    uint64_t limit = c->parser.max_message;
    int rc;
    dx_conn_counters *k = dx__counters();
    k->inflate_in += ch->len;
    if (c->stream) {
        rc = dx__pmd_inflate(c->pmd, ch->data, ch->len, final, 0, limit, NULL, sink_piece, c);
        if (rc == DX_ECLOSED) return 0; /* a callback ended it */
        if (rc || !final) return rc;
        if (check && dx_utf8_finish(&c->utf8)) return DX_EUTF8;
        static const uint8_t none[1];
        deliver_piece(c, none, 0, 1);
        return 0;
    }
    if (ch->first && ch->last && ch->msg_first && h->fin) {
        /* The common case: decompressed into the thread's buffer, with the
         * thread's shared decompressor unless the peer keeps its context. */
        dx__pmd_buf b;
        dx__pmd_buf_take(&b);
        rc = dx__pmd_inflate(c->pmd, ch->data, ch->len, 1, 1, limit, &b, NULL, NULL);
        k->inflate_out += b.len;
        if (rc == 0 && check && b.len && dx_utf8_valid(b.data, b.len)) rc = DX_EUTF8;
        if (rc == 0 && c->cb && c->cb->on_message) {
            uint8_t empty[1];
            c->cb->on_message(c, c->user, (enum dx_opcode)c->msg_op, b.len ? b.data : empty, b.len);
        }
        dx__pmd_buf_give(&b);
        return rc;
    }
    rc = dx__pmd_inflate(c->pmd, ch->data, ch->len, final, 0, limit, NULL, sink_buf, c);
    if (rc || !final) return rc;
    if (check && dx_utf8_finish(&c->utf8)) return DX_EUTF8;
    deliver_buf(c);
    return 0;
}

/* 1 when `p` is a short run of ASCII, which is valid UTF-8. Chat and
 * game messages are mostly short ASCII; checked eight bytes at a time this
 * costs a few instructions, where the validator's setup for its SIMD
 * blocks (32 bytes) would cost more than the message. */
static int short_ascii(const uint8_t *p, size_t len) {
    if (len > 64) return 0;
    uint64_t acc = 0, w;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&w, p + i, 8);
        acc |= w;
    }
    if (i + 4 <= len) {
        uint32_t w4;
        memcpy(&w4, p + i, 4);
        acc |= w4;
        i += 4;
    }
    for (; i < len; i++)
        acc |= p[i];
    return (acc & 0x8080808080808080ull) == 0;
}

static int on_data(dx_conn *c, const dx_frame_chunk *ch) {
    const dx_frame_header *h = ch->hdr;
    if (ch->first && ch->msg_first) {
        c->msg_op = h->opcode;
        /* With extension bits set the payload is transformed (compressed):
         * its UTF-8 can only be checked after the extension undoes that. */
        int deflated = c->pmd && h->rsv == DX_RSV1;
        c->msg_flags =
            (uint8_t)((h->opcode == DX_OP_TEXT && (h->rsv == 0 || deflated) ? MSG_CHECK_UTF8 : 0) |
                      (deflated ? MSG_DEFLATE : 0));
        dx_utf8_init(&c->utf8);
    }
    if (c->msg_flags & MSG_DEFLATE) return on_deflated(c, ch);
    int check = c->msg_flags & MSG_CHECK_UTF8;
    int final = ch->last && h->fin;

    /* The common case: the whole message in one chunk of the caller's
     * buffer, delivered in place. */
    if (ch->first && ch->last && ch->msg_first && h->fin && !c->stream) {
        if (check && !short_ascii(ch->data, ch->len) && dx_utf8_valid(ch->data, ch->len))
            return DX_EUTF8;
        if (c->cb && c->cb->on_message)
            c->cb->on_message(c, c->user, (enum dx_opcode)c->msg_op, ch->data, ch->len);
        return 0;
    }

    if (check) {
        if (dx_utf8_feed(&c->utf8, ch->data, ch->len)) return DX_EUTF8;
        if (final && dx_utf8_finish(&c->utf8)) return DX_EUTF8;
    }
    if (c->stream) {
        deliver_piece(c, ch->data, ch->len, final);
        return 0;
    }

    size_t have = buf_len(c);
    if (ch->len > SIZE_MAX - have) return DX_ENOMEM;
    size_t need = have + ch->len;
    /* Bytes before this frame plus its length: the message's total size. */
    uint64_t exact = h->fin ? (uint64_t)(have - ch->offset) + h->length : 0;
    if (ch->len) {
        int rc = buf_reserve(c, need, exact);
        if (rc) return rc;
        memcpy(c->rb->data + have, ch->data, ch->len);
        c->rb->len = need;
    }
    if (!final) return 0;
    deliver_buf(c);
    return 0;
}

static int on_chunk(dx_conn *c, const dx_frame_chunk *ch) {
    const dx_frame_header *h = ch->hdr;
    if (h->opcode < 8) return on_data(c, ch);
    if (ch->first && ch->last) return on_control(c, h->opcode, ch->data, ch->len);

    /* A control frame split over calls: gather it after the message bytes. */
    size_t at = buf_len(c);
    if (h->length > 125) return DX_EPROTO; /* the parser checks it too */
    size_t total = (size_t)h->length;
    int rc = buf_reserve(c, at + total, at + total);
    if (rc) return rc;
    if (ch->len) memcpy(c->rb->data + at + ch->offset, ch->data, ch->len);
    if (!ch->last) return 0;
    /* Lend the callbacks a copy: they may end the connection, which frees
     * the buffer while a close reason still points into it. */
    uint8_t payload[125];
    if (total) memcpy(payload, c->rb->data + at, total);
    if (c->rb->len == 0) buf_drop(c);
    return on_control(c, h->opcode, payload, total);
}

int64_t dx_conn_recv(dx_conn *c, uint8_t *buf, size_t len) {
    if (c->state == DX_CLOSED) return (int64_t)len;
    if (c->state == DX_CONNECTING) return DX_ESTATE;
    size_t pos = 0;
    int idle = 0; /* chunks in a row that consumed nothing */
    uint64_t *frames = dx__counters()->frames_in;
    while (pos < len) {
        dx_frame_chunk ch;
        int64_t n = dx_frame_parse(&c->parser, buf + pos, len - pos, &ch);
        if (n < 0) return fail(c, (int)n);
        pos += (size_t)n;
        idle = n ? 0 : idle + 1;
        if (ch.present) {
            frames[DX_FRAME_SLOT(ch.hdr->opcode)] += ch.first;
            int rc = on_chunk(c, &ch);
            if (rc) return fail(c, rc);
            /* A callback, or the peer's close, may have ended it. */
            if (c->state == DX_CLOSED) break;
        }
        if (idle > 1 || (n == 0 && !ch.present)) break; /* the parser makes no progress */
    }
    return (int64_t)len;
}

/* ---- sending ---------------------------------------------------------- */

static int can_send(const dx_conn *c) {
    return c->state == DX_OPEN && !c->close_sent;
}

static int queue(dx_conn *c, int fin, uint8_t op, const void *data, size_t len) {
    return dx__outq_frame(&c->out, (enum dx_role)c->role, fin, 0, op, data, len);
}

/* Queues one frame of a compressed message: RSV1 on its first frame only
 * (RFC 7692 §6.1). With `may_skip`, a message that did not shrink goes out
 * as it is instead (allowed when our compressor keeps no context, since the
 * peer's window then never needs what it skipped). */
static int queue_deflated(dx_conn *c, int fin, uint8_t op, int first, const void *data, size_t len,
                          int may_skip) {
    const uint8_t *z;
    size_t zlen;
    int rc = dx__pmd_deflate(c->pmd, data, len, fin, &z, &zlen);
    if (rc == 0) {
        if (may_skip && zlen >= len) return queue(c, fin, op, data, len);
        rc = dx__outq_frame(&c->out, (enum dx_role)c->role, fin, first ? DX_RSV1 : 0, op, z, zlen);
        if (rc == 0) {
            dx_conn_counters *k = dx__counters();
            k->deflate_in += len;
            k->deflate_out += zlen;
        }
    }
    /* Nothing went out, but a compressor that keeps its context has seen
     * the data: start it afresh so it never refers to bytes the peer lacks. */
    if (rc) dx__pmd_tx_abort(c->pmd);
    return rc;
}

int dx_conn_send(dx_conn *c, enum dx_opcode op, const void *data, size_t len) {
    if ((op != DX_OP_TEXT && op != DX_OP_BINARY) || (!data && len)) return DX_EINVAL;
    if (!can_send(c) || c->sending) return DX_ESTATE;
    if (c->pmd && dx__pmd_want(c->pmd, len))
        return queue_deflated(c, 1, (uint8_t)op, 1, data, len, !dx__pmd_tx_keeps(c->pmd));
    return queue(c, 1, (uint8_t)op, data, len);
}

int dx_conn_send_through(dx_conn *c, enum dx_opcode op, const void *data, size_t len,
                         dx_conn_writer write, void *ctx) {
    if ((op != DX_OP_TEXT && op != DX_OP_BINARY) || (!data && len) || !write) return DX_EINVAL;
    if (!can_send(c) || c->sending) return DX_ESTATE;
    /* Queued when it must be anyway: behind queued bytes, compressed, or
     * masked (a client's payload is copied to be masked). */
    if (c->out.bytes || c->role != DX_ROLE_SERVER || (c->pmd && dx__pmd_want(c->pmd, len)))
        return dx_conn_send(c, op, data, len);
    uint8_t hdr[DX_FRAME_MAX_HEADER];
    size_t h = dx_frame_write_header(hdr, 1, 0, (uint8_t)op, len, NULL);
    struct iovec iov[2] = {{hdr, h}, {(void *)data, len}};
    int64_t w = write(ctx, iov, len ? 2 : 1);
    if (w < 0) return DX_EIO;
    /* The part not taken, queued (copied) as the rest of the frame. */
    size_t taken = (size_t)w, skip = taken < h ? taken : h;
    iov[0].iov_base = hdr + skip;
    iov[0].iov_len = h - skip;
    taken -= skip;
    iov[1].iov_base = (uint8_t *)iov[1].iov_base + (taken < len ? taken : len);
    iov[1].iov_len = taken < len ? len - taken : 0;
    int rc = dx__outq_bytes(&c->out, iov, 2);
    if (rc == 0 || w > 0) dx__counters()->frames_out[DX_FRAME_SLOT(op)]++;
    /* Out of memory with part of the frame gone: the stream is cut. */
    return rc && w > 0 ? DX_EIO : rc;
}

int dx_conn_send_fragment(dx_conn *c, enum dx_opcode op, const void *data, size_t len, int fin) {
    if (!data && len) return DX_EINVAL;
    if (!c->sending && op != DX_OP_TEXT && op != DX_OP_BINARY) return DX_EINVAL;
    if (!can_send(c)) return DX_ESTATE;
    /* The first piece decides whether the whole message is compressed. */
    int first = !c->sending;
    int z = first ? c->pmd && dx__pmd_want(c->pmd, len) : (c->sending & SEND_DEFLATE) != 0;
    uint8_t fop = first ? (uint8_t)op : DX_OP_CONT;
    int rc = z ? queue_deflated(c, fin != 0, fop, first, data, len, 0)
               : queue(c, fin != 0, fop, data, len);
    if (rc == 0) c->sending = fin ? 0 : (uint8_t)(SEND_ON | (z ? SEND_DEFLATE : 0));
    return rc;
}

static int send_control(dx_conn *c, uint8_t op, const void *data, size_t len) {
    if (len > 125 || (!data && len)) return DX_EINVAL;
    if (!can_send(c)) return DX_ESTATE;
    return queue(c, 1, op, data, len);
}

int dx_conn_ping(dx_conn *c, const void *data, size_t len) {
    return send_control(c, DX_OP_PING, data, len);
}

int dx_conn_pong(dx_conn *c, const void *data, size_t len) {
    return send_control(c, DX_OP_PONG, data, len);
}

int dx_conn_close(dx_conn *c, unsigned code, const char *reason, size_t reason_len) {
    if (!reason && reason_len) return DX_EINVAL;
    uint8_t p[125];
    int n = dx_close_payload(p, code, reason ? reason : "", reason_len);
    if (n < 0) return DX_EINVAL;
    if (!can_send(c)) return DX_ESTATE;
    int rc = queue(c, 1, DX_OP_CLOSE, p, (size_t)n);
    if (rc) return rc;
    c->close_sent = 1;
    c->state = DX_CLOSING;
    return 0;
}

/* ---- shared frames ---------------------------------------------------- */

/* The compressed twin of a shared frame (payload at `h`, `len` bytes) for
 * a permessage-deflate connection, or NULL. A broadcast is compressed once
 * for every connection whose compressor keeps no context (a message from
 * another compressor would leave a kept context out of step with the
 * peer's) and whose window is at least the one it was made with. */
static dx_shared *shared_deflated(dx_conn *c, dx_shared *s, size_t h, size_t len) {
    if (dx__pmd_tx_keeps(c->pmd)) return NULL;
    int bits = dx__pmd_tx_bits(c->pmd);
    if (s->alt) return s->alt_bits <= bits ? s->alt : NULL;
    const uint8_t *z;
    size_t zlen;
    if (dx__pmd_deflate(c->pmd, s->data + h, len, 1, &z, &zlen) < 0) return NULL;
    if (zlen >= len) {
        s->alt_bits = 0xff; /* incompressible: the plain frame for everyone */
        return NULL;
    }
    size_t zh = dx_frame_header_size(zlen, 0);
    dx_shared *a = dx__malloc(sizeof *a + zh + zlen);
    if (!a) return NULL;
    a->refs = 1;
    a->alt = NULL;
    a->alt_bits = 0xff;
    a->len = dx_frame_write_header(a->data, 1, DX_RSV1, s->data[0] & 0x0f, zlen, NULL);
    memcpy(a->data + a->len, z, zlen);
    a->len += zlen;
    s->alt = a; /* s holds this reference; queues take their own */
    s->alt_bits = (uint8_t)bits;
    return a;
}

int dx_conn_send_shared(dx_conn *c, dx_shared *s) {
    if (!s || c->role != DX_ROLE_SERVER) return DX_EINVAL;
    if (!can_send(c) || c->sending) return DX_ESTATE;
    if (c->pmd && s->alt_bits != 0xff) {
        uint8_t l7 = s->data[1] & 127;
        size_t h = l7 == 127 ? 10 : l7 == 126 ? 4 : 2;
        size_t len = s->len - h;
        if (dx__pmd_want(c->pmd, len)) {
            dx_shared *z = shared_deflated(c, s, h, len);
            if (z) {
                int rc = dx__outq_shared(&c->out, z);
                if (rc == 0) {
                    /* The twin's payload: its frame less its header. */
                    uint8_t zl7 = z->data[1] & 127;
                    dx_conn_counters *k = dx__counters();
                    k->deflate_in += len;
                    k->deflate_out += z->len - (zl7 == 127 ? 10u : zl7 == 126 ? 4u : 2u);
                }
                return rc;
            }
            /* Its own compressor (context kept, or a smaller window than
             * the twin's): compressed for this connection alone. */
            if (s->alt_bits != 0xff)
                return queue_deflated(c, 1, s->data[0] & 0x0f, 1, s->data + h, len,
                                      !dx__pmd_tx_keeps(c->pmd));
        }
    }
    return dx__outq_shared(&c->out, s);
}

/* ---- output ----------------------------------------------------------- */

int dx_conn_out_iov(dx_conn *c, struct iovec *iov, int max) {
    return max > 0 ? dx__outq_iov(&c->out, iov, max) : 0;
}

void dx_conn_out_consume(dx_conn *c, size_t n) {
    dx__outq_consume(&c->out, n);
}

size_t dx_conn_buffered(const dx_conn *c) {
    return c->out.bytes;
}

int dx_conn_should_close(const dx_conn *c) {
    return c->state == DX_CLOSED;
}

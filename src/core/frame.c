/* The frame parser and writer (RFC 6455 §5).
 *
 * The parser has two states: reading a header, reading a payload. A header
 * that is entirely in the caller's buffer (the common case) is decoded
 * straight from it; only a header split across calls is gathered in
 * hdr_buf. Every header-level rule is checked the moment the header is
 * complete, so a bad or oversized frame fails before its payload arrives. */
#include <string.h>

#include <duplex/frame.h>
#include <duplex/mask.h>
#include <duplex/utf8.h>

#include "core/mask_short.h"

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

enum { ST_HEADER = 0, ST_PAYLOAD = 1 };

void dx_frame_parser_init(dx_frame_parser *p, enum dx_role role, uint64_t max_message) {
    memset(p, 0, sizeof(*p));
    p->role = (uint8_t)role;
    p->max_message = max_message > UINT32_MAX ? UINT32_MAX : (uint32_t)max_message;
}

void dx_frame_parser_allow_rsv(dx_frame_parser *p, uint8_t rsv_bits) {
    p->rsv_allowed = rsv_bits & (DX_RSV1 | DX_RSV2 | DX_RSV3);
}

/* Bytes the header starting with b0 b1 needs in total. */
static inline size_t header_need(uint8_t b1) {
    size_t n = 2;
    uint8_t l7 = b1 & 0x7f;
    if (l7 == 126) n += 2;
    else if (l7 == 127) n += 8;
    if (b1 & 0x80) n += 4;
    return n;
}

/* Decodes a complete header from `h` into p->hdr and applies every rule.
 * Returns 0 or the error. */
static int decode_header(dx_frame_parser *p, const uint8_t *h) {
    dx_frame_header *fh = &p->hdr;
    uint8_t b0 = h[0], b1 = h[1];
    fh->fin = b0 >> 7;
    fh->rsv = (b0 >> 4) & 7;
    fh->opcode = b0 & 0x0f;
    fh->masked = b1 >> 7;
    uint64_t len = b1 & 0x7f;
    size_t pos = 2;
    if (len == 126) {
        len = ((uint64_t)h[2] << 8) | h[3];
        pos = 4;
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++) len = (len << 8) | h[2 + i];
        pos = 10;
        if (UNLIKELY(len >> 63)) return DX_EPROTO;
    }
    fh->length = len;
    if (fh->masked) memcpy(fh->key, h + pos, 4);

    /* A server must receive masked frames, a client unmasked ones. */
    if (UNLIKELY(fh->masked != (p->role == DX_ROLE_SERVER))) return DX_EPROTO;

    uint8_t op = fh->opcode;
    if (op >= 0x8) {
        if (UNLIKELY(op > DX_OP_PONG)) return DX_EPROTO;
        if (UNLIKELY(!fh->fin || len > 125 || fh->rsv)) return DX_EPROTO;
        return 0;
    }
    if (op == DX_OP_CONT) {
        if (UNLIKELY(!p->in_message || fh->rsv)) return DX_EPROTO;
    } else {
        if (UNLIKELY(op > DX_OP_BINARY)) return DX_EPROTO;
        if (UNLIKELY(p->in_message)) return DX_EPROTO;
        if (UNLIKELY(fh->rsv & ~p->rsv_allowed)) return DX_EPROTO;
        p->msg_len = 0;
        p->msg_opcode = op;
    }
    if (p->max_message) {
        /* Compare without overflow: msg_len <= max_message always holds. */
        if (UNLIKELY(len > p->max_message - p->msg_len)) return DX_ETOOBIG;
    }
    p->msg_len += len;
    p->in_message = !fh->fin;
    return 0;
}

/* Reports `take` payload bytes at `data` and advances the frame. */
static inline void emit(dx_frame_parser *p, dx_frame_chunk *out, uint8_t *data, size_t take,
                        int first) {
    uint64_t offset = p->hdr.length - p->remaining;
    if (p->hdr.masked && take) dx_mask(data, take, p->hdr.key, offset);
    p->remaining -= take;
    out->present = 1;
    out->first = (uint8_t)first;
    out->last = p->remaining == 0;
    out->msg_first = first && (p->hdr.opcode == DX_OP_TEXT || p->hdr.opcode == DX_OP_BINARY);
    out->hdr = &p->hdr;
    out->data = data;
    out->len = take;
    out->offset = offset;
    p->state = out->last ? ST_HEADER : ST_PAYLOAD;
}

int64_t dx_frame_parse(dx_frame_parser *p, uint8_t *buf, size_t len, dx_frame_chunk *out) {
    out->present = 0;
    if (p->state == ST_PAYLOAD) {
        size_t take = p->remaining < len ? (size_t)p->remaining : len;
        if (take == 0) return 0;
        /* Nothing of the payload consumed yet: this is the frame's first
         * chunk (its header arrived alone in an earlier call). */
        emit(p, out, buf, take, p->remaining == p->hdr.length);
        return (int64_t)take;
    }

    /* Fastest path, the frame most traffic is made of: a whole small text
     * or binary message (FIN, no RSV, length under 126, masked as our role
     * requires) with its payload entirely in the buffer. Every rule that
     * decode_header applies holds by these tests, so it is decoded here
     * without the general checks; anything else takes the paths below. */
    if (LIKELY(p->hdr_have == 0 && len >= 2)) {
        uint8_t b0 = buf[0], b1 = buf[1];
        uint8_t op = b0 & 0x0f;
        size_t plen = b1 & 0x7f;
        unsigned masked = b1 >> 7;
        size_t need = 2 + 4 * (size_t)masked;
        if ((b0 & 0xf0) == 0x80 && (op == DX_OP_TEXT || op == DX_OP_BINARY) && plen < 126 &&
            !p->in_message && masked == (p->role == DX_ROLE_SERVER) && len - 2 >= plen &&
            len - 2 - plen >= need - 2 && (p->max_message == 0 || plen <= p->max_message)) {
            dx_frame_header *fh = &p->hdr;
            fh->fin = 1;
            fh->rsv = 0;
            fh->opcode = op;
            fh->masked = (uint8_t)masked;
            fh->length = plen;
            uint8_t *data = buf + need;
            if (masked) {
                memcpy(fh->key, buf + 2, 4);
                uint32_t k32;
                memcpy(&k32, fh->key, 4);
                if (plen < DX__MASK_SHORT_MAX)
                    dx__mask_short(data, data, plen, k32);
                else
                    dx_mask(data, plen, fh->key, 0);
            }
            p->msg_len = plen;
            p->msg_opcode = op;
            p->remaining = 0;
            out->present = 1;
            out->first = 1;
            out->last = 1;
            out->msg_first = 1;
            out->hdr = fh;
            out->data = data;
            out->len = plen;
            out->offset = 0;
            return (int64_t)(need + plen);
        }
    }

    /* Fast path: the whole header is in the caller's buffer. */
    if (LIKELY(p->hdr_have == 0 && len >= 2)) {
        size_t need = header_need(buf[1]);
        if (LIKELY(len >= need)) {
            int rc = decode_header(p, buf);
            if (UNLIKELY(rc)) return rc;
            size_t avail = len - need;
            p->remaining = p->hdr.length;
            size_t take = p->remaining < avail ? (size_t)p->remaining : avail;
            if (take == 0 && p->remaining != 0) {
                /* Header only: the payload comes in a later call. */
                p->state = ST_PAYLOAD;
                return (int64_t)need;
            }
            emit(p, out, buf + need, take, 1);
            return (int64_t)(need + take);
        }
    }

    /* Slow path: gather the header byte by byte into hdr_buf. */
    size_t used = 0;
    while (used < len) {
        p->hdr_buf[p->hdr_have++] = buf[used++];
        if (p->hdr_have >= 2 && p->hdr_have == header_need(p->hdr_buf[1])) {
            int rc = decode_header(p, p->hdr_buf);
            p->hdr_have = 0;
            if (UNLIKELY(rc)) return rc;
            p->remaining = p->hdr.length;
            size_t avail = len - used;
            size_t take = p->remaining < avail ? (size_t)p->remaining : avail;
            if (take == 0 && p->remaining != 0) {
                p->state = ST_PAYLOAD;
                return (int64_t)used;
            }
            emit(p, out, buf + used, take, 1);
            return (int64_t)(used + take);
        }
    }
    return (int64_t)used;
}

size_t dx_frame_header_size(uint64_t payload_len, int masked) {
    size_t n = payload_len < 126 ? 2 : payload_len <= 0xffff ? 4 : 10;
    return n + (masked ? 4 : 0);
}

size_t dx_frame_write_header(uint8_t *out, int fin, uint8_t rsv, uint8_t opcode,
                             uint64_t payload_len, const uint8_t *key) {
    out[0] = (uint8_t)((fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f));
    uint8_t m = key ? 0x80 : 0;
    size_t n;
    if (payload_len < 126) {
        out[1] = m | (uint8_t)payload_len;
        n = 2;
    } else if (payload_len <= 0xffff) {
        out[1] = m | 126;
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
        n = 4;
    } else {
        out[1] = m | 127;
        for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
        n = 10;
    }
    if (key) {
        memcpy(out + n, key, 4);
        n += 4;
    }
    return n;
}

int64_t dx_frame_write(uint8_t *out, size_t cap, enum dx_role role, int fin, uint8_t rsv,
                       uint8_t opcode, const void *payload, size_t len) {
    int control = opcode >= 0x8;
    if (opcode > DX_OP_PONG || (opcode > DX_OP_BINARY && opcode < DX_OP_CLOSE)) return DX_EINVAL;
    if (control && (len > 125 || !fin)) return DX_EINVAL;
    int masked = role == DX_ROLE_CLIENT;
    size_t hsize = dx_frame_header_size(len, masked);
    if (cap < hsize || cap - hsize < len) return DX_ENOSPC;
    uint8_t key[4];
    if (masked && dx_random(key, 4)) return DX_EIO;
    size_t n = dx_frame_write_header(out, fin, rsv, opcode, len, masked ? key : NULL);
    if (len) {
        if (masked) dx_mask_copy(out + n, payload, len, key, 0);
        else memcpy(out + n, payload, len);
    }
    return (int64_t)(n + len);
}

int dx_close_payload(uint8_t out[125], unsigned code, const char *reason, size_t reason_len) {
    if (code == 0) return reason_len ? DX_EINVAL : 0;
    if (!dx_close_code_valid(code) || reason_len > 123) return DX_EINVAL;
    if (reason_len && dx_utf8_valid((const uint8_t *)reason, reason_len)) return DX_EINVAL;
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (reason_len) memcpy(out + 2, reason, reason_len);
    return (int)(2 + reason_len);
}

int dx_close_parse(const uint8_t *payload, size_t len, uint16_t *code, const uint8_t **reason,
                   size_t *reason_len) {
    *reason = payload;
    *reason_len = 0;
    if (len == 0) {
        *code = DX_CLOSE_NO_STATUS;
        return 0;
    }
    if (len == 1) return DX_EPROTO;
    unsigned c = ((unsigned)payload[0] << 8) | payload[1];
    *code = (uint16_t)c;
    if (!dx_close_code_valid(c)) return DX_EPROTO;
    *reason = payload + 2;
    *reason_len = len - 2;
    if (dx_utf8_valid(payload + 2, len - 2)) return DX_EUTF8;
    return 0;
}

/* duplex — the WebSocket frame parser and writer (RFC 6455 §5).
 *
 * The parser is incremental and copies nothing: the caller lends it a
 * writable buffer of received bytes, the parser unmasks payload bytes in
 * place and hands back slices of that same buffer. Input may be split at any
 * byte boundary, one byte at a time included; only a frame header split
 * across calls (at most 14 bytes) is kept inside the parser.
 *
 * The parser enforces every frame-level rule of RFC 6455 and returns the
 * error whose close code the connection must be failed with:
 *   DX_EPROTO (1002): RSV bits not allowed by the negotiated extensions,
 *     unknown opcodes, fragmented control frames, control frames over 125
 *     bytes, a masked frame to a client or an unmasked frame to a server,
 *     a 64-bit length with the top bit set, a continuation without a
 *     started message, a new data frame inside a fragmented one.
 *     (Non-minimal length encodings are accepted, as most peers do.)
 *   DX_ETOOBIG (1009): a frame, or the sum of a fragmented message's frames,
 *     over `max_message`; decided from the header, before the payload arrives.
 * UTF-8 is not checked here (that needs the message after decompression);
 * the connection layer does it.
 *
 * Usage:
 *     dx_frame_parser p; dx_frame_parser_init(&p, DX_ROLE_SERVER, 16 << 20);
 *     while (len > 0) {
 *         dx_frame_chunk ch;
 *         int64_t n = dx_frame_parse(&p, buf, len, &ch);
 *         if (n < 0) fail_with(dx_error_close_code((int)n));
 *         if (ch.present) use(ch);   // ch.data points into buf
 *         buf += n; len -= (size_t)n;
 *     }
 */
#ifndef DUPLEX_FRAME_H
#define DUPLEX_FRAME_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DX_FRAME_MAX_HEADER 14 /* 2 + 8 (length) + 4 (mask key) */
#define DX_RSV1 0x4
#define DX_RSV2 0x2
#define DX_RSV3 0x1

/* A frame header as decoded from the wire. */
typedef struct dx_frame_header {
    uint8_t fin;     /* 1 on the last frame of a message */
    uint8_t rsv;     /* RSV1..3 as bits DX_RSV1|DX_RSV2|DX_RSV3 */
    uint8_t opcode;  /* enum dx_opcode */
    uint8_t masked;  /* 1 when a masking key followed the length */
    uint8_t key[4];  /* masking key (when masked) */
    uint64_t length; /* payload length of this frame */
} dx_frame_header;

/* One piece of one frame's payload, reported by dx_frame_parse. A frame
 * whose header and payload are both in the buffer comes as one chunk with
 * `first` and `last` set; a frame split over reads comes as several. */
typedef struct dx_frame_chunk {
    uint8_t present;        /* 0: nothing to report yet (all input consumed) */
    uint8_t first;          /* first chunk of this frame (header is new) */
    uint8_t last;           /* last chunk of this frame */
    uint8_t msg_first;      /* frame is the first of its message (data frames) */
    const dx_frame_header *hdr; /* the frame's header, valid until the next call */
    uint8_t *data;          /* payload bytes, unmasked, inside the caller's buffer */
    size_t len;             /* number of payload bytes in `data` (may be 0) */
    uint64_t offset;        /* position of `data` within the frame's payload */
} dx_frame_chunk;

/* Parser state. Plain data with no allocations: embed it anywhere, discard
 * it without a call. Fields are private. */
typedef struct dx_frame_parser {
    dx_frame_header hdr;
    uint64_t remaining;   /* payload bytes of the current frame still to come */
    uint64_t msg_len;     /* bytes so far in the current data message */
    uint32_t max_message; /* 0 = no limit; 32 bits keep every connection small */
    uint8_t role;
    uint8_t state;        /* 0 header, 1 payload */
    uint8_t hdr_have;     /* header bytes buffered */
    uint8_t in_message;   /* a fragmented data message is open */
    uint8_t msg_opcode;   /* opcode of the open message */
    uint8_t rsv_allowed;  /* RSV bits a negotiated extension allows */
    uint8_t hdr_buf[DX_FRAME_MAX_HEADER];
} dx_frame_parser;

/* Prepares a parser. `role` is our own role: DX_ROLE_SERVER requires masked
 * input, DX_ROLE_CLIENT requires unmasked input. `max_message` bounds a
 * message (sum of its frames) in bytes; 0 means no limit. A bound above
 * 4 GiB - 1 is kept as 4 GiB - 1 (UINT32_MAX): the parser lives in every
 * connection, and a larger single message is beyond any sane limit. */
DX_API void dx_frame_parser_init(dx_frame_parser *p, enum dx_role role, uint64_t max_message);

/* Allows RSV bits on the first frame of data messages (for example DX_RSV1
 * when permessage-deflate was negotiated). RSV bits on control frames and
 * continuation frames stay errors. */
DX_API void dx_frame_parser_allow_rsv(dx_frame_parser *p, uint8_t rsv_bits);

/* Consumes input. `buf` is the caller's writable buffer of `len` received
 * bytes; payload bytes in it are unmasked in place. Returns the number of
 * bytes consumed (0..len) and fills `*out` with at most one chunk, or returns
 * DX_EPROTO or DX_ETOOBIG; after an error the parser must not be used again.
 * The chunk's `data` points into `buf` and is valid as long as `buf` is.
 * Call again with the rest of the buffer until it is all consumed; a return
 * of `len` with out->present == 0 means more input is needed. */
DX_API int64_t dx_frame_parse(dx_frame_parser *p, uint8_t *buf, size_t len, dx_frame_chunk *out);

/* Size of the header dx_frame_write_header produces for a payload of
 * `payload_len` bytes, masked or not. */
DX_API size_t dx_frame_header_size(uint64_t payload_len, int masked);

/* Writes a frame header into `out` (at least DX_FRAME_MAX_HEADER bytes).
 * `rsv` is a DX_RSV* mask. When `key` is non-NULL the frame is marked masked
 * and the key is written; the caller masks the payload with dx_mask/
 * dx_mask_copy. Returns the number of bytes written. The writer does not
 * check the opcode or control-frame size: dx_frame_write does. */
DX_API size_t dx_frame_write_header(uint8_t *out, int fin, uint8_t rsv, uint8_t opcode,
                                    uint64_t payload_len, const uint8_t *key);

/* Writes a whole frame (header and payload) into `out`, which has room for
 * `cap` bytes. Clients (role DX_ROLE_CLIENT) mask the payload with a fresh
 * key from dx_random; servers do not. The payload is copied, never
 * modified. Returns the number of bytes written, DX_ENOSPC if `cap` is too
 * small (nothing useful written), or DX_EINVAL for a bad opcode, a control
 * frame over 125 bytes or fragmented (fin == 0). */
DX_API int64_t dx_frame_write(uint8_t *out, size_t cap, enum dx_role role, int fin, uint8_t rsv,
                              uint8_t opcode, const void *payload, size_t len);

/* Builds the payload of a close frame into `out` (at least 125 bytes):
 * two bytes of code in network order and the reason. `code` 0 means no
 * status (empty payload, and `reason` must be empty). Returns the payload
 * length, or DX_EINVAL when the code may not be sent, the reason is over 123
 * bytes or not valid UTF-8. */
DX_API int dx_close_payload(uint8_t out[125], unsigned code, const char *reason, size_t reason_len);

/* Decodes a received close payload. Sets *code (1005 when the payload is
 * empty) and points *reason into `payload`. Returns 0, DX_EPROTO for a
 * 1-byte payload or a code that may not be sent, DX_EUTF8 for a reason that
 * is not UTF-8. */
DX_API int dx_close_parse(const uint8_t *payload, size_t len, uint16_t *code, const uint8_t **reason,
                          size_t *reason_len);

#ifdef __cplusplus
}
#endif
#endif

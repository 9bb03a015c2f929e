/* duplex — the sans-I/O WebSocket connection.
 *
 * A dx_conn is the protocol state of one WebSocket connection after (or
 * during) the opening handshake. It never touches a socket or a clock:
 *
 *   bytes in  → dx_conn_recv()      → callbacks (message, ping, pong, close)
 *   calls in  → dx_conn_send() etc. → bytes queued; the I/O layer takes them
 *               with dx_conn_out_iov() and dx_conn_out_consume().
 *
 * It enforces RFC 6455 in both roles: frame rules (see frame.h), UTF-8 of
 * text messages and close reasons checked incrementally across fragments
 * (1007 at the first impossible byte), the message size limit (1009, decided
 * from the header), automatic pong echoing each ping's payload, and the
 * closing handshake (echo the peer's close code, report 1005 when the close
 * carried none, 1006 when the transport ended without a close).
 *
 * Messages are delivered without a copy when they arrive whole in one
 * dx_conn_recv() call (the common case): the callback gets a slice of the
 * caller's buffer. Only messages split over several calls or fragmented are
 * reassembled into a buffer owned by the connection; `stream` mode delivers
 * the pieces as they come instead, for very large messages.
 *
 * Threads: a dx_conn belongs to one thread at a time; no call is
 * thread-safe. Callbacks run inside dx_conn_recv (and dx_conn_eof); they may
 * call any dx_conn_send*() or dx_conn_close() on the same connection, but
 * must not free it (free it after dx_conn_recv returns).
 */
#ifndef DUPLEX_CONN_H
#define DUPLEX_CONN_H

#include <sys/uio.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dx_conn dx_conn;

/* Callbacks. Any may be NULL. `user` is the pointer from the config.
 * Slices passed to callbacks are borrowed until the callback returns. */
typedef struct dx_conn_callbacks {
    /* A complete text or binary message (text already validated as UTF-8).
     * `data` is writable scratch the callback may modify in place. */
    void (*on_message)(dx_conn *c, void *user, enum dx_opcode op, uint8_t *data, size_t len);
    /* Stream mode only, instead of on_message: a piece of a message.
     * `first` on its first piece (op is TEXT or BINARY on every piece),
     * `fin` on its last. Text pieces may end inside a code point; the whole
     * is validated incrementally and a bad byte fails the connection. */
    void (*on_fragment)(dx_conn *c, void *user, enum dx_opcode op, const uint8_t *data, size_t len,
                        int first, int fin);
    /* A ping arrived (the pong is already queued unless no_auto_pong). */
    void (*on_ping)(dx_conn *c, void *user, const uint8_t *data, size_t len);
    /* A pong arrived. */
    void (*on_pong)(dx_conn *c, void *user, const uint8_t *data, size_t len);
    /* The connection reached CLOSED. Called exactly once. `code` is the
     * peer's close code (1005 if its close frame had none), our error code
     * (1002, 1007, 1009...) when we failed the connection, or 1006 when the
     * transport ended without a closing handshake. `was_clean` is 1 when
     * both close frames were exchanged. */
    void (*on_close)(dx_conn *c, void *user, uint16_t code, const uint8_t *reason,
                     size_t reason_len, int was_clean);
} dx_conn_callbacks;

#define DX_DEFAULT_MAX_MESSAGE (16u << 20) /* 16 MiB */

typedef struct dx_conn_config {
    enum dx_role role;           /* our role */
    uint64_t max_message;        /* bytes; 0 means DX_DEFAULT_MAX_MESSAGE;
                                    UINT64_MAX means no limit; any other
                                    value above 4 GiB - 1 acts as 4 GiB - 1 */
    int stream;                  /* deliver on_fragment pieces, never reassemble */
    int no_auto_pong;            /* do not answer pings automatically */
    const dx_conn_callbacks *cb; /* borrowed: must outlive the connection */
    void *user;                  /* passed to every callback */
} dx_conn_config;

/* Creates a connection in state CONNECTING (call dx_conn_open once the
 * handshake is done) with `extra` zeroed bytes of inline user storage
 * after it (see dx_conn_extra): one allocation per connection. Returns NULL
 * on allocation failure. Free with dx_conn_free. */
DX_API dx_conn *dx_conn_new(const dx_conn_config *cfg, size_t extra);

/* Frees the connection and everything it queued (shared frames are
 * released). `c` may be NULL. Never call it from inside a callback. */
DX_API void dx_conn_free(dx_conn *c);

/* The `extra` bytes asked for in dx_conn_new, aligned for any type. */
DX_API void *dx_conn_extra(dx_conn *c);

/* Replaces the user pointer passed to callbacks. */
DX_API void dx_conn_set_user(dx_conn *c, void *user);
DX_API void *dx_conn_user(const dx_conn *c);

/* CONNECTING → OPEN: the handshake succeeded. Bytes that followed the
 * handshake in the same read must then be fed with dx_conn_recv. */
DX_API void dx_conn_open(dx_conn *c);

/* Allows RSV bits on data frames (set by a negotiated extension). A
 * message whose first frame carries RSV bits is delivered as received, and
 * a text one is not UTF-8-checked here: the extension that owns the bits
 * must check it after undoing its transform. permessage-deflate is built
 * in instead: dx_conn_set_deflate() (deflate.h) takes RSV1, decompresses
 * (max_message then bounds the decompressed size) and checks UTF-8. */
DX_API void dx_conn_allow_rsv(dx_conn *c, uint8_t rsv_bits);

/* DX_CONNECTING, DX_OPEN, DX_CLOSING or DX_CLOSED. */
DX_API enum dx_ready_state dx_conn_state(const dx_conn *c);

/* Feeds received bytes. `buf` is writable and borrowed for the call (payload
 * is unmasked in place and lent to callbacks). Returns `len` (everything is
 * always consumed: partial frames are kept), or, when the peer broke the
 * protocol, the error (DX_EPROTO, DX_EUTF8, DX_ETOOBIG; DX_ENOMEM if
 * reassembly could not allocate). On error the connection has queued a close
 * frame with the matching code (1002, 1007, 1009, 1011), called on_close,
 * and moved to CLOSED: flush the output, then close the transport. Bytes
 * fed in state CLOSED are ignored (returns len). In state CONNECTING it
 * returns DX_ESTATE and changes nothing: call dx_conn_open first. */
DX_API int64_t dx_conn_recv(dx_conn *c, uint8_t *buf, size_t len);

/* The transport ended (EOF, reset, timeout). If the connection was not yet
 * CLOSED it becomes CLOSED and on_close reports 1006 (`code` 0) or `code`
 * (for example 1006 for a dead peer, 1015 for a TLS failure), with
 * was_clean 0. */
DX_API void dx_conn_eof(dx_conn *c, uint16_t code);

/* Ends the connection now for a reason of the caller's (a memory budget, a
 * deadline): queues a close frame with `code` and `reason` (`reason_len`
 * bytes, at most 123, valid UTF-8; NULL with 0 for none) unless our close
 * was already sent, drops any partial message at once, moves to CLOSED and
 * calls on_close with `code` and was_clean 0. Then, as after a failed
 * dx_conn_recv: flush the output and close the transport. Returns 0,
 * DX_EINVAL for a code that may not be sent or a bad reason, DX_ESTATE
 * unless OPEN or CLOSING (nothing changes). */
DX_API int dx_conn_fail(dx_conn *c, unsigned code, const char *reason, size_t reason_len);

/* Memory held for a message not yet complete: the capacity of the buffer
 * that reassembles a fragmented or split message (decompressed, with
 * permessage-deflate, so up to max_message for a few bytes on the wire),
 * plus a control frame split over reads. 0 between messages, and always
 * for messages that arrive whole in one dx_conn_recv (delivered in place)
 * and in stream mode. It changes only inside dx_conn_recv and when the
 * connection reaches CLOSED (the buffer is freed then), so a caller that
 * reads it before and after each call can keep a total over many
 * connections. zlib's own state for the message (about 7 KiB plus
 * the window, see deflate.h) is not counted. */
DX_API size_t dx_conn_partial(const dx_conn *c);

/* A 32-bit value the caller attaches to the partial message (a server
 * stores when it began, in its own clock: the core reads no clock). The
 * core never interprets it; it becomes 0 whenever dx_conn_partial becomes
 * 0 (the message was delivered or dropped), so a caller that sets a
 * nonzero mark when it finds dx_conn_partial > 0 with a mark of 0 knows,
 * to the read, when each partial message began. Setting it while
 * dx_conn_partial is 0 does nothing. */
DX_API uint32_t dx_conn_partial_mark(const dx_conn *c);
DX_API void dx_conn_set_partial_mark(dx_conn *c, uint32_t mark);

/* Queues a message (one frame). `op` is DX_OP_TEXT (the caller guarantees
 * valid UTF-8) or DX_OP_BINARY; `data` is copied. Clients mask with a fresh
 * random key. Returns 0, DX_ESTATE unless OPEN (or a fragmented send is in
 * progress), DX_EINVAL for another opcode or NULL data with len > 0,
 * DX_ENOMEM, or DX_EIO when the random source failed (client role). On
 * error nothing is queued. The same holds for the other send functions. */
DX_API int dx_conn_send(dx_conn *c, enum dx_opcode op, const void *data, size_t len);

/* Writes what it can of `n` iovecs now, without blocking: returns the
 * bytes taken (0 when none), or < 0 when the transport failed. */
typedef int64_t (*dx_conn_writer)(void *ctx, const struct iovec *iov, int n);

/* dx_conn_send without the copy, for large messages: when nothing is
 * queued and the message goes as one plain frame (server role, not
 * compressed), its header and the caller's `data` are handed to `write`
 * at once, and only the part it did not take is queued (copied).
 * Otherwise the message is queued exactly as by dx_conn_send. Returns as
 * dx_conn_send, or DX_EIO when the transport must be dropped: `write`
 * failed, or it took part of the frame and the rest could not be queued
 * (out of memory); nothing is queued then. A small message is better
 * queued: frames queued together leave in one write. */
DX_API int dx_conn_send_through(dx_conn *c, enum dx_opcode op, const void *data, size_t len,
                                dx_conn_writer write, void *ctx);

/* Queues one fragment of a message sent in pieces: `op` is TEXT or BINARY
 * on the first call and is ignored after (continuations are written);
 * `fin` ends the message. No other data message may be sent until the one
 * in progress is finished (DX_ESTATE); control frames may interleave. */
DX_API int dx_conn_send_fragment(dx_conn *c, enum dx_opcode op, const void *data, size_t len,
                                 int fin);

/* Queues a ping or pong with up to 125 bytes of payload. Returns 0,
 * DX_EINVAL (payload too long), DX_ESTATE unless OPEN. */
DX_API int dx_conn_ping(dx_conn *c, const void *data, size_t len);
DX_API int dx_conn_pong(dx_conn *c, const void *data, size_t len);

/* Starts the closing handshake: queues a close frame and moves OPEN →
 * CLOSING; on_close runs when the peer's close arrives (or dx_conn_eof).
 * `code` 0 sends a close without status; otherwise it must be a code that
 * may be sent (dx_close_code_valid). `reason` is at most 123 bytes of UTF-8.
 * Returns 0, DX_EINVAL for a bad code or reason, DX_ESTATE unless OPEN
 * (already CLOSING or CLOSED, or still CONNECTING). (Browser-like APIs
 * allow only 1000 and 3000-4999 from applications; the client layer checks
 * that.) */
DX_API int dx_conn_close(dx_conn *c, unsigned code, const char *reason, size_t reason_len);

/* A frame built once and queued on many server-side connections without
 * a copy (broadcast, pub/sub). Reference-counted; not thread-safe. */
typedef struct dx_shared dx_shared;

/* Builds an unmasked frame (server role) holding one whole message.
 * Returns NULL on allocation failure or a bad opcode. The caller holds one
 * reference. */
DX_API dx_shared *dx_shared_new(enum dx_opcode op, const void *data, size_t len);
DX_API void dx_shared_retain(dx_shared *s);
DX_API void dx_shared_release(dx_shared *s);
/* Size of the framed message in bytes (header included). */
DX_API size_t dx_shared_size(const dx_shared *s);

/* Queues a shared frame (takes a new reference; the caller keeps its own).
 * Server role only. On a permessage-deflate connection a message at or
 * over its threshold goes compressed: once per shared frame (on the first
 * such send; the result is shared too, kept with the frame and freed with
 * it) for every connection whose compressor keeps no context and whose
 * window is at least that one's; by the connection's own compressor (a
 * copy) for the others. A frame found incompressible goes as it is. Returns 0, DX_ESTATE unless
 * OPEN (or a fragmented send is in progress), DX_EINVAL for a client connection, DX_ENOMEM. */
DX_API int dx_conn_send_shared(dx_conn *c, dx_shared *s);

/* Output. Fills up to `max` iovecs describing the queued bytes, in order,
 * and returns how many it filled (0 when nothing is queued). The memory
 * stays valid until dx_conn_out_consume or dx_conn_free. */
DX_API int dx_conn_out_iov(dx_conn *c, struct iovec *iov, int max);

/* Marks `n` queued bytes as written (n ≤ dx_conn_buffered). */
DX_API void dx_conn_out_consume(dx_conn *c, size_t n);

/* Bytes queued and not yet consumed (frame headers included): the
 * browser's bufferedAmount. */
DX_API size_t dx_conn_buffered(const dx_conn *c);

/* 1 when the transport should be closed once the output is flushed: the
 * connection is CLOSED (closing handshake done, or failed). */
DX_API int dx_conn_should_close(const dx_conn *c);

/* ---- counters ----------------------------------------------------------
 *
 * What the connections of one thread did, for monitoring (docs/metrics.md):
 * plain 64-bit words the core adds to where it already handles a frame, no
 * lock, no atomic, nothing per connection. Every dx_conn call counts into
 * the set bound to the calling thread (dx_conn_counters_bind); dx_loop_run
 * binds its loop's own set while it runs, so the frames of every connection
 * a loop drives (servers and clients alike) land in that loop's set, which
 * dx_server_stats_get reports. A thread with nothing bound counts into a
 * private set of its own that nobody reads. */

/* Index of an opcode in the frame counters: DX_FRAME_SLOT(DX_OP_PING)... */
enum dx_frame_slot {
    DX_FRAME_SLOT_CONT = 0,
    DX_FRAME_SLOT_TEXT = 1,
    DX_FRAME_SLOT_BINARY = 2,
    DX_FRAME_SLOT_CLOSE = 3,
    DX_FRAME_SLOT_PING = 4,
    DX_FRAME_SLOT_PONG = 5,
    DX_FRAME_SLOTS = 6
};
/* The slot of a valid opcode (0-2, 8-10). */
#define DX_FRAME_SLOT(op) ((unsigned)(op) < 8 ? (unsigned)(op) : (unsigned)(op)-5u)

typedef struct dx_conn_counters {
    uint64_t frames_in[DX_FRAME_SLOTS];  /* frames received, by slot: counted when
                                            their header is parsed */
    uint64_t frames_out[DX_FRAME_SLOTS]; /* frames queued or written through, by slot */
    /* permessage-deflate (RFC 7692): */
    uint64_t inflate_in;  /* compressed payload bytes received */
    uint64_t inflate_out; /* what they inflated to */
    uint64_t deflate_in;  /* payload bytes of the messages sent compressed, before */
    uint64_t deflate_out; /* their compressed payload bytes (frame headers excluded);
                             a message found incompressible and sent as it is
                             counts in neither */
    /* Gauge: bytes queued in output queues and not yet consumed (the sum
     * of dx_conn_buffered), frame headers included. Signed: a queue filled
     * under one binding and drained under another moves each set by its
     * part only. */
    int64_t queued;
} dx_conn_counters;

/* Binds `k` (borrowed: it must outlive the binding) to the calling thread:
 * every dx_conn call on this thread counts into it from now on. NULL goes
 * back to the thread's private set. Returns the previous binding (NULL for
 * the private set), to restore it later. Affects the calling thread only. */
DX_API dx_conn_counters *dx_conn_counters_bind(dx_conn_counters *k);

#ifdef __cplusplus
}
#endif
#endif

/* Internal: the permessage-deflate data path (RFC 7692 §7.2) under dx_conn.
 *
 * One dx__pmd per connection that negotiated the extension: a few dozen
 * bytes of agreed parameters and two pointers, to a decompressor and a
 * compressor of its own that exist only while context takeover needs them
 * (see include/duplex/deflate.h, "Memory"). Everything else is per thread:
 * a shared decompressor (window 15, reset per message), a shared compressor
 * (reset per message), and two scratch buffers, one for a decompressed
 * message and one for a compressed one.
 *
 * This API is also the entry point for fuzzing the inflate path without a
 * connection: create a dx__pmd for any agreed parameters, then feed it
 * compressed bytes with dx__pmd_inflate (any split, `fin` on the last
 * piece) and either a dx__pmd_buf or a sink; every call returns 0 or a
 * negative dx_error and never reads or writes outside the buffers given.
 * Call dx__pmd_thread_trim() before checking for leaks.
 */
#ifndef DX_CORE_DEFLATE_H
#define DX_CORE_DEFLATE_H

#include <duplex/common.h>
#include <duplex/deflate.h>

typedef struct dx__pmd dx__pmd;

/* Creates the data-path state for a connection in `role` with the
 * `agreed` parameters; `cfg` (may be NULL: defaults) gives level,
 * mem_level, threshold and our own no_context_takeover. Allocates only the
 * small struct. Returns NULL and sets *err (DX_EINVAL for window bits out
 * of 8-15 or a bad level, DX_ENOMEM). */
dx__pmd *dx__pmd_new(enum dx_role role, const dx_deflate_params *agreed,
                     const dx_deflate_config *cfg, int *err);

/* Frees it and its zlib streams. `p` may be NULL. */
void dx__pmd_free(dx__pmd *p);

/* A growable output buffer for a whole decompressed message. Take the
 * thread's (or, when it is already lent out further up the stack, a fresh
 * empty one) with dx__pmd_buf_take and give it back with dx__pmd_buf_give
 * once the message has been used. `data` may be NULL while `len` is 0. */
typedef struct dx__pmd_buf {
    uint8_t *data;
    size_t len, cap;
    int thread; /* 1: the thread's buffer */
} dx__pmd_buf;

void dx__pmd_buf_take(dx__pmd_buf *b);
void dx__pmd_buf_give(dx__pmd_buf *b);

/* Receives decompressed bytes (sink mode). Returns 0 to go on, or a
 * negative dx_error that dx__pmd_inflate returns at once. */
typedef int (*dx__pmd_sink)(void *arg, const uint8_t *data, size_t len);

/* Decompresses the next piece (`in`, `len` bytes, possibly 0) of the
 * message being received; `fin` on its last piece (the RFC's empty-block
 * tail 00 00 ff ff is appended then). Output goes to `out` (appended,
 * grown as needed) when it is not NULL, else to `sink` in pieces of at most
 * 16 KiB. `whole` says this one call holds the entire message (fin set):
 * then, when the peer keeps no context and `out` is given, the thread's
 * shared decompressor is used and the connection allocates nothing.
 * `limit` bounds the decompressed size of the whole message (0: none): it is
 * checked after every step of zlib: a buffer never receives (nor grows to)
 * more than limit + 1 bytes of the message, a sink at most one 16 KiB step
 * past the limit. Returns 0,
 * DX_ETOOBIG (over `limit`), DX_EEXT (corrupt data), DX_ENOMEM, or what the
 * sink returned. After an error the connection must be failed; the state is
 * reset at the next message all the same. */
int dx__pmd_inflate(dx__pmd *p, const uint8_t *in, size_t len, int fin, int whole, uint64_t limit,
                    dx__pmd_buf *out, dx__pmd_sink sink, void *arg);

/* 1 when a message of `len` bytes should be sent compressed (the
 * threshold, and a window of at least 9 bits for our sends). */
int dx__pmd_want(const dx__pmd *p, size_t len);

/* Window bits of our sends (8-15). */
int dx__pmd_tx_bits(const dx__pmd *p);

/* 1 when our compressor keeps its context, so every message it compressed
 * must be sent compressed even when that came out larger. */
int dx__pmd_tx_keeps(const dx__pmd *p);

/* Compresses `len` bytes as one piece of a message being sent (`fin` on
 * its last), with the tail 00 00 ff ff removed from the last piece.
 * *out points into the thread's scratch buffer until the next call on this
 * thread. Returns 0, DX_ENOMEM, or DX_EEXT if zlib fails otherwise. */
int dx__pmd_deflate(dx__pmd *p, const uint8_t *in, size_t len, int fin, const uint8_t **out,
                    size_t *out_len);

/* Forgets what the connection's own compressor has seen (after a
 * compressed piece could not be queued), so the next message refers to
 * nothing the peer lacks. No-op without one. */
void dx__pmd_tx_abort(dx__pmd *p);

/* Bytes of zlib state the connection holds now (0 when idle without
 * context takeover), for tests and statistics. */
size_t dx__pmd_mem(const dx__pmd *p);

/* Frees the calling thread's shared streams and buffers (they are also
 * freed when the thread exits). For tests before a leak count or an
 * allocator change. */
void dx__pmd_thread_trim(void);

#endif

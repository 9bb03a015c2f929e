/* Internal: the output queue of one connection.
 *
 * A FIFO of segments. Most segments are blocks owned by the queue: frames
 * are written straight into the tail block (header, then the payload, masked
 * while it is copied for clients), so a send costs one copy and many small
 * frames coalesce into one block that leaves in one writev. The other kind
 * of segment references a dx_shared frame (a broadcast framed once and
 * queued on many connections without a copy).
 *
 * An empty queue holds no memory at all: blocks are freed as soon as their
 * bytes are consumed. Standard-size blocks go to a small per-thread cache
 * instead of free(), so a busy connection does not call malloc per send.
 * Queued memory never moves, so iovecs handed out stay valid until consumed.
 */
#ifndef DX_CORE_OUTQ_H
#define DX_CORE_OUTQ_H

#include <sys/uio.h>

#include <duplex/common.h>
#include <duplex/conn.h>

/* A frame shared by many queues; the refcount is not atomic (a loop is
 * single-threaded). `data` holds the whole frame, header included. */
struct dx_shared {
    size_t refs;
    size_t len;
    /* permessage-deflate: the same message compressed once, on the first
     * send to a connection that may take it (see dx_conn_send_shared), and
     * the window bits it was made with (0: not tried; 0xff: it did not
     * shrink, send the plain frame). */
    struct dx_shared *alt;
    uint8_t alt_bits;
    uint8_t data[];
};

/* Size of a standard block, allocation header included. A frame that does
 * not fit gets a block of its own size. */
#define DX__OUTQ_BLOCK 16384
/* Shared frames up to this size are copied into the queue's tail block,
 * when it has room, rather than referenced (see dx__outq_shared). */
#define DX__OUTQ_SHARED_COPY 256
/* Standard blocks each thread keeps for reuse. */
#define DX__OUTQ_CACHE 4

typedef struct dx__outq_seg dx__outq_seg;

typedef struct dx__outq {
    dx__outq_seg *head;
    dx__outq_seg *tail;
    size_t bytes; /* queued and not yet consumed */
} dx__outq;

/* Queues one frame: header then payload. `role` DX_ROLE_CLIENT masks the
 * payload with a fresh key from dx_random. Checks nothing about the opcode.
 * Returns 0, DX_ENOMEM, or DX_EIO when the random source failed; on error
 * nothing is queued. */
int dx__outq_frame(dx__outq *q, enum dx_role role, int fin, uint8_t rsv, uint8_t opcode,
                   const void *data, size_t len);

/* Queues bytes already framed (the part of a frame its writer did not
 * take): copied, in order. 0 or DX_ENOMEM (nothing queued). */
int dx__outq_bytes(dx__outq *q, const struct iovec *iov, int n);

/* Queues a shared frame: a reference to it (taking a reference), or for a
 * frame of at most DX__OUTQ_SHARED_COPY bytes that fits in the tail block
 * a copy there. 0 or DX_ENOMEM. */
int dx__outq_shared(dx__outq *q, dx_shared *s);

/* Fills up to `max` iovecs over the queued bytes; returns how many. */
int dx__outq_iov(const dx__outq *q, struct iovec *iov, int max);

/* Drops the first `n` queued bytes (clamped to what is queued), freeing
 * finished blocks and releasing finished shared frames. */
void dx__outq_consume(dx__outq *q, size_t n);

/* Drops everything queued. */
void dx__outq_clear(dx__outq *q);

/* Frees the calling thread's cache of spare blocks. Blocks cached by a
 * thread are also freed when it exits; tests call this before counting
 * live allocations or changing the allocator. */
void dx__outq_cache_trim(void);

#endif

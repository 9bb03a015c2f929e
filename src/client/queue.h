/* Internal: the offline queue of a resilient client — messages sent while
 * the connection is not OPEN, kept in order until the next connection
 * opens. Bounded in messages and in payload bytes; what happens to a
 * message that does not fit is the overflow policy:
 *   refuse       (DX_QUEUE_REFUSE) the new message is not queued, the send
 *                returns DX_EBUSY: the application decides;
 *   drop oldest  (DX_QUEUE_DROP_OLDEST) the oldest messages are dropped
 *                (counted in `dropped`) until the new one fits — for feeds
 *                where only recent data matters.
 * A message bigger than max_bytes on its own is refused under both.
 *
 * Each message is one allocation (header and payload together). This is
 * the offline path, not the hot one: while OPEN, sends go straight to the
 * connection's output queue. */
#ifndef DX_CLIENT_QUEUE_H
#define DX_CLIENT_QUEUE_H

#include <duplex/common.h>

typedef struct dx__qmsg {
    struct dx__qmsg *next;
    size_t len;
    uint8_t op; /* DX_OP_TEXT or DX_OP_BINARY */
    uint8_t data[];
} dx__qmsg;

typedef struct dx__queue {
    dx__qmsg *head, *tail;
    size_t count, bytes;         /* messages queued, and their payload bytes */
    size_t max_count, max_bytes; /* the bounds */
    int drop_oldest;             /* the overflow policy */
    uint64_t dropped;            /* messages dropped by drop_oldest */
} dx__queue;

/* An empty queue with these bounds (0 allows nothing). */
void dx__queue_init(dx__queue *q, size_t max_count, size_t max_bytes, int drop_oldest);

/* Copies the message to the tail. Returns 0, DX_EBUSY (it does not fit and
 * the policy refuses, or it is larger than max_bytes), or DX_ENOMEM
 * (nothing changed). */
int dx__queue_push(dx__queue *q, enum dx_opcode op, const void *data, size_t len);

/* The oldest message, NULL when empty; valid until it is popped. */
static inline const dx__qmsg *dx__queue_peek(const dx__queue *q) {
    return q->head;
}

/* Drops the oldest message (nothing when empty). */
void dx__queue_pop(dx__queue *q);

/* Drops every message; the bounds stay. */
void dx__queue_clear(dx__queue *q);

#endif

/* The offline queue (see queue.h): a singly linked FIFO. */
#include "client/queue.h"

#include <string.h>

#include "core/alloc.h"

void dx__queue_init(dx__queue *q, size_t max_count, size_t max_bytes, int drop_oldest) {
    memset(q, 0, sizeof *q);
    q->max_count = max_count;
    q->max_bytes = max_bytes;
    q->drop_oldest = drop_oldest;
}

static int fits(const dx__queue *q, size_t len) {
    return q->count < q->max_count && q->bytes + len <= q->max_bytes;
}

int dx__queue_push(dx__queue *q, enum dx_opcode op, const void *data, size_t len) {
    if (len > q->max_bytes || q->max_count == 0) return DX_EBUSY;
    if (!fits(q, len) && !q->drop_oldest) return DX_EBUSY;
    /* Allocate before dropping anything, so that ENOMEM changes nothing. */
    dx__qmsg *m = dx__malloc(sizeof *m + len);
    if (!m) return DX_ENOMEM;
    while (!fits(q, len)) {
        dx__queue_pop(q);
        q->dropped++;
    }
    m->next = NULL;
    m->len = len;
    m->op = (uint8_t)op;
    if (len) memcpy(m->data, data, len);
    if (q->tail)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
    q->count++;
    q->bytes += len;
    return 0;
}

void dx__queue_pop(dx__queue *q) {
    dx__qmsg *m = q->head;
    if (!m) return;
    q->head = m->next;
    if (!q->head) q->tail = NULL;
    q->count--;
    q->bytes -= m->len;
    dx__free(m);
}

void dx__queue_clear(dx__queue *q) {
    while (q->head)
        dx__queue_pop(q);
}

/* The send (or scheduled) times of one connection's messages in flight, in
 * the order they were sent: an echo answers the oldest. A ring that grows
 * by doubling up to DX_FIFO_MAX entries, shared by the WebSocket generator
 * (bench_load.c) and the HTTP one (bench_http.c). */
#ifndef DX_CLI_BENCH_FIFO_H
#define DX_CLI_BENCH_FIFO_H

#include <stdint.h>

#define DX_FIFO_MAX (1u << 16) /* rate mode: outstanding messages per connection */

typedef struct dx_fifo {
    uint64_t *t;
    uint32_t head, count, cap;
} dx_fifo;

/* Appends `v`: 0, 1 when DX_FIFO_MAX entries are already held (nothing
 * appended: the caller counts an overflow), or -1 out of memory. */
int dx_fifo_push(dx_fifo *f, uint64_t v);

/* Takes the oldest entry into *v: 1, or 0 when empty (*v untouched). */
static inline int dx_fifo_pop(dx_fifo *f, uint64_t *v) {
    if (!f->count) return 0;
    *v = f->t[f->head];
    f->head = (f->head + 1) % f->cap;
    f->count--;
    return 1;
}

/* Forgets every entry (the memory stays for reuse). */
static inline void dx_fifo_clear(dx_fifo *f) {
    f->head = f->count = 0;
}

void dx_fifo_free(dx_fifo *f);

#endif

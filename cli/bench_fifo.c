/* The in-flight send times of a benchmark connection (see bench_fifo.h). */
#include "cli/bench_fifo.h"

#include <stdlib.h>

int dx_fifo_push(dx_fifo *f, uint64_t v) {
    if (f->count == f->cap) {
        uint32_t cap = f->cap ? f->cap * 2 : 16;
        if (cap > DX_FIFO_MAX) return 1;
        uint64_t *t = malloc(cap * sizeof *t);
        if (!t) return -1;
        for (uint32_t i = 0; i < f->count; i++)
            t[i] = f->t[(f->head + i) % f->cap];
        free(f->t);
        f->t = t;
        f->head = 0;
        f->cap = cap;
    }
    f->t[(f->head + f->count++) % f->cap] = v;
    return 0;
}

void dx_fifo_free(dx_fifo *f) {
    free(f->t);
    f->t = NULL;
    f->head = f->count = f->cap = 0;
}

#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

static dx_malloc_fn dx_m = malloc;
static dx_realloc_fn dx_r = realloc;
static dx_free_fn dx_f = free;

void dx_set_allocator(dx_malloc_fn m, dx_realloc_fn r, dx_free_fn f) {
    dx_m = m ? m : malloc;
    dx_r = r ? r : realloc;
    dx_f = f ? f : free;
}

void *dx__malloc(size_t size) { return dx_m(size ? size : 1); }

void *dx__calloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    size_t total = n * size;
    void *p = dx_m(total > 0 ? total : 1);
    if (p) memset(p, 0, total);
    return p;
}

void *dx__realloc(void *ptr, size_t size) { return dx_r(ptr, size ? size : 1); }

void dx__free(void *ptr) {
    if (ptr) dx_f(ptr);
}

char *dx__strndup(const char *s, size_t n) {
    char *p = dx__malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* Internal: an output buffer that remembers overflow, so a writer of HTTP
 * heads appends everything and checks once at the end (wbuf_finish). Used
 * by http.c and handshake.c. */
#ifndef DX_CORE_WBUF_H
#define DX_CORE_WBUF_H

#include <limits.h>
#include <string.h>

#include <duplex/common.h>

typedef struct wbuf {
    char *p;
    size_t cap, len;
    int full;
} wbuf;

static inline void put(wbuf *b, const char *s, size_t n) {
    if (b->full || n == 0) return;
    if (n > b->cap - b->len) {
        b->full = 1;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static inline void put_str(wbuf *b, const char *s) { put(b, s, strlen(s)); }

/* The length written (a NUL follows when there is room), or DX_ENOSPC. */
static inline int wbuf_finish(wbuf *b) {
    if (b->full || b->len > (size_t)INT_MAX) return DX_ENOSPC;
    if (b->len < b->cap) b->p[b->len] = '\0';
    return (int)b->len;
}

#endif

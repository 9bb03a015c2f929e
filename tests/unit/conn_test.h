/* Test support shared by the tests that drive a sans-I/O dx_conn by hand
 * (test_conn, test_deflate, test_conformance): draining what a connection
 * queued, and frames as a peer writes them. Header-only, like test.h. */
#ifndef DX_TEST_CONN_H
#define DX_TEST_CONN_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <duplex/conn.h>

#include "test.h"

typedef struct dx_t_bytes {
    uint8_t *p; /* malloc'd; the caller frees it */
    size_t len;
} dx_t_bytes;

/* Takes everything `c` queued through dx_conn_out_iov/dx_conn_out_consume,
 * `batch` iovecs at a time (1 to 16; small batches walk the queue in more
 * steps, which is part of what some tests check). */
static inline dx_t_bytes dx_t_take(dx_conn *c, int batch) {
    dx_t_bytes b = {malloc(dx_conn_buffered(c) + 1), 0};
    struct iovec iov[16];
    if (batch < 1 || batch > 16) batch = 16;
    int n;
    while ((n = dx_conn_out_iov(c, iov, batch)) > 0) {
        size_t got = 0;
        for (int i = 0; i < n; i++) {
            memcpy(b.p + b.len, iov[i].iov_base, iov[i].iov_len);
            b.len += iov[i].iov_len;
            got += iov[i].iov_len;
        }
        dx_conn_out_consume(c, got);
    }
    return b;
}

/* One frame as a peer writes it (dx_t_frame), masked with a fixed key when
 * `mask`. */
static inline size_t dx_t_peer_frame(uint8_t *out, int fin, int rsv, int op, const void *payload,
                                     size_t len, int mask) {
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    return dx_t_frame(out, fin, rsv, op, payload, len, mask ? key : NULL);
}

#endif

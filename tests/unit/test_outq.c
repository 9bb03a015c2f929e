/* Tests for the output queue's handling of shared frames (src/core/outq.c):
 * small broadcasts are copied into the tail block and cork with the frames
 * around them; larger ones stay shared (test_conn checks that part, with
 * the same memory queued on every connection). Allocations are counted so
 * the copy path is seen to allocate nothing per receiver. */
#include <string.h>

#include <duplex/conn.h>
#include <duplex/frame.h>

#include "core/outq.h"
#include "test.h"

static long allocs, live;
static size_t last_size;

static void *t_malloc(size_t n) {
    void *p = malloc(n);
    if (p) allocs++, live++, last_size = n;
    return p;
}
static void *t_realloc(void *p, size_t n) {
    void *q = realloc(p, n);
    if (q && !p) allocs++, live++;
    return q;
}
static void t_free(void *p) {
    if (p) live--;
    free(p);
}

/* Drains `q` into `out` (at most `cap` bytes) through its iovecs, as a
 * writer would; returns the byte count and the number of iovecs seen. */
static size_t drain(dx__outq *q, uint8_t *out, size_t cap, int *niov) {
    struct iovec iov[16];
    int n = dx__outq_iov(q, iov, 16);
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        if (at + iov[i].iov_len > cap) {
            CHECK(!"drain: output buffer too small");
            return at;
        }
        memcpy(out + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
    }
    *niov = n;
    dx__outq_consume(q, at);
    return at;
}

static void test_small_shared_is_copied(void) {
    uint8_t payload[200];
    for (int i = 0; i < 200; i++)
        payload[i] = (uint8_t)('A' + i % 26);
    dx_shared *sh = dx_shared_new(DX_OP_TEXT, payload, sizeof payload);
    REQUIRE(sh);
    REQUIRE(dx_shared_size(sh) == 4 + 200 && dx_shared_size(sh) <= DX__OUTQ_SHARED_COPY);
    dx__outq q[8];
    memset(q, 0, sizeof q);
    for (int i = 0; i < 8; i++)
        CHECK_EQ_INT(dx__outq_frame(&q[i], DX_ROLE_SERVER, 1, 0, DX_OP_BINARY, "pre", 3), 0);
    long before = allocs;
    for (int i = 0; i < 8; i++) {
        CHECK_EQ_INT(dx__outq_shared(&q[i], sh), 0);
        CHECK_EQ_INT(q[i].bytes, 5 + 204);
    }
    /* Copied into the blocks the "pre" frames opened: no allocation. */
    CHECK_EQ_INT(allocs - before, 0);
    dx_shared_release(sh); /* the queues hold copies, not references */
    for (int i = 0; i < 8; i++) {
        CHECK_EQ_INT(dx__outq_frame(&q[i], DX_ROLE_SERVER, 1, 0, DX_OP_BINARY, "post", 4), 0);
        uint8_t out[512];
        int niov = 0;
        size_t n = drain(&q[i], out, sizeof out, &niov);
        CHECK_EQ_INT(niov, 1); /* one block: pre, the broadcast, post */
        CHECK_EQ_INT(n, 5 + 204 + 6);
        CHECK(out[0] == 0x82 && out[1] == 3 && !memcmp(out + 2, "pre", 3));
        CHECK(out[5] == 0x81 && out[6] == 126 && out[7] == 0 && out[8] == 200);
        CHECK(!memcmp(out + 9, payload, 200));
        CHECK(out[209] == 0x82 && out[210] == 4 && !memcmp(out + 211, "post", 4));
        CHECK_EQ_INT(q[i].bytes, 0);
    }
    dx__outq_cache_trim();
    CHECK_EQ_INT(live, 0);
}

static void test_small_shared_on_empty_queue(void) {
    /* Nothing to cork with: referenced (one small segment), not copied
     * into a 16 KiB block of its own. */
    dx_shared *sh = dx_shared_new(DX_OP_BINARY, "hi", 2);
    REQUIRE(sh);
    dx__outq q = {0};
    long before = allocs;
    CHECK_EQ_INT(dx__outq_shared(&q, sh), 0);
    CHECK_EQ_INT(allocs - before, 1);
    CHECK(last_size < 256);
    struct iovec iov[2];
    CHECK_EQ_INT(dx__outq_iov(&q, iov, 2), 1);
    CHECK(iov[0].iov_len == 4 && !memcmp(iov[0].iov_base, "\x82\x02hi", 4));
    dx_shared_release(sh); /* the queue keeps it alive */
    /* A frame sent after it opens a block; the next broadcast corks there. */
    CHECK_EQ_INT(dx__outq_frame(&q, DX_ROLE_SERVER, 1, 0, DX_OP_TEXT, "x", 1), 0);
    sh = dx_shared_new(DX_OP_BINARY, "yo", 2);
    REQUIRE(sh);
    before = allocs;
    CHECK_EQ_INT(dx__outq_shared(&q, sh), 0);
    CHECK_EQ_INT(allocs - before, 0);
    dx_shared_release(sh);
    uint8_t out[64];
    int niov = 0;
    CHECK_EQ_INT(drain(&q, out, sizeof out, &niov), 4 + 3 + 4);
    CHECK_EQ_INT(niov, 2);
    CHECK(!memcmp(out, "\x82\x02hi\x81\x01x\x82\x02yo", 11));
    dx__outq_clear(&q);
    dx__outq_cache_trim();
    CHECK_EQ_INT(live, 0);
}

static void test_large_shared_is_referenced(void) {
    static uint8_t payload[1000];
    memset(payload, 'z', sizeof payload);
    dx_shared *sh = dx_shared_new(DX_OP_BINARY, payload, sizeof payload);
    REQUIRE(sh && dx_shared_size(sh) > DX__OUTQ_SHARED_COPY);
    dx__outq a = {0}, b = {0};
    CHECK_EQ_INT(dx__outq_shared(&a, sh), 0);
    CHECK_EQ_INT(dx__outq_shared(&b, sh), 0);
    struct iovec ia[2], ib[2];
    CHECK_EQ_INT(dx__outq_iov(&a, ia, 2), 1);
    CHECK_EQ_INT(dx__outq_iov(&b, ib, 2), 1);
    CHECK(ia[0].iov_base == ib[0].iov_base && ia[0].iov_len == 1004);
    dx_shared_release(sh);
    dx__outq_clear(&a);
    dx__outq_clear(&b); /* the last reference frees the frame */
    dx__outq_cache_trim();
    CHECK_EQ_INT(live, 0);
}

int main(void) {
    dx_set_allocator(t_malloc, t_realloc, t_free);
    RUN(test_small_shared_is_copied);
    RUN(test_small_shared_on_empty_queue);
    RUN(test_large_shared_is_referenced);
    return TEST_DONE();
}

/* Tests for the reconnect policy (src/client/reconnect.c) and the offline
 * queue (src/client/queue.c): pure functions, so every bound is checked
 * exactly, with random bits from a seeded generator. */
#include <math.h>

#include "client/queue.h"
#include "client/reconnect.h"
#include "core/alloc.h"
#include "test.h"

static const dx__backoff std = {.base_ms = 100, .max_ms = 5000, .factor = 2.0, .jitter = 1.0};

static void test_bound_grows_to_cap(void) {
    CHECK_EQ_INT(dx__backoff_bound(&std, 0), 0);
    CHECK_EQ_INT(dx__backoff_bound(&std, 1), 100);
    CHECK_EQ_INT(dx__backoff_bound(&std, 2), 200);
    CHECK_EQ_INT(dx__backoff_bound(&std, 3), 400);
    CHECK_EQ_INT(dx__backoff_bound(&std, 6), 3200);
    CHECK_EQ_INT(dx__backoff_bound(&std, 7), 5000); /* 6400 capped */
    CHECK_EQ_INT(dx__backoff_bound(&std, 1000), 5000);
    CHECK_EQ_INT(dx__backoff_bound(&std, 0xffffffffu), 5000); /* no overflow, no long loop */
    uint64_t prev = 0;
    for (unsigned n = 1; n < 200; n++) { /* never shrinks */
        uint64_t b = dx__backoff_bound(&std, n);
        CHECK(b >= prev);
        CHECK(b <= 5000);
        prev = b;
    }
    /* Odd factors follow base × factor^(n−1). */
    dx__backoff f15 = {.base_ms = 1000, .max_ms = 1000000, .factor = 1.5, .jitter = 0};
    for (unsigned n = 1; n <= 12; n++) {
        double want = 1000.0 * pow(1.5, n - 1);
        double got = (double)dx__backoff_bound(&f15, n);
        CHECK(fabs(got - want) <= 1.0);
    }
    /* factor 1: constant; base above the cap: the cap. */
    dx__backoff flat = {.base_ms = 300, .max_ms = 5000, .factor = 1.0};
    CHECK_EQ_INT(dx__backoff_bound(&flat, 50), 300);
    dx__backoff over = {.base_ms = 9000, .max_ms = 5000, .factor = 2.0};
    CHECK_EQ_INT(dx__backoff_bound(&over, 1), 5000);
    CHECK_EQ_INT(dx__backoff_bound(&over, 9), 5000);
    /* A huge factor reaches +inf in doubles, not undefined behaviour. */
    dx__backoff huge = {.base_ms = 1, .max_ms = 4000000000u, .factor = 1e300};
    CHECK_EQ_INT(dx__backoff_bound(&huge, 40), 4000000000u);
}

static void test_full_jitter_bounds(void) {
    /* Every delay in [0, bound]; over many draws both ends of the window
     * are reached, so it is really spread (not stuck at the bound). */
    for (unsigned n = 1; n <= 10; n++) {
        uint64_t bound = dx__backoff_bound(&std, n), lo = UINT64_MAX, hi = 0;
        for (int i = 0; i < 4000; i++) {
            uint64_t d = dx__backoff_delay(&std, n, dx_t_rand());
            CHECK(d <= bound);
            if (d < lo) lo = d;
            if (d > hi) hi = d;
        }
        CHECK(lo < bound / 10 + 1);
        CHECK(hi > bound - bound / 10 - 1);
    }
    /* The extremes of the random bits give the extremes of the window. */
    CHECK_EQ_INT(dx__backoff_delay(&std, 3, 0), 400);
    CHECK_EQ_INT(dx__backoff_delay(&std, 3, 400), 0);
}

static void test_partial_and_no_jitter(void) {
    dx__backoff half = std;
    half.jitter = 0.25;
    for (unsigned n = 1; n <= 8; n++) {
        uint64_t bound = dx__backoff_bound(&half, n);
        for (int i = 0; i < 2000; i++) {
            uint64_t d = dx__backoff_delay(&half, n, dx_t_rand());
            CHECK(d <= bound);
            CHECK(d >= bound - (uint64_t)((double)bound * 0.25));
        }
    }
    dx__backoff none = std;
    none.jitter = 0;
    for (unsigned n = 1; n <= 8; n++)
        CHECK_EQ_INT(dx__backoff_delay(&none, n, dx_t_rand()), dx__backoff_bound(&none, n));
    none.jitter = -3; /* clamped, as the config documents */
    CHECK_EQ_INT(dx__backoff_delay(&none, 2, 12345), 200);
    none.jitter = 7;
    CHECK(dx__backoff_delay(&none, 2, 0) == 200 && dx__backoff_delay(&none, 2, 200) == 0);
}

static void test_retry_counts_and_max(void) {
    dx__retry_policy p = {.backoff = std, .max_retries = 3, .stable_ms = 1000};
    unsigned attempt = 0;
    uint64_t delay = 77;
    for (unsigned n = 1; n <= 3; n++) {
        CHECK_EQ_INT(dx__retry_next(&p, &attempt, 1006, 0, 0, dx_t_rand(), &delay), DX__RETRY);
        CHECK_EQ_INT(attempt, n);
        CHECK(delay <= dx__backoff_bound(&std, n));
    }
    delay = 77;
    CHECK_EQ_INT(dx__retry_next(&p, &attempt, 1006, 0, 0, 1, &delay), DX__STOP_EXHAUSTED);
    CHECK_EQ_INT(attempt, 3); /* unchanged on a stop */
    CHECK_EQ_INT(delay, 77);
    /* A connection that opened but not for long still counts. */
    CHECK_EQ_INT(dx__retry_next(&p, &attempt, 1006, 0, 999, 1, &delay), DX__STOP_EXHAUSTED);
    /* A stable one starts the count again. */
    CHECK_EQ_INT(dx__retry_next(&p, &attempt, 1006, 0, 1000, 0, &delay), DX__RETRY);
    CHECK_EQ_INT(attempt, 1);
    CHECK_EQ_INT(delay, 100); /* the first bound again */
    /* No limit: goes on, the delay staying under the cap. */
    p.max_retries = 0;
    attempt = 0;
    for (int i = 0; i < 500; i++) {
        CHECK_EQ_INT(dx__retry_next(&p, &attempt, 1001, 0, 0, dx_t_rand(), &delay), DX__RETRY);
        CHECK(delay <= 5000);
    }
    CHECK_EQ_INT(attempt, 500);
}

static void test_retry_final_codes_and_app_close(void) {
    const uint16_t finals[] = {1008, 4401};
    dx__retry_policy p = {.backoff = std, .stable_ms = 1000, .final_codes = finals, .num_final = 2};
    unsigned attempt = 2;
    uint64_t delay = 5;
    CHECK_EQ_INT(dx__retry_next(&p, &attempt, 1008, 0, 0, 1, &delay), DX__STOP_FINAL_CODE);
    CHECK_EQ_INT(dx__retry_next(&p, &attempt, 4401, 0, 50000, 1, &delay), DX__STOP_FINAL_CODE);
    CHECK_EQ_INT(attempt, 2);
    CHECK_EQ_INT(delay, 5);
    /* Codes that are not listed reconnect: going away, abnormal, 4400. */
    CHECK_EQ_INT(dx__retry_next(&p, &attempt, 1001, 0, 0, 1, &delay), DX__RETRY);
    CHECK_EQ_INT(dx__retry_next(&p, &attempt, 1006, 0, 0, 1, &delay), DX__RETRY);
    CHECK_EQ_INT(dx__retry_next(&p, &attempt, 4400, 0, 0, 1, &delay), DX__RETRY);
    /* The application's close wins over everything. */
    CHECK_EQ_INT(dx__retry_next(&p, &attempt, 1006, 1, 0, 1, &delay), DX__STOP_APP_CLOSED);
    CHECK_EQ_INT(dx__retry_next(&p, &attempt, 1000, 1, 90000, 1, &delay), DX__STOP_APP_CLOSED);
}

/* ---- the offline queue ---- */

static int queue_is(const dx__queue *q, const char *const *want, size_t n) {
    const dx__qmsg *m = q->head;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++, m = m->next) {
        if (!m || m->len != strlen(want[i]) || memcmp(m->data, want[i], m->len)) return 0;
        bytes += m->len;
    }
    return m == NULL && q->count == n && q->bytes == bytes;
}

static void test_queue_order_and_pop(void) {
    dx__queue q;
    dx__queue_init(&q, 10, 1000, 0);
    CHECK(dx__queue_peek(&q) == NULL);
    dx__queue_pop(&q); /* harmless when empty */
    const char *in[] = {"one", "two", "", "four"};
    for (int i = 0; i < 4; i++)
        CHECK_EQ_INT(dx__queue_push(&q, i == 2 ? DX_OP_BINARY : DX_OP_TEXT, in[i], strlen(in[i])),
                     0);
    CHECK(queue_is(&q, in, 4));
    CHECK_EQ_INT(dx__queue_peek(&q)->op, DX_OP_TEXT);
    dx__queue_pop(&q);
    CHECK(queue_is(&q, in + 1, 3));
    dx__queue_pop(&q);
    CHECK_EQ_INT(dx__queue_peek(&q)->op, DX_OP_BINARY);
    CHECK_EQ_INT(dx__queue_peek(&q)->len, 0);
    dx__queue_pop(&q);
    dx__queue_pop(&q);
    CHECK(dx__queue_peek(&q) == NULL && q.tail == NULL && q.count == 0 && q.bytes == 0);
    /* Usable again after emptying. */
    CHECK_EQ_INT(dx__queue_push(&q, DX_OP_TEXT, "again", 5), 0);
    CHECK(queue_is(&q, (const char *const[]){"again"}, 1));
    dx__queue_clear(&q);
    CHECK(q.head == NULL && q.count == 0 && q.bytes == 0);
}

static void test_queue_refuse_policy(void) {
    dx__queue q;
    dx__queue_init(&q, 3, 10, 0);
    CHECK_EQ_INT(dx__queue_push(&q, DX_OP_TEXT, "aaaa", 4), 0);
    CHECK_EQ_INT(dx__queue_push(&q, DX_OP_TEXT, "bbbb", 4), 0);
    CHECK_EQ_INT(dx__queue_push(&q, DX_OP_TEXT, "ccc", 3), DX_EBUSY); /* 11 bytes > 10 */
    CHECK_EQ_INT(dx__queue_push(&q, DX_OP_TEXT, "cc", 2), 0);         /* exactly 10 */
    CHECK_EQ_INT(dx__queue_push(&q, DX_OP_TEXT, "", 0), DX_EBUSY);    /* a 4th message */
    CHECK(queue_is(&q, (const char *const[]){"aaaa", "bbbb", "cc"}, 3));
    CHECK_EQ_INT(q.dropped, 0);
    CHECK_EQ_INT(dx__queue_push(&q, DX_OP_TEXT, "12345678901", 11), DX_EBUSY); /* alone too big */
    dx__queue_clear(&q);
    dx__queue_init(&q, 0, 10, 0); /* no room at all */
    CHECK_EQ_INT(dx__queue_push(&q, DX_OP_TEXT, "x", 1), DX_EBUSY);
}

static void test_queue_drop_oldest_policy(void) {
    dx__queue q;
    dx__queue_init(&q, 3, 10, 1);
    const char *in[] = {"m1", "m2", "m3", "m4", "m5"};
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(dx__queue_push(&q, DX_OP_TEXT, in[i], 2), 0);
    CHECK(queue_is(&q, in + 2, 3)); /* the newest three, in order */
    CHECK_EQ_INT(q.dropped, 2);
    /* Bytes too: 9 bytes must drop m3 and m4 (6 + 9 > 10, 4 + 9 > 10...). */
    CHECK_EQ_INT(dx__queue_push(&q, DX_OP_TEXT, "123456789", 9), 0);
    CHECK(queue_is(&q, (const char *const[]){"123456789"}, 1));
    CHECK_EQ_INT(q.dropped, 5);
    CHECK_EQ_INT(dx__queue_push(&q, DX_OP_TEXT, "12345678901", 11), DX_EBUSY); /* never fits */
    CHECK(queue_is(&q, (const char *const[]){"123456789"}, 1)); /* and nothing was dropped */
    dx__queue_clear(&q);
}

/* Fails the n-th allocation: a failed push changes nothing. */
static int fail_at, allocs;
static void *fail_malloc(size_t n) {
    return ++allocs == fail_at ? NULL : malloc(n);
}
static void *fail_realloc(void *p, size_t n) {
    return ++allocs == fail_at ? NULL : realloc(p, n);
}

static void test_queue_enomem(void) {
    dx_set_allocator(fail_malloc, fail_realloc, free);
    dx__queue q;
    dx__queue_init(&q, 2, 100, 1);
    allocs = 0;
    fail_at = 3;
    CHECK_EQ_INT(dx__queue_push(&q, DX_OP_TEXT, "a", 1), 0);
    CHECK_EQ_INT(dx__queue_push(&q, DX_OP_TEXT, "b", 1), 0);
    CHECK_EQ_INT(dx__queue_push(&q, DX_OP_TEXT, "c", 1), DX_ENOMEM); /* would drop "a" */
    CHECK(queue_is(&q, (const char *const[]){"a", "b"}, 2));
    CHECK_EQ_INT(q.dropped, 0);
    dx__queue_clear(&q);
    dx_set_allocator(malloc, realloc, free);
}

int main(void) {
    dx_t_seed();
    RUN(test_bound_grows_to_cap);
    RUN(test_full_jitter_bounds);
    RUN(test_partial_and_no_jitter);
    RUN(test_retry_counts_and_max);
    RUN(test_retry_final_codes_and_app_close);
    RUN(test_queue_order_and_pop);
    RUN(test_queue_refuse_policy);
    RUN(test_queue_drop_oldest_policy);
    RUN(test_queue_enomem);
    return TEST_DONE();
}

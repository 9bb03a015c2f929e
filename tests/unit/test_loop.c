/* Tests for the event loop (src/io/loop.c): timers, the timer heap under
 * load, posts from other threads, deferred calls, signals, I/O watchers. */
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <duplex/loop.h>

#include "test.h"

/* Every test arms a guard timer so that a bug stops the loop instead of
 * hanging the test. */
static int guard_fired;
static void on_guard(dx_loop *loop, dx_timer *t) {
    guard_fired = 1;
    dx_loop_stop(loop);
}
static void guard_start(dx_loop *loop, dx_timer *g, uint64_t ms) {
    guard_fired = 0;
    dx_timer_init(g, on_guard);
    dx_timer_start(loop, g, ms);
}

/* ---- timers fire in order, never early ---- */

typedef struct order_timer {
    dx_timer t;
    uint64_t after;
    uint64_t fired_now; /* dx_loop_now() in the callback */
    uint64_t fired_real;
    int id;
} order_timer;

static int order_seen[8], order_count, order_total;

static void on_order(dx_loop *loop, dx_timer *t) {
    order_timer *ot = (order_timer *)t;
    ot->fired_now = dx_loop_now(loop);
    ot->fired_real = dx_t_now_ms();
    order_seen[order_count++] = ot->id;
    if (order_count == order_total) dx_loop_stop(loop);
}

static void test_timers_order(void) {
    dx_loop *loop = dx_loop_new(0);
    REQUIRE(loop);
    dx_timer guard;
    guard_start(loop, &guard, 5000);
    static const uint64_t afters[] = {60, 10, 100, 30, 0, 45};
    static const int expect[] = {4, 1, 3, 5, 0, 2};
    order_timer ts[6];
    order_count = 0;
    order_total = 6;
    uint64_t start_now = dx_loop_now(loop), start_real = dx_t_now_ms();
    for (int i = 0; i < 6; i++) {
        dx_timer_init(&ts[i].t, on_order);
        ts[i].after = afters[i];
        ts[i].id = i;
        dx_timer_start(loop, &ts[i].t, afters[i]);
        CHECK(dx_timer_active(&ts[i].t));
    }
    CHECK_EQ_INT(dx_loop_run(loop), 0);
    CHECK(!guard_fired);
    CHECK_EQ_INT(order_count, 6);
    for (int i = 0; i < 6; i++) {
        CHECK_EQ_INT(order_seen[i], expect[i]);
        CHECK(!dx_timer_active(&ts[i].t));
        /* Never early by the loop's clock, nor by more than the clock's
         * millisecond truncation in real time. */
        CHECK(ts[i].fired_now >= start_now + ts[i].after);
        CHECK(ts[i].fired_real + 1 >= start_real + ts[i].after);
        /* Not much late either (generous for sanitizers and busy CI). */
        CHECK(ts[i].fired_real <= start_real + ts[i].after + 80);
    }
    dx_timer_stop(loop, &guard);
    dx_loop_free(loop);
}

/* ---- stop and restart ---- */

static int sr_a_count;
static uint64_t sr_a_when;
static dx_timer sr_a, sr_b, sr_c;

static void on_sr_a(dx_loop *loop, dx_timer *t) {
    sr_a_count++;
    sr_a_when = dx_loop_now(loop);
}
static void on_sr_b(dx_loop *loop, dx_timer *t) {
    /* Stop A (due at 20) and restart it at now + 30: it must fire once. */
    dx_timer_stop(loop, &sr_a);
    CHECK(!dx_timer_active(&sr_a));
    dx_timer_stop(loop, &sr_a); /* twice is fine */
    dx_timer_start(loop, &sr_a, 30);
    /* Restarting an active timer moves it: C goes from 10 to 60. */
    CHECK(dx_timer_active(&sr_c));
    dx_timer_start(loop, &sr_c, 55);
}
static void on_sr_c(dx_loop *loop, dx_timer *t) {
    dx_loop_stop(loop);
}

static void test_timer_stop_restart(void) {
    dx_loop *loop = dx_loop_new(0);
    REQUIRE(loop);
    dx_timer guard;
    guard_start(loop, &guard, 5000);
    sr_a_count = 0;
    dx_timer_init(&sr_a, on_sr_a);
    dx_timer_init(&sr_b, on_sr_b);
    dx_timer_init(&sr_c, on_sr_c);
    dx_timer never;
    dx_timer_init(&never, on_sr_a);
    dx_timer_stop(loop, &never); /* stop on a timer never started */
    uint64_t start = dx_loop_now(loop);
    dx_timer_start(loop, &sr_a, 20);
    dx_timer_start(loop, &sr_b, 5);
    dx_timer_start(loop, &sr_c, 10);
    dx_timer_start(loop, &never, 1);
    dx_timer_stop(loop, &never);
    CHECK_EQ_INT(dx_loop_run(loop), 0);
    CHECK(!guard_fired);
    CHECK_EQ_INT(sr_a_count, 1);
    CHECK(sr_a_when >= start + 35);
    CHECK(dx_loop_now(loop) >= start + 60);
    dx_timer_stop(loop, &guard);
    dx_loop_free(loop);
}

/* ---- timers moved while the loop sleeps (the timerfd is set again) ---- */

static dx_timer mv_far, mv_near, mv_moved;
static uint64_t mv_start, mv_near_at, mv_moved_at, mv_post_at;

static void on_mv_near(dx_loop *loop, dx_timer *t) {
    mv_near_at = dx_loop_now(loop);
}
static void on_mv_moved(dx_loop *loop, dx_timer *t) {
    mv_moved_at = dx_loop_now(loop);
    dx_loop_stop(loop);
}
static void on_mv_far(dx_loop *loop, dx_timer *t) {
    dx_loop_stop(loop);
}
/* Runs on the loop while it waits for timers due at 500 ms and 3 s: a new
 * timer nearer than both must still fire on time (the timerfd, set for 500
 * ms, is set again), and the one due at 500 ms, pushed back to 400 ms from
 * now, must not fire at its old time. */
static void on_mv_post(dx_loop *loop, void *arg) {
    mv_post_at = dx_loop_now(loop);
    dx_timer_start(loop, &mv_near, 10);
    dx_timer_start(loop, &mv_moved, 400);
}
static void *mv_thread(void *arg) {
    struct timespec ts = {0, 15 * 1000000L};
    nanosleep(&ts, NULL);
    CHECK_EQ_INT(dx_loop_post(arg, on_mv_post, NULL), 0);
    return NULL;
}

static void test_timer_moved_while_waiting(void) {
    dx_loop *loop = dx_loop_new(0);
    REQUIRE(loop);
    dx_timer guard;
    guard_start(loop, &guard, 5000);
    dx_timer_init(&mv_far, on_mv_far);
    dx_timer_init(&mv_near, on_mv_near);
    dx_timer_init(&mv_moved, on_mv_moved);
    mv_start = dx_loop_now(loop);
    mv_near_at = mv_moved_at = mv_post_at = 0;
    dx_timer_start(loop, &mv_far, 3000);
    dx_timer_start(loop, &mv_moved, 500);
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, mv_thread, loop) == 0);
    CHECK_EQ_INT(dx_loop_run(loop), 0);
    pthread_join(th, NULL);
    CHECK(!guard_fired);
    CHECK(mv_post_at > 0 && mv_post_at < mv_start + 300);
    /* The near timer fired, not early, and before the old earliest time. */
    CHECK(mv_near_at >= mv_post_at + 10);
    CHECK(mv_near_at < mv_start + 450);
    /* The moved timer fired once, at its new time. */
    CHECK(mv_moved_at >= mv_post_at + 400);
    CHECK(mv_moved_at < mv_start + 2000);
    CHECK(dx_timer_active(&mv_far));
    dx_timer_stop(loop, &mv_far);
    dx_timer_stop(loop, &guard);
    dx_loop_free(loop);
}

/* ---- 100k timers: random start/stop, heap invariants, expiry order ---- */

#define HEAP_N 100000

typedef struct heap_timer {
    dx_timer t;
    int fired;
} heap_timer;

static heap_timer *heap_ts;
static uint64_t heap_last_due;
static int heap_fired, heap_order_ok, heap_expected;

static void on_heap(dx_loop *loop, dx_timer *t) {
    heap_timer *ht = (heap_timer *)t;
    ht->fired++;
    if (t->due < heap_last_due) heap_order_ok = 0;
    heap_last_due = t->due;
    if (++heap_fired == heap_expected) dx_loop_stop(loop);
}

/* Checks through the public fields: the active timers' heap_index values
 * are exactly 1..n, and every parent is due no later than its children. */
static int heap_check(void) {
    dx_timer **slot = calloc(HEAP_N + 1, sizeof *slot);
    int n = 0, ok = 1;
    for (int i = 0; i < HEAP_N; i++) {
        dx_timer *t = &heap_ts[i].t;
        if (!t->heap_index) continue;
        n++;
        if (t->heap_index > HEAP_N || slot[t->heap_index])
            ok = 0;
        else
            slot[t->heap_index] = t;
    }
    for (int i = 1; ok && i <= n; i++) {
        if (!slot[i])
            ok = 0;
        else if (i > 1 && slot[i / 2]->due > slot[i]->due)
            ok = 0;
    }
    free(slot);
    return ok ? n : -1;
}

static void test_timer_heap_100k(void) {
    dx_loop *loop = dx_loop_new(0);
    REQUIRE(loop);
    dx_t_seed();
    heap_ts = calloc(HEAP_N, sizeof *heap_ts);
    REQUIRE(heap_ts);
    for (int i = 0; i < HEAP_N; i++)
        dx_timer_init(&heap_ts[i].t, on_heap);
    for (int i = 0; i < HEAP_N; i++)
        dx_timer_start(loop, &heap_ts[i].t, dx_t_rand() % 40);
    CHECK_EQ_INT(heap_check(), HEAP_N);
    for (int round = 0; round < 3 * HEAP_N; round++) {
        heap_timer *ht = &heap_ts[dx_t_rand() % HEAP_N];
        if (dx_t_rand() % 3 == 0)
            dx_timer_stop(loop, &ht->t);
        else
            dx_timer_start(loop, &ht->t, dx_t_rand() % 40);
        if (round % 50000 == 0) CHECK(heap_check() >= 0);
    }
    int active = heap_check();
    CHECK(active > 0);
    heap_expected = active;
    heap_fired = 0;
    heap_order_ok = 1;
    heap_last_due = 0;
    dx_timer guard;
    guard_start(loop, &guard, 10000);
    char *marked = calloc(HEAP_N, 1);
    REQUIRE(marked);
    for (int i = 0; i < HEAP_N; i++)
        marked[i] = heap_ts[i].t.heap_index != 0;
    CHECK_EQ_INT(dx_loop_run(loop), 0);
    CHECK(!guard_fired);
    CHECK(heap_order_ok);
    CHECK_EQ_INT(heap_fired, active);
    int wrong = 0;
    for (int i = 0; i < HEAP_N; i++)
        if (heap_ts[i].fired != marked[i]) wrong++;
    CHECK_EQ_INT(wrong, 0);
    CHECK_EQ_INT(heap_check(), 0);
    dx_timer_stop(loop, &guard);
    free(marked);
    free(heap_ts);
    dx_loop_free(loop);
}

/* ---- a timer that restarts itself ---- */

static int self_count, zero_count;
static dx_timer self_t, zero_t;

static void on_self(dx_loop *loop, dx_timer *t) {
    if (++self_count < 5)
        dx_timer_start(loop, t, 2);
    else
        dx_loop_stop(loop);
}
/* Restarting with 0 from its own callback must not spin inside one pass:
 * the 2 ms timer above still gets to run and stop the loop. */
static void on_zero(dx_loop *loop, dx_timer *t) {
    zero_count++;
    dx_timer_start(loop, t, 0);
}

static void test_timer_self_restart(void) {
    dx_loop *loop = dx_loop_new(0);
    REQUIRE(loop);
    dx_timer guard;
    guard_start(loop, &guard, 5000);
    self_count = zero_count = 0;
    dx_timer_init(&self_t, on_self);
    dx_timer_init(&zero_t, on_zero);
    uint64_t start = dx_loop_now(loop);
    dx_timer_start(loop, &self_t, 2);
    dx_timer_start(loop, &zero_t, 0);
    CHECK_EQ_INT(dx_loop_run(loop), 0);
    CHECK(!guard_fired);
    CHECK_EQ_INT(self_count, 5);
    CHECK(dx_loop_now(loop) >= start + 10);
    CHECK(zero_count >= 1);
    /* At most about one run per millisecond, since each pass re-arms it
     * 1 ms ahead. */
    CHECK((uint64_t)zero_count <= dx_loop_now(loop) - start + 2);
    CHECK(dx_timer_active(&zero_t));
    dx_timer_stop(loop, &zero_t);
    dx_timer_stop(loop, &guard);
    dx_loop_free(loop);
}

/* ---- posts from other threads ---- */

#define POST_THREADS 4
#define POST_EACH 5000

static int post_seen[POST_THREADS][POST_EACH];
static int post_last[POST_THREADS];
static int post_total, post_in_order;
static pthread_t post_loop_thread;
static int post_on_loop_thread;

typedef struct post_arg {
    dx_loop *loop;
    int thread;
} post_arg;

static void on_post(dx_loop *loop, void *arg) {
    uintptr_t v = (uintptr_t)arg;
    int th = (int)(v / POST_EACH), seq = (int)(v % POST_EACH);
    post_seen[th][seq]++;
    if (seq != post_last[th] + 1) post_in_order = 0;
    post_last[th] = seq;
    if (!pthread_equal(pthread_self(), post_loop_thread)) post_on_loop_thread = 0;
    if (++post_total == POST_THREADS * POST_EACH) dx_loop_stop(loop);
}

static void *post_thread(void *p) {
    post_arg *a = p;
    for (int i = 0; i < POST_EACH; i++) {
        uintptr_t v = (uintptr_t)a->thread * POST_EACH + (uintptr_t)i;
        while (dx_loop_post(a->loop, on_post, (void *)v) != 0) {
        }
        if (i % 1000 == 0) usleep(100);
    }
    return NULL;
}

static void test_post_threads(void) {
    dx_loop *loop = dx_loop_new(0);
    REQUIRE(loop);
    dx_timer guard;
    guard_start(loop, &guard, 15000);
    memset(post_seen, 0, sizeof post_seen);
    for (int i = 0; i < POST_THREADS; i++)
        post_last[i] = -1;
    post_total = 0;
    post_in_order = 1;
    post_on_loop_thread = 1;
    post_loop_thread = pthread_self();
    pthread_t th[POST_THREADS];
    post_arg args[POST_THREADS];
    for (int i = 0; i < POST_THREADS; i++) {
        args[i] = (post_arg){loop, i};
        REQUIRE(pthread_create(&th[i], NULL, post_thread, &args[i]) == 0);
    }
    CHECK_EQ_INT(dx_loop_run(loop), 0);
    for (int i = 0; i < POST_THREADS; i++)
        pthread_join(th[i], NULL);
    CHECK(!guard_fired);
    CHECK_EQ_INT(post_total, POST_THREADS * POST_EACH);
    int bad = 0;
    for (int i = 0; i < POST_THREADS; i++)
        for (int j = 0; j < POST_EACH; j++)
            if (post_seen[i][j] != 1) bad++;
    CHECK_EQ_INT(bad, 0);
    CHECK(post_in_order);
    CHECK(post_on_loop_thread);
    /* A post left unrun when the loop is freed is dropped without a leak. */
    CHECK_EQ_INT(dx_loop_post(loop, on_post, NULL), 0);
    dx_timer_stop(loop, &guard);
    dx_loop_free(loop);
}

/* ---- deferred calls ---- */

static char defer_log[64];
static int defer_len;

static void defer_note(char c) {
    if (defer_len < (int)sizeof defer_log - 1) defer_log[defer_len++] = c;
}
static void on_defer_d(dx_loop *loop, void *arg) {
    defer_note('D');
    dx_loop_stop(loop);
}
static void on_defer(dx_loop *loop, void *arg) {
    char c = (char)(uintptr_t)arg;
    defer_note(c);
    if (c == 'A') CHECK_EQ_INT(dx_loop_defer(loop, on_defer_d, NULL), 0);
}
static void on_defer_timer(dx_loop *loop, dx_timer *t) {
    defer_note('t');
    CHECK_EQ_INT(dx_loop_defer(loop, on_defer, (void *)(uintptr_t)'A'), 0);
    CHECK_EQ_INT(dx_loop_defer(loop, on_defer, (void *)(uintptr_t)'B'), 0);
    /* More than the initial capacity, to grow the queue. */
    for (int i = 0; i < 20; i++)
        CHECK_EQ_INT(dx_loop_defer(loop, on_defer, (void *)(uintptr_t)'.'), 0);
    CHECK_EQ_INT(dx_loop_defer(loop, on_defer, (void *)(uintptr_t)'C'), 0);
}
static void on_defer_timer2(dx_loop *loop, dx_timer *t) {
    defer_note('u');
}

static void test_defer_order(void) {
    dx_loop *loop = dx_loop_new(0);
    REQUIRE(loop);
    dx_timer guard, t1, t2;
    guard_start(loop, &guard, 5000);
    defer_len = 0;
    memset(defer_log, 0, sizeof defer_log);
    dx_timer_init(&t1, on_defer_timer);
    dx_timer_init(&t2, on_defer_timer2);
    dx_timer_start(loop, &t1, 1);
    dx_timer_start(loop, &t2, 1);
    CHECK_EQ_INT(dx_loop_run(loop), 0);
    CHECK(!guard_fired);
    /* Both timers of the iteration run before any deferred call; deferred
     * calls keep their order; D, deferred by A, runs after C. */
    const char *expect =
        defer_log[0] == 't' ? "tuAB....................CD" : "utAB....................CD";
    CHECK(strcmp(defer_log, expect) == 0);
    dx_timer_stop(loop, &guard);
    dx_loop_free(loop);
}

/* A deferred call that defers again runs in the next iteration, after the
 * whole current queue. */
static int seq_log[64], seq_len;
static void on_seq(dx_loop *loop, void *arg) {
    int v = (int)(uintptr_t)arg;
    seq_log[seq_len++] = v;
    if (v == 0) CHECK_EQ_INT(dx_loop_defer(loop, on_seq, (void *)(uintptr_t)100), 0);
    if (v == 100) dx_loop_stop(loop);
}
static void on_seq_timer(dx_loop *loop, dx_timer *t) {
    for (int i = 0; i < 40; i++)
        CHECK_EQ_INT(dx_loop_defer(loop, on_seq, (void *)(uintptr_t)i), 0);
}

static void test_defer_sequence(void) {
    dx_loop *loop = dx_loop_new(0);
    REQUIRE(loop);
    dx_timer guard, t;
    guard_start(loop, &guard, 5000);
    seq_len = 0;
    dx_timer_init(&t, on_seq_timer);
    dx_timer_start(loop, &t, 1);
    CHECK_EQ_INT(dx_loop_run(loop), 0);
    CHECK(!guard_fired);
    CHECK_EQ_INT(seq_len, 41);
    for (int i = 0; i < 40; i++)
        CHECK_EQ_INT(seq_log[i], i);
    CHECK_EQ_INT(seq_log[40], 100);
    dx_timer_stop(loop, &guard);
    dx_loop_free(loop);
}

/* ---- signals ---- */

static int sig_count;
static void on_sigusr1(dx_loop *loop, void *arg) {
    sig_count++;
    CHECK(arg == (void *)&sig_count);
    dx_loop_stop(loop);
}

static void test_signal(void) {
    dx_loop *loop = dx_loop_new(0);
    REQUIRE(loop);
    dx_timer guard;
    guard_start(loop, &guard, 5000);
    sig_count = 0;
    CHECK_EQ_INT(dx_loop_on_signal(loop, 0, on_sigusr1, NULL), DX_EINVAL);
    CHECK_EQ_INT(dx_loop_on_signal(loop, SIGUSR1, on_sigusr1, &sig_count), 0);
    CHECK_EQ_INT(dx_loop_on_signal(loop, SIGUSR2, on_sigusr1, &sig_count), 0);
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    CHECK(sigismember(&cur, SIGUSR1));
    /* Blocked, so raise() leaves it pending for the signalfd instead of
     * killing the process. */
    CHECK_EQ_INT(raise(SIGUSR1), 0);
    CHECK_EQ_INT(dx_loop_run(loop), 0);
    CHECK(!guard_fired);
    CHECK_EQ_INT(sig_count, 1);
    CHECK_EQ_INT(kill(getpid(), SIGUSR2), 0);
    CHECK_EQ_INT(dx_loop_run(loop), 0);
    CHECK(!guard_fired);
    CHECK_EQ_INT(sig_count, 2);
    dx_timer_stop(loop, &guard);
    dx_loop_free(loop);
}

/* ---- I/O watchers on a socketpair ---- */

typedef struct io_probe {
    dx_io w;
    int calls;
    unsigned last;
} io_probe;

static void on_probe(dx_loop *loop, dx_io *w, unsigned events) {
    io_probe *p = (io_probe *)w;
    p->calls++;
    p->last = events;
    dx_loop_stop(loop);
}

/* Runs one iteration at a time: a 20 ms timer bounds the wait. */
static dx_timer tick;
static void on_tick(dx_loop *loop, dx_timer *t) {
    dx_loop_stop(loop);
}
static void run_once(dx_loop *loop) {
    dx_timer_start(loop, &tick, 20);
    dx_loop_run(loop);
    dx_timer_stop(loop, &tick);
}

static void test_io_read_write(void) {
    dx_loop *loop = dx_loop_new(4096);
    REQUIRE(loop);
    size_t cap = 0;
    CHECK(dx_loop_rbuf(loop, &cap) != NULL);
    CHECK_EQ_INT(cap, 4096);
    dx_timer_init(&tick, on_tick);
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    io_probe p = {0};
    dx_io_stop(loop, &p.w); /* zeroed: a no-op */
    CHECK_EQ_INT(dx_io_start(loop, &p.w, sv[0], DX_IO_READ, NULL), DX_EINVAL);
    CHECK_EQ_INT(dx_io_update(loop, &p.w, DX_IO_READ), DX_EINVAL);
    CHECK_EQ_INT(dx_io_start(loop, &p.w, sv[0], DX_IO_READ, on_probe), 0);
    CHECK_EQ_INT(p.w.fd, sv[0]);

    run_once(loop); /* nothing to read yet */
    CHECK_EQ_INT(p.calls, 0);

    CHECK_EQ_INT(write(sv[1], "hi", 2), 2);
    run_once(loop);
    CHECK_EQ_INT(p.calls, 1);
    CHECK_EQ_INT(p.last, DX_IO_READ);
    run_once(loop); /* level-triggered: still readable */
    CHECK_EQ_INT(p.calls, 2);

    char buf[8];
    CHECK_EQ_INT(read(sv[0], buf, sizeof buf), 2);
    run_once(loop);
    CHECK_EQ_INT(p.calls, 2);

    CHECK_EQ_INT(dx_io_update(loop, &p.w, DX_IO_READ | DX_IO_WRITE), 0);
    run_once(loop);
    CHECK_EQ_INT(p.calls, 3);
    CHECK_EQ_INT(p.last, DX_IO_WRITE);
    CHECK_EQ_INT(dx_io_update(loop, &p.w, DX_IO_READ | DX_IO_WRITE), 0); /* unchanged */

    CHECK_EQ_INT(dx_io_update(loop, &p.w, 0), 0);
    CHECK_EQ_INT(write(sv[1], "x", 1), 1);
    run_once(loop);
    CHECK_EQ_INT(p.calls, 3);

    CHECK_EQ_INT(dx_io_update(loop, &p.w, DX_IO_READ), 0);
    run_once(loop);
    CHECK_EQ_INT(p.calls, 4);

    dx_io_stop(loop, &p.w);
    dx_io_stop(loop, &p.w); /* twice is fine */
    run_once(loop);
    CHECK_EQ_INT(p.calls, 4);

    /* Restart, then the peer hangs up: the reader is told to read. */
    CHECK_EQ_INT(dx_io_start(loop, &p.w, sv[0], DX_IO_READ, on_probe), 0);
    CHECK_EQ_INT(read(sv[0], buf, sizeof buf), 1);
    close(sv[1]);
    run_once(loop);
    CHECK_EQ_INT(p.calls, 5);
    CHECK(p.last & DX_IO_READ);
    CHECK_EQ_INT(read(sv[0], buf, sizeof buf), 0);

    dx_io_stop(loop, &p.w);
    close(sv[0]);
    dx_loop_free(loop);
}

/* Two watchers ready in the same batch; whichever runs first stops the
 * other and frees its memory at once. The loop must not call it (ASan
 * reports any touch of the freed watcher). */
typedef struct pair_probe {
    dx_io w;
    struct pair_probe **other;
    int *calls;
} pair_probe;

static pair_probe *pp_a, *pp_b;

static void on_pair(dx_loop *loop, dx_io *w, unsigned events) {
    pair_probe *self = (pair_probe *)w;
    (*self->calls)++;
    char c;
    CHECK_EQ_INT(read(w->fd, &c, 1), 1);
    pair_probe *other = *self->other;
    if (other) {
        dx_io_stop(loop, &other->w);
        free(other);
        *self->other = NULL;
    }
}

static void test_io_stop_in_batch(void) {
    dx_loop *loop = dx_loop_new(0);
    REQUIRE(loop);
    dx_timer_init(&tick, on_tick);
    int s1[2], s2[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s1) == 0);
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s2) == 0);
    int calls = 0;
    pp_a = calloc(1, sizeof *pp_a);
    pp_b = calloc(1, sizeof *pp_b);
    REQUIRE(pp_a && pp_b);
    pp_a->other = &pp_b;
    pp_b->other = &pp_a;
    pp_a->calls = pp_b->calls = &calls;
    CHECK_EQ_INT(dx_io_start(loop, &pp_a->w, s1[0], DX_IO_READ, on_pair), 0);
    CHECK_EQ_INT(dx_io_start(loop, &pp_b->w, s2[0], DX_IO_READ, on_pair), 0);
    CHECK_EQ_INT(write(s1[1], "a", 1), 1);
    CHECK_EQ_INT(write(s2[1], "b", 1), 1);
    run_once(loop); /* both ready: one batch */
    CHECK_EQ_INT(calls, 1);
    CHECK((pp_a == NULL) != (pp_b == NULL));
    pair_probe *left = pp_a ? pp_a : pp_b;
    dx_io_stop(loop, &left->w);
    free(left);
    close(s1[0]);
    close(s1[1]);
    close(s2[0]);
    close(s2[1]);
    dx_loop_free(loop);
}

/* A watcher stopped from its own callback and its fd reused by a new
 * watcher in the same batch: the new one gets no stale event. */
static void test_io_restart_same_struct(void) {
    dx_loop *loop = dx_loop_new(0);
    REQUIRE(loop);
    dx_timer_init(&tick, on_tick);
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    io_probe p = {0};
    CHECK_EQ_INT(dx_io_start(loop, &p.w, sv[0], DX_IO_WRITE, on_probe), 0);
    /* Starting again on the same fd changes the events (no EEXIST). */
    CHECK_EQ_INT(dx_io_start(loop, &p.w, sv[0], DX_IO_READ, on_probe), 0);
    run_once(loop);
    CHECK_EQ_INT(p.calls, 0);
    CHECK_EQ_INT(dx_io_start(loop, &p.w, -1, DX_IO_READ, on_probe), DX_EINVAL);
    dx_io_stop(loop, &p.w);
    close(sv[0]);
    close(sv[1]);
    dx_loop_free(loop);
}

static void on_stop_now(dx_loop *loop, void *arg) {
    dx_loop_stop(loop);
}

static void test_loop_misc(void) {
    dx_loop *loop = dx_loop_new(0);
    REQUIRE(loop);
    size_t cap = 0;
    CHECK(dx_loop_rbuf(loop, &cap) != NULL);
    CHECK_EQ_INT(cap, 256 * 1024);
    uint64_t a = dx_loop_now(loop);
    /* A post made before run wakes the first iteration. */
    CHECK_EQ_INT(dx_loop_post(loop, on_stop_now, NULL), 0);
    CHECK_EQ_INT(dx_loop_run(loop), 0);
    CHECK(dx_loop_now(loop) >= a);
    /* A defer left unrun is dropped by dx_loop_free. */
    CHECK_EQ_INT(dx_loop_defer(loop, on_stop_now, NULL), 0);
    dx_loop_free(loop);
    dx_loop_free(NULL);
}

/* ---- every allocation failing in turn ---- */

static int alloc_countdown; /* fail when it reaches 0; < 0 never */
static void *fail_malloc(size_t n) {
    return alloc_countdown-- == 0 ? NULL : malloc(n);
}
static void *fail_realloc(void *p, size_t n) {
    return alloc_countdown-- == 0 ? NULL : realloc(p, n);
}

static void on_nothing(dx_loop *loop, void *arg) {}

static void test_alloc_failures(void) {
    dx_set_allocator(fail_malloc, fail_realloc, free);
    int created = 0;
    for (int k = 0; k < 20 && !created; k++) {
        alloc_countdown = k;
        dx_loop *loop = dx_loop_new(0);
        if (!loop) continue; /* failed cleanly; ASan checks for leaks */
        created = 1;
        CHECK(k > 0);
        alloc_countdown = 0;
        CHECK_EQ_INT(dx_loop_post(loop, on_nothing, NULL), DX_ENOMEM);
        /* The defer queue has room for 16 before it must grow. */
        alloc_countdown = -1;
        for (int i = 0; i < 16; i++)
            CHECK_EQ_INT(dx_loop_defer(loop, on_nothing, NULL), 0);
        alloc_countdown = 0;
        CHECK_EQ_INT(dx_loop_defer(loop, on_nothing, NULL), DX_ENOMEM);
        alloc_countdown = -1;
        CHECK_EQ_INT(dx_loop_defer(loop, on_nothing, NULL), 0);
        /* Timers up to the initial heap size need no allocation. */
        dx_timer ts[64];
        alloc_countdown = 0;
        for (int i = 0; i < 64; i++) {
            dx_timer_init(&ts[i], NULL);
            dx_timer_start(loop, &ts[i], 1000);
        }
        alloc_countdown = -1;
        for (int i = 0; i < 64; i++)
            dx_timer_stop(loop, &ts[i]);
        dx_loop_free(loop);
    }
    CHECK(created);
    dx_set_allocator(NULL, NULL, NULL);
}

int main(void) {
    RUN(test_timers_order);
    RUN(test_timer_stop_restart);
    RUN(test_timer_moved_while_waiting);
    RUN(test_timer_heap_100k);
    RUN(test_timer_self_restart);
    RUN(test_post_threads);
    RUN(test_defer_order);
    RUN(test_defer_sequence);
    RUN(test_signal);
    RUN(test_io_read_write);
    RUN(test_io_stop_in_batch);
    RUN(test_io_restart_same_struct);
    RUN(test_loop_misc);
    RUN(test_alloc_failures);
    return TEST_DONE();
}

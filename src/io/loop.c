/* The event loop: level-triggered epoll, a binary min-heap of timers
 * behind one timerfd, cross-thread posts over an eventfd, signals over a
 * signalfd, and calls deferred to the end of an iteration. Sockets that
 * carry the traffic may move to an io_uring (io/uring.h); the loop then
 * waits there instead, epoll's events arriving as one of its completions.
 *
 * One iteration: wait in epoll_wait or io_uring_enter (woken by the
 * timerfd when the nearest timer falls due),
 * read the clock once, dispatch the batch of I/O events, run the expired
 * timers, then run the deferred calls. Every callback of an iteration sees
 * the same dx_loop_now(). */
#include <duplex/loop.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "io/loopstats.h"
#include "io/uring.h"

#define DX_LOOP_BATCH 256
#define DX_LOOP_RBUF_DEFAULT ((size_t)256 * 1024)
#define DX_LOOP_NSIG 65
#define DX_LOOP_HEAP_INITIAL 64
#define DX_LOOP_DEFER_INITIAL 16

/* Private bit in dx_io.events: the watcher is registered with epoll. */
#define DX_IO_ACTIVE 0x100u

typedef struct dx_call {
    dx_post_fn fn;
    void *arg;
} dx_call;

typedef struct dx_post {
    dx_call call;
    struct dx_post *next;
} dx_post;

struct dx_loop {
    int epfd;
    int stop;
    uint64_t now;

    /* The batch being dispatched. dx_io_stop() clears the stopped
     * watcher's pending entries in [ev_next, ev_count), which is what
     * lets an owner free a watcher as soon as it is stopped. */
    struct epoll_event events[DX_LOOP_BATCH];
    int ev_next;
    int ev_count;

    dx_timer **heap; /* 1-based: heap[1] is the earliest timer */
    uint32_t heap_len;
    uint32_t heap_cap; /* usable slots: heap has heap_cap + 1 entries */
    int in_timers;
    /* The heap's earliest due time is handed to a timerfd rather than to
     * epoll_wait as a timeout: a finite timeout arms and cancels a kernel
     * timer on every wait that sleeps (a VM exit each, in a virtual
     * machine), where the timerfd is set only when the earliest timer moves
     * earlier or has fired: once per sweep period in a busy server, as
     * uSockets does. */
    dx_io timer_io;     /* fd -1: no timerfd, timeouts go to epoll_wait */
    uint64_t timer_set; /* the due time (ms) the timerfd is set to; 0 if none */

    dx_call *defer;
    size_t defer_len;
    size_t defer_cap;

    pthread_mutex_t post_mu;
    dx_post *post_head;
    dx_post *post_tail;
    dx_io post_io; /* the eventfd */

    dx_io sig_io; /* the signalfd, fd -1 until the first dx_loop_on_signal */
    sigset_t sig_mask;
    dx_call sig[DX_LOOP_NSIG];

    uint8_t *rbuf;
    size_t rbuf_cap;

    /* The io_uring (io/uring.h), made in the loop's thread when a server
     * asks for it (at the top of the next iteration, or on a socket's first
     * attach); the loop then waits there, epoll's events coming in through
     * it. */
    dx__uring *ring;
    int ring_tried;
    int ring_wanted; /* made at the top of the next iteration */

    /* Counters for dx_server_stats (io/loopstats.h): plain words, written
     * by this thread only. */
    dx__loop_stats st;
};

static uint64_t clock_ms(void) {
    return dx__clock_us() / 1000u;
}

/* The end of a turn that began at `t0` (µs): one more clock read per
 * iteration, the only one the statistics add. */
static void turn_end(dx_loop *loop, uint64_t t0) {
    dx__hist_us_add(loop->st.turn_us, &loop->st.turn_us_sum, dx__clock_us() - t0);
    loop->st.turns++;
}

/* ---- timers: a binary min-heap keyed on `due` ---- */

static void heap_place(dx_loop *loop, uint32_t i, dx_timer *t) {
    loop->heap[i] = t;
    t->heap_index = i;
}

static void heap_up(dx_loop *loop, uint32_t i) {
    dx_timer *t = loop->heap[i];
    while (i > 1) {
        dx_timer *parent = loop->heap[i / 2];
        if (parent->due <= t->due) break;
        heap_place(loop, i, parent);
        i /= 2;
    }
    heap_place(loop, i, t);
}

static void heap_down(dx_loop *loop, uint32_t i) {
    dx_timer *t = loop->heap[i];
    for (;;) {
        uint32_t c = 2 * i;
        if (c > loop->heap_len) break;
        if (c < loop->heap_len && loop->heap[c + 1]->due < loop->heap[c]->due) c++;
        if (t->due <= loop->heap[c]->due) break;
        heap_place(loop, i, loop->heap[c]);
        i = c;
    }
    heap_place(loop, i, t);
}

static void heap_fix(dx_loop *loop, uint32_t i) {
    if (i > 1 && loop->heap[i]->due < loop->heap[i / 2]->due)
        heap_up(loop, i);
    else
        heap_down(loop, i);
}

static void heap_remove(dx_loop *loop, dx_timer *t) {
    uint32_t i = t->heap_index;
    dx_timer *last = loop->heap[loop->heap_len--];
    t->heap_index = 0;
    if (last == t) return;
    heap_place(loop, i, last);
    heap_fix(loop, i);
}

void dx_timer_init(dx_timer *t, dx_timer_cb cb) {
    t->due = 0;
    t->heap_index = 0;
    t->cb = cb;
}

int dx_timer_active(const dx_timer *t) {
    return t->heap_index != 0;
}

void dx_timer_start(dx_loop *loop, dx_timer *t, uint64_t after_ms) {
    /* A timer restarted with 0 from a timer callback would otherwise be due
     * again in the same pass and could keep the loop from ever waiting. */
    if (after_ms == 0 && loop->in_timers) after_ms = 1;
    uint64_t due = after_ms > UINT64_MAX - loop->now ? UINT64_MAX : loop->now + after_ms;
    if (t->heap_index) {
        t->due = due;
        heap_fix(loop, t->heap_index);
        return;
    }
    if (loop->heap_len == loop->heap_cap) {
        /* dx_timer_start cannot report failure, and a timer silently not
         * started would break a timeout for good, so running out of memory
         * here aborts (as libev does). The heap starts with room for
         * DX_LOOP_HEAP_INITIAL timers and only grows. */
        if (loop->heap_cap > UINT32_MAX / 2 - 1) abort();
        uint32_t cap = loop->heap_cap * 2;
        dx_timer **h = dx__realloc(loop->heap, ((size_t)cap + 1) * sizeof *h);
        if (!h) {
            fputs("duplex: out of memory growing the timer heap\n", stderr);
            abort();
        }
        loop->heap = h;
        loop->heap_cap = cap;
    }
    t->due = due;
    loop->heap_len++;
    heap_place(loop, loop->heap_len, t);
    heap_up(loop, loop->heap_len);
}

void dx_timer_stop(dx_loop *loop, dx_timer *t) {
    if (t->heap_index) heap_remove(loop, t);
}

static void run_timers(dx_loop *loop) {
    loop->in_timers = 1;
    while (loop->heap_len > 0 && loop->heap[1]->due <= loop->now) {
        dx_timer *t = loop->heap[1];
        heap_remove(loop, t);
        loop->st.timers++;
        t->cb(loop, t);
    }
    loop->in_timers = 0;
}

/* ---- I/O watchers ---- */

static uint32_t epoll_bits(unsigned events) {
    return ((events & DX_IO_READ) ? EPOLLIN : 0u) | ((events & DX_IO_WRITE) ? EPOLLOUT : 0u);
}

int dx_io_start(dx_loop *loop, dx_io *w, int fd, unsigned events, dx_io_cb cb) {
    if (!cb || fd < 0) return DX_EINVAL;
    events &= DX_IO_READ | DX_IO_WRITE;
    struct epoll_event ev = {.events = epoll_bits(events), .data.ptr = w};
    int rc = epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev);
    if (rc < 0 && errno == EEXIST) rc = epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev);
    if (rc < 0) return DX_EIO;
    w->fd = fd;
    w->events = events | DX_IO_ACTIVE;
    w->cb = cb;
    return 0;
}

int dx_io_update(dx_loop *loop, dx_io *w, unsigned events) {
    if (!(w->events & DX_IO_ACTIVE)) return DX_EINVAL;
    events &= DX_IO_READ | DX_IO_WRITE;
    if ((w->events & ~DX_IO_ACTIVE) == events) return 0;
    struct epoll_event ev = {.events = epoll_bits(events), .data.ptr = w};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0) return DX_EIO;
    w->events = events | DX_IO_ACTIVE;
    return 0;
}

void dx_io_stop(dx_loop *loop, dx_io *w) {
    if (!(w->events & DX_IO_ACTIVE)) return;
    /* EBADF/ENOENT mean the fd was closed already: nothing left to undo. */
    (void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    w->events = 0;
    for (int i = loop->ev_next; i < loop->ev_count; i++)
        if (loop->events[i].data.ptr == w) loop->events[i].data.ptr = NULL;
}

static void dispatch_io(dx_loop *loop, int n) {
    loop->ev_count = n;
    for (loop->ev_next = 0; loop->ev_next < n;) {
        struct epoll_event *e = &loop->events[loop->ev_next++];
        dx_io *w = e->data.ptr;
        if (!w) continue; /* stopped by an earlier callback of this batch */
        unsigned watched = w->events & (DX_IO_READ | DX_IO_WRITE);
        unsigned got = 0;
        if (e->events & EPOLLIN) got |= DX_IO_READ;
        if (e->events & EPOLLOUT) got |= DX_IO_WRITE;
        /* On an error or hang-up, also flag what is watched so that the
         * owner's read or write finds the EOF or the error itself. */
        if (e->events & (EPOLLERR | EPOLLHUP)) got |= DX_IO_ERROR | watched;
        got &= watched | DX_IO_ERROR;
        if (got) w->cb(loop, w, got);
    }
    loop->ev_next = loop->ev_count = 0;
}

static void on_timerfd(dx_loop *loop, dx_io *w, unsigned events) {
    uint64_t expirations;
    /* A one-shot timer: once read it is spent; the due timers run at the
     * end of this iteration and the next wait sets it again. */
    while (read(w->fd, &expirations, sizeof expirations) < 0 && errno == EINTR) {
    }
    loop->timer_set = 0;
}

/* ---- posts, defers and signals ---- */

static void on_post_wake(dx_loop *loop, dx_io *w, unsigned events) {
    uint64_t count;
    /* Drain the counter before taking the queue: a post that lands after
     * this read writes the eventfd again and wakes the next iteration. */
    while (read(w->fd, &count, sizeof count) < 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&loop->post_mu);
    dx_post *p = loop->post_head;
    loop->post_head = loop->post_tail = NULL;
    pthread_mutex_unlock(&loop->post_mu);
    while (p) {
        dx_post *next = p->next;
        dx_call c = p->call;
        dx__free(p);
        c.fn(loop, c.arg);
        p = next;
    }
}

int dx_loop_post(dx_loop *loop, dx_post_fn fn, void *arg) {
    dx_post *p = dx__malloc(sizeof *p);
    if (!p) return DX_ENOMEM;
    p->call = (dx_call){fn, arg};
    p->next = NULL;
    pthread_mutex_lock(&loop->post_mu);
    if (loop->post_tail)
        loop->post_tail->next = p;
    else
        loop->post_head = p;
    loop->post_tail = p;
    pthread_mutex_unlock(&loop->post_mu);
    uint64_t one = 1;
    /* EAGAIN only when the counter is about to overflow, and then the loop
     * is already due to wake. */
    while (write(loop->post_io.fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
    return 0;
}

int dx_loop_defer(dx_loop *loop, dx_post_fn fn, void *arg) {
    if (loop->defer_len == loop->defer_cap) {
        size_t cap = loop->defer_cap * 2;
        dx_call *d = dx__realloc(loop->defer, cap * sizeof *d);
        if (!d) return DX_ENOMEM;
        loop->defer = d;
        loop->defer_cap = cap;
    }
    loop->defer[loop->defer_len++] = (dx_call){fn, arg};
    return 0;
}

/* Runs the calls deferred so far, in order. Calls deferred by these run
 * in the next iteration, so a call that defers itself cannot spin here. */
static void run_defers(dx_loop *loop) {
    size_t n = loop->defer_len;
    if (n == 0) return;
    for (size_t i = 0; i < n; i++) {
        dx_call c = loop->defer[i]; /* re-read: a call may grow the array */
        c.fn(loop, c.arg);
    }
    memmove(loop->defer, loop->defer + n, (loop->defer_len - n) * sizeof *loop->defer);
    loop->defer_len -= n;
}

static void on_signal(dx_loop *loop, dx_io *w, unsigned events) {
    struct signalfd_siginfo si;
    for (;;) {
        ssize_t r = read(w->fd, &si, sizeof si);
        if (r < 0 && errno == EINTR) continue;
        if (r != (ssize_t)sizeof si) return;
        if (si.ssi_signo < DX_LOOP_NSIG && loop->sig[si.ssi_signo].fn)
            loop->sig[si.ssi_signo].fn(loop, loop->sig[si.ssi_signo].arg);
    }
}

int dx_loop_on_signal(dx_loop *loop, int signo, dx_post_fn fn, void *arg) {
    if (signo <= 0 || signo >= DX_LOOP_NSIG || !fn) return DX_EINVAL;
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, signo);
    int rc = pthread_sigmask(SIG_BLOCK, &one, NULL);
    if (rc) {
        errno = rc;
        return DX_EIO;
    }
    sigset_t mask = loop->sig_mask;
    sigaddset(&mask, signo);
    int fd = signalfd(loop->sig_io.fd, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) return DX_EIO;
    if (loop->sig_io.fd < 0) {
        rc = dx_io_start(loop, &loop->sig_io, fd, DX_IO_READ, on_signal);
        if (rc) {
            close(fd);
            loop->sig_io.fd = -1;
            return rc;
        }
    }
    loop->sig_mask = mask;
    loop->sig[signo] = (dx_call){fn, arg};
    return 0;
}

/* ---- the loop ---- */

dx_loop *dx_loop_new(size_t rbuf_size) {
    dx_loop *loop = dx__calloc(1, sizeof *loop);
    if (!loop) return NULL;
    loop->epfd = loop->post_io.fd = loop->sig_io.fd = loop->timer_io.fd = -1;
    sigemptyset(&loop->sig_mask);
    if (pthread_mutex_init(&loop->post_mu, NULL)) {
        dx__free(loop);
        return NULL;
    }
    loop->rbuf_cap = rbuf_size ? rbuf_size : DX_LOOP_RBUF_DEFAULT;
    loop->rbuf = dx__malloc(loop->rbuf_cap);
    loop->heap_cap = DX_LOOP_HEAP_INITIAL;
    loop->heap = dx__malloc(((size_t)loop->heap_cap + 1) * sizeof *loop->heap);
    loop->defer_cap = DX_LOOP_DEFER_INITIAL;
    loop->defer = dx__malloc(loop->defer_cap * sizeof *loop->defer);
    if (!loop->rbuf || !loop->heap || !loop->defer) goto fail;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) goto fail;
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd < 0) goto fail;
    if (dx_io_start(loop, &loop->post_io, efd, DX_IO_READ, on_post_wake)) {
        close(efd);
        goto fail;
    }
    /* Without a timerfd (never seen on Linux ≥ 2.6.25) timeouts go to
     * epoll_wait, which is correct, only dearer. */
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (tfd >= 0 && dx_io_start(loop, &loop->timer_io, tfd, DX_IO_READ, on_timerfd)) {
        close(tfd);
        loop->timer_io.fd = -1;
    }
    loop->now = clock_ms();
    return loop;
fail:
    dx_loop_free(loop);
    return NULL;
}

void dx_loop_free(dx_loop *loop) {
    if (!loop) return;
    dx_post *p = loop->post_head;
    while (p) {
        dx_post *next = p->next;
        dx__free(p);
        p = next;
    }
    dx__uring_free(loop->ring);
    if (loop->sig_io.fd >= 0) close(loop->sig_io.fd);
    if (loop->timer_io.fd >= 0) close(loop->timer_io.fd);
    if (loop->post_io.fd >= 0) close(loop->post_io.fd);
    if (loop->epfd >= 0) close(loop->epfd);
    pthread_mutex_destroy(&loop->post_mu);
    dx__free(loop->rbuf);
    dx__free(loop->heap);
    dx__free(loop->defer);
    dx__free(loop);
}

static int next_timeout(dx_loop *loop) {
    if (loop->stop || loop->defer_len > 0) return 0;
    if (loop->heap_len == 0) return -1;
    /* The time read right after the last wake-up, as libuv does: timers
     * are armed against that same reading, and one clock read per
     * iteration is all an echo at a fixed rate should pay. A timer may fire
     * late by the time this iteration took. */
    uint64_t due = loop->heap[1]->due, now = loop->now;
    if (due <= now) return 0;
    if (loop->timer_io.fd < 0) return due - now > INT_MAX ? INT_MAX : (int)(due - now);
    /* A timerfd set later than needed is set again; one set earlier (the
     * timer it was for was stopped or pushed back) is left to wake the loop
     * once for nothing, cheaper than a system call on every change. */
    if (loop->timer_set == 0 || due < loop->timer_set) {
        struct itimerspec its = {
            .it_value = {(time_t)(due / 1000u), (long)(due % 1000u) * 1000000L}};
        if (timerfd_settime(loop->timer_io.fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
            return due - now > INT_MAX ? INT_MAX : (int)(due - now);
        loop->timer_set = due;
    }
    return -1;
}

int dx_loop_run(dx_loop *loop) {
    int rc = 0;
    /* Every connection this loop drives counts into the loop's set. */
    dx_conn_counters *outer = dx_conn_counters_bind(&loop->st.conn);
    while (!loop->stop) {
        if (loop->ring_wanted && !loop->ring_tried) (void)dx__loop_uring(loop, 1);
        if (loop->ring) {
            /* Blocks unless something is due now; a timeout that could not
             * go to the timerfd (never seen) makes it poll instead. */
            if (dx__uring_wait(loop->ring, next_timeout(loop) < 0) < 0) {
                rc = DX_EIO;
                break;
            }
            uint64_t t0 = dx__clock_us();
            loop->now = t0 / 1000u;
            dx__uring_dispatch(loop->ring, loop, loop->now, dispatch_io);
            run_timers(loop);
            run_defers(loop);
            turn_end(loop, t0);
            continue;
        }
        int n = epoll_wait(loop->epfd, loop->events, DX_LOOP_BATCH, next_timeout(loop));
        if (n < 0) {
            if (errno != EINTR) {
                rc = DX_EIO;
                break;
            }
            n = 0;
        }
        uint64_t t0 = dx__clock_us();
        loop->now = t0 / 1000u;
        dispatch_io(loop, n);
        run_timers(loop);
        run_defers(loop);
        turn_end(loop, t0);
    }
    loop->stop = 0;
    (void)dx_conn_counters_bind(outer);
    return rc;
}

void dx_loop_stop(dx_loop *loop) {
    loop->stop = 1;
}

uint64_t dx_loop_now(const dx_loop *loop) {
    return loop->now;
}

const dx__loop_stats *dx__loop_get_stats(const dx_loop *loop) {
    return &loop->st;
}

int dx__loop_has_uring(const dx_loop *loop) {
    return loop->ring != NULL;
}

void dx__loop_want_uring(dx_loop *loop) {
    loop->ring_wanted = 1;
}

dx__uring *dx__loop_uring(dx_loop *loop, int create) {
    /* Timeouts must go to the timerfd: the ring's wait takes none. */
    if (!loop->ring && create && !loop->ring_tried && loop->timer_io.fd >= 0) {
        loop->ring_tried = 1;
        loop->ring = dx__uring_new(loop->epfd, loop->events, DX_LOOP_BATCH);
    }
    return loop->ring;
}

/* Two buffers a turn, shared equally by the sockets ready in it, but never
 * less than a 64 KiB message (one cut in two costs the protocol a copy).
 * With one read of the whole buffer each, 16 peers writing back to back
 * made a turn read 4 MiB, and a quiet client's echo waited for it (15 ms
 * under sanitizers); the io_uring path has the same bound (uring.c). */
#define READ_SHARE_MIN ((size_t)64 * 1024 + 16)

size_t dx__loop_read_share(const dx_loop *loop) {
    size_t n = loop->ev_count > 0 ? (size_t)loop->ev_count : 1;
    size_t share = 2 * loop->rbuf_cap / n;
    if (share < READ_SHARE_MIN) share = READ_SHARE_MIN;
    return share < loop->rbuf_cap ? share : loop->rbuf_cap;
}

uint8_t *dx_loop_rbuf(dx_loop *loop, size_t *cap) {
    if (cap) *cap = loop->rbuf_cap;
    return loop->rbuf;
}

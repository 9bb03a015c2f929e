/* The store thread (syncer.h). One mutex guards want/done; the thread
 * never touches the engine, and the loop learns of results only through
 * the eventfd, so nothing of the loop runs on the thread. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "chat/syncer.h"
#include "core/alloc.h"

struct dx__chat_syncer {
    dx_loop *loop;
    dx__chat_store *st;
    dx__chat_synced_fn done_fn;
    void *arg;
    dx_io io; /* the eventfd, on the loop */
    pthread_t thread, ck_thread;
    pthread_mutex_t mu;
    pthread_cond_t cv, ck_cv;
    uint64_t want; /* the highest commit asked for */
    uint64_t done; /* the highest commit synced (or failed) */
    uint64_t told; /* the highest the loop was told of */
    int failed;    /* a sync failed since the loop was last told */
    int quit;
    int has_ck; /* the checkpoint thread runs */
};

static void *run(void *arg) {
    dx__chat_syncer *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->want <= s->done && !s->quit)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->quit) break;
        /* Every commit asked for so far is in the page cache already: one
         * fsync covers all of them. */
        uint64_t no = s->want;
        pthread_mutex_unlock(&s->mu);
        int rc = s->st->ops->sync(s->st);
        pthread_mutex_lock(&s->mu);
        s->done = no;
        if (rc < 0) s->failed = 1; /* sticky until told: never lost to a later success */
        pthread_mutex_unlock(&s->mu);
        uint64_t one = 1;
        while (write(s->io.fd, &one, sizeof one) < 0 && errno == EINTR) {
        }
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Checkpoints on a thread of their own: one copies the WAL into the
 * database and fsyncs it for as long as a few fsyncs, and acks must not
 * wait behind that (measured: ack p99 55 ms at 2,000 messages/s when the
 * same thread did both, for an fsync of 0.6 ms). */
#define CK_EVERY_MS 100

static void *run_ck(void *arg) {
    dx__chat_syncer *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->quit) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += CK_EVERY_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        (void)pthread_cond_timedwait(&s->ck_cv, &s->mu, &until);
        if (s->quit) break;
        pthread_mutex_unlock(&s->mu);
        (void)s->st->ops->checkpoint(s->st);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void on_wake(dx_loop *loop, dx_io *w, unsigned events) {
    dx__chat_syncer *s = (dx__chat_syncer *)((char *)w - offsetof(dx__chat_syncer, io));
    uint64_t n;
    while (read(w->fd, &n, sizeof n) < 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&s->mu);
    uint64_t no = s->done;
    int failed = s->failed;
    s->failed = 0;
    pthread_mutex_unlock(&s->mu);
    if (no > s->told) {
        s->told = no;
        s->done_fn(s->arg, no, failed ? DX_EIO : 0);
    }
}

dx__chat_syncer *dx__chat_syncer_new(dx_loop *loop, dx__chat_store *st, dx__chat_synced_fn done,
                                     void *arg) {
    dx__chat_syncer *s = dx__calloc(1, sizeof *s);
    if (!s) return NULL;
    s->loop = loop;
    s->st = st;
    s->done_fn = done;
    s->arg = arg;
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) goto fail;
    if (dx_io_start(loop, &s->io, fd, DX_IO_READ, on_wake) < 0) {
        close(fd);
        goto fail;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->ck_cv, &ca);
    pthread_condattr_destroy(&ca);
    /* The thread takes no signal: the loop's handlers (dx_loop_on_signal)
     * must see SIGTERM, not a thread that would die of it. It inherits
     * the mask it is created with. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int prc = pthread_create(&s->thread, NULL, run, s);
    s->has_ck =
        prc == 0 && st->ops->checkpoint && pthread_create(&s->ck_thread, NULL, run_ck, s) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (prc != 0) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        pthread_cond_destroy(&s->ck_cv);
        dx_io_stop(loop, &s->io);
        close(fd);
        goto fail;
    }
    return s;
fail:
    dx__free(s);
    return NULL;
}

void dx__chat_syncer_want(dx__chat_syncer *s, uint64_t no) {
    pthread_mutex_lock(&s->mu);
    if (no > s->want) s->want = no;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void dx__chat_syncer_free(dx__chat_syncer *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->quit = 1;
    pthread_cond_signal(&s->cv);
    pthread_cond_signal(&s->ck_cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    if (s->has_ck) pthread_join(s->ck_thread, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->ck_cv);
    int fd = s->io.fd;
    dx_io_stop(s->loop, &s->io);
    close(fd);
    dx__free(s);
}

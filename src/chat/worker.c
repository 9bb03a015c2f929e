/* The engine's store thread (worker.h). One mutex guards the queue of
 * jobs and the list of batches run; the thread touches S, the store and
 * the jobs it took, the loop touches L, the devices and what the thread
 * handed back, and the two meet only under the mutex and through the
 * eventfd that wakes the loop. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <jansson.h>

#include "chat/engine_int.h"
#include "chat/worker.h"
#include "core/alloc.h"

typedef struct dx__chat_job job;
struct dx__chat_job {
    job *next;          /* in the queue, then in its batch */
    job *dprev, *dnext; /* the device's jobs (loop only) */
    dx__chat_dev *orig; /* the device (loop only): NULL once gone */
    dx__chat_dev dev;   /* the copy S runs the job with */
    int kind;
    int64_t n, ts, t_req;
    size_t len;
    char data[]; /* NUL-terminated */
};

/* What S sent, for the loop to send: to a device (SEND), to every device
 * of a user through the broker (PUB), or to this node's devices of a user
 * (LOCAL). `dev`: SEND's device, the others' exception; S's copy. */
enum { OUT_SEND, OUT_PUB, OUT_LOCAL };
typedef struct answer {
    struct answer *next;
    int kind;
    const dx__chat_dev *dev;
    char uid[DX_CHAT_UID_MAX + 1];
    size_t len;
    char data[];
} answer;

typedef struct batch {
    struct batch *next;
    job *jobs;
    answer *head, **tail;
    dx_chat_stats stats; /* S's, after the batch */
    uint64_t st_errors;
} batch;

typedef struct capture_broker {
    dx__chat_broker base;
    dx__chat_worker *w;
} capture_broker;

struct dx__chat_worker {
    dx_loop *loop;
    dx__chat *L, *S;
    dx__chat_store *st;
    dx_io io; /* the eventfd, on the loop */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *qhead, **qtail;  /* queued (mu) */
    size_t queued;        /* their bytes (mu) */
    batch *done, **dtail; /* run, not yet sent (mu) */
    int quit;             /* (mu) */
    batch *cur;           /* the batch being run (thread) */
    dx_chat_stats stats;  /* S's as of the last batch sent (loop) */
    uint64_t st_errors;   /* (loop) */
};

/* ---- the thread: S's I/O collects ---------------------------------------- */

static void collect(dx__chat_worker *w, int kind, const dx__chat_dev *d, const char *uid,
                    const char *data, size_t len) {
    batch *b = w->cur;
    /* No batch: S's last flush, at dx__chat_worker_free, when nobody is
     * left to send to. Out of memory: that answer is lost, as if the
     * connection had dropped (a resent send is answered as a dup). */
    answer *o = b ? dx__malloc(sizeof *o + len + 1) : NULL;
    if (!o) return;
    o->next = NULL;
    o->kind = kind;
    o->dev = d;
    snprintf(o->uid, sizeof o->uid, "%s", uid ? uid : "");
    o->len = len;
    memcpy(o->data, data, len);
    o->data[len] = 0;
    *b->tail = o;
    b->tail = &o->next;
}

static void s_send(void *arg, dx__chat_dev *d, const char *data, size_t len) {
    collect(arg, OUT_SEND, d, NULL, data, len);
}

static void s_deliver(void *arg, const char *uid, const char *data, size_t len,
                      const dx__chat_dev *except) {
    collect(arg, OUT_LOCAL, except, uid, data, len);
}

static void s_schedule(void *arg) {
    /* The thread flushes S after every batch. */
}

static int64_t s_now(void *arg) {
    dx__chat_worker *w = arg;
    return w->L->io.now_ms(w->L->io.arg);
}

static int64_t s_mono(void *arg) {
    dx__chat_worker *w = arg;
    return w->L->io.mono_us ? w->L->io.mono_us(w->L->io.arg) : 0;
}

static int cb_publish(dx__chat_broker *b, const char *uid, const char *data, size_t len,
                      const void *except) {
    collect(((capture_broker *)b)->w, OUT_PUB, except, uid, data, len);
    return 0;
}

/* S never opens a device; and it cannot know who is online (the loop's
 * broker does): the loop fills the flags in (fill_presence). */
static int64_t cb_count(dx__chat_broker *b, const char *uid) {
    return 0;
}

static void cb_free(dx__chat_broker *b) {
    dx__free(b);
}

static const dx__chat_broker_ops CAPTURE_OPS = {
    .free = cb_free,
    .publish = cb_publish,
    .online = cb_count,
    .offline = cb_count,
    .devices = cb_count,
};

static void run_job(dx__chat_worker *w, job *j) {
    switch (j->kind) {
    case DX__JOB_MSG:
    case DX__JOB_BIN:
        dx__chat_message_at(w->S, &j->dev, j->data, j->len, j->kind == DX__JOB_BIN, j->t_req);
        break;
    case DX__JOB_OPEN:
        dx__chat_open_store(w->S, &j->dev, j->n);
        break;
    case DX__JOB_PRES:
        dx__chat_presence_store(w->S, j->data, (int)j->n, j->ts);
        break;
    case DX__JOB_REMOTE:
        dx__chat_remote_presence(w->S, j->data, j->n);
        break;
    }
}

static void *run(void *arg) {
    dx__chat_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->qhead && !w->quit)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->qhead) break; /* quit, and nothing left to run */
        batch *b = dx__calloc(1, sizeof *b);
        if (!b) {
            /* Not even a batch: wait for memory rather than drop jobs. */
            pthread_mutex_unlock(&w->mu);
            usleep(1000);
            pthread_mutex_lock(&w->mu);
            continue;
        }
        /* With sync() (SQLite: one fsync per commit), everything that
         * arrived while the last batch ran shares one commit. Without it
         * (PostgreSQL: each write commits on its own, see store_pg.c),
         * batching gains nothing and costs a lot: every answer of a batch
         * would wait for its last job, and clients answered together send
         * together again — measured, 200 users fell into lockstep bursts
         * of 170 sends (ack p50 60-100 ms) after a 2 s freeze. So one job
         * per batch there: its answers leave as soon as it is done. */
        b->jobs = w->qhead;
        job **cut = &w->qhead;
        size_t n = 0, limit = w->st->ops->sync ? SIZE_MAX : 1;
        while (*cut && n < limit) {
            w->queued -= (*cut)->len;
            cut = &(*cut)->next;
            n++;
        }
        w->qhead = *cut;
        *cut = NULL;
        if (!w->qhead) w->qtail = &w->qhead;
        pthread_mutex_unlock(&w->mu);
        b->tail = &b->head;
        w->cur = b;
        for (job *j = b->jobs; j; j = j->next)
            run_job(w, j);
        (void)dx__chat_flush(w->S);
        w->cur = NULL;
        b->stats.size = sizeof b->stats;
        dx__chat_stats_get(w->S, &b->stats);
        b->st_errors = w->st->errors;
        pthread_mutex_lock(&w->mu);
        /* The loop takes every batch handed back when it wakes: wake it
         * only when there was none waiting. */
        int wake = !w->done;
        *w->dtail = b;
        w->dtail = &b->next;
        pthread_mutex_unlock(&w->mu);
        uint64_t one = 1;
        while (wake && write(w->io.fd, &one, sizeof one) < 0 && errno == EINTR) {
        }
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---- the loop: sends what S sent --------------------------------------- */

static job *job_of(const dx__chat_dev *copy) {
    return (job *)((char *)copy - offsetof(job, dev));
}

static dx__chat_dev *orig_of(const dx__chat_dev *copy) {
    return copy ? job_of(copy)->orig : NULL;
}

/* A sync page or a presence answer lists users with "online": S wrote
 * false for all; this is where the loop's broker says. NULL when `data` is
 * neither (or out of memory: sent as it is). */
static char *fill_presence(dx__chat *L, const char *data, size_t len) {
    static const char sync[] = "{\"v\":1,\"type\":\"sync\"";
    static const char pres[] = "{\"v\":1,\"type\":\"presence\"";
    const char *key, *some;
    if (len >= sizeof sync - 1 && !memcmp(data, sync, sizeof sync - 1)) {
        key = "presence";
        some = "\"presence\":[{";
    } else if (len >= sizeof pres - 1 && !memcmp(data, pres, sizeof pres - 1)) {
        key = "users";
        some = "\"users\":[{";
    } else {
        return NULL;
    }
    /* Only the first page of a sync lists anyone: the others are sent
     * without being parsed again. */
    if (!memmem(data, len, some, strlen(some))) return NULL;
    json_t *j = json_loadb(data, len, 0, NULL);
    json_t *list = json_object_get(j, key);
    if (!json_array_size(list)) {
        json_decref(j);
        return NULL;
    }
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) {
        const char *uid = json_string_value(json_object_get(e, "uid"));
        if (uid)
            json_object_set_new(e, "online",
                                json_boolean(L->broker->ops->devices(L->broker, uid) > 0));
    }
    return dx__chat_dump(j);
}

static void send_out(dx__chat_worker *w, const answer *o) {
    dx__chat *L = w->L;
    dx__chat_dev *d = orig_of(o->dev);
    switch (o->kind) {
    case OUT_SEND: {
        if (!d) break; /* the device is gone */
        char *filled = fill_presence(L, o->data, o->len);
        if (filled)
            L->io.send(L->io.arg, d, filled, strlen(filled));
        else
            L->io.send(L->io.arg, d, o->data, o->len);
        free(filled);
        break;
    }
    case OUT_PUB:
        (void)dx__chat_publish(L, o->uid, o->data, d);
        break;
    case OUT_LOCAL:
        dx__chat_deliver_here(L, o->uid, o->data, o->len, d);
        break;
    }
}

static void job_unlink(job *j) {
    if (!j->orig) return;
    if (j->dprev)
        j->dprev->dnext = j->dnext;
    else
        j->orig->jobs = j->dnext;
    if (j->dnext) j->dnext->dprev = j->dprev;
    j->orig = NULL;
}

static void batch_free(batch *b) {
    for (answer *o = b->head, *next; o; o = next) {
        next = o->next;
        dx__free(o);
    }
    for (job *j = b->jobs, *next; j; j = next) {
        next = j->next;
        job_unlink(j);
        dx__free(j);
    }
    dx__free(b);
}

static void on_wake(dx_loop *loop, dx_io *io, unsigned events) {
    dx__chat_worker *w = (dx__chat_worker *)((char *)io - offsetof(dx__chat_worker, io));
    uint64_t n;
    while (read(io->fd, &n, sizeof n) < 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&w->mu);
    batch *b = w->done;
    w->done = NULL;
    w->dtail = &w->done;
    pthread_mutex_unlock(&w->mu);
    while (b) {
        batch *next = b->next;
        /* One at a time, the device of each looked up as it is reached: a
         * send may close a device (a slow consumer), which forgets it. */
        for (const answer *o = b->head; o; o = o->next)
            send_out(w, o);
        w->stats = b->stats;
        w->st_errors = b->st_errors;
        batch_free(b);
        b = next;
    }
}

/* ---- the loop: jobs in ------------------------------------------------- */

int dx__chat_worker_submit(dx__chat_worker *w, int kind, dx__chat_dev *d, const void *data,
                           size_t len, int64_t n, int64_t ts, int64_t t_req) {
    job *j = dx__malloc(sizeof *j + len + 1);
    if (!j) return DX_ENOMEM;
    *j = (job){.orig = d, .kind = kind, .n = n, .ts = ts, .t_req = t_req, .len = len};
    if (d) {
        j->dev = *d;
        j->dev.jobs = NULL;
        j->dnext = d->jobs;
        if (d->jobs) d->jobs->dprev = j;
        d->jobs = j;
    }
    if (len) memcpy(j->data, data, len);
    j->data[len] = 0;
    pthread_mutex_lock(&w->mu);
    if ((kind == DX__JOB_MSG || kind == DX__JOB_BIN) && w->queued + len > DX__CHAT_QUEUE_MAX) {
        pthread_mutex_unlock(&w->mu);
        job_unlink(j);
        dx__free(j);
        return DX_EBUSY;
    }
    w->queued += len;
    *w->qtail = j;
    w->qtail = &j->next;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

void dx__chat_worker_forget(dx__chat_worker *w, const dx__chat_dev *d) {
    for (job *j = d->jobs, *next; j; j = next) {
        next = j->dnext;
        j->orig = NULL;
        j->dprev = j->dnext = NULL;
    }
    ((dx__chat_dev *)d)->jobs = NULL;
}

void dx__chat_worker_stats(const dx__chat_worker *w, dx_chat_stats *out, uint64_t *st_errors) {
    size_t want = out->size < sizeof w->stats ? out->size : sizeof w->stats;
    dx_chat_stats st = w->stats;
    st.size = want;
    memcpy(out, &st, want);
    *st_errors = w->st_errors;
}

dx__chat *dx__chat_worker_engine(dx__chat_worker *w) {
    return w->S;
}

dx__chat_worker *dx__chat_worker_new(dx_loop *loop, dx__chat *engine, dx__chat_store *st,
                                     const char *lobby, const char **why) {
    *why = "out of memory";
    dx__chat_worker *w = dx__calloc(1, sizeof *w);
    capture_broker *cb = dx__calloc(1, sizeof *cb);
    if (!w || !cb) goto fail;
    w->loop = loop;
    w->L = engine;
    w->st = st;
    w->qtail = &w->qhead;
    w->dtail = &w->done;
    dx__chat_io io = {.arg = w,
                      .send = s_send,
                      .deliver = s_deliver,
                      .deliver_best = s_deliver,
                      .schedule = s_schedule,
                      .now_ms = s_now,
                      .mono_us = engine->io.mono_us ? s_mono : NULL};
    /* sync stays NULL: S's flush syncs in place, which is on the thread. */
    w->S = dx__chat_new(&io, st, lobby, why);
    if (!w->S) goto fail;
    st = NULL; /* S's now, closed with it */
    cb->base.ops = &CAPTURE_OPS;
    cb->w = w;
    dx__chat_use_broker(w->S, &cb->base);
    cb = NULL;
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    *why = "cannot create an eventfd for the store thread";
    if (fd < 0) goto fail;
    if (dx_io_start(loop, &w->io, fd, DX_IO_READ, on_wake) < 0) {
        close(fd);
        goto fail;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    /* The thread takes no signal (see syncer.c). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int prc = pthread_create(&w->thread, NULL, run, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (prc != 0) {
        *why = "cannot start the store thread";
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        dx_io_stop(loop, &w->io);
        close(fd);
        goto fail;
    }
    return w;
fail:
    dx__free(cb);
    if (w && w->S) dx__chat_free(w->S);
    if (st) st->ops->close(st);
    dx__free(w);
    return NULL;
}

void dx__chat_worker_free(dx__chat_worker *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->quit = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    for (batch *b = w->done, *next; b; b = next) {
        next = b->next;
        batch_free(b);
    }
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    int fd = w->io.fd;
    dx_io_stop(w->loop, &w->io);
    close(fd);
    dx__chat_free(w->S);
    dx__free(w);
}

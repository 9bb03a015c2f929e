/* Name resolution on helper threads (see dns.h).
 *
 * Who frees a request is settled under its mutex: the loop's side when the
 * answer is in (`done`), the helper when the caller gave up first
 * (`cancelled`). The helper writes the eventfd while still holding the
 * mutex, so a cancel can never close that descriptor under its write. */
#include "io/dns.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/alloc.h"

int (*dx__getaddrinfo)(const char *, const char *, const struct addrinfo *,
                       struct addrinfo **) = getaddrinfo;

struct dx__dns {
    pthread_mutex_t mu;
    int done;      /* the answer is in (under mu) */
    int cancelled; /* the caller gave up (under mu) */
    int rc, sys_errno;
    struct addrinfo *res;
    dx_loop *loop;
    dx_io io; /* the eventfd the helper writes once */
    dx__dns_cb cb;
    void *ctx;
    char port[8];
    char host[];
};

static void req_free(dx__dns *r) {
    if (r->res) freeaddrinfo(r->res);
    if (r->io.fd >= 0) close(r->io.fd);
    pthread_mutex_destroy(&r->mu);
    dx__free(r);
}

static void *helper(void *arg) {
    dx__dns *r = arg;
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = dx__getaddrinfo(r->host, r->port, &hints, &res);
    int e = errno;
    if (rc) res = NULL;
    pthread_mutex_lock(&r->mu);
    if (r->cancelled) {
        pthread_mutex_unlock(&r->mu);
        if (res) freeaddrinfo(res);
        req_free(r);
        return NULL;
    }
    r->rc = rc;
    r->sys_errno = e;
    r->res = res;
    r->done = 1;
    uint64_t one = 1;
    while (write(r->io.fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
    pthread_mutex_unlock(&r->mu);
    return NULL; /* r now belongs to the loop's side */
}

static void on_answer(dx_loop *loop, dx_io *w, unsigned events) {
    (void)events;
    dx__dns *r = (dx__dns *)((char *)w - offsetof(dx__dns, io));
    uint64_t n;
    (void)!read(w->fd, &n, sizeof n);
    pthread_mutex_lock(&r->mu);
    int done = r->done;
    pthread_mutex_unlock(&r->mu);
    if (!done) return;
    dx_io_stop(loop, w);
    r->cb(r->ctx, r->rc, r->sys_errno, r->res);
    req_free(r);
}

dx__dns *dx__dns_start(dx_loop *loop, const char *host, int port, dx__dns_cb cb, void *ctx) {
    size_t hl = strlen(host);
    dx__dns *r = dx__malloc(sizeof *r + hl + 1);
    if (!r) return NULL;
    memset(r, 0, sizeof *r);
    r->io.fd = -1;
    if (pthread_mutex_init(&r->mu, NULL)) {
        dx__free(r);
        return NULL;
    }
    memcpy(r->host, host, hl + 1);
    snprintf(r->port, sizeof r->port, "%d", port);
    r->loop = loop;
    r->cb = cb;
    r->ctx = ctx;
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0 || dx_io_start(loop, &r->io, fd, DX_IO_READ, on_answer) < 0) {
        if (fd >= 0) close(fd);
        req_free(r);
        return NULL;
    }
    /* The helper takes no signals: they stay with the application's
     * threads (and a loop's signalfd). */
    pthread_attr_t attr;
    sigset_t all, old;
    pthread_t th;
    int e = pthread_attr_init(&attr);
    if (e == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        e = pthread_create(&th, &attr, helper, r);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
    }
    if (e) {
        dx_io_stop(loop, &r->io);
        req_free(r);
        errno = e;
        return NULL;
    }
    return r;
}

void dx__dns_cancel(dx__dns *r) {
    if (!r) return;
    dx_io_stop(r->loop, &r->io);
    pthread_mutex_lock(&r->mu);
    int done = r->done;
    r->cancelled = 1;
    pthread_mutex_unlock(&r->mu);
    if (done) req_free(r); /* otherwise the helper frees it when it returns */
}

/* A server in a child process, for the end-to-end tests over loopback
 * (test_server.c, test_session.c): each test forks a server (its own loop,
 * port 0) and talks to it with plain blocking sockets; the server reports
 * what its callbacks saw as lines on an event pipe ("close 3001 1"), so
 * both ends are checked. Every wait is bounded.
 *
 * The including file defines, before or after the #include:
 *   static void srvproc_config(dx_server_config *cfg);
 *       the configuration every server of that file starts from (its
 *       callbacks); a test's cfg_fn then changes it
 *   static void srvproc_stopped(dx_server *srv);
 *       called in the child after the loop stopped, before the server is
 *       freed (to report its counters)
 * and may define SRVPROC_SHUTDOWN_MS, the grace period SIGTERM gives
 * dx_server_shutdown (default 1500).
 *
 * In the child: ev() writes an event line. In the test: SERVER(sp, fn)
 * starts one (REQUIRE), wait_event/saw_event read its lines, stop_server
 * ends it and returns its exit status (0: no failed CHECK in the child,
 * and, with the sanitizers, no leak), tcp_connect opens a client socket. */
#ifndef DX_TEST_SRVPROC_H
#define DX_TEST_SRVPROC_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <duplex/loop.h>
#include <duplex/server.h>

#include "test.h"

#ifndef SRVPROC_SHUTDOWN_MS
#define SRVPROC_SHUTDOWN_MS 1500
#endif

/* ---- in the server process ------------------------------------------------ */

static int ev_fd = -1; /* write end of the event pipe, in the child */

/* Writes one event line (a newline is added). */
static inline void ev(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void ev(const char *fmt, ...) {
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (n > (int)sizeof line - 2) n = (int)sizeof line - 2;
    line[n++] = '\n';
    if (write(ev_fd, line, (size_t)n) < 0) _exit(3);
}

/* 1 when the `n` bytes at `d` start with the string `p`. */
static inline int starts(const uint8_t *d, size_t n, const char *p) {
    size_t k = strlen(p);
    return n >= k && !memcmp(d, p, k);
}

typedef void (*cfg_fn)(dx_server_config *cfg);

static void srvproc_config(dx_server_config *cfg);
static void srvproc_stopped(dx_server *srv);

static inline void srvproc_term_done(dx_loop *loop, void *arg) {
    (void)arg;
    ev("shutdown done");
    dx_loop_stop(loop);
}

static inline void srvproc_term(dx_loop *loop, void *arg) {
    (void)loop;
    dx_server_shutdown(arg, SRVPROC_SHUTDOWN_MS, srvproc_term_done, NULL);
}

/* The child: runs the server until SIGTERM's graceful shutdown is done,
 * after writing its port on `port_fd`. */
static inline void srvproc_main(cfg_fn fn, int port_fd) {
    dx_loop *loop = dx_loop_new(0);
    if (!loop) _exit(4);
    dx_server_config cfg = {0};
    srvproc_config(&cfg);
    if (fn) fn(&cfg);
    dx_server *srv = dx_server_new(loop, &cfg);
    if (!srv) {
        fprintf(stderr, "server: %s\n", dx_server_new_why());
        _exit(5);
    }
    if (dx_server_listen(srv) < 0) _exit(6);
    if (dx_loop_on_signal(loop, SIGTERM, srvproc_term, srv) < 0) _exit(7);
    int port = dx_server_port(srv);
    if (write(port_fd, &port, sizeof port) != sizeof port) _exit(8);
    close(port_fd);
    dx_loop_run(loop);
    srvproc_stopped(srv);
    dx_server_free(srv);
    dx_loop_free(loop);
    /* exit, not _exit: LeakSanitizer then checks the server process. */
    exit(dx_t_failed_checks ? 9 : 0);
}

/* ---- in the test ------------------------------------------------------------ */

typedef struct server_proc {
    pid_t pid;
    int port;
    int ev; /* read end of the event pipe */
    char evbuf[8192];
    size_t evlen;
} server_proc;

static inline int start_server(server_proc *sp, cfg_fn fn) {
    int pp[2], ep[2];
    memset(sp, 0, sizeof *sp);
    if (pipe(pp) || pipe(ep)) return -1;
    /* SIGTERM must be blocked before the child's loop takes it. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        sigprocmask(SIG_BLOCK, &set, NULL);
        dx_t_failed_checks = 0; /* the parent's count is not ours */
        close(pp[0]);
        close(ep[0]);
        ev_fd = ep[1];
        srvproc_main(fn, pp[1]);
    }
    close(pp[1]);
    close(ep[1]);
    sp->pid = pid;
    sp->ev = ep[0];
    struct pollfd p = {pp[0], POLLIN, 0};
    if (poll(&p, 1, 10000) != 1 || read(pp[0], &sp->port, sizeof sp->port) != sizeof sp->port) {
        close(pp[0]);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    close(pp[0]);
    return 0;
}

#define SERVER(sp, fn)                                                                             \
    server_proc sp;                                                                                \
    REQUIRE(start_server(&sp, fn) == 0)

/* Waits up to `ms` for an event line starting with `prefix`; copies the
 * line into `out` when given. Lines before it are consumed. */
static inline int wait_event(server_proc *sp, const char *prefix, char *out, size_t cap, int ms) {
    uint64_t t0 = dx_t_now_ms();
    for (;;) {
        char *nl;
        while ((nl = memchr(sp->evbuf, '\n', sp->evlen))) {
            size_t len = (size_t)(nl - sp->evbuf);
            int hit = len >= strlen(prefix) && !memcmp(sp->evbuf, prefix, strlen(prefix));
            if (hit && out) {
                size_t k = len < cap - 1 ? len : cap - 1;
                memcpy(out, sp->evbuf, k);
                out[k] = 0;
            }
            memmove(sp->evbuf, nl + 1, sp->evlen - len - 1);
            sp->evlen -= len + 1;
            if (hit) return 0;
        }
        uint64_t el = dx_t_now_ms() - t0;
        if (el >= (uint64_t)ms) return -1;
        struct pollfd p = {sp->ev, POLLIN, 0};
        if (poll(&p, 1, (int)((uint64_t)ms - el)) <= 0) return -1;
        ssize_t r = read(sp->ev, sp->evbuf + sp->evlen, sizeof sp->evbuf - sp->evlen);
        if (r <= 0) return -1;
        sp->evlen += (size_t)r;
    }
}

/* 1 when an event line starting with `prefix` is already waiting or comes
 * within `ms` (used to check that something did NOT happen, with a short
 * wait after a later event proved the server went past it). */
static inline int saw_event(server_proc *sp, const char *prefix, int ms) {
    return wait_event(sp, prefix, NULL, 0, ms) == 0;
}

/* SIGTERM (graceful), then the exit status; SIGKILL after 8 s. */
static inline int stop_server(server_proc *sp) {
    kill(sp->pid, SIGTERM);
    int status = -1;
    for (int i = 0; i < 800; i++) {
        if (waitpid(sp->pid, &status, WNOHANG) == sp->pid) {
            close(sp->ev);
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        usleep(10000);
    }
    kill(sp->pid, SIGKILL);
    waitpid(sp->pid, &status, 0);
    close(sp->ev);
    return -1;
}

/* A blocking TCP connection to 127.0.0.1:port (5 s send and receive
 * timeouts, Nagle off), or -1. */
static inline int tcp_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

#endif

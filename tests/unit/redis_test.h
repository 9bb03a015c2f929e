/* Test support shared by the tests that need a real redis-server
 * (test_redis, test_chat_redis): a throwaway server on a free loopback port,
 * and running a loop until a condition holds. Header-only, like test.h. */
#ifndef DX_TEST_REDIS_H
#define DX_TEST_REDIS_H

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <duplex/loop.h>

/* ---- a throwaway redis-server ---- */

static char redis_dir[64];
static int redis_port;
static pid_t redis_pid = -1;

static inline int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &n) < 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static inline int port_open(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

/* Starts redis-server on redis_port with no persistence, in redis_dir;
 * when `wait`, returns only once it accepts connections (-1 if it never
 * does). */
static inline int redis_start(int wait) {
    char port[16];
    snprintf(port, sizeof port, "%d", redis_port);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) dup2(null, 1);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", redis_dir, "--loglevel", "warning", (char *)NULL);
        _exit(127);
    }
    redis_pid = pid;
    for (int i = 0; wait && i < 200; i++) {
        if (port_open(redis_port)) return 0;
        if (waitpid(pid, NULL, WNOHANG) == pid) break;
        usleep(25000);
    }
    return wait ? -1 : 0;
}

static inline void redis_kill(void) {
    if (redis_pid > 0) {
        kill(redis_pid, SIGKILL);
        waitpid(redis_pid, NULL, 0);
    }
    redis_pid = -1;
}

/* ---- running the loop until something happened ---- */

typedef int (*cond_fn)(void *arg);
typedef struct waiter {
    dx_timer poll, guard;
    cond_fn cond;
    void *arg;
    int timed_out;
} waiter;

static inline void on_poll(dx_loop *loop, dx_timer *t) {
    waiter *w = (waiter *)(void *)t;
    if (w->cond(w->arg)) {
        dx_loop_stop(loop);
        return;
    }
    dx_timer_start(loop, t, 5);
}

static inline void on_wait_guard(dx_loop *loop, dx_timer *t) {
    waiter *w = (waiter *)(void *)((char *)t - offsetof(waiter, guard));
    w->timed_out = 1;
    dx_loop_stop(loop);
}

/* Runs the loop until cond(arg) holds (1) or `ms` pass (0). */
static inline int run_until(dx_loop *loop, cond_fn cond, void *arg, uint64_t ms) {
    waiter w = {.cond = cond, .arg = arg};
    dx_timer_init(&w.poll, on_poll);
    dx_timer_init(&w.guard, on_wait_guard);
    dx_timer_start(loop, &w.poll, 0);
    dx_timer_start(loop, &w.guard, ms);
    (void)dx_loop_run(loop);
    dx_timer_stop(loop, &w.poll);
    dx_timer_stop(loop, &w.guard);
    return !w.timed_out;
}

/* A condition that never holds: run_until(loop, never, NULL, ms) runs the
 * loop for ms. */
static inline int never(void *arg) {
    (void)arg;
    return 0;
}

#endif

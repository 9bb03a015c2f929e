/* The physical limit: a raw TCP echo server on one epoll loop, written for
 * the benchmark suite. No framing, no parsing, no queue: whatever arrives
 * is written straight back (kept in a per-connection buffer only when the
 * socket will not take it all). Level-triggered epoll, one read per ready
 * socket per wake-up, the same shape as any minimal event-driven server.
 *
 * usage: raw_echo PORT   (prints "listening PORT" once bound; PORT 0 picks one)
 *        build: cc -O2 -o raw_echo raw_echo.c */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct conn {
    int fd;
    char *pend; /* bytes the socket did not take yet */
    size_t plen, pcap;
} conn;

static int epfd;
static char rbuf[256 * 1024];

static void drop(conn *c) {
    close(c->fd);
    free(c->pend);
    free(c);
}

static int pend_add(conn *c, const char *p, size_t n) {
    if (c->plen + n > c->pcap) {
        size_t cap = c->pcap ? c->pcap * 2 : 65536;
        while (cap < c->plen + n)
            cap *= 2;
        char *q = realloc(c->pend, cap);
        if (!q) return -1;
        c->pend = q;
        c->pcap = cap;
    }
    memcpy(c->pend + c->plen, p, n);
    c->plen += n;
    return 0;
}

static void set_out(conn *c, int on) {
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void on_write(conn *c) {
    while (c->plen) {
        ssize_t w = write(c->fd, c->pend, c->plen);
        if (w < 0) {
            if (errno == EAGAIN) return;
            drop(c);
            return;
        }
        memmove(c->pend, c->pend + w, c->plen - (size_t)w);
        c->plen -= (size_t)w;
    }
    set_out(c, 0);
}

static void on_read(conn *c) {
    ssize_t n = read(c->fd, rbuf, sizeof rbuf);
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
        drop(c);
        return;
    }
    if (c->plen) { /* already behind: keep the order */
        if (pend_add(c, rbuf, (size_t)n)) drop(c);
        return;
    }
    ssize_t w = write(c->fd, rbuf, (size_t)n);
    if (w < 0) {
        if (errno != EAGAIN) {
            drop(c);
            return;
        }
        w = 0;
    }
    if (w < n) {
        if (pend_add(c, rbuf + w, (size_t)(n - w))) {
            drop(c);
            return;
        }
        set_out(c, 1);
    }
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int port = argc > 1 ? atoi(argv[1]) : 9001;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 4096) ||
        getsockname(lfd, (struct sockaddr *)&a, &al)) {
        perror("raw_echo");
        return 1;
    }
    printf("listening %d\n", ntohs(a.sin_port));
    fflush(stdout);
    epfd = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);
    struct epoll_event evs[512];
    for (;;) {
        int n = epoll_wait(epfd, evs, 512, -1);
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn *nc = calloc(1, sizeof *nc);
                    nc->fd = fd;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                on_write(c);
                continue; /* reads wait until the backlog is written */
            }
            on_read(c);
        }
    }
}

/* manyconn: opens N concurrent WebSocket connections to 127.0.0.1:PORT,
 * sends one masked text message on each, checks every echo, prints
 * "ready N", and holds the connections open until stdin closes (or a
 * line arrives). libc only, so the scale test needs nothing built.
 * Usage: manyconn PORT N [SOURCES] [--deflate]   (SOURCES: source
 * addresses 127.0.0.1..SOURCES, default 4, so N may exceed one address's
 * ports). With --deflate each connection offers permessage-deflate as
 * browsers do, requires it in the answer, and sends its message compressed
 * (RSV1, one stored DEFLATE block: no zlib needed here), so the server
 * decompresses one message per connection. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum { CONNECTING, HANDSHAKE, OPEN, ECHOING, DONE, FAILED };

typedef struct conn {
    int fd;
    int state;
    char buf[256];
    size_t len;
} conn;

static conn *cs;
static int n_total, port, sources = 4, epfd;
static int n_open, n_done, n_failed, pending;
static int deflate;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void fail(conn *c, const char *why) {
    if (c->state == FAILED) return;
    if (n_failed < 5) fprintf(stderr, "manyconn: connection %ld: %s\n", (long)(c - cs), why);
    if (c->state == CONNECTING || c->state == HANDSHAKE) pending--;
    c->state = FAILED;
    n_failed++;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
}

static int start(int i) {
    conn *c = &cs[i];
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(i % sources));
    if (bind(c->fd, (struct sockaddr *)&src, sizeof src) < 0) return -1;
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    dst.sin_addr.s_addr = htonl(0x7f000001u);
    if (connect(c->fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) return -1;
    c->state = CONNECTING;
    pending++;
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = (uint32_t)i};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

static void send_msg(int i) {
    conn *c = &cs[i];
    char msg[32];
    int n = snprintf(msg, sizeof msg, "msg-%d", i);
    uint8_t f[64] = {0x81, (uint8_t)(0x80 | n), 0x11, 0x22, 0x33, 0x44};
    if (deflate) {
        /* RFC 7692 §7.2.3.3: a stored block (BFINAL 0, LEN, NLEN, the
         * bytes), then the first byte of the next block; the receiver
         * appends 00 00 ff ff. */
        char z[40] = {0x00, (char)n, 0x00, (char)~n, (char)0xff};
        memcpy(z + 5, msg, (size_t)n);
        z[5 + n] = 0x00;
        memcpy(msg, z, (size_t)n + 6);
        n += 6;
        f[0] = 0xc1;
        f[1] = (uint8_t)(0x80 | n);
    }
    for (int k = 0; k < n; k++)
        f[6 + k] = (uint8_t)(msg[k] ^ f[2 + (k & 3)]);
    if (write(c->fd, f, (size_t)(6 + n)) != 6 + n) {
        fail(c, "write failed");
        return;
    }
    c->state = ECHOING;
    c->len = 0;
}

static void on_event(int i, uint32_t events) {
    conn *c = &cs[i];
    if (c->state == FAILED || c->state == DONE) return;
    if (c->state == CONNECTING && (events & EPOLLOUT)) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            fail(c, strerror(err));
            return;
        }
        static const char req[] =
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n";
        static const char req_deflate[] =
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";
        const char *r = deflate ? req_deflate : req;
        size_t rlen = deflate ? sizeof req_deflate - 1 : sizeof req - 1;
        if (write(c->fd, r, rlen) != (ssize_t)rlen) {
            fail(c, "request write failed");
            return;
        }
        c->state = HANDSHAKE;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
        return;
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
    ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
    if (r <= 0) {
        if (r < 0 && errno == EAGAIN) return;
        fail(c, r == 0 ? "closed by the server" : strerror(errno));
        return;
    }
    c->len += (size_t)r;
    c->buf[c->len] = 0;
    if (c->state == HANDSHAKE) {
        char *end = strstr(c->buf, "\r\n\r\n");
        if (!end) {
            if (c->len >= sizeof c->buf - 1) fail(c, "response head too long");
            return;
        }
        if (strncmp(c->buf, "HTTP/1.1 101", 12) ||
            !strstr(c->buf, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")) {
            fail(c, "handshake refused");
            return;
        }
        if (deflate && !strstr(c->buf, "Sec-WebSocket-Extensions: permessage-deflate")) {
            fail(c, "permessage-deflate not negotiated");
            return;
        }
        c->state = OPEN;
        pending--;
        n_open++;
        c->len = 0;
        return;
    }
    if (c->state == ECHOING) {
        char want[32];
        int n = snprintf(want, sizeof want, "msg-%d", i);
        if (c->len < (size_t)(2 + n)) return;
        if ((uint8_t)c->buf[0] != 0x81 || (uint8_t)c->buf[1] != n ||
            memcmp(c->buf + 2, want, (size_t)n)) {
            fail(c, "wrong echo");
            return;
        }
        c->state = DONE;
        n_done++;
    }
}

static void pump(int timeout_ms) {
    struct epoll_event evs[512];
    int k = epoll_wait(epfd, evs, 512, timeout_ms);
    for (int j = 0; j < k; j++)
        on_event((int)evs[j].data.u32, evs[j].events);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[argc - 1], "--deflate")) {
        deflate = 1;
        argc--;
    }
    if (argc < 3) {
        fprintf(stderr, "usage: manyconn PORT N [SOURCES] [--deflate]\n");
        return 2;
    }
    port = atoi(argv[1]);
    n_total = atoi(argv[2]);
    if (argc > 3) sources = atoi(argv[3]);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)n_total + 16) {
        fprintf(stderr, "manyconn: RLIMIT_NOFILE %llu is below %d\n",
                (unsigned long long)rl.rlim_cur, n_total + 16);
        return 1;
    }
    cs = calloc((size_t)n_total, sizeof *cs);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    double t0 = now();
    int next = 0;
    /* Open them all, with at most 256 handshakes in flight so the listen
     * backlog never overflows. */
    while ((n_open + n_failed < n_total) && now() - t0 < 120) {
        while (next < n_total && pending < 256) {
            if (start(next) < 0) {
                cs[next].state = CONNECTING;
                pending++;
                fail(&cs[next], strerror(errno));
            }
            next++;
        }
        pump(100);
    }
    double t1 = now();
    printf("open %d of %d in %.2f s (%d failed)\n", n_open, n_total, t1 - t0, n_failed);
    for (int i = 0; i < n_total; i++)
        if (cs[i].state == OPEN) send_msg(i);
    while (n_done + n_failed < n_total && now() - t1 < 60)
        pump(100);
    printf("echoed %d of %d in %.2f s\n", n_done, n_total, now() - t1);
    printf("ready %d\n", n_done);
    fflush(stdout);
    /* Hold every connection open until told to go. */
    char line[16];
    if (!fgets(line, sizeof line, stdin)) { /* stdin closed */
    }
    return n_done == n_total ? 0 : 1;
}

/* fairness: one client floods, another measures its echo round trip.
 *
 *   fairness PORT SECS [FLOODERS] [FRAME]
 *
 * FLOODERS (default 1) connections of one child process each write
 * FRAME-byte (default 4000) binary frames back to back for SECS seconds
 * and read their echoes as they come (a flooder that does not read is
 * backpressure's business, test_backpressure). Meanwhile the parent, a
 * normal client, sends one 16-byte message every 10 ms and waits for its
 * echo. The flooders share one process, at a lower priority, so that what
 * is measured is the server's fairness and not the scheduler's: on two
 * cores, 16 busy processes left the prober waiting for a CPU. It prints the echo
 * round trip's median, p99 and maximum in ms, and how many bytes the
 * flooders got back (proof that they flooded), as
 *
 *   probes N p50 X p99 Y max Z flood_mb F
 *
 * It checks nothing itself; the script compares the figures with its
 * bounds. Loopback only, bounded in time; libc only. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REQUEST                                                                                    \
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"           \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

static int port;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *what) {
    fprintf(stderr, "fairness: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* Connects and upgrades; the 101's head is read byte by byte up to its
 * blank line so that nothing of the first echo is swallowed. */
static int ws_open(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (write(fd, REQUEST, strlen(REQUEST)) != (ssize_t)strlen(REQUEST)) die("write request");
    char head[1024];
    size_t n = 0;
    while (n < sizeof head - 1) {
        ssize_t r = read(fd, head + n, 1);
        if (r <= 0) die("read 101");
        n++;
        if (n >= 4 && !memcmp(head + n - 4, "\r\n\r\n", 4)) break;
    }
    head[n] = 0;
    if (strncmp(head, "HTTP/1.1 101", 12) != 0) {
        fprintf(stderr, "fairness: no 101: %s\n", head);
        exit(2);
    }
    return fd;
}

/* A masked client frame (mask 0: the payload goes as it is). */
static size_t frame(uint8_t *out, int op, const uint8_t *payload, size_t len) {
    size_t h = 0;
    out[h++] = (uint8_t)(0x80 | op);
    if (len < 126) {
        out[h++] = (uint8_t)(0x80 | len);
    } else {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(len >> 8);
        out[h++] = (uint8_t)len;
    }
    memset(out + h, 0, 4);
    h += 4;
    memcpy(out + h, payload, len);
    return h + len;
}

/* Writes on `n` connections as fast as their sockets take frames and reads
 * whatever comes back, until `secs` are over; adds what it read to *got. */
static void flood(int n, double secs, size_t fsize, volatile uint64_t *got) {
    struct pollfd p[16];
    size_t off[16] = {0};
    for (int i = 0; i < n; i++)
        p[i] = (struct pollfd){ws_open(), POLLIN | POLLOUT, 0};
    uint8_t *payload = calloc(1, fsize), *batch = malloc(64 * (fsize + 8)), rbuf[65536];
    if (!payload || !batch) die("malloc");
    size_t blen = 0;
    for (int i = 0; i < 64; i++)
        blen += frame(batch + blen, 2, payload, fsize);
    double end = now_ms() + secs * 1e3;
    int open = n;
    while (open > 0 && now_ms() < end) {
        if (poll(p, (nfds_t)n, 50) < 0 && errno != EINTR) die("poll");
        for (int i = 0; i < n; i++) {
            if (p[i].fd < 0) continue;
            int dead = 0;
            if (p[i].revents & POLLIN) {
                ssize_t r = read(p[i].fd, rbuf, sizeof rbuf);
                if (r <= 0)
                    dead = 1; /* dropped: the script sees it in flood_mb */
                else
                    *got += (uint64_t)r;
            }
            if (!dead && (p[i].revents & POLLOUT)) {
                ssize_t w =
                    send(p[i].fd, batch + off[i], blen - off[i], MSG_DONTWAIT | MSG_NOSIGNAL);
                if (w < 0 && errno != EAGAIN) dead = 1;
                if (w > 0) off[i] = (off[i] + (size_t)w) % blen; /* frames stay whole */
            }
            if (dead || (p[i].revents & (POLLERR | POLLNVAL))) {
                close(p[i].fd);
                p[i].fd = -1;
                open--;
            }
        }
    }
    for (int i = 0; i < n; i++)
        if (p[i].fd >= 0) close(p[i].fd);
    free(payload);
    free(batch);
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One probe: a 16-byte text message and its echo (2 + 16 bytes). */
static double probe(int fd) {
    uint8_t out[32], in[64];
    size_t n = frame(out, 1, (const uint8_t *)"probe-0123456789", 16);
    double t0 = now_ms();
    if (write(fd, out, n) != (ssize_t)n) die("probe write");
    size_t got = 0;
    while (got < 18) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 10000) <= 0) {
            fprintf(stderr, "fairness: no echo within 10 s\n");
            exit(2);
        }
        ssize_t r = read(fd, in + got, sizeof in - got);
        if (r <= 0) die("probe read");
        got += (size_t)r;
    }
    return now_ms() - t0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: fairness PORT SECS [FLOODERS] [FRAME]\n");
        return 2;
    }
    port = atoi(argv[1]);
    double secs = atof(argv[2]);
    int nflood = argc > 3 ? atoi(argv[3]) : 1;
    size_t fsize = argc > 4 ? (size_t)atol(argv[4]) : 4000;
    if (fsize < 126 || fsize > 65535 || nflood < 0 || nflood > 16 || secs <= 0 || secs > 60) {
        fprintf(stderr, "fairness: FRAME 126-65535, FLOODERS 0-16, SECS 0-60\n");
        return 2;
    }
    volatile uint64_t *got =
        mmap(NULL, sizeof *got, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (got == MAP_FAILED) die("mmap");
    signal(SIGPIPE, SIG_IGN);
    int probe_fd = ws_open();
    pid_t kid = nflood ? fork() : 0;
    if (kid < 0) die("fork");
    if (nflood && kid == 0) {
        errno = 0;
        if (nice(10) < 0 && errno) perror("fairness: nice"); /* measured anyway */
        flood(nflood, secs + 0.5, fsize, got);
        _exit(0);
    }
    usleep(300 * 1000); /* the flood is on before the first probe */
    size_t cap = (size_t)(secs * 100) + 16, np = 0;
    double *rtt = malloc(cap * sizeof *rtt), end = now_ms() + (secs - 0.3) * 1e3;
    if (!rtt) die("malloc");
    while (now_ms() < end && np < cap) {
        rtt[np++] = probe(probe_fd);
        usleep(10 * 1000);
    }
    if (kid > 0) waitpid(kid, NULL, 0);
    close(probe_fd);
    if (np == 0) {
        fprintf(stderr, "fairness: no probe\n");
        return 2;
    }
    qsort(rtt, np, sizeof *rtt, cmp);
    uint64_t flooded = *got;
    printf("probes %zu p50 %.2f p99 %.2f max %.2f flood_mb %.1f\n", np, rtt[np / 2],
           rtt[np * 99 / 100 < np ? np * 99 / 100 : np - 1], rtt[np - 1], flooded / 1048576.0);
    free(rtt);
    return 0;
}

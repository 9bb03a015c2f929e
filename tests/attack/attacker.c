/* attacker: hostile WebSocket and HTTP clients against `duplex serve` on
 * 127.0.0.1, one attack per run, each asserting what the server must
 * answer. libc only (the attack scripts build it with cc).
 *
 *   attacker [--pid PID] [--rss-max KB] [--rss-slack KB] ATTACK PORT [ARGS]
 *
 * With --pid, the server's peak RSS (VmHWM in /proc/PID/status) is checked
 * against --rss-max when the attack ends, growth over a flood or churn
 * against --rss-slack (KiB, default 2048), and its open descriptors are
 * counted before and after (they must come back down: no leak). Prints
 * one line per check; exits 0 when every check passed, 1 otherwise.
 *
 * Attacks:
 *   echo PORT                  one normal client: handshake, echo, close 1000
 *   slowloris PORT N T         N connections send the request 1 byte/s; all
 *                              must be dropped by T s (the handshake timeout)
 *                              + slack while a normal client keeps echoing
 *   http PORT                  oversized header, too many headers, 1 MiB
 *                              request line → 431; garbage, TLS on the plain
 *                              port → 400; no answer quotes the attacker
 *   bigframe PORT              a header announcing 2^62 bytes → 1009 at once;
 *                              2^63 → 1002
 *   conts PORT LIMIT           1-byte continuation frames past LIMIT → 1009
 *   pingflood PORT N           N pings, every pong comes back, RSS flat
 *   noread PORT SECS           echo peer that never reads: the server stops
 *                              reading it, memory stays bounded, others served
 *   slowconsumer PORT MAXBUF   (broadcast server) a client that never reads
 *                              while another floods → it gets 1008
 *   utf8 PORT                  invalid UTF-8 at every position of a
 *                              fragmented text message → 1007 at once
 *   resets PORT N              RST mid-frame and mid-handshake, half-closed
 *                              sockets, N rounds
 *   churn PORT N               N connect/handshake/close cycles, RSS before ≈
 *                              after
 *   bomb PORT MB               permessage-deflate: MB MiB of zeros compressed
 *                              ~1000:1, whole and fragmented, text and binary
 *                              → 1009 without inflating it; corrupt data →
 *                              1007 (text) / 1002 (binary)
 *   partial PORT N MB KEEP GROW  permessage-deflate: N connections each send
 *                              the compressed start (~MB KiB) of an MB MiB
 *                              message and never finish it; at most KEEP stay
 *                              open, the others get 1009, the server's peak
 *                              RSS grows by less than GROW KiB, and a
 *                              fragmented compressed message still echoes
 *   partialtime PORT T         (server with --partial-timeout T) a message
 *                              trickled a byte at a time is closed with 1008
 *                              T s after it began, not later
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define REQUEST                                                                                    \
    "GET /attack HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"     \
    "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n"

static int port, server_pid;
static long rss_max_kb, rss_slack_kb = 2048;
static int failures;

/* ---- reporting --------------------------------------------------------- */

static void check(int ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s: ", ok ? "ok" : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
    if (!ok) failures++;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void sleep_ms(int ms) {
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* A field of /proc/PID/status in kB, or -1. */
static long proc_kb(const char *field) {
    if (!server_pid) return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", server_pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long v = -1;
    size_t fl = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, fl) && line[fl] == ':') v = strtol(line + fl + 1, NULL, 10);
    fclose(f);
    return v;
}

static int fd_count(void) {
    if (!server_pid) return -1;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", server_pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* ---- sockets ----------------------------------------------------------- */

static void die(const char *what) {
    fprintf(stderr, "attacker: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* Receive buffer for the next connections (0: the kernel's). Set before
 * connect, so that the window the peer sees is small from the start. */
static int next_rcvbuf;

static int new_socket(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (next_rcvbuf) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &next_rcvbuf, sizeof next_rcvbuf);
    return fd;
}

static int tcp_connect(void) {
    int fd = new_socket();
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int tries = 0; connect(fd, (struct sockaddr *)&a, sizeof a) < 0; tries++) {
        /* A full accept queue or a burst of churn can refuse for a moment. */
        if ((errno != ECONNREFUSED && errno != EAGAIN && errno != EADDRNOTAVAIL) || tries > 50)
            die("connect");
        close(fd);
        sleep_ms(20);
        fd = new_socket();
    }
    return fd;
}

static void set_nonblock(int fd) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Closes with a reset instead of a FIN. */
static void reset_close(int fd) {
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

/* Writes everything (blocking socket). 0, or -1 when the peer is gone. */
static int send_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Waits up to `ms` for the socket to be readable: 1, 0 on timeout. */
static int wait_readable(int fd, int ms) {
    struct pollfd p = {fd, POLLIN, 0};
    int r;
    do
        r = poll(&p, 1, ms);
    while (r < 0 && errno == EINTR);
    return r > 0;
}

/* ---- a WebSocket client ------------------------------------------------ */

typedef struct ws {
    int fd;
    uint8_t buf[1 << 17];
    size_t len; /* bytes received and not yet parsed */
} ws;

/* Reads more into w->buf within `ms`. >0 bytes, 0 EOF, -1 error/reset,
 * -2 timeout. */
static ssize_t ws_fill(ws *w, int ms) {
    if (w->len == sizeof w->buf) return -1;
    if (!wait_readable(w->fd, ms)) return -2;
    ssize_t n = recv(w->fd, w->buf + w->len, sizeof w->buf - w->len, 0);
    if (n < 0) return -1;
    w->len += (size_t)n;
    return n;
}

/* Extra request headers for the next ws_open (CRLF-terminated), and a
 * string the 101 answer must contain. */
static const char *next_headers, *next_expect;

/* Connects and upgrades. Returns 0 or -1 (and prints why). */
static int ws_open(ws *w) {
    w->fd = tcp_connect();
    w->len = 0;
    if (next_headers) {
        /* The request without its final CRLF, the extra headers, the CRLF. */
        if (send_all(w->fd, REQUEST, sizeof REQUEST - 3) ||
            send_all(w->fd, next_headers, strlen(next_headers)) || send_all(w->fd, "\r\n", 2))
            return -1;
    } else if (send_all(w->fd, REQUEST, sizeof REQUEST - 1)) {
        return -1;
    }
    for (;;) {
        uint8_t *end = memmem(w->buf, w->len, "\r\n\r\n", 4);
        if (end) {
            if (w->len < 12 || memcmp(w->buf, "HTTP/1.1 101", 12)) {
                fprintf(stderr, "attacker: no 101: %.40s\n", (char *)w->buf);
                return -1;
            }
            if (next_expect &&
                !memmem(w->buf, (size_t)(end - w->buf), next_expect, strlen(next_expect))) {
                fprintf(stderr, "attacker: the 101 lacks '%s'\n", next_expect);
                return -1;
            }
            size_t head = (size_t)(end + 4 - w->buf);
            memmove(w->buf, w->buf + head, w->len - head);
            w->len -= head;
            return 0;
        }
        if (ws_fill(w, 10000) <= 0) {
            fprintf(stderr, "attacker: handshake: no answer\n");
            return -1;
        }
    }
}

/* Builds a masked client frame into out (cap ≥ len + 14). Returns its size.
 * `announce` is the length written in the header (normally len). */
static size_t frame(uint8_t *out, int fin, int op, const void *payload, size_t len,
                    uint64_t announce) {
    static const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    size_t n = 0;
    /* op may carry RSV bits (0x40 is RSV1: compressed). */
    out[n++] = (uint8_t)((fin ? 0x80 : 0) | op);
    if (announce < 126) {
        out[n++] = (uint8_t)(0x80 | announce);
    } else if (announce <= 0xffff) {
        out[n++] = 0x80 | 126;
        out[n++] = (uint8_t)(announce >> 8);
        out[n++] = (uint8_t)announce;
    } else {
        out[n++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            out[n++] = (uint8_t)(announce >> (8 * i));
    }
    memcpy(out + n, key, 4);
    n += 4;
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++)
        out[n + i] = p[i] ^ key[i & 3];
    return n + len;
}

static int ws_send(ws *w, int fin, int op, const void *payload, size_t len) {
    uint8_t *f = malloc(len + 14);
    if (!f) die("malloc");
    size_t n = frame(f, fin, op, payload, len, len);
    int rc = send_all(w->fd, f, n);
    free(f);
    return rc;
}

/* Reads one whole frame (server frames are unmasked and, for the tests
 * here, fit the buffer). Returns the opcode and sets *plen, with the
 * payload at w->buf + *hlen until the next call; -1 EOF/reset, -2 timeout. */
static int ws_next(ws *w, int ms, size_t *hlen, size_t *plen, int *fin) {
    double deadline = now() + ms / 1000.0;
    for (;;) {
        if (w->len >= 2) {
            uint64_t l = w->buf[1] & 0x7f;
            size_t h = 2;
            if (l == 126 && w->len >= 4) {
                l = ((uint64_t)w->buf[2] << 8) | w->buf[3];
                h = 4;
            } else if (l == 127 && w->len >= 10) {
                l = 0;
                for (int i = 0; i < 8; i++)
                    l = (l << 8) | w->buf[2 + i];
                h = 10;
            } else if (l >= 126) {
                h = 0; /* header incomplete */
            }
            if (h && w->len >= h + l) {
                *hlen = h;
                *plen = (size_t)l;
                if (fin) *fin = w->buf[0] >> 7;
                return w->buf[0] & 0x0f;
            }
        }
        int left = (int)((deadline - now()) * 1000);
        if (left <= 0) return -2;
        ssize_t n = ws_fill(w, left);
        if (n == -2) return -2;
        if (n <= 0) return -1;
    }
}

static void ws_drop(ws *w, size_t n) {
    memmove(w->buf, w->buf + n, w->len - n);
    w->len -= n;
}

/* Reads frames until a close; returns its code (1005 when empty), -1 when
 * the connection ended without one, -2 on timeout. Data frames are
 * skipped. */
static int ws_expect_close(ws *w, int ms) {
    for (;;) {
        size_t h, l;
        int op = ws_next(w, ms, &h, &l, NULL);
        if (op < 0) return op;
        if (op == 8) {
            int code = l >= 2 ? (w->buf[h] << 8) | w->buf[h + 1] : 1005;
            ws_drop(w, h + l);
            return code;
        }
        ws_drop(w, h + l);
    }
}

/* A clean close from our side: close 1000, wait for the echo and the EOF. */
static int ws_close(ws *w) {
    uint8_t p[2] = {0x03, 0xe8};
    int ok = ws_send(w, 1, 8, p, 2) == 0 && ws_expect_close(w, 10000) == 1000;
    close(w->fd);
    return ok;
}

/* One normal client: the server is still serving. Returns the echo's
 * round trip in ms, or -1. */
static double echo_once(void) {
    ws *w = malloc(sizeof *w);
    if (!w) die("malloc");
    double t0 = now(), ms = -1;
    if (ws_open(w) == 0 && ws_send(w, 1, 1, "still there?", 12) == 0) {
        size_t h, l;
        int op = ws_next(w, 10000, &h, &l, NULL);
        if (op == 1 && l == 12 && !memcmp(w->buf + h, "still there?", 12)) {
            ms = (now() - t0) * 1000;
            ws_drop(w, h + l);
            if (!ws_close(w)) ms = -1;
            w->fd = -1;
        }
    }
    if (w->fd >= 0) close(w->fd);
    free(w);
    return ms;
}

/* ---- memory and descriptors ------------------------------------------- */

static int fds_before;

static void begin(void) {
    fds_before = fd_count();
}

/* The server's descriptors come back to what they were (within `ms`, as
 * lingering connections end), and its peak RSS stayed under the bound. */
static void end_checks(const char *what) {
    if (!server_pid) return;
    int fds = fd_count();
    for (int i = 0; i < 100 && fds > fds_before; i++) {
        sleep_ms(100);
        fds = fd_count();
    }
    check(fds <= fds_before, "%s: server descriptors back to %d (now %d)", what, fds_before, fds);
    long hwm = proc_kb("VmHWM"), rss = proc_kb("VmRSS");
    if (rss_max_kb)
        check(hwm > 0 && hwm <= rss_max_kb, "%s: server peak RSS %ld KiB <= %ld KiB (now %ld KiB)",
              what, hwm, rss_max_kb, rss);
    double ms = echo_once();
    check(ms >= 0, "%s: server still serving (echo in %.1f ms)", what, ms);
}

/* ---- HTTP answers ----------------------------------------------------- */

/* Sends `req` (all of it if the server keeps reading, while reading its
 * answer) and returns the status of the answer, or -1. The answer goes to
 * `out` (NUL-terminated). */
static int http_exchange(const void *req, size_t len, char *out, size_t cap) {
    int fd = tcp_connect();
    set_nonblock(fd);
    size_t sent = 0, got = 0;
    double deadline = now() + 15;
    int eof = 0;
    while (!eof && now() < deadline) {
        struct pollfd p = {fd, POLLIN | (sent < len ? POLLOUT : 0), 0};
        if (poll(&p, 1, 100) < 0 && errno != EINTR) break;
        if (p.revents & POLLOUT) {
            ssize_t w = send(fd, (const char *)req + sent, len - sent, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
            else if (w < 0 && errno != EAGAIN)
                sent = len; /* the server is done with us */
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = recv(fd, out + got, cap - 1 - got, 0);
            if (r > 0)
                got += (size_t)r;
            else if (r == 0 || errno != EAGAIN)
                eof = 1;
            if (got == cap - 1) eof = 1;
        }
    }
    close(fd);
    out[got] = 0;
    int status = -1;
    if (got >= 12 && !memcmp(out, "HTTP/1.1 ", 9)) status = atoi(out + 9);
    return status;
}

/* An answer must not carry what the attacker sent: no control bytes but
 * the CRLFs of the head and the final LF, and not the marker. */
static int answer_clean(const char *a, const char *marker) {
    if (marker && strstr(a, marker)) return 0;
    const char *body = strstr(a, "\r\n\r\n");
    if (!body) return 0;
    for (const char *p = body + 4; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c < 0x20 && !(c == '\n' && p[1] == 0)) || c == 0x7f) return 0;
    }
    return 1;
}

static int attack_http(void) {
    begin();
    size_t cap = 1 << 16;
    char *ans = malloc(cap);
    size_t big = (1u << 20) + 64;
    char *req = malloc(big + 256);
    if (!ans || !req) die("malloc");

    /* One header of 9 KiB: over the 8 KiB default head. */
    int n = sprintf(req, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ");
    memset(req + n, 'a', 9000);
    n += 9000;
    n += sprintf(req + n, "\r\n\r\n");
    int st = http_exchange(req, (size_t)n, ans, cap);
    check(st == 431, "oversized header (9 KiB value) -> %d (want 431)", st);
    check(answer_clean(ans, NULL), "  answer has no control bytes");

    /* 100 small headers: over the 64 allowed. */
    n = sprintf(req, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < 100; i++)
        n += sprintf(req + n, "X-H%d: %d\r\n", i, i);
    n += sprintf(req + n, "\r\n");
    st = http_exchange(req, (size_t)n, ans, cap);
    check(st == 431, "too many headers (100) -> %d (want 431)", st);

    /* A request line of 1 MiB. */
    n = sprintf(req, "GET /");
    memset(req + n, 'x', 1u << 20);
    n += 1 << 20;
    n += sprintf(req + n, " HTTP/1.1\r\nHost: a\r\n\r\n");
    st = http_exchange(req, (size_t)n, ans, cap);
    check(st == 431, "request line of 1 MiB -> %d (want 431)", st);

    /* Not HTTP: binary noise, and a TLS ClientHello on the plain port. */
    uint32_t x = 2463534242u;
    for (int i = 0; i < 4096; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        req[i] = (char)x;
    }
    req[0] = 'G'; /* starts like a method, then garbage */
    st = http_exchange(req, 4096, ans, cap);
    check(st == 400, "binary garbage -> %d (want 400)", st);
    check(answer_clean(ans, NULL), "  answer has no control bytes");
    static const uint8_t hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01,
                                    0x00, 0x01, 0xfc, 0x03, 0x03};
    st = http_exchange(hello, sizeof hello, ans, cap);
    check(st == 400, "TLS ClientHello on the plain port -> %d (want 400)", st);

    /* Attacker bytes in places a careless server would quote: a bad
     * method, path, version and header value. */
    const char *evil[] = {
        "G\x1b[31mET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /\x1b[31mEVIL HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: \x1b[31mEVIL\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Version: EVIL<script>\r\nSec-WebSocket-Key: " KEY "\r\n\r\n",
        "GET /EVIL%0d%0aSet-Cookie:x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: bad\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof evil / sizeof *evil; i++) {
        st = http_exchange(evil[i], strlen(evil[i]), ans, cap);
        int clean = answer_clean(ans, "EVIL") && !strstr(ans, "\x1b") && !strstr(ans, "<script>");
        check(st >= 400 && st < 500 && clean,
              "hostile request %zu -> %d, answer quotes nothing of it", i + 1, st);
    }
    free(ans);
    free(req);
    end_checks("http");
    return 0;
}

/* ---- slowloris ---------------------------------------------------------- */

static int attack_slowloris(int n, double timeout_s) {
    begin();
    int *fds = malloc(sizeof(int) * (size_t)n);
    double *closed_at = calloc((size_t)n, sizeof(double));
    if (!fds || !closed_at) die("malloc");
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)n + 64) {
        fprintf(stderr, "attacker: open-file limit %ld too low for %d connections\n",
                (long)rl.rlim_cur, n);
        return 1;
    }
    double t0 = now();
    for (int i = 0; i < n; i++) {
        fds[i] = tcp_connect();
        set_nonblock(fds[i]);
    }
    double opened = now() - t0;
    size_t pos = 0;
    int open_n = n, got_answer = 0, echoes = 0, echo_fail = 0;
    double worst_echo = 0;
    /* One byte a second to every connection, a normal client in between,
     * until every slow connection is gone or the deadline passes. */
    double deadline = t0 + timeout_s + 10;
    while (open_n > 0 && now() < deadline) {
        for (int i = 0; i < n; i++) {
            if (fds[i] < 0) continue;
            char c = REQUEST[pos % (sizeof REQUEST - 2)]; /* never the final LF */
            ssize_t w = send(fds[i], &c, 1, MSG_NOSIGNAL);
            char buf[64];
            ssize_t r = recv(fds[i], buf, sizeof buf, 0);
            if (r > 0) got_answer++;
            if (w < 0 || r == 0 || (r < 0 && errno != EAGAIN)) {
                close(fds[i]);
                fds[i] = -1;
                closed_at[i] = now() - t0;
                open_n--;
            }
        }
        pos++;
        double ms = echo_once();
        echoes++;
        if (ms < 0) echo_fail++;
        if (ms > worst_echo) worst_echo = ms;
        double next = t0 + (double)pos;
        while (now() < next)
            sleep_ms(20);
    }
    double first = 1e9, last = 0;
    for (int i = 0; i < n; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        else if (closed_at[i] < first)
            first = closed_at[i];
        if (closed_at[i] > last) last = closed_at[i];
    }
    printf("slowloris: %d connections opened in %.2f s, %zu bytes each, dropped from %.1f s to "
           "%.1f s\n",
           n, opened, pos, first, last);
    check(open_n == 0, "all %d slow connections dropped by the server (%d still open after %.0f s)",
          n, open_n, timeout_s + 10);
    /* Seen within a second (one byte a second), so a little early is fine. */
    check(first >= timeout_s - 1.5,
          "  none before the handshake timeout (first at %.1f s, timeout %.1f s)", first,
          timeout_s);
    check(got_answer == 0, "  none of them got an answer (%d did)", got_answer);
    check(echo_fail == 0,
          "a normal client echoed %d times during the attack (%d failed, worst %.0f ms)", echoes,
          echo_fail, worst_echo);
    free(fds);
    free(closed_at);
    end_checks("slowloris");
    return 0;
}

/* ---- frame-level attacks --------------------------------------------- */

static int attack_bigframe(void) {
    begin();
    ws *w = malloc(sizeof *w);
    if (!w) die("malloc");
    uint8_t f[16];
    /* 2^62: a legal length far over any limit. */
    if (ws_open(w)) return 1;
    size_t n = frame(f, 1, 2, NULL, 0, (uint64_t)1 << 62);
    send_all(w->fd, f, n);
    double t0 = now();
    int code = ws_expect_close(w, 5000);
    check(code == 1009, "frame header announcing 2^62 bytes -> close %d (want 1009) in %.1f ms",
          code, (now() - t0) * 1000);
    close(w->fd);
    /* 2^63 (the top bit, which RFC 6455 forbids). */
    if (ws_open(w)) return 1;
    n = frame(f, 1, 2, NULL, 0, (uint64_t)1 << 63);
    send_all(w->fd, f, n);
    code = ws_expect_close(w, 5000);
    check(code == 1002, "frame header with the 64-bit length's top bit set -> close %d (want 1002)",
          code);
    close(w->fd);
    /* 16 MiB + 1 in one frame over the default limit, header only. */
    if (ws_open(w)) return 1;
    n = frame(f, 1, 1, NULL, 0, (16u << 20) + 1);
    send_all(w->fd, f, n);
    code = ws_expect_close(w, 5000);
    check(code == 1009, "text frame header of the limit + 1 byte -> close %d (want 1009)", code);
    close(w->fd);
    free(w);
    end_checks("bigframe");
    return 0;
}

static int attack_conts(long limit) {
    begin();
    ws *w = malloc(sizeof *w);
    if (!w || ws_open(w)) return 1;
    /* A binary message opened with one byte, then 1-byte continuations,
     * batched 4096 frames to a write. */
    enum { BATCH = 4096 };
    uint8_t *batch = malloc(BATCH * 7);
    if (!batch) die("malloc");
    uint8_t f[16];
    size_t n = frame(f, 0, 2, "x", 1, 1);
    send_all(w->fd, f, n);
    long total = 1;
    size_t one = frame(batch, 0, 0, "y", 1, 1);
    for (int i = 1; i < BATCH; i++)
        memcpy(batch + i * one, batch, one);
    int code = -2;
    while (total <= limit + BATCH) {
        if (send_all(w->fd, batch, one * BATCH)) break; /* closed under us */
        total += BATCH;
        if (wait_readable(w->fd, 0)) break;
    }
    code = ws_expect_close(w, 10000);
    check(code == 1009,
          "1-byte continuation frames adding up past %ld bytes -> close %d (want 1009)", limit,
          code);
    check(total > limit, "  the server let the message grow to the limit first (%ld bytes sent)",
          total);
    close(w->fd);
    free(batch);
    free(w);
    end_checks("continuations");
    return 0;
}

static int attack_pingflood(long count) {
    begin();
    ws *w = malloc(sizeof *w);
    if (!w || ws_open(w)) return 1;
    set_nonblock(w->fd);
    long rss0 = proc_kb("VmRSS");
    uint8_t payload[125], f[140];
    long sent = 0, pongs = 0, bad = 0;
    size_t out_len = 0, out_off = 0;
    double deadline = now() + 60;
    while (pongs < count && now() < deadline) {
        if (out_off == out_len && sent < count) {
            memset(payload, (int)(sent & 0xff), sizeof payload);
            memcpy(payload, &sent, sizeof sent);
            out_len = frame(f, 1, 9, payload, sizeof payload, sizeof payload);
            out_off = 0;
        }
        struct pollfd p = {w->fd, POLLIN | (out_off < out_len ? POLLOUT : 0), 0};
        poll(&p, 1, 1000);
        if (p.revents & POLLOUT) {
            ssize_t k = send(w->fd, f + out_off, out_len - out_off, MSG_NOSIGNAL);
            if (k > 0) out_off += (size_t)k;
            if (out_off == out_len) sent++;
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = recv(w->fd, w->buf + w->len, sizeof w->buf - w->len, 0);
            if (r == 0 || (r < 0 && errno != EAGAIN)) break;
            if (r > 0) w->len += (size_t)r;
            size_t h, l;
            /* Parse what is complete (ws_next with no wait on a
             * non-blocking socket returns -2 when it runs out). */
            while (w->len >= 2 && ws_next(w, 0, &h, &l, NULL) == 10) {
                long idx;
                memcpy(&idx, w->buf + h, sizeof idx);
                if (l != 125 || idx != pongs) bad++;
                pongs++;
                ws_drop(w, h + l);
            }
        }
    }
    long rss1 = proc_kb("VmRSS");
    check(pongs == count && bad == 0,
          "ping flood: %ld pings, %ld pongs in order with their payload", sent, pongs);
    if (server_pid)
        check(rss1 - rss0 <= rss_slack_kb,
              "  server RSS flat: %ld KiB before, %ld KiB after (bound +%ld)", rss0, rss1,
              rss_slack_kb);
    close(w->fd);
    free(w);
    end_checks("ping flood");
    return 0;
}

static int attack_noread(double secs) {
    begin();
    ws *w = malloc(sizeof *w);
    next_rcvbuf = 4096;
    if (!w || ws_open(w)) return 1;
    next_rcvbuf = 0;
    set_nonblock(w->fd);
    enum { MSG = 65536 };
    uint8_t *f = malloc(MSG + 14), *payload = calloc(1, MSG);
    if (!f || !payload) die("malloc");
    size_t flen = frame(f, 1, 2, payload, MSG, MSG), off = 0;
    long long sent = 0;
    double t0 = now(), blocked_since = 0;
    int echoes = 0, echo_fail = 0;
    long peak = 0;
    while (now() - t0 < secs) {
        ssize_t k = send(w->fd, f + off, flen - off, MSG_NOSIGNAL);
        if (k > 0) {
            sent += k;
            off = (off + (size_t)k) % flen;
            blocked_since = 0;
            continue;
        }
        if (k < 0 && errno != EAGAIN) break;
        if (!blocked_since) blocked_since = now();
        /* While it is stuck, others are served. */
        double ms = echo_once();
        echoes++;
        if (ms < 0) echo_fail++;
        long rss = proc_kb("VmRSS");
        if (rss > peak) peak = rss;
        sleep_ms(100);
    }
    printf("noread: sent %lld bytes of echo requests without reading; blocked for the last %.1f s;"
           " server RSS peak %ld KiB\n",
           sent, blocked_since ? now() - blocked_since : 0.0, peak);
    check(blocked_since > 0, "the server stopped reading a client that never reads");
    check(sent < 64ll << 20, "  it took at most 64 MiB before pushing back (%lld bytes)", sent);
    check(echoes > 0 && echo_fail == 0, "  other clients echoed meanwhile (%d times, %d failed)",
          echoes, echo_fail);
    reset_close(w->fd);
    free(f);
    free(payload);
    free(w);
    end_checks("never reads");
    return 0;
}

static int attack_slowconsumer(long maxbuf) {
    begin();
    ws *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    next_rcvbuf = 4096;
    if (!a || !b || ws_open(a)) return 1;
    next_rcvbuf = 0;
    if (ws_open(b)) return 1;
    /* b floods the broadcast and reads its own copies; a never reads. */
    enum { MSG = 65536 };
    uint8_t *payload = malloc(MSG);
    if (!payload) die("malloc");
    memset(payload, 'z', MSG);
    /* Past what a's queue and the kernel's socket buffers hold (the
     * server's send buffer alone may grow to 4 MiB on loopback), and
     * quickly, since the server drops a's transport 5 s (close_timeout)
     * after its close frame. */
    long target = maxbuf * 2 + (10 << 20);
    long sent = 0, got = 0;
    while (sent < target) {
        if (ws_send(b, 1, 2, payload, MSG)) break;
        sent += MSG;
        size_t h, l;
        int op = ws_next(b, 10000, &h, &l, NULL);
        if (op != 2) break;
        got += (long)l;
        ws_drop(b, h + l);
    }
    check(got == sent, "broadcast flood: %ld bytes sent, %ld came back to the sender", sent, got);
    /* Now a reads: its queue was cut at the policy, then the close. */
    long data = 0;
    int code = -2;
    for (;;) {
        size_t h, l;
        int op = ws_next(a, 10000, &h, &l, NULL);
        if (op < 0) {
            code = op;
            break;
        }
        if (op == 8) {
            code = l >= 2 ? (a->buf[h] << 8) | a->buf[h + 1] : 1005;
            break;
        }
        data += (long)l;
        ws_drop(a, h + l);
    }
    check(code == 1008, "a client that never reads gets close %d (want 1008 slow consumer)", code);
    check(data < sent, "  after part of the flood only: %ld of %ld bytes (the rest was refused)",
          data, sent);
    close(a->fd);
    ws_close(b);
    free(payload);
    free(a);
    free(b);
    end_checks("slow consumer");
    return 0;
}

/* ---- invalid UTF-8 -------------------------------------------------------- */

static int attack_utf8(void) {
    begin();
    /* 3 fragments of valid multibyte text; each position in turn gets a
     * byte that is invalid wherever it stands (0xFF), sent up to the
     * fragment that holds it, without FIN unless it is the last: the
     * server must fail it then, not at the end of the message. */
    const char *text = "h\xc3\xa9llo w\xc3\xb6rld \xe2\x82\xac"
                       "uro \xf0\x9d\x84\x9e!";
    size_t len = strlen(text), cut1 = len / 3, cut2 = 2 * len / 3;
    int ok = 0, bad = 0;
    ws *w = malloc(sizeof *w);
    if (!w) die("malloc");
    for (size_t pos = 0; pos < len; pos++) {
        uint8_t msg[64];
        memcpy(msg, text, len);
        msg[pos] = 0xff;
        if (ws_open(w)) return 1;
        size_t cuts[4] = {0, cut1, cut2, len};
        int code = -3;
        for (int k = 0; k < 3; k++) {
            int fin = k == 2;
            ws_send(w, fin, k == 0 ? 1 : 0, msg + cuts[k], cuts[k + 1] - cuts[k]);
            if (pos < cuts[k + 1]) break;
        }
        code = ws_expect_close(w, 5000);
        if (code == 1007)
            ok++;
        else {
            bad++;
            printf("  position %zu: close %d\n", pos, code);
        }
        close(w->fd);
    }
    check(bad == 0, "invalid UTF-8 at each of %zu positions of a fragmented text -> 1007 (%d ok)",
          len, ok);
    /* A message that ends inside a code point. */
    if (ws_open(w)) return 1;
    ws_send(w, 0, 1, "ab\xe2", 3);
    ws_send(w, 1, 0, "\x82", 1);
    int code = ws_expect_close(w, 5000);
    check(code == 1007, "text ending inside a code point -> close %d (want 1007)", code);
    close(w->fd);
    /* A valid one still echoes whole. */
    if (ws_open(w)) return 1;
    ws_send(w, 0, 1, text, cut1);
    ws_send(w, 0, 0, text + cut1, cut2 - cut1);
    ws_send(w, 1, 0, text + cut2, len - cut2);
    size_t h, l;
    int op = ws_next(w, 5000, &h, &l, NULL);
    check(op == 1 && l == len && !memcmp(w->buf + h, text, len),
          "the same message valid: echoed whole");
    ws_drop(w, h + l);
    ws_close(w);
    free(w);
    end_checks("utf8");
    return 0;
}

/* ---- resets and half-closed sockets ----------------------------------- */

static int attack_resets(int rounds) {
    begin();
    ws *w = malloc(sizeof *w);
    if (!w) die("malloc");
    uint8_t f[64];
    for (int i = 0; i < rounds; i++) {
        /* RST in the middle of a frame: header of 1000 bytes, 10 sent. */
        if (ws_open(w)) return 1;
        size_t n = frame(f, 1, 2, "0123456789", 10, 1000);
        send_all(w->fd, f, n);
        reset_close(w->fd);
        /* RST in the middle of the handshake. */
        int fd = tcp_connect();
        send_all(fd, REQUEST, 40);
        reset_close(fd);
        /* RST right after connecting. */
        reset_close(tcp_connect());
    }
    check(1, "%d resets mid-frame, %d mid-handshake, %d right after connect", rounds, rounds,
          rounds);

    /* Half-closed: the request, then our FIN before the end of the head.
     * The server drops it rather than wait for the rest. */
    int fd = tcp_connect();
    send_all(fd, REQUEST, 40);
    shutdown(fd, SHUT_WR);
    char buf[256];
    ssize_t r = wait_readable(fd, 5000) ? recv(fd, buf, sizeof buf, 0) : -2;
    check(r == 0 || r == -1, "half-closed in the handshake: the server closes too (read %zd)", r);
    close(fd);

    /* Half-closed after a message: the server sees EOF without a close
     * frame (1006 for the application) and closes its side. */
    if (ws_open(w)) return 1;
    ws_send(w, 1, 1, "bye", 3);
    shutdown(w->fd, SHUT_WR);
    int code = ws_expect_close(w, 5000);
    check(code == -1, "half-closed after a message: the server closes without waiting (%d)", code);
    close(w->fd);

    /* Half-closed after a whole request that a plain HTTP answer follows:
     * the answer still comes (many HTTP clients do this). */
    fd = tcp_connect();
    const char *hz = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
    send_all(fd, hz, strlen(hz));
    shutdown(fd, SHUT_WR);
    size_t got = 0;
    while (got < sizeof buf - 1 && wait_readable(fd, 5000)) {
        r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (r <= 0) break;
        got += (size_t)r;
    }
    buf[got] = 0;
    check(!strncmp(buf, "HTTP/1.1 200", 12), "half-closed after a whole request: answered (%.12s)",
          buf);
    close(fd);
    free(w);
    end_checks("resets");
    return 0;
}

/* ---- churn -------------------------------------------------------------- */

static int attack_churn(long cycles) {
    begin();
    ws *w = malloc(sizeof *w);
    if (!w) die("malloc");
    /* Warm up, so that what is paged in once is not counted. */
    long warm = cycles / 20 < 1000 ? cycles / 20 : 1000;
    for (long i = 0; i < warm; i++) {
        if (ws_open(w) || !ws_close(w)) {
            check(0, "churn warm-up cycle %ld", i);
            return 1;
        }
    }
    sleep_ms(200);
    long rss0 = proc_kb("VmRSS");
    double t0 = now();
    long ok = 0;
    for (long i = 0; i < cycles; i++) {
        if (ws_open(w) || !ws_close(w)) {
            printf("  cycle %ld failed\n", i);
            break;
        }
        ok++;
    }
    double dt = now() - t0;
    sleep_ms(300);
    long rss1 = proc_kb("VmRSS");
    printf("churn: %ld connect/handshake/close cycles in %.1f s (%.0f/s)\n", ok, dt, ok / dt);
    check(ok == cycles, "all %ld cycles completed (%ld)", cycles, ok);
    if (server_pid) {
        check(rss1 - rss0 <= rss_slack_kb,
              "  server RSS %ld KiB before, %ld KiB after (+%ld, bound %ld)", rss0, rss1,
              rss1 - rss0, rss_slack_kb);
    }
    free(w);
    end_checks("churn");
    return 0;
}

/* ---- decompression bomb ------------------------------------------------ */

/* MB MiB of zeros as a permessage-deflate payload (raw DEFLATE, sync flush,
 * the 00 00 ff ff tail removed). */
static uint8_t *bomb_payload(long mb, size_t *out_len) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) != Z_OK) die("deflateInit2");
    size_t cap = (size_t)mb * 1200 + 4096, have = 0;
    uint8_t *out = malloc(cap), *zeros = calloc(1, 1 << 20);
    if (!out || !zeros) die("malloc");
    for (long i = 0; i < mb; i++) {
        z.next_in = zeros;
        z.avail_in = 1 << 20;
        do {
            z.next_out = out + have;
            z.avail_out = (uInt)(cap - have);
            deflate(&z, i + 1 == mb ? Z_SYNC_FLUSH : Z_NO_FLUSH);
            have = cap - z.avail_out;
        } while (z.avail_in || (i + 1 == mb && z.avail_out == 0));
    }
    deflateEnd(&z);
    free(zeros);
    if (have < 4 || memcmp(out + have - 4, "\x00\x00\xff\xff", 4)) die("deflate tail");
    *out_len = have - 4;
    return out;
}

static int attack_bomb(long mb) {
    begin();
    ws *w = malloc(sizeof *w);
    if (!w) die("malloc");
    next_headers = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
    next_expect = "permessage-deflate";
    size_t blen;
    uint8_t *bomb = bomb_payload(mb, &blen);
    uint8_t *f = malloc(blen + 14);
    if (!f) die("malloc");
    printf("bomb: %ld MiB of zeros compressed to %zu bytes (%.0f:1)\n", mb, blen,
           (double)mb * 1048576 / (double)blen);
    long rss0 = proc_kb("VmRSS");
    static const int ops[2] = {2, 1};
    static const char *names[2] = {"binary", "text"};
    for (int k = 0; k < 2; k++) {
        /* Whole, in one frame with RSV1. */
        if (ws_open(w)) return 1;
        size_t n = frame(f, 1, 0x40 | ops[k], bomb, blen, blen);
        send_all(w->fd, f, n);
        int code = ws_expect_close(w, 20000);
        check(code == 1009, "%s bomb in one frame -> close %d (want 1009)", names[k], code);
        close(w->fd);
        /* Fragmented: the compressed bytes over 64 frames. */
        if (ws_open(w)) return 1;
        size_t step = blen / 64 + 1;
        for (size_t off = 0; off < blen; off += step) {
            size_t len = blen - off < step ? blen - off : step;
            int first = off == 0, last = off + len == blen;
            n = frame(f, last, first ? 0x40 | ops[k] : 0, bomb + off, len, len);
            if (send_all(w->fd, f, n)) break; /* closed under us */
        }
        code = ws_expect_close(w, 20000);
        check(code == 1009, "%s bomb in 64 fragments -> close %d (want 1009)", names[k], code);
        close(w->fd);
    }
    long hwm = proc_kb("VmHWM");
    if (server_pid)
        check(
            hwm - rss0 < mb * 1024 / 4,
            "  the server inflated none of it: peak RSS %ld KiB, %+ld KiB over the %ld KiB before",
            hwm, hwm - rss0, rss0);

    /* Corrupt compressed data: invalid for text (1007), framing for binary. */
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x12, 0x34};
    for (int k = 0; k < 2; k++) {
        if (ws_open(w)) return 1;
        size_t n = frame(f, 1, 0x40 | ops[k], junk, sizeof junk, sizeof junk);
        send_all(w->fd, f, n);
        int code = ws_expect_close(w, 5000);
        int want = ops[k] == 1 ? 1007 : 1002;
        check(code == want, "corrupt compressed %s -> close %d (want %d)", names[k], code, want);
        close(w->fd);
    }
    /* RSV1 on a continuation frame: 1002. */
    if (ws_open(w)) return 1;
    size_t n = frame(f, 0, 0x40 | 2, "", 0, 0);
    n += frame(f + n, 1, 0x40, "", 0, 0);
    send_all(w->fd, f, n);
    int code = ws_expect_close(w, 5000);
    check(code == 1002, "RSV1 on a continuation frame -> close %d (want 1002)", code);
    close(w->fd);
    /* And a real compressed message still echoes. */
    if (ws_open(w)) return 1;
    static const uint8_t hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}; /* "Hello" */
    n = frame(f, 1, 0x40 | 1, hello, sizeof hello, sizeof hello);
    send_all(w->fd, f, n);
    size_t h, l;
    int op = ws_next(w, 5000, &h, &l, NULL);
    /* Short answers go uncompressed (under the server's threshold). */
    check(op == 1 && l == 5 && !memcmp(w->buf + h, "Hello", 5), "compressed \"Hello\" echoed");
    if (op >= 0) ws_drop(w, h + l);
    ws_close(w);
    next_headers = next_expect = NULL;
    free(f);
    free(bomb);
    free(w);
    end_checks("bomb");
    return 0;
}

/* ---- unfinished messages ---------------------------------------------- */

#define PMD_OFFER "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"

/* A fragmented compressed message of MB MiB of zeros: the compressed bytes
 * in one frame, then an empty final continuation. Must come back whole
 * (the echo is compressed too: inflated here and counted). */
static int fragmented_echo(ws *w, long mb, const uint8_t *z, size_t zlen) {
    if (ws_send(w, 0, 0x40 | 2, z, zlen) || ws_send(w, 1, 0, "", 0)) return 0;
    size_t h, l;
    int fin = 0;
    int op = ws_next(w, 20000, &h, &l, &fin);
    if (op != 2 || !fin) return 0;
    int rsv1 = (w->buf[0] & 0x40) != 0;
    size_t got = l;
    if (rsv1) {
        z_stream in;
        memset(&in, 0, sizeof in);
        if (inflateInit2(&in, -15) != Z_OK) die("inflateInit2");
        static uint8_t out[1 << 16];
        static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
        got = 0;
        for (int part = 0; part < 2; part++) {
            in.next_in = part ? (uint8_t *)tail : w->buf + h;
            in.avail_in = part ? 4 : (uInt)l;
            do {
                in.next_out = out;
                in.avail_out = sizeof out;
                int zr = inflate(&in, Z_SYNC_FLUSH);
                if (zr != Z_OK && zr != Z_BUF_ERROR) break;
                got += sizeof out - in.avail_out;
            } while (in.avail_out == 0);
        }
        inflateEnd(&in);
    }
    ws_drop(w, h + l);
    return got == (size_t)mb << 20;
}

static int attack_partial(int n, long mb, int keep, long grow_kb) {
    begin();
    next_headers = PMD_OFFER;
    next_expect = "permessage-deflate";
    size_t zlen;
    uint8_t *z = bomb_payload(mb, &zlen);
    ws *w = calloc((size_t)n, sizeof *w);
    if (!w) die("calloc");
    long rss0 = proc_kb("VmRSS");
    printf("partial: %d connections, each the start of a %ld MiB message in %zu bytes\n", n, mb,
           zlen);
    for (int i = 0; i < n; i++) {
        if (ws_open(&w[i])) return 1;
        (void)ws_send(&w[i], 0, 0x40 | 2, z, zlen); /* may find it closed already */
        sleep_ms(20); /* each read in turn, as clients arriving one by one */
    }
    long hwm = proc_kb("VmHWM");
    int open = 0, closed = 0, other = 0;
    for (int i = 0; i < n; i++) {
        int code = ws_expect_close(&w[i], 300);
        if (code == -2)
            open++;
        else if (code == 1009)
            closed++;
        else
            other++;
    }
    check(open <= keep && open >= 1, "%d connections still open (want 1..%d)", open, keep);
    check(closed == n - open && !other, "%d closed with 1009 (want %d; %d otherwise)", closed,
          n - open, other);
    if (server_pid)
        check(hwm - rss0 < grow_kb,
              "the server's peak RSS grew by %ld KiB (%ld -> %ld), under %ld KiB (%d x %ld MiB "
              "sent)",
              hwm - rss0, rss0, hwm, grow_kb, n, mb);
    for (int i = 0; i < n; i++)
        close(w[i].fd);
    /* What the closed ones held went back to the budget: a fragmented
     * compressed message of the same size passes, over and over. */
    int ok = 0;
    for (int k = 0; k < 3; k++) {
        if (ws_open(&w[0])) return 1;
        ok += fragmented_echo(&w[0], mb, z, zlen);
        ws_close(&w[0]);
    }
    check(ok == 3, "%d of 3 fragmented compressed %ld MiB messages echoed afterwards", ok, mb);
    next_headers = next_expect = NULL;
    free(z);
    free(w);
    end_checks("partial");
    return 0;
}

static int attack_partialtime(double secs) {
    begin();
    next_headers = PMD_OFFER;
    next_expect = "permessage-deflate";
    ws *w = malloc(sizeof *w);
    if (!w) die("malloc");
    /* A byte of an uncompressed fragmented message every 100 ms: never
     * idle, never done. */
    if (ws_open(w)) return 1;
    double t0 = now();
    int code = -2;
    if (ws_send(w, 0, 2, "EVIL", 4) == 0) {
        while (code == -2 && now() - t0 < secs + 5) {
            if (ws_send(w, 0, 0, "x", 1)) {
                code = ws_expect_close(w, 1000);
                break;
            }
            code = ws_expect_close(w, 100);
        }
    }
    double took = now() - t0;
    check(code == 1008, "a message trickled for %.1f s -> close %d (want 1008)", took, code);
    check(took >= secs - 0.05 && took < secs + 2.5, "closed %.2f s after it began (limit %.1f s)",
          took, secs);
    close(w->fd);
    /* A message finished in time is untouched. */
    if (ws_open(w)) return 1;
    int ok = ws_send(w, 0, 1, "ha", 2) == 0;
    sleep_ms((int)(secs * 500));
    ok = ok && ws_send(w, 1, 0, "lf", 2) == 0;
    size_t h, l;
    int op = ws_next(w, 5000, &h, &l, NULL);
    check(ok && op == 1 && l == 4 && !memcmp(w->buf + h, "half", 4),
          "a message finished in half the time echoed");
    if (op >= 0) ws_drop(w, h + l);
    ws_close(w);
    next_headers = next_expect = NULL;
    free(w);
    end_checks("partialtime");
    return 0;
}

/* ---- main ------------------------------------------------------------------- */

static int usage(void) {
    fprintf(stderr,
            "usage: attacker [--pid PID] [--rss-max KB] ATTACK PORT [ARGS] (see the source)\n");
    return 2;
}

int main(int argc, char **argv) {
    int i = 1;
    for (; i < argc && !strncmp(argv[i], "--", 2); i += 2) {
        if (i + 1 >= argc) return usage();
        if (!strcmp(argv[i], "--pid"))
            server_pid = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rss-max"))
            rss_max_kb = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--rss-slack"))
            rss_slack_kb = atol(argv[i + 1]);
        else
            return usage();
    }
    if (argc - i < 2) return usage();
    const char *what = argv[i];
    port = atoi(argv[i + 1]);
    char **args = argv + i + 2;
    int nargs = argc - i - 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc;
    if (!strcmp(what, "echo")) {
        double ms = echo_once();
        check(ms >= 0, "echo in %.1f ms", ms);
        rc = 0;
    } else if (!strcmp(what, "slowloris") && nargs == 2) {
        rc = attack_slowloris(atoi(args[0]), atof(args[1]));
    } else if (!strcmp(what, "http")) {
        rc = attack_http();
    } else if (!strcmp(what, "bigframe")) {
        rc = attack_bigframe();
    } else if (!strcmp(what, "conts") && nargs == 1) {
        rc = attack_conts(atol(args[0]));
    } else if (!strcmp(what, "pingflood") && nargs == 1) {
        rc = attack_pingflood(atol(args[0]));
    } else if (!strcmp(what, "noread") && nargs == 1) {
        rc = attack_noread(atof(args[0]));
    } else if (!strcmp(what, "slowconsumer") && nargs == 1) {
        rc = attack_slowconsumer(atol(args[0]));
    } else if (!strcmp(what, "utf8")) {
        rc = attack_utf8();
    } else if (!strcmp(what, "resets") && nargs == 1) {
        rc = attack_resets(atoi(args[0]));
    } else if (!strcmp(what, "bomb") && nargs == 1) {
        rc = attack_bomb(atol(args[0]));
    } else if (!strcmp(what, "partial") && nargs == 4) {
        rc = attack_partial(atoi(args[0]), atol(args[1]), atoi(args[2]), atol(args[3]));
    } else if (!strcmp(what, "partialtime") && nargs == 1) {
        rc = attack_partialtime(atof(args[0]));
    } else if (!strcmp(what, "churn") && nargs == 1) {
        rc = attack_churn(atol(args[0]));
    } else {
        return usage();
    }
    return rc || failures ? 1 : 0;
}

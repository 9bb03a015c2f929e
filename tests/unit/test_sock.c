/* Tests for the transport (src/io/sock.c, duplex/sock.h): a loopback TCP
 * pair, plain and under TLS with a certificate made here. SIGPIPE is left
 * at its default on purpose: a write that raised it would kill the test. */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <duplex/loop.h>
#include <duplex/sock.h>

#include "test.h"
#include "tls_test.h"

static char dir[64];
static char cert_path[128], key_path[128];

/* Waits until `fd` is ready for `events` (or 50 ms). */
static void wait_fd(int fd, short events) {
    struct pollfd p = {.fd = fd, .events = events};
    poll(&p, 1, 50);
}

/* Reads exactly `len` bytes, waiting as the transport asks: the count, or
 * the first result that is neither bytes nor DX_EBUSY (0 at EOF). */
static int64_t read_all(int fd, dx_tls *tls, void *buf, size_t len) {
    size_t got = 0;
    uint64_t deadline = dx_t_now_ms() + 5000;
    while (got < len && dx_t_now_ms() < deadline) {
        unsigned want = 0;
        int64_t n = dx_sock_read(fd, tls, (char *)buf + got, len - got, &want);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n != DX_EBUSY) return n;
        wait_fd(fd, (want & DX_IO_WRITE) ? POLLOUT : POLLIN);
    }
    return (int64_t)got;
}

/* The next result of a read that is not DX_EBUSY (5 s at most). */
static int64_t read_next(int fd, dx_tls *tls, void *buf, size_t cap) {
    int64_t n = DX_EBUSY;
    uint64_t deadline = dx_t_now_ms() + 5000;
    while (n == DX_EBUSY && dx_t_now_ms() < deadline) {
        n = dx_sock_read(fd, tls, buf, cap, NULL);
        if (n == DX_EBUSY) wait_fd(fd, POLLIN);
    }
    return n;
}

/* ---- plain sockets ---- */

static void test_plain_round_trip(void) {
    int c, s;
    REQUIRE(dx_t_tcp_pair(&c, &s, 0));
    char buf[64] = {0};
    /* Nothing yet: would block, and *want is left alone (a plain socket
     * waits in the call's own direction). */
    unsigned want = 0;
    CHECK_EQ_INT(dx_sock_read(s, NULL, buf, sizeof buf, &want), DX_EBUSY);
    CHECK_EQ_INT(want, 0);

    struct iovec iov[3] = {{"ab", 2}, {"", 0}, {"cde", 3}};
    CHECK_EQ_INT(dx_sock_writev(c, NULL, iov, 3, &want), 5);
    CHECK_EQ_INT(read_all(s, NULL, buf, 5), 5);
    CHECK(memcmp(buf, "abcde", 5) == 0);
    struct iovec one = {"back", 4};
    CHECK_EQ_INT(dx_sock_writev(s, NULL, &one, 1, NULL), 4);
    CHECK_EQ_INT(read_all(c, NULL, buf, 4), 4);
    CHECK(memcmp(buf, "back", 4) == 0);
    CHECK_EQ_INT(want, 0);

    /* A shutdown ends the write half only: the peer reads EOF, and can
     * still answer. */
    dx_sock_shutdown(c, NULL);
    CHECK_EQ_INT(read_next(s, NULL, buf, sizeof buf), 0);
    CHECK_EQ_INT(dx_sock_writev(s, NULL, &one, 1, NULL), 4);
    CHECK_EQ_INT(read_all(c, NULL, buf, 4), 4);
    close(c);
    close(s);
}

/* Writes until the socket is full: DX_EBUSY, and every byte taken before
 * arrives once, in order. */
static void test_plain_full(void) {
    int c, s;
    REQUIRE(dx_t_tcp_pair(&c, &s, 16384));
    int small = 16384;
    setsockopt(c, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    static uint8_t chunk[65536], in[65536];
    size_t sent = 0;
    int64_t w = 0;
    for (int i = 0; i < 4096; i++) { /* 256 MiB: far more than any buffer */
        for (size_t k = 0; k < sizeof chunk; k++)
            chunk[k] = (uint8_t)((sent + k) * 7);
        struct iovec iov = {chunk, sizeof chunk};
        w = dx_sock_writev(c, NULL, &iov, 1, NULL);
        if (w < 0) break;
        sent += (size_t)w;
    }
    CHECK_EQ_INT(w, DX_EBUSY);
    CHECK(sent > 0);
    size_t got = 0;
    int bad = 0;
    while (got < sent) {
        size_t want = sent - got < sizeof in ? sent - got : sizeof in;
        int64_t n = read_all(s, NULL, in, want);
        if (n <= 0) break;
        for (int64_t k = 0; k < n; k++)
            bad |= in[k] != (uint8_t)((got + (size_t)k) * 7);
        got += (size_t)n;
    }
    CHECK_EQ_INT(got, sent);
    CHECK(!bad);
    /* Emptied: the writer is no longer blocked. */
    struct iovec iov = {"x", 1};
    CHECK_EQ_INT(dx_sock_writev(c, NULL, &iov, 1, NULL), 1);
    close(c);
    close(s);
}

/* A write to a peer that closed: DX_EIO with errno EPIPE or ECONNRESET,
 * never SIGPIPE, and dx_sock_why names the errno. */
static void test_plain_closed_peer(void) {
    int c, s;
    REQUIRE(dx_t_tcp_pair(&c, &s, 0));
    close(s);
    struct iovec iov = {"hello", 5};
    int64_t w = 0;
    int e = 0;
    uint64_t deadline = dx_t_now_ms() + 5000;
    /* The first write may still be taken; the reset it draws fails the
     * next one. */
    while (w >= 0 && dx_t_now_ms() < deadline) {
        w = dx_sock_writev(c, NULL, &iov, 1, NULL);
        e = errno;
        if (w >= 0) wait_fd(c, POLLIN);
    }
    CHECK_EQ_INT(w, DX_EIO);
    CHECK(e == EPIPE || e == ECONNRESET);
    errno = e;
    CHECK(strcmp(dx_sock_why(NULL, w), strerror(e)) == 0);
    close(c);
}

static void test_plain_why(void) {
    char buf[8];
    /* A bad descriptor is a socket error like any other. */
    int64_t n = dx_sock_read(-1, NULL, buf, sizeof buf, NULL);
    CHECK_EQ_INT(n, DX_EIO);
    CHECK_EQ_INT(errno, EBADF);
    CHECK(strcmp(dx_sock_why(NULL, n), strerror(EBADF)) == 0);
    errno = ECONNRESET;
    CHECK(strcmp(dx_sock_why(NULL, DX_EIO), strerror(ECONNRESET)) == 0);
    /* No errno to tell: the error's own name. */
    errno = 0;
    CHECK(strcmp(dx_sock_why(NULL, DX_EIO), dx_strerror(DX_EIO)) == 0);
    errno = ECONNRESET; /* read for DX_EIO only */
    CHECK(strcmp(dx_sock_why(NULL, DX_EBUSY), dx_strerror(DX_EBUSY)) == 0);
    CHECK(strcmp(dx_sock_why(NULL, DX_ETLS), dx_strerror(DX_ETLS)) == 0);
}

/* ---- TLS ---- */

typedef struct tls_pair {
    int cfd, sfd;
    dx_tls *c, *s;
} tls_pair;

/* A loopback pair with both handshakes done (dx_tls_handshake). */
static int tls_open(dx_tls_ctx *sctx, dx_tls_ctx *cctx, tls_pair *p) {
    memset(p, 0, sizeof *p);
    p->cfd = p->sfd = -1;
    if (!dx_t_tcp_pair(&p->cfd, &p->sfd, 0)) return 0;
    p->s = dx_tls_new(sctx, p->sfd, 1, NULL);
    p->c = dx_tls_new(cctx, p->cfd, 0, "localhost");
    if (!p->s || !p->c) return 0;
    int cdone = 0, sdone = 0;
    uint64_t deadline = dx_t_now_ms() + 5000;
    while (!(cdone && sdone) && dx_t_now_ms() < deadline) {
        unsigned cw = 0, sw = 0;
        const char *why = NULL;
        if (!cdone) cdone = dx_tls_handshake(p->c, &cw, &why);
        if (!sdone) sdone = dx_tls_handshake(p->s, &sw, &why);
        if (cdone < 0 || sdone < 0) {
            fprintf(stderr, "handshake: %s\n", why ? why : "?");
            return 0;
        }
        struct pollfd fds[2] = {
            {.fd = p->cfd, .events = (short)((cw & DX_IO_WRITE) ? POLLOUT : POLLIN)},
            {.fd = p->sfd, .events = (short)((sw & DX_IO_WRITE) ? POLLOUT : POLLIN)}};
        if (!(cdone && sdone)) poll(fds, 2, 50);
    }
    return cdone == 1 && sdone == 1;
}

static void tls_close(tls_pair *p) {
    dx_tls_free(p->c);
    dx_tls_free(p->s);
    if (p->cfd >= 0) close(p->cfd);
    if (p->sfd >= 0) close(p->sfd);
}

static void test_tls_round_trip(void) {
    const char *why = NULL;
    dx_tls_ctx *sctx = dx_tls_server_ctx(cert_path, key_path, &why);
    dx_tls_ctx *cctx = dx_tls_client_ctx(0, cert_path, &why);
    REQUIRE(sctx && cctx);
    tls_pair p;
    int ok = tls_open(sctx, cctx, &p);
    CHECK(ok);
    if (ok) {
        char buf[64] = {0};
        /* Nothing yet: would block, and TLS says it waits to read; what
         * the caller had in *want stays (or'ed). */
        unsigned want = DX_IO_WRITE;
        CHECK_EQ_INT(dx_sock_read(p.sfd, p.s, buf, sizeof buf, &want), DX_EBUSY);
        CHECK_EQ_INT(want, DX_IO_READ | DX_IO_WRITE);
        want = 0;
        CHECK_EQ_INT(dx_sock_read(p.sfd, p.s, buf, sizeof buf, &want), DX_EBUSY);
        CHECK_EQ_INT(want, DX_IO_READ);
        CHECK_EQ_INT(dx_sock_read(p.sfd, p.s, buf, sizeof buf, NULL), DX_EBUSY);

        struct iovec iov[3] = {{"\x81\x05", 2}, {"Hello", 5}, {", TLS", 5}};
        CHECK_EQ_INT(dx_sock_writev(p.cfd, p.c, iov, 3, NULL), 12);
        CHECK_EQ_INT(read_all(p.sfd, p.s, buf, 12), 12);
        CHECK(memcmp(buf, "\x81\x05Hello, TLS", 12) == 0);
        struct iovec back[2] = {{"pong", 4}, {"!", 1}};
        CHECK_EQ_INT(dx_sock_writev(p.sfd, p.s, back, 2, NULL), 5);
        CHECK_EQ_INT(read_all(p.cfd, p.c, buf, 5), 5);
        CHECK(memcmp(buf, "pong!", 5) == 0);

        /* close_notify: the peer reads 0. */
        dx_sock_shutdown(p.cfd, p.c);
        CHECK_EQ_INT(read_next(p.sfd, p.s, buf, sizeof buf), 0);
    }
    tls_close(&p);
    dx_tls_ctx_free(sctx);
    dx_tls_ctx_free(cctx);
}

/* Bytes that are no TLS record: DX_ETLS, and dx_sock_why gives TLS's own
 * reason rather than the error's name. */
static void test_tls_why(void) {
    const char *why = NULL;
    dx_tls_ctx *sctx = dx_tls_server_ctx(cert_path, key_path, &why);
    dx_tls_ctx *cctx = dx_tls_client_ctx(1, NULL, &why);
    REQUIRE(sctx && cctx);
    tls_pair p;
    int ok = tls_open(sctx, cctx, &p);
    CHECK(ok);
    if (ok) {
        /* An application-data record whose MAC cannot verify, past TLS. */
        static const char junk[] = "\x17\x03\x03\x00\x20xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
        CHECK_EQ_INT(dx_t_write_all(p.cfd, junk, sizeof junk - 1), 0);
        char buf[64];
        int64_t n = read_next(p.sfd, p.s, buf, sizeof buf);
        CHECK_EQ_INT(n, DX_ETLS);
        const char *w = dx_sock_why(p.s, n);
        fprintf(stderr, "  junk record: %s\n", w);
        CHECK(strncmp(w, "TLS", 3) == 0);
        CHECK(strcmp(w, dx_strerror(DX_ETLS)) != 0);
        CHECK(strcmp(w, dx_tls_why()) == 0);
        /* Without the session, the error's name only. */
        CHECK(strcmp(dx_sock_why(NULL, n), dx_strerror(DX_ETLS)) == 0);
    }
    tls_close(&p);
    dx_tls_ctx_free(sctx);
    dx_tls_ctx_free(cctx);
}

int main(void) {
    RUN(test_plain_round_trip);
    RUN(test_plain_full);
    RUN(test_plain_closed_peer);
    RUN(test_plain_why);

    snprintf(dir, sizeof dir, "/tmp/dx-sock-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(cert_path, sizeof cert_path, "%s/cert.pem", dir);
    snprintf(key_path, sizeof key_path, "%s/key.pem", dir);
    int made = dx_t_make_cert(cert_path, key_path);
    if (made) {
        RUN(test_tls_round_trip);
        RUN(test_tls_why);
    } else {
        fprintf(stderr, "could not make the test certificate\n");
    }
    unlink(cert_path);
    unlink(key_path);
    rmdir(dir);
    if (!made) return 1;
    return TEST_DONE();
}

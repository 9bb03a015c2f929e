/* Tests for the socket layer (src/io/net.c), on loopback only. SIGPIPE is
 * left at its default on purpose: a write to a closed peer must not raise
 * it. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/net.h"
#include "test.h"

static int wait_fd(int fd, short events, int ms) {
    struct pollfd p = {.fd = fd, .events = events};
    return poll(&p, 1, ms) == 1 ? p.revents : 0;
}

/* Opens a listener on host (port 0) and a connected pair through it. */
static int make_pair(const char *host, int *lfd_out, int *cfd, int *sfd, dx_addr *peer) {
    int lfd = dx__listen(host, 0, 16, 0);
    if (lfd < 0) return lfd;
    int port = dx__local_port(lfd);
    dx_addr addr;
    int rc = dx__resolve(host, port, &addr);
    if (rc) {
        close(lfd);
        return rc;
    }
    int c = dx__connect(&addr);
    if (c < 0) {
        close(lfd);
        return c;
    }
    wait_fd(lfd, POLLIN, 5000);
    int s = dx__accept(lfd, peer);
    wait_fd(c, POLLOUT, 5000);
    rc = dx__connect_result(c);
    if (s < 0 || rc) {
        close(lfd);
        close(c);
        if (s >= 0) close(s);
        return s < 0 ? s : rc;
    }
    *lfd_out = lfd;
    *cfd = c;
    *sfd = s;
    return 0;
}

static void test_listen_connect_accept(void) {
    int lfd = dx__listen("127.0.0.1", 0, 0, 0);
    REQUIRE(lfd >= 0);
    int port = dx__local_port(lfd);
    CHECK(port > 0 && port <= 65535);
    CHECK_EQ_INT(dx__accept(lfd, NULL), DX_EBUSY); /* nothing pending */

    dx_addr addr;
    CHECK_EQ_INT(dx__resolve("127.0.0.1", port, &addr), 0);
    int c = dx__connect(&addr);
    REQUIRE(c >= 0);
    CHECK(wait_fd(lfd, POLLIN, 5000) & POLLIN);
    dx_addr peer;
    int s = dx__accept(lfd, &peer);
    REQUIRE(s >= 0);
    CHECK(wait_fd(c, POLLOUT, 5000) & POLLOUT);
    CHECK_EQ_INT(dx__connect_result(c), 0);

    char str[64];
    dx__addr_str(&peer, str, sizeof str);
    char expect[64];
    snprintf(expect, sizeof expect, "127.0.0.1:%d", dx__local_port(c));
    CHECK(strcmp(str, expect) == 0);

    /* The accepted socket is non-blocking and close-on-exec. */
    CHECK(fcntl(s, F_GETFL) & O_NONBLOCK);
    CHECK(fcntl(s, F_GETFD) & FD_CLOEXEC);
    CHECK(fcntl(c, F_GETFL) & O_NONBLOCK);
    close(s);
    close(c);
    close(lfd);
}

static void test_read_writev_eof(void) {
    int lfd, c, s;
    dx_addr peer;
    REQUIRE(make_pair("127.0.0.1", &lfd, &c, &s, &peer) == 0);
    char buf[64];
    CHECK_EQ_INT(dx__read(s, buf, sizeof buf), DX_EBUSY);

    struct iovec iov[3] = {{"Hello, ", 7}, {"", 0}, {"world", 5}};
    CHECK_EQ_INT(dx__writev(c, iov, 3), 12);
    CHECK(wait_fd(s, POLLIN, 5000) & POLLIN);
    CHECK_EQ_INT(dx__read(s, buf, sizeof buf), 12);
    CHECK(memcmp(buf, "Hello, world", 12) == 0);

    /* Fill the socket until it would block: a short write, then EBUSY. */
    static char big[1 << 16];
    struct iovec bi = {big, sizeof big};
    int64_t total = 0, n;
    while ((n = dx__writev(s, &bi, 1)) > 0)
        total += n;
    CHECK_EQ_INT(n, DX_EBUSY);
    CHECK(total > 0);
    int64_t got = 0;
    while (got < total) {
        if (!(wait_fd(c, POLLIN, 5000) & POLLIN)) break;
        n = dx__read(c, big, sizeof big);
        if (n <= 0) break;
        got += n;
    }
    CHECK_EQ_INT(got, total);

    /* Orderly close: the reader sees 0. */
    close(c);
    CHECK(wait_fd(s, POLLIN, 5000) & POLLIN);
    CHECK_EQ_INT(dx__read(s, buf, sizeof buf), 0);
    /* Writing to the closed peer fails with DX_EIO (EPIPE or ECONNRESET),
     * without a SIGPIPE: the first write may still be accepted. */
    struct iovec one = {"x", 1};
    int64_t w = 0;
    for (int i = 0; i < 100 && w >= 0; i++) {
        w = dx__writev(s, &one, 1);
        if (w >= 0) usleep(1000);
    }
    CHECK_EQ_INT(w, DX_EIO);
    CHECK(errno == EPIPE || errno == ECONNRESET);
    close(s);
    close(lfd);
}

static void test_reset(void) {
    int lfd, c, s;
    dx_addr peer;
    REQUIRE(make_pair("127.0.0.1", &lfd, &c, &s, &peer) == 0);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    CHECK_EQ_INT(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(c); /* sends RST */
    char buf[16];
    CHECK(wait_fd(s, POLLIN, 5000) != 0);
    errno = 0;
    CHECK_EQ_INT(dx__read(s, buf, sizeof buf), DX_EIO);
    CHECK_EQ_INT(errno, ECONNRESET);
    close(s);
    close(lfd);
}

static void test_refused(void) {
    /* A port that was just free: listen, note it, close. */
    int lfd = dx__listen("127.0.0.1", 0, 1, 0);
    REQUIRE(lfd >= 0);
    int port = dx__local_port(lfd);
    close(lfd);
    dx_addr addr;
    CHECK_EQ_INT(dx__resolve("127.0.0.1", port, &addr), 0);
    int c = dx__connect(&addr);
    if (c == DX_ECONNREFUSED) return; /* refused at once: also right */
    REQUIRE(c >= 0);
    CHECK(wait_fd(c, POLLOUT, 5000) != 0);
    CHECK_EQ_INT(dx__connect_result(c), DX_ECONNREFUSED);
    close(c);
}

static void test_listen_errors(void) {
    CHECK_EQ_INT(dx__listen("127.0.0.1", 70000, 0, 0), DX_EADDR);
    CHECK_EQ_INT(dx__listen("127.0.0.1", -1, 0, 0), DX_EADDR);
    /* An address this host does not have. */
    CHECK_EQ_INT(dx__listen("192.0.2.1", 0, 0, 0), DX_EADDR);

    int a = dx__listen("127.0.0.1", 0, 0, 0);
    REQUIRE(a >= 0);
    int port = dx__local_port(a);
    errno = 0;
    CHECK_EQ_INT(dx__listen("127.0.0.1", port, 0, 0), DX_EADDRINUSE);
    CHECK_EQ_INT(errno, EADDRINUSE);
    close(a);

    /* SO_REUSEPORT: two listeners on one port. */
    a = dx__listen("127.0.0.1", 0, 0, 1);
    REQUIRE(a >= 0);
    port = dx__local_port(a);
    int b = dx__listen("127.0.0.1", port, 0, 1);
    CHECK(b >= 0);
    if (b >= 0) close(b);
    close(a);
    CHECK_EQ_INT(dx__local_port(-1), DX_EIO);
}

/* All addresses: IPv4 clients reach it and print as IPv4. */
static void test_listen_any(void) {
    int lfd = dx__listen(NULL, 0, 0, 0);
    REQUIRE(lfd >= 0);
    int port = dx__local_port(lfd);
    dx_addr addr;
    CHECK_EQ_INT(dx__resolve("127.0.0.1", port, &addr), 0);
    int c = dx__connect(&addr);
    REQUIRE(c >= 0);
    CHECK(wait_fd(lfd, POLLIN, 5000) & POLLIN);
    dx_addr peer;
    int s = dx__accept(lfd, &peer);
    CHECK(s >= 0);
    char str[64];
    dx__addr_str(&peer, str, sizeof str);
    CHECK(strncmp(str, "127.0.0.1:", 10) == 0);
    if (s >= 0) close(s);
    close(c);
    close(lfd);
    int l2 = dx__listen("", 0, 0, 0);
    CHECK(l2 >= 0);
    if (l2 >= 0) close(l2);
}

static void test_addr_str(void) {
    dx_addr a = {0};
    struct sockaddr_in *s4 = (struct sockaddr_in *)&a.ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons(5678);
    inet_pton(AF_INET, "1.2.3.4", &s4->sin_addr);
    a.len = sizeof *s4;
    char out[64];
    dx__addr_str(&a, out, sizeof out);
    CHECK(strcmp(out, "1.2.3.4:5678") == 0);
    char small[6];
    dx__addr_str(&a, small, sizeof small);
    CHECK(strcmp(small, "1.2.3") == 0);

    memset(&a, 0, sizeof a);
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a.ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(5678);
    inet_pton(AF_INET6, "::1", &s6->sin6_addr);
    a.len = sizeof *s6;
    dx__addr_str(&a, out, sizeof out);
    CHECK(strcmp(out, "[::1]:5678") == 0);
    inet_pton(AF_INET6, "2001:db8::1:0:0:1", &s6->sin6_addr);
    dx__addr_str(&a, out, sizeof out);
    CHECK(strcmp(out, "[2001:db8::1:0:0:1]:5678") == 0);
    inet_pton(AF_INET6, "::ffff:10.0.0.1", &s6->sin6_addr);
    s6->sin6_port = htons(80);
    dx__addr_str(&a, out, sizeof out);
    CHECK(strcmp(out, "10.0.0.1:80") == 0);

    memset(&a, 0, sizeof a);
    a.ss.ss_family = AF_UNIX;
    dx__addr_str(&a, out, sizeof out);
    CHECK(strcmp(out, "?") == 0);
}

static void test_ipv6(void) {
    int lfd, c, s;
    dx_addr peer;
    int rc = make_pair("::1", &lfd, &c, &s, &peer);
    if (rc != 0) {
        fprintf(stderr, "IPv6 loopback unavailable (%s), skipped\n", dx_strerror(rc));
        return;
    }
    char str[64], expect[64];
    dx__addr_str(&peer, str, sizeof str);
    snprintf(expect, sizeof expect, "[::1]:%d", dx__local_port(c));
    CHECK(strcmp(str, expect) == 0);
    struct iovec iov = {"v6", 2};
    CHECK_EQ_INT(dx__writev(c, &iov, 1), 2);
    char buf[4];
    CHECK(wait_fd(s, POLLIN, 5000) & POLLIN);
    CHECK_EQ_INT(dx__read(s, buf, sizeof buf), 2);
    close(s);
    close(c);
    close(lfd);

    /* The bracketed URL form resolves too. */
    dx_addr a;
    CHECK_EQ_INT(dx__resolve("[::1]", 443, &a), 0);
    dx__addr_str(&a, str, sizeof str);
    CHECK(strcmp(str, "[::1]:443") == 0);
}

static void test_resolve(void) {
    dx_addr a;
    CHECK_EQ_INT(dx__resolve("localhost", 8080, &a), 0);
    CHECK(a.ss.ss_family == AF_INET || a.ss.ss_family == AF_INET6);
    char str[64];
    dx__addr_str(&a, str, sizeof str);
    CHECK(strcmp(str, "127.0.0.1:8080") == 0 || strcmp(str, "[::1]:8080") == 0);
    CHECK_EQ_INT(dx__resolve("10.1.2.3", 80, &a), 0);
    dx__addr_str(&a, str, sizeof str);
    CHECK(strcmp(str, "10.1.2.3:80") == 0);
    CHECK_EQ_INT(dx__resolve("", 80, &a), DX_EADDR);
    CHECK_EQ_INT(dx__resolve(NULL, 80, &a), DX_EADDR);
    CHECK_EQ_INT(dx__resolve("127.0.0.1", 65536, &a), DX_EADDR);
}

int main(void) {
    RUN(test_listen_connect_accept);
    RUN(test_read_writev_eof);
    RUN(test_reset);
    RUN(test_refused);
    RUN(test_listen_errors);
    RUN(test_listen_any);
    RUN(test_addr_str);
    RUN(test_ipv6);
    RUN(test_resolve);
    return TEST_DONE();
}

/* dx_server_stats_get: the counters after known traffic from a raw client,
 * read from another thread while the server's loop runs (the one use the
 * header allows across threads), and the size rules of the struct. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/socket.h>
#include <unistd.h>

#include <duplex/deflate.h>
#include <duplex/loop.h>
#include <duplex/server.h>

#include "test.h"

static dx_loop *loop;
static dx_server *srv;

#define FILL_TO (5u << 20) /* "fill": queue this much on the sender */

static void on_message(dx_server_conn *c, void *user, enum dx_opcode op, const uint8_t *d,
                       size_t n) {
    if (op == DX_OP_TEXT && n == 3 && !memcmp(d, "bye", 3)) {
        (void)dx_server_close(c, 4000, "bye");
        return;
    }
    if (op == DX_OP_TEXT && n == 4 && !memcmp(d, "fill", 4)) {
        static uint8_t chunk[64 << 10];
        for (int i = 0; i < 1000 && dx_server_conn_buffered(c) < FILL_TO; i++)
            if (dx_server_send(c, DX_OP_BINARY, chunk, sizeof chunk) < 0) break;
        return;
    }
    (void)dx_server_send(c, op, d, n);
}

static void *run(void *arg) {
    (void)arg;
    dx_loop_run(loop);
    return NULL;
}

static void stop(dx_loop *l, void *arg) {
    (void)arg;
    dx_loop_stop(l);
}

static int tcp(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

/* Reads until `want` bytes came or 5 s passed; returns the count. */
static size_t read_n(int fd, uint8_t *out, size_t want) {
    size_t got = 0;
    while (got < want) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0) break;
        ssize_t k = read(fd, out + got, want - got);
        if (k <= 0) break;
        got += (size_t)k;
    }
    return got;
}

/* Reads an HTTP answer head; returns its status. */
static int read_status(int fd) {
    char buf[1024];
    size_t n = 0;
    while (n < sizeof buf - 1) {
        if (read_n(fd, (uint8_t *)buf + n, 1) != 1) break;
        n++;
        if (n >= 4 && !memcmp(buf + n - 4, "\r\n\r\n", 4)) break;
    }
    buf[n] = 0;
    int st = 0;
    return sscanf(buf, "HTTP/1.1 %d", &st) == 1 ? st : -1;
}

static void send_frame(int fd, int op, const void *d, size_t n) {
    static const uint8_t key[4] = {1, 2, 3, 4};
    uint8_t f[256];
    size_t len = dx_t_frame(f, 1, 0, op, d, n, key);
    CHECK(write(fd, f, len) == (ssize_t)len);
}

static dx_server_stats get(void) {
    dx_server_stats st = {.size = sizeof st};
    CHECK_EQ_INT(dx_server_stats_get(srv, &st), 0);
    return st;
}

/* Polls (from this thread, while the loop runs) until `cond`, on the
 * counters in `s_`, holds. */
#define WAIT_FOR(cond)                                                                             \
    do {                                                                                           \
        for (int w_ = 0; w_ < 500; w_++) {                                                         \
            dx_server_stats s_ = get();                                                            \
            if (cond) break;                                                                       \
            usleep(10000);                                                                         \
        }                                                                                          \
    } while (0)

static void test_traffic(void) {
    loop = dx_loop_new(0);
    dx_server_config cfg = {.on_message = on_message,
                            .origins = (const char *[]){"http://ok", NULL}};
    srv = dx_server_new(loop, &cfg);
    REQUIRE(srv && dx_server_listen(srv) == 0);
    int port = dx_server_port(srv);
    dx_server_stats st0 = get();
    CHECK_EQ_INT(st0.accepted, 0);
    CHECK_EQ_INT(st0.size, sizeof st0);
    CHECK_EQ_INT(st0.tls, 0);
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, run, NULL) == 0);

    /* One WebSocket: 2 text and 1 binary message echoed, a pong, then a
     * close 1000 from the client. */
    int fd = tcp(port);
    REQUIRE(fd >= 0);
    const char *up = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n";
    CHECK(write(fd, up, strlen(up)) == (ssize_t)strlen(up));
    CHECK_EQ_INT(read_status(fd), 101);
    send_frame(fd, DX_OP_TEXT, "hello", 5);
    send_frame(fd, DX_OP_TEXT, "hi", 2);
    send_frame(fd, DX_OP_BINARY, "\x01\x02\x03", 3);
    send_frame(fd, DX_OP_PONG, "p", 1);
    /* A ping (answered by a pong) and a message in two frames. */
    send_frame(fd, DX_OP_PING, "pg", 2);
    static const uint8_t key[4] = {5, 6, 7, 8};
    uint8_t frag[32];
    size_t fl = dx_t_frame(frag, 0, 0, DX_OP_TEXT, "ab", 2, key);
    fl += dx_t_frame(frag + fl, 1, 0, DX_OP_CONT, "cd", 2, key);
    CHECK(write(fd, frag, fl) == (ssize_t)fl);
    uint8_t echo[2 + 5 + 2 + 2 + 2 + 3 + 2 + 2 + 2 + 4];
    CHECK_EQ_INT(read_n(fd, echo, sizeof echo), sizeof echo);
    WAIT_FOR(s_.pongs_in == 1);
    dx_server_stats st = get();
    CHECK_EQ_INT(st.open, 1);
    send_frame(fd, DX_OP_CLOSE, "\x03\xe8", 2);
    uint8_t cl[4];
    CHECK_EQ_INT(read_n(fd, cl, sizeof cl), sizeof cl); /* 88 02 03 e8 */
    close(fd);

    /* A second one that the server closes with 4000. */
    fd = tcp(port);
    REQUIRE(fd >= 0);
    CHECK(write(fd, up, strlen(up)) == (ssize_t)strlen(up));
    CHECK_EQ_INT(read_status(fd), 101);
    send_frame(fd, DX_OP_TEXT, "bye", 3);
    uint8_t cl2[2 + 2 + 3];
    CHECK_EQ_INT(read_n(fd, cl2, sizeof cl2), sizeof cl2);
    CHECK_EQ_INT(cl2[0], 0x88);
    send_frame(fd, DX_OP_CLOSE, "\x0f\xa0", 2);
    close(fd);

    /* Refused: no key (bad request), a foreign Origin; one plain request. */
    const char *bad =
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    const char *evil = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\nOrigin: http://evil\r\n\r\n";
    const char *plain = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *reqs[] = {bad, evil, plain};
    const int want[] = {400, 403, 200};
    for (int i = 0; i < 3; i++) {
        fd = tcp(port);
        REQUIRE(fd >= 0);
        CHECK(write(fd, reqs[i], strlen(reqs[i])) == (ssize_t)strlen(reqs[i]));
        CHECK_EQ_INT(read_status(fd), want[i]);
        close(fd);
    }
    WAIT_FOR(s_.closed[DX_STATS_CLOSE_OTHER] == 1 && s_.open == 0);

    /* Stopped: every counter is final, the histogram whole. */
    dx_loop_post(loop, stop, NULL);
    pthread_join(th, NULL);
    st = get();
    CHECK_EQ_INT(st.accepted, 5);
    CHECK_EQ_INT(st.upgraded, 2);
    CHECK_EQ_INT(st.open, 0);
    CHECK_EQ_INT(st.http_requests, 1);
    CHECK_EQ_INT(st.refused[DX_REFUSE_BAD_REQUEST], 1);
    CHECK_EQ_INT(st.refused[DX_REFUSE_ORIGIN], 1);
    CHECK_EQ_INT(st.refused[DX_REFUSE_AUTH], 0);
    CHECK_EQ_INT(st.msgs_in[0], 4); /* hello, hi, abcd, bye */
    CHECK_EQ_INT(st.msgs_in[1], 1);
    CHECK_EQ_INT(st.bytes_in[0], 14);
    CHECK_EQ_INT(st.bytes_in[1], 3);
    CHECK_EQ_INT(st.msgs_out[0], 3);
    CHECK_EQ_INT(st.msgs_out[1], 1);
    CHECK_EQ_INT(st.bytes_out[0], 11);
    CHECK_EQ_INT(st.bytes_out[1], 3);
    /* Frames, counted by the core: in, hello hi ab bye, cd, the binary,
     * two closes, the ping and the pong; out, the echoes, the pong that
     * answered the ping, the echoed 1000 and our 4000. */
    CHECK_EQ_INT(st.frames_in[DX_FRAME_SLOT_TEXT], 4);
    CHECK_EQ_INT(st.frames_in[DX_FRAME_SLOT_CONT], 1);
    CHECK_EQ_INT(st.frames_in[DX_FRAME_SLOT_BINARY], 1);
    CHECK_EQ_INT(st.frames_in[DX_FRAME_SLOT_CLOSE], 2);
    CHECK_EQ_INT(st.frames_in[DX_FRAME_SLOT_PING], 1);
    CHECK_EQ_INT(st.frames_in[DX_FRAME_SLOT_PONG], 1);
    CHECK_EQ_INT(st.frames_out[DX_FRAME_SLOT_TEXT], 3);
    CHECK_EQ_INT(st.frames_out[DX_FRAME_SLOT_CONT], 0);
    CHECK_EQ_INT(st.frames_out[DX_FRAME_SLOT_BINARY], 1);
    CHECK_EQ_INT(st.frames_out[DX_FRAME_SLOT_CLOSE], 2);
    CHECK_EQ_INT(st.frames_out[DX_FRAME_SLOT_PING], 0);
    CHECK_EQ_INT(st.frames_out[DX_FRAME_SLOT_PONG], 1);
    CHECK_EQ_INT(st.inflate_in + st.inflate_out + st.deflate_in + st.deflate_out, 0);
    CHECK_EQ_INT(st.queued, 0);
    CHECK_EQ_INT(st.paused_now, 0);
    CHECK_EQ_INT(st.pongs_in, 1);
    CHECK_EQ_INT(st.closed[0], 1);                    /* 1000 from the client */
    CHECK_EQ_INT(st.closed[DX_STATS_CLOSE_OTHER], 1); /* our 4000, answered */
    CHECK_EQ_INT(st.close_sent[DX_STATS_CLOSE_OTHER], 1);
    CHECK_EQ_INT(st.close_sent[0], 0);
    CHECK(st.wire_in > 2 * strlen(up));
    CHECK(st.wire_out > 2 * 129); /* two 101 answers at least */
    CHECK(st.loop_turns > 0);
    uint64_t buckets = 0;
    for (int i = 0; i < DX_LOOP_TURN_BUCKETS; i++)
        buckets += st.loop_turn_us[i];
    CHECK_EQ_INT(buckets, st.loop_turns);
    CHECK(st.loop_timers > 0); /* the flush timer runs after every batch of I/O */
    dx_server_free(srv);
    dx_loop_free(loop);
}

static const char up_deflate[] =
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; "
    "server_no_context_takeover\r\n\r\n";

/* A compressed message in and its compressed echo out move the deflate
 * counters by exactly the payload sizes on the wire and inflated; a client
 * that stops reading raises the bytes-queued and paused gauges, which fall
 * back to 0 once it reads everything. */
static void test_deflate_and_queue(void) {
    loop = dx_loop_new(0);
    dx_server_config cfg = {.on_message = on_message, .max_buffered = 8u << 20};
    cfg.deflate.enable = 1;
    srv = dx_server_new(loop, &cfg);
    REQUIRE(srv && dx_server_listen(srv) == 0);
    int port = dx_server_port(srv);
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, run, NULL) == 0);

    int fd = tcp(port);
    REQUIRE(fd >= 0);
    CHECK(write(fd, up_deflate, strlen(up_deflate)) == (ssize_t)strlen(up_deflate));
    CHECK_EQ_INT(read_status(fd), 101);

    /* The client's side compressed by a client dx_conn of this thread
     * (which counts into this thread's own set, not the server's loop). */
    dx_conn_config ccfg = {.role = DX_ROLE_CLIENT};
    dx_conn *cc = dx_conn_new(&ccfg, 0);
    REQUIRE(cc);
    dx_deflate_params agreed = {1, 1, 15, 15};
    dx_deflate_config dcfg = {.enable = 1};
    REQUIRE(dx_conn_set_deflate(cc, &agreed, &dcfg) == 0);
    dx_conn_open(cc);
    uint8_t msg[1000];
    memset(msg, 'a', sizeof msg);
    REQUIRE(dx_conn_send(cc, DX_OP_TEXT, msg, sizeof msg) == 0);
    struct iovec iov[4];
    int niov = dx_conn_out_iov(cc, iov, 4);
    REQUIRE(niov == 1);
    const uint8_t *f = iov[0].iov_base;
    CHECK_EQ_INT(f[0], 0xc1);    /* FIN, RSV1, text */
    REQUIRE((f[1] & 127) < 126); /* 1000 'a' shrink to a few bytes */
    size_t zin = f[1] & 127;
    CHECK(write(fd, f, iov[0].iov_len) == (ssize_t)iov[0].iov_len);
    dx_conn_free(cc);
    uint8_t hd[2], body[128];
    CHECK_EQ_INT(read_n(fd, hd, 2), 2);
    CHECK_EQ_INT(hd[0], 0xc1); /* the echo, compressed too */
    REQUIRE(hd[1] < 126);
    size_t zout = hd[1];
    CHECK_EQ_INT(read_n(fd, body, zout), zout);
    WAIT_FOR(s_.deflate_out > 0);
    dx_server_stats st = get();
    CHECK_EQ_INT(st.inflate_in, zin);
    CHECK_EQ_INT(st.inflate_out, sizeof msg);
    CHECK_EQ_INT(st.deflate_in, sizeof msg);
    CHECK_EQ_INT(st.deflate_out, zout);
    CHECK_EQ_INT(st.bytes_in[0], sizeof msg);
    CHECK_EQ_INT(st.queued, 0);
    close(fd);

    /* A reader that stops: a small receive buffer, so the server's queue
     * holds most of what "fill" sends. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    int small = 4096;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    const char *up = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n";
    CHECK(write(fd, up, strlen(up)) == (ssize_t)strlen(up));
    CHECK_EQ_INT(read_status(fd), 101);
    send_frame(fd, DX_OP_TEXT, "fill", 4);
    WAIT_FOR(s_.paused_now == 1);
    st = get();
    CHECK_EQ_INT(st.paused_now, 1); /* the queue passed max_buffered / 2 */
    CHECK(st.queued > (1u << 20));  /* whatever the kernel took, most is queued */
    CHECK(st.queued <= FILL_TO + (64u << 10) + 14);
    CHECK_EQ_INT(st.slow_closed, 0);

    /* Now it reads: everything leaves the queue (the last bytes may still
     * be in the kernel's buffers when it is empty: read on till they came). */
    REQUIRE(fcntl(fd, F_SETFL, O_NONBLOCK) == 0);
    static uint8_t sink[1 << 16];
    uint64_t got = 0;
    int eof = 0;
    for (int i = 0; i < 3000 && !eof; i++) {
        ssize_t k;
        while ((k = read(fd, sink, sizeof sink)) > 0)
            got += (uint64_t)k;
        eof = k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR);
        st = get();
        if (st.queued == 0 && st.paused_now == 0 && got >= FILL_TO) break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        (void)poll(&p, 1, 10);
    }
    CHECK_EQ_INT(eof, 0); /* the server kept the connection */
    CHECK_EQ_INT(st.queued, 0);
    CHECK_EQ_INT(st.paused_now, 0);
    CHECK(got >= FILL_TO);
    close(fd);
    WAIT_FOR(s_.open == 0);

    dx_loop_post(loop, stop, NULL);
    pthread_join(th, NULL);
    st = get();
    CHECK_EQ_INT(st.queued, 0);
    CHECK_EQ_INT(st.paused_now, 0);
    dx_server_free(srv);
    dx_loop_free(loop);
}

/* The struct may grow: an older caller gets its part, a newer one zeros. */
static void test_sizes(void) {
    loop = dx_loop_new(0);
    srv = dx_server_new(loop, NULL);
    REQUIRE(srv);
    CHECK_EQ_INT(dx_server_stats_get(srv, NULL), DX_EINVAL);
    dx_server_stats small = {.size = 4};
    CHECK_EQ_INT(dx_server_stats_get(srv, &small), DX_EINVAL);

    /* An "older" caller that knows the fields up to `open` only. */
    dx_server_stats old;
    memset(&old, 0xab, sizeof old);
    old.size = offsetof(dx_server_stats, upgraded);
    CHECK_EQ_INT(dx_server_stats_get(srv, &old), 0);
    CHECK_EQ_INT(old.size, offsetof(dx_server_stats, upgraded));
    CHECK_EQ_INT(old.accepted, 0);
    CHECK_EQ_INT(old.open, 0);
    CHECK(old.upgraded == 0xababababababababull); /* untouched */

    /* A "newer" caller with fields this library does not know. */
    struct {
        dx_server_stats st;
        uint64_t later[4];
    } big;
    memset(&big, 0xab, sizeof big);
    big.st.size = sizeof big;
    CHECK_EQ_INT(dx_server_stats_get(srv, &big.st), 0);
    CHECK_EQ_INT(big.st.size, sizeof big.st);
    CHECK_EQ_INT(big.st.accepted, 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ_INT(big.later[i], 0);
    dx_server_free(srv);
    dx_loop_free(loop);
}

int main(void) {
    RUN(test_sizes);
    RUN(test_traffic);
    RUN(test_deflate_and_queue);
    return TEST_DONE();
}

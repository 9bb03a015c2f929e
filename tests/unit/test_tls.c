/* Tests for TLS (src/io/tls.c): a self-signed certificate made here with
 * the OpenSSL API, a server and a client on loopback sockets driven by a
 * poll loop. SIGPIPE is left at its default on purpose. */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <duplex/loop.h>

#include "io/net.h"
#include "io/tls.h"
#include "test.h"
#include "tls_test.h"

static char dir[64];
static char cert_path[128], key_path[128], key2_path[128], junk_path[128];

/* ---- certificates ---- */

/* The test certificate (tls_test.h), a second key that matches nothing,
 * and a file that is no PEM at all. */
static int make_cert(void) {
    EVP_PKEY *key2 = dx_t_make_key();
    int ok = dx_t_make_cert(cert_path, key_path) && key2 && dx_t_write_pem(key2_path, key2, NULL);
    EVP_PKEY_free(key2);
    FILE *f = fopen(junk_path, "w");
    if (f) {
        fputs("not a certificate\n", f);
        fclose(f);
    }
    return ok;
}

/* ---- a pair of TLS endpoints over loopback TCP ---- */

typedef struct side {
    int fd;
    dx_tls *t;
    int done; /* handshake finished */
    int rc;   /* DX_ETLS when the handshake failed */
    unsigned want;
    const char *why;
    char why_copy[256];
} side;

static short poll_bits(unsigned want) {
    return (short)(((want & DX_IO_READ) ? POLLIN : 0) | ((want & DX_IO_WRITE) ? POLLOUT : 0));
}

/* Waits until one of the two sides can go on (or 50 ms). */
static void wait_sides(side *a, unsigned wa, side *b, unsigned wb) {
    struct pollfd p[2] = {{.fd = a->fd, .events = poll_bits(wa)},
                          {.fd = b->fd, .events = poll_bits(wb)}};
    poll(p, 2, 50);
}

/* When set, the receive buffer of the accepted (server) socket
 * (dx_t_tcp_pair). */
static int server_rcvbuf;

/* Opens a TCP pair and TLS on both ends, then drives both handshakes until
 * each side is done or failed. */
static int open_pair(dx_tls_ctx *sctx, dx_tls_ctx *cctx, const char *sni, side *srv, side *cli) {
    memset(srv, 0, sizeof *srv);
    memset(cli, 0, sizeof *cli);
    if (!dx_t_tcp_pair(&cli->fd, &srv->fd, server_rcvbuf)) return 0;
    srv->t = dx_tls_new(sctx, srv->fd, 1, NULL);
    cli->t = dx_tls_new(cctx, cli->fd, 0, sni);
    if (!srv->t || !cli->t) return 0;
    side *sides[2] = {srv, cli};
    uint64_t deadline = dx_t_now_ms() + 5000;
    while (dx_t_now_ms() < deadline) {
        for (int i = 0; i < 2; i++) {
            side *s = sides[i];
            if (s->done || s->rc) continue;
            int r = dx_tls_handshake(s->t, &s->want, &s->why);
            if (r == 1) s->done = 1;
            if (r < 0) {
                s->rc = r;
                snprintf(s->why_copy, sizeof s->why_copy, "%s", s->why ? s->why : "");
            }
        }
        if ((srv->done || srv->rc) && (cli->done || cli->rc)) break;
        wait_sides(srv, srv->done || srv->rc ? 0 : srv->want, cli,
                   cli->done || cli->rc ? 0 : cli->want);
    }
    return 1;
}

static void close_pair(side *srv, side *cli) {
    dx_tls_free(srv->t);
    dx_tls_free(cli->t);
    if (srv->fd > 0) close(srv->fd);
    if (cli->fd > 0) close(cli->fd);
}

/* Reads exactly `len` bytes on `r`, keeping `w` moving if it needs to. */
static int64_t read_all(side *r, void *buf, size_t len) {
    size_t got = 0;
    uint64_t deadline = dx_t_now_ms() + 5000;
    while (got < len && dx_t_now_ms() < deadline) {
        unsigned want = DX_IO_READ;
        int64_t n = dx_tls_read(r->t, (char *)buf + got, len - got, &want);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n != DX_EBUSY) return n;
        struct pollfd p = {.fd = r->fd, .events = poll_bits(want)};
        poll(&p, 1, 50);
    }
    return (int64_t)got;
}

/* ---- tests ---- */

/* The server's context and a client's that trusts the test certificate. */
static int ctx_pair(dx_tls_ctx **sctx, dx_tls_ctx **cctx) {
    const char *why = NULL;
    *sctx = dx_tls_server_ctx(cert_path, key_path, &why);
    *cctx = dx_tls_client_ctx(0, cert_path, &why);
    return *sctx && *cctx;
}

static void test_handshake_alpn_data(void) {
    dx_tls_ctx *sctx, *cctx;
    REQUIRE(ctx_pair(&sctx, &cctx));
    side srv, cli;
    REQUIRE(open_pair(sctx, cctx, "localhost", &srv, &cli));
    CHECK(srv.done && cli.done);
    if (!cli.done) fprintf(stderr, "client: %s / server: %s\n", cli.why_copy, srv.why_copy);

    const char *proto = NULL;
    CHECK_EQ_INT(dx_tls_alpn(cli.t, &proto), 8);
    CHECK(proto && memcmp(proto, "http/1.1", 8) == 0);
    CHECK_EQ_INT(dx_tls_alpn(srv.t, &proto), 8);
    CHECK(proto && memcmp(proto, "http/1.1", 8) == 0);

    /* Client to server: several small iovecs, gathered into one record. */
    unsigned want = 0;
    struct iovec iov[4] = {{"\x81\x05", 2}, {"Hello", 5}, {"", 0}, {", TLS", 5}};
    CHECK_EQ_INT(dx_tls_writev(cli.t, iov, 4, &want), 12);
    char buf[64] = {0};
    CHECK_EQ_INT(read_all(&srv, buf, 12), 12);
    CHECK(memcmp(buf, "\x81\x05Hello, TLS", 12) == 0);

    /* Nothing more to read: would block, wanting to read. */
    want = 0;
    CHECK_EQ_INT(dx_tls_read(srv.t, buf, sizeof buf, &want), DX_EBUSY);
    CHECK_EQ_INT(want, DX_IO_READ);

    /* Server to client. */
    struct iovec back[2] = {{"pong", 4}, {"!", 1}};
    CHECK_EQ_INT(dx_tls_writev(srv.t, back, 2, &want), 5);
    CHECK_EQ_INT(read_all(&cli, buf, 5), 5);
    CHECK(memcmp(buf, "pong!", 5) == 0);

    /* A clean close: close_notify reads as 0. */
    dx_tls_shutdown(cli.t);
    CHECK_EQ_INT(read_all(&srv, buf, 1), 0);
    close_pair(&srv, &cli);
    dx_tls_ctx_free(sctx);
    dx_tls_ctx_free(cctx);
}

/* Memory mode (io/tls.h), as the server's io_uring path uses it: the
 * server side stops touching its socket; the test carries its ciphertext
 * both ways by hand, in pieces of every size down to one byte. */
static void test_memory_mode(void) {
    dx_tls_ctx *sctx, *cctx;
    REQUIRE(ctx_pair(&sctx, &cctx));
    side srv, cli;
    REQUIRE(open_pair(sctx, cctx, "localhost", &srv, &cli));
    REQUIRE(srv.done && cli.done);
    /* The server's TLS 1.3 tickets went out with its handshake. */
    char tiny[1];
    unsigned want = 0;
    CHECK_EQ_INT(dx__tls_memory(srv.t, 1), 0);

    /* Client to server: 300,000 bytes; the server's ciphertext read off
     * the socket here and lent in pieces of 1, 2, 3... bytes (wrapping at
     * 5,000), each piece taken whole before dx_tls_read says DX_EBUSY. */
    enum { N = 300000 };
    uint8_t *msg = malloc(N), *got = malloc(N), *wire = malloc(1 << 20);
    REQUIRE(msg && got && wire);
    for (size_t i = 0; i < N; i++)
        msg[i] = (uint8_t)(i * 31 + 7);
    size_t sent = 0, have = 0, wlen = 0, piece = 1;
    uint64_t deadline = dx_t_now_ms() + 5000;
    while (have < N && dx_t_now_ms() < deadline) {
        if (sent < N) {
            struct iovec iov = {msg + sent, N - sent};
            int64_t w = dx_tls_writev(cli.t, &iov, 1, &want);
            if (w > 0) sent += (size_t)w;
        }
        ssize_t k = recv(srv.fd, wire + wlen, (1 << 20) - wlen, MSG_DONTWAIT);
        if (k > 0) wlen += (size_t)k;
        size_t off = 0;
        while (off < wlen) {
            size_t n = piece < wlen - off ? piece : wlen - off;
            piece = piece % 5000 + 1;
            dx__tls_feed(srv.t, wire + off, n);
            for (;;) {
                int64_t r = dx_tls_read(srv.t, got + have, N - have, &want);
                if (r == DX_EBUSY) break;
                CHECK(r > 0);
                if (r <= 0) goto out;
                have += (size_t)r;
            }
            off += n;
        }
        wlen = 0;
        if (k <= 0) usleep(1000);
    }
out:
    CHECK_EQ_INT(have, N);
    CHECK(memcmp(got, msg, N) == 0);

    /* Server to client: the socket is untouched while ciphertext piles up
     * in memory. dx_tls_writev stops once 64 KiB wait; what dx__tls_out
     * shows stays where it is while more is written, and reads back in
     * order on the client once sent. */
    struct iovec all = {msg, N};
    int64_t w1 = dx_tls_writev(srv.t, &all, 1, &want);
    CHECK(w1 >= 64 * 1024 && w1 < N);
    const uint8_t *p1 = NULL;
    size_t n1 = dx__tls_out(srv.t, &p1);
    CHECK(n1 > (size_t)w1); /* records: headers and tags */
    uint8_t *copy = malloc(n1);
    REQUIRE(copy);
    memcpy(copy, p1, n1);
    CHECK_EQ_INT(dx__tls_memory(srv.t, 0), DX_ESTATE); /* ciphertext waits */
    struct iovec rest = {msg + w1, N - (size_t)w1};
    int64_t w2 = dx_tls_writev(srv.t, &rest, 1, &want);
    CHECK(w2 > 0);
    CHECK(memcmp(copy, p1, n1) == 0); /* not moved, not overwritten */
    free(copy);
    size_t out_total = 0, rd = 0;
    deadline = dx_t_now_ms() + 5000;
    while (rd < N && dx_t_now_ms() < deadline) {
        if ((size_t)(w1 + w2) < N && out_total > 0) {
            struct iovec more = {msg + w1 + w2, N - (size_t)(w1 + w2)};
            int64_t w3 = dx_tls_writev(srv.t, &more, 1, &want);
            if (w3 > 0) w2 += w3;
        }
        const uint8_t *p;
        size_t n = dx__tls_out(srv.t, &p);
        if (n) {
            ssize_t k = send(srv.fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (k > 0) {
                dx__tls_out_consume(srv.t, (size_t)k);
                out_total += (size_t)k;
            }
        }
        int64_t r = dx_tls_read(cli.t, got + rd, N - rd, &want);
        if (r > 0) rd += (size_t)r;
        if (r == DX_EBUSY && !n) usleep(1000);
    }
    CHECK_EQ_INT(rd, N);
    CHECK(memcmp(got, msg, N) == 0);
    const uint8_t *p;
    CHECK_EQ_INT(dx__tls_out(srv.t, &p), 0);

    /* A clean close from the memory side: its close_notify goes straight
     * to the socket, and the client reads it as 0. */
    dx_tls_shutdown(srv.t);
    CHECK_EQ_INT(read_all(&cli, tiny, 1), 0);
    free(msg);
    free(got);
    free(wire);
    close_pair(&srv, &cli);
    dx_tls_ctx_free(sctx);
    dx_tls_ctx_free(cctx);
}

/* 4 MiB from client to server in frame-like pieces of varied sizes, over
 * small socket buffers so that the writer keeps finding them full: partial
 * writes and retries after DX_EBUSY must deliver every byte once, in
 * order. */
static void test_bulk_partial_writes(void) {
    const char *why = NULL;
    dx_tls_ctx *sctx = dx_tls_server_ctx(cert_path, key_path, &why);
    dx_tls_ctx *cctx = dx_tls_client_ctx(1, NULL, &why);
    REQUIRE(sctx && cctx);
    side srv, cli;
    server_rcvbuf = 16384;
    int opened = open_pair(sctx, cctx, "localhost", &srv, &cli);
    server_rcvbuf = 0;
    REQUIRE(opened);
    REQUIRE(srv.done && cli.done);
    int small = 16384;
    CHECK(setsockopt(cli.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);

    const size_t total = (size_t)4 << 20;
    unsigned char *src = malloc(total), *dst = malloc(total);
    REQUIRE(src && dst);
    for (size_t i = 0; i < total; i++)
        src[i] = (unsigned char)(i * 7 + (i >> 13));
    static const size_t piece[] = {2, 125, 4, 70000, 10, 3, 16384, 1, 9000, 40000};
    size_t woff = 0, roff = 0;
    int busy = 0, partial = 0;
    uint64_t deadline = dx_t_now_ms() + 15000;
    while (roff < total && dx_t_now_ms() < deadline) {
        unsigned wwant = 0, rwant = DX_IO_READ;
        /* Write until the socket is full, then read a little. */
        while (woff < total) {
            /* The unsent data cut into pieces, from its head. */
            struct iovec iov[16];
            int n = 0;
            size_t off = woff, k = (woff / 7) % 10;
            while (n < 16 && off < total) {
                size_t len = piece[(k + (size_t)n) % 10];
                if (len > total - off) len = total - off;
                iov[n++] = (struct iovec){src + off, len};
                off += len;
            }
            size_t asked = off - woff;
            int64_t w = dx_tls_writev(cli.t, iov, n, &wwant);
            if (w > 0) {
                woff += (size_t)w;
                wwant = 0;
                if ((size_t)w < asked) {
                    partial++;
                    break;
                }
            } else {
                if (w != DX_EBUSY) CHECK_EQ_INT(w, DX_EBUSY);
                busy++;
                break;
            }
        }
        size_t chunk = total - roff < 65536 ? total - roff : 65536;
        int64_t r = dx_tls_read(srv.t, dst + roff, chunk, &rwant);
        if (r > 0) {
            roff += (size_t)r;
        } else if (r != DX_EBUSY) {
            CHECK_EQ_INT(r, DX_EBUSY);
            break;
        } else {
            wait_sides(&srv, rwant, &cli, wwant);
        }
    }
    CHECK_EQ_INT(roff, total);
    CHECK(memcmp(src, dst, total) == 0);
    CHECK(busy > 0); /* the socket did fill up */
    fprintf(stderr, "  bulk: %d would-block, %d partial writes\n", busy, partial);
    free(src);
    free(dst);

    /* A peer that ends the TCP stream without close_notify reads as EOF.
     * (shutdown, not close: the client never read the server's session
     * tickets, and closing with unread data would send a reset.) */
    CHECK_EQ_INT(shutdown(cli.fd, SHUT_WR), 0);
    char b;
    CHECK_EQ_INT(read_all(&srv, &b, 1), 0);
    /* A reset peer: writing to it fails, without SIGPIPE. */
    close(cli.fd);
    cli.fd = -1;
    struct iovec one = {"x", 1};
    int64_t w = 1;
    for (int i = 0; i < 100 && w > 0; i++) {
        unsigned want;
        w = dx_tls_writev(srv.t, &one, 1, &want);
        if (w > 0) usleep(1000);
    }
    CHECK(w == DX_EIO || w == DX_ETLS);
    close_pair(&srv, &cli);
    dx_tls_ctx_free(sctx);
    dx_tls_ctx_free(cctx);
}

static void test_system_store_refuses_self_signed(void) {
    const char *why = NULL;
    dx_tls_ctx *sctx = dx_tls_server_ctx(cert_path, key_path, &why);
    dx_tls_ctx *cctx = dx_tls_client_ctx(0, NULL, &why);
    REQUIRE(sctx && cctx);
    side srv, cli;
    REQUIRE(open_pair(sctx, cctx, "localhost", &srv, &cli));
    CHECK_EQ_INT(cli.rc, DX_ETLS);
    CHECK(strstr(cli.why_copy, "verify") != NULL);
    fprintf(stderr, "  client: %s\n", cli.why_copy);
    CHECK(!srv.done); /* the server sees the client's alert */
    close_pair(&srv, &cli);
    dx_tls_ctx_free(sctx);
    dx_tls_ctx_free(cctx);
}

static void test_ca_file_and_ip(void) {
    dx_tls_ctx *sctx, *cctx;
    REQUIRE(ctx_pair(&sctx, &cctx));
    side srv, cli;
    /* The certificate names IP 127.0.0.1 too. */
    REQUIRE(open_pair(sctx, cctx, "127.0.0.1", &srv, &cli));
    CHECK(cli.done && srv.done);
    close_pair(&srv, &cli);
    /* But not ::1. */
    REQUIRE(open_pair(sctx, cctx, "[::1]", &srv, &cli));
    CHECK_EQ_INT(cli.rc, DX_ETLS);
    close_pair(&srv, &cli);
    dx_tls_ctx_free(sctx);
    dx_tls_ctx_free(cctx);
}

static void test_host_mismatch(void) {
    dx_tls_ctx *sctx, *cctx;
    REQUIRE(ctx_pair(&sctx, &cctx));
    side srv, cli;
    REQUIRE(open_pair(sctx, cctx, "example.com", &srv, &cli));
    CHECK_EQ_INT(cli.rc, DX_ETLS);
    CHECK(strstr(cli.why_copy, "hostname mismatch") != NULL);
    fprintf(stderr, "  client: %s\n", cli.why_copy);
    close_pair(&srv, &cli);
    /* Insecure skips the check. */
    const char *why = NULL;
    dx_tls_ctx *ictx = dx_tls_client_ctx(1, NULL, &why);
    REQUIRE(ictx);
    REQUIRE(open_pair(sctx, ictx, "example.com", &srv, &cli));
    CHECK(cli.done && srv.done);
    close_pair(&srv, &cli);
    dx_tls_ctx_free(ictx);
    dx_tls_ctx_free(sctx);
    dx_tls_ctx_free(cctx);
}

static void test_tls11_refused(void) {
    const char *why = NULL;
    dx_tls_ctx *sctx = dx_tls_server_ctx(cert_path, key_path, &why);
    dx_tls_ctx *cctx = dx_tls_client_ctx(1, NULL, &why);
    REQUIRE(sctx && cctx);
    /* A client able to offer TLS 1.1 only (security level 0 lets OpenSSL 3
     * send it), so that the refusal comes from the server. */
    SSL_CTX *raw = dx__tls_ctx_ssl(cctx);
    SSL_CTX_set_security_level(raw, 0);
    CHECK(SSL_CTX_set_cipher_list(raw, "DEFAULT:@SECLEVEL=0") == 1);
    CHECK(SSL_CTX_set_min_proto_version(raw, TLS1_VERSION) == 1);
    CHECK(SSL_CTX_set_max_proto_version(raw, TLS1_1_VERSION) == 1);
    side srv, cli;
    REQUIRE(open_pair(sctx, cctx, "localhost", &srv, &cli));
    CHECK_EQ_INT(srv.rc, DX_ETLS);
    CHECK_EQ_INT(cli.rc, DX_ETLS);
    CHECK(strstr(srv.why_copy, "unsupported protocol") != NULL);
    fprintf(stderr, "  server: %s\n  client: %s\n", srv.why_copy, cli.why_copy);
    close_pair(&srv, &cli);
    dx_tls_ctx_free(sctx);
    dx_tls_ctx_free(cctx);
}

static void test_ctx_errors(void) {
    const char *why = NULL;
    CHECK(dx_tls_server_ctx("/nonexistent/cert.pem", key_path, &why) == NULL);
    CHECK(why && strstr(why, "certificate") != NULL);
    why = NULL;
    CHECK(dx_tls_server_ctx(junk_path, key_path, &why) == NULL);
    CHECK(why != NULL);
    why = NULL;
    CHECK(dx_tls_server_ctx(cert_path, "/nonexistent/key.pem", &why) == NULL);
    CHECK(why && strstr(why, "private key") != NULL);
    why = NULL;
    CHECK(dx_tls_server_ctx(cert_path, key2_path, &why) == NULL);
    CHECK(why && strstr(why, "private key") != NULL);
    fprintf(stderr, "  mismatched key: %s\n", why ? why : "");
    why = NULL;
    CHECK(dx_tls_client_ctx(0, junk_path, &why) == NULL);
    CHECK(why && strstr(why, "CA file") != NULL);
    dx_tls_ctx_free(NULL);
    dx_tls_free(NULL);
}

/* A handshake against a peer that hangs up at once fails cleanly. */
static void test_peer_hangs_up(void) {
    const char *why = NULL;
    dx_tls_ctx *cctx = dx_tls_client_ctx(1, NULL, &why);
    REQUIRE(cctx);
    int c, s;
    REQUIRE(dx_t_tcp_pair(&c, &s, 0));
    dx_tls *t = dx_tls_new(cctx, c, 0, "localhost");
    REQUIRE(t);
    unsigned want = 0;
    CHECK_EQ_INT(dx_tls_handshake(t, &want, &why), 0); /* ClientHello sent */
    CHECK_EQ_INT(want, DX_IO_READ);
    close(s);
    struct pollfd p = {.fd = c, .events = POLLIN};
    poll(&p, 1, 5000);
    why = NULL;
    CHECK_EQ_INT(dx_tls_handshake(t, &want, &why), DX_ETLS);
    CHECK(why != NULL);
    fprintf(stderr, "  hang-up: %s\n", why ? why : "");
    dx_tls_shutdown(t); /* a no-op before the handshake is done */
    dx_tls_free(t);
    close(c);
    dx_tls_ctx_free(cctx);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/dx-tls-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(cert_path, sizeof cert_path, "%s/cert.pem", dir);
    snprintf(key_path, sizeof key_path, "%s/key.pem", dir);
    snprintf(key2_path, sizeof key2_path, "%s/key2.pem", dir);
    snprintf(junk_path, sizeof junk_path, "%s/junk.pem", dir);
    int made = make_cert();
    if (made) {
        RUN(test_handshake_alpn_data);
        RUN(test_bulk_partial_writes);
        RUN(test_memory_mode);
        RUN(test_system_store_refuses_self_signed);
        RUN(test_ca_file_and_ip);
        RUN(test_host_mismatch);
        RUN(test_tls11_refused);
        RUN(test_ctx_errors);
        RUN(test_peer_hangs_up);
    } else {
        fprintf(stderr, "could not make the test certificate\n");
    }
    unlink(cert_path);
    unlink(key_path);
    unlink(key2_path);
    unlink(junk_path);
    rmdir(dir);
    if (!made) return 1;
    return TEST_DONE();
}

/* What OpenSSL itself holds for one idle server-side TLS connection after
 * its handshake and one echo — the floor under duplex's wss:// figure in
 * bench/README.md ("Memory per idle connection"), whatever duplex does
 * around it.
 *
 * OpenSSL's allocations are counted through CRYPTO_set_mem_functions, so
 * nothing else in the process is: N client connections run in a child
 * process over socketpairs, the server side here with the options
 * src/io/tls.c sets (released buffers, no compression, no renegotiation).
 * The first connection pays the once-per-context costs and is left out;
 * the live allocations of the last one are listed by OpenSSL source line.
 *
 *     cc -O2 -o /tmp/tls_mem bench/tls_mem.c -lssl -lcrypto
 *     /tmp/tls_mem CERT KEY [1.2]
 */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define CONNS 100
#define MAX_TRACKED 4096

/* Every block carries its size in a 16-byte header, so that free and
 * realloc can keep the count. */
static long live_bytes, live_blocks;
static int tracking;
static struct {
    void *p;
    size_t n;
    const char *file;
    int line;
} tracked[MAX_TRACKED];
static int ntracked;

static void *mem_alloc(size_t n, const char *file, int line) {
    size_t *h = malloc(n + 16);
    if (!h) return NULL;
    h[0] = n;
    live_bytes += (long)n;
    live_blocks++;
    void *p = (char *)h + 16;
    if (tracking && ntracked < MAX_TRACKED) {
        tracked[ntracked].p = p;
        tracked[ntracked].n = n;
        tracked[ntracked].file = file;
        tracked[ntracked].line = line;
        ntracked++;
    }
    return p;
}

static void untrack(void *p) {
    for (int i = 0; i < ntracked; i++)
        if (tracked[i].p == p) tracked[i].p = NULL;
}

static void mem_free(void *p, const char *file, int line) {
    (void)file;
    (void)line;
    if (!p) return;
    size_t *h = (size_t *)((char *)p - 16);
    live_bytes -= (long)h[0];
    live_blocks--;
    untrack(p);
    free(h);
}

static void *mem_realloc(void *p, size_t n, const char *file, int line) {
    if (!p) return mem_alloc(n, file, line);
    void *q = mem_alloc(n, file, line);
    if (!q) return NULL;
    size_t *h = (size_t *)((char *)p - 16);
    memcpy(q, p, h[0] < n ? h[0] : n);
    mem_free(p, file, line);
    return q;
}

static void clients(int fds[][2], int tls12) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (tls12) SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    for (int i = 0; i < CONNS; i++) {
        SSL *s = SSL_new(ctx);
        SSL_set_fd(s, fds[i][1]);
        char buf[16];
        if (SSL_connect(s) != 1 || SSL_write(s, "hello", 5) != 5 || SSL_read(s, buf, sizeof buf) <= 0) {
            ERR_print_errors_fp(stderr);
            _exit(1);
        }
    }
    sleep(1); /* hold them while the parent counts */
    _exit(0);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: tls_mem CERT KEY [1.2]\n");
        return 2;
    }
    int tls12 = argc > 3 && !strcmp(argv[3], "1.2");
    CRYPTO_set_mem_functions(mem_alloc, mem_realloc, mem_free);
    static int fds[CONNS][2];
    for (int i = 0; i < CONNS; i++)
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds[i]) < 0) return perror("socketpair"), 1;
    pid_t child = fork();
    if (child == 0) clients(fds, tls12);

    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(ctx, argv[1]) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, argv[2], SSL_FILETYPE_PEM) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    long bytes0 = 0, blocks0 = 0;
    for (int i = 0; i < CONNS; i++) {
        if (i == 1) bytes0 = live_bytes, blocks0 = live_blocks;
        tracking = i == CONNS - 1;
        SSL *s = SSL_new(ctx);
        SSL_set_fd(s, fds[i][0]);
        char buf[16];
        int n;
        if (SSL_accept(s) != 1 || (n = SSL_read(s, buf, sizeof buf)) <= 0 || SSL_write(s, buf, n) != n) {
            ERR_print_errors_fp(stderr);
            return 1;
        }
    }
    tracking = 0;
    printf("%s, %s: %ld bytes in %ld allocations per idle connection (OpenSSL's own)\n",
           tls12 ? "TLS 1.2" : "TLS 1.3", OpenSSL_version(OPENSSL_VERSION),
           (live_bytes - bytes0) / (CONNS - 1), (live_blocks - blocks0) / (CONNS - 1));
    printf("the last connection's blocks of 100 bytes or more:\n");
    for (int i = 0; i < ntracked; i++)
        if (tracked[i].p && tracked[i].n >= 100)
            printf("  %6zu  %s:%d\n", tracked[i].n, tracked[i].file, tracked[i].line);
    waitpid(child, NULL, 0);
    return 0;
}

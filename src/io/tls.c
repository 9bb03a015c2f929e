/* TLS with OpenSSL 3, straight on the non-blocking socket.
 *
 * The socket is reached through a small BIO of our own rather than
 * SSL_set_fd: OpenSSL's socket BIO writes with write(2), and a write to a
 * closed peer would then raise SIGPIPE; ours uses send(2) with MSG_NOSIGNAL,
 * as dx__writev does, so no process needs to ignore SIGPIPE.
 *
 * Every OpenSSL call here starts with an empty error queue: the queue is
 * per thread and shared by all connections of the loop, so a stale error
 * from one connection must never be read as another's. */
#include "io/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <duplex/loop.h>

#include "core/alloc.h"

/* The largest TLS record payload: small iovecs are gathered up to this. */
#define DX_TLS_RECORD 16384

struct dx_tls_ctx {
    SSL_CTX *ssl;
};

/* How much ciphertext dx_tls_writev makes ahead in memory mode before it
 * returns: a socket buffer's worth, so that a large queue is encrypted as
 * the socket takes it rather than all at once. */
#define DX_TLS_MEM_AHEAD (64 * 1024)

/* Ciphertext made in memory mode, not yet handed to the socket. */
typedef struct tls_buf {
    uint8_t *p;
    size_t len, cap, off; /* off: bytes of it already sent */
} tls_buf;

struct dx_tls {
    SSL *ssl;
    int fd;
    /* Memory mode (dx__tls_memory): the BIO reads what dx__tls_feed lent
     * and writes into `w`; the socket belongs to the caller's ring. `s` is
     * what dx__tls_out handed out and must not move until it is consumed,
     * so OpenSSL never writes into it: the two swap when `s` is empty. */
    int mem;
    const uint8_t *in;
    size_t in_len;
    tls_buf w, s;
};

/* Error text for *why. One per thread, valid until the next failing call
 * on the same thread. */
static _Thread_local char why_buf[PATH_MAX + 256];

/* Scratch for gathering small iovecs into one record. OpenSSL encrypts the
 * bytes into its own buffer during SSL_write_ex, so this is free again as
 * soon as the call returns (and SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER lets a
 * retry pass a different buffer with the same bytes). */
static _Thread_local unsigned char gather_buf[DX_TLS_RECORD];

static const unsigned char alpn_http11[] = "\x08http/1.1";

/* ---- the BIO: the dx_tls is its data; the socket, or memory ---- */

static BIO_METHOD *bio_method; /* made once, lives as long as the process */
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

/* Appends to `b`, growing it: OpenSSL's writes in memory mode never wait
 * (dx_tls_writev bounds how far ahead they go). */
static int buf_put(tls_buf *b, const void *p, size_t len) {
    if (b->cap - b->len < len) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < len)
            cap *= 2;
        uint8_t *q = dx__realloc(b->p, cap);
        if (!q) return 0;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, len);
    b->len += len;
    return 1;
}

static int bio_write(BIO *b, const char *in, int len) {
    dx_tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (t->mem) return buf_put(&t->w, in, (size_t)len) ? len : -1;
    ssize_t n;
    do {
        n = send(t->fd, in, (size_t)len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_write(b);
    return (int)n;
}

static int bio_read(BIO *b, char *out, int len) {
    dx_tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (t->mem) {
        if (t->in_len == 0) {
            BIO_set_retry_read(b); /* until the ring brings more */
            return -1;
        }
        size_t n = t->in_len < (size_t)len ? t->in_len : (size_t)len;
        memcpy(out, t->in, n);
        t->in += n;
        t->in_len -= n;
        return (int)n;
    }
    ssize_t n;
    do {
        n = recv(t->fd, out, (size_t)len, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(b);
    /* Lets OpenSSL tell an EOF from an error (BIO_eof below). */
    if (n == 0) BIO_set_flags(b, BIO_FLAGS_IN_EOF);
    return (int)n;
}

static int bio_puts(BIO *b, const char *str) {
    return bio_write(b, str, (int)strlen(str));
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* nothing is buffered here */
    case BIO_CTRL_EOF:
        return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
    default:
        return 0;
    }
}

static void bio_method_make(void) {
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                 "duplex socket");
    if (m && BIO_meth_set_write(m, bio_write) && BIO_meth_set_read(m, bio_read) &&
        BIO_meth_set_puts(m, bio_puts) && BIO_meth_set_ctrl(m, bio_ctrl)) {
        bio_method = m;
        return;
    }
    BIO_meth_free(m);
}

static BIO *bio_new(dx_tls *t) {
    pthread_once(&bio_once, bio_method_make);
    if (!bio_method) return NULL;
    BIO *b = BIO_new(bio_method);
    if (!b) return NULL;
    BIO_set_data(b, t);
    BIO_set_init(b, 1);
    return b;
}

/* Describes the first error of the queue, or `fallback`, prefixed by
 * `what`, and empties the queue. */
static const char *set_why(const char *what, const char *fallback) {
    unsigned long e = ERR_peek_error();
    if (e) {
        /* The reason alone ("No such file or directory") reads better than
         * the code and library names of ERR_error_string_n. */
        char detail[200];
        const char *reason = ERR_reason_error_string(e);
#ifdef ERR_SYSTEM_ERROR
        if (ERR_SYSTEM_ERROR(e)) reason = strerror(ERR_GET_REASON(e)); /* an errno */
#endif
        if (reason)
            snprintf(detail, sizeof detail, "%s", reason);
        else
            ERR_error_string_n(e, detail, sizeof detail);
        snprintf(why_buf, sizeof why_buf, "%s: %s", what, detail);
    } else {
        snprintf(why_buf, sizeof why_buf, "%s: %s", what, fallback);
    }
    ERR_clear_error();
    return why_buf;
}

static SSL_CTX *ctx_common(const SSL_METHOD *method, const char **why) {
    if (!OPENSSL_init_ssl(0, NULL)) {
        *why = set_why("TLS init", "OPENSSL_init_ssl failed");
        return NULL;
    }
    ERR_clear_error();
    SSL_CTX *ssl = SSL_CTX_new(method);
    if (!ssl) {
        *why = set_why("TLS context", "out of memory");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION);
    SSL_CTX_set_options(ssl, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /* Partial writes so that a large write returns after each record
     * instead of holding the whole buffer; moving buffer so that a retry
     * may come from a different address with the same bytes; released
     * buffers so that an idle connection holds no 34 KiB of TLS buffers. */
    SSL_CTX_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    return ssl;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, alpn_http11, sizeof alpn_http11 - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* go on without ALPN */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static dx_tls_ctx *wrap(SSL_CTX *ssl, const char **why) {
    dx_tls_ctx *ctx = dx__malloc(sizeof *ctx);
    if (!ctx) {
        SSL_CTX_free(ssl);
        *why = "TLS context: out of memory";
        return NULL;
    }
    ctx->ssl = ssl;
    return ctx;
}

dx_tls_ctx *dx_tls_server_ctx(const char *cert_file, const char *key_file, const char **why) {
    SSL_CTX *ssl = ctx_common(TLS_server_method(), why);
    if (!ssl) return NULL;
    SSL_CTX_set_options(ssl, SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* The message names the file: with a certificate and a key, "cannot
     * load" alone does not say which one to fix. */
    char what[PATH_MAX + 32];
    if (SSL_CTX_use_certificate_chain_file(ssl, cert_file) != 1) {
        snprintf(what, sizeof what, "TLS certificate %s", cert_file);
        *why = set_why(what, "cannot load");
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ssl, key_file, SSL_FILETYPE_PEM) != 1) {
        snprintf(what, sizeof what, "TLS private key %s", key_file);
        *why = set_why(what, "cannot load");
        goto fail;
    }
    if (SSL_CTX_check_private_key(ssl) != 1) {
        *why = set_why("TLS private key", "does not match the certificate");
        goto fail;
    }
    SSL_CTX_set_alpn_select_cb(ssl, alpn_select, NULL);
    return wrap(ssl, why);
fail:
    SSL_CTX_free(ssl);
    return NULL;
}

dx_tls_ctx *dx_tls_client_ctx(int insecure, const char *ca_file, const char **why) {
    SSL_CTX *ssl = ctx_common(TLS_client_method(), why);
    if (!ssl) return NULL;
    if (insecure) {
        SSL_CTX_set_verify(ssl, SSL_VERIFY_NONE, NULL);
    } else {
        SSL_CTX_set_verify(ssl, SSL_VERIFY_PEER, NULL);
        int ok = ca_file ? SSL_CTX_load_verify_locations(ssl, ca_file, NULL)
                         : SSL_CTX_set_default_verify_paths(ssl);
        if (ok != 1) {
            char what[PATH_MAX + 32];
            snprintf(what, sizeof what, "TLS CA file %s", ca_file ? ca_file : "(system default)");
            *why = set_why(what, "cannot load");
            SSL_CTX_free(ssl);
            return NULL;
        }
    }
    /* Unlike most of OpenSSL, this one returns 0 on success. */
    if (SSL_CTX_set_alpn_protos(ssl, alpn_http11, sizeof alpn_http11 - 1) != 0) {
        *why = set_why("TLS ALPN", "out of memory");
        SSL_CTX_free(ssl);
        return NULL;
    }
    return wrap(ssl, why);
}

void dx_tls_ctx_free(dx_tls_ctx *ctx) {
    if (!ctx) return;
    SSL_CTX_free(ctx->ssl);
    dx__free(ctx);
}

SSL_CTX *dx__tls_ctx_ssl(dx_tls_ctx *ctx) {
    return ctx->ssl;
}

/* Sets up SNI and the identity to verify. An IP literal is checked against
 * the certificate's IP addresses and is not sent as SNI (RFC 6066 §3). */
static int set_peer_name(SSL *ssl, const char *sni) {
    char host[256];
    size_t n = strlen(sni);
    if (n >= 2 && sni[0] == '[' && sni[n - 1] == ']') {
        if (n - 2 >= sizeof host) return 0;
        memcpy(host, sni + 1, n - 2);
        host[n - 2] = 0;
    } else {
        if (n >= sizeof host) return 0;
        memcpy(host, sni, n + 1);
    }
    unsigned char bin[16];
    int is_ip = inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1;
    if (is_ip) return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1;
    if (SSL_set_tlsext_host_name(ssl, host) != 1) return 0;
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return SSL_set1_host(ssl, host) == 1;
}

dx_tls *dx_tls_new(dx_tls_ctx *ctx, int fd, int is_server, const char *sni) {
    dx_tls *t = dx__calloc(1, sizeof *t);
    if (!t) return NULL;
    t->fd = fd;
    ERR_clear_error();
    t->ssl = SSL_new(ctx->ssl);
    if (!t->ssl) goto fail;
    BIO *bio = bio_new(t);
    if (!bio) goto fail;
    SSL_set_bio(t->ssl, bio, bio); /* one reference, for both directions */
    if (is_server) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        if (sni && *sni && !set_peer_name(t->ssl, sni)) goto fail;
    }
    return t;
fail:
    ERR_clear_error();
    SSL_free(t->ssl);
    dx__free(t);
    return NULL;
}

void dx_tls_free(dx_tls *t) {
    if (!t) return;
    SSL_free(t->ssl);
    dx__free(t->w.p);
    dx__free(t->s.p);
    dx__free(t);
}

size_t dx_tls_alpn(const dx_tls *t, const char **proto) {
    const unsigned char *p = NULL;
    unsigned int len = 0;
    SSL_get0_alpn_selected(t->ssl, &p, &len);
    if (proto) *proto = len ? (const char *)p : NULL;
    return len;
}

/* Turns the result of a failed SSL call into DX_EBUSY (with *want), 0 for
 * a clean close or EOF, or an error code. */
static int64_t io_result(dx_tls *t, int ret, unsigned *want) {
    int err = SSL_get_error(t->ssl, ret);
    switch (err) {
    case SSL_ERROR_WANT_READ:
        *want = DX_IO_READ;
        return DX_EBUSY;
    case SSL_ERROR_WANT_WRITE:
        *want = DX_IO_WRITE;
        return DX_EBUSY;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        /* An empty queue and errno 0 is a plain EOF (OpenSSL 1.1 style). */
        if (ERR_peek_error() == 0 && errno == 0) return 0;
        set_why("TLS I/O", errno ? strerror(errno) : "unexpected EOF");
        return DX_EIO;
    default:
        /* A peer that closes without close_notify: the WebSocket closing
         * handshake already tells a clean close from a cut one, so this is
         * reported as EOF, as on a plain socket. */
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING /* OpenSSL 3 */
        if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            ERR_clear_error();
            return 0;
        }
#endif
        set_why("TLS", "protocol error");
        return DX_ETLS;
    }
}

int dx_tls_handshake(dx_tls *t, unsigned *want, const char **why) {
    ERR_clear_error();
    errno = 0;
    int ret = SSL_do_handshake(t->ssl);
    if (ret == 1) return 1;
    int err = SSL_get_error(t->ssl, ret);
    if (err == SSL_ERROR_WANT_READ) {
        *want = DX_IO_READ;
        return 0;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
        *want = DX_IO_WRITE;
        return 0;
    }
    long vr = SSL_get_verify_result(t->ssl);
    if (vr != X509_V_OK) {
        snprintf(why_buf, sizeof why_buf, "TLS handshake: certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
        ERR_clear_error();
        *why = why_buf;
    } else if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        *why = set_why("TLS handshake", errno ? strerror(errno) : "connection closed by peer");
    } else {
        *why = set_why("TLS handshake", "failed");
    }
    return DX_ETLS;
}

int64_t dx_tls_read(dx_tls *t, void *buf, size_t cap, unsigned *want) {
    size_t got = 0;
    ERR_clear_error();
    errno = 0;
    int ret = SSL_read_ex(t->ssl, buf, cap, &got);
    if (ret == 1) return (int64_t)got;
    return io_result(t, ret, want);
}

/* Writes one piece; > 0 bytes or a result from io_result (never 0). */
static int64_t write_once(dx_tls *t, const void *p, size_t len, unsigned *want) {
    size_t done = 0;
    ERR_clear_error();
    errno = 0;
    int ret = SSL_write_ex(t->ssl, p, len, &done);
    if (ret == 1) return (int64_t)done;
    int64_t r = io_result(t, ret, want);
    return r == 0 ? DX_EIO : r; /* a close seen while writing is an error */
}

int64_t dx_tls_writev(dx_tls *t, const struct iovec *iov, int n, unsigned *want) {
    int64_t total = 0;
    int i = 0;
    size_t off = 0; /* bytes of iov[i] already written */
    while (i < n) {
        if (iov[i].iov_len == off) {
            i++;
            off = 0;
            continue;
        }
        const unsigned char *p = (const unsigned char *)iov[i].iov_base + off;
        size_t len = iov[i].iov_len - off;
        /* Gather when this piece is smaller than a record and more follow,
         * so that a header and a small payload go out as one record. The
         * gathered bytes are the same on a retry after DX_EBUSY, since the
         * caller retries with the same unsent data first. */
        if (len < DX_TLS_RECORD && i + 1 < n) {
            size_t g = 0;
            size_t o = off;
            for (int j = i; j < n && g < DX_TLS_RECORD; j++, o = 0) {
                size_t take = iov[j].iov_len - o;
                if (take > DX_TLS_RECORD - g) take = DX_TLS_RECORD - g;
                if (take) memcpy(gather_buf + g, (const unsigned char *)iov[j].iov_base + o, take);
                g += take;
            }
            p = gather_buf;
            len = g;
        }
        int64_t w = write_once(t, p, len, want);
        if (w < 0) return total > 0 && w == DX_EBUSY ? total : w;
        /* With partial writes on, each successful call wrote at least one
         * whole record; go on until OpenSSL says the socket is full, or in
         * memory mode until a socket buffer's worth waits. */
        total += w;
        /* Advance through the iovecs by w bytes. */
        uint64_t left = (uint64_t)w;
        while (left > 0 && i < n) {
            size_t room = iov[i].iov_len - off;
            if (left < room) {
                off += left;
                left = 0;
            } else {
                left -= room;
                i++;
                off = 0;
            }
        }
        if (t->mem && t->w.len >= DX_TLS_MEM_AHEAD) break;
    }
    return total;
}

void dx_tls_shutdown(dx_tls *t) {
    /* During the handshake there is nothing to close cleanly. */
    if (!SSL_is_init_finished(t->ssl)) return;
    ERR_clear_error();
    (void)SSL_shutdown(t->ssl);
    ERR_clear_error();
    if (t->mem && t->s.len == t->s.off) {
        /* The close_notify is the last thing sent: written straight to the
         * socket (a few dozen bytes), after whatever the ring sent before
         * it (nothing is in flight: dx__tls_out's bytes are consumed).
         * A full socket loses it, as with the socket BIO. */
        (void)send(t->fd, t->w.p, t->w.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        t->w.len = 0;
    }
}

/* ---- memory mode ---- */

int dx__tls_memory(dx_tls *t, int on) {
    if (on ? !SSL_is_init_finished(t->ssl) : t->w.len + t->s.len > 0) return DX_ESTATE;
    t->mem = on;
    return 0;
}

void dx__tls_feed(dx_tls *t, const void *p, size_t n) {
    t->in = p;
    t->in_len = n;
}

size_t dx__tls_out(dx_tls *t, const uint8_t **p) {
    if (t->s.off == t->s.len) {
        if (!t->w.len) {
            *p = NULL;
            return 0;
        }
        tls_buf tmp = t->s;
        t->s = t->w;
        t->w = tmp;
        t->w.len = t->w.off = 0;
    }
    *p = t->s.p + t->s.off;
    return t->s.len - t->s.off;
}

void dx__tls_out_consume(dx_tls *t, size_t n) {
    t->s.off += n;
    if (t->s.off < t->s.len) return;
    /* Sent: an idle connection keeps no buffer (they come back with the
     * next write, as OpenSSL's own with SSL_MODE_RELEASE_BUFFERS). */
    dx__free(t->s.p);
    t->s = (tls_buf){0};
    if (t->w.len == 0) {
        dx__free(t->w.p);
        t->w = (tls_buf){0};
    }
}

const char *dx_tls_why(void) {
    return why_buf;
}

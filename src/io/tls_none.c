/* Stand-in for tls.c in a build without TLS (-DDUPLEX_TLS=OFF): no context
 * can be made, so no connection ever reaches the other calls, and asking
 * for wss:// fails with this reason instead of a link error. */
#include <duplex/common.h>

#include "io/tls.h"

static const char *const off = "this duplex was built without TLS (-DDUPLEX_TLS=OFF)";

dx_tls_ctx *dx_tls_server_ctx(const char *cert_file, const char *key_file, const char **why) {
    (void)cert_file, (void)key_file;
    if (why) *why = off;
    return NULL;
}

dx_tls_ctx *dx_tls_client_ctx(int insecure, const char *ca_file, const char **why) {
    (void)insecure, (void)ca_file;
    if (why) *why = off;
    return NULL;
}

void dx_tls_ctx_free(dx_tls_ctx *ctx) {
    (void)ctx;
}

dx_tls *dx_tls_new(dx_tls_ctx *ctx, int fd, int is_server, const char *sni) {
    (void)ctx, (void)fd, (void)is_server, (void)sni;
    return NULL;
}

void dx_tls_free(dx_tls *t) {
    (void)t;
}

int dx_tls_handshake(dx_tls *t, unsigned *want, const char **why) {
    (void)t, (void)want;
    if (why) *why = off;
    return DX_ETLS;
}

int64_t dx_tls_read(dx_tls *t, void *buf, size_t cap, unsigned *want) {
    (void)t, (void)buf, (void)cap, (void)want;
    return DX_ETLS;
}

int64_t dx_tls_writev(dx_tls *t, const struct iovec *iov, int n, unsigned *want) {
    (void)t, (void)iov, (void)n, (void)want;
    return DX_ETLS;
}

size_t dx_tls_alpn(const dx_tls *t, const char **proto) {
    (void)t;
    if (proto) *proto = NULL;
    return 0;
}

const char *dx_tls_why(void) {
    return off;
}

struct ssl_ctx_st *dx__tls_ctx_ssl(dx_tls_ctx *ctx) {
    (void)ctx;
    return NULL;
}

void dx_tls_shutdown(dx_tls *t) {
    (void)t;
}

int dx__tls_memory(dx_tls *t, int on) {
    (void)t;
    (void)on;
    return DX_ESTATE;
}

void dx__tls_feed(dx_tls *t, const void *p, size_t n) {
    (void)t;
    (void)p;
    (void)n;
}

size_t dx__tls_out(dx_tls *t, const uint8_t **p) {
    (void)t;
    *p = NULL;
    return 0;
}

void dx__tls_out_consume(dx_tls *t, size_t n) {
    (void)t;
    (void)n;
}

/* Internal: TLS over a non-blocking socket, with OpenSSL.
 *
 * Secure defaults: TLS 1.2 minimum, no compression, no renegotiation,
 * OpenSSL's default modern cipher list, ALPN "http/1.1", SNI sent by
 * clients. Clients verify the certificate chain and host name against the
 * system store (or a CA file) unless `insecure`. */
#ifndef DX_IO_TLS_H
#define DX_IO_TLS_H

#include <sys/uio.h>

#include <duplex/common.h>

typedef struct dx_tls_ctx dx_tls_ctx;
typedef struct dx_tls dx_tls;

/* Server context from PEM files. On failure returns NULL and sets *why to a
 * one-line static/thread-local message. */
dx_tls_ctx *dx__tls_server_ctx(const char *cert_file, const char *key_file, const char **why);
/* Client context: `ca_file` NULL uses the system store. */
dx_tls_ctx *dx__tls_client_ctx(int insecure, const char *ca_file, const char **why);
void dx__tls_ctx_free(dx_tls_ctx *ctx);

/* A TLS session on `fd` (already connected). `sni` (client: host name to
 * send and verify; NULL for servers). NULL on allocation failure. */
dx_tls *dx__tls_new(dx_tls_ctx *ctx, int fd, int is_server, const char *sni);
void dx__tls_free(dx_tls *t);

/* Drives the handshake: 1 done, 0 in progress (call again when *want says
 * DX_IO_READ or DX_IO_WRITE is ready), DX_ETLS on failure (*why set). */
int dx__tls_handshake(dx_tls *t, unsigned *want, const char **why);

/* Like dx__read/dx__writev on the plain socket: > 0 bytes, 0 on a clean
 * TLS close or EOF (read only), DX_EBUSY when it would block (check *want:
 * a read may need the socket writable and the reverse), DX_ETLS/DX_EIO on
 * error. dx__tls_writev writes as much of the iovecs as TLS accepts now,
 * coalescing small pieces into records of up to 16 KiB. */
int64_t dx__tls_read(dx_tls *t, void *buf, size_t cap, unsigned *want);
int64_t dx__tls_writev(dx_tls *t, const struct iovec *iov, int n, unsigned *want);

/* Sends close_notify (best effort, non-blocking). */
void dx__tls_shutdown(dx_tls *t);

#endif

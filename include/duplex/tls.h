/* TLS over a non-blocking socket, with OpenSSL: what the server and the
 * client use under wss://, public for programs that drive their own
 * sockets (the `duplex bench` load generator is one). In a build without
 * TLS (-DDUPLEX_TLS=OFF) the contexts cannot be made: both constructors
 * return NULL with "this duplex was built without TLS".
 *
 * Secure defaults: TLS 1.2 minimum, no compression, no renegotiation,
 * OpenSSL's default modern cipher list, ALPN "http/1.1", SNI sent by
 * clients. Clients verify the certificate chain and host name against the
 * system store (or a CA file) unless `insecure`.
 *
 * A dx_tls belongs to the thread of its loop. Writes to a closed peer never
 * raise SIGPIPE (the socket is written with MSG_NOSIGNAL). The fd stays the
 * caller's: dx_tls_free does not close it. */
#ifndef DUPLEX_TLS_H
#define DUPLEX_TLS_H

#include <sys/uio.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dx_tls_ctx dx_tls_ctx;
typedef struct dx_tls dx_tls;

/* Server context from PEM files (`cert_file` may hold the chain). It also
 * prefers the server's cipher order and selects ALPN "http/1.1" when the
 * client offers it (and goes on without ALPN otherwise). On failure returns
 * NULL and sets *why to a one-line static/thread-local message. */
DX_API dx_tls_ctx *dx_tls_server_ctx(const char *cert_file, const char *key_file, const char **why);
/* Client context: `ca_file` NULL uses the system store; `insecure` skips
 * all certificate checks. Offers ALPN "http/1.1". NULL and *why on
 * failure (an unreadable CA file, for one). */
DX_API dx_tls_ctx *dx_tls_client_ctx(int insecure, const char *ca_file, const char **why);
DX_API void dx_tls_ctx_free(dx_tls_ctx *ctx);

/* A TLS session on `fd` (already connected). `sni` (client: host name to
 * send and verify; NULL for servers). An IP literal ("127.0.0.1", "::1" or
 * "[::1]") is verified against the certificate's IP addresses and not sent
 * as SNI. NULL on allocation failure. */
DX_API dx_tls *dx_tls_new(dx_tls_ctx *ctx, int fd, int is_server, const char *sni);
DX_API void dx_tls_free(dx_tls *t);

/* Drives the handshake: 1 done, 0 in progress (call again when *want says
 * DX_IO_READ or DX_IO_WRITE is ready), DX_ETLS on failure (*why set, e.g.
 * "TLS handshake: certificate verify failed: self-signed certificate"). */
DX_API int dx_tls_handshake(dx_tls *t, unsigned *want, const char **why);

/* Like read(2)/writev(2) on a non-blocking socket: > 0 bytes, 0 on a clean
 * TLS close or EOF (read only), DX_EBUSY when it would block (check *want:
 * a read may need the socket writable and the reverse), DX_ETLS/DX_EIO on
 * error. dx_tls_writev writes as much of the iovecs as TLS accepts now,
 * coalescing small pieces into records of up to 16 KiB. */
DX_API int64_t dx_tls_read(dx_tls *t, void *buf, size_t cap, unsigned *want);
/* After dx_tls_writev returned DX_EBUSY or fewer bytes than given, OpenSSL
 * may hold a half-sent record of the bytes that follow: the next call must
 * start with those same bytes and offer at least as many as before (more
 * may follow; fewer fail with DX_ETLS, "bad length"). A caller that keeps
 * its unsent data queued and retries from its head does this naturally.
 * A peer that closed without close_notify reads as 0 (EOF): the WebSocket
 * closing handshake tells a clean close from a cut one. */
DX_API int64_t dx_tls_writev(dx_tls *t, const struct iovec *iov, int n, unsigned *want);

/* The protocol ALPN selected (not NUL-terminated), its length as the
 * result; 0 and *proto NULL when none. Valid while `t` lives. */
DX_API size_t dx_tls_alpn(const dx_tls *t, const char **proto);

/* The text of this thread's last TLS failure (after DX_ETLS/DX_EIO from
 * dx_tls_read or dx_tls_writev, for logs); "" if none yet. Valid until the
 * next failure on this thread. */
DX_API const char *dx_tls_why(void);

/* Sends close_notify (best effort, non-blocking). */
DX_API void dx_tls_shutdown(dx_tls *t);

#ifdef __cplusplus
}
#endif

#endif

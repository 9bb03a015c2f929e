/* The transport: reads and writes on a connected non-blocking socket,
 * plain or through TLS, with one set of results for both. The server's
 * connections, the client and the `duplex bench` load generator all do
 * their socket I/O through it; it is public for programs that drive their
 * own sockets the same way.
 *
 * Stateless: the caller keeps the fd and the dx_tls (duplex/tls.h, or NULL
 * for a plain socket) wherever it likes, and passes both to each call; no
 * memory is allocated. `tls`, when not NULL, must be a session on that same
 * fd whose handshake is done (dx_tls_handshake returned 1). Like dx_tls, a
 * call belongs to the thread that owns the socket.
 *
 * Results, as read(2)/writev(2) on a non-blocking socket: > 0 bytes; 0 at
 * EOF, or a TLS peer's close (reads only); DX_EBUSY when it would block;
 * DX_EIO for a socket error (errno kept: ECONNRESET, EPIPE...), DX_ETLS
 * for a TLS one. A write to a closed peer gives DX_EIO, never SIGPIPE
 * (MSG_NOSIGNAL). EINTR is retried inside. */
#ifndef DUPLEX_SOCK_H
#define DUPLEX_SOCK_H

#include <sys/uio.h>

#include "common.h"
#include "tls.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reads up to `cap` bytes into `buf`. On DX_EBUSY under TLS, *want is
 * or'ed with what TLS waits for (DX_IO_READ, or DX_IO_WRITE: a read may
 * need the socket writable first; duplex/loop.h); a plain socket leaves
 * *want alone (it waits to read). `want` may be NULL. Under TLS a record
 * may already sit decrypted in the library with nothing left on the
 * socket: read until DX_EBUSY rather than until the socket looks empty. */
DX_API int64_t dx_sock_read(int fd, dx_tls *tls, void *buf, size_t cap, unsigned *want);

/* Writes as much of the `n` iovecs as the socket takes now (at most
 * IOV_MAX pieces on a plain socket; under TLS small pieces are gathered
 * into records of up to 16 KiB). A result short of the total means the
 * socket is full. *want as for dx_sock_read (a TLS write may need the
 * socket readable). Under TLS, after DX_EBUSY or a short write the next
 * call must start with the bytes not taken (duplex/tls.h): retry from the
 * head of what is still queued. */
DX_API int64_t dx_sock_writev(int fd, dx_tls *tls, const struct iovec *iov, int n, unsigned *want);

/* Ends our side of the stream, best effort and without blocking: TLS
 * close_notify (nothing before the handshake is done), or shutdown(2) of
 * the write half on a plain socket. The peer reads 0; the fd stays open
 * for its last bytes, and the caller's to close. */
DX_API void dx_sock_shutdown(int fd, dx_tls *tls);

/* One line for logs on `err`, a failed result of dx_sock_read or
 * dx_sock_writev on this thread, asked right after it (errno is read):
 * under TLS the text of the last TLS failure (dx_tls_why), when there is
 * one; for DX_EIO the errno text ("Connection reset by peer"); otherwise
 * dx_strerror(err). Static or thread-local: valid until the next failure
 * on this thread. */
DX_API const char *dx_sock_why(const dx_tls *tls, int64_t err);

#ifdef __cplusplus
}
#endif

#endif

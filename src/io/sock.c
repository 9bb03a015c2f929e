/* The transport (duplex/sock.h): a socket, plain or TLS, behind one set of
 * results. Plain sockets go to net.c, where errno becomes a dx_error, and
 * TLS to tls.c (or tls_none.c, whose sessions never exist). */
#include <duplex/sock.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "io/net.h"

/* The TLS halves stay calls of their own: inlined (each is the only
 * caller of its dx_tls_* function, which link-time optimisation would fold
 * in), they would make dx_sock_read too big to inline in turn, and cost
 * every plain read a call it did not have before. */
#if defined(__GNUC__)
#define DX_OUT_OF_LINE __attribute__((noinline))
#else
#define DX_OUT_OF_LINE
#endif

/* dx_tls_* set their want; ours is or'ed, so that a caller can gather what
 * several calls wait for until it next polls. */
static DX_OUT_OF_LINE int64_t tls_read(dx_tls *tls, void *buf, size_t cap, unsigned *want) {
    unsigned w = 0;
    int64_t n = dx_tls_read(tls, buf, cap, &w);
    if (n == DX_EBUSY && want) *want |= w;
    return n;
}

static DX_OUT_OF_LINE int64_t tls_writev(dx_tls *tls, const struct iovec *iov, int n,
                                         unsigned *want) {
    unsigned w = 0;
    int64_t r = dx_tls_writev(tls, iov, n, &w);
    if (r == DX_EBUSY && want) *want |= w;
    return r;
}

int64_t dx_sock_read(int fd, dx_tls *tls, void *buf, size_t cap, unsigned *want) {
    return tls ? tls_read(tls, buf, cap, want) : dx__read(fd, buf, cap);
}

int64_t dx_sock_writev(int fd, dx_tls *tls, const struct iovec *iov, int n, unsigned *want) {
    return tls ? tls_writev(tls, iov, n, want) : dx__writev(fd, iov, n);
}

void dx_sock_shutdown(int fd, dx_tls *tls) {
    if (tls)
        dx_tls_shutdown(tls);
    else
        (void)shutdown(fd, SHUT_WR);
}

const char *dx_sock_why(const dx_tls *tls, int64_t err) {
    if (tls) {
        const char *w = dx_tls_why();
        if (w && *w) return w;
    }
    return err == DX_EIO && errno ? strerror(errno) : dx_strerror((int)err);
}

/* Internal: sockets. Every errno is turned into a negative dx_error here,
 * and only here (the failing errno is also left in `errno`). */
#ifndef DX_IO_NET_H
#define DX_IO_NET_H

#include <sys/socket.h>
#include <sys/uio.h>

#include <duplex/common.h>

/* A socket address with its printable form "1.2.3.4:5678" / "[::1]:5678". */
typedef struct dx_addr {
    struct sockaddr_storage ss;
    socklen_t len;
} dx_addr;

/* Opens a non-blocking listening TCP socket on host:port (host NULL or ""
 * for all addresses: a dual-stack IPv6 socket, or IPv4 alone where IPv6 is
 * off; IPv4 and IPv6 literals, "[::1]" too, and names: the first address
 * that binds wins). SO_REUSEADDR is set; `reuseport` sets SO_REUSEPORT so
 * several loops can each listen on the same port. Port 0 picks a free port
 * (see dx__local_port). `backlog` <= 0 gives SOMAXCONN.
 * Returns the fd, or DX_EADDR (bad port, unknown name, address not local)
 * / DX_EADDRINUSE / DX_EIO (errno kept). */
int dx__listen(const char *host, int port, int backlog, int reuseport);

/* Accepts one connection (non-blocking, close-on-exec, TCP_NODELAY set);
 * `peer` may be NULL. Returns the fd, DX_EBUSY when none is pending (would
 * block) or the process is out of descriptors or memory, or DX_EIO.
 * On DX_EBUSY with errno EMFILE/ENFILE the connection stays queued and the
 * level-triggered listener stays ready: pause the listener's watcher for a
 * while (a timer) instead of spinning. */
int dx__accept(int lfd, dx_addr *peer);

/* Resolves host:port (blocking getaddrinfo; clients resolve before
 * connecting) to its first address; "[::1]" is taken without brackets.
 * Returns 0 or DX_EADDR. */
int dx__resolve(const char *host, int port, dx_addr *out);

/* Starts a non-blocking connect (TCP_NODELAY set). Returns the fd
 * (connection in progress: wait for DX_IO_WRITE, then dx__connect_result),
 * or DX_ECONNREFUSED / DX_EIO when it failed at once. */
int dx__connect(const dx_addr *addr);
/* 0 when the connect succeeded, DX_ECONNREFUSED or DX_EIO when it failed,
 * DX_EBUSY when it is still in progress (called before the socket became
 * writable). */
int dx__connect_result(int fd);

/* "ip:port" of an address, into `out` (at least 64 bytes): "1.2.3.4:5678",
 * "[::1]:5678"; IPv4-mapped IPv6 addresses print as IPv4; other families
 * give "?". Always NUL-terminated (truncated if `cap` is short). */
void dx__addr_str(const dx_addr *a, char *out, size_t cap);

/* The local port a socket is bound to (getsockname): for a listener opened
 * on port 0. Returns the port or DX_EIO. */
int dx__local_port(int fd);

/* Socket reads and writes with errno mapped and EINTR retried: > 0 bytes;
 * 0 on EOF (read only); DX_EBUSY when it would block; DX_EIO on error
 * (ECONNRESET, EPIPE...). Sockets only: dx__read is recv(2), dx__writev is
 * send(2) for one piece and sendmsg(2) for several, with MSG_NOSIGNAL, so a
 * closed peer gives DX_EIO (EPIPE), never SIGPIPE. dx__writev may write
 * less than asked (and at most IOV_MAX pieces). */
int64_t dx__read(int fd, void *buf, size_t cap);
int64_t dx__writev(int fd, const struct iovec *iov, int n);

#endif

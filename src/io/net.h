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
 * for all addresses; IPv4 and IPv6 literals and names). `reuseport` sets
 * SO_REUSEPORT so several loops can each listen on the same port.
 * Returns the fd, or DX_EADDR / DX_EIO. */
int dx__listen(const char *host, int port, int backlog, int reuseport);

/* Accepts one connection (non-blocking, close-on-exec, TCP_NODELAY set).
 * Returns the fd, DX_EBUSY when none is pending (would block) or the
 * process is out of descriptors, or DX_EIO. */
int dx__accept(int lfd, dx_addr *peer);

/* Resolves host:port (blocking getaddrinfo; clients resolve before
 * connecting). Returns 0 or DX_EADDR. */
int dx__resolve(const char *host, int port, dx_addr *out);

/* Starts a non-blocking connect. Returns the fd (connection in progress:
 * wait for DX_IO_WRITE, then dx__connect_result), or DX_EIO. */
int dx__connect(const dx_addr *addr);
/* 0 when the connect succeeded, DX_ECONNREFUSED or DX_EIO otherwise. */
int dx__connect_result(int fd);

/* "ip:port" of an address, into `out` (at least 64 bytes). */
void dx__addr_str(const dx_addr *a, char *out, size_t cap);

/* read(2)/writev(2) with errno mapped: > 0 bytes; 0 on EOF (read only);
 * DX_EBUSY when it would block; DX_EIO on error (ECONNRESET, EPIPE...). */
int64_t dx__read(int fd, void *buf, size_t cap);
int64_t dx__writev(int fd, const struct iovec *iov, int n);

#endif

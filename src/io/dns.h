/* Internal: host names resolved off the loop's thread.
 *
 * getaddrinfo() blocks for as long as the name servers take: seconds when
 * one is down or the network is gone. On the loop's thread that would stall
 * every connection and timer of the loop, so a name is resolved on a helper
 * thread (one per request, detached) that hands the answer back through an
 * eventfd the loop watches. The caller may give up at any moment
 * (dx__dns_cancel): the helper then frees the request itself when its
 * getaddrinfo returns, and nothing reaches the caller. */
#ifndef DX_IO_DNS_H
#define DX_IO_DNS_H

#include <netdb.h>

#include <duplex/loop.h>

typedef struct dx__dns dx__dns;

/* The answer, on the loop's thread: rc 0 and `res` (borrowed: freed when
 * the callback returns), or a getaddrinfo error (EAI_*; for EAI_SYSTEM,
 * `sys_errno`). The request is gone once the callback runs: do not cancel
 * it from there. */
typedef void (*dx__dns_cb)(void *ctx, int rc, int sys_errno, const struct addrinfo *res);

/* Starts resolving host:port for TCP, any address family. Returns the
 * request, or NULL when out of memory, descriptors or threads. */
dx__dns *dx__dns_start(dx_loop *loop, const char *host, int port, dx__dns_cb cb, void *ctx);

/* Gives up on a request whose callback has not run (NULL: nothing); the
 * callback will not run. Loop thread only. */
void dx__dns_cancel(dx__dns *r);

/* What the helper threads call: getaddrinfo, unless a test sets a slow or
 * failing stand-in (before starting any request). */
extern int (*dx__getaddrinfo)(const char *host, const char *port, const struct addrinfo *hints,
                              struct addrinfo **res);

#endif

/* Sockets: listen, accept, resolve, connect, read and write, with every
 * errno turned into a negative dx_error here and nowhere else. The failing
 * errno is left in `errno` for logs. */
#include "io/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int map_errno(int e) {
    if (e == EAGAIN || e == EWOULDBLOCK) return DX_EBUSY;
    if (e == ECONNREFUSED) return DX_ECONNREFUSED;
    return DX_EIO;
}

/* Copies `host` without the brackets of a URL's IPv6 literal ("[::1]"). */
static const char *unbracket(const char *host, char *buf, size_t cap) {
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < cap) {
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = 0;
        return buf;
    }
    return host;
}

static int lookup(const char *host, int port, int passive, struct addrinfo **res) {
    if (port < 0 || port > 65535) {
        errno = EINVAL;
        return DX_EADDR;
    }
    char portstr[8], hostbuf[256];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    if (host) host = unbracket(host, hostbuf, sizeof hostbuf);
    int rc = getaddrinfo(host, portstr, &hints, res);
    if (rc != 0) {
        if (rc != EAI_SYSTEM) errno = EINVAL;
        return DX_EADDR;
    }
    return 0;
}

static void set_nodelay(int fd) {
    int one = 1;
    /* Frames are written whole; Nagle would only add latency to small ones. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int listen_on(const struct sockaddr *sa, socklen_t len, int backlog, int reuseport,
                     int dual_stack) {
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1, zero = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) goto fail;
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) goto fail;
    if (dual_stack && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) < 0) goto fail;
    if (bind(fd, sa, len) < 0 || listen(fd, backlog) < 0) goto fail;
    return fd;
fail:;
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

static int listen_error(int e) {
    if (e == EADDRINUSE) return DX_EADDRINUSE;
    return e == EADDRNOTAVAIL ? DX_EADDR : DX_EIO;
}

int dx__listen(const char *host, int port, int backlog, int reuseport) {
    if (backlog <= 0) backlog = SOMAXCONN;
    if (port < 0 || port > 65535) {
        errno = EINVAL;
        return DX_EADDR;
    }
    if (!host || !*host) {
        /* All addresses: one dual-stack IPv6 socket takes IPv4 too; fall
         * back to IPv4 alone where IPv6 is disabled. */
        struct sockaddr_in6 a6 = {.sin6_family = AF_INET6,
                                  .sin6_port = htons((uint16_t)port),
                                  .sin6_addr = IN6ADDR_ANY_INIT};
        int fd = listen_on((struct sockaddr *)&a6, sizeof a6, backlog, reuseport, 1);
        if (fd >= 0) return fd;
        if (errno != EAFNOSUPPORT && errno != EADDRNOTAVAIL) return listen_error(errno);
        struct sockaddr_in a4 = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_ANY)};
        fd = listen_on((struct sockaddr *)&a4, sizeof a4, backlog, reuseport, 0);
        return fd >= 0 ? fd : listen_error(errno);
    }
    struct addrinfo *res;
    int rc = lookup(host, port, 1, &res);
    if (rc) return rc;
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
        fd = listen_on(ai->ai_addr, ai->ai_addrlen, backlog, reuseport, 0);
    int e = errno;
    freeaddrinfo(res);
    errno = e;
    if (fd >= 0) return fd;
    return listen_error(errno);
}

int dx__accept(int lfd, dx_addr *peer) {
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            set_nodelay(fd);
            if (peer) {
                peer->ss = ss;
                peer->len = len;
            }
            return fd;
        }
        switch (errno) {
        case EINTR:
        case ECONNABORTED: /* reset while queued: try the next one */
            continue;
        case EAGAIN:
#if EWOULDBLOCK != EAGAIN
        case EWOULDBLOCK:
#endif
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            return DX_EBUSY;
        default:
            return DX_EIO;
        }
    }
}

int dx__resolve(const char *host, int port, dx_addr *out) {
    if (!host || !*host) {
        errno = EINVAL;
        return DX_EADDR;
    }
    struct addrinfo *res;
    int rc = lookup(host, port, 0, &res);
    if (rc) return rc;
    if (res->ai_addrlen > sizeof out->ss) {
        freeaddrinfo(res);
        errno = EINVAL;
        return DX_EADDR;
    }
    memset(out, 0, sizeof *out);
    memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int dx__connect(const dx_addr *addr) {
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return DX_EIO;
    set_nodelay(fd);
    /* EINTR leaves a non-blocking connect going on in the background, just
     * like EINPROGRESS. */
    if (connect(fd, (const struct sockaddr *)&addr->ss, addr->len) == 0 || errno == EINPROGRESS ||
        errno == EINTR)
        return fd;
    int e = errno;
    close(fd);
    errno = e;
    return map_errno(e) == DX_ECONNREFUSED ? DX_ECONNREFUSED : DX_EIO;
}

int dx__connect_result(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return DX_EIO;
    if (err) {
        errno = err;
        return err == ECONNREFUSED ? DX_ECONNREFUSED : DX_EIO;
    }
    struct sockaddr_storage ss;
    len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0) {
        if (errno == ENOTCONN) {
            errno = EINPROGRESS;
            return DX_EBUSY;
        }
        return DX_EIO;
    }
    return 0;
}

void dx__addr_str(const dx_addr *a, char *out, size_t cap) {
    char ip[INET6_ADDRSTRLEN];
    if (!cap) return;
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a->ss;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        snprintf(out, cap, "%s:%u", ip, (unsigned)ntohs(s4->sin_port));
    } else if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->ss;
        /* A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d; print
         * them as the IPv4 addresses they are. */
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], ip, sizeof ip);
            snprintf(out, cap, "%s:%u", ip, (unsigned)ntohs(s6->sin6_port));
        } else {
            inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
            snprintf(out, cap, "[%s]:%u", ip, (unsigned)ntohs(s6->sin6_port));
        }
    } else {
        snprintf(out, cap, "?");
    }
}

int dx__local_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) return DX_EIO;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    errno = EAFNOSUPPORT;
    return DX_EIO;
}

int64_t dx__read(int fd, void *buf, size_t cap) {
    for (;;) {
        /* recv rather than read: the socket call skips the file layer's
         * work (file position, fsnotify), once per read on every socket. */
        ssize_t n = recv(fd, buf, cap, 0);
        if (n >= 0) return n;
        if (errno != EINTR) return map_errno(errno) == DX_EBUSY ? DX_EBUSY : DX_EIO;
    }
}

int64_t dx__writev(int fd, const struct iovec *iov, int n) {
    if (n == 1) {
        /* One segment (an echo, most replies): send() takes the buffer
         * as it is, where sendmsg copies and checks a msghdr and an iovec
         * array in the kernel first, on every message. */
        for (;;) {
            ssize_t w = send(fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
            if (w >= 0) return w;
            if (errno != EINTR) return map_errno(errno) == DX_EBUSY ? DX_EBUSY : DX_EIO;
        }
    }
    if (n > IOV_MAX) n = IOV_MAX; /* a short write; the caller goes on */
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)(n > 0 ? n : 0)};
    for (;;) {
        /* sendmsg rather than writev: MSG_NOSIGNAL turns a write to a
         * closed peer into EPIPE instead of a process-killing SIGPIPE. */
        ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (w >= 0) return w;
        if (errno != EINTR) return map_errno(errno) == DX_EBUSY ? DX_EBUSY : DX_EIO;
    }
}

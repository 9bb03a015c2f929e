/* Internal: an io_uring beside the epoll loop, for the sockets that carry
 * the traffic.
 *
 * A watcher attached here gets completions instead of readiness: a
 * multishot receive delivers the bytes themselves (from a ring of buffers
 * the kernel fills), and a send is handed over whole and reported when it
 * is done. The loop then waits in io_uring_enter, which also submits the
 * sends the iteration produced, and epoll keeps every other descriptor
 * through one IORING_OP_EPOLL_WAIT kept in flight on the same ring. An
 * echo costs one system call instead of three (epoll_wait, recv, send).
 *
 * Used only when the kernel has all of it (Linux 6.15: EPOLL_WAIT;
 * 6.12: incrementally consumed buffers) and io_uring is not switched off
 * (sysctl, seccomp, DUPLEX_NO_IO_URING=1); otherwise nothing attaches and
 * the loop stays on epoll alone. The ring is made in the thread that runs
 * the loop and only that thread may use it (IORING_SETUP_SINGLE_ISSUER): a
 * loop that has a ring must keep running in the thread that first ran it. */
#ifndef DX_IO_URING_H
#define DX_IO_URING_H

#include <stdint.h>
#include <sys/epoll.h>
#include <sys/uio.h>

#include <duplex/loop.h>

/* Events an attached watcher's callback gets; the result is read with
 * dx__uring_got. */
enum {
    DX_IO_RECVD = 0x10, /* bytes arrived (> 0), EOF (0) or an error (< 0) */
    DX_IO_SENT = 0x20,  /* the send finished: bytes sent (maybe fewer) or an error */
};

typedef struct dx__uring dx__uring;

/* ---- for loop.c ---- */

/* A ring whose EPOLL_WAIT reports `epfd`'s events into `events`, or NULL
 * when the kernel lacks something it needs (then never asked again). */
dx__uring *dx__uring_new(int epfd, struct epoll_event *events, int max_events);
void dx__uring_free(dx__uring *u);
/* Submits what is queued and, if `block`, waits for a completion.
 * 0 or DX_EIO. */
int dx__uring_wait(dx__uring *u, int block);
/* Runs the completions: epoll's batch through `epoll_dispatch`, the
 * others through their watchers' callbacks (both get `loop`, which the
 * ring only passes on). `now` is the loop's time for this turn. */
void dx__uring_dispatch(dx__uring *u, dx_loop *loop, uint64_t now,
                        void (*epoll_dispatch)(dx_loop *, int));

/* ---- loop.c, for the owner of a socket ----
 * The one way between the loop and its ring: loop.c calls the ring's
 * functions above, and hands the ring to the owners of sockets here. The
 * ring never calls loop.c (its clock comes with each dispatch). */

/* The loop's ring; with `create`, made on first use (in the thread that
 * runs the loop). NULL when there is none. */
dx__uring *dx__loop_uring(dx_loop *loop, int create);
/* Asks for the ring to be made as the loop starts running (in its thread),
 * so that its descriptor exists before the first connection, not after. */
void dx__loop_want_uring(dx_loop *loop);

/* ---- for the owner of a socket ----
 * `u` is dx__loop_uring's ring; NULL is refused (DX_ESTATE, or nothing
 * done) where the function returns a status. */

/* Moves `w` (not watched by epoll) onto the ring: `cb` gets DX_IO_RECVD
 * and DX_IO_SENT. Sets *id. DX_ESTATE when there is no ring. */
int dx__uring_attach(dx__uring *u, dx_io *w, int fd, dx_io_cb cb, uint32_t *id);
/* Cancels what is in flight and waits for it, so that no buffer of the
 * owner is touched and no callback comes after this returns. */
void dx__uring_detach(dx__uring *u, uint32_t id);
/* Starts (on) or stops receiving. */
int dx__uring_recv(dx__uring *u, uint32_t id, int on);
/* Sends of at most this many bytes are copied (see dx__uring_send). */
#define DX__URING_COPY_MAX 2048

/* Sends `iov` (at most 64 iovecs); one send at a time. Small sends are
 * copied: the return is then the bytes copied, which the caller drops from
 * its queue at once. Otherwise 0: the memory must stay unchanged until
 * DX_IO_SENT, which reports the bytes sent (maybe fewer). A copy is sent
 * whole and its DX_IO_SENT reports 0. < 0: DX_EBUSY (a send is in flight),
 * DX_EINVAL, DX_EIO. */
int64_t dx__uring_send(dx__uring *u, uint32_t id, const struct iovec *iov, int n);
int dx__uring_sending(dx__uring *u, uint32_t id);
/* The completion being delivered: its result, and for DX_IO_RECVD the
 * bytes (writable; valid only inside the callback). */
int64_t dx__uring_got(dx__uring *u, uint8_t **data);

#endif

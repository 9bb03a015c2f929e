/* duplex — the event loop (epoll; a server's open WebSockets on an io_uring
 * where the kernel has it), timers, signals and cross-thread posts.
 *
 * One loop per thread. A loop and everything attached to it belong to the
 * thread that runs it: no call here is thread-safe except dx_loop_post(),
 * the one way for another thread (or a signal handler's owner) to reach it.
 *
 * Watchers and timers are structs the caller embeds in its own objects
 * (no allocation per watcher); the loop links them, the caller owns them
 * and must stop them before freeing their memory.
 *
 * Lifetime rule. Any callback may stop any watcher or timer, including one
 * whose event is still pending in the same iteration: once dx_io_stop() or
 * dx_timer_stop() returns, the loop never touches that struct again (its
 * pending events of the current batch are dropped), so its memory may be
 * reused at once. Objects that hold watchers are usually reachable from
 * elsewhere too (a timer, a broadcast list, the callback that is running),
 * so the recommended pattern is: stop the watchers, close the fd, and free
 * the object from a dx_loop_defer() call, which runs after every callback
 * of the iteration.
 *
 * One iteration: wait for I/O (no longer than the nearest timer), read the
 * clock, call the I/O callbacks of the batch, then the expired timers, then
 * the deferred calls. Posts and signals arrive as I/O.
 *
 * Timers live in a binary min-heap: start, stop and expiry cost O(log n),
 * so 100k connections each with a timer are fine. Callers that would
 * re-arm a timer on every message (idle timeouts) should instead record the
 * time of the last activity and check it when the timer fires.
 */
#ifndef DUPLEX_LOOP_H
#define DUPLEX_LOOP_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dx_loop dx_loop;

/* Events for dx_io. DX_IO_ERROR (EPOLLERR/EPOLLHUP) is always reported,
 * together with the watched READ/WRITE bits so that the owner's next read or
 * write finds the EOF or the error itself. Watchers are level-triggered: an
 * event not acted on (read, written, or the watcher updated or stopped) is
 * reported again on the next iteration. */
enum { DX_IO_READ = 1, DX_IO_WRITE = 2, DX_IO_ERROR = 4 };

typedef struct dx_io dx_io;
typedef void (*dx_io_cb)(dx_loop *loop, dx_io *w, unsigned events);

/* A file descriptor watcher (level-triggered). Embed it and zero it (or
 * start it) before first use; fields are private except `fd`. */
struct dx_io {
    int fd;
    unsigned events; /* what is being watched */
    dx_io_cb cb;
};

typedef struct dx_timer dx_timer;
typedef void (*dx_timer_cb)(dx_loop *loop, dx_timer *t);

/* A one-shot timer. Embed it, zero it (or dx_timer_init) before first use.
 * A callback may restart its own timer; restarted from a timer callback with
 * 0 ms it fires on the next iteration (1 ms later), so a self-restarting
 * timer cannot keep the loop from polling. Timers due in the same
 * millisecond fire in no particular order. */
struct dx_timer {
    uint64_t due;        /* loop time (ms) when it fires */
    uint32_t heap_index; /* private: 0 when not in the heap */
    dx_timer_cb cb;
};

/* Creates a loop (epoll instance, an eventfd for posts, a timerfd for the
 * timers, a receive buffer of `rbuf_size` bytes lent to readers; 0 gives
 * 256 KiB). NULL on failure. */
DX_API dx_loop *dx_loop_new(size_t rbuf_size);

/* Frees the loop. Watchers and timers must be stopped first; posts and
 * deferred calls not yet run are dropped. Signals blocked by
 * dx_loop_on_signal stay blocked. */
DX_API void dx_loop_free(dx_loop *loop);

/* Runs until dx_loop_stop() is called (the loop does not stop by itself
 * when nothing is watched). Returns 0, or DX_EIO if epoll fails. */
DX_API int dx_loop_run(dx_loop *loop);

/* Makes dx_loop_run return after the current iteration. Loop thread only;
 * from another thread, post a function that calls it. */
DX_API void dx_loop_stop(dx_loop *loop);

/* Monotonic milliseconds, cached at the start of each iteration (so every
 * callback of one iteration sees the same value). */
DX_API uint64_t dx_loop_now(const dx_loop *loop);

/* Upper bounds, in microseconds, of the buckets of the loop-turn histogram
 * that dx_server_stats_get reports (server.h); one more bucket, the last,
 * holds every longer turn. A turn is one iteration of dx_loop_run, from the
 * end of its wait to the end of its deferred calls: the time the loop
 * answers nothing else, which is where a stall shows. */
#define DX_LOOP_TURN_BOUNDS_US                                                                     \
    { 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000 }
#define DX_LOOP_TURN_BUCKETS 14 /* the 13 bounds above, then +Inf */

/* The loop-wide receive buffer: every read on this loop may use it, since
 * callbacks never run concurrently. Its content does not survive the
 * callback that filled it. */
DX_API uint8_t *dx_loop_rbuf(dx_loop *loop, size_t *cap);

/* Starts watching `fd` for `events` (DX_IO_READ|DX_IO_WRITE; 0 watches
 * errors only). `w` must not be active on another fd. Returns 0, DX_EINVAL
 * (no callback or a negative fd) or DX_EIO (errno kept). */
DX_API int dx_io_start(dx_loop *loop, dx_io *w, int fd, unsigned events, dx_io_cb cb);
/* Changes the watched events (cheap when unchanged). Returns 0, DX_EINVAL
 * if `w` is not active, or DX_EIO (errno kept). */
DX_API int dx_io_update(dx_loop *loop, dx_io *w, unsigned events);
/* Stops watching (before closing the fd). Safe on a stopped or zeroed
 * watcher. Pending events of the current batch are dropped (see the
 * lifetime rule above). */
DX_API void dx_io_stop(dx_loop *loop, dx_io *w);

DX_API void dx_timer_init(dx_timer *t, dx_timer_cb cb);
/* (Re)starts the timer to fire `after_ms` from dx_loop_now(); it never
 * fires earlier by the loop's clock. May grow the loop's timer heap (room
 * for 64 timers comes with the loop, then it doubles); since this call
 * cannot fail, running out of memory there aborts the process. */
DX_API void dx_timer_start(dx_loop *loop, dx_timer *t, uint64_t after_ms);
/* Stops the timer; safe when not running. */
DX_API void dx_timer_stop(dx_loop *loop, dx_timer *t);
DX_API int dx_timer_active(const dx_timer *t);

/* Runs fn(loop, arg) on the loop's thread during its next iteration, posts
 * in the order they were made, each exactly once. The only thread-safe
 * function of this header (and async-signal-safe is NOT promised: use
 * dx_loop_on_signal for signals). The allocator set with dx_set_allocator
 * must then be thread-safe (the C library's is). Returns 0 or DX_ENOMEM. */
typedef void (*dx_post_fn)(dx_loop *loop, void *arg);
DX_API int dx_loop_post(dx_loop *loop, dx_post_fn fn, void *arg);

/* Runs fn(loop, arg) when `signo` (SIGINT, SIGTERM...) is delivered to the
 * process, on this loop (signalfd). The signal is blocked in the calling
 * thread; block it in every thread (call before creating threads, which
 * inherit the mask) so that exactly one loop receives it. Calling it again
 * for the same signal replaces fn and arg. Returns 0, DX_EINVAL (bad signal
 * number or no fn) or DX_EIO. */
DX_API int dx_loop_on_signal(dx_loop *loop, int signo, dx_post_fn fn, void *arg);

/* Runs fn(loop, arg) once, after the current iteration's callbacks (for
 * deferred frees and errors delivered on the next turn instead of
 * re-entering the caller). Deferred calls run in the order they were made;
 * one made from a deferred call runs in the next iteration, which then
 * does not wait for I/O. Returns 0 or DX_ENOMEM. */
DX_API int dx_loop_defer(dx_loop *loop, dx_post_fn fn, void *arg);

#ifdef __cplusplus
}
#endif
#endif

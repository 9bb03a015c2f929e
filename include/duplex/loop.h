/* duplex — the event loop (epoll), timers, signals and cross-thread posts.
 *
 * One loop per thread. A loop and everything attached to it belong to the
 * thread that runs it: no call here is thread-safe except dx_loop_post(),
 * the one way for another thread (or a signal handler's owner) to reach it.
 *
 * Watchers and timers are structs the caller embeds in its own objects
 * (no allocation per watcher); the loop links them, the caller owns them
 * and must stop them before freeing their memory.
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

/* Events for dx_io. DX_IO_ERROR (EPOLLERR/EPOLLHUP) is always reported. */
enum { DX_IO_READ = 1, DX_IO_WRITE = 2, DX_IO_ERROR = 4 };

typedef struct dx_io dx_io;
typedef void (*dx_io_cb)(dx_loop *loop, dx_io *w, unsigned events);

/* A file descriptor watcher (level-triggered). Embed it; fields are
 * private except `fd`. */
struct dx_io {
    int fd;
    unsigned events; /* what is being watched */
    dx_io_cb cb;
};

typedef struct dx_timer dx_timer;
typedef void (*dx_timer_cb)(dx_loop *loop, dx_timer *t);

/* A one-shot timer. Embed it, zero it (or dx_timer_init) before first use.
 * A callback may restart its own timer. */
struct dx_timer {
    uint64_t due;        /* loop time (ms) when it fires */
    uint32_t heap_index; /* private: 0 when not in the heap */
    dx_timer_cb cb;
};

/* Creates a loop (epoll instance, an eventfd for posts, a receive buffer
 * of `rbuf_size` bytes lent to readers; 0 gives 256 KiB). NULL on failure. */
DX_API dx_loop *dx_loop_new(size_t rbuf_size);

/* Frees the loop. Watchers and timers must be stopped first; posts not yet
 * run are dropped. */
DX_API void dx_loop_free(dx_loop *loop);

/* Runs until dx_loop_stop() is called. Returns 0, or DX_EIO if epoll
 * fails. */
DX_API int dx_loop_run(dx_loop *loop);

/* Makes dx_loop_run return after the current iteration. Loop thread only;
 * from another thread, post a function that calls it. */
DX_API void dx_loop_stop(dx_loop *loop);

/* Monotonic milliseconds, cached at the start of each iteration (so every
 * callback of one iteration sees the same value). */
DX_API uint64_t dx_loop_now(const dx_loop *loop);

/* The loop-wide receive buffer: every read on this loop may use it, since
 * callbacks never run concurrently. Its content does not survive the
 * callback that filled it. */
DX_API uint8_t *dx_loop_rbuf(dx_loop *loop, size_t *cap);

/* Starts watching `fd` for `events` (DX_IO_READ|DX_IO_WRITE). Returns 0 or
 * DX_EIO (errno kept). */
DX_API int dx_io_start(dx_loop *loop, dx_io *w, int fd, unsigned events, dx_io_cb cb);
/* Changes the watched events (cheap when unchanged). */
DX_API int dx_io_update(dx_loop *loop, dx_io *w, unsigned events);
/* Stops watching (before closing the fd). Safe on a stopped watcher. */
DX_API void dx_io_stop(dx_loop *loop, dx_io *w);

DX_API void dx_timer_init(dx_timer *t, dx_timer_cb cb);
/* (Re)starts the timer to fire `after_ms` from dx_loop_now(). */
DX_API void dx_timer_start(dx_loop *loop, dx_timer *t, uint64_t after_ms);
/* Stops the timer; safe when not running. */
DX_API void dx_timer_stop(dx_loop *loop, dx_timer *t);
DX_API int dx_timer_active(const dx_timer *t);

/* Runs fn(loop, arg) on the loop's thread during its next iteration. The
 * only thread-safe function of this header (and async-signal-safe is NOT
 * promised: use dx_loop_on_signal for signals). Returns 0 or DX_ENOMEM. */
typedef void (*dx_post_fn)(dx_loop *loop, void *arg);
DX_API int dx_loop_post(dx_loop *loop, dx_post_fn fn, void *arg);

/* Runs fn(loop, arg) when `signo` (SIGINT, SIGTERM...) is delivered to the
 * process, on this loop (signalfd). The signal is blocked in the calling
 * thread; block it in every thread (call before creating threads, which
 * inherit the mask) so that exactly one loop receives it. Returns 0 or
 * DX_EIO. */
DX_API int dx_loop_on_signal(dx_loop *loop, int signo, dx_post_fn fn, void *arg);

/* Runs fn(loop, arg) once, after the current iteration's callbacks (for
 * deferred frees and errors delivered on the next turn instead of
 * re-entering the caller). Returns 0 or DX_ENOMEM. */
DX_API int dx_loop_defer(dx_loop *loop, dx_post_fn fn, void *arg);

#ifdef __cplusplus
}
#endif
#endif

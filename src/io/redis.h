/* Internal: one Redis connection on a duplex event loop, through hiredis's
 * async API, that never gives up.
 *
 * hiredis does the protocol (RESP) and the command queue; this file gives
 * it the loop: its addRead/delRead/addWrite/delWrite/cleanup hooks become
 * one dx_io watcher, and what hiredis 0.14 lacks (a connect timeout, a
 * dead-peer check, reconnection) is done here with dx_timers.
 *
 * Life of a connection. dx__redis_new() starts connecting at once. When the
 * TCP connection is made, AUTH (when the URL has a password) and SELECT db
 * are sent; their replies make the connection "up" and on_up runs, where
 * the owner sends what each fresh connection needs (SUBSCRIBE...). When a
 * connect attempt fails, a reply to the handshake is an error, the
 * connection breaks, or a PING goes unanswered for ping_timeout_ms, the
 * connection is dropped (on_down runs if it had been up), every pending
 * command callback runs with a NULL reply, and a new attempt starts after a
 * backoff: base * 2^n capped at max, with "equal jitter" (a random half on
 * top of the other half) so that nodes cut off together do not come back
 * in lockstep. Success resets the backoff.
 *
 * Threads: like the loop, a dx__redis belongs to the loop's thread.
 */
#ifndef DX_IO_REDIS_H
#define DX_IO_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include <duplex/loop.h>

/* dx__redis_parse_url is exported from libduplex.so for libduplex_chat.so
 * alone (internal: no promise beyond the same version of both); the
 * connection itself is used through the bus (redisbus.h). */
struct redisAsyncContext;

typedef struct dx__redis dx__redis;

/* What a redis:// URL names. */
typedef struct dx__redis_addr {
    char host[256];
    int port;           /* [6379] */
    int db;             /* [0] */
    char password[128]; /* empty: no AUTH */
} dx__redis_addr;

/* Parses "redis://[[user]:password@]host[:port][/db]" (host may be an IPv6
 * address in brackets). Returns 0, or DX_EINVAL with *why set to a static
 * reason. */
DX_API int dx__redis_parse_url(const char *url, dx__redis_addr *out, const char **why);

typedef struct dx__redis_config {
    dx__redis_addr addr;
    uint32_t connect_timeout_ms; /* resolve (off the loop) + connect + AUTH/SELECT [2000] */
    uint32_t backoff_base_ms;    /* first retry delay, before jitter [100] */
    uint32_t backoff_max_ms;     /* cap of the retry delay [5000] */
    /* PING every ping_interval_ms while up and drop the connection when a
     * PING is still unanswered after ping_timeout_ms; 0 turns it off. Not
     * for a connection in subscribed mode (hiredis 0.14 cannot route the
     * reply there): leave it 0 and check that connection another way. */
    uint32_t ping_interval_ms;
    uint32_t ping_timeout_ms; /* [= ping_interval_ms] */
    /* The connection is up (handshake done): send what it needs. */
    void (*on_up)(dx__redis *r, void *user);
    /* The connection that was up is gone; a reconnect is scheduled. `why`
     * is a short static or hiredis-owned string, valid during the call. */
    void (*on_down)(dx__redis *r, void *user, const char *why);
    void *user;
} dx__redis_config;

/* Reply callback, hiredis's own type: (ctx, redisReply *reply, privdata).
 * `reply` is NULL when the connection went away before the answer; it is
 * owned by hiredis and freed when the callback returns. */
typedef void dx__redis_reply_fn(struct redisAsyncContext *ac, void *reply, void *privdata);

/* Creates the connection and starts the first attempt (its failure is not
 * an error here: it is retried). `cfg` is copied. NULL when out of memory. */
dx__redis *dx__redis_new(dx_loop *loop, const dx__redis_config *cfg);

/* Drops the connection (pending callbacks run with a NULL reply; on_down
 * does not run) and frees. Not from inside a callback of `r` (a reply,
 * on_up, on_down): defer it with dx_loop_defer. NULL is fine. */
void dx__redis_free(dx__redis *r);

/* 1 while the connection is up (handshake done, not dropped). */
int dx__redis_up(const dx__redis *r);

/* Queues a command (hiredis copies the arguments). `fn` may be NULL.
 * Returns 0, DX_ESTATE when the connection is not up (nothing queued, fn
 * not called), or DX_ENOMEM. */
int dx__redis_command(dx__redis *r, dx__redis_reply_fn *fn, void *privdata, int argc,
                      const char **argv, const size_t *argvlen);

/* Drops the connection now as if it had broken (for a failed liveness
 * check of the owner's); a reconnect follows. No-op when not connected. */
void dx__redis_reset(dx__redis *r, const char *why);

/* Bytes of commands queued in hiredis and not yet written (0 when not
 * connected): the owner's backpressure check, since hiredis has no limit. */
size_t dx__redis_queued(const dx__redis *r);

/* Why the last attempt failed or the connection went down ("" before any
 * failure). Valid until the next loop iteration. */
const char *dx__redis_why(const dx__redis *r);

/* Counters for tests, /healthz and the metrics: connection attempts
 * started, times the connection came up (each after the first is a
 * reconnection). Plain words of the loop's thread: another thread may read
 * them, a moment old. */
uint64_t dx__redis_attempts(const dx__redis *r);
uint64_t dx__redis_ups(const dx__redis *r);

/* The delay before retry number `n` (0-based) with `rnd` a random 32-bit
 * value: d - rnd % (d / 2 + 1), d = min(max, base << n), base 0 taken as 1
 * (dx__backoff_delay of core/backoff.h, factor 2, jitter 0.5). Exposed
 * for the unit test. */
uint32_t dx__redis_backoff(uint32_t base, uint32_t max, unsigned n, uint32_t rnd);

#endif

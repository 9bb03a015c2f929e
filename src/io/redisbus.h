/* Internal: a pub/sub bus between the nodes of a cluster over Redis — the
 * part that the server's fan-out (server/redis_fanout.c) and the chat's
 * broker (chat/broker_redis.c) share, so that each keeps only its own
 * message format and what a message means to it.
 *
 * Two connections (redis.h, each with its own reconnect and backoff): a
 * publisher, checked with PING, and a subscriber, which cannot be (hiredis
 * 0.14 cannot route a PONG in subscribed mode).
 *
 * Node tagging. Every message on the channel starts with the bus's tag:
 *
 *     'd' 'x' format | node id (8 bytes) | the user's bytes
 *
 * `format` is the user's wire format (1 the fan-out, 2 the chat). The bus
 * writes the tag, drops on receipt what does not carry it (stats.invalid)
 * and this node's own messages (stats.own), and hands the rest to
 * on_message without the tag.
 *
 * Health. The bus is up while the publisher is up and the subscriber has
 * confirmed its subscriptions. The subscriber is checked end to end: it
 * also listens on a private probe channel, "duplex:<db>:probe:<random>", on
 * which the publisher sends a probe every probe_ms; a probe not back within
 * probe_timeout_ms (checked at the next tick) means the subscriber is deaf
 * (a half-open connection) although its socket looks fine, and it is
 * reset ("subscriber probe lost"). Each probe that comes back is a sample
 * of the bus's latency. Every change of health is told once through
 * on_state; a Redis that is down from the start is told at the first tick.
 *
 * Single-threaded: a bus belongs to the loop it was created on. The calls
 * marked DX_API are exported from libduplex.so for libduplex_chat.so's
 * broker alone (internal: no promise beyond the same version of both). */
#ifndef DX_IO_REDISBUS_H
#define DX_IO_REDISBUS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <duplex/loop.h>

#include "io/redis.h"

typedef struct dx__rbus dx__rbus;

typedef struct dx__rbus_config {
    dx__redis_addr addr;
    /* The channel every node of the cluster publishes on and subscribes
     * to. Redis pub/sub ignores SELECT, so a user puts the database number
     * in the name. Borrowed for the call; at most 63 bytes. */
    const char *channel;
    uint8_t format;            /* third byte of the tag: the user's wire format */
    uint8_t node_id[8];        /* unique per process */
    uint32_t probe_ms;         /* probe interval [1000] */
    uint32_t probe_timeout_ms; /* [3000] */
    size_t max_queued;         /* unwritten publisher bytes above which publish refuses [64 MiB] */
    /* Required: a message of another node, `node` (8 bytes) and what
     * follows the tag, borrowed for the call. The callback may publish. */
    void (*on_message)(void *user, const uint8_t *node, const uint8_t *body, size_t len);
    /* Health changed: up 1, or 0 with a reason (valid during the call).
     * Optional. */
    void (*on_state)(void *user, int up, const char *why);
    void *user;
} dx__rbus_config;

/* Creates the bus and starts connecting; failures to reach Redis are
 * retried with backoff, not reported here. `cfg` is copied. NULL when out
 * of memory or the channel name is too long. */
DX_API dx__rbus *dx__rbus_new(dx_loop *loop, const dx__rbus_config *cfg);

/* Closes both connections and frees. Not from inside a callback of the
 * bus. NULL is fine. */
DX_API void dx__rbus_free(dx__rbus *b);

/* 1 while the publisher is up and the subscription confirmed. */
DX_API int dx__rbus_up(const dx__rbus *b);

/* PUBLISHes the tag followed by the `n` parts of `iov` (copied) as one
 * message. Returns 0 (handed to hiredis), DX_ESTATE when the publisher is
 * not up or has more than max_queued bytes unwritten (the message is
 * dropped: nothing is queued for later), or DX_ENOMEM. */
DX_API int dx__rbus_publish(dx__rbus *b, const struct iovec *iov, int n);

/* Queues another command on the publisher, reply ignored (hiredis copies
 * the arguments; `argvlen` NULL: strings). Returns 0, DX_ESTATE when the
 * publisher is not up, or DX_ENOMEM. */
DX_API int dx__rbus_command(dx__rbus *b, int argc, const char **argv, const size_t *argvlen);

typedef struct dx__rbus_stats {
    uint64_t up;         /* gauge: dx__rbus_up */
    uint64_t reconnects; /* connections made again after one was lost, both counted */
    uint64_t own;        /* this node's messages heard back and dropped */
    uint64_t invalid;    /* messages on the channel without the tag */
    /* Probe round trips, in microseconds, in the loop's buckets
     * (DX_LOOP_TURN_BOUNDS_US, not cumulative; the last over every bound). */
    uint64_t bus_us[DX_LOOP_TURN_BUCKETS];
    uint64_t bus_us_sum;
} dx__rbus_stats;

/* Copies the counters. Plain words written by the loop's thread: another
 * thread may call this while the bus is alive and get values a moment
 * old. */
DX_API void dx__rbus_stats_get(const dx__rbus *b, dx__rbus_stats *out);

#endif

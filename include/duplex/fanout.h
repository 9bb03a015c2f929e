/* Several nodes: the Redis broker of a dx_server (server.h, "several
 * nodes"; docs/cluster.md). Part of the cluster build (DUPLEX_CLUSTER,
 * hiredis); without it dx_fanout_check_url and dx_fanout_new refuse every
 * URL with "this duplex was built without cluster support".
 *
 * Every broadcast and topic publish of the server is PUBLISHed on one
 * Redis channel per database, "duplex:<db>:fanout", tagged with the node's
 * id; every node SUBSCRIBEs to that channel and delivers what other nodes
 * published to its own clients (dx_server_deliver), skipping its own
 * messages, so each client gets each message exactly once. Message format
 * on the channel (binary, one PUBLISH per message):
 *
 *     'd' 'x' 1 | node id (8 bytes) | opcode (1: text, 2: binary)
 *     | topic length (1 byte, 0 = broadcast) | topic | payload
 *
 * Two connections to Redis: one publishes (and is checked
 * with PING), one is subscribed. The subscriber is checked end to end: it
 * also listens on a private probe channel on which the publisher sends a
 * probe every second; a probe not back within 3 s resets the subscriber.
 * The broker is up (healthz 200) while the publisher is up and the
 * subscription is confirmed; otherwise local delivery goes on and what
 * this node publishes meanwhile does not reach the other nodes (it is not
 * queued: see docs/cluster.md).
 *
 * One fan-out per server, on the server's loop thread. Several servers of
 * one process (duplex serve --threads) share one node id, so that none of
 * them delivers what another thread of the process already delivered. */
#ifndef DUPLEX_FANOUT_H
#define DUPLEX_FANOUT_H

#include <stdint.h>

#include "server.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dx_fanout dx_fanout;

typedef struct dx_fanout_config {
    /* "redis://[[user]:password@]host[:port][/db]"; host may be a name
     * (resolved off the loop) or an IPv6 address in brackets. Borrowed for
     * the call. */
    const char *url;
    /* This node's id: the same for every server of one process (each
     * thread's), different across processes. All zero: a random one. */
    uint8_t node_id[8];
    /* Health changes: up 1 (both connections ready) or 0 with a reason
     * (valid during the call). Optional; called on the loop's thread. */
    void (*on_state)(void *user, int up, const char *why);
    void *user;
} dx_fanout_config;

/* Checks a redis:// URL as dx_fanout_new would take it, for a command line
 * to refuse a bad one before anything starts. Returns 0, or DX_EINVAL with
 * *why (may be NULL) set to a static one-line reason. */
DX_API int dx_fanout_check_url(const char *url, const char **why);

/* Creates the fan-out, sets it as `srv`'s broker (dx_server_set_broker)
 * and starts connecting; failures to reach Redis are retried with backoff,
 * not reported here. Returns NULL with *why (may be NULL) set: a bad URL,
 * out of memory, or a build without cluster support. Call on the loop's
 * thread; free it before the server. */
DX_API dx_fanout *dx_fanout_new(dx_server *srv, const dx_fanout_config *cfg, const char **why);

/* Removes the broker from the server and frees. NULL is fine. */
DX_API void dx_fanout_free(dx_fanout *f);

/* 1 when both connections are ready (what /healthz reports), else 0. */
DX_API int dx_fanout_up(const dx_fanout *f);

typedef struct dx_fanout_stats {
    uint64_t published; /* handed to Redis */
    uint64_t dropped;   /* not forwarded: Redis down or out of memory */
    uint64_t received;  /* from other nodes, delivered locally */
    uint64_t own;       /* our own messages seen again and skipped */
    uint64_t invalid;   /* messages on the channel not in our format */
} dx_fanout_stats;

/* Copies the counters (loop thread). */
DX_API void dx_fanout_stats_get(const dx_fanout *f, dx_fanout_stats *out);

/* The link to Redis, for monitoring (docs/metrics.md). Like
 * dx_server_stats: `size` set by the caller, fields only ever added at the
 * end, plain words written by the loop's thread. */
typedef struct dx_fanout_link_stats {
    size_t size;         /* set to sizeof(dx_fanout_link_stats) before the call */
    uint64_t up;         /* gauge: 1 while dx_fanout_up, else 0 */
    uint64_t reconnects; /* connections to Redis made again after one was lost
                            (publisher and subscriber each count) */
    /* The bus's latency: a probe PUBLISHed by this node until its own
     * subscriber receives it from Redis (the path every message to the
     * other nodes takes), one sample a second while up; on this node's
     * clock, in microseconds, in the loop's buckets (DX_LOOP_TURN_BOUNDS_US
     * in loop.h, not cumulative; the last is over the last bound). */
    uint64_t bus_us[DX_LOOP_TURN_BUCKETS];
    uint64_t bus_us_sum;
} dx_fanout_link_stats;

/* Fills `out` up to out->size (a smaller, older struct gets its part, a
 * larger one zeros after what this library knows) and sets out->size to
 * the bytes filled. Returns 0, or DX_EINVAL (NULL, or a size less than the
 * `size` and `up` fields). Threads: like dx_server_stats_get, may be called
 * from another thread while the fan-out is alive (each field is a naturally
 * aligned 64-bit word; a value may be a moment old). */
DX_API int dx_fanout_link_stats_get(const dx_fanout *f, dx_fanout_link_stats *out);

#ifdef __cplusplus
}
#endif

#endif

/* Internal: the Redis broker of a dx_server (server.h, "several nodes").
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
 * Two connections (dx__redis, io/redis.h): one publishes (and is checked
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
#ifndef DX_SERVER_REDIS_FANOUT_H
#define DX_SERVER_REDIS_FANOUT_H

#include <stdint.h>

#include <duplex/server.h>

#include "io/redis.h"

typedef struct dx__fanout dx__fanout;

typedef struct dx__fanout_config {
    dx__redis_addr addr;
    uint8_t node_id[8];
    /* Health changes: up 1 (both connections ready) or 0 with a reason.
     * Optional. */
    void (*on_state)(void *user, int up, const char *why);
    void *user;
} dx__fanout_config;

/* Creates the fan-out, sets it as `srv`'s broker and starts connecting.
 * NULL when out of memory. */
dx__fanout *dx__fanout_new(dx_server *srv, const dx__fanout_config *cfg);

/* Removes the broker from the server and frees (before the server). NULL
 * is fine. */
void dx__fanout_free(dx__fanout *f);

/* 1 when both connections are ready. */
int dx__fanout_up(const dx__fanout *f);

typedef struct dx__fanout_stats {
    uint64_t published; /* handed to Redis */
    uint64_t dropped;   /* not forwarded: Redis down or out of memory */
    uint64_t received;  /* from other nodes, delivered locally */
    uint64_t own;       /* our own messages seen again and skipped */
    uint64_t invalid;   /* messages on the channel not in our format */
} dx__fanout_stats;
void dx__fanout_stats_get(const dx__fanout *f, dx__fanout_stats *out);

#endif

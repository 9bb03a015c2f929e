/* Internal: the chat broker (broker.h) of a node in a cluster, over Redis.
 *
 * Deliveries. publish(uid, data, except) hands the message to this node's
 * devices at once (`deliver`, as the local broker does) and PUBLISHes it on
 * "duplex:<db>:chat" tagged with the node id; the other nodes hand it to
 * their devices of `uid` (a node with none drops it after one lookup). A
 * node skips its own messages, so every device gets each message once.
 * Messages published while Redis is down reach this node's devices only;
 * the chat protocol's sync is what catches the others up.
 *
 * Presence. The interface answers device counts synchronously, so each
 * node keeps a mirror: its own counts (exact) and, per other node, that
 * node's count for each user, learned from presence events on the same
 * channel. In Redis, each (user, node) with devices has the key
 * "duplex:<db>:presence:<uid>:<node id hex>" = device count, with a TTL
 * (presence_ttl_ms) refreshed by every heartbeat (a third of the TTL) and
 * deleted when the count falls to 0: what any tool can read, and what a
 * crashed node leaves behind only until the TTL. Every heartbeat is also
 * announced on the channel; a node not heard from for the TTL is dropped
 * from the mirror (its users go offline there: on_remote tells). A node
 * that (re)subscribes asks the others to announce their counts again.
 *
 * The two connections, the node tag, the health (with the subscriber's
 * probe, here once a heartbeat) and the link's statistics are the bus's
 * (io/redisbus.h), the same as the server's fan-out stands on.
 *
 * Wire format on the channel (binary): the bus's tag, 'd' 'x' 2 | node id
 * (8), then kind | uid length (1) | uid | body, kind 'M' (body: the JSON
 * message), 'P' (body: the node's device count of uid, 4 bytes
 * big-endian), 'H' (heartbeat, no uid) or 'R' (please announce your
 * counts, no uid).
 *
 * Single-threaded: the broker belongs to the loop it was created on. */
#ifndef DX_CHAT_BROKER_REDIS_H
#define DX_CHAT_BROKER_REDIS_H

#include <stdint.h>

#include <duplex/chat.h>
#include <duplex/loop.h>

#include "chat/broker.h"
#include "io/redis.h"

typedef struct dx__chat_redis_config {
    dx__redis_addr addr;
    uint8_t node_id[8];       /* unique per process */
    uint32_t presence_ttl_ms; /* [15000] */
    /* The bus is up (both connections, subscribed) (1) or not (0), with
     * a reason; optional. */
    void (*on_state)(void *user, int up, const char *why);
    /* The count of devices of `uid` across the cluster changed because of
     * another node (its announcement, or its expiry after a crash): the
     * engine may push presence to the user's contacts. Optional. */
    void (*on_remote)(void *user, const char *uid, int64_t devices);
    void *user;
} dx__chat_redis_config;

/* Creates the broker and starts connecting (the first failures are
 * retried, not reported as errors). NULL when out of memory. Freed with
 * b->ops->free(b); this node's presence keys then expire within the TTL,
 * and the other nodes drop it from their mirrors within the TTL too. */
dx__chat_broker *dx__chat_broker_redis(dx_loop *loop, const dx__chat_redis_config *cfg,
                                       dx__chat_deliver_fn deliver, void *arg);

/* 1 when both connections are up and subscribed (b must come from
 * dx__chat_broker_redis). */
int dx__chat_broker_redis_up(const dx__chat_broker *b);

/* Fills the cluster fields of `out` (redis_up, redis_reconnects, bus_us,
 * bus_us_sum; not `redis`). */
void dx__chat_broker_redis_stats(const dx__chat_broker *b, dx_chat_stats *out);

#endif

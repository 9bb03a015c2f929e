/* Internal: the chat broker interface — how one node reaches the devices
 * of a user wherever they are connected, and counts them for presence.
 *
 * The chat logic never sends to a socket of another user itself: it
 * publishes to the user's channel, and the broker hands the message to the
 * node(s) holding that user's devices through `deliver`. The local broker
 * (broker_local.c) is a direct call on this node; a Redis broker (several
 * nodes) is one more dx__chat_broker_ops table, and the chat logic does not
 * change. Single-threaded, like the loop that owns it. */
#ifndef DX_CHAT_BROKER_H
#define DX_CHAT_BROKER_H

#include <stddef.h>
#include <stdint.h>

/* Hands `data` (a complete JSON message, borrowed for the call) to this
 * node's devices of `uid`, except `except` (an opaque device handle of this
 * node, or NULL). */
typedef void (*dx__chat_deliver_fn)(void *arg, const char *uid, const char *data, size_t len,
                                    const void *except);

typedef struct dx__chat_broker dx__chat_broker;

typedef struct dx__chat_broker_ops {
    void (*free)(dx__chat_broker *b);
    /* Sends `data` to every device of `uid` on every node, except the
     * device `except` of this node (may be NULL). 0, DX_ENOMEM or DX_EIO. */
    int (*publish)(dx__chat_broker *b, const char *uid, const char *data, size_t len,
                   const void *except);
    /* A device of `uid` connected to this node (online) or left it
     * (offline). Returns how many devices of `uid` are connected across
     * every node after the change (>= 0), or DX_ENOMEM. */
    int64_t (*online)(dx__chat_broker *b, const char *uid);
    int64_t (*offline)(dx__chat_broker *b, const char *uid);
    /* How many devices of `uid` are connected now. */
    int64_t (*devices)(dx__chat_broker *b, const char *uid);
} dx__chat_broker_ops;

struct dx__chat_broker {
    const dx__chat_broker_ops *ops;
    dx__chat_deliver_fn deliver;
    void *deliver_arg;
};

/* The in-process broker: publish calls `deliver` at once; device counts in
 * a hash table. NULL when out of memory. */
dx__chat_broker *dx__chat_broker_local(dx__chat_deliver_fn deliver, void *arg);

#endif

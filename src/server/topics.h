/* Internal: fan-out on this node (topics.c): broadcast to every open
 * WebSocket and pub/sub topics, each message framed once and shared. Above
 * wsapi.c; broker.c adds the cluster on top. */
#ifndef DX_SERVER_TOPICS_H
#define DX_SERVER_TOPICS_H

#include <stddef.h>

#include "server/state.h"

/* The connection's subscriptions go (srv->hooks.drop_subs). */
void dx__topics_drop_conn(dx_server_conn *c);
void dx__topics_free(dx__topics *t);
int dx__topics_publish_local(dx_server *srv, const char *topic, enum dx_opcode op, const void *data,
                             size_t len, const dx_server_conn *except);
/* dx_server_broadcast without the broker. */
int dx__srv_broadcast_local(dx_server *s, enum dx_opcode op, const void *data, size_t len,
                            const dx_server_conn *except);

#endif

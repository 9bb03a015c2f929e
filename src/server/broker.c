/* The broker hook (server.h): broadcasts and publishes go to the local
 * clients first and then to the broker, which carries them to the other
 * nodes; what comes back from the other nodes is delivered locally only.
 * Local delivery never waits for the broker and never fails because of it. */
#include <stdio.h>
#include <string.h>

#include "server/broker.h"
#include "server/respond.h"
#include "server/topics.h"

int dx_server_set_broker(dx_server *srv, const dx_server_broker *b) {
    if (b && !b->publish) return DX_EINVAL;
    if (b)
        srv->broker = *b;
    else
        memset(&srv->broker, 0, sizeof srv->broker);
    return 0;
}

int dx_server_broadcast(dx_server *s, enum dx_opcode op, const void *data, size_t len,
                        const dx_server_conn *except) {
    int n = dx__srv_broadcast_local(s, op, data, len, except);
    if (n != DX_EINVAL && s->broker.publish)
        (void)s->broker.publish(s->broker.ctx, NULL, op, data, len);
    return n;
}

int dx_server_publish(dx_server *srv, const char *topic, enum dx_opcode op, const void *data,
                      size_t len, const dx_server_conn *except) {
    int n = dx__topics_publish_local(srv, topic, op, data, len, except);
    if (n != DX_EINVAL && srv->broker.publish)
        (void)srv->broker.publish(srv->broker.ctx, topic, op, data, len);
    return n;
}

int dx_server_deliver(dx_server *srv, const char *topic, enum dx_opcode op, const void *data,
                      size_t len) {
    if (!data && len) return DX_EINVAL;
    return topic ? dx__topics_publish_local(srv, topic, op, data, len, NULL)
                 : dx__srv_broadcast_local(srv, op, data, len, NULL);
}

void dx__broker_healthz(dx_server_conn *c, int head) {
    const dx_server_broker *b = &c->srv->broker;
    if (!b->publish) {
        (void)dx__req_respond(c, 200, NULL, "Cache-Control: no-store\r\n", "ok", 2, head);
        return;
    }
    int up = b->up ? b->up(b->ctx) != 0 : 1;
    char body[160];
    int n = snprintf(body, sizeof body, "{\"status\":\"%s\",\"%.64s\":\"%s\"}\n",
                     up ? "ok" : "degraded", b->name ? b->name : "broker", up ? "up" : "down");
    (void)dx__req_respond(c, up ? 200 : 503, "application/json", "Cache-Control: no-store\r\n",
                          body, (size_t)n, head);
}

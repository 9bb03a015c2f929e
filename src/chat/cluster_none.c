/* Stand-in for store_pg.c and broker_redis.c in a build without cluster
 * support (-DDUPLEX_CLUSTER=OFF): a postgresql:// database or a redis://
 * URL is refused with this reason, and nothing links libpq or hiredis. */
#include "chat/broker_redis.h"
#include "chat/store.h"

static const char *const off =
    "this duplex was built without cluster support (-DDUPLEX_CLUSTER=OFF)";

dx__chat_store *dx__chat_store_pg(const char *url, const char **why) {
    (void)url;
    *why = off;
    return NULL;
}

dx__chat_broker *dx__chat_broker_redis(dx_loop *loop, const dx__chat_redis_config *cfg,
                                       dx__chat_deliver_fn deliver, void *arg) {
    (void)loop, (void)cfg, (void)deliver, (void)arg;
    return NULL;
}

int dx__chat_broker_redis_up(const dx__chat_broker *b) {
    (void)b;
    return 0;
}

void dx__chat_broker_redis_stats(const dx__chat_broker *b, dx_chat_stats *out) {
    (void)b, (void)out;
}

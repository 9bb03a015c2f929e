/* Stand-in for redis.c in a build without cluster support
 * (-DDUPLEX_CLUSTER=OFF): a redis:// URL is refused with this reason, so
 * `duplex serve --redis` and dx_chat_config.redis_url say how the library
 * was built, and nothing links hiredis. The bus (redisbus.c) has no
 * stand-in: its only callers, the fan-out and the chat's Redis broker, are
 * replaced by redis_fanout_none.c and chat/cluster_none.c. */
#include <duplex/common.h>

#include "io/redis.h"

int dx__redis_parse_url(const char *url, dx__redis_addr *out, const char **why) {
    (void)url, (void)out;
    if (why) *why = "this duplex was built without cluster support (-DDUPLEX_CLUSTER=OFF)";
    return DX_EINVAL;
}

/* Stand-in for redis_fanout.c in a build without cluster support: never
 * reached, since no redis:// URL parses there (io/redis_none.c). */
#include "server/redis_fanout.h"

dx__fanout *dx__fanout_new(dx_server *srv, const dx__fanout_config *cfg) {
    (void)srv, (void)cfg;
    return NULL;
}

void dx__fanout_free(dx__fanout *f) {
    (void)f;
}

int dx__fanout_up(const dx__fanout *f) {
    (void)f;
    return 0;
}

void dx__fanout_stats_get(const dx__fanout *f, dx__fanout_stats *out) {
    (void)f;
    *out = (dx__fanout_stats){0};
}

/* Stand-in for redis_fanout.c in a build without cluster support
 * (-DDUPLEX_CLUSTER=OFF): every redis:// URL is refused with this reason. */
#include <duplex/fanout.h>

static const char *const off =
    "this duplex was built without cluster support (-DDUPLEX_CLUSTER=OFF)";

int dx_fanout_check_url(const char *url, const char **why) {
    (void)url;
    if (why) *why = off;
    return DX_EINVAL;
}

dx_fanout *dx_fanout_new(dx_server *srv, const dx_fanout_config *cfg, const char **why) {
    (void)srv, (void)cfg;
    if (why) *why = off;
    return NULL;
}

void dx_fanout_free(dx_fanout *f) {
    (void)f;
}

int dx_fanout_up(const dx_fanout *f) {
    (void)f;
    return 0;
}

void dx_fanout_stats_get(const dx_fanout *f, dx_fanout_stats *out) {
    (void)f;
    *out = (dx_fanout_stats){0};
}

int dx_fanout_link_stats_get(const dx_fanout *f, dx_fanout_link_stats *out) {
    (void)f, (void)out;
    return DX_EINVAL; /* no fan-out can exist */
}

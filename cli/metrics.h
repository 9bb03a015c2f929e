/* duplex serve --metrics: GET /metrics in the Prometheus text format
 * (docs/metrics.md), on the serving port, summed over every thread's
 * server at scrape time. */
#ifndef DX_CLI_METRICS_H
#define DX_CLI_METRICS_H

#include <duplex/chat.h>
#include <duplex/fanout.h>
#include <duplex/server.h>

/* Routes /metrics through cfg->on_http, ahead of the handler already there
 * (the chat's), which still gets every other request. With `public_` 0 a
 * scrape from a peer that is not a loopback address gets 403: the numbers
 * tell an outsider how loaded the server is and what it refuses. Call once,
 * before the first dx_server_new with `cfg`. */
void dx_cli_metrics_wrap(dx_server_config *cfg, int public_);

/* Adds a server to those summed (one per thread). Before its loop runs;
 * at most 256. */
void dx_cli_metrics_add(dx_server *srv);

/* 1 when `remote` ("ip:port" as dx_http_route gives it) is a loopback
 * address: 127.0.0.0/8, ::1, or ::ffff:127.x.y.z. */
int dx_cli_metrics_loopback(const char *remote);

/* The exposition text for `n` servers, in a buffer from malloc (the caller
 * frees it), its length in *len; NULL when out of memory. */
char *dx_cli_metrics_text(dx_server *const *srv, int n, size_t *len);

/* Adds the chat service's counters (dx_chat_stats_get) to the scrape;
 * NULL for none. */
void dx_cli_metrics_chat(dx_chat *chat);

/* Adds a thread's Redis fan-out (--redis without --chat) to the scrape:
 * duplex_redis_up, _reconnects_total, _bus_seconds. At most 256. */
void dx_cli_metrics_fanout(dx_fanout *f);

#endif

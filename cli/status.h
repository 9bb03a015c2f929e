/* duplex serve --metrics: the live status page. GET /status is a page
 * (web/status, compiled into the command) that opens a WebSocket to
 * /status/ws on the same port; every second each thread that has such a
 * socket sends it one JSON sample of the whole process: connections, msg/s
 * in and out, loop-turn p99 and, with --chat, the ack p99 (docs/operations.md
 * lists the fields). Protected as /metrics is: loopback peers only unless
 * --metrics-public. */
#ifndef DX_CLI_STATUS_H
#define DX_CLI_STATUS_H

#include <duplex/chat.h>
#include <duplex/server.h>

/* Routes /status (the page) through cfg->on_http and upgrades to
 * /status/ws through cfg->on_upgrade, ahead of the callbacks already there
 * (the mode's, the chat's, /metrics), which still get every other request
 * and every other connection: on_open, on_message, on_close, on_drain and
 * on_pong are wrapped too, and a status socket never reaches them. With
 * `public_` 0 a peer that is not a loopback address gets 403 for both.
 * `mode` ("echo", "broadcast", "chat"; static) is shown on the page. Call
 * once, after the chat's dx_chat_server_config and before the first
 * dx_server_new with `cfg`. */
void dx_cli_status_wrap(dx_server_config *cfg, int public_, const char *mode);

/* Adds a server (one per thread) to those summed and lets it take status
 * sockets. Before its loop runs; at most 256. */
void dx_cli_status_add(dx_server *srv);

/* The chat service whose ack latency the samples carry; NULL for none. */
void dx_cli_status_chat(dx_chat *chat);

/* The q-quantile (0 < q <= 1) of a histogram of `nbounds` upper bounds and
 * nbounds + 1 counts (the last: over the last bound), interpolated inside
 * its bucket as Prometheus's histogram_quantile does; the last bound when
 * it falls in the open bucket; -1 when the counts are all zero. */
double dx_cli_status_quantile(const uint64_t *counts, const uint32_t *bounds, int nbounds,
                              double q);

#endif

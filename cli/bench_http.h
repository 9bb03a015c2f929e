/* duplex bench over plain HTTP: the load generator for the HTTP session
 * transport (docs/fallback.md), as web/client/http_socket.js speaks it, and
 * for Engine.IO 4 / Socket.IO 4 long-polling, the peer it is measured
 * against.
 *
 * `--transport stream|poll`: each client opens a session (POST with
 * X-Duplex-Session: 1), reads the server's frames from a down request
 * (SSE, base64, or long polls, raw bytes) on one kept-alive connection and
 * POSTs its masked frames on another, one POST in flight, each carrying
 * what was queued while the previous one was out and the down offset
 * received so far (the ack).
 *
 * `--transport eio`: each client is a Socket.IO 4 socket on Engine.IO 4
 * HTTP long-polling (handshake GET, "40" to join the main namespace, then
 * `42["m","..."]` events, packets separated by \x1e, pings answered), for
 * bench/fallback/sio_server.mjs, which echoes the event "m". Text only.
 *
 * One thread, one epoll loop. The echo (closed loop) and rate (open loop)
 * modes only; the report is the WebSocket bench's (dx_bench_result), with
 * the HTTP requests answered in the window in `requests`. */
#ifndef DX_CLI_BENCH_HTTP_H
#define DX_CLI_BENCH_HTTP_H

#include "cli/bench_load.h"

/* Runs one benchmark over cfg->transport (BT_STREAM, BT_POLL or BT_EIO).
 * Returns 0 (the result may still count errors), or -1 with a message on
 * stderr when nothing could run at all. res->hist is the caller's to free. */
int dx_bench_http_run(const dx_bench_cfg *cfg, dx_bench_result *res);

#endif

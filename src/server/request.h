/* Internal: the HTTP phase's input (request.c): gathers the request head,
 * then upgrades it to a WebSocket, hands it to the HTTP sessions, or routes
 * it (on_http, /healthz, static files, 404). Near the top: the connection
 * layer reaches it only through srv->hooks.http_input. */
#ifndef DX_SERVER_REQUEST_H
#define DX_SERVER_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "server/state.h"

/* Bytes read on `c` in P_HTTP (the loop's buffer, writable, lent for the
 * call). */
void dx__req_input(dx_server_conn *c, uint8_t *buf, size_t len);

#endif

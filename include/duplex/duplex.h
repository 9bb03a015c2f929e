/* duplex — a complete WebSocket stack in C. Include this for everything.
 *
 * Layers, bottom up (each header is the manual of its module):
 *   common.h     errors, opcodes, close codes, ready states, allocator hook
 *   mask.h       payload masking (SIMD)
 *   utf8.h       incremental UTF-8 validation (SIMD)
 *   frame.h      zero-copy incremental frame parser and writer
 *   http.h       HTTP/1.1 head parser into caller-owned slices
 *   handshake.h  the opening handshake, both roles
 *   conn.h       the sans-I/O connection: bytes in → events, calls → bytes
 *   deflate.h    permessage-deflate (RFC 7692): negotiation and its memory model
 *   loop.h       the epoll event loop, timers, signals, cross-thread posts
 *   tls.h        TLS over a non-blocking socket (OpenSSL)
 *   sock.h       the transport: socket reads and writes, plain or TLS
 *   server.h     the server: HTTP + WebSocket on one port, broadcast, pub/sub
 *   client.h     the client: ws:// and wss:// with a browser-like surface
 */
#ifndef DUPLEX_H
#define DUPLEX_H

#include "client.h"
#include "common.h"
#include "conn.h"
#include "deflate.h"
#include "fanout.h"
#include "frame.h"
#include "handshake.h"
#include "http.h"
#include "loop.h"
#include "mask.h"
#include "server.h"
#include "sock.h"
#include "tls.h"
#include "url.h"
#include "utf8.h"

#endif

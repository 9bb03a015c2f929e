/* duplex — the WebSocket server: HTTP/1.1 and WebSocket on one port.
 *
 * A server belongs to one event loop (loop.h). It accepts TCP (or TLS)
 * connections, reads each HTTP request, and either upgrades it to a
 * WebSocket (any path, unless on_upgrade refuses) or answers it as plain
 * HTTP: on_http routes first, then `/healthz` (200 "ok"), then static files
 * from `static_dir`, then 404. With `sessions.enable`, the same connection
 * can also be carried over plain HTTP requests for clients whose proxies
 * break WebSocket (docs/fallback.md): a POST with "X-Duplex-Session: 1"
 * opens one, and the server answers /.duplex/ requests itself. The
 * smallest echo server:
 *
 *     static void on_message(dx_server_conn *c, void *user, enum dx_opcode op,
 *                            const uint8_t *data, size_t len) {
 *         dx_server_send(c, op, data, len);           // same opcode back
 *     }
 *     ...
 *     dx_loop *loop = dx_loop_new(0);
 *     dx_server_config cfg = {.port = 8080, .on_message = on_message};
 *     dx_server *srv = dx_server_new(loop, &cfg);
 *     if (!srv || dx_server_listen(srv) < 0) exit(1);
 *     dx_loop_run(loop);
 *
 * Every field of dx_server_config is optional: zero means the documented
 * default, so `{0}` is a working server on 127.0.0.1 with an ephemeral port.
 *
 * Connections. A dx_server_conn is one client, from accept to close. The
 * application sees it first in on_upgrade (optional), then on_open, every
 * on_message, and exactly once on_close; the handle is valid until on_close
 * returns and must not be used after. Sending never blocks. Frames are
 * queued and every connection touched during one loop iteration is flushed
 * once after the iteration's callbacks (automatic corking), so many small
 * sends leave in one writev; a message of 16 KiB or more with nothing
 * queued ahead of it on a plain TCP socket is written at once from the
 * caller's memory instead, and only what the socket does not take is
 * queued (dx_conn_send_through).
 *
 * Memory. One allocation per connection holds the protocol state, the
 * server's state and `conn_data_size` bytes of inline application data
 * (dx_server_conn_data). An idle connection holds nothing else: reads go
 * through the loop's shared receive buffer, the output queue is empty, and
 * the HTTP buffers of the handshake are freed at the upgrade.
 *
 * Backpressure. dx_server_conn_buffered() is the browser's bufferedAmount.
 * While it is at or above `max_buffered / 2` the server stops reading from
 * that client (so an echo or request/response peer is slowed by TCP, not
 * buffered without end), and reading resumes when it falls to `low_water`,
 * which also fires on_drain. A send that finds `max_buffered` bytes or more
 * already queued applies the policy:
 *   DX_BACKPRESSURE_CLOSE (default): the message is not queued, the send
 *     returns DX_EBUSY, and the connection is closed with 1008 "slow
 *     consumer"; if the peer does not read the close either, the transport
 *     is dropped after `close_timeout_ms` and on_close reports 1008 unclean.
 *   DX_BACKPRESSURE_DROP: the message is not queued and the send returns
 *     DX_EBUSY; the connection stays open (broadcast and publish skip it).
 * Either way one connection never holds more than `max_buffered` plus one
 * message.
 *
 * Partial messages. A message that arrives in fragments, or split over
 * reads, is reassembled in memory, and with permessage-deflate the bytes
 * held are the decompressed ones: about 15 KB on the wire can make one
 * connection hold a 15 MiB message (up to max_message) for as long as the
 * peer leaves it unfinished. Two limits keep that bounded. The bytes held
 * by all of a server's unfinished messages (dx_conn_partial) are counted
 * after each read that starts, grows or ends one; when the total passes
 * `max_partial_total`, the connection holding the most is closed with 1009
 * "partial messages over budget" and its buffer freed at once, until the
 * total is within the budget again (a budget below max_message thus also
 * caps each fragmented or compressed message). And a message still
 * unfinished `partial_timeout_ms` after its first bytes arrived is closed
 * with 1008 "message timeout" by the sweep (slow trickling does not extend
 * it). on_close reports either code with was_clean 0. The budget is per
 * server, so per loop: N threads with a server each allow N times it.
 * A message that arrives whole in one read is not counted at all.
 *
 * Heartbeats. With `ping_interval_ms`, the server sends a ping frame to a
 * connection from which nothing has arrived for that long; if nothing (a
 * pong or anything else) arrives within `ping_timeout_ms` after it, the
 * transport is dropped and on_close reports 1006. With `app_heartbeat`, a
 * text message that is exactly "ping" is answered with the text "pong" and
 * never reaches on_message (browsers cannot send ping frames). Timeouts are
 * checked by one coarse sweep timer per server (a quarter of the shortest
 * timeout, between 50 ms and 1 s), never by a timer per message.
 *
 * Threads. A server and its connections belong to the thread that runs its
 * loop: no function here is thread-safe. To use N cores, run N loops in N
 * threads, each with its own server: the first calls dx_server_listen, the
 * others dx_server_listen_shared on the first (one socket, so a second
 * process cannot join the port as it could with `reuseport`). Nothing
 * crosses threads by itself; to
 * reach clients of another thread (a broadcast to everyone), dx_loop_post()
 * a function to that thread's loop that calls dx_server_broadcast there,
 * with a copy of the message that outlives the post.
 *
 * Errors: functions return 0 (or a count) or a negative enum dx_error.
 */
#ifndef DUPLEX_SERVER_H
#define DUPLEX_SERVER_H

#include "common.h"
#include "deflate.h"
#include "http.h"
#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dx_server dx_server;
typedef struct dx_server_conn dx_server_conn;

/* What on_upgrade sees of an upgrade request, and what it may decide.
 * Every slice points into the request buffer and is valid only during the
 * callback: copy what you keep (into dx_server_conn_data, for example). */
typedef struct dx_upgrade {
    const char *path; /* target up to '?' (not decoded) */
    size_t path_len;
    const char *query; /* after '?', NULL when absent (not decoded) */
    size_t query_len;
    const dx_http_header *headers; /* every request header, in order */
    size_t num_headers;
    const char *remote; /* "1.2.3.4:5678" or "[::1]:5678", NUL-terminated */
    const char *origin; /* Origin header, NULL when absent */
    size_t origin_len;
    const char *protocols; /* Sec-WebSocket-Protocol as offered, NULL when absent */
    size_t protocols_len;
    /* Decisions, filled with defaults before the call: */
    const char *protocol; /* the subprotocol to answer with: preset to the
                             first of `protocols` in the config that the
                             client offered, or NULL. May be replaced by
                             any NUL-terminated string the client offered;
                             it must stay valid until on_upgrade returns. */
    const char *reason;   /* when rejecting: body of the HTTP answer
                             (static or valid until return), or NULL for
                             the status's standard phrase */
    uint32_t retry_after; /* when rejecting: seconds for a Retry-After
                             header (a 429 or 503 says when to come back);
                             0: none */
} dx_upgrade;

/* What a plain HTTP request (not an upgrade) looks like to on_http. */
typedef struct dx_http_route {
    const char *method;
    size_t method_len;
    const char *path; /* up to '?', not decoded */
    size_t path_len;
    const char *query; /* NULL when absent */
    size_t query_len;
    const dx_http_header *headers;
    size_t num_headers;
    const char *remote; /* "ip:port" */
} dx_http_route;

/* What the server does when a send finds max_buffered bytes already queued
 * (see "Backpressure" above). */
enum dx_backpressure {
    DX_BACKPRESSURE_CLOSE = 0, /* refuse the message and close with 1008 */
    DX_BACKPRESSURE_DROP = 1,  /* refuse the message, keep the connection */
};

/* What on_event reports (see dx_server_config). */
typedef struct dx_server_event {
    const char *name;   /* "handshake_refused" or "slow_consumer" */
    int status;         /* the HTTP status answered, or the close code */
    const char *reason; /* as answered; never NULL */
    const char *remote; /* the peer's "ip:port", "" when unknown */
} dx_server_event;

typedef struct dx_server_config {
    /* Listening address. `host` NULL means "127.0.0.1"; "" , "0.0.0.0" or
     * "::" listen on every address. `port` 0 picks a free port (read it
     * with dx_server_port). `reuseport` sets SO_REUSEPORT so that several
     * servers can listen on the same port; beware that any process of the
     * same user that sets it too then joins and takes a share of the
     * connections (dx_server_listen_shared has no such hole). `backlog` 0
     * means as many as the kernel allows (net.core.somaxconn, 4096 on
     * Linux 5.4 and later): after a restart every client reconnects at
     * once, and a connection that overflows the queue waits a whole SYN
     * retransmission (1 s, then 3 s) instead of a turn of the loop. */
    const char *host;
    int port;
    int reuseport;
    int backlog;

    /* Open WebSockets, on plain TCP or TLS, move from epoll to the loop's
     * io_uring when the kernel has what it needs (Linux 6.15): bytes
     * arrive with their completion and sends leave with the next wait, one
     * system call per echo instead of three (under TLS, OpenSSL then works
     * on memory). 1 keeps every socket on epoll; so does
     * DUPLEX_NO_IO_URING=1 in the environment. */
    int epoll_only;

    /* TLS (wss:// and https://): PEM certificate chain and private key.
     * Both or neither. */
    const char *cert_file;
    const char *key_file;

    /* Limits (0 = the default in brackets). */
    uint64_t max_message;              /* bytes per message, larger → close 1009 [16 MiB] */
    uint32_t max_connections;          /* open WebSockets; more → HTTP 503 at the
                                          handshake [unlimited] */
    uint32_t max_header_size;          /* request head bytes, larger → HTTP 431 [8 KiB] */
    uint32_t handshake_timeout_ms;     /* accept → request complete (TLS included);
                                          then the connection is dropped [10 s] */
    uint32_t idle_timeout_ms;          /* nothing received for this long → close
                                          1001 "idle timeout" [off] */
    uint32_t ping_interval_ms;         /* server ping frames (see Heartbeats) [off] */
    uint32_t ping_timeout_ms;          /* unanswered ping → drop, 1006 [= interval] */
    uint32_t close_timeout_ms;         /* after our close frame, how long the peer
                                          gets to finish before the transport is
                                          dropped; an HTTP answer is dropped when
                                          the peer reads none of it for this long
                                          [5 s] */
    size_t max_buffered;               /* high-water mark of a connection's output
                                          queue (see Backpressure) [1 MiB] */
    size_t low_water;                  /* on_drain below this [16 KiB] */
    size_t max_partial_total;          /* bytes held by unfinished messages over all
                                          the connections; over it, the biggest
                                          holder closes 1009 (see Partial messages)
                                          [64 MiB or 4 × max_message, whichever is
                                          more; SIZE_MAX: no budget] */
    uint32_t partial_timeout_ms;       /* a message not complete this long after it
                                          began → close 1008 "message timeout"
                                          [60 s; UINT32_MAX: off] */
    enum dx_backpressure backpressure; /* [DX_BACKPRESSURE_CLOSE] */

    /* Application heartbeat: text "ping" answered with "pong" [off]. */
    int app_heartbeat;

    /* Origin allow-list, NULL-terminated, compared case-insensitively with
     * the whole Origin header ("https://example.com"). When set, a request
     * whose Origin is not listed gets 403; a request without Origin (not a
     * browser, so no cross-site hijacking risk) is allowed unless
     * `origin_required`. NULL allows any origin. Borrowed: must outlive the
     * server. */
    const char *const *origins;
    int origin_required;

    /* Subprotocols we speak, NULL-terminated, in order of preference; the
     * first one we list that the client offered is chosen (on_upgrade may
     * change it). A client that offers only others still connects, without
     * a protocol (RFC 6455 §4.2.2). Borrowed: must outlive the server. */
    const char *const *protocols;

    /* Serve plain HTTP GET/HEAD requests from this directory (MIME types,
     * ETag/If-None-Match → 304, Last-Modified, index.html for directories,
     * no way out of the directory). NULL: no static files. Copied. */
    const char *static_dir;

    /* permessage-deflate (deflate.h): what the server accepts and asks
     * for. `enable` 0 (default) never negotiates it. The first acceptable
     * offer of the request is accepted (every Sec-WebSocket-Extensions line
     * is read); a request without one, or with only malformed or
     * unacceptable ones, gets a 101 without the extension. Asking for both
     * no_context_takeover parameters keeps every connection free of zlib
     * state (see deflate.h, "Memory"). */
    dx_deflate_config deflate;

    /* Bytes of zeroed per-connection storage (dx_server_conn_data). */
    size_t conn_data_size;

    /* Default user pointer of every connection, passed to the callbacks
     * (dx_server_conn_set_user changes it per connection). */
    void *user;

    /* The HTTP session transport (docs/fallback.md): for clients whose
     * proxies break WebSocket, the same connection carried by Server-Sent
     * Events or long polls down and POSTs up. With `enable` 1, a POST with
     * the header "X-Duplex-Session: 1" to any path goes through the checks
     * of an upgrade (shutting down, Origin, max_connections, on_upgrade)
     * and opens a session, and the server answers /.duplex/<sid>/down and
     * /.duplex/<sid>/up itself (before on_http and static files). The
     * application sees a dx_server_conn like any other (on_upgrade,
     * on_open, on_message, on_close, sends, broadcast, pub/sub, limits);
     * dx_server_conn_transport() tells it apart. A session is dropped
     * (on_close 1006) after `idle_ms` without any request [30 s]; a poll
     * is held `poll_ms` at most [25 s]. A session costs a connection's
     * memory plus about 150 bytes (its SID, offsets and the open request's
     * address and Origin); the bytes it sent stay queued until the client
     * acknowledges them, and count as buffered. `enable` 0 (default): such
     * requests are plain HTTP. A session lives in the server that opened
     * it, and its requests come on new connections that any server sharing
     * the listener may accept: servers of one process sharing it with
     * dx_server_listen_shared hand such a connection, on its first
     * request, to the session's server (its thread), which answers it from
     * then on (the SID's first byte names that server; the other 120 bits
     * are random). Servers that share a port only through `reuseport`, and
     * several nodes behind a load balancer, cannot: they need sticky
     * routing, as Socket.IO's polling does. */
    struct {
        int enable;
        uint32_t idle_ms;
        uint32_t poll_ms;
    } sessions;

    /* Callbacks, all optional. `user` is the connection's user pointer. */

    /* A valid WebSocket upgrade request arrived (after the Origin check and
     * max_connections), or the open request of an HTTP session (`protocols`
     * then comes from its X-Duplex-Protocol header; `c` is the session, see
     * dx_server_conn_transport). Return 0 to accept, or an HTTP status (400-599) to
     * refuse with it and `u->reason` as the body. May set the user pointer
     * and fill dx_server_conn_data(c); must not send (the connection is not
     * open yet). */
    int (*on_upgrade)(dx_server_conn *c, void *user, dx_upgrade *u);
    /* The 101 answer (for an HTTP session: its 200) is queued: the
     * connection is OPEN and may send. */
    void (*on_open)(dx_server_conn *c, void *user);
    /* A complete message; text is valid UTF-8. `data` is borrowed until the
     * callback returns (it is not NUL-terminated). */
    void (*on_message)(dx_server_conn *c, void *user, enum dx_opcode op, const uint8_t *data,
                       size_t len);
    /* The output queue fell to low_water after having been above it. */
    void (*on_drain)(dx_server_conn *c, void *user);
    /* A pong arrived (heartbeats are handled by the server already). */
    void (*on_pong)(dx_server_conn *c, void *user, const uint8_t *data, size_t len);
    /* The connection ended, exactly once for every connection that reached
     * on_open: `code` is the peer's close code (1005 if it sent none), the
     * code we failed it with (1002, 1007, 1008, 1009...), or 1006 when the
     * transport ended without a closing handshake (reset, dead peer,
     * shutdown deadline). `was_clean` is 1 when both close frames were
     * exchanged. Subscriptions are already gone; the handle dies on return. */
    void (*on_close)(dx_server_conn *c, void *user, uint16_t code, const uint8_t *reason,
                     size_t reason_len, int was_clean);
    /* A plain HTTP request. Answer it with dx_server_http_respond and return
     * 1, or return 0 to let the server go on (healthz, static files, 404).
     * `c` has no WebSocket; it is closed after the answer is written. */
    int (*on_http)(dx_server_conn *c, void *user, const dx_http_route *r);
    /* Something for the operator's log, on the loop's thread, with the
     * server's `user`: an upgrade refused ("handshake_refused": the HTTP
     * status and the reason answered, from the Origin check, the limits,
     * on_upgrade or a malformed request) or a connection closed as a slow
     * consumer ("slow_consumer", status 1008). Never per message: a message
     * dropped under DX_BACKPRESSURE_DROP is only counted (dx_server_stats).
     * The event's strings are valid during the call. */
    void (*on_event)(void *user, const dx_server_event *e);
} dx_server_config;

/* ---- the server ------------------------------------------------------ */

/* Creates a server on `loop` (not yet listening). `cfg` is copied
 * (`static_dir` too; the `origins` and `protocols` arrays are borrowed).
 * Returns NULL when an allocation fails, a value is invalid, only one of
 * cert_file/key_file is given, or the TLS files cannot be loaded (the
 * reason is printed nowhere; dx_server_new_why() tells it). */
DX_API dx_server *dx_server_new(dx_loop *loop, const dx_server_config *cfg);

/* The reason the last dx_server_new on this thread returned NULL, as a
 * one-line string (it names the file or directory at fault) that stays
 * valid until the next dx_server_new on this thread. */
DX_API const char *dx_server_new_why(void);

/* Binds and listens on cfg->host:cfg->port and starts accepting. Returns 0,
 * DX_EADDRINUSE (another socket holds the port), DX_EADDR (bad or non-local
 * host), DX_EIO, or DX_ESTATE if already listening or shut down. */
DX_API int dx_server_listen(dx_server *srv);

/* Starts accepting on the listening socket of `first` (a server of another
 * loop, already listening), through a duplicate descriptor of its own: the
 * threads of one process share one socket and one accept queue, and each
 * stops accepting on its own shutdown. Call it before `first`'s loop runs on
 * another thread, or on `first`'s thread. The cfg host and port of `srv`
 * are not used. The servers so joined answer for each other's HTTP
 * sessions (`sessions` above; up to 256 of them). Returns 0, DX_ESTATE if
 * `srv` is already listening or shut down or `first` is not listening,
 * DX_EIO (no descriptor left) or DX_ENOMEM. */
DX_API int dx_server_listen_shared(dx_server *srv, const dx_server *first);

/* The port actually bound (useful with port 0), or 0 before listening. */
DX_API int dx_server_port(const dx_server *srv);

DX_API dx_loop *dx_server_loop(const dx_server *srv);
DX_API void *dx_server_user(const dx_server *srv);

/* Number of open WebSocket connections (OPEN or CLOSING). */
DX_API size_t dx_server_count(const dx_server *srv);

/* Iterates over open WebSocket connections:
 *     for (dx_server_conn *c = dx_server_first(s); c; c = dx_server_next(c))
 * The order is unspecified. Sending inside the loop is fine; a connection
 * that closes during it stays valid until the loop iteration ends. */
DX_API dx_server_conn *dx_server_first(const dx_server *srv);
DX_API dx_server_conn *dx_server_next(const dx_server_conn *c);

/* Sends one message to every open connection except `except` (may be
 * NULL). The frame is built once and shared by every queue (no copy per
 * client). Returns the number of connections it was queued on, or
 * DX_ENOMEM / DX_EINVAL (bad opcode). Slow consumers get the backpressure
 * policy. */
DX_API int dx_server_broadcast(dx_server *srv, enum dx_opcode op, const void *data, size_t len,
                               const dx_server_conn *except);

/* Publishes one message to every subscriber of `topic` (a NUL-terminated
 * name) except `except`; framed once, shared. Returns the number of
 * subscribers it was queued on (0 for an unknown topic), DX_ENOMEM or
 * DX_EINVAL. */
DX_API int dx_server_publish(dx_server *srv, const char *topic, enum dx_opcode op, const void *data,
                             size_t len, const dx_server_conn *except);

/* Like dx_server_publish, for a message a subscriber may miss (a typing
 * notice, a presence change): a subscriber whose output queue holds
 * `max_queued` bytes or more counting this message is skipped, rather
 * than given the backpressure policy (with the default, closed as a slow
 * consumer). This server's subscribers only: the broker is not told (use
 * it for what the broker delivers, as dx_server_deliver). Returns the
 * number of subscribers it was queued on, DX_ENOMEM or DX_EINVAL. */
DX_API int dx_server_publish_lossy(dx_server *srv, const char *topic, enum dx_opcode op,
                                   const void *data, size_t len, const dx_server_conn *except,
                                   size_t max_queued);

/* Number of subscribers of `topic`. */
DX_API size_t dx_server_topic_count(const dx_server *srv, const char *topic);

/* ---- several nodes: a broker ---------------------------------------------
 *
 * A broker carries broadcasts and topic publishes to the other servers of a
 * cluster (other processes or machines; duplex's own is Redis pub/sub, see
 * `duplex serve --redis` and docs/cluster.md). With a broker set,
 * dx_server_broadcast and dx_server_publish first deliver to this server's
 * clients, then hand the message to broker.publish, even when no local
 * client wanted it. What the broker receives from other nodes it gives to
 * dx_server_deliver, which delivers locally and never calls the broker, so
 * a message crosses the broker once. The broker must not hand a node its
 * own publishes back (tag them with a node id): that is what makes every
 * client receive a message exactly once.
 *
 * The broker also speaks for /healthz: while broker.up returns 0 the
 * answer is 503 {"status":"degraded","<name>":"down"}; while it returns 1
 * it is 200 {"status":"ok","<name>":"up"}. Without a broker /healthz stays
 * 200 "ok". Local delivery never depends on the broker. */
typedef struct dx_server_broker {
    /* Called with every broadcast (`topic` NULL) and publish, after local
     * delivery. `topic` and `data` are borrowed for the call. Must not call
     * back into this server (queue the message and return). The result is
     * ignored by the server (a broker that cannot forward counts or logs
     * it). */
    int (*publish)(void *ctx, const char *topic, enum dx_opcode op, const uint8_t *data,
                   size_t len);
    /* 1 when the broker reaches the cluster, 0 when degraded. Optional
     * (NULL: always up). */
    int (*up)(void *ctx);
    /* Name of the dependency in the /healthz body ("redis"): a plain JSON
     * key, no quotes or backslashes. NULL means "broker". Borrowed. */
    const char *name;
    void *ctx;
} dx_server_broker;

/* Sets (copies) or, with NULL, removes the server's broker. The broker's
 * ctx must outlive the server or the next call. Returns 0, or DX_EINVAL
 * when `b` has no publish function. */
DX_API int dx_server_set_broker(dx_server *srv, const dx_server_broker *b);

/* Delivers a message that came from another node to this server's clients
 * only: every open connection when `topic` is NULL, else the subscribers
 * of `topic`. Never calls the broker. Returns the number of connections it
 * was queued on, DX_ENOMEM or DX_EINVAL (bad opcode or topic). */
DX_API int dx_server_deliver(dx_server *srv, const char *topic, enum dx_opcode op, const void *data,
                             size_t len);

/* ---- statistics ------------------------------------------------------------
 *
 * Counters a server keeps for monitoring (duplex serve --metrics turns them
 * into Prometheus text, docs/metrics.md). Each is a plain 64-bit integer
 * that the server's thread adds to as things happen: no lock, no atomic,
 * no allocation, nothing walked at read time. Counters only grow (from 0
 * at dx_server_new); "gauge" fields go up and down. The loop's fields are
 * those of the server's loop (shared by every server on it). */

/* Why an upgrade request was refused (index of `refused`). */
enum dx_refuse_reason {
    DX_REFUSE_BAD_REQUEST = 0, /* malformed HTTP or WebSocket request (400, 426, 431...) */
    DX_REFUSE_ORIGIN = 1,      /* Origin not allowed (403) */
    DX_REFUSE_AUTH = 2,        /* on_upgrade answered 401 or 403 */
    DX_REFUSE_LIMIT = 3,       /* max_connections, shutting down, or on_upgrade 429/503 */
    DX_REFUSE_APP = 4,         /* on_upgrade answered any other status */
    DX_REFUSE_COUNT = 5
};

/* Close codes counted one by one: 1000-1015 at index code - 1000; every
 * other code (3000-4999, unknown ones) at DX_STATS_CLOSE_OTHER. */
#define DX_STATS_CLOSE_OTHER 16
#define DX_STATS_CLOSE_SLOTS 17

/* Message counters are indexed by opcode: [0] text, [1] binary. */
typedef struct dx_server_stats {
    /* Set by the caller to sizeof(dx_server_stats) before the call. A
     * larger struct from a newer header gets the fields this library knows
     * and zeros after them; a smaller one from an older header gets only
     * the fields it has. New fields are only ever added at the end. */
    size_t size;

    int tls;                           /* 1 for a wss:// server (cert_file set), 0 for ws:// */
    int uring;                         /* 1 when the loop's io_uring carries open WebSockets */
    uint64_t accepted;                 /* TCP connections accepted */
    uint64_t open;                     /* gauge: open WebSockets (dx_server_count) */
    uint64_t upgraded;                 /* WebSocket handshakes completed (101 sent) */
    uint64_t http_requests;            /* plain HTTP requests routed (not upgrades) */
    uint64_t refused[DX_REFUSE_COUNT]; /* upgrade requests refused, by reason */

    uint64_t msgs_in[2];   /* complete messages received, by opcode */
    uint64_t bytes_in[2];  /* their payload bytes (after decompression) */
    uint64_t msgs_out[2];  /* messages queued to a client (a broadcast counts once per
                              recipient), by opcode */
    uint64_t bytes_out[2]; /* their payload bytes (before compression) */
    uint64_t pings_out;    /* ping frames sent (heartbeats and dx_server_ping) */
    uint64_t pongs_in;     /* pong frames received */
    uint64_t wire_in;      /* bytes read from sockets (after TLS), handshakes included */
    uint64_t wire_out;     /* bytes written to sockets (before TLS) */

    uint64_t closed[DX_STATS_CLOSE_SLOTS];     /* WebSockets ended, by the code on_close
                                                  reports (the peer's, ours, 1006) */
    uint64_t close_sent[DX_STATS_CLOSE_SLOTS]; /* close frames the server started with
                                                  dx_server_close, the idle timeout,
                                                  the backpressure policy, partial
                                                  message limits and shutdown (not
                                                  the protocol's own failures) */

    uint64_t paused;      /* times a connection's reading stopped for backpressure
                             (output at max_buffered / 2) */
    uint64_t slow_closed; /* sends refused by the backpressure policy (each closes the
                             connection with DX_BACKPRESSURE_CLOSE) */

    uint64_t loop_turns;                         /* loop iterations */
    uint64_t loop_timers;                        /* timer callbacks run */
    uint64_t loop_turn_us[DX_LOOP_TURN_BUCKETS]; /* turns per duration bucket
                                                     (DX_LOOP_TURN_BOUNDS_US in
                                                     loop.h; not cumulative) */
    uint64_t loop_turn_us_sum;                   /* total turn time, microseconds */

    uint64_t sessions_opened; /* HTTP sessions opened (the fallback transport,
                                 docs/fallback.md); not counted in `upgraded` */
    uint64_t sessions_open;   /* gauge: the HTTP sessions among `open`
                                 (dx_server_conn_transport DX_TRANSPORT_HTTP) */

    /* The loop's connection counters (conn.h, dx_conn_counters): frames
     * by slot (enum dx_frame_slot: continuation, text, binary, close,
     * ping, pong) and permessage-deflate bytes of every connection on the
     * server's loop, counted where the core parses and queues frames. */
    uint64_t frames_in[DX_FRAME_SLOTS];  /* frames received */
    uint64_t frames_out[DX_FRAME_SLOTS]; /* frames queued (or written through) */
    uint64_t inflate_in;                 /* compressed payload bytes received */
    uint64_t inflate_out;                /* ... and their size once inflated */
    uint64_t deflate_in;                 /* payload bytes of messages sent compressed */
    uint64_t deflate_out;                /* ... and their compressed size */
    uint64_t queued;                     /* gauge: bytes in the output queues of the
                                            loop's connections (what their
                                            bufferedAmount sums to) */
    uint64_t paused_now;                 /* gauge: this server's connections whose
                                            reading is stopped for backpressure
                                            (output above max_buffered / 2) */

    /* Servers sharing one listener (dx_server_listen_shared): requests
     * of an HTTP session that arrived on a connection another server
     * accepted, and were handed to the session's own server (in), or the
     * reverse (out). Zero for a server alone. */
    uint64_t sessions_handed_in;
    uint64_t sessions_handed_out;

    uint64_t uring_open; /* gauge: open WebSockets on the loop's io_uring (the
                            rest of `open` is on epoll) */
} dx_server_stats;

/* Fills `out` (its `size` set by the caller, see above) with the server's
 * counters, and sets out->size to the bytes it filled. Returns 0, or DX_EINVAL when `out` is NULL
 * or its size is less than that of the first fields (size, tls, uring).
 *
 * Threads: the one function of this header that may be called from
 * another thread than the server's, so that a process with a server per
 * thread can sum them in one place. Every field is a naturally aligned
 * 64-bit word written only by the server's thread, so on the 64-bit
 * platforms duplex runs on a read from elsewhere is never torn; it may be
 * a moment old, and two fields may come from slightly different moments
 * (an exporter's scrape tolerates both). The server must stay alive for
 * the call (do not free it meanwhile). */
DX_API int dx_server_stats_get(const dx_server *srv, dx_server_stats *out);

/* Graceful shutdown: stops accepting (the listener is closed), drops
 * connections still in their HTTP phase, sends 1001 "going away" to every
 * open WebSocket and waits for their close frames. `done(loop, arg)` (may be
 * NULL) runs once every connection is gone, or when `deadline_ms` passes
 * (the rest are then dropped: their on_close reports 1006). Returns 0, or
 * DX_ESTATE when already shutting down. Free the server afterwards (from
 * `done` is fine). */
DX_API int dx_server_shutdown(dx_server *srv, uint32_t deadline_ms, dx_post_fn done, void *arg);

/* Frees the server: drops every connection at once (on_close runs with
 * 1006 for open ones), stops the listener and timers. Not from inside a
 * callback of this server (use the shutdown's `done`, or dx_loop_defer).
 * `srv` may be NULL. */
DX_API void dx_server_free(dx_server *srv);

/* ---- one connection ---------------------------------------------------- */

/* Queues a text (valid UTF-8, the caller's promise) or binary message.
 * `data` is copied, or for a large one written at once (see above). Returns
 * 0; DX_EBUSY when refused by the backpressure policy; DX_ESTATE when the
 * connection is not OPEN (closing, or still in its handshake); DX_EINVAL
 * for another opcode; DX_ENOMEM; DX_EIO when a write at once found the
 * socket broken (the connection closes, 1006, after the callbacks). */
DX_API int dx_server_send(dx_server_conn *c, enum dx_opcode op, const void *data, size_t len);

/* dx_server_send(c, DX_OP_TEXT, s, strlen(s)). */
DX_API int dx_server_send_text(dx_server_conn *c, const char *s);

/* Sends a message in pieces (see dx_conn_send_fragment): `op` on the first
 * piece, `fin` on the last. Same returns as dx_server_send. */
DX_API int dx_server_send_fragment(dx_server_conn *c, enum dx_opcode op, const void *data,
                                   size_t len, int fin);

/* Sends a ping frame with up to 125 bytes. 0, DX_EINVAL, DX_ESTATE. */
DX_API int dx_server_ping(dx_server_conn *c, const void *data, size_t len);

/* Starts the closing handshake with `code` (1000, 1001, 1008, 3000-4999...;
 * 0 for none) and a reason of at most 123 bytes of UTF-8 (NULL for none).
 * on_close follows when the peer answers, or after close_timeout_ms.
 * Returns 0, DX_EINVAL (bad code or reason), DX_ESTATE (already closing). */
DX_API int dx_server_close(dx_server_conn *c, unsigned code, const char *reason);

/* Subscribes to / unsubscribes from a topic (NUL-terminated, at most 255
 * bytes). Subscribing twice is a no-op. Returns 0, DX_EINVAL, DX_ENOMEM,
 * DX_ESTATE when not OPEN; unsubscribe returns 0 even when not
 * subscribed. Every subscription ends with the connection. */
DX_API int dx_server_subscribe(dx_server_conn *c, const char *topic);
DX_API int dx_server_unsubscribe(dx_server_conn *c, const char *topic);
/* 1 when `c` is subscribed to `topic`. */
DX_API int dx_server_subscribed(const dx_server_conn *c, const char *topic);

/* Answers the plain HTTP request given to on_http: `status`, a
 * Content-Type (NULL: text/plain; charset=utf-8), and a body copied now
 * (may be empty; not sent for HEAD). Returns 0, DX_ESTATE when called
 * twice or outside on_http, DX_EINVAL when `content_type` has CR/LF,
 * DX_ENOMEM. */
DX_API int dx_server_http_respond(dx_server_conn *c, int status, const char *content_type,
                                  const void *body, size_t len);

/* Answers the plain HTTP request given to on_http with `len` bytes of the
 * open file `fd` from offset `off`, streamed by the server as the socket
 * takes them (sendfile on plain TCP): the file is never read into memory
 * whole. `status` and Content-Type as for dx_server_http_respond;
 * Content-Length is `len` (none for 304 and 204). `extra_headers` (NULL:
 * none) are whole header lines, each "Name: value\r\n", written as given
 * after the server's own (Content-Type, Content-Length, Connection,
 * Server: do not repeat those); a name that is not an HTTP token, an empty
 * line, or a CR or LF anywhere but at a line's end is refused, so that no
 * value can end the head early. For HEAD only the head is sent. `fd` (-1
 * with `len` 0: no body, as for a 304 or 416) is taken in every case: the
 * server closes it when the body is written or the connection ends, or
 * before returning on HEAD, an empty body or an error; the caller must
 * not use it again. Returns 0, DX_ESTATE when called twice or outside
 * on_http, DX_EINVAL (bad status, a body with 304 or 204, CR/LF in
 * `content_type`, bad `extra_headers`, `fd` not a regular file or shorter
 * than `off` + `len`), DX_ENOSPC (a head over 64 KiB), DX_ENOMEM (the
 * connection is dropped). After DX_EINVAL or DX_ENOSPC the request is
 * still unanswered: on_http may answer it another way, or return 1 (the
 * server then answers 500). */
DX_API int dx_server_http_respond_file(dx_server_conn *c, int status, const char *content_type,
                                       const char *extra_headers, int fd, uint64_t off,
                                       uint64_t len);

DX_API dx_server *dx_server_conn_server(const dx_server_conn *c);
DX_API void *dx_server_conn_user(const dx_server_conn *c);
DX_API void dx_server_conn_set_user(dx_server_conn *c, void *user);
/* The conn_data_size bytes of inline storage, aligned for any type. */
DX_API void *dx_server_conn_data(dx_server_conn *c);
/* DX_CONNECTING (handshake), DX_OPEN, DX_CLOSING or DX_CLOSED. */
DX_API enum dx_ready_state dx_server_conn_state(const dx_server_conn *c);
/* Bytes queued and not yet written (the browser's bufferedAmount). */
DX_API size_t dx_server_conn_buffered(const dx_server_conn *c);
/* Writes "ip:port" of the peer into `out` (64 bytes are always enough);
 * for an HTTP session, that of the request that opened it. Returns the
 * length, or DX_EIO when the socket (or the session) is gone. */
DX_API int dx_server_conn_remote(const dx_server_conn *c, char *out, size_t cap);

/* How a connection's frames travel. */
enum dx_transport {
    DX_TRANSPORT_WS = 0,   /* WebSocket over TCP */
    DX_TRANSPORT_WSS = 1,  /* WebSocket over TLS */
    DX_TRANSPORT_HTTP = 2, /* an HTTP session: SSE or long polls down, POSTs up
                              (docs/fallback.md), over http or https */
};

/* The transport of `c` (valid from on_upgrade until on_close returns). */
DX_API enum dx_transport dx_server_conn_transport(const dx_server_conn *c);

/* "ws", "wss" or "http" ("unknown" for another value); a static string. */
DX_API const char *dx_transport_name(enum dx_transport t);

#ifdef __cplusplus
}
#endif
#endif

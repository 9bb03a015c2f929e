/* duplex — the WebSocket client: ws:// and wss:// with a browser-like surface.
 *
 * A dx_client is one connection to one URL, driven by an event loop
 * (loop.h). It behaves like the browser's `WebSocket`:
 *
 *     static void on_open(dx_client *c, void *user) {
 *         dx_client_send_text(c, "hello", 5);
 *     }
 *     static void on_message(dx_client *c, void *user, enum dx_opcode op,
 *                            const uint8_t *data, size_t len) {
 *         printf("%.*s\n", (int)len, (const char *)data);
 *         dx_client_close(c, 1000, "bye");
 *     }
 *     static void on_close(dx_client *c, void *user, uint16_t code,
 *                          const char *reason, size_t reason_len, int was_clean) {
 *         dx_loop_stop(dx_client_loop(c));
 *     }
 *     ...
 *     dx_loop *loop = dx_loop_new(0);
 *     dx_client_config cfg = {.url = "ws://127.0.0.1:8080/chat",
 *                             .on_open = on_open, .on_message = on_message,
 *                             .on_close = on_close};
 *     dx_client *c = dx_client_new(loop, &cfg);
 *     dx_loop_run(loop);
 *     dx_client_free(c);
 *
 * Life of a client. dx_client_new() returns at once in state
 * DX_CONNECTING; the work starts on the loop's next iteration: resolve the
 * host, connect (TCP), the TLS handshake for wss:// (SNI and certificate
 * check against the host name), the HTTP upgrade, then DX_OPEN and
 * on_open. Messages flow both ways (ours masked, as RFC 6455 requires of
 * clients). dx_client_close() starts the closing handshake (DX_CLOSING);
 * once the server has answered our close (or sent its own, which is
 * answered at once) the client waits for the server to close TCP, as
 * RFC 6455 §7.1.1 asks, for at most DX_CLIENT_LINGER_MS, then DX_CLOSED and
 * on_close. Every client that was created reaches on_close exactly once
 * (unless dx_client_free() comes first; with `reconnect`, once per
 * connection: see "Resilience" below), whatever happens:
 *   - a clean close: the server's code (1005 when its close had none) and
 *     reason, was_clean 1;
 *   - the transport ended without a close frame (EOF, reset, a timeout, or
 *     the connection never opened): 1006, was_clean 0;
 *   - the server broke the protocol: the code we failed the connection with
 *     (1002, 1007, 1009), was_clean 0.
 * A failure (bad URL or option, name not resolved, refused, timeout, TLS,
 * refused upgrade, protocol error) also calls on_error first, with the
 * error code and a one-line message such as "connection refused",
 * "handshake: unexpected status 404 Not Found" or "TLS handshake:
 * certificate verify failed: self-signed certificate". A transport that
 * just ends (EOF) is not an error in this sense, as in browsers: it only
 * gives on_close with 1006; a read or write that fails (a reset, a TLS
 * error) and a close that the server never answers are ("read: Connection
 * reset by peer", "close timed out: ...").
 *
 * Callbacks never run inside a call made by the application: errors found
 * while creating the client are delivered on a later loop iteration, and
 * the send and close functions only queue. Callbacks run from the loop and
 * may call any function of this header on the same client, dx_client_free()
 * included (the memory is then released when the callback returns, and no
 * other callback follows).
 *
 * Sending never blocks: messages are queued and written when the socket
 * accepts them (DX_IO_WRITE is watched only while output is pending).
 * dx_client_buffered_amount() tells how much is still queued, so a fast
 * producer can wait for it to fall.
 *
 * Resilience: heartbeat, reconnect, offline queue. Connections die
 * silently (a pulled cable, a NAT that forgot us, a hung server: no FIN,
 * no close frame), so a long-lived client needs three things, all off by
 * default (zero fields keep the one-shot client described above; always
 * initialize the config with `= {...}` or memset):
 *   - ping_interval_ms / ping_timeout_ms: after ping_interval_ms with
 *     nothing received, a ping goes out; if nothing at all (a pong or any
 *     other byte) arrives within ping_timeout_ms, the server is declared
 *     dead: the transport is dropped locally, on_error reports DX_ETIMEDOUT
 *     ("heartbeat: ...") and on_close 1006, was_clean 0. A dead server is
 *     thus noticed at most ping_interval_ms + ping_timeout_ms after its
 *     last byte.
 *   - reconnect: when a connection ends (or an attempt fails) the client
 *     waits and tries again, as the same dx_client, for ever or up to
 *     max_retries attempts in a row. The delay of attempt n (1, 2, ...) is
 *     drawn uniformly in [b − b × jitter, b] with b = min(reconnect_max_ms,
 *     reconnect_base_ms × reconnect_factor^(n−1)) ("full jitter" by
 *     default), and the count starts again after a connection that stayed
 *     OPEN for stable_ms. There is no reconnect after dx_client_close(),
 *     after a close code listed in final_codes (say 1008, or 4401 for "log
 *     in again"), after a bad config, nor once max_retries attempts failed.
 *     `urls` adds URLs for failover: each attempt takes the next URL of
 *     the list (cfg->url first), in a circle. One state machine drives it
 *     all, so two failures seen together (a heartbeat timeout and a reset,
 *     say) still give one on_close and one reconnect, never two attempts.
 *   - the offline queue (with reconnect): messages sent while the client is
 *     not OPEN (connecting, waiting to reconnect, or the server closing)
 *     are queued, bounded by queue_max_messages and queue_max_bytes under
 *     queue_policy, and sent in order, each exactly once, when the next
 *     connection opens (before on_open, so before anything on_open sends).
 *     Messages already handed to an OPEN connection are not kept: those
 *     still in its output queue when the connection dies are lost, as
 *     with any socket. dx_client_buffered_amount() counts the queue too.
 * Events with reconnect, for a status line: on_connecting (url, attempt)
 * as each attempt starts; on_open; on_message; on_error and on_close (code,
 * reason, was_clean) for EVERY connection or attempt that ends; then, when
 * another attempt follows, on_reconnecting (attempt, delay) at once. Inside
 * on_close, dx_client_ready_state() says which: DX_CONNECTING when a
 * reconnect follows, DX_CLOSED when this is the end. The last on_close is
 * always one with DX_CLOSED (closing during the wait gives one with 1006,
 * as closing while CONNECTING does).
 *
 * Host names are resolved off the loop: getaddrinfo() runs on a helper
 * thread (one per attempt with a name; address literals need none), so a
 * slow DNS server stalls nothing else, and connect_timeout_ms covers the
 * resolution and the TCP connect together (a name with no answer in time
 * ends the attempt with DX_ETIMEDOUT).
 *
 * Limitations today: the only extension offered is permessage-deflate,
 * and only with cfg->deflate.enable.
 *
 * Threads: a client belongs to the thread of its loop; no function here is
 * thread-safe (reach it with dx_loop_post()).
 */
#ifndef DUPLEX_CLIENT_H
#define DUPLEX_CLIENT_H

#include "common.h"
#include "conn.h" /* DX_DEFAULT_MAX_MESSAGE */
#include "deflate.h"
#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dx_client dx_client;

#define DX_CLIENT_CONNECT_TIMEOUT_MS 10000   /* default connect_timeout_ms */
#define DX_CLIENT_HANDSHAKE_TIMEOUT_MS 10000 /* default handshake_timeout_ms */
#define DX_CLIENT_CLOSE_TIMEOUT_MS 5000      /* default close_timeout_ms */
#define DX_CLIENT_LINGER_MS 1000     /* wait for the server's TCP close after the handshake */
#define DX_CLIENT_MAX_RESPONSE 16384 /* bytes of the server's HTTP answer head */
#define DX_CLIENT_MAX_HEADERS 64     /* header lines in the server's answer */
#define DX_CLIENT_RECONNECT_BASE_MS 1000 /* default reconnect_base_ms */
#define DX_CLIENT_RECONNECT_MAX_MS 30000 /* default reconnect_max_ms */
#define DX_CLIENT_STABLE_MS 5000         /* default stable_ms */
#define DX_CLIENT_QUEUE_MESSAGES 1024    /* default queue_max_messages */
#define DX_CLIENT_QUEUE_BYTES (1u << 20) /* default queue_max_bytes */
#define DX_CLIENT_MAX_FINAL_CODES 64     /* entries of final_codes */

/* What a send does when the offline queue (see "Resilience") is full. */
enum dx_queue_policy {
    DX_QUEUE_REFUSE = 0,      /* the new message is refused: the send returns DX_EBUSY */
    DX_QUEUE_DROP_OLDEST = 1, /* the oldest queued messages are dropped to make room */
    DX_QUEUE_OFF = 2,         /* no queue: sends while not OPEN return DX_ESTATE */
};

typedef struct dx_client_config {
    /* "ws://host[:port][/path][?query]" or "wss://...". Hosts may be names,
     * IPv4 or bracketed IPv6 ("ws://[::1]:8080/"). "http://" and
     * "https://" are taken for "ws://" and "wss://". Refused (on_error with
     * DX_EADDR): other schemes, "user:pass@", a fragment ("#..."), a bad
     * port. Required. */
    const char *url;
    /* Extra request headers, as "Name: value" lines, NULL-terminated
     * array; NULL for none. The headers of the handshake itself (Host,
     * Upgrade, Connection, Sec-WebSocket-*) may not be given here. */
    const char *const *headers;
    /* Subprotocols to offer, in order of preference, NULL-terminated
     * array; NULL for none. Each must be an HTTP token. The server's choice
     * must be one of them (else the handshake fails), and is then
     * dx_client_protocol(). */
    const char *const *protocols;
    /* The Origin header, as a browser sends it; NULL sends none. */
    const char *origin;
    /* wss:// only. `insecure` skips every certificate check (testing
     * only). `ca_file`: PEM file of trusted CAs instead of the system
     * store. */
    int insecure;
    const char *ca_file;
    /* Milliseconds; 0 means the default. Connect: from the start until TCP
     * is connected (every address of the host in turn, within this one
     * budget). Handshake: from TCP connected until the server's 101 (the
     * TLS handshake included). Close: after our close frame, how long the
     * server has to answer it before the connection is dropped (1006). */
    uint32_t connect_timeout_ms;
    uint32_t handshake_timeout_ms;
    uint32_t close_timeout_ms;
    /* Largest message accepted from the server: bigger fails the
     * connection with 1009. 0 means DX_DEFAULT_MAX_MESSAGE (16 MiB);
     * UINT64_MAX means no limit. Compressed messages are bounded by their
     * decompressed size, checked while decompressing. */
    uint64_t max_message;
    /* permessage-deflate (deflate.h): what to offer. `enable` 0 (default)
     * offers nothing and refuses a server that answers with an extension.
     * With it, the server's answer must accept the offer as made, or the
     * handshake fails (on_error DX_EHANDSHAKE); a server that answers
     * without the extension is fine (no compression). An invalid config
     * (window bits out of 8-15) fails each attempt the same way. */
    dx_deflate_config deflate;

    /* Callbacks, each optional. `user` is passed to every one. Data
     * passed to a callback is borrowed until it returns. */
    void *user;
    /* The handshake succeeded: state DX_OPEN. */
    void (*on_open)(dx_client *c, void *user);
    /* One whole message: `op` is DX_OP_TEXT (valid UTF-8, checked) or
     * DX_OP_BINARY. Fragmented messages are reassembled first. */
    void (*on_message)(dx_client *c, void *user, enum dx_opcode op, const uint8_t *data,
                       size_t len);
    /* A pong arrived (the answer to dx_client_ping or to the heartbeat's
     * ping, or unsolicited). Pings from the server are answered
     * automatically. */
    void (*on_pong)(dx_client *c, void *user, const uint8_t *data, size_t len);
    /* A failure, before on_close: `err` is a negative dx_error, `message` a
     * one-line description (borrowed until return). */
    void (*on_error)(dx_client *c, void *user, int err, const char *message);
    /* The end: state DX_CLOSED. `reason` (UTF-8, not NUL-terminated, at
     * most 123 bytes) is borrowed until return. See "Life of a client".
     * With `reconnect`: the end of one connection, and the state is
     * DX_CONNECTING when another attempt follows (see "Resilience"). */
    void (*on_close)(dx_client *c, void *user, uint16_t code, const char *reason, size_t reason_len,
                     int was_clean);

    /* ---- Resilience (see "Resilience" above). Zero: off. ---- */

    /* Heartbeat, with or without reconnect: ping after ping_interval_ms
     * with nothing received; dead (1006) when nothing arrives within
     * ping_timeout_ms after it (0: equal to ping_interval_ms). */
    uint32_t ping_interval_ms;
    uint32_t ping_timeout_ms;
    /* 1: reconnect automatically, with the offline queue. */
    int reconnect;
    /* More URLs for failover, NULL-terminated, tried after cfg->url in a
     * circle; NULL for none. Checked like cfg->url (a bad one fails the
     * client at once, DX_EADDR). Used only with reconnect. */
    const char *const *urls;
    /* Backoff: bound of the first delay [1000 ms], cap [30000 ms], growth
     * per attempt [2.0; values below 1 count as 1], share of each delay
     * drawn at random [1.0 = full jitter; a negative value: none]. */
    uint32_t reconnect_base_ms;
    uint32_t reconnect_max_ms;
    double reconnect_factor;
    double reconnect_jitter;
    /* Reconnect attempts in a row before giving up (the final on_close is
     * then the last attempt's) [0: no limit]. */
    uint32_t max_retries;
    /* A connection OPEN this long resets the attempt count [5000 ms]. */
    uint32_t stable_ms;
    /* Close codes after which the client never reconnects, 0-terminated
     * (at most 64; each 1000-4999); NULL for none. Compared with the code
     * on_close reports, so 1006 or 1002 may be listed too. */
    const uint16_t *final_codes;
    /* The offline queue: at most this many messages [1024] and payload
     * bytes [1 MiB]; what happens when full (see dx_queue_policy). */
    uint32_t queue_max_messages;
    size_t queue_max_bytes;
    enum dx_queue_policy queue_policy;
    /* An attempt starts: `url` (normalized, borrowed until return) is the
     * one being tried; `attempt` is 0 for the first connection and after a
     * stable one, else the reconnect number. */
    void (*on_connecting)(dx_client *c, void *user, const char *url, unsigned attempt);
    /* After an on_close (state DX_CONNECTING): attempt `attempt` will
     * start in `delay_ms`. dx_client_close() here cancels it. */
    void (*on_reconnecting)(dx_client *c, void *user, unsigned attempt, uint32_t delay_ms);
} dx_client_config;

/* Creates a client for cfg->url on `loop` and starts connecting on the
 * loop's next iteration. `cfg` and every string and array in it are copied:
 * none needs to outlive the call. Returns the client in state
 * DX_CONNECTING, or NULL when `loop`, `cfg` or cfg->url is NULL or memory
 * ran out. Anything else wrong with the config (a bad URL, a bad header
 * line or subprotocol, an unreadable CA file) is reported by on_error
 * (DX_EADDR for the URL, DX_EINVAL otherwise) and on_close (1006) on the
 * next iteration. Free it with dx_client_free, in any state. */
DX_API dx_client *dx_client_new(dx_loop *loop, const dx_client_config *cfg);

/* Frees the client. Closes the transport at once if it is still open
 * (without a closing handshake: call dx_client_close and wait for on_close
 * for a clean end); no callback runs after this call. May be called from
 * the client's own callbacks (the memory is released when the callback
 * returns). `c` may be NULL. */
DX_API void dx_client_free(dx_client *c);

/* Queues a text message (`data` must be valid UTF-8; it is checked) or a
 * binary message; `data` is copied. Returns 0, DX_ESTATE unless OPEN (as
 * in browsers, nothing is sent while CONNECTING, nor after close),
 * DX_EUTF8 for text that is not UTF-8, DX_EINVAL for NULL data with
 * len > 0, DX_ENOMEM. With `reconnect` (and a queue), a message sent while
 * not OPEN goes to the offline queue instead and 0 is returned, or
 * DX_EBUSY when the queue is full and refuses it; DX_ESTATE then only
 * after dx_client_close() or the final on_close. */
DX_API int dx_client_send_text(dx_client *c, const char *data, size_t len);
DX_API int dx_client_send_binary(dx_client *c, const void *data, size_t len);

/* Queues a ping with up to 125 bytes of payload; the server's pong reaches
 * on_pong. Returns 0, DX_EINVAL (payload over 125 bytes), DX_ESTATE unless
 * OPEN. */
DX_API int dx_client_ping(dx_client *c, const void *data, size_t len);

/* Closes, with the browser's rules; with `reconnect`, also for good: no
 * attempt follows, and the offline queue is dropped. `code` is 1000 or 3000-4999, or 0 for
 * none (then a close without status is sent, or 1000 when `reason` is not
 * empty); anything else returns DX_EINVAL. `reason` (NULL for none, NUL-
 * terminated) must be valid UTF-8 of at most 123 bytes, else DX_EINVAL.
 * Then, by state:
 *   CONNECTING: the attempt (or the wait before it) is abandoned;
 *               on_close (1006, was_clean 0) follows on the next
 *               iteration.
 *   OPEN:       the close frame is queued after the messages already
 *               queued; on_close follows the closing handshake (or 1006
 *               after close_timeout_ms without an answer).
 *   CLOSING, CLOSED: nothing happens.
 * Returns 0 in all these cases. */
DX_API int dx_client_close(dx_client *c, unsigned code, const char *reason);

/* DX_CONNECTING, DX_OPEN, DX_CLOSING or DX_CLOSED. CLOSING lasts from our
 * close (or the server's) until on_close. With `reconnect`, the wait
 * before an attempt is CONNECTING too. */
DX_API enum dx_ready_state dx_client_ready_state(const dx_client *c);

/* Bytes queued and not yet written to the socket, frame headers included
 * (under TLS: not yet handed to TLS), plus the payload bytes of the
 * offline queue. 0 once closed for good. */
DX_API size_t dx_client_buffered_amount(const dx_client *c);

/* With `reconnect`, while waiting before an attempt: starts it now (on the
 * next loop iteration) instead of at the end of the delay — say, when the
 * application learns that the network is back. Calling it again, or from
 * several places, still starts one attempt. Returns 0, or DX_ESTATE when
 * the client is not waiting (connecting, open, closed, or no reconnect). */
DX_API int dx_client_reconnect(dx_client *c);

/* The subprotocol the server chose, "" when none (or not yet OPEN). The
 * string lives as long as the client. */
DX_API const char *dx_client_protocol(const dx_client *c);

/* The extensions the server accepted (Sec-WebSocket-Extensions, as the
 * server wrote it: "permessage-deflate; server_no_context_takeover"), ""
 * when none (or not yet OPEN). The string lives as long as the client
 * (until the next attempt with reconnect). */
DX_API const char *dx_client_extensions(const dx_client *c);

/* The URL, normalized ("ws://example.com/chat": scheme lower-cased, the
 * default port dropped, "/" for an empty path); cfg->url as given when it
 * could not be parsed. With failover, the URL of the current (or last)
 * attempt. Valid until the next attempt starts, or for the client's life
 * without reconnect. */
DX_API const char *dx_client_url(const dx_client *c);

/* The loop the client runs on. */
DX_API dx_loop *dx_client_loop(const dx_client *c);

/* The `user` pointer of the config. */
DX_API void *dx_client_user(const dx_client *c);

#ifdef __cplusplus
}
#endif
#endif

/* duplex — permessage-deflate (RFC 7692): negotiation and configuration.
 *
 * permessage-deflate compresses each data message with DEFLATE (zlib,
 * raw, no header) and marks it with RSV1 on its first frame. Browsers offer
 * it on every connection; text and JSON shrink 3-10x.
 *
 * Turning it on. The server and the client each carry a dx_deflate_config
 * (dx_server_config.deflate, dx_client_config.deflate); `enable` 0 (the
 * default of a zeroed config) never negotiates it. The negotiation itself is
 * done by the server and client layers with the functions below; code that
 * drives dx_conn on its own loop calls them and then dx_conn_set_deflate().
 *
 * What the four parameters mean (each side's "window" is the LZ77 history a
 * compressor may refer back to, 2^bits bytes):
 *   server_no_context_takeover  the server resets its compressor after
 *                               every message, so the client may free its
 *                               decompressor between messages;
 *   client_no_context_takeover  the same for the client's messages;
 *   server_max_window_bits N    the server compresses with a window of at
 *                               most 2^N bytes (8-15);
 *   client_max_window_bits N    the same for the client.
 *
 * Memory. A connection with deflate negotiated costs a 48-byte state and
 * nothing more while idle. Messages are compressed and decompressed by a
 * compressor and a decompressor shared by all connections of the thread
 * (one of each per thread) whenever no context is kept between messages:
 *   - sends use the shared compressor when our side does not keep its
 *     context (we ask for or the peer demands our no_context_takeover, or
 *     the config sets it for our side);
 *   - a received message uses the shared decompressor when the peer does
 *     not keep its context and the whole message arrived in one read.
 * Otherwise the connection allocates its own, on its first compressed
 * message: a decompressor costs about 7 KiB + 2^bits bytes; a compressor
 * 2^(bits+2) + 2^(mem_level+9) bytes plus about 6 KiB (136 KiB at 15 bits
 * and the default mem_level 4, 256 KiB at zlib's usual 8, 10 KiB at 9 bits
 * and 1). A decompressor without context takeover is freed again when its
 * message ends. Broadcasts and publishes (frames built once for many
 * connections) are compressed once for all the connections whose
 * compressor keeps no context (window permitting), and by their own
 * compressor for the others. So the cheapest setting, which
 * `duplex serve` uses, is a server that asks for both no_context_takeover
 * parameters: idle and busy connections then hold no zlib state at all.
 * Measured (tests/interop/test_deflate_10k.sh, 10,000 idle connections
 * that each sent one compressed message): 291 bytes of server RSS per
 * connection without the extension, 355 with it; with --deflate-takeover
 * (the client keeps its context, so each connection keeps its
 * decompressor) 9.3 KiB.
 *
 * Safety. The decompressed size is checked while decompressing against the
 * connection's max_message (1009 when exceeded): a small frame that would
 * inflate to gigabytes costs at most that limit. Corrupt compressed data
 * fails the connection with 1007 (text) or 1002 (binary). RSV1 is accepted
 * only on the first frame of a data message of a connection that negotiated
 * the extension; anywhere else it is 1002.
 *
 * Threads: the shared compressor and decompressor are per thread, so any
 * number of loops on any number of threads may use deflate; a connection
 * still belongs to one thread.
 */
#ifndef DUPLEX_DEFLATE_H
#define DUPLEX_DEFLATE_H

#include "common.h"
#include "conn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DX_DEFLATE_THRESHOLD 128 /* default: smaller messages go uncompressed */
#define DX_DEFLATE_LEVEL 1       /* default zlib level: fast, still 3-5x on JSON */
/* Default zlib memLevel: 4 instead of zlib's 8 costs about 1% of ratio on
 * JSON, makes each per-message reset of a compressor clear a 4 KiB hash
 * instead of 64 KiB (a third more messages/s at 1 KiB), and shrinks a
 * context-takeover compressor from 256 to 136 KiB. */
#define DX_DEFLATE_MEM_LEVEL 4

typedef struct dx_deflate_config {
    /* 0: never negotiate permessage-deflate (the default). */
    int enable;
    /* Server: include the parameter in every answer (asked of the peer for
     *   the client_* ones; promised for the server_* ones).
     * Client: include it in the offer.
     * Our own side's no_context_takeover is also honoured locally even when
     * the peer does not mention it: a sender may always reset its context. */
    int server_no_context_takeover;
    int client_no_context_takeover;
    /* 8-15, or 0 for 15 (no limit). Server: the most it accepts for each
     * direction (the client's offer can only lower it; a client that does
     * not offer client_max_window_bits cannot be limited and uses 15).
     * Client: what it offers (client_max_window_bits is always offered,
     * without a value when 0, to tell the server it may be limited). A
     * window of 8 for our own sends means we send uncompressed (zlib cannot
     * produce a raw stream with a 256-byte window), which RFC 7692 allows. */
    int server_max_window_bits;
    int client_max_window_bits;
    /* zlib compression level 1-9 (0: DX_DEFLATE_LEVEL) and memLevel 1-9
     * (0: DX_DEFLATE_MEM_LEVEL; lower is smaller and slower). */
    int level;
    int mem_level;
    /* Messages shorter than this many bytes are sent uncompressed (0:
     * DX_DEFLATE_THRESHOLD). SIZE_MAX: receive compressed messages, never
     * send any. */
    size_t threshold;
} dx_deflate_config;

/* The agreed parameters of one connection. Window bits are 8-15 (15 when
 * the parameter was absent). */
typedef struct dx_deflate_params {
    uint8_t server_no_context_takeover;
    uint8_t client_no_context_takeover;
    uint8_t server_max_window_bits;
    uint8_t client_max_window_bits;
} dx_deflate_params;

/* Server: looks through one Sec-WebSocket-Extensions header value for
 * permessage-deflate offers and accepts the first acceptable one (RFC 7692
 * §5): one with known parameters, each at most once, with valid values.
 * Malformed or unacceptable offers are skipped (declined), as are other
 * extensions. On acceptance fills `agreed` and writes the answer's header
 * value (NUL-terminated, for dx_handshake_write_101's `extensions`) into
 * `out`. Returns 1 (accepted), 0 (nothing acceptable in this value: try
 * the next header line, or answer without the extension), DX_ENOSPC
 * (160 bytes are always enough: the longest answer is 128 bytes and its
 * NUL), or DX_EINVAL (a NULL argument or an invalid config: window bits out
 * of 8-15, level or mem_level out of 0-9). */
DX_API int dx_deflate_accept(const dx_deflate_config *cfg, const char *offers, size_t len,
                             dx_deflate_params *agreed, char *out, size_t cap);

/* Client: writes the offer (a Sec-WebSocket-Extensions value, NUL-
 * terminated) for `cfg` into `out`. Returns its length, DX_ENOSPC, or
 * DX_EINVAL for an invalid config. 160 bytes are always enough (the
 * longest offer, every parameter with a two-digit value, is 128 bytes and
 * its NUL). */
DX_API int dx_deflate_offer(const dx_deflate_config *cfg, char *out, size_t cap);

/* Client: checks the server's Sec-WebSocket-Extensions answer (`value`,
 * `len` bytes) against the offer dx_deflate_offer made for `cfg`. It must
 * hold exactly one extension, permessage-deflate, with known parameters
 * each at most once, valid values, client_max_window_bits only with a
 * value, window values no larger than offered, and it must confirm what was
 * offered with a value or required (server_no_context_takeover,
 * server_max_window_bits). Returns 0 and fills `agreed`, or DX_EHANDSHAKE
 * with a static reason in *why (may be NULL): the client must then fail the
 * connection (RFC 7692 §5). */
DX_API int dx_deflate_verify(const dx_deflate_config *cfg, const char *value, size_t len,
                             dx_deflate_params *agreed, const char **why);

/* Turns permessage-deflate on for a connection with the `agreed`
 * parameters; `cfg` gives the local knobs (level, mem_level, threshold, and
 * our own no_context_takeover) and may be NULL for the defaults. Call it
 * after the handshake and before the first dx_conn_recv / dx_conn_send
 * (in CONNECTING, or OPEN before any frame). From then on RSV1 on the first
 * frame of a data message means "compressed", messages at or over the
 * threshold are sent compressed, and received ones are decompressed before
 * on_message (or on_fragment in stream mode). Returns 0, DX_EINVAL (bad
 * parameters), DX_ESTATE (already on), or DX_ENOMEM. */
DX_API int dx_conn_set_deflate(dx_conn *c, const dx_deflate_params *agreed,
                               const dx_deflate_config *cfg);

/* 1 when permessage-deflate is on for the connection. */
DX_API int dx_conn_deflate(const dx_conn *c);

#ifdef __cplusplus
}
#endif
#endif

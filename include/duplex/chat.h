/* duplex — the chat service: durable instant messaging over WebSocket.
 *
 * What `duplex serve --chat` runs, embeddable in any program that has a
 * dx_server: users connect with `?uid=NAME` (development) or a signed
 * `?token=` (see dx_chat_token), send messages that are stored in SQLite
 * (WAL, synchronous=FULL) before they are acknowledged, and get deliveries,
 * read receipts, presence and typing notices. The wire protocol is
 * docs/chat-protocol.md.
 *
 *     dx_loop *loop = dx_loop_new(0);
 *     dx_chat_config cc = {.db_path = "chat.db", .lobby = "lobby"};
 *     dx_chat *chat = dx_chat_new(loop, &cc);
 *     dx_server_config sc = {.port = 8080, .static_dir = "web/chat/dist"};
 *     dx_chat_server_config(chat, &sc);        // fills the callbacks
 *     dx_server *srv = dx_server_new(loop, &sc);
 *     dx_server_listen(srv);
 *     dx_loop_run(loop);
 *     ...
 *     dx_server_free(srv);                      // first the server,
 *     dx_chat_free(chat);                       // then the chat
 *
 * One dx_chat serves one dx_server on one loop. Several processes make a
 * cluster when they share a PostgreSQL database (db_path) and a Redis
 * (redis_url): see docs/cluster.md. Like the loop, nothing here is
 * thread-safe.
 *
 * Writes are committed once per loop turn (group commit): every message
 * that arrived in one turn shares one fsync, and acks leave after it.
 */
#ifndef DUPLEX_CHAT_H
#define DUPLEX_CHAT_H

#include "common.h"
#include "loop.h"
#include "server.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dx_chat dx_chat;

/* A token bucket of one user (docs/chat-protocol.md, "Limits"): `rate`
 * tokens come back each second, at most `burst` are saved up, and a request
 * that finds too few is refused with the error `rate_limited` and a
 * `retry_after` in ms, having done nothing. The bucket belongs to the uid,
 * so all its devices on this node share it (in a cluster, each node counts
 * for itself). 0 in either field takes the default; DX_CHAT_UNLIMITED in
 * `rate` turns the limit off. */
typedef struct dx_chat_rate {
    uint32_t rate;
    uint32_t burst;
} dx_chat_rate;

#define DX_CHAT_UNLIMITED UINT32_MAX

/* Per-user limits; a zero struct means every default. */
typedef struct dx_chat_limits {
    dx_chat_rate send;     /* send requests: 20/s, burst 100 */
    dx_chat_rate bytes;    /* bytes of text stored by send: 1024/s, burst 256 KiB
                            * (at least 4000, one message) */
    dx_chat_rate join;     /* join requests: 5/s, burst 20 */
    dx_chat_rate read;     /* read requests: 20/s, burst 100 */
    dx_chat_rate typing;   /* typing notices: 5/s, burst 20 */
    dx_chat_rate presence; /* presence requests: 5/s, burst 20 */
    dx_chat_rate fetch;    /* sync and history requests: 10/s, burst 40 */
    /* Rooms (g:...) a user may be a member of; a join past it gets
     * `too_many_rooms`. The lobby is always joined. Default 1000;
     * DX_CHAT_UNLIMITED: no cap. */
    uint32_t max_rooms;
    /* Conversations in one sync reply; more come in pages (`next`).
     * Default 200; DX_CHAT_UNLIMITED: one reply, as large as it gets. */
    uint32_t sync_page;
} dx_chat_limits;

typedef struct dx_chat_config {
    /* The SQLite database file, created when missing. NULL or ":memory:"
     * keeps everything in memory (nothing survives a restart). A URL
     * "postgresql://..." (or "postgres://...") selects PostgreSQL instead:
     * the store several nodes share; its chat_* tables are created when
     * missing. Copied. */
    const char *db_path;
    /* HMAC-SHA256 key for tokens, at least 16 bytes (32 random ones are
     * best): dx_chat_new refuses a shorter one, and a non-NULL secret of
     * length 0, rather than turn authentication off. When set, only
     * `?token=` identifies a user: `?uid=`, or a bad or expired token, opens
     * a WebSocket that is closed at once with 4401 and the reason (a
     * browser cannot read an HTTP refusal; docs/chat-protocol.md). NULL (and
     * secret_len 0): `?uid=NAME` is accepted as is, so anyone can be
     * anyone — development only. Copied. */
    const void *secret;
    size_t secret_len;
    /* A room ("lobby" → g:lobby) every user joins on connecting; NULL for
     * none. Copied. */
    const char *lobby;
    /* Several nodes (docs/cluster.md): "redis://[:password@]host[:port][/db]".
     * Deliveries, receipts, typing and presence then reach the devices of
     * every node that shares this Redis, and db_path must be the
     * "postgresql://..." URL of the database they all share (a SQLite file
     * is refused: each node would have its own truth). NULL: one node.
     * Copied. */
    const char *redis_url;
    /* How long the users of a node that died stay online for the others,
     * in ms; 0 means 15000. */
    uint32_t presence_ttl_ms;
    /* Called on the loop each time the link to Redis comes up (up = 1) or
     * goes down (0, `why` a static one-line reason). Optional. */
    void (*on_cluster)(void *user, int up, const char *why);
    void *user;
    /* Per-user rate limits, the rooms cap and the sync page (above). */
    dx_chat_limits limits;

    /* Fan-out and connections (docs/chat-protocol.md, "Limits"). A typing
     * notice reaches the other members at most once per user and
     * conversation per `typing_interval_ms`; the notices in between are
     * absorbed (no reply, no push). 0: 1500. */
    uint32_t typing_interval_ms;
    /* WebSocket connections one user (uid) may open per minute, and one
     * client address (IPv4, or an IPv6 /64): a bucket of that many that
     * refills over a minute, so a burst of tabs passes and a reconnect
     * loop does not. Past it the upgrade gets HTTP 429 with Retry-After
     * (seconds). 0: 30 per uid, 300 per address; DX_CHAT_UNLIMITED: off. */
    uint32_t connects_per_uid;
    uint32_t connects_per_ip;

    /* Development sign-in (docs/chat-protocol.md, "Signing in"): with a
     * secret, `POST /token?uid=NAME` answers a token for NAME, so whoever
     * can reach it can be anyone. DX_CHAT_DEV_LOGIN_LOCAL accepts it only
     * from a loopback address, with a loopback Host and no proxy headers
     * (a proxy on the same machine would make everyone local);
     * DX_CHAT_DEV_LOGIN_ANY from anywhere. 0 (the default): off, and the
     * request gets 404. dx_chat_new refuses it without a secret. */
    int dev_login;
    /* Lifetime of those tokens in seconds; 0: 86400. */
    uint32_t dev_login_ttl;

    /* Files and pictures (docs/chat-protocol.md, "Files and pictures";
     * docs/security.md, "Chat files"): uploads over the WebSocket, downloads
     * from GET /files/<sha256>. `files_dir` is the directory they are
     * stored in, created when missing (its parent must exist), with tmp/
     * and by/ inside; dx_chat_new fails, naming it, when it cannot be
     * created or written. NULL: "<db_path>.files" beside a SQLite file;
     * uploads are off (the `upload` request is refused) with a database in
     * memory, and with PostgreSQL, whose nodes must all see one directory:
     * give them a shared mount here. Copied. */
    const char *files_dir;
    /* Largest file in bytes; a larger upload is refused (`too_large`)
     * before anything is stored. 0: 25 MiB. */
    uint64_t max_upload;
    /* How long after sending a message its sender may recall it, in ms;
     * 0: 120000 (2 minutes). */
    uint32_t recall_window_ms;
} dx_chat_config;

#define DX_CHAT_DEV_LOGIN_LOCAL 1
#define DX_CHAT_DEV_LOGIN_ANY 2

/* Opens the store and creates the service on `loop`. NULL on failure
 * (dx_chat_new_why() says why: the database cannot be opened, bad lobby
 * name, a secret under 16 bytes, the files directory cannot be created or
 * written, out of memory). */
DX_API dx_chat *dx_chat_new(dx_loop *loop, const dx_chat_config *cfg);
DX_API const char *dx_chat_new_why(void);

/* Fills `scfg` for the chat: on_upgrade, on_open, on_message, on_close,
 * on_http (which answers /token, see dx_chat_config.dev_login, and
 * /files/<sha256>, see files_dir, and leaves every other path to the
 * server), user and conn_data_size (other
 * callbacks set there are replaced), and
 * when they are 0: max_message 1 MiB, ping_interval_ms 20 s,
 * ping_timeout_ms 10 s; app_heartbeat is turned on. Best-effort pushes
 * (typing, presence changes) skip a device with half of
 * scfg->max_buffered (as set when this is called) already queued, so they
 * never close it as a slow consumer. Call before dx_server_new(). Returns
 * 0 or DX_EINVAL. */
DX_API int dx_chat_server_config(dx_chat *chat, dx_server_config *scfg);

/* Tells the chat its server (optional with one node; learnt from the first
 * connection otherwise). With redis_url set, call it after dx_server_new():
 * it sets the server's broker (server.h) so that /healthz answers 503
 * {"status":"degraded","redis":"down"} while Redis is away; chat traffic
 * crosses Redis through the chat's own channel, never through the server's
 * broker, so do not set another broker on `srv`. Returns 0 or DX_EINVAL. */
DX_API int dx_chat_attach(dx_chat *chat, dx_server *srv);

/* The service's counters (duplex serve --metrics exports them; docs/metrics.md).
 * Latencies are histograms in microseconds: counts per bucket of
 * DX_CHAT_LATENCY_BOUNDS_US (the last bucket is over the last bound, so
 * their sum is the number of observations) and the sum. */
#define DX_CHAT_LATENCY_BUCKETS 12
#define DX_CHAT_LATENCY_BOUNDS_US                                                                  \
    { 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000 }
typedef struct dx_chat_stats {
    size_t size;           /* set to sizeof(dx_chat_stats) before the call */
    uint64_t sends;        /* send requests stored or found (duplicates included) */
    uint64_t duplicates;   /* sends answered from the store with dup: true */
    uint64_t acks;         /* acks sent, after their commit */
    uint64_t deliveries;   /* messages fanned out to a conversation's members */
    uint64_t syncs;        /* sync pages answered */
    uint64_t commits;      /* store transactions committed (group commit) */
    uint64_t committed;    /* requests whose answer waited for those commits */
    uint64_t store_errors; /* commits that failed: their requests got store_failed */
    uint64_t devices;      /* gauge: devices connected to this node */
    /* receive of a send → its ack written (the store's commit included) */
    uint64_t ack_us[DX_CHAT_LATENCY_BUCKETS + 1];
    uint64_t ack_us_sum;
    /* one commit of the store */
    uint64_t commit_us[DX_CHAT_LATENCY_BUCKETS + 1];
    uint64_t commit_us_sum;

    /* The cluster (docs/cluster.md); zeros on a single node. */
    uint64_t redis;            /* 1 when the chat runs with a Redis broker */
    uint64_t redis_up;         /* gauge: 1 while both its connections are up and
                                  subscribed */
    uint64_t redis_reconnects; /* connections to Redis made again after one was
                                  lost (publisher and subscriber each count) */
    /* The bus's latency: this node's heartbeat (one every third of the
     * presence TTL, 5 s by default) from its PUBLISH until this node's own
     * subscriber hears it from Redis, the path every message to the other
     * nodes takes; on this node's clock, in microseconds, in the loop's
     * buckets (DX_LOOP_TURN_BOUNDS_US in loop.h, not cumulative). */
    uint64_t bus_us[DX_LOOP_TURN_BUCKETS];
    uint64_t bus_us_sum;
    uint64_t pg;        /* 1 when the store is PostgreSQL */
    uint64_t pg_errors; /* PostgreSQL statements that failed, and reconnections
                           that failed (each try) */
    uint64_t users;     /* gauge: users with at least one device on this node */
} dx_chat_stats;

/* Copies the counters into `out` (out->size set by the caller: fields past
 * it are not written). Returns 0, or DX_EINVAL for a bad argument. Call
 * on the loop's thread, or accept a moment-old value from another. */
DX_API int dx_chat_stats_get(const dx_chat *chat, dx_chat_stats *out);

/* Commits what is pending and frees the service. Free the server first
 * (its connections' on_close still use the chat), after the loop stopped. */
DX_API void dx_chat_free(dx_chat *chat);

/* Writes the token "UID.EXPIRES.SIG" for `uid` (1-32 of A-Z a-z 0-9 _ -)
 * valid until `expires` (Unix seconds) into `out`, NUL-terminated. SIG is
 * base64url (no padding) of HMAC-SHA256(secret, "UID.EXPIRES"). Returns
 * the length, DX_EINVAL (bad uid, no secret) or DX_ENOSPC (128 bytes are
 * always enough). */
DX_API int dx_chat_token(const void *secret, size_t secret_len, const char *uid, int64_t expires,
                         char *out, size_t cap);

/* Checks `token` (`len` bytes) against `secret` at time `now` (Unix
 * seconds), in constant time for the signature. On success writes the uid
 * (NUL-terminated, `uid_cap` >= 33) and returns 0; DX_EPOLICY when it is
 * malformed, badly signed or expired. */
DX_API int dx_chat_token_check(const void *secret, size_t secret_len, const char *token, size_t len,
                               int64_t now, char *uid, size_t uid_cap);

#ifdef __cplusplus
}
#endif
#endif

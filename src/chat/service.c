/* The chat service on a dx_server (include/duplex/chat.h): identifies each
 * upgrade, keeps one dx__chat_dev inline in every connection, and gives the
 * engine its I/O — a send is dx_server_send, a delivery to a user is a
 * publish on the topic "u:UID" that every device of that user subscribes
 * to (framed once for all of them), and the group commit runs from a
 * deferred call after each loop turn. */
#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <duplex/chat.h>

#include "chat/broker_redis.h"
#include "chat/engine.h"
#include "chat/files.h"
#include "chat/keytab.h"
#include "chat/syncer.h"
#include "core/alloc.h"

struct dx_chat {
    dx_loop *loop;
    dx_server *srv; /* learnt from the first connection */
    dx__chat *engine;
    unsigned char *secret;
    size_t secret_len;
    int closing;            /* dx_chat_free is running: nothing goes out any more */
    dx__chat_broker *redis; /* the engine's broker when clustered (owned by it) */
    int redis_down;         /* the broker said down since it last said up */
    void (*on_cluster)(void *user, int up, const char *why);
    void *user;
    /* Fan-out and connection limits (chat.h): */
    size_t lossy_max;             /* best-effort pushes skip a queue this long */
    uint32_t per_uid, per_ip;     /* connections per minute; UNLIMITED: off */
    dx__keytab conn_uid, conn_ip; /* their buckets */
    int dev_login;                /* DX_CHAT_DEV_LOGIN_*, or 0 */
    uint32_t dev_login_ttl;       /* seconds */
    dx__chat_files *files;        /* uploads and downloads; NULL: off */
    dx__chat_store *st;           /* the engine's */
    int pg;                       /* st is the PostgreSQL store */
    dx__chat_syncer *syncer;      /* its store thread, for a store with sync() */
    uint64_t users;               /* with a device here: the users gauge */
};

/* Defaults of chat.h's connects_per_uid and connects_per_ip, and how many
 * users and addresses the buckets remember (136 bytes each, twice that at
 * most in slots: 4.4 MiB per table). A full table lets connections through:
 * the server's max_connections still bounds them, and refusing everyone
 * because someone filled it would be worse. */
#define CONNECTS_PER_UID 30
#define CONNECTS_PER_IP 300
#define CONNECT_KEYS 16384

static _Thread_local const char *new_why = "no error";
static _Thread_local char new_why_buf[512]; /* a reason that names a directory */

enum { SECRET_MIN = 16 }; /* bytes of token key, at least (chat.h) */

const char *dx_chat_new_why(void) {
    return new_why;
}

/* ---- the engine's I/O ---------------------------------------------------- */

static void io_send(void *arg, dx__chat_dev *d, const char *data, size_t len) {
    dx_chat *chat = arg;
    if (chat->closing || !d->handle) return;
    (void)dx_server_send(d->handle, DX_OP_TEXT, data, len);
}

static void topic_of(const char *uid, char out[DX_CHAT_UID_MAX + 3]) {
    snprintf(out, DX_CHAT_UID_MAX + 3, "u:%s", uid);
}

static void io_deliver(void *arg, const char *uid, const char *data, size_t len,
                       const dx__chat_dev *except) {
    dx_chat *chat = arg;
    if (chat->closing || !chat->srv) return;
    char topic[DX_CHAT_UID_MAX + 3];
    topic_of(uid, topic);
    (void)dx_server_publish(chat->srv, topic, DX_OP_TEXT, data, len,
                            except ? except->handle : NULL);
}

static void io_deliver_best(void *arg, const char *uid, const char *data, size_t len,
                            const dx__chat_dev *except) {
    dx_chat *chat = arg;
    if (chat->closing || !chat->srv) return;
    char topic[DX_CHAT_UID_MAX + 3];
    topic_of(uid, topic);
    (void)dx_server_publish_lossy(chat->srv, topic, DX_OP_TEXT, data, len,
                                  except ? except->handle : NULL, chat->lossy_max);
}

static void run_flush(dx_loop *loop, void *arg) {
    dx_chat *chat = arg;
    (void)dx__chat_flush(chat->engine);
}

static void io_schedule(void *arg) {
    dx_chat *chat = arg;
    /* When the defer cannot be queued, commit now: late acks beat none. */
    if (dx_loop_defer(chat->loop, run_flush, chat) < 0) (void)dx__chat_flush(chat->engine);
}

/* The fsync of commit `no` (and those before), on the store thread; the
 * engine hears of it on the loop (synced). Without the thread (it could
 * not start) the fsync runs here, on the loop, as before it existed. */
static void io_sync(void *arg, uint64_t no) {
    dx_chat *chat = arg;
    if (chat->syncer)
        dx__chat_syncer_want(chat->syncer, no);
    else
        dx__chat_durable(chat->engine, no, chat->st->ops->sync(chat->st));
}

static void synced(void *arg, uint64_t no, int rc) {
    dx_chat *chat = arg;
    dx__chat_durable(chat->engine, no, rc);
}

static int64_t io_mono_us(void *arg) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t io_now(void *arg) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- server callbacks ---------------------------------------------------- */

/* Finds `name=` in a query string; the value ends at '&'. */
static const char *query_param(const char *q, size_t qlen, const char *name, size_t *vlen) {
    size_t n = strlen(name);
    const char *p = q, *end = q + qlen;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - p) > n && !memcmp(p, name, n) && p[n] == '=') {
            *vlen = (size_t)(stop - p - n - 1);
            return p + n + 1;
        }
        p = stop + 1;
    }
    return NULL;
}

/* Refused sign-ins (docs/chat-protocol.md, "Connecting"): the WebSocket
 * opens and is closed at once with one of these codes, because a browser
 * cannot read the status of a refused upgrade (it sees a bare "error", the
 * same as a network failure, and would retry forever). The codes mean
 * "do not reconnect": 4401 sign in (again), 4403 this kind of sign-in is
 * not accepted here. */
#define CLOSE_SIGN_IN 4401
#define CLOSE_FORBIDDEN 4403

static int refuse(dx__chat_dev *d, unsigned code, const char *why) {
    d->refused = code;
    d->refused_why = why;
    return (int)code;
}

/* Who the query string `q` of an upgrade or a download names: writes the
 * uid (DX_CHAT_UID_MAX + 1 bytes) and returns 0, or returns the close
 * code of a refused sign-in with *why. */
static unsigned identify_query(dx_chat *chat, const char *q, size_t qlen, char *uid_out,
                               const char **why) {
    size_t n = 0;
    const char *token = query_param(q, qlen, "token", &n);
    if (token) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        *why = "this server does not check tokens: connect with ?uid=NAME";
        if (!chat->secret) return CLOSE_FORBIDDEN;
        *why = "invalid or expired token";
        if (dx_chat_token_check(chat->secret, chat->secret_len, token, n, ts.tv_sec, uid_out,
                                DX_CHAT_UID_MAX + 1) < 0)
            return CLOSE_SIGN_IN;
        return 0;
    }
    const char *uid = query_param(q, qlen, "uid", &n);
    *why = "a token is required (?token=...)";
    if (chat->secret) return CLOSE_SIGN_IN;
    *why = "identify with ?uid=NAME (1-32 of A-Z a-z 0-9 _ -)";
    if (!uid || !dx__chat_valid_uid(uid, n)) return CLOSE_SIGN_IN;
    memcpy(uid_out, uid, n);
    uid_out[n] = 0;
    return 0;
}

/* Who the upgrade is: fills d->uid and returns 0, or refuses (d->refused,
 * a close code, returned too). */
static int identify(dx_chat *chat, dx__chat_dev *d, dx_upgrade *u) {
    const char *why = NULL;
    unsigned code =
        identify_query(chat, u->query ? u->query : "", u->query ? u->query_len : 0, d->uid, &why);
    return code ? refuse(d, code, why) : 0;
}

/* The address part of "ip:port" or "[ipv6]:port" as a bucket key: the 4
 * bytes of an IPv4 address (also when mapped into IPv6), or the first 8 of
 * an IPv6 one — a /64, what one host or home network usually gets, so that
 * cycling through its addresses does not reset the count. 0 when it does
 * not parse. */
static size_t ip_key(const char *remote, char key[9]) {
    char host[64];
    const char *end = remote[0] == '[' ? strchr(remote, ']') : strrchr(remote, ':');
    const char *start = remote[0] == '[' ? remote + 1 : remote;
    if (!end || (size_t)(end - start) >= sizeof host) return 0;
    memcpy(host, start, (size_t)(end - start));
    host[end - start] = 0;
    unsigned char a[16];
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (inet_pton(AF_INET, host, a) == 1) {
        key[0] = '4';
        memcpy(key + 1, a, 4);
        return 5;
    }
    if (inet_pton(AF_INET6, host, a) != 1) return 0;
    if (!memcmp(a, mapped, 12)) {
        key[0] = '4';
        memcpy(key + 1, a + 12, 4);
        return 5;
    }
    key[0] = '6';
    memcpy(key + 1, a, 8);
    return 9;
}

/* Takes a connection from the bucket of `key`; 0, or the seconds to wait. */
static uint32_t connect_take(dx__keytab *t, const char *key, size_t len, uint32_t per_min) {
    if (per_min == DX_CHAT_UNLIMITED || !len) return 0;
    int64_t now = io_now(NULL);
    dx__keyent *e = dx__keytab_get(t, key, len, now, 1, NULL);
    if (!e) return 0; /* full: fail open (see CONNECT_KEYS) */
    int64_t wait = dx__keytab_take(e, now, 1, per_min, 60000000 / per_min);
    return wait > 0 ? (uint32_t)((wait + 999) / 1000) : 0;
}

/* Identifies the user, after a rate check per address and before one per
 * user: a client reconnecting in a loop costs every contact two presence
 * pushes and the store a write each time (docs/chat-protocol.md, "Limits").
 * Refused with 429 and Retry-After, before the WebSocket exists: a client
 * library sees a failed connection and backs off, which is what it should
 * do, and the server spends nothing on a connection it will not keep. A
 * refused sign-in is the opposite case: retrying cannot help, and only a
 * close code can tell a browser so (see identify). */
static int on_upgrade(dx_server_conn *c, void *user, dx_upgrade *u) {
    dx_chat *chat = user;
    dx__chat_dev *d = dx_server_conn_data(c);
    chat->srv = dx_server_conn_server(c);
    char key[9];
    uint32_t wait = connect_take(&chat->conn_ip, key, ip_key(u->remote, key), chat->per_ip);
    if (wait) {
        u->reason = "too many connections from this address; retry later";
        u->retry_after = wait;
        return 429;
    }
    /* A refused sign-in is accepted, to be closed in on_open with its code
     * and reason; it takes nothing from a user's bucket (it has no user). */
    if (identify(chat, d, u)) return 0;
    wait = connect_take(&chat->conn_uid, d->uid, strlen(d->uid), chat->per_uid);
    if (wait) {
        u->reason = "too many connections for this user; retry later";
        u->retry_after = wait;
        return 429;
    }
    return 0;
}

static void on_open(dx_server_conn *c, void *user) {
    dx_chat *chat = user;
    dx__chat_dev *d = dx_server_conn_data(c);
    if (d->refused) {
        (void)dx_server_close(c, d->refused, d->refused_why);
        return;
    }
    d->handle = c;
    char topic[DX_CHAT_UID_MAX + 3];
    topic_of(d->uid, topic);
    if (dx_server_subscribe(c, topic) < 0) {
        (void)dx_server_close(c, 1011, "out of memory");
        return;
    }
    dx__chat_open(chat->engine, d);
    /* The user's topic has one subscriber per device here: the first one
     * brings the user to this node (the gauge; presence is the engine's). */
    if (d->online && dx_server_topic_count(dx_server_conn_server(c), topic) == 1) chat->users++;
}

static void on_message(dx_server_conn *c, void *user, enum dx_opcode op, const uint8_t *data,
                       size_t len) {
    dx_chat *chat = user;
    dx__chat_dev *d = dx_server_conn_data(c);
    if (d->refused) return; /* closing: not a user */
    dx__chat_message(chat->engine, d, (const char *)data, len, op == DX_OP_BINARY);
}

static void on_close(dx_server_conn *c, void *user, uint16_t code, const uint8_t *reason,
                     size_t reason_len, int was_clean) {
    dx_chat *chat = user;
    dx__chat_dev *d = dx_server_conn_data(c);
    int counted = !d->refused && d->online;
    if (!d->refused) dx__chat_close(chat->engine, d);
    /* Its subscriptions went before on_close: none left, the user left. */
    char topic[DX_CHAT_UID_MAX + 3];
    topic_of(d->uid, topic);
    if (counted && dx_server_topic_count(dx_server_conn_server(c), topic) == 0 && chat->users)
        chat->users--;
    d->handle = NULL;
}

/* ---- /token: how to sign in, and the development sign-in ----------------- */

static int slice_eq(const char *p, size_t n, const char *s) {
    return n == strlen(s) && !memcmp(p, s, n);
}

static const dx_http_header *header_of(const dx_http_route *r, const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i < r->num_headers; i++)
        if (r->headers[i].name_len == n && !strncasecmp(r->headers[i].name, name, n))
            return &r->headers[i];
    return NULL;
}

/* 1 when `host` (`n` bytes: "127.0.0.1", "[::1]", "localhost", each with or
 * without ":port") names this machine's loopback. */
static int host_is_loopback(const char *host, size_t n) {
    char h[64];
    const char *end = host + n;
    if (n && host[0] == '[') {
        const char *close = memchr(host, ']', n);
        if (!close) return 0;
        host++;
        end = close;
    } else {
        const char *colon = memchr(host, ':', n);
        if (colon && !memchr(colon + 1, ':', (size_t)(host + n - colon - 1))) end = colon;
    }
    if ((size_t)(end - host) >= sizeof h) return 0;
    memcpy(h, host, (size_t)(end - host));
    h[end - host] = 0;
    unsigned char a[16];
    static const unsigned char one[16] = {[15] = 1};
    static const unsigned char v4map[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (inet_pton(AF_INET, h, a) == 1) return a[0] == 127;
    if (inet_pton(AF_INET6, h, a) == 1)
        return !memcmp(a, one, 16) || (!memcmp(a, v4map, 12) && a[12] == 127);
    return !strcasecmp(h, "localhost");
}

/* The development sign-in in its local form takes requests made on this
 * machine for this machine only: from a loopback address (a request that a
 * proxy forwarded says so in its headers: on the same machine, the proxy
 * would make everyone local), to a loopback Host (a page whose DNS name
 * was rebound to 127.0.0.1 names its own host), and from no other site's
 * page (a browser sends Origin with a POST). */
static int dev_login_local(const dx_http_route *r) {
    if (!host_is_loopback(r->remote, strlen(r->remote))) return 0;
    if (header_of(r, "Forwarded") || header_of(r, "X-Forwarded-For") || header_of(r, "X-Real-IP"))
        return 0;
    const dx_http_header *h = header_of(r, "Host");
    if (!h || !host_is_loopback(h->value, h->value_len)) return 0;
    const dx_http_header *o = header_of(r, "Origin");
    if (o) {
        const char *v = o->value;
        size_t n = o->value_len, skip = 0;
        if (n > 7 && !strncasecmp(v, "http://", 7)) skip = 7;
        if (n > 8 && !strncasecmp(v, "https://", 8)) skip = 8;
        if (!skip || !host_is_loopback(v + skip, n - skip)) return 0;
    }
    return 1;
}

static void answer_json(dx_server_conn *c, int status, const char *body) {
    (void)dx_server_http_respond(c, status, "application/json", body, strlen(body));
}

/* Decodes %XX in a query value into `out` (`cap` bytes with the NUL):
 * 0, or -1 when it does not fit or holds a NUL or a bad escape. */
static int query_decode(const char *v, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned ch = (unsigned char)v[i];
        if (ch == '%') {
            unsigned x = 0;
            for (int k = 1; k <= 2; k++) {
                char h = i + (size_t)k < n ? v[i + (size_t)k] : 0;
                x = x * 16 + (unsigned)(h >= '0' && h <= '9'   ? h - '0'
                                        : h >= 'a' && h <= 'f' ? h - 'a' + 10
                                        : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                                               : 256);
            }
            if (x > 255) return -1;
            ch = x;
            i += 2;
        }
        if (!ch || o + 1 >= cap) return -1;
        out[o++] = (char)ch;
    }
    out[o] = 0;
    return 0;
}

/* GET/HEAD /files/<sha256>?conv=CONV&token=... (or &uid= without a
 * secret; docs/chat-protocol.md, "Files and pictures"): the same identity
 * check as the upgrade (403 when it fails), then 404 unless the user may
 * see that file in that conversation — the same answer whether the file
 * exists or not, so that a stranger learns nothing from an id. */
static int serve_file(dx_chat *chat, dx_server_conn *c, const dx_http_route *r) {
    char id[DX_CHAT_FILE_ID_LEN + 1], uid[DX_CHAT_UID_MAX + 1], conv[256], name[256];
    memcpy(id, r->path + 7, DX_CHAT_FILE_ID_LEN);
    id[DX_CHAT_FILE_ID_LEN] = 0;
    const char *q = r->query ? r->query : "";
    size_t qlen = r->query ? r->query_len : 0, n = 0;
    const char *why = NULL;
    if (identify_query(chat, q, qlen, uid, &why)) {
        char body[160];
        snprintf(body, sizeof body, "{\"error\":\"%s\"}\n", why);
        answer_json(c, 403, body);
        return 1;
    }
    const char *cv = query_param(q, qlen, "conv", &n);
    name[0] = 0;
    if (!chat->files || !dx__chat_file_id_valid(id) || !cv ||
        query_decode(cv, n, conv, sizeof conv) < 0 ||
        dx__chat_file_visible(chat->engine, uid, conv, id, name) != 1) {
        answer_json(c, 404, "{\"error\":\"not found\"}\n");
        return 1;
    }
    return dx__chat_files_serve(chat->files, c, r, id, name);
}

/* GET /token says how this server signs users in, so that a page can show
 * the right sign-in screen before it connects; POST /token?uid=NAME is the
 * development sign-in (chat.h, dev_login); /files/<sha256> is a download
 * (serve_file). Every other path goes on to the server (static files,
 * /healthz, 404). */
static int on_http(dx_server_conn *c, void *user, const dx_http_route *r) {
    dx_chat *chat = user;
    if (r->path_len == 7 + DX_CHAT_FILE_ID_LEN && !memcmp(r->path, "/files/", 7))
        return serve_file(chat, c, r);
    if (!slice_eq(r->path, r->path_len, "/token")) return 0;
    char body[256];
    if (slice_eq(r->method, r->method_len, "GET") || slice_eq(r->method, r->method_len, "HEAD")) {
        snprintf(body, sizeof body, "{\"auth\":\"%s\",\"dev_login\":%s}\n",
                 chat->secret ? "token" : "uid", chat->dev_login ? "true" : "false");
        answer_json(c, 200, body);
        return 1;
    }
    if (!slice_eq(r->method, r->method_len, "POST")) {
        answer_json(c, 405, "{\"error\":\"use GET, or POST ?uid=NAME to sign in\"}\n");
        return 1;
    }
    if (!chat->dev_login) {
        answer_json(
            c, 404,
            "{\"error\":\"development sign-in is off (duplex serve --chat --dev-login)\"}\n");
        return 1;
    }
    if (chat->dev_login == DX_CHAT_DEV_LOGIN_LOCAL && !dev_login_local(r)) {
        answer_json(c, 403,
                    "{\"error\":\"development sign-in is for this machine only "
                    "(http://127.0.0.1 or localhost, no proxy)\"}\n");
        return 1;
    }
    size_t n = 0;
    const char *uid = r->query ? query_param(r->query, r->query_len, "uid", &n) : NULL;
    char name[DX_CHAT_UID_MAX + 1], tok[160];
    if (!uid || !dx__chat_valid_uid(uid, n)) {
        answer_json(c, 400, "{\"error\":\"uid must be 1-32 of A-Z a-z 0-9 _ -\"}\n");
        return 1;
    }
    memcpy(name, uid, n);
    name[n] = 0;
    int64_t exp = io_now(NULL) / 1000 + chat->dev_login_ttl;
    if (dx_chat_token(chat->secret, chat->secret_len, name, exp, tok, sizeof tok) < 0) {
        answer_json(c, 500, "{\"error\":\"cannot sign the token\"}\n");
        return 1;
    }
    snprintf(body, sizeof body, "{\"uid\":\"%s\",\"token\":\"%s\",\"expires\":%lld}\n", name, tok,
             (long long)exp);
    answer_json(c, 200, body);
    return 1;
}

/* ---- several nodes -------------------------------------------------------- */

/* Pushes from other nodes are not queued while Redis is away (see
 * docs/cluster.md), so when it is back every device here is told to sync
 * now ("resync"), rather than find its holes at its next message (a quiet
 * conversation would keep them until the next reconnection). */
static void on_redis_state(void *user, int up, const char *why) {
    dx_chat *chat = user;
    if (!up) {
        chat->redis_down = 1;
    } else if (chat->redis_down) {
        chat->redis_down = 0;
        static const char resync[] = "{\"v\":1,\"type\":\"resync\"}";
        if (chat->srv && !chat->closing)
            (void)dx_server_broadcast(chat->srv, DX_OP_TEXT, resync, sizeof resync - 1, NULL);
    }
    if (chat->on_cluster) chat->on_cluster(chat->user, up, why);
}

/* Another node's devices of a user appeared or expired. */
static void on_redis_remote(void *user, const char *uid, int64_t devices) {
    dx_chat *chat = user;
    if (!chat->closing) dx__chat_remote_presence(chat->engine, uid, devices);
}

/* The server's broker exists only for /healthz: chat deliveries travel on
 * the chat broker's channel, so what the server would forward is dropped
 * here rather than sent twice. */
static int srv_broker_publish(void *ctx, const char *topic, enum dx_opcode op, const uint8_t *data,
                              size_t len) {
    return 0;
}

static int srv_broker_up(void *ctx) {
    dx_chat *chat = ctx;
    return dx__chat_broker_redis_up(chat->redis);
}

static int use_redis(dx_chat *chat, const dx_chat_config *cfg, const char **why) {
    dx__chat_redis_config rc = {.presence_ttl_ms = cfg->presence_ttl_ms,
                                .on_state = on_redis_state,
                                .on_remote = on_redis_remote,
                                .user = chat};
    if (dx__redis_parse_url(cfg->redis_url, &rc.addr, why) < 0) return -1;
    if (dx_random(rc.node_id, sizeof rc.node_id) < 0) {
        *why = "no random source for the node id";
        return -1;
    }
    chat->redis = dx__chat_broker_redis(chat->loop, &rc, dx__chat_deliver_here, chat->engine);
    if (!chat->redis) {
        *why = "out of memory";
        return -1;
    }
    dx__chat_use_broker(chat->engine, chat->redis);
    return 0;
}

/* The store of files: cfg->files_dir, else "<db_path>.files" beside a
 * SQLite file; none (uploads off) for a database in memory, and for
 * PostgreSQL without files_dir — each node would have a directory of its
 * own, and a file uploaded on one would be missing on the others. 0, or
 * -1 with *why. */
static int open_files(dx_chat *chat, const dx_chat_config *cfg, int pg, const char **why) {
    char dir[PATH_MAX];
    const char *db = cfg->db_path;
    if (cfg->files_dir) {
        snprintf(dir, sizeof dir, "%s", cfg->files_dir);
    } else {
        if (pg || !db || !*db || !strcmp(db, ":memory:")) return 0;
        if ((size_t)snprintf(dir, sizeof dir, "%s.files", db) >= sizeof dir) {
            *why = "the database path is too long";
            return -1;
        }
    }
    const char *fwhy = "out of memory";
    chat->files = dx__chat_files_new(dir, cfg->max_upload, &fwhy);
    if (chat->files) return 0;
    snprintf(new_why_buf, sizeof new_why_buf, "files directory %.400s: %s", dir, fwhy);
    *why = new_why_buf;
    return -1;
}

/* ---- public -------------------------------------------------------------- */

dx_chat *dx_chat_new(dx_loop *loop, const dx_chat_config *cfg) {
    if (!loop || !cfg) {
        new_why = "no loop or no configuration";
        return NULL;
    }
    /* Authentication is off only when no secret is given at all: an empty
     * one (an unset variable) or a short one (guessable, so every token
     * forgeable) is a mistake, refused rather than served. */
    if ((cfg->secret || cfg->secret_len) && (!cfg->secret || cfg->secret_len < SECRET_MIN)) {
        new_why = "the secret must be at least 16 bytes";
        return NULL;
    }
    dx_chat *chat = dx__calloc(1, sizeof *chat);
    if (!chat) {
        new_why = "out of memory";
        return NULL;
    }
    chat->loop = loop;
    if (cfg->secret && cfg->secret_len) {
        chat->secret = dx__malloc(cfg->secret_len);
        if (!chat->secret) {
            new_why = "out of memory";
            dx__free(chat);
            return NULL;
        }
        memcpy(chat->secret, cfg->secret, cfg->secret_len);
        chat->secret_len = cfg->secret_len;
    }
    chat->on_cluster = cfg->on_cluster;
    chat->user = cfg->user;
    if (cfg->dev_login && (!chat->secret || (cfg->dev_login != DX_CHAT_DEV_LOGIN_LOCAL &&
                                             cfg->dev_login != DX_CHAT_DEV_LOGIN_ANY))) {
        /* Without a secret ?uid= already lets anyone be anyone. */
        new_why = chat->secret ? "bad dev_login" : "the development sign-in needs a secret";
        dx__free(chat->secret);
        dx__free(chat);
        return NULL;
    }
    chat->dev_login = cfg->dev_login;
    chat->dev_login_ttl = cfg->dev_login_ttl ? cfg->dev_login_ttl : 86400;
    const char *why = "out of memory";
    int pg = dx__chat_store_is_pg_url(cfg->db_path);
    if (cfg->redis_url && !pg) {
        new_why = "a cluster (Redis) needs a shared PostgreSQL store (postgresql://...)";
        dx__free(chat->secret);
        dx__free(chat);
        return NULL;
    }
    dx__chat_store *st =
        pg ? dx__chat_store_pg(cfg->db_path, &why) : dx__chat_store_sqlite(cfg->db_path, &why);
    /* PostgreSQL is asked on the store thread (engine.h, dx__chat_use_thread),
     * through `st`; the engine on the loop keeps a connection of its own
     * for the one question it still asks, who may download a file. */
    dx__chat_store *thread_st = NULL;
    if (st && pg) {
        thread_st = st;
        st = dx__chat_store_pg(cfg->db_path, &why);
        if (!st) {
            thread_st->ops->close(thread_st);
            thread_st = NULL;
        }
    }
    dx__chat_io io = {.arg = chat,
                      .send = io_send,
                      .deliver = io_deliver,
                      .schedule = io_schedule,
                      .now_ms = io_now,
                      .mono_us = io_mono_us,
                      .deliver_best = io_deliver_best,
                      .sync = io_sync};
    if (st) {
        chat->st = st;
        chat->pg = pg;
        chat->engine = dx__chat_new(&io, st, cfg->lobby, &why);
        if (!chat->engine) st->ops->close(st);
    }
    if (!chat->engine && thread_st) thread_st->ops->close(thread_st);
    if (chat->engine && dx__chat_set_limits(chat->engine, &cfg->limits) < 0) {
        why = "out of memory";
        if (thread_st) thread_st->ops->close(thread_st);
        thread_st = NULL;
        dx__chat_free(chat->engine);
        chat->engine = NULL;
    }
    if (chat->engine && thread_st && dx__chat_use_thread(chat->engine, loop, thread_st, &why) < 0) {
        dx__chat_free(chat->engine);
        chat->engine = NULL;
    }
    if (chat->engine) {
        dx__chat_set_typing_interval(chat->engine, cfg->typing_interval_ms);
        chat->lossy_max = (1u << 20) / 2; /* the server's default max_buffered, halved */
        chat->per_uid = cfg->connects_per_uid ? cfg->connects_per_uid : CONNECTS_PER_UID;
        chat->per_ip = cfg->connects_per_ip ? cfg->connects_per_ip : CONNECTS_PER_IP;
        dx__keytab_init(&chat->conn_uid, CONNECT_KEYS);
        dx__keytab_init(&chat->conn_ip, CONNECT_KEYS);
    }
    if (chat->engine && cfg->redis_url && use_redis(chat, cfg, &why) < 0) {
        dx__chat_free(chat->engine);
        chat->engine = NULL;
    }
    if (chat->engine && open_files(chat, cfg, pg, &why) < 0) {
        dx__chat_free(chat->engine);
        chat->engine = NULL;
    }
    if (chat->engine) {
        if (chat->files) dx__chat_set_files(chat->engine, chat->files);
        dx__chat_set_recall_window(chat->engine, cfg->recall_window_ms ? cfg->recall_window_ms
                                                                       : DX_CHAT_RECALL_WINDOW_MS);
    }
    if (!chat->engine) {
        new_why = why;
        dx__free(chat->secret);
        dx__free(chat);
        return NULL;
    }
    /* Last, past every failure path. Without it (no thread could start)
     * io_sync fsyncs on the loop. */
    if (st->ops->sync) chat->syncer = dx__chat_syncer_new(loop, st, synced, chat);
    return chat;
}

int dx_chat_attach(dx_chat *chat, dx_server *srv) {
    if (!chat || !srv) return DX_EINVAL;
    chat->srv = srv;
    if (!chat->redis) return 0;
    dx_server_broker b = {
        .publish = srv_broker_publish, .up = srv_broker_up, .name = "redis", .ctx = chat};
    return dx_server_set_broker(srv, &b);
}

int dx_chat_server_config(dx_chat *chat, dx_server_config *scfg) {
    if (!chat || !scfg) return DX_EINVAL;
    scfg->user = chat;
    scfg->conn_data_size = sizeof(dx__chat_dev);
    scfg->on_upgrade = on_upgrade;
    scfg->on_open = on_open;
    scfg->on_message = on_message;
    scfg->on_close = on_close;
    scfg->on_http = on_http;
    scfg->app_heartbeat = 1;
    if (!scfg->max_message) scfg->max_message = 1u << 20;
    /* Half: where the server stops reading from a client too, so a device
     * that cannot keep up gets the messages that matter and none of the
     * notices that would push it over max_buffered. */
    chat->lossy_max = (scfg->max_buffered ? scfg->max_buffered : (size_t)1 << 20) / 2;
    if (!scfg->ping_interval_ms) scfg->ping_interval_ms = 20000;
    if (!scfg->ping_timeout_ms) scfg->ping_timeout_ms = 10000;
    return 0;
}

void dx_chat_free(dx_chat *chat) {
    if (!chat) return;
    chat->closing = 1;
    /* The thread first: it uses the store, which the engine closes. */
    dx__chat_syncer_free(chat->syncer);
    chat->syncer = NULL; /* the engine's last flush syncs here (io_sync) */
    dx__chat_free(chat->engine);
    dx__chat_files_free(chat->files); /* after the engine, which used it */
    dx__keytab_free(&chat->conn_uid);
    dx__keytab_free(&chat->conn_ip);
    if (chat->secret) {
        explicit_bzero(chat->secret, chat->secret_len);
        dx__free(chat->secret);
    }
    dx__free(chat);
}

int dx_chat_stats_get(const dx_chat *chat, dx_chat_stats *out) {
    if (!chat || !out || out->size < sizeof out->size + sizeof(uint64_t)) return DX_EINVAL;
    dx_chat_stats all = {.size = sizeof all};
    dx__chat_stats_get(chat->engine, &all);
    if (chat->redis) {
        all.redis = 1;
        dx__chat_broker_redis_stats(chat->redis, &all);
    }
    all.pg = (uint64_t)chat->pg;
    all.pg_errors = chat->engine ? dx__chat_store_errors(chat->engine) : 0;
    all.users = chat->users;
    size_t want = out->size < sizeof all ? out->size : sizeof all;
    all.size = want;
    memcpy(out, &all, want);
    return 0;
}

/* duplex serve: the echo and broadcast servers, on one or more threads. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <duplex/fanout.h>
#include <duplex/loop.h>
#include <duplex/server.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/log.h"
#include "cli/metrics.h"
#include "cli/serve_chat.h"
#include "cli/status.h"

#define MAX_THREADS 256
#define MAX_ORIGINS 64
#define SHUTDOWN_MS 2000

enum mode { MODE_NONE, MODE_ECHO, MODE_BROADCAST, MODE_CHAT };

typedef struct worker {
    pthread_t thread;
    dx_loop *loop;
    dx_server *srv;
    dx_fanout *fan; /* --redis: this thread's link to the other nodes */
    int index;
} worker;

static worker workers[MAX_THREADS];
static int nworkers;
static atomic_int stopping;

static void usage(FILE *f) {
    fprintf(
        f, "usage: duplex serve (--echo | --broadcast | --chat) [options]\n\n"
           "Runs a WebSocket server; plain HTTP on the same port serves /healthz,\n"
           "static files (--static) or 404. SIGINT/SIGTERM shut it down gracefully:\n"
           "every client gets close 1001 and up to 2 s to answer.\n\n"
           "modes:\n"
           "  --echo                  send every message back (same opcode)\n"
           "  --broadcast             send every message to every open client\n"
           "  --chat                  the chat service (docs/chat-protocol.md) and its web\n"
           "                          UI (unless --static: ./web/chat/dist, else beside the\n"
           "                          binary, else the installed share/duplex/chat); one thread\n\n"
           "chat options:\n"
           "  --db FILE               SQLite database, created when missing (default: in\n"
           "                          memory, lost on exit)\n"
           "  --db postgresql://...   PostgreSQL instead (libpq URL), the store that the\n"
           "                          nodes of a cluster share; tables created when missing\n"
           "  --redis URL             with --chat: one node of a chat cluster (needs the\n"
           "                          PostgreSQL --db); deliveries and presence cross nodes\n"
           "  --presence-ttl S        a dead node's users go offline after S s (default 15)\n"
           "  --secret S              sign/check user tokens with HMAC-SHA256 key S (or\n"
           "                          $DUPLEX_CHAT_SECRET), 16 bytes or more; then ?uid= is\n"
           "                          refused (without a secret, anyone can be anyone)\n"
           "  --token-for UID         print a token for UID and exit (needs the secret)\n"
           "  --token-ttl S           its lifetime in seconds (default 86400; also --dev-login's)\n"
           "  --dev-login             with --secret: POST /token?uid=NAME gives anyone on this\n"
           "                          machine a token for any NAME (development only)\n"
           "  --dev-login-anywhere    the same from any address: anyone can be anyone\n"
           "  --rate-limit KIND=R[/B] per-user token bucket: R requests a second, B at once\n"
           "                          (repeatable; KIND=off for none). Defaults: send=20/100\n"
           "                          bytes=1024/262144 (text stored) join=5/20 read=20/100\n"
           "                          typing=5/20 presence=5/20 fetch=10/40 (sync, history)\n"
           "  --max-rooms N|off       rooms one user may be in (default 1000)\n"
           "  --sync-page N|off       conversations per sync reply, more in pages (default 200)\n"
           "  --connects-per-ip N|off WebSocket connections a minute from one address, past\n"
           "                          which the upgrade gets 429 (default 300)\n"
           "  --connects-per-user N|off  the same per user (default 30)\n");
    fprintf(f, "  --files DIR             where uploaded files are kept (default: DB.files beside\n"
               "                          a SQLite --db; none in memory; with PostgreSQL, uploads\n"
               "                          are on only with --files, a directory all nodes share)\n"
               "  --max-upload BYTES      largest uploaded file (default 26214400, 25 MiB)\n"
               "  --recall-window S       a sender may recall a message for S s (default 120)\n\n");
    /* Two strings: C17 promises no more than 4095 bytes in one. */
    fprintf(
        f, "options:\n"
           "  --host H                address to listen on (default 127.0.0.1; 0.0.0.0 for all)\n"
           "  --port P                port (default 8080; 0 picks a free one)\n"
           "  --static DIR            serve files from DIR (index.html, ETag, 304, HEAD)\n"
           "  --redis URL             redis://[:password@]host[:port][/db]: one node of a\n"
           "                          cluster; broadcasts reach the clients of every node\n"
           "                          through Redis pub/sub (reconnects by itself; while\n"
           "                          Redis is down, /healthz answers 503 degraded)\n"
           "  --cert F --key F        PEM certificate chain and key: wss:// and https://\n"
           "  --threads N             N event loops on N threads sharing one listening\n"
           "                          socket (default 1)\n"
           "  --max-connections N     open WebSockets; more get HTTP 503 (default unlimited)\n"
           "  --max-message BYTES     largest message; larger closes with 1009 (default 16 MiB)\n"
           "  --max-buffered BYTES    output queued per client before the slow-consumer\n"
           "                          policy closes it with 1008 (default 1 MiB)\n"
           "  --max-partial-total BYTES|off  memory all unfinished (fragmented or compressed)\n"
           "                          messages may hold, per thread; over it the biggest\n"
           "                          holder is closed with 1009 (default 64 MiB or\n"
           "                          4 x --max-message, whichever is more)\n"
           "  --partial-timeout S|off close (1008) a client whose message is still\n"
           "                          unfinished S seconds after it began (default 60)\n"
           "  --ping-interval S       send a ping frame after S seconds of silence (default off)\n"
           "  --ping-timeout S        drop a client that has not answered in S seconds\n"
           "                          (reported as 1006; default: the ping interval)\n"
           "  --idle-timeout S        close (1001) a client silent for S seconds (default off)\n"
           "  --handshake-timeout S   drop a connection without a request after S s (default 10)\n"
           "  --close-timeout S       drop a peer that takes more than S s to answer our close,\n"
           "                          or that reads nothing of an HTTP answer for S s (default 5)\n"
           "  --origin O              allow browser pages from origin O only (repeatable;\n"
           "                          other origins get 403; default: any)\n"
           "  --no-app-ping           do not answer the text message \"ping\" with \"pong\"\n"
           "                          (answered by default, unseen by the mode)\n"
           "  --no-deflate            do not negotiate permessage-deflate (negotiated by\n"
           "                          default, asking both sides for no_context_takeover,\n"
           "                          so connections hold no compression state)\n"
           "  --deflate-takeover      let both sides keep their compression context between\n"
           "                          messages: smaller messages, up to ~180 KiB per client\n"
           "  --deflate-window BITS   largest LZ77 window (8-15) either side may use (default 15)\n"
           "  --deflate-level N       zlib level 1-9 for what the server sends (default 1)\n"
           "  --deflate-threshold B   send messages under B bytes uncompressed (default 128)\n");
    fprintf(f, "  --no-fallback           do not serve the HTTP session transport (SSE/long\n"
               "                          polls + POSTs, docs/fallback.md) that browser clients\n"
               "                          use where a proxy breaks WebSocket (served by default)\n"
               "  --epoll                 keep every socket on epoll (open WebSockets move to\n"
               "                          an io_uring by default where the kernel has it)\n"
               "  --metrics               GET /metrics on this port: Prometheus text, every\n"
               "                          thread summed (docs/metrics.md); loopback peers only,\n"
               "                          others get 403\n"
               "  --metrics-public        the same, for any peer (keep the port private)\n"
               "                          Both also serve /status, a live page of these\n"
               "                          numbers (docs/operations.md), by the same rule.\n"
               "  --quiet                 do not print the listening line\n"
               "  --log-format text|json  the log on stderr: lines for people (default) or one\n"
               "                          JSON object per event (start, listen, refused\n"
               "                          handshakes, slow consumers, Redis up/down, shutdown)\n"
               "  --log-level LEVEL       debug, info (default), warn or error\n"
               "  -h, --help              this help\n\n"
               "Seconds may be fractional (0.5). Exit status: 0 after a clean shutdown,\n"
               "1 when the server cannot start, 2 for a usage error.\n");
}

/* ---- the modes -------------------------------------------------------- */

static void on_echo(dx_server_conn *c, void *user, enum dx_opcode op, const uint8_t *data,
                    size_t len) {
    (void)dx_server_send(c, op, data, len);
}

/* A message on its way to the other threads' clients: one copy, shared by
 * every loop it is posted to, freed by the last. */
typedef struct xmsg {
    atomic_int refs;
    enum dx_opcode op;
    size_t len;
    uint8_t data[];
} xmsg;

static void xmsg_run(dx_loop *loop, void *arg) {
    xmsg *m = arg;
    for (int i = 0; i < nworkers; i++)
        if (workers[i].loop == loop && workers[i].srv)
            (void)dx_server_deliver(workers[i].srv, NULL, m->op, m->data, m->len);
    if (atomic_fetch_sub(&m->refs, 1) == 1) free(m);
}

static void on_broadcast(dx_server_conn *c, void *user, enum dx_opcode op, const uint8_t *data,
                         size_t len) {
    dx_server *srv = dx_server_conn_server(c);
    (void)dx_server_broadcast(srv, op, data, len, NULL);
    if (nworkers < 2) return;
    xmsg *m = malloc(sizeof *m + len);
    if (!m) return;
    atomic_init(&m->refs, nworkers - 1);
    m->op = op;
    m->len = len;
    if (len) memcpy(m->data, data, len);
    dx_loop *self = dx_server_loop(srv);
    for (int i = 0; i < nworkers; i++) {
        if (workers[i].loop == self) continue;
        if (dx_loop_post(workers[i].loop, xmsg_run, m) < 0 && atomic_fetch_sub(&m->refs, 1) == 1)
            free(m);
    }
}

/* ---- --redis ------------------------------------------------------------ */

static int redis_quiet, redis_threads;

/* One line per change of the link to Redis (tests wait for them). */
static void on_redis_state(void *user, int up, const char *why) {
    worker *w = user;
    if (redis_quiet && up) return;
    char who[32] = "";
    if (redis_threads > 1) snprintf(who, sizeof who, " (thread %d)", w->index);
    char thread[16];
    snprintf(thread, sizeof thread, "%d", w->index);
    if (up)
        dx_cli_log(DX_LOG_INFO, "redis_up", DX_LOG_FIELDS("thread", thread), "redis up%s", who);
    else
        dx_cli_log(DX_LOG_WARN, "redis_down", DX_LOG_FIELDS("thread", thread, "why", why),
                   "redis down%s: %s", who, why);
}

/* ---- the library's events ------------------------------------------------ */

/* Refused handshakes are logged at most LOG_BURST a second (a scan or a
 * flood must not fill the disk): the rest are counted and told in one
 * line the next time one is logged. Every thread shares the budget. */
enum { LOG_BURST = 20 };
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static time_t log_second;
static unsigned log_used, log_skipped;

static void on_server_event(void *user, const dx_server_event *e) {
    (void)user;
    int slow = !strcmp(e->name, "slow_consumer");
    unsigned skipped = 0;
    pthread_mutex_lock(&log_mu);
    time_t now = time(NULL);
    if (now != log_second) log_second = now, log_used = 0;
    int ok = slow || log_used < LOG_BURST;
    if (ok) {
        log_used += !slow;
        skipped = log_skipped;
        log_skipped = 0;
    } else {
        log_skipped++;
    }
    pthread_mutex_unlock(&log_mu);
    if (!ok) return;
    if (skipped) {
        char n[24];
        snprintf(n, sizeof n, "%u", skipped);
        dx_cli_log(DX_LOG_WARN, "log_skipped", DX_LOG_FIELDS("count", n),
                   "%u refused handshakes not logged (over %d a second)", skipped, LOG_BURST);
    }
    char status[16];
    snprintf(status, sizeof status, "%d", e->status);
    if (slow)
        dx_cli_log(DX_LOG_WARN, e->name, DX_LOG_FIELDS("remote", e->remote, "code", status),
                   "closed %s: slow consumer (1008)", e->remote);
    else
        dx_cli_log(DX_LOG_INFO, e->name,
                   DX_LOG_FIELDS("remote", e->remote, "status", status, "reason", e->reason),
                   "refused the upgrade from %s: %s %s", e->remote, status, e->reason);
}

/* ---- shutdown --------------------------------------------------------- */

static void on_shutdown_done(dx_loop *loop, void *arg) {
    dx_loop_stop(loop);
}

static void begin_shutdown(dx_loop *loop, void *arg) {
    worker *w = arg;
    if (dx_server_shutdown(w->srv, SHUTDOWN_MS, on_shutdown_done, w) < 0) dx_loop_stop(loop);
}

static void stop_now(dx_loop *loop, void *arg) {
    dx_loop_stop(loop);
}

static void on_signal(dx_loop *loop, void *arg) {
    /* The first signal shuts down gracefully; a second one stops at once. */
    int second = atomic_exchange(&stopping, 1);
    if (second)
        dx_cli_log(DX_LOG_WARN, "stop", NULL, "stopping now (second signal)");
    else
        dx_cli_log(DX_LOG_INFO, "shutdown", NULL,
                   "shutting down: closing connections with 1001 (a second signal stops at once)");
    for (int i = 0; i < nworkers; i++)
        (void)dx_loop_post(workers[i].loop, second ? stop_now : begin_shutdown, &workers[i]);
}

static void *run_worker(void *arg) {
    worker *w = arg;
    (void)dx_loop_run(w->loop);
    return NULL;
}

static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int dx_cli_serve(int argc, char **argv) {
    enum mode mode = MODE_NONE;
    dx_server_config cfg = {.host = "127.0.0.1", .port = 8080, .app_heartbeat = 1};
    cfg.sessions.enable = 1; /* the HTTP fallback (docs/fallback.md); --no-fallback */
    /* permessage-deflate by default, in its cheapest form (deflate.h). */
    cfg.deflate = (dx_deflate_config){
        .enable = 1, .server_no_context_takeover = 1, .client_no_context_takeover = 1};
    const char *origins[MAX_ORIGINS + 1];
    int norigins = 0, quiet = 0;
    const char *redis_url = NULL;
    uint64_t threads = 1;
    int metrics = 0; /* 1: --metrics (loopback scrapes only), 2: --metrics-public */
    dx_cli_chat_opts chat_opts = {0};
    dx_chat *chat = NULL;

    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        char name[64];
        const char *val = dx_cli_split_eq(&arg, name, sizeof name);
#define FLAG(n) DX_CLI_FLAG(n)
#define VALUE() DX_CLI_VALUE("serve")
        uint64_t u;
        if (FLAG("-h") || FLAG("--help")) {
            usage(stdout);
            return 0;
        } else if (FLAG("--echo") || FLAG("--broadcast") || FLAG("--chat")) {
            enum mode m = FLAG("--echo") ? MODE_ECHO : FLAG("--chat") ? MODE_CHAT : MODE_BROADCAST;
            if (mode != MODE_NONE && mode != m)
                return dx_cli_bad("serve", "choose one mode: --echo, --broadcast or --chat", NULL);
            mode = m;
        } else if (FLAG("--redis")) {
            VALUE();
            const char *why;
            if (dx_fanout_check_url(val, &why) < 0) return dx_cli_bad("serve", why, val);
            redis_url = val;
        } else if (FLAG("--db")) {
            VALUE();
            chat_opts.db = val;
        } else if (FLAG("--secret")) {
            VALUE();
            chat_opts.secret = val;
        } else if (FLAG("--token-for")) {
            VALUE();
            chat_opts.token_for = val;
        } else if (FLAG("--dev-login")) {
            chat_opts.dev_login = DX_CHAT_DEV_LOGIN_LOCAL;
        } else if (FLAG("--dev-login-anywhere")) {
            chat_opts.dev_login = DX_CHAT_DEV_LOGIN_ANY;
        } else if (FLAG("--token-ttl")) {
            VALUE();
            if (dx_cli_u64(val, UINT32_MAX, &chat_opts.token_ttl) || !chat_opts.token_ttl)
                return dx_cli_bad("serve", "bad number of seconds", val);
        } else if (FLAG("--presence-ttl")) {
            VALUE();
            if (dx_cli_seconds(val, 1, &chat_opts.presence_ttl_ms) ||
                chat_opts.presence_ttl_ms < 300)
                return dx_cli_bad("serve", "bad number of seconds (0.3 or more)", val);
        } else if (FLAG("--files")) {
            VALUE();
            if (!*val) return dx_cli_bad("serve", "empty directory", NULL);
            chat_opts.files = val;
        } else if (FLAG("--max-upload")) {
            VALUE();
            if (dx_cli_u64(val, UINT64_MAX, &chat_opts.max_upload) || !chat_opts.max_upload)
                return dx_cli_bad("serve", "bad size in bytes", val);
        } else if (FLAG("--recall-window")) {
            VALUE();
            if (dx_cli_seconds(val, 0, &chat_opts.recall_ms))
                return dx_cli_bad("serve", "bad number of seconds", val);
        } else if (FLAG("--rate-limit") || FLAG("--max-rooms") || FLAG("--sync-page") ||
                   FLAG("--connects-per-ip") || FLAG("--connects-per-user")) {
            VALUE();
            if (dx_cli_chat_limit(&chat_opts, arg, val)) return 2;
        } else if (FLAG("--quiet") || FLAG("-q")) {
            quiet = 1;
        } else if (FLAG("--log-format")) {
            VALUE();
            if (dx_cli_log_setup(val, NULL) < 0)
                return dx_cli_bad("serve", "--log-format is text or json", val);
        } else if (FLAG("--log-level")) {
            VALUE();
            if (dx_cli_log_setup(NULL, val) < 0)
                return dx_cli_bad("serve", "--log-level is debug, info, warn or error", val);
        } else if (FLAG("--epoll")) {
            cfg.epoll_only = 1;
        } else if (FLAG("--metrics")) {
            if (!metrics) metrics = 1;
        } else if (FLAG("--metrics-public")) {
            metrics = 2;
        } else if (FLAG("--no-app-ping")) {
            cfg.app_heartbeat = 0;
        } else if (FLAG("--no-deflate")) {
            cfg.deflate.enable = 0;
        } else if (FLAG("--no-fallback")) {
            cfg.sessions.enable = 0;
        } else if (FLAG("--deflate-takeover")) {
            cfg.deflate.server_no_context_takeover = cfg.deflate.client_no_context_takeover = 0;
        } else if (FLAG("--deflate-window")) {
            VALUE();
            if (dx_cli_u64(val, 15, &u) || u < 8)
                return dx_cli_bad("serve", "bad window bits (8-15)", val);
            cfg.deflate.server_max_window_bits = cfg.deflate.client_max_window_bits = (int)u;
        } else if (FLAG("--deflate-level")) {
            VALUE();
            if (dx_cli_u64(val, 9, &u) || u < 1)
                return dx_cli_bad("serve", "bad zlib level (1-9)", val);
            cfg.deflate.level = (int)u;
        } else if (FLAG("--deflate-threshold")) {
            VALUE();
            if (dx_cli_u64(val, SIZE_MAX, &u)) return dx_cli_bad("serve", "bad size in bytes", val);
            cfg.deflate.threshold = u ? (size_t)u : 1;
        } else if (FLAG("--host")) {
            VALUE();
            cfg.host = val;
        } else if (FLAG("--port")) {
            VALUE();
            if (dx_cli_u64(val, 65535, &u)) return dx_cli_bad("serve", "bad port", val);
            cfg.port = (int)u;
        } else if (FLAG("--static")) {
            VALUE();
            cfg.static_dir = val;
        } else if (FLAG("--cert")) {
            VALUE();
            cfg.cert_file = val;
        } else if (FLAG("--key")) {
            VALUE();
            cfg.key_file = val;
        } else if (FLAG("--threads")) {
            VALUE();
            if (dx_cli_u64(val, MAX_THREADS, &threads) || threads == 0)
                return dx_cli_bad("serve", "bad thread count (1-256)", val);
        } else if (FLAG("--max-connections")) {
            VALUE();
            if (dx_cli_u64(val, UINT32_MAX, &u))
                return dx_cli_bad("serve", "bad connection count", val);
            cfg.max_connections = (uint32_t)u;
        } else if (FLAG("--max-message")) {
            VALUE();
            if (dx_cli_u64(val, UINT64_MAX, &u) || u == 0)
                return dx_cli_bad("serve", "bad size in bytes", val);
            cfg.max_message = u;
        } else if (FLAG("--max-buffered")) {
            VALUE();
            if (dx_cli_u64(val, SIZE_MAX, &u) || u == 0)
                return dx_cli_bad("serve", "bad size in bytes", val);
            cfg.max_buffered = (size_t)u;
        } else if (FLAG("--max-partial-total")) {
            VALUE();
            if (!strcmp(val, "off"))
                cfg.max_partial_total = SIZE_MAX;
            else if (dx_cli_u64(val, SIZE_MAX, &u) || u == 0)
                return dx_cli_bad("serve", "bad size in bytes", val);
            else
                cfg.max_partial_total = (size_t)u;
        } else if (FLAG("--partial-timeout")) {
            VALUE();
            if (!strcmp(val, "off"))
                cfg.partial_timeout_ms = UINT32_MAX;
            else if (dx_cli_seconds(val, 0, &cfg.partial_timeout_ms))
                return dx_cli_bad("serve", "bad number of seconds", val);
        } else if (FLAG("--ping-interval")) {
            VALUE();
            if (dx_cli_seconds(val, 1, &cfg.ping_interval_ms))
                return dx_cli_bad("serve", "bad number of seconds", val);
        } else if (FLAG("--ping-timeout")) {
            VALUE();
            if (dx_cli_seconds(val, 1, &cfg.ping_timeout_ms))
                return dx_cli_bad("serve", "bad number of seconds", val);
        } else if (FLAG("--idle-timeout")) {
            VALUE();
            if (dx_cli_seconds(val, 1, &cfg.idle_timeout_ms))
                return dx_cli_bad("serve", "bad number of seconds", val);
        } else if (FLAG("--handshake-timeout")) {
            VALUE();
            if (dx_cli_seconds(val, 1, &cfg.handshake_timeout_ms))
                return dx_cli_bad("serve", "bad number of seconds", val);
        } else if (FLAG("--close-timeout")) {
            VALUE();
            if (dx_cli_seconds(val, 0, &cfg.close_timeout_ms))
                return dx_cli_bad("serve", "bad number of seconds", val);
        } else if (FLAG("--origin")) {
            VALUE();
            if (norigins >= MAX_ORIGINS)
                return dx_cli_bad("serve", "too many --origin (64 at most)", NULL);
            origins[norigins++] = val;
        } else {
            return dx_cli_bad("serve", "unknown option", arg);
        }
#undef FLAG
#undef VALUE
    }
    if (chat_opts.token_for) return dx_cli_chat_token(&chat_opts);
    if (mode == MODE_NONE)
        return dx_cli_bad("serve", "choose a mode: --echo, --broadcast or --chat", NULL);
    if (mode == MODE_CHAT && threads > 1)
        return dx_cli_bad("serve", "--chat runs on one thread", NULL);
    /* A session's requests come on new connections that any thread may
     * accept, and a session lives on the thread that opened it. */
    int fallback_off_threads = threads > 1 && cfg.sessions.enable;
    if (threads > 1) cfg.sessions.enable = 0;
    if (mode == MODE_CHAT && redis_url) {
        if (!dx_cli_chat_is_pg(chat_opts.db))
            return dx_cli_bad("serve",
                              "--chat --redis needs the shared store: --db postgresql://...", NULL);
        /* The chat carries its own traffic through Redis (the server's
         * fan-out below is for --broadcast and topics). */
        chat_opts.redis = redis_url;
        redis_url = NULL;
    }
    if (mode != MODE_CHAT && (chat_opts.files || chat_opts.max_upload || chat_opts.recall_ms))
        return dx_cli_bad("serve", "--files, --max-upload and --recall-window go with --chat",
                          NULL);
    if (mode != MODE_CHAT && chat_opts.limits_set)
        return dx_cli_bad(
            "serve", "--rate-limit, --max-rooms, --sync-page and --connects-per-* go with --chat",
            NULL);
    if (mode != MODE_CHAT &&
        (chat_opts.db || chat_opts.secret || chat_opts.presence_ttl_ms || chat_opts.dev_login))
        return dx_cli_bad("serve", "--db, --secret, --presence-ttl and --dev-login go with --chat",
                          NULL);
    if (mode == MODE_CHAT) {
        int bad = dx_cli_chat_check(&chat_opts, cfg.host);
        if (bad) return bad;
    }
    if (!cfg.cert_file != !cfg.key_file)
        return dx_cli_bad("serve", "--cert and --key go together", NULL);
    if (norigins) {
        origins[norigins] = NULL;
        cfg.origins = origins;
    }
    cfg.on_message = mode == MODE_ECHO ? on_echo : on_broadcast;
    cfg.on_event = on_server_event;
    raise_nofile();

    int rc = 0;
    nworkers = (int)threads;
    /* One id for the whole process: its threads share their deliveries by
     * posts, so a message of this process coming back from Redis is
     * skipped by every thread. */
    uint8_t node_id[8] = {0};
    if (redis_url) {
        if (dx_random(node_id, sizeof node_id) < 0) {
            fprintf(stderr, "duplex serve: no random source for the node id\n");
            return 1;
        }
        redis_quiet = quiet;
        redis_threads = nworkers;
    }
    for (int i = 0; i < nworkers; i++) {
        worker *w = &workers[i];
        w->loop = dx_loop_new(0);
        if (!w->loop) {
            fprintf(stderr, "duplex serve: cannot create an event loop\n");
            rc = 1;
            break;
        }
        chat_opts.quiet = quiet;
        if (mode == MODE_CHAT && !(chat = dx_cli_chat_start(w->loop, &chat_opts, &cfg))) {
            rc = 1;
            break;
        }
        if (metrics && i == 0) {
            dx_cli_metrics_wrap(&cfg, metrics == 2); /* after the chat's */
            dx_cli_metrics_chat(chat);
            /* The live page at /status, protected as /metrics (cli/status.h). */
            dx_cli_status_wrap(&cfg, metrics == 2,
                               mode == MODE_ECHO   ? "echo"
                               : mode == MODE_CHAT ? "chat"
                                                   : "broadcast");
            dx_cli_status_chat(chat);
        }
        w->srv = dx_server_new(w->loop, &cfg);
        if (!w->srv) {
            fprintf(stderr, "duplex serve: %s\n", dx_server_new_why());
            rc = 1;
            break;
        }
        if (metrics) {
            dx_cli_metrics_add(w->srv);
            dx_cli_status_add(w->srv);
        }
        if (chat && (rc = dx_cli_chat_attach(chat, w->srv)) != 0) break;
        /* Thread 0 binds; the others share its socket (server.h), so that
         * a second server on this port fails here as it does with one thread. */
        int lr =
            i == 0 ? dx_server_listen(w->srv) : dx_server_listen_shared(w->srv, workers[0].srv);
        if (lr < 0) {
            fprintf(stderr, "duplex serve: cannot listen on %s:%d: %s\n", cfg.host, cfg.port,
                    dx_strerror(lr));
            rc = 1;
            break;
        }
        /* The port to print: with port 0, the one the kernel picked. */
        cfg.port = dx_server_port(w->srv);
        if (redis_url) {
            dx_fanout_config fc = {.url = redis_url, .on_state = on_redis_state, .user = w};
            memcpy(fc.node_id, node_id, sizeof node_id);
            w->index = i;
            const char *why = "out of memory";
            w->fan = dx_fanout_new(w->srv, &fc, &why);
            if (!w->fan) {
                fprintf(stderr, "duplex serve: %s\n", why);
                rc = 1;
                break;
            }
            if (metrics) dx_cli_metrics_fanout(w->fan);
        }
    }
    if (rc == 0 && (dx_loop_on_signal(workers[0].loop, SIGINT, on_signal, NULL) < 0 ||
                    dx_loop_on_signal(workers[0].loop, SIGTERM, on_signal, NULL) < 0)) {
        fprintf(stderr, "duplex serve: cannot watch signals\n");
        rc = 1;
    }
    if (rc == 0) {
        signal(SIGPIPE, SIG_IGN);
        if (!quiet) {
            char extra[PATH_MAX + 64] = "";
            size_t n = 0;
            if (threads > 1)
                n += (size_t)snprintf(extra + n, sizeof extra - n, ", %d threads", nworkers);
            if (fallback_off_threads && n < sizeof extra)
                n += (size_t)snprintf(extra + n, sizeof extra - n,
                                      ", HTTP fallback off (one thread only)");
            if (cfg.static_dir && n < sizeof extra)
                n += (size_t)snprintf(extra + n, sizeof extra - n, ", static %s", cfg.static_dir);
            if (mode == MODE_CHAT && n < sizeof extra)
                n += (size_t)snprintf(extra + n, sizeof extra - n, ", db %s",
                                      !chat_opts.db                     ? "in memory"
                                      : dx_cli_chat_is_pg(chat_opts.db) ? "PostgreSQL"
                                                                        : chat_opts.db);
            const char *r = redis_url ? redis_url : chat_opts.redis;
            if (r && n < sizeof extra) {
                /* Without the password: the log line is for people to read. */
                const char *at = strrchr(r, '@'), *host = strstr(r, "://");
                host = host ? host + 3 : r;
                n +=
                    (size_t)snprintf(extra + n, sizeof extra - n, ", redis %s", at ? at + 1 : host);
            }
            int v6 = strchr(cfg.host, ':') != NULL;
            const char *mname = mode == MODE_ECHO   ? "echo"
                                : mode == MODE_CHAT ? "chat"
                                                    : "broadcast";
            char url[300], nthreads[16];
            snprintf(url, sizeof url, "%s://%s%s%s:%d", cfg.cert_file ? "wss" : "ws", v6 ? "[" : "",
                     cfg.host, v6 ? "]" : "", cfg.port);
            snprintf(nthreads, sizeof nthreads, "%d", nworkers);
            char pid[16];
            snprintf(pid, sizeof pid, "%d", (int)getpid());
            dx_cli_log(DX_LOG_INFO, "start",
                       DX_LOG_FIELDS("version", DX_VERSION_STRING, "pid", pid),
                       "started, version %s, pid %s", DX_VERSION_STRING, pid);
            dx_cli_log(DX_LOG_INFO, "listen",
                       DX_LOG_FIELDS("url", url, "mode", mname, "threads", nthreads),
                       "listening on %s (%s%s)", url, mname, extra);
            /* The page's address, when there is a page. */
            if (mode == MODE_CHAT && cfg.static_dir)
                dx_cli_chat_announce(&chat_opts, &cfg, cfg.port);
        }
        int started = 1;
        for (int i = 1; i < nworkers; i++) {
            if (pthread_create(&workers[i].thread, NULL, run_worker, &workers[i]) != 0) {
                fprintf(stderr, "duplex serve: cannot start thread %d\n", i);
                rc = 1;
                break;
            }
            started++;
        }
        if (rc == 0) {
            if (dx_loop_run(workers[0].loop) < 0) rc = 1;
        } else {
            on_signal(workers[0].loop, NULL);
            (void)dx_loop_run(workers[0].loop);
        }
        for (int i = 1; i < started; i++)
            pthread_join(workers[i].thread, NULL);
        if (atomic_load(&stopping)) dx_cli_log(DX_LOG_INFO, "exit", NULL, "stopped");
    }
    for (int i = 0; i < nworkers; i++) {
        dx_fanout_free(workers[i].fan);
        workers[i].fan = NULL;
        dx_server_free(workers[i].srv);
        if (i == 0) dx_chat_free(chat); /* after its server, before its loop */
        if (workers[i].loop) dx_loop_free(workers[i].loop);
        workers[i].srv = NULL;
        workers[i].loop = NULL;
    }
    return rc;
}

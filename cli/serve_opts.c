/* duplex serve's option table, its setters, and the checks between
 * options (cli/serve_opts.h). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <duplex/fanout.h>

#include "cli/args.h"
#include "cli/log.h"
#include "cli/serve_opts.h"

typedef dx_cli_serve_opts serve_opts;
typedef dx_cli_serve_cfg serve_cfg;

#define OFF(f) offsetof(serve_opts, f)

static int bad(const char *msg, const char *arg) {
    return dx_cli_bad("serve", msg, arg);
}

static int set_mode(void *p, const dx_cli_opt *opt, const char *val) {
    serve_opts *o = p;
    enum dx_cli_serve_mode m = !strcmp(opt->name, "--echo")   ? MODE_ECHO
                               : !strcmp(opt->name, "--chat") ? MODE_CHAT
                                                              : MODE_BROADCAST;
    if (o->mode != MODE_NONE && o->mode != m)
        return bad("choose one mode: --echo, --broadcast or --chat", NULL);
    o->mode = m;
    return 0;
}

static int set_redis(void *p, const dx_cli_opt *opt, const char *val) {
    const char *why;
    if (dx_fanout_check_url(val, &why) < 0) return bad(why, val);
    ((serve_opts *)p)->redis_url = val;
    return 0;
}

static int set_dev_login(void *p, const dx_cli_opt *opt, const char *val) {
    ((serve_opts *)p)->chat.dev_login =
        strcmp(opt->name, "--dev-login") ? DX_CHAT_DEV_LOGIN_ANY : DX_CHAT_DEV_LOGIN_LOCAL;
    return 0;
}

static int set_token_ttl(void *p, const dx_cli_opt *opt, const char *val) {
    dx_cli_chat_opts *c = &((serve_opts *)p)->chat;
    if (dx_cli_u64(val, UINT32_MAX, &c->token_ttl) || !c->token_ttl)
        return bad("bad number of seconds", val);
    return 0;
}

static int set_presence_ttl(void *p, const dx_cli_opt *opt, const char *val) {
    dx_cli_chat_opts *c = &((serve_opts *)p)->chat;
    if (dx_cli_seconds(val, 1, &c->presence_ttl_ms) || c->presence_ttl_ms < 300)
        return bad("bad number of seconds (0.3 or more)", val);
    return 0;
}

static int set_files(void *p, const dx_cli_opt *opt, const char *val) {
    if (!*val) return bad("empty directory", NULL);
    ((serve_opts *)p)->chat.files = val;
    return 0;
}

static int set_max_upload(void *p, const dx_cli_opt *opt, const char *val) {
    dx_cli_chat_opts *c = &((serve_opts *)p)->chat;
    if (dx_cli_u64(val, UINT64_MAX, &c->max_upload) || !c->max_upload)
        return bad("bad size in bytes", val);
    return 0;
}

static int set_chat_limit(void *p, const dx_cli_opt *opt, const char *val) {
    return dx_cli_chat_limit(&((serve_opts *)p)->chat, opt->name, val) ? 2 : 0;
}

/* The field at opt->off, a uint32_t of milliseconds: zero allowed. */
static int set_seconds(void *p, const dx_cli_opt *opt, const char *val) {
    if (dx_cli_set_ms(p, opt, val, 1)) return bad("bad number of seconds", val);
    return 0;
}

/* The same, zero refused. */
static int set_seconds_pos(void *p, const dx_cli_opt *opt, const char *val) {
    if (dx_cli_set_ms(p, opt, val, 0)) return bad("bad number of seconds", val);
    return 0;
}

static int set_log_format(void *p, const dx_cli_opt *opt, const char *val) {
    if (dx_cli_log_setup(val, NULL) < 0) return bad("--log-format is text or json", val);
    return 0;
}

static int set_log_level(void *p, const dx_cli_opt *opt, const char *val) {
    if (dx_cli_log_setup(NULL, val) < 0)
        return bad("--log-level is debug, info, warn or error", val);
    return 0;
}

static int set_metrics(void *p, const dx_cli_opt *opt, const char *val) {
    serve_opts *o = p;
    if (!strcmp(opt->name, "--metrics-public"))
        o->metrics = 2;
    else if (!o->metrics)
        o->metrics = 1;
    return 0;
}

static int set_takeover(void *p, const dx_cli_opt *opt, const char *val) {
    dx_deflate_config *d = &((serve_opts *)p)->srv.deflate;
    d->server_no_context_takeover = d->client_no_context_takeover = 0;
    return 0;
}

static int set_deflate_window(void *p, const dx_cli_opt *opt, const char *val) {
    dx_deflate_config *d = &((serve_opts *)p)->srv.deflate;
    uint64_t u;
    if (dx_cli_u64(val, 15, &u) || u < 8) return bad("bad window bits (8-15)", val);
    d->server_max_window_bits = d->client_max_window_bits = (int)u;
    return 0;
}

static int set_deflate_level(void *p, const dx_cli_opt *opt, const char *val) {
    uint64_t u;
    if (dx_cli_u64(val, 9, &u) || u < 1) return bad("bad zlib level (1-9)", val);
    ((serve_opts *)p)->srv.deflate.level = (int)u;
    return 0;
}

static int set_deflate_threshold(void *p, const dx_cli_opt *opt, const char *val) {
    uint64_t u;
    if (dx_cli_u64(val, SIZE_MAX, &u)) return bad("bad size in bytes", val);
    ((serve_opts *)p)->srv.deflate.threshold = u ? (size_t)u : 1;
    return 0;
}

static int set_port(void *p, const dx_cli_opt *opt, const char *val) {
    uint64_t u;
    if (dx_cli_u64(val, 65535, &u)) return bad("bad port", val);
    ((serve_opts *)p)->srv.port = (int)u;
    return 0;
}

static int set_threads(void *p, const dx_cli_opt *opt, const char *val) {
    serve_opts *o = p;
    if (dx_cli_u64(val, DX_CLI_SERVE_MAX_THREADS, &o->threads) || o->threads == 0)
        return bad("bad thread count (1-256)", val);
    return 0;
}

static int set_max_connections(void *p, const dx_cli_opt *opt, const char *val) {
    uint64_t u;
    if (dx_cli_u64(val, UINT32_MAX, &u)) return bad("bad connection count", val);
    ((serve_opts *)p)->srv.max_connections = (uint32_t)u;
    return 0;
}

static int set_max_message(void *p, const dx_cli_opt *opt, const char *val) {
    uint64_t u;
    if (dx_cli_u64(val, UINT64_MAX, &u) || u == 0) return bad("bad size in bytes", val);
    ((serve_opts *)p)->srv.max_message = u;
    return 0;
}

static int set_max_buffered(void *p, const dx_cli_opt *opt, const char *val) {
    uint64_t u;
    if (dx_cli_u64(val, SIZE_MAX, &u) || u == 0) return bad("bad size in bytes", val);
    ((serve_opts *)p)->srv.max_buffered = (size_t)u;
    return 0;
}

static int set_max_partial_total(void *p, const dx_cli_opt *opt, const char *val) {
    uint64_t u;
    if (!strcmp(val, "off"))
        u = SIZE_MAX;
    else if (dx_cli_u64(val, SIZE_MAX, &u) || u == 0)
        return bad("bad size in bytes", val);
    ((serve_opts *)p)->srv.max_partial_total = (size_t)u;
    return 0;
}

static int set_partial_timeout(void *p, const dx_cli_opt *opt, const char *val) {
    if (!strcmp(val, "off")) {
        ((serve_opts *)p)->srv.partial_timeout_ms = UINT32_MAX;
        return 0;
    }
    return set_seconds_pos(p, opt, val);
}

static int set_origin(void *p, const dx_cli_opt *opt, const char *val) {
    serve_opts *o = p;
    if (o->norigins >= DX_CLI_SERVE_MAX_ORIGINS) return bad("too many --origin (64 at most)", NULL);
    o->origins[o->norigins++] = val;
    return 0;
}

/* Both the parser and --help: an entry's help is its text in --help. */
static const dx_cli_opt serve_options[] = {
    {.name = "--echo",
     .set = set_mode,
     .help = "send every message back (same opcode)",
     .heading = "modes:\n"},
    {.name = "--broadcast", .set = set_mode, .help = "send every message to every open client"},
    {.name = "--chat",
     .set = set_mode,
     .help = "the chat service (docs/chat-protocol.md) and its web\n"
             "UI (unless --static: ./web/chat/dist, else beside the\n"
             "binary, else the installed share/duplex/chat); one thread"},
    {.name = "--db",
     .arg = "FILE",
     .set = dx_cli_set_str,
     .off = OFF(chat.db),
     .help = "SQLite database, created when missing (default: in\nmemory, lost on exit)",
     .heading = "\nchat options:\n"},
    {.name = "--db",
     .help = "PostgreSQL instead (libpq URL), the store that the\n"
             "nodes of a cluster share; tables created when missing",
     .label = "--db postgresql://..."},
    {.name = "--redis",
     .arg = "URL",
     .help = "with --chat: one node of a chat cluster (needs the\n"
             "PostgreSQL --db); deliveries and presence cross nodes"},
    {.name = "--presence-ttl",
     .arg = "S",
     .set = set_presence_ttl,
     .help = "a dead node's users go offline after S s (default 15)"},
    {.name = "--secret",
     .arg = "S",
     .set = dx_cli_set_str,
     .off = OFF(chat.secret),
     .help = "sign/check user tokens with HMAC-SHA256 key S (or\n"
             "$DUPLEX_CHAT_SECRET), 16 bytes or more; then ?uid= is\n"
             "refused (without a secret, anyone can be anyone)"},
    {.name = "--token-for",
     .arg = "UID",
     .set = dx_cli_set_str,
     .off = OFF(chat.token_for),
     .help = "print a token for UID and exit (needs the secret)"},
    {.name = "--token-ttl",
     .arg = "S",
     .set = set_token_ttl,
     .help = "its lifetime in seconds (default 86400; also --dev-login's)"},
    {.name = "--dev-login",
     .set = set_dev_login,
     .help = "with --secret: POST /token?uid=NAME gives anyone on this\n"
             "machine a token for any NAME (development only)"},
    {.name = "--dev-login-anywhere",
     .set = set_dev_login,
     .help = "the same from any address: anyone can be anyone"},
    {.name = "--rate-limit",
     .arg = "KIND=R[/B]",
     .set = set_chat_limit,
     .help = "per-user token bucket: R requests a second, B at once\n"
             "(repeatable; KIND=off for none). Defaults: send=20/100\n"
             "bytes=1024/262144 (text stored) join=5/20 read=20/100\n"
             "typing=5/20 presence=5/20 fetch=10/40 (sync, history)"},
    {.name = "--max-rooms",
     .arg = "N|off",
     .set = set_chat_limit,
     .help = "rooms one user may be in (default 1000)"},
    {.name = "--sync-page",
     .arg = "N|off",
     .set = set_chat_limit,
     .help = "conversations per sync reply, more in pages (default 200)"},
    {.name = "--connects-per-ip",
     .arg = "N|off",
     .set = set_chat_limit,
     .help = "WebSocket connections a minute from one address, past\n"
             "which the upgrade gets 429 (default 300)"},
    {.name = "--connects-per-user",
     .arg = "N|off",
     .set = set_chat_limit,
     .help = "the same per user (default 30)"},
    {.name = "--files",
     .arg = "DIR",
     .set = set_files,
     .help = "where uploaded files are kept (default: DB.files beside\n"
             "a SQLite --db; none in memory; with PostgreSQL, uploads\n"
             "are on only with --files, a directory all nodes share)"},
    {.name = "--max-upload",
     .arg = "BYTES",
     .set = set_max_upload,
     .help = "largest uploaded file (default 26214400, 25 MiB)"},
    {.name = "--recall-window",
     .arg = "S",
     .set = set_seconds_pos,
     .off = OFF(chat.recall_ms),
     .help = "a sender may recall a message for S s (default 120)"},
    {.name = "--host",
     .arg = "H",
     .set = dx_cli_set_str,
     .off = OFF(srv.host),
     .help = "address to listen on (default 127.0.0.1; 0.0.0.0 for all)",
     .heading = "\noptions:\n"},
    {.name = "--port",
     .arg = "P",
     .set = set_port,
     .help = "port (default 8080; 0 picks a free one)"},
    {.name = "--static",
     .arg = "DIR",
     .set = dx_cli_set_str,
     .off = OFF(srv.static_dir),
     .help = "serve files from DIR (index.html, ETag, 304, HEAD)"},
    {.name = "--redis",
     .arg = "URL",
     .set = set_redis,
     .help = "redis://[:password@]host[:port][/db]: one node of a\n"
             "cluster; broadcasts reach the clients of every node\n"
             "through Redis pub/sub (reconnects by itself; while\n"
             "Redis is down, /healthz answers 503 degraded)"},
    {.name = "--cert",
     .arg = "F",
     .set = dx_cli_set_str,
     .off = OFF(srv.cert_file),
     .help = "PEM certificate chain and key: wss:// and https://",
     .label = "--cert F --key F"},
    {.name = "--key",
     .arg = "F",
     .set = dx_cli_set_str,
     .off = OFF(srv.key_file)}, /* listed with --cert */
    {.name = "--threads",
     .arg = "N",
     .set = set_threads,
     .help = "N event loops on N threads sharing one listening\nsocket (default 1)"},
    {.name = "--max-connections",
     .arg = "N",
     .set = set_max_connections,
     .help = "open WebSockets; more get HTTP 503 (default unlimited)"},
    {.name = "--max-message",
     .arg = "BYTES",
     .set = set_max_message,
     .help = "largest message; larger closes with 1009 (default 16 MiB)"},
    {.name = "--max-buffered",
     .arg = "BYTES",
     .set = set_max_buffered,
     .help = "output queued per client before the slow-consumer\n"
             "policy closes it with 1008 (default 1 MiB)"},
    {.name = "--max-partial-total",
     .arg = "BYTES|off",
     .set = set_max_partial_total,
     .help = "memory all unfinished (fragmented or compressed)\n"
             "messages may hold, per thread; over it the biggest\n"
             "holder is closed with 1009 (default 64 MiB or\n"
             "4 x --max-message, whichever is more)"},
    {.name = "--partial-timeout",
     .arg = "S|off",
     .set = set_partial_timeout,
     .off = OFF(srv.partial_timeout_ms),
     .help = "close (1008) a client whose message is still\n"
             "unfinished S seconds after it began (default 60)"},
    {.name = "--ping-interval",
     .arg = "S",
     .set = set_seconds,
     .off = OFF(srv.ping_interval_ms),
     .help = "send a ping frame after S seconds of silence (default off)"},
    {.name = "--ping-timeout",
     .arg = "S",
     .set = set_seconds,
     .off = OFF(srv.ping_timeout_ms),
     .help = "drop a client that has not answered in S seconds\n"
             "(reported as 1006; default: the ping interval)"},
    {.name = "--idle-timeout",
     .arg = "S",
     .set = set_seconds,
     .off = OFF(srv.idle_timeout_ms),
     .help = "close (1001) a client silent for S seconds (default off)"},
    {.name = "--handshake-timeout",
     .arg = "S",
     .set = set_seconds,
     .off = OFF(srv.handshake_timeout_ms),
     .help = "drop a connection without a request after S s (default 10)"},
    {.name = "--close-timeout",
     .arg = "S",
     .set = set_seconds_pos,
     .off = OFF(srv.close_timeout_ms),
     .help = "drop a peer that takes more than S s to answer our close,\n"
             "or that reads nothing of an HTTP answer for S s (default 5)"},
    {.name = "--origin",
     .arg = "O",
     .set = set_origin,
     .help = "allow browser pages from origin O only (repeatable;\n"
             "other origins get 403; default: any)"},
    {.name = "--no-app-ping",
     .set = dx_cli_set_false,
     .off = OFF(srv.app_heartbeat),
     .help = "do not answer the text message \"ping\" with \"pong\"\n"
             "(answered by default, unseen by the mode)"},
    {.name = "--no-deflate",
     .set = dx_cli_set_false,
     .off = OFF(srv.deflate.enable),
     .help = "do not negotiate permessage-deflate (negotiated by\n"
             "default, asking both sides for no_context_takeover,\n"
             "so connections hold no compression state)"},
    {.name = "--deflate-takeover",
     .set = set_takeover,
     .help = "let both sides keep their compression context between\n"
             "messages: smaller messages, up to ~180 KiB per client"},
    {.name = "--deflate-window",
     .arg = "BITS",
     .set = set_deflate_window,
     .help = "largest LZ77 window (8-15) either side may use (default 15)"},
    {.name = "--deflate-level",
     .arg = "N",
     .set = set_deflate_level,
     .help = "zlib level 1-9 for what the server sends (default 1)"},
    {.name = "--deflate-threshold",
     .arg = "B",
     .set = set_deflate_threshold,
     .help = "send messages under B bytes uncompressed (default 128)"},
    {.name = "--no-fallback",
     .set = dx_cli_set_false,
     .off = OFF(srv.sessions.enable),
     .help = "do not serve the HTTP session transport (SSE/long\n"
             "polls + POSTs, docs/fallback.md) that browser clients\n"
             "use where a proxy breaks WebSocket (served by default)"},
    {.name = "--epoll",
     .set = dx_cli_set_true,
     .off = OFF(srv.epoll_only),
     .help = "keep every socket on epoll (open WebSockets move to\n"
             "an io_uring by default where the kernel has it)"},
    {.name = "--metrics",
     .set = set_metrics,
     .help = "GET /metrics on this port: Prometheus text, every\n"
             "thread summed (docs/metrics.md); loopback peers only,\n"
             "others get 403"},
    {.name = "--metrics-public",
     .set = set_metrics,
     .help = "the same, for any peer (keep the port private)\n"
             "Both also serve /status, a live page of these\n"
             "numbers (docs/operations.md), by the same rule."},
    {.name = "--quiet",
     .short_name = 'q',
     .set = dx_cli_set_true,
     .off = OFF(quiet),
     .help = "do not print the listening line"},
    {.name = "--log-format",
     .arg = "text|json",
     .set = set_log_format,
     .help = "the log on stderr: lines for people (default) or one\n"
             "JSON object per event (start, listen, refused\n"
             "handshakes, slow consumers, Redis up/down, shutdown)"},
    {.name = "--log-level",
     .arg = "LEVEL",
     .set = set_log_level,
     .help = "debug, info (default), warn or error"},
    {.name = "--help",
     .short_name = 'h',
     .set = dx_cli_set_help,
     .help = "this help",
     .label = "-h, --help"},
    {0},
};

void dx_cli_serve_usage(FILE *f) {
    fputs("usage: duplex serve (--echo | --broadcast | --chat) [options]\n\n"
          "Runs a WebSocket server; plain HTTP on the same port serves /healthz,\n"
          "static files (--static) or 404. SIGINT/SIGTERM shut it down gracefully:\n"
          "every client gets close 1001 and up to 2 s to answer.\n\n",
          f);
    dx_cli_help(f, serve_options, 26, 0);
    fputs("\nSeconds may be fractional (0.5). Exit status: 0 after a clean shutdown,\n"
          "1 when the server cannot start, 2 for a usage error.\n",
          f);
}

int dx_cli_serve_parse(int argc, char **argv, serve_opts *o) {
    memset(o, 0, sizeof *o);
    o->srv = (dx_server_config){.host = "127.0.0.1", .port = 8080, .app_heartbeat = 1};
    o->srv.sessions.enable = 1; /* the HTTP fallback (docs/fallback.md); --no-fallback */
    /* permessage-deflate by default, in its cheapest form (deflate.h). */
    o->srv.deflate = (dx_deflate_config){
        .enable = 1, .server_no_context_takeover = 1, .client_no_context_takeover = 1};
    o->threads = 1;
    return dx_cli_parse("serve", serve_options, argc, argv, o, NULL);
}

int dx_cli_serve_config(serve_opts *o, serve_cfg *c, int *done) {
    *done = 0;
    if (o->chat.token_for) {
        *done = 1;
        return dx_cli_chat_token(&o->chat);
    }
    memset(c, 0, sizeof *c);
    c->mode = o->mode;
    c->srv = o->srv;
    c->chat = o->chat;
    c->redis_url = o->redis_url;
    c->threads = (int)o->threads;
    c->quiet = o->quiet;
    c->metrics = o->metrics;
    if (c->mode == MODE_NONE) return bad("choose a mode: --echo, --broadcast or --chat", NULL);
    if (c->mode == MODE_CHAT && c->threads > 1) return bad("--chat runs on one thread", NULL);
    if (c->mode == MODE_CHAT && c->redis_url) {
        if (!dx_cli_chat_is_pg(c->chat.db))
            return bad("--chat --redis needs the shared store: --db postgresql://...", NULL);
        /* The chat carries its own traffic through Redis (the server's
         * fan-out is for --broadcast and topics). */
        c->chat.redis = c->redis_url;
        c->redis_url = NULL;
    }
    const dx_cli_chat_opts *ch = &c->chat;
    if (c->mode != MODE_CHAT && (ch->files || ch->max_upload || ch->recall_ms))
        return bad("--files, --max-upload and --recall-window go with --chat", NULL);
    if (c->mode != MODE_CHAT && ch->limits_set)
        return bad("--rate-limit, --max-rooms, --sync-page and --connects-per-* go with --chat",
                   NULL);
    if (c->mode != MODE_CHAT && (ch->db || ch->secret || ch->presence_ttl_ms || ch->dev_login))
        return bad("--db, --secret, --presence-ttl and --dev-login go with --chat", NULL);
    if (c->mode == MODE_CHAT) {
        int rc = dx_cli_chat_check(ch, c->srv.host);
        if (rc) return rc;
    }
    if (!c->srv.cert_file != !c->srv.key_file) return bad("--cert and --key go together", NULL);
    if (o->norigins) {
        o->origins[o->norigins] = NULL;
        c->srv.origins = o->origins;
    }
    c->chat.quiet = c->quiet;
    return 0;
}

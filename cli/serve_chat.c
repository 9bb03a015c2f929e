/* duplex serve --chat: options of the chat mode (see serve_chat.h). */
#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/log.h"
#include "cli/serve_chat.h"

/* The secret, and where it came from. A variable that is set but empty
 * counts as given: `--secret "$UNSET"` or `DUPLEX_CHAT_SECRET=` meant a
 * secret, and must not turn authentication off (dx_cli_chat_check). */
static const char *secret_of(const dx_cli_chat_opts *o, const char **from) {
    *from = "--secret";
    if (o->secret) return o->secret;
    *from = "DUPLEX_CHAT_SECRET";
    return getenv("DUPLEX_CHAT_SECRET");
}

/* 127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z) and "localhost". */
static int is_loopback(const char *host) {
    unsigned char a[16];
    if (inet_pton(AF_INET, host, a) == 1) return a[0] == 127;
    if (inet_pton(AF_INET6, host, a) == 1) {
        static const unsigned char v4map[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        static const unsigned char one[16] = {[15] = 1};
        return !memcmp(a, one, 16) || (!memcmp(a, v4map, 12) && a[12] == 127);
    }
    return !strcmp(host, "localhost");
}

int dx_cli_chat_check(const dx_cli_chat_opts *o, const char *host) {
    const char *from;
    const char *secret = secret_of(o, &from);
    if (secret && strlen(secret) < 16) {
        fprintf(stderr,
                "duplex serve: %s must be at least 16 bytes (got %zu); generate one with e.g. "
                "`openssl rand -hex 32`\n",
                from, strlen(secret));
        return 2;
    }
    if (o->dev_login && !secret) {
        fprintf(stderr, "duplex serve: --dev-login needs --secret (or DUPLEX_CHAT_SECRET); "
                        "without one, ?uid= already lets anyone be anyone\n");
        return 2;
    }
    if (!secret && host && !is_loopback(host))
        fprintf(stderr, "duplex serve: warning: no --secret on %s: ?uid= lets anyone be anyone\n",
                host);
    if (o->dev_login == DX_CHAT_DEV_LOGIN_ANY && host)
        fprintf(stderr,
                "duplex serve: warning: --dev-login-anywhere: anyone who reaches POST /token on "
                "%s can sign in as anyone\n",
                host);
    else if (o->dev_login && host)
        fprintf(stderr, "duplex serve: warning: --dev-login: anyone on this machine can sign in "
                        "as anyone (POST /token)\n");
    return 0;
}

int dx_cli_chat_is_pg(const char *db) {
    return db && (!strncmp(db, "postgresql://", 13) || !strncmp(db, "postgres://", 11));
}

int dx_cli_chat_token(const dx_cli_chat_opts *o) {
    const char *from;
    const char *secret = secret_of(o, &from);
    if (!secret) {
        fprintf(stderr, "duplex serve: --token-for needs --secret (or DUPLEX_CHAT_SECRET)\n");
        return 2;
    }
    int rc = dx_cli_chat_check(o, NULL);
    if (rc) return rc;
    char tok[160];
    int64_t exp = (int64_t)time(NULL) + (int64_t)(o->token_ttl ? o->token_ttl : 86400);
    if (dx_chat_token(secret, strlen(secret), o->token_for, exp, tok, sizeof tok) < 0) {
        fprintf(stderr, "duplex serve: bad user id '%s' (1-32 of A-Z a-z 0-9 _ -)\n", o->token_for);
        return 2;
    }
    printf("%s\n", tok);
    return 0;
}

/* One line per change of the link to Redis (tests wait for them). */
static void on_cluster(void *user, int up, const char *why) {
    const dx_cli_chat_opts *o = user;
    if (up && o->quiet) return;
    if (up)
        dx_cli_log(DX_LOG_INFO, "redis_up", NULL, "redis up");
    else
        dx_cli_log(DX_LOG_WARN, "redis_down", DX_LOG_FIELDS("why", why), "redis down: %s", why);
}

/* ---- the web UI ----------------------------------------------------------- */

static int has_index(const char *dir) {
    char p[PATH_MAX + 16];
    struct stat sb;
    size_t n = strlen(dir);
    if (n + sizeof "/index.html" > sizeof p) return 0;
    memcpy(p, dir, n);
    memcpy(p + n, "/index.html", sizeof "/index.html");
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* The directory of the running binary (resolved), or "" when unknown. */
static void exe_dir(char out[PATH_MAX]) {
    ssize_t n = readlink("/proc/self/exe", out, PATH_MAX - 1);
    out[n > 0 ? n : 0] = 0;
    char *slash = strrchr(out, '/');
    if (slash) *slash = 0;
}

/* The chat's page, wherever `duplex` runs from (see serve_chat.h for the
 * order); NULL after saying where it looked. A static buffer: the server
 * resolves it when it is created. */
static const char *find_web_ui(void) {
    static char found[PATH_MAX];
    char exe[PATH_MAX], tried[8][PATH_MAX + 32];
    int n = 0;
    exe_dir(exe);
    snprintf(tried[n++], sizeof tried[0], "web/chat/dist");
    if (exe[0]) {
        snprintf(tried[n++], sizeof tried[0], "%s/web/chat/dist", exe);
        snprintf(tried[n++], sizeof tried[0], "%s/../web/chat/dist", exe);
        snprintf(tried[n++], sizeof tried[0], "%s/../share/duplex/chat", exe);
    }
#ifdef DX_WEB_INSTALLED
    snprintf(tried[n++], sizeof tried[0], "%s", DX_WEB_INSTALLED);
#endif
#if defined(DX_WEB_SOURCE) && defined(DX_BUILD_DIR)
    /* Only for this build tree's own binary: a copy elsewhere is not
     * "this source tree's" any more. */
    char build[PATH_MAX];
    if (exe[0] && realpath(DX_BUILD_DIR, build) && !strcmp(build, exe))
        snprintf(tried[n++], sizeof tried[0], "%s", DX_WEB_SOURCE);
#endif
    for (int i = 0; i < n; i++) {
        if (!has_index(tried[i])) continue;
        /* Absolute, so that the listening line says which one. */
        if (realpath(tried[i], found)) return found;
        size_t len = strlen(tried[i]);
        if (len >= sizeof found) continue;
        memcpy(found, tried[i], len + 1);
        return found;
    }
    fprintf(stderr, "duplex serve: warning: no chat web UI (index.html) in");
    for (int i = 0; i < n; i++) {
        char cwd[PATH_MAX];
        if (tried[i][0] != '/' && getcwd(cwd, sizeof cwd))
            fprintf(stderr, "%s %s/%s", i ? "," : "", cwd, tried[i]);
        else
            fprintf(stderr, "%s %s", i ? "," : "", tried[i]);
    }
    fprintf(stderr, "; serving the chat without its page (build it with `make ui`, or give "
                    "--static DIR)\n");
    return NULL;
}

dx_chat *dx_cli_chat_start(dx_loop *loop, const dx_cli_chat_opts *o, dx_server_config *cfg) {
    const char *from;
    const char *secret = secret_of(o, &from);
    dx_chat_config cc = {.db_path = o->db,
                         .lobby = "lobby",
                         .redis_url = o->redis,
                         .presence_ttl_ms = o->presence_ttl_ms,
                         .on_cluster = on_cluster,
                         .user = (void *)o};
    if (secret) {
        cc.secret = secret;
        cc.secret_len = strlen(secret);
    }
    cc.dev_login = o->dev_login;
    cc.dev_login_ttl = (uint32_t)o->token_ttl;
    cc.limits = o->limits;
    cc.connects_per_ip = o->connects_ip;
    cc.connects_per_uid = o->connects_uid;
    cc.files_dir = o->files;
    cc.max_upload = o->max_upload;
    cc.recall_window_ms = o->recall_ms;
    dx_chat *chat = dx_chat_new(loop, &cc);
    if (!chat) {
        /* A PostgreSQL URL may hold a password: not echoed. */
        const char *what = !o->db ? "(memory)" : dx_cli_chat_is_pg(o->db) ? "(PostgreSQL)" : o->db;
        const char *why = dx_chat_new_why();
        if (!strncmp(why, "files directory ", 16)) /* --files, or DB.files */
            fprintf(stderr, "duplex serve: chat %s\n", why);
        else
            fprintf(stderr, "duplex serve: chat database %s: %s\n", what, why);
        return NULL;
    }
    (void)dx_chat_server_config(chat, cfg);
    if (!cfg->static_dir) cfg->static_dir = find_web_ui();
    return chat;
}

void dx_cli_chat_announce(const dx_cli_chat_opts *o, const dx_server_config *cfg, int port) {
    const char *h = cfg->host;
    /* Every address includes the loopback one, which a browser here reaches. */
    if (!h || !*h || !strcmp(h, "0.0.0.0")) h = "127.0.0.1";
    if (!strcmp(h, "::")) h = "::1";
    int v6 = strchr(h, ':') != NULL;
    char url[300];
    snprintf(url, sizeof url, "%s://%s%s%s:%d/", cfg->cert_file ? "https" : "http", v6 ? "[" : "",
             h, v6 ? "]" : "", port);
    const char *from;
    if (!secret_of(o, &from))
        fprintf(stderr, "duplex: open %s?uid=alice (any name: no sign-in without --secret)\n", url);
    else if (o->dev_login)
        fprintf(stderr, "duplex: open %s and sign in with any name (--dev-login)\n", url);
    else
        fprintf(stderr,
                "duplex: open %s and sign in with a token: duplex serve --chat --secret ... "
                "--token-for NAME\n",
                url);
}

/* A count for --max-rooms/--sync-page or a rate: 1 to UINT32_MAX - 1, or
 * "off" (DX_CHAT_UNLIMITED). 0 or -1. */
static int limit_num(const char *s, uint32_t *out) {
    uint64_t u;
    if (!strcmp(s, "off")) {
        *out = DX_CHAT_UNLIMITED;
        return 0;
    }
    if (dx_cli_u64(s, UINT32_MAX - 1, &u) || u == 0) return -1;
    *out = (uint32_t)u;
    return 0;
}

int dx_cli_chat_limit(dx_cli_chat_opts *o, const char *flag, const char *val) {
    dx_chat_limits *l = &o->limits;
    o->limits_set = 1;
    if (!strcmp(flag, "--max-rooms")) {
        if (limit_num(val, &l->max_rooms)) return dx_cli_bad("serve", "bad number of rooms", val);
        return 0;
    }
    if (!strcmp(flag, "--connects-per-ip") || !strcmp(flag, "--connects-per-user")) {
        uint32_t *n = flag[15] == 'i' ? &o->connects_ip : &o->connects_uid;
        if (limit_num(val, n) || !*n)
            return dx_cli_bad("serve", "bad number of connections a minute", val);
        return 0;
    }
    if (!strcmp(flag, "--sync-page")) {
        if (limit_num(val, &l->sync_page))
            return dx_cli_bad("serve", "bad number of conversations", val);
        return 0;
    }
    static const char *const kinds[] = {"send",   "bytes",    "join", "read",
                                        "typing", "presence", "fetch"};
    dx_chat_rate *rates[] = {&l->send,   &l->bytes,    &l->join, &l->read,
                             &l->typing, &l->presence, &l->fetch};
    const char *eq = strchr(val, '=');
    size_t kn = eq ? (size_t)(eq - val) : 0;
    for (size_t k = 0; eq && k < sizeof kinds / sizeof kinds[0]; k++) {
        if (strlen(kinds[k]) != kn || memcmp(val, kinds[k], kn)) continue;
        char num[32];
        const char *slash = strchr(eq + 1, '/');
        size_t rn = slash ? (size_t)(slash - eq - 1) : strlen(eq + 1);
        if (rn >= sizeof num) break;
        memcpy(num, eq + 1, rn);
        num[rn] = 0;
        dx_chat_rate r = {0, 0};
        if (limit_num(num, &r.rate) ||
            (slash && (r.rate == DX_CHAT_UNLIMITED || limit_num(slash + 1, &r.burst) ||
                       r.burst == DX_CHAT_UNLIMITED)))
            break;
        *rates[k] = r;
        return 0;
    }
    return dx_cli_bad("serve",
                      "expected KIND=RATE[/BURST] or KIND=off, KIND one of send bytes join read "
                      "typing presence fetch:",
                      val);
}

int dx_cli_chat_attach(dx_chat *chat, dx_server *srv) {
    if (dx_chat_attach(chat, srv) < 0) {
        fprintf(stderr, "duplex serve: cannot attach the chat to its server\n");
        return 1;
    }
    return 0;
}

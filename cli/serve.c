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

#include <duplex/loop.h>
#include <duplex/server.h>

#include "cli/cli.h"

#define MAX_THREADS 256
#define MAX_ORIGINS 64
#define SHUTDOWN_MS 2000

enum mode { MODE_NONE, MODE_ECHO, MODE_BROADCAST };

typedef struct worker {
    pthread_t thread;
    dx_loop *loop;
    dx_server *srv;
} worker;

static worker workers[MAX_THREADS];
static int nworkers;
static atomic_int stopping;

static void usage(FILE *f) {
    fprintf(f,
            "usage: duplex serve (--echo | --broadcast) [options]\n\n"
            "Runs a WebSocket server; plain HTTP on the same port serves /healthz,\n"
            "static files (--static) or 404. SIGINT/SIGTERM shut it down gracefully:\n"
            "every client gets close 1001 and up to 2 s to answer.\n\n"
            "modes:\n"
            "  --echo                  send every message back (same opcode)\n"
            "  --broadcast             send every message to every open client\n\n"
            "options:\n"
            "  --host H                address to listen on (default 127.0.0.1; 0.0.0.0 for all)\n"
            "  --port P                port (default 8080; 0 picks a free one)\n"
            "  --static DIR            serve files from DIR (index.html, ETag, 304, HEAD)\n"
            "  --cert F --key F        PEM certificate chain and key: wss:// and https://\n"
            "  --threads N             N event loops on N threads, SO_REUSEPORT (default 1)\n"
            "  --max-connections N     open WebSockets; more get HTTP 503 (default unlimited)\n"
            "  --max-message BYTES     largest message; larger closes with 1009 (default 16 MiB)\n"
            "  --max-buffered BYTES    output queued per client before the slow-consumer\n"
            "                          policy closes it with 1008 (default 1 MiB)\n"
            "  --ping-interval S       send a ping frame after S seconds of silence (default off)\n"
            "  --ping-timeout S        drop a client that has not answered in S seconds\n"
            "                          (reported as 1006; default: the ping interval)\n"
            "  --idle-timeout S        close (1001) a client silent for S seconds (default off)\n"
            "  --handshake-timeout S   drop a connection without a request after S s (default 10)\n"
            "  --origin O              allow browser pages from origin O only (repeatable;\n"
            "                          other origins get 403; default: any)\n"
            "  --no-app-ping           do not answer the text message \"ping\" with \"pong\"\n"
            "                          (answered by default, unseen by the mode)\n"
            "  --quiet                 do not print the listening line\n"
            "  -h, --help              this help\n\n"
            "Seconds may be fractional (0.5). Exit status: 0 after a clean shutdown,\n"
            "1 when the server cannot start, 2 for a usage error.\n");
}

/* One line on stderr: "duplex serve: <msg> '<arg>'", and the usage exit. */
static int bad(const char *msg, const char *arg) {
    if (arg)
        fprintf(stderr, "duplex serve: %s '%s' (try 'duplex serve --help')\n", msg, arg);
    else
        fprintf(stderr, "duplex serve: %s (try 'duplex serve --help')\n", msg);
    return 2;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out) {
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-') return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max) return -1;
    *out = v;
    return 0;
}

static int parse_seconds(const char *s, uint32_t *ms) {
    char *end;
    errno = 0;
    if (!s || !*s) return -1;
    double v = strtod(s, &end);
    if (errno || *end || !(v >= 0) || v > 4000000.0) return -1;
    *ms = (uint32_t)(v * 1000.0 + 0.5);
    if (v > 0 && *ms == 0) *ms = 1;
    return 0;
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
            (void)dx_server_broadcast(workers[i].srv, m->op, m->data, m->len, NULL);
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
    const char *origins[MAX_ORIGINS + 1];
    int norigins = 0, quiet = 0;
    uint64_t threads = 1;

    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        const char *val = NULL;
        char name[64];
        /* --name=value and --name value are both accepted. */
        char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
        if (eq && (size_t)(eq - arg) < sizeof name) {
            memcpy(name, arg, (size_t)(eq - arg));
            name[eq - arg] = 0;
            val = eq + 1;
            arg = name;
        }
#define FLAG(n) (!strcmp(arg, n))
#define VALUE()                                                                                    \
    do {                                                                                           \
        if (!val) {                                                                                \
            if (i + 1 >= argc) return bad("missing the value of", arg);                            \
            val = argv[++i];                                                                       \
        }                                                                                          \
    } while (0)
        uint64_t u;
        if (FLAG("-h") || FLAG("--help")) {
            usage(stdout);
            return 0;
        } else if (FLAG("--echo")) {
            mode = MODE_ECHO;
        } else if (FLAG("--broadcast")) {
            mode = MODE_BROADCAST;
        } else if (FLAG("--chat") || FLAG("--db") || FLAG("--redis")) {
            fprintf(stderr, "duplex serve: %s is not available yet in this build\n", arg);
            return 2;
        } else if (FLAG("--quiet") || FLAG("-q")) {
            quiet = 1;
        } else if (FLAG("--no-app-ping")) {
            cfg.app_heartbeat = 0;
        } else if (FLAG("--host")) {
            VALUE();
            cfg.host = val;
        } else if (FLAG("--port")) {
            VALUE();
            if (parse_u64(val, 65535, &u)) return bad("bad port", val);
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
            if (parse_u64(val, MAX_THREADS, &threads) || threads == 0)
                return bad("bad thread count (1-256)", val);
        } else if (FLAG("--max-connections")) {
            VALUE();
            if (parse_u64(val, UINT32_MAX, &u)) return bad("bad connection count", val);
            cfg.max_connections = (uint32_t)u;
        } else if (FLAG("--max-message")) {
            VALUE();
            if (parse_u64(val, UINT64_MAX, &u) || u == 0) return bad("bad size in bytes", val);
            cfg.max_message = u;
        } else if (FLAG("--max-buffered")) {
            VALUE();
            if (parse_u64(val, SIZE_MAX, &u) || u == 0) return bad("bad size in bytes", val);
            cfg.max_buffered = (size_t)u;
        } else if (FLAG("--ping-interval")) {
            VALUE();
            if (parse_seconds(val, &cfg.ping_interval_ms)) return bad("bad number of seconds", val);
        } else if (FLAG("--ping-timeout")) {
            VALUE();
            if (parse_seconds(val, &cfg.ping_timeout_ms)) return bad("bad number of seconds", val);
        } else if (FLAG("--idle-timeout")) {
            VALUE();
            if (parse_seconds(val, &cfg.idle_timeout_ms)) return bad("bad number of seconds", val);
        } else if (FLAG("--handshake-timeout")) {
            VALUE();
            if (parse_seconds(val, &cfg.handshake_timeout_ms))
                return bad("bad number of seconds", val);
        } else if (FLAG("--origin")) {
            VALUE();
            if (norigins >= MAX_ORIGINS) return bad("too many --origin (64 at most)", NULL);
            origins[norigins++] = val;
        } else {
            return bad("unknown option", arg);
        }
#undef FLAG
#undef VALUE
    }
    if (mode == MODE_NONE) return bad("choose a mode: --echo or --broadcast", NULL);
    if (!cfg.cert_file != !cfg.key_file) return bad("--cert and --key go together", NULL);
    if (norigins) {
        origins[norigins] = NULL;
        cfg.origins = origins;
    }
    cfg.on_message = mode == MODE_ECHO ? on_echo : on_broadcast;
    cfg.reuseport = threads > 1;
    raise_nofile();

    int rc = 0;
    nworkers = (int)threads;
    for (int i = 0; i < nworkers; i++) {
        worker *w = &workers[i];
        w->loop = dx_loop_new(0);
        if (!w->loop) {
            fprintf(stderr, "duplex serve: cannot create an event loop\n");
            rc = 1;
            break;
        }
        w->srv = dx_server_new(w->loop, &cfg);
        if (!w->srv) {
            fprintf(stderr, "duplex serve: %s\n", dx_server_new_why());
            rc = 1;
            break;
        }
        int lr = dx_server_listen(w->srv);
        if (lr < 0) {
            fprintf(stderr, "duplex serve: cannot listen on %s:%d: %s\n", cfg.host, cfg.port,
                    dx_strerror(lr));
            rc = 1;
            break;
        }
        /* With port 0, the other threads join the port the first one got. */
        cfg.port = dx_server_port(w->srv);
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
            if (cfg.static_dir && n < sizeof extra)
                n += (size_t)snprintf(extra + n, sizeof extra - n, ", static %s", cfg.static_dir);
            int v6 = strchr(cfg.host, ':') != NULL;
            fprintf(stderr, "duplex: listening on %s://%s%s%s:%d (%s%s)\n",
                    cfg.cert_file ? "wss" : "ws", v6 ? "[" : "", cfg.host, v6 ? "]" : "", cfg.port,
                    mode == MODE_ECHO ? "echo" : "broadcast", extra);
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
    }
    for (int i = 0; i < nworkers; i++) {
        dx_server_free(workers[i].srv);
        if (workers[i].loop) dx_loop_free(workers[i].loop);
        workers[i].srv = NULL;
        workers[i].loop = NULL;
    }
    return rc;
}

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
#include "cli/serve_opts.h"
#include "cli/status.h"

#define MAX_THREADS DX_CLI_SERVE_MAX_THREADS
#define SHUTDOWN_MS 2000

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

/* Runs the server until a signal stops it: the exit status. */
static int run(const dx_cli_serve_cfg *c) {
    enum dx_cli_serve_mode mode = c->mode;
    dx_server_config cfg = c->srv;
    dx_cli_chat_opts chat_opts = c->chat;
    const char *redis_url = c->redis_url;
    int threads = c->threads, quiet = c->quiet, metrics = c->metrics;
    dx_chat *chat = NULL;
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

int dx_cli_serve(int argc, char **argv) {
    dx_cli_serve_opts o;
    dx_cli_serve_cfg c;
    int done, rc = dx_cli_serve_parse(argc, argv, &o);
    if (rc == DX_CLI_STOP) {
        dx_cli_serve_usage(stdout);
        return 0;
    }
    if (rc) return rc;
    rc = dx_cli_serve_config(&o, &c, &done);
    if (rc || done) return rc;
    return run(&c);
}

/* Tests for the resilient client (heartbeat, reconnect, offline queue in
 * src/client/client.c) against a real duplex server that misbehaves on
 * demand: it runs on its own loop in a second thread, so that it can be
 * frozen (a hung server: TCP stays up, nothing answers, not even pings),
 * taken down (connections dropped, then connection refused), brought back
 * on the same port, or told to close every connection with a code. The
 * client runs on a loop in the main thread; every wait is bounded. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <duplex/client.h>
#include <duplex/server.h>

#include "client/reconnect.h"
#include "test.h"

#define WAIT_MS 15000 /* any single wait: generous for ASan on a loaded machine */

/* ---- the misbehaving server (its own thread and loop) ---------------------- */

typedef struct tsrv {
    pthread_t th;
    dx_loop *loop;
    dx_server *srv;
    int port;
    int freeze[2]; /* a pipe: the frozen server waits on it */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done; /* srv_call handshake */
    /* behaviour and records, under mu */
    unsigned close_on_open; /* 0, or a code every new connection is closed with */
    int opens, live, max_live;
    char log[16384]; /* messages received, each followed by '\n' */
    size_t log_len;
    int nmsg;
    int listen_rc;
} tsrv;

static void s_open(dx_server_conn *c, void *user) {
    tsrv *s = dx_server_user(dx_server_conn_server(c));
    pthread_mutex_lock(&s->mu);
    s->opens++;
    if (++s->live > s->max_live) s->max_live = s->live;
    unsigned code = s->close_on_open;
    pthread_mutex_unlock(&s->mu);
    if (code) dx_server_close(c, code, "go away");
}

static void s_message(dx_server_conn *c, void *user, enum dx_opcode op, const uint8_t *data,
                      size_t len) {
    tsrv *s = dx_server_user(dx_server_conn_server(c));
    pthread_mutex_lock(&s->mu);
    if (s->log_len + len + 1 < sizeof s->log) {
        memcpy(s->log + s->log_len, data, len);
        s->log_len += len;
        s->log[s->log_len++] = '\n';
        s->log[s->log_len] = 0;
    }
    s->nmsg++;
    pthread_mutex_unlock(&s->mu);
}

static void s_close(dx_server_conn *c, void *user, uint16_t code, const uint8_t *reason,
                    size_t reason_len, int was_clean) {
    tsrv *s = dx_server_user(dx_server_conn_server(c));
    pthread_mutex_lock(&s->mu);
    s->live--;
    pthread_mutex_unlock(&s->mu);
}

static void *srv_thread(void *arg) {
    tsrv *s = arg;
    dx_loop_run(s->loop);
    return NULL;
}

/* Runs fn on the server's loop and waits until it has run. */
static void srv_call(tsrv *s, dx_post_fn fn) {
    pthread_mutex_lock(&s->mu);
    s->done = 0;
    pthread_mutex_unlock(&s->mu);
    if (dx_loop_post(s->loop, fn, s) < 0) abort();
    pthread_mutex_lock(&s->mu);
    while (!s->done)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

static void called(tsrv *s) {
    pthread_mutex_lock(&s->mu);
    s->done = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void do_up(dx_loop *loop, void *arg) {
    tsrv *s = arg;
    dx_server_config cfg = {.port = s->port,
                            .user = s,
                            .on_open = s_open,
                            .on_message = s_message,
                            .on_close = s_close};
    /* Back on the same port; it was ours a moment ago, so a failure to
     * bind is rare (another process's connection took it): retry a bit. */
    for (int i = 0; i < 100; i++) {
        s->srv = dx_server_new(loop, &cfg);
        s->listen_rc = s->srv ? dx_server_listen(s->srv) : DX_ENOMEM;
        if (s->listen_rc == 0) break;
        dx_server_free(s->srv);
        s->srv = NULL;
        usleep(20000);
    }
    if (s->srv) s->port = dx_server_port(s->srv);
    called(s);
}

/* Drops every connection without a close frame and stops listening:
 * from now on, connection refused. */
static void do_down(dx_loop *loop, void *arg) {
    tsrv *s = arg;
    dx_server_free(s->srv);
    s->srv = NULL;
    called(s);
}

static void do_close_all(dx_loop *loop, void *arg) {
    tsrv *s = arg;
    for (dx_server_conn *c = dx_server_first(s->srv); c; c = dx_server_next(c))
        dx_server_close(c, DX_CLOSE_GOING_AWAY, "restarting");
    called(s);
}

/* Hangs the server's loop until srv_thaw (or 10 s): the kernel keeps the
 * connections up, nobody answers. */
static void do_freeze(dx_loop *loop, void *arg) {
    tsrv *s = arg;
    called(s);
    struct pollfd p = {.fd = s->freeze[0], .events = POLLIN};
    if (poll(&p, 1, 10000) == 1) {
        char b;
        (void)!read(s->freeze[0], &b, 1);
    }
}

static void do_stop(dx_loop *loop, void *arg) {
    tsrv *s = arg;
    dx_server_free(s->srv);
    s->srv = NULL;
    dx_loop_stop(loop);
    called(s);
}

static int srv_start(tsrv *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pipe(s->freeze) < 0) return -1;
    s->loop = dx_loop_new(0);
    if (!s->loop || pthread_create(&s->th, NULL, srv_thread, s) != 0) return -1;
    srv_call(s, do_up);
    return s->listen_rc == 0 ? 0 : -1;
}

static void srv_up(tsrv *s) {
    srv_call(s, do_up);
}
static void srv_down(tsrv *s) {
    srv_call(s, do_down);
}
static void srv_close_all(tsrv *s) {
    srv_call(s, do_close_all);
}
static void srv_freeze(tsrv *s) {
    srv_call(s, do_freeze);
}
static void srv_thaw(tsrv *s) {
    (void)!write(s->freeze[1], "x", 1);
}

static void srv_end(tsrv *s) {
    srv_call(s, do_stop);
    pthread_join(s->th, NULL);
    dx_loop_free(s->loop);
    close(s->freeze[0]);
    close(s->freeze[1]);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
}

static int srv_get(tsrv *s, int *field) {
    pthread_mutex_lock(&s->mu);
    int v = *field;
    pthread_mutex_unlock(&s->mu);
    return v;
}

static void srv_log(tsrv *s, char *out, size_t cap) {
    pthread_mutex_lock(&s->mu);
    snprintf(out, cap, "%s", s->log);
    pthread_mutex_unlock(&s->mu);
}

/* A port where nothing listens (connection refused). */
static int dead_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        abort();
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- the client side: every event recorded, invariants checked ---------------- */

typedef struct rec rec;
struct rec {
    dx_loop *loop;
    dx_client *c;
    dx_timer tick;
    uint64_t deadline;
    int (*pred)(rec *r);
    char ev[512]; /* C connecting, O open, M message, E error, X close, R reconnecting */
    size_t nev;
    int want_n;
    char want_ch;
    tsrv *srv;
    /* on_connecting */
    char urls[16][96];
    unsigned conn_attempt[64];
    int nconn;
    /* on_reconnecting */
    unsigned attempts[64];
    uint32_t delays[64];
    int nrec;
    /* on_close */
    uint16_t codes[64];
    int cleans[64], states[64];
    int nclose;
    uint64_t t_close;
    /* on_error */
    int err;
    char err_msg[256];
    /* invariants */
    int in_flight; /* between on_connecting and on_close */
    int violations;
    void (*reconnecting_hook)(rec *r);
};

static int count(const rec *r, char ch) {
    int n = 0;
    for (size_t i = 0; i < r->nev; i++)
        n += r->ev[i] == ch;
    return n;
}

static void ev(rec *r, char ch) {
    if (r->nev + 1 < sizeof r->ev) r->ev[r->nev++] = ch;
}

static void violation(rec *r, const char *what) {
    fprintf(stderr, "invariant: %s (events %s)\n", what, r->ev);
    r->violations++;
}

static void c_connecting(dx_client *c, void *user, const char *url, unsigned attempt) {
    rec *r = user;
    ev(r, 'C');
    if (r->in_flight) violation(r, "a second attempt while one is in flight");
    r->in_flight = 1;
    if (dx_client_ready_state(c) != DX_CONNECTING) violation(r, "connecting but not CONNECTING");
    if (r->nconn < 64) r->conn_attempt[r->nconn] = attempt;
    if (r->nconn < 16) snprintf(r->urls[r->nconn], sizeof r->urls[0], "%s", url);
    r->nconn++;
}

static void c_open(dx_client *c, void *user) {
    rec *r = user;
    ev(r, 'O');
    if (!r->in_flight) violation(r, "open without connecting");
}

static void c_message(dx_client *c, void *user, enum dx_opcode op, const uint8_t *d, size_t n) {
    ev(user, 'M');
}

static void c_error(dx_client *c, void *user, int err, const char *message) {
    rec *r = user;
    ev(r, 'E');
    r->err = err;
    snprintf(r->err_msg, sizeof r->err_msg, "%s", message);
}

static void c_close(dx_client *c, void *user, uint16_t code, const char *reason, size_t len,
                    int clean) {
    rec *r = user;
    ev(r, 'X');
    /* Only the final close may come without an attempt in flight (the
     * application closed during the wait, or the config was bad). */
    if (!r->in_flight && dx_client_ready_state(c) != DX_CLOSED)
        violation(r, "close without an attempt");
    r->in_flight = 0;
    if (r->nclose < 64) {
        r->codes[r->nclose] = code;
        r->cleans[r->nclose] = clean;
        r->states[r->nclose] = dx_client_ready_state(c);
    }
    r->nclose++;
    r->t_close = dx_t_now_ms();
    if (dx_client_ready_state(c) != DX_CONNECTING && dx_client_ready_state(c) != DX_CLOSED)
        violation(r, "on_close in a state other than CONNECTING or CLOSED");
}

static void c_reconnecting(dx_client *c, void *user, unsigned attempt, uint32_t delay) {
    rec *r = user;
    ev(r, 'R');
    if (r->nev < 2 || r->ev[r->nev - 2] != 'X') violation(r, "reconnecting not right after close");
    if (dx_client_ready_state(c) != DX_CONNECTING) violation(r, "reconnecting but not CONNECTING");
    if (r->nrec < 64) {
        r->attempts[r->nrec] = attempt;
        r->delays[r->nrec] = delay;
    }
    r->nrec++;
    if (r->reconnecting_hook) r->reconnecting_hook(r);
}

static void on_tick(dx_loop *loop, dx_timer *t) {
    rec *r = (rec *)((char *)t - offsetof(rec, tick));
    if ((r->pred && r->pred(r)) || dx_loop_now(loop) >= r->deadline) {
        dx_loop_stop(loop);
        return;
    }
    dx_timer_start(loop, t, 2);
}

/* Runs the client's loop until pred(r) holds or ms pass; returns pred(r). */
static int run_until(rec *r, int (*pred)(rec *r), int ms) {
    r->pred = pred;
    r->deadline = dx_loop_now(r->loop) + (uint64_t)ms;
    dx_timer_start(r->loop, &r->tick, 0);
    dx_loop_run(r->loop);
    dx_timer_stop(r->loop, &r->tick);
    return pred ? pred(r) : 0;
}

static int pred_ev(rec *r) {
    return count(r, r->want_ch) >= r->want_n;
}

static int wait_ev(rec *r, char ch, int n) {
    r->want_ch = ch;
    r->want_n = n;
    int ok = run_until(r, pred_ev, WAIT_MS);
    if (!ok) fprintf(stderr, "timed out waiting for %d '%c' (events %s)\n", n, ch, r->ev);
    return ok;
}

static int pred_msgs(rec *r) {
    return srv_get(r->srv, &r->srv->nmsg) >= r->want_n;
}

static int wait_msgs(rec *r, int n) {
    r->want_n = n;
    return run_until(r, pred_msgs, WAIT_MS);
}

static int pred_opens(rec *r) {
    return srv_get(r->srv, &r->srv->opens) >= r->want_n;
}

/* The server writes its 101 before its on_open runs: wait for both. */
static int wait_opens(rec *r, int n) {
    r->want_n = n;
    return run_until(r, pred_opens, WAIT_MS);
}

/* Lets the loop run for ms (to see that nothing more happens). */
static void idle(rec *r, int ms) {
    run_until(r, NULL, ms);
}

static void rec_init(rec *r, tsrv *s) {
    memset(r, 0, sizeof *r);
    r->loop = dx_loop_new(0);
    r->srv = s;
    dx_timer_init(&r->tick, on_tick);
}

static dx_client_config base_cfg(rec *r, const char *url) {
    dx_client_config cfg = {
        .url = url,
        .user = r,
        .on_connecting = c_connecting,
        .on_open = c_open,
        .on_message = c_message,
        .on_error = c_error,
        .on_close = c_close,
        .on_reconnecting = c_reconnecting,
    };
    return cfg;
}

static void rec_end(rec *r) {
    dx_client_free(r->c);
    dx_loop_free(r->loop);
    CHECK_EQ_INT(r->violations, 0);
}

/* ---- the tests -------------------------------------------------------------------- */

/* A hung server (TCP up, nothing answers) is noticed by the heartbeat within
 * interval + timeout, reported as 1006; then the client reconnects to it
 * once it answers again. */
static void test_heartbeat_detects_dead_server(void) {
    tsrv s;
    REQUIRE(srv_start(&s) == 0);
    rec r;
    rec_init(&r, &s);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", s.port);
    dx_client_config cfg = base_cfg(&r, url);
    cfg.ping_interval_ms = 100;
    cfg.ping_timeout_ms = 300;
    cfg.reconnect = 1;
    cfg.reconnect_base_ms = 100;
    r.c = dx_client_new(r.loop, &cfg);
    REQUIRE(r.c);
    CHECK(wait_ev(&r, 'O', 1));
    idle(&r, 450); /* several heartbeats answered: still open */
    CHECK_EQ_INT(count(&r, 'X'), 0);
    CHECK_EQ_INT(dx_client_ready_state(r.c), DX_OPEN);
    srv_freeze(&s);
    uint64_t t_freeze = dx_t_now_ms();
    CHECK(wait_ev(&r, 'X', 1));
    uint64_t took = r.t_close - t_freeze;
    srv_thaw(&s);
    fprintf(stderr, "dead server noticed after %llu ms (interval 100 + timeout 300)\n",
            (unsigned long long)took);
    CHECK(took >= 150);              /* not before the timeout ran (less the server's own lag) */
    CHECK(took <= 100 + 300 + 3000); /* bounded: slack for a loaded machine */
    CHECK_EQ_INT(r.codes[0], DX_CLOSE_ABNORMAL);
    CHECK_EQ_INT(r.cleans[0], 0);
    CHECK_EQ_INT(r.states[0], DX_CONNECTING); /* a reconnect follows */
    CHECK_EQ_INT(r.err, DX_ETIMEDOUT);
    CHECK(strstr(r.err_msg, "heartbeat") != NULL);
    CHECK(!strncmp(r.ev, "COEXR", 5));
    /* The server answers again: the same client is back. */
    CHECK(wait_ev(&r, 'O', 2));
    CHECK(wait_opens(&r, 2));
    idle(&r, 50);
    CHECK_EQ_INT(srv_get(&s, &s.opens), 2);
    CHECK_EQ_INT(r.conn_attempt[1], 1);
    rec_end(&r);
    srv_end(&s);
}

/* Refused for a while: attempts with growing bounds and delays within them;
 * everything sent meanwhile is queued (counted by buffered_amount) and
 * arrives exactly once, in order, when the server is back; then a restart
 * (1001) and a dropped connection (1006) are survived the same way. */
static void test_backoff_queue_and_comebacks(void) {
    tsrv s;
    REQUIRE(srv_start(&s) == 0);
    int port = s.port;
    srv_down(&s);
    rec r;
    rec_init(&r, &s);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
    dx_client_config cfg = base_cfg(&r, url);
    cfg.reconnect = 1;
    cfg.reconnect_base_ms = 40;
    cfg.reconnect_max_ms = 320;
    cfg.stable_ms = 60000; /* never stable here: the count keeps growing */
    r.c = dx_client_new(r.loop, &cfg);
    REQUIRE(r.c);
    /* CONNECTING from the start: queued, not refused as a browser would. */
    size_t queued = 0;
    char m[32];
    int sent = 0;
    for (; sent < 5; sent++) {
        int n = snprintf(m, sizeof m, "m%d", sent);
        CHECK_EQ_INT(dx_client_send_text(r.c, m, (size_t)n), 0);
        queued += (size_t)n;
    }
    CHECK_EQ_INT(dx_client_buffered_amount(r.c), queued);
    CHECK(wait_ev(&r, 'R', 3));
    for (; sent < 10; sent++) { /* while waiting to reconnect */
        int n = snprintf(m, sizeof m, "m%d", sent);
        CHECK_EQ_INT(dx_client_send_text(r.c, m, (size_t)n), 0);
        queued += (size_t)n;
    }
    CHECK_EQ_INT(dx_client_buffered_amount(r.c), queued);
    CHECK(wait_ev(&r, 'R', 6));
    CHECK_EQ_INT(count(&r, 'O'), 0);
    dx__backoff b = {.base_ms = 40, .max_ms = 320, .factor = 2.0, .jitter = 1.0};
    for (int i = 0; i < 6; i++) {
        CHECK_EQ_INT(r.attempts[i], (unsigned)i + 1);
        CHECK(r.delays[i] <= dx__backoff_bound(&b, (unsigned)i + 1));
        CHECK_EQ_INT(r.conn_attempt[i], (unsigned)i);
        CHECK_EQ_INT(r.codes[i], DX_CLOSE_ABNORMAL);
        CHECK_EQ_INT(r.states[i], DX_CONNECTING);
    }
    CHECK(dx__backoff_bound(&b, 1) < dx__backoff_bound(&b, 4)); /* 40 < 320: growing */
    CHECK(strstr(r.err_msg, "refused") != NULL);

    srv_up(&s);
    REQUIRE(s.port == port);
    CHECK(wait_ev(&r, 'O', 1));
    for (; sent < 13; sent++) { /* after the queue: sent directly */
        int n = snprintf(m, sizeof m, "m%d", sent);
        CHECK_EQ_INT(dx_client_send_text(r.c, m, (size_t)n), 0);
    }
    CHECK(wait_msgs(&r, 13));
    idle(&r, 100); /* nothing more (no duplicates) arrives */
    char log[16384];
    srv_log(&s, log, sizeof log);
    CHECK(!strcmp(log, "m0\nm1\nm2\nm3\nm4\nm5\nm6\nm7\nm8\nm9\nm10\nm11\nm12\n"));
    CHECK_EQ_INT(srv_get(&s, &s.nmsg), 13);
    CHECK_EQ_INT(dx_client_buffered_amount(r.c), 0);

    /* A restart: the server closes with 1001, the client comes back. */
    int nrec = r.nrec;
    srv_close_all(&s);
    CHECK(wait_ev(&r, 'X', nrec + 1));
    CHECK_EQ_INT(r.codes[nrec], DX_CLOSE_GOING_AWAY);
    CHECK_EQ_INT(r.cleans[nrec], 1);
    CHECK_EQ_INT(r.states[nrec], DX_CONNECTING);
    CHECK_EQ_INT(dx_client_send_text(r.c, "after-restart", 13), 0);
    CHECK(wait_ev(&r, 'O', 2));
    /* A dropped connection (no close frame): 1006, and back again. */
    CHECK(wait_msgs(&r, 14));
    srv_down(&s);
    CHECK(wait_ev(&r, 'X', nrec + 2));
    CHECK_EQ_INT(r.codes[nrec + 1], DX_CLOSE_ABNORMAL);
    CHECK_EQ_INT(dx_client_send_text(r.c, "after-drop", 10), 0);
    srv_up(&s);
    CHECK(wait_ev(&r, 'O', 3));
    CHECK(wait_msgs(&r, 15));
    idle(&r, 100);
    srv_log(&s, log, sizeof log);
    CHECK(strstr(log, "m12\nafter-restart\nafter-drop\n") != NULL);
    CHECK_EQ_INT(srv_get(&s, &s.nmsg), 15);
    CHECK_EQ_INT(srv_get(&s, &s.max_live), 1); /* never two connections at once */
    CHECK_EQ_INT(count(&r, 'C'), count(&r, 'R') + 1);
    rec_end(&r);
    srv_end(&s);
}

/* Close codes the application marks final end everything. */
static void final_code_case(unsigned code) {
    tsrv s;
    REQUIRE(srv_start(&s) == 0);
    s.close_on_open = code;
    rec r;
    rec_init(&r, &s);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", s.port);
    dx_client_config cfg = base_cfg(&r, url);
    static const uint16_t finals[] = {1008, 4401, 0};
    cfg.reconnect = 1;
    cfg.reconnect_base_ms = 20;
    cfg.final_codes = finals;
    r.c = dx_client_new(r.loop, &cfg);
    REQUIRE(r.c);
    CHECK(wait_ev(&r, 'X', 1));
    idle(&r, 300); /* time for several reconnects, if there were any */
    CHECK_EQ_INT(r.codes[0], code);
    CHECK_EQ_INT(r.cleans[0], 1);
    CHECK_EQ_INT(r.states[0], DX_CLOSED);
    CHECK(!strcmp(r.ev, "COX"));
    CHECK_EQ_INT(srv_get(&s, &s.opens), 1);
    CHECK_EQ_INT(dx_client_send_text(r.c, "late", 4), DX_ESTATE);
    CHECK_EQ_INT(dx_client_reconnect(r.c), DX_ESTATE);
    rec_end(&r);
    srv_end(&s);
}

static void test_final_codes_stop(void) {
    final_code_case(4401);
    final_code_case(1008);
}

/* max_retries attempts in a row, then the end. */
static void test_max_retries(void) {
    rec r;
    rec_init(&r, NULL);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", dead_port());
    dx_client_config cfg = base_cfg(&r, url);
    cfg.reconnect = 1;
    cfg.reconnect_base_ms = 10;
    cfg.max_retries = 3;
    r.c = dx_client_new(r.loop, &cfg);
    REQUIRE(r.c);
    CHECK_EQ_INT(dx_client_send_text(r.c, "never", 5), 0);
    CHECK_EQ_INT(dx_client_buffered_amount(r.c), 5);
    CHECK(wait_ev(&r, 'X', 4));
    idle(&r, 200);
    CHECK(!strcmp(r.ev, "CEXRCEXRCEXRCEX"));
    CHECK_EQ_INT(r.nclose, 4);
    CHECK_EQ_INT(r.states[3], DX_CLOSED);
    CHECK_EQ_INT(r.states[2], DX_CONNECTING);
    CHECK_EQ_INT(r.codes[3], DX_CLOSE_ABNORMAL);
    CHECK_EQ_INT(r.attempts[2], 3);
    CHECK_EQ_INT(dx_client_ready_state(r.c), DX_CLOSED);
    CHECK_EQ_INT(dx_client_buffered_amount(r.c), 0); /* the queue went with the end */
    CHECK_EQ_INT(dx_client_send_text(r.c, "x", 1), DX_ESTATE);
    rec_end(&r);
}

/* The application's close is final: while open, and while waiting. */
static void test_app_close_is_final(void) {
    tsrv s;
    REQUIRE(srv_start(&s) == 0);
    rec r;
    rec_init(&r, &s);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", s.port);
    dx_client_config cfg = base_cfg(&r, url);
    cfg.reconnect = 1;
    cfg.reconnect_base_ms = 20;
    cfg.ping_interval_ms = 50;
    r.c = dx_client_new(r.loop, &cfg);
    REQUIRE(r.c);
    CHECK(wait_ev(&r, 'O', 1));
    CHECK_EQ_INT(dx_client_close(r.c, 1000, "bye"), 0);
    CHECK_EQ_INT(dx_client_send_text(r.c, "after close", 11), DX_ESTATE);
    CHECK(wait_ev(&r, 'X', 1));
    idle(&r, 300);
    CHECK(!strcmp(r.ev, "COX"));
    CHECK_EQ_INT(r.codes[0], 1000);
    CHECK_EQ_INT(r.cleans[0], 1);
    CHECK_EQ_INT(r.states[0], DX_CLOSED);
    CHECK_EQ_INT(srv_get(&s, &s.opens), 1);
    rec_end(&r);

    /* Closing during the wait before a reconnect. */
    srv_down(&s);
    rec_init(&r, &s);
    cfg = base_cfg(&r, url);
    cfg.reconnect = 1;
    cfg.reconnect_base_ms = 5000;
    cfg.reconnect_jitter = -1; /* exactly 5 s: the wait is long */
    r.c = dx_client_new(r.loop, &cfg);
    REQUIRE(r.c);
    CHECK(wait_ev(&r, 'R', 1));
    CHECK_EQ_INT(r.delays[0], 5000);
    CHECK_EQ_INT(dx_client_send_text(r.c, "queued", 6), 0);
    CHECK_EQ_INT(dx_client_close(r.c, 0, NULL), 0);
    CHECK_EQ_INT(dx_client_buffered_amount(r.c), 0); /* dropped with the close */
    CHECK_EQ_INT(count(&r, 'X'), 1);                 /* not inside the call */
    srv_up(&s);
    CHECK(wait_ev(&r, 'X', 2));
    idle(&r, 200);
    CHECK(!strcmp(r.ev, "CEXRX"));
    CHECK_EQ_INT(r.codes[1], DX_CLOSE_ABNORMAL);
    CHECK_EQ_INT(r.states[1], DX_CLOSED);
    CHECK_EQ_INT(srv_get(&s, &s.opens), 1); /* only the first client's */
    rec_end(&r);
    srv_end(&s);
}

/* Failover: the first URL refuses, the next one answers. */
static void test_failover(void) {
    tsrv s;
    REQUIRE(srv_start(&s) == 0);
    rec r;
    rec_init(&r, &s);
    char url0[64], url1[64];
    snprintf(url0, sizeof url0, "ws://127.0.0.1:%d/", dead_port());
    snprintf(url1, sizeof url1, "WS://127.0.0.1:%d", s.port);
    const char *const more[] = {url1, NULL};
    dx_client_config cfg = base_cfg(&r, url0);
    cfg.reconnect = 1;
    cfg.reconnect_base_ms = 10;
    cfg.urls = more;
    r.c = dx_client_new(r.loop, &cfg);
    REQUIRE(r.c);
    CHECK(wait_ev(&r, 'O', 1));
    CHECK(!strcmp(r.ev, "CEXRCO"));
    char want[64];
    snprintf(want, sizeof want, "ws://127.0.0.1:%d/", s.port); /* normalized */
    CHECK(!strcmp(r.urls[0], url0));
    CHECK(!strcmp(r.urls[1], want));
    CHECK(!strcmp(dx_client_url(r.c), want));
    /* When it goes, the list goes round: url0 again (refused), then url1. */
    srv_close_all(&s);
    CHECK(wait_ev(&r, 'O', 2));
    CHECK(!strcmp(r.urls[2], url0));
    CHECK(!strcmp(r.urls[3], want));
    rec_end(&r);

    /* A bad failover URL fails the client at once, without retrying. */
    rec_init(&r, &s);
    const char *const bad[] = {"ftp://nope/", NULL};
    cfg = base_cfg(&r, url1);
    cfg.reconnect = 1;
    cfg.urls = bad;
    r.c = dx_client_new(r.loop, &cfg);
    REQUIRE(r.c);
    CHECK(wait_ev(&r, 'X', 1));
    idle(&r, 100);
    CHECK(!strcmp(r.ev, "EX")); /* no attempt was made */
    CHECK_EQ_INT(r.err, DX_EADDR);
    CHECK_EQ_INT(r.states[0], DX_CLOSED);
    rec_end(&r);
    srv_end(&s);
}

/* The lock: asking for a reconnect several times, from several places,
 * starts one attempt; and reconnect is refused outside the wait. */
static void reconnect_twice(rec *r) {
    if (r->nrec != 1) return;
    CHECK_EQ_INT(dx_client_reconnect(r->c), 0);
    CHECK_EQ_INT(dx_client_reconnect(r->c), 0);
}

static void test_one_attempt_at_a_time(void) {
    rec r;
    rec_init(&r, NULL);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", dead_port());
    dx_client_config cfg = base_cfg(&r, url);
    cfg.reconnect = 1;
    cfg.reconnect_base_ms = 8000;
    cfg.reconnect_jitter = -1;
    r.reconnecting_hook = reconnect_twice;
    r.c = dx_client_new(r.loop, &cfg);
    REQUIRE(r.c);
    CHECK_EQ_INT(dx_client_reconnect(r.c), DX_ESTATE); /* CONNECTING, not waiting */
    CHECK(wait_ev(&r, 'R', 2));                        /* long before the 8 s delay */
    idle(&r, 200);
    CHECK(!strcmp(r.ev, "CEXRCEXR")); /* two calls, one attempt */
    CHECK_EQ_INT(r.delays[0], 8000);
    CHECK_EQ_INT(r.delays[1], 16000);
    /* From outside the callbacks, twice again: one attempt again. */
    CHECK_EQ_INT(dx_client_reconnect(r.c), 0);
    CHECK_EQ_INT(dx_client_reconnect(r.c), 0);
    CHECK(wait_ev(&r, 'R', 3));
    idle(&r, 200);
    CHECK(!strcmp(r.ev, "CEXRCEXRCEXR"));
    CHECK_EQ_INT(r.delays[2], 30000); /* 32 s, capped by the default max */
    CHECK_EQ_INT(r.nconn, 3);
    CHECK_EQ_INT(dx_client_close(r.c, 0, NULL), 0);
    CHECK(wait_ev(&r, 'X', 4));
    CHECK_EQ_INT(r.states[3], DX_CLOSED);
    rec_end(&r);
}

/* Connections that die at once keep the count growing; one that stays
 * open stable_ms starts it again. */
static void test_stable_resets_count(void) {
    tsrv s;
    REQUIRE(srv_start(&s) == 0);
    pthread_mutex_lock(&s.mu);
    s.close_on_open = DX_CLOSE_GOING_AWAY; /* open, then closed at once */
    pthread_mutex_unlock(&s.mu);
    rec r;
    rec_init(&r, &s);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", s.port);
    dx_client_config cfg = base_cfg(&r, url);
    cfg.reconnect = 1;
    cfg.reconnect_base_ms = 10;
    cfg.reconnect_max_ms = 40;
    cfg.stable_ms = 1000;
    r.c = dx_client_new(r.loop, &cfg);
    REQUIRE(r.c);
    CHECK(wait_ev(&r, 'R', 3));
    pthread_mutex_lock(&s.mu);
    s.close_on_open = 0;
    pthread_mutex_unlock(&s.mu);
    CHECK_EQ_INT(r.attempts[0], 1);
    CHECK_EQ_INT(r.attempts[1], 2);
    CHECK_EQ_INT(r.attempts[2], 3);
    CHECK(wait_ev(&r, 'O', 4));
    idle(&r, 1300);               /* open past stable_ms */
    if (r.ev[r.nev - 1] != 'O') { /* the 4th was under way and closed too */
        CHECK(wait_ev(&r, 'O', count(&r, 'O') + 1));
        idle(&r, 1300);
    }
    CHECK(r.ev[r.nev - 1] == 'O');
    int n = r.nrec;
    srv_close_all(&s);
    CHECK(wait_ev(&r, 'R', n + 1));
    CHECK_EQ_INT(r.attempts[n], 1);
    CHECK_EQ_INT(r.codes[n], DX_CLOSE_GOING_AWAY);
    rec_end(&r);
    srv_end(&s);
}

/* A full queue: refused (DX_EBUSY) or the oldest dropped, per the policy. */
static void test_queue_bounds(void) {
    tsrv s;
    REQUIRE(srv_start(&s) == 0);
    int port = s.port;
    srv_down(&s);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
    for (int policy = DX_QUEUE_REFUSE; policy <= DX_QUEUE_OFF; policy++) {
        rec r;
        rec_init(&r, &s);
        dx_client_config cfg = base_cfg(&r, url);
        cfg.reconnect = 1;
        cfg.reconnect_base_ms = 20;
        cfg.queue_max_messages = 3;
        cfg.queue_max_bytes = 100;
        cfg.queue_policy = (enum dx_queue_policy)policy;
        r.c = dx_client_new(r.loop, &cfg);
        REQUIRE(r.c);
        int want_busy = policy == DX_QUEUE_REFUSE ? DX_EBUSY : 0;
        int want_any = policy == DX_QUEUE_OFF ? DX_ESTATE : 0;
        CHECK_EQ_INT(dx_client_send_text(r.c, "q1", 2), want_any);
        CHECK_EQ_INT(dx_client_send_text(r.c, "q2", 2), want_any);
        CHECK_EQ_INT(dx_client_send_binary(r.c, "q3", 2), want_any);
        CHECK_EQ_INT(dx_client_send_text(r.c, "q4", 2),
                     policy == DX_QUEUE_OFF ? DX_ESTATE : want_busy);
        CHECK_EQ_INT(dx_client_buffered_amount(r.c), policy == DX_QUEUE_OFF ? 0 : 6);
        if (policy != DX_QUEUE_OFF) {
            char big[101] = {0};
            memset(big, 'b', 100);
            /* bigger than the byte bound once the others are in */
            CHECK_EQ_INT(dx_client_send_text(r.c, big, 99),
                         policy == DX_QUEUE_REFUSE ? DX_EBUSY : 0);
        }
        int base = srv_get(&s, &s.nmsg);
        srv_up(&s);
        CHECK(wait_ev(&r, 'O', 1));
        int want_n = policy == DX_QUEUE_REFUSE ? 3 : policy == DX_QUEUE_DROP_OLDEST ? 1 : 0;
        if (want_n) CHECK(wait_msgs(&r, base + want_n));
        idle(&r, 100);
        CHECK_EQ_INT(srv_get(&s, &s.nmsg), base + want_n);
        char log[16384];
        srv_log(&s, log, sizeof log);
        if (policy == DX_QUEUE_REFUSE) CHECK(strstr(log, "q1\nq2\nq3\n") != NULL);
        /* Drop oldest: q4 pushed q1 out, then the 99 bytes needed all the
         * room: q2, q3 and q4 went too. */
        if (policy == DX_QUEUE_DROP_OLDEST)
            CHECK(log[0] && !strcmp(log + strlen(log) - 4, "bbb\n") && !strstr(log, "q4"));
        rec_end(&r);
        srv_down(&s);
    }
    srv_end(&s);
}

/* Every allocation failing in turn, over a run with failover URLs, final
 * codes, the queue and reconnects (to dead ports, so that no server thread
 * allocates meanwhile): dx_client_new gives NULL, or exactly one final
 * close comes; nothing leaks (ASan's leak check in the sanitizer build). */
static int fail_at, alloc_count;
static void *t_malloc(size_t n) {
    return ++alloc_count == fail_at ? NULL : malloc(n);
}
static void *t_realloc(void *p, size_t n) {
    return ++alloc_count == fail_at ? NULL : realloc(p, n);
}

static void test_alloc_failures(void) {
    char url0[64], url1[64];
    snprintf(url0, sizeof url0, "ws://127.0.0.1:%d/", dead_port());
    snprintf(url1, sizeof url1, "ws://127.0.0.1:%d/x", dead_port());
    const char *const more[] = {url1, NULL};
    static const uint16_t finals[] = {4401, 0};
    int completed = 0;
    for (fail_at = 1; fail_at < 300 && !completed; fail_at++) {
        rec r;
        rec_init(&r, NULL);
        dx_client_config cfg = base_cfg(&r, url0);
        cfg.reconnect = 1;
        cfg.reconnect_base_ms = 1;
        cfg.max_retries = 2;
        cfg.urls = more;
        cfg.final_codes = finals;
        alloc_count = 0;
        dx_set_allocator(t_malloc, t_realloc, free);
        r.c = dx_client_new(r.loop, &cfg);
        if (r.c) {
            (void)dx_client_send_text(r.c, "a", 1);
            (void)dx_client_send_text(r.c, "b", 1);
            int closed = 0;
            for (int i = 0; i < 50 && !closed; i++) {
                (void)wait_ev(&r, 'X', count(&r, 'X') + 1);
                closed = r.nclose && r.states[(r.nclose - 1) & 63] == DX_CLOSED;
            }
            CHECK(closed);
        }
        dx_set_allocator(NULL, NULL, NULL);
        if (alloc_count < fail_at) completed = 1;
        int finals_seen = 0;
        for (int i = 0; i < r.nclose && i < 64; i++)
            finals_seen += r.states[i] == DX_CLOSED;
        if (r.c) CHECK_EQ_INT(finals_seen, 1);
        if (completed) CHECK(!strcmp(r.ev, "CEXRCEXRCEX"));
        rec_end(&r);
    }
    CHECK(completed);
    fprintf(stderr, "alloc failures: %d allocation points tried\n", fail_at - 1);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    RUN(test_heartbeat_detects_dead_server);
    RUN(test_backoff_queue_and_comebacks);
    RUN(test_final_codes_stop);
    RUN(test_max_retries);
    RUN(test_app_close_is_final);
    RUN(test_failover);
    RUN(test_one_attempt_at_a_time);
    RUN(test_stable_resets_count);
    RUN(test_alloc_failures);
    RUN(test_queue_bounds);
    return TEST_DONE();
}

/* Tests for the Redis adapter (src/io/redis.c) and the Redis fan-out of
 * the server (src/server/redis_fanout.c), against a real redis-server
 * (Debian's) started by the test on a free loopback port, and real
 * WebSocket clients (dx_client) on the same loop. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include <duplex/client.h>
#include <duplex/loop.h>
#include <duplex/server.h>

#include "io/redis.h"
#include "test.h"
/* after test.h, whose macros they use */
#include "dns_test.h"
#include "redis_test.h"
#include <duplex/fanout.h>

/* ---- URLs and backoff ---- */

static void parse_url(void) {
    dx__redis_addr a;
    const char *why = NULL;
    CHECK_EQ_INT(dx__redis_parse_url("redis://127.0.0.1:6380/3", &a, &why), 0);
    CHECK(!strcmp(a.host, "127.0.0.1"));
    CHECK_EQ_INT(a.port, 6380);
    CHECK_EQ_INT(a.db, 3);
    CHECK(a.password[0] == 0);
    CHECK_EQ_INT(dx__redis_parse_url("redis://cache", &a, &why), 0);
    CHECK(!strcmp(a.host, "cache"));
    CHECK_EQ_INT(a.port, 6379);
    CHECK_EQ_INT(a.db, 0);
    CHECK_EQ_INT(dx__redis_parse_url("redis://:s3cret@h:1/", &a, &why), 0);
    CHECK(!strcmp(a.password, "s3cret"));
    CHECK(!strcmp(a.host, "h"));
    CHECK_EQ_INT(a.port, 1);
    CHECK_EQ_INT(dx__redis_parse_url("redis://user:pw@[::1]:7000/15", &a, &why), 0);
    CHECK(!strcmp(a.host, "::1"));
    CHECK(!strcmp(a.password, "pw"));
    CHECK_EQ_INT(a.port, 7000);
    CHECK_EQ_INT(a.db, 15);
    static const char *bad[] = {
        "http://h:1",      "redis://",         "redis://:6379",  "redis://h:0",
        "redis://h:65536", "redis://h:x",      "redis://h/db",   "redis://h/1?x=1",
        "redis://[::1",    "redis://[::1]x:1", "redis://h:1/-1", NULL,
    };
    for (int i = 0; bad[i]; i++) {
        why = NULL;
        int rc = dx__redis_parse_url(bad[i], &a, &why);
        if (rc != DX_EINVAL) fprintf(stderr, "accepted: %s\n", bad[i]);
        CHECK_EQ_INT(rc, DX_EINVAL);
        CHECK(why && *why);
    }
    CHECK_EQ_INT(dx__redis_parse_url(NULL, &a, NULL), DX_EINVAL);
}

static void backoff(void) {
    /* Half fixed, half random: between d/2 and d, d = min(max, base << n). */
    for (unsigned n = 0; n < 80; n++) {
        uint64_t d = n < 20 ? (uint64_t)100 << n : UINT64_MAX;
        if (d > 5000) d = 5000;
        CHECK_EQ_INT(dx__redis_backoff(100, 5000, n, 0), d);
        CHECK_EQ_INT(dx__redis_backoff(100, 5000, n, (uint32_t)(d / 2)), d - d / 2);
        for (int k = 0; k < 50; k++) {
            uint32_t v = dx__redis_backoff(100, 5000, n, (uint32_t)dx_t_rand());
            CHECK(v >= d - d / 2 && v <= d);
        }
    }
    CHECK_EQ_INT(dx__redis_backoff(100, 5000, 1, 100), 100); /* 200 - 100 % 101 */
    CHECK(dx__redis_backoff(0, 10, 3, 0) >= 4);              /* base 0 acts as 1 */
}

/* ---- the adapter against a real Redis ---- */

typedef struct rstate {
    int ups, downs;
    char why[160];
    char got[64];
    int replies;
    int null_replies;
} rstate;

static void r_up(dx__redis *r, void *user) {
    ((rstate *)user)->ups++;
}
static void r_down(dx__redis *r, void *user, const char *why) {
    rstate *s = user;
    s->downs++;
    snprintf(s->why, sizeof s->why, "%s", why);
}
static void r_reply(struct redisAsyncContext *ac, void *reply, void *priv) {
    rstate *s = priv;
    redisReply *r = reply;
    if (!r) {
        s->null_replies++;
        return;
    }
    s->replies++;
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
        snprintf(s->got, sizeof s->got, "%.*s", (int)r->len, r->str);
}

static int ups_at_least_1(void *a) {
    return ((rstate *)a)->ups >= 1;
}
static int ups_at_least_2(void *a) {
    return ((rstate *)a)->ups >= 2;
}
static int downs_at_least_1(void *a) {
    return ((rstate *)a)->downs >= 1;
}
static int replies_2(void *a) {
    return ((rstate *)a)->replies >= 2;
}

static void reconnects(void) {
    dx_loop *loop = dx_loop_new(0);
    REQUIRE(loop);
    rstate s = {0};
    dx__redis_config cfg = {.backoff_base_ms = 20,
                            .backoff_max_ms = 200,
                            .ping_interval_ms = 200,
                            .on_up = r_up,
                            .on_down = r_down,
                            .user = &s};
    snprintf(cfg.addr.host, sizeof cfg.addr.host, "127.0.0.1");
    cfg.addr.port = redis_port;
    cfg.addr.db = 2;

    /* No Redis yet: attempts are refused and retried with backoff. */
    dx__redis *r = dx__redis_new(loop, &cfg);
    REQUIRE(r);
    CHECK(!dx__redis_up(r));
    const char *argv0[1] = {"PING"};
    CHECK_EQ_INT(dx__redis_command(r, r_reply, &s, 1, argv0, NULL), DX_ESTATE);
    run_until(loop, never, NULL, 600);
    CHECK(dx__redis_attempts(r) >= 3);  /* 20, 40, 80, 160 ms... */
    CHECK(dx__redis_attempts(r) <= 12); /* ...not a busy loop */
    CHECK_EQ_INT(s.ups, 0);
    CHECK_EQ_INT(s.downs, 0); /* never up, so never "down" */
    CHECK(strlen(dx__redis_why(r)) > 0);

    /* Redis comes: the next attempt connects, SELECTs, is up. */
    REQUIRE(redis_start(1) == 0);
    CHECK(run_until(loop, ups_at_least_1, &s, 10000));
    CHECK(dx__redis_up(r));
    const char *set[3] = {"SET", "dx-test-key", "v1"};
    const char *get[2] = {"GET", "dx-test-key"};
    CHECK_EQ_INT(dx__redis_command(r, r_reply, &s, 3, set, NULL), 0);
    CHECK_EQ_INT(dx__redis_command(r, r_reply, &s, 2, get, NULL), 0);
    CHECK(run_until(loop, replies_2, &s, 5000));
    CHECK(!strcmp(s.got, "v1"));
    /* Liveness PINGs run meanwhile and keep it up. */
    run_until(loop, never, NULL, 500);
    CHECK(dx__redis_up(r));
    CHECK_EQ_INT(s.downs, 0);

    /* Redis dies: down once, pending commands answered with NULL. */
    CHECK_EQ_INT(dx__redis_command(r, r_reply, &s, 2, get, NULL), 0);
    redis_kill();
    CHECK(run_until(loop, downs_at_least_1, &s, 5000));
    CHECK(!dx__redis_up(r));
    CHECK(s.null_replies + s.replies >= 3); /* the GET got an answer or a NULL */
    CHECK_EQ_INT(dx__redis_command(r, r_reply, &s, 2, get, NULL), DX_ESTATE);

    /* It comes back on the same port: reconnected, and in db 2 again (the
     * key written there is gone since the server kept nothing). */
    REQUIRE(redis_start(1) == 0);
    CHECK(run_until(loop, ups_at_least_2, &s, 10000));
    CHECK_EQ_INT(dx__redis_ups(r), 2);
    s.replies = 0;
    s.got[0] = 0;
    const char *set2[3] = {"SET", "k2", "v2"};
    const char *get2[2] = {"GET", "k2"};
    CHECK_EQ_INT(dx__redis_command(r, r_reply, &s, 3, set2, NULL), 0);
    CHECK_EQ_INT(dx__redis_command(r, r_reply, &s, 2, get2, NULL), 0);
    CHECK(run_until(loop, replies_2, &s, 5000));
    CHECK(!strcmp(s.got, "v2"));

    /* A reset from the owner (a failed check of its own) reconnects too. */
    dx__redis_reset(r, "test reset");
    CHECK(!dx__redis_up(r));
    CHECK_EQ_INT(s.downs, 2);
    CHECK(!strcmp(s.why, "test reset"));
    s.ups = 0;
    CHECK(run_until(loop, ups_at_least_1, &s, 10000));

    /* Free with a command pending: its callback runs with NULL, once. */
    int before = s.null_replies;
    CHECK_EQ_INT(dx__redis_command(r, r_reply, &s, 2, get2, NULL), 0);
    dx__redis_free(r);
    CHECK_EQ_INT(s.null_replies, before + 1);
    CHECK_EQ_INT(s.downs, 2); /* no on_down from free */
    dx_loop_free(loop);
}

/* A SELECT that Redis refuses (db out of range) is a failed attempt: never
 * up, retried. */
static void bad_db(void) {
    dx_loop *loop = dx_loop_new(0);
    REQUIRE(loop);
    rstate s = {0};
    dx__redis_config cfg = {
        .backoff_base_ms = 20, .backoff_max_ms = 100, .on_up = r_up, .on_down = r_down, .user = &s};
    snprintf(cfg.addr.host, sizeof cfg.addr.host, "127.0.0.1");
    cfg.addr.port = redis_port;
    cfg.addr.db = 100000;
    dx__redis *r = dx__redis_new(loop, &cfg);
    REQUIRE(r);
    run_until(loop, never, NULL, 400);
    CHECK_EQ_INT(s.ups, 0);
    CHECK(dx__redis_attempts(r) >= 2);
    CHECK(strstr(dx__redis_why(r), "SELECT") != NULL);
    dx__redis_free(r);
    dx_loop_free(loop);
}

/* ---- host names: resolved off the loop ---- */

typedef struct polled {
    rstate *s;
    int polls;
} polled;

/* Counts how often the loop got to check: every 5 ms while it runs. */
static int up_polled(void *a) {
    polled *p = a;
    p->polls++;
    return p->s->ups >= 1;
}

static void names(void) {
    dx__getaddrinfo = fake_gai;
    dx_loop *loop = dx_loop_new(0);
    REQUIRE(loop);

    /* A name that takes 300 ms: the loop runs meanwhile, then it is up. */
    gai_delay_ms = 300;
    rstate s = {0};
    dx__redis_config cfg = {
        .backoff_base_ms = 20, .backoff_max_ms = 100, .on_up = r_up, .on_down = r_down, .user = &s};
    snprintf(cfg.addr.host, sizeof cfg.addr.host, "slow.test");
    cfg.addr.port = redis_port;
    dx__redis *r = dx__redis_new(loop, &cfg);
    REQUIRE(r);
    polled p = {.s = &s};
    CHECK(run_until(loop, up_polled, &p, 5000));
    CHECK(dx__redis_up(r));
    CHECK_EQ_INT(dx__redis_attempts(r), 1);
    CHECK(p.polls >= 20); /* ~60 in 300 ms; a blocking resolve gives 1 or 2 */
    dx__redis_free(r);

    /* An unknown name: a failed attempt with the resolver's words, retried. */
    rstate u = {0};
    cfg.user = &u;
    snprintf(cfg.addr.host, sizeof cfg.addr.host, "nope.test");
    r = dx__redis_new(loop, &cfg);
    REQUIRE(r);
    run_until(loop, never, NULL, 300);
    CHECK_EQ_INT(u.ups, 0);
    CHECK(dx__redis_attempts(r) >= 2);
    CHECK(strstr(dx__redis_why(r), "cannot resolve nope.test: ") != NULL);
    dx__redis_free(r);

    /* No answer within connect_timeout_ms: the attempt ends then, and a
     * free while a name is being resolved leaves the helper to clean up. */
    gai_delay_ms = 600;
    rstate t = {0};
    cfg.user = &t;
    cfg.connect_timeout_ms = 100;
    snprintf(cfg.addr.host, sizeof cfg.addr.host, "slow.test");
    r = dx__redis_new(loop, &cfg);
    REQUIRE(r);
    run_until(loop, never, NULL, 250);
    CHECK_EQ_INT(t.ups, 0);
    CHECK(!strcmp(dx__redis_why(r), "connect timeout"));
    CHECK(dx__redis_attempts(r) >= 2);
    dx__redis_free(r);
    dx_loop_free(loop);
    gai_settle();
    dx__getaddrinfo = getaddrinfo;
}

/* ---- topic and broadcast fan-out between two servers ---- */

/* The application: "sub" subscribes to "news" and answers "subbed";
 * "pub X" publishes X on "news"; "all X" broadcasts X. */
static void app_message(dx_server_conn *c, void *user, enum dx_opcode op, const uint8_t *d,
                        size_t n) {
    dx_server *srv = dx_server_conn_server(c);
    if (n == 3 && !memcmp(d, "sub", 3)) {
        CHECK_EQ_INT(dx_server_subscribe(c, "news"), 0);
        dx_server_send_text(c, "subbed");
    } else if (n > 4 && !memcmp(d, "pub ", 4)) {
        CHECK(dx_server_publish(srv, "news", DX_OP_TEXT, d + 4, n - 4, NULL) >= 0);
    } else if (n > 4 && !memcmp(d, "all ", 4)) {
        CHECK(dx_server_broadcast(srv, DX_OP_TEXT, d + 4, n - 4, NULL) >= 0);
    }
}

typedef struct peer {
    dx_client *c;
    int open, subbed;
    int hello, world, other;
} peer;

static void p_open(dx_client *c, void *user) {
    ((peer *)user)->open = 1;
}
static void p_message(dx_client *c, void *user, enum dx_opcode op, const uint8_t *d, size_t n) {
    peer *p = user;
    if (n == 6 && !memcmp(d, "subbed", 6))
        p->subbed = 1;
    else if (n == 5 && !memcmp(d, "hello", 5))
        p->hello++;
    else if (n == 5 && !memcmp(d, "world", 5))
        p->world++;
    else
        p->other++;
}

typedef struct cluster {
    dx_fanout *fa, *fb;
    peer pa, pb, pc; /* pa on A (subscribed), pb on B (subscribed), pc on B */
} cluster;

static int both_up(void *a) {
    cluster *k = a;
    return dx_fanout_up(k->fa) && dx_fanout_up(k->fb);
}
static int all_subbed(void *a) {
    cluster *k = a;
    return k->pa.subbed && k->pb.subbed && k->pc.open;
}
static int hello_everywhere(void *a) {
    cluster *k = a;
    return k->pa.hello && k->pb.hello;
}
static int world_everywhere(void *a) {
    cluster *k = a;
    return k->pa.world && k->pb.world && k->pc.world;
}

static dx_fanout_link_stats link_of(const dx_fanout *f) {
    dx_fanout_link_stats l = {.size = sizeof l};
    CHECK_EQ_INT(dx_fanout_link_stats_get(f, &l), 0);
    CHECK_EQ_INT(l.size, sizeof l);
    return l;
}
static uint64_t bus_samples(const dx_fanout_link_stats *l) {
    uint64_t n = 0;
    for (int i = 0; i < DX_LOOP_TURN_BUCKETS; i++)
        n += l->bus_us[i];
    return n;
}
static int probe_back(void *a) { /* a probe went round through Redis */
    dx_fanout_link_stats l = link_of(a);
    return bus_samples(&l) > 0;
}

static dx_client *peer_connect(dx_loop *loop, int port, peer *p) {
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
    dx_client_config cc = {.url = url, .user = p, .on_open = p_open, .on_message = p_message};
    return dx_client_new(loop, &cc);
}

static void topic_fanout(void) {
    if (redis_pid < 0) REQUIRE(redis_start(1) == 0);
    dx_loop *loop = dx_loop_new(0);
    REQUIRE(loop);
    dx_server_config sc = {.on_message = app_message};
    dx_server *a = dx_server_new(loop, &sc), *b = dx_server_new(loop, &sc);
    REQUIRE(a && b);
    REQUIRE(dx_server_listen(a) == 0 && dx_server_listen(b) == 0);
    cluster k = {0};
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/5", redis_port);
    dx_fanout_config fc = {.url = url, .node_id = {1, 2, 3, 4, 5, 6, 7, 8}};
    k.fa = dx_fanout_new(a, &fc, NULL);
    fc.node_id[7] = 9; /* another node */
    k.fb = dx_fanout_new(b, &fc, NULL);
    const char *why = NULL;
    CHECK(dx_fanout_new(a, &(dx_fanout_config){.url = "http://x"}, &why) == NULL && why);
    CHECK(dx_fanout_check_url("redis://[::1]:6380/2", NULL) == 0);
    CHECK(dx_fanout_check_url("redis://", &why) == DX_EINVAL && why && *why);
    REQUIRE(k.fa && k.fb);
    CHECK(run_until(loop, both_up, &k, 10000));
    /* The link's metrics: up, no reconnection yet, and the probe's round
     * trip (one a second) in the latency histogram. */
    dx_fanout_link_stats l = link_of(k.fa);
    CHECK_EQ_INT(l.up, 1);
    CHECK_EQ_INT(l.reconnects, 0);
    CHECK(run_until(loop, probe_back, k.fa, 3000));
    l = link_of(k.fa);
    CHECK(l.bus_us_sum > 0 && l.bus_us[DX_LOOP_TURN_BUCKETS - 1] == 0); /* well under 1 s */
    dx_fanout_link_stats old = {.size = offsetof(dx_fanout_link_stats, reconnects)};
    CHECK_EQ_INT(dx_fanout_link_stats_get(k.fa, &old), 0);
    CHECK_EQ_INT(old.size, offsetof(dx_fanout_link_stats, reconnects));
    CHECK_EQ_INT(old.up, 1);
    old.size = sizeof old.size;
    CHECK_EQ_INT(dx_fanout_link_stats_get(k.fa, &old), DX_EINVAL);

    k.pa.c = peer_connect(loop, dx_server_port(a), &k.pa);
    k.pb.c = peer_connect(loop, dx_server_port(b), &k.pb);
    k.pc.c = peer_connect(loop, dx_server_port(b), &k.pc);
    REQUIRE(k.pa.c && k.pb.c && k.pc.c);
    for (int i = 0; i < 400 && !(k.pa.open && k.pb.open); i++)
        run_until(loop, never, NULL, 10);
    CHECK_EQ_INT(dx_client_send_text(k.pa.c, "sub", 3), 0);
    CHECK_EQ_INT(dx_client_send_text(k.pb.c, "sub", 3), 0);
    CHECK(run_until(loop, all_subbed, &k, 5000));

    /* A publish on A reaches the subscriber on A (locally) and the one on
     * B (through Redis), once each; pc, not subscribed, gets nothing. */
    CHECK_EQ_INT(dx_client_send_text(k.pa.c, "pub hello", 9), 0);
    CHECK(run_until(loop, hello_everywhere, &k, 5000));
    /* A broadcast from B reaches every client of both servers, once. */
    CHECK_EQ_INT(dx_client_send_text(k.pc.c, "all world", 9), 0);
    CHECK(run_until(loop, world_everywhere, &k, 5000));
    run_until(loop, never, NULL, 300); /* room for duplicates to show */
    CHECK_EQ_INT(k.pa.hello, 1);
    CHECK_EQ_INT(k.pb.hello, 1);
    CHECK_EQ_INT(k.pc.hello, 0);
    CHECK_EQ_INT(k.pa.world, 1);
    CHECK_EQ_INT(k.pb.world, 1);
    CHECK_EQ_INT(k.pc.world, 1);
    CHECK_EQ_INT(k.pa.other + k.pb.other + k.pc.other, 0);
    dx_fanout_stats st;
    dx_fanout_stats_get(k.fa, &st);
    CHECK_EQ_INT(st.published, 1); /* the publish */
    CHECK_EQ_INT(st.received, 1);  /* B's broadcast */
    CHECK_EQ_INT(st.own, 1);       /* its own publish, seen and skipped */
    CHECK_EQ_INT(st.dropped, 0);

    /* Redis gone: both degraded; local delivery still works, and the
     * publish that could not be forwarded is counted as dropped. */
    redis_kill();
    run_until(loop, never, NULL, 300);
    CHECK(!dx_fanout_up(k.fa) && !dx_fanout_up(k.fb));
    CHECK_EQ_INT(link_of(k.fa).up, 0);
    CHECK_EQ_INT(dx_client_send_text(k.pa.c, "pub hello", 9), 0);
    for (int i = 0; i < 200 && k.pa.hello < 2; i++)
        run_until(loop, never, NULL, 10);
    CHECK_EQ_INT(k.pa.hello, 2);
    CHECK_EQ_INT(k.pb.hello, 1);
    dx_fanout_stats_get(k.fa, &st);
    CHECK_EQ_INT(st.dropped, 1);

    /* Back: both reconnect (and resubscribe) by themselves. */
    REQUIRE(redis_start(1) == 0);
    CHECK(run_until(loop, both_up, &k, 15000));
    l = link_of(k.fa);
    CHECK_EQ_INT(l.up, 1);
    CHECK_EQ_INT(l.reconnects, 2); /* its publisher and its subscriber, once each */
    CHECK_EQ_INT(dx_client_send_text(k.pb.c, "pub hello", 9), 0);
    for (int i = 0; i < 500 && k.pa.hello < 3; i++)
        run_until(loop, never, NULL, 10);
    CHECK_EQ_INT(k.pa.hello, 3);
    CHECK_EQ_INT(k.pb.hello, 2);

    dx_client_free(k.pa.c);
    dx_client_free(k.pb.c);
    dx_client_free(k.pc.c);
    dx_fanout_free(k.fa);
    dx_fanout_free(k.fb);
    dx_server_free(a);
    dx_server_free(b);
    dx_loop_free(loop);
}

/* ---- the broker hook alone: deliver and healthz need no Redis ---- */

static int fake_published, fake_up;
static int fake_publish(void *ctx, const char *topic, enum dx_opcode op, const uint8_t *d,
                        size_t n) {
    fake_published++;
    return 0;
}
static int fake_is_up(void *ctx) {
    return fake_up;
}

static void broker_hook(void) {
    dx_loop *loop = dx_loop_new(0);
    REQUIRE(loop);
    dx_server_config sc = {0};
    dx_server *s = dx_server_new(loop, &sc);
    REQUIRE(s);
    dx_server_broker bad = {0};
    CHECK_EQ_INT(dx_server_set_broker(s, &bad), DX_EINVAL);
    dx_server_broker b = {.publish = fake_publish, .up = fake_is_up, .name = "redis"};
    CHECK_EQ_INT(dx_server_set_broker(s, &b), 0);
    /* No clients: nothing local, but the cluster still hears of it. */
    CHECK_EQ_INT(dx_server_broadcast(s, DX_OP_TEXT, "x", 1, NULL), 0);
    CHECK_EQ_INT(dx_server_publish(s, "t", DX_OP_TEXT, "x", 1, NULL), 0);
    CHECK_EQ_INT(fake_published, 2);
    /* Invalid calls are not forwarded; deliver never is. */
    CHECK_EQ_INT(dx_server_publish(s, "", DX_OP_TEXT, "x", 1, NULL), DX_EINVAL);
    CHECK_EQ_INT(dx_server_broadcast(s, DX_OP_PING, "x", 1, NULL), DX_EINVAL);
    CHECK_EQ_INT(dx_server_deliver(s, NULL, DX_OP_TEXT, "x", 1), 0);
    CHECK_EQ_INT(dx_server_deliver(s, "t", DX_OP_BINARY, "x", 1), 0);
    CHECK_EQ_INT(dx_server_deliver(s, NULL, DX_OP_CLOSE, "x", 1), DX_EINVAL);
    CHECK_EQ_INT(fake_published, 2);
    CHECK_EQ_INT(dx_server_set_broker(s, NULL), 0);
    CHECK_EQ_INT(dx_server_broadcast(s, DX_OP_TEXT, "x", 1, NULL), 0);
    CHECK_EQ_INT(fake_published, 2);
    dx_server_free(s);
    dx_loop_free(loop);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    dx_t_seed();
    snprintf(redis_dir, sizeof redis_dir, "/tmp/dx-redis-test.XXXXXX");
    if (!mkdtemp(redis_dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(parse_url);
    RUN(backoff);
    RUN(broker_hook);
    redis_port = free_port();
    if (redis_port <= 0) {
        fprintf(stderr, "no free port\n");
        return 1;
    }
    RUN(reconnects);
    RUN(bad_db);
    RUN(names);
    RUN(topic_fanout);
    redis_kill();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", redis_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", redis_dir);
    return TEST_DONE();
}

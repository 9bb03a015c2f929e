/* Tests for the Redis bus (src/io/redisbus.c) under both cluster users,
 * against a real redis-server started by the test on a free loopback port:
 * two nodes' buses on one loop, the tag, health changes, the probe, the
 * queue cap, a Redis restart, and one that is not there at all. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include <duplex/loop.h>

#include "io/redisbus.h"
#include "redis_test.h"
#include "test.h"

typedef struct node {
    dx__rbus *bus;
    int ups, downs, last_up;
    char why[160];
    int got;
    uint8_t from[8];
    char body[64];
} node;

static void on_message(void *user, const uint8_t *from, const uint8_t *body, size_t len) {
    node *n = user;
    n->got++;
    memcpy(n->from, from, 8);
    snprintf(n->body, sizeof n->body, "%.*s", (int)len, (const char *)body);
}

static void on_state(void *user, int up, const char *why) {
    node *n = user;
    n->last_up = up;
    if (up)
        n->ups++;
    else
        n->downs++;
    snprintf(n->why, sizeof n->why, "%s", why);
}

static dx__rbus *bus_new(dx_loop *loop, node *n, uint8_t id, int port, size_t max_queued) {
    dx__rbus_config c = {.channel = "duplex:4:bustest",
                         .format = 7,
                         .node_id = {1, 2, 3, 4, 5, 6, 7, id},
                         .probe_ms = 50,
                         .max_queued = max_queued,
                         .on_message = on_message,
                         .on_state = on_state,
                         .user = n};
    snprintf(c.addr.host, sizeof c.addr.host, "127.0.0.1");
    c.addr.port = port;
    c.addr.db = 4;
    return dx__rbus_new(loop, &c);
}

typedef struct pair {
    node *a, *b;
} pair;

static int both_up(void *p) {
    pair *q = p;
    return dx__rbus_up(q->a->bus) && dx__rbus_up(q->b->bus);
}
static int both_down(void *p) {
    pair *q = p;
    return q->a->downs && q->b->downs && !dx__rbus_up(q->a->bus) && !dx__rbus_up(q->b->bus);
}
static int b_got_1(void *p) {
    return ((pair *)p)->b->got >= 1;
}
static int a_got_1(void *p) {
    return ((pair *)p)->a->got >= 1;
}
static int b_invalid_2(void *p) {
    dx__rbus_stats st;
    dx__rbus_stats_get(((pair *)p)->b->bus, &st);
    return st.invalid >= 2;
}
static int probes_back(void *p) {
    pair *q = p;
    dx__rbus_stats sa, sb;
    dx__rbus_stats_get(q->a->bus, &sa);
    dx__rbus_stats_get(q->b->bus, &sb);
    uint64_t na = 0, nb = 0;
    for (int i = 0; i < DX_LOOP_TURN_BUCKETS; i++)
        na += sa.bus_us[i], nb += sb.bus_us[i];
    return na >= 2 && nb >= 2 && sa.bus_us_sum > 0;
}

/* What another client (or a node of another format) puts on the channel. */
static void raw_publish(const char *msg, size_t len) {
    redisContext *c = redisConnect("127.0.0.1", redis_port);
    REQUIRE(c && !c->err);
    redisReply *r = redisCommand(c, "PUBLISH duplex:4:bustest %b", msg, len);
    CHECK(r != NULL);
    freeReplyObject(r);
    redisFree(c);
}

static void two_nodes(void) {
    if (redis_pid < 0) REQUIRE(redis_start(1) == 0);
    dx_loop *loop = dx_loop_new(0);
    REQUIRE(loop);
    node a = {0}, b = {0};
    pair p = {&a, &b};
    a.bus = bus_new(loop, &a, 1, redis_port, 0);
    b.bus = bus_new(loop, &b, 2, redis_port, 0);
    REQUIRE(a.bus && b.bus);
    CHECK(run_until(loop, both_up, &p, 10000));
    CHECK_EQ_INT(a.ups, 1);
    CHECK(a.last_up && b.last_up);
    /* (A probe tick before both connections were up told "down" first.) */
    a.downs = b.downs = 0;

    /* A message in parts: the other node gets it whole, tag removed, with
     * the sender's id; the sender hears its own and drops it. */
    struct iovec iov[3] = {{"hel", 3}, {NULL, 0}, {"lo", 2}};
    CHECK_EQ_INT(dx__rbus_publish(a.bus, iov, 3), 0);
    CHECK(run_until(loop, b_got_1, &p, 5000));
    run_until(loop, never, NULL, 100);
    CHECK_EQ_INT(b.got, 1);
    CHECK(!strcmp(b.body, "hello"));
    CHECK(b.from[7] == 1 && b.from[0] == 1);
    CHECK_EQ_INT(a.got, 0);
    dx__rbus_stats st;
    dx__rbus_stats_get(a.bus, &st);
    CHECK_EQ_INT(st.own, 1);
    CHECK_EQ_INT(st.up, 1);
    CHECK_EQ_INT(st.reconnects, 0);

    /* Not our tag, or the tag of another format: counted, not delivered. */
    raw_publish("junk", 4);
    raw_publish("dx\001\001\002\003\004\005\006\007\011body", 15);
    CHECK(run_until(loop, b_invalid_2, &p, 5000));
    CHECK_EQ_INT(b.got, 1);

    /* The probe goes round (every 50 ms here) and fills the histogram. */
    CHECK(run_until(loop, probes_back, &p, 5000));

    /* Another command on the publisher. */
    const char *set[3] = {"SET", "dx-bus-key", "v"};
    CHECK_EQ_INT(dx__rbus_command(a.bus, 3, set, NULL), 0);
    run_until(loop, never, NULL, 100);
    redisContext *c = redisConnect("127.0.0.1", redis_port);
    REQUIRE(c && !c->err);
    redisReply *r = redisCommand(c, "SELECT 4");
    freeReplyObject(r);
    r = redisCommand(c, "GET dx-bus-key");
    CHECK(r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, "v"));
    freeReplyObject(r);
    redisFree(c);

    /* Redis dies: both down once with a reason, publishing refused. */
    redis_kill();
    CHECK(run_until(loop, both_down, &p, 5000));
    CHECK_EQ_INT(a.downs, 1);
    CHECK(a.why[0] != 0);
    CHECK_EQ_INT(dx__rbus_publish(a.bus, iov, 3), DX_ESTATE);
    CHECK_EQ_INT(dx__rbus_command(a.bus, 3, set, NULL), DX_ESTATE);

    /* It comes back: both up again, each connection counted once. */
    REQUIRE(redis_start(1) == 0);
    CHECK(run_until(loop, both_up, &p, 10000));
    CHECK_EQ_INT(a.ups, 2);
    dx__rbus_stats_get(a.bus, &st);
    CHECK_EQ_INT(st.reconnects, 2);
    b.got = 0;
    CHECK_EQ_INT(dx__rbus_publish(a.bus, iov, 3), 0);
    CHECK(run_until(loop, b_got_1, &p, 5000));

    dx__rbus_free(a.bus);
    dx__rbus_free(b.bus);
    dx_loop_free(loop);
}

/* Unwritten bytes above max_queued: refused until the loop writes them. */
static void queue_cap(void) {
    if (redis_pid < 0) REQUIRE(redis_start(1) == 0);
    dx_loop *loop = dx_loop_new(0);
    REQUIRE(loop);
    node a = {0}, b = {0};
    pair p = {&a, &b};
    a.bus = bus_new(loop, &a, 1, redis_port, 64);
    b.bus = bus_new(loop, &b, 2, redis_port, 0);
    REQUIRE(a.bus && b.bus);
    CHECK(run_until(loop, both_up, &p, 10000));
    char big[200];
    memset(big, 'x', sizeof big);
    struct iovec iov[1] = {{big, sizeof big}};
    CHECK_EQ_INT(dx__rbus_publish(a.bus, iov, 1), 0);
    CHECK_EQ_INT(dx__rbus_publish(a.bus, iov, 1), DX_ESTATE);
    CHECK(run_until(loop, b_got_1, &p, 5000));
    CHECK_EQ_INT(dx__rbus_publish(a.bus, iov, 1), 0);
    /* A message larger than the kept buffer is not kept. */
    size_t n = (size_t)2 << 20;
    char *huge = malloc(n);
    REQUIRE(huge);
    memset(huge, 'y', n);
    iov[0] = (struct iovec){huge, n};
    run_until(loop, never, NULL, 50);
    CHECK_EQ_INT(dx__rbus_publish(b.bus, iov, 1), 0);
    free(huge);
    CHECK(run_until(loop, a_got_1, &p, 5000));
    CHECK(a.body[0] == 'y');
    dx__rbus_free(a.bus);
    dx__rbus_free(b.bus);
    dx_loop_free(loop);
}

static int told_down(void *p) {
    return ((node *)p)->downs >= 1;
}

/* No Redis at all: told down at the first probe tick, with a reason; a
 * channel name too long is refused. */
static void nobody_there(void) {
    dx_loop *loop = dx_loop_new(0);
    REQUIRE(loop);
    node a = {0};
    a.bus = bus_new(loop, &a, 1, free_port(), 0);
    REQUIRE(a.bus);
    CHECK(run_until(loop, told_down, &a, 5000));
    CHECK_EQ_INT(a.ups, 0);
    CHECK(a.why[0] != 0);
    struct iovec iov[1] = {{"x", 1}};
    CHECK_EQ_INT(dx__rbus_publish(a.bus, iov, 1), DX_ESTATE);
    dx__rbus_free(a.bus);
    char name[80];
    memset(name, 'c', sizeof name - 1);
    name[sizeof name - 1] = 0;
    CHECK(dx__rbus_new(loop, &(dx__rbus_config){.channel = name, .on_message = on_message}) ==
          NULL);
    dx__rbus_free(NULL);
    dx_loop_free(loop);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    dx_t_seed();
    snprintf(redis_dir, sizeof redis_dir, "/tmp/dx-redisbus-test.XXXXXX");
    if (!mkdtemp(redis_dir)) {
        perror("mkdtemp");
        return 1;
    }
    redis_port = free_port();
    if (redis_port <= 0) {
        fprintf(stderr, "no free port\n");
        return 1;
    }
    RUN(nobody_there);
    RUN(two_nodes);
    RUN(queue_cap);
    redis_kill();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", redis_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", redis_dir);
    return TEST_DONE();
}

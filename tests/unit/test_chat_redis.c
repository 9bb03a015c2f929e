/* Tests for the chat broker over Redis (src/chat/broker_redis.c): several
 * brokers on one loop act as the nodes of a cluster, against a real
 * redis-server (Debian's) started here on a free loopback port; the
 * presence keys are read back with hiredis's blocking client. */
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include <duplex/loop.h>

#include "chat/broker_redis.h"
#include "redis_test.h"
#include "test.h"

#define DB 4
#define TTL 1500

/* GET key with the blocking client: the value, "" when absent; *pttl the
 * key's remaining ms (-2 absent, -1 no TTL). */
static void redis_get(const char *key, char *out, size_t cap, long long *pttl) {
    out[0] = 0;
    *pttl = -3;
    redisContext *c = redisConnect("127.0.0.1", redis_port);
    if (!c || c->err) {
        if (c) redisFree(c);
        return;
    }
    redisReply *r = redisCommand(c, "SELECT %d", DB);
    if (r) freeReplyObject(r);
    r = redisCommand(c, "GET %s", key);
    if (r && r->type == REDIS_REPLY_STRING) snprintf(out, cap, "%.*s", (int)r->len, r->str);
    if (r) freeReplyObject(r);
    r = redisCommand(c, "PTTL %s", key);
    if (r && r->type == REDIS_REPLY_INTEGER) *pttl = r->integer;
    if (r) freeReplyObject(r);
    redisFree(c);
}

/* ---- nodes ---- */

typedef struct nodex {
    dx__chat_broker *b;
    uint8_t id[8];
    int delivered; /* deliver calls */
    char last_uid[40], last_data[64];
    const void *last_except;
    int remote_calls; /* on_remote */
    char remote_uid[40];
    int64_t remote_devices;
} nodex;

static void on_deliver(void *arg, const char *uid, const char *data, size_t len,
                       const void *except) {
    nodex *n = arg;
    n->delivered++;
    snprintf(n->last_uid, sizeof n->last_uid, "%s", uid);
    snprintf(n->last_data, sizeof n->last_data, "%.*s", (int)len, data);
    n->last_except = except;
}

static void on_remote(void *user, const char *uid, int64_t devices) {
    nodex *n = user;
    n->remote_calls++;
    snprintf(n->remote_uid, sizeof n->remote_uid, "%s", uid);
    n->remote_devices = devices;
}

static void node_start(dx_loop *loop, nodex *n, uint8_t tag) {
    memset(n, 0, sizeof *n);
    memset(n->id, tag, sizeof n->id);
    dx__chat_redis_config cfg = {.presence_ttl_ms = TTL, .on_remote = on_remote, .user = n};
    snprintf(cfg.addr.host, sizeof cfg.addr.host, "127.0.0.1");
    cfg.addr.port = redis_port;
    cfg.addr.db = DB;
    memcpy(cfg.node_id, n->id, 8);
    n->b = dx__chat_broker_redis(loop, &cfg, on_deliver, n);
}

static void key_of(const nodex *n, const char *uid, char *out, size_t cap) {
    snprintf(out, cap, "duplex:%d:presence:%s:%02x%02x%02x%02x%02x%02x%02x%02x", DB, uid, n->id[0],
             n->id[1], n->id[2], n->id[3], n->id[4], n->id[5], n->id[6], n->id[7]);
}

typedef struct count_cond {
    nodex *n;
    const char *uid;
    int64_t want;
} count_cond;

static int devices_are(void *arg) {
    count_cond *c = arg;
    return c->n->b->ops->devices(c->n->b, c->uid) == c->want;
}

static int delivered_1(void *arg) {
    return ((nodex *)arg)->delivered >= 1;
}

typedef struct pair {
    nodex *a, *b, *c;
} pair;

static int all_up(void *arg) {
    pair *p = arg;
    return dx__chat_broker_redis_up(p->a->b) && dx__chat_broker_redis_up(p->b->b) &&
           (!p->c || dx__chat_broker_redis_up(p->c->b));
}

static void cluster(void) {
    dx_loop *loop = dx_loop_new(0);
    REQUIRE(loop);
    static nodex A, B, C;
    node_start(loop, &A, 0xa1);
    node_start(loop, &B, 0xb2);
    REQUIRE(A.b && B.b);
    pair ab = {&A, &B, NULL};
    CHECK(run_until(loop, all_up, &ab, 10000));

    /* Presence: a device of alice on A is seen by B, and written in Redis
     * with the TTL. */
    CHECK_EQ_INT(A.b->ops->online(A.b, "alice"), 1);
    count_cond c = {&B, "alice", 1};
    CHECK(run_until(loop, devices_are, &c, 5000));
    char key[128], val[32];
    long long pttl;
    key_of(&A, "alice", key, sizeof key);
    redis_get(key, val, sizeof val, &pttl);
    CHECK(!strcmp(val, "1"));
    CHECK(pttl > 0 && pttl <= TTL);
    /* Another device of alice on B: two across the cluster, for both. */
    CHECK_EQ_INT(B.b->ops->online(B.b, "alice"), 2);
    c = (count_cond){&A, "alice", 2};
    CHECK(run_until(loop, devices_are, &c, 5000));
    CHECK(A.remote_calls >= 1 && !strcmp(A.remote_uid, "alice"));

    /* Delivery: a publish on A reaches A's devices at once (with the
     * exception) and B's through Redis, once each. */
    static const int dev;
    CHECK_EQ_INT(A.b->ops->publish(A.b, "alice", "{\"m\":1}", 7, &dev), 0);
    CHECK_EQ_INT(A.delivered, 1);
    CHECK(A.last_except == &dev);
    CHECK(run_until(loop, delivered_1, &B, 5000));
    run_until(loop, never, NULL, 300);
    CHECK_EQ_INT(A.delivered, 1);
    CHECK_EQ_INT(B.delivered, 1);
    CHECK(!strcmp(B.last_uid, "alice") && !strcmp(B.last_data, "{\"m\":1}"));
    CHECK(B.last_except == NULL);

    /* Offline on B: alice still online through A. */
    CHECK_EQ_INT(B.b->ops->offline(B.b, "alice"), 1);
    key_of(&B, "alice", key, sizeof key);
    c = (count_cond){&A, "alice", 1};
    CHECK(run_until(loop, devices_are, &c, 5000));
    redis_get(key, val, sizeof val, &pttl);
    CHECK(val[0] == 0 && pttl == -2); /* deleted at 0 */

    /* A node that joins later learns the others' counts (it asks). */
    node_start(loop, &C, 0xc3);
    REQUIRE(C.b);
    c = (count_cond){&C, "alice", 1};
    CHECK(run_until(loop, devices_are, &c, 5000));

    /* B crashes with bob online: its key and its count go within the TTL
     * (no offline was ever called), and A is told. */
    CHECK_EQ_INT(B.b->ops->online(B.b, "bob"), 1);
    c = (count_cond){&A, "bob", 1};
    CHECK(run_until(loop, devices_are, &c, 5000));
    key_of(&B, "bob", key, sizeof key);
    redis_get(key, val, sizeof val, &pttl);
    CHECK(!strcmp(val, "1"));
    B.b->ops->free(B.b);
    B.b = NULL;
    A.remote_calls = 0;
    c = (count_cond){&A, "bob", 0};
    CHECK(run_until(loop, devices_are, &c, 3 * TTL + 2000));
    CHECK(A.remote_calls >= 1 && !strcmp(A.remote_uid, "bob") && A.remote_devices == 0);
    run_until(loop, never, NULL, 200);
    redis_get(key, val, sizeof val, &pttl);
    CHECK(val[0] == 0);
    /* Meanwhile the live nodes' keys were refreshed by their heartbeats. */
    key_of(&A, "alice", key, sizeof key);
    redis_get(key, val, sizeof val, &pttl);
    CHECK(!strcmp(val, "1"));

    /* Redis restarted empty: the nodes come back and write their keys
     * again; presence across nodes is restored. */
    redis_kill();
    run_until(loop, never, NULL, 200);
    CHECK(!dx__chat_broker_redis_up(A.b));
    CHECK_EQ_INT(A.b->ops->devices(A.b, "alice"), 1); /* local count still right */
    CHECK_EQ_INT(A.b->ops->publish(A.b, "alice", "{}", 2, NULL), DX_EIO);
    CHECK_EQ_INT(A.delivered, 2); /* delivered locally all the same */
    REQUIRE(redis_start(1) == 0);
    pair ac = {&A, &C, NULL};
    CHECK(run_until(loop, all_up, &ac, 15000));
    run_until(loop, never, NULL, 300);
    redis_get(key, val, sizeof val, &pttl);
    CHECK(!strcmp(val, "1"));
    c = (count_cond){&C, "alice", 1};
    CHECK(run_until(loop, devices_are, &c, 5000));

    A.b->ops->free(A.b);
    C.b->ops->free(C.b);
    dx_loop_free(loop);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    snprintf(redis_dir, sizeof redis_dir, "/tmp/dx-chat-redis.XXXXXX");
    if (!mkdtemp(redis_dir)) {
        perror("mkdtemp");
        return 1;
    }
    redis_port = free_port();
    if (redis_port <= 0 || redis_start(1) < 0) {
        fprintf(stderr, "cannot start redis-server (make deps installs it)\n");
        return 1;
    }
    RUN(cluster);
    redis_kill();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", redis_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", redis_dir);
    return TEST_DONE();
}

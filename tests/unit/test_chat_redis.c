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
#include "test.h"

#define DB 4
#define TTL 1500

static char redis_dir[64];
static int redis_port;
static pid_t redis_pid = -1;

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &n) < 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static int port_open(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

static int redis_start(void) {
    char port[16];
    snprintf(port, sizeof port, "%d", redis_port);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) dup2(null, 1);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", redis_dir, "--loglevel", "warning", (char *)NULL);
        _exit(127);
    }
    redis_pid = pid;
    for (int i = 0; i < 200; i++) {
        if (port_open(redis_port)) return 0;
        if (waitpid(pid, NULL, WNOHANG) == pid) break;
        usleep(25000);
    }
    return -1;
}

static void redis_kill(void) {
    if (redis_pid > 0) {
        kill(redis_pid, SIGKILL);
        waitpid(redis_pid, NULL, 0);
    }
    redis_pid = -1;
}

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

/* ---- the loop, until a condition holds ---- */

typedef int (*cond_fn)(void *arg);
typedef struct waiter {
    dx_timer poll, guard;
    cond_fn cond;
    void *arg;
    int timed_out;
} waiter;

static void on_poll(dx_loop *loop, dx_timer *t) {
    waiter *w = (waiter *)(void *)t;
    if (w->cond(w->arg)) {
        dx_loop_stop(loop);
        return;
    }
    dx_timer_start(loop, t, 5);
}

static void on_wait_guard(dx_loop *loop, dx_timer *t) {
    waiter *w = (waiter *)(void *)((char *)t - offsetof(waiter, guard));
    w->timed_out = 1;
    dx_loop_stop(loop);
}

static int run_until(dx_loop *loop, cond_fn cond, void *arg, uint64_t ms) {
    waiter w = {.cond = cond, .arg = arg};
    dx_timer_init(&w.poll, on_poll);
    dx_timer_init(&w.guard, on_wait_guard);
    dx_timer_start(loop, &w.poll, 0);
    dx_timer_start(loop, &w.guard, ms);
    (void)dx_loop_run(loop);
    dx_timer_stop(loop, &w.poll);
    dx_timer_stop(loop, &w.guard);
    return !w.timed_out;
}

static int never(void *arg) {
    return 0;
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
    REQUIRE(redis_start() == 0);
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
    if (redis_port <= 0 || redis_start() < 0) {
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

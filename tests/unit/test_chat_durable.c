/* Durability off the loop (issue 19; engine.c "durability", syncer.c):
 * with the fsync on the store thread, an ack, a delivery or a reply that
 * shows a message never leaves before the commit holding it is durable,
 * and in commit order; typing does not wait; a failed fsync is answered
 * store_failed. And the store thread itself, on a real loop: the loop keeps
 * running while a sync is blocked, one sync covers every commit asked for
 * meanwhile, and a failure is never hidden by a later success. */
#include <pthread.h>
#include <semaphore.h>
#include <unistd.h>

#include "test.h"

#include "chat/syncer.h"
#include "chat_test.h"

static uint64_t sync_asked; /* the last commit number io.sync was given */

static void io_sync(void *arg, uint64_t no) {
    sync_asked = no;
}

static char db_path[64];

static dx__chat *engine_async(void) {
    snprintf(db_path, sizeof db_path, "/tmp/dx-durable-%d.db", (int)getpid());
    unlink(db_path);
    const char *why = NULL;
    dx__chat_store *st = dx__chat_store_sqlite(db_path, &why);
    if (!st) return NULL;
    dx__chat_io io = {NULL, io_send, io_deliver, io_schedule, io_now, NULL, io_mono, io_sync};
    reset_outs();
    memset(devs, 0, sizeof devs);
    sync_asked = 0;
    return dx__chat_new(&io, st, "lobby", &why);
}

/* Opens a device and makes its lobby membership durable. */
static void ready(dx__chat *c, dx__chat_dev *d, const char *uid) {
    dev_open(c, d, uid);
    (void)dx__chat_flush(c);
    dx__chat_durable(c, sync_asked, 0);
    drain(d);
}

static void send_msg(dx__chat *c, dx__chat_dev *d, int id, const char *cid) {
    char buf[200];
    snprintf(buf, sizeof buf,
             "{\"v\":1,\"type\":\"send\",\"id\":%d,\"conv\":\"d:alice:bob\",\"cid\":\"%s\","
             "\"text\":\"m %s\"}",
             id, cid, cid);
    req(c, d, buf);
}

static void test_order(void) {
    dx__chat *c = engine_async();
    REQUIRE(c);
    dx__chat_dev a, b;
    ready(c, &a, "alice");
    ready(c, &b, "bob");
    drain(&a);
    /* Turn 1: committed, not durable: nothing leaves. */
    send_msg(c, &a, 1, "c1");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    uint64_t n1 = sync_asked;
    CHECK(n1 > 0);
    CHECK_EQ_INT(left(&a), 0);
    CHECK_EQ_INT(left(&b), 0);
    /* Turn 2: bob reads the history, which shows c1: the reply waits for
     * c1's fsync; typing does not wait for anything. */
    req(c, &b, "{\"v\":1,\"type\":\"history\",\"id\":\"h\",\"conv\":\"d:alice:bob\"}");
    req(c, &a, "{\"v\":1,\"type\":\"typing\",\"conv\":\"d:alice:bob\"}");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    json_t *t = next(&b);
    REQUIRE(t);
    CHECK(!strcmp(str(t, "type"), "typing"));
    json_decref(t);
    CHECK_EQ_INT(left(&b), 0);
    /* Turn 3: another commit asked for before the first is durable. */
    send_msg(c, &a, 2, "c2");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    uint64_t n2 = sync_asked;
    CHECK(n2 == n1 + 1);
    CHECK_EQ_INT(left(&a), 0);
    /* The first fsync: c1's ack and delivery, then the history reply with
     * c1 in it — not c2's ack. */
    dx__chat_durable(c, n1, 0);
    json_t *ack = next(&a);
    REQUIRE(ack);
    CHECK(!strcmp(str(ack, "type"), "ack") && !strcmp(str(ack, "cid"), "c1"));
    json_decref(ack);
    CHECK_EQ_INT(left(&a), 0);
    json_t *dv = next(&b);
    REQUIRE(dv);
    CHECK(!strcmp(str(dv, "type"), "deliver"));
    json_decref(dv);
    json_t *h = next(&b);
    REQUIRE(h);
    CHECK(!strcmp(str(h, "type"), "history"));
    CHECK_EQ_INT(json_array_size(json_object_get(h, "msgs")), 1);
    json_decref(h);
    /* The second. */
    dx__chat_durable(c, n2, 0);
    ack = next(&a);
    REQUIRE(ack);
    CHECK(!strcmp(str(ack, "cid"), "c2") && num(ack, "seq") == 2);
    json_decref(ack);
    drain(&b);
    /* A read with nothing waiting is answered at once. */
    req(c, &b, "{\"v\":1,\"type\":\"history\",\"id\":\"h2\",\"conv\":\"d:alice:bob\"}");
    h = next(&b);
    REQUIRE(h);
    CHECK_EQ_INT(json_array_size(json_object_get(h, "msgs")), 2);
    json_decref(h);

    /* A failed fsync: store_failed, no delivery; the resend is a dup
     * (the row is there), acked once durable. */
    send_msg(c, &a, 3, "c3");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    dx__chat_durable(c, sync_asked, DX_EIO);
    json_t *e = next(&a);
    REQUIRE(e);
    CHECK(!strcmp(str(e, "type"), "error") && !strcmp(str(e, "code"), "store_failed"));
    json_decref(e);
    CHECK_EQ_INT(left(&b), 0);
    send_msg(c, &a, 4, "c3");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    dx__chat_durable(c, sync_asked, 0);
    ack = next(&a);
    REQUIRE(ack);
    CHECK(!strcmp(str(ack, "type"), "ack") && json_is_true(json_object_get(ack, "dup")));
    json_decref(ack);

    /* A device that closes while its ack waits: dropped, the others'
     * deliveries still go. */
    drain(&b);
    send_msg(c, &a, 5, "c5");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    dev_close(c, &a);
    dx__chat_durable(c, sync_asked, 0);
    dv = next_of(&b, "deliver");
    REQUIRE(dv);
    json_decref(dv);
    dev_close(c, &b);
    dx__chat_free(c);
    reset_outs();
    dx_t_remove_db(db_path);
}

/* ---- the store thread ---------------------------------------------------- */

/* A store of which only sync() is used: it blocks until the test lets it
 * go, and fails when told to. */
static sem_t go;
static int syncs, fail_next;
static pthread_t loop_thread;

static int blocking_sync(dx__chat_store *st) {
    sem_wait(&go);
    syncs++;
    if (fail_next) {
        fail_next = 0;
        return DX_EIO;
    }
    return 0;
}

static const dx__chat_store_ops BLOCKING = {.sync = blocking_sync};
static dx__chat_store blocking_store = {.ops = &BLOCKING};

typedef struct run_state {
    dx__chat_syncer *s;
    dx_timer tick;
    int ticks, step;
    uint64_t done_no[8];
    int done_rc[8], ndone;
    int on_loop; /* every done() ran on the loop's thread */
} run_state;

static run_state rs;

static void done_cb(void *arg, uint64_t no, int rc) {
    if (rs.ndone < 8) {
        rs.done_no[rs.ndone] = no;
        rs.done_rc[rs.ndone] = rc;
    }
    rs.ndone++;
    if (!pthread_equal(pthread_self(), loop_thread)) rs.on_loop = 0;
}

/* Every 2 ms: the loop is alive. The script moves on by ticks, so that
 * nothing depends on how fast the machine is. */
static void on_tick(dx_loop *loop, dx_timer *t) {
    rs.ticks++;
    switch (rs.step) {
    case 0: /* ask for 1; its sync blocks */
        dx__chat_syncer_want(rs.s, 1);
        rs.step = 1, rs.ticks = 0;
        break;
    case 1: /* 20 turns later the loop still runs, nothing reported */
        if (rs.ticks < 20) break;
        CHECK_EQ_INT(rs.ndone, 0);
        dx__chat_syncer_want(rs.s, 2); /* asked while 1 is on "disk" */
        dx__chat_syncer_want(rs.s, 3);
        sem_post(&go); /* 1 done; the next sync covers 2 and 3 */
        rs.step = 2;
        break;
    case 2:
        if (rs.ndone < 1) break;
        fail_next = 1;
        sem_post(&go); /* the sync of 3 fails */
        rs.step = 3;
        break;
    case 3:
        if (rs.ndone < 2) break;
        dx__chat_syncer_want(rs.s, 4);
        sem_post(&go);
        rs.step = 4;
        break;
    case 4:
        if (rs.ndone < 3) break;
        dx_loop_stop(loop);
        return;
    }
    dx_timer_start(loop, t, 2);
}

static void test_syncer(void) {
    dx_loop *loop = dx_loop_new(0);
    REQUIRE(loop);
    sem_init(&go, 0, 0);
    memset(&rs, 0, sizeof rs);
    rs.on_loop = 1;
    loop_thread = pthread_self();
    rs.s = dx__chat_syncer_new(loop, &blocking_store, done_cb, NULL);
    REQUIRE(rs.s);
    dx_timer_init(&rs.tick, on_tick);
    dx_timer_start(loop, &rs.tick, 2);
    CHECK_EQ_INT(dx_loop_run(loop), 0);
    CHECK_EQ_INT(rs.ndone, 3);
    CHECK_EQ_INT((int)rs.done_no[0], 1);
    CHECK_EQ_INT(rs.done_rc[0], 0);
    CHECK_EQ_INT((int)rs.done_no[1], 3); /* 2 and 3 in one sync */
    CHECK(rs.done_rc[1] < 0);
    CHECK_EQ_INT((int)rs.done_no[2], 4);
    CHECK_EQ_INT(rs.done_rc[2], 0);
    CHECK_EQ_INT(syncs, 3);
    CHECK(rs.on_loop);
    dx_timer_stop(loop, &rs.tick);
    dx__chat_syncer_free(rs.s);
    dx_loop_free(loop);
    sem_destroy(&go);
}

int main(void) {
    RUN(test_order);
    RUN(test_syncer);
    return TEST_DONE();
}

/* The engine's store thread (src/chat/worker.c, engine.h dx__chat_use_thread)
 * on a real loop, over SQLite whose commit the test can hold shut, as a
 * frozen PostgreSQL would: while the store is blocked the loop still
 * answers (typing in a direct conversation reaches the partner), no ack
 * leaves before its commit, a read queued after an ack sees the message,
 * and a device that leaves while its request waits is never written to
 * (its memory is freed at once: ASan would see a use). Presence flags in a
 * sync reply are the loop's. */
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "test.h"

#include "chat/store.h"
#include "chat/worker.h"
#include "chat_test.h"

/* ---- a store whose commit waits while the gate is shut ---- */

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_shut, gate_waiting, commits;
static dx__chat_store_ops gated_ops;
static int (*real_commit)(dx__chat_store *st);

static int gated_commit(dx__chat_store *st) {
    pthread_mutex_lock(&gate_mu);
    gate_waiting += gate_shut;
    while (gate_shut)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
    int rc = real_commit(st);
    pthread_mutex_lock(&gate_mu);
    commits++;
    pthread_mutex_unlock(&gate_mu);
    return rc;
}

static void gate(int shut) {
    pthread_mutex_lock(&gate_mu);
    gate_shut = shut;
    if (!shut) {
        gate_waiting = 0;
        pthread_cond_broadcast(&gate_cv);
    }
    pthread_mutex_unlock(&gate_mu);
}

static int waiting(void) {
    pthread_mutex_lock(&gate_mu);
    int n = gate_waiting;
    pthread_mutex_unlock(&gate_mu);
    return n;
}

static int committed(void) {
    pthread_mutex_lock(&gate_mu);
    int n = commits;
    pthread_mutex_unlock(&gate_mu);
    return n;
}

/* ---- running the loop until something happened ---- */

static dx_loop *loop;
static dx_timer tick;
static int (*want)(void);
static int64_t deadline;

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_tick(dx_loop *l, dx_timer *t) {
    if ((want && want()) || mono_ms() >= deadline) {
        dx_loop_stop(l);
        return;
    }
    dx_timer_start(l, t, 2);
}

/* Runs the loop until cond() (NULL: for `ms`) or `ms` passed; cond(). */
static int pump(int (*cond)(void), int ms) {
    want = cond;
    deadline = mono_ms() + ms;
    dx_timer_start(loop, &tick, 1);
    (void)dx_loop_run(loop);
    return cond ? cond() : 1;
}

/* Messages of `type` recorded for the device at `to` (taken or not). */
static int count_to(uintptr_t to, const char *type) {
    int n = 0;
    char pat[64];
    snprintf(pat, sizeof pat, "\"type\":\"%s\"", type);
    for (int i = 0; i < nouts; i++)
        n += (uintptr_t)outs[i].to == to && strstr(outs[i].data, pat) != NULL;
    return n;
}

static dx__chat_dev *alice, *bob;
static uintptr_t alice_at;
static int alice_acked(void) {
    return count_to(alice_at, "ack") > 0;
}
static int bob_typing(void) {
    return count_to((uintptr_t)bob, "typing") > 0;
}
static int bob_delivered2(void) {
    return count_to((uintptr_t)bob, "deliver") >= 2;
}
static int alice_history(void) {
    return count_to(alice_at, "history") > 0;
}
static int bob_synced(void) {
    return count_to((uintptr_t)bob, "sync") > 0;
}

/* The reply of `type` to the device at `to`, parsed (caller decrefs). */
static json_t *find_to(uintptr_t to, const char *type) {
    for (int i = nouts - 1; i >= 0; i--) {
        if ((uintptr_t)outs[i].to != to) continue;
        json_t *j = json_loads(outs[i].data, 0, NULL);
        if (!strcmp(str(j, "type"), type)) return j;
        json_decref(j);
    }
    return NULL;
}

/* `per_job`: the store's commit is its durability point (no sync(), as
 * PostgreSQL's): the thread hands back after every job, not per batch. */
static void run_thread(int per_job) {
    loop = dx_loop_new(0);
    REQUIRE(loop);
    dx_timer_init(&tick, on_tick);
    dx__chat *c = test_engine(NULL);
    REQUIRE(c);
    const char *why = NULL;
    dx__chat_store *st = dx__chat_store_sqlite(NULL, &why);
    REQUIRE(st);
    gated_ops = *st->ops;
    real_commit = gated_ops.commit;
    gated_ops.commit = gated_commit;
    if (per_job) gated_ops.sync = gated_ops.checkpoint = NULL;
    st->ops = &gated_ops;
    REQUIRE(dx__chat_use_thread(c, loop, st, &why) == 0);

    alice = calloc(1, sizeof *alice);
    bob = calloc(1, sizeof *bob);
    REQUIRE(alice && bob);
    alice_at = (uintptr_t)alice;
    dev_open(c, alice, "alice");
    dev_open(c, bob, "bob");
    (void)dx__chat_flush(c);
    pump(NULL, 100);
    CHECK(count_to(alice_at, "welcome") == 1); /* from the loop, at once */
    int before = committed();
    CHECK(before >= 1); /* the connects' store work (lobby join) */

    /* The store blocks in the commit of a send. */
    gate(1);
    req(c, alice,
        "{\"v\":1,\"type\":\"send\",\"id\":\"s1\",\"conv\":\"d:alice:bob\",\"cid\":\"c1\","
        "\"text\":\"hi\"}");
    CHECK(pump(waiting, 2000));
    /* The loop answers meanwhile: typing reaches bob. */
    req(c, alice, "{\"v\":1,\"type\":\"typing\",\"conv\":\"d:alice:bob\"}");
    CHECK(pump(bob_typing, 1000));
    pump(NULL, 50);
    CHECK(!alice_acked()); /* not before its commit */
    CHECK_EQ_INT(count_to((uintptr_t)bob, "deliver"), 0);
    CHECK_EQ_INT(committed(), before);
    gate(0);
    CHECK(pump(alice_acked, 2000));
    CHECK(committed() > before);
    json_t *ack = find_to(alice_at, "ack");
    CHECK_EQ_INT((int)num(ack, "seq"), 1);
    CHECK(!strcmp(str(ack, "id"), "s1"));
    json_decref(ack);
    CHECK_EQ_INT(count_to((uintptr_t)bob, "deliver"), 1);

    /* A read after the ack sees the message. */
    req(c, alice, "{\"v\":1,\"type\":\"history\",\"id\":\"h1\",\"conv\":\"d:alice:bob\"}");
    CHECK(pump(alice_history, 2000));
    json_t *h = find_to(alice_at, "history");
    json_t *m0 = json_array_get(json_object_get(h, "msgs"), 0);
    CHECK(!strcmp(str(m0, "cid"), "c1"));
    json_decref(h);

    /* Presence in a sync: alice is online (the loop's answer, not the
     * thread's, which cannot know). */
    req(c, bob, "{\"v\":1,\"type\":\"sync\",\"id\":\"y1\"}");
    CHECK(pump(bob_synced, 2000));
    json_t *y = find_to((uintptr_t)bob, "sync");
    json_t *p0 = json_array_get(json_object_get(y, "presence"), 0);
    CHECK(!strcmp(str(p0, "uid"), "alice"));
    CHECK(json_is_true(json_object_get(p0, "online")));
    json_decref(y);

    /* Alice leaves while her send waits: the send is stored and bob gets
     * it; alice's freed device is never written to. */
    gate(1);
    req(c, alice,
        "{\"v\":1,\"type\":\"send\",\"id\":\"s2\",\"conv\":\"d:alice:bob\",\"cid\":\"c2\","
        "\"text\":\"bye\"}");
    CHECK(pump(waiting, 2000));
    int acks = count_to(alice_at, "ack");
    dev_close(c, alice);
    free(alice);
    alice = NULL;
    gate(0);
    CHECK(pump(bob_delivered2, 2000));
    pump(NULL, 50);
    CHECK_EQ_INT(count_to(alice_at, "ack"), acks);

    /* A store that stops answering does not take the memory with it:
     * past DX__CHAT_QUEUE_MAX of waiting requests, one is refused at once,
     * with its id. */
    gate(1);
    req(c, bob,
        "{\"v\":1,\"type\":\"send\",\"id\":\"s3\",\"conv\":\"d:alice:bob\",\"cid\":\"c3\","
        "\"text\":\"x\"}");
    CHECK(pump(waiting, 2000));
    size_t big = (size_t)1 << 20;
    char *huge = malloc(big + 128);
    REQUIRE(huge);
    int at = snprintf(huge, 128, "{\"v\":1,\"type\":\"send\",\"id\":\"big\",\"text\":\"");
    memset(huge + at, 'x', big - (size_t)at - 2);
    memcpy(huge + big - 2, "\"}", 3);
    int before_busy = count_to((uintptr_t)bob, "error");
    size_t n_big = DX__CHAT_QUEUE_MAX / big + 4;
    for (size_t i = 0; i < n_big; i++)
        dx__chat_message(c, bob, huge, big, 0);
    free(huge);
    int refused = 0;
    for (int i = 0; i < nouts; i++)
        refused += outs[i].to == bob && strstr(outs[i].data, "\"store_failed\"") &&
                   strstr(outs[i].data, "\"id\":\"big\"");
    CHECK(refused >= 4 && refused <= 5);
    CHECK(count_to((uintptr_t)bob, "error") - before_busy == refused); /* at once */
    gate(0);
    CHECK(pump(NULL, 300));

    dx_chat_stats s = {.size = sizeof s};
    dx__chat_stats_get(c, &s);
    CHECK(s.acks >= 2);
    CHECK(s.sends >= 2);
    CHECK_EQ_INT((int)s.devices, 1);

    dev_close(c, bob);
    dx__chat_free(c);
    free(bob);
    reset_outs();
    dx_loop_free(loop);
}

static void test_thread_batches(void) {
    run_thread(0);
}

static void test_thread_per_job(void) {
    run_thread(1);
}

int main(void) {
    RUN(test_thread_batches);
    RUN(test_thread_per_job);
    return TEST_DONE();
}

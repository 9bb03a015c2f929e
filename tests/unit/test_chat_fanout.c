/* The engine's fan-out limits (issue 16, items 4 and 8): typing is pushed
 * once per user and conversation per interval and never to the sender's
 * own devices; read receipts once per turn with the highest seq, and not
 * again when the position did not move; presence settled once per turn;
 * typing and presence go through the best-effort delivery. And the bounded
 * table behind them (keytab.h). Drives the engine directly over a real
 * SQLite file, with a recording dx__chat_io. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "chat/engine.h"
#include "chat/keytab.h"
#include "test.h"

#define MAX_DEVS 512

typedef struct dev_rec {
    dx__chat_dev d;
    int typing, reads, presence, deliver, best; /* pushes received, by type */
    int members;                                /* `members` pushes */
    int64_t members_count;                      /* the count a members push or a sync gave */
    int64_t last_read;
} dev_rec;

static dev_rec devs[MAX_DEVS];
static int ndevs;
static int64_t clock_ms = 1700000000000;

static int calls; /* sends and deliveries to a user, whether online or not */

static void count(dx__chat_dev *d, const char *data, size_t len, int best) {
    dev_rec *r = (dev_rec *)d;
    json_t *j = json_loadb(data, len, 0, NULL);
    const char *t = json_string_value(json_object_get(j, "type"));
    if (t && !strcmp(t, "members")) {
        r->members++;
        r->members_count = json_integer_value(json_object_get(j, "count"));
    }
    if (t && !strcmp(t, "sync")) {
        json_t *conv = json_array_get(json_object_get(j, "convs"), 0);
        r->members_count = json_integer_value(json_object_get(conv, "members_count"));
    }
    if (t && !strcmp(t, "typing")) r->typing++;
    if (t && !strcmp(t, "read") && !json_object_get(j, "id")) {
        r->reads++;
        r->last_read = json_integer_value(json_object_get(j, "seq"));
    }
    if (t && !strcmp(t, "presence") && !json_object_get(j, "id")) r->presence++;
    if (t && !strcmp(t, "deliver")) r->deliver++;
    r->best += best;
    json_decref(j);
}

static void io_send(void *arg, dx__chat_dev *d, const char *data, size_t len) {
    calls++;
    count(d, data, len, 0);
}

static void to_uid(const char *uid, const char *data, size_t len, const dx__chat_dev *except,
                   int best) {
    calls++;
    for (int i = 0; i < ndevs; i++)
        if (devs[i].d.handle && &devs[i].d != except && !strcmp(devs[i].d.uid, uid))
            count(&devs[i].d, data, len, best);
}

static void io_deliver(void *arg, const char *uid, const char *data, size_t len,
                       const dx__chat_dev *except) {
    to_uid(uid, data, len, except, 0);
}

static void io_deliver_best(void *arg, const char *uid, const char *data, size_t len,
                            const dx__chat_dev *except) {
    to_uid(uid, data, len, except, 1);
}

static void io_schedule(void *arg) {}

static int64_t io_now(void *arg) {
    return clock_ms;
}

static char db_path[64];

static dx__chat *engine(void) {
    snprintf(db_path, sizeof db_path, "/tmp/dx-fanout-%d.db", (int)getpid());
    unlink(db_path);
    const char *why = NULL;
    dx__chat_store *st = dx__chat_store_sqlite(db_path, &why);
    if (!st) return NULL;
    dx__chat_io io = {.send = io_send,
                      .deliver = io_deliver,
                      .schedule = io_schedule,
                      .now_ms = io_now,
                      .deliver_best = io_deliver_best};
    memset(devs, 0, sizeof devs);
    ndevs = 0;
    return dx__chat_new(&io, st, "lobby", &why);
}

static void done(dx__chat *c) {
    dx__chat_free(c);
    dx_t_remove_db(db_path);
}

static dev_rec *open_dev(dx__chat *c, const char *uid) {
    dev_rec *r = &devs[ndevs++];
    snprintf(r->d.uid, sizeof r->d.uid, "%s", uid);
    r->d.handle = r;
    dx__chat_open(c, &r->d);
    return r;
}

static void close_dev(dx__chat *c, dev_rec *r) {
    dx__chat_close(c, &r->d);
    r->d.handle = NULL;
}

static void zero_counts(void) {
    for (int i = 0; i < ndevs; i++) {
        devs[i].typing = devs[i].reads = devs[i].presence = devs[i].deliver = devs[i].best = 0;
        devs[i].members = 0;
    }
}

static void req(dx__chat *c, dev_rec *r, const char *json) {
    dx__chat_message(c, &r->d, json, strlen(json), 0);
}

/* A room of `n` members (m000...), everyone in the lobby; alice has two
 * devices. Flushed, counters zeroed. */
static dev_rec *room(dx__chat *c, int n, dev_rec **alice2) {
    dev_rec *alice = open_dev(c, "alice");
    *alice2 = open_dev(c, "alice");
    char uid[16];
    for (int i = 0; i < n; i++) {
        snprintf(uid, sizeof uid, "m%03d", i);
        open_dev(c, uid);
    }
    (void)dx__chat_flush(c);
    zero_counts();
    return alice;
}

/* Typing in a 200-member room, flooded: each other member gets one push
 * per interval, the sender's devices none, and the pushes are best-effort. */
static void test_typing(void) {
    dx__chat *c = engine();
    REQUIRE(c);
    dev_rec *a2, *a = room(c, 200, &a2);
    for (int i = 0; i < 1000; i++)
        req(c, a, "{\"v\":1,\"type\":\"typing\",\"conv\":\"g:lobby\"}");
    (void)dx__chat_flush(c);
    for (int i = 2; i < ndevs; i++)
        CHECK_EQ_INT(devs[i].typing, 1);
    CHECK_EQ_INT(devs[2].best, 1);
    CHECK_EQ_INT(a->typing, 0);  /* never its own, */
    CHECK_EQ_INT(a2->typing, 0); /* on any of its devices */
    /* Within the interval: absorbed. After it: one more. */
    clock_ms += DX_CHAT_TYPING_INTERVAL_MS - 1;
    req(c, a, "{\"v\":1,\"type\":\"typing\",\"conv\":\"g:lobby\"}");
    CHECK_EQ_INT(devs[2].typing, 1);
    clock_ms += 1;
    req(c, a, "{\"v\":1,\"type\":\"typing\",\"conv\":\"g:lobby\"}");
    req(c, a, "{\"v\":1,\"type\":\"typing\",\"conv\":\"g:lobby\"}");
    CHECK_EQ_INT(devs[2].typing, 2);
    CHECK_EQ_INT(devs[ndevs - 1].typing, 2);
    /* Coalesced per (user, conversation): another user, another one. */
    req(c, &devs[2], "{\"v\":1,\"type\":\"typing\",\"conv\":\"g:lobby\"}");
    CHECK_EQ_INT(a->typing, 1);
    CHECK_EQ_INT(devs[2].typing, 2);
    /* A direct conversation: the other side only, once. */
    req(c, a, "{\"v\":1,\"type\":\"typing\",\"conv\":\"d:alice:m007\"}");
    req(c, a, "{\"v\":1,\"type\":\"typing\",\"conv\":\"d:alice:m007\"}");
    CHECK_EQ_INT(devs[9].typing, 4); /* m007: alice twice and m000 in the room, then this */
    CHECK_EQ_INT(devs[8].typing, 3);
    CHECK_EQ_INT(a->typing + a2->typing, 2);
    done(c);
}

/* Reads: one receipt per reader and conversation per turn, with the
 * highest seq; none when the position did not move; the read itself is
 * answered every time. */
static void test_read(void) {
    dx__chat *c = engine();
    REQUIRE(c);
    dev_rec *a2, *a = room(c, 200, &a2);
    char buf[160];
    for (int i = 1; i <= 10; i++) {
        snprintf(buf, sizeof buf,
                 "{\"v\":1,\"type\":\"send\",\"conv\":\"g:lobby\",\"cid\":\"c%d\",\"text\":\"x\"}",
                 i);
        req(c, a, buf);
    }
    (void)dx__chat_flush(c);
    CHECK_EQ_INT(devs[2].deliver, 10);
    zero_counts();
    dev_rec *b = &devs[2];
    for (int i = 0; i < 500; i++) {
        snprintf(buf, sizeof buf,
                 "{\"v\":1,\"type\":\"read\",\"id\":%d,\"conv\":\"g:lobby\",\"seq\":%d}", i,
                 1 + i % 10);
        req(c, b, buf);
    }
    (void)dx__chat_flush(c);
    for (int i = 0; i < ndevs; i++) {
        CHECK_EQ_INT(devs[i].reads, 1);
        CHECK_EQ_INT((int)devs[i].last_read, 10);
    }
    /* The next turns: the same position again, nothing; a new one, one.
     * (The clock moves so that no per-user request limit is what stops
     * them.) */
    zero_counts();
    for (int t = 0; t < 5; t++) {
        clock_ms += 10000;
        req(c, b, "{\"v\":1,\"type\":\"read\",\"conv\":\"g:lobby\",\"seq\":10}");
        (void)dx__chat_flush(c);
    }
    CHECK_EQ_INT(b->reads, 0);
    CHECK_EQ_INT(a->reads, 0);
    req(c, a, "{\"v\":1,\"type\":\"send\",\"conv\":\"g:lobby\",\"cid\":\"c11\",\"text\":\"x\"}");
    (void)dx__chat_flush(c);
    clock_ms += 10000;
    req(c, b, "{\"v\":1,\"type\":\"read\",\"conv\":\"g:lobby\",\"seq\":11}");
    (void)dx__chat_flush(c);
    CHECK_EQ_INT(a->reads, 1);
    CHECK_EQ_INT((int)a->last_read, 11);
    CHECK_EQ_INT(b->reads, 1); /* the reader's devices too */
    done(c);
}

/* Presence: pushed to contacts only (a direct conversation or a private
 * group, not a room); a user whose only device leaves and comes back in
 * one turn is no news; coming online or going offline across turns is,
 * best-effort. */
static void test_presence(void) {
    dx__chat *c = engine();
    REQUIRE(c);
    dev_rec *a2, *a = room(c, 20, &a2);
    dev_rec *z = open_dev(c, "zed");
    /* zed shares the lobby with everyone, and a direct conversation with
     * alice, m001 and m003 (devs[3] and devs[5]). */
    req(c, z, "{\"v\":1,\"type\":\"send\",\"conv\":\"d:alice:zed\",\"cid\":\"z1\",\"text\":\"x\"}");
    req(c, z, "{\"v\":1,\"type\":\"send\",\"conv\":\"d:m001:zed\",\"cid\":\"z2\",\"text\":\"x\"}");
    req(c, z, "{\"v\":1,\"type\":\"send\",\"conv\":\"d:m003:zed\",\"cid\":\"z3\",\"text\":\"x\"}");
    (void)dx__chat_flush(c);
    zero_counts();
    close_dev(c, z);
    clock_ms += 1000;
    (void)dx__chat_flush(c);
    CHECK_EQ_INT(a->presence, 1);
    CHECK_EQ_INT(a->best, 1);
    CHECK_EQ_INT(a2->presence, 1);
    CHECK_EQ_INT(devs[3].presence, 1);
    CHECK_EQ_INT(devs[5].presence, 1);
    int others = 0;
    for (int i = 0; i < ndevs; i++)
        if (i > 1 && i != 3 && i != 5) others += devs[i].presence;
    CHECK_EQ_INT(others, 0); /* the lobby alone made nobody a contact */
    z = open_dev(c, "zed");
    (void)dx__chat_flush(c);
    CHECK_EQ_INT(a->presence, 2);
    zero_counts();
    for (int i = 0; i < 10; i++) {
        close_dev(c, z);
        z = open_dev(c, "zed");
    }
    (void)dx__chat_flush(c);
    CHECK_EQ_INT(a->presence, 0);
    CHECK_EQ_INT(devs[3].presence, 0);
    close_dev(c, z);
    clock_ms += 1000;
    (void)dx__chat_flush(c);
    CHECK_EQ_INT(a->presence, 1);
    CHECK_EQ_INT(devs[5].presence, 1);
    /* Back in the next turn: news again. */
    z = open_dev(c, "zed");
    (void)dx__chat_flush(c);
    CHECK_EQ_INT(a->presence, 2);
    done(c);
}

/* An arrival in a room of 5,000 members costs O(1) messages, not 5,000:
 * the newcomer gets its welcome and the room's count, and the members,
 * 200 of them online here, get nothing (they see the count at their next
 * sync, where it is remembered rather than counted once per member). */
static void test_arrival_large_room(void) {
    dx__chat *c = engine();
    REQUIRE(c);
    dx__chat_free(c); /* the file, with its schema; members put in directly */
    const char *why = NULL;
    dx__chat_store *st = dx__chat_store_sqlite(db_path, &why);
    REQUIRE(st);
    REQUIRE(st->ops->begin(st) == 0);
    char uid[16];
    for (int i = 0; i < 5000; i++) {
        snprintf(uid, sizeof uid, "m%04d", i);
        REQUIRE(st->ops->join(st, "g:lobby", uid) == 1);
    }
    REQUIRE(st->ops->commit(st) == 0);
    dx__chat_io io = {.send = io_send,
                      .deliver = io_deliver,
                      .schedule = io_schedule,
                      .now_ms = io_now,
                      .deliver_best = io_deliver_best};
    c = dx__chat_new(&io, st, "lobby", &why);
    REQUIRE(c);
    for (int i = 0; i < 200; i++) {
        snprintf(uid, sizeof uid, "m%04d", i);
        open_dev(c, uid);
    }
    (void)dx__chat_flush(c);
    zero_counts();
    calls = 0;
    dev_rec *n = open_dev(c, "newbie");
    (void)dx__chat_flush(c);
    CHECK(calls <= 2); /* its welcome, and the count to its user */
    CHECK_EQ_INT(n->members, 1);
    CHECK_EQ_INT((int)n->members_count, 5001);
    int others = 0;
    for (int i = 0; i < ndevs - 1; i++)
        others += devs[i].members + devs[i].presence;
    CHECK_EQ_INT(others, 0);
    /* A burst of 100 arrivals in one turn: still one push each. */
    calls = 0;
    for (int i = 0; i < 100; i++) {
        snprintf(uid, sizeof uid, "new%03d", i);
        open_dev(c, uid);
    }
    (void)dx__chat_flush(c);
    CHECK(calls <= 200);
    CHECK_EQ_INT((int)devs[ndevs - 1].members_count, 5101);
    /* A member's sync says how many: members_count, no list. */
    calls = 0;
    req(c, &devs[0], "{\"v\":1,\"type\":\"sync\",\"id\":1}");
    CHECK_EQ_INT(calls, 1);
    CHECK_EQ_INT((int)devs[0].members_count, 5101);
    done(c);
}

/* The table: bounded, expired entries reclaimed, a token bucket. */
static void test_keytab(void) {
    dx__keytab t;
    dx__keytab_init(&t, 100);
    int64_t now = 1000;
    char key[16];
    int fresh;
    for (int i = 0; i < 100; i++) {
        int n = snprintf(key, sizeof key, "k%d", i);
        dx__keyent *e = dx__keytab_get(&t, key, (size_t)n, now, 1, &fresh);
        REQUIRE(e);
        CHECK_EQ_INT(fresh, 1);
        e->until = now + 10;
    }
    CHECK(t.cap <= 256);
    CHECK(dx__keytab_get(&t, "k7", 2, now, 0, NULL) != NULL);
    CHECK(dx__keytab_get(&t, "new", 3, now, 1, &fresh) == NULL);         /* full of live ones */
    CHECK(dx__keytab_get(&t, "new", 3, now + 500, 1, &fresh) == NULL);   /* no retry for 1 s */
    dx__keyent *e = dx__keytab_get(&t, "new", 3, now + 1000, 1, &fresh); /* all expired */
    REQUIRE(e);
    CHECK_EQ_INT(fresh, 1);
    CHECK_EQ_INT((int)t.used, 1);
    CHECK(dx__keytab_get(&t, "k7", 2, now + 1000, 0, NULL) == NULL);
    CHECK(dx__keytab_get(&t, "", 0, now, 1, NULL) == NULL);
    char big[DX_KEYTAB_KEY_MAX + 1];
    memset(big, 'x', sizeof big);
    CHECK(dx__keytab_get(&t, big, sizeof big, now, 1, NULL) == NULL);
    /* A bucket of 3, one back every 100 ms (100000 µs). */
    e = dx__keytab_get(&t, "b", 1, now, 1, &fresh);
    REQUIRE(e);
    CHECK_EQ_INT((int)dx__keytab_take(e, now, 1, 3, 100000), 0);
    CHECK_EQ_INT((int)dx__keytab_take(e, now, 1, 3, 100000), 0);
    CHECK_EQ_INT((int)dx__keytab_take(e, now, 1, 3, 100000), 0);
    CHECK_EQ_INT((int)dx__keytab_take(e, now + 40, 1, 3, 100000), 60);
    CHECK_EQ_INT((int)dx__keytab_take(e, now + 100, 1, 3, 100000), 0);
    CHECK_EQ_INT((int)dx__keytab_take(e, now + 150, 1, 3, 100000), 50);
    CHECK(e->until == now + 400); /* full again: 4 taken since now, 100 ms each */
    dx__keytab_clear(&t);
    CHECK(dx__keytab_get(&t, "b", 1, now, 0, NULL) == NULL);
    dx__keytab_free(&t);
}

int main(void) {
    RUN(test_typing);
    RUN(test_read);
    RUN(test_presence);
    RUN(test_arrival_large_room);
    RUN(test_keytab);
    return TEST_DONE();
}

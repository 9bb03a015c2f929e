/* The chat's limits (issue 16, items 3 and 7), through the engine over a
 * real SQLite store: per-user token buckets for send (with its bytes),
 * join, read, typing, presence and sync/history that hold across a user's
 * devices and across a reconnection, refused requests that store nothing
 * and say how long to wait; the cap on rooms per user; sync answered in
 * pages. Then the token table itself (limits.h) and the store's paging. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <duplex/common.h>

#include "chat/engine.h"
#include "chat/limits.h"
#include "chat_test.h"
#include "test.h"

/* An engine with the limits `l` (NULL: the defaults). */
static dx__chat *engine(const dx_chat_limits *l) {
    dx__chat *c = test_engine(NULL);
    if (c && l && dx__chat_set_limits(c, l) < 0) {
        dx__chat_free(c);
        return NULL;
    }
    return c;
}

/* Skips messages of other types (presence, deliver...) until one of `type`
 * or an error. */
static json_t *next_reply(dx__chat_dev *d) {
    json_t *j;
    while ((j = next(d))) {
        const char *t = json_string_value(json_object_get(j, "type"));
        if (t && (strcmp(t, "presence") || json_object_get(j, "id")) && strcmp(t, "deliver") &&
            strcmp(t, "read") && strcmp(t, "typing") && strcmp(t, "welcome") &&
            strcmp(t, "members"))
            return j;
        json_decref(j);
    }
    return NULL;
}

/* Counts the replies of `d` by kind: acks/oks/other replies, and errors
 * with code `code` (their last retry_after and limit kept). */
typedef struct tally {
    int ok, refused, other;
    long long retry_after;
    char limit[16];
} tally;

static tally count(dx__chat_dev *d, const char *code) {
    tally t = {0};
    json_t *j;
    while ((j = next_reply(d))) {
        if (!strcmp(str(j, "type"), "error")) {
            if (!strcmp(str(j, "code"), code)) {
                t.refused++;
                t.retry_after = num(j, "retry_after");
                snprintf(t.limit, sizeof t.limit, "%s", str(j, "limit"));
            } else {
                t.other++;
            }
        } else {
            t.ok++;
        }
        json_decref(j);
    }
    return t;
}

/* The last seq of `conv` as alice's sync sees it (-1 when absent). */
static long long last_seq(dx__chat *c, dx__chat_dev *d, const char *conv) {
    req(c, d, "{\"v\":1,\"type\":\"sync\",\"id\":\"ls\"}");
    json_t *s = next_reply(d);
    long long seq = -1;
    json_t *o;
    size_t i;
    json_array_foreach(json_object_get(s, "convs"), i, o) {
        if (!strcmp(str(o, "conv"), conv)) seq = num(o, "last_seq");
    }
    json_decref(s);
    return seq;
}

static void send_n(dx__chat *c, dx__chat_dev *d, const char *conv, int from, int n, size_t len) {
    static char buf[8192];
    for (int i = from; i < from + n; i++) {
        int k = snprintf(buf, sizeof buf,
                         "{\"v\":1,\"type\":\"send\",\"id\":%d,\"conv\":\"%s\",\"cid\":\"c%d\","
                         "\"text\":\"",
                         i, conv, i);
        memset(buf + k, 'x', len);
        strcpy(buf + k + len, "\"}");
        req(c, d, buf);
    }
    (void)dx__chat_flush(c);
}

/* The flood: a script sends as fast as it can. The first 100 pass
 * (the burst), the rest are refused with rate_limited, retry_after and
 * the limit's name, and are not stored; the user's second device shares
 * the bucket, another user does not; after retry_after one more passes. */
static void test_send_rate(void) {
    dx__chat *c = engine(NULL);
    REQUIRE(c);
    dx__chat_dev a1, a2, b;
    dev_open(c, &a1, "alice");
    dev_open(c, &a2, "alice");
    dev_open(c, &b, "bob");
    (void)dx__chat_flush(c);
    drain(&a1), drain(&a2), drain(&b);

    send_n(c, &a1, "g:lobby", 1, 1000, 10);
    tally t = count(&a1, "rate_limited");
    CHECK_EQ_INT(t.ok, 100);
    CHECK_EQ_INT(t.refused, 900);
    CHECK_EQ_INT(t.other, 0);
    CHECK(!strcmp(t.limit, "send"));
    CHECK(t.retry_after >= 1 && t.retry_after <= 50); /* one token at 20/s */
    CHECK_EQ_INT(last_seq(c, &b, "g:lobby"), 100);    /* nothing else stored */

    /* The other device of alice: same bucket. bob: his own. */
    send_n(c, &a2, "g:lobby", 2000, 1, 10);
    t = count(&a2, "rate_limited");
    CHECK_EQ_INT(t.refused, 1);
    send_n(c, &b, "g:lobby", 3000, 1, 10);
    t = count(&b, "rate_limited");
    CHECK_EQ_INT(t.ok, 1);

    /* Closing every device and coming back gives nothing back. */
    dev_close(c, &a1), dev_close(c, &a2);
    dev_open(c, &a1, "alice");
    drain(&a1);
    send_n(c, &a1, "g:lobby", 4000, 1, 10);
    t = count(&a1, "rate_limited");
    CHECK_EQ_INT(t.refused, 1);

    /* Waiting what it said is enough for one, and the rate holds: 20/s. */
    clock_ms += 50;
    send_n(c, &a1, "g:lobby", 5000, 2, 10);
    t = count(&a1, "rate_limited");
    CHECK_EQ_INT(t.ok, 1);
    CHECK_EQ_INT(t.refused, 1);
    clock_ms += 10000; /* full again: 100 */
    send_n(c, &a1, "g:lobby", 6000, 101, 10);
    t = count(&a1, "rate_limited");
    CHECK_EQ_INT(t.ok, 100);
    CHECK_EQ_INT(t.refused, 1);
    dev_close(c, &a1), dev_close(c, &b);
    dx__chat_free(c);
    reset_outs();
}

/* Storage: 4000-byte messages run out of the bytes bucket (256 KiB) long
 * before the send bucket: 65 stored, then rate_limited with limit
 * "bytes" and a wait of about 4000 / 1024 s at most. */
static void test_bytes_rate(void) {
    dx__chat *c = engine(NULL);
    REQUIRE(c);
    dx__chat_dev a;
    dev_ready(c, &a, "alice");
    send_n(c, &a, "d:alice:bob", 1, 80, 4000);
    tally t = count(&a, "rate_limited");
    CHECK_EQ_INT(t.ok, 65); /* 65 * 4000 <= 262144 < 66 * 4000 */
    CHECK_EQ_INT(t.refused, 15);
    CHECK(!strcmp(t.limit, "bytes"));
    CHECK(t.retry_after > 0 && t.retry_after <= 4000);
    CHECK_EQ_INT(last_seq(c, &a, "d:alice:bob"), 65);
    /* Small messages still pass once the wait is over. */
    clock_ms += t.retry_after;
    send_n(c, &a, "d:alice:bob", 100, 1, 4000);
    t = count(&a, "rate_limited");
    CHECK_EQ_INT(t.ok, 1);
    dev_close(c, &a);
    dx__chat_free(c);
    reset_outs();
}

/* Each other request type has its bucket: the burst passes, the next is
 * refused and names it. Typing, which has no reply, gets the error. */
static void test_other_rates(void) {
    static const struct {
        const char *json, *limit;
        int burst;
    } K[] = {
        {"{\"v\":1,\"type\":\"join\",\"id\":1,\"conv\":\"g:r\"}", "join", 20},
        {"{\"v\":1,\"type\":\"read\",\"id\":1,\"conv\":\"g:lobby\",\"seq\":0}", "read", 100},
        {"{\"v\":1,\"type\":\"typing\",\"conv\":\"g:lobby\"}", "typing", 20},
        {"{\"v\":1,\"type\":\"presence\",\"id\":1,\"uids\":[\"bob\"]}", "presence", 20},
        {"{\"v\":1,\"type\":\"sync\",\"id\":1}", "fetch", 40},
        {"{\"v\":1,\"type\":\"history\",\"id\":1,\"conv\":\"g:lobby\"}", "fetch", 40},
    };
    for (size_t k = 0; k < sizeof K / sizeof K[0]; k++) {
        dx__chat *c = engine(NULL);
        REQUIRE(c);
        dx__chat_dev a;
        dev_ready(c, &a, "alice");
        for (int i = 0; i < K[k].burst + 5; i++)
            req(c, &a, K[k].json);
        (void)dx__chat_flush(c);
        tally t = count(&a, "rate_limited");
        if (strcmp(K[k].limit, "typing")) CHECK_EQ_INT(t.ok, K[k].burst);
        CHECK_EQ_INT(t.refused, 5);
        CHECK_EQ_INT(t.other, 0);
        CHECK(!strcmp(t.limit, K[k].limit));
        CHECK(t.retry_after >= 1 && t.retry_after <= 1000);
        dev_close(c, &a);
        dx__chat_free(c);
    }
    reset_outs();
}

/* Limits are configurable: a rate of DX_CHAT_UNLIMITED turns one off,
 * and a small one applies. */
static void test_configured(void) {
    dx_chat_limits l = {.send = {DX_CHAT_UNLIMITED, 0}, .join = {1, 2}};
    dx__chat *c = engine(&l);
    REQUIRE(c);
    dx__chat_dev a;
    dev_ready(c, &a, "alice");
    send_n(c, &a, "d:alice:bob", 1, 300, 1); /* 300 bytes: the bytes bucket holds */
    tally t = count(&a, "rate_limited");
    CHECK_EQ_INT(t.ok, 300);
    for (int i = 0; i < 3; i++)
        req(c, &a, "{\"v\":1,\"type\":\"join\",\"id\":1,\"conv\":\"g:r\"}");
    (void)dx__chat_flush(c);
    t = count(&a, "rate_limited");
    CHECK_EQ_INT(t.ok, 2);
    CHECK_EQ_INT(t.refused, 1);
    CHECK(t.retry_after > 500 && t.retry_after <= 1000);
    dev_close(c, &a);
    dx__chat_free(c);
    reset_outs();
}

/* Item 7: rooms per user are capped (1000 by default, the lobby counting
 * but always joined); the join past it is refused and stores nothing, and
 * a room already held can still be joined again. */
static void test_rooms_cap(void) {
    dx_chat_limits l = {.join = {DX_CHAT_UNLIMITED, 0}, .fetch = {DX_CHAT_UNLIMITED, 0}};
    dx__chat *c = engine(&l);
    REQUIRE(c);
    dx__chat_dev a;
    dev_ready(c, &a, "alice");
    char buf[128];
    for (int i = 1; i <= 1005; i++) {
        snprintf(buf, sizeof buf, "{\"v\":1,\"type\":\"join\",\"id\":%d,\"conv\":\"g:r%d\"}", i, i);
        req(c, &a, buf);
        if (i % 50 == 0) (void)dx__chat_flush(c);
    }
    (void)dx__chat_flush(c);
    tally t = count(&a, "too_many_rooms");
    CHECK_EQ_INT(t.ok, 999); /* + the lobby = 1000 */
    CHECK_EQ_INT(t.refused, 6);
    CHECK_EQ_INT(t.other, 0);
    req(c, &a, "{\"v\":1,\"type\":\"join\",\"id\":1,\"conv\":\"g:r5\"}");
    (void)dx__chat_flush(c);
    t = count(&a, "too_many_rooms");
    CHECK_EQ_INT(t.ok, 1);
    /* g:r1000 was refused: sending there is not_member. */
    req(c, &a,
        "{\"v\":1,\"type\":\"send\",\"id\":1,\"conv\":\"g:r1000\",\"cid\":\"z\",\"text\":\"z\"}");
    (void)dx__chat_flush(c);
    t = count(&a, "not_member");
    CHECK_EQ_INT(t.refused, 1);
    dev_close(c, &a);
    dx__chat_free(c);

    /* A configured cap, and none at all. */
    l.max_rooms = 3;
    c = engine(&l);
    REQUIRE(c);
    dev_ready(c, &a, "alice");
    for (int i = 1; i <= 4; i++) {
        snprintf(buf, sizeof buf, "{\"v\":1,\"type\":\"join\",\"id\":%d,\"conv\":\"g:r%d\"}", i, i);
        req(c, &a, buf);
    }
    (void)dx__chat_flush(c);
    t = count(&a, "too_many_rooms");
    CHECK_EQ_INT(t.ok, 2);
    CHECK_EQ_INT(t.refused, 2);
    dev_close(c, &a);
    dx__chat_free(c);
    reset_outs();
}

/* Item 7: a user in many conversations gets sync in pages of 200 (by
 * default): each reply names the `next` cursor, the client asks again with
 * "after", and the pages together hold every conversation exactly once,
 * in order; presence comes with the first page. A small sync is as it
 * always was: no `next`. */
static void test_sync_pages(void) {
    dx_chat_limits l = {.join = {DX_CHAT_UNLIMITED, 0},
                        .fetch = {DX_CHAT_UNLIMITED, 0},
                        .max_rooms = DX_CHAT_UNLIMITED};
    dx__chat *c = engine(&l);
    REQUIRE(c);
    dx__chat_dev a, b;
    dev_open(c, &a, "alice");
    dev_open(c, &b, "bob");
    (void)dx__chat_flush(c);
    drain(&a), drain(&b);

    req(c, &a, "{\"v\":1,\"type\":\"sync\",\"id\":0}");
    json_t *s = next_reply(&a);
    REQUIRE(s);
    CHECK_EQ_INT(json_array_size(json_object_get(s, "convs")), 1);
    CHECK(json_object_get(s, "next") == NULL);
    json_decref(s);

    char buf[160];
    for (int i = 0; i < 1099; i++) {
        snprintf(buf, sizeof buf, "{\"v\":1,\"type\":\"join\",\"conv\":\"g:room%04d\"}", i);
        req(c, &a, buf);
    }
    /* And a direct conversation with bob, who is then a contact. */
    req(c, &a,
        "{\"v\":1,\"type\":\"send\",\"conv\":\"d:alice:bob\",\"cid\":\"c1\",\"text\":\"hi\"}");
    (void)dx__chat_flush(c);
    drain(&a);

    char after[100] = "";
    int pages = 0, total = 0, ordered = 1;
    char prev[100] = "";
    for (;;) {
        if (after[0])
            snprintf(buf, sizeof buf, "{\"v\":1,\"type\":\"sync\",\"id\":%d,\"after\":\"%s\"}",
                     pages, after);
        else
            snprintf(buf, sizeof buf, "{\"v\":1,\"type\":\"sync\",\"id\":%d}", pages);
        req(c, &a, buf);
        REQUIRE(nouts > 0);
        CHECK(strlen(outs[nouts - 1].data) < 300 * 1024);
        s = next_reply(&a);
        REQUIRE(s);
        REQUIRE(!strcmp(str(s, "type"), "sync"));
        json_t *convs = json_object_get(s, "convs"), *o;
        size_t i;
        CHECK(json_array_size(convs) <= 200);
        json_array_foreach(convs, i, o) {
            if (strcmp(prev, str(o, "conv")) >= 0) ordered = 0;
            snprintf(prev, sizeof prev, "%s", str(o, "conv"));
            total++;
        }
        /* Presence once, with the first page (bob, a contact). */
        CHECK_EQ_INT(json_array_size(json_object_get(s, "presence")), pages == 0 ? 1 : 0);
        pages++;
        const char *nx = json_string_value(json_object_get(s, "next"));
        if (nx) {
            CHECK(!strcmp(nx, prev));
            snprintf(after, sizeof after, "%s", nx);
        }
        json_decref(s);
        if (!nx || pages > 20) break;
    }
    CHECK_EQ_INT(total, 1101);
    CHECK_EQ_INT(pages, 6);
    CHECK(ordered);

    /* A bad cursor is a bad_field. */
    req(c, &a, "{\"v\":1,\"type\":\"sync\",\"id\":1,\"after\":7}");
    tally t = count(&a, "bad_field");
    CHECK_EQ_INT(t.refused, 1);
    dev_close(c, &a), dev_close(c, &b);
    dx__chat_free(c);

    /* The page is configurable, and can be turned off. */
    l.sync_page = DX_CHAT_UNLIMITED;
    c = engine(&l);
    REQUIRE(c);
    dev_open(c, &a, "alice");
    for (int i = 0; i < 300; i++) {
        snprintf(buf, sizeof buf, "{\"v\":1,\"type\":\"join\",\"conv\":\"g:room%04d\"}", i);
        req(c, &a, buf);
    }
    (void)dx__chat_flush(c);
    drain(&a);
    req(c, &a, "{\"v\":1,\"type\":\"sync\",\"id\":1}");
    s = next_reply(&a);
    REQUIRE(s);
    CHECK_EQ_INT(json_array_size(json_object_get(s, "convs")), 301);
    CHECK(json_object_get(s, "next") == NULL);
    json_decref(s);
    dev_close(c, &a);
    dx__chat_free(c);
    reset_outs();
}

/* The token table keeps only buckets that are not full: 5000 users asking
 * once, then a quiet while, leave a small table behind. It holds at most
 * DX__CHAT_LIMITER_MAX buckets; full of live ones, it refuses users not in
 * it for a second and still serves those in it. */
static void test_table_bounded(void) {
    dx_chat_limits l;
    dx__chat_limits_resolve(NULL, &l);
    dx__chat_limiter *lim = dx__chat_limiter_new(&l);
    REQUIRE(lim);
    int64_t now = 1000000;
    char uid[16];
    for (int i = 0; i < 5000; i++) {
        snprintf(uid, sizeof uid, "u%d", i);
        CHECK_EQ_INT(
            dx__chat_limiter_take(lim, uid, now, DX__CHAT_SEND, 1, DX__CHAT_BYTES, 100, NULL), 0);
    }
    CHECK(dx__chat_limiter_size(lim) == 10000); /* one per user and kind: send, bytes */
    /* The bytes bucket refills 100 bytes in 0.1 s: everyone is full again,
     * and the next rebuild (new users fill the table) drops them. */
    now += 1000;
    for (int i = 0; i < 8000; i++) {
        snprintf(uid, sizeof uid, "v%d", i);
        CHECK_EQ_INT(dx__chat_limiter_take(lim, uid, now, DX__CHAT_JOIN, 1, DX__CHAT_NONE, 0, NULL),
                     0);
    }
    CHECK(dx__chat_limiter_size(lim) <= 8000); /* not 18000 */
    /* A user that is still limited is kept through the rebuilds. */
    int which = -1;
    for (int i = 0; i < 21; i++)
        (void)dx__chat_limiter_take(lim, "busy", now, DX__CHAT_JOIN, 1, DX__CHAT_NONE, 0, &which);
    for (int i = 0; i < 3000; i++) {
        snprintf(uid, sizeof uid, "w%d", i);
        (void)dx__chat_limiter_take(lim, uid, now, DX__CHAT_READ, 1, DX__CHAT_NONE, 0, NULL);
    }
    CHECK(dx__chat_limiter_take(lim, "busy", now, DX__CHAT_JOIN, 1, DX__CHAT_NONE, 0, &which) > 0);
    CHECK_EQ_INT(which, DX__CHAT_JOIN);
    /* A clock that jumps back does not lock anyone out for long. */
    CHECK(dx__chat_limiter_take(lim, "busy", now - 3600000, DX__CHAT_JOIN, 1, DX__CHAT_NONE, 0,
                                NULL) <= 4000);
    /* Full: everyone above has been full again for a while; x0.. fill it. */
    now += 10000;
    for (int i = 0; i < DX__CHAT_LIMITER_MAX; i++) {
        snprintf(uid, sizeof uid, "x%d", i);
        CHECK_EQ_INT(dx__chat_limiter_take(lim, uid, now, DX__CHAT_JOIN, 1, DX__CHAT_NONE, 0, NULL),
                     0);
    }
    CHECK(dx__chat_limiter_size(lim) == DX__CHAT_LIMITER_MAX);
    which = -1;
    CHECK_EQ_INT(
        dx__chat_limiter_take(lim, "late", now, DX__CHAT_SEND, 1, DX__CHAT_BYTES, 10, &which),
        1000);
    CHECK_EQ_INT(which, DX__CHAT_SEND);
    CHECK_EQ_INT(dx__chat_limiter_take(lim, "x7", now, DX__CHAT_JOIN, 1, DX__CHAT_NONE, 0, NULL),
                 0);
    CHECK(dx__chat_limiter_size(lim) == DX__CHAT_LIMITER_MAX);
    /* A second later the joins are back (0.2 s each) and room is made. */
    CHECK_EQ_INT(
        dx__chat_limiter_take(lim, "late", now + 1000, DX__CHAT_SEND, 1, DX__CHAT_BYTES, 10, NULL),
        0);
    CHECK(dx__chat_limiter_size(lim) <= 3);
    dx__chat_limiter_free(lim);
}

/* The store's side: conversations after a cursor, a limited number, and
 * the number of rooms of a user (direct conversations not counted). */
static int on_conv(void *arg, const dx__chat_conv *c) {
    char *out = arg;
    strcat(out, c->conv);
    strcat(out, ",");
    return 0;
}

static void test_store_paging(void) {
    const char *why;
    dx__chat_store *st = dx__chat_store_sqlite(NULL, &why);
    REQUIRE(st);
    const dx__chat_store_ops *o = st->ops;
    REQUIRE(o->begin(st) == 0);
    REQUIRE(o->join(st, "g:b", "alice") == 1);
    REQUIRE(o->join(st, "g:a", "alice") == 1);
    REQUIRE(o->join(st, "d:alice:bob", "alice") == 1);
    REQUIRE(o->join(st, "g:c", "bob") == 1);
    REQUIRE(o->commit(st) == 0);
    char out[256] = "";
    CHECK_EQ_INT(o->convs_of(st, "alice", NULL, 2, on_conv, out), 0);
    CHECK(!strcmp(out, "d:alice:bob,g:a,"));
    out[0] = 0;
    CHECK_EQ_INT(o->convs_of(st, "alice", "g:a", 10, on_conv, out), 0);
    CHECK(!strcmp(out, "g:b,"));
    int64_t n = -1;
    CHECK_EQ_INT(o->rooms_of(st, "alice", &n), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(o->rooms_of(st, "nobody", &n), 0);
    CHECK_EQ_INT(n, 0);
    o->close(st);
}

int main(void) {
    RUN(test_send_rate);
    RUN(test_bytes_rate);
    RUN(test_other_rates);
    RUN(test_configured);
    RUN(test_rooms_cap);
    RUN(test_sync_pages);
    RUN(test_table_bounded);
    RUN(test_store_paging);
    return TEST_DONE();
}

/* The chat protocol handlers (src/chat/engine.c) against the real SQLite
 * store, with a transport that records what each device would receive:
 * group commit (no ack before the commit), idempotent resend, deliveries to
 * every device but the sender's, receipts, unread counts, history pages,
 * sync, presence with two devices, typing, every error code, a failing
 * disk, and random garbage that must never crash. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <duplex/common.h>

#include "chat/engine.h"
#include "chat_test.h"
#include "test.h"

static void test_welcome_presence(void) {
    dx__chat *c = test_engine(NULL);
    REQUIRE(c);
    dx__chat_dev a1, a2, b;
    dev_open(c, &a1, "alice");
    json_t *w = next(&a1);
    REQUIRE(w);
    CHECK(!strcmp(str(w, "type"), "welcome"));
    CHECK_EQ_INT(num(w, "v"), 1);
    CHECK(!strcmp(str(w, "uid"), "alice"));
    json_decref(w);
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    dev_open(c, &b, "bob");
    /* alice and bob share only the lobby, and a room makes nobody a
     * contact (an arrival in a lobby of n would tell n people): no
     * presence push. */
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    json_t *p = next_of(&a1, "presence");
    CHECK(p == NULL);
    json_decref(p);
    drain(&b);
    /* A direct conversation makes them contacts: bob leaving and coming
     * back is news for alice (at the end of each turn: presence is
     * settled once per turn). */
    req(c, &a1,
        "{\"v\":1,\"type\":\"send\",\"id\":1,\"conv\":\"d:alice:bob\",\"cid\":\"c1\",\"text\":"
        "\"hi\"}");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    drain(&a1), drain(&b);
    dev_close(c, &b);
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    p = next_of(&a1, "presence");
    REQUIRE(p);
    json_t *u = json_array_get(json_object_get(p, "users"), 0);
    CHECK(!strcmp(str(u, "uid"), "bob"));
    CHECK(json_is_false(json_object_get(u, "online")));
    json_decref(p);
    dev_open(c, &b, "bob");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    p = next_of(&a1, "presence");
    REQUIRE(p);
    u = json_array_get(json_object_get(p, "users"), 0);
    CHECK(!strcmp(str(u, "uid"), "bob"));
    CHECK(json_is_true(json_object_get(u, "online")));
    json_decref(p);
    drain(&b);
    /* A second device of alice: no news for bob. */
    dev_open(c, &a2, "alice");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    drain(&a2);
    CHECK_EQ_INT(left(&b), 0);
    dev_close(c, &a1);
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    CHECK_EQ_INT(left(&b), 0); /* alice is still online on a2 */
    clock_ms += 5000;
    dev_close(c, &a2);
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    p = next_of(&b, "presence");
    REQUIRE(p);
    u = json_array_get(json_object_get(p, "users"), 0);
    CHECK(!strcmp(str(u, "uid"), "alice"));
    CHECK(json_is_false(json_object_get(u, "online")));
    CHECK_EQ_INT(num(u, "last_seen"), clock_ms);
    json_decref(p);
    /* And the presence request agrees, last_seen from the store. */
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    req(c, &b, "{\"v\":1,\"type\":\"presence\",\"id\":7,\"uids\":[\"alice\",\"bob\",\"zed\"]}");
    p = next(&b);
    REQUIRE(p);
    CHECK(!strcmp(str(p, "type"), "presence"));
    CHECK_EQ_INT(num(p, "id"), 7);
    json_t *users = json_object_get(p, "users");
    CHECK_EQ_INT(json_array_size(users), 3);
    CHECK(json_is_false(json_object_get(json_array_get(users, 0), "online")));
    CHECK_EQ_INT(num(json_array_get(users, 0), "last_seen"), clock_ms);
    CHECK(json_is_true(json_object_get(json_array_get(users, 1), "online")));
    CHECK_EQ_INT(num(json_array_get(users, 2), "last_seen"), 0);
    json_decref(p);
    dev_close(c, &b);
    dx__chat_free(c);
    reset_outs();
}

static void test_send_ack_deliver(void) {
    dx__chat *c = test_engine(NULL);
    REQUIRE(c);
    dx__chat_dev a1, a2, b, k;
    dev_open(c, &a1, "alice");
    dev_open(c, &a2, "alice");
    dev_open(c, &b, "bob");
    dev_open(c, &k, "carol");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    drain(&a1), drain(&a2), drain(&b), drain(&k);
    schedules = 0;

    req(c, &a1,
        "{\"v\":1,\"type\":\"send\",\"id\":\"s1\",\"conv\":\"d:alice:bob\",\"cid\":\"c-1\","
        "\"text\":\"你好 👋\"}");
    /* Group commit: nothing leaves before the flush, which was asked for. */
    CHECK_EQ_INT(left(&a1) + left(&b) + left(&a2), 0);
    CHECK_EQ_INT(schedules, 1);
    req(c, &a1,
        "{\"v\":1,\"type\":\"send\",\"id\":\"s2\",\"conv\":\"d:alice:bob\",\"cid\":\"c-2\","
        "\"text\":\"second\"}");
    CHECK_EQ_INT(schedules, 1); /* one flush per turn */
    CHECK_EQ_INT(dx__chat_flush(c), 0);

    json_t *ack = next(&a1);
    REQUIRE(ack);
    CHECK(!strcmp(str(ack, "type"), "ack"));
    CHECK(!strcmp(str(ack, "id"), "s1"));
    CHECK(!strcmp(str(ack, "cid"), "c-1"));
    CHECK_EQ_INT(num(ack, "seq"), 1);
    CHECK(num(ack, "mid") > 0);
    CHECK(json_object_get(ack, "dup") == NULL);
    json_decref(ack);
    ack = next(&a1);
    REQUIRE(ack);
    CHECK_EQ_INT(num(ack, "seq"), 2);
    json_decref(ack);
    CHECK_EQ_INT(left(&a1), 0); /* the sending device gets no deliver */

    for (int i = 0; i < 2; i++) {
        dx__chat_dev *d = i ? &b : &a2;
        json_t *dv = next(d);
        REQUIRE(dv);
        CHECK(!strcmp(str(dv, "type"), "deliver"));
        json_t *m = json_object_get(dv, "msg");
        CHECK(!strcmp(str(m, "text"), "你好 👋"));
        CHECK(!strcmp(str(m, "from"), "alice"));
        CHECK(!strcmp(str(m, "conv"), "d:alice:bob"));
        CHECK_EQ_INT(num(m, "seq"), 1);
        CHECK_EQ_INT(num(m, "ts"), clock_ms);
        json_decref(dv);
        dv = next(d);
        REQUIRE(dv);
        CHECK_EQ_INT(num(json_object_get(dv, "msg"), "seq"), 2);
        json_decref(dv);
    }
    CHECK_EQ_INT(left(&k), 0); /* carol is not in the conversation */

    /* Resend of c-1 (a timeout, a reconnect): the same ack, marked dup,
     * and no second delivery. */
    req(c, &a2,
        "{\"v\":1,\"type\":\"send\",\"id\":\"again\",\"conv\":\"d:alice:bob\",\"cid\":\"c-1\","
        "\"text\":\"你好 👋\"}");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    ack = next(&a2);
    REQUIRE(ack);
    CHECK(!strcmp(str(ack, "type"), "ack"));
    CHECK(!strcmp(str(ack, "id"), "again"));
    CHECK_EQ_INT(num(ack, "seq"), 1);
    CHECK(json_is_true(json_object_get(ack, "dup")));
    json_decref(ack);
    CHECK_EQ_INT(left(&b) + left(&a1), 0);

    /* Rooms: the lobby everyone joined; a room nobody joined. */
    req(c, &k,
        "{\"v\":1,\"type\":\"send\",\"conv\":\"g:lobby\",\"cid\":\"k1\",\"text\":\"hi all\"}");
    req(c, &k,
        "{\"v\":1,\"type\":\"send\",\"id\":3,\"conv\":\"g:secret\",\"cid\":\"k2\",\"text\":\"x\"}");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    json_t *e = next_of(&k, "error");
    REQUIRE(e);
    CHECK(!strcmp(str(e, "code"), "not_member"));
    CHECK_EQ_INT(num(e, "id"), 3);
    json_decref(e);
    ack = next_of(&k, "ack"); /* of k1, which came after the error */
    REQUIRE(ack);
    CHECK(!strcmp(str(ack, "cid"), "k1"));
    json_decref(ack);
    for (int i = 0; i < 3; i++) {
        dx__chat_dev *d = i == 0 ? &a1 : i == 1 ? &a2 : &b;
        json_t *dv = next_of(d, "deliver");
        REQUIRE(dv);
        CHECK(!strcmp(str(json_object_get(dv, "msg"), "conv"), "g:lobby"));
        json_decref(dv);
    }
    req(c, &k, "{\"v\":1,\"type\":\"join\",\"id\":4,\"conv\":\"g:secret\"}");
    req(c, &k,
        "{\"v\":1,\"type\":\"send\",\"id\":5,\"conv\":\"g:secret\",\"cid\":\"k2\",\"text\":\"x\"}");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    json_t *ok = next(&k);
    REQUIRE(ok);
    CHECK(!strcmp(str(ok, "type"), "ok"));
    CHECK_EQ_INT(num(ok, "id"), 4);
    json_decref(ok);
    ack = next(&k);
    REQUIRE(ack);
    CHECK(!strcmp(str(ack, "type"), "ack"));
    CHECK_EQ_INT(num(ack, "seq"), 1);
    json_decref(ack);

    dev_close(c, &a1), dev_close(c, &a2), dev_close(c, &b), dev_close(c, &k);
    dx__chat_free(c);
    reset_outs();
}

static void test_read_sync_history(void) {
    dx__chat *c = test_engine(NULL);
    REQUIRE(c);
    dx__chat_dev a, b;
    dev_open(c, &a, "alice");
    dev_open(c, &b, "bob");
    char buf[256];
    for (int i = 1; i <= 120; i++) {
        snprintf(
            buf, sizeof buf,
            "{\"v\":1,\"type\":\"send\",\"conv\":\"d:alice:bob\",\"cid\":\"m%d\",\"text\":\"n%d\"}",
            i, i);
        req(c, &a, buf);
        clock_ms += 50; /* within alice's send rate (test_chat_limits.c) */
        if (i % 7 == 0) CHECK_EQ_INT(dx__chat_flush(c), 0);
    }
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    drain(&a), drain(&b);

    req(c, &b, "{\"v\":1,\"type\":\"read\",\"id\":1,\"conv\":\"d:alice:bob\",\"seq\":100}");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    json_t *ok = next(&b);
    REQUIRE(ok);
    CHECK(!strcmp(str(ok, "type"), "ok"));
    json_decref(ok);
    json_t *r = next_of(&a, "read");
    REQUIRE(r);
    CHECK(!strcmp(str(r, "uid"), "bob"));
    CHECK_EQ_INT(num(r, "seq"), 100);
    CHECK(!strcmp(str(r, "conv"), "d:alice:bob"));
    json_decref(r);
    drain(&b);

    /* Sync from bob, who holds up to 110 of the direct conversation. */
    req(c, &b, "{\"v\":1,\"type\":\"sync\",\"id\":\"y\",\"since\":{\"d:alice:bob\":110}}");
    json_t *s = next(&b);
    REQUIRE(s);
    CHECK(!strcmp(str(s, "type"), "sync"));
    json_t *convs = json_object_get(s, "convs");
    CHECK_EQ_INT(json_array_size(convs), 2);
    json_t *d = json_array_get(convs, 0);
    CHECK(!strcmp(str(d, "conv"), "d:alice:bob"));
    CHECK_EQ_INT(num(d, "last_seq"), 120);
    CHECK_EQ_INT(num(d, "read_seq"), 100);
    CHECK_EQ_INT(num(d, "unread"), 20);
    CHECK_EQ_INT(json_array_size(json_object_get(d, "msgs")), 10);
    CHECK_EQ_INT(num(json_array_get(json_object_get(d, "msgs"), 0), "seq"), 111);
    CHECK(json_is_false(json_object_get(d, "more")));
    CHECK_EQ_INT(num(json_object_get(d, "reads"), "bob"), 100);
    CHECK_EQ_INT(json_array_size(json_object_get(d, "members")), 2);
    json_t *pres = json_object_get(s, "presence");
    CHECK_EQ_INT(json_array_size(pres), 1);
    CHECK(json_is_true(json_object_get(json_array_get(pres, 0), "online")));
    json_decref(s);

    /* A fresh device with nothing: the newest 50, more = true. */
    req(c, &b, "{\"v\":1,\"type\":\"sync\",\"id\":\"z\"}");
    s = next(&b);
    REQUIRE(s);
    d = json_array_get(json_object_get(s, "convs"), 0);
    CHECK_EQ_INT(json_array_size(json_object_get(d, "msgs")), 50);
    CHECK_EQ_INT(num(json_array_get(json_object_get(d, "msgs"), 0), "seq"), 71);
    CHECK(json_is_true(json_object_get(d, "more")));
    json_decref(s);

    /* Alice's unread in the same conversation: none (she sent them all). */
    req(c, &a, "{\"v\":1,\"type\":\"sync\",\"id\":1}");
    s = next_of(&a, "sync");
    REQUIRE(s);
    CHECK_EQ_INT(num(json_array_get(json_object_get(s, "convs"), 0), "unread"), 0);
    json_decref(s);

    req(c, &b,
        "{\"v\":1,\"type\":\"history\",\"id\":2,\"conv\":\"d:alice:bob\",\"before\":71,\"limit\":"
        "30}");
    json_t *h = next(&b);
    REQUIRE(h);
    CHECK(!strcmp(str(h, "type"), "history"));
    json_t *msgs = json_object_get(h, "msgs");
    CHECK_EQ_INT(json_array_size(msgs), 30);
    CHECK_EQ_INT(num(json_array_get(msgs, 0), "seq"), 41);
    CHECK(!strcmp(str(json_array_get(msgs, 0), "text"), "n41"));
    CHECK(json_is_true(json_object_get(h, "more")));
    json_decref(h);

    /* A read in the same turn as a send: the history that follows sees the
     * send only once it is committed (reads flush first). */
    req(c, &a,
        "{\"v\":1,\"type\":\"send\",\"id\":\"last\",\"conv\":\"d:alice:bob\",\"cid\":\"m121\","
        "\"text\":\"end\"}");
    req(c, &a, "{\"v\":1,\"type\":\"history\",\"id\":\"h\",\"conv\":\"d:alice:bob\",\"limit\":1}");
    json_t *first = next(&a);
    REQUIRE(first);
    CHECK(!strcmp(str(first, "type"), "ack"));
    json_decref(first);
    h = next(&a);
    REQUIRE(h);
    CHECK_EQ_INT(num(json_array_get(json_object_get(h, "msgs"), 0), "seq"), 121);
    json_decref(h);

    dev_close(c, &a), dev_close(c, &b);
    dx__chat_free(c);
    reset_outs();
}

static void test_typing(void) {
    dx__chat *c = test_engine(NULL);
    REQUIRE(c);
    dx__chat_dev a, b, k;
    dev_open(c, &a, "alice");
    dev_open(c, &b, "bob");
    dev_open(c, &k, "carol");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    drain(&a), drain(&b), drain(&k);
    req(c, &a, "{\"v\":1,\"type\":\"typing\",\"conv\":\"d:alice:bob\"}");
    json_t *t = next(&b);
    REQUIRE(t);
    CHECK(!strcmp(str(t, "type"), "typing"));
    CHECK(!strcmp(str(t, "uid"), "alice"));
    json_decref(t);
    CHECK_EQ_INT(left(&a) + left(&k), 0);
    req(c, &a, "{\"v\":1,\"type\":\"typing\",\"conv\":\"g:lobby\"}");
    CHECK_EQ_INT(left(&b), 1);
    CHECK_EQ_INT(left(&k), 1);
    dev_close(c, &a), dev_close(c, &b), dev_close(c, &k);
    dx__chat_free(c);
    reset_outs();
}

static void expect_error(dx__chat *c, dx__chat_dev *d, const char *json, size_t len,
                         const char *code, const char *field) {
    dx__chat_message(c, d, json, len, 0);
    (void)dx__chat_flush(c);
    json_t *e = next(d);
    if (!e || strcmp(str(e, "type"), "error") || strcmp(str(e, "code"), code) ||
        (field && strcmp(str(e, "field"), field))) {
        fprintf(stderr, "  request %.80s\n  got %s\n", json, e ? json_dumps(e, 0) : "nothing");
        CHECK(!"the expected error");
    }
    json_decref(e);
    CHECK_EQ_INT(left(d), 0);
}

#define ERR(c, d, s, code, field) expect_error(c, d, s, strlen(s), code, field)

static void test_errors(void) {
    dx__chat *c = test_engine(NULL);
    REQUIRE(c);
    dx__chat_dev a;
    dev_open(c, &a, "alice");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    drain(&a);
    ERR(c, &a, "{bad", "bad_json", NULL);
    ERR(c, &a, "[1,2]", "bad_json", NULL);
    ERR(c, &a, "\"ping\"", "bad_json", NULL);
    ERR(c, &a, "{\"v\":1,\"v\":1,\"type\":\"sync\"}", "bad_json", NULL); /* duplicate key */
    ERR(c, &a, "{\"type\":\"sync\"}", "bad_version", "v");
    ERR(c, &a, "{\"v\":2,\"type\":\"sync\"}", "bad_version", "v");
    ERR(c, &a, "{\"v\":\"1\",\"type\":\"sync\"}", "bad_version", "v");
    ERR(c, &a, "{\"v\":1}", "bad_type", "type");
    ERR(c, &a, "{\"v\":1,\"type\":\"launch\"}", "bad_type", "type");
    ERR(c, &a, "{\"v\":1,\"type\":\"sync\",\"id\":{}}", "bad_field", "id");
    ERR(c, &a, "{\"v\":1,\"type\":\"sync\",\"id\":\"\"}", "bad_field", "id");
    ERR(c, &a, "{\"v\":1,\"type\":\"send\",\"cid\":\"x\",\"text\":\"t\"}", "bad_field", "conv");
    ERR(c, &a, "{\"v\":1,\"type\":\"send\",\"conv\":\"d:bob:alice\",\"cid\":\"x\",\"text\":\"t\"}",
        "bad_field", "conv");
    ERR(c, &a,
        "{\"v\":1,\"type\":\"send\",\"conv\":\"d:alice:alice\",\"cid\":\"x\",\"text\":\"t\"}",
        "bad_field", "conv");
    ERR(c, &a, "{\"v\":1,\"type\":\"send\",\"conv\":\"g:a b\",\"cid\":\"x\",\"text\":\"t\"}",
        "bad_field", "conv");
    ERR(c, &a, "{\"v\":1,\"type\":\"send\",\"conv\":\"d:bob:carol\",\"cid\":\"x\",\"text\":\"t\"}",
        "not_member", "conv");
    ERR(c, &a, "{\"v\":1,\"type\":\"send\",\"conv\":\"d:alice:bob\",\"text\":\"t\"}", "bad_field",
        "cid");
    ERR(c, &a,
        "{\"v\":1,\"type\":\"send\",\"conv\":\"d:alice:bob\",\"cid\":\"a b\",\"text\":\"t\"}",
        "bad_field", "cid");
    ERR(c, &a, "{\"v\":1,\"type\":\"send\",\"conv\":\"d:alice:bob\",\"cid\":\"x\",\"text\":\"\"}",
        "bad_field", "text");
    ERR(c, &a, "{\"v\":1,\"type\":\"send\",\"conv\":\"d:alice:bob\",\"cid\":\"x\",\"text\":5}",
        "bad_field", "text");
    ERR(c, &a,
        "{\"v\":1,\"type\":\"send\",\"conv\":\"d:alice:bob\",\"cid\":\"x\",\"text\":\"a\\u0000b\"}",
        "bad_json", NULL); /* NUL inside a string is refused by the parser */
    ERR(c, &a, "{\"v\":1,\"type\":\"read\",\"conv\":\"d:alice:bob\",\"seq\":-1}", "bad_field",
        "seq");
    ERR(c, &a, "{\"v\":1,\"type\":\"read\",\"conv\":\"d:alice:bob\",\"seq\":1}", "not_member",
        "conv");
    ERR(c, &a, "{\"v\":1,\"type\":\"history\",\"conv\":\"g:lobby\",\"limit\":0}", "bad_field",
        "limit");
    ERR(c, &a, "{\"v\":1,\"type\":\"history\",\"conv\":\"g:lobby\",\"limit\":101}", "bad_field",
        "limit");
    ERR(c, &a, "{\"v\":1,\"type\":\"history\",\"conv\":\"g:nope\"}", "not_member", "conv");
    ERR(c, &a, "{\"v\":1,\"type\":\"sync\",\"since\":[]}", "bad_field", "since");
    ERR(c, &a, "{\"v\":1,\"type\":\"sync\",\"since\":{\"g:lobby\":\"x\"}}", "bad_field", "since");
    ERR(c, &a, "{\"v\":1,\"type\":\"join\",\"conv\":\"d:alice:bob\"}", "bad_field", "conv");
    ERR(c, &a, "{\"v\":1,\"type\":\"presence\",\"uids\":[]}", "bad_field", "uids");
    ERR(c, &a, "{\"v\":1,\"type\":\"presence\",\"uids\":[\"a:b\"]}", "bad_field", "uids");

    /* The id comes back on errors too. */
    req(c, &a, "{\"v\":1,\"type\":\"nope\",\"id\":\"q9\"}");
    json_t *e = next(&a);
    REQUIRE(e);
    CHECK(!strcmp(str(e, "id"), "q9"));
    json_decref(e);

    /* Text over 4000 bytes; a request over 16 KiB; a binary message. */
    char *big = malloc(20000);
    REQUIRE(big);
    int n =
        snprintf(big, 20000,
                 "{\"v\":1,\"type\":\"send\",\"conv\":\"d:alice:bob\",\"cid\":\"x\",\"text\":\"");
    memset(big + n, 'a', 4001);
    strcpy(big + n + 4001, "\"}");
    expect_error(c, &a, big, strlen(big), "too_large", "text");
    /* Exactly 4000 multi-byte-safe bytes pass: 1000 four-byte emoji. */
    n = snprintf(big, 20000,
                 "{\"v\":1,\"type\":\"send\",\"conv\":\"d:alice:bob\",\"cid\":\"y\",\"text\":\"");
    for (int i = 0; i < 1000; i++, n += 4)
        memcpy(big + n, "\xf0\x9f\x98\x80", 4);
    strcpy(big + n, "\"}");
    req(c, &a, big);
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    json_t *ack = next(&a);
    REQUIRE(ack);
    CHECK(!strcmp(str(ack, "type"), "ack"));
    json_decref(ack);
    memset(big, ' ', 17000);
    expect_error(c, &a, big, 17000, "too_large", NULL);
    free(big);
    /* Binary messages are upload chunks (revision 2); with uploads off
     * (no dx__chat_set_files), bad_json as in revision 1. */
    dx__chat_message(c, &a, "\x01\x02", 2, 1);
    e = next(&a);
    REQUIRE(e);
    CHECK(!strcmp(str(e, "code"), "bad_json"));
    json_decref(e);

    dev_close(c, &a);
    dx__chat_free(c);
    reset_outs();
}

/* A device that goes away between its request and the commit: the reply
 * is dropped (ASan would catch a use of the dead device), the message is
 * stored and delivered all the same. */
static void test_close_before_commit(void) {
    dx__chat *c = test_engine(NULL);
    REQUIRE(c);
    dx__chat_dev *a = calloc(1, sizeof *a), b;
    REQUIRE(a);
    dev_open(c, a, "alice");
    dev_open(c, &b, "bob");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    drain(&b);
    req(c, a,
        "{\"v\":1,\"type\":\"send\",\"conv\":\"d:alice:bob\",\"cid\":\"gone\",\"text\":\"bye\"}");
    dev_close(c, a);
    free(a);
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    json_t *d = next_of(&b, "deliver");
    REQUIRE(d);
    CHECK(!strcmp(str(json_object_get(d, "msg"), "text"), "bye"));
    json_decref(d);
    dev_close(c, &b);
    dx__chat_free(c);
    reset_outs();
}

/* A disk that refuses the commit: every request of the turn gets
 * store_failed, nothing is delivered, nothing is stored, and the resend
 * afterwards succeeds with the same seq. */
static int fail_commits;
static dx__chat_store_ops failing_ops;
static const dx__chat_store_ops *real_ops;

static int failing_commit(dx__chat_store *st) {
    if (fail_commits) {
        fail_commits--;
        return DX_EIO;
    }
    return real_ops->commit(st);
}

static void test_store_failure(void) {
    const char *why;
    dx__chat_store *st = dx__chat_store_sqlite(NULL, &why);
    REQUIRE(st);
    real_ops = st->ops;
    failing_ops = *st->ops;
    failing_ops.commit = failing_commit;
    st->ops = &failing_ops;
    dx__chat *c = test_engine(st);
    REQUIRE(c);
    dx__chat_dev a, b;
    dev_open(c, &a, "alice");
    dev_open(c, &b, "bob");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    drain(&a), drain(&b);
    fail_commits = 1;
    req(c, &a,
        "{\"v\":1,\"type\":\"send\",\"id\":1,\"conv\":\"d:alice:bob\",\"cid\":\"f1\",\"text\":"
        "\"x\"}");
    req(c, &a,
        "{\"v\":1,\"type\":\"send\",\"id\":2,\"conv\":\"d:alice:bob\",\"cid\":\"f2\",\"text\":"
        "\"y\"}");
    CHECK_EQ_INT(dx__chat_flush(c), DX_EIO);
    dx_chat_stats stf = {.size = sizeof stf};
    dx__chat_stats_get(c, &stf);
    CHECK_EQ_INT(stf.store_errors, 1);
    CHECK_EQ_INT(stf.acks, 0); /* store_failed went out, no ack */
    for (int i = 1; i <= 2; i++) {
        json_t *e = next(&a);
        REQUIRE(e);
        CHECK(!strcmp(str(e, "code"), "store_failed"));
        CHECK_EQ_INT(num(e, "id"), i);
        json_decref(e);
    }
    CHECK_EQ_INT(left(&b), 0);
    req(c, &a,
        "{\"v\":1,\"type\":\"send\",\"id\":3,\"conv\":\"d:alice:bob\",\"cid\":\"f1\",\"text\":"
        "\"x\"}");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    json_t *ack = next(&a);
    REQUIRE(ack);
    CHECK(!strcmp(str(ack, "type"), "ack"));
    CHECK_EQ_INT(num(ack, "seq"), 1);
    CHECK(json_object_get(ack, "dup") == NULL);
    json_decref(ack);
    dev_close(c, &a), dev_close(c, &b);
    dx__chat_free(c);
    reset_outs();
}

/* The counters of dx_chat_stats move with their events: sends, duplicates,
 * acks with the latency from the request to the ack (the test clock moves
 * 3 ms in between: the 2.5-5 ms bucket), deliveries, commits and the
 * requests they carried, devices connected. */
static void test_stats(void) {
    dx__chat *c = test_engine(NULL);
    REQUIRE(c);
    dx__chat_dev a, b;
    dev_open(c, &a, "alice");
    dev_open(c, &b, "bob");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    drain(&a), drain(&b);
    dx_chat_stats s0 = {.size = sizeof s0}, s1 = {.size = sizeof s1};
    dx__chat_stats_get(c, &s0);
    CHECK_EQ_INT(s0.devices, 2);
    CHECK_EQ_INT(s0.size, sizeof s0);
    req(c, &a,
        "{\"v\":1,\"type\":\"send\",\"id\":1,\"conv\":\"d:alice:bob\",\"cid\":\"k1\",\"text\":"
        "\"x\"}");
    req(c, &a,
        "{\"v\":1,\"type\":\"send\",\"id\":2,\"conv\":\"d:alice:bob\",\"cid\":\"k2\",\"text\":"
        "\"y\"}");
    clock_ms += 3;
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    req(c, &a,
        "{\"v\":1,\"type\":\"send\",\"id\":3,\"conv\":\"d:alice:bob\",\"cid\":\"k1\",\"text\":"
        "\"x\"}");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    dx__chat_stats_get(c, &s1);
    CHECK_EQ_INT(s1.sends - s0.sends, 3);
    CHECK_EQ_INT(s1.duplicates - s0.duplicates, 1);
    CHECK_EQ_INT(s1.acks - s0.acks, 3);
    CHECK_EQ_INT(s1.deliveries - s0.deliveries, 2); /* not the duplicate */
    CHECK_EQ_INT(s1.commits - s0.commits, 2);
    CHECK_EQ_INT(s1.committed - s0.committed, 3);
    CHECK_EQ_INT(s1.ack_us[4] - s0.ack_us[4], 2); /* 3 ms: the 2.5-5 ms bucket */
    CHECK_EQ_INT(s1.ack_us[0] - s0.ack_us[0], 1); /* the duplicate: no time passed */
    CHECK_EQ_INT(s1.ack_us_sum - s0.ack_us_sum, 6000);
    dev_close(c, &b);
    dx__chat_stats_get(c, &s1);
    CHECK_EQ_INT(s1.devices, 1);
    /* A caller built against an older, shorter struct gets only that. */
    dx_chat_stats small;
    memset(&small, 0xab, sizeof small);
    small.size = offsetof(dx_chat_stats, acks);
    dx__chat_stats_get(c, &small);
    CHECK_EQ_INT(small.sends, s1.sends);
    CHECK(small.acks == 0xabababababababab);
    dev_close(c, &a);
    dx__chat_free(c);
    reset_outs();
}

/* Random bytes and mutated requests: every one is answered (an error or a
 * reply), none crashes or leaks (ASan/LSan). */
static void test_garbage(void) {
    dx_t_seed();
    dx__chat *c = test_engine(NULL);
    REQUIRE(c);
    dx__chat_dev a;
    dev_open(c, &a, "alice");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    drain(&a);
    static const char *const base[] = {
        "{\"v\":1,\"type\":\"send\",\"id\":1,\"conv\":\"d:alice:bob\",\"cid\":\"c\",\"text\":"
        "\"t\"}",
        "{\"v\":1,\"type\":\"sync\",\"since\":{\"d:alice:bob\":3,\"g:lobby\":0}}",
        "{\"v\":1,\"type\":\"history\",\"conv\":\"g:lobby\",\"before\":5,\"limit\":2}",
        "{\"v\":1,\"type\":\"read\",\"conv\":\"g:lobby\",\"seq\":2}",
        "{\"v\":1,\"type\":\"presence\",\"uids\":[\"bob\"]}",
    };
    char buf[512];
    int answered = 0, asked = 0;
    for (int iter = 0; iter < 3000; iter++) {
        const char *b = base[dx_t_rand() % 5];
        size_t n = strlen(b);
        memcpy(buf, b, n);
        int flips = 1 + (int)(dx_t_rand() % 4);
        for (int f = 0; f < flips; f++) {
            size_t at = dx_t_rand() % n;
            switch (dx_t_rand() % 3) {
            case 0:
                buf[at] = (char)(dx_t_rand() & 0xff);
                break;
            case 1:
                buf[at] = "{}[]\":,0-9a"[dx_t_rand() % 11];
                break;
            default:
                n = at ? at : 1;
                break; /* truncate */
            }
        }
        int before = nouts;
        dx__chat_message(c, &a, buf, n, 0);
        (void)dx__chat_flush(c);
        /* typing and a few valid requests may legitimately answer nothing;
         * everything else answers at least once. */
        asked++;
        answered += nouts > before;
        if (nouts > MAX_OUT - 64) {
            drain(&a);
            reset_outs();
        }
    }
    CHECK(answered > asked * 9 / 10);
    dev_close(c, &a);
    dx__chat_free(c);
    reset_outs();
}

/* A big backlog comes in several syncs, each reply bounded, nothing lost. */
static void test_sync_budget(void) {
    dx__chat *c = test_engine(NULL);
    REQUIRE(c);
    dx__chat_dev a, b;
    dev_open(c, &a, "alice");
    dev_open(c, &b, "bob");
    static const char *const peers[] = {"p1", "p2", "p3", "p4"};
    char *buf = malloc(4096);
    REQUIRE(buf);
    for (int p = 0; p < 4; p++) {
        for (int i = 0; i < 100; i++) {
            int n = snprintf(buf, 4096,
                             "{\"v\":1,\"type\":\"send\",\"conv\":\"d:bob:%s\","
                             "\"cid\":\"%s-%d\",\"text\":\"",
                             peers[p], peers[p], i);
            memset(buf + n, 'z', 3000);
            strcpy(buf + n + 3000, "\"}");
            req(c, &b, buf);
            clock_ms += 3000; /* within bob's bytes rate (test_chat_limits.c) */
        }
        CHECK_EQ_INT(dx__chat_flush(c), 0);
    }
    free(buf);
    drain(&a), drain(&b);
    /* bob's other device had up to seq 0 everywhere: 1.2 MB of backlog. */
    int64_t have[4] = {0, 0, 0, 0};
    int rounds = 0, more = 1;
    while (more && rounds < 20) {
        char since[256];
        snprintf(since, sizeof since,
                 "{\"v\":1,\"type\":\"sync\",\"since\":{\"d:bob:p1\":%lld,\"d:bob:p2\":%lld,"
                 "\"d:bob:p3\":%lld,\"d:bob:p4\":%lld}}",
                 (long long)have[0], (long long)have[1], (long long)have[2], (long long)have[3]);
        req(c, &b, since);
        REQUIRE(nouts > 0);
        CHECK(strlen(outs[nouts - 1].data) < 300 * 1024);
        json_t *s = next(&b);
        REQUIRE(s);
        more = 0;
        json_t *conv;
        size_t i;
        json_array_foreach(json_object_get(s, "convs"), i, conv) {
            const char *id = str(conv, "conv");
            if (strncmp(id, "d:bob:p", 7)) continue;
            int k = id[7] - '1';
            json_t *msgs = json_object_get(conv, "msgs");
            size_t n = json_array_size(msgs);
            if (n) {
                CHECK_EQ_INT(num(json_array_get(msgs, 0), "seq"), have[k] + 1); /* no gap */
                have[k] = num(json_array_get(msgs, n - 1), "seq");
            }
            more |= json_is_true(json_object_get(conv, "more"));
        }
        json_decref(s);
        rounds++;
    }
    CHECK(rounds >= 5); /* 1.2 MB cannot come in fewer 256 KB replies */
    for (int k = 0; k < 4; k++)
        CHECK_EQ_INT(have[k], 100);
    dev_close(c, &a), dev_close(c, &b);
    dx__chat_free(c);
    reset_outs();
}

/* A node of a cluster hears that a user's devices elsewhere are gone:
 * the contacts connected here are told, once. */
static void test_remote_presence(void) {
    dx__chat *c = test_engine(NULL);
    REQUIRE(c);
    dx__chat_dev a, b;
    dev_open(c, &a, "alice");
    dev_open(c, &b, "bob");
    req(c, &a,
        "{\"v\":1,\"type\":\"send\",\"id\":1,\"conv\":\"d:alice:bob\",\"cid\":\"c1\",\"text\":"
        "\"hi\"}");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    drain(&a), drain(&b);
    dx__chat_remote_presence(c, "carol", 0); /* carol shares only the lobby with them */
    CHECK_EQ_INT(left(&a) + left(&b), 0);
    dx__chat_remote_presence(c, "bob", 0);
    json_t *p = next(&a);
    REQUIRE(p);
    json_t *u = json_array_get(json_object_get(p, "users"), 0);
    CHECK(!strcmp(str(u, "uid"), "bob"));
    CHECK(json_is_false(json_object_get(u, "online")));
    json_decref(p);
    CHECK_EQ_INT(left(&a), 0);
    CHECK_EQ_INT(left(&b), 0); /* not to bob himself */
    dev_close(c, &a), dev_close(c, &b);
    dx__chat_free(c);
    reset_outs();
}

int main(void) {
    RUN(test_welcome_presence);
    RUN(test_remote_presence);
    RUN(test_sync_budget);
    RUN(test_send_ack_deliver);
    RUN(test_read_sync_history);
    RUN(test_typing);
    RUN(test_errors);
    RUN(test_close_before_commit);
    RUN(test_store_failure);
    RUN(test_stats);
    RUN(test_garbage);
    return TEST_DONE();
}

/* Membership pushes (src/chat/engine.c, docs/chat-protocol.md "members"):
 * a room that gains members tells every member's devices its new count
 * after the commit, once per turn however many arrived, with who joined
 * while the room is small enough to be listed; a user already in it, a
 * second device, or a failed commit tells nobody anything. Issue 17,
 * item 2: "1 members" while two were in, until a reload. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <duplex/common.h>

#include "chat/engine.h"
#include "chat_test.h"
#include "test.h"

/* How many `members` pushes `d` has not looked at yet (all are taken). */
static int members_left(dx__chat_dev *d) {
    int n = 0;
    json_t *j;
    while ((j = next_of(d, "members"))) {
        n++;
        json_decref(j);
    }
    return n;
}

/* `j` is a members push for `conv` with `count` and, when `joined` is not
 * NULL, exactly those uids (comma-separated) in `joined`; else no field. */
static int is_members(json_t *j, const char *conv, long long count, const char *joined) {
    if (!j || strcmp(str(j, "type"), "members") || strcmp(str(j, "conv"), conv) ||
        num(j, "count") != count || num(j, "v") != 1 || json_object_get(j, "id"))
        return 0;
    json_t *list = json_object_get(j, "joined");
    if (!joined) return list == NULL;
    char buf[512] = "";
    size_t i;
    json_t *u;
    json_array_foreach(list, i, u) {
        if (i) strcat(buf, ",");
        strncat(buf, json_string_value(u), 64);
    }
    return json_is_array(list) && !strcmp(buf, joined);
}

/* The next members push for `d` is as is_members says. */
static int next_members_is(dx__chat_dev *d, const char *conv, long long count, const char *joined) {
    json_t *j = next_of(d, "members");
    int ok = is_members(j, conv, count, joined);
    json_decref(j);
    return ok;
}

static void test_lobby_on_connect(void) {
    dx__chat *c = test_engine(NULL);
    REQUIRE(c);
    dx__chat_dev a, b, b2;
    dev_open(c, &a, "alice");
    /* Nothing before the commit: the membership is not durable yet. */
    CHECK_EQ_INT(members_left(&a), 0);
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    CHECK(next_members_is(&a, "g:lobby", 1, "alice"));
    /* bob's first connection: both hear the lobby has two. */
    dev_open(c, &b, "bob");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    CHECK(next_members_is(&a, "g:lobby", 2, "bob"));
    CHECK(next_members_is(&b, "g:lobby", 2, "bob"));
    CHECK_EQ_INT(members_left(&a) + members_left(&b), 0);
    /* A second device of bob, and bob coming back: no new member. */
    dev_open(c, &b2, "bob");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    dev_close(c, &b2);
    dev_close(c, &b);
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    dev_open(c, &b, "bob");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    CHECK_EQ_INT(members_left(&a) + members_left(&b) + members_left(&b2), 0);
    dev_close(c, &a), dev_close(c, &b);
    dx__chat_free(c);
    reset_outs();
}

/* Three arrivals in one turn: one push per member, with the final count. */
static void test_coalesced_per_turn(void) {
    dx__chat *c = test_engine(NULL);
    REQUIRE(c);
    dx__chat_dev a, d[3];
    dev_open(c, &a, "alice");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    drain(&a);
    dev_open(c, &d[0], "carol");
    dev_open(c, &d[1], "dave");
    dev_open(c, &d[2], "erin");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    CHECK(next_members_is(&a, "g:lobby", 4, "carol,dave,erin"));
    CHECK_EQ_INT(members_left(&a), 0);
    for (int i = 0; i < 3; i++) {
        CHECK(next_members_is(&d[i], "g:lobby", 4, "carol,dave,erin"));
        CHECK_EQ_INT(members_left(&d[i]), 0);
        dev_close(c, &d[i]);
    }
    dev_close(c, &a);
    dx__chat_free(c);
    reset_outs();
}

/* join: the ok first, then the push, to every member's devices and to
 * nobody outside the room; joining again is no news. */
static void test_join_room(void) {
    dx__chat *c = test_engine(NULL);
    REQUIRE(c);
    dx__chat_dev a, b, z;
    dev_open(c, &a, "alice");
    dev_open(c, &b, "bob");
    dev_open(c, &z, "zed");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    drain(&a), drain(&b), drain(&z);
    req(c, &a, "{\"v\":1,\"type\":\"join\",\"id\":1,\"conv\":\"g:rust\"}");
    CHECK_EQ_INT(left(&a), 0); /* the ok waits for the commit */
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    json_t *j = next(&a);
    CHECK(j && !strcmp(str(j, "type"), "ok") && num(j, "id") == 1);
    json_decref(j);
    j = next(&a);
    CHECK(is_members(j, "g:rust", 1, "alice"));
    json_decref(j);
    req(c, &b, "{\"v\":1,\"type\":\"join\",\"id\":2,\"conv\":\"g:rust\"}");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    CHECK(next_members_is(&a, "g:rust", 2, "bob"));
    CHECK(next_members_is(&b, "g:rust", 2, "bob"));
    CHECK_EQ_INT(left(&z), 0); /* not a member of g:rust */
    /* Again: ok, and nothing for anyone. */
    req(c, &b, "{\"v\":1,\"type\":\"join\",\"id\":3,\"conv\":\"g:rust\"}");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    j = next(&b);
    CHECK(j && !strcmp(str(j, "type"), "ok"));
    json_decref(j);
    CHECK_EQ_INT(left(&a) + left(&b) + left(&z), 0);
    /* A direct conversation is created by its first message: its two
     * members get the deliver, and no members push. */
    req(c, &a,
        "{\"v\":1,\"type\":\"send\",\"id\":4,\"conv\":\"d:alice:zed\",\"cid\":\"x\","
        "\"text\":\"hi\"}");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    CHECK_EQ_INT(members_left(&a) + members_left(&z), 0);
    dev_close(c, &a), dev_close(c, &b), dev_close(c, &z);
    dx__chat_free(c);
    reset_outs();
}

/* Past 64 members the push carries the count only (as sync gives
 * members_count instead of the list), and goes to the newcomer only: an
 * arrival in a big room costs one message, not one per member (the others
 * see the count at their next sync). */
static void test_large_room_count_only(void) {
    dx__chat *c = test_engine(NULL);
    REQUIRE(c);
    dx__chat_dev a, u;
    dev_open(c, &a, "alice");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    drain(&a);
    for (int i = 1; i < 64; i++) {
        char uid[16];
        snprintf(uid, sizeof uid, "user%02d", i);
        dev_open(c, &u, uid);
        CHECK_EQ_INT(dx__chat_flush(c), 0);
        drain(&u); /* the next user's device has the same address */
        dev_close(c, &u);
        CHECK_EQ_INT(dx__chat_flush(c), 0);
    }
    /* The 64th member still comes with its name. */
    json_t *j = NULL, *last = NULL;
    while ((j = next_of(&a, "members"))) {
        json_decref(last);
        last = j;
    }
    CHECK(is_members(last, "g:lobby", 64, "user63"));
    json_decref(last);
    dev_open(c, &u, "user64");
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    CHECK(next_members_is(&u, "g:lobby", 65, NULL));
    CHECK(next_of(&a, "members") == NULL);
    json_t *sy = call(c, &a, "{\"v\":1,\"type\":\"sync\",\"id\":\"q\"}");
    REQUIRE(sy);
    json_t *lobby = json_array_get(json_object_get(sy, "convs"), 0);
    CHECK(!strcmp(str(lobby, "conv"), "g:lobby"));
    CHECK_EQ_INT(num(lobby, "members_count"), 65);
    json_decref(sy);
    dev_close(c, &u), dev_close(c, &a);
    dx__chat_free(c);
    reset_outs();
}

int main(void) {
    RUN(test_lobby_on_connect);
    RUN(test_coalesced_per_turn);
    RUN(test_join_room);
    RUN(test_large_room_count_only);
    return TEST_DONE();
}

/* Private groups (src/chat/groups.c) through the engine, over the real
 * SQLite store: the lifecycle and the roles, the system messages in
 * deliveries, history and sync, a removed member cut off at once, and —
 * table-driven — `forbidden` for every request type on a group, for an
 * outsider, a removed member and an unknown id alike. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <duplex/common.h>

#include "chat/engine.h"
#include "chat_test.h"
#include "test.h"

/* Creates a group of alice with `members` (a JSON array); its conv. */
static void create(dx__chat *c, dx__chat_dev *a, const char *members, char conv[32]) {
    json_t *g = call(c, a,
                     "{\"v\":1,\"type\":\"group_create\",\"id\":\"q\",\"cid\":\"g1\","
                     "\"title\":\"Team 队\",\"members\":%s}",
                     members);
    conv[0] = 0;
    if (g && !strcmp(str(g, "type"), "group")) snprintf(conv, 32, "%s", str(g, "conv"));
    json_decref(g);
}

static void test_lifecycle(void) {
    dx__chat *c = test_engine(NULL);
    REQUIRE(c);
    dx__chat_dev a, b, k, d;
    dev_ready(c, &a, "alice"), dev_ready(c, &b, "bob"), dev_ready(c, &k, "carol");
    dev_ready(c, &d, "dave");
    drain(&a), drain(&b), drain(&k);
    char conv[32];
    create(c, &a, "[\"bob\",\"carol\",\"alice\",\"bob\"]", conv);
    REQUIRE(conv[0]);
    CHECK_EQ_INT(strlen(conv), 18);
    CHECK(!strncmp(conv, "p:", 2));
    /* Everyone, the creator's device included, gets the create message. */
    json_t *m = next_msg(&a);
    CHECK(!strcmp(op_of(m), "create"));
    CHECK_EQ_INT(num(m, "seq"), 1);
    CHECK(!strcmp(str(m, "text"), "alice created the group \"Team 队\""));
    CHECK_EQ_INT(json_array_size(json_object_get(json_object_get(m, "sys"), "uids")), 2);
    json_decref(m);
    m = next_msg(&b);
    CHECK(!strcmp(op_of(m), "create"));
    json_decref(m);
    m = next_msg(&k);
    CHECK(m != NULL);
    json_decref(m);
    CHECK_EQ_INT(left(&d), 0);
    /* The same cid again: the same group, nothing new. */
    json_t *g = call(c, &a,
                     "{\"v\":1,\"type\":\"group_create\",\"id\":\"q\",\"cid\":\"g1\","
                     "\"title\":\"Other\",\"members\":[]}");
    CHECK(!strcmp(str(g, "conv"), conv));
    CHECK(json_is_true(json_object_get(g, "dup")));
    CHECK(!strcmp(str(g, "title"), "Team 队"));
    json_decref(g);
    CHECK_EQ_INT(left(&b), 0);
    /* Bad titles. */
    EXPECT("bad_field", c, &a,
           "{\"v\":1,\"type\":\"group_create\",\"id\":\"q\",\"cid\":\"g2\",\"title\":\"\"}");
    EXPECT(
        "bad_field", c, &a,
        "{\"v\":1,\"type\":\"group_create\",\"id\":\"q\",\"cid\":\"g2\",\"title\":\"a\\u0007\"}");

    /* Roles: a member may not add; the owner makes bob an admin. */
    EXPECT("forbidden", c, &b,
           "{\"v\":1,\"type\":\"group_add\",\"id\":\"q\",\"conv\":\"%s\","
           "\"uids\":[\"dave\"]}",
           conv);
    EXPECT("forbidden", c, &b,
           "{\"v\":1,\"type\":\"group_role\",\"id\":\"q\",\"conv\":\"%s\","
           "\"uid\":\"carol\",\"role\":\"admin\"}",
           conv);
    EXPECT("ok", c, &a,
           "{\"v\":1,\"type\":\"group_role\",\"id\":\"q\",\"conv\":\"%s\","
           "\"uid\":\"bob\",\"role\":\"admin\"}",
           conv);
    m = next_msg(&k);
    CHECK(!strcmp(op_of(m), "role"));
    CHECK(!strcmp(str(m, "text"), "alice made bob an admin"));
    json_decref(m);
    EXPECT("ok", c, &b,
           "{\"v\":1,\"type\":\"group_add\",\"id\":\"q\",\"conv\":\"%s\","
           "\"uids\":[\"dave\",\"carol\"]}",
           conv);
    m = next_msg(&d);
    CHECK(!strcmp(op_of(m), "add"));
    CHECK(!strcmp(str(m, "text"), "bob added dave"));
    json_decref(m);
    /* An admin may not remove the owner, nor rename it to nothing. */
    EXPECT("forbidden", c, &b,
           "{\"v\":1,\"type\":\"group_remove\",\"id\":\"q\",\"conv\":\"%s\","
           "\"uid\":\"alice\"}",
           conv);
    EXPECT("bad_field", c, &b,
           "{\"v\":1,\"type\":\"group_remove\",\"id\":\"q\",\"conv\":\"%s\","
           "\"uid\":\"zed\"}",
           conv);
    EXPECT("ok", c, &b,
           "{\"v\":1,\"type\":\"group_rename\",\"id\":\"q\",\"conv\":\"%s\","
           "\"title\":\"Crew\"}",
           conv);
    /* Members, paged. */
    json_t *p = call(c, &d,
                     "{\"v\":1,\"type\":\"group_members\",\"id\":\"q\",\"conv\":\"%s\","
                     "\"limit\":2}",
                     conv);
    json_t *list = json_object_get(p, "members");
    CHECK_EQ_INT(json_array_size(list), 2);
    CHECK(!strcmp(str(json_array_get(list, 0), "uid"), "alice"));
    CHECK(!strcmp(str(json_array_get(list, 0), "role"), "owner"));
    CHECK(!strcmp(str(json_array_get(list, 1), "role"), "admin"));
    CHECK(!strcmp(str(p, "next"), "bob"));
    json_decref(p);
    p = call(c, &d,
             "{\"v\":1,\"type\":\"group_members\",\"id\":\"q\",\"conv\":\"%s\","
             "\"after\":\"bob\"}",
             conv);
    CHECK_EQ_INT(json_array_size(json_object_get(p, "members")), 2);
    CHECK(!json_object_get(p, "next"));
    json_decref(p);
    /* sync: kind, title, roles; system messages are not unread. */
    json_t *s = call(c, &d, "{\"v\":1,\"type\":\"sync\",\"id\":\"q\"}");
    json_t *convs = json_object_get(s, "convs"), *gc = NULL;
    for (size_t i = 0; i < json_array_size(convs); i++)
        if (!strcmp(str(json_array_get(convs, i), "conv"), conv)) gc = json_array_get(convs, i);
    REQUIRE(gc);
    CHECK(!strcmp(str(gc, "kind"), "group"));
    CHECK(!strcmp(str(gc, "title"), "Crew"));
    CHECK(!strcmp(str(json_object_get(gc, "roles"), "alice"), "owner"));
    CHECK(!strcmp(str(json_object_get(gc, "roles"), "bob"), "admin"));
    CHECK(!json_object_get(json_object_get(gc, "roles"), "dave"));
    CHECK_EQ_INT(num(gc, "unread"), 0);
    CHECK_EQ_INT(json_array_size(json_object_get(gc, "msgs")), 4); /* create role add rename */
    CHECK(!strcmp(str(json_array_get(convs, 0), "kind"), "room")); /* the lobby */
    json_decref(s);
    /* The owner leaves: the earliest admin takes over. */
    drain(&a), drain(&b);
    EXPECT("ok", c, &a, "{\"v\":1,\"type\":\"leave\",\"id\":\"q\",\"conv\":\"%s\"}", conv);
    m = next_msg(&b);
    CHECK(!strcmp(op_of(m), "leave"));
    json_decref(m);
    m = next_msg(&b);
    CHECK(!strcmp(op_of(m), "owner"));
    CHECK(!strcmp(str(m, "text"), "bob is now the owner"));
    json_decref(m);
    m = next_msg(&a);
    CHECK(!strcmp(op_of(m), "leave")); /* alice hears of her own leaving, last */
    json_decref(m);
    CHECK(next_of(&a, "deliver") == NULL);
    EXPECT("forbidden", c, &a, "{\"v\":1,\"type\":\"history\",\"id\":\"q\",\"conv\":\"%s\"}", conv);
    EXPECT("ok", c, &b,
           "{\"v\":1,\"type\":\"group_role\",\"id\":\"q\",\"conv\":\"%s\","
           "\"uid\":\"carol\",\"role\":\"admin\"}",
           conv);
    /* The lobby and direct conversations cannot be left; rooms can. */
    EXPECT("bad_field", c, &a, "{\"v\":1,\"type\":\"leave\",\"id\":\"q\",\"conv\":\"g:lobby\"}");
    EXPECT("ok", c, &a, "{\"v\":1,\"type\":\"join\",\"id\":\"q\",\"conv\":\"g:x\"}");
    EXPECT("ok", c, &a, "{\"v\":1,\"type\":\"leave\",\"id\":\"q\",\"conv\":\"g:x\"}");
    EXPECT("not_member", c, &a, "{\"v\":1,\"type\":\"leave\",\"id\":\"q\",\"conv\":\"g:x\"}");
    EXPECT("bad_field", c, &b,
           "{\"v\":1,\"type\":\"group_add\",\"id\":\"q\",\"conv\":\"g:x\","
           "\"uids\":[\"dave\"]}");
    /* welcome says revision 2. */
    dx__chat_dev a2;
    dev_open(c, &a2, "alice");
    json_t *w = next(&a2);
    CHECK_EQ_INT(num(w, "rev"), 2);
    json_decref(w);
    dev_close(c, &a2);
    dev_close(c, &a), dev_close(c, &b), dev_close(c, &k), dev_close(c, &d);
    dx__chat_free(c);
    reset_outs();
}

/* Every request type that names a conversation, on a group. */
static const char *const ON_GROUP[] = {
    "{\"v\":1,\"type\":\"send\",\"id\":\"q\",\"conv\":\"%s\",\"cid\":\"x1\",\"text\":\"hi\"}",
    "{\"v\":1,\"type\":\"read\",\"id\":\"q\",\"conv\":\"%s\",\"seq\":1}",
    "{\"v\":1,\"type\":\"history\",\"id\":\"q\",\"conv\":\"%s\"}",
    "{\"v\":1,\"type\":\"typing\",\"id\":\"q\",\"conv\":\"%s\"}",
    "{\"v\":1,\"type\":\"join\",\"id\":\"q\",\"conv\":\"%s\"}",
    "{\"v\":1,\"type\":\"leave\",\"id\":\"q\",\"conv\":\"%s\"}",
    "{\"v\":1,\"type\":\"group_add\",\"id\":\"q\",\"conv\":\"%s\",\"uids\":[\"mallory\"]}",
    "{\"v\":1,\"type\":\"group_remove\",\"id\":\"q\",\"conv\":\"%s\",\"uid\":\"bob\"}",
    "{\"v\":1,\"type\":\"group_rename\",\"id\":\"q\",\"conv\":\"%s\",\"title\":\"mine\"}",
    "{\"v\":1,\"type\":\"group_role\",\"id\":\"q\",\"conv\":\"%s\",\"uid\":\"bob\","
    "\"role\":\"admin\"}",
    "{\"v\":1,\"type\":\"group_members\",\"id\":\"q\",\"conv\":\"%s\"}",
    "{\"v\":1,\"type\":\"recall\",\"id\":\"q\",\"conv\":\"%s\",\"seq\":2}",
    "{\"v\":1,\"type\":\"edit\",\"id\":\"q\",\"conv\":\"%s\",\"seq\":2,\"text\":\"x\"}",
    "{\"v\":1,\"type\":\"search\",\"id\":\"q\",\"conv\":\"%s\",\"q\":\"secret\"}",
};

static void test_forbidden_table(void) {
    dx__chat *c = test_engine(NULL);
    REQUIRE(c);
    dx__chat_dev a, b, k, m;
    dev_ready(c, &a, "alice"), dev_ready(c, &b, "bob"), dev_ready(c, &k, "carol");
    dev_ready(c, &m, "mallory");
    char conv[32];
    create(c, &a, "[\"bob\",\"carol\"]", conv);
    REQUIRE(conv[0]);
    EXPECT("ack", c, &a,
           "{\"v\":1,\"type\":\"send\",\"id\":\"q\",\"conv\":\"%s\",\"cid\":\"s1\","
           "\"text\":\"the secret plan\"}",
           conv);
    EXPECT("ok", c, &a,
           "{\"v\":1,\"type\":\"group_remove\",\"id\":\"q\",\"conv\":\"%s\","
           "\"uid\":\"carol\"}",
           conv);
    drain(&k), drain(&m);
    /* An outsider, a former member, and anyone on an id nobody has: the
     * same answer to every request. */
    const char *ids[3] = {conv, conv, "p:zzzzzzzzzzzzzzzz"};
    dx__chat_dev *who[3] = {&m, &k, &m};
    for (int w = 0; w < 3; w++) {
        for (size_t i = 0; i < sizeof ON_GROUP / sizeof ON_GROUP[0]; i++) {
            json_t *r = call(c, who[w], ON_GROUP[i], ids[w]);
            if (strcmp(what(r), "forbidden"))
                fprintf(stderr, "case %d: %s -> %s\n", w, ON_GROUP[i], what(r));
            CHECK(!strcmp(what(r), "forbidden"));
            json_decref(r);
        }
        /* sync does not list it; search without conv finds nothing of it. */
        json_t *s = call(c, who[w], "{\"v\":1,\"type\":\"sync\",\"id\":\"q\"}");
        json_t *convs = json_object_get(s, "convs");
        for (size_t i = 0; i < json_array_size(convs); i++)
            CHECK(strcmp(str(json_array_get(convs, i), "conv"), conv));
        json_decref(s);
        s = call(c, who[w], "{\"v\":1,\"type\":\"search\",\"id\":\"q\",\"q\":\"secret\"}");
        CHECK_EQ_INT(json_array_size(json_object_get(s, "results")), 0);
        json_decref(s);
    }
    /* Nothing of it reached them, and the group is as it was. */
    CHECK(next_of(&m, "deliver") == NULL);
    CHECK(next_of(&k, "deliver") == NULL);
    json_t *s = call(c, &b, "{\"v\":1,\"type\":\"search\",\"id\":\"q\",\"q\":\"secret\"}");
    CHECK_EQ_INT(json_array_size(json_object_get(s, "results")), 1);
    json_decref(s);
    s = call(c, &b, "{\"v\":1,\"type\":\"group_members\",\"id\":\"q\",\"conv\":\"%s\"}", conv);
    CHECK_EQ_INT(json_array_size(json_object_get(s, "members")), 2);
    json_decref(s);
    /* A malformed group id is a bad field, as any malformed id. */
    EXPECT("bad_field", c, &m, "{\"v\":1,\"type\":\"history\",\"id\":\"q\",\"conv\":\"p:abc\"}");
    dev_close(c, &a), dev_close(c, &b), dev_close(c, &k), dev_close(c, &m);
    dx__chat_free(c);
    reset_outs();
}

static void test_removal_cuts_off(void) {
    dx__chat *c = test_engine(NULL);
    REQUIRE(c);
    dx__chat_dev a, b, k, k2;
    dev_ready(c, &a, "alice"), dev_ready(c, &b, "bob"), dev_ready(c, &k, "carol");
    dev_ready(c, &k2, "carol");
    char conv[32];
    create(c, &a, "[\"bob\",\"carol\"]", conv);
    REQUIRE(conv[0]);
    EXPECT("ack", c, &a,
           "{\"v\":1,\"type\":\"send\",\"id\":\"q\",\"conv\":\"%s\",\"cid\":\"s1\",\"text\":\"1\"}",
           conv);
    drain(&a), drain(&b), drain(&k), drain(&k2);
    /* In one turn: the removal, then a message, typing and a read. */
    req(c, &a,
        "{\"v\":1,\"type\":\"group_remove\",\"id\":\"q\",\"conv\":\"XX\",\"uid\":\"carol\"}");
    char buf[256];
    snprintf(buf, sizeof buf,
             "{\"v\":1,\"type\":\"group_remove\",\"id\":\"q\",\"conv\":\"%s\",\"uid\":\"carol\"}",
             conv);
    req(c, &a, buf);
    snprintf(buf, sizeof buf,
             "{\"v\":1,\"type\":\"send\",\"conv\":\"%s\",\"cid\":\"s2\",\"text\":\"after\"}", conv);
    req(c, &a, buf);
    snprintf(buf, sizeof buf, "{\"v\":1,\"type\":\"typing\",\"conv\":\"%s\"}", conv);
    req(c, &a, buf);
    snprintf(buf, sizeof buf, "{\"v\":1,\"type\":\"read\",\"conv\":\"%s\",\"seq\":3}", conv);
    req(c, &b, buf);
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    /* Both of carol's devices: the removal, and nothing after it. */
    dx__chat_dev *kd[2] = {&k, &k2};
    for (int i = 0; i < 2; i++) {
        json_t *m = next_msg(kd[i]);
        CHECK(!strcmp(op_of(m), "remove"));
        CHECK(!strcmp(str(m, "text"), "alice removed carol"));
        json_decref(m);
        CHECK_EQ_INT(left(kd[i]), 0);
    }
    json_t *t = next_of(&b, "typing");
    CHECK(t != NULL);
    json_decref(t);
    /* Later pushes neither. */
    snprintf(buf, sizeof buf, "{\"v\":1,\"type\":\"group_rename\",\"conv\":\"%s\",\"title\":\"x\"}",
             conv);
    req(c, &a, buf);
    CHECK_EQ_INT(dx__chat_flush(c), 0);
    CHECK_EQ_INT(left(&k), 0);
    json_t *dm = next_of(&b, "deliver");
    CHECK(dm != NULL);
    json_decref(dm);
    /* History, for the members, holds the system messages in order. */
    json_t *h = call(c, &b, "{\"v\":1,\"type\":\"history\",\"id\":\"q\",\"conv\":\"%s\"}", conv);
    json_t *msgs = json_object_get(h, "msgs");
    CHECK_EQ_INT(json_array_size(msgs), 5);
    CHECK(!strcmp(op_of(json_array_get(msgs, 0)), "create"));
    CHECK(!strcmp(op_of(json_array_get(msgs, 2)), "remove"));
    CHECK(!strcmp(str(json_array_get(msgs, 3), "text"), "after"));
    CHECK(!json_object_get(json_array_get(msgs, 3), "sys"));
    json_decref(h);
    dev_close(c, &a), dev_close(c, &b), dev_close(c, &k), dev_close(c, &k2);
    dx__chat_free(c);
    reset_outs();
}

int main(void) {
    RUN(test_lifecycle);
    RUN(test_forbidden_table);
    RUN(test_removal_cuts_off);
    return TEST_DONE();
}

/* Recall and edit (src/chat/edits.c) through the engine over a SQLite file:
 * only the sender, recall within the window, the words gone from the
 * database and its search index (looked at directly), the event messages
 * with their target in deliveries, history and sync, edits seen by the
 * other member and the editor's other device. */
#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <duplex/common.h>

#include "chat/engine.h"
#include "chat_test.h"
#include "test.h"

/* A file-backed engine, so that the test can look into the database. */
static dx__chat *file_engine(const char *path) {
    const char *why = NULL;
    dx_t_remove_db(path);
    return test_engine(dx__chat_store_sqlite(path, &why));
}

/* One number from the database at `path`, read by a connection of its own
 * (what is committed). */
static long long db_num(const char *path, const char *sql) {
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    long long n = -1;
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
}

static void test_recall(void) {
    const char *path = "/tmp/dx_test_chat_edit.db";
    dx__chat *c = file_engine(path);
    REQUIRE(c);
    dx__chat_dev a, b;
    dev_ready(c, &a, "alice"), dev_ready(c, &b, "bob");
    EXPECT("ack", c, &a,
           "{\"v\":1,\"type\":\"send\",\"id\":\"q\",\"conv\":\"d:alice:bob\","
           "\"cid\":\"m1\",\"text\":\"top secret words\"}");
    drain(&b);
    /* In the index once a search brought it up to date (the index may lag
     * the commits by a batch: store_sqlite.c, FTS_BATCH). */
    json_t *s0 = call(c, &b, "{\"v\":1,\"type\":\"search\",\"id\":\"q\",\"q\":\"secret\"}");
    CHECK_EQ_INT(json_array_size(json_object_get(s0, "results")), 1);
    json_decref(s0);
    CHECK_EQ_INT(db_num(path, "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH"
                              " '\"secret\"'"),
                 1);
    /* Only the sender recalls. */
    EXPECT("forbidden", c, &b,
           "{\"v\":1,\"type\":\"recall\",\"id\":\"q\",\"conv\":\"d:alice:bob\","
           "\"seq\":1}");
    EXPECT("bad_field", c, &a,
           "{\"v\":1,\"type\":\"recall\",\"id\":\"q\",\"conv\":\"d:alice:bob\","
           "\"seq\":9}");
    clock_ms += 60000;
    EXPECT("ok", c, &a,
           "{\"v\":1,\"type\":\"recall\",\"id\":\"q\",\"conv\":\"d:alice:bob\","
           "\"seq\":1}");
    /* bob's device gets the event, with the message as it is now. */
    json_t *m = next_msg(&b);
    CHECK(!strcmp(op_of(m), "recall"));
    CHECK_EQ_INT(num(json_object_get(m, "sys"), "seq"), 1);
    CHECK(!strcmp(str(m, "text"), "alice recalled a message"));
    json_t *t = json_object_get(m, "target");
    CHECK_EQ_INT(num(t, "seq"), 1);
    CHECK(json_is_true(json_object_get(t, "recalled")));
    CHECK(!strcmp(str(t, "text"), ""));
    json_decref(m);
    /* The words are gone from the database and from its index. */
    CHECK_EQ_INT(db_num(path, "SELECT count(*) FROM messages WHERE text LIKE '%secret%'"), 0);
    CHECK_EQ_INT(db_num(path, "SELECT recalled FROM messages WHERE seq = 1"), 1);
    CHECK_EQ_INT(db_num(path, "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH"
                              " '\"secret\"'"),
                 0);
    json_t *s = call(c, &b, "{\"v\":1,\"type\":\"search\",\"id\":\"q\",\"q\":\"secret\"}");
    CHECK_EQ_INT(json_array_size(json_object_get(s, "results")), 0);
    json_decref(s);
    s = call(c, &b, "{\"v\":1,\"type\":\"search\",\"id\":\"q\",\"q\":\"op\"}"); /* the scan */
    CHECK_EQ_INT(json_array_size(json_object_get(s, "results")), 0);
    json_decref(s);
    /* History and sync show the tombstone, and the event with its target;
     * a repeat is fine; events are not unread. */
    EXPECT("ok", c, &a,
           "{\"v\":1,\"type\":\"recall\",\"id\":\"q\",\"conv\":\"d:alice:bob\","
           "\"seq\":1}");
    json_t *h = call(c, &b, "{\"v\":1,\"type\":\"history\",\"id\":\"q\",\"conv\":\"d:alice:bob\"}");
    json_t *msgs = json_object_get(h, "msgs");
    CHECK_EQ_INT(json_array_size(msgs), 2);
    CHECK(json_is_true(json_object_get(json_array_get(msgs, 0), "recalled")));
    CHECK(json_is_true(
        json_object_get(json_object_get(json_array_get(msgs, 1), "target"), "recalled")));
    json_decref(h);
    s = call(c, &b, "{\"v\":1,\"type\":\"sync\",\"id\":\"q\",\"since\":{\"d:alice:bob\":0}}");
    json_t *conv = json_array_get(json_object_get(s, "convs"), 0);
    CHECK(!strcmp(str(conv, "conv"), "d:alice:bob"));
    CHECK_EQ_INT(num(conv, "unread"), 0); /* neither the tombstone nor the event */
    json_decref(s);
    /* Past the window: too late. System messages are nobody's to recall. */
    EXPECT("ack", c, &a,
           "{\"v\":1,\"type\":\"send\",\"id\":\"q\",\"conv\":\"d:alice:bob\","
           "\"cid\":\"m2\",\"text\":\"late\"}");
    clock_ms += 120001;
    EXPECT("too_late", c, &a,
           "{\"v\":1,\"type\":\"recall\",\"id\":\"q\",\"conv\":\"d:alice:bob\","
           "\"seq\":3}");
    dx__chat_set_recall_window(c, 10 * 60 * 1000);
    EXPECT("ok", c, &a,
           "{\"v\":1,\"type\":\"recall\",\"id\":\"q\",\"conv\":\"d:alice:bob\","
           "\"seq\":3}");
    EXPECT("bad_field", c, &a,
           "{\"v\":1,\"type\":\"recall\",\"id\":\"q\",\"conv\":\"d:alice:bob\","
           "\"seq\":2}");
    dev_close(c, &a), dev_close(c, &b);
    dx__chat_free(c);
    reset_outs();
    remove(path);
}

static void test_edit(void) {
    dx__chat *c = test_engine(NULL);
    REQUIRE(c);
    dx__chat_dev a, a2, b;
    dev_ready(c, &a, "alice"), dev_ready(c, &a2, "alice"), dev_ready(c, &b, "bob");
    EXPECT("ack", c, &a,
           "{\"v\":1,\"type\":\"send\",\"id\":\"q\",\"conv\":\"d:alice:bob\","
           "\"cid\":\"m1\",\"text\":\"helo wrold\"}");
    drain(&a2), drain(&b);
    clock_ms += 1000;
    EXPECT("forbidden", c, &b,
           "{\"v\":1,\"type\":\"edit\",\"id\":\"q\",\"conv\":\"d:alice:bob\","
           "\"seq\":1,\"text\":\"mine\"}");
    EXPECT("bad_field", c, &a,
           "{\"v\":1,\"type\":\"edit\",\"id\":\"q\",\"conv\":\"d:alice:bob\","
           "\"seq\":1,\"text\":\"\"}");
    EXPECT("ok", c, &a,
           "{\"v\":1,\"type\":\"edit\",\"id\":\"q\",\"conv\":\"d:alice:bob\","
           "\"seq\":1,\"text\":\"hello world\"}");
    /* The other device of the editor and the other member hear of it. */
    dx__chat_dev *ds[2] = {&a2, &b};
    for (int i = 0; i < 2; i++) {
        json_t *m = next_msg(ds[i]);
        CHECK(!strcmp(op_of(m), "edit"));
        json_t *t = json_object_get(m, "target");
        CHECK(!strcmp(str(t, "text"), "hello world"));
        CHECK_EQ_INT(num(t, "edited"), clock_ms);
        json_decref(m);
    }
    json_t *h = call(c, &b, "{\"v\":1,\"type\":\"history\",\"id\":\"q\",\"conv\":\"d:alice:bob\"}");
    json_t *first = json_array_get(json_object_get(h, "msgs"), 0);
    CHECK(!strcmp(str(first, "text"), "hello world"));
    CHECK_EQ_INT(num(first, "edited"), clock_ms);
    json_decref(h);
    json_t *s =
        call(c, &b, "{\"v\":1,\"type\":\"sync\",\"id\":\"q\",\"since\":{\"d:alice:bob\":1}}");
    json_t *msgs = json_object_get(json_array_get(json_object_get(s, "convs"), 0), "msgs");
    CHECK_EQ_INT(json_array_size(msgs), 1);
    CHECK(!strcmp(str(json_object_get(json_array_get(msgs, 0), "target"), "text"), "hello world"));
    json_decref(s);
    /* Search sees the new words only. */
    s = call(c, &b, "{\"v\":1,\"type\":\"search\",\"id\":\"q\",\"q\":\"wrold\"}");
    CHECK_EQ_INT(json_array_size(json_object_get(s, "results")), 0);
    json_decref(s);
    s = call(c, &b, "{\"v\":1,\"type\":\"search\",\"id\":\"q\",\"q\":\"world\"}");
    CHECK_EQ_INT(json_array_size(json_object_get(s, "results")), 1);
    json_decref(s);
    /* Neither events nor recalled messages are edited. */
    EXPECT("bad_field", c, &a,
           "{\"v\":1,\"type\":\"edit\",\"id\":\"q\",\"conv\":\"d:alice:bob\","
           "\"seq\":2,\"text\":\"x\"}");
    EXPECT("ok", c, &a,
           "{\"v\":1,\"type\":\"recall\",\"id\":\"q\",\"conv\":\"d:alice:bob\","
           "\"seq\":1}");
    EXPECT("bad_field", c, &a,
           "{\"v\":1,\"type\":\"edit\",\"id\":\"q\",\"conv\":\"d:alice:bob\","
           "\"seq\":1,\"text\":\"x\"}");
    dev_close(c, &a), dev_close(c, &a2), dev_close(c, &b);
    dx__chat_free(c);
    reset_outs();
}

int main(void) {
    RUN(test_recall);
    RUN(test_edit);
    return TEST_DONE();
}

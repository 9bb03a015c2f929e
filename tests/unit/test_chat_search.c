/* Search (src/chat/search.c) through the engine over the SQLite store:
 * Chinese of three characters and more (the FTS5 trigram index) and of
 * fewer (the bounded scan), ASCII case, membership now, pages by `next`,
 * no system or event messages; and the file requests with uploads off. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <duplex/common.h>

#include "chat/engine.h"
#include "chat_test.h"
#include "test.h"

static void send_text(dx__chat *c, dx__chat_dev *d, const char *conv, const char *text) {
    static int n;
    EXPECT("ack", c, d,
           "{\"v\":1,\"type\":\"send\",\"id\":\"q\",\"conv\":\"%s\",\"cid\":\"c%d\","
           "\"text\":\"%s\"}",
           conv, ++n, text);
}

static size_t results(dx__chat *c, dx__chat_dev *d, const char *extra, const char *q) {
    json_t *s = call(c, d, "{\"v\":1,\"type\":\"search\",\"id\":\"q\",\"q\":\"%s\"%s}", q, extra);
    size_t n = json_array_size(json_object_get(s, "results"));
    if (!json_is_array(json_object_get(s, "results"))) fprintf(stderr, "search: %s\n", what(s));
    json_decref(s);
    return n;
}

static void test_search(void) {
    dx__chat *c = test_engine(NULL);
    REQUIRE(c);
    dx__chat_dev a, b;
    dev_ready(c, &a, "alice"), dev_ready(c, &b, "bob");
    EXPECT("ok", c, &a, "{\"v\":1,\"type\":\"join\",\"id\":\"q\",\"conv\":\"g:r\"}");
    send_text(c, &a, "d:alice:bob", "你好世界");
    send_text(c, &a, "d:alice:bob", "今天天气很好");
    send_text(c, &b, "d:alice:bob", "Hello World");
    send_text(c, &a, "d:alice:bob", "say hello");
    send_text(c, &a, "g:r", "hello room");
    /* Three characters and more: the trigram index; fewer: the scan. */
    CHECK_EQ_INT(results(c, &b, "", "你好世"), 1);
    CHECK_EQ_INT(results(c, &b, "", "你好"), 1);
    CHECK_EQ_INT(results(c, &b, "", "好"), 2);
    CHECK_EQ_INT(results(c, &b, "", "天气很"), 1);
    /* Case-insensitive for ASCII, only where one is a member. */
    CHECK_EQ_INT(results(c, &b, "", "HELLO"), 2);
    CHECK_EQ_INT(results(c, &a, "", "HELLO"), 3);
    CHECK_EQ_INT(results(c, &a, "", "lo"), 3);
    CHECK_EQ_INT(results(c, &a, ",\"conv\":\"g:r\"", "hello"), 1);
    CHECK_EQ_INT(results(c, &a, ",\"conv\":\"g:r\"", "lo"), 1);
    json_t *e = call(c, &b,
                     "{\"v\":1,\"type\":\"search\",\"id\":\"q\",\"q\":\"hello\","
                     "\"conv\":\"g:r\"}");
    CHECK(!strcmp(what(e), "not_member"));
    json_decref(e);
    /* Newest first, with the whole message object. */
    json_t *s = call(c, &a, "{\"v\":1,\"type\":\"search\",\"id\":\"q\",\"q\":\"hello\"}");
    json_t *r = json_object_get(s, "results");
    CHECK(!strcmp(str(json_array_get(r, 0), "text"), "hello room"));
    CHECK(!strcmp(str(json_array_get(r, 2), "text"), "Hello World"));
    CHECK(!strcmp(str(json_array_get(r, 2), "from"), "bob"));
    CHECK(!json_object_get(s, "next"));
    json_decref(s);
    /* Quotes and FTS syntax in the query are just text. */
    send_text(c, &a, "d:alice:bob", "a \\\"quoted\\\" AND NOT word*");
    CHECK_EQ_INT(results(c, &b, "", "\\\"quoted\\\" AND"), 1);
    CHECK_EQ_INT(results(c, &b, "", "word*"), 1);
    /* Bounds. */
    EXPECT("bad_field", c, &b, "{\"v\":1,\"type\":\"search\",\"id\":\"q\",\"q\":\"a\"}");
    EXPECT("bad_field", c, &b, "{\"v\":1,\"type\":\"search\",\"id\":\"q\",\"q\":5}");
    dev_close(c, &a), dev_close(c, &b);
    dx__chat_free(c);
    reset_outs();
}

/* Pages of `limit` by `next`, for both the index and the scan. */
static void test_search_pages(void) {
    dx__chat *c = test_engine(NULL);
    REQUIRE(c);
    dx__chat_dev a, b;
    dev_ready(c, &a, "alice"), dev_ready(c, &b, "bob");
    for (int i = 0; i < 7; i++) {
        char t[32];
        snprintf(t, sizeof t, "xyz number %d", i);
        send_text(c, &a, "d:alice:bob", t);
        send_text(c, &a, "d:alice:bob", "filler");
    }
    const char *qs[2] = {"xyz", "xy"};
    for (int k = 0; k < 2; k++) {
        long long before = 0, got = 0, pages = 0, last_mid = 1LL << 60;
        do {
            char extra[64];
            snprintf(extra, sizeof extra, ",\"limit\":3%s%lld", before ? ",\"before\":" : "",
                     before);
            if (!before) snprintf(extra, sizeof extra, ",\"limit\":3");
            json_t *s = call(c, &b, "{\"v\":1,\"type\":\"search\",\"id\":\"q\",\"q\":\"%s\"%s}",
                             qs[k], extra);
            json_t *r = json_object_get(s, "results");
            for (size_t i = 0; i < json_array_size(r); i++) {
                long long mid = num(json_array_get(r, i), "mid");
                CHECK(mid < last_mid);
                last_mid = mid;
            }
            got += (long long)json_array_size(r);
            before = num(s, "next");
            pages++;
            json_decref(s);
        } while (before && pages < 10);
        CHECK_EQ_INT(got, 7);
        CHECK_EQ_INT(pages, 3);
    }
    json_t *e =
        call(c, &b, "{\"v\":1,\"type\":\"search\",\"id\":\"q\",\"q\":\"xyz\",\"limit\":51}");
    CHECK(!strcmp(what(e), "bad_field"));
    json_decref(e);
    dev_close(c, &a), dev_close(c, &b);
    dx__chat_free(c);
    reset_outs();
}

/* System and event messages are not found, nor groups one left. */
static void test_search_scope(void) {
    dx__chat *c = test_engine(NULL);
    REQUIRE(c);
    dx__chat_dev a, b;
    dev_ready(c, &a, "alice"), dev_ready(c, &b, "bob");
    json_t *g = call(c, &a,
                     "{\"v\":1,\"type\":\"group_create\",\"id\":\"q\",\"cid\":\"g\","
                     "\"title\":\"T\",\"members\":[\"bob\"]}");
    char conv[32];
    snprintf(conv, sizeof conv, "%s", str(g, "conv"));
    json_decref(g);
    send_text(c, &a, conv, "group words");
    CHECK_EQ_INT(results(c, &b, "", "created"), 0);
    CHECK_EQ_INT(results(c, &b, "", "group"), 1);
    CHECK_EQ_INT(results(c, &b, "", "gr"), 1);
    EXPECT("ok", c, &b, "{\"v\":1,\"type\":\"leave\",\"id\":\"q\",\"conv\":\"%s\"}", conv);
    CHECK_EQ_INT(results(c, &b, "", "group"), 0);
    CHECK_EQ_INT(results(c, &b, "", "gr"), 0);
    CHECK_EQ_INT(results(c, &a, "", "left"), 0);
    dev_close(c, &a), dev_close(c, &b);
    dx__chat_free(c);
    reset_outs();
}

/* Without dx__chat_set_files: uploads are off, and say so. */
static void test_files_off(void) {
    dx__chat *c = test_engine(NULL);
    REQUIRE(c);
    dx__chat_dev a;
    dev_ready(c, &a, "alice");
    json_t *e = call(c, &a,
                     "{\"v\":1,\"type\":\"upload\",\"id\":\"q\",\"name\":\"a.jpg\","
                     "\"size\":10}");
    CHECK(!strcmp(what(e), "bad_type"));
    CHECK(!strcmp(str(e, "message"), "uploads are off on this server"));
    json_decref(e);
    dx__chat_message(c, &a, "\x01\x02\x03", 3, 1);
    e = next(&a);
    CHECK(!strcmp(what(e), "bad_json"));
    json_decref(e);
    char id[65];
    memset(id, 'a', 64);
    id[64] = 0;
    e = call(c, &a,
             "{\"v\":1,\"type\":\"send\",\"id\":\"q\",\"conv\":\"d:alice:bob\","
             "\"cid\":\"f1\",\"text\":\"\",\"file\":{\"id\":\"%s\",\"name\":\"a.jpg\"}}",
             id);
    CHECK(!strcmp(what(e), "bad_type"));
    json_decref(e);
    /* An empty text stays refused without a file. */
    e = call(c, &a,
             "{\"v\":1,\"type\":\"send\",\"id\":\"q\",\"conv\":\"d:alice:bob\","
             "\"cid\":\"f1\",\"text\":\"\"}");
    CHECK(!strcmp(what(e), "bad_field"));
    json_decref(e);
    char name[256];
    CHECK_EQ_INT(dx__chat_file_visible(c, "alice", "d:alice:bob", id, name), 0);
    CHECK_EQ_INT(dx__chat_file_visible(c, "alice", "nonsense", "x", name), 0);
    dev_close(c, &a);
    dx__chat_free(c);
    reset_outs();
}

int main(void) {
    RUN(test_search);
    RUN(test_search_pages);
    RUN(test_search_scope);
    RUN(test_files_off);
    return TEST_DONE();
}

/* The engine's side of files (src/chat/attach.c) with the real files.c in
 * a temporary directory: `upload` and binary chunks routed there with the
 * request's id, a send that attaches a file (yours, or one you can read
 * already; `no_file` otherwise), the download check, and a recall that lets
 * the bytes go only when no message holds them any more. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <duplex/common.h>

#include "chat/engine.h"
#include "chat/files.h"
#include "chat_test.h"
#include "test.h"

/* sha256("hello") */
#define HELLO_ID "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Uploads "hello" as `d`: the id of the file, or "" (64 + 1 bytes). */
static void upload_hello(dx__chat *c, dx__chat_dev *d, char id[65]) {
    id[0] = 0;
    json_t *u =
        call(c, d, "{\"v\":1,\"type\":\"upload\",\"id\":\"q\",\"name\":\"a.txt\",\"size\":5}");
    CHECK(!strcmp(what(u), "upload"));
    CHECK_EQ_INT(num(u, "offset"), 0);
    const char *tok = str(u, "upload");
    uint8_t chunk[16 + 8 + 5] = {0};
    int ok = strlen(tok) == 32;
    for (int i = 0; ok && i < 16; i++) {
        int hi = hexval(tok[2 * i]), lo = hexval(tok[2 * i + 1]);
        ok = hi >= 0 && lo >= 0;
        chunk[i] = (uint8_t)(hi * 16 + lo);
    }
    CHECK(ok);
    json_decref(u);
    memcpy(chunk + 24, "hello", 5);
    dx__chat_message(c, d, (const char *)chunk, sizeof chunk, 1);
    json_t *done = next_of(d, "uploaded");
    CHECK(!strcmp(what(done), "uploaded"));
    CHECK(!strcmp(str(done, "id"), "q")); /* the upload request's */
    snprintf(id, 65, "%s", str(json_object_get(done, "file"), "id"));
    json_decref(done);
}

static void test_files(void) {
    char dir[] = "/tmp/dx-chat-files.XXXXXX";
    REQUIRE(mkdtemp(dir));
    const char *why = NULL;
    dx__chat_files *f = dx__chat_files_new(dir, 0, &why);
    if (!f) fprintf(stderr, "files: %s\n", why);
    REQUIRE(f);
    dx__chat *c = test_engine(NULL);
    REQUIRE(c);
    dx__chat_set_files(c, f);
    dx__chat_dev a, b, k, m;
    dev_ready(c, &a, "alice"), dev_ready(c, &b, "bob"), dev_ready(c, &k, "carol");
    dev_ready(c, &m, "mallory");
    char id[65];
    upload_hello(c, &a, id);
    CHECK(!strcmp(id, HELLO_ID));
    /* Checks of the file object. */
    EXPECT("bad_field", c, &a,
           "{\"v\":1,\"type\":\"send\",\"id\":\"q\",\"conv\":\"d:alice:bob\",\"cid\":\"x\","
           "\"text\":\"\",\"file\":{\"id\":\"abc\",\"name\":\"a.txt\"}}");
    EXPECT("bad_field", c, &a,
           "{\"v\":1,\"type\":\"send\",\"id\":\"q\",\"conv\":\"d:alice:bob\",\"cid\":\"x\","
           "\"text\":\"\",\"file\":{\"id\":\"%s\",\"name\":\"\"}}",
           id);
    EXPECT("bad_field", c, &a,
           "{\"v\":1,\"type\":\"send\",\"id\":\"q\",\"conv\":\"d:alice:bob\",\"cid\":\"x\","
           "\"text\":\"\",\"file\":{\"id\":\"%s\",\"name\":\"a\",\"w\":0}}",
           id);
    /* Not uploaded by mallory, nor in any conversation of hers. */
    EXPECT("no_file", c, &m,
           "{\"v\":1,\"type\":\"send\",\"id\":\"q\",\"conv\":\"d:bob:mallory\",\"cid\":\"x\","
           "\"text\":\"\",\"file\":{\"id\":\"%s\",\"name\":\"a.txt\"}}",
           id);
    char other[65];
    memset(other, 'e', 64);
    other[64] = 0;
    EXPECT("no_file", c, &a,
           "{\"v\":1,\"type\":\"send\",\"id\":\"q\",\"conv\":\"d:alice:bob\",\"cid\":\"x\","
           "\"text\":\"\",\"file\":{\"id\":\"%s\",\"name\":\"a.txt\"}}",
           other);
    /* alice attaches it, with an empty caption; bob gets the file object
     * with the server's size and type. */
    EXPECT("ack", c, &a,
           "{\"v\":1,\"type\":\"send\",\"id\":\"q\",\"conv\":\"d:alice:bob\",\"cid\":\"f1\","
           "\"text\":\"\",\"file\":{\"id\":\"%s\",\"name\":\"a.txt\",\"w\":3,\"h\":4,"
           "\"size\":999}}",
           id);
    json_t *msg = next_msg(&b);
    json_t *fo = json_object_get(msg, "file");
    CHECK(!strcmp(str(fo, "id"), id));
    CHECK(!strcmp(str(fo, "name"), "a.txt"));
    CHECK_EQ_INT(num(fo, "size"), 5);
    CHECK_EQ_INT(num(fo, "w"), 3);
    CHECK(strlen(str(fo, "type")) > 0);
    json_decref(msg);
    /* bob forwards it: the file is in a conversation he reads. */
    EXPECT("ack", c, &b,
           "{\"v\":1,\"type\":\"send\",\"id\":\"q\",\"conv\":\"d:bob:carol\",\"cid\":\"f2\","
           "\"text\":\"look\",\"file\":{\"id\":\"%s\",\"name\":\"b.txt\"}}",
           id);
    char name[256];
    CHECK_EQ_INT(dx__chat_file_visible(c, "bob", "d:alice:bob", id, name), 1);
    CHECK(!strcmp(name, "a.txt"));
    CHECK_EQ_INT(dx__chat_file_visible(c, "carol", "d:bob:carol", id, name), 1);
    CHECK(!strcmp(name, "b.txt"));
    CHECK_EQ_INT(dx__chat_file_visible(c, "carol", "d:alice:bob", id, name), 0);
    CHECK_EQ_INT(dx__chat_file_visible(c, "mallory", "d:bob:carol", id, name), 0);
    /* alice recalls hers: bob's message still holds the bytes. */
    EXPECT("ok", c, &a,
           "{\"v\":1,\"type\":\"recall\",\"id\":\"q\",\"conv\":\"d:alice:bob\",\"seq\":1}");
    CHECK_EQ_INT(dx__chat_file_visible(c, "bob", "d:alice:bob", id, name), 0);
    int64_t size = 0;
    char type[DX_CHAT_FILE_TYPE_MAX];
    CHECK_EQ_INT(dx__chat_files_stat(f, id, &size, type), 0);
    /* bob recalls his: nothing holds them, they go. */
    EXPECT("ok", c, &b,
           "{\"v\":1,\"type\":\"recall\",\"id\":\"q\",\"conv\":\"d:bob:carol\",\"seq\":1}");
    CHECK_EQ_INT(dx__chat_files_stat(f, id, &size, type), DX_EINVAL);
    CHECK_EQ_INT(dx__chat_file_visible(c, "carol", "d:bob:carol", id, name), 0);
    /* A file message is not edited. */
    dev_close(c, &a), dev_close(c, &b), dev_close(c, &k), dev_close(c, &m);
    dx__chat_free(c);
    dx__chat_files_free(f);
    reset_outs();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

int main(void) {
    RUN(test_files);
    return TEST_DONE();
}

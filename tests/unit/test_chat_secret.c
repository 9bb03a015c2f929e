/* The chat's token secret (src/chat/service.c, dx_chat_new): no secret at
 * all is the development mode (?uid=), but a secret that is given and empty
 * (an unset variable) or shorter than 16 bytes is refused with a reason,
 * never taken as "authentication off". */
#include <string.h>

#include <duplex/chat.h>

#include "test.h"

/* dx_chat_new with this secret: 1 when it made a chat (then freed). */
static int opens(dx_loop *loop, const void *secret, size_t len) {
    dx_chat_config cc = {.secret = secret, .secret_len = len};
    dx_chat *chat = dx_chat_new(loop, &cc);
    dx_chat_free(chat);
    return chat != NULL;
}

static void test_refused(void) {
    dx_loop *loop = dx_loop_new(0);
    REQUIRE(loop != NULL);
    CHECK(!opens(loop, "", 0)); /* given, but empty */
    CHECK(strstr(dx_chat_new_why(), "16 bytes") != NULL);
    CHECK(!opens(loop, "s3cret", 6));
    CHECK(strstr(dx_chat_new_why(), "16 bytes") != NULL);
    CHECK(!opens(loop, "0123456789abcde", 15)); /* one short */
    CHECK(!opens(loop, NULL, 32));              /* a length without a key */
    dx_loop_free(loop);
}

static void test_accepted(void) {
    dx_loop *loop = dx_loop_new(0);
    REQUIRE(loop != NULL);
    CHECK(opens(loop, "0123456789abcdef", 16));
    CHECK(opens(loop, "0123456789abcdef0123456789abcdef", 32));
    CHECK(opens(loop, NULL, 0)); /* no secret: the development mode */
    dx_loop_free(loop);
}

int main(void) {
    RUN(test_refused);
    RUN(test_accepted);
    return TEST_DONE();
}

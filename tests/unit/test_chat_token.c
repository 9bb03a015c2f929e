/* Signed chat tokens (src/chat/token.c): a token checks with its secret
 * until it expires, and any change — another secret, another uid, a
 * flipped signature byte, a later expiry, junk — is refused. */
#include <stdio.h>
#include <string.h>

#include <duplex/chat.h>

#include "test.h"

static const char SECRET[] = "s3cret-key";
#define S SECRET, sizeof SECRET - 1

static void test_roundtrip(void) {
    char tok[128], uid[33];
    int n = dx_chat_token(S, "alice", 2000000000, tok, sizeof tok);
    REQUIRE(n > 0);
    CHECK_EQ_INT((size_t)n, strlen(tok));
    CHECK(!strncmp(tok, "alice.2000000000.", 17));
    CHECK_EQ_INT(strlen(tok), 17 + 43);
    CHECK_EQ_INT(dx_chat_token_check(S, tok, (size_t)n, 1999999999, uid, sizeof uid), 0);
    CHECK(!strcmp(uid, "alice"));
    /* Deterministic: the same inputs give the same token. */
    char again[128];
    CHECK_EQ_INT(dx_chat_token(S, "alice", 2000000000, again, sizeof again), n);
    CHECK(!strcmp(tok, again));
}

static void test_refused(void) {
    char tok[128], bad[160], uid[33];
    int n = dx_chat_token(S, "alice", 1000, tok, sizeof tok);
    REQUIRE(n > 0);
    CHECK_EQ_INT(dx_chat_token_check(S, tok, (size_t)n, 1000, uid, sizeof uid), DX_EPOLICY);
    CHECK_EQ_INT(dx_chat_token_check(S, tok, (size_t)n, 999, uid, sizeof uid), 0);
    CHECK_EQ_INT(dx_chat_token_check("other", 5, tok, (size_t)n, 999, uid, sizeof uid), DX_EPOLICY);
    for (int i = 0; i < n; i++) {
        memcpy(bad, tok, (size_t)n);
        bad[i] = bad[i] == 'A' ? 'B' : 'A';
        CHECK_EQ_INT(dx_chat_token_check(S, bad, (size_t)n, 999, uid, sizeof uid), DX_EPOLICY);
    }
    /* Someone else's name on alice's signature, a stretched expiry. */
    snprintf(bad, sizeof bad, "bob%s", tok + 5);
    CHECK_EQ_INT(dx_chat_token_check(S, bad, strlen(bad), 999, uid, sizeof uid), DX_EPOLICY);
    snprintf(bad, sizeof bad, "alice.9%s", tok + 6);
    CHECK_EQ_INT(dx_chat_token_check(S, bad, strlen(bad), 999, uid, sizeof uid), DX_EPOLICY);
    static const char *const junk[] = {"", ".", "..", "alice", "alice.1", "alice..x",
                                       "a:b.99.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                                       "alice.x9.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        CHECK_EQ_INT(dx_chat_token_check(S, junk[i], strlen(junk[i]), 0, uid, sizeof uid),
                     DX_EPOLICY);
    CHECK_EQ_INT(dx_chat_token_check(S, tok, (size_t)n, 999, uid, 8), DX_EPOLICY); /* small */
}

static void test_bad_arguments(void) {
    char tok[128];
    CHECK_EQ_INT(dx_chat_token(NULL, 0, "alice", 1, tok, sizeof tok), DX_EINVAL);
    CHECK_EQ_INT(dx_chat_token(S, "a b", 1, tok, sizeof tok), DX_EINVAL);
    CHECK_EQ_INT(dx_chat_token(S, "", 1, tok, sizeof tok), DX_EINVAL);
    CHECK_EQ_INT(dx_chat_token(S, "alice", 1, tok, 20), DX_ENOSPC);
}

int main(void) {
    RUN(test_roundtrip);
    RUN(test_refused);
    RUN(test_bad_arguments);
    return TEST_DONE();
}

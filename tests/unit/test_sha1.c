/* Tests for the handshake's SHA-1 and base64 (src/core/sha1.c): the FIPS
 * 180 examples, RFC 4648's base64 examples, and every length from 0 to
 * 300 bytes fed at random split points, checked against libcrypto. */
#include <openssl/evp.h>

#include "core/sha1.h"
#include "test.h"

static void hex(const uint8_t *d, size_t n, char *out) {
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static void sha1_hex(const void *data, size_t len, char out[41]) {
    dx__sha1 s;
    uint8_t md[20];
    dx__sha1_init(&s);
    dx__sha1_update(&s, data, len);
    dx__sha1_final(&s, md);
    hex(md, 20, out);
}

static void check_fips(void) {
    char out[41];
    sha1_hex("abc", 3, out);
    CHECK(strcmp(out, "a9993e364706816aba3e25717850c26c9cd0d89d") == 0);
    sha1_hex("", 0, out);
    CHECK(strcmp(out, "da39a3ee5e6b4b0d3255bfef95601890afd80709") == 0);
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha1_hex(two, strlen(two), out);
    CHECK(strcmp(out, "84983e441c3bd26ebaae4aa1f95129e5e54670f1") == 0);
    /* A million 'a', in pieces of 1000. */
    static uint8_t a[1000];
    memset(a, 'a', sizeof a);
    dx__sha1 s;
    uint8_t md[20];
    dx__sha1_init(&s);
    for (int i = 0; i < 1000; i++)
        dx__sha1_update(&s, a, sizeof a);
    dx__sha1_final(&s, md);
    hex(md, 20, out);
    CHECK(strcmp(out, "34aa973cd4c4daa4f61eeb2bdbad27316534016f") == 0);
}

static void check_base64(void) {
    static const char *const want[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                       "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    char out[16];
    for (size_t n = 0; n <= 6; n++) {
        size_t len = dx__base64(out, (const uint8_t *)"foobar", n);
        CHECK(strcmp(out, want[n]) == 0);
        CHECK_EQ_INT(len, strlen(want[n]));
    }
    uint8_t all[3] = {0xfb, 0xff, 0xbf};
    dx__base64(out, all, 3);
    CHECK(strcmp(out, "+/+/") == 0);
}

static void check_against_libcrypto(void) {
    uint8_t buf[300];
    srand(7);
    for (size_t len = 0; len <= sizeof buf; len++) {
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rand();
        dx__sha1 s;
        uint8_t md[20], ref[20];
        unsigned rlen = 0;
        dx__sha1_init(&s);
        for (size_t off = 0; off < len;) {
            size_t n = 1 + (size_t)rand() % (len - off);
            dx__sha1_update(&s, buf + off, n);
            off += n;
        }
        dx__sha1_final(&s, md);
        CHECK(EVP_Digest(buf, len, ref, &rlen, EVP_sha1(), NULL) == 1 && rlen == 20);
        CHECK(memcmp(md, ref, 20) == 0);
        char mine[4 * 100 + 4], theirs[4 * 100 + 4];
        size_t b = len < 300 ? len : 299;
        dx__base64(mine, buf, b);
        EVP_EncodeBlock((unsigned char *)theirs, buf, (int)b);
        CHECK(strcmp(mine, theirs) == 0);
    }
}

int main(void) {
    RUN(check_fips);
    RUN(check_base64);
    RUN(check_against_libcrypto);
    return TEST_DONE();
}

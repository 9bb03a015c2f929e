/* Masking: every length, offset and alignment against a byte-by-byte
 * reference, on the SIMD path and (re-run with DX_NO_SIMD=1 by the test
 * itself) the portable one. */
#include <stdlib.h>
#include <unistd.h>

#include <duplex/mask.h>

#include "test.h"

static void reference(uint8_t *d, const uint8_t *s, size_t n, const uint8_t k[4], uint64_t off) {
    for (size_t i = 0; i < n; i++) d[i] = s[i] ^ k[(off + i) & 3];
}

static void test_every_length_offset_alignment(void) {
    uint8_t src[400], ref[400], buf[400 + 64];
    const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    for (size_t i = 0; i < sizeof src; i++) src[i] = (uint8_t)dx_t_rand();
    for (size_t len = 0; len <= 300; len++) {
        for (uint64_t off = 0; off < 8; off++) {
            for (size_t align = 0; align < 8; align++) {
                reference(ref, src, len, key, off);
                uint8_t *p = buf + align;
                memcpy(p, src, len);
                dx_mask(p, len, key, off);
                CHECK(memcmp(p, ref, len) == 0);
                memset(buf, 0, sizeof buf);
                dx_mask_copy(p, src, len, key, off);
                CHECK(memcmp(p, ref, len) == 0);
            }
        }
    }
}

static void test_split_equals_whole(void) {
    uint8_t whole[5000], split[5000];
    const uint8_t key[4] = {1, 2, 3, 4};
    for (size_t i = 0; i < sizeof whole; i++) whole[i] = split[i] = (uint8_t)i;
    dx_mask(whole, sizeof whole, key, 0);
    size_t pos = 0;
    while (pos < sizeof split) {
        size_t n = 1 + dx_t_rand() % 700;
        if (n > sizeof split - pos) n = sizeof split - pos;
        dx_mask(split + pos, n, key, pos);
        pos += n;
    }
    CHECK(memcmp(whole, split, sizeof whole) == 0);
}

static void test_involution_large(void) {
    size_t n = (1 << 20) + 13;
    uint8_t *a = malloc(n), *b = malloc(n);
    REQUIRE(a && b);
    for (size_t i = 0; i < n; i++) a[i] = b[i] = (uint8_t)(i * 7);
    const uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
    dx_mask(a, n, key, 3);
    CHECK(memcmp(a, b, n) != 0);
    dx_mask(a, n, key, 3);
    CHECK(memcmp(a, b, n) == 0);
    free(a);
    free(b);
}

int main(int argc, char **argv) {
    dx_t_seed();
    RUN(test_every_length_offset_alignment);
    RUN(test_split_equals_whole);
    RUN(test_involution_large);
    int rc = TEST_DONE();
    /* Then the same tests again on the portable path, in a fresh process
     * (the SIMD choice is made once per process). */
    if (rc == 0 && !getenv("DX_NO_SIMD")) {
        setenv("DX_NO_SIMD", "1", 1);
        fflush(stdout);
        execv("/proc/self/exe", argv);
        return 1;
    }
    return rc;
}

/* UTF-8 validation: boundaries, every invalid class, every split point,
 * fail-fast, and random input against a decoder-based reference, on the
 * SIMD and (re-exec with DX_NO_SIMD=1) portable paths. */
#include <unistd.h>

#include <duplex/utf8.h>

#include "test.h"

/* Reference: decode code points and check ranges (RFC 3629). Returns the
 * index of the first byte at which the input can no longer be valid, or
 * len when valid, or len+1 when it ends inside a code point. */
static size_t ref_check(const uint8_t *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        uint8_t b = s[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if (b >= 0xC2 && b <= 0xDF) n = 2, cp = b & 0x1F, min = 0x80;
        else if (b >= 0xE0 && b <= 0xEF) n = 3, cp = b & 0x0F, min = 0x800;
        else if (b >= 0xF0 && b <= 0xF4) n = 4, cp = b & 0x07, min = 0x10000;
        else return i;
        for (size_t k = 1; k < n; k++) {
            if (i + k >= len) return len + 1;
            if ((s[i + k] & 0xC0) != 0x80) return i + k;
            cp = (cp << 6) | (s[i + k] & 0x3F);
            /* Fail fast: after the second byte the range is known. */
            if (k == 1) {
                uint32_t hi = cp << (6 * (n - 2));
                uint32_t lo_max = hi | ((1u << (6 * (n - 2))) - 1);
                if (lo_max < min || hi > 0x10FFFF || (hi >= 0xD800 && hi <= 0xDFFF))
                    return i + 1;
            }
        }
        (void)min;
        i += n;
    }
    return len;
}

/* Feeds `s` in pieces at the given cut points; returns the index of the
 * piece whose feed failed, -1 if none failed. */
static int feed_pieces(const uint8_t *s, size_t len, const size_t *cuts, int ncuts, int *finish) {
    dx_utf8 v;
    dx_utf8_init(&v);
    size_t pos = 0;
    for (int i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        if (dx_utf8_feed(&v, s + pos, end - pos) != 0) return i;
        pos = end;
    }
    *finish = dx_utf8_finish(&v);
    return -1;
}

static void expect(const char *s, size_t len, int valid) {
    const uint8_t *u = (const uint8_t *)s;
    CHECK_EQ_INT(dx_utf8_valid(u, len) == 0, valid);
    size_t r = ref_check(u, len);
    CHECK_EQ_INT(r == len, valid);
    /* Every single split point and byte-at-a-time agree with the whole. */
    for (size_t cut = 0; cut <= len; cut++) {
        int fin = 0;
        int failed = feed_pieces(u, len, &cut, 1, &fin);
        CHECK_EQ_INT(failed < 0 && fin == 0, valid);
        if (!valid && r < len) {
            /* The piece holding the first bad byte is the one that fails. */
            CHECK_EQ_INT(failed, r < cut ? 0 : 1);
        }
    }
    dx_utf8 v;
    dx_utf8_init(&v);
    int failed_at = -1;
    for (size_t i = 0; i < len && failed_at < 0; i++)
        if (dx_utf8_feed(&v, u + i, 1)) failed_at = (int)i;
    if (valid) {
        CHECK_EQ_INT(failed_at, -1);
        CHECK_EQ_INT(dx_utf8_finish(&v), 0);
    } else if (r < len) {
        CHECK_EQ_INT(failed_at, (int)r); /* fail fast, at the very byte */
    } else {
        CHECK(failed_at == -1 && dx_utf8_finish(&v) != 0); /* truncated */
    }
}

#define OK(s) expect(s, sizeof(s) - 1, 1)
#define BAD(s) expect(s, sizeof(s) - 1, 0)

static void test_boundaries(void) {
    expect("\x00", 1, 1);
    OK("\x7f");
    OK("\xc2\x80");         /* U+0080 */
    OK("\xdf\xbf");         /* U+07FF */
    OK("\xe0\xa0\x80");     /* U+0800 */
    OK("\xed\x9f\xbf");     /* U+D7FF */
    OK("\xee\x80\x80");     /* U+E000 */
    OK("\xef\xbf\xbf");     /* U+FFFF */
    OK("\xf0\x90\x80\x80"); /* U+10000 */
    OK("\xf4\x8f\xbf\xbf"); /* U+10FFFF */
    OK("κόσμε");
    OK("Hello-µ@ßöäüàá-UTF-8!!");
    OK("你好，世界 😀 ok");
    OK("");
}

static void test_invalid_classes(void) {
    BAD("\x80");                 /* stray continuation */
    BAD("\xbf");
    BAD("\xc0\xaf");             /* overlong '/' */
    BAD("\xc1\xbf");
    BAD("\xe0\x80\xaf");         /* overlong */
    BAD("\xe0\x9f\xbf");
    BAD("\xf0\x80\x80\xaf");
    BAD("\xf0\x8f\xbf\xbf");
    BAD("\xed\xa0\x80");         /* U+D800 */
    BAD("\xed\xbf\xbf");         /* U+DFFF */
    BAD("\xed\xa0\x80\xed\xb0\x80"); /* surrogate pair */
    BAD("\xf4\x90\x80\x80");     /* U+110000 */
    BAD("\xf5\x80\x80\x80");
    BAD("\xf8\x88\x80\x80\x80");
    BAD("\xfe");
    BAD("\xff");
    BAD("\xc2");                 /* truncated */
    BAD("\xe2\x82");
    BAD("\xf0\x9f\x98");
    BAD("\xc2\x41");             /* lead then ASCII */
    BAD("\xe2\x28\xa1");
    BAD("κόσμε\xed\xa0\x80" "edited");
    BAD("Hello\xc0\x80World");
}

/* Builds a random valid string from random code points. */
static size_t random_valid(uint8_t *out, size_t cap) {
    size_t n = 0;
    while (n + 4 <= cap) {
        uint32_t cp;
        switch (dx_t_rand() % 4) {
        case 0: cp = (uint32_t)(dx_t_rand() % 0x80); break;
        case 1: cp = 0x80 + (uint32_t)(dx_t_rand() % (0x800 - 0x80)); break;
        case 2:
            cp = 0x800 + (uint32_t)(dx_t_rand() % (0x10000 - 0x800));
            if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0x4E2D;
            break;
        default: cp = 0x10000 + (uint32_t)(dx_t_rand() % (0x110000 - 0x10000)); break;
        }
        if (cp < 0x80) out[n++] = (uint8_t)cp;
        else if (cp < 0x800) {
            out[n++] = (uint8_t)(0xC0 | cp >> 6);
            out[n++] = (uint8_t)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out[n++] = (uint8_t)(0xE0 | cp >> 12);
            out[n++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            out[n++] = (uint8_t)(0x80 | (cp & 0x3F));
        } else {
            out[n++] = (uint8_t)(0xF0 | cp >> 18);
            out[n++] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
            out[n++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            out[n++] = (uint8_t)(0x80 | (cp & 0x3F));
        }
    }
    return n;
}

static void test_random_against_reference(void) {
    uint8_t buf[300];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len;
        if (iter % 2) {
            len = random_valid(buf, 4 + dx_t_rand() % 290);
            if (iter % 4 == 1 && len > 0) buf[dx_t_rand() % len] = (uint8_t)dx_t_rand();
        } else {
            len = dx_t_rand() % 64;
            for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)dx_t_rand();
        }
        size_t r = ref_check(buf, len);
        CHECK_EQ_INT(dx_utf8_valid(buf, len) == 0, r == len);
        size_t cuts[2] = {dx_t_rand() % (len + 1), 0};
        cuts[1] = cuts[0] + dx_t_rand() % (len - cuts[0] + 1);
        int fin = 0;
        int failed = feed_pieces(buf, len, cuts, 2, &fin);
        CHECK_EQ_INT(failed < 0 && fin == 0, r == len);
        if (r < len) CHECK_EQ_INT(failed, r < cuts[0] ? 0 : r < cuts[1] ? 1 : 2);
    }
}

/* An error at every position of a long mostly-multibyte text, so every
 * lane of a SIMD block is exercised. */
static void test_error_at_every_position(void) {
    uint8_t buf[256];
    size_t len = 0;
    const char *zh = "中文和English混合的消息😀";
    while (len + strlen(zh) <= sizeof buf) {
        memcpy(buf + len, zh, strlen(zh));
        len += strlen(zh);
    }
    CHECK_EQ_INT(dx_utf8_valid(buf, len), 0);
    for (size_t pos = 0; pos < len; pos++) {
        uint8_t saved = buf[pos];
        buf[pos] = 0xFF;
        CHECK(dx_utf8_valid(buf, len) != 0);
        dx_utf8 v;
        dx_utf8_init(&v);
        CHECK_EQ_INT(dx_utf8_feed(&v, buf, pos), 0); /* the prefix is fine so far */
        CHECK(dx_utf8_feed(&v, buf + pos, len - pos) != 0);
        buf[pos] = saved;
    }
}


/* Lead bytes left unfinished before ASCII, and valid sequences straddling
 * every position (so every SIMD block boundary), in long ASCII text. */
static void test_sequences_at_block_edges(void) {
    static const char *const seqs[] = {"\xc3\xa9", "\xe4\xb8\xad", "\xf0\x9f\x98\x80"};
    uint8_t buf[200];
    for (size_t k = 0; k < 3; k++) {
        size_t sl = strlen(seqs[k]);
        for (size_t pos = 0; pos + sl <= sizeof buf; pos++) {
            memset(buf, 'a', sizeof buf);
            memcpy(buf + pos, seqs[k], sl);
            CHECK_EQ_INT(dx_utf8_valid(buf, sizeof buf), 0);
            for (size_t cut = 1; cut < sl; cut++) {
                /* Only the first `cut` bytes of the sequence: then ASCII. */
                memset(buf, 'a', sizeof buf);
                memcpy(buf + pos, seqs[k], cut);
                CHECK(dx_utf8_valid(buf, sizeof buf) != 0);
            }
        }
    }
}

int main(int argc, char **argv) {
    dx_t_seed();
    RUN(test_boundaries);
    RUN(test_invalid_classes);
    RUN(test_random_against_reference);
    RUN(test_error_at_every_position);
    RUN(test_sequences_at_block_edges);
    int rc = TEST_DONE();
    if (rc == 0 && !getenv("DX_NO_SIMD")) {
        setenv("DX_NO_SIMD", "1", 1);
        fflush(stdout);
        execv("/proc/self/exe", argv);
        return 1;
    }
    return rc;
}

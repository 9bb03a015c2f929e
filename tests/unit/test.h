/* A tiny test harness: CHECK records a failure and goes on, REQUIRE stops
 * the test. Each test file's main() calls RUN(fn) per test and returns
 * TEST_DONE(), which prints "N passed, N failed" and exits non-zero on any
 * failure. */
#ifndef DX_TEST_H
#define DX_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static int dx_t_failed_checks, dx_t_passed, dx_t_failed, dx_t_cur_failed;
static const char *dx_t_name;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: %s: CHECK failed: %s\n", __FILE__, __LINE__, dx_t_name,        \
                    #cond);                                                                        \
            dx_t_failed_checks++;                                                                  \
            dx_t_cur_failed = 1;                                                                   \
        }                                                                                          \
    } while (0)

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: %s: REQUIRE failed: %s\n", __FILE__, __LINE__, dx_t_name,      \
                    #cond);                                                                        \
            dx_t_failed_checks++;                                                                  \
            dx_t_cur_failed = 1;                                                                   \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long dx_t_a = (long long)(a), dx_t_b = (long long)(b);                                \
        if (dx_t_a != dx_t_b) {                                                                    \
            fprintf(stderr, "%s:%d: %s: CHECK failed: %s == %s (%lld != %lld)\n", __FILE__,        \
                    __LINE__, dx_t_name, #a, #b, dx_t_a, dx_t_b);                                  \
            dx_t_failed_checks++;                                                                  \
            dx_t_cur_failed = 1;                                                                   \
        }                                                                                          \
    } while (0)

#define RUN(fn)                                                                                    \
    do {                                                                                           \
        dx_t_name = #fn;                                                                           \
        dx_t_cur_failed = 0;                                                                       \
        fn();                                                                                      \
        if (dx_t_cur_failed) {                                                                     \
            dx_t_failed++;                                                                         \
            fprintf(stderr, "FAIL %s\n", #fn);                                                     \
        } else {                                                                                   \
            dx_t_passed++;                                                                         \
        }                                                                                          \
    } while (0)

/* A frame as a peer writes it, built by hand rather than with the library's
 * writer so the tests check the parser against an independent encoding:
 * FIN, RSV bits, opcode, the length in its shortest form and, when `key` is
 * not NULL, the masking key. dx_t_frame_head writes the header only
 * (at most 14 bytes) and returns its length; dx_t_frame appends the payload,
 * masked with `key` when given, and returns the whole frame's length. */
static inline size_t dx_t_frame_head(uint8_t *out, int fin, int rsv, int op, uint64_t len,
                                     const uint8_t *key) {
    size_t i = 0;
    out[i++] = (uint8_t)((fin ? 0x80 : 0) | (rsv << 4) | op);
    uint8_t m = key ? 0x80 : 0;
    if (len < 126) {
        out[i++] = (uint8_t)(m | len);
    } else if (len < 65536) {
        out[i++] = m | 126;
        out[i++] = (uint8_t)(len >> 8);
        out[i++] = (uint8_t)len;
    } else {
        out[i++] = m | 127;
        for (int k = 7; k >= 0; k--)
            out[i++] = (uint8_t)(len >> (8 * k));
    }
    if (key) memcpy(out + i, key, 4), i += 4;
    return i;
}
static inline size_t dx_t_frame(uint8_t *out, int fin, int rsv, int op, const void *payload,
                                size_t len, const uint8_t *key) {
    size_t i = dx_t_frame_head(out, fin, rsv, op, len, key);
    const uint8_t *src = payload;
    for (size_t k = 0; k < len; k++)
        out[i + k] = key ? (uint8_t)(src[k] ^ key[k & 3]) : src[k];
    return i + len;
}

/* Monotonic milliseconds, for deadlines and for checking when things fired. */
static inline uint64_t dx_t_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Writes all of p on a blocking socket (no SIGPIPE): 0, or -1. */
static inline int dx_t_write_all(int fd, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w <= 0) return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

#define TEST_DONE()                                                                                \
    (printf("%d passed, %d failed\n", dx_t_passed, dx_t_failed), dx_t_failed ? 1 : 0)

/* Deterministic PRNG for property tests (xorshift64*); seed from
 * DX_TEST_SEED when set so a failure can be replayed. */
static uint64_t dx_t_rng_state = 0x9E3779B97F4A7C15ull;
static inline void dx_t_seed(void) {
    const char *s = getenv("DX_TEST_SEED");
    if (s) dx_t_rng_state = strtoull(s, NULL, 0) | 1;
    fprintf(stderr, "seed 0x%" PRIx64 "\n", dx_t_rng_state);
}
static inline uint64_t dx_t_rand(void) {
    uint64_t x = dx_t_rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    dx_t_rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Removes a SQLite database file and the WAL and shared-memory files
 * beside it (a test's database, before or after it runs). */
static inline void dx_t_remove_db(const char *path) {
    char side[512];
    remove(path);
    snprintf(side, sizeof side, "%s-wal", path);
    remove(side);
    snprintf(side, sizeof side, "%s-shm", path);
    remove(side);
}

#endif

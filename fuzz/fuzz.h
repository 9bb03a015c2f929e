/* Shared by the libFuzzer harnesses: the input layout, the splitter and a
 * plain reference UTF-8 validator.
 *
 * Every harness reads its input the same way (STYLE.md rule 9): the first
 * byte picks the configuration, the second seeds the splitter, and the
 * rest is the data, fed in pieces whose sizes the splitter draws from that
 * seed. So the fuzzer chooses the split points, and a crash input replays
 * exactly. Each piece is copied into a heap block of exactly its size, so
 * AddressSanitizer catches a read even one byte past what was lent. */
#ifndef DX_FUZZ_H
#define DX_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A failed property: print it and abort, so libFuzzer keeps the input. */
#define FZ_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct fz_input {
    uint8_t cfg;         /* configuration bits, harness-specific */
    const uint8_t *data; /* the data proper */
    size_t len;
    uint32_t rng;     /* splitter state */
    size_t max_piece; /* largest piece: 1, 2..16, 1..256, or the whole */
} fz_input;

/* Returns 0 when the input is too short to have a data part. */
static inline int fz_input_init(fz_input *in, const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    in->cfg = data[0];
    in->rng = 0x9e3779b9u ^ ((uint32_t)data[1] * 2654435761u);
    static const size_t pieces[4] = {1, 16, 256, SIZE_MAX};
    in->max_piece = pieces[data[1] & 3];
    in->data = data + 2;
    in->len = size - 2;
    return 1;
}

static inline uint32_t fz_rand(fz_input *in) {
    /* xorshift32: cheap and enough to scatter split points. */
    uint32_t x = in->rng ? in->rng : 1;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    in->rng = x;
    return x;
}

/* Size of the next piece when `left` bytes remain (at least 1). */
static inline size_t fz_piece(fz_input *in, size_t left) {
    if (in->max_piece >= left) {
        /* Mostly the whole rest, sometimes a random cut of it. */
        if ((fz_rand(in) & 3) != 0) return left;
        return 1 + fz_rand(in) % left;
    }
    return 1 + fz_rand(in) % in->max_piece;
}

/* A heap copy of exactly `len` bytes (at least one byte is allocated so the
 * pointer is valid; reading it still overflows). Free with free(). */
static inline uint8_t *fz_dup(const uint8_t *p, size_t len) {
    uint8_t *q = malloc(len ? len : 1);
    if (!q) abort();
    if (len) memcpy(q, p, len);
    return q;
}

/* Reference UTF-8 validator (Unicode 15, table 3-7), one byte at a time.
 * Returns the index of the first byte that cannot belong to valid UTF-8,
 * `len` when the text is valid, or `len` + 1 when it is valid so far but
 * ends inside a sequence. */
static inline size_t fz_utf8_first_bad(const uint8_t *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        uint8_t b = s[i];
        size_t need;
        uint8_t lo = 0x80, hi = 0xbf;
        if (b < 0x80) {
            i++;
            continue;
        } else if (b >= 0xc2 && b <= 0xdf) {
            need = 1;
        } else if (b >= 0xe0 && b <= 0xef) {
            need = 2;
            if (b == 0xe0) lo = 0xa0;
            if (b == 0xed) hi = 0x9f;
        } else if (b >= 0xf0 && b <= 0xf4) {
            need = 3;
            if (b == 0xf0) lo = 0x90;
            if (b == 0xf4) hi = 0x8f;
        } else {
            return i;
        }
        for (size_t k = 1; k <= need; k++) {
            if (i + k >= len) return len + 1;
            uint8_t c = s[i + k];
            uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xbf;
            if (c < l || c > h) return i + k;
        }
        i += need + 1;
    }
    return len;
}

/* A growable byte string, for traces compared between two runs. */
typedef struct fz_buf {
    uint8_t *p;
    size_t len, cap;
} fz_buf;

static inline void fz_put(fz_buf *b, const void *data, size_t len) {
    if (len == 0) return;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + len)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) abort();
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

static inline void fz_put_u64(fz_buf *b, uint64_t v) {
    fz_put(b, &v, sizeof v);
}

#endif

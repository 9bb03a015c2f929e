/* Incremental UTF-8 validation (RFC 3629).
 *
 * With AVX2, the bulk of a buffer is checked 32 bytes per step with the
 * nibble-lookup method of Keiser and Lemire ("Validating UTF-8 in less than
 * one instruction per byte", 2021): each byte and its predecessor index
 * three 16-entry tables whose AND flags every error class at once, and a
 * second test checks that the 2nd/3rd continuation bytes of 3- and 4-byte
 * sequences are exactly where their lead bytes say. Elsewhere, and for the
 * few bytes at the edges of a buffer, a code point at a time with the table
 * of RFC 3629 §4, after skipping ASCII 8 bytes at a time.
 * A code point split across calls is kept in `partial` and finished first
 * on the next call. Any prefix that can no longer become valid is rejected
 * at once: fail fast, not at the end of the message. */
#include <string.h>

#include <duplex/utf8.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

int dx__simd_disabled(void);

/* Length of the sequence a lead byte starts, 0 when it cannot start one. */
static inline unsigned seq_len(uint8_t b) {
    if (b < 0x80) return 1;
    if (b < 0xC2) return 0;
    if (b < 0xE0) return 2;
    if (b < 0xF0) return 3;
    if (b < 0xF5) return 4;
    return 0;
}

/* Whether `b` may follow the lead byte `lead` as its first continuation. */
static inline int second_ok(uint8_t lead, uint8_t b) {
    switch (lead) {
    case 0xE0: return b >= 0xA0 && b <= 0xBF; /* no overlongs */
    case 0xED: return b >= 0x80 && b <= 0x9F; /* no surrogates */
    case 0xF0: return b >= 0x90 && b <= 0xBF; /* no overlongs */
    case 0xF4: return b >= 0x80 && b <= 0x8F; /* ≤ U+10FFFF */
    default: return (b & 0xC0) == 0x80;
    }
}

/* Checks the sequence at s (avail bytes): returns its length when complete
 * and valid, 0 when it is a valid but incomplete prefix, -1 when invalid. */
static inline int check_seq(const uint8_t *s, size_t avail) {
    unsigned n = seq_len(s[0]);
    if (n == 0) return -1;
    if (n == 1) return 1;
    if (avail < 2) return 0;
    if (!second_ok(s[0], s[1])) return -1;
    for (unsigned i = 2; i < n; i++) {
        if (avail <= i) return 0;
        if ((s[i] & 0xC0) != 0x80) return -1;
    }
    return (int)n;
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) static size_t ascii_run_avx2(const uint8_t *s, size_t len) {
    size_t i = 0;
    for (; i + 64 <= len; i += 64) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(s + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(s + i + 32));
        if (_mm256_movemask_epi8(_mm256_or_si256(a, b))) break;
    }
    for (; i + 32 <= len; i += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(s + i));
        if (_mm256_movemask_epi8(a)) break;
    }
    return i;
}
#endif

static size_t ascii_run_portable(const uint8_t *s, size_t len) {
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080ull) break;
    }
    return i;
}


#if defined(__x86_64__)
/* Error classes, one bit each; a byte pair is invalid when the AND of its
 * three table entries is non-zero. */
#define TOO_SHORT (1 << 0)  /* lead byte followed by a lead or ASCII */
#define TOO_LONG (1 << 1)   /* ASCII followed by a continuation */
#define OVERLONG_3 (1 << 2) /* E0 80..9F */
#define TOO_LARGE (1 << 3)  /* F4 90..BF, F5.. */
#define SURROGATE (1 << 4)  /* ED A0..BF */
#define OVERLONG_2 (1 << 5) /* C0, C1 */
#define TOO_LARGE_1000 (1 << 6)
#define OVERLONG_4 (1 << 6) /* F0 80..8F */
#define TWO_CONTS (1 << 7)  /* two continuations in a row */
#define CARRY (TOO_SHORT | TOO_LONG | TWO_CONTS)

__attribute__((target("avx2"))) static inline __m256i lookup(__m256i idx, __m256i table) {
    return _mm256_shuffle_epi8(table, idx);
}

/* A 16-entry table repeated in both 128-bit lanes (vpshufb is per lane). */
#define C(x) ((char)(uint8_t)(x))
#define T16(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p)                                    \
    _mm256_setr_epi8(C(a), C(b), C(c), C(d), C(e), C(f), C(g), C(h), C(i), C(j), C(k), C(l),   \
                     C(m), C(n), C(o), C(p), C(a), C(b), C(c), C(d), C(e), C(f), C(g), C(h),   \
                     C(i), C(j), C(k), C(l), C(m), C(n), C(o), C(p))

/* `prev` is the previous 32-byte block; returns the error bits of `in`. */
__attribute__((target("avx2"))) static inline __m256i block_errors(__m256i in, __m256i prev) {
    const __m256i b1_high = T16(TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG,
                                TOO_LONG, TOO_LONG, TWO_CONTS, TWO_CONTS, TWO_CONTS, TWO_CONTS,
                                TOO_SHORT | OVERLONG_2, TOO_SHORT,
                                TOO_SHORT | OVERLONG_3 | SURROGATE,
                                TOO_SHORT | TOO_LARGE | TOO_LARGE_1000 | OVERLONG_4);
    const __m256i b1_low = T16(CARRY | OVERLONG_3 | OVERLONG_2 | OVERLONG_4, CARRY | OVERLONG_2,
                               CARRY, CARRY, CARRY | TOO_LARGE, CARRY | TOO_LARGE | TOO_LARGE_1000,
                               CARRY | TOO_LARGE | TOO_LARGE_1000,
                               CARRY | TOO_LARGE | TOO_LARGE_1000,
                               CARRY | TOO_LARGE | TOO_LARGE_1000,
                               CARRY | TOO_LARGE | TOO_LARGE_1000,
                               CARRY | TOO_LARGE | TOO_LARGE_1000,
                               CARRY | TOO_LARGE | TOO_LARGE_1000,
                               CARRY | TOO_LARGE | TOO_LARGE_1000,
                               CARRY | TOO_LARGE | TOO_LARGE_1000 | SURROGATE,
                               CARRY | TOO_LARGE | TOO_LARGE_1000,
                               CARRY | TOO_LARGE | TOO_LARGE_1000);
    const __m256i b2_high =
        T16(TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT,
            TOO_SHORT,
            TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE_1000 | OVERLONG_4,
            TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE,
            TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE,
            TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE, TOO_SHORT, TOO_SHORT,
            TOO_SHORT, TOO_SHORT);
    const __m256i nib = _mm256_set1_epi8(0x0f);
    /* The 16 bytes before each lane: the high half of prev, then in. */
    __m256i shifted = _mm256_permute2x128_si256(prev, in, 0x21);
    __m256i prev1 = _mm256_alignr_epi8(in, shifted, 15);
    __m256i prev2 = _mm256_alignr_epi8(in, shifted, 14);
    __m256i prev3 = _mm256_alignr_epi8(in, shifted, 13);
    __m256i sc = _mm256_and_si256(
        _mm256_and_si256(lookup(_mm256_and_si256(_mm256_srli_epi16(prev1, 4), nib), b1_high),
                         lookup(_mm256_and_si256(prev1, nib), b1_low)),
        lookup(_mm256_and_si256(_mm256_srli_epi16(in, 4), nib), b2_high));
    /* Bytes two after an E0..EF lead or three after an F0..F7 lead must be
     * continuations, which is exactly where TWO_CONTS may be set. */
    __m256i third = _mm256_subs_epu8(prev2, _mm256_set1_epi8((char)(0xE0 - 0x80)));
    __m256i fourth = _mm256_subs_epu8(prev3, _mm256_set1_epi8((char)(0xF0 - 0x80)));
    __m256i must23 = _mm256_and_si256(_mm256_or_si256(third, fourth), _mm256_set1_epi8((char)0x80));
    return _mm256_xor_si256(must23, sc);
}

/* Checks whole 32-byte blocks of s (which starts at a code point
 * boundary). Returns the number of bytes checked (a multiple of 32; a code
 * point may straddle its end), or -1 on an error inside them. */
__attribute__((target("avx2"))) static int64_t blocks_avx2(const uint8_t *s, size_t len) {
    /* A block that ends in a lead byte whose sequence is not finished has
     * nonzero bytes here; an all-ASCII next block makes that an error. */
    const __m256i max_tail = _mm256_setr_epi8(
        -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
        -1, -1, -1, -1, -1, -1, C(0xF0 - 1), C(0xE0 - 1), C(0xC0 - 1));
    __m256i prev = _mm256_setzero_si256(), err = _mm256_setzero_si256();
    __m256i prev_incomplete = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 32 <= len; i += 32) {
        __m256i in = _mm256_loadu_si256((const __m256i *)(s + i));
        if (_mm256_movemask_epi8(in) == 0) {
            /* ASCII: only a sequence left open by the previous block can be
             * wrong here, so skip the table lookups. */
            err = _mm256_or_si256(err, prev_incomplete);
            prev_incomplete = _mm256_setzero_si256();
        } else {
            err = _mm256_or_si256(err, block_errors(in, prev));
            prev_incomplete = _mm256_subs_epu8(in, max_tail);
        }
        prev = in;
        /* Fail fast without paying a test per block. */
        if ((i & 1023) == 992 && !_mm256_testz_si256(err, err)) return -1;
    }
    return _mm256_testz_si256(err, err) ? (int64_t)i : -1;
}
#endif

typedef size_t (*run_fn)(const uint8_t *, size_t);

static run_fn pick(void) {
    static run_fn fn;
    if (fn) return fn;
#if defined(__x86_64__)
    fn = (!dx__simd_disabled() && __builtin_cpu_supports("avx2")) ? ascii_run_avx2
                                                                  : ascii_run_portable;
#else
    fn = ascii_run_portable;
#endif
    return fn;
}

/* Validates s[0..len): returns the number of bytes that form complete code
 * points (the rest, < 4 bytes, is a valid incomplete prefix), or -1. */
static int64_t validate(const uint8_t *s, size_t len) {
    run_fn run = pick();
    size_t i = 0;
#if defined(__x86_64__)
    if (run == ascii_run_avx2 && len >= 64) {
        int64_t k = blocks_avx2(s, len);
        if (k < 0) return -1;
        /* Back up to the lead byte of the code point that may straddle the
         * end of the checked blocks; the scalar loop checks it whole. */
        i = (size_t)k;
        for (int back = 0; back < 3 && i > 0 && (s[i - 1] & 0xC0) == 0x80; back++) i--;
        if (i > 0 && s[i - 1] >= 0xC0) i--;
    }
#endif
    while (i < len) {
        if (s[i] < 0x80) {
            i += run(s + i, len - i);
            while (i < len && s[i] < 0x80) i++;
            continue;
        }
        /* Multibyte text (CJK) comes in runs: stay in this loop. */
        while (i < len && s[i] >= 0x80) {
            int n = check_seq(s + i, len - i);
            if (n < 0) return -1;
            if (n == 0) return (int64_t)i;
            i += (size_t)n;
        }
    }
    return (int64_t)i;
}

void dx_utf8_init(dx_utf8 *v) { memset(v, 0, sizeof(*v)); }

int dx_utf8_feed(dx_utf8 *v, const uint8_t *data, size_t len) {
    /* First finish a code point left open by the previous call. */
    while (v->need > 0 && len > 0) {
        v->partial[v->state++] = *data++;
        len--;
        int n = check_seq(v->partial, v->state);
        if (n < 0) return DX_EUTF8;
        if (n > 0) v->state = v->need = 0;
    }
    if (len == 0) return 0;
    int64_t done = validate(data, len);
    if (done < 0) return DX_EUTF8;
    size_t rest = len - (size_t)done;
    if (rest) {
        memcpy(v->partial, data + done, rest);
        v->state = (uint8_t)rest;
        v->need = (uint8_t)(seq_len(v->partial[0]) - rest);
    }
    return 0;
}

int dx_utf8_finish(const dx_utf8 *v) { return v->need ? DX_EUTF8 : 0; }

int dx_utf8_valid(const uint8_t *data, size_t len) {
    int64_t done = validate(data, len);
    return done == (int64_t)len ? 0 : DX_EUTF8;
}

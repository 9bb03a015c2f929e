/* Incremental UTF-8 validation (RFC 3629).
 *
 * The bulk of a buffer is checked a code point at a time with the table of
 * RFC 3629 §4, after skipping ASCII runs 32 (AVX2) or 8 bytes at a time.
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
        v->state = (uint32_t)rest;
        v->need = seq_len(v->partial[0]) - (uint32_t)rest;
    }
    return 0;
}

int dx_utf8_finish(const dx_utf8 *v) { return v->need ? DX_EUTF8 : 0; }

int dx_utf8_valid(const uint8_t *data, size_t len) {
    int64_t done = validate(data, len);
    return done == (int64_t)len ? 0 : DX_EUTF8;
}

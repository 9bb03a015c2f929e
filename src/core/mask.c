/* Masking: XOR with a 4-byte key repeated over the payload. The key is
 * widened to 8/16/32 bytes and rotated once for the running offset, so the
 * loop is a plain XOR of wide words; AVX2 when the CPU has it. */
#include <string.h>

#include <duplex/mask.h>

#include "core/mask_short.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static void mask_portable(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t k[4]) {
    uint32_t k32;
    memcpy(&k32, k, 4);
    uint64_t k64 = ((uint64_t)k32 << 32) | k32;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= k64;
        memcpy(dst + i, &w, 8);
    }
    for (; i < len; i++) dst[i] = src[i] ^ k[i & 3];
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) static void mask_avx2(uint8_t *dst, const uint8_t *src, size_t len,
                                                       const uint8_t k[4]) {
    uint32_t k32;
    memcpy(&k32, k, 4);
    __m256i kv = _mm256_set1_epi32((int)k32);
    size_t i = 0;
    for (; i + 128 <= len; i += 128) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(src + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(src + i + 32));
        __m256i c = _mm256_loadu_si256((const __m256i *)(src + i + 64));
        __m256i d = _mm256_loadu_si256((const __m256i *)(src + i + 96));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_xor_si256(a, kv));
        _mm256_storeu_si256((__m256i *)(dst + i + 32), _mm256_xor_si256(b, kv));
        _mm256_storeu_si256((__m256i *)(dst + i + 64), _mm256_xor_si256(c, kv));
        _mm256_storeu_si256((__m256i *)(dst + i + 96), _mm256_xor_si256(d, kv));
    }
    for (; i + 32 <= len; i += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_xor_si256(a, kv));
    }
    /* i is a multiple of 4 here, so the key phase is unchanged. */
    mask_portable(dst + i, src + i, len - i, k);
}

static void mask_sse2(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t k[4]) {
    uint32_t k32;
    memcpy(&k32, k, 4);
    __m128i kv = _mm_set1_epi32((int)k32);
    size_t i = 0;
    for (; i + 16 <= len; i += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
        _mm_storeu_si128((__m128i *)(dst + i), _mm_xor_si128(a, kv));
    }
    mask_portable(dst + i, src + i, len - i, k);
}
#endif

typedef void (*mask_fn)(uint8_t *, const uint8_t *, size_t, const uint8_t *);

int dx__simd_disabled(void);

static mask_fn pick(void) {
    static mask_fn fn;
    if (fn) return fn;
#if defined(__x86_64__)
    if (dx__simd_disabled()) fn = mask_portable;
    else if (__builtin_cpu_supports("avx2")) fn = mask_avx2;
    else fn = mask_sse2;
#else
    fn = mask_portable;
#endif
    return fn;
}

void dx_mask(uint8_t *data, size_t len, const uint8_t key[4], uint64_t offset) {
    uint32_t k32 = dx__mask_key_word(key, offset);
    if (len < DX__MASK_SHORT_MAX) {
        dx__mask_short(data, data, len, k32);
        return;
    }
    uint8_t k[4];
    memcpy(k, &k32, 4);
    pick()(data, data, len, k);
}

void dx_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                  uint64_t offset) {
    uint32_t k32 = dx__mask_key_word(key, offset);
    if (len < DX__MASK_SHORT_MAX) {
        dx__mask_short(dst, src, len, k32);
        return;
    }
    uint8_t k[4];
    memcpy(k, &k32, 4);
    pick()(dst, src, len, k);
}

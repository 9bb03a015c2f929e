/* Masking of short payloads, inline: for mask.c and for the frame
 * parser's fast path, where a call per small frame costs as much as the
 * XOR itself. */
#ifndef DX_CORE_MASK_SHORT_H
#define DX_CORE_MASK_SHORT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The key as a 32-bit word in memory order, rotated so that its first
 * byte is the one for payload position `offset`: a shift instead of four
 * indexed byte loads. */
static inline uint32_t dx__mask_key_word(const uint8_t key[4], uint64_t offset) {
    uint32_t k;
    memcpy(&k, key, 4);
    unsigned r = (unsigned)(offset & 3) * 8;
    if (r == 0) return k;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return (k << r) | (k >> (32 - r));
#else
    return (k >> r) | (k << (32 - r));
#endif
}

/* Payloads under DX__MASK_SHORT_MAX bytes (chat messages, pings, close
 * frames: most frames) are masked here, inline, with 8- and 4-byte words:
 * no call through the SIMD pointer, no vector setup for one partial
 * vector. */
#define DX__MASK_SHORT_MAX 32

static inline void dx__mask_short(uint8_t *dst, const uint8_t *src, size_t len, uint32_t k32) {
    size_t i = 0;
    if (len >= 8) {
        uint64_t k64 = ((uint64_t)k32 << 32) | k32;
        for (; i + 8 <= len; i += 8) {
            uint64_t w;
            memcpy(&w, src + i, 8);
            w ^= k64;
            memcpy(dst + i, &w, 8);
        }
    }
    if (i + 4 <= len) {
        uint32_t w;
        memcpy(&w, src + i, 4);
        w ^= k32;
        memcpy(dst + i, &w, 4);
        i += 4;
    }
    /* i is a multiple of 4: the last 0..3 bytes take the key from its start. */
    uint8_t k[4];
    memcpy(k, &k32, 4);
    for (size_t j = 0; i < len; i++, j++)
        dst[i] = src[i] ^ k[j];
}

#endif

/* duplex — WebSocket payload masking (RFC 6455 §5.3).
 *
 * Masking is a XOR with a 4-byte key repeated over the payload. These
 * functions are vectorised (AVX2 or SSE2 where the CPU has them, 8 bytes per
 * step otherwise), chosen once at first use.
 */
#ifndef DUPLEX_MASK_H
#define DUPLEX_MASK_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* XORs `len` bytes of `data` in place with `key`, as if the payload started
 * `offset` bytes earlier (so a payload split over several buffers is masked
 * by calling this once per piece with the running offset). `data` may have
 * any alignment. Masking twice with the same key restores the input. */
DX_API void dx_mask(uint8_t *data, size_t len, const uint8_t key[4], uint64_t offset);

/* Like dx_mask, but reads `src` and writes the masked bytes to `dst`
 * (`dst` and `src` must not overlap unless they are equal). Used by writers
 * so the caller's message is never modified. */
DX_API void dx_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                         uint64_t offset);

#ifdef __cplusplus
}
#endif
#endif

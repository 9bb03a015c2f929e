/* duplex — incremental UTF-8 validation (RFC 3629, as RFC 6455 §8.1 needs).
 *
 * A text message may arrive in many fragments and each fragment in many
 * reads; a code point may be split anywhere. dx_utf8 keeps the state between
 * pieces and rejects the input at the first byte that cannot be part of
 * valid UTF-8 (overlong forms, surrogates U+D800..U+DFFF, code points above
 * U+10FFFF, stray continuation bytes, bytes C0, C1, F5..FF), without waiting
 * for the end of the message. ASCII runs and multibyte text are checked with
 * SIMD where the CPU has it.
 */
#ifndef DUPLEX_UTF8_H
#define DUPLEX_UTF8_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Validator state. Zero-initialise it (or call dx_utf8_init) before the
 * first piece of each message. Plain data: copy or discard freely. */
typedef struct dx_utf8 {
    uint8_t state; /* 0 = at a code point boundary */
    uint8_t need;  /* internal */
    uint8_t partial[4];
} dx_utf8;

DX_API void dx_utf8_init(dx_utf8 *v);

/* Checks the next `len` bytes of the text. Returns 0 while the text so far
 * can still be valid UTF-8 (it may end inside a code point), or DX_EUTF8 as
 * soon as a byte makes it invalid; after DX_EUTF8 the state is undefined
 * until dx_utf8_init. */
DX_API int dx_utf8_feed(dx_utf8 *v, const uint8_t *data, size_t len);

/* Call at the end of the message: returns 0 when the text ended at a code
 * point boundary, DX_EUTF8 when it stopped inside a multibyte sequence. */
DX_API int dx_utf8_finish(const dx_utf8 *v);

/* Validates a complete string in one call: 0 or DX_EUTF8. */
DX_API int dx_utf8_valid(const uint8_t *data, size_t len);

#ifdef __cplusplus
}
#endif
#endif

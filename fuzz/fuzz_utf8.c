/* The SIMD UTF-8 validator (src/core/utf8.c) against a byte-at-a-time
 * reference: the one-shot answer must match, and fed in fuzzer-chosen
 * pieces it must fail in the very piece that holds the first impossible
 * byte (fail fast across fragments), never earlier and never later.
 * cfg bit 0 prepends 64 ASCII bytes so the data straddles SIMD blocks
 * differently. */
#include <duplex/utf8.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_input in;
    if (!fz_input_init(&in, data, size)) return 0;
    size_t pad = (in.cfg & 1) ? 64 + (in.cfg >> 1) % 32 : 0;
    size_t len = pad + in.len;
    uint8_t *text = malloc(len ? len : 1);
    if (!text) abort();
    memset(text, 'a', pad);
    if (in.len) memcpy(text + pad, in.data, in.len);

    size_t bad = fz_utf8_first_bad(text, len);
    uint8_t *whole = fz_dup(text, len);
    FZ_CHECK((dx_utf8_valid(whole, len) == 0) == (bad == len));
    free(whole);

    dx_utf8 v;
    dx_utf8_init(&v);
    size_t off = 0;
    int failed = 0;
    while (off < len) {
        size_t n = fz_piece(&in, len - off);
        uint8_t *piece = fz_dup(text + off, n);
        int rc = dx_utf8_feed(&v, piece, n);
        free(piece);
        int holds_bad = bad < len && bad >= off && bad < off + n;
        FZ_CHECK((rc != 0) == holds_bad);
        off += n;
        if (rc) {
            FZ_CHECK(rc == DX_EUTF8);
            failed = 1;
            break;
        }
    }
    if (!failed) FZ_CHECK((dx_utf8_finish(&v) == 0) == (bad == len));
    free(text);
    return 0;
}

/* The hot path's JSON writer (jsonw.h). */
#include <string.h>

#include "chat/jsonw.h"
#include "core/alloc.h"

void dx__jsonw_reset(dx__jsonw *w) {
    w->len = 0;
    w->oom = 0;
}

void dx__jsonw_free(dx__jsonw *w) {
    dx__free(w->p);
    *w = (dx__jsonw){0};
}

/* Room for `n` more bytes: 1, or 0 with oom set. */
static int reserve(dx__jsonw *w, size_t n) {
    if (w->oom) return 0;
    if (w->cap - w->len >= n) return 1;
    size_t ncap = w->cap ? w->cap : 256;
    while (ncap - w->len < n) {
        if (ncap > SIZE_MAX / 2) {
            w->oom = 1;
            return 0;
        }
        ncap *= 2;
    }
    char *np = dx__realloc(w->p, ncap);
    if (!np) {
        w->oom = 1;
        return 0;
    }
    w->p = np;
    w->cap = ncap;
    return 1;
}

void dx__jsonw_raw(dx__jsonw *w, const char *s, size_t n) {
    if (!reserve(w, n)) return;
    memcpy(w->p + w->len, s, n);
    w->len += n;
}

/* What each byte becomes: 0 as it is, 'u' as \u00XX, else \ and that. */
static const char ESC[256] = {
    ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r',  ['\t'] = 't', [0x00] = 'u',
    [0x01] = 'u', [0x02] = 'u', [0x03] = 'u', [0x04] = 'u',  [0x05] = 'u', [0x06] = 'u',
    [0x07] = 'u', [0x0b] = 'u', [0x0e] = 'u', [0x0f] = 'u',  [0x10] = 'u', [0x11] = 'u',
    [0x12] = 'u', [0x13] = 'u', [0x14] = 'u', [0x15] = 'u',  [0x16] = 'u', [0x17] = 'u',
    [0x18] = 'u', [0x19] = 'u', [0x1a] = 'u', [0x1b] = 'u',  [0x1c] = 'u', [0x1d] = 'u',
    [0x1e] = 'u', [0x1f] = 'u', ['"'] = '"',  ['\\'] = '\\',
};

void dx__jsonw_str(dx__jsonw *w, const char *s, size_t n) {
    /* The worst case, every byte as \u00XX, reserved at once: the loop
     * then writes without checks. */
    if (n > (SIZE_MAX - 2) / 6 || !reserve(w, 6 * n + 2)) {
        w->oom = 1;
        return;
    }
    static const char HEX[] = "0123456789ABCDEF";
    char *o = w->p + w->len;
    *o++ = '"';
    size_t i = 0;
    while (i < n) {
        /* Runs of bytes that need nothing (most text) go in one copy. */
        size_t j = i;
        while (j < n && !ESC[(unsigned char)s[j]])
            j++;
        memcpy(o, s + i, j - i);
        o += j - i;
        if (j == n) break;
        unsigned char c = (unsigned char)s[j];
        *o++ = '\\';
        if (ESC[c] == 'u') {
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = HEX[c >> 4];
            *o++ = HEX[c & 15];
        } else {
            *o++ = ESC[c];
        }
        i = j + 1;
    }
    *o++ = '"';
    w->len = (size_t)(o - w->p);
}

void dx__jsonw_int(dx__jsonw *w, int64_t v) {
    char tmp[24], *e = tmp + sizeof tmp, *o = e;
    /* Negated as unsigned, so that INT64_MIN has no overflow. */
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--o = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--o = '-';
    dx__jsonw_raw(w, o, (size_t)(e - o));
}

void dx__jsonw_scalar(dx__jsonw *w, const json_t *v) {
    if (json_is_integer(v))
        dx__jsonw_int(w, json_integer_value(v));
    else if (json_is_string(v))
        dx__jsonw_str(w, json_string_value(v), json_string_length(v));
    else
        dx__jsonw_lit(w, "null");
}

#include "cli/sse.h"

int dx_cli_header_u64(const dx_http_header *h, size_t n, const char *name, uint64_t *out) {
    const dx_http_header *x = dx_http_find(h, n, name);
    if (!x || !x->value_len || x->value_len > 19) return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < x->value_len; i++) {
        if (x->value[i] < '0' || x->value[i] > '9') return 0;
        v = v * 10 + (uint64_t)(x->value[i] - '0');
    }
    *out = v;
    return 1;
}

static int b64v(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

long dx_cli_b64_decode(const char *s, size_t n, uint8_t *out) {
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '=') break;
        int v = b64v((unsigned char)s[i]);
        if (v < 0) return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    return (long)o;
}

/* The header-value grammars of the handshake: Sec-WebSocket-Extensions
 * (dx_ext_next, RFC 6455 §9.1), comma lists (dx_http_next_token, as in
 * Connection and Sec-WebSocket-Protocol), subprotocol selection, and the
 * permessage-deflate negotiation on top of them (RFC 7692 §5, §7.1:
 * dx_deflate_accept on the server, dx_deflate_verify on the client).
 *
 * No configuration byte: the whole input is one header value, in a block
 * of exactly its size. Properties: every walk ends (each step moves
 * forward), every slice lies inside the value, names and values are
 * tokens as the grammar demands, a malformed element is skipped up to the
 * next comma outside quotes and the walk goes on. */
#include <duplex/deflate.h>
#include <duplex/handshake.h>
#include <duplex/http.h>

#include "fuzz.h"

static int is_tchar(unsigned char c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static void check_token(const char *s, size_t n, const char *v, size_t len) {
    FZ_CHECK(n > 0 && s >= v && s + n <= v + len);
    for (size_t i = 0; i < n; i++)
        FZ_CHECK(is_tchar((unsigned char)s[i]));
}

static int params_ok(const dx_deflate_params *a) {
    return a->server_max_window_bits >= 8 && a->server_max_window_bits <= 15 &&
           a->client_max_window_bits >= 8 && a->client_max_window_bits <= 15 &&
           a->server_no_context_takeover <= 1 && a->client_no_context_takeover <= 1;
}

/* A config drawn from one byte: both no_context_takeover flags, and window
 * bits 0 (none) or 8-15 for each side. */
static dx_deflate_config config_of(uint8_t b, uint8_t c) {
    dx_deflate_config cfg = {.enable = 1};
    cfg.server_no_context_takeover = b & 1;
    cfg.client_no_context_takeover = (b >> 1) & 1;
    cfg.server_max_window_bits = (b >> 2) & 1 ? 8 + ((b >> 3) & 7) : 0;
    cfg.client_max_window_bits = (c >> 2) & 1 ? 8 + ((c >> 3) & 7) : 0;
    return cfg;
}

/* permessage-deflate negotiation. The value as a client's offer to three
 * servers and as a server's answer to three clients; then, with configs
 * drawn from the first bytes, a real offer must be accepted by a real
 * server and its answer verified by the client, both sides agreeing. */
static void check_deflate(const char *v, size_t size, const uint8_t *raw, size_t raw_len) {
    uint8_t b0 = raw_len > 0 ? raw[0] : 0, b1 = raw_len > 1 ? raw[1] : 0;
    uint8_t b2 = raw_len > 2 ? raw[2] : 0, b3 = raw_len > 3 ? raw[3] : 0;
    dx_deflate_config cfgs[3] = {
        {.enable = 1},
        {.enable = 1, .server_no_context_takeover = 1, .client_no_context_takeover = 1},
        config_of(b0, b1)};
    for (int k = 0; k < 3; k++) {
        dx_deflate_params a;
        char out[256];
        int r = dx_deflate_accept(&cfgs[k], v, size, &a, out, sizeof out);
        FZ_CHECK(r == 0 || r == 1);
        if (r == 1) {
            FZ_CHECK(params_ok(&a));
            size_t ol = strlen(out);
            FZ_CHECK(ol < sizeof out);
            size_t pos = 0;
            dx_ext e;
            FZ_CHECK(dx_ext_next(out, ol, &pos, &e) == 1 && pos == ol);
            FZ_CHECK(e.name_len == 18 && !memcmp(e.name, "permessage-deflate", 18));
        }
        const char *why = NULL;
        r = dx_deflate_verify(&cfgs[k], v, size, &a, &why);
        FZ_CHECK(r == 0 || (r == DX_EHANDSHAKE && why != NULL));
        if (r == 0) FZ_CHECK(params_ok(&a));
    }

    dx_deflate_config server = config_of(b0, b1), client = config_of(b2, b3);
    char offer[160], answer[256];
    int n = dx_deflate_offer(&client, offer, sizeof offer);
    FZ_CHECK(n > 0 && (size_t)n == strlen(offer));
    dx_deflate_params sa, ca;
    int r = dx_deflate_accept(&server, offer, (size_t)n, &sa, answer, sizeof answer);
    FZ_CHECK(r == 1 || r == 0);
    if (r == 1) {
        const char *why = NULL;
        r = dx_deflate_verify(&client, answer, strlen(answer), &ca, &why);
        if (r != 0) fprintf(stderr, "offer '%s' answer '%s': %s\n", offer, answer, why);
        FZ_CHECK(r == 0);
        FZ_CHECK(!memcmp(&sa, &ca, sizeof sa));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *v = (char *)fz_dup(data, size);

    size_t pos = 0, last = 0, steps = 0;
    dx_ext e;
    int r;
    while ((r = dx_ext_next(v, size, &pos, &e)) != 0) {
        FZ_CHECK(pos > last && pos <= size);
        last = pos;
        FZ_CHECK(++steps <= size);
        if (r == DX_EHTTP) {
            FZ_CHECK(e.name == NULL && e.num_params == 0);
            /* Skipped up to just after a comma, or to the end. */
            FZ_CHECK(pos == size || v[pos - 1] == ',');
            continue;
        }
        FZ_CHECK(r == 1);
        check_token(e.name, e.name_len, v, size);
        FZ_CHECK(e.num_params <= DX_EXT_MAX_PARAMS);
        for (size_t i = 0; i < e.num_params; i++) {
            check_token(e.params[i].name, e.params[i].name_len, v, size);
            if (e.params[i].value) check_token(e.params[i].value, e.params[i].value_len, v, size);
        }
    }
    FZ_CHECK(pos == size);

    /* Comma lists: tokens never start or end with a space or a comma
     * outside quotes, and the walk ends. */
    pos = last = steps = 0;
    const char *t;
    size_t tl;
    while (dx_http_next_token(v, size, &pos, &t, &tl)) {
        FZ_CHECK(pos > last && pos <= size);
        last = pos;
        FZ_CHECK(++steps <= size);
        FZ_CHECK(tl > 0 && t >= v && t + tl <= v + size);
        FZ_CHECK(t[0] != ' ' && t[0] != '\t' && t[0] != ',');
        /* (An unterminated quoted string runs to the end, spaces and all.) */
        if (!memchr(t, '"', tl)) FZ_CHECK(t[tl - 1] != ' ' && t[tl - 1] != '\t');
        /* A token found by the walk is found by has_token, unless it holds
         * a NUL (the C-string needle would end early). */
        if (!memchr(t, 0, tl)) {
            char needle[64];
            if (tl < sizeof needle) {
                memcpy(needle, t, tl);
                needle[tl] = 0;
                FZ_CHECK(dx_http_has_token(v, size, needle));
            }
        }
    }
    static const char *const supported[] = {"chat", "superchat", "v2.duplex", NULL};
    int i = dx_handshake_select_protocol(v, size, supported);
    FZ_CHECK(i >= -1 && i <= 2);
    if (i >= 0) FZ_CHECK(dx_http_has_token(v, size, supported[i]));

    check_deflate(v, size, data, size);
    free(v);
    return 0;
}

/* The client side of the opening handshake: the HTTP response head parser
 * and dx_handshake_verify (src/core/http.c, handshake.c), as a client
 * gathers the server's answer.
 *
 * cfg bit 0: subprotocols were offered ("chat, superchat"); bit 1:
 * extensions were offered; bits 2-3: max_size 64, 512, 8 KiB, 1 MiB. Every
 * growing prefix must answer "more" or the whole input's verdict. An
 * accepted answer must hold what the client asked for: the protocol chosen
 * is one offered, an extension answer only when extensions were offered,
 * and the extension list must walk to its end. */
#include <duplex/handshake.h>
#include <duplex/http.h>

#include "fuzz.h"

/* The RFC 6455 §1.3 example key; its accept value is
 * s3pPLMBiTxaQ9kYGzzhZRbK+xOo=, which the dictionary carries. */
static const char key[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const size_t max_sizes[4] = {64, 512, 8192, 1u << 20};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_input in;
    if (!fz_input_init(&in, data, size)) return 0;
    const char *offered = (in.cfg & 1) ? "chat, superchat" : NULL;
    int ext_ok = (in.cfg >> 1) & 1;
    size_t max_size = max_sizes[(in.cfg >> 2) & 3];
    dx_http_header hdrs[32];

    uint8_t *all = fz_dup(in.data, in.len);
    dx_http_response res = {.headers = hdrs, .num_headers = 32};
    int whole = dx_http_parse_response((const char *)all, in.len, max_size, &res);
    FZ_CHECK(whole == 0 || whole == DX_EHTTP || whole == DX_EHDRSIZE ||
             (whole > 0 && (size_t)whole <= in.len && (size_t)whole <= max_size));
    if (whole > 0) {
        FZ_CHECK(res.status >= 100 && res.status <= 999);
        FZ_CHECK(res.num_headers <= 32);
        const char *proto = NULL, *ext = NULL, *why = NULL;
        size_t pl = 0, el = 0;
        int rc = dx_handshake_verify(&res, key, offered, ext_ok, &proto, &pl, &ext, &el, &why);
        if (rc == 0) {
            FZ_CHECK(res.status == 101 && why == NULL);
            if (proto) {
                FZ_CHECK(offered != NULL);
                FZ_CHECK((pl == 4 && !memcmp(proto, "chat", 4)) ||
                         (pl == 9 && !memcmp(proto, "superchat", 9)));
            }
            if (ext) {
                FZ_CHECK(ext_ok);
                FZ_CHECK((const uint8_t *)ext >= all && (const uint8_t *)ext + el <= all + in.len);
                size_t pos = 0, last = 0;
                dx_ext e;
                int r;
                while ((r = dx_ext_next(ext, el, &pos, &e)) != 0) {
                    FZ_CHECK(r == 1 || r == DX_EHTTP);
                    FZ_CHECK(pos > last && pos <= el);
                    last = pos;
                }
            }
        } else {
            FZ_CHECK(rc == DX_EHANDSHAKE && why != NULL);
        }
    }
    free(all);

    size_t have = 0;
    while (have < in.len) {
        have += fz_piece(&in, in.len - have);
        uint8_t *pre = fz_dup(in.data, have);
        dx_http_response r = {.headers = hdrs, .num_headers = 32};
        int rc = dx_http_parse_response((const char *)pre, have, max_size, &r);
        free(pre);
        if (whole > 0 && have >= (size_t)whole) {
            FZ_CHECK(rc == whole);
            break;
        }
        if (rc == 0) continue;
        FZ_CHECK(rc == whole);
        break;
    }
    return 0;
}

/* Tests for the permessage-deflate negotiation (src/core/pmd_negotiate.c):
 * the client's offer, the server's choice among offers, the client's check
 * of the answer, and every combination of client and server configs
 * negotiated end to end. */
#include <duplex/deflate.h>

#include "test.h"

static dx_deflate_config cfg_of(int snct, int cnct, int smwb, int cmwb) {
    dx_deflate_config c = {.enable = 1,
                           .server_no_context_takeover = snct,
                           .client_no_context_takeover = cnct,
                           .server_max_window_bits = smwb,
                           .client_max_window_bits = cmwb};
    return c;
}

static int accept_str(const dx_deflate_config *cfg, const char *offers, dx_deflate_params *p,
                      char *out, size_t cap) {
    return dx_deflate_accept(cfg, offers, strlen(offers), p, out, cap);
}

static void test_offer(void) {
    char out[160];
    dx_deflate_config c = cfg_of(0, 0, 0, 0);
    CHECK_EQ_INT(dx_deflate_offer(&c, out, sizeof out), 42);
    CHECK(!strcmp(out, "permessage-deflate; client_max_window_bits"));
    c = cfg_of(1, 1, 10, 9);
    REQUIRE(dx_deflate_offer(&c, out, sizeof out) > 0);
    CHECK(!strcmp(out, "permessage-deflate; server_no_context_takeover; "
                       "client_no_context_takeover; server_max_window_bits=10; "
                       "client_max_window_bits=9"));
    /* 15 is the same as no limit: no value. */
    c = cfg_of(0, 0, 15, 15);
    REQUIRE(dx_deflate_offer(&c, out, sizeof out) > 0);
    CHECK(!strcmp(out, "permessage-deflate; client_max_window_bits"));
    /* Room: exactly the length plus the NUL, and one less. */
    CHECK_EQ_INT(dx_deflate_offer(&c, out, 43), 42);
    CHECK_EQ_INT(dx_deflate_offer(&c, out, 42), DX_ENOSPC);
    /* Invalid configs. */
    c = cfg_of(0, 0, 7, 0);
    CHECK_EQ_INT(dx_deflate_offer(&c, out, sizeof out), DX_EINVAL);
    c = cfg_of(0, 0, 0, 16);
    CHECK_EQ_INT(dx_deflate_offer(&c, out, sizeof out), DX_EINVAL);
    c = cfg_of(0, 0, 0, 0);
    c.level = 10;
    CHECK_EQ_INT(dx_deflate_offer(&c, out, sizeof out), DX_EINVAL);
    CHECK_EQ_INT(dx_deflate_offer(NULL, out, sizeof out), DX_EINVAL);
}

static void test_accept_browser_offer(void) {
    char out[160];
    dx_deflate_params p;
    dx_deflate_config c = cfg_of(0, 0, 0, 0);
    /* What Chromium and Firefox send. */
    CHECK_EQ_INT(accept_str(&c, "permessage-deflate; client_max_window_bits", &p, out, sizeof out),
                 1);
    CHECK(!strcmp(out, "permessage-deflate"));
    CHECK_EQ_INT(p.server_max_window_bits, 15);
    CHECK_EQ_INT(p.client_max_window_bits, 15);
    CHECK_EQ_INT(p.server_no_context_takeover, 0);
    CHECK_EQ_INT(p.client_no_context_takeover, 0);
    /* The cheap server: both no_context_takeover asked (allowed even when
     * not offered, RFC 7692 §7.1.1). */
    c = cfg_of(1, 1, 0, 0);
    CHECK_EQ_INT(accept_str(&c, "permessage-deflate; client_max_window_bits", &p, out, sizeof out),
                 1);
    CHECK(
        !strcmp(out, "permessage-deflate; server_no_context_takeover; client_no_context_takeover"));
    CHECK(p.server_no_context_takeover && p.client_no_context_takeover);
    /* Limits on the client's window: only when it offered the parameter. */
    c = cfg_of(0, 0, 0, 10);
    CHECK_EQ_INT(accept_str(&c, "permessage-deflate; client_max_window_bits", &p, out, sizeof out),
                 1);
    CHECK(!strcmp(out, "permessage-deflate; client_max_window_bits=10"));
    CHECK_EQ_INT(p.client_max_window_bits, 10);
    CHECK_EQ_INT(accept_str(&c, "permessage-deflate", &p, out, sizeof out), 1);
    CHECK(!strcmp(out, "permessage-deflate"));
    CHECK_EQ_INT(p.client_max_window_bits, 15);
    /* A client that limited itself below our limit: already agreed, not said. */
    CHECK_EQ_INT(
        accept_str(&c, "permessage-deflate; client_max_window_bits=9", &p, out, sizeof out), 1);
    CHECK(!strcmp(out, "permessage-deflate"));
    CHECK_EQ_INT(p.client_max_window_bits, 9);
    CHECK_EQ_INT(
        accept_str(&c, "permessage-deflate; client_max_window_bits=12", &p, out, sizeof out), 1);
    CHECK(!strcmp(out, "permessage-deflate; client_max_window_bits=10"));
    CHECK_EQ_INT(p.client_max_window_bits, 10);
}

static void test_accept_server_window(void) {
    char out[160];
    dx_deflate_params p;
    dx_deflate_config c = cfg_of(0, 0, 0, 0);
    /* Offered: must be answered, with the same value or less. */
    CHECK_EQ_INT(
        accept_str(&c, "permessage-deflate; server_max_window_bits=10", &p, out, sizeof out), 1);
    CHECK(!strcmp(out, "permessage-deflate; server_max_window_bits=10"));
    CHECK_EQ_INT(p.server_max_window_bits, 10);
    c = cfg_of(0, 0, 9, 0);
    CHECK_EQ_INT(
        accept_str(&c, "permessage-deflate; server_max_window_bits=12", &p, out, sizeof out), 1);
    CHECK(!strcmp(out, "permessage-deflate; server_max_window_bits=9"));
    CHECK_EQ_INT(p.server_max_window_bits, 9);
    /* Not offered: the server may still limit its own window. */
    CHECK_EQ_INT(accept_str(&c, "permessage-deflate", &p, out, sizeof out), 1);
    CHECK(!strcmp(out, "permessage-deflate; server_max_window_bits=9"));
    /* Quoted values are tokens once unquoted (RFC 6455 §9.1). */
    c = cfg_of(0, 0, 0, 0);
    CHECK_EQ_INT(
        accept_str(&c, "permessage-deflate; server_max_window_bits=\"11\"", &p, out, sizeof out),
        1);
    CHECK_EQ_INT(p.server_max_window_bits, 11);
    CHECK_EQ_INT(
        accept_str(&c, "permessage-deflate; server_max_window_bits=8", &p, out, sizeof out), 1);
    CHECK_EQ_INT(p.server_max_window_bits, 8);
}

static void test_accept_several_offers(void) {
    char out[160];
    dx_deflate_params p;
    dx_deflate_config c = cfg_of(0, 0, 0, 0);
    /* RFC 7692 §5: the first acceptable one; invalid ones are declined. */
    CHECK_EQ_INT(accept_str(&c,
                            "permessage-deflate; server_max_window_bits=7, "
                            "permessage-deflate; server_max_window_bits=10, "
                            "permessage-deflate",
                            &p, out, sizeof out),
                 1);
    CHECK(!strcmp(out, "permessage-deflate; server_max_window_bits=10"));
    CHECK_EQ_INT(accept_str(&c, "x-webkit-deflate-frame, foo; bar=\"baz\", permessage-deflate", &p,
                            out, sizeof out),
                 1);
    CHECK(!strcmp(out, "permessage-deflate"));
    /* A malformed element (a stray '=' here) does not hide the next one. */
    CHECK_EQ_INT(
        accept_str(&c, "permessage-deflate; =3, PerMessage-Deflate; client_no_context_takeover", &p,
                   out, sizeof out),
        1);
    CHECK(!strcmp(out, "permessage-deflate; client_no_context_takeover"));
    CHECK_EQ_INT(p.client_no_context_takeover, 1);
}

static void test_accept_declines(void) {
    static const char *const bad[] = {
        "",
        "x-webkit-deflate-frame",
        "permessage-deflate; foo",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits=1O",
        "permessage-deflate; server_max_window_bits=+9",
        "permessage-deflate; client_max_window_bits=0",
        "permessage-deflate; client_max_window_bits=\"\"",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover=\"x\"",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate; Server_No_Context_Takeover",
        "permessage-deflate;",
        "permessage-deflate client_max_window_bits",
        "permessage-deflate; a; b; c; d; e; f; g; h; i",
        "permessage-deflate; server_max_window_bits=\"10",
        NULL,
    };
    char out[160];
    dx_deflate_config c = cfg_of(1, 1, 10, 10);
    for (int i = 0; bad[i]; i++) {
        dx_deflate_params p;
        int rc = accept_str(&c, bad[i], &p, out, sizeof out);
        if (rc != 0) fprintf(stderr, "accepted: '%s'\n", bad[i]);
        CHECK_EQ_INT(rc, 0);
    }
    dx_deflate_params p;
    CHECK_EQ_INT(dx_deflate_accept(&c, NULL, 0, &p, out, sizeof out), 0);
    /* Room for the answer. */
    CHECK_EQ_INT(accept_str(&c, "permessage-deflate", &p, out, 10), DX_ENOSPC);
    c = cfg_of(0, 0, 5, 0);
    CHECK_EQ_INT(accept_str(&c, "permessage-deflate", &p, out, sizeof out), DX_EINVAL);
    CHECK_EQ_INT(dx_deflate_accept(NULL, "permessage-deflate", 18, &p, out, sizeof out), DX_EINVAL);
}

static int verify_str(const dx_deflate_config *cfg, const char *answer, dx_deflate_params *p,
                      const char **why) {
    return dx_deflate_verify(cfg, answer, strlen(answer), p, why);
}

static void test_verify(void) {
    dx_deflate_params p;
    const char *why = NULL;
    dx_deflate_config c = cfg_of(0, 0, 0, 0);
    CHECK_EQ_INT(verify_str(&c, "permessage-deflate", &p, &why), 0);
    CHECK_EQ_INT(p.server_max_window_bits, 15);
    CHECK_EQ_INT(p.client_max_window_bits, 15);
    CHECK_EQ_INT(verify_str(&c,
                            "permessage-deflate; server_no_context_takeover; "
                            "client_no_context_takeover; server_max_window_bits=9; "
                            "client_max_window_bits=\"10\"",
                            &p, &why),
                 0);
    CHECK(p.server_no_context_takeover && p.client_no_context_takeover);
    CHECK_EQ_INT(p.server_max_window_bits, 9);
    CHECK_EQ_INT(p.client_max_window_bits, 10);
    /* Our own no_context_takeover holds even when the server does not echo it. */
    c = cfg_of(0, 1, 0, 11);
    CHECK_EQ_INT(verify_str(&c, "permessage-deflate", &p, &why), 0);
    CHECK_EQ_INT(p.client_no_context_takeover, 1);
    CHECK_EQ_INT(p.client_max_window_bits, 11);

    static const struct {
        dx_deflate_config cfg;
        const char *answer, *why;
    } bad[] = {
        {{.enable = 1}, "", "empty"},
        {{.enable = 1}, "x-foo", "not offered"},
        {{.enable = 1}, "permessage-deflate, permessage-deflate", "more extensions"},
        {{.enable = 1}, "permessage-deflate, x-foo", "more extensions"},
        {{.enable = 1}, "permessage-deflate; foo", "unknown"},
        {{.enable = 1}, "permessage-deflate; client_max_window_bits", "without a value"},
        {{.enable = 1}, "permessage-deflate; server_max_window_bits=20", "8-15"},
        {{.enable = 1}, "permessage-deflate; server_no_context_takeover=yes", "with a value"},
        {{.enable = 1},
         "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
         "repeated"},
        {{.enable = 1}, "permessage-deflate;;", "malformed"},
        {{.enable = 1, .server_max_window_bits = 10},
         "permessage-deflate; server_max_window_bits=11",
         "larger"},
        {{.enable = 1, .server_max_window_bits = 10}, "permessage-deflate", "ignored"},
        {{.enable = 1, .client_max_window_bits = 9},
         "permessage-deflate; client_max_window_bits=10",
         "larger"},
        {{.enable = 1, .server_no_context_takeover = 1}, "permessage-deflate", "ignored"},
        {{.enable = 1, .server_max_window_bits = 3}, "permessage-deflate", "config"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        int rc = verify_str(&bad[i].cfg, bad[i].answer, &p, &why);
        CHECK_EQ_INT(rc, DX_EHANDSHAKE);
        if (!why || !strstr(why, bad[i].why))
            fprintf(stderr, "answer '%s': why '%s', want '%s'\n", bad[i].answer, why ? why : "",
                    bad[i].why);
        CHECK(why && strstr(why, bad[i].why));
    }
}

/* Every client config against every server config: the client's offer is
 * accepted, the server's answer passes the client's check, and both ends
 * agree on every parameter, within both configs' limits. */
static void test_every_combination(void) {
    static const int bits[] = {0, 8, 9, 12, 15};
    int n = 0, fails = 0;
    for (int a = 0; a < 4 * 25; a++) {
        dx_deflate_config cc = cfg_of(a & 1, (a >> 1) & 1, bits[(a >> 2) % 5], bits[(a >> 2) / 5]);
        char offer[160];
        REQUIRE(dx_deflate_offer(&cc, offer, sizeof offer) > 0);
        for (int b = 0; b < 4 * 25; b++) {
            dx_deflate_config sc =
                cfg_of(b & 1, (b >> 1) & 1, bits[(b >> 2) % 5], bits[(b >> 2) / 5]);
            char answer[160];
            dx_deflate_params sp, cp;
            const char *why = NULL;
            n++;
            int ok = accept_str(&sc, offer, &sp, answer, sizeof answer) == 1 &&
                     verify_str(&cc, answer, &cp, &why) == 0 &&
                     sp.server_no_context_takeover == cp.server_no_context_takeover &&
                     sp.client_no_context_takeover == cp.client_no_context_takeover &&
                     sp.server_max_window_bits == cp.server_max_window_bits &&
                     sp.client_max_window_bits == cp.client_max_window_bits;
            int lim_s = sc.server_max_window_bits ? sc.server_max_window_bits : 15;
            int lim_c = cc.server_max_window_bits ? cc.server_max_window_bits : 15;
            int sw = lim_s < lim_c ? lim_s : lim_c;
            lim_s = sc.client_max_window_bits ? sc.client_max_window_bits : 15;
            lim_c = cc.client_max_window_bits ? cc.client_max_window_bits : 15;
            int cw = lim_s < lim_c ? lim_s : lim_c;
            ok = ok && sp.server_max_window_bits == sw && sp.client_max_window_bits == cw &&
                 sp.server_no_context_takeover ==
                     (sc.server_no_context_takeover || cc.server_no_context_takeover) &&
                 sp.client_no_context_takeover ==
                     (sc.client_no_context_takeover || cc.client_no_context_takeover);
            if (!ok && fails++ < 5)
                fprintf(stderr, "offer '%s' answer '%s' why '%s'\n", offer, answer, why ? why : "");
        }
    }
    CHECK_EQ_INT(n, 10000);
    CHECK_EQ_INT(fails, 0);
}

int main(void) {
    RUN(test_offer);
    RUN(test_accept_browser_offer);
    RUN(test_accept_server_window);
    RUN(test_accept_several_offers);
    RUN(test_accept_declines);
    RUN(test_verify);
    RUN(test_every_combination);
    return TEST_DONE();
}

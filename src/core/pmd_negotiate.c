/* permessage-deflate negotiation (RFC 7692 §5, §7.1): the server picks the
 * first acceptable offer, the client writes its offer and checks the answer.
 * The header grammar itself (tokens, parameters, quoted values) is parsed
 * by dx_ext_next in handshake.c; this file gives the parameters meaning. */
#include <stdio.h>
#include <string.h>

#include <duplex/deflate.h>
#include <duplex/handshake.h>
#include <duplex/http.h>

#include "core/wbuf.h"

static const char pmd_name[] = "permessage-deflate";

/* What one offer or answer says, before it is weighed against a config. */
typedef struct pmd_said {
    uint8_t snct, cnct; /* *_no_context_takeover present */
    uint8_t has_smwb;   /* server_max_window_bits present (always with a value) */
    uint8_t has_cmwb;   /* client_max_window_bits present */
    uint8_t cmwb_value; /* ... and it had a value */
    uint8_t smwb, cmwb; /* the values, 8-15 */
} pmd_said;

static int slice_is(const char *s, size_t n, const char *lit) {
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

/* Window bits: a decimal 8-15 without leading zeros (RFC 7692 §7.1.2.1). */
static int parse_bits(const char *v, size_t n) {
    if (!v) return -1;
    if (n == 1 && (v[0] == '8' || v[0] == '9')) return v[0] - '0';
    if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') return 10 + (v[1] - '0');
    return -1;
}

/* Reads the parameters of a permessage-deflate element. Returns 0, or -1
 * with *why set when one is unknown, repeated or has a bad value.
 * `answer` is 1 when reading a server's answer, where client_max_window_bits
 * needs a value (§7.1.2.2). */
static int read_params(const dx_ext *e, int answer, pmd_said *s, const char **why) {
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < e->num_params; i++) {
        const dx_ext_param *p = &e->params[i];
        if (slice_is(p->name, p->name_len, "server_no_context_takeover") ||
            slice_is(p->name, p->name_len, "client_no_context_takeover")) {
            uint8_t *flag = p->name[0] == 's' ? &s->snct : &s->cnct;
            if (*flag) return *why = "repeated no_context_takeover parameter", -1;
            if (p->value) return *why = "no_context_takeover parameter with a value", -1;
            *flag = 1;
        } else if (slice_is(p->name, p->name_len, "server_max_window_bits")) {
            if (s->has_smwb) return *why = "repeated server_max_window_bits", -1;
            int b = parse_bits(p->value, p->value_len);
            if (b < 0) return *why = "server_max_window_bits is not 8-15", -1;
            s->has_smwb = 1;
            s->smwb = (uint8_t)b;
        } else if (slice_is(p->name, p->name_len, "client_max_window_bits")) {
            if (s->has_cmwb) return *why = "repeated client_max_window_bits", -1;
            s->has_cmwb = 1;
            if (p->value) {
                int b = parse_bits(p->value, p->value_len);
                if (b < 0) return *why = "client_max_window_bits is not 8-15", -1;
                s->cmwb_value = 1;
                s->cmwb = (uint8_t)b;
            } else if (answer) {
                return *why = "client_max_window_bits without a value in the answer", -1;
            }
        } else {
            return *why = "unknown permessage-deflate parameter", -1;
        }
    }
    return 0;
}

static int cfg_bits(int v) {
    return v == 0 ? 15 : v;
}

/* Window bits 8-15 (0: 15), level and mem_level 0-9 (0: default). */
static int cfg_valid(const dx_deflate_config *cfg) {
    int a = cfg_bits(cfg->server_max_window_bits), b = cfg_bits(cfg->client_max_window_bits);
    return a >= 8 && a <= 15 && b >= 8 && b <= 15 && cfg->level >= 0 && cfg->level <= 9 &&
           cfg->mem_level >= 0 && cfg->mem_level <= 9;
}

static void put_bits(wbuf *b, const char *name, int bits) {
    char num[8];
    snprintf(num, sizeof num, "%d", bits);
    put_str(b, "; ");
    put_str(b, name);
    put_str(b, "=");
    put_str(b, num);
}

int dx_deflate_accept(const dx_deflate_config *cfg, const char *offers, size_t len,
                      dx_deflate_params *agreed, char *out, size_t cap) {
    if (!cfg || !agreed || (!out && cap) || (!offers && len)) return DX_EINVAL;
    if (!cfg_valid(cfg)) return DX_EINVAL;
    size_t pos = 0;
    for (;;) {
        dx_ext e;
        int rc = dx_ext_next(offers, len, &pos, &e);
        if (rc == 0) return 0;
        if (rc < 0) continue; /* a malformed element: decline it, look further */
        if (!dx_http_ieq(e.name, e.name_len, pmd_name)) continue;
        pmd_said s;
        const char *why;
        if (read_params(&e, 0, &s, &why) < 0) continue;

        int smwb = cfg_bits(cfg->server_max_window_bits);
        /* An offered limit on our window can only lower ours, and must then
         * be answered (§7.1.2.1). */
        if (s.has_smwb && s.smwb < smwb) smwb = s.smwb;
        int say_smwb = s.has_smwb || smwb < 15;
        /* The client's window can be limited only if it said it supports the
         * parameter; with a value it has limited itself already. */
        int cmwb = 15, say_cmwb = 0;
        if (s.has_cmwb) {
            int offered = s.cmwb_value ? s.cmwb : 15;
            int want = cfg_bits(cfg->client_max_window_bits);
            cmwb = want < offered ? want : offered;
            say_cmwb = want < offered;
        }
        agreed->server_no_context_takeover = s.snct || cfg->server_no_context_takeover;
        agreed->client_no_context_takeover = s.cnct || cfg->client_no_context_takeover;
        agreed->server_max_window_bits = (uint8_t)smwb;
        agreed->client_max_window_bits = (uint8_t)cmwb;

        wbuf b = {out, cap ? cap - 1 : 0, 0, 0}; /* room for the NUL */
        put_str(&b, pmd_name);
        if (agreed->server_no_context_takeover) put_str(&b, "; server_no_context_takeover");
        if (agreed->client_no_context_takeover) put_str(&b, "; client_no_context_takeover");
        if (say_smwb) put_bits(&b, "server_max_window_bits", smwb);
        if (say_cmwb) put_bits(&b, "client_max_window_bits", cmwb);
        int n = wbuf_finish(&b);
        if (n < 0) return n;
        out[n] = '\0';
        return 1;
    }
}

int dx_deflate_offer(const dx_deflate_config *cfg, char *out, size_t cap) {
    if (!cfg || (!out && cap)) return DX_EINVAL;
    if (!cfg_valid(cfg)) return DX_EINVAL;
    wbuf b = {out, cap ? cap - 1 : 0, 0, 0}; /* room for the NUL */
    put_str(&b, pmd_name);
    if (cfg->server_no_context_takeover) put_str(&b, "; server_no_context_takeover");
    if (cfg->client_no_context_takeover) put_str(&b, "; client_no_context_takeover");
    if (cfg_bits(cfg->server_max_window_bits) < 15)
        put_bits(&b, "server_max_window_bits", cfg->server_max_window_bits);
    /* Always said, so that the server knows it may limit our window. */
    if (cfg_bits(cfg->client_max_window_bits) < 15)
        put_bits(&b, "client_max_window_bits", cfg->client_max_window_bits);
    else
        put_str(&b, "; client_max_window_bits");
    int n = wbuf_finish(&b);
    if (n >= 0) out[n] = '\0';
    return n;
}

static int refuse(const char **why, const char *reason) {
    if (why) *why = reason;
    return DX_EHANDSHAKE;
}

int dx_deflate_verify(const dx_deflate_config *cfg, const char *value, size_t len,
                      dx_deflate_params *agreed, const char **why) {
    if (why) *why = NULL;
    if (!cfg || !agreed || (!value && len)) return refuse(why, "invalid argument");
    if (!cfg_valid(cfg)) return refuse(why, "invalid permessage-deflate config");
    size_t pos = 0;
    dx_ext e;
    int rc = dx_ext_next(value, len, &pos, &e);
    if (rc < 0) return refuse(why, "malformed Sec-WebSocket-Extensions in the answer");
    if (rc == 0) return refuse(why, "empty Sec-WebSocket-Extensions in the answer");
    if (!dx_http_ieq(e.name, e.name_len, pmd_name))
        return refuse(why, "server accepted an extension that was not offered");
    dx_ext more;
    rc = dx_ext_next(value, len, &pos, &more);
    if (rc != 0) return refuse(why, "server accepted more extensions than were offered");
    pmd_said s;
    const char *bad = NULL;
    if (read_params(&e, 1, &s, &bad) < 0) return refuse(why, bad);

    int our_smwb = cfg_bits(cfg->server_max_window_bits);
    int our_cmwb = cfg_bits(cfg->client_max_window_bits);
    if (cfg->server_no_context_takeover && !s.snct)
        return refuse(why, "server ignored the offered server_no_context_takeover");
    if (our_smwb < 15 && !s.has_smwb)
        return refuse(why, "server ignored the offered server_max_window_bits");
    if (s.has_smwb && s.smwb > our_smwb)
        return refuse(why, "server_max_window_bits larger than offered");
    if (s.has_cmwb && s.cmwb > our_cmwb)
        return refuse(why, "client_max_window_bits larger than offered");
    agreed->server_no_context_takeover = s.snct;
    agreed->client_no_context_takeover = s.cnct || cfg->client_no_context_takeover;
    agreed->server_max_window_bits = (uint8_t)(s.has_smwb ? s.smwb : 15);
    agreed->client_max_window_bits = (uint8_t)(s.has_cmwb ? s.cmwb : our_cmwb);
    return 0;
}

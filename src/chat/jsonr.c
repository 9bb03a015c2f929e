/* The fast path for flat requests (jsonr.h). Every check here is one that
 * jansson makes too; where jansson would say more (an error), this gives
 * up instead and lets it. */
#include <stdint.h>
#include <string.h>

#include "chat/jsonr.h"

/* More members than any request has: give up (jansson then parses it). */
#define MEMBERS_MAX 32

typedef struct cursor {
    const unsigned char *p, *end;
} cursor;

static void skip_ws(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* The length of the valid UTF-8 sequence at p (a lead byte >= 0x80), or 0:
 * no overlong form, no surrogate, nothing above U+10FFFF (jansson's
 * rules, which are the standard's). */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end) {
    unsigned c = p[0];
    size_t n;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;
    if (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
    return n;
}

/* A string with no escape, the cursor on its opening quote: its bytes
 * (*s, *len) and the cursor after the closing quote; 0 to give up. */
static int string(cursor *c, const char **s, size_t *len) {
    const unsigned char *p = c->p + 1, *start = p;
    for (;;) {
        if (p == c->end) return 0;
        unsigned ch = *p;
        if (ch == '"') break;
        if (ch < 0x20 || ch == '\\') return 0; /* a control character, an escape */
        if (ch < 0x80) {
            p++;
        } else {
            size_t k = utf8_seq(p, c->end);
            if (!k) return 0;
            p += k;
        }
    }
    *s = (const char *)start;
    *len = (size_t)(p - start);
    c->p = p + 1;
    return 1;
}

/* A value: a new reference, or NULL to give up. */
static json_t *value(cursor *c) {
    if (c->p == c->end) return NULL;
    unsigned ch = *c->p;
    size_t left = (size_t)(c->end - c->p);
    if (ch == '"') {
        const char *s;
        size_t n;
        return string(c, &s, &n) ? json_stringn_nocheck(s, n) : NULL;
    }
    if (ch == '-' || (ch >= '0' && ch <= '9')) {
        const unsigned char *p = c->p;
        int neg = *p == '-';
        if (neg) p++;
        const unsigned char *digits = p;
        int64_t v = 0;
        while (p < c->end && *p >= '0' && *p <= '9') {
            /* 18 digits cannot overflow; more go to jansson (which
             * says whether they fit). */
            if (p - digits == 18) return NULL;
            v = v * 10 + (*p - '0');
            p++;
        }
        if (p == digits || (*digits == '0' && p - digits > 1)) return NULL;   /* -, 01 */
        if (p < c->end && (*p == '.' || *p == 'e' || *p == 'E')) return NULL; /* a real */
        c->p = p;
        return json_integer(neg ? -v : v);
    }
    if (left >= 4 && !memcmp(c->p, "true", 4)) {
        c->p += 4;
        return json_true();
    }
    if (left >= 5 && !memcmp(c->p, "false", 5)) {
        c->p += 5;
        return json_false();
    }
    if (left >= 4 && !memcmp(c->p, "null", 4)) {
        c->p += 4;
        return json_null();
    }
    return NULL; /* an object, an array, or not JSON */
}

json_t *dx__jsonr_flat(const char *s, size_t n) {
    cursor c = {(const unsigned char *)s, (const unsigned char *)s + n};
    skip_ws(&c);
    if (c.p == c.end || *c.p != '{') return NULL;
    c.p++;
    json_t *obj = json_object();
    if (!obj) return NULL;
    skip_ws(&c);
    if (c.p < c.end && *c.p == '}') {
        c.p++;
    } else {
        for (int members = 0;; members++) {
            const char *key;
            size_t klen;
            if (members == MEMBERS_MAX || c.p == c.end || *c.p != '"' || !string(&c, &key, &klen))
                goto fail;
            skip_ws(&c);
            if (c.p == c.end || *c.p != ':') goto fail;
            c.p++;
            skip_ws(&c);
            /* A duplicate is jansson's to refuse, with its message. */
            if (json_object_getn(obj, key, klen)) goto fail;
            json_t *v = value(&c);
            if (!v || json_object_setn_new_nocheck(obj, key, klen, v) < 0) goto fail;
            skip_ws(&c);
            if (c.p == c.end) goto fail;
            if (*c.p == '}') {
                c.p++;
                break;
            }
            if (*c.p != ',') goto fail;
            c.p++;
            skip_ws(&c);
        }
    }
    skip_ws(&c);
    if (c.p != c.end) goto fail; /* something after the object */
    return obj;
fail:
    json_decref(obj);
    return NULL;
}

/* The hot path's JSON writer (src/chat/jsonw.c) and the ack and deliver
 * written with it (engine.c): byte for byte what jansson's json_dumps
 * (JSON_COMPACT) writes for the same values, which is what the engine sent
 * before — escapes of quotes, backslashes and every control character,
 * UTF-8 as it is, integers to both ends of int64; random strings against
 * jansson; and out of memory at each allocation. And the fast path of the
 * request parser (src/chat/jsonr.c) against json_loadb: whatever it
 * accepts, jansson accepts as the same value with the same member order;
 * what it gives up on includes every input jansson refuses. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <duplex/common.h>

#include "chat/engine_int.h"
#include "chat/jsonr.h"
#include "chat/jsonw.h"
#include "test.h"

/* jansson's compact dump of `j` (taken). */
static char *dump(json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    return s;
}

/* The writer's string of s[0, n) equals jansson's. */
static int same_str(const char *s, size_t n) {
    dx__jsonw w = {0};
    dx__jsonw_str(&w, s, n);
    char *want = dump(json_stringn(s, n));
    int ok = want && !w.oom && w.len == strlen(want) && !memcmp(w.p, want, w.len);
    if (!ok) fprintf(stderr, "  got %.*s want %s\n", (int)w.len, w.p ? w.p : "", want);
    free(want);
    dx__jsonw_free(&w);
    return ok;
}

static void test_escapes(void) {
    CHECK(same_str("", 0));
    CHECK(same_str("plain text", 10));
    CHECK(same_str("\"quoted\"", 8));
    CHECK(same_str("back\\slash", 10));
    CHECK(same_str("a/b", 3)); /* no \/ */
    CHECK(same_str("\b\f\n\r\t", 5));
    CHECK(same_str("\x7f", 1));
    /* Every control character alone and between others. */
    for (int c = 1; c < 0x20; c++) {
        char s[4] = {'x', (char)c, 'y', 0};
        CHECK(same_str(s + 1, 1));
        CHECK(same_str(s, 3));
    }
    /* UTF-8 goes through as it is: 2, 3 and 4 bytes. */
    const char *u = "caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80";
    CHECK(same_str(u, strlen(u)));
    /* What the writer writes, spelt out. */
    dx__jsonw w = {0};
    static const char esc[] = "\"a\\\"\\\\\\u0001\\u001F\\n\"";
    dx__jsonw_str(&w, "a\"\\\x01\x1f\n", 6);
    CHECK(w.len == sizeof esc - 1 && !memcmp(w.p, esc, w.len));
    dx__jsonw_free(&w);
}

static void test_random_strings(void) {
    dx_t_seed();
    /* Bytes 1-127 and valid UTF-8 sequences, in random mixes and lengths
     * up to past the writer's first buffer. */
    static const char *const mb[] = {"\xc3\xa9", "\xe4\xbd\xa0", "\xf0\x9f\x98\x80", "\xdf\xbf",
                                     "\xef\xbf\xbf"};
    char s[2048];
    for (int round = 0; round < 2000; round++) {
        size_t n = 0, want = (size_t)(dx_t_rand() % 600);
        while (n < want) {
            uint64_t r = dx_t_rand();
            if (r % 5 == 0) {
                const char *m = mb[(r >> 8) % 5];
                memcpy(s + n, m, strlen(m));
                n += strlen(m);
            } else {
                s[n++] = (char)(1 + (r >> 8) % 127);
            }
        }
        if (!same_str(s, n)) {
            CHECK(0);
            break;
        }
    }
}

static void test_integers(void) {
    static const int64_t v[] = {0,         1,          -1,        9,         10,           -10,
                                123456789, 4294967296, INT64_MAX, INT64_MIN, INT64_MIN + 1};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        dx__jsonw w = {0};
        dx__jsonw_int(&w, v[i]);
        char *want = dump(json_integer(v[i]));
        CHECK(want && w.len == strlen(want) && !memcmp(w.p, want, w.len));
        free(want);
        dx__jsonw_free(&w);
    }
    /* Scalars of a request id, and anything else as null. */
    dx__jsonw w = {0};
    json_t *a = json_integer(-42), *b = json_string("i\"d"), *c = json_true();
    dx__jsonw_scalar(&w, a);
    dx__jsonw_lit(&w, ",");
    dx__jsonw_scalar(&w, b);
    dx__jsonw_lit(&w, ",");
    dx__jsonw_scalar(&w, c);
    static const char want[] = "-42,\"i\\\"d\",null";
    CHECK(w.len == sizeof want - 1 && !memcmp(w.p, want, w.len));
    /* Reset keeps the memory and starts over. */
    char *p = w.p;
    dx__jsonw_reset(&w);
    dx__jsonw_lit(&w, "x");
    CHECK(w.len == 1 && w.p == p);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    dx__jsonw_free(&w);
}

/* The ack and the deliver as the engine built them with jansson. */
static char *ack_jansson(json_t *id, const dx__chat_msg *m, int dup) {
    json_t *j = json_pack("{s:i, s:s}", "v", DX_CHAT_PROTO, "type", "ack");
    if (id) json_object_set(j, "id", id);
    json_object_set_new(j, "conv", json_string(m->conv));
    json_object_set_new(j, "cid", json_string(m->cid));
    json_object_set_new(j, "mid", json_integer(m->mid));
    json_object_set_new(j, "seq", json_integer(m->seq));
    json_object_set_new(j, "ts", json_integer(m->ts));
    if (dup) json_object_set_new(j, "dup", json_true());
    return dump(j);
}

static char *deliver_jansson(const dx__chat_msg *m) {
    json_t *j = json_pack("{s:i, s:s}", "v", DX_CHAT_PROTO, "type", "deliver");
    json_object_set_new(j, "msg", dx__chat_msg_json(NULL, m));
    return dump(j);
}

static void test_ack_deliver(void) {
    const char *texts[] = {"hello", "message 7 from u3 \xe4\xbd\xa0\xe5\xa5\xbd",
                           "\"q\" \\ \t\n\x01\x1f end", "</script>\x7f"};
    const char *cids[] = {"c1", "b12-3", "q\"uo\\te", "~!@#$%^&*()"};
    json_t *ids[] = {NULL, json_integer(7), json_integer(INT64_MIN), json_string("s"),
                     json_string("id \"with\" \xc3\xa9\\")};
    for (size_t t = 0; t < 4; t++) {
        for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
            dx__chat_msg m = {.conv = t % 2 ? "d:alice:bob" : "g:lobby",
                              .from = "alice",
                              .cid = cids[t],
                              .text = texts[t],
                              .seq = (int64_t)t * 1000 + 1,
                              .mid = INT64_MAX - (int64_t)k,
                              .ts = 1764650000000 + (int64_t)k};
            for (int dup = 0; dup < 2; dup++) {
                dx__jsonw w = {0};
                dx__chat_ack_write(&w, ids[k], &m, dup);
                char *want = ack_jansson(ids[k], &m, dup);
                CHECK(want && !w.oom && w.len == strlen(want) && !memcmp(w.p, want, w.len));
                free(want);
                dx__jsonw_free(&w);
            }
            dx__jsonw w = {0};
            dx__chat_deliver_write(&w, &m);
            char *want = deliver_jansson(&m);
            CHECK(want && !w.oom && w.len == strlen(want) && !memcmp(w.p, want, w.len));
            if (want && (w.len != strlen(want) || memcmp(w.p, want, w.len)))
                fprintf(stderr, "  got %.*s\n  want %s\n", (int)w.len, w.p, want);
            free(want);
            dx__jsonw_free(&w);
        }
    }
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++)
        json_decref(ids[k]);
}

/* Out of memory: the writer's allocation fails, oom says so and stays,
 * nothing is written past it; after a reset it works again. */
static int fail_alloc;
static void *t_malloc(size_t n) {
    return fail_alloc ? NULL : malloc(n);
}
static void *t_realloc(void *p, size_t n) {
    return fail_alloc ? NULL : realloc(p, n);
}

static void test_oom(void) {
    dx_set_allocator(t_malloc, t_realloc, free);
    dx__jsonw w = {0};
    fail_alloc = 1;
    dx__jsonw_lit(&w, "{");
    dx__jsonw_str(&w, "abc", 3);
    dx__jsonw_int(&w, 5);
    CHECK(w.oom && w.len == 0);
    fail_alloc = 0;
    dx__jsonw_lit(&w, "x");
    CHECK(w.oom && w.len == 0); /* sticky until the reset */
    dx__jsonw_reset(&w);
    dx__jsonw_str(&w, "abc", 3);
    CHECK(!w.oom && w.len == 5);
    /* Growth that fails half way keeps what was written before. */
    char big[1000];
    memset(big, 'a', sizeof big);
    fail_alloc = 1;
    dx__jsonw_str(&w, big, sizeof big);
    CHECK(w.oom && w.len == 5 && !memcmp(w.p, "\"abc\"", 5));
    fail_alloc = 0;
    dx__jsonw_free(&w);
    dx_set_allocator(malloc, realloc, free);
}

/* Checks the fast parser on s[0, n) against jansson: 1 when the fast path
 * took it (and agreed), 0 when it gave up, -1 when they disagree. */
static int parse_vs_jansson(const char *s, size_t n) {
    json_t *fast = dx__jsonr_flat(s, n);
    json_error_t err;
    json_t *slow = json_loadb(s, n, JSON_REJECT_DUPLICATES, &err);
    int rc = 0;
    if (fast) {
        rc = 1;
        if (!slow || !json_equal(fast, slow)) rc = -1;
        /* The same members in the same order (json_dumps keeps it). */
        char *a = slow ? json_dumps(fast, JSON_COMPACT) : NULL;
        char *b = slow ? json_dumps(slow, JSON_COMPACT) : NULL;
        if (!a || !b || strcmp(a, b)) rc = -1;
        free(a);
        free(b);
    }
    if (rc < 0) fprintf(stderr, "  disagree on %.*s\n", (int)n, s);
    json_decref(fast);
    json_decref(slow);
    return rc;
}
#define FAST(lit) parse_vs_jansson((lit), sizeof(lit) - 1)

static void test_parse_cases(void) {
    /* Taken: flat objects of plain strings, integers, literals. */
    CHECK(FAST("{\"v\":1,\"type\":\"send\",\"id\":7,\"conv\":\"d:a:b\",\"cid\":\"c1\","
               "\"text\":\"message 1 from u0 \xe4\xbd\xa0\xe5\xa5\xbd\"}") == 1);
    CHECK(FAST("{}") == 1);
    CHECK(FAST(" \t\r\n{ \"a\" : -0 , \"b\":true,\"c\":false,\"d\":null,\"\":\"\"} \n") == 1);
    CHECK(FAST("{\"n\":-999999999999999999,\"m\":999999999999999999}") == 1);
    CHECK(FAST("{\"u\":\"\xf4\x8f\xbf\xbf\xef\xbf\xbf\xc2\x80\x7f\"}") == 1);
    /* Given up on, jansson's to answer (accepting or refusing). */
    const char *const no[] = {
        "{\"a\":\"x\\ny\"}", /* an escape */
        "{\"a\":[1]}",
        "{\"a\":{}}",
        "[1]",
        "1",
        "\"s\"",
        "",
        " ", /* not a flat object */
        "{\"a\":1.5}",
        "{\"a\":1e3}",
        "{\"a\":1E3}",                  /* reals */
        "{\"a\":1234567890123456789}",  /* 19 digits */
        "{\"a\":99999999999999999999}", /* too big for jansson too */
        "{\"a\":01}",
        "{\"a\":-}",
        "{\"a\":-a}",
        "{\"a\":+1}",        /* bad numbers */
        "{\"a\":1,\"a\":2}", /* a duplicate */
        "{\"a\":1,}",
        "{,}",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\" 1}",
        "{a:1}",
        "{'a':1}",
        "{\"a\":1}x",
        "{\"a\":1}{}",
        "{\"a\":1",
        "{\"a\":\"x",
        "{\"a\":tru}",
        "{\"a\":nul}",
        "{\"a\":truex}",
        "{\"a\":1x}",
        "\xef\xbb\xbf{}", /* a BOM */
        "{\"a\":\"\x01\"}",
        "{\"a\":\"\x1f\"}",
        "{\"a\":\"\t\"}", /* control characters */
        "{\"a\":\"\xc0\x80\"}",
        "{\"a\":\"\xc1\xbf\"}", /* overlong */
        "{\"a\":\"\xe0\x80\x80\"}",
        "{\"a\":\"\xf0\x80\x80\x80\"}",
        "{\"a\":\"\xed\xa0\x80\"}", /* a surrogate */
        "{\"a\":\"\xf4\x90\x80\x80\"}",
        "{\"a\":\"\xf5\x80\x80\x80\"}", /* > U+10FFFF */
        "{\"a\":\"\x80\"}",
        "{\"a\":\"\xc3\"}",
        "{\"a\":\"\xe4\xbd\"}",
        "{\"a\":\"\xff\"}",
        "{\"\xc3\":1}",
    };
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        int rc = parse_vs_jansson(no[i], strlen(no[i]));
        if (rc != 0) fprintf(stderr, "  taken: %s\n", no[i]);
        CHECK(rc == 0);
    }
    /* A NUL inside, anywhere. */
    CHECK(parse_vs_jansson("{\"a\":\"x\0y\"}", 11) == 0);
    CHECK(parse_vs_jansson("{\"a\":1}\0", 8) == 0);
    CHECK(parse_vs_jansson("{\"a\":\"x\"}", 6) == 0); /* cut short */
    /* 32 members are taken, 33 go to jansson. */
    char many[1024];
    size_t k = 0;
    many[k++] = '{';
    for (int i = 0; i < 33; i++)
        k += (size_t)snprintf(many + k, sizeof many - k, "%s\"k%d\":%d", i ? "," : "", i, i);
    many[k++] = '}';
    CHECK(parse_vs_jansson(many, k) == 0);
    k = 0;
    many[k++] = '{';
    for (int i = 0; i < 32; i++)
        k += (size_t)snprintf(many + k, sizeof many - k, "%s\"k%d\":%d", i ? "," : "", i, i);
    many[k++] = '}';
    CHECK(parse_vs_jansson(many, k) == 1);
}

/* Random mutations of real requests: whatever the fast path takes,
 * jansson takes the same. */
static void test_parse_random(void) {
    static const char *const seeds[] = {
        "{\"v\":1,\"type\":\"send\",\"id\":12,\"conv\":\"d:u0:u1\",\"cid\":\"b0-12\","
        "\"text\":\"message 12 from u0 \xe4\xbd\xa0\xe5\xa5\xbd\"}",
        "{\"v\":1,\"type\":\"read\",\"id\":\"r\",\"conv\":\"g:lobby\",\"seq\":-0}",
        "{ \"v\" : 1 , \"type\" : \"typing\" , \"ok\" : true , \"x\" : null }",
    };
    static const char alphabet[] = "{}[]:,\"\\ 0123456789-+.eEtrufalsn\x80\xbf\xc3\xe4\xf0\x01a";
    char buf[512];
    int taken = 0;
    for (int round = 0; round < 20000; round++) {
        const char *seed = seeds[dx_t_rand() % 3];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        int edits = 1 + (int)(dx_t_rand() % 3);
        for (int e = 0; e < edits; e++) {
            uint64_t r = dx_t_rand();
            size_t at = n ? (size_t)(r % n) : 0;
            char ch = alphabet[(r >> 20) % (sizeof alphabet - 1)];
            switch ((r >> 40) % 3) {
            case 0: /* replace */
                if (n) buf[at] = ch;
                break;
            case 1: /* insert */
                if (n + 1 < sizeof buf) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = ch;
                    n++;
                }
                break;
            default: /* delete */
                if (n) {
                    memmove(buf + at, buf + at + 1, n - at - 1);
                    n--;
                }
            }
        }
        int rc = parse_vs_jansson(buf, n);
        if (rc < 0) {
            CHECK(0);
            break;
        }
        taken += rc;
    }
    CHECK(taken > 100); /* the mutations kept some valid */
}

int main(void) {
    RUN(test_escapes);
    RUN(test_random_strings);
    RUN(test_integers);
    RUN(test_ack_deliver);
    RUN(test_oom);
    RUN(test_parse_cases);
    RUN(test_parse_random);
    return TEST_DONE();
}

/* The parsing of a session request's target (src/server/session_req.c):
 * the path /.duplex/<SID>/down|up and the query's ack=, seq= and mode=,
 * each target lent in a heap block of exactly its size (so a read past
 * it shows under AddressSanitizer). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/session_req.h"
#include "test.h"

#define SID "0123456789abcdef0123456789abcdef"

/* Splits and parses `target`; returns the op. */
static int parse(const char *target, dx__sreq *r) {
    size_t n = strlen(target);
    char *t = malloc(n ? n : 1);
    memcpy(t, target, n);
    const char *path, *query;
    size_t pn, qn;
    dx__sreq_split(t, n, &path, &pn, &query, &qn);
    int op = dx__sreq_parse(path, pn, query, qn, r);
    if ((op == DX__SREQ_DOWN || op == DX__SREQ_UP) && memcmp(r->sid, SID, DX__SID_LEN)) op = -1;
    free(t);
    return op;
}

static void paths(void) {
    dx__sreq r;
    CHECK_EQ_INT(parse("/.duplex/" SID "/down?ack=0&mode=stream", &r), DX__SREQ_DOWN);
    CHECK_EQ_INT(parse("/.duplex/" SID "/up?seq=0", &r), DX__SREQ_UP);
    CHECK_EQ_INT(parse("/.duplex/" SID "/down", &r), DX__SREQ_DOWN);
    /* Not ours: open requests and plain HTTP. */
    CHECK_EQ_INT(parse("/", &r), DX__SREQ_NONE);
    CHECK_EQ_INT(parse("/chat?ack=1", &r), DX__SREQ_NONE);
    CHECK_EQ_INT(parse("/.duplex", &r), DX__SREQ_NONE);
    CHECK_EQ_INT(parse("", &r), DX__SREQ_NONE);
    CHECK_EQ_INT(parse("/x/.duplex/" SID "/up", &r), DX__SREQ_NONE);
    /* Ours but nothing there. */
    CHECK_EQ_INT(parse("/.duplex/", &r), DX__SREQ_NOTFOUND);
    CHECK_EQ_INT(parse("/.duplex/" SID, &r), DX__SREQ_NOTFOUND);
    CHECK_EQ_INT(parse("/.duplex/" SID "/", &r), DX__SREQ_NOTFOUND);
    CHECK_EQ_INT(parse("/.duplex/" SID "/dow", &r), DX__SREQ_NOTFOUND);
    CHECK_EQ_INT(parse("/.duplex/" SID "/downs", &r), DX__SREQ_NOTFOUND);
    CHECK_EQ_INT(parse("/.duplex/" SID "/up/", &r), DX__SREQ_NOTFOUND);
    CHECK_EQ_INT(parse("/.duplex/" SID "/UP", &r), DX__SREQ_NOTFOUND);
    /* 31 and 33 characters: the operation is not where it must be. */
    CHECK_EQ_INT(parse("/.duplex/0123456789abcdef0123456789abcde/up?seq=0", &r), DX__SREQ_NOTFOUND);
    CHECK_EQ_INT(parse("/.duplex/0123456789abcdef0123456789abcdef0/up?seq=0", &r),
                 DX__SREQ_NOTFOUND);
    CHECK_EQ_INT(parse("/.duplex/0123456789abcdef0123456789abcde/down?ack=0&mode=poll", &r),
                 DX__SREQ_NOTFOUND);
    CHECK_EQ_INT(parse("/.duplex/0123456789abcdef0123456789abcdef0/down?ack=0&mode=poll", &r),
                 DX__SREQ_NOTFOUND);
    /* 32 characters that are not lowercase hex: no SID. */
    CHECK_EQ_INT(parse("/.duplex/0123456789ABCDEF0123456789abcdef/up?seq=0", &r), DX__SREQ_NOSID);
    CHECK_EQ_INT(parse("/.duplex/0123456789abcdef0123456789abcdeF/down?ack=0&mode=poll", &r),
                 DX__SREQ_NOSID);
    CHECK_EQ_INT(parse("/.duplex/0123456789abcdef0123456789abcdeg/up", &r), DX__SREQ_NOSID);
    CHECK_EQ_INT(parse("/.duplex/0123456789abcdef0123456789abc%20/up", &r), DX__SREQ_NOSID);
    CHECK(r.sid == NULL);
    CHECK(dx__sreq_sid_ok(SID));
    CHECK(!dx__sreq_sid_ok("0123456789ABCDEF0123456789abcdef"));
}

/* A target and what its query must give: each parameter's status
 * (B: malformed, A: absent, K: valid) and value. */
enum { B = DX__SQ_BAD, A = DX__SQ_ABSENT, K = DX__SQ_OK };
enum { STREAM = DX__SMODE_STREAM, POLL = DX__SMODE_POLL };

typedef struct qcase {
    const char *target;
    int8_t ack_st, seq_st, mode_st;
    uint64_t ack, seq;
    uint8_t mode;
} qcase;

#define T(q) "/.duplex/" SID q
static const qcase qcases[] = {
    {T("/up?seq=1234&ack=99"), K, K, A, 99, 1234, 0},
    {T("/up?seq=0"), A, K, A, 0, 0, 0},
    /* The largest uint64 fits; one more overflows and is refused. */
    {T("/down?ack=18446744073709551615&mode=poll"), K, A, K, UINT64_MAX, 0, POLL},
    {T("/down?ack=18446744073709551616&mode=poll"), B, A, K, 0, 0, POLL},
    {T("/up?seq=99999999999999999999"), A, B, A, 0, 0, 0},
    {T("/up?seq=184467440737095516150"), A, B, A, 0, 0, 0},
    /* Leading zeros are digits like any other. */
    {T("/up?seq=000000000000000000000000042"), A, K, A, 0, 42, 0},
    /* Not a decimal. */
    {T("/up?seq=-1&ack=+1"), B, B, A, 0, 0, 0},
    {T("/up?seq=1%30&ack=0x10"), B, B, A, 0, 0, 0},
    {T("/up?seq=1 &ack= 1"), B, B, A, 0, 0, 0},
    /* Twice, even with the same value: a proxy may read the other one. */
    {T("/down?ack=1&ack=1&mode=stream"), B, A, K, 0, 0, STREAM},
    {T("/down?ack=1&mode=stream&ack=2"), B, A, K, 0, 0, STREAM},
    {T("/up?seq=1&seq=1"), A, B, A, 0, 0, 0},
    {T("/down?ack=0&mode=poll&mode=poll"), K, A, B, 0, 0, 0},
    {T("/down?ack=0&mode=stream&mode=x"), K, A, B, 0, 0, 0},
    /* Empty values, and names without '='. */
    {T("/up?seq=&ack="), B, B, A, 0, 0, 0},
    {T("/down?ack&mode"), B, A, B, 0, 0, 0},
    {T("/down?ack=0&mode="), K, A, B, 0, 0, 0},
    {T("/down?"), A, A, A, 0, 0, 0},
    {T("/down?&&&"), A, A, A, 0, 0, 0},
    /* Modes: exactly stream or poll. */
    {T("/down?mode=poll&ack=5"), K, A, K, 5, 0, POLL},
    {T("/down?ack=5&mode=stream"), K, A, K, 5, 0, STREAM},
    {T("/down?ack=5&mode=Stream"), K, A, B, 5, 0, 0},
    {T("/down?ack=5&mode=streams"), K, A, B, 5, 0, 0},
    /* Other parameters (a cache buster) and names that only begin alike
     * are ignored. */
    {T("/down?_=123&acks=1&xack=2&ack=3&mode=poll&modes=x"), K, A, K, 3, 0, POLL},
    /* The query starts at the first '?'. */
    {T("/up?seq=1?ack=2"), A, B, A, 0, 0, 0},
};
#undef T

static void queries(void) {
    for (size_t i = 0; i < sizeof qcases / sizeof qcases[0]; i++) {
        const qcase *q = &qcases[i];
        dx__sreq r;
        int op = parse(q->target, &r);
        int ok = (op == DX__SREQ_DOWN || op == DX__SREQ_UP) && r.ack_st == q->ack_st &&
                 r.seq_st == q->seq_st && r.mode_st == q->mode_st &&
                 (r.ack_st != K || r.ack == q->ack) && (r.seq_st != K || r.seq == q->seq) &&
                 r.mode == q->mode;
        if (!ok)
            fprintf(stderr, "  %s: op %d ack %d/%llu seq %d/%llu mode %d/%d\n", q->target, op,
                    r.ack_st, (unsigned long long)r.ack, r.seq_st, (unsigned long long)r.seq,
                    r.mode_st, r.mode);
        CHECK(ok);
    }
}

static void open_request(void) {
    CHECK(dx__sreq_is_open("POST", 4, "1", 1));
    CHECK(!dx__sreq_is_open("POST", 4, NULL, 0));
    CHECK(!dx__sreq_is_open("POST", 4, "0", 1));
    CHECK(!dx__sreq_is_open("POST", 4, "1 ", 2));
    CHECK(!dx__sreq_is_open("POST", 4, "", 0));
    CHECK(!dx__sreq_is_open("GET", 3, "1", 1));
    CHECK(!dx__sreq_is_open("post", 4, "1", 1));
}

int main(void) {
    RUN(paths);
    RUN(queries);
    RUN(open_request);
    return TEST_DONE();
}

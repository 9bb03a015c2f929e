/* The session transport's request parsing (src/server/session_req.c):
 * the target of a down or up request, /.duplex/<SID>/<op>?ack=&seq=&mode=,
 * and the recognition of an open request.
 *
 * cfg bit 0: the path gets "/.duplex/" in front (so the fuzzer reaches the
 * SID and the operation at once); bit 1: no query at all (NULL); bit 2:
 * the data is a whole target, cut at its first '?' by dx__sreq_split. The
 * split seed picks where the data is cut into path and query otherwise.
 * Path and query are each lent in a heap block of exactly their size.
 *
 * What must hold: the op says what the path is (NONE exactly when it does
 * not start with /.duplex/; DOWN and UP only for /.duplex/<SID>/down or
 * /up, the SID 32 lowercase hex digits inside the path); a parameter
 * reported valid is the one and only one of its name, a number its exact
 * decimal value (no overflow: checked against a 128-bit reference), a
 * mode stream or poll; a malformed one is absent from neither the query
 * nor the reference's verdict. */
#include "server/session_req.h"

#include "fuzz.h"

#define PREFIX "/.duplex/"

/* The reference reading of one parameter: how many times `name` occurs as
 * a key, and the last value's slice. */
static int ref_count(const char *q, size_t n, const char *name, const char **v, size_t *vn) {
    size_t k = strlen(name);
    int count = 0;
    size_t start = 0;
    for (size_t i = 0; q && i <= n; i++) {
        if (i < n && q[i] != '&') continue;
        size_t len = i - start;
        const char *p = q + start;
        size_t kn = 0;
        while (kn < len && p[kn] != '=')
            kn++;
        if (kn == k && !memcmp(p, name, k)) {
            count++;
            *v = kn < len ? p + kn + 1 : p + len;
            *vn = kn < len ? len - kn - 1 : 0;
        }
        start = i + 1;
    }
    return count;
}

/* A reference decimal: -1 when not all digits or empty, -2 when over
 * UINT64_MAX, else 0 and the value. */
static int ref_u64(const char *v, size_t n, uint64_t *out) {
    if (n == 0) return -1;
    unsigned __int128 x = 0;
    int over = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return -1;
        x = x * 10 + (unsigned)(v[i] - '0');
        if (x > UINT64_MAX) over = 1, x = (unsigned __int128)UINT64_MAX + 1;
    }
    if (over) return -2;
    *out = (uint64_t)x;
    return 0;
}

static void check_number(int8_t st, uint64_t val, const char *q, size_t qn, const char *name) {
    const char *v = NULL;
    size_t vn = 0;
    int count = ref_count(q, qn, name, &v, &vn);
    uint64_t ref = 0;
    if (count == 0) {
        FZ_CHECK(st == DX__SQ_ABSENT);
    } else if (count > 1 || ref_u64(v, vn, &ref) < 0) {
        FZ_CHECK(st == DX__SQ_BAD);
    } else {
        FZ_CHECK(st == DX__SQ_OK);
        FZ_CHECK(val == ref);
        /* Its decimal form is the value without its leading zeros. */
        char buf[24];
        int k = snprintf(buf, sizeof buf, "%llu", (unsigned long long)val);
        while (vn > 1 && *v == '0')
            v++, vn--;
        FZ_CHECK(k > 0 && (size_t)k == vn && !memcmp(buf, v, vn));
    }
}

static void check_parse(const char *path, size_t pn, const char *query, size_t qn) {
    dx__sreq r;
    memset(&r, 0xa5, sizeof r); /* every field must be written */
    int op = dx__sreq_parse(path, pn, query, qn, &r);
    FZ_CHECK(op == r.op);
    FZ_CHECK(op >= DX__SREQ_NONE && op <= DX__SREQ_UP);
    size_t pl = strlen(PREFIX);
    int ours = pn >= pl && !memcmp(path, PREFIX, pl);
    FZ_CHECK((op == DX__SREQ_NONE) == !ours);
    if (op == DX__SREQ_DOWN || op == DX__SREQ_UP) {
        FZ_CHECK(r.sid == path + pl);
        const char *tail = op == DX__SREQ_DOWN ? "/down" : "/up";
        size_t tl = strlen(tail);
        FZ_CHECK(pn == pl + DX__SID_LEN + tl);
        FZ_CHECK(!memcmp(path + pl + DX__SID_LEN, tail, tl));
        for (int i = 0; i < DX__SID_LEN; i++)
            FZ_CHECK((r.sid[i] >= '0' && r.sid[i] <= '9') || (r.sid[i] >= 'a' && r.sid[i] <= 'f'));
        FZ_CHECK(dx__sreq_sid_ok(r.sid));
    } else if (op == DX__SREQ_NOSID) {
        FZ_CHECK(pn >= pl + DX__SID_LEN && !dx__sreq_sid_ok(path + pl));
    }
    check_number(r.ack_st, r.ack, query, qn, "ack");
    check_number(r.seq_st, r.seq, query, qn, "seq");
    const char *v = NULL;
    size_t vn = 0;
    int count = ref_count(query, qn, "mode", &v, &vn);
    if (count == 0) {
        FZ_CHECK(r.mode_st == DX__SQ_ABSENT && r.mode == 0);
    } else if (count == 1 && vn == 6 && !memcmp(v, "stream", 6)) {
        FZ_CHECK(r.mode_st == DX__SQ_OK && r.mode == DX__SMODE_STREAM);
    } else if (count == 1 && vn == 4 && !memcmp(v, "poll", 4)) {
        FZ_CHECK(r.mode_st == DX__SQ_OK && r.mode == DX__SMODE_POLL);
    } else {
        FZ_CHECK(r.mode_st == DX__SQ_BAD && r.mode == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_input in;
    if (!fz_input_init(&in, data, size)) return 0;
    const char *d = (const char *)in.data;
    size_t n = in.len;

    if (in.cfg & 4) {
        /* A whole target, split at its first '?'. */
        char *t = (char *)fz_dup(in.data, n);
        const char *path, *query;
        size_t pn, qn;
        dx__sreq_split(t, n, &path, &pn, &query, &qn);
        FZ_CHECK(path == t && pn <= n);
        if (query) {
            FZ_CHECK(pn < n && t[pn] == '?' && query == t + pn + 1 && qn == n - pn - 1);
            FZ_CHECK(!memchr(t, '?', pn));
        } else {
            FZ_CHECK(pn == n && qn == 0 && (!n || !memchr(t, '?', n)));
        }
        check_parse(path, pn, query, qn);
        free(t);
        return 0;
    }

    size_t cut = n ? fz_rand(&in) % (n + 1) : 0;
    size_t pl = (in.cfg & 1) ? strlen(PREFIX) : 0;
    char *path = malloc(pl + cut ? pl + cut : 1);
    if (!path) abort();
    memcpy(path, PREFIX, pl);
    if (cut) memcpy(path + pl, d, cut);
    size_t pn = pl + cut;
    int no_query = (in.cfg & 2) != 0;
    char *query = no_query ? NULL : (char *)fz_dup(in.data + cut, n - cut);
    check_parse(path, pn, query, no_query ? 0 : n - cut);

    /* The same bytes as a method and an X-Duplex-Session value. */
    int open = dx__sreq_is_open(path, pn, query, no_query ? 0 : n - cut);
    FZ_CHECK(open ==
             (pn == 4 && !memcmp(path, "POST", 4) && query && n - cut == 1 && *query == '1'));
    free(path);
    free(query);
    return 0;
}

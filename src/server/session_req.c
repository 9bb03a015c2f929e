/* The parsing of a session request: session_req.h. */
#include "server/session_req.h"

#include <string.h>

#define PREFIX "/.duplex/"
#define PREFIX_LEN (sizeof PREFIX - 1)

static int slice_is(const char *s, size_t n, const char *lit) {
    size_t k = strlen(lit);
    return k == n && !memcmp(s, lit, n);
}

int dx__sreq_sid_ok(const char *sid) {
    for (int i = 0; i < DX__SID_LEN; i++)
        if (!((sid[i] >= '0' && sid[i] <= '9') || (sid[i] >= 'a' && sid[i] <= 'f'))) return 0;
    return 1;
}

/* A decimal uint64: 1 and *out when `v` is one or more digits whose value
 * fits (leading zeros allowed), 0 otherwise. */
static int parse_u64(const char *v, size_t n, uint64_t *out) {
    if (n == 0) return 0;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return 0;
        uint64_t d = (uint64_t)(v[i] - '0');
        if (x > (UINT64_MAX - d) / 10) return 0;
        x = x * 10 + d;
    }
    *out = x;
    return 1;
}

/* One ack= or seq= parameter: a second one, or a bad value, is malformed. */
static void take_u64(int8_t *st, uint64_t *out, const char *v, size_t n) {
    if (*st != DX__SQ_ABSENT) {
        *st = DX__SQ_BAD;
        return;
    }
    *st = parse_u64(v, n, out) ? DX__SQ_OK : DX__SQ_BAD;
}

static void parse_query(const char *q, size_t n, dx__sreq *r) {
    for (size_t i = 0; q && i < n;) {
        const char *amp = memchr(q + i, '&', n - i);
        size_t end = amp ? (size_t)(amp - q) : n;
        const char *p = q + i;
        size_t pn = end - i;
        const char *eq = memchr(p, '=', pn);
        size_t kn = eq ? (size_t)(eq - p) : pn;
        const char *v = eq ? eq + 1 : p + pn;
        size_t vn = eq ? pn - kn - 1 : 0;
        if (slice_is(p, kn, "ack")) {
            take_u64(&r->ack_st, &r->ack, v, vn);
        } else if (slice_is(p, kn, "seq")) {
            take_u64(&r->seq_st, &r->seq, v, vn);
        } else if (slice_is(p, kn, "mode")) {
            if (r->mode_st != DX__SQ_ABSENT) {
                r->mode_st = DX__SQ_BAD;
            } else if (slice_is(v, vn, "stream")) {
                r->mode_st = DX__SQ_OK;
                r->mode = DX__SMODE_STREAM;
            } else if (slice_is(v, vn, "poll")) {
                r->mode_st = DX__SQ_OK;
                r->mode = DX__SMODE_POLL;
            } else {
                r->mode_st = DX__SQ_BAD;
            }
        }
        i = end + 1;
    }
    if (r->mode_st != DX__SQ_OK) r->mode = 0;
}

void dx__sreq_split(const char *target, size_t target_len, const char **path, size_t *path_len,
                    const char **query, size_t *query_len) {
    const char *qm = target_len ? memchr(target, '?', target_len) : NULL;
    *path = target;
    *path_len = qm ? (size_t)(qm - target) : target_len;
    *query = qm ? qm + 1 : NULL;
    *query_len = qm ? target_len - *path_len - 1 : 0;
}

int dx__sreq_parse(const char *path, size_t path_len, const char *query, size_t query_len,
                   dx__sreq *out) {
    memset(out, 0, sizeof *out);
    parse_query(query, query_len, out);
    if (path_len < PREFIX_LEN || memcmp(path, PREFIX, PREFIX_LEN)) return out->op = DX__SREQ_NONE;
    /* Ours whatever follows: never on_http, never a static file. */
    const char *sid = path + PREFIX_LEN;
    size_t left = path_len - PREFIX_LEN;
    int op = DX__SREQ_NOTFOUND;
    if (left == DX__SID_LEN + 5 && !memcmp(sid + DX__SID_LEN, "/down", 5))
        op = DX__SREQ_DOWN;
    else if (left == DX__SID_LEN + 3 && !memcmp(sid + DX__SID_LEN, "/up", 3))
        op = DX__SREQ_UP;
    if (op != DX__SREQ_NOTFOUND) {
        if (!dx__sreq_sid_ok(sid)) return out->op = DX__SREQ_NOSID;
        out->sid = sid;
    }
    return out->op = op;
}

int dx__sreq_is_open(const char *method, size_t method_len, const char *xds, size_t xds_len) {
    return xds && slice_is(xds, xds_len, "1") && slice_is(method, method_len, "POST");
}

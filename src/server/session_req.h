/* Internal: the parsing of a session request (docs/fallback.md), apart
 * from the server so that it can be fuzzed alone (fuzz/fuzz_session.c):
 * pure functions over the bytes of a request, no server state, no
 * allocation, every slice they return pointing into what they were lent.
 *
 *   open  POST <any path>?<query> with X-Duplex-Session: 1
 *   down  GET  /.duplex/<SID>/down?ack=<N>&mode=stream|poll
 *   up    POST /.duplex/<SID>/up?seq=<M>&ack=<N>
 *
 * A query parameter other than ack, seq and mode is ignored; one of those
 * three that is empty, repeated or not what it must be is malformed
 * (repeated: a proxy and the server must never read different values). */
#ifndef DX_SERVER_SESSION_REQ_H
#define DX_SERVER_SESSION_REQ_H

#include <stddef.h>
#include <stdint.h>

#define DX__SID_LEN 32 /* lowercase hex digits */

/* What the path is. */
enum {
    DX__SREQ_NONE = 0, /* not under /.duplex/: an open request or plain HTTP */
    DX__SREQ_NOTFOUND, /* under /.duplex/ but no operation there: 404 */
    DX__SREQ_NOSID,    /* /.duplex/<x>/down or /up where x is no SID: 404 */
    DX__SREQ_DOWN,
    DX__SREQ_UP,
};

/* A query parameter: absent, present and valid, or malformed. */
enum { DX__SQ_BAD = -1, DX__SQ_ABSENT = 0, DX__SQ_OK = 1 };

enum { DX__SMODE_STREAM = 1, DX__SMODE_POLL = 2 };

typedef struct dx__sreq {
    int op;          /* DX__SREQ_* */
    const char *sid; /* DOWN, UP: DX__SID_LEN lowercase hex digits, in the path */
    int8_t ack_st;   /* DX__SQ_*: ack=, a decimal uint64 */
    int8_t seq_st;   /* seq=, likewise */
    int8_t mode_st;  /* mode=, stream or poll */
    uint8_t mode;    /* DX__SMODE_* when mode_st is DX__SQ_OK */
    uint64_t ack, seq;
} dx__sreq;

/* Splits a request target at its first '?': the path, and the query
 * (NULL, 0 when there is none). */
void dx__sreq_split(const char *target, size_t target_len, const char **path, size_t *path_len,
                    const char **query, size_t *query_len);

/* Parses the path and query of a request target (query may be NULL).
 * Fills *out (the query fields for every op, so that a caller can tell
 * "absent" from "malformed") and returns out->op. */
int dx__sreq_parse(const char *path, size_t path_len, const char *query, size_t query_len,
                   dx__sreq *out);

/* 1 when `sid` (DX__SID_LEN bytes) is DX__SID_LEN lowercase hex digits. */
int dx__sreq_sid_ok(const char *sid);

/* 1 when a request with this method and X-Duplex-Session header value
 * (NULL when the header is absent) opens a session: POST and exactly "1". */
int dx__sreq_is_open(const char *method, size_t method_len, const char *xds, size_t xds_len);

#endif

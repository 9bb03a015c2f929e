/* The HTTP phase of a connection: gather the request head (parsed in place
 * from the loop's buffer when it arrives in one read, the common case),
 * then upgrade it to a WebSocket or answer it as plain HTTP. */
#include <string.h>

#include <duplex/handshake.h>
#include <duplex/http.h>

#include "core/alloc.h"
#include "server/broker.h"
#include "server/lists.h"
#include "server/request.h"
#include "server/respond.h"
#include "server/sconn.h"
#include "server/session.h"
#include "server/static.h"
#include "server/stats.h"

#define MAX_HEADERS 64

static void split_target(const char *t, size_t n, const char **path, size_t *path_len,
                         const char **query, size_t *query_len) {
    const char *q = memchr(t, '?', n);
    *path = t;
    *path_len = q ? (size_t)(q - t) : n;
    *query = q ? q + 1 : NULL;
    *query_len = q ? n - (size_t)(q - t) - 1 : 0;
}

static int slice_is(const char *s, size_t n, const char *lit) {
    return strlen(lit) == n && !memcmp(s, lit, n);
}

static void route(dx_server_conn *c, const dx_http_request *req) {
    dx_server *s = c->srv;
    const char *path, *query;
    size_t path_len, query_len;
    split_target(req->target, req->target_len, &path, &path_len, &query, &query_len);
    int head = slice_is(req->method, req->method_len, "HEAD");
    int get = slice_is(req->method, req->method_len, "GET");
    if (head) c->flags |= F_HEAD;
    s->st.http_requests++;
    if (s->cfg.on_http) {
        char remote[64];
        dx__sc_remote(c, remote, sizeof remote);
        dx_http_route r = {req->method,  req->method_len,  path,  path_len, query, query_len,
                           req->headers, req->num_headers, remote};
        c->flags |= F_IN_ROUTE;
        int handled = s->cfg.on_http(c, dx_conn_user(sc_conn(c)), &r);
        c->flags &= (uint16_t)~F_IN_ROUTE;
        if (c->phase != P_HTTP) return; /* answered (or dropped) */
        if (handled) {
            (void)dx__req_error(c, 500, "the handler did not answer", NULL);
            return;
        }
    }
    if (slice_is(path, path_len, "/healthz")) {
        if (get || head)
            dx__broker_healthz(c, head);
        else
            (void)dx__req_error(c, 405, "use GET or HEAD", "Allow: GET, HEAD\r\n");
        return;
    }
    if (s->static_root && dx__static_serve(c, req->method, req->method_len, path, path_len,
                                           req->headers, req->num_headers))
        return;
    (void)dx__req_error(c, 404, "not found", NULL);
}

static void upgrade(dx_server_conn *c, const dx_http_request *req, const dx_handshake_info *info,
                    uint8_t *rest, size_t rest_len) {
    dx_server *s = c->srv;
    const dx_server_config *cfg = &s->cfg;
    dx_upgrade u;
    if (dx__req_admit(c, c, req, info, &u, NULL) < 0) return;
    /* permessage-deflate: the first acceptable offer, over every line. */
    char ext[160];
    const char *ext_answer = NULL;
    dx_deflate_params agreed;
    if (cfg->deflate.enable) {
        for (size_t i = 0; i < req->num_headers && !ext_answer; i++) {
            const dx_http_header *hd = &req->headers[i];
            if (dx_http_ieq(hd->name, hd->name_len, "Sec-WebSocket-Extensions") &&
                dx_deflate_accept(&cfg->deflate, hd->value, hd->value_len, &agreed, ext,
                                  sizeof ext) == 1)
                ext_answer = ext;
        }
        if (ext_answer && dx_conn_set_deflate(sc_conn(c), &agreed, &cfg->deflate) < 0) {
            dx__sc_kill(c, DX_CLOSE_ABNORMAL);
            return;
        }
    }
    char out[1024];
    int n = dx_handshake_write_101(out, sizeof out, info->key, u.protocol, ext_answer, NULL);
    if (n < 0) {
        if (n == DX_EINVAL)
            (void)dx__req_error(c, 500, "bad subprotocol", NULL);
        else
            dx__sc_kill(c, DX_CLOSE_ABNORMAL);
        return;
    }
    /* Write the 101 at once: on a fresh socket it all fits, and no buffer
     * is allocated for it, so the handshake leaves no heap holes behind
     * the connection (which would cost as much as the connection itself). */
    int64_t w = dx__sc_write_now(c, out, (size_t)n);
    if (w < 0 ||
        ((size_t)w < (size_t)n && dx__sc_hold_101(c, out + w, (size_t)n - (size_t)w) < 0)) {
        dx__sc_kill(c, DX_CLOSE_ABNORMAL);
        return;
    }
    /* The HTTP state goes (its slot holds the subscriptions from now on),
     * but the request bytes in it stay until the frames after it are fed. */
    dx__http *h = c->u.http;
    c->u.http = NULL;
    dx_conn *conn = sc_conn(c);
    dx_conn_open(conn);
    dx__srv_move(c, &s->open);
    c->phase = P_WS;
    c->flags |= F_OPENED;
    s->st.upgraded++;
    c->t_rx = dx__srv_now(s);
    if (cfg->on_open) cfg->on_open(c, dx_conn_user(conn));
    /* Frames that came in the same read as the request. */
    if (rest_len && c->phase == P_WS) (void)dx_conn_recv(conn, rest, rest_len);
    dx__http_free(h);
    if (c->phase != P_DEAD && dx_conn_buffered(conn)) dx__sc_queued(c);
}

/* Returns 1 when the request's body is not all here yet (an up request of
 * a session): the caller keeps the bytes and calls again with more. */
static int handle(dx_server_conn *c, const dx_http_request *req, uint8_t *rest, size_t rest_len) {
    dx_handshake_info info;
    dx_handshake_error err;
    int rc = dx_handshake_check(req, &info, &err);
    if (rc == DX_EHANDSHAKE && err.status == 0) {
        int r = c->srv->cfg.sessions.enable ? dx__sess_request(c, req, rest, rest_len) : 0;
        if (r == 2) return 1;
        if (r == 0) route(c, req);
        return 0;
    }
    if (rc) {
        c->srv->st.refused[DX_REFUSE_BAD_REQUEST]++;
        dx__srv_event(c, "handshake_refused", err.status ? err.status : 400,
                      err.reason ? err.reason : "bad request");
        (void)dx__req_error(c, err.status ? err.status : 400,
                            err.reason ? err.reason : "bad request", err.headers);
        return 0;
    }
    upgrade(c, req, &info, rest, rest_len);
    return 0;
}

void dx__req_input(dx_server_conn *c, uint8_t *buf, size_t len) {
    dx_server *s = c->srv;
    dx__http *h = c->u.http;
    char *base = (char *)buf;
    size_t total = len;
    if (h && h->in_len) {
        /* The head came in pieces: gather them. Bounded, since the parser
         * refuses a head over max_header_size and one read is at most the
         * loop's buffer (a session's up body: 1 MiB, session.c). */
        char *p = dx__realloc(h->in, h->in_len + len);
        if (!p) {
            dx__sc_kill(c, DX_CLOSE_ABNORMAL);
            return;
        }
        memcpy(p + h->in_len, buf, len);
        h->in = p;
        h->in_len += len;
        base = p;
        total = h->in_len;
    }
    dx_http_header hdrs[MAX_HEADERS];
    dx_http_request req = {.headers = hdrs, .num_headers = MAX_HEADERS};
    int rc = dx_http_parse_request(base, total, s->cfg.max_header_size, &req);
    int more = rc == 0;
    if (rc > 0)
        /* A body to wait for (a session's up request, at most 1 MiB): the
         * whole request is kept, and parsed again when more arrives. */
        more = handle(c, &req, (uint8_t *)base + rc, total - (size_t)rc);
    if (more) {
        if (base == (char *)buf) {
            h = dx__http_of(c);
            char *p = h ? dx__malloc(len) : NULL;
            if (!p) {
                dx__sc_kill(c, DX_CLOSE_ABNORMAL);
                return;
            }
            memcpy(p, buf, len);
            h->in = p;
            h->in_len = len;
        }
        return;
    }
    if (rc < 0) {
        s->st.refused[DX_REFUSE_BAD_REQUEST]++; /* upgrade or not: unreadable */
        if (rc == DX_EHDRSIZE)
            (void)dx__req_error(c, 431, "request header fields too large", NULL);
        else
            (void)dx__req_error(c, 400, "malformed HTTP request", NULL);
    }
    h = sc_http(c);
    if (h && h->in) { /* answered as plain HTTP: the request is done with */
        dx__free(h->in);
        h->in = NULL;
        h->in_len = 0;
    }
}

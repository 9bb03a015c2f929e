/* The HTTP phase of a connection: gather the request head (parsed in place
 * from the loop's buffer when it arrives in one read, the common case),
 * then upgrade it to a WebSocket or answer it as plain HTTP. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <duplex/handshake.h>
#include <duplex/http.h>

#include "core/alloc.h"
#include "server/internal.h"
#include "server/session.h"

#define MAX_HEADERS 64

void dx__req_next(dx_server_conn *c) {
    /* As a fresh connection: no HTTP state until bytes come, and the
     * handshake timeout bounds how long it may wait for them. Bytes of a
     * next request already sent wait in the socket (P_RESP reads none). */
    dx__http_free(sc_http(c));
    c->u.http = NULL;
    c->phase = P_HTTP;
    c->flags &= (uint16_t)~F_HEAD;
    c->t_mark = dx__srv_now(c->srv);
    dx__sc_update(c);
}

void dx__http_free(dx__http *h) {
    if (!h) return;
    dx__free(h->in);
    dx__free(h->out);
    if (h->file_fd >= 0) close(h->file_fd);
    dx__free(h);
}

static dx__http *http_of(dx_server_conn *c) {
    if (!c->u.http) {
        c->u.http = dx__calloc(1, sizeof *c->u.http);
        if (c->u.http) c->u.http->file_fd = -1;
    }
    return c->u.http;
}

/* Puts `out` (taken over) as the answer and moves to P_RESP; reading stops
 * and the answer is flushed after this iteration. */
static int set_answer(dx_server_conn *c, char *out, size_t len) {
    dx__http *h = http_of(c);
    if (!h) {
        dx__free(out);
        dx__sc_kill(c, DX_CLOSE_ABNORMAL);
        return DX_ENOMEM;
    }
    dx__free(h->out);
    h->out = out;
    h->out_len = len;
    h->out_off = 0;
    c->phase = P_RESP;
    c->t_mark = dx__srv_now(c->srv);
    dx__sc_mark(c);
    dx__sc_update(c);
    return 0;
}

/* Writes the answer's head into `out` (NULL: only sizes it), as snprintf. */
static int write_head(char *out, size_t cap, int status, const char *ctype, const char *extra,
                      size_t len, int keep) {
    const char *conn = keep ? "keep-alive" : "close";
    if (status == 304 || status == 204) /* no body, so no Content-Length */
        return snprintf(out, cap, "HTTP/1.1 %d %s\r\nConnection: %s\r\nServer: duplex\r\n%s\r\n",
                        status, dx_http_status_text(status), conn, extra);
    return snprintf(out, cap,
                    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                    "Connection: %s\r\nServer: duplex\r\n%s\r\n",
                    status, dx_http_status_text(status), ctype, len, conn, extra);
}

int dx__req_respond(dx_server_conn *c, int status, const char *ctype, const char *extra,
                    const void *body, size_t len, int head_only) {
    if (!ctype) ctype = "text/plain; charset=utf-8";
    if (!extra) extra = "";
    if (strpbrk(ctype, "\r\n")) return DX_EINVAL;
    /* Sized first, then written into the answer's own buffer: the extra
     * headers of a download (a percent-encoded file name) can be long. */
    dx__http *h = sc_http(c);
    int keep = h && h->keep;
    int n = write_head(NULL, 0, status, ctype, extra, len, keep);
    if (n < 0 || n > 65536) return DX_ENOSPC;
    size_t blen = head_only || !body ? 0 : len;
    char *out = dx__malloc((size_t)n + 1 + blen);
    if (!out) {
        dx__sc_kill(c, DX_CLOSE_ABNORMAL);
        return DX_ENOMEM;
    }
    (void)write_head(out, (size_t)n + 1, status, ctype, extra, len, keep);
    if (blen) memcpy(out + n, body, blen);
    return set_answer(c, out, (size_t)n + blen);
}

int dx__req_respond_fd(dx_server_conn *c, int status, const char *ctype, const char *extra, int fd,
                       uint64_t off, uint64_t len, int head_only) {
    int rc = dx__req_respond(c, status, ctype, extra, NULL, (size_t)len, head_only);
    dx__http *h = c->u.http;
    if (rc < 0 || head_only || !len || !h || fd < 0) {
        if (fd >= 0) close(fd);
        return rc;
    }
    h->file_fd = fd;
    h->file_off = off;
    h->file_end = off + len;
    dx__sc_update(c);
    return 0;
}

/* 1 when `extra` is zero or more complete header lines "Name: value\r\n":
 * a token for the name, no CR or LF inside a value, so that nothing in it
 * can end the head early or smuggle a second answer. */
static int header_lines_ok(const char *extra) {
    const char *p = extra;
    while (*p) {
        const char *colon = p;
        while (*colon && *colon != ':' && *colon != '\r' && *colon != '\n') {
            unsigned char ch = (unsigned char)*colon;
            if (ch <= ' ' || ch >= 0x7f || strchr("\"(),/;<=>?@[\\]{}", ch)) return 0;
            colon++;
        }
        if (*colon != ':' || colon == p) return 0;
        const char *eol = strpbrk(colon, "\r\n");
        if (!eol || eol[0] != '\r' || eol[1] != '\n') return 0;
        p = eol + 2;
    }
    return 1;
}

int dx_server_http_respond_file(dx_server_conn *c, int status, const char *content_type,
                                const char *extra_headers, int fd, uint64_t off, uint64_t len) {
    int rc = 0;
    struct stat st;
    if (!c || !(c->flags & F_IN_ROUTE) || c->phase != P_HTTP)
        rc = DX_ESTATE;
    else if (status < 100 || status > 999 || (fd < 0 && len) ||
             ((status == 304 || status == 204) && len) ||
             (content_type && strpbrk(content_type, "\r\n")) ||
             (extra_headers && !header_lines_ok(extra_headers)))
        rc = DX_EINVAL;
    else if (fd >= 0 && len &&
             (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || off > (uint64_t)st.st_size ||
              len > (uint64_t)st.st_size - off))
        rc = DX_EINVAL;
    if (rc < 0) {
        if (fd >= 0) close(fd);
        return rc;
    }
    return dx__req_respond_fd(c, status, content_type, extra_headers, fd, off, len,
                              (c->flags & F_HEAD) != 0);
}

int dx__req_error(dx_server_conn *c, int status, const char *reason, const char *extra) {
    dx__http *h = sc_http(c);
    if (h) h->keep = 0; /* the error's head says "Connection: close" */
    char buf[1024];
    int n = dx_http_write_error(buf, sizeof buf, status, reason, extra);
    if (n < 0) n = dx_http_write_error(buf, sizeof buf, status, dx_http_status_text(status), NULL);
    if (n < 0) {
        dx__sc_kill(c, DX_CLOSE_ABNORMAL);
        return n;
    }
    char *out = dx__malloc((size_t)n);
    if (!out) {
        dx__sc_kill(c, DX_CLOSE_ABNORMAL);
        return DX_ENOMEM;
    }
    memcpy(out, buf, (size_t)n);
    return set_answer(c, out, (size_t)n);
}

int dx_server_http_respond(dx_server_conn *c, int status, const char *content_type,
                           const void *body, size_t len) {
    if (!(c->flags & F_IN_ROUTE) || c->phase != P_HTTP) return DX_ESTATE;
    if (status < 100 || status > 999 || (!body && len)) return DX_EINVAL;
    if (content_type && strpbrk(content_type, "\r\n")) return DX_EINVAL;
    return dx__req_respond(c, status, content_type, NULL, len ? body : "", len,
                           (c->flags & F_HEAD) != 0);
}

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

int dx__req_origin_allowed(const dx_server_config *cfg, const char *o, size_t n) {
    for (const char *const *a = cfg->origins; *a; a++)
        if (dx_http_ieq(o, n, *a)) return 1;
    return 0;
}

/* Answers a refused admission on `c` with `xh` and `more` (Retry-After)
 * as extra header lines. */
static void refuse(dx_server_conn *c, int status, const char *reason, const char *xh,
                   const char *more) {
    char extra[800]; /* xh may hold CORS lines (session.c) */
    snprintf(extra, sizeof extra, "%s%s", xh ? xh : "", more ? more : "");
    (void)dx__req_error(c, status, reason, extra[0] ? extra : NULL);
}

int dx__req_admit(dx_server_conn *c, dx_server_conn *app, const dx_http_request *req,
                  const dx_handshake_info *info, dx_upgrade *u, const char *xh) {
    dx_server *s = c->srv;
    const dx_server_config *cfg = &s->cfg;
    if (s->shutting) {
        s->st.refused[DX_REFUSE_LIMIT]++;
        dx__srv_event(c, "handshake_refused", 503, "server shutting down");
        refuse(c, 503, "server shutting down", xh, NULL);
        return -1;
    }
    if (cfg->origins) {
        if (info->origin ? !dx__req_origin_allowed(cfg, info->origin, info->origin_len)
                         : cfg->origin_required) {
            s->st.refused[DX_REFUSE_ORIGIN]++;
            dx__srv_event(c, "handshake_refused", 403, "origin not allowed");
            refuse(c, 403, "origin not allowed", xh, NULL);
            return -1;
        }
    }
    if (cfg->max_connections && s->open_count >= cfg->max_connections) {
        s->st.refused[DX_REFUSE_LIMIT]++;
        dx__srv_event(c, "handshake_refused", 503, "too many connections");
        refuse(c, 503, "too many connections", xh, "Retry-After: 1\r\n");
        return -1;
    }
    char remote[64];
    dx__sc_remote(c, remote, sizeof remote);
    *u = (dx_upgrade){
        .path = info->path,
        .path_len = info->path_len,
        .query = info->query,
        .query_len = info->query_len,
        .headers = req->headers,
        .num_headers = req->num_headers,
        .remote = remote,
        .origin = info->origin,
        .origin_len = info->origin_len,
        .protocols = info->protocols,
        .protocols_len = info->protocols_len,
    };
    if (cfg->protocols && info->protocols) {
        int i = dx_handshake_select_protocol(info->protocols, info->protocols_len, cfg->protocols);
        if (i >= 0) u->protocol = cfg->protocols[i];
    }
    if (cfg->on_upgrade) {
        int st = cfg->on_upgrade(app, dx_conn_user(sc_conn(app)), u);
        if (st) {
            if (st < 400 || st > 599) st = 500;
            s->st.refused[st == 401 || st == 403   ? DX_REFUSE_AUTH
                          : st == 429 || st == 503 ? DX_REFUSE_LIMIT
                                                   : DX_REFUSE_APP]++;
            dx__srv_event(c, "handshake_refused", st,
                          u->reason ? u->reason : dx_http_status_text(st));
            char retry[40];
            if (u->retry_after)
                snprintf(retry, sizeof retry, "Retry-After: %u\r\n", (unsigned)u->retry_after);
            refuse(c, st, u->reason ? u->reason : dx_http_status_text(st), xh,
                   u->retry_after ? retry : NULL);
            return -1;
        }
    }
    u->remote = NULL; /* the buffer is gone after the return */
    return 0;
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
            h = http_of(c);
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

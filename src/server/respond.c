/* The answers of the HTTP phase: a plain HTTP answer (head, small body or
 * a file streamed after it), the error pages, and the admission checks an
 * upgrade passes (Origin, limits, on_upgrade), shared by request.c and
 * the HTTP sessions (session.c). It routes nothing: request.c does. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <duplex/handshake.h>
#include <duplex/http.h>

#include "core/alloc.h"
#include "server/lists.h"
#include "server/respond.h"
#include "server/sconn.h"
#include "server/stats.h"

/* Puts `out` (taken over) as the answer and moves to P_RESP; reading stops
 * and the answer is flushed after this iteration. */
static int set_answer(dx_server_conn *c, char *out, size_t len) {
    dx__http *h = dx__http_of(c);
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

/* Decimal digits of `v` at `out` (no NUL): their number, at most 20. */
static size_t put_dec(char *out, uint64_t v) {
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

size_t dx__hline_u64(char *out, const char *name, uint64_t v) {
    size_t n = strlen(name);
    memcpy(out, name, n);
    memcpy(out + n, ": ", 2);
    n += 2;
    n += put_dec(out + n, v);
    memcpy(out + n, "\r\n", 3);
    return n + 2;
}

/* Writes the answer's head into `out` (NULL: only sizes it): its length.
 * Piece by piece rather than with snprintf (see dx__hline_u64). */
static size_t write_head(char *out, int status, const char *ctype, const char *extra, size_t len,
                         int keep) {
    char num[20], code[20];
    size_t at = 0, nn = put_dec(num, len), cn = put_dec(code, (uint64_t)status);
    /* 304 and 204 have no body, so no Content-Length. */
    int body = status != 304 && status != 204;
    const char *text = dx_http_status_text(status);
    const char *conn = keep ? "keep-alive" : "close";
#define PUT(p, n)                                                                                  \
    do {                                                                                           \
        if (out) memcpy(out + at, (p), (n));                                                       \
        at += (n);                                                                                 \
    } while (0)
#define PUTS(s) PUT((s), strlen(s))
    PUTS("HTTP/1.1 ");
    PUT(code, cn);
    PUTS(" ");
    PUTS(text);
    PUTS("\r\n");
    if (body) {
        PUTS("Content-Type: ");
        PUTS(ctype);
        PUTS("\r\nContent-Length: ");
        PUT(num, nn);
        PUTS("\r\n");
    }
    PUTS("Connection: ");
    PUTS(conn);
    PUTS("\r\nServer: duplex\r\n");
    PUTS(extra);
    PUTS("\r\n");
#undef PUTS
#undef PUT
    return at;
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
    size_t n = write_head(NULL, status, ctype, extra, len, keep);
    if (n > 65536) return DX_ENOSPC;
    size_t blen = head_only || !body ? 0 : len;
    char *out = dx__malloc(n + blen);
    if (!out) {
        dx__sc_kill(c, DX_CLOSE_ABNORMAL);
        return DX_ENOMEM;
    }
    (void)write_head(out, status, ctype, extra, len, keep);
    if (blen) memcpy(out + n, body, blen);
    return set_answer(c, out, n + blen);
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

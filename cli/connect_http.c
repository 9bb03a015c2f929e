/* The HTTP session transport's client side for `duplex connect` (see
 * connect_http.h and docs/fallback.md).
 *
 * Three requests at most are out: the open, then one up POST and one down
 * request (an SSE stream or a long poll). Each has a connection of its own
 * and says `Connection: close`: one connect per request is nothing at a
 * terminal's pace, and it keeps every request's end plain (EOF).
 *
 * The up byte stream is the dx_conn's output queue: its first byte is at
 * offset up_base, a POST carries [up_base, ...) and the server's
 * X-Duplex-Seq releases what it took, so a failed POST is simply sent
 * again. Down bytes are fed to the dx_conn in order; an answer that starts
 * past what was parsed is dropped and the down request restarted (its ack
 * has the server send from there again). */
#include "cli/connect_http.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <duplex/http.h>
#include <duplex/sock.h>
#include <duplex/tls.h>
#include <duplex/url.h>

#include "cli/sse.h"

#define BODY_MAX (1u << 20)        /* an up POST's body, a poll's answer */
#define IN_MAX (BODY_MAX + 65536u) /* the largest answer kept whole */
#define ACK_MS 1000                /* a pure ack after this long owed */
#define RETRY_MS 250               /* after a request that failed */
#define CLOSE_WAIT_MS 5000         /* for the server's close after ours */

enum { R_OPEN, R_UP, R_DOWN };
enum { S_IDLE, S_CONNECT, S_TLS, S_WRITE, S_READ };

typedef struct hreq {
    dx_cli_hsess *s;
    int kind;
    int st;
    int fd;
    dx_io io;
    dx_tls *tls;
    dx_timer deadline; /* connect, TLS and the request's write */
    char *out;
    size_t olen, ooff;
    char *in;
    size_t ilen, icap;
    size_t head; /* the answer's head length once parsed */
    int status;
    int sse;
    uint64_t off, seq, clen;
    int has_off, has_seq, has_clen;
    uint64_t sse_off; /* SSE: the offset of the next decoded byte */
    unsigned gen;     /* counts req_start: a request restarted from inside */
} hreq;

struct dx_cli_hsess {
    dx_loop *loop;
    dx_cli_hsess_cb cb;
    void *arg;
    dx_url url;
    struct sockaddr_storage addr;
    socklen_t alen;
    dx_tls_ctx *tls_ctx;
    int poll;
    uint32_t connect_ms;
    char *lines; /* Host, Origin and the user's header lines of every request */
    char sid[64];
    uint32_t idle_ms;
    dx_conn *conn;
    hreq open, up, down;
    uint64_t up_base;  /* the up offset of the dx_conn's first queued byte */
    uint64_t received; /* down bytes parsed */
    uint64_t acked;    /* the highest ack a request carried */
    uint64_t ack_up;   /* the ack of the up POST in flight */
    uint64_t ack_ok;   /* the highest ack an answered up POST carried */
    int ack_wanted;
    uint64_t failing_since; /* loop ms of the first failure in a row, 0 none */
    dx_timer ack_timer, retry_timer, close_timer;
    int finished;
    int conn_closed; /* the dx_conn reached CLOSED: what it said is kept */
    uint16_t code;
    char reason[124];
    size_t reason_len;
    int clean;
    uint8_t *dec;
    char msg[320];
};

static void req_start(hreq *r, const char *head, const void *body, size_t blen);
static void pump(dx_cli_hsess *s);
static void down_next(dx_cli_hsess *s);

/* ---- the end ----------------------------------------------------------------- */

static void req_stop(hreq *r) {
    if (r->fd >= 0) {
        dx_io_stop(r->s->loop, &r->io);
        dx_tls_free(r->tls);
        close(r->fd);
    }
    r->tls = NULL;
    r->fd = -1;
    r->st = S_IDLE;
    dx_timer_stop(r->s->loop, &r->deadline);
    free(r->out);
    r->out = NULL;
    r->ilen = r->head = 0;
}

/* Every request and timer stopped. */
static void stop_all(dx_cli_hsess *s) {
    req_stop(&s->open);
    req_stop(&s->up);
    req_stop(&s->down);
    dx_timer_stop(s->loop, &s->ack_timer);
    dx_timer_stop(s->loop, &s->retry_timer);
    dx_timer_stop(s->loop, &s->close_timer);
}

static void finish(dx_cli_hsess *s, uint16_t code, const char *reason, size_t rlen, int clean) {
    if (s->finished) return;
    s->finished = 1;
    stop_all(s);
    s->cb.on_close(s->arg, code, reason, rlen, clean);
}

__attribute__((format(printf, 2, 3))) static void fail(dx_cli_hsess *s, const char *fmt, ...) {
    if (s->finished) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->msg, sizeof s->msg, fmt, ap);
    va_end(ap);
    s->cb.on_error(s->arg, s->msg);
    finish(s, DX_CLOSE_ABNORMAL, "", 0, 0);
}

/* The closing handshake is over and the server has the ack of its close
 * frame (it then drops the session): report it. */
static void maybe_done(dx_cli_hsess *s) {
    if (s->conn_closed && s->up.st == S_IDLE && !dx_conn_buffered(s->conn) &&
        s->ack_ok >= s->received)
        finish(s, s->code, s->reason, s->reason_len, s->clean);
}

/* ---- the dx_conn ------------------------------------------------------------ */

static void on_message(dx_conn *c, void *user, enum dx_opcode op, uint8_t *d, size_t n) {
    dx_cli_hsess *s = user;
    if (!s->finished) s->cb.on_message(s->arg, op, d, n);
}

static void on_close(dx_conn *c, void *user, uint16_t code, const uint8_t *reason, size_t rlen,
                     int clean) {
    dx_cli_hsess *s = user;
    s->conn_closed = 1;
    s->code = code;
    s->reason_len = rlen < sizeof s->reason ? rlen : sizeof s->reason;
    memcpy(s->reason, reason, s->reason_len);
    s->clean = clean;
    s->ack_wanted = 1; /* the ack of its close frame ends the session on the server */
}

static const dx_conn_callbacks conn_cb = {.on_message = on_message, .on_close = on_close};

/* Parses down bytes in order. */
static void feed(dx_cli_hsess *s, uint8_t *p, size_t n) {
    s->received += n;
    if (dx_conn_state(s->conn) != DX_CLOSED) (void)dx_conn_recv(s->conn, p, n);
    if (s->received > s->acked && !dx_timer_active(&s->ack_timer))
        dx_timer_start(s->loop, &s->ack_timer, ACK_MS);
    pump(s); /* a pong, our close answer, its ack */
}

/* Down bytes [off, off + n): what was parsed is skipped; from past it, the
 * answer is dropped and the down request restarted from what was parsed. */
static void feed_at(dx_cli_hsess *s, uint64_t off, uint8_t *p, size_t n) {
    if (off > s->received) {
        if (s->down.st != S_IDLE) {
            req_stop(&s->down);
            down_next(s);
        }
        return;
    }
    if (off + n <= s->received) return;
    size_t skip = (size_t)(s->received - off);
    feed(s, p + skip, n - skip);
}

/* ---- requests -------------------------------------------------------------- */

static void retry_later(dx_cli_hsess *s, const char *why) {
    uint64_t now = dx_loop_now(s->loop);
    if (!s->failing_since) s->failing_since = now;
    if (now - s->failing_since > s->idle_ms) {
        fail(s, "session lost: %s", why);
        return;
    }
    if (!dx_timer_active(&s->retry_timer)) dx_timer_start(s->loop, &s->retry_timer, RETRY_MS);
}

static void req_failed(hreq *r, const char *why) {
    dx_cli_hsess *s = r->s;
    req_stop(r);
    if (r->kind == R_OPEN) {
        fail(s, "cannot open the session: %s", why);
        return;
    }
    if (s->conn_closed) {
        /* The server's close frame came: it may be gone already (a
         * shutdown does not wait for our answer), nothing more to say. */
        finish(s, s->code, s->reason, s->reason_len, s->clean);
        return;
    }
    retry_later(s, why);
}

/* "Name: value" of the answer as a number. */
/* 1 parsed, 0 more needed, -1 bad. */
static int parse_head(hreq *r) {
    dx_http_header hdrs[32];
    dx_http_response res = {.headers = hdrs, .num_headers = 32};
    int h = dx_http_parse_response(r->in, r->ilen, 16384, &res);
    if (h <= 0) return h;
    r->head = (size_t)h;
    r->status = res.status;
    r->has_off = dx_cli_header_u64(hdrs, res.num_headers, "X-Duplex-Offset", &r->off);
    r->has_seq = dx_cli_header_u64(hdrs, res.num_headers, "X-Duplex-Seq", &r->seq);
    r->has_clen = dx_cli_header_u64(hdrs, res.num_headers, "Content-Length", &r->clen);
    const dx_http_header *ct = dx_http_find(hdrs, res.num_headers, "Content-Type");
    r->sse = r->kind == R_DOWN && res.status == 200 && ct && ct->value_len >= 17 &&
             !memcmp(ct->value, "text/event-stream", 17);
    r->sse_off = r->has_off ? r->off : 0;
    return 1;
}

/* The complete lines of an event stream so far: `data:` lines hold base64
 * of the next down bytes; comments keep the stream alive. 0 read on, 1 the
 * request ended or was restarted meanwhile (leave it), -1 bad. */
static int feed_sse(hreq *r) {
    dx_cli_hsess *s = r->s;
    size_t at = r->head;
    for (;;) {
        char *nl = memchr(r->in + at, '\n', r->ilen - at);
        if (!nl) break;
        char *line = r->in + at;
        size_t n = (size_t)(nl - line);
        at += n + 1;
        if (n && line[n - 1] == '\r') n--;
        if (n < 5 || memcmp(line, "data:", 5)) continue;
        line += 5;
        n -= 5;
        if (n && *line == ' ') line++, n--;
        long k = dx_cli_b64_decode(line, n, s->dec);
        if (k < 0) return -1;
        uint64_t off = r->sse_off;
        unsigned gen = r->gen;
        r->sse_off += (uint64_t)k;
        feed_at(s, off, s->dec, (size_t)k);
        if (s->finished || r->gen != gen || r->st != S_READ) return 1; /* ended or restarted */
    }
    memmove(r->in + r->head, r->in + at, r->ilen - at);
    r->ilen -= at - r->head;
    return 0;
}

static void answered(hreq *r);

static void on_req_io(dx_loop *loop, dx_io *w, unsigned events) {
    hreq *r = (hreq *)((char *)w - offsetof(hreq, io));
    dx_cli_hsess *s = r->s;
    unsigned want = 0;
    if (r->st == S_CONNECT) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
        if (err) {
            req_failed(r, strerror(err));
            return;
        }
        if (s->url.secure) {
            r->tls = dx_tls_new(s->tls_ctx, r->fd, 0, s->url.host);
            if (!r->tls) {
                req_failed(r, "out of memory");
                return;
            }
            r->st = S_TLS;
        } else {
            r->st = S_WRITE;
        }
    }
    if (r->st == S_TLS) {
        const char *why = NULL;
        int rc = dx_tls_handshake(r->tls, &want, &why);
        if (rc < 0) {
            req_failed(r, why ? why : "TLS handshake failed");
            return;
        }
        if (rc == 0) {
            (void)dx_io_update(loop, &r->io, want);
            return;
        }
        r->st = S_WRITE;
    }
    if (r->st == S_WRITE) {
        struct iovec iov = {r->out + r->ooff, r->olen - r->ooff};
        int64_t n = dx_sock_writev(r->fd, r->tls, &iov, 1, &want);
        if (n < 0 && n != DX_EBUSY) {
            req_failed(r, dx_sock_why(r->tls, n));
            return;
        }
        if (n > 0) r->ooff += (size_t)n;
        if (r->ooff < r->olen) {
            (void)dx_io_update(loop, &r->io, DX_IO_WRITE | want);
            return;
        }
        r->st = S_READ;
        dx_timer_stop(loop, &r->deadline); /* a poll is held by the server */
        (void)dx_io_update(loop, &r->io, DX_IO_READ);
        want = 0;
    }
    for (;;) {
        if (r->icap - r->ilen < 16384) {
            size_t cap = r->icap ? r->icap * 2 : 65536;
            if (cap > IN_MAX) cap = IN_MAX;
            if (cap - r->ilen < 4096) {
                req_failed(r, "answer too long");
                return;
            }
            char *in = realloc(r->in, cap);
            if (!in) {
                req_failed(r, "out of memory");
                return;
            }
            r->in = in;
            r->icap = cap;
        }
        int64_t n = dx_sock_read(r->fd, r->tls, r->in + r->ilen, r->icap - r->ilen, &want);
        if (n == DX_EBUSY) {
            (void)dx_io_update(loop, &r->io, DX_IO_READ | want);
            return;
        }
        if (n < 0) {
            req_failed(r, dx_sock_why(r->tls, n));
            return;
        }
        if (n == 0) break;
        r->ilen += (size_t)n;
        if (!r->head) {
            int rc = parse_head(r);
            if (rc < 0) {
                req_failed(r, "bad HTTP answer");
                return;
            }
        }
        int rc = r->head && r->sse ? feed_sse(r) : 0;
        if (rc < 0) {
            req_failed(r, "bad base64 in the event stream");
            return;
        }
        if (rc > 0 || s->finished) return;
        /* Complete by its length (a proxy may keep the connection open
         * although we asked it to close): no need to wait for EOF. */
        if (r->head && !r->sse &&
            (r->status == 204 || r->status == 304 || (r->has_clen && r->ilen - r->head >= r->clen)))
            break;
    }
    if (!r->head || (r->has_clen && r->ilen - r->head < r->clen)) {
        req_failed(r, "the server closed in the middle of an answer");
        return;
    }
    answered(r);
}

static void on_deadline(dx_loop *loop, dx_timer *t) {
    hreq *r = (hreq *)((char *)t - offsetof(hreq, deadline));
    req_failed(r, r->st == S_CONNECT ? "connect timed out" : "TLS handshake timed out");
}

static void req_start(hreq *r, const char *head, const void *body, size_t blen) {
    dx_cli_hsess *s = r->s;
    size_t hlen = strlen(head);
    r->out = malloc(hlen + blen + 1);
    if (!r->out) {
        req_failed(r, "out of memory");
        return;
    }
    memcpy(r->out, head, hlen);
    if (blen) memcpy(r->out + hlen, body, blen);
    r->olen = hlen + blen;
    r->ooff = r->ilen = r->head = 0;
    r->gen++;
    r->fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->fd < 0) {
        req_failed(r, strerror(errno));
        return;
    }
    r->st = S_CONNECT;
    if (connect(r->fd, (struct sockaddr *)&s->addr, s->alen) < 0 && errno != EINPROGRESS) {
        req_failed(r, strerror(errno));
        return;
    }
    if (dx_io_start(s->loop, &r->io, r->fd, DX_IO_WRITE, on_req_io) < 0) {
        close(r->fd);
        r->fd = -1;
        req_failed(r, "cannot watch the socket");
        return;
    }
    dx_timer_start(s->loop, &r->deadline, s->connect_ms);
}

/* The request line and the lines every request has. */
static void request_head(dx_cli_hsess *s, char *out, size_t cap, const char *method,
                         const char *target, size_t clen) {
    snprintf(out, cap, "%s %s HTTP/1.1\r\n%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
             method, target, s->lines, clen);
}

/* ---- the session ------------------------------------------------------------ */

/* The open's answer: {"sid":"...","protocol":"...","idle":N,"poll":N}. */
static int json_str(const char *body, const char *key, char *out, size_t cap) {
    const char *p = strstr(body, key);
    if (!p) return -1;
    p += strlen(key);
    const char *end = strchr(p, '"');
    if (!end || (size_t)(end - p) >= cap) return -1;
    memcpy(out, p, (size_t)(end - p));
    out[end - p] = 0;
    return 0;
}

static void opened(dx_cli_hsess *s, char *body) {
    char protocol[128] = "";
    if (json_str(body, "\"sid\":\"", s->sid, sizeof s->sid) < 0 || strlen(s->sid) != 32 ||
        strspn(s->sid, "0123456789abcdef") != 32) {
        fail(s, "cannot open the session: the answer holds no session id");
        return;
    }
    (void)json_str(body, "\"protocol\":\"", protocol, sizeof protocol);
    const char *idle = strstr(body, "\"idle\":");
    if (idle) s->idle_ms = (uint32_t)strtoul(idle + 7, NULL, 10);
    if (!s->idle_ms) s->idle_ms = 30000;
    dx_conn_open(s->conn);
    s->cb.on_open(s->arg, s->url.href, protocol);
    if (s->finished) return;
    down_next(s);
    pump(s);
}

static void answered(hreq *r) {
    dx_cli_hsess *s = r->s;
    int status = r->status, sse = r->sse;
    uint64_t off = r->off, seq = r->seq;
    int has_off = r->has_off, has_seq = r->has_seq;
    size_t blen = r->ilen - r->head;
    if (r->has_clen && blen > r->clen) blen = (size_t)r->clen;
    /* The body outlives the request's buffers (taken over, then freed). */
    char *in = r->in;
    size_t head = r->head;
    r->in = NULL;
    r->icap = 0;
    req_stop(r);
    char *body = in + head;
    if (status >= 200 && status < 300) s->failing_since = 0;
    switch (r->kind) {
    case R_OPEN: {
        char *text = strndup(body, blen); /* NUL-terminated, for strstr */
        if (!text) {
            fail(s, "out of memory");
        } else if (status == 200) {
            opened(s, text);
        } else {
            /* The server's reason is its body's first line. */
            text[strcspn(text, "\r\n")] = 0;
            for (char *c = text; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
            fail(s, "session refused: HTTP %d%s%.100s%s", status, *text ? ": " : "", text,
                 status == 404 ? " (no HTTP sessions there: the server's fallback is off, or "
                                 "another path)"
                               : "");
        }
        free(text);
        break;
    }
    case R_UP:
        if ((status == 204 || status == 200) && has_seq && seq >= s->up_base &&
            seq - s->up_base <= dx_conn_buffered(s->conn)) {
            dx_conn_out_consume(s->conn, (size_t)(seq - s->up_base));
            s->up_base = seq;
            if (s->ack_up > s->ack_ok) s->ack_ok = s->ack_up;
            if (status == 200 && has_off) feed_at(s, off, (uint8_t *)body, blen);
        } else if (status == 404 && s->conn_closed) {
            s->ack_ok = s->received; /* the session is gone: nothing is owed */
        } else if (status >= 500 && status < 600) {
            retry_later(s, "a proxy's error");
        } else {
            fail(s, "%s: HTTP %d", status == 404 ? "session expired" : "up request refused",
                 status);
        }
        break;
    case R_DOWN:
        if (status == 200 && !sse && has_off) {
            feed_at(s, off, (uint8_t *)body, blen);
        } else if (status == 200 && sse) {
            /* The stream ended (1 MiB or 60 s): the next one. */
        } else if (status == 404 && s->conn_closed) {
            break;
        } else if (status >= 500 && status < 600) {
            retry_later(s, "a proxy's error");
            break;
        } else {
            fail(s, "%s: HTTP %d", status == 404 ? "session expired" : "down request refused",
                 status);
            break;
        }
        if (!s->finished && !s->conn_closed && s->down.st == S_IDLE) down_next(s);
        break;
    }
    free(in);
    if (!s->finished) {
        pump(s);
        maybe_done(s);
    }
}

static void pump(dx_cli_hsess *s) {
    if (s->finished || !s->sid[0] || s->up.st != S_IDLE || dx_timer_active(&s->retry_timer)) return;
    size_t have = dx_conn_buffered(s->conn);
    size_t blen = have < BODY_MAX ? have : BODY_MAX;
    int ack_due = s->received > s->acked && s->ack_wanted;
    if (!blen && !ack_due) {
        maybe_done(s);
        return;
    }
    uint8_t *body = blen ? malloc(blen) : NULL;
    if (blen && !body) {
        fail(s, "out of memory");
        return;
    }
    struct iovec iov[64];
    size_t got = 0;
    int k = dx_conn_out_iov(s->conn, iov, 64);
    for (int i = 0; i < k && got < blen; i++) {
        size_t take = iov[i].iov_len < blen - got ? iov[i].iov_len : blen - got;
        memcpy(body + got, iov[i].iov_base, take);
        got += take;
    }
    char target[200], head[4096];
    snprintf(target, sizeof target, "/.duplex/%s/up?seq=%llu&ack=%llu%s", s->sid,
             (unsigned long long)s->up_base, (unsigned long long)s->received,
             s->poll ? "&mode=poll" : "");
    request_head(s, head, sizeof head, "POST", target, got);
    s->acked = s->ack_up = s->received;
    s->ack_wanted = 0;
    dx_timer_stop(s->loop, &s->ack_timer);
    req_start(&s->up, head, body, got);
    free(body);
}

static void down_next(dx_cli_hsess *s) {
    if (s->finished || s->conn_closed) return;
    char target[200], head[4096];
    snprintf(target, sizeof target, "/.duplex/%s/down?ack=%llu&mode=%s", s->sid,
             (unsigned long long)s->received, s->poll ? "poll" : "stream");
    request_head(s, head, sizeof head, "GET", target, 0);
    if (s->received > s->acked) s->acked = s->received;
    req_start(&s->down, head, NULL, 0);
}

static void on_ack_timer(dx_loop *loop, dx_timer *t) {
    dx_cli_hsess *s = (dx_cli_hsess *)((char *)t - offsetof(dx_cli_hsess, ack_timer));
    s->ack_wanted = 1;
    pump(s);
}

static void on_retry(dx_loop *loop, dx_timer *t) {
    dx_cli_hsess *s = (dx_cli_hsess *)((char *)t - offsetof(dx_cli_hsess, retry_timer));
    if (s->down.st == S_IDLE && s->sid[0]) down_next(s);
    pump(s);
}

static void on_close_wait(dx_loop *loop, dx_timer *t) {
    dx_cli_hsess *s = (dx_cli_hsess *)((char *)t - offsetof(dx_cli_hsess, close_timer));
    finish(s, DX_CLOSE_ABNORMAL, "", 0, 0);
}

/* ---- the API ------------------------------------------------------------------ */

dx_cli_hsess *dx_cli_hsess_new(dx_loop *loop, const dx_cli_hsess_config *cfg,
                               const dx_cli_hsess_cb *cb, void *arg, const char **why) {
    dx_cli_hsess *s = calloc(1, sizeof *s);
    if (!s) {
        *why = "out of memory";
        return NULL;
    }
    s->loop = loop;
    s->cb = *cb;
    s->arg = arg;
    s->poll = cfg->poll;
    s->connect_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 10000;
    s->idle_ms = 30000;
    hreq *rs[3] = {&s->open, &s->up, &s->down};
    for (int i = 0; i < 3; i++) {
        rs[i]->s = s;
        rs[i]->kind = i;
        rs[i]->fd = -1;
        dx_timer_init(&rs[i]->deadline, on_deadline);
    }
    dx_timer_init(&s->ack_timer, on_ack_timer);
    dx_timer_init(&s->retry_timer, on_retry);
    dx_timer_init(&s->close_timer, on_close_wait);
    if (dx_url_parse(cfg->url, strlen(cfg->url), &s->url, why) < 0) goto fail;
    char port[8];
    snprintf(port, sizeof port, "%d", s->url.port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(s->url.host, port, &hints, &ai);
    if (rc != 0 || !ai) {
        *why = rc ? gai_strerror(rc) : "no address";
        goto fail;
    }
    memcpy(&s->addr, ai->ai_addr, ai->ai_addrlen);
    s->alen = ai->ai_addrlen;
    freeaddrinfo(ai);
    if (s->url.secure && !(s->tls_ctx = dx_tls_client_ctx(cfg->insecure, cfg->ca_file, why)))
        goto fail;
    /* Host, Origin, and the user's lines, once for every request. */
    size_t cap = 256 + strlen(s->url.host_header) + (cfg->origin ? strlen(cfg->origin) : 0);
    for (const char *const *h = cfg->headers; h && *h; h++)
        cap += strlen(*h) + 2;
    s->lines = malloc(cap);
    s->dec = malloc(IN_MAX / 4 * 3 + 4);
    dx_conn_config cc = {
        .role = DX_ROLE_CLIENT, .max_message = cfg->max_message, .cb = &conn_cb, .user = s};
    s->conn = dx_conn_new(&cc, 0);
    if (!s->lines || !s->dec || !s->conn) {
        *why = "out of memory";
        goto fail;
    }
    size_t n = (size_t)snprintf(s->lines, cap, "Host: %s\r\n", s->url.host_header);
    if (cfg->origin) n += (size_t)snprintf(s->lines + n, cap - n, "Origin: %s\r\n", cfg->origin);
    for (const char *const *h = cfg->headers; h && *h; h++)
        n += (size_t)snprintf(s->lines + n, cap - n, "%s\r\n", *h);
    /* The open: the WebSocket URL's path and query, X-Duplex-Session: 1, the
     * subprotocols offered in X-Duplex-Protocol. */
    char protos[1024] = "";
    size_t pn = 0;
    for (const char *const *p = cfg->protocols; p && *p && pn < sizeof protos - 1; p++)
        pn += (size_t)snprintf(protos + pn, sizeof protos - pn, "%s%s", pn ? ", " : "", *p);
    size_t hcap = 512 + strlen(s->url.target) + n + pn;
    char *head = malloc(hcap);
    if (!head) {
        *why = "out of memory";
        goto fail;
    }
    snprintf(head, hcap,
             "POST %s HTTP/1.1\r\n%sX-Duplex-Session: 1\r\n%s%s%sContent-Length: 0\r\n"
             "Connection: close\r\n\r\n",
             s->url.target, s->lines, pn ? "X-Duplex-Protocol: " : "", protos, pn ? "\r\n" : "");
    req_start(&s->open, head, NULL, 0);
    free(head);
    return s;
fail:
    dx_cli_hsess_free(s);
    return NULL;
}

int dx_cli_hsess_send(dx_cli_hsess *s, enum dx_opcode op, const void *data, size_t len) {
    if (s->finished) return DX_ESTATE;
    int rc = dx_conn_send(s->conn, op, data, len);
    if (rc == 0) pump(s);
    return rc;
}

int dx_cli_hsess_close(dx_cli_hsess *s, unsigned code, const char *reason) {
    if (s->finished) return DX_ESTATE;
    if (!s->sid[0]) { /* not open yet: nothing to tell the server */
        finish(s, DX_CLOSE_ABNORMAL, "", 0, 0);
        return 0;
    }
    int rc = dx_conn_close(s->conn, code, reason, reason ? strlen(reason) : 0);
    if (rc == 0) {
        dx_timer_start(s->loop, &s->close_timer, CLOSE_WAIT_MS);
        pump(s);
    }
    return rc;
}

enum dx_ready_state dx_cli_hsess_state(const dx_cli_hsess *s) {
    if (s->finished) return DX_CLOSED;
    return dx_conn_state(s->conn);
}

size_t dx_cli_hsess_buffered(const dx_cli_hsess *s) {
    return dx_conn_buffered(s->conn);
}

void dx_cli_hsess_free(dx_cli_hsess *s) {
    if (!s) return;
    stop_all(s);
    free(s->open.in);
    free(s->up.in);
    free(s->down.in);
    if (s->conn) dx_conn_free(s->conn);
    dx_tls_ctx_free(s->tls_ctx);
    dx_url_free(&s->url);
    free(s->lines);
    free(s->dec);
    free(s);
}

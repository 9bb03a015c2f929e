/* The HTTP session transport (docs/fallback.md): a WebSocket whose frames
 * travel in HTTP bodies, for clients behind proxies that break Upgrade.
 * session.h says how the bytes are kept; here are the requests: open (a
 * POST with X-Duplex-Session: 1), down (SSE or a long poll, one at a time)
 * and up (POSTs of masked client frames at an offset). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "core/alloc.h"
#include "core/sha1.h"
#include "server/handoff.h"
#include "server/lists.h"
#include "server/partial.h"
#include "server/respond.h"
#include "server/sconn.h"
#include "server/session.h"

#define NO_STORE "Cache-Control: no-store\r\n"
#define BODY_MAX ((size_t)1 << 20)     /* an up body, a poll answer */
#define STREAM_MAX ((uint64_t)1 << 20) /* session bytes per SSE stream */
#define STREAM_MS 60000                /* an SSE stream's longest life */
#define KEEPALIVE_MS 15000             /* silence before a ":" comment */
#define EVENT_RAW 49152                /* session bytes per SSE event */
#define XH_MAX 640                     /* extra header lines of one answer */

/* ---- small helpers ---------------------------------------------------------- */

static int slice_is(const char *s, size_t n, const char *lit) {
    return strlen(lit) == n && !memcmp(s, lit, n);
}

static dx__http *http_state(dx_server_conn *c) {
    if (!c->u.http) {
        c->u.http = dx__calloc(1, sizeof *c->u.http);
        if (c->u.http) c->u.http->file_fd = -1;
    }
    return c->u.http;
}

/* ---- pages of another origin (CORS) ------------------------------------------
 * A page may talk to a server of another origin, as a WebSocket may. The
 * answers of /.duplex/ and of the open then carry the CORS lines that let
 * that page read them: Access-Control-Allow-Origin echoes the request's
 * Origin (never "*", never with credentials: cookies stay same-origin), and
 * the offset headers are exposed. Which origins may open a session is
 * decided as for a WebSocket (the allow-list, on_upgrade); every later
 * request must come from the open request's origin. Up and down requests
 * are "simple" requests (no custom header, no content type), so only the
 * open is preflighted, once per URL and 10 minutes. */

/* NO_STORE, then the CORS lines for Origin `o` (NULL: none, same-origin),
 * then `more` (NULL: none), in `buf`; returned. An origin that is not one
 * printable token gets no CORS lines. */
static const char *xhead(char buf[XH_MAX], const char *o, size_t n, const char *more) {
    static const char allow[] = "Access-Control-Allow-Origin: ";
    static const char rest[] = "\r\nVary: Origin\r\n"
                               "Access-Control-Expose-Headers: X-Duplex-Offset, X-Duplex-Seq\r\n";
    int ok = o && n > 0 && n <= 256;
    for (size_t i = 0; ok && i < n; i++)
        ok = o[i] > ' ' && o[i] < 0x7f && o[i] != ',';
    /* By hand rather than with snprintf: one per request (dx__hline_u64).
     * 256 bytes of origin and a line of `more` (ours, under 64) fit. */
    size_t at = sizeof NO_STORE - 1, mn = more ? strlen(more) : 0;
    memcpy(buf, NO_STORE, at);
    if (ok) {
        memcpy(buf + at, allow, sizeof allow - 1);
        at += sizeof allow - 1;
        memcpy(buf + at, o, n);
        at += n;
        memcpy(buf + at, rest, sizeof rest - 1);
        at += sizeof rest - 1;
    }
    if (mn > XH_MAX - 1 - at) mn = 0; /* never: a caller's line over 300 bytes */
    memcpy(buf + at, more ? more : "", mn);
    buf[at + mn] = 0;
    return buf;
}

static const char *xhead_z(char buf[XH_MAX], const char *o, const char *more) {
    return xhead(buf, o, o ? strlen(o) : 0, more);
}

/* The same for a request's Origin header `h` (NULL: none). */
static const char *xhead_h(char buf[XH_MAX], const dx_http_header *h, const char *more) {
    return xhead(buf, h ? h->value : NULL, h ? h->value_len : 0, more);
}

static int error(dx_server_conn *c, int status, const char *reason, const char *xh) {
    (void)dx__req_error(c, status, reason, xh);
    return 1;
}

/* Copies `n` queued bytes of `conn`, from `skip` bytes after the head of
 * its output queue, into `dst`. */
static int gather(dx_conn *conn, size_t skip, size_t n, uint8_t *dst) {
    struct iovec stack[64], *iov = stack;
    int cap = 64, k;
    for (;;) {
        k = dx_conn_out_iov(conn, iov, cap);
        size_t total = 0;
        for (int i = 0; i < k; i++)
            total += iov[i].iov_len;
        if (k < cap || total >= skip + n) break;
        /* Many small segments (shared broadcast frames): a bigger array. */
        struct iovec *more = dx__realloc(iov == stack ? NULL : iov, (size_t)cap * 4 * sizeof *iov);
        if (!more) {
            if (iov != stack) dx__free(iov);
            return DX_ENOMEM;
        }
        iov = more;
        cap *= 4;
    }
    for (int i = 0; i < k && n; i++) {
        size_t len = iov[i].iov_len;
        const uint8_t *p = iov[i].iov_base;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        size_t take = len - skip < n ? len - skip : n;
        memcpy(dst, p + skip, take);
        dst += take;
        n -= take;
        skip = 0;
    }
    if (iov != stack) dx__free(iov);
    return n ? DX_EIO : 0;
}

/* Appends `n` bytes to what the down request still has to write. */
static int out_append(dx__http *h, const char *p, size_t n) {
    if (h->out_off) {
        memmove(h->out, h->out + h->out_off, h->out_len - h->out_off);
        h->out_len -= h->out_off;
        h->out_off = 0;
    }
    char *o = dx__realloc(h->out, h->out_len + n);
    if (!o) return DX_ENOMEM;
    memcpy(o + h->out_len, p, n);
    h->out = o;
    h->out_len += n;
    return 0;
}

/* ---- the table of sessions, by SID -------------------------------------------- */

/* The SID's first 16 hex digits as a number: random bits below the first
 * byte (in a group of servers, the owner's index: sid_server), so its low
 * bits are a good hash as they are. */
static uint64_t sid_hash(const char *sid) {
    uint64_t h = 0;
    for (int i = 0; i < 16; i++) {
        char ch = sid[i];
        h = h << 4 | (uint64_t)(ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10);
    }
    return h;
}

static dx__sess *find(dx_server *s, const char *sid) {
    if (!s->sess_cap || !dx__sreq_sid_ok(sid)) return NULL;
    dx__sess *ss = s->sess_slots[sid_hash(sid) & (s->sess_cap - 1)];
    while (ss && memcmp(ss->sid, sid, DX__SID_LEN))
        ss = ss->hnext;
    return ss;
}

/* Puts `ss` (its SID set) in the table, grown to keep chains short. */
static int table_add(dx_server *s, dx__sess *ss) {
    if (s->sess_count >= s->sess_cap) {
        size_t cap = s->sess_cap ? s->sess_cap * 2 : 64;
        dx__sess **slots = dx__calloc(cap, sizeof *slots);
        if (!slots) return DX_ENOMEM;
        for (size_t i = 0; i < s->sess_cap; i++)
            for (dx__sess *e = s->sess_slots[i], *n; e; e = n) {
                n = e->hnext;
                dx__sess **at = &slots[sid_hash(e->sid) & (cap - 1)];
                e->hnext = *at;
                *at = e;
            }
        dx__free(s->sess_slots);
        s->sess_slots = slots;
        s->sess_cap = cap;
    }
    dx__sess **at = &s->sess_slots[sid_hash(ss->sid) & (s->sess_cap - 1)];
    ss->hnext = *at;
    *at = ss;
    s->sess_count++;
    return 0;
}

static void table_remove(dx_server *s, dx__sess *ss) {
    if (!ss->sid[0] || !s->sess_cap) return;
    dx__sess **at = &s->sess_slots[sid_hash(ss->sid) & (s->sess_cap - 1)];
    while (*at && *at != ss)
        at = &(*at)->hnext;
    if (*at) {
        *at = ss->hnext;
        s->sess_count--;
    }
}

void dx__sess_free_table(dx_server *s) {
    dx__free(s->sess_slots);
    s->sess_slots = NULL;
    s->sess_cap = s->sess_count = 0;
}

/* ---- the down request ---------------------------------------------------------- */

static void detach(dx__sess *ss) {
    dx_server_conn *d = ss->down;
    if (!d) return;
    ss->down = NULL;
    if (d->u.http) d->u.http->sess = NULL;
}

/* Ends a down request that no longer serves its session: a stream closes
 * after what it holds; a poll is answered `status` with an empty body. */
static void end_down(dx_server_conn *d, int status, uint64_t off, const char *origin) {
    if (d->phase != P_STREAM) return;
    dx__http *h = d->u.http;
    char xh[XH_MAX];
    if (h && !h->cors) origin = NULL;
    if (h && h->poll) {
        if (status != 200) {
            (void)error(d, status, "unknown or expired session", xhead_z(xh, origin, NULL));
            return;
        }
        char off_line[64];
        dx__hline_u64(off_line, "X-Duplex-Offset", off);
        (void)dx__req_respond(d, 200, "application/octet-stream", xhead_z(xh, origin, off_line), "",
                              0, 0);
        return;
    }
    /* The body of a stream ends with the connection (no Content-Length). */
    d->phase = P_RESP;
    d->t_mark = dx__srv_now(d->srv);
    dx__sc_mark(d);
}

/* Sends the session's bytes [sent, end) on its down request. */
static void push(dx__sess *ss, uint64_t end) {
    dx_server_conn *d = ss->down;
    dx__http *h = d->u.http;
    dx_conn *conn = sc_conn(ss->c);
    uint64_t from = ss->sent;
    uint64_t want = end - from;
    if (h->poll) {
        if (want > BODY_MAX) want = BODY_MAX;
        uint8_t *buf = dx__malloc((size_t)want);
        if (!buf || gather(conn, (size_t)(from - ss->acked), (size_t)want, buf) < 0) {
            dx__free(buf);
            return; /* tried again at the next flush */
        }
        char off_line[64], xh[XH_MAX];
        dx__hline_u64(off_line, "X-Duplex-Offset", from);
        xhead_z(xh, h->cors ? ss->origin : NULL, off_line);
        detach(ss);
        if (dx__req_respond(d, 200, "application/octet-stream", xh, buf, (size_t)want, 0) == 0)
            ss->sent = from + want;
        dx__free(buf);
        return;
    }
    if (want > STREAM_MAX - h->stream_bytes) want = STREAM_MAX - h->stream_bytes;
    uint8_t *raw = dx__malloc((size_t)want);
    char *ev = dx__malloc(EVENT_RAW / 3 * 4 + 16);
    int ok = raw && ev && gather(conn, (size_t)(from - ss->acked), (size_t)want, raw) == 0;
    size_t done = 0;
    while (ok && done < want) {
        size_t n = want - done < EVENT_RAW ? (size_t)(want - done) : EVENT_RAW;
        memcpy(ev, "data: ", 6);
        size_t k = 6 + dx__base64(ev + 6, raw + done, n);
        memcpy(ev + k, "\n\n", 2);
        if (out_append(h, ev, k + 2) < 0) break;
        done += n;
    }
    dx__free(raw);
    dx__free(ev);
    if (!done) return;
    ss->sent = from + done;
    h->stream_bytes += done;
    h->t_last = dx__srv_now(d->srv);
    dx__sc_mark(d);
    if (h->stream_bytes >= STREAM_MAX) {
        detach(ss);
        end_down(d, 200, ss->sent, ss->origin);
    }
}

/* ---- the session ------------------------------------------------------------ */

/* Releases the down bytes below `ack` (acked <= ack <= sent). */
static void release(dx__sess *ss, uint64_t ack) {
    if (ack <= ss->acked) return;
    dx_conn_out_consume(sc_conn(ss->c), (size_t)(ack - ss->acked));
    ss->acked = ack;
    dx__sc_mark(ss->c); /* the flush checks the watermarks and the end */
}

void dx__sess_flush(dx_server_conn *c) {
    dx__sess *ss = c->sess;
    if (!ss || c->phase == P_DEAD) return;
    dx_server *s = c->srv;
    dx_conn *conn = sc_conn(c);
    uint64_t end = ss->acked + dx_conn_buffered(conn);
    if (ss->down && ss->sent < end) push(ss, end);
    if (c->phase == P_DRAIN && dx_conn_buffered(conn) == 0) {
        /* Closed and every byte acknowledged: the session is done. */
        dx__sc_kill(c, DX_CLOSE_ABNORMAL);
        return;
    }
    if (s->shutting && dx_conn_state(conn) != DX_OPEN && (!ss->down || ss->sent == end)) {
        /* No new request can come (the listener is closed), so the close
         * frame, handed to the down request if there is one, is the last
         * word: the peer's answer could not reach us. */
        dx__sc_kill(c, DX_CLOSE_GOING_AWAY);
        return;
    }
    if (c->flags & (F_ABOVE_LOW | F_PAUSED)) {
        const dx_server_config *cfg = &s->cfg;
        if (dx_conn_buffered(conn) <= cfg->low_water) {
            int owed = c->flags & F_ABOVE_LOW;
            dx__sc_unpause(c);
            c->flags &= (uint16_t)~F_ABOVE_LOW;
            if (owed && c->phase == P_WS && dx_conn_state(conn) == DX_OPEN && cfg->on_drain)
                cfg->on_drain(c, dx_conn_user(conn));
        }
    }
}

void dx__sess_kill(dx_server_conn *c) {
    if (!(c->flags & F_SESS)) {
        /* A down request that ended (EOF, reset, timeout). */
        dx__http *h = c->phase == P_STREAM ? c->u.http : NULL;
        if (h && h->sess && h->sess->sess) h->sess->sess->down = NULL;
        if (h) h->sess = NULL;
        return;
    }
    dx__sess *ss = c->sess;
    if (!ss) return;
    dx_server_conn *d = ss->down;
    if (d) {
        detach(ss);
        end_down(d, 404, ss->sent, ss->origin);
    }
    table_remove(c->srv, ss);
    dx__free(ss->origin);
    dx__free(ss);
    c->sess = NULL;
}

int dx__sess_sweep(dx_server_conn *c, uint32_t now) {
    dx__sess *ss = c->sess;
    if (!ss) return 0;
    if (ss->down) ss->t_req = now; /* a request in progress counts */
    if ((uint32_t)(now - ss->t_req) >= c->srv->cfg.sessions.idle_ms) {
        dx__sc_kill(c, DX_CLOSE_ABNORMAL); /* as for a dead TCP peer */
        return 1;
    }
    return 0;
}

void dx__sess_sweep_down(dx_server_conn *c, uint32_t now) {
    dx__http *h = c->u.http;
    dx__sess *ss = h && h->sess ? h->sess->sess : NULL;
    if (!ss) {
        end_down(c, 404, 0, NULL);
        return;
    }
    if (h->poll) {
        if ((uint32_t)(now - c->t_mark) >= c->srv->cfg.sessions.poll_ms) {
            detach(ss);
            end_down(c, 200, ss->sent, ss->origin);
        }
        return;
    }
    if ((uint32_t)(now - c->t_mark) >= STREAM_MS) {
        detach(ss);
        end_down(c, 200, ss->sent, ss->origin);
        return;
    }
    if ((uint32_t)(now - h->t_last) >= KEEPALIVE_MS && out_append(h, ":\n\n", 3) == 0) {
        h->t_last = now;
        dx__sc_mark(c);
    }
}

/* ---- the requests ------------------------------------------------------------ */

/* A session connection, not yet open, in srv->other (a kill frees it). */
static dx_server_conn *sess_new(dx_server_conn *rc, const dx_handshake_info *info) {
    dx_server *s = rc->srv;
    dx__sess *ss = dx__calloc(1, sizeof *ss);
    if (!ss) return NULL;
    if (info->origin) {
        ss->origin = dx__malloc(info->origin_len + 1);
        if (!ss->origin) {
            dx__free(ss);
            return NULL;
        }
        memcpy(ss->origin, info->origin, info->origin_len);
        ss->origin[info->origin_len] = 0;
    }
    dx_server_conn *c = dx__sc_alloc(s);
    if (!c) {
        dx__free(ss->origin);
        dx__free(ss);
        return NULL;
    }
    c->io.fd = -1;
    ss->t_req = c->t_rx;
    c->flags = F_SESS;
    c->sess = ss;
    ss->c = c;
    (void)dx__sc_remote(rc, ss->remote, sizeof ss->remote);
    dx__sc_link(c);
    return c;
}

static int open_session(dx_server_conn *c, const dx_http_request *req, const char *path,
                        size_t path_len, const char *query, size_t query_len, const char *xh) {
    dx_server *s = c->srv;
    dx_handshake_info info = {
        .path = path, .path_len = path_len, .query = query, .query_len = query_len};
    const dx_http_header *h = dx_http_find(req->headers, req->num_headers, "Origin");
    if (h) {
        info.origin = h->value;
        info.origin_len = h->value_len;
    }
    h = dx_http_find(req->headers, req->num_headers, "X-Duplex-Protocol");
    if (h) {
        info.protocols = h->value;
        info.protocols_len = h->value_len;
    }
    dx_server_conn *sc = sess_new(c, &info);
    if (!sc) return error(c, 503, "out of memory", xh);
    dx__sess *ss = sc->sess;
    dx_upgrade u;
    if (dx__req_admit(c, sc, req, &info, &u, xh) < 0) {
        dx__sc_kill(sc, DX_CLOSE_ABNORMAL); /* never opened: no on_close */
        return 1;
    }
    const char *proto = u.protocol ? u.protocol : "";
    for (const char *p = proto; *p; p++)
        if (*p <= ' ' || *p >= 0x7f || *p == '"' || *p == '\\') {
            dx__sc_kill(sc, DX_CLOSE_ABNORMAL);
            return error(c, 500, "bad subprotocol", xh);
        }
    uint8_t rnd[DX__SID_LEN / 2];
    size_t got = 0;
    while (got < sizeof rnd) {
        ssize_t r = getrandom(rnd + got, sizeof rnd - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            dx__sc_kill(sc, DX_CLOSE_ABNORMAL);
            return error(c, 500, "no random source", xh);
        }
        got += (size_t)r;
    }
    /* In a group of servers the first byte says whose session it is, so
     * that the others can hand its requests over (handoff.h). */
    if (s->group) rnd[0] = s->group_index;
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(ss->sid + 2 * i, 3, "%02x", rnd[i]);
    if (find(s, ss->sid) || table_add(s, ss) < 0) { /* a collision: 2^-128 (2^-120) */
        ss->sid[0] = 0;
        dx__sc_kill(sc, DX_CLOSE_ABNORMAL);
        return error(c, 503, "out of memory", xh);
    }
    char body[512];
    int n = snprintf(body, sizeof body,
                     "{\"sid\":\"%s\",\"protocol\":\"%s\",\"idle\":%u,\"poll\":%u}", ss->sid, proto,
                     (unsigned)s->cfg.sessions.idle_ms, (unsigned)s->cfg.sessions.poll_ms);
    if (n < 0 || (size_t)n >= sizeof body ||
        dx__req_respond(c, 200, "application/json", xh, body, (size_t)n, 0) < 0) {
        dx__sc_kill(sc, DX_CLOSE_ABNORMAL);
        return 1;
    }
    dx_conn *conn = sc_conn(sc);
    dx_conn_open(conn);
    dx__srv_move(sc, &s->open);
    sc->phase = P_WS;
    sc->flags |= F_OPENED;
    s->st.sessions_opened++;
    s->st.sessions_open++; /* until it leaves P_WS (sconn.c, cb_close) */
    sc->t_rx = ss->t_req = dx__srv_now(s);
    if (s->cfg.on_open) s->cfg.on_open(sc, dx_conn_user(conn));
    if (sc->phase != P_DEAD && dx_conn_buffered(conn)) dx__sc_queued(sc);
    return 1;
}

/* 1 when the answer to `req` may keep its connection for the next request
 * (a client's up POSTs and polls then cost no new TCP connection each):
 * HTTP/1.1, no "Connection: close", and nothing read past the request,
 * since bytes of a pipelined request would go with the request's state. */
static int keep_ok(const dx_http_request *req, size_t past) {
    if (req->minor_version != 1 || past) return 0;
    const dx_http_header *h = dx_http_find(req->headers, req->num_headers, "Connection");
    return !h || !dx_http_has_token(h->value, h->value_len, "close");
}

static int down_request(dx_server_conn *c, dx__sess *ss, const dx__sreq *r, int keep, int cors,
                        const char *xh) {
    if (r->ack_st == DX__SQ_ABSENT) return error(c, 400, "ack required", xh);
    if (r->ack_st == DX__SQ_BAD) return error(c, 400, "bad ack: one decimal uint64", xh);
    if (r->mode_st != DX__SQ_OK) return error(c, 400, "mode must be stream or poll, once", xh);
    uint64_t ack = r->ack;
    int poll = r->mode == DX__SMODE_POLL;
    if (ack > ss->sent) return error(c, 400, "ack past what was sent", xh);
    if (ack < ss->acked) return error(c, 409, "ack below what was released", xh);
    dx__http *h = http_state(c);
    if (!h) {
        dx__sc_kill(c, DX_CLOSE_ABNORMAL);
        return 1;
    }
    uint32_t now = dx__srv_now(c->srv);
    ss->t_req = now;
    dx_server_conn *old = ss->down;
    if (old) {
        detach(ss);
        end_down(old, 200, ss->sent, ss->origin);
    }
    release(ss, ack);
    ss->sent = ack;
    if (!poll) {
        char head[XH_MAX + 256];
        int n = snprintf(head, sizeof head,
                         "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n%s"
                         "X-Accel-Buffering: no\r\nX-Duplex-Offset: %llu\r\n"
                         "Connection: close\r\nServer: duplex\r\n\r\n",
                         xh, (unsigned long long)ack);
        dx__free(h->out);
        h->out = NULL;
        h->out_len = h->out_off = 0;
        if (out_append(h, head, (size_t)n) < 0) {
            dx__sc_kill(c, DX_CLOSE_ABNORMAL);
            return 1;
        }
    }
    h->sess = ss->c;
    h->poll = (uint8_t)poll;
    h->keep = (uint8_t)(poll && keep); /* a stream ends with its connection */
    h->cors = (uint8_t)cors;
    h->stream_bytes = 0;
    h->t_last = now;
    c->phase = P_STREAM;
    c->t_mark = now;
    ss->down = c;
    dx__sc_mark(c);
    dx__sc_update(c);
    /* What waits goes out now (see up_request). */
    dx__sess_flush(ss->c);
    return 1;
}

/* Answers an up request `c` with the down bytes that wait (at most
 * BODY_MAX), as a poll would: 200, X-Duplex-Offset, and the extra header
 * lines `xh`. 1 when it did not answer (nothing waits, or no memory to
 * copy it: the caller answers 204 and the bytes wait for the poll); else
 * what dx__req_respond returned (on failure it killed `c`). */
static int carry_down(dx_server_conn *c, dx__sess *ss, const char *xh) {
    dx_conn *conn = sc_conn(ss->c);
    uint64_t from = ss->sent, end = ss->acked + dx_conn_buffered(conn);
    if (from >= end) return 1;
    size_t want = end - from > BODY_MAX ? BODY_MAX : (size_t)(end - from);
    uint8_t *buf = dx__malloc(want);
    if (!buf || gather(conn, (size_t)(from - ss->acked), want, buf) < 0) {
        dx__free(buf);
        return 1; /* they wait for the poll */
    }
    char head[XH_MAX + 64];
    size_t n = dx__hline_u64(head, "X-Duplex-Offset", from);
    memcpy(head + n, xh, strlen(xh) + 1);
    int rc = dx__req_respond(c, 200, "application/octet-stream", head, buf, want, 0);
    if (rc == 0) ss->sent = from + want;
    dx__free(buf);
    return rc;
}

/* Feeds up bytes to the session's connection, as a read would. */
static void feed(dx__sess *ss, uint8_t *p, size_t n) {
    dx_server_conn *c = ss->c;
    dx_server *s = c->srv;
    dx_conn *conn = sc_conn(c);
    if (c->phase != P_WS) return; /* closed: the peer's bytes are discarded */
    c->t_rx = dx__srv_now(s);
    c->flags &= (uint16_t)~F_PING;
    s->st.wire_in += n;
    size_t held = dx_conn_partial(conn);
    s->partial_in = c;
    (void)dx_conn_recv(conn, p, n); /* failures close it via cb_close */
    s->partial_in = NULL;
    if (held || dx_conn_partial(conn)) dx__partial_read(c, held);
    if (c->phase != P_DEAD && dx_conn_buffered(conn)) dx__sc_queued(c);
}

static int up_request(dx_server_conn *c, dx__sess *ss, const dx_http_request *req,
                      const dx__sreq *r, uint8_t *rest, size_t rest_len, const char *cors) {
    char xh[XH_MAX];
    xhead_z(xh, cors, NULL);
    if (r->seq_st == DX__SQ_ABSENT) return error(c, 400, "seq required", xh);
    if (r->seq_st == DX__SQ_BAD) return error(c, 400, "bad seq: one decimal uint64", xh);
    if (r->ack_st == DX__SQ_BAD) return error(c, 400, "bad ack: one decimal uint64", xh);
    if (r->mode_st == DX__SQ_BAD) return error(c, 400, "mode must be stream or poll, once", xh);
    uint64_t seq = r->seq, ack = r->ack;
    int has_ack = r->ack_st == DX__SQ_OK;
    int carry = r->mode_st == DX__SQ_OK && r->mode == DX__SMODE_POLL;
    const dx_http_header *h = dx_http_find(req->headers, req->num_headers, "Content-Length");
    if (!h) {
        if (dx_http_find(req->headers, req->num_headers, "Transfer-Encoding"))
            return error(c, 411, "chunked bodies are not accepted: send Content-Length", xh);
        return error(c, 411, "Content-Length required", xh);
    }
    uint64_t len = 0;
    if (h->value_len == 0 || h->value_len > 19) return error(c, 400, "bad Content-Length", xh);
    for (size_t i = 0; i < h->value_len; i++) {
        if (h->value[i] < '0' || h->value[i] > '9') return error(c, 400, "bad Content-Length", xh);
        len = len * 10 + (uint64_t)(h->value[i] - '0');
    }
    if (len > BODY_MAX) return error(c, 413, "up body over 1 MiB", xh);
    if (rest_len < len) return 2;
    ss->t_req = dx__srv_now(c->srv);
    if (has_ack) {
        if (ack > ss->sent) return error(c, 400, "ack past what was sent", xh);
        release(ss, ack); /* one below what was released is stale: ignored */
    }
    char seq_line[64];
    if (seq > ss->up) {
        dx__hline_u64(seq_line, "X-Duplex-Seq", ss->up);
        (void)dx__req_error(c, 409, "gap in the up stream", xhead_z(xh, cors, seq_line));
        return 1;
    }
    uint64_t skip = ss->up - seq;
    uint64_t next = skip < len ? seq + len : ss->up;
    /* The answer's head is written before the feed: `cors` is the
     * session's origin, freed with the session if it ends below. */
    dx__hline_u64(seq_line, "X-Duplex-Seq", next);
    xhead_z(xh, cors, seq_line);
    dx_server_conn *sc = ss->c;
    if (skip < len) {
        ss->up = next;
        feed(ss, rest + skip, (size_t)(len - skip)); /* may end the session */
    }
    dx__http *hs = http_state(c);
    if (hs) hs->keep = (uint8_t)keep_ok(req, rest_len - (size_t)len);
    /* A polling client's POST carries back what waits (an echo, say) in
     * its answer, unless a stream is attached (its offsets are implicit).
     * The poll held meanwhile stays held: one request and one answer per
     * message instead of two of each. A killed session (sc->sess NULL) has
     * nothing to carry. */
    int carried = carry && sc->sess && (!sc->sess->down || sc->sess->down->u.http->poll) &&
                  carry_down(c, sc->sess, xh) != 1;
    /* What the messages produced goes to the down request now, from this
     * read, rather than in the server's flush pass after the iteration:
     * the answer leaves one step sooner, which measured 8-20 % more
     * messages a second over the stream transport at 10 and 100 clients.
     * A killed session is left alone by dx__sess_flush. */
    if (skip < len || carried) dx__sess_flush(sc);
    if (!carried) (void)dx__req_respond(c, 204, NULL, xh, "", 0, 0);
    return 1;
}

/* A CORS preflight: OPTIONS with Access-Control-Request-Method. */
static int is_preflight(const dx_http_request *req) {
    return slice_is(req->method, req->method_len, "OPTIONS") &&
           dx_http_find(req->headers, req->num_headers, "Access-Control-Request-Method");
}

/* Answers a preflight for a page of origin `o` with what it may send. */
static int preflight(dx_server_conn *c, const dx_http_header *o, const char *allow) {
    char xh[XH_MAX];
    (void)dx__req_respond(c, 204, NULL, xhead_h(xh, o, allow), "", 0, 0);
    return 1;
}

/* The group index in a SID's first byte (lowercase hex, checked). */
static unsigned sid_server(const char *sid) {
    return (unsigned)(sid_hash(sid) >> 56);
}

int dx__sess_request(dx_server_conn *c, const dx_http_request *req, uint8_t *rest,
                     size_t rest_len) {
    const char *path, *query;
    size_t path_len, query_len;
    dx__sreq_split(req->target, req->target_len, &path, &path_len, &query, &query_len);
    const dx_http_header *o = dx_http_find(req->headers, req->num_headers, "Origin");
    char xh[XH_MAX];
    xhead_h(xh, o, NULL);
    dx__sreq r;
    switch (dx__sreq_parse(path, path_len, query, query_len, &r)) {
    case DX__SREQ_NONE: {
        const dx_http_header *h = dx_http_find(req->headers, req->num_headers, "X-Duplex-Session");
        if (dx__sreq_is_open(req->method, req->method_len, h ? h->value : NULL,
                             h ? h->value_len : 0))
            return open_session(c, req, path, path_len, query, query_len, xh);
        /* The open's preflight, told apart from one the application may
         * answer itself by the header it asks about. The allow-list is
         * checked here too (the open checks it again, with on_upgrade). */
        h = dx_http_find(req->headers, req->num_headers, "Access-Control-Request-Headers");
        if (!is_preflight(req) || !h ||
            !dx_http_has_token(h->value, h->value_len, "x-duplex-session"))
            return 0;
        const dx_server_config *cfg = &c->srv->cfg;
        if (cfg->origins && o && !dx__req_origin_allowed(cfg, o->value, o->value_len))
            return error(c, 403, "origin not allowed", NO_STORE);
        return preflight(c, o,
                         "Access-Control-Allow-Methods: POST\r\n"
                         "Access-Control-Allow-Headers: X-Duplex-Session, X-Duplex-Protocol\r\n"
                         "Access-Control-Max-Age: 600\r\n");
    }
    case DX__SREQ_NOTFOUND:
        return error(c, 404, "not found", xh);
    case DX__SREQ_NOSID:
        return error(c, 404, "unknown or expired session", xh);
    default:
        break;
    }
    int down = r.op == DX__SREQ_DOWN;
    dx__sess *ss = find(c->srv, r.sid);
    if (!ss) {
        /* Another server's of the group, maybe: the whole request (from
         * its first byte, the method, to the last byte read) goes there. */
        const uint8_t *from = (const uint8_t *)req->method;
        if (c->srv->group &&
            dx__handoff(c, sid_server(r.sid), from, (size_t)(rest + rest_len - from)) == 0)
            return 1;
        return error(c, 404, "unknown or expired session", xh);
    }
    if (o && (!ss->origin || !dx_http_ieq(o->value, o->value_len, ss->origin)))
        return error(c, 403, "origin differs from the session's", NO_STORE);
    if (is_preflight(req)) /* an older client's, which sent a content type */
        return preflight(c, o,
                         "Access-Control-Allow-Methods: GET, POST\r\n"
                         "Access-Control-Allow-Headers: Content-Type\r\n"
                         "Access-Control-Max-Age: 600\r\n");
    if (down && !slice_is(req->method, req->method_len, "GET")) {
        (void)dx__req_error(c, 405, "use GET", xhead_h(xh, o, "Allow: GET\r\n"));
        return 1;
    }
    if (!down && !slice_is(req->method, req->method_len, "POST")) {
        (void)dx__req_error(c, 405, "use POST", xhead_h(xh, o, "Allow: POST\r\n"));
        return 1;
    }
    return down ? down_request(c, ss, &r, keep_ok(req, rest_len), o != NULL, xh)
                : up_request(c, ss, req, &r, rest, rest_len, o ? ss->origin : NULL);
}

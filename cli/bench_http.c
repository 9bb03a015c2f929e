/* duplex bench over plain HTTP (see bench_http.h).
 *
 * Each client has two HTTP/1.1 connections, kept alive as long as the
 * server keeps them: `up` for its POSTs (and the open) and `down` for its
 * down requests. A connection carries one request at a time; an answer the
 * server ends with `Connection: close` (a session's open and its SSE
 * streams) costs a new connection for the next request, as it would a
 * browser. Sends are batched the way http_socket.js batches them: a message
 * queued while a POST is in flight goes in the next POST, which leaves when
 * the answer comes; the queue is flushed once per turn of the loop, so the
 * messages of one turn share a POST. */
#include "cli/bench_http.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <duplex/frame.h>
#include <duplex/http.h>
#include <duplex/mask.h>

#include "cli/sse.h"
#include "cli/bench_fifo.h"

#define HEAD_MAX 16384           /* largest answer head accepted */
#define IN_MAX (4u << 20)        /* largest answer accepted (a poll's is at most 1 MiB) */
#define ACK_BYTES (64 * 1024)    /* stream: ack at once past this much (http_socket.js) */
#define ACK_NS 1000000000ull     /* stream: else within a second */
#define MAX_PENDING_OPENS 64     /* sessions being opened at once */
#define GOODBYE_NS 500000000ull  /* the closing handshakes' wait at the end */
#define EIO_PREFIX "42[\"m\",\"" /* bench/fallback/sio_server.mjs echoes "m" */
#define EIO_PREFIX_LEN (sizeof EIO_PREFIX - 1)

enum { K_UP, K_DOWN };
enum { CL_IDLE, CL_OPENING, CL_OPEN, CL_CLOSING, CL_DONE };

typedef struct hclient hclient;

/* One HTTP/1.1 connection with at most one request outstanding. */
typedef struct hconn {
    hclient *cl;
    int fd;             /* -1: none (the next request connects) */
    uint8_t kind;       /* K_UP or K_DOWN */
    uint8_t connecting; /* connect() in progress */
    uint8_t busy;       /* a request is out, its answer not complete */
    uint8_t want_out;   /* EPOLLOUT is registered */
    uint8_t keep;       /* the answer lets the connection serve the next request */
    uint8_t to_close;   /* the body ends with the connection */
    uint8_t sse;        /* the body is an event stream, handled as it arrives */
    int status;
    size_t head;    /* length of the answer's head once parsed, else 0 */
    uint64_t clen;  /* body length (when !to_close) */
    uint64_t value; /* X-Duplex-Offset (down) or X-Duplex-Seq (up) */
    int has_value;
    uint64_t off; /* an up answer's X-Duplex-Offset (poll mode: it carries down bytes) */
    int has_off;
    char *out; /* the request */
    size_t olen, ooff, ocap;
    char *in; /* the answer so far */
    size_t ilen, icap;
} hconn;

struct hclient {
    struct hrun *r;
    hconn up, down;
    uint8_t state;
    uint8_t posting;    /* an up POST is in flight */
    uint8_t dirty;      /* in the run's list to pump */
    uint8_t close_recv; /* the server's close frame (eio: "1") arrived */
    uint8_t close_sent; /* ours is queued */
    uint8_t ours;       /* we started the close */
    uint8_t counted;    /* resolved during setup */
    char sid[64];
    uint8_t *q; /* up bytes not yet posted */
    size_t qlen, qcap;
    uint64_t up_seq;   /* the up offset of q[0] */
    uint64_t received; /* down bytes parsed */
    uint64_t ack_sent; /* the ack last sent */
    uint64_t t_owed;   /* when bytes past ack_sent first arrived */
    uint64_t down_ack; /* the ack the current down request carries */
    dx_frame_parser parser;
    uint64_t msg_len;
    uint32_t inflight, refill;
    dx_fifo sent; /* send (or scheduled) times of the messages in flight */
};

typedef struct hrun {
    const dx_bench_cfg *cfg;
    int epfd;
    hclient *cl;
    int n;
    hclient **dirty;
    int ndirty;
    const uint8_t *payload;
    char path[1024]; /* duplex: the open's target; eio: the engine's path */
    uint64_t rng;
    int measuring, stopping;
    int pending, resolved, next_open;
    uint64_t messages, sent, bytes, errors, closes, overflows, requests;
    const char *first_error;
    char first_error_buf[200];
    dx_hist hist;
    uint64_t rate_t0, rate_j, next_due, rr;
    double rate_ns;
    int no_pwait2;
    uint8_t *dec; /* base64 decoding */
    size_t deccap;
} hrun;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Masking keys from xorshift64*, as bench_load.c: a benchmark need not
 * defend against proxies, and a CSPRNG call per frame would be its limit. */
static uint32_t rng_next(hrun *r) {
    uint64_t x = r->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->rng = x;
    return (uint32_t)((x * 0x2545F4914F6CDD1DULL) >> 32);
}

static int is_eio(const hrun *r) {
    return r->cfg->transport == BT_EIO;
}

static void error_at(hrun *r, const char *why) {
    r->errors++;
    if (r->first_error) return;
    snprintf(r->first_error_buf, sizeof r->first_error_buf, "%s", why);
    r->first_error = r->first_error_buf;
}

static int reserve(void *pp, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 512;
    while (c < need)
        c *= 2;
    void *p = realloc(*(void **)pp, c);
    if (!p) return -1;
    *(void **)pp = p;
    *cap = c;
    return 0;
}

static void mark_dirty(hclient *cl) {
    if (cl->dirty) return;
    cl->dirty = 1;
    cl->r->dirty[cl->r->ndirty++] = cl;
}

/* ---- the connections ---------------------------------------------------- */

static void hc_drop(hconn *hc) {
    if (hc->fd >= 0) close(hc->fd); /* also leaves the epoll set */
    hc->fd = -1;
    hc->connecting = hc->busy = hc->want_out = 0;
    hc->olen = hc->ooff = hc->ilen = hc->head = 0;
}

/* The client is over: by the server (`why` NULL) or by an error. */
static void client_end(hclient *cl, const char *why) {
    hrun *r = cl->r;
    if (cl->state == CL_DONE) return;
    if (why)
        error_at(r, why);
    else if (!cl->ours)
        r->closes++;
    if ((cl->state == CL_OPENING || cl->state == CL_IDLE) && !cl->counted) {
        cl->counted = 1;
        r->pending--;
        r->resolved++;
    }
    cl->state = CL_DONE;
    hc_drop(&cl->up);
    hc_drop(&cl->down);
    cl->qlen = 0;
    dx_fifo_clear(&cl->sent);
    cl->inflight = 0;
}

static void ep_set(hrun *r, hconn *hc, int op, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = hc};
    (void)epoll_ctl(r->epfd, op, hc->fd, &ev);
}

/* Writes what is queued; watches for writability while some is left. */
static void hc_flush(hrun *r, hconn *hc) {
    while (hc->ooff < hc->olen) {
        ssize_t w = send(hc->fd, hc->out + hc->ooff, hc->olen - hc->ooff, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (w < 0) {
            client_end(hc->cl, "write failed");
            return;
        }
        hc->ooff += (size_t)w;
    }
    if (hc->ooff == hc->olen) hc->ooff = hc->olen = 0;
    int want = hc->olen > 0;
    if (want != hc->want_out) {
        hc->want_out = (uint8_t)want;
        ep_set(r, hc, EPOLL_CTL_MOD, EPOLLIN | (want ? EPOLLOUT : 0));
    }
}

/* Sends a request: `head` (without the empty line) and `blen` bytes of
 * `body`, with a Content-Length when `body` is not NULL. Connects first
 * when the connection was closed. */
static int hc_request(hrun *r, hconn *hc, const char *head, int hlen, const void *body,
                      size_t blen) {
    char cl[64];
    int cn = body ? snprintf(cl, sizeof cl, "Content-Length: %zu\r\n\r\n", blen)
                  : snprintf(cl, sizeof cl, "\r\n");
    if (reserve(&hc->out, &hc->ocap, hc->olen + (size_t)hlen + (size_t)cn + blen) < 0) {
        client_end(hc->cl, "out of memory");
        return -1;
    }
    memcpy(hc->out + hc->olen, head, (size_t)hlen);
    memcpy(hc->out + hc->olen + hlen, cl, (size_t)cn);
    if (blen) memcpy(hc->out + hc->olen + hlen + cn, body, blen);
    hc->olen += (size_t)hlen + (size_t)cn + blen;
    hc->busy = 1;
    hc->head = hc->ilen = 0;
    hc->sse = hc->to_close = 0;
    if (hc->fd >= 0) {
        if (!hc->connecting) hc_flush(r, hc);
        return 0;
    }
    const dx_bench_cfg *cfg = r->cfg;
    int fd = socket(cfg->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        client_end(hc->cl, "socket failed (out of file descriptors?)");
        return -1;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    hc->fd = fd;
    if (connect(fd, (const struct sockaddr *)&cfg->addr, cfg->addr_len) < 0 &&
        errno != EINPROGRESS) {
        client_end(hc->cl,
                   errno == EADDRNOTAVAIL ? "connect: out of source ports" : "connect failed");
        return -1;
    }
    hc->connecting = 1;
    hc->want_out = 1;
    ep_set(r, hc, EPOLL_CTL_ADD, EPOLLOUT);
    return 0;
}

/* ---- sending ------------------------------------------------------------- */

/* Queues one WebSocket frame (masked, as a client's must be). */
static int queue_frame(hclient *cl, uint8_t op, const uint8_t *data, size_t len) {
    if (reserve(&cl->q, &cl->qcap, cl->qlen + DX_FRAME_MAX_HEADER + len) < 0) return -1;
    uint32_t k = rng_next(cl->r);
    uint8_t key[4];
    memcpy(key, &k, 4);
    uint8_t *out = cl->q + cl->qlen;
    size_t h = dx_frame_write_header(out, 1, 0, op, len, key);
    dx_mask_copy(out + h, data, len, key, 0);
    cl->qlen += h + len;
    mark_dirty(cl);
    return 0;
}

/* Queues one Engine.IO packet (`len` bytes) after a separator if needed. */
static int queue_packet(hclient *cl, const char *pre, size_t plen, const uint8_t *data, size_t len,
                        const char *post, size_t postlen) {
    if (reserve(&cl->q, &cl->qcap, cl->qlen + 1 + plen + len + postlen) < 0) return -1;
    if (cl->qlen) cl->q[cl->qlen++] = 0x1e;
    memcpy(cl->q + cl->qlen, pre, plen);
    memcpy(cl->q + cl->qlen + plen, data, len);
    memcpy(cl->q + cl->qlen + plen + len, post, postlen);
    cl->qlen += plen + len + postlen;
    mark_dirty(cl);
    return 0;
}

/* Sends one benchmark message whose latency counts from `t_sched`. */
static int send_msg(hclient *cl, uint64_t t_sched) {
    hrun *r = cl->r;
    const dx_bench_cfg *cfg = r->cfg;
    int full = dx_fifo_push(&cl->sent, t_sched);
    if (full < 0) return -1;
    if (full) {
        r->overflows++;
        return 0;
    }
    cl->inflight++;
    r->sent++;
    int rc = is_eio(r) ? queue_packet(cl, EIO_PREFIX, EIO_PREFIX_LEN, r->payload, (size_t)cfg->size,
                                      "\"]", 2)
                       : queue_frame(cl, cfg->binary ? DX_OP_BINARY : DX_OP_TEXT, r->payload,
                                     (size_t)cfg->size);
    if (rc < 0) client_end(cl, "out of memory");
    return rc;
}

/* Posts what is queued, if no POST is out; in stream mode also a pure ack
 * when one is owed (http_socket.js: 64 KiB unacknowledged, or some for a
 * second), so that the server can release what it keeps for us. */
static void pump(hclient *cl, uint64_t now) {
    hrun *r = cl->r;
    const dx_bench_cfg *cfg = r->cfg;
    /* Engine.IO posts its "40" while opening; a session only once open. */
    if (cl->posting || cl->state == CL_DONE || cl->state == CL_IDLE || !cl->sid[0]) return;
    char head[1400];
    int n;
    if (is_eio(r)) {
        if (!cl->qlen) return;
        n = snprintf(head, sizeof head,
                     "POST %s?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: %s\r\n"
                     "Content-Type: text/plain;charset=UTF-8\r\n",
                     r->path, cl->sid, cfg->host_header);
    } else {
        uint64_t owed = cl->received - cl->ack_sent;
        int ack_due = owed && (cfg->transport == BT_STREAM || cl->close_recv) &&
                      (owed >= ACK_BYTES || now - cl->t_owed >= ACK_NS || cl->close_recv);
        if (!cl->qlen && !ack_due) return;
        /* A polling client says so: the answer then carries what waits. */
        n = snprintf(head, sizeof head,
                     "POST /.duplex/%s/up?seq=%llu&ack=%llu%s HTTP/1.1\r\nHost: %s\r\n", cl->sid,
                     (unsigned long long)cl->up_seq, (unsigned long long)cl->received,
                     cfg->transport == BT_POLL ? "&mode=poll" : "", cfg->host_header);
        cl->ack_sent = cl->received;
    }
    if (n < 0 || (size_t)n >= sizeof head) {
        client_end(cl, "request too long");
        return;
    }
    cl->posting = 1;
    size_t len = cl->qlen;
    cl->up_seq += len;
    cl->qlen = 0;
    (void)hc_request(r, &cl->up, head, n, cl->q, len);
}

/* The next down request: a stream or a poll from what was received. */
static void down_next(hclient *cl) {
    hrun *r = cl->r;
    const dx_bench_cfg *cfg = r->cfg;
    char head[1400];
    int n;
    if (is_eio(r)) {
        n = snprintf(head, sizeof head,
                     "GET %s?EIO=4&transport=polling%s%s HTTP/1.1\r\nHost: %s\r\n", r->path,
                     cl->sid[0] ? "&sid=" : "", cl->sid, cfg->host_header);
    } else {
        cl->down_ack = cl->received;
        n = snprintf(head, sizeof head,
                     "GET /.duplex/%s/down?ack=%llu&mode=%s HTTP/1.1\r\nHost: %s\r\n", cl->sid,
                     (unsigned long long)cl->received,
                     cfg->transport == BT_STREAM ? "stream" : "poll", cfg->host_header);
        cl->ack_sent = cl->received;
    }
    if (n < 0 || (size_t)n >= sizeof head) {
        client_end(cl, "request too long");
        return;
    }
    (void)hc_request(r, &cl->down, head, n, NULL, 0);
}

/* ---- receiving ------------------------------------------------------------ */

static void opened(hclient *cl) {
    hrun *r = cl->r;
    cl->state = CL_OPEN;
    if (!cl->counted) {
        cl->counted = 1;
        r->pending--;
        r->resolved++;
    }
}

/* A whole message arrived at `now`. */
static void got_message(hclient *cl, uint64_t len, uint64_t now) {
    hrun *r = cl->r;
    const dx_bench_cfg *cfg = r->cfg;
    if (len != (uint64_t)cfg->size) error_at(r, "a message came back with the wrong length");
    uint64_t sent = 0;
    dx_fifo_pop(&cl->sent, &sent);
    if (cl->inflight) cl->inflight--;
    r->messages++;
    r->bytes += len;
    if (r->measuring && sent && sent <= now) dx_hist_record(&r->hist, now - sent);
    if (cfg->mode == BM_ECHO && !r->stopping) {
        cl->refill++;
        mark_dirty(cl);
    }
}

/* The server's close frame: answer it (unless we started), then ack it. */
static void server_closed(hclient *cl) {
    cl->close_recv = 1;
    if (!cl->ours) cl->r->closes++;
    if (!cl->close_sent) {
        static const uint8_t bye[2] = {0x03, 0xe8}; /* 1000 */
        cl->close_sent = 1;
        (void)queue_frame(cl, DX_OP_CLOSE, bye, 2);
    }
    cl->state = CL_CLOSING;
    mark_dirty(cl);
}

/* Down bytes of a duplex session: server frames, unmasked. */
static void feed_frames(hclient *cl, uint8_t *buf, size_t len, uint64_t now) {
    if (cl->received == cl->ack_sent) cl->t_owed = now;
    cl->received += len;
    while (len > 0 && cl->state != CL_DONE) {
        dx_frame_chunk ch;
        int64_t k = dx_frame_parse(&cl->parser, buf, len, &ch);
        if (k < 0) {
            client_end(cl, "protocol error from the server");
            return;
        }
        buf += k;
        len -= (size_t)k;
        if (!ch.present) continue;
        const dx_frame_header *h = ch.hdr;
        if (h->opcode >= 8) {
            if (!ch.last || cl->close_recv) continue; /* only a control frame's end matters */
            /* A ping split over two down requests goes unanswered: the
             * server's heartbeat takes any request as a sign of life. */
            if (h->opcode == DX_OP_PING && !cl->close_sent && ch.first) {
                if (queue_frame(cl, DX_OP_PONG, ch.data, ch.len) < 0) return;
            } else if (h->opcode == DX_OP_CLOSE) {
                server_closed(cl);
            }
            continue;
        }
        if (ch.first && ch.msg_first) cl->msg_len = 0;
        cl->msg_len += ch.len;
        if (ch.last && h->fin && !cl->close_recv) got_message(cl, cl->msg_len, now);
    }
    if (cl->received - cl->ack_sent >= ACK_BYTES) mark_dirty(cl);
}

/* Down bytes [off, off + len) of a poll's or a POST's answer. The two
 * can cross (a POST answered after a poll, read first), so bytes already
 * parsed are skipped, and an answer from past what was parsed is dropped:
 * the answer in flight before it ends where it starts, and the next poll
 * (its ack what was parsed) has the server send the rest again. */
static void feed_at(hclient *cl, uint64_t off, uint8_t *buf, size_t len, uint64_t now) {
    if (off > cl->received || off + len <= cl->received) return;
    size_t skip = (size_t)(cl->received - off);
    feed_frames(cl, buf + skip, len - skip, now);
}

/* A down body of Engine.IO packets, separated by \x1e. */
static void feed_packets(hclient *cl, const char *p, size_t len, uint64_t now) {
    while (len > 0 && cl->state != CL_DONE) {
        const char *sep = memchr(p, 0x1e, len);
        size_t n = sep ? (size_t)(sep - p) : len;
        if (n >= EIO_PREFIX_LEN + 2 && !memcmp(p, EIO_PREFIX, EIO_PREFIX_LEN)) {
            if (memcmp(p + n - 2, "\"]", 2)) error_at(cl->r, "a bad event came back");
            if (cl->state == CL_OPEN || cl->state == CL_CLOSING)
                got_message(cl, n - EIO_PREFIX_LEN - 2, now);
        } else if (n >= 2 && p[0] == '4' && p[1] == '0') {
            if (cl->state == CL_OPENING) opened(cl); /* the namespace is joined */
        } else if (n == 1 && p[0] == '2') {
            static const uint8_t pong = '3';
            if (queue_packet(cl, "", 0, &pong, 1, "", 0) < 0) return;
        } else if (n == 1 && p[0] == '1') {
            cl->close_recv = 1;
        } else if (n >= 2 && p[0] == '4' && (p[1] == '1' || p[1] == '4')) {
            cl->close_recv = 1; /* out of the namespace (41), or refused (44) */
        }
        if (!sep) break;
        p = sep + 1;
        len -= n + 1;
    }
    if (cl->close_recv && !cl->ours) client_end(cl, NULL);
}

/* The complete lines of an event stream's body so far: each `data:` line
 * holds base64 of the next down bytes; comments (":") keep it alive. */
static void feed_sse(hclient *cl, hconn *hc, uint64_t now) {
    hrun *r = cl->r;
    size_t at = hc->head;
    while (cl->state != CL_DONE) {
        char *nl = memchr(hc->in + at, '\n', hc->ilen - at);
        if (!nl) break;
        char *line = hc->in + at;
        size_t n = (size_t)(nl - line);
        at += n + 1;
        if (n < 5 || memcmp(line, "data:", 5)) continue; /* blank, comment */
        line += 5;
        n -= 5;
        if (n && *line == ' ') line++, n--;
        if (reserve(&r->dec, &r->deccap, n / 4 * 3 + 3) < 0) {
            client_end(cl, "out of memory");
            return;
        }
        long k = dx_cli_b64_decode(line, n, r->dec);
        if (k < 0) {
            client_end(cl, "bad base64 in the event stream");
            return;
        }
        feed_frames(cl, r->dec, (size_t)k, now);
    }
    if (cl->state == CL_DONE) return;
    memmove(hc->in + hc->head, hc->in + at, hc->ilen - at);
    hc->ilen -= at - hc->head;
}

/* `"sid":"...."` from an open's or a handshake's JSON. */
static int find_sid(const char *body, size_t len, char *sid, size_t cap) {
    static const char key[] = "\"sid\":\"";
    for (size_t i = 0; i + sizeof key - 1 < len; i++) {
        if (memcmp(body + i, key, sizeof key - 1)) continue;
        const char *v = body + i + sizeof key - 1;
        const char *end = memchr(v, '"', len - (size_t)(v - body));
        if (!end || end == v || (size_t)(end - v) >= cap) return -1;
        for (const char *p = v; p < end; p++)
            if (*p <= ' ' || *p >= 0x7f || *p == '&' || *p == '%') return -1;
        memcpy(sid, v, (size_t)(end - v));
        sid[end - v] = 0;
        return 0;
    }
    return -1;
}

/* A complete answer (`body`, `blen` bytes) on `hc`. */
static void answered(hclient *cl, hconn *hc, char *body, size_t blen, uint64_t now) {
    hrun *r = cl->r;
    r->requests++;
    if (hc->kind == K_UP) {
        int eio = is_eio(r);
        if (cl->state == CL_OPENING && !eio) { /* the open */
            if (hc->status != 200 || find_sid(body, blen, cl->sid, sizeof cl->sid) < 0) {
                client_end(cl, hc->status == 200 ? "bad session answer" : "session refused");
                return;
            }
            opened(cl);
            down_next(cl);
            mark_dirty(cl);
            return;
        }
        int carried = !eio && hc->status == 200 && hc->has_off && r->cfg->transport == BT_POLL;
        if (eio ? hc->status != 200 : hc->status != 204 && !carried) {
            client_end(cl, hc->status == 404 ? "session expired" : "up request refused");
            return;
        }
        if (!eio && (!hc->has_value || hc->value != cl->up_seq)) {
            client_end(cl, "up: the server's X-Duplex-Seq is not ours");
            return;
        }
        cl->posting = 0;
        if (carried) {
            feed_at(cl, hc->off, (uint8_t *)body, blen, now);
            if (cl->state == CL_DONE) return;
        }
        mark_dirty(cl);
        return;
    }
    /* down */
    if (is_eio(r)) {
        if (hc->status != 200) {
            client_end(cl, "poll refused");
            return;
        }
        if (!cl->sid[0]) { /* the handshake: 0{"sid":...}, then join "/" */
            if (blen < 1 || body[0] != '0' || find_sid(body, blen, cl->sid, sizeof cl->sid) < 0) {
                client_end(cl, "bad Engine.IO handshake");
                return;
            }
            static const uint8_t join[2] = {'4', '0'};
            (void)queue_packet(cl, "", 0, join, 2, "", 0);
        } else {
            feed_packets(cl, body, blen, now);
        }
    } else if (hc->status == 404 && cl->close_recv) {
        return; /* a poll held while POSTs carried the close: the session is done */
    } else if (hc->status != 200) {
        client_end(cl, hc->status == 404 ? "session expired" : "down request refused");
        return;
    } else if (!hc->sse) {
        feed_at(cl, hc->value, (uint8_t *)body, blen, now);
    }
    if (cl->state == CL_DONE) return;
    if (cl->state == CL_CLOSING && (cl->close_recv || is_eio(r))) {
        mark_dirty(cl); /* the ack of the server's close frame; no more polls */
        return;
    }
    down_next(cl);
}

/* 1 with the header's number in *out, 0 when the header is absent. */
/* Parses an answer's head in hc->in. 1 when parsed, 0 for more, -1 bad. */
static int parse_head(hrun *r, hclient *cl, hconn *hc) {
    dx_http_header hdrs[32];
    dx_http_response res = {.headers = hdrs, .num_headers = 32};
    int h = dx_http_parse_response(hc->in, hc->ilen, HEAD_MAX, &res);
    if (h == 0) return 0;
    if (h < 0) return -1;
    hc->head = (size_t)h;
    hc->status = res.status;
    hc->keep = res.minor_version == 1;
    const dx_http_header *x = dx_http_find(hdrs, res.num_headers, "Connection");
    if (x && dx_http_has_token(x->value, x->value_len, "close")) hc->keep = 0;
    hc->has_value = dx_cli_header_u64(
        hdrs, res.num_headers, hc->kind == K_UP ? "X-Duplex-Seq" : "X-Duplex-Offset", &hc->value);
    hc->has_off =
        hc->kind == K_UP && dx_cli_header_u64(hdrs, res.num_headers, "X-Duplex-Offset", &hc->off);
    x = dx_http_find(hdrs, res.num_headers, "Content-Length");
    hc->to_close = 0;
    if (res.status == 204 || res.status == 304 || res.status < 200) {
        hc->clen = 0;
    } else if (x) {
        char v[32];
        size_t k = x->value_len < sizeof v - 1 ? x->value_len : sizeof v - 1;
        memcpy(v, x->value, k);
        v[k] = 0;
        hc->clen = strtoull(v, NULL, 10);
        if (hc->clen > IN_MAX - HEAD_MAX) return -1;
    } else if (dx_http_find(hdrs, res.num_headers, "Transfer-Encoding")) {
        return -1; /* neither server sends chunked answers */
    } else {
        hc->to_close = 1;
        hc->keep = 0;
    }
    x = dx_http_find(hdrs, res.num_headers, "Content-Type");
    hc->sse = hc->kind == K_DOWN && !is_eio(r) && res.status == 200 && x && x->value_len >= 17 &&
              !memcmp(x->value, "text/event-stream", 17);
    if (hc->sse && (!hc->has_value || hc->value != cl->down_ack)) return -1;
    /* A poll's answer starts at its ack, or later when a POST's answer
     * carried the bytes between (feed_at). */
    if (!hc->sse && hc->kind == K_DOWN && !is_eio(r) && res.status == 200 &&
        (!hc->has_value || hc->value < cl->down_ack))
        return -1;
    return 1;
}

/* The answer ended (`eof`: with the connection) or may have. */
static void hc_progress(hrun *r, hconn *hc, int eof, uint64_t now) {
    hclient *cl = hc->cl;
    if (!hc->busy) {
        /* The server closed a kept connection between requests: the next
         * request connects again. Bytes without a request are an error. */
        if (hc->ilen) client_end(cl, "bytes without a request");
        hc_drop(hc);
        return;
    }
    if (!hc->head) {
        int rc = parse_head(r, cl, hc);
        if (rc < 0) {
            client_end(cl, "bad HTTP answer");
            return;
        }
        if (rc == 0) {
            if (eof) client_end(cl, "the server closed before answering");
            return;
        }
    }
    if (hc->sse) {
        feed_sse(cl, hc, now);
        if (cl->state == CL_DONE || !eof) return;
        /* The stream ended (1 MiB or 60 s): the next one from here. */
        hc->busy = 0;
        hc_drop(hc);
        r->requests++;
        if (cl->close_recv) return;
        if (cl->state == CL_OPEN || cl->state == CL_CLOSING) down_next(cl);
        return;
    }
    size_t have = hc->ilen - hc->head;
    if (hc->to_close ? !eof : have < hc->clen) {
        if (eof) client_end(cl, "the server closed in the middle of an answer");
        return;
    }
    size_t blen = hc->to_close ? have : (size_t)hc->clen;
    if (have > blen) {
        client_end(cl, "bytes after the answer");
        return;
    }
    hc->busy = 0;
    int keep = hc->keep && !eof;
    char *body = hc->in + hc->head;
    /* The answer's bytes stay put while it is handled: the next request on
     * this connection resets the buffer only once it is sent. */
    if (!keep) {
        close(hc->fd);
        hc->fd = -1;
        hc->connecting = hc->want_out = 0;
    }
    answered(cl, hc, body, blen, now);
    /* No new request on it: the old answer must not look like bytes
     * without one. */
    if (!hc->busy) hc->ilen = hc->head = 0;
}

static void hc_read(hrun *r, hconn *hc) {
    int eof = 0;
    for (;;) {
        if (reserve(&hc->in, &hc->icap, hc->ilen + 65536) < 0) {
            client_end(hc->cl, "out of memory");
            return;
        }
        ssize_t n = recv(hc->fd, hc->in + hc->ilen, hc->icap - hc->ilen, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n < 0) {
            client_end(hc->cl, "read failed (reset?)");
            return;
        }
        if (n == 0) {
            eof = 1;
            break;
        }
        hc->ilen += (size_t)n;
        if (hc->ilen > IN_MAX) {
            client_end(hc->cl, "answer too large");
            return;
        }
        if ((size_t)n < hc->icap - hc->ilen + (size_t)n) break; /* a short read: empty */
    }
    hc_progress(r, hc, eof, now_ns());
}

static void on_event(hrun *r, hconn *hc, uint32_t ev) {
    if (hc->fd < 0 || hc->cl->state == CL_DONE) return;
    if (hc->connecting) {
        int err = 0;
        socklen_t el = sizeof err;
        if (getsockopt(hc->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
            client_end(hc->cl, err == ECONNREFUSED ? "connection refused" : "connect failed");
            return;
        }
        hc->connecting = 0;
        hc->want_out = 0;
        ep_set(r, hc, EPOLL_CTL_MOD, EPOLLIN);
        hc_flush(r, hc);
        return;
    }
    if (ev & EPOLLOUT) hc_flush(r, hc);
    if (hc->fd >= 0 && (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))) hc_read(r, hc);
}

/* ---- the loop ------------------------------------------------------------- */

static void start_client(hrun *r, hclient *cl) {
    const dx_bench_cfg *cfg = r->cfg;
    r->pending++;
    cl->state = CL_OPENING;
    if (is_eio(r)) {
        down_next(cl); /* the handshake */
        return;
    }
    char head[1400];
    int n = snprintf(head, sizeof head, "POST %s HTTP/1.1\r\nHost: %s\r\nX-Duplex-Session: 1\r\n",
                     r->path, cfg->host_header);
    if (n < 0 || (size_t)n >= sizeof head) {
        client_end(cl, "request too long");
        return;
    }
    (void)hc_request(r, &cl->up, head, n, "", 0);
}

/* Sends every message whose time has come, each stamped with the time it
 * was due rather than the time it left (bench_load.c's pace). */
static void pace(hrun *r) {
    uint64_t now = now_ns();
    for (;;) {
        uint64_t due = r->rate_t0 + (uint64_t)((double)r->rate_j * r->rate_ns);
        if (due > now) {
            r->next_due = due;
            break;
        }
        r->rate_j++;
        for (int tries = 0; tries < r->n; tries++) {
            hclient *cl = &r->cl[r->rr++ % (uint64_t)r->n];
            if (cl->state == CL_OPEN) {
                (void)send_msg(cl, due);
                break;
            }
        }
    }
}

/* Refills (closed loop) and posts, once per turn of the loop. */
static void flush_dirty(hrun *r) {
    uint64_t now = 0;
    for (int i = 0; i < r->ndirty; i++) {
        hclient *cl = r->dirty[i];
        if (cl->refill && !now) now = now_ns();
        while (cl->refill > 0 && cl->state == CL_OPEN) {
            cl->refill--;
            if (send_msg(cl, now) < 0) break;
        }
        cl->dirty = 0; /* kept set during the sends, so none listed it twice */
        if (cl->state != CL_DONE) pump(cl, now ? now : now_ns());
    }
    r->ndirty = 0;
}

static void poll_once(hrun *r, int timeout_ms) {
    struct epoll_event evs[256];
    int n;
    if (r->next_due) {
        uint64_t now = now_ns(), wait = (uint64_t)timeout_ms * 1000000u;
        if (r->next_due <= now)
            wait = 0;
        else if (r->next_due - now < wait)
            wait = r->next_due - now;
        struct timespec ts = {(time_t)(wait / 1000000000u), (long)(wait % 1000000000u)};
        n = r->no_pwait2 ? -1 : epoll_pwait2(r->epfd, evs, 256, &ts, NULL);
        if (n < 0 && (r->no_pwait2 || errno == ENOSYS)) {
            r->no_pwait2 = 1;
            n = epoll_wait(r->epfd, evs, 256, (int)((wait + 999999) / 1000000));
        }
    } else {
        n = epoll_wait(r->epfd, evs, 256, timeout_ms);
    }
    for (int i = 0; i < n; i++)
        on_event(r, evs[i].data.ptr, evs[i].events);
    if (r->next_due && now_ns() >= r->next_due) pace(r);
    flush_dirty(r);
}

/* Stream mode's ack timer: a client that got bytes but will post nothing
 * soon acks them within a second, as http_socket.js does. */
static void ack_sweep(hrun *r, uint64_t now) {
    if (r->cfg->transport != BT_STREAM) return;
    for (int i = 0; i < r->n; i++) {
        hclient *cl = &r->cl[i];
        if (cl->state == CL_OPEN && cl->received > cl->ack_sent && now - cl->t_owed >= ACK_NS)
            mark_dirty(cl);
    }
}

/* Ends the run as a client should: a close frame (1000) from every open
 * session, then a short wait for the server's and the ack of it, so the
 * server drops the sessions at once. Socket.IO: leave the namespace and
 * close the engine ("41", "1"). */
static void say_goodbye(hrun *r) {
    r->stopping = 1;
    r->next_due = 0;
    for (int i = 0; i < r->n; i++) {
        hclient *cl = &r->cl[i];
        if (cl->state != CL_OPEN) continue;
        cl->ours = 1;
        cl->state = CL_CLOSING;
        if (is_eio(r)) {
            static const uint8_t bye[4] = {'4', '1', 0x1e, '1'};
            (void)queue_packet(cl, "", 0, bye, 4, "", 0);
        } else if (!cl->close_sent) {
            static const uint8_t bye[2] = {0x03, 0xe8};
            cl->close_sent = 1;
            (void)queue_frame(cl, DX_OP_CLOSE, bye, 2);
        }
    }
    flush_dirty(r);
    uint64_t deadline = now_ns() + GOODBYE_NS;
    for (;;) {
        int open = 0;
        for (int i = 0; i < r->n; i++) {
            hclient *cl = &r->cl[i];
            if (cl->state != CL_CLOSING) continue;
            int done = is_eio(r) ? !cl->posting && !cl->qlen
                                 : cl->close_recv && !cl->posting && !cl->qlen &&
                                       cl->ack_sent >= cl->received;
            if (done) {
                cl->state = CL_DONE;
                hc_drop(&cl->up);
                hc_drop(&cl->down);
            } else
                open++;
        }
        if (!open || now_ns() >= deadline) break;
        poll_once(r, 20);
    }
}

/* ---- the run ---------------------------------------------------------------- */

static double cpu_self(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

typedef struct totals {
    uint64_t messages, sent, bytes, overflows, requests, errors, closes;
} totals;

static totals snap(const hrun *r) {
    return (totals){r->messages, r->sent,   r->bytes, r->overflows,
                    r->requests, r->errors, r->closes};
}

/* Runs the loop until `until` (ns), with the progress line when asked. */
static void run_until(hrun *r, uint64_t until, uint64_t t0, totals base) {
    uint64_t next_tick = now_ns() + 100000000u, next_progress = t0 + 1000000000u;
    for (uint64_t now = now_ns(); now < until; now = now_ns()) {
        uint64_t left = (until - now) / 1000000u;
        poll_once(r, left < 50 ? (int)left + 1 : 50);
        now = now_ns();
        if (now >= next_tick) {
            ack_sweep(r, now);
            next_tick = now + 100000000u;
        }
        if (r->cfg->progress && r->measuring && now >= next_progress) {
            double el = (double)(now - t0) * 1e-9;
            fprintf(stderr, "\r  %4.0f/%.0f s  %12.0f msg/s  errors %llu  closes %llu   ", el,
                    r->cfg->duration, (double)(r->messages - base.messages) / el,
                    (unsigned long long)r->errors, (unsigned long long)r->closes);
            next_progress += 1000000000u;
        }
    }
}

int dx_bench_http_run(const dx_bench_cfg *cfg, dx_bench_result *res) {
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    hrun *r = calloc(1, sizeof *r);
    uint8_t *payload = malloc((size_t)cfg->size + 1);
    if (r) {
        r->cl = calloc((size_t)cfg->connections, sizeof *r->cl);
        r->dirty = calloc((size_t)cfg->connections + 1, sizeof *r->dirty);
    }
    if (!r || !payload || !r->cl || !r->dirty) {
        fprintf(stderr, "duplex bench: out of memory\n");
        if (r) {
            free(r->cl);
            free(r->dirty);
        }
        free(r);
        free(payload);
        return -1;
    }
    for (int i = 0; i < cfg->size; i++)
        payload[i] = (uint8_t)('a' + i % 26);
    r->cfg = cfg;
    r->payload = payload;
    r->n = cfg->connections;
    r->rng = 0x9E3779B97F4A7C15ull ^ now_ns();
    r->rate_ns = cfg->rate > 0 ? 1e9 / cfg->rate : 0;
    if (cfg->transport == BT_EIO) {
        /* Socket.IO's path: /socket.io/ unless the URL names another. */
        const char *t = cfg->target;
        size_t n = strcspn(t, "?");
        if (n <= 1)
            snprintf(r->path, sizeof r->path, "/socket.io/");
        else
            snprintf(r->path, sizeof r->path, "%.*s%s", (int)n, t, t[n - 1] == '/' ? "" : "/");
    } else {
        snprintf(r->path, sizeof r->path, "%s", cfg->target);
    }
    r->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (r->epfd < 0) {
        fprintf(stderr, "duplex bench: epoll_create1 failed\n");
        free(r->cl);
        free(r->dirty);
        free(r);
        free(payload);
        return -1;
    }
    {
        /* Let the masking code pick its SIMD variant up front. */
        uint8_t k[4] = {1, 2, 3, 4}, b[8] = {0};
        dx_mask_copy(b, b, sizeof b, k, 0);
    }
    for (int i = 0; i < r->n; i++) {
        hclient *cl = &r->cl[i];
        cl->r = r;
        cl->up = (hconn){.cl = cl, .fd = -1, .kind = K_UP};
        cl->down = (hconn){.cl = cl, .fd = -1, .kind = K_DOWN};
        dx_frame_parser_init(&cl->parser, DX_ROLE_CLIENT, 0);
    }
    memset(res, 0, sizeof *res);
    res->server_cpu_s = -1;
    res->rss_fresh_kib = res->rss_before_kib = res->rss_after_kib = -1;

    /* Setup: open every session (or socket), a few at a time. */
    uint64_t deadline = now_ns() + 30000000000ull;
    while (r->resolved < r->n && now_ns() < deadline) {
        while (r->next_open < r->n && r->pending < MAX_PENDING_OPENS)
            start_client(r, &r->cl[r->next_open++]);
        poll_once(r, 50);
    }
    for (int i = 0; i < r->n; i++) {
        if (r->cl[i].state == CL_OPEN)
            res->connected++;
        else if (r->cl[i].state != CL_DONE)
            client_end(&r->cl[i], "not open after 30 s");
    }

    uint64_t t_go = now_ns();
    if (cfg->mode == BM_ECHO) {
        for (int i = 0; i < r->n; i++)
            for (int k = 0; k < cfg->inflight && r->cl[i].state == CL_OPEN; k++)
                (void)send_msg(&r->cl[i], t_go);
    } else {
        r->rate_t0 = t_go;
        pace(r);
    }
    flush_dirty(r);
    totals none = {0};
    run_until(r, t_go + (uint64_t)(cfg->warmup * 1e9), t_go, none);

    totals base = snap(r);
    double cpu0 = cpu_self();
    double scpu0 = cfg->server_pid ? dx_bench_proc_cpu(cfg->server_pid) : -1;
    uint64_t t0 = now_ns();
    r->measuring = 1;
    run_until(r, t0 + (uint64_t)(cfg->duration * 1e9), t0, base);
    totals end = snap(r);
    uint64_t t1 = now_ns();
    double cpu1 = cpu_self();
    double scpu1 = cfg->server_pid ? dx_bench_proc_cpu(cfg->server_pid) : -1;
    r->measuring = 0;
    if (cfg->progress) fprintf(stderr, "\n");
    say_goodbye(r);

    res->hist = calloc(1, sizeof *res->hist);
    if (res->hist) *res->hist = r->hist;
    res->seconds = (double)(t1 - t0) * 1e-9;
    res->messages = end.messages - base.messages;
    res->sent = end.sent - base.sent;
    res->bytes = end.bytes - base.bytes;
    res->requests = end.requests - base.requests;
    res->overflows = end.overflows - base.overflows;
    res->errors = end.errors; /* as bench_load.c: the goodbye's are not counted */
    res->closes = end.closes;
    res->gen_cpu_s = cpu1 - cpu0;
    if (scpu0 >= 0 && scpu1 >= 0) res->server_cpu_s = scpu1 - scpu0;
    if (r->first_error) {
        snprintf(res->first_error_text, sizeof res->first_error_text, "%s", r->first_error);
        res->first_error = res->first_error_text;
    }

    for (int i = 0; i < r->n; i++) {
        hclient *cl = &r->cl[i];
        hc_drop(&cl->up);
        hc_drop(&cl->down);
        free(cl->up.out);
        free(cl->up.in);
        free(cl->down.out);
        free(cl->down.in);
        free(cl->q);
        dx_fifo_free(&cl->sent);
    }
    close(r->epfd);
    free(r->dec);
    free(r->cl);
    free(r->dirty);
    free(r);
    free(payload);
    return 0;
}

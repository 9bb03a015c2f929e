/* duplex bench: the load generator's engine (see bench_load.h).
 *
 * Each generator thread owns an epoll set and its share of the
 * connections. A run has three steps that every thread passes together
 * (a barrier): setup (connect and upgrade every connection; in idle mode
 * also echo one message on each), the load (until the main thread says
 * stop), and teardown. The main thread keeps the clock: it opens the
 * measured window after the warm-up and closes it after the duration,
 * reading the threads' counters at both ends, so connection setup and
 * warm-up are never counted. */
#include "cli/bench_load.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <duplex/conn.h>
#include <duplex/deflate.h>
#include <duplex/frame.h>
#include <duplex/handshake.h>
#include <duplex/http.h>
#include <duplex/loop.h> /* DX_IO_READ, DX_IO_WRITE: what TLS waits for */
#include <duplex/mask.h>
#include <duplex/sock.h>
#include <duplex/tls.h>

#include "cli/bench_fifo.h"

#define RBUF_SIZE (256 * 1024)
#define MAX_PENDING_CONNECTS 256 /* per thread, so the listen backlog never overflows */
#define HS_MAX 4096              /* largest 101 answer accepted */
#define STAMP_LEN 16             /* broadcast: hex send time at the start of the payload */

enum { CS_IDLE, CS_CONNECTING, CS_TLS, CS_UPGRADING, CS_OPEN, CS_CLOSING, CS_DONE };

typedef struct bconn {
    int fd;
    uint8_t state;
    uint8_t publisher; /* broadcast: this one publishes */
    uint8_t want_out;  /* EPOLLOUT is registered */
    uint8_t dirty;     /* in the thread's flush list */
    uint8_t echoed;    /* idle mode: its one echo came back */
    uint8_t et;        /* open on plain TCP: registered edge-triggered */
    uint8_t stamp_have;
    uint32_t inflight; /* sent and not yet echoed */
    uint32_t refill;   /* echo mode: messages to send after this read */
    uint64_t t_start;  /* handshakes: when the connect began */
    uint64_t raw_have; /* raw mode: bytes of the current echo received */
    uint64_t msg_len;  /* bytes of the message being received */
    dx_frame_parser parser;
    uint8_t *obuf;
    uint32_t olen, ooff, ocap;
    dx_fifo sent; /* send (or scheduled) times of the messages in flight */
    char *hs; /* the 101 answer as it arrives */
    uint32_t hs_len;
    char stamp[STAMP_LEN];
    char key[DX_KEY_LEN + 1];
    /* With --deflate the frames go through the library's sans-I/O
     * connection, which compresses and decompresses (deflate.h). */
    dx_conn *dc;
    uint8_t dc_failed; /* it closed with an error code */
    dx_tls *tls;       /* wss:// */
    unsigned tls_want; /* what TLS waits for (DX_IO_READ/WRITE) after DX_EBUSY */
} bconn;

typedef struct run run;

typedef struct bthread {
    run *r;
    int id;
    pthread_t tid;
    int epfd;
    bconn *conns;
    int n;
    int next_connect; /* next connection to start during setup */
    int pending;      /* connects and upgrades in progress */
    int resolved;     /* setup: connections open (or echoed) or failed */
    bconn **dirty;
    int ndirty;
    bconn **again; /* handshakes: to connect again after this batch */
    int nagain;
    _Atomic int open_at_start;
    uint8_t *rbuf;
    uint8_t *pbuf; /* broadcast: payload with the stamp */
    uint64_t rng;
    uint64_t rate_j, rate_t0;
    uint64_t next_due; /* rate modes: when pace() must run next; 0 if never */
    int no_pwait2;     /* the kernel has no epoll_pwait2 (before 5.11) */
    double rate_ns;    /* ns between two sends of this thread */
    uint64_t rr;
    dx_hist hist;
    _Atomic uint64_t messages, sent, bytes, errors, closes, overflows;
    _Atomic(const char *) first_error;
    /* Its text: a reason may live in thread-local storage (the TLS
     * library's), gone once the thread ends. */
    char first_error_buf[200];
} bthread;

struct run {
    const dx_bench_cfg *cfg;
    bthread *t;
    pthread_barrier_t setup_done;
    _Atomic int measuring;
    _Atomic int stop;
    uint8_t *payload;
    struct sockaddr_in src[250];
    int nsrc;
    dx_tls_ctx *tls_ctx; /* wss:// */
    uint8_t opcode;
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Every counter has one writer, its own thread, and the main thread only
 * reads: a relaxed load and store (plain moves on x86) is enough, where a
 * fetch-add would cost a locked instruction per message on the hot path. */
#define ADD(field, v)                                                                              \
    atomic_store_explicit(&(field), atomic_load_explicit(&(field), memory_order_relaxed) + (v),    \
                          memory_order_relaxed)
#define GET(field) atomic_load_explicit(&(field), memory_order_relaxed)

/* Masking keys from xorshift64*: RFC 6455 wants keys a server cannot
 * predict, which matters against proxies, not in a benchmark; a CSPRNG
 * call per frame would make the generator the bottleneck. */
static uint32_t rng_next(bthread *t) {
    uint64_t x = t->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    t->rng = x;
    return (uint32_t)((x * 0x2545F4914F6CDD1DULL) >> 32);
}

static void error_at(bthread *t, const char *why) {
    ADD(t->errors, 1);
    if (GET(t->first_error)) return;
    snprintf(t->first_error_buf, sizeof t->first_error_buf, "%s", why);
    atomic_store(&t->first_error, t->first_error_buf);
}

static void ep_set(bthread *t, bconn *c, int op, uint32_t events) {
    struct epoll_event ev = {.events = events | (c->et ? EPOLLET : 0), .data.ptr = c};
    (void)epoll_ctl(t->epfd, op, c->fd, &ev);
}

static void start_connect(bthread *t, bconn *c);
static void tls_step(bthread *t, bconn *c);
static void send_upgrade(bthread *t, bconn *c);

/* The connection is over: by the server (a close frame or EOF, `why` is
 * NULL) or by an error. In handshake mode the slot connects again. */
static void conn_end(bthread *t, bconn *c, const char *why) {
    const dx_bench_cfg *cfg = t->r->cfg;
    /* A close we started (a handshake cycle, or the end of the run) is not
     * a close by the server. */
    int ours = c->state == CS_CLOSING && !why;
    int cycle = ours && cfg->mode == BM_HANDSHAKES && !GET(t->r->stop);
    if (!ours) {
        if (why)
            error_at(t, why);
        else
            ADD(t->closes, 1);
    }
    if (c->state == CS_CONNECTING || c->state == CS_TLS || c->state == CS_UPGRADING) {
        t->pending--;
        t->resolved++;
    } else if (c->state == CS_OPEN && cfg->mode == BM_IDLE && !c->echoed) {
        t->resolved++;
    }
    dx_tls_free(c->tls);
    c->tls = NULL;
    if (c->fd >= 0) close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
    c->state = CS_DONE;
    c->olen = c->ooff = 0;
    dx_fifo_clear(&c->sent);
    c->inflight = 0;
    free(c->hs);
    c->hs = NULL;
    dx_conn_free(c->dc);
    c->dc = NULL;
    /* The next cycle starts after this batch of events, which may still
     * hold one for the old socket. */
    if (cycle) t->again[t->nagain++] = c;
}

static void mark_dirty(bthread *t, bconn *c) {
    if (c->dirty) return;
    c->dirty = 1;
    t->dirty[t->ndirty++] = c;
}

/* Writes what is queued; watches for writability while some is left. A TLS
 * write that took part or none is retried from the same bytes (tls.h asks
 * it), which the output buffer, written from its head, does. */
static void flush(bthread *t, bconn *c) {
    c->tls_want = 0;
    while (c->ooff < c->olen) {
        struct iovec iov = {c->obuf + c->ooff, c->olen - c->ooff};
        int64_t w = dx_sock_writev(c->fd, c->tls, &iov, 1, &c->tls_want);
        if (w == DX_EBUSY) break;
        if (w < 0) {
            conn_end(t, c, "write failed");
            return;
        }
        c->ooff += (uint32_t)w;
    }
    if (c->ooff == c->olen) c->ooff = c->olen = 0;
    /* TLS may need the socket writable to go on reading, too. */
    int want = c->olen > 0 || (c->tls_want & DX_IO_WRITE);
    if (want != c->want_out) {
        c->want_out = (uint8_t)want;
        ep_set(t, c, EPOLL_CTL_MOD, EPOLLIN | (want ? EPOLLOUT : 0));
    }
}

static void flush_dirty(bthread *t) {
    for (int i = 0; i < t->ndirty; i++) {
        bconn *c = t->dirty[i];
        c->dirty = 0;
        if (c->state == CS_OPEN || c->state == CS_CLOSING) flush(t, c);
    }
    t->ndirty = 0;
}

static int obuf_reserve(bconn *c, size_t need) {
    if (c->olen + need <= c->ocap) return 0;
    size_t cap = c->ocap ? c->ocap : 256;
    while (cap < c->olen + need)
        cap *= 2;
    uint8_t *p = realloc(c->obuf, cap);
    if (!p) return -1;
    c->obuf = p;
    c->ocap = (uint32_t)cap;
    return 0;
}

/* Moves what the deflate connection queued into the output buffer. */
static int drain_dc(bthread *t, bconn *c) {
    for (;;) {
        struct iovec iov[16];
        int n = dx_conn_out_iov(c->dc, iov, 16);
        if (n == 0) return 0;
        size_t total = 0;
        for (int i = 0; i < n; i++) {
            if (obuf_reserve(c, iov[i].iov_len)) {
                conn_end(t, c, "out of memory");
                return -1;
            }
            memcpy(c->obuf + c->olen, iov[i].iov_base, iov[i].iov_len);
            c->olen += (uint32_t)iov[i].iov_len;
            total += iov[i].iov_len;
        }
        dx_conn_out_consume(c->dc, total);
        mark_dirty(t, c);
    }
}

/* Queues one frame (masked, as a client must) with the given payload. */
static int queue_frame(bthread *t, bconn *c, uint8_t op, const uint8_t *data, size_t len) {
    if (c->dc) {
        int rc = op == DX_OP_CLOSE ? dx_conn_close(c->dc, 1000, NULL, 0)
                                   : dx_conn_send(c->dc, (enum dx_opcode)op, data, len);
        if (rc < 0) {
            conn_end(t, c, "could not queue a message");
            return -1;
        }
        return drain_dc(t, c);
    }
    if (obuf_reserve(c, DX_FRAME_MAX_HEADER + len)) {
        conn_end(t, c, "out of memory");
        return -1;
    }
    uint8_t *out = c->obuf + c->olen;
    if (t->r->cfg->raw) {
        memcpy(out, data, len);
        c->olen += (uint32_t)len;
    } else {
        uint32_t k = rng_next(t);
        uint8_t key[4];
        memcpy(key, &k, 4);
        size_t h = dx_frame_write_header(out, 1, 0, op, len, key);
        dx_mask_copy(out + h, data, len, key, 0);
        c->olen += (uint32_t)(h + len);
    }
    mark_dirty(t, c);
    return 0;
}

/* Sends one benchmark message whose latency counts from `t_sched`. */
static int send_msg(bthread *t, bconn *c, uint64_t t_sched) {
    const dx_bench_cfg *cfg = t->r->cfg;
    const uint8_t *payload = t->r->payload;
    if (cfg->mode == BM_BROADCAST) {
        /* The send time travels in the message: subscribers know it. */
        char hex[STAMP_LEN + 1];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)t_sched);
        memcpy(t->pbuf, hex, STAMP_LEN);
        payload = t->pbuf;
    } else {
        int full = dx_fifo_push(&c->sent, t_sched);
        if (full < 0) return -1;
        if (full) {
            ADD(t->overflows, 1);
            return 0;
        }
    }
    c->inflight++;
    ADD(t->sent, 1);
    return queue_frame(t, c, t->r->opcode, payload, (size_t)cfg->size);
}

/* A whole message arrived on `c` at `now`. */
static void got_message(bthread *t, bconn *c, uint64_t len, uint64_t now) {
    const dx_bench_cfg *cfg = t->r->cfg;
    int measuring = GET(t->r->measuring);
    if (len != (uint64_t)cfg->size) error_at(t, "a message came back with the wrong length");
    if (cfg->mode == BM_BROADCAST) {
        if (c->publisher) {
            if (c->inflight) c->inflight--;
            if (cfg->rate == 0) c->refill++;
            return;
        }
        char hex[STAMP_LEN + 1];
        memcpy(hex, c->stamp, STAMP_LEN);
        hex[STAMP_LEN] = 0;
        uint64_t sent = strtoull(hex, NULL, 16);
        ADD(t->messages, 1);
        ADD(t->bytes, len);
        if (measuring && sent && sent <= now) dx_hist_record(&t->hist, now - sent);
        return;
    }
    uint64_t sent = 0;
    dx_fifo_pop(&c->sent, &sent);
    if (c->inflight) c->inflight--;
    ADD(t->messages, 1);
    ADD(t->bytes, len);
    if ((measuring || cfg->mode == BM_IDLE) && sent && sent <= now)
        dx_hist_record(&t->hist, now - sent);
    if (cfg->mode == BM_ECHO) c->refill++;
    if (cfg->mode == BM_IDLE && !c->echoed) {
        c->echoed = 1;
        t->resolved++;
    }
}

/* Received bytes of a raw (plain TCP) connection: every `size` bytes is
 * one echo. */
static void feed_raw(bthread *t, bconn *c, size_t n, uint64_t now) {
    uint64_t size = (uint64_t)t->r->cfg->size;
    c->raw_have += n;
    while (c->raw_have >= size) {
        c->raw_have -= size;
        got_message(t, c, size, now);
    }
}

/* Received bytes of a WebSocket: frames from the server (unmasked). Returns
 * -1 when the connection ended. */
static _Thread_local bthread *dc_thread; /* for the deflate connection's callbacks */
static _Thread_local uint64_t dc_now;

static void dc_message(dx_conn *dc, void *user, enum dx_opcode op, uint8_t *data, size_t len) {
    bconn *c = user;
    size_t k = len < STAMP_LEN ? len : STAMP_LEN;
    memcpy(c->stamp, data, k);
    c->stamp_have = (uint8_t)k;
    got_message(dc_thread, c, len, dc_now);
}

static void dc_close(dx_conn *dc, void *user, uint16_t code, const uint8_t *reason,
                     size_t reason_len, int was_clean) {
    bconn *c = user;
    c->dc_failed = !was_clean && code != DX_CLOSE_ABNORMAL;
}

static const dx_conn_callbacks dc_callbacks = {.on_message = dc_message, .on_close = dc_close};

static int feed_ws(bthread *t, bconn *c, uint8_t *buf, size_t len, uint64_t now) {
    if (c->dc) {
        dc_thread = t;
        dc_now = now;
        (void)dx_conn_recv(c->dc, buf, len); /* failures arrive through on_close */
        if (drain_dc(t, c) < 0) return -1;
        if (dx_conn_state(c->dc) == DX_CLOSED) {
            conn_end(t, c, c->dc_failed ? "protocol error from the server" : NULL);
            return -1;
        }
        return 0;
    }
    while (len > 0) {
        dx_frame_chunk ch;
        int64_t k = dx_frame_parse(&c->parser, buf, len, &ch);
        if (k < 0) {
            conn_end(t, c, "protocol error from the server");
            return -1;
        }
        buf += k;
        len -= (size_t)k;
        if (!ch.present) continue;
        const dx_frame_header *h = ch.hdr;
        if (h->opcode >= 8) {
            if (!ch.last) continue; /* control frames are tiny; only the end matters */
            if (h->opcode == DX_OP_CLOSE) {
                conn_end(t, c, NULL);
                return -1;
            }
            continue; /* pings and pongs: a benchmark does not answer */
        }
        if (ch.first && ch.msg_first) {
            c->msg_len = 0;
            c->stamp_have = 0;
        }
        if (c->stamp_have < STAMP_LEN && ch.len) {
            size_t take = STAMP_LEN - c->stamp_have;
            if (take > ch.len) take = ch.len;
            memcpy(c->stamp + c->stamp_have, ch.data, take);
            c->stamp_have = (uint8_t)(c->stamp_have + take);
        }
        c->msg_len += ch.len;
        if (ch.last && h->fin) got_message(t, c, c->msg_len, now);
    }
    return 0;
}

static void refill(bthread *t, bconn *c) {
    uint64_t now = c->refill ? now_ns() : 0;
    while (c->refill > 0 && c->state == CS_OPEN) {
        c->refill--;
        if (GET(t->r->stop)) continue;
        if (send_msg(t, c, now) < 0) return;
    }
}

static void read_frames(bthread *t, bconn *c) {
    for (;;) {
        int64_t n = dx_sock_read(c->fd, c->tls, t->rbuf, RBUF_SIZE, &c->tls_want);
        if (n == DX_EBUSY) break;
        if (n < 0) {
            conn_end(t, c, "read failed (reset?)");
            return;
        }
        if (n == 0) {
            conn_end(t, c, NULL);
            return;
        }
        uint64_t now = now_ns();
        if (t->r->cfg->raw)
            feed_raw(t, c, (size_t)n, now);
        else if (feed_ws(t, c, t->rbuf, (size_t)n, now) < 0)
            return;
        /* A short read emptied the socket, but TLS returns one record at a
         * time: read on until it would block. */
        if (n < RBUF_SIZE && !c->tls) break;
    }
    if (c->tls && (c->tls_want & DX_IO_WRITE) && !c->want_out) {
        c->want_out = 1; /* TLS needs to write before it can read on */
        ep_set(t, c, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT);
    }
    if (c->refill) refill(t, c);
}

/* ---- connecting ---------------------------------------------------------- */

static void opened(bthread *t, bconn *c, uint64_t now) {
    const dx_bench_cfg *cfg = t->r->cfg;
    c->state = CS_OPEN;
    t->pending--;
    /* Edge-triggered from here on a plain socket, which is always read
     * until a short read: a level-triggered one is polled again by every
     * wait after it reported, one more tcp_poll per connection and wait on
     * the generator's core, the limit of the echo runs. TLS (a record may
     * wait in the library, not the socket) stays level-triggered. */
    if (!c->tls && cfg->mode != BM_HANDSHAKES) {
        c->et = 1;
        ep_set(t, c, EPOLL_CTL_MOD, EPOLLIN | (c->want_out ? EPOLLOUT : 0));
    }
    switch (cfg->mode) {
    case BM_HANDSHAKES: {
        ADD(t->messages, 1);
        if (GET(t->r->measuring)) dx_hist_record(&t->hist, now - c->t_start);
        /* Close at once, as a client must: our close frame, then wait for
         * the server's close and its end of TCP. */
        static const uint8_t bye[2] = {0x03, 0xe8}; /* 1000 */
        c->state = CS_CLOSING;
        (void)queue_frame(t, c, DX_OP_CLOSE, bye, 2);
        break;
    }
    case BM_IDLE:
        (void)send_msg(t, c, now);
        break;
    default:
        t->resolved++;
        break;
    }
}

static void start_connect(bthread *t, bconn *c) {
    const dx_bench_cfg *cfg = t->r->cfg;
    run *r = t->r;
    c->state = CS_CONNECTING;
    c->t_start = now_ns();
    c->want_out = 0;
    c->tls_want = 0; /* dx_sock_* or into it: nothing from the last cycle */
    c->et = 0;
    c->raw_have = c->msg_len = 0;
    t->pending++;
    int fd = socket(cfg->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->fd = fd;
    if (fd < 0) {
        conn_end(t, c, "socket failed (out of file descriptors?)");
        return;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (r->nsrc > 1) {
        /* Spread over source addresses: each has its own ~28k ports. */
        static _Atomic unsigned next_src;
        unsigned i = atomic_fetch_add_explicit(&next_src, 1, memory_order_relaxed);
        (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&r->src[i % (unsigned)r->nsrc], sizeof r->src[0]) < 0) {
            conn_end(t, c, "bind to a source address failed");
            return;
        }
    }
    if (connect(fd, (const struct sockaddr *)&cfg->addr, cfg->addr_len) < 0 &&
        errno != EINPROGRESS) {
        conn_end(t, c, errno == EADDRNOTAVAIL ? "connect: out of source ports" : "connect failed");
        return;
    }
    dx_frame_parser_init(&c->parser, DX_ROLE_CLIENT, 0);
    ep_set(t, c, EPOLL_CTL_ADD, EPOLLOUT);
}

static void connected(bthread *t, bconn *c) {
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
        conn_end(t, c, err == ECONNREFUSED ? "connection refused" : "connect failed");
        return;
    }
    if (t->r->cfg->raw) {
        ep_set(t, c, EPOLL_CTL_MOD, EPOLLIN);
        opened(t, c, now_ns());
        return;
    }
    if (t->r->tls_ctx) {
        c->tls = dx_tls_new(t->r->tls_ctx, c->fd, 0, t->r->cfg->tls_host);
        if (!c->tls) {
            conn_end(t, c, "out of memory");
            return;
        }
        c->state = CS_TLS;
        tls_step(t, c);
        return;
    }
    send_upgrade(t, c);
}

/* Drives the TLS handshake; sends the upgrade once it is done. */
static void tls_step(bthread *t, bconn *c) {
    const char *why = "TLS handshake failed";
    unsigned want = 0;
    int rc = dx_tls_handshake(c->tls, &want, &why);
    if (rc < 0) {
        conn_end(t, c, why);
        return;
    }
    if (rc == 0) {
        ep_set(t, c, EPOLL_CTL_MOD, (want & DX_IO_WRITE) ? EPOLLOUT : EPOLLIN);
        return;
    }
    send_upgrade(t, c);
}

static void send_upgrade(bthread *t, bconn *c) {
    char req[2048];
    if (dx_handshake_client_key(c->key) < 0) {
        conn_end(t, c, "no random key");
        return;
    }
    const dx_bench_cfg *cfg = t->r->cfg;
    char offer[160]; /* always enough, says deflate.h */
    const char *exts = NULL;
    dx_deflate_config dcfg = {.enable = 1};
    if (cfg->deflate) {
        /* Never fall back to an uncompressed run the report would call
         * deflate. */
        if (dx_deflate_offer(&dcfg, offer, sizeof offer) <= 0) {
            conn_end(t, c, "could not write the permessage-deflate offer");
            return;
        }
        exts = offer;
    }
    int n = dx_handshake_write_request(req, sizeof req, cfg->host_header, cfg->target, c->key, NULL,
                                       exts, NULL, NULL);
    /* A fresh socket's buffer always takes a request this small whole. */
    struct iovec iov = {req, n > 0 ? (size_t)n : 0};
    if (n < 0 || dx_sock_writev(c->fd, c->tls, &iov, 1, &c->tls_want) != n) {
        conn_end(t, c, "could not send the upgrade request");
        return;
    }
    c->state = CS_UPGRADING;
    ep_set(t, c, EPOLL_CTL_MOD, EPOLLIN);
}

static void read_upgrade(bthread *t, bconn *c) {
    if (!c->hs && !(c->hs = malloc(HS_MAX))) {
        conn_end(t, c, "out of memory");
        return;
    }
    int64_t n = dx_sock_read(c->fd, c->tls, c->hs + c->hs_len, HS_MAX - c->hs_len, &c->tls_want);
    if (n == DX_EBUSY) return;
    if (n <= 0) {
        conn_end(t, c, "the server closed during the upgrade");
        return;
    }
    c->hs_len += (uint32_t)n;
    dx_http_header hdrs[32];
    dx_http_response res = {.headers = hdrs, .num_headers = 32};
    int head = dx_http_parse_response(c->hs, c->hs_len, HS_MAX, &res);
    if (head == 0) return;
    const char *why = "bad upgrade answer";
    const char *ext = NULL;
    size_t ext_len = 0;
    int deflate = t->r->cfg->deflate;
    if (head < 0 ||
        dx_handshake_verify(&res, c->key, NULL, deflate, NULL, NULL, &ext, &ext_len, &why) < 0) {
        conn_end(t, c, why);
        return;
    }
    if (deflate) {
        dx_deflate_config dcfg = {.enable = 1};
        dx_deflate_params agreed;
        if (!ext) {
            conn_end(t, c, "the server did not accept permessage-deflate");
            return;
        }
        if (dx_deflate_verify(&dcfg, ext, ext_len, &agreed, &why) < 0) {
            conn_end(t, c, why ? why : "bad permessage-deflate answer");
            return;
        }
        dx_conn_config cc = {.role = DX_ROLE_CLIENT, .cb = &dc_callbacks, .user = c};
        c->dc = dx_conn_new(&cc, 0);
        if (!c->dc || dx_conn_set_deflate(c->dc, &agreed, &dcfg) < 0) {
            conn_end(t, c, "could not set up permessage-deflate");
            return;
        }
        c->dc_failed = 0;
        dx_conn_open(c->dc);
    }
    /* Frames the server sent right behind its 101. */
    uint8_t rest[HS_MAX];
    size_t nrest = c->hs_len - (size_t)head;
    memcpy(rest, c->hs + head, nrest);
    free(c->hs);
    c->hs = NULL;
    c->hs_len = 0;
    uint64_t now = now_ns();
    opened(t, c, now);
    if (nrest && c->state >= CS_OPEN && c->state != CS_DONE) (void)feed_ws(t, c, rest, nrest, now);
}

static void on_event(bthread *t, bconn *c, uint32_t ev) {
    switch (c->state) {
    case CS_CONNECTING:
        connected(t, c);
        break;
    case CS_TLS:
        tls_step(t, c);
        break;
    case CS_UPGRADING:
        read_upgrade(t, c);
        break;
    case CS_OPEN:
    case CS_CLOSING:
        if (ev & EPOLLOUT) flush(t, c);
        /* TLS may have waited for writability to read on. */
        if ((c->state == CS_OPEN || c->state == CS_CLOSING) &&
            ((ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) || c->tls))
            read_frames(t, c);
        break;
    default:
        break;
    }
}

/* ---- pacing (rate and broadcast modes) ----------------------------------- */

/* Sends every message whose time has come, each stamped with the time it
 * was due rather than the time it left, so a stalled server (or
 * generator) shows in the latency instead of silently lowering the rate
 * (coordinated omission). */
static void pace(bthread *t) {
    uint64_t now = now_ns();
    const dx_bench_cfg *cfg = t->r->cfg;
    for (;;) {
        uint64_t due = t->rate_t0 + (uint64_t)((double)t->rate_j * t->rate_ns);
        if (due > now) {
            t->next_due = due;
            break;
        }
        t->rate_j++;
        if (cfg->mode == BM_BROADCAST) {
            bconn *p = &t->conns[0];
            if (p->state == CS_OPEN && send_msg(t, p, due) < 0) return;
            continue;
        }
        /* Round robin over the open connections. */
        for (int tries = 0; tries < t->n; tries++) {
            bconn *c = &t->conns[t->rr++ % (uint64_t)t->n];
            if (c->state == CS_OPEN) {
                (void)send_msg(t, c, due);
                break;
            }
        }
    }
}

/* ---- the thread ---------------------------------------------------------- */

/* Waits for events, at most `timeout_ms`, and less when a paced send falls
 * due first. The wait's own nanosecond timeout (epoll_pwait2) paces the
 * sends: a timerfd would cost two more system calls per message (set it,
 * read it), which at 40,000 msg/s made the generator its own limit. */
static void poll_once(bthread *t, int timeout_ms) {
    struct epoll_event evs[512];
    int n;
    if (t->next_due) {
        uint64_t now = now_ns(), wait = (uint64_t)timeout_ms * 1000000u;
        if (t->next_due <= now)
            wait = 0;
        else if (t->next_due - now < wait)
            wait = t->next_due - now;
        struct timespec ts = {(time_t)(wait / 1000000000u), (long)(wait % 1000000000u)};
        n = t->no_pwait2 ? -1 : epoll_pwait2(t->epfd, evs, 512, &ts, NULL);
        if (n < 0 && (t->no_pwait2 || errno == ENOSYS)) { /* millisecond waits */
            t->no_pwait2 = 1;
            n = epoll_wait(t->epfd, evs, 512, (int)((wait + 999999) / 1000000));
        }
    } else {
        n = epoll_wait(t->epfd, evs, 512, timeout_ms);
    }
    for (int i = 0; i < n; i++)
        on_event(t, evs[i].data.ptr, evs[i].events);
    if (t->next_due && now_ns() >= t->next_due) pace(t);
    flush_dirty(t);
    int k = t->nagain;
    t->nagain = 0;
    for (int i = 0; i < k; i++)
        start_connect(t, t->again[i]);
}

static void setup(bthread *t) {
    const dx_bench_cfg *cfg = t->r->cfg;
    uint64_t deadline = now_ns() + (cfg->mode == BM_IDLE ? 300 : 30) * 1000000000ull;
    while (t->resolved < t->n && now_ns() < deadline) {
        while (t->next_connect < t->n && t->pending < MAX_PENDING_CONNECTS)
            start_connect(t, &t->conns[t->next_connect++]);
        poll_once(t, 50);
    }
}

/* Ends the run as a client should: a close frame (1000) on every open
 * WebSocket, then a short wait for the servers' answers, so that peers do
 * not log a thousand abnormal closures. Echoes still arriving are not
 * counted: the window is closed. */
static void say_goodbye(bthread *t) {
    static const uint8_t bye[2] = {0x03, 0xe8};
    int open = 0;
    t->next_due = 0; /* no paced sends after the window */
    for (int i = 0; i < t->n; i++) {
        bconn *c = &t->conns[i];
        if (c->state != CS_OPEN && c->state != CS_CLOSING) continue;
        if (t->r->cfg->raw) {
            close(c->fd);
            c->fd = -1;
            c->state = CS_DONE;
            continue;
        }
        if (c->state == CS_OPEN) {
            c->state = CS_CLOSING;
            if (queue_frame(t, c, DX_OP_CLOSE, bye, 2) < 0) continue;
        }
        open++;
    }
    flush_dirty(t);
    uint64_t deadline = now_ns() + 500000000u;
    while (open > 0 && now_ns() < deadline) {
        poll_once(t, 20);
        open = 0;
        for (int i = 0; i < t->n; i++)
            open += t->conns[i].state == CS_CLOSING;
    }
}

static void *thread_main(void *arg) {
    bthread *t = arg;
    run *r = t->r;
    const dx_bench_cfg *cfg = r->cfg;
    if (cfg->mode != BM_HANDSHAKES) setup(t);
    int open = 0;
    for (int i = 0; i < t->n; i++)
        open += t->conns[i].state == CS_OPEN;
    atomic_store(&t->open_at_start, open);
    pthread_barrier_wait(&r->setup_done);

    uint64_t now = now_ns();
    switch (cfg->mode) {
    case BM_ECHO:
        for (int i = 0; i < t->n; i++)
            for (int k = 0; k < cfg->inflight && t->conns[i].state == CS_OPEN; k++)
                (void)send_msg(t, &t->conns[i], now);
        break;
    case BM_BROADCAST:
        if (t->id != 0) break;
        if (cfg->rate == 0) {
            for (int k = 0; k < cfg->inflight && t->conns[0].state == CS_OPEN; k++)
                (void)send_msg(t, &t->conns[0], now);
            break;
        }
        /* paced publishing */
        __attribute__((fallthrough));
    case BM_RATE:
        t->rate_t0 = now;
        t->rate_j = 0;
        pace(t);
        break;
    case BM_HANDSHAKES:
        for (int i = 0; i < t->n; i++)
            start_connect(t, &t->conns[i]);
        break;
    case BM_IDLE:
        break;
    }
    flush_dirty(t);
    while (!GET(r->stop)) {
        poll_once(t, 50);
        if (cfg->mode == BM_BROADCAST && t->id == 0 && cfg->rate == 0) refill(t, &t->conns[0]);
        flush_dirty(t);
    }
    say_goodbye(t);
    return NULL;
}

/* ---- the run ------------------------------------------------------------- */

double dx_bench_proc_cpu(int pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* Fields after the command name (which may hold spaces): state is the
     * 3rd field, utime the 14th, stime the 15th. */
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    unsigned long long ut = 0, st = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

long dx_bench_proc_rss(int pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
    fclose(f);
    return kib;
}

static double cpu_self(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static void sleep_s(double s) {
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

typedef struct totals {
    uint64_t messages, sent, bytes, errors, closes, overflows;
} totals;

static totals sum(const run *r) {
    totals s = {0};
    for (int i = 0; i < r->cfg->threads; i++) {
        bthread *t = &r->t[i];
        s.messages += GET(t->messages);
        s.sent += GET(t->sent);
        s.bytes += GET(t->bytes);
        s.errors += GET(t->errors);
        s.closes += GET(t->closes);
        s.overflows += GET(t->overflows);
    }
    return s;
}

static void set_sources(run *r) {
    const dx_bench_cfg *cfg = r->cfg;
    int n = cfg->sources;
    if (n == 0 && cfg->loopback && cfg->mode == BM_IDLE) n = cfg->connections / 20000 + 1;
    if (n > 250) n = 250;
    if (!cfg->loopback || cfg->addr.ss_family != AF_INET) n = 1;
    r->nsrc = n;
    for (int i = 0; i < n; i++) {
        r->src[i].sin_family = AF_INET;
        r->src[i].sin_port = 0;
        r->src[i].sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)i);
    }
}

static void progress(const run *r, double elapsed, double total, totals base, double t_base) {
    totals s = sum(r);
    double dt = elapsed > t_base ? elapsed - t_base : 1;
    fprintf(stderr, "\r  %4.0f/%.0f s  %12.0f msg/s  errors %llu  closes %llu   ", elapsed, total,
            (double)(s.messages - base.messages) / dt, (unsigned long long)s.errors,
            (unsigned long long)s.closes);
    fflush(stderr);
}

/* A payload that compresses like real traffic: JSON chat records with
 * varying ids, names, times and words, cut at `len` bytes (ASCII). */
static void fill_json(uint8_t *p, size_t len) {
    static const char *const users[] = {"alice", "bob", "carol", "dave", "erin", "frank"};
    static const char *const words[] = {"hello", "are",     "you",    "coming", "to",
                                        "the",   "meeting", "today",  "yes",    "see",
                                        "soon",  "great",   "thanks", "ok"};
    uint64_t x = 88172645463325252ull;
    size_t at = 0;
    char rec[256];
    for (int id = 1000; at < len; id++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int n = snprintf(rec, sizeof rec,
                         "%s{\"id\":%d,\"from\":\"%s\",\"ts\":%llu,\"status\":\"sent\","
                         "\"text\":\"%s %s %s\"}",
                         at ? "," : "[", id, users[x % 6], 1700000000000ull + (x % 100000),
                         words[x % 14], words[(x >> 8) % 14], words[(x >> 16) % 14]);
        size_t k = (size_t)n < len - at ? (size_t)n : len - at;
        memcpy(p + at, rec, k);
        at += k;
    }
}

int dx_bench_run(const dx_bench_cfg *cfg, dx_bench_result *res) {
    /* A server that resets a connection must cost an error count, not the
     * process. */
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    run *r = calloc(1, sizeof *r);
    if (!r) return -1;
    r->cfg = cfg;
    r->opcode = cfg->binary ? DX_OP_BINARY : DX_OP_TEXT;
    r->payload = malloc((size_t)cfg->size + 1);
    r->t = calloc((size_t)cfg->threads, sizeof *r->t);
    bconn *conns = calloc((size_t)cfg->connections + 1, sizeof *conns);
    if (!r->payload || !r->t || !conns) {
        fprintf(stderr, "duplex bench: out of memory\n");
        free(r->payload);
        free(r->t);
        free(conns);
        free(r);
        return -1;
    }
    if (cfg->json_payload)
        fill_json(r->payload, (size_t)cfg->size);
    else
        for (int i = 0; i < cfg->size; i++)
            r->payload[i] = (uint8_t)('a' + i % 26);
    set_sources(r);
    if (cfg->tls) {
        const char *why = "could not set up TLS";
        r->tls_ctx = dx_tls_client_ctx(cfg->insecure, cfg->ca_file, &why);
        if (!r->tls_ctx) {
            fprintf(stderr, "duplex bench: %s\n", why);
            free(r->payload);
            free(r->t);
            free(conns);
            free(r);
            return -1;
        }
    }
    {
        /* Let the masking code pick its SIMD variant before threads race to. */
        uint8_t k[4] = {1, 2, 3, 4}, b[8] = {0};
        dx_mask_copy(b, b, sizeof b, k, 0);
    }
    memset(res, 0, sizeof *res);
    res->server_cpu_s = -1;
    res->rss_fresh_kib = res->rss_before_kib = res->rss_after_kib = -1;
    if (cfg->mode == BM_IDLE && cfg->server_pid) {
        /* Two figures: from the server as it is now (fresh when the caller
         * just started it: what an operator sees, once-per-server costs
         * included), and from after a warm-up. Warm the server up first (a few hundred connections
         * opened, used and closed), so the code and buffers it pages in once, such as libcrypto's
         * SHA-1 for the accept key, are not charged to each connection. */
        res->rss_fresh_kib = dx_bench_proc_rss(cfg->server_pid);
        dx_bench_cfg warm = *cfg;
        dx_bench_result wres;
        warm.connections = cfg->connections < 256 ? cfg->connections : 256;
        warm.duration = 0.05;
        warm.warmup = 0;
        warm.server_pid = 0;
        warm.progress = 0;
        if (dx_bench_run(&warm, &wres) == 0) free(wres.hist);
        sleep_s(0.3);
        res->rss_before_kib = dx_bench_proc_rss(cfg->server_pid);
    }

    /* Connections are dealt to threads in contiguous blocks; in broadcast
     * mode the first one (thread 0's first) is the publisher. */
    int total = cfg->connections + (cfg->mode == BM_BROADCAST ? 1 : 0);
    int at = 0, started = 0;
    pthread_barrier_init(&r->setup_done, NULL, (unsigned)cfg->threads + 1);
    for (int i = 0; i < cfg->threads; i++) {
        bthread *t = &r->t[i];
        t->r = r;
        t->id = i;
        t->n = total / cfg->threads + (i < total % cfg->threads ? 1 : 0);
        t->conns = conns + at;
        at += t->n;
        for (int k = 0; k < t->n; k++)
            t->conns[k].fd = -1;
        if (cfg->mode == BM_BROADCAST && i == 0 && t->n > 0) t->conns[0].publisher = 1;
        t->rng = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1) ^ now_ns();
        t->rate_ns = cfg->rate > 0
                         ? 1e9 / (cfg->mode == BM_BROADCAST ? cfg->rate : cfg->rate / cfg->threads)
                         : 0;
        t->epfd = epoll_create1(EPOLL_CLOEXEC);
        t->dirty = calloc((size_t)t->n + 1, sizeof *t->dirty);
        t->again = calloc((size_t)t->n + 1, sizeof *t->again);
        t->rbuf = malloc(RBUF_SIZE);
        t->pbuf = malloc((size_t)cfg->size + 1);
        if (t->epfd < 0 || !t->dirty || !t->again || !t->rbuf || !t->pbuf) break;
        memcpy(t->pbuf, r->payload, (size_t)cfg->size);
        if (pthread_create(&t->tid, NULL, thread_main, t)) break;
        started++;
    }
    int ok = started == cfg->threads;
    if (!ok) {
        /* Cannot happen short of resource exhaustion; the threads that
         * started are waiting at the barrier, which now cannot fill. */
        fprintf(stderr, "duplex bench: could not start %d threads\n", cfg->threads);
        exit(1);
    }
    pthread_barrier_wait(&r->setup_done);
    for (int i = 0; i < cfg->threads; i++)
        res->connected += atomic_load(&r->t[i].open_at_start);
    if (cfg->mode == BM_HANDSHAKES) res->connected = total;

    uint64_t t_go = now_ns();
    double warm = cfg->warmup;
    if (cfg->mode == BM_IDLE) warm += 0.5; /* let the server settle before reading its RSS */
    sleep_s(warm);
    if (cfg->mode == BM_IDLE && cfg->server_pid)
        res->rss_after_kib = dx_bench_proc_rss(cfg->server_pid);
    totals base = cfg->mode == BM_IDLE ? (totals){0} : sum(r);
    double cpu0 = cpu_self();
    double scpu0 = cfg->server_pid ? dx_bench_proc_cpu(cfg->server_pid) : -1;
    uint64_t t0 = now_ns();
    atomic_store(&r->measuring, 1);
    /* The measured window, with a progress line once a second. */
    for (double left = cfg->duration; left > 0;) {
        double step = left < 1 ? left : 1;
        sleep_s(step);
        left -= step;
        if (cfg->progress) progress(r, (double)(now_ns() - t0) * 1e-9, cfg->duration, base, 0);
    }
    totals end = sum(r);
    uint64_t t1 = now_ns();
    double cpu1 = cpu_self();
    double scpu1 = cfg->server_pid ? dx_bench_proc_cpu(cfg->server_pid) : -1;
    atomic_store(&r->measuring, 0);
    atomic_store(&r->stop, 1);
    if (cfg->progress) fprintf(stderr, "\n");
    (void)t_go;

    res->hist = calloc(1, sizeof *res->hist);
    for (int i = 0; i < cfg->threads; i++) {
        bthread *t = &r->t[i];
        pthread_join(t->tid, NULL);
        if (res->hist) dx_hist_merge(res->hist, &t->hist);
        const char *fe = GET(t->first_error);
        if (fe && !res->first_error) {
            snprintf(res->first_error_text, sizeof res->first_error_text, "%s", fe);
            res->first_error = res->first_error_text;
        }
        close(t->epfd);
        free(t->dirty);
        free(t->again);
        free(t->rbuf);
        free(t->pbuf);
    }
    res->seconds = (double)(t1 - t0) * 1e-9;
    res->messages = end.messages - base.messages;
    res->sent = end.sent - base.sent;
    res->bytes = end.bytes - base.bytes;
    res->errors = end.errors;
    res->closes = end.closes;
    res->overflows = end.overflows - base.overflows;
    res->gen_cpu_s = cpu1 - cpu0;
    if (scpu0 >= 0 && scpu1 >= 0) res->server_cpu_s = scpu1 - scpu0;

    for (int i = 0; i < total; i++) {
        if (conns[i].fd >= 0) close(conns[i].fd);
        free(conns[i].obuf);
        dx_fifo_free(&conns[i].sent);
        free(conns[i].hs);
        dx_conn_free(conns[i].dc);
        dx_tls_free(conns[i].tls);
    }
    pthread_barrier_destroy(&r->setup_done);
    dx_tls_ctx_free(r->tls_ctx);
    free(conns);
    free(r->payload);
    free(r->t);
    free(r);
    return 0;
}

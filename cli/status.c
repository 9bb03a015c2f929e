/* duplex serve --metrics: the live status page (status.h). The page is
 * web/status compiled in (cmake/embed_status.cmake). Its socket is the
 * server's own: the mode's callbacks are wrapped, and a status socket is
 * told apart by its user pointer, which is its thread's slot below. Each
 * thread that has status sockets runs one timer; every second it sums every
 * thread's counters (dx_server_stats_get may be called from any thread, as
 * the /metrics scrape does), takes the difference from its own previous
 * sum and publishes one JSON text to its status sockets on a topic of their
 * own: framed once, never handed to a broker, skipped for a page that has
 * fallen behind. Other connections pay one more call and a pointer
 * comparison per callback, nothing else. */
#include "cli/status.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <duplex/loop.h>

#include "cli/metrics.h"

#define MAX_SERVERS 256
#define INTERVAL_MS 1000
/* Chat topics are "u:<uid>"; echo and broadcast clients subscribe to none. */
#define TOPIC "duplex:status"
/* A page this far behind misses samples instead of being closed as a slow
 * consumer (a sample is about 400 bytes). */
#define MAX_QUEUED (64 * 1024)

/* The page's two files (status_page.c, generated at build time). */
extern const unsigned char dx_cli_status_html[], dx_cli_status_js[];
extern const size_t dx_cli_status_html_len, dx_cli_status_js_len;

/* Every counter a sample is made from, summed over the threads. */
typedef struct totals {
    int threads, chat;
    uint64_t accepted, open, in, out, bytes_in, bytes_out, turns, queued;
    uint64_t turn_us[DX_LOOP_TURN_BUCKETS];
    uint64_t acks, devices;
    uint64_t ack_us[DX_CHAT_LATENCY_BUCKETS + 1];
    uint64_t pages, page_msgs, page_bytes; /* status sockets, what they were sent */
} totals;

/* One per server (so per thread). `pages`, `sent` and `sent_bytes` are read
 * by the other threads' timers, hence atomic; they change only when a page
 * comes, goes, or gets a sample. */
typedef struct slot {
    dx_server *srv;
    dx_timer timer;
    unsigned clients; /* this thread's status sockets */
    _Atomic uint64_t pages;
    _Atomic uint64_t sent, sent_bytes;
    uint64_t at_ms; /* when `prev` was taken, by the loop's clock */
    totals prev;
} slot;

static slot slots[MAX_SERVERS];
static int nslots;
static int public_feed;
static const char *mode_name = "";
static dx_chat *chat_of;
static dx_server_config next; /* the callbacks wrapped */

void dx_cli_status_chat(dx_chat *chat) {
    chat_of = chat;
}

void dx_cli_status_add(dx_server *srv) {
    if (nslots >= MAX_SERVERS) return;
    slots[nslots].srv = srv;
    nslots++;
}

/* The slot a status socket's user pointer is, or NULL for any other
 * connection. */
static slot *mine(void *user) {
    uintptr_t p = (uintptr_t)user, first = (uintptr_t)&slots[0];
    return p >= first && p < first + sizeof slots ? user : NULL;
}

static slot *slot_of(const dx_server *srv) {
    for (int i = 0; i < nslots; i++)
        if (slots[i].srv == srv) return &slots[i];
    return NULL;
}

double dx_cli_status_quantile(const uint64_t *counts, const uint32_t *bounds, int nbounds,
                              double q) {
    uint64_t total = 0;
    for (int i = 0; i <= nbounds; i++)
        total += counts[i];
    if (!total) return -1;
    double rank = q * (double)total, cum = 0;
    for (int i = 0; i < nbounds; i++) {
        if (counts[i] && cum + (double)counts[i] >= rank) {
            double lo = i ? bounds[i - 1] : 0;
            return lo + (bounds[i] - lo) * (rank - cum) / (double)counts[i];
        }
        cum += (double)counts[i];
    }
    return bounds[nbounds - 1];
}

static void take(totals *t) {
    memset(t, 0, sizeof *t);
    for (int i = 0; i < nslots; i++) {
        dx_server_stats s = {.size = sizeof s};
        if (dx_server_stats_get(slots[i].srv, &s) < 0) continue;
        t->threads++;
        t->accepted += s.accepted;
        t->open += s.open;
        t->in += s.msgs_in[0] + s.msgs_in[1];
        t->out += s.msgs_out[0] + s.msgs_out[1];
        t->bytes_in += s.bytes_in[0] + s.bytes_in[1];
        t->bytes_out += s.bytes_out[0] + s.bytes_out[1];
        t->turns += s.loop_turns;
        t->queued += s.queued;
        for (int k = 0; k < DX_LOOP_TURN_BUCKETS; k++)
            t->turn_us[k] += s.loop_turn_us[k];
        t->pages += atomic_load_explicit(&slots[i].pages, memory_order_relaxed);
        t->page_msgs += atomic_load_explicit(&slots[i].sent, memory_order_relaxed);
        t->page_bytes += atomic_load_explicit(&slots[i].sent_bytes, memory_order_relaxed);
    }
    dx_chat_stats c = {.size = sizeof c};
    if (chat_of && dx_chat_stats_get(chat_of, &c) == 0) {
        t->chat = 1;
        t->acks = c.acks;
        t->devices = c.devices;
        memcpy(t->ack_us, c.ack_us, sizeof t->ack_us);
    }
}

/* Counters only grow, but two of them read a moment apart (a thread's
 * messages out and what its pages were sent) may not agree: never below 0. */
static uint64_t minus(uint64_t a, uint64_t b) {
    return a > b ? a - b : 0;
}

static double per_s(uint64_t now, uint64_t before, uint64_t ms) {
    return (double)minus(now, before) * 1000.0 / (double)ms;
}

/* ",\"name\":123" or ",\"name\":null" for a quantile of no observations. */
static int us_field(char *out, size_t cap, const char *name, double us) {
    return us < 0 ? snprintf(out, cap, ",\"%s\":null", name)
                  : snprintf(out, cap, ",\"%s\":%.0f", name, us);
}

/* One sample, as docs/operations.md describes it. The status sockets and
 * what they are sent are taken out of the connections and msg/s out: the
 * page shows the server's traffic, not its own. */
static int sample(char *buf, size_t cap, const totals *now, const totals *was, uint64_t ms) {
    if (!ms) ms = 1;
    uint64_t turns[DX_LOOP_TURN_BUCKETS];
    for (int k = 0; k < DX_LOOP_TURN_BUCKETS; k++)
        turns[k] = minus(now->turn_us[k], was->turn_us[k]);
    static const uint32_t turn_bounds[] = DX_LOOP_TURN_BOUNDS_US;
    double turn_p99 = dx_cli_status_quantile(turns, turn_bounds, DX_LOOP_TURN_BUCKETS - 1, 0.99);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t out = minus(minus(now->out, was->out), minus(now->page_msgs, was->page_msgs));
    uint64_t bytes_out =
        minus(minus(now->bytes_out, was->bytes_out), minus(now->page_bytes, was->page_bytes));
    int n = snprintf(
        buf, cap,
        "{\"type\":\"sample\",\"t\":%llu,\"interval_ms\":%llu,\"threads\":%d,"
        "\"open\":%llu,\"status_pages\":%llu,\"accepted\":%llu,"
        "\"in\":%.1f,\"out\":%.1f,\"bytes_in\":%.0f,\"bytes_out\":%.0f,"
        "\"turns\":%.1f,\"queued\":%llu",
        (unsigned long long)ts.tv_sec * 1000ull + (unsigned long long)ts.tv_nsec / 1000000,
        (unsigned long long)ms, now->threads, (unsigned long long)minus(now->open, now->pages),
        (unsigned long long)now->pages, (unsigned long long)now->accepted,
        per_s(now->in, was->in, ms), (double)out * 1000.0 / (double)ms,
        per_s(now->bytes_in, was->bytes_in, ms), (double)bytes_out * 1000.0 / (double)ms,
        per_s(now->turns, was->turns, ms), (unsigned long long)now->queued);
    if (n < 0 || (size_t)n >= cap) return -1;
    n += us_field(buf + n, cap - (size_t)n, "turn_p99_us", turn_p99);
    if (now->chat && (size_t)n < cap) {
        uint64_t acks[DX_CHAT_LATENCY_BUCKETS + 1];
        for (int k = 0; k <= DX_CHAT_LATENCY_BUCKETS; k++)
            acks[k] = minus(now->ack_us[k], was->ack_us[k]);
        static const uint32_t ack_bounds[] = DX_CHAT_LATENCY_BOUNDS_US;
        n += snprintf(buf + n, cap - (size_t)n, ",\"chat\":{\"devices\":%llu,\"acks\":%.1f",
                      (unsigned long long)now->devices, per_s(now->acks, was->acks, ms));
        if ((size_t)n < cap)
            n += us_field(buf + n, cap - (size_t)n, "ack_p99_us",
                          dx_cli_status_quantile(acks, ack_bounds, DX_CHAT_LATENCY_BUCKETS, 0.99));
        if ((size_t)n < cap) n += snprintf(buf + n, cap - (size_t)n, "}");
    }
    if ((size_t)n < cap) n += snprintf(buf + n, cap - (size_t)n, "}");
    return (size_t)n < cap ? n : -1;
}

static void tick(dx_loop *loop, dx_timer *t) {
    slot *s = (slot *)(void *)((char *)t - offsetof(slot, timer));
    uint64_t now_ms = dx_loop_now(loop);
    totals now;
    take(&now);
    char buf[1024];
    int n = sample(buf, sizeof buf, &now, &s->prev, now_ms - s->at_ms);
    s->prev = now;
    s->at_ms = now_ms;
    if (n > 0) {
        int r =
            dx_server_publish_lossy(s->srv, TOPIC, DX_OP_TEXT, buf, (size_t)n, NULL, MAX_QUEUED);
        if (r > 0) {
            atomic_fetch_add_explicit(&s->sent, (uint64_t)r, memory_order_relaxed);
            atomic_fetch_add_explicit(&s->sent_bytes, (uint64_t)r * (uint64_t)n,
                                      memory_order_relaxed);
        }
    }
    dx_timer_start(loop, t, INTERVAL_MS);
}

/* ---- the page ------------------------------------------------------------ */

static int path_is(const char *p, size_t n, const char *s) {
    return n == strlen(s) && !memcmp(p, s, n);
}

static int on_http(dx_server_conn *c, void *user, const dx_http_route *r) {
    const unsigned char *body;
    size_t len;
    const char *type;
    if (path_is(r->path, r->path_len, "/status") || path_is(r->path, r->path_len, "/status/") ||
        path_is(r->path, r->path_len, "/status/index.html")) {
        body = dx_cli_status_html;
        len = dx_cli_status_html_len;
        type = "text/html; charset=utf-8";
    } else if (path_is(r->path, r->path_len, "/status/status.js")) {
        body = dx_cli_status_js;
        len = dx_cli_status_js_len;
        type = "text/javascript; charset=utf-8";
    } else {
        return next.on_http ? next.on_http(c, user, r) : 0;
    }
    if (!public_feed && !dx_cli_metrics_loopback(r->remote)) {
        static const char why[] = "the status page is for loopback peers (--metrics-public)\n";
        (void)dx_server_http_respond(c, 403, NULL, why, sizeof why - 1);
    } else if (!path_is(r->method, r->method_len, "GET") &&
               !path_is(r->method, r->method_len, "HEAD")) {
        (void)dx_server_http_respond(c, 405, NULL, "GET or HEAD\n", 12);
    } else {
        (void)dx_server_http_respond(c, 200, type, body, len);
    }
    return 1;
}

/* ---- the feed ------------------------------------------------------------ */

/* A page of another site, opened by a browser on this host, is a loopback
 * peer too: when there is an Origin (a browser), it must name the host the
 * request was sent to, so that only the status page itself (or a client
 * that is not a browser) reads the feed. */
static int same_origin(const dx_upgrade *u) {
    if (!u->origin) return 1;
    const char *o = u->origin;
    size_t on = u->origin_len;
    if (on > 7 && !strncasecmp(o, "http://", 7)) {
        o += 7, on -= 7;
    } else if (on > 8 && !strncasecmp(o, "https://", 8)) {
        o += 8, on -= 8;
    } else {
        return 0;
    }
    for (size_t i = 0; i < u->num_headers; i++) {
        const dx_http_header *h = &u->headers[i];
        if (h->name_len == 4 && !strncasecmp(h->name, "Host", 4))
            return h->value_len == on && !strncasecmp(h->value, o, on);
    }
    return 0;
}

static int on_upgrade(dx_server_conn *c, void *user, dx_upgrade *u) {
    if (!path_is(u->path, u->path_len, "/status/ws"))
        return next.on_upgrade ? next.on_upgrade(c, user, u) : 0;
    if (!public_feed && !dx_cli_metrics_loopback(u->remote)) {
        u->reason = "the status feed is for loopback peers (--metrics-public)";
        return 403;
    }
    if (!same_origin(u)) {
        u->reason = "the status feed is for the status page of this server";
        return 403;
    }
    if (dx_server_conn_transport(c) == DX_TRANSPORT_HTTP) {
        u->reason = "the status feed is WebSocket only";
        return 400;
    }
    slot *s = slot_of(dx_server_conn_server(c));
    if (!s) return 503;
    dx_server_conn_set_user(c, s);
    u->protocol = NULL;
    return 0;
}

static void on_open(dx_server_conn *c, void *user) {
    slot *s = mine(user);
    if (!s) {
        if (next.on_open) next.on_open(c, user);
        return;
    }
    dx_loop *loop = dx_server_loop(s->srv);
    if (s->clients++ == 0) {
        dx_timer_init(&s->timer, tick);
        take(&s->prev);
        s->at_ms = dx_loop_now(loop);
        dx_timer_start(loop, &s->timer, INTERVAL_MS);
    }
    atomic_store_explicit(&s->pages, s->clients, memory_order_relaxed);
    char hello[256];
    int n = snprintf(hello, sizeof hello,
                     "{\"type\":\"hello\",\"version\":\"%s\",\"mode\":\"%s\",\"threads\":%d,"
                     "\"chat\":%s,\"interval_ms\":%d,\"pid\":%d}",
                     DX_VERSION_STRING, mode_name, nslots, chat_of ? "true" : "false", INTERVAL_MS,
                     (int)getpid());
    if (dx_server_subscribe(c, TOPIC) < 0) {
        (void)dx_server_close(c, 1011, "out of memory");
        return;
    }
    if (n > 0 && (size_t)n < sizeof hello && dx_server_send(c, DX_OP_TEXT, hello, (size_t)n) == 0) {
        atomic_fetch_add_explicit(&s->sent, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->sent_bytes, (uint64_t)n, memory_order_relaxed);
    }
}

static void on_message(dx_server_conn *c, void *user, enum dx_opcode op, const uint8_t *data,
                       size_t len) {
    /* The page sends nothing; what a status socket sends is dropped. */
    if (!mine(user) && next.on_message) next.on_message(c, user, op, data, len);
}

static void on_drain(dx_server_conn *c, void *user) {
    if (!mine(user) && next.on_drain) next.on_drain(c, user);
}

static void on_pong(dx_server_conn *c, void *user, const uint8_t *data, size_t len) {
    if (!mine(user) && next.on_pong) next.on_pong(c, user, data, len);
}

static void on_close(dx_server_conn *c, void *user, uint16_t code, const uint8_t *reason,
                     size_t reason_len, int was_clean) {
    slot *s = mine(user);
    if (!s) {
        if (next.on_close) next.on_close(c, user, code, reason, reason_len, was_clean);
        return;
    }
    if (s->clients && --s->clients == 0) dx_timer_stop(dx_server_loop(s->srv), &s->timer);
    atomic_store_explicit(&s->pages, s->clients, memory_order_relaxed);
}

void dx_cli_status_wrap(dx_server_config *cfg, int public_, const char *mode) {
    public_feed = public_;
    mode_name = mode ? mode : "";
    next = *cfg;
    cfg->on_http = on_http;
    cfg->on_upgrade = on_upgrade;
    cfg->on_open = on_open;
    cfg->on_message = on_message;
    cfg->on_close = on_close;
    /* Only where there was one: NULL tells the server there is no one to
     * call. */
    if (next.on_drain) cfg->on_drain = on_drain;
    if (next.on_pong) cfg->on_pong = on_pong;
    nslots = 0;
}

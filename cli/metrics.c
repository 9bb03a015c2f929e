/* duplex serve --metrics (metrics.h): every thread's dx_server_stats_get,
 * summed when the scrape arrives, written as Prometheus text. The scrape
 * runs on whichever thread accepted it and reads the other threads'
 * counters as they stand (server.h says why that is safe), so the hot
 * path pays one plain add per event and nothing per scrape. */
#include "cli/metrics.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SERVERS 256

static dx_server *servers[MAX_SERVERS];
static int nservers;
static int public_scrape;
static dx_chat *chat_of;                /* --chat: its counters too */
static dx_fanout *fanouts[MAX_SERVERS]; /* --redis without --chat: each thread's */
static int nfanouts;

static void head(FILE *f, const char *name, const char *type, const char *help);
static void one(FILE *f, const char *name, const char *type, const char *help, uint64_t v);

void dx_cli_metrics_chat(dx_chat *chat) {
    chat_of = chat;
}

void dx_cli_metrics_fanout(dx_fanout *f) {
    if (f && nfanouts < MAX_SERVERS) fanouts[nfanouts++] = f;
}

/* A histogram kept in microseconds, written in seconds: `nbounds` upper
 * bounds, `b` their counts and one more for what is over the last. The
 * count is the +Inf bucket, not a separate counter: the words are read
 * while the server's thread may add to them, and a scrape between two
 * updates must not disagree with itself. */
static void hist(FILE *f, const char *name, const char *help, const uint32_t *bounds, int nbounds,
                 const uint64_t *b, uint64_t sum_us) {
    head(f, name, "histogram", help);
    uint64_t cum = 0;
    for (int i = 0; i <= nbounds; i++) {
        cum += b[i];
        if (i < nbounds)
            fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i] / 1e6,
                    (unsigned long long)cum);
        else
            fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    }
    fprintf(f, "%s_sum %.6f\n%s_count %llu\n", name, (double)sum_us / 1e6, name,
            (unsigned long long)cum);
}

static void chat_counter(FILE *f, const char *name, const char *type, const char *help,
                         uint64_t v) {
    head(f, name, type, help);
    fprintf(f, "%s %llu\n", name, (unsigned long long)v);
}

/* The chat service's counters (chat.h, dx_chat_stats). */
static void chat_metrics(FILE *f) {
    dx_chat_stats c = {.size = sizeof c};
    if (!chat_of || dx_chat_stats_get(chat_of, &c) < 0) return;
    chat_counter(f, "duplex_chat_sends_total", "counter",
                 "send requests stored or found (duplicates included).", c.sends);
    chat_counter(f, "duplex_chat_duplicates_total", "counter",
                 "Sends answered from the store as duplicates (a resend with the same cid).",
                 c.duplicates);
    chat_counter(f, "duplex_chat_acks_total", "counter", "Acks sent, each after its commit.",
                 c.acks);
    chat_counter(f, "duplex_chat_deliveries_total", "counter",
                 "Messages fanned out to the members of their conversation.", c.deliveries);
    chat_counter(f, "duplex_chat_syncs_total", "counter", "sync pages asked for.", c.syncs);
    chat_counter(f, "duplex_chat_commits_total", "counter",
                 "Store transactions committed (one per loop turn with writes).", c.commits);
    chat_counter(f, "duplex_chat_committed_requests_total", "counter",
                 "Requests whose answer waited for a commit: divided by commits, the batch size.",
                 c.committed);
    chat_counter(f, "duplex_chat_store_errors_total", "counter",
                 "Commits that failed (their requests got store_failed).", c.store_errors);
    chat_counter(f, "duplex_chat_devices", "gauge", "Devices connected to this node.", c.devices);
    chat_counter(f, "duplex_chat_users", "gauge", "Users with at least one device on this node.",
                 c.users);
    static const uint32_t bounds[] = DX_CHAT_LATENCY_BOUNDS_US;
    hist(f, "duplex_chat_ack_seconds",
         "From a send's arrival to its ack written, the commit included.", bounds,
         DX_CHAT_LATENCY_BUCKETS, c.ack_us, c.ack_us_sum);
    hist(f, "duplex_chat_commit_seconds", "One commit of the chat's store (fsync included).",
         bounds, DX_CHAT_LATENCY_BUCKETS, c.commit_us, c.commit_us_sum);
    if (c.pg)
        chat_counter(f, "duplex_postgresql_errors_total", "counter",
                     "PostgreSQL statements that failed, and reconnections that failed.",
                     c.pg_errors);
}

/* The link to Redis: the chat's broker, or every thread's fan-out (up only
 * when all are up; the rest summed). Nothing on a single node. */
static void cluster_metrics(FILE *f) {
    uint64_t up = 1, reconnects = 0, bus[DX_LOOP_TURN_BUCKETS] = {0}, bus_sum = 0;
    int links = 0;
    dx_chat_stats c = {.size = sizeof c};
    if (chat_of && dx_chat_stats_get(chat_of, &c) == 0 && c.redis) {
        links++;
        up = c.redis_up;
        reconnects = c.redis_reconnects;
        memcpy(bus, c.bus_us, sizeof bus);
        bus_sum = c.bus_us_sum;
    }
    for (int i = 0; i < nfanouts; i++) {
        dx_fanout_link_stats l = {.size = sizeof l};
        if (dx_fanout_link_stats_get(fanouts[i], &l) < 0) continue;
        links++;
        up &= l.up;
        reconnects += l.reconnects;
        for (int k = 0; k < DX_LOOP_TURN_BUCKETS; k++)
            bus[k] += l.bus_us[k];
        bus_sum += l.bus_us_sum;
    }
    if (!links) return;
    one(f, "duplex_redis_up", "gauge",
        "1 while the link to Redis is up (publisher and subscription; every thread's).", up);
    one(f, "duplex_redis_reconnects_total", "counter",
        "Connections to Redis made again after one was lost.", reconnects);
    static const uint32_t bounds[] = DX_LOOP_TURN_BOUNDS_US;
    hist(f, "duplex_redis_bus_seconds",
         "A message of this node from its PUBLISH to its own subscriber, through Redis.", bounds,
         DX_LOOP_TURN_BUCKETS - 1, bus, bus_sum);
}
static int (*next_http)(dx_server_conn *c, void *user, const dx_http_route *r);

int dx_cli_metrics_loopback(const char *remote) {
    if (!remote) return 0;
    if (!strncmp(remote, "127.", 4)) return 1;
    if (!strncmp(remote, "[::1]:", 6)) return 1;
    return !strncmp(remote, "[::ffff:127.", 12);
}

/* The sum of every server's counters: each field is a uint64_t from
 * `accepted` on, so the sum is taken word by word. */
typedef struct totals {
    dx_server_stats s;
    int tls, uring, threads;
} totals;

_Static_assert((sizeof(dx_server_stats) - offsetof(dx_server_stats, accepted)) % sizeof(uint64_t) ==
                   0,
               "the counters are 64-bit words from `accepted` on");

static void sum(dx_server *const *srv, int n, totals *t) {
    memset(t, 0, sizeof *t);
    const size_t first = offsetof(dx_server_stats, accepted);
    const size_t words = (sizeof(dx_server_stats) - first) / sizeof(uint64_t);
    for (int i = 0; i < n; i++) {
        dx_server_stats one = {.size = sizeof one};
        if (!srv[i] || dx_server_stats_get(srv[i], &one) < 0) continue;
        uint64_t *to = (uint64_t *)(void *)((char *)&t->s + first);
        const uint64_t *from = (const uint64_t *)(const void *)((const char *)&one + first);
        for (size_t k = 0; k < words; k++)
            to[k] += from[k];
        t->tls |= one.tls;
        t->uring += one.uring;
        t->threads++;
    }
}

static void head(FILE *f, const char *name, const char *type, const char *help) {
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void by_op(FILE *f, const char *name, const char *type, const char *help,
                  const uint64_t v[2]) {
    head(f, name, type, help);
    fprintf(f, "%s{opcode=\"text\"} %llu\n%s{opcode=\"binary\"} %llu\n", name,
            (unsigned long long)v[0], name, (unsigned long long)v[1]);
}

/* Frames by opcode, every slot always (a fixed, small set). */
static void by_frame(FILE *f, const char *name, const char *help, const uint64_t *v) {
    static const char *const ops[DX_FRAME_SLOTS] = {"continuation", "text", "binary",
                                                    "close",        "ping", "pong"};
    head(f, name, "counter", help);
    for (int i = 0; i < DX_FRAME_SLOTS; i++)
        fprintf(f, "%s{opcode=\"%s\"} %llu\n", name, ops[i], (unsigned long long)v[i]);
}

static void one(FILE *f, const char *name, const char *type, const char *help, uint64_t v) {
    head(f, name, type, help);
    fprintf(f, "%s %llu\n", name, (unsigned long long)v);
}

/* Codes that occurred only: the set is open (3000-4999), and a series per
 * code never seen would be noise. */
static void by_code(FILE *f, const char *name, const char *help, const uint64_t *v) {
    head(f, name, "counter", help);
    for (int i = 0; i < DX_STATS_CLOSE_SLOTS; i++) {
        if (!v[i]) continue;
        if (i == DX_STATS_CLOSE_OTHER)
            fprintf(f, "%s{code=\"other\"} %llu\n", name, (unsigned long long)v[i]);
        else
            fprintf(f, "%s{code=\"%d\"} %llu\n", name, 1000 + i, (unsigned long long)v[i]);
    }
}

char *dx_cli_metrics_text(dx_server *const *srv, int n, size_t *len) {
    totals t;
    sum(srv, n, &t);
    const dx_server_stats *s = &t.s;
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f) return NULL;
    const char *tr = t.tls ? "wss" : "ws";

    head(f, "duplex_connections_accepted_total", "counter", "TCP connections accepted.");
    fprintf(f, "duplex_connections_accepted_total{transport=\"%s\"} %llu\n", tr,
            (unsigned long long)s->accepted);
    /* HTTP sessions (docs/fallback.md) are open WebSockets too, carried by
     * HTTP requests: their own series. */
    uint64_t sess = s->sessions_open <= s->open ? s->sessions_open : s->open;
    head(f, "duplex_connections_open", "gauge",
         "Open WebSocket connections, by transport (http: HTTP sessions).");
    fprintf(f, "duplex_connections_open{transport=\"%s\"} %llu\n", tr,
            (unsigned long long)(s->open - sess));
    fprintf(f, "duplex_connections_open{transport=\"http\"} %llu\n", (unsigned long long)sess);
    head(f, "duplex_handshakes_total", "counter", "WebSocket handshakes completed (101 sent).");
    fprintf(f, "duplex_handshakes_total{transport=\"%s\"} %llu\n", tr,
            (unsigned long long)s->upgraded);
    static const char *const reasons[DX_REFUSE_COUNT] = {"bad_request", "origin", "auth", "limit",
                                                         "app"};
    head(f, "duplex_handshakes_refused_total", "counter",
         "Upgrade requests refused, by reason (bad_request also counts unreadable HTTP).");
    for (int i = 0; i < DX_REFUSE_COUNT; i++)
        fprintf(f, "duplex_handshakes_refused_total{reason=\"%s\"} %llu\n", reasons[i],
                (unsigned long long)s->refused[i]);
    one(f, "duplex_http_requests_total", "counter", "Plain HTTP requests routed.",
        s->http_requests);
    one(f, "duplex_sessions_opened_total", "counter",
        "HTTP sessions opened (the fallback transport; not counted in duplex_handshakes_total).",
        s->sessions_opened);
    one(f, "duplex_sessions_handed_over_total", "counter",
        "Requests of an HTTP session accepted by one thread and handed to the session's own "
        "(--threads).",
        s->sessions_handed_in);

    by_op(f, "duplex_messages_received_total", "counter", "Complete messages received.",
          s->msgs_in);
    by_op(f, "duplex_message_bytes_received_total", "counter",
          "Payload bytes of the messages received (decompressed).", s->bytes_in);
    by_op(f, "duplex_messages_sent_total", "counter",
          "Messages queued to clients (a broadcast counts once per recipient).", s->msgs_out);
    by_op(f, "duplex_message_bytes_sent_total", "counter",
          "Payload bytes of the messages sent (before compression).", s->bytes_out);
    one(f, "duplex_pings_sent_total", "counter", "Ping frames sent.", s->pings_out);
    one(f, "duplex_pongs_received_total", "counter", "Pong frames received.", s->pongs_in);
    by_frame(f, "duplex_frames_received_total", "Frames received, by opcode.", s->frames_in);
    by_frame(f, "duplex_frames_sent_total", "Frames queued to be sent, by opcode.", s->frames_out);
    one(f, "duplex_deflate_received_bytes_total", "counter",
        "permessage-deflate: compressed payload bytes received.", s->inflate_in);
    one(f, "duplex_deflate_received_inflated_bytes_total", "counter",
        "permessage-deflate: what the compressed payloads received inflated to.", s->inflate_out);
    one(f, "duplex_deflate_sent_input_bytes_total", "counter",
        "permessage-deflate: payload bytes of the messages sent compressed, before compression.",
        s->deflate_in);
    one(f, "duplex_deflate_sent_bytes_total", "counter",
        "permessage-deflate: compressed payload bytes sent.", s->deflate_out);
    one(f, "duplex_socket_bytes_received_total", "counter", "Bytes read from sockets (after TLS).",
        s->wire_in);
    one(f, "duplex_socket_bytes_sent_total", "counter", "Bytes written to sockets (before TLS).",
        s->wire_out);
    by_code(f, "duplex_websocket_closed_total",
            "WebSockets ended, by the close code reported (the peer's, ours, or 1006).", s->closed);
    by_code(f, "duplex_close_frames_sent_total",
            "Close frames the server started (API, timeouts, policies, shutdown).", s->close_sent);

    one(f, "duplex_backpressure_pauses_total", "counter",
        "Times a connection's reading stopped because its output reached max_buffered/2.",
        s->paused);
    one(f, "duplex_slow_consumers_total", "counter",
        "Sends refused because the output queue was at max_buffered (slow consumers).",
        s->slow_closed);
    one(f, "duplex_queued_bytes", "gauge",
        "Bytes waiting in connections' output queues (their bufferedAmount, summed).", s->queued);
    one(f, "duplex_connections_paused", "gauge",
        "Connections whose reading is stopped now because their output is above max_buffered/2.",
        s->paused_now);

    one(f, "duplex_threads", "gauge", "Event loops (threads) summed here.", (uint64_t)t.threads);
    one(f, "duplex_io_uring_threads", "gauge",
        "Threads whose open WebSockets use io_uring (the others use epoll).", (uint64_t)t.uring);
    one(f, "duplex_io_uring_connections", "gauge",
        "WebSocket sockets on io_uring now, closing ones included (the others use epoll).",
        s->uring_open);
    one(f, "duplex_loop_iterations_total", "counter", "Event loop iterations.", s->loop_turns);
    one(f, "duplex_loop_timers_total", "counter", "Timer callbacks run.", s->loop_timers);
    static const uint32_t bounds[] = DX_LOOP_TURN_BOUNDS_US;
    hist(f, "duplex_loop_turn_seconds",
         "Time one loop iteration spends working (wait excluded): a stall shows here.", bounds,
         DX_LOOP_TURN_BUCKETS - 1, s->loop_turn_us, s->loop_turn_us_sum);
    chat_metrics(f);
    cluster_metrics(f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static int on_http(dx_server_conn *c, void *user, const dx_http_route *r) {
    if (r->path_len == 8 && !memcmp(r->path, "/metrics", 8)) {
        if (!public_scrape && !dx_cli_metrics_loopback(r->remote)) {
            static const char why[] = "metrics are for loopback peers (--metrics-public)\n";
            (void)dx_server_http_respond(c, 403, NULL, why, sizeof why - 1);
            return 1;
        }
        size_t len = 0;
        char *text = dx_cli_metrics_text(servers, nservers, &len);
        if (!text) {
            (void)dx_server_http_respond(c, 503, NULL, "out of memory\n", 14);
            return 1;
        }
        (void)dx_server_http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
        free(text);
        return 1;
    }
    return next_http ? next_http(c, user, r) : 0;
}

void dx_cli_metrics_wrap(dx_server_config *cfg, int public_) {
    public_scrape = public_;
    next_http = cfg->on_http;
    cfg->on_http = on_http;
    nservers = 0;
}

void dx_cli_metrics_add(dx_server *srv) {
    if (nservers < MAX_SERVERS) servers[nservers++] = srv;
}

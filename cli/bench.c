/* duplex bench: the load generator (echo, fixed rate, broadcast,
 * handshakes, idle connections, raw TCP) and, as `duplex bench micro`, the
 * protocol-core micro-benchmarks. This file reads the options and prints
 * the report; bench_load.c generates the load. */
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/bench_http.h"
#include "cli/bench_load.h"
#include "cli/cli.h"
#include <duplex/url.h>

/* The command line as given; config() checks it and makes the generator's
 * config. Numbers are kept as parsed (doubles) until then. */
typedef struct bench_opts {
    const char *url, *ca_file;
    double connections, size, inflight, duration, warmup, threads, rate, server_pid, sources;
    enum dx_bench_mode mode;
    enum dx_bench_transport transport;
    int modes;         /* --broadcast, --handshakes, --idle given (one at most) */
    int threads_given; /* --threads given, whatever its value */
    int binary, raw, deflate, insecure, json_payload, json;
    int progress; /* -1: the default, decided in config() */
} bench_opts;

#define OFF(f) offsetof(bench_opts, f)

static const char *const transport_names[] = {"ws", "stream", "poll", "eio"};

static int bad(const char *msg, const char *arg) {
    return dx_cli_bad("bench", msg, arg);
}

static int parse_num(const char *s, double lo, double hi, double *out) {
    if (!s || !*s) return -1;
    char *end;
    double v = strtod(s, &end);
    if (*end || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

/* A number in [lo, hi] into the double at opt->off. The error names the
 * option as typed: the short forms (-c, -d, -t) have entries of their own. */
static int num(void *p, const dx_cli_opt *opt, const char *val, double lo, double hi) {
    double v;
    if (parse_num(val, lo, hi, &v)) return bad("bad value for", opt->name);
    memcpy((char *)p + opt->off, &v, sizeof v);
    return 0;
}

static int set_connections(void *p, const dx_cli_opt *opt, const char *val) {
    return num(p, opt, val, 1, 1000000);
}

static int set_size(void *p, const dx_cli_opt *opt, const char *val) {
    return num(p, opt, val, 0, 64 << 20);
}

static int set_inflight(void *p, const dx_cli_opt *opt, const char *val) {
    return num(p, opt, val, 1, 65536);
}

static int set_duration(void *p, const dx_cli_opt *opt, const char *val) {
    return num(p, opt, val, 0.01, 86400);
}

static int set_warmup(void *p, const dx_cli_opt *opt, const char *val) {
    return num(p, opt, val, 0, 3600);
}

static int set_threads(void *p, const dx_cli_opt *opt, const char *val) {
    ((bench_opts *)p)->threads_given = 1;
    return num(p, opt, val, 1, 256);
}

/* --rate and --server-pid. */
static int set_billion(void *p, const dx_cli_opt *opt, const char *val) {
    return num(p, opt, val, 1, 1e9);
}

static int set_sources(void *p, const dx_cli_opt *opt, const char *val) {
    return num(p, opt, val, 1, 250);
}

static int set_mode(void *p, const dx_cli_opt *opt, const char *val) {
    bench_opts *o = p;
    o->mode = !strcmp(opt->name, "--broadcast") ? BM_BROADCAST : BM_HANDSHAKES;
    o->modes++;
    return 0;
}

/* --idle N is a mode that also sets the connections (a later --connections
 * still overrides it). */
static int set_idle(void *p, const dx_cli_opt *opt, const char *val) {
    bench_opts *o = p;
    int rc = num(p, opt, val, 1, 1000000);
    if (rc) return rc;
    o->mode = BM_IDLE;
    o->modes++;
    return 0;
}

static int set_transport(void *p, const dx_cli_opt *opt, const char *val) {
    int k = 0;
    while (k < 4 && strcmp(val, transport_names[k]))
        k++;
    if (k == 4) return bad("--transport is ws, stream, poll or eio, not", val);
    ((bench_opts *)p)->transport = (enum dx_bench_transport)k;
    return 0;
}

static int set_payload(void *p, const dx_cli_opt *opt, const char *val) {
    bench_opts *o = p;
    if (!strcmp(val, "json"))
        o->json_payload = 1;
    else if (!strcmp(val, "letters"))
        o->json_payload = 0;
    else
        return bad("--payload is 'letters' or 'json', not", val);
    return 0;
}

/* Both the parser and --help: an entry's help is its text in --help. */
static const dx_cli_opt bench_options[] = {
    {.name = "--url",
     .arg = "URL",
     .set = dx_cli_set_str,
     .off = OFF(url),
     .help = "the server, ws:// or wss:// (the path is the request target)",
     .heading = "load:\n"},
    {.name = "--transport",
     .arg = "T",
     .set = set_transport,
     .help = "what carries the messages (default ws):\n"
             "  ws      WebSocket\n"
             "  stream  duplex's HTTP session transport (the fallback,\n"
             "          docs/fallback.md) as web/client/http_socket.js\n"
             "          speaks it: SSE down, POSTs up\n"
             "  poll    the same with long polls down\n"
             "  eio     Socket.IO 4 long-polling (Engine.IO 4), events\n"
             "          \"m\" on the main namespace, for an echo server\n"
             "          such as bench/fallback/sio_server.mjs; the path\n"
             "          is /socket.io/ unless the URL names another\n"
             "The HTTP ones keep two HTTP/1.1 connections per client\n"
             "(up, down), one POST in flight batching what queued\n"
             "meanwhile; echo and --rate modes, one thread; the report\n"
             "adds HTTP requests per message. --url http:// works too"},
    {.name = "--connections",
     .arg = "N",
     .set = set_connections,
     .off = OFF(connections),
     .help = "connections (default 100)"},
    {.name = "-c", .arg = "N", .set = set_connections, .off = OFF(connections)},
    {.name = "--size",
     .arg = "B",
     .set = set_size,
     .off = OFF(size),
     .help = "payload bytes per message (default 20)"},
    {.name = "--inflight",
     .arg = "K",
     .set = set_inflight,
     .off = OFF(inflight),
     .help = "messages in flight per connection (default 1)"},
    {.name = "--duration",
     .arg = "S",
     .set = set_duration,
     .off = OFF(duration),
     .help = "measured seconds (default 5)"},
    {.name = "-d", .arg = "S", .set = set_duration, .off = OFF(duration)},
    {.name = "--warmup",
     .arg = "S",
     .set = set_warmup,
     .off = OFF(warmup),
     .help = "seconds of load before measuring (default 0)"},
    {.name = "--binary",
     .set = dx_cli_set_true,
     .off = OFF(binary),
     .help = "binary messages (default text, ASCII)"},
    {.name = "--text", .set = dx_cli_set_false, .off = OFF(binary)},
    {.name = "--payload",
     .arg = "KIND",
     .set = set_payload,
     .help = "letters (a-z repeated, the default) or json (chat records\n"
             "with varying fields, which compress like real traffic)"},
    {.name = "--deflate",
     .set = dx_cli_set_true,
     .off = OFF(deflate),
     .help = "offer permessage-deflate (the browser's offer) and fail\n"
             "connections where the server refuses it; frames then go\n"
             "through the library's dx_conn, which compresses"},
    {.name = "--threads",
     .arg = "T",
     .set = set_threads,
     .off = OFF(threads),
     .help = "generator threads, one epoll loop each (default 1)"},
    {.name = "-t", .arg = "T", .set = set_threads, .off = OFF(threads)},
    {.name = "--insecure",
     .short_name = 'k',
     .set = dx_cli_set_true,
     .off = OFF(insecure),
     .help = "wss: accept any certificate (testing only)",
     .label = "-k, --insecure"},
    {.name = "--ca",
     .arg = "FILE",
     .set = dx_cli_set_str,
     .off = OFF(ca_file),
     .help = "wss: trust the CAs in PEM FILE instead of the system's",
     .label = "    --ca FILE"},
    {.name = "--rate",
     .arg = "R",
     .set = set_billion,
     .off = OFF(rate),
     .help = "open loop: R messages/s in total, spread evenly over the\n"
             "connections; latency counts from each message's scheduled\n"
             "send time, so stalls are not hidden (coordinated omission)",
     .heading = "\nmodes (default: closed-loop echo):\n"},
    {.name = "--broadcast",
     .set = set_mode,
     .help = "one extra connection publishes (at --rate R, or with\n"
             "--inflight K of its own copies outstanding), the\n"
             "--connections N others count deliveries and fan-out\n"
             "latency; for `duplex serve --broadcast`. --size >= 16"},
    {.name = "--handshakes",
     .set = set_mode,
     .help = "each connection connects, upgrades, closes (1000) and\n"
             "starts again: handshakes/s and upgrade latency"},
    {.name = "--idle",
     .arg = "N",
     .set = set_idle,
     .off = OFF(connections),
     .help = "open N connections, echo one message on each, hold them\n"
             "for --duration; with --server-pid the server's RSS growth\n"
             "per connection, twice: from the server as it was when\n"
             "the bench began (start a fresh one: the figure an\n"
             "operator sees), and from after a warm-up of 256\n"
             "connections (the connections' own share). Over 20,000\n"
             "connections to 127.x the\n"
             "source addresses 127.0.0.1, .2, ... are used in turn"},
    {.name = "--raw",
     .set = dx_cli_set_true,
     .off = OFF(raw),
     .help = "plain TCP: the same payloads without WebSocket framing,\n"
             "for a raw TCP echo server (the baseline)"},
    {.name = "--server-pid",
     .arg = "PID",
     .set = set_billion,
     .off = OFF(server_pid),
     .help = "also report the server's CPU time per message (and its\n"
             "RSS with --idle), read from /proc/PID",
     .heading = "\nmeasuring the server:\n"},
    {.name = "--sources",
     .arg = "N",
     .set = set_sources,
     .off = OFF(sources),
     .help = "spread connections over 127.0.0.1 .. 127.0.0.N"},
    {.name = "--json",
     .set = dx_cli_set_true,
     .off = OFF(json),
     .help = "print one JSON object instead of the report",
     .heading = "\noutput:\n"},
    {.name = "--progress",
     .set = dx_cli_set_true,
     .off = OFF(progress),
     .help = "a progress line on stderr each second (the default on a\n"
             "terminal for runs of 3 s or more); --no-progress"},
    {.name = "--no-progress", .set = dx_cli_set_false, .off = OFF(progress)},
    {.name = "--help", .short_name = 'h', .set = dx_cli_set_help},
    {0},
};

/* The help is written in one write: past the 4 KiB of a pipe's stdio
 * buffer it would take two, and `duplex bench --help | grep -q` (which
 * exits at its first match) would then cost the second a SIGPIPE. */
static void usage(FILE *out) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) f = out;
    fputs("usage: duplex bench --url ws://HOST:PORT/PATH [options]\n"
          "       duplex bench micro [--json] [--size BYTES]\n\n"
          "Load generator for WebSocket servers. By default every connection keeps\n"
          "--inflight messages in flight (each echo answered by a new message) and the\n"
          "report gives echoes per second and their round-trip latency.\n\n",
          f);
    dx_cli_help(f, bench_options, 23, 0);
    fputs("\nThe generator's own CPU use is reported: at ~100% of its threads it, not the\n"
          "server, is the limit. Exit status: 0 when messages (or handshakes) were\n"
          "measured, 1 when none were or no connection opened, 2 for a usage error.\n"
          "\n"
          "  micro                protocol-core micro-benchmarks: memcpy vs unmasking,\n"
          "                       UTF-8 validation and small-frame parsing (--json).\n",
          f);
    if (f == out) return;
    fclose(f);
    fflush(out);
    for (size_t at = 0; at < len;) {
        ssize_t w = write(fileno(out), text + at, len - at);
        if (w <= 0) break;
        at += (size_t)w;
    }
    free(text);
}

/* Parses argv into `o` (set to the defaults first): 0, DX_CLI_STOP for
 * --help, or 2 after the usage error. */
static int parse(int argc, char **argv, bench_opts *o) {
    *o = (bench_opts){.mode = BM_ECHO,
                      .connections = 100,
                      .size = 20,
                      .inflight = 1,
                      .duration = 5,
                      .threads = 1,
                      .progress = -1};
    return dx_cli_parse("bench", bench_options, argc, argv, o, NULL);
}

static int resolve(dx_bench_cfg *cfg) {
    dx_url u = {0};
    const char *why = NULL;
    if (dx_url_parse(cfg->url, strlen(cfg->url), &u, &why) < 0)
        return dx_cli_bad("bench", why ? why : "bad URL", cfg->url);
    if (u.secure && cfg->raw) {
        dx_url_free(&u);
        return dx_cli_bad("bench", "--raw is plain TCP and does not take", cfg->url);
    }
    cfg->tls = u.secure;
    if ((cfg->insecure || cfg->ca_file) && !cfg->tls) {
        dx_url_free(&u);
        return dx_cli_bad("bench", "--insecure and --ca go with wss:// URLs, not", cfg->url);
    }
    if (strlen(u.host) >= sizeof cfg->tls_host) {
        dx_url_free(&u);
        return dx_cli_bad("bench", "host name too long", cfg->url);
    }
    snprintf(cfg->tls_host, sizeof cfg->tls_host, "%s", u.host);
    snprintf(cfg->host_header, sizeof cfg->host_header, "%s", u.host_header);
    snprintf(cfg->target, sizeof cfg->target, "%s", u.target);
    char port[16];
    snprintf(port, sizeof port, "%d", u.port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(u.host, port, &hints, &ai);
    dx_url_free(&u);
    if (rc || !ai) {
        fprintf(stderr, "duplex bench: cannot resolve %s: %s\n", cfg->url, gai_strerror(rc));
        return 1;
    }
    memcpy(&cfg->addr, ai->ai_addr, ai->ai_addrlen);
    cfg->addr_len = ai->ai_addrlen;
    freeaddrinfo(ai);
    if (cfg->addr.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&cfg->addr;
        cfg->loopback = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    return 0;
}

static const char *mode_name(const dx_bench_cfg *cfg) {
    switch (cfg->mode) {
    case BM_ECHO:
        return "echo";
    case BM_RATE:
        return "rate";
    case BM_BROADCAST:
        return "broadcast";
    case BM_HANDSHAKES:
        return "handshakes";
    case BM_IDLE:
        return "idle";
    }
    return "?";
}

static void json_str(const char *s) {
    putchar('"');
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

/* Thousands separators for the human report. */
static const char *grouped(double v, char *buf, size_t cap) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%.0f", v);
    size_t n = strlen(tmp), o = 0;
    for (size_t i = 0; i < n && o + 2 < cap; i++) {
        if (i && (n - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = 0;
    return buf;
}

static void report(const dx_bench_cfg *cfg, const dx_bench_result *r, int json) {
    static const double pcts[] = {50, 90, 99, 99.9};
    static const char *const pnames[] = {"p50", "p90", "p99", "p999"};
    double rate = r->seconds > 0 ? (double)r->messages / r->seconds : 0;
    double gen_pct = r->seconds > 0 ? 100.0 * r->gen_cpu_s / r->seconds : 0;
    int gen_bound = gen_pct >= 90.0 * cfg->threads;
    double srv_pct =
        r->server_cpu_s >= 0 && r->seconds > 0 ? 100 * r->server_cpu_s / r->seconds : -1;
    double us_per_msg =
        r->server_cpu_s >= 0 && r->messages ? 1e6 * r->server_cpu_s / (double)r->messages : -1;
    int conns = cfg->mode == BM_IDLE ? cfg->connections : cfg->connections;
    /* Measured when both readings were taken. A figure below zero is one
     * too: the server's RSS went down meanwhile (its allocator gave back
     * what an earlier run left, as ASan's quarantine does), and is shown. */
    int has_warm = r->rss_before_kib >= 0 && r->rss_after_kib >= 0 && conns;
    int has_fresh = r->rss_fresh_kib >= 0 && r->rss_after_kib >= 0 && conns;
    double rss_per = has_warm ? (double)(r->rss_after_kib - r->rss_before_kib) / conns : 0;
    double rss_per_fresh = has_fresh ? (double)(r->rss_after_kib - r->rss_fresh_kib) / conns : 0;
    const dx_hist *h = r->hist;
    if (json) {
        printf("{\"mode\":\"%s\",\"url\":", mode_name(cfg));
        json_str(cfg->url);
        printf(",\"transport\":\"%s\",\"deflate\":%s,\"payload\":\"%s\"",
               transport_names[cfg->transport], cfg->deflate ? "true" : "false",
               cfg->json_payload ? "json" : "letters");
        printf(",\"raw\":%s,\"binary\":%s,\"connections\":%d,\"connected\":%d,\"size\":%d,"
               "\"inflight\":%d,\"threads\":%d,\"rate\":%.0f,\"duration_s\":%.3f,"
               "\"messages\":%llu,\"sent\":%llu,\"msgs_per_s\":%.1f,\"bytes_per_s\":%.1f,",
               cfg->raw ? "true" : "false", cfg->binary ? "true" : "false", cfg->connections,
               r->connected, cfg->size, cfg->inflight, cfg->threads, cfg->rate, r->seconds,
               (unsigned long long)r->messages, (unsigned long long)r->sent, rate,
               r->seconds > 0 ? (double)r->bytes / r->seconds : 0);
        printf("\"latency_us\":{");
        for (int i = 0; i < 4; i++)
            printf("\"%s\":%.1f,", pnames[i], h ? (double)dx_hist_percentile(h, pcts[i]) / 1e3 : 0);
        printf("\"max\":%.1f,\"mean\":%.1f,\"count\":%llu},", h ? (double)h->max / 1e3 : 0,
               h && h->count ? (double)h->sum / (double)h->count / 1e3 : 0,
               (unsigned long long)(h ? h->count : 0));
        printf("\"errors\":%llu,\"closes\":%llu,\"overflows\":%llu,\"first_error\":",
               (unsigned long long)r->errors, (unsigned long long)r->closes,
               (unsigned long long)r->overflows);
        if (r->first_error)
            json_str(r->first_error);
        else
            printf("null");
        printf(",\"generator_cpu_pct\":%.1f,\"generator_bound\":%s", gen_pct,
               gen_bound ? "true" : "false");
        if (srv_pct >= 0)
            printf(",\"server_cpu_pct\":%.1f,\"server_cpu_us_per_msg\":%.3f", srv_pct, us_per_msg);
        if (cfg->transport != BT_WS)
            printf(",\"http_requests\":%llu,\"requests_per_msg\":%.3f",
                   (unsigned long long)r->requests,
                   r->messages ? (double)r->requests / (double)r->messages : 0);
        if (has_fresh)
            printf(",\"rss_fresh_kib\":%ld,\"rss_per_conn_kib\":%.3f", r->rss_fresh_kib,
                   rss_per_fresh);
        if (has_warm)
            printf(",\"rss_before_kib\":%ld,\"rss_after_kib\":%ld,\"rss_per_conn_warm_kib\":%.3f",
                   r->rss_before_kib, r->rss_after_kib, rss_per);
        printf("}\n");
        return;
    }
    char g1[40], g2[40];
    printf("duplex bench: %s %s%s%s%s%s, %d connection%s, %d B %s, ", mode_name(cfg), cfg->url,
           cfg->transport != BT_WS ? " over " : "",
           cfg->transport != BT_WS ? transport_names[cfg->transport] : "",
           cfg->raw ? " (raw TCP)" : "", cfg->deflate ? " (permessage-deflate)" : "",
           cfg->connections, cfg->connections == 1 ? "" : "s", cfg->size,
           cfg->binary ? "binary" : "text");
    if (cfg->rate > 0)
        printf("%s msg/s, ", grouped(cfg->rate, g1, sizeof g1));
    else if (cfg->mode == BM_ECHO || cfg->mode == BM_BROADCAST)
        printf("%d in flight, ", cfg->inflight);
    printf("%d thread%s, %.1f s\n", cfg->threads, cfg->threads == 1 ? "" : "s", r->seconds);
    printf("  connected   %d\n", r->connected);
    const char *what = cfg->mode == BM_HANDSHAKES  ? "handshakes"
                       : cfg->mode == BM_BROADCAST ? "delivered "
                                                   : "messages  ";
    printf("  %s  %s (%s/s)", what, grouped((double)r->messages, g1, sizeof g1),
           grouped(rate, g2, sizeof g2));
    if (cfg->mode != BM_HANDSHAKES)
        printf(", %.2f MB/s of payload", r->seconds > 0 ? (double)r->bytes / r->seconds / 1e6 : 0);
    printf("\n");
    if (h && h->count) {
        printf("  latency     ");
        for (int i = 0; i < 4; i++)
            printf("%s %.1f  ", pnames[i], (double)dx_hist_percentile(h, pcts[i]) / 1e3);
        printf("max %.1f  mean %.1f µs\n", (double)h->max / 1e3,
               (double)h->sum / (double)h->count / 1e3);
    }
    if (cfg->transport != BT_WS && r->messages)
        printf("  requests    %s HTTP requests answered, %.2f per message\n",
               grouped((double)r->requests, g1, sizeof g1),
               (double)r->requests / (double)r->messages);
    printf("  generator   %.0f%% CPU of %d core%s%s\n", gen_pct, cfg->threads,
           cfg->threads == 1 ? "" : "s", gen_bound ? " (the generator is the limit)" : "");
    if (srv_pct >= 0)
        printf("  server      %.0f%% CPU, %.2f µs per message\n", srv_pct, us_per_msg);
    if (has_fresh)
        printf("  server RSS  %ld KiB before the first connection, %ld KiB with all open: "
               "%.3f KiB per connection (what an operator sees)\n",
               r->rss_fresh_kib, r->rss_after_kib, rss_per_fresh);
    if (has_warm)
        printf("  warm        %ld KiB after a warm-up of 256 connections: %.3f KiB per connection "
               "(the connections' own share)\n",
               r->rss_before_kib, rss_per);
    printf("  errors      %llu%s%s%s, closes %llu", (unsigned long long)r->errors,
           r->first_error ? " (first: " : "", r->first_error ? r->first_error : "",
           r->first_error ? ")" : "", (unsigned long long)r->closes);
    if (r->overflows) printf(", sends skipped %llu", (unsigned long long)r->overflows);
    printf("\n");
}

/* The checks between options, and the generator's config they make (the
 * server's address resolved): 0, 2 after the usage error, or 1 when the
 * name does not resolve. */
static int config(const bench_opts *o, dx_bench_cfg *cfg) {
    *cfg = (dx_bench_cfg){.mode = o->mode,
                          .transport = o->transport,
                          .url = o->url,
                          .insecure = o->insecure,
                          .ca_file = o->ca_file,
                          .connections = (int)o->connections,
                          .size = (int)o->size,
                          .inflight = (int)o->inflight,
                          .rate = o->rate,
                          .duration = o->duration,
                          .warmup = o->warmup,
                          .threads = (int)o->threads,
                          .binary = o->binary,
                          .raw = o->raw,
                          .deflate = o->deflate,
                          .json_payload = o->json_payload,
                          .sources = (int)o->sources,
                          .server_pid = (int)o->server_pid,
                          .progress = o->progress};
    if (!cfg->url) return bad("--url is required", NULL);
    if (o->modes > 1) return bad("choose one of --broadcast, --handshakes, --idle", NULL);
    if (cfg->rate > 0 && cfg->mode == BM_ECHO) cfg->mode = BM_RATE;
    if (cfg->rate > 0 && (cfg->mode == BM_HANDSHAKES || cfg->mode == BM_IDLE))
        return bad("--rate goes with the echo and broadcast modes", NULL);
    if (cfg->raw && cfg->deflate) return bad("--raw and --deflate do not go together", NULL);
    if (cfg->raw && (cfg->mode == BM_BROADCAST || cfg->mode == BM_HANDSHAKES))
        return bad("--raw goes with the echo, rate and idle modes", NULL);
    if (cfg->mode == BM_BROADCAST && cfg->size < 16)
        return bad("--broadcast needs --size 16 or more (the send time travels in it)", NULL);
    if (cfg->raw && cfg->size == 0) return bad("--raw needs --size 1 or more", NULL);
    if ((uint64_t)cfg->size * (uint64_t)cfg->inflight > (1ull << 30))
        return bad("--size times --inflight is over 1 GiB", NULL);
    if (cfg->threads > cfg->connections) cfg->threads = cfg->connections;
    if (cfg->progress < 0) cfg->progress = !o->json && isatty(2) && cfg->duration >= 3;
    if (cfg->transport != BT_WS) {
        if (cfg->mode != BM_ECHO && cfg->mode != BM_RATE)
            return bad("--transport other than ws goes with the echo and rate modes", NULL);
        if (cfg->raw || cfg->deflate || cfg->json_payload)
            return bad("--raw, --deflate and --payload go with --transport ws", NULL);
        if (o->threads_given && cfg->threads > 1)
            return bad("--transport other than ws runs on one thread", NULL);
        if (cfg->transport == BT_EIO && cfg->binary)
            return bad("--transport eio sends text events only", NULL);
        cfg->threads = 1;
    }
    int rc = resolve(cfg);
    if (rc) return rc;
    if (cfg->transport != BT_WS && cfg->tls)
        return bad("--transport other than ws speaks plain HTTP, not", cfg->url);
    return 0;
}

/* Generates the load and prints the report: the command's exit status. */
static int run(const dx_bench_cfg *cfg, int json) {
    dx_bench_result res;
    if ((cfg->transport == BT_WS ? dx_bench_run(cfg, &res) : dx_bench_http_run(cfg, &res)) < 0)
        return 1;
    report(cfg, &res, json);
    free(res.hist);
    if (res.connected == 0 || res.messages == 0) {
        if (!json)
            fprintf(stderr, "duplex bench: nothing measured%s%s\n", res.first_error ? ": " : "",
                    res.first_error ? res.first_error : "");
        return 1;
    }
    return 0;
}

int dx_cli_bench(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "micro")) return dx_cli_bench_micro(argc - 1, argv + 1);
    bench_opts o;
    dx_bench_cfg cfg;
    int rc = parse(argc, argv, &o);
    if (rc == DX_CLI_STOP) {
        usage(stdout);
        return 0;
    }
    if (rc) return rc;
    rc = config(&o, &cfg);
    if (rc) return rc;
    return run(&cfg, o.json);
}

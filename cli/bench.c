/* duplex bench: the load generator (echo, fixed rate, broadcast,
 * handshakes, idle connections, raw TCP) and, as `duplex bench micro`, the
 * protocol-core micro-benchmarks. This file reads the options and prints
 * the report; bench_load.c generates the load. */
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/bench_http.h"
#include "cli/bench_load.h"
#include "cli/cli.h"
#include <duplex/url.h>

/* The help is written in one write: past the 4 KiB of a pipe's stdio
 * buffer it would take two, and `duplex bench --help | grep -q` (which
 * exits at its first match) would then cost the second a SIGPIPE. */
static void usage(FILE *out) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) f = out;
    fprintf(f,
            "usage: duplex bench --url ws://HOST:PORT/PATH [options]\n"
            "       duplex bench micro [--json] [--size BYTES]\n\n"
            "Load generator for WebSocket servers. By default every connection keeps\n"
            "--inflight messages in flight (each echo answered by a new message) and the\n"
            "report gives echoes per second and their round-trip latency.\n\n"
            "load:\n"
            "  --url URL            the server, ws:// or wss:// (the path is the request target)\n"
            "  --transport T        what carries the messages (default ws):\n"
            "                         ws      WebSocket\n"
            "                         stream  duplex's HTTP session transport (the fallback,\n"
            "                                 docs/fallback.md) as web/client/http_socket.js\n"
            "                                 speaks it: SSE down, POSTs up\n"
            "                         poll    the same with long polls down\n"
            "                         eio     Socket.IO 4 long-polling (Engine.IO 4), events\n"
            "                                 \"m\" on the main namespace, for an echo server\n"
            "                                 such as bench/fallback/sio_server.mjs; the path\n"
            "                                 is /socket.io/ unless the URL names another\n"
            "                       The HTTP ones keep two HTTP/1.1 connections per client\n"
            "                       (up, down), one POST in flight batching what queued\n"
            "                       meanwhile; echo and --rate modes, one thread; the report\n"
            "                       adds HTTP requests per message. --url http:// works too\n"
            "  --connections N      connections (default 100)\n");
    fprintf(f, "  --size B             payload bytes per message (default 20)\n"
               "  --inflight K         messages in flight per connection (default 1)\n"
               "  --duration S         measured seconds (default 5)\n"
               "  --warmup S           seconds of load before measuring (default 0)\n"
               "  --binary             binary messages (default text, ASCII)\n"
               "  --payload KIND       letters (a-z repeated, the default) or json (chat records\n"
               "                       with varying fields, which compress like real traffic)\n"
               "  --deflate            offer permessage-deflate (the browser's offer) and fail\n"
               "                       connections where the server refuses it; frames then go\n"
               "                       through the library's dx_conn, which compresses\n"
               "  --threads T          generator threads, one epoll loop each (default 1)\n"
               "  -k, --insecure       wss: accept any certificate (testing only)\n"
               "      --ca FILE        wss: trust the CAs in PEM FILE instead of the system's\n\n"
               "modes (default: closed-loop echo):\n"
               "  --rate R             open loop: R messages/s in total, spread evenly over the\n"
               "                       connections; latency counts from each message's scheduled\n"
               "                       send time, so stalls are not hidden (coordinated omission)\n"
               "  --broadcast          one extra connection publishes (at --rate R, or with\n"
               "                       --inflight K of its own copies outstanding), the\n"
               "                       --connections N others count deliveries and fan-out\n"
               "                       latency; for `duplex serve --broadcast`. --size >= 16\n"
               "  --handshakes         each connection connects, upgrades, closes (1000) and\n"
               "                       starts again: handshakes/s and upgrade latency\n"
               "  --idle N             open N connections, echo one message on each, hold them\n"
               "                       for --duration; with --server-pid the server's RSS growth\n"
               "                       per connection, twice: from the server as it was when\n"
               "                       the bench began (start a fresh one: the figure an\n"
               "                       operator sees), and from after a warm-up of 256\n"
               "                       connections (the connections' own share). Over 20,000\n"
               "                       connections to 127.x the\n"
               "                       source addresses 127.0.0.1, .2, ... are used in turn\n"
               "  --raw                plain TCP: the same payloads without WebSocket framing,\n"
               "                       for a raw TCP echo server (the baseline)\n\n"
               "measuring the server:\n"
               "  --server-pid PID     also report the server's CPU time per message (and its\n"
               "                       RSS with --idle), read from /proc/PID\n"
               "  --sources N          spread connections over 127.0.0.1 .. 127.0.0.N\n\n"
               "output:\n"
               "  --json               print one JSON object instead of the report\n"
               "  --progress           a progress line on stderr each second (the default on a\n"
               "                       terminal for runs of 3 s or more); --no-progress\n\n"
               "The generator's own CPU use is reported: at ~100%% of its threads it, not the\n"
               "server, is the limit. Exit status: 0 when messages (or handshakes) were\n"
               "measured, 1 when none were or no connection opened, 2 for a usage error.\n"
               "\n"
               "  micro                protocol-core micro-benchmarks: memcpy vs unmasking,\n"
               "                       UTF-8 validation and small-frame parsing (--json).\n");
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

static int parse_num(const char *s, double lo, double hi, double *out) {
    if (!s || !*s) return -1;
    char *end;
    double v = strtod(s, &end);
    if (*end || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
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

static const char *const transport_names[] = {"ws", "stream", "poll", "eio"};

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
    double rss_per = r->rss_before_kib >= 0 && r->rss_after_kib >= 0 && conns
                         ? (double)(r->rss_after_kib - r->rss_before_kib) / conns
                         : -1;
    double rss_per_fresh = r->rss_fresh_kib >= 0 && r->rss_after_kib >= 0 && conns
                               ? (double)(r->rss_after_kib - r->rss_fresh_kib) / conns
                               : -1;
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
        if (rss_per_fresh >= 0)
            printf(",\"rss_fresh_kib\":%ld,\"rss_per_conn_kib\":%.3f", r->rss_fresh_kib,
                   rss_per_fresh);
        if (rss_per >= 0)
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
    if (rss_per_fresh >= 0)
        printf("  server RSS  %ld KiB before the first connection, %ld KiB with all open: "
               "%.3f KiB per connection (what an operator sees)\n",
               r->rss_fresh_kib, r->rss_after_kib, rss_per_fresh);
    if (rss_per >= 0)
        printf("  warm        %ld KiB after a warm-up of 256 connections: %.3f KiB per connection "
               "(the connections' own share)\n",
               r->rss_before_kib, rss_per);
    printf("  errors      %llu%s%s%s, closes %llu", (unsigned long long)r->errors,
           r->first_error ? " (first: " : "", r->first_error ? r->first_error : "",
           r->first_error ? ")" : "", (unsigned long long)r->closes);
    if (r->overflows) printf(", sends skipped %llu", (unsigned long long)r->overflows);
    printf("\n");
}

int dx_cli_bench(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "micro")) return dx_cli_bench_micro(argc - 1, argv + 1);
    dx_bench_cfg cfg = {.mode = BM_ECHO,
                        .connections = 100,
                        .size = 20,
                        .inflight = 1,
                        .duration = 5,
                        .threads = 1,
                        .progress = -1};
    int json = 0, modes = 0, threads_given = 0;
    double v;
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        char name[64];
        const char *val = dx_cli_split_eq(&arg, name, sizeof name);
#define FLAG(n) DX_CLI_FLAG(n)
#define VALUE() DX_CLI_VALUE("bench")
#define NUM(lo, hi)                                                                                \
    do {                                                                                           \
        VALUE();                                                                                   \
        if (parse_num(val, lo, hi, &v)) return dx_cli_bad("bench", "bad value for", arg);          \
    } while (0)
        if (FLAG("-h") || FLAG("--help")) {
            usage(stdout);
            return 0;
        } else if (FLAG("--url")) {
            VALUE();
            cfg.url = val;
        } else if (FLAG("--connections") || FLAG("-c")) {
            NUM(1, 1000000);
            cfg.connections = (int)v;
        } else if (FLAG("--size")) {
            NUM(0, 64 << 20);
            cfg.size = (int)v;
        } else if (FLAG("--inflight")) {
            NUM(1, 65536);
            cfg.inflight = (int)v;
        } else if (FLAG("--duration") || FLAG("-d")) {
            NUM(0.01, 86400);
            cfg.duration = v;
        } else if (FLAG("--warmup")) {
            NUM(0, 3600);
            cfg.warmup = v;
        } else if (FLAG("--threads") || FLAG("-t")) {
            NUM(1, 256);
            cfg.threads = (int)v;
            threads_given = 1;
        } else if (FLAG("--rate")) {
            NUM(1, 1e9);
            cfg.rate = v;
        } else if (FLAG("--binary")) {
            cfg.binary = 1;
        } else if (FLAG("--text")) {
            cfg.binary = 0;
        } else if (FLAG("--raw")) {
            cfg.raw = 1;
        } else if (FLAG("--broadcast")) {
            cfg.mode = BM_BROADCAST;
            modes++;
        } else if (FLAG("--handshakes")) {
            cfg.mode = BM_HANDSHAKES;
            modes++;
        } else if (FLAG("--idle")) {
            NUM(1, 1000000);
            cfg.mode = BM_IDLE;
            cfg.connections = (int)v;
            modes++;
        } else if (FLAG("--server-pid")) {
            NUM(1, 1e9);
            cfg.server_pid = (int)v;
        } else if (FLAG("--sources")) {
            NUM(1, 250);
            cfg.sources = (int)v;
        } else if (FLAG("--json")) {
            json = 1;
        } else if (FLAG("--progress")) {
            cfg.progress = 1;
        } else if (FLAG("--no-progress")) {
            cfg.progress = 0;
        } else if (FLAG("--deflate")) {
            cfg.deflate = 1;
        } else if (FLAG("-k") || FLAG("--insecure")) {
            cfg.insecure = 1;
        } else if (FLAG("--ca")) {
            VALUE();
            cfg.ca_file = val;
        } else if (FLAG("--transport")) {
            VALUE();
            int k = 0;
            while (k < 4 && strcmp(val, transport_names[k]))
                k++;
            if (k == 4)
                return dx_cli_bad("bench", "--transport is ws, stream, poll or eio, not", val);
            cfg.transport = (enum dx_bench_transport)k;
        } else if (FLAG("--payload")) {
            VALUE();
            if (!strcmp(val, "json"))
                cfg.json_payload = 1;
            else if (!strcmp(val, "letters"))
                cfg.json_payload = 0;
            else
                return dx_cli_bad("bench", "--payload is 'letters' or 'json', not", val);
        } else {
            return dx_cli_bad("bench", "unknown option", arg);
        }
#undef FLAG
#undef VALUE
#undef NUM
    }
    if (!cfg.url) return dx_cli_bad("bench", "--url is required", NULL);
    if (modes > 1)
        return dx_cli_bad("bench", "choose one of --broadcast, --handshakes, --idle", NULL);
    if (cfg.rate > 0 && cfg.mode == BM_ECHO) cfg.mode = BM_RATE;
    if (cfg.rate > 0 && (cfg.mode == BM_HANDSHAKES || cfg.mode == BM_IDLE))
        return dx_cli_bad("bench", "--rate goes with the echo and broadcast modes", NULL);
    if (cfg.raw && cfg.deflate)
        return dx_cli_bad("bench", "--raw and --deflate do not go together", NULL);
    if (cfg.raw && (cfg.mode == BM_BROADCAST || cfg.mode == BM_HANDSHAKES))
        return dx_cli_bad("bench", "--raw goes with the echo, rate and idle modes", NULL);
    if (cfg.mode == BM_BROADCAST && cfg.size < 16)
        return dx_cli_bad(
            "bench", "--broadcast needs --size 16 or more (the send time travels in it)", NULL);
    if (cfg.raw && cfg.size == 0) return dx_cli_bad("bench", "--raw needs --size 1 or more", NULL);
    if ((uint64_t)cfg.size * (uint64_t)cfg.inflight > (1ull << 30))
        return dx_cli_bad("bench", "--size times --inflight is over 1 GiB", NULL);
    if (cfg.threads > cfg.connections) cfg.threads = cfg.connections;
    if (cfg.progress < 0) cfg.progress = !json && isatty(2) && cfg.duration >= 3;
    if (cfg.transport != BT_WS) {
        if (cfg.mode != BM_ECHO && cfg.mode != BM_RATE)
            return dx_cli_bad("bench",
                              "--transport other than ws goes with the echo and rate modes", NULL);
        if (cfg.raw || cfg.deflate || cfg.json_payload)
            return dx_cli_bad("bench", "--raw, --deflate and --payload go with --transport ws",
                              NULL);
        if (threads_given && cfg.threads > 1)
            return dx_cli_bad("bench", "--transport other than ws runs on one thread", NULL);
        if (cfg.transport == BT_EIO && cfg.binary)
            return dx_cli_bad("bench", "--transport eio sends text events only", NULL);
        cfg.threads = 1;
    }
    int rc = resolve(&cfg);
    if (rc) return rc;
    if (cfg.transport != BT_WS && cfg.tls)
        return dx_cli_bad("bench", "--transport other than ws speaks plain HTTP, not", cfg.url);

    dx_bench_result res;
    if ((cfg.transport == BT_WS ? dx_bench_run(&cfg, &res) : dx_bench_http_run(&cfg, &res)) < 0)
        return 1;
    report(&cfg, &res, json);
    free(res.hist);
    if (res.connected == 0 || res.messages == 0) {
        if (!json)
            fprintf(stderr, "duplex bench: nothing measured%s%s\n", res.first_error ? ": " : "",
                    res.first_error ? res.first_error : "");
        return 1;
    }
    return 0;
}

/* The chat benchmark's rate mode in C (bench/chat/chat_bench.mjs --mode
 * rate, without Node): N users, each in a direct conversation with its
 * partner (u0-u1, u2-u3, ...), connect on one loop of the library's client
 * (include/duplex/client.h), sync, then each sends one message a second for
 * S seconds, the users' phases spread evenly over the second. It reports
 * the acks' latency (send -> ack), acks per 1-second window, how late the
 * driver itself sent (its lag), and its own CPU and the server's, so that
 * a run shows whether the driver was the limit (issue 19 asks for a driver
 * that costs less than the Node one, which took ~90% of a core at 10,000
 * users on this 2-core box).
 *
 * Build (bench/chat/run --c-driver does it):
 *   cc -O2 -Iinclude bench/chat/rate.c BUILD/libduplex.a -lssl -lcrypto -lz -lpthread
 * Use: rate URL --users N [--seconds S] [--drain S] [--pending K]
 *           [--server-pid PID] [--timeline]
 * URL is ws://HOST:PORT; the server must let one address connect N times a
 * minute (duplex serve --chat --connects-per-ip off --connects-per-user off).
 * Prints one JSON object; exit 0 when every message was acked. */
#define _GNU_SOURCE
#include <duplex/client.h>
#include <duplex/loop.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MAX_SECONDS 120

typedef struct user {
    dx_client *c;
    int i;
    int synced;
    int64_t sent_ns[MAX_SECONDS]; /* message k's send time, 0 once acked */
    char conv[40];
} user;

static struct {
    const char *url;
    int users, seconds, drain, pending_max;
    int server_pid;
    user *u;
    dx_loop *loop;
    dx_timer tick;
    int pending, next_connect, synced, failed;
    int64_t t_connect, t_synced, t0; /* ns */
    /* the measured phase */
    int running, k, idx;
    int64_t sent, acked, errors;
    double *lat;     /* ms, one per ack */
    double *lag;     /* ms, one per send */
    int64_t *window; /* acks per second since t0 */
    int32_t *bucket; /* with --timeline: each ack's 100 ms bucket since t0 */
    double cpu_run0, srv_run0;
} B;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double cpu_self(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + (double)r.ru_stime.tv_sec +
           r.ru_stime.tv_usec / 1e6;
}

/* utime + stime of the server, from /proc/PID/stat; -1 when unknown. */
static double cpu_server(void) {
    if (!B.server_pid) return -1;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", B.server_pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    unsigned long ut = 0, st = 0;
    /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void connect_more(void);

static void conv_of(int a, int b, char *out, size_t cap) {
    char x[16], y[16];
    snprintf(x, sizeof x, "u%d", a);
    snprintf(y, sizeof y, "u%d", b);
    if (strcmp(x, y) < 0)
        snprintf(out, cap, "d:%s:%s", x, y);
    else
        snprintf(out, cap, "d:%s:%s", y, x);
}

static void send_sync(user *u, const char *after, size_t len) {
    char m[160];
    int n =
        after ? snprintf(m, sizeof m, "{\"v\":1,\"type\":\"sync\",\"id\":\"s\",\"after\":\"%.*s\"}",
                         (int)len, after)
              : snprintf(m, sizeof m, "{\"v\":1,\"type\":\"sync\",\"id\":\"s\"}");
    dx_client_send_text(u->c, m, (size_t)n);
}

/* The string value of "key" in a flat JSON object, or NULL. */
static const char *str_field(const char *d, size_t n, const char *key, size_t *len) {
    const char *p = memmem(d, n, key, strlen(key));
    if (!p) return NULL;
    p += strlen(key);
    const char *e = memchr(p, '"', (size_t)(d + n - p));
    if (!e) return NULL;
    *len = (size_t)(e - p);
    return p;
}

static void on_message(dx_client *c, void *arg, enum dx_opcode op, const uint8_t *data,
                       size_t len) {
    (void)c;
    (void)op;
    user *u = arg;
    const char *d = (const char *)data;
    size_t head = len < 48 ? len : 48;
    if (memmem(d, head, "\"type\":\"ack\"", 12)) {
        const char *p = memmem(d, len, "\"id\":", 5);
        if (!p) return;
        long k = strtol(p + 5, NULL, 10);
        if (k < 1 || k > B.seconds || !u->sent_ns[k - 1]) return;
        int64_t t = now_ns();
        B.lat[B.acked++] = (double)(t - u->sent_ns[k - 1]) / 1e6;
        u->sent_ns[k - 1] = 0;
        int64_t w = (t - B.t0) / 1000000000;
        if (w >= 0 && w < B.seconds + B.drain) B.window[w]++;
        if (B.bucket) B.bucket[B.acked - 1] = (int32_t)((t - B.t0) / 100000000);
    } else if (memmem(d, head, "\"type\":\"error\"", 14)) {
        if (B.running) B.errors++;
    } else if (memmem(d, head, "\"type\":\"welcome\"", 16)) {
        send_sync(u, NULL, 0);
    } else if (memmem(d, head, "\"type\":\"sync\"", 13)) {
        size_t n;
        const char *next = str_field(d, len, "\"next\":\"", &n);
        if (next) {
            send_sync(u, next, n);
        } else if (!u->synced) {
            u->synced = 1;
            B.synced++;
            B.pending--;
            connect_more();
        }
    }
}

static void on_close(dx_client *c, void *arg, uint16_t code, const char *reason, size_t rlen,
                     int clean) {
    (void)c;
    (void)reason;
    (void)rlen;
    (void)clean;
    user *u = arg;
    if (!u->synced) {
        B.failed++;
        B.pending--;
        fprintf(stderr, "rate: u%d closed %u before its sync\n", u->i, code);
        connect_more();
    }
}

static void connect_more(void) {
    while (B.next_connect < B.users && B.pending < B.pending_max) {
        user *u = &B.u[B.next_connect];
        u->i = B.next_connect++;
        conv_of(u->i, u->i ^ 1, u->conv, sizeof u->conv);
        char url[256];
        snprintf(url, sizeof url, "%s/chat?uid=u%d", B.url, u->i);
        dx_client_config cfg = {.url = url,
                                .user = u,
                                .on_message = on_message,
                                .on_close = on_close,
                                .handshake_timeout_ms = 60000,
                                .connect_timeout_ms = 60000};
        u->c = dx_client_new(B.loop, &cfg);
        if (!u->c) {
            fprintf(stderr, "rate: cannot create client %d\n", u->i);
            exit(2);
        }
        B.pending++;
    }
}

/* Every 2 ms: what is due is sent; after the last second and the drain,
 * the loop stops. */
static void tick(dx_loop *loop, dx_timer *t) {
    (void)loop;
    int64_t now = now_ns();
    if (!B.running) {
        if (B.synced + B.failed == B.users) {
            B.t_synced = now;
            B.running = 1;
            B.t0 = now + 500000000; /* half a second of quiet first */
            B.cpu_run0 = cpu_self();
            B.srv_run0 = cpu_server();
        }
        dx_timer_start(B.loop, t, 2);
        return;
    }
    double el = (double)(now - B.t0) / 1e6; /* ms */
    while (B.k < B.seconds) {
        if (B.idx == B.users) {
            B.idx = 0;
            B.k++;
            continue;
        }
        double due = B.k * 1000.0 + (double)B.idx * 1000.0 / B.users;
        if (due > el) break;
        user *u = &B.u[B.idx++];
        if (!u->synced) continue;
        char m[200];
        int n = snprintf(m, sizeof m,
                         "{\"v\":1,\"type\":\"send\",\"id\":%d,\"conv\":\"%s\",\"cid\":\"c%d-%d\","
                         "\"text\":\"message %d from u%d\"}",
                         B.k + 1, u->conv, u->i, B.k + 1, B.k + 1, u->i);
        B.lag[B.sent++] = el - due;
        u->sent_ns[B.k] = now_ns();
        dx_client_send_text(u->c, m, (size_t)n);
    }
    if (B.k >= B.seconds && (B.acked == B.sent || el > (B.seconds + B.drain) * 1000.0)) {
        dx_loop_stop(B.loop);
        return;
    }
    dx_timer_start(B.loop, t, 2);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, int64_t n, double p) {
    if (n == 0) return -1;
    int64_t i = (int64_t)((double)n * p);
    return v[i < n ? i : n - 1];
}

/* The acks and their p99 per 100 ms bucket, as chat_bench.mjs --timeline
 * writes them (chart.mjs draws either): lat[] is in the order the acks
 * came, so each bucket is one run of it. */
static char *timeline(void) {
    int n = (B.seconds + B.drain) * 10;
    size_t cap = (size_t)n * 24 + 64, len = 0;
    char *out = malloc(cap);
    int64_t *count = calloc((size_t)n, sizeof *count);
    double *p99 = malloc((size_t)n * sizeof *p99), *tmp = malloc((size_t)B.acked * sizeof *tmp + 1);
    if (!out || !count || !p99 || !tmp) exit(2);
    int last = -1;
    for (int i = 0; i < n; i++)
        p99[i] = -1;
    for (int64_t a = 0; a < B.acked;) {
        int64_t b = a;
        int k = B.bucket[a];
        while (b < B.acked && B.bucket[b] == k)
            b++;
        if (k >= 0 && k < n) {
            memcpy(tmp, B.lat + a, (size_t)(b - a) * sizeof *tmp);
            qsort(tmp, (size_t)(b - a), sizeof *tmp, cmp_d);
            count[k] = b - a;
            p99[k] = pct(tmp, b - a, 0.99);
            if (k > last) last = k;
        }
        a = b;
    }
    len += (size_t)snprintf(out + len, cap - len, "\"timeline\":{\"bucket_ms\":100,\"acks\":[");
    for (int i = 0; i <= last; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%" PRId64, i ? "," : "", count[i]);
    len += (size_t)snprintf(out + len, cap - len, "],\"p99_ms\":[");
    for (int i = 0; i <= last; i++) {
        if (p99[i] < 0)
            len += (size_t)snprintf(out + len, cap - len, "%snull", i ? "," : "");
        else
            len += (size_t)snprintf(out + len, cap - len, "%s%.2f", i ? "," : "", p99[i]);
    }
    snprintf(out + len, cap - len, "]}");
    free(count);
    free(p99);
    free(tmp);
    return out;
}

static int arg_int(int argc, char **argv, const char *name, int def) {
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name)) return atoi(argv[i + 1]);
    return def;
}

int main(int argc, char **argv) {
    if (argc < 2 || strncmp(argv[1], "ws://", 5)) {
        fprintf(stderr, "usage: rate ws://HOST:PORT --users N [--seconds S] [--drain S] "
                        "[--pending K] [--server-pid PID]\n");
        return 2;
    }
    B.url = argv[1];
    B.users = arg_int(argc, argv, "--users", 1000);
    B.seconds = arg_int(argc, argv, "--seconds", 20);
    B.drain = arg_int(argc, argv, "--drain", 10);
    B.pending_max = arg_int(argc, argv, "--pending", 512);
    B.server_pid = arg_int(argc, argv, "--server-pid", 0);
    if (B.users < 2 || B.users % 2 || B.seconds < 1 || B.seconds > MAX_SECONDS) {
        fprintf(stderr, "rate: --users must be even and >= 2, --seconds 1..%d\n", MAX_SECONDS);
        return 2;
    }
    B.u = calloc((size_t)B.users, sizeof *B.u);
    int64_t total = (int64_t)B.users * B.seconds;
    B.lat = malloc((size_t)total * sizeof *B.lat);
    B.lag = malloc((size_t)total * sizeof *B.lag);
    B.window = calloc((size_t)(B.seconds + B.drain + 1), sizeof *B.window);
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--timeline")) B.bucket = malloc((size_t)total * sizeof *B.bucket);
    B.loop = dx_loop_new(0);
    if (!B.u || !B.lat || !B.lag || !B.window || !B.loop) {
        fprintf(stderr, "rate: out of memory\n");
        return 2;
    }
    double cpu0 = cpu_self(), srv0 = cpu_server();
    B.t_connect = now_ns();
    connect_more();
    dx_timer_init(&B.tick, tick);
    dx_timer_start(B.loop, &B.tick, 2);
    dx_loop_run(B.loop);
    double cpu_run = cpu_self() - B.cpu_run0, srv_end = cpu_server();

    char *tl = B.bucket ? timeline() : NULL;
    qsort(B.lat, (size_t)B.acked, sizeof *B.lat, cmp_d);
    qsort(B.lag, (size_t)B.sent, sizeof *B.lag, cmp_d);
    int64_t wmin = -1, zero = 0;
    for (int w = 0; w < B.seconds; w++) {
        if (wmin < 0 || B.window[w] < wmin) wmin = B.window[w];
        if (!B.window[w]) zero++;
    }
    printf("{\"driver\":\"c\",\"mode\":\"rate\",\"users\":%d,\"seconds\":%d,\"synced\":%d,"
           "\"failed\":%d,\"connect_ms\":%.0f,\"sent\":%" PRId64 ",\"acked\":%" PRId64
           ",\"unacked\":%" PRId64 ",\"errors\":%" PRId64 ","
           "\"ack_ms\":{\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,\"max\":%.2f},"
           "\"acks_per_s\":{\"min\":%" PRId64 ",\"zero_windows\":%" PRId64 "},"
           "\"send_lag_ms\":{\"p99\":%.2f,\"max\":%.2f},"
           "\"driver_cpu_s\":{\"total\":%.2f,\"run\":%.2f},\"server_cpu_s\":{\"total\":%.2f,"
           "\"run\":%.2f}",
           B.users, B.seconds, B.synced, B.failed, (double)(B.t_synced - B.t_connect) / 1e6, B.sent,
           B.acked, B.sent - B.acked, B.errors, pct(B.lat, B.acked, 0.5), pct(B.lat, B.acked, 0.9),
           pct(B.lat, B.acked, 0.99), pct(B.lat, B.acked, 1.0), wmin, zero,
           pct(B.lag, B.sent, 0.99), pct(B.lag, B.sent, 1.0), cpu_self() - cpu0, cpu_run,
           srv0 >= 0 ? srv_end - srv0 : -1, B.srv_run0 >= 0 ? srv_end - B.srv_run0 : -1);
    if (tl) printf(",%s", tl);
    printf("}\n");
    free(tl);
    for (int i = 0; i < B.users; i++)
        if (B.u[i].c) dx_client_free(B.u[i].c);
    dx_loop_free(B.loop);
    int ok = B.acked == B.sent && B.failed == 0;
    free(B.u);
    free(B.lat);
    free(B.lag);
    free(B.window);
    free(B.bucket);
    return ok ? 0 : 1;
}

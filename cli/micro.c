/* duplex bench micro: the protocol core's hot loops, measured on the same
 * buffers in one run so the figures compare (ratios matter, not absolutes:
 * the machines are shared).
 *
 *   memcpy_gbps                 memcpy of the buffer (the reference)
 *   unmask_gbps                 dx_mask in place over the same buffer
 *   utf8_ascii_gbps             dx_utf8_valid over ASCII text
 *   utf8_mixed_gbps             over realistic Chinese/English chat text
 *   parse_small_frames_per_sec  dx_frame_parse as a server over a buffer of
 *                               masked 20-byte binary frames (26 bytes each);
 *                               the parser unmasks in place, so each pass
 *                               unmasks the previous pass's output: the work
 *                               per frame is the same as on fresh input.
 * Each figure is the best of several timed repetitions of ~0.1 s. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <duplex/frame.h>
#include <duplex/mask.h>
#include <duplex/utf8.h>

#include "cli.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Keeps the compiler from dropping work whose result is unused. */
static void sink(const void *p) {
    __asm__ volatile("" : : "r"(p) : "memory");
}

typedef double (*pass_fn)(void *ctx); /* runs one pass, returns units done */

/* Best units/second over `reps` timed batches of passes lasting ≥ 0.1 s. */
static double measure(pass_fn fn, void *ctx, int reps) {
    double best = 0;
    for (int r = 0; r < reps; r++) {
        double units = 0, t0 = now(), t1;
        do {
            units += fn(ctx);
            t1 = now();
        } while (t1 - t0 < 0.1);
        double rate = units / (t1 - t0);
        if (rate > best) best = rate;
    }
    return best;
}

typedef struct bufs {
    uint8_t *a, *b;
    size_t len;
    long frames;
} bufs;

static double pass_memcpy(void *ctx) {
    bufs *x = ctx;
    memcpy(x->b, x->a, x->len);
    sink(x->b);
    return (double)x->len;
}

static double pass_unmask(void *ctx) {
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    bufs *x = ctx;
    dx_mask(x->b, x->len, key, 0);
    sink(x->b);
    return (double)x->len;
}

static double pass_utf8(void *ctx) {
    bufs *x = ctx;
    if (dx_utf8_valid(x->a, x->len) != 0) abort(); /* the text is valid */
    return (double)x->len;
}

static double pass_frames(void *ctx) {
    bufs *x = ctx;
    dx_frame_parser p;
    dx_frame_parser_init(&p, DX_ROLE_SERVER, 1 << 20);
    uint8_t *q = x->b;
    size_t left = x->len;
    long n = 0;
    while (left > 0) {
        dx_frame_chunk ch;
        int64_t k = dx_frame_parse(&p, q, left, &ch);
        if (k <= 0) abort();
        n += ch.present && ch.last;
        q += k;
        left -= (size_t)k;
    }
    x->frames += n;
    return (double)n;
}

/* Chat text as people write it: mostly CJK (3-byte UTF-8) with English
 * words, punctuation, numbers and the odd emoji (4-byte). */
static const char *const chat[] = {
    "你好！今天下午三点开会，别忘了带上周的报告。",
    "OK, I'll bring the slides 👍 ",
    "我们的 WebSocket 服务器已经上线了，延迟大约 2ms。",
    "Great news! Can you share the dashboard link? ",
    "链接在群公告里，记得用新的账号登录。谢谢大家～",
    "晚上一起吃饭吗？老地方见 🍜 ",
    "Sure, see you at 7pm. ",
};

static void fill_chat(uint8_t *buf, size_t len, size_t *used) {
    size_t n = 0, i = 0;
    for (;;) {
        const char *s = chat[i++ % (sizeof chat / sizeof chat[0])];
        size_t l = strlen(s);
        if (n + l > len) break;
        memcpy(buf + n, s, l);
        n += l;
    }
    *used = n;
}

static void cpu_model(char *out, size_t cap) {
    snprintf(out, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                c += 2;
                c[strcspn(c, "\n")] = 0;
                snprintf(out, cap, "%s", c);
            }
            break;
        }
    }
    fclose(f);
}

int dx_cli_bench_micro(int argc, char **argv) {
    int json = 0;
    size_t size = 1 << 20;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
            char *end;
            unsigned long long v = strtoull(argv[++i], &end, 10);
            if (*end || v < 4096 || v > (1ull << 30)) {
                fprintf(stderr, "duplex bench micro: --size must be 4096 .. 1073741824\n");
                return 2;
            }
            size = (size_t)v;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: duplex bench micro [--json] [--size BYTES]\n"
                   "  buffers of BYTES (default 1 MiB); set DX_NO_SIMD=1 for the portable code\n");
            return 0;
        } else {
            fprintf(stderr, "duplex bench micro: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }

    bufs x = {malloc(size), malloc(size), size, 0};
    if (!x.a || !x.b) {
        fprintf(stderr, "duplex bench micro: out of memory\n");
        return 1;
    }
    memset(x.a, 'a', size);
    memset(x.b, 'b', size);
    const int reps = 5;
    double memcpy_bps = measure(pass_memcpy, &x, reps);
    double unmask_bps = measure(pass_unmask, &x, reps);
    for (size_t i = 0; i < size; i++)
        x.a[i] = (uint8_t)(' ' + i % 95); /* printable ASCII */
    double ascii_bps = measure(pass_utf8, &x, reps);
    size_t full = size;
    fill_chat(x.a, full, &x.len);
    double mixed_bps = measure(pass_utf8, &x, reps);

    /* A buffer of whole 26-byte frames, small enough to stay in cache as a
     * real read buffer does. */
    uint8_t payload[20];
    memset(payload, 'x', sizeof payload);
    size_t fbytes = 0, fcap = 64 * 1024;
    while (fbytes + 26 <= fcap) {
        int64_t n = dx_frame_write(x.b + fbytes, fcap - fbytes, DX_ROLE_CLIENT, 1, 0, DX_OP_BINARY,
                                   payload, sizeof payload);
        if (n != 26) abort();
        fbytes += 26;
    }
    x.len = fbytes;
    double frames_ps = measure(pass_frames, &x, reps);

    char cpu[128];
    cpu_model(cpu, sizeof cpu);
    /* DX_NO_SIMD=1 makes the library take its portable code (simd.c). */
    const char *no_simd = getenv("DX_NO_SIMD");
    const char *simd = no_simd && *no_simd && *no_simd != '0' ? "portable"
                       : __builtin_cpu_supports("avx2")       ? "avx2"
                                                              : "sse2";
    if (json) {
        printf("{\"cpu\":\"%s\",\"simd\":\"%s\",\"buffer_bytes\":%zu,"
               "\"memcpy_gbps\":%.2f,\"unmask_gbps\":%.2f,\"utf8_ascii_gbps\":%.2f,"
               "\"utf8_mixed_gbps\":%.2f,\"parse_small_frames_per_sec\":%.0f}\n",
               cpu, simd, size, memcpy_bps / 1e9, unmask_bps / 1e9, ascii_bps / 1e9,
               mixed_bps / 1e9, frames_ps);
    } else {
        printf("cpu %s, simd %s, buffers %zu bytes\n", cpu, simd, size);
        printf("  memcpy             %8.2f GB/s\n", memcpy_bps / 1e9);
        printf("  unmask             %8.2f GB/s  (%.2fx memcpy)\n", unmask_bps / 1e9,
               unmask_bps / memcpy_bps);
        printf("  utf8 ascii         %8.2f GB/s  (%.2fx memcpy)\n", ascii_bps / 1e9,
               ascii_bps / memcpy_bps);
        printf("  utf8 mixed         %8.2f GB/s\n", mixed_bps / 1e9);
        printf("  small frames       %8.2f M/s   (20-byte masked binary, as a server)\n",
               frames_ps / 1e6);
    }
    free(x.a);
    free(x.b);
    return 0;
}

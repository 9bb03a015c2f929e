/* duplex bench: the load generator's engine, shared by the modes.
 *
 * One epoll loop per generator thread, each with its share of the
 * connections; no dx_loop, so that the generator costs as little per
 * message as possible and can pace sends to the microsecond. The
 * connections are plain TCP (or TLS for wss://, through the library's
 * io/tls.h) and speak just enough WebSocket for a client: the upgrade
 * (dx_handshake_*), masked frames out (dx_frame_write_header +
 * dx_mask_copy), the frame parser in (dx_frame_parse). */
#ifndef DX_CLI_BENCH_LOAD_H
#define DX_CLI_BENCH_LOAD_H

#include <stdint.h>
#include <sys/socket.h>

#include "cli/bench_hist.h"

enum dx_bench_mode {
    BM_ECHO,       /* K messages in flight per connection (closed loop) */
    BM_RATE,       /* a fixed total rate, open loop */
    BM_BROADCAST,  /* one publisher, the other connections subscribe */
    BM_HANDSHAKES, /* connect, upgrade, close, again */
    BM_IDLE,       /* open N connections, echo one message each, hold */
};

/* What carries the messages (bench_http.h for all but BT_WS). */
enum dx_bench_transport {
    BT_WS,     /* WebSocket (this file) */
    BT_STREAM, /* duplex's HTTP session transport, SSE down */
    BT_POLL,   /* the same, long polls down */
    BT_EIO,    /* Engine.IO 4 / Socket.IO 4 long-polling */
};

typedef struct dx_bench_cfg {
    enum dx_bench_mode mode;
    enum dx_bench_transport transport;
    const char *url;              /* as given, for the report */
    char host_header[300];        /* Host: value */
    char target[1024];            /* request target */
    struct sockaddr_storage addr; /* the server */
    socklen_t addr_len;
    int loopback;        /* the server is on 127.0.0.0/8: several source addresses work */
    int tls;             /* wss:// */
    int insecure;        /* wss: accept any certificate */
    const char *ca_file; /* wss: trust these CAs instead of the system's (NULL: system) */
    char tls_host[256];  /* wss: the name sent as SNI and verified */
    int connections;
    int size; /* payload bytes */
    int inflight;
    double rate;     /* messages/s in total (BM_RATE, BM_BROADCAST), 0 = closed loop */
    double duration; /* measured seconds */
    double warmup;   /* seconds before measuring */
    int threads;
    int binary;
    int raw;          /* plain TCP, no WebSocket */
    int deflate;      /* offer permessage-deflate; fail connections it is refused on */
    int json_payload; /* payload: JSON-like chat records instead of letters */
    int sources;      /* source addresses 127.0.0.1.. (0: automatic) */
    int server_pid;   /* 0 = none */
    int progress;     /* print a progress line on stderr */
} dx_bench_cfg;

typedef struct dx_bench_result {
    double seconds;          /* measured window */
    uint64_t messages;       /* received complete (echoes, deliveries, handshakes) */
    uint64_t sent;           /* messages sent (broadcast: published) */
    uint64_t bytes;          /* payload bytes received */
    uint64_t errors;         /* connect/handshake/protocol/write failures, wrong lengths */
    uint64_t closes;         /* connections the server closed */
    uint64_t overflows;      /* rate mode: sends skipped (too many outstanding) */
    uint64_t requests;       /* HTTP transports: requests answered in the window */
    int connected;           /* connections open when the measurement started */
    dx_hist *hist;           /* latency (ns), owned by the caller of dx_bench_run */
    double gen_cpu_s;        /* generator CPU (user+sys) during the window */
    double server_cpu_s;     /* server CPU during the window (-1: unknown) */
    long rss_fresh_kib;      /* idle mode: server VmRSS before anything (-1: unknown) */
    long rss_before_kib;     /* ... after the warm-up, before the connections */
    long rss_after_kib;      /* ... with every connection open and idle */
    const char *first_error; /* NULL, or first_error_text */
    char first_error_text[200];
} dx_bench_result;

/* Runs one benchmark. Returns 0 (the result may still count errors), or -1
 * with a message on stderr when nothing could run at all. */
int dx_bench_run(const dx_bench_cfg *cfg, dx_bench_result *res);

/* Server CPU seconds (user+sys, all threads) from /proc/PID/stat, or -1. */
double dx_bench_proc_cpu(int pid);
/* Server VmRSS in KiB from /proc/PID/status, or -1. */
long dx_bench_proc_rss(int pid);

#endif

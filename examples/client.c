/* A resilient client: the notes' heartbeat ("ping every N seconds; no
 * answer within T and the server is dead") and their reconnect ("timer
 * based, a lock against double reconnects, exponential backoff, a limit of
 * attempts, nothing after a manual close"), all done by dx_client when the
 * config asks for it.
 *
 * Run: build/examples/client ws://127.0.0.1:8080/ [seconds] [failover URLs...]
 * It sends "tick N" every second (queued while disconnected, sent in order
 * once back), prints what arrives and every change of state, pings after
 * 2 s of silence and declares the server dead when nothing answers within
 * 1 s, reconnects with backoff (at most 10 attempts in a row, never after
 * close code 4401), and after `seconds` (default 10) closes with 1000.
 * Stop and restart `duplex serve --echo` meanwhile to watch it.
 */
#include <stdio.h>
#include <stdlib.h>

#include <duplex/duplex.h>

typedef struct app {
    dx_loop *loop;
    dx_client *client;
    dx_timer tick, stop;
    unsigned n;
    int status; /* exit status */
} app;

#define APP_OF(t, field) ((app *)((char *)(t)-offsetof(app, field)))

static void on_tick(dx_loop *loop, dx_timer *t) {
    app *a = APP_OF(t, tick);
    char msg[32];
    int len = snprintf(msg, sizeof msg, "tick %u", ++a->n);
    if (dx_client_send_text(a->client, msg, (size_t)len) == DX_EBUSY)
        fprintf(stderr, "offline queue full: %s dropped\n", msg);
    dx_timer_start(loop, t, 1000);
}

static void on_stop(dx_loop *loop, dx_timer *t) {
    app *a = APP_OF(t, stop);
    dx_client_close(a->client, 1000, "done"); /* for good: no reconnect */
}

static void on_connecting(dx_client *c, void *user, const char *url, unsigned attempt) {
    printf("connecting to %s (attempt %u)\n", url, attempt);
}

static void on_open(dx_client *c, void *user) {
    printf("open %s (%zu bytes to send)\n", dx_client_url(c), dx_client_buffered_amount(c));
}

static void on_message(dx_client *c, void *user, enum dx_opcode op, const uint8_t *data,
                       size_t len) {
    printf("%s: %.*s\n", op == DX_OP_TEXT ? "text" : "binary", (int)len, (const char *)data);
}

static void on_error(dx_client *c, void *user, int err, const char *message) {
    fprintf(stderr, "error: %s\n", message);
}

static void on_reconnecting(dx_client *c, void *user, unsigned attempt, uint32_t delay_ms) {
    printf("reconnecting in %u ms (attempt %u)\n", (unsigned)delay_ms, attempt);
}

static void on_close(dx_client *c, void *user, uint16_t code, const char *reason, size_t reason_len,
                     int was_clean) {
    app *a = user;
    printf("closed %u %.*s (%s)\n", code, (int)reason_len, reason,
           was_clean ? "clean" : "abnormal");
    if (dx_client_ready_state(c) == DX_CONNECTING) return; /* on_reconnecting follows */
    a->status = code == 1000 && was_clean ? 0 : 1;
    dx_loop_stop(a->loop);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: client ws://host:port/path [seconds] [failover URLs...]\n");
        return 2;
    }
    app a = {.loop = dx_loop_new(0)};
    if (!a.loop) return 1;
    dx_timer_init(&a.tick, on_tick);
    dx_timer_init(&a.stop, on_stop);
    static const uint16_t final_codes[] = {4401, 0}; /* "log in again": retrying is useless */
    dx_client_config cfg = {
        .url = argv[1],
        .urls = argc > 3 ? (const char *const *)argv + 3 : NULL, /* argv ends with NULL */
        .user = &a,
        .ping_interval_ms = 2000,
        .ping_timeout_ms = 1000,
        .reconnect = 1,
        .reconnect_base_ms = 500,
        .max_retries = 10,
        .final_codes = final_codes,
        .on_connecting = on_connecting,
        .on_open = on_open,
        .on_message = on_message,
        .on_error = on_error,
        .on_reconnecting = on_reconnecting,
        .on_close = on_close,
    };
    a.client = dx_client_new(a.loop, &cfg);
    if (!a.client) return 1;
    dx_timer_start(a.loop, &a.tick, 1000);
    dx_timer_start(a.loop, &a.stop, (uint64_t)(argc > 2 ? atoi(argv[2]) : 10) * 1000);
    dx_loop_run(a.loop);
    dx_timer_stop(a.loop, &a.tick);
    dx_timer_stop(a.loop, &a.stop);
    dx_client_free(a.client);
    dx_loop_free(a.loop);
    return a.status;
}

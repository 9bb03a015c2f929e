/* A client with a heartbeat: the notes' "ping every N seconds, and if no
 * answer comes within T the peer is dead" loop, with ping frames.
 *
 * Run: build/examples/client ws://127.0.0.1:8080/ [seconds]
 * It sends "hello", prints what arrives, pings every 2 s and declares the
 * server dead (exit 1) when a pong is 1 s late. After `seconds` (default
 * 10) it closes normally with 1000. (Automatic reconnect comes with the
 * resilient client; see include/duplex/client.h.)
 */
#include <stdio.h>
#include <stdlib.h>

#include <duplex/duplex.h>

#define PING_EVERY_MS 2000
#define PONG_WITHIN_MS 1000

typedef struct app {
    dx_loop *loop;
    dx_client *client;
    dx_timer beat, deadline, stop;
    int status; /* exit status */
} app;

#define APP_OF(t, field) ((app *)((char *)(t) - offsetof(app, field)))

static void on_beat(dx_loop *loop, dx_timer *t) {
    app *a = APP_OF(t, beat);
    if (dx_client_ping(a->client, "hb", 2) == 0) dx_timer_start(loop, &a->deadline, PONG_WITHIN_MS);
    dx_timer_start(loop, t, PING_EVERY_MS);
}

static void on_deadline(dx_loop *loop, dx_timer *t) {
    app *a = APP_OF(t, deadline);
    fprintf(stderr, "no pong within %d ms: the server is dead\n", PONG_WITHIN_MS);
    a->status = 1;
    dx_loop_stop(loop);
}

static void on_stop(dx_loop *loop, dx_timer *t) {
    app *a = APP_OF(t, stop);
    dx_client_close(a->client, 1000, "done");
}

static void on_open(dx_client *c, void *user) {
    app *a = user;
    printf("open %s\n", dx_client_url(c));
    dx_client_send_text(c, "hello", 5);
    dx_timer_start(a->loop, &a->beat, PING_EVERY_MS);
}

static void on_message(dx_client *c, void *user, enum dx_opcode op, const uint8_t *data,
                       size_t len) {
    printf("%s: %.*s\n", op == DX_OP_TEXT ? "text" : "binary", (int)len, (const char *)data);
}

static void on_pong(dx_client *c, void *user, const uint8_t *data, size_t len) {
    app *a = user;
    dx_timer_stop(a->loop, &a->deadline); /* alive */
}

static void on_error(dx_client *c, void *user, int err, const char *message) {
    fprintf(stderr, "error: %s\n", message);
}

static void on_close(dx_client *c, void *user, uint16_t code, const char *reason,
                     size_t reason_len, int was_clean) {
    app *a = user;
    printf("closed %u %.*s (%s)\n", code, (int)reason_len, reason, was_clean ? "clean" : "abnormal");
    if (code != 1000) a->status = 1;
    dx_loop_stop(a->loop);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: client ws://host:port/path [seconds]\n");
        return 2;
    }
    app a = {.loop = dx_loop_new(0)};
    if (!a.loop) return 1;
    dx_timer_init(&a.beat, on_beat);
    dx_timer_init(&a.deadline, on_deadline);
    dx_timer_init(&a.stop, on_stop);
    dx_client_config cfg = {
        .url = argv[1],
        .user = &a,
        .on_open = on_open,
        .on_message = on_message,
        .on_pong = on_pong,
        .on_error = on_error,
        .on_close = on_close,
    };
    a.client = dx_client_new(a.loop, &cfg);
    if (!a.client) return 1;
    dx_timer_start(a.loop, &a.stop, (uint64_t)(argc > 2 ? atoi(argv[2]) : 10) * 1000);
    dx_loop_run(a.loop);
    dx_timer_stop(a.loop, &a.beat);
    dx_timer_stop(a.loop, &a.deadline);
    dx_timer_stop(a.loop, &a.stop);
    dx_client_free(a.client);
    dx_loop_free(a.loop);
    return a.status;
}

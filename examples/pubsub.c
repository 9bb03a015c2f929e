/* Pub/sub fan-out: live data feeds, the notes' third use case.
 *
 * A client subscribes by the path it connects to (ws://host:8080/prices
 * subscribes to "prices"). A timer publishes a tick to each topic every
 * 100 ms; the frame is built once per publish and shared by every
 * subscriber's queue (no copy per receiver). A client may also publish:
 * the text "pub TOPIC message" goes to that topic's other subscribers.
 *
 * Run: build/examples/pubsub 8080, then
 *      build/duplex connect ws://127.0.0.1:8080/prices
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <duplex/duplex.h>

static const char *const topics[] = {"prices", "news"};

typedef struct feed {
    dx_server *srv;
    dx_timer tick;
    unsigned long seq;
} feed;

static int on_upgrade(dx_server_conn *c, void *user, dx_upgrade *u) {
    /* Keep the topic name: u->path is only valid during this call. */
    char *topic = dx_server_conn_data(c);
    size_t n = u->path_len > 1 ? u->path_len - 1 : 0;
    if (n == 0 || n > 63) {
        u->reason = "connect to /TOPIC";
        return 404;
    }
    memcpy(topic, u->path + 1, n);
    topic[n] = 0;
    return 0;
}

static void on_open(dx_server_conn *c, void *user) {
    dx_server_subscribe(c, dx_server_conn_data(c));
}

static void on_message(dx_server_conn *c, void *user, enum dx_opcode op, const uint8_t *data,
                       size_t len) {
    char topic[64];
    const char *text = (const char *)data;
    if (op != DX_OP_TEXT || len < 5 || memcmp(text, "pub ", 4) != 0) return;
    const char *sp = memchr(text + 4, ' ', len - 4);
    size_t tlen = sp ? (size_t)(sp - text - 4) : 0;
    if (!sp || tlen == 0 || tlen >= sizeof topic) return;
    memcpy(topic, text + 4, tlen);
    topic[tlen] = 0;
    size_t off = (size_t)(sp + 1 - text);
    dx_server_publish(dx_server_conn_server(c), topic, DX_OP_TEXT, text + off, len - off, c);
}

static void on_tick(dx_loop *loop, dx_timer *t) {
    feed *f = (feed *)((char *)t - offsetof(feed, tick));
    f->seq++;
    for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++) {
        char msg[96];
        int n = snprintf(msg, sizeof msg, "{\"topic\":\"%s\",\"seq\":%lu}", topics[i], f->seq);
        dx_server_publish(f->srv, topics[i], DX_OP_TEXT, msg, (size_t)n, NULL);
    }
    dx_timer_start(loop, t, 100);
}

static void on_signal(dx_loop *loop, void *arg) { dx_loop_stop(loop); }

int main(int argc, char **argv) {
    dx_loop *loop = dx_loop_new(0);
    if (!loop) return 1;
    feed f = {0};
    dx_server_config cfg = {
        .port = argc > 1 ? atoi(argv[1]) : 8080,
        .conn_data_size = 64, /* the topic name */
        .on_upgrade = on_upgrade,
        .on_open = on_open,
        .on_message = on_message,
    };
    f.srv = dx_server_new(loop, &cfg);
    if (!f.srv || dx_server_listen(f.srv) < 0) {
        fprintf(stderr, "pubsub: cannot listen on port %d\n", cfg.port);
        return 1;
    }
    dx_timer_init(&f.tick, on_tick);
    dx_timer_start(loop, &f.tick, 100);
    dx_loop_on_signal(loop, SIGINT, on_signal, NULL);
    dx_loop_on_signal(loop, SIGTERM, on_signal, NULL);
    fprintf(stderr, "pubsub on ws://127.0.0.1:%d/prices and /news\n", dx_server_port(f.srv));
    dx_loop_run(loop);
    dx_timer_stop(loop, &f.tick);
    dx_server_free(f.srv);
    dx_loop_free(loop);
    return 0;
}

/* The founding notes' Node `ws` server, rewritten on duplex.
 *
 * Node:                                   duplex:
 *   wss.on('connection', (ws, req) => {    on_open: greet the client by its
 *     const ip_port = ...remote...;          "ip:port" name and tell everyone
 *     ws.send(`welcome ${ip_port}`);
 *     ws.on('message', m => echo/broadcast) on_message: "all: text" goes to
 *     ws.on('close', ...) ws.on('error')     every client, the rest is echoed
 *   })                                     on_close: say goodbye to the others
 *
 * Run: build/examples/notes_server 8080, then
 *      build/duplex connect ws://127.0.0.1:8080/   (in two terminals)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <duplex/duplex.h>

/* Per-connection data, stored inline in the connection (conn_data_size). */
typedef struct client {
    char name[64]; /* the notes' ip_port */
} client;

static void on_open(dx_server_conn *c, void *user) {
    client *cl = dx_server_conn_data(c);
    dx_server_conn_remote(c, cl->name, sizeof cl->name);
    char msg[128];
    int n = snprintf(msg, sizeof msg, "welcome %s", cl->name);
    dx_server_send(c, DX_OP_TEXT, msg, (size_t)n);
    n = snprintf(msg, sizeof msg, "%s joined", cl->name);
    dx_server_broadcast(dx_server_conn_server(c), DX_OP_TEXT, msg, (size_t)n, c);
}

static void on_message(dx_server_conn *c, void *user, enum dx_opcode op, const uint8_t *data,
                       size_t len) {
    if (op == DX_OP_TEXT && len > 4 && memcmp(data, "all:", 4) == 0) {
        /* Broadcast to every open client: framed once, shared by all. */
        dx_server_broadcast(dx_server_conn_server(c), DX_OP_TEXT, data + 4, len - 4, NULL);
        return;
    }
    dx_server_send(c, op, data, len); /* echo, same opcode */
}

static void on_close(dx_server_conn *c, void *user, uint16_t code, const uint8_t *reason,
                     size_t reason_len, int was_clean) {
    client *cl = dx_server_conn_data(c);
    fprintf(stderr, "%s left: %u %.*s (%s)\n", cl->name, code, (int)reason_len,
            (const char *)reason, was_clean ? "clean" : "abnormal");
    char msg[128];
    int n = snprintf(msg, sizeof msg, "%s left", cl->name);
    dx_server_broadcast(dx_server_conn_server(c), DX_OP_TEXT, msg, (size_t)n, c);
}

static void on_signal(dx_loop *loop, void *arg) { dx_loop_stop(loop); }

int main(int argc, char **argv) {
    dx_loop *loop = dx_loop_new(0);
    if (!loop) return 1;
    dx_server_config cfg = {
        .port = argc > 1 ? atoi(argv[1]) : 8080,
        .conn_data_size = sizeof(client),
        .app_heartbeat = 1, /* the notes' browser heartbeat: "ping" → "pong" */
        .on_open = on_open,
        .on_message = on_message,
        .on_close = on_close,
    };
    dx_server *srv = dx_server_new(loop, &cfg);
    if (!srv || dx_server_listen(srv) < 0) {
        fprintf(stderr, "notes_server: cannot listen on port %d\n", cfg.port);
        return 1;
    }
    dx_loop_on_signal(loop, SIGINT, on_signal, NULL);
    dx_loop_on_signal(loop, SIGTERM, on_signal, NULL);
    fprintf(stderr, "listening on ws://127.0.0.1:%d\n", dx_server_port(srv));
    dx_loop_run(loop);
    dx_server_free(srv);
    dx_loop_free(loop);
    return 0;
}

/* A program outside the tree, built against an installed duplex
 * (test_install.sh): a server and a client on one loop, one round trip.
 * Exit 0 when "hello" came back. With -DWITH_CHAT it also starts the chat
 * service (libduplex_chat) in memory and checks that it answers. */
#include <stdio.h>
#include <string.h>

#include <duplex/duplex.h>
#ifdef WITH_CHAT
#include <duplex/chat.h>
#endif

static int status = 1;
static dx_loop *loop;
static dx_client *client;

static void srv_message(dx_server_conn *c, void *user, enum dx_opcode op, const uint8_t *data,
                        size_t len) {
    dx_server_send(c, op, data, len);
}

static void cli_open(dx_client *c, void *user) {
    dx_client_send_text(c, "hello", 5);
}

static void cli_message(dx_client *c, void *user, enum dx_opcode op, const uint8_t *data,
                        size_t len) {
    if (op == DX_OP_TEXT && len == 5 && !memcmp(data, "hello", 5)) status = 0;
    dx_client_close(c, 1000, "done");
}

static void cli_close(dx_client *c, void *user, uint16_t code, const char *reason,
                      size_t reason_len, int was_clean) {
    dx_loop_stop(loop);
}

int main(void) {
    loop = dx_loop_new(0);
    dx_server_config scfg = {.port = 0, .on_message = srv_message};
    dx_server *srv = loop ? dx_server_new(loop, &scfg) : NULL;
    if (!srv || dx_server_listen(srv) < 0) return 2;
#ifdef WITH_CHAT
    dx_chat_config ccfg = {.db_path = NULL};
    dx_chat *chat = dx_chat_new(loop, &ccfg);
    if (!chat) {
        fprintf(stderr, "dx_chat_new: %s\n", dx_chat_new_why());
        return 3;
    }
    dx_chat_free(chat);
#endif
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", dx_server_port(srv));
    dx_client_config ccfg2 = {
        .url = url, .on_open = cli_open, .on_message = cli_message, .on_close = cli_close};
    client = dx_client_new(loop, &ccfg2);
    if (!client) return 4;
    dx_loop_run(loop);
    dx_client_free(client);
    dx_server_free(srv);
    dx_loop_free(loop);
    printf("%s\n", status ? "no echo" : "echo ok");
    return status;
}

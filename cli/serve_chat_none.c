/* Stand-in for serve_chat.c in a build without the chat
 * (-DDUPLEX_CHAT=OFF): `duplex serve --chat` and its options end with one
 * line saying how this duplex was built, and exit status 2. */
#include "cli/args.h"
#include "cli/serve_chat.h"

static int off(void) {
    return dx_cli_bad("serve", "this duplex was built without the chat (-DDUPLEX_CHAT=OFF)", NULL);
}

int dx_cli_chat_limit(dx_cli_chat_opts *o, const char *flag, const char *val) {
    (void)o, (void)flag, (void)val;
    return off();
}

int dx_cli_chat_is_pg(const char *db) {
    (void)db;
    return 0;
}

int dx_cli_chat_check(const dx_cli_chat_opts *o, const char *host) {
    (void)o, (void)host;
    return off();
}

int dx_cli_chat_token(const dx_cli_chat_opts *o) {
    (void)o;
    return off();
}

dx_chat *dx_cli_chat_start(dx_loop *loop, const dx_cli_chat_opts *o, dx_server_config *cfg) {
    (void)loop, (void)o, (void)cfg;
    return NULL;
}

void dx_cli_chat_announce(const dx_cli_chat_opts *o, const dx_server_config *cfg, int port) {
    (void)o, (void)cfg, (void)port;
}

int dx_cli_chat_attach(dx_chat *chat, dx_server *srv) {
    (void)chat, (void)srv;
    return 0;
}

void dx_chat_free(dx_chat *chat) {
    (void)chat;
}

int dx_chat_stats_get(const dx_chat *chat, dx_chat_stats *out) {
    (void)chat, (void)out;
    return DX_EINVAL;
}

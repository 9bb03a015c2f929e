/* duplex serve --chat: the pieces of the chat mode kept out of serve.c. */
#ifndef DX_CLI_SERVE_CHAT_H
#define DX_CLI_SERVE_CHAT_H

#include <stdint.h>

#include <duplex/chat.h>

typedef struct dx_cli_chat_opts {
    const char *db;        /* --db FILE (NULL: in memory) */
    const char *secret;    /* --secret S, else $DUPLEX_CHAT_SECRET */
    const char *token_for; /* --token-for UID: print a token and exit */
    uint64_t token_ttl;    /* --token-ttl S (default 1 day) */
} dx_cli_chat_opts;

/* --token-for: prints the token on stdout. Returns the exit status. */
int dx_cli_chat_token(const dx_cli_chat_opts *o);

/* Creates the chat on `loop` and fills `cfg` for it (callbacks, and the
 * web UI from web/chat/dist when no --static was given and it exists).
 * NULL after printing the reason on stderr. */
dx_chat *dx_cli_chat_start(dx_loop *loop, const dx_cli_chat_opts *o, dx_server_config *cfg);

#endif

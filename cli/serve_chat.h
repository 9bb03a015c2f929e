/* duplex serve --chat: the pieces of the chat mode kept out of serve.c. */
#ifndef DX_CLI_SERVE_CHAT_H
#define DX_CLI_SERVE_CHAT_H

#include <stdint.h>

#include <duplex/chat.h>

typedef struct dx_cli_chat_opts {
    const char *db;           /* --db FILE (NULL: in memory) */
    const char *secret;       /* --secret S, else $DUPLEX_CHAT_SECRET */
    const char *token_for;    /* --token-for UID: print a token and exit */
    uint64_t token_ttl;       /* --token-ttl S (default 1 day) */
    const char *redis;        /* --redis URL: one node of a cluster */
    uint32_t presence_ttl_ms; /* --presence-ttl S (0: the default, 15 s) */
    int quiet;                /* --quiet: no "redis up" lines */
    dx_chat_limits limits;    /* --rate-limit, --max-rooms, --sync-page */
    int limits_set;           /* one of those was given */
    int dev_login;            /* --dev-login (DX_CHAT_DEV_LOGIN_LOCAL), --dev-login-anywhere */
    const char *files;        /* --files DIR (NULL: DB.files beside a SQLite --db) */
    uint64_t max_upload;      /* --max-upload BYTES (0: 25 MiB) */
    uint32_t recall_ms;       /* --recall-window S (0: 2 minutes) */
    uint32_t connects_ip;     /* --connects-per-ip N|off (0: 300 a minute) */
    uint32_t connects_uid;    /* --connects-per-user N|off (0: 30 a minute) */
} dx_cli_chat_opts;

/* --rate-limit KIND=RATE[/BURST] (KIND send, bytes, join, read, typing,
 * presence or fetch; RATE per second; "KIND=off" for none), --max-rooms
 * N|off and --sync-page N|off (`flag` names which) into o->limits;
 * --connects-per-ip N|off and --connects-per-user N|off (a minute).
 * Returns 0, or 2 after printing the usage error. */
int dx_cli_chat_limit(dx_cli_chat_opts *o, const char *flag, const char *val);

/* 1 when --db is a PostgreSQL URL (postgresql:// or postgres://). */
int dx_cli_chat_is_pg(const char *db);

/* The secret (--secret, else $DUPLEX_CHAT_SECRET, even when empty) is
 * under 16 bytes, or --dev-login comes without one: says so and returns 2
 * (a usage error). None at all with `host` not a loopback address (NULL:
 * no check): warns on stderr that anyone can be anyone; --dev-login warns
 * what it opens. Otherwise 0. */
int dx_cli_chat_check(const dx_cli_chat_opts *o, const char *host);

/* --token-for: prints the token on stdout. Returns the exit status. */
int dx_cli_chat_token(const dx_cli_chat_opts *o);

/* Creates the chat on `loop` and fills `cfg` for it: callbacks, and, when
 * no --static was given, the web UI from the first of ./web/chat/dist,
 * web/chat/dist beside the binary, ../web/chat/dist from it (a build
 * directory in the source tree), ../share/duplex/chat from it, the
 * installed share/duplex/chat, this source tree's web/chat/dist (the
 * binary of its own build tree) that holds an index.html — or a warning
 * that names each place looked at (the chat works without its page).
 * NULL after printing the reason on stderr. */
dx_chat *dx_cli_chat_start(dx_loop *loop, const dx_cli_chat_opts *o, dx_server_config *cfg);

/* Prints on stderr the address to open in a browser, once listening on
 * `port`, and how to sign in there. */
void dx_cli_chat_announce(const dx_cli_chat_opts *o, const dx_server_config *cfg, int port);

/* After dx_server_new: lets the chat report Redis on /healthz. Returns 0,
 * or 1 after printing the reason. */
int dx_cli_chat_attach(dx_chat *chat, dx_server *srv);

#endif

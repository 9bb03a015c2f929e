/* duplex serve --chat: options of the chat mode (see serve_chat.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/serve_chat.h"

static const char *secret_of(const dx_cli_chat_opts *o) {
    if (o->secret) return o->secret;
    const char *env = getenv("DUPLEX_CHAT_SECRET");
    return env && *env ? env : NULL;
}

int dx_cli_chat_is_pg(const char *db) {
    return db && (!strncmp(db, "postgresql://", 13) || !strncmp(db, "postgres://", 11));
}

int dx_cli_chat_token(const dx_cli_chat_opts *o) {
    const char *secret = secret_of(o);
    if (!secret) {
        fprintf(stderr, "duplex serve: --token-for needs --secret (or DUPLEX_CHAT_SECRET)\n");
        return 2;
    }
    char tok[160];
    int64_t exp = (int64_t)time(NULL) + (int64_t)(o->token_ttl ? o->token_ttl : 86400);
    if (dx_chat_token(secret, strlen(secret), o->token_for, exp, tok, sizeof tok) < 0) {
        fprintf(stderr, "duplex serve: bad user id '%s' (1-32 of A-Z a-z 0-9 _ -)\n", o->token_for);
        return 2;
    }
    printf("%s\n", tok);
    return 0;
}

/* One line per change of the link to Redis (tests wait for them). */
static void on_cluster(void *user, int up, const char *why) {
    const dx_cli_chat_opts *o = user;
    if (up && o->quiet) return;
    if (up)
        fprintf(stderr, "duplex: redis up\n");
    else
        fprintf(stderr, "duplex: redis down: %s\n", why);
}

dx_chat *dx_cli_chat_start(dx_loop *loop, const dx_cli_chat_opts *o, dx_server_config *cfg) {
    const char *secret = secret_of(o);
    dx_chat_config cc = {.db_path = o->db,
                         .lobby = "lobby",
                         .redis_url = o->redis,
                         .presence_ttl_ms = o->presence_ttl_ms,
                         .on_cluster = on_cluster,
                         .user = (void *)o};
    if (secret) {
        cc.secret = secret;
        cc.secret_len = strlen(secret);
    }
    dx_chat *chat = dx_chat_new(loop, &cc);
    if (!chat) {
        /* A PostgreSQL URL may hold a password: not echoed. */
        const char *what = !o->db ? "(memory)" : dx_cli_chat_is_pg(o->db) ? "(PostgreSQL)" : o->db;
        fprintf(stderr, "duplex serve: chat database %s: %s\n", what, dx_chat_new_why());
        return NULL;
    }
    (void)dx_chat_server_config(chat, cfg);
    struct stat sb;
    if (!cfg->static_dir && stat("web/chat/dist/index.html", &sb) == 0)
        cfg->static_dir = "web/chat/dist";
    return chat;
}

int dx_cli_chat_attach(dx_chat *chat, dx_server *srv) {
    if (dx_chat_attach(chat, srv) < 0) {
        fprintf(stderr, "duplex serve: cannot attach the chat to its server\n");
        return 1;
    }
    return 0;
}

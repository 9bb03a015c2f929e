/* Internal: the client's own copies of the strings of its config, checked
 * once at creation. A problem found here is not returned at once but kept
 * (err, why) and reported by on_error on the next loop iteration, so that
 * dx_client_new never calls back into its caller. */
#ifndef DX_CLIENT_CONFIG_H
#define DX_CLIENT_CONFIG_H

#include <duplex/client.h>

typedef struct dx__client_own {
    char *url;       /* cfg->url as given */
    char *origin;    /* NULL when none */
    char *ca_file;   /* NULL when none */
    char *headers;   /* "Name: value\r\n"..., NULL when none */
    char *protocols; /* "chat, superchat", NULL when none */
    char **urls;     /* cfg->urls (failover), NULL when none */
    size_t nurls;
    uint16_t *final_codes; /* cfg->final_codes, NULL when none */
    size_t nfinal;
    int err;         /* 0, or the error to report (DX_EINVAL, DX_EADDR) */
    char why[200];   /* its message */
} dx__client_own;

/* Copies and checks cfg's strings into `o` (zeroed first). Returns 0
 * (check o->err for a config problem) or DX_ENOMEM; either way release `o`
 * with dx__client_own_free. The checks: header lines are "Name: value"
 * with a token name, no CR or LF, and none of the handshake's own headers
 * (nor Origin when cfg->origin is set); subprotocols are tokens, not
 * repeated; origin has no control characters; final codes are 1000-4999
 * (at most DX_CLIENT_MAX_FINAL_CODES). The failover URLs are only copied:
 * the client parses them. */
int dx__client_own_init(dx__client_own *o, const dx_client_config *cfg);

void dx__client_own_free(dx__client_own *o);

/* Records a config problem (the first one wins). */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
void dx__client_own_error(dx__client_own *o, int err, const char *fmt, ...);

#endif

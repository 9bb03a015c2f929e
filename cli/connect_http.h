/* duplex connect --transport stream|poll: a WebSocket session over the
 * HTTP session transport (docs/fallback.md), for checking a server's
 * fallback from a terminal (through a proxy that refuses upgrades, say).
 * The frames are made and checked by a dx_conn in the client role, exactly
 * as for a WebSocket; only their bytes travel in HTTP bodies. */
#ifndef DX_CLI_CONNECT_HTTP_H
#define DX_CLI_CONNECT_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <duplex/conn.h>
#include <duplex/loop.h>

typedef struct dx_cli_hsess dx_cli_hsess;

typedef struct dx_cli_hsess_cb {
    void (*on_open)(void *arg, const char *url, const char *protocol);
    void (*on_message)(void *arg, enum dx_opcode op, const uint8_t *data, size_t len);
    /* A failure, in one line; on_close (1006, not clean) follows. */
    void (*on_error)(void *arg, const char *message);
    /* Once, at the end: after it the session does nothing more. */
    void (*on_close)(void *arg, uint16_t code, const char *reason, size_t reason_len,
                     int was_clean);
} dx_cli_hsess_cb;

typedef struct dx_cli_hsess_config {
    const char *url;              /* ws://, wss:// (the session's http:// or https://) */
    int poll;                     /* long polls down instead of an SSE stream */
    const char *const *headers;   /* "Name: value" lines, NULL-terminated (may be NULL) */
    const char *const *protocols; /* offered subprotocols, NULL-terminated (may be NULL) */
    const char *origin;           /* Origin header, or NULL */
    int insecure;                 /* https: accept any certificate */
    const char *ca_file;          /* https: trust these CAs */
    uint32_t connect_timeout_ms;  /* per request: resolve, connect, TLS (0: 10 s) */
    uint64_t max_message;         /* as dx_conn_config */
} dx_cli_hsess_config;

/* Starts the session (its open request). NULL when out of memory or when
 * the URL or the TLS setup is refused: then `why` says why (static). */
dx_cli_hsess *dx_cli_hsess_new(dx_loop *loop, const dx_cli_hsess_config *cfg,
                               const dx_cli_hsess_cb *cb, void *arg, const char **why);
/* As dx_conn_send / dx_conn_close (DX_ESTATE before the open or after the
 * close). */
int dx_cli_hsess_send(dx_cli_hsess *s, enum dx_opcode op, const void *data, size_t len);
int dx_cli_hsess_close(dx_cli_hsess *s, unsigned code, const char *reason);
enum dx_ready_state dx_cli_hsess_state(const dx_cli_hsess *s);
/* Up bytes the server has not confirmed yet. */
size_t dx_cli_hsess_buffered(const dx_cli_hsess *s);
void dx_cli_hsess_free(dx_cli_hsess *s);

#endif

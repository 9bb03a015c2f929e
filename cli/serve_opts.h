/* duplex serve's options: one table parses them and prints --help (so
 * the two cannot drift), then the checks between options make the config
 * that cli/serve.c runs. */
#ifndef DX_CLI_SERVE_OPTS_H
#define DX_CLI_SERVE_OPTS_H

#include <stdint.h>
#include <stdio.h>

#include <duplex/server.h>

#include "cli/serve_chat.h"

#define DX_CLI_SERVE_MAX_THREADS 256
#define DX_CLI_SERVE_MAX_ORIGINS 64

enum dx_cli_serve_mode { MODE_NONE, MODE_ECHO, MODE_BROADCAST, MODE_CHAT };

/* What the command line says, before any check between options. */
typedef struct dx_cli_serve_opts {
    enum dx_cli_serve_mode mode;
    dx_server_config srv; /* the fields that options set one to one */
    dx_cli_chat_opts chat;
    const char *origins[DX_CLI_SERVE_MAX_ORIGINS + 1];
    int norigins, quiet;
    int metrics; /* 1: --metrics (loopback scrapes only), 2: --metrics-public */
    const char *redis_url;
    uint64_t threads;
} dx_cli_serve_opts;

/* What the server runs with, once checked: the server's config (less its
 * callbacks, which are the runner's) and the rest. */
typedef struct dx_cli_serve_cfg {
    enum dx_cli_serve_mode mode;
    dx_server_config srv;
    dx_cli_chat_opts chat;
    const char *redis_url; /* the server's fan-out (not the chat's) */
    int threads, quiet, metrics;
} dx_cli_serve_cfg;

/* The help, generated from the option table. */
void dx_cli_serve_usage(FILE *f);

/* Parses argv into `o` (set to the defaults first). Each option's value is
 * checked as it comes, so the first bad one is the one named. Returns 0,
 * DX_CLI_STOP for --help (the caller prints it), or 2 after printing the
 * usage error in one line. */
int dx_cli_serve_parse(int argc, char **argv, dx_cli_serve_opts *o);

/* The checks between options (a mode, --chat alone on one thread, the
 * chat options only with --chat, --cert with --key...) and the config
 * they make in `c`, which points into `o` (its origins): keep `o` as long.
 * Returns 0, or the exit status after printing why (2 for a usage error).
 * --token-for is carried out here: *done is set and its status returned. */
int dx_cli_serve_config(dx_cli_serve_opts *o, dx_cli_serve_cfg *c, int *done);

#endif

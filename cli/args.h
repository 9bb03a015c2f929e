/* Option-value parsing and the usage-error line shared by the duplex
 * subcommands, so every command words its errors and reads numbers alike. */
#ifndef DX_CLI_ARGS_H
#define DX_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

/* Prints "duplex CMD: MSG 'ARG' (try 'duplex CMD --help')" on stderr (ARG
 * may be NULL) and returns 2, the usage-error exit status. */
int dx_cli_bad(const char *cmd, const char *msg, const char *arg);

/* --name=value and --name value are both accepted: for "--name=value",
 * copies the name into buf (when it fits), points *arg at it and returns the
 * value; otherwise returns NULL and leaves *arg alone. */
const char *dx_cli_split_eq(char **arg, char *buf, size_t size);

/* A decimal integer in [0, max], nothing else in the string: 0, or -1. */
int dx_cli_u64(const char *s, uint64_t max, uint64_t *out);

/* Seconds, fractional allowed ("0.5"), up to 4,000,000, as milliseconds
 * (rounded; a positive value never rounds down to 0). Zero is accepted only
 * when allow_zero (the "off" value of some options): 0, or -1. */
int dx_cli_seconds(const char *s, int allow_zero, uint32_t *ms);

#endif

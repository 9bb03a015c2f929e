/* Option-value parsing and the usage-error line shared by the duplex
 * subcommands, so every command words its errors and reads numbers alike. */
#ifndef DX_CLI_ARGS_H
#define DX_CLI_ARGS_H

#include <stddef.h>
#include <string.h> /* strcmp, for DX_CLI_FLAG */
#include <stdint.h>

/* Prints "duplex CMD: MSG 'ARG' (try 'duplex CMD --help')" on stderr (ARG
 * may be NULL) and returns 2, the usage-error exit status. */
int dx_cli_bad(const char *cmd, const char *msg, const char *arg);

/* --name=value and --name value are both accepted: for "--name=value",
 * copies the name into buf (when it fits), points *arg at it and returns the
 * value; otherwise returns NULL and leaves *arg alone. */
const char *dx_cli_split_eq(char **arg, char *buf, size_t size);

/* The option loop every subcommand runs, `for (int i = 1; i < argc; i++)`
 * with `arg` the option's name (after dx_cli_split_eq) and `val` its value
 * when it came as --name=value, else NULL:
 *   DX_CLI_FLAG(n)     the option is n;
 *   DX_CLI_VALUE(cmd)  the option takes a value: the inline one, else the
 *                      next argument (i advances), else the usage error
 *                      "missing the value of" returns from the caller. */
#define DX_CLI_FLAG(n) (!strcmp(arg, (n)))
#define DX_CLI_VALUE(cmd)                                                                          \
    do {                                                                                           \
        if (!val) {                                                                                \
            if (i + 1 >= argc) return dx_cli_bad((cmd), "missing the value of", arg);              \
            val = argv[++i];                                                                       \
        }                                                                                          \
    } while (0)

/* A decimal integer in [0, max], nothing else in the string: 0, or -1. */
int dx_cli_u64(const char *s, uint64_t max, uint64_t *out);

/* Seconds, fractional allowed ("0.5"), up to 4,000,000, as milliseconds
 * (rounded; a positive value never rounds down to 0). Zero is accepted only
 * when allow_zero (the "off" value of some options): 0, or -1. */
int dx_cli_seconds(const char *s, int allow_zero, uint32_t *ms);

#endif

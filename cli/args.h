/* Option-value parsing and the usage-error line shared by the duplex
 * subcommands, so every command words its errors and reads numbers alike. */
#ifndef DX_CLI_ARGS_H
#define DX_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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

/* ---- option tables ----------------------------------------------------
 * A subcommand describes its options once, in a table that both parses the
 * command line (dx_cli_parse) and prints them in --help (dx_cli_help), so
 * the two cannot drift. Its setters fill a plain options struct; checks
 * between options and the library's config come after, in the command. */
typedef struct dx_cli_opt dx_cli_opt;

/* Stores an option into `opts`: `val` is its value, NULL for a flag (whose
 * "--flag=x" value is ignored). Returns 0, DX_CLI_STOP to end the parse
 * with success (--help), or 2 after printing the usage error. */
typedef int dx_cli_set_fn(void *opts, const dx_cli_opt *opt, const char *val);
#define DX_CLI_STOP 1

struct dx_cli_opt {
    const char *name;    /* "--port"; NULL ends the table */
    char short_name;     /* 'q' for -q, or 0 */
    const char *arg;     /* the value's name in --help ("P"); NULL: a flag */
    dx_cli_set_fn *set;  /* NULL: a line of --help only, never parsed */
    size_t off;          /* for the generic setters: offsetof the field */
    const char *help;    /* its lines in --help, '\n' between; NULL: unlisted */
    const char *label;   /* --help's left column, when not "[-x, ]name arg" */
    const char *heading; /* printed as is before its entry in --help */
};

/* Runs argv[1..argc) through `table`: each option is looked up by its name
 * (--name value, --name=value) or its short name (-x value) and handed to
 * its setter. Anything else is given to `operand` when there is one and it
 * does not look like an option ("-" alone does not), else it is the usage
 * error "unknown option". Returns 0, DX_CLI_STOP, or 2 (the usage error
 * printed, as "duplex CMD: ..." in one line). */
int dx_cli_parse(const char *cmd, const dx_cli_opt *table, int argc, char **argv, void *opts,
                 int (*operand)(void *opts, const char *arg));

/* Prints the table's help lines: "  LABEL", padded to `column` (two spaces
 * when it is wider), then the help, continued lines indented to `column`.
 * With `short_column`, labels are "-x, --name ARG" or "    --name ARG". */
void dx_cli_help(FILE *f, const dx_cli_opt *table, int column, int short_column);

/* Generic setters for the field at opt->off: a const char * set to the
 * value, an int set to 1, an int set to 0. */
int dx_cli_set_str(void *opts, const dx_cli_opt *opt, const char *val);
int dx_cli_set_true(void *opts, const dx_cli_opt *opt, const char *val);
int dx_cli_set_false(void *opts, const dx_cli_opt *opt, const char *val);

/* dx_cli_seconds(val, allow_zero) into the uint32_t of milliseconds at
 * opt->off: 0, or -1 (the field untouched; the caller words the error). */
int dx_cli_set_ms(void *opts, const dx_cli_opt *opt, const char *val, int allow_zero);

/* The --help setter: DX_CLI_STOP. */
int dx_cli_set_help(void *opts, const dx_cli_opt *opt, const char *val);

#endif

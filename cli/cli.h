/* The subcommands of the duplex command. Each gets argv with argv[0] set
 * to its own name and returns the process exit code:
 *   0 success, 1 runtime failure (connect failed, abnormal close),
 *   2 usage error. */
#ifndef DX_CLI_H
#define DX_CLI_H

#include <duplex/common.h>

int dx_cli_serve(int argc, char **argv);
int dx_cli_connect(int argc, char **argv);
int dx_cli_bench(int argc, char **argv);
/* duplex bench micro: the protocol core micro-benchmarks. */
int dx_cli_bench_micro(int argc, char **argv);

#endif

/* duplex — the command: serve, connect, bench. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: duplex <command> [options]\n\n"
               "commands:\n"
               "  serve     run a WebSocket server (--echo, --broadcast or --chat;\n"
               "            --static DIR)\n"
               "  connect   connect to a WebSocket URL, like wscat\n"
               "  bench     load generator and micro-benchmarks (bench micro)\n"
               "  version   print the version\n\n"
               "Run 'duplex <command> --help' for the options of a command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("duplex %s\n", DX_VERSION_STRING);
        return 0;
    }
    if (!strcmp(cmd, "serve")) return dx_cli_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "connect")) return dx_cli_connect(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return dx_cli_bench(argc - 1, argv + 1);
    fprintf(stderr, "duplex: unknown command '%s' (try 'duplex --help')\n", cmd);
    return 2;
}

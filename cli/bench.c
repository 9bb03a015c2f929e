/* duplex bench: load generation and micro-benchmarks.
 *
 * This version ships the protocol-core micro-benchmarks (`duplex bench
 * micro`); the network load generator (echo, fixed rate, handshakes, idle,
 * broadcast) is tracked by its own issue and refused with a clear message
 * until it lands, rather than pretending. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: duplex bench micro [--json] [--size BYTES]\n\n"
               "  micro   protocol-core micro-benchmarks: memcpy vs unmasking, UTF-8\n"
               "          validation (ASCII and mixed Chinese/English text) and small-frame\n"
               "          parsing, measured on the same buffers in one run.\n"
               "          --json prints one JSON object.\n\n"
               "The network load generator (duplex bench --url ...) is not available in\n"
               "this version.\n");
}

int dx_cli_bench(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "micro")) return dx_cli_bench_micro(argc - 1, argv + 1);
    fprintf(stderr, "duplex: bench: '%s' is not available in this version "
                    "(only 'duplex bench micro'; see 'duplex bench --help')\n", argv[1]);
    return 2;
}

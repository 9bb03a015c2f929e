#include "cli/args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dx_cli_bad(const char *cmd, const char *msg, const char *arg) {
    if (arg)
        fprintf(stderr, "duplex %s: %s '%s' (try 'duplex %s --help')\n", cmd, msg, arg, cmd);
    else
        fprintf(stderr, "duplex %s: %s (try 'duplex %s --help')\n", cmd, msg, cmd);
    return 2;
}

int dx_cli_u64(const char *s, uint64_t max, uint64_t *out) {
    char *end;
    errno = 0;
    /* strtoull accepts "-1" and wraps it: refuse any sign. */
    if (!s || !*s || *s == '-' || *s == '+') return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max) return -1;
    *out = v;
    return 0;
}

int dx_cli_seconds(const char *s, int allow_zero, uint32_t *ms) {
    char *end;
    errno = 0;
    if (!s || !*s) return -1;
    double v = strtod(s, &end);
    /* !(v >= 0) also refuses NaN. */
    if (errno || *end || !(v >= 0) || v > 4000000.0 || (v == 0 && !allow_zero)) return -1;
    *ms = (uint32_t)(v * 1000.0 + 0.5);
    if (v > 0 && *ms == 0) *ms = 1;
    return 0;
}

const char *dx_cli_split_eq(char **arg, char *buf, size_t size) {
    char *a = *arg;
    char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
    if (!eq || (size_t)(eq - a) >= size) return NULL;
    memcpy(buf, a, (size_t)(eq - a));
    buf[eq - a] = 0;
    *arg = buf;
    return eq + 1;
}

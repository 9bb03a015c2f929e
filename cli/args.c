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

static const dx_cli_opt *opt_find(const dx_cli_opt *t, const char *arg) {
    for (; t->name; t++) {
        if (!t->set) continue;
        if (!strcmp(t->name, arg)) return t;
        if (t->short_name && arg[0] == '-' && arg[1] == t->short_name && !arg[2]) return t;
    }
    return NULL;
}

int dx_cli_parse(const char *cmd, const dx_cli_opt *table, int argc, char **argv, void *opts,
                 int (*operand)(void *opts, const char *arg)) {
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        char name[64];
        const char *val = dx_cli_split_eq(&arg, name, sizeof name);
        const dx_cli_opt *o = opt_find(table, arg);
        int rc;
        if (o) {
            if (o->arg && !val) {
                if (i + 1 >= argc) return dx_cli_bad(cmd, "missing the value of", arg);
                val = argv[++i];
            }
            rc = o->set(opts, o, o->arg ? val : NULL);
        } else if (operand && !(arg[0] == '-' && arg[1])) {
            rc = operand(opts, arg);
        } else {
            return dx_cli_bad(cmd, "unknown option", arg);
        }
        if (rc) return rc;
    }
    return 0;
}

void dx_cli_help(FILE *f, const dx_cli_opt *t, int column, int short_column) {
    for (; t->name; t++) {
        if (t->heading) fputs(t->heading, f);
        if (!t->help) continue;
        char label[128];
        const char *sp = t->arg ? " " : "", *arg = t->arg ? t->arg : "";
        if (t->label)
            snprintf(label, sizeof label, "%s", t->label);
        else if (short_column && t->short_name)
            snprintf(label, sizeof label, "-%c, %s%s%s", t->short_name, t->name, sp, arg);
        else
            snprintf(label, sizeof label, "%s%s%s%s", short_column ? "    " : "", t->name, sp, arg);
        int n = fprintf(f, "  %s", label);
        fprintf(f, "%*s", n < column ? column - n : 2, "");
        for (const char *p = t->help;;) {
            const char *nl = strchr(p, '\n');
            if (!nl) {
                fprintf(f, "%s\n", p);
                break;
            }
            fprintf(f, "%.*s\n%*s", (int)(nl - p), p, column, "");
            p = nl + 1;
        }
    }
}

/* The fields are reached by offset and written with memcpy: no cast of a
 * char pointer to a more aligned type. */
int dx_cli_set_str(void *opts, const dx_cli_opt *opt, const char *val) {
    memcpy((char *)opts + opt->off, &val, sizeof val);
    return 0;
}

int dx_cli_set_true(void *opts, const dx_cli_opt *opt, const char *val) {
    int one = 1;
    memcpy((char *)opts + opt->off, &one, sizeof one);
    return 0;
}

int dx_cli_set_false(void *opts, const dx_cli_opt *opt, const char *val) {
    int zero = 0;
    memcpy((char *)opts + opt->off, &zero, sizeof zero);
    return 0;
}

int dx_cli_set_ms(void *opts, const dx_cli_opt *opt, const char *val, int allow_zero) {
    uint32_t ms;
    if (dx_cli_seconds(val, allow_zero, &ms)) return -1;
    memcpy((char *)opts + opt->off, &ms, sizeof ms);
    return 0;
}

int dx_cli_set_help(void *opts, const dx_cli_opt *opt, const char *val) {
    return DX_CLI_STOP;
}

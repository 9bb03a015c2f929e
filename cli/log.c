/* The log of `duplex serve` (log.h). */
#include "cli/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int json;
static enum dx_cli_level min_level = DX_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

int dx_cli_log_setup(const char *format, const char *level) {
    if (format) {
        if (!strcmp(format, "json"))
            json = 1;
        else if (!strcmp(format, "text"))
            json = 0;
        else
            return -1;
    }
    if (level) {
        size_t i = 0;
        while (i < 4 && strcmp(level, level_names[i]))
            i++;
        if (i == 4) return -1;
        min_level = (enum dx_cli_level)i;
    }
    return 0;
}

/* Appends `s` as a JSON string (quoted, escaped) to out[*n..cap). */
static void put_json(char *out, size_t cap, size_t *n, const char *s) {
    if (*n < cap) out[(*n)++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p && *n + 7 < cap; p++) {
        if (*p == '"' || *p == '\\') {
            out[(*n)++] = '\\';
            out[(*n)++] = (char)*p;
        } else if (*p < 0x20) {
            *n += (size_t)snprintf(out + *n, cap - *n, "\\u%04x", *p);
        } else {
            out[(*n)++] = (char)*p;
        }
    }
    if (*n < cap) out[(*n)++] = '"';
}

void dx_cli_log(enum dx_cli_level level, const char *event, const char *const *fields,
                const char *fmt, ...) {
    if (level < min_level) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char line[4096];
    size_t n = 0, cap = sizeof line - 2; /* room for "}\n" */
    if (!json) {
        n = (size_t)snprintf(line, cap, "duplex: %s", msg);
        if (n > cap) n = cap;
    } else {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        struct tm tm;
        gmtime_r(&tv.tv_sec, &tm);
        char ts[40];
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
        n = (size_t)snprintf(line, cap, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"event\":", ts,
                             (long)(tv.tv_usec / 1000), level_names[level]);
        put_json(line, cap, &n, event);
        if (n + 7 < cap) memcpy(line + n, ",\"msg\":", 7), n += 7;
        put_json(line, cap, &n, msg);
        for (size_t i = 0; fields && fields[i]; i += 2) {
            if (!fields[i + 1]) continue; /* a field without a value this time */
            if (n + 1 < cap) line[n++] = ',';
            put_json(line, cap, &n, fields[i]);
            if (n + 1 < cap) line[n++] = ':';
            put_json(line, cap, &n, fields[i + 1]);
        }
        line[n++] = '}';
    }
    line[n++] = '\n';
    /* One write per line, so the lines of several threads never mix. */
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

/* The log of `duplex serve` (--log-format text|json, --log-level): one
 * event per line on stderr. Text is the human line, as before ("duplex:
 * listening on ..."); JSON is one object per line with "ts" (RFC 3339,
 * UTC, ms), "level", "event", "msg" (the same human text) and the event's
 * fields. Safe from every thread (one write per line). Nothing is logged
 * per message. */
#ifndef DX_CLI_LOG_H
#define DX_CLI_LOG_H

enum dx_cli_level { DX_LOG_DEBUG, DX_LOG_INFO, DX_LOG_WARN, DX_LOG_ERROR };

/* Sets the format ("text" or "json") and the lowest level written
 * ("debug", "info", "warn", "error"); either may be NULL. Returns 0, or -1
 * for an unknown value. */
int dx_cli_log_setup(const char *format, const char *level);

/* Logs `event` at `level`. `fields` (may be NULL): the event's fields as
 * name, value, name, value..., NULL (values are strings; NULL values are
 * left out). `fmt`: the human text, printf-like, no newline, written
 * after "duplex: " in text mode and as "msg" in JSON. */
void dx_cli_log(enum dx_cli_level level, const char *event, const char *const *fields,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Shorthand for the fields argument: DX_LOG_FIELDS("url", url, "mode", m). */
#define DX_LOG_FIELDS(...) ((const char *const[]){__VA_ARGS__, NULL})

#endif

/* duplex connect: a wscat-like client. stdin lines out, messages in on
 * stdout, one per line; --echo turns it into the client testee of
 * conformance suites. Everything runs on one loop: stdin is a watcher too.
 * --transport stream|poll speaks the HTTP session transport instead of a
 * WebSocket (connect_http.c): the same lines, messages and closes. */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <duplex/client.h>
#include <duplex/loop.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/connect_http.h"
#include <duplex/url.h>

#define MAX_LIST 64            /* -H and --subprotocol, each */
#define READ_CHUNK 65536       /* bytes read from stdin at a time */
#define PAUSE_ABOVE (8u << 20) /* stop reading stdin with this much queued */
#define RESUME_BELOW (1u << 20)
#define DRAIN_CHECK_MS 5

typedef struct app {
    dx_loop *loop;
    dx_client *client; /* a WebSocket, or */
    dx_cli_hsess *hs;  /* an HTTP session (--transport stream|poll) */
    int binary, echo, quiet, hex;
    unsigned close_code;
    const char *close_reason;
    uint64_t max_message;
    /* stdin */
    dx_io in_io;
    dx_timer in_timer; /* pumps stdin when epoll cannot watch it (a file) */
    dx_timer drain_timer;
    dx_timer wait_timer; /* --wait: from EOF on stdin to our close */
    uint32_t wait_ms;
    int in_started, in_polled, in_done, in_paused;
    char *line;
    size_t line_len, line_cap, scan, line_no;
    /* the end */
    int opened, we_closed, errored, bad_input, signals, exit_code;
    int out_dirty;
    /* --reconnect */
    int reconnect, close_when_open;
    /* --transport stream|poll */
    int http, poll;
    dx_cli_hsess_config hcfg;
    unsigned last_attempt;
    uint32_t max_retries;
} app;

/* ---- stdout -------------------------------------------------------------- */

static void flush_out(dx_loop *loop, void *arg) {
    app *a = arg;
    a->out_dirty = 0;
    fflush(stdout);
}

/* stdout is flushed once per loop iteration, not once per message. */
static void out_written(app *a) {
    if (a->out_dirty) return;
    a->out_dirty = 1;
    if (dx_loop_defer(a->loop, flush_out, a) < 0) flush_out(a->loop, a);
}

static void print_message(app *a, enum dx_opcode op, const uint8_t *data, size_t len) {
    if (op == DX_OP_BINARY && a->hex) {
        static const char hex[] = "0123456789abcdef";
        for (size_t i = 0; i < len; i++) {
            putchar(hex[data[i] >> 4]);
            putchar(hex[data[i] & 15]);
        }
    } else if (len) {
        fwrite(data, 1, len, stdout);
    }
    putchar('\n');
    out_written(a);
}

/* ---- the transport: a WebSocket client or an HTTP session ---------------- */

static int c_send(app *a, enum dx_opcode op, const void *p, size_t n) {
    if (a->hs) return dx_cli_hsess_send(a->hs, op, p, n);
    return op == DX_OP_TEXT ? dx_client_send_text(a->client, p, n)
                            : dx_client_send_binary(a->client, p, n);
}

static int c_close(app *a, unsigned code, const char *reason) {
    return a->hs ? dx_cli_hsess_close(a->hs, code, reason)
                 : dx_client_close(a->client, code, reason);
}

static enum dx_ready_state c_state(const app *a) {
    return a->hs ? dx_cli_hsess_state(a->hs) : dx_client_ready_state(a->client);
}

static size_t c_buffered(const app *a) {
    return a->hs ? dx_cli_hsess_buffered(a->hs) : dx_client_buffered_amount(a->client);
}

/* ---- stdin ---------------------------------------------------------------- */

static void stdin_stop(app *a) {
    dx_io_stop(a->loop, &a->in_io);
    dx_timer_stop(a->loop, &a->in_timer);
    dx_timer_stop(a->loop, &a->drain_timer);
    dx_timer_stop(a->loop, &a->wait_timer);
    a->in_done = 1;
}

/* Our close, after the last line (EOF, a signal, or an input error). */
static void start_close(app *a) {
    if (a->we_closed) return;
    if (a->reconnect && !a->signals && c_state(a) != DX_OPEN) {
        /* Disconnected at EOF: the queued lines go first, once back. */
        a->close_when_open = 1;
        stdin_stop(a);
        return;
    }
    a->we_closed = 1;
    stdin_stop(a);
    (void)c_close(a, a->close_code, a->close_reason);
}

static void send_line(app *a, const char *p, size_t n) {
    a->line_no++;
    int rc = c_send(a, a->binary ? DX_OP_BINARY : DX_OP_TEXT, p, n);
    if (rc == DX_EUTF8) {
        fprintf(stderr, "duplex connect: line %zu is not valid UTF-8, not sent (use --binary)\n",
                a->line_no);
        a->bad_input = 1;
    } else if (rc < 0 && rc != DX_ESTATE) {
        fprintf(stderr, "duplex connect: line %zu not sent: %s\n", a->line_no, dx_strerror(rc));
        a->bad_input = 1;
    }
}

static void drain_check(dx_loop *loop, dx_timer *t);

/* Sends the complete lines in the buffer and keeps the partial one. */
static void take_lines(app *a) {
    size_t start = 0;
    while (a->scan < a->line_len) {
        char *nl = memchr(a->line + a->scan, '\n', a->line_len - a->scan);
        if (!nl) {
            a->scan = a->line_len;
            break;
        }
        size_t end = (size_t)(nl - a->line);
        send_line(a, a->line + start, end - start);
        start = a->scan = end + 1;
    }
    if (start) {
        memmove(a->line, a->line + start, a->line_len - start);
        a->line_len -= start;
        a->scan -= start;
    }
}

static void pause_if_full(app *a) {
    if (c_buffered(a) < PAUSE_ABOVE || a->in_done) return;
    a->in_paused = 1;
    if (!a->in_polled) (void)dx_io_update(a->loop, &a->in_io, 0);
    dx_timer_start(a->loop, &a->drain_timer, DRAIN_CHECK_MS);
}

/* Reads once (a readable pipe or terminal never blocks one read). Returns
 * 1 when it should be called again soon (a file being pumped). */
static int read_stdin(app *a) {
    if (a->in_done || a->in_paused) return 0;
    if (a->line_cap - a->line_len < READ_CHUNK) {
        size_t cap = a->line_cap ? a->line_cap * 2 : 2 * READ_CHUNK;
        while (cap - a->line_len < READ_CHUNK)
            cap *= 2;
        char *p = realloc(a->line, cap);
        if (!p) {
            fprintf(stderr, "duplex connect: out of memory reading stdin\n");
            a->bad_input = 1;
            start_close(a);
            return 0;
        }
        a->line = p;
        a->line_cap = cap;
    }
    ssize_t n = read(0, a->line + a->line_len, READ_CHUNK);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return 1;
    if (n <= 0) {
        if (n < 0) {
            fprintf(stderr, "duplex connect: reading stdin: %s\n", strerror(errno));
            a->bad_input = 1;
        }
        if (a->line_len) send_line(a, a->line, a->line_len); /* a last line without '\n' */
        a->line_len = a->scan = 0;
        if (n == 0 && a->wait_ms) {
            /* --wait: the answers to the last lines still get printed (once
             * our close is out, the browser's rules drop them). */
            stdin_stop(a);
            dx_timer_start(a->loop, &a->wait_timer, a->wait_ms);
            return 0;
        }
        start_close(a);
        return 0;
    }
    a->line_len += (size_t)n;
    take_lines(a);
    if (a->line_len > a->max_message) {
        fprintf(stderr, "duplex connect: line %zu is longer than the message limit (%llu bytes)\n",
                a->line_no + 1, (unsigned long long)a->max_message);
        a->bad_input = 1;
        start_close(a);
        return 0;
    }
    pause_if_full(a);
    return !a->in_paused;
}

static void on_wait_over(dx_loop *loop, dx_timer *t) {
    start_close((app *)((char *)t - offsetof(app, wait_timer)));
}

static void on_stdin(dx_loop *loop, dx_io *w, unsigned events) {
    app *a = (app *)((char *)w - offsetof(app, in_io));
    (void)read_stdin(a);
}

static void on_stdin_pump(dx_loop *loop, dx_timer *t) {
    app *a = (app *)((char *)t - offsetof(app, in_timer));
    if (read_stdin(a)) dx_timer_start(loop, t, 0);
}

static void drain_check(dx_loop *loop, dx_timer *t) {
    app *a = (app *)((char *)t - offsetof(app, drain_timer));
    if (a->in_done) return;
    if (c_buffered(a) > RESUME_BELOW) {
        dx_timer_start(loop, t, DRAIN_CHECK_MS);
        return;
    }
    a->in_paused = 0;
    if (a->in_polled)
        dx_timer_start(loop, &a->in_timer, 0);
    else
        (void)dx_io_update(loop, &a->in_io, DX_IO_READ);
}

static void stdin_start(app *a) {
    if (a->in_started) return;
    a->in_started = 1;
    /* epoll refuses regular files and /dev/null, which never block: those
     * are read from a timer instead, one chunk per loop iteration. */
    if (dx_io_start(a->loop, &a->in_io, 0, DX_IO_READ, on_stdin) < 0) {
        a->in_polled = 1;
        dx_timer_start(a->loop, &a->in_timer, 0);
    }
}

/* ---- client callbacks ------------------------------------------------------ */

/* Open, by either transport: `how` is "" or " over HTTP (...)". */
static void opened(app *a, const char *url, const char *p, const char *x, const char *how) {
    a->opened = 1;
    if (!a->quiet)
        fprintf(stderr, "duplex: connected to %s%s%s%s%s%s%s%s\n", url, *p ? " (subprotocol " : "",
                p, *p ? ")" : "", *x ? " (extensions " : "", x, *x ? ")" : "", how);
    if (a->signals || a->close_when_open) {
        start_close(a);
        return;
    }
    if (!a->echo) stdin_start(a);
}

static void on_open(dx_client *c, void *user) {
    opened(user, dx_client_url(c), dx_client_protocol(c), dx_client_extensions(c), "");
}

/* --reconnect: say what is going on. */
static void on_connecting(dx_client *c, void *user, const char *url, unsigned attempt) {
    app *a = user;
    a->errored = 0; /* only the last attempt's errors decide the exit status */
    a->last_attempt = attempt;
    if (a->quiet) return;
    if (attempt)
        fprintf(stderr, "duplex: connecting to %s (attempt %u)\n", url, attempt);
    else
        fprintf(stderr, "duplex: connecting to %s\n", url);
}

static void on_reconnecting(dx_client *c, void *user, unsigned attempt, uint32_t delay_ms) {
    app *a = user;
    if (a->quiet) return;
    if (a->max_retries)
        fprintf(stderr, "duplex: reconnecting in %.3f s (attempt %u of %u)\n", delay_ms / 1000.0,
                attempt, (unsigned)a->max_retries);
    else
        fprintf(stderr, "duplex: reconnecting in %.3f s (attempt %u)\n", delay_ms / 1000.0,
                attempt);
}

static void received(app *a, enum dx_opcode op, const uint8_t *data, size_t len) {
    if (a->echo) {
        int rc = c_send(a, op, data, len);
        if (rc < 0 && rc != DX_ESTATE)
            fprintf(stderr, "duplex connect: echo not sent: %s\n", dx_strerror(rc));
        return;
    }
    print_message(a, op, data, len);
}

static void on_message(dx_client *c, void *user, enum dx_opcode op, const uint8_t *data,
                       size_t len) {
    received(user, op, data, len);
}

static void errored(app *a, const char *message) {
    a->errored = 1;
    fprintf(stderr, "duplex: connect: %s\n", message);
}

static void on_error(dx_client *c, void *user, int err, const char *message) {
    errored(user, message);
}

/* The close reason is the server's text: valid UTF-8, but free to hold
 * control characters (an escape sequence, a CR) that must not reach the
 * terminal as such. Copies at most 123 bytes of it into `out` with each
 * control byte written as \xNN. */
static const char *printable(char out[4 * 123 + 1], const char *s, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len && i < 123; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f)
            n += (size_t)snprintf(out + n, 5, "\\x%02x", ch);
        else
            out[n++] = (char)ch;
    }
    out[n] = 0;
    return out;
}

/* The end, by either transport (not a --reconnect's lost connection). */
static void closed(app *a, uint16_t code, const char *reason, int was_clean) {
    int rlen = (int)strlen(reason);
    if (a->reconnect && a->max_retries && !a->we_closed && !a->signals &&
        a->last_attempt >= a->max_retries)
        fprintf(stderr, "duplex: connect: giving up after %u reconnect attempts\n",
                (unsigned)a->max_retries);
    if (a->errored) {
        a->exit_code = 1;
    } else if (a->signals && !a->opened) {
        fprintf(stderr, "duplex: connect: interrupted before the connection opened\n");
        a->exit_code = 1;
    } else if (!was_clean) {
        if (code == DX_CLOSE_ABNORMAL)
            fprintf(stderr, "duplex: connect: closed abnormally (1006: the connection ended "
                            "without a closing handshake)\n");
        else
            fprintf(stderr, "duplex: connect: closed: %u %.*s\n", (unsigned)code, rlen, reason);
        a->exit_code = 1;
    } else if (a->we_closed || code == DX_CLOSE_NORMAL || code == DX_CLOSE_GOING_AWAY ||
               code == DX_CLOSE_NO_STATUS) {
        if (!a->quiet)
            fprintf(stderr, "duplex: closed: %u%s%.*s\n", (unsigned)code, rlen ? " " : "", rlen,
                    reason);
        a->exit_code = 0;
    } else {
        fprintf(stderr, "duplex: connect: closed: %u%s%.*s\n", (unsigned)code, rlen ? " " : "",
                rlen, reason);
        a->exit_code = 1;
    }
    if (a->bad_input) a->exit_code = 1;
    stdin_stop(a);
    dx_loop_stop(a->loop);
}

static void on_close(dx_client *c, void *user, uint16_t code, const char *reason, size_t reason_len,
                     int was_clean) {
    app *a = user;
    char safe[4 * 123 + 1];
    reason = printable(safe, reason, reason_len);
    if (dx_client_ready_state(c) == DX_CONNECTING) { /* --reconnect: not the end */
        int rlen = (int)strlen(reason);
        if (!a->quiet && a->opened)
            fprintf(stderr, "duplex: connection lost: %u%s%.*s%s\n", (unsigned)code,
                    rlen ? " " : "", rlen, reason, was_clean ? "" : " (abnormal)");
        a->opened = 0;
        return;
    }
    closed(a, code, reason, was_clean);
}

/* The HTTP session's callbacks (connect_http.h). */
static void hs_open(void *arg, const char *url, const char *protocol) {
    app *a = arg;
    opened(a, url, protocol, "", a->poll ? " over HTTP (long polls)" : " over HTTP (SSE)");
}

static void hs_message(void *arg, enum dx_opcode op, const uint8_t *data, size_t len) {
    received(arg, op, data, len);
}

static void hs_error(void *arg, const char *message) {
    errored(arg, message);
}

static void hs_close(void *arg, uint16_t code, const char *reason, size_t reason_len,
                     int was_clean) {
    char safe[4 * 123 + 1];
    closed(arg, code, printable(safe, reason, reason_len), was_clean);
}

static void on_signal(dx_loop *loop, void *arg) {
    app *a = arg;
    if (++a->signals > 1) {
        a->exit_code = 130;
        dx_loop_stop(loop);
        return;
    }
    if (c_state(a) == DX_CONNECTING)
        (void)c_close(a, 0, NULL); /* the close (1006) follows */
    else
        start_close(a);
}

/* ---- the options -------------------------------------------------------- */

/* What the command line says, before any check between options. */
typedef struct connect_opts {
    const char *urls[MAX_LIST + 1];
    const char *headers[MAX_LIST + 1], *protocols[MAX_LIST + 1];
    uint16_t finals[MAX_LIST + 1];
    int nurls, nheaders, nprotocols, nfinals;
    const char *origin, *ca_file, *close_reason;
    int binary, hex, echo, insecure, quiet, reconnect, no_deflate, no_context_takeover;
    int deflate_window; /* 0: not offered */
    int transport;      /* 0 ws, 1 stream, 2 poll */
    unsigned close_code;
    uint64_t max_message;
    uint32_t max_retries, wait_ms, connect_timeout_ms, handshake_timeout_ms;
    uint32_t backoff_ms, backoff_max_ms, ping_interval_ms, ping_timeout_ms;
} connect_opts;

#define OFF(f) offsetof(connect_opts, f)

static int bad(const char *msg, const char *arg) {
    return dx_cli_bad("connect", msg, arg);
}

static int set_header(void *p, const dx_cli_opt *opt, const char *val) {
    connect_opts *o = p;
    if (o->nheaders == MAX_LIST) return bad("too many headers", val);
    o->headers[o->nheaders++] = val;
    return 0;
}

static int set_protocol(void *p, const dx_cli_opt *opt, const char *val) {
    connect_opts *o = p;
    if (o->nprotocols == MAX_LIST) return bad("too many subprotocols", val);
    o->protocols[o->nprotocols++] = val;
    return 0;
}

static int set_close_code(void *p, const dx_cli_opt *opt, const char *val) {
    uint64_t u;
    if (dx_cli_u64(val, 4999, &u) || (u != DX_CLOSE_NORMAL && u < 3000))
        return bad("bad close code (1000 or 3000-4999)", val);
    ((connect_opts *)p)->close_code = (unsigned)u;
    return 0;
}

static int set_close_reason(void *p, const dx_cli_opt *opt, const char *val) {
    if (strlen(val) > 123) return bad("close reason longer than 123 bytes", val);
    ((connect_opts *)p)->close_reason = val;
    return 0;
}

static int set_max_message(void *p, const dx_cli_opt *opt, const char *val) {
    uint64_t u;
    if (dx_cli_u64(val, UINT64_MAX, &u) || u == 0) return bad("bad size", val);
    ((connect_opts *)p)->max_message = u;
    return 0;
}

/* The field at opt->off, a uint32_t of milliseconds, zero refused. */
static int set_seconds(void *p, const dx_cli_opt *opt, const char *val) {
    if (dx_cli_set_ms(p, opt, val, 0)) return bad("bad seconds", val);
    return 0;
}

static int set_deflate_window(void *p, const dx_cli_opt *opt, const char *val) {
    uint64_t u;
    if (dx_cli_u64(val, 15, &u) || u < 8) return bad("bad window bits (8-15)", val);
    ((connect_opts *)p)->deflate_window = (int)u;
    return 0;
}

static int set_max_retries(void *p, const dx_cli_opt *opt, const char *val) {
    uint64_t u;
    if (dx_cli_u64(val, UINT32_MAX, &u) || u == 0) return bad("bad number", val);
    ((connect_opts *)p)->max_retries = (uint32_t)u;
    return 0;
}

static int set_final_code(void *p, const dx_cli_opt *opt, const char *val) {
    connect_opts *o = p;
    uint64_t u;
    if (dx_cli_u64(val, 4999, &u) || u < 1000) return bad("bad close code (1000-4999)", val);
    if (o->nfinals == MAX_LIST) return bad("too many final codes", val);
    o->finals[o->nfinals++] = (uint16_t)u;
    return 0;
}

static int set_transport(void *p, const dx_cli_opt *opt, const char *val) {
    static const char *const names[] = {"ws", "stream", "poll"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(val, names[i])) {
            ((connect_opts *)p)->transport = i;
            return 0;
        }
    return bad("bad transport (ws, stream or poll)", val);
}

/* Anything that is not an option is a URL. */
static int add_url(void *p, const char *arg) {
    connect_opts *o = p;
    if (o->nurls == MAX_LIST) return bad("too many URLs", arg);
    o->urls[o->nurls++] = arg;
    return 0;
}

/* Both the parser and --help: an entry's help is its text in --help. */
static const dx_cli_opt connect_options[] = {
    {.name = "--header",
     .short_name = 'H',
     .arg = "'Name: value'",
     .set = set_header,
     .help = "add a request header (repeatable)"},
    {.name = "--subprotocol",
     .short_name = 's',
     .arg = "P",
     .set = set_protocol,
     .help = "offer subprotocol P (repeatable, in preference order)"},
    {.name = "--origin",
     .short_name = 'o',
     .arg = "O",
     .set = dx_cli_set_str,
     .off = OFF(origin),
     .help = "send Origin: O"},
    {.name = "--binary",
     .short_name = 'b',
     .set = dx_cli_set_true,
     .off = OFF(binary),
     .help = "send stdin lines as binary messages"},
    {.name = "--hex",
     .set = dx_cli_set_true,
     .off = OFF(hex),
     .help =
         "print binary messages as hex digits (default: the\nbytes as received, then a newline)"},
    {.name = "--echo",
     .short_name = 'e',
     .set = dx_cli_set_true,
     .off = OFF(echo),
     .help = "send every message received back unchanged (same\n"
             "opcode) until the server closes; stdin is not read\n"
             "and nothing is printed on stdout"},
    {.name = "--insecure",
     .short_name = 'k',
     .set = dx_cli_set_true,
     .off = OFF(insecure),
     .help = "wss: accept any certificate (testing only)"},
    {.name = "--ca",
     .arg = "FILE",
     .set = dx_cli_set_str,
     .off = OFF(ca_file),
     .help = "wss: trust the CAs in PEM FILE instead of the system's"},
    {.name = "--wait",
     .short_name = 'w',
     .arg = "S",
     .set = set_seconds,
     .off = OFF(wait_ms),
     .help = "after EOF on stdin, print what arrives for S more\n"
             "seconds, then close (like wscat -w): the answers\n"
             "to the last lines are not lost"},
    {.name = "--close-code",
     .arg = "N",
     .set = set_close_code,
     .help = "code of the close sent at EOF: 1000 (default) or\n3000-4999"},
    {.name = "--close-reason",
     .arg = "R",
     .set = set_close_reason,
     .help = "reason of that close (at most 123 bytes)"},
    {.name = "--max-message",
     .arg = "BYTES",
     .set = set_max_message,
     .help = "largest message in either direction (default 16 MiB);\n"
             "a longer stdin line is an error"},
    {.name = "--connect-timeout",
     .arg = "S",
     .set = set_seconds,
     .off = OFF(connect_timeout_ms),
     .help = "seconds to resolve the host and connect (default 10)"},
    {.name = "--handshake-timeout",
     .arg = "S",
     .set = set_seconds,
     .off = OFF(handshake_timeout_ms),
     .help = "seconds for TLS and the upgrade (default 10)"},
    {.name = "--no-deflate",
     .set = dx_cli_set_true,
     .off = OFF(no_deflate),
     .help = "do not offer permessage-deflate (offered by default)"},
    {.name = "--deflate-window",
     .arg = "BITS",
     .set = set_deflate_window,
     .help = "offer client_max_window_bits=BITS (8-15): the\n"
             "window of what we send, and so the server's memory"},
    {.name = "--no-context-takeover",
     .set = dx_cli_set_true,
     .off = OFF(no_context_takeover),
     .help = "offer client_no_context_takeover and\n"
             "server_no_context_takeover (less memory both ways)"},
    {.name = "--reconnect",
     .set = dx_cli_set_true,
     .off = OFF(reconnect),
     .help = "keep the connection: when it ends (except after our\n"
             "close or a --final-code), reconnect with exponential\n"
             "backoff and full jitter; lines typed meanwhile are\n"
             "queued and sent in order once connected again.\n"
             "Several URLs may then be given: each attempt takes\n"
             "the next one, in a circle (failover)"},
    {.name = "--backoff",
     .arg = "S",
     .set = set_seconds,
     .off = OFF(backoff_ms),
     .help = "first reconnect delay bound (default 1); it doubles\n"
             "at each attempt in a row, each delay drawn in [0, it]"},
    {.name = "--backoff-max",
     .arg = "S",
     .set = set_seconds,
     .off = OFF(backoff_max_ms),
     .help = "the bound's cap (default 30)"},
    {.name = "--max-retries",
     .arg = "N",
     .set = set_max_retries,
     .help = "give up after N failed reconnects in a row (default:\n"
             "never); the count restarts after 5 s connected"},
    {.name = "--final-code",
     .arg = "N",
     .set = set_final_code,
     .help = "never reconnect after close code N (1000-4999;\nrepeatable; 1006 counts as well)"},
    {.name = "--ping-interval",
     .arg = "S",
     .set = set_seconds,
     .off = OFF(ping_interval_ms),
     .help = "heartbeat: ping after S seconds without a byte from\n"
             "the server; with or without --reconnect"},
    {.name = "--ping-timeout",
     .arg = "S",
     .set = set_seconds,
     .off = OFF(ping_timeout_ms),
     .help = "the server is dead (1006) when nothing arrives within\n"
             "S seconds of a ping (default: the interval)"},
    {.name = "--transport",
     .short_name = 't',
     .arg = "T",
     .set = set_transport,
     .help = "ws (default): a WebSocket; stream or poll: the\n"
             "server's HTTP session transport (docs/fallback.md),\n"
             "SSE or long polls down and POSTs up, as a browser\n"
             "falls back to when a proxy refuses the upgrade; no\n"
             "--reconnect, heartbeat or deflate options then"},
    {.name = "--quiet",
     .short_name = 'q',
     .set = dx_cli_set_true,
     .off = OFF(quiet),
     .help = "no progress lines on stderr (errors still go there)"},
    {.name = "--help", .short_name = 'h', .set = dx_cli_set_help, .help = "this help"},
    {0},
};

static void usage(FILE *f) {
    fputs("usage: duplex connect URL [options]\n"
          "       duplex connect --reconnect URL [URL...] [options]\n\n"
          "Connects to a WebSocket server, like wscat. Each line of stdin is sent as one\n"
          "text message (without its newline); each message received is printed on its\n"
          "own line on stdout. EOF on stdin (or SIGINT/SIGTERM) sends a normal close and\n"
          "exits once the closing handshake is done; a second signal exits at once.\n"
          "URL: ws://host[:port][/path][?query] or wss://... (IPv6: ws://[::1]:8080/).\n\n"
          "options:\n",
          f);
    dx_cli_help(f, connect_options, 27, 1);
    fputs("\nText lines must be UTF-8: a line that is not is reported and skipped.\n"
          "Binary messages cannot hold a newline byte when sent from stdin.\n\n"
          "Exit status:\n"
          "  0  the connection ended with a clean closing handshake: after our close\n"
          "     (EOF or a signal), or the server's close with 1000, 1001 or no code\n"
          "  1  the connection failed (name, refused, timeout, TLS, refused upgrade),\n"
          "     ended abnormally (1006: no closing handshake), failed the protocol, or\n"
          "     the server closed with another code: stderr says\n"
          "     \"duplex: connect: closed: CODE REASON\"; also when a stdin line could\n"
          "     not be sent\n"
          "     With --reconnect only the final end counts: 0 after our close (at EOF\n"
          "     once connected and the queued lines sent, or on a signal) answered\n"
          "     cleanly; 1 after a --final-code, or when --max-retries ran out\n"
          "     (\"giving up after N reconnect attempts\")\n"
          "  2  usage error (bad option or URL)\n"
          "  130  a second SIGINT/SIGTERM\n",
          f);
}

/* Parses argv into `o` (set to the defaults first): 0, DX_CLI_STOP for
 * --help, or 2 after the usage error. */
static int parse(int argc, char **argv, connect_opts *o) {
    memset(o, 0, sizeof *o);
    o->close_code = DX_CLOSE_NORMAL;
    o->max_message = DX_DEFAULT_MAX_MESSAGE;
    return dx_cli_parse("connect", connect_options, argc, argv, o, add_url);
}

/* The checks between options, and the client's config they make with the
 * app's settings (`a` is the client's user): 0, or 2 after the usage error. */
static int config(connect_opts *o, app *a, dx_client_config *cfg) {
    if (o->nurls == 0) return bad("missing URL", NULL);
    if (o->nurls > 1 && !o->reconnect)
        return bad("more than one URL (failover needs --reconnect)", o->urls[1]);
    for (int k = 0; k < o->nurls; k++) {
        dx_url url;
        const char *why = NULL;
        int rc = dx_url_parse(o->urls[k], strlen(o->urls[k]), &url, &why);
        dx_url_free(&url);
        if (rc == DX_EADDR) {
            fprintf(stderr, "duplex connect: invalid URL '%s': %s\n", o->urls[k], why);
            return 2;
        }
    }
    if (o->nfinals && !o->reconnect) return bad("--final-code needs --reconnect", NULL);
    if (o->transport &&
        (o->reconnect || o->ping_interval_ms || o->ping_timeout_ms || o->deflate_window ||
         o->no_context_takeover || o->backoff_ms || o->backoff_max_ms || o->max_retries))
        return bad("--transport stream|poll takes no --reconnect, heartbeat or deflate option",
                   NULL);

    memset(a, 0, sizeof *a);
    a->binary = o->binary;
    a->hex = o->hex;
    a->echo = o->echo;
    a->quiet = o->quiet;
    a->close_code = o->close_code;
    a->close_reason = o->close_reason;
    a->max_message = o->max_message;
    a->wait_ms = o->wait_ms;
    a->reconnect = o->reconnect;
    a->max_retries = o->max_retries;
    a->http = o->transport != 0;
    a->poll = o->transport == 2;

    *cfg = (dx_client_config){.user = a,
                              .on_open = on_open,
                              .on_message = on_message,
                              .on_error = on_error,
                              .on_close = on_close,
                              .on_connecting = on_connecting,
                              .on_reconnecting = on_reconnecting};
    cfg->origin = o->origin;
    cfg->insecure = o->insecure;
    cfg->ca_file = o->ca_file;
    cfg->connect_timeout_ms = o->connect_timeout_ms;
    cfg->handshake_timeout_ms = o->handshake_timeout_ms;
    cfg->deflate.enable = !o->no_deflate; /* permessage-deflate, as browsers offer it */
    cfg->deflate.client_max_window_bits = o->deflate_window;
    cfg->deflate.client_no_context_takeover = cfg->deflate.server_no_context_takeover =
        o->no_context_takeover;
    cfg->reconnect = o->reconnect;
    cfg->reconnect_base_ms = o->backoff_ms;
    cfg->reconnect_max_ms = o->backoff_max_ms;
    cfg->max_retries = o->max_retries;
    cfg->ping_interval_ms = o->ping_interval_ms;
    cfg->ping_timeout_ms = o->ping_timeout_ms;
    cfg->url = o->urls[0];
    o->urls[o->nurls] = NULL;
    cfg->urls = o->nurls > 1 ? o->urls + 1 : NULL;
    o->finals[o->nfinals] = 0;
    cfg->final_codes = o->nfinals ? o->finals : NULL;
    /* The offline queue holds more than the point where stdin pauses, so a
     * fast producer is slowed down, never refused. */
    cfg->queue_max_messages = 1u << 20;
    cfg->queue_max_bytes =
        a->max_message < SIZE_MAX / 2 ? 2 * (size_t)PAUSE_ABOVE + (size_t)a->max_message : SIZE_MAX;
    o->headers[o->nheaders] = NULL;
    o->protocols[o->nprotocols] = NULL;
    cfg->headers = o->nheaders ? o->headers : NULL;
    cfg->protocols = o->nprotocols ? o->protocols : NULL;
    cfg->max_message = a->max_message;
    a->hcfg = (dx_cli_hsess_config){.url = cfg->url,
                                    .poll = a->poll,
                                    .headers = cfg->headers,
                                    .protocols = cfg->protocols,
                                    .origin = o->origin,
                                    .insecure = o->insecure,
                                    .ca_file = o->ca_file,
                                    .connect_timeout_ms = o->connect_timeout_ms,
                                    .max_message = a->max_message};
    return 0;
}

/* Connects and runs until the end: the exit status. */
static int run(app *a, const dx_client_config *cfg) {
    a->loop = dx_loop_new(0);
    if (!a->loop) {
        fprintf(stderr, "duplex connect: cannot create the event loop\n");
        return 1;
    }
    dx_timer_init(&a->in_timer, on_stdin_pump);
    dx_timer_init(&a->drain_timer, drain_check);
    dx_timer_init(&a->wait_timer, on_wait_over);
    a->in_io.fd = -1;
    (void)dx_loop_on_signal(a->loop, SIGINT, on_signal, a);
    (void)dx_loop_on_signal(a->loop, SIGTERM, on_signal, a);
    a->exit_code = 1;
    if (a->http) {
        static const dx_cli_hsess_cb hcb = {.on_open = hs_open,
                                            .on_message = hs_message,
                                            .on_error = hs_error,
                                            .on_close = hs_close};
        const char *why = "out of memory";
        a->hs = dx_cli_hsess_new(a->loop, &a->hcfg, &hcb, a, &why);
        if (!a->hs) {
            fprintf(stderr, "duplex connect: %s: %s\n", cfg->url, why);
            dx_loop_free(a->loop);
            return 1;
        }
    } else if (!(a->client = dx_client_new(a->loop, cfg))) {
        fprintf(stderr, "duplex connect: out of memory\n");
        dx_loop_free(a->loop);
        return 1;
    }
    if (a->reconnect && !a->echo) stdin_start(a); /* lines queue until connected */
    if (dx_loop_run(a->loop) < 0) {
        fprintf(stderr, "duplex connect: event loop failed\n");
        a->exit_code = 1;
    }
    stdin_stop(a);
    dx_client_free(a->client);
    dx_cli_hsess_free(a->hs);
    dx_loop_free(a->loop);
    free(a->line);
    fflush(stdout);
    return a->exit_code;
}

int dx_cli_connect(int argc, char **argv) {
    static connect_opts o; /* holds the lists the config points to */
    static app a;
    dx_client_config cfg;
    int rc = parse(argc, argv, &o);
    if (rc == DX_CLI_STOP) {
        usage(stdout);
        return 0;
    }
    if (rc) return rc;
    rc = config(&o, &a, &cfg);
    if (rc) return rc;
    return run(&a, &cfg);
}

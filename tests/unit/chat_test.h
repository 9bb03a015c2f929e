/* Shared by the chat engine's tests: a dx__chat_io that records what each
 * device would receive (up to MAX_OUT messages), a clock the test moves,
 * and helpers to open devices, send requests and read the replies.
 * Include after test.h, once per test program. */
#ifndef DX_TEST_CHAT_TEST_H
#define DX_TEST_CHAT_TEST_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/engine.h"

#define MAX_DEVS 8
#define MAX_OUT 8192

typedef struct rec {
    dx__chat_dev *to;
    char *data;
    int taken;
} rec;

static rec outs[MAX_OUT];
static int nouts, schedules;
static dx__chat_dev *devs[MAX_DEVS];
static int64_t clock_ms = 1700000000000;

static inline void io_send(void *arg, dx__chat_dev *d, const char *data, size_t len) {
    if (nouts < MAX_OUT) outs[nouts++] = (rec){d, strndup(data, len), 0};
}

static inline void io_deliver(void *arg, const char *uid, const char *data, size_t len,
                              const dx__chat_dev *except) {
    for (int i = 0; i < MAX_DEVS; i++)
        if (devs[i] && devs[i] != except && !strcmp(devs[i]->uid, uid))
            io_send(arg, devs[i], data, len);
}

static inline void io_schedule(void *arg) {
    schedules++;
}

static inline int64_t io_now(void *arg) {
    return clock_ms;
}

/* The latency clock: the same test clock, in µs. */
static inline int64_t io_mono(void *arg) {
    return clock_ms * 1000;
}

static inline void reset_outs(void) {
    for (int i = 0; i < nouts; i++)
        free(outs[i].data);
    nouts = 0;
    schedules = 0;
}

static inline void dev_open(dx__chat *c, dx__chat_dev *d, const char *uid) {
    memset(d, 0, sizeof *d);
    snprintf(d->uid, sizeof d->uid, "%s", uid);
    for (int i = 0; i < MAX_DEVS; i++)
        if (!devs[i]) {
            devs[i] = d;
            break;
        }
    dx__chat_open(c, d);
}

static inline void dev_close(dx__chat *c, dx__chat_dev *d) {
    for (int i = 0; i < MAX_DEVS; i++)
        if (devs[i] == d) devs[i] = NULL;
    dx__chat_close(c, d);
}

static inline void req(dx__chat *c, dx__chat_dev *d, const char *json) {
    dx__chat_message(c, d, json, strlen(json), 0);
}

/* The next message for `d` not yet looked at, parsed (caller decrefs), or
 * NULL. */
static inline json_t *next(dx__chat_dev *d) {
    for (int i = 0; i < nouts; i++) {
        if (outs[i].to != d || outs[i].taken) continue;
        outs[i].taken = 1;
        return json_loads(outs[i].data, 0, NULL);
    }
    return NULL;
}

/* Skips messages of other types until one of `type`. */
static inline json_t *next_of(dx__chat_dev *d, const char *type) {
    json_t *j;
    while ((j = next(d))) {
        if (!strcmp(json_string_value(json_object_get(j, "type")), type)) return j;
        json_decref(j);
    }
    return NULL;
}

static inline int left(dx__chat_dev *d) {
    int n = 0;
    for (int i = 0; i < nouts; i++)
        n += outs[i].to == d && !outs[i].taken;
    return n;
}

static inline void drain(dx__chat_dev *d) {
    json_t *j;
    while ((j = next(d)))
        json_decref(j);
}

static inline const char *str(json_t *j, const char *k) {
    const char *s = json_string_value(json_object_get(j, k));
    return s ? s : "";
}

static inline long long num(json_t *j, const char *k) {
    return json_integer_value(json_object_get(j, k));
}

/* The store of a test: SQLite in memory, or PostgreSQL when DX_TEST_PG
 * holds a URL (by hand: the engine tests on the cluster's store), its
 * chat tables dropped first so that each test starts on empty ones. */
static inline dx__chat_store *test_store(void) {
    const char *why = NULL, *url = getenv("DX_TEST_PG");
    if (!url || !*url) return dx__chat_store_sqlite(NULL, &why);
    PGconn *db = PQconnectdb(url);
    if (PQstatus(db) == CONNECTION_OK)
        PQclear(PQexec(db,
                       "SET client_min_messages = warning;"
                       "DROP TABLE IF EXISTS chat_messages, chat_members, chat_convs, chat_users"));
    PQfinish(db);
    dx__chat_store *st = dx__chat_store_pg(url, &why);
    if (!st) fprintf(stderr, "DX_TEST_PG: %s\n", why);
    return st;
}

/* An engine with the "lobby" room over `st` (NULL: test_store()),
 * recording into outs; nothing recorded yet. */
static inline dx__chat *test_engine(dx__chat_store *st) {
    const char *why = NULL;
    if (!st) st = test_store();
    if (!st) return NULL;
    dx__chat_io io = {NULL, io_send, io_deliver, io_schedule, io_now, NULL, io_mono, NULL};
    reset_outs();
    memset(devs, 0, sizeof devs);
    return dx__chat_new(&io, st, "lobby", &why);
}

/* Opens a device of `uid` and lets the turn end: its welcome and the
 * turn's pushes are read and dropped. */
static inline void dev_ready(dx__chat *c, dx__chat_dev *d, const char *uid) {
    dev_open(c, d, uid);
    (void)dx__chat_flush(c);
    drain(d);
}

/* ---- revision 2 helpers ---- */

/* Sends a request (printf format; it should carry "id":"q"), ends the
 * turn, and returns the reply to it (the first message for `d` with that
 * id), leaving the others for next(). */
static inline json_t *call(dx__chat *c, dx__chat_dev *d, const char *fmt, ...) {
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    req(c, d, buf);
    (void)dx__chat_flush(c);
    for (int i = 0; i < nouts; i++) {
        if (outs[i].to != d || outs[i].taken) continue;
        json_t *j = json_loads(outs[i].data, 0, NULL);
        if (j && !strcmp(str(j, "id"), "q")) {
            outs[i].taken = 1;
            return j;
        }
        json_decref(j);
    }
    return NULL;
}

/* The reply's type, or the error code for an error ("" for none). */
static inline const char *what(json_t *j) {
    if (!j) return "";
    return !strcmp(str(j, "type"), "error") ? str(j, "code") : str(j, "type");
}

/* call() and check what came back; frees the reply. */
#define EXPECT(want, c, d, ...)                                                                    \
    do {                                                                                           \
        json_t *r_ = call(c, d, __VA_ARGS__);                                                      \
        if (strcmp(what(r_), want)) fprintf(stderr, "got %s for %s\n", what(r_), #__VA_ARGS__);    \
        CHECK(!strcmp(what(r_), want));                                                            \
        json_decref(r_);                                                                           \
    } while (0)

/* The next deliver for `d`, its message's sys.op ("" when not a system
 * message). */
static inline json_t *next_msg(dx__chat_dev *d) {
    json_t *j = next_of(d, "deliver");
    json_t *m = j ? json_incref(json_object_get(j, "msg")) : NULL;
    json_decref(j);
    return m;
}

static inline const char *op_of(json_t *m) {
    return str(json_object_get(m, "sys"), "op");
}

#endif

/* Shared by the chat engine's tests: a dx__chat_io that records what each
 * device would receive (up to MAX_OUT messages), a clock the test moves,
 * and helpers to open devices, send requests and read the replies.
 * Include after test.h, once per test program. */
#ifndef DX_TEST_CHAT_TEST_H
#define DX_TEST_CHAT_TEST_H

#include <jansson.h>
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

/* An engine with the "lobby" room over `st` (NULL: an SQLite store in
 * memory), recording into outs; nothing recorded yet. */
static inline dx__chat *test_engine(dx__chat_store *st) {
    const char *why = NULL;
    if (!st) st = dx__chat_store_sqlite(NULL, &why);
    if (!st) return NULL;
    dx__chat_io io = {NULL, io_send, io_deliver, io_schedule, io_now, NULL};
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

#endif

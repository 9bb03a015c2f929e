/* Internal: the chat engine — the protocol of docs/chat-protocol.md over a
 * store (store.h) and a broker (broker.h), with no socket and no loop of its
 * own. The service (service.c) plugs it into a dx_server; the unit tests
 * drive it directly through a dx__chat_io that records what it sends.
 *
 * Flow: the transport calls dx__chat_open when a device's WebSocket opens,
 * dx__chat_message for each message, dx__chat_close when it ends. Requests
 * that write (send, read, join) run inside one store transaction per loop
 * turn; their replies wait in a pending list, and io.schedule asks the
 * transport to call dx__chat_flush after the turn's callbacks, which
 * commits and, once the commit is durable, sends acks and deliveries
 * (group commit; the fsync may run on another thread: io.sync). Reads
 * (history, sync) flush first, and their replies wait for the same
 * fsync, so nothing that could still be lost is ever shown. With a store
 * that may block for long (PostgreSQL), dx__chat_use_thread moves all of
 * that onto a store thread (worker.h) and the loop never waits for it. */
#ifndef DX_CHAT_ENGINE_H
#define DX_CHAT_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include <duplex/chat.h>

#include "chat/broker.h"
#include "chat/store.h"

#define DX_CHAT_UID_MAX 32
#define DX_CHAT_TEXT_MAX 4000
#define DX_CHAT_REQUEST_MAX 16384

/* One connected device. Owned by the transport (inline connection data);
 * the engine reads uid and keeps no pointer to it after dx__chat_close. */
typedef struct dx__chat_dev {
    char uid[DX_CHAT_UID_MAX + 1];
    void *handle; /* the transport's connection */
    int online;   /* counted in presence (set by the engine) */
    /* Set by the transport for a sign-in it refused: the WebSocket is
     * closed with this code (4401, 4403) and reason as soon as it opens,
     * and the engine never sees it (docs/chat-protocol.md, "Connecting"). */
    unsigned refused;
    const char *refused_why; /* static */
    /* Its requests queued for the store thread (worker.c), NULL without. */
    struct dx__chat_job *jobs;
} dx__chat_dev;

typedef struct dx__chat_io {
    void *arg;
    /* Sends one text message to one device. */
    void (*send)(void *arg, dx__chat_dev *d, const char *data, size_t len);
    /* Sends to this node's devices of `uid`, except the device `except`. */
    void (*deliver)(void *arg, const char *uid, const char *data, size_t len,
                    const dx__chat_dev *except);
    /* Asks for one dx__chat_flush() after the current callbacks. */
    void (*schedule)(void *arg);
    /* Wall clock in ms since the epoch. */
    int64_t (*now_ms)(void *arg);
    /* Like deliver, for a best-effort push (typing, presence): skips a
     * device whose output queue is already long rather than let the push
     * make it a slow consumer. Optional (NULL: deliver). */
    void (*deliver_best)(void *arg, const char *uid, const char *data, size_t len,
                         const dx__chat_dev *except);
    /* A monotonic clock in µs, for the latency histograms of
     * dx_chat_stats. Optional (NULL: no latencies). */
    int64_t (*mono_us)(void *arg);
    /* For a store with sync() (store.h): runs it off the loop, on a thread
     * of the transport's, for commit number `no` and those before it, and
     * then calls dx__chat_durable(no, rc) on the loop. Optional (NULL: the
     * engine calls sync() itself, on the loop, after each commit). */
    void (*sync)(void *arg, uint64_t no);
} dx__chat_io;

typedef struct dx__chat dx__chat;

/* Creates an engine over `store` (taken: closed by dx__chat_free) with the
 * local broker. `lobby` (NULL for none) is a room name every device's user
 * joins when it connects. `io` is copied. NULL with *why on failure. */
dx__chat *dx__chat_new(const dx__chat_io *io, dx__chat_store *store, const char *lobby,
                       const char **why);
void dx__chat_free(dx__chat *chat);

/* The engine's counters (chat.h's dx_chat_stats), copied up to out->size. */
void dx__chat_stats_get(const dx__chat *chat, dx_chat_stats *out);

/* Replaces the per-user limits (dx_chat_limits in chat.h; NULL or zeros:
 * the defaults, which dx__chat_new starts with). The users' buckets start
 * full again. Returns 0 or DX_ENOMEM (the old limits stay). */
int dx__chat_set_limits(dx__chat *chat, const dx_chat_limits *l);

/* Typing pushes of one user in one conversation leave at most once per
 * `typing_interval_ms` (0: DX_CHAT_TYPING_INTERVAL_MS); the requests in
 * between are absorbed. Call before any device opens. */
#define DX_CHAT_TYPING_INTERVAL_MS 1500
void dx__chat_set_typing_interval(dx__chat *chat, uint32_t typing_interval_ms);

/* Recall (docs/chat-protocol.md, "Recall and edit"): a sender may recall a
 * message this long after its ts (0 or less: the default). */
#define DX_CHAT_RECALL_WINDOW_MS 120000
void dx__chat_set_recall_window(dx__chat *chat, int64_t ms);

/* Uploads and file messages: `f` (borrowed: the caller frees it after
 * dx__chat_free) serves the `upload` request and binary messages, and
 * vouches for the files a `send` attaches. NULL (the default): uploads
 * are off — `upload` and binary messages get bad_type, and so does a
 * `send` with a file. */
typedef struct dx__chat_files dx__chat_files;
void dx__chat_set_files(dx__chat *chat, dx__chat_files *f);

/* For GET /files/<id>?conv=CONV: 1 when `uid` is a member of `conv` and
 * `conv` holds a message, not recalled, with file `id` as its file or its
 * thumb; `name` (256 bytes) gets the file's display name (for a thumb,
 * "thumb-" and the name). 0 when not (the answer is then 404, whatever
 * the reason), or a negative code when the store failed. */
int dx__chat_file_visible(dx__chat *chat, const char *uid, const char *conv, const char *id,
                          char name[256]);

/* Runs the store's work on a thread of its own (worker.h): every request
 * but typing in a direct conversation, and the store's share of connects
 * and presence, go to a second engine over `st` (taken, even on failure)
 * on that thread, and nothing on `loop` waits for the store any more. The
 * store given to dx__chat_new then serves dx__chat_file_visible only. The
 * io's clocks (now_ms, mono_us) are then also called on the thread. Call
 * before any device opens; settings made before or after apply to both.
 * 0, or a negative code with *why. */
int dx__chat_use_thread(dx__chat *chat, dx_loop *loop, dx__chat_store *st, const char **why);
/* The failures the store(s) met (store.h's errors). */
uint64_t dx__chat_store_errors(const dx__chat *chat);

/* Several nodes. dx__chat_use_broker replaces the local broker with `b`
 * (taken: freed by dx__chat_free), before any device opens. Create `b`
 * with dx__chat_deliver_here as its deliver function and the engine as its
 * argument, so that what it receives reaches this node's devices. */
void dx__chat_use_broker(dx__chat *chat, dx__chat_broker *b);
void dx__chat_deliver_here(void *engine, const char *uid, const char *data, size_t len,
                           const void *except);
/* Another node's devices of `uid` changed to `devices` in all (a node
 * crashed and its devices expired, typically): when that makes the user
 * offline or online, tells the contacts connected to THIS node only — a
 * live node announces its own changes through the broker already. */
void dx__chat_remote_presence(dx__chat *chat, const char *uid, int64_t devices);

/* A device of d->uid (already validated) is open: welcome, presence, and
 * the lobby joined on a user's first connection (a `members` push to the
 * lobby at the flush). */
void dx__chat_open(dx__chat *chat, dx__chat_dev *d);
/* One message from a device: `binary` ones are upload chunks (bad_type
 * when uploads are off). */
void dx__chat_message(dx__chat *chat, dx__chat_dev *d, const char *data, size_t len, int binary);
/* The device is gone; replies still pending for it are dropped. */
void dx__chat_close(dx__chat *chat, dx__chat_dev *d);
/* Commits the turn's writes and sends what waited for it. Returns 0, or
 * DX_EIO when the commit failed (the requests got store_failed). */
int dx__chat_flush(dx__chat *chat);

/* Commits up to number `no` are durable (rc 0): their acks, deliveries
 * and the replies that waited for them leave now, in order. Or their
 * sync() failed (rc < 0): the requests get store_failed instead. */
void dx__chat_durable(dx__chat *chat, uint64_t no, int rc);

/* 1 when `s` is a valid uid: 1-32 of A-Z a-z 0-9 _ -. */
int dx__chat_valid_uid(const char *s, size_t len);

#endif

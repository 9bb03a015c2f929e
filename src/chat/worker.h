/* Internal: the engine's store thread, for a store whose calls may block
 * for long (PostgreSQL: a query waits for the server, and a frozen server
 * for as long as it is frozen). Nothing on the loop waits for it.
 *
 * How. The loop's engine (L) keeps the devices, presence counts, the
 * broker and typing in direct conversations, none of which reads the
 * store. Every other request, and the store's share of a connect, a
 * presence change and another node's presence news, becomes a job. The
 * thread runs a second engine (S) over the same protocol code and the
 * store, which nothing else touches, runs the jobs in arrival order and
 * hands back what S would have sent, in order; the loop sends it. For a
 * store with sync() every job queued while the previous batch ran shares
 * one commit (group commit); for one whose each write commits on its own
 * (PostgreSQL) the answers of each job are handed back as soon as it is
 * done (worker.c says why).
 *
 * So an ack still leaves only after the commit that holds its message,
 * and a read queued after it sees the message (the jobs run in arrival
 * order, one thread). A read waits at most behind the batch being run.
 *
 * S runs on the jobs' copies of the devices: a device that closes while
 * its jobs are queued or running is only marked, and what S answered it
 * is dropped. Presence flags in a reply (sync's `presence`, a `presence`
 * answer) are the loop's to know: S writes them false and the loop sets
 * them as it sends. Everything here but dx__chat_worker_run's thread is
 * called on the loop. */
#ifndef DX_CHAT_WORKER_H
#define DX_CHAT_WORKER_H

#include <stdint.h>

#include <duplex/loop.h>

#include "chat/engine.h"
#include "chat/store.h"

typedef struct dx__chat_worker dx__chat_worker;

/* What a job asks of S. */
enum {
    DX__JOB_MSG,    /* a request (data: its text) */
    DX__JOB_BIN,    /* an upload chunk (data: its bytes) */
    DX__JOB_OPEN,   /* the store's share of a connect (n: the user's devices) */
    DX__JOB_PRES,   /* a presence change to tell (n: online; ts; data: uid) */
    DX__JOB_REMOTE, /* another node's presence news (n: devices; data: uid) */
};

/* Starts the thread with a second engine over `st` (taken, closed with
 * the worker) that answers through `engine` (L), on `loop`. NULL with
 * *why when out of memory or no thread could start (st is then closed). */
dx__chat_worker *dx__chat_worker_new(dx_loop *loop, dx__chat *engine, dx__chat_store *st,
                                     const char *lobby, const char **why);
/* The second engine, to configure it like the first (before any job). */
dx__chat *dx__chat_worker_engine(dx__chat_worker *w);
/* Requests waiting for the thread hold at most this many bytes: a store
 * that stops answering for long must not take the process's memory with
 * it. Past it a request is refused (DX_EBUSY); connects and presence
 * changes are always queued (one per device at most). */
#define DX__CHAT_QUEUE_MAX ((size_t)64 << 20)

/* Queues a job; `d` is the device it comes from (NULL for PRES and
 * REMOTE), `data` is copied. `t_req`: mono_us at its arrival. 0,
 * DX_ENOMEM, or DX_EBUSY for a request past DX__CHAT_QUEUE_MAX. */
int dx__chat_worker_submit(dx__chat_worker *w, int kind, dx__chat_dev *d, const void *data,
                           size_t len, int64_t n, int64_t ts, int64_t t_req);
/* The device is gone: nothing of its queued jobs' answers reaches it. */
void dx__chat_worker_forget(dx__chat_worker *w, const dx__chat_dev *d);
/* S's counters as of its last batch (devices aside: those are L's), and
 * the failures its store met. */
void dx__chat_worker_stats(const dx__chat_worker *w, dx_chat_stats *out, uint64_t *st_errors);
/* Runs what is queued, stops the thread, closes the store. What S answered
 * and the loop has not sent is dropped (the devices are gone by now). */
void dx__chat_worker_free(dx__chat_worker *w);

#endif

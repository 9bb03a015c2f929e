/* Internal: the store thread. Runs a store's sync() off the event loop, so
 * that the loop never waits for an fsync, and hands each result back to
 * the loop through an eventfd it watches (store.h, engine.c "durability").
 *
 * The loop asks for commit `no` with want(); the thread syncs once for
 * every commit asked for while it was busy (group commit) and the loop
 * then gets done(arg, no, rc) with the highest number that sync covered.
 * A second thread runs the store's checkpoint() every 100 ms, so that no
 * ack waits behind one. */
#ifndef DX_CHAT_SYNCER_H
#define DX_CHAT_SYNCER_H

#include <stdint.h>

#include <duplex/loop.h>

#include "chat/store.h"

typedef struct dx__chat_syncer dx__chat_syncer;
typedef void (*dx__chat_synced_fn)(void *arg, uint64_t no, int rc);

/* NULL on failure (no thread, no eventfd: the caller syncs on the loop). */
dx__chat_syncer *dx__chat_syncer_new(dx_loop *loop, dx__chat_store *st, dx__chat_synced_fn done,
                                     void *arg);
void dx__chat_syncer_want(dx__chat_syncer *s, uint64_t no);
/* Stops and joins the thread; results not yet handed back are dropped
 * (the caller syncs what still waits itself). */
void dx__chat_syncer_free(dx__chat_syncer *s);

#endif

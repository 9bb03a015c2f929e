/* Internal: the broker hook (broker.c): broadcast and publish to the
 * cluster and to this node (topics.c), deliver, /healthz. */
#ifndef DX_SERVER_BROKER_H
#define DX_SERVER_BROKER_H

#include "server/state.h"

/* The /healthz answer (200 "ok" without a broker). */
void dx__broker_healthz(dx_server_conn *c, int head);

#endif

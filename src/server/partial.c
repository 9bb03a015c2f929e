/* Memory held by messages not yet complete, over one server's connections.
 * With permessage-deflate a few KiB on the wire can make a connection hold
 * max_message bytes of inflated data for as long as the message stays
 * unfinished, so each connection's limit alone lets a handful of clients
 * take gigabytes. The server keeps a running total, updated after each read
 * of a connection that holds (or held) such bytes: a message that arrives
 * whole costs nothing here. Over the budget, the biggest holders are closed
 * with 1009; a message unfinished after partial_timeout_ms is closed with
 * 1008 by the sweep. */
#include <string.h>

#include "server/lists.h"
#include "server/partial.h"

/* Ends `c` now, freeing its partial message at once (a closing handshake
 * would keep it until the peer answered), and takes it out of the total. */
static void drop(dx_server_conn *c, unsigned code, const char *why) {
    dx_conn *conn = sc_conn(c);
    c->srv->partial_total -= dx_conn_partial(conn);
    if (dx_conn_fail(conn, code, why, strlen(why)) == 0) /* cb_close: drained, then closed */
        c->srv->st.close_sent[dx__close_slot(code)]++;
}

/* The connection holding the most, or NULL. A scan of the open list: it
 * runs only when the budget is exceeded, which an honest load never does. */
static dx_server_conn *biggest(dx_server *s) {
    dx_server_conn *big = NULL;
    size_t most = 0;
    for (dx_server_conn *c = s->open; c; c = c->next) {
        size_t held = dx_conn_partial(sc_conn(c));
        if (held > most) {
            most = held;
            big = c;
        }
    }
    return big;
}

void dx__partial_read(dx_server_conn *c, size_t before) {
    dx_server *s = c->srv;
    dx_conn *conn = sc_conn(c);
    /* 0 when the read ended the connection: CLOSED frees the buffer. */
    size_t after = dx_conn_partial(conn);
    s->partial_total = s->partial_total - before + after;
    if (after && !dx_conn_partial_mark(conn)) {
        uint32_t now = dx__srv_now(s);
        dx_conn_set_partial_mark(conn, now ? now : 1); /* 0 means "no mark" */
    }
    while (s->partial_total > s->cfg.max_partial_total) {
        dx_server_conn *big = biggest(s);
        if (!big) break;
        drop(big, DX_CLOSE_TOO_BIG, "partial messages over budget");
    }
}

void dx__partial_forget(dx_server_conn *c) {
    dx_server *s = c->srv;
    /* Inside this connection's own dx_conn_recv, dx__partial_read counts
     * what it held (0 once killed). */
    if (c->phase == P_WS && s->partial_in != c) s->partial_total -= dx_conn_partial(sc_conn(c));
}

int dx__partial_sweep(dx_server_conn *c, uint32_t now) {
    uint32_t limit = c->srv->cfg.partial_timeout_ms;
    uint32_t mark = dx_conn_partial_mark(sc_conn(c));
    if (!mark || limit == UINT32_MAX || (uint32_t)(now - mark) < limit) return 0;
    drop(c, DX_CLOSE_POLICY, "message timeout");
    return 1;
}

/* The per-connection public API: sending under the backpressure policy,
 * closing, and accessors. */
#include <string.h>

#include "server/lists.h"
#include "server/sconn.h"
#include "server/stats.h"
#include "server/wsapi.h"

/* A send found max_buffered bytes already queued: the policy, once (the
 * connection is CLOSING after it, and sends stop before coming here). */
int dx__sc_refuse_slow(dx_server_conn *c) {
    c->srv->st.slow_closed++;
    if (c->srv->cfg.backpressure == DX_BACKPRESSURE_CLOSE) {
        c->flags |= F_SLOW;
        dx__srv_event(c, "slow_consumer", DX_CLOSE_POLICY, "slow consumer");
        dx__sc_start_close(c, DX_CLOSE_POLICY, "slow consumer");
    }
    return DX_EBUSY;
}

static int can_send(const dx_server_conn *c) {
    return c->phase == P_WS && dx_conn_state(sc_conn(c)) == DX_OPEN;
}

int dx_server_send(dx_server_conn *c, enum dx_opcode op, const void *data, size_t len) {
    if ((op != DX_OP_TEXT && op != DX_OP_BINARY) || (!data && len)) return DX_EINVAL;
    if (!can_send(c)) return DX_ESTATE;
    if (dx_conn_buffered(sc_conn(c)) >= c->srv->cfg.max_buffered) return dx__sc_refuse_slow(c);
    int rc;
    if (len >= DX__SC_THROUGH_MIN) {
        rc = dx__sc_send_through(c, op, data, len);
    } else {
        rc = dx_conn_send(sc_conn(c), op, data, len);
        if (rc == 0) dx__sc_queued(c);
    }
    if (rc == 0) {
        c->srv->st.msgs_out[dx__op_slot(op)]++;
        c->srv->st.bytes_out[dx__op_slot(op)] += len;
    }
    return rc;
}

int dx_server_send_text(dx_server_conn *c, const char *s) {
    return dx_server_send(c, DX_OP_TEXT, s, s ? strlen(s) : 0);
}

int dx_server_send_fragment(dx_server_conn *c, enum dx_opcode op, const void *data, size_t len,
                            int fin) {
    if (!can_send(c)) return DX_ESTATE;
    /* The policy may refuse a message, never the middle of one. */
    if (!(c->flags & F_FRAG) && dx_conn_buffered(sc_conn(c)) >= c->srv->cfg.max_buffered)
        return dx__sc_refuse_slow(c);
    int rc = dx_conn_send_fragment(sc_conn(c), op, data, len, fin);
    if (rc == 0) {
        /* Counted as one message, by the opcode of its first piece. */
        if (!(c->flags & F_FRAG)) c->srv->st.msgs_out[dx__op_slot(op)]++;
        c->srv->st.bytes_out[dx__op_slot(op)] += len;
        c->flags = (uint16_t)(fin ? c->flags & ~F_FRAG : c->flags | F_FRAG);
        dx__sc_queued(c);
    }
    return rc;
}

int dx_server_ping(dx_server_conn *c, const void *data, size_t len) {
    if (c->phase != P_WS) return DX_ESTATE;
    int rc = dx_conn_ping(sc_conn(c), data, len);
    if (rc == 0) {
        c->srv->st.pings_out++;
        dx__sc_queued(c);
    }
    return rc;
}

int dx_server_close(dx_server_conn *c, unsigned code, const char *reason) {
    if (c->phase != P_WS || dx_conn_state(sc_conn(c)) != DX_OPEN) return DX_ESTATE;
    size_t rlen = reason ? strlen(reason) : 0;
    if (rlen > 123 || (code == 0 && rlen) || (code && !dx_close_code_valid(code))) return DX_EINVAL;
    int rc = dx_conn_close(sc_conn(c), code, reason, rlen);
    if (rc) return rc;
    c->srv->st.close_sent[dx__close_slot(code)]++;
    c->t_mark = dx__srv_now(c->srv);
    c->flags &= (uint16_t)~F_PING;
    dx__sc_mark(c);
    return 0;
}

dx_server *dx_server_conn_server(const dx_server_conn *c) {
    return c->srv;
}
void *dx_server_conn_user(const dx_server_conn *c) {
    return dx_conn_user(sc_conn(c));
}
void dx_server_conn_set_user(dx_server_conn *c, void *user) {
    dx_conn_set_user(sc_conn(c), user);
}
void *dx_server_conn_data(dx_server_conn *c) {
    return (char *)c + c->srv->data_offset;
}

enum dx_ready_state dx_server_conn_state(const dx_server_conn *c) {
    if (c->phase == P_WS) return dx_conn_state(sc_conn(c));
    if (c->phase < P_WS) return DX_CONNECTING;
    return DX_CLOSED;
}

size_t dx_server_conn_buffered(const dx_server_conn *c) {
    return dx_conn_buffered(sc_conn(c));
}

int dx_server_conn_remote(const dx_server_conn *c, char *out, size_t cap) {
    return dx__sc_remote(c, out, cap);
}

enum dx_transport dx_server_conn_transport(const dx_server_conn *c) {
    if (c->flags & F_SESS) return DX_TRANSPORT_HTTP;
    return c->srv->tls ? DX_TRANSPORT_WSS : DX_TRANSPORT_WS;
}

const char *dx_transport_name(enum dx_transport t) {
    switch (t) {
    case DX_TRANSPORT_WS:
        return "ws";
    case DX_TRANSPORT_WSS:
        return "wss";
    case DX_TRANSPORT_HTTP:
        return "http";
    }
    return "unknown";
}

/* dx_server_stats_get: the server's counters, with the loop's and the
 * gauges filled in, copied up to the size the caller's header knows. */
#include <stddef.h>
#include <string.h>

#include "io/loopstats.h"
#include "server/sconn.h"
#include "server/stats.h"

int dx_server_stats_get(const dx_server *srv, dx_server_stats *out) {
    if (!srv || !out || out->size < offsetof(dx_server_stats, accepted)) return DX_EINVAL;
    size_t want = out->size;
    /* Copied word by word from the live counters, which the server's
     * thread may be adding to meanwhile (see server.h, "Threads"). */
    dx_server_stats st = srv->st;
    const dx__loop_stats *ls = dx__loop_get_stats(srv->loop);
    st.size = sizeof st;
    st.tls = srv->tls != NULL;
    st.uring = !srv->no_uring && dx__loop_has_uring(srv->loop);
    st.open = srv->open_count; /* sessions included: st.sessions_open, kept live */
    st.loop_turns = ls->turns;
    st.loop_timers = ls->timers;
    memcpy(st.loop_turn_us, ls->turn_us, sizeof st.loop_turn_us);
    st.loop_turn_us_sum = ls->turn_us_sum;
    const dx_conn_counters *k = &ls->conn;
    memcpy(st.frames_in, k->frames_in, sizeof st.frames_in);
    memcpy(st.frames_out, k->frames_out, sizeof st.frames_out);
    st.inflate_in = k->inflate_in;
    st.inflate_out = k->inflate_out;
    st.deflate_in = k->deflate_in;
    st.deflate_out = k->deflate_out;
    int64_t q = k->queued;
    st.queued = q > 0 ? (uint64_t)q : 0;
    dx__stats_copy(out, &st, sizeof st, want);
    return 0;
}

void dx__srv_event(dx_server_conn *c, const char *name, int status, const char *reason) {
    const dx_server_config *cfg = &c->srv->cfg;
    if (!cfg->on_event) return;
    char remote[64] = "";
    if (dx__sc_remote(c, remote, sizeof remote) < 0) remote[0] = 0;
    dx_server_event e = {name, status, reason ? reason : "", remote};
    cfg->on_event(cfg->user, &e);
}

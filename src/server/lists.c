/* The bottom of the server's layers: the server's clock, the connection
 * lists (open, other, dead) and the flush timer that walks them. */
#include "server/lists.h"

uint32_t dx__srv_now(const dx_server *s) {
    return (uint32_t)(dx_loop_now(s->loop) - s->t0);
}

static void unlink_conn(dx_server_conn *c, dx_server_conn **head) {
    if (c->prev)
        c->prev->next = c->next;
    else
        *head = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static dx_server_conn **list_of(dx_server_conn *c) {
    dx_server *s = c->srv;
    if (c->phase == P_DEAD) return &s->dead;
    return c->phase == P_WS ? &s->open : &s->other;
}

/* Moves `c` from the list its phase names to `to`; the caller then sets the
 * phase that matches `to`. */
void dx__srv_move(dx_server_conn *c, dx_server_conn **to) {
    dx_server *s = c->srv;
    dx_server_conn **from = list_of(c);
    if (from == to) return;
    unlink_conn(c, from);
    if (from == &s->open) s->open_count--;
    if (to == &s->open) s->open_count++;
    c->next = *to;
    if (*to) (*to)->prev = c;
    *to = c;
}

void dx__srv_schedule(dx_server *s) {
    if (!dx_timer_active(&s->flush)) dx_timer_start(s->loop, &s->flush, 0);
}

void dx__srv_check_done(dx_server *s) {
    if (s->shutting) dx__srv_schedule(s);
}

/* Connections handed between the threads of a group of servers (see
 * handoff.h for why). The group is the one structure here shared between
 * threads: a mutex guards its table, and a connection crosses over by
 * dx_loop_post, after which the thread that gave it never touches it. */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include <duplex/loop.h>

#include "core/alloc.h"
#include "server/handoff.h"
#include "server/sconn.h"

typedef struct dx__group {
    pthread_mutex_t mu;
    int refs;     /* members, plus connections on their way */
    unsigned len; /* slots handed out */
    struct {
        dx_server *srv; /* NULL once it left */
        dx_loop *loop;
        int open; /* takes connections */
    } m[DX__GROUP_MAX];
} dx__group;

/* A connection on its way to the thread of m[index]. */
typedef struct handoff {
    dx__group *g;
    unsigned index;
    dx_server *srv; /* m[index].srv when it was posted */
    int fd;
    dx_tls *tls;
    size_t len;
    uint8_t bytes[];
} handoff;

static void unref(dx__group *g) {
    pthread_mutex_lock(&g->mu);
    int last = --g->refs == 0;
    pthread_mutex_unlock(&g->mu);
    if (last) {
        pthread_mutex_destroy(&g->mu);
        dx__free(g);
    }
}

static int add(dx__group *g, dx_server *s) {
    /* Called under g->mu, or before g is shared. */
    if (g->len == DX__GROUP_MAX) return 0; /* stays out (handoff.h) */
    unsigned i = g->len++;
    g->m[i].srv = s;
    g->m[i].loop = s->loop;
    g->m[i].open = 1;
    g->refs++;
    s->group = g;
    s->group_index = (uint8_t)i;
    return 0;
}

int dx__group_join(dx_server *s, dx_server *first) {
    if (s->group) return 0;
    dx__group *g = first->group;
    if (!g) {
        g = dx__calloc(1, sizeof *g);
        if (!g) return DX_ENOMEM;
        pthread_mutex_init(&g->mu, NULL);
        add(g, first);
    }
    pthread_mutex_lock(&g->mu);
    add(g, s);
    pthread_mutex_unlock(&g->mu);
    return 0;
}

void dx__group_close(dx_server *s) {
    dx__group *g = s->group;
    if (!g) return;
    pthread_mutex_lock(&g->mu);
    g->m[s->group_index].open = 0;
    pthread_mutex_unlock(&g->mu);
}

void dx__group_leave(dx_server *s) {
    dx__group *g = s->group;
    if (!g) return;
    pthread_mutex_lock(&g->mu);
    g->m[s->group_index].srv = NULL;
    g->m[s->group_index].open = 0;
    pthread_mutex_unlock(&g->mu);
    s->group = NULL;
    unref(g);
}

/* On the thread of the server the connection goes to. */
static void adopt(dx_loop *loop, void *arg) {
    handoff *h = arg;
    dx__group *g = h->g;
    pthread_mutex_lock(&g->mu);
    /* Left or shutting down since: its sessions are gone or going. */
    int ok = g->m[h->index].srv == h->srv && g->m[h->index].open;
    pthread_mutex_unlock(&g->mu);
    dx_server_conn *c = ok ? dx__sc_alloc(h->srv) : NULL;
    if (c) {
        c->tls = h->tls;
        if (dx_io_start(loop, &c->io, h->fd, DX_IO_READ, dx__sc_io) < 0) {
            dx_conn_free(sc_conn(c));
            c = NULL;
        }
    }
    if (!c) {
        if (h->tls) dx_tls_free(h->tls);
        close(h->fd);
    } else {
        dx__sc_link(c);
        h->srv->st.sessions_handed_in++;
        h->srv->hooks.http_input(c, h->bytes, h->len);
        /* Under TLS the bytes after these may wait decrypted inside
         * OpenSSL, where no readiness of the socket announces them. */
        if (c->tls && c->phase == P_HTTP) dx__sc_io(loop, &c->io, DX_IO_READ);
    }
    dx__free(h);
    unref(g);
}

/* 1 when m[index] is another server that takes connections. */
static int takes(dx__group *g, unsigned index) {
    return index < g->len && g->m[index].srv && g->m[index].open;
}

int dx__handoff(dx_server_conn *c, unsigned index, const void *bytes, size_t n) {
    dx_server *s = c->srv;
    dx__group *g = s->group;
    if (!g || index == s->group_index || (c->flags & F_SESS)) return DX_EINVAL;
    pthread_mutex_lock(&g->mu);
    int ok = takes(g, index);
    pthread_mutex_unlock(&g->mu);
    if (!ok) return DX_EINVAL;
    handoff *h = dx__malloc(sizeof *h + n);
    if (!h) return DX_ENOMEM;
    memcpy(h->bytes, bytes, n); /* before the kill below frees them */
    h->g = g;
    h->index = index;
    h->len = n;
    /* From here on nothing of this thread watches or uses the socket or
     * its TLS: they are the other thread's once posted, and this
     * connection ends without closing them (dx__sc_kill closes only the
     * fd it still has). */
    h->fd = c->io.fd;
    h->tls = c->tls;
    dx_io_stop(s->loop, &c->io);
    c->io.fd = -1;
    c->tls = NULL;
    int rc = DX_EINVAL;
    pthread_mutex_lock(&g->mu);
    if (takes(g, index)) { /* again: it may have closed meanwhile */
        h->srv = g->m[index].srv;
        rc = dx_loop_post(g->m[index].loop, adopt, h);
        if (rc == 0) g->refs++;
    }
    pthread_mutex_unlock(&g->mu);
    if (rc < 0) { /* rare: dropped, as a connection refused for memory is */
        if (h->tls) dx_tls_free(h->tls);
        close(h->fd);
        dx__free(h);
    } else {
        s->st.sessions_handed_out++;
    }
    dx__sc_kill(c, DX_CLOSE_ABNORMAL);
    return 0;
}

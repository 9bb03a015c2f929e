/* Connections handed between the threads of a group of servers (see
 * handoff.h for why). A connection crosses over by dx_loop_post, after
 * which the thread that gave it never touches it.
 *
 * What threads share here, the groups' tables and the connections on
 * their way, is guarded by one mutex for the process: it is taken once per
 * handed connection, never per message. Connections on their way are also
 * kept in a list, because a post can outlive its purpose: a loop that
 * stops right after its server shut down never runs the posts that came
 * meanwhile, and dx_loop_free drops them without a call. The server's
 * dx__group_leave takes its connections off the list and closes them, and
 * a post that runs later finds nothing to do (it looks its argument up in
 * the list before touching it). */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include <duplex/loop.h>

#include "core/alloc.h"
#include "server/handoff.h"
#include "server/sconn.h"

typedef struct dx__group {
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
    struct handoff *next; /* in `flying` */
    dx__group *g;
    unsigned index;
    dx_server *srv; /* m[index].srv when it was posted */
    dx_loop *loop;  /* its loop */
    int fd;
    dx_tls *tls;
    size_t len;
    uint8_t bytes[];
} handoff;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static handoff *flying;

/* Under mu: the group loses a reference; 1 when it is to be freed. */
static int unref_locked(dx__group *g) {
    return --g->refs == 0;
}

static void drop(handoff *h) {
    if (h->tls) dx_tls_free(h->tls);
    close(h->fd);
    dx__free(h);
}

/* Under mu, or before the group is shared. */
static void add(dx__group *g, dx_server *s) {
    if (g->len == DX__GROUP_MAX) return; /* stays out (handoff.h) */
    unsigned i = g->len++;
    g->m[i].srv = s;
    g->m[i].loop = s->loop;
    g->m[i].open = 1;
    g->refs++;
    s->group = g;
    s->group_index = (uint8_t)i;
}

int dx__group_join(dx_server *s, dx_server *first) {
    if (s->group) return 0;
    dx__group *made = NULL;
    if (!first->group && !(made = dx__calloc(1, sizeof *made))) return DX_ENOMEM;
    pthread_mutex_lock(&mu);
    if (made) add(made, first);
    if (first->group) add(first->group, s);
    pthread_mutex_unlock(&mu);
    return 0;
}

void dx__group_close(dx_server *s) {
    if (!s->group) return;
    pthread_mutex_lock(&mu);
    s->group->m[s->group_index].open = 0;
    pthread_mutex_unlock(&mu);
}

void dx__group_leave(dx_server *s) {
    dx__group *g = s->group;
    if (!g) return;
    handoff *mine = NULL;
    pthread_mutex_lock(&mu);
    g->m[s->group_index].srv = NULL;
    g->m[s->group_index].open = 0;
    for (handoff **pp = &flying; *pp;) {
        handoff *h = *pp;
        if (h->g == g && h->index == s->group_index) {
            *pp = h->next;
            h->next = mine;
            mine = h;
            g->refs--; /* not the last: `s` holds one */
        } else {
            pp = &h->next;
        }
    }
    int last = unref_locked(g);
    pthread_mutex_unlock(&mu);
    s->group = NULL;
    while (mine) {
        handoff *h = mine;
        mine = h->next;
        drop(h);
    }
    if (last) dx__free(g);
}

/* On the thread of the server the connection goes to. */
static void adopt(dx_loop *loop, void *arg) {
    handoff *h = NULL;
    pthread_mutex_lock(&mu);
    /* Taken off the list here, or by dx__group_leave (then it was dropped
     * already, and `arg` must not be touched). */
    for (handoff **pp = &flying; *pp; pp = &(*pp)->next) {
        if (*pp == arg && (*pp)->loop == loop) {
            h = *pp;
            *pp = h->next;
            break;
        }
    }
    if (!h) {
        pthread_mutex_unlock(&mu);
        return;
    }
    dx__group *g = h->g;
    int ok = g->m[h->index].srv == h->srv && g->m[h->index].open;
    int last = unref_locked(g);
    pthread_mutex_unlock(&mu);
    if (last) dx__free(g); /* (never while h->srv is a member) */
    dx_server_conn *c = ok ? dx__sc_alloc(h->srv) : NULL;
    if (c) {
        c->tls = h->tls;
        if (dx_io_start(loop, &c->io, h->fd, DX_IO_READ, dx__sc_io) < 0) {
            c->tls = NULL;
            dx_conn_free(sc_conn(c));
            c = NULL;
        }
    }
    if (!c) {
        drop(h); /* shutting down: its sessions are going too */
        return;
    }
    dx__sc_link(c);
    h->srv->st.sessions_handed_in++;
    h->srv->hooks.http_input(c, h->bytes, h->len);
    /* Under TLS the bytes after these may wait decrypted inside OpenSSL,
     * where no readiness of the socket announces them. */
    if (c->tls && c->phase == P_HTTP) dx__sc_io(loop, &c->io, DX_IO_READ);
    dx__free(h);
}

/* Under mu: 1 when m[index] is a server that takes connections. */
static int takes(const dx__group *g, unsigned index) {
    return index < g->len && g->m[index].srv && g->m[index].open;
}

int dx__handoff(dx_server_conn *c, unsigned index, const void *bytes, size_t n) {
    dx_server *s = c->srv;
    dx__group *g = s->group;
    if (!g || index == s->group_index || (c->flags & F_SESS)) return DX_EINVAL;
    pthread_mutex_lock(&mu);
    int ok = takes(g, index);
    pthread_mutex_unlock(&mu);
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
    pthread_mutex_lock(&mu);
    if (takes(g, index)) { /* again: it may have closed meanwhile */
        h->srv = g->m[index].srv;
        h->loop = g->m[index].loop;
        h->next = flying;
        flying = h;
        g->refs++;
        rc = dx_loop_post(h->loop, adopt, h);
        if (rc < 0) {
            flying = h->next;
            g->refs--;
        }
    }
    pthread_mutex_unlock(&mu);
    if (rc < 0) /* rare: dropped, as a connection refused for memory is */
        drop(h);
    else
        s->st.sessions_handed_out++;
    dx__sc_kill(c, DX_CLOSE_ABNORMAL);
    return 0;
}

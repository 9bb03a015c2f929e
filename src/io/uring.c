/* The io_uring half of the loop (see uring.h): the rings, a table of
 * attached watchers, the receive buffers, and the one EPOLL_WAIT that
 * brings epoll's events in.
 *
 * Written against the kernel's interface directly (a few dozen lines of
 * ring handling), as the rest of the loop is; Debian's headers may be
 * older than the kernel, so the few newer constants are spelled out. */
#include "io/uring.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/io_uring.h>

#include "core/alloc.h"

#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif
#define DX_OP_EPOLL_WAIT 59         /* IORING_OP_EPOLL_WAIT, Linux 6.15 */
#define DX_PBUF_RING_INC 2          /* IOU_PBUF_RING_INC, Linux 6.12 */
#define DX_CQE_F_BUF_MORE (1U << 4) /* IORING_CQE_F_BUF_MORE */

#define SQ_ENTRIES 1024
#define CQ_ENTRIES 8192
/* Receive buffers, consumed a little at a time (IOU_PBUF_RING_INC): many
 * small messages share one buffer, and a large message mostly lands whole
 * (a split one costs the protocol a copy). Pages are touched as they
 * fill: 512 KiB at most, released after a burst (SLOW_ROUND_MS). Few are
 * needed: a buffer goes back as soon as the kernel has filled it and its
 * bytes are handled.
 * Fewer are better for large messages: the kernel fills them all before
 * the first is handled, and bytes handled sooner are warmer in the cache
 * (echoing 64 KiB, 2 buffers cost 4% less CPU than 4; small messages
 * never fill one). A socket that finds none waits its turn (starve()). */
#define NBUF 2
#define BUF_SIZE (256 * 1024)
/* Memory the idle server gives back (bench/README.md, "Idle memory"): a
 * receive buffer whose round took at least SLOW_ROUND_MS is handed back
 * to the kernel with its pages released first, so after a burst (10,000
 * clients connecting) the pages it touched leave RSS, while at speed (a
 * round in a few ms) no page is released and faulted in again: at most
 * 64 faults per buffer per SLOW_ROUND_MS. Once no completion came for
 * QUIET_MS, what the kernel has filled of the buffers it still holds
 * (whole pages below its position, which it never writes again) and the
 * copy chunks are released too. */
#define SLOW_ROUND_MS 100
#define QUIET_MS 500
/* The least a starved socket is given in its turn (take_turns). */
#define SHARE_MIN (4 * 1024)
/* Small sends are copied into a chunk of this arena and the owner's queue
 * is consumed at once, so that a connection with a send in flight does
 * not hold a queue block (with a hundred connections in flight, holding
 * them made the allocator churn and fault pages in). Copies are packed one
 * after the other into the current chunk, which starts over when every
 * copy in it has been sent: the pages in use follow the bytes in flight
 * (a thousand 30-byte echoes at once fit one page), and chunks are made
 * only as they are needed. Larger sends go from the queue itself. */
#define CHUNK_SIZE (64 * 1024) /* offsets fit the slot's 16 bits */
#define NCHUNK 32
#define BGID 0
#define MAX_IOV 64
/* iovecs of sends queued and not yet submitted (SENDMSG reads them at
 * submission): when they run out, the queue is submitted early. */
#define IOV_POOL 1024
#define MSG_POOL 128

/* user_data: the kind in the low 2 bits, then the slot (30 bits), then
 * the slot's generation (32 bits), so a completion that comes after its
 * watcher was detached is recognised and dropped. */
enum { K_IGNORE = 0, K_RECV = 1, K_SEND = 2, K_EPOLL = 3 };

enum {
    S_RECV_WANT = 1, /* the owner wants bytes */
    S_RECV_ON = 2,   /* a multishot receive is in flight */
    S_RECV_CANCEL = 4,
    S_SENDING = 8,
    S_STARVED = 16, /* waits in `starved` or `later` for its turn */
    /* A receive of SHARE_MIN or more since it last starved (HEAVY), or in
     * the stretch before that (WAS_HEAVY): see starve(). */
    S_HEAVY = 32,
    S_WAS_HEAVY = 64,
};

/* 16 bytes per attached socket: an idle connection pays this. */
typedef struct slot {
    dx_io *w; /* NULL: free */
    uint32_t gen;
    uint8_t state;
    uint8_t sb;     /* with S_SENDING: the copy's chunk, 1-based; 0 none */
    uint16_t sb_at; /* where the copy starts in its chunk */
} slot;

/* A copy in a chunk: this header, then the bytes. */
typedef struct copy_hdr {
    uint16_t len, off; /* bytes, and how many are sent */
    uint8_t pad[12];
} copy_hdr;

_Static_assert(CHUNK_SIZE <= 65536, "chunk offsets are 16-bit");
_Static_assert(DX__URING_COPY_MAX + sizeof(copy_hdr) <= CHUNK_SIZE, "a copy fits a chunk");

/* A FIFO of slot ids. */
typedef struct idq {
    uint32_t *ids;
    uint32_t head, len, cap;
} idq;

typedef struct chunk {
    uint8_t *mem; /* NULL until first needed */
    uint32_t used;
    uint32_t refs; /* copies in it not yet sent */
} chunk;

struct dx__uring {
    int fd;
    unsigned *sq_head, *sq_tail, *sq_array, sq_mask;
    unsigned *cq_head, *cq_tail, cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    void *sq_map, *cq_map;
    size_t sq_map_len, cq_map_len, sqes_len;
    unsigned sq_local; /* our tail: SQEs filled, published at submission */
    unsigned to_submit;

    struct io_uring_buf_ring *br;
    uint8_t *bufs;
    uint32_t buf_off[NBUF];  /* how far each buffer has been consumed */
    uint64_t given_at[NBUF]; /* loop time (ms) it was last handed back */
    uint64_t quiet_since;    /* loop time of the last recv or send */
    int busy, trimmed;       /* a recv or send this turn; chunks released */
    uint16_t br_tail;
    int br_dirty;

    int epfd;
    struct epoll_event *events;
    int max_events;
    int epoll_armed;

    slot *slots;
    uint32_t nslots, cap;
    uint32_t *free_ids;
    uint32_t nfree;

    chunk chunks[NCHUNK];
    int cur; /* the chunk copies go into */

    struct iovec iov_pool[IOV_POOL];
    struct msghdr msg_pool[MSG_POOL];
    int iov_used, msg_used;

    /* Sockets whose receive ended with ENOBUFS, oldest first: those that
     * received little lately (`light`, starve()), then the others; those
     * whose receive ended otherwise this round (take_turns); and the mean
     * size of a receive, which says how many starved sockets the buffers
     * can take in one round. An entry whose slot lost S_STARVED is
     * skipped. */
    idq light, starved, later;
    uint32_t recv_avg;

    /* the completion being delivered */
    int64_t got;
    uint8_t *got_data;
};

static int sys_setup(unsigned entries, struct io_uring_params *p) {
    return (int)syscall(__NR_io_uring_setup, entries, p);
}
static int sys_enter(int fd, unsigned submit, unsigned min, unsigned flags) {
    return (int)syscall(__NR_io_uring_enter, fd, submit, min, flags, NULL, 0);
}
static int sys_register(int fd, unsigned op, void *arg, unsigned n) {
    return (int)syscall(__NR_io_uring_register, fd, op, arg, n);
}

static uint64_t ud(unsigned kind, uint32_t id, uint32_t gen) {
    return (uint64_t)gen << 32 | (uint64_t)id << 2 | kind;
}

/* Hands the filled SQEs to the kernel without waiting. */
static int submit_now(dx__uring *u) {
    atomic_store_explicit((_Atomic unsigned *)u->sq_tail, u->sq_local, memory_order_release);
    while (u->to_submit) {
        int r = sys_enter(u->fd, u->to_submit, 0, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EBUSY) {
                /* Completions must be reaped first; the caller's next
                 * wait submits the rest. */
                return 0;
            }
            return DX_EIO;
        }
        u->to_submit -= (unsigned)r < u->to_submit ? (unsigned)r : u->to_submit;
    }
    u->iov_used = u->msg_used = 0;
    return 0;
}

static struct io_uring_sqe *get_sqe(dx__uring *u) {
    unsigned head = atomic_load_explicit((_Atomic unsigned *)u->sq_head, memory_order_acquire);
    if (u->sq_local - head > u->sq_mask) {
        if (submit_now(u) < 0) return NULL;
        head = atomic_load_explicit((_Atomic unsigned *)u->sq_head, memory_order_acquire);
        if (u->sq_local - head > u->sq_mask) return NULL;
    }
    unsigned i = u->sq_local & u->sq_mask;
    struct io_uring_sqe *sqe = &u->sqes[i];
    u->sq_array[i] = i;
    u->sq_local++;
    u->to_submit++;
    memset(sqe, 0, sizeof *sqe);
    return sqe;
}

/* Releases the whole pages of [p, p + n): they read as zeros afterwards
 * and cost nothing until written again. */
static void release_pages(uint8_t *p, size_t n) {
    uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
    uintptr_t e = ((uintptr_t)p + n) & ~(uintptr_t)4095;
    if (e > a) (void)madvise((void *)a, e - a, MADV_DONTNEED);
}

/* Hands buffer `bid` back to the kernel at loop time `now` (ms). The
 * kernel may write into it from then on, so a slow round's pages are
 * released here, before, never after. */
static void buf_give(dx__uring *u, unsigned bid, uint64_t now) {
    if (u->buf_off[bid] && now - u->given_at[bid] >= SLOW_ROUND_MS)
        release_pages(u->bufs + (size_t)bid * BUF_SIZE, u->buf_off[bid]);
    u->given_at[bid] = now;
    struct io_uring_buf *b = &u->br->bufs[u->br_tail & (NBUF - 1)];
    b->addr = (uint64_t)(uintptr_t)(u->bufs + (size_t)bid * BUF_SIZE);
    b->len = BUF_SIZE;
    b->bid = (uint16_t)bid;
    u->br_tail++;
    u->buf_off[bid] = 0;
    u->br_dirty = 1;
}

static void buf_publish(dx__uring *u) {
    if (!u->br_dirty) return;
    atomic_store_explicit((_Atomic uint16_t *)&u->br->tail, u->br_tail, memory_order_release);
    u->br_dirty = 0;
}

static int arm_epoll(dx__uring *u) {
    struct io_uring_sqe *sqe = get_sqe(u);
    if (!sqe) return DX_EIO;
    sqe->opcode = DX_OP_EPOLL_WAIT;
    sqe->fd = u->epfd;
    sqe->addr = (uint64_t)(uintptr_t)u->events;
    sqe->len = (uint32_t)u->max_events;
    sqe->user_data = ud(K_EPOLL, 0, 0);
    u->epoll_armed = 1;
    return 0;
}

static int op_supported(int fd, unsigned op) {
    size_t len = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
    struct io_uring_probe *p = dx__calloc(1, len);
    if (!p) return 0;
    int ok = sys_register(fd, IORING_REGISTER_PROBE, p, 256) == 0 && op <= p->last_op &&
             (p->ops[op].flags & IO_URING_OP_SUPPORTED);
    dx__free(p);
    return ok;
}

void dx__uring_free(dx__uring *u) {
    if (!u) return;
    if (u->fd >= 0) close(u->fd); /* the kernel cancels what is in flight */
    if (u->sqes) munmap(u->sqes, u->sqes_len);
    if (u->cq_map && u->cq_map != u->sq_map) munmap(u->cq_map, u->cq_map_len);
    if (u->sq_map) munmap(u->sq_map, u->sq_map_len);
    if (u->br) munmap(u->br, NBUF * sizeof(struct io_uring_buf));
    free(u->bufs);
    for (int i = 0; i < NCHUNK; i++)
        dx__free(u->chunks[i].mem);
    dx__free(u->slots);
    dx__free(u->free_ids);
    dx__free(u->light.ids);
    dx__free(u->starved.ids);
    dx__free(u->later.ids);
    dx__free(u);
}

dx__uring *dx__uring_new(int epfd, struct epoll_event *events, int max_events) {
    const char *off = getenv("DUPLEX_NO_IO_URING");
    if (off && *off && strcmp(off, "0") != 0) return NULL;
    dx__uring *u = dx__calloc(1, sizeof *u);
    if (!u) return NULL;
    u->fd = -1;
    u->epfd = epfd;
    u->events = events;
    u->max_events = max_events;
    struct io_uring_params p;
    /* Completions run only when the loop asks for them (DEFER_TASKRUN),
     * never by interrupting it; older kernels get the plain ring. */
    static const unsigned flag_sets[] = {
        IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_CQSIZE,
    };
    for (size_t i = 0; i < sizeof flag_sets / sizeof *flag_sets && u->fd < 0; i++) {
        memset(&p, 0, sizeof p);
        p.flags = flag_sets[i];
        p.cq_entries = CQ_ENTRIES;
        u->fd = sys_setup(SQ_ENTRIES, &p);
    }
    if (u->fd < 0) goto fail;
    if (!(p.features & IORING_FEAT_SINGLE_MMAP) || !(p.features & IORING_FEAT_NODROP) ||
        !(p.features & IORING_FEAT_SUBMIT_STABLE) || !op_supported(u->fd, DX_OP_EPOLL_WAIT))
        goto fail;
    u->sq_map_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    if (cq_len > u->sq_map_len) u->sq_map_len = cq_len;
    u->sq_map = mmap(NULL, u->sq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd,
                     IORING_OFF_SQ_RING);
    if (u->sq_map == MAP_FAILED) {
        u->sq_map = NULL;
        goto fail;
    }
    u->cq_map = u->sq_map;
    u->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
    u->sqes = mmap(NULL, u->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd,
                   IORING_OFF_SQES);
    if (u->sqes == MAP_FAILED) {
        u->sqes = NULL;
        goto fail;
    }
    char *sq = u->sq_map, *cq = u->cq_map;
    u->sq_head = (unsigned *)(sq + p.sq_off.head);
    u->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    u->sq_mask = *(unsigned *)(sq + p.sq_off.ring_mask);
    u->sq_array = (unsigned *)(sq + p.sq_off.array);
    u->cq_head = (unsigned *)(cq + p.cq_off.head);
    u->cq_tail = (unsigned *)(cq + p.cq_off.tail);
    u->cq_mask = *(unsigned *)(cq + p.cq_off.ring_mask);
    u->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    u->sq_local = *u->sq_tail;

    u->br = mmap(NULL, NBUF * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (u->br == MAP_FAILED) {
        u->br = NULL;
        goto fail;
    }
    /* Not through dx__malloc: the kernel writes here, and an allocator
     * set by the application has no say in that memory's life. Pages are
     * touched only as they fill. */
    if (posix_memalign((void **)&u->bufs, 4096, (size_t)NBUF * BUF_SIZE)) {
        u->bufs = NULL;
        goto fail;
    }
    /* struct io_uring_buf_reg, whose `flags` older headers call `pad`. */
    struct {
        uint64_t ring_addr;
        uint32_t ring_entries;
        uint16_t bgid;
        uint16_t flags;
        uint64_t resv[3];
    } reg = {
        .ring_addr = (uint64_t)(uintptr_t)u->br,
        .ring_entries = NBUF,
        .bgid = BGID,
        .flags = DX_PBUF_RING_INC,
    };
    if (sys_register(u->fd, IORING_REGISTER_PBUF_RING, &reg, 1) < 0) goto fail;
    for (unsigned i = 0; i < NBUF; i++)
        buf_give(u, i, 0);
    buf_publish(u);
    return u;
fail:
    dx__uring_free(u);
    return NULL;
}

/* ---- watchers ---- */

static slot *slot_of(dx__uring *u, uint32_t id) {
    return id < u->nslots && u->slots[id].w ? &u->slots[id] : NULL;
}

int dx__uring_attach(dx__uring *u, dx_io *w, int fd, dx_io_cb cb, uint32_t *id) {
    if (!u) return DX_ESTATE;
    uint32_t i;
    if (u->nfree) {
        i = u->free_ids[--u->nfree];
    } else {
        if (u->nslots == u->cap) {
            uint32_t cap = u->cap ? u->cap * 2 : 64;
            if (cap > (1u << 30)) return DX_ENOMEM;
            slot *s = dx__realloc(u->slots, cap * sizeof *s);
            if (!s) return DX_ENOMEM;
            u->slots = s;
            uint32_t *f = dx__realloc(u->free_ids, cap * sizeof *f);
            if (!f) return DX_ENOMEM;
            u->free_ids = f;
            u->cap = cap;
        }
        i = u->nslots++;
        u->slots[i].gen = 0;
    }
    slot *s = &u->slots[i];
    s->w = w;
    s->gen++;
    s->state = 0;
    s->sb = 0;
    w->fd = fd;
    w->events = 0;
    w->cb = cb;
    *id = i;
    return 0;
}

/* An SQE for socket `id`: the operation, its descriptor, and the user_data
 * (kind, slot, generation) its completion comes back with. */
static struct io_uring_sqe *sqe_for(dx__uring *u, unsigned op, unsigned kind, uint32_t id,
                                    const slot *s) {
    struct io_uring_sqe *sqe = get_sqe(u);
    if (!sqe) return NULL;
    sqe->opcode = (uint8_t)op;
    sqe->fd = s->w->fd;
    sqe->user_data = ud(kind, id, s->gen);
    return sqe;
}

/* Arms socket `id`'s receive: multishot when `cap` is 0, otherwise one
 * receive of at most `cap` bytes (a starved socket's turn, take_turns). */
static int arm_recv(dx__uring *u, uint32_t id, slot *s, uint32_t cap) {
    struct io_uring_sqe *sqe = sqe_for(u, IORING_OP_RECV, K_RECV, id, s);
    if (!sqe) return DX_EIO;
    if (cap == 0)
        sqe->ioprio = IORING_RECV_MULTISHOT;
    else
        sqe->len = cap;
    sqe->flags = IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    s->state = (uint8_t)((s->state | S_RECV_ON) & ~(S_RECV_CANCEL | S_STARVED));
    return 0;
}

static int idq_push(idq *q, uint32_t id) {
    if (q->len == q->cap) {
        uint32_t cap = q->cap ? q->cap * 2 : 64;
        uint32_t *ids = dx__malloc(cap * sizeof *ids);
        if (!ids) return -1;
        for (uint32_t i = 0; i < q->len; i++)
            ids[i] = q->ids[(q->head + i) % q->cap];
        dx__free(q->ids);
        q->ids = ids;
        q->head = 0;
        q->cap = cap;
    }
    q->ids[(q->head + q->len++) % q->cap] = id;
    return 0;
}

static uint32_t idq_pop(idq *q) {
    uint32_t id = q->ids[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
    return id;
}

/* A receive ended for want of buffers (into `starved`), or for another
 * reason while still wanted (into `later`). Armed again at once, the first
 * would meet the same empty ring: every buffer is still full of bytes this
 * round has not handled yet (a thousand connections echoing 64 KiB
 * messages made a hundred failed arms per message, and the server 70%
 * slower than on epoll); the second would take the buffers before the
 * sockets still waiting for their turn. 0, or -1 when the queue cannot
 * grow (the caller arms it at once). */
static int wait_turn(idq *q, uint32_t id, slot *s) {
    if (s->state & S_STARVED) return 0;
    if (idq_push(q, id) < 0) return -1;
    s->state |= S_STARVED;
    return 0;
}

/* The next queued socket that still wants its receive, or NULL. */
static slot *next_turn(dx__uring *u, idq *q, uint32_t *id) {
    while (q->len > 0) {
        *id = idq_pop(q);
        slot *s = slot_of(u, *id);
        if (!s || !(s->state & S_STARVED)) continue; /* detached, or armed since */
        s->state &= (uint8_t)~S_STARVED;
        if ((s->state & (S_RECV_WANT | S_RECV_ON)) == S_RECV_WANT) return s;
    }
    return NULL;
}

/* Out of buffers: into `light` when every receive of its last two
 * stretches between starvings was small (a client sending now and then),
 * else into `starved`. One stretch is not enough: a large message that
 * trickles in makes a stretch of a few bytes between two starvings, and a
 * quarter of the sockets of a 64 KiB echo then counted as light (their
 * turns first cost the server 3-5% more CPU a message). */
static int starve(dx__uring *u, uint32_t id, slot *s) {
    if (s->state & S_STARVED) return 0;
    idq *q = s->state & (S_HEAVY | S_WAS_HEAVY) ? &u->starved : &u->light;
    uint8_t was = s->state & S_HEAVY ? S_WAS_HEAVY : 0;
    s->state = (uint8_t)((s->state & ~(S_HEAVY | S_WAS_HEAVY)) | was);
    return wait_turn(q, id, s);
}

/* After a round, its buffers back: the fairness bound of the ring. As many
 * starved sockets as the buffers can take at the mean receive size (at
 * least one), the light ones first and oldest first in each queue, get
 * one receive each, capped at a share of the buffers; then every other
 * socket whose receive ended this round gets its multishot receive back,
 * after them, so that they take what the starved ones leave. Re-armed
 * first (as they were), a socket that always has bytes waiting (a client
 * writing back to back) filled both buffers at submission, before the
 * others' receives ran; those met ENOBUFS round after round, and a quiet
 * client's echo waited seconds. Light ones go first because the mean is
 * the flooders': with 16 of them it let 8 sockets through a round, and a
 * quiet client queued behind all 16 waited two or three rounds (p99 of
 * its echo 3-5 times the median, under sanitizers over 50 ms). Every
 * socket queued here had bytes waiting, so each receive armed completes
 * and the next round comes. */
static void take_turns(dx__uring *u) {
    uint32_t avg = u->recv_avg > SHARE_MIN ? u->recv_avg : SHARE_MIN;
    uint32_t n = (uint32_t)((size_t)NBUF * BUF_SIZE / avg), id;
    if (n > u->light.len + u->starved.len) n = u->light.len + u->starved.len;
    if (n == 0) n = 1;
    /* Twice an equal share, at most one buffer: a message of the mean size
     * is then not cut at the share's edge (64 KiB echoes cut there cost
     * the server twice the CPU: a copy to join the halves and a completion
     * more), and the starved ones that find no room left wait for the next
     * round, oldest first. */
    uint32_t share = (uint32_t)((size_t)2 * NBUF * BUF_SIZE / n);
    if (share > BUF_SIZE) share = BUF_SIZE;
    idq *turns[2] = {&u->light, &u->starved};
    slot *s;
    for (int i = 0; i < 2; i++)
        while (n > 0 && (s = next_turn(u, turns[i], &id))) {
            if (arm_recv(u, id, s, share) < 0) {
                (void)wait_turn(turns[i], id, s); /* no SQE now: the next round */
                return;
            }
            n--;
        }
    while ((s = next_turn(u, &u->later, &id))) {
        if (arm_recv(u, id, s, 0) < 0) {
            (void)wait_turn(&u->later, id, s);
            return;
        }
    }
}

int dx__uring_recv(dx__uring *u, uint32_t id, int on) {
    slot *s = u ? slot_of(u, id) : NULL;
    if (!s) return DX_ESTATE;
    if (on) {
        s->state |= S_RECV_WANT;
        /* A receive being cancelled is armed again when its last
         * completion comes. */
        return s->state & S_RECV_ON ? 0 : arm_recv(u, id, s, 0);
    }
    s->state &= (uint8_t)~S_RECV_WANT;
    if ((s->state & (S_RECV_ON | S_RECV_CANCEL)) != S_RECV_ON) return 0;
    struct io_uring_sqe *sqe = get_sqe(u);
    if (!sqe) return DX_EIO;
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->addr = ud(K_RECV, id, s->gen);
    sqe->user_data = ud(K_IGNORE, 0, 0);
    s->state |= S_RECV_CANCEL;
    return 0;
}

int dx__uring_sending(dx__uring *u, uint32_t id) {
    slot *s = u ? slot_of(u, id) : NULL;
    return s && (s->state & S_SENDING);
}

/* Room for a copy of `n` bytes: its chunk (1-based) and offset, or 0
 * when the arena is full (the send then goes from the owner's queue). */
static uint8_t copy_alloc(dx__uring *u, size_t n, uint16_t *at) {
    n = (n + 15) & ~(size_t)15;
    chunk *c = &u->chunks[u->cur];
    if (!c->mem || c->used + n > CHUNK_SIZE) {
        int i = 0;
        /* An idle chunk that already exists, else a new one. */
        while (i < NCHUNK && !(u->chunks[i].mem && u->chunks[i].refs == 0 && i != u->cur))
            i++;
        if (i == NCHUNK && c->mem) {
            i = 0;
            while (i < NCHUNK && u->chunks[i].mem)
                i++;
        }
        if (i == NCHUNK) {
            if (c->mem) return 0;
            i = u->cur;
        }
        c = &u->chunks[i];
        if (!c->mem && !(c->mem = dx__malloc(CHUNK_SIZE))) return 0;
        c->used = 0;
        u->cur = i;
    }
    *at = (uint16_t)c->used; /* < CHUNK_SIZE, 64 KiB */
    c->used += (uint32_t)n;
    c->refs++;
    return (uint8_t)(u->cur + 1);
}

static void copy_free(dx__uring *u, uint8_t sb) {
    chunk *c = &u->chunks[sb - 1];
    /* The current chunk starts over once empty: the same pages again. */
    if (--c->refs == 0 && sb - 1 == u->cur) c->used = 0;
}

static void idq_release(idq *q) {
    if (q->len) return;
    dx__free(q->ids);
    q->ids = NULL;
    q->head = q->cap = 0;
}

/* The quiet ring's copy chunks: those with no copy in flight (the kernel
 * reads none of their bytes) give their pages back; the current one
 * starts over. The queues of sockets waiting their turn, grown by the
 * burst, go too when empty. */
static void idle_release(dx__uring *u) {
    idq_release(&u->light);
    idq_release(&u->starved);
    idq_release(&u->later);
    for (unsigned b = 0; b < NBUF; b++)
        release_pages(u->bufs + (size_t)b * BUF_SIZE, u->buf_off[b]);
    for (int i = 0; i < NCHUNK; i++) {
        chunk *c = &u->chunks[i];
        if (!c->mem || c->refs) continue;
        release_pages(c->mem, CHUNK_SIZE);
        if (i == u->cur) c->used = 0;
    }
}

static copy_hdr *copy_of(dx__uring *u, const slot *s) {
    return (copy_hdr *)(void *)(u->chunks[s->sb - 1].mem + s->sb_at);
}

static int send_copy(dx__uring *u, uint32_t id, slot *s) {
    struct io_uring_sqe *sqe = sqe_for(u, IORING_OP_SEND, K_SEND, id, s);
    if (!sqe) return DX_EIO;
    sqe->msg_flags = MSG_NOSIGNAL;
    copy_hdr *h = copy_of(u, s);
    sqe->addr = (uint64_t)(uintptr_t)((uint8_t *)(h + 1) + h->off);
    sqe->len = (uint32_t)(h->len - h->off);
    return 0;
}

int64_t dx__uring_send(dx__uring *u, uint32_t id, const struct iovec *iov, int n) {
    slot *s = u ? slot_of(u, id) : NULL;
    if (!s || n <= 0 || n > MAX_IOV) return DX_EINVAL;
    if (s->state & S_SENDING) return DX_EBUSY;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    uint16_t at;
    uint8_t sb = total <= DX__URING_COPY_MAX ? copy_alloc(u, sizeof(copy_hdr) + total, &at) : 0;
    if (sb) {
        s->sb = sb;
        s->sb_at = at;
        copy_hdr *h = copy_of(u, s);
        h->len = (uint16_t)total;
        h->off = 0;
        uint8_t *p = (uint8_t *)(h + 1);
        for (int i = 0; i < n; i++) {
            memcpy(p, iov[i].iov_base, iov[i].iov_len);
            p += iov[i].iov_len;
        }
        if (send_copy(u, id, s) < 0) {
            copy_free(u, s->sb);
            s->sb = 0;
            return DX_EIO;
        }
        s->state |= S_SENDING;
        return (int64_t)total;
    }
    if (n > 1 && (u->iov_used + n > IOV_POOL || u->msg_used == MSG_POOL)) {
        if (submit_now(u) < 0) return DX_EIO;
        /* Still full (the kernel would not take the queue yet): the first
         * piece alone, the completion sends the rest. */
        if (u->iov_used + n > IOV_POOL || u->msg_used == MSG_POOL) n = 1;
    }
    struct io_uring_sqe *sqe =
        sqe_for(u, n == 1 ? IORING_OP_SEND : IORING_OP_SENDMSG, K_SEND, id, s);
    if (!sqe) return DX_EIO;
    sqe->msg_flags = MSG_NOSIGNAL;
    if (n == 1) {
        sqe->addr = (uint64_t)(uintptr_t)iov[0].iov_base;
        sqe->len = (uint32_t)iov[0].iov_len;
    } else {
        /* The kernel copies the header and the iovecs when it takes the
         * SQE (IORING_FEAT_SUBMIT_STABLE): the pools are reused after. */
        struct iovec *v = &u->iov_pool[u->iov_used];
        memcpy(v, iov, (size_t)n * sizeof *v);
        u->iov_used += n;
        struct msghdr *m = &u->msg_pool[u->msg_used++];
        memset(m, 0, sizeof *m);
        m->msg_iov = v;
        m->msg_iovlen = (size_t)n;
        sqe->addr = (uint64_t)(uintptr_t)m;
        sqe->len = 1;
    }
    s->state |= S_SENDING;
    return 0;
}

void dx__uring_detach(dx__uring *u, uint32_t id) {
    slot *s = u ? slot_of(u, id) : NULL;
    if (!s) return;
    if (s->state & (S_RECV_ON | S_SENDING)) {
        /* SQEs not yet submitted must reach the kernel before it can
         * cancel them. Then a synchronous cancel: when it returns, no
         * request of this socket is left to read the owner's send buffers.
         * Their completions may still be in the queue; the generation
         * below makes the dispatch drop them. */
        (void)submit_now(u);
        struct io_uring_sync_cancel_reg reg;
        memset(&reg, 0, sizeof reg);
        reg.fd = s->w->fd;
        reg.flags = IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL;
        reg.timeout.tv_sec = -1;
        reg.timeout.tv_nsec = -1;
        while (sys_register(u->fd, IORING_REGISTER_SYNC_CANCEL, &reg, 1) < 0 && errno == EINTR) {
        }
    }
    if (s->sb) copy_free(u, s->sb);
    s->sb = 0;
    s->w = NULL;
    s->state = 0;
    u->free_ids[u->nfree++] = id;
}

int64_t dx__uring_got(dx__uring *u, uint8_t **data) {
    if (!u) return DX_ESTATE;
    if (data) *data = u->got_data;
    return u->got;
}

/* ---- the loop's side ---- */

int dx__uring_wait(dx__uring *u, int block) {
    /* Armed here, between dispatches, never during one: it writes into the
     * array that a dispatch of epoll's events walks. */
    if (!u->epoll_armed && arm_epoll(u) < 0) return DX_EIO;
    atomic_store_explicit((_Atomic unsigned *)u->sq_tail, u->sq_local, memory_order_release);
    for (;;) {
        int r = sys_enter(u->fd, u->to_submit, block ? 1 : 0, IORING_ENTER_GETEVENTS);
        if (r >= 0) {
            u->to_submit -= (unsigned)r < u->to_submit ? (unsigned)r : u->to_submit;
            break;
        }
        if (errno == EINTR) {
            if (!block) break;
            continue;
        }
        /* EBUSY/EAGAIN: the completion queue is full; reaping it (the
         * dispatch that follows) makes room. */
        if (errno == EBUSY || errno == EAGAIN) break;
        return DX_EIO;
    }
    if (u->to_submit == 0) u->iov_used = u->msg_used = 0;
    return 0;
}

static void on_recv(dx__uring *u, dx_loop *loop, uint64_t now, const struct io_uring_cqe *cqe,
                    uint32_t id, uint32_t gen) {
    uint8_t *data = NULL;
    unsigned bid = 0;
    int has_buf = (cqe->flags & IORING_CQE_F_BUFFER) != 0;
    u->busy = 1;
    if (has_buf) {
        bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        data = u->bufs + (size_t)bid * BUF_SIZE + u->buf_off[bid];
        if (cqe->res > 0) {
            u->buf_off[bid] += (uint32_t)cqe->res;
            u->recv_avg += (uint32_t)(((int64_t)cqe->res - u->recv_avg) / 8);
        }
    }
    slot *s = slot_of(u, id);
    if (s && s->gen == gen) {
        int more = (cqe->flags & IORING_CQE_F_MORE) != 0;
        int res = cqe->res;
        if (!more) s->state &= (uint8_t) ~(S_RECV_ON | S_RECV_CANCEL);
        if (res >= SHARE_MIN) s->state |= S_HEAVY;
        if (res > 0 || (res <= 0 && res != -ENOBUFS && res != -ECANCELED)) {
            dx_io *w = s->w;
            u->got = res > 0 ? res : res == 0 ? 0 : DX_EIO;
            u->got_data = data;
            if (res < 0) errno = -res;
            w->cb(loop, w, DX_IO_RECVD);
            s = slot_of(u, id); /* the callback may have detached it */
            if (s && s->gen != gen) s = NULL;
        }
        /* Out of buffers: in its turn (starve). Any other end while
         * still wanted (a capped receive, one cancelled, one the kernel
         * ended after data): armed again at the end of the round (later),
         * never here: a receive armed here goes to the kernel before the
         * starved ones and, on a socket with bytes waiting, takes the
         * buffers they were to get (one of 16 flooding connections whose
         * multishot ended kept a quiet client waiting 3 s). */
        if (s && !more && (res > 0 || res == -ENOBUFS || res == -ECANCELED) &&
            (s->state & (S_RECV_WANT | S_RECV_ON)) == S_RECV_WANT &&
            (res == -ENOBUFS ? starve(u, id, s) : wait_turn(&u->later, id, s)) < 0)
            (void)arm_recv(u, id, s, 0);
    }
    /* The bytes were used inside the callback; a buffer the kernel has
     * finished with goes back to the ring. */
    if (has_buf && !(cqe->flags & DX_CQE_F_BUF_MORE)) buf_give(u, bid, now);
}

static void on_sent(dx__uring *u, dx_loop *loop, const struct io_uring_cqe *cqe, uint32_t id,
                    uint32_t gen) {
    u->busy = 1;
    slot *s = slot_of(u, id);
    if (!s || s->gen != gen) return;
    int res = cqe->res;
    if (s->sb) {
        /* A copy: the rest of a short send goes again from here, and the
         * owner hears only of the end (0 bytes of its own to consume). */
        copy_hdr *h = copy_of(u, s);
        if (res > 0 && h->off + res < h->len) {
            h->off = (uint16_t)(h->off + res);
            if (send_copy(u, id, s) == 0) return;
            res = -EIO;
        }
        copy_free(u, s->sb);
        s->sb = 0;
        if (res >= 0) res = 0;
    }
    s->state &= (uint8_t)~S_SENDING;
    u->got = res >= 0 ? res : DX_EIO;
    u->got_data = NULL;
    if (res < 0) errno = -res;
    s->w->cb(loop, s->w, DX_IO_SENT);
}

/* Delivers the completions that were there when it started, no more: those
 * posted meanwhile (inline completions of what the callbacks submitted,
 * or any on a ring without DEFER_TASKRUN) wait for the next round, after
 * the timers and deferred calls, which a peer that keeps the queue full
 * must not be able to hold off. */
void dx__uring_dispatch(dx__uring *u, dx_loop *loop, uint64_t now,
                        void (*epoll_dispatch)(dx_loop *, int)) {
    unsigned head = *u->cq_head;
    unsigned tail = atomic_load_explicit((_Atomic unsigned *)u->cq_tail, memory_order_acquire);
    while (head != tail) {
        /* Copied out, and the slot handed back before the callback, so
         * a callback that waits (detach) finds the queue consistent. */
        struct io_uring_cqe cqe = u->cqes[head & u->cq_mask];
        head++;
        atomic_store_explicit((_Atomic unsigned *)u->cq_head, head, memory_order_release);
        uint64_t d = cqe.user_data;
        uint32_t id = (uint32_t)(d >> 2) & 0x3fffffffu, gen = (uint32_t)(d >> 32);
        switch (d & 3) {
        case K_RECV:
            on_recv(u, loop, now, &cqe, id, gen);
            break;
        case K_SEND:
            on_sent(u, loop, &cqe, id, gen);
            break;
        case K_EPOLL:
            u->epoll_armed = 0;
            if (cqe.res > 0) epoll_dispatch(loop, cqe.res);
            break;
        default:
            break;
        }
    }
    buf_publish(u);
    if (u->light.len || u->starved.len || u->later.len) take_turns(u);
    if (u->busy) {
        u->busy = u->trimmed = 0;
        u->quiet_since = now;
    } else if (!u->trimmed && now - u->quiet_since >= QUIET_MS) {
        u->trimmed = 1;
        idle_release(u);
    }
}

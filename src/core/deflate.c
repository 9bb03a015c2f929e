/* The permessage-deflate data path; see core/deflate.h for the design and
 * include/duplex/deflate.h for the memory model. */
#include "core/deflate.h"

#include <limits.h>
#include <pthread.h>
#include <stdalign.h>
#include <string.h>

#include <zlib.h>

#include "core/alloc.h"

#define CHUNK 16384           /* sink-mode output step */
#define KEEP_BUF (256u << 10) /* scratch buffers larger than this are freed after use */
#define STEP_IN (1u << 30)    /* zlib counts in uInt: feed at most this much at once */
static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};

/* ---- zlib allocations ---------------------------------------------------- */

/* zlib allocates through dx__malloc like the rest of duplex (so tests can
 * fail each allocation), and each block records its size so a connection
 * can tell how much zlib state it holds. */
typedef union zhdr {
    size_t size;
    max_align_t align;
} zhdr;

static voidpf z_alloc(voidpf opaque, uInt items, uInt size) {
    size_t n = (size_t)items * size;
    zhdr *h = dx__malloc(sizeof *h + n);
    if (!h) return Z_NULL;
    h->size = n;
    if (opaque) *(size_t *)opaque += n;
    return h + 1;
}

static void z_free(voidpf opaque, voidpf p) {
    if (!p) return;
    zhdr *h = (zhdr *)p - 1;
    if (opaque) *(size_t *)opaque -= h->size;
    dx__free(h);
}

/* ---- per-thread shared state --------------------------------------------- */

struct pmd_thread {
    z_stream inf; /* raw, window 15: decompresses any peer's message */
    z_stream def;
    uint8_t inf_ok, def_ok;
    uint8_t def_bits, def_level, def_mem;
    uint8_t rx_busy;    /* the rx buffer is lent out */
    uint8_t registered; /* the thread-exit destructor is set */
    uint8_t *rx;
    size_t rx_cap;
    uint8_t *tx;
    size_t tx_cap;
};

static _Thread_local struct pmd_thread th;
static pthread_key_t th_key;
static pthread_once_t th_once = PTHREAD_ONCE_INIT;
static int th_key_ok;

static void th_free(struct pmd_thread *t) {
    if (t->inf_ok) inflateEnd(&t->inf);
    if (t->def_ok) deflateEnd(&t->def);
    t->inf_ok = t->def_ok = 0;
    if (!t->rx_busy) {
        dx__free(t->rx);
        t->rx = NULL;
        t->rx_cap = 0;
    }
    dx__free(t->tx);
    t->tx = NULL;
    t->tx_cap = 0;
}

static void th_destroy(void *arg) {
    struct pmd_thread *t = arg;
    th_free(t);
    t->registered = 0;
}

static void th_key_init(void) {
    th_key_ok = pthread_key_create(&th_key, th_destroy) == 0;
}

/* Registers the thread-exit destructor before the thread's first shared
 * allocation. Returns -1 when that cannot be done (then nothing is shared
 * on this thread, so nothing can leak). */
static int th_register(void) {
    if (th.registered) return 0;
    pthread_once(&th_once, th_key_init);
    if (!th_key_ok || pthread_setspecific(th_key, &th) != 0) return -1;
    th.registered = 1;
    return 0;
}

void dx__pmd_thread_trim(void) {
    th_free(&th);
}

/* ---- the connection's state ---------------------------------------------- */

enum { RX_IDLE, RX_SHARED, RX_OWN };

struct dx__pmd {
    z_stream *inf; /* own decompressor, NULL until needed */
    z_stream *def; /* own compressor (context takeover sends), NULL until needed */
    size_t threshold;
    size_t mem;        /* bytes of zlib state held by inf and def */
    uint64_t rx_total; /* decompressed bytes of the message being received */
    uint8_t rx_bits, tx_bits;
    uint8_t rx_keep, tx_keep; /* the peer's / our context is kept between messages */
    uint8_t level, mem_level;
    uint8_t rx_state; /* RX_*: which stream the current message uses */
    uint8_t rx_ended; /* the current message's stream had a final block */
};

dx__pmd *dx__pmd_new(enum dx_role role, const dx_deflate_params *a, const dx_deflate_config *cfg,
                     int *err) {
    int e = DX_EINVAL;
    dx__pmd *p = NULL;
    if (!a || a->server_max_window_bits < 8 || a->server_max_window_bits > 15 ||
        a->client_max_window_bits < 8 || a->client_max_window_bits > 15)
        goto out;
    int level = cfg && cfg->level ? cfg->level : DX_DEFLATE_LEVEL;
    int mem = cfg && cfg->mem_level ? cfg->mem_level : DX_DEFLATE_MEM_LEVEL;
    if (level < 1 || level > 9 || mem < 1 || mem > 9) goto out;
    e = DX_ENOMEM;
    p = dx__calloc(1, sizeof *p);
    if (!p) goto out;
    int server = role == DX_ROLE_SERVER;
    p->rx_bits = server ? a->client_max_window_bits : a->server_max_window_bits;
    p->tx_bits = server ? a->server_max_window_bits : a->client_max_window_bits;
    p->rx_keep = !(server ? a->client_no_context_takeover : a->server_no_context_takeover);
    /* A sender may always reset its own context: honour our config even
     * when the agreement does not say so. */
    int tx_nct = server ? a->server_no_context_takeover : a->client_no_context_takeover;
    if (cfg) tx_nct |= server ? cfg->server_no_context_takeover : cfg->client_no_context_takeover;
    p->tx_keep = !tx_nct;
    p->level = (uint8_t)level;
    p->mem_level = (uint8_t)mem;
    p->threshold = cfg && cfg->threshold ? cfg->threshold : DX_DEFLATE_THRESHOLD;
    return p;
out:
    if (err) *err = e;
    return NULL;
}

static void own_inf_free(dx__pmd *p) {
    if (!p->inf) return;
    inflateEnd(p->inf);
    dx__free(p->inf);
    p->inf = NULL;
}

void dx__pmd_free(dx__pmd *p) {
    if (!p) return;
    own_inf_free(p);
    if (p->def) {
        deflateEnd(p->def);
        dx__free(p->def);
    }
    dx__free(p);
}

size_t dx__pmd_mem(const dx__pmd *p) {
    return p ? p->mem + (p->inf ? sizeof *p->inf : 0) + (p->def ? sizeof *p->def : 0) : 0;
}

/* ---- buffers ----------------------------------------------------------- */

void dx__pmd_buf_take(dx__pmd_buf *b) {
    memset(b, 0, sizeof *b);
    if (th.rx_busy) return; /* a callback up the stack holds it: use a fresh one */
    th.rx_busy = 1;
    b->thread = 1;
    b->data = th.rx;
    b->cap = th.rx_cap;
}

void dx__pmd_buf_give(dx__pmd_buf *b) {
    if (!b->thread) {
        dx__free(b->data);
    } else if (b->cap > KEEP_BUF || th_register() < 0) {
        /* One huge message must not pin its size for the thread's life. */
        dx__free(b->data);
        th.rx = NULL;
        th.rx_cap = 0;
        th.rx_busy = 0;
    } else {
        th.rx = b->data;
        th.rx_cap = b->cap;
        th.rx_busy = 0;
    }
    memset(b, 0, sizeof *b);
}

/* Makes room for at least one more step of output, never past limit + 1
 * bytes in all (one byte over is how the limit is seen to be crossed). */
static int buf_room(dx__pmd_buf *b, uint64_t limit, size_t hint) {
    if (b->cap - b->len >= 1024 || (limit && b->cap > limit)) return 0;
    size_t cap = b->cap ? (b->cap > SIZE_MAX / 2 ? SIZE_MAX : b->cap * 2) : hint;
    if (cap < b->len + 4096) cap = b->len + 4096;
    if (limit && cap > limit + 1) cap = (size_t)(limit + 1);
    if (cap <= b->cap) return 0;
    uint8_t *d = dx__realloc(b->data, cap);
    if (!d) return DX_ENOMEM;
    b->data = d;
    b->cap = cap;
    return 0;
}

/* ---- inflating ---------------------------------------------------------- */

static z_stream *inf_new(size_t *counter, int bits) {
    z_stream *z = dx__calloc(1, sizeof *z);
    if (!z) return NULL;
    z->zalloc = z_alloc;
    z->zfree = z_free;
    z->opaque = counter;
    if (inflateInit2(z, -bits) != Z_OK) {
        dx__free(z);
        return NULL;
    }
    return z;
}

/* Picks the stream for a new message. */
static z_stream *rx_begin(dx__pmd *p, int shared_ok) {
    if (shared_ok && !p->rx_keep) {
        if (!th.inf_ok && th_register() == 0) {
            memset(&th.inf, 0, sizeof th.inf);
            th.inf.zalloc = z_alloc;
            th.inf.zfree = z_free;
            th.inf_ok = inflateInit2(&th.inf, -15) == Z_OK;
        }
        if (th.inf_ok && inflateReset(&th.inf) == Z_OK) {
            p->rx_state = RX_SHARED;
            return &th.inf;
        }
    }
    if (!p->inf) {
        /* zlib refuses to compress raw streams with a 256-byte window, so a
         * peer told to use 8 bits may well use 9 (Node does): decompress
         * with at least 9, which costs 256 bytes more and accepts both. */
        p->inf = inf_new(&p->mem, p->rx_bits < 9 ? 9 : p->rx_bits);
        if (!p->inf) return NULL;
    }
    p->rx_state = RX_OWN;
    return p->inf;
}

typedef struct rx_out {
    dx__pmd_buf *buf;
    dx__pmd_sink sink;
    void *arg;
    uint64_t limit;
    size_t hint;
} rx_out;

/* Runs zlib over `in` until it is all consumed and all output is out. */
static int inflate_run(dx__pmd *p, z_stream *z, const uint8_t *in, size_t len, rx_out *o) {
    uint8_t chunk[CHUNK]; /* sink mode only */
    while (len > 0 && !p->rx_ended) {
        size_t step = len > STEP_IN ? STEP_IN : len;
        z->next_in = (Bytef *)(uintptr_t)in;
        z->avail_in = (uInt)step;
        in += step;
        len -= step;
        for (;;) {
            uint8_t *dst;
            size_t room;
            if (o->buf) {
                int rc = buf_room(o->buf, o->limit, o->hint);
                if (rc) return rc;
                dst = o->buf->data + o->buf->len;
                room = o->buf->cap - o->buf->len;
                if (room > CHUNK * 64) room = CHUNK * 64;
                /* A buffer grown by an earlier, larger message: still write
                 * at most one byte past the limit. */
                if (o->limit && room > o->limit + 1 - p->rx_total)
                    room = (size_t)(o->limit + 1 - p->rx_total);
            } else {
                dst = chunk;
                room = sizeof chunk;
            }
            z->next_out = dst;
            z->avail_out = (uInt)room;
            int zr = inflate(z, Z_SYNC_FLUSH);
            size_t made = room - z->avail_out;
            if (made) {
                p->rx_total += made;
                if (o->limit && p->rx_total > o->limit) return DX_ETOOBIG;
                if (o->buf) {
                    o->buf->len += made;
                } else {
                    int rc = o->sink(o->arg, chunk, made);
                    if (rc) return rc;
                }
            }
            if (zr == Z_STREAM_END) {
                /* A final block: the message ends here, whatever follows
                 * it (RFC 7692 §7.2.3.4 allows BFINAL). */
                p->rx_ended = 1;
                break;
            }
            if (zr == Z_MEM_ERROR) return DX_ENOMEM;
            if (zr != Z_OK && zr != Z_BUF_ERROR) return DX_EEXT;
            if (z->avail_in == 0 && z->avail_out > 0) break;
            if (zr == Z_BUF_ERROR && made == 0) {
                if (z->avail_in == 0) break;
                return DX_EEXT; /* no progress with input and room: cannot happen */
            }
        }
    }
    z->next_in = Z_NULL;
    z->avail_in = 0;
    return 0;
}

/* After a final block, a stream that keeps its context must go on from
 * the same window: zlib needs a reset, and the window is carried over as
 * a preset dictionary. */
static int rx_restart_keeping_window(z_stream *z) {
    Bytef *dict = dx__malloc(1u << 15);
    uInt n = 0;
    int ok = dict && inflateGetDictionary(z, dict, &n) == Z_OK && inflateReset(z) == Z_OK &&
             (n == 0 || inflateSetDictionary(z, dict, n) == Z_OK);
    dx__free(dict);
    return ok ? 0 : DX_ENOMEM;
}

/* The message is over (or failed): drop or keep its stream. */
static int rx_end(dx__pmd *p, int failed) {
    int rc = 0;
    if (p->rx_state == RX_OWN) {
        if (!p->rx_keep || failed)
            own_inf_free(p); /* freed after each message: an idle connection holds none */
        else if (p->rx_ended)
            rc = rx_restart_keeping_window(p->inf);
    }
    p->rx_state = RX_IDLE;
    p->rx_ended = 0;
    p->rx_total = 0;
    return rc;
}

int dx__pmd_inflate(dx__pmd *p, const uint8_t *in, size_t len, int fin, int whole, uint64_t limit,
                    dx__pmd_buf *out, dx__pmd_sink sink, void *arg) {
    if (!p || (!in && len) || (!out && !sink)) return DX_EINVAL;
    z_stream *z;
    if (p->rx_state == RX_IDLE) {
        /* The shared stream is only used when no callback can run while it
         * is busy: one call, output into a buffer. */
        z = rx_begin(p, whole && fin && out != NULL);
        if (!z) {
            rx_end(p, 1);
            return DX_ENOMEM;
        }
    } else {
        z = p->rx_state == RX_SHARED ? &th.inf : p->inf;
    }
    size_t hint = len < SIZE_MAX / 4 ? len * 4 : len;
    if (hint < 1024) hint = 1024;
    rx_out o = {out, sink, arg, limit, hint};
    int rc = inflate_run(p, z, in, len, &o);
    if (rc == 0 && fin) rc = inflate_run(p, z, tail, sizeof tail, &o);
    if (rc) {
        rx_end(p, 1);
        return rc;
    }
    if (fin) return rx_end(p, 0);
    return 0;
}

/* ---- deflating ---------------------------------------------------------- */

int dx__pmd_want(const dx__pmd *p, size_t len) {
    /* zlib cannot make a raw stream with a 256-byte window (it would use
     * 512), so a window of 8 bits for our sends means: send uncompressed. */
    return p && p->tx_bits >= 9 && p->threshold != SIZE_MAX && len >= p->threshold;
}

int dx__pmd_tx_bits(const dx__pmd *p) {
    return p ? p->tx_bits : 15;
}

int dx__pmd_tx_keeps(const dx__pmd *p) {
    return p && p->tx_keep;
}

static int def_init(z_stream *z, size_t *counter, int level, int bits, int mem) {
    memset(z, 0, sizeof *z);
    z->zalloc = z_alloc;
    z->zfree = z_free;
    z->opaque = counter;
    return deflateInit2(z, level, Z_DEFLATED, -bits, mem, Z_DEFAULT_STRATEGY) == Z_OK ? 0 : -1;
}

static z_stream *tx_stream(dx__pmd *p) {
    if (p->tx_keep) {
        if (!p->def) {
            z_stream *z = dx__malloc(sizeof *z);
            if (!z) return NULL;
            if (def_init(z, &p->mem, p->level, p->tx_bits, p->mem_level) < 0) {
                dx__free(z);
                return NULL;
            }
            p->def = z;
        }
        return p->def;
    }
    /* The thread's compressor, reset per piece. Connections of one server
     * share one configuration, so the re-initialization below is rare. */
    if (th.def_ok &&
        (th.def_bits != p->tx_bits || th.def_level != p->level || th.def_mem != p->mem_level)) {
        deflateEnd(&th.def);
        th.def_ok = 0;
    }
    if (!th.def_ok) {
        if (th_register() < 0 || def_init(&th.def, NULL, p->level, p->tx_bits, p->mem_level) < 0)
            return NULL;
        th.def_ok = 1;
        th.def_bits = p->tx_bits;
        th.def_level = p->level;
        th.def_mem = p->mem_level;
    } else if (deflateReset(&th.def) != Z_OK) {
        return NULL;
    }
    return &th.def;
}

void dx__pmd_tx_abort(dx__pmd *p) {
    if (p && p->def) (void)deflateReset(p->def);
}

static int tx_room(size_t need) {
    if (need <= th.tx_cap) return 0;
    if (th_register() < 0) return DX_ENOMEM;
    size_t cap = th.tx_cap ? th.tx_cap : 4096;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *d = dx__realloc(th.tx, cap);
    if (!d) return DX_ENOMEM;
    th.tx = d;
    th.tx_cap = cap;
    return 0;
}

int dx__pmd_deflate(dx__pmd *p, const uint8_t *in, size_t len, int fin, const uint8_t **out,
                    size_t *out_len) {
    if (!p || (!in && len) || !out || !out_len) return DX_EINVAL;
    z_stream *z = tx_stream(p);
    if (!z) return DX_ENOMEM;
    if (th.tx_cap > KEEP_BUF && len < KEEP_BUF / 2) {
        /* One huge message must not pin its size for the thread's life. */
        dx__free(th.tx);
        th.tx = NULL;
        th.tx_cap = 0;
    }
    /* A sync flush adds at most a few bytes per step to deflateBound. */
    size_t bound = (size_t)deflateBound(z, (uLong)(len > STEP_IN ? STEP_IN : len));
    if (tx_room(bound + 64) < 0) return DX_ENOMEM;
    size_t have = 0;
    while (1) {
        size_t step = len > STEP_IN ? STEP_IN : len;
        z->next_in = (Bytef *)(uintptr_t)in;
        z->avail_in = (uInt)step;
        in += step;
        len -= step;
        int flush = len ? Z_NO_FLUSH : Z_SYNC_FLUSH;
        for (;;) {
            if (th.tx_cap - have < 64 && tx_room(th.tx_cap + th.tx_cap / 2 + 64) < 0)
                return DX_ENOMEM;
            size_t room = th.tx_cap - have;
            if (room > STEP_IN) room = STEP_IN;
            z->next_out = th.tx + have;
            z->avail_out = (uInt)room;
            int zr = deflate(z, flush);
            have += room - z->avail_out;
            if (zr != Z_OK && zr != Z_BUF_ERROR) return zr == Z_MEM_ERROR ? DX_ENOMEM : DX_EEXT;
            /* Done with this step when zlib left room: all input taken and,
             * for the sync flush, everything written out. */
            if (z->avail_out > 0 && z->avail_in == 0) break;
        }
        if (!len) break;
    }
    z->next_in = Z_NULL;
    z->avail_in = 0;
    if (fin && have > 0) {
        /* RFC 7692 §7.2.1: the last piece drops the sync flush's empty
         * stored block, which the receiver appends again. (An empty last
         * piece right after a flushed one makes zlib write nothing, since
         * it refuses two flushes in a row: an empty payload is then right,
         * the receiver's tail being all it needs. Found by fuzz_conn.) */
        if (have < 4 || memcmp(th.tx + have - 4, tail, 4) != 0) return DX_EEXT;
        have -= 4;
    }
    *out = th.tx;
    *out_len = have;
    return 0;
}

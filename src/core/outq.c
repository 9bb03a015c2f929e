/* The per-connection output queue; see outq.h for the design. */
#include "core/outq.h"

#include <pthread.h>
#include <string.h>

#include <duplex/frame.h>
#include <duplex/mask.h>

#include "core/alloc.h"
#include "core/counters.h"

struct dx__outq_seg {
    dx__outq_seg *next;
    dx_shared *shared; /* NULL for a block owned by the queue */
    size_t start;      /* first byte not yet consumed */
    size_t end;        /* end of the written bytes */
    size_t cap;        /* room in data[] (owned blocks) */
    uint8_t data[];
};

#define BLOCK_CAP (DX__OUTQ_BLOCK - sizeof(dx__outq_seg))

/* The per-thread cache of standard blocks. A thread that puts a block in
 * it registers a pthread key so the blocks are freed when the thread exits
 * (C has no destructor for _Thread_local data). */
struct block_cache {
    int n;
    int registered;
    dx__outq_seg *blocks[DX__OUTQ_CACHE];
};

static _Thread_local struct block_cache cache;
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static int cache_key_ok;

static void cache_free(struct block_cache *bc) {
    while (bc->n > 0)
        dx__free(bc->blocks[--bc->n]);
}

static void cache_destroy(void *arg) {
    struct block_cache *bc = arg;
    cache_free(bc);
    bc->registered = 0;
}

static void cache_key_init(void) {
    cache_key_ok = pthread_key_create(&cache_key, cache_destroy) == 0;
}

void dx__outq_cache_trim(void) {
    cache_free(&cache);
}

static dx__outq_seg *block_get(size_t need) {
    dx__outq_seg *b;
    size_t cap = BLOCK_CAP;
    if (need <= BLOCK_CAP && cache.n > 0) {
        b = cache.blocks[--cache.n];
    } else {
        if (need > BLOCK_CAP) {
            if (need > SIZE_MAX - sizeof(dx__outq_seg)) return NULL;
            cap = need;
        }
        b = dx__malloc(sizeof(dx__outq_seg) + cap);
        if (!b) return NULL;
    }
    b->next = NULL;
    b->shared = NULL;
    b->start = b->end = 0;
    b->cap = cap;
    return b;
}

static void seg_free(dx__outq_seg *s) {
    if (s->shared) {
        dx_shared_release(s->shared);
        dx__free(s);
        return;
    }
    if (s->cap == BLOCK_CAP && cache.n < DX__OUTQ_CACHE) {
        if (!cache.registered) {
            pthread_once(&cache_once, cache_key_init);
            /* Without a key the block could leak at thread exit: free it. */
            if (!cache_key_ok || pthread_setspecific(cache_key, &cache) != 0) {
                dx__free(s);
                return;
            }
            cache.registered = 1;
        }
        cache.blocks[cache.n++] = s;
        return;
    }
    dx__free(s);
}

static void link_tail(dx__outq *q, dx__outq_seg *s) {
    if (q->tail)
        q->tail->next = s;
    else
        q->head = s;
    q->tail = s;
}

/* Cork: the tail block while `need` bytes fit in it, else a fresh one
 * (`*fresh`: link it once written). NULL when out of memory. */
static inline dx__outq_seg *room_for(dx__outq *q, size_t need, int *fresh) {
    dx__outq_seg *b = q->tail;
    *fresh = 0;
    if (b && !b->shared && b->cap - b->end >= need) return b;
    *fresh = 1;
    return block_get(need);
}

int dx__outq_frame(dx__outq *q, enum dx_role role, int fin, uint8_t rsv, uint8_t opcode,
                   const void *data, size_t len) {
    int masked = role == DX_ROLE_CLIENT;
    size_t hlen = (len < 126 ? 2 : len <= 0xffff ? 4 : 10) + (masked ? 4 : 0);
    if (len > SIZE_MAX - hlen) return DX_ENOMEM;
    size_t need = hlen + len;

    uint8_t key[4];
    if (masked) {
        int rc = dx_random(key, sizeof key);
        if (rc) return rc;
    }

    int fresh;
    dx__outq_seg *b = room_for(q, need, &fresh);
    if (!b) return DX_ENOMEM;
    uint8_t *out = b->data + b->end;
    size_t h;
    if (!masked && len < 126) {
        /* A server's small frame, the common case: two header bytes
         * written here rather than through the general writer. */
        out[0] = (uint8_t)((fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f));
        out[1] = (uint8_t)len;
        h = 2;
    } else {
        h = dx_frame_write_header(out, fin, rsv, opcode, len, masked ? key : NULL);
    }
    if (len) {
        if (masked)
            dx_mask_copy(out + h, data, len, key, 0);
        else
            memcpy(out + h, data, len);
    }
    b->end += h + len;
    q->bytes += h + len;
    if (fresh) link_tail(q, b);
    dx_conn_counters *k = dx__counters();
    k->frames_out[DX_FRAME_SLOT(opcode & 0x0f)]++;
    k->queued += (int64_t)(h + len);
    return 0;
}

int dx__outq_bytes(dx__outq *q, const struct iovec *iov, int n) {
    size_t need = 0;
    for (int i = 0; i < n; i++)
        need += iov[i].iov_len;
    if (need == 0) return 0;
    int fresh;
    dx__outq_seg *b = room_for(q, need, &fresh);
    if (!b) return DX_ENOMEM;
    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len) memcpy(b->data + b->end, iov[i].iov_base, iov[i].iov_len);
        b->end += iov[i].iov_len;
    }
    q->bytes += need;
    if (fresh) link_tail(q, b);
    dx__counters()->queued += (int64_t)need;
    return 0;
}

int dx__outq_shared(dx__outq *q, dx_shared *s) {
    dx_conn_counters *k = dx__counters();
    /* A small frame that fits in the tail block is copied there, as a send
     * would be: cheaper than a segment allocated (and freed) for this
     * receiver, and it leaves in the same iovec as the frames around it.
     * Into an empty queue it is referenced: a 16 KiB block per receiver
     * for one small frame would cost more than the segment. */
    dx__outq_seg *b = q->tail;
    if (s->len <= DX__OUTQ_SHARED_COPY && b && !b->shared && b->cap - b->end >= s->len) {
        memcpy(b->data + b->end, s->data, s->len);
        b->end += s->len;
        q->bytes += s->len;
        k->frames_out[DX_FRAME_SLOT(s->data[0] & 0x0f)]++;
        k->queued += (int64_t)s->len;
        return 0;
    }
    dx__outq_seg *seg = dx__malloc(sizeof *seg);
    if (!seg) return DX_ENOMEM;
    dx_shared_retain(s);
    seg->next = NULL;
    seg->shared = s;
    seg->start = 0;
    seg->end = s->len;
    seg->cap = 0;
    link_tail(q, seg);
    q->bytes += s->len;
    k->frames_out[DX_FRAME_SLOT(s->data[0] & 0x0f)]++;
    k->queued += (int64_t)s->len;
    return 0;
}

int dx__outq_iov(const dx__outq *q, struct iovec *iov, int max) {
    int n = 0;
    for (const dx__outq_seg *s = q->head; s && n < max; s = s->next) {
        if (s->start == s->end) continue;
        const uint8_t *base = s->shared ? s->shared->data : s->data;
        iov[n].iov_base = (void *)(base + s->start);
        iov[n].iov_len = s->end - s->start;
        n++;
    }
    return n;
}

void dx__outq_consume(dx__outq *q, size_t n) {
    if (n > q->bytes) n = q->bytes;
    q->bytes -= n;
    dx__counters()->queued -= (int64_t)n;
    while (q->head) {
        dx__outq_seg *s = q->head;
        size_t avail = s->end - s->start;
        size_t take = n < avail ? n : avail;
        s->start += take;
        n -= take;
        if (s->start < s->end) break;
        q->head = s->next;
        if (!q->head) q->tail = NULL;
        seg_free(s);
    }
}

void dx__outq_clear(dx__outq *q) {
    if (q->bytes) dx__counters()->queued -= (int64_t)q->bytes;
    while (q->head) {
        dx__outq_seg *s = q->head;
        q->head = s->next;
        seg_free(s);
    }
    q->tail = NULL;
    q->bytes = 0;
}

/* ---- shared frames (dx_shared_*, duplex/conn.h) ---------------------- */

dx_shared *dx_shared_new(enum dx_opcode op, const void *data, size_t len) {
    if ((op != DX_OP_TEXT && op != DX_OP_BINARY) || (!data && len)) return NULL;
    size_t h = dx_frame_header_size(len, 0);
    if (len > SIZE_MAX - h - sizeof(dx_shared)) return NULL;
    dx_shared *s = dx__malloc(sizeof *s + h + len);
    if (!s) return NULL;
    s->refs = 1;
    s->alt = NULL;
    s->alt_bits = 0;
    s->len = dx_frame_write_header(s->data, 1, 0, (uint8_t)op, len, NULL);
    if (len) memcpy(s->data + s->len, data, len);
    s->len += len;
    return s;
}

void dx_shared_retain(dx_shared *s) {
    s->refs++;
}

void dx_shared_release(dx_shared *s) {
    if (s && --s->refs == 0) {
        dx_shared_release(s->alt);
        dx__free(s);
    }
}

size_t dx_shared_size(const dx_shared *s) {
    return s->len;
}

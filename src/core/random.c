/* The CSPRNG behind masking keys and handshake keys. A 4-byte masking key
 * per frame must not cost a syscall, so each thread keeps a small pool
 * filled from getrandom(2) and refills it when empty. */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <duplex/common.h>

#define DX_POOL 256

static _Thread_local uint8_t pool[DX_POOL];
static _Thread_local size_t pool_left;
static dx_random_fn user_fn;

void dx_set_random(dx_random_fn fn) { user_fn = fn; }

static int fill(void *buf, size_t len) {
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return DX_EIO;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int dx_random(void *buf, size_t len) {
    if (user_fn) return user_fn(buf, len);
    if (len > DX_POOL / 2) return fill(buf, len);
    uint8_t *out = buf;
    while (len > 0) {
        if (pool_left == 0) {
            int rc = fill(pool, DX_POOL);
            if (rc) return rc;
            pool_left = DX_POOL;
        }
        size_t take = len < pool_left ? len : pool_left;
        uint8_t *src = pool + (DX_POOL - pool_left);
        memcpy(out, src, take);
        memset(src, 0, take); /* a used key never stays in memory */
        out += take;
        len -= take;
        pool_left -= take;
    }
    return 0;
}

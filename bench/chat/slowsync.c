/* A slow disk for the chat stall benchmark (bench/chat/stall_storm stall):
 * an LD_PRELOAD shim that makes every fdatasync() and fsync() take
 * DX_SLOW_SYNC_MS milliseconds longer (default 200), so that a server which
 * flushes on its event loop shows it as a stall of that loop. It changes
 * nothing else and records nothing.
 *
 * DX_SLOW_SYNC_AFTER_MS=T delays only the calls made T ms or more after the
 * shim was loaded, so that the server opens its database at full speed and
 * the benchmark measures the loop under load, not the start.
 *
 * Build: cc -shared -fPIC -O2 -o slowsync.so slowsync.c -ldl
 * Use:   LD_PRELOAD=$PWD/slowsync.so DX_SLOW_SYNC_MS=200 duplex serve --chat ...
 * (not with an AddressSanitizer build: its runtime must come first.) */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

static long delay_ms = 200;
static int64_t start_ns;
static long after_ms;
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static long env_ms(const char *name, long dflt) {
    const char *s = getenv(name);
    if (!s || !*s) return dflt;
    char *end;
    long v = strtol(s, &end, 10);
    return *end || v < 0 ? dflt : v;
}

__attribute__((constructor)) static void slowsync_init(void) {
    start_ns = now_ns();
    delay_ms = env_ms("DX_SLOW_SYNC_MS", 200);
    after_ms = env_ms("DX_SLOW_SYNC_AFTER_MS", 0);
    real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
}

/* Sleeps the whole delay even when a signal interrupts it, and leaves errno
 * as it found it: the caller sees only the real call's result. */
static void slow_down(void) {
    if (delay_ms == 0 || (now_ns() - start_ns) / 1000000 < after_ms) return;
    int saved = errno;
    struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
    errno = saved;
}

int fsync(int fd) {
    if (!real_fsync) real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    slow_down();
    return real_fsync(fd);
}

int fdatasync(int fd) {
    if (!real_fdatasync) real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    slow_down();
    return real_fdatasync(fd);
}

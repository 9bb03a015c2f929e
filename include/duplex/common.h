/* duplex — common definitions shared by every module.
 *
 * Conventions used by every duplex function:
 *   - Functions return 0 (or a byte count) on success and one negative
 *     `enum dx_error` value on failure. dx_strerror() names it.
 *   - "Would block" / "need more input" is never an error: parsers return 0
 *     consumed bytes or a documented "incomplete" value instead.
 *   - Pointers passed in are borrowed for the duration of the call unless the
 *     function's comment says otherwise.
 *   - Every allocation goes through the hook set with dx_set_allocator(), so
 *     tests can fail each allocation in turn.
 */
#ifndef DUPLEX_COMMON_H
#define DUPLEX_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(DX_BUILDING) && defined(__GNUC__)
#define DX_API __attribute__((visibility("default")))
#else
#define DX_API
#endif

#define DX_VERSION_MAJOR 0
#define DX_VERSION_MINOR 1
#define DX_VERSION_PATCH 0
#define DX_VERSION_STRING "0.1.0"

/* Errors. Each maps to the WebSocket close code or HTTP status that a peer
 * should see; see dx_error_close_code(). */
enum dx_error {
    DX_OK = 0,
    DX_ENOMEM = -1,      /* an allocation failed */
    DX_EINVAL = -2,      /* bad argument from the caller (not from the peer) */
    DX_EPROTO = -3,      /* peer broke RFC 6455: fail with close 1002 */
    DX_EUTF8 = -4,       /* invalid UTF-8 in a text message or reason: 1007 */
    DX_ETOOBIG = -5,     /* message or frame over the configured limit: 1009 */
    DX_EPOLICY = -6,     /* policy violation: 1008 */
    DX_ESTATE = -7,      /* call not allowed in the connection's state */
    DX_ENOSPC = -8,      /* caller's output buffer is too small */
    DX_EHTTP = -9,       /* malformed HTTP: answer 400 */
    DX_EHDRSIZE = -10,   /* HTTP headers too large or too many: answer 431 */
    DX_EHANDSHAKE = -11, /* handshake refused or invalid (see result status) */
    DX_EIO = -12,        /* socket error (the I/O layer keeps errno too) */
    DX_ETIMEDOUT = -13,  /* a timeout fired */
    DX_ETLS = -14,       /* TLS error */
    DX_EADDR = -15,      /* address or URL could not be resolved/parsed */
    DX_ECONNREFUSED = -16,
    DX_ECLOSED = -17,    /* connection already closed */
    DX_EEXT = -18,       /* extension (deflate) data corrupt: 1002 or 1007 */
    DX_EBUSY = -19,      /* limit reached (connections, queue): retry later */
    DX_EADDRINUSE = -20, /* listen: another socket holds the address and port */
};

/* Names an error code ("message too big", ...). Never returns NULL; unknown
 * codes give "unknown error". The string is static. */
DX_API const char *dx_strerror(int err);

/* The close code a peer should receive when the connection fails with `err`
 * (1002, 1007, 1008, 1009, 1011...). Returns 1011 for errors that are not
 * the peer's fault. */
DX_API uint16_t dx_error_close_code(int err);

/* Frame opcodes (RFC 6455 §5.2). */
enum dx_opcode {
    DX_OP_CONT = 0x0,
    DX_OP_TEXT = 0x1,
    DX_OP_BINARY = 0x2,
    DX_OP_CLOSE = 0x8,
    DX_OP_PING = 0x9,
    DX_OP_PONG = 0xA,
};

/* Close codes (RFC 6455 §7.4.1). */
enum dx_close_code {
    DX_CLOSE_NORMAL = 1000,
    DX_CLOSE_GOING_AWAY = 1001,
    DX_CLOSE_PROTOCOL_ERROR = 1002,
    DX_CLOSE_UNSUPPORTED = 1003,
    DX_CLOSE_NO_STATUS = 1005, /* reported locally, never sent */
    DX_CLOSE_ABNORMAL = 1006,  /* reported locally, never sent */
    DX_CLOSE_INVALID_DATA = 1007,
    DX_CLOSE_POLICY = 1008,
    DX_CLOSE_TOO_BIG = 1009,
    DX_CLOSE_MANDATORY_EXT = 1010,
    DX_CLOSE_INTERNAL = 1011,
    DX_CLOSE_RESTART = 1012,
    DX_CLOSE_TRY_AGAIN = 1013,
    DX_CLOSE_BAD_GATEWAY = 1014,
    DX_CLOSE_TLS = 1015, /* reported locally, never sent */
};

/* Which end of the connection we are. A server expects masked frames and
 * sends unmasked ones; a client the reverse. */
enum dx_role { DX_ROLE_SERVER = 0, DX_ROLE_CLIENT = 1 };

/* Ready states, numbered as in the browser API. */
enum dx_ready_state {
    DX_CONNECTING = 0,
    DX_OPEN = 1,
    DX_CLOSING = 2,
    DX_CLOSED = 3,
};

/* 1 when `code` may appear in a close frame on the wire: 1000-1003,
 * 1007-1014 and 3000-4999. Everything else (0-999, 1004-1006, 1015,
 * 1016-2999, 5000+) is a protocol error when received. */
DX_API int dx_close_code_valid(unsigned code);

/* Allocation hook. All three functions must be given; they behave like the C
 * library's. Call before creating any duplex object; the default is the C
 * library. Not thread-safe: set it once at start-up. */
typedef void *(*dx_malloc_fn)(size_t size);
typedef void *(*dx_realloc_fn)(void *ptr, size_t size);
typedef void (*dx_free_fn)(void *ptr);
DX_API void dx_set_allocator(dx_malloc_fn m, dx_realloc_fn r, dx_free_fn f);

/* Fills `buf` with `len` bytes from the kernel CSPRNG (getrandom), served
 * from a small per-thread pool so that masking a frame costs no syscall.
 * This is the core's one exception to "no syscalls", and it can be replaced
 * with dx_set_random() (for example on an RTOS). Returns 0 or DX_EIO. */
DX_API int dx_random(void *buf, size_t len);
typedef int (*dx_random_fn)(void *buf, size_t len);
DX_API void dx_set_random(dx_random_fn fn);

#ifdef __cplusplus
}
#endif
#endif

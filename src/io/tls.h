/* Internal: the test hook of TLS (the rest is public: duplex/tls.h). */
#ifndef DX_IO_TLS_H
#define DX_IO_TLS_H

#include <duplex/tls.h>

/* The OpenSSL context behind `ctx`, to force settings such as a maximum
 * protocol version in tests. */
struct ssl_ctx_st;
struct ssl_ctx_st *dx__tls_ctx_ssl(dx_tls_ctx *ctx);

/* ---- memory mode: the loop's ring carries the ciphertext ----
 * After dx__tls_memory, OpenSSL no longer touches the socket: it reads the
 * bytes dx__tls_feed lends it and writes into a buffer that dx__tls_out
 * shows, and the caller moves both over its io_uring (server/sconn.c).
 * dx_tls_read, dx_tls_writev and dx_tls_shutdown keep their meaning;
 * dx_tls_read's DX_EBUSY means "feed me more", and dx_tls_writev stops
 * once 64 KiB of ciphertext wait to go out. */

/* Switches `t` to memory mode (on), once its handshake is done and
 * OpenSSL has nothing left to write to the socket (the caller knows: its
 * last write was not cut short), or back to the socket (0) while no
 * ciphertext waits in memory. 0, or DX_ESTATE (nothing changed). */
int dx__tls_memory(dx_tls *t, int on);
/* Lends `n` received bytes to the next dx_tls_read calls, which take them
 * all before they return DX_EBUSY (a partial record stays in OpenSSL). */
void dx__tls_feed(dx_tls *t, const void *p, size_t n);
/* The ciphertext to send next (*p; 0 bytes when none). The memory stays
 * put until dx__tls_out_consume has taken all of it, whatever OpenSSL
 * writes meanwhile; ask again for what came after. */
size_t dx__tls_out(dx_tls *t, const uint8_t **p);
/* `n` bytes of what dx__tls_out showed are on their way. */
void dx__tls_out_consume(dx_tls *t, size_t n);

#endif

/* Internal: the test hook of TLS (the rest is public: duplex/tls.h). */
#ifndef DX_IO_TLS_H
#define DX_IO_TLS_H

#include <duplex/tls.h>

/* The OpenSSL context behind `ctx`, to force settings such as a maximum
 * protocol version in tests. */
struct ssl_ctx_st;
struct ssl_ctx_st *dx__tls_ctx_ssl(dx_tls_ctx *ctx);

#endif

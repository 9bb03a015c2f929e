/* Internal: SHA-1 (FIPS 180-4) and base64 (RFC 4648 §4), for the one hash
 * the WebSocket handshake needs: Sec-WebSocket-Accept is
 * base64(SHA-1(key + GUID)) over 60 bytes. Written here rather than asked
 * of libcrypto because OpenSSL 3's EVP layer loads its provider and
 * configuration on the first digest: 2 MiB of libcrypto paged into a
 * plain ws:// server that never uses TLS (bench/README.md, "idle"), plus
 * an allocated context per handshake. SHA-1 is used here only for that
 * RFC 6455 value, never for security. */
#ifndef DX_CORE_SHA1_H
#define DX_CORE_SHA1_H

#include <stddef.h>
#include <stdint.h>

typedef struct dx__sha1 {
    uint32_t h[5];
    uint64_t len; /* bytes hashed so far */
    uint8_t block[64];
    size_t fill; /* bytes in block */
} dx__sha1;

void dx__sha1_init(dx__sha1 *s);
void dx__sha1_update(dx__sha1 *s, const void *data, size_t len);
void dx__sha1_final(dx__sha1 *s, uint8_t out[20]);

/* Writes the base64 of `len` bytes and a NUL into `out`, which holds
 * 4 * ((len + 2) / 3) + 1 bytes. Returns the length written. */
size_t dx__base64(char *out, const uint8_t *in, size_t len);

#endif

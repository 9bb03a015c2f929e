/* For the CLI's readers of the session transport's event streams
 * (bench_http.c, connect_http.c): their data lines are standard base64. */
#ifndef DX_CLI_SSE_H
#define DX_CLI_SSE_H

#include <stddef.h>
#include <stdint.h>

/* Decodes `n` characters of padded standard base64 at `s` into `out` (room
 * for n / 4 * 3 + 3 bytes): the length, or -1 on a character outside the
 * alphabet. Stops at the first '='. */
long dx_cli_b64_decode(const char *s, size_t n, uint8_t *out);

#endif

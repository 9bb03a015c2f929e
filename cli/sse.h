/* For the CLI's two clients of the session transport (bench_http.c,
 * connect_http.c): the event streams' data lines are standard base64, and
 * the answers' offsets and sequence numbers are decimal headers. */
#ifndef DX_CLI_SSE_H
#define DX_CLI_SSE_H

#include <stddef.h>
#include <stdint.h>

#include <duplex/http.h>

/* The header `name` of `h` (n of them) as a decimal number of at most 19
 * digits and nothing else: 1 with *out set, 0 when absent or not such a
 * number (an answer with "X-Duplex-Offset: 12abc" has no offset). */
int dx_cli_header_u64(const dx_http_header *h, size_t n, const char *name, uint64_t *out);

/* Decodes `n` characters of padded standard base64 at `s` into `out` (room
 * for n / 4 * 3 + 3 bytes): the length, or -1 on a character outside the
 * alphabet. Stops at the first '='. */
long dx_cli_b64_decode(const char *s, size_t n, uint8_t *out);

#endif

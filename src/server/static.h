/* Internal: static files from a directory (static.c), a route of
 * request.c, above respond.c. */
#ifndef DX_SERVER_STATIC_H
#define DX_SERVER_STATIC_H

#include <stddef.h>

#include "server/state.h"

/* Answers GET/HEAD for `path` (raw target path) from the root. Returns 1
 * when it answered. */
int dx__static_serve(dx_server_conn *c, const char *method, size_t method_len, const char *path,
                     size_t path_len, const dx_http_header *h, size_t nh);

#endif

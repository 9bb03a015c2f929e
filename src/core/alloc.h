/* Internal: every allocation in duplex goes through these, so tests can
 * swap the allocator (dx_set_allocator) and fail each allocation in turn. */
#ifndef DX_CORE_ALLOC_H
#define DX_CORE_ALLOC_H

#include <duplex/common.h>

/* Exported from libduplex.so (DX_API) for libduplex_chat.so alone, which
 * allocates through the same hook: internal, with no promise beyond the
 * same version of both (duplex-chat.pc requires exactly that). */
DX_API void *dx__malloc(size_t size);
DX_API void *dx__calloc(size_t n, size_t size);
DX_API void *dx__realloc(void *ptr, size_t size);
DX_API void dx__free(void *ptr);
DX_API char *dx__strndup(const char *s, size_t n);

#endif

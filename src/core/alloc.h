/* Internal: every allocation in duplex goes through these, so tests can
 * swap the allocator (dx_set_allocator) and fail each allocation in turn. */
#ifndef DX_CORE_ALLOC_H
#define DX_CORE_ALLOC_H

#include <duplex/common.h>

void *dx__malloc(size_t size);
void *dx__calloc(size_t n, size_t size);
void *dx__realloc(void *ptr, size_t size);
void dx__free(void *ptr);
char *dx__strndup(const char *s, size_t n);

#endif

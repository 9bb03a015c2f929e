/* Internal: a fast path for parsing the common request — one JSON object
 * whose members are strings with no escape, integers of up to 18 digits,
 * true, false or null (a `send`, a `read`, a `typing`...) — into the same
 * jansson value that json_loadb(JSON_REJECT_DUPLICATES) would build, in
 * a fraction of its instructions (jansson lexes through a character
 * stream, a string buffer per token).
 *
 * It accepts only what it can prove valid and returns NULL for anything
 * else (an escape, a nested value, a real, a duplicate key, bad UTF-8,
 * bad JSON, out of memory): the caller then parses with jansson, which
 * says what is wrong. So it never changes what is accepted or what the
 * error says; it only skips jansson when jansson would agree. */
#ifndef DX_CHAT_JSONR_H
#define DX_CHAT_JSONR_H

#include <jansson.h>
#include <stddef.h>

/* The object in s[0, n) (a new reference), or NULL: use json_loadb. */
json_t *dx__jsonr_flat(const char *s, size_t n);

#endif

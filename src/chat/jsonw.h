/* Internal: a small JSON writer for the messages the engine sends on its
 * hot path (a send's `ack` and its `deliver`), which have a fixed shape:
 * writing them straight into a reused buffer costs a fraction of building
 * jansson objects and dumping them (an allocation per value, snprintf per
 * integer). The bytes are the same as json_dumps(JSON_COMPACT) gives for
 * the same members in the same order: strings escaped as jansson escapes
 * them (\" \\ \b \f \n \r \t, other bytes below 0x20 as \u00XX with
 * upper-case hex, everything else, UTF-8 included, as it is), integers
 * in decimal. Strings must be valid UTF-8 already (every string here was
 * validated on its way in: by jansson, or as an ASCII identifier). */
#ifndef DX_CHAT_JSONW_H
#define DX_CHAT_JSONW_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* A growable buffer: zero-initialise it, append, read p[0, len), then
 * dx__jsonw_reset to write the next message into the same memory, or
 * dx__jsonw_free. Appends never fail one by one: out of memory sets
 * `oom`, which stays set (and the appends do nothing) until the reset;
 * check it once at the end. */
typedef struct dx__jsonw {
    char *p;
    size_t len, cap;
    int oom;
} dx__jsonw;

/* Empties `w` and clears oom; the memory is kept for the next message. */
void dx__jsonw_reset(dx__jsonw *w);
void dx__jsonw_free(dx__jsonw *w);
/* Appends `n` bytes as they are (JSON punctuation, names known to need no
 * escape: keep such literals to ASCII without " or \). */
void dx__jsonw_raw(dx__jsonw *w, const char *s, size_t n);
/* Appends a string literal: "RAW" with no escape needed. */
#define dx__jsonw_lit(w, lit) dx__jsonw_raw((w), (lit), sizeof(lit) - 1)
/* Appends the n bytes of `s` as a quoted, escaped JSON string. */
void dx__jsonw_str(dx__jsonw *w, const char *s, size_t n);
/* Appends `v` in decimal (INT64_MIN included). */
void dx__jsonw_int(dx__jsonw *w, int64_t v);
/* Appends a jansson integer or string as json_dumps would (the request
 * ids the engine echoes); any other type appends null. */
void dx__jsonw_scalar(dx__jsonw *w, const json_t *v);

#endif

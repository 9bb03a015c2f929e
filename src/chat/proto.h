/* Internal: the small pieces of docs/chat-protocol.md shared by the engine
 * and the service — version, envelopes, identifier syntax, tokens. */
#ifndef DX_CHAT_PROTO_H
#define DX_CHAT_PROTO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define DX_CHAT_PROTO 1

/* {"v":1,"type":type}, or NULL when out of memory. */
json_t *dx__chat_env(const char *type);

enum dx__chat_conv_kind {
    DX_CHAT_CONV_BAD = 0,    /* not a conversation id */
    DX_CHAT_CONV_DIRECT = 1, /* d:A:B with the caller one of them */
    DX_CHAT_CONV_OTHERS = 2, /* d:A:B between two others */
    DX_CHAT_CONV_ROOM = 3,   /* g:NAME */
};
/* Classifies `conv` for the user `uid`. */
enum dx__chat_conv_kind dx__chat_conv_kind(const char *conv, const char *uid);
/* Splits a valid direct conversation id into its two uids (33 bytes each). */
void dx__chat_direct_uids(const char *conv, char *a, char *b);
/* 1 when `cid` is 1-64 printable ASCII characters (0x21-0x7e). */
int dx__chat_valid_cid(const char *cid);

#endif

/* Internal: the small pieces of docs/chat-protocol.md shared by the engine
 * and the service — version, envelopes, identifier syntax, tokens. */
#ifndef DX_CHAT_PROTO_H
#define DX_CHAT_PROTO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define DX_CHAT_PROTO 1
/* The revision of version 1 this server speaks (welcome's "rev"). */
#define DX_CHAT_REV 2

/* {"v":1,"type":type}, or NULL when out of memory. */
json_t *dx__chat_env(const char *type);

enum dx__chat_conv_kind {
    DX_CHAT_CONV_BAD = 0,    /* not a conversation id */
    DX_CHAT_CONV_DIRECT = 1, /* d:A:B with the caller one of them */
    DX_CHAT_CONV_OTHERS = 2, /* d:A:B between two others */
    DX_CHAT_CONV_ROOM = 3,   /* g:NAME */
    DX_CHAT_CONV_GROUP = 4,  /* p:ID, ID 16 of [a-z0-9] */
};
#define DX_CHAT_GROUP_ID_LEN 16
/* Classifies `conv` for the user `uid`. */
enum dx__chat_conv_kind dx__chat_conv_kind(const char *conv, const char *uid);
/* Fills `conv` (at least 19 bytes) with a new group id "p:" and 16 of
 * [a-z0-9] from the CSPRNG. 0 or DX_EIO. */
int dx__chat_group_id(char *conv);
/* Splits a valid direct conversation id into its two uids (33 bytes each). */
void dx__chat_direct_uids(const char *conv, char *a, char *b);
/* 1 when `cid` is 1-64 printable ASCII characters (0x21-0x7e). */
int dx__chat_valid_cid(const char *cid);

#endif

/* Identifier syntax of the chat protocol (docs/chat-protocol.md), and the
 * hand-written ack and deliver of a send (jsonw.h). */
#include <string.h>

#include <duplex/common.h>

#include "chat/engine_int.h"
#include "chat/proto.h"

json_t *dx__chat_env(const char *type) {
    return json_pack("{s:i, s:s}", "v", DX_CHAT_PROTO, "type", type);
}

int dx__chat_valid_uid(const char *s, size_t len) {
    if (len < 1 || len > DX_CHAT_UID_MAX) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int dx__chat_valid_cid(const char *cid) {
    size_t n = strlen(cid);
    if (n < 1 || n > 64) return 0;
    for (size_t i = 0; i < n; i++)
        if (cid[i] < 0x21 || cid[i] > 0x7e) return 0;
    return 1;
}

enum dx__chat_conv_kind dx__chat_conv_kind(const char *conv, const char *uid) {
    if (conv[0] == 'p' && conv[1] == ':') {
        size_t n = strlen(conv + 2);
        if (n != DX_CHAT_GROUP_ID_LEN) return DX_CHAT_CONV_BAD;
        for (size_t i = 0; i < n; i++) {
            char c = conv[2 + i];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return DX_CHAT_CONV_BAD;
        }
        return DX_CHAT_CONV_GROUP;
    }
    if (conv[0] == 'g' && conv[1] == ':')
        return dx__chat_valid_uid(conv + 2, strlen(conv + 2)) ? DX_CHAT_CONV_ROOM
                                                              : DX_CHAT_CONV_BAD;
    if (conv[0] != 'd' || conv[1] != ':') return DX_CHAT_CONV_BAD;
    const char *a = conv + 2, *colon = strchr(a, ':');
    if (!colon) return DX_CHAT_CONV_BAD;
    const char *b = colon + 1;
    size_t na = (size_t)(colon - a), nb = strlen(b);
    if (!dx__chat_valid_uid(a, na) || !dx__chat_valid_uid(b, nb)) return DX_CHAT_CONV_BAD;
    /* Byte order, and never a conversation with oneself. */
    int cmp = memcmp(a, b, na < nb ? na : nb);
    if (cmp > 0 || (cmp == 0 && na >= nb)) return DX_CHAT_CONV_BAD;
    size_t nu = strlen(uid);
    if ((na == nu && !memcmp(a, uid, nu)) || (nb == nu && !memcmp(b, uid, nu)))
        return DX_CHAT_CONV_DIRECT;
    return DX_CHAT_CONV_OTHERS;
}

int dx__chat_group_id(char *conv) {
    static const char ALPHA[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    uint8_t buf[64];
    size_t n = 0, used = sizeof buf;
    conv[0] = 'p';
    conv[1] = ':';
    while (n < DX_CHAT_GROUP_ID_LEN) {
        if (used == sizeof buf) {
            if (dx_random(buf, sizeof buf) < 0) return DX_EIO;
            used = 0;
        }
        /* 252 = 7 * 36: bytes above it are dropped, so that every
         * character is equally likely (about 82.7 bits in all). */
        uint8_t b = buf[used++];
        if (b < 252) conv[2 + n++] = ALPHA[b % 36];
    }
    conv[2 + n] = 0;
    return 0;
}

void dx__chat_direct_uids(const char *conv, char *a, char *b) {
    const char *p = conv + 2, *colon = strchr(p, ':');
    size_t na = (size_t)(colon - p);
    memcpy(a, p, na);
    a[na] = 0;
    strcpy(b, colon + 1);
}

/* ---- the ack and deliver of a send (engine_int.h) ---------------------- */

/* The envelopes below say so. */
_Static_assert(DX_CHAT_PROTO == 1, "\"v\":1 is written as a literal");

void dx__chat_ack_write(dx__jsonw *w, const json_t *id, const dx__chat_msg *m, int dup) {
    dx__jsonw_lit(w, "{\"v\":1,\"type\":\"ack\"");
    if (id) {
        dx__jsonw_lit(w, ",\"id\":");
        dx__jsonw_scalar(w, id);
    }
    dx__jsonw_lit(w, ",\"conv\":");
    dx__jsonw_str(w, m->conv, strlen(m->conv));
    dx__jsonw_lit(w, ",\"cid\":");
    dx__jsonw_str(w, m->cid, strlen(m->cid));
    dx__jsonw_lit(w, ",\"mid\":");
    dx__jsonw_int(w, m->mid);
    dx__jsonw_lit(w, ",\"seq\":");
    dx__jsonw_int(w, m->seq);
    dx__jsonw_lit(w, ",\"ts\":");
    dx__jsonw_int(w, m->ts);
    if (dup)
        dx__jsonw_lit(w, ",\"dup\":true}");
    else
        dx__jsonw_lit(w, "}");
}

void dx__chat_deliver_write(dx__jsonw *w, const dx__chat_msg *m) {
    dx__jsonw_lit(w, "{\"v\":1,\"type\":\"deliver\",\"msg\":{\"conv\":");
    dx__jsonw_str(w, m->conv, strlen(m->conv));
    dx__jsonw_lit(w, ",\"seq\":");
    dx__jsonw_int(w, m->seq);
    dx__jsonw_lit(w, ",\"mid\":");
    dx__jsonw_int(w, m->mid);
    dx__jsonw_lit(w, ",\"cid\":");
    dx__jsonw_str(w, m->cid, strlen(m->cid));
    dx__jsonw_lit(w, ",\"from\":");
    dx__jsonw_str(w, m->from, strlen(m->from));
    dx__jsonw_lit(w, ",\"text\":");
    dx__jsonw_str(w, m->text, strlen(m->text));
    dx__jsonw_lit(w, ",\"ts\":");
    dx__jsonw_int(w, m->ts);
    dx__jsonw_lit(w, "}}");
}

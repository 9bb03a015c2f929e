/* Signed chat tokens: "UID.EXPIRES.SIG", SIG = base64url(HMAC-SHA256). */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#include <duplex/chat.h>

#include "chat/engine.h"

#define SIG_LEN 43 /* base64url of 32 bytes, unpadded */

static void b64url(const unsigned char *in, size_t n, char *out) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[o++] = A[(v >> 18) & 63];
        out[o++] = A[(v >> 12) & 63];
        if (i + 1 < n) out[o++] = A[(v >> 6) & 63];
        if (i + 2 < n) out[o++] = A[v & 63];
    }
    out[o] = 0;
}

static int sign(const void *secret, size_t slen, const char *msg, size_t n,
                char sig[SIG_LEN + 1]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!HMAC(EVP_sha256(), secret, (int)slen, (const unsigned char *)msg, n, md, &mdlen) ||
        mdlen != 32)
        return DX_EINVAL;
    b64url(md, 32, sig);
    return 0;
}

int dx_chat_token(const void *secret, size_t secret_len, const char *uid, int64_t expires,
                  char *out, size_t cap) {
    if (!secret || !secret_len || !uid || !dx__chat_valid_uid(uid, strlen(uid)) || expires < 0)
        return DX_EINVAL;
    char msg[64], sig[SIG_LEN + 1];
    int n = snprintf(msg, sizeof msg, "%s.%lld", uid, (long long)expires);
    if (sign(secret, secret_len, msg, (size_t)n, sig) < 0) return DX_EINVAL;
    int total = snprintf(out, cap, "%s.%s", msg, sig);
    return total < 0 || (size_t)total >= cap ? DX_ENOSPC : total;
}

int dx_chat_token_check(const void *secret, size_t secret_len, const char *token, size_t len,
                        int64_t now, char *uid, size_t uid_cap) {
    if (!secret || !secret_len || !token || len > 127 || uid_cap < DX_CHAT_UID_MAX + 1)
        return DX_EPOLICY;
    const char *dot1 = memchr(token, '.', len);
    if (!dot1) return DX_EPOLICY;
    const char *dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
    if (!dot2) return DX_EPOLICY;
    size_t nuid = (size_t)(dot1 - token), nexp = (size_t)(dot2 - dot1 - 1);
    size_t nsig = len - (size_t)(dot2 + 1 - token);
    if (!dx__chat_valid_uid(token, nuid) || nexp < 1 || nexp > 18 || nsig != SIG_LEN)
        return DX_EPOLICY;
    int64_t exp = 0;
    for (size_t i = 0; i < nexp; i++) {
        char c = dot1[1 + i];
        if (c < '0' || c > '9') return DX_EPOLICY;
        exp = exp * 10 + (c - '0');
    }
    char sig[SIG_LEN + 1];
    if (sign(secret, secret_len, token, (size_t)(dot2 - token), sig) < 0) return DX_EPOLICY;
    if (CRYPTO_memcmp(sig, dot2 + 1, SIG_LEN) != 0) return DX_EPOLICY;
    if (exp <= now) return DX_EPOLICY;
    memcpy(uid, token, nuid);
    uid[nuid] = 0;
    return 0;
}

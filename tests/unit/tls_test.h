/* Test support shared by the tests of TLS and of the transport (test_tls,
 * test_sock): a self-signed certificate made with the OpenSSL API, and a
 * connected pair of non-blocking loopback TCP sockets. Header-only, like
 * test.h (include it after test.h). */
#ifndef DX_TEST_TLS_H
#define DX_TEST_TLS_H

#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "io/net.h"

static inline EVP_PKEY *dx_t_make_key(void) {
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

static inline int dx_t_add_ext(X509 *x, int nid, const char *value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext) return 0;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/* Writes the certificate `x`, or the private key when `x` is NULL. */
static inline int dx_t_write_pem(const char *path, EVP_PKEY *key, X509 *x) {
    FILE *f = fopen(path, "w");
    if (!f) return 0;
    int ok = x ? PEM_write_X509(f, x) : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    return fclose(f) == 0 && ok;
}

/* A self-signed certificate for CN and DNS name "localhost" and IP
 * 127.0.0.1, valid from an hour ago for a day, and its key. 1 on success. */
static inline int dx_t_make_cert(const char *cert_path, const char *key_path) {
    EVP_PKEY *key = dx_t_make_key();
    X509 *x = X509_new();
    int ok = key && x;
    ok = ok && X509_set_version(x, 2);
    ok = ok && ASN1_INTEGER_set(X509_get_serialNumber(x), (long)time(NULL));
    ok = ok && X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    ok = ok && X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    ok = ok && X509_set_pubkey(x, key);
    X509_NAME *name = ok ? X509_get_subject_name(x) : NULL;
    ok = ok && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                          (const unsigned char *)"localhost", -1, -1, 0);
    ok = ok && X509_set_issuer_name(x, name);
    ok = ok && dx_t_add_ext(x, NID_basic_constraints, "critical,CA:TRUE");
    ok = ok && dx_t_add_ext(x, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
    ok = ok && X509_sign(x, key, EVP_sha256()) > 0;
    ok = ok && dx_t_write_pem(cert_path, NULL, x) && dx_t_write_pem(key_path, key, NULL);
    X509_free(x);
    EVP_PKEY_free(key);
    return ok;
}

/* A connected pair of non-blocking loopback TCP sockets (client, accepted
 * server side). `server_rcvbuf`, when not 0, is the receive buffer of the
 * server side, set on the listener before the connection comes, since
 * shrinking it on an established connection can stall TCP (the window
 * already advertised). 1 on success. */
static inline int dx_t_tcp_pair(int *cfd, int *sfd, int server_rcvbuf) {
    int lfd = dx__listen("127.0.0.1", 0, 4, 0);
    if (lfd < 0) return 0;
    if (server_rcvbuf) setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &server_rcvbuf, sizeof server_rcvbuf);
    dx_addr addr;
    int c = -1, s = -1;
    if (dx__resolve("127.0.0.1", dx__local_port(lfd), &addr) == 0) c = dx__connect(&addr);
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    if (c >= 0 && poll(&p, 1, 5000) == 1) s = dx__accept(lfd, NULL);
    close(lfd);
    if (c < 0 || s < 0) {
        if (c >= 0) close(c);
        if (s >= 0) close(s);
        return 0;
    }
    *cfd = c;
    *sfd = s;
    return 1;
}

#endif

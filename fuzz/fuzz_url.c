/* The WebSocket URL parser of the client (src/client/url.c). A URL it
 * accepts must come out well-formed (port in range, host and target
 * without spaces, control bytes or non-ASCII), and its normalized form
 * (href) must parse again to exactly the same URL: normalizing twice
 * changes nothing. */
#include <duplex/url.h>

#include "fuzz.h"

static void check_clean(const char *s, int allow_empty) {
    FZ_CHECK(s != NULL);
    FZ_CHECK(allow_empty || *s);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        FZ_CHECK(*p > 0x20 && *p < 0x7f && *p != '#');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* No configuration: the whole input is the URL, in a block of exactly
     * its size (it need not be NUL-terminated). */
    uint8_t *s = fz_dup(data, size);
    dx_url u;
    const char *why = NULL;
    int rc = dx_url_parse((const char *)s, size, &u, &why);
    free(s);
    if (rc != 0) {
        FZ_CHECK(rc == DX_EADDR || rc == DX_ENOMEM);
        FZ_CHECK(rc != DX_EADDR || why != NULL);
        dx_url_free(&u);
        return 0;
    }
    FZ_CHECK(u.port >= 1 && u.port <= 65535);
    FZ_CHECK(u.default_port == (u.port == (u.secure ? 443 : 80)));
    check_clean(u.host, 0);
    FZ_CHECK(strlen(u.host) <= DX_URL_HOST_MAX);
    check_clean(u.host_header, 0);
    check_clean(u.target, 0);
    FZ_CHECK(u.target[0] == '/');
    check_clean(u.href, 0);
    FZ_CHECK(!strncmp(u.href, u.secure ? "wss://" : "ws://", u.secure ? 6 : 5));

    /* Escaping can make href up to three times longer than the input, so
     * only an href within the length limit must parse again. */
    dx_url again;
    rc = dx_url_parse(u.href, strlen(u.href), &again, &why);
    if (strlen(u.href) > DX_URL_MAX) {
        FZ_CHECK(rc == DX_EADDR);
        dx_url_free(&u);
        return 0;
    }
    FZ_CHECK(rc == 0);
    FZ_CHECK(again.secure == u.secure && again.port == u.port && again.ipv6 == u.ipv6);
    FZ_CHECK(again.default_port == u.default_port);
    FZ_CHECK(!strcmp(again.host, u.host));
    FZ_CHECK(!strcmp(again.host_header, u.host_header));
    FZ_CHECK(!strcmp(again.target, u.target));
    FZ_CHECK(!strcmp(again.href, u.href));
    dx_url_free(&again);
    dx_url_free(&u);
    dx_url_free(&u); /* safe on a freed one */
    return 0;
}

/* Test support shared by the tests of name resolution off the loop
 * (test_client, test_redis): a stand-in for getaddrinfo on the helper
 * threads of src/io/dns.c, and a wait for those helpers to finish.
 * Header-only, like test.h (include it after test.h). */
#ifndef DX_TEST_DNS_H
#define DX_TEST_DNS_H

#include <netdb.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "io/dns.h"

/* "slow.test" answers 127.0.0.1 after gai_delay_ms; any other name is
 * unknown at once. Set dx__getaddrinfo = fake_gai to use it. */
static int gai_delay_ms;
static atomic_int gai_calls, gai_returned;

static int fake_gai(const char *host, const char *port, const struct addrinfo *hints,
                    struct addrinfo **res) {
    atomic_fetch_add(&gai_calls, 1);
    int rc = EAI_NONAME;
    if (!strcmp(host, "slow.test")) {
        usleep((useconds_t)gai_delay_ms * 1000);
        rc = getaddrinfo("127.0.0.1", port, hints, res);
    }
    atomic_fetch_add(&gai_returned, 1);
    return rc;
}

/* Waits (up to 3 s) until every helper started so far has returned, so
 * that the next test starts clean and LeakSanitizer sees freed requests. */
static inline void gai_settle(void) {
    for (int i = 0; i < 300 && atomic_load(&gai_returned) < atomic_load(&gai_calls); i++)
        usleep(10000);
    usleep(20000); /* the helper's own free, after its getaddrinfo returned */
    CHECK_EQ_INT(atomic_load(&gai_returned), atomic_load(&gai_calls));
}

#endif

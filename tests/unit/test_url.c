/* Tests for WebSocket URL parsing (src/client/url.c). */
#include <sys/mman.h>
#include <unistd.h>

#include <duplex/url.h>
#include "test.h"

/* Parses `s` and checks every output; NULL expectations are not checked. */
static void ok(const char *s, int secure, int port, const char *host, const char *host_header,
               const char *target, const char *href) {
    dx_url u;
    const char *why = NULL;
    int rc = dx_url_parse(s, strlen(s), &u, &why);
    if (rc != 0) {
        fprintf(stderr, "url '%s': unexpected error %d (%s)\n", s, rc, why ? why : "");
        CHECK_EQ_INT(rc, 0);
        return;
    }
    CHECK_EQ_INT(u.secure, secure);
    CHECK_EQ_INT(u.port, port);
    int good = !strcmp(u.host, host) && !strcmp(u.host_header, host_header) &&
               !strcmp(u.target, target) && (!href || !strcmp(u.href, href));
    if (!good)
        fprintf(stderr, "url '%s': got host '%s' hh '%s' target '%s' href '%s'\n", s, u.host,
                u.host_header, u.target, u.href);
    CHECK(good);
    dx_url_free(&u);
    CHECK(u.mem == NULL);
}

static void bad(const char *s, const char *why_part) {
    dx_url u;
    const char *why = NULL;
    int rc = dx_url_parse(s, strlen(s), &u, &why);
    if (rc != DX_EADDR) fprintf(stderr, "url '%s': expected DX_EADDR, got %d\n", s, rc);
    CHECK_EQ_INT(rc, DX_EADDR);
    CHECK(u.mem == NULL);
    if (why_part && (!why || !strstr(why, why_part))) {
        fprintf(stderr, "url '%s': reason '%s' lacks '%s'\n", s, why ? why : "(null)", why_part);
        CHECK(0);
    }
    dx_url_free(&u); /* safe after a failure */
}

static void test_basic(void) {
    ok("ws://example.com", 0, 80, "example.com", "example.com", "/", "ws://example.com/");
    ok("ws://example.com/", 0, 80, "example.com", "example.com", "/", "ws://example.com/");
    ok("wss://example.com/chat", 1, 443, "example.com", "example.com", "/chat",
       "wss://example.com/chat");
    ok("ws://example.com:8080/chat?uid=007&x=1", 0, 8080, "example.com", "example.com:8080",
       "/chat?uid=007&x=1", "ws://example.com:8080/chat?uid=007&x=1");
    ok("ws://h?x=1", 0, 80, "h", "h", "/?x=1", "ws://h/?x=1");
    ok("ws://h:9/?", 0, 9, "h", "h:9", "/?", NULL);
    ok("ws://localhost:65535/a/b/c", 0, 65535, "localhost", "localhost:65535", "/a/b/c", NULL);
    ok("ws://h:1", 0, 1, "h", "h:1", "/", NULL);
    ok("ws://my_host-1.example:80/", 0, 80, "my_host-1.example", "my_host-1.example", "/", NULL);
}

static void test_default_ports(void) {
    /* An explicit default port is dropped from Host and href, as browsers do. */
    ok("ws://h:80/", 0, 80, "h", "h", "/", "ws://h/");
    ok("wss://h:443/", 1, 443, "h", "h", "/", "wss://h/");
    ok("wss://h:80/", 1, 80, "h", "h:80", "/", "wss://h:80/");
    ok("ws://h:443/", 0, 443, "h", "h:443", "/", "ws://h:443/");
    ok("ws://h:/", 0, 80, "h", "h", "/", "ws://h/"); /* empty port: the default */
    ok("ws://h:08080/", 0, 8080, "h", "h:8080", "/", NULL);
}

static void test_schemes(void) {
    ok("WS://Example.COM/Path", 0, 80, "example.com", "example.com", "/Path",
       "ws://example.com/Path"); /* scheme and host lower-cased, path kept */
    ok("WsS://h/", 1, 443, "h", "h", "/", "wss://h/");
    ok("http://h/x", 0, 80, "h", "h", "/x", "ws://h/x");
    ok("https://h:8443/x", 1, 8443, "h", "h:8443", "/x", "wss://h:8443/x");
    bad("ftp://h/", "scheme");
    bad("wsx://h/", "scheme");
    bad("w://h/", "scheme");
    bad("://h/", "scheme");
    bad("h:80/", "scheme");
    bad("example.com", "scheme");
    bad("/path", "scheme");
    bad("ws:h/", "//");
    bad("ws:/h/", "//");
}

static void test_ipv4(void) {
    ok("ws://127.0.0.1:8080/", 0, 8080, "127.0.0.1", "127.0.0.1:8080", "/", "ws://127.0.0.1:8080/");
    ok("wss://10.0.0.1/", 1, 443, "10.0.0.1", "10.0.0.1", "/", NULL);
}

static void test_ipv6(void) {
    ok("ws://[::1]:8080/", 0, 8080, "::1", "[::1]:8080", "/", "ws://[::1]:8080/");
    ok("ws://[::1]/", 0, 80, "::1", "[::1]", "/", "ws://[::1]/");
    ok("wss://[2001:DB8::1]:443/x", 1, 443, "2001:db8::1", "[2001:db8::1]", "/x",
       "wss://[2001:db8::1]/x");
    ok("ws://[::ffff:127.0.0.1]:9/", 0, 9, "::ffff:127.0.0.1", "[::ffff:127.0.0.1]:9", "/", NULL);
    ok("ws://[::1]?q", 0, 80, "::1", "[::1]", "/?q", NULL);
    dx_url u;
    REQUIRE(dx_url_parse("ws://[::1]:1/", 13, &u, NULL) == 0);
    CHECK_EQ_INT(u.ipv6, 1);
    dx_url_free(&u);
    bad("ws://[::1/", "IPv6");
    bad("ws://[]/", "IPv6");
    bad("ws://[::g]/", "IPv6");
    bad("ws://[1:2:3]/", "IPv6");
    bad("ws://[fe80::1%25eth0]/", "IPv6"); /* zone ids are refused */
    bad("ws://[::1]x/", "after IPv6");
    bad("ws://::1/", "host");
}

static void test_ports(void) {
    bad("ws://h:0/", "port");
    bad("ws://h:65536/", "port");
    bad("ws://h:99999999999999999999/", "port");
    bad("ws://h:-1/", "port");
    bad("ws://h:8a/", "port");
    bad("ws://h: 80/", "port");
    bad("ws://[::1]:0/", "port");
}

static void test_refused_parts(void) {
    bad("ws://user@h/", "user");
    bad("ws://user:pass@h:80/", "user");
    bad("ws://h/#frag", "fragment");
    bad("ws://h/path#", "fragment");
    bad("ws://h#x", "fragment");
    bad("ws://h/a?b#c", "fragment");
    bad("ws:///path", "empty host");
    bad("ws://", "empty host");
    bad("ws://:80/", "empty host");
    bad("ws://h\tx/", "control");
    bad("ws://h/a\nb", "control");
    bad("ws://h/a\x7f", "control");
    bad("ws://ho st/", "host");
    bad("ws://h%41/", "host");
    bad("ws://h\\x/", "host");
    bad("", "empty");
    bad("   ", "empty");
}

static void test_target_escapes(void) {
    /* Spaces and bytes a browser would escape are percent-encoded; existing
     * escapes are left alone. */
    ok("ws://h/a b", 0, 80, "h", "h", "/a%20b", "ws://h/a%20b");
    ok("ws://h/?q=\"<x>\"`", 0, 80, "h", "h", "/?q=%22%3Cx%3E%22%60", NULL);
    ok("ws://h/caf\xc3\xa9", 0, 80, "h", "h", "/caf%C3%A9", NULL);
    ok("ws://h/%23", 0, 80, "h", "h", "/%23", NULL);
    ok("ws://h/a/../b;c=d", 0, 80, "h", "h", "/a/../b;c=d", NULL);
    /* Spaces around the whole URL are dropped. */
    ok("  ws://h/x \t", 0, 80, "h", "h", "/x", "ws://h/x");
}

static void test_limits(void) {
    char host[300];
    memset(host, 'a', sizeof host);
    char url[400];
    snprintf(url, sizeof url, "ws://%.*s/", 255, host);
    dx_url u;
    CHECK_EQ_INT(dx_url_parse(url, strlen(url), &u, NULL), 0);
    dx_url_free(&u);
    snprintf(url, sizeof url, "ws://%.*s/", 256, host);
    bad(url, "too long");

    size_t n = DX_URL_MAX + 1;
    char *big = malloc(n + 1);
    REQUIRE(big);
    memcpy(big, "ws://h/", 7);
    memset(big + 7, 'x', n - 7);
    big[n] = 0;
    bad(big, "too long");
    big[n - 1] = 0; /* exactly DX_URL_MAX */
    CHECK_EQ_INT(dx_url_parse(big, n - 1, &u, NULL), 0);
    CHECK_EQ_INT(strlen(u.target), n - 1 - 6);
    dx_url_free(&u);
    /* The worst growth: every target byte escaped. */
    memset(big + 7, ' ', n - 1 - 7 - 1);
    big[n - 2] = 'z';
    CHECK_EQ_INT(dx_url_parse(big, n - 1, &u, NULL), 0);
    CHECK_EQ_INT(strlen(u.target), 1 + 3 * (n - 1 - 7 - 1) + 1);
    dx_url_free(&u);
    free(big);
}

static void test_not_nul_terminated(void) {
    /* The length bounds the parse: bytes after it are never read. The URL
     * ends right before a PROT_NONE page. */
    long pg = sysconf(_SC_PAGESIZE);
    char *mem =
        mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(mem != MAP_FAILED);
    REQUIRE(mprotect(mem + pg, (size_t)pg, PROT_NONE) == 0);
    static const char *const urls[] = {
        "ws://h:8080/chat?x=1", "ws://[::1]", "ws://h:", "ws://h", "ws://[::1", "wss://", NULL};
    for (int i = 0; urls[i]; i++) {
        size_t n = strlen(urls[i]);
        char *p = mem + pg - n;
        memcpy(p, urls[i], n);
        dx_url u;
        int rc = dx_url_parse(p, n, &u, NULL);
        CHECK(rc == 0 || rc == DX_EADDR);
        dx_url_free(&u);
    }
    /* A length shorter than the string: the rest is not part of it. */
    dx_url u;
    CHECK_EQ_INT(dx_url_parse("ws://h:80/abc", 8, &u, NULL), 0);
    CHECK(!strcmp(u.host_header, "h:8") && !strcmp(u.target, "/"));
    dx_url_free(&u);
    munmap(mem, (size_t)pg * 2);
}

static void test_args(void) {
    dx_url u;
    CHECK_EQ_INT(dx_url_parse(NULL, 3, &u, NULL), DX_EINVAL);
    CHECK_EQ_INT(dx_url_parse("ws://h/", 7, NULL, NULL), DX_EINVAL);
    dx_url_free(NULL);
}

/* Every allocation failing in turn: DX_ENOMEM, nothing leaked. */
static int fail_at, alloc_count;
static void *t_malloc(size_t n) {
    return ++alloc_count == fail_at ? NULL : malloc(n);
}
static void *t_realloc(void *p, size_t n) {
    return ++alloc_count == fail_at ? NULL : realloc(p, n);
}

static void test_alloc_failure(void) {
    dx_set_allocator(t_malloc, t_realloc, free);
    dx_url u;
    alloc_count = 0;
    fail_at = 1;
    CHECK_EQ_INT(dx_url_parse("ws://h/", 7, &u, NULL), DX_ENOMEM);
    CHECK(u.mem == NULL);
    fail_at = 0;
    CHECK_EQ_INT(dx_url_parse("ws://h/", 7, &u, NULL), 0);
    dx_url_free(&u);
    dx_set_allocator(NULL, NULL, NULL);
}

int main(void) {
    RUN(test_basic);
    RUN(test_default_ports);
    RUN(test_schemes);
    RUN(test_ipv4);
    RUN(test_ipv6);
    RUN(test_ports);
    RUN(test_refused_parts);
    RUN(test_target_escapes);
    RUN(test_limits);
    RUN(test_not_nul_terminated);
    RUN(test_args);
    RUN(test_alloc_failure);
    return TEST_DONE();
}

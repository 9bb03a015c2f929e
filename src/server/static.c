/* Static files from one directory: GET and HEAD, MIME types, ETag with
 * If-None-Match (304), Last-Modified, index.html for directories. The path
 * is percent-decoded, any ".." segment is refused, and the file is resolved
 * with realpath and must lie under the root (so symbolic links cannot lead
 * out of it either). */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <duplex/http.h>

#include "server/respond.h"
#include "server/static.h"

static const struct {
    const char *ext;
    const char *type;
} mime_types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"svg", "image/svg+xml"},
    {"ico", "image/x-icon"},
    {"webp", "image/webp"},
    {"wasm", "application/wasm"},
    {"txt", "text/plain; charset=utf-8"},
    {"woff2", "font/woff2"},
};

static const char *mime_of(const char *path) {
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return "application/octet-stream";
    for (size_t i = 0; i < sizeof mime_types / sizeof mime_types[0]; i++)
        if (!strcasecmp(dot + 1, mime_types[i].ext)) return mime_types[i].type;
    return "application/octet-stream";
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Decodes the request path into `out`. Returns 0, or -1 for a path that
 * must not be served: NUL, a backslash, or a "." or ".." segment. */
static int decode_path(const char *p, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch == '%') {
            int hi = i + 1 < n ? hexval(p[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(p[i + 2]) : -1;
            if (hi < 0 || lo < 0) return -1;
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        if (ch == 0 || ch == '\\') return -1;
        if (o + 1 >= cap) return -1;
        out[o++] = ch;
    }
    out[o] = 0;
    if (out[0] != '/') return -1;
    /* Refuse "." and ".." segments outright instead of normalising them. */
    for (char *seg = out; seg; seg = strchr(seg + 1, '/')) {
        const char *s = seg + 1;
        size_t len = strcspn(s, "/");
        if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.')) return -1;
    }
    return 0;
}

int dx__static_serve(dx_server_conn *c, const char *method, size_t method_len, const char *path,
                     size_t path_len, const dx_http_header *h, size_t nh) {
    const char *root = c->srv->static_root;
    int head = method_len == 4 && !memcmp(method, "HEAD", 4);
    int get = method_len == 3 && !memcmp(method, "GET", 3);
    char rel[PATH_MAX];
    if (decode_path(path, path_len, rel, sizeof rel) < 0) {
        (void)dx__req_error(c, 404, "not found", NULL);
        return 1;
    }
    char full[PATH_MAX * 2];
    int n = snprintf(full, sizeof full, "%s%s", root, rel);
    if (n < 0 || (size_t)n >= sizeof full - 16) {
        (void)dx__req_error(c, 404, "not found", NULL);
        return 1;
    }
    struct stat st;
    if (stat(full, &st) == 0 && S_ISDIR(st.st_mode)) {
        if (full[n - 1] != '/') full[n++] = '/';
        memcpy(full + n, "index.html", sizeof "index.html");
    }
    char *real = realpath(full, NULL);
    size_t rlen = strlen(root);
    if (!real || strncmp(real, root, rlen) != 0 || (real[rlen] != '/' && real[rlen] != 0) ||
        stat(real, &st) < 0 || !S_ISREG(st.st_mode)) {
        free(real);
        return 0; /* not a file of ours: the caller answers 404 */
    }
    if (!get && !head) {
        free(real);
        (void)dx__req_error(c, 405, "use GET or HEAD", "Allow: GET, HEAD\r\n");
        return 1;
    }
    char etag[64];
    snprintf(etag, sizeof etag, "\"%llx-%llx-%lx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec);
    char date[64];
    struct tm tm;
    gmtime_r(&st.st_mtim.tv_sec, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    char extra[256];
    snprintf(extra, sizeof extra, "ETag: %s\r\nLast-Modified: %s\r\nCache-Control: no-cache\r\n",
             etag, date);

    const dx_http_header *inm = dx_http_find(h, nh, "If-None-Match");
    if (inm) {
        /* A list of tags, or "*"; weak comparison as RFC 9110 asks. */
        size_t pos = 0;
        const char *tok;
        size_t tok_len;
        while (dx_http_next_token(inm->value, inm->value_len, &pos, &tok, &tok_len)) {
            if (tok_len > 2 && tok[0] == 'W' && tok[1] == '/') tok += 2, tok_len -= 2;
            if ((tok_len == 1 && tok[0] == '*') ||
                (tok_len == strlen(etag) && !memcmp(tok, etag, tok_len))) {
                free(real);
                (void)dx__req_respond(c, 304, NULL, extra, NULL, 0, 1);
                return 1;
            }
        }
    }
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    const char *type = mime_of(real);
    free(real);
    if (fd < 0) {
        (void)dx__req_error(c, 403, "forbidden", NULL);
        return 1;
    }
    (void)dx__req_respond_fd(c, 200, type, extra, fd, 0, (uint64_t)st.st_size, head);
    return 1;
}

/* The chat's store of files (src/chat/files.c) driven directly: uploads in
 * chunks, wrong offsets, the size limit (refused before anything is on
 * disk), a resume by a new session object (the prefix hashed again),
 * deduplication, type detection from the bytes (never from the name), names
 * that look like paths, tokens that belong to another user, sweeping,
 * unlink; then the download answer over a real server: headers, ETag/304,
 * Range/206/416, and dx_server_http_respond_file's refusals.
 * (tests/unit/test_chat_files.c tests the engine's side, src/chat/attach.c.) */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>

#include <duplex/server.h>

#include "chat/files.h"
#include "test.h"

static char root[256], dir[300];

static void make_root(void) {
    snprintf(root, sizeof root, "/tmp/dx-files-%d-XXXXXX", (int)getpid());
    if (!mkdtemp(root)) abort();
    snprintf(dir, sizeof dir, "%s/files", root);
}

static void remove_root(void) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
}

static dx__chat_files *open_files(uint64_t max) {
    const char *why = NULL;
    dx__chat_files *f = dx__chat_files_new(dir, max, &why);
    if (!f) fprintf(stderr, "files: %s\n", why);
    return f;
}

static void sha_hex(const void *data, size_t n, char out[65]) {
    uint8_t sum[32];
    unsigned len = 0;
    EVP_Digest(data, n, sum, &len, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", sum[i]);
}

/* Entries of a directory (not . and ..). */
static int count_entries(const char *path) {
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static int tmp_count(void) {
    char p[400];
    snprintf(p, sizeof p, "%s/tmp", dir);
    return count_entries(p);
}

static const char *type_of(json_t *j) {
    const char *t = json_string_value(json_object_get(j, "type"));
    return t ? t : "";
}

static const char *code_of(json_t *j) {
    const char *c = json_string_value(json_object_get(j, "code"));
    return c ? c : "";
}

static json_t *upload(dx__chat_files *f, const char *uid, const char *name, int64_t size,
                      const char *sha, const char *token) {
    json_t *req =
        json_pack("{s:s, s:s, s:I}", "type", "upload", "name", name, "size", (json_int_t)size);
    if (sha) json_object_set_new(req, "sha256", json_string(sha));
    if (token) json_object_set_new(req, "upload", json_string(token));
    json_t *r = dx__chat_files_upload(f, uid, req);
    json_decref(req);
    return r;
}

static json_t *chunk(dx__chat_files *f, const char *uid, const char *token, uint64_t off,
                     const void *data, size_t n) {
    uint8_t *m = malloc(24 + n + 1);
    for (int i = 0; i < 16; i++) {
        unsigned b = 0;
        sscanf(token + 2 * i, "%2x", &b);
        m[i] = (uint8_t)b;
    }
    for (int i = 0; i < 8; i++)
        m[16 + i] = (uint8_t)(off >> (56 - 8 * i));
    if (n) memcpy(m + 24, data, n);
    json_t *r = dx__chat_files_chunk(f, uid, m, 24 + n);
    free(m);
    return r;
}

/* Uploads `data` whole in chunks of `step`; the final reply. */
static json_t *upload_all(dx__chat_files *f, const char *uid, const char *name, const void *data,
                          size_t n, size_t step) {
    json_t *r = upload(f, uid, name, (int64_t)n, NULL, NULL);
    if (!r || strcmp(type_of(r), "upload")) return r;
    char tok[33];
    snprintf(tok, sizeof tok, "%s", json_string_value(json_object_get(r, "upload")));
    json_decref(r);
    r = NULL;
    for (size_t off = 0; off < n; off += step) {
        json_decref(r);
        r = chunk(f, uid, tok, off, (const char *)data + off, n - off < step ? n - off : step);
        if (!r || strcmp(type_of(r), off + step < n ? "upload_progress" : "uploaded")) return r;
    }
    return r;
}

static char *pattern(size_t n) {
    char *d = malloc(n);
    for (size_t i = 0; i < n; i++)
        d[i] = (char)(i * 7 + i / 251);
    return d;
}

static int file_equals(const char *id, const void *data, size_t n) {
    char p[400];
    snprintf(p, sizeof p, "%s/%s", dir, id);
    FILE *fp = fopen(p, "rb");
    if (!fp) return 0;
    char *got = malloc(n + 1);
    size_t k = fread(got, 1, n + 1, fp);
    fclose(fp);
    int ok = k == n && !memcmp(got, data, n);
    free(got);
    return ok;
}

/* ---- uploads ---------------------------------------------------------- */

static void in_chunks(void) {
    make_root();
    dx__chat_files *f = open_files(0);
    REQUIRE(f);
    size_t n = 1000000;
    char *d = pattern(n), sha[65];
    sha_hex(d, n, sha);
    json_t *r = upload(f, "alice", "big.bin", (int64_t)n, NULL, NULL);
    REQUIRE(r && !strcmp(type_of(r), "upload"));
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "offset")), 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "chunk")), 262144);
    char tok[33];
    snprintf(tok, sizeof tok, "%s", json_string_value(json_object_get(r, "upload")));
    CHECK_EQ_INT(strlen(tok), 32);
    json_decref(r);
    CHECK_EQ_INT(tmp_count(), 1);
    size_t off = 0, step = 262144;
    while (off < n) {
        size_t k = n - off < step ? n - off : step;
        r = chunk(f, "alice", tok, off, d + off, k);
        REQUIRE(r);
        off += k;
        if (off < n) {
            CHECK(!strcmp(type_of(r), "upload_progress"));
            CHECK_EQ_INT(json_integer_value(json_object_get(r, "offset")), off);
        } else {
            CHECK(!strcmp(type_of(r), "uploaded"));
            json_t *file = json_object_get(r, "file");
            CHECK(!strcmp(json_string_value(json_object_get(file, "id")), sha));
            CHECK(!strcmp(json_string_value(json_object_get(file, "name")), "big.bin"));
            CHECK_EQ_INT(json_integer_value(json_object_get(file, "size")), n);
            CHECK(!strcmp(json_string_value(json_object_get(file, "type")),
                          "application/octet-stream"));
            CHECK(!strcmp(json_string_value(json_object_get(r, "upload")), tok));
        }
        json_decref(r);
    }
    CHECK(file_equals(sha, d, n));
    CHECK_EQ_INT(tmp_count(), 0);
    CHECK_EQ_INT(dx__chat_files_owned(f, "alice", sha), 1);
    CHECK_EQ_INT(dx__chat_files_owned(f, "bob", sha), 0);
    int64_t size = 0;
    char type[DX_CHAT_FILE_TYPE_MAX];
    CHECK_EQ_INT(dx__chat_files_stat(f, sha, &size, type), 0);
    CHECK_EQ_INT(size, n);
    /* The token is spent. */
    r = chunk(f, "alice", tok, n, "x", 1);
    CHECK(r && !strcmp(code_of(r), "bad_field"));
    json_decref(r);
    free(d);
    dx__chat_files_free(f);
    remove_root();
}

static void wrong_offset(void) {
    make_root();
    dx__chat_files *f = open_files(0);
    REQUIRE(f);
    json_t *r = upload(f, "alice", "a.txt", 10, NULL, NULL);
    REQUIRE(r && !strcmp(type_of(r), "upload"));
    char tok[33];
    snprintf(tok, sizeof tok, "%s", json_string_value(json_object_get(r, "upload")));
    json_decref(r);
    r = chunk(f, "alice", tok, 0, "hello", 5);
    CHECK(r && !strcmp(type_of(r), "upload_progress"));
    json_decref(r);
    uint64_t bad[] = {0, 4, 6, 1000};
    for (size_t i = 0; i < 4; i++) {
        r = chunk(f, "alice", tok, bad[i], "xxxxx", 5);
        REQUIRE(r);
        CHECK(!strcmp(code_of(r), "bad_offset"));
        CHECK_EQ_INT(json_integer_value(json_object_get(r, "offset")), 5);
        CHECK(!strcmp(json_string_value(json_object_get(r, "upload")), tok));
        json_decref(r);
    }
    /* Past the size: refused, nothing written. */
    r = chunk(f, "alice", tok, 5, "world!", 6);
    CHECK(r && !strcmp(code_of(r), "too_large"));
    json_decref(r);
    /* A binary message too short to be a chunk: as in revision 1. */
    r = dx__chat_files_chunk(f, "alice", (const uint8_t *)"short", 5);
    CHECK(r && !strcmp(code_of(r), "bad_json"));
    json_decref(r);
    r = chunk(f, "alice", tok, 5, "world", 5);
    CHECK(r && !strcmp(type_of(r), "uploaded"));
    json_t *file = json_object_get(r, "file");
    CHECK(!strcmp(json_string_value(json_object_get(file, "type")), "text/plain"));
    json_decref(r);
    dx__chat_files_free(f);
    remove_root();
}

static void over_limit(void) {
    make_root();
    dx__chat_files *f = open_files(1000);
    REQUIRE(f);
    json_t *r = upload(f, "alice", "big.bin", 1001, NULL, NULL);
    REQUIRE(r);
    CHECK(!strcmp(code_of(r), "too_large"));
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "max")), 1000);
    json_decref(r);
    CHECK_EQ_INT(tmp_count(), 0);
    CHECK_EQ_INT(count_entries(dir), 2); /* tmp and by: no file */
    /* Bad sizes and names are refused likewise. */
    r = upload(f, "alice", "x", 0, NULL, NULL);
    CHECK(r && !strcmp(code_of(r), "bad_field"));
    json_decref(r);
    const char *names[] = {"",
                           "a\nb",
                           "tab\there",
                           "del\x7f",
                           "c1\xc2\x85",
                           "bad\xff utf8",
                           "evil\xe2\x80\xaegpj.exe"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        r = upload(f, "alice", names[i], 10, NULL, NULL);
        CHECK(r && !strcmp(code_of(r), "bad_field"));
        json_decref(r);
    }
    char longname[257];
    memset(longname, 'n', 256);
    longname[256] = 0;
    r = upload(f, "alice", longname, 10, NULL, NULL);
    CHECK(r && !strcmp(code_of(r), "bad_field"));
    json_decref(r);
    longname[255] = 0;
    r = upload(f, "alice", longname, 10, NULL, NULL);
    CHECK(r && !strcmp(type_of(r), "upload"));
    json_decref(r);
    r = upload(f, "alice", "a", 10, "not-hex", NULL);
    CHECK(r && !strcmp(code_of(r), "bad_field"));
    json_decref(r);
    r = upload(f, "alice", "a", 10, NULL, "zz");
    CHECK(r && !strcmp(code_of(r), "bad_field"));
    json_decref(r);
    dx__chat_files_free(f);
    remove_root();
}

static void resume(void) {
    make_root();
    dx__chat_files *f = open_files(0);
    REQUIRE(f);
    size_t n = 300000;
    char *d = pattern(n), sha[65];
    sha_hex(d, n, sha);
    json_t *r = upload(f, "alice", "r.bin", (int64_t)n, NULL, NULL);
    REQUIRE(r && !strcmp(type_of(r), "upload"));
    char tok[33];
    snprintf(tok, sizeof tok, "%s", json_string_value(json_object_get(r, "upload")));
    json_decref(r);
    r = chunk(f, "alice", tok, 0, d, 100000);
    CHECK(r && !strcmp(type_of(r), "upload_progress"));
    json_decref(r);
    /* A restart: the session is gone, the temp file is not. */
    dx__chat_files_free(f);
    f = open_files(0);
    REQUIRE(f);
    r = chunk(f, "alice", tok, 100000, d + 100000, 1000);
    CHECK(r && !strcmp(code_of(r), "bad_field")); /* unknown until `upload` again */
    json_decref(r);
    /* Another user cannot take it up with the token. */
    r = upload(f, "mallory", "r.bin", (int64_t)n, NULL, tok);
    REQUIRE(r && !strcmp(type_of(r), "upload"));
    CHECK(strcmp(json_string_value(json_object_get(r, "upload")), tok) != 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "offset")), 0);
    json_decref(r);
    r = upload(f, "alice", "r.bin", (int64_t)n, NULL, tok);
    REQUIRE(r && !strcmp(type_of(r), "upload"));
    CHECK(!strcmp(json_string_value(json_object_get(r, "upload")), tok));
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "offset")), 100000);
    json_decref(r);
    r = chunk(f, "alice", tok, 100000, d + 100000, n - 100000);
    REQUIRE(r && !strcmp(type_of(r), "uploaded"));
    /* The hash covers the bytes sent before the restart too. */
    CHECK(!strcmp(json_string_value(json_object_get(json_object_get(r, "file"), "id")), sha));
    json_decref(r);
    CHECK(file_equals(sha, d, n));
    free(d);
    dx__chat_files_free(f);
    remove_root();
}

static void dedup(void) {
    make_root();
    dx__chat_files *f = open_files(0);
    REQUIRE(f);
    size_t n = 5000;
    char *d = pattern(n), sha[65];
    sha_hex(d, n, sha);
    json_t *r = upload_all(f, "alice", "one.bin", d, n, 1024);
    CHECK(r && !strcmp(type_of(r), "uploaded"));
    json_decref(r);
    r = upload_all(f, "bob", "two.bin", d, n, 4096);
    CHECK(r && !strcmp(type_of(r), "uploaded"));
    CHECK(r && !strcmp(json_string_value(json_object_get(json_object_get(r, "file"), "id")), sha));
    json_decref(r);
    CHECK_EQ_INT(count_entries(dir), 3); /* tmp, by and one file */
    CHECK_EQ_INT(tmp_count(), 0);
    CHECK(file_equals(sha, d, n));
    CHECK_EQ_INT(dx__chat_files_owned(f, "alice", sha), 1);
    CHECK_EQ_INT(dx__chat_files_owned(f, "bob", sha), 1);
    /* Named by its sha256 by its uploader: stored already, nothing to send. */
    r = upload(f, "alice", "three.bin", (int64_t)n, sha, NULL);
    REQUIRE(r);
    CHECK(!strcmp(type_of(r), "uploaded"));
    json_t *file = json_object_get(r, "file");
    CHECK(!strcmp(json_string_value(json_object_get(file, "name")), "three.bin"));
    CHECK_EQ_INT(json_integer_value(json_object_get(file, "size")), n);
    json_decref(r);
    CHECK_EQ_INT(tmp_count(), 0);
    /* By someone who only knows the hash: the bytes must come, and knowing
     * it makes no one an owner. */
    r = upload(f, "carol", "three.bin", (int64_t)n, sha, NULL);
    REQUIRE(r);
    CHECK(!strcmp(type_of(r), "upload"));
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "offset")), 0);
    json_decref(r);
    CHECK_EQ_INT(dx__chat_files_owned(f, "carol", sha), 0);
    /* An unknown sha256 is an ordinary upload. */
    char other[65];
    memset(other, 'a', 64);
    other[64] = 0;
    r = upload(f, "carol", "x", 10, other, NULL);
    CHECK(r && !strcmp(type_of(r), "upload"));
    json_decref(r);
    free(d);
    dx__chat_files_free(f);
    remove_root();
}

static const char *uploaded_type(dx__chat_files *f, const char *name, const void *data, size_t n,
                                 char out[DX_CHAT_FILE_TYPE_MAX]) {
    json_t *r = upload_all(f, "alice", name, data, n, 100000);
    const char *t = json_string_value(json_object_get(json_object_get(r, "file"), "type"));
    snprintf(out, DX_CHAT_FILE_TYPE_MAX, "%s", t ? t : "?");
    json_decref(r);
    return out;
}

static void types(void) {
    make_root();
    dx__chat_files *f = open_files(0);
    REQUIRE(f);
    char t[DX_CHAT_FILE_TYPE_MAX];
    static const uint8_t jpeg[] = {0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0, 1};
    static const uint8_t png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13};
    static const uint8_t webp[] = {'R', 'I', 'F', 'F', 4, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P'};
    static const uint8_t gz[] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0};
    static const uint8_t sevenz[] = {'7', 'z', 0xbc, 0xaf, 0x27, 0x1c, 0, 4};
    static const uint8_t bin[] = {1, 2, 3, 0, 0xff, 0xfe};
    CHECK(!strcmp(uploaded_type(f, "p.jpg", jpeg, sizeof jpeg, t), "image/jpeg"));
    CHECK(!strcmp(uploaded_type(f, "p.txt", png, sizeof png, t), "image/png"));
    CHECK(!strcmp(uploaded_type(f, "g", "GIF89a\x01\x00\x01\x00", 10, t), "image/gif"));
    CHECK(!strcmp(uploaded_type(f, "w", webp, sizeof webp, t), "image/webp"));
    CHECK(!strcmp(uploaded_type(f, "d", "%PDF-1.7\n", 9, t), "application/pdf"));
    CHECK(!strcmp(uploaded_type(f, "z", "PK\x03\x04zip", 7, t), "application/zip"));
    CHECK(!strcmp(uploaded_type(f, "z.gz", gz, sizeof gz, t), "application/gzip"));
    CHECK(!strcmp(uploaded_type(f, "s", sevenz, sizeof sevenz, t), "application/x-7z-compressed"));
    CHECK(!strcmp(uploaded_type(f, "b.png", bin, sizeof bin, t), "application/octet-stream"));
    char tar[600];
    memset(tar, 0, sizeof tar);
    memcpy(tar, "a.txt", 5);
    memcpy(tar + 257, "ustar", 5);
    CHECK(!strcmp(uploaded_type(f, "t.tar", tar, sizeof tar, t), "application/x-tar"));
    /* Markup is never given a type a browser renders, whatever its name. */
    static const char html[] = "<!DOCTYPE html><html><script>alert(1)</script></html>";
    uploaded_type(f, "x.jpg", html, sizeof html - 1, t);
    CHECK(strncmp(t, "image/", 6) != 0);
    CHECK(strstr(t, "html") == NULL);
    CHECK(!strcmp(t, "text/plain") || !strcmp(t, "application/octet-stream"));
    static const char svg[] = "<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>";
    uploaded_type(f, "x.svg", svg, sizeof svg - 1, t);
    CHECK(strcmp(t, "image/svg+xml") != 0);
    CHECK(strncmp(t, "image/", 6) != 0);
    static const char utf8[] = "héllo wörld 你好\n";
    CHECK(!strcmp(uploaded_type(f, "u.txt", utf8, sizeof utf8 - 1, t), "text/plain"));
    /* Text cut inside a character at the end of the file is not text. */
    CHECK(!strcmp(uploaded_type(f, "cut", "abc\xe4\xbd", 5, t), "application/octet-stream"));
    /* A long text whose 4 KiB sniff window ends inside a character is. */
    char *long_text = malloc(8000);
    memset(long_text, 'a', 8000);
    memcpy(long_text + 4095, "\xe4\xbd\xa0", 3);
    CHECK(!strcmp(uploaded_type(f, "long", long_text, 8000, t), "text/plain"));
    free(long_text);
    dx__chat_files_free(f);
    remove_root();
}

static void path_names(void) {
    make_root();
    dx__chat_files *f = open_files(0);
    REQUIRE(f);
    const char *names[] = {"../../x", "/etc/passwd", "..\\..\\y", "a/b/c", ".."};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char data[32];
        int n = snprintf(data, sizeof data, "file %zu", i);
        json_t *r = upload_all(f, "alice", names[i], data, (size_t)n, 100);
        REQUIRE(r && !strcmp(type_of(r), "uploaded"));
        CHECK(!strcmp(json_string_value(json_object_get(json_object_get(r, "file"), "name")),
                      names[i]));
        json_decref(r);
    }
    /* Nothing was written outside DIR: root holds DIR only, DIR its two
     * directories and the five files. */
    CHECK_EQ_INT(count_entries(root), 1);
    CHECK_EQ_INT(count_entries(dir), 2 + 5);
    dx__chat_files_free(f);
    remove_root();
}

static void other_uid(void) {
    make_root();
    dx__chat_files *f = open_files(0);
    REQUIRE(f);
    json_t *r = upload(f, "alice", "a.bin", 100, NULL, NULL);
    REQUIRE(r && !strcmp(type_of(r), "upload"));
    char tok[33];
    snprintf(tok, sizeof tok, "%s", json_string_value(json_object_get(r, "upload")));
    json_decref(r);
    /* Mallory's chunk with Alice's token writes nothing. */
    r = chunk(f, "mallory", tok, 0, "evil", 4);
    CHECK(r && !strcmp(code_of(r), "bad_field"));
    json_decref(r);
    char p[400];
    struct stat st;
    snprintf(p, sizeof p, "%s/tmp/alice-%s", dir, tok);
    CHECK(stat(p, &st) == 0 && st.st_size == 0);
    /* Nor does an `upload` with it: that starts Mallory's own. */
    r = upload(f, "mallory", "a.bin", 100, NULL, tok);
    REQUIRE(r && !strcmp(type_of(r), "upload"));
    CHECK(strcmp(json_string_value(json_object_get(r, "upload")), tok) != 0);
    json_decref(r);
    r = chunk(f, "alice", tok, 0, "good", 4);
    CHECK(r && !strcmp(type_of(r), "upload_progress"));
    json_decref(r);
    CHECK(stat(p, &st) == 0 && st.st_size == 4);
    dx__chat_files_free(f);
    remove_root();
}

static void limits_and_sweep(void) {
    make_root();
    dx__chat_files *f = open_files(0);
    REQUIRE(f);
    /* A stale temp file from long ago is swept by the next new upload. */
    char p[400];
    snprintf(p, sizeof p, "%s/tmp/old-0123456789abcdef0123456789abcdef", dir);
    FILE *fp = fopen(p, "w");
    REQUIRE(fp);
    fputs("old", fp);
    fclose(fp);
    struct timespec old[2] = {{time(NULL) - 25 * 3600, 0}, {time(NULL) - 25 * 3600, 0}};
    CHECK(utimensat(AT_FDCWD, p, old, 0) == 0);
    for (int i = 0; i < 4; i++) {
        json_t *r = upload(f, "alice", "a", 10, NULL, NULL);
        CHECK(r && !strcmp(type_of(r), "upload"));
        json_decref(r);
    }
    CHECK(access(p, F_OK) != 0);
    CHECK_EQ_INT(tmp_count(), 4);
    /* A fifth at once waits for a slot. */
    json_t *r = upload(f, "alice", "a", 10, NULL, NULL);
    CHECK(r && !strcmp(code_of(r), "rate_limited"));
    CHECK(r && !strcmp(json_string_value(json_object_get(r, "limit")), "uploads"));
    json_decref(r);
    r = upload(f, "bob", "b", 10, NULL, NULL);
    CHECK(r && !strcmp(type_of(r), "upload"));
    json_decref(r);
    CHECK_EQ_INT(tmp_count(), 5);
    dx__chat_files_free(f);
    remove_root();
}

static void unlink_file(void) {
    make_root();
    dx__chat_files *f = open_files(0);
    REQUIRE(f);
    char sha[65];
    sha_hex("bytes", 5, sha);
    json_t *r = upload_all(f, "alice", "b", "bytes", 5, 5);
    CHECK(r && !strcmp(type_of(r), "uploaded"));
    json_decref(r);
    CHECK_EQ_INT(dx__chat_files_stat(f, sha, NULL, NULL), 0);
    dx__chat_files_unlink(f, sha);
    CHECK_EQ_INT(dx__chat_files_stat(f, sha, NULL, NULL), DX_EINVAL);
    CHECK_EQ_INT(dx__chat_files_owned(f, "alice", sha), 0);
    dx__chat_files_unlink(f, "../tmp"); /* not an id: nothing happens */
    CHECK_EQ_INT(count_entries(dir), 2);
    CHECK_EQ_INT(dx__chat_file_id_valid(sha), 1);
    CHECK_EQ_INT(dx__chat_file_id_valid("../../etc/passwd"), 0);
    sha[3] = 'A';
    CHECK_EQ_INT(dx__chat_file_id_valid(sha), 0);
    /* Uploads off: every call answers without a store. */
    r = upload(NULL, "alice", "b", 5, NULL, NULL);
    CHECK(r && !strcmp(code_of(r), "bad_type"));
    json_decref(r);
    r = dx__chat_files_chunk(NULL, "alice", (const uint8_t *)"\1\2\3", 3);
    CHECK(r && !strcmp(code_of(r), "bad_json"));
    json_decref(r);
    CHECK_EQ_INT(dx__chat_files_owned(NULL, "alice", sha), 0);
    /* A directory that cannot be made is refused, with a reason. */
    const char *why = NULL;
    CHECK(dx__chat_files_new("/nonexistent-dir/files", 0, &why) == NULL);
    CHECK(why && *why);
    dx__chat_files_free(f);
    remove_root();
}

/* ---- downloads over a real server -------------------------------------- */

static dx__chat_files *srv_files;

/* dx_server_http_respond_file refuses header lines that could end the
 * head early or smuggle headers, and a body where none may be; the answer
 * says how many it refused (all of them: 11), and a second answer after
 * it is refused in turn. */
static int respond_file_refusals(dx_server_conn *c) {
    static const char *const bad[] = {"X-A: 1\r\n\r\nHTTP/1.1 200 OK\r\n",
                                      "X-A: 1\n",
                                      "X-A: 1",
                                      "X-A: 1\r\nX-B\r\n",
                                      ": v\r\n",
                                      "X A: 1\r\n",
                                      "X-A: 1\rX-B: 2\r\n",
                                      "\r\n"};
    int refused = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        refused += dx_server_http_respond_file(c, 200, NULL, bad[i], -1, 0, 0) == DX_EINVAL;
    refused +=
        dx_server_http_respond_file(c, 200, "text/plain\r\nX: y", NULL, -1, 0, 0) == DX_EINVAL;
    refused += dx_server_http_respond_file(c, 200, NULL, NULL, -1, 0, 5) == DX_EINVAL;
    int fd = open("/dev/null", O_RDONLY); /* taken, and closed, by the refusal */
    refused += dx_server_http_respond_file(c, 304, NULL, NULL, fd, 0, 1) == DX_EINVAL;
    char extra[64];
    snprintf(extra, sizeof extra, "X-Refused: %d\r\n", refused);
    if (dx_server_http_respond_file(c, 200, NULL, extra, -1, 0, 0) < 0) return 0;
    return dx_server_http_respond(c, 200, NULL, "x", 1) == DX_ESTATE;
}

static int on_http(dx_server_conn *c, void *user, const dx_http_route *r) {
    if (r->path_len == 4 && !memcmp(r->path, "/bad", 4)) return respond_file_refusals(c);
    if (r->path_len != 7 + 64 || memcmp(r->path, "/files/", 7)) return 0;
    char id[65];
    memcpy(id, r->path + 7, 64);
    id[64] = 0;
    return dx__chat_files_serve(srv_files, c, r, id, "名前 \"a\";b.png");
}

static void on_term(dx_loop *loop, void *arg) {
    dx_loop_stop(loop);
}

static pid_t serve_child(int *port) {
    int pp[2];
    if (pipe(pp)) return -1;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        sigprocmask(SIG_BLOCK, &set, NULL);
        close(pp[0]);
        dx_loop *loop = dx_loop_new(0);
        dx_server_config cfg = {.port = 0, .on_http = on_http};
        dx_server *srv = dx_server_new(loop, &cfg);
        if (!srv || dx_server_listen(srv) < 0) _exit(5);
        if (dx_loop_on_signal(loop, SIGTERM, on_term, NULL) < 0) _exit(6);
        int p = dx_server_port(srv);
        if (write(pp[1], &p, sizeof p) != sizeof p) _exit(7);
        close(pp[1]);
        dx_loop_run(loop);
        dx_server_free(srv);
        dx_loop_free(loop);
        dx__chat_files_free(srv_files);
        exit(0); /* not _exit: LeakSanitizer checks the server process */
    }
    close(pp[1]);
    if (read(pp[0], port, sizeof *port) != sizeof *port) pid = -1;
    close(pp[0]);
    return pid;
}

/* Sends `req` and reads the whole answer (the server closes after it). */
static size_t get(int port, const char *req, char *out, size_t cap) {
    out[0] = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return 0;
    }
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (write(fd, req, strlen(req)) < 0) {
        close(fd);
        return 0;
    }
    size_t n = 0;
    ssize_t k;
    while (n + 1 < cap && (k = read(fd, out + n, cap - 1 - n)) > 0)
        n += (size_t)k;
    out[n] = 0;
    close(fd);
    return n;
}

static int status_of(const char *resp) {
    int st = 0;
    return sscanf(resp, "HTTP/1.1 %d", &st) == 1 ? st : -1;
}

static const char *body_of(const char *resp) {
    const char *b = strstr(resp, "\r\n\r\n");
    return b ? b + 4 : "";
}

static void downloads(void) {
    make_root();
    srv_files = open_files(0);
    REQUIRE(srv_files);
    size_t n = 300000;
    uint8_t *png = (uint8_t *)pattern(n);
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    char img[65], html[65];
    sha_hex(png, n, img);
    json_t *r = upload_all(srv_files, "alice", "p.png", png, n, 262144);
    CHECK(r && !strcmp(type_of(r), "uploaded"));
    json_decref(r);
    static const char page[] = "<html><script>alert(1)</script></html>";
    sha_hex(page, sizeof page - 1, html);
    r = upload_all(srv_files, "alice", "x.jpg", page, sizeof page - 1, 100);
    CHECK(r && !strcmp(type_of(r), "uploaded"));
    json_decref(r);
    int port = 0;
    pid_t pid = serve_child(&port);
    REQUIRE(pid > 0);
    char *resp = malloc(400000), req[512];

    snprintf(req, sizeof req, "GET /files/%s HTTP/1.1\r\nHost: x\r\n\r\n", img);
    size_t got = get(port, req, resp, 400000);
    CHECK_EQ_INT(status_of(resp), 200);
    CHECK(strstr(resp, "Content-Type: image/png\r\n"));
    CHECK(strstr(resp, "X-Content-Type-Options: nosniff\r\n"));
    CHECK(strstr(resp, "Content-Security-Policy: sandbox; default-src 'none'\r\n"));
    CHECK(strstr(resp, "Content-Disposition: inline; "
                       "filename*=UTF-8''%E5%90%8D%E5%89%8D%20%22a%22%3Bb.png\r\n"));
    char etag[80];
    snprintf(etag, sizeof etag, "ETag: \"%s\"\r\n", img);
    CHECK(strstr(resp, etag));
    CHECK(strstr(resp, "Cache-Control: private, max-age=31536000, immutable\r\n"));
    CHECK(strstr(resp, "Accept-Ranges: bytes\r\n"));
    CHECK(strstr(resp, "Content-Length: 300000\r\n"));
    CHECK_EQ_INT(got - (size_t)(body_of(resp) - resp), n);
    CHECK(!memcmp(body_of(resp), png, n));

    snprintf(req, sizeof req, "GET /files/%s HTTP/1.1\r\nHost: x\r\nRange: bytes=10-19\r\n\r\n",
             img);
    get(port, req, resp, 400000);
    CHECK_EQ_INT(status_of(resp), 206);
    CHECK(strstr(resp, "Content-Range: bytes 10-19/300000\r\n"));
    CHECK(strstr(resp, "Content-Length: 10\r\n"));
    CHECK(!memcmp(body_of(resp), png + 10, 10));

    snprintf(req, sizeof req, "GET /files/%s HTTP/1.1\r\nHost: x\r\nRange: bytes=-5\r\n\r\n", img);
    get(port, req, resp, 400000);
    CHECK_EQ_INT(status_of(resp), 206);
    CHECK(strstr(resp, "Content-Range: bytes 299995-299999/300000\r\n"));
    CHECK(!memcmp(body_of(resp), png + n - 5, 5));

    snprintf(req, sizeof req, "GET /files/%s HTTP/1.1\r\nHost: x\r\nRange: bytes=299990-\r\n\r\n",
             img);
    get(port, req, resp, 400000);
    CHECK_EQ_INT(status_of(resp), 206);
    CHECK(strstr(resp, "Content-Length: 10\r\n"));

    snprintf(req, sizeof req, "GET /files/%s HTTP/1.1\r\nHost: x\r\nRange: bytes=300000-\r\n\r\n",
             img);
    get(port, req, resp, 400000);
    CHECK_EQ_INT(status_of(resp), 416);
    CHECK(strstr(resp, "Content-Range: bytes */300000\r\n"));

    /* Several ranges: the whole file instead. */
    snprintf(req, sizeof req, "GET /files/%s HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1,5-6\r\n\r\n",
             img);
    get(port, req, resp, 400000);
    CHECK_EQ_INT(status_of(resp), 200);

    snprintf(req, sizeof req, "GET /files/%s HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"%s\"\r\n\r\n",
             img, img);
    get(port, req, resp, 400000);
    CHECK_EQ_INT(status_of(resp), 304);
    CHECK(strstr(resp, etag));
    CHECK(!*body_of(resp));

    snprintf(req, sizeof req, "HEAD /files/%s HTTP/1.1\r\nHost: x\r\n\r\n", img);
    get(port, req, resp, 400000);
    CHECK_EQ_INT(status_of(resp), 200);
    CHECK(strstr(resp, "Content-Length: 300000\r\n"));
    CHECK(!*body_of(resp));

    /* HTML named x.jpg: plain text at most, and saved, not shown. */
    snprintf(req, sizeof req, "GET /files/%s HTTP/1.1\r\nHost: x\r\n\r\n", html);
    get(port, req, resp, 400000);
    CHECK_EQ_INT(status_of(resp), 200);
    CHECK(strstr(resp, "Content-Type: text/plain; charset=utf-8\r\n") ||
          strstr(resp, "Content-Type: application/octet-stream\r\n"));
    CHECK(strstr(resp, "Content-Disposition: attachment; "));
    CHECK(strstr(resp, "X-Content-Type-Options: nosniff\r\n"));

    char missing[65];
    memset(missing, '0', 64);
    missing[64] = 0;
    snprintf(req, sizeof req, "GET /files/%s HTTP/1.1\r\nHost: x\r\n\r\n", missing);
    get(port, req, resp, 400000);
    CHECK_EQ_INT(status_of(resp), 404);

    snprintf(req, sizeof req, "POST /files/%s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
             img);
    get(port, req, resp, 400000);
    CHECK_EQ_INT(status_of(resp), 405);

    get(port, "GET /bad HTTP/1.1\r\nHost: x\r\n\r\n", resp, 400000);
    CHECK_EQ_INT(status_of(resp), 200);
    CHECK(strstr(resp, "X-Refused: 11\r\n"));
    CHECK(strstr(resp, "Content-Length: 0\r\n"));

    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    free(resp);
    free(png);
    dx__chat_files_free(srv_files);
    srv_files = NULL;
    remove_root();
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    RUN(in_chunks);
    RUN(wrong_offset);
    RUN(over_limit);
    RUN(resume);
    RUN(dedup);
    RUN(types);
    RUN(path_names);
    RUN(other_uid);
    RUN(limits_and_sweep);
    RUN(unlink_file);
    RUN(downloads);
    return TEST_DONE();
}

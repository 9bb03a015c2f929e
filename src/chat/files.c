/* The chat's files (files.h, docs/chat-protocol.md "Files and pictures").
 *
 * Layout of the directory, all of it plain files so that several nodes can
 * share it over a network mount:
 *   DIR/<sha256 hex>        a finished file, named by its content (so equal
 *                           files are stored once)
 *   DIR/tmp/<uid>-<token>   an upload in progress; the name binds the token
 *                           to its user, so a token alone reaches nothing
 *   DIR/by/<uid>/<sha256>   an empty marker: this user uploaded that file
 * Uploads are written as the chunks come and hashed as they go; a session
 * lives in memory while it is used, and an upload whose session is gone (a
 * restart, another node) is taken up from its temp file, hashed once. */
#include "chat/files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <duplex/common.h>
#include <duplex/http.h>
#include <duplex/utf8.h>

#include "chat/proto.h"
#include "core/alloc.h"

enum {
    TOKEN_LEN = 16,
    UID_MAX = 32,
    NAME_MAX_BYTES = 255,
    CHUNK = 256 * 1024, /* the `chunk` an upload answer announces */
    CHUNK_HEAD = TOKEN_LEN + 8,
    SNIFF = 4096, /* bytes read to detect the type */
    /* Sessions: a user uploads a few files at once (a fifth waits for a
     * slot), a node holds at most UPLOADS_MAX (a descriptor and a hash
     * state each), so what abandoned uploads hold on disk is bounded by
     * these times max_upload until they are swept. */
    UPLOADS_PER_UID = 4,
    UPLOADS_MAX = 256,
};
#define STALE_S (24 * 3600) /* a token lives 24 hours after its last chunk */
#define IDLE_S 300          /* a session idle that long gives its slot up */
#define SWEEP_S 60          /* the temp directory is swept at most this often */

typedef struct upload {
    struct upload *next;
    char uid[UID_MAX + 1];
    uint8_t token[TOKEN_LEN];
    char name[NAME_MAX_BYTES + 1];
    uint64_t size, off;
    int fd;
    EVP_MD_CTX *md;
    json_t *id;   /* the id of the last `upload` request, for `uploaded` */
    int64_t used; /* seconds: the last request or chunk */
} upload;

struct dx__chat_files {
    int dirfd, tmpfd, byfd;
    uint64_t max_upload;
    upload *ups;
    size_t count;
    int64_t swept;
};

static int64_t now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec;
}

/* ---- names ------------------------------------------------------------ */

static void hex_of(const uint8_t *b, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = 0;
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* `s` is exactly 2n hex digits: its bytes into `out`; else -1. */
static int unhex(const char *s, uint8_t *out, size_t n) {
    if (strlen(s) != 2 * n) return -1;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int dx__chat_file_id_valid(const char *id) {
    if (!id) return 0;
    for (int i = 0; i < DX_CHAT_FILE_ID_LEN; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f'))) return 0;
    return id[DX_CHAT_FILE_ID_LEN] == 0;
}

/* The uid is part of file names: it must be what the engine allows (1-32
 * of A-Z a-z 0-9 _ -), checked here again rather than trusted. */
static int uid_ok(const char *uid) {
    size_t n = strlen(uid);
    if (!n || n > UID_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = uid[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

/* A display name: 1-255 bytes of UTF-8 without control characters (C0,
 * DEL, C1, the line and paragraph separators) and without the bidi
 * overrides and isolates that make "gpj.exe" read as "exe.jpg". It is
 * never used as a path, so "/" and "\" are allowed. */
static int name_ok(const char *s) {
    size_t n = strlen(s);
    if (!n || n > NAME_MAX_BYTES || dx_utf8_valid((const uint8_t *)s, n) < 0) return 0;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f) return 0;
        if (p[i] == 0xc2 && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f) return 0;
        if (p[i] == 0xe2 && p[i + 1] == 0x80 &&
            (p[i + 2] == 0xa8 || p[i + 2] == 0xa9 || (p[i + 2] >= 0xaa && p[i + 2] <= 0xae)))
            return 0;
        if (p[i] == 0xe2 && p[i + 1] == 0x81 && p[i + 2] >= 0xa6 && p[i + 2] <= 0xa9) return 0;
    }
    return 1;
}

static void tmp_name(const upload *u, char out[UID_MAX + 2 + 2 * TOKEN_LEN + 1]) {
    char tok[2 * TOKEN_LEN + 1];
    hex_of(u->token, TOKEN_LEN, tok);
    snprintf(out, UID_MAX + 2 + 2 * TOKEN_LEN + 1, "%s-%s", u->uid, tok);
}

/* ---- the type --------------------------------------------------------- */

/* The type of the bytes `b` (the first `n` of a file of `size`), from the
 * allow-list, else application/octet-stream. Only magic numbers count: a
 * name's extension is the uploader's word, and HTML or SVG must never get a
 * type a browser renders (at most text/plain, which nosniff keeps so). */
static const char *type_of(const uint8_t *b, size_t n, uint64_t size) {
    static const struct {
        size_t at, len;
        const char *magic, *type;
    } magics[] = {
        {0, 3, "\xff\xd8\xff", "image/jpeg"},
        {0, 8, "\x89PNG\r\n\x1a\n", "image/png"},
        {0, 6, "GIF87a", "image/gif"},
        {0, 6, "GIF89a", "image/gif"},
        {0, 5, "%PDF-", "application/pdf"},
        {0, 4, "PK\x03\x04", "application/zip"},
        {0, 4, "PK\x05\x06", "application/zip"},
        {0, 2, "\x1f\x8b", "application/gzip"},
        {0, 6, "7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"},
        {257, 5, "ustar", "application/x-tar"},
    };
    if (n >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WEBP", 4)) return "image/webp";
    for (size_t i = 0; i < sizeof magics / sizeof magics[0]; i++)
        if (n >= magics[i].at + magics[i].len &&
            !memcmp(b + magics[i].at, magics[i].magic, magics[i].len))
            return magics[i].type;
    if (!n || memchr(b, 0, n)) return "application/octet-stream";
    dx_utf8 v;
    dx_utf8_init(&v);
    if (dx_utf8_feed(&v, b, n) < 0) return "application/octet-stream";
    /* Cut at SNIFF bytes, the text may stop inside a character. */
    if ((uint64_t)n == size && dx_utf8_finish(&v) < 0) return "application/octet-stream";
    return "text/plain";
}

static const char *type_of_fd(int fd, uint64_t size) {
    uint8_t b[SNIFF];
    ssize_t n = pread(fd, b, sizeof b, 0);
    return type_of(b, n > 0 ? (size_t)n : 0, size);
}

/* ---- replies ---------------------------------------------------------- */

static json_t *error(const char *code, const char *msg, const char *field) {
    json_t *j = dx__chat_env("error");
    if (!j) return NULL;
    json_object_set_new(j, "code", json_string(code));
    json_object_set_new(j, "message", json_string(msg));
    if (field) json_object_set_new(j, "field", json_string(field));
    return j;
}

static json_t *with_token(json_t *j, const uint8_t token[TOKEN_LEN]) {
    char hex[2 * TOKEN_LEN + 1];
    hex_of(token, TOKEN_LEN, hex);
    if (j) json_object_set_new(j, "upload", json_string(hex));
    return j;
}

static json_t *uploads_off(void) {
    return error("bad_type", "uploads are off on this server", NULL);
}

static json_t *file_obj(const char *id, const char *name, uint64_t size, const char *type) {
    json_t *f = json_object();
    if (!f) return NULL;
    json_object_set_new(f, "id", json_string(id));
    json_object_set_new(f, "name", json_string(name));
    json_object_set_new(f, "size", json_integer((json_int_t)size));
    json_object_set_new(f, "type", json_string(type));
    return f;
}

/* ---- the store -------------------------------------------------------- */

static int open_dir(int at, const char *path) {
    if (mkdirat(at, path, 0755) < 0 && errno != EEXIST) return -1;
    return openat(at, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

dx__chat_files *dx__chat_files_new(const char *dir, uint64_t max_upload, const char **why) {
    if (!dir || !*dir) {
        *why = "no directory given";
        return NULL;
    }
    dx__chat_files *f = dx__calloc(1, sizeof *f);
    if (!f) {
        *why = "out of memory";
        return NULL;
    }
    f->max_upload = max_upload ? max_upload : DX_CHAT_MAX_UPLOAD_DEFAULT;
    f->tmpfd = f->byfd = -1;
    f->dirfd = open_dir(AT_FDCWD, dir);
    if (f->dirfd >= 0) f->tmpfd = open_dir(f->dirfd, "tmp");
    if (f->tmpfd >= 0) f->byfd = open_dir(f->dirfd, "by");
    /* A store it could not write to would fail every upload later: find
     * out now, while the operator is looking. */
    if (f->byfd < 0 || faccessat(f->dirfd, "tmp", W_OK, AT_EACCESS) < 0 ||
        faccessat(f->dirfd, "by", W_OK, AT_EACCESS) < 0 ||
        faccessat(f->dirfd, ".", W_OK, AT_EACCESS) < 0) {
        *why = errno == EACCES || errno == EROFS ? "not writable"
               : errno == ENOENT                 ? "cannot be created (no parent directory)"
                                                 : "cannot be opened";
        dx__chat_files_free(f);
        return NULL;
    }
    return f;
}

static void up_free(dx__chat_files *f, upload *u, int remove_file) {
    for (upload **p = &f->ups; *p; p = &(*p)->next)
        if (*p == u) {
            *p = u->next;
            f->count--;
            break;
        }
    if (remove_file) {
        char tn[UID_MAX + 2 + 2 * TOKEN_LEN + 1];
        tmp_name(u, tn);
        (void)unlinkat(f->tmpfd, tn, 0);
    }
    if (u->fd >= 0) close(u->fd);
    EVP_MD_CTX_free(u->md);
    json_decref(u->id);
    dx__free(u);
}

void dx__chat_files_free(dx__chat_files *f) {
    if (!f) return;
    while (f->ups)
        up_free(f, f->ups, 0); /* resumable after a restart */
    if (f->dirfd >= 0) close(f->dirfd);
    if (f->tmpfd >= 0) close(f->tmpfd);
    if (f->byfd >= 0) close(f->byfd);
    dx__free(f);
}

static upload *find(dx__chat_files *f, const uint8_t token[TOKEN_LEN]) {
    for (upload *u = f->ups; u; u = u->next)
        if (!memcmp(u->token, token, TOKEN_LEN)) return u;
    return NULL;
}

/* Removes temp files nobody has written to for STALE_S (sessions in
 * memory included), at most once every SWEEP_S: no timer, the next new
 * upload does it. */
static void sweep(dx__chat_files *f, int64_t now) {
    if (now - f->swept < SWEEP_S) return;
    f->swept = now;
    for (upload *u = f->ups, *next; u; u = next) {
        next = u->next;
        if (now - u->used >= STALE_S) up_free(f, u, 1);
    }
    int fd = dup(f->tmpfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) close(fd);
        return;
    }
    rewinddir(d);
    struct dirent *e;
    struct stat st;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && !fstatat(f->tmpfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) &&
            now - st.st_mtim.tv_sec >= STALE_S)
            (void)unlinkat(f->tmpfd, e->d_name, 0);
    closedir(d);
}

/* Hashes the first u->off bytes of the temp file again: a session taken up
 * from disk, or one another node wrote to. */
static int rehash(upload *u) {
    if (!EVP_DigestInit_ex(u->md, EVP_sha256(), NULL)) return -1;
    enum { BUF = 64 * 1024 };
    uint8_t *buf = dx__malloc(BUF);
    if (!buf) return -1;
    uint64_t at = 0;
    while (at < u->off) {
        size_t want = u->off - at < BUF ? (size_t)(u->off - at) : BUF;
        ssize_t k = pread(u->fd, buf, want, (off_t)at);
        if (k <= 0 || !EVP_DigestUpdate(u->md, buf, (size_t)k)) {
            dx__free(buf);
            return -1;
        }
        at += (uint64_t)k;
    }
    dx__free(buf);
    return 0;
}

/* Records that `uid` uploaded `id`: an empty file, created atomically, the
 * same on every node of a shared directory. */
static void mark(dx__chat_files *f, const char *uid, const char *id) {
    char path[UID_MAX + 2 + DX_CHAT_FILE_ID_LEN + 1];
    if (mkdirat(f->byfd, uid, 0755) < 0 && errno != EEXIST) return;
    snprintf(path, sizeof path, "%s/%s", uid, id);
    int fd = openat(f->byfd, path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd >= 0) close(fd);
}

int dx__chat_files_stat(dx__chat_files *f, const char *id, int64_t *size,
                        char type[DX_CHAT_FILE_TYPE_MAX]) {
    if (!f || !dx__chat_file_id_valid(id)) return DX_EINVAL;
    int fd = openat(f->dirfd, id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0) return DX_EINVAL;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return DX_EINVAL;
    }
    if (size) *size = (int64_t)st.st_size;
    if (type) snprintf(type, DX_CHAT_FILE_TYPE_MAX, "%s", type_of_fd(fd, (uint64_t)st.st_size));
    close(fd);
    return 0;
}

int dx__chat_files_owned(dx__chat_files *f, const char *uid, const char *id) {
    if (!f || !uid_ok(uid) || !dx__chat_file_id_valid(id)) return 0;
    char path[UID_MAX + 2 + DX_CHAT_FILE_ID_LEN + 1];
    snprintf(path, sizeof path, "%s/%s", uid, id);
    struct stat st;
    /* A marker outlives a file that was deleted: both must be there. */
    return !fstatat(f->byfd, path, &st, AT_SYMLINK_NOFOLLOW) &&
           !fstatat(f->dirfd, id, &st, AT_SYMLINK_NOFOLLOW) && S_ISREG(st.st_mode);
}

void dx__chat_files_unlink(dx__chat_files *f, const char *id) {
    if (f && dx__chat_file_id_valid(id)) (void)unlinkat(f->dirfd, id, 0);
}

/* ---- uploads ---------------------------------------------------------- */

/* The upload is complete: makes it a stored file and answers `uploaded`
 * (or an error); the session is gone either way. */
static json_t *finish(dx__chat_files *f, upload *u) {
    uint8_t sum[32];
    unsigned sum_len = 0;
    char id[DX_CHAT_FILE_ID_LEN + 1], tn[UID_MAX + 2 + 2 * TOKEN_LEN + 1];
    tmp_name(u, tn);
    if (fsync(u->fd) < 0 || !EVP_DigestFinal_ex(u->md, sum, &sum_len) || sum_len != 32) {
        json_t *j =
            with_token(error("store_failed", "the file could not be stored", NULL), u->token);
        up_free(f, u, 1);
        return j;
    }
    hex_of(sum, 32, id);
    const char *type = type_of_fd(u->fd, u->size);
    struct stat st;
    int rc;
    if (!fstatat(f->dirfd, id, &st, AT_SYMLINK_NOFOLLOW) && S_ISREG(st.st_mode) &&
        (uint64_t)st.st_size == u->size)
        rc = unlinkat(f->tmpfd, tn, 0); /* already stored: once is enough */
    else
        rc = renameat(f->tmpfd, tn, f->dirfd, id);
    if (rc == 0) (void)fsync(f->dirfd); /* the name, durable like the bytes */
    if (rc < 0) {
        json_t *j =
            with_token(error("store_failed", "the file could not be stored", NULL), u->token);
        up_free(f, u, 1);
        return j;
    }
    mark(f, u->uid, id);
    json_t *j = with_token(dx__chat_env("uploaded"), u->token);
    if (j) {
        if (u->id) json_object_set(j, "id", u->id);
        json_object_set_new(j, "file", file_obj(id, u->name, u->size, type));
    }
    up_free(f, u, 0);
    return j;
}

/* Makes room for one more session of `uid`: 0, or -1 when its slots (or
 * the node's) are all busy. A session idle for IDLE_S gives its slot up,
 * and its temp file goes with it (what stays on disk is bounded too). */
static int make_room(dx__chat_files *f, const char *uid, int64_t now) {
    upload *mine_lru = NULL, *any_lru = NULL;
    size_t mine = 0;
    for (upload *u = f->ups; u; u = u->next) {
        if (!strcmp(u->uid, uid)) {
            mine++;
            if (!mine_lru || u->used < mine_lru->used) mine_lru = u;
        }
        if (!any_lru || u->used < any_lru->used) any_lru = u;
    }
    if (mine >= UPLOADS_PER_UID) {
        if (now - mine_lru->used < IDLE_S) return -1;
        if (any_lru == mine_lru) any_lru = NULL;
        up_free(f, mine_lru, 1);
    } else if (f->count >= UPLOADS_MAX) {
        if (now - any_lru->used < IDLE_S) return -1;
        up_free(f, any_lru, 1);
    }
    return 0;
}

static json_t *busy(void) {
    json_t *j = error("rate_limited", "too many uploads at once: finish one first", NULL);
    if (j) {
        json_object_set_new(j, "limit", json_string("uploads"));
        json_object_set_new(j, "retry_after", json_integer(1000));
    }
    return j;
}

/* A new session of `uid`: its temp file is created (token fresh) or, with
 * `token` and a temp file of this user under it, taken up where it ends. */
static json_t *open_session(dx__chat_files *f, const char *uid, const uint8_t *token,
                            const char *name, uint64_t size, json_t *id, int64_t now,
                            upload **out) {
    upload *u = dx__calloc(1, sizeof *u);
    if (!u) return NULL;
    u->fd = -1;
    snprintf(u->uid, sizeof u->uid, "%s", uid);
    snprintf(u->name, sizeof u->name, "%s", name);
    u->size = size;
    u->used = now;
    u->md = EVP_MD_CTX_new();
    char tn[UID_MAX + 2 + 2 * TOKEN_LEN + 1];
    if (token) {
        memcpy(u->token, token, TOKEN_LEN);
        tmp_name(u, tn);
        u->fd = openat(f->tmpfd, tn, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        struct stat st;
        if (u->fd >= 0 && (fstat(u->fd, &st) < 0 || !S_ISREG(st.st_mode) ||
                           (uint64_t)st.st_size > size || now - st.st_mtim.tv_sec >= STALE_S)) {
            close(u->fd); /* not one we can go on with: a fresh one */
            u->fd = -1;
            (void)unlinkat(f->tmpfd, tn, 0);
        } else if (u->fd >= 0) {
            u->off = (uint64_t)st.st_size;
        }
    }
    if (u->fd < 0) {
        if (dx_random(u->token, TOKEN_LEN) < 0) goto fail;
        tmp_name(u, tn);
        u->fd = openat(f->tmpfd, tn, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        u->off = 0;
    }
    if (u->fd < 0 || !u->md || rehash(u) < 0) goto fail;
    if (id) u->id = json_incref(id);
    u->next = f->ups;
    f->ups = u;
    f->count++;
    *out = u;
    return NULL;
fail:
    if (u->fd >= 0) close(u->fd);
    EVP_MD_CTX_free(u->md);
    dx__free(u);
    return error("store_failed", "the upload could not be started", NULL);
}

static json_t *answer_upload(upload *u) {
    json_t *j = with_token(dx__chat_env("upload"), u->token);
    if (j) {
        json_object_set_new(j, "offset", json_integer((json_int_t)u->off));
        json_object_set_new(j, "chunk", json_integer(CHUNK));
    }
    return j;
}

/* The session's file may have grown elsewhere (another node took the
 * upload up from the shared directory): follow it. 0, or -1 when it is
 * no longer an upload that can go on. */
static int resync(upload *u) {
    struct stat st;
    if (fstat(u->fd, &st) < 0 || (uint64_t)st.st_size > u->size) return -1;
    if ((uint64_t)st.st_size == u->off) return 0;
    u->off = (uint64_t)st.st_size;
    return rehash(u);
}

json_t *dx__chat_files_upload(dx__chat_files *f, const char *uid, json_t *req) {
    if (!f) return uploads_off();
    const char *name = json_string_value(json_object_get(req, "name"));
    json_t *jsize = json_object_get(req, "size");
    json_t *jsha = json_object_get(req, "sha256");
    json_t *jtok = json_object_get(req, "upload");
    json_t *id = json_object_get(req, "id");
    if (!uid_ok(uid)) return error("internal", "bad user", NULL);
    if (!name || !name_ok(name))
        return error("bad_field", "name: 1-255 bytes of UTF-8, no control characters", "name");
    if (!json_is_integer(jsize) || json_integer_value(jsize) < 1)
        return error("bad_field", "size: the file's size in bytes (1 or more)", "size");
    uint64_t size = (uint64_t)json_integer_value(jsize);
    if (size > f->max_upload) {
        char msg[96];
        snprintf(msg, sizeof msg, "the file is over this server's limit of %llu bytes",
                 (unsigned long long)f->max_upload);
        json_t *j = error("too_large", msg, "size");
        if (j) json_object_set_new(j, "max", json_integer((json_int_t)f->max_upload));
        return j;
    }
    char sha[DX_CHAT_FILE_ID_LEN + 1] = "";
    if (jsha) {
        const char *s = json_string_value(jsha);
        if (!s || strlen(s) != DX_CHAT_FILE_ID_LEN)
            return error("bad_field", "sha256: 64 hex digits", "sha256");
        for (int i = 0; i <= DX_CHAT_FILE_ID_LEN; i++)
            sha[i] = (char)(s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 'a' : s[i]);
        if (!dx__chat_file_id_valid(sha))
            return error("bad_field", "sha256: 64 hex digits", "sha256");
    }
    uint8_t token[TOKEN_LEN];
    if (jtok && (!json_is_string(jtok) || unhex(json_string_value(jtok), token, TOKEN_LEN) < 0))
        return error("bad_field", "upload: the token of an upload in progress", "upload");
    int64_t now = now_s();
    /* Another user's token reaches nothing: not its session (the uid must
     * match), not its temp file (whose name holds the uid). */
    upload *u = jtok ? find(f, token) : NULL;
    if (u && strcmp(u->uid, uid)) u = NULL;
    int64_t have = 0;
    char type[DX_CHAT_FILE_TYPE_MAX];
    /* Stored already and this user's own upload: nothing to send again.
     * Knowing a hash is no proof of holding the file (a former member of a
     * group may know it), so anyone else sends the bytes, which are then
     * stored once all the same. */
    if (*sha && dx__chat_files_owned(f, uid, sha) && !dx__chat_files_stat(f, sha, &have, type)) {
        json_t *j = dx__chat_env("uploaded");
        if (u) {
            (void)with_token(j, u->token);
            up_free(f, u, 1);
        }
        if (j) json_object_set_new(j, "file", file_obj(sha, name, (uint64_t)have, type));
        return j;
    }
    if (u) {
        if (u->size != size)
            return with_token(
                error("bad_field", "size: not the size this upload was started with", "size"),
                u->token);
        snprintf(u->name, sizeof u->name, "%s", name);
        json_t *old = u->id;
        u->id = id ? json_incref(id) : NULL;
        json_decref(old);
        u->used = now;
        if (resync(u) < 0) {
            json_t *j = with_token(error("store_failed", "the upload is lost: start again", NULL),
                                   u->token);
            up_free(f, u, 1);
            return j;
        }
        return u->off == u->size ? finish(f, u) : answer_upload(u);
    }
    sweep(f, now);
    if (make_room(f, uid, now) < 0) return busy();
    json_t *err = open_session(f, uid, jtok ? token : NULL, name, size, id, now, &u);
    if (!u) return err;
    return u->off == u->size ? finish(f, u) : answer_upload(u);
}

json_t *dx__chat_files_chunk(dx__chat_files *f, const char *uid, const uint8_t *data, size_t len) {
    /* Uploads off, a binary message is what it was in revision 1 (the
     * error table: "not a JSON object, or a binary message"). */
    if (!f) return error("bad_json", "uploads are off on this server: no binary messages", NULL);
    /* Too short to be a chunk: what a revision-1 client that sends binary
     * got before chunks existed, and still the right word for it. */
    if (len < CHUNK_HEAD)
        return error("bad_json",
                     "a binary message is an upload chunk: 16 bytes of token, 8 of offset, "
                     "then the bytes",
                     NULL);
    upload *u = find(f, data);
    if (!u || strcmp(u->uid, uid))
        return with_token(
            error("bad_field", "unknown upload: send `upload` again with its token", "upload"),
            data);
    uint64_t off = 0;
    for (int i = 0; i < 8; i++)
        off = off << 8 | data[TOKEN_LEN + i];
    const uint8_t *bytes = data + CHUNK_HEAD;
    size_t n = len - CHUNK_HEAD;
    u->used = now_s();
    if (resync(u) < 0) {
        json_t *j =
            with_token(error("store_failed", "the upload is lost: start again", NULL), u->token);
        up_free(f, u, 1);
        return j;
    }
    if (n > CHUNK)
        return with_token(error("too_large", "a chunk is at most `chunk` bytes", NULL), u->token);
    if (off != u->off) {
        json_t *j = with_token(error("bad_offset", "send the bytes from `offset`", NULL), u->token);
        if (j) json_object_set_new(j, "offset", json_integer((json_int_t)u->off));
        return j;
    }
    if (n > u->size - u->off)
        return with_token(error("too_large", "the chunk goes past the file's size", NULL),
                          u->token);
    for (size_t done = 0; done < n;) {
        ssize_t k = pwrite(u->fd, bytes + done, n - done, (off_t)(u->off + done));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            /* Disk full, say: the file goes back to where it was, so that
             * the same chunk can be sent again. */
            if (ftruncate(u->fd, (off_t)u->off) < 0) {
                /* resync() at the next chunk finds where the file ends. */
            }
            return with_token(error("store_failed", "the chunk could not be written", NULL),
                              u->token);
        }
        done += (size_t)k;
    }
    if (!EVP_DigestUpdate(u->md, bytes, n)) {
        json_t *j = with_token(error("internal", "hashing failed: start again", NULL), u->token);
        up_free(f, u, 1);
        return j;
    }
    u->off += n;
    if (u->off == u->size) return finish(f, u);
    json_t *j = with_token(dx__chat_env("upload_progress"), u->token);
    if (j) json_object_set_new(j, "offset", json_integer((json_int_t)u->off));
    return j;
}

/* ---- downloads -------------------------------------------------------- */

static int image_type(const char *type) {
    return !strcmp(type, "image/jpeg") || !strcmp(type, "image/png") ||
           !strcmp(type, "image/gif") || !strcmp(type, "image/webp");
}

/* RFC 8187's ext-value of `name`: UTF-8'' then every byte that is not an
 * attr-char as %XX. At most 9 + 3 * 255 bytes. */
static void ext_value(const char *name, char *out, size_t cap) {
    static const char digits[] = "0123456789ABCDEF";
    size_t o = (size_t)snprintf(out, cap, "UTF-8''");
    for (const unsigned char *p = (const unsigned char *)name; *p && o + 4 < cap; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("!#$&+-.^_`|~", *p)) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = digits[*p >> 4];
            out[o++] = digits[*p & 15];
        }
    }
    out[o] = 0;
}

/* 1 when an If-None-Match value names `etag` (or is "*"). */
static int etag_matches(const dx_http_header *h, const char *etag) {
    size_t pos = 0, n;
    const char *tok;
    while (dx_http_next_token(h->value, h->value_len, &pos, &tok, &n)) {
        if (n > 2 && tok[0] == 'W' && tok[1] == '/') tok += 2, n -= 2;
        if ((n == 1 && tok[0] == '*') || (n == strlen(etag) && !memcmp(tok, etag, n))) return 1;
    }
    return 0;
}

static int digits_of(const char **p, const char *end, uint64_t *v) {
    const char *s = *p;
    *v = 0;
    while (*p < end && **p >= '0' && **p <= '9' && *p - s < 19)
        *v = *v * 10 + (uint64_t)(*(*p)++ - '0');
    return *p > s && (*p == end || **p < '0' || **p > '9') ? 0 : -1;
}

/* One Range "bytes=a-b", "bytes=a-" or "bytes=-n" of a file of `size`:
 * 1 with [*from, *from + *len) to send, 0 to send everything (no range, or
 * one this server does not take: several ranges, bad syntax), -1 when it
 * cannot be satisfied (416). */
static int range_of(const dx_http_header *h, uint64_t size, uint64_t *from, uint64_t *len) {
    const char *p = h->value, *end = h->value + h->value_len;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (end - p < 6 || strncasecmp(p, "bytes=", 6) || memchr(p, ',', (size_t)(end - p))) return 0;
    p += 6;
    uint64_t a, b;
    if (p < end && *p == '-') {
        p++;
        if (digits_of(&p, end, &b) < 0 || p != end) return 0;
        if (!b || !size) return -1;
        *len = b < size ? b : size;
        *from = size - *len;
        return 1;
    }
    if (digits_of(&p, end, &a) < 0 || p == end || *p++ != '-') return 0;
    if (p == end) {
        b = UINT64_MAX;
    } else if (digits_of(&p, end, &b) < 0 || p != end || b < a) {
        return 0;
    }
    if (a >= size) return -1;
    if (b >= size) b = size - 1;
    *from = a;
    *len = b - a + 1;
    return 1;
}

int dx__chat_files_serve(dx__chat_files *f, dx_server_conn *c, const dx_http_route *r,
                         const char *id, const char *name) {
    int head = r->method_len == 4 && !memcmp(r->method, "HEAD", 4);
    int get = r->method_len == 3 && !memcmp(r->method, "GET", 3);
    if (!get && !head) {
        (void)dx_server_http_respond_file(c, 405, NULL, "Allow: GET, HEAD\r\n", -1, 0, 0);
        return 1;
    }
    int fd = f && dx__chat_file_id_valid(id)
                 ? openat(f->dirfd, id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
                 : -1;
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        (void)dx_server_http_respond(c, 404, NULL, "not found\n", 10);
        return 1;
    }
    uint64_t size = (uint64_t)st.st_size;
    const char *type = type_of_fd(fd, size);
    char ctype[DX_CHAT_FILE_TYPE_MAX + 16];
    snprintf(ctype, sizeof ctype, "%s%s", type,
             !strcmp(type, "text/plain") ? "; charset=utf-8" : "");
    char disp[16 + 9 + 3 * NAME_MAX_BYTES + 1];
    ext_value(name && name_ok(name) ? name : "file", disp, sizeof disp);
    char etag[DX_CHAT_FILE_ID_LEN + 3];
    snprintf(etag, sizeof etag, "\"%s\"", id);
    /* The file is whatever a user uploaded: the browser must take it for
     * what the allow-list says (nosniff), run nothing in it even when
     * opened directly (sandbox, no sources), and save rather than show
     * anything but the four image types. */
    char extra[1400];
    int n = snprintf(extra, sizeof extra,
                     "X-Content-Type-Options: nosniff\r\n"
                     "Content-Security-Policy: sandbox; default-src 'none'\r\n"
                     "Content-Disposition: %s; filename*=%s\r\n"
                     "ETag: %s\r\n"
                     "Cache-Control: private, max-age=31536000, immutable\r\n"
                     "Accept-Ranges: bytes\r\n",
                     image_type(type) ? "inline" : "attachment", disp, etag);
    if (n < 0 || (size_t)n + 64 > sizeof extra) { /* cannot be: the name is at most 255 bytes */
        close(fd);
        (void)dx_server_http_respond(c, 500, NULL, "cannot send the file\n", 21);
        return 1;
    }
    const dx_http_header *inm = dx_http_find(r->headers, r->num_headers, "If-None-Match");
    if (inm && etag_matches(inm, etag)) {
        close(fd);
        (void)dx_server_http_respond_file(c, 304, NULL, extra, -1, 0, 0);
        return 1;
    }
    uint64_t from = 0, len = size;
    int ranged = 0;
    const dx_http_header *rh = dx_http_find(r->headers, r->num_headers, "Range");
    const dx_http_header *ifr = dx_http_find(r->headers, r->num_headers, "If-Range");
    if (rh &&
        (!ifr || (ifr->value_len == strlen(etag) && !memcmp(ifr->value, etag, ifr->value_len))))
        ranged = range_of(rh, size, &from, &len);
    if (ranged < 0) {
        close(fd);
        snprintf(extra + n, sizeof extra - (size_t)n, "Content-Range: bytes */%llu\r\n",
                 (unsigned long long)size);
        (void)dx_server_http_respond_file(c, 416, NULL, extra, -1, 0, 0);
        return 1;
    }
    if (ranged)
        snprintf(extra + n, sizeof extra - (size_t)n, "Content-Range: bytes %llu-%llu/%llu\r\n",
                 (unsigned long long)from, (unsigned long long)(from + len - 1),
                 (unsigned long long)size);
    if (dx_server_http_respond_file(c, ranged ? 206 : 200, ctype, extra, fd, from, len) < 0)
        (void)dx_server_http_respond(c, 500, NULL, "cannot send the file\n", 21);
    return 1;
}

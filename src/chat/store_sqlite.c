/* The embedded chat store: one SQLite file in WAL mode.
 *
 * Durability: synchronous=FULL makes every COMMIT fsync the WAL, so a
 * message whose transaction committed survives kill -9 and power loss.
 * NORMAL would survive kill -9 only (the WAL would sit in the page cache
 * until a checkpoint); since the service commits once per loop turn rather
 * than once per message, FULL costs one fsync per batch and we keep it. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <duplex/common.h>

#include "chat/store.h"
#include "core/alloc.h"

enum {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_TOUCH,
    S_SEEN,
    S_CONV_NEW,
    S_JOIN,
    S_IS_MEMBER,
    S_FIND,
    S_NEXT_SEQ,
    S_INSERT,
    S_READ,
    S_MEMBERS_N,
    S_MEMBERS,
    S_CONVS_OF,
    S_MSGS_OLD,
    S_MSGS_NEW,
    S_UNREAD,
    S_CONTACTS,
    S_ROOMS_N,
    S_COUNT
};

static const char *const SQL[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_TOUCH] = "INSERT INTO users(uid, last_seen) VALUES(?1, ?2)"
                " ON CONFLICT(uid) DO UPDATE SET last_seen = MAX(last_seen, ?2)",
    [S_SEEN] = "SELECT last_seen FROM users WHERE uid = ?1",
    [S_CONV_NEW] = "INSERT OR IGNORE INTO convs(conv, last_seq) VALUES(?1, 0)",
    [S_JOIN] = "INSERT OR IGNORE INTO members(conv, uid, read_seq) VALUES(?1, ?2, 0)",
    [S_IS_MEMBER] = "SELECT 1 FROM members WHERE conv = ?1 AND uid = ?2",
    [S_FIND] = "SELECT conv, seq, mid, cid, sender, text, ts FROM messages"
               " WHERE sender = ?1 AND cid = ?2",
    [S_NEXT_SEQ] = "UPDATE convs SET last_seq = last_seq + 1 WHERE conv = ?1 RETURNING last_seq",
    [S_INSERT] = "INSERT INTO messages(conv, seq, sender, cid, text, ts)"
                 " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [S_READ] = "UPDATE members SET read_seq = MAX(read_seq, MIN(?3,"
               " (SELECT last_seq FROM convs WHERE conv = ?1)))"
               " WHERE conv = ?1 AND uid = ?2 RETURNING read_seq",
    [S_MEMBERS_N] = "SELECT count(*) FROM members WHERE conv = ?1",
    [S_MEMBERS] = "SELECT uid, read_seq FROM members WHERE conv = ?1 ORDER BY uid",
    [S_CONVS_OF] = "SELECT m.conv, c.last_seq, m.read_seq FROM members m"
                   " JOIN convs c ON c.conv = m.conv WHERE m.uid = ?1 AND m.conv > ?2"
                   " ORDER BY m.conv LIMIT ?3",
    [S_MSGS_OLD] = "SELECT conv, seq, mid, cid, sender, text, ts FROM messages"
                   " WHERE conv = ?1 AND seq > ?2 AND seq < ?3 ORDER BY seq LIMIT ?4",
    [S_MSGS_NEW] = "SELECT conv, seq, mid, cid, sender, text, ts FROM messages"
                   " WHERE conv = ?1 AND seq > ?2 AND seq < ?3 ORDER BY seq DESC LIMIT ?4",
    [S_UNREAD] = "SELECT count(*) FROM messages WHERE conv = ?1 AND seq > ?3 AND sender <> ?2",
    [S_CONTACTS] = "SELECT DISTINCT b.uid, COALESCE(u.last_seen, 0) FROM members a"
                   " JOIN members b ON b.conv = a.conv AND b.uid <> a.uid"
                   " LEFT JOIN users u ON u.uid = b.uid WHERE a.uid = ?1 ORDER BY b.uid",
    /* A range on members_by_uid: 'g;' is the byte after 'g:'. */
    [S_ROOMS_N] = "SELECT count(*) FROM members WHERE uid = ?1 AND conv >= 'g:' AND conv < 'g;'",
};

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS users(uid TEXT PRIMARY KEY, last_seen INTEGER NOT NULL DEFAULT 0)"
    " WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS convs(conv TEXT PRIMARY KEY, last_seq INTEGER NOT NULL)"
    " WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS members(conv TEXT NOT NULL, uid TEXT NOT NULL,"
    " read_seq INTEGER NOT NULL, PRIMARY KEY(conv, uid)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS members_by_uid ON members(uid, conv);"
    "CREATE TABLE IF NOT EXISTS messages(mid INTEGER PRIMARY KEY, conv TEXT NOT NULL,"
    " seq INTEGER NOT NULL, sender TEXT NOT NULL, cid TEXT NOT NULL, text TEXT NOT NULL,"
    " ts INTEGER NOT NULL, UNIQUE(conv, seq), UNIQUE(sender, cid));"
    "PRAGMA user_version = 1;";

typedef struct sq_store {
    dx__chat_store base;
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT];
    char dup_conv[96]; /* the conversation of the last duplicate put() found */
} sq_store;

static sqlite3_stmt *stmt(sq_store *s, int which) {
    sqlite3_stmt *q = s->st[which];
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return q;
}

static int bind_text(sqlite3_stmt *q, int i, const char *v) {
    return sqlite3_bind_text(q, i, v, -1, SQLITE_STATIC);
}

static int db_err(int rc) {
    return rc == SQLITE_NOMEM ? DX_ENOMEM : DX_EIO;
}

/* Runs a statement that returns no row we need. */
static int run(sq_store *s, sqlite3_stmt *q) {
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : db_err(rc);
}

static const char *col_text(sqlite3_stmt *q, int i) {
    const unsigned char *t = sqlite3_column_text(q, i);
    return t ? (const char *)t : "";
}

static void read_msg(sqlite3_stmt *q, dx__chat_msg *m) {
    m->conv = col_text(q, 0);
    m->seq = sqlite3_column_int64(q, 1);
    m->mid = sqlite3_column_int64(q, 2);
    m->cid = col_text(q, 3);
    m->from = col_text(q, 4);
    m->text = col_text(q, 5);
    m->ts = sqlite3_column_int64(q, 6);
}

static void sq_close(dx__chat_store *base) {
    sq_store *s = (sq_store *)base;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db);
    dx__free(s);
}

static int sq_begin(dx__chat_store *base) {
    sq_store *s = (sq_store *)base;
    return run(s, stmt(s, S_BEGIN));
}

static int sq_commit(dx__chat_store *base) {
    sq_store *s = (sq_store *)base;
    return run(s, stmt(s, S_COMMIT));
}

static void sq_rollback(dx__chat_store *base) {
    sq_store *s = (sq_store *)base;
    if (!sqlite3_get_autocommit(s->db)) (void)run(s, stmt(s, S_ROLLBACK));
}

static int sq_touch(dx__chat_store *base, const char *uid, int64_t ts) {
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = stmt(s, S_TOUCH);
    bind_text(q, 1, uid);
    sqlite3_bind_int64(q, 2, ts);
    return run(s, q);
}

static int sq_last_seen(dx__chat_store *base, const char *uid, int64_t *ts) {
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = stmt(s, S_SEEN);
    bind_text(q, 1, uid);
    int rc = sqlite3_step(q);
    *ts = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_reset(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_err(rc);
}

static int sq_join(dx__chat_store *base, const char *conv, const char *uid) {
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = stmt(s, S_CONV_NEW);
    bind_text(q, 1, conv);
    int rc = run(s, q);
    if (rc < 0) return rc;
    q = stmt(s, S_JOIN);
    bind_text(q, 1, conv);
    bind_text(q, 2, uid);
    rc = run(s, q);
    /* INSERT OR IGNORE changed one row when the member is new. */
    return rc < 0 ? rc : sqlite3_changes(s->db) > 0;
}

static int sq_is_member(dx__chat_store *base, const char *conv, const char *uid) {
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = stmt(s, S_IS_MEMBER);
    bind_text(q, 1, conv);
    bind_text(q, 2, uid);
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : db_err(rc);
}

static int sq_put(dx__chat_store *base, const char *conv, const char *from, const char *cid,
                  const char *text, int64_t ts, dx__chat_msg *out, int *dup) {
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = stmt(s, S_FIND);
    bind_text(q, 1, from);
    bind_text(q, 2, cid);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        /* Copied out so that no statement stays open (an open read would
         * hold back WAL checkpoints). */
        snprintf(s->dup_conv, sizeof s->dup_conv, "%s", col_text(q, 0));
        *out = (dx__chat_msg){.conv = s->dup_conv,
                              .seq = sqlite3_column_int64(q, 1),
                              .mid = sqlite3_column_int64(q, 2),
                              .cid = cid,
                              .from = from,
                              .text = "",
                              .ts = sqlite3_column_int64(q, 6)};
        sqlite3_reset(q);
        *dup = 1;
        return 0;
    }
    sqlite3_reset(q);
    if (rc != SQLITE_DONE) return db_err(rc);
    *dup = 0;

    q = stmt(s, S_NEXT_SEQ);
    bind_text(q, 1, conv);
    rc = sqlite3_step(q);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(q);
        return rc == SQLITE_DONE ? DX_EINVAL : db_err(rc); /* no such conversation */
    }
    int64_t seq = sqlite3_column_int64(q, 0);
    sqlite3_reset(q);

    q = stmt(s, S_INSERT);
    bind_text(q, 1, conv);
    sqlite3_bind_int64(q, 2, seq);
    bind_text(q, 3, from);
    bind_text(q, 4, cid);
    bind_text(q, 5, text);
    sqlite3_bind_int64(q, 6, ts);
    rc = run(s, q);
    if (rc < 0) return rc;
    *out = (dx__chat_msg){.conv = conv,
                          .seq = seq,
                          .mid = sqlite3_last_insert_rowid(s->db),
                          .cid = cid,
                          .from = from,
                          .text = text,
                          .ts = ts};
    return 0;
}

static int sq_mark_read(dx__chat_store *base, const char *conv, const char *uid, int64_t seq,
                        int64_t *now) {
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = stmt(s, S_READ);
    bind_text(q, 1, conv);
    bind_text(q, 2, uid);
    sqlite3_bind_int64(q, 3, seq);
    int rc = sqlite3_step(q);
    *now = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_reset(q);
    if (rc == SQLITE_DONE) return DX_EINVAL; /* not a member */
    return rc == SQLITE_ROW ? 0 : db_err(rc);
}

/* Steps through rows of a prepared query, one callback per row. */
static int each_uid(sqlite3_stmt *q, dx__chat_uid_cb cb, void *arg) {
    int rc, stop = 0;
    while (!stop && (rc = sqlite3_step(q)) == SQLITE_ROW)
        stop = cb(arg, col_text(q, 0), sqlite3_column_int64(q, 1));
    sqlite3_reset(q);
    if (stop) return stop;
    return rc == SQLITE_DONE ? 0 : db_err(rc);
}

/* A query that answers one number (a COUNT): 0 with *n, or the error. */
static int one_count(sqlite3_stmt *q, int64_t *n) {
    int rc = sqlite3_step(q);
    *n = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_reset(q);
    return rc == SQLITE_ROW ? 0 : db_err(rc);
}

static int sq_members(dx__chat_store *base, const char *conv, int64_t max, int64_t *count,
                      dx__chat_uid_cb cb, void *arg) {
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = stmt(s, S_MEMBERS_N);
    bind_text(q, 1, conv);
    int64_t n;
    int rc = one_count(q, &n);
    if (rc < 0) return rc;
    if (count) *count = n;
    if (n > max) return 0;
    q = stmt(s, S_MEMBERS);
    bind_text(q, 1, conv);
    return each_uid(q, cb, arg);
}

static int sq_convs_of(dx__chat_store *base, const char *uid, const char *after, int64_t limit,
                       dx__chat_conv_cb cb, void *arg) {
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = stmt(s, S_CONVS_OF);
    bind_text(q, 1, uid);
    bind_text(q, 2, after ? after : "");
    sqlite3_bind_int64(q, 3, limit);
    int rc, stop = 0;
    /* The callback may query the store (members, unread): those use other
     * statements, so this one can stay open while it runs. */
    while (!stop && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        dx__chat_conv c = {col_text(q, 0), sqlite3_column_int64(q, 1), sqlite3_column_int64(q, 2)};
        stop = cb(arg, &c);
    }
    sqlite3_reset(q);
    if (stop) return stop;
    return rc == SQLITE_DONE ? 0 : db_err(rc);
}

static int sq_messages(dx__chat_store *base, const char *conv, int64_t after, int64_t before,
                       int limit, int newest, dx__chat_msg_cb cb, void *arg, int *more) {
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = stmt(s, newest ? S_MSGS_NEW : S_MSGS_OLD);
    bind_text(q, 1, conv);
    sqlite3_bind_int64(q, 2, after);
    sqlite3_bind_int64(q, 3, before > 0 ? before : INT64_MAX);
    sqlite3_bind_int(q, 4, limit + 1); /* one more row tells whether there is more */
    /* Rows come newest first for `newest`: collect them, then call back in
     * ascending order. At most limit + 1 rows, so this is bounded. */
    int n = 0, rc;
    sqlite3_int64 *seqs = newest ? dx__malloc(sizeof *seqs * (size_t)(limit + 1)) : NULL;
    if (newest && !seqs) {
        sqlite3_reset(q);
        return DX_ENOMEM;
    }
    int stop = 0;
    while (!stop && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (n == limit) {
            n++;
            break;
        }
        if (newest) {
            seqs[n++] = sqlite3_column_int64(q, 1);
        } else {
            dx__chat_msg m;
            read_msg(q, &m);
            n++;
            stop = cb(arg, &m);
        }
    }
    sqlite3_reset(q);
    if (more) *more = n > limit;
    if (!stop && (rc == SQLITE_ROW || rc == SQLITE_DONE) && newest) {
        /* Fetch the collected ones in ascending order: from the smallest
         * collected seq, oldest first, exactly that many. */
        int got = n > limit ? limit : n;
        if (got > 0) {
            q = stmt(s, S_MSGS_OLD);
            bind_text(q, 1, conv);
            sqlite3_bind_int64(q, 2, seqs[got - 1] - 1);
            sqlite3_bind_int64(q, 3, before > 0 ? before : INT64_MAX);
            sqlite3_bind_int(q, 4, got);
            while (!stop && (rc = sqlite3_step(q)) == SQLITE_ROW) {
                dx__chat_msg m;
                read_msg(q, &m);
                stop = cb(arg, &m);
            }
            sqlite3_reset(q);
        }
    }
    dx__free(seqs);
    if (stop) return stop;
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : db_err(rc);
}

static int sq_unread(dx__chat_store *base, const char *conv, const char *uid, int64_t seq,
                     int64_t *n) {
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = stmt(s, S_UNREAD);
    bind_text(q, 1, conv);
    bind_text(q, 2, uid);
    sqlite3_bind_int64(q, 3, seq);
    return one_count(q, n);
}

static int sq_contacts(dx__chat_store *base, const char *uid, dx__chat_uid_cb cb, void *arg) {
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = stmt(s, S_CONTACTS);
    bind_text(q, 1, uid);
    return each_uid(q, cb, arg);
}

static int sq_rooms_of(dx__chat_store *base, const char *uid, int64_t *n) {
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = stmt(s, S_ROOMS_N);
    bind_text(q, 1, uid);
    return one_count(q, n);
}

static const dx__chat_store_ops SQ_OPS = {
    .close = sq_close,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .touch_user = sq_touch,
    .last_seen = sq_last_seen,
    .join = sq_join,
    .is_member = sq_is_member,
    .put = sq_put,
    .mark_read = sq_mark_read,
    .members = sq_members,
    .convs_of = sq_convs_of,
    .messages = sq_messages,
    .unread = sq_unread,
    .contacts = sq_contacts,
    .rooms_of = sq_rooms_of,
};

dx__chat_store *dx__chat_store_sqlite(const char *path, const char **why) {
    sq_store *s = dx__calloc(1, sizeof *s);
    if (!s) {
        *why = "out of memory";
        return NULL;
    }
    s->base.ops = &SQ_OPS;
    if (!path || !*path) path = ":memory:";
    int rc = sqlite3_open_v2(
        path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        *why = "cannot open the database file";
        goto fail;
    }
    /* A second process on the same file waits a little instead of failing. */
    sqlite3_busy_timeout(s->db, 2000);
    char *err = NULL;
    rc = sqlite3_exec(s->db,
                      "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;",
                      NULL, NULL, &err);
    sqlite3_free(err);
    if (rc != SQLITE_OK) {
        *why = "cannot set WAL mode on the database (is it a SQLite file?)";
        goto fail;
    }
    rc = sqlite3_exec(s->db, SCHEMA, NULL, NULL, &err);
    sqlite3_free(err);
    if (rc != SQLITE_OK) {
        *why = "cannot create the chat tables (not a duplex chat database?)";
        goto fail;
    }
    for (int i = 0; i < S_COUNT; i++) {
        if (sqlite3_prepare_v3(s->db, SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) !=
            SQLITE_OK) {
            *why = "cannot prepare the chat queries (database schema from another version?)";
            goto fail;
        }
    }
    return &s->base;
fail:
    sq_close(&s->base);
    return NULL;
}

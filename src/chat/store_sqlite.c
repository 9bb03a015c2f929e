/* The embedded chat store: one SQLite file in WAL mode.
 *
 * Durability, off the loop. A COMMIT on the loop's connection appends the
 * transaction to the WAL with write() and no fsync (synchronous=OFF), so
 * the loop never waits for the disk; sync(), on the store thread, then
 * fdatasyncs the WAL through a descriptor of its own, which makes every
 * transaction committed before it durable at once (one fsync per batch of
 * whatever arrived while the previous one was on disk), and the service
 * sends the acks of those transactions only then. What a commit left in
 * the page cache survives kill -9 already; the fsync is for power loss.
 *
 * Checkpoints, which copy the WAL into the database file and fsync it,
 * must never run on the loop's connection any more (with synchronous=OFF
 * it would not fsync the database before the WAL is reused): automatic
 * checkpoints are off there, and checkpoint() runs them on the store
 * thread's own connection, with synchronous=FULL. SQLite starts the WAL
 * over at the first write after a checkpoint copied all of it. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

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
    S_LAST_SEQ,
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
    S_GET,
    S_CONV_GROUP,
    S_ADD,
    S_ROLE,
    S_REMOVE,
    S_SET_ROLE,
    S_SET_TITLE,
    S_SUCCESSOR,
    S_MEMBERS_PAGE,
    S_ADMINS,
    S_RECALL,
    S_EDIT,
    S_SEARCH_FTS,
    S_SEARCH_SCAN,
    S_FILE_REFS,
    S_FILE_FIND,
    S_FTS_ADD,
    S_FTS_MARK,
    S_FTS_GET,
    S_MAX_MID,
    S_COUNT
};

#define MSG_COLS                                                                                   \
    "conv, seq, mid, cid, sender, text, ts, sys, file, file_id, thumb_id, edited, recalled"
#define MSG_COLS_M                                                                                 \
    "m.conv, m.seq, m.mid, m.cid, m.sender, m.text, m.ts, m.sys, m.file, m.file_id, m.thumb_id,"   \
    " m.edited, m.recalled"

/* The fallback search (queries of fewer than 3 characters, which the
 * trigram index cannot answer) looks at this many messages of the user's
 * conversations per request at most; the reply's `next` goes on from
 * there. */
#define SCAN_MAX 5000

static const char *const SQL[S_COUNT] = {
    /* The search index is filled in batches (fts_catch_up), not by a
     * trigger per message: FTS5 writes its pending terms out as a new
     * segment at every statement of a transaction, so a trigger cost a
     * segment (and merges) per message — 40% of the server's instructions
     * under load. fts_state holds the last message indexed, changed with
     * the index in the same transaction. */
    [S_FTS_ADD] = "INSERT INTO messages_fts(rowid, text) SELECT mid, text FROM messages"
                  " WHERE mid > ?1 AND sys IS NULL AND recalled = 0",
    [S_FTS_MARK] = "UPDATE fts_state SET mid = ?1 WHERE k = 0",
    [S_FTS_GET] = "SELECT mid FROM fts_state WHERE k = 0",
    [S_MAX_MID] = "SELECT COALESCE(max(mid), 0) FROM messages",
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_TOUCH] = "INSERT INTO users(uid, last_seen) VALUES(?1, ?2)"
                " ON CONFLICT(uid) DO UPDATE SET last_seen = MAX(last_seen, ?2)",
    [S_SEEN] = "SELECT last_seen FROM users WHERE uid = ?1",
    [S_CONV_NEW] = "INSERT OR IGNORE INTO convs(conv, last_seq) VALUES(?1, 0)",
    [S_JOIN] = "INSERT OR IGNORE INTO members(conv, uid, read_seq) VALUES(?1, ?2, 0)",
    [S_IS_MEMBER] = "SELECT 1 FROM members WHERE conv = ?1 AND uid = ?2",
    [S_FIND] = "SELECT " MSG_COLS " FROM messages WHERE sender = ?1 AND cid = ?2",
    /* put_msg: see there. */
    [S_LAST_SEQ] = "SELECT last_seq FROM convs WHERE conv = ?1",
    [S_INSERT] =
        "INSERT INTO messages(conv, seq, sender, cid, text, ts, sys, file, file_id, thumb_id)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT(sender, cid) DO NOTHING",
    [S_NEXT_SEQ] = "UPDATE convs SET last_seq = ?2 WHERE conv = ?1",
    [S_READ] = "UPDATE members SET read_seq = MAX(read_seq, MIN(?3,"
               " (SELECT last_seq FROM convs WHERE conv = ?1)))"
               " WHERE conv = ?1 AND uid = ?2 RETURNING read_seq",
    [S_MEMBERS_N] = "SELECT count(*) FROM members WHERE conv = ?1",
    [S_MEMBERS] = "SELECT uid, read_seq FROM members WHERE conv = ?1 ORDER BY uid",
    [S_CONVS_OF] = "SELECT m.conv, c.last_seq, m.read_seq, c.title FROM members m"
                   " JOIN convs c ON c.conv = m.conv WHERE m.uid = ?1 AND m.conv > ?2"
                   " ORDER BY m.conv LIMIT ?3",
    [S_MSGS_OLD] = "SELECT " MSG_COLS " FROM messages"
                   " WHERE conv = ?1 AND seq > ?2 AND seq < ?3 ORDER BY seq LIMIT ?4",
    [S_MSGS_NEW] = "SELECT " MSG_COLS " FROM messages"
                   " WHERE conv = ?1 AND seq > ?2 AND seq < ?3 ORDER BY seq DESC LIMIT ?4",
    /* System and event messages are not unread (docs/chat-protocol.md),
     * nor recalled ones: nothing is left to read. */
    [S_UNREAD] = "SELECT count(*) FROM messages WHERE conv = ?1 AND seq > ?3 AND sender <> ?2"
                 " AND sys IS NULL AND recalled = 0",
    /* Contacts share a direct conversation or a private group: a room
     * (g:) makes nobody a contact, or one arrival in a lobby of n would
     * tell n people (store.h). */
    [S_CONTACTS] = "SELECT DISTINCT b.uid, COALESCE(u.last_seen, 0) FROM members a"
                   " JOIN members b ON b.conv = a.conv AND b.uid <> a.uid"
                   " LEFT JOIN users u ON u.uid = b.uid"
                   " WHERE a.uid = ?1 AND (a.conv < 'g:' OR a.conv >= 'g;') ORDER BY b.uid",
    /* A range on members_by_uid: 'g;' is the byte after 'g:'. */
    [S_ROOMS_N] = "SELECT count(*) FROM members WHERE uid = ?1 AND conv >= 'g:' AND conv < 'g;'",
    [S_GET] = "SELECT " MSG_COLS " FROM messages WHERE conv = ?1 AND seq = ?2",
    [S_CONV_GROUP] = "INSERT INTO convs(conv, last_seq, title) VALUES(?1, 0, ?2)",
    /* `joined` orders the members for the owner's succession. */
    [S_ADD] = "INSERT OR IGNORE INTO members(conv, uid, read_seq, role, joined)"
              " SELECT ?1, ?2, 0, ?3, COALESCE(MAX(joined), 0) + 1 FROM members WHERE conv = ?1",
    [S_ROLE] = "SELECT role FROM members WHERE conv = ?1 AND uid = ?2",
    [S_REMOVE] = "DELETE FROM members WHERE conv = ?1 AND uid = ?2",
    [S_SET_ROLE] = "UPDATE members SET role = ?3 WHERE conv = ?1 AND uid = ?2",
    [S_SET_TITLE] = "UPDATE convs SET title = ?2 WHERE conv = ?1",
    [S_SUCCESSOR] = "SELECT uid FROM members WHERE conv = ?1 ORDER BY role = 2 DESC, joined, uid"
                    " LIMIT 1",
    [S_MEMBERS_PAGE] = "SELECT uid, role, read_seq FROM members WHERE conv = ?1 AND uid > ?2"
                       " ORDER BY uid LIMIT ?3",
    [S_ADMINS] = "SELECT uid, role FROM members WHERE conv = ?1 AND role >= 2 ORDER BY uid",
    [S_RECALL] = "UPDATE messages SET text = '', file = NULL, file_id = NULL, thumb_id = NULL,"
                 " recalled = 1 WHERE conv = ?1 AND seq = ?2",
    [S_EDIT] = "UPDATE messages SET text = ?3, edited = ?4 WHERE conv = ?1 AND seq = ?2",
    [S_SEARCH_FTS] = "SELECT " MSG_COLS_M " FROM messages_fts f JOIN messages m ON m.mid = f.rowid"
                     " WHERE messages_fts MATCH ?1 AND m.mid < ?2"
                     " AND m.conv IN (SELECT conv FROM members WHERE uid = ?3)"
                     " AND (?4 IS NULL OR m.conv = ?4) AND m.sys IS NULL AND m.recalled = 0"
                     " ORDER BY m.mid DESC LIMIT ?5",
    /* lower() folds ASCII only, which is what the protocol promises. */
    [S_SEARCH_SCAN] = "SELECT " MSG_COLS_M ", instr(lower(m.text), lower(?1)) > 0"
                      " AND m.sys IS NULL AND m.recalled = 0 FROM messages m"
                      " WHERE m.mid < ?2 AND m.conv IN (SELECT conv FROM members WHERE uid = ?3)"
                      " AND (?4 IS NULL OR m.conv = ?4) ORDER BY m.mid DESC LIMIT ?5",
    [S_FILE_REFS] = "SELECT count(*) FROM messages WHERE file_id = ?1 OR thumb_id = ?1",
    [S_FILE_FIND] = "SELECT m.file, m.file_id IS ?1 FROM messages m"
                    " JOIN members b ON b.conv = m.conv AND b.uid = ?2"
                    " WHERE (m.file_id = ?1 OR m.thumb_id = ?1) AND m.recalled = 0"
                    " AND (?3 IS NULL OR m.conv = ?3) ORDER BY 2 DESC LIMIT 1",
};

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS users(uid TEXT PRIMARY KEY, last_seen INTEGER NOT NULL DEFAULT 0)"
    " WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS convs(conv TEXT PRIMARY KEY, last_seq INTEGER NOT NULL,"
    " title TEXT) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS members(conv TEXT NOT NULL, uid TEXT NOT NULL,"
    " read_seq INTEGER NOT NULL, role INTEGER NOT NULL DEFAULT 1,"
    " joined INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(conv, uid)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS members_by_uid ON members(uid, conv);"
    "CREATE TABLE IF NOT EXISTS messages(mid INTEGER PRIMARY KEY, conv TEXT NOT NULL,"
    " seq INTEGER NOT NULL, sender TEXT NOT NULL, cid TEXT NOT NULL, text TEXT NOT NULL,"
    " ts INTEGER NOT NULL, sys TEXT, file TEXT, file_id TEXT, thumb_id TEXT,"
    " edited INTEGER NOT NULL DEFAULT 0, recalled INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE(conv, seq), UNIQUE(sender, cid));";

/* A database of version 1 (before groups, files, recall, edit, search)
 * gets the new columns. */
static const char MIGRATE_1[] =
    "ALTER TABLE convs ADD COLUMN title TEXT;"
    "ALTER TABLE members ADD COLUMN role INTEGER NOT NULL DEFAULT 1;"
    "ALTER TABLE members ADD COLUMN joined INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE messages ADD COLUMN sys TEXT;"
    "ALTER TABLE messages ADD COLUMN file TEXT;"
    "ALTER TABLE messages ADD COLUMN file_id TEXT;"
    "ALTER TABLE messages ADD COLUMN thumb_id TEXT;"
    "ALTER TABLE messages ADD COLUMN edited INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE messages ADD COLUMN recalled INTEGER NOT NULL DEFAULT 0;";

/* Search: an FTS5 index with the trigram tokenizer (substrings of 3 or
 * more characters, any script, ASCII case folded), over the text of the
 * messages people wrote (not system or event messages, not recalled
 * ones), kept by triggers so that no write path can forget it. It holds
 * no copy of the text (content=messages), and a recall or an edit takes
 * the old words out of it. secure_delete overwrites what is deleted in
 * the file itself rather than leaving it in free pages. */
static const char SCHEMA_2[] =
    "PRAGMA secure_delete = ON;"
    "CREATE INDEX IF NOT EXISTS messages_by_file ON messages(file_id) WHERE file_id IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS messages_by_thumb ON messages(thumb_id)"
    " WHERE thumb_id IS NOT NULL;"
    "CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(text, content='messages',"
    " content_rowid='mid', tokenize='trigram');"
    /* Each commit adds a segment to the index, and FTS5 merges a level's
     * segments into one of the next level when there are `automerge` of
     * them: every message is rewritten once per level. 16 rather than the
     * default 4 halves the levels, and the merges were a sixth of the
     * server's instructions under load; a search reads up to 15 segments
     * per level instead of 3, which costs it little. Those merges are
     * incremental (work in proportion to what each commit adds), but a
     * level that reaches `crisismerge` segments is merged whole, at once:
     * with the default 16, equal to automerge, that happened every ~6.7 s
     * at 10,000 messages/s and held the loop 120-130 ms (ack p99 77-195
     * ms). At 64 the incremental work keeps every level below it. */
    "INSERT INTO messages_fts(messages_fts, rank) VALUES('automerge', 16);"
    "INSERT INTO messages_fts(messages_fts, rank) VALUES('crisismerge', 64);"
    /* Version 4: the index may lag the messages (fts_catch_up); this says
     * how far it goes. A database of an earlier version had every message
     * indexed. */
    "CREATE TABLE IF NOT EXISTS fts_state(k INTEGER PRIMARY KEY CHECK(k = 0),"
    " mid INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO fts_state(k, mid) SELECT 0, COALESCE(max(mid), 0) FROM messages;"
    /* Version 3: new messages are indexed at the commit (S_FTS_ADD). */
    "DROP TRIGGER IF EXISTS messages_fts_ai;"
    "CREATE TRIGGER IF NOT EXISTS messages_fts_au AFTER UPDATE OF text, recalled ON messages BEGIN"
    " INSERT INTO messages_fts(messages_fts, rowid, text) SELECT 'delete', old.mid, old.text"
    " WHERE old.sys IS NULL AND old.recalled = 0;"
    " INSERT INTO messages_fts(rowid, text) SELECT new.mid, new.text"
    " WHERE new.sys IS NULL AND new.recalled = 0; END;"
    "CREATE TRIGGER IF NOT EXISTS messages_fts_ad AFTER DELETE ON messages"
    " WHEN old.sys IS NULL AND old.recalled = 0 BEGIN"
    " INSERT INTO messages_fts(messages_fts, rowid, text) VALUES('delete', old.mid, old.text);"
    " END;";

typedef struct sq_store {
    dx__chat_store base;
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT];
    char dup_conv[96]; /* the conversation of the last duplicate put() found */
    /* The search index holds every message up to fts_mid (committed) or
     * fts_tx (this transaction); top_mid is the newest message put,
     * top_commit the newest committed; fts_ms when (mono_ms) the index
     * was last brought up to date. */
    int64_t fts_mid, fts_tx, top_mid, top_commit, fts_ms;
    /* The store thread's: the WAL to fdatasync (-1 for ":memory:"), the
     * connection that checkpoints, and when it last did (CLOCK_MONOTONIC
     * ms). */
    int wal_fd;
    sqlite3 *ck;
    int64_t ck_ms;
    _Atomic int64_t sync_ms; /* how long the last fsync of the WAL took */
    _Atomic int want_reset;  /* the loop should let the WAL start over */
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
    m->sys = (const char *)sqlite3_column_text(q, 7);
    m->file = (const char *)sqlite3_column_text(q, 8);
    m->file_id = (const char *)sqlite3_column_text(q, 9);
    m->thumb_id = (const char *)sqlite3_column_text(q, 10);
    m->edited = sqlite3_column_int64(q, 11);
    m->recalled = sqlite3_column_int(q, 12);
}

static int bind_opt(sqlite3_stmt *q, int i, const char *v) {
    return v ? bind_text(q, i, v) : sqlite3_bind_null(q, i);
}

static void sq_close(dx__chat_store *base) {
    sq_store *s = (sq_store *)base;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->ck);
    /* The last connection's close checkpoints and deletes the WAL: with
     * synchronous=FULL again, so that the database is fsynced before. */
    if (s->db) (void)sqlite3_exec(s->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    sqlite3_close(s->db);
    if (s->wal_fd >= 0) close(s->wal_fd);
    dx__free(s);
}

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int sq_sync(dx__chat_store *base) {
    sq_store *s = (sq_store *)base;
    if (s->wal_fd < 0) return 0;
    int64_t t0 = mono_ms();
    while (fdatasync(s->wal_fd) < 0)
        if (errno != EINTR) return DX_EIO;
    atomic_store_explicit(&s->sync_ms, mono_ms() - t0, memory_order_relaxed);
    return 0;
}

/* Every CK_MS: a passive checkpoint waits for nobody, so it copies what
 * it can (what was committed when it started); a few passes catch up with
 * what the loop committed during the previous one. But the WAL starts
 * over only when a writer begins while all of it is copied, which under
 * steady writes (a commit every turn, so several during every pass) does
 * not happen: measured, 1,000 users sending flat out grew it by 45 MB a
 * second, 2,000 users sending one message a second by 20 MB.
 *
 * So past CK_MAX frames (128 MiB with 4 KiB pages) the thread asks the
 * loop (want_reset) to copy the little its own last pass left, itself,
 * right before its next write transaction — with synchronous=FULL for
 * that one checkpoint, so that the database is fsynced before the WAL is
 * reused: two short fsyncs on the loop (about 1 ms here) once per 128
 * MiB, after which that transaction starts the WAL over. A RESTART
 * checkpoint from this thread would do the same while holding the
 * writers back for its whole last pass (measured: ack p99 0.3 s at
 * 10,000 messages/s). While the disk is slow (the last fsync took
 * CK_SLOW_MS or more) the loop is not asked: the WAL grows, up to CK_HARD
 * (4 GiB), where the RESTART is the last resort. */
#define CK_MS 100
#define CK_PASSES 4
#define CK_MAX 32768
#define CK_HARD 1048576
#define CK_SLOW_MS 20

static int sq_checkpoint(dx__chat_store *base) {
    sq_store *s = (sq_store *)base;
    if (!s->ck) return 0;
    int64_t now = mono_ms();
    if (now - s->ck_ms < CK_MS) return 0;
    s->ck_ms = now;
    int log = 0, done = 0;
    for (int i = 0; i < CK_PASSES; i++) {
        int rc = sqlite3_wal_checkpoint_v2(s->ck, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) return 0; /* next time */
        if (rc != SQLITE_OK) return DX_EIO;
        if (done >= log) break;
    }
    if (log < CK_MAX) return 0;
    int64_t slow = atomic_load_explicit(&s->sync_ms, memory_order_relaxed);
    if (slow < CK_SLOW_MS) {
        atomic_store_explicit(&s->want_reset, 1, memory_order_relaxed);
        return 0;
    }
    if (log < CK_HARD) return 0;
    sqlite3_busy_timeout(s->ck, 2000);
    int rc = sqlite3_wal_checkpoint_v2(s->ck, NULL, SQLITE_CHECKPOINT_RESTART, &log, &done);
    sqlite3_busy_timeout(s->ck, 0);
    return rc == SQLITE_OK || rc == SQLITE_BUSY ? 0 : DX_EIO;
}

/* On the loop, before a write transaction, when the store thread asked
 * (sq_checkpoint): the last bit of the WAL copied here, fsyncs included,
 * so that the transaction finds it all copied and starts it over. BUSY
 * (the thread is checkpointing right now) leaves it for the next ask. */
static void reset_wal(sq_store *s) {
    if (!atomic_exchange_explicit(&s->want_reset, 0, memory_order_relaxed)) return;
    if (sqlite3_exec(s->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK) return;
    (void)sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    (void)sqlite3_exec(s->db, "PRAGMA synchronous=OFF", NULL, NULL, NULL);
}

/* The loop's connection waits for a lock (a RESTART checkpoint holds the
 * writers back for its last pass; checkpointers take turns) in steps of
 * 100 µs rather than SQLite's
 * default 1, 2, 5, 10, 25... ms, which kept the loop asleep long after
 * the lock was free (ack p99 28 ms at 2,000 messages/s instead of 8).
 * Up to 2 s, as sqlite3_busy_timeout(2000) did. */
static int busy_wait(void *arg, int n) {
    if (n >= 20000) return 0;
    struct timespec ts = {0, 100000};
    nanosleep(&ts, NULL);
    return 1;
}

/* Opens what the store thread uses, for a database in a file. */
static const char *open_sync(sq_store *s, const char *path) {
    char wal[4096];
    if (snprintf(wal, sizeof wal, "%s-wal", path) >= (int)sizeof wal) return "path too long";
    /* fdatasync works on the file, whichever descriptor names it. The WAL
     * exists from the schema's commit on, and is never removed while a
     * connection is open. */
    s->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
    if (s->wal_fd < 0) return "cannot open the database's WAL file";
    if (sqlite3_open_v2(path, &s->ck, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        sqlite3_exec(s->ck, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK)
        return "cannot open a second connection to the database";
    /* The loop's connection: no fsync at commit, no checkpoint of its own
     * (see the top of this file); a WAL that grew under load is cut back
     * to 256 MiB when it starts over. Not less: the WAL starts over at
     * 128 MiB (CK_MAX) under steady writes, and cutting it to 64 cost an
     * ftruncate of ~35 ms on the loop each time and new blocks to
     * allocate (and journal) for every later commit; reused, its blocks
     * are overwritten in place. */
    sqlite3_busy_handler(s->db, busy_wait, NULL);
    if (sqlite3_exec(s->db,
                     "PRAGMA synchronous=OFF; PRAGMA wal_autocheckpoint=0;"
                     " PRAGMA journal_size_limit=268435456",
                     NULL, NULL, NULL) != SQLITE_OK)
        return "cannot set the database's sync mode";
    s->ck_ms = mono_ms();
    return NULL;
}

/* Indexes the messages put since the index was last brought up to date,
 * and moves its mark (fts_state) with it: in the open transaction, or in
 * one of their own without one. At a commit when enough waited
 * (sq_commit); before an edit or a recall too (the index's update trigger
 * removes the old text, which must have been indexed), before a search,
 * and at open (what the last run left). */
static int fts_catch_up(sq_store *s) {
    if (s->top_mid <= s->fts_tx) return 0;
    int own = sqlite3_get_autocommit(s->db);
    int rc = own ? run(s, stmt(s, S_BEGIN)) : 0;
    if (rc < 0) return rc;
    sqlite3_stmt *q = stmt(s, S_FTS_ADD);
    sqlite3_bind_int64(q, 1, s->fts_tx);
    rc = run(s, q);
    if (rc == 0) {
        q = stmt(s, S_FTS_MARK);
        sqlite3_bind_int64(q, 1, s->top_mid);
        rc = run(s, q);
    }
    if (own) {
        if (rc == 0) rc = run(s, stmt(s, S_COMMIT));
        if (rc < 0 && !sqlite3_get_autocommit(s->db)) (void)run(s, stmt(s, S_ROLLBACK));
    }
    if (rc < 0) return rc;
    s->fts_tx = s->top_mid;
    s->fts_ms = mono_ms();
    if (own) s->fts_mid = s->fts_tx;
    return 0;
}

/* A commit brings the index up to date once this many messages or this
 * long (ms) waited: each time costs FTS5 a new segment to write and, in
 * time, to merge, whatever its size, and a commit holds few messages (one
 * or two at a steady 400 a second), so that indexing every commit cost
 * more than storing the messages did. A search never misses what waits:
 * it catches up first. */
#define FTS_BATCH 256
#define FTS_DELAY_MS 500

static int sq_begin(dx__chat_store *base) {
    sq_store *s = (sq_store *)base;
    reset_wal(s);
    return run(s, stmt(s, S_BEGIN));
}

static int sq_commit(dx__chat_store *base) {
    sq_store *s = (sq_store *)base;
    int rc = 0;
    if (s->top_mid - s->fts_tx >= FTS_BATCH ||
        (s->top_mid > s->fts_tx && mono_ms() - s->fts_ms >= FTS_DELAY_MS))
        rc = fts_catch_up(s);
    if (rc == 0) rc = run(s, stmt(s, S_COMMIT));
    if (rc == 0) {
        s->fts_mid = s->fts_tx;
        s->top_commit = s->top_mid;
    }
    return rc;
}

static void sq_rollback(dx__chat_store *base) {
    sq_store *s = (sq_store *)base;
    if (!sqlite3_get_autocommit(s->db)) (void)run(s, stmt(s, S_ROLLBACK));
    /* The rows went with it, and what it indexed. */
    s->fts_tx = s->fts_mid;
    s->top_mid = s->top_commit;
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

/* The message of (from, cid), put before: 1 with *out (its conversation
 * copied to s->dup_conv, so that no statement stays open: an open read
 * would hold back WAL checkpoints), 0 when there is none, or an error. */
static int find_dup(sq_store *s, const dx__chat_msg *in, dx__chat_msg *out) {
    sqlite3_stmt *q = stmt(s, S_FIND);
    bind_text(q, 1, in->from);
    bind_text(q, 2, in->cid);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        snprintf(s->dup_conv, sizeof s->dup_conv, "%s", col_text(q, 0));
        *out = (dx__chat_msg){.conv = s->dup_conv,
                              .seq = sqlite3_column_int64(q, 1),
                              .mid = sqlite3_column_int64(q, 2),
                              .cid = in->cid,
                              .from = in->from,
                              .text = "",
                              .ts = sqlite3_column_int64(q, 6)};
    }
    sqlite3_reset(q);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : db_err(rc);
}

/* Three statements for a new message, and the lookup of a duplicate only
 * when the insert met one (UNIQUE(sender, cid)): the conversation's last
 * seq, the row with the next, the conversation's new last seq. The write
 * lock of BEGIN IMMEDIATE keeps them atomic. (Before: the lookup first,
 * then UPDATE ... RETURNING for the seq, which buffers its row in an
 * ephemeral table that it opens and closes every time; twice the
 * instructions of this.) */
static int sq_put_msg(dx__chat_store *base, const dx__chat_msg *in, dx__chat_msg *out, int *dup) {
    sq_store *s = (sq_store *)base;
    *dup = 0;
    sqlite3_stmt *q = stmt(s, S_LAST_SEQ);
    bind_text(q, 1, in->conv);
    int rc = sqlite3_step(q);
    int64_t seq = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) + 1 : 0;
    sqlite3_reset(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db_err(rc);
    if (rc == SQLITE_DONE) {
        /* No such conversation: a resend is still answered as a dup. */
        rc = find_dup(s, in, out);
        if (rc < 0) return rc;
        *dup = rc;
        return rc ? 0 : DX_EINVAL;
    }

    q = stmt(s, S_INSERT);
    bind_text(q, 1, in->conv);
    sqlite3_bind_int64(q, 2, seq);
    bind_text(q, 3, in->from);
    bind_text(q, 4, in->cid);
    bind_text(q, 5, in->text);
    sqlite3_bind_int64(q, 6, in->ts);
    bind_opt(q, 7, in->sys);
    bind_opt(q, 8, in->file);
    bind_opt(q, 9, in->file_id);
    bind_opt(q, 10, in->thumb_id);
    rc = run(s, q);
    if (rc < 0) return rc;
    if (sqlite3_changes(s->db) == 0) {
        /* The insert did nothing: (from, cid) was put before. */
        rc = find_dup(s, in, out);
        if (rc < 0) return rc;
        if (rc == 0) return DX_EIO; /* cannot be: the conflict was that row */
        *dup = 1;
        return 0;
    }
    int64_t mid = sqlite3_last_insert_rowid(s->db);

    q = stmt(s, S_NEXT_SEQ);
    bind_text(q, 1, in->conv);
    sqlite3_bind_int64(q, 2, seq);
    rc = run(s, q);
    if (rc < 0) return rc;
    *out = *in;
    out->seq = seq;
    out->mid = mid;
    out->edited = 0;
    out->recalled = 0;
    if (out->mid > s->top_mid) s->top_mid = out->mid;
    if (!sqlite3_get_autocommit(s->db)) return 0;
    /* Outside a transaction the row is committed already: index it now. */
    s->top_commit = s->top_mid;
    return fts_catch_up(s);
}

static int sq_put(dx__chat_store *base, const char *conv, const char *from, const char *cid,
                  const char *text, int64_t ts, dx__chat_msg *out, int *dup) {
    dx__chat_msg in = {.conv = conv, .from = from, .cid = cid, .text = text, .ts = ts};
    return sq_put_msg(base, &in, out, dup);
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
        dx__chat_conv c = {col_text(q, 0), sqlite3_column_int64(q, 1), sqlite3_column_int64(q, 2),
                           (const char *)sqlite3_column_text(q, 3)};
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

/* ---- revision 2 --------------------------------------------------------- */

static int sq_get(dx__chat_store *base, const char *conv, int64_t seq, dx__chat_msg_cb cb,
                  void *arg) {
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = stmt(s, S_GET);
    bind_text(q, 1, conv);
    sqlite3_bind_int64(q, 2, seq);
    int rc = sqlite3_step(q);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(q);
        return rc == SQLITE_DONE ? DX_EINVAL : db_err(rc);
    }
    dx__chat_msg m;
    read_msg(q, &m);
    /* The callback may read the store (another statement): S_GET stays
     * open meanwhile, and is not used by anything it calls. */
    rc = cb(arg, &m);
    sqlite3_reset(q);
    return rc;
}

static int sq_add_member(dx__chat_store *base, const char *conv, const char *uid, int role) {
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = stmt(s, S_ADD);
    bind_text(q, 1, conv);
    bind_text(q, 2, uid);
    sqlite3_bind_int(q, 3, role);
    int rc = run(s, q);
    return rc < 0 ? rc : sqlite3_changes(s->db) > 0;
}

static int sq_group_create(dx__chat_store *base, const dx__chat_msg *in, const char *title,
                           const char *const *uids, size_t n, dx__chat_msg *out, int *dup) {
    sq_store *s = (sq_store *)base;
    /* The create message's (creator, cid) is what makes this idempotent:
     * look for it before writing anything. */
    sqlite3_stmt *q = stmt(s, S_FIND);
    bind_text(q, 1, in->from);
    bind_text(q, 2, in->cid);
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc == SQLITE_ROW) return sq_put_msg(base, in, out, dup);
    if (rc != SQLITE_DONE) return db_err(rc);
    q = stmt(s, S_CONV_GROUP);
    bind_text(q, 1, in->conv);
    bind_text(q, 2, title);
    if ((rc = run(s, q)) < 0) return rc;
    if ((rc = sq_add_member(base, in->conv, in->from, DX_CHAT_ROLE_OWNER)) < 0) return rc;
    for (size_t i = 0; i < n; i++)
        if ((rc = sq_add_member(base, in->conv, uids[i], DX_CHAT_ROLE_MEMBER)) < 0) return rc;
    return sq_put_msg(base, in, out, dup);
}

static int sq_role(dx__chat_store *base, const char *conv, const char *uid) {
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = stmt(s, S_ROLE);
    bind_text(q, 1, conv);
    bind_text(q, 2, uid);
    int rc = sqlite3_step(q);
    int role = rc == SQLITE_ROW ? sqlite3_column_int(q, 0) : DX_CHAT_ROLE_NONE;
    sqlite3_reset(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db_err(rc);
    return role < DX_CHAT_ROLE_MEMBER && rc == SQLITE_ROW ? DX_CHAT_ROLE_MEMBER : role;
}

/* A write on (conv, uid): 1 when it changed a row, 0 when none matched. */
static int changed(sq_store *s, int which, const char *conv, const char *uid, int role) {
    sqlite3_stmt *q = stmt(s, which);
    bind_text(q, 1, conv);
    bind_text(q, 2, uid);
    if (which == S_SET_ROLE) sqlite3_bind_int(q, 3, role);
    int rc = run(s, q);
    return rc < 0 ? rc : sqlite3_changes(s->db) > 0;
}

static int sq_remove_member(dx__chat_store *base, const char *conv, const char *uid) {
    return changed((sq_store *)base, S_REMOVE, conv, uid, 0);
}

static int sq_set_role(dx__chat_store *base, const char *conv, const char *uid, int role) {
    return changed((sq_store *)base, S_SET_ROLE, conv, uid, role);
}

static int sq_set_title(dx__chat_store *base, const char *conv, const char *title) {
    return changed((sq_store *)base, S_SET_TITLE, conv, title, 0) < 0 ? DX_EIO : 0;
}

static int sq_successor(dx__chat_store *base, const char *conv, char uid[33]) {
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = stmt(s, S_SUCCESSOR);
    bind_text(q, 1, conv);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) snprintf(uid, 33, "%s", col_text(q, 0));
    sqlite3_reset(q);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : db_err(rc);
}

static int sq_members_page(dx__chat_store *base, const char *conv, const char *after, int64_t limit,
                           dx__chat_member_cb cb, void *arg) {
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = stmt(s, S_MEMBERS_PAGE);
    bind_text(q, 1, conv);
    bind_text(q, 2, after ? after : "");
    sqlite3_bind_int64(q, 3, limit);
    int rc, stop = 0;
    while (!stop && (rc = sqlite3_step(q)) == SQLITE_ROW)
        stop = cb(arg, col_text(q, 0), sqlite3_column_int(q, 1), sqlite3_column_int64(q, 2));
    sqlite3_reset(q);
    if (stop) return stop;
    return rc == SQLITE_DONE ? 0 : db_err(rc);
}

static int sq_admins(dx__chat_store *base, const char *conv, dx__chat_uid_cb cb, void *arg) {
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = stmt(s, S_ADMINS);
    bind_text(q, 1, conv);
    return each_uid(q, cb, arg);
}

static int sq_recall(dx__chat_store *base, const char *conv, int64_t seq) {
    sq_store *s = (sq_store *)base;
    int rc = fts_catch_up(s);
    if (rc < 0) return rc;
    sqlite3_stmt *q = stmt(s, S_RECALL);
    bind_text(q, 1, conv);
    sqlite3_bind_int64(q, 2, seq);
    return run(s, q);
}

static int sq_edit(dx__chat_store *base, const char *conv, int64_t seq, const char *text,
                   int64_t ts) {
    sq_store *s = (sq_store *)base;
    int rc = fts_catch_up(s);
    if (rc < 0) return rc;
    sqlite3_stmt *q = stmt(s, S_EDIT);
    bind_text(q, 1, conv);
    sqlite3_bind_int64(q, 2, seq);
    bind_text(q, 3, text);
    sqlite3_bind_int64(q, 4, ts);
    return run(s, q);
}

/* Characters (not bytes) of UTF-8 text: the trigram index needs 3. */
static size_t utf8_chars(const char *t) {
    size_t n = 0;
    for (; *t; t++)
        n += ((unsigned char)*t & 0xc0) != 0x80;
    return n;
}

static int sq_search(dx__chat_store *base, const char *uid, const char *conv, const char *qs,
                     int64_t before, int limit, dx__chat_msg_cb cb, void *arg, int64_t *next) {
    sq_store *s = (sq_store *)base;
    /* Inside a transaction a read sees its writes: the index too. */
    int crc = fts_catch_up(s);
    if (crc < 0) return crc;
    int fts = utf8_chars(qs) >= 3;
    char *phrase = NULL;
    *next = 0;
    if (fts) {
        /* One FTS5 phrase: the query in double quotes, its own doubled,
         * so that nothing in it is FTS syntax. */
        size_t n = strlen(qs), k = 0;
        phrase = dx__malloc(2 * n + 3);
        if (!phrase) return DX_ENOMEM;
        phrase[k++] = '"';
        for (size_t i = 0; i < n; i++) {
            if (qs[i] == '"') phrase[k++] = '"';
            phrase[k++] = qs[i];
        }
        phrase[k++] = '"';
        phrase[k] = 0;
    }
    sqlite3_stmt *q = stmt(s, fts ? S_SEARCH_FTS : S_SEARCH_SCAN);
    bind_text(q, 1, fts ? phrase : qs);
    sqlite3_bind_int64(q, 2, before > 0 ? before : INT64_MAX);
    bind_text(q, 3, uid);
    bind_opt(q, 4, conv);
    sqlite3_bind_int64(q, 5, fts ? limit + 1 : SCAN_MAX);
    int rc, stop = 0, got = 0, scanned = 0;
    int64_t given = 0, seen = 0; /* the mid of the last result, of the last row */
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        dx__chat_msg m;
        read_msg(q, &m);
        scanned++;
        seen = m.mid;
        if (!fts && !sqlite3_column_int(q, 13)) continue;
        if (got == limit) {
            *next = given; /* one more than asked: a next page */
            break;
        }
        got++;
        given = m.mid;
        if ((stop = cb(arg, &m)) != 0) break;
    }
    /* The scan looked at a full window without filling the page: what it
     * did not look at comes with the next page. */
    if (rc == SQLITE_DONE && !fts && scanned == SCAN_MAX) *next = seen;
    sqlite3_reset(q);
    dx__free(phrase);
    if (stop) return stop;
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : db_err(rc);
}

static int sq_file_refs(dx__chat_store *base, const char *id, int64_t *n) {
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = stmt(s, S_FILE_REFS);
    bind_text(q, 1, id);
    return one_count(q, n);
}

static int sq_file_find(dx__chat_store *base, const char *uid, const char *conv, const char *id,
                        char *file, size_t cap) {
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = stmt(s, S_FILE_FIND);
    bind_text(q, 1, id);
    bind_text(q, 2, uid);
    bind_opt(q, 3, conv);
    int rc = sqlite3_step(q), found = 0;
    if (rc == SQLITE_ROW) {
        if (cap) snprintf(file, cap, "%s", col_text(q, 0));
        found = sqlite3_column_int(q, 1) ? 1 : 2;
    }
    sqlite3_reset(q);
    return rc == SQLITE_ROW ? found : rc == SQLITE_DONE ? 0 : db_err(rc);
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
    .put_msg = sq_put_msg,
    .get = sq_get,
    .group_create = sq_group_create,
    .role = sq_role,
    .add_member = sq_add_member,
    .remove_member = sq_remove_member,
    .set_role = sq_set_role,
    .set_title = sq_set_title,
    .successor = sq_successor,
    .members_page = sq_members_page,
    .admins = sq_admins,
    .recall = sq_recall,
    .edit = sq_edit,
    .search = sq_search,
    .file_refs = sq_file_refs,
    .file_find = sq_file_find,
    .sync = sq_sync,
    .checkpoint = sq_checkpoint,
};

dx__chat_store *dx__chat_store_sqlite(const char *path, const char **why) {
    sq_store *s = dx__calloc(1, sizeof *s);
    if (!s) {
        *why = "out of memory";
        return NULL;
    }
    s->base.ops = &SQ_OPS;
    s->wal_fd = -1;
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
    sqlite3_stmt *vq = NULL;
    int version = -1;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &vq, NULL) == SQLITE_OK &&
        sqlite3_step(vq) == SQLITE_ROW)
        version = sqlite3_column_int(vq, 0);
    sqlite3_finalize(vq);
    if (version < 0 || version > 4) {
        *why = "cannot read the database's version (or it is from a newer duplex)";
        goto fail;
    }
    rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, SCHEMA, NULL, NULL, NULL);
    if (rc == SQLITE_OK && version == 1) rc = sqlite3_exec(s->db, MIGRATE_1, NULL, NULL, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, SCHEMA_2, NULL, NULL, NULL);
    if (rc == SQLITE_OK && version == 1)
        rc = sqlite3_exec(s->db, "INSERT INTO messages_fts(messages_fts) VALUES('rebuild')", NULL,
                          NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db, "PRAGMA user_version = 4; COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        (void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
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
    /* The index holds the messages up to its mark; the ones after it (a
     * run that ended before their batch) are indexed now. */
    sqlite3_stmt *mq = stmt(s, S_MAX_MID);
    if (sqlite3_step(mq) == SQLITE_ROW) s->top_mid = s->top_commit = sqlite3_column_int64(mq, 0);
    sqlite3_reset(mq);
    mq = stmt(s, S_FTS_GET);
    if (sqlite3_step(mq) == SQLITE_ROW) s->fts_mid = sqlite3_column_int64(mq, 0);
    sqlite3_reset(mq);
    s->fts_tx = s->fts_mid;
    s->fts_ms = mono_ms();
    if (fts_catch_up(s) < 0) {
        *why = "cannot bring the search index up to date";
        goto fail;
    }
    if (strcmp(path, ":memory:") && (*why = open_sync(s, path)) != NULL) goto fail;
    return &s->base;
fail:
    sq_close(&s->base);
    return NULL;
}

/* The shared chat store of a cluster: PostgreSQL through libpq.
 *
 * Every write is ONE statement, run in autocommit, so each is its own
 * transaction and is durable (synchronous_commit on: the WAL is flushed)
 * when the call returns. begin() and commit() therefore only make sure the
 * connection is up: the engine still sends its acks after commit(), which
 * is after every write of the turn returned. We do not hold one
 * transaction open across a loop turn, as the SQLite store does, because
 * with several nodes that would keep row locks on several conversations
 * (and users) for a whole turn, in whatever order requests came: two nodes
 * would block each other, and deadlock. One statement locks one
 * conversation row for the time of one commit. Concurrent commits of
 * several nodes still share WAL flushes inside PostgreSQL.
 *
 * The price is one WAL flush per write on each node (docs/cluster.md has
 * the figures); async libpq with a few connections per node is the way to
 * more.
 *
 * Sequence numbers: put() is one statement that looks for (sender, cid)
 * and, when absent, runs "UPDATE convs SET last_seq = last_seq + 1 ...
 * RETURNING" feeding the INSERT of the message. The UPDATE takes the
 * conversation's row lock until the statement commits, so two nodes
 * writing to one conversation are serialised and the seqs are 1, 2, 3...
 * with no gap: a failed INSERT (a duplicate cid racing on two nodes) rolls
 * the UPDATE back with it, and is answered as the duplicate.
 *
 * The calls are synchronous: a slow database stalls the loop of the node
 * that waits on it (docs/cluster.md, failure modes). A lost connection is
 * reset at once and the statement tried again; when that fails, at most
 * once a second after; meanwhile calls fail with DX_EIO and clients get
 * store_failed. The reset itself never waits long: it is libpq's
 * non-blocking one (PQresetStart/PQresetPoll), given RESET_WAIT_MS when
 * it starts and RESET_GIVE_UP_MS in all, so a database host that takes
 * the connection but does not answer costs the loop a tenth of a second a
 * second at most, not libpq's whole connect_timeout. */
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <duplex/common.h>

#include "chat/store.h"
#include "core/alloc.h"

enum {
    S_TOUCH,
    S_SEEN,
    S_JOIN,
    S_IS_MEMBER,
    S_FIND,
    S_PUT,
    S_READ,
    S_MEMBERS_N,
    S_MEMBERS,
    S_CONVS_OF,
    S_MSGS_OLD,
    S_MSGS_NEW,
    S_UNREAD,
    S_CONTACTS,
    S_ROOMS_N,
    S_GROUP,
    S_GET,
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
    S_SEARCH,
    S_FILE_REFS,
    S_FILE_FIND,
    S_COUNT
};

#define MSG_COLS                                                                                   \
    "conv, seq, mid, cid, sender, text, ts, sys, file, file_id, thumb_id, edited, recalled::int"

static const char *const SQL[S_COUNT] = {
    [S_TOUCH] = "INSERT INTO chat_users(uid, last_seen) VALUES($1, $2::bigint)"
                " ON CONFLICT(uid) DO UPDATE"
                " SET last_seen = GREATEST(chat_users.last_seen, EXCLUDED.last_seen)",
    [S_SEEN] = "SELECT last_seen FROM chat_users WHERE uid = $1",
    /* The conversation and the membership in one statement (one commit). */
    [S_JOIN] = "WITH c AS (INSERT INTO chat_convs(conv, last_seq) VALUES($1, 0)"
               " ON CONFLICT DO NOTHING)"
               " INSERT INTO chat_members(conv, uid, read_seq) VALUES($1, $2, 0)"
               " ON CONFLICT DO NOTHING",
    [S_IS_MEMBER] = "SELECT 1 FROM chat_members WHERE conv = $1 AND uid = $2",
    [S_FIND] = "SELECT conv, seq, mid, ts FROM chat_messages WHERE sender = $1 AND cid = $2",
    /* One round trip: the duplicate if (sender, cid) exists (then the
     * UPDATE matches no row, so no seq is used up), else the next seq and
     * the new message. Column 4 says which. */
    [S_PUT] =
        "WITH d AS (SELECT conv, seq, mid, ts FROM chat_messages"
        " WHERE sender = $2::text AND cid = $3::text),"
        " s AS (UPDATE chat_convs SET last_seq = last_seq + 1 WHERE conv = $1::text"
        " AND NOT EXISTS (SELECT 1 FROM d) RETURNING last_seq),"
        " i AS (INSERT INTO chat_messages(conv, seq, sender, cid, text, ts, sys, file, file_id,"
        " thumb_id) SELECT $1::text, last_seq, $2::text, $3::text, $4::text, $5::bigint,"
        " $6::text, $7::text, $8::text, $9::text FROM s"
        " RETURNING conv, seq, mid, ts)"
        " SELECT conv, seq, mid, ts, 0 FROM i UNION ALL SELECT conv, seq, mid, ts, 1 FROM d",
    [S_READ] = "UPDATE chat_members SET read_seq = GREATEST(read_seq, LEAST($3::bigint,"
               " (SELECT last_seq FROM chat_convs WHERE conv = $1)))"
               " WHERE conv = $1 AND uid = $2 RETURNING read_seq",
    [S_MEMBERS_N] = "SELECT count(*) FROM chat_members WHERE conv = $1",
    [S_MEMBERS] = "SELECT uid, read_seq FROM chat_members WHERE conv = $1 ORDER BY uid",
    [S_CONVS_OF] = "SELECT m.conv, c.last_seq, m.read_seq, c.title FROM chat_members m"
                   " JOIN chat_convs c ON c.conv = m.conv WHERE m.uid = $1 AND m.conv > $2"
                   " ORDER BY m.conv LIMIT $3::bigint",
    [S_MSGS_OLD] = "SELECT " MSG_COLS " FROM chat_messages"
                   " WHERE conv = $1 AND seq > $2::bigint AND seq < $3::bigint"
                   " ORDER BY seq LIMIT $4::bigint",
    [S_MSGS_NEW] = "SELECT * FROM (SELECT " MSG_COLS " FROM chat_messages"
                   " WHERE conv = $1 AND seq > $2::bigint AND seq < $3::bigint"
                   " ORDER BY seq DESC LIMIT $4::bigint) t ORDER BY seq",
    /* System and event messages are not unread (docs/chat-protocol.md),
     * nor recalled ones: nothing is left to read. */
    [S_UNREAD] = "SELECT count(*) FROM chat_messages WHERE conv = $1 AND seq > $3::bigint"
                 " AND sender <> $2 AND sys IS NULL AND NOT recalled",
    [S_CONTACTS] = "SELECT DISTINCT b.uid, COALESCE(u.last_seen, 0) FROM chat_members a"
                   " JOIN chat_members b ON b.conv = a.conv AND b.uid <> a.uid"
                   " LEFT JOIN chat_users u ON u.uid = b.uid"
                   " WHERE a.uid = $1 AND (a.conv < 'g:' OR a.conv >= 'g;') ORDER BY b.uid",
    /* A range on chat_members_by_uid: 'g;' is the byte after 'g:'. */
    [S_ROOMS_N] =
        "SELECT count(*) FROM chat_members WHERE uid = $1 AND conv >= 'g:' AND conv < 'g;'",
    /* A group in one statement, so in one transaction: the conversation
     * (its last_seq already 1), the owner ($2), the members ($7, an array),
     * and the create message (seq 1) — unless (creator, cid) names a
     * message already, which is then returned (column 4 = 1). A race of
     * two nodes on one (creator, cid) fails the second statement whole
     * (unique violation), and it is answered as the duplicate. */
    [S_GROUP] =
        "WITH d AS (SELECT conv, seq, mid, ts FROM chat_messages"
        " WHERE sender = $2::text AND cid = $3::text),"
        " c AS (INSERT INTO chat_convs(conv, last_seq, title) SELECT $1::text, 1, $6::text"
        " WHERE NOT EXISTS (SELECT 1 FROM d) RETURNING conv),"
        " o AS (INSERT INTO chat_members(conv, uid, read_seq, role, joined)"
        " SELECT conv, $2::text, 0, 3, 1 FROM c),"
        " mm AS (INSERT INTO chat_members(conv, uid, read_seq, role, joined)"
        " SELECT c.conv, t.u, 0, 1, 1 + t.n FROM c, unnest($7::text[]) WITH ORDINALITY"
        " AS t(u, n) ON CONFLICT DO NOTHING),"
        " i AS (INSERT INTO chat_messages(conv, seq, sender, cid, text, ts, sys)"
        " SELECT conv, 1, $2::text, $3::text, $4::text, $5::bigint, $8::text FROM c"
        " RETURNING conv, seq, mid, ts)"
        " SELECT conv, seq, mid, ts, 0 FROM i UNION ALL SELECT conv, seq, mid, ts, 1 FROM d",
    [S_GET] = "SELECT " MSG_COLS " FROM chat_messages WHERE conv = $1 AND seq = $2::bigint",
    /* `joined` orders the members for the owner's succession. */
    [S_ADD] = "INSERT INTO chat_members(conv, uid, read_seq, role, joined)"
              " SELECT $1::text, $2::text, 0, $3::int, COALESCE(MAX(joined), 0) + 1"
              " FROM chat_members WHERE conv = $1::text ON CONFLICT DO NOTHING",
    [S_ROLE] = "SELECT role FROM chat_members WHERE conv = $1 AND uid = $2",
    [S_REMOVE] = "DELETE FROM chat_members WHERE conv = $1 AND uid = $2",
    [S_SET_ROLE] = "UPDATE chat_members SET role = $3::int WHERE conv = $1 AND uid = $2",
    [S_SET_TITLE] = "UPDATE chat_convs SET title = $2 WHERE conv = $1",
    [S_SUCCESSOR] = "SELECT uid FROM chat_members WHERE conv = $1"
                    " ORDER BY role = 2 DESC, joined, uid LIMIT 1",
    [S_MEMBERS_PAGE] = "SELECT uid, role, read_seq FROM chat_members WHERE conv = $1 AND uid > $2"
                       " ORDER BY uid LIMIT $3::bigint",
    [S_ADMINS] = "SELECT uid, role FROM chat_members WHERE conv = $1 AND role >= 2 ORDER BY uid",
    [S_RECALL] = "UPDATE chat_messages SET text = '', file = NULL, file_id = NULL,"
                 " thumb_id = NULL, recalled = true WHERE conv = $1 AND seq = $2::bigint",
    [S_EDIT] = "UPDATE chat_messages SET text = $3, edited = $4::bigint"
               " WHERE conv = $1 AND seq = $2::bigint",
    /* ILIKE on a pattern with the query's % _ \\ escaped: a substring,
     * case-insensitive. The trigram index (below) serves it when pg_trgm
     * could be created; without it this is a scan of the user's
     * conversations, newest first, that stops at the page's end. */
    [S_SEARCH] = "SELECT " MSG_COLS " FROM chat_messages"
                 " WHERE conv IN (SELECT conv FROM chat_members WHERE uid = $1)"
                 " AND ($2::text IS NULL OR conv = $2::text) AND mid < $3::bigint"
                 " AND sys IS NULL AND NOT recalled AND text ILIKE $4 ORDER BY mid DESC"
                 " LIMIT $5::bigint",
    [S_FILE_REFS] = "SELECT count(*) FROM chat_messages WHERE file_id = $1 OR thumb_id = $1",
    [S_FILE_FIND] = "SELECT m.file, (m.file_id IS NOT DISTINCT FROM $1::text)::int"
                    " FROM chat_messages m JOIN chat_members b ON b.conv = m.conv AND b.uid = $2"
                    " WHERE (m.file_id = $1::text OR m.thumb_id = $1::text) AND NOT m.recalled"
                    " AND ($3::text IS NULL OR m.conv = $3::text) ORDER BY 2 DESC LIMIT 1",
};

/* COLLATE "C": byte order, as SQLite sorts, whatever the database's locale.
 * The advisory lock keeps nodes that start together from racing on
 * CREATE ... IF NOT EXISTS (which is not safe against itself). */
static const char SCHEMA[] =
    "BEGIN;"
    "SELECT pg_advisory_xact_lock(7596336);" /* any constant of ours */
    "CREATE TABLE IF NOT EXISTS chat_users(uid text COLLATE \"C\" PRIMARY KEY,"
    " last_seen bigint NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS chat_convs(conv text COLLATE \"C\" PRIMARY KEY,"
    " last_seq bigint NOT NULL);"
    "CREATE TABLE IF NOT EXISTS chat_members(conv text COLLATE \"C\" NOT NULL,"
    " uid text COLLATE \"C\" NOT NULL, read_seq bigint NOT NULL, PRIMARY KEY(conv, uid));"
    "CREATE INDEX IF NOT EXISTS chat_members_by_uid ON chat_members(uid, conv);"
    "CREATE TABLE IF NOT EXISTS chat_messages(mid bigserial PRIMARY KEY,"
    " conv text COLLATE \"C\" NOT NULL, seq bigint NOT NULL, sender text COLLATE \"C\" NOT NULL,"
    " cid text COLLATE \"C\" NOT NULL, text text NOT NULL, ts bigint NOT NULL,"
    " UNIQUE(conv, seq), UNIQUE(sender, cid));"
    /* Revision 2: groups, files, recall, edit (and tables of version 1
     * get the columns). */
    "ALTER TABLE chat_convs ADD COLUMN IF NOT EXISTS title text;"
    "ALTER TABLE chat_members ADD COLUMN IF NOT EXISTS role int NOT NULL DEFAULT 1,"
    " ADD COLUMN IF NOT EXISTS joined bigint NOT NULL DEFAULT 0;"
    "ALTER TABLE chat_messages ADD COLUMN IF NOT EXISTS sys text,"
    " ADD COLUMN IF NOT EXISTS file text, ADD COLUMN IF NOT EXISTS file_id text,"
    " ADD COLUMN IF NOT EXISTS thumb_id text,"
    " ADD COLUMN IF NOT EXISTS edited bigint NOT NULL DEFAULT 0,"
    " ADD COLUMN IF NOT EXISTS recalled boolean NOT NULL DEFAULT false;"
    "CREATE INDEX IF NOT EXISTS chat_messages_by_file ON chat_messages(file_id)"
    " WHERE file_id IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS chat_messages_by_thumb ON chat_messages(thumb_id)"
    " WHERE thumb_id IS NOT NULL;"
    "COMMIT;";

/* Search uses a pg_trgm GIN index when the extension can be created (it is
 * "trusted" since PostgreSQL 13: a database owner may; Debian's
 * postgresql package ships it). When it cannot, search still works, with
 * a scan (S_SEARCH). */
static const char SCHEMA_TRGM[] =
    "BEGIN;"
    "SELECT pg_advisory_xact_lock(7596336);"
    "CREATE EXTENSION IF NOT EXISTS pg_trgm;"
    "CREATE INDEX IF NOT EXISTS chat_messages_trgm ON chat_messages USING gin (text gin_trgm_ops);"
    "COMMIT;";

/* Memberships of direct conversations this node has seen in the database.
 * Nobody leaves a direct conversation, so such a membership once seen stays
 * true, and a direct-mapped cache of them saves the join/is_member round
 * trips that every direct send makes. Rooms and groups are not cached:
 * their members leave and are removed, on any node. */
#define MEMO_SLOTS 1024
#define MEMO_KEY 136 /* conv (<= 96) + NUL + uid (<= 32) + NUL */

/* A reset waits at most this long in one call (a database on the same
 * network answers in a few ms), and is abandoned after RESET_GIVE_UP_MS. */
#define RESET_WAIT_MS 100
#define RESET_GIVE_UP_MS 5000

typedef struct pg_store {
    dx__chat_store base;
    PGconn *db;
    char (*memo)[MEMO_KEY];
    int prepared;                       /* the statements exist on this connection */
    int64_t last_reset_ms;              /* monotonic: when the last reset started */
    int resetting;                      /* a reset is under way */
    PostgresPollingStatusType reset_st; /* what PQresetPoll last said */
    char dup_conv[96];                  /* the conversation of the last duplicate put() found */
} pg_store;

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int prepare_all(pg_store *s) {
    for (int i = 0; i < S_COUNT; i++) {
        char name[8];
        snprintf(name, sizeof name, "dx%d", i);
        PGresult *r = PQprepare(s->db, name, SQL[i], 0, NULL);
        int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!ok) return -1;
    }
    s->prepared = 1;
    return 0;
}

/* An acked message must survive a crash of the database server too: turn
 * synchronous_commit back on when the server's default has it off. */
static int session_setup(pg_store *s) {
    PGresult *r = PQexec(s->db, "SHOW synchronous_commit");
    int off = r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
              (!strcmp(PQgetvalue(r, 0, 0), "off") || !strcmp(PQgetvalue(r, 0, 0), "local"));
    PQclear(r);
    if (off) {
        r = PQexec(s->db, "SET synchronous_commit = on");
        int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!ok) return -1;
    }
    return prepare_all(s);
}

/* Advances a reset for at most `wait_ms`: 1 when connected, 0 when still
 * under way, -1 when it failed or ran out of time. */
static int reset_poll(pg_store *s, int64_t now, int wait_ms) {
    int64_t until = now + wait_ms;
    while (s->reset_st != PGRES_POLLING_OK) {
        if (s->reset_st == PGRES_POLLING_FAILED) return -1;
        /* PQresetPoll must be called only once the socket is ready. */
        struct pollfd p = {.fd = PQsocket(s->db),
                           .events = s->reset_st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
        int left = (int)(until - now);
        int n = p.fd < 0 ? -1 : poll(&p, 1, left > 0 ? left : 0);
        now = mono_ms();
        if (n < 0 && errno != EINTR) return -1;
        if (n < 0) n = 0;
        if (n == 0) return now - s->last_reset_ms >= RESET_GIVE_UP_MS ? -1 : 0;
        s->reset_st = PQresetPoll(s->db);
    }
    return 1;
}

/* The connection is usable, or made so: a reset starts at most once a
 * second and waits RESET_WAIT_MS at most, when it starts; the calls that
 * come while it is still under way only look whether it got further. */
static int ensure(pg_store *s) {
    if (!s->resetting && PQstatus(s->db) == CONNECTION_OK && s->prepared) return 0;
    int64_t now = mono_ms();
    int wait = 0; /* a reset under way is only looked at */
    if (!s->resetting) {
        if (now - s->last_reset_ms < 1000) return DX_EIO;
        s->last_reset_ms = now;
        if (PQstatus(s->db) != CONNECTION_OK) {
            s->prepared = 0;
            if (!PQresetStart(s->db)) return DX_EIO;
            s->resetting = 1;
            s->reset_st = PGRES_POLLING_WRITING; /* as libpq says to start */
            wait = RESET_WAIT_MS;
        }
    }
    if (s->resetting) {
        int r = reset_poll(s, now, wait);
        if (r == 0) return DX_EIO;
        s->resetting = 0;
        if (r < 0) {
            s->base.errors++; /* a reconnection that failed */
            return DX_EIO;    /* the next try starts a new reset */
        }
    }
    if (session_setup(s) < 0) {
        s->base.errors++;
        return DX_EIO;
    }
    return 0;
}

/* Runs prepared statement `which` with text parameters. NULL on failure
 * (the result, if any, is cleared); *state gets the SQLSTATE then. */
static PGresult *exec(pg_store *s, int which, int n, const char *const *params, int *err,
                      char state[6]) {
    char name[8];
    snprintf(name, sizeof name, "dx%d", which);
    for (int attempt = 0;; attempt++) {
        PGresult *r = PQexecPrepared(s->db, name, n, params, NULL, NULL, 0);
        ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
        if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) return r;
        const char *code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        /* dx_chat_stats.pg_errors; not a unique violation, which put()
         * answers as the duplicate it is (a resend racing its original). */
        if (!code || strcmp(code, "23505") != 0) s->base.errors++;
        if (state) snprintf(state, 6, "%s", code ? code : "");
        *err = r ? DX_EIO : DX_ENOMEM;
        PQclear(r);
        if (PQstatus(s->db) == CONNECTION_OK) return NULL;
        /* The server restarted, or the connection broke: one new connection
         * and one more try (every write here is idempotent: a put that had
         * committed is found as its own duplicate). The prepared statements
         * went with the old connection. */
        s->prepared = 0;
        if (attempt > 0 || ensure(s) < 0) return NULL;
    }
}

static int64_t val64(const PGresult *r, int row, int col) {
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* A column that may be NULL. */
static const char *opt(const PGresult *r, int row, int col) {
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

/* A row of MSG_COLS from column `c`. */
static void row_msg(const PGresult *r, int i, dx__chat_msg *m) {
    *m = (dx__chat_msg){.conv = PQgetvalue(r, i, 0),
                        .seq = val64(r, i, 1),
                        .mid = val64(r, i, 2),
                        .cid = PQgetvalue(r, i, 3),
                        .from = PQgetvalue(r, i, 4),
                        .text = PQgetvalue(r, i, 5),
                        .ts = val64(r, i, 6),
                        .sys = opt(r, i, 7),
                        .file = opt(r, i, 8),
                        .file_id = opt(r, i, 9),
                        .thumb_id = opt(r, i, 10),
                        .edited = val64(r, i, 11),
                        .recalled = (int)val64(r, i, 12)};
}

static void i64(char *buf, int64_t v) {
    snprintf(buf, 24, "%lld", (long long)v);
}

/* CREATE ... IF NOT EXISTS says "skipping" as a NOTICE: not for stderr. */
static void no_notice(void *arg, const char *message) {}

static void pg_close(dx__chat_store *base) {
    pg_store *s = (pg_store *)base;
    PQfinish(s->db);
    dx__free(s->memo);
    dx__free(s);
}

static int pg_begin(dx__chat_store *base) {
    return ensure((pg_store *)base);
}

static int pg_commit(dx__chat_store *base) {
    return 0; /* every write committed as it ran (see the top) */
}

static void pg_rollback(dx__chat_store *base) {}

/* A statement whose rows we do not need. */
static int run(pg_store *s, int which, int n, const char *const *p) {
    int err = 0;
    if (!s->prepared && ensure(s) < 0) return DX_EIO;
    PGresult *r = exec(s, which, n, p, &err, NULL);
    if (!r) return err;
    PQclear(r);
    return 0;
}

static int pg_touch(dx__chat_store *base, const char *uid, int64_t ts) {
    char t[24];
    i64(t, ts);
    const char *p[2] = {uid, t};
    return run((pg_store *)base, S_TOUCH, 2, p);
}

/* A one-row, one-column integer query: *out (0 when no row). */
static int scalar(pg_store *s, int which, int n, const char *const *p, int64_t *out, int *found) {
    int err = 0;
    if (!s->prepared && ensure(s) < 0) return DX_EIO;
    PGresult *r = exec(s, which, n, p, &err, NULL);
    if (!r) return err;
    int rows = PQntuples(r);
    *out = rows ? val64(r, 0, 0) : 0;
    if (found) *found = rows > 0;
    PQclear(r);
    return 0;
}

static int pg_last_seen(dx__chat_store *base, const char *uid, int64_t *ts) {
    const char *p[1] = {uid};
    return scalar((pg_store *)base, S_SEEN, 1, p, ts, NULL);
}

/* The cache slot of (conv, uid) and its key; NULL when too long to keep. */
static char *memo_slot(pg_store *s, const char *conv, const char *uid, char key[MEMO_KEY]) {
    size_t a = strlen(conv), b = strlen(uid);
    if (!s->memo || a + b + 2 > MEMO_KEY || conv[0] != 'd') return NULL;
    memset(key, 0, MEMO_KEY);
    memcpy(key, conv, a);
    memcpy(key + a + 1, uid, b);
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < a + b + 1; i++)
        h = (h ^ (uint8_t)key[i]) * 1099511628211ull;
    return s->memo[h % MEMO_SLOTS];
}

static int memo_has(pg_store *s, const char *conv, const char *uid) {
    char key[MEMO_KEY];
    char *slot = memo_slot(s, conv, uid, key);
    return slot && !memcmp(slot, key, MEMO_KEY);
}

static void memo_add(pg_store *s, const char *conv, const char *uid) {
    char key[MEMO_KEY];
    char *slot = memo_slot(s, conv, uid, key);
    if (slot) memcpy(slot, key, MEMO_KEY);
}

static int pg_join(dx__chat_store *base, const char *conv, const char *uid) {
    pg_store *s = (pg_store *)base;
    if (memo_has(s, conv, uid)) return 0;
    const char *p[2] = {conv, uid};
    int err = 0;
    if (!s->prepared && ensure(s) < 0) return DX_EIO;
    PGresult *r = exec(s, S_JOIN, 2, p, &err, NULL);
    if (!r) return err;
    /* ON CONFLICT DO NOTHING inserted one row when the member is new. */
    int added = strtol(PQcmdTuples(r), NULL, 10) > 0;
    PQclear(r);
    memo_add(s, conv, uid);
    return added;
}

static int pg_is_member(dx__chat_store *base, const char *conv, const char *uid) {
    pg_store *s = (pg_store *)base;
    if (memo_has(s, conv, uid)) return 1;
    const char *p[2] = {conv, uid};
    int64_t v;
    int found = 0;
    int rc = scalar(s, S_IS_MEMBER, 2, p, &v, &found);
    if (rc == 0 && found) memo_add(s, conv, uid);
    return rc < 0 ? rc : found;
}

/* The stored message of (from, cid), as a duplicate: 1 found, 0 not. */
/* The stored message a resend duplicates, from row 0 of `r` (conv, seq,
 * mid, ts in columns 0-3, as S_FIND and S_PUT both return them). */
static void dup_from_row(pg_store *s, PGresult *r, const char *from, const char *cid,
                         dx__chat_msg *out) {
    snprintf(s->dup_conv, sizeof s->dup_conv, "%s", PQgetvalue(r, 0, 0));
    *out = (dx__chat_msg){.conv = s->dup_conv,
                          .seq = val64(r, 0, 1),
                          .mid = val64(r, 0, 2),
                          .cid = cid,
                          .from = from,
                          .text = "",
                          .ts = val64(r, 0, 3)};
}

static int find_dup(pg_store *s, const char *from, const char *cid, dx__chat_msg *out) {
    const char *p[2] = {from, cid};
    int err = 0;
    PGresult *r = exec(s, S_FIND, 2, p, &err, NULL);
    if (!r) return err;
    int found = PQntuples(r) > 0;
    if (found) {
        dup_from_row(s, r, from, cid, out);
    }
    PQclear(r);
    return found;
}

static int pg_put_msg(dx__chat_store *base, const dx__chat_msg *in, dx__chat_msg *out, int *dup) {
    pg_store *s = (pg_store *)base;
    if (!s->prepared && ensure(s) < 0) return DX_EIO;
    *dup = 0;
    int rc;
    char t[24];
    i64(t, in->ts);
    const char *p[9] = {in->conv, in->from, in->cid,     in->text,    t,
                        in->sys,  in->file, in->file_id, in->thumb_id};
    int err = 0;
    char state[6] = "";
    PGresult *r = exec(s, S_PUT, 9, p, &err, state);
    if (!r) {
        /* The same (from, cid) committed meanwhile by another node (a
         * resend racing its original): answer it as the duplicate. */
        if (!strcmp(state, "23505") && (rc = find_dup(s, in->from, in->cid, out)) > 0) {
            *dup = 1;
            return 0;
        }
        return err;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        return DX_EINVAL; /* no such conversation */
    }
    *dup = val64(r, 0, 4) != 0;
    if (*dup) {
        dup_from_row(s, r, in->from, in->cid, out);
    } else {
        *out = *in;
        out->seq = val64(r, 0, 1);
        out->mid = val64(r, 0, 2);
        out->edited = 0;
        out->recalled = 0;
    }
    PQclear(r);
    return 0;
}

static int pg_put(dx__chat_store *base, const char *conv, const char *from, const char *cid,
                  const char *text, int64_t ts, dx__chat_msg *out, int *dup) {
    dx__chat_msg in = {.conv = conv, .from = from, .cid = cid, .text = text, .ts = ts};
    return pg_put_msg(base, &in, out, dup);
}

static int pg_mark_read(dx__chat_store *base, const char *conv, const char *uid, int64_t seq,
                        int64_t *now) {
    char q[24];
    i64(q, seq);
    const char *p[3] = {conv, uid, q};
    int found = 0;
    int rc = scalar((pg_store *)base, S_READ, 3, p, now, &found);
    if (rc < 0) return rc;
    return found ? 0 : DX_EINVAL; /* not a member */
}

/* Rows of (text, integer), one callback each. The result is complete in
 * memory, so callbacks may use the store meanwhile. */
static int each_uid(pg_store *s, int which, const char *const *p, dx__chat_uid_cb cb, void *arg) {
    int err = 0;
    if (!s->prepared && ensure(s) < 0) return DX_EIO;
    PGresult *r = exec(s, which, 1, p, &err, NULL);
    if (!r) return err;
    int stop = 0;
    for (int i = 0, n = PQntuples(r); i < n && !stop; i++)
        stop = cb(arg, PQgetvalue(r, i, 0), val64(r, i, 1));
    PQclear(r);
    return stop;
}

static int pg_members(dx__chat_store *base, const char *conv, int64_t max, int64_t *count,
                      dx__chat_uid_cb cb, void *arg) {
    pg_store *s = (pg_store *)base;
    const char *p[1] = {conv};
    int64_t n = 0;
    int rc = scalar(s, S_MEMBERS_N, 1, p, &n, NULL);
    if (rc < 0) return rc;
    if (count) *count = n;
    if (n > max) return 0;
    return each_uid(s, S_MEMBERS, p, cb, arg);
}

static int pg_convs_of(dx__chat_store *base, const char *uid, const char *after, int64_t limit,
                       dx__chat_conv_cb cb, void *arg) {
    pg_store *s = (pg_store *)base;
    char l[24];
    i64(l, limit);
    const char *p[3] = {uid, after ? after : "", l};
    int err = 0;
    if (!s->prepared && ensure(s) < 0) return DX_EIO;
    PGresult *r = exec(s, S_CONVS_OF, 3, p, &err, NULL);
    if (!r) return err;
    int stop = 0;
    for (int i = 0, n = PQntuples(r); i < n && !stop; i++) {
        dx__chat_conv c = {PQgetvalue(r, i, 0), val64(r, i, 1), val64(r, i, 2), opt(r, i, 3)};
        stop = cb(arg, &c);
    }
    PQclear(r);
    return stop;
}

static int pg_messages(dx__chat_store *base, const char *conv, int64_t after, int64_t before,
                       int limit, int newest, dx__chat_msg_cb cb, void *arg, int *more) {
    pg_store *s = (pg_store *)base;
    char a[24], b[24], l[24];
    i64(a, after);
    i64(b, before > 0 ? before : INT64_MAX);
    i64(l, (int64_t)limit + 1); /* one more row tells whether there is more */
    const char *p[4] = {conv, a, b, l};
    int err = 0;
    if (!s->prepared && ensure(s) < 0) return DX_EIO;
    PGresult *r = exec(s, newest ? S_MSGS_NEW : S_MSGS_OLD, 4, p, &err, NULL);
    if (!r) return err;
    int n = PQntuples(r);
    int extra = n > limit;
    if (more) *more = extra;
    /* Ascending either way; the extra row is the oldest for `newest`, the
     * newest otherwise. */
    int from = extra && newest ? 1 : 0, to = extra && !newest ? n - 1 : n;
    int stop = 0;
    for (int i = from; i < to && !stop; i++) {
        dx__chat_msg m;
        row_msg(r, i, &m);
        stop = cb(arg, &m);
    }
    PQclear(r);
    return stop;
}

static int pg_unread(dx__chat_store *base, const char *conv, const char *uid, int64_t seq,
                     int64_t *n) {
    char q[24];
    i64(q, seq);
    const char *p[3] = {conv, uid, q};
    return scalar((pg_store *)base, S_UNREAD, 3, p, n, NULL);
}

static int pg_contacts(dx__chat_store *base, const char *uid, dx__chat_uid_cb cb, void *arg) {
    const char *p[1] = {uid};
    return each_uid((pg_store *)base, S_CONTACTS, p, cb, arg);
}

static int pg_rooms_of(dx__chat_store *base, const char *uid, int64_t *n) {
    const char *p[1] = {uid};
    return scalar((pg_store *)base, S_ROOMS_N, 1, p, n, NULL);
}

/* ---- revision 2 --------------------------------------------------------- */

/* A prepared statement's result, or NULL with *err. */
static PGresult *query(pg_store *s, int which, int n, const char *const *p, int *err) {
    if (!s->prepared && ensure(s) < 0) {
        *err = DX_EIO;
        return NULL;
    }
    return exec(s, which, n, p, err, NULL);
}

/* A write: the number of rows it changed, or a negative code. */
static int changed(pg_store *s, int which, int n, const char *const *p) {
    int err = 0;
    PGresult *r = query(s, which, n, p, &err);
    if (!r) return err;
    int rows = (int)strtol(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return rows;
}

static int pg_get(dx__chat_store *base, const char *conv, int64_t seq, dx__chat_msg_cb cb,
                  void *arg) {
    char q[24];
    i64(q, seq);
    const char *p[2] = {conv, q};
    int err = 0;
    PGresult *r = query((pg_store *)base, S_GET, 2, p, &err);
    if (!r) return err;
    int rc = DX_EINVAL;
    if (PQntuples(r) > 0) {
        dx__chat_msg m;
        row_msg(r, 0, &m);
        rc = cb(arg, &m);
    }
    PQclear(r);
    return rc;
}

static int pg_group_create(dx__chat_store *base, const dx__chat_msg *in, const char *title,
                           const char *const *uids, size_t n, dx__chat_msg *out, int *dup) {
    pg_store *s = (pg_store *)base;
    /* The members as an array literal: uids need no quoting (A-Z a-z 0-9
     * _ -), and they were checked. */
    size_t cap = 3 + n * 34;
    char *arr = dx__malloc(cap), t[24];
    if (!arr) return DX_ENOMEM;
    size_t k = 0;
    arr[k++] = '{';
    for (size_t i = 0; i < n; i++)
        k += (size_t)snprintf(arr + k, cap - k, "%s%s", i ? "," : "", uids[i]);
    arr[k++] = '}';
    arr[k] = 0;
    i64(t, in->ts);
    const char *p[8] = {in->conv, in->from, in->cid, in->text, t, title, arr, in->sys};
    int err = 0, rc;
    char state[6] = "";
    *dup = 0;
    PGresult *r = s->prepared || ensure(s) == 0 ? exec(s, S_GROUP, 8, p, &err, state) : NULL;
    dx__free(arr);
    if (!r) {
        if (!strcmp(state, "23505") && (rc = find_dup(s, in->from, in->cid, out)) > 0) {
            *dup = 1;
            return 0;
        }
        return err ? err : DX_EIO;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        return DX_EIO;
    }
    *dup = val64(r, 0, 4) != 0;
    if (*dup) {
        dup_from_row(s, r, in->from, in->cid, out);
    } else {
        *out = *in;
        out->seq = val64(r, 0, 1);
        out->mid = val64(r, 0, 2);
    }
    PQclear(r);
    return 0;
}

static int pg_role(dx__chat_store *base, const char *conv, const char *uid) {
    const char *p[2] = {conv, uid};
    int64_t v = 0;
    int found = 0;
    int rc = scalar((pg_store *)base, S_ROLE, 2, p, &v, &found);
    if (rc < 0) return rc;
    return !found ? DX_CHAT_ROLE_NONE : v < DX_CHAT_ROLE_MEMBER ? DX_CHAT_ROLE_MEMBER : (int)v;
}

static int pg_add_member(dx__chat_store *base, const char *conv, const char *uid, int role) {
    char r[24];
    i64(r, role);
    const char *p[3] = {conv, uid, r};
    int rc = changed((pg_store *)base, S_ADD, 3, p);
    return rc < 0 ? rc : rc > 0;
}

static int pg_remove_member(dx__chat_store *base, const char *conv, const char *uid) {
    const char *p[2] = {conv, uid};
    int rc = changed((pg_store *)base, S_REMOVE, 2, p);
    return rc < 0 ? rc : rc > 0;
}

static int pg_set_role(dx__chat_store *base, const char *conv, const char *uid, int role) {
    char r[24];
    i64(r, role);
    const char *p[3] = {conv, uid, r};
    int rc = changed((pg_store *)base, S_SET_ROLE, 3, p);
    return rc < 0 ? rc : rc > 0;
}

static int pg_set_title(dx__chat_store *base, const char *conv, const char *title) {
    const char *p[2] = {conv, title};
    int rc = changed((pg_store *)base, S_SET_TITLE, 2, p);
    return rc < 0 ? rc : 0;
}

static int pg_successor(dx__chat_store *base, const char *conv, char uid[33]) {
    const char *p[1] = {conv};
    int err = 0;
    PGresult *r = query((pg_store *)base, S_SUCCESSOR, 1, p, &err);
    if (!r) return err;
    int found = PQntuples(r) > 0;
    if (found) snprintf(uid, 33, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return found;
}

static int pg_members_page(dx__chat_store *base, const char *conv, const char *after, int64_t limit,
                           dx__chat_member_cb cb, void *arg) {
    char l[24];
    i64(l, limit);
    const char *p[3] = {conv, after ? after : "", l};
    int err = 0;
    PGresult *r = query((pg_store *)base, S_MEMBERS_PAGE, 3, p, &err);
    if (!r) return err;
    int stop = 0;
    for (int i = 0, n = PQntuples(r); i < n && !stop; i++)
        stop = cb(arg, PQgetvalue(r, i, 0), (int)val64(r, i, 1), val64(r, i, 2));
    PQclear(r);
    return stop;
}

static int pg_admins(dx__chat_store *base, const char *conv, dx__chat_uid_cb cb, void *arg) {
    const char *p[1] = {conv};
    return each_uid((pg_store *)base, S_ADMINS, p, cb, arg);
}

static int pg_recall(dx__chat_store *base, const char *conv, int64_t seq) {
    char q[24];
    i64(q, seq);
    const char *p[2] = {conv, q};
    int rc = changed((pg_store *)base, S_RECALL, 2, p);
    return rc < 0 ? rc : 0;
}

static int pg_edit(dx__chat_store *base, const char *conv, int64_t seq, const char *text,
                   int64_t ts) {
    char q[24], t[24];
    i64(q, seq);
    i64(t, ts);
    const char *p[4] = {conv, q, text, t};
    int rc = changed((pg_store *)base, S_EDIT, 4, p);
    return rc < 0 ? rc : 0;
}

static int pg_search(dx__chat_store *base, const char *uid, const char *conv, const char *qs,
                     int64_t before, int limit, dx__chat_msg_cb cb, void *arg, int64_t *next) {
    /* %query% with LIKE's own characters escaped (backslash is ILIKE's
     * default escape). */
    size_t n = strlen(qs), k = 0;
    char *pat = dx__malloc(2 * n + 3);
    if (!pat) return DX_ENOMEM;
    pat[k++] = '%';
    for (size_t i = 0; i < n; i++) {
        if (qs[i] == '%' || qs[i] == '_' || qs[i] == '\\') pat[k++] = '\\';
        pat[k++] = qs[i];
    }
    pat[k++] = '%';
    pat[k] = 0;
    char b[24], l[24];
    i64(b, before > 0 ? before : INT64_MAX);
    i64(l, (int64_t)limit + 1);
    const char *p[5] = {uid, conv, b, pat, l};
    int err = 0;
    PGresult *r = query((pg_store *)base, S_SEARCH, 5, p, &err);
    dx__free(pat);
    if (!r) return err;
    int rows = PQntuples(r), stop = 0;
    *next = 0;
    for (int i = 0; i < rows && i < limit && !stop; i++) {
        dx__chat_msg m;
        row_msg(r, i, &m);
        if (rows > limit) *next = m.mid;
        stop = cb(arg, &m);
    }
    PQclear(r);
    return stop;
}

static int pg_file_refs(dx__chat_store *base, const char *id, int64_t *n) {
    const char *p[1] = {id};
    return scalar((pg_store *)base, S_FILE_REFS, 1, p, n, NULL);
}

static int pg_file_find(dx__chat_store *base, const char *uid, const char *conv, const char *id,
                        char *file, size_t cap) {
    const char *p[3] = {id, uid, conv};
    int err = 0;
    PGresult *r = query((pg_store *)base, S_FILE_FIND, 3, p, &err);
    if (!r) return err;
    int found = 0;
    if (PQntuples(r) > 0) {
        if (cap) snprintf(file, cap, "%s", PQgetvalue(r, 0, 0));
        found = val64(r, 0, 1) ? 1 : 2;
    }
    PQclear(r);
    return found;
}

static const dx__chat_store_ops PG_OPS = {
    .close = pg_close,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .touch_user = pg_touch,
    .last_seen = pg_last_seen,
    .join = pg_join,
    .is_member = pg_is_member,
    .put = pg_put,
    .mark_read = pg_mark_read,
    .members = pg_members,
    .convs_of = pg_convs_of,
    .messages = pg_messages,
    .unread = pg_unread,
    .contacts = pg_contacts,
    .rooms_of = pg_rooms_of,
    .put_msg = pg_put_msg,
    .get = pg_get,
    .group_create = pg_group_create,
    .role = pg_role,
    .add_member = pg_add_member,
    .remove_member = pg_remove_member,
    .set_role = pg_set_role,
    .set_title = pg_set_title,
    .successor = pg_successor,
    .members_page = pg_members_page,
    .admins = pg_admins,
    .recall = pg_recall,
    .edit = pg_edit,
    .search = pg_search,
    .file_refs = pg_file_refs,
    .file_find = pg_file_find,
};

dx__chat_store *dx__chat_store_pg(const char *url, const char **why) {
    pg_store *s = dx__calloc(1, sizeof *s);
    if (!s) {
        *why = "out of memory";
        return NULL;
    }
    s->base.ops = &PG_OPS;
    s->memo = dx__calloc(MEMO_SLOTS, MEMO_KEY); /* optional: NULL only costs queries */
    /* A connect_timeout of our own unless the URL sets one (later keywords
     * win, and the URL is expanded in place of dbname). */
    const char *const keys[] = {"connect_timeout", "dbname", NULL};
    const char *const vals[] = {"5", url, NULL};
    s->db = PQconnectdbParams(keys, vals, 1);
    if (!s->db) {
        *why = "out of memory";
        goto fail;
    }
    if (PQstatus(s->db) != CONNECTION_OK) {
        *why = "cannot connect to PostgreSQL (is it running? check the URL)";
        goto fail;
    }
    PQsetNoticeProcessor(s->db, no_notice, NULL);
    PGresult *r = PQexec(s->db, SCHEMA);
    int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) {
        *why = "cannot create the chat tables in PostgreSQL (permissions?)";
        goto fail;
    }
    r = PQexec(s->db, SCHEMA_TRGM);
    ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) PQclear(PQexec(s->db, "ROLLBACK")); /* no pg_trgm: search scans */
    if (session_setup(s) < 0) {
        *why = "cannot prepare the chat queries (tables from another version?)";
        goto fail;
    }
    return &s->base;
fail:
    pg_close(&s->base);
    return NULL;
}

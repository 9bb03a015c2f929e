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
    S_COUNT
};

#define MSG_COLS "conv, seq, mid, cid, sender, text, ts"

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
    [S_PUT] = "WITH d AS (SELECT conv, seq, mid, ts FROM chat_messages"
              " WHERE sender = $2::text AND cid = $3::text),"
              " s AS (UPDATE chat_convs SET last_seq = last_seq + 1 WHERE conv = $1::text"
              " AND NOT EXISTS (SELECT 1 FROM d) RETURNING last_seq),"
              " i AS (INSERT INTO chat_messages(conv, seq, sender, cid, text, ts)"
              " SELECT $1::text, last_seq, $2::text, $3::text, $4::text, $5::bigint FROM s"
              " RETURNING conv, seq, mid, ts)"
              " SELECT conv, seq, mid, ts, 0 FROM i UNION ALL SELECT conv, seq, mid, ts, 1 FROM d",
    [S_READ] = "UPDATE chat_members SET read_seq = GREATEST(read_seq, LEAST($3::bigint,"
               " (SELECT last_seq FROM chat_convs WHERE conv = $1)))"
               " WHERE conv = $1 AND uid = $2 RETURNING read_seq",
    [S_MEMBERS_N] = "SELECT count(*) FROM chat_members WHERE conv = $1",
    [S_MEMBERS] = "SELECT uid, read_seq FROM chat_members WHERE conv = $1 ORDER BY uid",
    [S_CONVS_OF] = "SELECT m.conv, c.last_seq, m.read_seq FROM chat_members m"
                   " JOIN chat_convs c ON c.conv = m.conv WHERE m.uid = $1 AND m.conv > $2"
                   " ORDER BY m.conv LIMIT $3::bigint",
    [S_MSGS_OLD] = "SELECT " MSG_COLS " FROM chat_messages"
                   " WHERE conv = $1 AND seq > $2::bigint AND seq < $3::bigint"
                   " ORDER BY seq LIMIT $4::bigint",
    [S_MSGS_NEW] = "SELECT * FROM (SELECT " MSG_COLS " FROM chat_messages"
                   " WHERE conv = $1 AND seq > $2::bigint AND seq < $3::bigint"
                   " ORDER BY seq DESC LIMIT $4::bigint) t ORDER BY seq",
    [S_UNREAD] = "SELECT count(*) FROM chat_messages"
                 " WHERE conv = $1 AND seq > $3::bigint AND sender <> $2",
    [S_CONTACTS] = "SELECT DISTINCT b.uid, COALESCE(u.last_seen, 0) FROM chat_members a"
                   " JOIN chat_members b ON b.conv = a.conv AND b.uid <> a.uid"
                   " LEFT JOIN chat_users u ON u.uid = b.uid WHERE a.uid = $1 ORDER BY b.uid",
    /* A range on chat_members_by_uid: 'g;' is the byte after 'g:'. */
    [S_ROOMS_N] =
        "SELECT count(*) FROM chat_members WHERE uid = $1 AND conv >= 'g:' AND conv < 'g;'",
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
    "COMMIT;";

/* Memberships this node has seen in the database. The protocol has no way
 * to leave a conversation, so a membership once seen stays true and a
 * direct-mapped cache of them saves the join/is_member round trips that
 * every send makes (two joins per direct message). */
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
        if (r < 0) return DX_EIO; /* the next try starts a new reset */
    }
    return session_setup(s) < 0 ? DX_EIO : 0;
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
        if (state) {
            const char *code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
            snprintf(state, 6, "%s", code ? code : "");
        }
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
    if (!s->memo || a + b + 2 > MEMO_KEY) return NULL;
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

static int pg_put(dx__chat_store *base, const char *conv, const char *from, const char *cid,
                  const char *text, int64_t ts, dx__chat_msg *out, int *dup) {
    pg_store *s = (pg_store *)base;
    if (!s->prepared && ensure(s) < 0) return DX_EIO;
    *dup = 0;
    int rc;
    char t[24];
    i64(t, ts);
    const char *p[5] = {conv, from, cid, text, t};
    int err = 0;
    char state[6] = "";
    PGresult *r = exec(s, S_PUT, 5, p, &err, state);
    if (!r) {
        /* The same (from, cid) committed meanwhile by another node (a
         * resend racing its original): answer it as the duplicate. */
        if (!strcmp(state, "23505") && (rc = find_dup(s, from, cid, out)) > 0) {
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
        dup_from_row(s, r, from, cid, out);
    } else {
        *out = (dx__chat_msg){.conv = conv,
                              .seq = val64(r, 0, 1),
                              .mid = val64(r, 0, 2),
                              .cid = cid,
                              .from = from,
                              .text = text,
                              .ts = ts};
    }
    PQclear(r);
    return 0;
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
        dx__chat_conv c = {PQgetvalue(r, i, 0), val64(r, i, 1), val64(r, i, 2)};
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
        dx__chat_msg m = {.conv = PQgetvalue(r, i, 0),
                          .seq = val64(r, i, 1),
                          .mid = val64(r, i, 2),
                          .cid = PQgetvalue(r, i, 3),
                          .from = PQgetvalue(r, i, 4),
                          .text = PQgetvalue(r, i, 5),
                          .ts = val64(r, i, 6)};
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
};

int dx__chat_store_is_pg_url(const char *s) {
    return s && (!strncmp(s, "postgresql://", 13) || !strncmp(s, "postgres://", 11));
}

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
    if (session_setup(s) < 0) {
        *why = "cannot prepare the chat queries (tables from another version?)";
        goto fail;
    }
    return &s->base;
fail:
    pg_close(&s->base);
    return NULL;
}

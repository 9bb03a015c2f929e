/* Internal: the chat store interface. The chat logic sees only these
 * operations, so another backend (PostgreSQL for a cluster) is one more
 * dx__chat_store_ops table; store_sqlite.c is the embedded one.
 *
 * Transactions. Writes happen between begin() and commit(). The chat
 * service groups every write of one event-loop turn into one transaction
 * (group commit) and sends acks only once that transaction is durable:
 * when commit() returned 0 for a store without sync(), or when a later
 * sync() returned 0 for one with it (the fsync then runs on the store
 * thread, off the loop). Either way no ack leaves before the data would
 * survive a crash of the process and, for SQLite, of the machine. Reads
 * may happen inside or outside a transaction; inside, they see the
 * transaction's own writes.
 *
 * Strings passed in are borrowed for the call. Strings passed to callbacks
 * (dx__chat_msg fields, uids, conv ids) are borrowed until the callback
 * returns. Functions return 0 or a negative code: DX_ENOMEM, DX_EIO (the
 * database failed: disk full, I/O error, corrupt file). A callback that
 * returns non-zero stops the iteration, and that value is returned. */
#ifndef DX_CHAT_STORE_H
#define DX_CHAT_STORE_H

#include <stdint.h>
#include <string.h>

typedef struct dx__chat_msg {
    const char *conv;
    int64_t seq;
    int64_t mid;
    const char *cid;
    const char *from;
    const char *text;
    int64_t ts;
    /* Revision 2 (docs/chat-protocol.md). NULL or 0 when absent. */
    const char *sys;      /* JSON object of a system or event message */
    const char *file;     /* JSON object of the attached file */
    const char *file_id;  /* its id (the sha256), for lookups */
    const char *thumb_id; /* the id of its preview */
    int64_t edited;       /* ts of the last edit */
    int recalled;         /* 1: a tombstone (text "", no file) */
} dx__chat_msg;

/* A member's role in a group (p:...); rooms and direct conversations have
 * members only. role() and members_page() report these. */
enum {
    DX_CHAT_ROLE_NONE = 0, /* not a member */
    DX_CHAT_ROLE_MEMBER = 1,
    DX_CHAT_ROLE_ADMIN = 2,
    DX_CHAT_ROLE_OWNER = 3,
};

/* One conversation of a user, as convs_of lists it. */
typedef struct dx__chat_conv {
    const char *conv;
    int64_t last_seq;
    int64_t read_seq;  /* the user's */
    const char *title; /* a group's title, NULL for other kinds */
} dx__chat_conv;

typedef int (*dx__chat_msg_cb)(void *arg, const dx__chat_msg *m);
typedef int (*dx__chat_conv_cb)(void *arg, const dx__chat_conv *c);
/* A user, with a number: a member's read seq, or a contact's last_seen. */
typedef int (*dx__chat_uid_cb)(void *arg, const char *uid, int64_t n);
/* A member of a group with its role and read seq. */
typedef int (*dx__chat_member_cb)(void *arg, const char *uid, int role, int64_t read_seq);

typedef struct dx__chat_store dx__chat_store;

typedef struct dx__chat_store_ops {
    void (*close)(dx__chat_store *st);
    int (*begin)(dx__chat_store *st);
    int (*commit)(dx__chat_store *st);
    void (*rollback)(dx__chat_store *st);

    /* Records that `uid` exists and was last seen at `ts` (ms). */
    int (*touch_user)(dx__chat_store *st, const char *uid, int64_t ts);
    /* The last_seen of `uid`, 0 when unknown. */
    int (*last_seen)(dx__chat_store *st, const char *uid, int64_t *ts);
    /* Makes `uid` a member of `conv`, creating the conversation. Returns 1
     * when `uid` became a member, 0 when it was one already (no-op), or a
     * negative code: the engine tells the room's members about 1s. */
    int (*join)(dx__chat_store *st, const char *conv, const char *uid);
    /* 1 member, 0 not, or a negative code. */
    int (*is_member)(dx__chat_store *st, const char *conv, const char *uid);
    /* Stores a message with the next seq of `conv`, unless (from, cid)
     * exists already: then *dup = 1 and `out` describes the stored one.
     * `out`'s strings are valid until the next call on the store; for a
     * duplicate, out->text is "" (the ack does not need it). Returns
     * DX_EINVAL when the conversation does not exist (join first). */
    int (*put)(dx__chat_store *st, const char *conv, const char *from, const char *cid,
               const char *text, int64_t ts, dx__chat_msg *out, int *dup);
    /* read_seq = max(read_seq, min(seq, last_seq)); the result in *now. */
    int (*mark_read)(dx__chat_store *st, const char *conv, const char *uid, int64_t seq,
                     int64_t *now);
    /* Members of `conv` with their read seq; *count (may be NULL) gets the
     * number of members, and when it exceeds `max` no callback runs. */
    int (*members)(dx__chat_store *st, const char *conv, int64_t max, int64_t *count,
                   dx__chat_uid_cb cb, void *arg);
    /* The conversations of `uid` whose id sorts after `after` (NULL or ""
     * for all), in byte order of their id, at most `limit` of them: a sync
     * is answered in pages (engine.c) so that a user in thousands of them
     * never holds the loop for long. */
    int (*convs_of)(dx__chat_store *st, const char *uid, const char *after, int64_t limit,
                    dx__chat_conv_cb cb, void *arg);
    /* Messages of `conv` with after < seq < before (before 0: no bound),
     * at most `limit`: the oldest of them when `newest` is 0, the newest
     * when 1 — always delivered in ascending seq. *more (may be NULL) is 1
     * when the range holds more than `limit`. */
    int (*messages)(dx__chat_store *st, const char *conv, int64_t after, int64_t before, int limit,
                    int newest, dx__chat_msg_cb cb, void *arg, int *more);
    /* Messages of `conv` after `seq` not sent by `uid`. */
    int (*unread)(dx__chat_store *st, const char *conv, const char *uid, int64_t seq, int64_t *n);
    /* Users sharing a direct conversation or a private group with `uid`
     * (rooms do not count), with their last_seen: whom its presence
     * changes are pushed to. */
    int (*contacts)(dx__chat_store *st, const char *uid, dx__chat_uid_cb cb, void *arg);
    /* How many rooms (g:...) `uid` is a member of, in *n. */
    int (*rooms_of)(dx__chat_store *st, const char *uid, int64_t *n);

    /* ---- revision 2 ---- */

    /* put() with the fields of revision 2: in->conv, from, cid, text, ts,
     * and sys, file, file_id, thumb_id (NULL: none). Otherwise as put(). */
    int (*put_msg)(dx__chat_store *st, const dx__chat_msg *in, dx__chat_msg *out, int *dup);
    /* Message `seq` of `conv` as it is now: calls cb once and returns what
     * it returned, or DX_EINVAL when there is no such message. */
    int (*get)(dx__chat_store *st, const char *conv, int64_t seq, dx__chat_msg_cb cb, void *arg);
    /* A new group: the conversation `in->conv` with `title`, `in->from` its
     * owner, `uids` (n) its members, and its first message `in` (the
     * create system message). Unless (in->from, in->cid) names a message
     * already: then nothing is written, *dup = 1 and `out` is that
     * message (so a group is created once per (creator, cid)). */
    int (*group_create)(dx__chat_store *st, const dx__chat_msg *in, const char *title,
                        const char *const *uids, size_t n, dx__chat_msg *out, int *dup);
    /* The role of `uid` in `conv` (DX_CHAT_ROLE_*: NONE when not a member),
     * or a negative code. Works for every kind (members of rooms and
     * direct conversations are MEMBER). */
    int (*role)(dx__chat_store *st, const char *conv, const char *uid);
    /* Adds `uid` to the existing `conv` with `role`: 1 added, 0 a member
     * already (its role unchanged). */
    int (*add_member)(dx__chat_store *st, const char *conv, const char *uid, int role);
    /* Removes `uid` from `conv`: 1 removed, 0 was not a member. */
    int (*remove_member)(dx__chat_store *st, const char *conv, const char *uid);
    /* Sets the role of the member `uid`: 1 done, 0 not a member. */
    int (*set_role)(dx__chat_store *st, const char *conv, const char *uid, int role);
    int (*set_title)(dx__chat_store *st, const char *conv, const char *title);
    /* The member who takes over a group whose owner left: the earliest
     * admin, else the earliest member (earliest: joined first, then uid
     * order). 1 with uid filled, 0 when the group has no member left. */
    int (*successor)(dx__chat_store *st, const char *conv, char uid[33]);
    /* Members of `conv` with a uid after `after` (NULL: from the start), in
     * uid order, at most `limit`, with their role and read seq. */
    int (*members_page)(dx__chat_store *st, const char *conv, const char *after, int64_t limit,
                        dx__chat_member_cb cb, void *arg);
    /* The owners and admins of `conv` (n: the role), in uid order. */
    int (*admins)(dx__chat_store *st, const char *conv, dx__chat_uid_cb cb, void *arg);
    /* Recall: the text becomes "", the file goes, `recalled` is set — the
     * words leave the database and its search index, not only the view. */
    int (*recall)(dx__chat_store *st, const char *conv, int64_t seq);
    /* Edit: new text, `edited` = ts. */
    int (*edit)(dx__chat_store *st, const char *conv, int64_t seq, const char *text, int64_t ts);
    /* Search: the messages of conversations `uid` is a member of (only
     * `conv` when not NULL) whose text holds `q` (case-insensitive for
     * ASCII), not recalled, not system or event messages, with mid <
     * `before` (0: no bound), newest (highest mid) first, at most `limit`.
     * *next gets the cursor to continue with (the `before` of the next
     * page), 0 when there is no more. */
    int (*search)(dx__chat_store *st, const char *uid, const char *conv, const char *q,
                  int64_t before, int limit, dx__chat_msg_cb cb, void *arg, int64_t *next);
    /* How many messages hold file `id` (as file or thumb). */
    int (*file_refs)(dx__chat_store *st, const char *id, int64_t *n);
    /* A message not recalled, in `conv` (NULL: any conversation) with `uid`
     * a member of it, holding file `id`: 1 as its file, 2 as its thumb, 0
     * none; `file` (cap bytes) gets that message's file JSON. */
    int (*file_find)(dx__chat_store *st, const char *uid, const char *conv, const char *id,
                     char *file, size_t cap);

    /* ---- durability off the loop (optional: NULL when commit() itself is
     * the durability point, as for PostgreSQL) ---- */

    /* When set, commit() makes a transaction visible to the reads that
     * follow but not durable: the fsync is left to sync(), which makes
     * every transaction committed before the call durable. sync() and
     * checkpoint() are each called from a thread of their own (syncer.c),
     * concurrently with each other and with every other call here, which
     * they never block (but see store_sqlite.c on a RESTART checkpoint);
     * both return 0 or DX_EIO. checkpoint() is housekeeping, called every
     * 100 ms (it may write and fsync for a while). */
    int (*sync)(dx__chat_store *st);
    int (*checkpoint)(dx__chat_store *st);
} dx__chat_store_ops;

struct dx__chat_store {
    const dx__chat_store_ops *ops;
    /* Failures the store met (store_pg.c: statements and reconnections
     * that failed), for dx_chat_stats; written by the store's caller's
     * thread only. */
    uint64_t errors;
};

/* Opens (creating when needed) the SQLite store at `path` (":memory:" or
 * NULL for a private in-memory database). WAL mode; for a file, commit()
 * writes the WAL without fsync and sync() fsyncs it (store_sqlite.c).
 * Returns NULL on failure with a one-line reason in `why` (static). */
dx__chat_store *dx__chat_store_sqlite(const char *path, const char **why);

/* Connects to PostgreSQL at `url` ("postgresql://user@host:port/db?..." or
 * any libpq connection string), creating the chat_* tables when missing:
 * the store several nodes share (store_pg.c). Every write is its own
 * transaction, committed (WAL flushed) before the call returns, so
 * begin/commit only check the connection; a lost connection is retried at
 * the next begin(). Calls block the caller until the server answers.
 * Returns NULL on failure with a one-line reason in `why` (static). */
dx__chat_store *dx__chat_store_pg(const char *url, const char **why);
/* 1 when `s` starts with postgresql:// or postgres://: the store it names
 * is PostgreSQL's (inline: a build without store_pg.c asks it too). */
static inline int dx__chat_store_is_pg_url(const char *s) {
    return s && (!strncmp(s, "postgresql://", 13) || !strncmp(s, "postgres://", 11));
}

#endif

/* Internal to the chat engine: the state of a dx__chat and the request
 * helpers that engine.c shares with the files that handle the requests of
 * revision 2 (groups.c, edits.c, search.c, attach.c) and the reads
 * (fetch.c), and with worker.c, the store thread that runs a second
 * engine. Nothing outside src/chat/engine*.c and those includes it. */
#ifndef DX_CHAT_ENGINE_INT_H
#define DX_CHAT_ENGINE_INT_H

#include <jansson.h>

#include "chat/engine.h"
#include "chat/files.h"
#include "chat/jsonw.h"
#include "chat/keytab.h"
#include "chat/limits.h"
#include "chat/proto.h"

/* Something that must wait for the commit: a reply for the requesting
 * device, and a message for every member of a conversation. */
typedef struct pending {
    dx__chat_dev *dev; /* NULL once the device closed */
    json_t *id;        /* the request id, for store_failed */
    char *reply;       /* sent to dev after the commit */
    char *conv;        /* NULL: no broadcast */
    char *bcast;       /* sent to every member's devices */
    /* When not NULL, reply, conv and bcast point into this one block (a
     * send's: engine.c, queue_send) and are not freed on their own. */
    char *own;
    int bcast_self; /* 0: not to dev itself */
    /* Also sent bcast, after the members: a user removed from conv by
     * this very message ("" for none), who is no member any more. */
    char also[DX_CHAT_UID_MAX + 1];
    /* Files a recall let go: their bytes are deleted after the commit
     * when no message holds them any more ("" for none). */
    char fid[DX_CHAT_FILE_ID_LEN + 1], tid[DX_CHAT_FILE_ID_LEN + 1];
    int64_t t0;  /* mono_us when the request arrived */
    int is_ack;  /* reply is a send's ack: counted, its latency observed */
    int is_push; /* a receipt or members push: not counted as a delivery */
    uint64_t no; /* the commit it waits for (engine.c, "durability") */
} pending;

/* A read receipt waiting for the flush: the highest seq of the turn. */
struct receipt {
    char uid[DX_CHAT_UID_MAX + 1];
    char conv[DX_KEYTAB_KEY_MAX];
    int64_t seq;
};

/* A user whose device count crossed zero this turn, as it was before. */
struct pres {
    char uid[DX_CHAT_UID_MAX + 1];
    int was_online;
};

/* A room that gained members this turn, and who. */
struct mnote {
    char conv[DX_KEYTAB_KEY_MAX];
    json_t *joined; /* array of uids */
};

/* Rooms of at most this many members are listed in full: in sync
 * (`members`, `reads`) and in the `members` push (`joined`). */
#define MEMBERS_LIST 64

/* Bounds of the coalescing tables (keytab.h): each entry is 136 bytes, and
 * a table holds at most twice its limit in slots. Typing entries live one
 * interval; when the table is full of live ones, typing is absorbed. The
 * receipts pushed are remembered for RCPT_SENT_MS so that a read that does
 * not move the reader's position is not pushed again; when that table is
 * full, receipts are pushed as before (only the suppression is lost). */
#define TYPING_KEYS 4096
#define TURN_KEYS 8192
#define RCPT_SENT_KEYS 8192
#define RCPT_SENT_MS (10 * 60 * 1000)
/* Direct conversations remembered as created (nobody leaves one). */
#define DIRECTS_KEYS 16384
#define DIRECTS_MS (10 * 60 * 1000)

struct dx__chat {
    dx__chat_io io;
    dx__chat_store *st;
    dx__chat_broker *broker;
    char lobby[40]; /* "g:NAME" or "" */
    int in_tx;      /* a transaction is open */
    int scheduled;  /* io.schedule was called and flush has not run */
    pending *pend;  /* this turn's, until the flush */
    size_t npend, cap;
    /* Durability off the loop (store.h's sync()): what was committed and
     * waits for its fsync, in commit order: wait[whead, nwait). */
    pending *wait;
    size_t whead, nwait, wcap;
    uint64_t commits;      /* transactions committed so far */
    uint64_t durable;      /* the last of them known durable (or failed) */
    int hold;              /* the current request's replies wait as well */
    dx_chat_limits limits; /* resolved: no zeros */
    dx__chat_limiter *lim; /* the users' token buckets */
    /* Fan-out coalescing (docs/chat-protocol.md, "Typing", "read",
     * "Presence"): what this turn changed, pushed once at the flush. */
    struct fanout {
        uint32_t typing_ms;   /* one typing push per (uid, conv) per this */
        dx__keytab typing;    /* uid NUL conv → when the next push may go */
        struct receipt *rcpt; /* this turn's receipts, one per (uid, conv) */
        size_t nrcpt, rcap;
        dx__keytab turn_ix;   /* 'r' uid NUL conv, or 'p' uid → index in rcpt or pres */
        dx__keytab rcpt_sent; /* uid NUL conv → the last seq pushed */
        struct pres *pres;    /* users whose device count crossed 0 this turn */
        size_t npres, pcap;
        struct mnote *mem; /* rooms that gained members this turn */
        size_t nmem, mcap;
    } fo;
    dx__keytab counts;     /* large rooms' member counts (dx__chat_count_*) */
    dx__keytab directs;    /* direct conversations known to exist, both joined */
    int64_t recall_ms;     /* the recall window */
    dx__chat_files *files; /* uploads, or NULL: off */
    dx_chat_stats stats;   /* counters (dx_chat_stats_get) */
    int64_t t_req;         /* mono_us at the current request's arrival */
    dx__jsonw jw;          /* where a send's ack and deliver are written */
    struct dx__chat_worker *worker; /* the store thread, or NULL (worker.h) */
};

/* The member count of a room with more than MEMBERS_LIST members, as
 * noted at most COUNT_MS ago: 1 and *count, or 0 when not known. */
int dx__chat_count_cached(dx__chat *chat, const char *conv, int64_t *count);
void dx__chat_count_note(dx__chat *chat, const char *conv, int64_t count);

/* Adds an observation of `us` to a latency histogram of dx_chat_stats. */
void dx__chat_observe(uint64_t *buckets, uint64_t *sum, int64_t us);

/* A request being handled: the device it came from and its JSON. */
typedef struct dx__chat_req {
    dx__chat *chat;
    dx__chat_dev *dev;
    json_t *root;
    json_t *id; /* borrowed from root, or NULL */
    int role;   /* for a group, the caller's (need_conv) */
} dx__chat_req;

/* Serialises `j` (taken) compactly; NULL when out of memory. */
char *dx__chat_dump(json_t *j);
/* Sends `j` (taken) to `d`. */
void dx__chat_send_json(dx__chat *chat, dx__chat_dev *d, json_t *j);
/* Replies `error` with code, message and field (NULL: none). */
void dx__chat_fail(dx__chat_req *r, const char *code, const char *msg, const char *field);
/* Replies to a store failure `rc` (internal or store_failed). */
void dx__chat_store_fail(dx__chat_req *r, int rc);
/* {"v":1,"type":type} with the request's id; NULL when out of memory. */
json_t *dx__chat_reply(dx__chat_req *r, const char *type);
/* Opens the turn's transaction on the first write (0 or a store code). */
int dx__chat_tx(dx__chat *chat);
/* Commits first when the turn wrote: reads see committed data only; and
 * when some of it is not durable yet, the request's replies wait for it
 * (behind the acks of what it shows). */
void dx__chat_before_read(dx__chat *chat);
/* Reads "conv", checks its form and the caller's right to it; for a group,
 * membership (`forbidden` otherwise, the same whether the group exists or
 * not) with the role in r->role. Returns the string and *kind, or NULL
 * after replying with an error. */
const char *dx__chat_need_conv(dx__chat_req *r, int *kind);
/* For a room: 1 when the caller is a member, else replies not_member. */
int dx__chat_need_member(dx__chat_req *r, const char *conv);
/* Optional integer field in [lo, hi], `dflt` when absent: 0, or -1 after
 * replying bad_field. */
int dx__chat_opt_int(dx__chat_req *r, const char *name, int64_t dflt, int64_t lo, int64_t hi,
                     int64_t *out);
/* Queues for the commit: `reply` (taken) to `d`, and `bcast` (taken) to
 * the members of `conv` (not `d` unless `self`) and then to `also` (a
 * removed member; NULL for none). 0 or DX_ENOMEM. */
int dx__chat_add_pending(dx__chat *chat, dx__chat_dev *d, json_t *id, json_t *reply,
                         const char *conv, json_t *bcast, int self, const char *also);
/* To every device of `uid` (the broker: every node). */
int dx__chat_publish(dx__chat *chat, const char *uid, const char *data, const dx__chat_dev *except);
/* The message object of `m` (docs/chat-protocol.md): with sys, file,
 * edited, recalled, and for an event message `target`, the message it is
 * about as it is now (a store lookup). NULL when out of memory. */
json_t *dx__chat_msg_json(dx__chat *chat, const dx__chat_msg *m);
/* A send's ack (with "dup":true for a duplicate) and the deliver of a
 * new message `m` with neither sys nor file, written as dx__chat_reply
 * and dx__chat_msg_json would build them and json_dumps write them
 * (jsonw.h). `id`: the request's, or NULL. */
void dx__chat_ack_write(dx__jsonw *w, const json_t *id, const dx__chat_msg *m, int dup);
void dx__chat_deliver_write(dx__jsonw *w, const dx__chat_msg *m);
/* Appends the contacts of `uid` with their presence to `list`. */
int dx__chat_contacts_json(dx__chat *chat, const char *uid, json_t *list);
/* Stores a system or event message of `conv` from r's user: `sys` (taken)
 * and `text`, and queues its deliver for the commit, to the members and
 * then to `also` (a member just removed, or NULL). The request's reply is
 * not part of it. 0, or -1 after replying with an error. */
int dx__chat_put_sys(dx__chat_req *r, const char *conv, json_t *sys, const char *text,
                     const char *also);
/* Checks the text of a send or an edit: a string of 1-4000 bytes (0 when
 * `may_be_empty`: a file's caption) with no NUL. 0, or -1 after replying. */
int dx__chat_check_text(dx__chat_req *r, json_t *tj, int may_be_empty);
/* Fills `cid` (40 bytes) with a fresh server cid ("sys-" and 24 hex). */
int dx__chat_sys_cid(char cid[40]);
/* 1 when `t` (len bytes) is valid as a title or a file name: 1..max bytes
 * of UTF-8 with no control character. */
int dx__chat_valid_label(const char *t, size_t len, size_t max);

/* The store thread's engine (worker.c) runs these for the loop's: a
 * message that arrived at mono_us `t_req`; the store's share of a connect
 * of `d`, whose user has `n` devices now; a presence change of `uid` for
 * its contacts (going offline writes last_seen = ts first). */
void dx__chat_message_at(dx__chat *chat, dx__chat_dev *d, const char *data, size_t len, int binary,
                         int64_t t_req);
void dx__chat_open_store(dx__chat *chat, dx__chat_dev *d, int64_t n);
void dx__chat_presence_store(dx__chat *chat, const char *uid, int online, int64_t ts);

/* Request handlers (see docs/chat-protocol.md for each). */
void dx__chat_do_history(dx__chat_req *r);
void dx__chat_do_sync(dx__chat_req *r);
void dx__chat_do_group_create(dx__chat_req *r);
void dx__chat_do_group_add(dx__chat_req *r);
void dx__chat_do_group_remove(dx__chat_req *r);
void dx__chat_do_group_rename(dx__chat_req *r);
void dx__chat_do_group_role(dx__chat_req *r);
void dx__chat_do_group_members(dx__chat_req *r);
void dx__chat_do_leave(dx__chat_req *r);
void dx__chat_do_recall(dx__chat_req *r);
void dx__chat_do_edit(dx__chat_req *r);
void dx__chat_do_search(dx__chat_req *r);
void dx__chat_do_upload(dx__chat_req *r);
/* A binary message (an upload chunk). */
void dx__chat_upload_chunk(dx__chat_req *r, const uint8_t *data, size_t len);
/* The `file` of a send: checks it and fills *file (JSON text, dx__free'd
 * by the caller), *id and *thumb (pointing into r->root). 0, or -1 after
 * replying with an error. */
int dx__chat_attach(dx__chat_req *r, char **file, const char **id, const char **thumb);
/* After a recall committed: deletes the bytes of `id` (and `thumb`) when
 * no message holds them any more. */
void dx__chat_files_release(dx__chat *chat, const char *id, const char *thumb);

#endif

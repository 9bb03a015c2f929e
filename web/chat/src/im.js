// The chat client's state, outside React: conversations, their messages
// (an insertion-ordered Map keyed by client id, as the founding notes keep
// them), presence and the connection. It speaks docs/chat-protocol.md over
// a DuplexSocket (web/client/duplex.js) handed to it by the useIM hook, and
// notifies subscribers after every change (useSyncExternalStore).
//
// Message status: 'sending' until the server's ack, 'sent' after it,
// 'failed' when no ack came within ACK_TIMEOUT while connected or the server
// refused it (resend keeps the client id, so the server never stores it
// twice); 'read' is derived from the receipts. A message written while
// disconnected stays 'sending' and goes out after the next sync.
//
// Nothing a person typed is lost (issue 17):
// - with an outbox (outbox.js: IndexedDB in the browser) a message is
//   committed there before it shows 'sending', and leaves it only once the
//   server has stored it; the next open shows it again and sends it with the
//   same cid. The draft of each conversation is kept there too;
// - 'failed' is never final while the server may have stored the message:
//   a late ack, a duplicate ack, a sync (or history) holding its cid, and a
//   read receipt past what we hold (which starts a sync) turn it sent;
// - a failure is permanent (the request itself is wrong: a resend gets the
//   same answer, so none is offered) or transient (retried after the next
//   reconnect, and by hand), by its error code: see PERMANENT.
//
// Revision 2 of the protocol (issue 18: private groups, system and event
// messages, recall and edit, search) lives in groups.js, whose methods are
// installed on IMStore at the end of this file; here only what the store
// itself must do: welcome's `rev`, sync's kind/title/roles, a system
// message's effect, an event's `target`, and events kept out of ordered().

import { convKind, groupMethods, isEvent, RECALL_WINDOW } from './groups.js';
import { Attachments, fileWire, idbFiles } from './files.js';

export const ACK_TIMEOUT = 8000;
// The protocol's limit on `text`, until the server's welcome says otherwise.
export const TEXT_LIMIT = 4000;
// Error codes of docs/chat-protocol.md that no resend of the same request
// can cure. Every other failure is transient: store_failed, rate_limited,
// internal, no answer, a dropped connection, and codes this client does not
// know (a later server's "try again" should not lose the message).
export const PERMANENT = new Set(['bad_json', 'bad_version', 'bad_type', 'bad_field', 'too_large', 'not_member', 'forbidden']);
// Close codes by which the server refuses the sign-in (the library does not
// reconnect after them: FINAL_CODES of web/client/duplex.js).
export const REFUSED_CODES = [4401, 4403];
const SYNC_ROUNDS = 10;
// A sync of many conversations comes in pages (docs/chat-protocol.md,
// "Pages"); a user has at most a few thousand, so this bounds a loop that a
// misbehaving server could otherwise keep going.
const SYNC_PAGES = 1000;
// How often a request refused with rate_limited is tried again, after the
// server's retry_after (at most RETRY_MAX ms each).
const RATE_RETRIES = 20;
const RETRY_MAX = 10000;

const sleep = (ms) =>
  new Promise((r) => {
    const t = setTimeout(r, Math.min(Math.max(ms | 0, 1), RETRY_MAX));
    if (t && t.unref) t.unref();
  });

function newCid() {
  if (globalThis.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  return `c-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

export function directConv(a, b) {
  return a < b ? `d:${a}:${b}` : `d:${b}:${a}`;
}

export function validUid(s) {
  return /^[A-Za-z0-9_-]{1,32}$/.test(s);
}

/** UTF-8 bytes of a string, as the server counts `text`. */
export function textBytes(s) {
  let n = 0;
  for (const ch of s) {
    const c = ch.codePointAt(0);
    n += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
  }
  return n;
}

export class IMStore {
  #presenceAsked = false; // a presence request is due at the end of this turn
  /**
   * @param {string} uid who we are
   * @param {{outbox?: object|null}} [opts] outbox: where unsent messages and
   *   drafts are kept across page loads (outbox.js); none: page memory only
   */
  constructor(uid, { outbox = null } = {}) {
    this.uid = uid;
    this.outbox = outbox;
    this.convs = new Map(); // conv id → conversation (see #conv)
    this.presence = new Map(); // uid → {online, last_seen}, as of the last sync
    this.drafts = new Map(); // conv id → what the composer holds
    this.textLimit = TEXT_LIMIT;
    this.syncing = false; // a #catchUp sync is running
    this.syncAgain = false;
    this.conn = { state: 'connecting', retryAt: null, reason: '' };
    this.active = null; // the open conversation
    this.sock = null;
    this.version = 0;
    this.listeners = new Set();
    this.readTimer = null;
    this.lastTyping = new Map(); // conv id → when we last said we were typing
    // Revision 2 (groups.js): the server's revision, its clock minus ours,
    // how long a message can be recalled, a message the view should show.
    this.rev = 1;
    this.skew = 0;
    this.recallWindow = RECALL_WINDOW;
    this.focus = null;
    // Pictures and files (files.js): uploads, kept in IndexedDB beside the outbox.
    this.files = new Attachments(this, { store: outbox ? idbFiles(uid) : null });
  }

  // ---- subscription (useSyncExternalStore) ----
  subscribe = (fn) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };
  getVersion = () => this.version;
  emit() {
    this.version++;
    for (const fn of this.listeners) fn();
  }

  // ---- the connection ----
  attach(sock) {
    this.sock = sock;
  }
  online() {
    return !!this.sock && this.sock.readyState === 1;
  }
  // Connected and synced: a send goes out now.
  ready() {
    return this.online() && this.conn.state === 'online';
  }
  setConn(state, retryAt = null, reason = '') {
    // 'websocket', or 'http' where a proxy blocks WebSocket (DuplexSocket
    // fell back to its HTTP session transport).
    const transport = (this.sock && this.sock.transport) || null;
    this.conn = { state, retryAt, reason, transport };
    this.emit();
  }

  async onOpen() {
    this.setConn('syncing');
    try {
      await this.sync();
    } catch {
      return; // the socket went away again; the next open syncs
    }
    this.setConn('online');
    // What was written while away, in the order it was written, and what
    // failed for a reason that may have passed.
    for (const c of this.convs.values())
      for (const m of c.msgs.values()) {
        if (!m.mine || m.seq) continue;
        if (m.status === 'failed' && !m.permanent) Object.assign(m, { status: 'sending', error: null, code: null });
        if (m.status === 'sending') this.#transmit(m);
      }
    this.emit();
    this.markRead(this.active);
    this.#askPresence();
  }

  onClose() {
    for (const c of this.convs.values()) c.typing.clear();
    this.files.onClose();
    this.emit();
  }

  // The connection ended for good (the library gives up only on close
  // codes that say a retry would be refused the same way).
  onFinalClose(code, reason) {
    if (REFUSED_CODES.includes(code)) this.setConn('refused', null, reason || `close code ${code}`);
    else this.setConn('closed', null, reason || `close code ${code}`);
  }

  /**
   * Reads back the outbox and drafts of an earlier page: the messages show
   * 'sending' (or their permanent failure) and go out with their cid.
   */
  async restore() {
    this.files.restore().catch(() => {}); // attachments not sent yet (files.js)
    if (!this.outbox) return;
    let saved;
    try {
      saved = await this.outbox.load();
    } catch {
      return; // no IndexedDB (private mode, quota): page memory only
    }
    for (const [conv, text] of saved.drafts) if (!this.drafts.has(conv)) this.drafts.set(conv, text);
    for (const r of saved.outbox) {
      if (r.from !== this.uid || !r.conv || !r.cid) continue;
      const c = this.#conv(r.conv);
      const had = c.msgs.get(r.cid);
      if (had) {
        if (had.seq) this.outbox.remove(r.cid).catch(() => {}); // a sync found it stored
        continue;
      }
      const m = {
        cid: r.cid, conv: r.conv, from: r.from, text: r.text, ts: r.ts, seq: null, mine: true,
        status: r.permanent ? 'failed' : 'sending', attempt: 0,
        error: r.permanent ? r.error : null, permanent: !!r.permanent,
      };
      c.msgs.set(m.cid, m);
      if (m.status === 'sending' && this.ready()) this.#transmit(m);
    }
    this.emit();
  }

  // One page of a sync: a refusal for rate is waited out and asked again.
  async #syncPage(since, after) {
    const req = { v: 1, type: 'sync', since };
    if (after) req.after = after;
    for (let tries = 0; ; tries++) {
      const r = await this.sock.request(req, { timeout: 15000 });
      if (r.type === 'sync') return r;
      if (r.code !== 'rate_limited' || tries >= RATE_RETRIES) throw new Error(r.message || 'sync failed');
      await sleep(r.retry_after);
    }
  }

  async sync() {
    let again = false;
    let first = true;
    for (let round = 0, after = null, pages = 0; round < SYNC_ROUNDS && pages < SYNC_PAGES; pages++) {
      const since = {};
      for (const c of this.convs.values()) if (c.lastHeld > 0) since[c.id] = c.lastHeld;
      const r = await this.#syncPage(since, after);
      for (const info of r.convs) {
        const c = this.#conv(info.conv);
        const had = since[info.conv] !== undefined;
        c.lastSeq = info.last_seq;
        c.readSeq = info.read_seq;
        c.unread = info.unread;
        if (info.members) c.members = info.members;
        if (info.reads) c.reads = { ...c.reads, ...info.reads };
        if (info.members_count) c.membersCount = info.members_count;
        this.applyConvInfo(c, info);
        for (const m of info.msgs) this.#addMsg(c, m);
        if (had && info.more) again = true;
        else if (!had) c.more = info.more;
      }
      // The first page holds every contact's presence: what an earlier
      // connection said is replaced, not merged.
      if (first) this.presence = new Map();
      first = false;
      for (const p of r.presence || []) this.presence.set(p.uid, p);
      this.emit();
      // More conversations: the next page. After the last one, another
      // round from the top when a conversation had more messages.
      if (r.next) {
        after = r.next;
        continue;
      }
      if (!again) break;
      again = false;
      after = null;
      round++;
    }
  }

  // A sync after one that is running: at most one at a time, and one more.
  #catchUp() {
    if (!this.ready()) return; // the next reconnection syncs anyway
    if (this.syncing) {
      this.syncAgain = true;
      return;
    }
    this.syncing = true;
    this.sync()
      .catch(() => {})
      .finally(() => {
        this.syncing = false;
        if (this.syncAgain) {
          this.syncAgain = false;
          this.#catchUp();
        }
      });
  }

  onMessage(data) {
    if (typeof data !== 'object' || data === null) return;
    switch (data.type) {
      case 'welcome':
        if (data.limits && data.limits.text > 0) this.textLimit = data.limits.text;
        this.rev = data.rev || 1;
        if (data.time > 0) this.skew = data.time - Date.now();
        this.files.onWelcome(data);
        this.emit();
        break;
      case 'ack': {
        // The answer to a send whose request had timed out (the server was
        // stalled, not gone): the message is stored after all.
        const m = this.convs.get(data.conv)?.msgs.get(data.cid);
        if (m && m.mine && !m.seq && data.seq) {
          this.#stored(m, data);
          this.emit();
        }
        break;
      }
      case 'deliver': {
        const known = this.convs.has(data.msg.conv);
        const c = this.#conv(data.msg.conv);
        const fresh = !c.msgs.has(data.msg.cid);
        this.#addMsg(c, data.msg);
        c.typing.delete(data.msg.from);
        if (fresh && !data.msg.sys && data.msg.from !== this.uid && data.msg.seq > c.readSeq) c.unread++;
        // A group we did not know (we were just added): its title and members.
        if (!known && c.kind === 'group') this.#catchUp();
        this.emit();
        if (c.id === this.active) this.scheduleRead();
        break;
      }
      case 'read': {
        const c = this.#conv(data.conv);
        c.reads = { ...c.reads, [data.uid]: Math.max(c.reads[data.uid] || 0, data.seq) };
        if (data.uid === this.uid && data.seq > c.readSeq) {
          c.readSeq = data.seq;
          c.unread = this.#countUnread(c);
        }
        this.emit();
        // Someone read past what we hold: messages we have not seen, maybe
        // one of ours whose ack was lost. A sync finds them by cid.
        if (data.seq > c.lastHeld) this.#catchUp();
        break;
      }
      case 'presence':
        for (const p of data.users) this.presence.set(p.uid, p);
        this.emit();
        break;
      case 'members': {
        // Someone joined a room: its count, and who (listed while the
        // room is small), as it happens rather than at the next sync.
        const c = this.#conv(data.conv);
        c.membersCount = data.count;
        for (const uid of data.joined || []) if (!c.members.includes(uid)) c.members = [...c.members, uid];
        this.emit();
        break;
      }
      case 'resync':
        // The server's node lost pushes from the other nodes for a while
        // (its Redis link was down): fetch what was missed now. A failure
        // is left to the next reconnection, which syncs anyway.
        this.#catchUp();
        break;
      case 'typing': {
        // The server never sends our own (docs/chat-protocol.md); an older
        // server did in rooms, and "you are typing" is never news.
        if (data.uid === this.uid) break;
        const c = this.#conv(data.conv);
        c.typing.set(data.uid, Date.now() + 4000);
        this.emit();
        const t = setTimeout(() => this.emit(), 4100); // the indicator expires
        if (t && t.unref) t.unref();
        break;
      }
      case 'upload_progress':
      case 'uploaded':
      case 'error':
        this.files.onMessage(data); // an upload's (files.js)
        break;
      default:
        break;
    }
  }

  // ---- what the UI does ----
  open(convId) {
    this.active = convId;
    if (convId) this.#conv(convId);
    this.emit();
    this.markRead(convId);
  }

  startDirect(peer) {
    if (!validUid(peer) || peer === this.uid) return null;
    const id = directConv(this.uid, peer);
    this.open(id);
    this.#askPresence();
    return id;
  }

  /** The presence of `uid` as far as this page knows: online is null when it cannot know. */
  presenceOf(uid) {
    const p = this.presence.get(uid);
    if (this.conn.state !== 'online') return { online: null, last_seen: p ? p.last_seen : 0 };
    return p || { online: false, last_seen: 0 };
  }

  // Presence of direct peers the last sync did not cover (a conversation
  // opened but not written to yet).
  #askPresence() {
    if (!this.ready()) return;
    const uids = [];
    for (const c of this.convs.values())
      if (c.peer && validUid(c.peer) && !this.presence.has(c.peer)) uids.push(c.peer);
    if (!uids.length) return;
    this.sock.request({ v: 1, type: 'presence', uids: uids.slice(0, 100) })
      .then((r) => {
        if (r.type !== 'presence') return;
        for (const p of r.users || []) this.presence.set(p.uid, p);
        this.emit();
      })
      .catch(() => {});
  }

  /** What the composer of a conversation holds (kept in the outbox). */
  draft(convId) {
    return this.drafts.get(convId) || '';
  }

  setDraft(convId, text) {
    if (!convId || this.draft(convId) === text) return;
    if (text) this.drafts.set(convId, text);
    else this.drafts.delete(convId);
    this.emit();
    this.outbox?.draft(convId, text).catch(() => {});
  }

  /**
   * Sends `text` to a conversation; returns its cid, or null when there is
   * nothing to send or it is over the server's limit (textLimit bytes).
   * With an outbox the message shows once it is committed there.
   */
  send(convId, text) {
    text = text.trim();
    if (!text || !convId || textBytes(text) > this.textLimit) return null;
    const c = this.#conv(convId);
    const m = {
      cid: newCid(), conv: convId, from: this.uid, text, ts: Date.now(), seq: null,
      mine: true, status: 'sending', attempt: 0, error: null, permanent: false,
    };
    this.setDraft(convId, '');
    const show = () => {
      c.msgs.set(m.cid, m);
      this.emit();
      if (this.ready()) this.#transmit(m);
    };
    if (!this.outbox) show();
    else this.outbox.put(m).then(show, show); // no IndexedDB: page memory only
    return m.cid;
  }

  resend(convId, cid) {
    const m = this.convs.get(convId)?.msgs.get(cid);
    if (!m || m.status !== 'failed' || m.permanent) return;
    Object.assign(m, { status: 'sending', error: null, code: null });
    this.emit();
    if (this.online()) this.#transmit(m);
  }

  /** Drops a message that failed for good, from the page and the outbox. */
  discard(convId, cid) {
    const c = this.convs.get(convId);
    const m = c?.msgs.get(cid);
    if (!m || m.status !== 'failed' || !m.permanent) return;
    c.msgs.delete(cid);
    this.emit();
    this.outbox?.remove(cid).catch(() => {});
    if (m.upload) this.files.forget(cid);
  }

  /** Puts a message that failed for good back into the composer, to be fixed. */
  edit(convId, cid) {
    const m = this.convs.get(convId)?.msgs.get(cid);
    if (!m || m.status !== 'failed' || !m.permanent) return;
    this.setDraft(convId, m.text);
    this.discard(convId, cid);
  }

  typing(convId) {
    const now = Date.now();
    const last = this.lastTyping.get(convId) || 0;
    if (!this.online() || now - last < 2000) return; // at most every 2 s per conversation
    this.lastTyping.set(convId, now);
    this.sock.send(JSON.stringify({ v: 1, type: 'typing', conv: convId }));
  }

  // Resolves with whether older messages remain; `before` (a seq) jumps
  // back there (search results far back) instead of the first one held.
  async loadOlder(convId, limit = 50, before = null) {
    const c = this.convs.get(convId);
    if (!c || !this.online()) return false;
    const first = [...c.msgs.values()].filter((m) => m.seq).reduce((a, m) => Math.min(a, m.seq), Infinity);
    const r = await this.sock.request({ v: 1, type: 'history', conv: convId, before: before || (first === Infinity ? 0 : first), limit });
    if (r.type !== 'history') return false;
    // Older messages go first in the Map so that insertion order stays
    // chronological. One of ours found there (failed, its ack lost) is
    // stored: the same object, now sent.
    const older = new Map();
    for (const w of r.msgs) {
      const k = this.#key(w);
      const had = c.msgs.get(k);
      if (had) {
        if (had.mine && !had.seq) this.#stored(had, w);
        else this.#current(had, w);
        older.set(k, had);
      } else {
        older.set(k, this.#fromWire(w));
      }
    }
    for (const [k, v] of c.msgs) if (!older.has(k)) older.set(k, v);
    c.msgs = older;
    if (!before) c.more = r.more;
    this.emit();
    return !!r.more;
  }

  scheduleRead() {
    clearTimeout(this.readTimer);
    this.readTimer = setTimeout(() => this.markRead(this.active), 150);
  }

  markRead(convId) {
    const c = convId && this.convs.get(convId);
    if (!c || !this.online() || this.conn.state !== 'online') return;
    if (typeof document !== 'undefined' && document.visibilityState === 'hidden') return;
    let last = 0;
    for (const m of c.msgs.values()) if (m.seq && m.from !== this.uid) last = Math.max(last, m.seq);
    if (last <= c.readSeq) {
      if (c.unread) { c.unread = 0; this.emit(); }
      return;
    }
    c.readSeq = last;
    c.unread = this.#countUnread(c);
    this.emit();
    this.sock.request({ v: 1, type: 'read', conv: convId, seq: last }).catch(() => {});
  }

  // ---- views ----
  status(m) {
    if (!m.mine) return null;
    if (m.status !== 'sent') return m.status;
    const c = this.convs.get(m.conv);
    for (const [uid, seq] of Object.entries(c?.reads || {})) if (uid !== this.uid && seq >= m.seq) return 'read';
    return 'sent';
  }

  ordered(convId) {
    const c = this.convs.get(convId);
    if (!c) return [];
    const stored = [], waiting = [];
    for (const m of c.msgs.values()) if (!isEvent(m)) (m.seq ? stored : waiting).push(m);
    stored.sort((a, b) => a.seq - b.seq);
    return stored.concat(waiting);
  }

  list() {
    const arr = [...this.convs.values()];
    const lastTs = (c) => {
      let t = 0;
      for (const m of c.msgs.values()) t = Math.max(t, m.ts);
      return t;
    };
    return arr.sort((a, b) => lastTs(b) - lastTs(a) || a.id.localeCompare(b.id));
  }

  title(c) {
    if (c.kind === 'group') return c.title || 'Group';
    return c.peer ? c.peer : `# ${c.id.slice(2)}`;
  }

  typers(convId) {
    const c = this.convs.get(convId);
    if (!c) return [];
    const now = Date.now();
    return [...c.typing].filter(([, until]) => until > now).map(([uid]) => uid);
  }

  // For groups.js: the conversation (made when new), a sync after the
  // running one, a fresh client id.
  conv(id) {
    return this.#conv(id);
  }
  catchUp() {
    this.#catchUp();
  }
  newCid() {
    return newCid();
  }
  // For files.js: send a message whose attachment is uploaded.
  transmit(m) {
    this.#transmit(m);
  }

  // ---- internals ----
  #conv(id) {
    let c = this.convs.get(id);
    if (!c) {
      const peer = id.startsWith('d:') ? id.slice(2).split(':').find((u) => u !== this.uid) : null;
      c = {
        id, peer, msgs: new Map(), lastSeq: 0, lastHeld: 0, readSeq: 0, unread: 0,
        reads: {}, members: [], membersCount: 0, more: false, typing: new Map(),
        kind: convKind(id), title: '', roles: {}, left: null,
      };
      this.convs.set(id, c);
      // A direct conversation we did not know (its first message, or its
      // peer typing it): the peer became a contact just now, so its changes
      // are pushed from here on, but whether it is online now no sync told
      // us. Asked once for all the conversations this turn brings.
      if (peer && !this.presence.has(peer) && !this.#presenceAsked) {
        this.#presenceAsked = true;
        queueMicrotask(() => {
          this.#presenceAsked = false;
          this.#askPresence();
        });
      }
    }
    return c;
  }

  #fromWire(m) {
    return { ...m, cid: this.#key(m), mine: m.from === this.uid, status: 'sent', attempt: 0, error: null };
  }

  // A message's key: its cid, or (from a server that leaves it out) its seq.
  #key(wire) {
    return wire.cid || `seq:${wire.seq}`;
  }

  #addMsg(c, wire) {
    const had = c.msgs.get(this.#key(wire));
    if (had) {
      // Our own message, stored while its ack was lost (or after it was
      // marked failed): now it is sent.
      if (had.mine && !had.seq) this.#stored(had, wire);
      else Object.assign(had, { seq: wire.seq, mid: wire.mid, ts: wire.ts });
      this.#current(had, wire);
    } else {
      c.msgs.set(this.#key(wire), this.#fromWire(wire));
      // Revision 2: a group's system message changes it; an event message
      // (recall, edit) changes the message it targets.
      if (wire.sys) this.applySys(c, wire);
      if (wire.target) {
        const t = c.msgs.get(this.#key(wire.target));
        if (t) this.#current(t, wire.target);
      }
    }
    c.lastSeq = Math.max(c.lastSeq, wire.seq);
    c.lastHeld = Math.max(c.lastHeld, wire.seq);
  }

  // A stored message as the server has it now (recalled, edited).
  #current(m, wire) {
    if (wire.recalled) {
      Object.assign(m, { recalled: true, text: '' });
      delete m.file;
    } else if (wire.edited) {
      Object.assign(m, { text: wire.text, edited: wire.edited });
    }
  }

  // The server has stored our message `m` (an ack, or the message itself).
  #stored(m, r) {
    const c = this.#conv(m.conv);
    Object.assign(m, { seq: r.seq, mid: r.mid, ts: r.ts, status: 'sent', error: null, code: null, permanent: false });
    c.lastSeq = Math.max(c.lastSeq, r.seq);
    // Only a contiguous seq extends what we hold; a gap waits for sync.
    if (r.seq === c.lastHeld + 1) c.lastHeld = r.seq;
    this.outbox?.remove(m.cid).catch(() => {});
    if (m.upload) this.files.stored(m);
  }

  #fail(m, code, message) {
    const permanent = PERMANENT.has(code);
    Object.assign(m, { status: 'failed', code, error: message || code, permanent });
    // A group that refuses us: we are out of it (removed while away).
    const c = this.convs.get(m.conv);
    if (code === 'forbidden' && c?.kind === 'group' && !c.left) c.left = 'removed';
    this.emit();
    // A transient failure stays 'sending' in the outbox: the next open
    // tries again. A permanent one is kept with its reason, to be seen.
    if (permanent && m.upload) this.files.keep(m); // kept with its file (files.js)
    else if (permanent) this.outbox?.put(m).catch(() => {});
  }

  #countUnread(c) {
    let n = 0;
    for (const m of c.msgs.values()) if (m.seq > c.readSeq && m.from !== this.uid && !m.sys) n++;
    return n;
  }

  #transmit(m) {
    // An attachment goes up first; files.js sends the message after.
    if (m.upload && !m.upload.done) {
      this.files.start(m);
      return;
    }
    const attempt = ++m.attempt;
    const req = { v: 1, type: 'send', conv: m.conv, cid: m.cid, text: m.text };
    if (m.file?.id) req.file = fileWire(m.file);
    this.sock
      .request(req, { timeout: ACK_TIMEOUT })
      .then((r) => {
        if (r.type === 'ack') {
          if (!m.seq) {
            this.#stored(m, r);
            this.emit();
          }
          return;
        }
        // Stored meanwhile, or a newer attempt will answer.
        if (m.seq || m.attempt !== attempt || m.status !== 'sending') return;
        if (r.code === 'rate_limited' && attempt < RATE_RETRIES) {
          // Over the user's send rate: nothing was stored; the same cid
          // goes again once the server says it would pass.
          sleep(r.retry_after).then(() => {
            if (m.attempt === attempt && m.status === 'sending' && this.online()) this.#transmit(m);
          });
          return;
        }
        this.#fail(m, r.code, r.message);
      })
      .catch(() => {
        if (m.attempt !== attempt || m.status !== 'sending') return;
        // Disconnected: it goes out again after the next sync. Connected
        // and unanswered: failed for now; a late ack, a sync or the next
        // reconnection may still settle it, and the user may resend.
        if (this.ready()) this.#fail(m, 'no_answer', 'no answer from the server');
      });
  }
}

// Revision 2: groups, recall and edit, search (groups.js).
Object.assign(IMStore.prototype, groupMethods);

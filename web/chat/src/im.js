// The chat client's state, outside React: conversations, their messages
// (an insertion-ordered Map keyed by client id, as the founding notes keep
// them), presence and the connection. It speaks docs/chat-protocol.md over
// a DuplexSocket (web/client/duplex.js) handed to it by the useIM hook, and
// notifies subscribers after every change (useSyncExternalStore).
//
// Message status: 'sending' until the server's ack, 'sent' after it,
// 'failed' when no ack came within ACK_TIMEOUT while connected (resend keeps
// the client id, so the server never stores it twice); 'read' is derived
// from the receipts. A message written while disconnected stays 'sending'
// and goes out after the next sync.

export const ACK_TIMEOUT = 8000;
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

export class IMStore {
  constructor(uid) {
    this.uid = uid;
    this.convs = new Map(); // conv id → conversation (see #conv)
    this.presence = new Map(); // uid → {online, last_seen}
    this.conn = { state: 'connecting', retryAt: null };
    this.active = null; // the open conversation
    this.sock = null;
    this.version = 0;
    this.listeners = new Set();
    this.readTimer = null;
    this.lastTyping = new Map(); // conv id → when we last said we were typing
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
  setConn(state, retryAt = null) {
    this.conn = { state, retryAt };
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
    // What was written while away, in the order it was written.
    for (const c of this.convs.values())
      for (const m of c.msgs.values()) if (m.mine && m.status === 'sending') this.#transmit(m);
    this.markRead(this.active);
  }

  onClose() {
    for (const c of this.convs.values()) c.typing.clear();
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
        for (const m of info.msgs) this.#addMsg(c, m);
        if (had && info.more) again = true;
        else if (!had) c.more = info.more;
      }
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

  onMessage(data) {
    if (typeof data !== 'object' || data === null) return;
    switch (data.type) {
      case 'deliver': {
        const c = this.#conv(data.msg.conv);
        const fresh = !c.msgs.has(data.msg.cid);
        this.#addMsg(c, data.msg);
        c.typing.delete(data.msg.from);
        if (fresh && data.msg.from !== this.uid && data.msg.seq > c.readSeq) c.unread++;
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
        break;
      }
      case 'presence':
        for (const p of data.users) this.presence.set(p.uid, p);
        this.emit();
        break;
      case 'resync':
        // The server's node lost pushes from the other nodes for a while
        // (its Redis link was down): fetch what was missed now. A failure
        // is left to the next reconnection, which syncs anyway.
        if (this.conn.state === 'online') this.sync().catch(() => {});
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
    return id;
  }

  send(convId, text) {
    text = text.trim();
    if (!text || !convId) return null;
    const c = this.#conv(convId);
    const m = {
      cid: newCid(), conv: convId, from: this.uid, text, ts: Date.now(), seq: null,
      mine: true, status: 'sending', attempt: 0, error: null,
    };
    c.msgs.set(m.cid, m);
    this.emit();
    if (this.online() && this.conn.state === 'online') this.#transmit(m);
    return m.cid;
  }

  resend(convId, cid) {
    const m = this.convs.get(convId)?.msgs.get(cid);
    if (!m || m.status !== 'failed') return;
    m.status = 'sending';
    m.error = null;
    this.emit();
    if (this.online()) this.#transmit(m);
  }

  typing(convId) {
    const now = Date.now();
    const last = this.lastTyping.get(convId) || 0;
    if (!this.online() || now - last < 2000) return; // at most every 2 s per conversation
    this.lastTyping.set(convId, now);
    this.sock.send(JSON.stringify({ v: 1, type: 'typing', conv: convId }));
  }

  async loadOlder(convId) {
    const c = this.convs.get(convId);
    if (!c || !this.online()) return;
    const first = [...c.msgs.values()].filter((m) => m.seq).reduce((a, m) => Math.min(a, m.seq), Infinity);
    const r = await this.sock.request({ v: 1, type: 'history', conv: convId, before: first === Infinity ? 0 : first, limit: 50 });
    if (r.type !== 'history') return;
    // Older messages go first in the Map so that insertion order stays
    // chronological.
    const older = new Map();
    for (const m of r.msgs) older.set(m.cid, this.#fromWire(m));
    for (const [k, v] of c.msgs) if (!older.has(k)) older.set(k, v);
    c.msgs = older;
    c.more = r.more;
    this.emit();
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
    for (const m of c.msgs.values()) (m.seq ? stored : waiting).push(m);
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
    return c.peer ? c.peer : `# ${c.id.slice(2)}`;
  }

  typers(convId) {
    const c = this.convs.get(convId);
    if (!c) return [];
    const now = Date.now();
    return [...c.typing].filter(([, until]) => until > now).map(([uid]) => uid);
  }

  // ---- internals ----
  #conv(id) {
    let c = this.convs.get(id);
    if (!c) {
      const peer = id.startsWith('d:') ? id.slice(2).split(':').find((u) => u !== this.uid) : null;
      c = {
        id, peer, msgs: new Map(), lastSeq: 0, lastHeld: 0, readSeq: 0, unread: 0,
        reads: {}, members: [], membersCount: 0, more: false, typing: new Map(),
      };
      this.convs.set(id, c);
    }
    return c;
  }

  #fromWire(m) {
    return { ...m, mine: m.from === this.uid, status: 'sent', attempt: 0, error: null };
  }

  #addMsg(c, wire) {
    const had = c.msgs.get(wire.cid);
    if (had) {
      // Our own message, stored while its ack was lost: now it is sent.
      Object.assign(had, { seq: wire.seq, mid: wire.mid, ts: wire.ts, status: 'sent', error: null });
    } else {
      c.msgs.set(wire.cid, this.#fromWire(wire));
    }
    c.lastSeq = Math.max(c.lastSeq, wire.seq);
    c.lastHeld = Math.max(c.lastHeld, wire.seq);
  }

  #countUnread(c) {
    let n = 0;
    for (const m of c.msgs.values()) if (m.seq > c.readSeq && m.from !== this.uid) n++;
    return n;
  }

  #transmit(m) {
    const attempt = ++m.attempt;
    this.sock
      .request({ v: 1, type: 'send', conv: m.conv, cid: m.cid, text: m.text }, { timeout: ACK_TIMEOUT })
      .then((r) => {
        if (m.attempt !== attempt && m.status === 'sent') return;
        if (r.type === 'ack') {
          const c = this.#conv(m.conv);
          Object.assign(m, { seq: r.seq, mid: r.mid, ts: r.ts, status: 'sent', error: null });
          c.lastSeq = Math.max(c.lastSeq, r.seq);
          // Only a contiguous seq extends what we hold; a gap waits for sync.
          if (r.seq === c.lastHeld + 1) c.lastHeld = r.seq;
        } else if (r.code === 'rate_limited' && attempt < RATE_RETRIES) {
          // Over the user's send rate: nothing was stored; the same cid
          // goes again once the server says it would pass.
          sleep(r.retry_after).then(() => {
            if (m.attempt === attempt && m.status === 'sending' && this.online()) this.#transmit(m);
          });
          return;
        } else {
          Object.assign(m, { status: 'failed', error: r.message || r.code });
        }
        this.emit();
      })
      .catch(() => {
        if (m.attempt !== attempt || m.status !== 'sending') return;
        // Disconnected: it goes out again after the next sync. Connected
        // and unanswered: failed, the user may resend.
        if (this.online() && this.conn.state === 'online') {
          m.status = 'failed';
          m.error = 'no answer from the server';
          this.emit();
        }
      });
  }
}

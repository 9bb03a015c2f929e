// Revision 2 of docs/chat-protocol.md in the chat client: private groups
// (p:ID), system messages, recall and edit, search. The methods below are
// installed on IMStore (im.js) and use its public surface only:
// im.conv(id), im.catchUp(), im.emit(), im.sock, im.ready().
//
// Conversation fields added here: kind ('direct' | 'room' | 'group'),
// title (groups), roles ({uid: 'owner' | 'admin'}, as sync gives them),
// left (null, 'removed' or 'left': the group is read-only for us).
// Message fields from the server: sys {op, …} (a system or event message),
// target (the message an event changed), recalled, edited.

// A server's welcome without `rev` speaks revision 1.
export const REV_GROUPS = 2;
// The server's --recall-window default; the menu hides Recall after it.
export const RECALL_WINDOW = 120000;
const REQ_TIMEOUT = 10000;
const RATE_RETRIES = 5;

// Event messages: they change another message and are not shown themselves.
export const EVENT_OPS = new Set(['recall', 'edit']);
export const isEvent = (m) => !!(m.sys && EVENT_OPS.has(m.sys.op));
export const isSystem = (m) => !!m.sys && !isEvent(m);

export function convKind(id) {
  if (id.startsWith('p:')) return 'group';
  if (id.startsWith('g:')) return 'room';
  return 'direct';
}

/** A group title as the server takes it: 1–64 bytes, no control characters. */
export function titleError(t) {
  const s = t.trim();
  if (!s) return 'Give the group a name';
  if (new TextEncoder().encode(s).length > 64) return 'The name is too long (64 bytes at most)';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(s)) return 'The name cannot hold control characters';
  return null;
}

const list = (uids, me) => (uids || []).map((u) => (u === me ? 'you' : u)).join(', ');
const who = (uid, me) => (uid === me ? 'You' : uid);

/**
 * The line a system message shows, from `me`'s side ("You added carol",
 * "alice removed you"); the server's English `text` for what it does not
 * know.
 */
export function sysLine(m, me) {
  const s = m.sys || {};
  const by = who(m.from, me);
  switch (s.op) {
    case 'create': return `${by} created the group${s.title ? ` “${s.title}”` : ''}`;
    case 'add': return `${by} added ${list(s.uids, me)}`;
    case 'remove': return `${by} removed ${list(s.uids, me)}`;
    case 'leave': return `${by} left the group`;
    case 'rename': return `${by} renamed the group to “${s.title}”`;
    case 'role': return `${by} made ${list(s.uids, me)} ${s.role === 'admin' ? 'an admin' : 'a member'}`;
    case 'owner': return `${list(s.uids, me).replace(/^you$/, 'You')} ${s.uids?.length === 1 && s.uids[0] === me ? 'are' : 'is'} now the owner`;
    case 'recall': return `${by} recalled a message`;
    default: return m.text || '';
  }
}

/** "alice recalled a message" / "You recalled a message". */
export const recalledLine = (m, me) => `${who(m.from, me)} recalled a message`;

export class RequestError extends Error {
  constructor(code, message, field) {
    super(message || code);
    this.code = code;
    this.field = field;
  }
}

// Human words for the codes a person can meet here.
const WORDS = {
  forbidden: 'You are not allowed to do that here',
  too_late: 'Too late to recall this message',
  not_member: 'Not a member of this conversation',
  offline: 'You are offline: try again once connected',
  timeout: 'No answer from the server',
  bad_type: 'This server does not support that',
};
export const errorText = (e) => (e && (WORDS[e.code] ? `${WORDS[e.code]}${e.code === 'forbidden' && e.message && e.message !== e.code ? ` (${e.message})` : ''}` : e.message)) || 'Something went wrong';

export const groupMethods = {
  /**
   * One request of revision 2: resolves with the reply, throws a
   * RequestError (code: the server's error code, 'offline' or 'timeout').
   * A refusal for rate is waited out and asked again, as sync does.
   */
  async ask(req) {
    for (let tries = 0; ; tries++) {
      if (!this.ready()) throw new RequestError('offline');
      let r;
      try {
        r = await this.sock.request({ v: 1, ...req }, { timeout: REQ_TIMEOUT });
      } catch (e) {
        throw new RequestError(e && e.name === 'TimeoutError' ? 'timeout' : 'offline');
      }
      if (r.type !== 'error') return r;
      if (r.code !== 'rate_limited' || tries >= RATE_RETRIES) throw new RequestError(r.code, r.message, r.field);
      await new Promise((ok) => setTimeout(ok, Math.min(Math.max(r.retry_after | 0, 1), 10000)));
    }
  },

  groupsOn() {
    return this.rev >= REV_GROUPS;
  },

  // What sync says of a conversation (revision 2 fields).
  applyConvInfo(c, info) {
    if (info.kind) c.kind = info.kind;
    if (info.title !== undefined) c.title = info.title;
    if (info.roles) c.roles = { ...info.roles };
    // Sync lists only conversations we are in: a group there is ours again.
    if (c.kind === 'group') c.left = null;
  },

  // A system or event message, new to this page: what it changes.
  applySys(c, m) {
    const s = m.sys;
    if (!s) return;
    const uids = s.uids || [];
    const me = this.uid;
    const drop = (gone) => {
      c.members = c.members.filter((u) => !gone.includes(u));
      for (const u of gone) delete c.roles[u];
      if (c.membersCount) c.membersCount = Math.max(0, c.membersCount - gone.length);
    };
    switch (s.op) {
      case 'create':
        if (s.title) c.title = s.title;
        c.members = [...new Set([m.from, ...uids, ...c.members])];
        c.roles = { ...c.roles, [m.from]: 'owner' };
        if (uids.includes(me) || m.from === me) c.left = null;
        break;
      case 'add':
        c.members = [...new Set([...c.members, ...uids])];
        if (c.membersCount) c.membersCount += uids.length;
        if (uids.includes(me)) c.left = null;
        break;
      case 'remove':
        drop(uids);
        if (uids.includes(me)) c.left = 'removed';
        break;
      case 'leave':
        drop([m.from]);
        if (m.from === me) c.left = 'left';
        break;
      case 'rename':
        if (s.title) c.title = s.title;
        break;
      case 'role':
        c.roles = { ...c.roles };
        for (const u of uids) {
          if (s.role === 'admin') c.roles[u] = 'admin';
          else delete c.roles[u];
        }
        break;
      case 'owner':
        c.roles = { ...c.roles };
        for (const [u, r] of Object.entries(c.roles)) if (r === 'owner') delete c.roles[u];
        for (const u of uids) c.roles[u] = 'owner';
        break;
      default:
        break;
    }
    c.membersVersion = (c.membersVersion || 0) + 1;
  },

  /** Our role in a group: 'owner', 'admin', 'member', or null when out of it. */
  roleIn(convId, uid = this.uid) {
    const c = this.convs.get(convId);
    if (!c || c.kind !== 'group') return null;
    if (uid === this.uid && c.left) return null;
    return c.roles?.[uid] || 'member';
  },

  /**
   * Creates a group; resolves with its conversation id once the server has
   * it (and opens it). A timeout is asked again with the same cid, which
   * the server answers with the first group.
   */
  async createGroup(title, members) {
    const cid = this.newCid();
    const req = { type: 'group_create', cid, title: title.trim(), members };
    let r;
    try {
      r = await this.ask(req);
    } catch (e) {
      if (e.code !== 'timeout') throw e;
      r = await this.ask(req);
    }
    if (r.type !== 'group') throw new RequestError('internal', 'unexpected answer');
    const c = this.conv(r.conv);
    c.kind = 'group';
    c.title = r.title ?? title.trim();
    c.left = null;
    if (!c.members.length) c.members = [this.uid, ...members];
    c.roles = { ...c.roles, [this.uid]: 'owner' };
    this.open(r.conv);
    this.catchUp(); // its system message, if the server did not push it here
    return r.conv;
  },

  /** The members of a group with their roles, every page. */
  async groupMembers(convId) {
    const out = [];
    let after = null;
    for (let pages = 0; pages < 50; pages++) {
      const req = { type: 'group_members', conv: convId, limit: 200 };
      if (after) req.after = after;
      const r = await this.ask(req);
      out.push(...(r.members || []));
      if (!r.next) break;
      after = r.next;
    }
    const c = this.convs.get(convId);
    if (c) {
      c.members = out.map((m) => m.uid);
      c.roles = {};
      for (const m of out) if (m.role !== 'member') c.roles[m.uid] = m.role;
      this.emit();
    }
    return out;
  },

  async groupAdd(convId, uids) {
    await this.ask({ type: 'group_add', conv: convId, uids });
  },
  async groupRemove(convId, uid) {
    await this.ask({ type: 'group_remove', conv: convId, uid });
  },
  async groupRename(convId, title) {
    await this.ask({ type: 'group_rename', conv: convId, title: title.trim() });
  },
  async groupRole(convId, uid, role) {
    await this.ask({ type: 'group_role', conv: convId, uid, role });
  },
  async leave(convId) {
    await this.ask({ type: 'leave', conv: convId });
    const c = this.convs.get(convId);
    if (c) {
      c.left = 'left';
      this.emit();
    }
  },

  // ---- recall and edit ----
  /** Whether our message `m` may still be recalled (the server decides). */
  canRecall(m) {
    if (this.convs.get(m.conv)?.left) return false;
    return !!(m.mine && m.seq && !m.recalled && !m.sys && this.now() - m.ts < this.recallWindow);
  },
  canEdit(m) {
    if (this.convs.get(m.conv)?.left) return false;
    return !!(m.mine && m.seq && !m.recalled && !m.sys && !m.file && typeof m.text === 'string' && m.text !== '');
  },
  now() {
    return Date.now() + (this.skew || 0);
  },

  async recall(convId, seq) {
    await this.ask({ type: 'recall', conv: convId, seq });
    this.patchMsg(convId, seq, { recalled: true, text: '', file: undefined });
  },

  async editMsg(convId, seq, text) {
    text = text.trim();
    await this.ask({ type: 'edit', conv: convId, seq, text });
    this.patchMsg(convId, seq, { text, edited: this.now() });
  },

  // Our copy of message `seq` of a conversation, changed (an answer, or an
  // event message's target).
  patchMsg(convId, seq, fields) {
    const c = this.convs.get(convId);
    if (!c) return;
    for (const m of c.msgs.values())
      if (m.seq === seq) {
        Object.assign(m, fields);
        if (m.recalled) delete m.file;
        this.emit();
        return;
      }
  },

  // ---- search ----
  /**
   * One page of results for `q` (newest first): {results, next}; `before`
   * is the `next` of the page before.
   */
  async search(q, before = null, conv = null) {
    const req = { type: 'search', q, limit: 20 };
    if (before) req.before = before;
    if (conv) req.conv = conv;
    const r = await this.ask(req);
    return { results: r.results || [], next: r.next || null };
  },

  /**
   * Opens a conversation at message `seq`: older history is loaded until it
   * is held; `focus` asks the view to scroll to it and highlight it.
   */
  async openAt(convId, seq) {
    this.open(convId);
    const c = this.conv(convId);
    this.focus = { conv: convId, seq, at: Date.now() };
    this.emit();
    const lowest = () => {
      let lo = Infinity;
      for (const m of c.msgs.values()) if (m.seq) lo = Math.min(lo, m.seq);
      return lo;
    };
    // At most 40 pages of 100 back; a message further back than that
    // is fetched around itself (the messages in between load on scroll).
    for (let i = 0; i < 40 && lowest() > seq; i++) {
      const more = await this.loadOlder(convId, 100);
      if (!more) break;
    }
    if (lowest() > seq) await this.loadOlder(convId, 50, seq + 1);
    this.focus = { conv: convId, seq, at: Date.now() };
    this.emit();
  },
};

// Pictures and files in the chat (issue 18; docs/chat-protocol.md,
// "Revision 2 … / Files and pictures"): what the IMStore (im.js) hands over
// for a message that carries an attachment.
//
// A person attaches a file (picker, drop, paste): the page picks the cid
// then, makes a thumbnail of a picture (canvas, at most THUMB_MAX px, WebP or
// JPEG at 0.8) and commits the message, its File and the thumbnail to
// IndexedDB (a database of its own beside outbox.js's, "duplex-chat-files/
// UID") before it shows as 'sending'. The upload goes over the chat socket:
//   `upload` {name, size, sha256} → {upload: token, offset, chunk}
//   binary messages: 16 bytes of token, 8 bytes big-endian offset, a chunk;
//     at most WINDOW chunks in flight, each answered `upload_progress`
//   `uploaded` {file: {id, …}} at the end
// the thumbnail first (it is small), then the original. Only then is the
// message a plain `send` with `file` {id, name, thumb, w, h}, with the cid
// chosen at the start, so a resend or a reload never stores it twice.
//
// An interrupted upload (the connection dropped, the server restarted, the
// tab was closed) starts again from where the server is: `upload` again
// with the saved token answers the offset to go on from. One upload runs at
// a time (in the order the messages were written); what is waiting shows
// 'sending' with its bar at 0.
//
// Nothing here touches the DOM at load time: the module is imported by
// im.js, which the node unit tests load too.
import { committed, done } from './outbox.js';

export const MAX_UPLOAD_DEFAULT = 25 * 1024 * 1024; // the server's default --max-upload
export const WINDOW = 4; // chunks in flight
export const THUMB_MAX = 320; // px, the longer side of a thumbnail
export const NAME_MAX = 255; // bytes of UTF-8 in a file name
export const STAGE_MAX = 10; // files waiting in the composer at once
const REQUEST_TIMEOUT = 15000;
const STALL = 30000; // ms without a reply during an upload
// The types the server serves as pictures (the rest is a download).
export const IMAGE_TYPES = new Set(['image/jpeg', 'image/png', 'image/gif', 'image/webp']);
// Answers to `upload` that no retry of the same file can cure.
const PERMANENT = new Set(['bad_json', 'bad_version', 'bad_type', 'bad_field', 'too_large', 'not_member', 'forbidden']);

const sleep = (ms) =>
  new Promise((r) => {
    const t = setTimeout(r, Math.min(Math.max(ms | 0, 1), 10000));
    if (t && t.unref) t.unref();
  });

function newCid() {
  if (globalThis.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  return `c-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

class UploadError extends Error {
  constructor(code, message, extra = {}) {
    super(message || code);
    this.code = code;
    Object.assign(this, extra);
  }
}
// The connection went away under an upload: it goes on after the next open.
class Interrupted extends Error {}

/** "1.4 MB": bytes in human units (SI, as file managers show them). */
export function humanSize(n) {
  if (!(n >= 0)) return '';
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1000, i = 0;
  while (v >= 999.5 && i < units.length - 1) { v /= 1000; i++; }
  return `${v < 9.95 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

function utf8Length(s) {
  return new TextEncoder().encode(s).length;
}

/**
 * A file name the server takes (1–255 bytes of UTF-8, no control
 * characters): control characters become "_", a long name is cut before its
 * extension. It stays a display name: "../../x.txt" is kept as it is.
 */
export function cleanName(name) {
  // eslint-disable-next-line no-control-regex
  let s = String(name || '').replace(/[\u0000-\u001f\u007f-\u009f]/g, '_').trim();
  if (!s) s = 'file';
  if (utf8Length(s) <= NAME_MAX) return s;
  const dot = s.lastIndexOf('.');
  const ext = dot > 0 && s.length - dot <= 16 ? s.slice(dot) : '';
  let base = [...s.slice(0, s.length - ext.length)];
  while (base.length && utf8Length(base.join('') + '…' + ext) > NAME_MAX) base.pop();
  return base.join('') + '…' + ext;
}

/** True when the server serves this type as a picture (shown inline). */
export function isImage(file) {
  return !!file && IMAGE_TYPES.has(String(file.type || '').toLowerCase());
}

/** The picture-or-file icon of a type, for cards and the conversation list. */
export function fileIcon(type = '') {
  const t = String(type).toLowerCase();
  if (t.startsWith('image/')) return '🖼️';
  if (t === 'application/pdf') return '📕';
  if (t.startsWith('text/')) return '📄';
  if (/zip|gzip|x-7z|x-tar|compressed/.test(t)) return '🗜️';
  if (t.startsWith('audio/')) return '🎵';
  if (t.startsWith('video/')) return '🎬';
  return '📎';
}

/** What the conversation list shows for a message with a file and no text. */
export function fileLabel(file) {
  if (!file) return '';
  return isImage(file) ? '📷 Photo' : `📎 ${file.name || 'File'}`;
}

/** The `file` of a `send`: what the protocol asks for, nothing local. */
export function fileWire(file) {
  const w = { id: file.id, name: file.name };
  if (file.thumb) w.thumb = file.thumb;
  if (file.w > 0 && file.h > 0) Object.assign(w, { w: file.w | 0, h: file.h | 0 });
  return w;
}

/**
 * The download URL of file `id` (an original or a thumbnail) of a message in
 * `conv`: GET /files/<sha256>?conv=…&token=… with the page's token, or
 * &uid=… on a server without a secret.
 */
export function fileUrl(uid, conv, id) {
  let token = null;
  if (typeof location !== 'undefined') token = new URLSearchParams(location.search).get('token');
  const who = token ? `token=${encodeURIComponent(token)}` : `uid=${encodeURIComponent(uid)}`;
  return `/files/${encodeURIComponent(id)}?conv=${encodeURIComponent(conv)}&${who}`;
}

function hexBytes(hex) {
  const b = new Uint8Array(16);
  for (let i = 0; i < 16; i++) b[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return b;
}

async function sha256Hex(blob) {
  if (!globalThis.crypto?.subtle) return null; // not a secure context
  const d = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
  return [...new Uint8Array(d)].map((x) => x.toString(16).padStart(2, '0')).join('');
}

/**
 * A picture's size and thumbnail: {w, h, thumb: Blob|null}; thumb is null
 * when the picture is no larger than a thumbnail. null when the browser
 * cannot decode it (then it goes as a plain file).
 */
export async function makeThumb(file) {
  if (typeof createImageBitmap !== 'function' || typeof document === 'undefined') return null;
  let bmp;
  try {
    bmp = await createImageBitmap(file);
  } catch {
    return null;
  }
  const w = bmp.width, h = bmp.height;
  try {
    if (!w || !h) return null;
    if (w <= THUMB_MAX && h <= THUMB_MAX && file.size <= 64 * 1024) return { w, h, thumb: null };
    const k = Math.min(1, THUMB_MAX / Math.max(w, h));
    const cw = Math.max(1, Math.round(w * k)), ch = Math.max(1, Math.round(h * k));
    const canvas = document.createElement('canvas');
    canvas.width = cw;
    canvas.height = ch;
    const g = canvas.getContext('2d');
    g.imageSmoothingQuality = 'high';
    g.drawImage(bmp, 0, 0, cw, ch);
    const blob = (type) => new Promise((r) => canvas.toBlob(r, type, 0.8));
    let thumb = await blob('image/webp');
    if (!thumb || thumb.type !== 'image/webp') {
      // No WebP encoder (Safari): JPEG, on white where the picture is clear.
      g.globalCompositeOperation = 'destination-over';
      g.fillStyle = '#fff';
      g.fillRect(0, 0, cw, ch);
      thumb = await blob('image/jpeg');
    }
    return { w, h, thumb: thumb || null };
  } finally {
    bmp.close?.();
  }
}

// ---- where pending attachments wait (IndexedDB) ----
//   load()            → Promise<[{…record, blob, thumb}]>
//   put(rec, blobs?)  → Promise, once committed; blobs {blob, thumb} the
//                       first time (they are written once, apart)
//   remove(cid)       → Promise

/** The store of pending attachments of `uid` in IndexedDB; null without it. */
export function idbFiles(uid) {
  if (typeof indexedDB === 'undefined') return null;
  let db = null;
  const open = () => {
    if (db) return db;
    db = new Promise((resolve, reject) => {
      const req = indexedDB.open(`duplex-chat-files/${uid}`, 1);
      req.onupgradeneeded = () => {
        const d = req.result;
        if (!d.objectStoreNames.contains('pending')) d.createObjectStore('pending', { keyPath: 'cid' });
        if (!d.objectStoreNames.contains('blobs')) d.createObjectStore('blobs', { keyPath: 'cid' });
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
      req.onblocked = () => reject(new Error('IndexedDB blocked'));
    });
    db.catch(() => { db = null; });
    return db;
  };
  return {
    async load() {
      const d = await open();
      const tx = d.transaction(['pending', 'blobs'], 'readonly');
      const [recs, blobs] = await Promise.all([
        done(tx.objectStore('pending').getAll()), done(tx.objectStore('blobs').getAll()),
      ]);
      const by = new Map(blobs.map((b) => [b.cid, b]));
      return recs.sort((a, b) => a.ts - b.ts).map((r) => ({ ...r, blob: by.get(r.cid)?.blob || null, thumb: by.get(r.cid)?.thumb || null }));
    },
    async put(rec, blobs) {
      const d = await open();
      const tx = d.transaction(['pending', 'blobs'], 'readwrite', { durability: 'strict' });
      tx.objectStore('pending').put(rec);
      if (blobs) tx.objectStore('blobs').put({ cid: rec.cid, blob: blobs.blob, thumb: blobs.thumb || null });
      return committed(tx);
    },
    async remove(cid) {
      const d = await open();
      const tx = d.transaction(['pending', 'blobs'], 'readwrite');
      tx.objectStore('pending').delete(cid);
      tx.objectStore('blobs').delete(cid);
      return committed(tx);
    },
  };
}

/** The same in memory (tests; a page without IndexedDB). */
export function memoryFiles(shared = new Map()) {
  return {
    shared,
    async load() {
      return [...shared.values()].map((x) => ({ ...x })).sort((a, b) => a.ts - b.ts);
    },
    async put(rec, blobs) {
      const had = shared.get(rec.cid) || {};
      shared.set(rec.cid, { ...rec, blob: blobs ? blobs.blob : had.blob, thumb: blobs ? blobs.thumb || null : had.thumb });
    },
    async remove(cid) { shared.delete(cid); },
  };
}

// What of a pending attachment is kept: the message, the file's metadata
// and how far its upload got (tokens, the ids of what is uploaded).
function record(m) {
  const u = m.upload;
  return {
    cid: m.cid, conv: m.conv, from: m.from, text: m.text, ts: m.ts,
    status: m.status, error: m.error, permanent: !!m.permanent,
    file: { ...m.file },
    upload: {
      name: u.name, size: u.size, thumbSize: u.thumbSize, token: u.token, thumbToken: u.thumbToken,
      fileId: u.fileId, thumbId: u.thumbId, sha: u.sha, thumbSha: u.thumbSha, done: !!u.done,
    },
  };
}

/**
 * The attachments of one IMStore (`im.files`). The store calls start(m)
 * where it would send a message whose upload is not done, onMessage() with
 * the upload replies, onClose() when the socket drops, stored(m) when the
 * server has the message and forget(cid) when it is discarded.
 */
export class Attachments {
  constructor(im, { store = null } = {}) {
    this.im = im;
    this.store = store;
    this.maxUpload = MAX_UPLOAD_DEFAULT; // until the server says otherwise
    this.limitKnown = false; // the server said it (welcome)
    this.queue = []; // messages waiting for their upload, in order
    this.running = false;
    this.active = null; // the transfer in progress (#send)
    this.previews = new Map(); // cid → object URL of the local picture
    this.notice = ''; // why the last files were not attached (composer)
    this.staged = new Map(); // conv → [{key, file, url}] waiting in the composer
    this.link = new AbortController(); // aborted when the socket drops
    this.rev = null; // the server's revision, once it said it
  }

  // ---- the composer ----

  /** Why `file` cannot go (over the limit, empty), or null. */
  refusal(file) {
    if (!file) return 'no file';
    if (file.size > this.maxUpload)
      return `“${cleanName(file.name)}” is ${humanSize(file.size)}: files can be at most ${humanSize(this.maxUpload)} here`;
    if (file.size === 0) return `“${cleanName(file.name)}” is empty`;
    return null;
  }

  /** Files picked, dropped or pasted into the composer of `conv`: kept there until Send. */
  stage(conv, files) {
    const list = this.staged.get(conv) || [];
    const why = [];
    for (const f of files) {
      const r = this.refusal(f);
      if (r) { why.push(r); continue; }
      if (list.length >= STAGE_MAX) { why.push(`at most ${STAGE_MAX} files at once`); break; }
      const url = isImage(f) && typeof URL !== 'undefined' && URL.createObjectURL ? URL.createObjectURL(f) : null;
      list.push({ key: newCid(), file: f, url });
    }
    this.staged.set(conv, list);
    this.notice = why.join('; ');
    this.im.emit();
  }

  unstage(conv, key) {
    const list = (this.staged.get(conv) || []).filter((s) => {
      if (s.key !== key) return true;
      if (s.url) URL.revokeObjectURL(s.url);
      return false;
    });
    this.staged.set(conv, list);
    this.im.emit();
  }

  stagedOf(conv) {
    return this.staged.get(conv) || [];
  }

  clearNotice() {
    if (!this.notice) return;
    this.notice = '';
    this.im.emit();
  }

  /**
   * Sends what is staged in `conv`, each file its own message; `caption`
   * goes under the first. Returns the cids.
   */
  async sendStaged(conv, caption = '') {
    const list = this.stagedOf(conv);
    this.staged.set(conv, []);
    this.im.emit();
    const cids = [];
    let text = caption.trim();
    for (const s of list) {
      cids.push(await this.add(conv, s.file, text, s.url));
      text = '';
    }
    return cids;
  }

  /**
   * A message with `file` (a File or Blob with a name) and caption `text`
   * in `conv`: its cid is chosen now; it shows once it is committed to
   * IndexedDB (with the file), and its upload starts when connected.
   */
  async add(conv, file, text = '', preview = null) {
    const why = this.refusal(file);
    if (why) {
      this.notice = why;
      this.im.emit();
      return null;
    }
    const name = cleanName(file.name);
    const type = String(file.type || '').toLowerCase();
    let pic = null;
    if (IMAGE_TYPES.has(type)) pic = await makeThumb(file);
    const m = {
      cid: newCid(), conv, from: this.im.uid, text, ts: Date.now(), seq: null,
      mine: true, status: 'sending', attempt: 0, error: null, permanent: false,
      file: { name, size: file.size, type: pic ? type : type || 'application/octet-stream', ...(pic ? { w: pic.w, h: pic.h } : {}) },
      upload: {
        blob: file, thumbBlob: pic?.thumb || null, name, size: file.size, thumbSize: pic?.thumb?.size || 0,
        token: null, thumbToken: null, fileId: null, thumbId: null, sha: null, thumbSha: null, done: false,
        sent: 0, state: 'queued',
      },
    };
    if (pic) this.#preview(m, preview);
    else if (preview) URL.revokeObjectURL(preview);
    try {
      await this.store?.put(record(m), { blob: file, thumb: m.upload.thumbBlob });
    } catch {
      // No IndexedDB (private mode, quota): page memory only.
    }
    this.im.conv(conv).msgs.set(m.cid, m);
    this.im.emit();
    if (this.im.ready()) this.im.transmit(m);
    return m.cid;
  }

  // An object URL to show our own picture while it has no server copy.
  #preview(m, url = null) {
    if (this.previews.has(m.cid) || typeof URL === 'undefined' || !URL.createObjectURL) return;
    const src = m.upload.thumbBlob || m.upload.blob;
    if (!url && src) url = URL.createObjectURL(src);
    if (url) this.previews.set(m.cid, url);
  }

  /** The local picture of one of our pending messages, or null. */
  preview(cid) {
    return this.previews.get(cid) || null;
  }

  /** Where an upload is: {sent, total, state} or null when it has none. */
  progress(m) {
    const u = m.upload;
    if (!u || u.done) return null;
    return { sent: u.sent || 0, total: u.size + (u.thumbBlob ? u.thumbSize : 0), state: u.state };
  }

  /** Cancels a message still uploading (or failed): it goes away for good. */
  cancel(m) {
    if (!m.upload || m.seq || (m.upload.done && m.status === 'sending')) return;
    m.status = 'cancelled';
    this.queue = this.queue.filter((x) => x !== m);
    if (this.active?.m === m) this.active.reject(new UploadError('cancelled', 'cancelled'));
    this.im.convs.get(m.conv)?.msgs.delete(m.cid);
    this.forget(m.cid);
    this.im.emit();
  }

  // ---- what the IMStore calls ----

  /**
   * True when the server said it has no files (a revision-1 server: the
   * contract's "check welcome.rev before offering the features"). Before
   * any welcome the page offers them: what is attached waits for one.
   */
  off() {
    return this.rev !== null && this.rev < 2;
  }

  /** The server's welcome: its revision, its limit on a file when it says one. */
  onWelcome(w) {
    this.rev = w?.rev || 1;
    const l = w?.limits || {};
    const n = l.upload ?? l.file ?? l.max_upload;
    if (n > 0) {
      this.maxUpload = n;
      this.limitKnown = true;
    }
  }

  /** Upload `m` (then send it): from im.js where it would transmit. */
  start(m) {
    if (!m.upload || m.upload.done || m.status !== 'sending') return;
    if (!this.queue.includes(m)) this.queue.push(m);
    this.#run();
  }

  /** The socket dropped: the upload in progress goes on after the next open. */
  onClose() {
    this.queue = [];
    this.link.abort(new Interrupted('disconnected'));
    this.link = new AbortController();
    if (this.active) this.active.reject(new Interrupted('disconnected'));
  }

  /** The server stored our message `m`: its attachment is no longer pending. */
  stored(m) {
    if (!m.upload) return;
    this.forget(m.cid);
    // The page shows the server's copy from now on: the local one goes
    // (a moment later, while the <img> switches over).
    const url = this.previews.get(m.cid);
    if (url) {
      this.previews.delete(m.cid);
      const t = setTimeout(() => URL.revokeObjectURL(url), 30000);
      if (t && t.unref) t.unref();
    }
    m.upload.blob = m.upload.thumbBlob = null;
  }

  /** Drops what is kept of message `cid`. */
  forget(cid) {
    this.store?.remove(cid).catch(() => {});
  }

  /** Keeps a message whose state changed (a permanent failure, say). */
  keep(m) {
    if (m.upload) this.store?.put(record(m)).catch(() => {});
  }

  /** Replies about uploads (no request of ours waits for them). */
  onMessage(data) {
    const t = this.active;
    if (!t) return false;
    switch (data.type) {
      case 'upload_progress':
        if (data.upload !== t.token) return false;
        if (!t.resyncing && data.offset > t.acked) {
          t.acked = Math.min(data.offset, t.size);
          this.#moved(t);
          this.#pump(t);
        }
        return true;
      case 'uploaded':
        if (data.upload && data.upload !== t.token) return false;
        t.resolve(data.file);
        return true;
      case 'error': {
        // A chunk's error: bad_offset (with where the file is), or what
        // names this upload. Errors of other requests carry their id.
        const ours = data.upload ? data.upload === t.token : data.code === 'bad_offset' || (data.id == null && !data.limit);
        if (!ours) return false;
        // Where the file is, or a token the server forgot (it restarted):
        // ask it again with `upload` and go on from its answer.
        if (data.code === 'bad_offset' || (data.code === 'bad_field' && data.field === 'upload')) this.#resync(t);
        else if (data.code === 'rate_limited') this.#resync(t, data.retry_after);
        else t.reject(new UploadError(data.code || 'internal', data.message, { max: data.max }));
        return true;
      }
      default:
        return false;
    }
  }

  /** Reads back what an earlier page left pending, and goes on with it. */
  async restore() {
    if (!this.store) return;
    let recs;
    try {
      recs = await this.store.load();
    } catch {
      return;
    }
    for (const r of recs) {
      if (r.from !== this.im.uid || !r.conv || !r.cid) continue;
      const c = this.im.conv(r.conv);
      const had = c.msgs.get(r.cid);
      if (had) {
        if (had.seq) this.forget(r.cid); // a sync found it stored
        continue;
      }
      const m = {
        cid: r.cid, conv: r.conv, from: r.from, text: r.text || '', ts: r.ts, seq: null, mine: true,
        status: r.permanent ? 'failed' : 'sending', attempt: 0, error: r.permanent ? r.error : null,
        permanent: !!r.permanent, file: { ...r.file },
        upload: { ...r.upload, blob: r.blob, thumbBlob: r.thumb, sent: 0, state: 'queued' },
      };
      if (!m.upload.done && !r.blob) {
        Object.assign(m, { status: 'failed', permanent: true, error: 'the file is no longer on this device' });
      }
      if (isImage(m.file) && (r.thumb || r.blob)) this.#preview(m);
      c.msgs.set(m.cid, m);
      if (m.status === 'sending' && this.im.ready()) this.im.transmit(m);
    }
    this.im.emit();
  }

  // ---- the uploads ----

  async #run() {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length && this.im.ready()) {
        const m = this.queue[0];
        if (m.status !== 'sending' || m.seq || m.upload.done) {
          this.queue.shift();
          continue;
        }
        try {
          await this.#upload(m);
        } catch (e) {
          m.upload.state = 'queued';
          if (e instanceof Interrupted) break; // the next open starts it again
          this.queue.shift();
          if (m.status === 'cancelled') continue;
          const permanent = PERMANENT.has(e.code) || e.code === 'unreadable';
          Object.assign(m, { status: 'failed', code: e.code, error: this.#why(e), permanent });
          if (permanent) this.keep(m);
          this.im.emit();
          continue;
        }
        this.queue.shift();
        this.im.emit();
        if (m.status === 'sending' && this.im.ready()) this.im.transmit(m); // the message itself
      }
    } finally {
      this.running = false;
    }
    if (this.queue.length && this.im.ready()) this.#run();
  }

  #why(e) {
    if (e.code === 'too_large' && e.max > 0) {
      // The server's limit: later files over it are refused before they go.
      this.maxUpload = e.max;
      this.limitKnown = true;
    }
    if (e.code === 'too_large')
      return `the file is too large for this server${this.limitKnown ? ` (at most ${humanSize(this.maxUpload)})` : e.message ? ` (${e.message})` : ''}`;
    if (e.code === 'bad_type') return e.message || 'this server does not take files';
    if (e.code === 'no_answer') return 'no answer from the server';
    return e.message || e.code;
  }

  async #upload(m) {
    const u = m.upload;
    u.state = 'uploading';
    this.im.emit();
    if (u.thumbBlob && !u.thumbId) {
      const f = await this.#put(m, 'thumb');
      u.thumbId = f.id;
      await this.#save(m);
    }
    if (!u.fileId) {
      const f = await this.#put(m, 'file');
      u.fileId = f.id;
      if (f.type) m.file.type = f.type;
      if (f.size >= 0) m.file.size = f.size;
    }
    m.file = { ...m.file, id: u.fileId, ...(u.thumbId ? { thumb: u.thumbId } : {}) };
    u.done = true;
    u.state = 'done';
    u.sent = u.size + (u.thumbBlob ? u.thumbSize : 0);
    await this.#save(m);
  }

  async #save(m) {
    if (m.status === 'cancelled') return;
    try {
      await this.store?.put(record(m));
    } catch {
      // page memory only
    }
  }

  // One blob of `m` (its thumbnail or the file itself) up to the server:
  // resolves with the server's file {id, name, size, type}.
  async #put(m, which) {
    const u = m.upload;
    const thumb = which === 'thumb';
    const blob = thumb ? u.thumbBlob : u.blob;
    const tokenKey = thumb ? 'thumbToken' : 'token';
    const shaKey = thumb ? 'thumbSha' : 'sha';
    const base = thumb ? 0 : u.thumbBlob ? u.thumbSize : 0;
    if (!u[shaKey]) {
      try {
        u[shaKey] = await sha256Hex(blob);
      } catch {
        throw new UploadError('unreadable', 'the file can no longer be read');
      }
    }
    for (let tries = 0; ; tries++) {
      const req = { v: 1, type: 'upload', name: thumb ? cleanName(`thumb-${u.name}`) : u.name, size: blob.size };
      if (u[shaKey]) req.sha256 = u[shaKey];
      if (u[tokenKey]) req.upload = u[tokenKey];
      const r = await this.#ask(req);
      if (m.status === 'cancelled') throw new UploadError('cancelled', 'cancelled');
      if (r.type === 'uploaded') return r.file;
      if (r.type === 'error') {
        // A token the server no longer knows (expired, another server):
        // start again without it.
        if (u[tokenKey] && tries === 0 && r.code !== 'too_large' && r.code !== 'rate_limited') {
          u[tokenKey] = null;
          continue;
        }
        if (r.code === 'rate_limited' && tries < 20) {
          await sleep(r.retry_after);
          continue;
        }
        throw new UploadError(r.code, r.message, { max: r.max });
      }
      if (r.type !== 'upload' || typeof r.upload !== 'string') throw new UploadError('internal', 'unexpected answer to upload');
      if (u[tokenKey] !== r.upload) {
        u[tokenKey] = r.upload;
        await this.#save(m);
      }
      return this.#send(m, blob, base, r, req.name, tokenKey);
    }
  }

  async #ask(req) {
    if (!this.im.ready()) throw new Interrupted('disconnected');
    const { signal } = this.link;
    // The drop of the connection ends the wait, whatever the socket does
    // with a request in flight.
    const dropped = new Promise((_, reject) =>
      signal.addEventListener('abort', () => reject(new Interrupted('disconnected')), { once: true }));
    dropped.catch(() => {}); // when the request settled first
    try {
      return await Promise.race([this.im.sock.request(req, { timeout: REQUEST_TIMEOUT, signal }), dropped]);
    } catch (e) {
      if (signal.aborted || !this.im.ready() || e instanceof Interrupted || e?.name === 'AbortError' || e?.name === 'InvalidStateError')
        throw new Interrupted('disconnected');
      throw new UploadError('no_answer', 'no answer from the server');
    }
  }

  // The chunks of `blob` from the server's offset, WINDOW at a time.
  #send(m, blob, base, r, name, tokenKey) {
    return new Promise((resolve, reject) => {
      const t = {
        m, blob, base, name, tokenKey, token: r.upload, tok: hexBytes(r.upload), size: blob.size,
        chunk: Math.max(1024, r.chunk | 0 || 262144), acked: r.offset | 0, next: r.offset | 0,
        gen: 0, busy: false, resyncing: false, done: false,
      };
      // No word from the server for STALL ms while connected: failed for
      // now (the person may resend; a reconnection resumes it anyway).
      t.last = Date.now();
      const watch = setInterval(() => {
        if (Date.now() - t.last > STALL) t.reject(new UploadError('no_answer', 'no answer from the server'));
      }, 2000);
      if (watch && watch.unref) watch.unref();
      const end = () => {
        t.done = true;
        clearInterval(watch);
        if (this.active === t) this.active = null;
      };
      t.resolve = (f) => { end(); resolve(f); };
      t.reject = (e) => { end(); reject(e); };
      this.active = t;
      this.#moved(t);
      if (t.acked >= t.size) return; // all there: `uploaded` follows
      this.#pump(t);
    });
  }

  #moved(t) {
    t.last = Date.now();
    t.m.upload.sent = t.base + t.acked;
    this.im.emit();
  }

  // Sends chunks while fewer than WINDOW are unanswered, in offset order.
  async #pump(t) {
    if (t.busy || t.done) return;
    t.busy = true;
    const gen = t.gen;
    try {
      while (!t.done && !t.resyncing && t.gen === gen && t.next < t.size && t.next - t.acked < WINDOW * t.chunk) {
        const off = t.next;
        const end = Math.min(t.size, off + t.chunk);
        let data;
        try {
          data = new Uint8Array(await t.blob.slice(off, end).arrayBuffer());
        } catch {
          t.reject(new UploadError('unreadable', 'the file can no longer be read'));
          return;
        }
        if (t.done || t.resyncing || t.gen !== gen) return;
        if (!this.im.online()) {
          t.reject(new Interrupted('disconnected'));
          return;
        }
        const frame = new Uint8Array(24 + data.length);
        frame.set(t.tok, 0);
        new DataView(frame.buffer).setBigUint64(16, BigInt(off), false);
        frame.set(data, 24);
        this.im.sock.send(frame.buffer);
        t.next = end;
      }
    } finally {
      t.busy = false;
    }
    // Replies may have come while a chunk was read.
    if (!t.done && !t.resyncing && t.gen === gen && t.next < t.size && t.next - t.acked < WINDOW * t.chunk) this.#pump(t);
  }

  // The server is elsewhere than we thought (bad_offset) or wants us to
  // slow down: ask it where the file is (`upload` with the token; the
  // chunks still in flight are answered before that reply), go on there.
  async #resync(t, delay = 0) {
    if (t.resyncing || t.done) return;
    t.resyncing = true;
    t.gen++;
    try {
      if (delay) await sleep(delay);
      const r = await this.#ask({ v: 1, type: 'upload', name: t.name, size: t.size, upload: t.token });
      if (t.done) return;
      if (r.type === 'uploaded') { t.resolve(r.file); return; }
      if (r.type !== 'upload') { t.reject(new UploadError(r.code || 'internal', r.message, { max: r.max })); return; }
      if (r.upload !== t.token) {
        // A fresh upload (the server had lost the old one): its token is
        // the one to keep.
        t.token = r.upload;
        t.tok = hexBytes(r.upload);
        t.m.upload[t.tokenKey] = r.upload;
        this.#save(t.m);
      }
      t.acked = t.next = r.offset | 0;
      t.resyncing = false;
      this.#moved(t);
      this.#pump(t);
    } catch (e) {
      t.reject(e);
    }
  }
}

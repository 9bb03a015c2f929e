// HttpSocket: a WebSocket over plain HTTP requests, for networks whose
// proxies refuse or swallow the WebSocket upgrade. It speaks duplex's HTTP
// session transport (docs/fallback.md): the server runs an ordinary
// WebSocket connection whose bytes travel in HTTP bodies, so this file is a
// WebSocket client's frame layer (masking, fragmentation, control frames,
// the closing handshake) on top of two byte streams:
//
// - down: server frames, read from a Server-Sent Events stream (base64
//   `data:` lines) or from long polls (raw bytes), always resumed from the
//   last byte we parsed (`ack`), so a broken request loses nothing;
// - up: masked client frames, POSTed with their offset (`seq`), one request
//   at a time; the server ignores bytes it already has, so a retry after a
//   network error is never delivered twice.
//
// The surface is the browser's WebSocket (readyState, send, close, events),
// so DuplexSocket can use it wherever it would use a WebSocket.

// The browser's readyState values (duplex.js uses these too).
export const CONNECTING = 0;
export const OPEN = 1;
export const CLOSING = 2;
export const CLOSED = 3;

const OP_CONT = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

const MAX_BODY = 1 << 20; // the spec's cap on one up POST
const ACK_BYTES = 64 * 1024; // ack at once when this much arrived unacknowledged
const ACK_DELAY = 1000; // else within this many ms
const STREAM_HEADERS_TIMEOUT = 3000; // a stream whose headers take longer is buffered: poll
const STREAM_SILENCE = 20000; // the server sends a comment after 15 s of silence

const utf8 = new TextEncoder();

export function domError(message, name) {
  if (typeof DOMException === 'function') return new DOMException(message, name);
  const e = new Error(message);
  e.name = name;
  return e;
}

function concat(a, b) {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function randomMask() {
  const m = new Uint8Array(4);
  globalThis.crypto.getRandomValues(m);
  return m;
}

// ---- the frame codec (RFC 6455 section 5) --------------------------------

/**
 * One client frame: FIN + opcode, the payload masked with `mask` (4 random
 * bytes; a server must refuse unmasked client frames). Lengths over 125 use
 * the 16-bit form, over 65535 the 64-bit form.
 */
export function encodeFrame(opcode, payload, { fin = true, mask = randomMask() } = {}) {
  const n = payload.length;
  const head = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const out = new Uint8Array(head + 4 + n);
  out[0] = (fin ? 0x80 : 0) | opcode;
  if (n < 126) {
    out[1] = 0x80 | n;
  } else if (n < 65536) {
    out[1] = 0x80 | 126;
    out[2] = n >>> 8;
    out[3] = n & 0xff;
  } else {
    out[1] = 0x80 | 127;
    // 2^53 is far beyond anything a browser holds: the high word fits a double.
    const hi = Math.floor(n / 2 ** 32);
    new DataView(out.buffer).setUint32(2, hi);
    new DataView(out.buffer).setUint32(6, n >>> 0);
  }
  out.set(mask, head);
  for (let i = 0; i < n; i++) out[head + 4 + i] = payload[i] ^ mask[i & 3];
  return out;
}

/** The payload of a close frame: the code (big-endian) and the UTF-8 reason. */
export function closePayload(code, reason = '') {
  if (code === undefined || code === 1005) return new Uint8Array(0);
  const r = utf8.encode(reason);
  const out = new Uint8Array(2 + r.length);
  out[0] = code >>> 8;
  out[1] = code & 0xff;
  out.set(r, 2);
  return out;
}

// A close code a peer may put in a frame (RFC 6455 7.4).
function validCloseCode(c) {
  return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

/**
 * Reads server frames from a byte stream delivered in arbitrary pieces and
 * turns them into messages. push(bytes) returns a list of events:
 *   {type: 'text', data: string} | {type: 'binary', data: Uint8Array}
 *   {type: 'ping'|'pong', data: Uint8Array}
 *   {type: 'close', code, reason}
 *   {type: 'error', code, reason}   (the connection must fail with `code`)
 * After an error nothing more is parsed.
 */
export class FrameParser {
  #buf = new Uint8Array(0);
  #parts = []; // fragments of the message being assembled
  #partsOp = 0; // its opcode, 0 when none
  #partsLen = 0;
  #failed = false;
  #maxMessage;

  constructor({ maxMessage = Infinity } = {}) {
    this.#maxMessage = maxMessage;
  }

  push(bytes) {
    const out = [];
    if (this.#failed) return out;
    this.#buf = concat(this.#buf, bytes);
    for (;;) {
      const f = this.#frame();
      if (!f) break;
      const ev = f.error ? f : this.#onFrame(f);
      if (ev) out.push(ev);
      if (ev && ev.type === 'error') {
        this.#failed = true;
        break;
      }
    }
    return out;
  }

  // The next whole frame from the buffer, or null when it is incomplete.
  #frame() {
    const b = this.#buf;
    if (b.length < 2) return null;
    const fin = (b[0] & 0x80) !== 0;
    const rsv = b[0] & 0x70;
    const opcode = b[0] & 0x0f;
    const masked = (b[1] & 0x80) !== 0;
    let len = b[1] & 0x7f;
    let off = 2;
    if (len === 126) {
      if (b.length < 4) return null;
      len = (b[2] << 8) | b[3];
      off = 4;
    } else if (len === 127) {
      if (b.length < 10) return null;
      const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
      len = dv.getUint32(2) * 2 ** 32 + dv.getUint32(6);
      off = 10;
    }
    // No extension is negotiated on a session and a server never masks.
    if (rsv || masked) return { error: true, type: 'error', code: 1002, reason: rsv ? 'reserved bits set' : 'masked server frame' };
    if (opcode >= 0x8 && (len > 125 || !fin)) return { error: true, type: 'error', code: 1002, reason: 'bad control frame' };
    if (len > this.#maxMessage) return { error: true, type: 'error', code: 1009, reason: 'message too big' };
    if (b.length < off + len) return null;
    const payload = b.slice(off, off + len);
    this.#buf = b.subarray(off + len);
    return { fin, opcode, payload };
  }

  #onFrame({ fin, opcode, payload }) {
    switch (opcode) {
      case OP_PING: return { type: 'ping', data: payload };
      case OP_PONG: return { type: 'pong', data: payload };
      case OP_CLOSE: return this.#onClose(payload);
      case OP_TEXT:
      case OP_BINARY:
        if (this.#partsOp) return { type: 'error', code: 1002, reason: 'new message inside a fragmented one' };
        this.#partsOp = opcode;
        this.#parts = [];
        this.#partsLen = 0;
        return this.#addPart(payload, fin);
      case OP_CONT:
        if (!this.#partsOp) return { type: 'error', code: 1002, reason: 'continuation without a message' };
        return this.#addPart(payload, fin);
      default:
        return { type: 'error', code: 1002, reason: `unknown opcode ${opcode}` };
    }
  }

  #addPart(payload, fin) {
    this.#partsLen += payload.length;
    if (this.#partsLen > this.#maxMessage) return { type: 'error', code: 1009, reason: 'message too big' };
    this.#parts.push(payload);
    if (!fin) return null;
    const op = this.#partsOp;
    let all = this.#parts.length === 1 ? this.#parts[0] : new Uint8Array(this.#partsLen);
    if (this.#parts.length > 1) {
      let at = 0;
      for (const p of this.#parts) { all.set(p, at); at += p.length; }
    }
    this.#parts = [];
    this.#partsOp = 0;
    this.#partsLen = 0;
    if (op === OP_BINARY) return { type: 'binary', data: all };
    const text = decodeUtf8(all);
    if (text === null) return { type: 'error', code: 1007, reason: 'invalid UTF-8 in a text message' };
    return { type: 'text', data: text };
  }

  #onClose(payload) {
    if (payload.length === 0) return { type: 'close', code: 1005, reason: '' };
    if (payload.length === 1) return { type: 'error', code: 1002, reason: 'close frame of one byte' };
    const code = (payload[0] << 8) | payload[1];
    if (!validCloseCode(code)) return { type: 'error', code: 1002, reason: `invalid close code ${code}` };
    const reason = decodeUtf8(payload.subarray(2));
    if (reason === null) return { type: 'error', code: 1007, reason: 'invalid UTF-8 in a close reason' };
    return { type: 'close', code, reason };
  }
}

// Strict UTF-8 (a WebSocket must fail on bad text, not show U+FFFD).
function decodeUtf8(bytes) {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

function base64ToBytes(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * Splits a Server-Sent Events body, fed as text in arbitrary pieces, into
 * the payloads of its `data:` lines (base64 decoded). Comment lines (`:`)
 * and other fields are skipped.
 */
export class SseReader {
  #rest = '';
  push(text) {
    this.#rest += text;
    const out = [];
    let nl;
    while ((nl = this.#rest.indexOf('\n')) >= 0) {
      let line = this.#rest.slice(0, nl);
      this.#rest = this.#rest.slice(nl + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line.startsWith('data:')) {
        const v = line.slice(5).trim();
        if (v) out.push(base64ToBytes(v));
      }
    }
    return out;
  }
}

// ---- events shaped like the browser's ------------------------------------

// An Event carrying extra read-only fields (code, reason, attempt, ...);
// DuplexSocket's close events carry willReconnect, which CloseEvent has not.
export function makeEvent(type, fields) {
  if (type === 'message' && typeof MessageEvent === 'function') return new MessageEvent('message', fields);
  if (type === 'close' && typeof CloseEvent === 'function') {
    const ev = new CloseEvent('close', fields);
    if (fields && 'willReconnect' in fields) {
      Object.defineProperty(ev, 'willReconnect', { value: fields.willReconnect, enumerable: true });
    }
    return ev;
  }
  const ev = new Event(type);
  for (const k in fields) Object.defineProperty(ev, k, { value: fields[k], enumerable: true });
  return ev;
}

function httpUrl(url) {
  const base = typeof location !== 'undefined' ? location.href : undefined;
  const u = new URL(url, base);
  if (u.protocol === 'ws:') u.protocol = 'http:';
  else if (u.protocol === 'wss:') u.protocol = 'https:';
  else if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw domError(`The URL's scheme must be either 'ws' or 'wss'. '${u.protocol}' is not allowed.`, 'SyntaxError');
  }
  u.hash = '';
  return u;
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

// ---- the socket ------------------------------------------------------------

export class HttpSocket extends EventTarget {
  static CONNECTING = CONNECTING;
  static OPEN = OPEN;
  static CLOSING = CLOSING;
  static CLOSED = CLOSED;

  #url;
  #http; // URL of the open request
  #sid = '';
  #protocol = '';
  #state = CONNECTING;
  #binaryType = 'blob';
  #fetch;
  #mode; // 'stream' | 'poll' | 'auto'
  #closeTimeout;
  #idle = 30000; // the server's: how long a session lives without a request
  #life = new AbortController(); // aborted when the socket is finished: every request and wait stops

  // down
  #parser = new FrameParser();
  #received = 0; // down bytes received and parsed: what the next request acks
  #acked = 0; // the ack the server has confirmed receiving
  #ackTimer = null;
  #downCtl = null; // the down request in progress
  #streamMisses = 0; // consecutive stream requests that delivered nothing

  // up
  #up = []; // frames not yet confirmed: {bytes, start, payload}
  #upConfirmed = 0; // the server's next expected up offset
  #upEnd = 0; // offset after the last queued frame
  #posting = false;
  #ackWanted = false; // a pure ack is due (nothing else would carry it soon)
  #buffered = 0; // payload bytes of messages not yet confirmed
  #chain = null; // pending Blob reads: later sends wait behind them

  // closing
  #closeSent = false;
  #closeRecv = null; // {code, reason} of the server's close frame
  #closeTimer = null;
  #finished = false;

  #handlers = {};

  /**
   * @param {string|URL} url ws:, wss: (or http:, https:) URL
   * @param {string|string[]} [protocols]
   * @param {object} [options] mode: 'auto' (default) | 'stream' | 'poll';
   *   fetch: the fetch function; closeTimeout: ms to wait for the server's
   *   close frame after close() (default 5000)
   */
  constructor(url, protocols, options = {}) {
    super();
    this.#http = httpUrl(String(url));
    this.#url = String(url);
    this.#fetch = options.fetch || globalThis.fetch.bind(globalThis);
    this.#mode = options.mode || 'auto';
    this.#closeTimeout = options.closeTimeout ?? 5000;
    const list = protocols === undefined ? [] : Array.isArray(protocols) ? protocols : [protocols];
    this.#open(list.map(String));
  }

  get url() { return this.#url; }
  get readyState() { return this.#state; }
  get protocol() { return this.#protocol; }
  get extensions() { return ''; }
  get binaryType() { return this.#binaryType; }
  set binaryType(t) { if (t === 'blob' || t === 'arraybuffer') this.#binaryType = t; }
  /** Payload bytes handed to send() that the server has not confirmed yet. */
  get bufferedAmount() { return this.#buffered; }
  /** 'stream' or 'poll': how the down bytes currently arrive. */
  get mode() { return this.#mode === 'auto' ? 'stream' : this.#mode; }

  send(data) {
    if (this.#state === CONNECTING) throw domError("Failed to execute 'send' on 'WebSocket': Still in CONNECTING state.", 'InvalidStateError');
    if (typeof Blob !== 'undefined' && data instanceof Blob) {
      // Read asynchronously; everything sent after waits behind it, in order.
      this.#buffered += data.size;
      this.#later(() => data.arrayBuffer().then((ab) => {
        this.#buffered -= data.size;
        this.#queueMessage(OP_BINARY, new Uint8Array(ab));
      }, () => { this.#buffered -= data.size; }));
      return;
    }
    let op;
    let bytes;
    if (typeof data === 'string') {
      op = OP_TEXT;
      bytes = utf8.encode(data);
    } else if (data instanceof ArrayBuffer || (typeof SharedArrayBuffer !== 'undefined' && data instanceof SharedArrayBuffer)) {
      op = OP_BINARY;
      bytes = new Uint8Array(data.slice(0));
    } else if (ArrayBuffer.isView(data)) {
      op = OP_BINARY;
      bytes = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    } else {
      op = OP_TEXT;
      bytes = utf8.encode(String(data));
    }
    if (this.#chain) {
      this.#buffered += bytes.length;
      this.#later(() => { this.#buffered -= bytes.length; this.#queueMessage(op, bytes); });
      return;
    }
    this.#queueMessage(op, bytes);
  }

  // Runs `step` after the Blob reads (and what waits behind them) are done.
  #later(step) {
    const p = (this.#chain || Promise.resolve()).then(step);
    this.#chain = p;
    p.then(() => { if (this.#chain === p) this.#chain = null; });
  }

  close(code, reason) {
    if (code !== undefined && code !== 1000 && !(code >= 3000 && code <= 4999)) {
      throw domError(`The close code must be either 1000, or between 3000 and 4999. ${code} is neither.`, 'InvalidAccessError');
    }
    if (reason !== undefined && utf8.encode(String(reason)).length > 123) {
      throw domError('The close reason must not be greater than 123 UTF-8 bytes.', 'SyntaxError');
    }
    if (this.#state >= CLOSING) return;
    if (this.#state === CONNECTING) {
      // As a browser: closing before the handshake fails the connection.
      this.#fail(1006, '', 'WebSocket is closed before the connection is established.');
      return;
    }
    this.#state = CLOSING;
    // What was sent before close() goes first, Blobs included.
    if (this.#chain) this.#later(() => this.#sendClose(code, reason ?? ''));
    else this.#sendClose(code, reason ?? '');
    this.#armCloseTimer();
  }

  // ---- open ---------------------------------------------------------------

  async #open(protocols) {
    const headers = { 'X-Duplex-Session': '1' };
    if (protocols.length) headers['X-Duplex-Protocol'] = protocols.join(', ');
    let info;
    try {
      const res = await this.#fetch(this.#http.href, {
        method: 'POST', headers, cache: 'no-store', credentials: 'same-origin', signal: this.#life.signal,
      });
      if (res.status !== 200) {
        res.body?.cancel?.().catch(() => {});
        throw new Error(`session refused: HTTP ${res.status}`);
      }
      info = await res.json();
      if (!info || !/^[0-9a-f]{32}$/.test(info.sid)) throw new Error('bad session answer');
      if (info.protocol && !protocols.includes(info.protocol)) throw new Error('server chose a protocol not offered');
    } catch (e) {
      if (!this.#finished) this.#fail(1006, '', String(e && e.message));
      return;
    }
    if (this.#finished) return;
    this.#sid = info.sid;
    this.#protocol = info.protocol || '';
    if (info.idle > 0) this.#idle = info.idle;
    this.#state = OPEN;
    if (typeof addEventListener === 'function' && typeof navigator !== 'undefined' && navigator.sendBeacon) {
      addEventListener('pagehide', this.#onPageHide, { signal: this.#life.signal });
    }
    this.#dispatch('open', {});
    this.#downLoop();
    this.#pump(); // anything sent from the open handler
  }

  #sessionUrl(kind, params) {
    const u = new URL(`/.duplex/${this.#sid}/${kind}`, this.#http);
    u.search = new URLSearchParams(params).toString();
    return u.href;
  }

  // ---- down -----------------------------------------------------------------

  // One down request after another until the socket is finished. A failed
  // request is retried (with a growing pause) for as long as the session can
  // still be alive on the server: `idle` ms since the requests began to fail.
  async #downLoop() {
    let failingSince = null;
    let pause = 250;
    const life = this.#life.signal;
    while (!life.aborted && !this.#closeRecv) {
      const mode = this.mode;
      let outcome;
      try {
        outcome = mode === 'stream' ? await this.#stream() : await this.#poll();
      } catch (e) {
        outcome = { error: e };
      }
      if (life.aborted || this.#closeRecv) return;
      if (outcome.gone) {
        this.#fail(1006, '', outcome.gone);
        return;
      }
      if (!outcome.error) {
        failingSince = null;
        pause = 250;
      }
      if (mode === 'stream' && this.#mode === 'auto') {
        this.#streamMisses = outcome.bytes > 0 ? 0 : this.#streamMisses + 1;
        if (outcome.buffered || this.#streamMisses >= 2) this.#mode = 'poll'; // a proxy holds the stream
      }
      if (outcome.error) {
        failingSince ??= Date.now();
        if (Date.now() - failingSince > this.#idle) {
          this.#fail(1006, '', 'session lost');
          return;
        }
        await sleep(pause, life);
        pause = Math.min(pause * 2, 4000);
      } else if (mode === 'stream' && outcome.bytes === 0) {
        await sleep(250, life); // a stream cut at once: do not spin
      }
    }
  }

  // Checks a down answer: {gone} for the errors that end the session,
  // {error} for a proxy's 5xx (retried like a network error). A stream
  // starts at its ack; a poll at its ack or later, when the answer to a
  // POST carried the bytes between (#feedAt).
  #checkDown(res, ack, poll) {
    if (res.status === 404) return { gone: 'session expired' };
    if (res.status >= 500) {
      res.body?.cancel?.().catch(() => {});
      return { bytes: 0, error: new Error(`down: HTTP ${res.status}`) };
    }
    if (res.status !== 200) return { gone: `down: HTTP ${res.status}` };
    const off = Number(res.headers.get('X-Duplex-Offset') ?? ack);
    if (poll ? !(off >= ack) : off !== ack) return { gone: `down: offset ${off}, expected ${ack}` };
    this.#acked = Math.max(this.#acked, ack);
    return null;
  }

  async #stream() {
    const ack = this.#received;
    const ctl = new AbortController();
    this.#downCtl = ctl;
    const stop = () => ctl.abort();
    this.#life.signal.addEventListener('abort', stop, { once: true });
    let bytes = 0;
    // Headers that take this long, or a body silent past the server's
    // keep-alive comments, mean a proxy buffers the stream.
    let buffered = false;
    const watch = (ms) => (this.#mode === 'auto' ? setTimeout(() => { buffered = true; ctl.abort(); }, ms) : null);
    let watchdog = watch(STREAM_HEADERS_TIMEOUT);
    try {
      const res = await this.#fetch(this.#sessionUrl('down', { ack, mode: 'stream' }), {
        cache: 'no-store', credentials: 'same-origin', signal: ctl.signal,
      });
      clearTimeout(watchdog);
      const bad = this.#checkDown(res, ack, false);
      if (bad) return bad;
      const reader = res.body.getReader();
      const text = new TextDecoder();
      const sse = new SseReader();
      for (;;) {
        watchdog = watch(STREAM_SILENCE);
        const { done, value } = await reader.read();
        clearTimeout(watchdog);
        if (done) break;
        bytes += value.length;
        for (const chunk of sse.push(text.decode(value, { stream: true }))) {
          if (!this.#feed(chunk)) return { bytes };
        }
      }
      return { bytes };
    } catch (e) {
      if (buffered) return { bytes, buffered: true };
      if (ctl.signal.aborted) return { bytes }; // replaced or finished
      return { bytes, error: e };
    } finally {
      clearTimeout(watchdog);
      this.#life.signal.removeEventListener('abort', stop);
      if (this.#downCtl === ctl) this.#downCtl = null;
    }
  }

  async #poll() {
    const ack = this.#received;
    const ctl = new AbortController();
    this.#downCtl = ctl;
    const stop = () => ctl.abort();
    this.#life.signal.addEventListener('abort', stop, { once: true });
    try {
      const res = await this.#fetch(this.#sessionUrl('down', { ack, mode: 'poll' }), {
        cache: 'no-store', credentials: 'same-origin', signal: ctl.signal,
      });
      const bad = this.#checkDown(res, ack, true);
      if (bad) return bad;
      const body = new Uint8Array(await res.arrayBuffer());
      this.#feedAt(Number(res.headers.get('X-Duplex-Offset') ?? ack), body);
      return { bytes: body.length };
    } catch (e) {
      if (ctl.signal.aborted) return { bytes: 0 };
      return { bytes: 0, error: e };
    } finally {
      this.#life.signal.removeEventListener('abort', stop);
      if (this.#downCtl === ctl) this.#downCtl = null;
    }
  }

  // Down bytes that start at offset `off`, from a poll or from the answer
  // to a POST in poll mode: the two can cross, so what was parsed already
  // is skipped, and bytes from past it (the answer that holds the bytes
  // between is still on its way, or was lost) are dropped, and the poll
  // is restarted: its ack makes the server send them all again.
  #feedAt(off, bytes) {
    if (off > this.#received) {
      if (this.#downCtl) this.#downCtl.abort();
      return;
    }
    const skip = this.#received - off;
    if (skip < bytes.length) this.#feed(skip ? bytes.subarray(skip) : bytes);
  }

  // Parses down bytes and acts on each frame; false once the socket is
  // finishing (nothing after a close frame or an error matters).
  #feed(bytes) {
    this.#received += bytes.length;
    for (const ev of this.#parser.push(bytes)) {
      if (this.#finished) return false;
      switch (ev.type) {
        case 'text':
          if (this.#state === OPEN || this.#state === CLOSING) this.#dispatch('message', { data: ev.data, origin: this.#http.origin });
          break;
        case 'binary':
          if (this.#state === OPEN || this.#state === CLOSING) {
            const data = this.#binaryType === 'arraybuffer' ? ev.data.buffer.slice(ev.data.byteOffset, ev.data.byteOffset + ev.data.byteLength) : new Blob([ev.data]);
            this.#dispatch('message', { data, origin: this.#http.origin });
          }
          break;
        case 'ping':
          if (!this.#closeSent) this.#queueFrame(OP_PONG, ev.data, 0);
          break;
        case 'pong':
          break;
        case 'close':
          this.#onServerClose(ev.code, ev.reason);
          return false;
        case 'error':
          this.#fail(ev.code, ev.reason, ev.reason, true);
          return false;
      }
    }
    this.#scheduleAck();
    return true;
  }

  // Acks ride on every down request and up POST; this sends a pure ack when
  // neither would come soon: much unacknowledged, or some for a second. (In
  // poll mode the next poll acks what a poll brought; what a POST's answer
  // brought waits for the next POST, or this.)
  #scheduleAck(carried = false) {
    const owed = this.#received - this.#acked;
    if (owed <= 0 || (this.mode === 'poll' && !carried)) return;
    if (owed >= ACK_BYTES) {
      clearTimeout(this.#ackTimer);
      this.#ackTimer = null;
      this.#ackWanted = true;
      this.#pump();
      return;
    }
    if (this.#ackTimer === null) {
      this.#ackTimer = setTimeout(() => { this.#ackTimer = null; this.#ackWanted = true; this.#pump(); }, ACK_DELAY);
    }
  }

  // ---- up -------------------------------------------------------------------

  #queueMessage(op, bytes) {
    if (this.#closeSent || this.#finished) {
      // As a browser after close(): the data is discarded.
      return;
    }
    this.#queueFrame(op, bytes, bytes.length);
  }

  #queueFrame(op, payload, counted) {
    const bytes = encodeFrame(op, payload);
    this.#up.push({ bytes, start: this.#upEnd, counted });
    this.#upEnd += bytes.length;
    this.#buffered += counted;
    this.#pump();
  }

  // One up POST at a time: everything from the server's next expected
  // offset on (at most 1 MiB), with the current ack. Loops until nothing is
  // left to send or acknowledge.
  async #pump() {
    if (this.#posting || this.#finished || !this.#sid) return;
    this.#posting = true;
    let pause = 250;
    let lastOk = Date.now();
    let staleAcks = 0;
    try {
      while (!this.#finished) {
        const body = this.#upSlice();
        const ack = this.#received;
        const seqSent = this.#upConfirmed;
        if (body.length === 0 && !(this.#ackWanted && ack > this.#acked)) break;
        let res;
        try {
          // No Content-Type and no custom header: a "simple" request, which
          // a page of another origin sends without a preflight each time.
          // In poll mode the answer may carry down bytes (docs/fallback.md).
          const params = this.mode === 'poll' ? { seq: seqSent, ack, mode: 'poll' } : { seq: seqSent, ack };
          res = await this.#fetch(this.#sessionUrl('up', params), {
            method: 'POST', body, cache: 'no-store', credentials: 'same-origin', signal: this.#life.signal,
          });
        } catch (e) {
          if (this.#finished) return;
          // The request may or may not have arrived: send the same seq again.
          if (Date.now() - lastOk > this.#idle) { this.#fail(1006, '', 'session lost'); return; }
          await sleep(pause, this.#life.signal);
          pause = Math.min(pause * 2, 4000);
          continue;
        }
        if (res.status >= 500) {
          // A proxy's error: the POST may not have reached the server.
          res.body?.cancel?.().catch(() => {});
          if (Date.now() - lastOk > this.#idle) { this.#fail(1006, '', `up: HTTP ${res.status}`); return; }
          await sleep(pause, this.#life.signal);
          pause = Math.min(pause * 2, 4000);
          continue;
        }
        const carry = res.status === 200 && res.headers.has('X-Duplex-Offset');
        let carried = null; // stays null when the body was cut
        if (carry) {
          try {
            carried = new Uint8Array(await res.arrayBuffer());
          } catch (e) {
            if (this.#finished) return;
          }
        }
        lastOk = Date.now();
        pause = 250;
        if (res.status !== 204 && !carry) res.body?.cancel?.().catch(() => {});
        if (res.status === 204 || carry) {
          const seq = Number(res.headers.get('X-Duplex-Seq'));
          if (Number.isFinite(seq)) this.#confirmUp(seq);
          this.#acked = Math.max(this.#acked, ack);
          if (this.#acked >= this.#received) this.#ackWanted = false;
          staleAcks = 0;
          if (carried) {
            this.#feedAt(Number(res.headers.get('X-Duplex-Offset')), carried);
            if (this.#finished) return;
            this.#scheduleAck(true);
          } else if (carry && this.#downCtl) {
            // The body was cut (the POST itself arrived: the server
            // answered), so the bytes it held are lost: a new poll, whose
            // ack has them sent again.
            this.#downCtl.abort();
          }
          continue;
        }
        if (res.status === 409 && !res.headers.has('X-Duplex-Seq') && staleAcks++ < 3) {
          // Our ack was below one a down request (sent later, arrived
          // first) already carried: send again with the current one.
          continue;
        }
        if (res.status === 409) {
          // A gap: the server expects less than we sent from. Resend from
          // its offset, which must be one we still hold.
          const seq = Number(res.headers.get('X-Duplex-Seq'));
          if (!Number.isFinite(seq) || seq >= seqSent || seq < this.#upConfirmed) {
            this.#fail(1006, '', `up: HTTP 409 at seq ${seqSent} (server has ${seq})`);
            return;
          }
          this.#upConfirmed = seq;
          continue;
        }
        this.#fail(1006, '', res.status === 404 ? 'session expired' : `up: HTTP ${res.status}`);
        return;
      }
    } finally {
      this.#posting = false;
    }
    this.#afterUp();
  }

  // The up bytes from the server's next expected offset, at most 1 MiB.
  #upSlice() {
    const parts = [];
    let n = 0;
    for (const f of this.#up) {
      if (n >= MAX_BODY) break;
      const from = Math.max(0, this.#upConfirmed - f.start);
      if (from >= f.bytes.length) continue;
      const piece = f.bytes.subarray(from, from + (MAX_BODY - n));
      parts.push(piece);
      n += piece.length;
    }
    const out = new Uint8Array(n);
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }

  // The server has every up byte before `seq`: forget those frames.
  #confirmUp(seq) {
    if (seq > this.#upEnd) return; // nonsense: keep everything
    this.#upConfirmed = seq;
    while (this.#up.length && this.#up[0].start + this.#up[0].bytes.length <= seq) {
      this.#buffered -= this.#up.shift().counted;
    }
  }

  // After the up queue drained: a close handshake may be complete.
  #afterUp() {
    if (this.#closeRecv && this.#up.length === 0 && !this.#posting) {
      this.#finish(this.#closeRecv.code, this.#closeRecv.reason, true);
    }
  }

  // ---- closing ----------------------------------------------------------------

  #sendClose(code, reason) {
    if (this.#closeSent) return;
    this.#closeSent = true;
    this.#queueFrame(OP_CLOSE, closePayload(code, reason), 0);
  }

  #armCloseTimer() {
    if (this.#closeTimer !== null) return;
    this.#closeTimer = setTimeout(() => {
      this.#closeTimer = null;
      this.#finish(1006, '', false);
    }, this.#closeTimeout);
  }

  // The server's close frame: answer it (unless we started the handshake),
  // and report the close once our answer and the ack of its frame are sent.
  #onServerClose(code, reason) {
    this.#closeRecv = { code, reason };
    if (this.#downCtl) this.#downCtl.abort();
    if (this.#state === OPEN) this.#state = CLOSING;
    // Our close frame answers with the same code; 1005 has no payload.
    this.#sendClose(code === 1005 ? undefined : code, code === 1005 ? '' : reason);
    this.#armCloseTimer();
    this.#ackWanted = true; // the ack of the close frame lets the server drop the session
    this.#pump();
    this.#afterUp();
  }

  // Fails the connection, as a browser does: an error event, then close.
  // For protocol errors (`tellServer`) a close frame with the code goes first.
  #fail(code, reason, why, tellServer = false) {
    if (this.#finished) return;
    if (tellServer && this.#sid && !this.#closeSent) {
      this.#closeSent = true;
      const frame = encodeFrame(OP_CLOSE, closePayload(code, reason));
      // Best effort: the session's remaining unsent bytes are abandoned.
      const body = concat(this.#upSlice(), frame);
      this.#fetch(this.#sessionUrl('up', { seq: this.#upConfirmed, ack: this.#received }), {
        method: 'POST', body, cache: 'no-store', credentials: 'same-origin',
      }).catch(() => {});
    }
    this.#dispatch('error', { message: why });
    this.#finish(code, tellServer ? reason : '', false);
  }

  // The page goes away: a browser's WebSocket would send close 1001 and
  // the server would know at once. A beacon (which outlives the page)
  // carries what is unsent and that close frame, so the session does not
  // linger until its idle timeout.
  #onPageHide = () => {
    if (this.#finished || this.#closeSent || !this.#sid) return;
    this.#closeSent = true;
    const body = concat(this.#upSlice(), encodeFrame(OP_CLOSE, closePayload(1001)));
    try {
      navigator.sendBeacon(this.#sessionUrl('up', { seq: this.#upConfirmed, ack: this.#received }), body);
    } catch { /* the session expires on the server instead */ }
    this.#finish(1006, '', false);
  };

  #finish(code, reason, wasClean) {
    if (this.#finished) return;
    this.#finished = true;
    this.#state = CLOSED;
    clearTimeout(this.#closeTimer);
    clearTimeout(this.#ackTimer);
    this.#closeTimer = this.#ackTimer = null;
    this.#life.abort();
    this.#dispatch('close', { code, reason, wasClean });
  }

  #dispatch(type, fields) {
    const ev = makeEvent(type, fields);
    const h = this.#handlers[type];
    // on* handlers run after addEventListener ones here (simpler than a
    // browser's ordering, which nobody relies on for a transport).
    this.dispatchEvent(ev);
    if (typeof h === 'function') h.call(this, ev);
  }

  static {
    for (const type of ['open', 'message', 'close', 'error']) {
      Object.defineProperty(this.prototype, `on${type}`, {
        configurable: true,
        enumerable: true,
        get() { return this.#handlers[type] ?? null; },
        set(fn) { this.#handlers[type] = typeof fn === 'function' ? fn : null; },
      });
    }
    for (const [k, v] of Object.entries({ CONNECTING, OPEN, CLOSING, CLOSED })) {
      Object.defineProperty(this.prototype, k, { value: v, enumerable: true });
    }
  }
}

export default HttpSocket;

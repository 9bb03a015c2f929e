// duplex browser client: a drop-in WebSocket with heartbeat, reconnect,
// failover, an offline queue and request/response, and a fallback to HTTP
// (http_socket.js) where a proxy blocks WebSocket. No dependencies.
//
// The notes' clients break in known ways, and this file exists to not do so:
// - a handler of a socket that is no longer current must never act (the
//   notes reconnect from both onerror and onclose, opening two sockets), so
//   every handler checks that its socket is still `this.#ws`;
// - one reconnect timer at a time (the "lock"), and a manual close() clears
//   it and every other timer and listener at once, so nothing reconnects or
//   fires after it;
// - Chrome does not fire close when the network silently goes away, so an
//   application ping ("ping" → "pong") with a deadline detects a dead peer;
// - the heartbeat timer belongs to one connection and dies with it (the
//   notes leak one setInterval per reconnect).
//
// Transports: an attempt tries WebSocket first. When its handshake fails, or
// it opens but nothing arrives within `fallbackTimeout` (a proxy that fakes
// the 101 and forwards nothing), the same attempt goes on over HttpSocket at
// once. While on HTTP a plain WebSocket probes now and then; when one works,
// the HTTP session is closed cleanly and the next connection is WebSocket.

import {
  CLOSED, CLOSING, CONNECTING, domError, HttpSocket, makeEvent, OPEN,
} from './http_socket.js';

// Close codes after which a retry would get the same answer: protocol or
// data errors, policy violation (e.g. a failed Origin or auth check), and
// the 4401/4403 that applications use for "unauthorized/forbidden".
const FINAL_CODES = [1002, 1003, 1007, 1008, 1009, 1010, 4401, 4403];

const DEFAULTS = {
  heartbeat: { interval: 20000, timeout: 10000, ping: 'ping', pong: 'pong' },
  reconnect: {
    base: 500, factor: 2, cap: 30000, maxAttempts: Infinity, resetAfter: 5000,
    finalCodes: FINAL_CODES,
  },
  queue: { maxMessages: 1000, maxBytes: 1 << 20, overflow: 'throw' },
  connectTimeout: 10000,
  requestTimeout: 10000,
  fallbackTimeout: 5000,
  upgradeProbe: 30000,
  upgradeProbeMax: 300000, // the probe interval doubles up to this
};
const PROBE_SETTLE = 2000; // with fallbackTimeout 0: a probe open this long works
// After a WebSocket that failed to open, the first probe comes this soon: a
// server restarting refuses connections just as a proxy refuses upgrades,
// and a page that reconnected over HTTP then need not stay there for
// upgradeProbe (30 s) when WebSocket works again.
const PROBE_SOON = 1000;
const TRANSPORTS = ['websocket', 'http'];

function merge(defaults, given) {
  if (given === false) return false;
  if (given === undefined || given === true) return { ...defaults };
  return { ...defaults, ...given };
}

// Bytes a message takes on the wire, without encoding it (TextEncoder would
// allocate a copy of every queued string).
function byteLength(data) {
  if (typeof data === 'string') {
    let n = 0;
    for (let i = 0; i < data.length; i++) {
      const c = data.charCodeAt(i);
      if (c < 0x80) n += 1;
      else if (c < 0x800) n += 2;
      else if (c >= 0xd800 && c <= 0xdbff && i + 1 < data.length) {
        const d = data.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) { n += 4; i++; } else n += 3;
      } else n += 3;
    }
    return n;
  }
  if (data == null) return 0;
  if (typeof data.byteLength === 'number') return data.byteLength; // ArrayBuffer, views
  if (typeof data.size === 'number') return data.size; // Blob
  return byteLength(String(data));
}

const HANDLER_TYPES = ['open', 'message', 'close', 'error', 'connecting', 'reconnecting', 'drop', 'transport'];

export class DuplexSocket extends EventTarget {
  static CONNECTING = CONNECTING;
  static OPEN = OPEN;
  static CLOSING = CLOSING;
  static CLOSED = CLOSED;

  #urls;
  #urlIndex = 0;
  #protocols;
  #opt;
  #WS;
  #HS; // the HttpSocket class
  #transports; // the transports allowed, in the order an attempt tries them
  #win;
  #doc;

  #ws = null; // the current underlying WebSocket, or null
  #wasOpen = false; // the current socket reached OPEN
  #state = CONNECTING;
  #stopped = false; // close() was called: nothing may reconnect
  #started = false;
  #binaryType = 'blob';

  #attempt = 0; // consecutive failed attempts since the last stable open
  #retryTimer = null; // the one pending reconnect (the lock)
  #waitOnline = false; // offline: the next attempt waits for 'online'
  #connectTimer = null;
  #stableTimer = null;

  #pingTimer = null;
  #deadTimer = null;
  #pongsDue = 0;

  #queue = []; // {data, bytes}
  #queueBytes = 0;

  #seq = 0;
  #pending = new Map(); // id → {resolve, reject, timer, cleanup}

  #handlers = new Map();
  #listening = false;

  #transport = null; // the transport of #ws
  #preferred; // the transport a new round of attempts starts with
  #tried = new Set(); // transports tried in this round (one round per backoff)
  #lastOpen = null; // the transport of the last connection that opened
  #confirmed = true; // the current WebSocket delivered a message (or needs not)
  #unconfirmed = []; // messages sent on it before that: resent if it was a black hole
  #fallbackTimer = null;
  #probe = null; // a WebSocket trying whether the network lets it through again
  #probeTimer = null;
  #probeDelay = 0;
  #probeSoon = false; // this round's WebSocket failed to open: probe early (PROBE_SOON)
  #probeEarly = false; // the scheduled (or running) probe is that early one
  #upgrading = false; // closing the HTTP session to move back to WebSocket

  /**
   * @param {string|URL|Array<string|URL>} url one URL, or several tried in turn
   * @param {string|string[]} [protocols]
   * @param {object} [options] see README.md
   */
  constructor(url, protocols, options) {
    super();
    if (options === undefined && protocols && typeof protocols === 'object' && !Array.isArray(protocols)) {
      options = protocols;
      protocols = undefined;
    }
    options = options || {};
    const list = Array.isArray(url) ? url : [url];
    if (list.length === 0) throw domError('no URL given', 'SyntaxError');
    this.#urls = list.map((u) => String(u));
    this.#protocols = protocols;
    this.#WS = options.WebSocket || globalThis.WebSocket;
    this.#HS = options.HttpSocket || HttpSocket;
    // A WebSocket class of its own (a test's fake, Node's ws) means the
    // application chose its transport: HTTP only when asked for, or when an
    // HttpSocket class comes with it.
    const transports = options.transports ??
      (options.WebSocket && !options.HttpSocket ? ['websocket'] : TRANSPORTS);
    this.#transports = TRANSPORTS.filter((t) => transports.includes(t));
    if (this.#transports.length === 0) throw new TypeError(`transports: none of ${TRANSPORTS.join(', ')}`);
    if (this.#transports.includes('websocket') && typeof this.#WS !== 'function') {
      throw new TypeError('no WebSocket implementation');
    }
    this.#preferred = this.#transports[0];
    this.#win = options.window !== undefined ? options.window
      : (typeof window !== 'undefined' ? window : null);
    this.#doc = options.document !== undefined ? options.document
      : (typeof document !== 'undefined' ? document : null);
    this.#opt = {
      heartbeat: merge(DEFAULTS.heartbeat, options.heartbeat),
      reconnect: merge(DEFAULTS.reconnect, options.reconnect),
      queue: merge(DEFAULTS.queue, options.queue),
      connectTimeout: options.connectTimeout ?? DEFAULTS.connectTimeout,
      requestTimeout: options.requestTimeout ?? DEFAULTS.requestTimeout,
      random: options.random || Math.random,
      idKey: options.idKey || 'id',
      encodeRequest: options.encodeRequest || null,
      matchReply: options.matchReply || null,
      // Silence proves a black hole only where something must come: the
      // heartbeat's first ping asks for a pong. Without a heartbeat a quiet
      // server is not suspect unless the application says so.
      fallbackTimeout: options.fallbackTimeout ?? (options.heartbeat === false ? 0 : DEFAULTS.fallbackTimeout),
      upgradeProbe: options.upgradeProbe ?? DEFAULTS.upgradeProbe,
      upgradeProbeMax: options.upgradeProbeMax ?? DEFAULTS.upgradeProbeMax,
      http: options.http || {},
    };
    this.#probeDelay = this.#opt.upgradeProbe;
    if (options.binaryType) this.#binaryType = options.binaryType;
    if (options.startClosed) {
      this.#state = CLOSED;
    } else {
      this.#start();
    }
  }

  // ---- the WebSocket surface -------------------------------------------

  get url() { return this.#urls[this.#urlIndex]; }
  get urls() { return this.#urls.slice(); }
  get readyState() { return this.#state; }
  get protocol() { return this.#ws && this.#wasOpen ? this.#ws.protocol || '' : ''; }
  get extensions() { return this.#ws && this.#wasOpen ? this.#ws.extensions || '' : ''; }
  get binaryType() { return this.#binaryType; }
  set binaryType(t) {
    if (t !== 'blob' && t !== 'arraybuffer') return; // as browsers: ignore bad values
    this.#binaryType = t;
    if (this.#ws) this.#ws.binaryType = t;
  }
  /** Bytes handed to the socket but not yet sent, plus the offline queue. */
  get bufferedAmount() {
    const live = this.#ws && this.#state === OPEN ? this.#ws.bufferedAmount || 0 : 0;
    return live + this.#queueBytes;
  }
  /** Messages waiting in the offline queue. */
  get queuedMessages() { return this.#queue.length; }
  /** Consecutive failed attempts since the last stable connection. */
  get attempt() { return this.#attempt; }
  /** 'websocket' or 'http': how the current connection (or attempt) travels; null between attempts. */
  get transport() { return this.#ws ? this.#transport : null; }

  /**
   * Sends now when OPEN; otherwise (connecting, reconnecting, offline, or
   * not yet open()ed with `startClosed`) puts the message in the offline
   * queue, flushed in order on the next open. Returns true when sent or
   * queued, false when discarded (after close(), or by the 'drop-newest'
   * overflow policy). With overflow 'throw' (the
   * default) a full queue throws a QuotaExceededError and keeps the message out.
   */
  send(data) {
    if (this.#stopped) return false;
    if (this.#state === OPEN && this.#flush()) {
      try {
        this.#ws.send(data);
        if (!this.#confirmed) this.#unconfirmed.push(data);
        return true;
      } catch {
        // The socket died between its close and our hearing of it: queue.
      }
    }
    return this.#enqueue(data);
  }

  /**
   * Closes for good: no reconnect, every timer and listener released now.
   * Queued messages are discarded and pending requests rejected.
   */
  close(code, reason) {
    if (code !== undefined && code !== 1000 && !(code >= 3000 && code <= 4999)) {
      throw domError(`close code ${code} is not 1000 or 3000-4999`, 'InvalidAccessError');
    }
    if (reason !== undefined && byteLength(String(reason)) > 123) {
      throw domError('close reason longer than 123 bytes', 'SyntaxError');
    }
    if (this.#stopped || (this.#state === CLOSED && !this.#started)) {
      this.#stopped = true;
      this.#teardown(domError('socket closed', 'AbortError'));
      return;
    }
    this.#stopped = true;
    this.#teardown(domError('socket closed', 'AbortError'));
    const ws = this.#ws;
    if (ws && ws.readyState === OPEN) {
      // A clean closing handshake: the close event comes from the socket.
      this.#state = CLOSING;
      this.#stopHeartbeat();
      try {
        ws.close(code, reason);
      } catch {
        this.#detach();
        this.#finalClose(code ?? 1005, reason ?? '', false);
      }
      return;
    }
    // Connecting or waiting to reconnect: nothing to hand-shake with. A
    // native socket still connecting must be aborted, or it would open
    // later with nobody listening and stay open (a leaked connection).
    this.#detach();
    if (ws && ws.readyState === CONNECTING) {
      try { ws.close(); } catch { /* already failing */ }
    }
    this.#finalClose(code ?? 1005, reason ?? '', true, true);
  }

  // ---- extensions -------------------------------------------------------

  /** Starts connecting after `startClosed` or close(); no-op when already active. */
  open() {
    if (!this.#stopped && this.#started) return;
    if (this.#ws) this.#detach(); // a closing handshake we no longer wait for
    this.#stopped = false;
    this.#attempt = 0;
    this.#start();
  }

  /** Drops the current connection (if any) and connects again now. */
  reconnect() {
    if (this.#stopped || !this.#started) { this.open(); return; }
    this.#clearRetry();
    if (this.#ws) this.#drop(4000, 'reconnect', false);
    this.#attempt = 0;
    this.#connect();
  }

  /**
   * Sends `data` with a fresh id and resolves with the first message that
   * carries the same id (that message is not dispatched as 'message').
   * Default encoding: data must be a plain object, sent as JSON with
   * `id` added; a reply is a JSON object with the same `id`.
   * Rejects with a TimeoutError after `timeout` ms, an AbortError on
   * close() or `signal`, or the send error (e.g. the queue is full).
   */
  request(data, { timeout = this.#opt.requestTimeout, signal } = {}) {
    const id = ++this.#seq;
    let text;
    try {
      text = this.#opt.encodeRequest ? this.#opt.encodeRequest(id, data) : this.#encode(id, data);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => {
      if (signal && signal.aborted) { reject(signal.reason ?? domError('aborted', 'AbortError')); return; }
      const entry = { resolve, reject, timer: null, cleanup: null };
      const settle = () => {
        this.#pending.delete(id);
        clearTimeout(entry.timer);
        if (entry.cleanup) entry.cleanup();
      };
      entry.resolve = (v) => { settle(); resolve(v); };
      entry.reject = (e) => { settle(); reject(e); };
      if (timeout > 0 && timeout !== Infinity) {
        entry.timer = setTimeout(() => entry.reject(domError(`request ${id} timed out after ${timeout} ms`, 'TimeoutError')), timeout);
      }
      if (signal) {
        const onAbort = () => entry.reject(signal.reason ?? domError('aborted', 'AbortError'));
        signal.addEventListener('abort', onAbort, { once: true });
        entry.cleanup = () => signal.removeEventListener('abort', onAbort);
      }
      this.#pending.set(id, entry);
      try {
        if (!this.send(text)) entry.reject(domError('socket closed', 'InvalidStateError'));
      } catch (e) {
        entry.reject(e);
      }
    });
  }

  /** Requests waiting for their reply. */
  get pendingRequests() { return this.#pending.size; }

  // ---- internals --------------------------------------------------------

  #encode(id, data) {
    if (data === null || typeof data !== 'object' || Array.isArray(data)) {
      throw new TypeError('request(data): data must be a plain object (or pass encodeRequest)');
    }
    return JSON.stringify({ ...data, [this.#opt.idKey]: id });
  }

  #start() {
    this.#started = true;
    this.#state = CONNECTING;
    this.#listen(true);
    this.#connect();
  }

  // Starts an attempt over `transport`; without one, a new round that
  // starts with the preferred transport.
  #connect(transport) {
    this.#clearRetry();
    if (this.#stopped) return;
    if (this.#ws) this.#detach();
    if (transport === undefined) {
      this.#tried.clear();
      this.#probeSoon = false;
      transport = this.#preferred;
    }
    if (this.#isOffline()) {
      this.#waitOnline = true;
      this.#emit('reconnecting', { attempt: this.#attempt, delay: null, url: this.url, reason: 'offline' });
      return;
    }
    this.#waitOnline = false;
    this.#state = CONNECTING;
    const url = this.url;
    this.#tried.add(transport);
    this.#emit('connecting', { attempt: this.#attempt, url, transport });
    if (this.#stopped) return; // a listener closed us
    let ws;
    try {
      if (transport === 'http') {
        ws = new this.#HS(url, this.#protocols, this.#opt.http);
      } else {
        ws = this.#protocols === undefined ? new this.#WS(url) : new this.#WS(url, this.#protocols);
      }
    } catch (e) {
      // A bad URL throws synchronously in browsers: report and try the next one.
      this.#emit('error', { error: e, message: String(e && e.message) });
      if (!this.#stopped) this.#afterClose(1006, String(e && e.message), false);
      return;
    }
    this.#ws = ws;
    this.#transport = transport;
    this.#wasOpen = false;
    this.#confirmed = true;
    this.#unconfirmed = [];
    try { ws.binaryType = this.#binaryType; } catch { /* some fakes */ }
    ws.onopen = () => { if (ws === this.#ws) this.#onOpen(); };
    ws.onmessage = (e) => { if (ws === this.#ws) this.#onMessage(e); };
    ws.onerror = () => { if (ws === this.#ws) this.#emit('error', {}); };
    ws.onclose = (e) => { if (ws === this.#ws) this.#onClose(e); };
    if (this.#opt.connectTimeout > 0) {
      this.#connectTimer = setTimeout(() => {
        this.#connectTimer = null;
        if (ws === this.#ws && this.#state === CONNECTING) this.#drop(1006, 'connect timeout', true);
      }, this.#opt.connectTimeout);
    }
  }

  #onOpen() {
    clearTimeout(this.#connectTimer);
    this.#connectTimer = null;
    this.#state = OPEN;
    this.#wasOpen = true;
    // A WebSocket that may be a proxy's fake 101 is on probation until a
    // message arrives; what is sent meanwhile is kept to be resent over HTTP.
    const probation = this.#transport === 'websocket' && this.#canFallBack();
    this.#confirmed = !probation;
    // Flush first: whatever the application queued was sent before anything
    // its open handler sends now.
    this.#flush();
    const rc = this.#opt.reconnect;
    if (rc && rc.resetAfter >= 0) {
      this.#stableTimer = setTimeout(() => { this.#stableTimer = null; this.#attempt = 0; }, rc.resetAfter);
    }
    this.#startHeartbeat();
    if (probation) {
      const ws = this.#ws;
      this.#fallbackTimer = setTimeout(() => {
        this.#fallbackTimer = null;
        if (ws === this.#ws) this.#fallBack();
      }, this.#opt.fallbackTimeout);
      this.#ping(); // a heartbeat's pong proves the path at once
    } else {
      this.#onConfirmed();
    }
    if (this.#transport !== this.#lastOpen) {
      const previous = this.#lastOpen;
      this.#lastOpen = this.#transport;
      this.#emit('transport', { transport: this.#transport, previous });
    }
    if (this.#ws && this.#state === OPEN) this.#emit('open', {});
  }

  // Another transport remains to try after a WebSocket that proves silent.
  #canFallBack() {
    return this.#opt.fallbackTimeout > 0 && this.#transports.some((t) => !this.#tried.has(t));
  }

  // The current connection carries messages both ways.
  #onConfirmed() {
    this.#confirmed = true;
    this.#unconfirmed = [];
    clearTimeout(this.#fallbackTimer);
    this.#fallbackTimer = null;
    this.#preferred = this.#transport;
    if (this.#transport === 'http') this.#scheduleProbe();
    else this.#probeDelay = this.#opt.upgradeProbe;
  }

  // The WebSocket opened but nothing came through: a proxy answered the
  // upgrade and forwards nothing. What was sent on it goes back to the
  // front of the queue and the attempt goes on over the next transport.
  #fallBack(why = 'no message (fallback)') {
    this.#probeSoon = false; // WebSocket reached the server: a proxy, not a restart
    const lost = this.#unconfirmed;
    const ws = this.#ws;
    this.#detach();
    try { ws.close(4000, 'fallback'); } catch { /* closed */ }
    const back = lost.map((data) => ({ data, bytes: byteLength(data) }));
    this.#queue.unshift(...back);
    for (const b of back) this.#queueBytes += b.bytes;
    this.#state = CONNECTING;
    this.#emit('close', { code: 1006, reason: why, wasClean: false, willReconnect: true });
    if (this.#stopped) return;
    this.#switchTransport();
  }

  // The next untried transport of this round, now: a switch is not a retry.
  #switchTransport() {
    const next = this.#transports.find((t) => !this.#tried.has(t));
    this.#wasOpen = false;
    this.#emit('reconnecting', { attempt: this.#attempt, delay: 0, url: this.url, reason: 'fallback', transport: next });
    if (this.#stopped || this.#retryTimer !== null || this.#ws) return;
    this.#connect(next);
  }

  #onMessage(e) {
    const data = e.data;
    if (!this.#confirmed) this.#onConfirmed();
    const hb = this.#opt.heartbeat;
    if (hb) {
      // Any message proves the peer alive.
      clearTimeout(this.#deadTimer);
      this.#deadTimer = null;
      if (this.#pongsDue > 0 && data === hb.pong) {
        this.#pongsDue--;
        return;
      }
    }
    if (this.#pending.size && typeof data === 'string') {
      const reply = this.#reply(data);
      const entry = reply && this.#pending.get(reply.id);
      if (entry) {
        entry.resolve(reply.value);
        return;
      }
    }
    this.#emit('message', { data, origin: e.origin ?? '', lastEventId: e.lastEventId ?? '' });
  }

  // {id, value} when `data` may answer a request, else null. Only text
  // starting with '{' is parsed, and only while requests are pending.
  #reply(data) {
    if (this.#opt.matchReply) {
      const id = this.#opt.matchReply(data);
      return id === undefined || id === null ? null : { id, value: data };
    }
    if (data.charCodeAt(0) !== 0x7b) return null;
    try {
      const v = JSON.parse(data);
      return v && typeof v === 'object' ? { id: v[this.#opt.idKey], value: v } : null;
    } catch {
      return null;
    }
  }

  #onClose(e) {
    const code = e && e.code !== undefined ? e.code : 1006;
    const reason = (e && e.reason) || '';
    const wasClean = !!(e && e.wasClean);
    const upgrading = this.#upgrading;
    if (this.#fallbackTimer !== null && !wasClean && !this.#stopped) {
      // Dropped before a message came through: as good as a failed
      // handshake (a proxy that hangs up on what it black-holed).
      this.#fallBack(`websocket closed before a message (${code})`);
      return;
    }
    this.#detach();
    if (this.#stopped) {
      this.#finalClose(code, reason, wasClean);
      return;
    }
    if (upgrading) {
      // The HTTP session closed for the move to WebSocket: connect now.
      this.#state = CONNECTING;
      this.#emit('close', { code, reason, wasClean, willReconnect: true });
      if (!this.#stopped) this.#connect();
      return;
    }
    this.#afterClose(code, reason, wasClean);
  }

  // Closes the current connection on our side (dead peer, offline, timeout)
  // and reports it as an abnormal close; reconnects unless `retry` is false.
  #drop(code, reason, retry) {
    const ws = this.#ws;
    this.#detach();
    if (ws) {
      // Start the closing handshake in case the peer is alive after all; we
      // no longer listen to this socket either way.
      try { ws.close(code >= 3000 ? code : 4000, reason); } catch { /* closed */ }
    }
    if (retry === false) {
      this.#state = CONNECTING;
      this.#emit('close', { code: 1006, reason, wasClean: false, willReconnect: true });
      return;
    }
    this.#afterClose(1006, reason, false);
  }

  // A connection (or an attempt) ended; decide whether to try again.
  #afterClose(code, reason, wasClean) {
    const rc = this.#opt.reconnect;
    let again = !!rc && !this.#stopped;
    if (again && rc.finalCodes && rc.finalCodes.includes(code)) again = false;
    if (again && this.#attempt >= rc.maxAttempts) again = false;
    if (!again) {
      this.#stopped = true;
      this.#teardown(domError(`connection closed (${code})`, 'NetworkError'));
      this.#finalClose(code, reason, wasClean);
      return;
    }
    this.#state = CONNECTING;
    this.#emit('close', { code, reason, wasClean, willReconnect: true });
    if (this.#stopped) return; // a close listener called close()
    // A transport that failed to open: the next one of this round, now.
    if (!this.#wasOpen && this.#transports.some((t) => !this.#tried.has(t))) {
      this.#probeSoon = this.#tried.has('websocket');
      this.#switchTransport();
      return;
    }
    // Failover: after a failed attempt, the next URL; after a connection
    // that was up, the same URL first.
    if (!this.#wasOpen) this.#urlIndex = (this.#urlIndex + 1) % this.#urls.length;
    this.#wasOpen = false;
    this.#schedule();
  }

  #schedule() {
    if (this.#retryTimer !== null || this.#ws) return; // the lock
    this.#attempt++;
    const rc = this.#opt.reconnect;
    if (this.#isOffline()) {
      this.#waitOnline = true;
      this.#emit('reconnecting', { attempt: this.#attempt, delay: null, url: this.url, reason: 'offline' });
      return;
    }
    const ceiling = Math.min(rc.cap, rc.base * Math.pow(rc.factor, this.#attempt - 1));
    const delay = Math.floor(this.#opt.random() * ceiling); // full jitter
    this.#emit('reconnecting', { attempt: this.#attempt, delay, url: this.url, reason: 'backoff' });
    if (this.#stopped || this.#retryTimer !== null || this.#ws) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      if (!this.#stopped) this.#connect();
    }, delay);
  }

  #clearRetry() {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
  }

  #finalClose(code, reason, wasClean, async) {
    this.#state = CLOSED;
    this.#listen(false);
    const fire = () => this.#emit('close', { code, reason, wasClean, willReconnect: false });
    if (async) Promise.resolve().then(fire);
    else fire();
  }

  // Forget the current socket: its handlers are cut so a late event from it
  // can never act, and its per-connection timers die with it.
  #detach() {
    const ws = this.#ws;
    this.#ws = null;
    clearTimeout(this.#connectTimer);
    this.#connectTimer = null;
    clearTimeout(this.#stableTimer);
    this.#stableTimer = null;
    clearTimeout(this.#fallbackTimer);
    this.#fallbackTimer = null;
    this.#unconfirmed = [];
    this.#confirmed = true;
    this.#upgrading = false;
    this.#stopHeartbeat();
    this.#stopProbe();
    if (ws) {
      ws.onopen = ws.onmessage = ws.onerror = null;
      ws.onclose = null;
    }
  }

  // Everything but the current socket's closing handshake: timers, window
  // listeners, the queue, pending requests.
  #teardown(err) {
    this.#clearRetry();
    this.#waitOnline = false;
    clearTimeout(this.#connectTimer);
    this.#connectTimer = null;
    clearTimeout(this.#stableTimer);
    this.#stableTimer = null;
    this.#stopHeartbeat();
    this.#stopProbe();
    clearTimeout(this.#fallbackTimer);
    this.#fallbackTimer = null;
    this.#listen(false);
    this.#queue = [];
    this.#queueBytes = 0;
    for (const entry of [...this.#pending.values()]) entry.reject(err);
  }

  // Hands the offline queue to the open socket, in order; true when it is
  // empty afterwards (a send that throws leaves the rest for the next open).
  #flush() {
    const ws = this.#ws;
    while (this.#queue.length) {
      const item = this.#queue[0];
      try { ws.send(item.data); } catch { return false; }
      if (!this.#confirmed) this.#unconfirmed.push(item.data);
      this.#queue.shift();
      this.#queueBytes -= item.bytes;
    }
    return true;
  }

  #enqueue(data) {
    const q = this.#opt.queue;
    if (!q) throw domError('not open (the offline queue is disabled)', 'InvalidStateError');
    const bytes = byteLength(data);
    const fits = () => this.#queue.length < q.maxMessages && this.#queueBytes + bytes <= q.maxBytes;
    if (!fits()) {
      if (q.overflow === 'drop-oldest' && bytes <= q.maxBytes && q.maxMessages > 0) {
        while (!fits()) {
          const old = this.#queue.shift();
          this.#queueBytes -= old.bytes;
          this.#emit('drop', { data: old.data, reason: 'queue full' });
        }
      } else if (q.overflow === 'drop-newest') {
        this.#emit('drop', { data, reason: 'queue full' });
        return false;
      } else {
        throw domError(`offline queue full (${this.#queue.length} messages, ${this.#queueBytes} bytes)`, 'QuotaExceededError');
      }
    }
    this.#queue.push({ data, bytes });
    this.#queueBytes += bytes;
    return true;
  }

  // ---- back to WebSocket ---------------------------------------------------

  #scheduleProbe() {
    if (!this.#transports.includes('websocket') || !(this.#opt.upgradeProbe > 0) || this.#probeTimer !== null) return;
    this.#probeEarly = this.#probeSoon && PROBE_SOON < this.#probeDelay;
    this.#probeSoon = false;
    const delay = this.#probeEarly ? PROBE_SOON : this.#probeDelay;
    this.#probeTimer = setTimeout(() => { this.#probeTimer = null; this.#startProbe(); }, delay);
  }

  // A plain WebSocket to the same URL, never seen by the application: it
  // works when it opens and a message comes (with fallbackTimeout 0: when it
  // stays open PROBE_SETTLE ms). The heartbeat's ping asks the server for one.
  #startProbe() {
    if (this.#stopped || this.#transport !== 'http' || this.#state !== OPEN) return;
    let p;
    try {
      p = this.#protocols === undefined ? new this.#WS(this.url) : new this.#WS(this.url, this.#protocols);
    } catch {
      this.#probeFailed();
      return;
    }
    this.#probe = p;
    const settle = this.#opt.fallbackTimeout > 0 ? this.#opt.fallbackTimeout : PROBE_SETTLE;
    let timer = null;
    const done = (ok) => {
      clearTimeout(timer);
      if (p !== this.#probe) return;
      if (ok) this.#probeWorked(); else this.#probeFailed();
    };
    timer = setTimeout(() => done(false), this.#opt.connectTimeout || 10000);
    p.onopen = () => {
      if (p !== this.#probe) return;
      clearTimeout(timer);
      timer = setTimeout(() => done(this.#opt.fallbackTimeout <= 0), settle);
      const hb = this.#opt.heartbeat;
      if (hb && this.#opt.fallbackTimeout > 0) { try { p.send(hb.ping); } catch { /* closed */ } }
    };
    p.onmessage = () => done(true);
    p.onerror = () => done(false);
    p.onclose = () => done(false);
    p.stopTimer = () => clearTimeout(timer);
  }

  #stopProbe() {
    clearTimeout(this.#probeTimer);
    this.#probeTimer = null;
    const p = this.#probe;
    this.#probe = null;
    if (p) {
      p.stopTimer?.();
      p.onopen = p.onmessage = p.onerror = p.onclose = null;
      try { p.close(1000); } catch { /* closed */ }
    }
  }

  #probeFailed() {
    this.#stopProbe();
    // The early probe does not count: the next one waits the usual delay.
    if (this.#probeEarly) this.#probeEarly = false;
    else this.#probeDelay = Math.min(this.#probeDelay * 2, Math.max(this.#opt.upgradeProbe, this.#opt.upgradeProbeMax));
    if (this.#transport === 'http' && this.#state === OPEN) this.#scheduleProbe();
  }

  // WebSocket gets through again: close the HTTP session cleanly (what the
  // application sends meanwhile waits in the queue) and reconnect.
  #probeWorked() {
    this.#stopProbe();
    this.#probeEarly = false;
    this.#probeDelay = this.#opt.upgradeProbe;
    this.#preferred = 'websocket';
    const hs = this.#ws;
    if (!hs || this.#transport !== 'http' || this.#state !== OPEN) return;
    this.#upgrading = true;
    this.#state = CONNECTING;
    this.#stopHeartbeat();
    try {
      hs.close(1000, 'upgrade');
    } catch {
      this.#upgrading = false;
      this.#drop(1006, 'upgrade', true);
    }
  }

  // ---- heartbeat --------------------------------------------------------

  #startHeartbeat() {
    const hb = this.#opt.heartbeat;
    if (!hb || !(hb.interval > 0)) return;
    this.#stopHeartbeat();
    const tick = () => {
      this.#pingTimer = setTimeout(tick, hb.interval);
      this.#ping();
    };
    this.#pingTimer = setTimeout(tick, hb.interval);
  }

  // Sends one ping and arms the deadline, unless one is already running.
  #ping() {
    const hb = this.#opt.heartbeat;
    const ws = this.#ws;
    if (!hb || !ws || this.#state !== OPEN || this.#deadTimer !== null) return;
    try { ws.send(hb.ping); } catch { /* the close event follows */ return; }
    this.#pongsDue++;
    this.#deadTimer = setTimeout(() => {
      this.#deadTimer = null;
      if (ws !== this.#ws) return;
      // The first ping of a WebSocket on probation went unanswered: fall back.
      if (this.#fallbackTimer !== null) this.#fallBack();
      else this.#drop(1006, 'heartbeat timeout', true);
    }, hb.timeout);
  }

  #stopHeartbeat() {
    clearTimeout(this.#pingTimer);
    clearTimeout(this.#deadTimer);
    this.#pingTimer = this.#deadTimer = null;
    this.#pongsDue = 0;
  }

  // ---- the page: online/offline and visibility ----------------------

  #isOffline() {
    const nav = this.#win && this.#win.navigator;
    return !!nav && nav.onLine === false;
  }

  #onOffline = () => {
    if (this.#stopped) return;
    // The browser knows the network is gone; the socket may not say so for
    // minutes. Drop it now and wait for 'online' instead of burning attempts.
    if (this.#ws) {
      const ws = this.#ws;
      this.#detach();
      try { ws.close(4000, 'offline'); } catch { /* closed */ }
      this.#state = CONNECTING;
      this.#emit('close', { code: 1006, reason: 'offline', wasClean: false, willReconnect: true });
      if (this.#stopped) return;
    }
    this.#clearRetry();
    this.#waitOnline = true;
    this.#emit('reconnecting', { attempt: this.#attempt, delay: null, url: this.url, reason: 'offline' });
  };

  #onOnline = () => {
    if (this.#stopped) return;
    if (this.#waitOnline || this.#retryTimer !== null) this.#connect();
  };

  #onVisibility = () => {
    if (this.#stopped || !this.#doc || this.#doc.visibilityState !== 'visible') return;
    // Background tabs throttle timers: on return, check the connection now
    // and cut a pending backoff short.
    if (this.#retryTimer !== null) this.#connect();
    else if (this.#state === OPEN) this.#ping();
  };

  #listen(on) {
    if (on === this.#listening) return;
    this.#listening = on;
    const m = on ? 'addEventListener' : 'removeEventListener';
    if (this.#win && typeof this.#win[m] === 'function') {
      this.#win[m]('online', this.#onOnline);
      this.#win[m]('offline', this.#onOffline);
    }
    if (this.#doc && typeof this.#doc[m] === 'function') {
      this.#doc[m]('visibilitychange', this.#onVisibility);
    }
  }

  #emit(type, fields) {
    this.dispatchEvent(makeEvent(type, fields));
  }

  // on* properties, as WebSocket: one handler per type, kept in the order
  // it was first set among the listeners.
  static {
    for (const type of HANDLER_TYPES) {
      Object.defineProperty(this.prototype, `on${type}`, {
        configurable: true,
        enumerable: true,
        get() { return this.#handlers.get(type)?.fn ?? null; },
        set(fn) {
          let h = this.#handlers.get(type);
          if (!h) {
            h = { fn: null, wrap: null };
            h.wrap = (e) => (typeof h.fn === 'function' ? h.fn.call(this, e) : undefined);
            this.#handlers.set(type, h);
            this.addEventListener(type, h.wrap);
          }
          h.fn = typeof fn === 'function' ? fn : null;
        },
      });
    }
    for (const [k, v] of Object.entries({ CONNECTING, OPEN, CLOSING, CLOSED })) {
      Object.defineProperty(this.prototype, k, { value: v, enumerable: true });
    }
  }
}

export { CONNECTING, OPEN, CLOSING, CLOSED, FINAL_CODES };
export default DuplexSocket;

// Test doubles for the browser: a WebSocket class that records every
// instance and lets the test drive its life (open, message, close), and a
// window/document pair whose online and visibility state the test sets.

export function fakeWebSocketClass() {
  const sockets = [];
  class FakeWebSocket {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSING = 2;
    static CLOSED = 3;
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.binaryType = 'blob';
      this.bufferedAmount = 0;
      this.protocol = '';
      this.extensions = '';
      this.sent = [];
      this.closeCalls = [];
      this.onopen = this.onmessage = this.onerror = this.onclose = null;
      sockets.push(this);
    }
    send(data) {
      if (this.readyState === 0) throw new Error('InvalidStateError: still CONNECTING');
      if (this.readyState !== 1) return;
      this.sent.push(data);
    }
    close(code, reason) {
      this.closeCalls.push([code, reason]);
      if (this.readyState < 2) this.readyState = 2;
    }
    // --- driven by the test ---
    open(protocol = '') {
      this.readyState = 1;
      this.protocol = protocol;
      this.onopen?.({ type: 'open' });
    }
    receive(data) {
      this.onmessage?.({ type: 'message', data, origin: 'ws://fake' });
    }
    fail() { // a connection that never opened: error, then close 1006
      this.readyState = 3;
      this.onerror?.({ type: 'error' });
      this.onclose?.({ type: 'close', code: 1006, reason: '', wasClean: false });
    }
    serverClose(code = 1000, reason = '', wasClean = true) {
      this.readyState = 3;
      this.onclose?.({ type: 'close', code, reason, wasClean });
    }
    get attached() { return this.onmessage !== null || this.onclose !== null; }
  }
  return { FakeWebSocket, sockets, last: () => sockets[sockets.length - 1] };
}

export function fakePage() {
  const win = new EventTarget();
  win.navigator = { onLine: true };
  const doc = new EventTarget();
  doc.visibilityState = 'visible';
  // EventTarget cannot count its listeners: wrap add/remove to do so.
  let listeners = 0;
  for (const t of [win, doc]) {
    const add = t.addEventListener.bind(t);
    const remove = t.removeEventListener.bind(t);
    const seen = new Set();
    t.addEventListener = (type, fn, o) => {
      if (!seen.has(fn)) { seen.add(fn); listeners++; }
      add(type, fn, o);
    };
    t.removeEventListener = (type, fn, o) => {
      if (seen.has(fn)) { seen.delete(fn); listeners--; }
      remove(type, fn, o);
    };
  }
  return {
    window: win,
    document: doc,
    goOffline() { win.navigator.onLine = false; win.dispatchEvent(new Event('offline')); },
    goOnline() { win.navigator.onLine = true; win.dispatchEvent(new Event('online')); },
    hide() { doc.visibilityState = 'hidden'; doc.dispatchEvent(new Event('visibilitychange')); },
    show() { doc.visibilityState = 'visible'; doc.dispatchEvent(new Event('visibilitychange')); },
    listenerCount: () => listeners,
  };
}

// Records the events a DuplexSocket dispatches, as compact strings.
export function record(sock) {
  const log = [];
  for (const type of ['connecting', 'open', 'message', 'close', 'error', 'reconnecting', 'drop']) {
    sock.addEventListener(type, (e) => {
      if (type === 'message') log.push(`message:${e.data}`);
      else if (type === 'close') log.push(`close:${e.code}:${e.reason}:${e.willReconnect ? 'retry' : 'final'}`);
      else if (type === 'reconnecting') log.push(`reconnecting:${e.attempt}:${e.delay}`);
      else log.push(type);
    });
  }
  return log;
}

// Unit tests of DuplexSocket's transports (web/client/duplex.js): when it
// falls back from WebSocket to the HTTP session transport, that the offline
// queue survives the switch (nothing lost or duplicated), and the probes
// that bring it back to WebSocket. Both transports are fakes (tests/js/fake.mjs).
import { test, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { DuplexSocket } from '../../web/client/duplex.js';
import { fakeWebSocketClass, fakePage, record } from './fake.mjs';

let W; // fake WebSockets
let H; // fake HttpSockets (the same surface)
let page;
let pending;
beforeEach(() => {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  pending = new Set();
  const st = globalThis.setTimeout;
  const ct = globalThis.clearTimeout;
  globalThis.setTimeout = (fn, ms, ...rest) => {
    const id = st((...x) => { pending.delete(id); fn(...x); }, ms, ...rest);
    pending.add(id);
    return id;
  };
  globalThis.clearTimeout = (id) => { pending.delete(id); ct(id); };
  W = fakeWebSocketClass();
  H = fakeWebSocketClass();
  page = fakePage();
});
afterEach(() => mock.timers.reset());

const tick = (ms) => mock.timers.tick(ms);
function make(opts = {}) {
  const s = new DuplexSocket('ws://a/x', undefined, {
    WebSocket: W.FakeWebSocket, HttpSocket: H.FakeWebSocket, window: page.window, document: page.document,
    heartbeat: false, random: () => 0.5, reconnect: { base: 1000 }, ...opts,
  });
  const log = record(s);
  s.addEventListener('transport', (e) => log.push(`transport:${e.transport}`));
  return { s, log };
}

test('transports default: websocket and http; websocket only with a custom WebSocket class alone', () => {
  const a = new DuplexSocket('ws://a/', { WebSocket: W.FakeWebSocket, window: null, document: null, heartbeat: false });
  W.last().fail();
  assert.equal(H.sockets.length, 0, 'no HttpSocket was given: no http fallback');
  a.close();
  assert.throws(() => new DuplexSocket('ws://a/', { WebSocket: W.FakeWebSocket, transports: ['smoke'] }), TypeError);
  const b = new DuplexSocket('ws://a/', { HttpSocket: H.FakeWebSocket, WebSocket: W.FakeWebSocket, transports: ['http'], window: null, document: null });
  assert.equal(W.sockets.length, 1, 'transports: [\'http\'] never makes a WebSocket');
  assert.equal(H.sockets.length, 1);
  assert.equal(b.transport, 'http');
  b.close();
});

test('a failed WebSocket handshake switches to http at once; the queue is sent there once', () => {
  const { s, log } = make();
  assert.equal(s.transport, 'websocket');
  s.send('q1');
  s.send('q2');
  W.last().fail();
  assert.equal(H.sockets.length, 1, 'http attempt without waiting for a backoff');
  assert.equal(H.last().url, 'ws://a/x');
  assert.equal(s.transport, 'http');
  assert.equal(s.attempt, 0, 'a switch is not a retry');
  H.last().open();
  assert.deepEqual(H.last().sent, ['q1', 'q2']);
  assert.equal(s.readyState, 1);
  s.send('q3');
  assert.deepEqual(H.last().sent, ['q1', 'q2', 'q3']);
  assert.deepEqual(log, ['error', 'close:1006::retry', 'reconnecting:0:0', 'connecting', 'transport:http', 'open']);
  s.close(1000, 'bye');
  assert.deepEqual(H.last().closeCalls, [[1000, 'bye']]);
  H.last().serverClose(1000, 'bye');
  assert.equal(s.readyState, 3);
  assert.equal(pending.size, 0, 'no timer left (no probe)');
});

test('a WebSocket that opens but stays silent for fallbackTimeout: what it took is resent over http', () => {
  const { s, log } = make({ fallbackTimeout: 1500 });
  s.send('before open');
  W.last().open();
  s.send('after open');
  assert.deepEqual(W.last().sent, ['before open', 'after open']);
  tick(1499);
  assert.equal(H.sockets.length, 0);
  tick(1);
  assert.deepEqual(W.sockets[0].closeCalls, [[4000, 'fallback']]);
  assert.equal(H.sockets.length, 1);
  s.send('while switching');
  assert.equal(s.queuedMessages, 3);
  H.last().open();
  assert.deepEqual(H.last().sent, ['before open', 'after open', 'while switching'], 'in order, once');
  assert.equal(s.transport, 'http');
  assert.deepEqual(log.filter((l) => l.startsWith('transport')), ['transport:websocket', 'transport:http']);
  assert.ok(log.includes('close:1006:no message (fallback):retry'));
  s.close();
});

test('a message confirms the WebSocket; the heartbeat pings at once to get one; fallbackTimeout 0 trusts open', () => {
  let { s } = make({ heartbeat: { interval: 20000, timeout: 10000 } });
  W.last().open();
  assert.deepEqual(W.last().sent, ['ping'], 'probation: a ping at open');
  W.last().receive('pong');
  s.send('x');
  tick(60000);
  assert.equal(H.sockets.length, 0, 'confirmed: no fallback');
  assert.equal(s.transport, 'websocket');
  s.close();

  ({ s } = make({ fallbackTimeout: 0 }));
  W.last().open();
  tick(3600e3);
  assert.equal(H.sockets.length, 0, 'fallbackTimeout 0: no fallback after open');
  s.close();
  ({ s } = make({ fallbackTimeout: 0 }));
  W.last().fail();
  assert.equal(H.sockets.length, 1, 'but a failed handshake still falls back');
  s.close();

  // No heartbeat and no fallbackTimeout given: nothing asks a quiet server
  // to speak, so its silence is trusted (a working socket is never torn down).
  ({ s } = make());
  const before = H.sockets.length;
  W.last().open();
  tick(3600e3);
  assert.equal(H.sockets.length, before, 'heartbeat off: no fallback after open by default');
  assert.equal(s.transport, 'websocket');
  s.close();
});

test('both transports fail: one backoff per round; the round starts with the transport that last worked', () => {
  const { s, log } = make();
  W.last().fail();
  H.last().fail();
  assert.equal(s.attempt, 1);
  assert.deepEqual(log.slice(-1), ['reconnecting:1:500']);
  tick(500);
  assert.equal(W.sockets.length, 2, 'the next round starts with websocket');
  W.last().fail();
  H.last().open();
  assert.equal(s.transport, 'http');
  H.last().serverClose(1006, '', false); // the server died
  tick(100000);
  assert.equal(H.sockets.length, 3, 'after http worked, the next round starts with http');
  assert.equal(W.sockets.length, 2);
  H.last().fail();
  assert.equal(W.sockets.length, 3, 'then websocket in the same round');
  s.close();
});

test('on http: a probe WebSocket that gets a message brings the connection back to websocket', () => {
  const { s, log } = make({ upgradeProbe: 1000, fallbackTimeout: 1500, heartbeat: { interval: 60000, timeout: 1000 } });
  W.last().fail();
  H.last().open();
  const http = H.last();
  tick(999);
  assert.equal(W.sockets.length, 1);
  tick(1);
  const probe = W.last();
  assert.equal(W.sockets.length, 2, 'a probe');
  probe.open();
  assert.deepEqual(probe.sent, ['ping'], 'the probe asks for a message');
  tick(1500); // silent: failed, next probe in 2000
  assert.deepEqual(probe.closeCalls, [[1000, undefined]]);
  tick(1999);
  assert.equal(W.sockets.length, 2);
  tick(1);
  assert.equal(W.sockets.length, 3, 'probe interval doubled');
  W.last().fail();
  tick(4000);
  const good = W.last();
  assert.equal(W.sockets.length, 4);
  good.open();
  good.receive('pong');
  assert.deepEqual(good.closeCalls, [[1000, undefined]], 'the probe itself is closed');
  assert.deepEqual(http.closeCalls, [[1000, 'upgrade']], 'http session closed cleanly');
  assert.equal(s.readyState, 0);
  s.send('during upgrade');
  assert.deepEqual(http.sent.filter((m) => m !== 'ping'), [], 'not sent on the closing session');
  http.receive('late http message');
  http.serverClose(1000, 'upgrade');
  assert.equal(W.sockets.length, 5, 'reconnecting over websocket at once');
  W.last().open();
  W.last().receive('pong');
  assert.deepEqual(W.last().sent, ['during upgrade', 'ping']);
  assert.equal(s.transport, 'websocket');
  assert.ok(log.includes('message:late http message'));
  assert.deepEqual(log.filter((l) => l.startsWith('transport')), ['transport:http', 'transport:websocket']);
  tick(3600e3);
  assert.equal(W.sockets.length, 5, 'no probe on websocket');
  s.close();
});

test('after a WebSocket that failed to open (a restarting server looks the same), the first probe comes in 1 s', () => {
  const { s, log } = make({ upgradeProbe: 30000, fallbackTimeout: 1500, heartbeat: { interval: 60000, timeout: 1000 } });
  W.last().fail(); // refused: the server is down, or a proxy refuses upgrades
  H.last().open();
  H.last().receive('pong'); // confirmed over http
  const http = H.last();
  tick(999);
  assert.equal(W.sockets.length, 1);
  tick(1);
  assert.equal(W.sockets.length, 2, 'an early probe, not after upgradeProbe (30 s)');
  W.last().fail(); // a proxy after all: the early probe does not count
  tick(29999);
  assert.equal(W.sockets.length, 2);
  tick(1);
  assert.equal(W.sockets.length, 3, 'then the usual upgradeProbe, not doubled');
  W.last().fail();
  tick(59999);
  assert.equal(W.sockets.length, 3);
  tick(1);
  assert.equal(W.sockets.length, 4, 'and doubling from there');
  const good = W.last();
  good.open();
  good.receive('pong');
  assert.deepEqual(http.closeCalls, [[1000, 'upgrade']]);
  http.serverClose(1000, 'upgrade');
  W.last().open();
  W.last().receive('pong');
  assert.equal(s.transport, 'websocket');
  assert.deepEqual(log.filter((l) => l.startsWith('transport')), ['transport:http', 'transport:websocket']);
  s.close();
});

test('a WebSocket that opened but stayed silent (a proxy): no early probe', () => {
  const { s } = make({ upgradeProbe: 30000, fallbackTimeout: 1500, heartbeat: { interval: 60000, timeout: 1000 } });
  W.last().open();
  tick(1500); // silent: falls back
  H.last().open();
  H.last().receive('pong');
  tick(29999);
  assert.equal(W.sockets.length, 1, 'no probe before upgradeProbe');
  tick(1);
  assert.equal(W.sockets.length, 2);
  s.close();
});

test('close() on http, or while a probe runs, leaves no timer nor socket', () => {
  const { s } = make({ upgradeProbe: 1000 });
  W.last().fail();
  H.last().open();
  tick(1000);
  const probe = W.last();
  assert.equal(W.sockets.length, 2);
  s.close(1000);
  assert.deepEqual(probe.closeCalls, [[1000, undefined]]);
  assert.equal(probe.onopen, null);
  H.last().serverClose(1000, '');
  assert.equal(s.readyState, 3);
  assert.equal(pending.size, 0);
});

test('on probation, a heartbeat timeout or an unclean close also falls back, with what was sent', () => {
  let { s, log } = make({ fallbackTimeout: 5000, heartbeat: { interval: 20000, timeout: 1000 } });
  W.last().open();
  s.send('m1');
  tick(1000); // the ping at open got no pong, before fallbackTimeout
  assert.equal(H.sockets.length, 1, 'heartbeat timeout on probation → http');
  H.last().open();
  assert.deepEqual(H.last().sent, ['m1']);
  assert.ok(log.includes('close:1006:no message (fallback):retry'));
  s.close();

  ({ s, log } = make({ fallbackTimeout: 5000 }));
  W.last().open();
  s.send('m2');
  W.last().serverClose(1006, '', false);
  assert.equal(H.sockets.length, 2, 'closed uncleanly before any message → http at once');
  H.last().open();
  assert.deepEqual(H.last().sent, ['m2']);
  s.close();

  ({ s, log } = make({ fallbackTimeout: 5000 }));
  W.last().open();
  W.last().serverClose(1001, 'going away', true);
  assert.equal(H.sockets.length, 2, 'a clean close is the server speaking: no fallback');
  assert.deepEqual(log.slice(-2), ['close:1001:going away:retry', 'reconnecting:1:500']);
  s.close();
});

test('a WebSocket handshake that hangs past connectTimeout also switches to http at once', () => {
  const { s, log } = make({ connectTimeout: 3000 });
  tick(2999);
  assert.equal(H.sockets.length, 0);
  tick(1);
  assert.deepEqual(W.last().closeCalls, [[4000, 'connect timeout']]);
  assert.equal(H.sockets.length, 1);
  assert.ok(log.includes('reconnecting:0:0'));
  tick(3000); // and the http attempt has its own connectTimeout: then the backoff
  assert.deepEqual(H.last().closeCalls, [[4000, 'connect timeout']]);
  assert.equal(s.attempt, 1);
  assert.equal(log.at(-1), 'reconnecting:1:500');
  s.close();
  assert.equal(pending.size, 0);
});

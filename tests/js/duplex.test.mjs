// Unit tests of web/client/duplex.js: node's test runner, fake timers, and a
// fake WebSocket class injected through the constructor's options.
import { test, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { DuplexSocket } from '../../web/client/duplex.js';
import { fakeWebSocketClass, fakePage, record } from './fake.mjs';

let F; // { FakeWebSocket, sockets, last }
let page;

// Timers the library has armed and not yet fired or cleared: a leak check.
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
  F = fakeWebSocketClass();
  page = fakePage();
});
afterEach(() => mock.timers.reset());

const tick = (ms) => mock.timers.tick(ms);
const flush = () => new Promise((r) => setImmediate(r));
function make(url = 'ws://a/', opts = {}) {
  return new DuplexSocket(url, undefined, {
    WebSocket: F.FakeWebSocket, window: page.window, document: page.document, ...opts,
  });
}

test('drop-in surface: constants, state, on* handlers, listeners, send, close', async () => {
  for (const [k, v] of Object.entries({ CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 })) {
    assert.equal(DuplexSocket[k], v);
    assert.equal(DuplexSocket.prototype[k], v);
  }
  const s = new DuplexSocket('ws://a/x', ['chat', 'v2'], {
    WebSocket: F.FakeWebSocket, window: page.window, document: page.document,
  });
  assert.equal(s.url, 'ws://a/x');
  assert.equal(s.readyState, 0);
  assert.equal(F.sockets.length, 1);
  assert.deepEqual(F.last().protocols, ['chat', 'v2']);
  s.binaryType = 'arraybuffer';
  assert.equal(F.last().binaryType, 'arraybuffer');
  s.binaryType = 'nonsense';
  assert.equal(s.binaryType, 'arraybuffer');

  const order = [];
  s.addEventListener('open', () => order.push('listener1'));
  s.onopen = () => order.push('onopen-old');
  s.onopen = () => order.push('onopen');
  s.addEventListener('open', () => order.push('listener2'));
  let got = null;
  s.onmessage = (e) => { got = e; };
  F.last().open('chat');
  assert.deepEqual(order, ['listener1', 'onopen', 'listener2'], 'on* keeps its first position');
  assert.equal(s.readyState, 1);
  assert.equal(s.protocol, 'chat');
  s.send('hello');
  assert.deepEqual(F.last().sent, ['hello']);
  F.last().receive('world');
  assert.equal(got.data, 'world');
  assert.equal(got.type, 'message');
  s.onmessage = null;
  assert.equal(s.onmessage, null);

  assert.throws(() => s.close(1001), { name: 'InvalidAccessError' });
  assert.throws(() => s.close(1000, 'x'.repeat(124)), { name: 'SyntaxError' });
  let closeEv = null;
  s.onclose = (e) => { closeEv = e; };
  s.close(3001, 'user left');
  assert.equal(s.readyState, 2);
  assert.deepEqual(F.last().closeCalls, [[3001, 'user left']]);
  F.last().serverClose(3001, 'user left', true);
  assert.equal(s.readyState, 3);
  assert.equal(closeEv.code, 3001);
  assert.equal(closeEv.reason, 'user left');
  assert.equal(closeEv.wasClean, true);
  assert.equal(closeEv.willReconnect, false);
  assert.equal(s.send('after'), false, 'send after close discards');
  assert.equal(pending.size, 0, 'no timer left after the final close');
  tick(3600e3);
  assert.equal(F.sockets.length, 1, 'a manual close never reconnects');
  assert.equal(page.listenerCount(), 0, 'online/offline/visibility listeners removed');
});

test('offline queue: sends before open are queued, counted and flushed in order before onopen', () => {
  const s = make();
  s.send('a');
  s.send('é€😀'); // 2 + 3 + 4 bytes
  s.send(new Uint8Array(10));
  assert.equal(s.bufferedAmount, 1 + 9 + 10);
  assert.equal(s.queuedMessages, 3);
  s.onopen = () => s.send('from onopen');
  F.last().open();
  assert.deepEqual(F.last().sent.slice(0, 2), ['a', 'é€😀']);
  assert.equal(F.last().sent[2].byteLength, 10);
  assert.equal(F.last().sent[3], 'from onopen');
  assert.equal(s.bufferedAmount, 0);
  assert.equal(s.queuedMessages, 0);
});

test('a flush cut short resumes, in order, on the next send', () => {
  const s = make();
  s.send('a');
  s.send('b');
  const ws = F.last();
  const real = ws.send.bind(ws);
  let fails = 1;
  ws.send = (d) => { if (fails-- > 0) throw new Error('busy'); real(d); };
  ws.open();
  assert.equal(s.queuedMessages, 2);
  assert.equal(s.send('c'), true);
  assert.deepEqual(ws.sent, ['a', 'b', 'c']);
  assert.equal(s.bufferedAmount, 0);
  s.close();
});

test('offline queue overflow: throw (default), drop-oldest, drop-newest, byte bound', () => {
  let s = make('ws://a/', { queue: { maxMessages: 2 } });
  s.send('1');
  s.send('2');
  assert.throws(() => s.send('3'), { name: 'QuotaExceededError' });
  assert.equal(s.queuedMessages, 2);
  s.close();

  s = make('ws://a/', { queue: { maxMessages: 2, overflow: 'drop-oldest' } });
  const dropped = [];
  s.ondrop = (e) => dropped.push(e.data);
  for (const m of ['1', '2', '3', '4']) assert.equal(s.send(m), true);
  assert.deepEqual(dropped, ['1', '2']);
  F.last().open();
  assert.deepEqual(F.last().sent, ['3', '4']);
  s.close();

  s = make('ws://a/', { queue: { maxMessages: 2, overflow: 'drop-newest' } });
  const dropped2 = [];
  s.ondrop = (e) => dropped2.push(e.data);
  s.send('1');
  s.send('2');
  assert.equal(s.send('3'), false);
  assert.deepEqual(dropped2, ['3']);
  s.close();

  s = make('ws://a/', { queue: { maxBytes: 10 } });
  s.send('12345');
  s.send('12345');
  assert.throws(() => s.send('1'), { name: 'QuotaExceededError' });
  assert.equal(s.bufferedAmount, 10);
  s.close();

  s = make('ws://a/', { queue: false });
  assert.throws(() => s.send('x'), { name: 'InvalidStateError' });
  s.close();
});

test('reconnect: exponential backoff with full jitter, growing and capped', () => {
  const rolls = [0.999, 0.5, 0.999, 0.999, 0.999, 0.999, 0.999, 0.999];
  let i = 0;
  const s = make('ws://a/', {
    reconnect: { base: 100, factor: 2, cap: 1000 },
    random: () => rolls[i++],
  });
  const log = record(s);
  const delays = [];
  s.addEventListener('reconnecting', (e) => delays.push(e.delay));
  for (let n = 0; n < 8; n++) {
    const before = F.sockets.length;
    F.last().fail();
    const d = delays[n];
    if (d > 0) {
      tick(d - 1);
      assert.equal(F.sockets.length, before, `no attempt before ${d} ms`);
    }
    tick(1);
    assert.equal(F.sockets.length, before + 1, `attempt ${n + 1} after ${d} ms`);
  }
  // ceilings 100, 200, 400, 800, 1000 (cap), ...
  assert.deepEqual(delays, [99, 100, 399, 799, 999, 999, 999, 999]);
  assert.ok(log.includes('close:1006::retry'));
  assert.equal(s.readyState, 0, 'CONNECTING while reconnecting');
  s.close();
});

test('reconnect: real jitter stays within [0, ceiling)', () => {
  const s = make('ws://a/', { reconnect: { base: 1000, factor: 2, cap: 16000 } });
  const seen = [];
  s.addEventListener('reconnecting', (e) => seen.push([e.attempt, e.delay]));
  for (let n = 0; n < 200; n++) {
    F.last().fail();
    tick(seen[seen.length - 1][1]);
    F.last().open();
    F.last().serverClose(1001, 'going away'); // opened but dropped at once: no reset
  }
  for (const [attempt, delay] of seen) {
    const ceiling = Math.min(16000, 1000 * 2 ** (attempt - 1));
    assert.ok(delay >= 0 && delay < ceiling, `attempt ${attempt}: ${delay} < ${ceiling}`);
  }
  const late = seen.filter(([a]) => a > 5).map(([, d]) => d);
  assert.ok(Math.max(...late) > 8000 && Math.min(...late) < 8000, 'delays are spread, not fixed');
  s.close();
});

test('one reconnect at a time: error + close of one socket, and late events of old sockets', () => {
  const s = make('ws://a/', { random: () => 0.5, reconnect: { base: 100 } });
  const log = record(s);
  const first = F.last();
  first.fail(); // error then close: the notes reconnect twice here
  tick(10000);
  assert.equal(F.sockets.length, 2, 'exactly one new socket');
  const second = F.last();
  second.open();
  // The first socket, long replaced, fires again: nothing may happen.
  first.onclose?.({ code: 1006 });
  first.onopen?.({});
  assert.equal(first.attached, false, 'old socket handlers cut');
  tick(10000);
  assert.equal(F.sockets.length, 2);
  assert.equal(log.filter((l) => l === 'open').length, 1);
  s.close();
});

test('max attempts: gives up with a final close and releases everything', () => {
  const s = make('ws://a/', { reconnect: { maxAttempts: 3, base: 10 }, random: () => 0.5 });
  const log = record(s);
  for (let n = 0; n < 4; n++) {
    F.last().fail();
    tick(1000);
  }
  assert.equal(F.sockets.length, 4, 'first try + 3 reconnects');
  assert.equal(s.readyState, 3);
  assert.equal(pending.size, 0, 'no timer left after giving up');
  assert.equal(log.filter((l) => l.startsWith('close')).at(-1), 'close:1006::final');
  tick(3600e3);
  assert.equal(F.sockets.length, 4);
  assert.equal(page.listenerCount(), 0);
  // open() starts again after a final close.
  s.open();
  assert.equal(F.sockets.length, 5);
  s.close();
});

test('final close codes stop reconnecting; others do not', () => {
  for (const code of [1008, 4401, 1002]) {
    const s = make();
    const log = record(s);
    F.last().open();
    F.last().serverClose(code, 'no');
    assert.equal(s.readyState, 3, `code ${code} is final`);
    assert.equal(log.at(-1), `close:${code}:no:final`);
    tick(3600e3);
  }
  const n = F.sockets.length;
  const s = make('ws://a/', { reconnect: { finalCodes: [4000] } });
  F.last().open();
  F.last().serverClose(1008, 'policy');
  assert.equal(s.readyState, 0, 'finalCodes replaced: 1008 retries');
  tick(100000);
  assert.equal(F.sockets.length, n + 2);
  s.close();
});

test('attempts reset after a connection stays up for resetAfter', () => {
  const s = make('ws://a/', { random: () => 0.999, reconnect: { base: 100, resetAfter: 5000 } });
  const delays = [];
  s.addEventListener('reconnecting', (e) => delays.push(e.delay));
  F.last().fail(); tick(1000);
  F.last().fail(); tick(1000);
  F.last().fail(); tick(1000);
  assert.equal(s.attempt, 3);
  F.last().open();
  tick(4999);
  assert.equal(s.attempt, 3, 'not yet stable');
  tick(1);
  assert.equal(s.attempt, 0, 'stable: reset');
  F.last().serverClose(1001, 'restart');
  assert.deepEqual(delays, [99, 199, 399, 99], 'backoff starts over');
  s.close();
});

test('heartbeat: ping every interval, pong swallowed, silence declared dead within interval + timeout', () => {
  const s = make('ws://a/', {
    heartbeat: { interval: 1000, timeout: 500, ping: 'hb?', pong: 'hb!' },
    random: () => 0,
  });
  const log = record(s);
  const ws = F.last();
  ws.open();
  tick(999);
  assert.deepEqual(ws.sent, []);
  tick(1);
  assert.deepEqual(ws.sent, ['hb?']);
  ws.receive('hb!');
  assert.ok(!log.includes('message:hb!'), 'the pong is not an application message');
  tick(1000);
  assert.deepEqual(ws.sent, ['hb?', 'hb?']);
  ws.receive('some data'); // any message proves life
  tick(1000);
  assert.equal(ws.sent.length, 3);
  ws.receive('hb!'); // late answer to ping 2
  ws.receive('hb!'); // ping 3
  assert.ok(!log.includes('message:hb!'));
  ws.receive('hb!');
  assert.ok(log.includes('message:hb!'), 'a pong nobody waits for is delivered');
  // Now the peer goes silent.
  tick(1000); // ping 4 sent
  assert.equal(s.readyState, 1);
  tick(499);
  assert.equal(s.readyState, 1);
  tick(1);
  assert.ok(log.includes('close:1006:heartbeat timeout:retry'));
  assert.equal(s.readyState, 0);
  assert.equal(ws.attached, false);
  assert.deepEqual(ws.closeCalls, [[4000, 'heartbeat timeout']]);
  tick(0);
  assert.equal(F.sockets.length, 2, 'reconnects');
  // No heartbeat runs for the dead socket nor before the new one opens.
  tick(10000);
  assert.equal(ws.sent.length, 4);
  assert.equal(F.last().sent.length, 0);
  s.close();
});

test('heartbeat: false disables it; "ping" from the app is just a message', () => {
  const s = make('ws://a/', { heartbeat: false });
  F.last().open();
  tick(3600e3);
  assert.deepEqual(F.last().sent, []);
  s.close();
});

test('connect timeout: an attempt that hangs is abandoned', () => {
  const s = make('ws://a/', { connectTimeout: 3000, random: () => 0 });
  const log = record(s);
  tick(2999);
  assert.equal(F.sockets.length, 1);
  tick(1);
  assert.ok(log.includes('close:1006:connect timeout:retry'));
  assert.equal(F.sockets[0].attached, false);
  tick(0);
  assert.equal(F.sockets.length, 2);
  s.close();
});

test('failover: URLs in turn after failed attempts; the same URL first after a drop', () => {
  const s = make(['ws://a/', 'ws://b/', 'ws://c/'], { random: () => 0 });
  const urls = () => F.sockets.map((w) => w.url.slice(5, 6)).join('');
  F.last().fail(); tick(0);
  F.last().fail(); tick(0);
  assert.equal(urls(), 'abc');
  assert.equal(s.url, 'ws://c/');
  F.last().open();
  F.last().serverClose(1001, 'restart'); tick(0);
  assert.equal(urls(), 'abcc');
  F.last().fail(); tick(0);
  assert.equal(urls(), 'abcca');
  s.close();
});

test('offline: drop at once, queue, no attempts until online, then flush exactly once in order', () => {
  const s = make('ws://a/', { random: () => 0.5 });
  const log = record(s);
  const ws = F.last();
  ws.open();
  s.send('before');
  page.goOffline();
  assert.equal(s.readyState, 0);
  assert.equal(ws.attached, false);
  assert.deepEqual(ws.closeCalls, [[4000, 'offline']]);
  assert.ok(log.includes('close:1006:offline:retry'));
  s.send('m1');
  s.send('m2');
  assert.equal(s.bufferedAmount, 4);
  tick(3600e3);
  assert.equal(F.sockets.length, 1, 'no attempt while offline');
  page.goOnline();
  assert.equal(F.sockets.length, 2, 'online: connect now');
  s.send('m3');
  F.last().open();
  assert.deepEqual(F.last().sent, ['m1', 'm2', 'm3']);
  assert.deepEqual(ws.sent, ['before']);
  // Offline while waiting in backoff also cancels the timer.
  F.last().serverClose(1006, '', false);
  page.goOffline();
  tick(3600e3);
  assert.equal(F.sockets.length, 2);
  page.goOnline();
  assert.equal(F.sockets.length, 3);
  s.close();
});

test('started offline: waits for online', () => {
  page.window.navigator.onLine = false;
  const s = make();
  assert.equal(F.sockets.length, 0);
  assert.equal(s.readyState, 0);
  s.send('q');
  page.goOnline();
  assert.equal(F.sockets.length, 1);
  F.last().open();
  assert.deepEqual(F.last().sent, ['q']);
  s.close();
});

test('visibility: back to visible cuts a backoff short, and checks an open socket at once', () => {
  const s = make('ws://a/', { random: () => 0.999, reconnect: { base: 60000 }, heartbeat: { interval: 30000, timeout: 1000 } });
  F.last().fail();
  page.hide();
  assert.equal(F.sockets.length, 1);
  page.show();
  assert.equal(F.sockets.length, 2, 'reconnect now');
  F.last().open();
  page.hide();
  page.show();
  assert.deepEqual(F.last().sent, ['ping'], 'ping on return');
  tick(1000);
  assert.equal(s.readyState, 0, 'no pong: dead');
  s.close();
});

test('request: concurrent requests correlated by id, replies not dispatched, timeout, close', async () => {
  const s = make();
  const log = record(s);
  const ws = F.last();
  const p1 = s.request({ op: 'a' });
  const p2 = s.request({ op: 'b' }, { timeout: 2000 });
  const p3 = s.request({ op: 'c' }, { timeout: 500 });
  assert.equal(s.pendingRequests, 3);
  ws.open();
  const sent = ws.sent.map((t) => JSON.parse(t));
  assert.deepEqual(sent.map((m) => m.op), ['a', 'b', 'c']);
  const ids = sent.map((m) => m.id);
  assert.equal(new Set(ids).size, 3);
  ws.receive(JSON.stringify({ id: ids[1], ok: 'B' })); // out of order
  ws.receive(JSON.stringify({ id: 999, ok: 'stray' }));
  ws.receive(JSON.stringify({ id: ids[0], ok: 'A' }));
  assert.deepEqual(await p2, { id: ids[1], ok: 'B' });
  assert.deepEqual(await p1, { id: ids[0], ok: 'A' });
  assert.deepEqual(log.filter((l) => l.startsWith('message')), ['message:{"id":999,"ok":"stray"}']);
  tick(500);
  await assert.rejects(p3, { name: 'TimeoutError' });
  assert.equal(s.pendingRequests, 0);

  await assert.rejects(s.request('text'), TypeError);
  const ac = new AbortController();
  const p4 = s.request({ op: 'd' }, { signal: ac.signal });
  ac.abort();
  await assert.rejects(p4, { name: 'AbortError' });
  const p5 = s.request({ op: 'e' });
  s.close();
  await assert.rejects(p5, { name: 'AbortError' });
  assert.equal(s.pendingRequests, 0);
  assert.equal(pending.size, 0, 'request timers cleared');
  await assert.rejects(s.request({ op: 'f' }), { name: 'InvalidStateError' });
});

test('request: custom encoding and matching', async () => {
  const s = make('ws://a/', {
    encodeRequest: (id, data) => `${id}|${data}`,
    matchReply: (data) => (data.startsWith('re:') ? Number(data.split('|')[0].slice(3)) : undefined),
  });
  F.last().open();
  const p = s.request('hello');
  assert.deepEqual(F.last().sent, ['1|hello']);
  F.last().receive('re:1|world');
  assert.equal(await p, 're:1|world');
  s.close();
});

test('manual close while connecting or in backoff: async final close, nothing left running', async () => {
  let s = make();
  const log = record(s);
  s.close(1000, 'bye');
  assert.equal(s.readyState, 3);
  assert.equal(F.last().attached, false);
  // The native socket still connecting is aborted, not left to open with
  // nobody listening (it would stay open: a leaked connection).
  assert.equal(F.last().closeCalls.length, 1, 'the connecting native socket is closed');
  await flush();
  assert.deepEqual(log.filter((l) => l.startsWith('close')), ['close:1000:bye:final']);

  s = make('ws://a/', { random: () => 0.5 });
  F.last().fail();
  assert.equal(pending.size, 1, 'the retry timer');
  s.close();
  assert.equal(pending.size, 0, 'close() clears the retry timer');
  tick(3600e3);
  assert.equal(F.sockets.length, 2);
  assert.equal(page.listenerCount(), 0);
  assert.equal(s.bufferedAmount, 0);
});

test('startClosed: nothing happens until open(); sends in between are queued', () => {
  const s = make('ws://a/', { startClosed: true });
  assert.equal(F.sockets.length, 0);
  assert.equal(s.readyState, 3);
  assert.equal(page.listenerCount(), 0);
  assert.equal(s.send('early'), true);
  s.open();
  assert.equal(F.sockets.length, 1);
  F.last().open();
  assert.deepEqual(F.last().sent, ['early']);
  s.open(); // already open: no-op
  assert.equal(F.sockets.length, 1);
  s.close();
  const t = make('ws://a/', { startClosed: true });
  t.close(); // closing a never-started socket fires nothing and leaves nothing
  assert.equal(page.listenerCount(), 0);
});

test('reconnect(): drops the current connection and connects now', () => {
  const s = make();
  const log = record(s);
  const ws = F.last();
  ws.open();
  s.onclose = () => {
    assert.equal(s.readyState, 0);
    assert.equal(s.send('sent from onclose'), true);
  };
  s.reconnect();
  assert.equal(F.sockets.length, 2);
  assert.deepEqual(ws.closeCalls, [[4000, 'reconnect']]);
  assert.ok(log.includes('close:1006:reconnect:retry'));
  F.last().open();
  assert.equal(s.readyState, 1);
  assert.deepEqual(F.last().sent, ['sent from onclose']);
  s.onclose = null;
  s.close();
});

test('a listener that calls close() inside close or reconnecting stops everything', () => {
  const s = make('ws://a/', { random: () => 0 });
  s.addEventListener('close', () => s.close());
  F.last().fail();
  tick(3600e3);
  assert.equal(F.sockets.length, 1);
  assert.equal(s.readyState, 3);
});

// The chat UI's state (web/chat/src/im.js) against a scripted socket: send
// status sending → sent / failed → resend with the same client id, messages
// written while disconnected, sync deduplicating a message whose ack was
// lost, unread counts and read receipts. Run by tests/e2e/test_js_unit.sh.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IMStore, directConv } from '../../web/chat/src/im.js';

// A DuplexSocket stand-in: request() is answered by the test.
function fakeSocket() {
  const s = {
    readyState: 1,
    requests: [],
    sent: [],
    request(data) {
      return new Promise((resolve, reject) => s.requests.push({ data, resolve, reject }));
    },
    send(text) {
      s.sent.push(JSON.parse(text));
      return true;
    },
    take(type) {
      const i = s.requests.findIndex((r) => r.data.type === type);
      assert.ok(i >= 0, `a '${type}' request was made`);
      return s.requests.splice(i, 1)[0];
    },
  };
  return s;
}

const tick = () => new Promise((r) => setImmediate(r));

async function online(uid = 'alice', convs = []) {
  const im = new IMStore(uid);
  const sock = fakeSocket();
  im.attach(sock);
  const opened = im.onOpen();
  sock.take('sync').resolve({ type: 'sync', convs, presence: [] });
  await opened;
  assert.equal(im.conn.state, 'online');
  return { im, sock };
}

test('directConv puts the uids in byte order', () => {
  assert.equal(directConv('bob', 'alice'), 'd:alice:bob');
  assert.equal(directConv('alice', 'bob'), 'd:alice:bob');
});

test('sending → sent on the ack', async () => {
  const { im, sock } = await online();
  const conv = im.startDirect('bob');
  const cid = im.send(conv, '你好 👋');
  const m = im.convs.get(conv).msgs.get(cid);
  assert.equal(im.status(m), 'sending');
  const r = sock.take('send');
  assert.deepEqual({ ...r.data }, { v: 1, type: 'send', conv, cid, text: '你好 👋' });
  r.resolve({ type: 'ack', cid, seq: 1, mid: 7, ts: 5 });
  await tick();
  assert.equal(im.status(m), 'sent');
  assert.equal(m.seq, 1);
  // bob's receipt makes it read
  im.onMessage({ type: 'read', conv, uid: 'bob', seq: 1 });
  assert.equal(im.status(m), 'read');
});

test('no ack while connected → failed; resend keeps the cid', async () => {
  const { im, sock } = await online();
  const conv = im.startDirect('bob');
  const cid = im.send(conv, 'hello');
  const m = im.convs.get(conv).msgs.get(cid);
  sock.take('send').reject(new Error('timed out'));
  await tick();
  assert.equal(im.status(m), 'failed');
  im.resend(conv, cid);
  assert.equal(im.status(m), 'sending');
  const again = sock.take('send');
  assert.equal(again.data.cid, cid);
  again.resolve({ type: 'ack', cid, seq: 1, mid: 1, ts: 1, dup: true });
  await tick();
  assert.equal(im.status(m), 'sent');
});

test('an error reply fails the message with its reason', async () => {
  const { im, sock } = await online();
  const conv = im.startDirect('bob');
  const cid = im.send(conv, 'x');
  sock.take('send').resolve({ type: 'error', code: 'store_failed', message: 'disk full' });
  await tick();
  const m = im.convs.get(conv).msgs.get(cid);
  assert.equal(m.status, 'failed');
  assert.equal(m.error, 'disk full');
});

test('written while disconnected: sending, sent after the next sync', async () => {
  const { im, sock } = await online();
  const conv = im.startDirect('bob');
  sock.readyState = 0; // the connection dropped
  im.setConn('reconnecting');
  const a = im.send(conv, 'first');
  const b = im.send(conv, 'second');
  await tick();
  assert.equal(sock.requests.filter((x) => x.data.type === 'send').length, 0, 'nothing goes out while disconnected');
  // Reconnect. The server had stored "first" before the crash (its ack was
  // lost): sync brings it back with the same cid.
  sock.readyState = 1;
  const opened = im.onOpen();
  const sync = sock.take('sync');
  sync.resolve({
    type: 'sync', presence: [],
    convs: [{ conv, last_seq: 1, read_seq: 0, unread: 0, more: false,
      msgs: [{ conv, seq: 1, mid: 1, cid: a, from: 'alice', text: 'first', ts: 1 }] }],
  });
  await opened;
  const c = im.convs.get(conv);
  assert.equal(c.msgs.get(a).status, 'sent', 'the stored one is recognised, not resent');
  const r = sock.take('send');
  assert.equal(r.data.cid, b);
  assert.equal(sock.requests.filter((x) => x.data.type === 'send').length, 0, 'only the unsent one is resent');
  r.resolve({ type: 'ack', cid: b, seq: 2, mid: 2, ts: 2 });
  await tick();
  assert.deepEqual(im.ordered(conv).map((m) => [m.text, m.status]), [['first', 'sent'], ['second', 'sent']]);
  assert.equal(c.lastHeld, 2);
});

test('deliveries count as unread until the conversation is read', async () => {
  const { im, sock } = await online('bob');
  const conv = 'd:alice:bob';
  for (let i = 1; i <= 3; i++)
    im.onMessage({ type: 'deliver', msg: { conv, seq: i, mid: i, cid: `c${i}`, from: 'alice', text: `m${i}`, ts: i } });
  im.onMessage({ type: 'deliver', msg: { conv, seq: 3, mid: 3, cid: 'c3', from: 'alice', text: 'm3', ts: 3 } });
  assert.equal(im.convs.get(conv).unread, 3, 'a repeated delivery is not counted twice');
  globalThis.document = { visibilityState: 'visible' };
  try {
    im.open(conv);
  } finally {
    delete globalThis.document;
  }
  assert.equal(im.convs.get(conv).unread, 0);
  const r = sock.take('read');
  assert.deepEqual({ ...r.data }, { v: 1, type: 'read', conv, seq: 3 });
  r.resolve({ type: 'ok' });
});

test('presence and typing', async () => {
  const { im } = await online();
  im.onMessage({ type: 'presence', users: [{ uid: 'bob', online: true, last_seen: 9 }] });
  assert.equal(im.presence.get('bob').online, true);
  im.onMessage({ type: 'typing', conv: 'd:alice:bob', uid: 'bob' });
  assert.deepEqual(im.typers('d:alice:bob'), ['bob']);
});

test('a members push updates the room as it happens (no sync needed)', async () => {
  const { im } = await online('alice', [
    { conv: 'g:lobby', last_seq: 0, read_seq: 0, unread: 0, members: ['alice'], msgs: [], more: false },
  ]);
  assert.equal(im.convs.get('g:lobby').members.length, 1);
  im.onMessage({ v: 1, type: 'members', conv: 'g:lobby', count: 2, joined: ['bob'] });
  const c = im.convs.get('g:lobby');
  assert.equal(c.membersCount, 2);
  assert.deepEqual(c.members, ['alice', 'bob']);
  // A big room: the count alone.
  im.onMessage({ v: 1, type: 'members', conv: 'g:lobby', count: 300 });
  assert.equal(im.convs.get('g:lobby').membersCount, 300);
});

test('resync: the server lost pushes for a while, the store syncs from what it holds', async () => {
  const conv = 'd:alice:bob';
  const { im, sock } = await online('alice', [
    { conv, last_seq: 1, read_seq: 0, unread: 1, msgs: [{ conv, seq: 1, cid: 'b1', from: 'bob', text: 'one', ts: 1 }] },
  ]);
  im.onMessage({ type: 'resync' });
  const r = sock.take('sync');
  assert.deepEqual(r.data.since, { [conv]: 1 });
  r.resolve({
    type: 'sync',
    convs: [{ conv, last_seq: 2, read_seq: 0, unread: 2, msgs: [{ conv, seq: 2, cid: 'b2', from: 'bob', text: 'two', ts: 2 }] }],
    presence: [],
  });
  await tick();
  assert.deepEqual([...im.convs.get(conv).msgs.values()].map((m) => m.text), ['one', 'two']);
  // Not online (still syncing after a reconnection): that sync covers it.
  im.setConn('syncing');
  im.onMessage({ type: 'resync' });
  assert.equal(sock.requests.filter((q) => q.data.type === 'sync').length, 0);
});

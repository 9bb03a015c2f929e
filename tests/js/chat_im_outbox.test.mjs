// Issue 17, "nothing a person typed is ever lost", in the chat UI's state
// (web/chat/src/im.js) against a scripted socket and the in-memory outbox
// (web/chat/src/outbox.js): the outbox and drafts outlive the store, a false
// "failed" is settled by a late ack, a duplicate ack, a sync or a read
// receipt, transient failures are retried after a reconnect and permanent
// ones never, the composer's limit, presence unknown while not connected,
// and a refused sign-in. Run by tests/e2e/test_js_unit.sh.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IMStore, PERMANENT, TEXT_LIMIT, textBytes } from '../../web/chat/src/im.js';
import { memoryOutbox } from '../../web/chat/src/outbox.js';

const conv = 'd:alice:bob';

function fakeSocket() {
  const s = {
    readyState: 1,
    requests: [],
    request(data) {
      return new Promise((resolve, reject) => s.requests.push({ data, resolve, reject }));
    },
    send() {
      return true;
    },
    take(type) {
      const i = s.requests.findIndex((r) => r.data.type === type);
      assert.ok(i >= 0, `a '${type}' request was made`);
      return s.requests.splice(i, 1)[0];
    },
    count: (type) => s.requests.filter((r) => r.data.type === type).length,
  };
  return s;
}

const tick = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

async function connect(im, sock, convs = [], presence = []) {
  im.attach(sock);
  sock.readyState = 1;
  const opened = im.onOpen();
  sock.take('sync').resolve({ type: 'sync', convs, presence });
  await opened;
  assert.equal(im.conn.state, 'online');
}

function drop(im, sock) {
  sock.readyState = 0;
  im.onClose();
  im.setConn('reconnecting');
}

async function online(outbox = null) {
  const im = new IMStore('alice', { outbox });
  const sock = fakeSocket();
  await connect(im, sock);
  return { im, sock };
}

const msgOf = (im, cid) => im.convs.get(conv).msgs.get(cid);

test('the outbox holds a message before it shows, and lets go once it is stored', async () => {
  const box = memoryOutbox();
  const { im, sock } = await online(box);
  const cid = im.send(conv, 'hello');
  assert.equal(im.convs.get(conv)?.msgs.get(cid), undefined, 'not shown before the outbox has it');
  await tick();
  assert.ok(box.shared.outbox.has(cid), 'in the outbox');
  assert.equal(msgOf(im, cid).status, 'sending');
  sock.take('send').resolve({ type: 'ack', conv, cid, seq: 1, mid: 1, ts: 1 });
  await tick();
  assert.equal(msgOf(im, cid).status, 'sent');
  assert.equal(box.shared.outbox.has(cid), false, 'stored: out of the outbox');
});

test('a new store (the next page) shows the outbox and the drafts, and sends with the same cid', async () => {
  const box = memoryOutbox();
  const first = new IMStore('alice', { outbox: box });
  first.setConn('offline');
  const cid = first.send(conv, 'written offline');
  first.setDraft(conv, 'half-typed');
  await tick();
  assert.equal(first.convs.get(conv).msgs.get(cid).status, 'sending');
  // The tab closes; another opens on the same outbox.
  const im = new IMStore('alice', { outbox: memoryOutbox(box.shared) });
  await im.restore();
  assert.equal(msgOf(im, cid).status, 'sending');
  assert.equal(msgOf(im, cid).text, 'written offline');
  assert.equal(im.draft(conv), 'half-typed');
  const sock = fakeSocket();
  await connect(im, sock);
  const r = sock.take('send');
  assert.equal(r.data.cid, cid);
  r.resolve({ type: 'ack', conv, cid, seq: 1, mid: 1, ts: 1, dup: true });
  await tick();
  assert.equal(msgOf(im, cid).status, 'sent');
  assert.equal(box.shared.outbox.size, 0);
  // Sending clears the draft, there as here.
  im.send(conv, im.draft(conv));
  await tick();
  assert.equal(im.draft(conv), '');
  assert.equal(box.shared.drafts.has(conv), false);
});

test('restored after a sync that already holds it: sent, not sent again', async () => {
  const box = memoryOutbox();
  await box.put({ cid: 'c1', conv, from: 'alice', text: 'stored before the crash', ts: 1, status: 'sending' });
  const im = new IMStore('alice', { outbox: box });
  const sock = fakeSocket();
  await connect(im, sock, [{ conv, last_seq: 1, read_seq: 0, unread: 0, more: false,
    msgs: [{ conv, seq: 1, mid: 1, cid: 'c1', from: 'alice', text: 'stored before the crash', ts: 1 }] }]);
  await im.restore();
  assert.equal(msgOf(im, 'c1').status, 'sent');
  assert.equal(sock.count('send'), 0);
  await tick();
  assert.equal(box.shared.outbox.size, 0);
});

test('a false failed: the late ack of a stalled server turns it sent', async () => {
  const { im, sock } = await online(memoryOutbox());
  const cid = im.send(conv, 'stalled');
  await tick();
  sock.take('send').reject(new Error('request 1 timed out after 8000 ms'));
  await tick();
  assert.equal(msgOf(im, cid).status, 'failed');
  assert.equal(msgOf(im, cid).permanent, false);
  // The reply comes after the request gave up: a plain message now.
  im.onMessage({ v: 1, type: 'ack', conv, cid, seq: 1, mid: 9, ts: 9 });
  assert.equal(im.status(msgOf(im, cid)), 'sent');
  im.onMessage({ v: 1, type: 'read', conv, uid: 'bob', seq: 1 });
  assert.equal(im.status(msgOf(im, cid)), 'read');
});

test('a false failed: a sync holding its cid turns it sent', async () => {
  const { im, sock } = await online();
  const cid = im.send(conv, 'stalled');
  sock.take('send').reject(new Error('timeout'));
  await tick();
  assert.equal(msgOf(im, cid).status, 'failed');
  im.onMessage({ type: 'resync' });
  sock.take('sync').resolve({ type: 'sync', presence: [], convs: [{ conv, last_seq: 1, read_seq: 0, unread: 0,
    more: false, msgs: [{ conv, seq: 1, mid: 1, cid, from: 'alice', text: 'stalled', ts: 1 }] }] });
  await tick();
  assert.equal(msgOf(im, cid).status, 'sent');
  assert.equal(msgOf(im, cid).seq, 1);
});

test('a false failed: a read receipt past what we hold syncs, and the sync settles it', async () => {
  const { im, sock } = await online();
  const cid = im.send(conv, 'stalled');
  sock.take('send').reject(new Error('timeout'));
  await tick();
  im.onMessage({ v: 1, type: 'read', conv, uid: 'bob', seq: 1 });
  im.onMessage({ v: 1, type: 'read', conv, uid: 'bob', seq: 1 });
  assert.equal(sock.count('sync'), 1, 'one sync for two receipts');
  sock.take('sync').resolve({ type: 'sync', presence: [], convs: [{ conv, last_seq: 1, read_seq: 0, unread: 0,
    more: false, reads: { bob: 1 }, msgs: [{ conv, seq: 1, mid: 1, cid, from: 'alice', text: 'stalled', ts: 1 }] }] });
  await tick();
  assert.equal(im.status(msgOf(im, cid)), 'read');
});

test('a false failed: the duplicate ack of a resend', async () => {
  const { im, sock } = await online();
  const cid = im.send(conv, 'x');
  sock.take('send').reject(new Error('timeout'));
  await tick();
  im.resend(conv, cid);
  sock.take('send').resolve({ type: 'ack', conv, cid, seq: 1, mid: 1, ts: 1, dup: true });
  await tick();
  assert.equal(msgOf(im, cid).status, 'sent');
});

test('transient failures are retried after a reconnect with the same cid; permanent ones never', async () => {
  const box = memoryOutbox();
  const { im, sock } = await online(box);
  const a = im.send(conv, 'no answer');
  const b = im.send(conv, 'disk full');
  const c = im.send(conv, 'x'.repeat(10));
  await tick();
  sock.take('send').reject(new Error('timeout'));
  sock.take('send').resolve({ type: 'error', code: 'store_failed', message: 'the database refused the write' });
  sock.take('send').resolve({ type: 'error', code: 'too_large', message: 'text is limited to 4000 bytes', field: 'text' });
  await tick();
  assert.deepEqual([a, b, c].map((k) => [msgOf(im, k).status, msgOf(im, k).permanent]),
    [['failed', false], ['failed', false], ['failed', true]]);
  assert.equal(msgOf(im, c).error, 'text is limited to 4000 bytes');
  im.resend(conv, c);
  assert.equal(sock.count('send'), 0, 'no resend of what cannot succeed');
  drop(im, sock);
  await connect(im, sock);
  const again = [sock.take('send'), sock.take('send')];
  assert.deepEqual(again.map((r) => r.data.cid), [a, b]);
  assert.equal(sock.count('send'), 0, 'the permanent one stays');
  for (const [i, r] of again.entries()) r.resolve({ type: 'ack', conv, cid: r.data.cid, seq: i + 1, mid: i + 1, ts: 1 });
  await tick();
  assert.deepEqual([a, b, c].map((k) => msgOf(im, k).status), ['sent', 'sent', 'failed']);
  // The permanent one outlives the page, with its reason; then it goes.
  assert.equal(box.shared.outbox.get(c).permanent, true);
  assert.equal(box.shared.outbox.get(c).error, 'text is limited to 4000 bytes');
  const next = new IMStore('alice', { outbox: memoryOutbox(box.shared) });
  await next.restore();
  assert.equal(next.convs.get(conv).msgs.get(c).status, 'failed');
  next.edit(conv, c);
  assert.equal(next.draft(conv), 'x'.repeat(10));
  assert.equal(next.convs.get(conv).msgs.has(c), false);
  await tick();
  assert.equal(box.shared.outbox.size, 0);
});

test('every error code of the protocol is classified', () => {
  for (const code of ['bad_json', 'bad_version', 'bad_type', 'bad_field', 'too_large', 'not_member'])
    assert.ok(PERMANENT.has(code), code);
  for (const code of ['store_failed', 'rate_limited', 'internal', 'no_answer', 'some_future_code'])
    assert.ok(!PERMANENT.has(code), code);
});

test('the text limit: counted in UTF-8 bytes, the welcome may change it, send refuses past it', async () => {
  assert.equal(textBytes('aé你👋'), 1 + 2 + 3 + 4);
  const { im, sock } = await online();
  assert.equal(im.textLimit, TEXT_LIMIT);
  assert.equal(im.send(conv, 'x'.repeat(TEXT_LIMIT + 1)), null);
  assert.equal(im.send(conv, '你'.repeat(1334)), null, '4002 bytes');
  assert.ok(im.send(conv, 'x'.repeat(TEXT_LIMIT)));
  im.onMessage({ v: 1, type: 'welcome', uid: 'alice', limits: { text: 10, request: 16384 } });
  assert.equal(im.textLimit, 10);
  assert.equal(im.send(conv, 'x'.repeat(11)), null);
  assert.equal(sock.count('send'), 1);
});

test('presence is unknown while not connected, and replaced by the next sync', async () => {
  const im = new IMStore('alice');
  const sock = fakeSocket();
  await connect(im, sock, [], [{ uid: 'bob', online: true, last_seen: 5 }]);
  assert.equal(im.presenceOf('bob').online, true);
  drop(im, sock);
  assert.equal(im.presenceOf('bob').online, null, 'reconnecting: unknown, not online');
  im.attach(sock);
  sock.readyState = 1;
  const opened = im.onOpen();
  assert.equal(im.presenceOf('bob').online, null, 'syncing: still unknown');
  sock.take('sync').resolve({ type: 'sync', convs: [], presence: [{ uid: 'carol', online: true, last_seen: 1 }] });
  await opened;
  assert.equal(im.presenceOf('carol').online, true);
  assert.equal(im.presenceOf('bob').online, false, 'what the last connection said is gone');
});

test('a direct peer the sync did not cover is asked for', async () => {
  const { im, sock } = await online();
  im.startDirect('dave');
  const r = sock.take('presence');
  assert.deepEqual(r.data.uids, ['dave']);
  r.resolve({ type: 'presence', users: [{ uid: 'dave', online: true, last_seen: 1 }] });
  await tick();
  assert.equal(im.presenceOf('dave').online, true);
});

test('a refused sign-in is told apart from a closed connection', () => {
  const im = new IMStore('alice');
  im.onFinalClose(4401, 'token expired');
  assert.deepEqual([im.conn.state, im.conn.reason], ['refused', 'token expired']);
  im.onFinalClose(4403, '');
  assert.deepEqual([im.conn.state, im.conn.reason], ['refused', 'close code 4403']);
  im.onFinalClose(1008, 'policy');
  assert.equal(im.conn.state, 'closed');
});

test('load older: one of ours found in the history is the same message, now sent', async () => {
  const { im, sock } = await online();
  const cid = im.send(conv, 'lost ack');
  sock.take('send').reject(new Error('timeout'));
  await tick();
  const c = im.convs.get(conv);
  c.more = true;
  const loading = im.loadOlder(conv);
  sock.take('history').resolve({ type: 'history', conv, more: false, msgs: [
    { conv, seq: 1, mid: 1, cid: 'b1', from: 'bob', text: 'older', ts: 1 },
    { conv, seq: 2, mid: 2, cid, from: 'alice', text: 'lost ack', ts: 2 },
  ] });
  await loading;
  assert.deepEqual(im.ordered(conv).map((m) => [m.text, m.status]), [['older', 'sent'], ['lost ack', 'sent']]);
});

// The chat UI's state (web/chat/src/im.js) against the server's limits
// (docs/chat-protocol.md, "Limits" and "Pages"): a sync of many
// conversations is followed page by page with `after`, a sync refused with
// rate_limited is asked again after retry_after, and so is a send, with the
// same client id, instead of failing. Run by tests/e2e/test_js_unit.sh.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IMStore } from '../../web/chat/src/im.js';

function fakeSocket() {
  const s = {
    readyState: 1,
    requests: [],
    waiters: [],
    request(data) {
      return new Promise((resolve, reject) => {
        s.requests.push({ data, resolve, reject });
        for (const w of s.waiters.splice(0)) w();
      });
    },
    send() {
      return true;
    },
    // The next request of `type`, waiting for it when it is not made yet.
    async take(type) {
      for (let n = 0; n < 200; n++) {
        const i = s.requests.findIndex((r) => r.data.type === type);
        if (i >= 0) return s.requests.splice(i, 1)[0];
        await new Promise((r) => {
          s.waiters.push(r);
          setTimeout(r, 10);
        });
      }
      assert.fail(`no '${type}' request was made`);
    },
  };
  return s;
}

const conv = (id) => ({ conv: id, last_seq: 0, read_seq: 0, unread: 0, msgs: [], more: false });

test('a sync in pages: each next is asked for with after, presence from the first', async () => {
  const im = new IMStore('alice');
  const sock = fakeSocket();
  im.attach(sock);
  const opened = im.onOpen();
  let r = await sock.take('sync');
  assert.equal(r.data.after, undefined);
  r.resolve({ type: 'sync', convs: [conv('g:a'), conv('g:b')], presence: [{ uid: 'bob', online: true, last_seen: 1 }], next: 'g:b' });
  r = await sock.take('sync');
  assert.equal(r.data.after, 'g:b');
  r.resolve({ type: 'sync', convs: [conv('g:c')], presence: [], next: 'g:c' });
  r = await sock.take('sync');
  assert.equal(r.data.after, 'g:c');
  r.resolve({ type: 'sync', convs: [conv('g:d')], presence: [] });
  await opened;
  assert.equal(im.conn.state, 'online');
  assert.deepEqual([...im.convs.keys()].sort(), ['g:a', 'g:b', 'g:c', 'g:d']);
  assert.equal(im.presence.get('bob').online, true);
  assert.equal(sock.requests.filter((q) => q.data.type === 'sync').length, 0);
});

test('a sync refused with rate_limited is asked again after retry_after', async () => {
  const im = new IMStore('alice');
  const sock = fakeSocket();
  im.attach(sock);
  const opened = im.onOpen();
  let r = await sock.take('sync');
  r.resolve({ type: 'error', code: 'rate_limited', limit: 'fetch', retry_after: 5, message: 'slow down' });
  r = await sock.take('sync');
  r.resolve({ type: 'sync', convs: [conv('g:a')], presence: [] });
  await opened;
  assert.equal(im.conn.state, 'online');
  assert.ok(im.convs.has('g:a'));
});

test('a send refused with rate_limited goes again with the same cid, not failed', async () => {
  const im = new IMStore('alice');
  const sock = fakeSocket();
  im.attach(sock);
  const opened = im.onOpen();
  (await sock.take('sync')).resolve({ type: 'sync', convs: [], presence: [] });
  await opened;
  const id = im.startDirect('bob');
  const cid = im.send(id, 'hi');
  const m = im.convs.get(id).msgs.get(cid);
  let r = await sock.take('send');
  r.resolve({ type: 'error', code: 'rate_limited', limit: 'send', retry_after: 5, message: 'slow down' });
  await new Promise((res) => setTimeout(res, 1));
  assert.equal(im.status(m), 'sending');
  r = await sock.take('send');
  assert.equal(r.data.cid, cid);
  r.resolve({ type: 'ack', cid, seq: 1, mid: 1, ts: 1 });
  await new Promise((res) => setImmediate(res));
  assert.equal(im.status(m), 'sent');
});

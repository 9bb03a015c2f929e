// Issue 18, pictures and files, in the chat UI's state (web/chat/src/files.js
// through the IMStore of im.js) against a scripted socket and the in-memory
// store of pending attachments: the upload protocol of docs/chat-protocol.md
// ("Files and pictures"): chunks of the server's size, at most WINDOW in
// flight, the `send` with `file` and the cid chosen at the start, a resume
// from the server's offset after a dropped connection and after a reload
// (a new store reading the kept attachment), bad_offset, too_large (the
// server's limit learned), cancel. Run by tests/e2e/test_js_unit.sh.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cleanName, fileWire, humanSize, memoryFiles, WINDOW } from '../../web/chat/src/files.js';
import { IMStore } from '../../web/chat/src/im.js';
import { memoryOutbox } from '../../web/chat/src/outbox.js';

const conv = 'd:alice:bob';
const TOKEN = '00112233445566778899aabbccddeeff';
const CHUNK = 100000;

function fakeSocket() {
  const s = {
    readyState: 1,
    requests: [],
    frames: [], // binary messages: {token, offset, len}
    request(data) {
      return new Promise((resolve, reject) => s.requests.push({ data, resolve, reject }));
    },
    send(data) {
      if (data instanceof ArrayBuffer) {
        const b = new Uint8Array(data);
        const token = [...b.subarray(0, 16)].map((x) => x.toString(16).padStart(2, '0')).join('');
        const offset = Number(new DataView(data).getBigUint64(16, false));
        s.frames.push({ token, offset, len: b.length - 24 });
      }
      return true;
    },
    take(type) {
      const i = s.requests.findIndex((r) => r.data.type === type);
      assert.ok(i >= 0, `a '${type}' request was made`);
      return s.requests.splice(i, 1)[0];
    },
    count: (type) => s.requests.filter((r) => r.data.type === type).length,
    // take(), once such a request comes (hashing the file takes a moment).
    async wait(type) {
      for (let i = 0; i < 400 && !s.count(type); i++) await new Promise((r) => setTimeout(r, 5));
      return s.take(type);
    },
  };
  return s;
}

const tick = async () => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
};
// Until `cond` holds (reading a slice of a file takes a moment), 2 s at most.
const until = async (cond) => {
  for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  await tick();
};

async function connect(im, sock) {
  im.attach(sock);
  sock.readyState = 1;
  const opened = im.onOpen();
  sock.take('sync').resolve({ type: 'sync', convs: [], presence: [] });
  await opened;
  assert.equal(im.conn.state, 'online');
}

function drop(im, sock) {
  sock.readyState = 0;
  im.onClose();
  im.setConn('reconnecting');
}

const bytes = (n) => {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7) & 255;
  return new File([b], 'report.bin', { type: 'application/octet-stream' });
};

// The server's side of the chunks in flight: answers each with its
// progress (or `uploaded` at the end), as the server does.
function serve(im, sock, size, upto = Infinity) {
  let at = 0;
  const out = [];
  for (const f of sock.frames.splice(0)) {
    if (f.offset !== at || at >= upto) continue;
    at += f.len;
    out.push(at >= size
      ? { type: 'uploaded', upload: TOKEN, file: { id: 'f'.repeat(64), name: 'report.bin', size, type: 'application/octet-stream' } }
      : { type: 'upload_progress', upload: TOKEN, offset: at });
  }
  for (const m of out) im.onMessage(m);
  return at;
}

test('a file goes up in chunks, WINDOW at a time, then the message with its cid', async () => {
  const store = memoryFiles();
  const im = new IMStore('alice', { outbox: memoryOutbox() });
  im.files.store = store;
  const sock = fakeSocket();
  await connect(im, sock);
  const size = 650000;
  const cid = await im.files.add(conv, bytes(size), 'the report');
  assert.ok(cid);
  assert.ok(store.shared.has(cid), 'kept with its file before it shows');
  const m = im.convs.get(conv).msgs.get(cid);
  assert.equal(im.status(m), 'sending');
  await tick();
  const up = await sock.wait('upload');
  assert.equal(up.data.name, 'report.bin');
  assert.equal(up.data.size, size);
  assert.match(up.data.sha256, /^[0-9a-f]{64}$/);
  up.resolve({ type: 'upload', upload: TOKEN, offset: 0, chunk: CHUNK });
  await until(() => sock.frames.length >= WINDOW);
  assert.equal(sock.frames.length, WINDOW, 'at most WINDOW chunks in flight');
  assert.deepEqual(sock.frames.map((f) => f.offset), [0, 1, 2, 3].map((i) => i * CHUNK));
  assert.ok(sock.frames.every((f) => f.token === TOKEN && f.len === CHUNK));
  assert.equal(store.shared.get(cid).upload.token, TOKEN, 'the token is kept');
  // Two answered: two more go.
  im.onMessage({ type: 'upload_progress', upload: TOKEN, offset: CHUNK });
  im.onMessage({ type: 'upload_progress', upload: TOKEN, offset: 2 * CHUNK });
  assert.equal(im.files.progress(m).sent, 2 * CHUNK);
  await until(() => sock.frames.length >= 6);
  assert.deepEqual(sock.frames.map((f) => f.offset), [0, 1, 2, 3, 4, 5].map((i) => i * CHUNK));
  sock.frames.splice(0, 2);
  // The rest, answered as they come.
  for (let i = 0; i < 400 && !m.upload.done; i++) {
    const frames = sock.frames.splice(0);
    for (const f of frames) {
      const at = f.offset + f.len;
      im.onMessage(at >= size
        ? { type: 'uploaded', upload: TOKEN, file: { id: 'f'.repeat(64), name: 'report.bin', size, type: 'application/octet-stream' } }
        : { type: 'upload_progress', upload: TOKEN, offset: at });
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.ok(m.upload.done);
  const send = await sock.wait('send');
  assert.equal(send.data.cid, cid);
  assert.equal(send.data.text, 'the report');
  assert.deepEqual(send.data.file, { id: 'f'.repeat(64), name: 'report.bin' });
  send.resolve({ type: 'ack', conv, cid, mid: 9, seq: 1, ts: Date.now() });
  await tick();
  assert.equal(im.status(m), 'sent');
  assert.ok(!store.shared.has(cid), 'no longer pending');
});

test('a dropped connection, then a reload: the upload goes on from the server\'s offset, one message', async () => {
  const store = memoryFiles();
  let im = new IMStore('alice', { outbox: memoryOutbox() });
  im.files.store = store;
  let sock = fakeSocket();
  await connect(im, sock);
  const size = 450000;
  const cid = await im.files.add(conv, bytes(size), '');
  (await sock.wait('upload')).resolve({ type: 'upload', upload: TOKEN, offset: 0, chunk: CHUNK });
  await until(() => sock.frames.length >= WINDOW);
  serve(im, sock, size, 2 * CHUNK); // the server got two chunks
  drop(im, sock);
  await tick();
  // Back: the same token, and the server says where it is.
  sock = fakeSocket();
  await connect(im, sock);
  await tick();
  const again = await sock.wait('upload');
  assert.equal(again.data.upload, TOKEN);
  again.resolve({ type: 'upload', upload: TOKEN, offset: 2 * CHUNK, chunk: CHUNK });
  await until(() => sock.frames.length >= 2);
  assert.equal(sock.frames[0].offset, 2 * CHUNK, 'from the server\'s offset');
  serve(im, sock, size, 3 * CHUNK);
  // The tab is closed here; a new page reads the kept attachment back.
  im = new IMStore('alice', { outbox: memoryOutbox() });
  im.files.store = store;
  sock = fakeSocket();
  await im.restore();
  await tick();
  const m = im.convs.get(conv).msgs.get(cid);
  assert.ok(m, 'the message is back');
  assert.equal(im.status(m), 'sending');
  await connect(im, sock);
  await tick();
  const third = await sock.wait('upload');
  assert.equal(third.data.upload, TOKEN);
  third.resolve({ type: 'upload', upload: TOKEN, offset: 3 * CHUNK, chunk: CHUNK });
  await until(() => sock.frames.length >= 2);
  assert.equal(sock.frames[0].offset, 3 * CHUNK);
  let at = 3 * CHUNK;
  for (const f of sock.frames.splice(0)) {
    at = f.offset + f.len;
    im.onMessage(at >= size
      ? { type: 'uploaded', upload: TOKEN, file: { id: 'e'.repeat(64), name: 'report.bin', size, type: 'application/octet-stream' } }
      : { type: 'upload_progress', upload: TOKEN, offset: at });
  }
  await tick();
  const send = await sock.wait('send');
  assert.equal(send.data.cid, cid, 'the cid chosen at the start');
  send.resolve({ type: 'ack', conv, cid, mid: 3, seq: 1, ts: Date.now() });
  await tick();
  assert.equal(im.status(m), 'sent');
  assert.equal(sock.count('send'), 0);
  assert.equal(im.convs.get(conv).msgs.size, 1);
});

test('bad_offset: the upload asks where the file is and goes on there', async () => {
  const im = new IMStore('alice');
  const sock = fakeSocket();
  await connect(im, sock);
  const size = 250000;
  await im.files.add(conv, bytes(size), 'x');
  (await sock.wait('upload')).resolve({ type: 'upload', upload: TOKEN, offset: 0, chunk: CHUNK });
  await until(() => sock.frames.length >= 3);
  sock.frames.splice(0);
  im.onMessage({ type: 'error', code: 'bad_offset', upload: TOKEN, offset: 50000 });
  await tick();
  const ask = await sock.wait('upload');
  assert.equal(ask.data.upload, TOKEN);
  ask.resolve({ type: 'upload', upload: TOKEN, offset: 50000, chunk: CHUNK });
  await until(() => sock.frames.length >= 2);
  assert.deepEqual(sock.frames.map((f) => f.offset), [50000, 150000]);
});

test('too_large: failed for good, kept, and the next file over the limit is refused at once', async () => {
  const store = memoryFiles();
  const im = new IMStore('alice', { outbox: memoryOutbox() });
  im.files.store = store;
  const sock = fakeSocket();
  await connect(im, sock);
  const cid = await im.files.add(conv, bytes(300000), '');
  (await sock.wait('upload')).resolve({ type: 'error', code: 'too_large', message: 'over', max: 200000 });
  await tick();
  const m = im.convs.get(conv).msgs.get(cid);
  assert.equal(m.status, 'failed');
  assert.ok(m.permanent);
  assert.match(m.error, /at most 200 kB/);
  assert.ok(store.shared.get(cid).permanent);
  assert.match(im.files.refusal(bytes(300000)), /at most 200 kB/);
  assert.equal(await im.files.add(conv, bytes(300000), ''), null);
  assert.equal(sock.count('upload'), 0);
  im.discard(conv, cid);
  await tick();
  assert.ok(!store.shared.has(cid));
});

test('cancel: the message goes, nothing is sent', async () => {
  const store = memoryFiles();
  const im = new IMStore('alice', { outbox: memoryOutbox() });
  im.files.store = store;
  const sock = fakeSocket();
  await connect(im, sock);
  const cid = await im.files.add(conv, bytes(350000), '');
  (await sock.wait('upload')).resolve({ type: 'upload', upload: TOKEN, offset: 0, chunk: CHUNK });
  await tick();
  const m = im.convs.get(conv).msgs.get(cid);
  im.files.cancel(m);
  await tick();
  assert.ok(!im.convs.get(conv).msgs.has(cid));
  assert.ok(!store.shared.has(cid));
  im.onMessage({ type: 'upload_progress', upload: TOKEN, offset: CHUNK });
  await tick();
  assert.equal(sock.count('send'), 0);
});

test('names, sizes and the wire form', () => {
  assert.equal(cleanName('../../x.txt'), '../../x.txt');
  assert.equal(cleanName('a\u0000b\nc.txt'), 'a_b_c.txt');
  const long = `${'é'.repeat(300)}.png`;
  const c = cleanName(long);
  assert.ok(new TextEncoder().encode(c).length <= 255 && c.endsWith('….png'));
  assert.equal(humanSize(999), '999 B');
  assert.equal(humanSize(1500), '1.5 kB');
  assert.equal(humanSize(25 * 1024 * 1024), '26 MB');
  assert.deepEqual(fileWire({ id: 'a', name: 'n', size: 3, type: 't', thumb: 'b', w: 10, h: 20 }),
    { id: 'a', name: 'n', thumb: 'b', w: 10, h: 20 });
});

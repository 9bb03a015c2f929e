// Pictures and files (docs/chat-protocol.md, "Files and pictures") over
// real sockets, from Node's `ws` and fetch, against `duplex serve --chat`.
// Usage: node chat_files.mjs BASE_URL PHASE
// PHASE: files      upload a PNG in chunks, send it to a direct
//                   conversation, the member downloads it (headers, Range,
//                   304, 416); a non-member gets 404, no credential 403; an
//                   HTML file named x.jpg is never served as a page
//        toolarge   on a --max-upload 1000 server: a larger upload is
//                   refused before anything is stored
// Prints one line per check; exits 0 when all passed.
import crypto from 'node:crypto';
import { Device, base, check, run } from './chat_lib.mjs';

const httpBase = base.replace(/^ws/, 'http');

// Uploads `bytes` as `name` through `d`, in chunks of at most the
// server's `chunk` (and `step`); resolves with the `uploaded` reply.
async function upload(d, name, bytes, step = 65536) {
  const r = await d.ask({ type: 'upload', name, size: bytes.length });
  if (r.type !== 'upload') throw new Error(`upload refused: ${JSON.stringify(r)}`);
  const token = Buffer.from(r.upload, 'hex');
  const size = Math.min(step, r.chunk);
  for (let off = r.offset; off < bytes.length; off += size) {
    const head = Buffer.alloc(24);
    token.copy(head, 0);
    head.writeBigUInt64BE(BigInt(off), 16);
    d.raw(Buffer.concat([head, bytes.subarray(off, off + size)]));
  }
  return d.wait((m) => (m.type === 'uploaded' || m.type === 'error') && m.upload === r.upload,
    `uploaded ${name}`);
}

const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');

function png(n) {
  const b = crypto.randomBytes(n);
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(b, 0);
  return b;
}

async function filesPhase() {
  const alice = await Device.open('uid=alice');
  const bob = await Device.open('uid=bob');
  const mallory = await Device.open('uid=mallory');
  for (const d of [alice, bob, mallory]) await d.next('welcome');

  const img = png(200000);
  const up = await upload(alice, 'cat.png', img);
  check(up.type === 'uploaded' && up.file?.id === sha(img) && up.file.size === img.length &&
    up.file.type === 'image/png' && up.file.name === 'cat.png', `uploaded ${JSON.stringify(up.file)}`);

  // A chunk at the wrong offset is refused with where the file is.
  const r = await alice.ask({ type: 'upload', name: 'x.bin', size: 10 });
  const head = Buffer.alloc(24);
  Buffer.from(r.upload, 'hex').copy(head, 0);
  head.writeBigUInt64BE(5n, 16);
  alice.raw(Buffer.concat([head, Buffer.from('abc')]));
  const bad = await alice.wait((m) => m.type === 'error' && m.upload === r.upload, 'bad_offset');
  check(bad.code === 'bad_offset' && bad.offset === 0, `bad offset: ${JSON.stringify(bad)}`);
  head.writeBigUInt64BE(0n, 16);
  alice.raw(Buffer.concat([head, Buffer.from('0123456789')]));
  const done = await alice.wait((m) => m.upload === r.upload && m.type !== 'error', 'the rest');
  check(done.type === 'uploaded' && done.id === r.id && done.file.size === 10 && done.file.type === 'text/plain',
    `then from the offset: ${JSON.stringify(done)}`);

  const conv = 'd:alice:bob';
  const ack = await alice.ask({ type: 'send', conv, cid: 'f-1', text: '',
    file: { id: up.file.id, name: 'cat.png', w: 10, h: 10 } });
  check(ack.type === 'ack', `send with a file: ${JSON.stringify(ack)}`);
  const dv = await bob.next('deliver', (m) => m.msg?.cid === 'f-1');
  check(dv.msg.file?.id === up.file.id && dv.msg.file.size === img.length &&
    dv.msg.file.type === 'image/png', `bob gets the file: ${JSON.stringify(dv.msg.file)}`);

  const url = (who, c = conv) => `${httpBase}/files/${up.file.id}?conv=${encodeURIComponent(c)}&uid=${who}`;
  let res = await fetch(url('bob'));
  const body = Buffer.from(await res.arrayBuffer());
  check(res.status === 200 && body.equals(img), `bob downloads it: ${res.status}, ${body.length} bytes`);
  const h = (name) => res.headers.get(name);
  check(h('content-type') === 'image/png', `type ${h('content-type')}`);
  check(h('x-content-type-options') === 'nosniff', 'nosniff');
  check(h('content-security-policy') === "sandbox; default-src 'none'", `csp ${h('content-security-policy')}`);
  check(h('content-disposition') === "inline; filename*=UTF-8''cat.png", `disposition ${h('content-disposition')}`);
  check(h('etag') === `"${up.file.id}"`, `etag ${h('etag')}`);
  check(h('accept-ranges') === 'bytes', 'accept-ranges');
  check(/immutable/.test(h('cache-control') ?? ''), `cache-control ${h('cache-control')}`);

  res = await fetch(url('bob'), { headers: { Range: 'bytes=100-199' } });
  const part = Buffer.from(await res.arrayBuffer());
  check(res.status === 206 && part.equals(img.subarray(100, 200)) &&
    res.headers.get('content-range') === `bytes 100-199/${img.length}`, `range: ${res.status} ${res.headers.get('content-range')}`);
  res = await fetch(url('bob'), { headers: { 'If-None-Match': `"${up.file.id}"` } });
  check(res.status === 304, `if-none-match: ${res.status}`);
  res = await fetch(url('bob'), { headers: { Range: `bytes=${img.length}-` } });
  check(res.status === 416 && res.headers.get('content-range') === `bytes */${img.length}`, `unsatisfiable range: ${res.status}`);
  res = await fetch(url('alice'));
  check(res.status === 200, `the sender downloads it too: ${res.status}`);
  await res.arrayBuffer();

  res = await fetch(url('mallory'));
  check(res.status === 404, `a non-member gets 404: ${res.status}`);
  res = await fetch(url('mallory', 'd:alice:mallory'));
  check(res.status === 404, `the file is in no conversation of mallory's: ${res.status}`);
  res = await fetch(`${httpBase}/files/${up.file.id}?conv=${encodeURIComponent(conv)}`);
  check(res.status === 403, `no credential: ${res.status}`);
  res = await fetch(`${httpBase}/files/${'0'.repeat(64)}?conv=${encodeURIComponent(conv)}&uid=bob`);
  check(res.status === 404, `an unknown file: ${res.status}`);

  // Mallory cannot attach a file she neither uploaded nor can see.
  const steal = await mallory.ask({ type: 'send', conv: 'd:bob:mallory', cid: 'm-1', text: '',
    file: { id: up.file.id, name: 'mine.png' } });
  check(steal.type === 'error' && steal.code === 'no_file', `no_file: ${JSON.stringify(steal)}`);

  // HTML named x.jpg: not an image, not a page, saved rather than shown.
  const page = Buffer.from('<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>');
  const hup = await upload(alice, 'x.jpg', page);
  check(hup.type === 'uploaded' && !/^image\/|html/.test(hup.file.type), `html typed ${hup.file?.type}`);
  await alice.ask({ type: 'send', conv, cid: 'f-2', text: 'look', file: { id: hup.file.id, name: 'x.jpg' } });
  res = await fetch(`${httpBase}/files/${hup.file.id}?conv=${encodeURIComponent(conv)}&uid=bob`);
  await res.arrayBuffer();
  const type = res.headers.get('content-type') ?? '';
  check(res.status === 200 && (type === 'application/octet-stream' || type.startsWith('text/plain')),
    `html served as ${res.status} ${type}`);
  check((res.headers.get('content-disposition') ?? '').startsWith('attachment;'), 'html: attachment');
  check(res.headers.get('x-content-type-options') === 'nosniff', 'html: nosniff');

  for (const d of [alice, bob, mallory]) await d.close();
}

async function tooLargePhase() {
  const alice = await Device.open('uid=alice');
  await alice.next('welcome');
  const r = await alice.ask({ type: 'upload', name: 'big.bin', size: 2000 });
  check(r.type === 'error' && r.code === 'too_large', `over --max-upload: ${JSON.stringify(r)}`);
  const ok = await upload(alice, 'small.bin', crypto.randomBytes(1000));
  check(ok.type === 'uploaded' && ok.file.size === 1000, `at the limit: ${JSON.stringify(ok.file)}`);
  await alice.close();
}

run({ files: filesPhase, toolarge: tooLargePhase });

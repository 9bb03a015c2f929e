// Node's `ws` client against `duplex serve --echo`: every message size
// boundary, text and binary, fragmented messages, ping/pong, the
// application heartbeat and every way to close. Usage:
//   node node_client.mjs ws://127.0.0.1:PORT/ [--insecure]
// Exits 0 when every check passed; prints one line per check.
import { createRequire } from 'node:module';
import path from 'node:path';

const root = process.env.DX_ROOT ?? path.resolve(import.meta.dirname, '../..');
const require = createRequire(path.join(root, 'package.json'));
const WebSocket = require('ws');

const url = process.argv[2];
const opts = { maxPayload: 64 << 20, rejectUnauthorized: !process.argv.includes('--insecure') };
// --metrics URL: the server's /metrics, to see where it keeps the socket.
const mi = process.argv.indexOf('--metrics');
const metrics = mi > 0 ? process.argv[mi + 1] : null;
// --ring N: the io_uring threads the server must have (what ws:// found).
const ri = process.argv.indexOf('--ring');
const ringThreads = ri > 0 ? Number(process.argv[ri + 1]) : null;
let failed = 0;
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failed++;
};

const open = () =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(url, opts);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });

const next = (ws) =>
  new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no message in 20 s')), 20000);
    ws.once('message', (data, isBinary) => {
      clearTimeout(t);
      resolve({ data, isBinary });
    });
  });

const get = (u) =>
  new Promise((resolve, reject) => {
    const mod = require(u.startsWith('https:') ? 'node:https' : 'node:http');
    mod
      .get(u, { rejectUnauthorized: opts.rejectUnauthorized }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });

const closed = (ws) =>
  new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));

const fill = (n) => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = 97 + (i % 26);
  return b;
};

async function main() {
  const ws = await open();
  for (const n of [0, 125, 126, 65535, 65536, 16 << 20]) {
    const b = fill(n);
    ws.send(b, { binary: true });
    let m = await next(ws);
    check(m.isBinary && Buffer.compare(m.data, b) === 0, `binary ${n} B echoed`);
    ws.send(b.toString());
    m = await next(ws);
    check(!m.isBinary && m.data.toString() === b.toString(), `text ${n} B echoed`);
  }
  const utf = 'héllo, 世界 🎉';
  ws.send(utf);
  check((await next(ws)).data.toString() === utf, 'multi-byte UTF-8 text echoed');

  // Fragmented messages: ws writes one frame per send with fin: false.
  ws.send('frag-1 ', { fin: false });
  ws.send('frag-2 ', { fin: false });
  ws.send('frag-3', { fin: true });
  let m = await next(ws);
  check(!m.isBinary && m.data.toString() === 'frag-1 frag-2 frag-3', 'fragmented text reassembled');
  const parts = [fill(70000), fill(10), fill(0), fill(3)];
  parts.forEach((p, i) => ws.send(p, { binary: true, fin: i === parts.length - 1 }));
  m = await next(ws);
  check(m.isBinary && m.data.length === 70013, 'fragmented binary reassembled (70013 B)');

  // A ping frame with a payload comes back as a pong with the same payload.
  const pong = new Promise((resolve) => ws.once('pong', (d) => resolve(d.toString())));
  ws.ping('are you there');
  check((await pong) === 'are you there', 'ping answered with a pong');

  // The application heartbeat: text "ping" → "pong".
  ws.send('ping');
  m = await next(ws);
  check(!m.isBinary && m.data.toString() === 'pong', 'application heartbeat ping → pong');

  // Where the server keeps this socket: on its io_uring whenever it runs
  // one (ws:// and wss:// alike), read from its metrics.
  if (metrics) {
    const text = await get(metrics);
    const gauge = (name) => Number((text.match(new RegExp(`^${name} (\\d+)$`, 'm')) ?? [])[1]);
    const threads = gauge('duplex_io_uring_threads');
    const on = gauge('duplex_io_uring_connections');
    check(on === (threads > 0 ? 1 : 0), `the socket is on io_uring when the server has one (threads ${threads}, connections ${on})`);
    if (ringThreads !== null) check(threads === ringThreads, `a ring as with ws:// (${threads}, ${ringThreads})`);
  }

  // A pipelined burst of every size up to 200 KB, sent without waiting:
  // all echoed, in order (sends behind sends in flight, records cut
  // across reads).
  const sizes = Array.from({ length: 600 }, (_, i) => (i * 7919) % 200000);
  const got = [];
  const all = new Promise((resolve) => {
    const on = (data) => {
      got.push(data.length);
      if (got.length === sizes.length) {
        ws.off('message', on);
        resolve();
      }
    };
    ws.on('message', on);
  });
  sizes.forEach((n) => ws.send(fill(n), { binary: true }));
  await all;
  check(got.every((n, i) => n === sizes[i]), `a burst of ${sizes.length} messages up to 200 KB echoed in order`);

  // A reader that stops: 12 MB of echoes pile up in the server while the
  // client reads nothing, then all arrive once it reads again.
  ws._socket.pause();
  const big = fill(1 << 20);
  let back = 0;
  const twelve = new Promise((resolve) => {
    const on = (data) => {
      if (Buffer.compare(data, big) === 0) back++;
      if (back === 12) {
        ws.off('message', on);
        resolve();
      }
    };
    ws.on('message', on);
  });
  for (let i = 0; i < 12; i++) ws.send(big, { binary: true });
  await new Promise((r) => setTimeout(r, 500));
  ws._socket.resume();
  await twelve;
  check(back === 12, 'a reader paused for 0.5 s under 12 MB of echoes gets every byte');

  // A normal close.
  let c = closed(ws);
  ws.close(1000);
  let r = await c;
  check(r.code === 1000, `normal close echoed (${r.code})`);

  // A close with a code and a reason.
  const ws2 = await open();
  c = closed(ws2);
  ws2.close(3001, 'user left');
  r = await c;
  check(r.code === 3001, `close 3001 'user left' echoed (got ${r.code} '${r.reason}')`);

  // An abnormal close: the socket dies in the middle of a message.
  const ws3 = await open();
  ws3.send(fill(1 << 20), { fin: false });
  ws3.terminate();
  await closed(ws3);
  const ws4 = await open();
  ws4.send('still alive?');
  m = await next(ws4);
  check(m.data.toString() === 'still alive?', 'server survives a terminated client');
  c = closed(ws4);
  ws4.close();
  r = await c;
  check(r.code === 1005, `close without a code reported as 1005 (${r.code})`);
}

const timer = setTimeout(() => {
  console.log('FAIL timed out');
  process.exit(1);
}, 90000);
main()
  .then(() => {
    clearTimeout(timer);
    console.log(failed ? `${failed} checks failed` : 'all checks passed');
    process.exit(failed ? 1 : 0);
  })
  .catch((e) => {
    console.log(`FAIL ${e.stack ?? e}`);
    process.exit(1);
  });

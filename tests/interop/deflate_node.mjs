// permessage-deflate against Node's `ws`, both roles.
//
//   node deflate_node.mjs client URL '{"serverNoContextTakeover":true,...}' EXPECT
//     A ws client with perMessageDeflate (the JSON is ws's option object,
//     threshold 0 so that ws compresses everything) talks to `duplex serve
//     --echo`: it checks the negotiated extension against EXPECT (a
//     comma-separated list of parameters the answer must hold, or "-" for
//     none, or "off" when the extension must not be negotiated; a trailing
//     ",raw" says the server must send uncompressed), then sends a
//     plan of messages (JSON-like text, binary noise, a fragmented message,
//     UTF-8, 1 MiB of repetitive text) and checks every echo. It also checks
//     that the server compressed: the 1 MiB echo must take far fewer bytes on
//     the wire. Exits 0 on success, 1 with a reason.
//   node deflate_node.mjs bomb URL
//     Sends 8 MiB of zeros (about 8 KiB compressed) to a server whose
//     --max-message is 1 MiB: the server must close with 1009.
//   node deflate_node.mjs broadcast URL
//     Four ws clients of `duplex serve --broadcast` (without deflate, with
//     ws's defaults, with server_max_window_bits 9 and 10): one sends 200 KB
//     of JSON-like text, all must receive it equal, the deflate ones in far
//     fewer bytes on the wire than its size (the server compressed its
//     broadcast), the other one uncompressed.
//   node deflate_node.mjs server '{...ws perMessageDeflate options...}'
//     A ws server printing "listening PORT"; each connection is driven
//     like the client above (the client must echo: `duplex connect --echo`),
//     then closed with 1000 "done", or 4000 and the first mismatch.
import { createRequire } from 'node:module';
import http from 'node:http';
import path from 'node:path';

const root = process.env.DX_ROOT ?? path.resolve(import.meta.dirname, '../..');
const require = createRequire(path.join(root, 'package.json'));
const { WebSocket, WebSocketServer } = require('ws');

const [mode, ...args] = process.argv.slice(2);

function plan() {
  const json = (i) =>
    JSON.stringify({ id: i, user: `user-${i % 7}`, text: 'hello from the chat room '.repeat(30), ts: 1700000000 + i }).slice(0, 1024);
  const noise = Buffer.alloc(100000);
  let x = 12345;
  for (let i = 0; i < noise.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    noise[i] = x >>> 24;
  }
  const msgs = [];
  for (let i = 0; i < 20; i++) msgs.push({ data: json(i), binary: false });
  msgs.push({ data: '', binary: false });
  msgs.push({ data: 'héllo wörld ✓ 世界 🎉'.repeat(40), binary: false });
  msgs.push({ data: Buffer.alloc(0), binary: true });
  msgs.push({ data: noise, binary: true });
  msgs.push({ data: 'x', binary: false });
  msgs.push({ data: 'abc'.repeat(300000), binary: false, big: true });
  msgs.push({ frag: ['{"part":1,"pad":"', 'y'.repeat(5000), '"}'], binary: false });
  for (let i = 20; i < 30; i++) msgs.push({ data: json(i), binary: false });
  return msgs;
}

const want = (m) => (m.frag ? Buffer.from(m.frag.join('')) : Buffer.isBuffer(m.data) ? m.data : Buffer.from(m.data));

// Drives an echoing peer over `ws`; calls done(null) or done(reason).
// `compressed`: whether the peer must compress its echo of 1 MiB of
// repetitive text (false: it must not).
function drive(ws, done, compressed = true) {
  const msgs = plan();
  let i = 0;
  let wireBefore = 0;
  const send = () => {
    const m = msgs[i];
    if (m.big) wireBefore = ws._socket.bytesRead;
    if (m.frag) {
      m.frag.forEach((p, k) => ws.send(p, { binary: m.binary, fin: k === m.frag.length - 1, compress: true }));
    } else {
      ws.send(m.data, { binary: m.binary, compress: true });
    }
  };
  ws.on('message', (data, isBinary) => {
    const m = msgs[i];
    const got = Buffer.isBuffer(data) ? data : Buffer.concat(data);
    if (isBinary !== m.binary || !got.equals(want(m))) return done(`echo ${i} differs (${got.length} bytes, want ${want(m).length})`);
    if (m.big) {
      const wire = ws._socket.bytesRead - wireBefore;
      if (compressed && wire > want(m).length / 20) return done(`1 MiB echo took ${wire} bytes on the wire: not compressed`);
      if (!compressed && wire < want(m).length) return done(`1 MiB echo took ${wire} bytes on the wire: compressed`);
    }
    i++;
    if (i === msgs.length) return done(null);
    send();
  });
  send();
}

function checkExt(ext, expect) {
  if (expect === 'off') return ext === '' ? null : `extension negotiated although off: '${ext}'`;
  if (!ext.startsWith('permessage-deflate')) return `permessage-deflate not negotiated: '${ext}'`;
  if (expect === '-') return null;
  for (const p of expect.split(',')) if (!ext.includes(p)) return `'${p}' missing from '${ext}'`;
  return null;
}

function fail(why) {
  console.error(`FAIL ${why}`);
  process.exit(1);
}

if (mode === 'client') {
  const [url, opts, expectRaw] = args;
  const raw = expectRaw.endsWith(',raw') || expectRaw === 'off';
  const expect = expectRaw.replace(/,raw$/, '');
  const pmd = opts === 'off' ? false : { ...JSON.parse(opts), threshold: 0 };
  const ws = new WebSocket(url, { perMessageDeflate: pmd, maxPayload: 64 << 20 });
  const timer = setTimeout(() => fail('timed out'), 60000);
  let answer = '';
  ws.on('upgrade', (res) => (answer = res.headers['sec-websocket-extensions'] ?? ''));
  ws.on('error', (e) => fail(`error: ${e.message}`));
  ws.on('open', () => {
    const bad = checkExt(answer, expect);
    if (bad) fail(bad);
    drive(
      ws,
      (err) => {
        if (err) fail(err);
        ws.close(1000, 'done');
      },
      !raw,
    );
  });
  ws.on('close', (code) => {
    clearTimeout(timer);
    if (code !== 1000) fail(`closed with ${code}`);
    console.log(`ok client ${opts} -> '${answer}'`);
    process.exit(0);
  });
} else if (mode === 'bomb') {
  const ws = new WebSocket(args[0], { perMessageDeflate: { threshold: 0 } });
  const timer = setTimeout(() => fail('timed out'), 60000);
  ws.on('error', () => {});
  ws.on('open', () => ws.send(Buffer.alloc(8 << 20), { compress: true }));
  ws.on('message', () => fail('the bomb was echoed'));
  ws.on('close', (code) => {
    clearTimeout(timer);
    if (code !== 1009) fail(`closed with ${code}, want 1009`);
    console.log('ok bomb: 1009');
    process.exit(0);
  });
} else if (mode === 'broadcast') {
  const kinds = [false, {}, { serverMaxWindowBits: 9 }, { serverMaxWindowBits: 10 }];
  const big = JSON.stringify(Array.from({ length: 3000 }, (_, i) => ({ id: i, user: `u${i % 9}`, text: 'broadcast me' }))).slice(0, 200000);
  const timer = setTimeout(() => fail('timed out'), 60000);
  const socks = kinds.map((k) => new WebSocket(args[0], { perMessageDeflate: k ? { ...k, threshold: 0 } : false }));
  let open = 0;
  let got = 0;
  socks.forEach((ws, i) => {
    ws.on('error', (e) => fail(`client ${i}: ${e.message}`));
    ws.on('open', () => {
      ws.before = ws._socket.bytesRead;
      if (++open === socks.length) socks[0].send(big);
    });
    ws.on('message', (data) => {
      const wire = ws._socket.bytesRead - ws.before;
      if (data.toString() !== big) fail(`client ${i}: broadcast differs`);
      if (kinds[i] && wire > big.length / 5) fail(`client ${i}: ${wire} bytes on the wire: not compressed`);
      if (!kinds[i] && wire < big.length) fail(`client ${i}: ${wire} bytes on the wire: compressed without deflate`);
      console.log(`ok broadcast client ${i} (${JSON.stringify(kinds[i])}): ${big.length} bytes in ${wire} on the wire`);
      if (++got === socks.length) {
        clearTimeout(timer);
        process.exit(0);
      }
    });
  });
} else if (mode === 'server') {
  const opts = JSON.parse(args[0]);
  const server = http.createServer();
  const wss = new WebSocketServer({ server, maxPayload: 64 << 20, perMessageDeflate: { ...opts, threshold: 0 } });
  wss.on('connection', (ws, req) => {
    const offer = req.headers['sec-websocket-extensions'] ?? '';
    if (!offer.includes('permessage-deflate')) return ws.close(4000, 'no permessage-deflate offer');
    const bad = checkExt(ws.extensions, '-');
    if (bad) return ws.close(4000, bad.slice(0, 100));
    drive(ws, (err) => ws.close(err ? 4000 : 1000, err ? err.slice(0, 100) : 'done'));
  });
  server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
  for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
} else {
  fail('usage: deflate_node.mjs client URL OPTS EXPECT | bomb URL | server OPTS');
}

// A Node `ws` WebSocketServer for testing `duplex connect` against it.
// Usage: node node_server.mjs [--tls CERT KEY]
// Prints "listening PORT" once it listens on 127.0.0.1 (a free port).
//
// Paths:
//   /echo      every message back, same opcode; text commands change that:
//                "frag"        → "fragmented" sent in three fragments (fin:false chain)
//                "ping-me"     → a ping with "abc"; its pong → text "pong:abc"
//                "close-3001"  → close(3001, 'user left')
//                "close-1000"  → close(1000)
//                "terminate"   → the socket destroyed, no close frame
//   /protocol  picks the last offered subprotocol, then echoes
//   /headers   sends "x-test=<X-Test> origin=<Origin> protocol=<chosen>", then echoes
//   /reject    refuses the upgrade with 404
//   /driver    tests an echoing client (duplex connect --echo): sends messages of
//              both kinds, checks each echo (same opcode, same bytes), then closes
//              1000 "done", or 4000 with the first mismatch as the reason
import { createRequire } from 'node:module';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';

const root = process.env.DX_ROOT ?? path.resolve(import.meta.dirname, '../..');
const require = createRequire(path.join(root, 'package.json'));
const { WebSocketServer } = require('ws');

const args = process.argv.slice(2);
const tls = args[0] === '--tls' ? { cert: fs.readFileSync(args[1]), key: fs.readFileSync(args[2]) } : null;
const server = tls ? https.createServer(tls) : http.createServer();

const wss = new WebSocketServer({
  server,
  maxPayload: 64 << 20,
  handleProtocols: (protocols) => {
    const list = [...protocols];
    return list.length ? list[list.length - 1] : false;
  },
  verifyClient: (info, cb) => {
    if (info.req.url.startsWith('/reject')) cb(false, 404, 'Not Found');
    else cb(true);
  },
});

const fill = (n, seed) => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 255;
  return b;
};

function driver(ws) {
  const plan = [
    { data: 'hello', binary: false },
    { data: '', binary: false },
    { data: 'héllo wörld ✓', binary: false },
    { data: Buffer.alloc(0), binary: true },
    { data: fill(125, 1), binary: true },
    { data: fill(126, 2), binary: true },
    { data: fill(65536, 3), binary: true },
    { data: 'x'.repeat(70000), binary: false },
    { data: fill(1 << 20, 4), binary: true },
  ];
  let i = 0;
  const sendNext = () => {
    const p = plan[i];
    ws.send(p.data, { binary: p.binary });
  };
  ws.on('message', (data, isBinary) => {
    const p = plan[i];
    const want = Buffer.isBuffer(p.data) ? p.data : Buffer.from(p.data);
    if (isBinary !== p.binary || !Buffer.from(data).equals(want)) {
      ws.close(4000, `mismatch at message ${i}`);
      return;
    }
    i++;
    if (i === plan.length) {
      // A fragmented message last: the echo must come back whole and equal.
      if (!ws.fragDone) {
        ws.fragDone = true;
        plan.push({ data: 'fragmented', binary: false });
        ws.send('frag', { fin: false });
        ws.send('men', { fin: false });
        ws.send('ted', { fin: true });
        return;
      }
      ws.close(1000, 'done');
      return;
    }
    sendNext();
  });
  sendNext();
}

wss.on('connection', (ws, req) => {
  const url = req.url;
  if (url.startsWith('/driver')) {
    driver(ws);
    return;
  }
  if (url.startsWith('/headers')) {
    ws.send(`x-test=${req.headers['x-test']} origin=${req.headers.origin} protocol=${ws.protocol}`);
  }
  ws.on('pong', (data) => ws.send(`pong:${data.toString()}`));
  ws.on('message', (data, isBinary) => {
    if (!isBinary) {
      const s = data.toString();
      if (s === 'frag') {
        ws.send('frag', { fin: false });
        ws.send('men', { fin: false });
        ws.send('ted', { fin: true });
        return;
      }
      if (s === 'ping-me') return ws.ping('abc');
      if (s === 'later') {
        // Answered 300 ms later: after the EOF of a client that sent it last.
        setTimeout(() => { if (ws.readyState === 1) ws.send('late'); }, 300);
        return;
      }
      if (s === 'close-3001') return ws.close(3001, 'user left');
      if (s === 'close-1000') return ws.close(1000);
      if (s === 'terminate') return ws.terminate();
    }
    ws.send(data, { binary: isBinary });
  });
});

server.listen(0, '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));

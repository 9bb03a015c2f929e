// Node `ws` echo server for the benchmark suite, as `ws` users deploy it:
// with the native bufferutil and utf-8-validate add-ons (ws loads them by
// itself when they are installed; this prints which it found).
//
// usage: node ws_echo.mjs [--port P] [--deflate] [--broadcast] [--cert F --key F]
//   --deflate    offer permessage-deflate (ws's default settings)
//   --broadcast  send every message to every open client instead of echoing
//   --cert F --key F  wss:// (an https server from node:https, as ws documents)
// Prints "listening PORT" once it listens on 127.0.0.1 (P 0 picks a port).
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { createRequire } from 'node:module';
import { WebSocketServer, WebSocket } from 'ws';

const args = process.argv.slice(2);
const opt = (name) => args.includes(name);
const pi = args.indexOf('--port');
const port = pi >= 0 ? Number(args[pi + 1]) : 9002;
const val = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const cert = val('--cert'), key = val('--key');

const require = createRequire(import.meta.url);
const addons = ['bufferutil', 'utf-8-validate'].filter((m) => {
  try { require.resolve(m); return true; } catch { return false; }
});

const common = { perMessageDeflate: opt('--deflate'), maxPayload: 16 * 1024 * 1024 };
let wss;
if (cert) {
  const server = createServer({ cert: readFileSync(cert), key: readFileSync(key) });
  wss = new WebSocketServer({ server, ...common });
  server.listen(port, '127.0.0.1', () => wss.emit('listening'));
} else {
  wss = new WebSocketServer({ host: '127.0.0.1', port, ...common });
}
const broadcast = opt('--broadcast');
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    if (!broadcast) {
      ws.send(data, { binary: isBinary });
      return;
    }
    for (const c of wss.clients) if (c.readyState === WebSocket.OPEN) c.send(data, { binary: isBinary });
  });
  ws.on('error', () => {});
});
wss.on('listening', () => {
  console.log(`listening ${wss.address().port}`);
  console.error(`ws_echo: add-ons ${addons.join(', ') || 'none'}`);
});
process.on('SIGTERM', () => process.exit(0));

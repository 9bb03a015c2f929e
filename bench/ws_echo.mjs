// Node `ws` echo server for the benchmark suite, as `ws` users deploy it:
// with the native bufferutil and utf-8-validate add-ons (ws loads them by
// itself when they are installed; this prints which it found).
//
// usage: node ws_echo.mjs [--port P] [--deflate] [--broadcast]
//   --deflate    offer permessage-deflate (ws's default settings)
//   --broadcast  send every message to every open client instead of echoing
// Prints "listening PORT" once it listens on 127.0.0.1 (P 0 picks a port).
import { createRequire } from 'node:module';
import { WebSocketServer, WebSocket } from 'ws';

const args = process.argv.slice(2);
const opt = (name) => args.includes(name);
const pi = args.indexOf('--port');
const port = pi >= 0 ? Number(args[pi + 1]) : 9002;

const require = createRequire(import.meta.url);
const addons = ['bufferutil', 'utf-8-validate'].filter((m) => {
  try { require.resolve(m); return true; } catch { return false; }
});

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  perMessageDeflate: opt('--deflate'),
  maxPayload: 16 * 1024 * 1024,
});
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

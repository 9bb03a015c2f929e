// Chat benchmark: N simulated users on loopback against `duplex serve --chat`
// (docs/chat-protocol.md), each in a direct conversation with a partner,
// each keeping WINDOW sends in flight for SECONDS. Every ack is durable (the
// server sends it after the SQLite commit, fsync included). Prints one JSON
// object: acked messages/s, ack latency percentiles (send → ack, ms), and
// deliveries received by the partners.
// Usage: node chat_bench.mjs URL [--users 1000] [--seconds 10] [--window 1]
import { createRequire } from 'node:module';
import path from 'node:path';

const root = process.env.DX_ROOT ?? path.resolve(import.meta.dirname, '../..');
const require = createRequire(path.join(root, 'package.json'));
const WebSocket = require('ws');

const args = process.argv.slice(2);
const url = args[0];
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const USERS = opt('users', 1000), SECONDS = opt('seconds', 10), WINDOW = opt('window', 1);
const lat = [];
let acked = 0, delivered = 0, errors = 0, running = false;

function connect(i) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}/chat?uid=u${i}`, { perMessageDeflate: false });
    const u = { ws, i, n: 0, inflight: new Map() };
    const partner = i ^ 1;
    u.conv = i < partner ? `d:u${i}:u${partner}` : `d:u${partner}:u${i}`;
    ws.on('message', (data) => {
      const m = JSON.parse(data);
      if (m.type === 'welcome') resolve(u);
      else if (m.type === 'ack') {
        const t0 = u.inflight.get(m.id);
        u.inflight.delete(m.id);
        if (running) {
          acked++;
          lat.push(performance.now() - t0);
          send(u);
        }
      } else if (m.type === 'deliver') delivered++;
      else if (m.type === 'error') errors++;
    });
    ws.once('error', reject);
  });
}

function send(u) {
  const id = ++u.n;
  u.inflight.set(id, performance.now());
  u.ws.send(JSON.stringify({ v: 1, type: 'send', id, conv: u.conv, cid: `b${u.i}-${id}`, text: `message ${id} from u${u.i} 你好` }));
}

const users = [];
const t0 = performance.now();
for (let i = 0; i < USERS; i += 50) {
  const batch = [];
  for (let j = i; j < Math.min(USERS, i + 50); j++) batch.push(connect(j));
  users.push(...(await Promise.all(batch)));
}
const connectMs = performance.now() - t0;
running = true;
const start = performance.now();
for (const u of users) for (let w = 0; w < WINDOW; w++) send(u);
await new Promise((r) => setTimeout(r, SECONDS * 1000));
running = false;
const elapsed = (performance.now() - start) / 1000;
lat.sort((a, b) => a - b);
const pct = (p) => (lat.length ? +lat[Math.min(lat.length - 1, Math.floor(lat.length * p))].toFixed(2) : null);
console.log(JSON.stringify({
  users: USERS, window: WINDOW, seconds: +elapsed.toFixed(2), connect_ms: Math.round(connectMs),
  acked, msgs_per_s: Math.round(acked / elapsed), delivered, errors,
  ack_ms: { p50: pct(0.5), p90: pct(0.9), p99: pct(0.99), max: pct(1) },
}));
for (const u of users) u.ws.terminate();
process.exit(0);

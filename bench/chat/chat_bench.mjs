// Chat benchmark: N simulated users on loopback against `duplex serve --chat`
// (docs/chat-protocol.md), each in a direct conversation with a partner,
// each keeping WINDOW sends in flight for SECONDS. Every ack is durable (the
// server sends it after the SQLite commit, fsync included). Prints one JSON
// object: acked messages/s, ack latency percentiles (send → ack, ms), and
// deliveries received by the partners with their latency (send → deliver).
// Several URLs (comma-separated: the nodes of a cluster) spread the users
// round-robin, so that partners (u0↔u1, ...) sit on different nodes and
// every delivery crosses Redis.
// Usage: node chat_bench.mjs URL[,URL...] [--users 1000] [--seconds 10] [--window 1]
//        [--settle S]  (seconds of quiet between connecting and measuring)
import { createRequire } from 'node:module';
import path from 'node:path';

const root = process.env.DX_ROOT ?? path.resolve(import.meta.dirname, '../..');
const require = createRequire(path.join(root, 'package.json'));
const WebSocket = require('ws');

const args = process.argv.slice(2);
const urls = args[0].split(',');
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const USERS = opt('users', 1000), SECONDS = opt('seconds', 10), WINDOW = opt('window', 1);
const SETTLE = opt('settle', 0);
const lat = [], dlat = [];
const sentAt = new Map(); // cid → send time, for the delivery latency
let acked = 0, delivered = 0, errors = 0, running = false;

function connect(i) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${urls[i % urls.length]}/chat?uid=u${i}`, { perMessageDeflate: false });
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
      } else if (m.type === 'deliver') {
        delivered++;
        const t = sentAt.get(m.msg.cid);
        if (t !== undefined) {
          sentAt.delete(m.msg.cid);
          if (running) dlat.push(performance.now() - t);
        }
      }
      else if (m.type === 'error') errors++;
    });
    ws.once('error', reject);
  });
}

function send(u) {
  const id = ++u.n;
  const now = performance.now(), cid = `b${u.i}-${id}`;
  u.inflight.set(id, now);
  sentAt.set(cid, now);
  u.ws.send(JSON.stringify({ v: 1, type: 'send', id, conv: u.conv, cid, text: `message ${id} from u${u.i} 你好` }));
}

const users = [];
const t0 = performance.now();
for (let i = 0; i < USERS; i += 50) {
  const batch = [];
  for (let j = i; j < Math.min(USERS, i + 50); j++) batch.push(connect(j));
  users.push(...(await Promise.all(batch)));
}
const connectMs = performance.now() - t0;
// Every arrival is announced to every lobby member (O(n²) presence pushes,
// which cross Redis in a cluster): --settle lets the nodes digest them
// before the measurement.
await new Promise((r) => setTimeout(r, SETTLE * 1000));
running = true;
const start = performance.now();
for (const u of users) for (let w = 0; w < WINDOW; w++) send(u);
await new Promise((r) => setTimeout(r, SECONDS * 1000));
running = false;
const elapsed = (performance.now() - start) / 1000;
lat.sort((a, b) => a - b);
dlat.sort((a, b) => a - b);
const pctOf = (a, p) => (a.length ? +a[Math.min(a.length - 1, Math.floor(a.length * p))].toFixed(2) : null);
const pct = (p) => pctOf(lat, p);
console.log(JSON.stringify({
  users: USERS, window: WINDOW, seconds: +elapsed.toFixed(2), connect_ms: Math.round(connectMs),
  acked, msgs_per_s: Math.round(acked / elapsed), delivered, errors,
  ack_ms: { p50: pct(0.5), p90: pct(0.9), p99: pct(0.99), max: pct(1) },
  deliver_ms: { p50: pctOf(dlat, 0.5), p90: pctOf(dlat, 0.9), p99: pctOf(dlat, 0.99), max: pctOf(dlat, 1) },
  nodes: urls.length,
}));
for (const u of users) u.ws.terminate();
process.exit(0);

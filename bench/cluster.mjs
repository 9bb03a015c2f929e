// Fan-out driver for `duplex serve --broadcast` nodes, single or clustered
// through Redis: one publisher connection on --pub, --receivers N
// connections on --sub (the same node, or another one behind the same
// Redis). Closed loop: the publisher keeps --inflight messages outstanding,
// a message being done when every receiver has it. Reports deliveries per
// second and the publish-to-delivery latency (one process, one clock).
//
// usage: node bench/cluster.mjs --pub URL --sub URL [--receivers N]
//        [--duration S] [--size B] [--inflight K] [--json]
import { WebSocket } from 'ws';

const args = process.argv.slice(2);
const val = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const PUB = val('--pub');
const SUB = val('--sub', PUB);
const N = Number(val('--receivers', 50));
const DURATION = Number(val('--duration', 5)) * 1000;
const SIZE = Math.max(32, Number(val('--size', 64)));
const INFLIGHT = Number(val('--inflight', 8));
const JSON_OUT = args.includes('--json');
if (!PUB) {
  console.error('usage: node bench/cluster.mjs --pub URL --sub URL [options]');
  process.exit(2);
}

const open = (url) =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });

const now = () => Number(process.hrtime.bigint() / 1000n); // microseconds
const pad = 'x'.repeat(SIZE);
const lat = []; // microseconds, one per delivery while measuring
const pending = new Map(); // seq -> receivers still missing it
let seq = 0;
let delivered = 0;
let measuring = false;
let stopped = false;
let pub;

function send() {
  const s = seq++;
  pending.set(s, N);
  const head = `${s} ${now()} `;
  pub.send(head + pad.slice(head.length));
}

function onMessage(data) {
  const text = data.toString();
  const sp = text.indexOf(' ');
  const s = Number(text.slice(0, sp));
  const t = Number(text.slice(sp + 1, text.indexOf(' ', sp + 1)));
  if (measuring) {
    lat.push(now() - t);
    delivered++;
  }
  const left = pending.get(s) - 1;
  if (left > 0) {
    pending.set(s, left);
    return;
  }
  pending.delete(s);
  if (!stopped) send();
}

const receivers = [];
for (let i = 0; i < N; i++) {
  const ws = await open(SUB);
  ws.on('message', onMessage);
  receivers.push(ws);
}
pub = await open(PUB);
pub.on('message', () => {}); // its own copy of the broadcast
// Warm up for half a second, then measure.
for (let i = 0; i < INFLIGHT; i++) send();
await new Promise((r) => setTimeout(r, 500));
measuring = true;
const t0 = now();
await new Promise((r) => setTimeout(r, DURATION));
measuring = false;
const elapsed = (now() - t0) / 1e6;
stopped = true;
lat.sort((a, b) => a - b);
const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : 0);
const res = {
  receivers: N,
  size: SIZE,
  inflight: INFLIGHT,
  deliveries_per_s: Math.round(delivered / elapsed),
  messages_per_s: Math.round(delivered / elapsed / N),
  p50_us: q(0.5),
  p99_us: q(0.99),
  max_us: lat.length ? lat[lat.length - 1] : 0,
};
if (JSON_OUT) console.log(JSON.stringify(res));
else
  console.log(
    `${res.messages_per_s} msg/s x ${N} = ${res.deliveries_per_s} deliveries/s, ` +
      `latency p50 ${res.p50_us} us p99 ${res.p99_us} us max ${res.max_us} us`,
  );
for (const ws of receivers) ws.terminate();
pub.terminate();

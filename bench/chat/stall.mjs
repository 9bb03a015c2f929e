// Event-loop stalls of `duplex serve --chat` under a slow disk, driven by
// `bench/chat/stall_storm stall` (which preloads slowsync.c into the server).
//
// USERS users in direct pairs (t0↔t1, …) each send 1 message a second, one
// at a time: the next send waits for the previous ack (and for its second).
// Meanwhile, every 20 ms, three probes measure how long the server takes to
// answer something that needs no disk:
//   ping    a WebSocket ping frame → pong, on an idle chat connection;
//   typing  a `typing` notice → the partner's `typing` push. The server
//           pushes one per (user, conversation) per 1.5 s, so the probe
//           rotates over PAIRS pairs of its own (period PAIRS × 20 ms);
//   healthz GET /healthz on a kept-alive HTTP connection (a new one when
//           the previous request is still out).
// Prints one JSON object: p50/p99/max of acks and of each probe, and writes a
// per-100 ms timeline (probes bucketed by the time they were sent) to FILE.
//
// Users connect from 127.0.0.2, .3, … (100 per address): the server allows
// 300 connections a minute per client address.
//
// Usage: node stall.mjs URL [--users 200] [--seconds 20] [--pairs 150]
//        [--timeline stall-timeline.json] [--sync-ms N (only reported)]
import { createRequire } from 'node:module';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const root = process.env.DX_ROOT ?? path.resolve(import.meta.dirname, '../..');
const WebSocket = createRequire(path.join(root, 'package.json'))('ws');

const args = process.argv.slice(2);
const url = args[0];
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const USERS = Number(opt('users', 200)) & ~1, SECONDS = Number(opt('seconds', 20));
const PAIRS = Number(opt('pairs', 150)), TICK = 20, BUCKET = 100;
const TIMELINE = opt('timeline', 'stall-timeline.json');
const SYNC_MS = opt('sync-ms') === undefined ? null : Number(opt('sync-ms'));
const port = Number(new URL(url).port);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (line) => console.error(`stall: ${line}`);

let nextAddr = 0;
function open(uid, onMessage) {
  const local = `127.0.0.${2 + Math.floor(nextAddr++ / 100)}`;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}/chat?uid=${uid}`, { perMessageDeflate: false, localAddress: local });
    ws.on('message', (data) => {
      const text = data.toString();
      if (text === 'pong') return;
      const m = JSON.parse(text);
      if (m.type === 'welcome') resolve(ws);
      else onMessage(m);
    });
    ws.once('unexpected-response', (req, res) => reject(new Error(`${uid}: HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}
const conv = (a, b) => (a < b ? `d:${a}:${b}` : `d:${b}:${a}`);

// Samples: [sent (ms since start), latency ms] per kind.
const samples = { ack: [], ping: [], typing: [], healthz: [] };
const lost = { ping: 0, typing: 0, healthz: 0 };
let start = 0, measuring = false, sendErrors = 0;
const record = (kind, sent, ms) => {
  if (measuring && sent >= start) samples[kind].push([sent - start, ms]);
};

// The senders.
const users = [];
async function sender(i) {
  const uid = `t${i}`, peer = `t${i ^ 1}`;
  const waiting = new Map();
  const ws = await open(uid, (m) => {
    if (m.type === 'ack' || m.type === 'error') {
      const w = waiting.get(m.id);
      waiting.delete(m.id);
      w?.(m);
    }
  });
  users.push({ uid, ws });
  return async (until) => {
    let n = 0;
    await sleep(Math.random() * 1000); // spread the users over the second
    let next = performance.now();
    while (performance.now() < until) {
      const id = ++n, t0 = performance.now();
      const reply = new Promise((r) => waiting.set(id, r));
      ws.send(JSON.stringify({ v: 1, type: 'send', id, conv: conv(uid, peer), cid: `${uid}-${id}`, text: `message ${id} from ${uid}` }));
      const m = await reply;
      if (m.type === 'ack') record('ack', t0, performance.now() - t0);
      else sendErrors++;
      next += 1000;
      const now = performance.now();
      if (next > now) await sleep(next - now);
      else next = now;
    }
  };
}

// The typing probe's pairs: pa{k} notifies, pb{k} receives.
const typingOut = new Map(); // k → sent time
async function typingPair(k) {
  const a = `pa${k}`, b = `pb${k}`, c = conv(a, b);
  const wa = await open(a, () => {});
  const wb = await open(b, (m) => {
    if (m.type === 'typing' && m.uid === a) {
      const t0 = typingOut.get(k);
      if (t0 !== undefined) {
        typingOut.delete(k);
        record('typing', t0, performance.now() - t0);
      }
    }
  });
  // A direct conversation exists from its first message.
  await new Promise((resolve) => {
    wa.on('message', function once(data) {
      const m = JSON.parse(data);
      if (m.type === 'ack' && m.id === 'create') {
        wa.off('message', once);
        resolve();
      }
    });
    wa.send(JSON.stringify({ v: 1, type: 'send', id: 'create', conv: c, cid: `create-${k}`, text: 'probe' }));
  });
  return { wa, wb, c };
}

// GET /healthz; keeps idle sockets for the next probe.
const agent = new http.Agent({ keepAlive: true });
function healthz() {
  const t0 = performance.now();
  const req = http.get({ host: '127.0.0.1', port, path: '/healthz', agent, timeout: 10000 }, (res) => {
    res.resume();
    res.on('end', () => (res.statusCode === 200 ? record('healthz', t0, performance.now() - t0) : lost.healthz++));
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', () => lost.healthz++);
}

const t0 = performance.now();
const runs = [];
for (let i = 0; i < USERS; i += 50) {
  const batch = [];
  for (let j = i; j < Math.min(USERS, i + 50); j++) batch.push(sender(j));
  runs.push(...(await Promise.all(batch)));
}
const pairs = [];
for (let k = 0; k < PAIRS; k += 25) {
  const batch = [];
  for (let j = k; j < Math.min(PAIRS, k + 25); j++) batch.push(typingPair(j));
  pairs.push(...(await Promise.all(batch)));
}
const pinger = await open('probe-idle', () => {});
const pings = new Map(); // payload → sent time (a pong echoes its ping's payload)
pinger.on('pong', (data) => {
  const t = pings.get(data.toString());
  pings.delete(data.toString());
  if (t !== undefined) record('ping', t, performance.now() - t);
});
log(`${USERS} users and ${PAIRS} probe pairs connected in ${Math.round(performance.now() - t0)} ms`);
await sleep(1000);

start = performance.now();
measuring = true;
const until = start + SECONDS * 1000;
const senders = runs.map((run) => run(until));
let tick = 0;
const probes = (async () => {
  while (performance.now() < until) {
    const now = performance.now();
    pings.set(String(tick), now);
    pinger.ping(String(tick));
    const k = tick++ % PAIRS;
    if (typingOut.has(k)) lost.typing++; // its push never came in PAIRS ticks
    typingOut.set(k, now);
    pairs[k].wa.send(JSON.stringify({ v: 1, type: 'typing', conv: pairs[k].c }));
    healthz();
    const next = start + tick * TICK;
    await sleep(Math.max(0, next - performance.now()));
  }
})();
await Promise.all([...senders, probes]);
await sleep(1500); // the last probes' answers
measuring = false;
lost.ping = pings.size; // never answered

const stats = (kind) => {
  const v = samples[kind].map((s) => s[1]).sort((a, b) => a - b);
  const p = (q) => (v.length ? +v[Math.min(v.length - 1, Math.floor(v.length * q))].toFixed(1) : null);
  return { n: v.length, p50: p(0.5), p99: p(0.99), max: p(1), ...(kind in lost ? { lost: lost[kind] } : {}) };
};
const buckets = [];
for (const kind of Object.keys(samples)) {
  for (const [t, ms] of samples[kind]) {
    const b = Math.floor(t / BUCKET);
    buckets[b] ??= { t: b * BUCKET, acks: 0, ack_max: null, ping_max: null, typing_max: null, healthz_max: null };
    if (kind === 'ack') buckets[b].acks++;
    const key = `${kind}_max`;
    buckets[b][key] = Math.max(buckets[b][key] ?? 0, +ms.toFixed(1));
  }
}
const timeline = Array.from(buckets, (b, i) => b ?? { t: i * BUCKET, acks: 0, ack_max: null, ping_max: null, typing_max: null, healthz_max: null });
fs.writeFileSync(TIMELINE, JSON.stringify({ bucket_ms: BUCKET, tick_ms: TICK, sync_delay_ms: SYNC_MS, timeline }));
console.log(JSON.stringify({
  users: USERS, seconds: SECONDS, sync_delay_ms: SYNC_MS, probe_every_ms: TICK,
  ack_ms: stats('ack'), send_errors: sendErrors, acks_per_s: +(samples.ack.length / SECONDS).toFixed(1),
  ping_ms: stats('ping'), typing_ms: stats('typing'), healthz_ms: stats('healthz'),
  timeline: path.resolve(TIMELINE),
}));
for (const u of users) u.ws.terminate();
for (const p of pairs) { p.wa.terminate(); p.wb.terminate(); }
pinger.terminate();
process.exit(0);

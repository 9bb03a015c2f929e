// Chat benchmark: N simulated users on loopback against `duplex serve --chat`
// (docs/chat-protocol.md). Every ack is durable (the server sends it after
// the commit, fsync included). Prints one JSON object. Modes:
//   throughput (default)  each user in a direct conversation with a partner
//       (u0↔u1, ...) keeps WINDOW sends in flight for SECONDS: acked
//       messages/s, ack latency (send → ack), deliveries (send → deliver).
//   connect  all users connect at once; each syncs on `welcome`, following
//       `next` pages; time until every user has its first sync.
//   rate     each user sends 1 message/s to its partner, phases spread over
//       the second, for SECONDS: every send acked or not, latency, acks per
//       1 s window (--timeline: per 100 ms).
//   memory   each user in the lobby and 5 direct conversations (one message
//       to each partner, acks awaited), then idle: the server's RSS per user
//       (needs --server-pid).
// Several URLs (comma-separated: the nodes of a cluster) spread the users
// round-robin, so that partners sit on different nodes.
// Usage: node chat_bench.mjs URL[,URL...] [--mode M] [--users 1000]
//   [--seconds 10] [--window 1] [--settle S] [--procs P] [--server-pid PID[,PID]]
//   [--batch B] [--pending K] [--timeout S] [--timeline] [--rss-before KIB]
//   [--per-addr N] [--drain S]
import { createRequire } from 'node:module';
import { fork, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const root = process.env.DX_ROOT ?? path.resolve(import.meta.dirname, '../..');
const require = createRequire(path.join(root, 'package.json'));
const WebSocket = require('ws');

const args = process.argv.slice(2);
const urls = args[0].split(',');
const has = (name) => args.includes(`--${name}`);
const str = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const opt = (name, dflt) => Number(str(name, dflt));
const MODE = str('mode', 'throughput');
if (!['throughput', 'connect', 'rate', 'memory'].includes(MODE)) {
  console.error(`chat_bench: unknown --mode ${MODE}`);
  process.exit(2);
}
const USERS = opt('users', 1000), WINDOW = opt('window', 1), PROCS = opt('procs', 1);
const SECONDS = opt('seconds', MODE === 'rate' ? 20 : 10);
const SETTLE = opt('settle', MODE === 'memory' ? 2 : 0);
// Handshakes are started in batches (the next once the previous all have
// their welcome: throughput keeps its old 50) and at most PENDING at a time
// over all processes, below the server's accept backlog (1024) so that no
// SYN is dropped and retransmitted a second later.
const BATCH = opt('batch', MODE === 'throughput' ? 50 : USERS), PENDING = opt('pending', 512);
const TIMEOUT = opt('timeout', 0); // s for the connect phase; 0: none
const DRAIN = opt('drain', 10); // s to wait for the last acks in rate mode
const TIMELINE = has('timeline');
// The server allows 300 connections a minute per client address, so users
// connect from 127.1.x.y, PER_ADDR users per address (loopback only).
const PER_ADDR = opt('per-addr', 200);
const PIDS = (str('server-pid', '') || '').split(',').filter(Boolean);
const CHILD = str('child', null); // "lo:hi:index", set by the parent

const nowAbs = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
// Direct conversations name their two uids in byte order ("u10" < "u9").
const convOf = (a, b) => (`u${a}` < `u${b}` ? `d:u${a}:u${b}` : `d:u${b}:u${a}`);
const loopback = urls.every((u) => /^wss?:\/\/127\./.test(u));

// ---- one process's users -------------------------------------------------

function cpuSeconds() {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1e6;
}

// Partners of user i in memory mode: i±1, i±2 and i+N/2, so that each user
// is in exactly 5 direct conversations (each gets one message from each side).
function memPartners(i) {
  const n = USERS, s = new Set();
  for (const d of [1, 2, -1, -2]) s.add((i + d + n) % n);
  if (n % 2 === 0) s.add((i + n / 2) % n);
  s.delete(i);
  return [...s];
}

async function worker(lo, hi, ctl) {
  const users = [];
  const hs = { upgraded: 0, welcomed: 0, errors: 0, retries: 0, failed: 0, why: {} };
  const counts = {}; // pushes received, by type
  let lat = [], dlat = [], ackAt = [], acked = 0, delivered = 0, errors = 0, sent = 0;
  let running = false, onAllAcked = null, inflightTotal = 0, lastMsg = 0;
  const sentAt = new Map(); // cid → send time, for the delivery latency
  const errWhy = {};
  let t0 = 0; // abs ms: the start of the current phase

  function send(u, conv) {
    const id = ++u.n;
    const now = performance.now(), cid = `b${u.i}-${id}`;
    u.inflight.set(id, now);
    inflightTotal++;
    sent++;
    if (MODE === 'throughput') sentAt.set(cid, now);
    u.ws.send(JSON.stringify({ v: 1, type: 'send', id, conv: conv ?? u.conv, cid, text: `message ${id} from u${u.i} 你好` }));
  }

  function settleAck(u, id) {
    const t = u.inflight.get(id);
    if (t === undefined) return undefined;
    u.inflight.delete(id);
    inflightTotal--;
    if (inflightTotal === 0 && onAllAcked) onAllAcked();
    return t;
  }

  function onMessage(u, data) {
    // Presence and member pushes are O(n²) at connect time: count them
    // without parsing, so that the driver spends its CPU on what it measures.
    const head = data.toString('latin1', 0, Math.min(data.length, 48));
    const m = /"type":"([a-z_]+)"/.exec(head);
    const type = m ? m[1] : '?';
    lastMsg = performance.now();
    counts[type] = (counts[type] ?? 0) + 1;
    if (type === 'welcome') return u.onWelcome();
    if (type === 'sync') return u.onSync(JSON.parse(data));
    if (type === 'ack') {
      const msg = JSON.parse(data);
      const t = settleAck(u, msg.id);
      if (t === undefined) return;
      const now = performance.now();
      if (MODE === 'throughput') {
        if (!running) return;
        acked++;
        lat.push(now - t);
        send(u);
      } else {
        acked++;
        lat.push(now - t);
        ackAt.push(performance.timeOrigin + now - t0);
      }
    } else if (type === 'deliver') {
      delivered++;
      if (MODE !== 'throughput') return;
      const msg = JSON.parse(data);
      const t = sentAt.get(msg.msg.cid);
      if (t !== undefined) {
        sentAt.delete(msg.msg.cid);
        if (running) dlat.push(performance.now() - t);
      }
    } else if (type === 'error') {
      errors++;
      const msg = JSON.parse(data);
      errWhy[msg.code] = (errWhy[msg.code] ?? 0) + 1;
      if (msg.id !== undefined && msg.id !== 's') settleAck(u, msg.id);
    }
  }

  // Connects user i and syncs it (following `next`); resolves with the time
  // from its first attempt to its last sync page, or null when it failed.
  function connectUser(i, slot) {
    return new Promise((resolve) => {
      const u = { i, n: 0, inflight: new Map(), conv: convOf(i, i ^ 1) };
      const begin = performance.now();
      let tries = 0;
      const attempt = () => {
        tries++;
        const o = { perMessageDeflate: false, skipUTF8Validation: true, handshakeTimeout: 60000 };
        if (loopback) o.localAddress = `127.1.${Math.floor(i / PER_ADDR / 250)}.${(Math.floor(i / PER_ADDR) % 250) + 1}`;
        const ws = new WebSocket(`${urls[i % urls.length]}/chat?uid=u${i}`, o);
        u.ws = ws;
        let opened = false, done = false;
        ws.on('upgrade', () => { opened = true; hs.upgraded++; slot.release(); });
        ws.on('message', (data) => onMessage(u, data));
        u.onWelcome = () => (hs.welcomed++, ws.send(JSON.stringify({ v: 1, type: 'sync', id: 's' })));
        u.onSync = (m) => {
          if (m.next) return ws.send(JSON.stringify({ v: 1, type: 'sync', id: 's', after: m.next }));
          if (done) return;
          done = true;
          // Counted as they come, so that a run cut by --timeout says how far it got.
          users.push(u);
          perUser.push(performance.now() - begin);
          resolve();
        };
        ws.on('error', (e) => {
          if (opened || done) return;
          hs.errors++;
          const why = String(e.message ?? e).replace(/\d+\.\d+\.\d+\.\d+:\d+/g, 'ADDR');
          hs.why[why] = (hs.why[why] ?? 0) + 1;
          slot.release();
          if (tries >= 5) { hs.failed++; done = true; return resolve(); }
          hs.retries++;
          setTimeout(() => slot.take().then(attempt), 250 * tries);
        });
        ws.on('close', (code) => {
          if (!opened || done) return;
          // The server closed it before its first sync (1008: a slow consumer).
          done = true;
          hs.failed++;
          hs.why[`closed ${code}`] = (hs.why[`closed ${code}`] ?? 0) + 1;
          resolve();
        });
      };
      slot.take().then(attempt);
    });
  }

  // A counting semaphore for pending handshakes.
  function slots(n) {
    let free = n;
    const waiting = [];
    return {
      take: () => (free > 0 ? (free--, Promise.resolve()) : new Promise((r) => waiting.push(r))),
      release: () => (waiting.length ? waiting.shift()() : free++),
    };
  }

  // ---- connect (every mode) ----
  const go = await ctl('loaded', { lo, hi });
  await sleep(go.start - nowAbs());
  t0 = go.start;
  const slot = slots(Math.max(1, Math.ceil(PENDING / PROCS)));
  const perUser = [];
  let finished = true;
  const connectAll = (async () => {
    for (let i = lo; i < hi; i += BATCH) {
      const batch = [];
      for (let j = i; j < Math.min(hi, i + BATCH); j++) batch.push(connectUser(j, slot));
      await Promise.all(batch);
    }
  })();
  if (TIMEOUT > 0) {
    finished = await Promise.race([connectAll.then(() => true), sleep(go.start + TIMEOUT * 1000 - nowAbs()).then(() => false)]);
  } else await connectAll;
  const connected = { finished, done_at: nowAbs(), per_user: perUser, ok: users.length, hs, cpu: cpuSeconds() };
  const next = await ctl('connected', connected);
  if (next.stop) return finish();

  // ---- the measured phase ----
  await sleep(next.start - nowAbs());
  t0 = next.start;
  lat = []; ackAt = [];
  const res = {};
  if (MODE === 'throughput') {
    running = true;
    for (const u of users) for (let w = 0; w < WINDOW; w++) send(u);
    await sleep(SECONDS * 1000);
    running = false;
  } else if (MODE === 'rate') {
    // Each user's k-th message is due at start + phase + k s, its phase
    // spread evenly over the second by its global index; a 2 ms tick sends
    // what is due, and `lag` is how late the driver sent it.
    const order = users.map((u) => ({ u, phase: (u.i * 1000) / USERS })).sort((a, b) => a.phase - b.phase);
    const lag = [];
    let k = 0, idx = 0;
    await new Promise((resolve) => {
      const tick = () => {
        const now = nowAbs() - t0;
        while (k < SECONDS) {
          if (idx === order.length) { idx = 0; k++; continue; }
          const due = k * 1000 + order[idx].phase;
          if (due > now) break;
          lag.push(now - due);
          send(order[idx].u);
          idx++;
        }
        if (k >= SECONDS) return resolve();
        setTimeout(tick, 2);
      };
      tick();
    });
    if (inflightTotal > 0) {
      await Promise.race([new Promise((r) => (onAllAcked = r)), sleep(DRAIN * 1000)]);
    }
    res.lag = lag;
  } else if (MODE === 'memory') {
    for (const u of users) for (const p of memPartners(u.i)) send(u, convOf(u.i, p));
    if (inflightTotal > 0) {
      await Promise.race([new Promise((r) => (onAllAcked = r)), sleep(60000)]);
    }
    // Idle means the arrivals' presence pushes have drained too: no message
    // for a second (at most 60 s), or the server's queues count as users.
    const q0 = performance.now();
    while (performance.now() - lastMsg < 1000 && performance.now() - q0 < 60000) await sleep(100);
    res.quiet_wait_s = +((performance.now() - q0) / 1000).toFixed(2);
  }
  Object.assign(res, {
    lat, ack_at: ackAt, dlat, acked, sent, delivered, errors, err_why: errWhy,
    unacked: inflightTotal, counts, cpu: cpuSeconds(),
  });
  await ctl('done', res);
  return finish();

  function finish() {
    for (const u of users) u.ws.terminate();
  }
}

// ---- the parent: aggregates what the processes report ----------------------

const CLK_TCK = (() => {
  try { return Number(execFileSync('getconf', ['CLK_TCK']).toString()) || 100; } catch { return 100; }
})();
function serverCpu() {
  if (!PIDS.length) return null;
  let s = 0;
  for (const pid of PIDS) {
    try {
      // utime and stime, after the ")" that ends the command name.
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      s += (Number(f[11]) + Number(f[12])) / CLK_TCK;
    } catch { return null; }
  }
  return s;
}
function serverRss(field = 'VmRSS') {
  if (!PIDS.length) return null;
  let s = 0;
  for (const pid of PIDS) {
    try {
      s += Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
    } catch { return null; }
  }
  return s;
}

const sortNum = (a) => Float64Array.from(a).sort();
const pctOf = (a, p) => (a.length ? +a[Math.min(a.length - 1, Math.floor(a.length * p))].toFixed(2) : null);
const pcts = (a) => ({ p50: pctOf(a, 0.5), p90: pctOf(a, 0.9), p99: pctOf(a, 0.99), max: pctOf(a, 1) });
const sum = (rs, k) => rs.reduce((s, r) => s + r[k], 0);
const r3 = (x) => (x == null ? null : +x.toFixed(3));

function coordinator() {
  const phases = {};
  let runStart = 0, connectStart = 0, cpu0 = null, cpuRun = null, connected = null, rssBefore = null;
  const out = { mode: MODE, users: USERS, procs: PROCS, nodes: urls.length };
  const reply = {
    loaded() {
      rssBefore = str('rss-before', null) != null ? Number(str('rss-before')) : serverRss();
      cpu0 = serverCpu();
      connectStart = nowAbs() + 100;
      return { start: connectStart };
    },
    connected(rs) {
      connected = rs;
      const per = sortNum(rs.flatMap((r) => r.per_user));
      const ok = sum(rs, 'ok');
      const hs = { upgraded: 0, welcomed: 0, errors: 0, retries: 0, failed: 0, why: {} };
      for (const r of rs) {
        for (const k of ['upgraded', 'welcomed', 'errors', 'retries', 'failed']) hs[k] += r.hs[k];
        for (const [w, n] of Object.entries(r.hs.why)) hs.why[w] = (hs.why[w] ?? 0) + n;
      }
      const finished = rs.every((r) => r.finished) && ok === USERS;
      Object.assign(out, {
        batch: BATCH, pending: PENDING, connected: ok,
        connect_ms: finished ? Math.round(rs.reduce((m, r) => Math.max(m, r.done_at), 0) - connectStart) : null,
        connect_user_ms: pcts(per), handshake: hs,
      });
      if (!finished) out.did_not_finish = `${ok} of ${USERS} users synced in ${TIMEOUT || '∞'} s`;
      if (MODE === 'connect' || !finished) {
        out.connect_server_cpu_s = r3(serverCpu() - cpu0);
        return { stop: true };
      }
      cpuRun = serverCpu();
      runStart = nowAbs() + SETTLE * 1000 + 100;
      return { start: runStart };
    },
    done(rs) {
      const runEnd = nowAbs();
      const lat = sortNum(rs.flatMap((r) => r.lat));
      const acked = sum(rs, 'acked'), sent = sum(rs, 'sent');
      const counts = {}, errWhy = {};
      for (const r of rs) {
        for (const [k, n] of Object.entries(r.counts)) counts[k] = (counts[k] ?? 0) + n;
        for (const [k, n] of Object.entries(r.err_why)) errWhy[k] = (errWhy[k] ?? 0) + n;
      }
      Object.assign(out, { sent, acked, unacked: sum(rs, 'unacked'), errors: sum(rs, 'errors') });
      if (Object.keys(errWhy).length) out.error_codes = errWhy;
      out.ack_ms = pcts(lat);
      out.run_server_cpu_s = r3(serverCpu() - cpuRun);
      out.received = counts;
      if (MODE === 'throughput') {
        const seconds = SECONDS; // each process measured SECONDS from one start
        Object.assign(out, {
          window: WINDOW, seconds, msgs_per_s: Math.round(acked / seconds), delivered: sum(rs, 'delivered'),
          deliver_ms: pcts(sortNum(rs.flatMap((r) => r.dlat))),
        });
      } else if (MODE === 'rate') {
        const at = rs.flatMap((r) => r.ack_at);
        const lats = rs.flatMap((r) => r.lat);
        const last = at.reduce((m, t) => Math.max(m, t), SECONDS * 1000);
        const nwin = Math.ceil(last / 1000);
        const win = new Array(nwin).fill(0);
        for (const t of at) win[Math.min(nwin - 1, Math.floor(t / 1000))]++;
        const full = win.slice(0, SECONDS);
        Object.assign(out, {
          seconds: SECONDS, rate_per_user: 1, delivered: sum(rs, 'delivered'),
          send_lag_ms: pcts(sortNum(rs.flatMap((r) => r.lag))),
          acks_per_s: { min: Math.min(...full), max: Math.max(...full), zero_windows: win.filter((n) => n === 0).length, windows: win },
        });
        if (TIMELINE) {
          const n = Math.ceil(last / 100);
          const buckets = Array.from({ length: n }, () => []);
          for (let j = 0; j < at.length; j++) buckets[Math.min(n - 1, Math.floor(at[j] / 100))].push(lats[j]);
          out.timeline = {
            bucket_ms: 100,
            acks: buckets.map((b) => b.length),
            p99_ms: buckets.map((b) => pctOf(sortNum(b), 0.99)),
          };
        }
      }
      out.run_s = r3((runEnd - runStart) / 1000);
      return { later: true };
    },
  };
  return async function arrive(name, rs) {
    const r = reply[name](rs);
    if (name === 'done' && MODE === 'memory') {
      // Idle for SETTLE seconds, then the server's resident memory.
      await sleep(SETTLE * 1000);
      const after = serverRss();
      const quiet = Math.max(...rs.map((x) => x.quiet_wait_s));
      Object.assign(out, { quiet_wait_s: quiet, settle_s: SETTLE, rss_before_kib: rssBefore, rss_after_kib: after, rss_peak_kib: serverRss('VmHWM') });
      out.kib_per_user = after != null && rssBefore != null ? +((after - rssBefore) / USERS).toFixed(1) : null;
    }
    if (name === 'done' || r.stop) {
      out.driver_cpu_s = {
        total: r3(rs.reduce((s, x) => s + x.cpu, 0) + (PROCS > 1 ? cpuSeconds() : 0)),
        procs: rs.map((x) => r3(x.cpu)),
      };
      if (PROCS > 1) out.driver_cpu_s.parent = r3(cpuSeconds());
      const s = serverCpu();
      out.server_cpu_s = s == null ? null : r3(s);
      console.log(JSON.stringify(out));
    }
    return r;
  };
}

// Ranges of users per process, on even bounds so that partners (i, i^1)
// share a process and the delivery latency can be measured.
function ranges() {
  const per = Math.ceil(USERS / PROCS / 2) * 2, rs = [];
  for (let p = 0; p < PROCS; p++) rs.push([Math.min(USERS, p * per), Math.min(USERS, (p + 1) * per)]);
  return rs;
}

if (CHILD) {
  const [lo, hi] = CHILD.split(':').map(Number);
  const waiting = {};
  process.on('message', (m) => waiting[m.phase]?.(m.reply));
  const ctl = (phase, payload) => new Promise((r) => {
    waiting[phase] = r;
    process.send({ phase, payload });
  });
  await worker(lo, hi, ctl);
  process.exit(0);
} else {
  const arrive = coordinator();
  if (PROCS === 1) {
    await worker(0, USERS, async (phase, payload) => arrive(phase, [payload]));
    process.exit(0);
  }
  const rs = ranges();
  const kids = rs.map(([lo, hi], k) => fork(process.argv[1], [...args, '--child', `${lo}:${hi}:${k}`], { stdio: 'inherit' }));
  const got = {};
  kids.forEach((kid, k) => {
    kid.on('message', async ({ phase, payload }) => {
      (got[phase] ??= [])[k] = payload;
      if (Object.keys(got[phase]).length !== kids.length) return;
      const reply = await arrive(phase, got[phase]);
      for (const c of kids) c.send({ phase, reply });
    });
    kid.on('exit', (code) => { if (code) { console.error(`chat_bench: process ${k} exited with ${code}`); process.exit(1); } });
  });
  await Promise.all(kids.map((c) => new Promise((r) => c.on('exit', r))));
  process.exit(0);
}

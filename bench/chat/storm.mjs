// Reconnection storm against `duplex serve --chat` (docs/chat-protocol.md),
// driven by `bench/chat/stall_storm storm` and, as a test, by
// tests/interop/chat_storm.mjs.
//
// N users in direct pairs (s0↔s1, s2↔s3, …) connect, sync, each send K
// messages to its partner and keep the acks (cid → seq), then INFLIGHT more
// that are not waited for. Then the script writes CTL/ready and the runner
// kills the server with SIGKILL and starts it again at once on the same
// database and port, writing the restart time (Unix ms) to CTL/restart.
// Every client reconnects the moment its socket closes, with no jitter (the
// storm); a connection that fails is retried after 100 ms. On `welcome` the
// client syncs with its `since` positions (the last seq it holds without a
// gap), pages through `next`, syncs again while a conversation says `more`,
// and resends, with the same cid, the sends whose ack it never got (unless the
// sync showed them stored). Meanwhile GET /healthz is polled every 50 ms
// (from a worker thread, so that the clients do not delay it).
// Last, `history` of each direct conversation must hold every acked cid
// exactly once, at the seq of its ack, and nothing else.
//
// The report's `timeline` follows the storm per BUCKET ms (100) from the
// restart (t = 0) to the last user settled: users back (cumulative: their
// first welcome), open (sockets open at the bucket's end), synced and
// settled (cumulative), the acks received in the bucket and their p99
// (send or resend → ack), and the /healthz polls sent in it (slowest answer,
// failures). `node chart.mjs` draws it.
//
// Users connect from 127.0.0.2, .3, … (100 users per address): the server
// allows 300 connections a minute per client address, and what is measured
// here is many devices, not one address.
//
// Usage: node storm.mjs URL --ctl DIR [--users 2000] [--k 3] [--inflight 1]
//   [--timeout 120] [--bucket 100] [--procs 1]
// --procs P splits the users over P driver processes (forked, each with its
// own event loop; partners in the same one): at 10,000 users one process
// takes seconds to see the 10,000 closes and open the new sockets, so it,
// not the server, sets the pace. /healthz and the timeline stay in this one.
// Prints one JSON object (the figures and the verification) on stdout,
// progress on stderr; exits 1 when the verification found a problem.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { fork } from 'node:child_process';

const root = process.env.DX_ROOT ?? path.resolve(import.meta.dirname, '../..');
const WebSocket = createRequire(path.join(root, 'package.json'))('ws');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (a, p) => {
  if (!a.length) return null;
  const s = [...a].sort((x, y) => x - y);
  return +s[Math.min(s.length - 1, Math.floor(s.length * p))].toFixed(1);
};
const USERS_PER_ADDRESS = 100;
const RETRY_MS = 100;
const HANDSHAKE_MS = 10000;

// One user, one device. held: conv → Set of seqs the client holds (acks,
// deliveries, sync); acked: cid → seq; pending: cid → text, sent but not acked.
class User {
  constructor(i, s) {
    this.i = i;
    this.s = s;
    this.uid = `s${i}`;
    const p = `s${i ^ 1}`;
    this.conv = i % 2 ? `d:${p}:${this.uid}` : `d:${this.uid}:${p}`;
    this.local = `127.0.0.${2 + Math.floor(i / USERS_PER_ADDRESS)}`;
    this.held = new Map();
    this.acked = new Map();
    this.pending = new Map();
    this.sentAt = new Map(); // cid → Date.now() of its last send, for the timeline
    this.waiters = new Map(); // request id → resolve
    this.nextId = 1;
    this.ws = null;
  }

  hold(conv, seq) {
    let set = this.held.get(conv);
    if (!set) this.held.set(conv, (set = new Set()));
    set.add(seq);
  }

  // The last seq held with none missing before it: what `since` says.
  since() {
    const out = {};
    for (const [conv, set] of this.held) {
      let n = 0;
      while (set.has(n + 1)) n++;
      if (n) out[conv] = n;
    }
    return out;
  }

  // Opens one connection; resolves on `welcome`, rejects on any failure
  // before it (counted by kind by the caller).
  open() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${this.s.url}/chat?uid=${this.uid}`, {
        perMessageDeflate: false, localAddress: this.local, handshakeTimeout: HANDSHAKE_MS,
      });
      let settled = false;
      const fail = (kind, e) => {
        if (settled) return;
        settled = true;
        ws.removeAllListeners('close');
        ws.on('error', () => {});
        ws.terminate();
        reject(Object.assign(new Error(e), { kind }));
      };
      ws.once('unexpected-response', (req, res) => fail(`http${res.statusCode}`, `HTTP ${res.statusCode}`));
      ws.once('error', (e) => fail(e.code === 'ECONNREFUSED' ? 'refused' : e.message.includes('timed out') ? 'timeout' : (e.code ?? 'error'), e.message));
      ws.once('close', (code) => fail('closed', `closed ${code} before welcome`));
      ws.on('message', (data) => {
        // Presence and lobby pushes are counted, not parsed: there are
        // O(users²) of them, and the driver shares the CPU with the server.
        const head = data.subarray(0, 24).toString();
        if (head === '{"v":1,"type":"presence"' || head === '{"v":1,"type":"members",') {
          this.s.stats.pushes[this.s.phase === 'setup' ? 'setup' : 'storm']++;
          return;
        }
        const m = JSON.parse(data);
        if (m.type === 'welcome' && !settled) {
          settled = true;
          ws.removeAllListeners('close');
          ws.on('error', (e) => (this.lastError = e.message));
          ws.on('close', (code, why) => this.onClose(ws, code, why));
          this.ws = ws;
          resolve();
          return;
        }
        this.onMessage(m);
      });
    });
  }

  onMessage(m) {
    if (m.id !== undefined && this.waiters.has(m.id)) {
      const w = this.waiters.get(m.id);
      this.waiters.delete(m.id);
      w(m);
    }
    if (m.type === 'ack') {
      this.acked.set(m.cid, m.seq);
      this.pending.delete(m.cid);
      this.hold(m.conv, m.seq);
      if (this.s.phase === 'storm') {
        this.s.stats.acksAfterRestart++;
        const now = Date.now();
        this.s.trace.acks.push([now, now - (this.sentAt.get(m.cid) ?? now)]);
      }
    } else if (m.type === 'deliver') {
      this.hold(m.msg.conv, m.msg.seq);
    } else if (m.type === 'error' && m.id === undefined) {
      this.s.stats.errors.push(m);
    }
  }

  ask(body) {
    return new Promise((resolve, reject) => {
      const id = `r${this.nextId++}`;
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        reject(new Error(`${this.uid}: no reply to ${body.type} within ${this.s.askMs / 1000} s`));
      }, this.s.askMs);
      this.waiters.set(id, (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      this.ws.send(JSON.stringify({ v: 1, id, ...body }));
    });
  }

  // sync until every page is in (`next`) and no conversation says `more`.
  async syncAll() {
    for (let round = 0; round < 1000; round++) {
      const since = this.since();
      let after, more = false;
      for (;;) {
        const r = await this.ask({ type: 'sync', since, ...(after ? { after } : {}) });
        if (r.type === 'closed') throw new Error(`${this.uid}: closed during sync`);
        if (r.type === 'error') {
          if (r.code !== 'rate_limited') throw new Error(`${this.uid}: sync: ${JSON.stringify(r)}`);
          this.s.stats.syncRateLimited++;
          await sleep(Math.max(10, (r.retry_after ?? 0.1) * 1000));
          continue;
        }
        this.s.stats.syncPages++;
        for (const c of r.convs) {
          for (const msg of c.msgs ?? []) {
            this.hold(c.conv, msg.seq);
            // Our own message, stored though its ack was lost: sent.
            if (msg.from === this.uid && this.pending.has(msg.cid)) {
              this.pending.delete(msg.cid);
              this.acked.set(msg.cid, msg.seq);
              this.s.stats.learnedFromSync++;
            }
          }
          if (c.more) more = true;
        }
        if (!r.next) break;
        after = r.next;
      }
      if (!more) return;
    }
    throw new Error(`${this.uid}: sync never ended`);
  }

  send(cid, text) {
    this.pending.set(cid, text);
    if (!this.ws) return; // reconnecting: resent after the sync
    this.sentAt.set(cid, Date.now());
    this.ws.send(JSON.stringify({ v: 1, type: 'send', id: `c:${cid}`, conv: this.conv, cid, text }));
  }

  // The server went away: reconnect at once, then every 100 ms until a
  // welcome; then sync and resend what was never acked.
  onClose(ws, code, why) {
    if (ws !== this.ws) return;
    {
      const key = `${this.s.phase === 'setup' ? 'setup: ' : ''}${code} ${why} ${this.lastError ?? ''}`.trim();
      this.lastError = undefined;
      if (this.s.phase === 'setup') this.s.log(`${this.uid} closed before the kill: ${key}`);
      this.s.stats.closes[key] = (this.s.stats.closes[key] ?? 0) + 1;
    }
    if (this.s.phase === 'done') {
      for (const w of this.waiters.values()) w({ type: 'closed' });
      this.waiters.clear();
      return;
    }
    this.ws = null;
    for (const w of this.waiters.values()) w({ type: 'closed' });
    this.waiters.clear();
    this.s.onDown(this);
    this.reconnect().catch((e) => this.s.fatal(e));
  }

  async reconnect() {
    for (;;) {
      try {
        await this.open();
        break;
      } catch (e) {
        this.s.stats.fail[e.kind] = (this.s.stats.fail[e.kind] ?? 0) + 1;
        await sleep(RETRY_MS);
      }
    }
    const ws = this.ws;
    this.s.onBack(this);
    try {
      await this.syncAll();
      this.s.onSynced(this);
      for (const [cid, text] of this.pending) {
        this.s.stats.resent++;
        this.send(cid, text);
      }
      while (this.pending.size && this.ws === ws) await sleep(20);
      if (this.ws === ws) this.s.onSettled(this);
    } catch (e) {
      // A second drop while syncing: onClose has started the next round.
      if (this.ws === ws) throw e;
    }
  }
}

// GET /healthz every 50 ms on a fresh connection each, in a worker thread:
// the main thread's event loop is busy with thousands of sockets during the
// storm and would delay both the polls and their answers. From an address of
// its own: not 127.0.0.1:PORT, which the restarted server binds (an outgoing
// socket could hold that pair for a moment). Posts [{sent (Unix ms), ms,
// status | error}] once told to stop and its last requests are answered.
const HEALTHZ_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const out = [];
let open = 0, stopping = false, timer;
const finish = () => { if (stopping && !open) parentPort.postMessage(out); };
const poll = () => {
  const sent = Date.now(), t0 = performance.now();
  open++;
  const done = (r) => { out.push({ sent, ms: performance.now() - t0, ...r }); open--; finish(); };
  const req = http.get({ host: '127.0.0.1', port: workerData.port, path: '/healthz', agent: false,
    timeout: 10000, localAddress: '127.0.0.250' }, (res) => {
    res.resume();
    res.on('end', () => done({ status: res.statusCode }));
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (e) => done({ error: e.code || e.message }));
};
parentPort.on('message', () => { stopping = true; clearInterval(timer); finish(); });
poll();
timer = setInterval(poll, 50);
`;

async function waitFile(file, ms) {
  const end = Date.now() + ms;
  while (!fs.existsSync(file)) {
    if (Date.now() > end) throw new Error(`${file} did not appear within ${ms} ms`);
    await sleep(5);
  }
  return fs.readFileSync(file, 'utf8').trim();
}

async function pool(items, width, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

// One part of the storm: users [from, to) (partners in the same part) go
// through setup, storm and verification. hooks.primed() is awaited once the
// K sends are acked, before the in-flight ones (so that all parts send those
// just before the kill), hooks.armed() is called once the part waits for
// the kill, hooks.stormDone(outcome) once its users are all
// settled (or the timeout passed), before the verification. Returns the
// part's counts, times (Unix ms) and trace, which report() merges.
async function runPart({ url, from, to, k, inflight, log, stormTimeoutMs, hooks }) {
  const users = to - from;
  const s = {
    url, phase: 'setup', log, askMs: stormTimeoutMs,
    stats: { pushes: { setup: 0, storm: 0 }, closes: {}, fail: {}, errors: [], syncPages: 0, syncRateLimited: 0, learnedFromSync: 0, resent: 0, acksAfterRestart: 0 },
    // Date.now() of each event from the kill on, for the timeline: every
    // welcome (open) and close, each user's first welcome (back), sync and
    // settling; acks as [time, ms since the send].
    trace: { open: [], close: [], back: [], synced: [], settled: [], acks: [] },
  };
  const all = Array.from({ length: users }, (_, i) => new User(from + i, s));
  const partner = (u) => all[(u.i ^ 1) - from];

  // Progress of the storm; a drop before it (setup) is only counted.
  let down = 0, back = 0, synced = 0, settled = 0, firstDown = 0, firstBack = 0, allBack = 0,
    allSynced = 0, allSettled = 0;
  let finish;
  const finished = new Promise((r) => (finish = r));
  let unackedAtKill = 0;
  let setupDrops = 0;
  s.onDown = (u) => {
    if (s.phase === 'setup') {
      setupDrops++;
      return;
    }
    down++;
    if (down <= users) unackedAtKill += u.pending.size;
    if (s.phase === 'armed') {
      s.phase = 'storm';
      firstDown = Date.now();
    }
    s.trace.close.push(Date.now());
  };
  const fatal = [];
  s.fatal = (e) => {
    fatal.push(e.message);
    log(`client error: ${e.message}`);
  };
  s.onBack = (u) => {
    if (s.phase !== 'storm') return;
    s.trace.open.push(Date.now());
    if (u.wasBack) return;
    u.wasBack = true;
    back++;
    s.trace.back.push(Date.now());
    if (!firstBack) firstBack = Date.now();
    if (back === users) allBack = Date.now();
  };
  s.onSynced = (u) => {
    if (s.phase !== 'storm' || u.wasSynced) return;
    u.wasSynced = true;
    s.trace.synced.push(Date.now());
    if (++synced === users) allSynced = Date.now();
  };
  s.onSettled = (u) => {
    if (s.phase !== 'storm' || u.wasSettled) return;
    u.wasSettled = true;
    s.trace.settled.push(Date.now());
    if (++settled === users) {
      allSettled = Date.now();
      finish();
    }
  };
  // 1. Connect (200 at a time), sync, K acked sends each, INFLIGHT more.
  const t0 = performance.now();
  await pool(all, 200, async (u) => {
    for (let tries = 0; ; tries++) {
      try {
        await u.open();
        break;
      } catch (e) {
        if (tries > 50) throw new Error(`${u.uid}: cannot connect: ${e.message}`);
        await sleep(RETRY_MS);
      }
    }
  });
  const connectMs = performance.now() - t0;
  log(`connected ${users} users in ${Math.round(connectMs)} ms`);
  // A user dropped meanwhile syncs again on its own (reconnect).
  await pool(all, 200, (u) => u.syncAll().catch((e) => {
    if (!e.message.endsWith('closed during sync')) throw e;
  }));
  const t1 = performance.now();
  // A socket that drops here resends its pending sends itself (reconnect).
  for (const u of all) for (let j = 0; j < k; j++) u.send(`m-${u.uid}-${j}`, `message ${j} from ${u.uid}`);
  for (const end = performance.now() + 120000; all.some((u) => u.pending.size);) {
    if (performance.now() > end) throw new Error('the acks before the kill did not all come within 120 s');
    await sleep(10);
  }
  const sendMs = performance.now() - t1;
  const ackedBeforeKill = all.reduce((n, u) => n + u.acked.size, 0);
  log(`${ackedBeforeKill} acks in ${Math.round(sendMs)} ms; ${inflight} in flight per user, then kill -9`);
  await hooks.primed();
  for (const u of all) for (let j = 0; j < inflight; j++) u.send(`f-${u.uid}-${j}`, `in flight ${j} from ${u.uid}`);

  // 2. The storm: the runner kills and restarts the server.
  s.phase = 'armed';
  hooks.armed();
  const timeout = sleep(stormTimeoutMs).then(() => 'timeout');
  const outcome = await Promise.race([finished.then(() => 'ok'), timeout]);
  const stormEnd = Date.now();
  await hooks.stormDone(outcome);
  s.phase = 'done';
  log(`storm ${outcome}: back ${back}/${users}, synced ${synced}, settled ${settled}`);

  // 3. Verify each direct conversation through history.
  const verify = { convs: 0, acked: 0, lost: 0, duplicates: 0, wrong_seq: 0, extra: 0, gaps: 0, unacked: 0, problems: [] };
  const problem = (p) => verify.problems.length < 10 && verify.problems.push(p);
  if (outcome === 'ok') try {
    await pool(all.filter((u) => u.i % 2 === 0), 100, async (u) => {
      const msgs = [];
      let before;
      for (;;) {
        const r = await u.ask({ type: 'history', conv: u.conv, limit: 100, ...(before ? { before } : {}) });
        if (r.type === 'error' && r.code === 'rate_limited') {
          await sleep(Math.max(10, (r.retry_after ?? 0.1) * 1000));
          continue;
        }
        if (r.type === 'closed') throw new Error(`${u.uid}: closed during the verification`);
        if (r.type !== 'history') throw new Error(`${u.uid}: history got ${JSON.stringify(r).slice(0, 200)}`);
        msgs.unshift(...r.msgs);
        if (!r.more) break;
        before = r.msgs[0].seq;
      }
      verify.convs++;
      const seen = new Map();
      for (const m of msgs) {
        const key = `${m.from}\0${m.cid}`;
        seen.set(key, [...(seen.get(key) ?? []), m.seq]);
      }
      msgs.forEach((m, j) => {
        if (m.seq !== j + 1) {
          verify.gaps++;
          problem(`${u.conv}: seq ${m.seq} at position ${j + 1}`);
        }
      });
      let expected = 0;
      for (const v of [u, partner(u)]) {
        verify.unacked += v.pending.size;
        for (const [cid, seq] of v.acked) {
          expected++;
          verify.acked++;
          const at = seen.get(`${v.uid}\0${cid}`) ?? [];
          if (!at.length) {
            verify.lost++;
            problem(`${u.conv}: ${v.uid}'s ${cid} (acked seq ${seq}) missing`);
          } else if (at.length > 1) {
            verify.duplicates += at.length - 1;
            problem(`${u.conv}: ${v.uid}'s ${cid} stored ${at.length} times (seqs ${at})`);
          } else if (at[0] !== seq) {
            verify.wrong_seq++;
            problem(`${u.conv}: ${v.uid}'s ${cid} at seq ${at[0]}, acked as ${seq}`);
          }
        }
        // Everything the client now holds of its conversation, without a gap.
        const held = v.held.get(v.conv) ?? new Set();
        for (let q = 1; q <= msgs.length; q++) {
          if (!held.has(q)) {
            verify.gaps++;
            problem(`${v.uid} lacks seq ${q} of ${v.conv} after the sync`);
            break;
          }
        }
      }
      if (msgs.length !== expected) {
        verify.extra += msgs.length - expected;
        problem(`${u.conv}: ${msgs.length} messages stored, ${expected} acked`);
      }
    });
  } catch (e) {
    verify.error = e.message;
  }
  for (const u of all) u.ws?.terminate();

  return {
    outcome, users, connectMs, sendMs, ackedBeforeKill, unackedAtKill, setupDrops,
    dropsAfterRestart: down - users, stormEnd,
    times: { firstDown, firstBack, allBack, allSynced, allSettled },
    stats: { ...s.stats, errors: s.stats.errors.length }, fatal, verify, trace: s.trace,
  };
}

// Sums a list of objects of counts (nested objects too); arrays are joined.
function sum(objs) {
  const out = {};
  for (const o of objs) {
    for (const [key, v] of Object.entries(o)) {
      if (Array.isArray(v)) out[key] = [...(out[key] ?? []), ...v];
      else if (v && typeof v === 'object') out[key] = sum([out[key] ?? {}, v]);
      else if (typeof v === 'number') out[key] = (out[key] ?? 0) + v;
      else out[key] ??= v;
    }
  }
  return out;
}

// The report (see the head of this file) from the parts' results, the
// /healthz polls and the restart time (Unix ms).
function report(parts, polls, restart, { k, inflight, bucketMs }) {
  const users = parts.reduce((n, p) => n + p.users, 0);
  const first = (key) => Math.min(...parts.map((p) => p.times[key] || Infinity));
  // The last of an event that every part saw; 0 if one did not.
  const last = (key) => (parts.every((p) => p.times[key]) ? Math.max(...parts.map((p) => p.times[key])) : 0);
  const allSettled = last('allSettled');
  const since = (t) => (t && t !== Infinity ? t - restart : null);
  const stats = sum(parts.map((p) => p.stats));
  const verify = sum(parts.map((p) => p.verify));
  verify.problems = verify.problems.slice(0, 10);
  const errors = parts.map((p) => p.verify.error).filter(Boolean);
  if (errors.length) verify.error = errors.join('; ');
  const trace = sum(parts.map((p) => p.trace));
  const health = polls.filter((h) => h.sent >= restart);
  const answered = health.filter((h) => h.status === 200);
  const during = answered.filter((h) => h.sent <= (allSettled || Infinity));
  const kinds = Object.values(stats.fail).reduce((n, c) => n + c, 0);
  return {
    outcome: parts.every((p) => p.outcome === 'ok') ? 'ok' : 'timeout', users, k, inflight,
    driver_processes: parts.length,
    connect_ms: Math.round(Math.max(...parts.map((p) => p.connectMs))),
    send_ms: Math.round(Math.max(...parts.map((p) => p.sendMs))),
    acked_before_kill: parts.reduce((n, p) => n + p.ackedBeforeKill, 0),
    unacked_at_kill: parts.reduce((n, p) => n + p.unackedAtKill, 0),
    restart_ms: {
      note: 'from the runner starting the new server (Unix ms in CTL/restart)',
      first_close_seen: since(first('firstDown')), first_back: since(first('firstBack')),
      all_back: since(last('allBack')), all_synced: since(last('allSynced')), all_settled: since(allSettled),
    },
    handshake_failures: kinds, failures_by_kind: stats.fail,
    drops_before_kill: parts.reduce((n, p) => n + p.setupDrops, 0),
    drops_after_restart: parts.reduce((n, p) => n + p.dropsAfterRestart, 0), closes: stats.closes,
    client_errors: parts.flatMap((p) => p.fatal).slice(0, 5),
    sync_pages: stats.syncPages, sync_rate_limited: stats.syncRateLimited,
    resent: stats.resent, learned_from_sync: stats.learnedFromSync,
    acks_after_restart: stats.acksAfterRestart,
    push_errors: stats.errors, presence_and_members_pushes: stats.pushes,
    healthz: {
      polls: health.length, answered: answered.length, answered_during_storm: during.length,
      failed: health.length - answered.length,
      failures: [...new Set(health.filter((h) => h.status !== 200).map((h) => h.error ?? `HTTP ${h.status}`))],
      p50_ms: pct(answered.map((h) => h.ms), 0.5), max_ms: pct(answered.map((h) => h.ms), 1),
    },
    verify,
    timeline: stormTimeline(trace, polls, {
      users, bucketMs, from: restart, to: allSettled || Math.max(...parts.map((p) => p.stormEnd)),
    }),
  };
}

// Runs the whole storm; returns the report (see the head of this file).
// opts: url, ctl (the directory shared with the runner), users (even), k,
// inflight, log (progress lines), stormTimeoutMs, bucketMs (the timeline's),
// procs: the users split over that many driver processes (child processes of
// this one, each its own event loop; partners in the same one), which all
// wait for the kill before CTL/ready is written. /healthz is polled from here.
export async function storm({ url, ctl, users = 2000, k = 3, inflight = 1, log = () => {},
  stormTimeoutMs = 90000, bucketMs = 100, procs = 1 }) {
  if (users % 2) users++;
  procs = Math.max(1, Math.min(procs, users / 2));
  const port = Number(new URL(url).port);
  let poller;
  // /healthz every 50 ms from the moment every part waits for the kill; the
  // polls sent from the restart on count.
  const armed = () => {
    fs.writeFileSync(path.join(ctl, 'ready'), `${Date.now()}\n`);
    poller = new Worker(HEALTHZ_WORKER, { eval: true, workerData: { port } });
  };
  const stopPolls = async () => {
    const polled = new Promise((r) => poller.once('message', r));
    poller.postMessage('stop');
    const polls = await polled;
    await poller.terminate();
    return polls;
  };
  const opts = { url, k, inflight, log, stormTimeoutMs };
  let parts, polls;
  if (procs === 1) {
    const part = await runPart({
      ...opts, from: 0, to: users,
      hooks: { primed: async () => {}, armed, stormDone: async () => void (polls = await stopPolls()) },
    });
    parts = [part];
  } else {
    // Part i: users [bounds[i], bounds[i+1]), even bounds. Each child says
    // `primed` and, once all have, is told to `go` (send the in-flight ones);
    // then it says `armed`, then `stormDone`; once all have, polls stop and
    // they verify.
    const bounds = Array.from({ length: procs + 1 }, (_, i) => 2 * Math.floor((i * users) / procs / 2));
    const children = bounds.slice(0, -1).map((lo, i) => fork(fileURLToPath(import.meta.url), [url, '--part',
      `${lo},${bounds[i + 1]}`, '--k', `${k}`, '--inflight', `${inflight}`, '--timeout', `${stormTimeoutMs / 1000}`],
    { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }));
    const fromEach = (type) => Promise.all(children.map((c) => new Promise((resolve, reject) => {
      const onMessage = (m) => m.type === type && (c.off('message', onMessage), c.off('exit', onExit), resolve(m));
      const onExit = (code) => reject(new Error(`driver process ${c.pid} exited (${code}) before '${type}'`));
      c.on('message', onMessage);
      c.once('exit', onExit);
    })));
    await fromEach('primed');
    const allArmed = fromEach('armed');
    for (const c of children) c.send({ type: 'go' });
    await allArmed;
    armed();
    await fromEach('stormDone');
    polls = await stopPolls();
    const results = fromEach('result');
    for (const c of children) c.send({ type: 'verify' });
    parts = (await results).map((m) => m.part);
  }
  const restart = Number(await waitFile(path.join(ctl, 'restart'), 5000));
  return report(parts, polls, restart, { k, inflight, bucketMs });
}

// A driver process of storm({procs}): runs its part, telling the parent.
async function partProcess(url, range, opt) {
  const [from, to] = range.split(',').map(Number);
  process.on('disconnect', () => process.exit(1)); // the parent is gone: no reconnecting forever
  const message = (type) => new Promise((r) => process.on('message', (m) => m.type === type && r(m)));
  const go = message('go'), verify = message('verify');
  const part = await runPart({
    url, from, to, k: Number(opt('k', 3)), inflight: Number(opt('inflight', 1)),
    stormTimeoutMs: Number(opt('timeout', 120)) * 1000,
    log: (line) => console.error(`storm [${from}, ${to}): ${line}`),
    hooks: {
      primed: async () => {
        process.send({ type: 'primed' });
        await go;
      },
      armed: () => process.send({ type: 'armed' }),
      stormDone: async (outcome) => {
        process.send({ type: 'stormDone', outcome });
        await verify;
      },
    },
  });
  process.send({ type: 'result', part }, () => process.exit(0));
}

// The storm per bucket from `from` (the restart) to `to` (the last user
// settled, or the timeout): one array per figure, index i = the bucket
// [from + i·bucketMs, from + (i+1)·bucketMs). Users back, synced and settled
// are cumulative at the bucket's end; open = users − closes + welcomes up to
// then (every user is open at the kill); acks and /healthz polls are those of
// the bucket (polls by the time they were sent), null where it has none.
function stormTimeline(trace, polls, { users, bucketMs, from, to }) {
  const n = Math.max(1, Math.ceil((to - from) / bucketMs) + 1);
  const ends = Array.from({ length: n }, (_, i) => from + (i + 1) * bucketMs);
  const upTo = (times) => {
    const sorted = [...times].sort((a, b) => a - b);
    let j = 0;
    return ends.map((end) => {
      while (j < sorted.length && sorted[j] < end) j++;
      return j;
    });
  };
  const perBucket = (items, time) => {
    const out = Array.from({ length: n }, () => []);
    for (const it of items) {
      const i = Math.floor((time(it) - from) / bucketMs);
      if (i >= 0 && i < n) out[i].push(it);
    }
    return out;
  };
  const opened = upTo(trace.open), closed = upTo(trace.close);
  const acks = perBucket(trace.acks, ([t]) => t);
  const healthz = perBucket(polls, (h) => h.sent);
  const ok = healthz.map((b) => b.filter((h) => h.status === 200).map((h) => h.ms));
  return {
    bucket_ms: bucketMs,
    note: 't = bucket start in ms from the restart; back/open/synced/settled: users at the bucket end; acks, healthz: of the bucket',
    users,
    t: ends.map((end) => end - bucketMs - from),
    back: upTo(trace.back),
    open: opened.map((o, i) => users - closed[i] + o),
    synced: upTo(trace.synced),
    settled: upTo(trace.settled),
    acks: acks.map((b) => b.length),
    ack_p99_ms: acks.map((b) => pct(b.map(([, ms]) => ms), 0.99)),
    healthz_polls: healthz.map((b) => b.length),
    healthz_max_ms: ok.map((ms) => (ms.length ? +Math.max(...ms).toFixed(1) : null)),
    healthz_failed: healthz.map((b, i) => b.length - ok[i].length),
  };
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : dflt;
  };
  if (opt('part')) {
    await partProcess(args[0], opt('part'), opt);
    await new Promise(() => {}); // exits once the result is sent
  }
  const r = await storm({
    url: args[0], ctl: opt('ctl'), users: Number(opt('users', 2000)), k: Number(opt('k', 3)),
    inflight: Number(opt('inflight', 1)), stormTimeoutMs: Number(opt('timeout', 120)) * 1000,
    bucketMs: Number(opt('bucket', 100)), procs: Number(opt('procs', 1)),
    log: (line) => console.error(`storm: ${line}`),
  });
  console.log(JSON.stringify(r));
  const v = r.verify;
  process.exit(r.outcome === 'ok' && !v.lost && !v.duplicates && !v.wrong_seq && !v.extra && !v.gaps && !v.error ? 0 : 1);
}

// A chat cluster under failure, from Node's `ws` (driven by
// test_chat_cluster.sh): three `duplex serve --chat` nodes sharing one
// PostgreSQL and one Redis. Usage:
//   node chat_cluster.mjs URL0 URL1 URL2   (env: KILL_PID the pid of node 2,
//   TERM_PID the pid of node 1, REDIS_PORT, TTL_S the --presence-ttl)
// 1. users on different nodes chat: every delivery exactly once, each
//    sender's messages in order, seqs gap-free; presence across nodes
//    (a user with tabs on two nodes is online until both are gone);
// 2. node 2 is SIGKILLed while everyone sends: its users reconnect to the
//    other nodes, resend what was not acked (same cid) and resync from the
//    last seq they hold; a user that does not come back goes offline for
//    the others within the TTL, and its Redis presence key expires;
// 3. Redis is SIGKILLed (the test's supervisor restarts it) while everyone
//    sends: acks go on (PostgreSQL holds the truth), /healthz says degraded,
//    then the nodes recover by themselves;
// 4. node 1 is shut down (SIGTERM, 1001) while everyone sends: its users
//    move to node 0, the last one standing;
// finally every user's copy of every conversation is 1..last_seq, holds
// every message acked to anyone, and each cid once.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import http from 'node:http';
import path from 'node:path';

const root = process.env.DX_ROOT ?? path.resolve(import.meta.dirname, '../..');
const require = createRequire(path.join(root, 'package.json'));
const WebSocket = require('ws');

const urls = process.argv.slice(2, 5);
const KILL_PID = Number(process.env.KILL_PID);
const TERM_PID = Number(process.env.TERM_PID);
const REDIS_PORT = process.env.REDIS_PORT;
const TTL_S = Number(process.env.TTL_S ?? 2);
let failed = 0;
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failed++;
  return ok;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, fn, ms = 15000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return check(true, what);
    await sleep(50);
  }
  return check(false, `${what} (not within ${ms} ms)`);
}

const directOf = (a, b) => (a < b ? `d:${a}:${b}` : `d:${b}:${a}`);

// A user's device: one socket at a time, to urls[home] first and then to
// the next node whenever the socket goes (unless `stay`: then it does not
// come back). It keeps its copy of each conversation (seq → message), the
// sends not yet acked (resent with the same cid after a reconnection), and
// counts deliveries per (conv, seq) to see duplicates.
class User {
  constructor(uid, home, convs, { stay = false } = {}) {
    Object.assign(this, { uid, at: home, convs, stay });
    this.have = new Map(convs.map((c) => [c, new Map()]));
    this.delivered = new Map(); // "conv:seq" → count
    this.order = []; // [conv, from, seq] of every deliver, in arrival order
    this.unacked = new Map(); // cid → {conv, cid, text, resolve}
    this.waiting = new Map(); // request id → resolve
    this.presence = new Map(); // uid → online, from pushes
    this.n = 0;
    this.nid = 0;
    this.reconnects = 0;
    this.resyncs = 0;
    this.syncing = 0; // sync() calls in progress
    this.closing = false;
  }
  contiguous(conv) {
    const h = this.have.get(conv);
    let s = 0;
    while (h.has(s + 1)) s++;
    return s;
  }
  keep(m) {
    if (!this.have.has(m.conv)) this.have.set(m.conv, new Map());
    const h = this.have.get(m.conv);
    const old = h.get(m.seq);
    if (old && old.cid !== m.cid) check(false, `${this.uid}: ${m.conv} seq ${m.seq} is ${old.cid} and ${m.cid}`);
    h.set(m.seq, { cid: m.cid, from: m.from, text: m.text });
  }
  connect() {
    return new Promise((resolve) => {
      const ws = new WebSocket(`${urls[this.at]}/chat?uid=${this.uid}`, { perMessageDeflate: false });
      this.ws = ws;
      let opened = false;
      ws.on('message', (data) => this.onMessage(JSON.parse(data.toString()), resolve));
      ws.on('error', () => {});
      ws.on('open', () => { opened = true; });
      ws.on('close', () => {
        this.ws = null;
        if (this.closing || this.stay) return;
        // Another node, after a short pause: the next in the list.
        this.at = (this.at + 1) % urls.length;
        if (opened) this.reconnects++;
        setTimeout(() => this.connect().then(resolve), 100);
      });
    });
  }
  async onMessage(m, ready) {
    if (m.id !== undefined && this.waiting.has(m.id)) {
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      w(m);
      return;
    }
    if (m.type === 'welcome') {
      // Resync from the last seq held, then resend what was not acked.
      await this.sync();
      for (const u of this.unacked.values()) this.push(u);
      ready();
    } else if (m.type === 'deliver') {
      const k = `${m.msg.conv}:${m.msg.seq}`;
      this.delivered.set(k, (this.delivered.get(k) ?? 0) + 1);
      this.order.push([m.msg.conv, m.msg.from, m.msg.seq]);
      this.keep(m.msg);
      // A hole: wait a little (another node's message may be on its way),
      // then sync.
      if (m.msg.seq > this.contiguous(m.msg.conv) + 1 && !this.gapTimer)
        this.gapTimer = setTimeout(() => { this.gapTimer = null; this.sync().catch(() => {}); }, 300);
    } else if (m.type === 'presence') {
      for (const u of m.users) this.presence.set(u.uid, u.online);
    } else if (m.type === 'resync') {
      this.resyncs++;
      this.sync().catch(() => {});
    }
  }
  ask(body, ms = 20000) {
    const id = `r${++this.nid}`;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { this.waiting.delete(id); reject(new Error(`${this.uid}: no reply to ${body.type}`)); }, ms);
      this.waiting.set(id, (m) => { clearTimeout(t); resolve(m); });
      if (!this.ws || this.ws.readyState !== 1) return; // the timeout answers
      this.ws.send(JSON.stringify({ v: 1, id, ...body }));
    });
  }
  async sync() {
    this.syncing++;
    try {
      return await this.syncRounds();
    } finally {
      this.syncing--;
    }
  }
  async syncRounds() {
    for (;;) {
      const since = {};
      for (const c of this.have.keys()) since[c] = this.contiguous(c);
      const r = await this.ask({ type: 'sync', since });
      if (r.type !== 'sync') throw new Error(`${this.uid}: sync → ${JSON.stringify(r)}`);
      let more = false;
      for (const c of r.convs) {
        if (!this.have.has(c.conv)) {
          this.have.set(c.conv, new Map());
          more = true; // ask again from 0 for this one
        }
        for (const m of c.msgs) this.keep(m);
        this.lastSeq = { ...this.lastSeq, [c.conv]: c.last_seq };
        more ||= c.more;
      }
      if (!more) return r;
    }
  }
  push(u) {
    if (this.ws && this.ws.readyState === 1)
      this.ws.send(JSON.stringify({ v: 1, type: 'send', id: u.cid, conv: u.conv, cid: u.cid, text: u.text }));
  }
  // Sends and waits for the ack, across reconnections.
  send(conv, cid = `${this.uid}-${++this.n}`) {
    const u = { conv, cid, text: `${cid} → ${conv} 你好` };
    this.unacked.set(cid, u);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.uid}: no ack for ${cid}`)), 30000);
      this.waiting.set(cid, (m) => {
        clearTimeout(t);
        if (m.type !== 'ack') return reject(new Error(`${this.uid}: ${cid} → ${JSON.stringify(m)}`));
        this.unacked.delete(cid);
        this.keep({ conv, seq: m.seq, cid, from: this.uid, text: u.text });
        acked.push({ conv, seq: m.seq, cid, text: u.text });
        resolve(m);
      });
      this.push(u);
    });
  }
  close() {
    this.closing = true;
    if (this.ws) this.ws.close(1000);
  }
}

const acked = [];
const healthz = (url) => new Promise((resolve) => {
  const u = new URL(url.replace(/^ws/, 'http'));
  const req = http.get({ host: u.hostname, port: u.port, path: '/healthz', timeout: 3000 }, (res) => {
    res.resume();
    resolve(res.statusCode);
  });
  req.on('error', () => resolve(0));
  req.on('timeout', () => { req.destroy(); resolve(0); });
});
const redis = (...args) => execFileSync('redis-cli', ['-p', REDIS_PORT, ...args], { encoding: 'utf8' }).trim();

// Six users, two per node; each talks in the lobby and directly with the
// user "across" (u0-u1, u2-u3, u4-u5: always on different nodes).
const N = 6;
const uids = Array.from({ length: N }, (_, i) => `u${i}`);
const partner = (i) => i ^ 1;
const users = uids.map((uid, i) => new User(uid, i % 3, ['g:lobby', directOf(uid, uids[partner(i)])]));
const everyone = async (fn) => Promise.all(users.map(fn));

// ---- 1. steady state -------------------------------------------------------
await everyone((u) => u.connect());
const ghost = new User('ghost', 2, ['g:lobby'], { stay: true }); // on node 2, never back
await ghost.connect();
const watcher = users[0]; // on node 0
await until('u0 on node 0 sees the users of nodes 0, 1 and 2 online (presence across nodes)', async () => {
  const r = await watcher.ask({ type: 'presence', uids: [...uids, 'ghost'] });
  return r.users.every((x) => x.online);
});

const K = 8;
await everyone(async (u, i) => {
  for (let k = 0; k < K; k++) {
    await u.send('g:lobby');
    await u.send(directOf(u.uid, uids[partner(i)]));
  }
});
const total1 = N * K;
await until('every lobby and direct message delivered to every other member', async () =>
  users.every((u) => u.delivered.size === total1 - K + K));
let dupes = 0, disorder = 0;
for (const u of users) {
  for (const c of u.delivered.values()) if (c !== 1) dupes++;
  const last = new Map();
  for (const [conv, from, seq] of u.order) {
    const k = `${conv}/${from}`;
    if ((last.get(k) ?? 0) >= seq) disorder++;
    last.set(k, seq);
  }
}
check(dupes === 0, `cross-node deliveries exactly once (${users.reduce((n, u) => n + u.delivered.size, 0)} deliveries, ${dupes} duplicated)`);
check(disorder === 0, `each sender's messages arrive in seq order at every device (${disorder} out of order)`);
check(users.every((u) => u.contiguous('g:lobby') === total1), `every user holds lobby seqs 1..${total1}, gap-free`);
check(users.every((u, i) => u.contiguous(directOf(u.uid, uids[partner(i)])) === 2 * K), `direct conversations across nodes: seqs 1..${2 * K} on both sides, gap-free`);

// Two tabs of u3 (node 0) on two nodes: online until both are gone.
const tab2 = new User('u3', 2, ['g:lobby'], { stay: true });
await tab2.connect();
const u4 = users[4]; // on node 1
const online = async (uid) => (await u4.ask({ type: 'presence', uids: [uid] })).users[0].online;
users[3].closing = true;
users[3].ws.close(1000);
await sleep(500);
check(await online('u3'), 'u3 closed its tab on node 0 and is still online (a tab on node 2)');
tab2.ws.close(1000);
await until('u3 offline for node 1 once both tabs are gone', async () => !(await online('u3')));
users[3].closing = false;
await users[3].connect();
await until('u3 back online', async () => online('u3'));

// The same cid sent at the same moment by two devices of u0 on two nodes
// (a client that failed over and resent before its first ack): stored once,
// both devices get the same seq, and only one seq is used up.
const twin = new User('u0', 1, ['g:lobby'], { stay: true });
await twin.connect();
const R = 10;
let same = 0, dups = 0;
for (let k = 0; k < R; k++) {
  const [a, b] = await Promise.all([users[0].send('g:lobby', `race-${k}`), twin.send('g:lobby', `race-${k}`)]);
  if (a.seq === b.seq && a.mid === b.mid) same++;
  if (!!a.dup !== !!b.dup) dups++;
}
check(same === R && dups === R, `a cid sent at once on two nodes: stored once, the other answered dup (${same}/${R} same seq, ${dups}/${R} one dup)`);
twin.close();

// The ghost becomes u0's contact (a direct conversation; sharing the lobby
// makes nobody one), so that u0 is told when it goes (section 2).
await ghost.send(directOf('ghost', 'u0'));

// ---- 2. SIGKILL node 2 while everyone sends --------------------------------
const K2 = 10;
let killed = false;
const sending = everyone(async (u, i) => {
  for (let k = 0; k < K2; k++) {
    await u.send(k % 2 ? 'g:lobby' : directOf(u.uid, uids[partner(i)]));
    if (k === 3 && i === 0 && !killed) {
      killed = true;
      process.kill(KILL_PID, 'SIGKILL');
    }
  }
});
await sending;
check(killed, 'node 2 was killed with SIGKILL mid-stream');
// A user may have finished its sends before the kill reached it.
await until('its users (u2, u5) reconnected to the other nodes', async () =>
  [users[2], users[5]].every((u) => u.reconnects >= 1 && u.at !== 2 && u.ws && u.ws.readyState === 1));
check(users.every((u) => u.unacked.size === 0), 'every send of the stream was acked (resends after the failover included)');
const t0 = Date.now();
await until(`the ghost (left on node 2) goes offline for node 0 within the TTL (${TTL_S} s)`,
  async () => watcher.presence.get('ghost') === false, (TTL_S * 2 + 8) * 1000);
console.log(`     (the push reached u0 ${Date.now() - t0} ms after the kill)`);
check(!(await watcher.ask({ type: 'presence', uids: ['ghost'] })).users[0].online, 'presence query: ghost offline');
await until('its presence key expired in Redis', async () => redis('--scan', '--pattern', '*presence:ghost:*') === '');

// ---- 3. Redis killed (restarted by the supervisor) while everyone sends -----
const pid = Number(/process_id:(\d+)/.exec(redis('info', 'server'))[1]);
process.kill(pid, 'SIGKILL');
let sawDegraded = false;
const watch = (async () => {
  for (let i = 0; i < 100 && !sawDegraded; i++) {
    if ((await healthz(urls[0])) === 503) sawDegraded = true;
    await sleep(20);
  }
})();
const K3 = 6;
await everyone(async (u, i) => {
  for (let k = 0; k < K3; k++) await u.send(k % 2 ? 'g:lobby' : directOf(u.uid, uids[partner(i)]));
});
check(true, 'every send was acked while Redis was away (PostgreSQL holds the truth)');
await watch;
check(sawDegraded, '/healthz of node 0 said 503 while Redis was down');
// One more while Redis is still away, where no later delivery shows the
// hole to its recipient: u1 (node 1) to u0 (node 0), then nobody sends.
// First u0's syncs for the holes it saw so far (started 300 ms after the
// hole) must be over, or one of them could fetch it.
await until('u0 has no sync pending or planned', async () =>
  !users[0].gapTimer && users[0].syncing === 0, 5000);
await users[1].send(directOf('u0', 'u1'));
check((await healthz(urls[1])) === 503, "u1's last message went out while node 1 had no Redis");
await until('both surviving nodes report Redis up again on /healthz', async () =>
  (await healthz(urls[0])) === 200 && (await healthz(urls[1])) === 200, 30000);
// Pushes across nodes were lost meanwhile (not queued). Most holes show at
// the next local delivery, but not u1's last message: without any new
// message, the nodes' "resync" push makes every device fetch what it
// missed (otherwise u0 would wait for its next reconnection).
const maxAcked = (conv) => acked.reduce((m, a) => (a.conv === conv && a.seq > m ? a.seq : m), 0);
await until('every device holds every message of the outage, without a new message (resync push)', async () =>
  users.every((u) => u.convs.every((c) => u.contiguous(c) === maxAcked(c))), 10000);
check(users.every((u) => u.resyncs > 0), 'every device was told to resync when Redis came back');
// After the outage: new messages flow across nodes again, and each device
// fills the hole left by the outage from the store.
await everyone(async (u) => { await u.send('g:lobby'); });
const lobby3 = N * K + R + N * K2 / 2 + N * K3 / 2 + N;
await until('every user caught up with the lobby after the outage', async () =>
  users.every((u) => u.contiguous('g:lobby') === lobby3), 20000);
await until('presence is consistent again: u0 sees everyone online', async () =>
  (await watcher.ask({ type: 'presence', uids })).users.every((x) => x.online), 20000);

// ---- 4. node 1 shut down (SIGTERM: 1001 to its clients) while everyone sends
const before = users.map((u) => u.reconnects);
const K4 = 6;
await everyone(async (u, i) => {
  for (let k = 0; k < K4; k++) {
    await u.send(k % 2 ? 'g:lobby' : directOf(u.uid, uids[partner(i)]));
    if (k === 2 && i === 0) process.kill(TERM_PID, 'SIGTERM');
  }
});
check(true, 'every send acked across the shutdown of node 1');
// A user may have finished its sends before the shutdown reached it.
await until('node 1 shut down: its users moved to node 0', async () =>
  users.every((u) => u.at === 0 && u.ws && u.ws.readyState === 1) &&
  users.filter((u, i) => u.reconnects > before[i]).length >= 2);
await everyone(async (u) => { await u.send('g:lobby'); });
const lobbyTotal = N * K + R + N * K2 / 2 + N * K3 / 2 + N + N * K4 / 2 + N;
await until('every user caught up with the lobby on the last node', async () =>
  users.every((u) => u.contiguous('g:lobby') === lobbyTotal), 20000);
await until('all six users online for u0, all on node 0', async () =>
  (await watcher.ask({ type: 'presence', uids })).users.every((x) => x.online), 20000);

// ---- the truth --------------------------------------------------------------
for (const u of users) await u.sync();
let lost = 0, holes = 0, twice = 0;
for (const u of users) {
  for (const [conv, h] of u.have) {
    const last = u.lastSeq?.[conv] ?? 0;
    if (u.contiguous(conv) !== last || h.size !== last) holes++;
    const cids = new Set([...h.values()].map((m) => m.cid));
    if (cids.size !== h.size) twice++;
  }
  for (const a of acked) {
    if (!u.have.has(a.conv)) continue;
    const m = u.have.get(a.conv).get(a.seq);
    if (!m || m.cid !== a.cid || m.text !== a.text) lost++;
  }
}
check(acked.length > 0 && lost === 0, `nothing acked is lost: ${acked.length} acks, every one held by every member (${lost} missing)`);
check(holes === 0, `every copy of every conversation is 1..last_seq (${holes} with holes)`);
check(twice === 0, `each cid stored once (${twice} conversations with a cid twice)`);
check(users.every((u) => u.have.get('g:lobby').size === lobbyTotal), `the lobby holds exactly the ${lobbyTotal} messages sent, on every device`);
console.log(`acked ${acked.length} messages; reconnections ${users.map((u) => u.reconnects).join(',')}`);

for (const u of [...users, ghost]) u.close();
await sleep(100);
console.log(failed ? `${failed} check(s) failed` : 'all checks passed');
process.exit(failed ? 1 : 0);

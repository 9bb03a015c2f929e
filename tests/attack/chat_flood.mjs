// A flood of typing and read requests from one user of a 200-member room,
// and a reconnect loop, against `duplex serve --chat` (issue 16, items 4
// and 8). Usage: node chat_flood.mjs PORT SERVER_PID RSS_MAX_KB
// The members do not read while the flood lasts (a backgrounded tab, a
// phone in a tunnel): what the server queues for them must stay small, and
// none of them may be closed. Prints one line per check; exits 0 when all
// passed.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const root = process.env.DX_ROOT ?? path.resolve(import.meta.dirname, '../..');
const WebSocket = createRequire(path.join(root, 'package.json'))('ws');
const [port, pid, rssMax] = process.argv.slice(2).map(Number);
const base = `ws://127.0.0.1:${port}/chat`;
const MEMBERS = 200, MESSAGES = 50, FLOOD = 30000;
let failed = 0;
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failed++;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const vm = (field) => Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`${field}:\\s+(\\d+)`))[1]);

// Opens uid's device; resolves {ws, got, closed} once welcomed, or rejects
// with the HTTP status (and Retry-After) of a refused upgrade.
function open(uid) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base}?uid=${uid}`);
    const d = { ws, uid, got: [], closed: null };
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      d.got.push(m);
      if (m.type === 'welcome') resolve(d);
    });
    ws.on('close', (code) => (d.closed = code));
    ws.once('unexpected-response', (req, res) =>
      reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, retry: res.headers['retry-after'] })));
    ws.once('error', reject);
  });
}
const until = async (pred, ms) => {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) if (pred()) return true;
  return pred();
};
const typingsOf = (d, uid) => d.got.filter((m) => m.type === 'typing' && m.uid === uid).length;

// ---- item 4: the flood ----
const members = [];
const tStart = Date.now();
for (let i = 0; i < MEMBERS; i++) members.push(await open(`m${String(i).padStart(3, '0')}`));
const flood = await open('flood'), flood2 = await open('flood');
// Says something after the flood. Not the flooder: its own stream may be
// cut (refused requests get errors, and a flooder that does not read them
// is a slow consumer like any other) — that is between it and the server.
const poster = await open('poster');
const ask = (d, body) => d.ws.send(JSON.stringify({ v: 1, ...body }));
for (let i = 1; i <= MESSAGES; i++) ask(flood, { type: 'send', conv: 'g:lobby', cid: `c${i}`, text: `message ${i}` });
check(await until(() => flood.got.filter((m) => m.type === 'ack').length === MESSAGES, 20000), `${MESSAGES} messages acked`);
check(await until(() => members.every((d) => d.got.some((m) => m.type === 'deliver' && m.msg.seq === MESSAGES)), 20000),
  'every member has them');
const rssBefore = vm('VmRSS');
for (const d of members) d.ws._socket.pause();
const t0 = Date.now();
for (let i = 0; i < FLOOD; i++) {
  ask(flood, { type: 'typing', conv: 'g:lobby' });
  ask(flood, { type: 'read', conv: 'g:lobby', seq: 1 + (i % MESSAGES) });
}
await until(() => flood.ws.bufferedAmount === 0, 60000);
await sleep(1500); // the server works through what it read
const secs = (Date.now() - t0) / 1000;
for (const d of members) d.ws._socket.resume();
// A real message after the flood: it must reach every member.
ask(poster, { type: 'send', conv: 'g:lobby', cid: 'after', text: 'after the flood' });
const all = await until(() => members.every((d) => d.closed !== null || d.got.some((m) => m.type === 'deliver' && m.msg.cid === 'after')), 60000);
const dropped = members.filter((d) => d.closed !== null).length;
check(all && dropped === 0, `no member dropped (${dropped} of ${MEMBERS} closed: ${[...new Set(members.map((d) => d.closed))]}; the flooder: ${flood.closed ?? 'open'})`);
const maxTyping = Math.max(...members.map((d) => typingsOf(d, 'flood')));
check(maxTyping >= 1 && maxTyping <= 2 + Math.ceil(secs / 1.5), `typing coalesced: at most ${maxTyping} pushes per member for ${FLOOD} requests in ${secs.toFixed(1)} s`);
const maxReads = Math.max(...members.map((d) => d.got.filter((m) => m.type === 'read').length));
check(maxReads <= MESSAGES + 1, `read receipts coalesced: at most ${maxReads} per member for ${FLOOD} reads`);
check(typingsOf(flood, 'flood') + typingsOf(flood2, 'flood') === 0, "the sender's devices never get their own typing");
const hwm = vm('VmHWM');
check(hwm <= rssMax, `server peak RSS ${(hwm / 1024).toFixed(1)} MiB (before the flood ${(rssBefore / 1024).toFixed(1)}) <= ${(rssMax / 1024).toFixed(0)} MiB`);

// ---- item 8: churn ----
// One uid reconnecting in a loop: 30 a minute pass, then 429 + Retry-After.
const watcher = members[0];
const presBefore = watcher.got.filter((m) => m.type === 'presence').length;
let ok = 0, refused = null;
const tChurn = Date.now();
for (let i = 0; i < 40 && !refused; i++) {
  try {
    const d = await open('churn');
    ok++;
    d.ws.close(1000);
    await until(() => d.closed !== null, 5000);
  } catch (e) {
    refused = e;
  }
}
// 30 at once, and one more each 2 s the loop took.
const churnMax = 30 + Math.floor((Date.now() - tChurn) / 2000);
check(ok >= 30 && ok <= churnMax && refused?.status === 429 && Number(refused.retry) >= 1,
  `reconnect loop: ${ok} connections, then ${refused?.message} Retry-After ${refused?.retry}`);
await sleep(300);
const pres = watcher.got.filter((m) => m.type === 'presence').length - presBefore;
check(pres <= 2 * ok, `a lobby member got ${pres} presence pushes from ${ok} reconnections`);
// One address: 300 a minute in all (the members, the flooder and the loop
// count too).
let more = 0, ipRefused = null;
for (let i = 0; i < 400 && !ipRefused; i++) {
  try {
    const d = await open(`ip${i}`);
    more++;
    d.ws.close(1000);
  } catch (e) {
    ipRefused = e;
  }
}
const total = MEMBERS + 3 + ok + 1 + more; // the refused churn attempt took an address token too
// 300 at once, and one more each 200 ms since the first.
const ipMax = 300 + Math.floor((Date.now() - tStart) / 200);
check(ipRefused?.status === 429 && total >= 300 && total <= ipMax,
  `one address: ${total} upgrades (at most ${ipMax} allowed), then ${ipRefused?.message}`);
for (const d of [...members, flood, flood2, poster]) d.ws.close(1000);
await sleep(200);
process.exit(failed ? 1 : 0);

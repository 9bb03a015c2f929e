// Issue 16, items 3 and 7, over real sockets against `duplex serve --chat`.
// Usage: node chat_limits.mjs PORT DB_FILE flood|rooms
//   flood  one user on two devices sends 4000-byte messages as fast as it
//          can: at most the burst is stored (the database grows by about
//          256 KiB, not by megabytes), the rest is refused with
//          rate_limited + retry_after, shared by both devices, while
//          another user is served; joins are limited too.
//   rooms  (server started with --max-rooms 3 --sync-page 2): a join past
//          the cap is too_many_rooms, and sync comes in pages (next/after).
// Prints one line per check; exits 0 when all passed.
import { statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const root = process.env.DX_ROOT ?? path.resolve(import.meta.dirname, '../..');
const WebSocket = createRequire(path.join(root, 'package.json'))('ws');
const [port, db, phase] = process.argv.slice(2);
let failed = 0;
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failed++;
};
const size = (f) => {
  try {
    return statSync(f).size;
  } catch {
    return 0;
  }
};
const dbBytes = () => size(db) + size(`${db}-wal`);

// A device: ask() sends a request with an id and resolves with its reply.
function open(uid) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/chat?uid=${uid}`, { perMessageDeflate: false });
    const d = { ws, pending: new Map(), next: 1 };
    d.ask = (req) =>
      new Promise((res) => {
        const id = d.next++;
        d.pending.set(id, res);
        ws.send(JSON.stringify({ v: 1, id, ...req }));
      });
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      if (m.type === 'welcome') resolve(d);
      const res = m.id !== undefined && d.pending.get(m.id);
      if (res) {
        d.pending.delete(m.id);
        res(m);
      }
    });
    ws.once('error', reject);
  });
}

const tally = (replies, code) => ({
  ok: replies.filter((r) => r.type !== 'error').length,
  refused: replies.filter((r) => r.code === code),
});

async function flood() {
  const a1 = await open('mallory'), a2 = await open('mallory'), bob = await open('bob');
  const before = dbBytes();
  const text = 'x'.repeat(4000);
  const t0 = Date.now();
  const asks = [];
  for (let i = 0; i < 3000; i++)
    asks.push((i % 2 ? a2 : a1).ask({ type: 'send', conv: 'g:lobby', cid: `f${i}`, text }));
  // Another user during the flood: served at once.
  const b = await bob.ask({ type: 'send', conv: 'g:lobby', cid: 'bob-1', text: 'hello' });
  check(b.type === 'ack', `another user is served during the flood (${b.type})`);
  const replies = await Promise.all(asks);
  const secs = (Date.now() - t0) / 1000;
  const { ok, refused } = tally(replies, 'rate_limited');
  const grown = dbBytes() - before;
  check(ok <= 100, `${ok} of 3000 sends stored in ${secs.toFixed(1)} s (at most the burst)`);
  check(ok >= 60, `the burst passes (${ok} >= 60)`);
  check(refused.length === 3000 - ok, `the rest refused: ${refused.length} rate_limited`);
  check(refused.every((r) => r.retry_after > 0 && ['send', 'bytes'].includes(r.limit)),
    'each with retry_after > 0 and the limit it hit');
  check(grown < 2 * 1024 * 1024, `the database grew ${grown} bytes (< 2 MiB; 12 MB unlimited)`);
  const s = await bob.ask({ type: 'sync', since: {} });
  const lobby = s.convs.find((c) => c.conv === 'g:lobby');
  check(lobby && lobby.last_seq === ok + 1, `stored: exactly the acked ones (last_seq ${lobby && lobby.last_seq})`);

  const joins = await Promise.all(Array.from({ length: 50 }, (_, i) => a1.ask({ type: 'join', conv: `g:j${i}` })));
  const j = tally(joins, 'rate_limited');
  check(j.ok <= 25 && j.refused.length >= 25, `joins limited: ${j.ok} ok, ${j.refused.length} rate_limited`);
  for (const d of [a1, a2, bob]) d.ws.close();
}

async function rooms() {
  const a = await open('alice');
  const joins = [];
  for (let i = 0; i < 5; i++) joins.push(await a.ask({ type: 'join', conv: `g:r${i}` }));
  const j = tally(joins, 'too_many_rooms');
  check(j.ok === 2 && j.refused.length === 3, `--max-rooms 3 (lobby + 2): ${j.ok} ok, ${j.refused.length} too_many_rooms`);
  const seen = [];
  let after, pages = 0, presence = 0;
  do {
    const r = await a.ask({ type: 'sync', since: {}, ...(after ? { after } : {}) });
    check(r.type === 'sync' && r.convs.length <= 2, `page ${pages + 1}: ${r.convs.length} conversations`);
    seen.push(...r.convs.map((c) => c.conv));
    presence += r.presence.length;
    after = r.next;
    pages++;
  } while (after && pages < 10);
  check(pages === 2 && seen.join() === 'g:lobby,g:r0,g:r1', `--sync-page 2: ${pages} pages, ${seen.join()}`);
  a.ws.close();
}

await (phase === 'rooms' ? rooms() : flood());
process.exit(failed ? 1 : 0);

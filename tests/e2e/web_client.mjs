// The browser library (web/client) in headless Chromium against a real
// `duplex serve --echo`, which this script starts, kills, freezes and
// restarts on the same port:
//  1. DuplexSocket: request/response; server killed (SIGKILL) and restarted;
//     the page's network cut (Playwright offline); the server frozen
//     (SIGSTOP) so only the heartbeat can tell. Each time the page
//     reconnects and what it queued arrives exactly once, in order.
//  2. useDuplex under React StrictMode: mount, re-render, URL change,
//     unmount, remount, server restart; counts the page's WebSockets and
//     timers so a leak is a number.
//  3. useDuplex, the Vue composable: mount, reactive URL change, server
//     restart with a message queued, unmount; the same counts.
// Usage: node web_client.mjs SITE_DIR   (env DUPLEX: the duplex command)
import { restartable } from './restartable.mjs';
import { check, chromium, chromiumOptions, fail, finish } from './browser.mjs';

const duplex = process.env.DUPLEX;
const [site] = process.argv.slice(2);
const slow = process.env.DX_SANITIZE === '1' || process.env.DX_SANITIZE === 'TRUE' ? 3 : 1;
const T = (ms) => ms * slow;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- the server ---------------------------------------------------------
const srv = restartable(duplex, ['--echo', '--static', site], T);
const startServer = () => srv.start();
const killServer = (sig) => srv.kill(sig);

// ---- the browser --------------------------------------------------------
// Counts every WebSocket the page makes and every pending timer, before any
// page script runs.
function instrument() {
  const Native = window.WebSocket;
  const made = [];
  window.WebSocket = class extends Native {
    constructor(...a) { super(...a); made.push(this); }
  };
  const timers = new Set();
  const st = window.setTimeout.bind(window);
  const ct = window.clearTimeout.bind(window);
  window.setTimeout = (fn, ms, ...rest) => {
    const id = st((...x) => { timers.delete(id); if (typeof fn === 'function') fn(...x); }, ms, ...rest);
    timers.add(id);
    return id;
  };
  window.clearTimeout = (id) => { timers.delete(id); ct(id); };
  window.leak = {
    made: () => made.length,
    live: () => made.filter((w) => w.readyState === 0 || w.readyState === 1).length,
    timers: () => timers.size,
  };
}

// A page of a hook (React or Vue test page at `path`), with its helpers.
async function hookPage(ctx, path, tag) {
  const p = await ctx.newPage();
  p.on('console', (m) => { if (m.type() === 'error') console.log(`  [${tag}] ${m.text()}`); });
  p.on('pageerror', (e) => { console.log(`  [${tag} error] ${e.message}`); fail(); });
  await p.goto(`${base()}${path}`);
  return {
    page: p,
    wait: (fn, arg, ms = 15000) => p.waitForFunction(fn, arg, { timeout: T(ms) }),
    leak: () => p.evaluate(() => ({ made: window.leak.made(), live: window.leak.live(), timers: window.leak.timers() })),
    text: (id) => p.$eval(`#${id}`, (e) => e.textContent),
  };
}

// The server killed and restarted under a mounted hook (`who` names it in
// the checks): retry shown, a message sent while down echoed once back.
async function restartUnderHook(h, who) {
  await killServer('SIGKILL');
  await h.wait(() => document.getElementById('state').textContent === '0');
  await h.wait(() => /^attempt \d+ in \d+ ms$/.test(document.getElementById('retry').textContent));
  check(true, `${who}: retry shown while the server is down (${await h.text('retry')})`);
  await h.page.evaluate(() => window.app.send('queued while down'));
  await startServer();
  await h.wait(() => document.getElementById('last').textContent === 'queued while down', undefined, 20000);
  check((await h.text('state')) === '1' && (await h.text('retry')) === '',
    `${who}: readyState back to OPEN after a server restart (retry cleared), queued message echoed`);
  // The socket may have come back over HTTP (its WebSocket attempt raced
  // the restart: refused, then the HTTP one got through), and then goes
  // back to WebSocket after its early probe (1 s): one live WebSocket in
  // the end, never two.
  await h.wait(() => window.leak.live() >= 1, undefined, 8000).catch(() => {});
  const l = await h.leak();
  check(l.live === 1, `${who}: one live socket after the restart (${l.live})`);
}

await startServer();
const base = () => `http://127.0.0.1:${srv.port}`;
const browser = await chromium.launch(chromiumOptions());
try {
  const ctx = await browser.newContext();
  await ctx.addInitScript(instrument);

  // ---- 1. DuplexSocket ------------------------------------------------
  const page = await ctx.newPage();
  page.on('console', (m) => console.log(`  [page] ${m.text()}`));
  page.on('pageerror', (e) => { console.log(`  [page error] ${e.message}`); fail(); });
  await page.goto(`${base()}/`);
  const wait = (fn, arg, ms = 15000) => page.waitForFunction(fn, arg, { timeout: T(ms) });
  const state = () => page.evaluate(() => window.t.state());
  const got = () => page.evaluate(() => window.t.got.slice());
  const events = () => page.evaluate(() => window.t.events.slice());
  const range = (p, n) => Array.from({ length: n }, (_, i) => `${p}${i + 1}`);
  const waitGot = async (want, what) => {
    try {
      await wait((n) => window.t.got.length >= n, want.length);
    } catch { /* reported below */ }
    await sleep(200); // a duplicate would arrive right behind
    const g = await got();
    check(JSON.stringify(g) === JSON.stringify(want),
      `${what}: ${g.length} messages, exactly once and in order (want ${want.length})`);
  };

  await wait(() => window.t.sock.readyState === 1);
  check(true, 'DuplexSocket open');
  await page.evaluate((m) => window.t.send(m), range('a', 5));
  await waitGot(range('a', 5), 'echo while open');

  const replies = await page.evaluate(() => window.t.requests(8));
  check(replies.length === 8 && replies.every((r, i) => r.op === 'q' && r.n === i && typeof r.id === 'number'),
    `8 concurrent requests resolved by id (${JSON.stringify(replies[7])})`);
  check((await got()).length === 5, 'request replies are not dispatched as messages');

  // Server killed: the page sees the close, queues, backs off, and
  // flushes once the server is back on the same port.
  await killServer('SIGKILL');
  await wait(() => window.t.sock.readyState === 0);
  const sent = await page.evaluate((m) => window.t.send(m), range('b', 20));
  let st = await state();
  check(sent.every((x) => x === true) && st.queued === 20 && st.buffered === 20 * 2 + 11,
    `server down: 20 messages queued, bufferedAmount ${st.buffered}`);
  await wait(() => window.t.sock.attempt >= 3);
  const delays = (await events()).filter((e) => e.type === 'reconnecting').map((e) => e.delay);
  check(delays.length >= 3 && delays.every((d) => d >= 0 && d < 1500),
    `reconnecting with backoff delays ${JSON.stringify(delays)}`);
  await startServer();
  await wait(() => window.t.sock.readyState === 1);
  await waitGot([...range('a', 5), ...range('b', 20)], 'server restarted');
  st = await state();
  check(st.queued === 0 && st.buffered === 0, 'queue flushed');

  // The page's network cut: 'offline' drops the socket at once; no attempt
  // until 'online'.
  let before = (await events()).filter((e) => e.type === 'connecting').length;
  await ctx.setOffline(true);
  await wait(() => window.t.sock.readyState === 0 && !navigator.onLine);
  const lastClose = (await events()).filter((e) => e.type === 'close').at(-1);
  check(lastClose.reason === 'offline' && lastClose.willReconnect === true, `offline: close '${lastClose.reason}'`);
  await page.evaluate((m) => window.t.send(m), range('c', 10));
  await sleep(T(1500));
  const during = (await events()).filter((e) => e.type === 'connecting').length;
  check(during === before, `no connection attempt while offline (${during - before})`);
  await ctx.setOffline(false);
  await wait(() => window.t.sock.readyState === 1);
  await waitGot([...range('a', 5), ...range('b', 20), ...range('c', 10)], 'back online');

  // Frozen server: TCP stays up, nothing answers; only the heartbeat can
  // notice (interval 1 s + timeout 1.5 s on this page).
  before = (await events()).length;
  const t0 = await page.evaluate(() => performance.now());
  srv.proc.kill('SIGSTOP');
  try {
    await wait((n) => window.t.events.slice(n).some((e) => e.type === 'close'), before);
  } catch { /* checked below */ }
  const dead = (await events()).slice(before).find((e) => e.type === 'close');
  check(dead && dead.reason === 'heartbeat timeout', `frozen server: close '${dead && dead.reason}'`);
  if (dead) check(dead.t - t0 < T(15000), `dead peer detected after ${Math.round(dead.t - t0)} ms (interval 1000 + timeout 1500)`);
  await page.evaluate((m) => window.t.send(m), range('d', 5));
  await sleep(500);
  srv.proc.kill('SIGCONT');
  await wait(() => window.t.sock.readyState === 1, undefined, 30000);
  await waitGot([...range('a', 5), ...range('b', 20), ...range('c', 10), ...range('d', 5)], 'server thawed');

  // A manual close never reconnects and leaves nothing behind.
  await page.evaluate(() => window.t.sock.close(1000, 'done'));
  await wait(() => window.t.sock.readyState === 3);
  const made = await page.evaluate(() => window.leak.made());
  await sleep(T(2500));
  const after = await page.evaluate(() => ({ made: window.leak.made(), live: window.leak.live(), timers: window.leak.timers() }));
  check(after.made === made && after.live === 0 && after.timers === 0,
    `after close(): no new socket, ${after.live} live, ${after.timers} timers pending`);
  await page.close();

  // ---- 2. useDuplex under StrictMode --------------------------------------
  const rh = await hookPage(ctx, '/react/', 'react');
  const { page: rp, wait: rwait, leak } = rh;

  await rwait(() => document.getElementById('state')?.textContent === '1');
  let l = await leak();
  check(l.made === 1 && l.live === 1, `StrictMode mount: ${l.made} socket made (the double effect opens none)`);
  await rp.evaluate(() => window.app.send('r1'));
  await rwait(() => document.getElementById('last').textContent === 'r1');
  check(await rp.evaluate(() => window.seen.handled.includes('0:r1')), 'lastMessage and onMessage');

  await rp.evaluate(() => { for (let i = 1; i <= 30; i++) window.app.flushSync(() => window.app.setTick(i)); });
  await rp.evaluate(() => window.app.send('r2'));
  await rwait(() => document.getElementById('last').textContent === 'r2');
  const handled = await rp.evaluate(() => window.seen.handled.slice());
  l = await leak();
  check(l.made === 1, `30 re-renders with new inline handlers: still ${l.made} socket`);
  check(handled.at(-1) === '30:r2', `the latest handler runs, not a stale one (${handled.at(-1)})`);

  await rp.evaluate(() => window.app.setPath('/react?v=2'));
  await rwait(() => window.leak.made() === 2 && window.leak.live() === 1 &&
    document.getElementById('state').textContent === '1');
  check(true, 'URL change: old socket closed, one new socket open');

  await rp.evaluate(() => window.app.setShown(false));
  await rwait(() => window.leak.live() === 0);
  await sleep(T(1500)); // past heartbeat and backoff timers
  l = await leak();
  check(l.made === 2 && l.live === 0 && l.timers === 0,
    `unmount: ${l.live} live sockets, ${l.timers} timers pending, no reconnect (${l.made} made)`);

  // Rapid mount/unmount: synchronous pairs open nothing; spaced ones open
  // and close; nothing is left either way.
  await rp.evaluate(() => {
    for (let i = 0; i < 10; i++) {
      window.app.flushSync(() => window.app.setShown(true));
      window.app.flushSync(() => window.app.setShown(false));
    }
  });
  await rp.evaluate(async () => {
    for (let i = 0; i < 5; i++) {
      window.app.setShown(true);
      await new Promise((r) => setTimeout(r, 30));
      window.app.setShown(false);
      await new Promise((r) => setTimeout(r, 30));
    }
  });
  await rwait(() => window.leak.live() === 0);
  await sleep(T(1500));
  l = await leak();
  check(l.live === 0 && l.timers === 0 && l.made <= 2 + 5,
    `15 mount/unmount cycles: ${l.made - 2} sockets made, ${l.live} live, ${l.timers} timers pending`);

  // Remount, then the server restarts under the hook.
  await rp.evaluate(() => window.app.setShown(true));
  await rwait(() => document.getElementById('state').textContent === '1');
  await restartUnderHook(rh, 'hook');
  await rp.evaluate(() => window.app.setShown(false));
  await rwait(() => window.leak.live() === 0);
  await sleep(T(1000));
  l = await leak();
  check(l.timers === 0, `final unmount: ${l.timers} timers pending`);
  await rp.close();

  // ---- 3. useDuplex, Vue ----------------------------------------------------
  const vh = await hookPage(ctx, '/vue/', 'vue');
  const vueLoaded = Date.now();
  const { page: vp, wait: vwait, leak: vleak } = vh;

  await vwait(() => document.getElementById('state')?.textContent === '1');
  l = await vleak();
  check(l.made === 1 && l.live === 1, `vue: mount opens one socket (${l.made} made, ${l.live} live)`);
  await vp.evaluate(() => window.app.send('v1'));
  await vwait(() => document.getElementById('last').textContent === 'v1');
  check(await vp.evaluate(() => window.seen.handled.includes('v1')), 'vue: lastMessage and onMessage');

  await vp.evaluate(() => window.app.setPath('/vue?v=2'));
  await vwait(() => window.leak.made() === 2 && window.leak.live() === 1 &&
    document.getElementById('state').textContent === '1');
  check(true, 'vue: URL change closes the old socket and opens one new one');

  await restartUnderHook(vh, 'vue');

  await vp.evaluate(() => window.app.setShown(false));
  await vwait(() => window.leak.live() === 0);
  const madeAtUnmount = (await vleak()).made;
  // Past heartbeat and backoff timers, and past the 3-second timer that a
  // development build of Vue sets at mount for its devtools hook (not ours).
  await sleep(Math.max(T(1500), 3500 - (Date.now() - vueLoaded)));
  l = await vleak();
  check(l.live === 0 && l.timers === 0 && l.made === madeAtUnmount,
    `vue: unmount leaves ${l.live} live sockets, ${l.timers} timers pending, no reconnect`);
} finally {
  await browser.close();
  if (srv.proc) {
    const proc = srv.proc;
    const code = await killServer('SIGTERM');
    check(code === 0 && !/Sanitizer|runtime error/.test(proc.log()),
      `the last server exits 0 on SIGTERM, no sanitizer report (exit ${code})`);
    if (code !== 0) console.log(proc.log());
  }
}
finish();

// DuplexSocket's HTTP fallback (web/client/http_socket.js, docs/fallback.md)
// in headless Chromium against a real `duplex serve --echo`, behind a proxy
// (fallback_proxy.mjs) that refuses, black-holes or passes WebSocket upgrades:
//  1. refuse: the socket opens over http (after one failed WebSocket); text
//     and binary echo in order, bufferedAmount returns to 0, close(1000,
//     'bye') is a clean close; the same with long polls (http.mode 'poll').
//  2. the server killed (SIGKILL) and restarted while on http: a new session,
//     and what was queued while down arrives exactly once.
//  3. blackhole: the WebSocket "opens" and nothing comes: after
//     fallbackTimeout the socket moves to http, and what it had sent into
//     the hole is delivered once over http.
//  4. pass: the background probe finds WebSocket working again and the
//     socket moves back to 'websocket' without losing a message.
//  5. a proxy that holds the SSE stream (not even its headers come back):
//     the default 'auto' mode moves to long polls after 3 s, nothing lost.
//  6. the page goes away while on http: its beacon closes the session at
//     once (the server's open connections, from /metrics, drop to 0 well
//     before the 30 s idle timeout).
//  7. a page of another origin (http://localhost:P, the socket on
//     127.0.0.1:P): the session opens over http through CORS (one preflight,
//     for the open), echoes text and binary, closes cleanly; its beacon
//     closes the session when the page goes.
// Usage: node fallback.mjs SITE_DIR   (env DUPLEX: the duplex command)
import { restartable } from './restartable.mjs';
import { check, chromium, chromiumOptions, fail, finish } from './browser.mjs';
import { startProxy } from './fallback_proxy.mjs';

const duplex = process.env.DUPLEX;
const [site] = process.argv.slice(2);
const slow = process.env.DX_SANITIZE === '1' || process.env.DX_SANITIZE === 'TRUE' ? 3 : 1;
const T = (ms) => ms * slow;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const range = (p, n) => Array.from({ length: n }, (_, i) => `${p}${i + 1}`);

// ---- the server (restarted on the same port, which the proxy targets) ----
const srv = restartable(duplex, ['--echo', '--static', site, '--metrics'], T);
const startServer = () => srv.start();
const killServer = (sig) => srv.kill(sig);

// Connections the server holds open, all transports (its /metrics, asked directly).
async function openConns() {
  const text = await (await fetch(`http://127.0.0.1:${srv.port}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith('duplex_connections_open'))
    .reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
}

await startServer();
const proxy = await startProxy(srv.port, 'refuse');
const browser = await chromium.launch(chromiumOptions());
try {
  const page = await browser.newPage();
  page.on('console', (m) => console.log(`  [page] ${m.text()}`));
  page.on('pageerror', (e) => { console.log(`  [page error] ${e.message}`); fail(); });
  await page.goto(`http://127.0.0.1:${proxy.port}/`);
  const wait = (fn, arg, ms = 15000) => page.waitForFunction(fn, arg, { timeout: T(ms) });
  const state = () => page.evaluate(() => window.t.state());
  const got = () => page.evaluate(() => window.t.got.slice());
  const events = () => page.evaluate(() => window.t.events.slice());
  const waitGot = async (want, what, ms) => {
    try {
      await wait((n) => window.t.got.length >= n, want.length, ms);
    } catch { /* reported below */ }
    await sleep(300); // a duplicate would arrive right behind
    const g = await got();
    check(JSON.stringify(g) === JSON.stringify(want),
      `${what}: ${g.length} messages, exactly once and in order (want ${want.length})${
        JSON.stringify(g) === JSON.stringify(want) ? '' : ` got ${JSON.stringify(g).slice(0, 300)}`}`);
  };
  // What window.t.got holds after `msgs` echo (window.t.send's items).
  const echoed = (msgs) => msgs.map((m) => (typeof m === 'string' ? m : `bin:${m.join(',')}`));
  // The page goes to about:blank: the server's open connections before,
  // and once they reach 0 (5 s at most), with the time that took.
  const leave = async () => {
    const held = await openConns();
    await page.goto('about:blank');
    const t0 = Date.now();
    let left = held;
    while (left > 0 && Date.now() - t0 < T(5000)) {
      await sleep(100);
      left = await openConns();
    }
    return { held, left, ms: Date.now() - t0 };
  };
  const closeClean = async (what) => {
    await page.evaluate(() => window.t.sock.close(1000, 'bye'));
    try { await wait(() => window.t.sock.readyState === 3); } catch { /* checked below */ }
    const last = (await events()).filter((e) => e.type === 'close').at(-1);
    // The reason is the one in the server's close frame: duplex echoes the
    // code only (a browser WebSocket then reports '' too).
    check(last && last.code === 1000 && (last.reason === 'bye' || last.reason === '') && last.wasClean === true &&
      last.willReconnect === false, `${what}: close(1000, 'bye') gives a clean close event (${JSON.stringify(last)})`);
  };

  // ---- 1. refuse ----------------------------------------------------------
  for (const mode of ['stream', 'poll']) {
    const made = await page.evaluate(() => window.t.made());
    await page.evaluate((m) => window.t.start({
      fallbackTimeout: 1500, upgradeProbe: 600000, heartbeat: { interval: 1000, timeout: 3000 }, http: { mode: m },
    }), mode);
    await wait(() => window.t.sock.readyState === 1);
    let st = await state();
    check(st.transport === 'http', `refuse (${mode}): open on ${st.transport}`);
    const madeNow = await page.evaluate(() => window.t.made());
    const ev = await events();
    check(madeNow === made + 1 && ev.some((e) => e.type === 'transport' && e.transport === 'http'),
      `refuse (${mode}): one WebSocket tried first (${madeNow - made}), 'transport' event http`);
    const msgs = ['t1', [1, 2, 3], 't2 é€😀', [0, 255], ...range('t', 20).slice(2), new Array(300).fill(7)];
    await page.evaluate((m) => window.t.send(m), msgs);
    const want = echoed(msgs);
    await waitGot(want, `refuse (${mode}): text and binary echoed`);
    const big = await page.evaluate(() => window.t.bigSend(200000));
    check(big.right >= 200000 && big.after === 0, `refuse (${mode}): bufferedAmount ${big.right} after a 200 KB send, then ${big.after}`);
    await wait((n) => window.t.got.length > n, want.length);
    check((await got()).at(-1) === 'z'.repeat(200000), `refuse (${mode}): the 200 KB message echoed`);
    // The heartbeat (1 s) ran over http for a while: still open, no reconnect.
    await sleep(T(2500));
    st = await state();
    const evs = await events();
    const opened = evs.find((e) => e.type === 'open').t;
    const closes = evs.filter((e) => e.type === 'close' && e.t > opened).length;
    check(st.readyState === 1 && closes === 0, `refuse (${mode}): heartbeat pongs over http, no reconnect (${closes} closes)`);
    await closeClean(`refuse (${mode})`);
  }

  // ---- 2. kill -9 and restart while on http ---------------------------------
  await page.evaluate(() => window.t.start({
    fallbackTimeout: 1500, upgradeProbe: 600000, heartbeat: { interval: 1000, timeout: 1500 },
    reconnect: { base: 200, cap: 1000 },
  }));
  await wait(() => window.t.sock.readyState === 1 && window.t.sock.transport === 'http');
  await page.evaluate((m) => window.t.send(m), range('a', 3));
  await waitGot(range('a', 3), 'restart: before');
  await killServer('SIGKILL');
  await wait(() => window.t.sock.readyState === 0);
  const sent = await page.evaluate((m) => window.t.send(m), range('b', 10));
  const st2 = await state();
  check(sent.every((x) => x === true) && st2.queued === 10, `server down: 10 messages queued (${st2.queued})`);
  await sleep(T(1500)); // a few failed rounds
  await startServer();
  await wait(() => window.t.sock.readyState === 1, undefined, 30000);
  check((await state()).transport === 'http', 'restart: reconnected over http (a new session)');
  await waitGot([...range('a', 3), ...range('b', 10)], 'restart: queued while down');
  await closeClean('restart');

  // ---- 3. blackhole ----------------------------------------------------------
  proxy.setMode('blackhole');
  await page.evaluate(() => window.t.start({
    fallbackTimeout: 1500, upgradeProbe: 500, heartbeat: { interval: 1000, timeout: 5000 },
  }));
  await wait(() => window.t.events.some((e) => e.type === 'open'));
  await page.evaluate((m) => window.t.send(m), range('c', 5)); // into the hole
  await wait(() => window.t.sock.transport === 'http' && window.t.sock.readyState === 1, undefined, 20000);
  const ev3 = await events();
  const wsOpen = ev3.find((e) => e.type === 'open');
  const httpOn = ev3.find((e) => e.type === 'transport' && e.transport === 'http');
  const delay = httpOn.t - wsOpen.t;
  check(wsOpen.transport === 'websocket' && delay >= 1400 && delay < T(6000),
    `blackhole: a silent WebSocket "open", then http after ${Math.round(delay)} ms (fallbackTimeout 1500)`);
  check(proxy.counts.blackholed >= 1, `blackhole: the proxy black-holed ${proxy.counts.blackholed} upgrades`);
  await waitGot(range('c', 5), 'blackhole: what was sent into the hole, over http');

  // ---- 4. pass: back to WebSocket --------------------------------------------
  await sleep(T(1000)); // a probe or two fail meanwhile
  proxy.setMode('pass');
  await wait(() => window.t.sock.transport === 'websocket' && window.t.sock.readyState === 1, undefined, 30000);
  const ev4 = await events();
  const back = ev4.filter((e) => e.type === 'transport').map((e) => e.transport);
  check(JSON.stringify(back) === JSON.stringify(['websocket', 'http', 'websocket']),
    `pass: transport events ${JSON.stringify(back)}`);
  const up = ev4.filter((e) => e.type === 'close').at(-1);
  check(up && up.code === 1000 && up.wasClean && up.willReconnect, `pass: the http session closed cleanly (${JSON.stringify(up)})`);
  await page.evaluate((m) => window.t.send(m), range('d', 5));
  await waitGot([...range('c', 5), ...range('d', 5)], 'pass: over websocket again');
  await closeClean('pass');
  await sleep(T(1500));
  const live = await page.evaluate(() => window.t.sock.readyState);
  check(live === 3, 'closed for good');

  // ---- 5. a buffering proxy: streams held ------------------------------------
  proxy.setMode('refuse');
  proxy.setStreams('hold');
  await page.evaluate(() => window.t.start({ fallbackTimeout: 1500, upgradeProbe: 600000, heartbeat: false }));
  await wait(() => window.t.sock.readyState === 1 && window.t.sock.transport === 'http');
  const t5 = Date.now();
  await page.evaluate((m) => window.t.send(m), range('e', 5));
  await waitGot(range('e', 5), 'streams held: over long polls');
  check(proxy.counts.held >= 1 && Date.now() - t5 < T(10000),
    `streams held: ${proxy.counts.held} held, the messages came after ${Date.now() - t5} ms (moved to polls after 3 s)`);
  await page.evaluate((m) => window.t.send(m), range('f', 3));
  await waitGot([...range('e', 5), ...range('f', 3)], 'streams held: then at once');
  await closeClean('streams held');
  proxy.setStreams('pass');

  // ---- 6. the page goes away while on http ------------------------------------
  await page.evaluate(() => window.t.start({ fallbackTimeout: 1500, upgradeProbe: 600000 }));
  await wait(() => window.t.sock.readyState === 1 && window.t.sock.transport === 'http');
  const gone = await leave();
  check(gone.held === 1 && gone.left === 0, `page gone: the server's open connections ${gone.held} → ${gone.left} after ${gone.ms} ms (the beacon's close)`);

  // ---- 7. a page of another origin --------------------------------------------
  await page.goto(`http://localhost:${proxy.port}/`);
  const other = `ws://127.0.0.1:${proxy.port}/fallback`;
  await page.evaluate((u) => window.t.start({ fallbackTimeout: 1500, upgradeProbe: 600000, heartbeat: false }, u), other);
  await wait(() => window.t.sock.readyState === 1 && window.t.sock.transport === 'http');
  const msgs7 = ['x1', [9, 8, 7], 'x2 é', ...range('x', 20).slice(2)];
  await page.evaluate((m) => window.t.send(m), msgs7);
  await waitGot(echoed(msgs7), 'another origin: echoed over http (CORS)');
  const origin7 = await page.evaluate(() => location.origin);
  check(origin7 !== new URL(other.replace('ws:', 'http:')).origin, `another origin: the page (${origin7}) and the socket (${other}) differ`);
  await closeClean('another origin');
  await page.evaluate((u) => window.t.start({ fallbackTimeout: 1500, upgradeProbe: 600000, heartbeat: false }, u), other);
  await wait(() => window.t.sock.readyState === 1 && window.t.sock.transport === 'http');
  const gone7 = await leave();
  check(gone7.held === 1 && gone7.left === 0, `another origin, page gone: open connections ${gone7.held} → ${gone7.left} after ${gone7.ms} ms (the beacon's close)`);
} finally {
  await browser.close();
  await proxy.close();
  if (srv.proc) {
    const proc = srv.proc;
    const code = await killServer('SIGTERM');
    check(code === 0 && !/Sanitizer|runtime error/.test(proc.log()),
      `the last server exits 0 on SIGTERM, no sanitizer report (exit ${code})`);
    if (code !== 0) console.log(proc.log());
  }
}
finish();

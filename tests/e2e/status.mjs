// The live status page (/status of `duplex serve --metrics`, cli/status.c,
// web/status) in headless Chromium, at desktop (1280x800) and phone
// (390x844) sizes, while the server is under load: the numbers follow the
// load up and back down, the status sockets are left out of them, the
// charts draw, the phone layout fits, axe-core finds nothing serious, and
// (echo) the page reconnects to a server restarted on its port; screenshots
// of both sizes during the load.
// MODE echo: `duplex bench` at 1,000, 2,500, 1,500 then 3,000 msg/s on 8
// connections, 3 s each (the last 5 s).
// MODE chat: 4 users send to g:lobby at 50/s each (needs the server started
// with --rate-limit send=100/100 or more); the ack p99 card and line.
// Usage: node status.mjs DUPLEX PORT MODE ARTIFACT_DIR
// Screenshots go to ARTIFACT_DIR/status-MODE-{desktop,phone}.png, and the
// echo desktop one to $DX_DOCS_SHOTS/status.png when set (docs/).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { check, chromium, chromiumOptions, fail, finish } from './browser.mjs';

const [duplex, port, mode, artifacts] = process.argv.slice(2);
const docs = process.env.DX_DOCS_SHOTS || null;
const base = `http://127.0.0.1:${port}`;
const root = process.env.DX_ROOT ?? path.resolve(import.meta.dirname, '../..');
const WebSocket = createRequire(path.join(root, 'package.json'))('ws');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// `duplex bench` at `rate` msg/s for `secs` seconds; resolves with its exit code.
const bench = (rate, secs) =>
  new Promise((resolve) => {
    const b = spawn(duplex, ['bench', '--url', `ws://127.0.0.1:${port}/`, '--connections', '8',
      '--rate', String(rate), '--duration', String(secs), '--no-progress'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    b.stdout.on('data', (d) => { out += d; });
    b.on('exit', (code) => {
      const line = out.split('\n').find((l) => /msg\/s|echoes/.test(l));
      console.log(`  bench ${rate}/s × ${secs} s: exit ${code}${line ? `, ${line.trim()}` : ''}`);
      resolve(code);
    });
  });

// Chat load: `users` devices, each sending to g:lobby every `every` ms for
// `secs` seconds; resolves with the number of acks received.
const chatLoad = async (users, every, secs) => {
  const socks = await Promise.all(
    Array.from({ length: users }, (_, i) =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/chat?uid=load${i}`);
        ws.acks = 0;
        ws.on('message', (d) => { if (JSON.parse(d.toString()).type === 'ack') ws.acks++; });
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
      })),
  );
  let n = 0;
  const timers = socks.map((ws, i) =>
    setInterval(() => ws.send(JSON.stringify({ v: 1, type: 'send', id: `r${n}`, conv: 'g:lobby', cid: `c-${i}-${n++}`, text: `load ${n}` })), every));
  await sleep(secs * 1000);
  timers.forEach(clearInterval);
  await sleep(500);
  const acks = socks.reduce((a, ws) => a + ws.acks, 0);
  socks.forEach((ws) => ws.close(1000));
  return acks;
};

const browser = await chromium.launch(chromiumOptions());
try {
  const desktop = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const pages = { desktop, phone };
  for (const [name, p] of Object.entries(pages)) {
    p.on('pageerror', (e) => { console.log(`FAIL [${name}] page error: ${e.message}`); fail(); });
    p.on('console', (m) => { if (m.type() === 'error') console.log(`  [${name}] ${m.text()}`); });
    await p.goto(`${base}/status`);
    await p.waitForSelector('#state.live', { timeout: 10000 });
  }
  const hello = await desktop.evaluate(() => window.duplexStatus.hello);
  check(hello?.mode === mode && hello.chat === (mode === 'chat'), `hello: ${JSON.stringify(hello)}`);
  check(await desktop.isVisible('#ack-card') === (mode === 'chat'), `chat ack card shown only with --chat`);

  // Idle: two samples, nothing moves; the pages' own sockets and their
  // samples are not counted.
  await desktop.waitForFunction(() => window.duplexStatus.samples.length >= 2, null, { timeout: 10000 });
  const idle = await desktop.evaluate(() => window.duplexStatus.last);
  check(idle.in === 0 && idle.out === 0 && idle.bytes_out === 0,
    `idle: in ${idle.in}, out ${idle.out} msg/s, ${idle.bytes_out} B/s out (status sockets left out)`);
  check(idle.open === 0 && idle.status_pages === 2, `idle: open ${idle.open}, status_pages ${idle.status_pages}`);
  check(Number.isInteger(idle.queued) && idle.queued < 65536, `idle: ${idle.queued} bytes queued`);

  // Load, with the screenshots taken during its second half.
  let loadDone;
  if (mode === 'echo') {
    for (const rate of [1000, 2500, 1500]) check(await bench(rate, 3) === 0, `bench at ${rate} msg/s`);
    loadDone = bench(3000, 5);
  } else {
    loadDone = chatLoad(4, 20, 7);
  }
  await sleep(3500);
  const during = await desktop.evaluate(() => ({
    ...window.duplexStatus.last,
    shown: Number(document.getElementById('in').firstChild.textContent.replace(/,/g, '')),
    ack: document.getElementById('ack').textContent,
    outSub: document.getElementById('bytes-out').textContent,
  }));
  for (const [name, p] of Object.entries(pages)) {
    const shot = path.join(artifacts, `status-${mode}-${name}.png`);
    await p.screenshot({ path: shot, fullPage: name === 'phone' });
    console.log(`  screenshot: ${shot}`);
    if (docs && mode === 'echo' && name === 'desktop') await p.screenshot({ path: path.join(docs, 'status.png') });
  }
  const loaded = await loadDone;
  if (mode === 'echo') check(loaded === 0, 'bench at 3,000 msg/s');
  else check(loaded >= 500, `chat load: ${loaded} acks`);

  const want = mode === 'echo' ? 1000 : 100;
  check(during.in >= want && during.shown >= want, `under load: ${during.in} msg/s in (page shows ${during.shown}), want >= ${want}`);
  check(during.out >= want, `under load: ${during.out} msg/s out`);
  check(Number.isInteger(during.queued) && /\d.* queued$/.test(during.outSub), `under load: ${during.queued} bytes queued, shown as "${during.outSub}"`);
  if (mode === 'echo') {
    check(during.open === 8, `under load: ${during.open} connections open (the bench's 8)`);
  } else {
    check(during.chat?.acks >= want / 2 && during.chat.ack_p99_us > 0, `chat: ${during.chat?.acks} acks/s, ack p99 ${during.chat?.ack_p99_us} µs`);
    check(/\d/.test(during.ack), `chat ack p99 shown: ${during.ack}`);
  }
  check(during.turn_p99_us > 0, `loop turn p99 ${during.turn_p99_us} µs`);

  // The charts: a line per series with a point a second, which rose.
  for (const [name, p] of Object.entries(pages)) {
    const lines = await p.evaluate(() =>
      Object.fromEntries([...document.querySelectorAll('svg path')].map((e) => {
        const b = e.getBBox();
        return [e.id, { points: Number(e.dataset.points), height: Math.round(b.height), width: Math.round(b.width) }];
      })));
    // The rates rose from 0: their lines climb. A latency may stay in one
    // bucket (a flat line), and the chat's has points only while acks come.
    for (const id of ['line-in', 'line-out']) {
      const l = lines[id];
      check(l && l.points >= 6 && l.height >= 20 && l.width >= 15, `${name}: #${id} ${JSON.stringify(l)}`);
    }
    for (const id of ['line-turn', ...(mode === 'chat' ? ['line-ack'] : [])]) {
      const l = lines[id];
      check(l && l.points >= (id === 'line-ack' ? 4 : 6) && l.width >= 15, `${name}: #${id} ${JSON.stringify(l)}`);
    }
  }

  // Back down when the load stops.
  await desktop.waitForFunction(() => window.duplexStatus.last.in === 0, null, { timeout: 10000 })
    .then(() => check(true, 'after the load: 0 msg/s in'), () => check(false, 'msg/s in did not come back to 0'));

  // axe-core (node_modules), where it is installed: no serious or critical violation.
  const axePath = path.join(root, 'node_modules/axe-core/axe.min.js');
  if (existsSync(axePath)) {
    for (const [name, p] of Object.entries(pages)) {
      await p.addScriptTag({ path: axePath });
      const bad = await p.evaluate(async () =>
        (await window.axe.run(document, { resultTypes: ['violations'] })).violations
          .filter((v) => v.impact === 'serious' || v.impact === 'critical')
          .map((v) => ({ id: v.id, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 3) })));
      check(bad.length === 0, `${name}: axe finds no serious or critical violation ${bad.length ? JSON.stringify(bad) : ''}`);
    }
  } else {
    console.log('  skip axe: node_modules/axe-core is missing');
  }

  // The phone: nothing wider than the screen, every card and chart inside it.
  const fit = await phone.evaluate(() => {
    const w = document.documentElement.clientWidth;
    const out = [...document.querySelectorAll('.card:not([hidden]), svg, header, section')]
      .filter((e) => { const r = e.getBoundingClientRect(); return r.left < 0 || r.right > w + 0.5; })
      .map((e) => e.id || e.className || e.tagName);
    return { w, scroll: document.documentElement.scrollWidth, out };
  });
  check(fit.scroll <= fit.w && fit.out.length === 0, `phone: scrollWidth ${fit.scroll} <= ${fit.w}, outside: ${JSON.stringify(fit.out)}`);

  // The page reconnects: a server of its own, stopped and started again on
  // the same port (echo run only).
  if (mode === 'echo') {
    const serve = (p) =>
      new Promise((resolve, reject) => {
        const child = spawn(duplex, ['serve', '--echo', '--metrics', '--port', String(p)], { stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        child.stderr.on('data', (d) => {
          err += d;
          const m = /listening on ws:\/\/[^ ]*:(\d+)/.exec(err);
          if (m) resolve({ child, port: Number(m[1]) });
        });
        child.on('exit', (code) => reject(new Error(`duplex serve exited ${code}: ${err}`)));
      });
    const stop = (child) => new Promise((resolve) => { child.removeAllListeners('exit'); child.on('exit', resolve); child.kill('SIGTERM'); });
    const first = await serve(0);
    await phone.goto(`http://127.0.0.1:${first.port}/status`);
    await phone.waitForSelector('#state.live', { timeout: 10000 });
    const pid1 = await phone.evaluate(() => window.duplexStatus.hello.pid);
    check(await stop(first.child) === 0, 'first server: clean exit');
    await phone.waitForSelector('#state.down', { timeout: 10000 })
      .then(() => check(true, 'server stopped: the page says so'), () => check(false, 'server stopped: no #state.down'));
    const second = await serve(first.port);
    try {
      await phone.waitForFunction((p) => window.duplexStatus.hello?.pid !== p && document.getElementById('state').className === 'live', pid1, { timeout: 15000 })
        .then(() => check(true, 'server back: the page reconnected by itself'), () => check(false, 'server back: the page did not reconnect'));
    } finally {
      check(await stop(second.child) === 0, 'second server: clean exit');
    }
  }
} finally {
  await browser.close();
}
finish();

// The chat web UI with WebSocket blocked, in headless Chromium against
// `duplex serve --chat` behind tests/e2e/fallback_proxy.mjs:
//   1. the proxy answers every Upgrade with 400: alice and bob come online
//      over the HTTP session transport and their status line says so;
//      sending → sent → read, presence, typing, an unread badge;
//   2. the server is SIGKILLed with messages unsent; after the restart they
//      turn sent and bob sees each exactly once (sessions do not survive a
//      restart: the page opens a new one and syncs);
//   3. the proxy lets WebSocket through again: both pages go back to it;
//   4. a proxy that accepts the upgrade and then forwards nothing: carol
//      falls back to HTTP by herself and talks to alice;
//   5. screenshots (desktop and phone) of the status line over HTTP.
// Usage: node chat_fallback.mjs DUPLEX UI_DIR WORK_DIR ARTIFACT_DIR
import fs from 'node:fs';
import path from 'node:path';

import { check, chromium, finish } from './browser.mjs';
import {
  artifacts, chatOptions, freePort, say, shown, startServer, statusOf, T, waitConn, waitStatus, waitText, work,
} from './chat_ui.mjs';
import { startProxy } from './fallback_proxy.mjs';

const db = path.join(work, 'chat-fallback.db');
let server = null;

const killServer = () => new Promise((resolve) => {
  server.once('exit', (code, signal) => resolve(signal));
  server.kill('SIGKILL');
});
const transportOf = (page) => page.getAttribute('#conn', 'data-transport');
const waitTransport = (page, t, timeout = T) =>
  // attached, not visible: on a phone the list (and its status line) hides
  // behind an open conversation.
  page.waitForSelector(`#conn[data-state="online"][data-transport="${t}"]`, { state: 'attached', timeout });

const port = await freePort();
server = await startServer(port, db);
const proxy = await startProxy(port, 'refuse');
const base = `http://127.0.0.1:${proxy.port}`;
const browser = await chromium.launch(chatOptions());

let ok = false;
try {
  const viewport = { width: 1100, height: 700 };
  const ctxA = await browser.newContext({ viewport, locale: 'en-US' });
  const ctxB = await browser.newContext({ viewport: { width: 390, height: 844 }, locale: 'en-US', isMobile: true, hasTouch: true });
  const alice = await ctxA.newPage();
  const bob = await ctxB.newPage();
  for (const [name, p] of [['alice', alice], ['bob', bob]]) {
    p.on('pageerror', (e) => check(false, `${name}: page error ${e.message}`));
    p.on('console', (m) => { if (m.type() === 'error' && !/WebSocket|400|Failed to load/.test(m.text())) console.log(`  [${name}] ${m.text()}`); });
  }

  // ---- 1. Upgrade refused: everything over HTTP ----
  await alice.goto(`${base}/?uid=alice`);
  await bob.goto(`${base}/?uid=bob`);
  await waitTransport(alice, 'http');
  await waitTransport(bob, 'http');
  check(proxy.counts.refused >= 2, `the proxy refused ${proxy.counts.refused} upgrades; both pages online over HTTP`);
  const line = await alice.textContent('#conn');
  check(/HTTP/.test(line), `alice's status line says '${line}'`);
  // On one line in the sidebar's header, nothing cut off (it wrapped once).
  const fit = await alice.evaluate(() => {
    const c = document.querySelector('#conn'), t = c.querySelector('.conn-text');
    return { h: c.getBoundingClientRect().height, cut: t.scrollWidth > t.clientWidth, w: innerWidth };
  });
  check(fit.h < 24 && !fit.cut, `alice's status line fits one line at ${fit.w} px (${fit.h} px high, cut ${fit.cut})`);

  await alice.fill('#new-peer', 'bob');
  await alice.press('#new-peer', 'Enter');
  await alice.waitForSelector('#composer', { timeout: T });
  await alice.waitForFunction(() => document.querySelector('#pane-sub')?.textContent === 'online', null, { timeout: T })
    .then(() => check(true, "alice sees bob 'online' (presence over HTTP)"))
    .catch(() => check(false, "alice sees bob 'online' (presence over HTTP)"));
  const first = 'over HTTP 你好 👋';
  await say(alice, first);
  await waitStatus(alice, first, 'sent');
  check(true, `'${first}' turns sent`);
  await bob.waitForSelector('li.conv[data-conv="d:alice:bob"] .badge', { timeout: T });
  check(await bob.textContent('li.conv[data-conv="d:alice:bob"] .badge') === '1', "bob's list shows 1 unread");
  await bob.click('li.conv[data-conv="d:alice:bob"]');
  await waitText(bob, first);
  await bob.waitForFunction(() => document.querySelector('#pane-sub')?.textContent === 'online', null, { timeout: T })
    .then(() => check(true, "bob sees alice 'online': she wrote first, and became a contact"))
    .catch(async () => check(false, `bob sees alice '${await bob.textContent('#pane-sub')}'`));
  await waitStatus(alice, first, 'read');
  check(true, "alice's message turns read when bob opens it");
  await bob.fill('#composer', '好的');
  await bob.dispatchEvent('#composer', 'input');
  await alice.waitForFunction(() => /typing/.test(document.querySelector('#pane-sub')?.textContent || ''), null, { timeout: T })
    .then(() => check(true, 'alice sees "bob is typing…"'))
    .catch(() => check(false, 'alice sees "bob is typing…"'));
  await say(bob, 'reply over HTTP 🎉');
  await waitText(alice, 'reply over HTTP 🎉');
  check(true, "bob's reply reaches alice");

  fs.mkdirSync(artifacts, { recursive: true });
  await alice.screenshot({ path: path.join(artifacts, 'chat-fallback-desktop.png') });
  await bob.screenshot({ path: path.join(artifacts, 'chat-fallback-phone.png') });

  // ---- 2. kill -9 while on HTTP ----
  const signal = await killServer();
  check(signal === 'SIGKILL', 'server killed with SIGKILL');
  await alice.waitForFunction(() => document.querySelector('#conn')?.dataset.state !== 'online', null, { timeout: T });
  const unsent = ['written during the outage ⚡', '服务器重启后送达'];
  for (const t of unsent) await say(alice, t);
  for (const t of unsent) {
    await waitText(alice, t); // rendered (React may not have yet, right after Enter)
    const st = await statusOf(alice, t);
    check(st === 'sending', `'${t}' shows sending while the server is down (${st})`);
  }
  server = await startServer(port, db);
  for (const t of unsent) await waitStatus(alice, t, 'sent').catch(() => {});
  for (const t of unsent) {
    const st = await statusOf(alice, t);
    check(st === 'sent' || st === 'read', `'${t}' turns sent after the restart (${st})`);
  }
  check(await transportOf(alice) === 'http', 'alice is back over HTTP (the proxy still refuses)');
  for (const t of unsent) await waitText(bob, t);
  await new Promise((r) => setTimeout(r, 500)); // room for a duplicate to show up
  const seen = await shown(bob);
  for (const t of unsent) check(seen.filter((m) => m.text === t).length === 1, `bob sees '${t}' exactly once`);
  const texts = seen.map((m) => m.text);
  check(new Set(texts).size === texts.length, `no duplicates in bob's window (${texts.length} messages)`);

  // ---- 3. WebSocket allowed again: both pages go back to it ----
  proxy.setMode('pass');
  const back = 90000; // probes come 10, 20, 40 s after the fall back, then every minute
  await Promise.all([waitTransport(alice, 'websocket', back), waitTransport(bob, 'websocket', back)])
    .then(() => check(true, 'both pages go back to WebSocket once the proxy passes it'))
    .catch(async () => check(false, `back to WebSocket: alice ${await transportOf(alice)}, bob ${await transportOf(bob)}`));
  await say(alice, 'on WebSocket again');
  await waitText(bob, 'on WebSocket again');
  await waitStatus(alice, 'on WebSocket again', 'read');
  check(true, 'a message after the switch is delivered and read');

  // ---- 4. a proxy that accepts the upgrade and forwards nothing ----
  proxy.setMode('blackhole');
  const ctxC = await browser.newContext({ viewport, locale: 'en-US' });
  const carol = await ctxC.newPage();
  carol.on('pageerror', (e) => check(false, `carol: page error ${e.message}`));
  await carol.goto(`${base}/?uid=carol`);
  await waitTransport(carol, 'http');
  check(proxy.counts.blackholed >= 1, `carol's upgrade was swallowed (${proxy.counts.blackholed}); she fell back to HTTP`);
  await carol.fill('#new-peer', 'alice');
  await carol.press('#new-peer', 'Enter');
  await carol.waitForSelector('#composer', { timeout: T });
  await say(carol, 'from behind a hanging proxy');
  await waitStatus(carol, 'from behind a hanging proxy', 'sent');
  await alice.waitForSelector('li.conv[data-conv="d:alice:carol"]', { timeout: T });
  await alice.click('li.conv[data-conv="d:alice:carol"]');
  await waitText(alice, 'from behind a hanging proxy');
  await waitStatus(carol, 'from behind a hanging proxy', 'read');
  check(true, "carol's message reaches alice and turns read");
  ok = true;
} catch (e) {
  check(false, `unexpected: ${e.stack || e}`);
} finally {
  await browser.close();
  await proxy.close();
  if (server && server.exitCode === null) server.kill('SIGTERM');
}
if (!ok) check(false, 'the run stopped early');
finish();

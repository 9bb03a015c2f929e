// The chat web UI end to end in headless Chromium (playwright-core, Debian's
// /usr/bin/chromium) against `duplex serve --chat`, which this script starts,
// kills with SIGKILL and restarts on the same port and database:
//   1. alice and bob, two browser contexts; alice writes: sending → sent,
//      bob's list shows an unread badge, bob opens it: alice sees read;
//   2. bob goes offline (context.setOffline); alice writes three messages;
//      bob comes back and sees each of them once;
//   3. the server is SIGKILLed; alice writes two messages, which stay
//      "sending"; the server restarts; they turn "sent" and bob sees each
//      exactly once;
//   4. screenshots of both windows;
//   5. a message over the text limit: the composer's counter stops it.
// Usage: node chat.mjs DUPLEX UI_DIR WORK_DIR ARTIFACT_DIR
import fs from 'node:fs';
import path from 'node:path';

import WebSocket from 'ws';

import { check, chromium, finish } from './browser.mjs';
import {
  artifacts, chatOptions, freePort, say, shown, startServer, statusOf, T, waitConn, waitStatus, waitText, work,
} from './chat_ui.mjs';

const db = path.join(work, 'chat.db');
let server = null;

function killServer() {
  return new Promise((resolve) => {
    server.once('exit', (code, signal) => resolve(signal));
    server.kill('SIGKILL');
  });
}

// Records, per message (data-cid), every status it showed, in order: a
// MutationObserver sees even a status that lasted a millisecond.
const recorder = () => {
  window.__statuses = {};
  const note = (el) => {
    if (!(el instanceof Element) || !el.dataset || !el.dataset.cid) return;
    const list = (window.__statuses[el.dataset.cid] ||= []);
    const st = el.dataset.status;
    if (list[list.length - 1] !== st) list.push(st);
  };
  new MutationObserver((muts) => {
    for (const m of muts) {
      if (m.type === 'attributes') note(m.target);
      for (const n of m.addedNodes || []) {
        note(n);
        if (n.querySelectorAll) n.querySelectorAll('[data-cid]').forEach(note);
      }
    }
  }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-status'] });
};

const port = await freePort();
server = await startServer(port, db);
const base = `http://127.0.0.1:${port}`;

const browser = await chromium.launch(chatOptions());

const history = (page, cid) => page.evaluate((c) => window.__statuses[c] || [], cid);
const cidOf = (page, text) => page.$$eval('#msgs li.msg', (els, t) => {
  const e = els.find((x) => x.querySelector('.text').textContent === t);
  return e ? e.dataset.cid : null;
}, text);

let ctxA, ctxB;
try {
  const viewport = { width: 1100, height: 700 };
  ctxA = await browser.newContext({ viewport, locale: 'en-US' });
  ctxB = await browser.newContext({ viewport, locale: 'en-US' });
  await ctxA.addInitScript(recorder);
  await ctxB.addInitScript(recorder);
  const alice = await ctxA.newPage();
  const bob = await ctxB.newPage();
  for (const [name, p] of [['alice', alice], ['bob', bob]]) {
    p.on('pageerror', (e) => check(false, `${name}: page error ${e.message}`));
    p.on('console', (m) => { if (m.type() === 'error') console.log(`  [${name}] ${m.text()}`); });
  }
  await alice.goto(`${base}/?uid=alice`);
  await bob.goto(`${base}/?uid=bob`);
  await waitConn(alice, 'online');
  await waitConn(bob, 'online');
  check(true, 'both windows online');

  // ---- 1. sending → sent → read ----
  await alice.fill('#new-peer', 'bob');
  await alice.press('#new-peer', 'Enter');
  await alice.waitForSelector('#composer', { timeout: T });
  await alice.waitForFunction(() => document.querySelector('#pane-sub')?.textContent === 'online', null, { timeout: T });
  check(true, "alice sees bob 'online' in the conversation header");
  const first = '你好 Bob 👋 第一条消息';
  await say(alice, first);
  await waitStatus(alice, first, 'sent');
  const c1 = await cidOf(alice, first);
  const h1 = await history(alice, c1);
  check(h1[0] === 'sending' && h1.includes('sent'), `status went ${h1.join(' → ')}`);

  await bob.waitForSelector('li.conv[data-conv="d:alice:bob"] .badge', { timeout: T });
  const badge = await bob.textContent('li.conv[data-conv="d:alice:bob"] .badge');
  check(badge === '1', `bob's list shows 1 unread (${badge})`);
  await bob.click('li.conv[data-conv="d:alice:bob"]');
  await waitText(bob, first);
  check(true, 'bob reads the Chinese + emoji text');
  await waitStatus(alice, first, 'read');
  check(true, "alice's message turns 'read' when bob opens the conversation");
  const hr = await history(alice, c1);
  check(hr.join() === 'sending,sent,read', `full history ${hr.join(' → ')}`);

  await say(bob, 'Hi Alice! 🎉 收到了');
  await waitText(alice, 'Hi Alice! 🎉 收到了');
  await waitStatus(bob, 'Hi Alice! 🎉 收到了', 'read'); // alice has it open
  check(true, "bob's reply reaches alice and turns 'read'");

  // ---- 2. bob offline, alice writes, bob returns ----
  await ctxB.setOffline(true);
  await bob.waitForFunction(() => document.querySelector('#conn')?.dataset.state !== 'online', null, { timeout: T });
  check(true, `bob's status line leaves 'online' (${await bob.getAttribute('#conn', 'data-state')})`);
  const away = ['while you were away 1', '离线消息 2 📨', 'while you were away 3'];
  for (const t of away) await say(alice, t);
  for (const t of away) await waitStatus(alice, t, 'sent');
  check(true, 'alice gets acks for three messages while bob is offline');
  await ctxB.setOffline(false);
  await waitConn(bob, 'online');
  for (const t of away) await waitText(bob, t);
  const afterOffline = await shown(bob);
  for (const t of away)
    check(afterOffline.filter((m) => m.text === t).length === 1, `bob sees '${t}' once`);
  for (const t of away) await waitStatus(alice, t, 'read');
  check(true, 'and they turn read for alice');

  // ---- 3. kill -9 with unsent messages ----
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
  await new Promise((r) => setTimeout(r, 1500));
  for (const t of unsent) check(await statusOf(alice, t) === 'sending', `'${t}' still sending 1.5 s later`);
  const connDown = await alice.textContent('#conn');
  check(/reconnecting|connecting/.test(connDown), `alice's status line says '${connDown}'`);
  server = await startServer(port, db);
  check(true, 'server restarted on the same port and database');
  for (const t of unsent) await waitStatus(alice, t, 'sent').catch(() => {});
  for (const t of unsent) {
    const st = await statusOf(alice, t);
    check(st === 'sent' || st === 'read', `'${t}' turns sent after the restart (${st})`);
    const h = await history(alice, await cidOf(alice, t));
    check(h[0] === 'sending' && !h.includes('failed'), `'${t}' went ${h.join(' → ')}`);
  }
  await waitConn(bob, 'online');
  for (const t of unsent) await waitText(bob, t);
  await new Promise((r) => setTimeout(r, 500)); // room for a duplicate to show up
  const final = await shown(bob);
  for (const t of unsent)
    check(final.filter((m) => m.text === t).length === 1, `bob sees '${t}' exactly once`);
  const all = final.map((m) => m.text);
  check(new Set(all).size === all.length, `no duplicates in bob's window (${all.length} messages)`);
  for (const t of unsent) await waitStatus(alice, t, 'read');
  check(true, 'the outage messages turn read');

  // A room: bob writes in the lobby; alice, elsewhere, gets an unread badge.
  await bob.click('li.conv[data-conv="g:lobby"]');
  // The member count follows arrivals without a reload: carol connects
  // (the lobby is joined on connect) while bob looks at the room.
  const members = () => bob.textContent('#pane-sub');
  check(/^2 members$/.test(await members()), `the lobby says '${await members()}' (alice and bob)`);
  const carol = new WebSocket(`ws://127.0.0.1:${port}/chat?uid=carol`);
  await bob.waitForFunction(() => document.querySelector('#pane-sub')?.textContent === '3 members', null, { timeout: T })
    .then(() => check(true, 'carol arrives: the lobby says 3 members at once'))
    .catch(async () => check(false, `carol arrives: the lobby still says '${await members()}'`));
  carol.close();
  await say(bob, '大家好！🌏 Lunch at 12:30?');
  await waitStatus(bob, '大家好！🌏 Lunch at 12:30?', 'sent');
  await alice.waitForSelector('li.conv[data-conv="g:lobby"] .badge', { timeout: T })
    .then(() => check(true, "alice's lobby shows an unread badge"))
    .catch(() => check(false, "alice's lobby shows an unread badge"));
  await bob.click('li.conv[data-conv="d:alice:bob"]');

  // A last touch for the picture: bob types.
  await bob.fill('#composer', '好的');
  await bob.dispatchEvent('#composer', 'input');
  await alice.waitForFunction(() => /typing/.test(document.querySelector('#pane-sub')?.textContent || ''), null, { timeout: T })
    .then(() => check(true, 'alice sees "bob is typing…"'))
    .catch(() => check(false, 'alice sees "bob is typing…"'));

  // ---- 4. screenshots ----
  fs.mkdirSync(artifacts, { recursive: true });
  await alice.screenshot({ path: path.join(artifacts, 'chat-alice.png') });
  await bob.screenshot({ path: path.join(artifacts, 'chat-bob.png') });
  console.log(`screenshots: ${artifacts}/chat-alice.png, chat-bob.png`);

  // ---- 5. a message over the limit is never sent: the composer counts
  // bytes near the limit and refuses past it (issue 17; what the server's
  // refusal looks like is tests/e2e/chat_offline.mjs's business) ----
  const long = 'x'.repeat(4001); // over the protocol's 4000 bytes
  const before = (await shown(alice)).length;
  await alice.fill('#composer', long);
  const counter = await alice.textContent('#counter').catch(() => null);
  check(counter === '1 too many bytes', `the composer says '${counter}'`);
  check(await alice.isDisabled('#send'), 'Send is disabled over the limit');
  await alice.press('#composer', 'Enter');
  await new Promise((r) => setTimeout(r, 300));
  check((await shown(alice)).length === before, 'Enter sends nothing over the limit');
  check(await alice.inputValue('#composer') === long, 'and the text stays in the composer');
  await alice.fill('#composer', 'x'.repeat(3990));
  const near = await alice.textContent('#counter').catch(() => null);
  check(near === '10 bytes left' && !(await alice.isDisabled('#send')), `near the limit: '${near}', Send enabled`);
} catch (e) {
  check(false, `exception: ${e.stack || e}`);
} finally {
  await browser.close().catch(() => {});
  if (server && server.exitCode === null) {
    // A clean stop: SIGTERM must end the server with status 0.
    const code = await new Promise((resolve) => {
      server.once('exit', (c) => resolve(c));
      server.kill('SIGTERM');
    });
    check(code === 0, `server exits 0 on SIGTERM (${code})`);
  }
}
finish();

// Issue 17, "nothing a person typed is ever lost", in the chat web UI: headless
// Chromium (playwright-core, /usr/bin/chromium) against `duplex serve --chat`,
// which this script starts, stops (SIGSTOP), kills and restarts:
//   1. "Load older messages" keeps the reader's place (no jump to the end);
//   2. a contact's presence is unknown (not green) while alice is offline,
//      and what the reconnection's sync says afterwards;
//   3. the server stalls (SIGSTOP) past the ack timeout: the message shows
//      failed (transient, Resend offered); the server goes on (SIGCONT) and
//      its late ack turns it sent without a click;
//   4. the same stall, then the server dies (SIGKILL) and comes back: the
//      failed message is retried after the reconnection, same cid, once;
//   5. alice's persistent profile (--user-data-dir) goes offline, she sends
//      and half-types a draft, the browser closes; relaunched, the message
//      shows again (same cid) with the draft, and is sent once the server is
//      reachable; bob sees it exactly once;
//   6. a message the server refuses for good (too_large; the welcome's limit
//      is raised in flight so that the composer lets it through) shows the
//      reason inline, no Resend, and is still there after a reload;
//   7. a sign-in refused with close code 4401 stops reconnecting and shows
//      "sign-in refused: <reason>" with a token input; against the real
//      server too when it refuses bad tokens that way (docs/chat-protocol.md),
//      and a good token typed there signs in.
// Screenshots of 6 and 7 go to ARTIFACT_DIR.
// Usage: node chat_offline.mjs DUPLEX UI_DIR WORK_DIR ARTIFACT_DIR
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

import { check, chromium, finish } from './browser.mjs';
import {
  artifacts, chatOptions, duplex, freePort, say, shown, sleep, startServer, statusOf, T, waitConn, waitStatus,
  waitText, work,
} from './chat_ui.mjs';

const root = process.env.DX_ROOT ?? path.resolve(import.meta.dirname, '../..');
const WebSocket = createRequire(path.join(root, 'package.json'))('ws');

const stopped = (p) => new Promise((resolve) => {
  if (p.exitCode !== null || p.signalCode !== null) resolve();
  else p.once('exit', () => resolve());
});

// Writes `n` messages from `uid` to `conv` over a plain WebSocket, one ack
// at a time (well inside the send burst).
async function seed(port, uid, conv, n) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/chat?uid=${uid}`);
  const waiting = new Map();
  ws.on('message', (d) => {
    const m = JSON.parse(String(d));
    if (m.id && waiting.has(m.id)) waiting.get(m.id)(m);
  });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  for (let i = 1; i <= n; i++) {
    const id = `s${i}`;
    const r = await new Promise((resolve) => {
      waiting.set(id, resolve);
      ws.send(JSON.stringify({ v: 1, type: 'send', id, conv, cid: `seed-${i}`, text: `old message ${i}` }));
    });
    if (r.type !== 'ack') throw new Error(`seed ${i}: ${JSON.stringify(r)}`);
  }
  ws.close();
}

// ---- page helpers ----
const msgSel = (text) => `#msgs li.msg:has(.text:text-is(${JSON.stringify(text)}))`;
const dotOf = (page, conv) => page.$eval(`li.conv[data-conv="${conv}"] .dot`, (d) => d.className);
const watch = (page, name) => {
  page.on('pageerror', (e) => check(false, `${name}: page error ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/WebSocket connection/.test(m.text())) console.log(`  [${name}] ${m.text()}`); });
};
// The heartbeat's pings and pongs of a page, and the send frames it wrote.
const frames = (page) => {
  const f = { lastPong: 0, sends: [] };
  page.on('websocket', (ws) => {
    ws.on('framereceived', ({ payload }) => { if (payload === 'pong') f.lastPong = Date.now(); });
    ws.on('framesent', ({ payload }) => {
      if (typeof payload === 'string' && payload.includes('"type":"send"')) f.sends.push(JSON.parse(payload));
    });
  });
  return f;
};
// Waits for a fresh heartbeat answer, so that the next ping is ~10 s away
// (useIM's interval): a stall that starts now and lasts under 10 s is not
// taken for a dead link, and the socket survives it.
async function afterPong(f) {
  const since = f.lastPong;
  const until = Date.now() + 15000;
  while (f.lastPong === since && Date.now() < until) await sleep(20);
  return f.lastPong !== since;
}

const port = await freePort();
const db = path.join(work, 'chat.db');
let server = await startServer(port, db);
const base = `http://127.0.0.1:${port}`;
const conv = 'd:alice:bob';
fs.mkdirSync(artifacts, { recursive: true });
const profile = path.join(work, 'alice-profile');
const viewport = { width: 1100, height: 700 };
const persistent = () => chromium.launchPersistentContext(profile, chatOptions({ viewport, locale: 'en-US' }));

const browser = await chromium.launch(chatOptions());
let ctxA;
try {
  await seed(port, 'bob', conv, 70); // sync gives the latest 50, history the rest

  // ---- 1. "Load older messages" keeps the reader's place ----
  ctxA = await persistent();
  let alice = ctxA.pages()[0] || await ctxA.newPage();
  watch(alice, 'alice');
  let fa = frames(alice);
  await alice.goto(`${base}/?uid=alice`);
  await waitConn(alice, 'online');
  await alice.click(`li.conv[data-conv="${conv}"]`);
  await waitText(alice, 'old message 70');
  await alice.waitForSelector('li.older button', { timeout: T });
  // The reader scrolls to the top; the first message is where she reads.
  await alice.$eval('#msgs', (el) => { el.scrollTop = 0; });
  await sleep(200);
  const firstBefore = await alice.$eval('#msgs li.msg', (e) => ({ cid: e.dataset.cid, top: e.getBoundingClientRect().top }));
  const countBefore = (await shown(alice)).length;
  await alice.click('li.older button');
  await alice.waitForFunction((n) => document.querySelectorAll('#msgs li.msg').length > n, countBefore, { timeout: T });
  await sleep(200);
  const place = await alice.$eval('#msgs', (el, cid) => {
    const e = el.querySelector(`li.msg[data-cid="${cid}"]`);
    return { top: e.getBoundingClientRect().top, scrollTop: el.scrollTop, bottom: el.scrollHeight - el.clientHeight };
  }, firstBefore.cid);
  check((await shown(alice)).length === 70, `the older messages are there (${(await shown(alice)).length} of 70)`);
  check(Math.abs(place.top - firstBefore.top) <= 2,
    `the message read before stays in place after "Load older" (${firstBefore.top} → ${place.top} px)`);
  check(place.scrollTop < place.bottom - 100, `the view did not jump to the end (scrollTop ${place.scrollTop} of ${place.bottom})`);

  // ---- 2. presence is unknown while alice is offline ----
  const ctxB = await browser.newContext({ viewport, locale: 'en-US' });
  const bob = await ctxB.newPage();
  watch(bob, 'bob');
  await bob.goto(`${base}/?uid=bob`);
  await waitConn(bob, 'online');
  await bob.click(`li.conv[data-conv="${conv}"]`);
  await alice.waitForFunction((c) => document.querySelector(`li.conv[data-conv="${c}"] .dot`)?.classList.contains('on'), conv, { timeout: T });
  check(true, 'alice sees bob online (green dot)');
  await ctxA.setOffline(true);
  await alice.waitForFunction(() => document.querySelector('#conn')?.dataset.state !== 'online', null, { timeout: T });
  await alice.waitForFunction((c) => !document.querySelector(`li.conv[data-conv="${c}"] .dot`)?.classList.contains('on'), conv, { timeout: 3000 })
    .catch(() => {});
  const dotOff = await dotOf(alice, conv);
  check(!/\bon\b/.test(dotOff) && /unknown/.test(dotOff), `offline, alice's dot for bob is not green but unknown ('${dotOff}')`);
  const subOff = await alice.textContent('#pane-sub');
  check(subOff !== 'online' && /unknown/.test(subOff), `and the header says '${subOff}'`);
  await bob.close(); // bob leaves while alice cannot know
  await sleep(500);
  await ctxA.setOffline(false);
  await waitConn(alice, 'online');
  await alice.waitForFunction((c) => document.querySelector(`li.conv[data-conv="${c}"] .dot`)?.dataset.presence === 'off', conv, { timeout: T })
    .catch(() => {});
  const dotBack = await dotOf(alice, conv);
  const subBack = await alice.textContent('#pane-sub');
  check(dotBack === 'dot' && /last seen/.test(subBack), `back online, the sync says bob left ('${dotBack}', '${subBack}')`);

  // ---- 3. a stall past the ack timeout, then the late ack ----
  const bob2 = await ctxB.newPage();
  watch(bob2, 'bob');
  await bob2.goto(`${base}/?uid=bob`);
  await waitConn(bob2, 'online');
  await bob2.click(`li.conv[data-conv="${conv}"]`);
  check(await afterPong(fa), 'a heartbeat answer before the stall');
  const stalled = 'sent while the server stalls ⏸';
  server.kill('SIGSTOP');
  await say(alice, stalled);
  await waitStatus(alice, stalled, 'failed', 12000).catch(() => {});
  check(await statusOf(alice, stalled) === 'failed', 'no ack within 8 s: failed');
  const transient = await alice.$(`${msgSel(stalled)} .why[data-permanent="no"] button.resend`);
  check(!!transient, 'a transient failure offers Resend, with its reason inline');
  server.kill('SIGCONT');
  await waitStatus(alice, stalled, 'sent', 5000).catch(() => {});
  const late = await statusOf(alice, stalled);
  check(late === 'sent' || late === 'read', `the server's late ack turns it sent without a click (${late})`);

  // ---- 4. the same stall, then the server dies: retried after the reconnection ----
  check(await afterPong(fa), 'a heartbeat answer before the second stall');
  const retried = 'failed, then retried after the restart 🔁';
  server.kill('SIGSTOP');
  await say(alice, retried);
  await waitStatus(alice, retried, 'failed', 12000).catch(() => {});
  check(await statusOf(alice, retried) === 'failed', 'stalled again: failed');
  server.kill('SIGKILL');
  await stopped(server);
  server = await startServer(port, db);
  await waitStatus(alice, retried, 'sent', T).catch(() => {});
  const after = await statusOf(alice, retried);
  check(after === 'sent' || after === 'read', `after the reconnection it went again by itself (${after})`);
  const cids = new Set(fa.sends.filter((s) => s.text === retried).map((s) => s.cid));
  check(cids.size === 1, `every attempt carried the same cid (${cids.size})`);
  // Soft waits from here on: a failed section is counted, the next ones run.
  await waitText(bob2, retried).catch(() => {});
  await waitText(bob2, stalled).catch(() => {});
  await sleep(500);
  const bobSees = await shown(bob2);
  for (const t of [stalled, retried])
    check(bobSees.filter((m) => m.text === t).length === 1, `bob sees '${t}' exactly once`);

  // ---- 5. the outbox and the draft outlive the browser ----
  await ctxA.setOffline(true);
  await alice.waitForFunction(() => document.querySelector('#conn')?.dataset.state !== 'online', null, { timeout: T });
  const kept = 'written offline, then the browser closed 📦';
  const draft = 'half-typed, never sent';
  await say(alice, kept);
  await waitStatus(alice, kept, 'sending');
  const keptCid = (await shown(alice)).find((m) => m.text === kept).cid;
  await alice.fill('#composer', draft);
  await sleep(300); // the draft's write is one IndexedDB transaction
  await ctxA.close();
  ctxA = null;
  check(true, 'alice closes the browser while offline');

  ctxA = await persistent();
  alice = ctxA.pages()[0] || await ctxA.newPage();
  watch(alice, 'alice');
  fa = frames(alice);
  // The server cannot be reached until `reachable`: each attempt is closed
  // at once, as a network that is still down would.
  let reachable = false;
  let attempts = 0;
  await alice.routeWebSocket(/\/chat/, (ws) => {
    attempts++;
    if (reachable) ws.connectToServer();
    else ws.close({ code: 4000, reason: 'unreachable' });
  });
  // DuplexSocket falls back to the HTTP session transport when WebSocket
  // fails: the network being down, that fails too.
  await alice.route(/\/chat/, (r) => (!reachable && r.request().headers()['x-duplex-session'] === '1' ? r.abort() : r.continue()));
  await alice.goto(`${base}/?uid=alice`);
  const listed = await alice.waitForSelector(`li.conv[data-conv="${conv}"]`, { timeout: T }).then(() => true, () => false);
  check(listed, 'relaunched unconnected, the conversation of the unsent message is listed');
  if (listed) await alice.click(`li.conv[data-conv="${conv}"]`);
  await waitText(alice, kept).catch(() => {});
  const back = (await shown(alice)).find((m) => m.text === kept);
  check(!!back && back.status === 'sending', `relaunched, the unsent message is there again (${back?.status})`);
  check(back?.cid === keptCid, 'with the same cid');
  const draftBack = await alice.inputValue('#composer', { timeout: 2000 }).catch(() => null);
  check(draftBack === draft, `and the draft is back in the composer ('${draftBack}')`);
  check(attempts > 0 && await alice.getAttribute('#conn', 'data-state') !== 'online', `not connected meanwhile (${attempts} attempts)`);
  reachable = true;
  await ctxA.setOffline(true); // an 'online' event: connect now, not after the backoff
  await ctxA.setOffline(false);
  await waitStatus(alice, kept, 'sent').catch(() => {});
  const sentBack = await statusOf(alice, kept);
  check(sentBack === 'sent' || sentBack === 'read', `once reachable it is sent (${sentBack})`);
  check(fa.sends.some((s) => s.cid === keptCid && s.text === kept), 'with the cid it had before the browser closed');
  await waitText(bob2, kept).catch(() => {});
  await sleep(500);
  check((await shown(bob2)).filter((m) => m.text === kept).length === 1, `bob sees '${kept}' exactly once`);

  // ---- 6. a permanent refusal: the reason inline, no Resend ----
  const ctxC = await browser.newContext({ viewport, locale: 'en-US' });
  const carol = await ctxC.newPage();
  watch(carol, 'alice/2');
  // The welcome says 10000 bytes, so the composer lets 4001 through and the
  // server's own check answers (too_large).
  await carol.routeWebSocket(/\/chat/, (ws) => {
    const srv = ws.connectToServer();
    srv.onMessage((m) => {
      if (typeof m === 'string' && m.includes('"welcome"')) {
        const w = JSON.parse(m);
        w.limits = { ...(w.limits || {}), text: 10000 };
        m = JSON.stringify(w);
      }
      ws.send(m);
    });
  });
  await carol.goto(`${base}/?uid=alice`);
  await waitConn(carol, 'online');
  await carol.click(`li.conv[data-conv="${conv}"]`);
  const long = 'x'.repeat(4001);
  await say(carol, long);
  await waitStatus(carol, long, 'failed').catch(() => {});
  const why = await carol.$(`${msgSel(long)} .why`);
  const reason = why ? await why.$eval('.reason', (e) => e.textContent) : null;
  check(/4000 bytes/.test(reason || ''), `the reason is shown inline ('${reason}')`);
  check(!(await carol.$(`${msgSel(long)} button.resend`)), 'no Resend for what cannot succeed');
  check(!!(await carol.$(`${msgSel(long)} button.edit`)), 'but Edit, to fix it');
  await carol.$eval('#msgs', (el) => { el.scrollTop = el.scrollHeight; });
  await carol.screenshot({ path: path.join(artifacts, 'chat-failed-reason.png') });
  await carol.reload();
  await waitConn(carol, 'online');
  await carol.click(`li.conv[data-conv="${conv}"]`);
  await waitStatus(carol, long, 'failed').catch(() => {});
  check(await statusOf(carol, long) === 'failed', 'after a reload it is still there, failed, with its reason');
  await carol.click(`${msgSel(long)} button.edit`, { timeout: 2000 }).catch(() => {});
  check(await carol.inputValue('#composer') === long && !(await statusOf(carol, long)),
    'Edit puts the text back in the composer');
  await ctxC.close();

  // ---- 7. a refused sign-in ----
  const ctxD = await browser.newContext({ viewport, locale: 'en-US' });
  const dave = await ctxD.newPage();
  watch(dave, 'refused');
  let tries = 0;
  await dave.routeWebSocket(/\/chat/, (ws) => {
    tries++;
    ws.close({ code: 4401, reason: 'token expired' });
  });
  await dave.goto(`${base}/?token=alice.1.bad`);
  const refused = await dave.waitForSelector('#refused-why', { timeout: T }).then((e) => e.textContent()).catch(() => null);
  check(refused === 'sign-in refused: token expired', `close 4401 shows '${refused}'`);
  check(!!(await dave.$('#refused input#token')), 'with a token input to sign in again');
  await sleep(2500);
  check(tries === 1, `and no reconnection (${tries} attempt)`);
  await dave.screenshot({ path: path.join(artifacts, 'chat-signin-refused.png') });
  await ctxD.close();

  // Against the real server, which refuses a bad token with 4401
  // (docs/chat-protocol.md).
  const p2 = await freePort();
  const secret = 'e2e-secret-0123456789abcdef-0123456789';
  const s2 = await startServer(p2, path.join(work, 'secret.db'), ['--secret', secret]);
  try {
    const ctxE = await browser.newContext({ viewport, locale: 'en-US' });
    const eve = await ctxE.newPage();
    watch(eve, 'refused/real');
    await eve.goto(`http://127.0.0.1:${p2}/?token=alice.9999999999.AAAAbad`);
    const real = await eve.waitForSelector('#refused-why', { timeout: T }).then((e) => e.textContent()).catch(() => null);
    check(/^sign-in refused: ./.test(real || ''), `the real server's refusal shows '${real}'`);
    // Signing in again with a good token from the refusal screen.
    const good = spawnSync(duplex, ['serve', '--chat', '--secret', secret, '--token-for', 'alice'],
      { encoding: 'utf8' }).stdout.trim();
    await eve.fill('#token', good);
    await eve.press('#token', 'Enter');
    await waitConn(eve, 'online').then(() => check(true, 'a fresh token from that screen signs alice in'),
      () => check(false, 'a fresh token from that screen signs alice in'));
    // A token server's first screen asks for a token, not a name.
    await eve.goto(`http://127.0.0.1:${p2}/`);
    const asks = await eve.waitForSelector('#login-token', { timeout: T }).then(() => true, () => false);
    check(asks, "a token server's sign-in screen asks for a token");
    if (asks) {
      await eve.fill('#login-token', good);
      await eve.press('#login-token', 'Enter');
      await waitConn(eve, 'online').then(() => check(true, 'a pasted token signs alice in'),
        () => check(false, 'a pasted token signs alice in'));
    }
    await ctxE.close();
  } finally {
    s2.kill('SIGTERM');
    await stopped(s2);
  }

  // --dev-login: the sign-in screen takes a name and the server signs a
  // token for it (POST /token), for pages on this machine.
  const p3 = await freePort();
  const s3 = await startServer(p3, path.join(work, 'dev.db'), ['--secret', secret, '--dev-login']);
  try {
    const ctxF = await browser.newContext({ viewport, locale: 'en-US' });
    const fay = await ctxF.newPage();
    watch(fay, 'dev-login');
    await fay.goto(`http://127.0.0.1:${p3}/`);
    const help = await fay.waitForSelector('#login-help', { timeout: T }).then((e) => e.textContent()).catch(() => '');
    await fay.waitForFunction(() => /Development sign-in/.test(document.querySelector('#login-help')?.textContent || ''),
      null, { timeout: T }).catch(() => {});
    check(/Development sign-in/.test(await fay.textContent('#login-help').catch(() => help)),
      'a --dev-login server offers the development sign-in');
    await fay.fill('#login-name', 'fay');
    await fay.press('#login-name', 'Enter');
    await waitConn(fay, 'online').then(() => check(true, 'a name signs fay in with a minted token'),
      () => check(false, 'a name signs fay in with a minted token'));
    check(/[?&]token=fay\./.test(fay.url()), `the page now carries fay's token (${fay.url().split('?')[1] || ''})`);
    await ctxF.close();
  } finally {
    s3.kill('SIGTERM');
    await stopped(s3);
  }
} catch (e) {
  check(false, `exception: ${e.stack || e}`);
} finally {
  if (ctxA) await ctxA.close().catch(() => {});
  await browser.close().catch(() => {});
  if (server.exitCode === null && server.signalCode === null) {
    server.kill('SIGCONT');
    server.kill('SIGTERM');
    await stopped(server);
  }
}
console.log(`screenshots: ${artifacts}/chat-failed-reason.png, chat-signin-refused.png`);
finish();

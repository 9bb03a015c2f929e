// Issue 18 in the chat web UI: private groups, recall and edit, search
// (docs/chat-protocol.md, "Revision 2"), in headless Chromium
// (playwright-core, /usr/bin/chromium) against `duplex serve --chat`:
//   0. against a revision-1 welcome none of this is offered;
//   1. alice creates a group with bob from "New group" (the form's inline
//      validation first); it shows in her list with its title and a group
//      avatar; bob gets it with its system message;
//   2. carol, not a member, sees nothing of it, and requests for it over a
//      raw WebSocket of hers (history, send, group_members, group_add, and a
//      guessed id) are all answered `forbidden`;
//   3. alice edits a message from its menu (keyboard: Enter opens it, arrows,
//      Esc gives the focus back) and recalls another: bob and alice's second
//      device (another browser context) see "edited" and "alice recalled a
//      message"; event messages are never bubbles;
//   4. search: 你好世界, sent in a conversation and buried under 70 newer
//      messages, is found by 你好 and by 世界 (marked), newest first; an
//      empty result says so; a result opens the conversation at that
//      message (older history loaded, scrolled to, highlighted);
//   5. the group info panel: roles, make admin, add carol (who then sees the
//      group), what a plain member is not offered; alice removes bob: his
//      conversation turns read-only with a note and no composer;
//   6. phones (390x844): the info panel and the search panel inside the
//      screen with 44 px targets; axe-core on the dialog, the panel and the
//      search: no serious or critical violation;
//   7. a recall past the server's window (--recall-window 1) shows the
//      server's too_late next to the message.
// Screenshots go to ARTIFACT_DIR, and the docs' two (desktop 1280x800) to
// docs/chat-group.png and docs/chat-search.png when DX_DOCS_SHOTS=DIR is
// set (DX_DOCS_SHOTS=docs to refresh them).
// Usage: node chat_groups.mjs DUPLEX UI_DIR WORK_DIR ARTIFACT_DIR
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

import { check, chromium, finish } from './browser.mjs';
import {
  artifacts, axe, chatOptions, freePort, say, sleep, startServer, T, waitConn, waitText, work,
} from './chat_ui.mjs';

const root = process.env.DX_ROOT ?? path.resolve(import.meta.dirname, '../..');
const WebSocket = createRequire(path.join(root, 'package.json'))('ws');
const docs = process.env.DX_DOCS_SHOTS || null;

fs.mkdirSync(artifacts, { recursive: true });
const shot = async (page, name, docName = null) => {
  await page.screenshot({ path: path.join(artifacts, name) });
  if (docs && docName) await page.screenshot({ path: path.join(docs, docName) });
  console.log(`screenshot: ${name}`);
};


// A plain WebSocket client of the test: requests answered by id.
async function client(port, uid) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/chat?uid=${uid}`);
  const waiting = new Map();
  let n = 0;
  const welcome = new Promise((resolve) => {
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString());
      if (m.type === 'welcome') resolve(m);
      if (m.id !== undefined && waiting.has(m.id)) { waiting.get(m.id)(m); waiting.delete(m.id); }
    });
  });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const hello = await welcome;
  const ask = (req) => {
    const id = `t${++n}`;
    const p = new Promise((resolve, reject) => {
      waiting.set(id, resolve);
      setTimeout(() => reject(new Error(`no answer to ${req.type}`)), T);
    });
    ws.send(JSON.stringify({ v: 1, id, ...req }));
    return p;
  };
  return { ask, hello, close: () => ws.close() };
}

// Every visible control inside the viewport and, on a phone, 44 px at least.
const controlsOff = (page, min, scope = 'body') => page.evaluate(([m, sc]) => {
  const w = window.innerWidth, h = window.innerHeight;
  const bad = [];
  for (const el of document.querySelector(sc).querySelectorAll('button, input, a[href], [role="button"]')) {
    const r = el.getBoundingClientRect();
    const st = getComputedStyle(el);
    if (r.width === 0 || r.height === 0 || st.visibility === 'hidden') continue;
    const name = `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}.${el.className || ''}'${(el.getAttribute('aria-label') || el.textContent || '').slice(0, 20)}'`;
    const scroller = el.closest('.convs, .msgs, .results, .info-body');
    const inside = r.left >= -0.5 && r.right <= w + 0.5 && (scroller || (r.top >= -0.5 && r.bottom <= h + 0.5));
    if (!inside) bad.push(`${name} at ${Math.round(r.left)},${Math.round(r.top)} ${Math.round(r.width)}x${Math.round(r.height)} outside ${w}x${h}`);
    else if (m && !el.closest('.chips') && (r.width < m - 0.5 || r.height < m - 0.5)) bad.push(`${name} ${Math.round(r.width)}x${Math.round(r.height)} under ${m} px`);
  }
  return bad;
}, [min, scope]);
const hScroll = (page) => page.evaluate(() => document.scrollingElement.scrollWidth - window.innerWidth);
const inView = (page, sel) => page.$eval(sel, (e) => {
  const r = e.getBoundingClientRect();
  return r.width > 0 && r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight + 0.5 && r.left >= 0 && r.right <= window.innerWidth + 0.5;
}).catch(() => false);
const texts = (page, sel) => page.$$eval(sel, (els) => els.map((e) => e.textContent));
const msgSel = (text) => `#msgs li.msg:has(.text:text-is("${text}"))`;

const port = await freePort();
const server = await startServer(port, path.join(work, 'groups.db'));
let server2 = null;
const base = `http://127.0.0.1:${port}`;
const browser = await chromium.launch(chatOptions());
const desk = { viewport: { width: 1280, height: 800 }, locale: 'en-GB', timezoneId: 'UTC' };
const pages = [];
// `hold(text)`: whether to keep a server message from the page (a push it
// should have had, to make it act on stale state).
const open = async (uid, opts = desk, hold = null) => {
  const ctx = await browser.newContext(opts);
  const p = await ctx.newPage();
  if (hold) {
    await p.routeWebSocket(/\/chat/, (ws) => {
      const srv = ws.connectToServer();
      srv.onMessage((m) => { if (!(typeof m === 'string' && hold(m))) ws.send(m); });
      ws.onMessage((m) => srv.send(m));
    });
  }
  p.on('pageerror', (e) => check(false, `${uid}: page error ${e.message}`));
  p.on('console', (m) => { if (m.type() === 'error') console.log(`  [${uid}] ${m.text()}`); });
  await p.goto(`${base}/?uid=${uid}`);
  await waitConn(p, 'online');
  pages.push(ctx);
  return p;
};
const TITLE = 'Weekend trip 🏕️';
const HELLO = '你好世界, see you Saturday';

try {
  // People exist from their first connection; bob says hello to alice.
  for (const u of ['alice', 'bob', 'carol']) (await client(port, u)).close();
  const probe = await client(port, 'dave');
  check(probe.hello.rev >= 2, `the server speaks revision 2 (welcome.rev ${probe.hello.rev})`);
  probe.close();

  // A revision-1 server (welcome without `rev`, rewritten here): no groups,
  // search or message menu are offered.
  {
    const ctx = await browser.newContext(desk);
    const p = await ctx.newPage();
    await p.routeWebSocket(/\/chat/, (ws) => {
      const srv = ws.connectToServer();
      srv.onMessage((m) => {
        if (typeof m === 'string' && m.includes('"welcome"')) { const o = JSON.parse(m); delete o.rev; m = JSON.stringify(o); }
        ws.send(m);
      });
      ws.onMessage((m) => srv.send(m));
    });
    await p.goto(`${base}/?uid=erin`);
    await waitConn(p, 'online');
    await p.fill('#new-peer', 'bob');
    await p.press('#new-peer', 'Enter');
    await say(p, 'An old server');
    await p.waitForSelector('#msgs li.msg[data-status="sent"]', { timeout: T }).catch(() => {});
    check(await p.$('#new-group-open, #search-open, .msg-more') === null, 'revision 1: no New group, Search or message menu');
    await ctx.close();
  }

  const alice = await open('alice');
  let holdRole = false; // bob's page misses the role changes while set
  const bob = await open('bob', desk, (m) => holdRole && m.includes('"op":"role"'));
  const carol = await open('carol');
  const alice2 = await open('alice'); // her second device

  // ---- 1. alice creates a group with bob ----
  check(await alice.isVisible('#new-group-open') && await alice.isVisible('#search-open'), 'New group and Search are offered (rev 2)');
  await alice.click('#new-group-open');
  await alice.waitForSelector('dialog#new-group[open]', { timeout: T });
  check(await alice.evaluate(() => document.activeElement?.id) === 'group-title', 'the dialog opens on the name field');
  await alice.click('#group-create');
  check(await alice.isVisible('#group-title-error'), `an empty name is refused inline ('${await alice.textContent('#group-title-error').catch(() => '')}')`);
  await alice.fill('#group-members', 'bad!name');
  await alice.press('#group-members', 'Enter');
  check(await alice.isVisible('#group-members-error'), `an invalid uid is refused inline ('${await alice.textContent('#group-members-error').catch(() => '')}')`);
  await alice.fill('#group-members', 'alice');
  await alice.press('#group-members', 'Enter');
  check(/already/.test(await alice.textContent('#group-members-error').catch(() => '')), 'adding oneself is refused inline');
  await alice.fill('#group-title', TITLE);
  await alice.fill('#group-members', 'bob');
  await alice.press('#group-members', 'Enter');
  check(await alice.isVisible('.chip[data-uid="bob"]'), 'bob is picked (a chip)');
  await axe(alice, 'the New group dialog');
  await shot(alice, 'chat-group-new.png');
  await alice.click('#group-create');
  await alice.waitForFunction((t) => document.querySelector('#pane-title')?.textContent === t, TITLE, { timeout: T });
  const conv = await alice.$eval('li.conv.active', (e) => e.dataset.conv);
  check(/^p:[a-z0-9]{16}$/.test(conv), `the group is open: ${conv}`);
  check(!(await alice.isVisible('dialog#new-group')), 'the dialog closed');
  check(await alice.isVisible(`li.conv[data-conv="${conv}"] .avatar.group`), 'the list shows it with a group avatar');
  await alice.waitForSelector('#msgs li.note.sys[data-op="create"]', { timeout: T });
  check(true, `alice sees '${await alice.textContent('#msgs li.note.sys[data-op="create"]')}'`);

  await bob.waitForSelector(`li.conv[data-conv="${conv}"]`, { timeout: T });
  check(await bob.textContent(`li.conv[data-conv="${conv}"] .conv-title`) === `${TITLE}, group`, "the group is in bob's list with its title");
  await bob.click(`li.conv[data-conv="${conv}"] button`);
  await bob.waitForSelector('#msgs li.note.sys[data-op="create"]', { timeout: T });
  const sysLine = await bob.textContent('#msgs li.note.sys[data-op="create"]');
  check(/alice created the group/.test(sysLine), `bob sees the system message, centred: '${sysLine}'`);
  check(await bob.$$eval('#msgs li.msg', (els) => els.length) === 0, 'a system message is not a bubble');

  // ---- 2. carol sees nothing, and is refused ----
  await say(alice, 'Who brings the tent?');
  await waitText(bob, 'Who brings the tent?');
  await sleep(500);
  check(await carol.$(`li.conv[data-conv="${conv}"]`) === null, "the group is not in carol's list");
  check(!(await carol.textContent('body')).includes('Weekend trip'), "its title is nowhere on carol's page");
  const forged = await carol.evaluate(async (c) => {
    const ws = new WebSocket(`ws://${location.host}/chat?uid=carol`);
    const got = new Map();
    ws.onmessage = (e) => { const m = JSON.parse(e.data); if (m.id) got.set(m.id, m); };
    await new Promise((r, j) => { ws.onopen = r; ws.onerror = j; });
    const reqs = [
      { type: 'history', conv: c }, { type: 'send', conv: c, cid: 'forged-1', text: 'let me in' },
      { type: 'group_members', conv: c }, { type: 'group_add', conv: c, uids: ['carol'] },
      { type: 'read', conv: c, seq: 1 }, { type: 'history', conv: 'p:aaaaaaaaaaaaaaaa' },
    ];
    reqs.forEach((r, i) => ws.send(JSON.stringify({ v: 1, id: `f${i}`, ...r })));
    for (let i = 0; i < 100 && got.size < reqs.length; i++) await new Promise((r) => setTimeout(r, 50));
    ws.close();
    return reqs.map((r, i) => `${r.type}${r.conv.endsWith('aaaa') ? '(guessed id)' : ''}: ${got.get(`f${i}`)?.code || got.get(`f${i}`)?.type}`);
  }, conv);
  check(forged.every((s) => s.endsWith(': forbidden')), `carol's forged requests are refused: ${forged.join(', ')}`);
  check(!(await alice.textContent('#msgs')).includes('let me in'), "carol's forged message is nowhere");

  // ---- 3. edit and recall ----
  await alice2.click(`li.conv[data-conv="${conv}"] button`);
  await say(alice, 'Meet at 9 at the stattion');
  await waitText(bob, 'Meet at 9 at the stattion');
  await waitText(alice2, 'Meet at 9 at the stattion');
  const typo = msgSel('Meet at 9 at the stattion');
  await alice.waitForSelector(`${typo}[data-seq]:not([data-seq=""])`, { timeout: T });
  check(await bob.$(`${msgSel('Meet at 9 at the stattion')} .msg-more`) === null, "bob is offered no menu on alice's message");
  // Keyboard: focus ⋯, Enter opens the menu on its first item, arrows move, Esc closes.
  await alice.focus(`${typo} .msg-more`);
  await alice.keyboard.press('Enter');
  await alice.waitForSelector(`${typo} [role="menu"]`, { timeout: T });
  const items = await texts(alice, `${typo} [role="menuitem"]`);
  check(items.map((s) => s.trim()).join(',') === 'Edit,Recall', `the menu offers ${JSON.stringify(items.map((s) => s.trim()))}`);
  check(await alice.evaluate(() => document.activeElement?.className) === 'menu-edit', 'Enter opened it on Edit');
  await alice.keyboard.press('ArrowDown');
  check(await alice.evaluate(() => document.activeElement?.className) === 'menu-recall', 'ArrowDown moves to Recall');
  await alice.keyboard.press('Escape');
  check(await alice.$(`${typo} [role="menu"]`) === null && await alice.evaluate(() => document.activeElement?.classList.contains('msg-more')),
    'Esc closes it and gives the focus back to ⋯');
  await alice.keyboard.press('Enter');
  await alice.keyboard.press('Enter'); // Edit
  await alice.waitForSelector('#edit-bar', { timeout: T });
  check(await alice.inputValue('#composer') === 'Meet at 9 at the stattion', 'Edit puts the text in the composer');
  await alice.press('#composer', 'Escape');
  check(await alice.$('#edit-bar') === null && await alice.inputValue('#composer') === '', 'Esc cancels the edit');
  await alice.hover(typo);
  await alice.click(`${typo} .msg-more`);
  await alice.click(`${typo} .menu-edit`);
  await alice.fill('#composer', 'Meet at 9 at the station');
  await alice.press('#composer', 'Enter');
  const edited = `${msgSel('Meet at 9 at the station')}[data-edited="yes"] .edited`;
  await alice.waitForSelector(edited, { timeout: T });
  check(true, 'alice sees her message edited');
  await bob.waitForSelector(edited, { timeout: T }).catch(() => {});
  check(await bob.isVisible(edited), 'bob sees it edited, with "edited"');
  await alice2.waitForSelector(edited, { timeout: T }).catch(() => {});
  check(await alice2.isVisible(edited), "alice's second device sees it edited");
  check(await alice.$(msgSel('Meet at 9 at the stattion')) === null && await bob.$(msgSel('Meet at 9 at the stattion')) === null, 'the old text is gone');

  await say(alice, 'Oops, that was for another chat');
  const oops = msgSel('Oops, that was for another chat');
  await waitText(bob, 'Oops, that was for another chat');
  await alice.waitForSelector(`${oops}[data-seq]:not([data-seq=""])`, { timeout: T });
  const oopsSeq = await alice.getAttribute(oops, 'data-seq');
  await alice.hover(oops);
  await alice.click(`${oops} .msg-more`);
  await alice.click(`${oops} .menu-recall`);
  const recalled = `#msgs li.note.recalled[data-seq="${oopsSeq}"]`;
  await alice.waitForSelector(recalled, { timeout: T });
  check(await alice.textContent(recalled) === 'You recalled a message', `alice: '${await alice.textContent(recalled)}'`);
  await bob.waitForSelector(recalled, { timeout: T }).catch(() => {});
  check(await bob.textContent(recalled).catch(() => null) === 'alice recalled a message', `bob: '${await bob.textContent(recalled).catch(() => null)}'`);
  await alice2.waitForSelector(recalled, { timeout: T }).catch(() => {});
  check(await alice2.textContent(recalled).catch(() => null) === 'You recalled a message', "alice's second device: recalled");
  check(!(await bob.textContent('#msgs')).includes('Oops, that was'), "the recalled text is gone from bob's page");
  const bubbles = await texts(bob, '#msgs li.msg .text');
  check(!bubbles.some((t) => /recalled a message|edited a message/.test(t)), `event messages are not bubbles (${JSON.stringify(bubbles)})`);

  // ---- 4. search: 你好世界 in the direct conversation, under 70 newer messages ----
  await say(bob, 'Sounds good 👍');
  await waitText(alice, 'Sounds good 👍');
  await say(alice, `${HELLO} 🙂`); // the group: a second, newer result
  await waitText(bob, `${HELLO} 🙂`);
  const seedA = await client(port, 'alice');
  const seedB = await client(port, 'bob');
  const early = ['Hi Alice! Are you coming this weekend?', 'Yes! Can’t wait', 'I will write to the group'];
  for (let i = 0; i < early.length; i++) await (i % 2 ? seedA : seedB).ask({ type: 'send', conv: 'd:alice:bob', cid: `early-${i}`, text: early[i] });
  const hello = await seedB.ask({ type: 'send', conv: 'd:alice:bob', cid: 'hello-zh', text: HELLO });
  check(hello.type === 'ack', `bob's ${HELLO} stored at seq ${hello.seq}`);
  const lines = ['Did you book the cabin?', 'Yes, two nights', 'Great — I will bring snacks', 'Should we take the train?', 'The 8:15 is fastest'];
  for (let i = 0; i < 70; i++) {
    const who = i % 2 ? seedA : seedB;
    const r = await who.ask({ type: 'send', conv: 'd:alice:bob', cid: `filler-${i}`, text: `${lines[i % lines.length]} (${i + 1})` });
    if (r.type !== 'ack') throw new Error(`seeding: ${JSON.stringify(r)}`);
  }
  seedA.close();
  seedB.close();
  // A fresh page of alice's second device: sync gives the last 50 only.
  await alice2.reload();
  await waitConn(alice2, 'online');
  await alice2.click('#search-open');
  await alice2.waitForSelector('#search-q', { timeout: T });
  check(await alice2.evaluate(() => document.activeElement?.id) === 'search-q', 'the search field has the focus');
  await alice2.fill('#search-q', 'zzqx');
  await alice2.waitForFunction(() => /No messages found/.test(document.querySelector('#search-state')?.textContent || ''), null, { timeout: T }).catch(() => {});
  check(/No messages found for “zzqx”/.test(await alice2.textContent('#search-state')), `no result: '${await alice2.textContent('#search-state')}'`);
  for (const q of ['你好', '世界']) {
    await alice2.fill('#search-q', q);
    await alice2.waitForFunction((qq) => document.querySelector('.results')?.getAttribute('aria-label') === `Results for ${qq}`
      && document.querySelectorAll('.result').length >= 2, q, { timeout: T }).catch(() => {});
    const res = await alice2.$$eval('.result', (els) => els.map((e) => ({
      conv: e.dataset.conv, seq: Number(e.dataset.seq), title: e.querySelector('.conv-title').textContent,
      mark: [...e.querySelectorAll('mark')].map((m) => m.textContent), text: e.querySelector('.result-text').textContent,
    })));
    check(res.length === 2 && res[0].conv === 'd:alice:bob' && res[1].conv === conv,
      `'${q}' finds both, newest first: ${JSON.stringify(res.map((r) => `${r.title}: ${r.text}`))}`);
    check(res.every((r) => r.mark.length === 1 && r.mark[0] === q), `'${q}' is marked in each (${JSON.stringify(res.map((r) => r.mark))})`);
  }
  check(await alice2.$eval('.result[data-conv^="p:"] .conv-title', (e) => e.textContent) === TITLE, 'a result names its conversation');
  // Pages of 20: "Load more results" follows `next`.
  await alice2.fill('#search-q', 'cabin');
  await alice2.waitForFunction(() => document.querySelector('.results')?.getAttribute('aria-label') === 'Results for cabin', null, { timeout: T }).catch(() => {});
  const page1 = await alice2.$$eval('.result', (els) => els.map((e) => Number(e.dataset.seq)));
  check(page1.length === 14 && page1.every((v, i) => i === 0 || v < page1[i - 1]), `'cabin': 14 results, newest first (${page1.length})`);
  await alice2.fill('#search-q', 'the');
  await alice2.waitForFunction(() => document.querySelector('.results')?.getAttribute('aria-label') === 'Results for the', null, { timeout: T }).catch(() => {});
  const first = await alice2.$$eval('.result', (els) => els.length);
  check(first === 20 && await alice2.isVisible('.load-more'), `'the': a first page of 20 and "Load more" (${first})`);
  await alice2.click('.load-more');
  await alice2.waitForFunction(() => document.querySelectorAll('.result').length > 20, null, { timeout: T }).catch(() => {});
  const keys = await alice2.$$eval('.result', (els) => els.map((e) => `${e.dataset.conv}/${e.dataset.seq}`));
  check(keys.length > 20 && new Set(keys).size === keys.length, `"Load more" adds the next page, no repeats (${keys.length})`);
  await alice2.fill('#search-q', '世界');
  await alice2.waitForFunction(() => document.querySelector('.results')?.getAttribute('aria-label') === 'Results for 世界', null, { timeout: T }).catch(() => {});
  await axe(alice2, 'the search results');
  await alice2.click('.result[data-conv="d:alice:bob"]');
  await alice2.waitForFunction(() => document.querySelector('#pane-title')?.textContent === 'bob', null, { timeout: T });
  const target = `#msgs li.msg[data-seq="${hello.seq}"]`;
  await alice2.waitForSelector(target, { timeout: T }).catch(() => {});
  check(await alice2.$(target) !== null, 'the conversation opens with 你好世界 loaded from older history');
  await sleep(300);
  check(await inView(alice2, `${target} .bubble`), 'scrolled to it');
  check(await alice2.$eval(target, (e) => e.classList.contains('flash')).catch(() => false), 'highlighted');
  await shot(alice2, 'chat-search.png', 'chat-search.png');

  // ---- 5. the group info panel: roles, add, remove ----
  await bob.click('#info-open');
  await bob.waitForSelector('#group-info .member[data-uid="alice"]', { timeout: T });
  check(await bob.getAttribute('#group-info .member[data-uid="alice"]', 'data-role') === 'owner', 'bob sees alice as the owner');
  check(await bob.$('#group-info .remove-btn, #group-info .role-btn, #rename, #add-member') === null,
    'a plain member is offered no remove, role, rename or add');
  check(await bob.isVisible('#leave'), 'but may leave');
  await bob.keyboard.press('Escape');
  await bob.waitForSelector('#group-info', { state: 'detached', timeout: T }).catch(() => {});
  check(await bob.$('#group-info') === null && await bob.evaluate(() => document.activeElement?.id) === 'info-open', 'Esc closes the panel, the focus back on its button');

  await alice.click('#info-open');
  await alice.waitForSelector('#group-info .member[data-uid="bob"]', { timeout: T });
  check(await alice.evaluate(() => document.activeElement?.id) === 'info-title', 'the panel takes the focus');
  await alice.click('#group-info .member[data-uid="bob"] .role-btn');
  await alice.waitForSelector('#group-info .member[data-uid="bob"][data-role="admin"]', { timeout: T }).catch(() => {});
  check(await alice.getAttribute('#group-info .member[data-uid="bob"]', 'data-role') === 'admin', 'Make admin: bob is an admin');
  await bob.waitForSelector('#msgs li.note.sys[data-op="role"]', { timeout: T }).catch(() => {});
  check(/alice made you an admin/.test(await bob.textContent('#msgs li.note.sys[data-op="role"]').catch(() => '')), 'bob is told he is an admin');
  await alice.fill('#add-member', 'carol');
  await alice.press('#add-member', 'Enter');
  await alice.click('#add-submit');
  await alice.waitForSelector('#group-info .member[data-uid="carol"]', { timeout: T }).catch(() => {});
  check(await alice.isVisible('#group-info .member[data-uid="carol"]'), 'Add: carol is a member');
  await carol.waitForSelector(`li.conv[data-conv="${conv}"]`, { timeout: T }).catch(() => {});
  check(await carol.textContent(`li.conv[data-conv="${conv}"] .conv-title`).catch(() => null) === `${TITLE}, group`, 'carol now has the group, with its title');
  await carol.click(`li.conv[data-conv="${conv}"] button`);
  await say(carol, 'Thanks for adding me!');
  await waitText(alice, 'Thanks for adding me!');
  await alice.$eval('#msgs', (el) => { el.scrollTop = el.scrollHeight; });
  await axe(alice, 'the group with its info panel');
  await sleep(300);
  await shot(alice, 'chat-group.png', 'chat-group.png');
  // Rename, and back.
  await alice.click('#rename');
  await alice.fill('#rename-input', 'Weekend trip (renamed)');
  await alice.press('#rename-input', 'Enter');
  await bob.waitForFunction(() => document.querySelector('#pane-title')?.textContent === 'Weekend trip (renamed)', null, { timeout: T }).catch(() => {});
  check(await bob.textContent('#pane-title') === 'Weekend trip (renamed)', 'Rename: bob sees the new title');
  check(/alice renamed the group to “Weekend trip \(renamed\)”/.test(await bob.textContent('#msgs li.note.sys[data-op="rename"]').catch(() => '')), 'with its system message');
  await alice.click('#rename');
  await alice.fill('#rename-input', TITLE);
  await alice.click('.rename button.primary');
  await alice.waitForFunction((t) => document.querySelector('#info-group-title')?.textContent === t, TITLE, { timeout: T }).catch(() => {});
  check(await alice.textContent('#info-group-title').catch(() => '') === TITLE, 'and back');
  // An admin's panel: remove for members only, no roles.
  await bob.click('#info-open');
  await bob.waitForSelector('#group-info .member[data-uid="carol"]', { timeout: T }).catch(() => {});
  check(await bob.isVisible('#group-info .member[data-uid="carol"] .remove-btn') && await bob.$('#group-info .member[data-uid="alice"] .remove-btn') === null
    && await bob.$('#group-info .role-btn') === null, 'an admin may remove members, not the owner, and sets no roles');
  // alice takes bob's admin role back while his page misses it: what he
  // then tries is refused by the server, and the refusal shows in place.
  holdRole = true;
  await alice.click('#group-info .member[data-uid="bob"] .role-btn');
  await alice.waitForSelector('#group-info .member[data-uid="bob"][data-role="member"]', { timeout: T }).catch(() => {});
  await bob.click('#group-info .member[data-uid="carol"] .remove-btn');
  await bob.waitForSelector('#info-error', { timeout: T }).catch(() => {});
  const refused = await bob.textContent('#info-error').catch(() => '');
  check(/not allowed/.test(refused), `a refused action shows inline: '${refused}'`);
  check(await alice.isVisible('#group-info .member[data-uid="carol"]'), 'and carol is still a member');
  holdRole = false;
  await bob.click('#info-close');

  await alice.click('#group-info .member[data-uid="bob"] .remove-btn');
  await alice.waitForSelector('#group-info .member[data-uid="bob"]', { state: 'detached', timeout: T }).catch(() => {});
  check(await alice.$('#group-info .member[data-uid="bob"]') === null, 'Remove: bob is gone from the members');
  await bob.waitForSelector('#readonly', { timeout: T }).catch(() => {});
  check(/You were removed from this group/.test(await bob.textContent('#readonly').catch(() => '')), `bob's conversation is read-only: '${await bob.textContent('#readonly').catch(() => '')}'`);
  check(await bob.$('#composer') === null, 'and offers no composer');
  check(/alice removed you/.test(await bob.textContent('#msgs li.note.sys[data-op="remove"]').catch(() => '')), 'bob sees "alice removed you"');
  check(await bob.$('#info-open') !== null && await bob.$('.msg-more') === null, 'nor any message menu');
  await shot(bob, 'chat-group-removed.png');
  await say(alice, 'Bob is out 😢');
  await sleep(800);
  check(!(await bob.textContent('#msgs')).includes('Bob is out'), 'bob gets nothing after his removal');

  // ---- 6. phones: the info panel and the search ----
  const phone = await open('alice', { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2, locale: 'en-GB', timezoneId: 'UTC' });
  await phone.tap(`li.conv[data-conv="${conv}"] button`);
  await phone.waitForSelector('#info-open', { timeout: T });
  let off = await controlsOff(phone, 44);
  check(off.length === 0, `390x844 group conversation: every control inside, 44 px${off.length ? `: ${off.join('; ')}` : ''}`);
  await shot(phone, 'chat-phone-group.png');
  await phone.tap('#info-open');
  await phone.waitForSelector('#group-info .member[data-uid="carol"]', { timeout: T });
  check(await inView(phone, '#group-info') && await inView(phone, '#info-close'), '390x844: the info panel fills the screen');
  off = await controlsOff(phone, 44, '#group-info');
  check(off.length === 0, `390x844 info panel: every control inside, 44 px${off.length ? `: ${off.join('; ')}` : ''}`);
  check(await hScroll(phone) <= 0, '390x844 info panel: no horizontal scroll');
  await shot(phone, 'chat-phone-group-info.png');
  await phone.tap('#info-close');
  // The message menu by a tap on the bubble.
  await say(phone, 'Sent from my phone');
  const ph = msgSel('Sent from my phone');
  await phone.waitForSelector(`${ph}[data-seq]:not([data-seq=""])`, { timeout: T });
  await phone.tap(`${ph} .bubble .text`);
  await phone.waitForSelector(`${ph} [role="menu"]`, { timeout: T }).catch(() => {});
  off = await controlsOff(phone, 44, '#msgs .msg-menu').catch(() => ['no menu']);
  check(off.length === 0, `390x844: a tap on the bubble opens its menu, 44 px items${off.length ? `: ${off.join('; ')}` : ''}`);
  await shot(phone, 'chat-phone-menu.png');
  await phone.tap(`${ph} .menu-edit`);
  check(await phone.inputValue('#composer') === 'Sent from my phone', '390x844: Edit from the menu');
  await phone.tap('#edit-cancel');
  await phone.tap('#back');
  await phone.tap('#search-open');
  await phone.fill('#search-q', '你好');
  await phone.waitForFunction(() => document.querySelectorAll('.result').length >= 2, null, { timeout: T }).catch(() => {});
  off = await controlsOff(phone, 44);
  check(off.length === 0, `390x844 search: every control inside, 44 px${off.length ? `: ${off.join('; ')}` : ''}`);
  check(await hScroll(phone) <= 0, '390x844 search: no horizontal scroll');
  await axe(phone, 'the search (phone)');
  await shot(phone, 'chat-phone-search.png');
  await phone.tap(`.result[data-conv="${conv}"]`);
  await phone.waitForFunction((t) => document.querySelector('#pane-title')?.textContent === t, TITLE, { timeout: T }).catch(() => {});
  check(await inView(phone, '#msgs li.msg.flash .bubble'), '390x844: a result opens the conversation at it');
  await phone.tap('#back');
  check(await phone.isVisible('#search-q'), '390x844: back returns to the results');
  await phone.tap('#new-group-open');
  await phone.waitForSelector('dialog#new-group[open]', { timeout: T });
  off = await controlsOff(phone, 44, 'dialog#new-group');
  check(off.length === 0, `390x844 New group: every control inside, 44 px${off.length ? `: ${off.join('; ')}` : ''}`);
  await shot(phone, 'chat-phone-group-new.png');

  // carol leaves: read-only for her, one member fewer for alice.
  await carol.click('#info-open');
  await carol.click('#leave');
  await carol.click('#leave-confirm');
  await carol.waitForSelector('#readonly', { timeout: T }).catch(() => {});
  check(/You left this group/.test(await carol.textContent('#readonly').catch(() => '')), 'Leave: carol\'s conversation is read-only ("You left this group")');
  await alice.waitForSelector('#msgs li.note.sys[data-op="leave"]', { timeout: T }).catch(() => {});
  check(/carol left/.test(await alice.textContent('#msgs li.note.sys[data-op="leave"]').catch(() => '')), 'alice sees "carol left the group"');

  // ---- 7. the server's word on the recall window: too_late, shown in place ----
  const port2 = await freePort();
  server2 = await startServer(port2, path.join(work, 'late.db'), ['--recall-window', '1']);
  const ctxL = await browser.newContext(desk);
  pages.push(ctxL);
  const late = await ctxL.newPage();
  late.on('pageerror', (e) => check(false, `late: page error ${e.message}`));
  await late.goto(`http://127.0.0.1:${port2}/?uid=alice`);
  await waitConn(late, 'online');
  await late.fill('#new-peer', 'bob');
  await late.press('#new-peer', 'Enter');
  await say(late, 'Recall me later');
  const lm = msgSel('Recall me later');
  await late.waitForSelector(`${lm}[data-seq]:not([data-seq=""])`, { timeout: T });
  await sleep(2200); // past the server's 1 s window, inside the page's default 2 minutes
  await late.hover(lm);
  await late.click(`${lm} .msg-more`);
  await late.click(`${lm} .menu-recall`);
  await late.waitForSelector(`${lm} [role="alert"]`, { timeout: T }).catch(() => {});
  const why = await late.textContent(`${lm} [role="alert"]`).catch(() => null);
  check(/Too late/.test(why || ''), `a recall past the server's window shows its too_late: '${why}'`);
  check(await late.isVisible(`${lm} .text`), 'and the message stays');
} catch (e) {
  check(false, `exception: ${e.stack || e}`);
} finally {
  await browser.close().catch(() => {});
  if (server && server.exitCode === null) server.kill('SIGTERM');
  if (server2 && server2.exitCode === null) server2.kill('SIGTERM');
}
finish();

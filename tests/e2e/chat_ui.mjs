// What the chat web UI scripts (chat.mjs, chat_offline.mjs, chat_phone.mjs,
// chat_groups.mjs, chat_files.mjs) share on top of browser.mjs: their
// command line (DUPLEX UI_DIR WORK_DIR ARTIFACT_DIR), the limit on each wait,
// `duplex serve --chat` started on a port and waited for, Chromium with the
// flags the screenshots want, helpers that read and drive the conversation
// pane of a page, and the axe-core check.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import { check, chromiumOptions } from './browser.mjs';

export const [duplex, uiDir, work, artifacts] = process.argv.slice(2);
// Under ASan/UBSan the server is several times slower.
const slow = process.env.DX_SANITIZE === '1' || process.env.DX_SANITIZE === 'ON';
export const T = slow ? 40000 : 20000; // per wait, in ms

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A port free on 127.0.0.1 now, so that a restarted server can take it again.
export const freePort = () =>
  new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

let serverRuns = 0;
// Starts `duplex serve --chat --port PORT --db DB --static UI_DIR EXTRA...`
// and resolves with the process once it listens; retries for a moment after
// a kill (the old socket may linger). Its stderr goes to
// WORK_DIR/server-N.log, which test_chat*.sh print when a script fails.
export async function startServer(port, db, extra = []) {
  const log = path.join(work, `server-${++serverRuns}.log`);
  for (let attempt = 0; attempt < 50; attempt++) {
    const out = fs.openSync(log, 'w');
    const p = spawn(duplex, ['serve', '--chat', '--port', String(port), '--db', db, '--static', uiDir, ...extra],
      { stdio: ['ignore', 'ignore', out] });
    fs.closeSync(out);
    const ok = await new Promise((resolve) => {
      const started = Date.now();
      const poll = setInterval(() => {
        const text = fs.readFileSync(log, 'utf8');
        if (text.includes('listening on')) { clearInterval(poll); resolve(true); }
        else if (p.exitCode !== null || Date.now() - started > T) { clearInterval(poll); resolve(false); }
      }, 50);
    });
    if (ok) return p;
    if (p.exitCode === null) p.kill('SIGKILL');
    await sleep(200);
  }
  throw new Error(`the server did not start: ${fs.readFileSync(log, 'utf8')}`);
}

// chromium.launch / launchPersistentContext options for the chat pages: the
// common flags plus fonts rendered without hinting; `rest` as it is.
export const chatOptions = (rest = {}) => chromiumOptions({ args: ['--font-render-hinting=none'], ...rest });

// ---- the open conversation of a page ----
// Its messages: [{text, status, cid}].
export const shown = (page) => page.$$eval('#msgs li.msg', (els) => els.map((e) => ({
  text: e.querySelector('.text').textContent, status: e.dataset.status, cid: e.dataset.cid,
})));
// The status of the message with this text, or null.
export const statusOf = (page, text) => page.$$eval('#msgs li.msg', (els, t) => {
  const e = els.find((x) => x.querySelector('.text').textContent === t);
  return e ? e.dataset.status : null;
}, text);
export const waitStatus = (page, text, status, timeout = T) => page.waitForFunction(([t, s]) => {
  const e = [...document.querySelectorAll('#msgs li.msg')].find((x) => x.querySelector('.text').textContent === t);
  return e && e.dataset.status === s;
}, [text, status], { timeout });
export const waitText = (page, text) => page.waitForFunction((t) =>
  [...document.querySelectorAll('#msgs li.msg .text')].some((x) => x.textContent === t), text, { timeout: T });
// Waits for the status line (#conn) to be in `state` (online, connecting…).
export const waitConn = (page, state) => page.waitForSelector(`#conn[data-state="${state}"]`, { timeout: T });
// Types `text` into the composer and presses Enter.
export const say = async (page, text) => {
  await page.fill('#composer', text);
  await page.press('#composer', 'Enter');
};

// axe-core (the devDependency in node_modules) on `page`: a failed check for
// any serious or critical violation; minor ones are printed.
const axePath = path.join(process.env.DX_ROOT ?? path.resolve(import.meta.dirname, '../..'),
  'node_modules/axe-core/axe.min.js');
export async function axe(page, what) {
  await page.addScriptTag({ path: axePath });
  const r = await page.evaluate(async () => {
    const res = await window.axe.run(document, { resultTypes: ['violations'] });
    return res.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 3) }));
  });
  const bad = r.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  check(bad.length === 0, `axe on ${what}: no serious or critical violation${bad.length ? ` (${JSON.stringify(bad)})` : ''}`);
  const minor = r.filter((v) => !bad.includes(v));
  if (minor.length) console.log(`  axe on ${what}, minor: ${minor.map((v) => `${v.id}(${v.impact})`).join(', ')}`);
}

// Issue 18, pictures and files in the chat web UI: headless Chromium
// (playwright-core, /usr/bin/chromium) against `duplex serve --chat`:
//   1. alice attaches a PNG (about 600 KB of noise drawn on a canvas in the
//      page, several of the server's chunks) with the paperclip, types a
//      caption, sends: the bubble's progress bar goes through values between
//      0 and the size (the page's chunks reach the server 250 ms apart),
//      then the message is sent; the thumbnail (from /files/<thumb>) shows
//      on both sides; bob opens the original in the lightbox (a modal
//      dialog, focus on its close button), Esc closes it and gives the focus
//      back;
//   2. someone who is not a member of the conversation gets 403 or 404 for
//      the /files URLs of the picture and its thumbnail;
//   3. a file named "../../x.txt" dropped onto the conversation shows with
//      that name (as text) and a size, and downloads as a file (no path)
//      with its bytes;
//   4. a picture pasted into the composer is attached;
//   5. an upload cut by a reload of the tab goes on from where the server
//      is (the first chunk after the reload is past 0) and the message is
//      stored once (same cid, one message at bob); the same when the
//      network goes away under an upload (offline) and comes back;
//   6. a file over the server's --max-upload is refused with a clear
//      message (in the browser when the server says its limit, else the
//      server's too_large), and nothing is stored;
//   7. the phone layout (390x844): the picture and the file card stay
//      inside the bubble and the viewport.
// Screenshots go to ARTIFACT_DIR; with DX_DOCS_SHOTS=DIR (as chat_phone.mjs)
// the desktop one (1280x800) also to DIR/chat-picture.png (docs/).
// Usage: node chat_files.mjs DUPLEX UI_DIR WORK_DIR ARTIFACT_DIR
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { check, chromium, finish } from './browser.mjs';
import {
  artifacts, axe, chatOptions, duplex, freePort, sleep, startServer, T, waitConn, work,
} from './chat_ui.mjs';

const MAX_UPLOAD = 1 << 20; // 1 MiB: the noise picture fits, a 1.5 MB file does not
const CHUNK_DELAY = 250; // ms between the page's chunks, so that progress is seen

fs.mkdirSync(artifacts, { recursive: true });
const shot = async (page, name) => {
  await page.screenshot({ path: path.join(artifacts, name) });
  console.log(`screenshot: ${name}`);
};

// Does this server take --max-upload? (an older one would not start)
let help = '';
try {
  help = execFileSync(duplex, ['serve', '--help'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
} catch (e) {
  help = `${e.stdout || ''}${e.stderr || ''}`;
}
const limitFlag = help.includes('--max-upload');

const port = await freePort();
const db = path.join(work, 'files.db');
const server = await startServer(port, db, limitFlag ? ['--max-upload', String(MAX_UPLOAD)] : []);
const base = `http://127.0.0.1:${port}`;
const browser = await chromium.launch(chatOptions());

// Every chunk (binary message) from the page to the server goes through
// here: delayed CHUNK_DELAY ms each, in order, and noted {token, offset}.
const chunks = [];
let conns = 0; // connections routed so far
// When set ({passed: 0}): the first connection that sends a big chunk gets
// one through and loses the others (the network went away under them).
let cut = null;
const throttle = async (ctx) => {
  await ctx.routeWebSocket(/\/chat/, (ws) => {
    const conn = ++conns;
    const srv = ws.connectToServer();
    let chain = Promise.resolve();
    let open = true; // what the page sent before it went away is lost with it
    srv.onMessage((m) => ws.send(m));
    ws.onMessage((m) => {
      if (typeof m === 'string') {
        chain = chain.then(() => { try { srv.send(m); } catch { /* closed */ } });
        return;
      }
      const b = Buffer.from(m);
      chain = chain.then(async () => {
        await sleep(CHUNK_DELAY);
        if (!open) return;
        if (cut && b.length > 100000) {
          cut.conn ??= conn;
          if (cut.conn === conn && cut.passed++ >= 1) return;
        }
        chunks.push({ conn, token: b.subarray(0, 16).toString('hex'), offset: Number(b.readBigUInt64BE(16)), len: b.length - 24, at: Date.now() });
        try { srv.send(m); } catch { /* closed */ }
      });
    });
    const pass = (to) => (code, reason) => {
      try { to.close({ code, reason }); } catch { try { to.close(); } catch { /* gone */ } }
    };
    ws.onClose((code, reason) => {
      open = false;
      pass(srv)(code, reason);
    });
    srv.onClose(pass(ws));
  });
};

// Records every value the progress bars of a page take (a MutationObserver
// sees each render).
const recorder = () => {
  window.__progress = [];
  const note = (el) => {
    if (!(el instanceof Element)) return;
    const bars = el.matches?.('.att-progress') ? [el] : [...(el.querySelectorAll?.('.att-progress') || [])];
    for (const b of bars) window.__progress.push({ sent: +b.dataset.sent, total: +b.dataset.total });
  };
  new MutationObserver((muts) => {
    for (const m of muts) {
      if (m.type === 'attributes') note(m.target);
      for (const n of m.addedNodes || []) note(n);
    }
  }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-sent'] });
};

// A PNG of noise drawn on a canvas in `page`: w×h pixels, as bytes.
const noisePng = async (page, w, h) => {
  const b64 = await page.evaluate(async ([w, h]) => {
    const c = document.createElement('canvas');
    c.width = w;
    c.height = h;
    const g = c.getContext('2d');
    const img = g.createImageData(w, h);
    const rnd = new Uint32Array(img.data.buffer);
    for (let i = 0; i < rnd.length; i++) rnd[i] = (Math.random() * 0x1000000) | 0xff000000;
    g.putImageData(img, 0, 0);
    // A label, so that the picture is recognisable in the screenshots.
    g.fillStyle = 'rgba(255,255,255,.85)';
    g.fillRect(w / 2 - 140, h / 2 - 30, 280, 60);
    g.fillStyle = '#2b5cd6';
    g.font = 'bold 26px sans-serif';
    g.textAlign = 'center';
    g.fillText(`${w}×${h} noise`, w / 2, h / 2 + 10);
    const blob = await new Promise((r) => c.toBlob(r, 'image/png'));
    const bytes = new Uint8Array(await blob.arrayBuffer());
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(s);
  }, [w, h]);
  return Buffer.from(b64, 'base64');
};

// The message of `page` whose .text is `text` (its caption): its cid.
const cidOf = (page, text) => page.$$eval('#msgs li.msg', (els, t) => {
  const e = els.find((x) => x.querySelector('.text')?.textContent === t);
  return e ? e.dataset.cid : null;
}, text);
// Waits for message `cid` on `page`; with status 'sent', for it to be
// stored (sent, or already read: bob has the conversation open).
const waitCid = (page, cid, status) => page.waitForFunction(([c, s]) => {
  const e = document.querySelector(`#msgs li.msg[data-cid="${c}"]`);
  return e && (!s || e.dataset.status === s || (s === 'sent' && e.dataset.status === 'read'));
}, [cid, status], { timeout: T });
const waitSent = async (page, text) => {
  const h = await page.waitForFunction((t) => {
    const e = [...document.querySelectorAll('#msgs li.msg')].find((x) => x.querySelector('.text')?.textContent === t);
    return e && (e.dataset.status === 'sent' || e.dataset.status === 'read') ? e.dataset.cid : null;
  }, text, { timeout: T });
  return h.jsonValue();
};
// The picture of message `cid` has loaded: {src, w, h}.
const picOf = async (page, cid) => {
  await page.waitForFunction((c) => {
    const img = document.querySelector(`#msgs li.msg[data-cid="${c}"] .att-pic img`);
    return img && img.complete && img.naturalWidth > 0 && img.getAttribute('src').startsWith('/files/');
  }, cid, { timeout: T });
  return page.$eval(`#msgs li.msg[data-cid="${cid}"] .att-pic img`, (img) => ({
    src: img.getAttribute('src'), w: img.naturalWidth, h: img.naturalHeight, lazy: img.loading,
  }));
};
const count = (page, cid) => page.$$eval(`#msgs li.msg[data-cid="${cid}"]`, (els) => els.length);

let ctxA, ctxB, ctxP;
try {
  const viewport = { width: 1280, height: 800 };
  ctxA = await browser.newContext({ viewport, locale: 'en-US' });
  ctxB = await browser.newContext({ viewport, locale: 'en-US', acceptDownloads: true });
  await throttle(ctxA);
  await ctxA.addInitScript(recorder);
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
  await alice.fill('#new-peer', 'bob');
  await alice.press('#new-peer', 'Enter');
  await alice.waitForSelector('#composer', { timeout: T });
  // A first text, so that bob has the conversation in his list.
  await alice.fill('#composer', 'Look at this 👇');
  await alice.press('#composer', 'Enter');
  await waitSent(alice, 'Look at this 👇');
  await bob.click('li.conv[data-conv="d:alice:bob"] .conv-btn', { timeout: T });

  // ---- 1. a picture through the paperclip, with a caption ----
  const png = await noisePng(alice, 460, 460);
  check(png.length > 600000, `the noise picture is ${png.length} bytes (several chunks)`);
  check(await alice.isVisible('#attach'), 'the composer has an attach button');
  await alice.setInputFiles('#attach-input', { name: 'noise.png', mimeType: 'image/png', buffer: png });
  await alice.waitForSelector('#staged .staged-item', { timeout: T });
  check((await alice.textContent('#staged .staged-name')) === 'noise.png', 'the picture waits in the composer');
  const caption = 'Noise, 460×460 🎨';
  await alice.fill('#composer', caption);
  check(await alice.isEnabled('#send'), 'Send is on');
  await alice.click('#send');
  await alice.waitForFunction(() => {
    const b = document.querySelector('#msgs .att-progress');
    return b && +b.dataset.sent > 0.3 * +b.dataset.total;
  }, null, { timeout: T });
  await shot(alice, 'chat-files-progress.png');
  const pic = await cidOf(alice, caption);
  check(!!pic, 'the message shows at once, with its caption');
  await waitSent(alice, caption);
  const seen = await alice.evaluate(() => window.__progress);
  const total = seen.length ? seen[seen.length - 1].total : 0;
  const mids = [...new Set(seen.filter((p) => p.sent > 0 && p.sent < p.total).map((p) => p.sent))];
  check(total >= png.length, `the bar counts the picture and its thumbnail (${total} bytes)`);
  check(mids.length >= 2, `the progress bar went through intermediate values (${mids.join(', ')} of ${total})`);
  check((await alice.$(`#msgs li.msg[data-cid="${pic}"] .att-progress`)) === null, 'the bar is gone once sent');
  const tokens = [...new Set(chunks.map((c) => c.token))];
  check(tokens.length === 2, `two uploads: the thumbnail and the picture (${tokens.length})`);
  check(chunks.length >= 4, `in several chunks (${chunks.map((c) => `${c.offset}+${c.len}`).join(' ')})`);

  const mine = await picOf(alice, pic);
  check(mine.w <= 320 && mine.h <= 320, `alice sees the thumbnail from the server (${mine.w}x${mine.h}, ${mine.src.split('?')[0]})`);
  check(mine.lazy === 'lazy', 'the thumbnail loads lazily');
  await waitCid(bob, pic);
  const theirs = await picOf(bob, pic);
  check(theirs.w <= 320 && theirs.h <= 320, `bob sees the thumbnail (${theirs.w}x${theirs.h})`);
  check((await bob.textContent(`#msgs li.msg[data-cid="${pic}"] .text`)) === caption, 'bob sees the caption under it');
  const file = await bob.$eval(`#msgs li.msg[data-cid="${pic}"] .att`, (e) => e.dataset.file);
  const thumb = await bob.$eval(`#msgs li.msg[data-cid="${pic}"] .att-pic`, (e) => e.dataset.thumb);
  check(/^[0-9a-f]{64}$/.test(file) && /^[0-9a-f]{64}$/.test(thumb) && file !== thumb, 'the message has a file and a thumb');

  // The original, in the lightbox.
  await bob.click(`#msgs li.msg[data-cid="${pic}"] .att-pic`);
  await bob.waitForSelector('#lightbox[open]', { timeout: T });
  await bob.waitForFunction(() => {
    const img = document.querySelector('#lightbox img');
    return img && img.complete && img.naturalWidth > 0;
  }, null, { timeout: T });
  const big = await bob.$eval('#lightbox img', (img) => ({ w: img.naturalWidth, h: img.naturalHeight }));
  check(big.w === 460 && big.h === 460, `bob opens the original (${big.w}x${big.h})`);
  const modal = await bob.evaluate(() => ({
    role: document.querySelector('#lightbox').matches(':modal'),
    label: document.querySelector('#lightbox').getAttribute('aria-label'),
    focus: document.activeElement?.id,
  }));
  check(modal.role && modal.label === 'noise.png' && modal.focus === 'lightbox-close',
    `a modal dialog named after the picture, focus on its close button (${JSON.stringify(modal)})`);
  await shot(bob, 'chat-files-lightbox.png');
  await axe(bob, 'the lightbox');
  await bob.keyboard.press('Escape');
  await bob.waitForSelector('#lightbox', { state: 'detached', timeout: T });
  const back = await bob.evaluate(() => document.activeElement?.classList.contains('att-pic'));
  check(back, 'Esc closes it and the focus goes back to the picture');

  // ---- 2. a non-member gets nothing ----
  for (const [what, id] of [['picture', file], ['thumbnail', thumb]]) {
    const q = `/files/${id}?conv=${encodeURIComponent('d:alice:bob')}`;
    const carol = await fetch(`${base}${q}&uid=carol`);
    check(carol.status === 403 || carol.status === 404, `carol (not a member) gets ${carol.status} for the ${what}`);
    const lobby = await fetch(`${base}/files/${id}?conv=g%3Alobby&uid=carol`);
    check(lobby.status === 403 || lobby.status === 404, `… and ${lobby.status} through a conversation she is in`);
    const ok = await fetch(`${base}${q}&uid=bob`);
    check(ok.status === 200 && (ok.headers.get('content-type') || '').startsWith('image/'),
      `bob gets 200 ${ok.headers.get('content-type')} for the ${what}`);
  }

  // ---- 3. "../../x.txt", dropped onto the conversation ----
  const body = 'a file with a path-like name\n';
  await alice.evaluate(([name, text]) => {
    const dt = new DataTransfer();
    dt.items.add(new File([text], name, { type: 'text/plain' }));
    const pane = document.querySelector('main.pane');
    for (const type of ['dragenter', 'dragover', 'drop'])
      pane.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
  }, ['../../x.txt', body]);
  await alice.waitForSelector('#staged .staged-item', { timeout: T });
  check((await alice.textContent('#staged .staged-name')) === '../../x.txt', 'the dropped file waits in the composer');
  check((await alice.$('#drop-hint')) === null, 'the drop hint is gone after the drop');
  await alice.click('#send');
  const txt = await alice.waitForFunction(() => {
    const e = [...document.querySelectorAll('#msgs li.msg')].find((x) => x.querySelector('.att-name')?.textContent === '../../x.txt');
    return e && e.dataset.status !== 'sending' ? e.dataset.cid : null;
  }, null, { timeout: T }).then((h) => h.jsonValue());
  await waitCid(alice, txt, 'sent');
  await waitCid(bob, txt);
  await bob.waitForSelector(`#msgs li.msg[data-cid="${txt}"] a.att-file`, { timeout: T });
  const card = await bob.$eval(`#msgs li.msg[data-cid="${txt}"]`, (e) => ({
    name: e.querySelector('.att-name').textContent,
    size: e.querySelector('.att-size').textContent,
    html: e.querySelector('.att-name').innerHTML,
    href: e.querySelector('a.att-file').getAttribute('href'),
    download: e.querySelector('a.att-file').getAttribute('download'),
  }));
  check(card.name === '../../x.txt' && card.html === '../../x.txt', `bob sees the name as text (${card.name})`);
  check(card.size === `${Buffer.byteLength(body)} B`, `and its size (${card.size})`);
  check(card.href.startsWith('/files/') && card.href.includes('conv=d%3Aalice%3Abob'), `a download link (${card.href})`);
  const [dl] = await Promise.all([bob.waitForEvent('download', { timeout: T }), bob.click(`#msgs li.msg[data-cid="${txt}"] a.att-file`)]);
  const saved = await dl.path();
  const got = fs.readFileSync(saved, 'utf8');
  const fname = dl.suggestedFilename();
  check(!fname.includes('/') && !fname.includes('\\') && fname.endsWith('x.txt'), `it downloads as a file named "${fname}"`);
  check(got === body, 'with its bytes');
  const head = await fetch(`${base}${card.href}`);
  check(/attachment/i.test(head.headers.get('content-disposition') || ''), `the server says attachment (${head.headers.get('content-disposition')})`);

  await axe(bob, 'a conversation with a picture and a file');
  await alice.setInputFiles('#attach-input', { name: 'waiting.pdf', mimeType: 'application/pdf', buffer: Buffer.from('%PDF-1.4\n') });
  await alice.waitForSelector('#staged .staged-item', { timeout: T });
  await axe(alice, 'the composer with a file attached');
  await alice.click('#staged .staged-item .attach-x');

  // The screenshot of the docs (desktop, 1280x800): bob's side.
  await bob.evaluate(() => { const l = document.querySelector('#msgs'); l.scrollTop = l.scrollHeight; });
  await sleep(300);
  await shot(bob, 'chat-picture.png');
  if (process.env.DX_DOCS_SHOTS) {
    fs.copyFileSync(path.join(artifacts, 'chat-picture.png'), path.join(process.env.DX_DOCS_SHOTS, 'chat-picture.png'));
    console.log(`screenshot: ${process.env.DX_DOCS_SHOTS}/chat-picture.png`);
  }

  // ---- 4. a pasted picture ----
  const small = await noisePng(alice, 300, 180);
  await alice.evaluate(async (b64) => {
    const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], 'image.png', { type: 'image/png' }));
    document.querySelector('#composer').focus();
    document.querySelector('#composer').dispatchEvent(new ClipboardEvent('paste', { bubbles: true, cancelable: true, clipboardData: dt }));
  }, small.toString('base64'));
  await alice.waitForSelector('#staged .staged-item', { timeout: T });
  check((await alice.textContent('#staged .staged-name')) === 'image.png', 'a pasted picture waits in the composer');
  await alice.fill('#composer', 'pasted');
  await alice.press('#composer', 'Enter');
  await waitSent(alice, 'pasted');
  const pasted = await cidOf(alice, 'pasted');
  await waitCid(bob, pasted);
  const ps = await picOf(bob, pasted);
  check(ps.w === 300 && ps.h === 180, `bob sees it (${ps.w}x${ps.h})`);

  // ---- 5. an upload cut by a reload goes on where the server is ----
  const png2 = await noisePng(alice, 470, 470);
  chunks.length = 0;
  cut = { passed: 0 };
  await alice.setInputFiles('#attach-input', { name: 'again.png', mimeType: 'image/png', buffer: png2 });
  await alice.fill('#composer', 'after a reload');
  await alice.click('#send');
  const again = await alice.waitForFunction(() => {
    const e = [...document.querySelectorAll('#msgs li.msg')].find((x) => x.querySelector('.text')?.textContent === 'after a reload');
    const bar = e?.querySelector('.att-progress');
    // The thumbnail is up and a chunk of the picture too.
    return bar && +bar.dataset.sent > 262144 ? e.dataset.cid : null;
  }, null, { timeout: T }).then((h) => h.jsonValue());
  const connBefore = conns;
  await alice.reload();
  cut = null;
  await alice.waitForSelector('#conn', { timeout: T });
  await waitConn(alice, 'online');
  await alice.click('li.conv[data-conv="d:alice:bob"] .conv-btn', { timeout: T });
  await waitCid(alice, again);
  check(true, 'after the reload the message is back (from IndexedDB)');
  await waitCid(alice, again, 'sent');
  const after = chunks.filter((c) => c.conn > connBefore);
  const bigTok = chunks.find((c) => c.len > 100000)?.token;
  const resumedAt = after.filter((c) => c.token === bigTok).map((c) => c.offset);
  check(resumedAt.length > 0 && resumedAt[0] > 0, `the upload went on from offset ${resumedAt[0]} (chunks after the reload: ${resumedAt.join(', ')})`);
  await waitCid(bob, again);
  check((await count(bob, again)) === 1 && (await count(alice, again)) === 1, 'the message is stored once (same cid)');
  await picOf(bob, again);
  check(true, 'bob sees its thumbnail');

  // ---- 5b. the network pulled under an upload, then back ----
  const png3 = await noisePng(alice, 480, 480);
  chunks.length = 0;
  cut = { passed: 0 };
  await alice.setInputFiles('#attach-input', { name: 'offline.png', mimeType: 'image/png', buffer: png3 });
  await alice.fill('#composer', 'through a network cut');
  await alice.click('#send');
  const cutCid = await alice.waitForFunction(() => {
    const e = [...document.querySelectorAll('#msgs li.msg')].find((x) => x.querySelector('.text')?.textContent === 'through a network cut');
    const bar = e?.querySelector('.att-progress');
    return bar && +bar.dataset.sent > 262144 ? e.dataset.cid : null;
  }, null, { timeout: T }).then((h) => h.jsonValue());
  const connCut = conns;
  await ctxA.setOffline(true);
  await alice.waitForFunction(() => document.querySelector('#conn')?.dataset.state !== 'online', null, { timeout: T });
  const paused = await alice.$eval(`#msgs li.msg[data-cid="${cutCid}"]`, (e) => e.dataset.status);
  check(paused === 'sending', `offline, the picture stays ${paused}`);
  cut = null;
  await ctxA.setOffline(false);
  await waitCid(alice, cutCid, 'sent');
  const resumed = chunks.filter((c) => c.conn > connCut && c.len > 100000).map((c) => c.offset);
  check(resumed.length > 0 && resumed[0] > 0, `back online, it went on from offset ${resumed[0]} (${resumed.join(', ')})`);
  await waitCid(bob, cutCid);
  check((await count(bob, cutCid)) === 1 && (await count(alice, cutCid)) === 1, 'and is stored once');

  // ---- 6. over the server's limit ----
  if (limitFlag) {
    const huge = Buffer.alloc(MAX_UPLOAD + 500000, 7);
    chunks.length = 0;
    await alice.setInputFiles('#attach-input', { name: 'huge.bin', mimeType: 'application/octet-stream', buffer: huge });
    const where = await alice.waitForFunction(() => {
      const n = document.querySelector('#attach-notice');
      if (n) return `browser: ${n.textContent}`;
      const e = [...document.querySelectorAll('#msgs li.msg')].find((x) => x.querySelector('.att-name')?.textContent === 'huge.bin');
      if (e && e.dataset.status === 'failed') return `server: ${e.querySelector('.why').textContent}`;
      if (document.querySelector('#staged .staged-item')) document.querySelector('#send').click();
      return null;
    }, null, { timeout: T, polling: 200 }).then((h) => h.jsonValue());
    check(/at most|limit|too large/i.test(where), `a file over the limit is refused: ${where}`);
    check(chunks.length === 0, 'none of its bytes went up');
    if (where.startsWith('server')) {
      // The server said its limit (too_large's max): the next one is
      // refused in the browser.
      await alice.setInputFiles('#attach-input', { name: 'huge2.bin', mimeType: 'application/octet-stream', buffer: huge });
      await alice.waitForSelector('#attach-notice', { timeout: T });
      const note = await alice.textContent('#attach-notice');
      check(/at most/.test(note) && !(await alice.$('#staged .staged-item')), `then in the browser: ${note}`);
    }
    await shot(alice, 'chat-files-too-large.png');
    if (await alice.$('#attach-notice button')) await alice.click('#attach-notice button');
    // A refused message (when the server refused it) is deleted.
    const del = await alice.$('li.msg[data-status="failed"] .why .discard');
    if (del) await del.click();
  } else {
    console.log('skip: this server has no --max-upload (the limit check)');
  }

  await bob.evaluate(() => { const l = document.querySelector('#msgs'); l.scrollTop = l.scrollHeight; });
  await shot(bob, 'chat-files-end.png');

  // ---- 7. the phone ----
  ctxP = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: 'en-US' });
  const phone = await ctxP.newPage();
  phone.on('pageerror', (e) => check(false, `phone: page error ${e.message}`));
  await phone.goto(`${base}/?uid=bob`);
  await waitConn(phone, 'online');
  await phone.click('li.conv[data-conv="d:alice:bob"] .conv-btn', { timeout: T });
  await picOf(phone, pic);
  await phone.evaluate((c) => document.querySelector(`li.msg[data-cid="${c}"]`).scrollIntoView({ block: 'center' }), pic);
  await sleep(300);
  const fits = await phone.evaluate(() => {
    const out = [];
    for (const li of document.querySelectorAll('#msgs li.msg')) {
      const b = li.querySelector('.bubble').getBoundingClientRect();
      for (const el of li.querySelectorAll('.att-pic, .att-file, .att-name')) {
        const r = el.getBoundingClientRect();
        if (r.left < b.left - 0.5 || r.right > b.right + 0.5 || r.right > innerWidth) out.push(`${el.className} ${r.left}-${r.right} in ${b.left}-${b.right}`);
      }
    }
    return { out, scroll: document.documentElement.scrollWidth > innerWidth };
  });
  check(fits.out.length === 0 && !fits.scroll, `on a phone every picture and card is inside its bubble and the screen (${fits.out.join('; ') || 'ok'})`);
  await shot(phone, 'chat-files-phone.png');
  await phone.click(`#msgs li.msg[data-cid="${pic}"] .att-pic`);
  await phone.waitForSelector('#lightbox[open]', { timeout: T });
  const lb = await phone.$eval('#lightbox img', (img) => { const r = img.getBoundingClientRect(); return r.right <= innerWidth + 0.5 && r.left >= -0.5; });
  check(lb, 'the lightbox fits the phone');
  await phone.click('#lightbox-close');
  await phone.waitForSelector('#lightbox', { state: 'detached', timeout: T });
  // A file waiting in the phone's composer: inside the screen, and taken back.
  await phone.setInputFiles('#attach-input', { name: 'a rather long name for a phone screen.pdf', mimeType: 'application/pdf', buffer: Buffer.from('%PDF-1.4\n') });
  await phone.waitForSelector('#staged .staged-item', { timeout: T });
  const chip = await phone.evaluate(() => {
    const r = document.querySelector('#staged').getBoundingClientRect();
    const s = document.querySelector('#send').getBoundingClientRect();
    return { in: r.left >= 0 && r.right <= innerWidth && s.right <= innerWidth, scroll: document.documentElement.scrollWidth > innerWidth };
  });
  check(chip.in && !chip.scroll, 'on a phone the attached file and Send stay inside the screen');
  await shot(phone, 'chat-files-phone-staged.png');
  await phone.click('#staged .staged-item .attach-x');
  check((await phone.$('#staged')) === null, 'the attached file can be taken back');
} catch (e) {
  check(false, `unexpected: ${e.stack || e}`);
} finally {
  await browser.close();
  server.kill('SIGTERM');
}
finish();

// Headless Chromium against `duplex serve --echo`: Chromium always offers
// permessage-deflate; the page checks ws.extensions (negotiated, or "" when
// the server runs with --no-deflate) and that text, JSON, 1 MiB of repetitive
// text and binary noise come back equal.
// Usage: node deflate_chromium.mjs PROFILE_DIR PORT:EXPECT...
//   EXPECT: a comma-separated list of parameters ws.extensions must hold
//   ("-" for none beyond permessage-deflate), or "off" for no extension.
import { check, chromium, chromiumOptions, finish } from './browser.mjs';

const [profile, ...targets] = process.argv.slice(2);

const ctx = await chromium.launchPersistentContext(profile, chromiumOptions());
try {
  const page = await ctx.newPage();
  for (const t of targets) {
    const [port, expect] = t.split(':');
    await page.goto(`http://127.0.0.1:${port}/healthz`);
    const r = await page.evaluate(async (url) => {
      const ws = new WebSocket(url);
      ws.binaryType = 'arraybuffer';
      await new Promise((ok, ko) => { ws.onopen = ok; ws.onerror = () => ko(new Error('error')); });
      const msgs = [];
      for (let i = 0; i < 30; i++)
        msgs.push(JSON.stringify({ id: i, user: `user-${i % 5}`, text: 'hello from chromium '.repeat(50) }).slice(0, 1024));
      msgs.push('', 'grüße ⇄ 世界 🎉'.repeat(100), 'abc'.repeat(350000));
      const noise = new Uint8Array(65536);
      let x = 7;
      for (let i = 0; i < noise.length; i++) { x = (x * 1103515245 + 12345) >>> 0; noise[i] = x >>> 24; }
      msgs.push(noise.buffer);
      const same = (a, b) => {
        if (typeof a === 'string') return a === b;
        const u = new Uint8Array(a), v = new Uint8Array(b);
        return u.length === v.length && u.every((c, i) => c === v[i]);
      };
      let bad = null;
      for (let i = 0; i < msgs.length && !bad; i++) {
        const got = await new Promise((ok) => { ws.onmessage = (e) => ok(e.data); ws.send(msgs[i]); });
        if (!same(msgs[i], got)) bad = `echo ${i} differs`;
      }
      const ext = ws.extensions;
      const closed = new Promise((ok) => { ws.onclose = (e) => ok({ code: e.code, clean: e.wasClean }); });
      ws.close(1000);
      return { ext, bad, n: msgs.length, close: await closed };
    }, `ws://127.0.0.1:${port}/`);
    if (expect === 'off') check(r.ext === '', `port ${port}: ws.extensions is '' (${r.ext})`);
    else {
      check(r.ext.startsWith('permessage-deflate'), `port ${port}: ws.extensions '${r.ext}'`);
      if (expect !== '-') for (const p of expect.split(',')) check(r.ext.includes(p), `port ${port}: '${p}' agreed`);
    }
    check(r.bad === null, `port ${port}: ${r.n} echoes equal (${r.bad ?? 'all'})`);
    check(r.close.code === 1000 && r.close.clean, `port ${port}: closed 1000 cleanly`);
  }
} finally {
  await ctx.close();
}
finish();

// Headless Chromium against `duplex serve`: the test page exchanges text and
// binary and closes with 3001; then a screenshot of the echo page in use.
// Usage: node chromium.mjs TEST_PORT ECHO_PORT PROFILE_DIR SCREENSHOT
import { createRequire } from 'node:module';
import path from 'node:path';

const root = process.env.DX_ROOT ?? path.resolve(import.meta.dirname, '../..');
const require = createRequire(path.join(root, 'package.json'));
const { chromium } = require('playwright-core');

const [testPort, echoPort, profile, shot] = process.argv.slice(2);
let failed = 0;
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failed++;
};

const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 900, height: 640 },
});
try {
  const page = await ctx.newPage();
  page.on('console', (m) => console.log(`  [page] ${m.text()}`));
  await page.goto(`http://127.0.0.1:${testPort}/`);
  await page.waitForFunction(() => window.results && window.results.done, null, { timeout: 20000 });
  const r = await page.evaluate(() => window.results);
  for (const s of r.steps) check(s.ok, `${s.name} (${s.detail})`);
  check(r.steps.length === 6, `all ${r.steps.length}/6 steps ran`);
  check(r.close.code === 3001, `onclose code ${r.close.code} (reason '${r.close.reason}')`);
  check(r.close.wasClean === true, `onclose wasClean ${r.close.wasClean}`);

  // The echo page of `make run`, in use.
  const echo = await ctx.newPage();
  await echo.goto(`http://127.0.0.1:${echoPort}/`);
  await echo.waitForSelector('#status.open', { timeout: 10000 });
  for (const text of ['hello, duplex', 'full-duplex ⇄ grüße', 'ping']) {
    await echo.fill('#text', text);
    await echo.press('#text', 'Enter');
  }
  await echo.waitForFunction(() => document.querySelectorAll('#log li.in').length >= 3, null, { timeout: 10000 });
  const echoed = await echo.$$eval('#log li.in .d', (els) => els.map((e) => e.textContent));
  check(echoed[0] === 'hello, duplex' && echoed[2] === 'pong', `echo page shows ${JSON.stringify(echoed)}`);
  await echo.screenshot({ path: shot });
  console.log(`screenshot: ${shot}`);
} finally {
  await ctx.close();
}
console.log(failed ? `${failed} checks failed` : 'all checks passed');
process.exit(failed ? 1 : 0);

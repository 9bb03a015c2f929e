// Headless Chromium against `duplex serve`: the test page exchanges text and
// binary and closes with 3001; then a screenshot of the echo page in use.
// Usage: node chromium.mjs TEST_PORT ECHO_PORT PROFILE_DIR SCREENSHOT
import { check, chromium, chromiumOptions, finish } from './browser.mjs';

const [testPort, echoPort, profile, shot] = process.argv.slice(2);

const ctx = await chromium.launchPersistentContext(
  profile,
  chromiumOptions({ viewport: { width: 900, height: 640 } }),
);
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
finish();

// What the headless-Chromium scripts share: playwright-core from the
// project's node_modules, Debian's Chromium with the flags they all use, and
// the ok/FAIL tally that becomes the exit status.
import { createRequire } from 'node:module';
import path from 'node:path';

const root = process.env.DX_ROOT ?? path.resolve(import.meta.dirname, '../..');
const require = createRequire(path.join(root, 'package.json'));
export const { chromium } = require('playwright-core');

// Options for chromium.launch or launchPersistentContext: `args` are added
// to the common flags, the other fields are passed as they are.
export const chromiumOptions = ({ args = [], ...rest } = {}) => ({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync', ...args],
  ...rest,
});

let failed = 0;
export const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failed++;
};
// A failure seen outside a check (an uncaught error in the page).
export const fail = () => { failed++; };
// Prints the verdict and exits: 1 when any check failed.
export const finish = () => {
  console.log(failed ? `${failed} checks failed` : 'all checks passed');
  process.exit(failed ? 1 : 0);
};

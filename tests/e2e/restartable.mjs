// A `duplex serve` that a browser test kills and starts again on the same
// port (tests/e2e/fallback.mjs, web_client.mjs): the first start takes a
// free port, later ones reuse it, retrying while the old one still holds
// it. srv.proc is the running process (null while down), srv.proc.log()
// what it wrote to stderr.
import { spawn } from 'node:child_process';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// duplex: the command; args: after `serve --port P`; T: scales timeouts
// (sanitizer builds are slower).
export function restartable(duplex, args, T = (ms) => ms) {
  const srv = { port: 0, proc: null };
  srv.start = async () => {
    for (let tries = 0; ; tries++) {
      const proc = spawn(duplex, ['serve', '--port', String(srv.port), ...args],
        { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      const up = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), T(10000));
        proc.stderr.on('data', (d) => {
          err += d;
          const m = /listening on \w+:\/\/[^ ]*:(\d+)/.exec(err);
          if (m) { clearTimeout(timer); srv.port = Number(m[1]); resolve(true); }
        });
        proc.on('exit', () => { clearTimeout(timer); resolve(false); });
      });
      if (up) {
        srv.proc = proc;
        proc.log = () => err;
        proc.stderr.on('data', (d) => { err += d; });
        return;
      }
      proc.kill('SIGKILL');
      if (tries >= 20) throw new Error(`duplex serve did not start: ${err}`);
      await sleep(250); // the port may still be held for a moment
    }
  };
  // Resolves with the exit code (null when killed by a signal).
  srv.kill = (sig = 'SIGKILL') => {
    const proc = srv.proc;
    srv.proc = null;
    if (proc.exitCode !== null) return Promise.resolve(proc.exitCode);
    return new Promise((resolve) => { proc.on('exit', (code) => resolve(code)); proc.kill(sig); });
  };
  return srv;
}

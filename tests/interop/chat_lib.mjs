// Shared by the chat protocol clients (chat_client.mjs, chat_messenger.mjs),
// which run as `node SCRIPT.mjs BASE_URL PHASE [ARG]` against
// `duplex serve --chat`: that command line, check() and the exit status,
// a Device (one signed-in socket) and refused() for a sign-in the server
// turns away. Node's `ws` comes from the project's node_modules.
import { createRequire } from 'node:module';
import path from 'node:path';

const root = process.env.DX_ROOT ?? path.resolve(import.meta.dirname, '../..');
export const WebSocket = createRequire(path.join(root, 'package.json'))('ws');

export const [base, phase, arg] = process.argv.slice(2);

let failed = 0;
// Prints one line per check; a failure is counted for run()'s exit status.
export const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failed++;
};
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

// A device: a socket with an inbox; next(type, pred) waits for the first
// message of that type (earlier ones of other types stay in the inbox),
// wait(match, what) for the first one match() accepts, ask() sends a
// request with a fresh id and waits for the reply with that id. Each wait
// fails after 15 s, naming what it waited for and the start of the inbox.
export class Device {
  static open(query) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${base}/chat?${query}`);
      const d = new Device(ws);
      ws.once('open', () => resolve(d));
      ws.once('unexpected-response', (req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      ws.once('error', reject);
    });
  }
  constructor(ws) {
    this.ws = ws;
    this.inbox = [];
    this.waiters = [];
    this.nextId = 1;
    ws.on('message', (data) => {
      const text = data.toString();
      this.inbox.push(text === 'pong' ? { type: 'pong' } : JSON.parse(text));
      this.wake();
    });
  }
  wake() {
    for (const w of [...this.waiters]) {
      const i = this.inbox.findIndex(w.match);
      if (i >= 0) {
        const [m] = this.inbox.splice(i, 1);
        this.waiters.splice(this.waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(m);
      }
    }
  }
  wait(match, what, ms = 15000) {
    return new Promise((resolve, reject) => {
      const w = { match, resolve };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`no ${what} within ${ms} ms; inbox ${JSON.stringify(this.inbox).slice(0, 300)}`));
      }, ms);
      this.waiters.push(w);
      this.wake();
    });
  }
  next(type, pred = () => true, ms = 15000) {
    return this.wait((m) => m.type === type && pred(m), `'${type}'`, ms);
  }
  ask(body) {
    const id = `r${this.nextId++}`;
    this.ws.send(JSON.stringify({ v: 1, id, ...body }));
    return this.wait((m) => m.id === id, `reply to ${body.type} ${id}`);
  }
  raw(data) {
    this.ws.send(data);
  }
  close() {
    return new Promise((resolve) => {
      this.ws.once('close', resolve);
      this.ws.close(1000);
    });
  }
}

// A refused sign-in (docs/chat-protocol.md, "Refused sign-in"): the socket
// opens and the server closes it at once, with no welcome: "CODE REASON".
// Anything else reads differently: "HTTP 401", "accepted: {welcome…}".
export const refused = (query) => new Promise((resolve) => {
  const ws = new WebSocket(`${base}/chat?${query}`);
  const got = [];
  ws.on('message', (data) => got.push(data.toString()));
  ws.once('unexpected-response', (req, res) => resolve(`HTTP ${res.statusCode}`));
  ws.once('error', (e) => resolve(`error ${e.message}`));
  ws.once('close', (code, reason) =>
    resolve(got.length ? `accepted: ${got.join(' ')}` : `${code} ${reason.toString()}`));
});

// run({ name: async (arg) => ... }): runs the phase the command line names
// with its ARG; an exception is one failed check. Prints the tally and exits
// 0 when every check passed, 1 otherwise.
export async function run(phases) {
  try {
    if (!Object.hasOwn(phases, phase)) throw new Error(`unknown phase ${phase}`);
    await phases[phase](arg);
  } catch (e) {
    check(false, `exception: ${e.stack}`);
  }
  console.log(failed ? `${failed} checks failed` : 'all checks passed');
  process.exit(failed ? 1 : 0);
}

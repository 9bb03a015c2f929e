#!/usr/bin/env node
// The HTTP fallback benchmark (issue: "duplex bench over the fallback").
//
// Every contestant is an echo server driven by the same Node client code:
//   ws        duplex serve --echo --no-deflate, over WebSocket (Node `ws`)
//   stream    the same server over the HTTP session transport, HttpSocket
//             (web/client/http_socket.js) in mode 'stream' (SSE down)
//   poll      the same, HttpSocket in mode 'poll' (long polls down)
//   sio-poll  Socket.IO 4 (bench/fallback/sio_server.mjs), socket.io-client
//             on long-polling only (no upgrade), over fetch like HttpSocket
//   sio-ws    the same Socket.IO server over WebSocket, for reference
//   sio-poll-close
//             sio-poll without a keep-alive agent (socket.io-client's Node
//             default): a new connection per request, as duplex answers
//             every session request with Connection: close
//   stream-fetch, sio-poll-fetch
//             stream and sio-poll with Node's fetch (undici) as the HTTP
//             client instead of node:http, for reference
// HTTP in the driver: HttpSocket gets a small fetch over node:http (below);
// socket.io-client's Node long-polling is XMLHttpRequest over node:http;
// both get a keep-alive agent. Node's fetch costs several times more CPU
// per request than node:http, and is no model of a browser's.
// This driver is Node for every contestant: like for like. The C load
// generator now speaks the session transport and Engine.IO long-polling too
// (`duplex bench --transport`, bench/fallback/c_driver.sh), without the Node
// client's cost per HTTP request.
//
// Scenarios (N clients, 64-byte text messages, W s warm-up then D s measured):
//   k1     each client keeps 1 message in flight: messages/s (echoes received)
//   k16    each keeps 16 in flight: messages/s
//   rate   a fixed total rate (1,000 msg/s) spread over the clients:
//          latency p50/p99/max from send() to the echo's message event
// Reported with each run: the driver's CPU (process.cpuUsage) and the
// server's (/proc/PID/stat), as % of one core, so the limit is visible.
// The server is pinned to CPU 0 and the driver to CPU 1 (taskset) where the
// machine has two cores; contestants run interleaved, R rounds (default 3),
// a fresh server per run; medians and min–max are reported.
//
// usage: node bench/fallback/bench.mjs [--duplex PATH] [--rounds R]
//          [--clients N] [--duration D] [--warmup W] [--rate R] [--size B]
//          [--only ws,stream,poll,sio-poll,sio-ws,sio-poll-close,stream-fetch,
//                  sio-poll-fetch]
//          [--scenarios k1,k16,rate]
//          [--json FILE] [--md FILE] [--budget S]
//        node bench/fallback/bench.mjs --report FILE.json [--md FILE]   (re-render)
// Environment: DUPLEX (the binary; default build/duplex); BENCH_DUMP_LAT=FILE
// makes each worker write its sorted latencies (ms) there, one a line.
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import os from 'node:os';
import http from 'node:http';

const keepAlive = new http.Agent({ keepAlive: true });

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const CONTESTANTS = ['ws', 'stream', 'poll', 'sio-poll', 'sio-ws', 'sio-poll-close', 'stream-fetch', 'sio-poll-fetch'];
const SCENARIOS = ['k1', 'k16', 'rate'];

function parseArgs(argv) {
  const o = {
    duplex: process.env.DUPLEX || resolve(root, 'build/duplex'),
    rounds: 3, clients: 10, duration: 5, warmup: 1, rate: 1000, size: 64,
    only: CONTESTANTS.join(','), scenarios: SCENARIOS.join(','), json: '', md: '', budget: 1200, report: '',
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '');
    if (k === 'worker') { o.worker = argv.slice(i + 1); break; }
    if (k === 'help' || k === 'h') { o.help = true; continue; }
    if (!(k in o)) throw new Error(`unknown option ${argv[i]}`);
    const v = argv[++i];
    o[k] = typeof o[k] === 'number' ? Number(v) : v;
  }
  return o;
}

// ---------------------------------------------------------------- the worker
// Runs one contestant through one scenario and prints its report as JSON.
// Writes "START" and "END" lines at the edges of the measured window so the
// parent can read the server's CPU time there.

// A fetch over node:http for HttpSocket, as small as HttpSocket needs
// (status, headers.get/has, json, arrayBuffer, body.getReader/cancel, an
// AbortSignal). Node's own fetch (undici) costs 2–3 ms of CPU per request on
// this machine against ~0.7 for node:http, and a browser's fetch is nothing
// like it; the '-fetch' contestants use it anyway, for reference.
function httpFetch(agent) {
  return (url, opts = {}) => new Promise((resolveF, rejectF) => {
    const u = new URL(url);
    const b = opts.body;
    const body = b ? Buffer.from(b.buffer, b.byteOffset, b.byteLength) : null;
    const method = opts.method || 'GET';
    const headers = { ...(opts.headers || {}) };
    if (method === 'POST') headers['Content-Length'] = body ? body.length : 0;
    const abortErr = () => Object.assign(new Error('aborted'), { name: 'AbortError' });
    const sig = opts.signal;
    if (sig?.aborted) { rejectF(abortErr()); return; }
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers, agent }, (res) => {
      const all = async () => { const parts = []; for await (const c of res) parts.push(c); return Buffer.concat(parts); };
      resolveF({
        status: res.statusCode,
        headers: { get: (n) => res.headers[n.toLowerCase()] ?? null, has: (n) => n.toLowerCase() in res.headers },
        arrayBuffer: async () => { const x = await all(); return x.buffer.slice(x.byteOffset, x.byteOffset + x.length); },
        json: async () => JSON.parse((await all()).toString()),
        body: {
          getReader: () => {
            const it = res[Symbol.asyncIterator]();
            return { read: () => it.next().then(({ done, value }) => ({ done, value: value && new Uint8Array(value.buffer, value.byteOffset, value.length) })) };
          },
          cancel: () => { res.destroy(); return Promise.resolve(); },
        },
      });
    });
    const onAbort = () => req.destroy(abortErr());
    sig?.addEventListener('abort', onAbort, { once: true });
    req.on('close', () => sig?.removeEventListener('abort', onAbort));
    req.on('error', rejectF);
    req.end(body);
  });
}

async function makeClient(kind, port, onMessage) {
  const url = `ws://127.0.0.1:${port}/`;
  const viaFetch = kind.endsWith('-fetch');
  const base = kind.replace(/-(fetch|close)$/, '');
  if (kind === 'ws') {
    const { WebSocket } = await import('ws');
    const s = new WebSocket(url, { perMessageDeflate: false });
    s.on('message', (d) => onMessage(d.toString()));
    await new Promise((ok, bad) => { s.once('open', ok); s.once('error', bad); });
    return { send: (m) => s.send(m), close: () => s.terminate() };
  }
  if (base === 'stream' || base === 'poll') {
    const { HttpSocket } = await import(resolve(root, 'web/client/http_socket.js'));
    const s = new HttpSocket(url, undefined, { mode: base, fetch: viaFetch ? undefined : httpFetch(keepAlive) });
    s.onmessage = (e) => onMessage(e.data);
    await new Promise((ok, bad) => { s.onopen = ok; s.onerror = (e) => bad(new Error(e.message || 'error')); });
    return { send: (m) => s.send(m), close: () => { try { s.close(); } catch {} } };
  }
  if (base === 'sio-poll' || base === 'sio-ws') {
    const { io } = await import('socket.io-client');
    const { Fetch } = await import('engine.io-client');
    // Long-polling: socket.io-client's own Node transport (XMLHttpRequest
    // over node:http, given a keep-alive agent, which Socket.IO's server
    // honours; with '-close' no agent: a connection per request, as duplex's
    // session requests have), or with '-fetch' the engine.io Fetch transport.
    const s = io(`http://127.0.0.1:${port}`, {
      transports: base === 'sio-ws' ? ['websocket'] : viaFetch ? [Fetch] : ['polling'],
      agent: base === 'sio-poll' && !viaFetch ? (kind.endsWith('-close') ? false : keepAlive) : undefined,
      upgrade: false, forceNew: true, reconnection: false,
    });
    s.on('m', onMessage);
    await new Promise((ok, bad) => { s.once('connect', ok); s.once('connect_error', bad); });
    if (base === 'sio-poll' && s.io.engine.transport.name !== 'polling') throw new Error('not polling');
    return { send: (m) => s.emit('m', m), close: () => s.disconnect() };
  }
  throw new Error(`unknown contestant ${kind}`);
}

function pct(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

async function worker([kind, scenario, port, clientsS, durS, warmS, rateS, sizeS]) {
  // Count the driver's HTTP requests (node:http, which the fetch shim and
  // socket.io-client's XMLHttpRequest use, and Node's fetch).
  let requests = 0;
  const origRequest = http.request;
  http.request = function (...a) { requests++; return origRequest.apply(this, a); };
  const origFetch = globalThis.fetch;
  globalThis.fetch = function (...a) { requests++; return origFetch.apply(this, a); };
  const nClients = Number(clientsS), duration = Number(durS), warmup = Number(warmS);
  const rate = Number(rateS), size = Number(sizeS);
  const inflight = scenario === 'k16' ? 16 : 1;
  const msg = 'x'.repeat(size);
  let measuring = false, running = true, received = 0, bad = 0;
  const lat = [];
  const clients = [];
  const mk = async (i) => {
    const fifo = []; // send times; every contestant echoes in order per client
    const c = await makeClient(kind, port, (data) => {
      const t0 = fifo.shift();
      if (typeof data !== 'string' || data.length !== size) bad++;
      if (measuring) { received++; lat.push(performance.now() - t0); }
      if (running && scenario !== 'rate') { fifo.push(performance.now()); c.send(msg); }
    });
    c.fifo = fifo;
    c.send1 = () => { fifo.push(performance.now()); c.send(msg); };
    clients[i] = c;
  };
  const opened = Promise.all(Array.from({ length: nClients }, (_, i) => mk(i)));
  const openTimer = setTimeout(() => { console.error('clients did not open in 15 s'); process.exit(3); }, 15000);
  await opened;
  clearTimeout(openTimer);

  let sent = 0;
  let tickTimer = null;
  if (scenario === 'rate') {
    const start = performance.now();
    const tick = () => {
      const due = Math.floor(((performance.now() - start) / 1000) * rate);
      while (sent < due) clients[sent++ % nClients].send1();
      if (running) tickTimer = setTimeout(tick, 1);
    };
    tick();
  } else {
    for (const c of clients) for (let j = 0; j < inflight; j++) c.send1();
  }
  const sleep = (s) => new Promise((r) => setTimeout(r, s * 1000));
  await sleep(warmup);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const sent0 = sent;
  const req0 = requests;
  process.stdout.write('START\n');
  measuring = true;
  await sleep(duration);
  measuring = false;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const reqs = requests - req0;
  process.stdout.write('END\n');
  running = false;
  clearTimeout(tickTimer);
  lat.sort((a, b) => a - b);
  if (process.env.BENCH_DUMP_LAT) writeFileSync(process.env.BENCH_DUMP_LAT, lat.map((x) => x.toFixed(3)).join('\n') + '\n');
  const report = {
    contestant: kind, scenario, clients: nClients, inflight: scenario === 'rate' ? null : inflight,
    rate: scenario === 'rate' ? rate : null, size, seconds,
    messages: received, msgs_per_s: received / seconds,
    sent_per_s: scenario === 'rate' ? (sent - sent0) / seconds : null,
    latency_ms: { n: lat.length, p50: pct(lat, 50), p99: pct(lat, 99), max: lat.length ? lat[lat.length - 1] : null },
    driver_cpu_pct: ((cpu.user + cpu.system) / 1e4) / seconds,
    http_requests_per_s: reqs / seconds, http_requests_per_msg: received ? reqs / received : null,
    bad_echoes: bad,
  };
  process.stdout.write(`REPORT ${JSON.stringify(report)}\n`);
  for (const c of clients) c.close();
  setTimeout(() => process.exit(0), 200);
}

// ---------------------------------------------------------------- the parent

const TICK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
function procCpu(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / TICK; // utime + stime, seconds
  } catch { return null; }
}

function freePort() {
  return new Promise((ok) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => ok(p)); });
  });
}

async function waitPort(port, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const up = await new Promise((ok) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => { c.destroy(); ok(true); });
      c.once('error', () => ok(false));
    });
    if (up) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

const haveTaskset = (() => { try { execFileSync('taskset', ['-c', '0', 'true']); return true; } catch { return false; } })();
const twoCores = os.cpus().length >= 2;
const pin = (cpu, cmd) => (haveTaskset && twoCores ? ['taskset', ['-c', String(cpu), ...cmd]] : [cmd[0], cmd.slice(1)]);

async function startServer(kind, opt) {
  const port = await freePort();
  const cmd = kind.startsWith('sio')
    ? [process.execPath, resolve(here, 'sio_server.mjs'), '--port', String(port)]
    : [opt.duplex, 'serve', '--echo', '--no-deflate', '--port', String(port), '--quiet'];
  const [bin, args] = pin(0, cmd);
  const p = spawn(bin, args, { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr.on('data', (d) => { err += d; });
  if (!(await waitPort(port, 10000))) { p.kill('SIGKILL'); throw new Error(`${kind} server did not start: ${err}`); }
  return { p, port, err: () => err };
}

async function stopServer(s) {
  if (s.p.exitCode !== null) return;
  const gone = new Promise((r) => s.p.once('exit', r));
  s.p.kill('SIGTERM');
  const t = setTimeout(() => s.p.kill('SIGKILL'), 3000);
  await gone;
  clearTimeout(t);
}

async function runOne(kind, scenario, opt) {
  const srv = await startServer(kind, opt);
  const [bin, args] = pin(1, [process.execPath, fileURLToPath(import.meta.url), '--worker', kind, scenario,
    String(srv.port), String(opt.clients), String(opt.duration), String(opt.warmup), String(opt.rate), String(opt.size)]);
  const w = spawn(bin, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', werr = '', cpuA = null, cpuB = null, report = null;
  w.stdout.on('data', (d) => {
    out += d;
    let nl;
    while ((nl = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, nl);
      out = out.slice(nl + 1);
      if (line === 'START') cpuA = procCpu(srv.p.pid);
      else if (line === 'END') cpuB = procCpu(srv.p.pid);
      else if (line.startsWith('REPORT ')) report = JSON.parse(line.slice(7));
    }
  });
  w.stderr.on('data', (d) => { werr += d; });
  const limit = (opt.warmup + opt.duration + 25) * 1000;
  const killer = setTimeout(() => w.kill('SIGKILL'), limit);
  const code = await new Promise((r) => w.once('exit', (c, sig) => r(c ?? sig)));
  clearTimeout(killer);
  await stopServer(srv);
  if (!report) return { contestant: kind, scenario, error: `worker exit ${code}: ${werr.trim().slice(-500)}` };
  if (cpuA !== null && cpuB !== null) {
    report.server_cpu_pct = ((cpuB - cpuA) / report.seconds) * 100;
    report.server_cpu_us_per_msg = report.messages ? ((cpuB - cpuA) / report.messages) * 1e6 : null;
  }
  report.driver_cpu_us_per_msg = report.messages ? (report.driver_cpu_pct / 100) * report.seconds / report.messages * 1e6 : null;
  return report;
}

const median = (a) => { const s = [...a].sort((x, y) => x - y); const n = s.length; return n ? (n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2) : null; };
function summarize(runs) {
  const groups = {};
  for (const r of runs) {
    if (r.error) continue;
    (groups[`${r.scenario}|${r.contestant}`] ??= []).push(r);
  }
  const out = {};
  for (const [key, rs] of Object.entries(groups)) {
    const pick = (f) => { const v = rs.map(f).filter((x) => x !== null && x !== undefined); return v.length ? { median: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length } : null; };
    out[key] = {
      runs: rs.length,
      msgs_per_s: pick((r) => r.msgs_per_s),
      p50_ms: pick((r) => r.latency_ms.p50), p99_ms: pick((r) => r.latency_ms.p99), max_ms: pick((r) => r.latency_ms.max),
      driver_cpu_pct: pick((r) => r.driver_cpu_pct), server_cpu_pct: pick((r) => r.server_cpu_pct),
      server_cpu_us_per_msg: pick((r) => r.server_cpu_us_per_msg), driver_cpu_us_per_msg: pick((r) => r.driver_cpu_us_per_msg),
      http_requests_per_msg: pick((r) => r.http_requests_per_msg),
      bad_echoes: rs.reduce((a, r) => a + r.bad_echoes, 0),
    };
  }
  return out;
}

const LABEL = {
  ws: 'duplex, WebSocket (ws)', stream: 'duplex, HTTP fallback, stream (HttpSocket)', poll: 'duplex, HTTP fallback, poll (HttpSocket)',
  'sio-poll': 'Socket.IO 4, long-polling', 'sio-ws': 'Socket.IO 4, WebSocket',
  'sio-poll-close': 'Socket.IO 4, long-polling, a connection per request',
  'stream-fetch': 'duplex, HTTP fallback, stream, Node fetch', 'sio-poll-fetch': 'Socket.IO 4, long-polling, Node fetch',
};
function fmt(s, digits, scale = 1) {
  if (!s) return '–';
  const f = (x) => (x * scale).toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return s.n > 1 ? `${f(s.median)} (${f(s.min)}–${f(s.max)})` : f(s.median);
}
function targets(sum, opt) {
  const t = [];
  const m = (sc, c) => sum[`${sc}|${c}`];
  // Like for like: the same HTTP stack in the driver on both sides.
  const pairs = [['stream', 'sio-poll'], ['poll', 'sio-poll'], ['stream-fetch', 'sio-poll-fetch'], ['stream', 'sio-poll-close']];
  for (const sc of ['k1', 'k16']) for (const [c, peer] of pairs) {
    const a = m(sc, c), b = m(sc, peer);
    if (a && b) {
      const ratio = a.msgs_per_s.median / b.msgs_per_s.median;
      const lo = a.msgs_per_s.min / b.msgs_per_s.max, hi = a.msgs_per_s.max / b.msgs_per_s.min;
      t.push({ target: `throughput ${sc}: ${c} / ${peer} ≥ 5×`, ratio, range: [lo, hi], met: ratio >= 5 });
    }
  }
  for (const c of ['stream', 'poll', 'stream-fetch']) {
    const a = m('rate', c), b = m('rate', 'ws');
    if (a && b && a.p99_ms && b.p99_ms) {
      const ratio = a.p99_ms.median / b.p99_ms.median;
      const lo = a.p99_ms.min / b.p99_ms.max, hi = a.p99_ms.max / b.p99_ms.min;
      t.push({ target: `p99 at ${opt.rate} msg/s: ${c} / WebSocket ≤ 2×`, ratio, range: [lo, hi], met: ratio <= 2 });
    }
  }
  // Not a target, but what the throughput ratio would be where the server,
  // not the driver, were the limit: server CPU per message, peer / duplex.
  for (const sc of ['k1', 'k16']) for (const [c, peer] of pairs.slice(0, 2)) {
    const a = m(sc, c), b = m(sc, peer);
    if (a?.server_cpu_us_per_msg && b?.server_cpu_us_per_msg) {
      t.push({ target: `(server CPU per message ${sc}: ${peer} / ${c})`, ratio: b.server_cpu_us_per_msg.median / a.server_cpu_us_per_msg.median,
        range: [b.server_cpu_us_per_msg.min / a.server_cpu_us_per_msg.max, b.server_cpu_us_per_msg.max / a.server_cpu_us_per_msg.min], met: null });
    }
  }
  return t;
}

function markdown(opt, runs, sum, tg, meta) {
  const L = [];
  L.push('# HTTP fallback: messages/s and latency (bench/fallback/bench.mjs)', '');
  L.push(`${meta.date}, ${meta.host}. ${opt.clients} clients, ${opt.size}-byte text messages, ${opt.warmup} s warm-up then ${opt.duration} s measured per run, ` +
    `${opt.rounds} rounds with the contestants interleaved and a fresh server per run; median (min–max) of the rounds. ` +
    `Server ${meta.pinned ? 'pinned to CPU 0, driver (Node, one process for all clients) to CPU 1' : 'and driver not pinned'}. ` +
    `CPU is % of one core over the measured window (driver: process.cpuUsage; server: /proc/PID/stat).`, '');
  L.push(`duplex: \`${meta.duplex} serve --echo --no-deflate\`; Socket.IO ${meta.sio} (\`bench/fallback/sio_server.mjs\`, httpCompression and perMessageDeflate off), ` +
    `socket.io-client ${meta.sioClient} (upgrade off). HTTP in the driver: HttpSocket over a small fetch on node:http (keep-alive agent; duplex closes each session request's connection anyway), socket.io-client's Node long-polling (XMLHttpRequest on node:http, keep-alive agent; the '-close' row without one: a new connection per request, as duplex's session requests always are); the '-fetch' rows use Node's fetch (undici) for both instead. Node ${process.version}.`, '');
  for (const sc of opt.scenarios.split(',')) {
    const title = sc === 'rate' ? `Fixed ${opt.rate.toLocaleString('en-US')} msg/s in total (${opt.rate / opt.clients} per client): latency`
      : `${opt.clients} clients × ${sc === 'k1' ? 1 : 16} in flight: throughput`;
    L.push(`## ${title}`, '');
    L.push('| contestant | msg/s | p50 ms | p99 ms | max ms | driver CPU % | server CPU % | server µs/msg | driver µs/msg | HTTP req/msg |');
    L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const c of opt.only.split(',')) {
      const s = sum[`${sc}|${c}`];
      if (!s) { L.push(`| ${LABEL[c]} | not run | | | | | | | | |`); continue; }
      const rq = c === 'ws' || c === 'sio-ws' ? '–' : fmt(s.http_requests_per_msg, 2);
      L.push(`| ${LABEL[c]} | ${fmt(s.msgs_per_s, 0)} | ${fmt(s.p50_ms, 2)} | ${fmt(s.p99_ms, 2)} | ${fmt(s.max_ms, 1)} | ${fmt(s.driver_cpu_pct, 0)} | ${fmt(s.server_cpu_pct, 0)} | ${fmt(s.server_cpu_us_per_msg, 1)} | ${fmt(s.driver_cpu_us_per_msg, 0)} | ${rq} |`);
    }
    L.push('');
  }
  L.push('## Targets', '');
  L.push('| target | ratio (median) | range over rounds | met |', '|---|---:|---:|---|');
  for (const x of tg) L.push(`| ${x.target} | ${x.ratio.toFixed(2)}× | ${x.range[0].toFixed(2)}–${x.range[1].toFixed(2)}× | ${x.met === null ? '(information)' : x.met ? 'yes' : '**no**'} |`);
  L.push('');
  const errs = runs.filter((r) => r.error);
  if (errs.length) {
    L.push('## Runs that failed', '');
    for (const e of errs) L.push(`- ${e.scenario} ${e.contestant}: ${e.error.replace(/\n/g, ' ')}`);
    L.push('');
  }
  const bad = Object.entries(sum).filter(([, s]) => s.bad_echoes);
  if (bad.length) L.push(`Echoes with the wrong content: ${bad.map(([k, s]) => `${k} ${s.bad_echoes}`).join(', ')}`, '');
  return L.join('\n');
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  if (opt.worker) return worker(opt.worker);
  if (opt.help) { process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 30).join('\n') + '\n'); return; }
  if (opt.report) {
    // Render the markdown again from a --json file (its runs and options).
    const j = JSON.parse(readFileSync(opt.report, 'utf8'));
    const o = { ...j.options, md: opt.md };
    const sum = summarize(j.runs);
    const md = markdown(o, j.runs, sum, targets(sum, o), j.meta);
    if (opt.md) writeFileSync(opt.md, md + '\n');
    process.stdout.write(md + '\n');
    return;
  }
  const wantDuplex = opt.only.split(',').some((c) => !c.startsWith('sio'));
  if (wantDuplex && !existsSync(opt.duplex)) throw new Error(`no duplex binary at ${opt.duplex} (set DUPLEX or --duplex)`);
  const started = Date.now();
  const runs = [];
  const cs = opt.only.split(','), scs = opt.scenarios.split(',');
  let skipped = 0;
  for (let r = 0; r < opt.rounds; r++) {
    for (const sc of scs) {
      // Rotate the order each round so no contestant always runs first.
      const order = cs.map((_, i) => cs[(i + r) % cs.length]);
      for (const c of order) {
        if ((Date.now() - started) / 1000 > opt.budget) { skipped++; continue; }
        const rep = await runOne(c, sc, opt);
        rep.round = r + 1;
        runs.push(rep);
        const s = rep.error ? `ERROR ${rep.error}` : `${rep.msgs_per_s.toFixed(0)} msg/s p50 ${rep.latency_ms.p50?.toFixed(2)} p99 ${rep.latency_ms.p99?.toFixed(2)} max ${rep.latency_ms.max?.toFixed(1)} ms, driver ${rep.driver_cpu_pct.toFixed(0)}% server ${rep.server_cpu_pct?.toFixed(0)}%`;
        process.stderr.write(`round ${r + 1} ${sc} ${c}: ${s}\n`);
      }
    }
  }
  const pkg = (n) => JSON.parse(readFileSync(resolve(root, 'node_modules', n, 'package.json'), 'utf8')).version;
  const meta = {
    date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC', host: `${os.cpus().length} cores (${os.cpus()[0]?.model?.trim()}), ${os.type()} ${os.release()}`,
    pinned: haveTaskset && twoCores, duplex: opt.duplex.replace(root + '/', ''), sio: pkg('socket.io'), sioClient: pkg('socket.io-client'),
    node: process.version, skipped_runs: skipped,
  };
  const sum = summarize(runs);
  const tg = targets(sum, opt);
  const md = markdown(opt, runs, sum, tg, meta);
  if (opt.json) writeFileSync(opt.json, JSON.stringify({ meta, options: { ...opt, worker: undefined }, targets: tg, summary: sum, runs }, null, 1) + '\n');
  if (opt.md) writeFileSync(opt.md, md + '\n');
  process.stdout.write(md + '\n');
}

main().catch((e) => { console.error(`bench.mjs: ${e.stack || e}`); process.exit(1); });

#!/usr/bin/env node
// What a connection per request costs: sequential empty POSTs answered 204,
// from one node:http client with a keep-alive agent, to
//   duplex    a session's up URL on `duplex serve --echo` (every session
//             answer carries Connection: close)
//   node-ka   a Node http server that keeps connections
//   node-close the same server answering Connection: close
// The client's CPU (process.cpuUsage) and the server's (/proc/PID/stat) per
// request over 3 s after 500 requests of warm-up. Servers on CPU 0; run the
// client on CPU 1:
//   DUPLEX=build/duplex taskset -c 1 node bench/fallback/conn_cost.mjs [--rounds 2]
import http from 'node:http';
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const rounds = Number(process.argv[process.argv.indexOf('--rounds') + 1]) || 2;
const duplex = process.env.DUPLEX || 'build/duplex';
const TICK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
const cpuOf = (pid) => { const s = readFileSync(`/proc/${pid}/stat`, 'utf8'); const f = s.slice(s.lastIndexOf(')') + 2).split(' '); return (Number(f[11]) + Number(f[12])) / TICK; };
const freePort = () => new Promise((ok) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => ok(p)); }); });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const nodeServer = (close) => `require('http').createServer((q,s)=>{q.resume();q.on('end',()=>{s.statusCode=204;${close ? "s.setHeader('Connection','close');" : ''}s.end()})}).listen(+process.argv[1],'127.0.0.1')`;

const agent = new http.Agent({ keepAlive: true });
const post = (url) => new Promise((ok, bad) => {
  const r = http.request(url, { method: 'POST', agent, headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': 0 } },
    (res) => { res.resume(); res.on('end', ok); });
  r.on('error', bad);
  r.end();
});

async function measure(label, pid, url) {
  for (let i = 0; i < 500; i++) await post(url);
  let n = 0;
  const s0 = cpuOf(pid), c0 = process.cpuUsage(), t0 = performance.now();
  while (performance.now() - t0 < 3000) { await post(url); n++; }
  const c = process.cpuUsage(c0), s1 = cpuOf(pid), sec = (performance.now() - t0) / 1000;
  console.log(`${label.padEnd(11)} ${(n / sec).toFixed(0).padStart(6)} req/s  client ${((c.user + c.system) / n).toFixed(0).padStart(4)} µs CPU/req  server ${(((s1 - s0) * 1e6) / n).toFixed(0).padStart(4)} µs CPU/req`);
}

const ports = { duplex: await freePort(), ka: await freePort(), close: await freePort() };
const procs = [
  spawn('taskset', ['-c', '0', duplex, 'serve', '--echo', '--no-deflate', '--quiet', '--port', String(ports.duplex)], { stdio: 'ignore' }),
  spawn('taskset', ['-c', '0', process.execPath, '-e', nodeServer(false), String(ports.ka)], { stdio: 'ignore' }),
  spawn('taskset', ['-c', '0', process.execPath, '-e', nodeServer(true), String(ports.close)], { stdio: 'ignore' }),
];
try {
  await sleep(800);
  const open = await fetch(`http://127.0.0.1:${ports.duplex}/`, { method: 'POST', headers: { 'X-Duplex-Session': '1' } });
  const { sid } = await open.json();
  for (let r = 0; r < rounds; r++) {
    await measure('duplex', procs[0].pid, `http://127.0.0.1:${ports.duplex}/.duplex/${sid}/up?seq=0&ack=0`);
    await measure('node-ka', procs[1].pid, `http://127.0.0.1:${ports.ka}/`);
    await measure('node-close', procs[2].pid, `http://127.0.0.1:${ports.close}/`);
  }
} finally {
  for (const p of procs) p.kill('SIGTERM');
}

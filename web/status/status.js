// The live status page of `duplex serve --metrics` (cli/status.c): one
// WebSocket to /status/ws, one JSON sample a second, the numbers and two
// rolling 60-second charts drawn as plain SVG. No dependencies.

const WINDOW_MS = 60000;
const SVG = 'http://www.w3.org/2000/svg';
const $ = (id) => document.getElementById(id);

/** @type {{t: number, in: number, out: number, turn: ?number, ack: ?number}[]} */
const samples = [];
let hello = null, last = null;
// For the tests and for a look from the console.
window.duplexStatus = { samples, get hello() { return hello; }, get last() { return last; } };

/** Numbers people read: 1 decimal under 10, grouped thousands above. */
const num = (v) =>
  v == null ? '–' : v < 10 && v % 1 ? v.toFixed(1) : Math.round(v).toLocaleString('en-US');
/** Microseconds as µs or ms. */
const us = (v) =>
  v == null ? '–' : v < 1000 ? `${Math.round(v)} µs` : `${(v / 1000).toFixed(v < 10000 ? 2 : 1)} ms`;
/** Bytes a second. */
const scaled = (v, units) => {
  let i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${v < 10 && i ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
};
const bps = (v) => scaled(v, ['B/s', 'KB/s', 'MB/s', 'GB/s']);
const bytes = (v) => scaled(v, ['B', 'KB', 'MB', 'GB']);

/** The smallest of 1, 2, 4, 8 × 10^k at or above v: an axis top whose
 * quarters are round numbers. */
const niceMax = (v) => {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 4, 8, 10].map((m) => m * p).find((m) => m >= v * (1 - 1e-9));
};

const el = (name, attrs) => {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
};

/**
 * Draws `series` ({id, key}) of the samples of the last minute into `svg`,
 * with grid lines labelled by `label`: four from 0 up, or with `log` one a
 * decade (latencies span 50 µs to seconds). Each line is one <path> whose
 * data-points attribute counts its points (gaps, null values, split it).
 */
function chart(svg, series, label, log = false) {
  const w = svg.clientWidth, h = svg.clientHeight;
  if (!w || !h) return;
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.replaceChildren();
  const pad = { l: 58, r: 6, t: 8, b: 18 };
  const pw = w - pad.l - pad.r, ph = h - pad.t - pad.b;
  const now = samples.length ? samples[samples.length - 1].t : Date.now();
  const values = samples.flatMap((s) => series.map(({ key }) => s[key])).filter((v) => v > 0 || (!log && v === 0));
  let ticks, at;
  if (log) {
    // 10 µs to 1 ms until there is something to show.
    const lo = values.length ? Math.floor(Math.log10(Math.min(...values))) : 1;
    const hi = Math.max(values.length ? Math.ceil(Math.log10(Math.max(...values))) : 3, lo + 1);
    ticks = Array.from({ length: hi - lo + 1 }, (_, i) => 10 ** (lo + i));
    at = (v) => (Math.log10(v) - lo) / (hi - lo);
  } else {
    const top = niceMax(Math.max(...values, 4)); // 0-4 when idle: whole numbers
    ticks = [0, 1, 2, 3, 4].map((i) => (top * i) / 4);
    at = (v) => v / top;
  }
  for (const v of ticks) {
    const y = pad.t + ph - ph * at(v);
    svg.append(el('line', { class: 'grid', x1: pad.l, x2: w - pad.r, y1: y, y2: y }));
    const t = el('text', { x: pad.l - 6, y: y + 4, 'text-anchor': 'end' });
    t.textContent = label(v);
    svg.append(t);
  }
  for (const [s, anchor] of [[60, 'start'], [30, 'middle'], [0, 'end']]) {
    const t = el('text', { x: pad.l + pw * (1 - s / 60), y: h - 4, 'text-anchor': anchor });
    t.textContent = s ? `−${s} s` : 'now';
    svg.append(t);
  }
  for (const { id, key } of series) {
    let d = '', points = 0, pen = 'M';
    for (const s of samples) {
      if (s[key] == null || (log && !(s[key] > 0))) { pen = 'M'; continue; }
      const x = pad.l + pw * (1 - (now - s.t) / WINDOW_MS);
      const y = pad.t + ph - ph * at(s[key]);
      d += `${pen}${x.toFixed(1)},${y.toFixed(1)}`;
      pen = 'L';
      points++;
    }
    svg.append(el('path', { id, d: d || 'M0,0', 'data-points': points }));
  }
}

function draw() {
  chart($('chart-rate'), [{ id: 'line-in', key: 'in' }, { id: 'line-out', key: 'out' }], num);
  const lat = [{ id: 'line-turn', key: 'turn' }];
  if (hello?.chat) lat.push({ id: 'line-ack', key: 'ack' });
  chart($('chart-latency'), lat, (v) => (v >= 1e6 ? `${v / 1e6} s` : v >= 1000 ? `${v / 1000} ms` : `${v} µs`), true);
}

function show(m) {
  $('open').textContent = num(m.open);
  const pages = `${m.status_pages} status page${m.status_pages === 1 ? '' : 's'}`;
  $('accepted').innerHTML = `${num(m.accepted)} accepted<span class="wide"> · ${pages}</span>`;
  $('in').innerHTML = `${num(m.in)}<small> /s</small>`;
  $('out').innerHTML = `${num(m.out)}<small> /s</small>`;
  $('bytes-in').textContent = bps(m.bytes_in);
  $('bytes-out').textContent = `${bps(m.bytes_out)} · ${bytes(m.queued ?? 0)} queued`;
  $('turn').textContent = us(m.turn_p99_us);
  $('turns').textContent = `${num(m.turns)} turns/s · ${m.threads} thread${m.threads === 1 ? '' : 's'}`;
  if (m.chat) {
    $('ack').textContent = us(m.chat.ack_p99_us);
    $('acks').textContent = `${num(m.chat.acks)} acks/s · ${num(m.chat.devices)} devices`;
  }
}

function onSample(m) {
  last = m;
  samples.push({ t: m.t, in: m.in, out: m.out, turn: m.turn_p99_us, ack: m.chat ? m.chat.ack_p99_us : null });
  while (samples.length && samples[0].t < m.t - WINDOW_MS) samples.shift();
  show(m);
  draw();
}

function state(cls, text) {
  $('state').className = cls;
  $('state').textContent = text;
}

// The feed is beside this script: /status/ws for /status/status.js.
const feed = new URL('ws', import.meta.url);
feed.protocol = feed.protocol === 'https:' ? 'wss:' : 'ws:';
let backoff = 1000, stale;

function connect() {
  const ws = new WebSocket(feed);
  const watchdog = () => {
    clearTimeout(stale);
    stale = setTimeout(() => state('', 'no samples'), 5000);
  };
  ws.onopen = () => {
    backoff = 1000;
    state('live', 'live');
    watchdog();
  };
  ws.onmessage = (e) => {
    let m;
    try { m = JSON.parse(e.data); } catch { return; } // --broadcast: everyone's messages come too
    if (m.type === 'hello') {
      if (hello && hello.pid !== m.pid) samples.length = 0; // another server since
      hello = m;
      const threads = `${m.threads} thread${m.threads === 1 ? '' : 's'}`;
      $('meta').textContent = `${m.mode} · ${threads} · duplex ${m.version} · pid ${m.pid}`;
      $('ack-card').hidden = $('ack-legend').hidden = !m.chat;
    } else if (m.type === 'sample') {
      state('live', 'live');
      watchdog();
      onSample(m);
    }
  };
  ws.onclose = () => {
    clearTimeout(stale);
    state('down', `reconnecting in ${backoff / 1000} s`);
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 8000);
  };
}

new ResizeObserver(draw).observe(document.body);
connect();

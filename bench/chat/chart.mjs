// Draws the timeline of a rate run (chat_bench.mjs --mode rate --timeline)
// as one self-contained SVG: acks per second (bars, per 100 ms bucket × 10)
// and ack p99 latency (line, its own scale on the right). No dependencies.
// A stall timeline (stall_storm stall) is drawn the same way; a storm
// (stall_storm storm, storm.mjs) as users back / synced over time with the
// /healthz latency and the acks' p99 (see drawStorm).
// Usage: node chart.mjs RUN.json [OUT.svg]   (OUT defaults to stdout)
// RUN.json holds one JSON object, or several lines of them (bench/chat/run
// --compare): then one chart per object, stacked, each with its label.
import { readFileSync, writeFileSync } from 'node:fs';

const [input, output] = process.argv.slice(2);
if (!input) {
  console.error('usage: node chart.mjs RUN.json [OUT.svg]');
  process.exit(2);
}
const runs = readFileSync(input, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
const W = 720, H = 220, PAD = { l: 56, r: 56, t: 28, b: 30 };
const esc = (s) => String(s).replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]);

// A round step for an axis going up to max, about 4 ticks.
function step(max) {
  const raw = max / 4, p = 10 ** Math.floor(Math.log10(raw || 1));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
}

// stall_storm stall --timeline writes {bucket_ms, timeline: [{t, acks,
// ack_max, ping_max, typing_max, healthz_max}]}: the same chart, with the
// slowest ack of each 100 ms as the line (and the probes' worst in the title).
function fromStall(run) {
  const worst = (k) => Math.max(0, ...run.timeline.map((b) => b[k] ?? 0));
  return {
    label: run.sync_delay_ms == null ? `stall${run.pg_stop ? ` (${run.pg_stop})` : ''}` : `stall (+${run.sync_delay_ms} ms per fsync)`,
    title: `slowest ack per ${run.bucket_ms} ms; worst ping ${worst('ping_max')}, typing ${worst('typing_max')}, /healthz ${worst('healthz_max')} ms`,
    line: 'max ms',
    timeline: {
      bucket_ms: run.bucket_ms,
      acks: run.timeline.map((b) => b.acks),
      p99_ms: run.timeline.map((b) => b.ack_max ?? null),
    },
  };
}

// A storm (storm.mjs's report): from the restart (t = 0), the users back
// (their first welcome), open and synced (left scale: users), the slowest
// /healthz answer and the acks' p99 of each bucket (right scale: ms); a
// /healthz poll that failed is a red cross on the time axis.
function drawStorm(run, y0) {
  const SH = H + 30, top = PAD.t + 24; // room for the legend under the title
  const tl = run.timeline, n = tl.t.length, cw = W - PAD.l - PAD.r, ch = SH - top - PAD.b;
  const ms = [...tl.healthz_max_ms, ...tl.ack_p99_ms].filter((v) => v != null);
  const us = step(tl.users), umax = Math.ceil(tl.users / us) * us;
  const ls = step(Math.max(1, ...ms)), lmax = Math.ceil(Math.max(1, ...ms) / ls) * ls;
  const x = (i) => PAD.l + (i / n) * cw, yu = (v) => y0 + top + ch - (v / umax) * ch, yl = (v) => y0 + top + ch - (v / lmax) * ch;
  const at = (ms) => (ms == null ? '—' : `${(ms / 1000).toFixed(1)} s`);
  const r = run.restart_ms ?? {}, v = run.verify ?? {}, hz = run.healthz ?? {};
  const out = [];
  const title = `${run.label ? run.label + ': ' : ''}storm, ${tl.users} users: all back ${at(r.all_back)}, synced ${at(r.all_synced)}; ` +
    `${v.lost ?? '?'} lost, ${v.duplicates ?? '?'} dup.; /healthz ${hz.answered}/${hz.polls} answered`;
  out.push(`<text x="${PAD.l}" y="${y0 + 16}" font-weight="bold">${esc(title)}</text>`);
  for (let u = 0; u <= umax; u += us) {
    out.push(`<line x1="${PAD.l}" x2="${W - PAD.r}" y1="${yu(u)}" y2="${yu(u)}" stroke="#ddd"/>`);
    out.push(`<text x="${PAD.l - 4}" y="${yu(u) + 4}" text-anchor="end">${u}</text>`);
  }
  for (let l = 0; l <= lmax; l += ls) out.push(`<text x="${W - PAD.r + 4}" y="${yl(l) + 4}" fill="#c33">${l}</text>`);
  // A line through the buckets' ends (the counts hold there), from `start`
  // at t = 0 if given, or through their middles for the per-bucket figures,
  // broken where a bucket has none.
  const line = (vals, y, colour, { extra = '', mid = false, start } = {}) => {
    let d = start == null ? '' : `M${x(0)},${y(start).toFixed(1)}`, gap = start == null;
    vals.forEach((val, i) => {
      if (val == null) return void (gap = true);
      d += `${gap ? 'M' : 'L'}${(x(i) + (mid ? 0.5 : 1) * (cw / n)).toFixed(1)},${y(val).toFixed(1)}`;
      gap = false;
    });
    out.push(`<path d="${d}" fill="none" stroke="${colour}" stroke-width="1.5" ${extra}/>`);
  };
  line(tl.open, yu, '#9ab', { extra: 'stroke-dasharray="4 3"' });
  line(tl.back, yu, '#36c', { start: 0 });
  line(tl.synced, yu, '#2a2', { start: 0 });
  line(tl.healthz_max_ms, yl, '#c33', { mid: true });
  tl.ack_p99_ms.forEach((val, i) => {
    if (val != null) out.push(`<circle cx="${(x(i) + cw / n / 2).toFixed(1)}" cy="${yl(val).toFixed(1)}" r="2" fill="#e90"/>`);
  });
  tl.healthz_failed.forEach((f, i) => {
    if (f) out.push(`<text x="${(x(i) + cw / n / 2).toFixed(1)}" y="${yl(0) + 4}" text-anchor="middle" fill="#c33">×</text>`);
  });
  const secs = (n * tl.bucket_ms) / 1000, ts = step(secs);
  for (let s = 0; s <= secs; s += ts) out.push(`<text x="${x((s * 1000) / tl.bucket_ms)}" y="${y0 + SH - 12}" text-anchor="middle">${+s.toFixed(1)} s</text>`);
  out.push(`<text x="${PAD.l - 4}" y="${y0 + top - 6}" text-anchor="end">users</text>`);
  out.push(`<text x="${W - PAD.r + 4}" y="${y0 + top - 6}" fill="#c33">ms</text>`);
  const legend = [['#36c', 'back'], ['#2a2', 'synced'], ['#9ab', 'open (dashed)'], ['#c33', `slowest /healthz per ${tl.bucket_ms} ms (× failed)`], ['#e90', 'ack p99 (dots)']];
  let lx = PAD.l + 8;
  for (const [colour, name] of legend) {
    out.push(`<rect x="${lx}" y="${y0 + 26}" width="10" height="3" fill="${colour}"/><text x="${lx + 14}" y="${y0 + 31}">${esc(name)}</text>`);
    lx += 26 + name.length * 6;
  }
  return { svg: out.join('\n'), h: SH };
}

function chart(run, y0) {
  if (run.timeline?.synced) return drawStorm(run, y0);
  if (Array.isArray(run.timeline)) run = fromStall(run);
  const tl = run.timeline;
  if (!tl) return { svg: `<text x="${PAD.l}" y="${y0 + 20}">${esc(run.label ?? '')}: no timeline (run with --timeline)</text>`, h: 40 };
  const per = 1000 / tl.bucket_ms;
  const rate = tl.acks.map((n) => n * per);
  const p99 = tl.p99_ms;
  const n = rate.length, cw = W - PAD.l - PAD.r, ch = H - PAD.t - PAD.b;
  const rs = step(Math.max(1, ...rate)), rmax = Math.ceil(Math.max(1, ...rate) / rs) * rs;
  const ls = step(Math.max(1, ...p99.filter((x) => x != null))), lmax = Math.ceil(Math.max(1, ...p99.filter((x) => x != null)) / ls) * ls;
  const x = (i) => PAD.l + (i / n) * cw, yr = (v) => y0 + PAD.t + ch - (v / rmax) * ch, yl = (v) => y0 + PAD.t + ch - (v / lmax) * ch;
  const out = [];
  const title = run.title ? `${run.label}: ${run.title}` : `${run.label ? run.label + ': ' : ''}${run.users} users × 1 msg/s, ${run.seconds} s — acked ${run.acked}/${run.sent}, p99 ${run.ack_ms?.p99} ms`;
  out.push(`<text x="${PAD.l}" y="${y0 + 16}" font-weight="bold">${esc(title)}</text>`);
  for (let v = 0; v <= rmax; v += rs) {
    out.push(`<line x1="${PAD.l}" x2="${W - PAD.r}" y1="${yr(v)}" y2="${yr(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${PAD.l - 4}" y="${yr(v) + 4}" text-anchor="end" fill="#4a7">${v}</text>`);
  }
  for (let v = 0; v <= lmax; v += ls) out.push(`<text x="${W - PAD.r + 4}" y="${yl(v) + 4}" fill="#c33">${v}</text>`);
  const bw = Math.max(0.5, cw / n - 0.3);
  rate.forEach((v, i) => { if (v) out.push(`<rect x="${x(i).toFixed(1)}" y="${yr(v).toFixed(1)}" width="${bw.toFixed(1)}" height="${(yr(0) - yr(v)).toFixed(1)}" fill="#8c8"/>`); });
  let d = '';
  p99.forEach((v, i) => { if (v != null) d += `${d ? 'L' : 'M'}${(x(i) + bw / 2).toFixed(1)},${yl(v).toFixed(1)}`; });
  out.push(`<path d="${d}" fill="none" stroke="#c33" stroke-width="1.5"/>`);
  const secs = (n * tl.bucket_ms) / 1000, ts = step(secs);
  for (let s = 0; s <= secs; s += ts) out.push(`<text x="${x((s * 1000) / tl.bucket_ms)}" y="${y0 + H - 12}" text-anchor="middle">${s} s</text>`);
  out.push(`<text x="${PAD.l - 4}" y="${y0 + PAD.t - 6}" text-anchor="end" fill="#4a7">acks/s</text>`);
  out.push(`<text x="${W - PAD.r + 4}" y="${y0 + PAD.t - 6}" fill="#c33">${run.line ?? 'p99 ms'}</text>`);
  return { svg: out.join('\n'), h: H };
}

let y = 0;
const parts = [];
for (const r of runs) {
  const c = chart(r, y);
  parts.push(c.svg);
  y += c.h;
}
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="#fff"/>
${parts.join('\n')}
</svg>
`;
if (output) writeFileSync(output, svg);
else process.stdout.write(svg);

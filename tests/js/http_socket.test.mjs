// Unit tests of web/client/http_socket.js: the frame codec (client frames
// out, server frames in), the SSE reader, and HttpSocket against an
// in-process fake of the server side of docs/fallback.md (fetch injected).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFrame, closePayload, FrameParser, SseReader, HttpSocket } from '../../web/client/http_socket.js';

const te = new TextEncoder();

// A server frame (unmasked), as the server's dx_conn writes it.
function serverFrame(opcode, payload, fin = true) {
  payload = typeof payload === 'string' ? te.encode(payload) : Uint8Array.from(payload);
  const n = payload.length;
  const head = n < 126 ? [n] : n < 65536 ? [126, n >> 8, n & 255] : [127, 0, 0, 0, 0, (n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
  return Uint8Array.from([(fin ? 0x80 : 0) | opcode, ...head, ...payload]);
}

// Decodes one client frame: checks the mask bit, unmasks.
function decodeClient(b) {
  assert.ok(b[1] & 0x80, 'client frames are masked');
  let len = b[1] & 0x7f;
  let off = 2;
  if (len === 126) { len = (b[2] << 8) | b[3]; off = 4; } else if (len === 127) {
    len = new DataView(b.buffer, b.byteOffset).getUint32(6); off = 10;
  }
  const mask = b.subarray(off, off + 4);
  const payload = b.slice(off + 4, off + 4 + len);
  for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
  return { fin: !!(b[0] & 0x80), opcode: b[0] & 15, len, headLen: off, payload, size: off + 4 + len };
}

test('encodeFrame: masked with the given mask, 7/16/64-bit lengths at 125, 126, 65535, 65536', () => {
  const mask = Uint8Array.from([1, 2, 3, 4]);
  const f = encodeFrame(1, te.encode('Hi'), { mask });
  assert.deepEqual([...f], [0x81, 0x82, 1, 2, 3, 4, 0x48 ^ 1, 0x69 ^ 2]);
  for (const [n, headLen] of [[0, 2], [125, 2], [126, 4], [65535, 4], [65536, 10], [70000, 10]]) {
    const payload = new Uint8Array(n).map((_, i) => i * 7);
    const d = decodeClient(encodeFrame(2, payload));
    assert.equal(d.headLen, headLen, `length ${n}`);
    assert.equal(d.len, n);
    assert.deepEqual(d.payload, payload);
    assert.equal(d.opcode, 2);
    assert.ok(d.fin);
  }
  assert.equal(encodeFrame(0, new Uint8Array(1), { fin: false })[0], 0x00, 'continuation without FIN');
  const masks = new Set(Array.from({ length: 20 }, () => encodeFrame(1, new Uint8Array(1)).subarray(2, 6).join()));
  assert.ok(masks.size > 15, 'a fresh random mask per frame');
});

test('closePayload: code big-endian then reason; 1005 / none is empty', () => {
  assert.deepEqual([...closePayload(1000, 'ok')], [0x03, 0xe8, 0x6f, 0x6b]);
  assert.equal(closePayload(undefined).length, 0);
  assert.equal(closePayload(1005).length, 0);
});

test('FrameParser: text and binary at boundary lengths, delivered one byte at a time', () => {
  for (const n of [0, 125, 126, 65535, 65536]) {
    const p = new FrameParser();
    const text = 'é'.repeat(Math.floor(n / 2)) + 'x'.repeat(n % 2);
    const bytes = serverFrame(1, text);
    const all = [];
    if (n <= 126) for (const b of bytes) all.push(...p.push(Uint8Array.of(b)));
    else { all.push(...p.push(bytes.subarray(0, 5))); all.push(...p.push(bytes.subarray(5))); }
    assert.deepEqual(all, [{ type: 'text', data: text }], `text of ${n} bytes`);
    const bin = new Uint8Array(n).map((_, i) => i);
    const got = new FrameParser().push(serverFrame(2, bin));
    assert.equal(got[0].type, 'binary');
    assert.deepEqual(got[0].data, bin);
  }
});

test('FrameParser: fragmentation, control frames in between, a UTF-8 character split across fragments', () => {
  const p = new FrameParser();
  const euro = te.encode('€'); // 3 bytes
  const stream = [
    serverFrame(1, [0x61, euro[0]], false),
    serverFrame(9, 'hb'),
    serverFrame(0, [euro[1]], false),
    serverFrame(10, ''),
    serverFrame(0, [euro[2], 0x62], true),
    serverFrame(2, [1], false),
    serverFrame(0, [2, 3], true),
  ];
  const out = p.push(Uint8Array.from(stream.flatMap((f) => [...f])));
  assert.deepEqual(out.map((e) => e.type), ['ping', 'pong', 'text', 'binary']);
  assert.deepEqual([...out[0].data], [...te.encode('hb')]);
  assert.equal(out[2].data, 'a€b');
  assert.deepEqual([...out[3].data], [1, 2, 3]);
});

test('FrameParser: protocol errors fail with 1002, bad UTF-8 with 1007, and nothing after', () => {
  const err = (bytes) => new FrameParser().push(Uint8Array.from(bytes)).at(-1);
  assert.equal(err(serverFrame(0, 'x')).code, 1002, 'continuation without a message');
  assert.equal(err([...serverFrame(1, 'a', false), ...serverFrame(1, 'b')]).code, 1002, 'new message inside a fragmented one');
  assert.equal(err([0x83, 0]).code, 1002, 'unknown opcode');
  assert.equal(err([0xc1, 0]).code, 1002, 'RSV1 without an extension');
  assert.equal(err([0x81, 0x81, 0, 0, 0, 0, 0x61]).code, 1002, 'masked server frame');
  assert.equal(err([0x09, 0]).code, 1002, 'fragmented ping');
  assert.equal(err([0x89, 126, 0, 126, ...new Uint8Array(126)]).code, 1002, 'ping over 125 bytes');
  const bad = err(serverFrame(1, [0x61, 0xff, 0xfe]));
  assert.deepEqual([bad.type, bad.code], ['error', 1007]);
  assert.equal(err(serverFrame(1, [0xed, 0xa0, 0x80])).code, 1007, 'a surrogate is not UTF-8');
  assert.equal(err([...serverFrame(1, [0xe2, 0x82], false), ...serverFrame(0, [0x41])]).code, 1007, 'broken across fragments');
  const p = new FrameParser();
  p.push(serverFrame(1, [0xff]));
  assert.deepEqual(p.push(serverFrame(1, 'later')), [], 'nothing is parsed after an error');
  assert.equal(new FrameParser({ maxMessage: 10 }).push(serverFrame(2, new Uint8Array(11)))[0].code, 1009);
});

test('FrameParser: close frames: code and reason, empty → 1005, bad ones → 1002/1007', () => {
  const close = (payload) => new FrameParser().push(serverFrame(8, payload))[0];
  assert.deepEqual(close([...closePayload(4001, 'bye é')]), { type: 'close', code: 4001, reason: 'bye é' });
  assert.deepEqual(close([]), { type: 'close', code: 1005, reason: '' });
  assert.equal(close([3]).code, 1002, 'one byte');
  for (const bad of [999, 1004, 1005, 1006, 1015, 2999, 5000]) {
    assert.equal(close([bad >> 8, bad & 255]).code, 1002, `code ${bad} may not be sent`);
  }
  assert.deepEqual([close([0x03, 0xe8, 0xff]).type, close([0x03, 0xe8, 0xff]).code], ['error', 1007]);
});

test('SseReader: data lines across chunks, CRLF, comments and other fields skipped', () => {
  const r = new SseReader();
  const b64 = Buffer.from([0, 1, 2, 250]).toString('base64');
  const out = [
    ...r.push(':\n\nda'),
    ...r.push(`ta: ${b64.slice(0, 3)}`),
    ...r.push(`${b64.slice(3)}\r\n\r\nevent: x\nid: 3\n\ndata: ${Buffer.from('A').toString('base64')}\n`),
  ];
  assert.deepEqual(out.map((u) => [...u]), [[0, 1, 2, 250], [65]]);
});

// ---- HttpSocket against a fake server ------------------------------------

// The server side of the spec, in process, behind a fake fetch: echoes
// messages, answers text 'srv:ping' with a ping frame then 'after', 'srv:bad'
// with invalid UTF-8, 'srv:close' with a close frame 4002. `faults` lets a
// test refuse the open, drop up POSTs or answer 404. With `carry`, it
// keeps the real server's `sent` (srv.at): a POST with mode=poll carries
// back what waits past it, and polls answer from it (docs/fallback.md).
function fakeServer({ openStatus = 200, mode, carry = false } = {}) {
  const srv = {
    opens: [], ups: [], downs: [], upFrames: [], out: [], sent: 0, released: 0, E: 0, inbuf: new Uint8Array(0),
    failNextUps: 0, gone: false, waiting: null, at: 0, carried: 0, cutNextCarry: false,
  };
  const write = (bytes) => {
    srv.out.push(...bytes);
    srv.sent += bytes.length;
    const w = srv.waiting;
    srv.waiting = null;
    if (w) w();
  };
  srv.write = write;
  const feed = (bytes) => {
    const b = new Uint8Array(srv.inbuf.length + bytes.length);
    b.set(srv.inbuf); b.set(bytes, srv.inbuf.length);
    srv.inbuf = b;
    while (srv.inbuf.length >= 6) {
      const d = decodeClient(srv.inbuf);
      if (srv.inbuf.length < d.size) break;
      srv.inbuf = srv.inbuf.slice(d.size);
      srv.upFrames.push(d);
      const text = d.opcode === 1 ? new TextDecoder().decode(d.payload) : null;
      if (d.opcode === 8) write(serverFrame(8, d.payload));
      else if (d.opcode === 9) write(serverFrame(10, d.payload));
      else if (d.opcode === 10) { /* pong */ } else if (text === 'srv:ping') { write(serverFrame(9, 'p!')); write(serverFrame(1, 'after')); } else if (text === 'srv:bad') write(serverFrame(1, [0xc3, 0x28]));
      else if (text === 'srv:close') write(serverFrame(8, closePayload(4002, 'server says bye')));
      else write(serverFrame(d.opcode, d.payload));
    }
  };
  const answer = (status, body = null, headers = {}) => new Response(status === 204 ? null : body, { status, headers });
  srv.fetch = async (url, init = {}) => {
    const u = new URL(url);
    await null;
    if (init.method === 'POST' && init.headers && init.headers['X-Duplex-Session'] === '1') {
      srv.opens.push({ url: u.href, protocol: init.headers['X-Duplex-Protocol'] });
      if (openStatus !== 200) return answer(openStatus, 'refused');
      const offered = (init.headers['X-Duplex-Protocol'] || '').split(', ');
      return answer(200, JSON.stringify({ sid: 'ab'.repeat(16), protocol: offered.at(-1), idle: 30000, poll: 1000 }));
    }
    if (srv.gone) return answer(404, 'gone');
    const ack = Number(u.searchParams.get('ack'));
    if (ack > srv.released) { srv.out.splice(0, ack - srv.released); srv.released = ack; }
    if (u.pathname.endsWith('/up')) {
      const seq = Number(u.searchParams.get('seq'));
      const body = new Uint8Array(init.body);
      srv.ups.push({ seq, ack, len: body.length });
      if (srv.failNextUps > 0) {
        srv.failNextUps--;
        if (srv.failNextUps % 2 === 0) feed(body.subarray(Math.max(0, srv.E - seq))), (srv.E = Math.max(srv.E, seq + body.length));
        throw new TypeError('network error'); // sometimes after the server got it
      }
      if (seq > srv.E) return answer(409, null, { 'X-Duplex-Seq': String(srv.E) });
      const fresh = body.subarray(srv.E - seq);
      srv.E += fresh.length;
      feed(fresh);
      if (carry && u.searchParams.get('mode') === 'poll' && srv.sent > srv.at) {
        const from = srv.at;
        srv.at = srv.sent;
        srv.carried++;
        const headers = { 'X-Duplex-Seq': String(srv.E), 'X-Duplex-Offset': String(from) };
        if (srv.cutNextCarry) { // the answer's body breaks off: its bytes are lost
          srv.cutNextCarry = false;
          return new Response(new ReadableStream({ start(c) { c.error(new TypeError('cut')); } }), { status: 200, headers });
        }
        return answer(200, Uint8Array.from(srv.out.slice(from - srv.released)), headers);
      }
      return answer(204, null, { 'X-Duplex-Seq': String(srv.E) });
    }
    srv.downs.push({ ack, mode: u.searchParams.get('mode') });
    assert.equal(u.searchParams.get('mode'), mode);
    if (carry) {
      // As the server: the answer starts at the ack, or where a POST's
      // answer left off when one carried bytes while this poll was held.
      srv.at = ack;
      while (srv.sent <= srv.at) {
        await new Promise((resolve, reject) => {
          srv.waiting = resolve;
          init.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
        });
        await null; // a POST being answered takes the bytes first
      }
      const from = srv.at;
      srv.at = srv.sent;
      return answer(200, Uint8Array.from(srv.out.slice(from - srv.released)), { 'X-Duplex-Offset': String(from) });
    }
    // A poll: what is there, or wait until something is (aborts end it).
    if (srv.out.length === 0) {
      await new Promise((resolve, reject) => {
        srv.waiting = resolve;
        init.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
      });
    }
    return answer(200, Uint8Array.from(srv.out), { 'X-Duplex-Offset': String(ack) });
  };
  return srv;
}

function waitFor(cond, what, ms = 3000) {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const check = () => {
      if (cond()) resolve();
      else if (Date.now() - t0 > ms) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(check, 5);
    };
    check();
  });
}

function events(sock) {
  const log = [];
  sock.onopen = () => log.push('open');
  sock.onerror = () => log.push('error');
  sock.onmessage = (e) => log.push(typeof e.data === 'string' ? `text:${e.data}` : `bin:${[...new Uint8Array(e.data)]}`);
  sock.onclose = (e) => log.push(`close:${e.code}:${e.reason}:${e.wasClean}`);
  return log;
}

test('HttpSocket: open request, echo in order, ping answered, bufferedAmount, clean close', async () => {
  const srv = fakeServer({ mode: 'poll' });
  const s = new HttpSocket('wss://h.example/chat?token=T', ['p1', 'p2'], { fetch: srv.fetch, mode: 'poll' });
  assert.equal(s.readyState, 0);
  assert.throws(() => s.send('early'), { name: 'InvalidStateError' });
  s.binaryType = 'arraybuffer';
  const log = events(s);
  await waitFor(() => s.readyState === 1, 'open');
  assert.deepEqual(srv.opens, [{ url: 'https://h.example/chat?token=T', protocol: 'p1, p2' }]);
  assert.equal(s.protocol, 'p2');
  assert.equal(s.extensions, '');
  s.send('one');
  s.send(Uint8Array.of(1, 2, 3));
  s.send(new Blob([Uint8Array.of(9)]));
  s.send('srv:ping');
  s.send(new Uint8Array(70000).subarray(0, 200).buffer);
  assert.ok(s.bufferedAmount > 0);
  await waitFor(() => log.length >= 6, 'echoes');
  assert.deepEqual(log.slice(0, 5), ['open', 'text:one', 'bin:1,2,3', 'bin:9', 'text:after']);
  assert.ok(log[5].startsWith('bin:0,0'));
  assert.ok(srv.upFrames.some((f) => f.opcode === 10 && new TextDecoder().decode(f.payload) === 'p!'), 'ping answered with a pong');
  await waitFor(() => s.bufferedAmount === 0, 'bufferedAmount back to 0');
  s.close(1000, 'bye');
  assert.equal(s.readyState, 2);
  await waitFor(() => s.readyState === 3, 'closed');
  assert.equal(log.at(-1), 'close:1000:bye:true');
  assert.ok(srv.ups.at(-1).ack === srv.sent, 'the close frame acknowledged');
});

test('HttpSocket poll mode: POST answers carry the echoes, crossing polls and a cut answer lose or double nothing', async () => {
  const srv = fakeServer({ mode: 'poll', carry: true });
  const s = new HttpSocket('ws://h/', undefined, { fetch: srv.fetch, mode: 'poll' });
  const log = events(s);
  await waitFor(() => s.readyState === 1, 'open');
  for (let i = 0; i < 20; i++) {
    s.send(`m${i}`);
    await waitFor(() => log.length >= i + 2, `echo ${i}`);
  }
  assert.deepEqual(log, ['open', ...Array.from({ length: 20 }, (_, i) => `text:m${i}`)]);
  assert.ok(srv.ups.length >= 20, 'one POST per message at least');
  assert.ok(srv.carried >= 15, `the POSTs' answers carried the echoes (${srv.carried} of 20)`);
  assert.ok(srv.downs.length <= 3, `the poll stays held meanwhile (${srv.downs.length} polls)`);
  // A ping frame goes to the held poll, its pong's echo... both channels
  // carry bytes at once: nothing twice, nothing lost, in order.
  s.send('srv:ping');
  s.send('x1');
  await waitFor(() => log.length >= 23, 'after, x1');
  assert.deepEqual(log.slice(21), ['text:after', 'text:x1']);
  // A carried answer cut off: its echo comes again by a new poll.
  const polls = srv.downs.length;
  srv.cutNextCarry = true;
  s.send('lost?');
  await waitFor(() => log.length >= 24, 'the echo of the cut answer');
  assert.equal(log[23], 'text:lost?');
  assert.ok(srv.downs.length > polls, 'a new poll asked for the lost bytes');
  s.send('last');
  await waitFor(() => log.length >= 25, 'last');
  assert.equal(log[24], 'text:last');
  s.close(1000);
  await waitFor(() => s.readyState === 3, 'closed');
  assert.equal(log.at(-1), 'close:1000::true');
  assert.equal(log.filter((l) => l.startsWith('text:')).length, 24);
});

test('HttpSocket: a network error retries the same seq, never delivering twice', async () => {
  const srv = fakeServer({ mode: 'poll' });
  const s = new HttpSocket('ws://h/', undefined, { fetch: srv.fetch, mode: 'poll' });
  const log = events(s);
  await waitFor(() => s.readyState === 1, 'open');
  srv.failNextUps = 3; // 3rd and 1st fail before, 2nd after the server took the bytes
  for (let i = 0; i < 5; i++) s.send(`m${i}`);
  await waitFor(() => log.length >= 6, 'echoes', 8000);
  assert.deepEqual(log, ['open', 'text:m0', 'text:m1', 'text:m2', 'text:m3', 'text:m4']);
  assert.deepEqual(srv.upFrames.map((f) => new TextDecoder().decode(f.payload)), ['m0', 'm1', 'm2', 'm3', 'm4']);
  s.close();
  await waitFor(() => s.readyState === 3, 'closed');
});

test('HttpSocket: server close frame answered; bad UTF-8 fails with 1007; 404 and refusals → 1006', async () => {
  let srv = fakeServer({ mode: 'poll' });
  let s = new HttpSocket('ws://h/', undefined, { fetch: srv.fetch, mode: 'poll' });
  let log = events(s);
  await waitFor(() => s.readyState === 1, 'open');
  s.send('srv:close');
  await waitFor(() => s.readyState === 3, 'closed');
  assert.equal(log.at(-1), 'close:4002:server says bye:true');
  const answer = srv.upFrames.at(-1);
  assert.equal(answer.opcode, 8);
  assert.equal((answer.payload[0] << 8) | answer.payload[1], 4002, 'the close frame echoes the code');

  srv = fakeServer({ mode: 'poll' });
  s = new HttpSocket('ws://h/', undefined, { fetch: srv.fetch, mode: 'poll' });
  log = events(s);
  await waitFor(() => s.readyState === 1, 'open');
  s.send('srv:bad');
  await waitFor(() => s.readyState === 3, 'closed');
  assert.deepEqual(log, ['open', 'error', 'close:1007:invalid UTF-8 in a text message:false']);
  await waitFor(() => srv.upFrames.at(-1)?.opcode === 8, 'close frame 1007 sent');
  assert.equal((srv.upFrames.at(-1).payload[0] << 8) | srv.upFrames.at(-1).payload[1], 1007);

  srv = fakeServer({ mode: 'poll' });
  s = new HttpSocket('ws://h/', undefined, { fetch: srv.fetch, mode: 'poll' });
  log = events(s);
  await waitFor(() => s.readyState === 1, 'open');
  srv.gone = true;
  s.send('x');
  await waitFor(() => s.readyState === 3, 'closed');
  assert.deepEqual(log, ['open', 'error', 'close:1006::false']);

  srv = fakeServer({ openStatus: 403 });
  s = new HttpSocket('ws://h/', undefined, { fetch: srv.fetch });
  log = events(s);
  await waitFor(() => s.readyState === 3, 'closed');
  assert.deepEqual(log, ['error', 'close:1006::false'], 'refused open: error then close 1006, as a browser');

  s = new HttpSocket('ws://h/', undefined, { fetch: srv.fetch });
  log = events(s);
  s.close();
  assert.equal(s.readyState, 3);
  assert.deepEqual(log, ['error', 'close:1006::false'], 'close() while connecting');
  assert.throws(() => new HttpSocket('ftp://h/'), { name: 'SyntaxError' });
  assert.throws(() => s.close(1001), { name: 'InvalidAccessError' });
});

test('HttpSocket auto mode: streams, and polls for good after two streams that end empty', async () => {
  const srv = fakeServer({ mode: 'poll' });
  const modes = [];
  const fetch = async (url, init = {}) => {
    const u = new URL(url);
    if (u.pathname.endsWith('/down')) {
      modes.push(u.searchParams.get('mode'));
      if (u.searchParams.get('mode') === 'stream') {
        // A proxy that ends every stream at once, empty.
        return new Response('', { status: 200, headers: { 'Content-Type': 'text/event-stream', 'X-Duplex-Offset': u.searchParams.get('ack') } });
      }
    }
    return srv.fetch(url, init);
  };
  const s = new HttpSocket('ws://h/', undefined, { fetch });
  const log = events(s);
  await waitFor(() => s.readyState === 1, 'open');
  assert.equal(s.mode, 'stream');
  s.send('over polls');
  await waitFor(() => log.includes('text:over polls'), 'echo', 5000);
  assert.deepEqual(modes.slice(0, 3), ['stream', 'stream', 'poll']);
  assert.equal(s.mode, 'poll');
  s.close();
  await waitFor(() => s.readyState === 3, 'closed');
});

test('HttpSocket stream mode: SSE data lines parsed across chunks', async () => {
  const srv = fakeServer({ mode: 'poll' });
  const b64 = (bytes) => Buffer.from(bytes).toString('base64');
  let streams = 0;
  const fetch = async (url, init = {}) => {
    const u = new URL(url);
    if (u.pathname.endsWith('/down')) {
      streams++;
      assert.equal(u.searchParams.get('mode'), 'stream');
      if (streams > 1) return new Promise((resolve, reject) => init.signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError'))));
      const frames = [...serverFrame(1, 'hello'), ...serverFrame(2, [7, 8]), ...serverFrame(1, 'x'.repeat(300))];
      const sse = `:\n\ndata: ${b64(frames.slice(0, 4))}\n\ndata: ${b64(frames.slice(4))}\n\n`;
      const enc = new TextEncoder().encode(sse);
      const body = new ReadableStream({
        start(c) { for (let i = 0; i < enc.length; i += 7) c.enqueue(enc.slice(i, i + 7)); c.close(); },
      });
      return new Response(body, { status: 200, headers: { 'X-Duplex-Offset': u.searchParams.get('ack') } });
    }
    return srv.fetch(url, init);
  };
  const s = new HttpSocket('ws://h/', undefined, { fetch, mode: 'stream' });
  s.binaryType = 'arraybuffer';
  const log = events(s);
  await waitFor(() => log.length >= 4, 'messages');
  assert.deepEqual(log, ['open', 'text:hello', 'bin:7,8', `text:${'x'.repeat(300)}`]);
  await waitFor(() => streams === 2, 'the next stream');
  s.close();
  await waitFor(() => s.readyState === 3, 'closed', 7000);
});

test('HttpSocket: a proxy\'s 5xx on up or down is retried, not fatal', async () => {
  const srv = fakeServer({ mode: 'poll' });
  let upErrors = 2;
  let downErrors = 1;
  const fetch = async (url, init = {}) => {
    const u = new URL(url);
    if (u.pathname.endsWith('/up') && upErrors > 0) { upErrors--; return new Response('bad gateway', { status: 502 }); }
    if (u.pathname.endsWith('/down') && downErrors > 0) { downErrors--; return new Response('unavailable', { status: 503 }); }
    return srv.fetch(url, init);
  };
  const s = new HttpSocket('ws://h/', undefined, { fetch, mode: 'poll' });
  const log = events(s);
  await waitFor(() => s.readyState === 1, 'open');
  s.send('through');
  await waitFor(() => log.includes('text:through'), 'echo', 5000);
  assert.deepEqual(log, ['open', 'text:through']);
  assert.equal(upErrors + downErrors, 0);
  s.close();
  await waitFor(() => s.readyState === 3, 'closed');
});

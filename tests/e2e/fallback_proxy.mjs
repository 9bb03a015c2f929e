// A TCP proxy in front of `duplex serve` that breaks WebSocket the ways real
// proxies do, for tests/e2e/fallback.mjs. Per connection it reads the first
// request head; a request with an `Upgrade:` header is treated by the mode:
//   refuse    — answered `400 Bad Request` (a proxy that strips or rejects Upgrade)
//   blackhole — answered with a well-formed `101 Switching Protocols`, then
//               nothing is forwarded either way (a proxy that accepts and hangs)
//   pass      — forwarded like everything else
// Other requests are piped to the server untouched (the connection then
// stays piped: keep-alive requests follow the first one), except, with
// setStreams('hold'), a session's SSE stream (`mode=stream`): it goes to the
// server but nothing of the answer comes back, not even its headers (a
// proxy that buffers whole responses). The modes apply to new connections
// (setStreams also drops the piped ones) and can change at run time:
// setMode() / setStreams() in process, or
// `GET /.proxy/mode/<mode>` on the proxy itself.
//
// Usage in process: const p = await startProxy(upstreamPort, 'refuse');
//   p.port, p.setMode('pass'), p.setStreams('hold'), p.counts, await p.close()
// Standalone: node fallback_proxy.mjs UPSTREAM_PORT [MODE]  (prints "proxy listening on PORT")
import net from 'node:net';
import crypto from 'node:crypto';

const MODES = ['refuse', 'blackhole', 'pass'];

export function startProxy(upstream, mode = 'pass', host = '127.0.0.1') {
  const sockets = new Set();
  const counts = { upgrades: 0, refused: 0, blackholed: 0, passed: 0, plain: 0, held: 0 };
  const proxy = { port: 0, mode, streams: 'pass', counts };
  const plain = new Set(); // piped non-upgrade connections (browser side)
  // A new stream mode starts on fresh connections, as after a proxy's
  // reload: a kept-alive connection piped earlier would carry the next
  // stream past the new mode unseen (the held-stream check of
  // fallback.mjs once saw 0 held that way, when Chromium reused one).
  proxy.setStreams = (m) => {
    proxy.streams = m === 'hold' ? 'hold' : 'pass';
    for (const c of plain) c.destroy();
    plain.clear();
  };
  proxy.setMode = (m) => {
    if (!MODES.includes(m)) throw new Error(`mode ${m}: not one of ${MODES.join(', ')}`);
    proxy.mode = m;
  };

  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    let head = Buffer.alloc(0);
    const onData = (chunk) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > 65536) client.destroy();
        return;
      }
      client.off('data', onData);
      client.pause();
      route(client, head, head.subarray(0, end).toString('latin1'));
    };
    client.on('data', onData);
  });

  function route(client, buffered, text) {
    const [requestLine, ...lines] = text.split('\r\n');
    const headers = {};
    for (const l of lines) {
      const i = l.indexOf(':');
      if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    const m = /^GET \/\.proxy\/mode\/(\w+) /.exec(requestLine);
    if (m) {
      let status = '204 No Content';
      try { proxy.setMode(m[1]); } catch { status = '400 Bad Request'; }
      client.end(`HTTP/1.1 ${status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
      return;
    }
    if (!('upgrade' in headers)) {
      counts.plain++;
      plain.add(client);
      client.on('close', () => plain.delete(client));
      if (proxy.streams === 'hold' && /^GET \/\.duplex\/\S*mode=stream/.test(requestLine)) {
        counts.held++;
        pipe(client, buffered, true);
      } else {
        pipe(client, buffered);
      }
      return;
    }
    counts.upgrades++;
    if (proxy.mode === 'refuse') {
      counts.refused++;
      client.end('HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 20\r\nConnection: close\r\n\r\nno upgrade here, sir');
    } else if (proxy.mode === 'blackhole') {
      counts.blackholed++;
      const accept = crypto.createHash('sha1')
        .update(`${headers['sec-websocket-key'] || ''}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      client.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${accept}\r\n\r\n`);
      client.resume(); // read and drop whatever the browser sends
      client.on('data', () => {});
    } else {
      counts.passed++;
      pipe(client, buffered);
    }
  }

  // `hold`: the answer is read and dropped (the client waits for nothing).
  function pipe(client, buffered, hold = false) {
    const up = net.connect(upstream, host);
    sockets.add(up);
    up.on('close', () => { sockets.delete(up); client.destroy(); });
    up.on('error', () => client.destroy());
    client.on('close', () => up.destroy());
    up.on('connect', () => {
      up.write(buffered);
      client.pipe(up);
      if (hold) up.on('data', () => {});
      else up.pipe(client);
      client.resume();
    });
  }

  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, host, () => {
      proxy.port = server.address().port;
      proxy.close = () => new Promise((done) => {
        for (const s of sockets) s.destroy();
        server.close(() => done());
      });
      resolve(proxy);
    });
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [upstream, mode = 'pass'] = process.argv.slice(2);
  const p = await startProxy(Number(upstream), mode);
  console.log(`proxy listening on ${p.port}`);
}

// Known traffic for test_metrics.sh: CLIENTS connections, each sends TEXT
// text and BIN binary messages, waits for every echo, then closes with
// CODE (1000 unless given). Usage:
//   node metrics_client.mjs ws://127.0.0.1:PORT/ CLIENTS TEXT BIN [CODE]
// Exits 0 when every echo came back and every close completed.
import { createRequire } from 'node:module';
import path from 'node:path';

const root = process.env.DX_ROOT ?? path.resolve(import.meta.dirname, '../..');
const require = createRequire(path.join(root, 'package.json'));
const WebSocket = require('ws');

const [url, clients, text, bin, code] = process.argv.slice(2);
const closeCode = Number(code ?? 1000);

// perMessageDeflate off: the test counts bytes on the wire too.
const one = () =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const want = Number(text) + Number(bin);
    let got = 0;
    const t = setTimeout(() => reject(new Error('timeout')), 20000);
    ws.once('error', reject);
    ws.once('open', () => {
      for (let i = 0; i < Number(text); i++) ws.send(`text ${i}`);
      for (let i = 0; i < Number(bin); i++) ws.send(Buffer.from([i, 1, 2, 3]));
    });
    ws.on('message', () => {
      if (++got === want) ws.close(closeCode);
    });
    ws.once('close', (c) => {
      clearTimeout(t);
      if (got !== want) reject(new Error(`got ${got} of ${want} echoes`));
      else if (c !== closeCode) reject(new Error(`closed with ${c}`));
      else resolve();
    });
  });

try {
  // One after the other: the server sees the connections in a known order.
  for (let i = 0; i < Number(clients); i++) await one();
} catch (e) {
  console.error(`metrics_client: ${e.message}`);
  process.exit(1);
}

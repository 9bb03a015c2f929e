// Compiled, never run: `tsc --noEmit -p tests/js` checks that the .d.ts
// files of web/client describe how the library is used.
import DuplexSocketDefault, { DuplexSocket, type DuplexCloseEvent } from '../../web/client/duplex.js';
import { useDuplex } from '../../web/client/react.js';
import { useDuplex as useDuplexVue } from '../../web/client/vue.js';
import { ref } from 'vue';

const s: DuplexSocket = new DuplexSocket('wss://example.com/', ['chat'], {
  heartbeat: { interval: 5000, timeout: 2000, ping: 'ping', pong: 'pong' },
  reconnect: { base: 250, cap: 10000, maxAttempts: 20, finalCodes: [1008, 4401] },
  queue: { maxMessages: 100, maxBytes: 65536, overflow: 'drop-oldest' },
});
const s2 = new DuplexSocketDefault(['ws://a/', new URL('ws://b/')], { reconnect: false });
// A drop-in: code written for WebSocket takes a DuplexSocket.
function useLikeWebSocket(ws: { readyState: number; send(d: string): unknown; close(): void; binaryType: BinaryType }) {
  if (ws.readyState === DuplexSocket.OPEN) ws.send('x');
}
useLikeWebSocket(s);
s.binaryType = 'arraybuffer';
s.onclose = (e: DuplexCloseEvent) => { const again: boolean = e.willReconnect; void again; };
s.addEventListener('reconnecting', (e) => { const d: number | null = e.delay; void d; });
s.addEventListener('message', (e) => { const data: unknown = e.data; void data; });
const ok: boolean = s.send(new Uint8Array(3));
const n: number = s.bufferedAmount + s.queuedMessages;
const reply: Promise<{ ok: boolean }> = s.request<{ ok: boolean }>({ op: 'get' }, { timeout: 1000 });
s.close(3001, 'user left');
s2.open();
void ok; void n; void reply;

function Component() {
  const { readyState, send, request, lastMessage, error, socket, retry } = useDuplex<{ text: string }>('ws://a/', {
    json: true,
    onMessage: (m) => { const t: string = m.text; void t; },
    heartbeat: false,
  });
  const open: boolean = readyState === 1;
  send({ text: 'hi' });
  const wait: number | null | undefined = retry?.delay;
  void wait; void request({ op: 'x' }); void lastMessage?.text; void error; void socket?.url; void open;
  useDuplex(null);
}
void Component;

const url = ref<string | null>('ws://a/');
const v = useDuplexVue(url, { onOpen: () => {} });
const rs: 0 | 1 | 2 | 3 = v.readyState.value;
void rs; void useDuplexVue(() => ['ws://a/', 'ws://b/']);

// @ts-expect-error: readyState is read-only
s.readyState = 1;
// @ts-expect-error: overflow policies are a closed set
new DuplexSocket('ws://a/', { queue: { overflow: 'block' } });

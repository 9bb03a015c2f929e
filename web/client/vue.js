// Vue 3 composable over DuplexSocket: the same surface as the React hook,
// and all the logic in DuplexSocket. The socket lives as long as the
// component (or effect scope) that called useDuplex; a reactive URL swaps
// it; unmount closes it and cuts every listener (the notes' composable left
// closing to the caller and kept handlers on a socket nobody closed).
import { ref, shallowRef, watch, toValue, onScopeDispose, getCurrentScope } from 'vue';
import { DuplexSocket } from './duplex.js';

const CLOSED = 3;
const HOOK_ONLY = ['protocols', 'json', 'onOpen', 'onMessage', 'onClose', 'onError', 'onReconnecting'];

function isBinary(d) {
  return typeof d === 'object' && d !== null &&
    (d instanceof ArrayBuffer || ArrayBuffer.isView(d) || (typeof Blob !== 'undefined' && d instanceof Blob));
}

/**
 * useDuplex(url, options) → { readyState, lastMessage, error, socket, retry, send, request }
 *
 * url: a URL, an array of URLs, null, or a ref/getter of one of these;
 *   when it changes, the old socket is closed and a new one opened.
 * options: as the React hook (DuplexSocket options, protocols, json,
 *   onOpen/onMessage/onClose/onError/onReconnecting). The refs are
 *   readyState, lastMessage, error, socket and retry ({ attempt, delay,
 *   at } while waiting to reconnect, else null), the last four shallow.
 * Must be called inside setup() or an effect scope, whose end closes it.
 */
export function useDuplex(url, options = {}) {
  if (!getCurrentScope()) throw new Error('useDuplex: call it inside setup() or an effectScope()');
  const readyState = ref(CLOSED);
  const lastMessage = shallowRef(null);
  const error = shallowRef(null);
  const socket = shallowRef(null);
  const retry = shallowRef(null);
  const transport = ref(null); // 'websocket' | 'http' while open, else null

  let stop = null; // closes the current socket and its listeners

  function connect(target) {
    if (stop) stop();
    stop = null;
    socket.value = null;
    retry.value = null;
    transport.value = null;
    if (target == null || (Array.isArray(target) && target.length === 0)) {
      readyState.value = CLOSED;
      return;
    }
    const sockOpts = { ...options };
    for (const k of HOOK_ONLY) delete sockOpts[k];
    const sock = new DuplexSocket(Array.isArray(target) ? [...target] : target, options.protocols, sockOpts);
    const ac = new AbortController();
    const on = (type, fn) => sock.addEventListener(type, fn, { signal: ac.signal });
    const sync = () => { readyState.value = sock.readyState; };
    on('connecting', sync);
    on('reconnecting', (e) => {
      sync();
      retry.value = { attempt: e.attempt, delay: e.delay, at: Date.now() };
      options.onReconnecting?.(e);
    });
    on('open', (e) => { sync(); error.value = null; retry.value = null; transport.value = sock.transport; options.onOpen?.(e); });
    on('message', (e) => {
      let data = e.data;
      if (options.json && typeof data === 'string') {
        try { data = JSON.parse(data); } catch (err) { error.value = err; return; }
      }
      lastMessage.value = data;
      options.onMessage?.(data, e);
    });
    on('close', (e) => { sync(); transport.value = null; if (!e.wasClean) error.value = e; options.onClose?.(e); });
    on('error', (e) => { error.value = e; options.onError?.(e); });
    socket.value = sock;
    readyState.value = sock.readyState;
    stop = () => {
      ac.abort();
      sock.close(1000);
    };
  }

  // Vue runs watchers once per change, never twice for one mount, so the
  // socket can open at once (no StrictMode double effect to dodge).
  watch(() => {
    const v = toValue(url);
    return Array.isArray(v) ? v.map(String).join('\n') : v == null ? null : String(v);
  }, () => connect(toValue(url)), { immediate: true });

  onScopeDispose(() => {
    if (stop) stop();
    stop = null;
    socket.value = null;
  });

  function send(data) {
    const s = socket.value;
    if (!s) return false;
    if (options.json && typeof data !== 'string' && !isBinary(data)) data = JSON.stringify(data);
    return s.send(data);
  }
  function request(data, opts) {
    const s = socket.value;
    if (!s) return Promise.reject(new Error('useDuplex: no socket (url is null or the scope ended)'));
    return s.request(data, opts);
  }

  return { readyState, lastMessage, error, socket, retry, transport, send, request };
}

export default useDuplex;

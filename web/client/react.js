// React hook over DuplexSocket. One socket per (url, protocols): re-renders
// never reconnect, unmounts never leak.
//
// What the notes' hooks get wrong and this one does not:
// - handlers in the effect's dependencies re-create the socket on every
//   render (inline arrow functions are new each time): here handlers live
//   in a ref and are read when an event fires;
// - an early `return` inside the effect skipped the close() cleanup: here
//   the one cleanup closes the socket and cuts every listener, whatever
//   branch ran;
// - a closure over stale state decided reconnects and cleanup (the socket
//   in state is null in the first render's closure): here the socket is a
//   local of the effect that created it, and DuplexSocket owns reconnects.
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'react';
import { DuplexSocket } from './duplex.js';

const CONNECTING = 0;
const CLOSED = 3;
// Options of the hook itself, not passed on to DuplexSocket.
const HOOK_ONLY = ['protocols', 'json', 'onOpen', 'onMessage', 'onClose', 'onError', 'onReconnecting'];

// useLayoutEffect warns on the server; there is no socket there anyway.
const useIsoLayoutEffect = typeof window === 'undefined' ? useEffect : useLayoutEffect;

function keyOf(v) {
  if (v == null) return null;
  return Array.isArray(v) ? v.map(String).join('\n') : String(v);
}

function isBinary(d) {
  return typeof d === 'object' && d !== null &&
    (d instanceof ArrayBuffer || ArrayBuffer.isView(d) || (typeof Blob !== 'undefined' && d instanceof Blob));
}

/**
 * useDuplex(url, options) → { readyState, send, request, lastMessage, error, socket, retry }
 *
 * url: a ws(s) URL, an array of them (failover), or null to stay closed.
 * options: every DuplexSocket option (heartbeat, reconnect, queue, ...),
 *   read when the socket is created, i.e. when url or protocols change;
 *   `protocols`; `json` (parse incoming text, stringify outgoing objects);
 *   handlers onOpen(e), onMessage(data, e), onClose(e), onError(e),
 *   onReconnecting(e) — always the latest ones, never a reason to reconnect.
 * transport: 'websocket' or 'http' while open (DuplexSocket's fallback), else null.
 * retry: while waiting to reconnect, { attempt, delay, at } (delay in ms,
 *   or null while offline; at = Date.now() when it was scheduled, so a
 *   status line can count down); null once open.
 */
export function useDuplex(url, options = {}) {
  const urlKey = keyOf(url);
  const protocolsKey = keyOf(options.protocols) ?? '';
  const optsRef = useRef(options);
  useIsoLayoutEffect(() => {
    optsRef.current = options;
  });
  const sockRef = useRef(null);
  const [socket, setSocket] = useState(null);
  const [readyState, setReadyState] = useState(urlKey === null ? CLOSED : CONNECTING);
  const [lastMessage, setLastMessage] = useState(null);
  const [error, setError] = useState(null);
  const [retry, setRetry] = useState(null);
  const [transport, setTransport] = useState(null);

  useEffect(() => {
    if (urlKey === null) {
      setReadyState(CLOSED);
      setSocket(null);
      setRetry(null);
      setTransport(null);
      return undefined; // nothing was created: nothing to clean
    }
    const sockOpts = { ...optsRef.current };
    for (const k of HOOK_ONLY) delete sockOpts[k];
    const urls = urlKey.split('\n');
    const sock = new DuplexSocket(urls.length > 1 ? urls : urls[0], optsRef.current.protocols, {
      ...sockOpts,
      startClosed: true,
    });
    const ac = new AbortController();
    const on = (type, fn) => sock.addEventListener(type, fn, { signal: ac.signal });
    const sync = () => setReadyState(sock.readyState);
    on('connecting', sync);
    on('reconnecting', (e) => {
      sync();
      setRetry({ attempt: e.attempt, delay: e.delay, at: Date.now() });
      optsRef.current.onReconnecting?.(e);
    });
    on('open', (e) => {
      sync();
      setError(null);
      setRetry(null);
      setTransport(sock.transport);
      optsRef.current.onOpen?.(e);
    });
    on('message', (e) => {
      let data = e.data;
      if (optsRef.current.json && typeof data === 'string') {
        try {
          data = JSON.parse(data);
        } catch (err) {
          setError(err);
          return;
        }
      }
      setLastMessage(data);
      optsRef.current.onMessage?.(data, e);
    });
    on('close', (e) => {
      sync();
      setTransport(null);
      if (!e.wasClean) setError(e);
      optsRef.current.onClose?.(e);
    });
    on('error', (e) => {
      setError(e);
      optsRef.current.onError?.(e);
    });
    sockRef.current = sock;
    setSocket(sock);
    setReadyState(CONNECTING);
    // StrictMode runs effect, cleanup, effect synchronously: opening one
    // microtask later means the discarded first mount never touches the
    // network.
    let live = true;
    queueMicrotask(() => {
      if (live) sock.open();
    });
    return () => {
      live = false;
      ac.abort(); // no state update from this socket after cleanup
      sock.close(1000);
      if (sockRef.current === sock) sockRef.current = null;
    };
  }, [urlKey, protocolsKey]);

  // Stable identities: safe in dependency arrays and as props.
  const send = useCallback((data) => {
    const s = sockRef.current;
    if (!s) return false;
    if (optsRef.current.json && typeof data !== 'string' && !isBinary(data)) data = JSON.stringify(data);
    return s.send(data);
  }, []);
  const request = useCallback((data, opts) => {
    const s = sockRef.current;
    if (!s) return Promise.reject(new Error('useDuplex: no socket (url is null or unmounted)'));
    return s.request(data, opts);
  }, []);

  return { readyState, send, request, lastMessage, error, socket, retry, transport };
}

export default useDuplex;

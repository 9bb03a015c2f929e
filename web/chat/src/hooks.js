// The founding notes' IM hooks, on the duplex browser library:
//   useIM(uid, token)   the connection (useDuplex) and the IMStore behind it
//   useMsgStatus(im, m) a message's send status: sending / sent / failed / read
//   useMsgRead(im, id)  unread count of a conversation, marking it read
//   useMsgResend(im)    resend a failed message with its client id
import { useCallback, useEffect, useMemo, useState, useSyncExternalStore } from 'react';
import { useDuplex } from '../../client/react.js';
import { IMStore } from './im.js';

function chatUrl(uid, token) {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const q = token ? `token=${encodeURIComponent(token)}` : `uid=${encodeURIComponent(uid)}`;
  return `${proto}//${location.host}/chat?${q}`;
}

export function useIM(uid, token) {
  const im = useMemo(() => new IMStore(uid), [uid]);
  useSyncExternalStore(im.subscribe, im.getVersion);
  const url = uid ? chatUrl(uid, token) : null;
  const { socket } = useDuplex(url, {
    json: true,
    // Retries come fast at first (a restarted server is back in a second)
    // and never stop; the heartbeat finds dead links the browser misses.
    reconnect: { base: 400, factor: 2, cap: 8000 },
    heartbeat: { interval: 10000, timeout: 6000 },
    onOpen: (e) => {
      im.attach(e.target); // the open may come before the effect below
      im.onOpen();
    },
    onMessage: (data) => im.onMessage(data),
    onClose: (e) => {
      im.onClose();
      if (!e.willReconnect) im.setConn('closed');
    },
    onReconnecting: (e) =>
      im.setConn(e.reason === 'offline' ? 'offline' : 'reconnecting',
        e.delay == null ? null : Date.now() + e.delay),
  });
  useEffect(() => {
    im.attach(socket);
    if (socket) im.setConn('connecting');
  }, [im, socket]);
  return im;
}

export function useMsgStatus(im, m) {
  return im.status(m);
}

export function useMsgRead(im, convId) {
  const c = convId ? im.convs.get(convId) : null;
  const unread = c ? c.unread : 0;
  useEffect(() => {
    if (!convId) return undefined;
    const onVisible = () => im.markRead(convId);
    document.addEventListener('visibilitychange', onVisible);
    window.addEventListener('focus', onVisible);
    return () => {
      document.removeEventListener('visibilitychange', onVisible);
      window.removeEventListener('focus', onVisible);
    };
  }, [im, convId]);
  const markRead = useCallback(() => im.markRead(convId), [im, convId]);
  return { unread, markRead };
}

export function useMsgResend(im) {
  return useCallback((m) => im.resend(m.conv, m.cid), [im]);
}

// Re-renders every second while `on` (countdowns, "last seen" times).
export function useTicker(on) {
  const [, set] = useState(0);
  useEffect(() => {
    if (!on) return undefined;
    const t = setInterval(() => set((n) => n + 1), 1000);
    return () => clearInterval(t);
  }, [on]);
}

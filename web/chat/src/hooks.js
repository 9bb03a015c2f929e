// The founding notes' IM hooks, on the duplex browser library:
//   useIM(uid, token)   the connection (useDuplex) and the IMStore behind it
//   useMsgStatus(im, m) a message's send status: sending / sent / failed / read
//   useMsgRead(im, id)  unread count of a conversation, marking it read
//   useMsgResend(im)    resend a failed message with its client id
//   useMsgScroll(...)   where the message list is scrolled: at the bottom
//                       for new messages, in place when older ones load
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState, useSyncExternalStore } from 'react';
import { useDuplex } from '../../client/react.js';
import { IMStore } from './im.js';
import { idbOutbox } from './outbox.js';

function chatUrl(uid, token) {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const q = token ? `token=${encodeURIComponent(token)}` : `uid=${encodeURIComponent(uid)}`;
  return `${proto}//${location.host}/chat?${q}`;
}

export function useIM(uid, token) {
  const im = useMemo(() => new IMStore(uid, { outbox: uid ? idbOutbox(uid) : null }), [uid]);
  useSyncExternalStore(im.subscribe, im.getVersion);
  // What an earlier page left unsent, and its drafts.
  useEffect(() => {
    im.restore();
  }, [im]);
  const url = uid ? chatUrl(uid, token) : null;
  const { socket } = useDuplex(url, {
    json: true,
    // Retries come fast at first (a restarted server is back in a second)
    // and never stop; the heartbeat finds dead links the browser misses.
    reconnect: { base: 400, factor: 2, cap: 8000 },
    heartbeat: { interval: 10000, timeout: 6000 },
    // Where a proxy blocks WebSocket: the server speaks first (welcome), so a
    // socket that opens and stays silent 4 s is a proxy that hangs; HTTP then
    // carries the session, and WebSocket is tried again 10 s later, then
    // less often, but at least once a minute (a failed probe is one refused
    // handshake).
    transports: ['websocket', 'http'],
    fallbackTimeout: 4000,
    upgradeProbe: 10000,
    upgradeProbeMax: 60000,
    onOpen: (e) => {
      im.attach(e.target); // the open may come before the effect below
      im.onOpen();
    },
    onMessage: (data) => im.onMessage(data),
    onClose: (e) => {
      im.onClose();
      if (!e.willReconnect) im.onFinalClose(e.code, e.reason);
    },
    onReconnecting: (e) =>
      im.setConn(e.reason === 'offline' ? 'offline' : 'reconnecting',
        e.delay == null ? null : Date.now() + e.delay),
  });
  useEffect(() => {
    im.attach(socket);
    // Unless the socket has already been refused or closed for good (a
    // refusal can come before this effect runs).
    const over = socket && socket.readyState === 3 && (im.conn.state === 'refused' || im.conn.state === 'closed');
    if (socket && !over) im.setConn('connecting');
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

// Keeps the reader's place in the message list `listRef`: a new message at
// the end scrolls to it, older messages put before the first keep what was
// on screen where it was (the list grows above it), and opening another
// conversation starts at its end.
export function useMsgScroll(listRef, msgs, convId) {
  const seen = useRef({ convId: null, first: null, last: null, height: 0, top: 0 });
  const first = msgs.length ? msgs[0].cid : null;
  const last = msgs.length ? msgs.at(-1).cid : null;
  useLayoutEffect(() => {
    const el = listRef.current;
    if (!el) return;
    const was = seen.current;
    if (was.convId !== convId || last !== was.last) el.scrollTop = el.scrollHeight;
    else if (first !== was.first) el.scrollTop = was.top + (el.scrollHeight - was.height);
    seen.current = { convId, first, last, height: el.scrollHeight, top: el.scrollTop };
  });
  // The place to keep is the one the reader scrolled to.
  const onScroll = useCallback(() => {
    const el = listRef.current;
    if (el) Object.assign(seen.current, { height: el.scrollHeight, top: el.scrollTop });
  }, [listRef]);
  return onScroll;
}

// What the chat does with the page around it:
//   useViewportHeight()   the height left above an on-screen keyboard, as
//                         --app-h on <html> (visualViewport; 100dvh before)
//   useUnreadTitle(im)    the unread total in the tab's title
//   useNotifications(im)  desktop notifications for messages that arrive
//                         while the tab is hidden; permission is asked only
//                         from a click (`ask`), never on load
import { useCallback, useEffect, useRef, useState } from 'react';

import { fileLabel } from './files.js';

export function useViewportHeight() {
  useEffect(() => {
    const vv = window.visualViewport;
    if (!vv) return undefined;
    const set = () => {
      document.documentElement.style.setProperty('--app-h', `${Math.round(vv.height)}px`);
      // iOS scrolls the page up under the keyboard: keep the app's top in view.
      if (window.scrollY) window.scrollTo(0, 0);
    };
    set();
    vv.addEventListener('resize', set);
    return () => vv.removeEventListener('resize', set);
  }, []);
}

const hidden = () => document.visibilityState === 'hidden';

// Unread messages: every badge, plus the open conversation's while the tab
// is hidden (nobody is reading it).
export function unreadTotal(im) {
  let n = 0;
  for (const c of im.convs.values()) if (c.id !== im.active || hidden()) n += c.unread;
  return n;
}

export function useUnreadTitle(im) {
  const n = unreadTotal(im);
  const base = `${im.uid} — duplex chat`;
  useEffect(() => {
    document.title = n > 0 ? `(${n}) ${base}` : base;
  }, [n, base]);
  // Hiding the tab changes the total without a store change.
  const [, set] = useState(0);
  useEffect(() => {
    const on = () => set((x) => x + 1);
    document.addEventListener('visibilitychange', on);
    return () => document.removeEventListener('visibilitychange', on);
  }, []);
}

const supported = () => typeof window !== 'undefined' && 'Notification' in window;

export function useNotifications(im) {
  const [permission, setPermission] = useState(supported() ? Notification.permission : 'unsupported');
  const seen = useRef(new Map()); // conv id → the unread count last seen
  const primed = useRef(false); // online once: what was unread before is old news
  // After every store change: a conversation whose unread count grew while
  // the tab is hidden gets a notification for its latest message (a new
  // conversation counts from 0, once the first sync is done).
  useEffect(() => {
    for (const c of im.convs.values()) {
      const was = seen.current.get(c.id) ?? (primed.current ? 0 : undefined);
      seen.current.set(c.id, c.unread);
      if (was === undefined || c.unread <= was || !hidden()) continue;
      if (!supported() || Notification.permission !== 'granted') continue;
      const m = im.ordered(c.id).filter((x) => !x.mine && !x.sys).at(-1);
      if (!m) continue;
      const n = new Notification(c.peer ? m.from : `${m.from} in ${im.title(c)}`, {
        body: m.text || fileLabel(m.file), tag: c.id, icon: 'icon-192.png',
      });
      n.onclick = () => {
        window.focus();
        im.open(c.id);
        n.close();
      };
    }
    if (im.conn.state === 'online') primed.current = true;
  });
  const ask = useCallback(() => {
    if (!supported()) return;
    Notification.requestPermission().then(setPermission, () => {});
  }, []);
  return { permission, ask };
}

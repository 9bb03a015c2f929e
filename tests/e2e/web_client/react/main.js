// useDuplex under StrictMode, driven by web_client.mjs through window.app:
// mount, unmount, re-render with new inline handlers, change the URL. The
// page counts WebSockets and timers itself (see the init script in
// web_client.mjs), so leaks show up as numbers.
import { StrictMode, createElement as h, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { flushSync } from 'react-dom';
import { useDuplex } from '../../../../web/client/react.js';

const seen = { handled: [], renders: 0 };
window.seen = seen;

function Chat({ path, tick }) {
  seen.renders++;
  const { readyState, send, lastMessage, error, retry } = useDuplex(`ws://${location.host}${path}`, {
    heartbeat: { interval: 500, timeout: 2000 },
    reconnect: { base: 100, cap: 500 },
    // A new function every render: must neither reconnect nor go stale.
    onMessage: (data) => seen.handled.push(`${tick}:${data}`),
  });
  window.app.send = send;
  return h('div', null,
    h('span', { id: 'state' }, String(readyState)),
    h('span', { id: 'last' }, lastMessage ?? ''),
    h('span', { id: 'error' }, error ? 'error' : ''),
    h('span', { id: 'retry' }, retry ? `attempt ${retry.attempt} in ${retry.delay} ms` : ''));
}

function App() {
  const [shown, setShown] = useState(true);
  const [path, setPath] = useState('/react?v=1');
  const [tick, setTick] = useState(0);
  Object.assign(window.app, { setShown, setPath, setTick });
  return shown ? h(Chat, { path, tick }) : h('span', { id: 'state' }, 'unmounted');
}

window.app = { flushSync };
createRoot(document.getElementById('root')).render(h(StrictMode, null, h(App)));

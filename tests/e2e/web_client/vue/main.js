// useDuplex (the Vue composable) in a real page, driven by web_client.mjs
// through window.app: mount, reactive URL change, server restart, unmount.
// The page counts WebSockets and timers itself (the init script in
// web_client.mjs), so leaks show up as numbers.
import { createApp, h, ref } from 'vue';
import { useDuplex } from '../../../../web/client/vue.js';

const seen = { handled: [] };
window.seen = seen;
const shown = ref(true);
const path = ref('/vue?v=1');

const Chat = {
  setup() {
    // A getter: the composable watches it, so a new path swaps the socket.
    const { readyState, send, lastMessage, error, retry } = useDuplex(
      () => `ws://${location.host}${path.value}`,
      {
        heartbeat: { interval: 500, timeout: 2000 },
        reconnect: { base: 100, cap: 500 },
        onMessage: (data) => seen.handled.push(String(data)),
      },
    );
    window.app.send = send;
    return () => h('div', null, [
      h('span', { id: 'state' }, String(readyState.value)),
      h('span', { id: 'last' }, lastMessage.value ?? ''),
      h('span', { id: 'error' }, error.value ? 'error' : ''),
      h('span', { id: 'retry' }, retry.value ? `attempt ${retry.value.attempt} in ${retry.value.delay} ms` : ''),
    ]);
  },
};

const App = {
  setup() {
    return () => (shown.value ? h(Chat) : h('span', { id: 'state' }, 'unmounted'));
  },
};

window.app = {
  setShown: (v) => { shown.value = v; },
  setPath: (p) => { path.value = p; },
};
createApp(App).mount('#root');

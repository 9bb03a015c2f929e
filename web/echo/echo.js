// The echo page: one WebSocket to the server that served the page.
const $ = (id) => document.getElementById(id);
const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`;
let ws = null;

function log(kind, text) {
  const li = document.createElement('li');
  li.className = kind;
  const t = document.createElement('span');
  t.className = 't';
  t.textContent = new Date().toLocaleTimeString();
  const d = document.createElement('span');
  d.className = 'd';
  d.textContent = text;
  li.append(t, d);
  $('log').append(li);
  $('log').scrollTop = $('log').scrollHeight;
}

function setStatus(state, text) {
  $('status').className = state;
  $('status').textContent = text;
  $('send').disabled = state !== 'open';
  $('toggle').textContent = state === 'closed' ? 'Connect' : 'Disconnect';
}

function connect() {
  $('url').textContent = url;
  setStatus('', 'connecting…');
  ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => {
    setStatus('open', 'connected');
    log('sys', `connected to ${url}`);
  };
  ws.onmessage = (e) =>
    log('in', typeof e.data === 'string' ? e.data : `[${e.data.byteLength} bytes of binary]`);
  ws.onclose = (e) => {
    setStatus('closed', 'disconnected');
    log('sys', `closed: code ${e.code}${e.reason ? ` (${e.reason})` : ''}${e.wasClean ? '' : ', not clean'}`);
  };
  ws.onerror = () => log('sys', 'connection error');
}

$('form').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('text').value;
  if (!text || !ws || ws.readyState !== WebSocket.OPEN) return;
  ws.send(text);
  log('out', text);
  $('text').value = '';
});

$('toggle').addEventListener('click', () => {
  if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, 'bye');
  else connect();
});

connect();

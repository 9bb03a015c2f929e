import { useEffect, useRef, useState } from 'react';
import { useIM, useMsgRead, useMsgResend, useMsgStatus, useTicker } from './hooks.js';
import { validUid } from './im.js';

const params = new URLSearchParams(location.search);

export default function App() {
  const token = params.get('token');
  const uid = token ? token.split('.')[0] : params.get('uid');
  if (!uid || !validUid(uid)) return <Login />;
  return <Chat uid={uid} token={token} />;
}

function Login() {
  const [name, setName] = useState('');
  const ok = validUid(name);
  const go = (e) => {
    e.preventDefault();
    if (ok) location.search = `?uid=${encodeURIComponent(name)}`;
  };
  return (
    <form className="login" onSubmit={go}>
      <div className="brand big"><Logo /> duplex chat</div>
      <p>Pick a name to start. Open another window with another name to talk to yourself.</p>
      <input autoFocus id="login-name" placeholder="your name (letters, digits, _ -)" value={name}
        onChange={(e) => setName(e.target.value.trim())} />
      <button disabled={!ok}>Enter</button>
    </form>
  );
}

function Logo() {
  return <span className="logo">⇄</span>;
}

function hue(s) {
  let h = 0;
  for (const ch of s) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

function Avatar({ name, room, online }) {
  return (
    <span className="avatar" style={{ background: `hsl(${hue(name)} 55% 52%)` }}>
      {room ? '#' : [...name][0].toUpperCase()}
      {online !== undefined && <i className={online ? 'dot on' : 'dot'} />}
    </span>
  );
}

function clock(ts) {
  const d = new Date(ts);
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function ago(ts) {
  if (!ts) return 'never seen';
  const s = Math.max(0, Math.round((Date.now() - ts) / 1000));
  if (s < 60) return 'last seen just now';
  if (s < 3600) return `last seen ${Math.round(s / 60)} min ago`;
  if (s < 86400) return `last seen ${Math.round(s / 3600)} h ago`;
  return `last seen ${new Date(ts).toLocaleDateString()}`;
}

function ConnLine({ im }) {
  const { state, retryAt } = im.conn;
  useTicker(state === 'reconnecting');
  let text = state;
  if (state === 'reconnecting') {
    const s = retryAt ? Math.max(0, Math.ceil((retryAt - Date.now()) / 1000)) : 0;
    text = s > 0 ? `reconnecting in ${s}s` : 'reconnecting…';
  } else if (state === 'offline') text = 'offline — waiting for the network';
  else if (state === 'syncing') text = 'syncing…';
  else if (state === 'connecting') text = 'connecting…';
  return <div id="conn" className={`conn ${state}`} data-state={state}><i />{text}</div>;
}

function Sidebar({ im }) {
  const [peer, setPeer] = useState('');
  const start = (e) => {
    e.preventDefault();
    if (im.startDirect(peer)) setPeer('');
  };
  return (
    <aside className="side">
      <header className="me">
        <Avatar name={im.uid} />
        <div>
          <div className="me-name">{im.uid}</div>
          <ConnLine im={im} />
        </div>
      </header>
      <form className="new" onSubmit={start}>
        <input id="new-peer" placeholder="Start a chat with…" value={peer}
          onChange={(e) => setPeer(e.target.value.trim())} />
        <button disabled={!validUid(peer) || peer === im.uid} title="open the conversation">＋</button>
      </form>
      <ul className="convs">
        {im.list().map((c) => <ConvItem key={c.id} im={im} c={c} />)}
      </ul>
    </aside>
  );
}

function ConvItem({ im, c }) {
  const last = im.ordered(c.id).at(-1);
  const p = c.peer ? im.presence.get(c.peer) : null;
  const n = c.id === im.active ? 0 : c.unread;
  return (
    <li className={c.id === im.active ? 'conv active' : 'conv'} data-conv={c.id}
      onClick={() => im.open(c.id)}>
      <Avatar name={c.peer || c.id} room={!c.peer} online={c.peer ? !!p?.online : undefined} />
      <div className="conv-main">
        <div className="conv-top">
          <span className="conv-title">{im.title(c)}</span>
          {last && <span className="conv-time">{clock(last.ts)}</span>}
        </div>
        <div className="conv-bottom">
          <span className="conv-last">
            {im.typers(c.id).length ? <em>typing…</em>
              : last ? `${last.mine ? 'You: ' : c.peer ? '' : `${last.from}: `}${last.text}` : 'no messages yet'}
          </span>
          {n > 0 && <span className="badge" data-unread={n}>{n}</span>}
        </div>
      </div>
    </li>
  );
}

function Mark({ status }) {
  const marks = { sending: '◷', sent: '✓', read: '✓✓', failed: '!' };
  return <span className={`mark ${status}`} title={status}>{marks[status]}<span className="sr">{status}</span></span>;
}

function Message({ im, m, showFrom }) {
  const status = useMsgStatus(im, m);
  const resend = useMsgResend(im);
  return (
    <li className={m.mine ? 'msg mine' : 'msg'} data-cid={m.cid} data-status={status || 'in'}
      data-seq={m.seq || ''}>
      {showFrom && !m.mine && <div className="from" style={{ color: `hsl(${hue(m.from)} 50% 40%)` }}>{m.from}</div>}
      <div className="bubble">
        <span className="text">{m.text}</span>
        <span className="meta">
          {clock(m.ts)}
          {status && <Mark status={status} />}
        </span>
      </div>
      {status === 'failed' && (
        <button className="resend" onClick={() => resend(m)} title={m.error || ''}>Resend</button>
      )}
    </li>
  );
}

function Conversation({ im, convId }) {
  const c = im.convs.get(convId);
  const [text, setText] = useState('');
  const listRef = useRef(null);
  const msgs = im.ordered(convId);
  useMsgRead(im, convId);
  useTicker(!!c?.peer);
  const lastKey = msgs.length ? `${msgs.length}:${msgs.at(-1).cid}` : '';
  useEffect(() => {
    const el = listRef.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [lastKey, convId]);
  if (!c) return null;
  const p = c.peer ? im.presence.get(c.peer) : null;
  const typers = im.typers(convId);
  const submit = (e) => {
    e.preventDefault();
    if (im.send(convId, text)) setText('');
  };
  const sub = typers.length ? `${typers.join(', ')} ${typers.length > 1 ? 'are' : 'is'} typing…`
    : c.peer ? (p?.online ? 'online' : ago(p?.last_seen))
      : `${c.membersCount || c.members.length} members`;
  return (
    <section className="pane">
      <header className="pane-head">
        <Avatar name={c.peer || c.id} room={!c.peer} online={c.peer ? !!p?.online : undefined} />
        <div>
          <div className="pane-title" id="pane-title">{im.title(c)}</div>
          <div className={typers.length ? 'pane-sub typing' : 'pane-sub'} id="pane-sub">{sub}</div>
        </div>
      </header>
      <ol className="msgs" ref={listRef} id="msgs">
        {c.more && (
          <li className="older"><button onClick={() => im.loadOlder(convId)}>Load older messages</button></li>
        )}
        {msgs.length === 0 && <li className="empty">No messages yet. Say hello 👋</li>}
        {msgs.map((m, i) => (
          <Message key={m.cid} im={im} m={m} showFrom={!c.peer && (i === 0 || msgs[i - 1].from !== m.from)} />
        ))}
      </ol>
      <form className="composer" onSubmit={submit}>
        <input id="composer" autoComplete="off" placeholder={`Message ${im.title(c)}`} value={text}
          onChange={(e) => {
            setText(e.target.value);
            im.typing(convId);
          }} />
        <button id="send" disabled={!text.trim()}>Send</button>
      </form>
    </section>
  );
}

function Chat({ uid, token }) {
  const im = useIM(uid, token);
  useEffect(() => {
    document.title = `${uid} — duplex chat`;
  }, [uid]);
  return (
    <div className="app">
      <Sidebar im={im} />
      {im.active ? <Conversation im={im} convId={im.active} />
        : (
          <section className="pane blank">
            <div><Logo /><p>Choose a conversation, or start one with a name.</p></div>
          </section>
        )}
    </div>
  );
}

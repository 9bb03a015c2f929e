import { useRef, useEffect, useState } from 'react';
import { useIM, useMsgRead, useMsgResend, useMsgScroll, useMsgStatus, useTicker } from './hooks.js';
import { textBytes, validUid } from './im.js';

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

// online: true, false, null (not known: we are not connected), or
// undefined (a room: no dot).
function Avatar({ name, room, online }) {
  const dot = online ? 'dot on' : online === null ? 'dot unknown' : 'dot';
  const title = online ? 'online' : online === null ? 'not known while you are offline' : 'offline';
  return (
    <span className="avatar" style={{ background: `hsl(${hue(name)} 55% 52%)` }}>
      {room ? '#' : [...name][0].toUpperCase()}
      {online !== undefined && <i className={dot} data-presence={online === null ? 'unknown' : online ? 'on' : 'off'} title={title} />}
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
  else if (state === 'refused') text = 'sign-in refused';
  else if (state === 'closed') text = `disconnected: ${im.conn.reason}`;
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
  const p = c.peer ? im.presenceOf(c.peer) : null;
  const n = c.id === im.active ? 0 : c.unread;
  return (
    <li className={c.id === im.active ? 'conv active' : 'conv'} data-conv={c.id}
      onClick={() => im.open(c.id)}>
      <Avatar name={c.peer || c.id} room={!c.peer} online={p ? p.online : undefined} />
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
  const failed = status === 'failed';
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
      {failed && (
        <div className={m.permanent ? 'why permanent' : 'why'} data-permanent={m.permanent ? 'yes' : 'no'}>
          <span className="reason">{m.permanent ? 'Not sent' : 'Not sent yet'}: {m.error}</span>
          {m.permanent ? (
            <>
              <button className="edit" onClick={() => im.edit(m.conv, m.cid)} title="put the text back in the composer">Edit</button>
              <button className="discard" onClick={() => im.discard(m.conv, m.cid)}>Delete</button>
            </>
          ) : (
            <button className="resend" onClick={() => resend(m)}>Resend</button>
          )}
        </div>
      )}
    </li>
  );
}

// Bytes left before the server's limit, shown from NEAR of it on.
const NEAR = 0.9;

function Conversation({ im, convId }) {
  const c = im.convs.get(convId);
  const text = im.draft(convId);
  const listRef = useRef(null);
  const msgs = im.ordered(convId);
  useMsgRead(im, convId);
  useTicker(!!c?.peer);
  const onScroll = useMsgScroll(listRef, msgs, convId);
  if (!c) return null;
  const p = c.peer ? im.presenceOf(c.peer) : null;
  const typers = im.typers(convId);
  const bytes = textBytes(text.trim());
  const over = bytes > im.textLimit;
  const submit = (e) => {
    e.preventDefault();
    im.send(convId, text); // clears the draft; refuses what is over the limit
  };
  const sub = typers.length ? `${typers.join(', ')} ${typers.length > 1 ? 'are' : 'is'} typing…`
    : p ? (p.online ? 'online' : p.online === null ? 'status unknown while you are offline' : ago(p.last_seen))
      : `${c.membersCount || c.members.length} members`;
  return (
    <section className="pane">
      <header className="pane-head">
        <Avatar name={c.peer || c.id} room={!c.peer} online={p ? p.online : undefined} />
        <div>
          <div className="pane-title" id="pane-title">{im.title(c)}</div>
          <div className={typers.length ? 'pane-sub typing' : p?.online === null ? 'pane-sub unknown' : 'pane-sub'}
            id="pane-sub">{sub}</div>
        </div>
      </header>
      <ol className="msgs" ref={listRef} id="msgs" onScroll={onScroll}>
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
          aria-invalid={over}
          onChange={(e) => {
            im.setDraft(convId, e.target.value);
            im.typing(convId);
          }} />
        {bytes >= im.textLimit * NEAR && (
          <span id="counter" className={over ? 'counter over' : 'counter'} data-left={im.textLimit - bytes}
            title={`a message is limited to ${im.textLimit} bytes`}>
            {over ? `${bytes - im.textLimit} too many bytes` : `${im.textLimit - bytes} bytes left`}
          </span>
        )}
        <button id="send" disabled={!text.trim() || over}>Send</button>
      </form>
    </section>
  );
}

// The server refused who we say we are (a close code of REFUSED_CODES):
// no reconnecting, and a way to sign in again.
function Refused({ im, uid, token }) {
  const [t, setT] = useState('');
  const go = (e) => {
    e.preventDefault();
    if (t.trim()) location.search = `?token=${encodeURIComponent(t.trim())}`;
  };
  return (
    <form className="login refused" id="refused" onSubmit={go}>
      <div className="brand big"><Logo /> duplex chat</div>
      <p className="refused-why" id="refused-why">sign-in refused: {im.conn.reason}</p>
      <p>{token ? 'Paste a new token to sign in again.' : `The server did not accept “${uid}”. Sign in with a token, or pick another name.`}</p>
      <input autoFocus id="token" placeholder="token (UID.EXPIRY.SIGNATURE)" value={t}
        onChange={(e) => setT(e.target.value)} />
      <button disabled={!t.trim()}>Sign in again</button>
      <a className="other" href="?">{token ? 'sign in with a name instead' : 'pick another name'}</a>
      <p className="small">Messages not yet sent stay on this device and go out once {uid} is signed in.</p>
    </form>
  );
}

function Chat({ uid, token }) {
  const im = useIM(uid, token);
  useEffect(() => {
    document.title = `${uid} — duplex chat`;
  }, [uid]);
  if (im.conn.state === 'refused') return <Refused im={im} uid={uid} token={token} />;
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

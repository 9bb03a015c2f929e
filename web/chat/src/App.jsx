import { useRef, useEffect, useState } from 'react';
import { useIM, useMsgRead, useMsgResend, useMsgScroll, useMsgStatus, useTicker } from './hooks.js';
import { textBytes, validUid } from './im.js';
import { useNotifications, useUnreadTitle, useViewportHeight } from './page.js';
import { clock, dayLabel, fullTime, isoTime, listTime, sameDay } from './when.js';

const params = new URLSearchParams(location.search);

export default function App() {
  const token = params.get('token');
  const uid = token ? token.split('.')[0] : params.get('uid');
  if (!uid || !validUid(uid)) return <Login />;
  return <Chat uid={uid} token={token} />;
}

// How this server signs people in (GET /token, docs/chat-protocol.md):
// {auth: 'uid' | 'token', dev_login}. null while asking, and when the page is
// served by something else (then a name, as in development).
function useSignIn() {
  const [info, setInfo] = useState(null);
  useEffect(() => {
    let live = true;
    fetch('/token').then((r) => (r.ok ? r.json() : null)).then((j) => live && setInfo(j), () => {});
    return () => { live = false; };
  }, []);
  return info;
}

function Login() {
  const info = useSignIn();
  const [name, setName] = useState('');
  const [token, setToken] = useState('');
  const [why, setWhy] = useState('');
  const tokens = info?.auth === 'token';
  const mint = tokens && info.dev_login; // the operator's development sign-in
  const ok = tokens && !mint ? token.trim() !== '' : validUid(name);
  const go = async (e) => {
    e.preventDefault();
    if (!ok) return;
    if (!tokens) {
      location.search = `?uid=${encodeURIComponent(name)}`;
      return;
    }
    if (!mint) {
      location.search = `?token=${encodeURIComponent(token.trim())}`;
      return;
    }
    try {
      const r = await fetch(`/token?uid=${encodeURIComponent(name)}`, { method: 'POST' });
      const j = await r.json();
      if (!r.ok || !j.token) throw new Error(j.error || `HTTP ${r.status}`);
      location.search = `?token=${encodeURIComponent(j.token)}`;
    } catch (err) {
      setWhy(`sign-in failed: ${err.message}`);
    }
  };
  const help = !tokens ? 'Pick a name to start. Open another window with another name to talk to yourself.'
    : mint ? 'Development sign-in: pick a name and the server signs a token for it.'
      : 'This server signs people in with tokens: paste yours (duplex serve --token-for NAME prints one).';
  return (
    <main className="login-page">
      <form className="login" onSubmit={go} aria-labelledby="login-title">
        <h1 className="brand big" id="login-title"><Logo /> duplex chat</h1>
        <p id="login-help">{help}</p>
        {tokens && !mint ? (
          <>
            <label className="sr" htmlFor="login-token">Token</label>
            <input autoFocus id="login-token" placeholder="token (UID.EXPIRY.SIGNATURE)" value={token}
              aria-describedby="login-help" autoCapitalize="none" autoCorrect="off"
              onChange={(e) => setToken(e.target.value)} />
          </>
        ) : (
          <>
            <label className="sr" htmlFor="login-name">Your name</label>
            <input autoFocus id="login-name" placeholder="your name (letters, digits, _ -)" value={name}
              aria-describedby="login-help" autoCapitalize="none" autoCorrect="off"
              onChange={(e) => setName(e.target.value.trim())} />
          </>
        )}
        {why && <p className="refused-why" role="alert">{why}</p>}
        <button disabled={!ok}>{tokens && !mint ? 'Sign in' : 'Enter'}</button>
      </form>
    </main>
  );
}

function Logo() {
  return <span className="logo" aria-hidden="true">⇄</span>;
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
    <span className="avatar" style={{ background: `hsl(${hue(name)} 55% 40%)` }} aria-hidden="true">
      {room ? '#' : [...name][0].toUpperCase()}
      {online !== undefined && <i className={dot} data-presence={online === null ? 'unknown' : online ? 'on' : 'off'} title={title} />}
    </span>
  );
}

function ago(ts) {
  if (!ts) return 'never seen';
  const s = Math.max(0, Math.round((Date.now() - ts) / 1000));
  if (s < 60) return 'last seen just now';
  if (s < 3600) return `last seen ${Math.round(s / 60)} min ago`;
  if (s < 86400) return `last seen ${Math.round(s / 3600)} h ago`;
  return `last seen ${new Date(ts).toLocaleDateString()}`;
}

function memberCount(n) {
  return n === 1 ? '1 member' : `${n} members`;
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
  return <div id="conn" className={`conn ${state}`} data-state={state} role="status"><i aria-hidden="true" />{text}</div>;
}

function Sidebar({ im, notes }) {
  const [peer, setPeer] = useState('');
  const start = (e) => {
    e.preventDefault();
    if (im.startDirect(peer)) setPeer('');
  };
  return (
    <nav className="side" aria-label="Conversations">
      <header className="me">
        <Avatar name={im.uid} />
        <div className="me-main">
          <h1 className="me-name">{im.uid}</h1>
          <ConnLine im={im} />
        </div>
        {notes.permission === 'default' && (
          <button id="notify" className="icon-btn" onClick={notes.ask}
            aria-label="Turn on notifications" title="Notify me of messages while this tab is hidden">🔔</button>
        )}
      </header>
      <form className="new" onSubmit={start}>
        <label className="sr" htmlFor="new-peer">Start a chat with (a name)</label>
        <input id="new-peer" placeholder="Start a chat with…" value={peer}
          autoCapitalize="none" autoCorrect="off" enterKeyHint="go"
          onChange={(e) => setPeer(e.target.value.trim())} />
        <button disabled={!validUid(peer) || peer === im.uid} title="open the conversation"
          aria-label="Open the conversation">＋</button>
      </form>
      <ul className="convs" aria-label="Conversation list">
        {im.list().map((c) => <ConvItem key={c.id} im={im} c={c} />)}
      </ul>
    </nav>
  );
}

function ConvItem({ im, c }) {
  const last = im.ordered(c.id).at(-1);
  const p = c.peer ? im.presenceOf(c.peer) : null;
  const n = c.id === im.active ? 0 : c.unread;
  const presence = p ? (p.online ? ', online' : p.online === null ? '' : ', offline') : '';
  return (
    <li className={c.id === im.active ? 'conv active' : 'conv'} data-conv={c.id}>
      <button className="conv-btn" onClick={() => im.open(c.id)}
        aria-current={c.id === im.active ? 'true' : undefined}>
        <Avatar name={c.peer || c.id} room={!c.peer} online={p ? p.online : undefined} />
        <span className="conv-main">
          <span className="conv-top">
            <span className="conv-title">{im.title(c)}<span className="sr">{presence}</span></span>
            {last && <time className="conv-time" dateTime={isoTime(last.ts)} title={fullTime(last.ts)}>{listTime(last.ts)}</time>}
          </span>
          <span className="conv-bottom">
            <span className="conv-last">
              {im.typers(c.id).length ? <em>typing…</em>
                : last ? `${last.mine ? 'You: ' : c.peer ? '' : `${last.from}: `}${last.text}` : 'no messages yet'}
            </span>
            {n > 0 && <span className="badge" data-unread={n} aria-hidden="true">{n}</span>}
            {n > 0 && <span className="sr">{n} unread</span>}
          </span>
        </span>
      </button>
    </li>
  );
}

function Mark({ status }) {
  const marks = { sending: '◷', sent: '✓', read: '✓✓', failed: '!' };
  return (
    <span className={`mark ${status}`} title={status} data-mark={status}>
      <span aria-hidden="true">{marks[status]}</span><span className="sr">{status}</span>
    </span>
  );
}

// The time of a message: the full date and time on hover (title) and on a
// long press (touch) or Enter/Space (keyboard), which shows it inline.
function Stamp({ ts }) {
  const [full, setFull] = useState(false);
  const timer = useRef(null);
  const down = () => {
    clearTimeout(timer.current);
    timer.current = setTimeout(() => setFull((f) => !f), 500);
  };
  const up = () => clearTimeout(timer.current);
  return (
    <time className={full ? 'stamp full' : 'stamp'} dateTime={isoTime(ts)} title={fullTime(ts)}
      tabIndex={0} aria-label={fullTime(ts)}
      onPointerDown={down} onPointerUp={up} onPointerLeave={up} onPointerCancel={up}
      onContextMenu={(e) => e.preventDefault()}
      onKeyDown={(e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); setFull((f) => !f); } }}>
      {full ? fullTime(ts) : clock(ts)}
    </time>
  );
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
          <Stamp ts={m.ts} />
          {status && <Mark status={status} />}
        </span>
      </div>
      {failed && (
        <div className={m.permanent ? 'why permanent' : 'why'} data-permanent={m.permanent ? 'yes' : 'no'}>
          <span className="reason">{m.permanent ? 'Not sent' : 'Not sent yet'}: {m.error}</span>
          {m.permanent ? (
            <>
              <button className="edit" onClick={() => im.edit(m.conv, m.cid)} title="put the text back in the composer"
                aria-label="Edit the message that was not sent">Edit</button>
              <button className="discard" onClick={() => im.discard(m.conv, m.cid)}
                aria-label="Delete the message that was not sent">Delete</button>
            </>
          ) : (
            <button className="resend" onClick={() => resend(m)} aria-label="Resend the message">Resend</button>
          )}
        </div>
      )}
    </li>
  );
}

// Bytes left before the server's limit, shown from NEAR of it on.
const NEAR = 0.9;

function Conversation({ im, convId, composerRef }) {
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
      : memberCount(c.membersCount || c.members.length);
  return (
    <main className="pane" aria-labelledby="pane-title">
      <header className="pane-head">
        <button className="back icon-btn" id="back" onClick={() => im.open(null)} aria-label="Back to conversations">‹</button>
        <Avatar name={c.peer || c.id} room={!c.peer} online={p ? p.online : undefined} />
        <div>
          <h2 className="pane-title" id="pane-title">{im.title(c)}</h2>
          <div className={typers.length ? 'pane-sub typing' : p?.online === null ? 'pane-sub unknown' : 'pane-sub'}
            id="pane-sub">{sub}</div>
        </div>
      </header>
      <ol className="msgs" ref={listRef} id="msgs" onScroll={onScroll} aria-label={`Messages with ${im.title(c)}`}
        tabIndex={0}>
        {c.more && (
          <li className="older"><button onClick={() => im.loadOlder(convId)}>Load older messages</button></li>
        )}
        {msgs.length === 0 && <li className="empty">No messages yet. Say hello 👋</li>}
        {msgs.flatMap((m, i) => {
          const newDay = i === 0 || !sameDay(msgs[i - 1].ts, m.ts);
          const row = (
            <Message key={m.cid} im={im} m={m}
              showFrom={!c.peer && (newDay || msgs[i - 1].from !== m.from)} />
          );
          if (!newDay) return [row];
          return [
            <li key={`day-${m.cid}`} className="day" data-day={isoTime(m.ts).slice(0, 10)}>
              <time dateTime={isoTime(m.ts).slice(0, 10)}>{dayLabel(m.ts)}</time>
            </li>,
            row,
          ];
        })}
      </ol>
      <form className="composer" onSubmit={submit}>
        <label className="sr" htmlFor="composer">Message to {im.title(c)}</label>
        <input id="composer" ref={composerRef} autoComplete="off" placeholder={`Message ${im.title(c)}`} value={text}
          aria-invalid={over} enterKeyHint="send" aria-describedby={bytes >= im.textLimit * NEAR ? 'counter' : undefined}
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
    </main>
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
    <main className="login-page">
      <form className="login refused" id="refused" onSubmit={go} aria-labelledby="refused-title">
        <h1 className="brand big" id="refused-title"><Logo /> duplex chat</h1>
        <p className="refused-why" id="refused-why">sign-in refused: {im.conn.reason}</p>
        <p>{token ? 'Paste a new token to sign in again.' : `The server did not accept “${uid}”. Sign in with a token, or pick another name.`}</p>
        <label className="sr" htmlFor="token">Token</label>
        <input autoFocus id="token" placeholder="token (UID.EXPIRY.SIGNATURE)" value={t}
          autoCapitalize="none" autoCorrect="off"
          onChange={(e) => setT(e.target.value)} />
        <button disabled={!t.trim()}>Sign in again</button>
        <a className="other" href="?">{token ? 'sign in with a name instead' : 'pick another name'}</a>
        <p className="small">Messages not yet sent stay on this device and go out once {uid} is signed in.</p>
      </form>
    </main>
  );
}

// Wide: the list and the conversation side by side. Under 700 px (styles.css)
// one at a time: the list, or the open conversation with a back button.
function Chat({ uid, token }) {
  const im = useIM(uid, token);
  useViewportHeight();
  useUnreadTitle(im);
  const notes = useNotifications(im);
  const composerRef = useRef(null);
  // A conversation opened on a wide screen is ready to type in; on a phone
  // the keyboard would cover it, so it waits for a tap.
  useEffect(() => {
    if (im.active && matchMedia('(min-width: 701px)').matches) composerRef.current?.focus();
  }, [im.active]);
  if (im.conn.state === 'refused') return <Refused im={im} uid={uid} token={token} />;
  return (
    <div className={im.active ? 'app open' : 'app'}>
      <Sidebar im={im} notes={notes} />
      {im.active ? <Conversation im={im} convId={im.active} composerRef={composerRef} />
        : (
          <main className="pane blank">
            <div><Logo /><p>Choose a conversation, or start one with a name.</p></div>
          </main>
        )}
    </div>
  );
}

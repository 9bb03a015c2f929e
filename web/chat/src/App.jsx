import { useRef, useEffect, useState } from 'react';
import { useIM, useMsgRead, useMsgResend, useMsgScroll, useMsgStatus, useTicker } from './hooks.js';
import { textBytes, validUid } from './im.js';
import { useNotifications, useUnreadTitle, useViewportHeight } from './page.js';
import { errorText, isSystem, recalledLine, sysLine } from './groups.js';
import { GroupPanel, NewGroup } from './GroupPanel.jsx';
import { CloseIcon, GroupIcon, InfoIcon, NewGroupIcon, SearchIcon } from './icons.jsx';
import { MessageMenu } from './MessageMenu.jsx';
import { SearchPanel } from './Search.jsx';
import { AttachButton, hasStaged, MessageFile, sendAttached, StagedFiles, useAttachDrop } from './Attach.jsx';
import { fileLabel } from './files.js';
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
// undefined (a room: no dot). A private group (`group`: its title) is a
// rounded square with its initial and a people badge; a room a circle with #.
function Avatar({ name, room, group, online, big }) {
  const dot = online ? 'dot on' : online === null ? 'dot unknown' : 'dot';
  const title = online ? 'online' : online === null ? 'not known while you are offline' : 'offline';
  if (group !== undefined) {
    return (
      <span className={big ? 'avatar group big' : 'avatar group'} style={{ background: `hsl(${hue(name)} 45% 38%)` }} aria-hidden="true">
        {[...(group.trim() || 'G')][0].toUpperCase()}
        <i className="group-badge"><GroupIcon size={11} /></i>
      </span>
    );
  }
  return (
    <span className={big ? 'avatar big' : 'avatar'} style={{ background: `hsl(${hue(name)} 55% 40%)` }} aria-hidden="true">
      {room ? '#' : [...name][0].toUpperCase()}
      {online !== undefined && <i className={dot} data-presence={online === null ? 'unknown' : online ? 'on' : 'off'} title={title} />}
    </span>
  );
}

// The avatar of a conversation (`conv`) or of a person (`uid`).
function ConvAvatar({ im, conv, uid, big }) {
  if (uid) return <Avatar name={uid} big={big} />;
  const c = im.convs.get(conv);
  if (c?.kind === 'group' || conv.startsWith('p:')) return <Avatar name={conv} group={c ? im.title(c) : 'G'} big={big} />;
  const p = c?.peer ? im.presenceOf(c.peer) : null;
  return <Avatar name={c?.peer || conv} room={!c?.peer} online={p ? p.online : undefined} big={big} />;
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
  // Online over the HTTP fallback still works in full, but slower and
  // heavier on the server: say so, and why.
  const http = im.conn.transport === 'http' && (state === 'online' || state === 'syncing');
  // One line in the narrow header (the desktop sidebar leaves it ~80 px):
  // online over HTTP reads "via HTTP" by its green dot, the why in the
  // tooltip; a longer state is cut with an ellipsis, whole in the tooltip.
  if (http && state === 'online') text = 'via HTTP';
  return (
    <div id="conn" className={`conn ${state}`} data-state={state} data-transport={im.conn.transport || ''} role="status"
      title={http ? `${state}: WebSocket is blocked on this network, messages go over HTTP requests` : text}>
      <i aria-hidden="true" /><span className="conn-text">{text}</span>
    </div>
  );
}

function Sidebar({ im, notes, onNewGroup }) {
  const [peer, setPeer] = useState('');
  const [searching, setSearching] = useState(false);
  const searchBtn = useRef(null);
  const closeSearch = () => {
    setSearching(false);
    searchBtn.current?.focus();
  };
  const avatar = (props) => <ConvAvatar im={im} {...props} />;
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
        {im.groupsOn() && (
          <>
            <button id="search-open" ref={searchBtn} className="icon-btn" onClick={() => setSearching(true)}
              aria-label="Search messages" title="Search messages" aria-pressed={searching}><SearchIcon /></button>
            <button id="new-group-open" className="icon-btn" onClick={onNewGroup}
              aria-label="New group" title="New group"><NewGroupIcon /></button>
          </>
        )}
      </header>
      {searching && <SearchPanel im={im} onClose={closeSearch} avatar={avatar} />}
      {!searching && <form className="new" onSubmit={start}>
        <label className="sr" htmlFor="new-peer">Start a chat with (a name)</label>
        <input id="new-peer" placeholder="Start a chat with…" value={peer}
          autoCapitalize="none" autoCorrect="off" enterKeyHint="go"
          onChange={(e) => setPeer(e.target.value.trim())} />
        <button disabled={!validUid(peer) || peer === im.uid} title="open the conversation"
          aria-label="Open the conversation">＋</button>
      </form>}
      {!searching && (
        <ul className="convs" aria-label="Conversation list">
          {im.list().map((c) => <ConvItem key={c.id} im={im} c={c} />)}
        </ul>
      )}
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
        <ConvAvatar im={im} conv={c.id} />
        <span className="conv-main">
          <span className="conv-top">
            <span className="conv-title">{im.title(c)}<span className="sr">{c.kind === 'group' ? ', group' : ''}{presence}</span></span>
            {last && <time className="conv-time" dateTime={isoTime(last.ts)} title={fullTime(last.ts)}>{listTime(last.ts)}</time>}
          </span>
          <span className="conv-bottom">
            <span className="conv-last">
              {im.typers(c.id).length ? <em>typing…</em>
                : !last ? 'no messages yet'
                  : isSystem(last) ? sysLine(last, im.uid)
                    : last.recalled ? recalledLine(last, im.uid)
                      : `${last.mine ? 'You: ' : c.peer ? '' : `${last.from}: `}${last.text || fileLabel(last.file)}`}
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

// Our own stored messages have a menu (MessageMenu.jsx): its ⋯ button on a
// desktop (or a right click), a tap or long press on the bubble on a phone.
// A recalled message is a line in its place; `flash`: the message a search
// result opened.
function Message({ im, m, showFrom, onEdit, editing, flash }) {
  const status = useMsgStatus(im, m);
  const resend = useMsgResend(im);
  const [menu, setMenu] = useState(false);
  const [err, setErr] = useState('');
  const failed = status === 'failed';
  if (m.recalled) {
    return (
      <li className={flash ? 'note recalled flash' : 'note recalled'} data-cid={m.cid} data-seq={m.seq || ''} data-recalled="yes">
        <span>{recalledLine(m, im.uid)}</span>
      </li>
    );
  }
  const recall = (x) => {
    setErr('');
    im.recall(x.conv, x.seq).catch((e) => setErr(errorText(e)));
  };
  const hasMenu = m.mine && m.seq && im.groupsOn() && !im.convs.get(m.conv)?.left;
  const cls = `${m.mine ? 'msg mine' : 'msg'}${editing ? ' editing' : ''}${flash ? ' flash' : ''}${menu ? ' menu-open' : ''}`;
  return (
    <li className={cls} data-cid={m.cid} data-status={status || 'in'}
      data-seq={m.seq || ''} data-edited={m.edited ? 'yes' : undefined}>
      {/* 28% lightness keeps every hue at 4.5:1 on the background. */}
      {showFrom && !m.mine && <div className="from" style={{ color: `hsl(${hue(m.from)} 50% 28%)` }}>{m.from}</div>}
      {hasMenu && <MessageMenu im={im} m={m} open={menu} setOpen={setMenu} onEdit={onEdit} onRecall={recall} />}
      <div className="bubble"
        onClick={hasMenu ? (e) => {
          // A phone has no hover: a tap on the bubble opens the menu.
          if (!matchMedia('(max-width: 700px)').matches || e.target.closest('a, button, time')) return;
          if (im.canEdit(m) || im.canRecall(m)) setMenu(true);
        } : undefined}
        onContextMenu={hasMenu ? (e) => {
          // A right click, or a long press where the browser turns it into one.
          if (e.target.closest('a, button, time') || !(im.canEdit(m) || im.canRecall(m))) return;
          e.preventDefault();
          setMenu(true);
        } : undefined}>
        {m.file && <MessageFile im={im} m={m} />}
        <span className="text">{m.text}</span>
        <span className="meta">
          {m.edited && <span className="edited" title={`edited ${fullTime(m.edited)}`}>edited</span>}
          <Stamp ts={m.ts} />
          {status && <Mark status={status} />}
        </span>
      </div>
      {err && <div className="why permanent" role="alert"><span className="reason">{err}</span></div>}
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
  const drop = useAttachDrop(im, convId); // files dropped or pasted (Attach.jsx)
  // Revision 2: the group info panel, the message being edited (the
  // composer holds its text), the message a search result opened.
  const [info, setInfo] = useState(false);
  const [editing, setEditing] = useState(null); // {cid, seq, text}
  const [editErr, setEditErr] = useState('');
  const [flash, setFlash] = useState(null);
  const infoBtn = useRef(null);
  useEffect(() => { setInfo(false); setEditing(null); setEditErr(''); setFlash(null); }, [convId]);
  const focus = im.focus;
  useEffect(() => {
    if (!focus || focus.conv !== convId) return undefined;
    const el = listRef.current?.querySelector(`li[data-seq="${focus.seq}"]`);
    if (!el) return undefined;
    el.scrollIntoView({ block: 'center' });
    setFlash(focus.seq);
    const t = setTimeout(() => setFlash(null), 3000);
    return () => clearTimeout(t);
  }, [focus?.at, convId]); // eslint-disable-line react-hooks/exhaustive-deps
  if (!c) return null;
  const p = c.peer ? im.presenceOf(c.peer) : null;
  const isGroup = c.kind === 'group' && im.groupsOn();
  const startEdit = (m) => {
    setEditErr('');
    setEditing({ cid: m.cid, seq: m.seq, text: m.text });
    setTimeout(() => composerRef.current?.focus(), 0);
  };
  const cancelEdit = () => {
    setEditing(null);
    setEditErr('');
  };
  const saveEdit = async () => {
    const t = editing.text.trim();
    const m = c.msgs.get(editing.cid);
    if (!t || !m) return;
    if (t === m.text) { cancelEdit(); return; }
    try {
      await im.editMsg(convId, editing.seq, t);
      cancelEdit();
    } catch (e) {
      setEditErr(errorText(e));
    }
  };
  const closeInfo = () => {
    setInfo(false);
    infoBtn.current?.focus();
  };
  const typers = im.typers(convId);
  const bytes = textBytes((editing ? editing.text : text).trim());
  const over = bytes > im.textLimit;
  const submit = (e) => {
    e.preventDefault();
    if (editing) { saveEdit(); return; }
    if (sendAttached(im, convId, text)) return; // files attached: the text is their caption
    im.send(convId, text); // clears the draft; refuses what is over the limit
  };
  const sub = typers.length ? `${typers.join(', ')} ${typers.length > 1 ? 'are' : 'is'} typing…`
    : p ? (p.online ? 'online' : p.online === null ? 'status unknown while you are offline' : ago(p.last_seen))
      : memberCount(c.membersCount || c.members.length);
  return (
    <>
    <main className="pane" aria-labelledby="pane-title" {...drop.props}>
      {drop.hint}
      <header className="pane-head">
        <button className="back icon-btn" id="back" onClick={() => im.open(null)} aria-label="Back to conversations">‹</button>
        <ConvAvatar im={im} conv={c.id} />
        <div className="pane-head-main">
          <h2 className="pane-title" id="pane-title">{im.title(c)}</h2>
          <div className={typers.length ? 'pane-sub typing' : p?.online === null ? 'pane-sub unknown' : 'pane-sub'}
            id="pane-sub">{c.left ? 'You are no longer a member' : sub}</div>
        </div>
        {isGroup && (
          <button className="icon-btn" id="info-open" ref={infoBtn} onClick={() => (info ? closeInfo() : setInfo(true))}
            aria-label="Group info" title="Group info" aria-expanded={info} aria-controls={info ? 'group-info' : undefined}><InfoIcon /></button>
        )}
      </header>
      <ol className="msgs" ref={listRef} id="msgs" onScroll={onScroll} aria-label={`Messages with ${im.title(c)}`}
        tabIndex={0}>
        {c.more && (
          <li className="older"><button onClick={() => im.loadOlder(convId)}>Load older messages</button></li>
        )}
        {msgs.length === 0 && <li className="empty">No messages yet. Say hello 👋</li>}
        {msgs.flatMap((m, i) => {
          const newDay = i === 0 || !sameDay(msgs[i - 1].ts, m.ts);
          const row = isSystem(m) ? (
            <li key={m.cid} className="note sys" data-cid={m.cid} data-seq={m.seq || ''} data-op={m.sys.op}>
              <span>{sysLine(m, im.uid)}</span>
            </li>
          ) : (
            <Message key={m.cid} im={im} m={m} onEdit={startEdit} editing={editing?.cid === m.cid}
              flash={!!m.seq && flash === m.seq}
              showFrom={!c.peer && (newDay || msgs[i - 1].from !== m.from || isSystem(msgs[i - 1]))} />
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
      {c.left ? (
        <div className="readonly" id="readonly" role="status">
          {c.left === 'left' ? 'You left this group' : 'You were removed from this group'}
          <span>You can read what was said before, but no longer write here.</span>
        </div>
      ) : (
      <form className={editing ? 'composer editing' : 'composer'} onSubmit={submit}
        onKeyDown={(e) => { if (editing && e.key === 'Escape') { e.preventDefault(); cancelEdit(); } }}>
        {editing && (
          <div className="edit-bar" id="edit-bar">
            <span className="edit-what"><strong>Editing message</strong>
              <span className="edit-orig">{c.msgs.get(editing.cid)?.text}</span></span>
            <button type="button" className="icon-btn" id="edit-cancel" onClick={cancelEdit}
              aria-label="Cancel editing (Esc)" title="Cancel editing (Esc)"><CloseIcon size={18} /></button>
          </div>
        )}
        {editErr && <p className="edit-error" role="alert">{editErr}</p>}
        {!editing && <StagedFiles im={im} convId={convId} />}
        {!editing && <AttachButton im={im} convId={convId} />}
        <label className="sr" htmlFor="composer">{editing ? 'Edit your message' : `Message to ${im.title(c)}`}</label>
        <input id="composer" ref={composerRef} autoComplete="off" placeholder={`Message ${im.title(c)}`}
          value={editing ? editing.text : text}
          aria-invalid={over} enterKeyHint={editing ? 'done' : 'send'} aria-describedby={bytes >= im.textLimit * NEAR ? 'counter' : undefined}
          onChange={(e) => {
            if (editing) { setEditing({ ...editing, text: e.target.value }); return; }
            im.setDraft(convId, e.target.value);
            im.typing(convId);
          }} />
        {bytes >= im.textLimit * NEAR && (
          <span id="counter" className={over ? 'counter over' : 'counter'} data-left={im.textLimit - bytes}
            title={`a message is limited to ${im.textLimit} bytes`}>
            {over ? `${bytes - im.textLimit} too many bytes` : `${im.textLimit - bytes} bytes left`}
          </span>
        )}
        <button id="send" disabled={(!(editing ? editing.text : text).trim() && (editing || !hasStaged(im, convId))) || over}>{editing ? 'Save' : 'Send'}</button>
      </form>
      )}
    </main>
    {isGroup && info && (
      <GroupPanel im={im} convId={convId} onClose={closeInfo} avatar={(props) => <ConvAvatar im={im} {...props} />} />
    )}
    </>
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
  const [newGroup, setNewGroup] = useState(false);
  // A conversation opened on a wide screen is ready to type in; on a phone
  // the keyboard would cover it, so it waits for a tap.
  useEffect(() => {
    if (im.active && matchMedia('(min-width: 701px)').matches) composerRef.current?.focus();
  }, [im.active]);
  if (im.conn.state === 'refused') return <Refused im={im} uid={uid} token={token} />;
  return (
    <div className={im.active ? 'app open' : 'app'}>
      <Sidebar im={im} notes={notes} onNewGroup={() => setNewGroup(true)} />
      {newGroup && (
        <NewGroup im={im} onClose={() => {
          setNewGroup(false);
          if (!im.active) setTimeout(() => document.getElementById('new-group-open')?.focus(), 0);
        }} />
      )}
      {im.active ? <Conversation im={im} convId={im.active} composerRef={composerRef} />
        : (
          <main className="pane blank">
            <div><Logo /><p>Choose a conversation, or start one with a name.</p></div>
          </main>
        )}
    </div>
  );
}

// Private groups (docs/chat-protocol.md, revision 2) in the chat UI:
//   NewGroup    the "New group" dialog: a title and members picked by uid
//   GroupPanel  a group's info: members with their roles, add, remove,
//               rename, make admin, leave; each action offered only to the
//               roles the server allows it, and its refusal shown in place
import { useEffect, useRef, useState } from 'react';
import { errorText, titleError } from './groups.js';
import { CloseIcon } from './icons.jsx';
import { validUid } from './im.js';

const MAX_MEMBERS = 199;

// Uids typed into a field: separated by commas or spaces.
const splitUids = (s) => s.split(/[\s,;]+/).filter(Boolean);

function uidProblem(u, me, have, members = []) {
  if (!validUid(u)) return `“${u}” is not a valid name (1–32 of A–Z a–z 0–9 _ -)`;
  if (u === me) return 'You are in the group already';
  if (members.includes(u)) return `${u} is a member already`;
  if (have.includes(u)) return `${u} is already in the list`;
  return null;
}

/** The members field: chips of uids, typed and added with Enter, comma or space. */
function MemberPicker({ im, uids, setUids, error, setError, id, members = [] }) {
  const [text, setText] = useState('');
  const add = (raw) => {
    const want = splitUids(raw);
    if (!want.length) return true;
    // All or none: the first problem is shown and nothing is added.
    const next = [...uids];
    for (const u of want) {
      const bad = uidProblem(u, im.uid, next, members);
      if (bad) { setError(bad); return false; }
      if (next.length >= MAX_MEMBERS) { setError(`A group has ${MAX_MEMBERS + 1} members at most`); return false; }
      next.push(u);
    }
    setUids(next);
    setText('');
    setError('');
    return true;
  };
  // People this page knows: direct peers and members of its conversations.
  const known = new Set();
  for (const c of im.convs.values()) {
    if (c.peer) known.add(c.peer);
    if (c.kind !== 'room') for (const u of c.members) known.add(u);
  }
  known.delete(im.uid);
  const suggest = [...known].filter((u) => validUid(u) && !uids.includes(u) && !members.includes(u)).sort().slice(0, 8);
  return (
    <div className="picker">
      <div className={error ? 'chips invalid' : 'chips'}>
        {uids.map((u) => (
          <span className="chip" key={u} data-uid={u}>
            {u}
            <button type="button" onClick={() => setUids(uids.filter((x) => x !== u))} aria-label={`Remove ${u}`}>
              <CloseIcon size={14} />
            </button>
          </span>
        ))}
        <input id={id} value={text} placeholder={uids.length ? 'add another…' : 'names, e.g. bob carol'}
          autoCapitalize="none" autoCorrect="off" aria-invalid={!!error}
          aria-describedby={error ? `${id}-error` : `${id}-help`}
          onChange={(e) => {
            const v = e.target.value;
            if (/[\s,;]$/.test(v)) add(v);
            else { setText(v); if (error) setError(''); }
          }}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && text.trim()) { e.preventDefault(); add(text); }
            else if (e.key === 'Backspace' && !text && uids.length) setUids(uids.slice(0, -1));
          }}
          onBlur={() => { if (text.trim()) add(text); }} />
      </div>
      <p className="help" id={`${id}-help`}>Type a name and press Enter. {uids.length ? `${uids.length} picked.` : ''}</p>
      {error && <p className="field-error" id={`${id}-error`} role="alert">{error}</p>}
      {suggest.length > 0 && (
        <div className="suggest" role="group" aria-label="People you know">
          {suggest.map((u) => (
            <button type="button" key={u} className="suggest-btn" onClick={() => add(u)} aria-label={`Add ${u}`}>＋ {u}</button>
          ))}
        </div>
      )}
    </div>
  );
}

export function NewGroup({ im, onClose }) {
  const ref = useRef(null);
  const [title, setTitle] = useState('');
  const [uids, setUids] = useState([]);
  const [titleErr, setTitleErr] = useState('');
  const [memberErr, setMemberErr] = useState('');
  const [err, setErr] = useState('');
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    d?.querySelector('#group-title')?.focus();
    return () => { if (d?.open) d.close(); };
  }, []);
  const submit = async (e) => {
    e.preventDefault();
    const te = titleError(title);
    setTitleErr(te || '');
    if (te || memberErr) return;
    setBusy(true);
    setErr('');
    try {
      await im.createGroup(title, uids);
      onClose();
    } catch (x) {
      setErr(errorText(x));
      setBusy(false);
    }
  };
  return (
    <dialog ref={ref} className="sheet" id="new-group" aria-labelledby="new-group-title"
      onCancel={(e) => { e.preventDefault(); onClose(); }}>
      <form onSubmit={submit} noValidate>
        <header className="sheet-head">
          <h2 id="new-group-title">New group</h2>
          <button type="button" className="icon-btn" onClick={onClose} aria-label="Close" title="Close"><CloseIcon /></button>
        </header>
        <label htmlFor="group-title">Group name</label>
        <input id="group-title" autoFocus value={title} maxLength={64} placeholder="e.g. Weekend trip"
          aria-invalid={!!titleErr} aria-describedby={titleErr ? 'group-title-error' : undefined}
          onChange={(e) => { setTitle(e.target.value); if (titleErr) setTitleErr(''); }} />
        {titleErr && <p className="field-error" id="group-title-error" role="alert">{titleErr}</p>}
        <label htmlFor="group-members">Members</label>
        <MemberPicker im={im} uids={uids} setUids={setUids} error={memberErr} setError={setMemberErr} id="group-members" />
        {err && <p className="form-error" role="alert">{err}</p>}
        <div className="sheet-actions">
          <button type="button" className="btn ghost" onClick={onClose}>Cancel</button>
          <button className="btn primary" id="group-create" disabled={busy || !im.ready()}>
            {busy ? 'Creating…' : 'Create group'}
          </button>
        </div>
      </form>
    </dialog>
  );
}

const ROLE_NAME = { owner: 'Owner', admin: 'Admin' };

export function GroupPanel({ im, convId, onClose, avatar }) {
  const c = im.convs.get(convId);
  const [members, setMembers] = useState(null); // [{uid, role}] from the server
  const [err, setErr] = useState('');
  const [busy, setBusy] = useState('');
  const [renaming, setRenaming] = useState(null);
  const [adding, setAdding] = useState([]);
  const [addErr, setAddErr] = useState('');
  const [leaving, setLeaving] = useState(false);
  const head = useRef(null);
  const left = c?.left;
  const version = c?.membersVersion || 0;
  useEffect(() => { head.current?.focus(); }, [convId]);
  useEffect(() => {
    if (!c || left || !im.ready()) return undefined;
    let live = true;
    im.groupMembers(convId).then((m) => live && setMembers(m), (e) => live && setErr(errorText(e)));
    return () => { live = false; };
  }, [convId, version, left, im.conn.state]); // eslint-disable-line react-hooks/exhaustive-deps
  if (!c) return null;
  const me = im.roleIn(convId);
  const manage = me === 'owner' || me === 'admin';
  // The server's list once it came; until then (or once out) what sync said.
  // (groupMembers keeps c.roles up to date, and system messages too).
  const list = (members ? members.map((m) => m.uid) : c.members)
    .map((uid) => ({ uid, role: c.roles?.[uid] || 'member' }))
    .sort((a, b) => (a.uid === im.uid ? -1 : b.uid === im.uid ? 1 : 0)
      || ['owner', 'admin', 'member'].indexOf(a.role) - ['owner', 'admin', 'member'].indexOf(b.role)
      || (a.uid < b.uid ? -1 : 1));
  const act = async (what, fn) => {
    setBusy(what);
    setErr('');
    try {
      await fn();
    } catch (e) {
      setErr(errorText(e));
    }
    setBusy('');
  };
  const canRemove = (m) => m.uid !== im.uid && (me === 'owner' || (me === 'admin' && m.role === 'member'));
  const rename = (e) => {
    e.preventDefault();
    const te = titleError(renaming);
    if (te) { setErr(te); return; }
    act('rename', async () => { await im.groupRename(convId, renaming); setRenaming(null); });
  };
  const add = (e) => {
    e.preventDefault();
    if (!adding.length) { setAddErr('Type a name first'); return; }
    const fresh = adding.filter((u) => !list.some((m) => m.uid === u));
    if (!fresh.length) { setAddErr('They are members already'); return; }
    act('add', async () => { await im.groupAdd(convId, fresh.slice(0, 100)); setAdding([]); });
  };
  const count = members ? members.length : c.members.length;
  return (
    <aside className="info" id="group-info" aria-labelledby="info-title"
      onKeyDown={(e) => { if (e.key === 'Escape' && !e.defaultPrevented) { e.preventDefault(); onClose(); } }}>
      <header className="info-head">
        <h2 id="info-title" tabIndex={-1} ref={head}>Group info</h2>
        <button className="icon-btn" id="info-close" onClick={onClose} aria-label="Close group info" title="Close"><CloseIcon /></button>
      </header>
      <div className="info-body">
        <div className="info-card">
          {avatar({ conv: convId, big: true })}
          {renaming !== null ? (
            <form className="rename" onSubmit={rename}>
              <label className="sr" htmlFor="rename-input">Group name</label>
              <input id="rename-input" autoFocus value={renaming} maxLength={64}
                onChange={(e) => setRenaming(e.target.value)}
                onKeyDown={(e) => { if (e.key === 'Escape') { e.preventDefault(); setRenaming(null); } }} />
              <button className="btn primary" disabled={busy === 'rename'}>Save</button>
              <button type="button" className="btn ghost" onClick={() => setRenaming(null)}>Cancel</button>
            </form>
          ) : (
            <h3 className="info-title" id="info-group-title">{im.title(c)}</h3>
          )}
          <p className="info-sub">{left ? 'You are no longer a member' : `Private group · ${count === 1 ? '1 member' : `${count} members`}`}</p>
          {manage && renaming === null && (
            <button className="btn ghost small" id="rename" onClick={() => setRenaming(c.title || '')}>Rename</button>
          )}
        </div>
        {err && <p className="form-error" id="info-error" role="alert">{err}</p>}
        {left && (
          <p className="info-note" role="status">{left === 'left' ? 'You left this group.' : 'You were removed from this group.'}</p>
        )}
        {manage && (
          <form className="add-members" onSubmit={add}>
            <label htmlFor="add-member">Add members</label>
            <div className="add-row">
              <MemberPicker im={im} uids={adding} setUids={setAdding} members={list.map((m) => m.uid)}
                error={addErr} setError={setAddErr} id="add-member" />
              <button className="btn primary" id="add-submit" disabled={busy === 'add'}>Add</button>
            </div>
          </form>
        )}
        {!left && (
          <>
            <h3 className="info-section">Members</h3>
            <ul className="members" aria-label="Members">
              {list.map((m) => (
                <li key={m.uid} className="member" data-uid={m.uid} data-role={m.role}>
                  {avatar({ uid: m.uid })}
                  <span className="member-name">
                    <span>{m.uid}{m.uid === im.uid && <span className="you"> (you)</span>}</span>
                    {ROLE_NAME[m.role] && <span className={`role ${m.role}`}>{ROLE_NAME[m.role]}</span>}
                  </span>
                  <span className="member-actions">
                    {me === 'owner' && m.uid !== im.uid && m.role !== 'owner' && (
                      <button className="btn ghost small role-btn" disabled={!!busy}
                        onClick={() => act(`role ${m.uid}`, () => im.groupRole(convId, m.uid, m.role === 'admin' ? 'member' : 'admin'))}
                        aria-label={m.role === 'admin' ? `Remove admin: ${m.uid}` : `Make admin: ${m.uid}`}>
                        {m.role === 'admin' ? 'Remove admin' : 'Make admin'}
                      </button>
                    )}
                    {canRemove(m) && (
                      <button className="btn danger small remove-btn" disabled={!!busy}
                        onClick={() => act(`remove ${m.uid}`, () => im.groupRemove(convId, m.uid))}
                        aria-label={`Remove ${m.uid} from the group`}>Remove</button>
                    )}
                  </span>
                </li>
              ))}
            </ul>
            <div className="leave">
              {leaving ? (
                <p className="confirm" role="group" aria-label="Leave the group?">
                  <span>Leave “{im.title(c)}”?{me === 'owner' ? ' Ownership passes to an admin or the earliest member.' : ''}</span>
                  <button className="btn danger" id="leave-confirm" disabled={busy === 'leave'}
                    onClick={() => act('leave', () => im.leave(convId))}>Leave</button>
                  <button className="btn ghost" onClick={() => setLeaving(false)}>Cancel</button>
                </p>
              ) : (
                <button className="btn danger-ghost" id="leave" onClick={() => setLeaving(true)}>Leave group</button>
              )}
            </div>
          </>
        )}
      </div>
    </aside>
  );
}

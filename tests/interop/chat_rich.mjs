// Revision 2 of the chat protocol (docs/chat-protocol.md) from Node `ws`,
// driven by test_chat_rich.sh against the SQLite store and by
// test_chat_cluster.sh against PostgreSQL and across nodes:
//   node chat_rich.mjs BASE_URL forbid        private groups: every request
//        type refused with `forbidden` to a non-member, to a removed member
//        and for an id nobody created (one table); system messages; what a
//        removed member stops getting at once
//   node chat_rich.mjs BASE_URL edits         recall and edit seen by a
//        second device and by a device that was offline (sync), the recall
//        window, search in Chinese and its paging and scope
//   node chat_rich.mjs BASE_URL cluster URL2  the removal happens on another
//        node than the removed member's: it stops receiving at once there
import { base, arg, check, Device, run, sleep, WebSocket } from './chat_lib.mjs';

const tag = Date.now().toString(36); // fresh uids per run (the PostgreSQL database is shared)
const U = (name) => `${name}_${tag}`;
const open = (uid, url = base) =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}/chat?uid=${uid}`);
    const d = new Device(ws);
    ws.once('open', () => resolve(d));
    ws.once('error', reject);
  });
const welcomed = async (d) => {
  const w = await d.next('welcome');
  return w;
};
let cidn = 0;
const cid = () => `c-${tag}-${++cidn}`;

async function makeGroup(owner, title, members) {
  const r = await owner.ask({ type: 'group_create', cid: cid(), title, members });
  if (r.type !== 'group') throw new Error(`group_create: ${JSON.stringify(r)}`);
  return r.conv;
}

// Every request type of the protocol that names a conversation, as `uid`
// would send it about `conv`; each must be refused with `forbidden`.
const requests = (conv, victim) => [
  { type: 'send', conv, cid: cid(), text: 'let me in' },
  { type: 'read', conv, seq: 1 },
  { type: 'history', conv },
  { type: 'join', conv },
  { type: 'typing', conv },
  { type: 'leave', conv },
  { type: 'group_add', conv, uids: [victim] },
  { type: 'group_remove', conv, uid: victim },
  { type: 'group_rename', conv, title: 'mine now' },
  { type: 'group_role', conv, uid: victim, role: 'admin' },
  { type: 'group_members', conv },
  { type: 'recall', conv, seq: 1 },
  { type: 'edit', conv, seq: 1, text: 'changed' },
  { type: 'search', conv, q: 'secret' },
];

async function refusedEverything(d, conv, who, victim) {
  const bad = [];
  for (const req of requests(conv, victim)) {
    const r = await d.ask(req);
    if (!(r.type === 'error' && r.code === 'forbidden')) bad.push(`${req.type} → ${JSON.stringify(r).slice(0, 120)}`);
  }
  check(bad.length === 0, `${who}: all ${requests(conv, victim).length} request types on ${conv} answered forbidden${bad.length ? `; not: ${bad.join(' | ')}` : ''}`);
  const s = await d.ask({ type: 'sync', since: { [conv]: 0 } });
  check(s.type === 'sync' && !s.convs.some((c) => c.conv === conv), `${who}: sync does not list ${conv}, even asked for by id`);
  const f = await d.ask({ type: 'search', q: 'secret' });
  check(f.type === 'search' && !f.results.some((m) => m.conv === conv), `${who}: search over everything finds nothing of ${conv}`);
}

async function forbid() {
  const [alice, bob, carol, dave] = await Promise.all(['alice', 'bob', 'carol', 'dave'].map((n) => open(U(n))));
  const w = await welcomed(alice);
  await Promise.all([bob, carol, dave].map(welcomed));
  check(w.rev >= 2, `welcome says rev ${w.rev}`);

  const conv = await makeGroup(alice, 'Secret plans 秘密', [U('bob'), U('dave')]);
  check(/^p:[a-z0-9]{16}$/.test(conv), `group_create → ${conv}`);
  const again = await alice.ask({ type: 'group_create', cid: `c-${tag}-1`, title: 'Secret plans 秘密', members: [U('bob')] });
  check(again.type === 'group' && again.conv === conv && again.dup === true, 'group_create with the same cid answers the same group, dup');
  const created = await bob.next('deliver', (m) => m.msg.conv === conv);
  check(created.msg.sys && created.msg.from === U('alice') && /alice/.test(created.msg.text), `bob gets the system message: "${created.msg.text}"`);
  const sent = await alice.ask({ type: 'send', conv, cid: cid(), text: 'the secret is 42' });
  check(sent.type === 'ack', 'a member sends');
  await bob.next('deliver', (m) => m.msg.conv === conv && m.msg.text === 'the secret is 42');

  const sync = await bob.ask({ type: 'sync' });
  const g = sync.convs.find((c) => c.conv === conv);
  check(g && g.kind === 'group' && g.title === 'Secret plans 秘密' && g.roles?.[U('alice')] === 'owner',
    `bob's sync lists the group: kind ${g?.kind}, title ${g?.title}, roles ${JSON.stringify(g?.roles)}`);
  check(g && g.unread === 1, `system messages are not unread (bob's unread ${g?.unread})`);
  const members = await bob.ask({ type: 'group_members', conv });
  check(members.type === 'group_members' && members.members.length === 3, `group_members lists 3 (got ${JSON.stringify(members).slice(0, 160)})`);

  // Roles: bob (member) may not add, remove or rename; alice makes him admin.
  const noAdd = await bob.ask({ type: 'group_add', conv, uids: [U('carol')] });
  check(noAdd.code === 'forbidden', `a plain member cannot add (${noAdd.code})`);
  const role = await alice.ask({ type: 'group_role', conv, uid: U('bob'), role: 'admin' });
  check(role.type === 'ok', 'the owner makes bob admin');
  const noKick = await bob.ask({ type: 'group_remove', conv, uid: U('alice') });
  check(noKick.code === 'forbidden', `an admin cannot remove the owner (${noKick.code})`);
  const ren = await bob.ask({ type: 'group_rename', conv, title: 'Plans' });
  check(ren.type === 'ok', 'an admin renames');
  const renamed = await alice.next('deliver', (m) => m.msg.conv === conv && m.msg.sys?.op === 'rename');
  check(renamed.msg.sys.title === 'Plans', `rename is a system message: "${renamed.msg.text}"`);

  // The non-member and an id nobody made.
  await refusedEverything(carol, conv, 'carol (never a member)', U('bob'));
  await refusedEverything(carol, 'p:0000000000000000', 'carol (an id nobody created)', U('bob'));

  // dave is removed: the removal reaches him last, then nothing more does.
  const rm = await alice.ask({ type: 'group_remove', conv, uid: U('dave') });
  check(rm.type === 'ok', 'the owner removes dave');
  const gone = await dave.next('deliver', (m) => m.msg.conv === conv && m.msg.sys?.op === 'remove');
  check(gone.msg.sys.uids?.includes(U('dave')), `dave gets his own removal: "${gone.msg.text}"`);
  dave.inbox.length = 0; // what came before the removal; from here on nothing may come
  await alice.ask({ type: 'send', conv, cid: cid(), text: 'after dave left' });
  alice.ws.send(JSON.stringify({ v: 1, type: 'typing', conv }));
  await alice.ask({ type: 'read', conv, seq: 99 });
  await bob.next('deliver', (m) => m.msg.text === 'after dave left');
  await sleep(300);
  const leak = dave.inbox.filter((m) => m.conv === conv || m.msg?.conv === conv);
  check(leak.length === 0, `dave got nothing of the group after his removal (${JSON.stringify(leak).slice(0, 200)})`);
  await refusedEverything(dave, conv, 'dave (removed)', U('bob'));
  const hist = await dave.ask({ type: 'history', conv });
  check(hist.code === 'forbidden', 'dave cannot read the history any more');

  // leave: the owner leaves, bob (the admin) becomes owner.
  const left = await alice.ask({ type: 'leave', conv });
  check(left.type === 'ok', 'the owner leaves');
  const owner = await bob.next('deliver', (m) => m.msg.conv === conv && m.msg.sys?.op === 'owner');
  check(owner.msg.sys.uids?.[0] === U('bob'), `ownership passes to the admin: "${owner.msg.text}"`);
  await refusedEverything(alice, conv, 'alice (left)', U('bob'));
  const open2 = await carol.ask({ type: 'join', conv: `g:room_${tag}` });
  check(open2.type === 'ok', 'open rooms stay: carol joins g:room by name');
  await Promise.all([alice, bob, carol, dave].map((d) => d.close()));
}

async function edits() {
  const [a1, bob] = await Promise.all([open(U('ann')), open(U('ben'))]);
  await Promise.all([a1, bob].map(welcomed));
  const conv = await makeGroup(a1, 'Edits', [U('ben')]);
  const a2 = await open(U('ann'));
  await welcomed(a2);
  const s1 = await a1.ask({ type: 'send', conv, cid: cid(), text: '你好世界 hello world' });
  const s2 = await a1.ask({ type: 'send', conv, cid: cid(), text: 'typo here' });
  const s3 = await a1.ask({ type: 'send', conv, cid: cid(), text: 'delete me 秘密' });
  check(s1.type === 'ack' && s2.type === 'ack' && s3.type === 'ack', 'three sends acked');
  // ben goes offline before the recall and the edit: he learns them by sync.
  const benLast = (await bob.ask({ type: 'sync' })).convs.find((c) => c.conv === conv).last_seq;
  await bob.close();

  const notMine = await open(U('ben'));
  await welcomed(notMine);
  const steal = await notMine.ask({ type: 'recall', conv, seq: s1.seq });
  check(steal.code === 'forbidden', `recalling someone else's message: ${steal.code}`);
  const steal2 = await notMine.ask({ type: 'edit', conv, seq: s1.seq, text: 'x' });
  check(steal2.code === 'forbidden', `editing someone else's message: ${steal2.code}`);
  await notMine.close();

  const ed = await a1.ask({ type: 'edit', conv, seq: s2.seq, text: 'fixed text' });
  check(ed.type === 'ok', 'edit → ok');
  const ev = await a2.next('deliver', (m) => m.msg.conv === conv && m.msg.sys?.op === 'edit');
  check(ev.msg.target?.seq === s2.seq && ev.msg.target.text === 'fixed text' && ev.msg.target.edited > 0,
    `the second device gets the edit with the target as it is now (${JSON.stringify(ev.msg.target)})`);
  const rc = await a1.ask({ type: 'recall', conv, seq: s3.seq });
  check(rc.type === 'ok', 'recall → ok');
  const rv = await a2.next('deliver', (m) => m.msg.conv === conv && m.msg.sys?.op === 'recall');
  check(rv.msg.target?.recalled === true && rv.msg.target.text === '', `the second device gets the recall (${JSON.stringify(rv.msg.target)})`);
  const twice = await a1.ask({ type: 'edit', conv, seq: s3.seq, text: 'back' });
  check(twice.type === 'error', `a recalled message cannot be edited (${twice.code})`);

  const back = await open(U('ben'));
  await welcomed(back);
  const sy = await back.ask({ type: 'sync', since: { [conv]: benLast } });
  const c = sy.convs.find((x) => x.conv === conv);
  const targets = Object.fromEntries((c?.msgs ?? []).filter((m) => m.target).map((m) => [m.target.seq, m.target]));
  check(targets[s2.seq]?.text === 'fixed text' && targets[s3.seq]?.recalled === true,
    `ben, offline meanwhile, learns both in sync (${JSON.stringify(c?.msgs ?? []).slice(0, 240)})`);
  // ben read nothing: s1 and s2 are unread; s3 (recalled), the edit and
  // the recall events and the system message are not.
  check(c && c.unread === 2, `unread 2: events, system and recalled messages do not count (${c?.unread})`);
  const h = await back.ask({ type: 'history', conv });
  const bySeq = Object.fromEntries(h.msgs.map((m) => [m.seq, m]));
  check(bySeq[s2.seq]?.text === 'fixed text' && bySeq[s2.seq].edited > 0, 'history shows the last version, marked edited');
  check(bySeq[s3.seq]?.recalled === true && bySeq[s3.seq].text === '' && !JSON.stringify(h).includes('delete me'),
    'history holds a tombstone without the recalled text');

  // Search: Chinese, two and four characters; scope; recalled never found.
  for (const q of ['你好', '世界', '你好世界', 'HELLO']) {
    const r = await back.ask({ type: 'search', q });
    check(r.type === 'search' && r.results.some((m) => m.seq === s1.seq && m.conv === conv), `search "${q}" finds the message`);
  }
  const none = await back.ask({ type: 'search', q: '秘密' });
  check(none.type === 'search' && !none.results.some((m) => m.conv === conv && m.seq === s3.seq), 'a recalled message is not found');
  const stranger = await open(U('cy'));
  await welcomed(stranger);
  const r2 = await stranger.ask({ type: 'search', q: '你好世界' });
  check(r2.type === 'search' && !r2.results.some((m) => m.conv === conv), "a non-member's search finds nothing of the group");
  const short = await stranger.ask({ type: 'search', q: 'x' });
  check(short.code === 'bad_field', `a 1-byte query: ${short.code}`);

  // Paging: 25 matches, pages of 10, newest first, no repeats.
  for (let i = 0; i < 25; i++) await a1.ask({ type: 'send', conv, cid: cid(), text: `needle ${i} 针` });
  const seen = [];
  let before;
  for (let page = 0; page < 5; page++) {
    const r = await a1.ask({ type: 'search', q: 'needle', conv, limit: 10, ...(before ? { before } : {}) });
    seen.push(...r.results.map((m) => m.mid));
    if (!r.next) break;
    before = r.next;
  }
  const sorted = [...seen].sort((x, y) => y - x);
  check(seen.length === 25 && new Set(seen).size === 25 && JSON.stringify(seen) === JSON.stringify(sorted),
    `paging gives all 25 matches once, newest first (${seen.length})`);

  // The recall window: the server was started with --recall-window 2 (s).
  const late = await a1.ask({ type: 'send', conv, cid: cid(), text: 'too late to take back' });
  await sleep(2300);
  const tl = await a1.ask({ type: 'recall', conv, seq: late.seq });
  check(tl.code === 'too_late', `recall after the window: ${tl.code}`);
  await Promise.all([a1, a2, back, stranger].map((d) => d.close()));
}

async function cluster(url2) {
  // alice (owner) and bob on node A, carol on node B; alice's second device
  // on node B removes bob: node A must stop delivering to him at once.
  const [alice, bob] = await Promise.all([open(U('alice')), open(U('bob'))]);
  const [aliceB, carol] = await Promise.all([open(U('alice'), url2), open(U('carol'), url2)]);
  await Promise.all([alice, bob, aliceB, carol].map(welcomed));
  const conv = await makeGroup(alice, 'Across nodes', [U('bob'), U('carol')]);
  await carol.next('deliver', (m) => m.msg.conv === conv);
  const hi = await carol.ask({ type: 'send', conv, cid: cid(), text: 'from node B' });
  check(hi.type === 'ack', 'carol (node B) sends');
  await bob.next('deliver', (m) => m.msg.text === 'from node B');
  const rm = await aliceB.ask({ type: 'group_remove', conv, uid: U('bob') });
  check(rm.type === 'ok', 'alice removes bob from node B');
  await bob.next('deliver', (m) => m.msg.conv === conv && m.msg.sys?.op === 'remove');
  bob.inbox.length = 0; // what came before the removal; from here on nothing may come
  await carol.ask({ type: 'send', conv, cid: cid(), text: 'bob must not see this' });
  carol.ws.send(JSON.stringify({ v: 1, type: 'typing', conv }));
  await alice.next('deliver', (m) => m.msg.text === 'bob must not see this');
  await sleep(400);
  const leak = bob.inbox.filter((m) => m.conv === conv || m.msg?.conv === conv);
  check(leak.length === 0, `bob (node A) got nothing after a removal on node B (${JSON.stringify(leak).slice(0, 200)})`);
  const h = await bob.ask({ type: 'history', conv });
  check(h.code === 'forbidden', `bob's history on node A: ${h.code}`);
  await Promise.all([alice, bob, aliceB, carol].map((d) => d.close()));
}

run({ forbid, edits, cluster: () => cluster(arg) });

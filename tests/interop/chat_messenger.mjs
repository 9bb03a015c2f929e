// The server side of issue 17 (the messenger) over real WebSockets, from
// Node's `ws`, against `duplex serve --chat`. Usage:
//   node chat_messenger.mjs BASE_URL PHASE [ARGS]
// PHASE: members       a room's members hear each arrival as it happens
//                      (item 2: "1 members" while two were in)
//        cid PID       a message whose ack came late (the server stopped
//                      with SIGSTOP) comes back with its cid in deliver,
//                      sync and history, with bob's receipt (item 5)
//        signin        on a --secret server: refused sign-ins close with
//                      4401 and no trace; GET /token says how to sign in
//        devlogin      --secret --dev-login: POST /token signs in, from
//                      this machine only (item 9)
//        nodevlogin    --secret without --dev-login: POST /token is 404
// Prints one line per check; exits 0 when all passed.
import http from 'node:http';
import { Device, base, check, refused, run, same, sleep } from './chat_lib.mjs';

const members = (d, conv) => d.next('members', (m) => m.conv === conv);

async function membersPhase() {
  const alice = await Device.open('uid=alice');
  await alice.next('welcome');
  let m = await members(alice, 'g:lobby');
  check(m.count === 1 && same(m.joined, ['alice']) && m.v === 1 && !('id' in m),
    `alice's first connection: ${JSON.stringify(m)}`);
  const bob = await Device.open('uid=bob');
  await bob.next('welcome');
  m = await members(alice, 'g:lobby');
  check(m.count === 2 && same(m.joined, ['bob']), `alice hears the lobby has 2: ${JSON.stringify(m)}`);
  m = await members(bob, 'g:lobby');
  check(m.count === 2, 'bob hears it too');

  // A room: alice creates it, bob joins; both hear the count at once.
  const ok = await alice.ask({ type: 'join', conv: 'g:rust' });
  check(ok.type === 'ok', 'alice joins g:rust');
  m = await members(alice, 'g:rust');
  check(m.count === 1 && same(m.joined, ['alice']), 'g:rust has 1');
  const bob2 = await Device.open('uid=bob'); // a second tab of bob
  await bob2.next('welcome');
  await bob.ask({ type: 'join', conv: 'g:rust' });
  m = await members(alice, 'g:rust');
  check(m.count === 2 && same(m.joined, ['bob']), `alice (no reload) sees 2 in g:rust: ${JSON.stringify(m)}`);
  m = await members(bob2, 'g:rust');
  check(m.count === 2, "bob's other tab hears of the room it is now in");
  const s = await alice.ask({ type: 'sync' });
  const conv = s.convs.find((c) => c.conv === 'g:rust');
  check(conv && same(conv.members, ['alice', 'bob']), 'sync agrees');

  m = await members(bob, 'g:rust');
  check(m.count === 2, 'bob hears it on the tab that joined, after the ok');
  const carol = await Device.open('uid=carol'); // new to the lobby, not in g:rust
  await carol.next('welcome');
  m = await members(alice, 'g:lobby');
  check(m.count === 3 && same(m.joined, ['carol']), 'carol arrives in the lobby');
  await members(bob, 'g:lobby');
  await sleep(100);
  check(!carol.inbox.some((x) => x.type === 'members' && x.conv === 'g:rust'), 'nothing of g:rust for carol');
  check([...alice.inbox, ...bob.inbox].every((x) => x.type !== 'members'), 'one push per arrival and device');

  // No news: bob joining again, a tab closing, a reconnection.
  await bob.ask({ type: 'join', conv: 'g:rust' });
  await bob2.close();
  const bob3 = await Device.open('uid=bob');
  await bob3.next('welcome');
  await alice.ask({ type: 'presence', uids: ['bob'] }); // a round trip after those turns
  await bob.ask({ type: 'presence', uids: ['alice'] });
  const extra = [...alice.inbox, ...bob.inbox].filter((x) => x.type === 'members');
  check(extra.length === 0, `no push for a second join or a reconnection: ${JSON.stringify(extra)}`);
  for (const d of [alice, bob, bob3, carol]) await d.close();
}

// Item 5: the ack is late (the server is stopped), the client would have
// marked the message failed; everything that later shows it stored names
// its cid: the ack, bob's deliver, a resend's dup answer, sync, history.
async function cidPhase(pid) {
  const alice = await Device.open('uid=alice');
  await alice.next('welcome');
  const bob = await Device.open('uid=bob');
  await bob.next('welcome');
  const first = await alice.ask({ type: 'send', conv: 'd:alice:bob', cid: 'c-before', text: 'before' });
  const since = { 'd:alice:bob': first.seq };
  process.kill(pid, 'SIGSTOP');
  const id = 'late';
  alice.ws.send(JSON.stringify({ v: 1, type: 'send', id, conv: 'd:alice:bob', cid: 'c-stall', text: 'stalled 停' }));
  await sleep(1000); // the client's timeout would have fired by now
  check(!alice.inbox.some((m) => m.id === id), 'no ack while the server is stopped');
  process.kill(pid, 'SIGCONT');
  const ack = await alice.wait((m) => m.id === id, 'the late ack');
  check(ack.type === 'ack' && ack.cid === 'c-stall', `the late ack names its cid: ${JSON.stringify(ack)}`);
  const d = await bob.next('deliver', (m) => m.msg.seq === ack.seq);
  check(d.msg.cid === 'c-stall' && d.msg.from === 'alice', 'bob gets it with its cid');
  await bob.ask({ type: 'read', conv: 'd:alice:bob', seq: d.msg.seq });
  const rcpt = await alice.next('read');
  check(rcpt.uid === 'bob' && rcpt.seq === ack.seq, 'alice gets the receipt for that seq');
  const dup = await alice.ask({ type: 'send', conv: 'd:alice:bob', cid: 'c-stall', text: 'stalled 停' });
  check(dup.dup === true && dup.cid === 'c-stall' && dup.seq === ack.seq, 'a resend is answered as a duplicate, same seq');
  await alice.close();

  // A reload: the page holds the message as failed, by its cid only.
  const again = await Device.open('uid=alice');
  await again.next('welcome');
  const s = await again.ask({ type: 'sync', since });
  const c = s.convs.find((x) => x.conv === 'd:alice:bob');
  const mine = c && c.msgs.find((m) => m.cid === 'c-stall');
  check(!!mine && mine.from === 'alice' && mine.seq === ack.seq && mine.text === 'stalled 停',
    `sync returns it with its cid: ${JSON.stringify(c && c.msgs)}`);
  check(c.msgs.every((m) => typeof m.cid === 'string' && m.cid.length > 0), 'every synced message has a cid');
  check(c.reads.bob === ack.seq, "sync's reads say bob read it");
  const full = await again.ask({ type: 'sync' }); // no since: the latest 50
  const fc = full.convs.find((x) => x.conv === 'd:alice:bob');
  check(same(fc.msgs.map((m) => m.cid), ['c-before', 'c-stall']), 'a sync without since too');
  const h = await again.ask({ type: 'history', conv: 'd:alice:bob' });
  check(same(h.msgs.map((m) => m.cid), ['c-before', 'c-stall']), `history returns the cids: ${JSON.stringify(h.msgs)}`);
  await again.close();
  await bob.close();
}

// Plain HTTP to the server: { status, body (parsed JSON or text) }.
const request = (method, target, headers = {}) => new Promise((resolve, reject) => {
  const u = new URL(base.replace(/^ws/, 'http'));
  const req = http.request({ host: u.hostname, port: u.port, method, path: target, headers }, (res) => {
    let text = '';
    res.on('data', (k) => { text += k; });
    res.on('end', () => {
      let body = text;
      try { body = JSON.parse(text); } catch { /* not JSON */ }
      resolve({ status: res.statusCode, body });
    });
  });
  req.on('error', reject);
  req.end();
});

async function signinPhase(tok) {
  const g = await request('GET', '/token');
  check(g.status === 200 && same(g.body, { auth: 'token', dev_login: false }), `GET /token: ${JSON.stringify(g.body)}`);
  const alice = await Device.open(`token=${tok}`);
  await alice.next('welcome');
  await members(alice, 'g:lobby'); // her own arrival
  check((await refused('uid=mallory')) === '4401 a token is required (?token=...)', '?uid= on a --secret server: 4401');
  check((await refused('token=mallory.1.x')) === '4401 invalid or expired token', 'a bad token: 4401');
  // The refused were nobody: alice heard of no one coming or going.
  await alice.ask({ type: 'presence', uids: ['alice'] });
  check(!alice.inbox.some((m) => m.type === 'presence' || m.type === 'members'),
    `no presence or members push for a refused sign-in: ${JSON.stringify(alice.inbox)}`);
  const p = await request('POST', '/token?uid=mallory');
  check(p.status === 404 && /off/.test(p.body.error), `POST /token without --dev-login: ${p.status}`);
  await alice.close();
}

async function devloginPhase() {
  const g = await request('GET', '/token');
  check(g.status === 200 && same(g.body, { auth: 'token', dev_login: true }), `GET /token: ${JSON.stringify(g.body)}`);
  const p = await request('POST', '/token?uid=alice');
  check(p.status === 200 && p.body.uid === 'alice' && /^alice\.\d+\./.test(p.body.token) &&
    p.body.expires > Date.now() / 1000 + 3000, `POST /token?uid=alice: ${JSON.stringify(p.body)}`);
  const d = await Device.open(`token=${encodeURIComponent(p.body.token)}`);
  const w = await d.next('welcome');
  check(w.uid === 'alice', 'its token signs alice in');
  await d.close();
  const local = `127.0.0.1:${new URL(base).port}`;
  const cases = [
    ['a bad uid', '/token?uid=a%20b', {}, 400],
    ['no uid', '/token', {}, 400],
    ['a proxied request (X-Forwarded-For)', '/token?uid=root', { 'X-Forwarded-For': '203.0.113.9' }, 403],
    ['a proxied request (Forwarded)', '/token?uid=root', { Forwarded: 'for=203.0.113.9' }, 403],
    ['another Host (DNS rebinding)', '/token?uid=root', { Host: `evil.example:${new URL(base).port}` }, 403],
    ["another site's page (Origin)", '/token?uid=root', { Origin: 'http://evil.example' }, 403],
    ['a page of this machine (Origin)', '/token?uid=bob', { Host: local, Origin: `http://localhost:${new URL(base).port}` }, 200],
  ];
  for (const [what, target, headers, want] of cases) {
    const r = await request('POST', target, headers);
    check(r.status === want && (want === 200 ? !!r.body.token : !r.body.token && !!r.body.error),
      `${what}: ${r.status} ${JSON.stringify(r.body)}`);
  }
  const put = await request('PUT', '/token?uid=root');
  check(put.status === 405, 'PUT /token: 405');
}

async function nodevloginPhase() {
  const g = await request('GET', '/token');
  check(g.status === 200 && same(g.body, { auth: 'uid', dev_login: false }), `GET /token without a secret: ${JSON.stringify(g.body)}`);
}

await run({
  members: membersPhase,
  cid: (pid) => cidPhase(Number(pid)),
  signin: signinPhase,
  devlogin: devloginPhase,
  nodevlogin: nodevloginPhase,
});

// The chat protocol (docs/chat-protocol.md) over real WebSockets, from
// Node's `ws`, against `duplex serve --chat`. Usage:
//   node chat_client.mjs BASE_URL PHASE [ARGS]
// PHASE: proto        every request type, receipts, presence, errors
//        write N      alice sends N messages to bob and waits for every ack
//        check N      after a kill -9 + restart: all N are there, once each,
//                     and resending them all is answered as duplicates
//        token TOKEN  the token identifies its user; ?uid= is refused (4401)
// Prints one line per check; exits 0 when all passed.
import { Device, check, refused, run } from './chat_lib.mjs';

async function proto() {
  const alice = await Device.open('uid=alice');
  const w = await alice.next('welcome');
  check(w.v === 1 && w.uid === 'alice' && w.proto === 1, `welcome ${JSON.stringify(w)}`);
  const bob = await Device.open('uid=bob');
  await bob.next('welcome');
  // Sharing only the lobby makes them no contacts: no push (a room of n
  // would otherwise tell n people of every arrival), but a query answers.
  const q = await alice.ask({ type: 'presence', uids: ['bob'] });
  check(q.users[0].uid === 'bob' && q.users[0].online === true, 'presence query: bob online');
  check(!alice.inbox.some((m) => m.type === 'presence'), 'no presence push for a lobby arrival');

  // send → ack (after the commit) → deliver
  const ack = await alice.ask({ type: 'send', conv: 'd:alice:bob', cid: 'c-1', text: '你好, Bob 👋' });
  check(ack.type === 'ack' && ack.seq === 1 && ack.mid > 0 && ack.cid === 'c-1' && !ack.dup, `ack ${JSON.stringify(ack)}`);
  const dv = await bob.next('deliver');
  check(dv.msg.text === '你好, Bob 👋' && dv.msg.from === 'alice' && dv.msg.seq === 1, 'bob gets the message, Chinese and emoji intact');

  // idempotent resend
  const dup = await alice.ask({ type: 'send', conv: 'd:alice:bob', cid: 'c-1', text: '你好, Bob 👋' });
  check(dup.type === 'ack' && dup.dup === true && dup.seq === 1 && dup.mid === ack.mid, 'resend with the same cid: the same ack, dup');

  // several requests in flight on one socket, answered by id
  const many = await Promise.all([2, 3, 4, 5].map((i) =>
    alice.ask({ type: 'send', conv: 'd:alice:bob', cid: `c-${i}`, text: `message ${i}` })));
  check(many.map((a) => a.seq).join() === '2,3,4,5', `four sends in flight: seqs ${many.map((a) => a.seq)}`);
  for (let i = 2; i <= 5; i++) await bob.next('deliver', (m) => m.msg.seq === i);
  check(bob.inbox.filter((m) => m.type === 'deliver').length === 0, 'no duplicate delivery to bob');

  // read receipt
  const ok = await bob.ask({ type: 'read', conv: 'd:alice:bob', seq: 3 });
  check(ok.type === 'ok', 'read → ok');
  const rc = await alice.next('read');
  check(rc.uid === 'bob' && rc.seq === 3 && rc.conv === 'd:alice:bob', `alice gets the receipt ${JSON.stringify(rc)}`);

  // sync: unread counts and what was missed
  const s = await bob.ask({ type: 'sync', since: { 'd:alice:bob': 1 } });
  const conv = s.convs.find((c) => c.conv === 'd:alice:bob');
  check(conv && conv.unread === 2 && conv.read_seq === 3 && conv.last_seq === 5, `bob's unread ${conv && conv.unread}`);
  check(conv && conv.msgs.map((m) => m.seq).join() === '2,3,4,5', 'sync returns seqs 2-5');
  check(s.convs.some((c) => c.conv === 'g:lobby'), 'bob is in the lobby');
  check(s.presence.some((u) => u.uid === 'alice' && u.online), 'sync reports alice online');

  // history
  const h = await bob.ask({ type: 'history', conv: 'd:alice:bob', before: 5, limit: 2 });
  check(h.msgs.map((m) => m.seq).join() === '3,4' && h.more === true, 'history page before 5');

  // typing
  alice.raw(JSON.stringify({ v: 1, type: 'typing', conv: 'd:alice:bob' }));
  const t = await bob.next('typing');
  check(t.uid === 'alice' && t.conv === 'd:alice:bob', 'typing reaches bob');

  // the browser heartbeat
  alice.raw('ping');
  check((await alice.next('pong')).type === 'pong', 'ping → pong');

  // errors, each with its code, and the connection stays open
  const e1 = await alice.ask({ type: 'send', conv: 'd:bob:carol', cid: 'x', text: 'x' });
  check(e1.type === 'error' && e1.code === 'not_member', 'not_member');
  const e2 = await alice.ask({ type: 'send', conv: 'd:alice:bob', cid: 'x', text: 'x'.repeat(4001) });
  check(e2.code === 'too_large' && e2.field === 'text', 'text over 4000 bytes: too_large');
  const e3 = await alice.ask({ type: 'fly' });
  check(e3.code === 'bad_type', 'bad_type');
  alice.raw('{"v":1,"type":');
  check((await alice.next('error')).code === 'bad_json', 'broken JSON: bad_json');
  alice.raw(JSON.stringify({ v: 1, type: 'sync', pad: 'y'.repeat(20000) }));
  check((await alice.next('error')).code === 'too_large', '20 KB request: too_large');
  alice.raw(Buffer.from([1, 2, 3]));
  check((await alice.next('error')).code === 'bad_json', 'binary: bad_json');
  alice.raw(JSON.stringify({ v: 9, type: 'sync' }));
  check((await alice.next('error')).code === 'bad_version', 'v 9: bad_version');
  const still = await alice.ask({ type: 'presence', uids: ['bob'] });
  check(still.type === 'presence' && still.users[0].online === true, 'still connected after the errors');

  // presence: bob on two tabs is online until both are gone
  const bob2 = await Device.open('uid=bob');
  await bob2.next('welcome');
  await bob.close();
  const p2 = await alice.ask({ type: 'presence', uids: ['bob'] });
  check(p2.users[0].online === true, 'bob with one tab left is online');
  check(!alice.inbox.some((m) => m.type === 'presence'), 'no offline notice while a tab is left');
  await bob2.close();
  const off = await alice.next('presence');
  check(off.users[0].uid === 'bob' && off.users[0].online === false && off.users[0].last_seen > 0, 'bob offline when both tabs are gone');
  const bob3 = await Device.open('uid=bob');
  await bob3.next('welcome');
  const on = await alice.next('presence');
  check(on.users[0].uid === 'bob' && on.users[0].online === true, 'alice hears bob come back (d:alice:bob makes them contacts)');
  await bob3.close();
  await alice.close();

  // identification
  const noName = '4401 identify with ?uid=NAME (1-32 of A-Z a-z 0-9 _ -)';
  check((await refused('')) === noName, 'no uid: 4401');
  check((await refused('uid=a%20b')) === noName, 'bad uid: 4401');
  check((await refused('token=abc.1.xyz')) === '4403 this server does not check tokens: connect with ?uid=NAME',
    'token without a server secret: 4403');
}

async function write(n) {
  const alice = await Device.open('uid=alice');
  await alice.next('welcome');
  const acks = await Promise.all(Array.from({ length: n }, (_, i) =>
    alice.ask({ type: 'send', conv: 'd:alice:bob', cid: `k9-${i}`, text: `durable ${i} 持久` })));
  check(acks.every((a) => a.type === 'ack'), `${n} sends acked`);
  const seqs = acks.map((a) => a.seq).sort((a, b) => a - b);
  check(seqs[0] === 1 && seqs[n - 1] === n, `seqs 1..${n}`);
  // No close: the script exits and the server is killed right after.
}

async function checkPhase(n) {
  const bob = await Device.open('uid=bob');
  await bob.next('welcome');
  // Sync pages by 100: ask again from the last seq while `more`.
  let have = 0, conv, texts = [], rounds = 0;
  do {
    const s = await bob.ask({ type: 'sync', since: { 'd:alice:bob': have } });
    conv = s.convs.find((c) => c.conv === 'd:alice:bob');
    if (!conv) break;
    texts.push(...conv.msgs.map((m) => m.text));
    if (conv.msgs.length) have = conv.msgs[conv.msgs.length - 1].seq;
    rounds++;
  } while (conv.more && rounds < 10);
  check(rounds === Math.ceil(n / 100), `${rounds} sync rounds`);
  check(conv && conv.last_seq === n && texts.length === n, `after kill -9: ${texts.length}/${n} messages, last_seq ${conv && conv.last_seq}`);
  check(new Set(texts).size === texts.length && texts.every((t) => /^durable \d+ 持久$/.test(t)), 'each once, intact');
  const alice = await Device.open('uid=alice');
  await alice.next('welcome');
  const acks = await Promise.all(Array.from({ length: n }, (_, i) =>
    alice.ask({ type: 'send', conv: 'd:alice:bob', cid: `k9-${i}`, text: `durable ${i} 持久` })));
  check(acks.every((a) => a.type === 'ack' && a.dup === true), 'resending every cid: all duplicates');
  const again = await bob.ask({ type: 'sync', since: { 'd:alice:bob': n } });
  check(again.convs.find((c) => c.conv === 'd:alice:bob').msgs.length === 0, 'nothing new after the resends');
  await alice.close();
  await bob.close();
}

async function token(tok) {
  const d = await Device.open(`token=${tok}`);
  const w = await d.next('welcome');
  check(w.uid === 'alice', `token identifies ${w.uid}`);
  await d.close();
  check((await refused('uid=alice')) === '4401 a token is required (?token=...)', 'with a secret, ?uid= gets 4401');
  const bad = tok.slice(0, -2) + (tok.endsWith('AA') ? 'BB' : 'AA');
  check((await refused(`token=${bad}`)) === '4401 invalid or expired token', 'a tampered token gets 4401');
  const [uid, exp, sig] = tok.split('.');
  check((await refused(`token=bob.${exp}.${sig}`)) === '4401 invalid or expired token', "alice's signature on bob's name gets 4401");
}

await run({
  proto,
  write: (n) => write(Number(n)),
  check: (n) => checkPhase(Number(n)),
  token,
});

// The Vue 3 composable (web/client/vue.js) with Vue's real reactivity
// (effectScope stands in for a component's setup) and the fake WebSocket.
import { test, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { effectScope, ref, nextTick, watch } from 'vue';
import { useDuplex } from '../../web/client/vue.js';
import { fakeWebSocketClass, fakePage } from './fake.mjs';

let F;
let page;
beforeEach(() => {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  F = fakeWebSocketClass();
  page = fakePage();
});
afterEach(() => mock.timers.reset());

const env = () => ({ WebSocket: F.FakeWebSocket, window: page.window, document: page.document });

test('state refs follow the socket; send, json, handlers', async () => {
  const scope = effectScope();
  const seen = [];
  const d = scope.run(() => useDuplex('ws://a/', {
    ...env(), json: true, onMessage: (data) => seen.push(data),
  }));
  assert.equal(F.sockets.length, 1);
  assert.equal(d.readyState.value, 0);
  const states = [];
  scope.run(() => watch(d.readyState, (v) => states.push(v), { flush: 'sync' }));
  assert.equal(d.send({ a: 1 }), true, 'queued before open');
  F.last().open();
  assert.equal(d.readyState.value, 1);
  assert.deepEqual(F.last().sent, ['{"a":1}']);
  F.last().receive('{"b":2}');
  assert.deepEqual(d.lastMessage.value, { b: 2 });
  assert.deepEqual(seen, [{ b: 2 }]);
  F.last().receive('not json');
  assert.ok(d.error.value instanceof SyntaxError);
  const p = d.request({ op: 'x' });
  const id = JSON.parse(F.last().sent[1]).id;
  F.last().receive(JSON.stringify({ id, ok: true }));
  assert.deepEqual(await p, { id, ok: true });
  assert.equal(d.retry.value, null);
  F.last().serverClose(1006, '', false);
  assert.equal(d.readyState.value, 0, 'reconnecting');
  assert.equal(d.error.value.code, 1006);
  assert.equal(d.retry.value.attempt, 1);
  assert.ok(d.retry.value.delay >= 0);
  mock.timers.tick(d.retry.value.delay);
  F.last().open();
  assert.equal(d.retry.value, null, 'cleared on open');
  assert.equal(d.error.value, null, 'cleared on open');
  assert.deepEqual(states, [1, 0, 1]);
  scope.stop();
});

test('a reactive URL swaps the socket; null closes it; the scope end releases everything', async () => {
  const url = ref('ws://a/1');
  const scope = effectScope();
  const d = scope.run(() => useDuplex(url, env()));
  const first = F.last();
  first.open();
  url.value = 'ws://a/2';
  await nextTick();
  assert.equal(F.sockets.length, 2);
  assert.deepEqual(first.closeCalls, [[1000, undefined]]);
  assert.equal(first.attached, true, 'kept for the closing handshake');
  first.serverClose(1000, '', true);
  assert.equal(d.readyState.value, 0, "the old socket's close does not touch the state");
  assert.equal(d.socket.value.url, 'ws://a/2');
  F.last().open();
  assert.equal(d.readyState.value, 1);

  url.value = null;
  await nextTick();
  assert.equal(d.readyState.value, 3);
  assert.equal(d.socket.value, null);
  assert.equal(d.send('x'), false);
  await assert.rejects(d.request({}), /no socket/);
  assert.equal(page.listenerCount(), 0);

  url.value = ['ws://b/', 'ws://c/'];
  await nextTick();
  assert.equal(F.last().url, 'ws://b/');
  F.last().fail();
  scope.stop();
  mock.timers.tick(3600e3);
  assert.equal(F.sockets.length, 3, 'no reconnect after the scope ended');
  assert.equal(page.listenerCount(), 0);
  assert.equal(d.socket.value, null);
});

test('outside setup() or a scope it refuses', () => {
  assert.throws(() => useDuplex('ws://a/', env()), /effectScope/);
  assert.equal(F.sockets.length, 0);
});

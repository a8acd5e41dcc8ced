/**
 * Declared subscriptions (PROTOCOL.md §8) from the client's side, against
 * the fake server in both wire generations: when a declaration is sent and
 * withdrawn, what a refusal does, what survives a reconnection, and that a
 * server without the capability (Kitware's) is never sent one.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { WslinkClient, type ClientOptions } from '../src/connection.js';
import { ErrorCode, WslinkError } from '../src/errors.js';
import { guardConsole } from './helpers/console-guard.js';
import { FakeServer, until, type FakeConnection } from './helpers/fake-server.js';

guardConsole();

const open: WslinkClient[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

const OURS = ['subscriptions'];
const SUBSCRIBE = 'wslink.subscribe';
const UNSUBSCRIBE = 'wslink.unsubscribe';

async function connected(server: FakeServer, extra: Partial<ClientOptions> = {}): Promise<{ c: WslinkClient; errors: WslinkError[] }> {
  const c = new WslinkClient({ url: 'ws://fake/ws', WebSocket: server.WebSocket, protocol: server.generation, ...extra });
  open.push(c);
  const errors: WslinkError[] = [];
  c.on('error', (e) => errors.push(e));
  await c.connect();
  return { c, errors };
}

interface Received {
  wslink: string;
  id: string;
  method: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
}

/** The declarations a connection received, in order, as `[method, topic]`. */
function declarations(conn: FakeConnection): [string, unknown][] {
  return (conn.received as Received[]).filter((m) => m.method === SUBSCRIBE || m.method === UNSUBSCRIBE).map((m) => [m.method, m.args[0]]);
}

/** A call's reply comes after the server has handled everything sent before it. */
async function roundTrip(c: WslinkClient): Promise<void> {
  assert.equal(await c.call('test.add', [1, 1]), 2);
}

const reconnecting = { reconnect: { initialDelay: 5, maxDelay: 20, jitter: 0 } };

for (const generation of [2, 1] as const) {
  describe(`declared subscriptions over wslink ${generation}.x`, () => {
    it('declares a topic with its first subscriber and withdraws it with its last, in order with the calls', async () => {
      const server = new FakeServer({ generation, capabilities: OURS });
      const { c, errors } = await connected(server);
      const conn = server.last;
      assert.equal(c.declaresSubscriptions, true);
      const first: unknown[] = [];
      const second: unknown[] = [];
      const offFirst = c.subscribe('img', (m) => first.push(m));
      const offSecond = c.subscribe('img', (m) => second.push(m));
      c.subscribe('other', () => {});
      await roundTrip(c);
      assert.deepEqual(declarations(conn), [
        [SUBSCRIBE, 'img'],
        [SUBSCRIBE, 'other'],
      ]);
      // The envelope of §8: a system id from the counter the calls use, so
      // the declarations come before the call in numbering as on the wire.
      const [helloMsg, subImg, subOther, call] = conn.received as Received[];
      assert.equal(helloMsg?.method, 'wslink.hello');
      assert.deepEqual(subImg, { wslink: '1.0', id: subImg?.id, method: SUBSCRIBE, args: ['img'], kwargs: {} });
      const numbers = [subImg, subOther, call].map((m) => /^(system|rpc):c1:(\d+)$/.exec(m?.id ?? ''));
      assert.deepEqual(
        numbers.map((n) => n?.[1]),
        ['system', 'system', 'rpc'],
      );
      const [a, b, n] = numbers.map((m) => Number(m?.[2]));
      assert.ok((a as number) < (b as number) && (b as number) < (n as number), `ids ${subImg.id}, ${subOther?.id}, ${call?.id}`);
      if (generation === 1) {
        const text = conn.socket.sent.find((f) => typeof f === 'string' && f.includes(SUBSCRIBE));
        assert.equal(text, `{"wslink":"1.0","id":"${subImg.id}","method":"wslink.subscribe","args":["img"],"kwargs":{}}`);
      }

      // One subscriber of two leaves: the server is told nothing, and the
      // other still receives the topic.
      offFirst();
      offFirst();
      await roundTrip(c);
      assert.equal(declarations(conn).length, 2);
      server.publish('img', 1);
      await until(() => second.length === 1, 2000, 'the remaining subscriber');
      assert.deepEqual(first, []);

      // The last one leaves: withdrawn once, and the server stops sending it.
      offSecond();
      offSecond();
      await roundTrip(c);
      assert.deepEqual(declarations(conn).slice(2), [[UNSUBSCRIBE, 'img']]);
      assert.deepEqual([...(conn.declared ?? [])], ['other']);
      assert.equal(c.subscriberCount('img'), 0);

      // A new first subscriber declares it again.
      const again: unknown[] = [];
      c.subscribe('img', (m) => again.push(m));
      await roundTrip(c);
      assert.deepEqual(declarations(conn).slice(3), [[SUBSCRIBE, 'img']]);
      server.publish('img', 2);
      await until(() => again.length === 1, 2000, 'the new subscriber');
      assert.deepEqual(second, [1]);
      assert.deepEqual(errors, []);
    });

    it("a refusal (the server's limit) calls onRefused, emits 'error' once and drops that topic's subscribers only", async () => {
      const server = new FakeServer({ generation, capabilities: OURS, maxSubscriptions: 2 });
      const { c, errors } = await connected(server);
      const conn = server.last;
      const gotA: unknown[] = [];
      const offA = c.subscribe('a', (m) => gotA.push(m));
      c.subscribe('b', () => {});
      const refusals: [string, WslinkError][] = [];
      const gotC: unknown[] = [];
      const offC1 = c.subscribe('c', (m) => gotC.push(m), (e) => refusals.push(['first', e]));
      c.subscribe('c', (m) => gotC.push(m), (e) => refusals.push(['second', e]));
      c.subscribe('c', (m) => gotC.push(m)); // no onRefused: dropped all the same
      await until(() => refusals.length === 2, 2000, 'the refusals');
      const [[who1, e1], [who2, e2]] = refusals as [[string, WslinkError], [string, WslinkError]];
      assert.deepEqual([who1, who2], ['first', 'second']);
      assert.equal(e1, e2);
      assert.ok(e1 instanceof WslinkError);
      assert.equal(e1.kind, 'server');
      assert.equal(e1.code, ErrorCode.EXCEPTION);
      assert.equal(e1.method, SUBSCRIBE);
      assert.equal(e1.message, 'too many subscriptions on this connection (limit 2)');
      assert.deepEqual(errors, [e1]);
      assert.equal(c.subscriberCount('c'), 0);
      assert.equal(c.subscriberCount(), 2);

      // Nothing of the refused topic reaches anyone, even if a server sends it.
      conn.reply({ wslink: '1.0', id: 'publish:c:0', result: 'unwanted' });
      server.publish('a', 'wanted');
      await until(() => gotA.length === 1, 2000, 'topic a');
      assert.equal(gotC.length, 0);

      // The refused topic was never the server's: leaving it withdraws nothing.
      offC1();
      await roundTrip(c);
      assert.deepEqual(declarations(conn), [
        [SUBSCRIBE, 'a'],
        [SUBSCRIBE, 'b'],
        [SUBSCRIBE, 'c'],
      ]);

      // Room made: the topic can be subscribed again.
      offA();
      const later: WslinkError[] = [];
      c.subscribe('c', (m) => gotC.push(m), (e) => later.push(e));
      await roundTrip(c);
      assert.deepEqual([...(conn.declared ?? [])].sort(), ['b', 'c']);
      server.publish('c', 'now');
      await until(() => gotC.length === 1, 2000, 'topic c');
      assert.deepEqual(gotC, ['now']);
      assert.deepEqual(later, []);
      assert.equal(errors.length, 1);
    });

    it('a throwing onRefused is reported as a callback error; the other subscribers are still told', async () => {
      const server = new FakeServer({ generation, capabilities: OURS, maxSubscriptions: 0 });
      const { c, errors } = await connected(server);
      const told: WslinkError[] = [];
      c.subscribe('t', () => {}, () => {
        throw new Error('onRefused bug');
      });
      c.subscribe('t', () => {}, (e) => told.push(e));
      await until(() => errors.length === 2, 2000, 'two errors');
      assert.deepEqual(
        errors.map((e) => e.kind).sort(),
        ['callback', 'server'],
      );
      const callbackError = errors.find((e) => e.kind === 'callback');
      assert.match(callbackError?.message ?? '', /onRefused bug/);
      assert.equal(told.length, 1);
      assert.equal(told[0], errors.find((e) => e.kind === 'server'));
      await roundTrip(c);
    });

    it('a refusal meant for subscribers who have left does not drop the next ones', async () => {
      const server = new FakeServer({ generation, capabilities: OURS, maxSubscriptions: 1 });
      const { c, errors } = await connected(server);
      const conn = server.last;
      const offA = c.subscribe('a', () => {});
      await roundTrip(c);
      // All before the server answers: 'b' is refused (the limit), then
      // left, 'a' left, 'b' subscribed again and accepted (room was made).
      const stale: WslinkError[] = [];
      const offB = c.subscribe('b', () => {}, (e) => stale.push(e));
      offB();
      offA();
      const got: unknown[] = [];
      const current: WslinkError[] = [];
      c.subscribe('b', (m) => got.push(m), (e) => current.push(e));
      await roundTrip(c);
      assert.deepEqual(declarations(conn), [
        [SUBSCRIBE, 'a'],
        [SUBSCRIBE, 'b'],
        [UNSUBSCRIBE, 'b'],
        [UNSUBSCRIBE, 'a'],
        [SUBSCRIBE, 'b'],
      ]);
      assert.deepEqual([...(conn.declared ?? [])], ['b']);
      assert.deepEqual(current, [], 'the accepted subscriber was dropped by the earlier refusal');
      assert.deepEqual(stale, [], 'a subscriber that had left was told of a refusal');
      assert.equal(c.subscriberCount('b'), 1);
      server.publish('b', 'kept');
      await until(() => got.length === 1, 2000, 'topic b');
      assert.deepEqual(errors, []);
    });

    it('declares the surviving topics again on the new connection, before any call; changes made while down are applied', async () => {
      const server = new FakeServer({ generation, capabilities: OURS });
      const { c, errors } = await connected(server, reconnecting);
      const first = server.last;
      const offA = c.subscribe('a', () => {});
      const offB = c.subscribe('b', () => {});
      const gotC: unknown[] = [];
      c.subscribe('c', (m) => gotC.push(m));
      c.subscribe('c', () => {});
      offB();
      await roundTrip(c);
      assert.deepEqual([...(first.declared ?? [])], ['a', 'c']);
      const ready: boolean[] = [];
      c.on('ready', (info) => ready.push(info.reconnected));
      first.drop();
      await until(() => c.state === 'reconnecting', 2000, 'reconnecting');
      // While no connection is open, nothing is sent anywhere.
      offA();
      const gotD: unknown[] = [];
      c.subscribe('d', (m) => gotD.push(m));
      await until(() => c.state === 'open', 2000, 'reconnected');
      const second = server.last;
      assert.notEqual(second, first);
      assert.deepEqual(ready, [true]);
      assert.equal(declarations(first).length, 4, 'nothing sent to the dropped connection');
      await roundTrip(c);
      const received = second.received as Received[];
      assert.equal(received[0]?.method, 'wslink.hello');
      assert.deepEqual(
        received.slice(1, 3).map((m) => [m.method, m.args[0]]),
        [
          [SUBSCRIBE, 'c'],
          [SUBSCRIBE, 'd'],
        ],
      );
      assert.ok(received.slice(1, 3).every((m) => m.id.startsWith(`system:${second.clientId}:`)));
      assert.equal(received.length, 4, 'the hello, two declarations and the call');
      server.publish('a', 'gone');
      server.publish('c', 'c');
      server.publish('d', 'd');
      await until(() => gotC.length === 1 && gotD.length === 1, 2000, 'c and d');
      assert.deepEqual(errors, []);
    });

    it('a declaration lost with its connection is not a refusal: it is made again on the next one', async () => {
      const server = new FakeServer({ generation, capabilities: OURS });
      const { c, errors } = await connected(server, reconnecting);
      const first = server.last;
      let release!: () => void;
      server.hold = new Promise((r) => (release = r));
      const refused: WslinkError[] = [];
      const got: unknown[] = [];
      c.subscribe('t', (m) => got.push(m), (e) => refused.push(e));
      await until(() => declarations(first).length === 1, 2000, 'the declaration on the wire');
      first.drop();
      await until(() => c.state === 'reconnecting', 2000, 'reconnecting');
      server.hold = null;
      release(); // the first connection's answer now goes nowhere
      await until(() => c.state === 'open', 2000, 'reconnected');
      await roundTrip(c);
      assert.deepEqual(declarations(server.last), [[SUBSCRIBE, 't']]);
      assert.deepEqual(refused, []);
      assert.deepEqual(errors, []);
      assert.equal(c.subscriberCount('t'), 1);
      server.publish('t', 'after');
      await until(() => got.length === 1, 2000, 'the publish');
    });

    it('never declares to a server without the capability (Kitware\'s); publishes are filtered locally', async () => {
      const server = new FakeServer({ generation });
      const { c, errors } = await connected(server);
      const conn = server.last;
      assert.equal(c.declaresSubscriptions, false);
      const gotA: unknown[] = [];
      const offA1 = c.subscribe('a', (m) => gotA.push(['first', m]));
      c.subscribe('a', (m) => gotA.push(['second', m]));
      const offB = c.subscribe('b', () => assert.fail('b was left'));
      offA1();
      offB();
      await roundTrip(c);
      const system = (conn.received as Received[]).filter((m) => m.id.startsWith('system:'));
      assert.deepEqual(
        system.map((m) => m.method),
        ['wslink.hello'],
      );
      server.publish('b', 'b');
      server.publish('z', 'z');
      server.publish('a', 'a');
      await until(() => gotA.length === 1, 2000, 'topic a');
      await roundTrip(c);
      assert.deepEqual(gotA, [['second', 'a']]);
      assert.deepEqual(errors, []);
    });

    it('declareSubscriptions: false declares nothing to a server that offers it, and still filters locally', async () => {
      const server = new FakeServer({ generation, capabilities: OURS });
      const { c, errors } = await connected(server, { declareSubscriptions: false });
      assert.equal(c.declaresSubscriptions, false);
      const got: unknown[] = [];
      const off = c.subscribe('a', (m) => got.push(m));
      c.subscribe('b', () => {});
      off();
      const gotA: unknown[] = [];
      c.subscribe('a', (m) => gotA.push(m));
      await roundTrip(c);
      assert.deepEqual(declarations(server.last), []);
      assert.equal(server.last.declared, null);
      server.publish('z', 'z');
      server.publish('a', 'a');
      await until(() => gotA.length === 1, 2000, 'topic a');
      assert.deepEqual(got, []);
      assert.deepEqual(errors, []);
    });

    it('fails over from a server that offers it to one that does not: nothing is declared there', async () => {
      const server = new FakeServer({ generation, capabilities: OURS });
      const { c, errors } = await connected(server, reconnecting);
      const got: unknown[] = [];
      c.subscribe('a', (m) => got.push(m));
      await roundTrip(c);
      assert.deepEqual(declarations(server.last), [[SUBSCRIBE, 'a']]);
      server.capabilities = undefined;
      const first = server.last;
      first.drop();
      await until(() => c.state === 'open' && server.last !== first, 2000, 'reconnected');
      await roundTrip(c);
      assert.equal(c.declaresSubscriptions, false);
      assert.deepEqual(declarations(server.last), []);
      server.publish('z', 'z');
      server.publish('a', 'a');
      await until(() => got.length === 1, 2000, 'topic a');
      assert.deepEqual(got, ['a']);
      assert.deepEqual(errors, []);
    });
  });
}

/**
 * The client's own features against real servers: reconnection across a
 * server restart (new hello, subscriptions kept), per-call timeout and
 * AbortSignal, binary input types, int64, and the npm-compatible API.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { connect, WslinkClient, type ConnectionState } from '../src/connection.js';
import { WebsocketConnection, type WebsocketSession } from '../src/compat.js';
import { WslinkError } from '../src/errors.js';
import { available, SERVERS, startServer, type RunningServer } from './servers.js';

const running: RunningServer[] = [];
const clients: WslinkClient[] = [];
after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(running.map((s) => s.stop()));
});

async function start(spec: (typeof SERVERS)[number], port?: number): Promise<RunningServer> {
  const server = await startServer(spec, 'integration-secret', port);
  assert.ok(server, `${spec.name} not available`);
  running.push(server);
  return server;
}

function pattern(size: number, seed: number): Uint8Array<ArrayBuffer> {
  return Uint8Array.from({ length: size }, (_, i) => (i * 31 + seed) % 251);
}

function waitFor<T>(client: WslinkClient, event: 'ready' | 'disconnect', ms = 15_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`no ${event} within ${ms} ms`));
    }, ms);
    client.once(event, ((info: T) => {
      clearTimeout(timer);
      resolve(info);
    }) as never);
  });
}

for (const spec of SERVERS) {
  for (const generation of spec.generations) {
    describe(`${spec.name}, wslink ${generation}.x`, { skip: available(spec) ? false : `${spec.name} is not installed` }, () => {
      it('reconnects after a server restart, says hello again and keeps subscriptions', { timeout: 60_000 }, async () => {
        const first = await start(spec);
        const client = new WslinkClient({ url: first.url, secret: first.secret, protocol: generation, reconnect: { initialDelay: 100, maxDelay: 400 } });
        clients.push(client);
        const states: ConnectionState[] = [];
        client.on('state', (s) => states.push(s));
        await client.connect();
        const before = client.clientId;
        const got: unknown[] = [];
        client.subscribe('conformance.topic', (m) => got.push(m));

        const dropped = waitFor<{ willReconnect: boolean }>(client, 'disconnect');
        const pending = client.call('conformance.sleep', [5000]);
        const pendingRejected = assert.rejects(pending, (e: WslinkError) => e.kind === 'disconnected');
        await first.stop();
        assert.equal((await dropped).willReconnect, true);
        await pendingRejected;
        assert.equal(client.state, 'reconnecting');

        const reopened = waitFor<{ reconnected: boolean; clientId: string }>(client, 'ready');
        await start(spec, first.port);
        const info = await reopened;
        assert.equal(info.reconnected, true);
        assert.notEqual(info.clientId, before);
        assert.deepEqual(states.slice(0, 3), ['connecting', 'open', 'reconnecting']);
        assert.equal(states[states.length - 1], 'open');

        assert.equal(await client.call('conformance.publish', ['conformance.topic', 3, 16]), 3);
        const deadline = Date.now() + 5000;
        while (got.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        assert.deepEqual(got, [0, 1, 2].map((seq) => ({ seq, blob: pattern(16, seq) })));
      });

      it('per-call timeout and AbortSignal leave the connection usable', { timeout: 30_000 }, async () => {
        const server = await start(spec);
        const client = await connect({ url: server.url, secret: server.secret, protocol: generation });
        clients.push(client);
        await assert.rejects(client.call('conformance.sleep', [600], {}, { timeout: 50 }), (e: WslinkError) => e.kind === 'timeout');
        const controller = new AbortController();
        const aborted = client.call('conformance.sleep', [300], {}, { signal: controller.signal });
        controller.abort();
        await assert.rejects(aborted, (e: WslinkError) => e.kind === 'aborted');
        assert.equal(await client.call('conformance.add', [2, 3], {}, { timeout: 10_000 }), 5);
        assert.equal(client.inFlight, 0);
      });

      it('binary as ArrayBuffer, Uint8Array, DataView and Blob; int64 exact', { timeout: 30_000 }, async () => {
        const server = await start(spec);
        const client = await connect({ url: server.url, secret: server.secret, protocol: generation });
        clients.push(client);
        const bytes = pattern(300, 1);
        for (const input of [bytes.slice().buffer, bytes, new DataView(bytes.slice().buffer), new Blob([bytes])]) {
          assert.deepEqual(await client.call('conformance.digest', [input]), { len: 300, sum: bytes.reduce((a, b) => a + b, 0) });
        }
        const back = await client.call('conformance.echo', [{ list: [new Uint16Array([0x0201]), { ab: new ArrayBuffer(3) }] }]);
        assert.deepEqual(back, { list: [Uint8Array.from([1, 2]), { ab: new Uint8Array(3) }] });
        const ints = [2 ** 53 - 1, 2 ** 32, 9007199254740993n, -9223372036854775808n, 18446744073709551615n];
        assert.deepEqual(await client.call('conformance.echo', [ints]), ints);
        assert.equal(await client.call('conformance.add', [9007199254740991, 2]), 9007199254740993n);
      });

      it('wrong secret: -32000, no retry', { timeout: 30_000 }, async () => {
        const server = await start(spec);
        await assert.rejects(
          connect({ url: server.url, secret: 'wrong', protocol: generation, reconnect: true }),
          (e: WslinkError) => e.code === -32000 && e.kind === 'server',
        );
      });

      it('npm-compatible API: WebsocketConnection, session.call, subscribe with [result], addAttachment', { timeout: 30_000 }, async () => {
        const server = await start(spec);
        const connection = WebsocketConnection.newInstance({ urls: server.url, secret: server.secret, protocol: generation });
        try {
          const session = await new Promise<WebsocketSession>((resolve, reject) => {
            connection.onConnectionReady((c) => {
              resolve(c.getSession() as WebsocketSession);
            });
            connection.onConnectionError((_c, e) => {
              reject(e instanceof Error ? e : new Error(String(e)));
            });
            connection.connect();
          });
          assert.equal(await session.call('conformance.add', [20, 22]), 42);
          const got: unknown[] = [];
          const sub = session.subscribe('conformance.topic', (args) => got.push(args));
          await sub.promise;
          await session.call('conformance.publish', ['conformance.topic', 2, 4]);
          const deadline = Date.now() + 5000;
          while (got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
          assert.deepEqual(got, [[{ seq: 0, blob: pattern(4, 0) }], [{ seq: 1, blob: pattern(4, 1) }]]);
          await sub.unsubscribe();
          const key = session.addAttachment(pattern(10, 2).buffer);
          assert.deepEqual(await session.call('conformance.digest', [key]), { len: 10, sum: pattern(10, 2).reduce((a, b) => a + b, 0) });
          await assert.rejects(session.call('conformance.nope'), (e: WslinkError) => e.code === -32601);
        } finally {
          connection.destroy(0);
        }
      });
    });
  }
}

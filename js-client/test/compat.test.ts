import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { SmartConnect, WebsocketConnection, type WebsocketConnection as Connection, type WebsocketSession } from '../src/compat.js';
import { WslinkError } from '../src/errors.js';
import SmartConnectDefault from '../src/SmartConnect.js';
import WebsocketConnectionDefault from '../src/WebsocketConnection.js';
import { guardConsole } from './helpers/console-guard.js';
import { FakeServer, until } from './helpers/fake-server.js';

guardConsole();

const live: { destroy(timeout?: number): void }[] = [];
afterEach(() => {
  for (const c of live.splice(0)) c.destroy(0);
});

function newConnection(server: FakeServer, extra: Record<string, unknown> = {}): Connection {
  const connection = WebsocketConnection.newInstance({ urls: 'ws://fake/ws', WebSocket: server.WebSocket, protocol: server.generation, ...extra });
  live.push(connection);
  return connection;
}

function ready(connection: Connection): Promise<WebsocketSession> {
  return new Promise((resolve, reject) => {
    connection.onConnectionReady((c) => {
      assert.equal(c, connection);
      const s = c.getSession();
      if (s) resolve(s);
      else reject(new Error('no session'));
    });
    connection.onConnectionError((_c, e) => reject(e instanceof Error ? e : new Error(String(e))));
  });
}

for (const generation of [2, 1] as const) {
  describe(`npm-compatible API over wslink ${generation}.x`, () => {
    it('WebsocketConnection.newInstance({urls, secret}).connect() returns the session; ready fires after hello', async () => {
      const server = new FakeServer({ generation, secret: 's' });
      const connection = newConnection(server, { secret: 's' });
      const isReady = ready(connection);
      const session = connection.connect();
      assert.ok(session);
      assert.equal(connection.getSession(), session);
      assert.equal(connection.connect(), session, 'connect() again while connected returns the same session');
      assert.equal(await isReady, session);
      assert.equal(connection.getUrl(), 'ws://fake/ws');
      assert.ok(connection.isA('WebsocketConnection'));
      assert.ok(session.isA('Session'));
      assert.equal(await session.call('test.add', [2, 3]), 5);
      assert.deepEqual(await session.call('test.kwargs'), { args: [], kwargs: {} });
    });

    it('rejects with {code, message, data} like npm wslink', async () => {
      const server = new FakeServer({ generation });
      const connection = newConnection(server);
      const isReady = ready(connection);
      const session = connection.connect() as WebsocketSession;
      await isReady;
      await assert.rejects(session.call('nope'), (e: WslinkError) => e.code === -32601 && e.message === 'Unregistered method called' && e.data === 'nope');
    });

    it('calls before ready are rejected with -32099 (as npm wslink)', async () => {
      const server = new FakeServer({ generation });
      const connection = newConnection(server);
      const isReady = ready(connection);
      const session = connection.connect() as WebsocketSession;
      await assert.rejects(session.call('test.add', [1, 2]), (e: WslinkError) => e.code === -32099);
      const sub = session.subscribe('t', () => {});
      await assert.rejects(sub.promise, (e: WslinkError) => e.code === -32099 && /connection not open/.test(e.message));
      await isReady;
    });

    it('subscribe: callback gets [result]; unsubscribe semantics as npm wslink', async () => {
      const server = new FakeServer({ generation });
      const connection = newConnection(server);
      const isReady = ready(connection);
      const session = connection.connect() as WebsocketSession;
      await isReady;
      const got: unknown[] = [];
      const callback = (args: unknown[]): void => {
        got.push(args);
      };
      const sub = session.subscribe('viewport.image.push', callback);
      assert.equal(sub.topic, 'viewport.image.push');
      assert.equal(sub.callback, callback);
      assert.deepEqual(await sub.promise, { topic: 'viewport.image.push', callback });
      server.publish('viewport.image.push', { image: Uint8Array.from([1, 2]) });
      await until(() => got.length === 1);
      assert.deepEqual(got, [[{ image: Uint8Array.from([1, 2]) }]]);
      await sub.unsubscribe();
      await assert.rejects(session.unsubscribe({ topic: 'viewport.image.push', callback }), (e: WslinkError) => /callback not found/.test(e.message));
      await assert.rejects(session.unsubscribe({ topic: 'never', callback }), (e: WslinkError) => /not subscribed/.test(e.message));
      server.publish('viewport.image.push', 'late');
      assert.equal(await session.call('test.add', [0, 0]), 0);
      assert.equal(got.length, 1);
    });

    it('addAttachment works as in npm wslink of the same generation', async () => {
      const server = new FakeServer({ generation });
      const connection = newConnection(server);
      const isReady = ready(connection);
      const session = connection.connect() as WebsocketSession;
      await isReady;
      const payload = Uint8Array.from([7, 8, 9]).buffer;
      const attached = session.addAttachment(payload);
      if (generation === 2) assert.ok(attached instanceof DataView);
      else assert.match(attached as string, /^wslink_bin\d+$/);
      const back = await session.call('test.echo', [{ data: attached }]);
      assert.deepEqual(back, { data: Uint8Array.from([7, 8, 9]) });
    });

    it('destroy() asks the server to exit later (application.exit.later) and closes, as npm wslink', async () => {
      const server = new FakeServer({ generation });
      const connection = WebsocketConnection.newInstance({ urls: 'ws://fake/ws', WebSocket: server.WebSocket, protocol: generation });
      const isReady = ready(connection);
      connection.connect();
      await isReady;
      const conn = server.last;
      connection.destroy();
      await until(() => conn.socket.readyState === 3);
      const last = conn.received[conn.received.length - 1] as { method: string; args: unknown[] };
      assert.deepEqual([last.method, last.args], ['application.exit.later', [10]]);
      assert.equal(connection.onConnectionReady(() => {}), null);
    });

    it('fires ConnectionClose once when the connection drops, and ConnectionError when it cannot connect', async () => {
      const server = new FakeServer({ generation });
      const connection = newConnection(server);
      const closes: unknown[] = [];
      connection.onConnectionClose((_c, e) => closes.push(e));
      const isReady = ready(connection);
      connection.connect();
      await isReady;
      server.last.drop();
      await until(() => closes.length === 1);
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(closes.length, 1);
      assert.equal((closes[0] as { code: number }).code, 1006);

      server.refuse = true;
      const errors: unknown[] = [];
      const c2 = newConnection(server);
      c2.onConnectionError((_c, e) => errors.push(e));
      const sub = c2.onConnectionClose(() => closes.push('second'));
      assert.ok(sub);
      c2.connect();
      await until(() => errors.length === 1 && closes.length === 2);
      assert.ok(errors[0] instanceof WslinkError);
      assert.equal((errors[0]).kind, 'connect-failed');
    });

    it('reports an unknown URL scheme through ConnectionError', async () => {
      const server = new FakeServer({ generation });
      const connection = newConnection(server, { urls: ['http://fake/ws'] });
      const errors: unknown[] = [];
      connection.onConnectionError((_c, e) => errors.push(e));
      assert.equal(connection.connect(), null);
      await until(() => errors.length === 1);
      assert.match((errors[0] as Error).message, /Unknown protocol \(http\)/);
    });

    it('SmartConnect with a sessionURL', async () => {
      const server = new FakeServer({ generation, secret: 'abc' });
      const smart = SmartConnect.newInstance({ config: { sessionURL: 'ws://fake/ws', secret: 'abc', WebSocket: server.WebSocket, protocol: generation } });
      live.push(smart);
      assert.ok(smart.isA('SmartConnect'));
      const session = await new Promise<WebsocketSession>((resolve) => {
        smart.onConnectionReady((c) => resolve(c.getSession() as WebsocketSession));
        smart.connect();
      });
      assert.equal(smart.getSession(), session);
      assert.equal(await session.call('test.add', [20, 22]), 42);
      assert.equal(smart.getConfig().sessionURL, 'ws://fake/ws');
    });
  });
}

describe('npm-style default exports', () => {
  it('wslink-client/SmartConnect and wslink-client/WebsocketConnection have newInstance', () => {
    assert.equal(SmartConnectDefault.newInstance, SmartConnect.newInstance);
    assert.equal(WebsocketConnectionDefault.newInstance, WebsocketConnection.newInstance);
  });
});

describe('SmartConnect with a launcher', () => {
  it('POSTs the config to sessionManagerURL and connects to the sessionURL it answers', async () => {
    const server = new FakeServer({ generation: 2, secret: 'from-launcher' });
    const savedFetch = globalThis.fetch;
    const requests: { url: string; body: unknown }[] = [];
    let first = true;
    globalThis.fetch = ((url: string, init: { body: string }) => {
      requests.push({ url, body: JSON.parse(init.body) });
      if (first) {
        first = false;
        return Promise.resolve(new Response('busy', { status: 503 }));
      }
      return Promise.resolve(new Response(JSON.stringify({ sessionURL: 'ws://fake/ws', secret: 'from-launcher' }), { status: 200 }));
    }) as typeof fetch;
    try {
      const smart = SmartConnect.newInstance({
        config: { sessionManagerURL: 'http://launcher/paraview/', application: 'visualizer', launcherRetry: [1], WebSocket: server.WebSocket },
      });
      live.push(smart);
      const ok = new Promise((resolve) => smart.onConnectionReady(resolve));
      smart.connect();
      await ok;
      assert.equal(requests.length, 2);
      assert.equal(requests[0]!.url, 'http://launcher/paraview/');
      assert.equal((requests[0]?.body as { application: string }).application, 'visualizer');
      assert.equal(await smart.getSession()?.call('test.add', [1, 1]), 2);
    } finally {
      globalThis.fetch = savedFetch;
    }
  });
});

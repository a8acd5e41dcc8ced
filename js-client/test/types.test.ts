/**
 * Compile-time checks of the public types (the file must type-check), plus
 * a trivial runtime test so that the runner lists it.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { ClientOptions, WebSocketConstructor, WebsocketSession } from '../src/index.js';
import { WebsocketConnection } from '../src/index.js';

// The DOM's WebSocket class is accepted as options.WebSocket.
const domWebSocket: WebSocketConstructor | undefined = typeof WebSocket === 'undefined' ? undefined : WebSocket;
const options: ClientOptions = { url: 'ws://localhost:1234/ws', WebSocket: domWebSocket, protocol: 1, reconnect: { maxAttempts: 3 } };

// The npm client's calling style type-checks as written for it.
function npmStyle(session: WebsocketSession): void {
  void session.call('a.b', [1], { k: 2 }).then((r: unknown) => r);
  const { promise, unsubscribe } = session.subscribe('topic', ([value]) => value);
  void promise.then(() => unsubscribe());
  session.addAttachment(new ArrayBuffer(1));
}

it('public types compile', () => {
  assert.equal(typeof npmStyle, 'function');
  assert.equal(options.protocol, 1);
  assert.equal(typeof WebsocketConnection.newInstance, 'function');
});

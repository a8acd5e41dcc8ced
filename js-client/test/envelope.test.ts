import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classify, helloRequest, readHello, request } from '../src/envelope.js';
import { errorFromEnvelope, ErrorCode, WslinkError, isWslinkError } from '../src/errors.js';
import { Emitter } from '../src/events.js';
import { NPM_ID_PATTERN, parseId, rpcId } from '../src/ids.js';

describe('ids', () => {
  it('builds ids the npm client can route', () => {
    assert.match(rpcId('c5e0afc3e77c14c49b7d8a9c8e6570e1c', 12), NPM_ID_PATTERN);
    assert.equal(rpcId('c1', 0), 'rpc:c1:0');
  });

  it('parses rpc, publish and system ids, topics with any character', () => {
    assert.deepEqual(parseId('rpc:c1:42'), { type: 'rpc', clientId: 'c1', n: 42 });
    assert.deepEqual(parseId('publish:viewport.image.push:0'), { type: 'publish', topic: 'viewport.image.push', n: 0 });
    assert.deepEqual(parseId('publish:a-b:c:7'), { type: 'publish', topic: 'a-b:c', n: 7 });
    assert.deepEqual(parseId('system:c0:0'), { type: 'system', name: 'c0', n: 0 });
    for (const bad of ['rpc:c1', 'rpc::1', 'other:x:1', 'publish:t:x', '']) assert.equal(parseId(bad), null, bad);
  });
});

describe('envelopes', () => {
  it('requests carry wslink, id, method, args, kwargs in that order', () => {
    assert.deepEqual(Object.keys(request('rpc:c1:0', 'm')), ['wslink', 'id', 'method', 'args', 'kwargs']);
    assert.deepEqual(helloRequest('s'), { wslink: '1.0', id: 'system:c0:0', method: 'wslink.hello', args: [{ secret: 's' }], kwargs: {} });
  });

  it('classifies incoming messages', () => {
    assert.deepEqual(classify({ wslink: '1.0', id: 'rpc:c1:0', result: null }), { kind: 'result', id: 'rpc:c1:0', result: null });
    assert.deepEqual(classify({ id: 'rpc:c1:0', error: { code: 1, message: 'm' } }), { kind: 'error', id: 'rpc:c1:0', error: { code: 1, message: 'm' } });
    assert.deepEqual(classify({ id: 'rpc:c1:0', error: null, result: 2 }), { kind: 'result', id: 'rpc:c1:0', result: 2 });
    assert.deepEqual(classify({ wslink: '1.0', method: 'wslink.binary.attachment', args: ['wslink_bin0'] }), { kind: 'attachment-header', keys: ['wslink_bin0'] });
    assert.equal(classify({ method: 'x' })?.kind, 'notification');
    for (const bad of [null, 1, 'x', [], { id: 1, result: 1 }, { id: 'rpc:c1:0' }]) assert.equal(classify(bad), null);
  });

  it('reads hello replies of both generations', () => {
    assert.deepEqual(readHello({ clientID: 'c1', maxMsgSize: 4194304 }), { clientID: 'c1', maxMsgSize: 4194304 });
    assert.deepEqual(readHello({ clientID: 'c1' }), { clientID: 'c1' });
    assert.deepEqual(readHello({ clientID: 'c1', maxMsgSize: 4194304n }), { clientID: 'c1', maxMsgSize: 4194304 });
    assert.equal(readHello({}), null);
    assert.equal(readHello('c1'), null);
  });
});

describe('errors', () => {
  it('WslinkError is an Error with code, message, data, kind', () => {
    const e = errorFromEnvelope({ code: -32000, message: 'Authentication failed' }, 'wslink.hello');
    assert.ok(e instanceof Error);
    assert.ok(isWslinkError(e));
    assert.equal(e.name, 'WslinkError');
    assert.equal(e.code, ErrorCode.AUTHENTICATION);
    assert.equal(e.kind, 'server');
    assert.equal(e.method, 'wslink.hello');
    assert.deepEqual(e.toJSON(), { code: -32000, message: 'Authentication failed' });
    assert.equal('data' in e, false);
  });

  it('tolerates malformed error bodies', () => {
    assert.deepEqual(errorFromEnvelope('boom').toJSON(), { code: -32099, message: 'Malformed error reply', data: 'boom' });
    assert.deepEqual(errorFromEnvelope({ code: 'x' }).toJSON(), { code: -32099, message: 'Malformed error reply' });
  });

  it('client errors default to code -32099', () => {
    const e = new WslinkError(ErrorCode.CLIENT, 'x', { kind: 'timeout' });
    assert.equal(e.kind, 'timeout');
  });
});

describe('Emitter', () => {
  it('on/once/off, and listener errors do not stop other listeners', () => {
    const errors: unknown[] = [];
    const e = new Emitter<{ a: [number] }>((err) => errors.push(err));
    const seen: number[] = [];
    const off = e.on('a', (n) => seen.push(n));
    e.on('a', () => {
      throw new Error('x');
    });
    e.once('a', (n) => seen.push(n * 10));
    e.emit('a', 1);
    e.emit('a', 2);
    off();
    e.emit('a', 3);
    assert.deepEqual(seen, [1, 10, 2]);
    assert.equal(errors.length, 3);
    assert.equal(e.listenerCount('a'), 1);
  });
});

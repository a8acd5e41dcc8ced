import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CodecV1, utf8LongerThan } from '../src/codec-v1.js';
import { helloRequest, request } from '../src/envelope.js';
import { WslinkError } from '../src/errors.js';

/** `decode` throws a protocol error matching `pattern`, with close code `code`. */
function throwsProtocol(f: () => unknown, pattern: RegExp, code = 1002): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof WslinkError, String(e));
    assert.equal(e.kind, 'protocol');
    assert.equal(e.code, -32099);
    assert.equal(e.closeCode, code, e.message);
    assert.match(e.message, pattern);
    return true;
  });
}

const header = (key: string): string => JSON.stringify({ wslink: '1.0', method: 'wslink.binary.attachment', args: [key] });

function resultOf(codec: CodecV1, frames: (string | Uint8Array)[]): unknown {
  const out = frames.flatMap((f) => codec.decode(f));
  assert.equal(out.length, 1, 'one message');
  const m = out[0];
  assert.equal(m?.kind, 'result');
  return (m as { result: unknown }).result;
}

describe('CodecV1 encoding', () => {
  it('sends the hello as one JSON text frame', () => {
    const frames = new CodecV1().encode(helloRequest('s3cret'));
    assert.deepEqual(frames, ['{"wslink":"1.0","id":"system:c0:0","method":"wslink.hello","args":[{"secret":"s3cret"}],"kwargs":{}}']);
  });

  it('sends each binary argument as header + binary frame before the call', () => {
    const codec = new CodecV1();
    const a = Uint8Array.from([1, 2]);
    const b = Uint8Array.from([3]).buffer;
    const frames = codec.encode(request('rpc:c1:0', 'm', [{ a, list: [b] }], { k: new DataView(new ArrayBuffer(1)) }));
    assert.equal(frames.length, 7);
    const call = JSON.parse(frames[6] as string) as { args: [{ a: string; list: [string] }]; kwargs: { k: string } };
    const keys = [call.args[0].a, call.args[0].list[0], call.kwargs.k];
    for (const key of keys) assert.match(key, /^wslink_bin\d+$/);
    assert.equal(new Set(keys).size, 3);
    assert.deepEqual(frames.slice(0, 6), [header(keys[0] as string), a, header(keys[1] as string), new Uint8Array(b), header(keys[2] as string), new Uint8Array(1)]);
  });

  it('addAttachment: returns a key whose bytes go just before the first call using it (as npm wslink 1.x)', () => {
    const codec = new CodecV1();
    const key = codec.addAttachment(Uint8Array.from([9, 9]));
    assert.match(key, /^wslink_bin\d+$/);
    assert.deepEqual(codec.encode(request('rpc:c1:0', 'other', [1])), ['{"wslink":"1.0","id":"rpc:c1:0","method":"other","args":[1],"kwargs":{}}']);
    const frames = codec.encode(request('rpc:c1:1', 'm', [key]));
    assert.deepEqual(frames, [header(key), Uint8Array.from([9, 9]), `{"wslink":"1.0","id":"rpc:c1:1","method":"m","args":["${key}"],"kwargs":{}}`]);
    // Sent once: a second use sends only the key.
    assert.equal(codec.encode(request('rpc:c1:2', 'm', [key])).length, 1);
  });

  it('reads Blobs given to addAttachment before encoding', async () => {
    const codec = new CodecV1();
    const key = codec.addAttachment(new Blob([Uint8Array.from([4, 5])]));
    const pending = codec.resolvePendingBlobs();
    assert.ok(pending);
    await pending;
    assert.equal(codec.resolvePendingBlobs(), null);
    assert.deepEqual(codec.encode(request('rpc:c1:0', 'm', [key]))[1], Uint8Array.from([4, 5]));
  });

  it('writes bigints as exact integers and non-finite numbers as null', () => {
    const frames = new CodecV1().encode(request('rpc:c1:0', 'm', [18446744073709551615n, -9223372036854775808n, NaN, Infinity]));
    assert.equal(frames[0], '{"wslink":"1.0","id":"rpc:c1:0","method":"m","args":[18446744073709551615,-9223372036854775808,null,null],"kwargs":{}}');
  });

  it('does not touch the caller’s arguments', () => {
    const bytes = new Uint8Array(1);
    const args = [{ bytes }];
    new CodecV1().encode(request('rpc:c1:0', 'm', args));
    assert.equal(args[0]?.bytes, bytes);
  });
});

describe('CodecV1 decoding', () => {
  it('pairs binary frames with announced keys and substitutes them in the result', () => {
    const codec = new CodecV1();
    const result = resultOf(codec, [
      header('wslink_bin0'),
      Uint8Array.from([1]),
      JSON.stringify({ wslink: '1.0', method: 'wslink.binary.attachment', args: ['wslink_bin1', 'wslink_bin2'] }),
      Uint8Array.from([2]),
      Uint8Array.from([3]),
      '{"wslink": "1.0", "id": "rpc:c1:0", "result": {"a": "wslink_bin0", "b": ["wslink_bin1", {"c": "wslink_bin2"}], "d": "wslink_bin7"}}',
    ]);
    assert.deepEqual(result, { a: Uint8Array.from([1]), b: [Uint8Array.from([2]), { c: Uint8Array.from([3]) }], d: 'wslink_bin7' });
    assert.equal(codec.unclaimedAttachments, 0);
  });

  it('substitutes a bare key result', () => {
    const codec = new CodecV1();
    assert.deepEqual(resultOf(codec, [header('wslink_bin3'), Uint8Array.from([7]), '{"id": "rpc:c1:0", "result": "wslink_bin3"}']), Uint8Array.from([7]));
  });

  it('keeps attachments across interleaved messages (Python does not send them atomically)', () => {
    const codec = new CodecV1();
    codec.decode(header('wslink_bin5'));
    codec.decode(Uint8Array.from([5]));
    assert.deepEqual(resultOf(codec, [header('wslink_bin6'), Uint8Array.from([6]), '{"id": "publish:t:0", "result": {"b": "wslink_bin6"}}']), { b: Uint8Array.from([6]) });
    assert.deepEqual(resultOf(codec, ['{"id": "publish:t:0", "result": {"b": "wslink_bin5"}}']), { b: Uint8Array.from([5]) });
  });

  it('drops unclaimed attachments after maxAttachmentAge messages', () => {
    const codec = new CodecV1({ limits: { maxAttachmentAge: 3 } });
    codec.decode(header('wslink_bin1'));
    codec.decode(Uint8Array.from([1]));
    for (let i = 0; i < 3; i += 1) codec.decode(`{"id": "rpc:c1:${i}", "result": 0}`);
    assert.equal(codec.unclaimedAttachments, 1);
    codec.decode('{"id": "rpc:c1:9", "result": 0}');
    assert.equal(codec.unclaimedAttachments, 0);
    assert.deepEqual(resultOf(codec, ['{"id": "rpc:c1:10", "result": "wslink_bin1"}']), 'wslink_bin1');
  });

  it('bounds unclaimed attachments by count and bytes: the oldest are dropped, with a notice', () => {
    const errors: WslinkError[] = [];
    const codec = new CodecV1({ limits: { maxAttachments: 2, maxAttachmentBytes: 10 }, report: (e) => errors.push(e) });
    for (let i = 0; i < 3; i += 1) {
      codec.decode(header(`wslink_bin${i}`));
      codec.decode(new Uint8Array(2));
    }
    assert.equal(codec.unclaimedAttachments, 2);
    codec.decode(header('wslink_bin9'));
    codec.decode(new Uint8Array(9));
    assert.equal(codec.unclaimedAttachments, 1);
    assert.ok(errors.length > 0 && errors.every((e) => e.kind === 'protocol' && e.closeCode === undefined && /dropped/.test(e.message)));
    // One attachment larger than all of them may hold is a protocol error.
    codec.decode(header('wslink_bin10'));
    throwsProtocol(() => codec.decode(new Uint8Array(11)), /exceeds the limit of 10 bytes for attachments held/, 1009);
  });

  it('throws on a binary frame without header, malformed JSON and non-envelopes', () => {
    const codec = new CodecV1();
    throwsProtocol(() => codec.decode(new Uint8Array(3)), /without an attachment header/);
    throwsProtocol(() => codec.decode('{nope'), /Malformed JSON/);
    throwsProtocol(() => codec.decode('[1, 2]'), /not a wslink envelope/);
    throwsProtocol(() => codec.decode('{"id": 3, "result": 1}'), /not a wslink envelope/);
  });

  it('throws on text and binary frames over maxTextSize / maxAttachmentSize', () => {
    const codec = new CodecV1({ limits: { maxTextSize: 20 } });
    assert.deepEqual(codec.decode('{"wslink": "1.0"}   '), []);
    throwsProtocol(() => codec.decode('{"wslink": "1.0"}    '), /Text frame over the limit of 20 bytes/, 1009);
    throwsProtocol(() => codec.decode('{"wslink": "é"}     '), /Text frame over the limit of 20 bytes/, 1009);
    const attachments = new CodecV1({ limits: { maxAttachmentSize: 4 } });
    attachments.decode(header('wslink_bin1'));
    attachments.decode(new Uint8Array(4));
    throwsProtocol(() => attachments.decode(new Uint8Array(5)), /Binary frame of 5 bytes over the limit of 4 bytes/, 1009);
  });

  it('counts UTF-8 bytes without encoding', () => {
    const cases: [string, number][] = [
      ['', 0],
      ['abc', 3],
      ['é', 2],
      ['€', 3],
      ['😀', 4],
      ['a😀é€', 10],
      ['\ud800', 3], // a lone surrogate (U+FFFD when encoded)
      ['\ud800a', 4],
    ];
    for (const [text, bytes] of cases) {
      assert.equal(new TextEncoder().encode(text).byteLength, bytes, JSON.stringify(text));
      assert.equal(utf8LongerThan(text, bytes), false, JSON.stringify(text));
      if (bytes > 0) assert.equal(utf8LongerThan(text, bytes - 1), true, JSON.stringify(text));
    }
  });

  it('ignores notifications without id', () => {
    const errors: WslinkError[] = [];
    const codec = new CodecV1({ report: (e) => errors.push(e) });
    assert.deepEqual(codec.decode('{"wslink": "1.0", "method": "something.else"}'), []);
    assert.equal(errors.length, 0);
  });

  it('keeps big integers exact and reads NaN', () => {
    const codec = new CodecV1();
    const r = resultOf(codec, ['{"wslink": "1.0", "id": "rpc:c1:0", "result": [18446744073709551615, NaN]}']) as unknown[];
    assert.equal(r[0], 18446744073709551615n);
    assert.ok(Number.isNaN(r[1]));
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decode as msgpackDecode, encode as msgpackEncode } from '@msgpack/msgpack';
import { chunkMessage, decodeHeader, HEADER_LENGTH } from '../src/chunking.js';
import { CodecV2 } from '../src/codec-v2.js';
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

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function fromHex(text: string): Uint8Array {
  return Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
}

function reply(message: unknown, maxMsgSize = 4 << 20): Uint8Array[] {
  return chunkMessage(msgpackEncode(message, { useBigInt64: true }), maxMsgSize);
}

function argsOf(codec: CodecV2, args: unknown[]): unknown[] {
  const bytes = codec.encodeMessage(request('rpc:c1:0', 'm', args));
  return (msgpackDecode(bytes, { useBigInt64: true }) as { args: unknown[] }).args;
}

describe('CodecV2 encoding', () => {
  it('encodes the hello of PROTOCOL.md byte for byte', () => {
    const codec = new CodecV2();
    const frames = chunkMessage(codec.encodeMessage(helloRequest('wslink-secret')), 512 * 1024, 0x04030201);
    assert.equal(frames.length, 1);
    assert.equal(
      hex(frames[0] as Uint8Array),
      hex(
        fromHex(`01 02 03 04 00 00 00 00 53 00 00 00 85 a6 77 73
          6c 69 6e 6b a3 31 2e 30 a2 69 64 ab 73 79 73 74
          65 6d 3a 63 30 3a 30 a6 6d 65 74 68 6f 64 ac 77
          73 6c 69 6e 6b 2e 68 65 6c 6c 6f a4 61 72 67 73
          91 81 a6 73 65 63 72 65 74 ad 77 73 6c 69 6e 6b
          2d 73 65 63 72 65 74 a6 6b 77 61 72 67 73 80`),
      ),
    );
  });

  it('encodes the call math.add(2, 3) of PROTOCOL.md', () => {
    const bytes = new CodecV2().encodeMessage(request('rpc:c7:0', 'math.add', [2, 3]));
    assert.equal(
      hex(bytes),
      hex(fromHex(`85 a6 77 73 6c 69 6e 6b a3 31 2e 30 a2 69 64 a8 72 70 63 3a
        63 37 3a 30 a6 6d 65 74 68 6f 64 a8 6d 61 74 68 2e 61 64 64 a4 61 72 67 73 92 02 03 a6 6b 77 61
        72 67 73 80`)),
    );
  });

  it('writes integers in their smallest integer form, int64/uint64 beyond 32 bits', () => {
    const codec = new CodecV2();
    const bytes = codec.encodeMessage(request('i', 'm', [4294967296, -2147483649, 2 ** 53 - 1, 1.5, 2 ** 60]));
    const s = hex(bytes);
    assert.ok(s.includes('cf0000000100000000'), 'uint64 4294967296');
    assert.ok(s.includes('d3ffffffff7fffffff'), 'int64 -2147483649');
    assert.ok(s.includes('cf001fffffffffffff'), 'uint64 2^53-1');
    assert.ok(s.includes('cb3ff8000000000000'), 'float64 1.5');
    assert.ok(s.includes('cb43b0000000000000'), 'float64 2^60 (a number beyond 2^53 is a float)');
  });

  it('sends bigints exactly and refuses those beyond 64 bits', () => {
    const codec = new CodecV2();
    assert.deepEqual(argsOf(codec, [18446744073709551615n, -9223372036854775808n, 5n]), [18446744073709551615n, -9223372036854775808n, 5n]);
    assert.throws(() => codec.encode(request('i', 'm', [18446744073709551616n])), (e: WslinkError) => e.kind === 'encoding' && /64 bits/.test(e.message));
    assert.throws(() => codec.encode(request('i', 'm', [-9223372036854775809n])), (e: WslinkError) => e.kind === 'encoding');
  });

  it('accepts ArrayBuffer, Uint8Array, DataView and other typed arrays as bin', () => {
    const codec = new CodecV2();
    const buf = Uint8Array.from([1, 2, 3, 4]).buffer;
    const args = argsOf(codec, [buf, new Uint8Array(buf, 1, 2), new DataView(buf, 2), new Uint16Array([0x0201]), { deep: [buf] }]);
    const expect = (v: unknown, bytes: number[]): void => {
      assert.ok(v instanceof Uint8Array);
      assert.deepEqual([...v], bytes);
    };
    expect(args[0], [1, 2, 3, 4]);
    expect(args[1], [2, 3]);
    expect(args[2], [3, 4]);
    expect(args[3], [1, 2]);
    expect(((args[4] as { deep: unknown[] }).deep)[0], [1, 2, 3, 4]);
  });

  it('does not touch the caller’s arguments', () => {
    const buf = new ArrayBuffer(2);
    const args = [{ a: buf, n: 2 ** 40 }];
    new CodecV2().encode(request('i', 'm', args));
    assert.equal(args[0]!.a, buf);
    assert.equal(args[0]!.n, 2 ** 40);
  });

  it('drops undefined map values (as JSON does) and refuses Blobs not yet read', () => {
    const codec = new CodecV2();
    assert.deepEqual(argsOf(codec, [{ a: undefined, b: 1 }]), [{ b: 1 }]);
    assert.throws(() => codec.encode(request('i', 'm', [new Blob([])])), (e: WslinkError) => e.kind === 'encoding');
  });

  it('chunks at 512 KiB until the hello reply, then at maxMsgSize', () => {
    const codec = new CodecV2();
    const big = new Uint8Array(1_200_000);
    const frames = codec.encode(request('i', 'm', [big])) as Uint8Array[];
    assert.equal(frames.length, 3);
    assert.ok(frames.every((f) => f.byteLength <= 512 * 1024));
    codec.setMaxMsgSize(4 << 20);
    assert.equal(codec.encode(request('i', 'm', [big])).length, 1);
    codec.reset();
    assert.equal(codec.frameLimit, 512 * 1024);
  });

  it('every frame of a message shares one id', () => {
    const frames = new CodecV2().encode(request('i', 'm', [new Uint8Array(2_000_000)])) as Uint8Array[];
    assert.equal(new Set(frames.map((f) => decodeHeader(f).id)).size, 1);
    assert.ok(frames.every((f) => f.byteLength > HEADER_LENGTH));
  });
});

describe('CodecV2 decoding', () => {
  it('classifies results and errors', () => {
    const codec = new CodecV2();
    const [frame1] = reply({ wslink: '1.0', id: 'rpc:c1:0', result: 5 });
    assert.deepEqual(codec.decode(frame1 as Uint8Array), [{ kind: 'result', id: 'rpc:c1:0', result: 5 }]);
    const [frame2] = reply({ wslink: '1.0', id: 'rpc:c1:1', error: { code: -32601, message: 'Unregistered method called', data: 'nope' } });
    assert.deepEqual(codec.decode(frame2 as Uint8Array), [
      { kind: 'error', id: 'rpc:c1:1', error: { code: -32601, message: 'Unregistered method called', data: 'nope' } },
    ]);
  });

  it('reassembles chunked replies', () => {
    const codec = new CodecV2();
    const blob = new Uint8Array(100_000).map((_, i) => i % 251);
    const frames = reply({ wslink: '1.0', id: 'rpc:c1:0', result: { blob } }, 30_000);
    assert.equal(frames.length, 4);
    const out = frames.flatMap((f) => codec.decode(f));
    assert.equal(out.length, 1);
    const first = out[0];
    assert.equal(first?.kind, 'result');
    assert.deepEqual((first as { result: { blob: Uint8Array } }).result.blob, blob);
  });

  const INT64 = [9007199254740993n, -9007199254740993n, 9223372036854775807n, -9223372036854775808n, 18446744073709551615n];

  it("int64 'auto': numbers when exact, bigints beyond 2^53", () => {
    const codec = new CodecV2();
    const [f] = reply({ id: 'rpc:c1:0', result: [...INT64, 4294967296n, 9007199254740991n, -1] });
    const [m] = codec.decode(f as Uint8Array);
    assert.deepEqual((m as { result: unknown }).result, [...INT64, 4294967296, 9007199254740991, -1]);
  });

  it("int64 'bigint': every 64-bit integer is a bigint", () => {
    const codec = new CodecV2({ int64: 'bigint' });
    const [f] = reply({ id: 'rpc:c1:0', result: [4294967296n, 1] });
    const [m] = codec.decode(f as Uint8Array);
    assert.deepEqual((m as { result: unknown }).result, [4294967296n, 1]);
  });

  it("int64 'number': rounds like the npm client", () => {
    const codec = new CodecV2({ int64: 'number' });
    const [f] = reply({ id: 'rpc:c1:0', result: [9007199254740993n] });
    const [m] = codec.decode(f as Uint8Array);
    assert.deepEqual((m as { result: unknown }).result, [9007199254740992]);
  });

  it("binaryType 'blob' delivers Blobs", async () => {
    const codec = new CodecV2({ binaryType: 'blob' });
    const [f] = reply({ id: 'rpc:c1:0', result: { b: Uint8Array.from([1, 2]) } });
    const [m] = codec.decode(f as Uint8Array);
    const b = (m as { result: { b: Blob } }).result.b;
    assert.ok(b instanceof Blob);
    assert.deepEqual([...new Uint8Array(await b.arrayBuffer())], [1, 2]);
  });

  it('throws a protocol error on malformed input', () => {
    const codec = new CodecV2();
    throwsProtocol(() => codec.decode('{"text": "frame"}'), /Text frame/);
    throwsProtocol(() => codec.decode(chunkMessage(Uint8Array.from([0xc1]), 100)[0] as Uint8Array), /Malformed msgpack/);
    throwsProtocol(() => codec.decode(reply([1, 2, 3])[0] as Uint8Array), /not a wslink envelope/);
    throwsProtocol(() => codec.decode(reply({ id: 5, result: 1 })[0] as Uint8Array), /not a wslink envelope/);
    throwsProtocol(() => codec.decode(new Uint8Array(3)), /shorter than the 12-byte chunk header/);
  });

  it('applies reassembly limits: a size limit is thrown with close code 1009', () => {
    const codec = new CodecV2({ limits: { maxMessageSize: 1000 } });
    const frames = reply({ id: 'rpc:c1:0', result: new Uint8Array(5000) }, 1000);
    throwsProtocol(() => codec.decode(frames[0] as Uint8Array), /exceeds the limit of 1000 bytes/, 1009);
    // After reset() the codec decodes again.
    codec.reset();
    assert.deepEqual(codec.decode(reply({ id: 'rpc:c1:1', result: 1 })[0] as Uint8Array), [{ kind: 'result', id: 'rpc:c1:1', result: 1 }]);
  });

  it('addAttachment: returns the payload, an ArrayBuffer wrapped in a DataView (as npm wslink 2.x)', () => {
    const codec = new CodecV2();
    const ab = new ArrayBuffer(4);
    const wrapped = codec.addAttachment(ab);
    assert.ok(wrapped instanceof DataView);
    assert.equal(wrapped.buffer, ab);
    const u8 = new Uint8Array(2);
    assert.equal(codec.addAttachment(u8), u8);
  });
});

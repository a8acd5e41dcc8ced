import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chunkMessage, decodeHeader, encodeHeader, HEADER_LENGTH, Reassembler } from '../src/chunking.js';
import type { WslinkError } from '../src/errors.js';

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex').replace(/(..)/g, '$1 ').trim();
}

function frame(id: number, offset: number, total: number, content: number[] | Uint8Array): Uint8Array {
  const body = content instanceof Uint8Array ? content : Uint8Array.from(content);
  const out = new Uint8Array(HEADER_LENGTH + body.byteLength);
  encodeHeader({ id, offset, size: total }, out);
  out.set(body, HEADER_LENGTH);
  return out;
}

function collector(): { errors: WslinkError[]; report: (e: WslinkError) => void } {
  const errors: WslinkError[] = [];
  return { errors, report: (e) => errors.push(e) };
}

describe('chunk header', () => {
  it('is 12 bytes, little-endian id, offset, total', () => {
    const h = encodeHeader({ id: 0x04030201, offset: 8, size: 40 });
    assert.equal(hex(h), '01 02 03 04 08 00 00 00 28 00 00 00');
    assert.deepEqual(decodeHeader(h), { id: 0x04030201, offset: 8, size: 40 });
  });

  it('decodes from a view with a byte offset', () => {
    const buf = new Uint8Array(20);
    encodeHeader({ id: 0xffffffff, offset: 1, size: 2 }, buf.subarray(5, 17));
    assert.deepEqual(decodeHeader(buf.subarray(5)), { id: 0xffffffff, offset: 1, size: 2 });
  });

  it('rejects frames shorter than the header', () => {
    assert.throws(() => decodeHeader(new Uint8Array(11)), /shorter than the 12-byte/);
  });
});

describe('chunkMessage', () => {
  it('reproduces the chunked example of PROTOCOL.md (maxMsgSize 20)', () => {
    // The msgpack of {wslink: "1.0", id: "rpc:c7:0", result: "chunked!"}.
    const message = Uint8Array.from(Buffer.from('83a677736c696e6ba3312e30a26964a87270633a63373a30a6726573756c74a86368756e6b656421', 'hex'));
    assert.equal(message.byteLength, 40);
    const frames = chunkMessage(message, 20, 0x04030201);
    assert.deepEqual(frames.map(hex), [
      '01 02 03 04 00 00 00 00 28 00 00 00 83 a6 77 73 6c 69 6e 6b',
      '01 02 03 04 08 00 00 00 28 00 00 00 a3 31 2e 30 a2 69 64 a8',
      '01 02 03 04 10 00 00 00 28 00 00 00 72 70 63 3a 63 37 3a 30',
      '01 02 03 04 18 00 00 00 28 00 00 00 a6 72 65 73 75 6c 74 a8',
      '01 02 03 04 20 00 00 00 28 00 00 00 63 68 75 6e 6b 65 64 21',
    ]);
  });

  it('never makes a frame larger than maxMsgSize, header included', () => {
    const message = new Uint8Array(10_000).map((_, i) => i % 256);
    for (const max of [13, 100, 4096, 9999, 10_012, 10_013, 1 << 20]) {
      const frames = chunkMessage(message, max);
      assert.ok(frames.every((f) => f.byteLength <= max), `max ${max}`);
      const ids = new Set(frames.map((f) => decodeHeader(f).id));
      assert.equal(ids.size, 1);
      const r = new Reassembler();
      const out = frames.map((f) => r.push(f)).filter((m) => m !== null);
      assert.equal(out.length, 1);
      assert.deepEqual(out[0], message);
    }
  });

  it('sends at least one content byte per frame and no limit for 0', () => {
    assert.equal(chunkMessage(new Uint8Array(3), 5).length, 3);
    assert.equal(chunkMessage(new Uint8Array(3), 12).length, 3);
    assert.equal(chunkMessage(new Uint8Array(100_000), 0).length, 1);
  });

  it('uses a fresh random id per message', () => {
    const ids = new Set(Array.from({ length: 50 }, () => decodeHeader(chunkMessage(new Uint8Array(1), 100)[0] as Uint8Array).id));
    assert.ok(ids.size > 45);
  });
});

describe('Reassembler', () => {
  it('returns a single-frame message without copying it', () => {
    const f = frame(1, 0, 3, [7, 8, 9]);
    const m = new Reassembler().push(f);
    assert.ok(m);
    assert.deepEqual([...m], [7, 8, 9]);
    assert.equal(m.buffer, f.buffer);
  });

  it('accepts chunks out of order and interleaved across messages', () => {
    const r = new Reassembler();
    assert.equal(r.push(frame(1, 4, 6, [5, 6])), null);
    assert.equal(r.push(frame(2, 2, 4, [13, 14])), null);
    assert.equal(r.push(frame(1, 0, 6, [1, 2])), null);
    assert.deepEqual([...(r.push(frame(2, 0, 4, [11, 12])) ?? [])], [11, 12, 13, 14]);
    assert.equal(r.pendingMessages, 1);
    assert.deepEqual([...(r.push(frame(1, 2, 6, [3, 4])) ?? [])], [1, 2, 3, 4, 5, 6]);
    assert.equal(r.pendingMessages, 0);
    assert.equal(r.pendingBytes, 0);
  });

  it('holds only the bytes received, never the declared size', () => {
    const r = new Reassembler({ maxMessageSize: 0xffffffff });
    assert.equal(r.push(frame(9, 0, 0xffffffff, [1, 2, 3])), null);
    assert.equal(r.pendingBytes, 3);
    assert.equal(r.pendingMessages, 1);
  });

  const bad: [string, Uint8Array[], RegExp][] = [
    ['overlapping chunks', [frame(1, 0, 10, [1, 2, 3, 4]), frame(1, 2, 10, [3, 4])], /overlaps/],
    ['a duplicate chunk', [frame(1, 0, 10, [1, 2]), frame(1, 0, 10, [1, 2])], /overlaps/],
    ['a chunk past the end', [frame(1, 8, 10, [1, 2, 3])], /runs past the declared size/],
    ['a changing total', [frame(1, 0, 10, [1, 2]), frame(1, 2, 11, [3])], /total size changed/],
    ['a total of 0', [frame(1, 0, 0, [])], /total size of 0/],
    ['an empty chunk', [frame(1, 0, 10, [])], /empty chunk/],
    ['a short frame', [new Uint8Array(5)], /shorter than the 12-byte/],
  ];
  for (const [what, frames, pattern] of bad) {
    it(`reports ${what} and drops the message`, () => {
      const { errors, report } = collector();
      const r = new Reassembler({}, report);
      for (const f of frames) assert.equal(r.push(f), null);
      assert.equal(errors.length, 1);
      const [first] = errors;
      assert.ok(first);
      assert.match(first.message, pattern);
      assert.equal(first.kind, 'protocol');
      assert.equal(first.code, -32099);
      assert.equal(r.pendingMessages, 0);
      assert.equal(r.pendingBytes, 0);
    });
  }

  it('ignores later chunks of a dropped message quietly', () => {
    const { errors, report } = collector();
    const r = new Reassembler({ maxMessageSize: 100 }, report);
    r.push(frame(5, 0, 1000, [1]));
    r.push(frame(5, 1, 1000, [2]));
    r.push(frame(5, 2, 1000, [3]));
    assert.equal(errors.length, 1);
    assert.match(errors[0]?.message ?? '', /exceeds the limit of 100 bytes/);
  });

  it('bounds the bytes held by partial messages', () => {
    const { errors, report } = collector();
    const r = new Reassembler({ maxPendingBytes: 10 }, report);
    assert.equal(r.push(frame(1, 0, 100, new Uint8Array(6))), null);
    assert.equal(r.push(frame(2, 0, 100, new Uint8Array(6))), null);
    assert.equal(errors.length, 1);
    assert.match(errors[0]?.message ?? '', /more than 10 bytes/);
    assert.equal(r.pendingBytes, 6);
    // The other message goes on.
    assert.equal(r.push(frame(1, 6, 10, new Uint8Array(4))), null, 'total mismatch is dropped');
    assert.equal(r.pendingBytes, 0);
  });

  it('drops the oldest partial message beyond maxPendingMessages', () => {
    const { errors, report } = collector();
    const r = new Reassembler({ maxPendingMessages: 2 }, report);
    r.push(frame(1, 0, 4, [1]));
    r.push(frame(2, 0, 4, [1]));
    r.push(frame(3, 0, 4, [1]));
    assert.equal(r.pendingMessages, 2);
    assert.equal(errors.length, 1);
    assert.match(errors[0]?.message ?? '', /Chunked message 1 dropped/);
    assert.deepEqual([...(r.push(frame(3, 1, 4, [2, 3, 4])) ?? [])], [1, 2, 3, 4]);
  });

  it('reset forgets everything', () => {
    const r = new Reassembler();
    r.push(frame(1, 0, 4, [1]));
    r.reset();
    assert.equal(r.pendingMessages, 0);
    assert.equal(r.pendingBytes, 0);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseJson, stringifyJson } from '../src/json.js';

describe('parseJson', () => {
  it('keeps integers beyond 2^53 exact as bigint', () => {
    const text = '[9007199254740993, -9007199254740993, 9223372036854775807, -9223372036854775808, 18446744073709551615, 9007199254740991, 1.5, 1e300, 12345678901234567.0]';
    assert.deepEqual(parseJson(text), [
      9007199254740993n,
      -9007199254740993n,
      9223372036854775807n,
      -9223372036854775808n,
      18446744073709551615n,
      9007199254740991,
      1.5,
      1e300,
      12345678901234568,
    ]);
  });

  it("rounds like JSON.parse in 'number' mode", () => {
    assert.deepEqual(parseJson('[9007199254740993]', 'number'), [9007199254740992]);
  });

  it('reads NaN and infinities (Python json.dumps writes them)', () => {
    const v = parseJson('{"a": NaN, "b": Infinity, "c": -Infinity, "d": [1, -2]}') as Record<string, unknown>;
    assert.ok(Number.isNaN(v.a));
    assert.equal(v.b, Infinity);
    assert.equal(v.c, -Infinity);
    assert.deepEqual(v.d, [1, -2]);
  });

  it('reads strings with escapes and raw UTF-8 in the slow path', () => {
    const s = 'a\u0000b ☃ 😀 日本語 e\u0301 "q" \\ /';
    const text = `{"n": 12345678901234567890, "s": ${JSON.stringify(s)}, "raw": "☃"}`;
    assert.deepEqual(parseJson(text), { n: 12345678901234567890n, s, raw: '☃' });
  });

  it('keeps __proto__ as an own key', () => {
    const v = parseJson('{"__proto__": {"x": 1}, "n": 12345678901234567890}') as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(v), Object.prototype);
    assert.deepEqual(Object.keys(v), ['__proto__', 'n']);
    assert.equal(({} as Record<string, unknown>).x, undefined);
  });

  it('rejects malformed text', () => {
    for (const bad of ['', '[1,', '{"a" 1}', 'nul', '[1] x', '"abc', '{"a":1,}', '01x']) {
      assert.throws(() => parseJson(bad), SyntaxError, bad);
    }
  });

  it('handles deep nesting up to the limit and refuses beyond', () => {
    assert.doesNotThrow(() => parseJson(`${'['.repeat(200)}1${']'.repeat(200)} `.replace('1', '12345678901234567890')));
    assert.throws(() => parseJson(`${'['.repeat(300)}12345678901234567890${']'.repeat(300)}`), /nested deeper/);
  });
});

describe('stringifyJson', () => {
  it('writes bigints as JSON integers', () => {
    assert.equal(stringifyJson({ a: [1n, -18446744073709551615n], b: 'x', c: undefined, d: 1.5 }), '{"a":[1,-18446744073709551615],"b":"x","d":1.5}');
  });

  it('matches JSON.stringify without bigints', () => {
    const v = { a: [1, null, undefined, 'é'], b: { c: true }, d: NaN };
    assert.equal(stringifyJson(v), JSON.stringify(v));
  });

  it('follows toJSON and drops functions like JSON.stringify', () => {
    const date = new Date(0);
    assert.equal(stringifyJson({ big: 2n, date, f: () => 1, arr: [() => 1] }), `{"big":2,"date":${JSON.stringify(date)},"arr":[null]}`);
  });

  it('round-trips through parseJson', () => {
    const v = { ints: [0, -1, 9007199254740991, 9007199254740993n, -9223372036854775808n, 18446744073709551615n], f: [0.5, -2.5e-300], s: 'x' };
    assert.deepEqual(parseJson(stringifyJson(v)), v);
  });
});

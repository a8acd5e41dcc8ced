/**
 * JSON for wslink 1.x, without silent loss of integers.
 *
 * `JSON.parse` turns 9007199254740993 into 9007199254740992. When a text
 * contains a run of 16 or more digits (the only way to spell an integer
 * beyond 2^53) it is read by the small parser below instead, which returns
 * integers beyond Number.MAX_SAFE_INTEGER as `bigint`. The same parser also
 * accepts `NaN`, `Infinity` and `-Infinity`, which Python's `json.dumps`
 * writes for non-finite floats (the npm 1.x client reads them with JSON5).
 *
 * On the way out, `bigint` values are written as plain JSON integers (which
 * Python reads exactly); `JSON.stringify` would throw on them.
 */
import { MAX_DEPTH } from './binary.js';
import { isPlainObject } from './envelope.js';

export type Int64Mode = 'auto' | 'bigint' | 'number';

const LONG_DIGITS = /\d{16}/;

export function parseJson(text: string, int64: Int64Mode = 'auto'): unknown {
  if (int64 === 'number' || !LONG_DIGITS.test(text)) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      // NaN / Infinity, or really malformed: the parser below decides.
    }
  }
  return new Parser(text, int64 !== 'number').parse();
}

class Parser {
  private pos = 0;
  constructor(
    private readonly text: string,
    private readonly bigints: boolean,
  ) {}

  parse(): unknown {
    const value = this.value(0);
    this.ws();
    if (this.pos !== this.text.length) this.fail('unexpected text after the value');
    return value;
  }

  private fail(why: string): never {
    throw new SyntaxError(`JSON: ${why} at position ${this.pos}`);
  }

  private ws(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) this.pos += 1;
      else break;
    }
  }

  private literal(word: string, value: unknown): unknown {
    if (this.text.startsWith(word, this.pos)) {
      this.pos += word.length;
      return value;
    }
    return this.fail('unexpected token');
  }

  private value(depth: number): unknown {
    if (depth > MAX_DEPTH) this.fail(`nested deeper than ${MAX_DEPTH} levels`);
    this.ws();
    const c = this.text[this.pos];
    switch (c) {
      case '{':
        return this.object(depth);
      case '[':
        return this.array(depth);
      case '"':
        return this.string();
      case 't':
        return this.literal('true', true);
      case 'f':
        return this.literal('false', false);
      case 'n':
        return this.literal('null', null);
      case 'N':
        return this.literal('NaN', NaN);
      case 'I':
        return this.literal('Infinity', Infinity);
      case '-':
        if (this.text.startsWith('-Infinity', this.pos)) return this.literal('-Infinity', -Infinity);
        return this.number();
      default:
        if (c !== undefined && c >= '0' && c <= '9') return this.number();
        return this.fail(c === undefined ? 'unexpected end' : 'unexpected token');
    }
  }

  private static readonly NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;

  private number(): number | bigint {
    const re = Parser.NUMBER;
    re.lastIndex = this.pos;
    const m = re.exec(this.text);
    if (!m) return this.fail('malformed number');
    const token = m[0];
    this.pos += token.length;
    const n = Number(token);
    if (this.bigints && m[1] === undefined && m[2] === undefined && !Number.isSafeInteger(n)) return BigInt(token);
    return n;
  }

  private string(): string {
    const t = this.text;
    const start = this.pos;
    let i = start + 1;
    let escaped = false;
    for (;;) {
      const c = t.charCodeAt(i);
      if (Number.isNaN(c)) {
        this.pos = i;
        this.fail('unterminated string');
      }
      if (c === 0x22) break;
      if (c === 0x5c) {
        escaped = true;
        i += 2;
      } else {
        i += 1;
      }
    }
    this.pos = i + 1;
    if (!escaped) return t.slice(start + 1, i);
    return JSON.parse(t.slice(start, i + 1)) as string;
  }

  private array(depth: number): unknown[] {
    this.pos += 1;
    const out: unknown[] = [];
    this.ws();
    if (this.text[this.pos] === ']') {
      this.pos += 1;
      return out;
    }
    for (;;) {
      out.push(this.value(depth + 1));
      this.ws();
      const c = this.text[this.pos];
      this.pos += 1;
      if (c === ']') return out;
      if (c !== ',') this.fail("expected ',' or ']'");
    }
  }

  private object(depth: number): Record<string, unknown> {
    this.pos += 1;
    const out: Record<string, unknown> = {};
    this.ws();
    if (this.text[this.pos] === '}') {
      this.pos += 1;
      return out;
    }
    for (;;) {
      this.ws();
      if (this.text[this.pos] !== '"') this.fail('expected a key');
      const key = this.string();
      this.ws();
      if (this.text[this.pos] !== ':') this.fail("expected ':'");
      this.pos += 1;
      const value = this.value(depth + 1);
      if (key === '__proto__') Object.defineProperty(out, key, { value, writable: true, enumerable: true, configurable: true });
      else out[key] = value;
      this.ws();
      const c = this.text[this.pos];
      this.pos += 1;
      if (c === '}') return out;
      if (c !== ',') this.fail("expected ',' or '}'");
    }
  }
}

/** True if a bigint appears anywhere in `value` (arrays and plain objects). */
export function containsBigInt(value: unknown, depth = 0): boolean {
  if (typeof value === 'bigint') return true;
  if (depth > MAX_DEPTH) return false;
  if (Array.isArray(value)) return value.some((v) => containsBigInt(v, depth + 1));
  if (isPlainObject(value)) return Object.keys(value).some((k) => containsBigInt(value[k], depth + 1));
  return false;
}

/**
 * `JSON.stringify`, except that bigints are written as JSON integers.
 * Falls back to `JSON.stringify` itself when there is no bigint.
 */
export function stringifyJson(value: unknown): string {
  if (!containsBigInt(value)) return jsonText(value) ?? 'null';
  return write(value, 0) ?? 'null';
}

function write(value: unknown, depth: number): string | undefined {
  if (depth > MAX_DEPTH) throw new TypeError(`Value nested deeper than ${MAX_DEPTH} levels (or cyclic)`);
  if (typeof value === 'bigint') return value.toString();
  if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    value = (value as { toJSON: () => unknown }).toJSON();
    if (typeof value === 'bigint') return value.toString();
  }
  if (Array.isArray(value)) {
    return `[${value.map((v) => write(v, depth + 1) ?? 'null').join(',')}]`;
  }
  if (value !== null && typeof value === 'object') {
    const parts: string[] = [];
    for (const key of Object.keys(value)) {
      const v = write((value as Record<string, unknown>)[key], depth + 1);
      if (v !== undefined) parts.push(`${JSON.stringify(key)}:${v}`);
    }
    return `{${parts.join(',')}}`;
  }
  return jsonText(value);
}

/** `JSON.stringify`, typed as what it really returns (undefined for undefined, functions, symbols). */
function jsonText(value: unknown): string | undefined {
  return JSON.stringify(value);
}

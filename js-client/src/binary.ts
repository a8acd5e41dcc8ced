/**
 * Binary values: what counts as binary on the way out, and helpers to walk
 * argument trees without copying what does not change.
 */
import { isPlainObject } from './envelope.js';
import { clientError } from './errors.js';

/** Binary values accepted in arguments (at any depth). */
export type BinaryInput = ArrayBufferLike | ArrayBufferView | Blob;

/** Maximum nesting of arrays/maps walked or encoded. */
export const MAX_DEPTH = 256;

export function isBlob(value: unknown): value is Blob {
  return typeof Blob !== 'undefined' && value instanceof Blob;
}

function isArrayBufferLike(value: unknown): value is ArrayBuffer | SharedArrayBuffer {
  return (
    value instanceof ArrayBuffer ||
    (typeof SharedArrayBuffer !== 'undefined' && value instanceof SharedArrayBuffer)
  );
}

/** True for ArrayBuffer, SharedArrayBuffer and every ArrayBufferView (typed arrays, DataView). */
export function isBinary(value: unknown): value is ArrayBuffer | SharedArrayBuffer | ArrayBufferView {
  return isArrayBufferLike(value) || ArrayBuffer.isView(value);
}

/** A Uint8Array over the same bytes (no copy). */
export function toUint8Array(value: ArrayBuffer | SharedArrayBuffer | ArrayBufferView): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  return new Uint8Array(value);
}

/**
 * Rebuilds `value` with `leaf` applied to every value that is not an array
 * or a plain object. Containers are copied only when something below them
 * changed, so an argument tree without special values is returned as is.
 */
export function mapLeaves(value: unknown, leaf: (v: unknown) => unknown, depth = 0): unknown {
  if (depth > MAX_DEPTH) throw clientError('encoding', `Value nested deeper than ${MAX_DEPTH} levels (or cyclic)`);
  if (Array.isArray(value)) {
    let out: unknown[] | null = null;
    for (let i = 0; i < value.length; i += 1) {
      const v: unknown = value[i];
      const r = mapLeaves(v, leaf, depth + 1);
      if (r !== v) {
        out ??= value.slice();
        out[i] = r;
      }
    }
    return out ?? value;
  }
  if (isPlainObject(value)) {
    let out: Record<string, unknown> | null = null;
    for (const key of Object.keys(value)) {
      const v = value[key];
      const r = mapLeaves(v, leaf, depth + 1);
      if (r !== v) {
        out ??= { ...value };
        setOwn(out, key, r);
      }
    }
    return out ?? value;
  }
  return leaf(value);
}

/**
 * True when arrays and plain objects nest more than `max` levels deep in
 * `value` (a flat array is one level). The walk goes no deeper than
 * `max + 1` levels, so it cannot overflow the stack whatever it is given
 * (decoders build 100,000-level values without recursion; walking them
 * naively would not survive).
 */
export function nestedDeeperThan(value: unknown, max: number, depth = 0): boolean {
  if (Array.isArray(value)) {
    if (depth >= max) return true;
    return value.some((v) => nestedDeeperThan(v, max, depth + 1));
  }
  if (isPlainObject(value)) {
    if (depth >= max) return true;
    return Object.keys(value).some((k) => nestedDeeperThan(value[k], max, depth + 1));
  }
  return false;
}

/** True if a Blob appears anywhere in `value` (arrays and plain objects). */
export function containsBlob(value: unknown, depth = 0): boolean {
  if (depth > MAX_DEPTH) return false;
  if (isBlob(value)) return true;
  if (Array.isArray(value)) return value.some((v) => containsBlob(v, depth + 1));
  if (isPlainObject(value)) return Object.keys(value).some((k) => containsBlob(value[k], depth + 1));
  return false;
}

/** Replaces every Blob in `value` by a Uint8Array of its bytes. */
export async function resolveBlobs(value: unknown): Promise<unknown> {
  const blobs: Blob[] = [];
  mapLeaves(value, (v) => {
    if (isBlob(v)) blobs.push(v);
    return v;
  });
  if (blobs.length === 0) return value;
  const bytes = new Map<Blob, Uint8Array>();
  await Promise.all(
    blobs.map(async (b) => {
      bytes.set(b, new Uint8Array(await b.arrayBuffer()));
    }),
  );
  return mapLeaves(value, (v) => (isBlob(v) ? bytes.get(v) : v));
}

/** Copies bytes into a new Blob (for the `binaryType: 'blob'` option). */
export function toBlob(bytes: Uint8Array): Blob {
  return new Blob([bytes as Uint8Array<ArrayBuffer>]);
}

/**
 * Rewrites a freshly decoded value in place: `leaf` is applied to every
 * value that is not an array or a plain object, and its result stored.
 * Returns the (possibly replaced) root.
 */
export function rewriteLeaves(value: unknown, leaf: (v: unknown) => unknown, depth = 0): unknown {
  if (depth > MAX_DEPTH) return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i += 1) value[i] = rewriteLeaves(value[i], leaf, depth + 1);
    return value;
  }
  if (isPlainObject(value)) {
    for (const key of Object.keys(value)) {
      const v = value[key];
      const r = rewriteLeaves(v, leaf, depth + 1);
      if (r === v) continue;
      setOwn(value, key, r);
    }
    return value;
  }
  return leaf(value);
}

/** `obj[key] = value`, except that a `__proto__` key becomes an own property. */
export function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
  else obj[key] = value;
}

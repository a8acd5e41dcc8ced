/**
 * wslink 2.x: msgpack messages in chunked binary frames.
 *
 * Integers: a safe JS integer is sent in msgpack's smallest integer form
 * (int64/uint64 beyond 32 bits, never as a float); a bigint is sent as
 * int64 (negative) or uint64 and must fit there. A JS number that is not a
 * safe integer (a float, or an integer already beyond 2^53) is a float64.
 * On the way in, see {@link CodecOptions.int64}.
 */
import { Decoder, Encoder } from '@msgpack/msgpack';
import { isBinary, isBlob, mapLeaves, MAX_DEPTH, nestedDeeperThan, rewriteLeaves, toBlob, toUint8Array } from './binary.js';
import { chunkMessage, DEFAULT_MAX_MSG_SIZE, Reassembler } from './chunking.js';
import type { Codec, CodecOptions, Frame } from './codec.js';
import { classify, type Incoming, type RequestEnvelope } from './envelope.js';
import { clientError, protocolError, type WslinkError } from './errors.js';

const INT32_MIN = -0x8000_0000;
const UINT32_MAX = 0xffff_ffff;
const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;
const SAFE_MAX = BigInt(Number.MAX_SAFE_INTEGER);
const SAFE_MIN = -SAFE_MAX;

/** Prepares one argument leaf for @msgpack/msgpack (which runs with useBigInt64). */
function outgoingLeaf(v: unknown): unknown {
  if (typeof v === 'number') {
    // With useBigInt64 the library writes safe integers beyond 32 bits as
    // float64; make them bigints so they go out as int64/uint64.
    if (Number.isSafeInteger(v) && (v > UINT32_MAX || v < INT32_MIN)) return BigInt(v);
    return v;
  }
  if (typeof v === 'bigint') {
    if (v < INT64_MIN || v > UINT64_MAX) throw clientError('encoding', `Integer ${v} does not fit in 64 bits`);
    return v;
  }
  if (isBinary(v)) return toUint8Array(v);
  if (isBlob(v)) throw clientError('encoding', 'Blob arguments must be read before encoding');
  return v;
}

export class CodecV2 implements Codec {
  readonly generation = 2 as const;
  private maxMsgSize = DEFAULT_MAX_MSG_SIZE;
  private readonly encoder = new Encoder({ useBigInt64: true, ignoreUndefined: true, maxDepth: MAX_DEPTH + 2 });
  private readonly decoder: Decoder;
  private readonly reassembler: Reassembler;
  /** The first problem the reassembler reported for the frame being decoded. */
  private fault: WslinkError | null = null;
  private readonly options: CodecOptions;

  constructor(options: CodecOptions = {}) {
    this.options = options;
    this.reassembler = new Reassembler(options.limits, (error) => {
      this.fault ??= error;
    });
    this.decoder = new Decoder({ useBigInt64: (options.int64 ?? 'auto') !== 'number' });
  }

  setMaxMsgSize(size: number): void {
    if (Number.isFinite(size) && size >= 0) this.maxMsgSize = size;
  }

  /** The frame size used for sending (header included). */
  get frameLimit(): number {
    return this.maxMsgSize;
  }

  encodeMessage(message: RequestEnvelope): Uint8Array {
    const prepared: RequestEnvelope = {
      wslink: message.wslink,
      id: message.id,
      method: message.method,
      args: mapLeaves(message.args, outgoingLeaf) as unknown[],
      kwargs: mapLeaves(message.kwargs, outgoingLeaf) as Record<string, unknown>,
    };
    try {
      return this.encoder.encode(prepared);
    } catch (e) {
      throw clientError('encoding', `Cannot encode the arguments of ${message.method}: ${(e as Error).message}`, { cause: e });
    }
  }

  encode(message: RequestEnvelope): Frame[] {
    return chunkMessage(this.encodeMessage(message), this.maxMsgSize);
  }

  decode(frame: string | Uint8Array): Incoming[] {
    if (typeof frame === 'string') {
      throw protocolError('Text frame received on a wslink 2.x connection (2.x sends binary frames only)');
    }
    const bytes = this.reassembler.push(frame);
    const fault = this.fault;
    if (fault !== null) {
      this.fault = null;
      throw fault;
    }
    if (bytes === null) return [];
    let value: unknown;
    try {
      value = this.decoder.decode(bytes);
    } catch (e) {
      throw protocolError(`Malformed msgpack message (${bytes.byteLength} bytes): ${(e as Error).message}`, undefined, { cause: e });
    }
    // msgpack decodes any depth without recursion; what the application
    // (or a recursive walk here) does with 100,000 levels is another story.
    if (nestedDeeperThan(value, MAX_DEPTH)) {
      throw protocolError(`Message nested deeper than ${MAX_DEPTH} levels (${bytes.byteLength} bytes)`);
    }
    value = this.postprocess(value);
    const incoming = classify(value);
    if (incoming === null) {
      throw protocolError('Received a message that is not a wslink envelope');
    }
    return incoming.kind === 'attachment-header' || incoming.kind === 'notification' ? [] : [incoming];
  }

  private postprocess(value: unknown): unknown {
    const auto = (this.options.int64 ?? 'auto') === 'auto';
    const blobs = this.options.binaryType === 'blob';
    if (!auto && !blobs) return value;
    return rewriteLeaves(value, (v) => {
      if (auto && typeof v === 'bigint' && v >= SAFE_MIN && v <= SAFE_MAX) return Number(v);
      if (blobs && v instanceof Uint8Array) return toBlob(v);
      return v;
    });
  }

  addAttachment(payload: ArrayBufferLike | ArrayBufferView | Blob): unknown {
    // As npm wslink 2.x: msgpack carries binary inline; an ArrayBuffer is
    // wrapped in a view so that any msgpack encoder takes it.
    if (payload instanceof ArrayBuffer) return new DataView(payload);
    return payload;
  }

  resolvePendingBlobs(): null {
    return null;
  }

  reset(): void {
    this.reassembler.reset();
    this.fault = null;
    this.maxMsgSize = DEFAULT_MAX_MSG_SIZE;
  }
}

/**
 * What the session needs from a wire format. Two implementations:
 * {@link createCodec}(2) (msgpack, chunked binary frames) and
 * {@link createCodec}(1) (JSON text frames with binary attachments).
 */
import type { ReassemblyLimits } from './chunking.js';
import type { Incoming, RequestEnvelope } from './envelope.js';
import type { WslinkError } from './errors.js';
import type { Int64Mode } from './json.js';
import { CodecV1 } from './codec-v1.js';
import { CodecV2 } from './codec-v2.js';

export type Generation = 1 | 2;

/** A frame to send: text (1.x) or binary. */
export type Frame = string | Uint8Array;

/** How binary values are handed to the application. */
export type BinaryType = 'uint8array' | 'blob';

/** wslink 1.x: bounds on text frames and attachments. */
export interface AttachmentLimits {
  /**
   * 1.x: largest text frame (a JSON message or an attachment header), in
   * UTF-8 bytes. A larger one is a protocol error (close code 1009).
   */
  maxTextSize: number;
  /**
   * 1.x: largest binary frame (one attachment), in bytes. A larger one is a
   * protocol error (close code 1009).
   */
  maxAttachmentSize: number;
  /** 1.x: attachments received and not yet claimed by a message, at most. */
  maxAttachments: number;
  /** 1.x: bytes held by unclaimed attachments, at most. */
  maxAttachmentBytes: number;
  /** 1.x: an unclaimed attachment is dropped after this many messages. */
  maxAttachmentAge: number;
  /** 1.x: keys announced by headers whose binary frame has not come yet, at most. */
  maxAnnouncedKeys: number;
}

export type Limits = ReassemblyLimits & AttachmentLimits;

/**
 * Defaults. `maxTextSize` and `maxAttachmentSize` are the Rust client's
 * (`wslink_client::DEFAULT_MAX_MESSAGE_SIZE`, 256 MiB, which it applies to
 * every frame).
 */
export const DEFAULT_ATTACHMENT_LIMITS: Readonly<AttachmentLimits> = Object.freeze({
  maxTextSize: 256 * 1024 * 1024,
  maxAttachmentSize: 256 * 1024 * 1024,
  maxAttachments: 4096,
  maxAttachmentBytes: 512 * 1024 * 1024,
  maxAttachmentAge: 64,
  maxAnnouncedKeys: 4096,
});

export interface CodecOptions {
  /**
   * How 64-bit integers are decoded.
   * - `auto` (default): a number when it fits in a double exactly
   *   (|n| <= 2^53 - 1), a bigint otherwise. Nothing is ever rounded.
   * - `bigint`: 2.x: every integer the peer encoded on 64 bits is a bigint;
   *   1.x: same as `auto`.
   * - `number`: always a number, rounding beyond 2^53 (the npm client's behaviour).
   */
  int64?: Int64Mode;
  /** How received binary values are delivered (default `uint8array`). */
  binaryType?: BinaryType;
  limits?: Partial<Limits>;
  /**
   * Receives notices that do not stop decoding (1.x: unclaimed attachments
   * dropped to stay within the limits). Protocol errors are thrown by
   * {@link Codec.decode} instead.
   */
  report?: (error: WslinkError) => void;
}

export interface Codec {
  readonly generation: Generation;
  /**
   * Encodes a request into the frames to send, in order. Arguments must not
   * contain Blobs any more (the session reads them first).
   * Throws a WslinkError of kind `encoding` for values it cannot encode.
   */
  encode(message: RequestEnvelope): Frame[];
  /**
   * Takes one received frame; returns the complete messages it yields (0
   * or 1). Throws a WslinkError of kind `protocol` (with its `closeCode`)
   * when the frame breaks the protocol: a malformed or inconsistent frame,
   * a limit crossed. The connection cannot go on after one (the codec's
   * state no longer matches the peer's); `reset()` before reusing it.
   */
  decode(frame: string | Uint8Array): Incoming[];
  /** The peer's frame size limit (2.x hello reply). */
  setMaxMsgSize(size: number): void;
  /**
   * `session.addAttachment()`: 2.x returns the payload itself (an
   * ArrayBuffer wrapped in a DataView); 1.x returns a `wslink_binN` key and
   * sends the bytes before the first call whose arguments hold the key.
   */
  addAttachment(payload: ArrayBufferLike | ArrayBufferView | Blob): unknown;
  /** 1.x: reads Blobs given to addAttachment; null when there is nothing to read. */
  resolvePendingBlobs(): Promise<void> | null;
  /** Forgets all per-connection state (partial messages, attachments). */
  reset(): void;
}

/** A codec for the given wslink generation (2 = msgpack, 1 = JSON + attachments). */
export function createCodec(generation: Generation, options: CodecOptions = {}): Codec {
  return generation === 1 ? new CodecV1(options) : new CodecV2(options);
}

/**
 * wslink 1.x: JSON text frames; binary values travel as attachments.
 *
 * Out: every binary value in a call's arguments (at any depth) is replaced
 * by a fresh `wslink_binN` key, and for each one a text header
 * `{"wslink":"1.0","method":"wslink.binary.attachment","args":[key]}` and a
 * binary frame with the bytes are sent just before the call. Keys returned
 * by `addAttachment()` work the same way, as in the npm 1.x client.
 *
 * In: each binary frame is paired, in order, with the keys announced by
 * headers; when a message arrives, every string in its `result` that is
 * exactly a received key is replaced by the bytes. A key without bytes stays
 * a string. Unclaimed attachments are bounded in number, bytes and age (the
 * Python 1.x server sometimes sends attachments no message refers to): the
 * oldest are dropped, a notice given to `report`.
 *
 * Anything that breaks the protocol (a text frame over `maxTextSize`, a
 * binary frame over `maxAttachmentSize` or without a header, malformed
 * JSON, too deep, not an envelope, a bad key, too many keys announced)
 * is thrown as a protocol error.
 */
import { isBinary, isBlob, mapLeaves, MAX_DEPTH, nestedDeeperThan, rewriteLeaves, toBlob, toUint8Array } from './binary.js';
import { DEFAULT_ATTACHMENT_LIMITS, type AttachmentLimits, type Codec, type CodecOptions, type Frame } from './codec.js';
import { attachmentHeader, classify, type Incoming, type RequestEnvelope } from './envelope.js';
import { clientError, CLOSE_TOO_BIG, protocolError, type WslinkError } from './errors.js';
import { parseJson, stringifyJson } from './json.js';

/**
 * A `wslink_binN` key. N is a counter (Python's is process-wide), so it has
 * at most 20 digits (a u64); longer "keys" from a server are refused, or a
 * few thousand announced keys could each be as long as a text frame.
 */
export const ATTACHMENT_KEY = /^wslink_bin\d{1,20}$/;

/**
 * Whether `text` takes more than `limit` bytes in UTF-8 (the WebSocket
 * decoded it from UTF-8; strings count UTF-16 code units, each 1 to 3
 * bytes, a surrogate pair 4). Stops counting as soon as it is over.
 */
export function utf8LongerThan(text: string, limit: number): boolean {
  const n = text.length;
  if (n > limit) return true;
  if (n * 3 <= limit) return false;
  let bytes = 0;
  for (let i = 0; i < n; i += 1) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < n && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4;
      i += 1;
    } else bytes += 3;
    if (bytes > limit) return true;
  }
  return false;
}

interface Received {
  bytes: Uint8Array;
  /** Message counter when it arrived. */
  seq: number;
}

export class CodecV1 implements Codec {
  readonly generation = 1 as const;
  private readonly options: CodecOptions;
  private readonly limits: AttachmentLimits;
  private readonly report: (error: WslinkError) => void;
  /** Next outgoing key number. Starts at a random value: the Python 1.x server keeps received attachments in one table for all its clients. */
  private nextKey: number;
  /** addAttachment() payloads not sent yet. */
  private readonly explicit = new Map<string, Uint8Array | Blob>();
  /** Keys announced by headers, waiting for their binary frame. */
  private announced: string[] = [];
  private readonly received = new Map<string, Received>();
  private receivedBytes = 0;
  private messages = 0;

  constructor(options: CodecOptions = {}) {
    this.options = options;
    this.limits = { ...DEFAULT_ATTACHMENT_LIMITS, ...options.limits };
    this.report = options.report ?? (() => {});
    this.nextKey = 1 + Math.floor(Math.random() * 1_000_000) * 1000;
  }

  setMaxMsgSize(): void {
    // 1.x never chunks.
  }

  private newKey(): string {
    const key = `wslink_bin${this.nextKey}`;
    this.nextKey += 1;
    return key;
  }

  addAttachment(payload: ArrayBufferLike | ArrayBufferView | Blob): string {
    const key = this.newKey();
    this.explicit.set(key, isBlob(payload) ? payload : toUint8Array(payload));
    // Keys that are never used in a call would otherwise be kept forever.
    if (this.explicit.size > this.limits.maxAttachments) {
      const oldest = this.explicit.keys().next().value as string;
      this.explicit.delete(oldest);
    }
    return key;
  }

  resolvePendingBlobs(): Promise<void> | null {
    const blobs = [...this.explicit].filter((e): e is [string, Blob] => isBlob(e[1]));
    if (blobs.length === 0) return null;
    return Promise.all(
      blobs.map(async ([key, blob]) => {
        const bytes = new Uint8Array(await blob.arrayBuffer());
        if (this.explicit.get(key) === blob) this.explicit.set(key, bytes);
      }),
    ).then(() => undefined);
  }

  encode(message: RequestEnvelope): Frame[] {
    const attachments: [string, Uint8Array][] = [];
    const leaf = (v: unknown): unknown => {
      if (isBinary(v)) {
        const key = this.newKey();
        attachments.push([key, toUint8Array(v)]);
        return key;
      }
      if (typeof v === 'string' && this.explicit.size > 0 && ATTACHMENT_KEY.test(v)) {
        const bytes = this.explicit.get(v);
        if (bytes instanceof Uint8Array) {
          attachments.push([v, bytes]);
          this.explicit.delete(v);
        }
        return v;
      }
      if (isBlob(v)) throw clientError('encoding', 'Blob arguments must be read before encoding');
      if (typeof v === 'number' && !Number.isFinite(v)) return null;
      return v;
    };
    const prepared: RequestEnvelope = {
      wslink: message.wslink,
      id: message.id,
      method: message.method,
      args: mapLeaves(message.args, leaf) as unknown[],
      kwargs: mapLeaves(message.kwargs, leaf) as Record<string, unknown>,
    };
    let text: string;
    try {
      text = stringifyJson(prepared);
    } catch (e) {
      throw clientError('encoding', `Cannot encode the arguments of ${message.method}: ${(e as Error).message}`, { cause: e });
    }
    const frames: Frame[] = [];
    for (const [key, bytes] of attachments) {
      frames.push(JSON.stringify(attachmentHeader([key])), bytes);
    }
    frames.push(text);
    return frames;
  }

  decode(frame: string | Uint8Array): Incoming[] {
    if (typeof frame !== 'string') {
      this.takeAttachment(frame);
      return [];
    }
    if (utf8LongerThan(frame, this.limits.maxTextSize)) {
      throw protocolError(`Text frame over the limit of ${this.limits.maxTextSize} bytes (${frame.length} characters)`, CLOSE_TOO_BIG);
    }
    let value: unknown;
    try {
      value = parseJson(frame, this.options.int64 ?? 'auto');
    } catch (e) {
      throw protocolError(`Malformed JSON message (${frame.length} characters): ${(e as Error).message}`, undefined, { cause: e });
    }
    // JSON.parse builds any depth without recursion.
    if (nestedDeeperThan(value, MAX_DEPTH)) {
      throw protocolError(`Message nested deeper than ${MAX_DEPTH} levels (${frame.length} characters)`);
    }
    const incoming = classify(value);
    if (incoming === null) {
      throw protocolError('Received a message that is not a wslink envelope');
    }
    if (incoming.kind === 'attachment-header') {
      const bad = incoming.keys.find((key) => !ATTACHMENT_KEY.test(key));
      if (bad !== undefined) {
        const shown = bad.length > 64 ? `${bad.slice(0, 64)}... (${bad.length} characters)` : bad;
        throw protocolError(`Attachment header announces ${JSON.stringify(shown)}, which is not a wslink_binN key`);
      }
      if (this.announced.length + incoming.keys.length > this.limits.maxAnnouncedKeys) {
        throw protocolError(`More than ${this.limits.maxAnnouncedKeys} attachment keys announced without their bytes`);
      }
      for (const key of incoming.keys) this.announced.push(key);
      return [];
    }
    if (incoming.kind === 'notification') return [];

    this.messages += 1;
    if (incoming.kind === 'result') incoming.result = this.substitute(incoming.result);
    this.expire();
    return [incoming];
  }

  private substitute(value: unknown): unknown {
    const blobs = this.options.binaryType === 'blob';
    if (this.received.size === 0) return value;
    const used: string[] = [];
    const out = rewriteLeaves(value, (v) => {
      if (typeof v === 'string' && ATTACHMENT_KEY.test(v)) {
        const entry = this.received.get(v);
        if (entry) {
          used.push(v);
          return blobs ? toBlob(entry.bytes) : entry.bytes;
        }
      }
      return v;
    });
    for (const key of used) this.forget(key);
    return out;
  }

  private takeAttachment(bytes: Uint8Array): void {
    const size = bytes.byteLength;
    if (size > this.limits.maxAttachmentSize) {
      throw protocolError(`Binary frame of ${size} bytes over the limit of ${this.limits.maxAttachmentSize} bytes`, CLOSE_TOO_BIG);
    }
    const key = this.announced.shift();
    if (key === undefined) {
      throw protocolError(`Binary frame of ${size} bytes without an attachment header`);
    }
    if (size > this.limits.maxAttachmentBytes) {
      throw protocolError(`Attachment ${key} of ${size} bytes exceeds the limit of ${this.limits.maxAttachmentBytes} bytes for attachments held`, CLOSE_TOO_BIG);
    }
    this.forget(key);
    this.received.set(key, { bytes, seq: this.messages });
    this.receivedBytes += bytes.byteLength;
    // Oldest first (Map keeps insertion order).
    for (const [old] of this.received) {
      if (this.received.size <= this.limits.maxAttachments && this.receivedBytes <= this.limits.maxAttachmentBytes) break;
      this.forget(old);
      this.report(clientError('protocol', `Unclaimed attachment ${old} dropped (attachment limits reached)`));
    }
  }

  /** Drops attachments that no message claimed in maxAttachmentAge messages. */
  private expire(): void {
    for (const [key, entry] of this.received) {
      if (this.messages - entry.seq <= this.limits.maxAttachmentAge) break;
      this.forget(key);
    }
  }

  private forget(key: string): void {
    const entry = this.received.get(key);
    if (!entry) return;
    this.receivedBytes -= entry.bytes.byteLength;
    this.received.delete(key);
  }

  /** Attachments received and not claimed yet (for tests and diagnostics). */
  get unclaimedAttachments(): number {
    return this.received.size;
  }

  reset(): void {
    this.announced = [];
    this.received.clear();
    this.receivedBytes = 0;
    this.messages = 0;
  }
}

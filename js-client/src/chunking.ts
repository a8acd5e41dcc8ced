/**
 * wslink 2.x chunking.
 *
 * Every 2.x message is cut into binary frames of at most `maxMsgSize` bytes
 * (header included). Each frame starts with a 12-byte little-endian header:
 * u32 message id (random, shared by the chunks of one message), u32 offset of
 * the chunk in the message, u32 total size of the message.
 *
 * The {@link Reassembler} accepts chunks in any order and interleaved across
 * messages, like wslink's, but keeps only the bytes that arrived (never the
 * declared size up front), bounds what it holds, and rejects inconsistent
 * chunks instead of writing them.
 */
import { clientError, type WslinkError } from './errors.js';

export const HEADER_LENGTH = 12;
/** What a client may send before the hello reply tells the server's limit. */
export const DEFAULT_MAX_MSG_SIZE = 512 * 1024;
const UINT32_LIMIT = 0x1_0000_0000;

export interface ChunkHeader {
  id: number;
  offset: number;
  size: number;
}

export function encodeHeader(header: ChunkHeader, target = new Uint8Array(HEADER_LENGTH)): Uint8Array {
  const view = new DataView(target.buffer, target.byteOffset, HEADER_LENGTH);
  view.setUint32(0, header.id >>> 0, true);
  view.setUint32(4, header.offset, true);
  view.setUint32(8, header.size, true);
  return target;
}

export function decodeHeader(frame: Uint8Array): ChunkHeader {
  if (frame.byteLength < HEADER_LENGTH) throw clientError('protocol', `Frame of ${frame.byteLength} bytes is shorter than the 12-byte chunk header`);
  const view = new DataView(frame.buffer, frame.byteOffset, HEADER_LENGTH);
  return { id: view.getUint32(0, true), offset: view.getUint32(4, true), size: view.getUint32(8, true) };
}

export function randomMessageId(): number {
  const c = (globalThis as { crypto?: { getRandomValues?: (a: Uint32Array) => Uint32Array } }).crypto;
  if (c?.getRandomValues) return c.getRandomValues(new Uint32Array(1))[0] ?? 0;
  return Math.floor(Math.random() * UINT32_LIMIT) >>> 0;
}

/**
 * Cuts a message into frames of at most `maxMsgSize` bytes, header included
 * (at least 1 content byte per frame). `maxMsgSize` 0 means no limit.
 */
export function chunkMessage(message: Uint8Array, maxMsgSize: number, id: number = randomMessageId()): Uint8Array[] {
  const total = message.byteLength;
  if (total >= UINT32_LIMIT) throw clientError('encoding', `Message of ${total} bytes exceeds the 4 GiB limit of the chunk header`);
  const content = maxMsgSize > 0 ? Math.max(maxMsgSize - HEADER_LENGTH, 1) : Math.max(total, 1);
  const frames: Uint8Array[] = [];
  for (let offset = 0; offset < total; offset += content) {
    const size = Math.min(content, total - offset);
    const frame = new Uint8Array(HEADER_LENGTH + size);
    encodeHeader({ id, offset, size: total }, frame);
    frame.set(message.subarray(offset, offset + size), HEADER_LENGTH);
    frames.push(frame);
  }
  return frames;
}

export interface ReassemblyLimits {
  /** Largest declared message size accepted (bytes). */
  maxMessageSize: number;
  /** Partial messages kept at once; the oldest is dropped beyond. */
  maxPendingMessages: number;
  /** Bytes held by partial messages, all together. */
  maxPendingBytes: number;
}

export const DEFAULT_REASSEMBLY_LIMITS: Readonly<ReassemblyLimits> = Object.freeze({
  maxMessageSize: 512 * 1024 * 1024,
  maxPendingMessages: 64,
  maxPendingBytes: 512 * 1024 * 1024,
});

interface Piece {
  offset: number;
  bytes: Uint8Array;
}

interface Pending {
  total: number;
  received: number;
  /** Sorted by offset, never overlapping. */
  pieces: Piece[];
}

const REJECTED_MEMORY = 64;

export class Reassembler {
  private readonly limits: ReassemblyLimits;
  private readonly report: (error: WslinkError) => void;
  private readonly pending = new Map<number, Pending>();
  /** Ids of messages already dropped: their later chunks are ignored quietly. */
  private readonly rejected = new Set<number>();
  private heldBytes = 0;

  constructor(limits: Partial<ReassemblyLimits> = {}, report: (error: WslinkError) => void = () => {}) {
    this.limits = { ...DEFAULT_REASSEMBLY_LIMITS, ...limits };
    this.report = report;
  }

  /** Number of partial messages held. */
  get pendingMessages(): number {
    return this.pending.size;
  }

  /** Bytes held by partial messages. */
  get pendingBytes(): number {
    return this.heldBytes;
  }

  reset(): void {
    this.pending.clear();
    this.rejected.clear();
    this.heldBytes = 0;
  }

  /**
   * Takes one frame. Returns the whole message when this frame completes
   * one, otherwise `null`. Problems are given to `report` and the message
   * concerned is dropped; this never throws.
   */
  push(frame: Uint8Array): Uint8Array | null {
    let header: ChunkHeader;
    try {
      header = decodeHeader(frame);
    } catch (e) {
      this.report(e as WslinkError);
      return null;
    }
    const { id, offset, size: total } = header;
    const bytes = frame.subarray(HEADER_LENGTH);
    if (this.rejected.has(id)) return null;
    const fail = (why: string): null => {
      this.drop(id);
      this.reject(id);
      this.report(clientError('protocol', `Chunked message ${id}: ${why}`));
      return null;
    };

    if (total === 0) return fail('declares a total size of 0');
    if (bytes.byteLength === 0) return fail(`empty chunk at offset ${offset}`);
    if (total > this.limits.maxMessageSize) return fail(`declared size ${total} exceeds the limit of ${this.limits.maxMessageSize} bytes`);
    if (offset + bytes.byteLength > total) return fail(`chunk [${offset}, ${offset + bytes.byteLength}) runs past the declared size ${total}`);

    let entry = this.pending.get(id);
    if (!entry) {
      // A whole message in one frame: no copy at all.
      if (offset === 0 && bytes.byteLength === total) return bytes;
      if (this.pending.size >= this.limits.maxPendingMessages) {
        const oldest = this.pending.keys().next().value as number;
        this.drop(oldest);
        this.reject(oldest);
        this.report(clientError('protocol', `Chunked message ${oldest} dropped: more than ${this.limits.maxPendingMessages} partial messages`));
      }
      entry = { total, received: 0, pieces: [] };
      this.pending.set(id, entry);
    } else if (entry.total !== total) {
      return fail(`total size changed from ${entry.total} to ${total}`);
    }

    if (this.heldBytes + bytes.byteLength > this.limits.maxPendingBytes) {
      return fail(`partial messages would hold more than ${this.limits.maxPendingBytes} bytes`);
    }
    if (!insertPiece(entry.pieces, { offset, bytes })) {
      return fail(`chunk [${offset}, ${offset + bytes.byteLength}) overlaps bytes already received`);
    }
    entry.received += bytes.byteLength;
    this.heldBytes += bytes.byteLength;

    if (entry.received < total) return null;
    // No overlaps and every piece inside [0, total): the pieces tile the message.
    this.drop(id);
    const message = new Uint8Array(total);
    for (const piece of entry.pieces) message.set(piece.bytes, piece.offset);
    return message;
  }

  private drop(id: number): void {
    const entry = this.pending.get(id);
    if (!entry) return;
    this.heldBytes -= entry.received;
    this.pending.delete(id);
  }

  private reject(id: number): void {
    this.rejected.add(id);
    if (this.rejected.size > REJECTED_MEMORY) {
      const first = this.rejected.values().next().value as number;
      this.rejected.delete(first);
    }
  }
}

/** Inserts keeping the list sorted; false if the piece overlaps another. */
function insertPiece(pieces: Piece[], piece: Piece): boolean {
  const end = piece.offset + piece.bytes.byteLength;
  let i = pieces.length;
  // Chunks nearly always come in order: search from the end.
  while (i > 0 && (pieces[i - 1] as Piece).offset > piece.offset) i -= 1;
  const before = pieces[i - 1];
  if (before && before.offset + before.bytes.byteLength > piece.offset) return false;
  const after = pieces[i];
  if (after && after.offset < end) return false;
  pieces.splice(i, 0, piece);
  return true;
}

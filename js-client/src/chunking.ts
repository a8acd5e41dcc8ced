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
import { clientError, CLOSE_TOO_BIG, protocolError, type WslinkError } from './errors.js';

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
  if (frame.byteLength < HEADER_LENGTH) throw protocolError(`Frame of ${frame.byteLength} bytes is shorter than the 12-byte chunk header`);
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
  /**
   * Bytes held by partial messages, all together: the size of the buffers
   * that hold the chunks received so far (never the declared sizes).
   */
  maxPendingBytes: number;
  /**
   * Separately stored runs of bytes held by partial messages, all together.
   * A chunk that continues a run (chunks in order, as every wslink sender
   * sends them) is appended to it, so a message sent in order costs one run
   * whatever its number of chunks; only chunks that arrive out of order
   * start new runs. Bounds the bookkeeping a server sending scattered
   * one-byte chunks can make the client keep.
   */
  maxPendingChunks: number;
}

/**
 * Defaults: messages of up to 512 MiB, 64 partial messages holding 512 MiB
 * and 4096 runs at most, all together.
 */
export const DEFAULT_REASSEMBLY_LIMITS: Readonly<ReassemblyLimits> = Object.freeze({
  maxMessageSize: 512 * 1024 * 1024,
  maxPendingMessages: 64,
  maxPendingBytes: 512 * 1024 * 1024,
  maxPendingChunks: 4096,
});

/** Contiguous bytes of a partial message: `buf[0, length)` goes at `offset`. */
interface Run {
  offset: number;
  /** Its byteLength is the run's capacity (what it is charged). */
  buf: Uint8Array;
  length: number;
}

interface Pending {
  total: number;
  received: number;
  /** Sorted by offset, never overlapping. */
  runs: Run[];
}

const REJECTED_MEMORY = 64;

/**
 * Reassembles chunked messages.
 *
 * Memory follows what arrived, never what a header declares: chunks that
 * arrive in order are copied into one buffer per message, which grows by
 * doubling (capped at the declared size) and becomes the message without
 * another copy. A message that arrives as one frame is returned as is.
 * Chunks out of order start separate runs, copied together once the message
 * is complete. Everything held counts against {@link ReassemblyLimits}:
 * buffer capacities against `maxPendingBytes`, runs against
 * `maxPendingChunks`, messages against `maxPendingMessages`.
 *
 * Work per chunk is O(log runs), so no order of chunks can make reassembly
 * quadratic.
 */
export class Reassembler {
  private readonly limits: ReassemblyLimits;
  private readonly report: (error: WslinkError) => void;
  private readonly pending = new Map<number, Pending>();
  /** Ids of messages already dropped: their later chunks are ignored quietly. */
  private readonly rejected = new Set<number>();
  private heldBytes = 0;
  private heldRuns = 0;

  constructor(limits: Partial<ReassemblyLimits> = {}, report: (error: WslinkError) => void = () => {}) {
    this.limits = { ...DEFAULT_REASSEMBLY_LIMITS, ...limits };
    this.report = report;
  }

  /** Number of partial messages held. */
  get pendingMessages(): number {
    return this.pending.size;
  }

  /** Bytes held by partial messages (the capacity of their buffers). */
  get pendingBytes(): number {
    return this.heldBytes;
  }

  /** Runs of contiguous bytes held by partial messages (see `maxPendingChunks`). */
  get pendingChunks(): number {
    return this.heldRuns;
  }

  reset(): void {
    this.pending.clear();
    this.rejected.clear();
    this.heldBytes = 0;
    this.heldRuns = 0;
  }

  /**
   * Takes one frame. Returns the whole message when this frame completes
   * one, otherwise `null`. Problems are given to `report` (as protocol
   * errors, with the close code a client ending the connection over them
   * would use) and the message concerned is dropped; this never throws.
   * The client's codec ends the connection on the first one.
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
    const length = bytes.byteLength;
    if (this.rejected.has(id)) return null;
    const fail = (why: string, closeCode?: number): null => {
      this.drop(id);
      this.reject(id);
      this.report(protocolError(`Chunked message ${id}: ${why}`, closeCode));
      return null;
    };

    if (total === 0) return fail('declares a total size of 0');
    if (length === 0) return fail(`empty chunk at offset ${offset}`);
    if (total > this.limits.maxMessageSize) return fail(`declared size ${total} exceeds the limit of ${this.limits.maxMessageSize} bytes`, CLOSE_TOO_BIG);
    if (offset + length > total) return fail(`chunk [${offset}, ${offset + length}) runs past the declared size ${total}`);

    let entry = this.pending.get(id);
    if (!entry) {
      // A whole message in one frame: no copy at all.
      if (offset === 0 && length === total) return bytes;
      if (this.pending.size >= this.limits.maxPendingMessages) {
        const oldest = this.pending.keys().next().value as number;
        this.drop(oldest);
        this.reject(oldest);
        this.report(protocolError(`Chunked message ${oldest} dropped: more than ${this.limits.maxPendingMessages} partial messages`));
      }
      entry = { total, received: 0, runs: [] };
      this.pending.set(id, entry);
    } else if (entry.total !== total) {
      return fail(`total size changed from ${entry.total} to ${total}`);
    }

    const runs = entry.runs;
    // The run starting at or before `offset` (in-order chunks: the last one).
    const i = runBefore(runs, offset);
    const before = runs[i];
    const after = runs[i + 1];
    const overlap = `chunk [${offset}, ${offset + length}) overlaps bytes already received`;
    if (before && before.offset + before.length > offset) return fail(overlap);
    if (after && after.offset < offset + length) return fail(overlap);

    if (before && before.offset + before.length === offset) {
      // Continues a run: append, growing its buffer if needed.
      const needed = before.length + length;
      const capacity = before.buf.byteLength;
      if (needed > capacity) {
        const room = this.limits.maxPendingBytes - this.heldBytes + capacity;
        if (needed > room) return fail(`partial messages would hold more than ${this.limits.maxPendingBytes} bytes`, CLOSE_TOO_BIG);
        // Doubling keeps appends O(1) on average; never beyond what the
        // run can still receive, nor beyond the budget.
        const grown = new Uint8Array(Math.min(Math.max(needed, 2 * capacity), total - before.offset, room));
        grown.set(before.buf.subarray(0, before.length));
        this.heldBytes += grown.byteLength - capacity;
        before.buf = grown;
      }
      before.buf.set(bytes, before.length);
      before.length = needed;
    } else {
      if (this.heldBytes + length > this.limits.maxPendingBytes) {
        return fail(`partial messages would hold more than ${this.limits.maxPendingBytes} bytes`, CLOSE_TOO_BIG);
      }
      if (this.heldRuns >= this.limits.maxPendingChunks) {
        return fail(`more than ${this.limits.maxPendingChunks} separate chunks held for partial messages (chunks out of order)`);
      }
      // Keep the frame's bytes without a copy, unless they are a small
      // view of a larger buffer that they would keep alive.
      const own = bytes.buffer.byteLength > length + HEADER_LENGTH ? bytes.slice() : bytes;
      runs.splice(i + 1, 0, { offset, buf: own, length });
      this.heldBytes += length;
      this.heldRuns += 1;
    }
    entry.received += length;

    if (entry.received < total) return null;
    // No overlaps and every run inside [0, total): the runs tile the message.
    this.drop(id);
    const first = runs[0] as Run;
    if (runs.length === 1) return first.buf.byteLength === total ? first.buf : first.buf.subarray(0, total);
    const message = new Uint8Array(total);
    for (const run of runs) message.set(run.buf.subarray(0, run.length), run.offset);
    return message;
  }

  private drop(id: number): void {
    const entry = this.pending.get(id);
    if (!entry) return;
    for (const run of entry.runs) this.heldBytes -= run.buf.byteLength;
    this.heldRuns -= entry.runs.length;
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

/** Index of the last run starting at or before `offset` (-1 if none). */
function runBefore(runs: Run[], offset: number): number {
  const last = runs.length - 1;
  // Chunks nearly always come in order: try the last run first.
  if (last < 0 || (runs[last] as Run).offset <= offset) return last;
  let lo = -1;
  let hi = last;
  // Invariant: runs[lo].offset <= offset < runs[hi].offset (lo = -1: none).
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if ((runs[mid] as Run).offset <= offset) lo = mid;
    else hi = mid;
  }
  return lo;
}

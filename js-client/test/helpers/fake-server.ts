/**
 * An in-process wslink server behind a fake WebSocket class, for unit
 * tests: speaks 2.x (msgpack, chunked) or 1.x (JSON + attachments) like the
 * Python server, and lets tests inject arbitrary frames.
 */
import { decode as msgpackDecode, encode as msgpackEncode } from '@msgpack/msgpack';
import { chunkMessage, Reassembler } from '../../src/chunking.js';
import type { SocketEventLike, SocketLike } from '../../src/socket.js';

type Listener = (event: SocketEventLike) => void;

export type Handler = (args: unknown[], kwargs: Record<string, unknown>, conn: FakeConnection) => unknown;

export interface FakeServerOptions {
  generation?: 1 | 2;
  secret?: string;
  maxMsgSize?: number;
  handlers?: Record<string, Handler>;
  /**
   * Listed in the hello reply as `capabilities` (this project's server
   * sends `['subscriptions']`); absent, the reply is Kitware's.
   */
  capabilities?: string[];
  /** With the `subscriptions` capability: topics one connection may declare (default 1024). */
  maxSubscriptions?: number;
}

export class HandlerError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 0));

export class FakeSocket implements SocketLike {
  readyState = 0;
  private type = 'blob';
  /** Everything the client sent, in order. */
  readonly sent: (string | Uint8Array)[] = [];
  /** The client's close() calls that the socket accepted, as given. */
  readonly closeCalls: { code: number | undefined; reason: string | undefined }[] = [];
  /**
   * Refuse what the WHATWG WebSocket refuses in close(): a code other than
   * 1000 or 3000-4999 (InvalidAccessError), a reason over 123 bytes
   * (SyntaxError). Off: accept any code, as the `ws` package does.
   */
  strictClose = false;
  private readonly listeners = new Map<string, Set<Listener>>();
  connection: FakeConnection | null = null;

  constructor(readonly url: string) {}

  get binaryType(): string {
    return this.type;
  }

  set binaryType(value: string) {
    this.type = value;
  }

  addEventListener(type: string, listener: Listener): void {
    let set = this.listeners.get(type);
    if (!set) {
      set = new Set();
      this.listeners.set(type, set);
    }
    set.add(listener);
  }

  removeEventListener(type: string, listener: Listener): void {
    this.listeners.get(type)?.delete(listener);
  }

  dispatch(type: string, event: SocketEventLike = {}): void {
    for (const l of [...(this.listeners.get(type) ?? [])]) l(event);
  }

  send(data: string | ArrayBufferLike | ArrayBufferView | Blob): void {
    if (this.readyState !== 1) throw new Error('InvalidStateError: not open');
    let frame: string | Uint8Array;
    if (typeof data === 'string') frame = data;
    else if (data instanceof Uint8Array) frame = data.slice();
    else if (ArrayBuffer.isView(data)) frame = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    else if (data instanceof ArrayBuffer) frame = new Uint8Array(data.slice(0));
    else throw new Error('FakeSocket: unsupported send type');
    this.sent.push(frame);
    this.connection?.fromClient(frame);
  }

  close(code?: number, reason?: string): void {
    if (this.strictClose && code !== undefined && code !== 1000 && (code < 3000 || code > 4999)) {
      throw new Error(`InvalidAccessError: close code ${code} is neither 1000 nor in 3000-4999`);
    }
    if (this.strictClose && reason !== undefined && new TextEncoder().encode(reason).byteLength > 123) {
      throw new Error('SyntaxError: close reason longer than 123 bytes');
    }
    this.closeCalls.push({ code, reason });
    if (this.readyState >= 2) return;
    this.readyState = 2;
    setTimeout(() => this.finishClose(code ?? 1000, reason ?? '', true), 0);
  }

  /** Server side: deliver a frame to the client. */
  deliver(data: string | Uint8Array | Blob): void {
    if (this.readyState !== 1) return;
    let payload: unknown = data;
    if (data instanceof Uint8Array) {
      const copy = data.slice();
      payload = this.binaryType === 'arraybuffer' ? copy.buffer : new Blob([copy]);
    }
    this.dispatch('message', { data: payload });
  }

  finishClose(code: number, reason: string, wasClean: boolean): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.dispatch('close', { code, reason, wasClean });
    this.connection?.server.forget(this.connection);
  }
}

export class FakeConnection {
  authenticated = false;
  readonly clientId: string;
  readonly received: unknown[] = [];
  /**
   * Topics this connection declared and the server accepted (PROTOCOL.md
   * §8); null until its first declaration, when it is sent every topic.
   */
  declared: Set<string> | null = null;
  private readonly reassembler = new Reassembler();
  private announced: string[] = [];
  private readonly attachments = new Map<string, Uint8Array>();

  constructor(
    readonly server: FakeServer,
    readonly socket: FakeSocket,
    n: number,
  ) {
    this.clientId = `c${n}`;
  }

  fromClient(frame: string | Uint8Array): void {
    let message: unknown;
    if (this.server.generation === 2) {
      if (typeof frame === 'string') return;
      const bytes = this.reassembler.push(frame);
      if (!bytes) return;
      message = msgpackDecode(bytes, { useBigInt64: true });
    } else {
      if (typeof frame !== 'string') {
        const key = this.announced.shift();
        if (key) this.attachments.set(key, frame);
        return;
      }
      message = JSON.parse(frame);
    }
    const m = message as { id?: string; method?: string; args?: unknown[]; kwargs?: Record<string, unknown> };
    if (m.id === undefined) {
      if (m.method === 'wslink.binary.attachment') this.announced.push(...(m.args as string[]));
      return;
    }
    if (this.server.generation === 1) {
      const swap = (v: unknown): unknown => {
        if (typeof v === 'string' && this.attachments.has(v)) {
          const b = this.attachments.get(v);
          this.attachments.delete(v);
          return b;
        }
        if (Array.isArray(v)) return v.map(swap);
        if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, swap(x)]));
        return v;
      };
      m.args = swap(m.args ?? []) as unknown[];
      m.kwargs = swap(m.kwargs ?? {}) as Record<string, unknown>;
    }
    this.received.push(m);
    void this.handle(m.id, m.method ?? '', m.args ?? [], m.kwargs ?? {});
  }

  private async handle(id: string, method: string, args: unknown[], kwargs: Record<string, unknown>): Promise<void> {
    if (this.server.hold) await this.server.hold;
    if (id.startsWith('system:')) {
      const secret = (args[0] as { secret?: string } | undefined)?.secret;
      const offersSubscriptions = this.server.capabilities?.includes('subscriptions') === true;
      if (method === 'wslink.hello' && secret === this.server.secret) {
        this.authenticated = true;
        const result: Record<string, unknown> = { clientID: this.clientId };
        if (this.server.generation === 2) result.maxMsgSize = this.server.maxMsgSize;
        if (this.server.capabilities) result.capabilities = this.server.capabilities;
        this.reply({ wslink: '1.0', id, result });
      } else if (method === 'wslink.hello') {
        this.reply({ wslink: '1.0', id, error: { code: -32000, message: 'Authentication failed' } });
      } else if (offersSubscriptions && (method === 'wslink.subscribe' || method === 'wslink.unsubscribe')) {
        this.declaration(id, method, args);
      } else {
        // What Kitware's Python server answers to any other system method.
        this.reply({ wslink: '1.0', id, error: { code: -32601, message: 'Unknown system method called' } });
      }
      return;
    }
    if (!this.authenticated) {
      this.reply({ wslink: '1.0', id, error: { code: -32000, message: 'Unauthorized: Skip message processing' } });
      return;
    }
    const handler = this.server.handlers[method];
    if (!handler) {
      this.reply({ wslink: '1.0', id, error: { code: -32601, message: 'Unregistered method called', data: method } });
      return;
    }
    try {
      const result = await handler(args, kwargs, this);
      if (result === NO_REPLY) return;
      this.reply({ wslink: '1.0', id, result });
    } catch (e) {
      if (e instanceof HandlerError) {
        this.reply({ wslink: '1.0', id, error: { code: e.code, message: e.message, ...(e.data === undefined ? {} : { data: e.data }) } });
      } else {
        this.reply({ wslink: '1.0', id, error: { code: -32001, message: 'Exception raised', data: { method, exception: String(e) } } });
      }
    }
  }

  /** Our server's answer to a declaration (PROTOCOL.md §8), limit included. */
  private declaration(id: string, method: string, args: unknown[]): void {
    const topic = args[0];
    if (!this.authenticated) {
      this.reply({ wslink: '1.0', id, error: { code: -32000, message: 'Unauthorized: Skip message processing' } });
      return;
    }
    if (args.length !== 1 || typeof topic !== 'string') {
      this.reply({ wslink: '1.0', id, error: { code: -32001, message: `${method} takes [topic]` } });
      return;
    }
    const declared = (this.declared ??= new Set());
    const limit = this.server.maxSubscriptions;
    if (method === 'wslink.subscribe' && !declared.has(topic) && declared.size >= limit) {
      this.reply({ wslink: '1.0', id, error: { code: -32001, message: `too many subscriptions on this connection (limit ${limit})` } });
      return;
    }
    if (method === 'wslink.subscribe') declared.add(topic);
    else declared.delete(topic);
    this.reply({ wslink: '1.0', id, result: true });
  }

  /** Sends a message as the server would (chunked 2.x, or 1.x with attachments). */
  reply(message: Record<string, unknown>): void {
    if (this.server.generation === 2) {
      for (const frame of chunkMessage(msgpackEncode(message, { useBigInt64: true }), this.server.maxMsgSize)) this.socket.deliver(frame);
      return;
    }
    const attachments: [string, Uint8Array][] = [];
    const swap = (v: unknown): unknown => {
      if (v instanceof Uint8Array) {
        const key = `wslink_bin${this.server.nextKey++}`;
        attachments.push([key, v]);
        return key;
      }
      if (Array.isArray(v)) return v.map(swap);
      if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, swap(x)]));
      return v;
    };
    const swapped = swap(message);
    for (const [key, bytes] of attachments) {
      this.socket.deliver(JSON.stringify({ wslink: '1.0', method: 'wslink.binary.attachment', args: [key] }));
      this.socket.deliver(bytes);
    }
    this.socket.deliver(JSON.stringify(swapped, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v)));
  }

  /** Drops the connection without a close frame (code 1006). */
  drop(): void {
    this.socket.finishClose(1006, '', false);
  }
}

export const NO_REPLY = Symbol('no reply');

export class FakeServer {
  generation: 1 | 2;
  secret: string;
  maxMsgSize: number;
  handlers: Record<string, Handler>;
  capabilities: string[] | undefined;
  maxSubscriptions: number;
  nextKey = 0;
  /** When set, requests wait for it before being handled. */
  hold: Promise<void> | null = null;
  /** When true, new sockets fail to open (error + close 1006). */
  refuse = false;
  /** With `refuse`: fire only the error event, no close event (as Node 20's WebSocket sometimes does). */
  refuseWithoutClose = false;
  /** When false, sockets stay in CONNECTING forever. */
  answerOpen = true;
  /** New sockets refuse close codes as browsers do (see {@link FakeSocket.strictClose}). */
  strictClose = false;
  readonly connections: FakeConnection[] = [];
  readonly sockets: FakeSocket[] = [];
  private count = 0;
  readonly WebSocket: new (url: string) => FakeSocket;

  constructor(options: FakeServerOptions = {}) {
    this.generation = options.generation ?? 2;
    this.secret = options.secret ?? 'wslink-secret';
    this.maxMsgSize = options.maxMsgSize ?? 4 * 1024 * 1024;
    this.capabilities = options.capabilities;
    this.maxSubscriptions = options.maxSubscriptions ?? 1024;
    this.handlers = {
      'test.add': (args) => (args[0] as number) + (args[1] as number),
      'test.echo': (args) => args[0],
      'test.kwargs': (args, kwargs) => ({ args, kwargs }),
      'test.fail': (args) => {
        throw new HandlerError(-32001, 'Exception raised', { exception: `Exception('${String(args[0])}')` });
      },
      'test.never': () => NO_REPLY,
      'test.sleep': async (args) => {
        await new Promise((r) => setTimeout(r, args[0] as number));
        return args[0];
      },
      ...options.handlers,
    };
    const accept = (socket: FakeSocket): void => {
      this.accept(socket);
    };
    this.WebSocket = class extends FakeSocket {
      constructor(url: string) {
        super(url);
        accept(this);
      }
    };
  }

  private accept(socket: FakeSocket): void {
    this.sockets.push(socket);
    socket.strictClose = this.strictClose;
    if (this.refuse) {
      setTimeout(() => {
        socket.dispatch('error', { message: 'connect ECONNREFUSED' });
        if (this.refuseWithoutClose) socket.readyState = 3;
        else socket.finishClose(1006, '', false);
      }, 0);
      return;
    }
    if (!this.answerOpen) return;
    const conn = new FakeConnection(this, socket, ++this.count);
    socket.connection = conn;
    this.connections.push(conn);
    setTimeout(() => {
      if (socket.readyState !== 0) return;
      socket.readyState = 1;
      socket.dispatch('open');
    }, 0);
  }

  forget(conn: FakeConnection): void {
    const i = this.connections.indexOf(conn);
    if (i !== -1) this.connections.splice(i, 1);
  }

  /**
   * Publishes to every authenticated connection, as wslink does, except
   * those that declared their topics and not this one (as our server does).
   */
  publish(topic: string, value: unknown, n = 0): void {
    for (const conn of this.connections) {
      if (conn.authenticated && (conn.declared === null || conn.declared.has(topic))) conn.reply({ wslink: '1.0', id: `publish:${topic}:${n}`, result: value });
    }
  }

  /** The connection most recently opened. */
  get last(): FakeConnection {
    const c = this.connections[this.connections.length - 1];
    if (!c) throw new Error('no connection');
    return c;
  }
}

export { tick };

/** Waits until `predicate` holds (polling every few ms), or fails after `ms`. */
export async function until(predicate: () => boolean, ms = 2000, what = 'condition'): Promise<void> {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

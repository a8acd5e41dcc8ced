/**
 * The client: one logical connection to a wslink server, with connection
 * states and events, optional automatic reconnection (a new WebSocket, a new
 * hello, the same subscriptions), per-call timeouts and AbortSignal.
 */
import { createCodec, type Codec, type CodecOptions, type Generation } from './codec.js';
import { isPlainObject } from './envelope.js';
import { clientError, ErrorCode, WslinkError } from './errors.js';
import { Emitter } from './events.js';
import { log, type Logger } from './logger.js';
import { CAPABILITY_SUBSCRIPTIONS, SUBSCRIBE_METHOD, UNSUBSCRIBE_METHOD } from './ids.js';
import { Session, type CallOptions } from './session.js';
import { defaultWebSocket, type CloseInfo, type WebSocketConstructor } from './socket.js';

export const DEFAULT_SECRET = 'wslink-secret';

export interface ReconnectOptions {
  /** Attempts in a row before giving up (default: unlimited). */
  maxAttempts?: number;
  /** Delay before the first attempt, in ms (default 500). */
  initialDelay?: number;
  /** Longest delay between attempts, in ms, jitter included (default 10000). */
  maxDelay?: number;
  /** Growth of the delay after each failed attempt (default 2). */
  factor?: number;
  /** Random spread of each delay, as a fraction (default 0.2: +/- 20%). */
  jitter?: number;
  /** Also retry when the very first connection fails (default false: `connect()` rejects). */
  retryInitial?: boolean;
}

export interface ClientOptions extends Omit<CodecOptions, 'report'> {
  /**
   * `ws://HOST:PORT/ws` or `wss://...`; or several such URLs, servers
   * that act as one (e.g. `wslink serve --broker` edges on one NATS): the
   * client connects to the first, and each reconnection attempt (with
   * `reconnect`) goes to the next one in turn, wrapping around.
   *
   * ```ts
   * const client = await connect({
   *   url: ['ws://edge-a:8080/ws', 'ws://edge-b:8080/ws'],
   *   reconnect: true,
   * });
   * client.on('ready', ({ url, reconnected }) => console.log(reconnected ? `now on ${url}` : url));
   * ```
   */
  url: string | readonly string[];
  /** Sent in the hello (default `wslink-secret`, wslink's default). */
  secret?: string;
  /** Wire format: 2 (msgpack, default) or 1 (JSON + attachments). */
  protocol?: Generation;
  /** A WebSocket class; defaults to `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** Reconnect after the connection drops (default false). */
  reconnect?: boolean | ReconnectOptions;
  /** Limit for opening the socket and getting the hello reply, in ms (default 30000, 0 = none). */
  connectTimeout?: number;
  /** Default per-call timeout in ms (default 0 = none); a call's own `timeout` wins. */
  callTimeout?: number;
  /** Where to log (nothing is logged without one). */
  logger?: Logger;
  /**
   * Tell a server that offers it (this project's: `capabilities` in its
   * hello reply) which topics this client subscribes to, so it sends only
   * those (default true). Kitware's servers offer nothing; the client then
   * filters locally, as npm wslink does.
   */
  declareSubscriptions?: boolean;
}

/**
 * - `idle`: created, `connect()` not called yet.
 * - `connecting`: first WebSocket opening / hello pending.
 * - `open`: hello answered; calls can be made.
 * - `reconnecting`: the connection dropped (or the first one failed, with
 *   `retryInitial`); waiting before, or during, a new attempt.
 * - `closing`: `close()` called, waiting for the socket to close.
 * - `closed`: final.
 */
export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closing' | 'closed';

export interface ReadyInfo {
  clientId: string;
  /** The server's frame limit (2.x). */
  maxMsgSize?: number;
  /** True when this is a reconnection. */
  reconnected: boolean;
  /** The URL this connection is on (one of `options.url`'s). */
  url: string;
}

/**
 * How an open connection ended. When the client closed it over a protocol
 * error, `code` is the code it closed with (1002, 1009 or 1011; see
 * `WslinkError.closeCode`), `reason` the error's message and `wasClean`
 * false, whatever the WebSocket let it send.
 */
export interface DisconnectInfo extends CloseInfo {
  willReconnect: boolean;
}

export interface ReconnectingInfo {
  /** 1 for the first attempt after a drop. */
  attempt: number;
  /** Milliseconds before this attempt. */
  delay: number;
  /** The URL this attempt will try. */
  url: string;
  /** Why the previous attempt failed (absent right after a drop). */
  error?: WslinkError;
}

export interface ClientEvents {
  state: [state: ConnectionState, previous: ConnectionState];
  ready: [info: ReadyInfo];
  disconnect: [info: DisconnectInfo];
  reconnecting: [info: ReconnectingInfo];
  close: [info: CloseInfo];
  error: [error: WslinkError];
}

/** Receives each message published on a topic (the value itself, not wrapped in an array). */
export type Subscriber = (result: unknown, topic: string) => void;

interface SubscriptionEntry {
  callback: Subscriber;
  /** Called if the server refuses to declare the topic (its limit). */
  onRefused?: (error: WslinkError) => void;
}

const CLOSE_GRACE_MS = 3000;

function reconnectSettings(option: ClientOptions['reconnect']): Required<ReconnectOptions> | null {
  if (!option) return null;
  const o = option === true ? {} : option;
  return {
    maxAttempts: o.maxAttempts ?? Infinity,
    initialDelay: o.initialDelay ?? 500,
    maxDelay: o.maxDelay ?? 10_000,
    factor: o.factor ?? 2,
    jitter: o.jitter ?? 0.2,
    retryInitial: o.retryInitial ?? false,
  };
}

export class WslinkClient {
  /** Every URL the client may connect to, in the order it tries them. */
  readonly urls: readonly string[];
  private urlIndex = 0;
  readonly generation: Generation;
  private readonly options: ClientOptions;
  private readonly codec: Codec;
  private readonly emitter: Emitter<ClientEvents>;
  private readonly reconnect: Required<ReconnectOptions> | null;
  private readonly subscriptions = new Map<string, Set<SubscriptionEntry>>();
  private currentState: ConnectionState = 'idle';
  private session: Session | null = null;
  private callNumber = 0;
  private attempt = 0;
  private everReady = false;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private connecting: { promise: Promise<WslinkClient>; resolve: (c: WslinkClient) => void; reject: (e: WslinkError) => void; settled: boolean } | null = null;
  private closed: { promise: Promise<void>; resolve: () => void } | null = null;
  private lastClose: CloseInfo | null = null;

  constructor(options: ClientOptions) {
    const url = (options as Partial<ClientOptions> | undefined)?.url;
    const urls: unknown[] = typeof url === 'string' ? [url] : Array.isArray(url) ? [...(url as unknown[])] : [];
    if (urls.length === 0 || !urls.every((u) => typeof u === 'string')) {
      throw new TypeError('wslink: options.url is required (a URL, or a non-empty array of URLs)');
    }
    this.urls = Object.freeze(urls);
    this.options = { ...options };
    this.generation = options.protocol === 1 ? 1 : 2;
    this.reconnect = reconnectSettings(options.reconnect);
    this.emitter = new Emitter<ClientEvents>((error, event) => {
      log(this.options.logger, 'error', `wslink: a '${event}' listener threw`, error);
      if (event !== 'error') this.report(clientError('callback', `A '${event}' listener threw: ${String(error)}`, { cause: error }));
    });
    this.codec = createCodec(this.generation, {
      ...(options.int64 === undefined ? {} : { int64: options.int64 }),
      ...(options.binaryType === undefined ? {} : { binaryType: options.binaryType }),
      ...(options.limits === undefined ? {} : { limits: options.limits }),
      report: (error) => this.report(error),
    });
  }

  get state(): ConnectionState {
    return this.currentState;
  }

  /** The id the server gave this connection (null when not open). */
  get clientId(): string | null {
    return this.currentState === 'open' ? (this.session?.clientId ?? null) : null;
  }

  /** The server's frame limit from the hello reply (2.x servers). */
  get maxMsgSize(): number | undefined {
    return this.session?.maxMsgSize;
  }

  /** Calls waiting for their reply. */
  get inFlight(): number {
    return this.session?.inFlight ?? 0;
  }

  on<K extends keyof ClientEvents>(event: K, listener: (...args: ClientEvents[K]) => void): () => void {
    return this.emitter.on(event, listener);
  }

  once<K extends keyof ClientEvents>(event: K, listener: (...args: ClientEvents[K]) => void): () => void {
    return this.emitter.once(event, listener);
  }

  off<K extends keyof ClientEvents>(event: K, listener: (...args: ClientEvents[K]) => void): void {
    this.emitter.off(event, listener);
  }

  /**
   * Opens the connection and says hello. Resolves with the client once the
   * server has answered; rejects with the server's error (-32000 for a wrong
   * secret) or a client error (`connect-failed`, `timeout`, `closed`).
   * Calling it again returns the same promise.
   */
  connect(): Promise<this> {
    if (this.currentState === 'closing' || this.currentState === 'closed') {
      return Promise.reject(clientError('closed', 'The client is closed; create a new one'));
    }
    if (this.connecting) return this.connecting.promise as Promise<this>;
    let resolve!: (c: WslinkClient) => void;
    let reject!: (e: WslinkError) => void;
    const promise = new Promise<WslinkClient>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.connecting = { promise, resolve, reject, settled: false };
    this.setState('connecting');
    this.attemptConnection();
    return promise as Promise<this>;
  }

  /**
   * Calls a server method. `args` is the positional argument list, `kwargs`
   * the keyword arguments. Binary values (ArrayBuffer, typed arrays,
   * DataView, Blob) may appear at any depth.
   */
  call(method: string, args: unknown[] = [], kwargs: Record<string, unknown> = {}, options: CallOptions = {}): Promise<unknown> {
    if (!Array.isArray(args)) return Promise.reject(clientError('encoding', `Call ${method}: args must be an array`, { method }));
    if ((kwargs as Record<string, unknown> | null | undefined) == null) kwargs = {};
    if (!isPlainObject(kwargs)) return Promise.reject(clientError('encoding', `Call ${method}: kwargs must be a plain object`, { method }));
    const session = this.session;
    if (this.currentState !== 'open' || session === null) {
      return Promise.reject(clientError('not-connected', `RPC call ${method} unsuccessful: connection not open`, { method }));
    }
    const timeout = options.timeout ?? this.options.callTimeout;
    return session.call(method, args, kwargs, { ...options, ...(timeout === undefined ? {} : { timeout }) });
  }

  /**
   * Calls `callback(result, topic)` for each message published on `topic`.
   * Subscriptions live in the client and survive reconnections. To a server
   * that offers it (PROTOCOL.md §8), the topic is declared when its first
   * subscriber appears and withdrawn when its last leaves; if the server
   * refuses it (its per-connection limit), every subscriber of the topic is
   * dropped, each one's `onRefused` is called and `error` is emitted once.
   * Kitware's servers publish everything and the client filters. Returns a
   * function that unsubscribes.
   *
   * ```ts
   * const off = client.subscribe('viewport.image.push', (frame) => draw(frame), (err) => console.warn(err.message));
   * off();
   * ```
   */
  subscribe(topic: string, callback: Subscriber, onRefused?: (error: WslinkError) => void): () => void {
    if (typeof callback !== 'function') throw new TypeError('wslink: subscribe needs a callback');
    let set = this.subscriptions.get(topic);
    const first = !set;
    if (!set) {
      set = new Set();
      this.subscriptions.set(topic, set);
    }
    const entry: SubscriptionEntry = onRefused ? { callback, onRefused } : { callback };
    set.add(entry);
    if (first) this.declare(SUBSCRIBE_METHOD, topic);
    return () => {
      const current = this.subscriptions.get(topic);
      if (!current || !current.delete(entry)) return;
      if (current.size === 0) {
        this.subscriptions.delete(topic);
        this.declare(UNSUBSCRIBE_METHOD, topic);
      }
    };
  }

  /** Whether the open session tells the server what it subscribes to. */
  get declaresSubscriptions(): boolean {
    const session = this.session;
    return (
      this.options.declareSubscriptions !== false &&
      session !== null &&
      session.ready &&
      session.capabilities.includes(CAPABILITY_SUBSCRIPTIONS)
    );
  }

  /**
   * Sends a declaration when the server takes them. A refused subscription
   * (the server's limit) ends that topic's subscribers and is reported.
   */
  private declare(method: string, topic: string): void {
    const session = this.session;
    if (session === null || !this.declaresSubscriptions) return;
    // The subscribers this declaration speaks for. If they all leave and
    // the topic is subscribed again before the answer, a new declaration
    // is on its way for the new ones, and this one's answer is not theirs.
    const declaredFor = this.subscriptions.get(topic);
    session.declare(method, topic).catch((e: unknown) => {
      if (this.session !== session || method !== SUBSCRIBE_METHOD) return;
      // Only the server's answer refuses a topic. A declaration lost with
      // its connection (the reply never came) is made again on the next
      // session, with every other surviving subscription.
      if (!(e instanceof WslinkError) || e.kind !== 'server') return;
      if (declaredFor === undefined || this.subscriptions.get(topic) !== declaredFor) return;
      this.subscriptions.delete(topic);
      for (const s of declaredFor) {
        try {
          s.onRefused?.(e);
        } catch (thrown) {
          log(this.options.logger, 'error', `wslink: an onRefused callback of '${topic}' threw`, thrown);
          this.report(clientError('callback', `An onRefused callback of '${topic}' threw: ${String(thrown)}`, { cause: thrown }));
        }
      }
      this.report(e);
    });
  }

  /** Number of subscribers of `topic` (all topics when omitted). */
  subscriberCount(topic?: string): number {
    if (topic !== undefined) return this.subscriptions.get(topic)?.size ?? 0;
    let n = 0;
    for (const set of this.subscriptions.values()) n += set.size;
    return n;
  }

  /**
   * The npm client's `addAttachment`: in 2.x returns the payload (an
   * ArrayBuffer wrapped in a DataView); in 1.x returns a `wslink_binN` key
   * whose bytes are sent just before the first call that uses the key.
   * Not needed with this client: binary values can be passed directly.
   */
  addAttachment(payload: ArrayBufferLike | ArrayBufferView | Blob): unknown {
    return this.codec.addAttachment(payload);
  }

  /**
   * Closes the connection (no reconnection follows). Calls in flight are
   * rejected with kind `closed`. Resolves once the socket has closed.
   */
  close(code = 1000, reason = ''): Promise<void> {
    if (this.currentState === 'closed') return Promise.resolve();
    if (this.closed) return this.closed.promise;
    let resolve!: () => void;
    const promise = new Promise<void>((res) => {
      resolve = res;
    });
    this.closed = { promise, resolve };
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.setState('closing');
    this.settleConnect(clientError('closed', 'Closed by the client before the connection was ready'));
    const session = this.session;
    if (session === null || session.closeInfo !== null) {
      this.finish({ code, reason, wasClean: true });
    } else {
      session.close(code, reason);
      const timer = setTimeout(() => this.finish({ code, reason, wasClean: false }), CLOSE_GRACE_MS);
      void promise.then(() => clearTimeout(timer));
    }
    return promise;
  }

  // ------------------------------------------------------------------------

  private setState(state: ConnectionState): void {
    const previous = this.currentState;
    if (previous === state) return;
    this.currentState = state;
    log(this.options.logger, 'debug', `wslink: ${previous} -> ${state}`);
    this.emitter.emit('state', state, previous);
  }

  private report(error: WslinkError): void {
    log(this.options.logger, error.kind === 'protocol' || error.kind === 'callback' ? 'warn' : 'debug', `wslink: ${error.message}`);
    this.emitter.emit('error', error);
  }

  private settleConnect(error?: WslinkError): void {
    const c = this.connecting;
    if (!c || c.settled) return;
    c.settled = true;
    if (error) {
      // connect() may legitimately be left without a catch when only events are used.
      c.promise.catch(() => {});
      c.reject(error);
    } else {
      c.resolve(this);
    }
  }

  /** The URL of the current connection, or of the attempt under way or next. */
  get url(): string {
    return this.urls[this.urlIndex] ?? '';
  }

  private attemptConnection(): void {
    this.reconnectTimer = undefined;
    const WebSocketClass = this.options.WebSocket ?? defaultWebSocket();
    if (!WebSocketClass) {
      this.giveUp(clientError('connect-failed', 'No WebSocket implementation: pass options.WebSocket (Node 20 needs --experimental-websocket)'));
      return;
    }
    let ws;
    try {
      ws = new WebSocketClass(this.url);
    } catch (e) {
      this.attemptFailed(clientError('connect-failed', `Cannot open ${this.url}: ${e instanceof Error ? e.message : String(e)}`, { cause: e }));
      return;
    }
    this.codec.reset();
    const session: Session = new Session(ws, this.codec, {
      publish: (topic, result) => {
        if (this.session === session) this.deliver(topic, result);
      },
      report: (error) => {
        if (this.session === session) this.report(error);
      },
      closed: (info) => this.sessionClosed(session, info),
      nextNumber: () => this.callNumber++,
      ...(this.options.logger === undefined ? {} : { logger: this.options.logger }),
    });
    this.session = session;
    const timeout = this.options.connectTimeout ?? 30_000;
    session.start(this.options.secret ?? DEFAULT_SECRET, timeout).then(
      (hello) => {
        if (this.session !== session || this.currentState === 'closing' || this.currentState === 'closed') return;
        this.attempt = 0;
        const reconnected = this.everReady;
        this.everReady = true;
        this.setState('open');
        // A new session knows nothing of the subscriptions that survived
        // the reconnection: declare them again before any call goes out.
        for (const topic of this.subscriptions.keys()) this.declare(SUBSCRIBE_METHOD, topic);
        this.emitter.emit('ready', {
          clientId: hello.clientID,
          ...(hello.maxMsgSize === undefined ? {} : { maxMsgSize: hello.maxMsgSize }),
          reconnected,
          url: this.url,
        });
        this.settleConnect();
      },
      (e: unknown) => {
        const error = e instanceof WslinkError ? e : clientError('connect-failed', String(e), { cause: e });
        if (this.session !== session) return;
        session.close(undefined, '', { kind: error.kind, message: error.message });
        this.attemptFailed(error);
      },
    );
  }

  private attemptFailed(error: WslinkError): void {
    if (this.currentState === 'closing' || this.currentState === 'closed') return;
    this.report(error);
    const r = this.reconnect;
    const authRefused = error.code === ErrorCode.AUTHENTICATION;
    if (r && !authRefused && (this.everReady || r.retryInitial) && this.attempt < r.maxAttempts) {
      this.scheduleReconnect(error);
    } else {
      this.giveUp(error);
    }
  }

  private scheduleReconnect(error?: WslinkError): void {
    const r = this.reconnect;
    if (!r) return;
    this.attempt += 1;
    // Fail over: each new attempt goes to the next server of the list.
    this.urlIndex = (this.urlIndex + 1) % this.urls.length;
    const base = Math.min(r.maxDelay, r.initialDelay * r.factor ** (this.attempt - 1));
    const delay = Math.min(r.maxDelay, Math.max(0, Math.round(base * (1 + r.jitter * (Math.random() * 2 - 1)))));
    this.setState('reconnecting');
    this.emitter.emit('reconnecting', { attempt: this.attempt, delay, url: this.url, ...(error ? { error } : {}) });
    this.reconnectTimer = setTimeout(() => {
      if (this.currentState === 'reconnecting') this.attemptConnection();
    }, delay);
  }

  private sessionClosed(session: Session, info: CloseInfo): void {
    this.lastClose = info;
    if (this.session !== session) return;
    if (this.currentState === 'closing') {
      this.finish(info);
      return;
    }
    if (this.currentState !== 'open') return; // a failed attempt: start()'s rejection handles it
    const r = this.reconnect;
    const willReconnect = r !== null && r.maxAttempts > 0;
    this.emitter.emit('disconnect', { ...info, willReconnect });
    if (willReconnect) this.scheduleReconnect();
    else this.finish(info);
  }

  private giveUp(error: WslinkError): void {
    this.settleConnect(error);
    this.finish(this.lastClose ?? { code: 1006, reason: error.message, wasClean: false });
  }

  private finish(info: CloseInfo): void {
    if (this.currentState === 'closed') return;
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.settleConnect(clientError('closed', 'Connection closed'));
    this.setState('closed');
    this.emitter.emit('close', info);
    this.closed?.resolve();
  }

  private deliver(topic: string, result: unknown): void {
    const set = this.subscriptions.get(topic);
    if (!set) return;
    for (const entry of [...set]) {
      try {
        entry.callback(result, topic);
      } catch (e) {
        log(this.options.logger, 'error', `wslink: a subscriber of '${topic}' threw`, e);
        this.report(clientError('callback', `A subscriber of '${topic}' threw: ${String(e)}`, { cause: e }));
      }
    }
  }
}

/**
 * Creates a client and connects it: resolves once the server answered the
 * hello.
 *
 * ```ts
 * const client = await connect({ url: 'ws://localhost:1234/ws', secret: 'wslink-secret' });
 * const sum = await client.call('myprotocol.add', [2, 3], {}, { timeout: 5000 });
 * ```
 */
export function connect(options: ClientOptions): Promise<WslinkClient> {
  return new WslinkClient(options).connect();
}

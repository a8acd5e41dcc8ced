/**
 * One wslink session over one WebSocket: the hello, calls in flight and the
 * routing of replies and published messages. Reconnection, subscriptions and
 * state events live one level up, in connection.ts.
 */
import { containsBlob, isBlob, resolveBlobs, toUint8Array } from './binary.js';
import type { Codec, Frame } from './codec.js';
import { helloRequest, readHello, request, type HelloResult, type Incoming, type RequestEnvelope } from './envelope.js';
import { CLOSE_INTERNAL_ERROR, CLOSE_PROTOCOL_ERROR, clientError, errorFromEnvelope, protocolError, WslinkError, type ErrorKind } from './errors.js';
import { HELLO_ID, HELLO_METHOD, parseId, rpcId, systemId } from './ids.js';
import { log, type Logger } from './logger.js';
import { CLOSED, listen, OPEN, type CloseInfo, type SocketEventLike, type SocketLike } from './socket.js';

export interface CallOptions {
  /** Milliseconds before the call is rejected with kind `timeout` (0 or absent: no limit). */
  timeout?: number;
  /** Rejects the call with kind `aborted` when it fires. wslink has no cancel message: the server still runs the call, its reply is ignored. */
  signal?: AbortSignal;
}

export interface SessionHooks {
  /** A published message for `topic`. */
  publish(topic: string, result: unknown): void;
  /**
   * Problems to report: notices from the codec (the session goes on), and
   * the protocol error that made the session close (once the hello is
   * answered; before, `start()` rejects with it).
   */
  report(error: WslinkError): void;
  /**
   * The session ended (whoever closed it, or a protocol error). Pending
   * calls are already rejected.
   */
  closed(info: CloseInfo): void;
  /** Numbers for call ids (unique per client, across reconnections). */
  nextNumber(): number;
  logger?: Logger;
}

interface PendingCall {
  method: string;
  resolve(value: unknown): void;
  fail(error: WslinkError): void;
}

/** Why pending calls are rejected when the session ends. */
interface Ending {
  kind: ErrorKind;
  message: string;
  /** The protocol error that ended the session. */
  cause?: WslinkError;
}

/** Close frame reasons are at most 123 bytes of UTF-8. */
const MAX_CLOSE_REASON = 123;

/** `text` cut to fit a close frame's reason. */
function closeReason(text: string): string {
  const encoder = new TextEncoder();
  if (encoder.encode(text).byteLength <= MAX_CLOSE_REASON) return text;
  let out = '';
  let bytes = 0;
  for (const ch of text) {
    const n = encoder.encode(ch).byteLength;
    if (bytes + n > MAX_CLOSE_REASON - 3) break;
    out += ch;
    bytes += n;
  }
  return `${out}...`;
}

function asWslinkError(e: unknown, method: string): WslinkError {
  if (e instanceof WslinkError) return e;
  return clientError('encoding', `Cannot send ${method}: ${e instanceof Error ? e.message : String(e)}`, { cause: e, method });
}

export class Session {
  /** Set once the hello is answered. */
  clientId: string | null = null;
  /** The server's maxMsgSize from the hello reply (2.x servers only). */
  maxMsgSize: number | undefined;
  /** Extensions the server offered in its hello reply. */
  capabilities: string[] = [];
  /** Set once the socket has closed. */
  closeInfo: CloseInfo | null = null;

  private readonly pending = new Map<string, PendingCall>();
  /** Tail of the sends that had to wait (Blob arguments); null when idle. */
  private outbox: Promise<void> | null = null;
  /** Tail of received frames that had to be read (Blobs); null when idle. */
  private inbox: Promise<void> | null = null;
  private readonly detach: () => void;
  private opened = false;
  private onOpen: (() => void) | null = null;
  /** The last WebSocket error's text (Node gives one, browsers do not). */
  private socketError: string | null = null;
  /** Why pending calls are rejected when the socket closes. */
  private closing: Ending | null = null;

  constructor(
    readonly ws: SocketLike,
    private readonly codec: Codec,
    private readonly hooks: SessionHooks,
  ) {
    try {
      ws.binaryType = 'arraybuffer';
    } catch {
      // Some implementations have a fixed binary type; Blobs are handled too.
    }
    this.detach = listen(ws, {
      open: () => {
        this.opened = true;
        this.onOpen?.();
      },
      message: (data) => this.receive(data),
      close: (info) => this.handleClose(info),
      error: (event) => this.handleSocketError(event),
    });
  }

  get ready(): boolean {
    return this.clientId !== null && this.closeInfo === null && this.ws.readyState === OPEN;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Waits for the socket to open, says hello and waits for the reply.
   * Rejects with the server's error (-32000 on a wrong secret), or a
   * client error of kind `connect-failed` or `timeout`.
   */
  start(secret: string, timeoutMs: number): Promise<HelloResult> {
    return new Promise<HelloResult>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        this.onOpen = null;
      };
      const entry: PendingCall = {
        method: HELLO_METHOD,
        resolve: (result) => {
          done();
          const hello = readHello(result);
          if (hello === null) {
            const error = clientError('protocol', 'Hello reply without a client id', { method: HELLO_METHOD, data: result });
            this.close(1000, '', { kind: 'protocol', message: 'hello failed' });
            reject(error);
            return;
          }
          this.clientId = hello.clientID;
          this.maxMsgSize = hello.maxMsgSize;
          this.capabilities = hello.capabilities ?? [];
          if (hello.maxMsgSize !== undefined) this.codec.setMaxMsgSize(hello.maxMsgSize);
          resolve(hello);
        },
        fail: (error) => {
          done();
          reject(error);
        },
      };
      this.pending.set(HELLO_ID, entry);
      if (timeoutMs > 0) {
        timer = setTimeout(() => {
          this.pending.delete(HELLO_ID);
          this.close(undefined, '', { kind: 'timeout', message: 'connect timed out' });
          reject(clientError('timeout', `No hello reply within ${timeoutMs} ms`, { method: HELLO_METHOD }));
        }, timeoutMs);
      }
      const hello = (): void => {
        this.send(helloRequest(secret), () => this.pending.get(HELLO_ID) === entry, (e) => {
          this.pending.delete(HELLO_ID);
          entry.fail(e);
        });
      };
      if (this.opened || this.ws.readyState === OPEN) hello();
      else this.onOpen = hello;
    });
  }

  call(method: string, args: unknown[], kwargs: Record<string, unknown>, options: CallOptions = {}): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      const { signal, timeout } = options;
      if (signal?.aborted) {
        reject(clientError('aborted', `Call ${method} aborted`, { method, cause: signal.reason }));
        return;
      }
      if (!this.ready || this.clientId === null) {
        reject(clientError('not-connected', `RPC call ${method} unsuccessful: connection not open`, { method }));
        return;
      }
      const id = rpcId(this.clientId, this.hooks.nextNumber());
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = (): void => {
        entry.fail(clientError('aborted', `Call ${method} aborted`, { method, cause: signal?.reason }));
      };
      const cleanup = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const entry: PendingCall = {
        method,
        resolve: (value) => {
          cleanup();
          resolve(value);
        },
        fail: (error) => {
          if (this.pending.get(id) === entry) this.pending.delete(id);
          cleanup();
          reject(error);
        },
      };
      this.pending.set(id, entry);
      if (timeout !== undefined && timeout > 0 && Number.isFinite(timeout)) {
        timer = setTimeout(() => entry.fail(clientError('timeout', `Call ${method} timed out after ${timeout} ms`, { method })), timeout);
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.send(request(id, method, args, kwargs), () => this.pending.get(id) === entry, (e) => entry.fail(e));
    });
  }

  /**
   * Tells the server about a subscription change (`wslink.subscribe` /
   * `wslink.unsubscribe`, PROTOCOL.md §8), in order with the calls after it.
   */
  declare(method: string, topic: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (!this.ready || this.clientId === null) {
        reject(clientError('not-connected', `${method} ${topic}: connection not open`, { method }));
        return;
      }
      const id = systemId(this.clientId, this.hooks.nextNumber());
      const entry: PendingCall = {
        method,
        resolve: () => resolve(),
        fail: (error) => {
          if (this.pending.get(id) === entry) this.pending.delete(id);
          reject(error);
        },
      };
      this.pending.set(id, entry);
      this.send(request(id, method, [topic], {}), () => this.pending.get(id) === entry, (e) => entry.fail(e));
    });
  }

  /**
   * Encodes and sends, in call order. A message whose arguments hold Blobs
   * (or, in 1.x, refer to Blob attachments) is sent once they are read;
   * later messages wait behind it.
   */
  private send(message: RequestEnvelope, wanted: () => boolean, fail: (error: WslinkError) => void): void {
    const hasBlobs = containsBlob(message.args) || containsBlob(message.kwargs);
    const pendingBlobs = this.codec.resolvePendingBlobs();
    const now = (): void => {
      if (!wanted()) return;
      try {
        this.sendFrames(this.codec.encode(message));
      } catch (e) {
        fail(asWslinkError(e, message.method));
      }
    };
    if (!hasBlobs && pendingBlobs === null && this.outbox === null) {
      now();
      return;
    }
    const task = (this.outbox ?? Promise.resolve())
      .then(async () => {
        if (hasBlobs) {
          message.args = (await resolveBlobs(message.args)) as unknown[];
          message.kwargs = (await resolveBlobs(message.kwargs)) as Record<string, unknown>;
        }
        if (pendingBlobs) await pendingBlobs;
        now();
      })
      .catch((e: unknown) => fail(asWslinkError(e, message.method)));
    this.outbox = task;
    void task.then(() => {
      if (this.outbox === task) this.outbox = null;
    });
  }

  private sendFrames(frames: Frame[]): void {
    if (this.closeInfo !== null || this.ws.readyState !== OPEN) {
      throw clientError('disconnected', 'Connection not open');
    }
    for (const frame of frames) this.ws.send(frame);
  }

  private receive(data: unknown): void {
    if (this.inbox !== null || isBlob(data)) {
      const task = (this.inbox ?? Promise.resolve()).then(async () => {
        if (this.closeInfo !== null) return;
        let frame: unknown;
        try {
          frame = isBlob(data) ? new Uint8Array(await data.arrayBuffer()) : data;
        } catch (e) {
          this.fail(protocolError(`Cannot read a received frame: ${String(e)}`, CLOSE_INTERNAL_ERROR, { cause: e }));
          return;
        }
        this.receiveNow(frame);
      });
      const tail = task.catch((e: unknown) => log(this.hooks.logger, 'error', 'wslink: handling a received frame failed', e));
      this.inbox = tail;
      void tail.then(() => {
        if (this.inbox === tail) this.inbox = null;
      });
      return;
    }
    this.receiveNow(data);
  }

  private receiveNow(data: unknown): void {
    // A session ended by a protocol error reads nothing more.
    if (this.closeInfo !== null) return;
    let frame: string | Uint8Array;
    if (typeof data === 'string') frame = data;
    else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) frame = toUint8Array(data);
    else {
      this.fail(protocolError(`Unsupported frame data (${Object.prototype.toString.call(data)})`, CLOSE_INTERNAL_ERROR));
      return;
    }
    let messages: Incoming[];
    try {
      messages = this.codec.decode(frame);
    } catch (e) {
      this.fail(e instanceof WslinkError ? e : protocolError(`Cannot decode a received frame: ${String(e)}`, undefined, { cause: e }));
      return;
    }
    for (const message of messages) this.route(message);
  }

  /**
   * The server broke the protocol: reports it, rejects every pending call
   * with it, closes the socket with the error's close code and ends the
   * session at once (without waiting for the server's close frame, which a
   * broken server may never send).
   */
  private fail(error: WslinkError): void {
    if (this.closeInfo !== null) return;
    const code = error.closeCode ?? CLOSE_PROTOCOL_ERROR;
    const reason = closeReason(error.message);
    const message = `protocol error: ${error.message}`;
    this.closing = { kind: 'protocol', message, cause: error };
    this.rejectAll('protocol', message, error);
    if (this.clientId !== null) this.hooks.report(error);
    this.closeSocket(code, reason);
    this.handleClose({ code, reason, wasClean: false });
  }

  private route(message: Incoming): void {
    if (message.kind !== 'result' && message.kind !== 'error') return;
    const entry = this.pending.get(message.id);
    if (entry) {
      this.pending.delete(message.id);
      if (message.kind === 'error') entry.fail(errorFromEnvelope(message.error, entry.method));
      else entry.resolve(message.result);
      return;
    }
    const parsed = parseId(message.id);
    if (parsed?.type === 'publish') {
      if (message.kind === 'result') this.hooks.publish(parsed.topic, message.result);
      else log(this.hooks.logger, 'warn', 'wslink: error on a publish id, ignored', message.id, message.error);
      return;
    }
    log(this.hooks.logger, 'debug', 'wslink: message for an unknown id, ignored', message.id);
  }

  private handleSocketError(event: SocketEventLike): void {
    // Browsers give no detail here and a close event normally follows: the
    // close is what gets reported (as a failed attempt or a disconnect).
    const detail = event.message ?? (event.error instanceof Error ? event.error.message : undefined);
    if (detail) this.socketError = detail;
    log(this.hooks.logger, 'debug', `wslink: WebSocket error${detail ? `: ${detail}` : ''}`);
    if (this.closeInfo !== null) return;
    // Some implementations (Node 20's) do not always follow a failed
    // handshake with a close event: do not wait for one.
    if (!this.opened) {
      this.handleClose({ code: 1006, reason: '', wasClean: false });
      try {
        this.ws.close();
      } catch {
        // Not open: nothing to close.
      }
      return;
    }
    setTimeout(() => {
      if (this.closeInfo === null && this.ws.readyState === CLOSED) this.handleClose({ code: 1006, reason: '', wasClean: false });
    }, 1000);
  }

  private handleClose(info: CloseInfo): void {
    if (this.closeInfo !== null) return;
    this.closeInfo = info;
    this.detach();
    this.onOpen = null;
    const why = this.closing;
    const detail = `code ${info.code}${info.reason ? `, ${info.reason}` : ''}${this.socketError ? `; WebSocket error: ${this.socketError}` : ''}`;
    if (why) this.rejectAll(why.kind, why.message, why.cause);
    else if (this.clientId === null) this.rejectAll('connect-failed', `Connection closed before the hello was answered (${detail})`);
    else this.rejectAll('disconnected', `Connection lost (${detail})`);
    this.codec.reset();
    this.hooks.closed(info);
  }

  private rejectAll(kind: ErrorKind, message: string, cause?: WslinkError): void {
    const entries = [...this.pending.values()];
    this.pending.clear();
    for (const entry of entries) {
      entry.fail(
        new WslinkError(-32099, entry.method === HELLO_METHOD ? message : `${entry.method}: ${message}`, {
          kind,
          method: entry.method,
          ...(cause === undefined ? {} : { cause }),
          ...(cause?.closeCode === undefined ? {} : { closeCode: cause.closeCode }),
        }),
      );
    }
  }

  /** Closes the socket; pending calls are rejected at once with `why`. */
  close(code?: number, reason = '', why: Ending = { kind: 'closed', message: 'connection closed by the client' }): void {
    this.closing ??= why;
    this.rejectAll(why.kind, why.message, why.cause);
    if (this.closeInfo !== null) return;
    this.closeSocket(code, reason);
  }

  /**
   * `ws.close(code, reason)`, falling back when the WebSocket refuses them:
   * the WHATWG API (browsers, Node's built-in WebSocket) lets a page send
   * only 1000 and 3000-4999, so a protocol error's 1002/1009 goes out as
   * 1000 with the same reason there; other implementations (e.g. `ws`)
   * send the code itself.
   */
  private closeSocket(code: number | undefined, reason: string): void {
    const attempts: (() => void)[] =
      code === undefined ? [] : [() => this.ws.close(code, reason), () => this.ws.close(1000, reason)];
    attempts.push(() => this.ws.close());
    for (const attempt of attempts) {
      try {
        attempt();
        return;
      } catch {
        // Refused (or already closing): try the next form.
      }
    }
  }
}

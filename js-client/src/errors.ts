/**
 * Typed errors.
 *
 * Every promise of this package rejects with a {@link WslinkError}. It has the
 * same `code` / `message` / `data` fields as the plain objects the npm wslink
 * client rejects with, so code written for that client (`err.code === -32000`)
 * keeps working, and it is a real `Error` with a `kind` that says where it came
 * from.
 */

/** The error codes of the wslink protocol. */
export const ErrorCode = {
  /** Wrong secret, or a call before the hello. */
  AUTHENTICATION: -32000,
  /** The server-side method raised. `data` holds `{method, exception, trace}` (Python). */
  EXCEPTION: -32001,
  /** The server could not serialize the method's result. */
  NOT_SERIALIZABLE: -32002,
  /** No such method (`data` is the method name). */
  METHOD_NOT_FOUND: -32601,
  /** Client-side failure: not connected, timeout, abort, protocol error... */
  CLIENT: -32099,
} as const;

export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * Where an error comes from.
 *
 * - `server`: an error reply from the server (its code, message and data).
 * - `not-connected`: the call was made while no session was open.
 * - `disconnected`: the connection dropped while the call was in flight; the
 *   server may or may not have run it.
 * - `closed`: the client was closed (by `close()`/`destroy()`).
 * - `timeout`: the per-call (or connect) timeout elapsed.
 * - `aborted`: the call's `AbortSignal` fired.
 * - `connect-failed`: the WebSocket could not be opened, or closed before the
 *   hello was answered.
 * - `encoding`: a value could not be encoded (e.g. a bigint beyond 64 bits).
 * - `protocol`: the server broke the protocol (a malformed frame, lying
 *   chunk headers, a limit crossed, ...). The client reports it on the
 *   `error` event, closes the connection (see {@link WslinkError.closeCode})
 *   and rejects every call in flight with it at once.
 * - `callback`: a subscriber or event listener threw. Reported on the `error` event.
 */
export type ErrorKind =
  | 'server'
  | 'not-connected'
  | 'disconnected'
  | 'closed'
  | 'timeout'
  | 'aborted'
  | 'connect-failed'
  | 'encoding'
  | 'protocol'
  | 'callback';

export interface WslinkErrorOptions {
  data?: unknown;
  kind?: ErrorKind;
  method?: string;
  cause?: unknown;
  closeCode?: number;
}

/** WebSocket close code for a malformed or inconsistent message (RFC 6455). */
export const CLOSE_PROTOCOL_ERROR = 1002;
/** WebSocket close code for a message over a size limit (RFC 6455). */
export const CLOSE_TOO_BIG = 1009;
/** WebSocket close code for a frame the client itself cannot read (RFC 6455). */
export const CLOSE_INTERNAL_ERROR = 1011;

export class WslinkError extends Error {
  /** A wslink error code; -32099 ({@link ErrorCode.CLIENT}) for client-side errors. */
  readonly code: number;
  /** The server's `error.data`, when it sent one. */
  declare readonly data?: unknown;
  readonly kind: ErrorKind;
  /** The method of the call that failed, when there is one. */
  declare readonly method?: string;
  /**
   * Kind `protocol`: the WebSocket close code the client closes the
   * connection with because of this error: 1002 (malformed or inconsistent
   * message), 1009 (a size limit crossed) or 1011 (a frame the client could
   * not read). Absent on notices that do not end the connection.
   */
  declare readonly closeCode?: number;

  constructor(code: number, message: string, options: WslinkErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'WslinkError';
    this.code = code;
    this.kind = options.kind ?? (code === ErrorCode.CLIENT ? 'protocol' : 'server');
    if (options.data !== undefined) this.data = options.data;
    if (options.method !== undefined) this.method = options.method;
    if (options.closeCode !== undefined) this.closeCode = options.closeCode;
  }

  /** The `{code, message, data?}` shape of a wslink error envelope. */
  toJSON(): { code: number; message: string; data?: unknown } {
    return this.data === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, data: this.data };
  }
}

/** A client-side error (code -32099). */
export function clientError(kind: Exclude<ErrorKind, 'server'>, message: string, options: Omit<WslinkErrorOptions, 'kind'> = {}): WslinkError {
  return new WslinkError(ErrorCode.CLIENT, message, { ...options, kind });
}

/**
 * A protocol error: the server sent something that ends the connection,
 * which the client closes with `closeCode`.
 */
export function protocolError(message: string, closeCode: number = CLOSE_PROTOCOL_ERROR, options: Omit<WslinkErrorOptions, 'kind' | 'closeCode'> = {}): WslinkError {
  return new WslinkError(ErrorCode.CLIENT, message, { ...options, kind: 'protocol', closeCode });
}

export function isWslinkError(value: unknown): value is WslinkError {
  return value instanceof WslinkError;
}

/** Builds the error for a server's `error` field, tolerating malformed ones. */
export function errorFromEnvelope(error: unknown, method?: string): WslinkError {
  if (error !== null && typeof error === 'object' && !Array.isArray(error)) {
    const e = error as Record<string, unknown>;
    const code = typeof e.code === 'number' ? e.code : ErrorCode.CLIENT;
    const message = typeof e.message === 'string' ? e.message : 'Malformed error reply';
    return new WslinkError(code, message, { data: e.data, kind: 'server', ...(method === undefined ? {} : { method }) });
  }
  return new WslinkError(ErrorCode.CLIENT, 'Malformed error reply', { data: error, kind: 'server', ...(method === undefined ? {} : { method }) });
}

/**
 * The wslink envelopes (identical in both generations; only the encoding
 * differs). Field order is wslink's.
 */
import { ATTACHMENT_METHOD, HELLO_ID, HELLO_METHOD, WSLINK_VERSION } from './ids.js';

export interface RequestEnvelope {
  wslink: '1.0';
  id: string;
  method: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
}

export interface ErrorBody {
  code: number;
  message: string;
  data?: unknown;
}

/** The core crate's name for the `error` body (`wslink_core::envelope::RpcError`). */
export type RpcError = ErrorBody;

export interface ResultEnvelope {
  wslink?: string;
  id: string;
  result: unknown;
}

export interface ErrorEnvelope {
  wslink?: string;
  id: string;
  error: ErrorBody;
}

/** wslink 1.x only: announces the key(s) of the binary frame(s) that follow. */
export interface AttachmentHeader {
  wslink?: string;
  method: typeof ATTACHMENT_METHOD;
  args: string[];
}

/** What the hello reply's result holds (`maxMsgSize` from 2.x servers only). */
export interface HelloResult {
  clientID: string;
  maxMsgSize?: number;
  /** Extensions the server offers (this project's server: `['subscriptions']`). */
  capabilities?: string[];
}

/**
 * A decoded incoming message, classified. `error` replies keep the raw
 * error value: it is validated when turned into a {@link WslinkError}.
 */
export type Incoming =
  | { kind: 'result'; id: string; result: unknown }
  | { kind: 'error'; id: string; error: unknown }
  | { kind: 'attachment-header'; keys: string[] }
  | { kind: 'notification'; message: Record<string, unknown> };

export function request(id: string, method: string, args: unknown[] = [], kwargs: Record<string, unknown> = {}): RequestEnvelope {
  return { wslink: WSLINK_VERSION, id, method, args, kwargs };
}

export function helloRequest(secret: string): RequestEnvelope {
  return request(HELLO_ID, HELLO_METHOD, [{ secret }], {});
}

export function attachmentHeader(keys: string[]): AttachmentHeader {
  return { wslink: WSLINK_VERSION, method: ATTACHMENT_METHOD, args: keys };
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * Classifies a decoded message. Returns `null` for values that are not
 * wslink messages at all (not a map, an id that is not a string, neither
 * `result` nor `error`): the caller reports them as protocol errors.
 */
export function classify(message: unknown): Incoming | null {
  if (!isPlainObject(message)) return null;
  const id = message.id;
  if (id === undefined || id === null) {
    if (message.method === ATTACHMENT_METHOD && Array.isArray(message.args) && message.args.every((k) => typeof k === 'string')) {
      return { kind: 'attachment-header', keys: message.args };
    }
    return { kind: 'notification', message };
  }
  if (typeof id !== 'string') return null;
  // wslink (npm and Python) treat any truthy `error` as an error reply.
  if ('error' in message && message.error !== undefined && message.error !== null && message.error !== false) {
    return { kind: 'error', id, error: message.error };
  }
  if ('result' in message) return { kind: 'result', id, result: message.result };
  return null;
}

/** Reads a hello reply's result; `null` if it has no client id. */
export function readHello(result: unknown): HelloResult | null {
  if (!isPlainObject(result)) return null;
  const clientID = result.clientID;
  if (typeof clientID !== 'string' && typeof clientID !== 'number') return null;
  const max = result.maxMsgSize;
  const hello: HelloResult = { clientID: String(clientID) };
  if (typeof max === 'number' && Number.isFinite(max) && max > 0) hello.maxMsgSize = max;
  else if (typeof max === 'bigint' && max > 0n) hello.maxMsgSize = Number(max);
  // Anything but a list of strings reads as no offer.
  const caps = result.capabilities;
  if (Array.isArray(caps)) hello.capabilities = caps.filter((c): c is string => typeof c === 'string');
  return hello;
}

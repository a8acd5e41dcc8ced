/**
 * The little this package needs from a WebSocket: the browser's, Node's
 * global one (Node 22+, or 20 with --experimental-websocket), or any
 * compatible implementation (e.g. the `ws` package) passed in.
 */

export interface SocketEventLike {
  readonly data?: unknown;
  readonly code?: number;
  readonly reason?: string;
  readonly wasClean?: boolean;
  readonly error?: unknown;
  readonly message?: string;
}

export interface SocketLike {
  readonly readyState: number;
  binaryType: string;
  readonly url?: string;
  send(data: string | ArrayBufferLike | ArrayBufferView | Blob): void;
  close(code?: number, reason?: string): void;
  addEventListener?(type: string, listener: (event: SocketEventLike) => void): void;
  removeEventListener?(type: string, listener: (event: SocketEventLike) => void): void;
  onopen?: unknown;
  onmessage?: unknown;
  onclose?: unknown;
  onerror?: unknown;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => SocketLike;

export const CONNECTING = 0;
export const OPEN = 1;
export const CLOSING = 2;
export const CLOSED = 3;

/** How a connection ended. */
export interface CloseInfo {
  /** The close code (1006 when the connection dropped without a close frame). */
  code: number;
  reason: string;
  wasClean: boolean;
}

export function defaultWebSocket(): WebSocketConstructor | undefined {
  const ws = (globalThis as { WebSocket?: unknown }).WebSocket;
  return typeof ws === 'function' ? (ws as WebSocketConstructor) : undefined;
}

type Handlers = {
  open: () => void;
  message: (data: unknown) => void;
  close: (info: CloseInfo) => void;
  error: (event: SocketEventLike) => void;
};

/** Attaches handlers; returns a function that detaches them. */
export function listen(ws: SocketLike, handlers: Handlers): () => void {
  const onOpen = (): void => handlers.open();
  const onMessage = (e: SocketEventLike): void => handlers.message(e.data);
  const onClose = (e: SocketEventLike): void =>
    handlers.close({ code: typeof e.code === 'number' ? e.code : 1006, reason: typeof e.reason === 'string' ? e.reason : '', wasClean: e.wasClean === true });
  const onError = (e: SocketEventLike): void => handlers.error(e);
  if (typeof ws.addEventListener === 'function') {
    ws.addEventListener('open', onOpen);
    ws.addEventListener('message', onMessage);
    ws.addEventListener('close', onClose);
    ws.addEventListener('error', onError);
    return () => {
      ws.removeEventListener?.('open', onOpen);
      ws.removeEventListener?.('message', onMessage);
      ws.removeEventListener?.('close', onClose);
      ws.removeEventListener?.('error', onError);
    };
  }
  ws.onopen = onOpen;
  ws.onmessage = onMessage;
  ws.onclose = onClose;
  ws.onerror = onError;
  return () => {
    ws.onopen = null;
    ws.onmessage = null;
    ws.onclose = null;
    ws.onerror = null;
  };
}

/**
 * The npm `wslink` client's calling style, over {@link WslinkClient}:
 * `WebsocketConnection.newInstance({urls, secret})`, `SmartConnect.newInstance({config})`,
 * and their session (`call`, `subscribe`, `unsubscribe`, `close`,
 * `addAttachment`). A ParaViewWeb or trame front end switches by changing
 * its import. Differences from the npm client are listed in README.md.
 */
import type { Generation } from './codec.js';
import { WslinkClient, DEFAULT_SECRET, type ClientOptions, type ReconnectOptions } from './connection.js';
import { clientError, WslinkError } from './errors.js';
import type { CloseInfo, WebSocketConstructor } from './socket.js';
import type { CallOptions } from './session.js';

/** What the npm client's subscribers receive: `[result]` (a WAMP heritage). */
export type CompatSubscriber = (args: unknown[]) => unknown;

export interface SubscriberInfo {
  topic: string;
  callback: CompatSubscriber;
}

export interface Subscription extends SubscriberInfo {
  /** Resolves once subscribed; rejects (code -32099) when not connected. */
  promise: Promise<SubscriberInfo>;
  unsubscribe: () => Promise<void>;
}

/** The npm client's session object. */
export interface WebsocketSession {
  call(method: string, args?: unknown[], kwargs?: Record<string, unknown>, options?: CallOptions): Promise<unknown>;
  subscribe(topic: string, callback: CompatSubscriber): Subscription;
  unsubscribe(info: SubscriberInfo): Promise<void>;
  close(): Promise<void>;
  addAttachment(payload: ArrayBufferLike | ArrayBufferView | Blob): unknown;
  isA(name: string): boolean;
  /** This package's client behind the session. */
  getClient(): WslinkClient;
}

export interface EventSubscription {
  unsubscribe: () => void;
}

/** Options of the npm client, plus this package's (all optional). */
export interface WebsocketConnectionOptions extends Partial<Omit<ClientOptions, 'url' | 'reconnect'>> {
  /** One URL or a list (the first one is used, as in npm wslink). */
  urls: string | string[];
  secret?: string;
  /** Accepted and ignored, as by npm wslink (use `reconnect`). */
  retry?: boolean | number;
  reconnect?: boolean | ReconnectOptions;
  protocol?: Generation;
  WebSocket?: WebSocketConstructor;
}

export interface WebsocketConnection {
  connect(): WebsocketSession | null;
  getSession(): WebsocketSession | null;
  getUrl(): string | undefined;
  /** Asks the server to exit after `timeout` s (`application.exit.later`, as npm wslink does) and closes. */
  destroy(timeout?: number): void;
  onConnectionReady(callback: (connection: WebsocketConnection) => void): EventSubscription | null;
  onConnectionError(callback: (connection: WebsocketConnection, error: unknown) => void): EventSubscription | null;
  onConnectionClose(callback: (connection: WebsocketConnection, event: CloseInfo) => void): EventSubscription | null;
  fireConnectionReady(connection: WebsocketConnection): void;
  fireConnectionError(connection: WebsocketConnection, error: unknown): void;
  fireConnectionClose(connection: WebsocketConnection, event: CloseInfo): void;
  isA(name: string): boolean;
  /** This package's client for the current connection. */
  getClient(): WslinkClient | null;
}

// --------------------------------------------------------------------------

type Callback = (...args: never[]) => unknown;

/** npm wslink's events: `onX(cb)` returns `{unsubscribe}`; `fireX` calls back asynchronously. */
class CompatEvent {
  private callbacks: (Callback | null)[] = [];
  deleted = false;

  on(callback: Callback): EventSubscription | null {
    if (this.deleted) return null;
    const index = this.callbacks.length;
    this.callbacks.push(callback);
    return Object.freeze({
      unsubscribe: () => {
        this.callbacks[index] = null;
      },
    });
  }

  fire(self: unknown, args: unknown[], onError: (e: unknown) => void): void {
    if (this.deleted) return;
    setTimeout(() => {
      for (const callback of this.callbacks) {
        if (!callback) continue;
        try {
          (callback as (...a: unknown[]) => unknown).apply(self, args);
        } catch (e) {
          onError(e);
        }
      }
    }, 0);
  }

  clear(): void {
    this.callbacks = [];
    this.deleted = true;
  }
}

function createSession(client: WslinkClient): WebsocketSession {
  const entries = new Map<string, { callback: CompatSubscriber; unsubscribe: () => void }[]>();

  const unsubscribe = (info: SubscriberInfo): Promise<void> => {
    const { topic, callback } = info;
    const list = entries.get(topic);
    if (!list) return Promise.reject(clientError('not-connected', `Unsubscribe call ${topic} unsuccessful: not subscribed`));
    const index = list.findIndex((e) => e.callback === callback);
    if (index === -1) return Promise.reject(clientError('not-connected', `Unsubscribe call ${topic} unsuccessful: callback not found`));
    const [entry] = list.splice(index, 1);
    entry?.unsubscribe();
    return Promise.resolve();
  };

  const session: WebsocketSession = {
    call: (method, args = [], kwargs = {}, options = {}) => client.call(method, args, kwargs, options),
    subscribe: (topic, callback) => {
      let promise: Promise<SubscriberInfo>;
      // As npm wslink: subscribing needs an open session.
      if (client.clientId !== null) {
        const off = client.subscribe(topic, (result) => {
          callback([result]);
        });
        let list = entries.get(topic);
        if (!list) {
          list = [];
          entries.set(topic, list);
        }
        list.push({ callback, unsubscribe: off });
        promise = Promise.resolve({ topic, callback });
      } else {
        promise = Promise.reject(clientError('not-connected', `Subscribe call ${topic} unsuccessful: connection not open`));
      }
      return { topic, callback, promise, unsubscribe: () => unsubscribe({ topic, callback }) };
    },
    unsubscribe,
    close: () => {
      void client.close();
      return Promise.resolve();
    },
    addAttachment: (payload) => client.addAttachment(payload),
    isA: (name) => name === 'Session',
    getClient: () => client,
  };
  return Object.freeze(session);
}

function toClientOptions(url: string, options: Omit<WebsocketConnectionOptions, 'urls'>): ClientOptions {
  const { retry: _retry, reconnect, secret, ...rest } = options;
  const clientOptions: ClientOptions = { ...rest, url, secret: secret || DEFAULT_SECRET };
  if (reconnect !== undefined) clientOptions.reconnect = reconnect;
  return clientOptions;
}

function newWebsocketConnection(initialValues: WebsocketConnectionOptions): WebsocketConnection {
  const model = { ...initialValues };
  let client: WslinkClient | null = null;
  let session: WebsocketSession | null = null;
  let deleted = false;
  const ready = new CompatEvent();
  const error = new CompatEvent();
  const close = new CompatEvent();
  const listenerError = (e: unknown): void => {
    const logger = model.logger;
    logger?.error?.('wslink: a connection event listener threw', e);
  };

  const publicAPI: WebsocketConnection = {
    connect: () => {
      if (deleted || !model.urls) return null;
      const urls = ([] as string[]).concat(model.urls);
      const url = urls[0];
      if (typeof url !== 'string' || !/^wss?:/i.test(url)) {
        const protocol = typeof url === 'string' ? url.substring(0, url.indexOf(':')) : String(url);
        publicAPI.fireConnectionError(
          publicAPI,
          clientError('connect-failed', `Unknown protocol (${protocol}) for url (${String(url)}).  Unable to create transport object.`),
        );
        return null;
      }
      if (client) {
        const active = client.state === 'connecting' || client.state === 'open' || client.state === 'reconnecting';
        if (client.url === url && active) return session;
        void client.close();
      }
      const c = new WslinkClient(toClientOptions(url, model));
      client = c;
      session = createSession(c);
      c.on('ready', () => publicAPI.fireConnectionReady(publicAPI));
      c.on('error', (e: WslinkError) => {
        // Listener failures and notices that leave the connection up are
        // not connection errors; a protocol error that closes it is.
        const fatal = e.kind !== 'protocol' || e.closeCode !== undefined;
        if (e.kind !== 'callback' && fatal) publicAPI.fireConnectionError(publicAPI, e);
      });
      // npm wslink fires ConnectionClose once per socket closed.
      let closeAlreadyFired = false;
      c.on('disconnect', (info) => {
        closeAlreadyFired = !info.willReconnect;
        publicAPI.fireConnectionClose(publicAPI, { code: info.code, reason: info.reason, wasClean: info.wasClean });
      });
      c.on('close', (info) => {
        if (closeAlreadyFired) closeAlreadyFired = false;
        else publicAPI.fireConnectionClose(publicAPI, info);
      });
      c.connect().catch(() => {
        // Reported through onConnectionError.
      });
      return session;
    },
    getSession: () => session,
    getUrl: () => client?.url,
    getClient: () => client,
    destroy: (timeout = 10) => {
      if (client) {
        if (client.state === 'open' && timeout > 0) {
          client.call('application.exit.later', [timeout]).catch(() => {
            // The server may not have this method (ParaView has it).
          });
        }
        void client.close();
      }
      client = null;
      deleted = true;
      ready.clear();
      error.clear();
      close.clear();
    },
    onConnectionReady: (cb) => ready.on(cb),
    onConnectionError: (cb) => error.on(cb),
    onConnectionClose: (cb) => close.on(cb),
    fireConnectionReady: (connection) => ready.fire(publicAPI, [connection], listenerError),
    fireConnectionError: (connection, err) => error.fire(publicAPI, [connection, err], listenerError),
    fireConnectionClose: (connection, event) => close.fire(publicAPI, [connection, event], listenerError),
    isA: (name) => name === 'WebsocketConnection',
  };
  return Object.freeze(publicAPI);
}

/** `WebsocketConnection.newInstance({urls, secret})`, as in npm wslink. */
export const WebsocketConnection = Object.freeze({
  newInstance: newWebsocketConnection,
});

// --------------------------------------------------------------------------
// SmartConnect

export interface SmartConnectConfig extends Partial<Omit<WebsocketConnectionOptions, 'urls'>> {
  /** Direct URL, e.g. `ws://localhost:1234/ws`. `USE_HOSTNAME` / `USE_HOST` are replaced from window.location. */
  sessionURL?: string;
  /** Launcher endpoint (POSTed the config, answers with `{sessionURL, secret, ...}`). */
  sessionManagerURL?: string;
  /** Delays (ms) between launcher retries on HTTP 503. */
  launcherRetry?: number[];
  /** Extra HTTP headers for the launcher request. */
  headers?: Record<string, string>;
  [key: string]: unknown;
}

export type ConfigDecorator = (config: SmartConnectConfig) => SmartConnectConfig;

export interface SmartConnectOptions {
  config?: SmartConnectConfig;
  configDecorator?: ConfigDecorator | null;
}

export interface SmartConnect {
  connect(): void;
  getSession(): WebsocketSession | null;
  onConnectionReady(callback: (connection: WebsocketConnection) => void): EventSubscription | null;
  onConnectionError(callback: (connection: unknown, error: unknown) => void): EventSubscription | null;
  onConnectionClose(callback: (connection: WebsocketConnection, event: CloseInfo) => void): EventSubscription | null;
  destroy(timeout?: number): void;
  getConfig(): SmartConnectConfig;
  getConfigDecorator(): ConfigDecorator | null;
  setConfigDecorator(decorator: ConfigDecorator | null): void;
  isA(name: string): boolean;
}

interface BrowserLocation {
  hostname: string;
  host: string;
  port: string;
  protocol: string;
  pathname: string;
}

function browserLocation(): BrowserLocation | null {
  const w = (globalThis as { window?: { location?: BrowserLocation } }).window;
  return w?.location ?? null;
}

function decorateConfig(config: SmartConnectConfig): SmartConnectConfig {
  const location = browserLocation();
  if (config.sessionURL && location) {
    config.sessionURL = config.sessionURL.replaceAll('USE_HOSTNAME', location.hostname).replaceAll('USE_HOST', location.host);
  }
  return config;
}

function pathPrefix(addOn: string, pathName: string): string {
  let p = pathName;
  if (p.endsWith('.html') || p.endsWith('.htm')) p = p.split('/').slice(0, -1).join('/');
  while (p.endsWith('/')) p = p.slice(0, -1);
  return `${p}${addOn}`;
}

/** The URL SmartConnect falls back to in a browser: this page's host, path + `/ws`. */
export function defaultSessionURL(): string | null {
  const location = browserLocation();
  if (!location) return null;
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.hostname}:${location.port}${pathPrefix('/ws', location.pathname)}`;
}

/** The launcher endpoint SmartConnect uses by default in a browser (`<baseURI>paraview/`). */
export function defaultSessionManagerURL(): string | null {
  const d = (globalThis as { document?: { baseURI?: string } }).document;
  return d?.baseURI ? `${d.baseURI}paraview/` : null;
}

async function launch(endPoint: string, config: SmartConnectConfig): Promise<Record<string, unknown>> {
  const retries = [...(config.launcherRetry ?? [])];
  const { headers, ...body } = config;
  for (;;) {
    const response = await fetch(endPoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify(body, (_k, v: unknown) => (typeof v === 'function' ? undefined : v)),
    });
    if (response.status === 503 && retries.length > 0) {
      await new Promise((r) => setTimeout(r, retries.shift()));
      continue;
    }
    let json: unknown = null;
    try {
      json = await response.json();
    } catch {
      json = null;
    }
    const data = (json ?? {}) as Record<string, unknown>;
    if (response.status === 200 && json && !data.error) return data;
    throw Object.assign(new Error(`Launcher answered HTTP ${response.status}`), { response: data, status: response.status });
  }
}

function newSmartConnect(initialValues: SmartConnectOptions = {}): SmartConnect {
  let config: SmartConnectConfig = { ...(initialValues.config ?? {}) };
  let decorator: ConfigDecorator | null = initialValues.configDecorator ?? null;
  let session: WebsocketSession | null = null;
  const connections: WebsocketConnection[] = [];
  const subscriptions: EventSubscription[] = [];
  const ready = new CompatEvent();
  const error = new CompatEvent();
  const close = new CompatEvent();
  let destroyed = false;
  const listenerError = (e: unknown): void => {
    config.logger?.error?.('wslink: a SmartConnect event listener threw', e);
  };

  const wsConnect = (): WebsocketSession | null => {
    const { sessionURL, sessionManagerURL: _m, launcherRetry: _r, headers: _h, ...rest } = config;
    const connection = WebsocketConnection.newInstance({ ...(rest as Omit<WebsocketConnectionOptions, 'urls'>), urls: sessionURL ?? '' });
    const push = (s: EventSubscription | null): void => {
      if (s) subscriptions.push(s);
    };
    push(
      connection.onConnectionReady((c) => {
        session = c.getSession();
        ready.fire(publicAPI, [c], listenerError);
      }),
    );
    push(connection.onConnectionError((c, e) => error.fire(publicAPI, [c, e], listenerError)));
    push(connection.onConnectionClose((c, e) => close.fire(publicAPI, [c, e], listenerError)));
    connections.push(connection);
    return connection.connect();
  };

  const publicAPI: SmartConnect = {
    connect: () => {
      if (destroyed) return;
      if (decorator) config = decorator(config);
      config = decorateConfig(config);
      if (config.sessionURL) {
        session = wsConnect();
        return;
      }
      if (config.wsProxy) {
        error.fire(publicAPI, [publicAPI, clientError('connect-failed', 'wsProxy is not supported by this client')], listenerError);
        return;
      }
      const endPoint = config.sessionManagerURL ?? defaultSessionManagerURL();
      if (!endPoint) {
        error.fire(publicAPI, [publicAPI, clientError('connect-failed', 'No sessionURL and no launcher endpoint (sessionManagerURL)')], listenerError);
        return;
      }
      launch(endPoint, config).then(
        (data) => {
          if (destroyed) return;
          config = decorator ? decorator({ ...config, ...data }) : { ...config, ...data };
          config = decorateConfig(config);
          session = wsConnect();
        },
        (err: unknown) => {
          const e = err as { response?: { error?: unknown } };
          if (destroyed) return;
          if (e.response?.error) {
            error.fire(publicAPI, [e, e.response.error], listenerError);
            return;
          }
          const fallback = defaultSessionURL();
          if (!fallback) {
            error.fire(publicAPI, [publicAPI, e], listenerError);
            return;
          }
          config.sessionURL = fallback;
          config = decorateConfig(config);
          session = wsConnect();
        },
      );
    },
    getSession: () => session,
    onConnectionReady: (cb) => ready.on(cb),
    onConnectionError: (cb) => error.on(cb),
    onConnectionClose: (cb) => close.on(cb),
    destroy: (timeout = 10) => {
      destroyed = true;
      while (subscriptions.length) subscriptions.pop()?.unsubscribe();
      if (session) {
        const client = session.getClient();
        if (timeout > 0 && client.state === 'open') {
          client.call('application.exit.later', [timeout]).catch(() => {});
        }
        void client.close();
      }
      session = null;
      while (connections.length) connections.pop()?.destroy(0);
      ready.clear();
      error.clear();
      close.clear();
    },
    getConfig: () => config,
    getConfigDecorator: () => decorator,
    setConfigDecorator: (d) => {
      decorator = d;
    },
    isA: (name) => name === 'SmartConnect',
  };
  return Object.freeze(publicAPI);
}

/** `SmartConnect.newInstance({config: {sessionURL, secret}})`, as in npm wslink. */
export const SmartConnect = Object.freeze({
  newInstance: newSmartConnect,
});

export { WslinkError };

/*
 * remote-view: the browser side of the wslink-rs headline demo.
 *
 * Kitware's vtk.js RemoteView, unmodified, shows the JPEG frames a Rust
 * wslink server renders, over one of three SmartConnect implementations:
 *
 *   ?client=wslink2  npm wslink 2.5.0  (default; msgpack, wslink 2.x wire)
 *   ?client=wslink1  npm wslink 1.12.4 (JSON text + binary attachments, 1.x wire)
 *   ?client=rs       the wslink-rs TypeScript client (js-client/, its
 *                    npm-compatible SmartConnect)
 *
 * Other query parameters:
 *   view=<id>        view id (default "-1", RemoteView's default)
 *   secret=<s>       wslink secret (default "wslink-secret")
 *   ws=<url>         full WebSocket URL (default ws(s)://<page host>/ws)
 *   protocol=1|2     only for client=rs: wire generation (default 2)
 *
 * Everything the tests and the benchmark need is on `window.remoteView`
 * (see the bottom of this file). Nothing here changes vtk.js: the page only
 * observes, by handing vtk.js a session whose `call` is recorded.
 */
import vtkWSLinkClient from '@kitware/vtk.js/IO/Core/WSLinkClient';
import vtkRemoteView from '@kitware/vtk.js/Rendering/Misc/RemoteView';
import SmartConnectWslink2 from 'wslink-2/src/SmartConnect';
import SmartConnectWslink1 from 'wslink-1/src/SmartConnect';
// The project's own client, built by `cd js-client && npm ci && npm run build`.
import SmartConnectRs from '../../../../js-client/dist/src/SmartConnect.js';

const IMAGE_TOPIC = 'viewport.image.push.subscription';
const WHEEL_RPC = 'viewport.mouse.zoom.wheel';
const MAX_RECORDS = 5000;

const CLIENTS = {
  wslink2: { label: 'npm wslink 2.5.0', SmartConnect: SmartConnectWslink2 },
  wslink1: { label: 'npm wslink 1.12.4', SmartConnect: SmartConnectWslink1 },
  rs: { label: 'wslink-rs js-client', SmartConnect: SmartConnectRs },
};

// ---------------------------------------------------------------------------
// Query parameters

const params = new URLSearchParams(window.location.search);
const clientName = params.get('client') || 'wslink2';
const viewId = params.get('view') || '-1';
const secret = params.get('secret') ?? 'wslink-secret';
const sessionURL =
  params.get('ws') || `${window.location.protocol === 'https:' ? 'wss:' : 'ws:'}//${window.location.host}/ws`;
const rsProtocol = params.get('protocol');

// ---------------------------------------------------------------------------
// Test hooks (filled in as we go)

const state = {
  client: clientName,
  clientLabel: CLIENTS[clientName]?.label ?? null,
  viewId,
  sessionURL,
  connected: false,
  status: 'loading',
  errors: [],
  pageErrors: [],
  calls: [],
  frames: [],
  decoded: [],
  view: null,
  viewStream: null,
  wslinkClient: null,
  session: null,
  snapshot,
  setInteractiveQuality,
  setThrottle,
  close,
  fps: currentFps,
};
window.remoteView = state;

function pushBounded(list, item) {
  list.push(item);
  if (list.length > MAX_RECORDS) list.splice(0, list.length - MAX_RECORDS);
}

function describe(value) {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  if (typeof value === 'string') return value;
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  if (typeof Event !== 'undefined' && value instanceof Event) {
    const target = value.target && value.target.url ? ` on ${value.target.url}` : '';
    if (typeof CloseEvent !== 'undefined' && value instanceof CloseEvent) {
      return `close event${target} (code ${value.code}${value.reason ? `, ${value.reason}` : ''})`;
    }
    return `${value.type} event${target}`;
  }
  if (typeof value.isA === 'function' && value.isA('WebsocketConnection')) return 'WebsocketConnection';
  if (typeof value === 'object') {
    const parts = [];
    if (value.code !== undefined) parts.push(`code ${value.code}`);
    if (value.message) parts.push(String(value.message));
    if (value.reason) parts.push(String(value.reason));
    if (parts.length) return parts.join(': ');
    try {
      return JSON.stringify(value).slice(0, 300);
    } catch {
      return Object.prototype.toString.call(value);
    }
  }
  return String(value);
}

function recordError(text) {
  pushBounded(state.errors, text);
  setStatus(text, true);
}

window.addEventListener('error', (e) => {
  pushBounded(state.pageErrors, describe(e.error ?? e.message));
});
window.addEventListener('unhandledrejection', (e) => {
  pushBounded(state.pageErrors, `unhandled rejection: ${describe(e.reason)}`);
});

// ---------------------------------------------------------------------------
// Instrumentation: a SmartConnect class that behaves exactly like the real
// one, except that the session it hands out (connection.getSession()) records
// every `call`. The real sessions of npm wslink and of js-client differ in
// shape (closures vs. frozen objects), so we forward through a Proxy over an
// empty target rather than patching the session in place.

function forward(target, overrides) {
  return new Proxy(
    {},
    {
      get(_obj, prop) {
        if (Object.prototype.hasOwnProperty.call(overrides, prop)) return overrides[prop];
        const value = target[prop];
        return typeof value === 'function' ? value.bind(target) : value;
      },
      has(_obj, prop) {
        return prop in overrides || prop in target;
      },
    },
  );
}

function cloneArgs(args) {
  try {
    return structuredClone(args);
  } catch {
    return args;
  }
}

function shortResult(result) {
  if (result === undefined || result === null || typeof result !== 'object') return result;
  try {
    const text = JSON.stringify(result);
    return text.length <= 500 ? JSON.parse(text) : '[large result]';
  } catch {
    return '[unserializable result]';
  }
}

const wrappedSessions = new WeakMap();
function instrumentSession(session) {
  if (!session) return session;
  let wrapped = wrappedSessions.get(session);
  if (wrapped) return wrapped;
  const call = (method, args = [], ...rest) => {
    const entry = { t: performance.now(), method, args: cloneArgs(args) };
    pushBounded(state.calls, entry);
    const promise = session.call(method, args, ...rest);
    // Observe only: vtk.js gets the original promise back.
    Promise.resolve(promise).then(
      (result) => {
        entry.dt = performance.now() - entry.t;
        entry.result = shortResult(result);
      },
      (error) => {
        entry.dt = performance.now() - entry.t;
        entry.error = describe(error);
        pushBounded(state.errors, `call ${method} rejected: ${describe(error)}`);
      },
    );
    return promise;
  };
  wrapped = forward(session, { call });
  wrappedSessions.set(session, wrapped);
  return wrapped;
}

const wrappedConnections = new WeakMap();
function instrumentConnection(connection) {
  if (!connection || typeof connection !== 'object') return connection;
  let wrapped = wrappedConnections.get(connection);
  if (wrapped) return wrapped;
  wrapped = forward(connection, { getSession: () => instrumentSession(connection.getSession()) });
  wrappedConnections.set(connection, wrapped);
  return wrapped;
}

let closing = false;
function instrumentedSmartConnectClass(SmartConnect) {
  return {
    newInstance(options) {
      const sc = SmartConnect.newInstance(options);
      // vtk.js's WSLinkClient only forwards the first argument of these
      // events (the connection); the second one has the actual reason.
      sc.onConnectionError((_connection, error) => {
        state.connected = false;
        recordError(`connection error (${sessionURL}): ${describe(error)}`);
      });
      sc.onConnectionClose((_connection, event) => {
        const wasConnected = state.connected;
        state.connected = false;
        if (closing) {
          setStatus('closed');
          return;
        }
        const code = event && event.code !== undefined ? ` code ${event.code}` : '';
        const reason = event && event.reason ? ` (${event.reason})` : '';
        recordError(`connection closed${wasConnected ? '' : ' before it was ready'}:${code}${reason}`);
      });
      return forward(sc, {
        onConnectionReady: (callback) =>
          sc.onConnectionReady((connection, ...rest) => callback(instrumentConnection(connection), ...rest)),
        getSession: () => instrumentSession(sc.getSession()),
      });
    },
  };
}

// ---------------------------------------------------------------------------
// HUD

const hudStatus = document.getElementById('hud-status');
const hudStats = document.getElementById('hud-stats');

function setStatus(text, isError = false) {
  state.status = text;
  if (!hudStatus) return;
  hudStatus.textContent = text;
  hudStatus.classList.toggle('error', isError);
}

function currentFps() {
  // Frames received during the last second.
  const now = performance.now();
  let n = 0;
  for (let i = state.frames.length - 1; i >= 0 && now - state.frames[i].t <= 1000; i--) n++;
  return n;
}

function updateHud() {
  if (!hudStats) return;
  const lastFrame = state.frames[state.frames.length - 1];
  const lastDecoded = state.decoded[state.decoded.length - 1];
  let size = '–';
  if (lastDecoded && lastDecoded.width) size = `${lastDecoded.width}×${lastDecoded.height}`;
  else if (lastFrame && Array.isArray(lastFrame.size)) size = `${lastFrame.size[0]}×${lastFrame.size[1]}`;
  const quality = lastFrame && lastFrame.quality !== undefined ? lastFrame.quality : '–';
  const kb = lastFrame && lastFrame.bytes ? ` ${(lastFrame.bytes / 1024).toFixed(1)} KiB` : '';
  hudStats.textContent =
    `client ${state.client} (${state.clientLabel ?? 'unknown'})\n` +
    `view ${state.viewId}  frame ${size}${kb}\n` +
    `fps ${currentFps()}  quality ${quality}  frames ${state.frames.length}`;
}
setInterval(updateHud, 250);
updateHud();

// ---------------------------------------------------------------------------
// Connection and view

let wslinkClient = null;
let view = null;
let viewStream = null;
let frameSubscription = null;

function onFrame([msg]) {
  if (!msg) return;
  const image = msg.image;
  pushBounded(state.frames, {
    t: performance.now(),
    id: msg.id,
    size: msg.size,
    format: msg.format,
    quality: msg.quality,
    memsize: msg.memsize,
    mtime: msg.mtime,
    workTime: msg.workTime,
    eventCount: msg.eventCount,
    stale: msg.stale,
    bytes: image ? image.byteLength || image.size : undefined,
    binary: image ? Object.prototype.toString.call(image).slice(8, -1) : undefined,
  });
}

function createView(client) {
  const container = document.getElementById('view');
  const session = client.getConnection().getSession(); // the recording session
  state.session = session;

  // A second subscriber on the image topic, for metadata only.
  frameSubscription = session.subscribe(IMAGE_TOPIC, onFrame);
  Promise.resolve(frameSubscription.promise).catch((e) =>
    recordError(`subscribe ${IMAGE_TOPIC} failed: ${describe(e)}`),
  );

  // Exactly as vtk.js / trame applications do it.
  viewStream = client.getImageStream().createViewStream(viewId);
  view = vtkRemoteView.newInstance({ rpcWheelEvent: WHEEL_RPC, viewStream });
  view.setSession(session);
  view.setContainer(container);

  viewStream.onImageReady((e) => {
    pushBounded(state.decoded, {
      t: performance.now(),
      width: e.image ? e.image.naturalWidth : undefined,
      height: e.image ? e.image.naturalHeight : undefined,
      metadata: e.metadata ? { ...e.metadata } : undefined,
    });
  });

  state.view = view;
  state.viewStream = viewStream;

  // Resize: window resize and ResizeObserver, coalesced to one per frame and
  // only when the container's size actually changed (RemoteView.resize()
  // always sends a render request).
  let lastSize = sizeOf(container);
  let pending = false;
  const maybeResize = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      if (!view) return;
      const size = sizeOf(container);
      if (size[0] === lastSize[0] && size[1] === lastSize[1]) return;
      lastSize = size;
      view.resize();
    });
  };
  window.addEventListener('resize', maybeResize);
  if (typeof ResizeObserver !== 'undefined') new ResizeObserver(maybeResize).observe(container);
}

function sizeOf(el) {
  const { width, height } = el.getBoundingClientRect();
  return [width, height];
}

function connect() {
  const entry = CLIENTS[clientName];
  if (!entry) {
    recordError(`unknown client "${clientName}" (use wslink2, wslink1 or rs)`);
    return;
  }
  vtkWSLinkClient.setSmartConnectClass(instrumentedSmartConnectClass(entry.SmartConnect));
  wslinkClient = vtkWSLinkClient.newInstance();
  state.wslinkClient = wslinkClient;

  const config = { application: 'remote-view', sessionURL, secret };
  if (clientName === 'rs' && rsProtocol) config.protocol = Number(rsProtocol);

  setStatus(`connecting to ${sessionURL}…`);
  const errorsBefore = state.errors.length;
  wslinkClient
    .connect(config)
    .then((client) => {
      state.connected = true;
      setStatus(`connected to ${sessionURL}`);
      createView(client);
    })
    .catch((error) => {
      state.connected = false;
      // The SmartConnect listeners above have usually said why already.
      if (state.errors.length === errorsBefore) recordError(`connect failed (${sessionURL}): ${describe(error)}`);
    });
}

// ---------------------------------------------------------------------------
// Hooks

function snapshot() {
  const container = document.getElementById('view');
  let img = container ? container.querySelector('img') : null;
  if (!img || !img.complete || !img.naturalWidth) {
    const last = viewStream && viewStream.getLastImageEvent ? viewStream.getLastImageEvent() : null;
    img = last && last.image && last.image.naturalWidth ? last.image : null;
  }
  if (!img) return null;
  const N = 32;
  const canvas = document.createElement('canvas');
  canvas.width = N;
  canvas.height = N;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(img, 0, 0, N, N);
  const { data } = ctx.getImageData(0, 0, N, N);
  let r = 0;
  let g = 0;
  let b = 0;
  // FNV-1a over the 32x32 downscale quantised to 4 bits per channel.
  let hash = 0x811c9dc5;
  for (let i = 0; i < data.length; i += 4) {
    r += data[i];
    g += data[i + 1];
    b += data[i + 2];
    for (let c = 0; c < 3; c++) {
      hash ^= data[i + c] >> 4;
      hash = Math.imul(hash, 0x01000193) >>> 0;
    }
  }
  const n = N * N;
  return {
    mean: [r / n, g / n, b / n].map((v) => Math.round(v * 10) / 10),
    hash: hash.toString(16).padStart(8, '0'),
    width: img.naturalWidth,
    height: img.naturalHeight,
    frames: state.frames.length,
  };
}

function setInteractiveQuality(q) {
  if (!view) return false;
  return view.setInteractiveQuality(q);
}

function setThrottle(ms) {
  if (!view) return false;
  return view.getInteractorStyle().setThrottleDelay(ms);
}

function close() {
  closing = true;
  if (frameSubscription) {
    Promise.resolve(frameSubscription.unsubscribe()).catch(() => {});
    frameSubscription = null;
  }
  if (wslinkClient) {
    // timeout 0: do not ask the server to exit (vtk.js's default is
    // disconnect(60), which calls application.exit.later with 60 s).
    wslinkClient.disconnect(0);
  }
  state.connected = false;
  setStatus('closed');
}

connect();

// The image-stream page: subscribes to the server's frames, draws them on a
// canvas, measures fps, latency and bandwidth, and calls the server's
// methods from the controls. Plain ES module, no bundler.
//
// Query parameters: ?secret=... (the server's --secret; default
// wslink-secret), ?ws=ws://host:port/ws (default: this page's origin + /ws).

import * as wslink from './wslink-client/index.js';

// The npm wslink calling style: WebsocketConnection.newInstance({urls, secret}).
const WebsocketConnection = wslink.WebsocketConnection ?? wslink.default?.WebsocketConnection;

const params = new URLSearchParams(location.search);
const secret = params.get('secret') ?? 'wslink-secret';
const wsUrl =
  params.get('ws') ?? `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;

const $ = (id) => document.getElementById(id);
const canvas = $('view');
const ctx2d = canvas.getContext('2d');
const ui = {
  status: $('status'),
  fps: $('fps'),
  latency: $('latency'),
  bandwidth: $('bandwidth'),
  resolution: $('resolution'),
  framesize: $('framesize'),
  servertime: $('servertime'),
  counts: $('counts'),
  resSelect: $('res-select'),
  fpsInput: $('fps-input'),
  paletteSelect: $('palette-select'),
  error: $('error'),
};

// Everything a test (or a curious person in the console) may want to read.
const demo = {
  connected: false,
  frames: 0, // frames drawn
  received: 0, // frames received
  skipped: 0, // received but replaced by a newer one before being drawn
  lastSeq: -1,
  lastWidth: 0,
  lastHeight: 0,
  fps: 0, // frames drawn per second, over the last second
  latencyMs: 0, // mean over the last second
  bytesPerSec: 0, // received payload bytes per second, over the last second
  state: null, // the server's image.state
  errors: [],
  session: null,
};
window.__demo = demo;

function setStatus(text, cls) {
  ui.status.textContent = text;
  ui.status.className = `status ${cls ?? ''}`;
}

function showError(err) {
  const text =
    err?.data?.exception ?? err?.message ?? (typeof err === 'string' ? err : JSON.stringify(err));
  ui.error.textContent = text;
  demo.errors.push(text);
}

function formatBytes(n) {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}

// --- Frames --------------------------------------------------------------

// Samples of the last second: [time ms, latency ms] per drawn frame and
// [time ms, bytes] per received frame.
const drawn = [];
const arrived = [];
let pending = null; // newest frame not yet drawn
let drawing = false;

// Uint8Array by default; a Blob if the client is set to binaryType 'blob'.
const sizeOf = (data) => data?.byteLength ?? data?.size ?? 0;

function onFrame(frame) {
  demo.received += 1;
  arrived.push([performance.now(), sizeOf(frame.data)]);
  if (pending) demo.skipped += 1;
  pending = frame;
  if (!drawing) drawLoop();
}

async function drawLoop() {
  drawing = true;
  try {
    while (pending) {
      const frame = pending;
      pending = null;
      const blob = new Blob([frame.data], { type: `image/${frame.format ?? 'png'}` });
      let bitmap;
      try {
        bitmap = await createImageBitmap(blob);
      } catch (err) {
        showError(`cannot decode frame ${frame.seq}: ${err}`);
        continue;
      }
      if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
        canvas.width = bitmap.width;
        canvas.height = bitmap.height;
      }
      ctx2d.drawImage(bitmap, 0, 0);
      bitmap.close();
      demo.frames += 1;
      demo.lastSeq = frame.seq;
      demo.lastWidth = frame.width;
      demo.lastHeight = frame.height;
      drawn.push([performance.now(), Date.now() - frame.timestamp_ms]);
      ui.framesize.textContent = formatBytes(sizeOf(frame.data));
    }
  } finally {
    drawing = false;
  }
}

function trim(samples, now) {
  while (samples.length && now - samples[0][0] > 1000) samples.shift();
}

// Refresh the numbers four times a second, over a sliding one-second window.
setInterval(() => {
  const now = performance.now();
  trim(drawn, now);
  trim(arrived, now);
  demo.fps = drawn.length;
  demo.latencyMs = drawn.length ? drawn.reduce((s, [, l]) => s + l, 0) / drawn.length : 0;
  demo.bytesPerSec = arrived.reduce((s, [, b]) => s + b, 0);
  ui.fps.textContent = demo.connected ? `${demo.fps}` : '–';
  ui.latency.textContent = drawn.length ? `${demo.latencyMs.toFixed(1)} ms` : '–';
  ui.bandwidth.textContent = demo.connected ? `${formatBytes(demo.bytesPerSec)}/s` : '–';
  ui.resolution.textContent = demo.lastWidth ? `${demo.lastWidth} × ${demo.lastHeight}` : '–';
  ui.counts.textContent = `${demo.frames} / ${demo.skipped}`;
  const st = demo.state;
  if (st && st.last_frame_bytes) {
    ui.servertime.textContent = `${(st.last_render_ms + st.last_encode_ms).toFixed(1)} ms`;
  }
}, 250);

// --- Server state and controls ------------------------------------------

function showState(state) {
  demo.state = state;
  const res = `${state.width}x${state.height}`;
  if (![...ui.resSelect.options].some((o) => o.value === res)) {
    ui.resSelect.add(new Option(`${state.width} × ${state.height}`, res));
  }
  ui.resSelect.value = res;
  if (document.activeElement !== ui.fpsInput) ui.fpsInput.value = String(state.fps);
  const names = state.palettes ?? [];
  if (ui.paletteSelect.options.length !== names.length) {
    ui.paletteSelect.replaceChildren(...names.map((n) => new Option(n, n)));
  }
  ui.paletteSelect.value = state.palette;
}

async function call(method, args) {
  ui.error.textContent = '';
  try {
    const state = await demo.session.call(method, args);
    if (state && typeof state === 'object' && 'width' in state) showState(state);
    return state;
  } catch (err) {
    showError(err);
    // Put the controls back to what the server has.
    if (demo.state) {
      showState(demo.state);
      ui.fpsInput.value = String(demo.state.fps);
    }
    return undefined;
  }
}

ui.resSelect.addEventListener('change', () => {
  const [w, h] = ui.resSelect.value.split('x').map(Number);
  call('image.set_resolution', [w, h]);
});
ui.fpsInput.addEventListener('change', () => {
  call('image.set_fps', [Number(ui.fpsInput.value)]);
});
ui.paletteSelect.addEventListener('change', () => {
  call('image.set_palette', [ui.paletteSelect.value]);
});

// Periodically refresh the server-side timings shown in the panel.
setInterval(async () => {
  if (!demo.connected) return;
  try {
    demo.state = await demo.session.call('image.state', []);
  } catch {
    /* shown on the next user action if it persists */
  }
}, 2000);

// --- Connection -----------------------------------------------------------

function connect() {
  setStatus(`connecting to ${wsUrl}…`);
  const connection = WebsocketConnection.newInstance({ urls: wsUrl, secret });
  connection.onConnectionReady(async () => {
    const session = connection.getSession();
    demo.session = session;
    demo.connected = true;
    setStatus(`connected to ${wsUrl}`, 'ok');
    session.subscribe('image.frames', ([frame]) => onFrame(frame));
    session.subscribe('image.state', ([state]) => showState(state));
    const state = await call('image.state', []);
    if (!state) setStatus('connected, but image.state failed', 'bad');
  });
  connection.onConnectionError((_c, event) => {
    demo.connected = false;
    setStatus(`cannot connect to ${wsUrl}`, 'bad');
    demo.errors.push(`connection error: ${event?.message ?? event?.type ?? event}`);
  });
  let closed = false;
  connection.onConnectionClose(() => {
    if (closed) return;
    closed = true;
    demo.connected = false;
    demo.session = null;
    setStatus('disconnected; reconnecting in 2 s…', 'bad');
    // A fresh connection (and subscriptions) once the server is back.
    // destroy(0): drop this one without asking the server to exit.
    connection.destroy(0);
    setTimeout(connect, 2000);
  });
  connection.connect();
}

connect();

// Shared by the golden-vector npm scripts: loads Kitware's OFFICIAL npm
// wslink browser bundle (dist/wslink.js, used unmodified) under Node 20 with
// the few browser globals it touches, and a fake WebSocket that records what
// the client sends and lets us hand it frames.
//
// Peers come from $NPM_PEERS (a node_modules directory with wslink-2,
// wslink-1 and @msgpack/msgpack), by default tests/peers/node_modules as
// installed by tests/peers/install.sh.

import { createRequire } from 'node:module';
import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../../..');
export const npmPeers = path.resolve(
  process.env.NPM_PEERS || path.join(repoRoot, 'tests/peers/node_modules'),
);
const require = createRequire(import.meta.url);

export const NPM_VERSIONS = { 2: '2.5.0', 1: '1.12.4' };
export const producerOf = (generation) => `npm-wslink-${NPM_VERSIONS[generation]}`;

// --------------------------------------------------------------------------
// Browser globals the bundle reads: it is a UMD bundle wrapped around `self`,
// and SmartConnect computes default URLs from window.location at load time.

const fakeLocation = {
  protocol: 'http:',
  hostname: 'golden.invalid',
  host: 'golden.invalid',
  port: '',
  pathname: '/',
  href: 'http://golden.invalid/',
};
globalThis.self ??= globalThis;
globalThis.window ??= globalThis;
globalThis.location ??= fakeLocation;
globalThis.document ??= { baseURI: fakeLocation.href };

// --------------------------------------------------------------------------

export class FakeWebSocket {
  static last = null;

  constructor(url) {
    this.url = url;
    this.readyState = 1; // OPEN: Session.call() checks it
    this.binaryType = 'blob';
    this.sent = []; // [data, options] as given to send()
    FakeWebSocket.last = this;
  }

  send(data, options) {
    this.sent.push([data, options]);
  }

  close() {
    this.readyState = 3;
  }

  take() {
    const s = this.sent;
    this.sent = [];
    return s;
  }
}
globalThis.WebSocket = FakeWebSocket;

const bundles = {};

export function loadWslink(generation) {
  if (!bundles[generation]) {
    const dir = path.join(npmPeers, `wslink-${generation}`);
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
    if (pkg.version !== NPM_VERSIONS[generation]) {
      throw new Error(`${dir} is wslink ${pkg.version}, wanted ${NPM_VERSIONS[generation]}`);
    }
    bundles[generation] = require(path.join(dir, 'dist/wslink.js'));
  }
  return bundles[generation];
}

export function loadMsgpack() {
  return require(path.join(npmPeers, '@msgpack/msgpack'));
}

/** A connection made the way an application makes one: WebsocketConnection
 *  .newInstance({urls, secret}).connect(); the socket is our fake. */
export function openConnection(generation, secret = 'golden-secret') {
  const wslink = loadWslink(generation);
  const connection = wslink.WebsocketConnection.newInstance({
    urls: 'ws://golden.invalid/ws',
    secret,
  });
  const session = connection.connect();
  const ws = FakeWebSocket.last;
  return { connection, session, ws };
}

// --------------------------------------------------------------------------
// bytes

export function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new Error(`not bytes: ${Object.prototype.toString.call(data)}`);
}

export async function toBytesAsync(data) {
  if (data instanceof Blob) return new Uint8Array(await data.arrayBuffer());
  return toBytes(data);
}

export const hex = (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
export const unhex = (s) => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

/** A 2.x frame: 12-byte little-endian header (id, offset, total) + content. */
export function frame2(id, offset, total, content) {
  const f = new Uint8Array(12 + content.byteLength);
  const v = new DataView(f.buffer);
  v.setUint32(0, id >>> 0, true);
  v.setUint32(4, offset, true);
  v.setUint32(8, total, true);
  f.set(content, 12);
  return f;
}

/**
 * The built client (dist/src, plain ES modules, @msgpack/msgpack through an
 * import map, no bundler) in headless Chromium against the reference
 * servers. Skipped when Chromium (CHROMIUM or /usr/bin/chromium) or
 * playwright-core (tests/browser/node_modules, installed by
 * tests/browser/run.sh) is missing.
 *
 * It also shows that the 6 MiB single-frame 1.x attachments of the Python
 * 1.12.4 server, which Node 20's WebSocket refuses (the echo.binary-large
 * and blob.large known limitations of the Node runs), are fine in a
 * browser: a 6 MiB blob received, a 6 MiB Blob sent, a 6 MiB echo.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { available, packageRoot, repoRoot, SERVERS, startServer, type RunningServer } from './servers.js';

interface Page {
  goto(url: string): Promise<unknown>;
  waitForFunction(fn: string): Promise<unknown>;
  evaluate<R, A>(fn: (arg: A) => R | Promise<R>, arg: A): Promise<R>;
  on(event: string, listener: (arg: { text?: () => string; message?: string }) => void): void;
}
interface Browser {
  newPage(): Promise<Page>;
  close(): Promise<void>;
}
interface Playwright {
  chromium: { launch(options: { executablePath: string; args: string[] }): Promise<Browser> };
}

function findChromium(): string | null {
  for (const c of [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser']) if (c && fs.existsSync(c)) return c;
  return null;
}

function findPlaywright(): Playwright | null {
  for (const base of [path.join(repoRoot, 'tests/browser/package.json'), path.join(packageRoot, 'package.json')]) {
    try {
      return createRequire(base)('playwright-core') as Playwright;
    } catch {
      // Try the next place.
    }
  }
  return null;
}

const chromium = findChromium();
const playwright = findPlaywright();
const skip = !chromium ? 'no Chromium (set CHROMIUM)' : !playwright ? 'no playwright-core (bash tests/browser/run.sh installs it)' : false;
// tests/run-all.sh installs everything first and sets this, so that a
// missing browser fails there instead of passing as a skip.
if (skip && process.env.WSLINK_REQUIRE_ALL === '1') {
  throw new Error(`browser tests cannot run: ${skip}`);
}

const PAGE = `<!doctype html>
<script type="importmap">{"imports":{"@msgpack/msgpack":"/vendor/msgpack/index.mjs"}}</script>
<script type="module">
import { connect, WebsocketConnection } from '/wslink-client/index.js';
window.check = async ({ url, protocol, secret }) => {
  const LARGE = 6 * 1024 * 1024;
  const out = {};
  const c = await connect({ url, protocol, secret });
  out.add = await c.call('conformance.add', [2, 3]);
  const big = await c.call('conformance.blob', [LARGE, 3]);
  let same = big.blob instanceof Uint8Array && big.blob.byteLength === LARGE;
  for (let i = 0; same && i < LARGE; i += 1) if (big.blob[i] !== (i * 31 + 3) % 251) same = false;
  out.blobLarge = same;
  out.digestOfBlob = await c.call('conformance.digest', [new Blob([new Uint8Array(LARGE).fill(1)])]);
  // echo.binary-large: 6 MiB each way in one call.
  const sent = new Uint8Array(LARGE);
  for (let i = 0; i < LARGE; i += 1) sent[i] = (i * 7 + 1) % 256;
  const echoed = await c.call('conformance.echo', [sent]);
  let echoSame = echoed instanceof Uint8Array && echoed.byteLength === LARGE;
  for (let i = 0; echoSame && i < LARGE; i += 1) if (echoed[i] !== sent[i]) echoSame = false;
  out.echoLarge = echoSame;
  out.int64 = String(await c.call('conformance.echo', [18446744073709551615n]));
  const seqs = [];
  c.subscribe('conformance.topic', (m) => seqs.push(m.seq));
  await c.call('conformance.publish', ['conformance.topic', 5, 10]);
  for (let t = 0; seqs.length < 5 && t < 100; t += 1) await new Promise((r) => setTimeout(r, 20));
  out.published = seqs;
  out.error = await c.call('conformance.fail', ['x']).then(() => null, (e) => [e.name, e.code, e.kind]);
  await c.close();
  out.compat = await new Promise((resolve, reject) => {
    const wc = WebsocketConnection.newInstance({ urls: url, secret, protocol });
    wc.onConnectionReady(async () => {
      const s = wc.getSession();
      const got = [];
      s.subscribe('conformance.topic', (args) => got.push(args));
      await s.call('conformance.publish', ['conformance.topic', 1, 2]);
      for (let t = 0; got.length < 1 && t < 100; t += 1) await new Promise((r) => setTimeout(r, 20));
      resolve([await s.call('conformance.add', [1, 1]), Array.isArray(got[0]) && got[0].length === 1 && got[0][0].seq === 0]);
      wc.destroy(0);
    });
    wc.onConnectionError((_c, e) => reject(String(e)));
    wc.connect();
  });
  return out;
};
window.ready = true;
</script>`;

function serve(): Promise<http.Server> {
  const roots: Record<string, string> = {
    '/wslink-client/': path.join(packageRoot, 'dist/src'),
    '/vendor/msgpack/': path.join(packageRoot, 'node_modules/@msgpack/msgpack/dist.esm'),
  };
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    if (url === '/') {
      res.setHeader('content-type', 'text/html');
      res.end(PAGE);
      return;
    }
    for (const [prefix, dir] of Object.entries(roots)) {
      if (!url.startsWith(prefix)) continue;
      const file = path.join(dir, path.normalize(url.slice(prefix.length)));
      if (file.startsWith(dir) && fs.existsSync(file)) {
        res.setHeader('content-type', 'text/javascript');
        res.end(fs.readFileSync(file));
        return;
      }
    }
    res.statusCode = 404;
    res.end();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    resolve(server);
  }));
}

describe('in headless Chromium', { skip }, () => {
  const servers: RunningServer[] = [];
  let browser: Browser | null = null;
  let http_: http.Server | null = null;
  after(async () => {
    await browser?.close();
    http_?.close();
    await Promise.all(servers.map((s) => s.stop()));
  });

  for (const spec of SERVERS) {
    for (const generation of spec.generations) {
      it(`${spec.name}, wslink ${generation}.x`, { skip: available(spec) ? false : `${spec.name} is not installed`, timeout: 90_000 }, async () => {
        if (!http_) http_ = await serve();
        if (!browser && playwright && chromium) browser = await playwright.chromium.launch({ executablePath: chromium, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
        assert.ok(browser);
        const server = await startServer(spec);
        assert.ok(server);
        servers.push(server);
        const page = await browser.newPage();
        const errors: string[] = [];
        page.on('pageerror', (e) => errors.push(e.message ?? ''));
        const address = http_.address();
        const port = typeof address === 'object' && address ? address.port : 0;
        await page.goto(`http://127.0.0.1:${port}/`);
        await page.waitForFunction('window.ready === true');
        const out = await page.evaluate(
          (arg) => (window as unknown as { check: (a: unknown) => Promise<unknown> }).check(arg),
          { url: server.url, protocol: generation, secret: server.secret },
        );
        assert.deepEqual(errors, []);
        assert.deepEqual(out, {
          add: 5,
          blobLarge: true,
          digestOfBlob: { len: 6 * 1024 * 1024, sum: 6 * 1024 * 1024 },
          echoLarge: true,
          int64: '18446744073709551615',
          published: [0, 1, 2, 3, 4],
          error: ['WslinkError', -32001, 'server'],
          compat: [2, true],
        });
        await server.stop();
      });
    }
  }
});

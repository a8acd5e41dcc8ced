// The remote-view page on the demo's defaults, in Debian's headless
// chromium: a frame rendered by the server is decoded by vtk.js within a
// second of loading, at the page's own size. Called by demo-defaults.sh.
//
//   node demo-defaults.mjs http://127.0.0.1:8080/
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const url = process.argv[2] ?? 'http://127.0.0.1:8080/';
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'demo-defaults-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  viewport: { width: 960, height: 540 },
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let failed = false;
try {
  const page = context.pages()[0] ?? (await context.newPage());
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  const loaded = Date.now();
  // vtk.js asks for 400x400, then 300x300, then the container's size
  // without waiting in between; whichever the server renders first, a
  // frame of the page's size must be on screen within the second.
  const fits = () => window.remoteView?.decoded?.some((d) => d.width === 960 && d.height === 540);
  await page.waitForFunction(fits, null, { timeout: 5000 }).catch(async () => {
    const seen = await page.evaluate(() => window.remoteView?.decoded?.map((d) => `${d.width}x${d.height}`));
    throw new Error(`no 960x540 frame within 5 s; decoded: ${JSON.stringify(seen)}`);
  });
  const ms = Date.now() - loaded;
  const first = await page.evaluate(() => window.remoteView.decoded.find((d) => d.width === 960));
  const snap = await page.evaluate(() => window.remoteView.snapshot());
  if (ms > 1000) throw new Error(`the page's frame came ${ms} ms after loading (over 1 s)`);
  if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
  console.log(`ok    the page shows a ${first.width}x${first.height} frame ${ms} ms after loading (mean colour ${snap.mean.map(Math.round).join(',')})`);
} catch (e) {
  console.log(`FAIL  ${e.message}`);
  failed = true;
} finally {
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);

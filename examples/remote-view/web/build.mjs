// Bundles the remote-view page into dist/: `node build.mjs` (or `npm run build`).
//
// One bundle holds all three SmartConnect choices (npm wslink 2.5.0, npm
// wslink 1.12.4 and the project's js-client); the page picks one with
// ?client=wslink2|wslink1|rs.
import { build } from 'esbuild';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const jsClient = resolve(here, '../../../js-client');
const outdir = join(here, 'dist');

function fail(message) {
  console.error(`build.mjs: ${message}`);
  process.exit(1);
}

// The project's TypeScript client is imported from its build output.
const rsEntry = join(jsClient, 'dist/src/SmartConnect.js');
const rsHint = 'build it first:  cd js-client && npm ci && npm run build  (from the repository root)';
if (!existsSync(rsEntry)) fail(`${relative(process.cwd(), rsEntry)} is missing; ${rsHint}`);
// Its dependency (@msgpack/msgpack 3.x) resolves from js-client/node_modules.
if (!existsSync(join(jsClient, 'node_modules/@msgpack/msgpack/package.json'))) {
  fail(`${relative(process.cwd(), join(jsClient, 'node_modules'))} has no @msgpack/msgpack; ${rsHint}`);
}
if (!existsSync(join(here, 'node_modules/@kitware/vtk.js'))) {
  fail('node_modules is missing; run  npm ci  in examples/remote-view/web first');
}

rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });

const result = await build({
  absWorkingDir: here,
  entryPoints: ['src/main.js'],
  outfile: join(outdir, 'main.js'),
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: 'es2020',
  sourcemap: true,
  minify: process.env.MINIFY !== '0',
  legalComments: 'linked',
  // Bare imports from files under js-client/ resolve from js-client/node_modules
  // anyway (node resolution walks up from the importing file); nodePaths is a
  // fallback for setups where js-client is symlinked elsewhere.
  nodePaths: [join(jsClient, 'node_modules')],
  define: { 'process.env.NODE_ENV': '"production"' },
  metafile: true,
  logLevel: 'warning',
});

for (const file of ['index.html', 'style.css']) copyFileSync(join(here, file), join(outdir, file));

const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
console.log('dist/');
for (const [file, info] of Object.entries(result.metafile.outputs)) {
  const path = join(here, file);
  const gz = file.endsWith('.map') ? '' : `  (${kib(gzipSync(readFileSync(path)).length)} gzip)`;
  console.log(`  ${relative(outdir, path).padEnd(22)} ${kib(info.bytes).padStart(10)}${gz}`);
}
for (const file of ['index.html', 'style.css']) {
  console.log(`  ${file.padEnd(22)} ${kib(readFileSync(join(outdir, file)).length).padStart(10)}`);
}

// Where the bytes of main.js come from, by package.
const main = Object.entries(result.metafile.outputs).find(([f]) => f.endsWith('main.js'))[1];
const byPackage = new Map();
for (const [input, { bytesInOutput }] of Object.entries(main.inputs)) {
  const m = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
  const key = m ? m[1] : input.includes('js-client/') ? 'js-client (wslink-rs)' : 'src';
  byPackage.set(key, (byPackage.get(key) ?? 0) + bytesInOutput);
}
console.log('main.js by package (minified bytes):');
for (const [name, bytes] of [...byPackage].sort((a, b) => b[1] - a[1])) {
  console.log(`  ${name.padEnd(22)} ${kib(bytes).padStart(10)}`);
}

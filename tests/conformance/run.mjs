#!/usr/bin/env node
// Cross-language conformance orchestrator.
//
//   node tests/conformance/run.mjs [--servers a,b] [--clients x,y] [--install]
//                                  [--list] [--runner-timeout S] [--verbose]
//
// Starts every selected server in its own process on a free loopback port,
// waits until the port accepts connections, runs every selected client
// runner of a matching wslink generation against it, stops the server, and
// judges each runner's report against CASES.md and known-limitations.json.
// One summary line per pairing, then the total; the very last line is
// `N passed, M failed`. Exit code 0 iff M is 0. See README.md beside this file.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const logDir = path.join(root, 'target', 'conformance', 'logs');

// --------------------------------------------------------------------------
// The pairings are data. Command words may use the placeholders
//   {root} repository root    {node} this node binary     {port} server port
//   {secret} shared secret    {url} ws://127.0.0.1:{port}/ws
//   {generation} wslink generation of the pairing (2 or 1)
// Commands run with the repository root as working directory.
// `default: false` entries run only when named with --servers / --clients.

const SERVERS = [
  {
    name: 'python-2.6.0',
    generations: [2],
    command: [
      '{root}/target/peers/py2/bin/python', 'tests/peers/python/conformance_server.py',
      '--host', '127.0.0.1', '--port', '{port}', '--authKey', '{secret}', '--timeout', '0',
    ],
    needs: ['target/peers/py2/bin/python'],
    offersSubscriptions: false,
  },
  {
    name: 'python-1.12.4',
    generations: [1],
    command: [
      '{root}/target/peers/py1/bin/python', 'tests/peers/python/conformance_server.py',
      '--host', '127.0.0.1', '--port', '{port}', '--authKey', '{secret}', '--timeout', '0',
    ],
    // wslink 1.x hands WSLINK_MAX_MSG_SIZE (default 4 MiB) to aiohttp as the
    // largest message it accepts, and 1.x does not chunk: with the default,
    // a client's 6 MiB attachment makes the server close with 1009. Raised
    // so that the LARGE cases test the clients rather than this setting.
    env: { WSLINK_MAX_MSG_SIZE: String(16 * 1024 * 1024) },
    needs: ['target/peers/py1/bin/python'],
    offersSubscriptions: false,
  },
  {
    // The project's server; it speaks both generations (picked per connection).
    name: 'rust',
    generations: [2, 1],
    command: [
      '{root}/target/debug/conformance-server',
      '--host', '127.0.0.1', '--port', '{port}', '--authKey', '{secret}',
    ],
    needs: ['target/debug/conformance-server'],
    // Declared subscriptions (PROTOCOL.md §8), in its hello reply.
    offersSubscriptions: true,
  },
];

const NPM_RUNNER = [
  '{node}', '--experimental-websocket', 'tests/conformance/npm-client.mjs',
  '--url', '{url}', '--secret', '{secret}', '--generation', '{generation}',
];

const CLIENTS = [
  {
    name: 'npm-2.5.0',
    generations: [2],
    command: NPM_RUNNER,
    needs: ['tests/peers/node_modules/wslink-2/dist/wslink.js'],
  },
  {
    name: 'npm-1.12.4',
    generations: [1],
    command: NPM_RUNNER,
    needs: ['tests/peers/node_modules/wslink-1/dist/wslink.js'],
  },
  {
    name: 'rust',
    generations: [2, 1],
    command: ['{root}/target/debug/examples/conformance_runner', '--url', '{url}', '--secret', '{secret}', '--generation', '{generation}'],
    needs: ['target/debug/examples/conformance_runner'],
  },
  {
    name: 'typescript',
    generations: [2, 1],
    command: ['{node}', '--experimental-websocket', 'tests/conformance/ts-client.mjs', '--url', '{url}', '--secret', '{secret}', '--generation', '{generation}'],
    needs: ['js-client/dist/src/index.js'],
  },
];

const SECRET = 'conformance-secret-not-the-default';

// --------------------------------------------------------------------------
// Command line

function parseArgs(argv) {
  const opts = { servers: null, clients: null, install: false, list: false, runnerTimeout: 90, verbose: false };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${arg} needs a value`);
      i += 1;
      return argv[i];
    };
    if (arg === '--servers') opts.servers = value().split(',').filter(Boolean);
    else if (arg === '--clients') opts.clients = value().split(',').filter(Boolean);
    else if (arg === '--install') opts.install = true;
    else if (arg === '--list') opts.list = true;
    else if (arg === '--runner-timeout') opts.runnerTimeout = Number(value());
    else if (arg === '--verbose' || arg === '-v') opts.verbose = true;
    else if (arg === '-h' || arg === '--help') usage(null);
    else usage(`unknown argument ${arg}`);
  }
  return opts;
}

function usage(problem) {
  if (problem) process.stderr.write(`run.mjs: ${problem}\n`);
  process.stderr.write(
    'usage: node tests/conformance/run.mjs [--servers a,b] [--clients x,y] [--install] [--list]\n' +
      '                                      [--runner-timeout SECONDS] [--verbose]\n',
  );
  process.exit(problem ? 2 : 0);
}

function select(table, names, what) {
  if (!names) return table.filter((e) => e.default !== false);
  const unknown = names.filter((n) => !table.some((e) => e.name === n));
  if (unknown.length) usage(`unknown ${what}: ${unknown.join(', ')} (known: ${table.map((e) => e.name).join(', ')})`);
  return table.filter((e) => names.includes(e.name));
}

// --------------------------------------------------------------------------
// CASES.md and known-limitations.json

function readCaseIds() {
  const text = fs.readFileSync(path.join(here, 'CASES.md'), 'utf8');
  const ids = [];
  for (const row of text.split('\n')) {
    const m = /^\|\s*([a-z0-9]+(?:\.[a-z0-9-]+)+)\s*\|/.exec(row);
    if (m) ids.push(m[1]);
  }
  if (ids.length === 0) throw new Error('no case ids found in CASES.md');
  return ids;
}

function readKnownLimitations(caseIds) {
  const file = path.join(here, 'known-limitations.json');
  const entries = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (!Array.isArray(entries)) throw new Error('known-limitations.json must hold an array');
  for (const e of entries) {
    for (const key of ['client', 'server', 'case', 'reason']) {
      if (typeof e[key] !== 'string' || !e[key]) throw new Error(`known-limitations.json: entry without "${key}": ${JSON.stringify(e)}`);
    }
    if (!caseIds.includes(e.case)) throw new Error(`known-limitations.json: case ${e.case} is not in CASES.md`);
    if (e.generation !== undefined && ![1, 2].includes(e.generation)) throw new Error(`known-limitations.json: bad generation in ${JSON.stringify(e)}`);
  }
  return entries;
}

function limitationFor(entries, client, server, generation, caseId) {
  return entries.find(
    (e) =>
      e.case === caseId &&
      (e.client === '*' || e.client === client) &&
      (e.server === '*' || e.server === server) &&
      (e.generation === undefined || e.generation === generation),
  );
}

// --------------------------------------------------------------------------
// Processes

const children = new Set();

function expand(words, vars) {
  return words.map((w) => w.replace(/\{(\w+)\}/g, (all, key) => (key in vars ? String(vars[key]) : all)));
}

function start(words, env, logFile) {
  const log = fs.openSync(logFile, 'a');
  const child = spawn(words[0], words.slice(1), {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', log],
    detached: true, // own process group, so the whole tree can be stopped
  });
  fs.closeSync(log);
  children.add(child);
  child.exitPromise = new Promise((res) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      res({ code, signal });
    });
    child.on('error', (err) => {
      children.delete(child);
      res({ code: null, signal: null, error: err });
    });
  });
  return child;
}

function killTree(child, signal = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null || !child.pid) return;
  try {
    process.kill(-child.pid, signal);
  } catch (_) {
    try {
      child.kill(signal);
    } catch (__) {
      /* gone */
    }
  }
}

async function stop(child) {
  killTree(child, 'SIGTERM');
  const done = await Promise.race([child.exitPromise, deadline(3000).then(() => null)]);
  if (!done) {
    killTree(child, 'SIGKILL');
    await child.exitPromise;
  }
}

function killAll() {
  for (const child of children) killTree(child, 'SIGKILL');
}

process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}

function sleep(ms) {
  return new Promise((res) => setTimeout(res, ms));
}

/** Like sleep, for the losing side of a race: does not keep node alive. */
function deadline(ms) {
  return new Promise((res) => setTimeout(res, ms).unref());
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

async function waitForPort(port, child, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let exited = null;
  child.exitPromise.then((r) => {
    exited = r;
  });
  while (Date.now() < deadline) {
    if (exited) throw new Error(`exited early (${exited.error ? exited.error.message : `code ${exited.code}, signal ${exited.signal}`})`);
    if (await canConnect(port)) return;
    await sleep(100);
  }
  throw new Error(`port ${port} not open after ${timeoutMs} ms`);
}

function tail(file, lines = 15) {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch (_) {
    return '';
  }
}

// --------------------------------------------------------------------------
// One runner against one server

const RESULT = /^(ok|fail|skip) ([^\s:]+)(?::\s?(.*))?$/;
const TOTAL = /^(\d+) passed, (\d+) failed, (\d+) skipped$/;

async function runClient(client, server, generation, port, opts, logFile) {
  const vars = { root, node: process.execPath, port, secret: SECRET, url: `ws://127.0.0.1:${port}/ws`, generation };
  const words = expand(client.command, vars);
  fs.appendFileSync(logFile, `\n=== ${client.name} -> ${server.name} (${generation}.x): ${words.join(' ')}\n`);
  // Runners that declare subscriptions (ours) check that they did so
  // exactly when the server offers it; the others ignore this.
  const env = { ...(client.env || {}), WSLINK_CONFORMANCE_DECLARES: server.offersSubscriptions ? '1' : '0' };
  const child = start(words, env, logFile);
  let stdout = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    stdout += d;
    if (opts.verbose) process.stderr.write(d.replace(/^/gm, `  [${client.name}] `));
  });
  const timedOut = await Promise.race([child.exitPromise.then(() => false), deadline(opts.runnerTimeout * 1000).then(() => true)]);
  if (timedOut) await stop(child);
  const exit = await child.exitPromise;
  fs.appendFileSync(logFile, stdout);
  return { stdout, exit, timedOut, timeoutSeconds: opts.runnerTimeout };
}

function judge(report, caseIds, limitations, client, server, generation) {
  const { stdout, exit, timedOut } = report;
  const results = new Map();
  const problems = []; // [caseId or '-', reason]
  const lines = stdout.split('\n').map((l) => l.trimEnd()).filter(Boolean);
  let total = null;
  for (const l of lines) {
    const m = RESULT.exec(l);
    if (m) {
      if (results.has(m[2])) problems.push([m[2], 'reported twice']);
      results.set(m[2], { status: m[1], reason: m[3] || '' });
    }
  }
  const last = lines.length ? lines[lines.length - 1] : '';
  const t = TOTAL.exec(last);
  if (t) total = { passed: Number(t[1]), failed: Number(t[2]), skipped: Number(t[3]) };

  if (timedOut) problems.push(['-', `runner killed: still running after ${report.timeoutSeconds} s`]);
  if (exit.error) problems.push(['-', `runner could not start: ${exit.error.message}`]);
  if (!total) problems.push(['-', `runner's last line is not "N passed, M failed, K skipped" (exit code ${exit.code})`]);
  else {
    const counted = { ok: 0, fail: 0, skip: 0 };
    for (const r of results.values()) counted[r.status] += 1;
    if (counted.ok !== total.passed || counted.fail !== total.failed || counted.skip !== total.skipped) {
      problems.push(['-', `runner's total (${last}) does not match its case lines`]);
    }
    if ((exit.code === 0) !== (total.failed === 0)) problems.push(['-', `runner exit code ${exit.code} with ${total.failed} failed`]);
  }

  let passed = 0;
  let skipped = 0;
  const known = [];
  for (const id of caseIds) {
    const r = results.get(id);
    const limitation = limitationFor(limitations, client.name, server.name, generation, id);
    if (!r) {
      problems.push([id, 'not reported by the runner']);
    } else if (r.status === 'ok') {
      if (limitation) problems.push([id, `passes but is listed in known-limitations.json: remove the entry (${limitation.reason})`]);
      else passed += 1;
    } else if (r.status === 'skip') {
      // A skip never passes quietly: it must be a listed limitation, with
      // its reason, or it counts as a failure.
      skipped += 1;
      if (limitation) known.push([id, limitation.reason, `skipped: ${r.reason}`]);
      else problems.push([id, `skipped, and not listed in known-limitations.json: ${r.reason || 'no reason given'}`]);
    } else if (limitation) {
      known.push([id, limitation.reason, r.reason]);
    } else {
      problems.push([id, r.reason || 'failed']);
    }
  }
  for (const id of results.keys()) {
    if (!caseIds.includes(id)) problems.push([id, 'reported but not in CASES.md']);
  }
  return { passed, skipped, known, problems };
}

// --------------------------------------------------------------------------

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.list) {
    for (const s of SERVERS) console.log(`server ${s.name} (${s.generations.map((g) => `${g}.x`).join(', ')})${s.default === false ? ' [not run by default]' : ''}`);
    for (const c of CLIENTS) console.log(`client ${c.name} (${c.generations.map((g) => `${g}.x`).join(', ')})${c.default === false ? ' [not run by default]' : ''}`);
    return 0;
  }
  if (opts.install) {
    const r = spawnSync('bash', [path.join(root, 'tests/peers/install.sh')], { stdio: ['ignore', 2, 2] });
    if (r.status !== 0) throw new Error('tests/peers/install.sh failed');
  }
  const servers = select(SERVERS, opts.servers, 'server');
  const clients = select(CLIENTS, opts.clients, 'client');
  const caseIds = readCaseIds();
  const limitations = readKnownLimitations(caseIds);
  fs.mkdirSync(logDir, { recursive: true });

  let totalPassed = 0;
  let totalFailed = 0;
  let totalKnown = 0;
  let totalSkipped = 0;
  let pairings = 0;
  const out = (s) => process.stdout.write(`${s}\n`);

  for (const server of servers) {
    const plan = [];
    for (const client of clients) {
      for (const g of server.generations) if (client.generations.includes(g)) plan.push([client, g]);
    }
    if (plan.length === 0) continue;
    const label = (client, g) => `${client.name} -> ${server.name} (${g}.x)`;
    const failPlan = (why) => {
      for (const [client, g] of plan) {
        out(`${label(client, g)}: 0 passed, 1 failed`);
        out(`  FAIL ${why}`);
        totalFailed += 1;
        pairings += 1;
      }
    };

    const missing = [server, ...plan.map(([c]) => c)].flatMap((e) => (e.needs || []).filter((p) => !fs.existsSync(path.join(root, p))).map((p) => `${e.name} needs ${p}`));
    if (missing.length) {
      failPlan(`${[...new Set(missing)].join('; ')} (run tests/peers/install.sh, or build the project)`);
      continue;
    }

    const serverLog = path.join(logDir, `server-${server.name}.log`);
    fs.writeFileSync(serverLog, '');
    const port = await freePort();
    const words = expand(server.command, { root, node: process.execPath, port, secret: SECRET, url: `ws://127.0.0.1:${port}/ws` });
    fs.appendFileSync(serverLog, `=== ${words.join(' ')}\n`);
    const proc = start(words, server.env || {}, serverLog);
    proc.stdout.on('data', (d) => fs.appendFileSync(serverLog, d));
    try {
      await waitForPort(port, proc, 30000);
    } catch (err) {
      await stop(proc);
      failPlan(`server ${server.name} did not start: ${err.message}; log ${path.relative(root, serverLog)}:\n${tail(serverLog)}`);
      continue;
    }

    try {
      for (const [client, g] of plan) {
        pairings += 1;
        const logFile = path.join(logDir, `client-${client.name}--${server.name}-${g}x.log`);
        fs.writeFileSync(logFile, '');
        const report = await runClient(client, server, g, port, opts, logFile);
        const v = judge(report, caseIds, limitations, client, server, g);
        const serverGone = proc.exitCode !== null || proc.signalCode !== null;
        if (serverGone) v.problems.push(['-', `server exited during the run (code ${proc.exitCode}, signal ${proc.signalCode})`]);
        totalPassed += v.passed;
        totalFailed += v.problems.length;
        totalKnown += v.known.length;
        totalSkipped += v.skipped;
        const extras = [];
        if (v.known.length) extras.push(`${v.known.length} known limitation${v.known.length === 1 ? '' : 's'}`);
        if (v.skipped) extras.push(`${v.skipped} skipped`);
        out(`${label(client, g)}: ${v.passed} passed, ${v.problems.length} failed${extras.length ? ` (${extras.join(', ')})` : ''}`);
        for (const [id, reason, observed] of v.known) out(`  known ${id}: ${reason} [observed: ${observed}]`);
        for (const [id, reason] of v.problems) out(`  FAIL ${id === '-' ? '' : `${id}: `}${reason}`);
        if (v.problems.length) out(`  logs: ${path.relative(root, logFile)}, ${path.relative(root, serverLog)}`);
      }
    } finally {
      await stop(proc);
    }
  }

  if (pairings === 0) {
    out('no pairing selected (servers and clients share no wslink generation)');
    totalFailed += 1;
  }
  out(`conformance: ${pairings} pairing${pairings === 1 ? '' : 's'}, ${totalKnown} known limitation${totalKnown === 1 ? '' : 's'}, ${totalSkipped} skipped`);
  out(`${totalPassed} passed, ${totalFailed} failed`);
  return totalFailed === 0 ? 0 : 1;
}

main().then(
  (code) => {
    killAll();
    process.exitCode = code;
  },
  (err) => {
    killAll();
    process.stderr.write(`run.mjs: ${err && err.stack ? err.stack : err}\n`);
    process.stdout.write('0 passed, 1 failed\n');
    process.exitCode = 1;
  },
);

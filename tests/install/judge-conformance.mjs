#!/usr/bin/env node
// Judges one conformance runner's report (read from a file) the way
// tests/conformance/run.mjs judges a pairing: every case of CASES.md must be
// reported and pass, except the failures (or skips) that
// known-limitations.json lists for this client, server and generation; a
// listed case that passes is a failure too (the entry is stale).
//
//   node tests/install/judge-conformance.mjs --client npm-2.5.0 --server rust \
//        --generation 2 --report FILE --exit-code N
//
// Prints one line per accepted limitation and per problem, then
// `N passed, M failed (K known limitations)`. Exit code 0 iff M is 0.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const conformance = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../conformance');

const opts = {};
for (let i = 2; i < process.argv.length; i += 2) opts[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
for (const key of ['client', 'server', 'generation', 'report', 'exit-code']) {
  if (opts[key] === undefined) {
    process.stderr.write(`judge-conformance: --${key} is required\n`);
    process.exit(2);
  }
}
const generation = Number(opts.generation);
const exitCode = Number(opts['exit-code']);

const caseIds = [];
for (const row of fs.readFileSync(path.join(conformance, 'CASES.md'), 'utf8').split('\n')) {
  const m = /^\|\s*([a-z0-9]+(?:\.[a-z0-9-]+)+)\s*\|/.exec(row);
  if (m) caseIds.push(m[1]);
}
const limitations = JSON.parse(fs.readFileSync(path.join(conformance, 'known-limitations.json'), 'utf8'));
const limitationFor = (id) =>
  limitations.find(
    (e) =>
      e.case === id &&
      (e.client === '*' || e.client === opts.client) &&
      (e.server === '*' || e.server === opts.server) &&
      (e.generation === undefined || e.generation === generation),
  );

const lines = fs.readFileSync(opts.report, 'utf8').split('\n').map((l) => l.trimEnd()).filter(Boolean);
const results = new Map();
const problems = [];
for (const l of lines) {
  const m = /^(ok|fail|skip) ([^\s:]+)(?::\s?(.*))?$/.exec(l);
  if (!m) continue;
  if (results.has(m[2])) problems.push(`${m[2]}: reported twice`);
  results.set(m[2], { status: m[1], reason: m[3] || '' });
}
const total = /^(\d+) passed, (\d+) failed, (\d+) skipped$/.exec(lines.at(-1) || '');
if (!total) problems.push(`the runner's last line is not "N passed, M failed, K skipped" (exit code ${exitCode})`);
else if ((exitCode === 0) !== (Number(total[2]) === 0)) problems.push(`runner exit code ${exitCode} with ${total[2]} failed`);
if (caseIds.length === 0) problems.push('no case ids found in CASES.md');

let passed = 0;
let known = 0;
for (const id of caseIds) {
  const r = results.get(id);
  const limitation = limitationFor(id);
  if (!r) problems.push(`${id}: not reported by the runner`);
  else if (r.status === 'ok') {
    if (limitation) problems.push(`${id}: passes but is listed in known-limitations.json: remove the entry`);
    else passed += 1;
  } else if (limitation) {
    known += 1;
    console.log(`  known ${id}: ${r.status} (${r.reason}), listed: ${limitation.reason}`);
  } else {
    problems.push(`${id}: ${r.status === 'skip' ? 'skipped, and not listed in known-limitations.json: ' : ''}${r.reason || 'failed'}`);
  }
}
for (const id of results.keys()) if (!caseIds.includes(id)) problems.push(`${id}: reported but not in CASES.md`);
for (const p of problems) console.log(`  FAIL ${p}`);
console.log(`${passed} passed, ${problems.length} failed (${known} known limitation${known === 1 ? '' : 's'})`);
process.exitCode = problems.length === 0 ? 0 : 1;

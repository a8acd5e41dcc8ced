/**
 * Runs tests/conformance/ts-client.mjs (every case of CASES.md, through this
 * package's dist/) against each reference server and generation, and
 * requires every case to pass except the listed limitations of the pairing.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { available, repoRoot, SERVERS, startServer, type RunningServer, type ServerSpec } from './servers.js';

const runner = path.join(repoRoot, 'tests/conformance/ts-client.mjs');
const casesFile = path.join(repoRoot, 'tests/conformance/CASES.md');

function caseIds(): string[] {
  const text = fs.readFileSync(casesFile, 'utf8');
  return [...text.matchAll(/^\| ([a-z0-9-]+\.[a-z0-9.-]+) \|/gm)].map((m) => m[1] as string);
}

function run(url: string, secret: string, generation: number, spec: ServerSpec): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--experimental-websocket', runner, '--url', url, '--secret', secret, '--generation', String(generation)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      // publish.order then checks that the client declared its subscription
      // to this server exactly when the server offers it.
      env: { ...process.env, WSLINK_CONFORMANCE_DECLARES: spec.offersSubscriptions ? '1' : '0' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => {
      resolve({ code, stdout, stderr });
    });
  });
}

const running: RunningServer[] = [];
after(async () => {
  await Promise.all(running.map((s) => s.stop()));
});

for (const spec of SERVERS) {
  describe(`conformance cases against ${spec.name}`, { skip: available(spec) ? false : `${spec.name} is not installed` }, () => {
    for (const generation of spec.generations) {
      it(`wslink ${generation}.x: every case passes (except documented limitations)`, { timeout: 120_000 }, async () => {
        const server = await startServer(spec);
        assert.ok(server);
        running.push(server);
        const { code, stdout, stderr } = await run(server.url, server.secret, generation, spec);
        const lines = stdout.trim().split('\n');
        const total = lines[lines.length - 1] ?? '';
        assert.match(total, /^\d+ passed, \d+ failed, \d+ skipped$/, `last line: ${total}\n${stderr}`);
        const results = new Map<string, string>();
        for (const line of lines) {
          const m = /^(ok|fail|skip) ([^:\s]+)(?::\s(.*))?$/.exec(line);
          if (m) results.set(m[2] as string, m[1] === 'ok' ? 'ok' : `${m[1]}: ${m[3] ?? ''}`);
        }
        const unexpected: string[] = [];
        for (const id of caseIds()) {
          const r = results.get(id);
          if (r === undefined) unexpected.push(`${id}: not reported`);
          else if (r !== 'ok' && !(id in spec.limitations)) unexpected.push(`${id}: ${r}`);
        }
        assert.deepEqual(unexpected, [], `runner output:\n${stdout}`);
        const failed = [...results.values()].filter((r) => r.startsWith('fail')).length;
        assert.equal(code === 0, failed === 0, 'exit code agrees with the failures');
        await server.stop();
      });
    }
  });
}

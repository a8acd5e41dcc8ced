/**
 * Starts the reference servers of the cross-language tests (Kitware's
 * Python wslink 2.6.0 and 1.12.4, the project's Rust server), each running
 * the conformance service, on a free loopback port. A server whose
 * executable is missing is reported as unavailable (tests skip it).
 *
 * Python peers: tests/peers/install.sh puts them in target/peers/py2 and
 * target/peers/py1; WSLINK_PY2 / WSLINK_PY1 override the interpreters.
 * Rust: target/debug/conformance-server (WSLINK_RUST_SERVER overrides).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
/** js-client/ (this file runs from js-client/dist/test-integration/). */
export const packageRoot = path.resolve(here, '../..');
export const repoRoot = path.resolve(packageRoot, '..');

export interface ServerSpec {
  name: string;
  generations: (1 | 2)[];
  /** Failures that are limitations of the pairing, by case id, with the reason. */
  limitations: Record<string, string>;
  /** Offers declared subscriptions in its hello reply (PROTOCOL.md §8): ours does, Kitware's do not. */
  offersSubscriptions: boolean;
  command: (port: number, secret: string) => { file: string; args: string[]; env?: Record<string, string> } | null;
}

const SEQUENTIAL = 'Python wslink handles one message at a time per connection: four sleep(400) take ~1600 ms';
const NODE_INFLATE_LIMIT =
  "Node's WebSocket (undici) closes with 1006 when a permessage-deflate message inflates past 4 MiB ('Max decompressed message size exceeded'); wslink 1.x sends each 6 MiB attachment as one frame and the Python server compresses";

function firstExisting(...candidates: (string | undefined)[]): string | null {
  for (const c of candidates) if (c && fs.existsSync(c)) return c;
  return null;
}

const conformanceScript = path.join(repoRoot, 'tests/peers/python/conformance_server.py');

function python(envVar: string, peerDir: string, refDir: string, env: Record<string, string>) {
  return (port: number, secret: string) => {
    const file = firstExisting(process.env[envVar], path.join(repoRoot, 'target/peers', peerDir, 'bin/python'), path.join(refDir, 'bin/python'));
    if (!file || !fs.existsSync(conformanceScript)) return null;
    return {
      file,
      args: [conformanceScript, '--host', '127.0.0.1', '--port', String(port), '--authKey', secret, '--timeout', '0'],
      env,
    };
  };
}

export const SERVERS: ServerSpec[] = [
  {
    name: 'python-2.6.0',
    generations: [2],
    limitations: { 'sleep.concurrent': SEQUENTIAL },
    offersSubscriptions: false,
    command: python('WSLINK_PY2', 'py2', '/tmp/ref/py2', {}),
  },
  {
    name: 'python-1.12.4',
    generations: [1],
    limitations: { 'sleep.concurrent': SEQUENTIAL, 'echo.binary-large': NODE_INFLATE_LIMIT, 'blob.large': NODE_INFLATE_LIMIT },
    offersSubscriptions: false,
    // wslink 1.x does not chunk: its server must accept the 6 MiB cases
    // (as tests/conformance/run.mjs starts it).
    command: python('WSLINK_PY1', 'py1', '/tmp/ref/py1', { WSLINK_MAX_MSG_SIZE: String(16 * 1024 * 1024) }),
  },
  {
    name: 'rust',
    generations: [2, 1],
    limitations: {},
    offersSubscriptions: true,
    command: (port, secret) => {
      const file = firstExisting(process.env.WSLINK_RUST_SERVER, path.join(repoRoot, 'target/debug/conformance-server'));
      if (!file) return null;
      return { file, args: ['--host', '127.0.0.1', '--port', String(port), '--authKey', secret] };
    },
  },
];

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => {
        resolve(port);
      });
    });
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      resolve(false);
    });
  });
}

export class RunningServer {
  private exited = false;
  private output = '';

  constructor(
    readonly spec: ServerSpec,
    readonly port: number,
    readonly secret: string,
    private readonly child: ChildProcess,
  ) {
    child.stdout?.on('data', (d: Buffer) => (this.output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
    child.once('exit', () => {
      this.exited = true;
    });
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  get log(): string {
    return this.output;
  }

  async waitReady(ms = 20_000): Promise<void> {
    const start = Date.now();
    while (!(await portOpen(this.port))) {
      if (this.exited) throw new Error(`${this.spec.name} exited before listening:\n${this.output}`);
      if (Date.now() - start > ms) throw new Error(`${this.spec.name} did not listen within ${ms} ms:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((r) => this.child.once('exit', () => {
      r();
    }));
    try {
      if (this.child.pid !== undefined) process.kill(-this.child.pid, 'SIGTERM');
    } catch {
      this.child.kill('SIGTERM');
    }
    const timer = setTimeout(() => {
      try {
        if (this.child.pid !== undefined) process.kill(-this.child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }, 3000);
    await gone;
    clearTimeout(timer);
  }
}

/** Starts `spec` on `port` (a free one by default); null when it is not installed. */
export async function startServer(spec: ServerSpec, secret = 'integration-secret', port?: number): Promise<RunningServer | null> {
  const p = port ?? (await freePort());
  const cmd = spec.command(p, secret);
  if (!cmd) return null;
  const child = spawn(cmd.file, cmd.args, {
    cwd: repoRoot,
    env: { ...process.env, ...cmd.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const server = new RunningServer(spec, p, secret, child);
  await server.waitReady();
  return server;
}

export function available(spec: ServerSpec): boolean {
  const ok = spec.command(1, 'x') !== null;
  // Set by tests/run-all.sh, which installs every server first.
  if (!ok && process.env.WSLINK_REQUIRE_ALL === '1') {
    throw new Error(`${spec.name} is not installed (bash tests/peers/install.sh)`);
  }
  return ok;
}

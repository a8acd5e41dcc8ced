// A killed edge's clients carry on elsewhere: three `wslink serve --broker`
// processes on one real nats-server; a js-client given the URLs of edges A
// and B loses A (SIGKILL), reconnects to B by itself, and keeps receiving
// what is published on edge C, whole and in order.
//
// Run by tests/broker/run.sh (which builds js-client and target/debug/wslink
// and sets NATS_SERVER); alone:
//   NATS_SERVER=target/peers/nats/bin/nats-server \
//     node --experimental-websocket --test tests/broker/failover.test.mjs
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, it } from 'node:test';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { WslinkClient } = await import(path.join(root, 'js-client/dist/src/index.js'));
const wslinkBin = process.env.WSLINK_BIN ?? path.join(process.env.CARGO_TARGET_DIR ?? path.join(root, 'target'), 'debug/wslink');
const natsBin = process.env.NATS_SERVER ?? path.join(root, 'target/peers/nats/bin/nats-server');
const SECRET = 's';
const TOPIC = 'failover.t';

const children = [];
const clients = [];

/** Starts `bin args` and resolves with the first match of `pattern` in its
 * output (stdout or stderr), or rejects if it exits first. */
function start(bin, args, pattern) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let log = '';
    const look = (d) => {
      log += d;
      const m = pattern.exec(log);
      if (m) resolve({ child, match: m });
    };
    child.stdout.on('data', look);
    child.stderr.on('data', look);
    child.on('exit', (code, signal) => reject(new Error(`${path.basename(bin)} exited (${code ?? signal}) before it was ready:\n${log}`)));
  });
}

async function until(predicate, what, ms = 10_000) {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function client(url, extra = {}) {
  const c = new WslinkClient({ url, secret: SECRET, ...extra });
  clients.push(c);
  return c;
}

/** Subscribes `c` to TOPIC; returns the list the `seq`s arrive in. */
function follow(c) {
  const seqs = [];
  c.subscribe(TOPIC, (m) => seqs.push(Number(m.seq)));
  return seqs;
}

const range = (n) => [...Array(n).keys()];

let edges;

before(async () => {
  const nats = await start(natsBin, ['-a', '127.0.0.1', '-p', '-1'], /Listening for client connections on 127\.0\.0\.1:(\d+)/);
  const brokerUrl = `nats://127.0.0.1:${nats.match[1]}`;
  // Its own prefix, so that nothing else on this NATS server is seen.
  const prefix = `failover-${process.pid}`;
  // The first line is printed once the edge is subscribed on the broker.
  edges = await Promise.all(['A', 'B', 'C'].map(async (name) => {
    const { child, match } = await start(wslinkBin, ['serve', '--conformance', '--host', '127.0.0.1', '--port', '0', '--timeout', '0',
      '--authKey', SECRET, '--broker', brokerUrl, '--broker-prefix', prefix], /wslink server on (ws:\/\/127\.0\.0\.1:\d+\/ws)/);
    return { name, child, url: match[1] };
  }));
});

after(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => {})));
  for (const child of children) child.kill('SIGKILL');
});

it('a client of a killed edge fails over to the next URL and keeps receiving publishes of another edge, in order', async () => {
  const [a, b, c] = edges;
  const first = client([a.url, b.url], { reconnect: { initialDelay: 50, maxDelay: 500, jitter: 0 } });
  const ready = [];
  first.on('ready', (info) => ready.push({ url: info.url, reconnected: info.reconnected }));
  const firstSeqs = follow(first);
  await first.connect();
  const second = client(b.url);
  const secondSeqs = follow(second);
  await second.connect();
  const publisher = await client(c.url).connect();
  // A round trip after the subscribe: the declaration has been read.
  await first.call('conformance.add', [1, 2]);
  await second.call('conformance.add', [1, 2]);

  // Before the kill: a publish on edge C reaches the clients on A and on B.
  assert.equal(await publisher.call('conformance.publish', [TOPIC, 5, 16]), 5);
  await until(() => firstSeqs.length >= 5 && secondSeqs.length >= 5, 'the publish of C on A and B');
  assert.deepEqual(firstSeqs, range(5));
  assert.deepEqual(secondSeqs, range(5));

  a.child.kill('SIGKILL');
  await until(() => ready.length === 2, 'the first client back');
  assert.deepEqual(ready, [{ url: a.url, reconnected: false }, { url: b.url, reconnected: true }]);
  assert.equal(first.url, b.url);
  assert.equal(first.state, 'open');
  await first.call('conformance.add', [1, 2]);

  // After the failover: C's publish reaches the first client on B, whole and in order.
  firstSeqs.length = 0;
  secondSeqs.length = 0;
  assert.equal(await publisher.call('conformance.publish', [TOPIC, 50, 64]), 50);
  await until(() => firstSeqs.length >= 50 && secondSeqs.length >= 50, 'the publish of C after the failover');
  assert.deepEqual(firstSeqs, range(50));
  assert.deepEqual(secondSeqs, range(50));

  // And a publish made on B through the second client's call reaches it too.
  firstSeqs.length = 0;
  assert.equal(await second.call('conformance.publish', [TOPIC, 3, 8]), 3);
  await until(() => firstSeqs.length >= 3, 'the publish of B');
  assert.deepEqual(firstSeqs, range(3));
});

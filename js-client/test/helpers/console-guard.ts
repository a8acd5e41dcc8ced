/**
 * Fails a test file if the library writes to the console: the package must
 * stay silent unless a logger is passed in.
 */
import { after, before } from 'node:test';
import assert from 'node:assert/strict';

const METHODS = ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const;

export function guardConsole(): { calls: string[] } {
  const calls: string[] = [];
  const saved = new Map<string, unknown>();
  before(() => {
    for (const m of METHODS) {
      saved.set(m, (console as unknown as Record<string, unknown>)[m]);
      (console as unknown as Record<string, unknown>)[m] = (...args: unknown[]) => {
        calls.push(`${m}: ${args.map(String).join(' ')}`);
      };
    }
  });
  after(() => {
    for (const m of METHODS) (console as unknown as Record<string, unknown>)[m] = saved.get(m);
    assert.deepEqual(calls, [], 'the library wrote to the console');
  });
  return { calls };
}

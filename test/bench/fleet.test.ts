import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { tempDir } from '../helpers/git.js';

/**
 * Smoke run of `npm run bench:fleet` at N = 50, one round: the harness itself (not its timings)
 * — a real `meshcfg serve`, the floor, the load-generator processes — must make every agent
 * converge and write the JSON of the contract.
 */
const MAIN = fileURLToPath(new URL('../../bench/fleet/main.ts', import.meta.url));

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function bench(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', MAIN, ...args], { maxBuffer: 64 * 1024 * 1024, timeout: 240_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

const SIDE_KEYS = ['connectMs', 'convergenceMs', 'rssPerAgentKiB', 'cpuPerConnectMs', 'cpuPerRolloutMs'];
const POLL_KEYS = ['cpuPerPollMs', 'pollCoreFraction10k'];

function assertSide(side: unknown, mode: 'stream' | 'poll'): void {
  assert.ok(typeof side === 'object' && side !== null);
  const record = side as Record<string, unknown>;
  assert.deepEqual(Object.keys(record).sort(), [...SIDE_KEYS, ...(mode === 'poll' ? POLL_KEYS : [])].sort());
  const convergence = record['convergenceMs'] as Record<string, unknown>;
  assert.deepEqual(Object.keys(convergence).sort(), ['max', 'p50', 'p99']);
  for (const value of [record['connectMs'], record['rssPerAgentKiB'], record['cpuPerConnectMs'], record['cpuPerRolloutMs'], ...Object.values(convergence)]) {
    assert.equal(typeof value, 'number');
  }
  const p50 = convergence['p50'] as number;
  const max = convergence['max'] as number;
  assert.ok(p50 >= 0 && p50 <= max, `p50 ${p50} within [0, max ${max}]`);
}

for (const mode of ['stream', 'poll'] as const) {
  describe(`bench:fleet --agents 50 --rounds 1 --mode ${mode}`, () => {
    it('converges every agent on both sides and writes the JSON of the contract', async () => {
      const tmp = tempDir('meshcfg-bench-smoke-');
      try {
        const json = join(tmp.path, 'result.json');
        const extra = mode === 'poll' ? ['--poll-interval', '500', '--poll-window', '1500'] : [];
        const run = await bench('--agents', '50', '--rounds', '1', '--mode', mode, '--json', json, ...extra);
        assert.equal(run.code, 0, `bench:fleet exited ${run.code}\n${run.stderr.slice(-4000)}`);
        // Each side's round reports every agent's ack as recorded by the server.
        assert.match(run.stderr, /meshcfg round 1: converged 50\/50/);
        assert.match(run.stderr, /floor round 1: converged 50\/50/);
        assert.match(run.stdout, /convergence max \(ms\)/);

        const result = JSON.parse(readFileSync(json, 'utf8')) as Record<string, unknown>;
        assert.deepEqual(Object.keys(result), ['agents', 'mode', 'rounds', 'meshcfg', 'floor', 'ratios']);
        assert.equal(result['agents'], 50);
        assert.equal(result['mode'], mode);
        assert.equal(result['rounds'], 1);
        assertSide(result['meshcfg'], mode);
        assertSide(result['floor'], mode);
        const ratios = result['ratios'] as Record<string, unknown>;
        assert.deepEqual(Object.keys(ratios).sort(), ['convergenceMax', 'cpuPerConnect', 'rssPerAgent', ...(mode === 'poll' ? ['cpuPerPoll'] : [])].sort());
        assert.equal(typeof ratios['convergenceMax'], 'number');
      } finally {
        tmp.cleanup();
      }
    });
  });
}

describe('bench:fleet options', () => {
  it('prints its usage with --help', async () => {
    const run = await bench('--help');
    assert.equal(run.code, 0);
    assert.match(run.stdout, /--agents N/);
  });

  it('refuses an unknown mode with exit status 2', async () => {
    const run = await bench('--mode', 'carrier-pigeon');
    assert.equal(run.code, 2);
  });
});

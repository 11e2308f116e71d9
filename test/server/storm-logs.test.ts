import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { certificateLogHooks, connectFailureLog } from '../../src/server/logging.js';
import { aid } from '../helpers/ids.js';

/** A real pino logger whose lines are kept, parsed. */
function capture(): { readonly logger: pino.Logger; readonly lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

const wait = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('connectFailureLog', () => {
  describe('when a storm of connections fails', () => {
    it('logs the first failure at once, then one summary per window with the counts by reason', async () => {
      const { logger, lines } = capture();
      const hooks = connectFailureLog(logger, 100);
      hooks.onConnectFailed?.('handshake-timeout', 'ERR_TLS_HANDSHAKE_TIMEOUT');
      assert.equal(lines.length, 1);
      assert.deepEqual(lines[0]?.['counts'], { 'handshake-timeout': 1 });
      for (let i = 0; i < 500; i += 1) hooks.onConnectFailed?.(i % 5 === 0 ? 'tls-error' : 'handshake-timeout', 'x');
      assert.equal(lines.length, 1, 'nothing more within the window');
      await wait(180);
      assert.equal(lines.length, 2);
      assert.equal(lines[1]?.['event'], 'connect-failures');
      assert.deepEqual(lines[1]?.['counts'], { 'tls-error': 100, 'handshake-timeout': 400 });
      assert.equal(lines[1]?.['total'], 500);
      assert.equal(lines[1]?.['level'], 40);
    });

    it('says nothing while there are no failures, and logs the next one at once after a quiet window', async () => {
      const { logger, lines } = capture();
      const hooks = connectFailureLog(logger, 50);
      hooks.onConnectFailed?.('overloaded', 'overloaded');
      await wait(150);
      assert.equal(lines.length, 1);
      hooks.onConnectFailed?.('queue-timeout', 'queue-timeout');
      assert.equal(lines.length, 2);
      assert.deepEqual(lines[1]?.['counts'], { 'queue-timeout': 1 });
    });
  });
});

describe('certificateLogHooks', () => {
  it('logs the first adoption of a quiet window on its own, the rest as one summary with their count', async () => {
    const { logger, lines } = capture();
    const hooks = certificateLogHooks(logger, 60);
    for (let i = 0; i < 100; i += 1) hooks.onAdopted?.({ agentId: aid(`edge-${i}`), serial: `0${i}` });
    assert.deepEqual(
      lines.map((l) => [l['event'], l['agentId']]),
      [['certificate-adopted', 'edge-0']],
    );
    await wait(120);
    assert.equal(lines.length, 2);
    assert.equal(lines[1]?.['event'], 'certificates-adopted');
    assert.equal(lines[1]?.['count'], 99);
    assert.equal((lines[1]?.['agents'] as string[]).length, 20);
  });
});

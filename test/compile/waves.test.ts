import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';

import type { WaveSpec } from '../../src/compile/types.js';
import { IMPLICIT_WAVE, assignWave, bucketOf } from '../../src/compile/waves.js';
import { aid } from '../helpers/ids.js';

/** The bucket as the spec states it, computed independently of `bucketOf`: sha256 → first 4 bytes → big-endian uint32 → mod 100. */
function specBucket(id: string): number {
  const hex = createHash('sha256').update(id).digest('hex');
  return Number.parseInt(hex.slice(0, 8), 16) % 100;
}

/** The first ids `agent-0`, `agent-1`, … whose buckets satisfy `predicate`. */
function idsWithBucket(predicate: (bucket: number) => boolean, count = 3): string[] {
  const ids: string[] = [];
  for (let i = 0; ids.length < count; i++) if (predicate(specBucket(`agent-${i}`))) ids.push(`agent-${i}`);
  return ids;
}

describe('bucketOf', () => {
  it('is the first 4 bytes of sha256(id), big-endian, modulo 100', () => {
    for (let i = 0; i < 200; i++) assert.equal(bucketOf(aid(`agent-${i}`)), specBucket(`agent-${i}`));
  });

  it('is pinned: changing it would move agents between waves', () => {
    // sha256("web-1") = c4719afa… → 0xc4719afa = 3295779578 → 78.
    assert.equal(createHash('sha256').update('web-1').digest('hex').slice(0, 8), 'c4719afa');
    assert.equal(bucketOf(aid('web-1')), 78);
  });
});

describe('assignWave', () => {
  const waves: WaveSpec[] = [
    { name: 'canary', match: { ring: 'canary' } },
    { name: 'pci', match: { zone: ['pci', 'pci-eu'] } },
    { name: 'ten-percent', percent: 10 },
    { name: 'half', percent: 50 },
    { name: 'rest', match: { env: 'prod' } },
  ];
  const at = (labels: Record<string, string>, id: string) => assignWave(waves, labels, () => bucketOf(aid(id)));

  it('puts an agent in the first wave whose match selects it', () => {
    assert.equal(at({ ring: 'canary', zone: 'pci' }, 'x'), 'canary');
    assert.equal(at({ zone: 'pci-eu' }, 'x'), 'pci');
  });

  it('puts an agent whose bucket is below a percentage wave in that wave', () => {
    for (const id of idsWithBucket((b) => b < 10)) assert.equal(at({}, id), 'ten-percent', id);
  });

  it('treats percentages as cumulative: buckets 10–49 go to the 50% wave', () => {
    for (const id of idsWithBucket((b) => b >= 10 && b < 50)) assert.equal(at({}, id), 'half', id);
  });

  it('puts an agent no wave selects in the last wave', () => {
    for (const id of idsWithBucket((b) => b >= 50)) assert.equal(at({ env: 'dev' }, id), 'rest', id);
  });

  it('hashes only when a percentage wave is reached', () => {
    let calls = 0;
    assignWave(waves, { ring: 'canary' }, () => ++calls);
    assert.equal(calls, 0);
  });

  it('treats a wave with neither match nor percent as selecting everyone', () => {
    assert.equal(assignWave([{ name: 'first', match: { ring: 'x' } }, { name: 'all-others' }, { name: 'never' }], {}, () => 0), 'all-others');
  });

  it(`uses one implicit wave, "${IMPLICIT_WAVE}", when none are configured`, () => {
    assert.equal(assignWave([], { zone: 'pci' }, () => 0), IMPLICIT_WAVE);
  });
});

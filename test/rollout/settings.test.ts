import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { MeshcfgSettings } from '../../src/compile/index.js';
import { quarantineStaleAfterMs, ROLLOUT_DEFAULTS, rolloutSettings } from '../../src/rollout/index.js';

describe('rolloutSettings', () => {
  describe('when meshcfg.yaml has no rollout keys', () => {
    it('uses one implicit wave and the conservative defaults', () => {
      const s = rolloutSettings({ trustDomain: 'd', policy: { secureZones: [] }, rollout: { waves: [] } });
      assert.deepEqual(s, {
        waves: [{ name: 'all', bakeMs: 0 }],
        successRatio: ROLLOUT_DEFAULTS.successRatio,
        maxNackRatio: ROLLOUT_DEFAULTS.maxNackRatio,
        ackTimeoutMs: ROLLOUT_DEFAULTS.ackTimeoutMs,
        windows: [],
        expediteReverts: false,
      });
    });
  });

  describe('with the issue example', () => {
    it('reads waves with bakes, gates, windows and expediteReverts', () => {
      const settings: MeshcfgSettings = {
        trustDomain: 'd',
        policy: { secureZones: [] },
        rollout: {
          waves: [{ name: 'canary', match: { ring: 'canary' }, bake: '10m' }, { name: 'early', percent: 25, bake: '30m' }, { name: 'all', percent: 100 }],
          successRatio: 0.95,
          maxNackRatio: 0.05,
          ackTimeout: '2m',
          windows: [
            { kind: 'allow', schedule: '0 9 * * 1-5', duration: '8h', timeZone: 'Europe/Berlin' },
            { kind: 'deny', schedule: '0 0 24 12 *', duration: '72h' },
          ],
          expediteReverts: true,
        },
      };
      assert.deepEqual(rolloutSettings(settings), {
        waves: [{ name: 'canary', bakeMs: 600_000 }, { name: 'early', bakeMs: 1_800_000 }, { name: 'all', bakeMs: 0 }],
        successRatio: 0.95,
        maxNackRatio: 0.05,
        ackTimeoutMs: 120_000,
        windows: [
          { kind: 'allow', schedule: '0 9 * * 1-5', duration: '8h', timeZone: 'Europe/Berlin' },
          { kind: 'deny', schedule: '0 0 24 12 *', duration: '72h' },
        ],
        expediteReverts: true,
      });
    });
  });
});

describe('quarantineStaleAfterMs', () => {
  const withRollout = (rollout: Record<string, string>): MeshcfgSettings => ({ trustDomain: 'd', policy: { secureZones: [] }, rollout: { waves: [], ...rollout } });

  it('is off (null) when meshcfg.yaml leaves it out', () => {
    assert.equal(quarantineStaleAfterMs(withRollout({})), null);
    assert.equal(quarantineStaleAfterMs(null), null);
  });

  it('reads a duration', () => {
    assert.equal(quarantineStaleAfterMs(withRollout({ quarantineStaleAfter: '15m' })), 900_000);
  });
});

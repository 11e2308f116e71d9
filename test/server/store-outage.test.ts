import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Alert } from '../../src/server/alerts.js';
import { StoreOutage } from '../../src/server/store-outage.js';

function setUp(graceMs = 30_000) {
  let now = 1_000_000;
  let reachable = true;
  const posted: Alert[] = [];
  const outage = new StoreOutage({ reachable: () => reachable, graceMs, sink: { post: (a) => posted.push(a) }, now: () => new Date(now) });
  return {
    outage,
    posted,
    advance: (ms: number) => {
      now += ms;
    },
    setReachable: (value: boolean) => {
      reachable = value;
    },
  };
}

describe('StoreOutage (a fleet store out of reach)', () => {
  it('stays ready and silent through an outage shorter than the grace period', () => {
    const t = setUp();
    t.setReachable(false);
    t.outage.check();
    t.advance(29_000);
    assert.equal(t.outage.ready(), true);
    t.setReachable(true);
    t.advance(5_000);
    assert.equal(t.outage.ready(), true);
    assert.deepEqual(t.posted, []);
  });

  it('reports not ready past the grace period and alerts once per outage, naming when it began', () => {
    const t = setUp();
    t.setReachable(false);
    t.outage.check();
    const began = new Date(1_000_000).toISOString();
    t.advance(30_000);
    assert.equal(t.outage.ready(), false);
    t.advance(5_000);
    t.outage.check();
    assert.equal(t.posted.length, 1);
    const alert = t.posted[0];
    assert.equal(alert?.kind, 'fleet-store-unavailable');
    assert.equal(alert?.kind === 'fleet-store-unavailable' && alert.since, began);
  });

  it('is ready again when the store answers, and alerts again for a later outage', () => {
    const t = setUp(1_000);
    t.setReachable(false);
    t.outage.check();
    t.advance(2_000);
    assert.equal(t.outage.ready(), false);
    t.setReachable(true);
    assert.equal(t.outage.ready(), true);
    t.setReachable(false);
    t.outage.check();
    t.advance(2_000);
    t.outage.check();
    assert.equal(t.posted.length, 2);
  });
});

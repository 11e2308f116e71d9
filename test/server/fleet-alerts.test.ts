import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Alert } from '../../src/server/alerts.js';
import { CertExpiryAlerts, UnauthorizedAlerts } from '../../src/server/fleet-alerts.js';
import { FleetCache } from '../../src/server/fleet.js';
import { manualClock } from './helpers.js';
import { aid, cid } from '../helpers/ids.js';

function sink(): { post(alert: Alert): void; alerts: Alert[] } {
  const alerts: Alert[] = [];
  return { alerts, post: (alert) => alerts.push(alert) };
}

describe('UnauthorizedAlerts', () => {
  it('alerts the first attempt of a reason at once', () => {
    const s = sink();
    const limiter = new UnauthorizedAlerts({ sink: s });
    limiter.onUnauthorized('revoked', { agentId: aid('edge-1'), message: 'certificate revoked' });
    assert.equal(s.alerts.length, 1);
    assert.deepEqual({ ...s.alerts[0], at: undefined }, { kind: 'unauthorized-attempt', reason: 'revoked', agent: 'edge-1', count: 1, message: 'certificate revoked', at: undefined });
    limiter.close();
  });

  it('folds repeats within the window into one alert with their count, per reason', async () => {
    const s = sink();
    const limiter = new UnauthorizedAlerts({ sink: s, windowMs: 100 });
    for (let i = 0; i < 5; i += 1) limiter.onUnauthorized('bad-token', { message: `attempt ${i}` });
    limiter.onUnauthorized('revoked', { message: 'other reason' });
    assert.deepEqual(s.alerts.map((a) => a.kind === 'unauthorized-attempt' && [a.reason, a.count]), [['bad-token', 1], ['revoked', 1]]);
    await new Promise((r) => setTimeout(r, 150));
    assert.deepEqual(s.alerts.map((a) => a.kind === 'unauthorized-attempt' && [a.reason, a.count]), [['bad-token', 1], ['revoked', 1], ['bad-token', 4]]);
    limiter.close();
  });

  it('sends what it holds on close, so no attempt goes uncounted', () => {
    const s = sink();
    const limiter = new UnauthorizedAlerts({ sink: s, windowMs: 60_000 });
    for (let i = 0; i < 3; i += 1) limiter.onUnauthorized('bad-token', { message: 'x' });
    limiter.close();
    assert.deepEqual(s.alerts.map((a) => a.kind === 'unauthorized-attempt' && a.count), [1, 2]);
  });
});

describe('CertExpiryAlerts', () => {
  const TTL = 24 * 3_600_000;
  const DESIRED = { commit: cid('a'.repeat(40)), digest: `sha256:${'1'.repeat(64)}`, generation: 1 };

  it('alerts once per certificate when less than 20 % of its lifetime remains', () => {
    const clock = manualClock(new Date('2030-01-01T00:00:00Z'));
    const fleet = new FleetCache({ now: clock.now });
    fleet.setDesired([{ id: aid('edge-1'), labels: {}, desired: DESIRED }, { id: aid('edge-2'), labels: {}, desired: DESIRED }]);
    fleet.recordSeen(aid('edge-1'), clock.now(), { notAfter: new Date(clock.now().getTime() + TTL), serial: 'AA01' });
    fleet.recordSeen(aid('edge-2'), clock.now(), { notAfter: new Date(clock.now().getTime() + TTL / 2), serial: 'BB02' });
    const s = sink();
    const checker = new CertExpiryAlerts({ sink: s, agents: () => fleet.list(), certificateTtlMs: TTL, now: clock.now });
    assert.deepEqual(checker.check(), []);
    clock.advance(TTL * 0.35); // edge-2: 15 % left
    assert.deepEqual(checker.check(), ['edge-2']);
    assert.deepEqual(checker.check(), [], 'once per certificate');
    clock.advance(TTL * 0.5); // edge-1: 15 % left
    assert.deepEqual(checker.check(), ['edge-1']);
    const alert = s.alerts[1];
    assert.equal(alert?.kind, 'cert-expiring');
    assert.equal(alert?.kind === 'cert-expiring' && alert.serial, 'aa01');
    // A renewed certificate (new serial) is a new certificate.
    fleet.recordSeen(aid('edge-2'), clock.now(), { notAfter: new Date(clock.now().getTime() + TTL * 0.1), serial: 'CC03' });
    assert.deepEqual(checker.check(), ['edge-2']);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AgentStatus, AuditEntry } from '../../src/fleet/index.js';
import { OperatorActions, type OperatorActionsOptions } from '../../src/server/operator-actions.js';
import type { RevokeOutcome } from '../../src/server/certificates.js';
import type { AgentId } from '../../src/domain/types.js';
import { aid } from '../helpers/ids.js';

const T0 = new Date('2030-01-01T00:00:00.000Z');

function agent(id: AgentId, certSerial: string | null = '01'): AgentStatus {
  return { id, labels: {}, wave: '', state: 'SYNCED', desired: null, active: null, certSerial, certExpiry: null, lastSeen: null, connected: true, lastError: null, quarantine: null, lastRejection: null };
}

/** OperatorActions over recording fakes of its ports: `edge-1` is known, quarantine answers `quarantined`. */
function actions(options: { quarantined?: boolean; revoke?: RevokeOutcome } = {}) {
  const rechecked: string[] = [];
  const audit: AuditEntry[] = [];
  const events: string[] = [];
  const ports: OperatorActionsOptions = {
    fleet: { get: (id) => (id === 'edge-1' ? agent(id) : undefined) },
    quarantine: { approve: async () => options.quarantined ?? false, quarantine: async () => !(options.quarantined ?? false) },
    certificates: { revoke: async () => options.revoke ?? { kind: 'revoked', serial: '01' } },
    streams: { recheckStreams: (id) => rechecked.push(id) },
    enrollmentTokens: { create: async () => ({ token: 'secret', expiresAt: new Date(T0.getTime() + 60_000) }) },
    adminTokens: { create: async () => assert.fail('not used'), list: async () => [], revoke: async () => ({ kind: 'refused', code: 'UNKNOWN_TOKEN', message: 'no' }) },
    rollout: { act: async (action) => (events.push(`rollout:${action.kind}:${action.actor}:${action.reason ?? '-'}`), { kind: 'done', changed: [], events: [] }) },
    audit: { appendAudit: async (entry) => (audit.push(entry), audit.length) },
    hooks: { onAgentRevoked: ({ agentId }) => events.push(`revoked:${agentId}`), onTokenCreated: () => { throw new Error('a failing observer'); } },
    now: () => T0,
  };
  return { service: new OperatorActions(ports), rechecked, audit, events };
}

describe('OperatorActions', () => {
  const refusals: ReadonlyArray<[string, () => Promise<{ kind: string; code?: string }>, string]> = [
    ['approving an agent outside the inventory', () => actions().service.approve(aid('nobody'), 'ops', 'why'), 'UNKNOWN_AGENT'],
    ['approving an agent not quarantined', () => actions({ quarantined: false }).service.approve(aid('edge-1'), 'ops', 'why'), 'NOT_QUARANTINED'],
    ['quarantining an agent already quarantined', () => actions({ quarantined: true }).service.quarantine(aid('edge-1'), 'ops', 'why'), 'ALREADY_QUARANTINED'],
    ['revoking an agent with no known certificate', () => actions({ revoke: { kind: 'no-certificate' } }).service.revoke(aid('edge-1'), 'ops', ''), 'NO_CERTIFICATE'],
    ['revoking an agent already revoked', () => actions({ revoke: { kind: 'already-revoked', serial: '01' } }).service.revoke(aid('edge-1'), 'ops', ''), 'ALREADY_REVOKED'],
  ];
  for (const [what, run, code] of refusals) {
    it(`refuses ${what} with ${code}`, async () => {
      const result = await run();
      assert.equal(result.kind, 'refused');
      assert.equal(result.code, code);
    });
  }

  it('ends the open streams of a revoked agent at once and reports the revocation', async () => {
    const { service, rechecked, events } = actions();
    const result = await service.revoke(aid('edge-1'), 'ops', 'stolen laptop');
    assert.equal(result.kind, 'done');
    assert.deepEqual(rechecked, ['edge-1']);
    assert.deepEqual(events, ['revoked:edge-1']);
  });

  it('audits an enrollment token with the actor, and a failing observer does not fail the action', async () => {
    const { service, audit } = actions();
    const created = await service.createToken(aid('edge-1'), 60_000, 'ops');
    assert.equal(created.token, 'secret');
    assert.deepEqual(audit.map((e) => [e.actor, e.action, e.target]), [['ops', 'token.create', 'edge-1']]);
  });

  it('passes a rollout command with its actor and reason to the rollout', async () => {
    const { service, events } = actions();
    assert.equal((await service.rolloutAction('pause', 'ops', 'incident')).kind, 'done');
    await service.rolloutAction('resume', 'ops', undefined);
    assert.deepEqual(events, ['rollout:pause:ops:incident', 'rollout:resume:ops:-']);
  });
});

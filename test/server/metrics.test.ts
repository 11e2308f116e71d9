import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RolloutStatus, WaveStatus } from '../../src/rollout/index.js';
import type { AgentStatus } from '../../src/fleet/index.js';
import { ServerMetrics, type ServerMetricsOptions } from '../../src/server/metrics.js';
import type { Delivery } from '../../src/transport/backend.js';
import { manualClock } from './helpers.js';
import { aid, cid } from '../helpers/ids.js';

const T0 = new Date('2026-03-02T10:00:00Z');
const HOUR = 3_600_000;

function agent(id: string, fields: Partial<AgentStatus> = {}): AgentStatus {
  return {
    id: aid(id),
    labels: {},
    wave: 'all',
    state: 'SYNCED',
    desired: { commit: cid('c1'), digest: `sha256:${id}-1`, generation: 1 },
    active: { commit: cid('c1'), digest: `sha256:${id}-1`, generation: 1, at: T0 },
    certSerial: null,
    certExpiry: null,
    lastSeen: T0,
    connected: true,
    lastError: null,
    quarantine: null,
    lastRejection: null,
    ...fields,
  };
}

function wave(name: string, applied: number, rejected: number, pending: number): WaveStatus {
  return { name, agents: applied + rejected + pending, applied, rejected, pending, state: 'progressing', startedAt: null, completedAt: null };
}

function rolloutStatus(fields: Partial<RolloutStatus> = {}): RolloutStatus {
  return { commit: cid('c1'), previous: null, state: 'complete', waves: [], window: { open: true, nextOpen: null }, ...fields };
}

/** The samples of one metric, as `{labels}` → value (labels in exposition order). */
async function samples(metrics: ServerMetrics, name: string): Promise<Map<string, number>> {
  const text = (await metrics.text()).body;
  const found = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([a-z_:]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match?.[1] === name) found.set(match[2] ?? '', Number(match[3]));
  }
  return found;
}

function metricsOver(agents: () => readonly AgentStatus[], options: Partial<ServerMetricsOptions> = {}): ServerMetrics {
  return new ServerMetrics({ fleet: { list: agents }, connectedAgents: () => 0, now: () => T0, ...options });
}

describe('ServerMetrics', () => {
  describe('every labelled counter whose values are known up front', () => {
    it('has a series at 0 for each value before the first event', async () => {
      const metrics = metricsOver(() => []);
      const expected: Record<string, readonly string[]> = {
        meshcfg_tls_handshakes_total: ['result="ok"', 'result="failed"'],
        meshcfg_connect_failures_total: [
          'reason="handshake-timeout"',
          'reason="tls-error"',
          'reason="no-h2"',
          'reason="refused-certificate"',
          'reason="queue-timeout"',
          'reason="overloaded"',
          'reason="hello-timeout"',
        ],
        meshcfg_commits_total: ['result="accepted"', 'result="refused"'],
        meshcfg_acks_total: ['status="applied"', 'status="rejected"', 'status="stale"'],
        meshcfg_unauthorized_attempts_total: [
          'reason="no-client-certificate"',
          'reason="bad-identity"',
          'reason="unknown-agent"',
          'reason="revoked"',
          'reason="replaced-certificate"',
          'reason="expired-certificate"',
          'reason="untrusted-certificate"',
          'reason="identity-mismatch"',
          'reason="bad-token"',
          'reason="expired-token"',
          'reason="reused-token"',
          'reason="bad-csr"',
          'reason="malformed-commit"',
        ],
        meshcfg_admin_unauthorized_requests_total: ['reason="missing-token"', 'reason="bad-token"', 'reason="revoked-token"', 'reason="expired-token"', 'reason="forbidden-role"'],
      };
      for (const [name, labels] of Object.entries(expected)) {
        const found = await samples(metrics, name);
        assert.deepEqual([...found.keys()].sort(), labels.map((l) => `{${l}}`).sort(), name);
        for (const [l, value] of found) assert.equal(value, 0, `${name}${l}`);
      }
    });
  });

  describe('meshcfg_config_mismatch_agents', () => {
    it('counts agents in contact whose active digest is not their desired one', async () => {
      const stale = new Date(T0.getTime() - 3 * 60_000);
      const fleet = [
        agent('synced'),
        agent('pending', { active: { commit: cid('c0'), digest: 'sha256:old', generation: 1, at: T0 } }),
        agent('nothing-yet', { active: null }),
        agent('polling', { connected: false, lastSeen: new Date(T0.getTime() - 60_000), active: null }),
        agent('gone', { connected: false, lastSeen: stale, active: null, state: 'DISCONNECTED' }),
        agent('never-seen', { connected: false, lastSeen: null, active: null, state: 'DISCONNECTED' }),
        agent('nothing-desired', { desired: null, active: null }),
      ];
      const metrics = metricsOver(() => fleet);
      assert.deepEqual(await samples(metrics, 'meshcfg_config_mismatch_agents'), new Map([['', 3]]));
    });
  });

  describe('certificate expiry', () => {
    it('has one series per enrolled agent, and counts agents expiring within 1h, 24h and 7d cumulatively', async () => {
      const at = (ms: number): Date => new Date(T0.getTime() + ms);
      const fleet = [
        agent('expired', { certExpiry: at(-HOUR) }),
        agent('in-30m', { certExpiry: at(HOUR / 2) }),
        agent('in-20h', { certExpiry: at(20 * HOUR) }),
        agent('in-3d', { certExpiry: at(72 * HOUR) }),
        agent('in-30d', { certExpiry: at(720 * HOUR) }),
        agent('not-enrolled'),
      ];
      const metrics = metricsOver(() => fleet);
      const expiry = await samples(metrics, 'meshcfg_agent_certificate_expiry_timestamp_seconds');
      assert.deepEqual(
        expiry,
        new Map(fleet.filter((a) => a.certExpiry !== null).map((a) => [`{agent="${a.id}"}`, (a.certExpiry as Date).getTime() / 1000])),
      );
      assert.deepEqual(await samples(metrics, 'meshcfg_agents_certificate_expiring'), new Map([['{within="1h"}', 2], ['{within="24h"}', 3], ['{within="7d"}', 4]]));
    });

    it('drops the series of an agent that left the inventory', async () => {
      let fleet = [agent('a', { certExpiry: T0 }), agent('b', { certExpiry: T0 })];
      const metrics = metricsOver(() => fleet);
      assert.equal((await samples(metrics, 'meshcfg_agent_certificate_expiry_timestamp_seconds')).size, 2);
      fleet = [agent('a', { certExpiry: T0 })];
      assert.deepEqual([...(await samples(metrics, 'meshcfg_agent_certificate_expiry_timestamp_seconds')).keys()], ['{agent="a"}']);
    });

    it('exports the server and CA certificates’ expiry', async () => {
      const metrics = metricsOver(() => [], { certificates: { server: new Date(T0.getTime() + HOUR), ca: new Date(T0.getTime() + 1000 * HOUR) } });
      assert.deepEqual(await samples(metrics, 'meshcfg_server_certificate_expiry_timestamp_seconds'), new Map([['', T0.getTime() / 1000 + 3600]]));
      assert.deepEqual(await samples(metrics, 'meshcfg_ca_certificate_expiry_timestamp_seconds'), new Map([['', T0.getTime() / 1000 + 3_600_000]]));
    });
  });

  describe('the rollout', () => {
    it('sets meshcfg_rollout_state to 1 for the current state and 0 for the five others', async () => {
      const metrics = metricsOver(() => [], { rollout: () => rolloutStatus({ state: 'halted' }) });
      assert.deepEqual(
        await samples(metrics, 'meshcfg_rollout_state'),
        new Map([
          ['{state="waiting-window"}', 0],
          ['{state="progressing"}', 0],
          ['{state="paused"}', 0],
          ['{state="halted"}', 1],
          ['{state="complete"}', 0],
          ['{state="aborted"}', 0],
        ]),
      );
    });

    it('counts applied, rejected and pending agents per wave, summing waves beyond the cap under wave="_other"', async () => {
      let waves = [wave('canary', 1, 1, 0), wave('early', 2, 0, 3), wave('w3', 1, 0, 0), wave('w4', 0, 2, 5)];
      const metrics = metricsOver(() => [], { rollout: () => rolloutStatus({ waves }), maxWaveSeries: 2 });
      assert.deepEqual(
        await samples(metrics, 'meshcfg_rollout_wave_agents'),
        new Map([
          ['{wave="canary",state="applied"}', 1],
          ['{wave="canary",state="rejected"}', 1],
          ['{wave="canary",state="pending"}', 0],
          ['{wave="early",state="applied"}', 2],
          ['{wave="early",state="rejected"}', 0],
          ['{wave="early",state="pending"}', 3],
          ['{wave="_other",state="applied"}', 1],
          ['{wave="_other",state="rejected"}', 2],
          ['{wave="_other",state="pending"}', 5],
        ]),
      );
      // A commit with other waves replaces the series: none of the old waves' remain.
      waves = [wave('all', 4, 0, 0)];
      assert.deepEqual([...(await samples(metrics, 'meshcfg_rollout_wave_agents')).keys()], ['{wave="all",state="applied"}', '{wave="all",state="rejected"}', '{wave="all",state="pending"}']);
    });

    it('defaults to 20 wave series', async () => {
      const waves = Array.from({ length: 25 }, (_, i) => wave(`w${i}`, 1, 0, 0));
      const metrics = metricsOver(() => [], { rollout: () => rolloutStatus({ waves }) });
      const found = await samples(metrics, 'meshcfg_rollout_wave_agents');
      assert.equal(found.size, 21 * 3);
      assert.equal(found.get('{wave="_other",state="applied"}'), 5);
    });

    it('counts quarantined agents', async () => {
      const quarantine = { since: T0, reason: 'drift', by: 'system' };
      const metrics = metricsOver(() => [agent('a', { quarantine, state: 'QUARANTINED' }), agent('b'), agent('c', { quarantine, state: 'QUARANTINED' })]);
      assert.deepEqual(await samples(metrics, 'meshcfg_quarantined_agents'), new Map([['', 2]]));
    });
  });

  describe('meshcfg_source_info', () => {
    it('is one series with value 1, replaced when the accepted or refused commit changes', async () => {
      let source: { accepted: string | null; refused: string | null } = { accepted: null, refused: null };
      const metrics = metricsOver(() => [], { source: () => source });
      assert.deepEqual(await samples(metrics, 'meshcfg_source_info'), new Map([['{accepted_commit="",refused_commit=""}', 1]]));
      source = { accepted: 'aaa', refused: null };
      assert.deepEqual(await samples(metrics, 'meshcfg_source_info'), new Map([['{accepted_commit="aaa",refused_commit=""}', 1]]));
      source = { accepted: 'aaa', refused: 'bbb' };
      assert.deepEqual(await samples(metrics, 'meshcfg_source_info'), new Map([['{accepted_commit="aaa",refused_commit="bbb"}', 1]]));
    });
  });

  describe('meshcfg_convergence_seconds', () => {
    const delivery = (digest: string, baseline = false): Delivery =>
      ({ commit: cid('c2'), digest, generation: 2, bytes: new Uint8Array(), signature: '', nonce: 'n', baseline }) as Delivery;
    const ack = (digest: string, status: 'APPLIED' | 'REJECTED' = 'APPLIED') => ({ commit: cid('c2'), digest, generation: 2, nonce: 'n', status, error: '' });
    const publish = (metrics: ServerMetrics, reason: 'commit' | 'restore', commit: string, digests: Record<string, string>): void =>
      metrics.reconcileHooks.onPublished?.({
        reason,
        snapshot: { generation: 2 },
        compilation: { commit: { sha: commit }, agents: Object.entries(digests).map(([id, digest]) => ({ id, bundle: { digest } })) },
      } as unknown as Parameters<NonNullable<ServerMetrics['reconcileHooks']['onPublished']>>[0]);

    it('observes, once per agent, the time from the commit’s acceptance to the APPLIED ack of its bundle at that commit', async () => {
      const clock = manualClock(T0);
      const metrics = metricsOver(() => [], { now: clock.now });
      publish(metrics, 'commit', 'c2', { a: 'sha256:a2', b: 'sha256:b2', c: 'sha256:c2', d: 'sha256:d2' });
      clock.advance(3_000);
      metrics.backendHooks.onAck?.({ agentId: aid('a'), ack: ack('sha256:a2'), outcome: { kind: 'recorded' }, delivery: delivery('sha256:a2') });
      metrics.backendHooks.onAck?.({ agentId: aid('a'), ack: ack('sha256:a2'), outcome: { kind: 'recorded' }, delivery: delivery('sha256:a2') });
      // Not convergence: a rejection, a stale ack, the baseline, an older bundle (a later wave's agent held back).
      metrics.backendHooks.onAck?.({ agentId: aid('b'), ack: ack('sha256:b2', 'REJECTED'), outcome: { kind: 'recorded' }, delivery: delivery('sha256:b2') });
      metrics.backendHooks.onAck?.({ agentId: aid('b'), ack: ack('sha256:b2'), outcome: { kind: 'stale' }, delivery: delivery('sha256:b2') });
      metrics.backendHooks.onAck?.({ agentId: aid('c'), ack: ack('sha256:base'), outcome: { kind: 'recorded' }, delivery: delivery('sha256:base', true) });
      metrics.backendHooks.onAck?.({ agentId: aid('d'), ack: ack('sha256:d1'), outcome: { kind: 'recorded' }, delivery: delivery('sha256:d1') });
      // The later wave reaches d an hour on.
      clock.advance(HOUR);
      metrics.backendHooks.onAck?.({ agentId: aid('d'), ack: ack('sha256:d2'), outcome: { kind: 'recorded' }, delivery: delivery('sha256:d2') });
      const found = await samples(metrics, 'meshcfg_convergence_seconds_count');
      assert.deepEqual(found, new Map([['', 2]]));
      assert.deepEqual(await samples(metrics, 'meshcfg_convergence_seconds_sum'), new Map([['', 3 + 3603]]));
      const buckets = await samples(metrics, 'meshcfg_convergence_seconds_bucket');
      assert.equal(buckets.get('{le="5"}'), 1);
      assert.equal(buckets.get('{le="3600"}'), 1);
      assert.equal(buckets.get('{le="7200"}'), 2);
    });

    it('stops measuring a commit once a newer one is accepted', async () => {
      const clock = manualClock(T0);
      const metrics = metricsOver(() => [], { now: clock.now });
      publish(metrics, 'commit', 'c2', { a: 'sha256:a2' });
      publish(metrics, 'commit', 'c3', { a: 'sha256:a3' });
      clock.advance(1_000);
      metrics.backendHooks.onAck?.({ agentId: aid('a'), ack: ack('sha256:a2'), outcome: { kind: 'recorded' }, delivery: delivery('sha256:a2') });
      assert.deepEqual(await samples(metrics, 'meshcfg_convergence_seconds_count'), new Map([['', 0]]));
    });

    it('after a restart, measures from the earlier run’s first sighting and skips agents that already run the bundle', async () => {
      const clock = manualClock(T0);
      const fleet = [agent('a', { active: { commit: cid('c2'), digest: 'sha256:a2', generation: 2, at: T0 } }), agent('b', { active: null })];
      const metrics = metricsOver(() => fleet, { now: clock.now, acceptedAt: (commit) => (commit === 'c2' ? new Date(T0.getTime() - 10_000) : undefined) });
      publish(metrics, 'restore', 'c2', { a: 'sha256:a2', b: 'sha256:b2' });
      metrics.backendHooks.onAck?.({ agentId: aid('a'), ack: ack('sha256:a2'), outcome: { kind: 'recorded' }, delivery: delivery('sha256:a2') });
      metrics.backendHooks.onAck?.({ agentId: aid('b'), ack: ack('sha256:b2'), outcome: { kind: 'recorded' }, delivery: delivery('sha256:b2') });
      assert.deepEqual(await samples(metrics, 'meshcfg_convergence_seconds_count'), new Map([['', 1]]));
      assert.deepEqual(await samples(metrics, 'meshcfg_convergence_seconds_sum'), new Map([['', 10]]));
    });
  });

  it('keeps the Node.js process metrics', async () => {
    const text = (await metricsOver(() => []).text()).body;
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) {
      assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
    }
  });
});

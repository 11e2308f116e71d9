import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { enroll, runAgent, silentLogger as silentAgentLogger, type ReloadResult } from '../../src/agent/index.js';
import { certificateExpiry } from '../../src/pki/index.js';
import type { ServerConfig } from '../../src/server/config.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { meshcfg } from '../helpers/cli.js';
import { freePort, waitFor } from '../helpers/process.js';
import { configFor, exampleConfigFiles, makeFixture, silentLogger, type Fixture } from './helpers.js';

/** Two waves, no windows, no bake: the canary's one rejection halts the rollout. */
const ROLLOUT_YAML = `trustDomain: example.org
policy:
  secureZones: [pci]
  allowedDestinations: ["**.svc.cluster.local", "**.internal.example.org", "api.example.com"]
rollout:
  waves:
    - { name: canary, match: { ring: canary } }
    - { name: rest, percent: 100 }
  successRatio: 1
  maxNackRatio: 0
`;
/** Enrolled and running; edge-4 (canary) stays unenrolled. */
const AGENTS = ['edge-1', 'edge-2', 'edge-3'];

function baseChange(accessLog: boolean, metrics: boolean): Record<string, string> {
  return { 'config/base/10-telemetry.yaml': `telemetry:\n  accessLog: ${accessLog}\n  metrics: ${metrics}\n` };
}

interface AgentJson {
  id: string;
  state: string;
  desired: { commit: string; digest: string } | null;
  active: { commit: string; digest: string } | null;
  certExpiry: string | null;
  lastRejection: { commit: string; digest: string; error: string; at: string } | null;
}

/** `name{labels} value` lines of a Prometheus exposition, as `name{labels}` → value. */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (match !== null) samples.set(match[1] as string, Number(match[2]));
  }
  return samples;
}

/**
 * A real server (git repository with SSH-signed commits, mTLS gRPC, SQLite) and three real
 * agents (enrolled over the pinned channel, streaming), scraped over HTTP like Prometheus does.
 */
describe('telemetry and rejections of a real server with real agents', { timeout: 180_000 }, () => {
  let fixture: Fixture;
  let config: ServerConfig;
  let server: RunningServer;
  let token: string;
  let canaryFails = false;
  const stops: AbortController[] = [];
  const running: Array<Promise<void>> = [];

  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${server.adminUrl}${path}`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200, path);
    return (await res.json()) as T;
  };
  const agents = async (): Promise<Map<string, AgentJson>> => new Map((await api<AgentJson[]>('/api/v1/agents')).map((a) => [a.id, a]));
  const scrape = async (): Promise<{ text: string; samples: Map<string, number> }> => {
    const res = await fetch(`${server.adminUrl}/metrics`);
    assert.equal(res.status, 200);
    const text = await res.text();
    return { text, samples: parseExposition(text) };
  };
  const push = async (files: Record<string, string>, message: string): Promise<string> => {
    const sha = fixture.repo.write(files).commit(message, fixture.signer);
    assert.equal((await server.syncNow()).kind, 'accepted');
    return sha;
  };
  const syncedOn = (commit: string, ids = AGENTS): Promise<Map<string, AgentJson>> =>
    waitFor(`${ids.join(', ')} SYNCED on ${commit.slice(0, 7)}`, async () => {
      const all = await agents();
      return ids.every((id) => all.get(id)?.state === 'SYNCED' && all.get(id)?.active?.commit === commit) ? all : undefined;
    });

  before(async () => {
    fixture = makeFixture({ empty: true });
    fixture.first = fixture.repo.write({ ...exampleConfigFiles(), 'meshcfg.yaml': ROLLOUT_YAML }).commit('initial config', fixture.signer);
    // A fixed gRPC port: the agents find the server again after a restart.
    config = configFor(fixture, { grpc: `127.0.0.1:${await freePort()}` });
    server = await startServer(config, { logger: silentLogger, rolloutTickMs: 100 });
    token = readFileSync(server.adminTokenPath, 'utf8').trim();
    await server.syncNow();
    for (const id of AGENTS) {
      const res = await fetch(`${server.adminUrl}/api/v1/tokens`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ agentId: id }),
      });
      const { token: enrollToken } = (await res.json()) as { token: string };
      const dir = join(fixture.root, 'agents', id);
      await enroll({ server: server.grpcAddress, pins: [server.pin], token: enrollToken, dir, logger: silentAgentLogger });
      const stop = new AbortController();
      stops.push(stop);
      // While `canaryFails` is set, the canary's proxy refuses a config with the access log off
      // (and takes its previous config back).
      const reloader = async (file: string): Promise<ReloadResult> =>
        id === 'edge-1' && canaryFails && (await readFile(file, 'utf8')).includes('"accessLog":false')
          ? { kind: 'failed', error: 'exit status 1: proxy refused the config' }
          : { kind: 'ok' };
      running.push(runAgent({ dir, out: join(fixture.root, 'agents', `${id}.json`), signal: stop.signal, reloader, logger: silentAgentLogger, backoff: { initialMs: 50, maxMs: 500 } }));
    }
    await syncedOn(fixture.first);
  });

  after(async () => {
    for (const stop of stops) stop.abort();
    await Promise.allSettled(running);
    await server?.close();
    fixture?.cleanup();
  });

  describe('GET /metrics', () => {
    it('shows the fleet: agents by state, certificate expiry per enrolled agent, the server’s and CA’s, the source and the rollout', async () => {
      const all = await agents();
      const { samples } = await scrape();
      assert.equal(samples.get('meshcfg_agents{state="SYNCED"}'), 3);
      assert.equal(samples.get('meshcfg_agents{state="DISCONNECTED"}'), 1);
      assert.equal(samples.get('meshcfg_connected_agents'), 3);
      assert.equal(samples.get('meshcfg_config_mismatch_agents'), 0);
      assert.equal(samples.get('meshcfg_quarantined_agents'), 0);
      for (const id of AGENTS) {
        assert.equal(samples.get(`meshcfg_agent_certificate_expiry_timestamp_seconds{agent="${id}"}`), Date.parse(all.get(id)?.certExpiry ?? '') / 1000, id);
      }
      assert.equal(samples.has('meshcfg_agent_certificate_expiry_timestamp_seconds{agent="edge-4"}'), false, 'edge-4 never enrolled');
      // Certificates live 24 h by default (agents renew at two thirds of that).
      assert.equal(samples.get('meshcfg_agents_certificate_expiring{within="1h"}'), 0);
      assert.equal(samples.get('meshcfg_agents_certificate_expiring{within="24h"}'), 3);
      assert.equal(samples.get('meshcfg_agents_certificate_expiring{within="7d"}'), 3);
      assert.equal(samples.get('meshcfg_server_certificate_expiry_timestamp_seconds'), certificateExpiry(server.dataDir.serverCertPem).getTime() / 1000);
      assert.equal(samples.get('meshcfg_ca_certificate_expiry_timestamp_seconds'), server.dataDir.ca.notAfter.getTime() / 1000);
      assert.equal(samples.get(`meshcfg_source_info{accepted_commit="${fixture.first}",refused_commit=""}`), 1);
      assert.equal(samples.get('meshcfg_rollout_state{state="complete"}'), 1);
      assert.equal(samples.get('meshcfg_commits_total{result="accepted"}'), 1);
      assert.ok((samples.get('meshcfg_tls_handshakes_total{result="ok"}') ?? 0) >= 3);
    });

    it('observes each agent’s convergence on the accepted commit once', async () => {
      const { samples } = await scrape();
      assert.equal(samples.get('meshcfg_convergence_seconds_count'), 3);
      assert.ok((samples.get('meshcfg_convergence_seconds_sum') ?? 0) > 0);
    });

    it('is accepted whole by `promtool check metrics`', async () => {
      const { text } = await scrape();
      const run = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      assert.equal(run.error, undefined, 'promtool (Debian package prometheus) is on PATH');
      assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
      assert.equal(`${run.stdout}${run.stderr}`.trim(), '', 'no lint finding');
    });
  });

  describe('when the canary rejects a commit and the rollout halts', () => {
    let rejected: string;
    before(async () => {
      canaryFails = true;
      rejected = await push(baseChange(false, true), 'access log off');
      await waitFor('the rollout to halt', async () => (await api<{ commit: string; state: string }>('/api/v1/rollout')).state === 'halted' || undefined);
    });

    it('keeps the rejection in GET /api/v1/agents once the halt sent the canary back to its previous bundle', async () => {
      const all = await syncedOn(fixture.first, ['edge-1']);
      const canary = all.get('edge-1') as AgentJson;
      assert.equal(canary.desired?.commit, fixture.first, 'sent back to its previous bundle');
      assert.equal(canary.active?.digest, canary.desired?.digest);
      assert.equal(canary.lastRejection?.commit, rejected);
      assert.notEqual(canary.lastRejection?.digest, canary.active?.digest, 'the digest it rejected, not the one it runs');
      assert.match(canary.lastRejection?.error ?? '', /^RELOAD_FAILED: exit status 1: proxy refused the config/);
      assert.ok(Math.abs(Date.parse(canary.lastRejection?.at ?? '') - Date.now()) < 60_000, 'when');
      for (const id of ['edge-2', 'edge-3']) assert.equal(all.get(id)?.lastRejection, null, `${id} never got the commit`);
    });

    it('`meshcfg status` marks the canary’s row with (NACK) and names the commit, when and the error', async () => {
      const run = await meshcfg('status', '--admin', server.adminUrl, '--admin-token-file', server.adminTokenPath);
      assert.equal(run.code, 0, run.stderr);
      const row = (id: string): string[] => (run.stdout.split('\n').find((l) => l.startsWith(`${id} `)) ?? '').split(/\s{3,}/);
      assert.equal(row('edge-1')[2], 'SYNCED (NACK)');
      assert.equal(row('edge-2')[2], 'SYNCED');
      assert.match(run.stdout, new RegExp(`^NACK edge-1: rejected ${rejected.slice(0, 7)}:[0-9a-f]{8} \\d+[smh] ago: RELOAD_FAILED: exit status 1: proxy refused the config`, 'm'));
      assert.equal(run.stdout.match(/^NACK /gm)?.length, 1);
    });

    it('shows the halt in the metrics: the rollout state, the canary wave’s rejection, the rejected ack', async () => {
      const { samples } = await scrape();
      assert.equal(samples.get('meshcfg_rollout_state{state="halted"}'), 1);
      assert.equal(samples.get('meshcfg_rollout_state{state="complete"}'), 0);
      assert.equal(samples.get('meshcfg_rollout_wave_agents{wave="canary",state="rejected"}'), 1);
      assert.equal(samples.get('meshcfg_rollout_wave_agents{wave="rest",state="applied"}'), 0);
      assert.ok((samples.get('meshcfg_acks_total{status="rejected"}') ?? 0) >= 1);
      assert.equal(samples.get(`meshcfg_source_info{accepted_commit="${rejected}",refused_commit=""}`), 1);
    });

    it('keeps the rejection across a server restart', async () => {
      const before = (await agents()).get('edge-1')?.lastRejection;
      assert.equal(before?.commit, rejected);
      await server.close();
      server = await startServer(config, { logger: silentLogger, rolloutTickMs: 100 });
      const all = await waitFor('the agents back on the restarted server', async () => {
        const a = await agents();
        return AGENTS.every((id) => a.get(id)?.state === 'SYNCED') ? a : undefined;
      });
      assert.deepEqual(all.get('edge-1')?.lastRejection, before);
      assert.equal((await api<{ state: string }>('/api/v1/rollout')).state, 'halted');
      const run = await meshcfg('status', '--admin', server.adminUrl, '--admin-token-file', server.adminTokenPath);
      assert.match(run.stdout, /^edge-1 +canary +SYNCED \(NACK\) /m);
    });

    it('clears the rejection once the canary applies a newer commit', async () => {
      canaryFails = false;
      const fixed = await push(baseChange(false, false), 'access log and metrics off');
      const all = await syncedOn(fixed);
      for (const id of AGENTS) assert.equal(all.get(id)?.lastRejection, null, id);
      const run = await meshcfg('status', '--admin', server.adminUrl, '--admin-token-file', server.adminTokenPath);
      assert.doesNotMatch(run.stdout, /NACK/);
      const { samples } = await scrape();
      assert.equal(samples.get('meshcfg_rollout_state{state="complete"}'), 1);
      assert.equal(samples.get('meshcfg_rollout_wave_agents{wave="rest",state="applied"}'), 2);
    });
  });

  describe('a refused commit', () => {
    it('appears as refused_commit beside the accepted one, and is counted', async () => {
      const accepted = (await api<{ accepted: string }>('/api/v1/source')).accepted;
      const bad = fixture.repo.write(baseChange(true, true)).commit('signed by a stranger', fixture.stranger);
      assert.equal((await server.syncNow()).kind, 'refused');
      const { samples } = await scrape();
      assert.equal(samples.get(`meshcfg_source_info{accepted_commit="${accepted}",refused_commit="${bad}"}`), 1);
      assert.equal([...samples.keys()].filter((k) => k.startsWith('meshcfg_source_info')).length, 1, 'one series at a time');
      assert.equal(samples.get('meshcfg_commits_total{result="refused"}'), 1);
    });
  });
});

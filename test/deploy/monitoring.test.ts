import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { tempDir } from '../helpers/git.js';
import { configFor, makeFixture, silentLogger, type Fixture } from '../server/helpers.js';
import { readRepoFile, ROOT } from './helpers.js';

// Rule files and dashboards are untyped documents: read field by field, every expectation asserted.
type Doc = Record<string, any>;

const RULES = 'deploy/monitoring/meshcfg.rules.yaml';
const DASHBOARD = 'deploy/monitoring/meshcfg-dashboard.json';

/** Runs promtool (Debian package `prometheus`; `.ci/run` installs it) from the repository root. */
function promtool(...args: string[]): { status: number | null; output: string } {
  const run = spawnSync('promtool', args, { cwd: ROOT, encoding: 'utf8' });
  assert.equal(run.error, undefined, 'promtool is on PATH');
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

/** Metric names a PromQL expression reads (ours and the Node.js process metrics). */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\b(?:meshcfg|process|nodejs)_[a-z0-9_]+\b/g)].map((m) => m[0]);
}

describe('deploy/monitoring', () => {
  const rules = (parse(readRepoFile(RULES)) as Doc)['groups'].flatMap((g: Doc) => g['rules']) as Doc[];
  const alert = (name: string): Doc => {
    const found = rules.find((r) => r['alert'] === name);
    assert.ok(found, `an alert ${name}`);
    return found;
  };
  const dashboard = JSON.parse(readRepoFile(DASHBOARD)) as Doc;
  const panels = (dashboard['panels'] as Doc[]).filter((p) => p['type'] !== 'row');
  const dashboardExprs = panels.flatMap((p) => (p['targets'] as Doc[]).map((t) => t['expr'] as string));

  describe('the alerting rules', () => {
    it('are accepted by `promtool check rules`', () => {
      const run = promtool('check', 'rules', RULES);
      assert.equal(run.status, 0, run.output);
      assert.match(run.output, /SUCCESS: \d+ rules found/);
    });

    it('fire on the series meshcfg serves, after their `for` and not before (`promtool test rules`)', () => {
      const run = promtool('test', 'rules', 'test/deploy/meshcfg.rules.test.yaml');
      assert.equal(run.status, 0, run.output);
    });

    it('cover expiring certificates, mismatch above zero for 10 minutes, a halted rollout, the unauthorized-attempt rate and quarantined agents', () => {
      assert.deepEqual(metricNames(alert('MeshcfgAgentCertificateExpiring')['expr']), ['meshcfg_agents_certificate_expiring']);
      assert.equal(alert('MeshcfgConfigMismatch')['expr'], 'meshcfg_config_mismatch_agents > 0');
      assert.equal(alert('MeshcfgConfigMismatch')['for'], '10m');
      assert.match(alert('MeshcfgRolloutHalted')['expr'], /^meshcfg_rollout_state\{state="halted"\} == 1$/);
      assert.match(alert('MeshcfgUnauthorizedAttempts')['expr'], /\b(?:rate|increase)\(meshcfg_unauthorized_attempts_total\[/);
      assert.match(alert('MeshcfgUnauthorizedAdminRequests')['expr'], /\b(?:rate|increase)\(meshcfg_admin_unauthorized_requests_total\[/);
      assert.equal(alert('MeshcfgAgentsQuarantined')['expr'], 'meshcfg_quarantined_agents > 0');
      for (const rule of rules) assert.ok(['warning', 'critical'].includes(rule['labels']?.['severity']), `${rule['alert']} has a severity`);
    });
  });

  describe('the Grafana dashboard', () => {
    it('has unique panel ids, a Prometheus data source variable every panel uses, and a query in every target', () => {
      const ids = (dashboard['panels'] as Doc[]).map((p) => p['id']);
      assert.equal(new Set(ids).size, ids.length);
      const variable = (dashboard['templating']['list'] as Doc[]).find((v) => v['type'] === 'datasource');
      assert.equal(variable?.['query'], 'prometheus');
      for (const panel of panels) {
        assert.equal(panel['datasource']['uid'], `\${${variable?.['name']}}`, panel['title']);
        assert.ok(panel['targets'].length > 0, panel['title']);
        for (const target of panel['targets']) assert.ok(typeof target['expr'] === 'string' && target['expr'] !== '', panel['title']);
      }
    });

    it('queries parse as PromQL (`promtool check rules` on them as recording rules)', () => {
      const tmp = tempDir('meshcfg-dashboard-');
      try {
        const file = join(tmp.path, 'dashboard-queries.yaml');
        const recorded = dashboardExprs.map((expr, i) => ({ record: `dashboard:query_${i}`, expr: expr.replaceAll('$__rate_interval', '5m') }));
        writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules: recorded }] }));
        const run = promtool('check', 'rules', file);
        assert.equal(run.status, 0, run.output);
      } finally {
        tmp.cleanup();
      }
    });

    it('shows the source, the rollout per wave, the fleet, mismatch, quarantine, certificates and unauthorized attempts', () => {
      const used = new Set(dashboardExprs.flatMap(metricNames));
      for (const name of [
        'meshcfg_source_info',
        'meshcfg_rollout_state',
        'meshcfg_rollout_wave_agents',
        'meshcfg_agents',
        'meshcfg_config_mismatch_agents',
        'meshcfg_quarantined_agents',
        'meshcfg_convergence_seconds_bucket',
        'meshcfg_agents_certificate_expiring',
        'meshcfg_agent_certificate_expiry_timestamp_seconds',
        'meshcfg_server_certificate_expiry_timestamp_seconds',
        'meshcfg_ca_certificate_expiry_timestamp_seconds',
        'meshcfg_unauthorized_attempts_total',
        'meshcfg_admin_unauthorized_requests_total',
      ]) {
        assert.ok(used.has(name), name);
      }
    });
  });

  describe('against a real server', () => {
    let fixture: Fixture;
    let server: RunningServer;
    before(async () => {
      fixture = makeFixture();
      server = await startServer(configFor(fixture), { logger: silentLogger });
      assert.equal((await server.syncNow()).kind, 'accepted');
    });
    after(async () => {
      await server?.close();
      fixture?.cleanup();
    });

    it('every metric the rules and the dashboard read is one GET /metrics serves', async () => {
      const text = await (await fetch(`${server.adminUrl}/metrics`)).text();
      const served = new Set<string>();
      for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
        served.add(name as string);
        if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) served.add(`${name}${suffix}`);
      }
      const read = [...rules.map((r) => r['expr'] as string), ...dashboardExprs].flatMap(metricNames);
      assert.ok(read.length > 20);
      for (const name of new Set(read)) assert.ok(served.has(name), `${name} is served`);
    });
  });
});

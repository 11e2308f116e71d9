import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { tempDir } from '../helpers/git.js';
import { waitFor } from '../helpers/process.js';
import { CONFIG_FILES, Deployment, INVENTORY, type RolloutView } from './harness.js';

/**
 * The dashboard at the admin port's `/`, in real headless Chromium against a real
 * `meshcfg serve` process with real enrolled agents: every request the page makes is recorded
 * and must stay on the admin origin.
 */

/** Debian's `chromium` (what `.ci/run` installs), found on PATH. */
function chromiumPath(): string {
  for (const name of ['chromium', 'chromium-browser']) {
    try {
      return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
    } catch {
      // try the next name
    }
  }
  throw new Error('no chromium on PATH: install the Debian package chromium (bash .ci/run does)');
}

/** The harness's inventory with edge-4 in the canary ring too: two canaries. */
const DASHBOARD_INVENTORY = INVENTORY.replace('edge-4, labels: { zone: public, env: staging }', 'edge-4, labels: { zone: public, env: staging, ring: canary }');

/**
 * Waves `canary` (edge-1, edge-4; an hour's bake) and `rest`. A wave completes at 50 % APPLIED
 * and halts above 50 % REJECTED: one refusing canary of two is shown, not halted on, and the
 * rollout stays in progress while the page watches.
 */
const MESHCFG_YAML = [
  'trustDomain: example.org',
  'policy:',
  '  secureZones: [pci]',
  '  allowedDestinations: ["**.svc.cluster.local"]',
  'rollout:',
  '  waves:',
  '    - { name: canary, match: { ring: canary }, bake: 1h }',
  '    - { name: rest, percent: 100 }',
  '  successRatio: 0.5',
  '  maxNackRatio: 0.5',
  '',
].join('\n');

/** Kept after the run (screenshots are test artifacts); the path is printed. */
const ARTIFACTS = process.env['MESHCFG_TEST_ARTIFACTS'] ?? join(tmpdir(), `meshcfg-dashboard-artifacts-${process.pid}`);

describe('dashboard in headless Chromium', { timeout: 300_000 }, () => {
  const tmp = tempDir('meshcfg-e2e-dashboard-');
  let d: Deployment;
  let first: string;
  let browser: Browser;
  let token: string;
  const contexts: BrowserContext[] = [];
  const requests: string[] = [];
  const pageErrors: string[] = [];

  const row = (page: Page, id: string) => page.locator(`#agents tbody tr[data-agent="${id}"]`);

  async function open(secret: string): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1500, height: 1000 }, deviceScaleFactor: 1 });
    contexts.push(context);
    context.on('request', (request) => requests.push(request.url()));
    const page = await context.newPage();
    page.on('console', (message) => {
      if (message.type() === 'error') pageErrors.push(message.text());
    });
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(`${d.adminUrl}/#token=${encodeURIComponent(secret)}`);
    return page;
  }

  async function screenshot(page: Page, name: string): Promise<string> {
    mkdirSync(ARTIFACTS, { recursive: true });
    const path = join(ARTIFACTS, `${name}.png`);
    await page.screenshot({ path, fullPage: true });
    console.log(`dashboard screenshot: ${path}`);
    return path;
  }

  before(async () => {
    ({ deployment: d, first } = await Deployment.create(tmp.path, { ...CONFIG_FILES, 'meshcfg.yaml': MESHCFG_YAML, 'inventory/edge.yaml': DASHBOARD_INVENTORY }));
    await d.startServer();
    token = d.adminToken();
    for (const id of ['edge-1', 'edge-2', 'edge-3', 'edge-4']) {
      assert.equal((await d.enroll(id)).code, 0);
      // edge-4's proxy cannot load a config with metrics on: it answers REJECTED for such a bundle.
      d.startAgent(id, id === 'edge-4' ? ['--exec', `if grep -q '"metrics":true' "$MESHCFG_FILE"; then echo 'proxy: metrics listener :15090 failed to bind' >&2; exit 1; fi`] : []);
    }
    for (const id of ['edge-1', 'edge-2', 'edge-3', 'edge-4']) await d.waitSynced(id, first, 30_000);
    browser = await chromium.launch({ executablePath: chromiumPath(), headless: true });
  });

  after(async () => {
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser?.close();
    await d?.stopAll();
    tmp.cleanup();
  });

  describe('signed in with the bootstrap token from a #token= link', () => {
    let page: Page;
    let second: string;

    before(async () => {
      page = await open(token);
    });

    it('shows every agent and the accepted commit, and takes the token out of the address bar', async () => {
      await page.locator('#agents tbody tr[data-agent]').nth(3).waitFor();
      assert.deepEqual(await page.locator('#agents tbody tr[data-agent]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-agent'))), [
        'edge-1',
        'edge-2',
        'edge-3',
        'edge-4',
      ]);
      for (const id of ['edge-1', 'edge-2', 'edge-3', 'edge-4']) assert.equal(await row(page, id).getAttribute('data-state'), 'SYNCED');
      const accepted = page.locator('[data-testid="accepted"] code.sha');
      assert.equal(await accepted.textContent(), first.slice(0, 7));
      assert.equal(await accepted.getAttribute('data-sha'), first);
      assert.match((await page.locator('[data-testid="accepted"]').textContent()) ?? '', /alice@example\.org/);
      assert.ok(!page.url().includes('token'), `the fragment is gone: ${page.url()}`);
      assert.equal(await page.evaluate("sessionStorage.getItem('meshcfg.adminToken')"), token, 'the token is kept for this tab');
      assert.equal(await page.locator('.count[data-state="SYNCED"] .n').textContent(), '4');
    });

    it('shows a new commit without a reload, and the rollout in progress as bars per wave', async () => {
      await page.evaluate('window.marker = 42');
      second = d.push({ 'config/base/10-telemetry.yaml': 'telemetry: { accessLog: true, metrics: true }\n' }, 'turn on access logs and metrics');
      await page.locator(`[data-testid="accepted"] code.sha[data-sha="${second}"]`).waitFor({ timeout: 30_000 });
      assert.match((await page.locator('[data-testid="accepted"]').textContent()) ?? '', /turn on access logs and metrics/);
      // canary: edge-1 applies, edge-4 rejects (1 of 2: not above maxNackRatio), then an hour's bake.
      await page.locator('.wave[data-wave="canary"] .wstate.ws-baking').waitFor({ timeout: 30_000 });
      assert.equal(await page.locator('[data-testid="rollout-state"]').textContent(), 'progressing');
      assert.equal(await page.locator('.wave[data-wave="canary"] .bar .seg.applied').count(), 1);
      assert.equal(await page.locator('.wave[data-wave="canary"] .bar .seg.rejected').count(), 1);
      assert.equal(await page.locator('.wave[data-wave="rest"] .wstate').textContent(), 'pending');
      assert.equal(await page.evaluate('window.marker'), 42, 'the same document: no reload');
      assert.equal((await d.admin<RolloutView>('/api/v1/rollout')).body.commit, second);
    });

    it('shows the last rejection of an agent sent back to its previous bundle', async () => {
      const nack = row(page, 'edge-4').locator('td.rejection .nack', { has: page.locator(`code:text-is("${second.slice(0, 7)}")`) });
      await nack.waitFor({ timeout: 30_000 });
      assert.match((await nack.locator('.err').textContent()) ?? '', /metrics listener :15090 failed to bind/);
      const back = await waitFor('edge-4 back on the first commit', async () => {
        const view = await d.agentView('edge-4');
        return view?.active?.commit === first ? view : undefined;
      });
      assert.equal(back.lastRejection?.commit, second);
      await row(page, 'edge-4').locator(`td.active code:text-is("${first.slice(0, 7)}")`).waitFor();
      assert.equal(await nack.count(), 1, 'still shown once the agent runs its previous bundle again');
    });

    it('shows a refused commit with its code and reason beside the accepted one, and its alert', async () => {
      const unsigned = d.push({ 'config/agents/edge-2.yaml': 'mtls: { mode: PERMISSIVE }\n' }, 'edge-2 permissive, unsigned', null);
      const refused = page.locator('[data-testid="refused"].is-refused');
      await refused.locator(`code.sha[title="${unsigned}"]`).waitFor({ timeout: 30_000 });
      const code = (await d.admin<{ refused: { code: string } }>('/api/v1/source')).body.refused.code;
      assert.equal(await refused.locator('.code').textContent(), code);
      assert.ok(((await refused.locator('.reason').textContent()) ?? '').length > 0, 'the reason is shown');
      assert.equal(await page.locator('[data-testid="accepted"] code.sha').getAttribute('data-sha'), second, 'the accepted commit is still served');
      await page.locator('#alerts .alert.k-commit-refused').first().waitFor();
      // Which server process answered, and that it leads (one server on SQLite always does).
      const replica = (await d.admin<{ replica: { id: string } }>('/api/v1/source')).body.replica.id;
      assert.equal(await page.locator('[data-testid="replica"]').textContent(), replica);
      assert.match((await page.locator('#source .meta').last().textContent()) ?? '', new RegExp(`replica ${replica} \\(leader\\)`));
    });

    it('lists a quarantined agent, and an Approve click with a reason brings it back', async () => {
      // A hand-edited config file: edge-3's next hello reports a digest the server never issued.
      await d.agents.get('edge-3')?.stop();
      const doc = JSON.parse(readFileSync(d.agentFile('edge-3'), 'utf8')) as Record<string, unknown>;
      writeFileSync(d.agentFile('edge-3'), JSON.stringify({ ...doc, mtls: { mode: 'DISABLE' } }));
      d.startAgent('edge-3');

      const card = page.locator('#quarantine-card .quarantined[data-agent="edge-3"]');
      await card.waitFor({ timeout: 30_000 });
      await page.locator('#agents tbody tr[data-agent="edge-3"][data-state="QUARANTINED"]').waitFor();
      await page.locator('#alerts .alert.k-agent-quarantined').first().waitFor();
      await screenshot(page, 'dashboard-quarantined');

      await card.locator('button[data-approve="edge-3"]').click();
      const dialog = page.locator('#action-dialog');
      await dialog.waitFor({ state: 'visible' });
      await page.locator('#action-confirm').click();
      assert.match((await page.locator('#action-error').textContent()) ?? '', /reason is required/, 'an approval without a reason is not sent');
      await page.locator('#action-reason').fill('hand edit reverted, checked by on-call');
      await page.locator('#action-confirm').click();
      await dialog.waitFor({ state: 'hidden' });

      await page.locator('#agents tbody tr[data-agent="edge-3"][data-state="SYNCED"]').waitFor({ timeout: 30_000 });
      assert.equal(await page.locator('#quarantine-card').isHidden(), true);
      const view = await d.agentView('edge-3');
      assert.equal(view?.state, 'SYNCED');
      assert.equal(view?.quarantine, null);
      const audit = (await d.admin<Array<{ action: string; actor: string; target: string; reason: string }>>('/api/v1/audit?limit=1')).body;
      assert.deepEqual(audit.map((e) => [e.action, e.actor, e.target, e.reason]), [['agent.approve', 'admin', 'edge-3', 'hand edit reverted, checked by on-call']]);
      await page.locator('#audit li', { hasText: 'agent.approve' }).first().waitFor();
      await screenshot(page, 'dashboard-approved');
    });

    it('pauses and resumes the rollout from its buttons, audited with the reason', async () => {
      await page.locator('[data-rollout="pause"]').click();
      await page.locator('#action-reason').fill('incident 4711');
      await page.locator('#action-confirm').click();
      await page.locator('[data-testid="rollout-state"]', { hasText: 'paused' }).waitFor();
      assert.equal(await page.locator('[data-rollout="pause"]').isHidden(), true, 'only Resume is offered while paused');
      const audit = (await d.admin<Array<{ action: string; actor: string; reason: string }>>('/api/v1/audit?limit=1')).body;
      assert.deepEqual(audit.map((e) => [e.action, e.actor, e.reason]), [['rollout.pause', 'admin', 'incident 4711']]);

      await page.locator('[data-rollout="resume"]').click();
      await page.locator('#action-confirm').click();
      await page.locator('[data-testid="rollout-state"]', { hasText: 'progressing' }).waitFor();
      assert.match((await page.locator('[data-testid="notice"]').textContent()) ?? '', /resume done/);
    });

    it('filters the agent table by text and by a state count', async () => {
      const shown = () => page.locator('#agents tbody tr[data-agent]').evaluateAll((rows) => rows.map((r) => `${r.getAttribute('data-agent')}:${r.getAttribute('data-state')}`));
      await page.locator('#filter').fill('zone=pci');
      assert.deepEqual(await shown(), ['edge-1:SYNCED']);
      await page.locator('#filter').fill('staging');
      assert.deepEqual((await shown()).map((r) => r.split(':')[0]), ['edge-4']);
      await page.locator('#filter').fill('');
      await page.locator('.count[data-state="QUARANTINED"]').click();
      assert.deepEqual(await shown(), []);
      assert.match((await page.locator('#agents tbody').textContent()) ?? '', /no agent matches/);
      await page.locator('.count[data-state="QUARANTINED"]').click();
      assert.equal((await shown()).length, 4);
    });
  });

  describe('signed in with a viewer token', () => {
    it('shows the fleet with every action disabled, and shows the 403 if an action is sent anyway', async () => {
      const created = await d.admin<{ token: string }>('/api/v1/admin-tokens', { method: 'POST', body: JSON.stringify({ name: 'wall-screen', role: 'viewer' }) });
      assert.equal(created.status, 201);
      const page = await open(created.body.token);
      await page.locator('#agents tbody tr[data-agent]').nth(3).waitFor();
      assert.match((await page.locator('#whoami').textContent()) ?? '', /wall-screen.*viewer/);
      for (const kind of ['pause', 'promote', 'abort']) assert.equal(await page.locator(`[data-rollout="${kind}"]`).isDisabled(), true, kind);

      // The button's state is the page's courtesy; the API is the gate. Force a click through.
      await page.evaluate(`document.querySelector('[data-rollout="pause"]').disabled = false`);
      await page.locator('[data-rollout="pause"]').click();
      await page.locator('#action-confirm').click();
      await page.locator('#action-error', { hasText: 'FORBIDDEN_ROLE' }).waitFor();
      assert.match((await page.locator('[data-testid="notice"]').textContent()) ?? '', /403 FORBIDDEN_ROLE/);
      assert.notEqual((await d.admin<RolloutView>('/api/v1/rollout')).body.state, 'paused');
      await screenshot(page, 'dashboard-viewer-403');
    });
  });

  describe('signed in with a wrong token', () => {
    it('shows the sign-in form with the refusal, and forgets the token', async () => {
      const page = await open('mcat_not-a-real-token');
      await page.locator('#login-error', { hasText: 'UNAUTHORIZED' }).waitFor();
      assert.equal(await page.locator('#app').isHidden(), true);
      assert.equal(await page.evaluate("sessionStorage.getItem('meshcfg.adminToken')"), null);
      await screenshot(page, 'dashboard-sign-in');
    });
  });

  describe('what the page sent', () => {
    it('made every request to the admin origin, never put a token in a URL, and hit no CSP or script error', () => {
      const origin = new URL(d.adminUrl).origin;
      assert.ok(requests.length > 10, `requests were recorded (${requests.length})`);
      const foreign = requests.filter((url) => new URL(url).origin !== origin);
      assert.deepEqual(foreign, [], 'no request leaves the admin origin');
      assert.deepEqual(requests.filter((url) => url.includes(token)), [], 'the token never travels in a URL');
      assert.ok(requests.some((url) => url.endsWith('/api/v1/agents')));
      // A 401 answer is logged by Chromium as a failed resource; anything else is a real problem.
      assert.deepEqual(pageErrors.filter((e) => !/status of 40[13]/.test(e)), []);
    });
  });
});

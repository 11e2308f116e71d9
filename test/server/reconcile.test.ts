import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, before, beforeEach, describe, it } from 'node:test';
import { Compiler } from '../../src/compile/index.js';
import { WebhookAlerter } from '../../src/server/alerts.js';
import { combineHooks } from '../../src/lib/index.js';
import { Reconciler, type PublishedEvent, type ReconcileHooks, type Refusal, type RefusalSink } from '../../src/server/reconcile.js';
import { SnapshotCache } from '../../src/server/snapshot.js';
import { FileStateStore } from '../../src/server/state.js';
import { BundleSigner, BundleVerifier } from '../../src/signing/index.js';
import { GitSource } from '../../src/source/index.js';
import { loadAllowedSigners, SshSignatureVerifier, TrustGate, type KeyValidityTime } from '../../src/source/trust/index.js';
import { writeAllowedSigners } from '../helpers/git.js';
import type { Delivery } from '../../src/transport/backend.js';
import { makeFixture, manualClock, PERMISSIVE_BASE, webhookReceiver, type Fixture } from './helpers.js';
import { aid, cid } from '../helpers/ids.js';

const HOUR = 3_600_000;

interface Harness {
  readonly reconciler: Reconciler;
  readonly snapshots: SnapshotCache;
  readonly published: PublishedEvent[];
  readonly refusals: Refusal[];
  /** Fetch the branch and judge its head, as one poll of the running server does. */
  sync(): ReturnType<Reconciler['reconcile']>;
  close(): Promise<void>;
}

async function harness(
  fixture: Fixture,
  options: {
    signingKey: KeyObject;
    trustDomain?: string;
    webhook?: string;
    clock?: { now: () => Date };
    ttlMs?: number;
    keyValidityAt?: KeyValidityTime;
    refusals?: RefusalSink;
  },
): Promise<Harness> {
  mkdirSync(fixture.dataDir, { recursive: true });
  const now = options.clock?.now ?? (() => new Date());
  const ttlMs = options.ttlMs ?? 24 * HOUR;
  const source = await GitSource.open({ repository: fixture.repo.dir, branch: 'main' });
  const gate = new TrustGate({
    reader: source,
    verifiers: [new SshSignatureVerifier({ allowedSigners: await loadAllowedSigners(fixture.allowedSigners) })],
    keyValidityAt: options.keyValidityAt ?? 'commit-time',
    clock: now,
  });
  const store = FileStateStore.inDataDir(fixture.dataDir);
  const state = await store.load();
  const signer = new BundleSigner({ privateKey: options.signingKey, ttlMs, lastGeneration: state.generation, now: () => now().getTime() });
  const snapshots = new SnapshotCache();
  const published: PublishedEvent[] = [];
  const refusals: Refusal[] = [];
  const alerter = options.webhook === undefined ? null : new WebhookAlerter({ url: options.webhook, baseDelayMs: 10 });
  const alertHooks: ReconcileHooks = {
    onRefused: (r) => alerter?.post({ kind: 'commit-refused', commit: r.commit, code: r.code, message: r.message, at: r.at.toISOString() }),
  };
  const reconciler = new Reconciler({
    verifier: gate,
    trees: source,
    compiler: new Compiler(),
    signer,
    snapshots,
    store,
    initialState: state,
    trustDomain: options.trustDomain ?? 'example.org',
    bundleTtlMs: ttlMs,
    now,
    hooks: combineHooks<ReconcileHooks>({ onPublished: (e) => published.push(e), onRefused: (r) => refusals.push(r) }, alertHooks),
    refusals: options.refusals ?? null,
  });
  await reconciler.restore();
  return {
    reconciler,
    snapshots,
    published,
    refusals,
    sync: async () => reconciler.reconcile((await source.fetch()).head.commit),
    close: async () => {
      await reconciler.stop();
      await alerter?.close();
      await source.close();
    },
  };
}

/** state.json without `seenAt` (a wall-clock time; see the key validity tests for it). */
function statePersisted(fixture: Fixture): unknown {
  const { seenAt: _seenAt, ...state } = JSON.parse(readFileSync(join(fixture.dataDir, 'state.json'), 'utf8')) as Record<string, unknown>;
  return state;
}

/** `YYYYMMDDHHMMSSZ`, the allowed-signers time format. */
function sshTime(date: Date): string {
  return `${date.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

describe('Reconciler', () => {
  let fixture: Fixture;
  let signingKey: KeyObject;
  let h: Harness;

  before(() => {
    signingKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  });
  beforeEach(() => {
    fixture = makeFixture();
  });
  afterEach(async () => {
    await h?.close();
    fixture.cleanup();
  });

  describe('when the head is a signed, clean commit', () => {
    it('publishes generation 1 with a verifiable delivery for every inventory agent, and persists it', async () => {
      h = await harness(fixture, { signingKey });
      const result = await h.sync();
      assert.deepEqual(result, { kind: 'accepted', commit: fixture.first, generation: 1 });

      const snapshot = h.snapshots.current();
      assert.ok(snapshot);
      assert.equal(snapshot.generation, 1);
      assert.equal(snapshot.commit, fixture.first);
      assert.deepEqual([...snapshot.deliveries.keys()].sort(), ['edge-1', 'edge-2', 'edge-3', 'edge-4']);

      const delivery = h.snapshots.desired(aid('edge-3')) as Delivery;
      const verified = new BundleVerifier({ trustedKeys: signingKey }).verify({ delivery: delivery.signature, bytes: delivery.bytes, agentId: aid('edge-3'), current: null });
      assert.equal(verified.commit, fixture.first);
      assert.equal(verified.digest, delivery.digest);
      assert.equal(verified.generation, 1);

      assert.deepEqual(statePersisted(fixture), { version: 1, accepted: fixture.first, generation: 1 });
      const status = h.reconciler.status();
      assert.equal(status.serving, fixture.first);
      assert.equal(status.refused, null);
      assert.deepEqual(
        status.conditions.map((c) => [c.type, c.status]),
        [
          ['SourceFetched', 'Unknown'],
          ['SourceVerified', 'True'],
          ['Compiled', 'True'],
          ['Ready', 'True'],
        ],
      );
    });

    it('gives each delivery its own nonce', async () => {
      h = await harness(fixture, { signingKey });
      await h.sync();
      const nonces = ['edge-1', 'edge-2', 'edge-3', 'edge-4'].map((id) => h.snapshots.desired(aid(id))?.nonce);
      assert.equal(new Set(nonces).size, 4);
    });

    it('does nothing when the same head is judged again', async () => {
      h = await harness(fixture, { signingKey });
      await h.sync();
      assert.deepEqual(await h.sync(), { kind: 'unchanged', commit: fixture.first });
      assert.equal(h.published.length, 1);
    });
  });

  describe('when a later head must be refused', () => {
    let webhook: Awaited<ReturnType<typeof webhookReceiver>>;
    beforeEach(async () => {
      webhook = await webhookReceiver();
    });
    afterEach(async () => {
      await webhook.close();
    });

    const cases: ReadonlyArray<{ name: string; code: string; make: (f: Fixture) => string; trustDomain?: string }> = [
      { name: 'an unsigned commit', code: 'UNSIGNED', make: (f) => f.repo.write({ 'config/agents/edge-1.yaml': 'telemetry: { metrics: false }\n' }).commit('unsigned') },
      {
        name: 'a commit signed by a key not in allowed_signers',
        code: 'UNTRUSTED_SIGNER',
        make: (f) => f.repo.write({ 'config/agents/edge-1.yaml': 'telemetry: { metrics: false }\n' }).commit('foreign', f.stranger),
      },
      {
        name: 'a commit with policy violations',
        code: 'POLICY_VIOLATIONS',
        make: (f) => f.repo.write({ 'config/base/00-mtls.yaml': PERMISSIVE_BASE }).commit('plaintext in pci', f.signer),
      },
      {
        name: 'a rewound branch (an older signed commit)',
        code: 'NOT_FAST_FORWARD',
        make: (f) => {
          f.repo.git('reset', '-q', '--hard', f.first);
          return f.first;
        },
      },
      {
        name: 'a commit whose meshcfg.yaml names another trust domain',
        code: 'TRUST_DOMAIN_MISMATCH',
        make: (f) =>
          f.repo
            .write({ 'meshcfg.yaml': readFileSync(join(f.repo.dir, 'meshcfg.yaml'), 'utf8').replace('trustDomain: example.org', 'trustDomain: evil.example') })
            .commit('other domain', f.signer),
      },
    ];

    for (const { name, code, make } of cases) {
      describe(`(${name})`, () => {
        it(`refuses with ${code}, keeps serving the previous snapshot, records and alerts`, async () => {
          h = await harness(fixture, { signingKey, webhook: webhook.url });
          // For the rewind case the served commit must be a descendant of the one the branch goes back to.
          const good = fixture.repo.write({ 'config/agents/edge-4.yaml': 'telemetry: { metrics: true }\n' }).commit('good', fixture.signer);
          assert.equal((await h.sync()).kind, 'accepted');
          const served = h.snapshots.current();
          const bad = make(fixture);

          const result = await h.sync();
          assert.equal(result.kind, 'refused');
          assert.equal(result.kind === 'refused' && result.refusal.code, code);
          assert.equal(h.snapshots.current(), served, 'the previous snapshot is still the one served');
          assert.equal(h.reconciler.status().serving, good);
          assert.deepEqual(statePersisted(fixture), { version: 1, accepted: good, generation: 1 });

          const refused = h.reconciler.status().refused;
          assert.equal(refused?.commit, bad);
          assert.equal(refused?.code, code);
          assert.ok(refused.message.length > 0);

          await webhook.waitFor(1);
          const alert = webhook.bodies[0] as Record<string, unknown>;
          assert.equal(alert['kind'], 'commit-refused');
          assert.equal(alert['commit'], bad);
          assert.equal(alert['code'], code);
          assert.equal(typeof alert['message'], 'string');
          assert.ok(!Number.isNaN(Date.parse(String(alert['at']))));
          assert.equal(h.reconciler.status().conditions.find((c) => c.type === 'Ready')?.reason, 'ServingPrevious');
        });
      });
    }

    it('judges a refused commit once: polling it again neither re-judges nor re-alerts', async () => {
      h = await harness(fixture, { signingKey, webhook: webhook.url });
      await h.sync();
      fixture.repo.write({ 'config/agents/edge-1.yaml': 'telemetry: { metrics: false }\n' }).commit('unsigned');
      await h.sync();
      await h.sync();
      await webhook.waitFor(1);
      assert.equal(h.refusals.length, 1);
    });

    it('accepts the next good commit, clears the refusal and answers open watches', async () => {
      h = await harness(fixture, { signingKey, webhook: webhook.url });
      await h.sync();
      const seen: Delivery[] = [];
      const unwatch = h.snapshots.watch(aid('edge-1'), (d) => seen.push(d));
      fixture.repo.write({ 'config/base/00-mtls.yaml': PERMISSIVE_BASE }).commit('violation', fixture.signer);
      await h.sync();
      const fixed = fixture.repo.write({ 'config/base/00-mtls.yaml': readFileSync(join(fixture.repo.dir, 'config/base/00-mtls.yaml'), 'utf8').replace('PERMISSIVE', 'STRICT') }).commit('fix', fixture.signer);
      const result = await h.sync();
      unwatch();
      assert.deepEqual(result, { kind: 'accepted', commit: fixed, generation: 2 });
      assert.equal(h.reconciler.status().refused, null);
      assert.deepEqual(seen.map((d) => [d.commit, d.generation]), [
        [fixture.first, 1],
        [fixed, 2],
      ]);
    });
  });

  describe('with replicas sharing the verdict', () => {
    it('the leader records a refusal, and its end when a newer commit is accepted', async () => {
      const saved: Array<string | null> = [];
      h = await harness(fixture, { signingKey, refusals: { saveRefusal: async (r) => void saved.push(r === null ? null : `${r.commit} ${r.code}`) } });
      await h.sync();
      const unsigned = fixture.repo.write({ 'config/agents/edge-1.yaml': 'telemetry: { metrics: false }\n' }).commit('unsigned');
      await h.sync();
      await h.sync();
      fixture.repo.write({ 'config/agents/edge-1.yaml': 'telemetry: { metrics: true }\n' }).commit('signed', fixture.signer);
      await h.sync();
      assert.deepEqual(
        saved,
        [null, `${unsigned} UNSIGNED`, null],
        'the first decision clears what a previous run left; then saved once when made, once when ended; not on an unchanged judgement',
      );
    });

    it('a restarted server clears a refusal its previous run left once it accepts a commit', async () => {
      const saved: Array<string | null> = [];
      const refusals = { saveRefusal: async (r: Refusal | null) => void saved.push(r === null ? null : r.code) };
      h = await harness(fixture, { signingKey, refusals });
      await h.sync();
      fixture.repo.write({ 'config/agents/edge-1.yaml': 'telemetry: { metrics: false }\n' }).commit('unsigned');
      await h.sync();
      await h.close();
      // The key is trusted after all, say: the branch moves on to a signed commit while the server is down.
      fixture.repo.write({ 'config/agents/edge-1.yaml': 'telemetry: { metrics: true }\n' }).commit('signed', fixture.signer);
      saved.length = 0;
      h = await harness(fixture, { signingKey, refusals });
      assert.deepEqual(saved, [null], 'restoring the accepted commit is the first decision: the stale refusal is cleared');
      assert.equal((await h.sync()).kind, 'accepted');
      assert.deepEqual(saved, [null]);
    });

    it('a follower reports the refusal it is handed, ignores a stale one, and the leader ignores any', async () => {
      h = await harness(fixture, { signingKey });
      await h.sync();
      const refusal = (commit: string): Refusal => ({ commit: cid(commit), code: 'UNTRUSTED_SIGNER', message: 'not ours', at: new Date(), violations: [] });
      await h.reconciler.adoptRefusal(refusal('a'.repeat(40)));
      assert.equal(h.reconciler.status().refused, null, 'the leader decides by its own judgements');

      h.reconciler.follow();
      await h.reconciler.adoptRefusal(refusal(fixture.first));
      assert.equal(h.reconciler.status().refused, null, 'a refusal of the served commit is stale');
      await h.reconciler.adoptRefusal(refusal('a'.repeat(40)));
      assert.equal(h.reconciler.status().refused?.commit, 'a'.repeat(40));
      const ready = () => h.reconciler.status().conditions.find((c) => c.type === 'Ready');
      assert.equal(ready()?.reason, 'ServingPrevious');
      assert.equal(h.refusals.length, 0, 'nothing alerted or counted on a follower');
      await h.reconciler.adoptRefusal(null);
      assert.equal(h.reconciler.status().refused, null);
      assert.equal(ready()?.reason, 'Serving');
    });
  });

  describe('after a restart', () => {
    it('republishes the accepted commit under a new generation and keeps the fast-forward anchor', async () => {
      h = await harness(fixture, { signingKey });
      await h.sync();
      const second = fixture.repo.write({ 'config/agents/edge-2.yaml': 'telemetry: { metrics: false }\n' }).commit('second', fixture.signer);
      await h.sync();
      await h.close();

      h = await harness(fixture, { signingKey });
      // Before any fetch: restored from state.json.
      assert.equal(h.published[0]?.reason, 'restore');
      assert.equal(h.snapshots.current()?.commit, second);
      assert.equal(h.snapshots.current()?.generation, 3);

      fixture.repo.git('reset', '-q', '--hard', fixture.first);
      const result = await h.sync();
      assert.equal(result.kind === 'refused' && result.refusal.code, 'NOT_FAST_FORWARD');
      assert.deepEqual(statePersisted(fixture), { version: 1, accepted: second, generation: 3 });
    });
  });

  describe('inventory-shrink', () => {
    const THREE = 'agents:\n  - { id: edge-1, labels: { zone: pci, env: prod, ring: canary } }\n  - { id: edge-2, labels: { zone: pci, env: prod } }\n  - { id: edge-3, labels: { zone: public, env: prod } }\n';
    const withPolicy = (f: Fixture, line: string): string =>
      readFileSync(join(f.repo.dir, 'meshcfg.yaml'), 'utf8').replace('policy:\n', `policy:\n  ${line}\n`);

    it('refuses a commit that removes more than policy.maxInventoryRemoval of the served agents, naming them', async () => {
      h = await harness(fixture, { signingKey });
      assert.equal((await h.sync()).kind, 'accepted');
      const shrunk = fixture.repo.write({ 'inventory/edge.yaml': THREE }).commit('drop edge-4', fixture.signer);
      const result = await h.sync();
      assert.equal(result.kind === 'refused' && result.refusal.code, 'POLICY_VIOLATIONS');
      const violations = result.kind === 'refused' ? result.refusal.violations : [];
      assert.deepEqual(violations.map((v) => v.rule), ['inventory-shrink']);
      assert.match(violations[0]?.message ?? '', /1 of 4 agents \(25%\).*: edge-4;/);
      assert.equal(h.reconciler.status().refused?.commit, shrunk);
      assert.equal(h.snapshots.current()?.commit, fixture.first);
    });

    it('accepts the removal when the commit lists the agent in policy.allowInventoryRemoval', async () => {
      h = await harness(fixture, { signingKey });
      await h.sync();
      const decommission = fixture.repo
        .write({ 'inventory/edge.yaml': THREE, 'meshcfg.yaml': withPolicy(fixture, 'allowInventoryRemoval: [edge-4]') })
        .commit('decommission edge-4', fixture.signer);
      assert.deepEqual(await h.sync(), { kind: 'accepted', commit: decommission, generation: 2 });
    });

    it('refuses an empty inventory, even as the first commit it sees', async () => {
      const empty = fixture.repo.remove('config/agents').write({ 'inventory/edge.yaml': 'agents: []\n' }).commit('no agents', fixture.signer);
      h = await harness(fixture, { signingKey });
      const result = await h.sync();
      assert.equal(result.kind === 'refused' && result.refusal.commit, empty);
      assert.deepEqual(result.kind === 'refused' && result.refusal.violations.map((v) => v.rule), ['inventory-shrink']);
      assert.equal(h.snapshots.current(), null);
    });
  });

  describe('with key validity judged now', () => {
    it('persists when it first saw the accepted commit, and re-verifies it at that moment after a restart', async () => {
      const clock = manualClock();
      const firstSeen = clock.now();
      h = await harness(fixture, { signingKey, clock, keyValidityAt: 'now' });
      assert.equal((await h.sync()).kind, 'accepted');
      assert.equal((JSON.parse(readFileSync(join(fixture.dataDir, 'state.json'), 'utf8')) as { seenAt: string }).seenAt, firstSeen.toISOString());
      await h.close();

      // The signer's key retires an hour after the commit was first seen; the server restarts a day later.
      writeAllowedSigners(fixture.allowedSigners, [{ signer: fixture.signer, options: `valid-before="${sshTime(new Date(firstSeen.getTime() + HOUR))}"` }]);
      clock.advance(24 * HOUR);
      h = await harness(fixture, { signingKey, clock, keyValidityAt: 'now' });
      assert.equal(h.published[0]?.reason, 'restore');
      assert.equal(h.snapshots.current()?.commit, fixture.first);
      assert.equal(h.reconciler.status().refused, null);

      // A new commit by the retired key is judged when it is first seen: refused.
      fixture.repo.write({ 'config/agents/edge-2.yaml': 'telemetry: { metrics: false }\n' }).commit('after retirement', fixture.signer);
      const result = await h.sync();
      assert.equal(result.kind === 'refused' && result.refusal.code, 'UNTRUSTED_SIGNER');
      assert.equal(h.snapshots.current()?.commit, fixture.first);
    });
  });

  describe('as the bundle expiry approaches', () => {
    it('re-signs the same content under a new generation at half the ttl', async () => {
      const clock = manualClock();
      h = await harness(fixture, { signingKey, clock, ttlMs: HOUR });
      await h.sync();
      const first = h.snapshots.current();
      const seen: Delivery[] = [];
      const unwatch = h.snapshots.watch(aid('edge-2'), (d) => seen.push(d));

      clock.advance(29 * 60_000);
      assert.equal(await h.reconciler.refreshIfDue(), false);
      clock.advance(2 * 60_000);
      assert.equal(await h.reconciler.refreshIfDue(), true);
      unwatch();

      const refreshed = h.snapshots.current();
      assert.equal(refreshed?.generation, 2);
      assert.equal(refreshed?.commit, first?.commit);
      assert.equal(refreshed?.deliveries.get(aid('edge-2'))?.digest, first?.deliveries.get(aid('edge-2'))?.digest);
      assert.ok((refreshed?.expiresAt?.getTime() ?? 0) > (first?.expiresAt?.getTime() ?? 0));
      assert.deepEqual(seen.map((d) => d.generation), [1, 2]);
      assert.equal(h.published.at(-1)?.reason, 'refresh');
      assert.equal((statePersisted(fixture) as { generation: number }).generation, 2);
    });
  });
});

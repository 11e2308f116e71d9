import assert from 'node:assert/strict';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { PkiError } from '../../src/domain/errors.js';
import type { AdminTokenRecord, AgentUpdate, DeliveryWrite, FleetStore } from '../../src/fleet/store.js';
import { BATCH_ID_RETENTION_MS } from '../../src/fleet/store.js';
import { EnrollmentTokens, hashToken } from '../../src/pki/tokens.js';
import { tempDir } from '../helpers/git.js';
import { COMMIT_A, COMMIT_B, DIGEST_A, DIGEST_B, DIGEST_X, IMPLEMENTATIONS, T0, ack, at, auditEntry, send, storeCode } from './helpers.js';
import { aid, cid } from '../helpers/ids.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

for (const [name, openStore, cleanUp] of IMPLEMENTATIONS) {
  describe(`FleetStore contract: ${name}`, () => {
    const tmp = tempDir('meshcfg-fleet-contract-');
    let now = T0;
    let store: FleetStore;

    beforeEach(async () => {
      now = T0;
      store = await openStore(tmp.path, { now: () => now });
    });
    afterEach(() => store.close());
    after(async () => {
      await cleanUp?.();
      tmp.cleanup();
    });

    describe('server state', () => {
      it('starts with no accepted commit, generation 0 and no refusal', async () => {
        assert.deepEqual(await store.serverState(), { accepted: null, generation: 0, lastRefusal: null });
      });

      it('keeps the accepted commit and generation, and accepts the same generation again', async () => {
        await store.saveAccepted({ accepted: cid(COMMIT_A), generation: 3 });
        await store.saveAccepted({ accepted: cid(COMMIT_A), generation: 3 });
        assert.deepEqual(await store.serverState(), { accepted: COMMIT_A, generation: 3, lastRefusal: null });
      });

      it('refuses a generation below the stored one with CONFLICT and keeps the stored state', async () => {
        await store.saveAccepted({ accepted: cid(COMMIT_B), generation: 5 });
        await assert.rejects(store.saveAccepted({ accepted: cid(COMMIT_A), generation: 4 }), storeCode('CONFLICT'));
        assert.deepEqual(await store.serverState(), { accepted: COMMIT_B, generation: 5, lastRefusal: null });
      });

      it('keeps when the accepted commit was first seen, and forgets it when a save omits it', async () => {
        await store.saveAccepted({ accepted: cid(COMMIT_A), generation: 2, seenAt: at(7) });
        assert.deepEqual(await store.serverState(), { accepted: COMMIT_A, generation: 2, seenAt: at(7), lastRefusal: null });
        await store.saveAccepted({ accepted: cid(COMMIT_B), generation: 3 });
        assert.deepEqual(await store.serverState(), { accepted: COMMIT_B, generation: 3, lastRefusal: null });
      });

      it('refuses a negative or fractional generation with INVALID_RECORD', async () => {
        await assert.rejects(store.saveAccepted({ accepted: cid(COMMIT_A), generation: -1 }), storeCode('INVALID_RECORD'));
        await assert.rejects(store.saveAccepted({ accepted: cid(COMMIT_A), generation: 1.5 }), storeCode('INVALID_RECORD'));
      });

      it('keeps the last refusal with its violations apart from the accepted commit, and clears it with null', async () => {
        await store.saveAccepted({ accepted: cid(COMMIT_A), generation: 1 });
        const refusal = {
          commit: cid(COMMIT_B),
          code: 'POLICY_VIOLATIONS',
          message: '1 violation',
          at: at(5),
          violations: [{ rule: 'min-tls-version' as const, agent: aid('edge-1'), file: 'agents/edge-1.yaml', message: 'TLS 1.0' }],
        };
        await store.saveRefusal(refusal);
        assert.deepEqual(await store.serverState(), { accepted: COMMIT_A, generation: 1, lastRefusal: refusal });
        await store.saveRefusal(null);
        assert.equal((await store.serverState()).lastRefusal, null);
      });
    });

    describe('agents', () => {
      it('does not know an agent before its first update', async () => {
        assert.equal(await store.getAgent(aid('edge-1')), undefined);
        assert.deepEqual(await store.listAgents(), []);
      });

      it('creates an agent on its first update: DISCONNECTED and all else null, then the patch', async () => {
        const created = await store.updateAgent(aid('edge-1'), { desired: { commit: cid(COMMIT_A), digest: DIGEST_A, generation: 1 } });
        const expected = {
          id: 'edge-1',
          desired: { commit: cid(COMMIT_A), digest: DIGEST_A, generation: 1 },
          active: null,
          state: 'DISCONNECTED',
          certSerial: null,
          certExpiry: null,
          lastSeen: null,
          quarantine: null,
        };
        assert.deepEqual(created, expected);
        assert.deepEqual(await store.getAgent(aid('edge-1')), expected);
      });

      it('sets only the fields in the patch, and null clears a field', async () => {
        await store.updateAgent(aid('edge-1'), {
          desired: { commit: cid(COMMIT_A), digest: DIGEST_A, generation: 1 },
          active: { commit: cid(COMMIT_A), digest: DIGEST_A, generation: 1, at: at(1) },
          state: 'SYNCED',
          certSerial: '0abc',
          certExpiry: at(DAY),
          lastSeen: at(2),
        });
        await store.updateAgent(aid('edge-1'), { lastSeen: at(3), certSerial: null });
        assert.deepEqual(await store.getAgent(aid('edge-1')), {
          id: 'edge-1',
          desired: { commit: cid(COMMIT_A), digest: DIGEST_A, generation: 1 },
          active: { commit: cid(COMMIT_A), digest: DIGEST_A, generation: 1, at: at(1) },
          state: 'SYNCED',
          certSerial: null,
          certExpiry: at(DAY),
          lastSeen: at(3),
          quarantine: null,
        });
        await store.updateAgent(aid('edge-1'), { active: null, desired: null });
        const cleared = await store.getAgent(aid('edge-1'));
        assert.equal(cleared?.active, null);
        assert.equal(cleared?.desired, null);
        assert.equal(cleared?.state, 'SYNCED');
      });

      it('quarantines and approves with the audit entry in the same call', async () => {
        const quarantine = { since: at(10), reason: 'reported a digest never issued', by: 'system' };
        await store.updateAgent(aid('edge-1'), { state: 'QUARANTINED', quarantine }, auditEntry({ actor: 'system', action: 'agent.quarantine', at: at(10) }));
        assert.deepEqual((await store.getAgent(aid('edge-1')))?.quarantine, quarantine);
        await store.updateAgent(aid('edge-1'), { state: 'PENDING', quarantine: null }, auditEntry({ action: 'agent.approve', at: at(20) }));
        assert.equal((await store.getAgent(aid('edge-1')))?.quarantine, null);
        assert.deepEqual(
          (await store.listAudit()).map((e) => [e.action, e.actor]),
          [
            ['agent.approve', 'alice'],
            ['agent.quarantine', 'system'],
          ],
        );
      });

      it('does not apply the patch when its audit entry is invalid', async () => {
        await assert.rejects(store.updateAgent(aid('edge-1'), { state: 'QUARANTINED' }, auditEntry({ actor: '' })), storeCode('INVALID_RECORD'));
        assert.equal(await store.getAgent(aid('edge-1')), undefined);
        assert.deepEqual(await store.listAudit(), []);
      });

      it('lists agents ordered by id', async () => {
        await store.updateAgents([
          { id: aid('edge-2'), patch: { state: 'PENDING' } },
          { id: aid('core-1'), patch: { state: 'SYNCED' } },
          { id: aid('edge-10'), patch: {} },
        ]);
        assert.deepEqual(
          (await store.listAgents()).map((a) => [a.id, a.state]),
          [
            ['core-1', 'SYNCED'],
            ['edge-10', 'DISCONNECTED'],
            ['edge-2', 'PENDING'],
          ],
        );
      });

      it('applies a batch in order, as one updateAgent after the other: repeated ids, mixed and empty patches, nulls', async () => {
        await store.updateAgent(aid('edge-3'), { certSerial: '0c', lastSeen: at(1), quarantine: { since: at(1), reason: 'drift', by: 'system' } });
        const desired = (generation: number) => ({ commit: cid(COMMIT_A), digest: DIGEST_A, generation });
        await store.updateAgents([
          { id: aid('edge-1'), patch: { desired: desired(1), state: 'PENDING' } },
          { id: aid('edge-2'), patch: { desired: desired(1), state: 'PENDING' } },
          { id: aid('edge-1'), patch: { desired: desired(2), state: 'PENDING' } },
          { id: aid('edge-2'), patch: { active: { commit: cid(COMMIT_A), digest: DIGEST_A, generation: 1, at: at(5) }, state: 'SYNCED' } },
          { id: aid('edge-3'), patch: { quarantine: null, certSerial: null } },
          { id: aid('edge-4'), patch: {} },
          { id: aid('edge-3'), patch: {} },
        ]);
        const agents = new Map((await store.listAgents()).map((a) => [a.id, a]));
        assert.deepEqual(agents.get(aid('edge-1'))?.desired, desired(2));
        assert.equal(agents.get(aid('edge-1'))?.state, 'PENDING');
        assert.deepEqual(agents.get(aid('edge-2'))?.desired, desired(1));
        assert.deepEqual(agents.get(aid('edge-2'))?.active, { commit: COMMIT_A, digest: DIGEST_A, generation: 1, at: at(5) });
        assert.equal(agents.get(aid('edge-2'))?.state, 'SYNCED');
        assert.deepEqual(
          [agents.get(aid('edge-3'))?.quarantine, agents.get(aid('edge-3'))?.certSerial, agents.get(aid('edge-3'))?.lastSeen],
          [null, null, at(1)],
        );
        assert.equal(agents.get(aid('edge-4'))?.state, 'DISCONNECTED');
      });

      it('applies a batch all or nothing: one invalid entry leaves every agent as it was', async () => {
        await store.updateAgent(aid('edge-1'), { state: 'SYNCED' });
        await assert.rejects(
          store.updateAgents([
            { id: aid('edge-1'), patch: { state: 'PENDING' } },
            { id: aid('edge-2'), patch: { state: 'BOGUS' as never } },
          ]),
          storeCode('INVALID_RECORD'),
        );
        assert.equal((await store.getAgent(aid('edge-1')))?.state, 'SYNCED');
        assert.equal(await store.getAgent(aid('edge-2')), undefined);
      });

      it('refuses an unknown state, an empty id and an invalid date with INVALID_RECORD', async () => {
        await assert.rejects(store.updateAgent(aid('edge-1'), { state: 'ONLINE' as never }), storeCode('INVALID_RECORD'));
        await assert.rejects(store.updateAgent(aid(''), { state: 'SYNCED' }), storeCode('INVALID_RECORD'));
        await assert.rejects(store.updateAgent(aid('edge-1'), { lastSeen: new Date(Number.NaN) }), storeCode('INVALID_RECORD'));
      });

      it('forgets removed agents but keeps their sends and acks', async () => {
        await store.recordSend(send(), { state: 'PENDING' });
        await store.recordAck(ack(), { state: 'SYNCED' });
        await store.updateAgent(aid('edge-2'), {});
        assert.equal(await store.removeAgents([aid('edge-1'), aid('edge-1'), aid('unknown')]), 1);
        assert.equal(await store.getAgent(aid('edge-1')), undefined);
        assert.equal((await store.listAgents()).length, 1);
        assert.equal(await store.wasIssued(aid('edge-1'), DIGEST_A), true);
        assert.equal((await store.listAcks(aid('edge-1'))).length, 1);
      });

      it('hands out frozen copies: changing what the caller passed or got changes nothing stored', async () => {
        const desired = { commit: cid(COMMIT_A), digest: DIGEST_A, generation: 1 };
        await store.updateAgent(aid('edge-1'), { desired });
        desired.generation = 99;
        const read = await store.getAgent(aid('edge-1'));
        assert.ok(Object.isFrozen(read));
        assert.equal(read?.desired?.generation, 1);
      });
    });

    describe('sends and acks', () => {
      it('records sends with growing ids and answers the newest per agent', async () => {
        assert.equal(await store.lastSend(aid('edge-1')), null);
        const first = await store.recordSend(send({ nonce: 'n1' }));
        const second = await store.recordSend(send({ nonce: 'n2', digest: DIGEST_B, generation: 2, at: at(5) }));
        await store.recordSend(send({ agentId: aid('edge-2'), nonce: 'other' }));
        assert.ok(second > first);
        assert.deepEqual(await store.lastSend(aid('edge-1')), { id: second, agentId: 'edge-1', commit: cid(COMMIT_A), digest: DIGEST_B, generation: 2, nonce: 'n2', at: at(5) });
      });

      it('says a digest was issued only to the agent it was sent to', async () => {
        await store.recordSend(send({ agentId: aid('edge-1'), digest: DIGEST_A }));
        assert.equal(await store.wasIssued(aid('edge-1'), DIGEST_A), true);
        assert.equal(await store.wasIssued(aid('edge-1'), DIGEST_B), false);
        assert.equal(await store.wasIssued(aid('edge-2'), DIGEST_A), false);
      });

      it('applies the send’s agent patch in the same call', async () => {
        await store.recordSend(send(), { desired: { commit: cid(COMMIT_A), digest: DIGEST_A, generation: 1 }, state: 'PENDING' });
        assert.equal((await store.getAgent(aid('edge-1')))?.state, 'PENDING');
      });

      it('records an ack and the agent update it causes together', async () => {
        const active = { commit: cid(COMMIT_A), digest: DIGEST_A, generation: 1, at: at(1_000) };
        const id = await store.recordAck(ack(), { active, state: 'SYNCED', lastSeen: at(1_000) });
        assert.deepEqual(await store.listAcks(aid('edge-1')), [{ id, ...ack() }]);
        const agent = await store.getAgent(aid('edge-1'));
        assert.deepEqual(agent?.active, active);
        assert.equal(agent?.state, 'SYNCED');
      });

      it('keeps an ack that names a digest never sent (it is the evidence of drift)', async () => {
        await store.recordAck(ack({ digest: DIGEST_X, commit: cid('not-a-commit'), nonce: '' }));
        assert.equal((await store.listAcks(aid('edge-1')))[0]?.digest, DIGEST_X);
        assert.equal(await store.wasIssued(aid('edge-1'), DIGEST_X), false);
      });

      it('answers every digest the agent ever APPLIED, once each, and none it only rejected', async () => {
        await store.recordAck(ack({ digest: DIGEST_A }));
        await store.recordAck(ack({ digest: DIGEST_B, status: 'REJECTED', error: 'reload failed' }));
        await store.recordAck(ack({ digest: DIGEST_A }));
        await store.recordAck(ack({ digest: DIGEST_X }));
        await store.recordAck(ack({ agentId: aid('edge-2'), digest: DIGEST_B }));
        assert.deepEqual([...(await store.digestsApplied(aid('edge-1')))].sort(), [DIGEST_A, DIGEST_X].sort());
        assert.deepEqual([...(await store.digestsApplied(aid('edge-3')))], []);
      });

      it('lists acks newest first, in pages', async () => {
        const ids: number[] = [];
        for (let i = 0; i < 5; i += 1) ids.push(await store.recordAck(ack({ nonce: `n${i}`, at: at(i) })));
        await store.recordAck(ack({ agentId: aid('edge-2') }));
        const firstPage = await store.listAcks(aid('edge-1'), { limit: 2 });
        assert.deepEqual(
          firstPage.map((a) => a.nonce),
          ['n4', 'n3'],
        );
        const secondPage = await store.listAcks(aid('edge-1'), { limit: 2, beforeId: firstPage[1]?.id ?? 0 });
        assert.deepEqual(
          secondPage.map((a) => a.nonce),
          ['n2', 'n1'],
        );
        assert.deepEqual(
          (await store.listAcks(aid('edge-1'))).map((a) => a.id),
          [...ids].reverse(),
        );
      });

      it('refuses an ack with an unknown status and records nothing', async () => {
        await assert.rejects(store.recordAck(ack({ status: 'MAYBE' as never }), { state: 'SYNCED' }), storeCode('INVALID_RECORD'));
        assert.deepEqual(await store.listAcks(aid('edge-1')), []);
        assert.equal(await store.getAgent(aid('edge-1')), undefined);
      });

      it('refuses a page size of 0 or above 1000 with INVALID_RECORD', async () => {
        await assert.rejects(store.listAcks(aid('edge-1'), { limit: 0 }), storeCode('INVALID_RECORD'));
        await assert.rejects(store.listAcks(aid('edge-1'), { limit: 1001 }), storeCode('INVALID_RECORD'));
      });
    });

    describe('signed generations', () => {
      const record = (generation: number, commit = cid(COMMIT_A)) => ({
        generation,
        commit,
        statement: { _type: 'https://meshcfg.dev/statement/v1', generation, commit, rootHash: 'ab'.repeat(32) },
        bundle: { mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json', dsseEnvelope: { payload: 'e30=', signatures: [{ sig: 'c2ln' }] } },
        agents: [
          { agentId: aid('edge-1'), digest: DIGEST_A, commit, baseline: false },
          { agentId: aid('edge-2'), digest: DIGEST_B, commit: cid(COMMIT_B), baseline: true },
        ],
        at: at(generation),
      });

      it('has none before the first save', async () => {
        assert.equal(await store.latestGeneration(), null);
      });

      it('gives back the newest generation as it was saved (statement, bundle and leaves)', async () => {
        await store.saveGeneration(record(1));
        await store.saveGeneration(record(2, cid(COMMIT_B)));
        assert.deepEqual(await store.latestGeneration(), record(2, cid(COMMIT_B)));
      });

      it('refuses a generation stored already with CONFLICT (a number is never signed twice)', async () => {
        await store.saveGeneration(record(3));
        await assert.rejects(store.saveGeneration(record(3, cid(COMMIT_B))), storeCode('CONFLICT'));
        assert.equal((await store.latestGeneration())?.commit, COMMIT_A);
      });

      it('keeps only the newest few', async () => {
        for (let g = 1; g <= 12; g += 1) await store.saveGeneration(record(g));
        assert.equal((await store.latestGeneration())?.generation, 12);
        // The oldest were deleted: saving one of them again is no conflict.
        await store.saveGeneration(record(1));
        assert.equal((await store.latestGeneration())?.generation, 12);
      });

      it('refuses generation 0 and an agent id that is not one with INVALID_RECORD', async () => {
        await assert.rejects(store.saveGeneration(record(0)), storeCode('INVALID_RECORD'));
        const bad = { ...record(4), agents: [{ agentId: aid('edge-1'), digest: '', commit: cid(COMMIT_A), baseline: false }] };
        await assert.rejects(store.saveGeneration(bad), storeCode('INVALID_RECORD'));
        assert.equal(await store.latestGeneration(), null);
      });
    });

    describe('batches of sends, acks and agent updates', () => {
      it('applies every entry in the order given: sends and acks appended in order, later patches over earlier ones', async () => {
        const active = { commit: cid(COMMIT_A), digest: DIGEST_A, generation: 1, at: at(2) };
        await store.recordBatch([
          { kind: 'send', send: send({ nonce: 'n1', at: at(1) }), agent: { state: 'PENDING' } },
          { kind: 'agent', id: aid('edge-2'), patch: { lastSeen: at(1) } },
          { kind: 'ack', ack: ack({ nonce: 'n1', at: at(2) }), agent: { active, state: 'SYNCED', lastSeen: at(2) } },
          { kind: 'send', send: send({ nonce: 'n2', digest: DIGEST_B, generation: 2, at: at(3) }), agent: { state: 'PENDING' } },
          { kind: 'ack', ack: ack({ nonce: 'n2', digest: DIGEST_B, generation: 2, status: 'REJECTED', error: 'no', at: at(4) }) },
        ]);
        assert.equal((await store.lastSend(aid('edge-1')))?.nonce, 'n2');
        const acks = await store.listAcks(aid('edge-1'));
        assert.deepEqual(
          acks.map((a) => [a.nonce, a.status]),
          [
            ['n2', 'REJECTED'],
            ['n1', 'APPLIED'],
          ],
        );
        assert.ok((acks[0]?.id ?? 0) > (acks[1]?.id ?? 0));
        const agent = await store.getAgent(aid('edge-1'));
        assert.equal(agent?.state, 'PENDING');
        assert.deepEqual(agent?.active, active);
        assert.deepEqual((await store.getAgent(aid('edge-2')))?.lastSeen, at(1));
      });

      it('gives the rows of applying each patch in turn, also with several patches of one agent setting and clearing fields', async () => {
        const quarantine = { since: at(1), reason: 'drift', by: 'meshcfg' };
        const patches: AgentUpdate[] = [
          { id: aid('edge-1'), patch: { state: 'PENDING', certSerial: '0a', lastSeen: at(1) } },
          { id: aid('edge-2'), patch: { quarantine, state: 'QUARANTINED' } },
          { id: aid('edge-1'), patch: { lastSeen: at(2), certExpiry: at(9) } },
          { id: aid('edge-2'), patch: { quarantine: null, state: 'SYNCED' } },
          { id: aid('edge-1'), patch: { state: 'SYNCED', desired: { commit: cid(COMMIT_A), digest: DIGEST_A, generation: 3 } } },
          { id: aid('edge-3'), patch: { lastSeen: at(5) } },
        ];
        await store.recordBatch(patches.map(({ id, patch }) => ({ kind: 'agent', id, patch })));
        const batched = await store.listAgents();
        await store.removeAgents(batched.map((a) => a.id));
        for (const { id, patch } of patches) await store.updateAgent(id, patch);
        assert.deepEqual(batched, await store.listAgents());
        assert.equal(batched.find((a) => a.id === 'edge-2')?.quarantine, null);
        assert.deepEqual(batched.find((a) => a.id === 'edge-1')?.lastSeen, at(2));
      });

      it('writes a batch given again under its id once (a retry after a lost answer), and forgets ids after BATCH_ID_RETENTION_MS', async () => {
        const batch = (nonce: string): DeliveryWrite[] => [{ kind: 'ack', ack: ack({ nonce }), agent: { state: 'SYNCED' } }];
        await store.recordBatch(batch('once'), { id: 'batch-1' });
        await store.recordBatch(batch('once'), { id: 'batch-1' });
        await store.recordBatch(batch('other'), { id: 'batch-2' });
        await store.recordBatch(batch('no-id'));
        await store.recordBatch(batch('no-id'));
        assert.deepEqual(
          (await store.listAcks(aid('edge-1'))).map((a) => a.nonce),
          ['no-id', 'no-id', 'other', 'once'],
        );
        now = new Date(T0.getTime() + BATCH_ID_RETENTION_MS + 1);
        await store.recordBatch(batch('pruning'), { id: 'batch-3' });
        await store.recordBatch(batch('once'), { id: 'batch-1' });
        assert.equal((await store.listAcks(aid('edge-1'))).filter((a) => a.nonce === 'once').length, 2, 'batch-1 was forgotten');
      });

      it('continues the ids of single calls: a batch between two acks lists between them', async () => {
        const first = await store.recordAck(ack({ nonce: 'before' }));
        await store.recordBatch([{ kind: 'ack', ack: ack({ nonce: 'batched' }) }]);
        const last = await store.recordAck(ack({ nonce: 'after' }));
        const listed = await store.listAcks(aid('edge-1'));
        assert.deepEqual(
          listed.map((a) => a.nonce),
          ['after', 'batched', 'before'],
        );
        assert.equal(listed[0]?.id, last);
        assert.equal(listed[2]?.id, first);
      });

      it('writes all or nothing: one invalid entry refuses the batch with INVALID_RECORD and records none of it', async () => {
        await assert.rejects(
          store.recordBatch([
            { kind: 'send', send: send(), agent: { state: 'PENDING' } },
            { kind: 'ack', ack: ack({ status: 'MAYBE' as never }) },
          ]),
          storeCode('INVALID_RECORD'),
        );
        await assert.rejects(store.recordBatch([{ kind: 'nonsense' } as never]), storeCode('INVALID_RECORD'));
        assert.equal(await store.lastSend(aid('edge-1')), null);
        assert.deepEqual(await store.listAcks(aid('edge-1')), []);
        assert.equal(await store.getAgent(aid('edge-1')), undefined);
      });

      it('writes nothing for an empty batch', async () => {
        await store.recordBatch([]);
        assert.deepEqual(await store.listAgents(), []);
      });
    });

    describe('rollout progress', () => {
      const doc = { version: 1, commit: cid(COMMIT_A), waves: [{ name: 'canary', state: 'progressing', startedAt: T0.toISOString() }], halted: false };

      it('has no rollout before the first save', async () => {
        assert.equal(await store.loadRollout(), null);
      });

      it('gives back the document it was given, with its commit and a growing revision', async () => {
        assert.equal(await store.saveRollout({ commit: cid(COMMIT_A), document: doc, at: at(1) }), 1);
        assert.deepEqual(await store.loadRollout(), { commit: cid(COMMIT_A), document: doc, at: at(1), revision: 1 });
        assert.equal(await store.saveRollout({ commit: cid(COMMIT_B), document: { ...doc, commit: cid(COMMIT_B) }, at: at(2) }), 2);
        assert.deepEqual(await store.loadRollout(), { commit: cid(COMMIT_B), document: { ...doc, commit: cid(COMMIT_B) }, at: at(2), revision: 2 });
      });

      it('saves with ifRevision only over that revision, else CONFLICT', async () => {
        assert.equal(await store.saveRollout({ commit: cid(COMMIT_A), document: doc, at: T0 }, { ifRevision: null }), 1);
        await assert.rejects(store.saveRollout({ commit: cid(COMMIT_A), document: doc, at: T0 }, { ifRevision: null }), storeCode('CONFLICT'));
        assert.equal(await store.saveRollout({ commit: cid(COMMIT_A), document: doc, at: T0 }, { ifRevision: 1 }), 2);
        await assert.rejects(store.saveRollout({ commit: cid(COMMIT_B), document: doc, at: T0 }, { ifRevision: 1 }), storeCode('CONFLICT'));
        assert.equal((await store.loadRollout())?.commit, COMMIT_A);
      });

      it('appends the operator’s audit entry with the save', async () => {
        await store.saveRollout({ commit: cid(COMMIT_A), document: doc, at: T0 }, { audit: auditEntry({ action: 'rollout.pause', target: COMMIT_A }) });
        assert.deepEqual(
          (await store.listAudit()).map((e) => e.action),
          ['rollout.pause'],
        );
      });

      it('refuses a document that is not JSON-serialisable with INVALID_RECORD', async () => {
        await assert.rejects(store.saveRollout({ commit: cid(COMMIT_A), document: { n: 1n }, at: T0 }), storeCode('INVALID_RECORD'));
        await assert.rejects(store.saveRollout({ commit: cid(COMMIT_A), document: undefined, at: T0 }), storeCode('INVALID_RECORD'));
        assert.equal(await store.loadRollout(), null);
      });
    });

    describe('enrollment tokens', () => {
      const hash = hashToken('mcet_example');

      it('returns undefined for an unknown hash', async () => {
        assert.equal(await store.tokens.claim(hash, T0), undefined);
      });

      it('claims a token once: of two concurrent claims one sees it unused, the other sees it used by that one', async () => {
        // Which one wins is up to the backend (PostgreSQL runs them on two pooled connections);
        // that exactly one does, and the other sees its mark, is the contract.
        await store.tokens.insert({ hash, agentId: aid('edge-1'), expiresAt: at(HOUR) });
        const claims = await Promise.all([store.tokens.claim(hash, at(1)), store.tokens.claim(hash, at(2))]);
        const winner = claims.findIndex((c) => c !== undefined && c.usedAt === undefined);
        assert.notEqual(winner, -1, 'one claim sees the token unused');
        assert.deepEqual(claims[winner], { hash, agentId: 'edge-1', expiresAt: at(HOUR) });
        assert.deepEqual(claims[1 - winner], { hash, agentId: 'edge-1', expiresAt: at(HOUR), usedAt: at(winner + 1) });
        assert.deepEqual(await store.tokens.claim(hash, at(3)), { hash, agentId: 'edge-1', expiresAt: at(HOUR), usedAt: at(winner + 1) });
      });

      it('does not mark an expired token used', async () => {
        await store.tokens.insert({ hash, agentId: aid('edge-1'), expiresAt: at(HOUR) });
        assert.deepEqual(await store.tokens.claim(hash, at(HOUR)), { hash, agentId: 'edge-1', expiresAt: at(HOUR) });
        assert.deepEqual(await store.tokens.claim(hash, at(2 * HOUR)), { hash, agentId: 'edge-1', expiresAt: at(HOUR) });
      });

      it('refuses a second record with the same hash with CONFLICT', async () => {
        await store.tokens.insert({ hash, agentId: aid('edge-1'), expiresAt: at(HOUR) });
        await assert.rejects(store.tokens.insert({ hash, agentId: aid('edge-2'), expiresAt: at(HOUR) }), storeCode('CONFLICT'));
      });

      it('drops records expired longer than the retention when a token is inserted', async () => {
        await store.tokens.insert({ hash, agentId: aid('edge-1'), expiresAt: at(HOUR) });
        now = at(31 * DAY);
        await store.tokens.insert({ hash: hashToken('mcet_other'), agentId: aid('edge-2'), expiresAt: at(32 * DAY) });
        assert.equal(await store.tokens.claim(hash, now), undefined);
      });

      it('backs EnrollmentTokens: one consume succeeds, then TOKEN_USED; a late one TOKEN_EXPIRED', async () => {
        const tokens = new EnrollmentTokens({ store: store.tokens, now: () => now });
        const { token } = await tokens.create(aid('edge-1'), HOUR);
        const results = await Promise.allSettled([tokens.consume(token), tokens.consume(token)]);
        assert.deepEqual(
          results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as PkiError).code)),
          ['edge-1', 'TOKEN_USED'],
        );
        const late = await tokens.create(aid('edge-2'), HOUR);
        await assert.rejects(tokens.consume(late.token, at(2 * HOUR)), (err: unknown) => err instanceof PkiError && err.code === 'TOKEN_EXPIRED');
      });
    });

    describe('named admin tokens', () => {
      const token = (overrides: Partial<AdminTokenRecord> = {}): AdminTokenRecord => ({
        name: 'ci-viewer',
        role: 'viewer',
        hash: hashToken('mcot_one'),
        createdAt: T0,
        createdBy: 'admin',
        expiresAt: null,
        revokedAt: null,
        ...overrides,
      });

      it('keeps a token by name and finds it by its hash; an unknown hash is undefined', async () => {
        await store.insertAdminToken(token({ expiresAt: at(DAY) }), auditEntry({ action: 'admin-token.create', target: 'ci-viewer' }));
        assert.deepEqual(await store.adminTokenByHash(hashToken('mcot_one')), token({ expiresAt: at(DAY) }));
        assert.equal(await store.adminTokenByHash(hashToken('mcot_two')), undefined);
        assert.deepEqual((await store.listAudit()).map((e) => e.action), ['admin-token.create']);
      });

      it('lists every token ordered by name', async () => {
        await store.insertAdminToken(token({ name: 'zed', hash: hashToken('mcot_z'), role: 'operator' }));
        await store.insertAdminToken(token({ name: 'amy', hash: hashToken('mcot_a') }));
        assert.deepEqual((await store.listAdminTokens()).map((t) => [t.name, t.role]), [['amy', 'viewer'], ['zed', 'operator']]);
      });

      it('refuses a second usable token of the same name, or the same hash, with CONFLICT', async () => {
        await store.insertAdminToken(token());
        await assert.rejects(store.insertAdminToken(token({ hash: hashToken('mcot_two') })), storeCode('CONFLICT'));
        await assert.rejects(store.insertAdminToken(token({ name: 'other' })), storeCode('CONFLICT'));
        assert.equal((await store.listAdminTokens()).length, 1);
      });

      it('revokes once (audited once); the revoked record stays, and its name can be taken again', async () => {
        await store.insertAdminToken(token());
        assert.equal(await store.revokeAdminToken('ci-viewer', at(5), auditEntry({ action: 'admin-token.revoke' })), true);
        assert.equal(await store.revokeAdminToken('ci-viewer', at(6), auditEntry({ action: 'admin-token.revoke' })), false);
        assert.equal(await store.revokeAdminToken('nobody', at(6)), false);
        assert.deepEqual((await store.adminTokenByHash(hashToken('mcot_one')))?.revokedAt, at(5));
        assert.deepEqual((await store.listAudit()).map((e) => e.action), ['admin-token.revoke']);
        await store.insertAdminToken(token({ hash: hashToken('mcot_two'), createdAt: at(10) }));
        assert.equal(await store.adminTokenByHash(hashToken('mcot_one')), undefined);
        assert.equal((await store.adminTokenByHash(hashToken('mcot_two')))?.revokedAt, null);
      });

      it("lets an expired token's name be taken again", async () => {
        await store.insertAdminToken(token({ expiresAt: at(HOUR) }));
        await store.insertAdminToken(token({ hash: hashToken('mcot_two'), createdAt: at(2 * HOUR) }));
        assert.deepEqual((await store.listAdminTokens()).map((t) => t.expiresAt), [null]);
      });

      it('refuses a role it does not know with INVALID_RECORD', async () => {
        await assert.rejects(store.insertAdminToken(token({ role: 'root' as AdminTokenRecord['role'] })), storeCode('INVALID_RECORD'));
      });
    });

    describe('revocations', () => {
      it('revokes a serial once; revoking it again keeps the first record', async () => {
        assert.equal(await store.isRevoked('0a1b'), false);
        assert.equal(await store.revoke({ serial: '0a1b', agentId: aid('edge-1'), at: at(1), by: 'alice' }, auditEntry({ action: 'agent.revoke' })), true);
        assert.equal(await store.revoke({ serial: '0a1b', agentId: aid('edge-1'), at: at(2), by: 'bob' }), false);
        assert.equal(await store.isRevoked('0a1b'), true);
        assert.equal(await store.isRevoked('0a1c'), false);
        assert.deepEqual(await store.listRevocations(), [{ serial: '0a1b', agentId: 'edge-1', at: at(1), by: 'alice' }]);
        assert.deepEqual(
          (await store.listAudit()).map((e) => e.action),
          ['agent.revoke'],
        );
      });
    });

    describe('current certificates', () => {
      it('starts with none, and lists each agent\'s current certificate ordered by agent id', async () => {
        assert.deepEqual(await store.listCurrentCertificates(), []);
        await store.setCurrentCertificate({ agentId: aid('edge-2'), serial: '0b', kind: 'enroll', at: at(1) });
        await store.setCurrentCertificate({ agentId: aid('edge-1'), serial: '0a', kind: 'adopted', at: at(2) });
        assert.deepEqual(await store.listCurrentCertificates(), [
          { agentId: 'edge-1', serial: '0a', kind: 'adopted', at: at(2) },
          { agentId: 'edge-2', serial: '0b', kind: 'enroll', at: at(1) },
        ]);
      });

      it('replaces the agent\'s certificate when a new one becomes current', async () => {
        await store.setCurrentCertificate({ agentId: aid('edge-1'), serial: '0a', kind: 'enroll', at: at(1) });
        await store.setCurrentCertificate({ agentId: aid('edge-1'), serial: '0c', kind: 'renew', at: at(3) });
        assert.deepEqual(await store.listCurrentCertificates(), [{ agentId: 'edge-1', serial: '0c', kind: 'renew', at: at(3) }]);
      });

      it('records many in one call, in order (the later record of an agent wins), all or nothing', async () => {
        await store.setCurrentCertificates([
          { agentId: aid('edge-1'), serial: '0a', kind: 'adopted', at: at(1) },
          { agentId: aid('edge-2'), serial: '0b', kind: 'adopted', at: at(1) },
          { agentId: aid('edge-1'), serial: '0c', kind: 'renew', at: at(2) },
        ]);
        await assert.rejects(
          store.setCurrentCertificates([
            { agentId: aid('edge-3'), serial: '0d', kind: 'adopted', at: at(3) },
            { agentId: aid('edge-4'), serial: '', kind: 'adopted', at: at(3) },
          ]),
          storeCode('INVALID_RECORD'),
        );
        assert.deepEqual(
          (await store.listCurrentCertificates()).map((c) => [c.agentId, c.serial, c.kind]),
          [
            ['edge-1', '0c', 'renew'],
            ['edge-2', '0b', 'adopted'],
          ],
        );
      });

      it('refuses an empty serial or an unknown kind with INVALID_RECORD', async () => {
        await assert.rejects(store.setCurrentCertificate({ agentId: aid('edge-1'), serial: '', kind: 'enroll', at: at(1) }), storeCode('INVALID_RECORD'));
        await assert.rejects(
          store.setCurrentCertificate({ agentId: aid('edge-1'), serial: '0a', kind: 'stolen' as 'enroll', at: at(1) }),
          storeCode('INVALID_RECORD'),
        );
        assert.deepEqual(await store.listCurrentCertificates(), []);
      });
    });

    describe('audit log', () => {
      it('lists entries newest first by append order, with details as given', async () => {
        const first = await store.appendAudit(auditEntry({ at: at(5), action: 'token.create', details: { ttlMs: HOUR } }));
        const second = await store.appendAudit(auditEntry({ at: at(1), action: 'rollout.promote', target: COMMIT_A, reason: '' }));
        assert.ok(second > first);
        assert.deepEqual(await store.listAudit(), [
          { id: second, at: at(1), actor: 'alice', action: 'rollout.promote', target: COMMIT_A, reason: '', details: null },
          { id: first, at: at(5), actor: 'alice', action: 'token.create', target: 'edge-1', reason: 'checked by hand', details: { ttlMs: HOUR } },
        ]);
      });

      it('pages with limit and beforeId', async () => {
        for (let i = 0; i < 7; i += 1) await store.appendAudit(auditEntry({ reason: `r${i}` }));
        const pages: string[][] = [];
        let beforeId: number | undefined;
        for (;;) {
          const page = await store.listAudit({ limit: 3, ...(beforeId === undefined ? {} : { beforeId }) });
          if (page.length === 0) break;
          pages.push(page.map((e) => e.reason));
          beforeId = page[page.length - 1]?.id;
        }
        assert.deepEqual(pages, [['r6', 'r5', 'r4'], ['r3', 'r2', 'r1'], ['r0']]);
      });
    });

    describe('after close', () => {
      it('fails every call with CLOSED, and closing again is harmless', async () => {
        await store.close();
        await store.close();
        await assert.rejects(store.serverState(), storeCode('CLOSED'));
        await assert.rejects(store.recordAck(ack()), storeCode('CLOSED'));
        await assert.rejects(store.recordBatch([{ kind: 'ack', ack: ack() }]), storeCode('CLOSED'));
        await assert.rejects(store.tokens.claim(hashToken('x'), T0), storeCode('CLOSED'));
      });
    });
  });
}

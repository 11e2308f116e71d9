import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { activeConfig, applyBundle, type ApplyContext, type ApplyResult } from '../../src/agent/apply.js';
import { shellReloader } from '../../src/agent/reload.js';
import { readState } from '../../src/agent/state.js';
import { sha256Digest } from '../../src/lib/index.js';
import { BundleVerifier } from '../../src/signing/index.js';
import type { BundleMsg } from '../../src/transport/proto.js';
import { COMMIT_1, COMMIT_2, COMMIT_3, fleetSigner, p256, tempDir } from './helpers.js';
import { aid } from '../helpers/ids.js';

const T0 = Date.parse('2025-06-01T12:00:00.000Z');
const HOUR = 60 * 60 * 1000;
const serverKey = p256();

function rejected(result: ApplyResult): Extract<ApplyResult, { kind: 'rejected' }> {
  assert.equal(result.kind, 'rejected', `expected a rejection, got ${JSON.stringify(result)}`);
  return result as Extract<ApplyResult, { kind: 'rejected' }>;
}

describe('applyBundle', () => {
  let root: Awaited<ReturnType<typeof tempDir>>;
  let n = 0;
  before(async () => {
    root = await tempDir();
  });
  after(() => root.remove());

  /** A fresh agent directory and config file per case; the verifier's clock is T0 + 1 s unless told. */
  function setup(options: { now?: number; reload?: ApplyContext['reload'] } = {}): ApplyContext & { dir: string } {
    n += 1;
    const dir = join(root.path, `case-${n}`);
    return {
      dir,
      verifier: new BundleVerifier({ trustedKeys: serverKey.publicKeyPem, now: () => options.now ?? T0 + 1000 }),
      agentId: aid('edge-1'),
      file: join(dir, 'envoy.json'),
      stateFile: join(dir, 'state.json'),
      now: () => new Date(T0 + 2000),
      ...(options.reload === undefined ? {} : { reload: options.reload }),
    };
  }

  async function prepare(ctx: { dir: string }): Promise<void> {
    await mkdir(ctx.dir, { recursive: true });
  }

  const fleet = fleetSigner(serverKey.privateKey, () => T0, HOUR);
  const gen1 = fleet.sign(1, COMMIT_1, { 'edge-1': 1, 'edge-2': 1 });
  const gen2 = fleet.sign(2, COMMIT_2, { 'edge-1': 2, 'edge-2': 2 });
  const gen3 = fleet.sign(3, COMMIT_3, { 'edge-1': 3, 'edge-2': 3 });
  const mine = (gen: Record<string, BundleMsg>): BundleMsg => gen['edge-1'] as BundleMsg;

  describe('when the delivery is valid', () => {
    it('writes exactly the bundle bytes, records state.json and acks APPLIED with what it verified', async () => {
      const ctx = setup();
      await prepare(ctx);
      const bundle = mine(gen1);
      const result = await applyBundle(bundle, ctx);
      assert.equal(result.kind, 'applied');
      assert.deepEqual(await readFile(ctx.file), bundle.bytes);
      assert.deepEqual(await readState(ctx.stateFile), {
        commit: COMMIT_1,
        digest: bundle.digest,
        generation: 1,
        appliedAt: new Date(T0 + 2000).toISOString(),
      });
      assert.deepEqual(result.ack, {
        commit: COMMIT_1,
        digest: bundle.digest,
        generation: 1,
        nonce: bundle.nonce,
        status: 'APPLIED',
        error: '',
        agent_id: 'edge-1',
      });
    });

    it('leaves no temporary file behind (the rename is the only way content appears)', async () => {
      const ctx = setup();
      await prepare(ctx);
      await applyBundle(mine(gen1), ctx);
      await applyBundle(mine(gen2), ctx);
      assert.deepEqual((await readdir(ctx.dir)).sort(), ['envoy.json', 'state.json']);
      assert.deepEqual(await readFile(ctx.file), mine(gen2).bytes);
    });

    it('moves forward across generations', async () => {
      const ctx = setup();
      await prepare(ctx);
      assert.equal((await applyBundle(mine(gen1), ctx)).kind, 'applied');
      assert.equal((await applyBundle(mine(gen3), ctx)).kind, 'applied');
      assert.equal((await readState(ctx.stateFile))?.generation, 3);
    });

    it('acks a re-send of what already runs without rewriting or reloading', async () => {
      let reloads = 0;
      const ctx = setup({ reload: async () => ((reloads += 1), { kind: 'ok' }) });
      await prepare(ctx);
      await applyBundle(mine(gen1), ctx);
      const again = await applyBundle(mine(gen1), ctx);
      assert.equal(again.kind, 'applied');
      assert.equal(again.kind === 'applied' && again.changed, false);
      assert.equal(reloads, 1);
    });
  });

  describe('when the delivery must be refused', () => {
    /** Each case starts from gen 2 applied, so "untouched" is checked against a real previous file. */
    const cases: { name: string; code: string; bundle: () => BundleMsg; now?: number }[] = [
      {
        name: 'tampered bytes',
        code: 'DIGEST_MISMATCH',
        bundle: () => {
          const b = mine(gen3);
          const bytes = Buffer.from(b.bytes);
          bytes.writeUInt8(bytes.readUInt8(bytes.length - 2) ^ 1, bytes.length - 2);
          return { ...b, bytes };
        },
      },
      {
        name: 'tampered bytes with a matching (unsigned) digest label',
        code: 'DIGEST_MISMATCH',
        bundle: () => {
          const b = mine(gen3);
          const bytes = Buffer.from(JSON.stringify({ evil: true }));
          return { ...b, bytes, digest: sha256Digest(bytes) };
        },
      },
      { name: "another agent's delivery", code: 'NOT_FOR_THIS_AGENT', bundle: () => gen3['edge-2'] as BundleMsg },
      { name: 'an older generation (replay)', code: 'GENERATION_ROLLBACK', bundle: () => mine(gen1) },
      { name: 'an expired statement', code: 'EXPIRED', bundle: () => mine(gen3), now: T0 + 2 * HOUR },
      { name: 'a signature from another key', code: 'UNKNOWN_KEY', bundle: () => mine(fleetSigner(p256().privateKey, () => T0).sign(3, COMMIT_3, { 'edge-1': 3 })) },
      { name: 'a garbage signature field', code: 'MALFORMED_BUNDLE', bundle: () => ({ ...mine(gen3), signature: '{"not":"a delivery"}' }) },
      { name: 'message labels that disagree with the signed delivery', code: 'BUNDLE_MISMATCH', bundle: () => ({ ...mine(gen3), commit: COMMIT_1 }) },
    ];

    for (const c of cases) {
      it(`refuses ${c.name} with ${c.code} and leaves the file and state untouched`, async () => {
        let reloads = 0;
        const ctx = setup({ reload: async () => ((reloads += 1), { kind: 'ok' }) });
        await prepare(ctx);
        assert.equal((await applyBundle(mine(gen2), ctx)).kind, 'applied');
        const stateBefore = await readFile(ctx.stateFile, 'utf8');
        const refuseCtx = c.now === undefined ? ctx : { ...ctx, verifier: new BundleVerifier({ trustedKeys: serverKey.publicKeyPem, now: () => c.now as number }) };
        const bundle = c.bundle();
        const result = rejected(await applyBundle(bundle, refuseCtx));
        assert.equal(result.code, c.code);
        assert.equal(result.ack.status, 'REJECTED');
        assert.equal(result.ack.nonce, bundle.nonce);
        assert.equal(result.ack.agent_id, 'edge-1');
        assert.ok(result.ack.error.startsWith(`${c.code}:`));
        assert.deepEqual(await readFile(ctx.file), mine(gen2).bytes);
        assert.equal(await readFile(ctx.stateFile, 'utf8'), stateBefore);
        assert.equal(reloads, 1, 'the reload command runs only for the applied bundle');
      });
    }
  });

  describe('with a reload command (--exec)', () => {
    it('restores the previous file and answers REJECTED with the command error when it fails', async () => {
      const ctx = setup();
      await prepare(ctx);
      await applyBundle(mine(gen1), ctx);
      const stateBefore = await readFile(ctx.stateFile, 'utf8');
      const failing = { ...ctx, reload: shellReloader({ command: 'echo "envoy: bad listener" >&2; exit 3' }) };
      const result = rejected(await applyBundle(mine(gen2), failing));
      assert.equal(result.code, 'RELOAD_FAILED');
      assert.match(result.ack.error, /exit 3/);
      assert.match(result.ack.error, /envoy: bad listener/);
      assert.equal(result.ack.generation, 2);
      assert.deepEqual(await readFile(ctx.file), mine(gen1).bytes);
      assert.equal(await readFile(ctx.stateFile, 'utf8'), stateBefore);
      assert.deepEqual((await readdir(ctx.dir)).sort(), ['envoy.json', 'state.json']);
    });

    it('removes the new file again when there was none before', async () => {
      const ctx = setup({ reload: shellReloader({ command: 'exit 1' }) });
      await prepare(ctx);
      const result = rejected(await applyBundle(mine(gen1), ctx));
      assert.equal(result.code, 'RELOAD_FAILED');
      assert.deepEqual(await readdir(ctx.dir), []);
    });

    it('counts a command that outlives its timeout as failed', async () => {
      const ctx = setup({ reload: shellReloader({ command: 'sleep 5', timeoutMs: 200 }) });
      await prepare(ctx);
      const result = rejected(await applyBundle(mine(gen1), ctx));
      assert.equal(result.code, 'RELOAD_FAILED');
      assert.match(result.error, /timeout/);
    });

    it('runs the command with MESHCFG_FILE naming the complete new file, then acks APPLIED', async () => {
      const ctx = setup();
      await prepare(ctx);
      const seen = join(ctx.dir, '..', `seen-${n}`);
      const reload = shellReloader({ command: `sha256sum "$MESHCFG_FILE" | cut -d' ' -f1 > "${seen}"` });
      const bundle = mine(gen1);
      const result = await applyBundle(bundle, { ...ctx, reload });
      assert.equal(result.kind, 'applied');
      assert.equal(result.ack.status, 'APPLIED');
      assert.equal(`sha256:${(await readFile(seen, 'utf8')).trim()}`, bundle.digest);
    });
  });

  describe('when the bundle verifies but cannot be put in place locally', () => {
    it('answers REJECTED with APPLY_FAILED and the error when the output directory has vanished', async () => {
      const ctx = setup();
      await prepare(ctx);
      const file = join(ctx.dir, 'gone', 'envoy.json');
      const bundle = mine(gen1);
      const result = rejected(await applyBundle(bundle, { ...ctx, file }));
      assert.equal(result.code, 'APPLY_FAILED');
      assert.deepEqual(
        { status: result.ack.status, commit: result.ack.commit, digest: result.ack.digest, generation: result.ack.generation, nonce: result.ack.nonce },
        { status: 'REJECTED', commit: COMMIT_1, digest: bundle.digest, generation: 1, nonce: bundle.nonce },
      );
      assert.ok(result.ack.error.startsWith('APPLY_FAILED:'));
      assert.ok(result.ack.error.includes(file), 'the error names the file');
      assert.equal(await readState(ctx.stateFile), null, 'nothing is recorded as running');
    });

    it('answers REJECTED with APPLY_FAILED when the output path is a directory', async () => {
      const ctx = setup();
      await mkdir(ctx.file, { recursive: true });
      const result = rejected(await applyBundle(mine(gen1), ctx));
      assert.equal(result.code, 'APPLY_FAILED');
      assert.equal(await readState(ctx.stateFile), null);
    });

    it('puts the previous file back and answers APPLY_FAILED when state.json cannot be recorded', async () => {
      const ctx = setup();
      await prepare(ctx);
      await applyBundle(mine(gen1), ctx);
      const result = rejected(await applyBundle(mine(gen2), { ...ctx, stateFile: join(ctx.dir, 'gone', 'state.json') }));
      assert.equal(result.code, 'APPLY_FAILED');
      assert.equal(result.ack.generation, 2);
      assert.deepEqual(await readFile(ctx.file), mine(gen1).bytes, 'the file that runs matches what state.json says');
      assert.equal((await readState(ctx.stateFile))?.generation, 1);
    });

    it('answers REJECTED with STATE_INVALID when state.json does not parse', async () => {
      const ctx = setup();
      await prepare(ctx);
      await writeFile(ctx.stateFile, 'not json');
      const result = rejected(await applyBundle(mine(gen1), ctx));
      assert.equal(result.code, 'STATE_INVALID');
      assert.equal(result.ack.status, 'REJECTED');
    });
  });

  describe('activeConfig (what the hello reports)', () => {
    it('reports the digest of the file on disk, so a hand edit differs from what state.json says', async () => {
      const ctx = setup();
      await prepare(ctx);
      const bundle = mine(gen1);
      await applyBundle(bundle, ctx);
      assert.deepEqual(await activeConfig(ctx.file, ctx.stateFile), { commit: COMMIT_1, digest: bundle.digest, generation: 1 });

      await writeFile(ctx.file, '{"hand":"edited"}');
      const active = await activeConfig(ctx.file, ctx.stateFile);
      const state = await readState(ctx.stateFile);
      assert.equal(active?.digest, sha256Digest(Buffer.from('{"hand":"edited"}')));
      assert.notEqual(active?.digest, state?.digest);
      assert.equal(active?.generation, 1);
    });

    it('re-applying the same generation repairs a hand-edited file', async () => {
      const ctx = setup();
      await prepare(ctx);
      await applyBundle(mine(gen1), ctx);
      await writeFile(ctx.file, 'drift');
      const result = await applyBundle(mine(gen1), ctx);
      assert.equal(result.kind === 'applied' && result.changed, true);
      assert.deepEqual(await readFile(ctx.file), mine(gen1).bytes);
    });

    it('is null before anything ran', async () => {
      const ctx = setup();
      await prepare(ctx);
      assert.equal(await activeConfig(ctx.file, ctx.stateFile), null);
    });
  });
});

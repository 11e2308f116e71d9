/**
 * Bundle signing benchmark: `npm run bench:signing`.
 *
 * A fleet of 10,000 agents, each with its own 4 KiB bundle, signed for one generation two
 * ways in the same run:
 *
 *   merkle     this design: one Merkle tree over the fleet + ONE DSSE signature, then each
 *              agent's delivery (shared bundle + inclusion proof) cut and wire-encoded
 *   per-agent  baseline: one Sigstore DSSE bundle (ECDSA P-256) per agent over a statement
 *              naming that agent, serialised to JSON
 *
 * and the agent's side: `BundleVerifier.verify` per delivery (decode, @sigstore/verify,
 * statement parse, SHA-256 of the bytes, inclusion proof, freshness).
 * Each figure is the median of several runs.
 */
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { performance } from 'node:perf_hooks';

import { bundleToJSON, toDSSEBundle } from '@sigstore/bundle';

import { sha256Digest } from '../src/lib/index.js';
import { canonicalBytes } from '../src/lib/index.js';
import type { Digest } from '../src/domain/types.js';
import { BundleSigner, BundleVerifier, encodeDelivery, keyHint } from '../src/signing/index.js';
import { preAuthEncoding } from '../src/signing/signer.js';
import { STATEMENT_PAYLOAD_TYPE } from '../src/signing/statement.js';
import { aid, cid } from '../test/helpers/ids.js';
import type { AgentId } from '../src/domain/types.js';

const AGENTS = 10_000;
const RUNS = 5;
const VERIFY_SAMPLE = 2_000;
const COMMIT = 'c0ffee'.padEnd(40, '0');

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const hint = keyHint(publicKey);

const agents = Array.from({ length: AGENTS }, (_, i) => {
  const agentId = aid(`agent-${String(i).padStart(5, '0')}`);
  const bytes = randomBytes(4096);
  return { agentId, bytes, digest: sha256Digest(bytes) };
});

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

function time(fn: () => void): number {
  const start = performance.now();
  fn();
  return performance.now() - start;
}

// --- this design -------------------------------------------------------------------------
const merkle = { sign: [] as number[], extract: [] as number[], total: [] as number[] };
let generation = 0;
let wires: string[] = [];
for (let run = 0; run < RUNS; run++) {
  const signer = new BundleSigner({ privateKey, lastGeneration: generation });
  generation += 1;
  let signed!: ReturnType<BundleSigner['signGeneration']>;
  const tSign = time(() => {
    signed = signer.signGeneration({ generation, commit: cid(COMMIT), agents });
  });
  const tExtract = time(() => {
    wires = agents.map(({ agentId }) => encodeDelivery(signed.forAgent(aid(agentId))!));
  });
  merkle.sign.push(tSign);
  merkle.extract.push(tExtract);
  merkle.total.push(tSign + tExtract);
}

// --- baseline: one signature per agent -----------------------------------------------------
function perAgentBundle(agentId: AgentId, digest: Digest, issuedAt: string, expiresAt: string): string {
  const payload = Buffer.from(
    canonicalBytes({ _type: 'https://meshcfg.dev/statement/v0', agent: agentId, commit: cid(COMMIT), digest, generation, issuedAt, expiresAt }),
  );
  const signature = sign('sha256', preAuthEncoding(STATEMENT_PAYLOAD_TYPE, payload), privateKey);
  return JSON.stringify(bundleToJSON(toDSSEBundle({ artifact: payload, artifactType: STATEMENT_PAYLOAD_TYPE, signature, keyHint: hint })));
}
const baseline: number[] = [];
for (let run = 0; run < Math.min(RUNS, 3); run++) {
  const issuedAt = new Date().toISOString();
  const expiresAt = new Date(Date.now() + 86_400_000).toISOString();
  baseline.push(time(() => {
    for (const { agentId, digest } of agents) perAgentBundle(aid(agentId), digest, issuedAt, expiresAt);
  }));
}

// --- agent side -------------------------------------------------------------------------
const verifier = new BundleVerifier({ trustedKeys: publicKey });
const verifyRuns: number[] = [];
for (let run = 0; run < RUNS; run++) {
  verifyRuns.push(
    time(() => {
      for (let i = 0; i < VERIFY_SAMPLE; i++) {
        const index = (i * 7919) % AGENTS;
        const { agentId, bytes } = agents[index]!;
        verifier.verify({ delivery: wires[index]!, bytes, agentId: aid(agentId), current: null });
      }
    }) / VERIFY_SAMPLE,
  );
}

const wireBytes = wires.reduce((sum, w) => sum + Buffer.byteLength(w), 0) / wires.length;
const fmt = (ms: number) => `${ms.toFixed(1).padStart(8)} ms`;
console.log(`signing one generation for ${AGENTS.toLocaleString('en')} agents (median of ${RUNS}; baseline of ${baseline.length})`);
console.log('');
console.log(`  merkle    build tree + 1 signature      ${fmt(median(merkle.sign))}`);
console.log(`            extract + encode ${AGENTS} proofs ${fmt(median(merkle.extract))}`);
console.log(`            total                         ${fmt(median(merkle.total))}`);
console.log(`  per-agent ${AGENTS} DSSE signatures + bundles ${fmt(median(baseline))}`);
console.log(`  speed-up                                ${(median(baseline) / median(merkle.total)).toFixed(1).padStart(8)} x`);
console.log('');
console.log(`  agent verify per delivery (4 KiB bundle) ${(median(verifyRuns) * 1000).toFixed(0).padStart(6)} µs`);
console.log(`  delivery document size (avg)             ${wireBytes.toFixed(0).padStart(6)} bytes`);

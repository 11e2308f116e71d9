import { sign, verify, type KeyObject } from 'node:crypto';

import { bundleToJSON, toDSSEBundle } from '@sigstore/bundle';

import { deepFreeze } from '../lib/index.js';
import { SigningError } from '../domain/errors.js';
import type { AgentId, CommitSha, Digest, JsonValue } from '../domain/types.js';
import { keyHint, toPrivateSigningKey, toPublicSigningKey, type KeyInput } from './keys.js';
import { MerkleTree } from './merkle.js';
import {
  isAgentId,
  isCommitSha,
  isDigest,
  isGeneration,
  leafBytes,
  STATEMENT_PAYLOAD_TYPE,
  STATEMENT_TYPE,
  parseStatement,
  statementBytes,
  type GenerationStatement,
} from './statement.js';
import { parseSigstoreBundleJson, type SignedDelivery, type SigstoreBundleJson } from './wire.js';

export interface BundleSignerOptions {
  /** The server's ECDSA P-256 bundle signing key (KeyObject or PEM). */
  readonly privateKey: KeyInput;
  /** Clock in epoch milliseconds. Default `Date.now`. */
  readonly now?: () => number;
  /** How long a generation's statement stays valid. Default 24 h. */
  readonly ttlMs?: number;
  /**
   * The highest generation already signed (persisted by the caller across restarts);
   * `signGeneration` refuses anything not above it. Default -1 (none yet).
   */
  readonly lastGeneration?: number;
}

/** One agent's desired bundle in a generation. */
export interface AgentAssignment {
  readonly agentId: AgentId;
  readonly digest: Digest;
}

export interface GenerationInput {
  /**
   * Grows by at least one for every signing: a new commit, a changed assignment (e.g. an
   * agent moved to the baseline) or an expiry refresh of unchanged content.
   */
  readonly generation: number;
  readonly commit: CommitSha;
  /**
   * Every agent's desired digest in this generation, decided by the rollout layer. A
   * quarantined agent is just another assignment whose digest is the baseline bundle's: it is
   * signed the same way, and the agent's checks do not change.
   */
  readonly agents: readonly AgentAssignment[];
}

export const DEFAULT_TTL_MS = 24 * 60 * 60 * 1000;

/**
 * Signs bundles for a whole fleet with one signature per generation.
 *
 * Per generation it builds a Merkle tree (RFC 9162 hashing) with one leaf per agent,
 * `{agent, commit, digest, generation}`, leaves ordered by agent id, and signs a statement
 * `{generation, commit, issuedAt, expiresAt, treeSize, rootHash}` once, as a Sigstore bundle
 * with a DSSE envelope (ECDSA P-256, key hint = SHA-256 of the SPKI). Each agent gets that
 * shared bundle plus its O(log n) inclusion proof. Cost: one ECDSA signature and ~2n
 * SHA-256 per generation, instead of n signatures.
 *
 * The agent still learns everything a per-agent signature would tell it: the signed root
 * commits to exactly one leaf per agent, so a proof for its own id and the hash of the
 * bytes it received is as binding as a signature over them.
 */
export class BundleSigner {
  private readonly privateKey: KeyObject;
  private readonly signingPublicKey: KeyObject;
  private readonly hint: string;
  private readonly now: () => number;
  private readonly ttlMs: number;
  private lastGeneration: number;

  constructor(options: BundleSignerOptions) {
    this.privateKey = toPrivateSigningKey(options.privateKey);
    this.signingPublicKey = toPublicSigningKey(this.privateKey);
    this.hint = keyHint(this.signingPublicKey);
    this.now = options.now ?? Date.now;
    this.ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
    this.lastGeneration = options.lastGeneration ?? -1;
    if (!Number.isSafeInteger(this.ttlMs) || this.ttlMs <= 0) throw new RangeError('ttlMs must be a positive integer');
    if (!Number.isSafeInteger(this.lastGeneration) || this.lastGeneration < -1) {
      throw new RangeError('lastGeneration must be an integer >= -1');
    }
  }

  /** The public half, for agents to pin (`enroll` writes it to the agent's directory). */
  get publicKey(): KeyObject {
    return this.signingPublicKey;
  }

  /** The Sigstore key hint agents find the key by. */
  get keyHint(): string {
    return this.hint;
  }

  signGeneration(input: GenerationInput): SignedGeneration {
    const { generation, commit } = input;
    if (!isGeneration(generation)) invalid('generation must be a non-negative safe integer');
    if (generation <= this.lastGeneration) {
      invalid(`generation ${generation} does not grow past ${this.lastGeneration}`);
    }
    if (!isCommitSha(commit)) invalid('commit is not a lowercase hex commit id');
    if (input.agents.length === 0) invalid('a generation needs at least one agent');

    const agents = [...input.agents].sort((a, b) => (a.agentId < b.agentId ? -1 : a.agentId > b.agentId ? 1 : 0));
    const index = new Map<AgentId, number>();
    const leaves: Uint8Array[] = [];
    for (const { agentId, digest } of agents) {
      if (!isAgentId(agentId)) invalid('an agent id is not a DNS label');
      if (!isDigest(digest)) invalid(`digest for ${agentId} is not sha256:<hex>`);
      if (index.has(agentId)) invalid(`agent ${agentId} is assigned twice`);
      index.set(agentId, leaves.length);
      leaves.push(leafBytes({ agent: agentId, commit, digest, generation }));
    }
    const tree = new MerkleTree(leaves);

    const issued = this.now();
    const statement: GenerationStatement = Object.freeze({
      _type: STATEMENT_TYPE,
      generation,
      commit,
      issuedAt: new Date(issued).toISOString(),
      expiresAt: new Date(issued + this.ttlMs).toISOString(),
      treeSize: tree.size,
      rootHash: tree.root().toString('hex'),
    });
    const bundle = this.sign(Buffer.from(statementBytes(statement)));

    this.lastGeneration = generation;
    return new SignedGeneration(statement, bundle, tree, agents, index);
  }

  private sign(payload: Buffer): SigstoreBundleJson {
    const pae = preAuthEncoding(STATEMENT_PAYLOAD_TYPE, payload);
    const signature = sign('sha256', pae, this.privateKey);
    // Never hand out a signature the agents would refuse (wrong key material, faults).
    if (!verify('sha256', pae, this.signingPublicKey, signature)) {
      throw new SigningError({ code: 'INVALID_SIGNING_KEY', message: 'the signing key produced a signature that does not verify' });
    }
    const json = bundleToJSON(
      toDSSEBundle({ artifact: payload, artifactType: STATEMENT_PAYLOAD_TYPE, signature, keyHint: this.hint }),
    );
    // Also proves that what @sigstore/bundle wrote is the shape agents accept.
    const checked = parseSigstoreBundleJson(JSON.parse(JSON.stringify(json)));
    return deepFreeze(checked as unknown as JsonValue) as unknown as SigstoreBundleJson;
  }
}

/**
 * One signed generation: the statement, its shared Sigstore bundle, and the tree to cut
 * per-agent proofs from. Immutable; `forAgent` is O(log n) and returns frozen values.
 */
export class SignedGeneration {
  readonly statement: GenerationStatement;
  /** JSON-serialisable Sigstore bundle, shared by every agent of the generation. */
  readonly bundle: SigstoreBundleJson;
  private readonly tree: MerkleTree;
  private readonly agents: readonly AgentAssignment[];
  private readonly index: ReadonlyMap<AgentId, number>;

  /** @internal Made by {@link BundleSigner.signGeneration}. */
  constructor(
    statement: GenerationStatement,
    bundle: SigstoreBundleJson,
    tree: MerkleTree,
    agents: readonly AgentAssignment[],
    index: ReadonlyMap<AgentId, number>,
  ) {
    this.statement = statement;
    this.bundle = bundle;
    this.tree = tree;
    this.agents = agents;
    this.index = index;
    Object.freeze(this);
  }

  get size(): number {
    return this.tree.size;
  }

  has(agentId: AgentId): boolean {
    return this.index.has(agentId);
  }

  /** The delivery for one agent, or undefined when the agent is not part of this generation. */
  forAgent(agentId: AgentId): SignedDelivery | undefined {
    const leafIndex = this.index.get(agentId);
    if (leafIndex === undefined) return undefined;
    const { digest } = this.agents[leafIndex] as AgentAssignment;
    const auditPath = Object.freeze(this.tree.auditPathHex(leafIndex));
    return Object.freeze({
      agent: agentId,
      digest,
      bundle: this.bundle,
      proof: Object.freeze({ leafIndex, auditPath }),
    });
  }
}

/** A generation another process signed, as it was stored (the leader's `SignedGeneration`, taken apart). */
export interface StoredGenerationInput {
  readonly generation: number;
  readonly commit: CommitSha;
  /** The Sigstore bundle JSON as signed. */
  readonly bundle: unknown;
  /** Every leaf's agent and digest. */
  readonly agents: readonly AgentAssignment[];
}

/**
 * Rebuilds a generation signed elsewhere (by the leading replica) so this process hands out
 * exactly its bytes: the bundle's signature is checked against `publicKey`, its statement must
 * name this generation and commit, and the tree rebuilt from `agents` must have the signed
 * root. Throws SigningError INVALID_GENERATION otherwise (a corrupt or foreign record is never
 * served).
 */
export function restoreGeneration(input: StoredGenerationInput, publicKey: KeyInput): SignedGeneration {
  const key = toPublicSigningKey(publicKey);
  let bundle: SigstoreBundleJson;
  try {
    bundle = parseSigstoreBundleJson(input.bundle);
  } catch (cause) {
    throw new SigningError({ code: 'INVALID_GENERATION', message: 'the stored bundle is not a meshcfg Sigstore bundle', cause });
  }
  const envelope = bundle.dsseEnvelope;
  const payload = Buffer.from(envelope.payload, 'base64');
  const signature = Buffer.from(envelope.signatures[0].sig, 'base64');
  if (envelope.payloadType !== STATEMENT_PAYLOAD_TYPE || !verify('sha256', preAuthEncoding(envelope.payloadType, payload), key, signature)) {
    invalid(`the stored generation ${input.generation} is not signed by this server's signing key`);
  }
  const statement = Object.freeze(parseStatement(payload));
  if (statement.generation !== input.generation || statement.commit !== input.commit) {
    invalid(`the stored statement names generation ${statement.generation} of ${statement.commit}, not ${input.generation} of ${input.commit}`);
  }
  const agents = [...input.agents].sort((a, b) => (a.agentId < b.agentId ? -1 : a.agentId > b.agentId ? 1 : 0));
  const index = new Map<AgentId, number>();
  const leaves: Uint8Array[] = [];
  for (const { agentId, digest } of agents) {
    if (!isAgentId(agentId) || !isDigest(digest) || index.has(agentId)) invalid(`the stored leaf of ${String(agentId)} is not valid`);
    index.set(agentId, leaves.length);
    leaves.push(leafBytes({ agent: agentId, commit: statement.commit, digest, generation: statement.generation }));
  }
  const tree = new MerkleTree(leaves);
  if (tree.size !== statement.treeSize || tree.root().toString('hex') !== statement.rootHash) {
    invalid(`the stored leaves of generation ${input.generation} do not make its signed root`);
  }
  return new SignedGeneration(statement, deepFreeze(bundle as unknown as JsonValue) as unknown as SigstoreBundleJson, tree, agents, index);
}

/** DSSE v1 pre-authentication encoding: what the envelope signature covers (type and payload). */
export function preAuthEncoding(payloadType: string, payload: Buffer): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `, 'ascii'),
    type,
    Buffer.from(` ${payload.length} `, 'ascii'),
    payload,
  ]);
}

function invalid(message: string): never {
  throw new SigningError({ code: 'INVALID_GENERATION', message });
}

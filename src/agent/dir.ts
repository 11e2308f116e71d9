import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { isAgentId } from '../domain/agent-id.js';
import { AgentError } from '../domain/errors.js';
import type { AgentId } from '../domain/types.js';
import { agentIdFromCertificate, certificateExpiry, parsePin, type Pin, readSecretFile } from '../pki/index.js';
import { isErrnoCode, readOptionalFile } from '../lib/index.js';

/** What `meshcfg enroll` writes and `meshcfg agent` reads. */
export interface AgentDirPaths {
  readonly dir: string;
  /** The agent's RSA-2048 private key, PKCS#8 PEM, 0600. */
  readonly key: string;
  readonly cert: string;
  /** The enrollment CA: the trust anchor of every connection after enrollment (with the pin). */
  readonly ca: string;
  /** The server's bundle signing public key (ECDSA P-256 SPKI PEM). */
  readonly signingKey: string;
  /** `{agentId, trustDomain, server, pins}`. */
  readonly config: string;
  /** What the agent runs: `{commit, digest, generation, appliedAt}`. */
  readonly state: string;
  /** A renewed key and certificate before they replace the current pair (see {@link loadAgentIdentity}). */
  readonly nextKey: string;
  readonly nextCert: string;
}

export function agentDirPaths(dir: string): AgentDirPaths {
  return {
    dir,
    key: join(dir, 'agent.key'),
    cert: join(dir, 'agent.crt'),
    ca: join(dir, 'ca.crt'),
    signingKey: join(dir, 'signing-key.pem'),
    config: join(dir, 'agent.json'),
    state: join(dir, 'state.json'),
    nextKey: join(dir, 'agent.key.next'),
    nextCert: join(dir, 'agent.crt.next'),
  };
}

/** agent.json. `trustDomain` is read from the certificate at enrollment so the id can be re-derived from it. */
export interface AgentConfigFile {
  readonly agentId: AgentId;
  readonly trustDomain: string;
  /** `HOST:PORT`, the default for `meshcfg agent --server`. */
  readonly server: string;
  readonly pins: readonly Pin[];
}

/** Everything the agent needs to connect and verify, loaded and cross-checked. */
export interface AgentCredentials {
  readonly paths: AgentDirPaths;
  readonly config: AgentConfigFile;
  /** From the certificate's URI SAN, never from a message or agent.json alone. */
  readonly agentId: AgentId;
  readonly keyPem: string;
  readonly certPem: string;
  readonly caPem: string;
  readonly signingKeyPem: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

function invalid(message: string, cause?: unknown): AgentError {
  return new AgentError({ code: 'AGENT_DIR_INVALID', message, cause });
}

export async function readAgentConfig(paths: AgentDirPaths): Promise<AgentConfigFile> {
  let text: string;
  try {
    text = await readFile(paths.config, 'utf8');
  } catch (cause) {
    if (isErrnoCode(cause, 'ENOENT')) throw invalid(`${paths.config} does not exist: run \`meshcfg enroll --dir ${paths.dir}\` first`, cause);
    throw invalid(`cannot read ${paths.config}`, cause);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw invalid(`${paths.config} is not JSON`, cause);
  }
  const doc = value as Partial<Record<keyof AgentConfigFile, unknown>>;
  if (typeof value !== 'object' || value === null || !isAgentId(doc.agentId) || typeof doc.trustDomain !== 'string' || typeof doc.server !== 'string' || !Array.isArray(doc.pins)) {
    throw invalid(`${paths.config} lacks agentId, trustDomain, server or pins`);
  }
  let pins: Pin[];
  try {
    pins = doc.pins.map((pin) => parsePin(String(pin)));
  } catch (cause) {
    throw invalid(`${paths.config} holds an invalid pin`, cause);
  }
  if (pins.length === 0) throw invalid(`${paths.config} has no pins`);
  return { agentId: doc.agentId, trustDomain: doc.trustDomain, server: doc.server, pins };
}

async function required(path: string, secret: boolean): Promise<string> {
  let text: string | undefined;
  try {
    text = secret ? await readSecretFile(path) : await readOptionalFile(path);
  } catch (cause) {
    throw invalid(`cannot read ${path}: ${cause instanceof Error ? cause.message : String(cause)}`, cause);
  }
  if (text === undefined) throw invalid(`${path} is missing: enroll again`);
  return text;
}

/** Whether a certificate was issued for a private key. */
export function certificateMatchesKey(certPem: string, keyPem: string): boolean {
  try {
    return new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

/**
 * Finishes a renewal that a crash interrupted. A renewal writes `agent.key.next` and
 * `agent.crt.next` and then renames them over the current pair, key first; if the process
 * died between the two renames, the key is new and the certificate old. The pending
 * certificate that matches the key is moved in; stale leftovers are ignored.
 */
async function recoverPendingRenewal(paths: AgentDirPaths): Promise<void> {
  const nextCert = await readOptionalFile(paths.nextCert);
  if (nextCert === undefined) return;
  const nextKey = await readSecretFile(paths.nextKey);
  const key = await readSecretFile(paths.key);
  if (nextKey !== undefined && certificateMatchesKey(nextCert, nextKey)) {
    await rename(paths.nextKey, paths.key);
    await rename(paths.nextCert, paths.cert);
  } else if (key !== undefined && certificateMatchesKey(nextCert, key)) {
    await rename(paths.nextCert, paths.cert);
  }
}

/**
 * Loads and cross-checks the agent directory: the key matches the certificate, the
 * certificate was issued by the CA in ca.crt, and names the agent agent.json says it is.
 * Throws AgentError AGENT_DIR_INVALID.
 */
export async function loadAgentIdentity(dir: string): Promise<AgentCredentials> {
  const paths = agentDirPaths(dir);
  const config = await readAgentConfig(paths);
  await recoverPendingRenewal(paths);
  const keyPem = await required(paths.key, true);
  const certPem = await required(paths.cert, false);
  const caPem = await required(paths.ca, false);
  const signingKeyPem = await required(paths.signingKey, false);
  let cert: X509Certificate;
  let ca: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
    ca = new X509Certificate(caPem);
  } catch (cause) {
    throw invalid(`${paths.cert} or ${paths.ca} is not a PEM certificate`, cause);
  }
  if (!certificateMatchesKey(certPem, keyPem)) throw invalid(`${paths.cert} is not the certificate of ${paths.key}`);
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) throw invalid(`${paths.cert} was not issued by the CA in ${paths.ca}`);
  let agentId: AgentId;
  try {
    agentId = agentIdFromCertificate(cert, config.trustDomain);
  } catch (cause) {
    throw invalid(`${paths.cert} does not carry an agent identity of trust domain ${config.trustDomain}`, cause);
  }
  if (agentId !== config.agentId) throw invalid(`${paths.cert} is for agent ${agentId}, agent.json says ${config.agentId}`);
  return {
    paths,
    config,
    agentId,
    keyPem,
    certPem,
    caPem,
    signingKeyPem,
    notBefore: new Date(cert.validFrom),
    notAfter: certificateExpiry(cert),
  };
}

import { X509Certificate } from 'node:crypto';
import { chmod, mkdir, mkdtemp, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import forge from 'node-forge';
import { AgentError } from '../domain/errors.js';
import type { AgentId } from '../domain/types.js';
import { agentIdFromCertificate, generateRsaKeyPair, parsePin, parseSubjectAltName, type Pin, type RsaKeyPair, SECRET_FILE_MODE } from '../pki/index.js';
import { isErrnoCode, writeFileAtomic } from '../lib/index.js';
import { toPublicSigningKey } from '../signing/index.js';
import { EnrollmentRpc, type EnrollResponseMsg, parseServerAddress, pinnedCredentials, probeServerCertificate, type ServerAddress } from '../transport/index.js';
import { type AgentConfigFile, certificateMatchesKey } from './dir.js';
import { type AgentLogger, silentLogger } from './logger.js';
import { PUBLIC_FILE_MODE } from './state.js';

export interface EnrollOptions {
  /** `HOST:PORT` of the server's gRPC listener. */
  readonly server: string;
  /** One or two pins, `sha256/<base64>` (from `meshcfg ca pin`). */
  readonly pins: readonly string[];
  /** The one-time enrollment token (`meshcfg token create`). Never logged. */
  readonly token: string;
  /** The agent directory to create or update. */
  readonly dir: string;
  /** Deadline of the TLS probe and of the Enroll call. Default 15 s. */
  readonly timeoutMs?: number;
  readonly logger?: AgentLogger;
}

export interface EnrollResult {
  readonly agentId: AgentId;
  readonly trustDomain: string;
  readonly dir: string;
  readonly expiresAt: Date;
}

const DIRECTORY_MODE = 0o700;

/**
 * Enrolls this agent: key generated here (it never leaves), CSR + token sent to the server,
 * certificate, CA and bundle signing key written to `dir`.
 *
 * Trust at enrollment rests on the pin alone. The agent has no CA yet, so it first fetches
 * the server's certificate over a TLS connection that trusts nothing and keeps it only if its
 * key matches a pin ({@link probeServerCertificate}); that certificate is then the only trust
 * anchor of the gRPC channel, which checks host name and pin once more. After enrollment the
 * agent trusts the CA it received, and still requires the pin.
 *
 * Nothing is written unless every step succeeded and the response checked out: a wrong pin,
 * a bad token or an unreachable server leave `dir` as it was (not even created).
 * Throws AgentError (PIN_MISMATCH, TLS_FAILED, UNREACHABLE, UNAUTHENTICATED, PERMISSION_DENIED,
 * DEADLINE_EXCEEDED, RPC_FAILED, ENROLLMENT_INVALID) or PkiError PIN_INVALID.
 */
export async function enroll(options: EnrollOptions): Promise<EnrollResult> {
  const logger = options.logger ?? silentLogger;
  const timeoutMs = options.timeoutMs ?? 15_000;
  const server = parseServerAddress(options.server);
  const pins = options.pins.map(parsePin);
  if (pins.length === 0 || pins.length > 2) {
    throw new AgentError({ code: 'PIN_MISMATCH', message: 'give one pin, or two during a server key rotation' });
  }

  const { certPem: serverCertPem } = await probeServerCertificate({ server, pins, timeoutMs });
  logger.info({ server: server.target }, 'server key matches the pin');

  const key = await generateRsaKeyPair();
  const csrPem = certificationRequest(key);
  const response = await requestCertificate(server, pins, serverCertPem, options.token, csrPem, timeoutMs);
  const checked = checkEnrollResponse(response, key, serverCertPem);

  const config: AgentConfigFile = { agentId: checked.agentId, trustDomain: checked.trustDomain, server: server.target, pins };
  await writeAgentDirectory(options.dir, [
    { name: 'agent.key', data: key.privateKeyPem, mode: SECRET_FILE_MODE },
    { name: 'agent.crt', data: checked.certPem, mode: PUBLIC_FILE_MODE },
    { name: 'ca.crt', data: checked.caPem, mode: PUBLIC_FILE_MODE },
    { name: 'signing-key.pem', data: checked.signingKeyPem, mode: PUBLIC_FILE_MODE },
    // Last: its presence marks a complete enrollment.
    { name: 'agent.json', data: `${JSON.stringify(config, null, 2)}\n`, mode: PUBLIC_FILE_MODE },
  ]);
  logger.info({ agentId: checked.agentId, dir: options.dir, expiresAt: checked.expiresAt.toISOString() }, 'enrolled');
  return { agentId: checked.agentId, trustDomain: checked.trustDomain, dir: options.dir, expiresAt: checked.expiresAt };
}

/** An RSA PKCS#10 request signed with the agent's key. Subject and SANs are ignored by the CA. */
export function certificationRequest(key: RsaKeyPair, commonName = 'meshcfg-agent'): string {
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.publicKeyFromPem(key.publicKeyPem);
  csr.setSubject([{ name: 'commonName', value: commonName }]);
  csr.sign(forge.pki.privateKeyFromPem(key.privateKeyPem), forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(csr);
}

async function requestCertificate(
  server: ServerAddress,
  pins: readonly Pin[],
  serverCertPem: string,
  token: string,
  csrPem: string,
  timeoutMs: number,
): Promise<EnrollResponseMsg> {
  const rpc = new EnrollmentRpc(server, pinnedCredentials({ trust: { kind: 'pinned-certificate', certPem: serverCertPem }, pins }), { timeoutMs });
  try {
    return await rpc.enroll({ token, csr_pem: Buffer.from(csrPem) });
  } catch (err) {
    if (err instanceof AgentError && err.code === 'UNAUTHENTICATED') {
      throw new AgentError({ code: 'UNAUTHENTICATED', message: `the server refused the enrollment token (unknown, expired, already used, or for an agent not in the inventory): ${err.message}`, cause: err });
    }
    throw err;
  } finally {
    rpc.close();
  }
}

export interface CheckedEnrollment {
  readonly agentId: AgentId;
  readonly trustDomain: string;
  readonly certPem: string;
  readonly caPem: string;
  readonly signingKeyPem: string;
  readonly expiresAt: Date;
}

/**
 * Checks what the server returned before anything is stored: the certificate is for our key,
 * issued by the returned CA, names one agent of a trust domain; the CA also issued the server
 * certificate we pinned (or later connections, anchored at that CA, could never succeed); the
 * signing key is a usable P-256 key. Throws AgentError ENROLLMENT_INVALID.
 */
export function checkEnrollResponse(response: EnrollResponseMsg, key: RsaKeyPair, serverCertPem: string): CheckedEnrollment {
  const bad = (message: string, cause?: unknown): AgentError => new AgentError({ code: 'ENROLLMENT_INVALID', message, cause });
  const certPem = Buffer.from(response.certificate_pem).toString('utf8');
  const caPem = Buffer.from(response.ca_pem).toString('utf8');
  const signingKeyPem = Buffer.from(response.signing_key_pem).toString('utf8');
  let cert: X509Certificate;
  let ca: X509Certificate;
  let serverCert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
    ca = new X509Certificate(caPem);
    serverCert = new X509Certificate(serverCertPem);
  } catch (cause) {
    throw bad('the server returned a certificate or CA that does not parse', cause);
  }
  if (!certificateMatchesKey(certPem, key.privateKeyPem)) throw bad('the returned certificate is not for the key this agent generated');
  if (!ca.ca) throw bad('the returned CA certificate is not a CA');
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) throw bad('the returned certificate was not issued by the returned CA');
  if (!serverCert.checkIssued(ca) || !serverCert.verify(ca.publicKey)) throw bad('the pinned server certificate was not issued by the returned CA');

  const uri = parseSubjectAltName(cert.subjectAltName ?? '').find((name) => name.type === 'URI')?.value ?? '';
  const trustDomain = /^spiffe:\/\/([^/]+)\/agent\//.exec(uri)?.[1];
  if (trustDomain === undefined) throw bad('the returned certificate carries no spiffe://<trust domain>/agent/<id> identity');
  let agentId: AgentId;
  try {
    agentId = agentIdFromCertificate(cert, trustDomain);
  } catch (cause) {
    throw bad('the returned certificate carries no valid agent identity', cause);
  }
  if (response.agent_id !== '' && response.agent_id !== agentId) {
    throw bad(`the server says agent ${response.agent_id} but the certificate is for ${agentId}`);
  }
  try {
    toPublicSigningKey(signingKeyPem);
  } catch (cause) {
    throw bad('the returned bundle signing key is not an ECDSA P-256 public key', cause);
  }
  return { agentId, trustDomain, certPem, caPem, signingKeyPem, expiresAt: new Date(cert.validTo) };
}

interface AgentFile {
  readonly name: string;
  readonly data: string;
  readonly mode: number;
}

/**
 * Writes the enrollment files. A new directory is assembled under a temporary name beside it
 * and renamed into place, so it appears complete or not at all. An existing directory
 * (re-enrollment keeps state.json, the generation floor) gets each file atomically, agent.json last.
 */
async function writeAgentDirectory(dir: string, files: readonly AgentFile[]): Promise<void> {
  const target = resolve(dir);
  const exists = await stat(target).then(
    (info) => {
      if (!info.isDirectory()) throw new AgentError({ code: 'AGENT_DIR_INVALID', message: `${dir} exists and is not a directory` });
      return true;
    },
    (err: unknown) => {
      if (isErrnoCode(err, 'ENOENT')) return false;
      throw err;
    },
  );
  if (exists) {
    for (const file of files) await writeFileAtomic(join(target, file.name), file.data, file.mode);
    return;
  }
  await mkdir(dirname(target), { recursive: true });
  const staging = await mkdtemp(join(dirname(target), `.${basename(target)}.enroll-`));
  try {
    for (const file of files) await writeFileAtomic(join(staging, file.name), file.data, file.mode);
    await chmod(staging, DIRECTORY_MODE);
    await rename(staging, target);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
  const parent = await open(dirname(target), 'r');
  try {
    await parent.sync();
  } finally {
    await parent.close();
  }
}

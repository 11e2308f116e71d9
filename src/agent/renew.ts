import { open, rename } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { AgentError } from '../domain/errors.js';
import { agentIdFromCertificate, CLOCK_SKEW_MS, generateRsaKeyPair, SECRET_FILE_MODE } from '../pki/index.js';
import { writeFileAtomic } from '../lib/index.js';
import { EnrollmentRpc, pinnedCredentials, type ServerAddress } from '../transport/index.js';
import { type AgentCredentials, certificateMatchesKey, loadAgentIdentity } from './dir.js';
import { certificationRequest } from './enroll.js';
import { PUBLIC_FILE_MODE } from './state.js';

/** Renew once this fraction of the certificate's lifetime has passed. */
export const RENEW_AT_FRACTION = 2 / 3;

/**
 * Milliseconds from `now` until the certificate should be renewed (0 when that time has passed).
 * The lifetime counts from issuance: the CA backdates notBefore by CLOCK_SKEW_MS, which for a
 * short-lived certificate (1 minute) would put the renewal time before issuance and make the
 * agent renew again and again.
 */
export function renewalDelay(identity: Pick<AgentCredentials, 'notBefore' | 'notAfter'>, now: Date): number {
  const end = identity.notAfter.getTime();
  const start = Math.min(identity.notBefore.getTime() + CLOCK_SKEW_MS, end);
  const lifetime = end - start;
  return Math.max(0, start + lifetime * RENEW_AT_FRACTION - now.getTime());
}

export interface RenewOptions {
  readonly server: ServerAddress;
  readonly timeoutMs?: number;
}

/**
 * Renews the agent certificate over mTLS with the current one: a new key (keys are not
 * reused across certificates), a CSR, Enrollment.Renew. The response must be a certificate
 * for the new key, from the CA the agent already trusts, for the same agent. The CA and
 * signing key the server returns are not adopted: trust anchors change only by enrolling.
 *
 * The pair is written as `.next` files and then renamed over the current pair (see
 * `loadAgentIdentity` for the crash recovery). Returns the reloaded identity.
 */
export async function renewCertificate(identity: AgentCredentials, options: RenewOptions): Promise<AgentCredentials> {
  const key = await generateRsaKeyPair();
  const rpc = new EnrollmentRpc(
    options.server,
    pinnedCredentials({ trust: { kind: 'ca', caPem: identity.caPem }, keyPem: identity.keyPem, certPem: identity.certPem, pins: identity.config.pins }),
    options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs },
  );
  let certPem: string;
  try {
    const response = await rpc.renew({ csr_pem: Buffer.from(certificationRequest(key, identity.agentId)) });
    certPem = Buffer.from(response.certificate_pem).toString('utf8');
  } finally {
    rpc.close();
  }
  const bad = (message: string, cause?: unknown): AgentError => new AgentError({ code: 'ENROLLMENT_INVALID', message, cause });
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (cause) {
    throw bad('the renewed certificate does not parse', cause);
  }
  const ca = new X509Certificate(identity.caPem);
  if (!certificateMatchesKey(certPem, key.privateKeyPem)) throw bad('the renewed certificate is not for the new key');
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) throw bad('the renewed certificate was not issued by the trusted CA');
  let agentId: string;
  try {
    agentId = agentIdFromCertificate(cert, identity.config.trustDomain);
  } catch (cause) {
    throw bad('the renewed certificate carries no agent identity', cause);
  }
  if (agentId !== identity.agentId) throw bad(`the renewed certificate is for ${agentId}, not ${identity.agentId}`);

  const { paths } = identity;
  await writeFileAtomic(paths.nextKey, key.privateKeyPem, SECRET_FILE_MODE);
  await writeFileAtomic(paths.nextCert, certPem, PUBLIC_FILE_MODE);
  await rename(paths.nextKey, paths.key);
  await rename(paths.nextCert, paths.cert);
  const dir = await open(paths.dir, 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
  return loadAgentIdentity(paths.dir);
}

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { certificationRequest } from '../../src/agent/enroll.js';
import { type RsaKeyPair, EnrollmentCa } from '../../src/pki/ca.js';
import { dataDirPaths } from '../../src/pki/data-dir.js';
import { aid } from '../../test/helpers/ids.js';
import type { SimAgentSpec } from './protocol.js';

/**
 * Issues one certificate per agent from the server's own CA — the real EnrollmentCa with its
 * profile (CN and SPIFFE URI SAN of the agent, clientAuth), signed with node:crypto (`signer:
 * 'node'`, ~1 ms) instead of forge (~20–30 ms), as an operator on the server's host could. The
 * server adopts each as the agent's current certificate on its first connection. Agents share
 * `keys` round-robin (RSA keygen is ~100 ms each); every agent's certificate is its own.
 * Writes `shards` JSON files of SimAgentSpec[] and returns their paths.
 */
export async function issueFleetCertificates(options: {
  readonly dataDir: string;
  readonly agentIds: readonly string[];
  readonly keys: readonly RsaKeyPair[];
  readonly outDir: string;
  readonly shards: number;
}): Promise<string[]> {
  const paths = dataDirPaths(options.dataDir);
  const ca = new EnrollmentCa({ certPem: readFileSync(paths.caCert, 'utf8'), keyPem: readFileSync(paths.caKey, 'utf8') }, { signer: 'node' });
  // The reference agent's own CSR, one per key.
  const csrs = options.keys.map((key) => certificationRequest(key));
  const shards: SimAgentSpec[][] = Array.from({ length: options.shards }, () => []);
  for (const [i, agentId] of options.agentIds.entries()) {
    const key = i % options.keys.length;
    const { certPem } = ca.issueAgentCertificate({ csrPem: csrs[key] as string, agentId: aid(agentId) });
    shards[i % options.shards]?.push({ agentId, certPem, key });
    if (i % 500 === 499) await new Promise((r) => setImmediate(r));
  }
  return shards.map((specs, i) => {
    const file = join(options.outDir, `agents-${i}.json`);
    writeFileSync(file, JSON.stringify(specs));
    return file;
  });
}

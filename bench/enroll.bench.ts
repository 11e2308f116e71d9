/**
 * Enrollment benchmark: `npm run bench:enroll [-- --count N]`.
 *
 * Agent certificates issued per second through the real CA code path — `EnrollmentCa.
 * issueAgentCertificate`: parse and verify the agent's CSR (the reference agent's own
 * `certificationRequest`), build the certificate with its profile (CN, SPIFFE URI SAN,
 * clientAuth, key identifiers), sign it — with each signer the CA offers:
 *
 *   forge  node-forge signs in pure JS
 *   node   forge builds the same TBSCertificate, node:crypto (OpenSSL) signs it (the default)
 *
 * Node 20's node:crypto cannot create X.509 certificates by itself (`X509Certificate` only
 * parses), so a "node:crypto-based" CA still needs an ASN.1 builder; `node` keeps forge for that
 * and moves only the RSA operation. Also measured alone: the RSA-2048 PKCS#1 v1.5 signature
 * (forge vs node:crypto) and the CSR check, so the split of the ~20–30 ms is visible.
 * Each CA runs in this one process on one core; the figures extrapolate to a 10,000-agent
 * enrollment storm in CPU-seconds.
 */
import { createPrivateKey, sign } from 'node:crypto';
import forge from 'node-forge';
import { certificationRequest } from '../src/agent/enroll.js';
import { createCa, EnrollmentCa, generateRsaKeyPair } from '../src/pki/ca.js';
import { aid } from '../test/helpers/ids.js';

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const value = i === -1 ? undefined : Number(process.argv[i + 1]);
  return value !== undefined && Number.isSafeInteger(value) && value > 0 ? value : fallback;
}

/** Mean ms per call over `count` calls, after `warmup` unmeasured ones. */
function measure(count: number, run: (i: number) => void, warmup = 5): number {
  for (let i = 0; i < warmup; i++) run(i);
  const start = performance.now();
  for (let i = 0; i < count; i++) run(i);
  return (performance.now() - start) / count;
}

async function main(): Promise<void> {
  const count = flag('count', 200);
  const material = await createCa({ trustDomain: 'example.org' });
  const agentKey = await generateRsaKeyPair();
  const csrPem = certificationRequest(agentKey);
  const cas = { forge: new EnrollmentCa(material, { signer: 'forge' }), node: new EnrollmentCa(material) };

  const perCert = {
    forge: measure(count, (i) => cas.forge.issueAgentCertificate({ csrPem, agentId: aid(`agent-${i}`) })),
    node: measure(count * 5, (i) => cas.node.issueAgentCertificate({ csrPem, agentId: aid(`agent-${i}`) })),
  };

  // The parts: the RSA signature alone, and the CSR check (parse + verify its self-signature).
  const forgeKey = forge.pki.privateKeyFromPem(material.keyPem);
  const nodeKey = createPrivateKey(material.keyPem);
  const tbs = Buffer.alloc(700, 7);
  const signForge = measure(count, () => {
    const md = forge.md.sha256.create();
    md.update(tbs.toString('binary'));
    forgeKey.sign(md);
  });
  const signNode = measure(count * 5, () => sign('sha256', tbs, nodeKey));
  const csrCheck = measure(count, () => {
    const csr = forge.pki.certificationRequestFromPem(csrPem);
    if (!csr.verify()) throw new Error('CSR does not verify');
  });

  const row = (label: string, ms: number): string => `${label.padEnd(60)}${ms.toFixed(2).padStart(8)} ms  ${Math.round(1000 / ms).toLocaleString('en').padStart(7)}/s  ${((ms * 10_000) / 1000).toFixed(1).padStart(6)} CPU-s per 10,000\n`;
  let out = `\nmeshcfg enrollment CA — RSA-2048, sha256WithRSAEncryption, one core (${process.version})\n\n`;
  out += `${''.padEnd(60)}${'per cert'.padStart(11)}  ${'rate'.padStart(9)}  10,000-agent storm\n`;
  out += row('issueAgentCertificate, signer forge (pure JS)', perCert.forge);
  out += row('issueAgentCertificate, signer node (default, same profile)', perCert.node);
  out += row('  of which: RSA-2048 signature, forge (pure JS)', signForge);
  out += row('  of which: RSA-2048 signature, node:crypto (OpenSSL)', signNode);
  out += row('  of which: CSR parse + self-signature check (forge)', csrCheck);
  out += `\nspeed-up of signer node over forge: ${(perCert.forge / perCert.node).toFixed(1)}×\n`;
  process.stdout.write(out);
}

await main();

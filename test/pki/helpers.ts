import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';

/** Whether the `openssl` CLI is on PATH, for interoperability checks that are skipped without it. */
export const hasOpenssl: boolean = spawnSync('openssl', ['version'], { encoding: 'utf8' }).status === 0;

export interface AgentKey {
  readonly privateKeyPem: string;
  readonly publicKeyPem: string;
}

export function rsaKey(bits = 2048): AgentKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/**
 * A real PKCS#10 request built and self-signed by forge. `commonName` and `uris`/`dnsNames` are
 * what the requester *asks* for — the CA under test must ignore them.
 */
export function forgeCsr(key: AgentKey, ask: { commonName?: string; uris?: string[]; dnsNames?: string[] } = {}): string {
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.publicKeyFromPem(key.publicKeyPem);
  csr.setSubject([{ name: 'commonName', value: ask.commonName ?? 'requested-name' }]);
  const altNames = [...(ask.uris ?? []).map((value) => ({ type: 6, value })), ...(ask.dnsNames ?? []).map((value) => ({ type: 2, value }))];
  if (altNames.length > 0) {
    csr.setAttributes([{ name: 'extensionRequest', extensions: [{ name: 'subjectAltName', altNames }] }]);
  }
  csr.sign(forge.pki.privateKeyFromPem(key.privateKeyPem), forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(csr);
}

/** A CSR made by the openssl CLI (a second, independent implementation). */
export function opensslCsr(dir: string, key: AgentKey, subject: string, san?: string): string {
  const keyPath = join(dir, `csr-key-${Math.random().toString(16).slice(2)}.pem`);
  writeFileSync(keyPath, key.privateKeyPem, { mode: 0o600 });
  const args = ['req', '-new', '-key', keyPath, '-subj', subject, '-sha256'];
  if (san !== undefined) args.push('-addext', `subjectAltName=${san}`);
  return execFileSync('openssl', args, { encoding: 'utf8' });
}

/** An ECDSA P-256 key and CSR from openssl: what an agent built on a different stack might send. */
export function opensslEcCsr(dir: string): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const keyPath = join(dir, `ec-key-${Math.random().toString(16).slice(2)}.pem`);
  writeFileSync(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  return execFileSync('openssl', ['req', '-new', '-key', keyPath, '-subj', '/CN=edge-1', '-sha256'], { encoding: 'utf8' });
}

/** A settable clock for code that takes `now: () => Date`. */
export function fixedClock(start: Date): { now: () => Date; set(at: Date): void; advance(ms: number): void } {
  let current = start;
  return {
    now: () => current,
    set: (at) => {
      current = at;
    },
    advance: (ms) => {
      current = new Date(current.getTime() + ms);
    },
  };
}

/** Milliseconds a synchronous or async step takes, for the timings reported in test output. */
export async function timed<T>(step: () => T | Promise<T>): Promise<{ value: T; ms: number }> {
  const start = process.hrtime.bigint();
  const value = await step();
  return { value, ms: Number(process.hrtime.bigint() - start) / 1e6 };
}

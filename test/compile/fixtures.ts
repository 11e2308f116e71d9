import { createHash } from 'node:crypto';

import type { RepoFile, VerifiedTree } from '../../src/domain/commit.js';
import { fakeVerifiedCommit } from '../helpers/verified.js';

/** Repository files as path → YAML text. */
export type Files = Readonly<Record<string, string>>;

/** The blob id git would give these bytes (`git hash-object`); the compiler treats it as an opaque content key. */
export function blobOid(bytes: Uint8Array): string {
  return createHash('sha1').update(`blob ${bytes.byteLength}\0`).update(bytes).digest('hex');
}

export function repoFiles(files: Files): RepoFile[] {
  return Object.entries(files).map(([path, text]) => {
    const bytes = new TextEncoder().encode(text);
    return { path, oid: blobOid(bytes), bytes };
  });
}

export function treeOf(files: Files, sha?: string): VerifiedTree {
  return { commit: fakeVerifiedCommit(sha), files: repoFiles(files), skipped: [] };
}

/** A minimal valid meshcfg.yaml. */
export const SETTINGS = 'trustDomain: mesh.example.org\n';

/** A valid agent document, as YAML, for the base layer. */
export const BASE_CONFIG = `mtls:
  mode: STRICT
  minTlsVersion: "1.2"
identity:
  trustDomain: mesh.example.org
`;

/** An inventory file from `id → labels`. */
export function inventory(agents: Readonly<Record<string, Readonly<Record<string, string>>>>): string {
  const lines = ['agents:'];
  for (const [id, labels] of Object.entries(agents)) {
    lines.push(`  - id: ${id}`);
    const entries = Object.entries(labels);
    if (entries.length === 0) lines.push('    labels: {}');
    else lines.push('    labels:', ...entries.map(([k, v]) => `      ${k}: ${JSON.stringify(v)}`));
  }
  return `${lines.join('\n')}\n`;
}

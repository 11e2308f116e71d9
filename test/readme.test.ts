import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ADMIN_HTTP_ERROR_CODES, AGENT_ACTION_REFUSALS } from '../src/admin/http.js';
import { ADMIN_TOKEN_ERROR_CODES } from '../src/admin/tokens.js';
import { ADMIN_CLIENT_ERROR_CODES } from '../src/cli/errors.js';
import { DEMO_ERROR_CODES } from '../src/demo/errors.js';
import {
  AGENT_ERROR_CODES,
  COMPILE_ERROR_CODES,
  PKI_ERROR_CODES,
  SIGNING_ERROR_CODES,
  SOURCE_ERROR_CODES,
  TRANSPORT_ERROR_CODES,
  TRUST_ERROR_CODES,
  USAGE_ERROR_CODES,
} from '../src/domain/errors.js';
import { STORE_ERROR_CODES } from '../src/fleet/errors.js';
import { ROLLOUT_ERROR_CODES } from '../src/rollout/errors.js';
import { ACTION_REFUSAL_CODES } from '../src/rollout/types.js';
import { SERVER_ERROR_CODES } from '../src/server/errors.js';
import { REFUSAL_CODES } from '../src/server/reconcile.js';
import { startServer, type RunningServer } from '../src/server/server.js';
import { configFor, makeFixture, silentLogger, type Fixture } from './server/helpers.js';

/** The README states facts the code can check; these tests keep them true. */
const README = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');

/** The lines of the section under `## title` (up to the next `## `). */
function section(title: string): string[] {
  const lines = README.split('\n');
  const start = lines.findIndex((line) => line === `## ${title}`);
  assert.notEqual(start, -1, `README has no "## ${title}" section`);
  const end = lines.findIndex((line, i) => i > start && line.startsWith('## '));
  return lines.slice(start + 1, end === -1 ? undefined : end);
}

/** Table rows of a section as cells, without the header and the separator row. */
function tableRows(lines: readonly string[]): string[][] {
  const rows = lines.filter((line) => line.startsWith('|')).map((line) => line.slice(1, -1).split('|').map((cell) => cell.trim()));
  return rows.filter((cells, i) => i > 0 && !cells.every((cell) => /^-+$/.test(cell)));
}

/** Every `BACKTICKED` identifier in a cell. */
const backticked = (cell: string, pattern: RegExp): string[] => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1] as string).filter((s) => pattern.test(s));

describe('README', () => {
  describe('the error-code catalogue (## Error codes)', () => {
    const CODE = /^[A-Z][A-Z0-9_]*$/;
    const documented = new Map<string, Set<string>>();
    for (const [layer, codes] of tableRows(section('Error codes'))) {
      const set = documented.get(layer as string) ?? new Set<string>();
      for (const code of backticked(codes as string, CODE)) set.add(code);
      documented.set(layer as string, set);
    }

    /** The README's layer column → the code's error-code unions (exported as const arrays). */
    const generic = new Set<string>([...TRUST_ERROR_CODES, ...SOURCE_ERROR_CODES, ...COMPILE_ERROR_CODES]);
    const inCode: ReadonlyMap<string, readonly string[]> = new Map<string, readonly string[]>([
      ['trust', TRUST_ERROR_CODES],
      ['source', SOURCE_ERROR_CODES],
      ['compile', COMPILE_ERROR_CODES],
      ['signing', SIGNING_ERROR_CODES],
      ['pki', PKI_ERROR_CODES],
      ['store', STORE_ERROR_CODES],
      ['rollout', [...ROLLOUT_ERROR_CODES, ...ACTION_REFUSAL_CODES]],
      ['server', SERVER_ERROR_CODES],
      // A refused commit carries a trust, source or compile code, or one of its own.
      ['refusal', REFUSAL_CODES.filter((code) => !generic.has(code))],
      ['transport', TRANSPORT_ERROR_CODES],
      ['agent', AGENT_ERROR_CODES],
      ['cli', [...USAGE_ERROR_CODES, ...ADMIN_CLIENT_ERROR_CODES]],
      ['admin', [...ADMIN_HTTP_ERROR_CODES, ...AGENT_ACTION_REFUSALS, ...ADMIN_TOKEN_ERROR_CODES]],
      // INTERRUPTED is internal: Ctrl-C during set-up ends in exit 0, never printed as a code.
      ['demo', DEMO_ERROR_CODES.filter((code) => code !== 'INTERRUPTED')],
    ]);

    it('has a row for every layer the code has, and no other layer', () => {
      assert.deepEqual([...documented.keys()].filter((layer) => !inCode.has(layer)), [], 'README layers the test does not know: map them in test/readme.test.ts');
      assert.deepEqual([...inCode.keys()].filter((layer) => !documented.has(layer)), [], 'layers without a row in the README');
    });

    it('lists every code of the code’s error-code unions, under its layer', () => {
      const missing = [...inCode].flatMap(([layer, codes]) => codes.filter((code) => !documented.get(layer)?.has(code)).map((code) => `${layer} ${code}`));
      assert.deepEqual(missing, [], `codes missing from the README's error-code table (layer code): ${missing.join(', ')}`);
    });

    it('lists no code the code does not have', () => {
      const unknown = [...documented].flatMap(([layer, codes]) => [...codes].filter((code) => !inCode.get(layer)?.includes(code)).map((code) => `${layer} ${code}`));
      assert.deepEqual(unknown, [], `codes in the README's error-code table that no error-code union has (layer code): ${unknown.join(', ')}`);
    });
  });

  describe('the data directory (## Enrollment PKI)', () => {
    let fixture: Fixture;
    let server: RunningServer | undefined;
    before(async () => {
      fixture = makeFixture();
      server = await startServer(configFor(fixture), { logger: silentLogger });
    });
    after(async () => {
      await server?.close(0);
      fixture?.cleanup();
    });

    it('lists exactly the files a first start of the server creates there', () => {
      const documented = tableRows(section('Enrollment PKI')).flatMap(([files]) => backticked(files as string, /^[\w.-]+$/)).sort();
      // SQLite's write-ahead log and shared-memory files come and go with fleet.db.
      const created = readdirSync(fixture.dataDir).filter((name) => !/-(wal|shm)$/.test(name)).sort();
      assert.deepEqual(documented, created);
    });
  });
});

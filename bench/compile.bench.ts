/**
 * Compile benchmark: `npm run bench:compile`.
 *
 * A synthetic but realistic fleet — 10,000 agents labelled zone/env/service/ring across 20
 * inventory files, 3 base files, 500 overlays selecting subsets (by service, zone, env, ring
 * and combinations, with string and any-of selectors), 300 agent files and a baseline — and
 * four scenarios measured in the same run:
 *
 *   baseline  `new Compiler({ cache: false })`: every agent evaluated on its own, nothing shared
 *   cold      a fresh `Compiler` (caches empty; agents with equal labels/layers still share work)
 *   warm      the same tree again on the same `Compiler`
 *   touched   the same `Compiler`, a commit that changes one service overlay's config
 *
 * Each scenario prints the median of several runs. The generated fleet passes every schema
 * and policy check, as a releasable commit would.
 */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';

import { Compiler } from '../src/compile/index.js';
import { parseYaml } from '../src/compile/yaml.js';
import type { Compilation } from '../src/compile/index.js';
import type { RepoFile, VerifiedCommit, VerifiedTree } from '../src/domain/commit.js';

import { generateFleetFiles } from './fixtures/fleet-files.js';

const AGENTS = 10_000;
const AGENT_FILES = 300;
const INVENTORY_FILES = 20;

function toTree(files: ReadonlyMap<string, string>, sha: string): VerifiedTree {
  const repoFiles: RepoFile[] = [];
  for (const [path, text] of files) {
    const bytes = new TextEncoder().encode(text);
    const oid = createHash('sha1').update(`blob ${bytes.byteLength}\0`).update(bytes).digest('hex');
    repoFiles.push({ path, oid, bytes });
  }
  // Benchmark-only stand-in for the trust gate's output, as in the tests.
  const commit = { sha, tree: sha, parents: [], message: 'bench', committedAt: new Date(0), trust: { kind: 'unchecked', reason: 'benchmark' } };
  return { commit: commit as unknown as VerifiedCommit, files: repoFiles, skipped: [] };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function time(run: () => Compilation): { ms: number; result: Compilation } {
  const start = performance.now();
  const result = run();
  return { ms: performance.now() - start, result };
}

function main(): void {
  const files = generateFleetFiles();
  const only = process.env['BENCH_ONLY'];
  if (only === 'cold' || only === 'warm') {
    // For profiling one scenario: `BENCH_ONLY=warm node --cpu-prof --import tsx bench/compile.bench.ts`.
    const tree = toTree(files, 'a'.repeat(40));
    const shared = new Compiler();
    for (let i = 0; i < (only === 'cold' ? 3 : 30); i++) {
      const compiler = only === 'cold' ? new Compiler() : shared;
      console.log(`${only} ${time(() => compiler.compile(tree)).ms.toFixed(1)} ms`);
    }
    globalThis.gc?.();
    console.log(`heap used ${(process.memoryUsage().heapUsed / 1024 / 1024).toFixed(0)} MiB`);
    return;
  }
  const tree = toTree(files, 'a'.repeat(40));
  const touchedPath = [...files.keys()].find((path) => path.startsWith('config/overlays/') && path.includes('svc-svc-07'));
  if (touchedPath === undefined) throw new Error('no overlay to touch');
  /** Variant k of the tree: one service overlay's route timeout changed (a real config change every run). */
  const touchedTree = (k: number): VerifiedTree =>
    toTree(new Map(files).set(touchedPath, (files.get(touchedPath) as string).replace('timeoutMs: 1000', `timeoutMs: ${1200 + k}`)), k.toString(16).padStart(40, '0'));

  // Sanity: the fleet is releasable, and the touched overlay really changes something.
  const check = new Compiler().compile(tree);
  if (check.violations.length > 0) throw new Error(`generated fleet has violations: ${JSON.stringify(check.violations.slice(0, 3))}`);
  const groups = new Set(check.agents.map((a) => JSON.stringify(Object.entries(a.labels).sort()))).size;
  const overlayCount = [...files.keys()].filter((p) => p.startsWith('config/overlays/')).length;

  const rows: Array<{ name: string; ms: number; runs: number; note: string }> = [];

  const BASELINE_RUNS = 3;
  const baseline = Array.from({ length: BASELINE_RUNS }, () => time(() => new Compiler({ cache: false }).compile(tree)).ms);
  rows.push({ name: 'baseline: no caches (cache: false)', ms: median(baseline), runs: BASELINE_RUNS, note: 'each agent merged and checked alone' });

  const RUNS = 7;
  const cold = Array.from({ length: RUNS }, () => time(() => new Compiler().compile(tree)).ms);
  // What a cold compile cannot avoid: parsing every file once (the parse cache is empty).
  const limits = { maxFileBytes: 1024 * 1024, maxAliasCount: 100, maxDepth: 64 };
  const parseOnly = median(
    Array.from({ length: 5 }, () => {
      const start = performance.now();
      for (const file of tree.files) parseYaml(file.bytes, limits);
      return performance.now() - start;
    }),
  );

  rows.push({
    name: 'cold: fresh Compiler',
    ms: median(cold),
    runs: RUNS,
    note: `${groups} distinct label sets; YAML parsing alone takes ${parseOnly.toFixed(0)} ms`,
  });

  const compiler = new Compiler();
  compiler.compile(tree);
  const warm = Array.from({ length: RUNS }, () => time(() => compiler.compile(tree)).ms);
  rows.push({ name: 'warm: same tree again', ms: median(warm), runs: RUNS, note: 'every lookup a hit' });

  const touched: number[] = [];
  let affected = 0;
  let recompiled = 0;
  for (let k = 0; k < RUNS; k++) {
    const next = touchedTree(k);
    compiler.compile(tree);
    compiler.resetStats();
    const { ms, result } = time(() => compiler.compile(next));
    touched.push(ms);
    affected = result.agents.filter((a) => a.layers.includes(touchedPath)).length;
    recompiled = compiler.stats().bundle.misses;
  }
  rows.push({ name: 'warm: one overlay touched', ms: median(touched), runs: RUNS, note: `${affected} agents affected, ${recompiled} bundles re-merged` });

  const header = `meshcfg compile — ${AGENTS.toLocaleString('en')} agents, ${overlayCount} overlays, ${AGENT_FILES} agent files, ${INVENTORY_FILES} inventory files (${process.version}, ${process.platform}/${process.arch})`;
  console.log(header);
  console.log('');
  const pad = (s: string, n: number): string => s.padEnd(n);
  const padl = (s: string, n: number): string => s.padStart(n);
  console.log(`${pad('scenario', 38)}${padl('median ms', 11)}${padl('agents/s', 12)}${padl('runs', 6)}  ${'vs baseline'.padEnd(12)} note`);
  const baselineMs = rows[0]?.ms ?? 1;
  for (const row of rows) {
    const perSecond = Math.round((AGENTS / row.ms) * 1000).toLocaleString('en');
    const speedup = `${(baselineMs / row.ms).toFixed(1)}×`;
    console.log(`${pad(row.name, 38)}${padl(row.ms.toFixed(1), 11)}${padl(perSecond, 12)}${padl(String(row.runs), 6)}  ${speedup.padEnd(12)} ${row.note}`);
  }
}

main();

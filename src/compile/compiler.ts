import type { VerifiedTree } from '../domain/commit.js';
import type { AgentId, JsonObject, Labels, Violation } from '../domain/types.js';
import { makeBundle } from './bundle.js';
import { CompileCaches, contentKey, type CacheStats, type Memo } from './cache.js';
import { canonicalJson, deepFreeze } from '../lib/index.js';
import { Checker, type AgentValidator, type RuleFinding } from './check.js';
import { mergeLayer, mergeLayers } from './merge.js';
import { loadRepository, type FileModel, type Layer, type Repository, type RepositoryReader } from './model/repository.js';
import type { SettingsValidator } from './model/settings.js';
import { builtinRules } from './policy/index.js';
import type { Provenance } from './provenance.js';
import { validateAgentDocument, validateSettingsDocument } from './schema.js';
import { groupAgents, selectOverlays, type LabelGroup } from './select.js';
import { assignWave, bucketOf } from './waves.js';
import type { ParsedYaml } from './yaml.js';
import type { CompiledAgent, CompiledBundle, Compilation, PolicyRule, PolicySettings, PolicySubjectId, WaveSpec } from './types.js';

export interface CompilerOptions {
  /**
   * `false` turns every cache off and evaluates each agent on its own (no sharing between
   * agents with equal labels or layers): the naive baseline the benchmark compares against.
   * Output is identical either way. Default `true`.
   */
  readonly cache?: boolean;
  /**
   * Entries per cache (LRU). Default 50,000: a fleet of 10,000 agents needs about one entry
   * per distinct layer list and per file, so several commits stay warm. Size it above the
   * fleet's file count, or every compile thrashes.
   */
  readonly cacheEntries?: number;
  /** Repository files larger than this are `parse` violations. Default 1 MiB. */
  readonly maxFileBytes?: number;
  /** YAML alias expansion budget per file (the `yaml` package's `maxAliasCount`). Default 100. */
  readonly maxAliasCount?: number;
  /** Deepest nesting of maps and lists in a repository file. Default 64; values above 256 act as 256. */
  readonly maxNestingDepth?: number;
  /**
   * Policy rules. Default: the built-in rules. A rule's findings must not depend on the agent
   * id, since they are cached per document and label set (see `Checker`).
   */
  readonly rules?: readonly PolicyRule[];
  /** Agent document schema. Default: the shipped JSON Schema. */
  readonly validateAgentDocument?: AgentValidator;
  /** `meshcfg.yaml` schema. Default: the shipped JSON Schema. */
  readonly validateSettingsDocument?: SettingsValidator;
}

/**
 * Policy settings used when `meshcfg.yaml` is invalid: no secure zones and no destination
 * allowlist, so every rule that does not need settings still runs and reports. The commit is
 * blocked by the settings violations anyway.
 */
/** The policy subject the baseline is checked as (not an inventory id: ids are DNS labels). */
const BASELINE_SUBJECT: PolicySubjectId = '(baseline)';

const NO_POLICY: PolicySettings = Object.freeze({ secureZones: Object.freeze([]) });

/** State of one `compile` call, threaded through its steps. */
interface CompileRun {
  readonly repo: Repository;
  readonly policy: PolicySettings;
  readonly policyKey: string;
  readonly waves: readonly WaveSpec[];
  /** The base layers merged; computed on first need (a warm compile may never need it). */
  readonly base: () => JsonObject;
  readonly agents: CompiledAgent[];
  readonly violations: Map<AgentId, Violation[]>;
}

function lazy<T>(compute: () => T): () => T {
  let value: { readonly current: T } | undefined;
  return () => (value ??= { current: compute() }).current;
}

/**
 * Content key of the policy settings; part of every policy-findings cache key. The whole
 * object, so a setting added later can never be missing from it (a rule reading a setting
 * the key ignored would be served findings computed under another value).
 */
function policyKeyOf(policy: PolicySettings): string {
  return contentKey([canonicalJson(JSON.parse(JSON.stringify(policy)) as JsonObject)]);
}

/**
 * Compiles a verified commit into one bundle per agent.
 *
 * Pure: no I/O, no clock; the same tree gives the same compilation (and the same bytes and
 * digests) on every replica and with any cache state. A `Compiler` holds content-keyed caches
 * and is meant to live as long as the server, compiling commit after commit, so a commit that
 * touches one overlay re-merges and re-checks only the agents whose layers changed. `compile`
 * is synchronous, so one instance can serve every caller (`plan --base` compiles both commits
 * with one, sharing everything the two have in common).
 *
 * Per agent: layers = base files + the overlays its labels select + its own agent file; merged;
 * sealed into a canonical bundle; then checked by the schema and the policy rules. Violations
 * name rule, agent, file, JSON pointer and line.
 */
export class Compiler {
  private readonly options: Required<CompilerOptions>;
  private readonly caches: CompileCaches;
  private readonly reader: RepositoryReader;
  private readonly selection: Memo<Uint32Array>;
  private readonly prefixes: Memo<JsonObject>;
  private readonly bundles: Memo<CompiledBundle>;
  private readonly buckets: Memo<number>;
  private readonly checker: Checker;

  constructor(options: CompilerOptions = {}) {
    this.options = {
      cache: options.cache ?? true,
      cacheEntries: options.cacheEntries ?? 50_000,
      maxFileBytes: options.maxFileBytes ?? 1024 * 1024,
      maxAliasCount: options.maxAliasCount ?? 100,
      maxNestingDepth: options.maxNestingDepth ?? 64,
      rules: options.rules ?? builtinRules,
      validateAgentDocument: options.validateAgentDocument ?? validateAgentDocument,
      validateSettingsDocument: options.validateSettingsDocument ?? validateSettingsDocument,
    };
    const caches = new CompileCaches({ enabled: this.options.cache, maxEntries: this.options.cacheEntries });
    this.caches = caches;
    this.reader = {
      files: caches.memo<FileModel>('file'),
      parse: caches.memo<ParsedYaml>('parse'),
      limits: {
        maxFileBytes: this.options.maxFileBytes,
        maxAliasCount: this.options.maxAliasCount,
        maxDepth: this.options.maxNestingDepth,
      },
      validateSettings: this.options.validateSettingsDocument,
    };
    this.selection = caches.memo<Uint32Array>('selection');
    this.prefixes = caches.memo<JsonObject>('prefix');
    this.bundles = caches.memo<CompiledBundle>('bundle');
    this.buckets = caches.memo<number>('bucket');
    this.checker = new Checker({
      validate: this.options.validateAgentDocument,
      rules: this.options.rules,
      schema: caches.memo<readonly RuleFinding[]>('schema'),
      policy: caches.memo<readonly RuleFinding[]>('policy'),
      provenance: caches.memo<Provenance<Layer>>('provenance'),
      location: caches.memo<number>('location'),
    });
  }

  /**
   * @throws CompileError `INVALID_REPOSITORY` when the tree is not a meshcfg repository
   *   (no `meshcfg.yaml`). Every other problem is a violation in the result.
   */
  compile(tree: VerifiedTree): Compilation {
    const repo = loadRepository(tree, this.reader);
    const settings = repo.settings;
    const policy = settings?.policy ?? NO_POLICY;
    const run: CompileRun = {
      repo,
      policy,
      policyKey: policyKeyOf(policy),
      waves: settings?.rollout.waves ?? [],
      base: lazy(() => deepFreeze(mergeLayers(repo.base.map((layer) => layer.document)))),
      agents: [],
      violations: new Map(),
    };

    const groups = groupAgents(repo.agents, this.options.cache);
    const selected = selectOverlays(repo.overlays, groups, repo.inventoryKey, this.selection);
    groups.forEach((group, index) => this.compileGroup(run, group, selected[index] ?? []));

    const agents = run.agents.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const violations: Violation[] = [...repo.violations];
    for (const agent of agents) violations.push(...(run.violations.get(agent.id) ?? []));
    const baseline = this.compileBaseline(repo, run, violations);

    return Object.freeze({
      commit: tree.commit,
      settings,
      agents: Object.freeze(agents),
      baseline,
      violations: Object.freeze(violations),
      skipped: tree.skipped,
    });
  }

  /** Lookups per cache since construction or the last `resetStats()`. */
  stats(): CacheStats {
    return this.caches.stats();
  }

  resetStats(): void {
    this.caches.resetStats();
  }

  /** Agents with equal labels share their overlays, so the merge up to their own files is done (and looked up) once. */
  private compileGroup(run: CompileRun, group: LabelGroup, overlays: readonly Layer[]): void {
    const groupLayers: readonly Layer[] = [...run.repo.base, ...overlays];
    const prefixKey = contentKey(groupLayers.map((layer) => layer.key));
    const prefix = (): JsonObject =>
      this.prefixes.get(prefixKey, () => deepFreeze(overlays.reduce((doc, layer) => mergeLayer(doc, layer.document), run.base())));
    const groupPaths = Object.freeze(groupLayers.map((layer) => layer.file));

    for (const agent of group.agents) {
      const own = run.repo.agentLayers.get(agent.id);
      const bundle = this.bundles.get(own === undefined ? prefixKey : `${prefixKey}+${own.key}`, () =>
        makeBundle(own === undefined ? prefix() : mergeLayer(prefix(), own.document)),
      );
      const schema = this.checker.schemaFindings(bundle);
      const rules = this.checker.policyFindings(bundle, agent, run.policy, run.policyKey);
      if (schema.length + rules.length > 0) {
        const layers = own === undefined ? groupLayers : [...groupLayers, own];
        run.violations.set(agent.id, this.checker.attribute([...schema, ...rules], layers, agent.id));
      }
      run.agents.push(
        Object.freeze({
          id: agent.id,
          labels: agent.labels,
          wave: assignWave(run.waves, agent.labels, () => this.buckets.get(agent.id, () => bucketOf(agent.id))),
          bundle,
          layers: own === undefined ? groupPaths : Object.freeze([...groupPaths, own.file]),
        }),
      );
    }
  }

  /**
   * The baseline bundle quarantined agents receive: `baseline/*.yaml` merged in file-name
   * order, checked by the schema and every policy rule. Any agent may be quarantined, those
   * in secure zones included, so the rules see the baseline as an agent of the first secure
   * zone (when there is one): a baseline that is not STRICT is refused like any other
   * plaintext config. `null` when the repository has no baseline.
   */
  private compileBaseline(repo: Repository, run: CompileRun, violations: Violation[]): CompiledBundle | null {
    if (repo.baseline.length === 0) return null;
    // The same key space as agents' layer lists: equal layers merge to an equal bundle.
    const key = contentKey(repo.baseline.map((layer) => layer.key));
    const bundle = this.bundles.get(key, () => makeBundle(mergeLayers(repo.baseline.map((layer) => layer.document))));
    const zone = run.policy.secureZones[0];
    const labels: Labels = zone === undefined ? Object.freeze({}) : Object.freeze({ zone });
    const subject = { id: BASELINE_SUBJECT, labels, labelKey: canonicalJson(labels) };
    const findings = [...this.checker.schemaFindings(bundle), ...this.checker.policyFindings(bundle, subject, run.policy, run.policyKey)];
    violations.push(...this.checker.attribute(findings, repo.baseline, undefined));
    return bundle;
  }
}

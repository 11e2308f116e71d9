import type { RepoFile, VerifiedTree } from '../../domain/commit.js';
import { CompileError } from '../../domain/errors.js';
import type { AgentId, JsonObject, Violation } from '../../domain/types.js';
import { contentKey, type Memo } from '../cache.js';
import { assertNever, canonicalJson } from '../../lib/index.js';
import { appendPointer } from '../pointer.js';
import type { MeshcfgSettings, Selector } from '../types.js';
import { lineOfPointer, parseYaml, type ParsedYaml, type YamlLimits } from '../yaml.js';
import { isAgentId, readInventory, type InventoryEntry } from './inventory.js';
import { compareOrdinal, classifyPath, SETTINGS_PATH, type FileRole } from './layout.js';
import { readDocumentLayer, readOverlay } from './layers.js';
import type { ReadResult, StructuralProblem } from './read.js';
import { readSettings, type SettingsValidator } from './settings.js';

/**
 * The config repository at one commit, read into the model the compiler works on.
 *
 * What is a violation and what is an error:
 * - `CompileError('INVALID_REPOSITORY')` only when there is nothing meaningful to compile:
 *   `meshcfg.yaml` is missing, i.e. this is not a meshcfg config repository (a wrong `--repo`
 *   or `--rev`). `meshcfg plan` maps that to "refused" (exit 2).
 * - Everything else is a violation, so one `plan` shows every problem at once: YAML syntax
 *   (`parse`, with line), files of the wrong shape, bad or duplicate agent ids, agent files
 *   for agents not in the inventory, misplaced files (`schema`, with file and line). Files
 *   with problems are left out of the compile: an invalid overlay is skipped, a bad inventory
 *   entry is dropped, a duplicate id keeps its first definition (in path order), and invalid
 *   settings compile with no policy settings and the implicit wave (see `compiler.ts`).
 *   Any violation blocks the commit, so these partial results never reach agents.
 */

/** One layer of an agent's document: a document and where it came from. */
export interface Layer {
  /** Repository path. */
  readonly file: string;
  /** Blob id of the file (its bytes' identity, unlike `key`). */
  readonly oid: string;
  /**
   * Content key of `document` (a hash of its canonical JSON): equal keys ⇔ equal layers,
   * whatever the file's path, comments or formatting. Merged documents are cached by the
   * ordered list of these keys.
   */
  readonly key: string;
  readonly document: JsonObject;
  /** Where `document` sits inside the file (`/config` for overlays), to locate lines. */
  readonly pointerInFile: string;
  /** The file's bytes, kept for locating lines on the error path only. */
  readonly bytes: Uint8Array;
}

export interface OverlayLayer extends Layer {
  readonly selector: Selector;
  readonly selectorKey: string;
}

export interface InventoryAgent extends InventoryEntry {
  /** The inventory file that declares the agent. */
  readonly file: string;
}

export interface Repository {
  /** `null` when meshcfg.yaml is invalid (its violations say why). */
  readonly settings: MeshcfgSettings | null;
  /** Valid, de-duplicated agents in inventory order (files by path, entries in file order). */
  readonly agents: readonly InventoryAgent[];
  /** Content key of the inventory files: agent grouping and overlay selections derive from it. */
  readonly inventoryKey: string;
  /** In file-name order. */
  readonly base: readonly Layer[];
  /** In file-name order. */
  readonly overlays: readonly OverlayLayer[];
  readonly agentLayers: ReadonlyMap<AgentId, Layer>;
  /** In file-name order. */
  readonly baseline: readonly Layer[];
  /** Repository-level violations, sorted by file and line. */
  readonly violations: readonly Violation[];
}

/** One file read as its role; cached by path and blob id (violations name the path). */
export type FileModel =
  | { readonly kind: 'settings'; readonly settings: MeshcfgSettings | null; readonly violations: readonly Violation[] }
  | { readonly kind: 'inventory'; readonly agents: readonly InventoryEntry[]; readonly violations: readonly Violation[] }
  | { readonly kind: 'layer'; readonly layer: Layer | null; readonly violations: readonly Violation[] }
  | { readonly kind: 'overlay'; readonly overlay: OverlayLayer | null; readonly violations: readonly Violation[] };

export interface RepositoryReader {
  readonly files: Memo<FileModel>;
  readonly parse: Memo<ParsedYaml>;
  readonly limits: YamlLimits;
  readonly validateSettings: SettingsValidator;
}

type ReadRole = Exclude<FileRole, { kind: 'misplaced' } | { kind: 'ignored' }>;

export function loadRepository(tree: VerifiedTree, reader: RepositoryReader): Repository {
  const files = [...tree.files].sort((a, b) => compareOrdinal(a.path, b.path));
  const violations: Violation[] = [];
  let settings: MeshcfgSettings | null | undefined;
  const inventory: Array<{ file: RepoFile; agents: readonly InventoryEntry[] }> = [];
  const base: Layer[] = [];
  const overlays: OverlayLayer[] = [];
  const baseline: Layer[] = [];
  const agentFiles: Array<{ file: RepoFile; agentId: string; layer: Layer }> = [];

  for (const file of files) {
    const role = classifyPath(file.path);
    switch (role.kind) {
      case 'ignored':
        continue;
      case 'misplaced':
        violations.push({ rule: 'schema', file: file.path, message: `not read: ${role.reason}` });
        continue;
      default:
        break;
    }
    const model = reader.files.get(`${file.path}\u0000${file.oid}`, () => readFile(file, role, reader));
    violations.push(...model.violations);
    switch (model.kind) {
      case 'settings':
        settings = model.settings;
        break;
      case 'inventory':
        inventory.push({ file, agents: model.agents });
        break;
      case 'overlay':
        if (model.overlay !== null) overlays.push(model.overlay);
        break;
      case 'layer': {
        if (model.layer === null) break;
        if (role.kind === 'base') base.push(model.layer);
        else if (role.kind === 'baseline') baseline.push(model.layer);
        else if (role.kind === 'agent') agentFiles.push({ file, agentId: role.agentId, layer: model.layer });
        break;
      }
      default:
        assertNever(model);
    }
  }

  if (settings === undefined) {
    throw new CompileError({
      code: 'INVALID_REPOSITORY',
      message: `${SETTINGS_PATH} not found at the repository root: this is not a meshcfg config repository`,
    });
  }

  const agents = dedupeAgents(inventory, violations);
  const known = new Set(agents.map((agent) => agent.id));
  const agentLayers = new Map<AgentId, Layer>();
  for (const { file, agentId, layer } of agentFiles) {
    if (isAgentId(agentId) && known.has(agentId)) {
      agentLayers.set(agentId, layer);
    } else {
      const why = isAgentId(agentId)
        ? `no agent ${JSON.stringify(agentId)} in the inventory`
        : `${JSON.stringify(agentId)} is not a valid agent id`;
      violations.push({ rule: 'schema', file: file.path, message: `agent file for an unknown agent: ${why}` });
    }
  }

  const inventoryKey = contentKey(inventory.map(({ file }) => `${file.path}\u0000${file.oid}`));
  violations.sort((a, b) => compareOrdinal(a.file ?? '', b.file ?? '') || (a.line ?? 0) - (b.line ?? 0));
  return Object.freeze({
    settings,
    agents: Object.freeze(agents),
    inventoryKey,
    base: Object.freeze(base),
    overlays: Object.freeze(overlays),
    agentLayers,
    baseline: Object.freeze(baseline),
    violations: Object.freeze(violations),
  });
}

/** First definition wins (files in path order); later ones are violations pointing at both places. */
function dedupeAgents(
  inventory: ReadonlyArray<{ file: RepoFile; agents: readonly InventoryEntry[] }>,
  violations: Violation[],
): InventoryAgent[] {
  const seen = new Map<AgentId, InventoryAgent>();
  for (const { file, agents } of inventory) {
    for (const entry of agents) {
      const first = seen.get(entry.id);
      if (first === undefined) {
        seen.set(entry.id, Object.freeze({ ...entry, file: file.path }));
        continue;
      }
      const path = appendPointer(entry.pointer, 'id');
      const line = lineOfPointer(file.bytes, path);
      violations.push({
        rule: 'schema',
        file: file.path,
        path,
        ...(line === undefined ? {} : { line }),
        message: `duplicate agent id ${JSON.stringify(entry.id)} (first defined in ${first.file} at ${first.pointer})`,
      });
    }
  }
  return [...seen.values()];
}

function readFile(file: RepoFile, role: ReadRole, reader: RepositoryReader): FileModel {
  const parsed = reader.parse.get(file.oid, () => parseYaml(file.bytes, reader.limits));
  if (parsed.kind === 'invalid') {
    const violations = parsed.problems.map(
      (problem): Violation => Object.freeze({ rule: 'parse', file: file.path, ...problem }),
    );
    return emptyModel(role, Object.freeze(violations));
  }
  const doc = parsed.value;
  switch (role.kind) {
    case 'settings': {
      const result = readSettings(doc, reader.validateSettings);
      return { kind: 'settings', settings: valueOf(result), violations: problemsOf(result, file) };
    }
    case 'inventory': {
      const { agents, problems } = readInventory(doc);
      return { kind: 'inventory', agents, violations: toViolations(problems, file) };
    }
    case 'overlay': {
      const result = readOverlay(doc);
      const overlay: OverlayLayer | null =
        result.kind === 'ok'
          ? Object.freeze({
              ...layerOf(file, result.value.config, '/config'),
              selector: result.value.selector,
              selectorKey: result.value.selectorKey,
            })
          : null;
      return { kind: 'overlay', overlay, violations: problemsOf(result, file) };
    }
    case 'base':
    case 'agent':
    case 'baseline': {
      const result = readDocumentLayer(doc);
      const layer = result.kind === 'ok' ? Object.freeze(layerOf(file, result.value, '')) : null;
      return { kind: 'layer', layer, violations: problemsOf(result, file) };
    }
    default:
      return assertNever(role);
  }
}

function emptyModel(role: ReadRole, violations: readonly Violation[]): FileModel {
  switch (role.kind) {
    case 'settings':
      return { kind: 'settings', settings: null, violations };
    case 'inventory':
      return { kind: 'inventory', agents: [], violations };
    case 'overlay':
      return { kind: 'overlay', overlay: null, violations };
    case 'base':
    case 'agent':
    case 'baseline':
      return { kind: 'layer', layer: null, violations };
    default:
      return assertNever(role);
  }
}

function layerOf(file: RepoFile, document: JsonObject, pointerInFile: string): Layer {
  return { file: file.path, oid: file.oid, key: contentKey([canonicalJson(document)]), document, pointerInFile, bytes: file.bytes };
}

function valueOf<T>(result: ReadResult<T>): T | null {
  return result.kind === 'ok' ? result.value : null;
}

function problemsOf<T>(result: ReadResult<T>, file: RepoFile): readonly Violation[] {
  return result.kind === 'ok' ? [] : toViolations(result.problems, file);
}

function toViolations(problems: readonly StructuralProblem[], file: RepoFile): readonly Violation[] {
  return Object.freeze(
    problems.map((problem): Violation => {
      // Re-parses the file, but only for files that have problems (and the result is cached with the model).
      const line = lineOfPointer(file.bytes, problem.path);
      return Object.freeze({
        rule: 'schema',
        file: file.path,
        path: problem.path,
        ...(line === undefined ? {} : { line }),
        message: problem.message,
      });
    }),
  );
}

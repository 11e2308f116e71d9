import type { JsonObject, JsonValue } from '../../domain/types.js';
import { isJsonObject } from '../merge.js';
import { appendPointer } from '../pointer.js';
import { readSelector } from '../selector.js';
import type { Finding, MeshcfgSettings, PolicySettings, WaveSpec } from '../types.js';
import { describeValue, invalid, ok, type ReadResult, type StructuralProblem } from './read.js';

/** Validates a `meshcfg.yaml` document's shape (the shipped JSON Schema plus cross-field rules). */
export type SettingsValidator = (doc: JsonValue) => readonly Finding[];

/**
 * Reads `meshcfg.yaml`. The schema validator decides what is valid; this turns a valid
 * document into `MeshcfgSettings`, re-checking only what the compiler itself relies on so a
 * lax validator cannot make it misbehave. Rollout keys other than `waves` are passed through
 * raw for the rollout layer.
 */
export function readSettings(doc: JsonValue, validate: SettingsValidator): ReadResult<MeshcfgSettings> {
  if (!isJsonObject(doc)) return invalid([{ path: '', message: `meshcfg.yaml must be a map with \`trustDomain\`, not ${describeValue(doc)}` }]);
  const findings = validate(doc);
  if (findings.length > 0) return invalid(findings.map(({ path, message }) => ({ path, message })));

  const problems: StructuralProblem[] = [];
  const trustDomain = doc['trustDomain'];
  if (typeof trustDomain !== 'string') problems.push({ path: '/trustDomain', message: '`trustDomain` must be a string' });

  const policy = readPolicy(doc['policy'], problems);
  const rolloutDoc = doc['rollout'];
  const rollout: JsonObject = isJsonObject(rolloutDoc) ? rolloutDoc : {};
  const waves = readWaves(rollout['waves'], problems);

  if (problems.length > 0 || typeof trustDomain !== 'string') return invalid(problems);
  return ok(Object.freeze({ trustDomain, policy, rollout: Object.freeze({ ...rollout, waves }) }));
}

function readPolicy(value: JsonValue | undefined, problems: StructuralProblem[]): PolicySettings {
  const policy = isJsonObject(value) ? value : {};
  const secureZones = readStrings(policy['secureZones'], '/policy/secureZones', problems) ?? [];
  const allowedDestinations = readStrings(policy['allowedDestinations'], '/policy/allowedDestinations', problems);
  const allowInventoryRemoval = readStrings(policy['allowInventoryRemoval'], '/policy/allowInventoryRemoval', problems);
  const maxInventoryRemoval = policy['maxInventoryRemoval'];
  if (maxInventoryRemoval !== undefined && !(typeof maxInventoryRemoval === 'number' && maxInventoryRemoval >= 0 && maxInventoryRemoval <= 1)) {
    problems.push({ path: '/policy/maxInventoryRemoval', message: 'must be a number from 0 to 1' });
  }
  // `allowedDestinations` absent (not empty) turns destination-allowlist off: keep the distinction.
  return Object.freeze({
    secureZones,
    ...(allowedDestinations === undefined ? {} : { allowedDestinations }),
    ...(typeof maxInventoryRemoval === 'number' ? { maxInventoryRemoval } : {}),
    ...(allowInventoryRemoval === undefined ? {} : { allowInventoryRemoval }),
  });
}

function readStrings(value: JsonValue | undefined, pointer: string, problems: StructuralProblem[]): readonly string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return Object.freeze([...(value as string[])]);
  problems.push({ path: pointer, message: 'must be a list of strings' });
  return undefined;
}

function readWaves(value: JsonValue | undefined, problems: StructuralProblem[]): readonly WaveSpec[] {
  if (value === undefined || value === null) return Object.freeze([]);
  if (!Array.isArray(value)) {
    problems.push({ path: '/rollout/waves', message: '`waves` must be a list' });
    return Object.freeze([]);
  }
  const names = new Set<string>();
  const waves: WaveSpec[] = [];
  value.forEach((item, index) => {
    const pointer = appendPointer('/rollout/waves', index);
    if (!isJsonObject(item) || typeof item['name'] !== 'string' || item['name'] === '') {
      problems.push({ path: pointer, message: 'a wave needs a non-empty `name`' });
      return;
    }
    const name = item['name'];
    if (names.has(name)) problems.push({ path: appendPointer(pointer, 'name'), message: `duplicate wave name ${JSON.stringify(name)}` });
    names.add(name);
    const wave: { name: string; match?: WaveSpec['match']; percent?: number; bake?: string } = { name };
    if (item['match'] !== undefined) {
      const selector = readSelector(item['match'], appendPointer(pointer, 'match'));
      if (selector.kind === 'ok') wave.match = selector.value;
      else problems.push(...selector.problems);
    }
    const percent = item['percent'];
    if (percent !== undefined) {
      if (typeof percent === 'number' && percent >= 0 && percent <= 100) wave.percent = percent;
      else problems.push({ path: appendPointer(pointer, 'percent'), message: '`percent` must be a number from 0 to 100' });
    }
    if (typeof item['bake'] === 'string') wave.bake = item['bake'];
    waves.push(Object.freeze(wave));
  });
  return Object.freeze(waves);
}

import { CronExpressionParser } from 'cron-parser';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { JsonValue } from '../domain/types.js';
import { escapeToken } from './pointer.js';
import { comparePointers, field, pointer } from './policy/json.js';
import { agentConfigSchema } from './schemas/agent-config.js';
import { meshcfgSettingsSchema } from './schemas/meshcfg-settings.js';
import { TLS_VERSIONS, hintForPattern, shapes } from './schemas/patterns.js';
import type { Finding } from './types.js';

export { agentConfigSchema, meshcfgSettingsSchema };

/**
 * Schema validation of agent config documents and of `meshcfg.yaml`.
 *
 * Contract: findings are a pure function of the document — the same document (even
 * with its keys in another order) gives the same findings in the same order, sorted
 * by path. Messages never quote a value that failed a schema check (keys and names of
 * duplicates are quoted): a secret pasted into the wrong key must not reach logs this way.
 */

export function validateAgentDocument(doc: JsonValue): readonly Finding[] {
  const { agent } = validators();
  return finish([...schemaFindings(agent, doc), ...routeNameFindings(doc), ...tlsRangeFindings(doc)]);
}

export function validateSettingsDocument(doc: JsonValue): readonly Finding[] {
  const { settings } = validators();
  return finish([...schemaFindings(settings, doc), ...waveFindings(doc), ...windowFindings(doc)]);
}

interface Validators {
  readonly agent: ValidateFunction;
  readonly settings: ValidateFunction;
}

// Compiled once, on first use: compiling costs milliseconds and validation runs for
// every agent of every commit. Safe to share: a validator only keeps `.errors` of its
// last synchronous call, which `schemaFindings` reads immediately.
let compiled: Validators | undefined;

function validators(): Validators {
  if (compiled === undefined) {
    // strict: a schema mistake (unknown keyword, ambiguous type) fails loudly at
    // startup instead of silently accepting everything. verbose: the error mapper
    // needs `parentSchema` to list the keys an object does allow.
    const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, verbose: true });
    compiled = { agent: ajv.compile(agentConfigSchema), settings: ajv.compile(meshcfgSettingsSchema) };
  }
  return compiled;
}

function schemaFindings(validate: ValidateFunction, doc: JsonValue): Finding[] {
  if (validate(doc)) return [];
  const errors = validate.errors ?? [];
  // A wrong type next to an enum at the same path says the same thing twice; the enum
  // message (which quotes the allowed strings) is the more useful one.
  const enumPaths = new Set(errors.filter((e) => e.keyword === 'enum').map((e) => e.instancePath));
  return errors
    .filter((e) => e.keyword !== 'propertyNames') // the nested error names the key
    .filter((e) => !(e.keyword === 'type' && enumPaths.has(e.instancePath)))
    .map(toFinding);
}

function toFinding(e: ErrorObject): Finding {
  if (e.propertyName !== undefined) {
    // An error about a key (propertyNames) rather than a value: point at the key.
    return {
      path: `${e.instancePath}/${escapeToken(e.propertyName)}`,
      message: `key ${describeValueError(e)}`,
    };
  }
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = stringParam(e, 'additionalProperty');
      return { path: `${e.instancePath}/${escapeToken(key)}`, message: unknownKeyMessage(key, allowedKeys(e)) };
    }
    case 'required':
      return { path: e.instancePath, message: `missing required key "${stringParam(e, 'missingProperty')}"` };
    default:
      return { path: e.instancePath, message: describeValueError(e) };
  }
}

const TYPE_NAMES: Readonly<Record<string, string>> = {
  string: 'a string',
  number: 'a number',
  integer: 'an integer',
  boolean: 'a boolean',
  object: 'a map',
  array: 'a list',
  null: 'null',
};

function describeValueError(e: ErrorObject): string {
  const params: Record<string, unknown> = e.params;
  const limit = typeof params['limit'] === 'number' ? params['limit'] : undefined;
  switch (e.keyword) {
    case 'type': {
      const types = Array.isArray(params['type']) ? params['type'] : [params['type']];
      return `must be ${types.map((t) => TYPE_NAMES[String(t)] ?? String(t)).join(' or ')}`;
    }
    case 'enum': {
      const allowed = Array.isArray(params['allowedValues']) ? params['allowedValues'] : [];
      return `must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}`;
    }
    case 'pattern': {
      const pattern = String(params['pattern']);
      return `must be ${hintForPattern(pattern) ?? `a string matching ${pattern}`}`;
    }
    case 'minLength':
      return limit === 1 ? 'must not be empty' : `must be at least ${limit} characters long`;
    case 'maxLength':
      return `must be at most ${limit} characters long`;
    case 'minItems':
      return limit === 1 ? 'must not be an empty list' : `must have at least ${limit} items`;
    default:
      // minimum, maximum, exclusiveMinimum, …: ajv's wording ("must be >= 1") is already clear.
      return e.message ?? `fails "${e.keyword}"`;
  }
}

function stringParam(e: ErrorObject, name: string): string {
  const params: Record<string, unknown> = e.params;
  return String(params[name]);
}

function allowedKeys(e: ErrorObject): string[] {
  const parent: unknown = e.parentSchema;
  const properties = typeof parent === 'object' && parent !== null ? Reflect.get(parent, 'properties') : undefined;
  return typeof properties === 'object' && properties !== null ? Object.keys(properties) : [];
}

function unknownKeyMessage(key: string, allowed: readonly string[]): string {
  const near = closest(key, allowed);
  if (near !== undefined) return `unknown key "${key}": did you mean "${near}"?`;
  return allowed.length > 0 ? `unknown key "${key}" (allowed: ${allowed.join(', ')})` : `unknown key "${key}"`;
}

/** The allowed key a typo most likely meant: same letters ignoring case, or at most 2 edits away. */
function closest(key: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of candidates) {
    const d = candidate.toLowerCase() === key.toLowerCase() ? 0 : editDistance(key, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}

// Checks a draft-07 schema cannot express. Each reads defensively: it runs on
// documents that may also have failed the schema.

/** Route names identify routes to the agent (and in `plan` diffs); a repeat is ambiguous. */
function routeNameFindings(doc: JsonValue): Finding[] {
  return duplicateNames(field(doc, 'routes'), 'route', (i) => pointer('routes', i, 'name'));
}

/** Waves are addressed by name (rollout status, promote); a repeat is ambiguous. */
function waveFindings(doc: JsonValue): Finding[] {
  const waves = field(field(doc, 'rollout'), 'waves');
  const findings = duplicateNames(waves, 'wave', (i) => pointer('rollout', 'waves', i, 'name'));
  if (Array.isArray(waves)) {
    waves.forEach((wave, i) => {
      // Wave assignment uses `percent` only for waves without `match`; accepting both
      // would silently ignore the percent the author wrote.
      if (field(wave, 'match') !== undefined && field(wave, 'percent') !== undefined) {
        findings.push({
          path: pointer('rollout', 'waves', i, 'percent'),
          message: 'a wave selects agents by "match" or by "percent", not both (percent would be ignored)',
        });
      }
    });
  }
  return findings;
}

function duplicateNames(list: JsonValue | undefined, what: string, at: (i: number) => string): Finding[] {
  if (!Array.isArray(list)) return [];
  const first = new Map<string, number>();
  const findings: Finding[] = [];
  list.forEach((item, i) => {
    const name = field(item, 'name');
    if (typeof name !== 'string') return;
    const j = first.get(name);
    if (j === undefined) first.set(name, i);
    else findings.push({ path: at(i), message: `duplicate ${what} name "${name}" (first defined at ${at(j)})` });
  });
  return findings;
}

/** min above max leaves no TLS version both ends accept: every handshake would fail. */
function tlsRangeFindings(doc: JsonValue): Finding[] {
  const mtls = field(doc, 'mtls');
  const min = tlsVersionIndex(field(mtls, 'minTlsVersion'));
  const max = tlsVersionIndex(field(mtls, 'maxTlsVersion'));
  if (min < 0 || max < 0 || min <= max) return [];
  return [{ path: pointer('mtls', 'maxTlsVersion'), message: 'maxTlsVersion is below minTlsVersion: no TLS version satisfies both' }];
}

function tlsVersionIndex(value: JsonValue | undefined): number {
  return typeof value === 'string' ? (TLS_VERSIONS as readonly string[]).indexOf(value) : -1;
}

/**
 * A window must fire when its author meant it to: an unknown time zone or a cron field out of
 * range (the schema only checks the five-field shape) is refused here, not discovered by a
 * rollout that never finds its window open.
 */
function windowFindings(doc: JsonValue): Finding[] {
  const windows = field(field(doc, 'rollout'), 'windows');
  if (!Array.isArray(windows)) return [];
  const findings: Finding[] = [];
  windows.forEach((w, i) => {
    const zone = field(w, 'timeZone');
    if (typeof zone === 'string' && zone !== '' && !isKnownTimeZone(zone)) {
      findings.push({ path: pointer('rollout', 'windows', i, 'timeZone'), message: 'must be an IANA time zone such as "UTC" or "Europe/Berlin"' });
    }
    const schedule = field(w, 'schedule');
    // A schedule of the wrong shape is already reported by the schema; judge the ranges of the rest.
    if (typeof schedule === 'string' && CRON_SHAPE.test(schedule) && !isValidCron(schedule)) {
      findings.push({ path: pointer('rollout', 'windows', i, 'schedule'), message: 'is not a valid cron schedule (minute hour day-of-month month day-of-week, each within its range)' });
    }
  });
  return findings;
}

const CRON_SHAPE = new RegExp(shapes.cron.pattern);

function isValidCron(schedule: string): boolean {
  try {
    CronExpressionParser.parse(schedule, { strict: false });
    return true;
  } catch {
    return false;
  }
}

function isKnownTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false; // RangeError: the runtime's tz database does not know it
  }
}

function finish(findings: readonly Finding[]): readonly Finding[] {
  const unique = new Map<string, Finding>();
  for (const f of findings) unique.set(`${f.path}\u0000${f.message}`, f);
  return [...unique.values()].sort(
    (a, b) => comparePointers(a.path, b.path) || (a.message < b.message ? -1 : a.message > b.message ? 1 : 0),
  );
}

import type { JsonValue, Labels } from '../domain/types.js';
import { canonicalJson } from '../lib/index.js';
import { isJsonObject } from './merge.js';
import { invalid, ok, type ReadResult, type StructuralProblem } from './model/read.js';
import { appendPointer } from './pointer.js';
import type { Selector } from './types.js';

/**
 * Label selectors (`match:` of overlays and waves).
 *
 * `{zone: pci, env: [prod, staging]}` selects agents whose `zone` is `pci` AND whose `env` is
 * `prod` or `staging`. A label the agent does not have never matches. `{}` selects every agent.
 */
export function matchesSelector(selector: Selector, labels: Labels): boolean {
  for (const key in selector) {
    const wanted = selector[key];
    const actual = labels[key];
    if (actual === undefined || wanted === undefined) return false;
    if (typeof wanted === 'string' ? actual !== wanted : !wanted.includes(actual)) return false;
  }
  return true;
}

/** A label key: letters, digits and `-_./`, starting and ending alphanumeric, at most 63 characters. */
const LABEL_KEY = /^[A-Za-z0-9](?:[A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$/;
const MAX_LABEL_VALUE = 253;

export function isLabelKey(key: string): boolean {
  return LABEL_KEY.test(key);
}

/**
 * Reads a selector from YAML. Values must be strings (YAML `ring: 1` is a number: quote it), as
 * label values are; a list must be non-empty, since an empty any-of selects nothing and is
 * almost certainly a mistake.
 */
export function readSelector(value: JsonValue | undefined, pointer: string): ReadResult<Selector> {
  if (value === undefined || !isJsonObject(value)) {
    return invalid([{ path: pointer, message: 'a selector must be a map of label → value or list of values' }]);
  }
  const problems: StructuralProblem[] = [];
  const selector: Record<string, string | readonly string[]> = {};
  for (const key of Object.keys(value)) {
    const path = appendPointer(pointer, key);
    const wanted = value[key] as JsonValue;
    if (!isLabelKey(key)) problems.push({ path, message: `${JSON.stringify(key)} is not a valid label key` });
    if (typeof wanted === 'string') {
      selector[key] = wanted;
    } else if (Array.isArray(wanted) && wanted.length > 0 && wanted.every((item) => typeof item === 'string')) {
      selector[key] = Object.freeze([...(wanted as string[])]);
    } else if (Array.isArray(wanted) && wanted.length === 0) {
      problems.push({ path, message: 'an empty list selects no agent' });
    } else {
      problems.push({ path, message: 'a selector value must be a string or a non-empty list of strings (quote numbers and booleans)' });
    }
  }
  return problems.length > 0 ? invalid(problems) : ok(Object.freeze(selector));
}

/** Reads an agent's labels: a map of label key → string. */
export function readLabels(value: JsonValue | undefined, pointer: string): ReadResult<Labels> {
  if (value === undefined || value === null) return ok(Object.freeze({}));
  if (!isJsonObject(value)) return invalid([{ path: pointer, message: 'labels must be a map of key → string' }]);
  const problems: StructuralProblem[] = [];
  for (const key of Object.keys(value)) {
    const path = appendPointer(pointer, key);
    const label = value[key];
    if (!isLabelKey(key)) problems.push({ path, message: `${JSON.stringify(key)} is not a valid label key` });
    if (typeof label !== 'string') {
      problems.push({ path, message: 'a label value must be a string (quote numbers and booleans)' });
    } else if (label.length > MAX_LABEL_VALUE) {
      problems.push({ path, message: `a label value must be at most ${MAX_LABEL_VALUE} characters` });
    }
  }
  return problems.length > 0 ? invalid(problems) : ok(Object.freeze({ ...(value as Record<string, string>) }));
}

/** A content key for a selector or label set: equal keys ⇔ equal maps (canonical JSON sorts keys). */
export function selectorKey(selector: Selector | Labels): string {
  return canonicalJson(selector as Record<string, string | string[]>);
}

import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { JsonObject } from '../domain/types.js';

/** One field of a request body: its JSON Schema, and the code and message a wrong value gets (the message names the field). */
export interface BodyField<Code extends string> {
  readonly schema: JsonObject;
  readonly required?: boolean;
  readonly code: Code;
  readonly message: string;
}

/** A body that does not fit its schema: the first field (in declared order) that is wrong. */
export interface BodyRefusal<Code extends string> {
  readonly field: string;
  readonly code: Code;
  readonly message: string;
}

// strict: a schema mistake fails loudly. unicodeRegExp: false — patterns run without the `u`
// flag, so `maxUtf16Length` counts UTF-16 code units as String.length does (ajv's maxLength
// counts code points, and its `unicode: false` option is deprecated).
const ajv = new Ajv({ strict: true, allErrors: true, unicodeRegExp: false });

/** A string of at most `max` UTF-16 code units (String.length), as a schema. */
export function maxUtf16Length(max: number): JsonObject {
  return { type: 'string', pattern: `^[\\s\\S]{0,${max}}$` };
}

/**
 * The shape of an admin request body, validated by JSON Schema through ajv. Fields are checked
 * in the order they are declared, so a body wrong in two places is refused for the first,
 * whatever order ajv reports in. Unknown fields are ignored (clients may send more). What a
 * schema cannot say well (agent-id and duration rules) stays with the route.
 */
export class BodySchema<T, Code extends string> {
  private readonly validate: ValidateFunction<T>;
  private readonly order: readonly string[];

  constructor(private readonly fields: Readonly<Record<string, BodyField<Code>>>) {
    this.order = Object.keys(fields);
    const properties = Object.fromEntries(this.order.map((name) => [name, fields[name]?.schema ?? {}]));
    const required = this.order.filter((name) => fields[name]?.required === true);
    this.validate = ajv.compile<T>({ type: 'object', properties, required });
  }

  /** The typed body, or the refusal of its first wrong field. */
  check(body: Record<string, unknown>): { readonly kind: 'ok'; readonly body: T } | ({ readonly kind: 'refused' } & BodyRefusal<Code>) {
    if (this.validate(body)) return { kind: 'ok', body };
    const wrong = new Set((this.validate.errors ?? []).map(fieldOf));
    const field = this.order.find((name) => wrong.has(name));
    const spec = field === undefined ? undefined : this.fields[field];
    if (field === undefined || spec === undefined) throw new Error(`body schema: an error outside the declared fields ${JSON.stringify(this.validate.errors)}`);
    return { kind: 'refused', field, code: spec.code, message: spec.message };
  }
}

function fieldOf(error: ErrorObject): string {
  if (error.keyword === 'required') return String(error.params['missingProperty']);
  return (error.instancePath.split('/')[1] ?? '').replace(/~1/g, '/').replace(/~0/g, '~');
}

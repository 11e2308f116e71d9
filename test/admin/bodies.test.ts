import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BodySchema, maxUtf16Length } from '../../src/admin/bodies.js';

describe('BodySchema', () => {
  const schema = new BodySchema<{ name: string; role: string; ttl?: string | null }, 'NAME' | 'ROLE' | 'TTL'>({
    name: { schema: { type: 'string' }, required: true, code: 'NAME', message: 'name must be a string' },
    role: { schema: maxUtf16Length(3), required: true, code: 'ROLE', message: 'role must be a short string' },
    ttl: { schema: { type: ['string', 'null'] }, code: 'TTL', message: 'ttl must be a duration' },
  });

  it('returns a body that fits, ignoring fields it does not declare', () => {
    assert.deepEqual(schema.check({ name: 'ci', role: 'op', ttl: null, extra: 1 }), { kind: 'ok', body: { name: 'ci', role: 'op', ttl: null, extra: 1 } });
  });

  const refusals: ReadonlyArray<[string, Record<string, unknown>, string, string]> = [
    ['a missing required field', { role: 'op' }, 'name', 'NAME'],
    ['a field of the wrong type', { name: 'ci', role: 7 }, 'role', 'ROLE'],
    ['two wrong fields: the first declared one', { ttl: 5, role: 7, name: 1 }, 'name', 'NAME'],
    ['an optional field of the wrong type', { name: 'ci', role: 'op', ttl: 5 }, 'ttl', 'TTL'],
    ['a string longer than its maximum in UTF-16 code units', { name: 'ci', role: '😀😀' }, 'role', 'ROLE'],
    ['a string over its maximum by a newline', { name: 'ci', role: 'abc\n' }, 'role', 'ROLE'],
  ];
  for (const [what, body, field, code] of refusals) {
    it(`refuses ${what}, naming the field`, () => {
      const checked = schema.check(body);
      assert.equal(checked.kind, 'refused');
      assert.equal(checked.kind === 'refused' ? `${checked.field}:${checked.code}` : '', `${field}:${code}`);
    });
  }
});

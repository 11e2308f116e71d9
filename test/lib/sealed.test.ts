import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { describe, it } from 'node:test';
import { Sealed } from '../../src/lib/index.js';

describe('Sealed', () => {
  const secret = '-----BEGIN PRIVATE KEY-----secret';
  const holder = { name: 'ca', key: new Sealed({ pem: secret }) };

  it('hands the value out through open()', () => {
    assert.equal(holder.key.open().pem, secret);
  });

  it('never shows the value when its holder is inspected or serialized', () => {
    assert.doesNotMatch(inspect(holder, { depth: 10, showHidden: true }), /PRIVATE KEY/);
    assert.doesNotMatch(JSON.stringify(holder), /PRIVATE KEY/);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HTTP_STATUS, statusOf } from '../../src/admin/index.js';

describe('the admin API status table', () => {
  const cases: ReadonlyArray<[Parameters<typeof statusOf>[0], 'path' | 'body', number]> = [
    ['BAD_REQUEST', 'body', 400],
    ['UNAUTHORIZED', 'path', 401],
    ['FORBIDDEN_ROLE', 'path', 403],
    ['UNKNOWN_AGENT', 'path', 404],
    ['UNKNOWN_AGENT', 'body', 400],
    ['UNKNOWN_TOKEN', 'path', 404],
    ['ALREADY_QUARANTINED', 'path', 409],
    ['HALTED', 'path', 409],
    ['TOKEN_NAME_TAKEN', 'body', 409],
    ['TOKEN_TTL_INVALID', 'body', 400],
    ['PAYLOAD_TOO_LARGE', 'body', 413],
    ['INTERNAL', 'path', 500],
  ];
  for (const [code, named, status] of cases) {
    it(`answers ${code} named in the ${named} with ${status}`, () => assert.equal(statusOf(code, named), status));
  }

  it('gives every code a client or server error status', () => {
    for (const [code, status] of Object.entries(HTTP_STATUS)) assert.ok(status >= 400 && status < 600, code);
  });
});

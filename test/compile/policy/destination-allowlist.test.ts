import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileDestinationGlobs, globToRegExp, hostOf } from '../../../src/compile/policy/glob.js';
import { compileDestinationGlob, destinationAllowlist } from '../../../src/compile/policy/index.js';
import type { JsonValue } from '../../../src/domain/types.js';
import { context, paths } from './context.js';

const routes = (...destinations: JsonValue[]): JsonValue => ({
  routes: destinations.map((destination, i) => ({ name: `r${i}`, destination })),
});

describe('destination-allowlist', () => {
  it('has the rule id the README and docs/architecture.md name', () => {
    assert.equal(destinationAllowlist.id, 'destination-allowlist');
  });

  it('is off when policy.allowedDestinations is absent', () => {
    assert.deepEqual(paths(destinationAllowlist, context(routes('anything.example.com:443'))), []);
  });

  it('allows nothing when policy.allowedDestinations is an empty list', () => {
    const ctx = context(routes('a.internal:443', 'b.internal:80'), { allowedDestinations: [] });
    assert.deepEqual(paths(destinationAllowlist, ctx), ['/routes/0/destination', '/routes/1/destination']);
  });

  it('reports only the routes whose destination matches no glob, at their destination', () => {
    const ctx = context(routes('api.internal:443', 'evil.example.com:443', 'db.prod.svc.cluster.local:5432'), {
      allowedDestinations: ['*.internal', '**.svc.cluster.local'],
    });
    assert.deepEqual(paths(destinationAllowlist, ctx), ['/routes/1/destination']);
  });

  it('checks a destination without a port against its whole text (the schema reports the shape)', () => {
    const ctx = context(routes('api.internal', 'api.other'), { allowedDestinations: ['*.internal'] });
    assert.deepEqual(paths(destinationAllowlist, ctx), ['/routes/1/destination']);
  });

  it('skips non-string destinations and non-list routes without throwing', () => {
    assert.deepEqual(paths(destinationAllowlist, context(routes(42, null, { host: 'x' }), { allowedDestinations: [] })), []);
    assert.deepEqual(paths(destinationAllowlist, context({ routes: 'x' }, { allowedDestinations: [] })), []);
  });

  it('does not echo a destination that does not look like a host', () => {
    const ctx = context(routes('user:hunter2@evil.example.com:443'), { allowedDestinations: ['*.internal'] });
    const [finding] = destinationAllowlist.check(ctx);
    assert.equal(finding?.path, '/routes/0/destination');
    assert.ok(!finding.message.includes('hunter2'));
  });
});

describe('destination globs', () => {
  const cases: { glob: string; destination: string; matches: boolean; why: string }[] = [
    { glob: 'api.internal', destination: 'api.internal:443', matches: true, why: 'a glob without a port matches the host on any port' },
    { glob: 'api.internal', destination: 'API.Internal:443', matches: true, why: 'DNS names are case-insensitive' },
    { glob: 'api.internal', destination: 'api.internal.evil.com:443', matches: false, why: 'matching is anchored at the end' },
    { glob: 'api.internal', destination: 'xapi.internal:443', matches: false, why: 'matching is anchored at the start' },
    { glob: '*.internal', destination: 'api.internal:443', matches: true, why: '* matches one label' },
    { glob: '*.internal', destination: 'a.b.internal:443', matches: false, why: '* does not cross a dot' },
    { glob: '*.internal', destination: 'internal:443', matches: false, why: '* matches at least one character' },
    { glob: '**.internal', destination: 'a.b.internal:443', matches: true, why: '** crosses dots' },
    { glob: '**.internal', destination: 'api.internal:443', matches: true, why: '** also matches one label' },
    { glob: '**.internal', destination: 'internal:443', matches: false, why: '** matches at least one character' },
    { glob: 'api-*.prod.internal', destination: 'api-eu.prod.internal:443', matches: true, why: '* may be part of a label' },
    { glob: 'api-*.prod.internal', destination: 'api-.prod.internal:443', matches: false, why: '* is never empty' },
    { glob: 'api.internal:443', destination: 'api.internal:443', matches: true, why: 'a glob with a port matches host:port' },
    { glob: 'api.internal:443', destination: 'api.internal:8443', matches: false, why: 'a glob with a port pins the port' },
    { glob: 'api.internal:*', destination: 'api.internal:8443', matches: true, why: '* matches any port' },
    { glob: '*.internal:443', destination: 'a:b.internal:443', matches: false, why: '* does not cross a colon' },
    { glob: 'a.b', destination: 'axb:443', matches: false, why: 'a dot is literal, not a regex wildcard' },
    { glob: '10.0.0.*', destination: '10.0.0.7:80', matches: true, why: 'IPv4 octets are labels too' },
    { glob: '**', destination: 'anything.at.all:1', matches: true, why: '** alone admits every host' },
  ];
  for (const { glob, destination, matches, why } of cases) {
    it(`${JSON.stringify(glob)} ${matches ? 'matches' : 'does not match'} ${destination}: ${why}`, () => {
      assert.equal(compileDestinationGlob(glob).matches(destination), matches);
    });
  }

  it('escapes every regex metacharacter in a glob', () => {
    assert.equal(globToRegExp('a+b(c)[d]{1}|e$^?\\').test('a+b(c)[d]{1}|e$^?\\'), true);
    assert.equal(globToRegExp('a+b').test('aab'), false);
  });

  it('strips only a numeric port from a destination', () => {
    assert.equal(hostOf('api.internal:443'), 'api.internal');
    assert.equal(hostOf('api.internal'), 'api.internal');
    assert.equal(hostOf('api.internal:http'), 'api.internal:http');
  });

  it('compiles a list once and reuses it for every agent', () => {
    const globs = ['*.internal'];
    assert.equal(compileDestinationGlobs(globs), compileDestinationGlobs(globs));
  });
});

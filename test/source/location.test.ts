import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { inspect } from 'node:util';
import { describe, it } from 'node:test';
import { SourceError } from '../../src/domain/errors.js';
import { safeCause } from '../../src/source/git-errors.js';
import { parseRepositoryLocation, redactUrl, urlSecrets } from '../../src/source/location.js';

describe('parseRepositoryLocation', () => {
  const cases: Array<{ input: string; kind: 'local' | 'remote'; display: string }> = [
    { input: 'https://git.example.org/org/cfg.git', kind: 'remote', display: 'https://git.example.org/org/cfg.git' },
    { input: 'http://u:p@127.0.0.1:8080/cfg.git', kind: 'remote', display: 'http://127.0.0.1:8080/cfg.git' },
    { input: 'https://TOKEN@git.example.org/cfg.git?private_token=x#frag', kind: 'remote', display: 'https://git.example.org/cfg.git' },
    { input: '/srv/git/cfg', kind: 'local', display: '/srv/git/cfg' },
    { input: 'relative/cfg', kind: 'local', display: resolve('relative/cfg') },
    { input: 'file:///srv/git/cfg', kind: 'local', display: '/srv/git/cfg' },
  ];
  for (const { input, kind, display } of cases) {
    it(`reads ${input} as ${kind} ${display}`, () => {
      const location = parseRepositoryLocation(input);
      assert.equal(location.kind, kind);
      assert.equal(location.display, display);
    });
  }

  it('keeps credentials in the transport URL of a remote', () => {
    const location = parseRepositoryLocation('https://deploy:s3cret@git.example.org/cfg.git');
    assert.ok(location.kind === 'remote' && location.url.includes('deploy:s3cret@'));
  });

  for (const input of ['ssh://git@example.org/cfg.git', 'git@example.org:org/cfg.git', 'git://example.org/cfg.git']) {
    it(`refuses ${input} with REPO_UNREADABLE`, () => {
      assert.throws(() => parseRepositoryLocation(input), (err: unknown) => err instanceof SourceError && err.code === 'REPO_UNREADABLE');
    });
  }
});

describe('redactUrl', () => {
  it('removes userinfo, query and fragment', () => {
    assert.equal(redactUrl('https://a:b@h.example/x.git?t=1#f'), 'https://h.example/x.git');
  });

  it('cuts userinfo from input that is not a URL', () => {
    assert.equal(redactUrl('https://user:pa ss@h/x'), 'https://h/x');
  });
});

describe('urlSecrets', () => {
  it('is the password, decoded and raw, when there is one', () => {
    assert.deepEqual(urlSecrets('https://x-access-token:p%40ss@h/x').sort(), ['p%40ss', 'p@ss']);
  });

  it('is the username when it carries a token alone', () => {
    assert.deepEqual(urlSecrets('https://ghp_abc@h/x'), ['ghp_abc']);
  });

  it('is nothing for a URL without userinfo', () => {
    assert.deepEqual(urlSecrets('https://h/x'), []);
  });
});

describe('safeCause', () => {
  it('keeps a cause that echoes no secret as it is', () => {
    const err = new Error('connect ECONNREFUSED');
    assert.equal(safeCause(err, ['s3cret']), err);
  });

  it('replaces a cause that echoes a secret anywhere (message, data, nested cause)', () => {
    const inner = new Error('GET https://u:s3cret@h/x failed');
    const outer = Object.assign(new Error('fetch failed', { cause: inner }), { code: 'HttpError', data: { url: 'https://u:s3cret@h/x' } });

    const safe = safeCause(outer, ['s3cret']);

    assert.notEqual(safe, outer);
    assert.ok(!inspect(safe, { depth: 10 }).includes('s3cret'));
    assert.equal((safe as { code?: unknown }).code, 'HttpError');
  });
});

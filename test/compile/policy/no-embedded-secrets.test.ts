import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { noEmbeddedSecrets } from '../../../src/compile/policy/index.js';
import { isSecretKey } from '../../../src/compile/policy/no-embedded-secrets.js';
import type { JsonValue } from '../../../src/domain/types.js';
import { context, paths } from './context.js';

// Fakes built at run time, so this file itself does not look like it leaks keys.
const pem = (kind: string): string =>
  [`-----BEGIN ${kind}PRIVATE KEY-----`, 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC', `-----END ${kind}PRIVATE KEY-----`].join('\n');
const AWS_KEY_ID = ['AKIA', 'IOSFODNN7EXAMPLE'].join('');
const AWS_SESSION_KEY_ID = ['ASIA', 'Y34FZKBOKMUTVV7A'].join('');

describe('no-embedded-secrets', () => {
  it('has the rule id the README and docs/architecture.md name', () => {
    assert.equal(noEmbeddedSecrets.id, 'no-embedded-secrets');
  });

  describe('finds secrets by value, anywhere in the document', () => {
    const cases: { name: string; document: JsonValue; path: string; secret: string }[] = [
      { name: 'a PKCS#8 private key in extensions', document: { extensions: { tls: { key: pem('') } } }, path: '/extensions/tls/key', secret: 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC' },
      { name: 'an RSA private key', document: { extensions: { k: pem('RSA ') } }, path: '/extensions/k', secret: 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC' },
      { name: 'an EC private key', document: { extensions: { k: pem('EC ') } }, path: '/extensions/k', secret: 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC' },
      { name: 'an OpenSSH private key', document: { extensions: { k: pem('OPENSSH ') } }, path: '/extensions/k', secret: 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC' },
      { name: 'an encrypted private key', document: { extensions: { k: pem('ENCRYPTED ') } }, path: '/extensions/k', secret: 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC' },
      { name: 'a private key inside a list', document: { extensions: { keys: ['ok', pem('EC ')] } }, path: '/extensions/keys/1', secret: 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC' },
      { name: 'an AWS access key id in a header', document: { routes: [{ name: 'r', destination: 's3:443', headers: { 'x-amz-id': AWS_KEY_ID } }] }, path: '/routes/0/headers/x-amz-id', secret: AWS_KEY_ID },
      { name: 'an AWS session key id inside a longer string', document: { extensions: { env: `AWS_ACCESS_KEY_ID=${AWS_SESSION_KEY_ID} aws s3 ls` } }, path: '/extensions/env', secret: AWS_SESSION_KEY_ID },
      { name: 'a Bearer token in an Authorization header', document: { routes: [{ name: 'r', destination: 'a:1', headers: { Authorization: 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig' } }] }, path: '/routes/0/headers/Authorization', secret: 'eyJhbGciOiJIUzI1NiJ9' },
      { name: 'Basic credentials under any key', document: { extensions: { upstreamAuth: 'Basic dXNlcjpwYXNzd29yZA==' } }, path: '/extensions/upstreamAuth', secret: 'dXNlcjpwYXNzd29yZA' },
    ];
    for (const { name, document, path, secret } of cases) {
      it(`reports ${name} at ${path}, without the value in the message`, () => {
        const findings = noEmbeddedSecrets.check(context(document));
        assert.deepEqual(findings.map((f) => f.path), [path]);
        assert.ok(!findings[0]!.message.includes(secret), 'the message must not contain the secret');
      });
    }

    it('reports a secret used as a map key at the enclosing map, without the key in path or message', () => {
      const findings = noEmbeddedSecrets.check(context({ extensions: { allow: { [AWS_KEY_ID]: true } } }));
      assert.deepEqual(findings.map((f) => f.path), ['/extensions/allow']);
      assert.ok(!findings[0]!.message.includes(AWS_KEY_ID));
    });

    const lookalikes: { name: string; value: string }[] = [
      { name: 'a public key', value: '-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----' },
      { name: 'a certificate', value: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----' },
      { name: 'a lower-case akia string', value: 'akiaiosfodnn7example' },
      { name: 'AKIA with only 15 characters after it', value: ['AKIA', 'IOSFODNN7EXAMPL'].join('') },
      { name: 'AKIA inside a longer upper-case run', value: `X${AWS_KEY_ID}Y` },
      { name: 'the word Bearer alone', value: 'Bearer' },
    ];
    for (const { name, value } of lookalikes) {
      it(`does not report ${name}`, () => {
        assert.deepEqual(paths(noEmbeddedSecrets, context({ extensions: { note: value } })), []);
      });
    }
  });

  describe('finds keys named like secrets that hold a non-empty string', () => {
    const secretKeys = [
      'password', 'passwd', 'dbPassword', 'DB_PASSWORD', 'db-password', 'secret', 'clientSecret',
      'client_secret', 'token', 'authToken', 'ACCESS_TOKEN', 'apiKey', 'api_key', 'api-key', 'APIKEY',
      'x-api-key', 'privateKey', 'private_key', 'aws_secret_access_key', 'credentials', 'authorization',
    ];
    for (const key of secretKeys) {
      it(`reports ${key}: "<literal>" at its path, without the value in the message`, () => {
        const findings = noEmbeddedSecrets.check(context({ extensions: { plugin: { [key]: 'hunter2-s3cr3t' } } }));
        assert.deepEqual(findings.map((f) => f.path), [`/extensions/plugin/${key}`]);
        assert.ok(!findings[0]!.message.includes('hunter2-s3cr3t'));
      });
    }

    it('reports each string of a list held by such a key', () => {
      const ctx = context({ extensions: { apiKeys: ['k-one', 'k-two'] } });
      assert.deepEqual(paths(noEmbeddedSecrets, ctx), ['/extensions/apiKeys/0', '/extensions/apiKeys/1']);
    });

    it('reports secrets in headers, by header name', () => {
      const ctx = context({ routes: [{ name: 'r', destination: 'a:1', headers: { 'X-Api-Key': 'abc123', 'x-request-id': 'abc123' } }] });
      assert.deepEqual(paths(noEmbeddedSecrets, ctx), ['/routes/0/headers/X-Api-Key']);
    });

    const allowed: { name: string; document: JsonValue }[] = [
      { name: 'a number under a token-ish key (tokenTtl: 10)', document: { extensions: { tokenTtl: 10 } } },
      { name: 'a string under a key that only starts like a secret (tokenTtl: "10m")', document: { extensions: { tokenTtl: '10m' } } },
      { name: 'a reference to a secret store', document: { extensions: { passwordRef: { secretName: 'db', secretKey: 'password' } } } },
      { name: 'an empty string', document: { extensions: { password: '' } } },
      { name: 'a blank string', document: { extensions: { password: '   ' } } },
      { name: 'a map under a secret-named key', document: { extensions: { clientSecret: { fromFile: '/run/secrets/client' } } } },
      { name: 'a boolean under a secret-named key', document: { extensions: { token: true } } },
      { name: 'null under a secret-named key', document: { extensions: { password: null } } },
      { name: 'a path mentioning secrets under a key that is not secret-named (tokenFile)', document: { extensions: { tokenFile: '/var/run/secrets/token' } } },
    ];
    for (const { name, document } of allowed) {
      it(`allows ${name}`, () => {
        assert.deepEqual(paths(noEmbeddedSecrets, context(document)), []);
      });
    }
  });

  it('reports every secret of a document, in document order, one finding per value', () => {
    const ctx = context({
      routes: [{ name: 'r', destination: 'a:1', headers: { authorization: 'Bearer abcdefghijkl' } }],
      extensions: { a: { password: 'x' }, b: [pem('RSA ')] },
    });
    assert.deepEqual(paths(noEmbeddedSecrets, ctx), ['/routes/0/headers/authorization', '/extensions/a/password', '/extensions/b/0']);
  });

  it('escapes keys in the JSON pointer', () => {
    assert.deepEqual(paths(noEmbeddedSecrets, context({ extensions: { 'a/b': { 'db~password': 'x' } } })), ['/extensions/a~1b/db~0password']);
  });

  describe('isSecretKey', () => {
    it('matches by suffix, ignoring case, "-", "_" and spaces', () => {
      assert.equal(isSecretKey('Api Key'), true);
      assert.equal(isSecretKey('client-SECRET'), true);
      assert.equal(isSecretKey('secretName'), false);
      assert.equal(isSecretKey('passwordRef'), false);
      assert.equal(isSecretKey('tokenTtl'), false);
    });
  });
});

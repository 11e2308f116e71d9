import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  agentConfigSchema,
  meshcfgSettingsSchema,
  validateAgentDocument,
  validateSettingsDocument,
} from '../../src/compile/schema.js';
import type { JsonObject, JsonValue } from '../../src/domain/types.js';

const pathsOf = (findings: readonly { path: string }[]): string[] => findings.map((f) => f.path);

const validAgent: JsonObject = {
  mtls: { mode: 'STRICT', minTlsVersion: '1.2', maxTlsVersion: '1.3' },
  identity: { trustDomain: 'prod.example.org' },
  routes: [
    {
      name: 'payments',
      destination: 'payments.internal:443',
      protocol: 'grpc',
      timeoutMs: 2000,
      retries: { attempts: 2, perTryTimeoutMs: 500 },
      headers: { 'x-team': 'payments' },
    },
    { name: 'legacy', destination: '10.0.0.7:8080', protocol: 'http1' },
  ],
  authz: [
    { action: 'ALLOW', from: ['spiffe://prod.example.org/agent/edge-1'], paths: ['/api/*'] },
    { action: 'DENY', paths: ['/admin'] },
  ],
  telemetry: { accessLog: { format: 'json', path: '/dev/stdout' }, metrics: true },
  extensions: { anything: { goes: [1, 'two', null] } },
};

/** A copy of `doc` with one value replaced (or removed with `undefined`) at a path of keys/indices. */
function withValueAt(doc: JsonValue, path: readonly (string | number)[], value: JsonValue | undefined): JsonValue {
  const copy = structuredClone(doc);
  let parent = copy as Record<string | number, JsonValue>;
  for (const token of path.slice(0, -1)) parent = parent[token] as Record<string | number, JsonValue>;
  const last = path[path.length - 1]!;
  if (value === undefined) delete parent[last];
  else parent[last] = value;
  return copy;
}

const agentWith = (path: readonly (string | number)[], value: JsonValue | undefined): JsonValue =>
  withValueAt(validAgent as JsonValue, path, value);

describe('validateAgentDocument', () => {
  it('accepts a full valid document', () => {
    assert.deepEqual(validateAgentDocument(validAgent), []);
  });

  it('accepts an empty document (every section is optional)', () => {
    assert.deepEqual(validateAgentDocument({}), []);
  });

  it('rejects a document that is not a map, at the root', () => {
    assert.deepEqual(pathsOf(validateAgentDocument(['routes'])), ['']);
    assert.deepEqual(pathsOf(validateAgentDocument(null)), ['']);
  });

  describe('unknown keys (typos must not pass silently)', () => {
    const cases: { where: string; path: (string | number)[]; pointer: string }[] = [
      { where: 'at the top level', path: ['rout'], pointer: '/rout' },
      { where: 'in mtls', path: ['mtls', 'mod'], pointer: '/mtls/mod' },
      { where: 'in identity', path: ['identity', 'trustdomain'], pointer: '/identity/trustdomain' },
      { where: 'in a route', path: ['routes', 0, 'timeoutMS'], pointer: '/routes/0/timeoutMS' },
      { where: 'in retries', path: ['routes', 0, 'retries', 'attempt'], pointer: '/routes/0/retries/attempt' },
      { where: 'in an authz rule', path: ['authz', 1, 'path'], pointer: '/authz/1/path' },
      { where: 'in telemetry', path: ['telemetry', 'tracing'], pointer: '/telemetry/tracing' },
      { where: 'in an accessLog map', path: ['telemetry', 'accessLog', 'fromat'], pointer: '/telemetry/accessLog/fromat' },
    ];
    for (const { where, path, pointer } of cases) {
      it(`are errors ${where}, reported at the key itself`, () => {
        assert.deepEqual(pathsOf(validateAgentDocument(agentWith(path, 1))), [pointer]);
      });
    }

    it('are fine inside extensions and headers, the open maps', () => {
      const doc = agentWith(['extensions', 'vendorThing'], { x: 1 });
      assert.deepEqual(validateAgentDocument(agentWith(['routes', 0, 'headers', 'x-more'], 'yes')), []);
      assert.deepEqual(validateAgentDocument(doc), []);
    });

    it('suggest the key a typo most likely meant', () => {
      const [finding] = validateAgentDocument({ rout: [] });
      assert.match(finding!.message, /"routes"/);
    });

    it('escape the key in the JSON pointer', () => {
      assert.deepEqual(pathsOf(validateAgentDocument({ 'a/b~c': 1 })), ['/a~1b~0c']);
    });
  });

  describe('required keys', () => {
    const cases: { what: string; path: (string | number)[]; pointer: string; key: string }[] = [
      { what: 'a route without a name', path: ['routes', 0, 'name'], pointer: '/routes/0', key: 'name' },
      { what: 'a route without a destination', path: ['routes', 1, 'destination'], pointer: '/routes/1', key: 'destination' },
      { what: 'retries without attempts', path: ['routes', 0, 'retries', 'attempts'], pointer: '/routes/0/retries', key: 'attempts' },
      { what: 'an authz rule without an action', path: ['authz', 0, 'action'], pointer: '/authz/0', key: 'action' },
      { what: 'identity without a trustDomain', path: ['identity', 'trustDomain'], pointer: '/identity', key: 'trustDomain' },
    ];
    for (const { what, path, pointer, key } of cases) {
      it(`reports ${what} at the enclosing map, naming the missing key`, () => {
        const findings = validateAgentDocument(agentWith(path, undefined));
        assert.deepEqual(pathsOf(findings), [pointer]);
        assert.match(findings[0]!.message, new RegExp(`"${key}"`));
      });
    }
  });

  describe('checks shape, not safety', () => {
    for (const mode of ['STRICT', 'PERMISSIVE', 'DISABLE']) {
      it(`accepts mtls.mode ${mode} (policy decides whether it is safe)`, () => {
        assert.deepEqual(validateAgentDocument(agentWith(['mtls', 'mode'], mode)), []);
      });
    }
    for (const version of ['1.0', '1.1', '1.2', '1.3']) {
      it(`accepts minTlsVersion "${version}" (policy decides whether it is safe)`, () => {
        assert.deepEqual(validateAgentDocument({ mtls: { minTlsVersion: version } }), []);
      });
    }
  });

  describe('wrong values', () => {
    const cases: { what: string; path: (string | number)[]; value: JsonValue; pointer: string }[] = [
      { what: 'an mtls mode in the wrong case', path: ['mtls', 'mode'], value: 'strict', pointer: '/mtls/mode' },
      { what: 'an unknown TLS version', path: ['mtls', 'minTlsVersion'], value: '1.4', pointer: '/mtls/minTlsVersion' },
      { what: 'an unquoted TLS version (a YAML number)', path: ['mtls', 'minTlsVersion'], value: 1.2, pointer: '/mtls/minTlsVersion' },
      { what: 'a trust domain with upper case', path: ['identity', 'trustDomain'], value: 'Prod.Example.org', pointer: '/identity/trustDomain' },
      { what: 'routes as a map', path: ['routes'], value: { payments: {} }, pointer: '/routes' },
      { what: 'an empty route name', path: ['routes', 0, 'name'], value: '', pointer: '/routes/0/name' },
      { what: 'an unknown protocol', path: ['routes', 0, 'protocol'], value: 'http3', pointer: '/routes/0/protocol' },
      { what: 'a zero timeout', path: ['routes', 0, 'timeoutMs'], value: 0, pointer: '/routes/0/timeoutMs' },
      { what: 'a fractional timeout', path: ['routes', 0, 'timeoutMs'], value: 1.5, pointer: '/routes/0/timeoutMs' },
      { what: 'a timeout as a string', path: ['routes', 0, 'timeoutMs'], value: '2s', pointer: '/routes/0/timeoutMs' },
      { what: 'negative attempts', path: ['routes', 0, 'retries', 'attempts'], value: -1, pointer: '/routes/0/retries/attempts' },
      { what: 'a zero per-try timeout', path: ['routes', 0, 'retries', 'perTryTimeoutMs'], value: 0, pointer: '/routes/0/retries/perTryTimeoutMs' },
      { what: 'a header value that is not a string', path: ['routes', 0, 'headers', 'x-count'], value: 3, pointer: '/routes/0/headers/x-count' },
      { what: 'a header name with a space', path: ['routes', 0, 'headers', 'x team'], value: 'a', pointer: '/routes/0/headers/x team' },
      { what: 'an unknown authz action', path: ['authz', 0, 'action'], value: 'AUDIT', pointer: '/authz/0/action' },
      { what: 'authz from as a string', path: ['authz', 0, 'from'], value: 'spiffe://x', pointer: '/authz/0/from' },
      { what: 'accessLog as a string', path: ['telemetry', 'accessLog'], value: 'yes', pointer: '/telemetry/accessLog' },
      { what: 'a metrics port out of range', path: ['telemetry', 'metrics'], value: { port: 70000 }, pointer: '/telemetry/metrics/port' },
      { what: 'extensions as a list', path: ['extensions'], value: [], pointer: '/extensions' },
    ];
    for (const { what, path, value, pointer } of cases) {
      it(`reports ${what} once, at ${pointer}`, () => {
        assert.deepEqual(pathsOf(validateAgentDocument(agentWith(path, value))), [pointer]);
      });
    }

    it('accepts accessLog and metrics as booleans or maps', () => {
      for (const value of [true, false, {}, { enabled: false }] as JsonValue[]) {
        assert.deepEqual(validateAgentDocument({ telemetry: { accessLog: value, metrics: value } }), []);
      }
    });

    it('never quotes the offending value (a secret pasted in the wrong place stays out of logs)', () => {
      const secret = 'hunter2-s3cr3t-value';
      const findings = validateAgentDocument({ mtls: { mode: secret }, routes: [{ name: 'a', destination: secret }] });
      assert.equal(findings.length, 2);
      for (const f of findings) assert.ok(!f.message.includes(secret), f.message);
    });
  });

  describe('route destinations (host:port)', () => {
    const good = ['payments.internal:443', 'svc:1', 'a-b.c_d.example.com:65535', '10.0.0.7:8080', 'API.Internal:80'];
    const bad = ['payments.internal', 'payments.internal:0', 'payments.internal:65536', ':443', 'http://payments:80',
      'pay ments:80', 'payments.internal:443/path', '-lead.internal:80', 'a..b:80', '[::1]:443', 'user@host:22'];
    for (const destination of good) {
      it(`accepts ${destination}`, () => {
        assert.deepEqual(validateAgentDocument({ routes: [{ name: 'r', destination }] }), []);
      });
    }
    for (const destination of bad) {
      it(`rejects ${JSON.stringify(destination)} at the destination`, () => {
        assert.deepEqual(pathsOf(validateAgentDocument({ routes: [{ name: 'r', destination }] })), ['/routes/0/destination']);
      });
    }
  });

  describe('checks beyond the schema', () => {
    it('rejects a repeated route name, at the repeat', () => {
      const doc = { routes: [{ name: 'a', destination: 'a:1' }, { name: 'b', destination: 'b:1' }, { name: 'a', destination: 'c:1' }] };
      assert.deepEqual(pathsOf(validateAgentDocument(doc)), ['/routes/2/name']);
    });

    it('rejects maxTlsVersion below minTlsVersion (no version satisfies both)', () => {
      assert.deepEqual(pathsOf(validateAgentDocument({ mtls: { minTlsVersion: '1.3', maxTlsVersion: '1.2' } })), ['/mtls/maxTlsVersion']);
      assert.deepEqual(validateAgentDocument({ mtls: { minTlsVersion: '1.2', maxTlsVersion: '1.2' } }), []);
    });
  });

  describe('findings are deterministic', () => {
    it('are sorted by path, list indices numerically', () => {
      const routes: JsonValue[] = Array.from({ length: 12 }, (_, i) => ({ name: `r${i}`, destination: i % 5 === 0 ? 'bad' : 'ok:1' }));
      const doc = { zzz: 1, routes, aaa: 2 };
      assert.deepEqual(pathsOf(validateAgentDocument(doc)), ['/aaa', '/routes/0/destination', '/routes/5/destination', '/routes/10/destination', '/zzz']);
    });

    it('do not depend on the order of keys in the document', () => {
      const a = { mtls: { mode: 'x', foo: 1 }, bar: 2, routes: [{ destination: 'y', name: '' }] };
      const b = { routes: [{ name: '', destination: 'y' }], bar: 2, mtls: { foo: 1, mode: 'x' } };
      assert.deepEqual(validateAgentDocument(a), validateAgentDocument(b));
      assert.deepEqual(validateAgentDocument(a), validateAgentDocument(a));
    });
  });
});

const validSettings: JsonObject = {
  trustDomain: 'prod.example.org',
  policy: { secureZones: ['pci'], allowedDestinations: ['*.internal', '**.svc.cluster.local', 'api.example.com:443', 'db.internal:*'] },
  rollout: {
    waves: [
      { name: 'canary', match: { ring: 'canary', zone: ['eu-1', 'eu-2'] }, bake: '10m' },
      { name: 'ten-percent', percent: 10, bake: '1h30m' },
      { name: 'everyone' },
    ],
    successRatio: 0.95,
    maxNackRatio: 0.05,
    ackTimeout: '5m',
    windows: [
      { kind: 'allow', schedule: '0 9 * * MON-FRI', duration: '8h', timeZone: 'Europe/Berlin' },
      { kind: 'deny', schedule: '0 0 24 12 *', duration: '2d' },
    ],
    expediteReverts: true,
  },
};

const settingsWith = (path: readonly (string | number)[], value: JsonValue | undefined): JsonValue =>
  withValueAt(validSettings as JsonValue, path, value);

describe('validateSettingsDocument (meshcfg.yaml)', () => {
  it('accepts a full valid file', () => {
    assert.deepEqual(validateSettingsDocument(validSettings), []);
  });

  it('accepts a file with only the trust domain', () => {
    assert.deepEqual(validateSettingsDocument({ trustDomain: 'example.org' }), []);
  });

  it('requires trustDomain, naming it', () => {
    const findings = validateSettingsDocument(settingsWith(['trustDomain'], undefined));
    assert.deepEqual(pathsOf(findings), ['']);
    assert.match(findings[0]!.message, /"trustDomain"/);
  });

  describe('unknown keys', () => {
    const cases: { where: string; path: (string | number)[]; pointer: string }[] = [
      { where: 'at the top level', path: ['waves'], pointer: '/waves' },
      { where: 'in policy', path: ['policy', 'secureZone'], pointer: '/policy/secureZone' },
      { where: 'in rollout', path: ['rollout', 'maxNackRate'], pointer: '/rollout/maxNackRate' },
      { where: 'in a wave', path: ['rollout', 'waves', 1, 'percentage'], pointer: '/rollout/waves/1/percentage' },
      { where: 'in a window', path: ['rollout', 'windows', 0, 'tz'], pointer: '/rollout/windows/0/tz' },
    ];
    for (const { where, path, pointer } of cases) {
      it(`are errors ${where}`, () => {
        assert.deepEqual(pathsOf(validateSettingsDocument(settingsWith(path, 1))), [pointer]);
      });
    }
  });

  describe('wrong values', () => {
    const cases: { what: string; path: (string | number)[]; value: JsonValue | undefined; pointer: string }[] = [
      { what: 'a trust domain with a scheme', path: ['trustDomain'], value: 'spiffe://prod', pointer: '/trustDomain' },
      { what: 'secureZones as a string', path: ['policy', 'secureZones'], value: 'pci', pointer: '/policy/secureZones' },
      { what: 'a glob with a path', path: ['policy', 'allowedDestinations', 1], value: 'api.internal/v1', pointer: '/policy/allowedDestinations/1' },
      { what: 'a glob with a URL scheme', path: ['policy', 'allowedDestinations', 0], value: 'https://api.internal', pointer: '/policy/allowedDestinations/0' },
      { what: 'an empty wave list', path: ['rollout', 'waves'], value: [], pointer: '/rollout/waves' },
      { what: 'a wave without a name', path: ['rollout', 'waves', 2, 'name'], value: undefined, pointer: '/rollout/waves/2' },
      { what: 'a percent above 100', path: ['rollout', 'waves', 1, 'percent'], value: 101, pointer: '/rollout/waves/1/percent' },
      { what: 'a negative percent', path: ['rollout', 'waves', 1, 'percent'], value: -1, pointer: '/rollout/waves/1/percent' },
      { what: 'an empty any-of list in match', path: ['rollout', 'waves', 0, 'match', 'zone'], value: [], pointer: '/rollout/waves/0/match/zone' },
      { what: 'a number in match', path: ['rollout', 'waves', 0, 'match', 'ring'], value: 1, pointer: '/rollout/waves/0/match/ring' },
      { what: 'a bake with words', path: ['rollout', 'waves', 0, 'bake'], value: '10 minutes', pointer: '/rollout/waves/0/bake' },
      { what: 'a bake with units out of order', path: ['rollout', 'waves', 0, 'bake'], value: '30m1h', pointer: '/rollout/waves/0/bake' },
      { what: 'a bake without a unit', path: ['rollout', 'waves', 0, 'bake'], value: '600', pointer: '/rollout/waves/0/bake' },
      { what: 'a success ratio as a percentage', path: ['rollout', 'successRatio'], value: 95, pointer: '/rollout/successRatio' },
      { what: 'a NACK ratio above 1', path: ['rollout', 'maxNackRatio'], value: 1.5, pointer: '/rollout/maxNackRatio' },
      { what: 'an empty ack timeout', path: ['rollout', 'ackTimeout'], value: '', pointer: '/rollout/ackTimeout' },
      { what: 'an unknown window kind', path: ['rollout', 'windows', 0, 'kind'], value: 'maybe', pointer: '/rollout/windows/0/kind' },
      { what: 'a three-field schedule', path: ['rollout', 'windows', 0, 'schedule'], value: '0 9 *', pointer: '/rollout/windows/0/schedule' },
      { what: 'a window without a duration', path: ['rollout', 'windows', 1, 'duration'], value: undefined, pointer: '/rollout/windows/1' },
      { what: 'a month out of range', path: ['rollout', 'windows', 0, 'schedule'], value: '0 9 31 2-13 *', pointer: '/rollout/windows/0/schedule' },
      { what: 'a minute out of range', path: ['rollout', 'windows', 1, 'schedule'], value: '61 * * * *', pointer: '/rollout/windows/1/schedule' },
      { what: 'an unknown time zone', path: ['rollout', 'windows', 0, 'timeZone'], value: 'Mars/Olympus_Mons', pointer: '/rollout/windows/0/timeZone' },
      { what: 'expediteReverts as a string', path: ['rollout', 'expediteReverts'], value: 'yes', pointer: '/rollout/expediteReverts' },
    ];
    for (const { what, path, value, pointer } of cases) {
      it(`reports ${what} at ${pointer}`, () => {
        assert.deepEqual(pathsOf(validateSettingsDocument(settingsWith(path, value))), [pointer]);
      });
    }
  });

  describe('checks beyond the schema', () => {
    it('rejects a repeated wave name, at the repeat', () => {
      const findings = validateSettingsDocument(settingsWith(['rollout', 'waves', 2, 'name'], 'canary'));
      assert.deepEqual(pathsOf(findings), ['/rollout/waves/2/name']);
    });

    it('rejects a wave with both match and percent, at the percent it would ignore', () => {
      const findings = validateSettingsDocument(settingsWith(['rollout', 'waves', 0, 'percent'], 5));
      assert.deepEqual(pathsOf(findings), ['/rollout/waves/0/percent']);
    });

    it('accepts the catch-all wave (neither match nor percent)', () => {
      assert.deepEqual(validateSettingsDocument({ trustDomain: 'x', rollout: { waves: [{ name: 'all' }] } }), []);
    });
  });
});

describe('the shipped JSON Schema files', () => {
  // The .ts modules are the source; the .json copies are for editors and readers.
  // Regenerate with: MESHCFG_WRITE_SCHEMAS=1 node --import tsx --test test/compile/schema.test.ts
  const copies = [
    { file: 'agent-config.schema.json', schema: agentConfigSchema },
    { file: 'meshcfg-settings.schema.json', schema: meshcfgSettingsSchema },
  ];
  for (const { file, schema } of copies) {
    it(`src/compile/schemas/${file} equals the schema meshcfg validates with`, () => {
      const path = fileURLToPath(new URL(`../../src/compile/schemas/${file}`, import.meta.url));
      const text = `${JSON.stringify(schema, null, 2)}\n`;
      if (process.env['MESHCFG_WRITE_SCHEMAS'] === '1') writeFileSync(path, text);
      assert.equal(readFileSync(path, 'utf8'), text, `${file} is stale; regenerate it (see the comment above)`);
    });
  }
});

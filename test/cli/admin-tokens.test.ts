import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { meshcfg } from '../helpers/cli.js';
import { configFor, fakeTransport, makeFixture, silentLogger, type Fixture } from '../server/helpers.js';

describe('meshcfg token create-admin, list-admin, revoke-admin (against a running server)', () => {
  let fixture: Fixture;
  let server: RunningServer;
  const bootstrap = (): string[] => ['--admin', server.adminUrl, '--admin-token-file', server.adminTokenPath];
  /** Writes a named token to a 0600 file, as an operator would keep it. */
  const tokenFile = (name: string, token: string): string => {
    const path = join(fixture.root, `${name}.token`);
    writeFileSync(path, `${token}\n`, { mode: 0o600 });
    return path;
  };
  const files = new Map<string, string>();
  const as = (name: string): string[] => ['--admin', server.adminUrl, '--admin-token-file', files.get(name) ?? assert.fail(`no token ${name}`)];

  before(async () => {
    fixture = makeFixture();
    server = await startServer(configFor(fixture), { logger: silentLogger, transport: fakeTransport().start });
    await server.syncNow();
  });
  after(async () => {
    await server?.close();
    fixture?.cleanup();
  });

  it('create-admin prints only the token on stdout, and says role and expiry on stderr', async () => {
    const viewer = await meshcfg('token', 'create-admin', 'ci-reader', '--role', 'viewer', ...bootstrap());
    assert.equal(viewer.code, 0, viewer.stderr);
    assert.match(viewer.stdout, /^mcot_[A-Za-z0-9_-]{43}\n$/);
    assert.match(viewer.stderr, /ci-reader \(role viewer\) never expires/);
    files.set('ci-reader', tokenFile('ci-reader', viewer.stdout.trim()));
    const operator = await meshcfg('token', 'create-admin', 'oncall', '--role', 'operator', '--ttl', '8h', ...bootstrap());
    assert.equal(operator.code, 0, operator.stderr);
    assert.match(operator.stderr, /oncall \(role operator\) expires at \d{4}-/);
    files.set('oncall', tokenFile('oncall', operator.stdout.trim()));
  });

  it('a viewer token reads status and is refused a rollout action: exit 2 with FORBIDDEN_ROLE', async () => {
    const status = await meshcfg('status', ...as('ci-reader'));
    assert.equal(status.code, 0, status.stderr);
    const pause = await meshcfg('rollout', 'pause', ...as('ci-reader'));
    assert.equal(pause.code, 2);
    assert.match(pause.stderr, /FORBIDDEN_ROLE/);
  });

  it('an operator token quarantines and approves, audited under its name; it may not create tokens', async () => {
    assert.equal((await meshcfg('quarantine', 'edge-3', '--reason', 'check', ...as('oncall'))).code, 0);
    assert.equal((await meshcfg('approve', 'edge-3', '--reason', 'ok', ...as('oncall'))).code, 0);
    const [approve, quarantine] = await server.fleetStore.listAudit({ limit: 2 });
    assert.deepEqual([approve?.action, approve?.actor, quarantine?.action, quarantine?.actor], ['agent.approve', 'oncall', 'agent.quarantine', 'oncall']);
    const create = await meshcfg('token', 'create-admin', 'sneaky', '--role', 'operator', ...as('oncall'));
    assert.equal(create.code, 2);
    assert.match(create.stderr, /FORBIDDEN_ROLE/);
    assert.equal(create.stdout, '');
  });

  it('create-admin refuses a taken name (exit 2, TOKEN_NAME_TAKEN) and a missing --role (usage)', async () => {
    const taken = await meshcfg('token', 'create-admin', 'oncall', '--role', 'viewer', ...bootstrap());
    assert.equal(taken.code, 2);
    assert.match(taken.stderr, /TOKEN_NAME_TAKEN/);
    const noRole = await meshcfg('token', 'create-admin', 'x', ...bootstrap());
    assert.equal(noRole.code, 2);
    assert.match(noRole.stderr, /--role/);
  });

  it('list-admin shows name, role and state, never a secret', async () => {
    const run = await meshcfg('token', 'list-admin', ...bootstrap());
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^NAME\s+ROLE\s+STATE\s+CREATED\s+BY\s+EXPIRES$/);
    assert.match(lines[1] ?? '', /^ci-reader\s+viewer\s+active\s+\S+\s+admin\s+never$/);
    assert.match(lines[2] ?? '', /^oncall\s+operator\s+active\s+\S+\s+admin\s+\d{4}-/);
    assert.doesNotMatch(run.stdout, /mcot_/);
  });

  it('revoke-admin revokes: the token is refused at once (exit 2, UNAUTHORIZED)', async () => {
    const run = await meshcfg('token', 'revoke-admin', 'ci-reader', '--reason', 'rotated', ...bootstrap());
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'admin token ci-reader revoked\n');
    const status = await meshcfg('status', ...as('ci-reader'));
    assert.equal(status.code, 2);
    assert.match(status.stderr, /UNAUTHORIZED/);
    const again = await meshcfg('token', 'revoke-admin', 'ci-reader', ...bootstrap());
    assert.equal(again.code, 2);
    assert.match(again.stderr, /ALREADY_REVOKED/);
    const [entry] = await server.fleetStore.listAudit({ limit: 1 });
    assert.deepEqual([entry?.action, entry?.actor, entry?.target, entry?.reason], ['admin-token.revoke', 'admin', 'ci-reader', 'rotated']);
  });
});

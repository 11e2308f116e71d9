import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { formatStatus, relative } from '../../src/cli/status.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import type { Delivery } from '../../src/transport/backend.js';
import { meshcfg } from '../helpers/cli.js';
import { forgeCsr, rsaKey } from '../pki/helpers.js';
import { configFor, fakeTransport, makeFixture, silentLogger, type Fixture } from '../server/helpers.js';
import { aid, cid } from '../helpers/ids.js';

describe('meshcfg status, approve, quarantine, revoke (against a running server)', () => {
  let fixture: Fixture;
  let server: RunningServer;
  let transport: ReturnType<typeof fakeTransport>;
  const admin = (): string[] => ['--admin', server.adminUrl, '--admin-token-file', server.adminTokenPath];

  before(async () => {
    fixture = makeFixture();
    transport = fakeTransport();
    server = await startServer(configFor(fixture), { logger: silentLogger, transport: transport.start });
    await server.syncNow();
    // edge-1 connects and acks its bundle: SYNCED with a certificate and a last contact.
    const issued = server.dataDir.ca.issueAgentCertificate({ csrPem: forgeCsr(rsaKey()), agentId: aid('edge-1') });
    const certificate = new X509Certificate(issued.certPem);
    const identity = { agentId: aid('edge-1'), certificate, serialNumber: certificate.serialNumber, notAfter: issued.notAfter };
    const backend = transport.backend();
    backend.reportActive(identity, null);
    const d = backend.desired(aid('edge-1')) as Delivery;
    backend.ack(identity, { commit: d.commit, digest: d.digest, generation: d.generation, nonce: d.nonce, status: 'APPLIED', error: '' });
  });
  after(async () => {
    await server?.close();
    fixture?.cleanup();
  });

  it('prints what the server serves and which replica answered, then one line per agent under a header, and a summary line', async () => {
    const run = await meshcfg('status', ...admin());
    assert.equal(run.code, 0, run.stderr);
    const source = server.reconciler.status();
    const [first, blank, ...lines] = run.stdout.trimEnd().split('\n');
    assert.equal(first, `serving ${source.serving?.slice(0, 7)} (generation ${source.generation}) · replica ${server.leadership.replica} (leader)`);
    assert.equal(blank, '');
    assert.match(lines[0] ?? '', /^AGENT\s+WAVE\s+STATE\s+DESIRED\s+ACTIVE\s+CERT EXPIRES\s+LAST SEEN$/);
    const edge1 = (lines[1] ?? '').split(/\s{3,}/);
    assert.equal(edge1[0], 'edge-1');
    assert.equal(edge1[1], 'canary');
    assert.equal(edge1[2], 'SYNCED');
    assert.match(edge1[3] ?? '', /^[0-9a-f]{7}:[0-9a-f]{8}$/);
    assert.equal(edge1[4], edge1[3], 'active is desired');
    assert.match(edge1[5] ?? '', /^in \d+[dhms]$/);
    assert.match(edge1[6] ?? '', /^\d+[dhms] ago$/);
    assert.equal(lines.filter((l) => /^edge-\d/.test(l)).length, 4);
    assert.match(lines.at(-1) ?? '', /^4 agents: 1 SYNCED, 3 DISCONNECTED$/);
  });

  it('--json prints the API answer', async () => {
    const run = await meshcfg('status', '--json', ...admin());
    assert.equal(run.code, 0, run.stderr);
    const agents = JSON.parse(run.stdout) as Array<{ id: string; wave: string; state: string }>;
    assert.deepEqual(agents.map((a) => a.id), ['edge-1', 'edge-2', 'edge-3', 'edge-4']);
    assert.equal(agents[0]?.wave, 'canary');
  });

  it('quarantine and approve an agent, with the reason and actor in the audit log', async () => {
    // --actor is still accepted, and ignored: the audit log records the token's name.
    const q = await meshcfg('quarantine', 'edge-2', '--reason', 'suspicious', '--actor', 'carol', ...admin());
    assert.equal(q.code, 0, q.stderr);
    assert.match(q.stdout, /edge-2 quarantined; state QUARANTINED/);
    const status = await meshcfg('status', ...admin());
    assert.match(status.stdout, /edge-2\s+\S+\s+QUARANTINED\s+[0-9a-f]{7}:[0-9a-f]{8}\(baseline\)/);
    const a = await meshcfg('approve', 'edge-2', '--reason', 'checked', ...admin());
    assert.equal(a.code, 0, a.stderr);
    const [approve, quarantine] = await server.fleetStore.listAudit({ limit: 2 });
    assert.deepEqual([approve?.action, approve?.actor, approve?.reason], ['agent.approve', 'admin', 'checked']);
    assert.deepEqual([quarantine?.action, quarantine?.actor, quarantine?.reason], ['agent.quarantine', 'admin', 'suspicious']);
  });

  it('revoke an agent certificate', async () => {
    const run = await meshcfg('revoke', 'edge-1', ...admin());
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /edge-1 revoked \(certificate [0-9a-f]+\)/);
  });

  const refusals: ReadonlyArray<{ what: string; args: () => string[]; stderr: RegExp }> = [
    { what: 'approve of an agent that is not quarantined', args: () => ['approve', 'edge-3', '--reason', 'x', ...admin()], stderr: /NOT_QUARANTINED/ },
    { what: 'an unknown agent', args: () => ['quarantine', 'nobody', '--reason', 'x', ...admin()], stderr: /UNKNOWN_AGENT/ },
    { what: 'approve without --reason', args: () => ['approve', 'edge-3', ...admin()], stderr: /--reason/ },
    { what: 'no admin token', args: () => ['status', '--admin', server.adminUrl], stderr: /no admin token/ },
    { what: 'an unreachable admin API', args: () => ['status', '--admin', 'http://127.0.0.1:1', '--admin-token-file', server.adminTokenPath], stderr: /ECONNREFUSED|unreachable|admin API/ },
  ];
  for (const { what, args, stderr } of refusals) {
    it(`exits 2 for ${what}`, async () => {
      const run = await meshcfg(...args());
      assert.equal(run.code, 2);
      assert.match(run.stderr, stderr);
    });
  }

  it('--help names the columns and how the server is found', async () => {
    const run = await meshcfg('status', '--help');
    assert.equal(run.code, 0);
    assert.match(run.stdout, /--admin-token-file/);
    assert.match(run.stdout, /MESHCFG_ADMIN/);
  });
});

describe('formatStatus', () => {
  const now = new Date('2030-01-01T12:00:00Z');
  it('shortens versions, marks the baseline and counts states in a fixed order', () => {
    const text = formatStatus(
      [
        { id: 'a', wave: 'canary', state: 'QUARANTINED', desired: { commit: cid('abcdef0123'), digest: 'sha256:0011223344556677', baseline: true }, active: null, certExpiry: null, lastSeen: null },
        { id: 'b', wave: '', state: 'SYNCED', desired: null, active: { commit: cid('1234567890'), digest: 'sha256:8899aabbccdd' }, certExpiry: '2030-01-02T12:00:00Z', lastSeen: '2030-01-01T11:59:55Z' },
      ],
      now,
    );
    const lines = text.trimEnd().split('\n');
    assert.deepEqual(lines[1]?.split(/\s{3,}/), ['a', 'canary', 'QUARANTINED', 'abcdef0:00112233(baseline)', '-', '-', 'never']);
    assert.deepEqual(lines[2]?.split(/\s{3,}/), ['b', '-', 'SYNCED', '-', '1234567:8899aabb', 'in 1d', '5s ago']);
    assert.equal(lines.at(-1), '2 agents: 1 SYNCED, 1 QUARANTINED');
  });

  describe('an agent with a last rejection', () => {
    const rejection = (commit: string, error: string, at = '2030-01-01T11:58:00Z') => ({ commit, digest: 'sha256:feedface00112233', error, at });
    const version = { commit: cid('1111111aaaa'), digest: 'sha256:aaaaaaaa0000' };
    const text = formatStatus(
      [
        // Sent back to its previous bundle by a halt: SYNCED, and it still rejected 2222222.
        { id: 'back', wave: 'canary', state: 'SYNCED', desired: version, active: version, certExpiry: null, lastSeen: null, lastRejection: rejection('2222222bbbb', 'RELOAD_FAILED: exit 1') },
        { id: 'fine', wave: 'rest', state: 'SYNCED', desired: version, active: version, certExpiry: null, lastSeen: null, lastRejection: null },
        { id: 'nacked', wave: 'rest', state: 'NACKED', desired: version, active: null, certExpiry: null, lastSeen: null, lastRejection: rejection('1111111aaaa', 'RELOAD_FAILED: line 1\n\u001b[31mline 2\u0007', '2030-01-01T10:00:00Z') },
        { id: 'loud', wave: 'rest', state: 'SYNCED', desired: version, active: version, certExpiry: null, lastSeen: null, lastRejection: rejection('3333333cccc', `APPLY_FAILED: ${'x'.repeat(500)}`) },
      ],
      now,
    );
    const lines = text.trimEnd().split('\n');

    it('marks the row’s state with (NACK), as istioctl proxy-status does; a NACKED row says so already', () => {
      assert.equal(lines[1]?.split(/\s{3,}/)[2], 'SYNCED (NACK)');
      assert.equal(lines[2]?.split(/\s{3,}/)[2], 'SYNCED');
      assert.equal(lines[3]?.split(/\s{3,}/)[2], 'NACKED');
    });

    it('names, below the table, the commit and digest each one rejected, when, and its error on one line', () => {
      const nacks = lines.filter((l) => l.startsWith('NACK '));
      assert.deepEqual(nacks.slice(0, 2), ['NACK back: rejected 2222222:feedface 2m ago: RELOAD_FAILED: exit 1', 'NACK nacked: rejected 1111111:feedface 2h ago: RELOAD_FAILED: line 1 [31mline 2']);
      assert.ok((nacks[2]?.length ?? 0) <= 250, 'a long error is cut');
      assert.match(nacks[2] ?? '', /^NACK loud: rejected 3333333:feedface 2m ago: APPLY_FAILED: x+…$/);
      assert.doesNotMatch(text, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/, 'no control character from the agent reaches the terminal');
    });

    it('keeps the summary line last, counting states without the mark', () => {
      assert.equal(lines.at(-1), '4 agents: 3 SYNCED, 1 NACKED');
    });
  });

  it('puts the source above the table when given: a standing refusal, and a follower replica', () => {
    const text = formatStatus([], now, {
      accepted: 'a'.repeat(40),
      generation: 12,
      refused: { commit: 'b'.repeat(40), code: 'UNTRUSTED_SIGNER' },
      replica: { id: 'mesh-2-1f3a', leader: false },
    });
    assert.equal(text.split('\n')[0], 'serving aaaaaaa (generation 12) · refused bbbbbbb (UNTRUSTED_SIGNER) · replica mesh-2-1f3a (follower)');
    assert.equal(formatStatus([], now, { accepted: null, generation: 0, refused: null, replica: null }).split('\n')[0], 'nothing accepted yet');
  });

  it('says relative times in the largest whole unit', () => {
    assert.equal(relative('2030-01-01T11:00:00Z', now), '1h ago');
    assert.equal(relative('2030-01-01T12:00:00Z', now), 'in 0s');
    assert.equal(relative('not a date', now), '?');
  });
});

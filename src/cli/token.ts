import type { Command } from 'commander';
import { adminClientFrom, ADMIN_FLAGS_HELP, runAdminVerb, withAdminOptions, type AdminFlags } from './admin-client.js';
import { AdminClientError } from './errors.js';
import type { CliIo } from './io.js';
import { isObject } from '../lib/index.js';

interface CreateFlags extends AdminFlags {
  readonly ttl: string;
}

interface CreateAdminFlags extends AdminFlags {
  readonly role?: string;
  readonly ttl?: string;
}

interface ListFlags extends AdminFlags {
  readonly json?: boolean;
}

interface RevokeFlags extends AdminFlags {
  readonly reason?: string;
}

export function registerToken(program: Command, io: CliIo, setExit: (code: number) => void): void {
  const token = program.command('token').description('one-time enrollment tokens and named admin API tokens');
  token
    .command('create')
    .description('create a one-time enrollment token for an inventory agent; prints only the token')
    .argument('<agent-id>', 'agent id from the inventory of the accepted commit')
    .option('--ttl <duration>', 'how long the token stays valid (e.g. 30m, 1h)', '1h')
    .option('--admin <url>', ADMIN_FLAGS_HELP.admin)
    .option('--admin-token-file <file>', ADMIN_FLAGS_HELP.adminTokenFile)
    .option('--admin-ca <file>', ADMIN_FLAGS_HELP.adminCa)
    .addHelpText('after', '\nPrints the token alone on stdout, so `TOKEN=$(meshcfg token create edge-1)` works.\nExit codes: 0 created, 2 refused (unknown agent, bad ttl, no admin token, admin API unreachable, usage).')
    .action(async (agentId: string, flags: CreateFlags) => {
      await runAdminVerb(io, setExit, 'token create', async () => {
        const client = await adminClientFrom(flags);
        const body = await client.request('POST', '/api/v1/tokens', { agentId, ttl: flags.ttl });
        const created = body as { token?: unknown; expiresAt?: unknown } | null;
        if (typeof created?.token !== 'string') throw new AdminClientError({ code: 'ADMIN_REFUSED', message: 'the admin API answered without a token' });
        io.stdout.write(`${created.token}\n`);
        if (typeof created.expiresAt === 'string') io.stderr.write(`token for ${agentId} expires at ${created.expiresAt}\n`);
      });
    });

  withAdminOptions(
    token
      .command('create-admin')
      .description('create a named admin API token with a role (needs the bootstrap admin token); prints only the token, once')
      .argument('<name>', 'the token’s name: the audit log’s actor for everything done with it')
      .requiredOption('--role <role>', 'viewer (read-only routes) or operator (also rollout pause/resume/promote/abort, approve, quarantine)')
      .option('--ttl <duration>', 'how long the token stays valid (e.g. 8h, 30d); default: until revoked'),
  )
    .addHelpText('after', '\nPrints the token alone on stdout (it is stored hashed and cannot be shown again).\nExit codes: 0 created, 2 refused (name taken or invalid, bad role or ttl, not the bootstrap token, admin API unreachable, usage).')
    .action(async (name: string, flags: CreateAdminFlags) => {
      await runAdminVerb(io, setExit, 'token create-admin', async () => {
        const client = await adminClientFrom(flags);
        const body = await client.request('POST', '/api/v1/admin-tokens', { name, role: flags.role, ...(flags.ttl === undefined ? {} : { ttl: flags.ttl }) });
        const created = isObject(body) ? body : {};
        if (typeof created['token'] !== 'string') throw new AdminClientError({ code: 'ADMIN_REFUSED', message: 'the admin API answered without a token' });
        io.stdout.write(`${created['token']}\n`);
        const expires = typeof created['expiresAt'] === 'string' ? `expires at ${created['expiresAt']}` : 'never expires (revoke with meshcfg token revoke-admin)';
        io.stderr.write(`admin token ${name} (role ${String(created['role'])}) ${expires}\n`);
      });
    });

  withAdminOptions(
    token
      .command('list-admin')
      .description('list named admin API tokens: name, role, state, creation and expiry (never the secrets)')
      .option('--json', 'print the admin API answer (GET /api/v1/admin-tokens) as JSON'),
  )
    .addHelpText('after', '\nExit codes: 0 listed, 2 refused (not the bootstrap token, admin API unreachable, usage).')
    .action(async (flags: ListFlags) => {
      await runAdminVerb(io, setExit, 'token list-admin', async () => {
        const client = await adminClientFrom(flags);
        const body = await client.request('GET', '/api/v1/admin-tokens');
        if (!Array.isArray(body)) throw new AdminClientError({ code: 'ADMIN_REFUSED', message: 'the admin API answered with something other than a list of tokens' });
        io.stdout.write(flags.json === true ? `${JSON.stringify(body, null, 2)}\n` : formatAdminTokens(body));
      });
    });

  withAdminOptions(
    token
      .command('revoke-admin')
      .description('revoke a named admin API token: refused from its next request on (audited)')
      .argument('<name>', 'the token’s name')
      .option('--reason <text>', 'why (kept in the audit log)'),
  )
    .addHelpText('after', '\nExit codes: 0 revoked, 2 refused (unknown or already revoked token, not the bootstrap token, admin API unreachable, usage).')
    .action(async (name: string, flags: RevokeFlags) => {
      await runAdminVerb(io, setExit, 'token revoke-admin', async () => {
        const client = await adminClientFrom(flags);
        await client.request('DELETE', `/api/v1/admin-tokens/${encodeURIComponent(name)}`, flags.reason === undefined ? undefined : { reason: flags.reason });
        io.stdout.write(`admin token ${name} revoked\n`);
      });
    });
}

/** NAME, ROLE, STATE, CREATED (by), EXPIRES. The body is the server's: read defensively. */
export function formatAdminTokens(body: readonly unknown[]): string {
  const text = (v: unknown): string => (typeof v === 'string' && v !== '' ? v : '-');
  const header = ['NAME', 'ROLE', 'STATE', 'CREATED', 'BY', 'EXPIRES'];
  const rows = body.filter(isObject).map((t) => [text(t['name']), text(t['role']), text(t['state']), text(t['createdAt']), text(t['createdBy']), t['expiresAt'] === null ? 'never' : text(t['expiresAt'])]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('   ');
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

import type { Command } from 'commander';
import { adminClientFrom, AdminClientError, ADMIN_FLAGS_HELP, type AdminFlags } from './admin-client.js';
import { type CliIo, ExitCode } from './io.js';

interface CreateFlags extends AdminFlags {
  readonly ttl: string;
}

export function registerToken(program: Command, io: CliIo, setExit: (code: number) => void): void {
  const token = program.command('token').description('one-time enrollment tokens');
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
      try {
        const client = await adminClientFrom(flags);
        const body = await client.request('POST', '/api/v1/tokens', { agentId, ttl: flags.ttl });
        const created = body as { token?: unknown; expiresAt?: unknown } | null;
        if (typeof created?.token !== 'string') throw new AdminClientError({ code: 'ADMIN_REFUSED', message: 'the admin API answered without a token' });
        io.stdout.write(`${created.token}\n`);
        if (typeof created.expiresAt === 'string') io.stderr.write(`token for ${agentId} expires at ${created.expiresAt}\n`);
        setExit(ExitCode.ok);
      } catch (err) {
        if (!(err instanceof AdminClientError)) throw err;
        io.stderr.write(`meshcfg token create: ${err.message}\n`);
        setExit(ExitCode.refused);
      }
    });
}

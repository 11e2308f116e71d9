import type { Command } from 'commander';
import { adminClientFrom, ADMIN_FLAGS_HELP, runAdminVerb, type AdminFlags } from './admin-client.js';
import type { CliIo } from './io.js';

interface ActionFlags extends AdminFlags {
  readonly reason?: string;
}

type Verb = 'approve' | 'quarantine' | 'revoke';

const VERBS: ReadonlyArray<{ readonly verb: Verb; readonly description: string; readonly reasonRequired: boolean; readonly done: string }> = [
  { verb: 'approve', description: 'let a quarantined agent rejoin: it gets its desired bundle again (audited)', reasonRequired: true, done: 'approved' },
  { verb: 'quarantine', description: 'quarantine an agent by hand: it gets the baseline bundle until approved (audited)', reasonRequired: true, done: 'quarantined' },
  {
    verb: 'revoke',
    description: 'revoke an agent: every certificate ever issued to it is refused from then on, its open streams end (audited); it must enroll again with a new token',
    reasonRequired: false,
    done: 'revoked',
  },
];

/** `meshcfg approve|quarantine|revoke <agent-id>`: thin calls of `POST /api/v1/agents/{id}/{verb}`. */
export function registerAgentActions(program: Command, io: CliIo, setExit: (code: number) => void): void {
  for (const { verb, description, reasonRequired, done } of VERBS) {
    const command = program
      .command(verb)
      .description(description)
      .argument('<agent-id>', 'agent id from the inventory');
    if (reasonRequired) command.requiredOption('--reason <text>', 'why (kept in the audit log)');
    else command.option('--reason <text>', 'why (kept in the audit log)');
    command
      .option('--admin <url>', ADMIN_FLAGS_HELP.admin)
      .option('--admin-token-file <file>', ADMIN_FLAGS_HELP.adminTokenFile)
      .option('--admin-ca <file>', ADMIN_FLAGS_HELP.adminCa)
      .option('--actor <name>', ADMIN_FLAGS_HELP.actor)
      .addHelpText('after', '\nExit codes: 0 done, 2 refused (unknown agent, wrong state, no admin token, admin API unreachable, usage).')
      .action(async (agentId: string, flags: ActionFlags) => {
        await runAdminVerb(io, setExit, verb, async () => {
          const client = await adminClientFrom(flags);
          const body = await client.request('POST', `/api/v1/agents/${encodeURIComponent(agentId)}/${verb}`, flags.reason === undefined ? {} : { reason: flags.reason });
          const doc = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
          const agent = typeof doc['agent'] === 'object' && doc['agent'] !== null ? (doc['agent'] as Record<string, unknown>) : {};
          const serial = typeof doc['serial'] === 'string' ? ` (certificate ${doc['serial']})` : '';
          io.stdout.write(`${agentId} ${done}${serial}; state ${typeof agent['state'] === 'string' ? agent['state'] : 'unknown'}\n`);
        });
      });
  }
}

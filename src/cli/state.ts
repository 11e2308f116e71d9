import type { Command } from 'commander';
import { join } from 'node:path';
import { BaseError, errorMessage } from '../domain/errors.js';
import { importFleet, redactUrl } from '../fleet/index.js';
import { loadServerConfig } from '../server/index.js';
import { type CliIo, ExitCode } from './io.js';

interface ImportFlags {
  readonly config: string;
  readonly from?: string;
}

export function registerState(program: Command, io: CliIo, setExit: (code: number) => void): void {
  const state = program.command('state').description('the fleet state store');
  state
    .command('import')
    .description("copy a SQLite fleet.db into the PostgreSQL fleet database server.yaml names, before the replicas' first start")
    .requiredOption('--config <file>', 'server.yaml of the replicas (state.postgres, or MESHCFG_POSTGRES_URL in the environment)')
    .option('--from <file>', "the fleet.db to copy (default: fleet.db in server.yaml's dataDir)")
    .addHelpText(
      'after',
      '\nCopies everything the one server knew: agents and quarantines, sends and acks, enrollment tokens,\n' +
        'revocations and current certificates, named admin tokens, the rollout, the accepted commit and\n' +
        'generation, the last refusal and the audit log; in one transaction (all or nothing).\n' +
        'Stop the server that writes fleet.db first. The database must hold no fleet state yet.\n' +
        'Exit codes: 0 imported, 2 refused (no PostgreSQL in the config, no fleet.db, the database holds state\n' +
        'already or is out of reach, usage).',
    )
    .action(async (flags: ImportFlags) => {
      try {
        const config = await loadServerConfig(flags.config);
        if (config.state.kind !== 'postgres') {
          io.stderr.write(`meshcfg state import: ${flags.config} names no PostgreSQL fleet store (set state.postgres, or MESHCFG_POSTGRES_URL)\n`);
          setExit(ExitCode.refused);
          return;
        }
        const from = flags.from ?? join(config.dataDir, 'fleet.db');
        const to = redactUrl(config.state.url);
        io.stderr.write(`importing ${from} into PostgreSQL at ${to}\n`);
        const imported = await importFleet(from, config.state.url, (table, rows) => io.stderr.write(`  ${table}: ${rows} rows\n`));
        const agents = imported.tables.find((t) => t.name === 'agents')?.rows ?? 0;
        const accepted = imported.accepted === null ? 'no accepted commit' : `accepted ${imported.accepted}, generation ${imported.generation}`;
        io.stdout.write(`imported ${from} into PostgreSQL at ${to}: ${agents} agents, ${accepted}\n`);
        setExit(ExitCode.ok);
      } catch (err) {
        if (!(err instanceof BaseError)) throw err;
        io.stderr.write(`meshcfg state import: ${err.code}: ${errorMessage(err)}\n`);
        setExit(ExitCode.refused);
      }
    });
}

import type { Command } from 'commander';
import { adminClientFrom, ADMIN_FLAGS_HELP, runAdminVerb, type AdminFlags } from './admin-client.js';
import type { CliIo } from './io.js';
import { isObject } from '../lib/index.js';

interface RolloutFlags extends AdminFlags {
  readonly reason?: string;
  readonly json?: boolean;
}

type Action = 'pause' | 'resume' | 'promote' | 'abort';

const ACTIONS: ReadonlyArray<{ readonly action: Action; readonly description: string; readonly done: string }> = [
  { action: 'pause', description: 'pause rollouts: no further wave starts until resume (audited)', done: 'paused' },
  { action: 'resume', description: 'resume paused rollouts (audited)', done: 'resumed' },
  { action: 'promote', description: 'start the next wave now, overriding bake and windows (audited)', done: 'promoted' },
  { action: 'abort', description: 'abort the rollout: every agent gets the last completed commit again (audited)', done: 'aborted' },
];

/** `meshcfg rollout status|pause|resume|promote|abort`: thin calls of `/api/v1/rollout`. */
export function registerRollout(program: Command, io: CliIo, setExit: (code: number) => void): void {
  const rollout = program.command('rollout').description('show or steer the rollout of the accepted commit');
  const withAdmin = (command: Command): Command =>
    command
      .option('--json', 'print the admin API answer as JSON')
      .option('--admin <url>', ADMIN_FLAGS_HELP.admin)
      .option('--admin-token-file <file>', ADMIN_FLAGS_HELP.adminTokenFile)
      .option('--admin-ca <file>', ADMIN_FLAGS_HELP.adminCa)
      .option('--actor <name>', ADMIN_FLAGS_HELP.actor)
      .addHelpText('after', '\nExit codes: 0 done, 2 refused (wrong rollout state, no admin token, admin API unreachable, usage).');

  withAdmin(rollout.command('status').description('the rollout state, its commit and previous, each wave and the window')).action(async (flags: RolloutFlags) => {
    await runAdminVerb(io, setExit, 'rollout status', async () => {
      const client = await adminClientFrom(flags);
      const body = await client.request('GET', '/api/v1/rollout');
      io.stdout.write(flags.json === true ? `${JSON.stringify(body, null, 2)}\n` : formatRollout(body));
    });
  });

  for (const { action, description, done } of ACTIONS) {
    withAdmin(rollout.command(action).description(description))
      .option('--reason <text>', 'why (kept in the audit log)')
      .action(async (flags: RolloutFlags) => {
        await runAdminVerb(io, setExit, `rollout ${action}`, async () => {
          const client = await adminClientFrom(flags);
          const body = await client.request('POST', `/api/v1/rollout/${action}`, flags.reason === undefined ? {} : { reason: flags.reason });
          if (flags.json === true) {
            io.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
            return;
          }
          const doc = isObject(body) ? body : {};
          const state = isObject(doc['rollout']) && typeof doc['rollout']['state'] === 'string' ? doc['rollout']['state'] : 'unknown';
          io.stdout.write(`rollout ${done}; state ${state}\n`);
        });
      });
  }
}

/** The body is the server's: read defensively. */
export function formatRollout(body: unknown): string {
  const doc = isObject(body) ? body : {};
  const text = (v: unknown): string => (typeof v === 'string' && v !== '' ? v : '-');
  const lines = [
    `STATE     ${text(doc['state'])}`,
    `COMMIT    ${text(doc['commit'])}`,
    `PREVIOUS  ${text(doc['previous'])}`,
  ];
  const window = isObject(doc['window']) ? doc['window'] : {};
  lines.push(`WINDOW    ${window['open'] === true ? 'open' : 'closed'}${window['open'] === true ? '' : `; next opens ${text(window['nextOpen'])}`}`);
  const waves = Array.isArray(doc['waves']) ? doc['waves'].filter(isObject) : [];
  const header = ['WAVE', 'STATE', 'AGENTS', 'APPLIED', 'REJECTED', 'PENDING', 'STARTED', 'COMPLETED'];
  const rows = waves.map((w) => [
    text(w['name']),
    text(w['state']),
    String(w['agents'] ?? 0),
    String(w['applied'] ?? 0),
    String(w['rejected'] ?? 0),
    String(w['pending'] ?? 0),
    text(w['startedAt']),
    text(w['completedAt']),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ');
  lines.push('', line(header), ...rows.map(line));
  return `${lines.join('\n')}\n`;
}

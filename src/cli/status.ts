import type { Command } from 'commander';
import { adminClientFrom, ADMIN_FLAGS_HELP, runAdminVerb, type AdminFlags } from './admin-client.js';
import { AdminClientError } from './errors.js';
import type { CliIo } from './io.js';
import { isObject } from '../lib/index.js';

interface StatusFlags extends AdminFlags {
  readonly json?: boolean;
}

/** The fields of a `GET /api/v1/agents` item that `status` shows. The body is the server's: read defensively. */
interface AgentItem {
  readonly id: string;
  readonly wave: string;
  readonly state: string;
  readonly desired: { readonly commit: string; readonly digest: string; readonly baseline?: boolean } | null;
  readonly active: { readonly commit: string; readonly digest: string } | null;
  readonly certExpiry: string | null;
  readonly lastSeen: string | null;
  /** The agent's last rejection, kept after a halt sent it back to its previous bundle (absent from older servers). */
  readonly lastRejection?: { readonly commit: string; readonly digest: string; readonly error: string; readonly at: string } | null;
}

/** The fields of `GET /api/v1/source` that `status` shows above the table. */
interface SourceItem {
  readonly accepted: string | null;
  readonly generation: number | null;
  readonly refused: { readonly commit: string; readonly code: string } | null;
  /** Which server process answered, and whether it leads (several replicas on PostgreSQL). */
  readonly replica: { readonly id: string; readonly leader: boolean } | null;
}

/** The order states are counted in on the summary line. */
const STATE_ORDER = ['SYNCED', 'PENDING', 'STALE', 'NACKED', 'QUARANTINED', 'DISCONNECTED'];

/** How much of an agent's rejection error a NACK line shows. */
const MAX_ERROR_CHARS = 160;

export function registerStatus(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('status')
    .description('one line per agent: wave, state, desired and active config, certificate expiry, last contact')
    .option('--json', 'print the admin API answer (GET /api/v1/agents) as JSON')
    .option('--admin <url>', ADMIN_FLAGS_HELP.admin)
    .option('--admin-token-file <file>', ADMIN_FLAGS_HELP.adminTokenFile)
    .option('--admin-ca <file>', ADMIN_FLAGS_HELP.adminCa)
    .addHelpText(
      'after',
      '\nThe first line says what the server serves (commit, generation), a refused commit while it stands, and which\nreplica answered (leader or follower). DESIRED and ACTIVE are <commit>:<digest>, both shortened; (baseline) marks a quarantined agent\'s baseline bundle.\n(NACK) marks an agent that rejected a commit and has not applied a newer one since (say, sent back to its\nprevious bundle by a halted rollout); a NACK line below the table names the commit, when, and the agent\'s error.\nExit codes: 0 shown, 2 refused (no admin token, admin API unreachable or refusing, usage).',
    )
    .action(async (flags: StatusFlags) => {
      await runAdminVerb(io, setExit, 'status', async () => {
        const client = await adminClientFrom(flags);
        const body = await client.request('GET', '/api/v1/agents');
        if (!Array.isArray(body)) throw new AdminClientError({ code: 'ADMIN_REFUSED', message: 'the admin API answered with something other than a list of agents' });
        if (flags.json === true) {
          io.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
        } else {
          const source = sourceItem(await client.request('GET', '/api/v1/source'));
          io.stdout.write(formatStatus(body.map(agentItem), new Date(), source));
        }
      });
    });
}

/**
 * The table and the summary line, like `istioctl proxy-status`, which marks a NACKed resource
 * in its status column: an agent whose last rejection still stands shows `(NACK)` beside its
 * state (a NACKED one says so already), and one `NACK` line per such agent, between the table
 * and the summary, says what it rejected, when, and why.
 */
export function formatStatus(agents: readonly AgentItem[], now: Date, source?: SourceItem): string {
  const header = ['AGENT', 'WAVE', 'STATE', 'DESIRED', 'ACTIVE', 'CERT EXPIRES', 'LAST SEEN'];
  const rows = agents.map((a) => [
    a.id,
    a.wave === '' ? '-' : a.wave,
    a.lastRejection != null && a.state !== 'NACKED' ? `${a.state} (NACK)` : a.state,
    a.desired === null ? '-' : `${version(a.desired)}${a.desired.baseline === true ? '(baseline)' : ''}`,
    a.active === null ? '-' : version(a.active),
    a.certExpiry === null ? '-' : relative(a.certExpiry, now),
    a.lastSeen === null ? 'never' : relative(a.lastSeen, now),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('   ').trimEnd();
  const counts = new Map<string, number>();
  for (const a of agents) counts.set(a.state, (counts.get(a.state) ?? 0) + 1);
  const known = STATE_ORDER.filter((s) => counts.has(s));
  const other = [...counts.keys()].filter((s) => !STATE_ORDER.includes(s)).sort();
  const summary = [...known, ...other].map((s) => `${counts.get(s)} ${s}`).join(', ');
  const nacks = agents.flatMap((a) =>
    a.lastRejection == null ? [] : [`NACK ${a.id}: rejected ${version(a.lastRejection)} ${relative(a.lastRejection.at, now)}: ${oneLine(a.lastRejection.error)}`],
  );
  const table = [line(header), ...rows.map(line)].join('\n');
  return `${source === undefined ? '' : `${formatSource(source)}\n\n`}${table}\n\n${nacks.length === 0 ? '' : `${nacks.join('\n')}\n\n`}${agents.length} agent${agents.length === 1 ? '' : 's'}${summary === '' ? '' : `: ${summary}`}\n`;
}

/** `serving 1a2b3c4 (generation 7) · refused 9f8e7d6 (UNTRUSTED_SIGNER) · replica host-1-ab12 (leader)`. */
function formatSource(source: SourceItem): string {
  const parts = [source.accepted === null ? 'nothing accepted yet' : `serving ${source.accepted.slice(0, 7)} (generation ${source.generation ?? '?'})`];
  if (source.refused !== null) parts.push(`refused ${source.refused.commit.slice(0, 7)} (${oneLine(source.refused.code)})`);
  if (source.replica !== null) parts.push(`replica ${oneLine(source.replica.id)} (${source.replica.leader ? 'leader' : 'follower'})`);
  return parts.join(' · ');
}

/**
 * The agent's error on one line: it is the agent's text (a compromised agent chooses it), so
 * control characters — terminal escapes included — never reach the terminal, and it is cut short.
 */
function oneLine(error: string): string {
  const flat = error.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').replace(/\s+/g, ' ').trim();
  return flat.length > MAX_ERROR_CHARS ? `${flat.slice(0, MAX_ERROR_CHARS)}…` : flat;
}

/** `a1b2c3d:1f2e3d4c`: 7 characters of the commit, 8 hex digits of the digest. */
function version(v: { readonly commit: string; readonly digest: string }): string {
  const digest = v.digest.replace(/^sha256:/, '').slice(0, 8);
  return `${v.commit === '' ? '?' : v.commit.slice(0, 7)}:${digest === '' ? '?' : digest}`;
}

/** `5s ago`, `in 23h`, `3d ago`. */
export function relative(iso: string, now: Date): string {
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return '?';
  const delta = at - now.getTime();
  const magnitude = Math.abs(delta);
  const units: ReadonlyArray<[string, number]> = [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000]];
  let text = '0s';
  for (const [unit, size] of units) {
    if (magnitude >= size) {
      text = `${Math.floor(magnitude / size)}${unit}`;
      break;
    }
  }
  return delta >= 0 ? `in ${text}` : `${text} ago`;
}

function agentItem(raw: unknown): AgentItem {
  const o = isObject(raw) ? raw : {};
  const str = (v: unknown): string => (typeof v === 'string' ? v : '');
  const ver = (v: unknown): { commit: string; digest: string; baseline?: boolean } | null =>
    isObject(v) ? { commit: str(v['commit']), digest: str(v['digest']), baseline: v['baseline'] === true } : null;
  return {
    id: str(o['id']),
    wave: str(o['wave']),
    state: str(o['state']) || '?',
    desired: ver(o['desired']),
    active: ver(o['active']),
    certExpiry: typeof o['certExpiry'] === 'string' ? o['certExpiry'] : null,
    lastSeen: typeof o['lastSeen'] === 'string' ? o['lastSeen'] : null,
    lastRejection: isObject(o['lastRejection'])
      ? { commit: str(o['lastRejection']['commit']), digest: str(o['lastRejection']['digest']), error: str(o['lastRejection']['error']), at: str(o['lastRejection']['at']) }
      : null,
  };
}

function sourceItem(raw: unknown): SourceItem {
  const o = isObject(raw) ? raw : {};
  const refused = o['refused'];
  const replica = o['replica'];
  return {
    accepted: typeof o['accepted'] === 'string' ? o['accepted'] : null,
    generation: typeof o['generation'] === 'number' ? o['generation'] : null,
    refused: isObject(refused) && typeof refused['commit'] === 'string' ? { commit: refused['commit'], code: String(refused['code'] ?? '?') } : null,
    replica: isObject(replica) && typeof replica['id'] === 'string' ? { id: replica['id'], leader: replica['leader'] === true } : null,
  };
}

import type { Command } from 'commander';
import { planToJson, renderPlan, runPlan } from '../plan/index.js';
import type { KeyValidityTime } from '../source/trust/index.js';
import { type CliIo, ExitCode } from './io.js';

interface PlanFlags {
  readonly repo: string;
  readonly rev?: string;
  readonly base?: string;
  readonly allowedSigners?: string;
  readonly keyValidity: string;
  readonly json?: boolean;
}

const KEY_VALIDITY_TIMES: readonly KeyValidityTime[] = ['now', 'commit-time'];

export function registerPlan(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('plan')
    .description('verify, compile and policy-check a config revision; show which agents change')
    .requiredOption('--repo <path|url>', 'config repository: a local path or a smart-HTTP(S) URL')
    .option('--rev <rev>', 'revision to plan (branch, tag, sha)', 'HEAD')
    .option('--base <rev>', 'compare with this revision and show what changes per agent')
    .option('--allowed-signers <file>', "verify the revision's signature against this allowed-signers file")
    .option(
      '--key-validity <when>',
      "judge the signer key's valid-after/valid-before window at: now (as a server seeing the commit now would), or commit-time (the committer date, as git does)",
      'now',
    )
    .option('--json', 'print one JSON object on stdout')
    .addHelpText(
      'after',
      '\nExit codes: 0 clean, 1 policy violations, 2 refused (unsigned, bad signature, unreadable repo or revision, usage).',
    )
    .action(async (flags: PlanFlags) => {
      const say = (line: string): void => {
        io.stderr.write(`${line}\n`);
      };
      const keyValidity = KEY_VALIDITY_TIMES.find((t) => t === flags.keyValidity);
      if (keyValidity === undefined) {
        say(`meshcfg plan: refused: USAGE: --key-validity must be ${KEY_VALIDITY_TIMES.join(' or ')}, got ${JSON.stringify(flags.keyValidity)}`);
        setExit(ExitCode.refused);
        return;
      }
      const outcome = await runPlan({
        keyValidity,
        repo: flags.repo,
        ...(flags.rev === undefined ? {} : { rev: flags.rev }),
        ...(flags.base === undefined ? {} : { base: flags.base }),
        ...(flags.allowedSigners === undefined ? {} : { allowedSigners: flags.allowedSigners }),
        progress: say,
      });
      switch (outcome.kind) {
        case 'report': {
          const { report } = outcome;
          if (!report.signature.verified) say(`warning: signature NOT verified: ${report.signature.reason ?? ''}`);
          io.stdout.write(flags.json ? `${JSON.stringify(planToJson(report))}\n` : renderPlan(report));
          setExit(report.violations.length === 0 ? ExitCode.ok : ExitCode.violations);
          return;
        }
        case 'refused': {
          say(`meshcfg plan: refused: ${outcome.code}: ${outcome.message}`);
          if (flags.json) {
            const signature = outcome.signature ?? { verified: false, signer: null, format: null, reason: `${outcome.code}: ${outcome.message}` };
            const body = { commit: outcome.commit, signature, agents: [], violations: [], warnings: [], error: { code: outcome.code, message: outcome.message } };
            io.stdout.write(`${JSON.stringify(body)}\n`);
          }
          setExit(ExitCode.refused);
          return;
        }
        default: {
          const never: never = outcome;
          throw new Error(`unexpected outcome ${JSON.stringify(never)}`);
        }
      }
    });
}

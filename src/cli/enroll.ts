import type { Command } from 'commander';
import { enroll } from '../agent/index.js';
import { AgentError, errorMessage, PkiError } from '../domain/errors.js';
import { agentLogger, parseInterval } from './agent-log.js';
import { type CliIo, ExitCode } from './io.js';

interface EnrollFlags {
  readonly server: string;
  readonly pin: string[];
  readonly token?: string;
  readonly dir: string;
  readonly timeout: string;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

export function registerEnroll(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('enroll')
    .description("enroll this agent: generate its key, get a certificate for it with a one-time token, store the server's CA and signing key")
    .requiredOption('--server <host:port>', "the server's gRPC address")
    .option('--pin <pin>', "the server's key pin from `meshcfg ca pin` (sha256/<base64>); give it twice during a key rotation", collect, [])
    .option('--token <token>', 'the one-time enrollment token from `meshcfg token create` (or MESHCFG_ENROLL_TOKEN)')
    .requiredOption('--dir <dir>', 'the agent directory to write (agent.key, agent.crt, ca.crt, signing-key.pem, agent.json)')
    .option('--timeout <duration>', 'deadline of the connection and of the enrollment call', '15s')
    .addHelpText(
      'after',
      '\nNothing is written unless enrollment succeeds: a wrong pin, a refused token or an unreachable server\n' +
        'leave --dir untouched.\n\nExit codes: 0 enrolled, 2 refused (pin mismatch, bad token, unreachable, usage), 70 internal error.',
    )
    .action(async (flags: EnrollFlags) => {
      const fail = (code: string, message: string): void => {
        io.stderr.write(`meshcfg enroll: ${code}: ${message}\n`);
        setExit(ExitCode.refused);
      };
      const token = flags.token ?? process.env['MESHCFG_ENROLL_TOKEN'];
      if (token === undefined || token.trim() === '') return fail('USAGE', 'an enrollment token is required (--token or MESHCFG_ENROLL_TOKEN)');
      if (flags.pin.length === 0) return fail('USAGE', 'at least one --pin is required');
      if (flags.pin.length > 2) return fail('USAGE', 'at most two --pin values (current and next server key)');
      const timeoutMs = parseInterval(flags.timeout);
      if (timeoutMs === undefined) return fail('USAGE', `--timeout is not a duration like 15s: ${JSON.stringify(flags.timeout)}`);
      try {
        const result = await enroll({
          server: flags.server,
          pins: flags.pin,
          token: token.trim(),
          dir: flags.dir,
          timeoutMs,
          logger: agentLogger(io, 'meshcfg-enroll'),
        });
        io.stdout.write(`enrolled ${result.agentId} in ${result.dir} (certificate expires ${result.expiresAt.toISOString()})\n`);
        setExit(ExitCode.ok);
      } catch (err) {
        if (err instanceof AgentError || err instanceof PkiError) return fail(err.code, errorMessage(err));
        throw err;
      }
    });
}

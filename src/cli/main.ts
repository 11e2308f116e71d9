import { Command, CommanderError } from 'commander';
import { type CliIo, ExitCode } from './io.js';
import { registerPlan } from './plan.js';
import { registerCa } from './ca.js';
import { registerServe } from './serve.js';
import { registerToken } from './token.js';
import { registerEnroll } from './enroll.js';
import { registerAgent } from './agent.js';
import { registerAgentActions } from './agent-actions.js';
import { registerStatus } from './status.js';
import { registerRollout } from './rollout.js';
import { registerState } from './state.js';

const processIo: CliIo = { stdout: process.stdout, stderr: process.stderr };

/**
 * The composition root of the `meshcfg` binary: builds the command tree, runs one verb and
 * returns its exit code. The only module allowed to decide how the process ends (via bin/).
 */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  let exitCode: number = ExitCode.ok;
  const setExit = (code: number): void => {
    exitCode = code;
  };

  const program = new Command('meshcfg')
    .description('GitOps configuration distribution for service-mesh agents')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    })
    .exitOverride();

  // Verbs registered after this point inherit the output and exit settings above.
  registerPlan(program, io, setExit);
  registerCa(program, io, setExit);
  registerServe(program, io, setExit);
  registerToken(program, io, setExit);
  registerEnroll(program, io, setExit);
  registerAgent(program, io, setExit);
  registerStatus(program, io, setExit);
  registerAgentActions(program, io, setExit);
  registerRollout(program, io, setExit);
  registerState(program, io, setExit);

  try {
    await program.parseAsync([...argv]);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with exitCode 0; usage errors are "refused" (exit 2).
      return err.exitCode === 0 ? ExitCode.ok : ExitCode.refused;
    }
    throw err;
  }
  return exitCode;
}

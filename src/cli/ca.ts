import type { Command } from 'commander';
import { errorMessage, PkiError } from '../domain/errors.js';
import { readServerPin } from '../pki/index.js';
import { type CliIo, ExitCode } from './io.js';

interface PinFlags {
  readonly dataDir: string;
}

export function registerCa(program: Command, io: CliIo, setExit: (code: number) => void): void {
  const ca = program.command('ca').description("inspect the server's enrollment CA and keys");
  ca.command('pin')
    .description("print the pin of the server's key (sha256/<base64 SPKI digest>) for `meshcfg enroll --pin`")
    .requiredOption('--data-dir <dir>', 'the server data directory (dataDir in server.yaml)')
    .addHelpText('after', '\nExit codes: 0 printed, 2 no server certificate in the data directory (or usage).')
    .action(async (flags: PinFlags) => {
      try {
        io.stdout.write(`${await readServerPin(flags.dataDir)}\n`);
        setExit(ExitCode.ok);
      } catch (err) {
        if (!(err instanceof PkiError)) throw err;
        io.stderr.write(`meshcfg ca pin: ${err.code}: ${errorMessage(err)}\n`);
        setExit(ExitCode.refused);
      }
    });
}

/** Where a command writes. Injected so commands can be exercised in-process as well as from the binary. */
export interface CliIo {
  readonly stdout: { write(chunk: string): unknown };
  readonly stderr: { write(chunk: string): unknown };
}

/** Exit codes shared by every verb. `plan` gives 1 the meaning "policy violations". */
export const ExitCode = {
  ok: 0,
  violations: 1,
  refused: 2,
  internal: 70,
} as const;

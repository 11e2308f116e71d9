import { pino } from 'pino';
import { parseDuration } from '../domain/duration.js';
import type { AgentLogger } from '../agent/index.js';
import type { CliIo } from './io.js';

/**
 * Structured logs (pino JSON lines) on the command's stderr; stdout stays for results.
 * Level from MESHCFG_LOG_LEVEL (default info). Callers never log keys or tokens.
 */
export function agentLogger(io: CliIo, name: string): AgentLogger {
  return pino(
    { name, level: process.env['MESHCFG_LOG_LEVEL'] ?? 'info', base: { pid: process.pid } },
    { write: (line: string) => io.stderr.write(line) },
  );
}

/** A positive duration (`250ms`, `5s`, `1h30m`) in milliseconds; undefined for anything else, zero included. */
export function parseInterval(text: string): number | undefined {
  const ms = parseDuration(text);
  return ms !== undefined && ms > 0 ? ms : undefined;
}

/**
 * The slice of pino the agent logs through (a pino `Logger` satisfies it). Contract for
 * callers: never put keys, tokens or certificates' private halves in `fields`.
 */
export interface AgentLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export const silentLogger: AgentLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

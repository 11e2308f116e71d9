import { createServer } from 'node:net';
import { DemoError } from './errors.js';

/** True when nothing listens on host:port right now (there is still a race with other programs). */
export function isPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

export interface PortChoice {
  readonly port: number;
  /** Set when the wanted port was taken and the next free one is used instead. */
  readonly movedFrom?: number;
}

/**
 * The port to use for `what`. A port the user asked for explicitly must be free (PORT_IN_USE
 * otherwise: silently using another would surprise); a default port moves to the next free one
 * (up to `span` ports above), skipping `exclude` (the other listener's port).
 */
export async function choosePort(what: string, wanted: number, explicit: boolean, exclude: readonly number[] = [], span = 50): Promise<PortChoice> {
  if (explicit) {
    if (!exclude.includes(wanted) && (await isPortFree(wanted))) return { port: wanted };
    throw new DemoError({
      code: 'PORT_IN_USE',
      message: `port ${wanted} (${what}) is taken${exclude.includes(wanted) ? ' by the other demo listener' : ''}: choose another with --${what}-port, or stop what listens there`,
    });
  }
  for (let port = wanted; port <= Math.min(wanted + span, 65_535); port += 1) {
    if (!exclude.includes(port) && (await isPortFree(port))) return port === wanted ? { port } : { port, movedFrom: wanted };
  }
  throw new DemoError({ code: 'PORT_IN_USE', message: `ports ${wanted}–${wanted + span} (${what}) are all taken: choose one with --${what}-port` });
}

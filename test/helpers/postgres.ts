import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { redactUrl } from '../../src/fleet/postgres/connection.js';

/**
 * A real PostgreSQL for tests. `bash scripts/test-postgres.sh` starts the local cluster and
 * creates the `meshcfg` role (`.ci/run` does it before `npm test`). Tests never skip when it is
 * down: they fail with a message saying how to start it.
 */
export const TEST_POSTGRES_URL = process.env.MESHCFG_TEST_POSTGRES_URL ?? 'postgres://meshcfg:meshcfg@127.0.0.1:5432/postgres';

export interface TestDatabase {
  /** Connection string of a database created for this test alone. */
  readonly url: string;
  readonly name: string;
  /** Drops the database (closing what is still connected to it). */
  drop(): Promise<void>;
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: TEST_POSTGRES_URL, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(
      `PostgreSQL is not reachable at ${redactUrl(TEST_POSTGRES_URL)} (${(err as Error).message}). ` +
        'Start it with `bash scripts/test-postgres.sh` (or set MESHCFG_TEST_POSTGRES_URL to a server where the user may create databases).',
    );
  }
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Creates an empty database for one test; `drop()` it in an `after` hook. */
export async function createTestDatabase(prefix = 'meshcfg_test'): Promise<TestDatabase> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  await admin((client) => client.query(`CREATE DATABASE ${name}`));
  const url = new URL(TEST_POSTGRES_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: () => admin((client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}

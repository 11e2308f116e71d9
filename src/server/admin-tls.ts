import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { errorMessage } from '../domain/errors.js';
import { assertNever } from '../lib/index.js';
import { readSecretFile, type DataDir } from '../pki/index.js';
import { isLoopbackHost, type AdminTlsConfig } from './config.js';
import { ServerError } from './errors.js';

/**
 * The admin API's certificate and key: none (plain HTTP), the server's own (from the data
 * directory), or PEM files — checked here, so a bad file fails the start naming `adminTls`.
 */
export async function loadAdminTls(config: AdminTlsConfig, dataDir: DataDir): Promise<{ cert: string; key: string } | undefined> {
  switch (config.kind) {
    case 'off':
      return undefined;
    case 'server':
      return { cert: dataDir.serverCertPem, key: dataDir.serverKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
    case 'files': {
      let material: { cert: string; key: string };
      try {
        const key = await readSecretFile(config.key);
        if (key === undefined) throw new Error(`${config.key} does not exist`);
        material = { cert: await readFile(config.cert, 'utf8'), key };
        createSecureContext(material);
      } catch (cause) {
        const message = `adminTls: cannot use ${config.cert} and ${config.key}: ${errorMessage(cause)}`;
        throw new ServerError({ code: 'CONFIG_INVALID', message, cause });
      }
      return material;
    }
    default:
      return assertNever(config);
  }
}

/** An admin API beyond loopback is logged, louder without TLS (tokens would cross the network in clear). */
export function warnBeyondLoopback(logger: Logger, host: string, tls: boolean): void {
  if (isLoopbackHost(host)) return;
  logger.warn(
    { event: 'admin-not-loopback', host, tls },
    tls
      ? `the admin API listens on ${host}, beyond loopback (TLS on)`
      : `the admin API listens on ${host}, beyond loopback, in plain HTTP: tokens cross the network in clear text; set adminTls`,
  );
}

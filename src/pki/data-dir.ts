import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject, randomBytes, X509Certificate } from 'node:crypto';
import { chmod, mkdir, open, realpath, rm, stat, statfs } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { errorMessage, PkiError } from '../domain/errors.js';
import {
  createCa,
  DEFAULT_AGENT_CERT_TTL_MS,
  DEFAULT_CA_VALIDITY_MS,
  DEFAULT_SERVER_CERT_TTL_MS,
  EnrollmentCa,
  generateRsaKeyPair,
} from './ca.js';
import { certificateExpiry, parseServerNames, serverNameKey, serverNamesOfCertificate } from './identity.js';
import { type Pin, spkiPin } from './pin.js';
import { readOptionalFile, writeFileAtomic } from '../lib/index.js';
import { readSecretFile } from './secret-file.js';

/** Public files (certificates) are world-readable; everything secret is 0600 under a 0700 directory. */
const PUBLIC_FILE_MODE = 0o644;
const DIRECTORY_MODE = 0o700;

/** Recognisable like enrollment tokens, so a scanner or a reviewer knows what leaked. */
const ADMIN_TOKEN_PREFIX = 'mcat_';

export interface DataDirPaths {
  readonly dir: string;
  readonly caCert: string;
  readonly caKey: string;
  readonly serverCert: string;
  readonly serverKey: string;
  /** ECDSA P-256 key that signs bundles (PKCS#8 PEM). */
  readonly signingKey: string;
  readonly adminToken: string;
}

export function dataDirPaths(dataDir: string): DataDirPaths {
  return {
    dir: dataDir,
    caCert: join(dataDir, 'ca.crt'),
    caKey: join(dataDir, 'ca.key'),
    serverCert: join(dataDir, 'server.crt'),
    serverKey: join(dataDir, 'server.key'),
    signingKey: join(dataDir, 'signing-key.pem'),
    adminToken: join(dataDir, 'admin-token'),
  };
}

export interface DataDirOptions {
  readonly dataDir: string;
  /** The SPIFFE trust domain; a data dir whose CA belongs to another one is refused. */
  readonly trustDomain: string;
  /** `tls.serverNames`. */
  readonly serverNames: readonly string[];
  readonly now?: () => Date;
  readonly caValidityMs?: number;
  readonly serverCertTtlMs?: number;
  readonly agentCertTtlMs?: number;
  /** Reissue the server certificate on start when less than this much of it remains. Default 30 days. */
  readonly serverCertRenewBeforeMs?: number;
}

/** One thing `openDataDir` changed, for a log line such as "created server key at /data/server.key". */
export interface DataDirChange {
  readonly action: 'created' | 'reissued' | 'restricted';
  readonly what: string;
  readonly path: string;
  readonly reason?: string;
}

/**
 * The server's keys and certificates, loaded. Keys are `KeyObject`s, which print as
 * `PrivateKeyObject { … }` rather than their material if something logs this object.
 */
export interface DataDir {
  readonly paths: DataDirPaths;
  readonly changes: readonly DataDirChange[];
  readonly ca: EnrollmentCa;
  readonly serverCertPem: string;
  /** For TLS: `serverKey.export({ type: 'pkcs8', format: 'pem' })`. */
  readonly serverKey: KeyObject;
  /** What agents pin; stable across reissues because the server key is kept. */
  readonly serverPin: Pin;
  readonly signingKey: KeyObject;
  /** SPKI PEM of the bundle signing key, handed to agents at enrollment. */
  readonly signingPublicKeyPem: string;
}

const generateKeyPairAsync = promisify(generateKeyPair);

/**
 * Creates what is missing in the data directory and loads the rest: the enrollment CA, the
 * server key and certificate for `serverNames`, the bundle signing key and the admin token.
 *
 * Later starts reuse everything. The server certificate is reissued — under the same key, so
 * the pin agents hold stays valid — when the names changed, it expires soon, or it was not
 * issued by the current CA. Contract: one process owns the directory at a time.
 */
export async function openDataDir(options: DataDirOptions): Promise<DataDir> {
  const opts = {
    now: options.now ?? (() => new Date()),
    caValidityMs: options.caValidityMs ?? DEFAULT_CA_VALIDITY_MS,
    serverCertTtlMs: options.serverCertTtlMs ?? DEFAULT_SERVER_CERT_TTL_MS,
    agentCertTtlMs: options.agentCertTtlMs ?? DEFAULT_AGENT_CERT_TTL_MS,
    serverCertRenewBeforeMs: options.serverCertRenewBeforeMs ?? 30 * 24 * 60 * 60_000,
  };
  // Validate names before anything is written, so a typo does not leave a half-made directory.
  const serverNames = parseServerNames(options.serverNames);
  const paths = dataDirPaths(options.dataDir);
  const changes: DataDirChange[] = [];

  await prepareDirectory(paths.dir, changes);
  const ca = await loadOrCreateCa(paths, options.trustDomain, opts, changes);

  let serverKeyPem = await readSecretFile(paths.serverKey);
  if (serverKeyPem === undefined) {
    serverKeyPem = (await generateRsaKeyPair()).privateKeyPem;
    await writeFileAtomic(paths.serverKey, serverKeyPem);
    changes.push({ action: 'created', what: 'server key', path: paths.serverKey });
  }
  const serverKey = parsePrivateKey(serverKeyPem, paths.serverKey);
  if (serverKey.asymmetricKeyType !== 'rsa') {
    throw new PkiError({ code: 'DATA_DIR_INVALID', message: `${paths.serverKey} is not an RSA key; the enrollment CA certifies RSA keys only` });
  }
  const serverPublicKey = createPublicKey(serverKey);

  let serverCertPem = await readOptionalFile(paths.serverCert);
  const reason = serverCertPem === undefined ? undefined : reasonToReissue(serverCertPem, ca, serverPublicKey, serverNames, opts);
  if (serverCertPem === undefined || reason !== undefined) {
    serverCertPem = ca.issueServerCertificate({
      serverNames: options.serverNames,
      publicKeyPem: serverPublicKey.export({ type: 'spki', format: 'pem' }).toString(),
    }).certPem;
    await writeFileAtomic(paths.serverCert, serverCertPem, PUBLIC_FILE_MODE);
    changes.push(
      reason === undefined
        ? { action: 'created', what: 'server certificate', path: paths.serverCert }
        : { action: 'reissued', what: 'server certificate', path: paths.serverCert, reason },
    );
  }

  let signingKeyPem = await readSecretFile(paths.signingKey);
  if (signingKeyPem === undefined) {
    const { privateKey } = await generateKeyPairAsync('ec', { namedCurve: 'prime256v1' });
    signingKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    await writeFileAtomic(paths.signingKey, signingKeyPem);
    changes.push({ action: 'created', what: 'bundle signing key', path: paths.signingKey });
  }
  const signingKey = parsePrivateKey(signingKeyPem, paths.signingKey);
  // @sigstore/verify does not verify Ed25519 message signatures (docs/architecture.md): P-256 only.
  if (signingKey.asymmetricKeyType !== 'ec' || signingKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new PkiError({ code: 'DATA_DIR_INVALID', message: `${paths.signingKey} is not an ECDSA P-256 key` });
  }

  const adminToken = await readSecretFile(paths.adminToken);
  if (adminToken === undefined) {
    await writeFileAtomic(paths.adminToken, `${ADMIN_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}\n`);
    changes.push({ action: 'created', what: 'admin token', path: paths.adminToken });
  } else if (adminToken.trim() === '') {
    throw new PkiError({ code: 'DATA_DIR_INVALID', message: `${paths.adminToken} is empty; delete it to have a new token created` });
  }

  return {
    paths,
    changes,
    ca,
    serverCertPem,
    serverKey,
    serverPin: spkiPin(serverPublicKey),
    signingKey,
    signingPublicKeyPem: createPublicKey(signingKey).export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/**
 * Kernel file systems: nothing persists there, and Node 20's recursive mkdir under /proc never
 * returns (it spins on a thread-pool thread), so such a path is refused before any mkdir.
 */
const VIRTUAL_ROOTS: readonly string[] = ['/proc', '/sys', '/dev'];
/** statfs(2) magic numbers of procfs and sysfs, which may be mounted elsewhere too. */
const VIRTUAL_FILE_SYSTEMS: ReadonlyMap<number, string> = new Map([
  [0x9fa0, 'procfs'],
  [0x62656572, 'sysfs'],
]);

function unusable(dir: string, why: string, cause?: unknown): PkiError {
  return new PkiError({ code: 'DATA_DIR_INVALID', message: `data directory ${dir} cannot be used: ${why}`, cause });
}

/** The real path of `dir`'s nearest existing ancestor, and what lies below it. Never creates anything. */
async function nearestExisting(dir: string): Promise<{ real: string; rest: string }> {
  let existing = resolve(dir);
  for (;;) {
    try {
      return { real: await realpath(existing), rest: relative(existing, resolve(dir)) };
    } catch (cause) {
      const parent = dirname(existing);
      if (parent === existing) throw unusable(dir, errorMessage(cause), cause);
      existing = parent;
    }
  }
}

async function refuseVirtualFileSystem(dir: string): Promise<void> {
  const { real, rest } = await nearestExisting(dir);
  const target = join(real, rest);
  const root = VIRTUAL_ROOTS.find((r) => target === r || target.startsWith(`${r}/`));
  if (root !== undefined) throw unusable(dir, `it is under ${root}, a kernel file system; choose a directory on persistent storage`);
  const kind = VIRTUAL_FILE_SYSTEMS.get((await statfs(real).catch(() => null))?.type ?? 0);
  if (kind !== undefined) throw unusable(dir, `it is on ${kind}, a kernel file system; choose a directory on persistent storage`);
}

/**
 * Makes the directory (0700) or tightens an existing one, and proves it takes new files.
 * Every way this can fail — a path through a file (ENOTDIR), an immutable or read-only
 * directory (EPERM, EROFS), no permission (EACCES), a kernel file system — is DATA_DIR_INVALID,
 * a configuration error the operator fixes, never an internal error.
 */
async function prepareDirectory(dir: string, changes: DataDirChange[]): Promise<void> {
  await refuseVirtualFileSystem(dir);
  let created: string | undefined;
  let info;
  try {
    created = await mkdir(dir, { recursive: true, mode: DIRECTORY_MODE });
    info = await stat(dir);
  } catch (cause) {
    throw unusable(dir, errorMessage(cause), cause);
  }
  if (!info.isDirectory()) throw new PkiError({ code: 'DATA_DIR_INVALID', message: `${dir} is not a directory` });
  try {
    if (created !== undefined) {
      // mkdir's mode is filtered by the umask; set it exactly.
      await chmod(dir, DIRECTORY_MODE);
      changes.push({ action: 'created', what: 'data directory', path: dir });
    } else if ((info.mode & 0o077) !== 0) {
      await chmod(dir, DIRECTORY_MODE);
      changes.push({ action: 'restricted', what: 'data directory', path: dir, reason: `mode was ${(info.mode & 0o777).toString(8)}, now 700` });
    }
  } catch (cause) {
    throw unusable(dir, errorMessage(cause), cause);
  }
  await probeWritable(dir);
}

/** Creates and removes a file, as every key, token and fleet.db write will need to. */
async function probeWritable(dir: string): Promise<void> {
  const probe = join(dir, `.meshcfg-probe-${randomBytes(6).toString('hex')}`);
  try {
    const handle = await open(probe, 'wx', 0o600);
    await handle.close();
  } catch (cause) {
    throw unusable(dir, `it takes no new files: ${errorMessage(cause)}`, cause);
  }
  await rm(probe, { force: true }).catch((cause: unknown) => {
    throw unusable(dir, `a file created in it cannot be removed: ${errorMessage(cause)}`, cause);
  });
}

async function loadOrCreateCa(
  paths: DataDirPaths,
  trustDomain: string,
  opts: { now: () => Date; caValidityMs: number; serverCertTtlMs: number; agentCertTtlMs: number },
  changes: DataDirChange[],
): Promise<EnrollmentCa> {
  const caOptions = { now: opts.now, serverCertTtlMs: opts.serverCertTtlMs, agentCertTtlMs: opts.agentCertTtlMs };
  const keyPem = await readSecretFile(paths.caKey);
  const certPem = await readOptionalFile(paths.caCert);
  if (certPem !== undefined && keyPem === undefined) {
    throw new PkiError({
      code: 'DATA_DIR_INVALID',
      message: `${paths.caCert} exists but ${paths.caKey} does not: restore the CA key, or remove both to start a new CA (every agent must enroll again)`,
    });
  }
  if (certPem !== undefined && keyPem !== undefined) {
    const ca = new EnrollmentCa({ certPem, keyPem }, caOptions);
    if (ca.trustDomain !== trustDomain) {
      throw new PkiError({
        code: 'DATA_DIR_INVALID',
        message: `the CA in ${paths.dir} is for trust domain ${ca.trustDomain}, not ${trustDomain}; agent identities would change`,
      });
    }
    return ca;
  }
  // Key first, certificate second: a crash in between leaves a key we can certify next time.
  const material = await createCa({ trustDomain, now: opts.now, validityMs: opts.caValidityMs, ...(keyPem === undefined ? {} : { keyPem }) });
  if (keyPem === undefined) {
    await writeFileAtomic(paths.caKey, material.keyPem);
    changes.push({ action: 'created', what: 'CA key', path: paths.caKey });
  }
  await writeFileAtomic(paths.caCert, material.certPem, PUBLIC_FILE_MODE);
  changes.push({ action: 'created', what: 'CA certificate', path: paths.caCert });
  return new EnrollmentCa(material, caOptions);
}

function reasonToReissue(
  certPem: string,
  ca: EnrollmentCa,
  serverPublicKey: KeyObject,
  serverNames: ReturnType<typeof parseServerNames>,
  opts: { now: () => Date; serverCertRenewBeforeMs: number },
): string | undefined {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    return 'the certificate did not parse';
  }
  const caCert = new X509Certificate(ca.certificatePem);
  if (!cert.checkIssued(caCert) || !cert.verify(caCert.publicKey)) return 'not issued by the current CA';
  if (!cert.publicKey.equals(serverPublicKey)) return 'not for the server key';
  const want = serverNames.map(serverNameKey).sort();
  const have = serverNamesOfCertificate(cert).map(serverNameKey).sort();
  if (want.join(',') !== have.join(',')) return `tls.serverNames changed (was ${have.join(' ')})`;
  if (certificateExpiry(cert).getTime() - opts.now().getTime() < opts.serverCertRenewBeforeMs) return 'expires soon';
  return undefined;
}

function parsePrivateKey(pem: string, path: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (cause) {
    throw new PkiError({ code: 'DATA_DIR_INVALID', message: `${path} is not a PEM private key`, cause });
  }
}

/**
 * The pin of the server certificate in a data directory, without creating anything (for
 * `meshcfg ca pin`, which may run while the server is down). Throws DATA_DIR_INVALID when
 * there is no server certificate.
 */
export async function readServerPin(dataDir: string): Promise<Pin> {
  const path = dataDirPaths(dataDir).serverCert;
  const pem = await readOptionalFile(path);
  if (pem === undefined) {
    throw new PkiError({ code: 'DATA_DIR_INVALID', message: `no server certificate at ${path}; start \`meshcfg serve\` once to create it` });
  }
  return spkiPin(pem);
}

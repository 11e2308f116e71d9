import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import * as tls from 'node:tls';
import { createCa, EnrollmentCa, generateRsaKeyPair } from '../../src/pki/ca.js';
import { agentIdFromCertificate } from '../../src/pki/identity.js';
import { matchesAnyPin, type Pin, spkiPin } from '../../src/pki/pin.js';
import { forgeCsr, rsaKey } from './helpers.js';
import { aid } from '../helpers/ids.js';

/**
 * Real TLS 1.3 handshakes on loopback with the certificates the enrollment CA issues: the
 * server requires and verifies client certificates, the client verifies and pins the server.
 */
interface Credentials {
  readonly key: string;
  readonly cert: string;
}

interface Outcome {
  /** What the server said after a verified handshake: `hello <agent id>`, or undefined. */
  readonly greeting?: string;
  readonly clientError?: Error;
  readonly serverError?: Error;
}

describe('mTLS with enrollment CA certificates', () => {
  let ca: EnrollmentCa;
  let server: tls.Server;
  let port: number;
  let serverPin: Pin;
  let agent: Credentials;
  let foreignAgent: Credentials;
  const serverErrors: Error[] = [];

  before(async () => {
    ca = new EnrollmentCa(await createCa({ trustDomain: 'example.org' }));
    const serverKey = await generateRsaKeyPair();
    const serverCert = ca.issueServerCertificate({ serverNames: ['localhost', '127.0.0.1'], publicKeyPem: serverKey.publicKeyPem }).certPem;
    serverPin = spkiPin(serverKey.publicKeyPem);

    const agentKey = rsaKey();
    agent = { key: agentKey.privateKeyPem, cert: ca.issueAgentCertificate({ csrPem: forgeCsr(agentKey), agentId: aid('edge-1') }).certPem };

    // Same trust domain, same agent id, different CA: only the signature tells them apart.
    const foreignCa = new EnrollmentCa(await createCa({ trustDomain: 'example.org' }));
    const foreignKey = rsaKey();
    foreignAgent = { key: foreignKey.privateKeyPem, cert: foreignCa.issueAgentCertificate({ csrPem: forgeCsr(foreignKey), agentId: aid('edge-1') }).certPem };

    server = tls.createServer({
      key: serverKey.privateKeyPem,
      cert: serverCert,
      ca: [ca.certificatePem],
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
    });
    server.on('secureConnection', (socket) => {
      // Identity comes from the verified peer certificate, never from anything the client sends.
      const id = agentIdFromCertificate(socket.getPeerCertificate().raw, ca.trustDomain);
      socket.end(`hello ${id}\n`);
    });
    server.on('tlsClientError', (err) => serverErrors.push(err));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  function connect(client: Partial<Credentials>, pins: readonly Pin[], servername = 'localhost'): Promise<Outcome> {
    const errorsBefore = serverErrors.length;
    return new Promise((resolve) => {
      let data = '';
      let settled = false;
      const finish = (clientError?: Error): void => {
        if (settled) return;
        settled = true;
        // Let the server's tlsClientError land before reading it.
        setImmediate(() => {
          const serverError = serverErrors[errorsBefore];
          resolve({
            ...(data === '' ? {} : { greeting: data.trim() }),
            ...(clientError === undefined ? {} : { clientError }),
            ...(serverError === undefined ? {} : { serverError }),
          });
        });
      };
      const socket = tls.connect({
        host: '127.0.0.1',
        port,
        servername,
        ca: [ca.certificatePem],
        ...client,
        checkServerIdentity: (host, cert) => {
          const hostError = tls.checkServerIdentity(host, cert);
          if (hostError !== undefined) return hostError;
          return matchesAnyPin(cert.raw, pins) ? undefined : new Error('server key does not match any pin');
        },
      });
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        data += chunk;
      });
      socket.on('error', (err) => finish(err));
      socket.on('close', () => finish());
    });
  }

  it('completes the handshake for an agent certificate from the CA and knows the agent by its SAN', async () => {
    const outcome = await connect(agent, [serverPin]);
    assert.equal(outcome.greeting, 'hello edge-1');
    assert.equal(outcome.clientError, undefined);
    assert.equal(outcome.serverError, undefined);
  });

  it('accepts the server under its IP address name too', async () => {
    const outcome = await connect(agent, [serverPin], '127.0.0.1');
    assert.equal(outcome.greeting, 'hello edge-1');
  });

  it('accepts a match on the second of two pins (key rotation)', async () => {
    const outcome = await connect(agent, [spkiPin(rsaKey().publicKeyPem), serverPin]);
    assert.equal(outcome.greeting, 'hello edge-1');
  });

  it('refuses an agent certificate from another CA during the handshake', async () => {
    const outcome = await connect(foreignAgent, [serverPin]);
    assert.equal(outcome.greeting, undefined);
    assert.ok(outcome.serverError, 'the server reports a failed handshake');
  });

  it('refuses a client without a certificate during the handshake', async () => {
    const outcome = await connect({}, [serverPin]);
    assert.equal(outcome.greeting, undefined);
    assert.ok(outcome.serverError, 'the server reports a failed handshake');
  });

  it('lets the client abort when the server key matches no pin', async () => {
    const outcome = await connect(agent, [spkiPin(rsaKey().publicKeyPem)]);
    assert.equal(outcome.greeting, undefined);
    assert.match(outcome.clientError?.message ?? '', /pin/);
  });

  it('lets the client abort when the name is not in the server certificate', async () => {
    const outcome = await connect(agent, [serverPin], 'other.example');
    assert.equal(outcome.greeting, undefined);
    assert.equal((outcome.clientError as NodeJS.ErrnoException | undefined)?.code, 'ERR_TLS_CERT_ALTNAME_INVALID');
  });
});

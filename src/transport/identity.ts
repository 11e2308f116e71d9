import { createHash, X509Certificate } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { PeerCertificate } from 'node:tls';
import { PkiError } from '../domain/errors.js';
import type { AgentId } from '../domain/types.js';
import { agentIdFromCertificate, certificateExpiry } from '../pki/index.js';
import type { AgentIdentity } from './backend.js';
import type { UnauthorizedRefusal } from './status.js';

/**
 * Who is calling, from the TLS layer's verified client certificate only — never from a field
 * of a message (docs/architecture.md, "Identity, transport and key lifetimes").
 */

export type Authentication = { readonly ok: true; readonly identity: AgentIdentity } | ({ readonly ok: false } & UnauthorizedRefusal);

/**
 * Reads the identity of a call from its peer certificate.
 *
 * Contract: `peer` is grpc-js's `getAuthContext().sslPeerCertificate`, which it only fills in
 * for sockets whose chain verified against the enrollment CA (`socket.authorized`); the TLS
 * listener destroys every connection that presented a certificate that did not verify. So
 * `undefined` here means the agent presented no certificate at all.
 */
export function authenticatePeer(peer: PeerCertificate | undefined, trustDomain: string, now: Date, parsed?: PeerIdentities): Authentication {
  if (peer?.raw === undefined) {
    return { ok: false, reason: 'no-client-certificate', message: 'a client certificate from the enrollment CA is required' };
  }
  const identity = parsed === undefined ? parseIdentity(peer.raw, trustDomain) : parsed.parse(peer.raw);
  if (!identity.ok) return identity;
  const { notAfter, agentId } = identity.identity;
  // The handshake checked validity when the connection opened; a long-lived connection can
  // outlive the certificate, so every call checks again.
  if (notAfter.getTime() <= now.getTime()) {
    return { ok: false, reason: 'expired-certificate', message: `the client certificate expired at ${notAfter.toISOString()}`, agentId };
  }
  return identity;
}

/** What a certificate says, before the time checks (which every call makes again). */
function parseIdentity(raw: Buffer, trustDomain: string): Authentication {
  let certificate: X509Certificate;
  let agentId: AgentId;
  try {
    certificate = new X509Certificate(raw);
    agentId = agentIdFromCertificate(certificate, trustDomain);
  } catch (err) {
    const code = err instanceof PkiError ? err.code : 'CERTIFICATE_INVALID';
    return { ok: false, reason: 'bad-identity', message: `the client certificate carries no agent identity of trust domain ${trustDomain} (${code})` };
  }
  const identity: AgentIdentity = Object.freeze({ agentId, certificate, serialNumber: certificate.serialNumber.toUpperCase(), notAfter: certificateExpiry(certificate) });
  return { ok: true, identity };
}

/**
 * Parsed peer certificates, by the sha256 of their DER. grpc-js hands every call a fresh copy
 * of the connection's certificate; parsing it costs ~0.3 ms, hashing it ~2 µs — a poll of
 * every agent every 30 s would otherwise parse 10,000 certificates each time. Only what the
 * certificate itself says is kept (the identity and its expiry); validity against the clock,
 * revocation and replacement are checked on every call as before. Bounded (LRU).
 */
export class PeerIdentities {
  private readonly cache: LRUCache<string, Authentication>;

  constructor(
    private readonly trustDomain: string,
    max = 16_384,
  ) {
    this.cache = new LRUCache({ max });
  }

  parse(raw: Buffer): Authentication {
    const key = createHash('sha256').update(raw).digest('base64');
    let parsed = this.cache.get(key);
    if (parsed === undefined) {
      parsed = parseIdentity(raw, this.trustDomain);
      this.cache.set(key, parsed);
    }
    return parsed;
  }
}

/**
 * A message may echo the agent id; when it does, it must be the certificate's. Empty means
 * "not said" (proto3 default). Returns the refusal, or undefined when the echo is acceptable.
 */
export function checkEchoedAgentId(identity: AgentIdentity, echoed: string | undefined, what: string): UnauthorizedRefusal | undefined {
  if (echoed === undefined || echoed === '' || echoed === identity.agentId) return undefined;
  return {
    reason: 'identity-mismatch',
    // The claimed id is attacker-chosen: quote it, bounded, so a log line cannot be forged with it.
    message: `${what} names agent ${JSON.stringify(echoed.slice(0, 80))} but the client certificate is agent ${identity.agentId}`,
    agentId: identity.agentId,
  };
}

/** The CA certificates in a PEM bundle (one or more), for classifying refused handshakes. */
export function parseCaBundle(caPem: string): readonly X509Certificate[] {
  const blocks = caPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((block) => new X509Certificate(block));
}

/**
 * Whether a certificate the handshake refused was nevertheless issued and signed by one of our
 * CAs: then "expired" is the truth about it, and its agent id can be trusted for the record.
 * OpenSSL reports only the last verification error, so CERT_HAS_EXPIRED alone proves nothing
 * about the signature; this checks it.
 */
export function issuedBy(certificate: X509Certificate, cas: readonly X509Certificate[]): boolean {
  return cas.some((ca) => certificate.checkIssued(ca) && certificate.verify(ca.publicKey));
}

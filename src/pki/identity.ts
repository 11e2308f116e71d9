import { X509Certificate } from 'node:crypto';
import { isIP, SocketAddress } from 'node:net';
import { isAgentId } from '../domain/agent-id.js';
import { PkiError } from '../domain/errors.js';
import type { AgentId } from '../domain/types.js';

/** SPIFFE trust-domain characters (SPIFFE ID spec §2.1), as the settings schema checks them. */
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;

/** One DNS label, case-insensitive; server names are lower-cased before they are compared. */
const DNS_NAME_LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
/** A host name, optionally with one leading wildcard label. */
const DNS_NAME = new RegExp(`^(?:\\*\\.)?${DNS_NAME_LABEL}(?:\\.${DNS_NAME_LABEL})*$`);

/** A certificate as callers hold it: parsed, PEM text, or DER bytes (grpc-js and tls give `raw`). */
export type CertificateInput = X509Certificate | string | Buffer;

export function assertTrustDomain(trustDomain: string): void {
  if (!TRUST_DOMAIN.test(trustDomain) || trustDomain.length > 255) {
    throw new PkiError({ code: 'NAME_INVALID', message: `not a SPIFFE trust domain: ${JSON.stringify(trustDomain)}` });
  }
}

export function assertAgentId(agentId: string): asserts agentId is AgentId {
  if (!isAgentId(agentId)) {
    throw new PkiError({ code: 'NAME_INVALID', message: `not an agent id (a DNS label): ${JSON.stringify(agentId)}` });
  }
}

/** The identity an agent certificate carries: `spiffe://<trustDomain>/agent/<id>`. */
export function agentSpiffeId(trustDomain: string, agentId: AgentId): string {
  assertTrustDomain(trustDomain);
  assertAgentId(agentId);
  return `spiffe://${trustDomain}/agent/${agentId}`;
}

/** A server name as it goes into a certificate: a DNS SAN unless it parses as an IP address. */
export type ServerName = { readonly kind: 'dns'; readonly name: string } | { readonly kind: 'ip'; readonly address: string };

/**
 * Validates and classifies `tls.serverNames`: lower-cases DNS names, drops duplicates, keeps
 * the order. Throws NAME_INVALID for an empty list or a name that is neither host nor IP.
 */
export function parseServerNames(names: readonly string[]): readonly ServerName[] {
  if (names.length === 0) throw new PkiError({ code: 'NAME_INVALID', message: 'tls.serverNames is empty' });
  const seen = new Set<string>();
  const out: ServerName[] = [];
  for (const raw of names) {
    const parsed = parseServerName(raw);
    const key = serverNameKey(parsed);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(parsed);
  }
  return out;
}

function parseServerName(raw: string): ServerName {
  if (isIP(raw) !== 0) return { kind: 'ip', address: raw };
  const name = raw.toLowerCase();
  if (name.length > 253 || !DNS_NAME.test(name)) {
    throw new PkiError({ code: 'NAME_INVALID', message: `server name is neither a host name nor an IP address: ${JSON.stringify(raw)}` });
  }
  return { kind: 'dns', name };
}

/**
 * A comparison key that is equal for equal names however they are spelled: IP addresses are
 * compared in canonical form (node prints `::1` from a certificate as `0:0:0:0:0:0:0:1`).
 */
export function serverNameKey(name: ServerName): string {
  switch (name.kind) {
    case 'dns':
      return `dns:${name.name}`;
    case 'ip':
      return `ip:${canonicalIp(name.address)}`;
    default: {
      const never: never = name;
      throw new Error(`unexpected server name ${JSON.stringify(never)}`);
    }
  }
}

/** node's own inet_pton/inet_ntop round trip gives one spelling per address. */
function canonicalIp(address: string): string {
  const family = isIP(address);
  if (family === 0) throw new PkiError({ code: 'NAME_INVALID', message: `not an IP address: ${JSON.stringify(address)}` });
  return new SocketAddress({ address, family: family === 4 ? 'ipv4' : 'ipv6' }).address;
}

/** The DNS and IP subject alternative names of a certificate, for comparing with `tls.serverNames`. */
export function serverNamesOfCertificate(cert: CertificateInput): readonly ServerName[] {
  const names: ServerName[] = [];
  for (const entry of parseSubjectAltName(toX509(cert).subjectAltName ?? '')) {
    if (entry.type === 'DNS') names.push({ kind: 'dns', name: entry.value.toLowerCase() });
    else if (entry.type === 'IP Address') names.push({ kind: 'ip', address: entry.value });
  }
  return names;
}

export function toX509(cert: CertificateInput): X509Certificate {
  if (cert instanceof X509Certificate) return cert;
  try {
    return new X509Certificate(cert);
  } catch (cause) {
    throw new PkiError({ code: 'CERTIFICATE_INVALID', message: 'not an X.509 certificate', cause });
  }
}

export interface GeneralName {
  /** As node names it: `URI`, `DNS`, `IP Address`, `email`, … */
  readonly type: string;
  readonly value: string;
}

/**
 * Parses node's `X509Certificate.subjectAltName` text (`URI:a, DNS:b, IP Address:c`).
 *
 * The certificate is attacker-supplied: node quotes a value that contains a separator as a
 * JSON string (`URI:"spiffe://x\u002c URI:spiffe://y"`), so splitting on ", " would let one
 * SAN pose as two. Parse the quoting; throw CERTIFICATE_INVALID on anything unexpected.
 */
export function parseSubjectAltName(text: string): readonly GeneralName[] {
  const out: GeneralName[] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) throw malformedSan(text);
    const type = text.slice(i, colon);
    let value: string;
    let end: number;
    if (text[colon + 1] === '"') {
      let j = colon + 2;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (j >= text.length) throw malformedSan(text);
      end = j + 1;
      try {
        value = JSON.parse(text.slice(colon + 1, end)) as string;
      } catch (cause) {
        throw malformedSan(text, cause);
      }
    } else {
      const separator = text.indexOf(', ', colon + 1);
      end = separator < 0 ? text.length : separator;
      value = text.slice(colon + 1, end);
    }
    out.push({ type, value });
    if (end === text.length) break;
    if (text.slice(end, end + 2) !== ', ') throw malformedSan(text);
    i = end + 2;
  }
  return out;
}

function malformedSan(text: string, cause?: unknown): PkiError {
  return new PkiError({ code: 'CERTIFICATE_INVALID', message: `unparseable subjectAltName: ${JSON.stringify(text.slice(0, 200))}`, cause });
}

/**
 * The agent id a certificate proves: its only URI SAN must be `spiffe://<trustDomain>/agent/<id>`.
 *
 * Contract: call only with a certificate the TLS layer already verified against the enrollment
 * CA — this reads the identity, it does not check who issued it. Throws IDENTITY_MISSING,
 * IDENTITY_AMBIGUOUS (more than one URI SAN, which SPIFFE forbids) or IDENTITY_FOREIGN.
 */
export function agentIdFromCertificate(cert: CertificateInput, trustDomain: string): AgentId {
  const uris = parseSubjectAltName(toX509(cert).subjectAltName ?? '').filter((n) => n.type === 'URI');
  const [uri] = uris;
  if (uri === undefined) throw new PkiError({ code: 'IDENTITY_MISSING', message: 'the certificate has no URI SAN' });
  if (uris.length > 1) {
    throw new PkiError({ code: 'IDENTITY_AMBIGUOUS', message: `the certificate has ${uris.length} URI SANs; exactly one is allowed` });
  }
  const prefix = `spiffe://${trustDomain}/agent/`;
  const id = uri.value.startsWith(prefix) ? uri.value.slice(prefix.length) : undefined;
  if (id === undefined || !isAgentId(id)) {
    throw new PkiError({ code: 'IDENTITY_FOREIGN', message: `${JSON.stringify(uri.value)} is not an agent of trust domain ${trustDomain}` });
  }
  return id;
}

/** When a certificate stops being valid (`notAfter`). */
export function certificateExpiry(cert: CertificateInput): Date {
  const expiry = new Date(toX509(cert).validTo);
  if (Number.isNaN(expiry.getTime())) {
    throw new PkiError({ code: 'CERTIFICATE_INVALID', message: 'the certificate has an unreadable notAfter' });
  }
  return expiry;
}

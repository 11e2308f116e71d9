import type { AgentId } from './types.js';

/** RFC 1123 DNS label: lowercase alphanumerics and `-`, alphanumeric at both ends, 1–63 characters. */
const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Agent ids end up in certificate SANs (`spiffe://<td>/agent/<id>`), signed leaves and file
 * names, hence DNS labels. The one definition every layer checks against.
 */
export function isAgentId(value: unknown): value is AgentId {
  return typeof value === 'string' && DNS_LABEL.test(value);
}

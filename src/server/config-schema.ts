import type { JsonObject } from '../domain/types.js';

/**
 * JSON Schema (draft-07, validated by ajv in config.ts) for the shape of server.yaml: which
 * keys exist, which are required, and the type of each value. Each node's `description` is
 * the message a value of the wrong shape gets (the error names the key). What a schema cannot
 * say well stays in `parseServerConfig`: durations and their minimums, listen addresses, URL
 * schemes, path resolution and defaults.
 *
 * Before validation, keys whose value is null (`key:` with nothing after it) are dropped and
 * strings trimmed, so an empty key reads as absent, as it always has.
 */

const text: JsonObject = { type: 'string', minLength: 1, description: 'expected a non-empty string' };
const duration: JsonObject = { ...text, description: 'expected a duration like 5s, 10m or 24h' };
const address: JsonObject = { ...text, description: 'expected host:port (e.g. 127.0.0.1:7443 or [::1]:7443)' };

function section(properties: Record<string, JsonObject>, required: readonly string[] = []): JsonObject {
  return { type: 'object', description: 'expected a mapping', additionalProperties: false, required: [...required], properties };
}

/** The same shape the PKI accepts for SPIFFE trust domains: lowercase DNS name. */
export const TRUST_DOMAIN_PATTERN = '^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$';

export const KEY_VALIDITY_TIMES = ['now', 'commit-time'] as const;

export const serverConfigSchema: JsonObject = section(
  {
    trustDomain: { type: 'string', pattern: TRUST_DOMAIN_PATTERN, description: 'expected a lowercase DNS name (e.g. example.org)' },
    repo: section({ url: text, branch: text, pollInterval: duration }, ['url']),
    trust: section(
      {
        allowedSigners: text,
        keyValidity: { type: 'string', enum: [...KEY_VALIDITY_TIMES], description: `expected one of ${KEY_VALIDITY_TIMES.join(', ')}` },
      },
      ['allowedSigners'],
    ),
    listen: section({ grpc: address, admin: address }, ['grpc', 'admin']),
    dataDir: text,
    tls: section(
      {
        serverNames: {
          type: 'array',
          minItems: 1,
          items: { type: 'string', minLength: 1, description: 'expected a host name or IP address' },
          description: 'expected a non-empty list of host names or IP addresses',
        },
      },
      ['serverNames'],
    ),
    enrollment: section({ certificateTtl: duration }),
    bundles: section({ ttl: duration }),
    alerts: section({ webhook: text }),
    state: section({ postgres: { ...text, description: 'expected a PostgreSQL URL (postgres://user@host:5432/database)' } }),
    adminTls: {
      if: { type: 'object' },
      then: section({ cert: text, key: text }, ['cert', 'key']),
      else: { enum: [false, 'server'], description: 'expected `server` (the server certificate) or a mapping {cert, key} of PEM files' },
    },
  },
  ['trustDomain', 'repo', 'trust', 'listen', 'dataDir', 'tls'],
);

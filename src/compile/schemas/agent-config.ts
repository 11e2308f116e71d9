import type { JsonObject } from '../../domain/types.js';
import { TLS_VERSIONS, shapes } from './patterns.js';

/**
 * JSON Schema (draft-07, what ajv 8's default class speaks) for one agent's compiled
 * config document. This module is the single source of truth; `agent-config.schema.json`
 * beside it is a generated copy for editors and readers, kept equal by
 * test/compile/schema.test.ts.
 *
 * The schema checks shape, not safety: it accepts every mTLS mode and every TLS
 * version from 1.0 to 1.3, so an unsafe value is reported by the policy rule that
 * names the risk rather than as a bare enum mismatch. Objects whose keys meshcfg
 * interprets reject unknown keys, because a typo (`timeoutMS`) would otherwise
 * silently drop a setting; `extensions` and `headers` are the open maps.
 */

const tlsVersion: JsonObject = {
  type: 'string',
  enum: [...TLS_VERSIONS],
  description: 'A TLS protocol version, quoted ("1.2"): unquoted YAML 1.2 is a number.',
};

const positiveMillis: JsonObject = { type: 'integer', exclusiveMinimum: 0 };

const mtls: JsonObject = {
  type: 'object',
  additionalProperties: false,
  description: 'Mutual TLS between this agent and its peers.',
  properties: {
    mode: { enum: ['STRICT', 'PERMISSIVE', 'DISABLE'] },
    minTlsVersion: tlsVersion,
    maxTlsVersion: tlsVersion,
  },
};

const identity: JsonObject = {
  type: 'object',
  additionalProperties: false,
  required: ['trustDomain'],
  properties: {
    trustDomain: { type: 'string', pattern: shapes.trustDomain.pattern },
  },
};

const route: JsonObject = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'destination'],
  properties: {
    name: { type: 'string', minLength: 1 },
    destination: { type: 'string', maxLength: 259, pattern: shapes.hostPort.pattern },
    protocol: { enum: ['http1', 'http2', 'grpc', 'tcp'] },
    timeoutMs: { ...positiveMillis, description: 'Whole-request timeout, retries included.' },
    retries: {
      type: 'object',
      additionalProperties: false,
      required: ['attempts'],
      properties: {
        attempts: { type: 'integer', minimum: 0, description: 'Retries after the first try.' },
        perTryTimeoutMs: positiveMillis,
      },
    },
    headers: {
      type: 'object',
      propertyNames: { pattern: shapes.headerName.pattern },
      additionalProperties: { type: 'string' },
      description: 'Request headers to set; values are literals, so never put credentials here.',
    },
  },
};

const authzRule: JsonObject = {
  type: 'object',
  additionalProperties: false,
  required: ['action'],
  properties: {
    action: { enum: ['ALLOW', 'DENY'] },
    from: { type: 'array', items: { type: 'string', minLength: 1 }, description: 'Peer identities (SPIFFE IDs).' },
    paths: { type: 'array', items: { type: 'string', minLength: 1 } },
  },
};

/** `true`/`false` for the agent's defaults, or an object to tune them. */
const accessLog: JsonObject = {
  type: ['boolean', 'object'],
  additionalProperties: false,
  properties: {
    enabled: { type: 'boolean' },
    format: { enum: ['text', 'json'] },
    path: { type: 'string', minLength: 1 },
  },
};

const metrics: JsonObject = {
  type: ['boolean', 'object'],
  additionalProperties: false,
  properties: {
    enabled: { type: 'boolean' },
    port: { type: 'integer', minimum: 1, maximum: 65535 },
    path: { type: 'string', pattern: '^/' },
  },
};

export const agentConfigSchema: JsonObject = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'urn:meshcfg:schema:agent-config:v1',
  title: 'meshcfg agent configuration',
  type: 'object',
  additionalProperties: false,
  properties: {
    mtls,
    identity,
    routes: { type: 'array', items: route },
    authz: { type: 'array', items: authzRule },
    telemetry: {
      type: 'object',
      additionalProperties: false,
      properties: { accessLog, metrics },
    },
    extensions: {
      type: 'object',
      description: 'Free-form settings for agent extensions; still scanned by no-embedded-secrets.',
    },
  },
};

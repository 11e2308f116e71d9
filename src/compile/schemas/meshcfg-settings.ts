import type { JsonObject } from '../../domain/types.js';
import { shapes } from './patterns.js';

/**
 * JSON Schema (draft-07) for `meshcfg.yaml`. Single source of truth; the
 * `meshcfg-settings.schema.json` copy beside it is generated and checked by
 * test/compile/schema.test.ts. Rules a schema cannot express (unique wave names,
 * `match` xor `percent`, known time zones) live in `validateSettingsDocument`.
 */

const ratio: JsonObject = { type: 'number', minimum: 0, maximum: 1 };
const duration: JsonObject = { type: 'string', pattern: shapes.duration.pattern };

const wave: JsonObject = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: { type: 'string', minLength: 1 },
    match: {
      type: 'object',
      description: 'Label selector: every key must match; a list value means any-of.',
      propertyNames: { minLength: 1 },
      additionalProperties: {
        type: ['string', 'array'],
        items: { type: 'string' },
        minItems: 1,
      },
    },
    percent: {
      type: 'number',
      minimum: 0,
      maximum: 100,
      description: 'Agents whose stable bucket (0-99, from a hash of the id) is below this.',
    },
    bake: duration,
  },
};

const window: JsonObject = {
  type: 'object',
  additionalProperties: false,
  required: ['kind', 'schedule', 'duration'],
  properties: {
    kind: { enum: ['allow', 'deny'] },
    schedule: { type: 'string', pattern: shapes.cron.pattern, description: 'When the window opens.' },
    duration: { ...duration, description: 'How long the window stays open.' },
    timeZone: { type: 'string', minLength: 1, description: 'IANA time zone of the schedule, e.g. "Europe/Berlin".' },
  },
};

export const meshcfgSettingsSchema: JsonObject = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'urn:meshcfg:schema:meshcfg-settings:v1',
  title: 'meshcfg.yaml',
  type: 'object',
  additionalProperties: false,
  required: ['trustDomain'],
  properties: {
    trustDomain: { type: 'string', pattern: shapes.trustDomain.pattern },
    policy: {
      type: 'object',
      additionalProperties: false,
      properties: {
        secureZones: { type: 'array', items: { type: 'string', minLength: 1 } },
        allowedDestinations: {
          type: 'array',
          items: { type: 'string', pattern: shapes.destinationGlob.pattern },
          description: 'Absent: destination-allowlist is off. Present (even empty): routes must match one glob.',
        },
        maxInventoryRemoval: {
          ...ratio,
          description: 'inventory-shrink: largest share of the previous commit\'s agents one commit may remove (default 0.1).',
        },
        allowInventoryRemoval: {
          type: 'array',
          items: { type: 'string', minLength: 1 },
          description: 'inventory-shrink: agent ids this commit removes on purpose; each must be gone from the inventory.',
        },
      },
    },
    rollout: {
      type: 'object',
      additionalProperties: false,
      properties: {
        waves: { type: 'array', minItems: 1, items: wave },
        successRatio: ratio,
        maxNackRatio: ratio,
        ackTimeout: duration,
        quarantineStaleAfter: {
          ...duration,
          description: 'Absent: off. A connected agent that leaves its desired bundle unanswered for this long is quarantined.',
        },
        windows: { type: 'array', items: window },
        expediteReverts: { type: 'boolean' },
      },
    },
  },
};

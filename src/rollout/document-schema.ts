import type { JsonObject } from '../domain/types.js';
import { ROLLOUT_DOCUMENT_VERSION } from './types.js';

/**
 * JSON Schema (draft-07, validated by ajv in `RolloutController.fromJSON`) for the persisted
 * rollout document (`RolloutDocumentV1`). It checks the fields where a wrong type would
 * silently change a decision; the rest is our own output and is not re-validated (a stricter
 * schema would refuse documents older releases wrote). The one rule a schema cannot say —
 * a wave record per configured wave — stays in the controller.
 */
export const rolloutDocumentSchema: JsonObject = {
  type: 'object',
  required: ['version', 'paused', 'agents', 'rollout'],
  properties: {
    version: { const: ROLLOUT_DOCUMENT_VERSION },
    paused: { type: 'boolean' },
    agents: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'wave', 'connected'],
        properties: { id: { type: 'string' }, wave: { type: 'integer' }, connected: { type: 'boolean' } },
      },
    },
    rollout: {
      type: ['object', 'null'],
      required: ['commit', 'settings', 'waves', 'phase'],
      properties: {
        commit: { type: 'string' },
        settings: {
          type: 'object',
          required: ['waves'],
          properties: { waves: { type: 'array', minItems: 1 } },
        },
        waves: { type: 'array' },
        phase: { enum: ['progressing', 'complete', 'aborted'] },
      },
    },
  },
};

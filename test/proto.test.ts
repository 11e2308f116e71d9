import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadSync } from '@grpc/proto-loader';

const PROTO_DIR = fileURLToPath(new URL('../proto', import.meta.url));

describe('proto/meshcfg/v1', () => {
  it('loads with @grpc/proto-loader and declares the contract services', () => {
    const defs = loadSync(['meshcfg/v1/distribution.proto', 'meshcfg/v1/enrollment.proto'], {
      includeDirs: [PROTO_DIR],
      keepCase: true,
      longs: String,
      enums: String,
      oneofs: true,
    });
    const methods = (service: string) => Object.keys(defs[service] as object).sort();
    assert.deepEqual(methods('meshcfg.v1.Distribution'), ['Fetch', 'Report', 'Stream']);
    assert.deepEqual(methods('meshcfg.v1.Enrollment'), ['Enroll', 'Renew']);
    const stream = (defs['meshcfg.v1.Distribution'] as Record<string, { requestStream: boolean; responseStream: boolean }>)['Stream'];
    assert.deepEqual([stream?.requestStream, stream?.responseStream], [true, true]);
  });
});

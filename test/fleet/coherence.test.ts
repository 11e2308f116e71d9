import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AdminTokens } from '../../src/admin/index.js';
import { MemoryFleetStore } from '../../src/fleet/index.js';
import { AgentCertificates, FleetCache } from '../../src/server/index.js';

describe('caches over the fleet store', () => {
  it('state how they learn of another writer: the fleet view and the certificates are notified, admin tokens read through', async () => {
    const store = new MemoryFleetStore();
    const fleet = await FleetCache.load(store);
    const certificates = await AgentCertificates.load(store);
    const adminTokens = new AdminTokens({ store, bootstrapToken: 'bootstrap' });
    assert.deepEqual(
      { fleet: fleet.coherence.kind, certificates: certificates.coherence.kind, adminTokens: adminTokens.coherence.kind },
      { fleet: 'notified', certificates: 'notified', adminTokens: 'read-through' },
    );
    await store.close();
  });
});

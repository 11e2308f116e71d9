import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import type { AgentId } from '../../src/domain/types.js';
import { MemoryFleetStore, type CurrentCertificate } from '../../src/fleet/index.js';
import { AgentCertificates } from '../../src/server/certificates.js';
import type { AgentIdentity } from '../../src/transport/index.js';
import { aid } from '../helpers/ids.js';

/** A memory store that counts the calls that record current certificates. */
class CountingStore extends MemoryFleetStore {
  readonly calls: string[] = [];

  override async setCurrentCertificate(record: CurrentCertificate): Promise<void> {
    this.calls.push(`one ${record.agentId}`);
    return super.setCurrentCertificate(record);
  }

  override async setCurrentCertificates(records: readonly CurrentCertificate[]): Promise<void> {
    this.calls.push(`batch ${records.length}`);
    return super.setCurrentCertificates(records);
  }
}

/** Only the fields the registry reads; the certificate object itself is not consulted. */
const identity = (agentId: AgentId, serialNumber: string): AgentIdentity =>
  ({ agentId, serialNumber, notAfter: new Date(Date.now() + 3_600_000), certificate: undefined as unknown as X509Certificate }) as AgentIdentity;

describe('AgentCertificates', () => {
  describe('when a fleet with no recorded certificates reconnects at once (an upgrade)', () => {
    it('adopts each agent’s certificate and records the turn’s adoptions in one store call', async () => {
      const store = new CountingStore();
      const certificates = await AgentCertificates.load(store);
      const agents = Array.from({ length: 300 }, (_, i) => aid(`edge-${String(i).padStart(3, '0')}`));
      for (const [i, id] of agents.entries()) assert.equal(certificates.standing(identity(id, `0A${i}`)).kind, 'current');
      await certificates.flush();
      assert.deepEqual(store.calls, ['batch 300']);
      const recorded = await store.listCurrentCertificates();
      assert.equal(recorded.length, 300);
      assert.ok(recorded.every((c) => c.kind === 'adopted'));
    });

    it('lets an enrollment right after an adoption of the same agent win (the adoption is written first)', async () => {
      const store = new CountingStore();
      const certificates = await AgentCertificates.load(store);
      certificates.standing(identity(aid('edge-1'), '0A'));
      await certificates.issued(aid('edge-1'), '0B', 'enroll', new Date());
      await certificates.flush();
      assert.deepEqual(store.calls, ['batch 1', 'one edge-1']);
      assert.deepEqual(
        (await store.listCurrentCertificates()).map((c) => [c.serial, c.kind]),
        [['0b', 'enroll']],
      );
    });
  });
});

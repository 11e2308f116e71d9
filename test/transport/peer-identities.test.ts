import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { authenticatePeer, PeerIdentities } from '../../src/transport/identity.js';
import { aid } from '../helpers/ids.js';
import { makePki, type Pki, TRUST_DOMAIN } from './helpers.js';

/** What grpc-js hands each call: a fresh copy of the connection's certificate. */
const peerOf = (certPem: string): PeerCertificate => ({ raw: Buffer.from(new X509Certificate(certPem).raw) }) as PeerCertificate;

describe('PeerIdentities', () => {
  let pki: Pki;
  before(async () => {
    pki = await makePki();
  });
  after(() => pki.cleanup());

  it('parses a certificate once: later calls with a copy of it get the same identity', () => {
    const cache = new PeerIdentities(TRUST_DOMAIN);
    const { certPem } = pki.issue(aid('edge-1'));
    const first = authenticatePeer(peerOf(certPem), TRUST_DOMAIN, new Date(), cache);
    const second = authenticatePeer(peerOf(certPem), TRUST_DOMAIN, new Date(), cache);
    assert.ok(first.ok && second.ok);
    assert.equal(first.identity.agentId, 'edge-1');
    assert.equal(second.identity, first.identity);
  });

  it('tells certificates apart, and still refuses a cached one once it expired', () => {
    const cache = new PeerIdentities(TRUST_DOMAIN);
    const one = pki.issue(aid('edge-1'), { ttlMs: 60_000 });
    const two = pki.issue(aid('edge-2'));
    const a = authenticatePeer(peerOf(one.certPem), TRUST_DOMAIN, new Date(), cache);
    const b = authenticatePeer(peerOf(two.certPem), TRUST_DOMAIN, new Date(), cache);
    assert.ok(a.ok && b.ok);
    assert.deepEqual([a.identity.agentId, b.identity.agentId], ['edge-1', 'edge-2']);
    const later = authenticatePeer(peerOf(one.certPem), TRUST_DOMAIN, new Date(Date.now() + 120_000), cache);
    assert.equal(later.ok ? 'ok' : later.reason, 'expired-certificate');
  });

  it('remembers a certificate without an identity of the trust domain as bad-identity', () => {
    const cache = new PeerIdentities('other.example');
    const { certPem } = pki.issue(aid('edge-1'));
    for (let i = 0; i < 2; i += 1) {
      const auth = authenticatePeer(peerOf(certPem), 'other.example', new Date(), cache);
      assert.equal(auth.ok ? 'ok' : auth.reason, 'bad-identity');
    }
  });
});

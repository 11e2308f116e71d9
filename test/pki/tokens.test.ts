import assert from 'node:assert/strict';
import { after, beforeEach, describe, it } from 'node:test';
import { PkiError, type PkiErrorCode } from '../../src/domain/errors.js';
import { EnrollmentTokens, type TokenRecord, type TokenStore } from '../../src/pki/tokens.js';
import { tempDir } from '../helpers/git.js';
import { fixedClock } from './helpers.js';
import { aid } from '../helpers/ids.js';

const T0 = new Date('2030-01-01T00:00:00.000Z');
const HOUR = 3_600_000;

function pkiCode(code: PkiErrorCode): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof PkiError, `expected a PkiError, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  };
}

/** The narrowest store that honours the contract, to test EnrollmentTokens apart from files. */
class MemoryTokenStore implements TokenStore {
  readonly records: TokenRecord[] = [];
  async insert(record: TokenRecord): Promise<void> {
    this.records.push(record);
  }
  async claim(hash: Buffer, at: Date): Promise<TokenRecord | undefined> {
    const i = this.records.findIndex((r) => r.hash.equals(hash));
    const before = this.records[i];
    if (before !== undefined && before.usedAt === undefined && before.expiresAt > at) this.records[i] = { ...before, usedAt: at };
    return before;
  }
}

const stores: Array<[string, (dir: string, now: () => Date) => Promise<TokenStore>]> = [
  ['an in-memory store', async () => new MemoryTokenStore()],
];

for (const [storeName, openStore] of stores) {
  describe(`EnrollmentTokens with ${storeName}`, () => {
    const tmp = tempDir('meshcfg-tokens-');
    const clock = fixedClock(T0);
    let tokens: EnrollmentTokens;

    beforeEach(async () => {
      clock.set(T0);
      tokens = new EnrollmentTokens({ store: await openStore(tmp.path, clock.now), now: clock.now });
    });
    after(() => tmp.cleanup());

    it('creates a prefixed 32-byte base64url token that expires after its ttl', async () => {
      const created = await tokens.create(aid('edge-1'), HOUR);
      assert.match(created.token, /^mcet_[A-Za-z0-9_-]{43}$/);
      assert.equal(Buffer.from(created.token.slice(5), 'base64url').length, 32);
      assert.deepEqual(created.expiresAt, new Date(T0.getTime() + HOUR));
    });

    it('gives the agent id the token was created for, once', async () => {
      const { token } = await tokens.create(aid('edge-1'), HOUR);
      assert.equal(await tokens.consume(token), 'edge-1');
      await assert.rejects(tokens.consume(token), pkiCode('TOKEN_USED'));
    });

    it('keeps tokens of different agents apart', async () => {
      const a = await tokens.create(aid('edge-1'), HOUR);
      const b = await tokens.create(aid('edge-2'), HOUR);
      assert.equal(await tokens.consume(b.token), 'edge-2');
      assert.equal(await tokens.consume(a.token), 'edge-1');
    });

    it('refuses a token at or after its expiry with TOKEN_EXPIRED, and it stays unusable', async () => {
      const { token } = await tokens.create(aid('edge-1'), HOUR);
      clock.advance(HOUR);
      await assert.rejects(tokens.consume(token), pkiCode('TOKEN_EXPIRED'));
      clock.set(T0);
      assert.equal(await tokens.consume(token), 'edge-1', 'an expiry check does not spend the token');
    });

    it('accepts a token one millisecond before its expiry', async () => {
      const { token } = await tokens.create(aid('edge-1'), HOUR);
      assert.equal(await tokens.consume(token, new Date(T0.getTime() + HOUR - 1)), 'edge-1');
    });

    it('reports reuse of a spent, expired token as TOKEN_USED', async () => {
      const { token } = await tokens.create(aid('edge-1'), HOUR);
      await tokens.consume(token);
      clock.advance(2 * HOUR);
      await assert.rejects(tokens.consume(token), pkiCode('TOKEN_USED'));
    });

    const unknown: Array<[string, string]> = [
      ['a well-formed token never created', `mcet_${Buffer.alloc(32, 1).toString('base64url')}`],
      ['an empty string', ''],
      ['a token without its prefix', Buffer.alloc(32, 1).toString('base64url')],
      ['a token with a trailing newline', `mcet_${Buffer.alloc(32, 1).toString('base64url')}\n`],
      ['something long', 'mcet_'.padEnd(100_000, 'A')],
    ];
    for (const [name, token] of unknown) {
      it(`refuses ${name} with TOKEN_UNKNOWN`, async () => {
        await assert.rejects(tokens.consume(token), pkiCode('TOKEN_UNKNOWN'));
      });
    }

    it('lets exactly one of many concurrent consumers of a token win', async () => {
      const { token } = await tokens.create(aid('edge-1'), HOUR);
      const results = await Promise.allSettled(Array.from({ length: 10 }, () => tokens.consume(token)));
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      for (const r of results) if (r.status === 'rejected') pkiCode('TOKEN_USED')(r.reason);
    });

    for (const ttl of [0, -1, Number.NaN, 8 * 24 * HOUR]) {
      it(`refuses a ttl of ${ttl} ms with TOKEN_TTL_INVALID`, async () => {
        await assert.rejects(tokens.create(aid('edge-1'), ttl), pkiCode('TOKEN_TTL_INVALID'));
      });
    }

    it('refuses an agent id that is not a DNS label with NAME_INVALID', async () => {
      await assert.rejects(tokens.create(aid('Edge_1'), HOUR), pkiCode('NAME_INVALID'));
    });
  });
}

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isAgentId, isCommitSha, parseAgentId, parseCommitSha } from '../../src/domain/agent-id.js';
import type { AgentId } from '../../src/domain/types.js';

describe('agent and commit ids (src/domain/agent-id.ts)', () => {
  describe('parseAgentId', () => {
    for (const id of ['edge-1', 'a', '0', 'x'.repeat(63)]) {
      it(`accepts the DNS label ${JSON.stringify(id.length > 10 ? `${id.slice(0, 6)}…` : id)}`, () => {
        const parsed: AgentId | undefined = parseAgentId(id);
        assert.equal(parsed, id);
        assert.equal(isAgentId(id), true);
      });
    }

    for (const id of ['', 'Edge-1', '-edge', 'edge-', 'edge_1', 'edge.1', 'x'.repeat(64), '../etc', 'spiffe://x/agent/a']) {
      it(`refuses ${JSON.stringify(id.length > 10 ? `${id.slice(0, 8)}…` : id)}`, () => {
        assert.equal(parseAgentId(id), undefined);
      });
    }

    it('makes the only AgentId: a plain string is refused by the compiler', () => {
      // @ts-expect-error a string that has not been through parseAgentId is not an AgentId
      const unchecked: AgentId = 'edge-1';
      assert.equal(typeof unchecked, 'string');
    });

    it('refuses what is not a string', () => {
      for (const value of [undefined, null, 1, {}, ['edge-1']]) assert.equal(parseAgentId(value), undefined);
    });
  });

  describe('parseCommitSha', () => {
    it('accepts 40 lowercase hex (sha1) and 64 (sha256 repositories)', () => {
      assert.equal(parseCommitSha('a'.repeat(40)), 'a'.repeat(40));
      assert.equal(parseCommitSha('0123456789abcdef'.repeat(4)), '0123456789abcdef'.repeat(4));
      assert.equal(isCommitSha('f'.repeat(40)), true);
    });

    for (const value of ['c1', 'A'.repeat(40), 'a'.repeat(39), 'a'.repeat(41), 'g'.repeat(40), 'HEAD', '', 40]) {
      it(`refuses ${JSON.stringify(value)}`, () => {
        assert.equal(parseCommitSha(value), undefined);
      });
    }
  });
});

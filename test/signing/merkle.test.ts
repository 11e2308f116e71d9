import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';

import { leafHash, MerkleTree, nodeHash, verifyInclusion } from '../../src/signing/merkle.js';

/** RFC 9162 §2.1.1 MTH, written recursively and independently of the level-wise tree. */
function referenceRoot(leaves: readonly Uint8Array[]): Buffer {
  if (leaves.length === 1) return leafHash(leaves[0] as Uint8Array);
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return nodeHash(referenceRoot(leaves.slice(0, k)), referenceRoot(leaves.slice(k)));
}

function leaves(n: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => Buffer.from(`leaf-${i}`));
}

describe('MerkleTree', () => {
  describe('with the certificate-transparency reference leaves', () => {
    // The eight leaves and roots used by certificate-transparency-go's merkle tests.
    const ctLeaves = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(
      (hex) => Buffer.from(hex, 'hex'),
    );
    const ctRoots = [
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
      'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
      '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
      '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
      'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
      '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
    ];
    for (let n = 1; n <= 8; n++) {
      it(`computes the published root of the first ${n}`, () => {
        assert.equal(new MerkleTree(ctLeaves.slice(0, n)).root().toString('hex'), ctRoots[n - 1]);
      });
    }
  });

  it('matches the recursive RFC 9162 definition for every size up to 70', () => {
    for (let n = 1; n <= 70; n++) {
      assert.deepEqual(new MerkleTree(leaves(n)).root(), referenceRoot(leaves(n)), `size ${n}`);
    }
  });

  it('hashes a single leaf as SHA-256(0x00 ‖ leaf)', () => {
    const expected = createHash('sha256').update(Buffer.from([0])).update('x').digest();
    assert.deepEqual(new MerkleTree([Buffer.from('x')]).root(), expected);
  });

  it('refuses an empty tree', () => {
    assert.throws(() => new MerkleTree([]), RangeError);
  });

  describe('inclusion proofs', () => {
    it('verify for every leaf of every size up to 40', () => {
      for (let n = 1; n <= 40; n++) {
        const data = leaves(n);
        const tree = new MerkleTree(data);
        for (let i = 0; i < n; i++) {
          const ok = verifyInclusion({ leaf: data[i] as Uint8Array, index: i, treeSize: n, path: tree.auditPath(i), root: tree.root() });
          assert.equal(ok, true, `leaf ${i} of ${n}`);
        }
      }
    });

    describe('are refused when', () => {
      const data = leaves(13);
      const tree = new MerkleTree(data);
      const root = tree.root();
      const path = tree.auditPath(6);
      const good = { leaf: data[6] as Uint8Array, index: 6, treeSize: 13, path, root };
      const cases: Array<[string, Partial<typeof good>]> = [
        ['the leaf differs', { leaf: Buffer.from('other') }],
        ['the index is another leaf', { index: 7 }],
        ['the index is outside the tree', { index: 13 }],
        // (A size with the same tree shape around the leaf, like 14 here, yields the same root: the
        // size is signed in the statement, so it cannot be chosen by an attacker.)
        ['the tree size gives another shape', { treeSize: 7 }],
        ['the tree size is zero', { treeSize: 0 }],
        ['a hash is missing', { path: path.slice(0, -1) }],
        ['a hash is added', { path: [...path, Buffer.alloc(32)] }],
        ['a hash is changed', { path: [Buffer.alloc(32), ...path.slice(1)] }],
        ['a hash has the wrong length', { path: [Buffer.alloc(31), ...path.slice(1)] }],
        ['the root differs', { root: Buffer.alloc(32) }],
      ];
      it('nothing is changed (control)', () => assert.equal(verifyInclusion(good), true));
      for (const [name, change] of cases) {
        it(name, () => assert.equal(verifyInclusion({ ...good, ...change }), false));
      }
    });

    it('cannot pass an inner node off as a leaf', () => {
      const data = leaves(4);
      const tree = new MerkleTree(data);
      const inner = Buffer.concat([leafHash(data[0] as Uint8Array), leafHash(data[1] as Uint8Array)]);
      const ok = verifyInclusion({ leaf: inner, index: 0, treeSize: 2, path: [tree.auditPath(0)[1] as Buffer], root: tree.root() });
      assert.equal(ok, false);
    });
  });
});

describe('MerkleTree.auditPathHex', () => {
  it('is auditPath in lowercase hex', () => {
    const tree = new MerkleTree(leaves(11));
    for (let i = 0; i < 11; i++) {
      assert.deepEqual(tree.auditPathHex(i), tree.auditPath(i).map((h) => h.toString('hex')));
    }
    assert.throws(() => tree.auditPathHex(11), RangeError);
  });
});

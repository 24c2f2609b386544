//! Merkle trees laid out exactly like OpenZeppelin's `StandardMerkleTree`, so the Solidity
//! `MerkleProof.verify` accepts our proofs and anyone can rebuild our roots with OpenZeppelin's
//! JavaScript library from the same leaves.
//!
//! - A leaf is `keccak256(keccak256(abi.encode(address account, address token, uint256 amount)))`
//!   (hashed twice so a leaf can never be mistaken for an inner node).
//! - Inner nodes hash their two children in sorted order (`keccak256(min ‖ max)`), so a proof is
//!   just the list of siblings with no left/right flags.
//! - Leaves are sorted by hash and stored as a complete binary tree in an array: the leaves fill
//!   the last `n` slots in reverse order, node `i` has children `2i+1` and `2i+2`, the root is node 0.
//!
//! Cost: `2n` leaf hashes and `n − 1` inner hashes, spread over all cores; memory `2n × 32` bytes.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::hash::{Hash32, keccak256};
use crate::money::Amount;

/// One entitlement: `account` may have claimed up to `cumulative` of `token` in total.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Leaf {
    pub account: Address,
    pub token: Address,
    #[serde(with = "crate::serde_u128")]
    pub cumulative: Amount,
}

impl Leaf {
    /// The leaf hash as OpenZeppelin's `StandardMerkleTree` computes it for
    /// `["address", "address", "uint256"]`.
    pub fn hash(&self) -> Hash32 {
        let mut encoded = [0u8; 96];
        encoded[12..32].copy_from_slice(&self.account.0);
        encoded[44..64].copy_from_slice(&self.token.0);
        encoded[80..96].copy_from_slice(&self.cumulative.to_be_bytes());
        keccak256(&keccak256(&encoded).0)
    }
}

/// The commutative inner-node hash `MerkleProof` uses.
pub fn hash_pair(a: &Hash32, b: &Hash32) -> Hash32 {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    let mut joined = [0u8; 64];
    joined[..32].copy_from_slice(&low.0);
    joined[32..].copy_from_slice(&high.0);
    keccak256(&joined)
}

/// Whether `proof` links `leaf` to `root`, as `MerkleProof.verify` decides it on chain.
pub fn verify_proof(root: &Hash32, leaf: &Leaf, proof: &[Hash32]) -> bool {
    proof
        .iter()
        .fold(leaf.hash(), |node, sibling| hash_pair(&node, sibling))
        == *root
}

/// A built tree: every node kept, so any proof is `depth` array reads.
pub struct MerkleTree {
    nodes: Vec<Hash32>,
    /// For each leaf in the order given to [`MerkleTree::build`], its slot in `nodes`.
    slot_of_leaf: Vec<u32>,
}

impl MerkleTree {
    /// Builds the tree over `leaves`. An empty tree has the zero root and no proofs.
    pub fn build(leaves: &[Leaf]) -> MerkleTree {
        MerkleTree::from_leaf_hashes(leaves.par_iter().map(Leaf::hash).collect())
    }

    /// Builds the tree over already hashed leaves (any leaf encoding, such as a dataset's items),
    /// with the same layout as [`MerkleTree::build`]: leaves sorted, pairs hashed in order.
    pub fn from_leaf_hashes(leaf_hashes: Vec<Hash32>) -> MerkleTree {
        let n = leaf_hashes.len();
        assert!(n < u32::MAX as usize / 2, "more than 2^31 leaves");
        if n == 0 {
            return MerkleTree {
                nodes: Vec::new(),
                slot_of_leaf: Vec::new(),
            };
        }
        let mut hashed: Vec<(Hash32, u32)> = leaf_hashes
            .into_par_iter()
            .enumerate()
            .map(|(i, hash)| (hash, i as u32))
            .collect();
        hashed.par_sort_unstable();
        let size = 2 * n - 1;
        let mut nodes = vec![Hash32::ZERO; size];
        let mut slot_of_leaf = vec![0u32; n];
        for (rank, (hash, original)) in hashed.into_iter().enumerate() {
            let slot = size - 1 - rank;
            nodes[slot] = hash;
            slot_of_leaf[original as usize] = slot as u32;
        }
        // Inner nodes are slots 0..n-1. Fill them level by level from the deepest, each level in
        // parallel: a level's children all live after the level's last slot.
        let inner = n - 1;
        let mut level_start = if inner == 0 {
            0
        } else {
            (inner + 1).next_power_of_two() / 2 - 1
        };
        loop {
            let level_end = (2 * level_start + 1).min(inner);
            if level_start < level_end {
                let (head, children) = nodes.split_at_mut(level_end);
                let offset = level_end;
                head[level_start..]
                    .par_iter_mut()
                    .with_min_len(1024)
                    .enumerate()
                    .for_each(|(k, node)| {
                        let i = level_start + k;
                        *node =
                            hash_pair(&children[2 * i + 1 - offset], &children[2 * i + 2 - offset]);
                    });
            }
            if level_start == 0 {
                break;
            }
            level_start = (level_start - 1) / 2;
        }
        MerkleTree {
            nodes,
            slot_of_leaf,
        }
    }

    pub fn root(&self) -> Hash32 {
        self.nodes.first().copied().unwrap_or(Hash32::ZERO)
    }

    /// The proof for the `index`-th leaf given to [`MerkleTree::build`], siblings from the leaf up.
    pub fn proof(&self, index: usize) -> Vec<Hash32> {
        let mut proof = Vec::new();
        self.proof_into(index, &mut proof);
        proof
    }

    /// Like [`MerkleTree::proof`], reusing `proof`'s allocation.
    pub fn proof_into(&self, index: usize, proof: &mut Vec<Hash32>) {
        proof.clear();
        let mut slot = self.slot_of_leaf[index] as usize;
        while slot > 0 {
            let sibling = if slot % 2 == 1 { slot + 1 } else { slot - 1 };
            proof.push(self.nodes[sibling]);
            slot = (slot - 1) / 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaf(i: u64) -> Leaf {
        Leaf {
            account: Address::from_label(&format!("account {i}")),
            token: Address::from_label("token"),
            cumulative: i as u128 * 1_000 + 1,
        }
    }

    /// The tree OpenZeppelin's reference code builds, written the simple sequential way.
    fn reference_root(leaves: &[Leaf]) -> Hash32 {
        let mut hashes: Vec<Hash32> = leaves.iter().map(Leaf::hash).collect();
        hashes.sort();
        let size = 2 * hashes.len() - 1;
        let mut tree = vec![Hash32::ZERO; size];
        for (i, h) in hashes.iter().enumerate() {
            tree[size - 1 - i] = *h;
        }
        for i in (0..size - hashes.len()).rev() {
            tree[i] = hash_pair(&tree[2 * i + 1], &tree[2 * i + 2]);
        }
        tree[0]
    }

    #[test]
    fn matches_openzeppelin_standard_merkle_tree() {
        // Computed with @openzeppelin/merkle-tree 1.0.8:
        // StandardMerkleTree.of(values, ["address", "address", "uint256"]) where values[i] is
        // [last 20 bytes of keccak256("account i"), same of keccak256("token"), i * 1000 + 1].
        let three: Vec<Leaf> = (0..3).map(leaf).collect();
        assert_eq!(
            MerkleTree::build(&three).root().to_hex(),
            "0x50e4d4d26bd96e46ec9e1b90f910acccf780b800fbca65a1e6902312e539d0c8"
        );
        let five: Vec<Leaf> = (0..5).map(leaf).collect();
        let tree = MerkleTree::build(&five);
        assert_eq!(
            tree.root().to_hex(),
            "0x799d425894d1780b22db1c5ed67a1efd40583690bcff88dd43969b07e5458f4a"
        );
        let proof: Vec<String> = tree.proof(3).iter().map(Hash32::to_hex).collect();
        assert_eq!(
            proof,
            [
                "0x5b9134137bb52d4cc44587c3a1a6727418bd3bff740f555c86dbbe14ce30feb0",
                "0x71ae8426839c939109e6bfaa8bd8a4cf5069097e290c095daca91ac4a910a8b0",
                "0x2422277a6dc76fbfe6d24ce00da3ddb5ecc9cc6b2aa02ce082a2f6578495a875",
            ]
        );
        assert_eq!(tree.root(), reference_root(&five));
    }

    #[test]
    fn a_single_leaf_is_its_own_root_and_empty_is_zero() {
        let tree = MerkleTree::build(&[leaf(1)]);
        assert_eq!(tree.root(), leaf(1).hash());
        assert!(tree.proof(0).is_empty());
        assert_eq!(MerkleTree::build(&[]).root(), Hash32::ZERO);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, rng_seed: proptest::test_runner::RngSeed::Fixed(11), ..ProptestConfig::default() })]
        #[test]
        fn every_proof_verifies_and_tampering_fails(n in 1u64..300, pick in any::<prop::sample::Index>(), flip in 0usize..32) {
            let leaves: Vec<Leaf> = (0..n).map(leaf).collect();
            let tree = MerkleTree::build(&leaves);
            prop_assert_eq!(tree.root(), reference_root(&leaves));
            for (i, l) in leaves.iter().enumerate() {
                prop_assert!(verify_proof(&tree.root(), l, &tree.proof(i)));
            }
            let i = pick.index(leaves.len());
            let mut inflated = leaves[i];
            inflated.cumulative += 1;
            prop_assert!(!verify_proof(&tree.root(), &inflated, &tree.proof(i)));
            let mut proof = tree.proof(i);
            if !proof.is_empty() {
                let last = proof.len() - 1;
                proof[last].0[flip] ^= 1;
                prop_assert!(!verify_proof(&tree.root(), &leaves[i], &proof));
                proof.truncate(last);
                prop_assert!(!verify_proof(&tree.root(), &leaves[i], &proof));
            }
        }
    }
}

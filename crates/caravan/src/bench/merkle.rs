//! (c) Merkle trees: the root over millions of leaves, and every proof.

use std::time::Instant;

use caravan_core::*;
use rayon::prelude::*;

/// Returns (build seconds, build + every proof seconds).
pub fn measure_merkle(token: &Token, count: usize) -> (f64, f64) {
    let leaves: Vec<Leaf> = (0..count)
        .map(|i| {
            let mut account = [0u8; 20];
            account[..8]
                .copy_from_slice(&(i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
            account[12..].copy_from_slice(&(i as u64).to_be_bytes());
            Leaf {
                account: Address(account),
                token: token.address,
                cumulative: 1 + (i as u128 * 7_919) % 1_000_000_007,
            }
        })
        .collect();
    let started = Instant::now();
    let tree = MerkleTree::build(&leaves);
    let build = started.elapsed().as_secs_f64();
    // Every proof, extracted on all cores as a service publishing them would.
    let checksum = (0..count)
        .into_par_iter()
        .map_init(Vec::new, |proof, index| {
            tree.proof_into(index, proof);
            proof.first().map(|h| h.0[0]).unwrap_or(0)
        })
        .reduce(|| 0u8, |a, b| a ^ b);
    let total = started.elapsed().as_secs_f64();
    let root = tree.root();
    for index in (0..count).step_by((count / 1_000).max(1)) {
        assert!(
            verify_proof(&root, &leaves[index], &tree.proof(index)),
            "a benchmark proof failed to verify"
        );
    }
    std::hint::black_box(checksum);
    (build, total)
}

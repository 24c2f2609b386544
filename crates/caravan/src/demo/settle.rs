//! The demo's last step: the epoch's root is posted on the embedded chain and three of the
//! people it pays claim their share, with their token balances before and after.

use std::path::Path;

use caravan_chain::settlement::{FundingLimits, Settlement};
use caravan_core::epoch::EpochBundle;
use caravan_core::{EpochOutcome, Token};
use caravan_store::now_ms;

use super::world::Cast;
use crate::present::table;

pub fn settle_and_claim(
    dir: &Path,
    usdc: &Token,
    outcome: &EpochOutcome,
    bundle: &EpochBundle,
    cast: &Cast,
) -> Result<(), String> {
    let now = now_ms() / 1000;
    let mut chain = Settlement::open_embedded(&dir.join("chains/embedded"), 0, now)
        .map_err(|e| e.to_string())?;
    let published = chain
        .publish(bundle.into(), None, &FundingLimits::new(), now)
        .map_err(|e| e.to_string())?;
    println!(
        "\nsettled on the embedded chain: distributor {} funded with {}, root posted ({} gas){}",
        chain.deployment().distributor,
        usdc.format(published.funded_now.iter().map(|(_, funded)| funded).sum()),
        published.posted.gas_used,
        if published.activated {
            " and active"
        } else {
            ""
        }
    );
    // Three claimants: the best-paid annotator, validator and serving node.
    let mut picked = Vec::new();
    for prefix in ["annotator", "validator", "node"] {
        if let Some((index, leaf)) = outcome
            .leaves
            .iter()
            .enumerate()
            .filter(|(_, l)| cast.name(&l.account).starts_with(prefix))
            .max_by_key(|(_, l)| l.cumulative)
        {
            picked.push((index, *leaf));
        }
    }
    let mut t = table(
        &[
            "claimant",
            "balance before",
            "claimed",
            "balance after",
            "gas",
        ],
        &[1, 2, 3, 4],
    );
    for (index, leaf) in picked {
        let before = chain.balance(leaf.account).map_err(|e| e.to_string())?;
        let receipt = chain
            .claim(&leaf, &outcome.tree.proof(index), bundle.root, now)
            .map_err(|e| e.to_string())?;
        let after = chain.balance(leaf.account).map_err(|e| e.to_string())?;
        t.add_row(vec![
            cast.name(&leaf.account),
            usdc.format(before),
            usdc.format(after - before),
            usdc.format(after),
            receipt.gas_used.to_string(),
        ]);
    }
    println!("three of them claim with their proofs:\n{t}");
    Ok(())
}

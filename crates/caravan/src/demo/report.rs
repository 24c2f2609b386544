//! What the demo prints: the lineage, the day's calls, the flow up the lineage, the earners,
//! the conservation check and one person's proof.

use std::collections::BTreeMap;

use caravan_core::*;

use super::world::Cast;
use crate::present::{proof_json, table};

/// Prints the calls and revenue per asset and returns the total charged.
pub fn calls(usdc: &Token, per_asset: &BTreeMap<&'static str, (u64, Amount)>) -> Amount {
    let charged: Amount = per_asset.values().map(|(_, a)| a).sum();
    let mut t = table(&["asset called", "calls", "charged"], &[1, 2]);
    for (name, (count, total)) in per_asset {
        t.add_row(vec![
            name.to_string(),
            count.to_string(),
            usdc.format(*total),
        ]);
    }
    t.add_row(vec![
        "total".to_string(),
        per_asset.values().map(|(n, _)| n).sum::<u64>().to_string(),
        usdc.format(charged),
    ]);
    println!("a day of paid calls from 3 apps, served by 3 nodes\n{t}\n");

    charged
}

/// Prints what the digit labelers earned from the calls to the model their labels trained.
pub fn labelers_paid_by_the_model(
    economy: &Economy,
    bundle: &epoch::EpochBundle,
    manifests: &[Manifest],
) {
    let Some(dataset) = manifests
        .iter()
        .find(|m| m.name == super::gateway::DATASET)
        .map(Manifest::id)
    else {
        return;
    };
    let paid: Vec<Amount> = bundle
        .payouts
        .iter()
        .filter(|p| {
            p.asset == dataset
                && matches!(
                    p.to,
                    PayoutTo::Member {
                        role: Role::DataContributor,
                        ..
                    }
                )
        })
        .map(|p| p.amount)
        .collect();
    let token = bundle.tokens.first().map(|t| t.address).unwrap_or_default();
    println!(
        "the digit-reader's calls paid the people who labelled its training data: {} to {} labelers (top {})",
        crate::present::amount(economy, &token, paid.iter().sum()),
        paid.len(),
        crate::present::amount(economy, &token, paid.iter().copied().max().unwrap_or(0)),
    );
}

/// Prints that the day's charges equal fees plus payouts plus carry, to the base unit.
pub fn conservation(usdc: &Token, bundle: &epoch::EpochBundle, charged: Amount) {
    let fees: Amount = bundle.treasury_fees.iter().map(|f| f.amount).sum();
    let people: Amount = bundle
        .payouts
        .iter()
        .filter(|p| matches!(p.to, PayoutTo::Member { .. } | PayoutTo::Owner { .. }))
        .map(|p| p.amount)
        .sum();
    let carried: Amount = bundle
        .payouts
        .iter()
        .filter(|p| p.to == PayoutTo::Carry)
        .map(|p| p.amount)
        .sum();
    println!(
        "\nconservation: charged {} = protocol fee {} + paid to people {} + carried {}  ({})",
        usdc.format(charged),
        usdc.format(fees),
        usdc.format(people),
        usdc.format(carried),
        if fees + people + carried == charged {
            "exact to the last base unit"
        } else {
            "MISMATCH"
        }
    );
}

/// Prints the settlement root and the proof of the best-paid annotator; returns their leaf.
pub fn proof(
    usdc: &Token,
    outcome: &EpochOutcome,
    bundle: &epoch::EpochBundle,
    cast: &Cast,
) -> Result<Leaf, String> {
    println!(
        "\nsettlement root of epoch {}: {}  ({} leaves, one per person and token)",
        outcome.epoch,
        outcome.root,
        outcome.leaves.len()
    );
    let annotator = bundle
        .leaves
        .iter()
        .enumerate()
        .filter(|(_, l)| cast.name(&l.account).starts_with("annotator"))
        .max_by_key(|(_, l)| l.cumulative)
        .ok_or("no annotator was paid")?;
    let (index, leaf) = annotator;
    let proof = outcome.tree.proof(index);
    println!(
        "\nproof for {} ({}), who may claim {}:",
        cast.name(&leaf.account),
        leaf.account,
        usdc.format(leaf.cumulative)
    );
    println!("{}", proof_json(leaf, &outcome.root, &proof));
    println!(
        "verifies against the root (as OpenZeppelin's MerkleProof would): {}",
        verify_proof(&outcome.root, leaf, &proof)
    );
    Ok(*leaf)
}

/// The demo name of an asset id.
/// The name of a registered asset (its short id if it has none), looked up in the economy's
/// lineage, so every asset a payout names is named whatever chapter registered it.
fn asset_name(economy: &Economy, id: &AssetId) -> String {
    economy
        .lineage()
        .get(id)
        .map(|asset| asset.manifest.name.clone())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| id.0.short())
}

pub fn lineage(economy: &Economy, manifests: &[Manifest]) {
    let name_of = |id: &AssetId| asset_name(economy, id);
    let mut t = table(
        &[
            "asset",
            "kind",
            "parents (edge, royalty share)",
            "price per call",
            "people in its roles",
        ],
        &[3, 4],
    );
    for manifest in manifests {
        let parents: Vec<String> = manifest
            .parents
            .iter()
            .map(|e| format!("{} ({}, {})", name_of(&e.parent), e.kind.name(), e.share))
            .collect();
        let price = match &manifest.licence {
            Licence::Commercial {
                token,
                price_per_call,
                ..
            } => crate::present::amount(economy, token, *price_per_call),
            _ => "—".into(),
        };
        let people: usize = manifest.roles.iter().map(|r| r.members.len()).sum();
        t.add_row(vec![
            manifest.name.clone(),
            manifest.kind.name().into(),
            if parents.is_empty() {
                "—".into()
            } else {
                parents.join("\n")
            },
            price,
            people.to_string(),
        ]);
    }
    println!("the lineage\n{t}\n");
}

pub fn flow(economy: &Economy, bundle: &epoch::EpochBundle, manifests: &[Manifest]) {
    #[derive(Default)]
    struct Flow {
        accrued: Amount,
        received: Amount,
        sent: Amount,
        people: Amount,
        carried: Amount,
    }
    let mut flows: BTreeMap<AssetId, Flow> = BTreeMap::new();
    for accrual in &bundle.accruals {
        flows.entry(accrual.asset).or_default().accrued += accrual.amount;
    }
    for payout in &bundle.payouts {
        match &payout.to {
            PayoutTo::Parent { parent, .. } => {
                flows.entry(payout.asset).or_default().sent += payout.amount;
                flows.entry(*parent).or_default().received += payout.amount;
            }
            PayoutTo::Carry => flows.entry(payout.asset).or_default().carried += payout.amount,
            _ => flows.entry(payout.asset).or_default().people += payout.amount,
        }
    }
    let token = bundle.tokens.first().map(|t| t.address).unwrap_or_default();
    let show = |amount: Amount| crate::present::amount(economy, &token, amount);
    let mut t = table(
        &[
            "asset",
            "own revenue (after fee)",
            "from children",
            "to parents",
            "to its people",
            "carried",
        ],
        &[1, 2, 3, 4, 5],
    );
    for manifest in manifests.iter().rev() {
        let flow = flows.remove(&manifest.id()).unwrap_or_default();
        t.add_row(vec![
            manifest.name.clone(),
            show(flow.accrued),
            show(flow.received),
            show(flow.sent),
            show(flow.people),
            show(flow.carried),
        ]);
    }
    println!("how the money moved up the lineage at epoch close (children first)\n{t}");
}

pub fn earners(economy: &Economy, bundle: &epoch::EpochBundle, cast: &Cast) {
    let name_of = |id: &AssetId| asset_name(economy, id);
    let mut earners: BTreeMap<Address, (Amount, BTreeMap<String, Amount>)> = BTreeMap::new();
    for payout in &bundle.payouts {
        let (account, why) = match &payout.to {
            PayoutTo::Member { account, role } => (
                account,
                format!("{} of {}", role.name(), name_of(&payout.asset)),
            ),
            PayoutTo::Owner { account, role } => (
                account,
                format!(
                    "owner of {}{}",
                    name_of(&payout.asset),
                    role.map(|r| format!(" (no {} yet)", r.name()))
                        .unwrap_or_default()
                ),
            ),
            _ => continue,
        };
        let entry = earners.entry(*account).or_default();
        entry.0 += payout.amount;
        *entry.1.entry(why).or_default() += payout.amount;
    }
    let token = bundle.tokens.first().map(|t| t.address).unwrap_or_default();
    let show = |amount: Amount| crate::present::amount(economy, &token, amount);
    let mut ranked: Vec<_> = earners.iter().collect();
    ranked.sort_by_key(|(address, (total, _))| (std::cmp::Reverse(*total), **address));
    let mut t = table(&["who", "earned", "why"], &[1]);
    for (address, (total, reasons)) in ranked.iter().take(14) {
        let why: Vec<String> = reasons
            .iter()
            .map(|(reason, amount)| format!("{reason}: {}", show(*amount)))
            .collect();
        t.add_row(vec![cast.name(address), show(*total), why.join("\n")]);
    }
    println!(
        "\nwho earned what, and why (top 14 of {})\n{t}",
        ranked.len()
    );
    let annotators: Vec<Amount> = ranked
        .iter()
        .filter(|(a, _)| cast.name(a).starts_with("annotator"))
        .map(|(_, (total, _))| *total)
        .collect();
    if let (Some(most), Some(least)) = (annotators.first(), annotators.last()) {
        let sum: Amount = annotators.iter().sum();
        println!(
            "{} annotators earned {} together: from {} (most accepted labels) down to {}; the median earned {}",
            annotators.len(),
            show(sum),
            show(*most),
            show(*least),
            show(annotators[annotators.len() / 2])
        );
        print!("{}", decile_chart(&annotators, &show));
    }
}

/// A bar per tenth of `earnings` (sorted largest first): what each tenth of the people earned
/// together, so the long tail of a crowd can be seen at a glance.
fn decile_chart(earnings: &[Amount], show: &dyn Fn(Amount) -> String) -> String {
    const WIDTH: u128 = 40;
    let tenth = earnings.len().div_ceil(10);
    let totals: Vec<Amount> = earnings
        .chunks(tenth)
        .map(|chunk| chunk.iter().sum())
        .collect();
    let largest = totals.iter().copied().max().unwrap_or(0).max(1);
    let mut chart = String::from("earnings by tenth of annotators, most accepted labels first:\n");
    for (index, total) in totals.iter().enumerate() {
        let bar = "█".repeat((total * WIDTH / largest) as usize);
        let label = format!("{}–{}%", index * 10, index * 10 + 10);
        chart.push_str(&format!("  {label:>8} {bar:<40} {}\n", show(*total)));
    }
    chart
}

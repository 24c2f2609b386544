//! Closing an epoch, and the bundle that lets anyone re-check it.
//!
//! Closing takes every asset's revenue (plus what it carried), propagates it through the lineage,
//! pays the treasury its fees, and builds the cumulative Merkle tree over every beneficiary's
//! total entitlement so far — the root a settlement contract holds. The [`EpochBundle`] carries
//! the inputs (manifests, accruals, served revenue), the payouts and the leaves, so a third party
//! can recompute the payouts and the root from the bundle alone with [`verify_bundle`].

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::asset::{AssetId, Manifest};
use crate::event::Genesis;
use crate::hash::Hash32;
use crate::ledger::{AccountRef, Ledger, Transfer};
use crate::lineage::Lineage;
use crate::merkle::{Leaf, MerkleTree};
use crate::money::{Amount, Token};
use crate::royalty::{Payout, PayoutTo, ServedBy, propagate_royalties};

/// Everything a close computes, before it is committed to the state.
pub struct EpochOutcome {
    pub epoch: u64,
    /// (asset position, token, revenue + carried-in amount) that was propagated.
    pub accruals: Vec<(u32, Address, Amount)>,
    /// Protocol fees paid to the treasury address, per token.
    pub treasury_fees: BTreeMap<Address, Amount>,
    /// Revenue each compute node served per asset and token, sorted.
    pub served: Vec<Served>,
    pub payouts: Vec<Payout>,
    pub transfers: Vec<Transfer>,
    /// Every beneficiary's cumulative entitlement after this epoch, sorted by (account, token).
    pub leaves: Vec<Leaf>,
    pub tree: MerkleTree,
    pub root: Hash32,
}

/// Computes the close of epoch `epoch` from the state's parts, changing nothing.
pub(crate) fn prepare_close(
    lineage: &Lineage,
    ledger: &Ledger,
    served: &FxHashMap<(u32, Address), ServedBy>,
    treasury: Address,
    epoch: u64,
) -> EpochOutcome {
    let mut pooled: BTreeMap<(u32, Address), Amount> = BTreeMap::new();
    let mut transfers = Vec::new();
    let mut treasury_fees = BTreeMap::new();
    for ((account, token), balance) in ledger.entries() {
        let amount = balance.available();
        if amount == 0 {
            continue;
        }
        match account {
            AccountRef::AssetRevenue(id) => {
                *pooled
                    .entry((
                        lineage
                            .position(id)
                            .expect("revenue only accrues to registered assets"),
                        *token,
                    ))
                    .or_default() += amount;
            }
            AccountRef::CarryForward(id) => {
                *pooled
                    .entry((
                        lineage
                            .position(id)
                            .expect("carry only exists for registered assets"),
                        *token,
                    ))
                    .or_default() += amount;
                transfers.push(Transfer {
                    from: *account,
                    to: AccountRef::AssetRevenue(*id),
                    token: *token,
                    amount,
                });
            }
            AccountRef::Treasury => {
                treasury_fees.insert(*token, amount);
            }
            _ => {}
        }
    }
    // Carry transfers first, in a canonical order; the ledger map iterates in no fixed order.
    transfers.sort_unstable_by_key(|t| (t.from, t.token));
    let accruals: Vec<(u32, Address, Amount)> = pooled
        .into_iter()
        .map(|((position, token), amount)| (position, token, amount))
        .collect();
    let payouts = propagate_royalties(lineage, &accruals, served);

    let mut gained: BTreeMap<(Address, Address), Amount> = BTreeMap::new();
    for payout in &payouts {
        let from = AccountRef::AssetRevenue(payout.asset);
        let to = match &payout.to {
            PayoutTo::Parent { parent, .. } => AccountRef::AssetRevenue(*parent),
            PayoutTo::Member { account, .. } | PayoutTo::Owner { account, .. } => {
                *gained.entry((*account, payout.token)).or_default() += payout.amount;
                AccountRef::Beneficiary(*account)
            }
            PayoutTo::Carry => AccountRef::CarryForward(payout.asset),
        };
        transfers.push(Transfer {
            from,
            to,
            token: payout.token,
            amount: payout.amount,
        });
    }
    for (token, amount) in &treasury_fees {
        *gained.entry((treasury, *token)).or_default() += amount;
        transfers.push(Transfer {
            from: AccountRef::Treasury,
            to: AccountRef::Beneficiary(treasury),
            token: *token,
            amount: *amount,
        });
    }

    let mut cumulative: BTreeMap<(Address, Address), Amount> = BTreeMap::new();
    for ((account, token), balance) in ledger.entries() {
        if let AccountRef::Beneficiary(address) = account {
            cumulative.insert((*address, *token), balance.credits);
        }
    }
    for (key, amount) in gained {
        *cumulative.entry(key).or_default() += amount;
    }
    let leaves: Vec<Leaf> = cumulative
        .into_iter()
        .map(|((account, token), cumulative)| Leaf {
            account,
            token,
            cumulative,
        })
        .collect();
    let tree = MerkleTree::build(&leaves);
    let root = tree.root();
    EpochOutcome {
        epoch,
        served: served_rows(lineage, served),
        accruals,
        treasury_fees,
        payouts,
        transfers,
        leaves,
        tree,
        root,
    }
}

fn served_rows(lineage: &Lineage, served: &FxHashMap<(u32, Address), ServedBy>) -> Vec<Served> {
    let mut rows: Vec<Served> = served
        .iter()
        .flat_map(|((position, token), nodes)| {
            let asset = lineage.at(*position).id;
            nodes.iter().map(move |(node, amount)| Served {
                asset,
                token: *token,
                node: *node,
                amount: *amount,
            })
        })
        .collect();
    rows.sort_unstable_by_key(|row| (row.asset, row.token, row.node));
    rows
}

/// Revenue an asset brought into an epoch (its own plus carried in), in one token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accrual {
    pub asset: AssetId,
    pub token: Address,
    #[serde(with = "crate::serde_u128")]
    pub amount: Amount,
}

/// Revenue one compute node served for an asset in one token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    pub asset: AssetId,
    pub token: Address,
    pub node: Address,
    #[serde(with = "crate::serde_u128")]
    pub amount: Amount,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreasuryFee {
    pub token: Address,
    #[serde(with = "crate::serde_u128")]
    pub amount: Amount,
}

/// The format name every bundle carries, so readers can refuse formats they do not know.
pub const BUNDLE_FORMAT: &str = "caravan-epoch-bundle/1";

/// A self-contained record of one epoch close.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochBundle {
    pub format: String,
    pub epoch: u64,
    pub root: Hash32,
    /// The root of the epoch before (zero for the first epoch).
    pub previous_root: Hash32,
    /// Sequence number and hash of the `EpochClosed` event in the log.
    pub event_seq: u64,
    pub event_hash: Hash32,
    pub closed_at_ms: u64,
    pub genesis: Genesis,
    pub tokens: Vec<Token>,
    /// The manifests of every asset that accrued and of all their ancestors, parents first.
    pub assets: Vec<Manifest>,
    pub accruals: Vec<Accrual>,
    pub served: Vec<Served>,
    pub treasury_fees: Vec<TreasuryFee>,
    pub payouts: Vec<Payout>,
    pub leaves: Vec<Leaf>,
}

/// What [`verify_bundle`] established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleReport {
    pub leaves: usize,
    pub payouts: usize,
    /// Whether the leaves were checked against the previous epoch's leaves plus this epoch's payouts.
    pub checked_against_previous: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("unknown bundle format `{0}`; this version reads {BUNDLE_FORMAT}")]
    Format(String),
    #[error("the leaves give root {computed}, but the bundle states {stated}")]
    Root { stated: Hash32, computed: Hash32 },
    #[error("the bundle's assets do not form a valid lineage: {0}")]
    Lineage(String),
    #[error("accrual or served revenue names asset {0}, which the bundle does not include")]
    MissingAsset(AssetId),
    #[error(
        "recomputing the payouts from the bundle's inputs gives a different result, first at payout {index}: bundle says {stated}, recomputed {computed}"
    )]
    Payouts {
        index: usize,
        stated: String,
        computed: String,
    },
    #[error("leaves are not sorted by (account, token) without repeats at leaf {0}")]
    LeafOrder(usize),
    #[error(
        "leaf of {account} in token {token}: the bundle says {stated}, the previous epoch plus this epoch's payouts give {computed}"
    )]
    Leaf {
        account: Address,
        token: Address,
        stated: Amount,
        computed: Amount,
    },
    #[error("this bundle follows root {stated}, but the previous bundle given has root {previous}")]
    NotTheNextEpoch { stated: Hash32, previous: Hash32 },
}

/// Re-checks a bundle from its own contents: the root from the leaves, the payouts from the
/// inputs, and — when the previous epoch's bundle is given — every leaf as the previous leaf plus
/// this epoch's payouts.
pub fn verify_bundle(
    bundle: &EpochBundle,
    previous: Option<&EpochBundle>,
) -> Result<BundleReport, BundleError> {
    if bundle.format != BUNDLE_FORMAT {
        return Err(BundleError::Format(bundle.format.clone()));
    }
    for (i, pair) in bundle.leaves.windows(2).enumerate() {
        if (pair[0].account, pair[0].token) >= (pair[1].account, pair[1].token) {
            return Err(BundleError::LeafOrder(i + 1));
        }
    }
    let computed = MerkleTree::build(&bundle.leaves).root();
    if computed != bundle.root {
        return Err(BundleError::Root {
            stated: bundle.root,
            computed,
        });
    }

    let mut lineage = Lineage::default();
    for manifest in &bundle.assets {
        lineage
            .register(manifest.clone())
            .map_err(|e| BundleError::Lineage(e.to_string()))?;
    }
    let position = |id: &AssetId| lineage.position(id).ok_or(BundleError::MissingAsset(*id));
    let mut accruals = Vec::with_capacity(bundle.accruals.len());
    for accrual in &bundle.accruals {
        accruals.push((position(&accrual.asset)?, accrual.token, accrual.amount));
    }
    let mut served: FxHashMap<(u32, Address), ServedBy> = FxHashMap::default();
    for row in &bundle.served {
        *served
            .entry((position(&row.asset)?, row.token))
            .or_default()
            .entry(row.node)
            .or_default() += row.amount;
    }
    let recomputed = propagate_royalties(&lineage, &accruals, &served);
    if recomputed != bundle.payouts {
        let index = recomputed
            .iter()
            .zip(&bundle.payouts)
            .position(|(a, b)| a != b)
            .unwrap_or(recomputed.len().min(bundle.payouts.len()));
        let show = |p: Option<&Payout>| {
            p.map(|p| format!("{p:?}"))
                .unwrap_or_else(|| "nothing".into())
        };
        return Err(BundleError::Payouts {
            index,
            stated: show(bundle.payouts.get(index)),
            computed: show(recomputed.get(index)),
        });
    }

    let Some(previous) = previous else {
        return Ok(BundleReport {
            leaves: bundle.leaves.len(),
            payouts: bundle.payouts.len(),
            checked_against_previous: false,
        });
    };
    if previous.root != bundle.previous_root {
        return Err(BundleError::NotTheNextEpoch {
            stated: bundle.previous_root,
            previous: previous.root,
        });
    }
    let mut expected: BTreeMap<(Address, Address), Amount> = previous
        .leaves
        .iter()
        .map(|l| ((l.account, l.token), l.cumulative))
        .collect();
    for payout in &bundle.payouts {
        if let PayoutTo::Member { account, .. } | PayoutTo::Owner { account, .. } = &payout.to {
            *expected.entry((*account, payout.token)).or_default() += payout.amount;
        }
    }
    for fee in &bundle.treasury_fees {
        *expected
            .entry((bundle.genesis.treasury, fee.token))
            .or_default() += fee.amount;
    }
    let stated: BTreeMap<(Address, Address), Amount> = bundle
        .leaves
        .iter()
        .map(|l| ((l.account, l.token), l.cumulative))
        .collect();
    for key in expected.keys().chain(stated.keys()) {
        let (want, have) = (
            expected.get(key).copied().unwrap_or(0),
            stated.get(key).copied().unwrap_or(0),
        );
        if want != have {
            return Err(BundleError::Leaf {
                account: key.0,
                token: key.1,
                stated: have,
                computed: want,
            });
        }
    }
    Ok(BundleReport {
        leaves: bundle.leaves.len(),
        payouts: bundle.payouts.len(),
        checked_against_previous: true,
    })
}

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
use crate::event::{Genesis, HOME_CHAIN};
use crate::hash::Hash32;
use crate::ledger::{AccountRef, Ledger, Transfer};
use crate::lineage::Lineage;
use crate::merkle::{Leaf, MerkleTree};
use crate::money::{Amount, Token};
use crate::royalty::{Payout, PayoutTo, ServedBy, Validators, propagate_royalties};

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
    /// The leaves of each chain other than home that accounts chose to be paid on, by chain id.
    pub chains: Vec<ChainLeaves>,
    /// The validators who had attested each model when the epoch closed.
    pub validators: Vec<AttestedValidator>,
    /// What entitlements gained during the epoch outside its royalties, per (account, token).
    pub credited: Vec<Credited>,
}

/// Entitlement an account gained during an epoch outside the epoch's royalties: bounties for
/// its accepted judgments, an escrow released to a requester, a withdrawal from its own prepaid
/// balance. Each is credited when its event is applied, so the close finds it already in the
/// ledger; the bundle lists the epoch's total per account and token so that a verifier can
/// account for every leaf's growth.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Credited {
    pub account: Address,
    pub token: Address,
    #[serde(with = "crate::serde_u128")]
    pub amount: Amount,
}

/// A validator of a model: a member of its validator role because it attested the model.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AttestedValidator {
    pub asset: AssetId,
    pub validator: Address,
}

/// What one chain other than the home chain pays: the cumulative amounts accounts earned while
/// they had chosen it, as leaves sorted by (account, token), and their Merkle root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLeaves {
    pub chain_id: u64,
    pub root: Hash32,
    pub leaves: Vec<Leaf>,
}

/// Computes the close of epoch `epoch` from the state's parts, changing nothing.
pub(crate) fn prepare_close(
    lineage: &Lineage,
    ledger: &Ledger,
    served: &FxHashMap<(u32, Address), ServedBy>,
    validators: &Validators,
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
    let payouts = propagate_royalties(lineage, &accruals, served, validators);

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
        chains: Vec::new(),
        credited: Vec::new(),
        validators: validators
            .iter()
            .flat_map(|(position, accounts)| {
                accounts.iter().map(|validator| AttestedValidator {
                    asset: lineage.at(*position).id,
                    validator: *validator,
                })
            })
            .collect(),
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
    /// Every beneficiary's cumulative entitlement, whichever chain pays it; `root` is theirs.
    pub leaves: Vec<Leaf>,
    /// The part of the entitlements paid on chains other than home, by ascending chain id (empty
    /// while nobody chose another chain). The home chain pays the rest: see
    /// [`EpochBundle::chain_leaves`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chains: Vec<ChainLeaves>,
    /// The validators of the bundle's models (who attested them), which the validator roles pay
    /// (empty while nobody attested a model in the bundle).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validators: Vec<AttestedValidator>,
    /// What entitlements gained during the epoch outside its royalties (bounties, escrow
    /// releases, withdrawals), per account and token, sorted; each leaf is the previous
    /// epoch's plus its payouts, its treasury fees and these. Empty when none was credited.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credited: Vec<Credited>,
}

/// An account's leaf with the Merkle proof a wallet submits to claim it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenLeaf {
    pub leaf: Leaf,
    pub proof: Vec<Hash32>,
}

/// What one chain pays an account in an epoch: the chain's root (for this epoch) and the
/// account's leaves on it, each with its proof against that root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainProofs {
    /// [`HOME_CHAIN`] for home, else the chain id.
    pub chain: u64,
    pub root: Hash32,
    pub leaves: Vec<ProvenLeaf>,
}

impl EpochBundle {
    /// `account`'s leaves on `chain` ([`HOME_CHAIN`] for home) with their proofs against that
    /// chain's root; no leaves when the chain pays the account nothing.
    pub fn proofs_on(&self, chain: u64, account: &Address) -> ChainProofs {
        let leaves = self.chain_leaves(chain);
        let tree = MerkleTree::build(&leaves);
        ChainProofs {
            chain,
            root: tree.root(),
            leaves: leaves
                .iter()
                .enumerate()
                .filter(|(_, leaf)| leaf.account == *account)
                .map(|(index, leaf)| ProvenLeaf {
                    leaf: *leaf,
                    proof: tree.proof(index),
                })
                .collect(),
        }
    }

    /// Every chain that pays `account` in this epoch (home first, then the chains accounts
    /// chose), each with the account's proven leaves: what its wallet submits to claim.
    pub fn proofs_for(&self, account: &Address) -> Vec<ChainProofs> {
        self.paying_chains()
            .map(|chain| self.proofs_on(chain, account))
            .filter(|proofs| !proofs.leaves.is_empty())
            .collect()
    }

    /// The leaves chain `chain_id` pays ([`HOME_CHAIN`] for home): a chosen chain's own leaves,
    /// or for home each entitlement less what other chains pay (leaves that come to zero left
    /// out). A chain nobody chose pays nothing.
    pub fn chain_leaves(&self, chain_id: u64) -> Vec<Leaf> {
        if chain_id != HOME_CHAIN {
            return self
                .chains
                .iter()
                .find(|c| c.chain_id == chain_id)
                .map(|c| c.leaves.clone())
                .unwrap_or_default();
        }
        if self.chains.is_empty() {
            return self.leaves.clone();
        }
        let elsewhere = self.paid_elsewhere();
        self.leaves
            .iter()
            .filter_map(|leaf| {
                let cumulative = leaf.cumulative
                    - elsewhere
                        .get(&(leaf.account, leaf.token))
                        .copied()
                        .unwrap_or(0);
                (cumulative > 0).then_some(Leaf {
                    cumulative,
                    ..*leaf
                })
            })
            .collect()
    }

    /// Every chain that pays in this epoch: home first, then the chosen chains by ascending id.
    pub fn paying_chains(&self) -> impl Iterator<Item = u64> + '_ {
        std::iter::once(HOME_CHAIN).chain(self.chains.iter().map(|c| c.chain_id))
    }

    /// The root of [`EpochBundle::chain_leaves`]; for home while nobody chose another chain,
    /// the bundle's own root.
    pub fn chain_root(&self, chain_id: u64) -> Hash32 {
        match self.chains.iter().find(|c| c.chain_id == chain_id) {
            Some(chain) => chain.root,
            None if chain_id == HOME_CHAIN && self.chains.is_empty() => self.root,
            None => MerkleTree::build(&self.chain_leaves(chain_id)).root(),
        }
    }

    /// Per (account, token), the sum of what chains other than home pay.
    fn paid_elsewhere(&self) -> BTreeMap<(Address, Address), Amount> {
        let mut sums: BTreeMap<(Address, Address), Amount> = BTreeMap::new();
        for leaf in self.chains.iter().flat_map(|c| &c.leaves) {
            *sums.entry((leaf.account, leaf.token)).or_default() += leaf.cumulative;
        }
        sums
    }
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
        "node {node} is listed as serving nothing of asset {asset}; a served row is revenue a node served, above zero"
    )]
    NothingServed { asset: AssetId, node: Address },
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
    #[error(
        "the chains are not listed once each by ascending chain id, other than home ({HOME_CHAIN}), at chain {0}"
    )]
    ChainOrder(u64),
    #[error(
        "chains other than home pay {account} {elsewhere} of {token}, more than its whole entitlement {entitled}"
    )]
    PaidTwice {
        account: Address,
        token: Address,
        elsewhere: Amount,
        entitled: Amount,
    },
    #[error("chain {chain_id}: {problem}")]
    Chain { chain_id: u64, problem: String },
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
    verify_chains(bundle)?;

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
        // A node's share of the compute role is its revenue served: a bundle claiming zero
        // would leave the role's weights summing to nothing.
        if row.amount == 0 {
            return Err(BundleError::NothingServed {
                asset: row.asset,
                node: row.node,
            });
        }
        *served
            .entry((position(&row.asset)?, row.token))
            .or_default()
            .entry(row.node)
            .or_default() += row.amount;
    }
    let mut validators = Validators::new();
    for row in &bundle.validators {
        validators
            .entry(position(&row.asset)?)
            .or_default()
            .push(row.validator);
    }
    for accounts in validators.values_mut() {
        accounts.sort_unstable();
        accounts.dedup();
    }
    let recomputed = propagate_royalties(&lineage, &accruals, &served, &validators);
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
    for credit in &bundle.credited {
        *expected.entry((credit.account, credit.token)).or_default() += credit.amount;
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
    for chain_id in previous.paying_chains() {
        let now: BTreeMap<_, _> = bundle
            .chain_leaves(chain_id)
            .into_iter()
            .map(|l| ((l.account, l.token), l.cumulative))
            .collect();
        for before in previous.chain_leaves(chain_id) {
            let after = now
                .get(&(before.account, before.token))
                .copied()
                .unwrap_or(0);
            if after < before.cumulative {
                return Err(BundleError::Chain {
                    chain_id,
                    problem: format!(
                        "{} had {} of {} after the previous epoch but {after} now; a chain's cumulative amounts never go down",
                        before.account, before.cumulative, before.token
                    ),
                });
            }
        }
    }
    Ok(BundleReport {
        leaves: bundle.leaves.len(),
        payouts: bundle.payouts.len(),
        checked_against_previous: true,
    })
}

/// Checks the chosen chains' leaves: listed by ascending chain id, each sorted with its stated
/// root, and together never paying an account more than its whole entitlement.
fn verify_chains(bundle: &EpochBundle) -> Result<(), BundleError> {
    let mut last = HOME_CHAIN;
    for chain in &bundle.chains {
        if chain.chain_id <= last {
            return Err(BundleError::ChainOrder(chain.chain_id));
        }
        last = chain.chain_id;
        let problem = |problem: String| BundleError::Chain {
            chain_id: chain.chain_id,
            problem,
        };
        for (i, pair) in chain.leaves.windows(2).enumerate() {
            if (pair[0].account, pair[0].token) >= (pair[1].account, pair[1].token) {
                return Err(problem(format!(
                    "leaves are not sorted by (account, token) without repeats at leaf {}",
                    i + 1
                )));
            }
        }
        let computed = MerkleTree::build(&chain.leaves).root();
        if computed != chain.root {
            return Err(problem(format!(
                "the leaves give root {computed}, but the bundle states {}",
                chain.root
            )));
        }
    }
    let whole: BTreeMap<_, _> = bundle
        .leaves
        .iter()
        .map(|l| ((l.account, l.token), l.cumulative))
        .collect();
    for ((account, token), elsewhere) in bundle.paid_elsewhere() {
        let entitled = whole.get(&(account, token)).copied().unwrap_or(0);
        if elsewhere > entitled {
            return Err(BundleError::PaidTwice {
                account,
                token,
                elsewhere,
                entitled,
            });
        }
    }
    Ok(())
}

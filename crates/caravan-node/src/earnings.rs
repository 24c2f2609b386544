//! What an account earned, and where it can claim it: the bounties of its accepted judgments and
//! the royalties closed epochs paid it, each royalty traced back through the lineage to the
//! assets whose revenue it came from; and, per chain that pays it, what the chain's active root
//! lets it claim now, what it claimed already and what waits for the next root.
//!
//! Royalties come from the epochs' bundles, which are large at scale (about 100 MB of JSON at
//! 200,000 contributors): each closed epoch is read once into a compact index of who received
//! what and how money flowed between assets, and the most recent indexes are kept.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

pub use caravan_chain::embedded::EMBEDDED_CHAIN_ID;
use caravan_core::epoch::{ChainProofs, EpochBundle};
use caravan_core::royalty::PayoutTo;
use caravan_core::{Address, Amount, AssetId, EdgeKind, Hash32, Leaf, Role, Token};
use caravan_store::SharedJournal;
use caravan_tasks::project::ProjectId;
use rustc_hash::FxHashMap;

use crate::chains::{ChainDirectory, PayoutChain};
use crate::desk::{Desk, DeskError};
use crate::settlement::{Chains, ChainsError, ClaimPosition};

mod explorer;

pub use explorer::{
    AssetDetail, AssetRevenue, Beneficiary, ChainPost, ClosedEpochs, EARNERS_SHOWN,
    EPOCHS_PAGE_MAX, EPOCHS_PER_PAGE, Earner, EpochDetail, EpochSummary, GRAPH_HOPS, GRAPH_WIDTH,
    GraphEdge, GraphNode, PublicEpoch, PublicStatement, PublicTokenLine, TokenTotals,
};

/// How many closed epochs a statement covers, newest first.
pub const EPOCHS_SHOWN: usize = 12;
/// How many epochs' royalty indexes are kept in memory.
const INDEXES_KEPT: usize = 16;
/// The most lineage paths shown for one royalty (the largest).
const PATHS_SHOWN: usize = 4;
/// The most partial paths a royalty's trace expands before it settles for what it found.
const PATH_STEPS: usize = 2_000;

#[derive(Debug, thiserror::Error)]
pub enum EarningsError {
    #[error("{0}")]
    Desk(#[from] DeskError),
    #[error("{0}")]
    Chains(#[from] ChainsError),
    /// The account asked to claim on a chain that does not pay it, or where nothing is due.
    #[error("{0}")]
    NothingToClaim(String),
    /// The chain asked for is not one the node settles on.
    #[error("{0}")]
    UnknownChain(String),
    /// A wallet cannot reach this chain, or the node does not claim on it for others.
    #[error("{0}")]
    WrongWay(String),
    /// The epoch asked for is not closed.
    #[error("{0}")]
    UnknownEpoch(String),
    /// No asset is registered under the id asked for.
    #[error("{0}")]
    UnknownAsset(String),
    /// A page of a list asked for with a size out of range.
    #[error("{0}")]
    BadPage(String),
}

/// What one epoch brought an account in one token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenEarnings {
    pub token: Address,
    pub bounties: Amount,
    /// Accepted judgments the bounties paid.
    pub judgments: u32,
    pub royalties: Amount,
}

/// One epoch of an account's earnings; `closed_at_ms` is `None` for the epoch still open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochEarnings {
    pub epoch: u64,
    pub closed_at_ms: Option<u64>,
    pub tokens: Vec<TokenEarnings>,
}

/// One asset on a royalty's path, with the edge that led to it from the hop before.
#[derive(Clone, Debug, PartialEq)]
pub struct Hop {
    pub asset: AssetId,
    pub name: String,
    pub edge: Option<EdgeKind>,
}

/// A way money reached the paying asset: from the revenue of `hops[0]`, up the edges, to the
/// asset that paid; `share` is the part of the royalty that came this way (0 to 1).
#[derive(Clone, Debug, PartialEq)]
pub struct RoyaltyPath {
    pub hops: Vec<Hop>,
    pub share: f64,
}

/// The account's part in the paying role: its weight among the role's members, and for a
/// dataset made on this node, its accepted labels in the project that published it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contribution {
    pub weight: u128,
    pub role_weight: u128,
    pub labels: Option<Labels>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Labels {
    pub project: ProjectId,
    pub title: String,
    pub accepted: u32,
}

/// A royalty one asset paid the account in one epoch, in one of its roles there (`None` when
/// it was paid as the asset's owner, for a role with no members or an asset with no roles).
#[derive(Clone, Debug, PartialEq)]
pub struct Royalty {
    pub epoch: u64,
    pub token: Address,
    pub amount: Amount,
    pub asset: AssetId,
    pub asset_name: String,
    pub role: Option<Role>,
    pub paths: Vec<RoyaltyPath>,
    pub contribution: Option<Contribution>,
}

/// One token on one chain: what the latest closed epoch entitles the account to, what the
/// chain's active root does, what the account claimed, and so what it can claim now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenClaim {
    pub token: Address,
    pub entitled: Amount,
    pub active: Amount,
    pub claimed: Amount,
}

impl TokenClaim {
    /// What a claim against the active root pays now.
    pub fn claimable(&self) -> Amount {
        self.active.saturating_sub(self.claimed)
    }

    /// What later roots will add (earned, not yet claimable on chain).
    pub fn on_the_way(&self) -> Amount {
        self.entitled.saturating_sub(self.active.max(self.claimed))
    }
}

/// How the account claims on a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimWay {
    /// From the wallet: the chain is reachable over JSON-RPC.
    Wallet,
    /// The node submits it: the embedded development chain lives inside the node, where no
    /// wallet can reach it.
    Node,
}

/// What one chain pays the account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainClaims {
    pub chain: PayoutChain,
    pub way: ClaimWay,
    /// Where the chain stands; `Err` says why it could not be read.
    pub position: Result<Option<ClaimPosition>, String>,
    pub tokens: Vec<TokenClaim>,
}

/// An account's earnings and claims.
#[derive(Clone, Debug)]
pub struct Statement {
    pub account: Address,
    /// The open epoch, then up to [`EPOCHS_SHOWN`] closed ones, newest first.
    pub epochs: Vec<EpochEarnings>,
    /// The royalties of those epochs, newest first, largest first within an epoch.
    pub royalties: Vec<Royalty>,
    pub chains: Vec<ChainClaims>,
    /// The chain the account's earnings are paid on from now on (`None` for home on a node
    /// with no chain directory).
    pub payout_chain: Option<PayoutChain>,
    /// The chains the account may choose.
    pub choices: Vec<PayoutChain>,
    pub tokens: BTreeMap<Address, Token>,
    /// Closed epochs in all.
    pub closed_epochs: u64,
}

/// A claim a wallet sends itself: the distributor's `claim` for one leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletClaim {
    pub leaf: Leaf,
    pub proof: Vec<Hash32>,
    pub calldata: Vec<u8>,
    /// What it pays now.
    pub pays: Amount,
}

/// Everything needed to claim on one chain against its active root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimCall {
    pub chain: PayoutChain,
    pub distributor: Address,
    pub epoch: u64,
    pub root: Hash32,
    pub claims: Vec<WalletClaim>,
}

/// A received payout, as the index keeps it.
#[derive(Clone, Debug)]
struct Received {
    asset: AssetId,
    token: Address,
    role: Option<Role>,
    amount: Amount,
    /// The account's weight in the role and the role's total, where the manifest or the
    /// attestations give them.
    weight: Option<(u128, u128)>,
}

/// Money one asset sent up an edge to a parent.
#[derive(Clone, Debug)]
struct Flow {
    child: AssetId,
    parent: AssetId,
    edge: EdgeKind,
    token: Address,
    amount: Amount,
}

/// Assets from the one whose revenue it was to the one that paid, each with the edge that led
/// to it from the one before.
type AssetPath = Vec<(AssetId, Option<EdgeKind>)>;

/// One closed epoch, read once from its bundle.
#[derive(Debug)]
struct EpochIndex {
    epoch: u64,
    closed_at_ms: u64,
    /// What the epoch moved per token, and its roots: for the explorer.
    summary: EpochSummary,
    received: FxHashMap<Address, Vec<Received>>,
    flows: Vec<Flow>,
    /// The flows into each asset, per token (indexes into `flows`).
    into: FxHashMap<(AssetId, Address), Vec<usize>>,
    accruals: FxHashMap<(AssetId, Address), Amount>,
    /// Each asset's own revenue plus what its children sent it, per token.
    inflows: FxHashMap<(AssetId, Address), Amount>,
    /// Every account's cumulative entitlement per chain partition and token.
    entitled: FxHashMap<Address, Vec<(u64, Address, Amount)>>,
}

impl EpochIndex {
    fn of(bundle: &EpochBundle) -> EpochIndex {
        let manifests: FxHashMap<AssetId, &caravan_core::Manifest> =
            bundle.assets.iter().map(|m| (m.id(), m)).collect();
        let mut attested: FxHashMap<AssetId, Vec<Address>> = FxHashMap::default();
        for v in &bundle.validators {
            attested.entry(v.asset).or_default().push(v.validator);
        }
        let weight_of = |asset: &AssetId, role: Role, account: &Address| {
            let manifest = manifests.get(asset)?;
            let share = manifest.roles.iter().find(|r| r.role == role)?;
            if role == Role::ComputeNode {
                return None;
            }
            let mut members: BTreeMap<Address, u128> = share
                .members
                .iter()
                .map(|m| (m.account, u128::from(m.weight)))
                .collect();
            if role == Role::Validator {
                for validator in attested.get(asset).into_iter().flatten() {
                    members.entry(*validator).or_insert(1);
                }
            }
            Some((*members.get(account)?, members.values().sum()))
        };
        let mut received: FxHashMap<Address, Vec<Received>> = FxHashMap::default();
        let mut flows = Vec::new();
        for payout in &bundle.payouts {
            let (account, role) = match &payout.to {
                PayoutTo::Member { account, role } => (*account, Some(*role)),
                PayoutTo::Owner { account, .. } => (*account, None),
                PayoutTo::Parent { parent, edge } => {
                    flows.push(Flow {
                        child: payout.asset,
                        parent: *parent,
                        edge: *edge,
                        token: payout.token,
                        amount: payout.amount,
                    });
                    continue;
                }
                PayoutTo::Carry => continue,
            };
            received.entry(account).or_default().push(Received {
                asset: payout.asset,
                token: payout.token,
                role,
                amount: payout.amount,
                weight: role.and_then(|role| weight_of(&payout.asset, role, &account)),
            });
        }
        let mut entitled: FxHashMap<Address, Vec<(u64, Address, Amount)>> = FxHashMap::default();
        for partition in bundle.paying_chains() {
            for leaf in bundle.chain_leaves(partition) {
                entitled.entry(leaf.account).or_default().push((
                    partition,
                    leaf.token,
                    leaf.cumulative,
                ));
            }
        }
        let accruals: FxHashMap<(AssetId, Address), Amount> = bundle
            .accruals
            .iter()
            .map(|a| ((a.asset, a.token), a.amount))
            .collect();
        let mut index = EpochIndex::over(
            bundle.epoch,
            bundle.closed_at_ms,
            received,
            flows,
            accruals,
            entitled,
        );
        index.summary = EpochSummary::of(bundle);
        index
    }

    /// The index of these parts, with the flows into each asset and each asset's inflow
    /// worked out once.
    fn over(
        epoch: u64,
        closed_at_ms: u64,
        received: FxHashMap<Address, Vec<Received>>,
        flows: Vec<Flow>,
        accruals: FxHashMap<(AssetId, Address), Amount>,
        entitled: FxHashMap<Address, Vec<(u64, Address, Amount)>>,
    ) -> EpochIndex {
        let mut into: FxHashMap<(AssetId, Address), Vec<usize>> = FxHashMap::default();
        let mut inflows = accruals.clone();
        for (at, flow) in flows.iter().enumerate() {
            into.entry((flow.parent, flow.token)).or_default().push(at);
            *inflows.entry((flow.parent, flow.token)).or_default() += flow.amount;
        }
        EpochIndex {
            epoch,
            closed_at_ms,
            summary: EpochSummary::default(),
            received,
            flows,
            into,
            accruals,
            inflows,
            entitled,
        }
    }

    /// What reached `asset` in `token`: its own revenue (with what it carried in) and what its
    /// children sent it.
    fn inflow(&self, asset: &AssetId, token: &Address) -> Amount {
        self.inflows.get(&(*asset, *token)).copied().unwrap_or(0)
    }

    /// The `most` largest ways money reached `asset` in `token`, largest first: each as the
    /// assets from the one whose revenue it was to `asset`, with the part of `asset`'s inflow
    /// it makes up. A best-first walk back up the flows: a path's part only shrinks as it
    /// grows, so complete paths come out largest first and the walk stops after `most` of them
    /// (or [`PATH_STEPS`] steps), however many paths a wide lineage holds.
    fn top_paths(&self, asset: &AssetId, token: &Address, most: usize) -> Vec<(AssetPath, f64)> {
        /// A path back from `asset`, first hop first; `complete` once it starts at the revenue
        /// of its first asset.
        struct Walk {
            share: f64,
            hops: AssetPath,
            complete: bool,
        }
        impl PartialEq for Walk {
            fn eq(&self, other: &Walk) -> bool {
                self.share == other.share
            }
        }
        impl Eq for Walk {}
        impl PartialOrd for Walk {
            fn partial_cmp(&self, other: &Walk) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }
        impl Ord for Walk {
            fn cmp(&self, other: &Walk) -> std::cmp::Ordering {
                self.share.total_cmp(&other.share)
            }
        }
        let mut found = Vec::new();
        let mut frontier = std::collections::BinaryHeap::new();
        frontier.push(Walk {
            share: 1.0,
            hops: vec![(*asset, None)],
            complete: false,
        });
        let mut steps = 0;
        while let Some(walk) = frontier.pop() {
            if walk.complete {
                found.push((walk.hops, walk.share));
                if found.len() == most {
                    break;
                }
                continue;
            }
            steps += 1;
            if steps > PATH_STEPS {
                break;
            }
            let head = walk.hops[0].0;
            let inflow = self.inflow(&head, token);
            if inflow == 0 {
                continue;
            }
            let own = self.accruals.get(&(head, *token)).copied().unwrap_or(0);
            if own > 0 {
                frontier.push(Walk {
                    share: walk.share * own as f64 / inflow as f64,
                    hops: walk.hops.clone(),
                    complete: true,
                });
            }
            for &at in self.into.get(&(head, *token)).into_iter().flatten() {
                let flow = &self.flows[at];
                let mut hops = Vec::with_capacity(walk.hops.len() + 1);
                hops.push((flow.child, None));
                hops.extend(walk.hops.iter().copied());
                hops[1].1 = Some(flow.edge);
                frontier.push(Walk {
                    share: walk.share * flow.amount as f64 / inflow as f64,
                    hops,
                    complete: false,
                });
            }
        }
        found
    }
}

/// The statement service: the bounty book of the desk, the epochs' bundles and the chains.
pub struct Earnings {
    journal: Arc<SharedJournal>,
    desk: Arc<Desk>,
    chains: Option<Arc<Chains>>,
    /// The most recently read epoch indexes, oldest first.
    indexes: Mutex<VecDeque<Arc<EpochIndex>>>,
}

impl Earnings {
    pub fn new(
        journal: Arc<SharedJournal>,
        desk: Arc<Desk>,
        chains: Option<Arc<Chains>>,
    ) -> Earnings {
        Earnings {
            journal,
            desk,
            chains,
            indexes: Mutex::new(VecDeque::new()),
        }
    }

    /// Indexes a bundle just closed, so the first statement that needs it does not read it back
    /// from the store.
    pub fn remember(&self, bundle: &EpochBundle) {
        self.keep(Arc::new(EpochIndex::of(bundle)));
    }

    /// Reads and indexes the latest closed epoch ahead of the first statement (about a second
    /// at 200,000 contributors), for a node that has just started.
    pub fn warm_up(&self) -> Result<(), EarningsError> {
        let closed = self.journal.read(|j| j.economy().epochs().len() as u64);
        if closed > 0 {
            self.index(closed)?;
        }
        Ok(())
    }

    fn keep(&self, index: Arc<EpochIndex>) {
        let mut kept = self
            .indexes
            .lock()
            .expect("the index cache's lock is never poisoned");
        if !kept.iter().any(|i| i.epoch == index.epoch) {
            if kept.len() == INDEXES_KEPT {
                kept.pop_front();
            }
            kept.push_back(index);
        }
    }

    /// A closed epoch's bundle, read from the store.
    fn stored_bundle(&self, epoch: u64) -> Result<EpochBundle, EarningsError> {
        self.journal
            .bundle(epoch)
            .map_err(DeskError::Store)?
            .ok_or_else(|| missing(epoch))
    }

    fn index(&self, epoch: u64) -> Result<Arc<EpochIndex>, EarningsError> {
        if let Some(found) = self
            .indexes
            .lock()
            .expect("the index cache's lock is never poisoned")
            .iter()
            .find(|index| index.epoch == epoch)
        {
            return Ok(Arc::clone(found));
        }
        let index = Arc::new(EpochIndex::of(&self.stored_bundle(epoch)?));
        self.keep(Arc::clone(&index));
        Ok(index)
    }

    /// `account`'s statement: the open epoch and the latest [`EPOCHS_SHOWN`] closed ones up to
    /// `through` (the latest when `None`), and its claims on every chain that pays it. Chains
    /// are asked live; one that cannot be reached says so in its entry.
    pub fn statement(
        &self,
        account: Address,
        through: Option<u64>,
    ) -> Result<Statement, EarningsError> {
        self.statement_for(account, through, true)
    }

    /// [`Earnings::statement`]; with `labelled`, each dataset royalty says how many of its
    /// labels are the account's (which takes a look at every project's publications, and is
    /// for the account's own eyes only).
    fn statement_for(
        &self,
        account: Address,
        through: Option<u64>,
        labelled: bool,
    ) -> Result<Statement, EarningsError> {
        let (closed, tokens, names) = self.journal.read(|j| {
            let economy = j.economy();
            (
                economy.epochs().len() as u64,
                economy.tokens().clone(),
                AssetNames::of(economy),
            )
        });
        let last = through.map_or(closed, |t| t.min(closed));
        let first = last.saturating_sub(EPOCHS_SHOWN as u64 - 1).max(1);
        let mut epochs: BTreeMap<u64, EpochEarnings> = BTreeMap::new();
        if last == closed {
            epochs.insert(
                closed + 1,
                EpochEarnings {
                    epoch: closed + 1,
                    closed_at_ms: None,
                    tokens: Vec::new(),
                },
            );
        }
        let mut royalties = Vec::new();
        let mut labels = labelled.then(|| LabelCounts::new(&self.desk, account));
        for epoch in (first..=last).rev() {
            let index = self.index(epoch)?;
            let line = epochs.entry(epoch).or_insert(EpochEarnings {
                epoch,
                closed_at_ms: Some(index.closed_at_ms),
                tokens: Vec::new(),
            });
            let mut from_epoch = Vec::new();
            for received in index.received.get(&account).into_iter().flatten() {
                token_line(&mut line.tokens, received.token).royalties += received.amount;
                from_epoch.push(royalty(&index, received, &names, labels.as_mut()));
            }
            from_epoch.sort_by_key(|r: &Royalty| std::cmp::Reverse(r.amount));
            royalties.extend(from_epoch);
        }
        for (key, tally) in self.desk.bounties_of(&account) {
            if let Some(line) = epochs.get_mut(&key.epoch) {
                let tokens = token_line(&mut line.tokens, key.token);
                tokens.bounties += tally.amount;
                tokens.judgments += tally.judgments;
            }
        }
        let directory = self.desk.chains();
        let (_, payout_chain) = self.desk.payout_chain(&account);
        let chains = if closed == 0 {
            Vec::new()
        } else {
            self.claims(account, closed, &directory)?
        };
        Ok(Statement {
            account,
            epochs: epochs.into_values().rev().collect(),
            royalties,
            chains,
            payout_chain,
            choices: directory.chains().cloned().collect(),
            tokens,
            closed_epochs: closed,
        })
    }

    /// Per chain that pays `account` as of epoch `latest`: its claims as the chain holds them.
    fn claims(
        &self,
        account: Address,
        latest: u64,
        directory: &ChainDirectory,
    ) -> Result<Vec<ChainClaims>, EarningsError> {
        let index = self.index(latest)?;
        let mut partitions: BTreeMap<u64, Vec<(Address, Amount)>> = BTreeMap::new();
        for (partition, token, cumulative) in index.entitled.get(&account).into_iter().flatten() {
            partitions
                .entry(*partition)
                .or_default()
                .push((*token, *cumulative));
        }
        let mut claims = Vec::new();
        for (partition, entitled) in partitions {
            let Some(chain) = directory.of_partition(partition).cloned() else {
                continue;
            };
            let tokens: Vec<Address> = entitled.iter().map(|(t, _)| *t).collect();
            let position = match &self.chains {
                Some(chains) => chains
                    .claim_position(&chain.name, account, &tokens)
                    .map_err(|e| e.to_string()),
                None => Ok(None),
            };
            let active_index = match &position {
                Ok(Some(p)) if p.active_epoch > 0 => Some(self.index(p.active_epoch)?),
                _ => None,
            };
            let tokens = entitled
                .iter()
                .map(|(token, cumulative)| TokenClaim {
                    token: *token,
                    entitled: *cumulative,
                    active: active_index
                        .as_ref()
                        .and_then(|i| i.entitled.get(&account))
                        .into_iter()
                        .flatten()
                        .find(|(p, t, _)| *p == partition && t == token)
                        .map_or(0, |(_, _, amount)| *amount),
                    claimed: match &position {
                        Ok(Some(p)) => p
                            .claimed
                            .iter()
                            .find(|(t, _)| t == token)
                            .map_or(0, |(_, amount)| *amount),
                        _ => 0,
                    },
                })
                .collect();
            claims.push(ChainClaims {
                way: way_of(&chain),
                chain,
                position,
                tokens,
            });
        }
        Ok(claims)
    }

    /// The claims `account` can make on chain `chain_id` against its active root, with the
    /// proofs and the distributor calls a wallet sends.
    pub fn claim_call(&self, account: Address, chain_id: u64) -> Result<ClaimCall, EarningsError> {
        let (chain, partition, position) = self.position(account, chain_id)?;
        let proofs = self.proofs(position.active_epoch, partition, &account)?;
        if proofs.root != position.active_root {
            return Err(EarningsError::NothingToClaim(format!(
                "the root active on {} is not the one this node computed for epoch {}; `caravan verify --epoch {} --chain {}` shows where they differ",
                chain.name, position.active_epoch, position.active_epoch, chain.name
            )));
        }
        let claims = proofs
            .leaves
            .iter()
            .map(|proven| {
                let claimed = position
                    .claimed
                    .iter()
                    .find(|(t, _)| *t == proven.leaf.token)
                    .map_or(0, |(_, a)| *a);
                WalletClaim {
                    calldata: caravan_chain::settlement::claim_calldata(
                        &proven.leaf,
                        &proven.proof,
                        proofs.root,
                    ),
                    leaf: proven.leaf,
                    proof: proven.proof.clone(),
                    pays: proven.leaf.cumulative.saturating_sub(claimed),
                }
            })
            .collect();
        Ok(ClaimCall {
            chain,
            distributor: position.distributor,
            epoch: position.active_epoch,
            root: proofs.root,
            claims,
        })
    }

    /// Claims for `account` on the embedded chain, sent by the node (no wallet reaches that
    /// chain); the money goes only to `account`. Returns what each token paid.
    pub fn claim_on_embedded(
        &self,
        account: Address,
    ) -> Result<Vec<(Address, Amount)>, EarningsError> {
        let (chain, partition, position) = self.position(account, EMBEDDED_CHAIN_ID)?;
        let proofs = self.proofs(position.active_epoch, partition, &account)?;
        let chains = self
            .chains
            .as_ref()
            .expect("a position means the node settles on chains");
        let paid = chains.claim(&chain.name, &proofs)?;
        if paid.is_empty() {
            return Err(EarningsError::NothingToClaim(format!(
                "{account} has claimed everything epoch {}'s root on {} pays; what it earned since is claimable once a later root is posted and active",
                position.active_epoch, chain.name
            )));
        }
        Ok(paid)
    }

    /// The chain `chain_id` and where `account` stands there, when it has an active root.
    fn position(
        &self,
        account: Address,
        chain_id: u64,
    ) -> Result<(PayoutChain, u64, ClaimPosition), EarningsError> {
        let directory = self.desk.chains();
        let chain = directory
            .by_chain_id(chain_id)
            .map_err(EarningsError::UnknownChain)?
            .clone();
        let partition = ChainDirectory::partition(&chain);
        let chains = self
            .chains
            .as_ref()
            .ok_or_else(|| EarningsError::WrongWay("this node does not settle on chains".into()))?;
        let tokens: Vec<Address> = self
            .journal
            .read(|j| j.economy().tokens().keys().copied().collect());
        let position = chains
            .claim_position(&chain.name, account, &tokens)?
            .filter(|p| p.active_epoch > 0)
            .ok_or_else(|| {
                EarningsError::NothingToClaim(format!(
                    "no root is active on {} yet: claims open once the node posts an epoch's root there and it is activated",
                    chain.name
                ))
            })?;
        Ok((chain, partition, position))
    }

    fn proofs(
        &self,
        epoch: u64,
        partition: u64,
        account: &Address,
    ) -> Result<ChainProofs, EarningsError> {
        let proofs = self.stored_bundle(epoch)?.proofs_on(partition, account);
        if proofs.leaves.is_empty() {
            return Err(EarningsError::NothingToClaim(format!(
                "epoch {epoch}'s root pays {account} nothing on this chain"
            )));
        }
        Ok(proofs)
    }
}

/// A closed epoch whose bundle the store does not have: the node's own records are damaged.
fn missing(epoch: u64) -> EarningsError {
    EarningsError::Desk(DeskError::CorruptRecord {
        seq: 0,
        why: format!("the bundle of closed epoch {epoch} is missing from the store"),
    })
}

/// How an account claims on `chain`.
fn way_of(chain: &PayoutChain) -> ClaimWay {
    if chain.chain_id == EMBEDDED_CHAIN_ID {
        ClaimWay::Node
    } else {
        ClaimWay::Wallet
    }
}

fn token_line(lines: &mut Vec<TokenEarnings>, token: Address) -> &mut TokenEarnings {
    let at = match lines.iter().position(|l| l.token == token) {
        Some(at) => at,
        None => {
            lines.push(TokenEarnings {
                token,
                ..TokenEarnings::default()
            });
            lines.len() - 1
        }
    };
    &mut lines[at]
}

/// Asset names by id, read once per statement.
struct AssetNames(FxHashMap<AssetId, String>);

impl AssetNames {
    fn of(economy: &caravan_core::Economy) -> AssetNames {
        AssetNames(
            economy
                .lineage()
                .iter()
                .map(|a| (a.id, a.manifest.name.clone()))
                .collect(),
        )
    }

    fn name(&self, asset: &AssetId) -> String {
        self.0
            .get(asset)
            .cloned()
            .unwrap_or_else(|| asset.to_string())
    }
}

/// The account's accepted labels per dataset, looked up once each.
struct LabelCounts<'a> {
    desk: &'a Desk,
    account: Address,
    found: FxHashMap<AssetId, Option<Labels>>,
    /// Which project published each dataset, filled on first need.
    publishers: Option<FxHashMap<AssetId, ProjectId>>,
}

impl<'a> LabelCounts<'a> {
    fn new(desk: &'a Desk, account: Address) -> LabelCounts<'a> {
        LabelCounts {
            desk,
            account,
            found: FxHashMap::default(),
            publishers: None,
        }
    }

    fn of(&mut self, dataset: &AssetId) -> Option<Labels> {
        if let Some(found) = self.found.get(dataset) {
            return found.clone();
        }
        let desk = self.desk;
        let publishers = self.publishers.get_or_insert_with(|| {
            let mut publishers = FxHashMap::default();
            for project in desk.projects() {
                let _ = desk.with_board(&project, |board| {
                    for (asset, _) in board.publications() {
                        publishers.insert(AssetId(*asset), project);
                    }
                });
            }
            publishers
        });
        let labels = publishers.get(dataset).and_then(|project| {
            desk.with_board(project, |board| {
                board.contributor(&self.account).map(|c| Labels {
                    project: *project,
                    title: board.spec.title.clone(),
                    accepted: c.accepted,
                })
            })
            .ok()
            .flatten()
        });
        self.found.insert(*dataset, labels.clone());
        labels
    }
}

fn royalty(
    index: &EpochIndex,
    received: &Received,
    names: &AssetNames,
    labels: Option<&mut LabelCounts<'_>>,
) -> Royalty {
    let paths: Vec<RoyaltyPath> = index
        .top_paths(&received.asset, &received.token, PATHS_SHOWN)
        .into_iter()
        .map(|(hops, share)| RoyaltyPath {
            hops: hops
                .into_iter()
                .map(|(asset, edge)| Hop {
                    name: names.name(&asset),
                    asset,
                    edge,
                })
                .collect(),
            share,
        })
        .collect();
    let contribution = received.weight.map(|(weight, role_weight)| Contribution {
        weight,
        role_weight,
        labels: match received.role {
            Some(Role::DataContributor) => labels.and_then(|labels| labels.of(&received.asset)),
            _ => None,
        },
    });
    Royalty {
        epoch: index.epoch,
        token: received.token,
        amount: received.amount,
        asset: received.asset,
        asset_name: names.name(&received.asset),
        role: received.role,
        paths,
        contribution,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asset(n: u8) -> AssetId {
        AssetId(Hash32([n; 32]))
    }

    #[test]
    fn a_royalty_is_split_over_every_path_its_money_took_in_proportion() {
        let token = Address([9; 20]);
        let (agent, model, dataset) = (asset(1), asset(2), asset(3));
        let flow = |child, parent, edge, amount| Flow {
            child,
            parent,
            edge,
            token,
            amount,
        };
        // The agent's 1000 sends 500 to the model; the model's own 1000 plus those 500 send
        // 30% (450) to the dataset.
        let index = EpochIndex::over(
            1,
            0,
            FxHashMap::default(),
            vec![
                flow(agent, model, EdgeKind::ComposedOf, 500),
                flow(model, dataset, EdgeKind::TrainedOn, 450),
            ],
            [((agent, token), 1000), ((model, token), 1000)]
                .into_iter()
                .collect(),
            FxHashMap::default(),
        );
        let paths = index.top_paths(&dataset, &token, 4);
        assert_eq!(paths.len(), 2);
        assert_eq!(
            paths[0].0,
            vec![(model, None), (dataset, Some(EdgeKind::TrainedOn))]
        );
        assert!((paths[0].1 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(
            paths[1].0,
            vec![
                (agent, None),
                (model, Some(EdgeKind::ComposedOf)),
                (dataset, Some(EdgeKind::TrainedOn))
            ]
        );
        assert!((paths[1].1 - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(index.top_paths(&dataset, &token, 1), paths[..1].to_vec());
        assert_eq!(
            index.top_paths(&agent, &token, 4).len(),
            1,
            "its own revenue"
        );
        assert!(index.top_paths(&asset(4), &token, 4).is_empty());
    }

    proptest::proptest! {
        /// Whatever the lineage (a small one, whose paths the walk's step limit does not cut
        /// short), the paths into an asset account for all of its inflow, largest first.
        #[test]
        fn the_paths_into_an_asset_account_for_all_it_received(
            own in proptest::collection::vec(1u128..1_000, 2..7),
            edges in proptest::collection::vec((0usize..7, 0usize..7, 1u128..1_000), 0..12),
        ) {
            let token = Address([9; 20]);
            let assets: Vec<AssetId> = (0..own.len()).map(|n| asset(n as u8 + 1)).collect();
            let mut flows = Vec::new();
            for (a, b, amount) in edges {
                // A bundle has one flow per child, parent and token.
                let (a, b) = (a % assets.len(), b % assets.len());
                let (child, parent) = (a.max(b), a.min(b));
                let known = flows
                    .iter()
                    .any(|f: &Flow| f.child == assets[child] && f.parent == assets[parent]);
                if child != parent && !known {
                    flows.push(Flow {
                        child: assets[child],
                        parent: assets[parent],
                        edge: EdgeKind::DerivedFrom,
                        token,
                        amount,
                    });
                }
            }
            let accruals = assets.iter().zip(&own).map(|(a, o)| ((*a, token), *o)).collect();
            let index = EpochIndex::over(1, 0, FxHashMap::default(), flows, accruals, FxHashMap::default());
            for asset in &assets {
                let paths = index.top_paths(asset, &token, usize::MAX);
                let total: f64 = paths.iter().map(|(_, share)| share).sum();
                proptest::prop_assert!((total - 1.0).abs() < 1e-9, "{total}");
                proptest::prop_assert!(paths.windows(2).all(|w| w[0].1 >= w[1].1));
                proptest::prop_assert!(paths.iter().all(|(hops, _)| hops.last().unwrap().0 == *asset));
            }
        }
    }

    #[test]
    fn what_is_claimable_is_what_the_active_root_pays_less_what_was_claimed() {
        let claim = TokenClaim {
            token: Address([9; 20]),
            entitled: 900,
            active: 600,
            claimed: 100,
        };
        assert_eq!(claim.claimable(), 500);
        assert_eq!(claim.on_the_way(), 300);
        let all_claimed = TokenClaim {
            claimed: 600,
            ..claim
        };
        assert_eq!(all_claimed.claimable(), 0);
        assert_eq!(all_claimed.on_the_way(), 300);
    }
}

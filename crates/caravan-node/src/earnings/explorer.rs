//! What anyone may check without signing in: each closed epoch (what it moved per token, its
//! roots, where each chain's root was posted and activated, its bundle, and a re-check of that
//! bundle on the node), and what an address earned and claimed — all from the public bundles
//! and the chains, nothing a contributor's own pages alone may see (bounties per project,
//! labels per project).

use std::collections::BTreeMap;

use caravan_core::attestation::Attestation;
use caravan_core::epoch::{BundleError, BundleReport, EpochBundle, verify_bundle};
use caravan_core::lineage::Lineage;
use caravan_core::royalty::PayoutTo;
use caravan_core::{
    Address, Amount, AssetId, AssetKind, EdgeKind, EpochRecord, Hash32, Manifest, Ppm, Role, Token,
};

use super::{ChainClaims, DeskError, Earnings, EarningsError, Royalty, missing};
use crate::chains::PayoutChain;
use crate::settlement::PostedRoot;

/// What an epoch moved in one token: the revenue propagated (with what was carried in), what
/// reached people, what waits for the next epoch, and the protocol's fee.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenTotals {
    pub token: Address,
    pub revenue: Amount,
    pub paid: Amount,
    pub carried: Amount,
    pub fees: Amount,
}

/// A closed epoch at a glance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpochSummary {
    pub root: Hash32,
    pub previous_root: Hash32,
    pub leaves: usize,
    pub payouts: usize,
    pub totals: Vec<TokenTotals>,
    /// The root each paying chain holds for this epoch (home first).
    pub chain_roots: Vec<(u64, Hash32)>,
}

impl EpochSummary {
    pub(super) fn of(bundle: &EpochBundle) -> EpochSummary {
        let mut totals: BTreeMap<Address, TokenTotals> = BTreeMap::new();
        let add = |totals: &mut BTreeMap<Address, TokenTotals>, token: Address| {
            totals.entry(token).or_insert(TokenTotals {
                token,
                ..TokenTotals::default()
            });
        };
        for accrual in &bundle.accruals {
            add(&mut totals, accrual.token);
            totals.get_mut(&accrual.token).expect("just added").revenue += accrual.amount;
        }
        for payout in &bundle.payouts {
            add(&mut totals, payout.token);
            let line = totals.get_mut(&payout.token).expect("just added");
            match payout.to {
                PayoutTo::Member { .. } | PayoutTo::Owner { .. } => line.paid += payout.amount,
                PayoutTo::Carry => line.carried += payout.amount,
                PayoutTo::Parent { .. } => {}
            }
        }
        for fee in &bundle.treasury_fees {
            add(&mut totals, fee.token);
            totals.get_mut(&fee.token).expect("just added").fees += fee.amount;
        }
        EpochSummary {
            root: bundle.root,
            previous_root: bundle.previous_root,
            leaves: bundle.leaves.len(),
            payouts: bundle.payouts.len(),
            totals: totals.into_values().collect(),
            chain_roots: bundle
                .paying_chains()
                .map(|chain| (chain, bundle.chain_root(chain)))
                .collect(),
        }
    }
}

/// Where one chain's root for an epoch stands, as the chain's own records say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainPost {
    pub chain: PayoutChain,
    pub root: Hash32,
    /// `Ok(None)` when it was not posted there; `Err` says why the chain could not be read.
    pub posted: Result<Option<PostedRoot>, String>,
}

/// An asset that earned in an epoch: all that reached it in one token, its own calls'
/// revenue among it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Earner {
    pub asset: AssetId,
    pub name: String,
    pub token: Address,
    pub own: Amount,
    pub inflow: Amount,
}

/// How many earning assets an epoch page lists, largest first.
pub const EARNERS_SHOWN: usize = 20;

/// A closed epoch in full, for its explorer page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochDetail {
    pub record: EpochRecord,
    pub summary: EpochSummary,
    pub chains: Vec<ChainPost>,
    /// The assets that earned the most, largest first (at most [`EARNERS_SHOWN`]).
    pub earners: Vec<Earner>,
    /// How many assets earned in all.
    pub earner_count: usize,
}

/// What one epoch brought an address, from the public bundles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublicTokenLine {
    pub token: Address,
    pub royalties: Amount,
    /// How much its cumulative entitlement grew in the epoch: royalties plus bounties,
    /// refunds and withdrawals.
    pub credited: Amount,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicEpoch {
    pub epoch: u64,
    pub closed_at_ms: u64,
    pub tokens: Vec<PublicTokenLine>,
}

/// What an address earned and claimed, as anyone may check it.
#[derive(Clone, Debug)]
pub struct PublicStatement {
    pub account: Address,
    /// Up to [`super::EPOCHS_SHOWN`] closed epochs, newest first.
    pub epochs: Vec<PublicEpoch>,
    /// Royalties of those epochs, from the assets that paid them.
    pub royalties: Vec<Royalty>,
    pub chains: Vec<ChainClaims>,
    pub tokens: BTreeMap<Address, Token>,
    pub closed_epochs: u64,
}

/// How many closed epochs a page lists when the caller does not say: an epoch closed every
/// ten seconds makes 8,640 a day, which no page or answer should carry whole.
pub const EPOCHS_PER_PAGE: usize = 100;

/// The most closed epochs one page may list.
pub const EPOCHS_PAGE_MAX: usize = 1_000;

/// A page of closed epochs, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClosedEpochs {
    pub epochs: Vec<EpochRecord>,
    /// The `before` that asks for the next, older page; `None` on the page with epoch 1.
    pub older: Option<u64>,
}

impl Earnings {
    /// The closed epochs numbered below `before` (the newest when `None`), newest first, at
    /// most `limit` of them ([`EPOCHS_PER_PAGE`] when `None`). Reads only the page: the cost
    /// does not grow with the epochs closed. A `limit` of 0 or above [`EPOCHS_PAGE_MAX`] is
    /// refused.
    pub fn closed_epochs(
        &self,
        before: Option<u64>,
        limit: Option<usize>,
    ) -> Result<ClosedEpochs, EarningsError> {
        let limit = limit.unwrap_or(EPOCHS_PER_PAGE);
        if !(1..=EPOCHS_PAGE_MAX).contains(&limit) {
            return Err(EarningsError::BadPage(format!(
                "limit {limit} is out of range: ask for 1 to {EPOCHS_PAGE_MAX} epochs a page"
            )));
        }
        Ok(self.journal.read(|j| {
            let epochs = j.economy().epochs();
            let end = before.map_or(epochs.len(), |before| {
                epochs.partition_point(|record| record.epoch < before)
            });
            let start = end.saturating_sub(limit);
            ClosedEpochs {
                epochs: epochs[start..end].iter().rev().cloned().collect(),
                older: (start > 0).then(|| epochs[start].epoch),
            }
        }))
    }

    /// Closed epoch `epoch` as the log records it.
    pub fn closed_epoch(&self, epoch: u64) -> Result<EpochRecord, EarningsError> {
        self.journal
            .read(|j| {
                j.economy()
                    .epochs()
                    .iter()
                    .find(|r| r.epoch == epoch)
                    .cloned()
            })
            .ok_or_else(|| EarningsError::UnknownEpoch(format!("epoch {epoch} is not closed")))
    }

    /// Epoch `epoch` in full: what it moved, its roots, and where each was posted.
    pub fn epoch_detail(&self, epoch: u64) -> Result<EpochDetail, EarningsError> {
        let record = self.closed_epoch(epoch)?;
        let index = self.index(epoch)?;
        let summary = index.summary.clone();
        let mut earners: Vec<Earner> = self.journal.read(|j| {
            let lineage = j.economy().lineage();
            index
                .inflows
                .iter()
                .filter(|(_, amount)| **amount > 0)
                .map(|((asset, token), inflow)| Earner {
                    asset: *asset,
                    name: lineage
                        .get(asset)
                        .map_or_else(|| asset.to_string(), |a| a.manifest.name.clone()),
                    token: *token,
                    own: index.accruals.get(&(*asset, *token)).copied().unwrap_or(0),
                    inflow: *inflow,
                })
                .collect()
        });
        let earner_count = earners.len();
        earners.sort_by_key(|e| (std::cmp::Reverse(e.inflow), e.asset));
        earners.truncate(EARNERS_SHOWN);
        let directory = self.desk.chains();
        let chains = summary
            .chain_roots
            .iter()
            .filter_map(|(partition, root)| {
                let chain = directory.of_partition(*partition)?.clone();
                let posted = match &self.chains {
                    Some(chains) => chains
                        .posted_roots(&chain.name)
                        .map(|roots| roots.into_iter().find(|r| r.epoch == epoch))
                        .map_err(|e| e.to_string()),
                    None => Ok(None),
                };
                Some(ChainPost {
                    chain,
                    root: *root,
                    posted,
                })
            })
            .collect();
        Ok(EpochDetail {
            record,
            summary,
            chains,
            earners,
            earner_count,
        })
    }

    /// Re-checks epoch `epoch`'s stored bundle from its contents alone and against the epoch
    /// before: the leaves rebuilt from the previous leaves plus the payouts, the payouts from
    /// the accruals and the lineage, and every root. `Err` inside names what differs.
    pub fn verify_epoch(
        &self,
        epoch: u64,
    ) -> Result<Result<BundleReport, BundleError>, EarningsError> {
        self.closed_epoch(epoch)?;
        let bundle = self.stored_bundle(epoch)?;
        let previous = match epoch {
            1 => None,
            n => Some(self.stored_bundle(n - 1)?),
        };
        Ok(verify_bundle(&bundle, previous.as_ref()))
    }

    /// Epoch `epoch`'s bundle as stored: the JSON anyone downloads to re-check it.
    pub fn bundle_json(&self, epoch: u64) -> Result<Vec<u8>, EarningsError> {
        self.closed_epoch(epoch)?;
        self.journal
            .bundle_json(epoch)
            .map_err(DeskError::Store)?
            .ok_or_else(|| missing(epoch))
    }

    /// What `account` earned per epoch and from which assets, and what it claimed on each
    /// chain, from the public bundles and the chains.
    pub fn public_statement(
        &self,
        account: Address,
        through: Option<u64>,
    ) -> Result<PublicStatement, EarningsError> {
        let private = self.statement_for(account, through, false)?;
        let mut epochs = Vec::new();
        for line in private.epochs.iter().filter(|e| e.closed_at_ms.is_some()) {
            let entitled = self.entitled(account, line.epoch)?;
            let before = match line.epoch {
                1 => BTreeMap::new(),
                n => self.entitled(account, n - 1)?,
            };
            let mut tokens: Vec<PublicTokenLine> = entitled
                .iter()
                .map(|(token, cumulative)| PublicTokenLine {
                    token: *token,
                    royalties: 0,
                    credited: cumulative - before.get(token).copied().unwrap_or(0),
                })
                .collect();
            for earned in &line.tokens {
                if let Some(public) = tokens.iter_mut().find(|t| t.token == earned.token) {
                    public.royalties = earned.royalties;
                }
            }
            tokens.retain(|t| t.credited > 0 || t.royalties > 0);
            epochs.push(PublicEpoch {
                epoch: line.epoch,
                closed_at_ms: line.closed_at_ms.expect("closed"),
                tokens,
            });
        }
        Ok(PublicStatement {
            account,
            epochs,
            royalties: private.royalties,
            chains: private.chains,
            tokens: private.tokens,
            closed_epochs: private.closed_epochs,
        })
    }

    /// `account`'s cumulative entitlement per token after `epoch`, every chain together.
    fn entitled(
        &self,
        account: Address,
        epoch: u64,
    ) -> Result<BTreeMap<Address, Amount>, EarningsError> {
        let index = self.index(epoch)?;
        let mut sums = BTreeMap::new();
        for (_, token, cumulative) in index.entitled.get(&account).into_iter().flatten() {
            *sums.entry(*token).or_default() += cumulative;
        }
        Ok(sums)
    }
}

/// An asset in the drawn neighbourhood of another: `level` hops up (negative, its parents'
/// side) or down (positive, its children's side).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphNode {
    pub asset: AssetId,
    pub name: String,
    pub kind: AssetKind,
    pub level: i32,
}

/// A lineage edge between two drawn assets: `child` pays `share` of what it earns to `parent`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphEdge {
    pub child: AssetId,
    pub parent: AssetId,
    pub kind: EdgeKind,
    pub share: Ppm,
}

/// One epoch of an asset's revenue in one token: its own (calls to it, with what it carried
/// in) and all that reached it (with what its children sent up).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssetRevenue {
    pub epoch: u64,
    pub token: Address,
    pub own: Amount,
    pub inflow: Amount,
}

/// Who an asset paid in its latest epoch, largest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Beneficiary {
    pub account: Address,
    pub role: Option<Role>,
    pub token: Address,
    pub amount: Amount,
}

/// An asset for its explorer page.
#[derive(Clone, Debug)]
pub struct AssetDetail {
    pub id: AssetId,
    pub manifest: Manifest,
    pub registered_ms: u64,
    /// The asset and its neighbours up to [`GRAPH_HOPS`] hops out, at most [`GRAPH_WIDTH`]
    /// per level; `hidden` says how many more each side has.
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
    pub hidden: usize,
    pub revenue: Vec<AssetRevenue>,
    pub beneficiaries: Vec<Beneficiary>,
    pub attestations: Vec<Attestation>,
    pub tokens: BTreeMap<Address, Token>,
}

/// How many hops out an asset page draws the lineage.
pub const GRAPH_HOPS: i32 = 2;
/// The most assets drawn on one level of the graph.
pub const GRAPH_WIDTH: usize = 8;
/// The most beneficiaries an asset page lists.
const BENEFICIARIES_SHOWN: usize = 10;

impl Earnings {
    /// Asset `id` with its lineage a few hops out, its revenue over the latest epochs, whom it
    /// paid in the latest, and its validators' attestations.
    pub fn asset_detail(&self, id: AssetId) -> Result<AssetDetail, EarningsError> {
        let (found, nodes, edges, hidden, attestations, tokens, closed) = self.journal.read(|j| {
            let economy = j.economy();
            let lineage = economy.lineage();
            let found = lineage.get(&id).cloned();
            let (nodes, edges, hidden) = neighbourhood(lineage, id);
            (
                found,
                nodes,
                edges,
                hidden,
                economy.attestations(&id).to_vec(),
                economy.tokens().clone(),
                economy.epochs().len() as u64,
            )
        });
        let found = found.ok_or_else(|| {
            EarningsError::UnknownAsset(format!(
                "no asset {id} is registered on this node; the explorer's epochs link to every asset that earned"
            ))
        })?;
        let first = closed.saturating_sub(super::EPOCHS_SHOWN as u64 - 1).max(1);
        let mut revenue = Vec::new();
        let mut beneficiaries = Vec::new();
        for epoch in (first..=closed).rev() {
            let index = self.index(epoch)?;
            for token in tokens.keys() {
                let (own, inflow) = (
                    index.accruals.get(&(id, *token)).copied().unwrap_or(0),
                    index.inflow(&id, token),
                );
                if inflow > 0 {
                    revenue.push(AssetRevenue {
                        epoch,
                        token: *token,
                        own,
                        inflow,
                    });
                }
            }
            if epoch == closed {
                for (account, received) in &index.received {
                    for r in received.iter().filter(|r| r.asset == id) {
                        beneficiaries.push(Beneficiary {
                            account: *account,
                            role: r.role,
                            token: r.token,
                            amount: r.amount,
                        });
                    }
                }
                beneficiaries.sort_by_key(|b| (std::cmp::Reverse(b.amount), b.account));
                beneficiaries.truncate(BENEFICIARIES_SHOWN);
            }
        }
        Ok(AssetDetail {
            id,
            manifest: found.manifest,
            registered_ms: found.registered_ms,
            nodes,
            edges,
            hidden,
            revenue,
            beneficiaries,
            attestations,
            tokens,
        })
    }
}

/// The assets up to [`GRAPH_HOPS`] hops from `id` each way (at most [`GRAPH_WIDTH`] per level)
/// and the edges among them; and how many more there were.
fn neighbourhood(lineage: &Lineage, id: AssetId) -> (Vec<GraphNode>, Vec<GraphEdge>, usize) {
    let mut children: BTreeMap<AssetId, Vec<AssetId>> = BTreeMap::new();
    for asset in lineage.iter() {
        for edge in &asset.manifest.parents {
            children.entry(edge.parent).or_default().push(asset.id);
        }
    }
    let node = |asset: AssetId, level: i32| {
        lineage.get(&asset).map(|registered| GraphNode {
            asset,
            name: registered.manifest.name.clone(),
            kind: registered.manifest.kind,
            level,
        })
    };
    let mut nodes: Vec<GraphNode> = node(id, 0).into_iter().collect();
    let mut hidden = 0;
    for direction in [-1, 1] {
        let mut frontier = vec![id];
        for hop in 1..=GRAPH_HOPS {
            let mut next: Vec<AssetId> = Vec::new();
            for asset in &frontier {
                let out: Vec<AssetId> = if direction < 0 {
                    lineage
                        .get(asset)
                        .map(|a| a.manifest.parents.iter().map(|e| e.parent).collect())
                        .unwrap_or_default()
                } else {
                    children.get(asset).cloned().unwrap_or_default()
                };
                for other in out {
                    if !next.contains(&other) && !nodes.iter().any(|n| n.asset == other) {
                        next.push(other);
                    }
                }
            }
            if next.len() > GRAPH_WIDTH {
                hidden += next.len() - GRAPH_WIDTH;
                next.truncate(GRAPH_WIDTH);
            }
            nodes.extend(next.iter().filter_map(|a| node(*a, direction * hop)));
            frontier = next;
        }
    }
    let drawn: Vec<AssetId> = nodes.iter().map(|n| n.asset).collect();
    let edges = nodes
        .iter()
        .filter_map(|n| lineage.get(&n.asset))
        .flat_map(|child| {
            child.manifest.parents.iter().map(move |edge| GraphEdge {
                child: child.id,
                parent: edge.parent,
                kind: edge.kind,
                share: edge.share,
            })
        })
        .filter(|edge| drawn.contains(&edge.parent))
        .collect();
    (nodes, edges, hidden)
}

//! What anyone may check without signing in: each closed epoch (what it moved per token, its
//! roots, where each chain's root was posted and activated, its bundle, and a re-check of that
//! bundle on the node), and what an address earned and claimed — all from the public bundles
//! and the chains, nothing a contributor's own pages alone may see (bounties per project,
//! labels per project).

use std::collections::BTreeMap;

use caravan_core::epoch::{BundleError, BundleReport, EpochBundle, verify_bundle};
use caravan_core::royalty::PayoutTo;
use caravan_core::{Address, Amount, EpochRecord, Hash32, Token};

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

/// A closed epoch in full, for its explorer page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochDetail {
    pub record: EpochRecord,
    pub summary: EpochSummary,
    pub chains: Vec<ChainPost>,
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

impl Earnings {
    /// Every closed epoch, newest first.
    pub fn closed_epochs(&self) -> Vec<EpochRecord> {
        self.journal
            .read(|j| j.economy().epochs().iter().rev().cloned().collect())
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
        let summary = self.index(epoch)?.summary.clone();
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
        let private = self.statement(account, through)?;
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
        let royalties = private
            .royalties
            .into_iter()
            .map(|mut royalty| {
                if let Some(contribution) = &mut royalty.contribution {
                    contribution.labels = None;
                }
                royalty
            })
            .collect();
        Ok(PublicStatement {
            account,
            epochs,
            royalties,
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

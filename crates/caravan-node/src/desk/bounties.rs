//! The bounties each contributor earned, per epoch, token and project: what the earnings page
//! shows beside royalties. Folded from the work records with the boards (and refolded with them
//! when a write fails), so it never counts a bounty the log does not hold.

use std::collections::BTreeMap;

use caravan_core::{Address, Amount, Bounty, EpochRecord};
use caravan_tasks::project::ProjectId;
use rustc_hash::FxHashMap;

/// Bounties for accepted judgments in one epoch, token and project.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BountyTally {
    pub amount: Amount,
    /// How many accepted judgments they paid.
    pub judgments: u32,
}

/// Where a bounty is tallied: the epoch whose root first holds it, its token, its project.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BountyKey {
    pub epoch: u64,
    pub token: Address,
    pub project: ProjectId,
}

/// Every contributor's bounties, by [`BountyKey`].
#[derive(Debug, Default)]
pub struct BountyBook {
    earned: FxHashMap<Address, BTreeMap<BountyKey, BountyTally>>,
}

/// The epoch whose close first includes the event numbered `seq`: one past the epochs closed
/// before it (`closed` in log order, as the economy keeps them).
pub fn epoch_of(closed: &[EpochRecord], seq: u64) -> u64 {
    closed.partition_point(|record| record.seq < seq) as u64 + 1
}

impl BountyBook {
    /// Adds the bounties of one work record, which is in `epoch`, paid in `token`.
    pub fn add(&mut self, epoch: u64, token: Address, project: ProjectId, bounties: &[Bounty]) {
        for bounty in bounties {
            let tally = self
                .earned
                .entry(bounty.contributor)
                .or_default()
                .entry(BountyKey {
                    epoch,
                    token,
                    project,
                })
                .or_default();
            tally.amount += bounty.amount;
            tally.judgments += 1;
        }
    }

    /// `account`'s bounties, by epoch, token and project (empty when it earned none).
    pub fn of(&self, account: &Address) -> Vec<(BountyKey, BountyTally)> {
        self.earned
            .get(account)
            .map(|tallies| tallies.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caravan_core::Hash32;

    fn record(epoch: u64, seq: u64) -> EpochRecord {
        EpochRecord {
            epoch,
            root: Hash32::default(),
            seq,
            at_ms: 0,
            leaf_count: 0,
        }
    }

    #[test]
    fn an_event_belongs_to_the_first_epoch_closed_after_it() {
        let closed = [record(1, 10), record(2, 20)];
        assert_eq!(epoch_of(&closed, 0), 1);
        assert_eq!(epoch_of(&closed, 9), 1);
        assert_eq!(epoch_of(&closed, 11), 2);
        assert_eq!(epoch_of(&closed, 21), 3);
        assert_eq!(epoch_of(&[], 5), 1);
    }

    #[test]
    fn bounties_are_tallied_per_contributor_epoch_and_project() {
        let ada = Address([1; 20]);
        let bob = Address([2; 20]);
        let token = Address([9; 20]);
        let project = ProjectId(Hash32([3; 32]));
        let bounty = |contributor, amount, judgment| Bounty {
            contributor,
            amount,
            judgment,
        };
        let mut book = BountyBook::default();
        book.add(1, token, project, &[bounty(ada, 5, 0), bounty(bob, 5, 1)]);
        book.add(1, token, project, &[bounty(ada, 7, 2)]);
        book.add(2, token, project, &[bounty(ada, 5, 3)]);
        let ada_tallies = book.of(&ada);
        assert_eq!(ada_tallies.len(), 2);
        assert_eq!(
            ada_tallies[0].1,
            BountyTally {
                amount: 12,
                judgments: 2
            }
        );
        assert_eq!(ada_tallies[1].0.epoch, 2);
        assert_eq!(book.of(&bob)[0].1.amount, 5);
        assert!(book.of(&Address([7; 20])).is_empty());
    }
}

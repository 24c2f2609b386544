//! Handing out items: exam first, gold mixed in at the project's rate, never an item a
//! contributor has seen, never more leases than an item's overlap needs, one lease per
//! contributor at a time, within the deadline, the daily cap and the budget. A skipped item
//! comes back only once nothing else is left.

use caravan_core::{Address, Ppm, hash::keccak256_parts};
use serde::Serialize;

use super::{Board, DAY_MS, ExamState, PauseReason};
use crate::item::{ItemId, Prediction};

/// A contributor's claim on one item until `until_ms`.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Lease {
    pub(super) item_id: ItemId,
    pub(super) item: u32,
    pub(super) since_ms: u64,
    pub(super) until_ms: u64,
}

/// What a contributor is shown. Gold and exam items look exactly like real ones.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Assignment {
    pub item: ItemId,
    pub data: serde_json::Value,
    /// Model pre-labels, shown as suggestions.
    pub suggestions: Vec<Prediction>,
    /// When the item was handed out: the minimum time per item counts from here.
    pub handed_out_ms: u64,
    pub lease_until_ms: u64,
    /// During the qualification exam: which question this is (from 1) and how many there are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exam_question: Option<ExamQuestion>,
}

/// Where an exam question stands in the exam.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ExamQuestion {
    pub number: u32,
    pub of: u32,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AssignError {
    #[error("you are paused on this project: {0}")]
    Paused(PauseReason),
    #[error("the requester closed this project")]
    Closed,
    #[error("the project's deadline has passed")]
    DeadlinePassed,
    #[error(
        "you reached this project's daily cap of {cap} judgments; it resets at {resets_at_ms} ms (00:00 UTC)"
    )]
    DailyCap { cap: u32, resets_at_ms: u64 },
    #[error("the project's budget is fully committed; no more work can be paid for")]
    BudgetCommitted,
    #[error(
        "the project has {gold} gold items but its exam asks {questions}; the requester must add gold items"
    )]
    NotEnoughGold { gold: usize, questions: u32 },
    #[error("no item is waiting for you right now; try again later")]
    NothingLeft,
}

/// Why an item could not be skipped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SkipError {
    #[error("you hold no lease on item {0}; it may have expired: request the next item")]
    NoLease(ItemId),
    #[error("exam questions cannot be skipped: answer each one as well as you can")]
    Exam,
}

impl Board {
    /// Gives `contributor` their next item under a lease, or the item they already hold.
    pub fn assign_next_item(
        &mut self,
        contributor: Address,
        now_ms: u64,
    ) -> Result<Assignment, AssignError> {
        self.expire_leases(now_ms);
        if let Some(lease) = self.leases.get(&contributor) {
            return Ok(self.assignment(&contributor, lease));
        }
        let record = self.contributors.entry(contributor).or_default();
        if let Some(reason) = &record.paused {
            return Err(AssignError::Paused(reason.clone()));
        }
        if self.closed {
            return Err(AssignError::Closed);
        }
        if now_ms > self.spec.deadline_ms {
            return Err(AssignError::DeadlinePassed);
        }
        let day = now_ms / DAY_MS;
        if record.day == day && record.today >= self.spec.daily_cap {
            return Err(AssignError::DailyCap {
                cap: self.spec.daily_cap,
                resets_at_ms: (day + 1) * DAY_MS,
            });
        }
        if self.committed() + self.spec.bounty > self.spec.budget {
            return Err(AssignError::BudgetCommitted);
        }
        let item = self.choose_item(&contributor)?;
        let until_ms = now_ms + u64::from(self.spec.lease_seconds) * 1000;
        let state = &mut self.items[item as usize];
        state.leased += 1;
        let lease = Lease {
            item_id: state.id,
            item,
            since_ms: now_ms,
            until_ms,
        };
        let assignment = self.assignment(&contributor, &lease);
        self.leases.insert(contributor, lease);
        self.lease_expiry.insert((until_ms, contributor));
        self.refresh_open(item);
        Ok(assignment)
    }

    pub(super) fn assignment(&self, contributor: &Address, lease: &Lease) -> Assignment {
        let state = &self.items[lease.item as usize];
        let exam_question = self.spec.exam.and_then(|exam| {
            let record = self.contributors.get(contributor)?;
            (record.exam == ExamState::Pending).then_some(ExamQuestion {
                number: record.exam_answered + 1,
                of: exam.questions,
            })
        });
        Assignment {
            item: state.id,
            data: state.item.data.clone(),
            suggestions: state.item.predictions.clone(),
            handed_out_ms: lease.since_ms,
            lease_until_ms: lease.until_ms,
            exam_question,
        }
    }

    /// Gives the contributor's leased item back and hands it to them again only when nothing
    /// else is left. Not during the exam, whose questions are all gold.
    pub fn skip(
        &mut self,
        contributor: Address,
        item: ItemId,
        now_ms: u64,
    ) -> Result<(), SkipError> {
        self.expire_leases(now_ms);
        let lease = self
            .leases
            .get(&contributor)
            .filter(|lease| lease.item_id == item)
            .ok_or(SkipError::NoLease(item))?;
        let index = lease.item;
        if self.spec.exam.is_some()
            && self.contributors.get(&contributor).map(|c| c.exam) == Some(ExamState::Pending)
        {
            return Err(SkipError::Exam);
        }
        self.release_lease(&contributor);
        self.skipped.entry(contributor).or_default().insert(index);
        Ok(())
    }

    /// The next item for the contributor, passing over the ones they skipped; when only skipped
    /// ones are left, they come back (and the skips are forgotten).
    fn choose_item(&mut self, contributor: &Address) -> Result<u32, AssignError> {
        let skipped = self.skipped.get(contributor);
        let fresh = self.choose_unskipped(contributor, |index| {
            skipped.is_none_or(|skipped| !skipped.contains(&index))
        });
        match fresh {
            Err(AssignError::NothingLeft) if skipped.is_some() => {
                self.skipped.remove(contributor);
                self.choose_unskipped(contributor, |_| true)
            }
            other => other,
        }
    }

    fn choose_unskipped(
        &self,
        contributor: &Address,
        offered: impl Fn(u32) -> bool,
    ) -> Result<u32, AssignError> {
        let record = &self.contributors[contributor];
        if let Some(exam) = self.spec.exam
            && record.exam == ExamState::Pending
        {
            if self.gold.len() < exam.questions as usize {
                return Err(AssignError::NotEnoughGold {
                    gold: self.gold.len(),
                    questions: exam.questions,
                });
            }
            return self
                .unseen_gold(contributor, &offered)
                .ok_or(AssignError::NothingLeft);
        }
        if self.gold_turn(contributor)
            && let Some(gold) = self.unseen_gold(contributor, &offered)
        {
            return Ok(gold);
        }
        self.open
            .iter()
            .map(|&(_, index)| index)
            .find(|&index| !record.seen.contains(&index) && offered(index))
            .ok_or(AssignError::NothingLeft)
    }

    /// Whether this assignment should be a gold item: a keyed hash of the project, the
    /// contributor and how many judgments they have made, compared with the gold rate, so the
    /// schedule is unpredictable to the contributor and the same on every replay.
    fn gold_turn(&self, contributor: &Address) -> bool {
        let rate = self.spec.gold_rate.parts();
        if rate == 0 {
            return false;
        }
        let submitted = self.contributors[contributor].submitted;
        let draw = keccak256_parts(&[&self.id.0.0, &contributor.0, &submitted.to_be_bytes()]);
        let value = u32::from_be_bytes(draw.0[..4].try_into().expect("4 bytes"));
        u64::from(value) * u64::from(Ppm::ONE.parts()) < u64::from(rate) << 32
    }

    /// The first gold item the contributor has not seen, starting at a per-contributor offset so
    /// a ring of accounts does not all meet the same gold items in the same order.
    fn unseen_gold(&self, contributor: &Address, offered: impl Fn(u32) -> bool) -> Option<u32> {
        if self.gold.is_empty() {
            return None;
        }
        let seen = &self.contributors[contributor].seen;
        let start = u32::from_be_bytes(contributor.0[..4].try_into().expect("4 bytes")) as usize
            % self.gold.len();
        (0..self.gold.len())
            .map(|k| self.gold[(start + k) % self.gold.len()])
            .find(|&g| !seen.contains(&g) && offered(g))
    }

    /// Drops leases whose time is up, returning their items to the pool.
    fn expire_leases(&mut self, now_ms: u64) {
        while let Some(&(until, contributor)) = self.lease_expiry.first() {
            if until > now_ms {
                break;
            }
            self.release_lease(&contributor);
        }
    }

    pub(super) fn release_lease(&mut self, contributor: &Address) {
        if let Some(lease) = self.leases.remove(contributor) {
            self.lease_expiry.remove(&(lease.until_ms, *contributor));
            self.items[lease.item as usize].leased -= 1;
            self.refresh_open(lease.item);
        }
    }

    /// Leases currently held.
    pub fn active_leases(&self) -> usize {
        self.leases.len()
    }

    /// Keeps the promises `earlier` made in memory — leases and skipped items — on this board,
    /// rebuilt from the log while `earlier` served: a store failure that makes a node rebuild
    /// its boards must not take from contributors the items they are answering. A lease
    /// is kept only on the same item of this board.
    pub fn keep_promises_of(&mut self, earlier: &Board) {
        for (contributor, lease) in &earlier.leases {
            let same_item = self
                .items
                .get(lease.item as usize)
                .is_some_and(|state| state.id == lease.item_id);
            if !same_item || self.leases.contains_key(contributor) {
                continue;
            }
            self.items[lease.item as usize].leased += 1;
            self.leases.insert(*contributor, lease.clone());
            self.lease_expiry.insert((lease.until_ms, *contributor));
            self.refresh_open(lease.item);
        }
        for (contributor, skipped) in &earlier.skipped {
            let known = skipped
                .iter()
                .filter(|&&item| (item as usize) < self.items.len());
            self.skipped.entry(*contributor).or_default().extend(known);
        }
    }
}

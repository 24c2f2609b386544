//! Taking back the last submission: a contributor who pressed submit too soon may withdraw
//! their latest judgment while it is still unsettled (no agreement, review or grade has used
//! it) and while the lease they answered it under would still have run. The item comes back to
//! them under that same lease, so the minimum time per item still counts from when it was first
//! handed out. Gold and exam answers are graded at once and cannot be taken back.
//!
//! The window is a promise in memory, like a lease: after a restart, earlier submissions can no
//! longer be taken back. The withdrawal itself is a durable record that replays exactly.

use caravan_core::Address;

use super::assign::{Assignment, Lease};
use super::{Board, DAY_MS, Effect, JudgmentStatus, Memory, PauseReason, TaskEvent};
use crate::schema::Answer;

/// A contributor's latest submission and the lease it was made under.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Undoable {
    pub(super) judgment: u32,
    pub(super) lease: Lease,
    /// How the judgment settled, once a board keeping only open work forgot it.
    pub(super) settled: Option<&'static str>,
}

/// Why the last submission could not be taken back. Nothing changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UndoError {
    #[error(
        "there is no submission of yours here to take back: only your latest one can be, while the time you had for it lasts"
    )]
    Nothing,
    #[error("your latest submission was already {0}, so it can no longer be taken back")]
    Settled(&'static str),
    #[error(
        "the time you had for your latest submission is over, so it can no longer be taken back"
    )]
    Expired,
    #[error("you are paused on this project: {0}")]
    Paused(PauseReason),
}

/// What a withdrawal gives the contributor back: the item, under its lease, and what they had
/// answered.
#[derive(Clone, Debug, PartialEq)]
pub struct Withdrawn {
    pub assignment: Assignment,
    pub answer: Answer,
}

impl Board {
    /// Remembers that `contributor` may take back `judgment`, answered under `lease`, when it
    /// is still unsettled after being recorded.
    pub(super) fn remember_undoable(&mut self, contributor: Address, judgment: u32, lease: Lease) {
        let pending = self
            .judgments
            .get(&judgment)
            .is_some_and(|record| record.status == JudgmentStatus::Pending);
        if pending {
            self.undoable.insert(
                contributor,
                Undoable {
                    judgment,
                    lease,
                    settled: None,
                },
            );
        } else {
            self.undoable.remove(&contributor);
        }
    }

    /// Takes back `contributor`'s latest submission (see the module's docs): releases whatever
    /// item they hold now and hands the withdrawn one back. Returns the record to store.
    pub fn withdraw_last(
        &mut self,
        contributor: Address,
        now_ms: u64,
    ) -> Result<(TaskEvent, Withdrawn), UndoError> {
        let undoable = self
            .undoable
            .get(&contributor)
            .cloned()
            .ok_or(UndoError::Nothing)?;
        if let Some(reason) = self
            .contributors
            .get(&contributor)
            .and_then(|c| c.paused.clone())
        {
            return Err(UndoError::Paused(reason));
        }
        if now_ms >= undoable.lease.until_ms {
            self.undoable.remove(&contributor);
            return Err(UndoError::Expired);
        }
        let record = match self.judgments.get(&undoable.judgment) {
            Some(record) if record.status == JudgmentStatus::Pending => record,
            held => {
                let settled = held
                    .and_then(|record| record.status.settled_as())
                    .or(undoable.settled)
                    .unwrap_or("settled");
                self.undoable.remove(&contributor);
                return Err(UndoError::Settled(settled));
            }
        };
        let answer = record.answer.clone();
        self.release_lease(&contributor);
        let event = TaskEvent::JudgmentWithdrawn {
            contributor,
            judgment: undoable.judgment,
            at_ms: now_ms,
        };
        let effects = self.apply(&event);
        debug_assert!(effects.is_empty(), "a withdrawal settles nothing");
        let lease = undoable.lease;
        self.items[lease.item as usize].leased += 1;
        self.lease_expiry.insert((lease.until_ms, contributor));
        let assignment = self.assignment(&contributor, &lease);
        self.refresh_open(lease.item);
        self.leases.insert(contributor, lease);
        Ok((event, Withdrawn { assignment, answer }))
    }

    /// Applies a withdrawal: the judgment stops counting and is owed nothing, its item reopens,
    /// and the contributor's counts (submitted, today's) no longer include it.
    pub(super) fn record_withdrawal(
        &mut self,
        contributor: Address,
        judgment: u32,
        at_ms: u64,
        _effects: &mut Vec<Effect>,
    ) {
        let Some(record) = self.judgments.get_mut(&judgment) else {
            debug_assert!(false, "a withdrawal of a judgment the board does not have");
            return;
        };
        if record.contributor != contributor || record.status != JudgmentStatus::Pending {
            debug_assert!(
                false,
                "only an unsettled judgment of one's own is withdrawn"
            );
            return;
        }
        record.status = JudgmentStatus::Withdrawn;
        let item = record.item;
        let spent_ms = record.spent_ms;
        self.liable -= 1;
        self.awaiting_review.remove(&judgment);
        self.items[item as usize]
            .judgments
            .retain(|&other| other != judgment);
        self.retally(judgment, false);
        if let Some(state) = self.contributors.get_mut(&contributor) {
            let listed = state.rank(contributor);
            debug_assert!(listed.is_some(), "a contributor with a judgment is listed");
            state.submitted -= 1;
            self.working -= u64::from(state.submitted == 0);
            let ranked = state.rank(contributor);
            state.seen.remove(&item);
            if let Some(ms) = spent_ms {
                state.answer_times.remove(ms);
            }
            if state.day == at_ms / DAY_MS {
                state.today = state.today.saturating_sub(1);
            }
            self.rerank(listed, ranked);
        }
        self.undoable.remove(&contributor);
        self.refresh_open(item);
        if self.memory == Memory::OpenWork {
            self.judgments.remove(&judgment);
        }
    }
}

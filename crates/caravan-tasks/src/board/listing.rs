//! What a contributor sees of a project before starting: what it pays, how fast people work on
//! it, how much is left, and where they stand — all from counters the board keeps as it goes, so
//! listing ten thousand projects never walks their items.

use caravan_core::{Address, Amount};
use serde::Serialize;

use super::{Board, DAY_MS, ExamState};
use crate::project::Exam;

/// A gap between one contributor's consecutive submissions longer than this is a break, not
/// time spent on an item, and does not count towards the pace.
pub const MAX_ITEM_SECONDS: u32 = 600;

/// Per-second buckets up to a minute, then ten-second buckets up to [`MAX_ITEM_SECONDS`].
const FINE_BUCKETS: u32 = 60;
const COARSE_WIDTH: u32 = 10;
const BUCKETS: usize = (FINE_BUCKETS + (MAX_ITEM_SECONDS - FINE_BUCKETS) / COARSE_WIDTH) as usize;

/// How long items take on a project: a histogram of the gaps between each contributor's
/// consecutive submissions within a working session (a gap over [`MAX_ITEM_SECONDS`] is a
/// break). Folded from the log, so every replay estimates the same pace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pace {
    /// Allocated on the first gap: most projects' boards never need it.
    buckets: Vec<u32>,
    samples: u64,
}

impl Pace {
    pub(super) fn record(&mut self, gap_ms: u64) {
        let seconds = gap_ms / 1000;
        if seconds >= u64::from(MAX_ITEM_SECONDS) {
            return;
        }
        let seconds = seconds as u32;
        let bucket = if seconds < FINE_BUCKETS {
            seconds
        } else {
            FINE_BUCKETS + (seconds - FINE_BUCKETS) / COARSE_WIDTH
        };
        if self.buckets.is_empty() {
            self.buckets = vec![0; BUCKETS];
        }
        self.buckets[bucket as usize] += 1;
        self.samples += 1;
    }

    /// The median seconds per item (the middle of its bucket, at least one second), or `None`
    /// before anyone has done two items in a row.
    pub fn median_seconds(&self) -> Option<u32> {
        if self.samples == 0 {
            return None;
        }
        let middle = self.samples.div_ceil(2);
        let mut seen = 0;
        for (bucket, &count) in self.buckets.iter().enumerate() {
            seen += u64::from(count);
            if seen >= middle {
                let bucket = bucket as u32;
                return Some(if bucket < FINE_BUCKETS {
                    bucket.max(1)
                } else {
                    FINE_BUCKETS + (bucket - FINE_BUCKETS) * COARSE_WIDTH + COARSE_WIDTH / 2
                });
            }
        }
        unreachable!("the buckets hold every sample")
    }

    /// Gaps counted so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }
}

/// Whether the project hands out work now, and if not, why not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    Open,
    Closed,
    DeadlinePassed,
    BudgetCommitted,
    /// Every real item has its final judgments.
    Finished,
}

/// A project as the task board lists it for one contributor.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Listing {
    pub title: String,
    /// The schema's task type (`single_choice`, `spans` …).
    pub task_type: &'static str,
    /// Paid per accepted judgment, in the token's base units.
    #[serde(with = "caravan_core::serde_u128")]
    pub bounty: Amount,
    pub token: Address,
    /// Real items not yet resolved.
    pub items_left: u64,
    pub exam: Option<Exam>,
    /// Median seconds per item so far (see [`Pace`]).
    pub median_seconds: Option<u32>,
    pub availability: Availability,
    pub deadline_ms: u64,
    pub min_seconds_per_item: u32,
    pub daily_cap: u32,
    /// The contributor's own standing, when they have worked here.
    pub mine: Option<MyStanding>,
}

/// Where a contributor stands on one project.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MyStanding {
    pub exam: ExamState,
    pub exam_answered: u32,
    pub exam_correct: u32,
    pub gold_answered: u32,
    pub gold_right: u32,
    pub submitted: u32,
    pub accepted: u32,
    pub rejected: u32,
    /// Judgments they may still submit today (UTC).
    pub daily_cap_left: u32,
    /// Why they are paused, if they are.
    pub paused: Option<String>,
    /// They hold a lease on an item now.
    pub holding: bool,
}

impl Listing {
    /// The bounty times the items a contributor at the median pace finishes in an hour, in
    /// base units; `None` before there is a pace.
    pub fn reward_per_hour(&self) -> Option<Amount> {
        self.median_seconds
            .map(|seconds| self.bounty * 3600 / u128::from(seconds))
    }
}

impl Board {
    /// The project as `contributor` sees it on the task board at `now_ms`. Constant time: it
    /// reads the board's counters, never its items.
    pub fn listing(&self, contributor: &Address, now_ms: u64) -> Listing {
        let availability = if self.closed {
            Availability::Closed
        } else if now_ms > self.spec.deadline_ms {
            Availability::DeadlinePassed
        } else if self.items_left() == 0 && !self.items.is_empty() {
            Availability::Finished
        } else if self.committed() + self.spec.bounty > self.spec.budget {
            Availability::BudgetCommitted
        } else {
            Availability::Open
        };
        let mine = self.contributors.get(contributor).and_then(|c| {
            let holding = self
                .leases
                .get(contributor)
                .is_some_and(|lease| lease.until_ms > now_ms);
            if c.submitted == 0 && c.paused.is_none() && !holding {
                return None;
            }
            let today = if c.day == now_ms / DAY_MS { c.today } else { 0 };
            Some(MyStanding {
                exam: c.exam,
                exam_answered: c.exam_answered,
                exam_correct: c.exam_correct,
                gold_answered: c.gold_seen,
                gold_right: c.gold_correct,
                submitted: c.submitted,
                accepted: c.accepted,
                rejected: c.rejected,
                daily_cap_left: self.spec.daily_cap.saturating_sub(today),
                paused: c.paused.as_ref().map(ToString::to_string),
                holding,
            })
        });
        Listing {
            title: self.spec.title.clone(),
            task_type: self.spec.schema.kind(),
            bounty: self.spec.bounty,
            token: self.spec.token,
            items_left: self.items_left(),
            exam: self.spec.exam,
            median_seconds: self.pace.median_seconds(),
            availability,
            deadline_ms: self.spec.deadline_ms,
            min_seconds_per_item: self.spec.min_seconds_per_item,
            daily_cap: self.spec.daily_cap,
            mine,
        }
    }

    /// Real (non-gold) items that are not resolved yet.
    pub fn items_left(&self) -> u64 {
        (self.items.len() - self.gold.len()) as u64 - self.resolved_items
    }

    /// How long items take here.
    pub fn pace(&self) -> &Pace {
        &self.pace
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_pace_reads_the_middle_gap_and_ignores_breaks() {
        let mut pace = Pace::default();
        assert_eq!(pace.median_seconds(), None);
        for seconds in [4, 5, 6, 30, 90] {
            pace.record(seconds * 1000);
        }
        pace.record(3_600_000);
        assert_eq!(pace.samples(), 5, "an hour's gap is a break");
        assert_eq!(pace.median_seconds(), Some(6));
        for _ in 0..10 {
            pace.record(125_000);
        }
        assert_eq!(pace.median_seconds(), Some(125), "the middle of 120..130 s");
        let mut quick = Pace::default();
        quick.record(200);
        assert_eq!(quick.median_seconds(), Some(1), "never less than a second");
    }
}

//! A project's work board: items, who judged what, gold accuracy, pauses, reviews, what is
//! resolved and what has been paid.
//!
//! The board is a fold over [`TaskEvent`]s, which the shell stores durably: replaying a
//! project's events rebuilds the same board and the same [`Effect`]s (payments, pauses,
//! resolutions) bit for bit. Leases are the one thing not in the log: they are short-lived
//! promises ("this item is yours for ten minutes"), and after a restart an unsubmitted lease
//! simply expires early, which costs a contributor one re-request and never a double payment.
//!
//! Commands ([`Board::assign_next_item`], [`Board::submit`], [`Board::review`]) check a request
//! against the current state and, when it is acceptable, apply the event they produce and return
//! it with its effects.
//!
//! A board that serves contributors keeps only open work ([`Memory::OpenWork`]): once a judgment
//! is settled on an item that will take no more changes from it, the board folds it into the
//! item's counts and forgets it, so a node's memory follows the work in progress rather than
//! every judgment ever made. Publishing a dataset needs every judgment, so it replays the
//! project's records into a board that keeps them all ([`Memory::Everything`]). Both kinds
//! produce the same effects from the same events.

mod assign;
mod listing;
mod resolve;
mod status;
mod times;
mod undo;

use caravan_core::{Address, Amount, Hash32, Ppm};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

pub use assign::{AssignError, Assignment, ExamQuestion, SkipError};
pub use listing::{Availability, Listing, MAX_ITEM_SECONDS, MyStanding, Pace};
pub use resolve::{ReviewError, ReviewTask, Verdict};
pub use status::BoardStatus;
pub use undo::{UndoError, Withdrawn};

use crate::agreement::AgreementTally;
use crate::item::{Item, ItemId};
use crate::label_studio::LabelStudioTags;
use crate::project::{ProjectId, ProjectSpec};
use crate::schema::{Answer, AnswerError};
pub use times::AnswerTimes;

/// Milliseconds in a UTC day, the period of the daily cap.
pub const DAY_MS: u64 = 86_400_000;

/// Bins of [`BoardStatus::confidence_at_resolution`]: tenths of certainty.
pub const CONFIDENCE_BINS: usize = 10;

/// A durable fact about a project. Only these change a board (besides ephemeral leases).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TaskEvent {
    /// The first record of every project: who posted it and what it asks. A board is built
    /// from it ([`Board::created`]); applying it to a board changes nothing.
    ProjectCreated {
        requester: Address,
        /// Lets one requester post the same spec twice as two projects.
        nonce: u64,
        spec: Box<ProjectSpec>,
    },
    ItemsAdded {
        items: Vec<Item>,
        /// The tag names of the Label Studio config the items were imported from, kept for
        /// the project's Label Studio export (absent for other imports and older records).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label_studio: Option<LabelStudioTags>,
    },
    ReviewerAdded {
        reviewer: Address,
    },
    JudgmentSubmitted {
        contributor: Address,
        item: ItemId,
        answer: Answer,
        at_ms: u64,
        /// When the item was handed out under the lease it was answered in, so the time spent
        /// is known (absent in records written before it was kept).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        handed_out_ms: Option<u64>,
    },
    Reviewed {
        reviewer: Address,
        judgment: u32,
        verdict: Verdict,
        at_ms: u64,
    },
    /// The contributor took back their unsettled judgment (see [`Board::withdraw_last`]).
    JudgmentWithdrawn {
        contributor: Address,
        judgment: u32,
        at_ms: u64,
    },
    /// The requester closed the project: no more items are handed out, and `released` of the
    /// budget (what no pending judgment or lease can still claim) went back to them. Closing again
    /// later releases what became free since.
    Closed {
        #[serde(with = "caravan_core::serde_u128")]
        released: Amount,
    },
    /// The board as it stood was published as dataset `asset` with rows committed to by
    /// `item_root`; replaying the log up to this record rebuilds exactly those rows.
    Published {
        asset: Hash32,
        item_root: Hash32,
    },
}

/// A consequence of an event that the world outside the board acts on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Effect {
    /// A judgment was accepted: pay `amount` of the project's token to `contributor` out of the
    /// project's escrow.
    Paid {
        contributor: Address,
        item: ItemId,
        judgment: u32,
        #[serde(with = "caravan_core::serde_u128")]
        amount: Amount,
    },
    /// The contributor may no longer work on the project, and why.
    Paused {
        contributor: Address,
        reason: PauseReason,
    },
    /// An exam question was graded: shown to the contributor at once.
    ExamAnswered {
        contributor: Address,
        right: bool,
        /// Which question it was (from 1), of how many.
        number: u32,
        of: u32,
    },
    ExamPassed {
        contributor: Address,
    },
    /// An item has its final judgments.
    Resolved {
        item: ItemId,
    },
}

/// Why a contributor was paused; shown to them as is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PauseReason {
    #[error(
        "failed the qualification exam: {correct} of {questions} right, the pass mark is {pass_mark_percent}%"
    )]
    ExamFailed {
        correct: u32,
        questions: u32,
        pass_mark_percent: f64,
    },
    #[error(
        "accuracy on check questions is {correct} of {seen}, below this project's bar of {bar_percent}%; your judgments here no longer count"
    )]
    GoldAccuracy {
        correct: u32,
        seen: u32,
        bar_percent: f64,
    },
}

/// Where a judgment stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JudgmentStatus {
    /// Counts towards its item; waits for the item to resolve or for a review.
    Pending,
    /// Accepted and paid.
    Accepted,
    /// Accepted and paid after a reviewer corrected it; the dataset uses the correction.
    Fixed(Answer),
    /// Not accepted: disagreed with the resolved label, rejected in review, or a wrong gold answer.
    Rejected,
    /// Its contributor was paused before it was settled; it no longer counts and earns nothing.
    Discarded,
    /// Its contributor took it back before it was settled; it no longer counts and earns nothing.
    Withdrawn,
    /// A qualification-exam answer: graded, never paid, never part of the dataset.
    Exam { right: bool },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Judgment {
    pub item: u32,
    pub contributor: Address,
    pub answer: Answer,
    pub at_ms: u64,
    /// Milliseconds from hand-out to answer, where the record kept the hand-out.
    pub spent_ms: Option<u32>,
    /// Answered on a gold item (exam or check question).
    pub gold: bool,
    pub status: JudgmentStatus,
}

impl Judgment {
    /// Part of the agreement between contributors: a contributor's own answer on a real item,
    /// whether it was paid or rejected, unless it was taken back or discarded with a paused
    /// contributor. (A rejected answer no longer counts towards its item's label, but it is
    /// still a disagreement the requester should see.)
    pub fn is_agreement_evidence(&self) -> bool {
        !self.gold
            && !matches!(
                self.status,
                JudgmentStatus::Discarded | JudgmentStatus::Withdrawn
            )
    }

    /// Still part of its item's evidence.
    pub fn counts(&self) -> bool {
        matches!(
            self.status,
            JudgmentStatus::Pending | JudgmentStatus::Accepted | JudgmentStatus::Fixed(_)
        )
    }
}

impl JudgmentStatus {
    /// How a settled judgment ended, in the words its contributor is told; `None` while it is
    /// pending.
    pub fn settled_as(&self) -> Option<&'static str> {
        match self {
            JudgmentStatus::Pending => None,
            JudgmentStatus::Accepted | JudgmentStatus::Fixed(_) => Some("accepted"),
            JudgmentStatus::Rejected => Some("rejected"),
            JudgmentStatus::Exam { .. } => Some("graded"),
            JudgmentStatus::Discarded | JudgmentStatus::Withdrawn => Some("set aside"),
        }
    }
}

/// What a board keeps of judgments once they are settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Memory {
    /// Every judgment, settled or not: what publishing a dataset and the tests read.
    Everything,
    /// Only judgments that can still change (pending or awaiting review) and those on items
    /// still collecting answers: settled judgments on resolved items, gold answers once graded
    /// and withdrawn judgments are folded into their item's and contributor's counts and
    /// forgotten. What a serving node keeps.
    OpenWork,
}

/// An item on the board.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemState {
    pub id: ItemId,
    pub item: Item,
    /// The item's judgments the board still holds (under [`Memory::OpenWork`], settled ones of
    /// a resolved item are forgotten), oldest first.
    pub judgments: Vec<u32>,
    /// Judgments this item should collect now (grows with dynamic overlap).
    pub needed: u32,
    /// Contributors holding a lease on it.
    pub leased: u32,
    pub resolved: bool,
    /// The label a categorical item resolved with, as an index into the board's labels: what a
    /// judgment arriving later (under a lease taken before) is settled against.
    resolved_label: Option<u32>,
    /// Agreement evidence of the judgments the board forgot, per label index: the part of the
    /// item's evidence row no held judgment carries any more.
    forgotten_evidence: Box<[(u32, u32)]>,
}

impl ItemState {
    pub fn is_gold(&self) -> bool {
        self.item.gold.is_some()
    }

    /// No change of a judgment on this item changes anything but that judgment's own status:
    /// gold items (graded at once) and resolved ones.
    fn is_final(&self) -> bool {
        self.resolved || self.is_gold()
    }
}

/// Where a contributor stands on the exam.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExamState {
    #[default]
    Pending,
    Passed,
    Failed,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Contributor {
    pub seen: FxHashSet<u32>,
    pub exam: ExamState,
    pub exam_answered: u32,
    pub exam_correct: u32,
    /// Gold answers after the exam.
    pub gold_seen: u32,
    pub gold_correct: u32,
    pub submitted: u32,
    /// UTC day of the last submission and how many were made that day.
    pub day: u64,
    pub today: u32,
    pub paused: Option<PauseReason>,
    pub accepted: u32,
    pub rejected: u32,
    /// When they last submitted, for the project's [`Pace`].
    pub last_at_ms: Option<u64>,
    /// Time from hand-out to answer of the answers whose records kept it.
    pub answer_times: AnswerTimes,
}

impl Contributor {
    /// Where a requester's table lists `account`: by submissions, most first, then by address;
    /// `None` when it is not listed (it never submitted and was never paused).
    fn rank(&self, account: Address) -> Option<(Reverse<u32>, Address)> {
        (self.submitted > 0 || self.paused.is_some()).then_some((Reverse(self.submitted), account))
    }

    /// The median time from hand-out to answer, in milliseconds, to the precision
    /// [`AnswerTimes`] keeps; `None` before any timed answer.
    pub fn median_spent_ms(&self) -> Option<u32> {
        self.answer_times.median_ms()
    }

    /// The board's running estimate of how often this contributor is right, from gold answers
    /// (exam included) with a Beta(4, 1) prior: 0.8 before any gold, so newcomers count but
    /// less than a proven contributor.
    pub fn skill(&self) -> f64 {
        let correct = f64::from(self.exam_correct + self.gold_correct);
        let seen = f64::from(self.exam_answered + self.gold_seen);
        (correct + 4.0) / (seen + 5.0)
    }
}

/// Why a submission was refused. Nothing was recorded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SubmitError {
    #[error("you hold no lease on item {0}; it may have expired: request the next item")]
    NoLease(ItemId),
    #[error(
        "answered {elapsed_s:.1} s after the item was handed out; this project asks for at least {min_s} s per item"
    )]
    TooFast { elapsed_s: f64, min_s: u32 },
    #[error("invalid answer: {0}")]
    Invalid(#[from] AnswerError),
    #[error("you are paused on this project: {0}")]
    Paused(PauseReason),
}

/// One project's board. See the module documentation.
#[derive(Clone, Debug)]
pub struct Board {
    pub id: ProjectId,
    pub requester: Address,
    pub spec: ProjectSpec,
    items: Vec<ItemState>,
    item_index: FxHashMap<ItemId, u32>,
    gold: Vec<u32>,
    /// The judgments held (see [`Memory`]), by their number in the order they were made.
    judgments: BTreeMap<u32, Judgment>,
    /// Judgments ever made, forgotten ones included: the next one's number.
    judgment_count: u32,
    memory: Memory,
    /// Labels items resolved with, each once; items refer to them by index.
    labels: Vec<String>,
    label_index: FxHashMap<String, u32>,
    contributors: FxHashMap<Address, Contributor>,
    reviewers: FxHashSet<Address>,
    /// Real items that can take another assignment, in queue order.
    open: BTreeSet<(u64, u32)>,
    /// Judgments of reviewed task types waiting for a reviewer.
    awaiting_review: BTreeSet<u32>,
    leases: FxHashMap<Address, assign::Lease>,
    lease_expiry: BTreeSet<(u64, Address)>,
    /// Items each contributor skipped: like leases, promises in memory only, so after a
    /// restart a skipped item may be offered once more.
    skipped: FxHashMap<Address, FxHashSet<u32>>,
    /// Each contributor's latest submission while it may still be taken back: a promise in
    /// memory, like a lease.
    undoable: FxHashMap<Address, undo::Undoable>,
    /// Real items with their final judgments.
    resolved_items: u64,
    pace: Pace,
    paid: Amount,
    /// Judgments that may still be paid (pending ones); with leases, what the budget must cover.
    liable: u64,
    /// Datasets published from this board, oldest first: asset id and item root.
    publications: Vec<(Hash32, Hash32)>,
    /// Closed by the requester: nothing more is handed out.
    closed: bool,
    /// Budget returned to the requester so far.
    released: Amount,
    /// The tag names its Label Studio export uses: the latest import's, else caravan's own.
    label_studio_tags: LabelStudioTags,
    /// The contributors a requester's table lists (those who submitted or were paused), most
    /// submissions first, then by address: a page of the table is read from here without
    /// going over every contributor. Built at the first read (a replay and a board nobody
    /// watches never pay for it), then kept in step with every submission.
    ranked: OnceLock<BTreeSet<(Reverse<u32>, Address)>>,
    /// Contributors with at least one stored judgment, and contributors paused.
    working: u64,
    paused: u64,
    /// Fleiss' kappa and Krippendorff's alpha in sums over the real items (categorical
    /// projects, `None` otherwise), kept in step by each judgment that becomes or stops being
    /// [`Judgment::is_agreement_evidence`]: kept from the start, since a board that forgets
    /// settled judgments could not build it later.
    agreement: Option<AgreementTally<String>>,
    /// Per model: resolved items where its pre-label matched the label the item resolved with,
    /// and items compared.
    model_agreement: BTreeMap<String, (u64, u64)>,
    /// Resolved categorical items by the confidence their label had when they resolved, in
    /// tenths (the last bin holds 90–100%).
    confidence_at_resolution: [u64; CONFIDENCE_BINS],
}

impl Board {
    /// An empty board for a validated spec.
    pub fn new(id: ProjectId, requester: Address, spec: ProjectSpec) -> Board {
        debug_assert!(spec.validate().is_ok());
        Board {
            id,
            requester,
            label_studio_tags: LabelStudioTags::default_for(&spec.schema),
            ranked: OnceLock::new(),
            working: 0,
            paused: 0,
            agreement: (spec.schema.categories().is_some() || spec.schema.is_categorical())
                .then(AgreementTally::default),
            model_agreement: BTreeMap::new(),
            confidence_at_resolution: [0; CONFIDENCE_BINS],
            spec,
            items: Vec::new(),
            item_index: FxHashMap::default(),
            gold: Vec::new(),
            judgments: BTreeMap::new(),
            judgment_count: 0,
            memory: Memory::Everything,
            labels: Vec::new(),
            label_index: FxHashMap::default(),
            contributors: FxHashMap::default(),
            reviewers: FxHashSet::default(),
            open: BTreeSet::new(),
            awaiting_review: BTreeSet::new(),
            leases: FxHashMap::default(),
            lease_expiry: BTreeSet::new(),
            skipped: FxHashMap::default(),
            undoable: FxHashMap::default(),
            resolved_items: 0,
            pace: Pace::default(),
            paid: 0,
            liable: 0,
            publications: Vec::new(),
            closed: false,
            released: 0,
        }
    }

    /// The board keeping `memory` of settled judgments; chosen before any event is applied.
    pub fn with_memory(mut self, memory: Memory) -> Board {
        debug_assert_eq!(
            self.judgment_count, 0,
            "memory is chosen before any judgment"
        );
        self.memory = memory;
        self
    }

    /// What the board keeps of settled judgments.
    pub fn memory(&self) -> Memory {
        self.memory
    }

    /// The tag names the project's Label Studio export uses: those of the config its latest
    /// Label Studio import came from, else caravan's own ([`LabelStudioTags::default_for`]).
    pub fn label_studio_tags(&self) -> &LabelStudioTags {
        &self.label_studio_tags
    }

    /// The board a `ProjectCreated` record describes, with the project's id; `None` for any
    /// other record.
    pub fn created(event: &TaskEvent) -> Option<Board> {
        let TaskEvent::ProjectCreated {
            requester,
            nonce,
            spec,
        } = event
        else {
            return None;
        };
        let id = spec.id(requester, *nonce);
        Some(Board::new(id, *requester, (**spec).clone()))
    }

    /// Applies a durable event. Events come from this board's commands or from the log, so they
    /// are trusted: a replay applies them without re-checking leases or timing.
    pub fn apply(&mut self, event: &TaskEvent) -> Vec<Effect> {
        let mut effects = Vec::new();
        match event {
            TaskEvent::ProjectCreated { .. } => {}
            TaskEvent::ItemsAdded {
                items,
                label_studio,
            } => {
                for item in items {
                    self.add_item(item.clone());
                }
                if let Some(tags) = label_studio {
                    self.label_studio_tags = tags.clone();
                }
            }
            TaskEvent::ReviewerAdded { reviewer } => {
                self.reviewers.insert(*reviewer);
            }
            TaskEvent::JudgmentSubmitted {
                contributor,
                item,
                answer,
                at_ms,
                handed_out_ms,
            } => {
                let spent_ms = handed_out_ms
                    .map(|since| u32::try_from(at_ms.saturating_sub(since)).unwrap_or(u32::MAX));
                self.record_judgment(
                    *contributor,
                    *item,
                    answer.clone(),
                    (*at_ms, spent_ms),
                    &mut effects,
                )
            }
            TaskEvent::Reviewed {
                judgment, verdict, ..
            } => self.record_review(*judgment, verdict, &mut effects),
            TaskEvent::JudgmentWithdrawn {
                contributor,
                judgment,
                at_ms,
            } => self.record_withdrawal(*contributor, *judgment, *at_ms, &mut effects),
            TaskEvent::Closed { released } => {
                self.closed = true;
                self.released += released;
                debug_assert!(self.committed() <= self.spec.budget);
            }
            TaskEvent::Published { asset, item_root } => {
                self.publications.push((*asset, *item_root))
            }
        }
        effects
    }

    fn add_item(&mut self, item: Item) {
        let id = item.id();
        if self.item_index.contains_key(&id) {
            return;
        }
        let index = self.items.len() as u32;
        let gold = item.gold.is_some();
        self.items.push(ItemState {
            id,
            item,
            judgments: Vec::new(),
            needed: self.spec.overlap.min,
            leased: 0,
            resolved: false,
            resolved_label: None,
            forgotten_evidence: Box::default(),
        });
        self.item_index.insert(id, index);
        if gold {
            self.gold.push(index);
        } else {
            self.refresh_open(index);
        }
    }

    /// Checks a submission against the contributor's lease, the timing rule and the schema, then
    /// records it. Returns the event to store and its effects.
    pub fn submit(
        &mut self,
        contributor: Address,
        item: ItemId,
        answer: Answer,
        now_ms: u64,
    ) -> Result<(TaskEvent, Vec<Effect>), SubmitError> {
        if let Some(reason) = self
            .contributors
            .get(&contributor)
            .and_then(|c| c.paused.clone())
        {
            return Err(SubmitError::Paused(reason));
        }
        let lease = self
            .leases
            .get(&contributor)
            .filter(|l| l.item_id == item && l.until_ms > now_ms)
            .ok_or(SubmitError::NoLease(item))?;
        let elapsed_ms = now_ms.saturating_sub(lease.since_ms);
        if elapsed_ms < u64::from(self.spec.min_seconds_per_item) * 1000 {
            return Err(SubmitError::TooFast {
                elapsed_s: elapsed_ms as f64 / 1000.0,
                min_s: self.spec.min_seconds_per_item,
            });
        }
        let index = self.item_index[&item];
        self.spec
            .schema
            .validate(&answer, &self.items[index as usize].item.data)?;
        let lease = lease.clone();
        let event = TaskEvent::JudgmentSubmitted {
            contributor,
            item,
            answer,
            at_ms: now_ms,
            handed_out_ms: Some(lease.since_ms),
        };
        let effects = self.apply(&event);
        let judgment = self.judgment_count - 1;
        self.remember_undoable(contributor, judgment, lease);
        Ok((event, effects))
    }

    fn record_judgment(
        &mut self,
        contributor: Address,
        item_id: ItemId,
        answer: Answer,
        (at_ms, spent_ms): (u64, Option<u32>),
        effects: &mut Vec<Effect>,
    ) {
        self.release_lease(&contributor);
        let Some(&index) = self.item_index.get(&item_id) else {
            debug_assert!(false, "a judgment on an item the board does not have");
            return;
        };
        let gold = self.items[index as usize].is_gold();
        let judgment = self.judgment_count;
        self.judgment_count += 1;
        self.judgments.insert(
            judgment,
            Judgment {
                item: index,
                contributor,
                answer,
                at_ms,
                spent_ms,
                gold,
                status: JudgmentStatus::Pending,
            },
        );
        self.items[index as usize].judgments.push(judgment);
        let record = self.contributors.entry(contributor).or_default();
        let listed = record.rank(contributor);
        record.seen.insert(index);
        record.submitted += 1;
        let first = record.submitted == 1;
        let ranked = record.rank(contributor);
        if let Some(ms) = spent_ms {
            record.answer_times.add(ms);
        }
        let day = at_ms / DAY_MS;
        if record.day != day {
            record.day = day;
            record.today = 0;
        }
        record.today += 1;
        if let Some(last) = record.last_at_ms.replace(at_ms) {
            self.pace.record(at_ms.saturating_sub(last));
        }
        self.working += u64::from(first);
        self.rerank(listed, ranked);
        if gold {
            self.grade_gold(judgment, effects);
        } else {
            self.retally(judgment, true);
            self.liable += 1;
            self.after_judgment(index, judgment, effects);
        }
        self.forget_settled(index);
    }

    /// Under [`Memory::OpenWork`], forgets the settled judgments of an item whose judgments can
    /// no longer change one another (see [`ItemState::is_final`]): their agreement evidence moves
    /// into the item's forgotten counts, and their contributors' record of having seen the item
    /// goes (a resolved item is never handed out again; a gold one's is kept, so nobody sees
    /// the same check question twice). Pending judgments stay until they settle.
    fn forget_settled(&mut self, index: u32) {
        if self.memory == Memory::Everything || !self.items[index as usize].is_final() {
            return;
        }
        let held = std::mem::take(&mut self.items[index as usize].judgments);
        let mut kept = Vec::new();
        let mut evidence = self.items[index as usize].forgotten_evidence.to_vec();
        for j in held {
            if self.judgments[&j].status == JudgmentStatus::Pending {
                kept.push(j);
                continue;
            }
            let record = self.judgments.remove(&j).expect("held above");
            if record.is_agreement_evidence()
                && let Some(category) = record.answer.category()
            {
                count_one(&mut evidence, self.label_number(category));
            }
            if let Some(undoable) = self.undoable.get_mut(&record.contributor)
                && undoable.judgment == j
            {
                undoable.settled = record.status.settled_as();
            }
            if !record.gold
                && let Some(contributor) = self.contributors.get_mut(&record.contributor)
            {
                contributor.seen.remove(&index);
            }
        }
        let state = &mut self.items[index as usize];
        state.judgments = kept;
        state.forgotten_evidence = evidence.into_boxed_slice();
    }

    /// The number of a label in the board's list of labels, added on first use.
    fn label_number(&mut self, label: String) -> u32 {
        if let Some(&number) = self.label_index.get(&label) {
            return number;
        }
        let number = self.labels.len() as u32;
        self.labels.push(label.clone());
        self.label_index.insert(label, number);
        number
    }

    /// Adds an item to or removes it from the assignment queue to match its state.
    fn refresh_open(&mut self, index: u32) {
        let key = (self.queue_key(index), index);
        let state = &self.items[index as usize];
        let counting = self.counting(index);
        let total = state.judgments.len() as u32;
        let available = !state.is_gold()
            && !state.resolved
            && counting + state.leased < state.needed
            && total + state.leased < self.spec.overlap.max.max(state.needed);
        if available {
            self.open.insert(key);
        } else {
            self.open.remove(&key);
        }
    }

    fn queue_key(&self, index: u32) -> u64 {
        match self.spec.order {
            crate::project::QueueOrder::ImportOrder => 0,
            crate::project::QueueOrder::ModelUncertainty => {
                // Most uncertain first; items without scores last.
                match self.items[index as usize].item.model_uncertainty() {
                    Some(u) => u64::from(Ppm::ONE.parts() - (u * 1e6).round() as u32),
                    None => u64::MAX,
                }
            }
        }
    }

    /// Judgments on the item that still count.
    fn counting(&self, index: u32) -> u32 {
        self.items[index as usize]
            .judgments
            .iter()
            .filter(|&&j| self.judgments[&j].counts())
            .count() as u32
    }

    fn pay(&mut self, judgment: u32, fixed: Option<Answer>, effects: &mut Vec<Effect>) {
        let record = self.judgments.get_mut(&judgment).expect("a held judgment");
        if !record.gold {
            self.liable -= 1;
        }
        record.status = match fixed {
            Some(answer) => JudgmentStatus::Fixed(answer),
            None => JudgmentStatus::Accepted,
        };
        let contributor = record.contributor;
        let item = self.items[record.item as usize].id;
        self.paid += self.spec.bounty;
        debug_assert!(self.paid <= self.spec.budget, "paid beyond the budget");
        self.contributors.entry(contributor).or_default().accepted += 1;
        effects.push(Effect::Paid {
            contributor,
            item,
            judgment,
            amount: self.spec.bounty,
        });
    }

    fn reject(&mut self, judgment: u32) {
        let record = self.judgments.get_mut(&judgment).expect("a held judgment");
        if !record.gold && record.status == JudgmentStatus::Pending {
            self.liable -= 1;
        }
        record.status = JudgmentStatus::Rejected;
        let contributor = record.contributor;
        self.contributors.entry(contributor).or_default().rejected += 1;
    }

    pub fn items(&self) -> &[ItemState] {
        &self.items
    }

    pub fn item(&self, id: &ItemId) -> Option<&ItemState> {
        self.item_index.get(id).map(|&i| &self.items[i as usize])
    }

    /// The judgments the board holds (every one under [`Memory::Everything`]), by number.
    pub fn judgments(&self) -> impl DoubleEndedIterator<Item = (u32, &Judgment)> {
        self.judgments
            .iter()
            .map(|(&number, judgment)| (number, judgment))
    }

    /// Judgment number `number`, if the board holds it.
    pub fn judgment(&self, number: u32) -> Option<&Judgment> {
        self.judgments.get(&number)
    }

    /// Judgments ever made on the board, forgotten ones included.
    pub fn judgment_count(&self) -> u32 {
        self.judgment_count
    }

    pub fn contributor(&self, account: &Address) -> Option<&Contributor> {
        self.contributors.get(account)
    }

    pub fn contributors(&self) -> impl Iterator<Item = (&Address, &Contributor)> {
        self.contributors.iter()
    }

    /// The contributors a requester's table lists (who submitted or was paused), most
    /// submissions first, then by address, from the `skip`-th on: costs the rows read and
    /// skipped, not the number of contributors.
    pub fn ranked_contributors(
        &self,
        skip: usize,
    ) -> impl Iterator<Item = (&Address, &Contributor)> {
        self.ranking().iter().skip(skip).filter_map(|(_, account)| {
            self.contributors
                .get(account)
                .map(|contributor| (account, contributor))
        })
    }

    /// How many contributors a requester's table lists.
    pub fn ranked_count(&self) -> usize {
        self.ranking().len()
    }

    /// The ranking, built from every contributor the first time it is read.
    fn ranking(&self) -> &BTreeSet<(Reverse<u32>, Address)> {
        self.ranked.get_or_init(|| {
            self.contributors
                .iter()
                .filter_map(|(account, contributor)| contributor.rank(*account))
                .collect()
        })
    }

    /// Moves a contributor in the ranking from where it was listed (`before`) to where it is
    /// now (`after`), after its submissions or pause changed.
    fn rerank(
        &mut self,
        before: Option<(Reverse<u32>, Address)>,
        after: Option<(Reverse<u32>, Address)>,
    ) {
        if let Some(ranked) = self.ranked.get_mut()
            && before != after
        {
            if let Some(before) = before {
                ranked.remove(&before);
            }
            if let Some(after) = after {
                ranked.insert(after);
            }
        }
    }

    pub fn is_reviewer(&self, account: &Address) -> bool {
        self.reviewers.contains(account)
    }

    /// How many judgments wait for a reviewer.
    pub fn awaiting_review(&self) -> u64 {
        self.awaiting_review.len() as u64
    }

    /// Who may review, in address order.
    pub fn reviewers(&self) -> Vec<Address> {
        let mut reviewers: Vec<Address> = self.reviewers.iter().copied().collect();
        reviewers.sort();
        reviewers
    }

    /// Paid so far, in the token's base units; never more than the budget.
    pub fn paid(&self) -> Amount {
        self.paid
    }

    /// The part of the budget that is spent or spoken for: paid, released to the requester, and
    /// one bounty for each pending judgment and active lease.
    pub fn committed(&self) -> Amount {
        self.paid
            + self.released
            + self.spec.bounty * u128::from(self.liable + self.leases.len() as u64)
    }

    /// What closing the project now would return to the requester.
    pub fn releasable(&self) -> Amount {
        self.spec.budget - self.committed()
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Datasets published from this board, oldest first: asset id and item root.
    pub fn publications(&self) -> &[(Hash32, Hash32)] {
        &self.publications
    }
}

/// Adds one to `label`'s count in an evidence row, appending the label when it has none yet.
fn count_one<L: PartialEq, C: std::ops::AddAssign + From<u8>>(row: &mut Vec<(L, C)>, label: L) {
    match row.iter_mut().find(|(l, _)| *l == label) {
        Some((_, count)) => *count += C::from(1),
        None => row.push((label, C::from(1))),
    }
}

#[cfg(test)]
mod tests;

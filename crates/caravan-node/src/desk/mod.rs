//! The data-task desk: project boards kept in step with the durable event log.
//!
//! Every change to a board is a `WorkRecorded` event carrying the board's own record (JSON) and
//! the bounties it caused, so a judgment and its payments are durable together or not at all.
//! A command locks its project's board, checks and applies the change in memory, queues the
//! event while still holding the lock (so the log keeps each project's order), releases the lock
//! and waits for durability; concurrent submissions share group commits. If a write fails, the
//! boards are rebuilt from the log, so memory never runs ahead of the disk. A rebuild excludes
//! every change (see `Desk::changes`), so none is applied to a board being replaced.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use caravan_core::{Address, AssetId, Bounty, Event, Lane};
use caravan_store::{Journal, JournalError, SharedJournal, now_ms};
use caravan_tasks::board::ReviewTask;
use caravan_tasks::board::{
    AssignError, Assignment, Board, BoardStatus, Effect, Memory, ReviewError, SubmitError,
    TaskEvent, Verdict,
};
use caravan_tasks::dataset::DatasetError;
use caravan_tasks::import::{AnnotationUse, ImportErrors, ImportFormat, Skipped, import_file};
use caravan_tasks::item::{Item, ItemError, ItemId};
use caravan_tasks::label_studio::LabelStudioTags;
use caravan_tasks::project::{ProjectId, ProjectSpec, SpecError};
use caravan_tasks::schema::Answer;

use crate::chains::ChainDirectory;
use crate::meter::Meter;

mod bounties;
mod listings;
mod payouts;
mod publishing;
mod requests;

pub use bounties::{BountyKey, BountyTally};
pub use listings::{ListedProject, Shelf, TaskBoardPage};
pub use requests::{ContributorRecord, RequestView, RequestedProject};

use bounties::{BountyBook, epoch_of};

/// The most items in one `ItemsAdded` record.
const ITEMS_PER_RECORD: usize = 500;
/// The most item data (canonical JSON bytes) in one record, a quarter of the economy's limit on
/// a work record, which leaves room for gold answers, predictions and JSON framing.
const ITEM_BYTES_PER_RECORD: usize = caravan_core::MAX_WORK_RECORD_BYTES / 4;
/// How many stored events a rebuild reads per round trip.
const READ_PAGE: usize = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error("no project {0}")]
    UnknownProject(ProjectId),
    #[error("only the project's requester {requester} may do this")]
    NotRequester { requester: Address },
    #[error("invalid project: {0}")]
    Spec(#[from] SpecError),
    #[error("token {0} is not registered; register it before posting a project paid in it")]
    UnknownToken(Address),
    #[error(
        "the budget of {budget} is more than {requester}'s prepaid balance can escrow: {available} is available (the balance less what calls in flight hold). Deposit at least {shortfall} more to {requester}'s prepaid balance, or post the project with a smaller budget",
        budget = token.format(*budget),
        available = token.format(*available),
        shortfall = token.format(budget - available)
    )]
    InsufficientBalance {
        requester: Address,
        token: caravan_core::Token,
        budget: caravan_core::Amount,
        available: caravan_core::Amount,
    },
    #[error("project {0} already exists")]
    ProjectExists(ProjectId),
    #[error("item {index}: {error}")]
    Item { index: usize, error: ItemError },
    #[error("the file was not imported, nothing was added: {0}")]
    Import(ImportErrors),
    #[error(transparent)]
    Assign(#[from] AssignError),
    #[error(transparent)]
    Submit(#[from] SubmitError),
    #[error(transparent)]
    Review(#[from] ReviewError),
    #[error(transparent)]
    Skip(#[from] caravan_tasks::board::SkipError),
    #[error(transparent)]
    Undo(#[from] caravan_tasks::board::UndoError),
    #[error(
        "{viewer} may not see {account}'s standing: a contributor sees their own, and a project's requester everyone's"
    )]
    NotYourStanding { viewer: Address, account: Address },
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("project {0} has not been published yet; publish it, then export")]
    NotPublished(ProjectId),
    #[error(
        "no data project published dataset {0}; `caravan asset list` shows the datasets, `caravan task publish` makes one"
    )]
    UnknownDataset(AssetId),
    #[error("{0}")]
    UnknownChain(String),
    /// The economy refused a record the desk had checked: the node's checks and the economy's
    /// rules disagree, a fault in the node (nothing was recorded; the boards were rebuilt).
    #[error(
        "the node let through a record its economy refused ({0}); nothing was recorded and the project is as it was. This is a fault in the node, not in the request: please report it"
    )]
    Refused(String),
    /// The dataset to publish cannot join the lineage as it is.
    #[error("the dataset cannot be published: {0}")]
    Publish(caravan_core::lineage::LineageError),
    #[error("storage: {0}")]
    Store(#[from] JournalError),
    #[error("stored work record {seq} cannot be read: {why}")]
    CorruptRecord { seq: u64, why: String },
}

/// What an import added.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Imported {
    pub added: usize,
    /// Items of the file the project already had (the same data), left as they were.
    pub already_present: usize,
    /// What the file held that was not imported, counted...
    pub skipped: Skipped,
    /// ...and said in words, with what to do about it.
    pub notes: Vec<String>,
}

/// What a submission or review led to, for the person who made it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Receipt {
    pub effects: Vec<Effect>,
}

/// A contributor's standing on a project: what the board knows of their work and pay.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Standing {
    pub contributor: Address,
    /// The board's estimate of how often they are right, from gold answers.
    pub skill: f64,
    pub exam: caravan_tasks::board::ExamState,
    pub gold_answered: u32,
    pub gold_right: u32,
    pub submitted: u32,
    pub accepted: u32,
    pub rejected: u32,
    /// Bounties of accepted judgments, in base units of the project's token.
    #[serde(with = "caravan_core::serde_u128")]
    pub earned: caravan_core::Amount,
    /// Why they are paused, if they are.
    pub paused: Option<String>,
}

/// Milliseconds since the Unix epoch, as the desk sees them.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The desk. Cheap to share: wrap it in an `Arc`.
pub struct Desk {
    journal: Arc<SharedJournal>,
    /// Shared with the gateway: a budget is escrowed only from money no call in flight holds.
    meter: Arc<Meter>,
    boards: RwLock<BTreeMap<ProjectId, Arc<Mutex<Board>>>>,
    /// Held shared by every change from looking its board up until its records are queued, and
    /// exclusively by a rebuild. Without it a change applied to a board a rebuild is replacing,
    /// and queued after the rebuild read the log, would be in the log but on no board: its
    /// contributor could answer the same item again.
    changes: RwLock<()>,
    /// Set when a rebuild failed (the store was unreachable): the boards may hold changes the
    /// log does not, so the next change rebuilds them first.
    behind: AtomicBool,
    /// Every contributor's bounties per epoch, kept with the boards.
    bounties: RwLock<BountyBook>,
    clock: Clock,
    /// The chains accounts may choose; they change when the operator adds one or moves home.
    chains: RwLock<ChainDirectory>,
}

impl Desk {
    /// Builds every project's board by folding the work records in `journal`'s log; the desk
    /// alone spends from prepaid balances (no gateway serves calls beside it).
    pub fn open(journal: Journal) -> Result<Desk, DeskError> {
        Desk::over(
            Arc::new(SharedJournal::new(journal)),
            Arc::new(Meter::default()),
            Arc::new(now_ms),
        )
    }

    /// The desk of a node: over a journal and a meter it shares with the node's other
    /// services, reading time from `clock` (simulations and tests run a day of work — leases,
    /// minimum seconds per item, daily caps — in moments).
    pub fn over(
        journal: Arc<SharedJournal>,
        meter: Arc<Meter>,
        clock: Clock,
    ) -> Result<Desk, DeskError> {
        let (boards, bounties) = journal.read(fold_boards)?;
        Ok(Desk {
            journal,
            meter,
            boards: RwLock::new(boards),
            changes: RwLock::new(()),
            behind: AtomicBool::new(false),
            bounties: RwLock::new(bounties),
            clock,
            chains: RwLock::new(ChainDirectory::default()),
        })
    }

    /// Hands the journal back (for commands that go on with the economy after the desk), once
    /// no other service shares it.
    pub fn into_journal(self) -> Journal {
        Arc::try_unwrap(self.journal)
            .unwrap_or_else(|_| panic!("the desk's journal is still shared with another service"))
            .into_inner()
    }

    pub fn journal(&self) -> &SharedJournal {
        &self.journal
    }

    fn board(&self, project: &ProjectId) -> Result<Arc<Mutex<Board>>, DeskError> {
        self.boards
            .read()
            .expect("board map lock")
            .get(project)
            .cloned()
            .ok_or(DeskError::UnknownProject(*project))
    }

    /// The project's board, to be changed under the returned hold on [`Desk::changes`] (see
    /// [`Changing`]); boards a failed rebuild left ahead of the log are rebuilt first.
    fn board_to_change(
        &self,
        project: &ProjectId,
    ) -> Result<(RwLockReadGuard<'_, ()>, Arc<Mutex<Board>>), DeskError> {
        let hold = self.hold_changes()?;
        Ok((hold, self.board(project)?))
    }

    /// A shared hold on [`Desk::changes`], once the boards are in step with the log.
    fn hold_changes(&self) -> Result<RwLockReadGuard<'_, ()>, DeskError> {
        if self.behind.load(Ordering::Acquire) {
            self.rebuild()?;
        }
        Ok(self.changes.read().expect("change gate lock"))
    }

    /// Every project, in id order.
    pub fn projects(&self) -> Vec<ProjectId> {
        self.boards
            .read()
            .expect("board map lock")
            .keys()
            .copied()
            .collect()
    }

    /// Runs `read` on a project's board.
    pub fn with_board<R>(
        &self,
        project: &ProjectId,
        read: impl FnOnce(&Board) -> R,
    ) -> Result<R, DeskError> {
        let board = self.board(project)?;
        let guard = lock(&board);
        Ok(read(&guard))
    }

    /// Posts a project and escrows its budget from the requester's prepaid balance (what
    /// deposits filled and calls in flight do not hold); a budget above it is refused with the
    /// balance and how much more to deposit.
    pub fn create_project(
        &self,
        requester: Address,
        spec: ProjectSpec,
    ) -> Result<ProjectId, DeskError> {
        spec.validate()?;
        let token = self
            .journal
            .read(|j| j.economy().tokens().get(&spec.token).cloned())
            .ok_or(DeskError::UnknownToken(spec.token))?;
        let changing = self.hold_changes()?;
        let mut boards = self.boards.write().expect("board map lock");
        let nonce = boards.len() as u64;
        let created = TaskEvent::ProjectCreated {
            requester,
            nonce,
            spec: Box::new(spec.clone()),
        };
        let board = Board::created(&created)
            .expect("a creation record")
            .with_memory(Memory::OpenWork);
        let id = board.id;
        if boards.contains_key(&id) {
            return Err(DeskError::ProjectExists(id));
        }
        let hold = self
            .meter
            .reserve(&self.journal, requester, spec.token, spec.budget)
            .map_err(|shortfall| DeskError::InsufficientBalance {
                requester,
                token,
                budget: spec.budget,
                available: shortfall.available,
            })?;
        let events = vec![
            work_event(&board, &created, Vec::new()),
            Event::BudgetEscrowed {
                project: id.0,
                requester,
                token: spec.token,
                amount: spec.budget,
            },
        ];
        boards.insert(id, Arc::new(Mutex::new(board)));
        let pending = self.meter.settle(hold, || self.journal.enqueue(events));
        self.commit_pending((boards, changing), pending)?;
        Ok(id)
    }

    /// Imports a file of items in `format` for the project's requester, using a Label Studio
    /// file's annotations as `annotations` says: every record is parsed
    /// and checked against the project's schema, and the file is refused whole, with every bad
    /// record named, if any is wrong. Items already on the project are not added twice.
    pub fn import(
        &self,
        project: &ProjectId,
        requester: Address,
        format: ImportFormat,
        text: &str,
        annotations: AnnotationUse,
    ) -> Result<Imported, DeskError> {
        let schema = self.with_board(project, |board| {
            check_requester(board, requester)?;
            Ok::<_, DeskError>(board.spec.schema.clone())
        })??;
        let file = import_file(format, text, &schema, annotations).map_err(DeskError::Import)?;
        let submitted = file.items.len();
        let added =
            self.add_tagged_items(project, requester, file.items, file.label_studio_tags)?;
        Ok(Imported {
            added,
            already_present: submitted - added,
            notes: file.skipped.notes(),
            skipped: file.skipped,
        })
    }

    /// Adds items; returns how many were new. Every item is validated against the schema before
    /// any is stored, so a bad item leaves the project as it was.
    pub fn add_items(
        &self,
        project: &ProjectId,
        requester: Address,
        items: Vec<Item>,
    ) -> Result<usize, DeskError> {
        self.add_tagged_items(project, requester, items, None)
    }

    /// [`Desk::add_items`], keeping the tag names of the Label Studio config they came from
    /// (recorded with the first new items, or alone when they change and no item is new).
    fn add_tagged_items(
        &self,
        project: &ProjectId,
        requester: Address,
        items: Vec<Item>,
        label_studio: Option<LabelStudioTags>,
    ) -> Result<usize, DeskError> {
        let board = self.board(project)?;
        {
            let guard = lock(&board);
            check_requester(&guard, requester)?;
            for (index, item) in items.iter().enumerate() {
                item.validate(&guard.spec.schema)
                    .map_err(|error| DeskError::Item { index, error })?;
            }
        }
        let mut added = 0;
        let mut label_studio = label_studio;
        for chunk in record_chunks(&items) {
            let (hold, board) = self.board_to_change(project)?;
            let guard = Changing::lock(hold, &board);
            let fresh: Vec<Item> = chunk
                .iter()
                .filter(|item| guard.item(&item.id()).is_none())
                .cloned()
                .collect();
            if fresh.is_empty() {
                continue;
            }
            added += fresh.len();
            let event = TaskEvent::ItemsAdded {
                items: fresh,
                label_studio: label_studio.take(),
            };
            self.record(guard, event)?;
        }
        if let Some(tags) = label_studio {
            let (hold, board) = self.board_to_change(project)?;
            let guard = Changing::lock(hold, &board);
            if *guard.label_studio_tags() != tags {
                let event = TaskEvent::ItemsAdded {
                    items: Vec::new(),
                    label_studio: Some(tags),
                };
                self.record(guard, event)?;
            }
        }
        Ok(added)
    }

    pub fn add_reviewer(
        &self,
        project: &ProjectId,
        requester: Address,
        reviewer: Address,
    ) -> Result<(), DeskError> {
        let (hold, board) = self.board_to_change(project)?;
        let guard = Changing::lock(hold, &board);
        check_requester(&guard, requester)?;
        self.record(guard, TaskEvent::ReviewerAdded { reviewer })
            .map(|_| ())
    }

    /// Closes the project to new work and returns to the requester the budget no pending
    /// judgment or lease can still claim; returns the amount released. Closing again later
    /// releases what became free since.
    pub fn close_project(
        &self,
        project: &ProjectId,
        requester: Address,
    ) -> Result<caravan_core::Amount, DeskError> {
        let (hold, board) = self.board_to_change(project)?;
        let mut guard = Changing::lock(hold, &board);
        check_requester(&guard, requester)?;
        let released = guard.releasable();
        let record = TaskEvent::Closed { released };
        guard.apply(&record);
        let mut events = Vec::new();
        if released > 0 {
            events.push(Event::EscrowReleased {
                project: project.0,
                requester,
                token: guard.spec.token,
                amount: released,
            });
        }
        events.push(work_event(&guard, &record, Vec::new()));
        self.commit(guard, events)?;
        Ok(released)
    }

    /// The contributor's next item under a lease (in memory only; see the board's docs).
    pub fn next_item(
        &self,
        project: &ProjectId,
        contributor: Address,
    ) -> Result<Assignment, DeskError> {
        let board = self.board(project)?;
        let mut guard = lock(&board);
        Ok(guard.assign_next_item(contributor, (self.clock)())?)
    }

    /// Records a judgment and pays any bounties it settles; returns once durable.
    pub fn submit(
        &self,
        project: &ProjectId,
        contributor: Address,
        item: ItemId,
        answer: Answer,
    ) -> Result<Receipt, DeskError> {
        let (hold, board) = self.board_to_change(project)?;
        let mut guard = Changing::lock(hold, &board);
        let (event, effects) = guard.submit(contributor, item, answer, (self.clock)())?;
        self.persist(guard, &event, effects)
    }

    /// The project's spec and how many judgments wait for review, for one of its reviewers
    /// opening the review queue; anyone else is refused.
    pub fn review_queue(
        &self,
        project: &ProjectId,
        reviewer: Address,
    ) -> Result<(ProjectSpec, u64), DeskError> {
        self.with_board(project, |board| {
            if !board.is_reviewer(&reviewer) {
                return Err(DeskError::Review(ReviewError::NotReviewer(reviewer)));
            }
            Ok((board.spec.clone(), board.awaiting_review()))
        })?
    }

    pub fn next_review(
        &self,
        project: &ProjectId,
        reviewer: Address,
    ) -> Result<Option<ReviewTask>, DeskError> {
        let board = self.board(project)?;
        let guard = lock(&board);
        Ok(guard.next_review(&reviewer)?)
    }

    pub fn review(
        &self,
        project: &ProjectId,
        reviewer: Address,
        judgment: u32,
        verdict: Verdict,
    ) -> Result<Receipt, DeskError> {
        let (hold, board) = self.board_to_change(project)?;
        let mut guard = Changing::lock(hold, &board);
        let (event, effects) = guard.review(reviewer, judgment, verdict, (self.clock)())?;
        self.persist(guard, &event, effects)
    }

    /// `account`'s standing on the project, for `viewer`: the contributor themselves or the
    /// project's requester. `None` when `account` has not worked on it.
    pub fn standing(
        &self,
        project: &ProjectId,
        viewer: Address,
        account: Address,
    ) -> Result<Option<Standing>, DeskError> {
        self.with_board(project, |board| {
            if viewer != account && viewer != board.requester {
                return Err(DeskError::NotYourStanding { viewer, account });
            }
            Ok(board.contributor(&account).map(|c| Standing {
                contributor: account,
                skill: c.skill(),
                exam: c.exam,
                gold_answered: c.gold_seen,
                gold_right: c.gold_correct,
                submitted: c.submitted,
                accepted: c.accepted,
                rejected: c.rejected,
                earned: u128::from(c.accepted) * board.spec.bounty,
                paused: c.paused.as_ref().map(|reason| reason.to_string()),
            }))
        })?
    }

    /// `account`'s bounties for accepted judgments, by epoch, token and project (in that
    /// order); the epoch is the one whose root first includes them.
    pub fn bounties_of(&self, account: &Address) -> Vec<(BountyKey, BountyTally)> {
        self.bounties.read().expect("bounty book lock").of(account)
    }

    /// The project's spec alone, without [`Desk::status`]'s walk over items and agreement
    /// measures: what a labeling screen needs on every item.
    pub fn spec(&self, project: &ProjectId) -> Result<ProjectSpec, DeskError> {
        self.with_board(project, |b| b.spec.clone())
    }

    pub fn status(&self, project: &ProjectId) -> Result<(ProjectSpec, BoardStatus), DeskError> {
        self.with_board(project, |b| (b.spec.clone(), b.status()))
    }

    /// Applies a requester's record (no bounties) to the locked board and stores it.
    fn record(&self, mut guard: Changing<'_>, event: TaskEvent) -> Result<Receipt, DeskError> {
        let effects = guard.apply(&event);
        self.persist(guard, &event, effects)
    }

    /// Queues the event (already applied to the locked board) with its bounties, releases the
    /// board and waits for durability.
    fn persist(
        &self,
        guard: Changing<'_>,
        event: &TaskEvent,
        effects: Vec<Effect>,
    ) -> Result<Receipt, DeskError> {
        let bounties: Vec<Bounty> = effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::Paid {
                    contributor,
                    judgment,
                    amount,
                    ..
                } => Some(Bounty {
                    contributor: *contributor,
                    amount: *amount,
                    judgment: *judgment,
                }),
                _ => None,
            })
            .collect();
        let (project, token) = (guard.id, guard.spec.token);
        let pending = self
            .journal
            .enqueue(vec![work_event(&guard, event, bounties.clone())]);
        if let Some(envelope) = pending.submitted().accepted.first()
            && !bounties.is_empty()
        {
            let epoch = self
                .journal
                .read(|j| epoch_of(j.economy().epochs(), envelope.seq));
            self.bounties
                .write()
                .expect("bounty book lock")
                .add(epoch, token, project, &bounties);
        }
        self.commit_pending(guard, pending)?;
        Ok(Receipt { effects })
    }

    /// Queues `events`, whose change is already applied in memory, while `guard` (a board or the
    /// board map) is still held, so the log keeps each project's order; then releases it and
    /// waits for durability. If the economy refuses an event or the store fails, memory is ahead
    /// of the log: the boards are rebuilt from the log and the error returned.
    fn commit<Guard>(&self, guard: Guard, events: Vec<Event>) -> Result<(), DeskError> {
        self.commit_pending(guard, self.journal.enqueue(events))
    }

    /// [`Desk::commit`] for events already queued as `pending` (under `guard`).
    fn commit_pending<Guard>(
        &self,
        guard: Guard,
        pending: caravan_store::PendingSubmission<'_>,
    ) -> Result<(), DeskError> {
        let refusal = refused(pending.submitted());
        drop(guard);
        if let Err(error) = refusal {
            let _ = pending.wait();
            self.rebuild()?;
            return Err(error);
        }
        self.settle(pending)
    }

    fn settle(&self, pending: caravan_store::PendingSubmission<'_>) -> Result<(), DeskError> {
        if let Err(error) = pending.wait() {
            self.rebuild()?;
            return Err(error.into());
        }
        Ok(())
    }

    /// Rebuilds every board from the durable log, with every change held off: each change
    /// before it has queued its records, so the log (read through the writer, after them) holds
    /// them if they were stored; each after it sees the rebuilt boards. Leases and skips, kept
    /// in memory only, carry over. When the log cannot be read the boards stay as they were and
    /// the next change tries again.
    fn rebuild(&self) -> Result<(), DeskError> {
        let _exclusive = self.changes.write().expect("change gate lock");
        let folded = self.journal.read(fold_boards);
        self.behind.store(folded.is_err(), Ordering::Release);
        let (boards, bounties) = folded?;
        let mut current = self.boards.write().expect("board map lock");
        for (project, rebuilt) in &boards {
            if let Some(earlier) = current.get(project) {
                lock(rebuilt).keep_promises_of(&lock(earlier));
            }
        }
        *current = boards;
        drop(current);
        *self.bounties.write().expect("bounty book lock") = bounties;
        Ok(())
    }
}

/// A board locked for a change, with a shared hold on [`Desk::changes`] kept until the change's
/// records are queued (dropping it releases both).
struct Changing<'a> {
    board: MutexGuard<'a, Board>,
    _hold: RwLockReadGuard<'a, ()>,
}

impl<'a> Changing<'a> {
    fn lock(hold: RwLockReadGuard<'a, ()>, board: &'a Mutex<Board>) -> Changing<'a> {
        Changing {
            board: lock(board),
            _hold: hold,
        }
    }
}

impl Deref for Changing<'_> {
    type Target = Board;
    fn deref(&self) -> &Board {
        &self.board
    }
}

impl DerefMut for Changing<'_> {
    fn deref_mut(&mut self) -> &mut Board {
        &mut self.board
    }
}

fn lock(board: &Mutex<Board>) -> MutexGuard<'_, Board> {
    board
        .lock()
        .expect("a thread panicked while changing a board; its state cannot be trusted")
}

fn check_requester(board: &Board, requester: Address) -> Result<(), DeskError> {
    if board.requester != requester {
        return Err(DeskError::NotRequester {
            requester: board.requester,
        });
    }
    Ok(())
}

fn work_event(board: &Board, event: &TaskEvent, bounties: Vec<Bounty>) -> Event {
    Event::WorkRecorded {
        project: board.id.0,
        record: serde_json::to_string(event).expect("task events serialise"),
        token: board.spec.token,
        bounties,
    }
}

fn refused(submitted: &caravan_store::Submitted) -> Result<(), DeskError> {
    match submitted.refused.first() {
        Some((_, why)) => Err(DeskError::Refused(why.to_string())),
        None => Ok(()),
    }
}

/// The boards by project, each behind its own lock.
type Boards = BTreeMap<ProjectId, Arc<Mutex<Board>>>;

/// Every project's board and every contributor's bounties, folded from the work records in the
/// log.
fn fold_boards(journal: &Journal) -> Result<(Boards, BountyBook), DeskError> {
    let mut boards: BTreeMap<ProjectId, Board> = BTreeMap::new();
    let mut book = BountyBook::default();
    let closed = journal.economy().epochs();
    journal.for_each_in_lane(Lane::Work, 0, |row| -> Result<(), DeskError> {
        let corrupt = |why: String| DeskError::CorruptRecord { seq: row.seq, why };
        let event = Event::decode(&row.body).map_err(|e| corrupt(e.to_string()))?;
        let Event::WorkRecorded {
            project,
            record,
            token,
            bounties,
        } = event
        else {
            return Ok(());
        };
        if !bounties.is_empty() {
            book.add(
                epoch_of(closed, row.seq),
                token,
                ProjectId(project),
                &bounties,
            );
        }
        let task: TaskEvent = serde_json::from_str(&record).map_err(|e| corrupt(e.to_string()))?;
        if let Some(board) = Board::created(&task) {
            boards.insert(board.id, board.with_memory(Memory::OpenWork));
            return Ok(());
        }
        let board = boards
            .get_mut(&ProjectId(project))
            .ok_or_else(|| corrupt(format!("a record for unknown project {project}")))?;
        board.apply(&task);
        Ok(())
    })?;
    let boards = boards
        .into_iter()
        .map(|(id, board)| (id, Arc::new(Mutex::new(board))))
        .collect();
    Ok((boards, book))
}

/// Consecutive runs of items that each fit in one record: at most [`ITEMS_PER_RECORD`] items and
/// [`ITEM_BYTES_PER_RECORD`] bytes of data (a single larger item, at most the per-item limit,
/// goes alone).
fn record_chunks(items: &[Item]) -> Vec<&[Item]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let size = item.canonical_data().len();
        let full = i - start == ITEMS_PER_RECORD || bytes + size > ITEM_BYTES_PER_RECORD;
        if i > start && full {
            chunks.push(&items[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < items.len() {
        chunks.push(&items[start..]);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_chunked_by_count_and_by_bytes() {
        let item = |bytes: usize| Item {
            data: serde_json::json!({ "text": "x".repeat(bytes) }),
            gold: None,
            predictions: Vec::new(),
        };
        let small: Vec<Item> = (0..1_201).map(|_| item(10)).collect();
        let sizes: Vec<usize> = record_chunks(&small).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![500, 500, 201]);
        let big: Vec<Item> = (0..5).map(|_| item(400_000)).collect();
        let sizes: Vec<usize> = record_chunks(&big).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![2, 2, 1]);
        assert!(record_chunks(&[]).is_empty());
    }

    /// A desk with one project whose every item takes `contributors` answers, and the
    /// contributors.
    fn busy_project(dir: &std::path::Path, contributors: usize) -> (Desk, ProjectId, Vec<Address>) {
        let usdc = caravan_core::Token {
            address: Address::from_label("usdc"),
            symbol: "USDC".into(),
            decimals: 6,
        };
        let requester = Address::from_label("requester");
        let mut journal = Journal::open(
            caravan_store::Location::DataDir(dir.to_owned()),
            &mut |_, _| {},
        )
        .unwrap();
        journal
            .submit(vec![
                Event::Genesis(caravan_core::Genesis {
                    treasury: Address::from_label("treasury"),
                    protocol_fee: caravan_core::Ppm::ZERO,
                }),
                Event::TokenRegistered(usdc.clone()),
                Event::Deposited {
                    payer: requester,
                    token: usdc.address,
                    amount: 1_000_000_000,
                },
            ])
            .unwrap();
        let desk = Desk::open(journal).unwrap();
        let spec: ProjectSpec = serde_json::from_value(serde_json::json!({
            "title": "Sentiment",
            "instructions": "Pick one.",
            "schema": { "type": "single_choice", "options": ["pos", "neg"] },
            "overlap": { "min": contributors, "max": contributors, "confidence": 0.99 },
            "token": usdc.address,
            "bounty": "10",
            "budget": "100000000",
            "gold_rate": 0,
            "skill_bar": 0,
            "gold_grace": 3,
            "min_seconds_per_item": 0,
            "daily_cap": 100000,
            "deadline_ms": u64::MAX,
            "lease_seconds": 600,
            "method": "mv"
        }))
        .unwrap();
        let project = desk.create_project(requester, spec).unwrap();
        let items: Vec<Item> = (0..400)
            .map(|n| Item {
                data: serde_json::json!({ "text": format!("review {n}") }),
                gold: None,
                predictions: Vec::new(),
            })
            .collect();
        desk.add_items(&project, requester, items).unwrap();
        let workers = (0..contributors)
            .map(|n| Address::from_label(&format!("worker {n}")))
            .collect();
        (desk, project, workers)
    }

    /// Publishing replays the project's records (the desk's boards forget settled ones), most
    /// of them before it locks the board: while contributors go on working, every publication
    /// still holds exactly the work recorded before it, which a replay to it confirms.
    #[test]
    fn publications_amid_submissions_hold_exactly_the_work_recorded_before_them() {
        let dir = tempfile::tempdir().unwrap();
        let (desk, project, workers) = busy_project(dir.path(), 3);
        let requester = Address::from_label("requester");
        let working = std::sync::atomic::AtomicUsize::new(workers.len());
        let mut rows = Vec::new();
        std::thread::scope(|scope| {
            for worker in &workers {
                let (desk, project, working) = (&desk, &project, &working);
                scope.spawn(move || {
                    while let Ok(assignment) = desk.next_item(project, *worker) {
                        let answer = Answer::Choice("pos".into());
                        desk.submit(project, *worker, assignment.item, answer)
                            .unwrap();
                    }
                    working.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                });
            }
            while working.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                let licence = caravan_core::Licence::OpenUse;
                let name = format!("sentiment {}", rows.len());
                match desk.publish(&project, requester, name, licence, caravan_core::Ppm::ZERO) {
                    Ok((asset, dataset)) => {
                        let (_, again, _) = desk.dataset(&asset).unwrap();
                        assert_eq!(again, dataset, "a replay to the publication");
                        rows.push(dataset.rows.len());
                    }
                    Err(DeskError::Dataset(DatasetError::Empty)) => {}
                    Err(other) => panic!("{other}"),
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        assert!(rows.len() >= 2, "published {} times", rows.len());
        assert!(rows.is_sorted(), "rows only grow: {rows:?}");
        let (_, latest) = desk
            .publish(
                &project,
                requester,
                "sentiment, all".into(),
                caravan_core::Licence::OpenUse,
                caravan_core::Ppm::ZERO,
            )
            .unwrap();
        assert_eq!(latest.rows.len(), 400, "every item resolved");
    }

    /// Judgments per contributor, as the boards in memory hold them.
    fn submitted(desk: &Desk, project: &ProjectId, workers: &[Address]) -> Vec<u32> {
        desk.with_board(project, |board| {
            workers
                .iter()
                .map(|w| board.contributor(w).map_or(0, |c| c.submitted))
                .collect()
        })
        .unwrap()
    }

    /// A rebuild (what follows a failed commit) while contributors go on working must leave the
    /// boards holding every judgment the log holds: a judgment left off would let its
    /// contributor answer the same item again.
    #[test]
    fn a_rebuild_amid_submissions_keeps_every_recorded_judgment() {
        let dir = tempfile::tempdir().unwrap();
        let (desk, project, workers) = busy_project(dir.path(), 4);
        let working = std::sync::atomic::AtomicUsize::new(workers.len());
        let failures = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for worker in &workers {
                let (desk, project, working, failures) = (&desk, &project, &working, &failures);
                scope.spawn(move || {
                    // A lease taken before a rebuild holds after it.
                    let judge = || -> Result<(), DeskError> {
                        let assignment = desk.next_item(project, *worker)?;
                        let answer = Answer::Choice("pos".into());
                        desk.submit(project, *worker, assignment.item, answer)?;
                        Ok(())
                    };
                    if let Err(error) = (0..150).try_for_each(|_| judge()) {
                        failures.lock().unwrap().push(error.to_string());
                    }
                    working.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                });
            }
            // Rebuilds follow failed writes, which are rare: one every millisecond is plenty
            // to land amid submissions, and leaves the contributors room to work.
            scope.spawn(|| {
                while working.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                    desk.rebuild().unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            });
        });
        assert_eq!(failures.into_inner().unwrap(), Vec::<String>::new());
        assert_eq!(submitted(&desk, &project, &workers), vec![150; 4]);
        desk.rebuild().unwrap();
        assert_eq!(
            submitted(&desk, &project, &workers),
            vec![150; 4],
            "the log holds exactly the judgments the boards held"
        );
    }
}

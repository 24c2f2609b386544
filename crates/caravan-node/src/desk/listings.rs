//! The task board a contributor browses: every project as it stands for them, in pages, and the
//! review queues they may open, without walking any project's items (each board keeps the
//! counters a listing reads).

use caravan_core::{Address, Token};
use caravan_tasks::board::{Availability, Listing};
use caravan_tasks::item::ItemId;
use caravan_tasks::project::ProjectId;

use super::{Changing, Desk, DeskError, lock, work_event};

/// The tabs of the task board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shelf {
    /// Open projects the contributor has not worked on.
    New,
    /// Projects they have worked on that still hand out work.
    InProgress,
    /// Projects they worked on that hand out no more work (closed, finished, past the deadline,
    /// out of budget).
    Completed,
}

/// One project on the board, with its token (what it pays per hour is
/// [`Listing::reward_per_hour`]).
#[derive(Clone, Debug)]
pub struct ListedProject {
    pub project: ProjectId,
    pub listing: Listing,
    pub token: Token,
}

/// A project whose review queue the contributor may open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewQueue {
    pub project: ProjectId,
    pub title: String,
    /// Answers waiting for a reviewer.
    pub waiting: u64,
}

/// A page of the task board and how many projects each tab holds.
#[derive(Clone, Debug)]
pub struct TaskBoardPage {
    pub projects: Vec<ListedProject>,
    pub new: usize,
    pub in_progress: usize,
    pub completed: usize,
    /// Every project the contributor reviews, the most answers waiting first.
    pub reviewing: Vec<ReviewQueue>,
}

impl Shelf {
    fn of(listing: &Listing) -> Option<Shelf> {
        let open = listing.availability == Availability::Open;
        match (&listing.mine, open) {
            (None, true) => Some(Shelf::New),
            (None, false) => None,
            (Some(_), true) => Some(Shelf::InProgress),
            (Some(_), false) => Some(Shelf::Completed),
        }
    }
}

impl Desk {
    /// The projects on `shelf` for `contributor`, best paid per hour first (projects with no pace
    /// yet after, by bounty), `per_page` from `page` (from 0), with the size of every tab.
    /// Reads one counter set per project: linear in projects, never in items.
    pub fn task_board(
        &self,
        contributor: &Address,
        shelf: Shelf,
        page: usize,
        per_page: usize,
    ) -> TaskBoardPage {
        let now = (self.clock)();
        let tokens = self.journal.read(|j| j.economy().tokens().clone());
        let boards: Vec<_> = self
            .boards
            .read()
            .expect("board map lock")
            .iter()
            .map(|(id, board)| (*id, board.clone()))
            .collect();
        let (mut new, mut in_progress, mut completed) = (0, 0, 0);
        let mut shelved = Vec::new();
        let mut reviewing = Vec::new();
        for (project, board) in boards {
            let board = lock(&board);
            if board.is_reviewer(contributor) {
                reviewing.push(ReviewQueue {
                    project,
                    title: board.spec.title.clone(),
                    waiting: board.awaiting_review(),
                });
            }
            let listing = board.listing(contributor, now);
            let Some(on) = Shelf::of(&listing) else {
                continue;
            };
            match on {
                Shelf::New => new += 1,
                Shelf::InProgress => in_progress += 1,
                Shelf::Completed => completed += 1,
            }
            if on == shelf {
                shelved.push((project, listing));
            }
        }
        shelved.sort_by(|(a_id, a), (b_id, b)| {
            b.reward_per_hour()
                .cmp(&a.reward_per_hour())
                .then(b.bounty.cmp(&a.bounty))
                .then(a_id.cmp(b_id))
        });
        let projects = shelved
            .into_iter()
            .skip(page * per_page)
            .take(per_page)
            .map(|(project, listing)| ListedProject {
                project,
                token: tokens.get(&listing.token).cloned().unwrap_or(Token {
                    address: listing.token,
                    symbol: "?".into(),
                    decimals: 0,
                }),
                listing,
            })
            .collect();
        reviewing.sort_by(|a, b| b.waiting.cmp(&a.waiting).then(a.project.cmp(&b.project)));
        TaskBoardPage {
            projects,
            new,
            in_progress,
            completed,
            reviewing,
        }
    }

    /// One project as `contributor` sees it on the board, with its token.
    pub fn listed(
        &self,
        project: &ProjectId,
        contributor: &Address,
    ) -> Result<ListedProject, DeskError> {
        let now = (self.clock)();
        let listing = self.with_board(project, |board| board.listing(contributor, now))?;
        let token = self
            .journal
            .read(|j| j.economy().tokens().get(&listing.token).cloned())
            .ok_or(DeskError::UnknownToken(listing.token))?;
        Ok(ListedProject {
            project: *project,
            token,
            listing,
        })
    }

    /// Gives back the contributor's leased item; it comes back to them only when nothing else
    /// is left (a promise in memory, like the lease itself).
    pub fn skip(
        &self,
        project: &ProjectId,
        contributor: Address,
        item: ItemId,
    ) -> Result<(), DeskError> {
        let board = self.board(project)?;
        let mut guard = lock(&board);
        Ok(guard.skip(contributor, item, (self.clock)())?)
    }

    /// Takes back the contributor's latest submission while it is unsettled and its lease
    /// would still run, and hands its item back to them with what they answered; durable
    /// before it returns.
    pub fn undo(
        &self,
        project: &ProjectId,
        contributor: Address,
    ) -> Result<caravan_tasks::board::Withdrawn, DeskError> {
        let (hold, board) = self.board_to_change(project)?;
        let mut guard = Changing::lock(hold, &board);
        let (event, withdrawn) = guard.withdraw_last(contributor, (self.clock)())?;
        let event = work_event(&guard, &event, Vec::new());
        self.commit(guard, vec![event])?;
        Ok(withdrawn)
    }
}

//! What a requester watches of their own projects: progress, money, agreement, every
//! contributor's record (in pages), and the datasets published so far.

use caravan_core::{Address, Amount, AssetId};
use caravan_tasks::board::BoardStatus;
use caravan_tasks::label_studio::LabelStudioTags;
use caravan_tasks::project::{ProjectId, ProjectSpec};

use super::{Desk, DeskError, check_requester};

/// One contributor's record on a project, as its requester sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ContributorRecord {
    pub account: Address,
    pub submitted: u32,
    pub accepted: u32,
    pub rejected: u32,
    pub gold_answered: u32,
    pub gold_right: u32,
    pub paused: Option<String>,
    /// The median time from hand-out to answer, in milliseconds (filled for the page shown).
    pub median_spent_ms: Option<u32>,
}

/// A project as its requester watches it.
#[derive(Clone, Debug)]
pub struct RequestView {
    pub spec: ProjectSpec,
    pub status: BoardStatus,
    /// Budget promised to pending judgments and leases, besides what was paid.
    pub committed: Amount,
    pub closed: bool,
    /// One page of contributors, most submissions first.
    pub contributors: Vec<ContributorRecord>,
    /// How many contributors there are in all.
    pub contributor_count: usize,
    /// Datasets published from it, newest first.
    pub publications: Vec<AssetId>,
    /// Who may review its written and marked answers.
    pub reviewers: Vec<Address>,
    /// The tag names its Label Studio export uses by default.
    pub label_studio_tags: LabelStudioTags,
}

/// A project of the requester's, listed.
#[derive(Clone, Debug)]
pub struct RequestedProject {
    pub project: ProjectId,
    pub title: String,
    /// Items still waiting for judgments.
    pub items_left: u64,
    pub closed: bool,
}

impl Desk {
    /// The projects `requester` posted, in id order.
    pub fn requested_by(&self, requester: &Address) -> Vec<RequestedProject> {
        self.projects()
            .into_iter()
            .filter_map(|project| {
                self.with_board(&project, |board| {
                    (board.requester == *requester).then(|| {
                        let listing = board.listing(requester, 0);
                        RequestedProject {
                            project,
                            title: board.spec.title.clone(),
                            items_left: listing.items_left,
                            closed: board.is_closed(),
                        }
                    })
                })
                .ok()
                .flatten()
            })
            .collect()
    }

    /// `project` as its requester watches it, with contributors `skip..skip + take` (most
    /// submissions first). Anyone else is refused. Costs the page of contributors, not the size
    /// of the project (but for the first view of a board's agreement, see [`caravan_tasks::board::Board::status`]).
    pub fn request_view(
        &self,
        project: &ProjectId,
        requester: Address,
        skip: usize,
        take: usize,
    ) -> Result<RequestView, DeskError> {
        self.with_board(project, |board| {
            check_requester(board, requester)?;
            let contributor_count = board.ranked_count();
            let records: Vec<ContributorRecord> = board
                .ranked_contributors(skip)
                .take(take)
                .map(|(account, c)| ContributorRecord {
                    account: *account,
                    submitted: c.submitted,
                    accepted: c.accepted,
                    rejected: c.rejected,
                    gold_answered: c.gold_seen + c.exam_answered,
                    gold_right: c.gold_correct + c.exam_correct,
                    paused: c.paused.as_ref().map(ToString::to_string),
                    median_spent_ms: c.median_spent_ms(),
                })
                .collect();
            Ok(RequestView {
                spec: board.spec.clone(),
                status: board.status(),
                committed: board.committed(),
                closed: board.is_closed(),
                contributors: records,
                contributor_count,
                publications: board
                    .publications()
                    .iter()
                    .rev()
                    .map(|(asset, _)| AssetId(*asset))
                    .collect(),
                reviewers: board.reviewers(),
                label_studio_tags: board.label_studio_tags().clone(),
            })
        })?
    }
}

//! What a requester watches of their own projects: progress, money, agreement, every
//! contributor's record (in pages), and the datasets published so far.

use caravan_core::{Address, Amount, AssetId};
use caravan_tasks::board::BoardStatus;
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
    /// submissions first). Anyone else is refused.
    pub fn request_view(
        &self,
        project: &ProjectId,
        requester: Address,
        skip: usize,
        take: usize,
    ) -> Result<RequestView, DeskError> {
        self.with_board(project, |board| {
            check_requester(board, requester)?;
            let mut records: Vec<ContributorRecord> = board
                .contributors()
                .filter(|(_, c)| c.submitted > 0 || c.paused.is_some())
                .map(|(account, c)| ContributorRecord {
                    account: *account,
                    submitted: c.submitted,
                    accepted: c.accepted,
                    rejected: c.rejected,
                    gold_answered: c.gold_seen + c.exam_answered,
                    gold_right: c.gold_correct + c.exam_correct,
                    paused: c.paused.as_ref().map(ToString::to_string),
                })
                .collect();
            records.sort_by_key(|r| (std::cmp::Reverse(r.submitted), r.account));
            let contributor_count = records.len();
            Ok(RequestView {
                spec: board.spec.clone(),
                status: board.status(),
                committed: board.committed(),
                closed: board.is_closed(),
                contributors: records.into_iter().skip(skip).take(take).collect(),
                contributor_count,
                publications: board
                    .publications()
                    .iter()
                    .rev()
                    .map(|(asset, _)| AssetId(*asset))
                    .collect(),
            })
        })?
    }
}

//! What a requester watches of their own projects: progress, money, agreement, every
//! contributor's record (in pages), and the datasets published so far.

use std::collections::BTreeMap;

use caravan_core::{Address, Amount, AssetId};
use caravan_tasks::board::{Board, BoardStatus};
use caravan_tasks::label_studio::LabelStudioTags;
use caravan_tasks::project::{ProjectId, ProjectSpec};

use super::{Desk, DeskError, check_requester};

/// How long a project's measured agreement is shown before it is measured again while work
/// goes on: measuring walks every item (about a third of a second at 300,000 judgments), a
/// count does not.
pub const AGREEMENT_FRESH_MS: u64 = 30_000;

/// A board's agreement measures, as of a moment.
#[derive(Clone, Debug, PartialEq)]
pub struct MeasuredAgreement {
    pub fleiss_kappa: Option<f64>,
    pub krippendorff_alpha: Option<f64>,
    pub models: BTreeMap<String, (u64, u64)>,
    /// The board's event count when measured: unchanged, the measures still hold exactly.
    pub events: u64,
    pub measured_ms: u64,
}

impl MeasuredAgreement {
    fn of(board: &Board, now_ms: u64) -> MeasuredAgreement {
        let (fleiss_kappa, krippendorff_alpha) = board.agreement();
        MeasuredAgreement {
            fleiss_kappa,
            krippendorff_alpha,
            models: board.model_agreements(),
            events: board.event_count(),
            measured_ms: now_ms,
        }
    }
}

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
    /// When the agreement in `status` was measured (see [`AGREEMENT_FRESH_MS`]).
    pub agreement_measured_ms: u64,
    /// Whether the board changed since.
    pub agreement_exact: bool,
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
    /// submissions first). Anyone else is refused. Agreement is measured again only when the
    /// board changed and the last measure is older than [`AGREEMENT_FRESH_MS`].
    pub fn request_view(
        &self,
        project: &ProjectId,
        requester: Address,
        skip: usize,
        take: usize,
    ) -> Result<RequestView, DeskError> {
        let now_ms = (self.clock)();
        self.with_board(project, |board| {
            check_requester(board, requester)?;
            let agreement = {
                let mut kept = self
                    .agreements
                    .lock()
                    .expect("the agreement cache's lock is never poisoned");
                let fresh = kept.get(project).filter(|measured| {
                    measured.events == board.event_count()
                        || now_ms.saturating_sub(measured.measured_ms) < AGREEMENT_FRESH_MS
                });
                match fresh {
                    Some(measured) => measured.clone(),
                    None => {
                        let measured = MeasuredAgreement::of(board, now_ms);
                        kept.insert(*project, measured.clone());
                        measured
                    }
                }
            };
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
            let mut status = board.counts();
            status.fleiss_kappa = agreement.fleiss_kappa;
            status.krippendorff_alpha = agreement.krippendorff_alpha;
            status.model_agreement = agreement.models.clone();
            Ok(RequestView {
                spec: board.spec.clone(),
                status,
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
                agreement_measured_ms: agreement.measured_ms,
                agreement_exact: agreement.events == board.event_count(),
                label_studio_tags: board.label_studio_tags().clone(),
            })
        })?
    }
}

//! Publishing a project's resolved work as a dataset asset, and reading a publication back as
//! it was (for exports and training), checked against its recorded item root.
//!
//! The desk's boards forget settled judgments ([`Memory::OpenWork`]), so both replay the
//! project's records into a board that keeps every one. The replay reads the log a page at a
//! time, each page its own short read, so calls and submissions go on meanwhile; publishing
//! replays most of the records before it locks the project's board, and only those that
//! arrived meanwhile with it locked, so the project's contributors wait for the tail alone.

use caravan_core::{Address, AssetId, Event, Hash32, Lane, Licence, Ppm};
use caravan_tasks::board::{Board, Memory, TaskEvent};
use caravan_tasks::dataset::Dataset;
use caravan_tasks::project::ProjectId;

use super::{Changing, Desk, DeskError, READ_PAGE, check_requester, work_event};

impl Desk {
    /// Publishes the project's resolved work as a dataset asset owned by the requester, and
    /// records the publication on the board so the same rows can be exported later.
    pub fn publish(
        &self,
        project: &ProjectId,
        requester: Address,
        name: String,
        licence: Licence,
        curator_share: Ppm,
    ) -> Result<(AssetId, Dataset), DeskError> {
        // A project's requester never changes: checked before the replay, which costs.
        self.with_board(project, |board| check_requester(board, requester))??;
        let mut replay = Replay::default();
        self.replay_more(project, &mut replay, None)?;
        let (hold, board) = self.board_to_change(project)?;
        let mut guard = Changing::lock(hold, &board);
        // The board is locked, so no record of the project lands while the replay reads the
        // rest; reads queue behind the records already handed to the log's writer.
        self.replay_more(project, &mut replay, None)?;
        let every_judgment = replay.board.ok_or(DeskError::UnknownProject(*project))?;
        let replayed = (
            every_judgment.judgment_count(),
            every_judgment.status().resolved,
        );
        let held = (guard.judgment_count(), guard.status().resolved);
        if replayed != held {
            return Err(DeskError::CorruptRecord {
                seq: 0,
                why: format!(
                    "replaying project {project} gives {} judgments and {} resolved items; its board holds {} and {}",
                    replayed.0, replayed.1, held.0, held.1
                ),
            });
        }
        let dataset = Dataset::build(&every_judgment)?;
        let manifest = dataset.manifest(name, requester, licence, curator_share)?;
        let id = manifest.id();
        self.journal
            .read(|j| j.economy().lineage().check(&manifest))
            .map_err(DeskError::Publish)?;
        let record = TaskEvent::Published {
            asset: id.0,
            item_root: dataset.item_root,
        };
        guard.apply(&record);
        let events = vec![
            Event::AssetRegistered(manifest),
            work_event(&guard, &record, Vec::new()),
        ];
        self.commit(guard, events)?;
        Ok((id, dataset))
    }

    /// [`Desk::published`] for the project's requester, who alone may export it.
    pub fn published_for(
        &self,
        project: &ProjectId,
        requester: Address,
    ) -> Result<(AssetId, Dataset, Board), DeskError> {
        self.with_board(project, |board| check_requester(board, requester))??;
        self.published(project)
    }

    /// The rows of the project's latest publication, rebuilt by replaying the project's records
    /// up to it, with the dataset asset's id; the rows' root is checked against the recorded one.
    pub fn published(&self, project: &ProjectId) -> Result<(AssetId, Dataset, Board), DeskError> {
        let (asset, _) = self
            .with_board(project, |b| b.publications().last().copied())?
            .ok_or(DeskError::NotPublished(*project))?;
        let (dataset, board) = self.publication(project, &AssetId(asset))?;
        Ok((AssetId(asset), dataset, board))
    }

    /// Any published dataset by its asset id (a project may publish several): its rows and the
    /// board as it was at publication, checked against the recorded item root.
    pub fn dataset(&self, asset: &AssetId) -> Result<(ProjectId, Dataset, Board), DeskError> {
        let project = self
            .projects()
            .into_iter()
            .find(|project| {
                self.with_board(project, |b| {
                    b.publications().iter().any(|(a, _)| *a == asset.0)
                })
                .unwrap_or(false)
            })
            .ok_or(DeskError::UnknownDataset(*asset))?;
        let (dataset, board) = self.publication(&project, asset)?;
        Ok((project, dataset, board))
    }

    fn publication(
        &self,
        project: &ProjectId,
        asset: &AssetId,
    ) -> Result<(Dataset, Board), DeskError> {
        let item_root = self
            .with_board(project, |b| {
                b.publications()
                    .iter()
                    .find(|(a, _)| *a == asset.0)
                    .map(|(_, root)| *root)
            })?
            .ok_or(DeskError::UnknownDataset(*asset))?;
        let board = self.board_at_publication(project, &asset.0)?;
        let dataset = Dataset::build(&board)?;
        if dataset.item_root != item_root {
            return Err(DeskError::CorruptRecord {
                seq: 0,
                why: format!(
                    "replaying project {project} to its publication gives item root {}, not the published {item_root}",
                    dataset.item_root
                ),
            });
        }
        Ok((dataset, board))
    }
}

/// One project's records replayed so far: the board they built and where the log goes on.
#[derive(Default)]
struct Replay {
    board: Option<Board>,
    next: u64,
}

impl Desk {
    /// The project's board as it stands, with every judgment (the desk's own boards forget
    /// settled ones), replayed from the log: what reports over all of a project's work read.
    pub fn board_with_every_judgment(&self, project: &ProjectId) -> Result<Board, DeskError> {
        let mut replay = Replay::default();
        self.replay_more(project, &mut replay, None)?;
        replay.board.ok_or(DeskError::UnknownProject(*project))
    }

    /// The project's board with every judgment as it stood when asset `published` was
    /// published from it, replayed from the log.
    fn board_at_publication(
        &self,
        project: &ProjectId,
        published: &Hash32,
    ) -> Result<Board, DeskError> {
        let mut replay = Replay::default();
        if !self.replay_more(project, &mut replay, Some(published))? {
            return Err(DeskError::NotPublished(*project));
        }
        Ok(replay
            .board
            .expect("a publication follows its project's creation"))
    }

    /// Applies the project's records from where `replay` stopped to the end of the log, or up
    /// to and including the publication of asset `published`: says whether it reached that.
    fn replay_more(
        &self,
        project: &ProjectId,
        replay: &mut Replay,
        published: Option<&Hash32>,
    ) -> Result<bool, DeskError> {
        loop {
            let page = self
                .journal
                .read(|j| j.read_lane(Lane::Work, replay.next, READ_PAGE))?;
            let Some(last) = page.last() else {
                return Ok(false);
            };
            for row in &page {
                let corrupt = |why: String| DeskError::CorruptRecord { seq: row.seq, why };
                let event = Event::decode(&row.body).map_err(|e| corrupt(e.to_string()))?;
                let Event::WorkRecorded {
                    project: of,
                    record,
                    ..
                } = event
                else {
                    continue;
                };
                if ProjectId(of) != *project {
                    continue;
                }
                let task: TaskEvent =
                    serde_json::from_str(&record).map_err(|e| corrupt(e.to_string()))?;
                if let Some(created) = Board::created(&task) {
                    replay.board = Some(created.with_memory(Memory::Everything));
                    continue;
                }
                let board = replay
                    .board
                    .as_mut()
                    .ok_or_else(|| corrupt("a record before its project was created".into()))?;
                board.apply(&task);
                if matches!((&task, published), (TaskEvent::Published { asset, .. }, Some(wanted)) if asset == wanted)
                {
                    return Ok(true);
                }
            }
            replay.next = last.seq + 1;
        }
    }
}

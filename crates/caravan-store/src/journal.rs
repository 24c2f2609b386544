//! The economy kept in step with its durable log.
//!
//! Opening a journal replays the stored log into a fresh [`Economy`], checking every hash and
//! rule on the way. Submitting events validates and applies them in memory, seals them, and
//! acknowledges only after the store has made them durable. If a write fails, the journal replays
//! the store again so memory never runs ahead of what is on disk.

use std::time::{SystemTime, UNIX_EPOCH};

use caravan_core::epoch::EpochBundle;
use caravan_core::{Economy, Envelope, EpochOutcome, Event, EventError, ReplayError};

use crate::backend::{BundleRow, EventRow, StoreError};
use crate::location::Location;
use crate::log::{AppendTicket, EventLog};

/// How many events a replay reads per round trip.
const REPLAY_PAGE: usize = 50_000;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored log does not replay: {0}")]
    Replay(#[from] ReplayError),
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("epoch bundle {epoch}: {why}")]
    Bundle { epoch: u64, why: String },
}

/// The outcome of a submission: accepted events are durable, refused ones changed nothing.
#[derive(Debug, Default)]
pub struct Submitted {
    pub accepted: Vec<Envelope>,
    /// The index in the submitted list of each refused event, and why it was refused.
    pub refused: Vec<(usize, EventError)>,
}

pub struct Journal {
    location: Location,
    log: EventLog,
    economy: Economy,
}

impl Journal {
    /// Opens the store at `location` and replays it; `progress(done, total)` is called as events replay.
    pub fn open(
        location: Location,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Journal, JournalError> {
        let log = EventLog::open(&location)?;
        let economy = replay_all(&log, progress)?;
        Ok(Journal {
            location,
            log,
            economy,
        })
    }

    pub fn economy(&self) -> &Economy {
        &self.economy
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Validates, applies and durably stores `events`, stamped with the current time.
    pub fn submit(&mut self, events: Vec<Event>) -> Result<Submitted, JournalError> {
        let (submitted, ticket) = self.submit_pipelined(events, now_ms());
        self.settle(ticket)?;
        Ok(submitted)
    }

    /// Validates and applies `events` in memory and queues them for the store without waiting.
    /// The caller must [`Journal::settle`] the ticket before telling anyone they are recorded;
    /// queueing several submissions before settling lets them share a group commit.
    pub fn submit_pipelined(
        &mut self,
        events: Vec<Event>,
        at_ms: u64,
    ) -> (Submitted, AppendTicket) {
        let mut submitted = Submitted::default();
        let mut rows = Vec::with_capacity(events.len());
        for (index, event) in events.into_iter().enumerate() {
            match self.economy.append(event, at_ms) {
                Ok((envelope, body)) => {
                    rows.push(EventRow {
                        seq: envelope.seq,
                        at_ms,
                        hash: envelope.hash,
                        body,
                    });
                    submitted.accepted.push(envelope);
                }
                Err(error) => submitted.refused.push((index, error)),
            }
        }
        (submitted, self.log.append(rows, Vec::new()))
    }

    /// Waits for a queued submission to be durable. On a store failure the journal reopens the
    /// store and replays it, so the in-memory state matches what was really written.
    pub fn settle(&mut self, ticket: AppendTicket) -> Result<(), JournalError> {
        match ticket.wait() {
            Ok(()) => Ok(()),
            Err(error) => {
                self.reload()?;
                Err(error.into())
            }
        }
    }

    fn reload(&mut self) -> Result<(), JournalError> {
        self.log = EventLog::open(&self.location)?;
        self.economy = replay_all(&self.log, &mut |_, _| {})?;
        Ok(())
    }

    /// Closes the epoch and stores its `EpochClosed` event and bundle in one transaction.
    pub fn close_epoch(&mut self) -> Result<(EpochOutcome, EpochBundle), JournalError> {
        let at_ms = now_ms();
        let (outcome, envelope, body) = self.economy.close_epoch(at_ms)?;
        let bundle = self
            .economy
            .epoch_bundle(&outcome, envelope.seq, envelope.hash, at_ms);
        let json = serde_json::to_vec(&bundle).expect("bundles always serialise");
        let row = EventRow {
            seq: envelope.seq,
            at_ms,
            hash: envelope.hash,
            body,
        };
        let ticket = self.log.append(
            vec![row],
            vec![BundleRow {
                epoch: outcome.epoch,
                root: outcome.root,
                json,
            }],
        );
        self.settle(ticket)?;
        Ok((outcome, bundle))
    }

    /// The stored bundle of `epoch`, if that epoch is closed.
    pub fn bundle(&self, epoch: u64) -> Result<Option<EpochBundle>, JournalError> {
        let Some(json) = self.log.bundle(epoch)? else {
            return Ok(None);
        };
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(|e| JournalError::Bundle {
                epoch,
                why: e.to_string(),
            })
    }
}

fn replay_all(log: &EventLog, progress: &mut dyn FnMut(u64, u64)) -> Result<Economy, JournalError> {
    let total = log.event_count()?;
    let mut economy = Economy::default();
    let mut next = 0u64;
    progress(0, total);
    loop {
        let page = log.read(next, REPLAY_PAGE)?;
        let Some(last) = page.last() else { break };
        next = last.seq + 1;
        for row in &page {
            economy.replay(row.seq, row.at_ms, &row.hash, &row.body)?;
        }
        progress(next, total);
    }
    Ok(economy)
}

/// Milliseconds since the Unix epoch; a clock before 1970 reads as 0.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

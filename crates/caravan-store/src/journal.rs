//! The economy kept in step with its durable log.
//!
//! Opening a journal starts from the latest snapshot (if one decodes and matches its hash) and
//! replays the events after it, checking every hash and rule on the way; [`Journal::open_verifying`]
//! ignores snapshots, replays everything and checks each snapshot against the replay. Submitting
//! events validates and applies them in memory, seals them, and acknowledges only after the store
//! has made them durable. If a write fails, the journal reloads from the store so memory never
//! runs ahead of what is on disk. Each epoch close stores its bundle and a snapshot in the same
//! transaction as its event.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use caravan_core::epoch::EpochBundle;
use caravan_core::{
    Address, Economy, Envelope, EpochOutcome, Event, EventError, Hash32, Lane, ReplayError,
    Spending, keccak256,
};

use crate::backend::{
    AnswerRow, Attachments, BundleRow, CHARGED_REQUESTS_KEPT_MS, ChargedRequest, EventRow,
    SessionRow, SignInOp, SnapshotRow, StoreError,
};
use crate::location::Location;
use crate::log::{AppendTicket, CommitStats, EventLog, Reply, SpendingSum};

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
    #[error("epoch {0} is closed and its bundle is being stored; ask again in a moment")]
    BundlePending(u64),
    #[error(
        "the snapshot at event {seq} does not match a replay of the log ({why}); it is only a cache — delete it and reopen"
    )]
    SnapshotMismatch { seq: u64, why: String },
    /// The log holds fewer events than what the store kept beside it has seen: its end was lost
    /// (a truncated file, a restore from an older copy, rows deleted by hand).
    #[error(
        "the event log is truncated: it holds {events} events, but {witness}. Restore the store from a backup taken after that point; caravan will not serve a log that lost events"
    )]
    Truncated { events: u64, witness: String },
    /// Stored events the latest snapshot covers (and so a plain open would not replay) do not
    /// chain up to it.
    #[error(
        "the stored events before the snapshot at event {snapshot} are damaged: {why}. `caravan log verify` replays the whole log and names every fault; restore the store from a backup"
    )]
    Damaged { snapshot: u64, why: String },
}

/// The outcome of a submission: accepted events are durable, refused ones changed nothing.
#[derive(Debug, Default)]
pub struct Submitted {
    pub accepted: Vec<Envelope>,
    /// The index in the submitted list of each refused event, and why it was refused.
    pub refused: Vec<(usize, EventError)>,
}

/// Where an open started from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// The snapshot the state was restored from (its event count), if any.
    pub snapshot_seq: Option<u64>,
    /// Why the latest snapshot was passed over for a full replay, if it was.
    pub snapshot_skipped: Option<String>,
    /// Events replayed on top of the snapshot (or from the start).
    pub replayed: u64,
    /// Snapshots checked against a full replay (by [`Journal::open_verifying`]).
    pub snapshots_verified: usize,
    /// Epochs whose bundle the store lacked (the node stopped before storing it) and which the
    /// open made again from the replayed close.
    pub bundles_remade: Vec<u64>,
}

/// The idempotency request a keyed call was charged under; `None` for every other event.
fn keyed_request(event: &Event) -> Option<Hash32> {
    match event {
        Event::CallMetered(call) => call.request,
        _ => None,
    }
}

/// How many events [`Journal::for_each_in_lane`] reads at a time.
pub const EVENT_PAGE: usize = 20_000;

pub struct Journal {
    location: Location,
    log: EventLog,
    economy: Economy,
    report: OpenReport,
    /// How many times the journal reloaded after a failed write; lets concurrent waiters on
    /// one failed group reload once, not once each.
    generation: u64,
}

impl Journal {
    /// Opens the store at `location` from its latest usable snapshot and replays the rest;
    /// `progress(done, total)` is called as events replay.
    pub fn open(
        location: Location,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Journal, JournalError> {
        let log = EventLog::open(&location)?;
        let (economy, report) = restore(&log, progress, CoveredEvents::Check)?;
        count_uncounted_spending(&log, progress)?;
        let journal = Journal::opened(location, log, economy, report);
        journal.index_unindexed_keyed_calls()?;
        Ok(journal)
    }

    /// Indexes the last day's keyed calls stored before the charged-request index was kept (a
    /// store made by an older caravan), so that from here on the index holds every keyed call
    /// of the day. A store whose index already covers the day reads nothing.
    fn index_unindexed_keyed_calls(&self) -> Result<(), JournalError> {
        let indexed_from = self.log.charged_requests_from()?;
        let day_starts = self.first_seq_at(now_ms().saturating_sub(CHARGED_REQUESTS_KEPT_MS))?;
        if indexed_from <= day_starts {
            return Ok(());
        }
        let mut charged = Vec::new();
        self.for_each_in_lane(Lane::KeyedCall, day_starts, |row| {
            if row.seq < indexed_from
                && let Ok(event) = Event::decode(&row.body)
                && let Some(request) = keyed_request(&event)
            {
                charged.push(ChargedRequest {
                    request,
                    at_ms: row.at_ms,
                });
            }
            Ok::<_, JournalError>(())
        })?;
        let attachments = Attachments {
            charged,
            charged_requests_from: Some(day_starts),
            ..Attachments::default()
        };
        Ok(self.log.append(Vec::new(), attachments).wait()?)
    }

    /// Opens the store at `location` only to read, as [`Journal::open`] does, beside a node that
    /// may be serving from it: no lock is taken and nothing can be written (see
    /// [`EventLog::open_reader`]). What it shows is the store as of its opening.
    pub fn open_reader(
        location: Location,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Journal, JournalError> {
        let log = EventLog::open_reader(&location)?;
        let (economy, report) = restore(&log, progress, CoveredEvents::Check)?;
        Ok(Journal::opened(location, log, economy, report))
    }

    /// Opens the store only to read (as [`Journal::open_reader`] does) by replaying every event
    /// from the start, ignoring snapshots, and checks that each kept snapshot equals the state
    /// the replay reaches at its point.
    pub fn open_verifying(
        location: Location,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Journal, JournalError> {
        let log = EventLog::open_reader(&location)?;
        let snapshots = log.snapshots()?;
        let mut report = OpenReport::default();
        let mut checkpoints = snapshots.iter().peekable();
        let economy = replay(
            &log,
            Economy::default(),
            progress,
            &mut |economy| {
                // Called at every event count from zero, so each snapshot is met exactly at its
                // seq.
                while let Some(snapshot) = checkpoints.next_if(|s| s.seq == economy.head().next_seq)
                {
                    check_snapshot(snapshot, economy)?;
                    report.snapshots_verified += 1;
                }
                Ok(())
            },
            &mut |_, _, _| Ok(()),
        )?;
        if let Some(beyond) = checkpoints.next() {
            return Err(JournalError::SnapshotMismatch {
                seq: beyond.seq,
                why: format!("the log holds only {} events", economy.head().next_seq),
            });
        }
        report.replayed = economy.head().next_seq;
        Ok(Journal::opened(location, log, economy, report))
    }

    fn opened(location: Location, log: EventLog, economy: Economy, report: OpenReport) -> Journal {
        Journal {
            location,
            log,
            economy,
            report,
            generation: 0,
        }
    }

    pub fn economy(&self) -> &Economy {
        &self.economy
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Up to `limit` stored events from `seq` on, for layers that fold the log themselves (the
    /// data-work boards read their records this way).
    pub fn read_events(&self, from: u64, limit: usize) -> Result<Vec<EventRow>, JournalError> {
        Ok(self.log.read(from, limit)?)
    }

    /// Calls `visit` with every stored event filed in `lane` from `from` on, in order, reading
    /// [`EVENT_PAGE`] events at a time: it costs what the lane holds rather than what the log
    /// holds, and memory stays bounded. Events the store kept from before it filed events in
    /// lanes are all visited: `visit` tells kinds apart itself. Stops at the first error
    /// `visit` returns.
    pub fn for_each_in_lane<E: From<JournalError>>(
        &self,
        lane: Lane,
        from: u64,
        mut visit: impl FnMut(&EventRow) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut next = from;
        loop {
            let page = self.read_lane(lane, next, EVENT_PAGE)?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            next = last.seq + 1;
            page.iter().try_for_each(&mut visit)?;
        }
    }

    /// Up to `limit` stored events from `from` on that hold every one filed in `lane`, in order
    /// (see [`Journal::for_each_in_lane`]).
    pub fn read_lane(
        &self,
        lane: Lane,
        from: u64,
        limit: usize,
    ) -> Result<Vec<EventRow>, JournalError> {
        Ok(self.log.read_lane(lane, from, limit)?)
    }

    /// The first stored event stamped at or after `at_ms` (the event count when there is none),
    /// found by bisection over the log in `log2(events)` reads. Stamps follow the order of
    /// submission, so this is where the events of the last `now - at_ms` milliseconds begin.
    pub fn first_seq_at(&self, at_ms: u64) -> Result<u64, JournalError> {
        let (mut low, mut high) = (0, self.economy.head().next_seq);
        while low < high {
            let middle = low + (high - low) / 2;
            let stamped = self.read_events(middle, 1)?.first().map(|row| row.at_ms);
            match stamped {
                Some(stamp) if stamp < at_ms => low = middle + 1,
                _ => high = middle,
            }
        }
        Ok(low)
    }

    /// What `payer` spent from UTC day `from_day` on, per day, asset and token, from the spend
    /// table kept beside the log and what the writer counted since it last wrote to it: it
    /// costs what the payer's rows hold, not what the log holds.
    pub fn spending(&self, payer: Address, from_day: u64) -> Reply<Vec<Spending>> {
        self.log.spending(payer, from_day)
    }

    /// How the last open (or reload) reached the current state.
    pub fn open_report(&self) -> &OpenReport {
        &self.report
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
        self.submit_pipelined_within(events, at_ms, Duration::ZERO)
    }

    /// [`Journal::submit_pipelined`], with the store's commit starting within `window` rather
    /// than at once (see [`EventLog::append_within`]): for events whose submitter does not wait
    /// for their durability, so that a stream of them shares syncs.
    pub fn submit_pipelined_within(
        &mut self,
        events: Vec<Event>,
        at_ms: u64,
        window: Duration,
    ) -> (Submitted, AppendTicket) {
        // A writer stopped by a failure the last reload could not get past (the disk was still
        // full, the server still down) gets another chance before anything is applied, so a
        // submission after the store recovers is not refused for the failure before it. If
        // the store is still failing, the append below fails and says why.
        if !self.log.is_reader() && self.log.writer_stopped() {
            let _ = self.reload();
        }
        let mut submitted = Submitted::default();
        let mut rows = Vec::with_capacity(events.len());
        let mut spending = Vec::new();
        let mut charged = Vec::new();
        for (index, event) in events.into_iter().enumerate() {
            let lane = event.lane();
            let request = keyed_request(&event);
            // Added before the event moves into the economy, taken back if it is refused.
            let spent_from = spending.len();
            spending.extend(event.spending(at_ms));
            match self.economy.append(event, at_ms) {
                Ok((envelope, body)) => {
                    charged.extend(request.map(|request| ChargedRequest { request, at_ms }));
                    rows.push(EventRow {
                        seq: envelope.seq,
                        at_ms,
                        hash: envelope.hash,
                        body,
                        lane,
                    });
                    submitted.accepted.push(envelope);
                }
                Err(error) => {
                    spending.truncate(spent_from);
                    submitted.refused.push((index, error));
                }
            }
        }
        let attachments = Attachments {
            spending,
            charged,
            ..Attachments::default()
        };
        (submitted, self.log.append_within(rows, attachments, window))
    }

    /// Waits for a queued submission to be durable. On a store failure the journal reopens the
    /// store and reloads it, so the in-memory state matches what was really written.
    pub fn settle(&mut self, ticket: AppendTicket) -> Result<(), JournalError> {
        match ticket.wait() {
            Ok(()) => Ok(()),
            Err(error) => {
                self.reload()?;
                Err(error.into())
            }
        }
    }

    /// Keeps `answer` beside the log (see [`AnswerRow`]), in a commit that starts within
    /// `window`. Nobody waits for it: an answer lost to a crash or a failed commit only means a
    /// retry is told its request was served rather than given the answer again.
    pub fn keep_answer(&self, answer: AnswerRow, window: Duration) {
        drop(self.log.keep_answer(answer, window));
    }

    /// The answer kept under `key`, unless it expired by `now_ms`.
    pub fn answer(&self, key: Hash32, now_ms: u64) -> Result<Option<AnswerRow>, JournalError> {
        Ok(self.log.answer(key, now_ms)?)
    }

    /// When `request` was last charged under an idempotency key, if at or after `since_ms`:
    /// one point read of an index written with each charge, complete for the last
    /// [`CHARGED_REQUESTS_KEPT_MS`] once the journal is open for writing. A charge submitted
    /// before the question is seen, durable or not yet.
    pub fn charged_at(&self, request: Hash32, since_ms: u64) -> Result<Option<u64>, JournalError> {
        Ok(self.log.charged_at(request, since_ms)?)
    }

    /// Queues `ops` on the sign-in tables beside the log (see [`crate::Backend::sign_in`]);
    /// wait on the reply (outside any lock) for whether each succeeded, once durable.
    pub fn sign_in(&self, ops: Vec<SignInOp>, now_ms: u64) -> Reply<Vec<bool>> {
        self.log.sign_in(ops, now_ms)
    }

    /// Asks for the open session whose id hashes to `id_hash` (see [`crate::Backend::session`]).
    pub fn session(&self, id_hash: Hash32, now_ms: u64) -> Reply<Option<SessionRow>> {
        self.log.session(id_hash, now_ms)
    }

    /// Group commits since the store was (re)opened: transactions and the events they carried.
    pub fn commit_stats(&self) -> CommitStats {
        self.log.commit_stats()
    }

    /// The number of reloads so far.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Reopens the store and rebuilds the state from it, dropping anything applied in memory
    /// that did not reach the disk.
    pub fn reload(&mut self) -> Result<(), JournalError> {
        self.generation += 1;
        self.log.reopen(&self.location)?;
        (self.economy, self.report) = restore(&self.log, &mut |_, _| {}, CoveredEvents::Trust)?;
        if !self.log.is_reader() {
            count_uncounted_spending(&self.log, &mut |_, _| {})?;
        }
        Ok(())
    }

    /// Closes the epoch and stores its `EpochClosed` event, then its bundle and a snapshot of
    /// the state after it (see [`Journal::close_epoch_pipelined`]).
    pub fn close_epoch(&mut self) -> Result<(EpochOutcome, EpochBundle), JournalError> {
        let closed = self.close_epoch_pipelined()?;
        self.settle(closed.event)?;
        let attached = self.attach_close(closed.attachments.write(&closed.bundle));
        self.settle(attached)?;
        Ok((closed.outcome, closed.bundle))
    }

    /// Closes the epoch in memory and queues its `EpochClosed` event — alone, so the commit that
    /// carries it is as quick as any other — with the state after it encoded for a snapshot.
    /// The bundle's JSON is made and stored after that ([`ClosedEpoch::attachments`],
    /// [`Journal::attach_close`]), without holding up anyone; if the node stops before the
    /// bundle is stored, the next open makes it again from the replayed close (see
    /// [`OpenReport::bundles_remade`]). Settle the event's ticket and the attachments' before
    /// telling anyone the epoch is closed.
    pub fn close_epoch_pipelined(&mut self) -> Result<ClosedEpoch, JournalError> {
        let at_ms = now_ms();
        let (outcome, envelope, body) = self.economy.close_epoch(at_ms)?;
        let bundle = self
            .economy
            .epoch_bundle(&outcome, envelope.seq, envelope.hash, at_ms);
        let state = self.economy.encode_state();
        let snapshot = SnapshotRow {
            seq: self.economy.head().next_seq,
            state_hash: keccak256(&state),
            state,
        };
        let row = EventRow {
            seq: envelope.seq,
            at_ms,
            hash: envelope.hash,
            body,
            lane: Lane::Bulk,
        };
        let event = self.log.append(vec![row], Attachments::default());
        Ok(ClosedEpoch {
            outcome,
            bundle,
            event,
            attachments: CloseAttachments { snapshot },
        })
    }

    /// Queues a close's bundle and snapshot for the store, after its event.
    pub fn attach_close(&self, attachments: Attachments) -> AppendTicket {
        self.log.append(Vec::new(), attachments)
    }

    /// The stored bundle of `epoch`: `None` when that epoch is not closed, and
    /// [`JournalError::BundlePending`] when it is closed but its bundle is not stored yet.
    pub fn bundle(&self, epoch: u64) -> Result<Option<EpochBundle>, JournalError> {
        self.request_bundle(epoch).read()
    }

    /// Asks the store for `epoch`'s bundle without waiting for it (see
    /// [`SharedJournal::bundle`]).
    pub fn request_bundle(&self, epoch: u64) -> BundleRequest {
        BundleRequest {
            epoch,
            closed: epoch >= 1 && self.economy.epochs().len() as u64 >= epoch,
            reply: self.log.bundle_later(epoch),
        }
    }
}

/// A bundle asked of the store, read when its answer comes.
pub struct BundleRequest {
    epoch: u64,
    /// Whether the economy had closed the epoch when it was asked for.
    closed: bool,
    reply: crate::Reply<Option<Vec<u8>>>,
}

impl BundleRequest {
    /// Waits for the store's answer and parses it (see [`Journal::bundle`]).
    pub fn read(self) -> Result<Option<EpochBundle>, JournalError> {
        let epoch = self.epoch;
        self.json()?
            .map(|json| parse_bundle(epoch, &json))
            .transpose()
    }

    /// Waits for the store's answer and returns the bundle's JSON as stored, unparsed: what
    /// anyone downloads to re-check the epoch.
    pub fn json(self) -> Result<Option<Vec<u8>>, JournalError> {
        match self.reply.wait()? {
            Some(json) => Ok(Some(json)),
            None if self.closed => Err(JournalError::BundlePending(self.epoch)),
            None => Ok(None),
        }
    }
}

/// A stored bundle's JSON read back.
fn parse_bundle(epoch: u64, json: &[u8]) -> Result<EpochBundle, JournalError> {
    serde_json::from_slice(json).map_err(|e| JournalError::Bundle {
        epoch,
        why: e.to_string(),
    })
}

/// An epoch closed in memory whose event is queued for the store; its bundle and snapshot are
/// still to be stored.
pub struct ClosedEpoch {
    pub outcome: EpochOutcome,
    pub bundle: EpochBundle,
    /// The commit of the `EpochClosed` event.
    pub event: AppendTicket,
    pub attachments: CloseAttachments,
}

/// What a close stores beside its event: the snapshot made with it, and the bundle's JSON.
pub struct CloseAttachments {
    snapshot: SnapshotRow,
}

impl CloseAttachments {
    /// The bundle's JSON (made here, the slow part, so do it without holding the journal) and
    /// the snapshot, ready for [`Journal::attach_close`].
    pub fn write(self, bundle: &EpochBundle) -> Attachments {
        Attachments {
            bundles: vec![bundle_row(bundle)],
            snapshots: vec![self.snapshot],
            ..Attachments::default()
        }
    }
}

fn bundle_row(bundle: &EpochBundle) -> BundleRow {
    BundleRow {
        epoch: bundle.epoch,
        root: bundle.root,
        json: serde_json::to_vec(bundle).expect("bundles always serialise"),
    }
}

/// Whether an open checks the stored events its snapshot covers (see [`check_covered_events`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum CoveredEvents {
    /// At an open: the store may have been damaged while no one had it open.
    Check,
    /// At a reload after a failed write: this process checked them when it opened the store.
    Trust,
}

/// The state from the latest snapshot, if it is intact, plus the events after it; a full replay
/// when it is not. A log shorter than what was stored beside it is refused (see
/// [`check_not_truncated`]), and so are covered events that do not chain up to the snapshot
/// when `covered` says to check them. A close whose bundle never reached the store (the node
/// stopped between storing the event and the bundle) gets its bundle made again from the state
/// right after the replayed close, unless the store was opened only to read.
fn restore(
    log: &EventLog,
    progress: &mut dyn FnMut(u64, u64),
    covered: CoveredEvents,
) -> Result<(Economy, OpenReport), JournalError> {
    let mut report = OpenReport::default();
    let stored = log.event_count()?;
    let mut snapshots = log.snapshots()?;
    check_not_truncated(log, stored, &snapshots)?;
    let mut start = Economy::default();
    if let Some(snapshot) = snapshots.pop() {
        match decode_snapshot(&snapshot) {
            Ok(economy) => {
                if covered == CoveredEvents::Check {
                    check_covered_events(log, economy.head(), stored, progress)?;
                }
                report.snapshot_seq = Some(snapshot.seq);
                start = economy;
            }
            Err(why) => {
                report.snapshot_skipped = Some(format!("snapshot at event {}: {why}", snapshot.seq))
            }
        }
    }
    let from = start.head().next_seq;
    let mut remade = Vec::new();
    let economy = replay(
        log,
        start,
        progress,
        &mut |_| Ok(()),
        &mut |economy, outcome, row| {
            if log.is_reader() || log.has_bundle(outcome.epoch)? {
                return Ok(());
            }
            let bundle = economy.epoch_bundle(&outcome, row.seq, row.hash, row.at_ms);
            let attachments = Attachments {
                bundles: vec![bundle_row(&bundle)],
                ..Attachments::default()
            };
            log.append(Vec::new(), attachments).wait()?;
            remade.push(outcome.epoch);
            Ok(())
        },
    )?;
    let closed = economy.epochs().len() as u64;
    if log.has_bundle(closed + 1)? {
        return Err(JournalError::Truncated {
            events: economy.head().next_seq,
            witness: format!(
                "the bundle of epoch {} is stored, and the log ends before that epoch's close",
                closed + 1
            ),
        });
    }
    report.replayed = economy.head().next_seq - from;
    report.bundles_remade = remade;
    Ok((economy, report))
}

/// Refuses a log shorter than what was stored beside it in the same transactions as its events
/// has seen: the latest snapshot, and the event up to which the spend table counts.
fn check_not_truncated(
    log: &EventLog,
    stored: u64,
    snapshots: &[SnapshotRow],
) -> Result<(), JournalError> {
    let truncated = |witness: String| JournalError::Truncated {
        events: stored,
        witness,
    };
    if let Some(latest) = snapshots.last()
        && latest.seq > stored
    {
        return Err(truncated(format!(
            "a snapshot was taken after {} events",
            latest.seq
        )));
    }
    let counted = log.spending_counted_to()?;
    if counted > stored {
        return Err(truncated(format!(
            "the spend table has counted the calls of {counted} events"
        )));
    }
    Ok(())
}

/// Checks that the stored events a snapshot covers still hash, one after another, to the head
/// it recorded, so a damaged event is found at open even where no replay reads it. This reads
/// what the snapshot saves replaying but does none of the replay's work (about 1.5 µs an
/// event); `progress` is called per page, as the replay after it goes on to call it.
fn check_covered_events(
    log: &EventLog,
    recorded: caravan_core::ChainHead,
    stored: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), JournalError> {
    let damaged = |why: String| JournalError::Damaged {
        snapshot: recorded.next_seq,
        why,
    };
    let mut head = caravan_core::ChainHead::default();
    while head.next_seq < recorded.next_seq {
        let page = log.read(head.next_seq, page_of(recorded.next_seq - head.next_seq))?;
        if page.is_empty() {
            return Err(damaged(format!("event {} is missing", head.next_seq)));
        }
        for row in &page {
            head.follow(row.seq, row.at_ms, &row.hash, &row.body)
                .map_err(|error| damaged(error.to_string()))?;
        }
        progress(head.next_seq, stored);
    }
    if head.hash != recorded.hash {
        return Err(damaged(format!(
            "event {} has hash {}, the snapshot recorded {}",
            recorded.next_seq.saturating_sub(1),
            head.hash,
            recorded.hash
        )));
    }
    Ok(())
}

/// How many events to read next when `left` remain: a page, or what is left of one.
fn page_of(left: u64) -> usize {
    usize::try_from(left).map_or(REPLAY_PAGE, |left| left.min(REPLAY_PAGE))
}

/// Adds to the spend table what the events it does not count yet charged: those a crash left
/// uncounted (the writer adds spending up in memory and writes it about once a second), or a
/// whole log stored before the table existed. A writer does this at every open, before anything
/// else is appended; `progress(done, total)` is called per page read.
fn count_uncounted_spending(
    log: &EventLog,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), JournalError> {
    let (from, to) = (log.spending_counted_to()?, log.event_count()?);
    if from >= to {
        return Ok(());
    }
    let mut spending = SpendingSum::default();
    let mut next = from;
    progress(next - from, to - from);
    while next < to {
        let page = log.read(next, page_of(to - next))?;
        let Some(last) = page.last() else { break };
        next = last.seq + 1;
        for row in &page {
            let event = Event::decode(&row.body).map_err(|error| {
                StoreError::Corrupt(format!("event {} does not decode: {error}", row.seq))
            })?;
            for spent in event.spending(row.at_ms) {
                spending.add(&spent).map_err(StoreError::Corrupt)?;
            }
        }
        progress(next - from, to - from);
    }
    let attachments = Attachments {
        spending: spending.into_vec(),
        spending_counted_to: Some(to),
        ..Attachments::default()
    };
    log.append(Vec::new(), attachments).wait()?;
    Ok(())
}

fn decode_snapshot(snapshot: &SnapshotRow) -> Result<Economy, String> {
    if keccak256(&snapshot.state) != snapshot.state_hash {
        return Err("its bytes do not match its hash".into());
    }
    let economy = Economy::decode_state(&snapshot.state).map_err(|e| e.to_string())?;
    if economy.head().next_seq != snapshot.seq {
        return Err(format!(
            "it encodes the state after {} events, not {}",
            economy.head().next_seq,
            snapshot.seq
        ));
    }
    Ok(economy)
}

fn check_snapshot(snapshot: &SnapshotRow, replayed: &Economy) -> Result<(), JournalError> {
    let mismatch = |why: &str| JournalError::SnapshotMismatch {
        seq: snapshot.seq,
        why: why.into(),
    };
    if keccak256(&snapshot.state) != snapshot.state_hash {
        return Err(mismatch("its bytes do not match its stored hash"));
    }
    // A snapshot an older caravan wrote is compared with the replay in that snapshot's layout.
    let version = snapshot.state.first().copied().unwrap_or(0);
    let Some(replayed_state) = replayed.encode_state_as(version) else {
        return Err(mismatch(&format!(
            "it is in layout version {version}, which cannot hold the replayed state"
        )));
    };
    let expected = keccak256(&replayed_state);
    if snapshot.state_hash != expected {
        return Err(mismatch(&format!(
            "it has state hash {}, the replay {expected}",
            snapshot.state_hash
        )));
    }
    Ok(())
}

/// Replays the stored events after `economy`'s head into it, calling `after_each` after every
/// event (for checkpoints) and `progress(done, total)` after every page.
fn replay(
    log: &EventLog,
    mut economy: Economy,
    progress: &mut dyn FnMut(u64, u64),
    after_each: &mut dyn FnMut(&Economy) -> Result<(), JournalError>,
    on_close: &mut dyn FnMut(&Economy, EpochOutcome, &EventRow) -> Result<(), JournalError>,
) -> Result<Economy, JournalError> {
    let total = log.event_count()?;
    let mut next = economy.head().next_seq;
    progress(next, total);
    after_each(&economy)?;
    loop {
        let page = log.read(next, REPLAY_PAGE)?;
        let Some(last) = page.last() else { break };
        next = last.seq + 1;
        for row in &page {
            if let Some(outcome) = economy.replay(row.seq, row.at_ms, &row.hash, &row.body)? {
                on_close(&economy, outcome, row)?;
            }
            after_each(&economy)?;
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

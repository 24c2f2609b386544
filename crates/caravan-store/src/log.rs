//! The durable event log: one writer thread per store, group commit, acknowledgements only after
//! the transaction is durable.
//!
//! Appends are queued on a channel; the writer takes everything queued (up to
//! [`MAX_GROUP_EVENTS`]) and commits it as one transaction, then answers every request in the
//! group. Under load many appends share one sync; an idle append pays one sync alone. An append
//! may instead give a commit window ([`EventLog::append_within`]): the writer then waits, up to
//! the earliest deadline in its group, for more appends to share the sync, and is not woken by
//! each one — the way to keep a steady stream of appends nobody waits on from costing one sync
//! and one thread wake-up each. A usage report (which counts committed calls only) is answered
//! while a group is gathered; every other request ends the wait at once. If a commit fails, the
//! writer refuses every later append: the caller's in-memory state already includes the failed
//! events, so it must reopen the store and replay rather than write on top of a hole.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use caravan_core::{Address, AssetId, Hash32, Lane, Spending};
use rustc_hash::FxHashMap;

use crate::backend::{
    AnswerRow, Attachments, Backend, Commit, EventRow, SessionRow, SignInOp, SnapshotRow,
    StoreError,
};
use crate::location::Location;

/// The most events one group commit writes; more stay queued for the next transaction.
pub const MAX_GROUP_EVENTS: usize = 65_536;

enum Request {
    Append {
        events: Vec<EventRow>,
        attachments: Attachments,
        /// When the commit carrying these events must start at the latest.
        commit_by: Instant,
        reply: Sender<Result<(), StoreError>>,
    },
    Read {
        from: u64,
        limit: usize,
        /// Only this lane's events (and any stored before lanes were kept); all when `None`.
        lane: Option<Lane>,
        reply: Sender<Result<Vec<EventRow>, StoreError>>,
    },
    Count {
        reply: Sender<Result<u64, StoreError>>,
    },
    Bundle {
        epoch: u64,
        reply: Sender<Result<Option<Vec<u8>>, StoreError>>,
    },
    HasBundle {
        epoch: u64,
        reply: Sender<Result<bool, StoreError>>,
    },
    Snapshots {
        reply: Sender<Result<Vec<SnapshotRow>, StoreError>>,
    },
    Answer {
        key: Hash32,
        now_ms: u64,
        reply: Sender<Result<Option<AnswerRow>, StoreError>>,
    },
    ChargedAt {
        request: Hash32,
        since_ms: u64,
        reply: Sender<Result<Option<u64>, StoreError>>,
    },
    ChargedRequestsFrom {
        reply: Sender<Result<u64, StoreError>>,
    },
    SignIn {
        ops: Vec<SignInOp>,
        now_ms: u64,
        reply: Sender<Result<Vec<bool>, StoreError>>,
    },
    Session {
        id_hash: Hash32,
        now_ms: u64,
        reply: Sender<Result<Option<SessionRow>, StoreError>>,
    },
    SpendingCountedTo {
        reply: Sender<Result<u64, StoreError>>,
    },
    Spending {
        payer: Address,
        from_day: u64,
        reply: Sender<Result<Vec<Spending>, StoreError>>,
    },
}

/// The answer to a request the writer has queued; [`Reply::wait`] blocks until it comes. Lets a
/// caller holding a lock send under it and wait after releasing it.
#[must_use = "the request's outcome is known only once its reply has been waited on"]
pub struct Reply<T> {
    answer: Receiver<Result<T, StoreError>>,
}

impl<T> Reply<T> {
    pub fn wait(self) -> Result<T, StoreError> {
        self.answer
            .recv()
            .unwrap_or_else(|_| Err(StoreError::WriterStopped("the writer thread exited".into())))
    }
}

/// A pending append; [`AppendTicket::wait`] returns once it is durable (or failed).
#[must_use = "an append is durable only once its ticket has been waited on"]
pub struct AppendTicket {
    reply: Receiver<Result<(), StoreError>>,
}

impl AppendTicket {
    pub fn wait(self) -> Result<(), StoreError> {
        self.reply
            .recv()
            .unwrap_or_else(|_| Err(StoreError::WriterStopped("the writer thread exited".into())))
    }
}

pub struct EventLog {
    /// Opened only to read ([`EventLog::open_reader`]): reopening stays a reader.
    reader: bool,
    requests: Option<Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    stats: Arc<CommitCounters>,
}

/// What the writer has committed since the log was opened.
#[derive(Debug, Default)]
struct CommitCounters {
    transactions: AtomicU64,
    events: AtomicU64,
    /// Set once a commit failed: the writer refuses every append after it.
    stopped: std::sync::atomic::AtomicBool,
}

/// Group commits so far: how many transactions carried how many events.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    pub transactions: u64,
    pub events: u64,
}

impl EventLog {
    /// Connects to `location` (creating and migrating the store if needed) and starts the writer.
    pub fn open(location: &Location) -> Result<EventLog, StoreError> {
        EventLog::start(location.connect()?, false)
    }

    /// Connects to `location` only to read (see [`Location::connect_reader`]): beside a node
    /// serving from the same store, every append fails and every read works.
    pub fn open_reader(location: &Location) -> Result<EventLog, StoreError> {
        EventLog::start(location.connect_reader()?, true)
    }

    fn start(
        backend: Box<dyn crate::backend::Backend>,
        reader: bool,
    ) -> Result<EventLog, StoreError> {
        let (requests, queue) = channel();
        let stats = Arc::new(CommitCounters::default());
        let counters = Arc::clone(&stats);
        let writer = std::thread::Builder::new()
            .name("caravan-log-writer".into())
            .spawn(move || run_writer(backend, queue, &counters))
            .map_err(|e| StoreError::Io(format!("cannot start the log writer thread: {e}")))?;
        Ok(EventLog {
            reader,
            requests: Some(requests),
            writer: Some(writer),
            stats,
        })
    }

    /// Whether this log can no longer append: a commit failed (its writer refuses every append
    /// after it), or reopening the store after one failed. Only a reopen makes it write again.
    pub fn writer_stopped(&self) -> bool {
        self.requests.is_none() || self.stats.stopped.load(Ordering::Acquire)
    }

    /// Transactions and events committed since this log was opened.
    pub fn commit_stats(&self) -> CommitStats {
        CommitStats {
            transactions: self.stats.transactions.load(Ordering::Relaxed),
            events: self.stats.events.load(Ordering::Relaxed),
        }
    }

    fn send<T>(
        &self,
        make: impl FnOnce(Sender<Result<T, StoreError>>) -> Request,
    ) -> Receiver<Result<T, StoreError>> {
        let answer = self.send_quietly(make);
        // The writer may be waiting out a commit window: this request ends the wait.
        if let Some(writer) = &self.writer {
            writer.thread().unpark();
        }
        answer
    }

    /// Queues a request without waking a writer that is waiting out a commit window.
    fn send_quietly<T>(
        &self,
        make: impl FnOnce(Sender<Result<T, StoreError>>) -> Request,
    ) -> Receiver<Result<T, StoreError>> {
        let (reply, answer) = channel();
        // With no writer (shut down, or exited) the request and its reply sender are dropped,
        // and the answer reads as WriterStopped.
        if let Some(requests) = &self.requests {
            let _ = requests.send(make(reply));
        }
        answer
    }

    fn ask<T>(
        &self,
        make: impl FnOnce(Sender<Result<T, StoreError>>) -> Request,
    ) -> Result<T, StoreError> {
        self.send(make)
            .recv()
            .unwrap_or_else(|_| Err(StoreError::WriterStopped("the writer thread exited".into())))
    }

    /// The kept snapshots, oldest first.
    pub fn snapshots(&self) -> Result<Vec<SnapshotRow>, StoreError> {
        self.ask(|reply| Request::Snapshots { reply })
    }

    /// Queues `events` and their `attachments` for the next group commit, which starts at once.
    pub fn append(&self, events: Vec<EventRow>, attachments: Attachments) -> AppendTicket {
        self.queue_append(events, attachments, Duration::ZERO)
    }

    /// Queues `events` and their `attachments` for a group commit that starts within `window`,
    /// sharing it with whatever else is appended meanwhile. The ticket still answers only once
    /// they are durable, so whoever waits on it waits up to `window` longer: for appends whose
    /// callers do not wait.
    pub fn append_within(
        &self,
        events: Vec<EventRow>,
        attachments: Attachments,
        window: Duration,
    ) -> AppendTicket {
        self.queue_append(events, attachments, window)
    }

    /// Up to which event the spend table counts (see [`Backend::spending_counted_to`]).
    pub fn spending_counted_to(&self) -> Result<u64, StoreError> {
        self.ask(|reply| Request::SpendingCountedTo { reply })
    }

    /// What `payer` spent from UTC day `from_day` on (see [`Backend::spending`]).
    pub fn spending(&self, payer: Address, from_day: u64) -> Reply<Vec<Spending>> {
        Reply {
            answer: self.send(|reply| Request::Spending {
                payer,
                from_day,
                reply,
            }),
        }
    }

    /// Queues `answer` to be kept by a commit that starts within `window` (with no events of
    /// its own, it rides along with whatever else is committed meanwhile). Whoever does not need
    /// to know it was kept may drop the ticket.
    pub fn keep_answer(&self, answer: AnswerRow, window: Duration) -> AppendTicket {
        let attachments = Attachments {
            answers: vec![answer],
            ..Attachments::default()
        };
        self.queue_append(Vec::new(), attachments, window)
    }

    /// The answer kept under `key`, unless it expired by `now_ms`.
    pub fn answer(&self, key: Hash32, now_ms: u64) -> Result<Option<AnswerRow>, StoreError> {
        self.ask(|reply| Request::Answer { key, now_ms, reply })
    }

    /// When `request` was last charged, if at or after `since_ms` (see [`Backend::charged_at`]).
    /// Asked after a charge was queued, it sees that charge: the writer commits what is queued
    /// before it answers a read.
    pub fn charged_at(&self, request: Hash32, since_ms: u64) -> Result<Option<u64>, StoreError> {
        self.ask(|reply| Request::ChargedAt {
            request,
            since_ms,
            reply,
        })
    }

    /// Where the charged-request index starts (see [`Backend::charged_requests_from`]).
    pub fn charged_requests_from(&self) -> Result<u64, StoreError> {
        self.ask(|reply| Request::ChargedRequestsFrom { reply })
    }

    /// Queues `ops` on the sign-in tables (see [`Backend::sign_in`]); sign-ins queued together
    /// share one transaction and one sync. The reply says whether each op succeeded, once
    /// durable.
    pub fn sign_in(&self, ops: Vec<SignInOp>, now_ms: u64) -> Reply<Vec<bool>> {
        Reply {
            answer: self.send(|reply| Request::SignIn { ops, now_ms, reply }),
        }
    }

    /// The open session whose id hashes to `id_hash` (see [`Backend::session`]).
    pub fn session(&self, id_hash: Hash32, now_ms: u64) -> Reply<Option<SessionRow>> {
        Reply {
            answer: self.send(|reply| Request::Session {
                id_hash,
                now_ms,
                reply,
            }),
        }
    }

    /// An append with no window wakes a writer waiting out another's; one with a window does not.
    fn queue_append(
        &self,
        events: Vec<EventRow>,
        attachments: Attachments,
        window: Duration,
    ) -> AppendTicket {
        let request = |reply| Request::Append {
            events,
            attachments,
            commit_by: Instant::now() + window,
            reply,
        };
        AppendTicket {
            reply: if window.is_zero() {
                self.send(request)
            } else {
                self.send_quietly(request)
            },
        }
    }

    pub fn read(&self, from: u64, limit: usize) -> Result<Vec<EventRow>, StoreError> {
        self.ask(|reply| Request::Read {
            from,
            limit,
            lane: None,
            reply,
        })
    }

    /// Up to `limit` events from `from` on, in order, holding every one filed in `lane` (see
    /// [`Backend::read_lane`]: events stored before the store kept lanes come back whatever
    /// their lane).
    pub fn read_lane(
        &self,
        lane: Lane,
        from: u64,
        limit: usize,
    ) -> Result<Vec<EventRow>, StoreError> {
        self.ask(|reply| Request::Read {
            from,
            limit,
            lane: Some(lane),
            reply,
        })
    }

    pub fn event_count(&self) -> Result<u64, StoreError> {
        self.ask(|reply| Request::Count { reply })
    }

    pub fn bundle(&self, epoch: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.bundle_later(epoch).wait()
    }

    /// [`EventLog::bundle`], answered once the writer gets to it: the caller may wait without
    /// holding whatever it asked under.
    pub fn bundle_later(&self, epoch: u64) -> Reply<Option<Vec<u8>>> {
        Reply {
            answer: self.send(|reply| Request::Bundle { epoch, reply }),
        }
    }

    /// Whether the bundle of `epoch` is stored.
    pub fn has_bundle(&self, epoch: u64) -> Result<bool, StoreError> {
        self.ask(|reply| Request::HasBundle { epoch, reply })
    }

    /// Whether this log was opened only to read.
    pub fn is_reader(&self) -> bool {
        self.reader
    }
}

impl EventLog {
    /// Stops the writer after it has handled everything queued, then connects again: the way to
    /// recover after a failed commit. The old connection (and its lock on the store) is released
    /// before the new one is taken. If connecting fails, every later request fails too.
    pub fn reopen(&mut self, location: &Location) -> Result<(), StoreError> {
        self.shut_down();
        *self = match self.reader {
            true => EventLog::open_reader(location)?,
            false => EventLog::open(location)?,
        };
        Ok(())
    }

    fn shut_down(&mut self) {
        drop(self.requests.take());
        if let Some(writer) = self.writer.take() {
            writer.thread().unpark();
            let _ = writer.join();
        }
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn run_writer(mut backend: Box<dyn Backend>, queue: Receiver<Request>, counters: &CommitCounters) {
    let mut stopped: Option<String> = None;
    let mut carried: Option<Request> = None;
    let mut pending = PendingSpending::new();
    loop {
        let Some(request) = carried.take().or_else(|| queue.recv().ok()) else {
            // Shutting down: what is still counted only in memory goes to the table now (a
            // crash instead leaves it to the next open to count again from the log).
            if stopped.is_none() && !pending.sum.is_empty() {
                let (spending, counted_to) = pending.take();
                let commit = Commit {
                    spending,
                    spending_counted_to: counted_to,
                    ..Commit::default()
                };
                let _ = backend.append(&commit);
            }
            return;
        };
        match request {
            Request::Append {
                events,
                attachments,
                commit_by,
                reply,
            } => {
                let mut commit_by = commit_by;
                let mut group = vec![(events, attachments, reply)];
                let mut count = group[0].0.len();
                let mut closing = false;
                loop {
                    while count < MAX_GROUP_EVENTS {
                        match queue.try_recv() {
                            Ok(Request::Append {
                                events,
                                attachments,
                                commit_by: deadline,
                                reply,
                            }) => {
                                count += events.len();
                                commit_by = commit_by.min(deadline);
                                group.push((events, attachments, reply));
                            }
                            // A usage report counts committed calls only, so it is answered
                            // now, neither waiting for the group nor cutting it short.
                            Ok(Request::Spending {
                                payer,
                                from_day,
                                reply,
                            }) => {
                                let _ = reply.send(spending(
                                    backend.as_mut(),
                                    &pending,
                                    payer,
                                    from_day,
                                ));
                            }
                            Ok(other) => {
                                carried = Some(other);
                                break;
                            }
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => {
                                closing = true;
                                break;
                            }
                        }
                    }
                    let now = Instant::now();
                    if closing || carried.is_some() || count >= MAX_GROUP_EVENTS || now >= commit_by
                    {
                        break;
                    }
                    // Any request but a windowed append unparks the writer, as does shutting down.
                    std::thread::park_timeout(commit_by - now);
                }
                let outcome = match &stopped {
                    Some(why) => Err(why.clone()),
                    None => commit_group(backend.as_mut(), &group, &mut pending),
                };
                match &outcome {
                    Ok(()) => {
                        counters.transactions.fetch_add(1, Ordering::Relaxed);
                        counters.events.fetch_add(count as u64, Ordering::Relaxed);
                    }
                    Err(why) => {
                        stopped.get_or_insert_with(|| why.clone());
                        counters.stopped.store(true, Ordering::Release);
                    }
                }
                for (_, _, reply) in group {
                    let _ = reply.send(outcome.clone().map_err(StoreError::WriterStopped));
                }
            }
            Request::Read {
                from,
                limit,
                lane,
                reply,
            } => {
                let _ = reply.send(match lane {
                    None => backend.read(from, limit),
                    Some(lane) => backend.read_lane(lane, from, limit),
                });
            }
            Request::Count { reply } => {
                let _ = reply.send(backend.event_count());
            }
            Request::Bundle { epoch, reply } => {
                let _ = reply.send(backend.bundle(epoch));
            }
            Request::HasBundle { epoch, reply } => {
                let _ = reply.send(backend.has_bundle(epoch));
            }
            Request::Snapshots { reply } => {
                let _ = reply.send(backend.snapshots());
            }
            Request::Answer { key, now_ms, reply } => {
                let _ = reply.send(backend.answer(&key, now_ms));
            }
            Request::ChargedAt {
                request,
                since_ms,
                reply,
            } => {
                let _ = reply.send(backend.charged_at(&request, since_ms));
            }
            Request::ChargedRequestsFrom { reply } => {
                let _ = reply.send(backend.charged_requests_from());
            }
            Request::SignIn { ops, now_ms, reply } => {
                let mut group = vec![(ops, reply)];
                let mut now = now_ms;
                loop {
                    match queue.try_recv() {
                        Ok(Request::SignIn { ops, now_ms, reply }) => {
                            now = now.max(now_ms);
                            group.push((ops, reply));
                        }
                        Ok(other) => {
                            carried = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let all: Vec<SignInOp> = group.iter().flat_map(|(ops, _)| ops.clone()).collect();
                match backend.sign_in(&all, now) {
                    Ok(done) => {
                        let mut done = done.into_iter();
                        for (ops, reply) in group {
                            let _ = reply.send(Ok(done.by_ref().take(ops.len()).collect()));
                        }
                    }
                    Err(error) => {
                        let why = error.to_string();
                        for (_, reply) in group {
                            let _ = reply.send(Err(StoreError::Io(why.clone())));
                        }
                    }
                }
            }
            Request::Session {
                id_hash,
                now_ms,
                reply,
            } => {
                let _ = reply.send(backend.session(&id_hash, now_ms));
            }
            Request::SpendingCountedTo { reply } => {
                let _ = reply.send(backend.spending_counted_to());
            }
            Request::Spending {
                payer,
                from_day,
                reply,
            } => {
                let _ = reply.send(spending(backend.as_mut(), &pending, payer, from_day));
            }
        }
    }
}

/// What `payer` spent from `from_day` on, as committed: the spend table with what the writer
/// has counted since it last wrote to it.
fn spending(
    backend: &mut dyn Backend,
    pending: &PendingSpending,
    payer: Address,
    from_day: u64,
) -> Result<Vec<Spending>, StoreError> {
    backend
        .spending(&payer, from_day)
        .and_then(|stored| pending.with(stored, &payer, from_day))
}

type Group = [(Vec<EventRow>, Attachments, Sender<Result<(), StoreError>>)];

/// How often the spending counted in memory is written to the spend table, at the latest.
const SPENDING_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How many rows of spending the writer holds in memory before writing them, at the most.
const MAX_PENDING_SPENDING: usize = 16_384;

/// Spending the writer has counted from committed events but not yet written: adding a few rows
/// to the spend table costs a commit far more than the events do, so rows are added up here and
/// written with a later commit about once a second, with the point the table then counts to.
/// A crash loses only this, and the next open counts it again from the log.
struct PendingSpending {
    sum: SpendingSum,
    /// The sequence number after the last event counted in `sum`.
    counted_to: Option<u64>,
    since: Instant,
}

impl PendingSpending {
    fn new() -> PendingSpending {
        PendingSpending {
            sum: SpendingSum::default(),
            counted_to: None,
            since: Instant::now(),
        }
    }

    fn take(&mut self) -> (Vec<Spending>, Option<u64>) {
        let taken = std::mem::replace(self, PendingSpending::new());
        (taken.sum.into_vec(), taken.counted_to)
    }

    /// `stored` rows of `payer` (from `from_day` on) with what is pending added, in the
    /// table's order.
    fn with(
        &self,
        stored: Vec<Spending>,
        payer: &Address,
        from_day: u64,
    ) -> Result<Vec<Spending>, StoreError> {
        let mut sum = SpendingSum::default();
        let pending = self.sum.rows_of(payer, from_day);
        for spent in stored.iter().chain(pending) {
            sum.add(spent).map_err(StoreError::Corrupt)?;
        }
        Ok(sum.into_vec())
    }
}

fn commit_group(
    backend: &mut dyn Backend,
    group: &Group,
    pending: &mut PendingSpending,
) -> Result<(), String> {
    let attachments = || group.iter().map(|(_, a, _)| a);
    let events: Vec<&EventRow> = group.iter().flat_map(|(e, _, _)| e.iter()).collect();
    // Added to what is pending before the commit: if the commit fails the writer stops and
    // what is pending is never written.
    for spent in attachments().flat_map(|a| a.spending.iter()) {
        pending.sum.add(spent)?;
    }
    pending.counted_to = events.last().map(|row| row.seq + 1).or(pending.counted_to);
    let catching_up = attachments().filter_map(|a| a.spending_counted_to).max();
    let flush = catching_up.is_some()
        || pending.since.elapsed() >= SPENDING_FLUSH_INTERVAL
        || pending.sum.len() >= MAX_PENDING_SPENDING;
    let mut commit = Commit {
        events,
        bundles: attachments().flat_map(|a| a.bundles.iter()).collect(),
        snapshots: attachments().flat_map(|a| a.snapshots.iter()).collect(),
        answers: attachments().flat_map(|a| a.answers.iter()).collect(),
        charged: attachments().flat_map(|a| a.charged.iter()).collect(),
        charged_requests_from: attachments().filter_map(|a| a.charged_requests_from).min(),
        ..Commit::default()
    };
    if flush {
        let (spending, counted_to) = pending.take();
        commit.spending = spending;
        commit.spending_counted_to = counted_to.max(catching_up);
    }
    backend.append(&commit).map_err(|e| e.to_string())
}

/// Spending added up by [`Spending::key`], so the backend writes each row once per commit.
#[derive(Default)]
pub(crate) struct SpendingSum(FxHashMap<(Address, u64, AssetId, Address), Spending>);

impl SpendingSum {
    pub(crate) fn add(&mut self, spent: &Spending) -> Result<(), String> {
        match self.0.get_mut(&spent.key()) {
            Some(sum) => sum.add(spent).map_err(|overflow| overflow.to_string()),
            None => {
                self.0.insert(spent.key(), *spent);
                Ok(())
            }
        }
    }

    /// The rows in the spend table's order (payer, day, asset, token).
    pub(crate) fn into_vec(self) -> Vec<Spending> {
        let mut rows: Vec<Spending> = self.0.into_values().collect();
        rows.sort_unstable_by_key(Spending::key);
        rows
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `payer`'s rows from `from_day` on, in no order.
    fn rows_of(&self, payer: &Address, from_day: u64) -> impl Iterator<Item = &Spending> {
        self.0
            .values()
            .filter(move |spent| spent.payer == *payer && spent.day >= from_day)
    }
}

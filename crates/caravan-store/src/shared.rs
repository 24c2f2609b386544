//! A journal many threads submit to at once.
//!
//! Validation and in-memory application are serialised under a lock (they take microseconds);
//! waiting for durability happens outside it, so while one group of events is being committed the
//! next group is already forming — group commit across callers. Every caller is answered only
//! once its own events are durable.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use caravan_core::{Address, Event, Hash32, Spending};

use crate::backend::{SessionRow, SignInOp};
use crate::journal::{Journal, JournalError, Submitted, now_ms};
use crate::log::AppendTicket;

pub struct SharedJournal {
    journal: Mutex<Journal>,
}

impl SharedJournal {
    pub fn new(journal: Journal) -> SharedJournal {
        SharedJournal {
            journal: Mutex::new(journal),
        }
    }

    /// The journal, once no one else holds this.
    pub fn into_inner(self) -> Journal {
        self.journal.into_inner().expect(
            "a thread panicked while applying events; the journal's state cannot be trusted",
        )
    }

    fn lock(&self) -> MutexGuard<'_, Journal> {
        self.journal.lock().expect(
            "a thread panicked while applying events; the journal's state cannot be trusted",
        )
    }

    /// Validates, applies and durably stores `events`; returns once they are durable.
    pub fn submit(&self, events: Vec<Event>) -> Result<Submitted, JournalError> {
        self.enqueue(events).wait()
    }

    /// Validates, applies and queues `events` without waiting for durability. A caller that
    /// must keep its own order (a project board handing its records over under its own lock)
    /// enqueues under that lock and waits after releasing it.
    pub fn enqueue(&self, events: Vec<Event>) -> PendingSubmission<'_> {
        self.enqueue_within(events, Duration::ZERO)
    }

    /// [`SharedJournal::enqueue`] for events whose commit may start up to `window` later, so
    /// that a stream of submissions nobody waits on shares syncs (see
    /// [`crate::EventLog::append_within`]). Waiting on it takes up to `window` longer.
    pub fn enqueue_within(&self, events: Vec<Event>, window: Duration) -> PendingSubmission<'_> {
        let mut journal = self.lock();
        let (submitted, ticket) = journal.submit_pipelined_within(events, now_ms(), window);
        // Read after the submission, which may have reloaded the store: the generation of the
        // writer the events were queued to.
        let generation = journal.generation();
        PendingSubmission {
            shared: self,
            submitted,
            ticket,
            generation,
        }
    }

    /// Closes the epoch (see [`Journal::close_epoch`]) and returns once it is durable with its
    /// bundle. Submissions wait while the close is worked out and its snapshot encoded; the
    /// event commits like any other, and the bundle's JSON is made and stored while the journal
    /// serves others.
    pub fn close_epoch(
        &self,
    ) -> Result<(caravan_core::EpochOutcome, caravan_core::epoch::EpochBundle), JournalError> {
        let (closed, generation) = {
            let mut journal = self.lock();
            (journal.close_epoch_pipelined()?, journal.generation())
        };
        let attachments = closed.attachments.write(&closed.bundle);
        let attached = self.lock().attach_close(attachments);
        for ticket in [closed.event, attached] {
            self.await_commit(QueuedCommit { ticket, generation })?;
        }
        Ok((closed.outcome, closed.bundle))
    }

    /// The stored bundle of `epoch` (`None` when it is not closed). The journal is held only to
    /// ask: the store reads the bundle and it is parsed while others go on, which matters at
    /// scale (about 100 MB of JSON at 200,000 contributors). An epoch closed a moment ago whose
    /// bundle is still being stored is [`JournalError::BundlePending`].
    pub fn bundle(
        &self,
        epoch: u64,
    ) -> Result<Option<caravan_core::epoch::EpochBundle>, JournalError> {
        let request = self.lock().request_bundle(epoch);
        request.read()
    }

    /// The stored JSON of `epoch`'s bundle, unparsed (see [`SharedJournal::bundle`]).
    pub fn bundle_json(&self, epoch: u64) -> Result<Option<Vec<u8>>, JournalError> {
        let request = self.lock().request_bundle(epoch);
        request.json()
    }

    /// Waits until a detached submission (see [`PendingSubmission::detach`]) is durable. When the
    /// store fails the commit, the journal reloads from the store once for the whole group.
    pub fn await_commit(&self, commit: QueuedCommit) -> Result<(), JournalError> {
        match commit.ticket.wait() {
            Ok(()) => Ok(()),
            Err(error) => {
                let mut journal = self.lock();
                if journal.generation() == commit.generation {
                    journal.reload()?;
                }
                Err(error.into())
            }
        }
    }

    /// Applies `ops` to the sign-in tables and says whether each succeeded, once durable; the
    /// journal is locked only to queue them, so submissions go on meanwhile.
    pub fn sign_in(&self, ops: Vec<SignInOp>, now_ms: u64) -> Result<Vec<bool>, JournalError> {
        let reply = self.lock().sign_in(ops, now_ms);
        Ok(reply.wait()?)
    }

    /// The open session whose id hashes to `id_hash`, unless it ended or expired by `now_ms`;
    /// the journal is locked only to ask.
    pub fn session(
        &self,
        id_hash: Hash32,
        now_ms: u64,
    ) -> Result<Option<SessionRow>, JournalError> {
        let reply = self.lock().session(id_hash, now_ms);
        Ok(reply.wait()?)
    }

    /// What `payer` spent from UTC day `from_day` on, per day, asset and token (see
    /// [`Journal::spending`]); the journal is locked only to ask. The table holds committed
    /// calls only, so a call whose commit is in flight shows once it is durable.
    pub fn spending(&self, payer: Address, from_day: u64) -> Result<Vec<Spending>, JournalError> {
        let reply = self.lock().spending(payer, from_day);
        Ok(reply.wait()?)
    }

    /// Runs `read` on the journal. It sees every accepted event, including ones whose commit is
    /// still in flight (and would vanish if that commit failed): answer money questions that must
    /// be final only from events the caller has seen acknowledged.
    pub fn read<R>(&self, read: impl FnOnce(&Journal) -> R) -> R {
        read(&self.lock())
    }
}

/// The commit of a detached submission: durable once [`SharedJournal::await_commit`] says so.
#[must_use = "queued events are durable only once their commit has been awaited"]
pub struct QueuedCommit {
    ticket: AppendTicket,
    generation: u64,
}

/// Events applied in memory and queued for the store; [`PendingSubmission::wait`] returns once
/// they are durable.
#[must_use = "nothing is acknowledged until the submission is waited for"]
pub struct PendingSubmission<'a> {
    shared: &'a SharedJournal,
    submitted: Submitted,
    ticket: AppendTicket,
    generation: u64,
}

impl PendingSubmission<'_> {
    /// Waits for durability. When the store fails a commit, every caller in that group gets the
    /// error and the journal reloads from the store once, not once per caller.
    pub fn wait(self) -> Result<Submitted, JournalError> {
        let shared = self.shared;
        let (submitted, commit) = self.detach();
        shared.await_commit(commit)?;
        Ok(submitted)
    }

    /// What was accepted and refused now, and the commit to wait for later — on another thread,
    /// with [`SharedJournal::await_commit`]. Until then the events are applied but not durable:
    /// a crash, or a failed commit (after which the journal reloads from the store), undoes them.
    pub fn detach(self) -> (Submitted, QueuedCommit) {
        (
            self.submitted,
            QueuedCommit {
                ticket: self.ticket,
                generation: self.generation,
            },
        )
    }

    /// What was accepted and refused, before durability.
    pub fn submitted(&self) -> &Submitted {
        &self.submitted
    }
}

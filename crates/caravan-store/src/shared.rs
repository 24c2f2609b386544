//! A journal many threads submit to at once.
//!
//! Validation and in-memory application are serialised under a lock (they take microseconds);
//! waiting for durability happens outside it, so while one group of events is being committed the
//! next group is already forming — group commit across callers. Every caller is answered only
//! once its own events are durable.

use std::sync::{Mutex, MutexGuard};

use caravan_core::Event;

use crate::journal::{Journal, JournalError, Submitted, now_ms};

pub struct SharedJournal {
    journal: Mutex<Journal>,
}

impl SharedJournal {
    pub fn new(journal: Journal) -> SharedJournal {
        SharedJournal {
            journal: Mutex::new(journal),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Journal> {
        self.journal.lock().expect(
            "a thread panicked while applying events; the journal's state cannot be trusted",
        )
    }

    /// Validates, applies and durably stores `events`; returns once they are durable. When the
    /// store fails a commit, every caller in that group gets the error and the journal reloads
    /// from the store once, not once per caller.
    pub fn submit(&self, events: Vec<Event>) -> Result<Submitted, JournalError> {
        let (submitted, ticket, generation) = {
            let mut journal = self.lock();
            let generation = journal.generation();
            let (submitted, ticket) = journal.submit_pipelined(events, now_ms());
            (submitted, ticket, generation)
        };
        match ticket.wait() {
            Ok(()) => Ok(submitted),
            Err(error) => {
                let mut journal = self.lock();
                if journal.generation() == generation {
                    journal.reload()?;
                }
                Err(error.into())
            }
        }
    }

    /// Runs `read` on the journal. It sees every accepted event, including ones whose commit is
    /// still in flight (and would vanish if that commit failed): answer money questions that must
    /// be final only from events the caller has seen acknowledged.
    pub fn read<R>(&self, read: impl FnOnce(&Journal) -> R) -> R {
        read(&self.lock())
    }
}

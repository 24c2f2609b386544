//! Durable storage for caravan: the hash-chained event log and the epoch bundles, on SQLite (an
//! embedded file in a data directory, the default) or PostgreSQL (selected by a `postgres://` URL).
//!
//! Both backends implement [`Backend`] and pass the same test suite. Writes go through one writer
//! thread per store that commits whatever is queued as one transaction (group commit), so many
//! small appends cost one sync; an append is acknowledged only after its transaction is durable.
//! [`Journal`] keeps a [`caravan_core::Economy`] in step with the log. This crate holds no business
//! rules: what is valid is decided by `caravan-core`.

mod backend;
mod journal;
mod location;
mod log;
mod postgres_backend;
pub mod postgres_tls;
mod shared;
mod sqlite_backend;

pub use backend::{
    AnswerRow, Attachments, Backend, BundleRow, CHARGED_REQUESTS_KEPT_MS, ChargedRequest, Commit,
    EventRow, SNAPSHOTS_KEPT, SessionRow, SignInOp, SnapshotRow, StoreError,
};
pub use journal::{
    BundleRequest, CloseAttachments, ClosedEpoch, Journal, JournalError, OpenReport, Submitted,
    now_ms,
};
pub use location::Location;
pub use log::{AppendTicket, CommitStats, EventLog, Reply};
pub use shared::{PendingSubmission, QueuedCommit, SharedJournal};

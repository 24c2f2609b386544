//! What a storage backend must provide: append a batch atomically and durably, read back in order.

use caravan_core::{Address, AssetId, Hash32, Lane, Spending};

/// One event as stored: the envelope fields and the canonical body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRow {
    pub seq: u64,
    pub at_ms: u64,
    pub hash: Hash32,
    pub body: Vec<u8>,
    /// The event's [`Lane`], so readers of one lane skip the rest of the log.
    pub lane: Lane,
}

/// An epoch bundle, stored right after its `EpochClosed` event (and made again from the replayed
/// close when the store lacks it).
#[derive(Clone, Debug)]
pub struct BundleRow {
    pub epoch: u64,
    pub root: Hash32,
    pub json: Vec<u8>,
}

/// The whole economy encoded at `seq` (after the first `seq` events), with its keccak-256.
/// A cache: a store keeps the latest few and can always be replayed without them.
#[derive(Clone, Debug)]
pub struct SnapshotRow {
    pub seq: u64,
    pub state_hash: Hash32,
    pub state: Vec<u8>,
}

/// An answer kept so that a retried request can be given it again (the gateway's answers to
/// calls sent with an `Idempotency-Key`). Not part of the log: a cache the store forgets once
/// `expires_ms` has passed, which a lost row only makes less helpful, never wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerRow {
    /// What the answer is found by.
    pub key: Hash32,
    /// The hash of the request it answered, so a different request under the same key is told
    /// apart.
    pub fingerprint: Hash32,
    /// When it was kept; writing it also forgets every answer that expired by then.
    pub kept_at_ms: u64,
    pub expires_ms: u64,
    /// The answer, encoded by whoever keeps it.
    pub answer: Vec<u8>,
}

/// A call charged under an idempotency key, found by its request id
/// ([`caravan_core::MeteredCall::request`]) for [`CHARGED_REQUESTS_KEPT_MS`]: so a node can
/// tell a retry of a call it charged hours ago from a new call with one point read, without
/// holding every id of the day in memory. Written in the charge's own transaction, so a
/// request is indexed exactly when its charge is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChargedRequest {
    pub request: Hash32,
    /// When the charge was recorded (its event's time).
    pub at_ms: u64,
}

/// How long a charged request stays indexed: the day an idempotency key is honoured for.
pub const CHARGED_REQUESTS_KEPT_MS: u64 = 24 * 60 * 60 * 1000;

/// A signed-in session as stored: found by the hash of its secret id (the secret itself is never
/// stored), for one account, until it expires. Not part of the log: who is signed in is not an
/// economic fact, and a lost session only means signing in again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRow {
    pub id_hash: Hash32,
    pub account: Address,
    pub created_ms: u64,
    pub expires_ms: u64,
}

/// A change to the sign-in tables (nonces and sessions), applied in one transaction with the
/// others queued beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignInOp {
    /// Keeps a nonce the node made, usable once until `expires_ms`. Always succeeds.
    IssueNonce { nonce: String, expires_ms: u64 },
    /// Uses up `nonce` and opens `session`, both or neither: succeeds only if the nonce was
    /// issued, is unused and has not expired. Consuming is atomic, so of two sign-ins with one
    /// nonce (on one node or several sharing a database) at most one succeeds.
    OpenSession { nonce: String, session: SessionRow },
    /// Ends the session with this id hash; succeeds if it was open.
    EndSession { id_hash: Hash32 },
}

/// What is written in the same transaction as a batch of events.
#[derive(Clone, Debug, Default)]
pub struct Attachments {
    pub bundles: Vec<BundleRow>,
    pub snapshots: Vec<SnapshotRow>,
    pub answers: Vec<AnswerRow>,
    /// What the batch's events charged payers ([`caravan_core::Event::spending`]). The writer
    /// adds it up in memory and writes it to the per-payer spend table about once a second,
    /// with the point the table then counts to (see [`Backend::spending_counted_to`]).
    pub spending: Vec<Spending>,
    /// `spending` is what every stored event from the table's count up to this sequence
    /// number charged (an open catching up): written at once, and the table counts to here.
    pub spending_counted_to: Option<u64>,
    /// The requests the batch's events charged under an idempotency key.
    pub charged: Vec<ChargedRequest>,
    /// `charged` holds every keyed call stored from this sequence number on that the index
    /// lacked (an open catching up): the index is complete from here on.
    pub charged_requests_from: Option<u64>,
}

/// Everything one group commit writes, in one transaction.
#[derive(Debug, Default)]
pub struct Commit<'a> {
    pub events: Vec<&'a EventRow>,
    pub bundles: Vec<&'a BundleRow>,
    pub snapshots: Vec<&'a SnapshotRow>,
    pub answers: Vec<&'a AnswerRow>,
    /// Spending to add, at most one entry per [`Spending::key`].
    pub spending: Vec<Spending>,
    /// The spend table counts every event below this sequence number once written.
    pub spending_counted_to: Option<u64>,
    pub charged: Vec<&'a ChargedRequest>,
    /// The charged-request index is complete from this sequence number on, once written.
    pub charged_requests_from: Option<u64>,
}

/// How many snapshots a store keeps; older ones are deleted when a new one is written.
pub const SNAPSHOTS_KEPT: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    #[error("{0}")]
    Io(String),
    #[error(
        "the event log already holds event {seq}: another process is writing to this store; stop it, or point this one at another data directory"
    )]
    Conflict { seq: u64 },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("the store's writer stopped after an earlier failure ({0}); reopen the store")]
    WriterStopped(String),
    #[error(
        "this store was written by a newer caravan (schema version {found}, this build knows up to {known}); upgrade caravan"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error(
        "this store is at schema version {found} and this caravan reads version {known}: a writer must upgrade it first (start `caravan serve` on it, or run any command that writes, once)"
    )]
    SchemaTooOld { found: i64, known: i64 },
    #[error("{0}")]
    NoStore(String),
    /// Another process holds the store's writer lock (a node serving from it, say).
    #[error("{0}")]
    Busy(String),
}

impl From<postgres::Error> for StoreError {
    /// Keeps the server's own words: `postgres::Error` alone displays as just "db error".
    fn from(error: postgres::Error) -> StoreError {
        let text = match error.as_db_error() {
            Some(db) => {
                let mut text = format!("{} ({})", db.message(), db.code().code());
                if let Some(detail) = db.detail() {
                    text.push_str(&format!("; {detail}"));
                }
                if let Some(hint) = db.hint() {
                    text.push_str(&format!("; hint: {hint}"));
                }
                text
            }
            None => error.to_string(),
        };
        StoreError::Postgres(text)
    }
}

/// A connection to one store. Implementations keep every method atomic: a batch is written whole
/// or not at all, and is durable when `append` returns.
pub trait Backend: Send {
    /// Writes the commit's events (consecutive, following what is stored), bundles, snapshots
    /// and answers, and adds its spending, in one transaction, keeping only the newest
    /// [`SNAPSHOTS_KEPT`] snapshots. An answer replaces one kept under the same key; every
    /// answer that expired by the newest `kept_at_ms` among the answers is deleted. A charged
    /// request replaces one indexed under the same id; every one charged
    /// [`CHARGED_REQUESTS_KEPT_MS`] or more before the newest among them is deleted.
    fn append(&mut self, commit: &Commit<'_>) -> Result<(), StoreError>;
    /// The spend table holds what every event below this sequence number charged, and nothing
    /// of the events from it on: a writer that opens the store adds what those charged.
    fn spending_counted_to(&mut self) -> Result<u64, StoreError>;
    /// What `payer` spent from UTC day `from_day` on, per day, asset and token, ordered by day,
    /// asset and token.
    fn spending(&mut self, payer: &Address, from_day: u64) -> Result<Vec<Spending>, StoreError>;
    /// The answer kept under `key`, unless it expired by `now_ms`.
    fn answer(&mut self, key: &Hash32, now_ms: u64) -> Result<Option<AnswerRow>, StoreError>;
    /// When `request` was last charged, if at or after `since_ms` (see [`ChargedRequest`]).
    fn charged_at(&mut self, request: &Hash32, since_ms: u64) -> Result<Option<u64>, StoreError>;
    /// The charged-request index holds every keyed call stored from this sequence number on; a
    /// store made before it was kept has none of the calls before.
    fn charged_requests_from(&mut self) -> Result<u64, StoreError>;
    /// Applies `ops` in order in one transaction, first forgetting the nonces and sessions that
    /// expired by `now_ms`; returns whether each succeeded (see [`SignInOp`]).
    fn sign_in(&mut self, ops: &[SignInOp], now_ms: u64) -> Result<Vec<bool>, StoreError>;
    /// The session whose id hashes to `id_hash`, unless it ended or expired by `now_ms`.
    fn session(&mut self, id_hash: &Hash32, now_ms: u64) -> Result<Option<SessionRow>, StoreError>;
    /// Up to `limit` events with `seq >= from`, in order.
    fn read(&mut self, from: u64, limit: usize) -> Result<Vec<EventRow>, StoreError>;
    /// The first sequence number whose event was stored with its lane: a store made before
    /// lanes were kept filed its older events under none.
    fn lanes_from(&self) -> u64;
    /// Up to `limit` events filed in `lane` with `seq >= from`, in order; `from` is at least
    /// [`Backend::lanes_from`]. Each lane has a partial index of its own; implementations write
    /// the lane into the statement as a literal (it is one of four numbers), so the planner
    /// sees that the lane's index applies.
    fn read_lane_only(
        &mut self,
        lane: Lane,
        from: u64,
        limit: usize,
    ) -> Result<Vec<EventRow>, StoreError>;
    /// Up to `limit` events from `from` on that include every one filed in `lane`, in order:
    /// below [`Backend::lanes_from`] that is every event (their lanes are unknown), after it
    /// only the lane's. Readers tell events apart by decoding them, as they do anyway.
    fn read_lane(
        &mut self,
        lane: Lane,
        from: u64,
        limit: usize,
    ) -> Result<Vec<EventRow>, StoreError> {
        let lanes_from = self.lanes_from();
        if from < lanes_from {
            let before = usize::try_from(lanes_from - from).unwrap_or(usize::MAX);
            self.read(from, limit.min(before))
        } else {
            self.read_lane_only(lane, from, limit)
        }
    }
    /// The number of stored events (the next sequence number).
    fn event_count(&mut self) -> Result<u64, StoreError>;
    /// The stored bundle of `epoch`, as JSON bytes.
    fn bundle(&mut self, epoch: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// Whether the bundle of `epoch` is stored, without reading it.
    fn has_bundle(&mut self, epoch: u64) -> Result<bool, StoreError>;
    /// The kept snapshots, oldest first.
    fn snapshots(&mut self) -> Result<Vec<SnapshotRow>, StoreError>;
}

pub(crate) fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| {
        StoreError::Corrupt(format!(
            "{what} {value} does not fit in a signed 64-bit column"
        ))
    })
}

pub(crate) fn lane_from(number: i64, seq: i64) -> Result<Lane, StoreError> {
    u8::try_from(number)
        .ok()
        .and_then(Lane::from_number)
        .ok_or_else(|| {
            StoreError::Corrupt(format!("event {seq} is filed in unknown lane {number}"))
        })
}

/// The newest `kept_at_ms` among `answers`: answers that expired by then are deleted.
pub(crate) fn answers_expired_by(answers: &[&AnswerRow]) -> Option<u64> {
    answers.iter().map(|answer| answer.kept_at_ms).max()
}

/// The time before which charged requests are deleted by a commit indexing `charged`: a day
/// before the newest of them.
pub(crate) fn charged_expired_before(charged: &[&ChargedRequest]) -> Option<u64> {
    charged
        .iter()
        .map(|row| row.at_ms.saturating_sub(CHARGED_REQUESTS_KEPT_MS))
        .max()
}

/// A stored 32-byte hash; `holder` names what holds it for the error if it is not 32 bytes.
fn stored_hash(bytes: &[u8], holder: impl FnOnce() -> String) -> Result<Hash32, StoreError> {
    let array: [u8; 32] = bytes.try_into().map_err(|_| {
        StoreError::Corrupt(format!(
            "{} has a {}-byte hash, not 32",
            holder(),
            bytes.len()
        ))
    })?;
    Ok(Hash32(array))
}

/// A kept answer's stored fingerprint.
pub(crate) fn answer_fingerprint(bytes: &[u8]) -> Result<Hash32, StoreError> {
    stored_hash(bytes, || "a kept answer's fingerprint".into())
}

/// A stored session's account.
pub(crate) fn session_account(bytes: &[u8]) -> Result<Address, StoreError> {
    let array: [u8; 20] = bytes.try_into().map_err(|_| {
        StoreError::Corrupt(format!(
            "a session's account has {} bytes, not 20",
            bytes.len()
        ))
    })?;
    Ok(Address(array))
}

/// A spend row's fields as stored (the asset's id, the token's address, the counts and the
/// amount in decimal), checked.
pub(crate) fn spending_row(
    payer: Address,
    day: i64,
    asset: &[u8],
    token: &[u8],
    [calls, uses]: [i64; 2],
    amount: &str,
) -> Result<Spending, StoreError> {
    let row_name = || format!("the spend row of {payer} on day {day}");
    let token: [u8; 20] = token.try_into().map_err(|_| {
        StoreError::Corrupt(format!(
            "{}: its token has {} bytes, not 20",
            row_name(),
            token.len()
        ))
    })?;
    Ok(Spending {
        payer,
        day: u64::try_from(day)
            .map_err(|_| StoreError::Corrupt(format!("{}: negative day", row_name())))?,
        asset: AssetId(stored_hash(asset, row_name)?),
        token: Address(token),
        calls: u64::try_from(calls)
            .map_err(|_| StoreError::Corrupt(format!("{}: negative call count", row_name())))?,
        uses: u64::try_from(uses)
            .map_err(|_| StoreError::Corrupt(format!("{}: negative use count", row_name())))?,
        amount: amount.parse().map_err(|_| {
            StoreError::Corrupt(format!("{}: amount {amount:?} is not a u128", row_name()))
        })?,
    })
}

pub(crate) fn hash_from(bytes: &[u8], seq: i64) -> Result<Hash32, StoreError> {
    stored_hash(bytes, || format!("event {seq}"))
}

/// The migrations still to run on a store at schema `version`, each with the version it brings the
/// store to; an error if the store is newer than this build.
pub(crate) fn pending_migrations<'a>(
    version: i64,
    migrations: &'a [&'a str],
) -> Result<impl Iterator<Item = (i64, &'a str)>, StoreError> {
    let known = migrations.len() as i64;
    if version > known {
        return Err(StoreError::SchemaTooNew {
            found: version,
            known,
        });
    }
    Ok(migrations
        .iter()
        .enumerate()
        .skip(version as usize)
        .map(|(index, sql)| (index as i64 + 1, *sql)))
}

/// Checks that a store opened only to read is at the schema this build knows: a reader never
/// migrates, so an older store is left for a writer to upgrade.
pub(crate) fn check_schema(version: i64, migrations: &[&str]) -> Result<(), StoreError> {
    let known = migrations.len() as i64;
    match version.cmp(&known) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Greater => Err(StoreError::SchemaTooNew {
            found: version,
            known,
        }),
        std::cmp::Ordering::Less => Err(StoreError::SchemaTooOld {
            found: version,
            known,
        }),
    }
}

/// A URL with any password replaced, safe to print.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

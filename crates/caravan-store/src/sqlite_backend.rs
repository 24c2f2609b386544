//! The embedded backend: one SQLite file in WAL mode with `synchronous=FULL`, so a committed
//! transaction survives a crash or power loss. A lock file keeps a second process out.

use std::fs::{self, File, TryLockError};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use caravan_core::{Address, Hash32, Lane, Spending};

use crate::backend::{
    AnswerRow, Backend, Commit, EventRow, SNAPSHOTS_KEPT, SessionRow, SignInOp, SnapshotRow,
    StoreError, answer_fingerprint, answers_expired_by, charged_expired_before, check_schema,
    hash_from, lane_from, pending_migrations, session_account, spending_row, to_i64,
};

/// Schema migrations in order; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE events (
        seq    INTEGER PRIMARY KEY,
        at_ms  INTEGER NOT NULL,
        hash   BLOB    NOT NULL,
        body   BLOB    NOT NULL
    );
    CREATE TABLE epoch_bundles (
        epoch  INTEGER PRIMARY KEY,
        root   BLOB NOT NULL,
        bundle BLOB NOT NULL
    );
",
    "
    CREATE TABLE snapshots (
        seq        INTEGER PRIMARY KEY,
        state_hash BLOB NOT NULL,
        state      BLOB NOT NULL
    );
",
    // Lanes: each lane's partial index holds only its own events, so the calls that make up
    // most of a log cost nothing to index. Events stored before this migration keep lane 0.
    "
    ALTER TABLE events ADD COLUMN lane INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX events_lane_1 ON events (seq) WHERE lane = 1;
    CREATE INDEX events_lane_2 ON events (seq) WHERE lane = 2;
    CREATE INDEX events_lane_3 ON events (seq) WHERE lane = 3;
    CREATE TABLE lanes (from_seq INTEGER NOT NULL);
    INSERT INTO lanes (from_seq) SELECT COALESCE(MAX(seq) + 1, 0) FROM events;
",
    // Answers kept for retried requests: a cache beside the log, pruned by expiry.
    "
    CREATE TABLE kept_answers (
        key         BLOB    PRIMARY KEY,
        fingerprint BLOB    NOT NULL,
        kept_at_ms  INTEGER NOT NULL,
        expires_ms  INTEGER NOT NULL,
        answer      BLOB    NOT NULL
    );
    CREATE INDEX kept_answers_expiry ON kept_answers (expires_ms);
",
    // Sign-in: nonces the node made (each usable once) and open sessions, by their id's hash.
    "
    CREATE TABLE sign_in_nonces (
        nonce      TEXT    PRIMARY KEY,
        expires_ms INTEGER NOT NULL
    );
    CREATE INDEX sign_in_nonces_expiry ON sign_in_nonces (expires_ms);
    CREATE TABLE sessions (
        id_hash    BLOB    PRIMARY KEY,
        account    BLOB    NOT NULL,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL
    );
    CREATE INDEX sessions_expiry ON sessions (expires_ms);
",
    // What each payer spent per UTC day, asset and token (amounts as decimal text: they are
    // u128). `spending_counted` says up to which event it counts; a writer that opens the
    // store adds what the events after charged.
    "
    CREATE TABLE spending (
        payer  BLOB    NOT NULL,
        day    INTEGER NOT NULL,
        asset  BLOB    NOT NULL,
        token  BLOB    NOT NULL,
        calls  INTEGER NOT NULL,
        uses   INTEGER NOT NULL,
        amount TEXT    NOT NULL,
        PRIMARY KEY (payer, day, asset, token)
    ) WITHOUT ROWID;
    CREATE TABLE spending_counted (to_seq INTEGER NOT NULL);
    INSERT INTO spending_counted (to_seq) VALUES (0);
",
    // Requests charged under an idempotency key in the last day, by id. The index is complete
    // from `charged_requests_from` on; a writer that opens the store indexes the day's calls
    // stored before it.
    "
    CREATE TABLE charged_requests (
        request BLOB    PRIMARY KEY,
        at_ms   INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX charged_requests_age ON charged_requests (at_ms);
    CREATE TABLE charged_requests_from (from_seq INTEGER NOT NULL);
    INSERT INTO charged_requests_from (from_seq) SELECT COALESCE(MAX(seq) + 1, 0) FROM events;
",
];

/// The page cache of each connection, in KiB. SQLite walks its page cache at the end of every
/// transaction, so the cache's size is paid on every commit as well as in memory: in the soak,
/// with 64 MiB the log writer spent 11% of its time in that walk once the cache had filled, with
/// 8 MiB 3%, and the node's memory is 56 MiB lower. 8 MiB keeps the B-trees' upper levels and
/// the latest pages; older pages come from the system's file cache.
const PAGE_CACHE_KIB: i64 = 8 * 1024;

/// The log size, in 4 KiB frames, at which the writer copies the write-ahead log into the
/// database itself: 64 MiB. Copying is the [`Checkpointer`]'s work; this is what lets the log
/// start over from its beginning (SQLite restarts it only after a checkpoint that copied every
/// frame, which one running beside a busy writer never does), and what bounds it should the
/// checkpointer fall behind.
const WRITER_CHECKPOINT_FRAMES: i64 = 16 * 1024;

/// The least time between two of the [`Checkpointer`]'s checkpoints: each copies what the
/// commits of that time wrote, so a page written many times is copied once.
const CHECKPOINT_PAUSE: Duration = Duration::from_millis(250);

/// Copies the write-ahead log into the database file on its own thread and connection, so a
/// commit never waits behind a checkpoint. With SQLite's default the writer did it every 1,000
/// frames, after the commit that crossed the mark: in the soak that was 2.5 times a second, and
/// each took the writer 12 ms in the first minute and 26 ms in the eighth (more pages written
/// back, then the database file's fsync), which every commit queued behind it waited out. A
/// passive checkpoint copies only frames no commit is still writing and takes no lock a commit
/// needs; the writer's own checkpoint (at [`WRITER_CHECKPOINT_FRAMES`]) then copies only what
/// the last one left, once in ten seconds of the soak. Idle, the thread sleeps until the next
/// commit wakes it.
///
/// After each checkpoint that copied pages the thread also flushes the database file to disk.
/// SQLite flushes it only after a checkpoint that reaches the log's end, which beside a busy
/// writer is the writer's own: a trace of the soak's node showed that flush taking the writer
/// 50 to 60 ms (every commit waiting it out) to write back seconds of the checkpointer's
/// copies, and the checkpointer's rare flushes taking 200 ms, with a commit's log flush as
/// slow meanwhile. Flushed every [`CHECKPOINT_PAUSE`], each holds a quarter second's pages.
struct Checkpointer {
    shared: Arc<CheckpointerShared>,
    thread: Option<JoinHandle<()>>,
}

/// Whether the [`Checkpointer`]'s work is failing, so that the node's log says when it starts
/// failing and when it works again, once each, not once a quarter second.
#[derive(Default)]
struct CheckpointHealth {
    failing: bool,
}

impl CheckpointHealth {
    /// What to tell the operator after a checkpoint ended with `outcome`, if anything changed.
    fn after(&mut self, outcome: Result<(), String>) -> Option<String> {
        match (self.failing, outcome) {
            (false, Err(why)) => {
                self.failing = true;
                Some(format!(
                    "{why}. Commits go on: their pages stay in the write-ahead log (the file beside it, which grows meanwhile), where reads find them, and are copied once a checkpoint succeeds"
                ))
            }
            (true, Ok(())) => {
                self.failing = false;
                Some("checkpoints succeed again".into())
            }
            _ => None,
        }
    }
}

#[derive(Default)]
struct CheckpointerShared {
    state: Mutex<CheckpointerState>,
    woken: Condvar,
}

#[derive(Default)]
struct CheckpointerState {
    /// A commit since the last checkpoint began.
    wrote: bool,
    stop: bool,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Checkpointer, StoreError> {
        let connection = Connection::open(path)?;
        connection.busy_timeout(Duration::from_secs(1))?;
        let database = File::open(path).map_err(|e| {
            StoreError::Io(format!("cannot open {} to flush it: {e}", path.display()))
        })?;
        let shared = Arc::new(CheckpointerShared::default());
        let woken = Arc::clone(&shared);
        let db = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("caravan-checkpoint".into())
            .spawn(move || {
                let mut copied_before = 0;
                let mut health = CheckpointHealth::default();
                while woken.wait_for_commit() {
                    // A checkpoint that fails (a full disk, say) leaves every frame in the log,
                    // where readers find it and the next checkpoint copies it; so does a flush
                    // that fails, since SQLite flushes again before the log starts over.
                    let outcome = connection
                        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                            row.get::<_, i64>(2)
                        })
                        .map_err(|e| format!("a checkpoint failed: {e}"))
                        .and_then(|copied| {
                            if copied != copied_before {
                                database
                                    .sync_data()
                                    .map_err(|e| format!("flushing it to disk failed: {e}"))?;
                                copied_before = copied;
                            }
                            Ok(())
                        });
                    if let Some(news) = health.after(outcome) {
                        eprintln!("copying the write-ahead log into {}: {news}", db.display());
                    }
                    woken.pause();
                }
            })
            .map_err(|e| StoreError::Io(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    fn wake(&self) {
        let mut state = self.shared.state.lock().expect("checkpointer lock");
        if !state.wrote {
            state.wrote = true;
            self.shared.woken.notify_one();
        }
    }
}

impl CheckpointerShared {
    /// Waits for a commit since the last checkpoint began: `false` once the backend closes.
    fn wait_for_commit(&self) -> bool {
        let mut state = self.state.lock().expect("checkpointer lock");
        while !state.wrote && !state.stop {
            state = self.woken.wait(state).expect("checkpointer lock");
        }
        state.wrote = false;
        !state.stop
    }

    /// Waits [`CHECKPOINT_PAUSE`], or less when the backend closes meanwhile.
    fn pause(&self) {
        let state = self.state.lock().expect("checkpointer lock");
        let _ = self
            .woken
            .wait_timeout_while(state, CHECKPOINT_PAUSE, |state| !state.stop)
            .expect("checkpointer lock");
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared.state.lock().expect("checkpointer lock").stop = true;
        self.shared.woken.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub struct SqliteBackend {
    /// The writer's own checkpoints, on another thread; `None` for a reader. Declared first so
    /// it stops before the writer's connection closes, whose close copies what is left.
    checkpointer: Option<Checkpointer>,
    connection: Connection,
    lanes_from: u64,
    /// The writer's exclusive lock on the data directory; readers take none.
    _lock: Option<File>,
}

impl SqliteBackend {
    pub fn open(dir: &Path) -> Result<SqliteBackend, StoreError> {
        fs::create_dir_all(dir).map_err(|e| {
            StoreError::Io(format!(
                "cannot create data directory {}: {e}",
                dir.display()
            ))
        })?;
        let lock_path = dir.join("caravan.lock");
        let lock = File::create(&lock_path)
            .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", lock_path.display())))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::Busy(format!(
                    "another caravan process is using the data directory {}; stop it or choose another directory with --data-dir",
                    dir.display()
                )));
            }
            Err(TryLockError::Error(e)) => {
                return Err(StoreError::Io(format!(
                    "cannot lock {}: {e}",
                    lock_path.display()
                )));
            }
        }
        let opened = || -> Result<SqliteBackend, StoreError> {
            let path = dir.join("caravan.db");
            let connection = Connection::open(&path)?;
            connection.pragma_update(None, "journal_mode", "WAL")?;
            connection.pragma_update(None, "synchronous", "FULL")?;
            connection.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)?;
            connection.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_FRAMES)?;
            let mut backend = SqliteBackend {
                checkpointer: Some(Checkpointer::start(&path)?),
                connection,
                lanes_from: 0,
                _lock: Some(lock),
            };
            backend.migrate()?;
            backend.read_lanes_from()?;
            Ok(backend)
        };
        opened().map_err(|error| damage_named(error, "its header and schema"))
    }

    /// Opens the store in `dir` only to read, beside a writer that may be serving from it: no
    /// lock is taken, nothing is created or migrated, and every write fails. SQLite's
    /// write-ahead log lets the reader see each commit whole while the writer goes on.
    pub fn open_reader(dir: &Path) -> Result<SqliteBackend, StoreError> {
        let path = dir.join("caravan.db");
        if !path.exists() {
            return Err(StoreError::NoStore(format!(
                "there is no caravan store in {}; start one with `caravan init`, or choose the directory with --data-dir",
                dir.display()
            )));
        }
        let opened = || -> Result<SqliteBackend, StoreError> {
            let connection = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            connection.busy_timeout(std::time::Duration::from_secs(10))?;
            connection.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)?;
            let version: i64 =
                connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
            check_schema(version, MIGRATIONS)?;
            let mut backend = SqliteBackend {
                checkpointer: None,
                connection,
                lanes_from: 0,
                _lock: None,
            };
            backend.read_lanes_from()?;
            Ok(backend)
        };
        opened().map_err(|error| damage_named(error, "its header and schema"))
    }

    fn read_lanes_from(&mut self) -> Result<(), StoreError> {
        let lanes_from: i64 =
            self.connection
                .query_row("SELECT from_seq FROM lanes", [], |row| row.get(0))?;
        self.lanes_from = lanes_from as u64;
        Ok(())
    }

    /// Tells the checkpointer the write-ahead log has grown.
    fn wrote(&self) {
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.wake();
        }
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let version: i64 = self
            .connection
            .pragma_query_value(None, "user_version", |row| row.get(0))?;
        for (next, sql) in pending_migrations(version, MIGRATIONS)? {
            let tx = self.connection.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", next)?;
            tx.commit()?;
        }
        Ok(())
    }
}

impl Backend for SqliteBackend {
    fn append(&mut self, commit: &Commit<'_>) -> Result<(), StoreError> {
        let tx = self
            .connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (seq, at_ms, hash, body, lane) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for row in &commit.events {
                let seq = to_i64(row.seq, "sequence number")?;
                match insert.execute(params![
                    seq,
                    to_i64(row.at_ms, "timestamp")?,
                    &row.hash.0[..],
                    &row.body,
                    row.lane as u8
                ]) {
                    Err(rusqlite::Error::SqliteFailure(e, _))
                        if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
                    {
                        return Err(StoreError::Conflict { seq: row.seq });
                    }
                    other => other?,
                };
            }
            let mut insert_bundle = tx.prepare_cached(
                "INSERT INTO epoch_bundles (epoch, root, bundle) VALUES (?1, ?2, ?3)",
            )?;
            for bundle in &commit.bundles {
                insert_bundle.execute(params![
                    to_i64(bundle.epoch, "epoch")?,
                    &bundle.root.0[..],
                    &bundle.json
                ])?;
            }
            let mut insert_snapshot = tx.prepare_cached(
                "INSERT OR REPLACE INTO snapshots (seq, state_hash, state) VALUES (?1, ?2, ?3)",
            )?;
            for snapshot in &commit.snapshots {
                insert_snapshot.execute(params![
                    to_i64(snapshot.seq, "sequence number")?,
                    &snapshot.state_hash.0[..],
                    &snapshot.state
                ])?;
            }
            if !commit.snapshots.is_empty() {
                tx.execute("DELETE FROM snapshots WHERE seq NOT IN (SELECT seq FROM snapshots ORDER BY seq DESC LIMIT ?1)", params![SNAPSHOTS_KEPT as i64])?;
            }
            if let Some(now) = answers_expired_by(&commit.answers) {
                tx.prepare_cached("DELETE FROM kept_answers WHERE expires_ms <= ?1")?
                    .execute(params![to_i64(now, "timestamp")?])?;
            }
            let mut insert_answer = tx.prepare_cached(
                "INSERT OR REPLACE INTO kept_answers (key, fingerprint, kept_at_ms, expires_ms, answer) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for answer in &commit.answers {
                insert_answer.execute(params![
                    &answer.key.0[..],
                    &answer.fingerprint.0[..],
                    to_i64(answer.kept_at_ms, "timestamp")?,
                    to_i64(answer.expires_ms, "timestamp")?,
                    &answer.answer
                ])?;
            }
            if let Some(before) = charged_expired_before(&commit.charged) {
                tx.prepare_cached("DELETE FROM charged_requests WHERE at_ms < ?1")?
                    .execute(params![to_i64(before, "timestamp")?])?;
            }
            let mut insert_charged = tx.prepare_cached(
                "INSERT OR REPLACE INTO charged_requests (request, at_ms) VALUES (?1, ?2)",
            )?;
            for charged in &commit.charged {
                insert_charged.execute(params![
                    &charged.request.0[..],
                    to_i64(charged.at_ms, "timestamp")?
                ])?;
            }
            if let Some(from) = commit.charged_requests_from {
                tx.prepare_cached("UPDATE charged_requests_from SET from_seq = ?1")?
                    .execute(params![to_i64(from, "sequence number")?])?;
            }
            add_spending(&tx, &commit.spending)?;
            if let Some(to) = commit.spending_counted_to {
                tx.prepare_cached("UPDATE spending_counted SET to_seq = ?1")?
                    .execute(params![to_i64(to, "sequence number")?])?;
            }
        }
        tx.commit()?;
        self.wrote();
        Ok(())
    }

    fn spending_counted_to(&mut self) -> Result<u64, StoreError> {
        let from: i64 =
            self.connection
                .query_row("SELECT to_seq FROM spending_counted", [], |row| row.get(0))?;
        Ok(from as u64)
    }

    fn spending(&mut self, payer: &Address, from_day: u64) -> Result<Vec<Spending>, StoreError> {
        let mut select = self.connection.prepare_cached(
            "SELECT day, asset, token, calls, uses, amount FROM spending WHERE payer = ?1 AND day >= ?2 ORDER BY day, asset, token",
        )?;
        let rows = select.query_map(params![&payer.0[..], to_i64(from_day, "day")?], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, Vec<u8>>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, i64>(4)?,
                row.get::<_, String>(5)?,
            ))
        })?;
        rows.map(|row| {
            let (day, asset, token, calls, uses, amount) = row?;
            spending_row(*payer, day, &asset, &token, [calls, uses], &amount)
        })
        .collect()
    }

    fn read(&mut self, from: u64, limit: usize) -> Result<Vec<EventRow>, StoreError> {
        let select = self.connection.prepare_cached(
            "SELECT seq, at_ms, hash, body, lane FROM events WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
        )?;
        rows_of(select, from, limit)
    }

    fn lanes_from(&self) -> u64 {
        self.lanes_from
    }

    fn read_lane_only(
        &mut self,
        lane: Lane,
        from: u64,
        limit: usize,
    ) -> Result<Vec<EventRow>, StoreError> {
        let select = self.connection.prepare_cached(&format!(
            "SELECT seq, at_ms, hash, body, lane FROM events WHERE lane = {} AND seq >= ?1 ORDER BY seq LIMIT ?2",
            lane as u8
        ))?;
        rows_of(select, from, limit)
    }

    fn event_count(&mut self) -> Result<u64, StoreError> {
        let max: Option<i64> = self
            .connection
            .query_row("SELECT MAX(seq) FROM events", [], |row| row.get(0))
            .map_err(|error| damage_named(error.into(), "the end of the event log"))?;
        Ok(max.map(|m| m as u64 + 1).unwrap_or(0))
    }

    fn bundle(&mut self, epoch: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .connection
            .query_row(
                "SELECT bundle FROM epoch_bundles WHERE epoch = ?1",
                params![to_i64(epoch, "epoch")?],
                |row| row.get(0),
            )
            .optional()?)
    }

    fn has_bundle(&mut self, epoch: u64) -> Result<bool, StoreError> {
        Ok(self
            .connection
            .query_row(
                "SELECT 1 FROM epoch_bundles WHERE epoch = ?1",
                params![to_i64(epoch, "epoch")?],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    fn answer(&mut self, key: &Hash32, now_ms: u64) -> Result<Option<AnswerRow>, StoreError> {
        let row = self
            .connection
            .prepare_cached(
                "SELECT fingerprint, kept_at_ms, expires_ms, answer FROM kept_answers WHERE key = ?1 AND expires_ms > ?2",
            )?
            .query_row(params![&key.0[..], to_i64(now_ms, "timestamp")?], |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, Vec<u8>>(3)?,
                ))
            })
            .optional()?;
        row.map(|(fingerprint, kept_at_ms, expires_ms, answer)| {
            Ok(AnswerRow {
                key: *key,
                fingerprint: answer_fingerprint(&fingerprint)?,
                kept_at_ms: kept_at_ms as u64,
                expires_ms: expires_ms as u64,
                answer,
            })
        })
        .transpose()
    }

    fn charged_at(&mut self, request: &Hash32, since_ms: u64) -> Result<Option<u64>, StoreError> {
        let at: Option<i64> = self
            .connection
            .prepare_cached(
                "SELECT at_ms FROM charged_requests WHERE request = ?1 AND at_ms >= ?2",
            )?
            .query_row(
                params![&request.0[..], to_i64(since_ms, "timestamp")?],
                |row| row.get(0),
            )
            .optional()?;
        Ok(at.map(|at| at as u64))
    }

    fn charged_requests_from(&mut self) -> Result<u64, StoreError> {
        let from: i64 =
            self.connection
                .query_row("SELECT from_seq FROM charged_requests_from", [], |row| {
                    row.get(0)
                })?;
        Ok(from as u64)
    }

    fn sign_in(&mut self, ops: &[SignInOp], now_ms: u64) -> Result<Vec<bool>, StoreError> {
        let now = to_i64(now_ms, "timestamp")?;
        let tx = self
            .connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.prepare_cached("DELETE FROM sign_in_nonces WHERE expires_ms <= ?1")?
            .execute(params![now])?;
        tx.prepare_cached("DELETE FROM sessions WHERE expires_ms <= ?1")?
            .execute(params![now])?;
        let mut done = Vec::with_capacity(ops.len());
        for op in ops {
            done.push(match op {
                SignInOp::IssueNonce { nonce, expires_ms } => {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO sign_in_nonces (nonce, expires_ms) VALUES (?1, ?2)",
                    )?
                    .execute(params![nonce, to_i64(*expires_ms, "timestamp")?])?;
                    true
                }
                SignInOp::OpenSession { nonce, session } => {
                    let used = tx
                        .prepare_cached("DELETE FROM sign_in_nonces WHERE nonce = ?1")?
                        .execute(params![nonce])?;
                    if used == 1 {
                        tx.prepare_cached(
                            "INSERT INTO sessions (id_hash, account, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4)",
                        )?
                        .execute(params![
                            &session.id_hash.0[..],
                            &session.account.0[..],
                            to_i64(session.created_ms, "timestamp")?,
                            to_i64(session.expires_ms, "timestamp")?
                        ])?;
                    }
                    used == 1
                }
                SignInOp::EndSession { id_hash } => {
                    tx.prepare_cached("DELETE FROM sessions WHERE id_hash = ?1")?
                        .execute(params![&id_hash.0[..]])?
                        == 1
                }
            });
        }
        tx.commit()?;
        self.wrote();
        Ok(done)
    }

    fn session(&mut self, id_hash: &Hash32, now_ms: u64) -> Result<Option<SessionRow>, StoreError> {
        let row = self
            .connection
            .prepare_cached(
                "SELECT account, created_ms, expires_ms FROM sessions WHERE id_hash = ?1 AND expires_ms > ?2",
            )?
            .query_row(
                params![&id_hash.0[..], to_i64(now_ms, "timestamp")?],
                |row| {
                    Ok((
                        row.get::<_, Vec<u8>>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(account, created_ms, expires_ms)| {
            Ok(SessionRow {
                id_hash: *id_hash,
                account: session_account(&account)?,
                created_ms: created_ms as u64,
                expires_ms: expires_ms as u64,
            })
        })
        .transpose()
    }

    fn snapshots(&mut self) -> Result<Vec<SnapshotRow>, StoreError> {
        let mut select = self
            .connection
            .prepare_cached("SELECT seq, state_hash, state FROM snapshots ORDER BY seq")?;
        let rows = select.query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, Vec<u8>>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, hash, state) = row?;
            out.push(SnapshotRow {
                seq: seq as u64,
                state_hash: hash_from(&hash, seq)?,
                state,
            });
        }
        Ok(out)
    }
}

/// The events a `SELECT seq, at_ms, hash, body, lane` with `?1 = from` and `?2 = limit` gives.
/// Adds `spending` to the spend table: read, add, write back, since SQLite's integers stop at
/// 2^63 and amounts are u128.
fn add_spending(tx: &rusqlite::Transaction<'_>, spending: &[Spending]) -> Result<(), StoreError> {
    if spending.is_empty() {
        return Ok(());
    }
    let mut select = tx.prepare_cached(
        "SELECT calls, uses, amount FROM spending WHERE payer = ?1 AND day = ?2 AND asset = ?3 AND token = ?4",
    )?;
    let mut upsert = tx.prepare_cached(
        "INSERT OR REPLACE INTO spending (payer, day, asset, token, calls, uses, amount) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for spent in spending {
        let key = params![
            &spent.payer.0[..],
            to_i64(spent.day, "day")?,
            &spent.asset.0.0[..],
            &spent.token.0[..]
        ];
        let before: Option<(i64, i64, String)> = select
            .query_row(key, |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .optional()?;
        let sum = match before {
            Some((calls, uses, amount)) => {
                let (asset, token) = (&spent.asset.0.0[..], &spent.token.0[..]);
                let day = to_i64(spent.day, "day")?;
                let mut sum = spending_row(spent.payer, day, asset, token, [calls, uses], &amount)?;
                sum.add(spent)
                    .map_err(|overflow| StoreError::Corrupt(overflow.to_string()))?;
                sum
            }
            None => *spent,
        };
        upsert.execute(params![
            &spent.payer.0[..],
            to_i64(spent.day, "day")?,
            &spent.asset.0.0[..],
            &spent.token.0[..],
            to_i64(sum.calls, "call count")?,
            to_i64(sum.uses, "use count")?,
            sum.amount.to_string()
        ])?;
    }
    Ok(())
}

/// The stored events `select` finds from `from` on; where the file is damaged, the error says
/// which events the damage holds.
fn rows_of(
    select: rusqlite::CachedStatement<'_>,
    from: u64,
    limit: usize,
) -> Result<Vec<EventRow>, StoreError> {
    read_rows(select, from, limit)
        .map_err(|error| damage_named(error, &format!("the events from {from} on")))
}

/// A SQLite error saying the file is damaged, with what was being read there; other errors as
/// they are.
fn damage_named(error: StoreError, what: &str) -> StoreError {
    match &error {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(failure, _))
            if matches!(
                failure.code,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
            ) =>
        {
            StoreError::Corrupt(format!(
                "the SQLite file caravan.db is damaged where it keeps {what} ({error}); `sqlite3 caravan.db 'PRAGMA integrity_check'` lists the damaged pages. Restore the store from a backup"
            ))
        }
        _ => error,
    }
}

fn read_rows(
    mut select: rusqlite::CachedStatement<'_>,
    from: u64,
    limit: usize,
) -> Result<Vec<EventRow>, StoreError> {
    let rows = select.query_map(
        params![to_i64(from, "sequence number")?, limit as i64],
        |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, Vec<u8>>(2)?,
                row.get::<_, Vec<u8>>(3)?,
                row.get::<_, i64>(4)?,
            ))
        },
    )?;
    let mut out = Vec::with_capacity(limit.min(65_536));
    for row in rows {
        let (seq, at_ms, hash, body, lane) = row?;
        out.push(EventRow {
            seq: seq as u64,
            at_ms: at_ms as u64,
            hash: hash_from(&hash, seq)?,
            body,
            lane: lane_from(lane, seq)?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::CheckpointHealth;

    #[test]
    fn a_failing_checkpointer_says_so_once_and_once_more_when_it_recovers() {
        let mut health = CheckpointHealth::default();
        assert_eq!(health.after(Ok(())), None, "working, nothing to say");
        let failed = health.after(Err("a checkpoint failed: database or disk is full".into()));
        assert!(
            failed.as_deref().is_some_and(|news| news
                .starts_with("a checkpoint failed: database or disk is full. Commits go on")),
            "{failed:?}"
        );
        assert_eq!(
            health.after(Err(
                "flushing it to disk failed: No space left on device".into()
            )),
            None,
            "still failing: said already"
        );
        assert_eq!(
            health.after(Ok(())).as_deref(),
            Some("checkpoints succeed again")
        );
        assert_eq!(health.after(Ok(())), None);
    }
}

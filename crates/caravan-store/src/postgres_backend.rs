//! The scale backend: PostgreSQL. Batches go in as arrays through one `INSERT … SELECT unnest`,
//! committed with the server's default synchronous commit. An advisory lock keeps a second caravan
//! process from writing the same database.

use postgres::Client;
use postgres::error::SqlState;

use caravan_core::{Address, Hash32, Lane, Spending};

use crate::backend::{
    AnswerRow, Backend, ChargedRequest, Commit, EventRow, SNAPSHOTS_KEPT, SessionRow, SignInOp,
    SnapshotRow, StoreError, answer_fingerprint, answers_expired_by, charged_expired_before,
    check_schema, hash_from, lane_from, pending_migrations, redact, session_account, spending_row,
    to_i64,
};

/// Schema migrations in order; `caravan_schema.version` records how many have run.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE events (
        seq    BIGINT PRIMARY KEY,
        at_ms  BIGINT NOT NULL,
        hash   BYTEA  NOT NULL,
        body   BYTEA  NOT NULL
    );
    CREATE TABLE epoch_bundles (
        epoch  BIGINT PRIMARY KEY,
        root   BYTEA NOT NULL,
        bundle BYTEA NOT NULL
    );
",
    "
    CREATE TABLE snapshots (
        seq        BIGINT PRIMARY KEY,
        state_hash BYTEA NOT NULL,
        state      BYTEA NOT NULL
    );
",
    // Lanes: each lane's partial index holds only its own events, so the calls that make up
    // most of a log cost nothing to index. Events stored before this migration keep lane 0.
    "
    ALTER TABLE events ADD COLUMN lane SMALLINT NOT NULL DEFAULT 0;
    CREATE INDEX events_lane_1 ON events (seq) WHERE lane = 1;
    CREATE INDEX events_lane_2 ON events (seq) WHERE lane = 2;
    CREATE INDEX events_lane_3 ON events (seq) WHERE lane = 3;
    CREATE TABLE lanes (from_seq BIGINT NOT NULL);
    INSERT INTO lanes (from_seq) SELECT COALESCE(MAX(seq) + 1, 0) FROM events;
",
    // Answers kept for retried requests: a cache beside the log, pruned by expiry.
    "
    CREATE TABLE kept_answers (
        key         BYTEA  PRIMARY KEY,
        fingerprint BYTEA  NOT NULL,
        kept_at_ms  BIGINT NOT NULL,
        expires_ms  BIGINT NOT NULL,
        answer      BYTEA  NOT NULL
    );
    CREATE INDEX kept_answers_expiry ON kept_answers (expires_ms);
",
    // Sign-in: nonces the node made (each usable once) and open sessions, by their id's hash.
    "
    CREATE TABLE sign_in_nonces (
        nonce      TEXT   PRIMARY KEY,
        expires_ms BIGINT NOT NULL
    );
    CREATE INDEX sign_in_nonces_expiry ON sign_in_nonces (expires_ms);
    CREATE TABLE sessions (
        id_hash    BYTEA  PRIMARY KEY,
        account    BYTEA  NOT NULL,
        created_ms BIGINT NOT NULL,
        expires_ms BIGINT NOT NULL
    );
    CREATE INDEX sessions_expiry ON sessions (expires_ms);
",
    // What each payer spent per UTC day, asset and token. `spending_counted` says up to which
    // event it counts; a writer that opens the store adds what the events after charged.
    "
    CREATE TABLE spending (
        payer  BYTEA         NOT NULL,
        day    BIGINT        NOT NULL,
        asset  BYTEA         NOT NULL,
        token  BYTEA         NOT NULL,
        calls  BIGINT        NOT NULL,
        uses   BIGINT        NOT NULL,
        amount NUMERIC(39,0) NOT NULL,
        PRIMARY KEY (payer, day, asset, token)
    );
    CREATE TABLE spending_counted (to_seq BIGINT NOT NULL);
    INSERT INTO spending_counted (to_seq) VALUES (0);
",
    // Requests charged under an idempotency key in the last day, by id. The index is complete
    // from `charged_requests_from` on; a writer that opens the store indexes the day's calls
    // stored before it.
    "
    CREATE TABLE charged_requests (
        request BYTEA  PRIMARY KEY,
        at_ms   BIGINT NOT NULL
    );
    CREATE INDEX charged_requests_age ON charged_requests (at_ms);
    CREATE TABLE charged_requests_from (from_seq BIGINT NOT NULL);
    INSERT INTO charged_requests_from (from_seq) SELECT COALESCE(MAX(seq) + 1, 0) FROM events;
",
];

/// Adds a commit's spending to the spend table; `$1`…`$7` are its columns as arrays.
const ADD_SPENDING: &str = "INSERT INTO spending (payer, day, asset, token, calls, uses, amount) SELECT p, d, a, t, c, u, m::NUMERIC FROM unnest($1::BYTEA[], $2::BIGINT[], $3::BYTEA[], $4::BYTEA[], $5::BIGINT[], $6::BIGINT[], $7::TEXT[]) AS s(p, d, a, t, c, u, m) ON CONFLICT (payer, day, asset, token) DO UPDATE SET calls = spending.calls + EXCLUDED.calls, uses = spending.uses + EXCLUDED.uses, amount = spending.amount + EXCLUDED.amount";

/// A commit's charged requests as the two columns of one `unnest` insert, each request once
/// (its latest charge): one statement may not update a row twice.
fn charged_columns<'a>(
    charged: &[&'a ChargedRequest],
) -> Result<(Vec<&'a [u8]>, Vec<i64>), StoreError> {
    let mut latest: Vec<&ChargedRequest> = charged.to_vec();
    latest.sort_by_key(|row| (row.request, std::cmp::Reverse(row.at_ms)));
    latest.dedup_by_key(|row| row.request);
    let requests = latest.iter().map(|row| &row.request.0[..]).collect();
    let times = latest
        .iter()
        .map(|row| to_i64(row.at_ms, "timestamp"))
        .collect::<Result<_, _>>()?;
    Ok((requests, times))
}

/// Arbitrary constant naming caravan's advisory lock (advisory locks are per database).
const WRITER_LOCK: i64 = 0x6361_7261_7661_6e00;
/// Tries at taking the lock, about two seconds in all.
const LOCK_ATTEMPTS: u32 = 10;

pub struct PostgresBackend {
    client: Client,
    lanes_from: u64,
}

impl PostgresBackend {
    pub fn connect(url: &str) -> Result<PostgresBackend, StoreError> {
        let client = crate::postgres_tls::connect(url)?;
        let mut backend = PostgresBackend {
            client,
            lanes_from: 0,
        };
        // A session that just closed may still hold the lock for a moment while the server
        // tears it down, so ask a few times before calling the database busy.
        let mut locked = false;
        for attempt in 0..LOCK_ATTEMPTS {
            locked = backend
                .client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&WRITER_LOCK])?
                .get(0);
            if locked {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20 << attempt.min(4)));
        }
        if !locked {
            return Err(StoreError::Busy(format!(
                "another caravan process is using the database at {}; stop it first",
                redact(url)
            )));
        }
        backend.migrate()?;
        backend.read_lanes_from()?;
        Ok(backend)
    }

    /// Connects to the store at `url` only to read, beside a writer that may be serving from
    /// it: the writer's lock is not taken, nothing is created or migrated, and the session is
    /// read-only, so every write fails. Each read sees committed transactions whole.
    pub fn connect_reader(url: &str) -> Result<PostgresBackend, StoreError> {
        let mut client = crate::postgres_tls::connect(url)?;
        client.batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")?;
        let created: bool = client
            .query_one("SELECT to_regclass('caravan_schema') IS NOT NULL", &[])?
            .get(0);
        let version: Option<i64> = match created {
            true => client
                .query_opt("SELECT version FROM caravan_schema", &[])?
                .map(|row| row.get(0)),
            false => None,
        };
        let Some(version) = version else {
            return Err(StoreError::NoStore(format!(
                "the database at {} holds no caravan store; start one with `caravan init --database …`",
                redact(url)
            )));
        };
        check_schema(version, MIGRATIONS)?;
        let mut backend = PostgresBackend {
            client,
            lanes_from: 0,
        };
        backend.read_lanes_from()?;
        Ok(backend)
    }

    fn read_lanes_from(&mut self) -> Result<(), StoreError> {
        let lanes_from: i64 = self
            .client
            .query_one("SELECT from_seq FROM lanes", &[])?
            .get(0);
        self.lanes_from = lanes_from as u64;
        Ok(())
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let mut tx = self.client.transaction()?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS caravan_schema (version BIGINT NOT NULL); LOCK TABLE caravan_schema;")?;
        let version: i64 = match tx.query_opt("SELECT version FROM caravan_schema", &[])? {
            Some(row) => row.get(0),
            None => {
                tx.execute("INSERT INTO caravan_schema (version) VALUES (0)", &[])?;
                0
            }
        };
        for (next, sql) in pending_migrations(version, MIGRATIONS)? {
            tx.batch_execute(sql)?;
            tx.execute("UPDATE caravan_schema SET version = $1", &[&next])?;
        }
        tx.commit()?;
        Ok(())
    }
}

impl Backend for PostgresBackend {
    fn append(&mut self, commit: &Commit<'_>) -> Result<(), StoreError> {
        let events = &commit.events;
        let mut seqs = Vec::with_capacity(events.len());
        let mut times = Vec::with_capacity(events.len());
        let mut hashes: Vec<&[u8]> = Vec::with_capacity(events.len());
        let mut bodies: Vec<&[u8]> = Vec::with_capacity(events.len());
        let mut lanes: Vec<i16> = Vec::with_capacity(events.len());
        for row in events {
            seqs.push(to_i64(row.seq, "sequence number")?);
            times.push(to_i64(row.at_ms, "timestamp")?);
            hashes.push(&row.hash.0);
            bodies.push(&row.body);
            lanes.push(i16::from(row.lane as u8));
        }
        let mut tx = self.client.transaction()?;
        let inserted = tx.execute(
            "INSERT INTO events (seq, at_ms, hash, body, lane) SELECT * FROM unnest($1::BIGINT[], $2::BIGINT[], $3::BYTEA[], $4::BYTEA[], $5::SMALLINT[])",
            &[&seqs, &times, &hashes, &bodies, &lanes],
        );
        match inserted {
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                return Err(StoreError::Conflict {
                    seq: events.first().map(|r| r.seq).unwrap_or(0),
                });
            }
            other => other?,
        };
        for bundle in &commit.bundles {
            tx.execute(
                "INSERT INTO epoch_bundles (epoch, root, bundle) VALUES ($1, $2, $3)",
                &[
                    &to_i64(bundle.epoch, "epoch")?,
                    &&bundle.root.0[..],
                    &bundle.json,
                ],
            )?;
        }
        for snapshot in &commit.snapshots {
            tx.execute(
                "INSERT INTO snapshots (seq, state_hash, state) VALUES ($1, $2, $3) ON CONFLICT (seq) DO UPDATE SET state_hash = EXCLUDED.state_hash, state = EXCLUDED.state",
                &[&to_i64(snapshot.seq, "sequence number")?, &&snapshot.state_hash.0[..], &snapshot.state],
            )?;
        }
        if !commit.snapshots.is_empty() {
            tx.execute("DELETE FROM snapshots WHERE seq NOT IN (SELECT seq FROM snapshots ORDER BY seq DESC LIMIT $1)", &[&(SNAPSHOTS_KEPT as i64)])?;
        }
        if let Some(now) = answers_expired_by(&commit.answers) {
            tx.execute(
                "DELETE FROM kept_answers WHERE expires_ms <= $1",
                &[&to_i64(now, "timestamp")?],
            )?;
        }
        for answer in &commit.answers {
            tx.execute(
                "INSERT INTO kept_answers (key, fingerprint, kept_at_ms, expires_ms, answer) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, kept_at_ms = EXCLUDED.kept_at_ms, expires_ms = EXCLUDED.expires_ms, answer = EXCLUDED.answer",
                &[
                    &&answer.key.0[..],
                    &&answer.fingerprint.0[..],
                    &to_i64(answer.kept_at_ms, "timestamp")?,
                    &to_i64(answer.expires_ms, "timestamp")?,
                    &answer.answer,
                ],
            )?;
        }
        if let Some(before) = charged_expired_before(&commit.charged) {
            tx.execute(
                "DELETE FROM charged_requests WHERE at_ms < $1",
                &[&to_i64(before, "timestamp")?],
            )?;
        }
        if !commit.charged.is_empty() {
            let (requests, times) = charged_columns(&commit.charged)?;
            tx.execute(
                "INSERT INTO charged_requests (request, at_ms) SELECT * FROM unnest($1::BYTEA[], $2::BIGINT[]) ON CONFLICT (request) DO UPDATE SET at_ms = EXCLUDED.at_ms",
                &[&requests, &times],
            )?;
        }
        if let Some(from) = commit.charged_requests_from {
            tx.execute(
                "UPDATE charged_requests_from SET from_seq = $1",
                &[&to_i64(from, "sequence number")?],
            )?;
        }
        if !commit.spending.is_empty() {
            let spending = SpendingColumns::of(&commit.spending)?;
            tx.execute(
                ADD_SPENDING,
                &[
                    &spending.payers,
                    &spending.days,
                    &spending.assets,
                    &spending.tokens,
                    &spending.calls,
                    &spending.uses,
                    &spending.amounts,
                ],
            )?;
        }
        if let Some(to) = commit.spending_counted_to {
            tx.execute(
                "UPDATE spending_counted SET to_seq = $1",
                &[&to_i64(to, "sequence number")?],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn spending_counted_to(&mut self) -> Result<u64, StoreError> {
        let from: i64 = self
            .client
            .query_one("SELECT to_seq FROM spending_counted", &[])?
            .get(0);
        Ok(from as u64)
    }

    fn spending(&mut self, payer: &Address, from_day: u64) -> Result<Vec<Spending>, StoreError> {
        let rows = self.client.query(
            "SELECT day, asset, token, calls, uses, amount::TEXT FROM spending WHERE payer = $1 AND day >= $2 ORDER BY day, asset, token",
            &[&&payer.0[..], &to_i64(from_day, "day")?],
        )?;
        rows.iter()
            .map(|row| {
                let asset: &[u8] = row.get(1);
                let token: &[u8] = row.get(2);
                let amount: &str = row.get(5);
                spending_row(
                    *payer,
                    row.get(0),
                    asset,
                    token,
                    [row.get(3), row.get(4)],
                    amount,
                )
            })
            .collect()
    }

    fn read(&mut self, from: u64, limit: usize) -> Result<Vec<EventRow>, StoreError> {
        let rows = self.client.query(
            "SELECT seq, at_ms, hash, body, lane FROM events WHERE seq >= $1 ORDER BY seq LIMIT $2",
            &[&to_i64(from, "sequence number")?, &(limit as i64)],
        )?;
        rows.into_iter().map(event_row).collect()
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
        let rows = self.client.query(
            &format!(
                "SELECT seq, at_ms, hash, body, lane FROM events WHERE lane = {} AND seq >= $1 ORDER BY seq LIMIT $2",
                lane as u8
            ),
            &[&to_i64(from, "sequence number")?, &(limit as i64)],
        )?;
        rows.into_iter().map(event_row).collect()
    }

    fn event_count(&mut self) -> Result<u64, StoreError> {
        let max: Option<i64> = self
            .client
            .query_one("SELECT MAX(seq) FROM events", &[])?
            .get(0);
        Ok(max.map(|m| m as u64 + 1).unwrap_or(0))
    }

    fn bundle(&mut self, epoch: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let row = self.client.query_opt(
            "SELECT bundle FROM epoch_bundles WHERE epoch = $1",
            &[&to_i64(epoch, "epoch")?],
        )?;
        Ok(row.map(|r| r.get(0)))
    }

    fn has_bundle(&mut self, epoch: u64) -> Result<bool, StoreError> {
        Ok(self
            .client
            .query_opt(
                "SELECT 1 FROM epoch_bundles WHERE epoch = $1",
                &[&to_i64(epoch, "epoch")?],
            )?
            .is_some())
    }

    fn answer(&mut self, key: &Hash32, now_ms: u64) -> Result<Option<AnswerRow>, StoreError> {
        let row = self.client.query_opt(
            "SELECT fingerprint, kept_at_ms, expires_ms, answer FROM kept_answers WHERE key = $1 AND expires_ms > $2",
            &[&&key.0[..], &to_i64(now_ms, "timestamp")?],
        )?;
        row.map(|row| {
            let kept_at_ms: i64 = row.get(1);
            let expires_ms: i64 = row.get(2);
            Ok(AnswerRow {
                key: *key,
                fingerprint: answer_fingerprint(row.get(0))?,
                kept_at_ms: kept_at_ms as u64,
                expires_ms: expires_ms as u64,
                answer: row.get(3),
            })
        })
        .transpose()
    }

    fn charged_at(&mut self, request: &Hash32, since_ms: u64) -> Result<Option<u64>, StoreError> {
        let row = self.client.query_opt(
            "SELECT at_ms FROM charged_requests WHERE request = $1 AND at_ms >= $2",
            &[&&request.0[..], &to_i64(since_ms, "timestamp")?],
        )?;
        Ok(row.map(|row| row.get::<_, i64>(0) as u64))
    }

    fn charged_requests_from(&mut self) -> Result<u64, StoreError> {
        let from: i64 = self
            .client
            .query_one("SELECT from_seq FROM charged_requests_from", &[])?
            .get(0);
        Ok(from as u64)
    }

    fn sign_in(&mut self, ops: &[SignInOp], now_ms: u64) -> Result<Vec<bool>, StoreError> {
        let now = to_i64(now_ms, "timestamp")?;
        let mut tx = self.client.transaction()?;
        tx.execute("DELETE FROM sign_in_nonces WHERE expires_ms <= $1", &[&now])?;
        tx.execute("DELETE FROM sessions WHERE expires_ms <= $1", &[&now])?;
        let mut done = Vec::with_capacity(ops.len());
        for op in ops {
            done.push(match op {
                SignInOp::IssueNonce { nonce, expires_ms } => {
                    tx.execute(
                        "INSERT INTO sign_in_nonces (nonce, expires_ms) VALUES ($1, $2) ON CONFLICT (nonce) DO UPDATE SET expires_ms = EXCLUDED.expires_ms",
                        &[nonce, &to_i64(*expires_ms, "timestamp")?],
                    )?;
                    true
                }
                SignInOp::OpenSession { nonce, session } => {
                    // The row lock DELETE takes makes a concurrent use of the nonce (by another
                    // node on this database) wait and then find it gone.
                    let used = tx.execute("DELETE FROM sign_in_nonces WHERE nonce = $1", &[nonce])?;
                    if used == 1 {
                        tx.execute(
                            "INSERT INTO sessions (id_hash, account, created_ms, expires_ms) VALUES ($1, $2, $3, $4)",
                            &[
                                &&session.id_hash.0[..],
                                &&session.account.0[..],
                                &to_i64(session.created_ms, "timestamp")?,
                                &to_i64(session.expires_ms, "timestamp")?,
                            ],
                        )?;
                    }
                    used == 1
                }
                SignInOp::EndSession { id_hash } => {
                    tx.execute("DELETE FROM sessions WHERE id_hash = $1", &[&&id_hash.0[..]])? == 1
                }
            });
        }
        tx.commit()?;
        Ok(done)
    }

    fn session(&mut self, id_hash: &Hash32, now_ms: u64) -> Result<Option<SessionRow>, StoreError> {
        let row = self.client.query_opt(
            "SELECT account, created_ms, expires_ms FROM sessions WHERE id_hash = $1 AND expires_ms > $2",
            &[&&id_hash.0[..], &to_i64(now_ms, "timestamp")?],
        )?;
        row.map(|row| {
            let created_ms: i64 = row.get(1);
            let expires_ms: i64 = row.get(2);
            Ok(SessionRow {
                id_hash: *id_hash,
                account: session_account(row.get(0))?,
                created_ms: created_ms as u64,
                expires_ms: expires_ms as u64,
            })
        })
        .transpose()
    }

    fn snapshots(&mut self) -> Result<Vec<SnapshotRow>, StoreError> {
        let rows = self.client.query(
            "SELECT seq, state_hash, state FROM snapshots ORDER BY seq",
            &[],
        )?;
        rows.into_iter()
            .map(|row| {
                let seq: i64 = row.get(0);
                let hash: &[u8] = row.get(1);
                Ok(SnapshotRow {
                    seq: seq as u64,
                    state_hash: hash_from(hash, seq)?,
                    state: row.get(2),
                })
            })
            .collect()
    }
}

/// The event a `SELECT seq, at_ms, hash, body, lane` row holds.
fn event_row(row: postgres::Row) -> Result<EventRow, StoreError> {
    let seq: i64 = row.get(0);
    let at_ms: i64 = row.get(1);
    let hash: &[u8] = row.get(2);
    let lane: i16 = row.get(4);
    Ok(EventRow {
        seq: seq as u64,
        at_ms: at_ms as u64,
        hash: hash_from(hash, seq)?,
        body: row.get(3),
        lane: lane_from(i64::from(lane), seq)?,
    })
}

impl Drop for PostgresBackend {
    /// Releases the writer lock before the connection closes, so a reopen right after (a reload
    /// after a failed write, the next command) does not race the server's teardown of this session.
    fn drop(&mut self) {
        let _ = self
            .client
            .execute("SELECT pg_advisory_unlock($1)", &[&WRITER_LOCK]);
    }
}

/// A commit's spending as the arrays of [`ADD_SPENDING`].
struct SpendingColumns {
    payers: Vec<Vec<u8>>,
    days: Vec<i64>,
    assets: Vec<Vec<u8>>,
    tokens: Vec<Vec<u8>>,
    calls: Vec<i64>,
    uses: Vec<i64>,
    amounts: Vec<String>,
}

impl SpendingColumns {
    fn of(spending: &[Spending]) -> Result<SpendingColumns, StoreError> {
        let mut columns = SpendingColumns {
            payers: Vec::with_capacity(spending.len()),
            days: Vec::with_capacity(spending.len()),
            assets: Vec::with_capacity(spending.len()),
            tokens: Vec::with_capacity(spending.len()),
            calls: Vec::with_capacity(spending.len()),
            uses: Vec::with_capacity(spending.len()),
            amounts: Vec::with_capacity(spending.len()),
        };
        for spent in spending {
            columns.payers.push(spent.payer.0.to_vec());
            columns.days.push(to_i64(spent.day, "day")?);
            columns.assets.push(spent.asset.0.0.to_vec());
            columns.tokens.push(spent.token.0.to_vec());
            columns.calls.push(to_i64(spent.calls, "call count")?);
            columns.uses.push(to_i64(spent.uses, "use count")?);
            columns.amounts.push(spent.amount.to_string());
        }
        Ok(columns)
    }
}

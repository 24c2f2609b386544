//! One test suite, run against both backends. The SQLite half always runs; the PostgreSQL half
//! is ignored by default and runs with `--run-ignored` when `CARAVAN_TEST_POSTGRES_URL` names a
//! server where it may create databases (`.ci/run` does this).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use caravan_core::*;
use caravan_store::*;

/// A store that exists for one test and is removed afterwards.
struct Scratch {
    location: Location,
    _dir: Option<tempfile::TempDir>,
    dropper: Option<(String, String)>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = &self.dropper {
            let _ = Location::drop_postgres_database(admin_url, name);
        }
    }
}

fn sqlite() -> Scratch {
    let dir = tempfile::tempdir().unwrap();
    Scratch {
        location: Location::DataDir(dir.path().join("data")),
        _dir: Some(dir),
        dropper: None,
    }
}

fn postgres() -> Scratch {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let admin_url = std::env::var("CARAVAN_TEST_POSTGRES_URL").expect("set CARAVAN_TEST_POSTGRES_URL to a PostgreSQL URL where tests may create databases, e.g. postgres://postgres@127.0.0.1:5432/postgres");
    let name = format!(
        "caravan_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let location =
        Location::create_postgres_database(&admin_url, &name).expect("create a test database");
    Scratch {
        location,
        _dir: None,
        dropper: Some((admin_url, name)),
    }
}

fn open(location: &Location) -> Journal {
    Journal::open(location.clone(), &mut |_, _| {}).unwrap()
}

/// One of the ways to open a journal: [`Journal::open`], `open_reader` or `open_verifying`.
type Opener = fn(Location, &mut dyn FnMut(u64, u64)) -> Result<Journal, JournalError>;

/// Why `opener` refused the store at `location`; `refused` says why it must have.
fn refusal(opener: Opener, location: &Location, refused: &str) -> String {
    opener(location.clone(), &mut |_, _| {})
        .err()
        .expect(refused)
        .to_string()
}

fn usdc() -> Token {
    Token {
        address: Address::from_label("usdc"),
        symbol: "USDC".into(),
        decimals: 6,
    }
}

fn dataset(name: &str) -> Manifest {
    let mut manifest = Manifest {
        kind: AssetKind::Dataset,
        name: name.into(),
        owner: Address::from_label("owner"),
        content: keccak256(name.as_bytes()),
        licence: Licence::OpenUse,
        parents: vec![],
        roles: vec![RoleShare {
            role: Role::DataContributor,
            share: Ppm::ONE,
            members: (0..5)
                .map(|i| Member {
                    account: Address::from_label(&format!("{name} {i}")),
                    weight: i + 1,
                })
                .collect(),
        }],
    };
    manifest.normalise();
    manifest
}

fn seed_economy(journal: &mut Journal) -> AssetId {
    seed_economy_at(journal, now_ms())
}

/// [`seed_economy`], its events stamped `at_ms`.
fn seed_economy_at(journal: &mut Journal, at_ms: u64) -> AssetId {
    let data = dataset("reviews");
    let id = data.id();
    let payer = Address::from_label("payer");
    let events = vec![
        Event::Genesis(Genesis {
            treasury: Address::from_label("treasury"),
            protocol_fee: Ppm::new(10_000).unwrap(),
        }),
        Event::TokenRegistered(usdc()),
        Event::AssetRegistered(data),
        Event::Deposited {
            payer,
            token: usdc().address,
            amount: 10_000_000,
        },
    ];
    let submitted = submit_at(journal, events, at_ms);
    assert!(submitted.refused.is_empty(), "{:?}", submitted.refused);
    id
}

/// Submits `events` stamped `at_ms` and waits until they are durable.
fn submit_at(journal: &mut Journal, events: Vec<Event>, at_ms: u64) -> Submitted {
    let (submitted, ticket) = journal.submit_pipelined(events, at_ms);
    journal.settle(ticket).unwrap();
    submitted
}

fn usage(asset: AssetId, amount: u128) -> Event {
    Event::UsageRecorded(Usage {
        asset,
        payer: Address::from_label("payer"),
        token: usdc().address,
        amount,
        calls: 1,
        node: Address::from_label("node"),
    })
}

fn reopen_reproduces_state_and_refused_events_are_not_stored(scratch: Scratch) {
    let mut journal = open(&scratch.location);
    let asset = seed_economy(&mut journal);
    let submitted = journal
        .submit(vec![
            usage(asset, 500),
            usage(asset, 999_999_999_999),
            usage(asset, 700),
        ])
        .unwrap();
    assert_eq!(submitted.accepted.len(), 2);
    assert_eq!(submitted.refused.len(), 1);
    assert_eq!(submitted.refused[0].0, 1);
    let hash = journal.economy().state_hash();
    let head = journal.economy().head();
    drop(journal);
    let reopened = open(&scratch.location);
    assert_eq!(reopened.economy().state_hash(), hash);
    assert_eq!(reopened.economy().head(), head);
    assert_eq!(head.next_seq, 6);
}

fn epoch_bundles_are_stored_with_their_event(scratch: Scratch) {
    let mut journal = open(&scratch.location);
    let asset = seed_economy(&mut journal);
    journal
        .submit((0..100).map(|i| usage(asset, 1_000 + i)).collect())
        .unwrap();
    let (first, _) = journal.close_epoch().unwrap();
    journal.submit(vec![usage(asset, 12_345)]).unwrap();
    let (second, _) = journal.close_epoch().unwrap();
    drop(journal);
    let journal = open(&scratch.location);
    let stored_first = journal.bundle(1).unwrap().unwrap();
    let stored_second = journal.bundle(2).unwrap().unwrap();
    assert_eq!(stored_first.root, first.root);
    assert_eq!(stored_second.root, second.root);
    assert!(
        verify_bundle(&stored_second, Some(&stored_first))
            .unwrap()
            .checked_against_previous
    );
    assert!(journal.bundle(3).unwrap().is_none());
    assert_eq!(journal.economy().epochs().len(), 2);
}

fn a_second_writer_is_refused_with_a_clear_error(scratch: Scratch) {
    let _first = open(&scratch.location);
    let error = refusal(
        Journal::open,
        &scratch.location,
        "a second writer must be refused",
    );
    assert!(error.contains("another caravan process"), "{error}");
}

fn a_reader_opens_beside_the_writer_sees_its_commits_and_cannot_write(scratch: Scratch) {
    let before = refusal(
        Journal::open_reader,
        &scratch.location,
        "no store yet: nothing to read",
    );
    assert!(before.contains("no caravan store"), "{before}");
    let mut writer = open(&scratch.location);
    seed_economy(&mut writer);
    writer.close_epoch().unwrap();
    let mut reader = Journal::open_reader(scratch.location.clone(), &mut |_, _| {})
        .expect("a reader opens while the writer holds the store");
    assert_eq!(reader.economy().head(), writer.economy().head());
    assert_eq!(
        reader.bundle(1).unwrap().map(|bundle| bundle.root),
        Some(writer.economy().epochs()[0].root)
    );
    let refused = reader.submit(vec![Event::TokenRegistered(Token {
        address: Address::from_label("eurc"),
        symbol: "EURC".into(),
        decimals: 6,
    })]);
    assert!(refused.is_err(), "a reader writes nothing");
    drop(reader);
    writer
        .submit(vec![Event::TokenRegistered(Token {
            address: Address::from_label("eurc"),
            symbol: "EURC".into(),
            decimals: 6,
        })])
        .unwrap();
    let later = Journal::open_reader(scratch.location.clone(), &mut |_, _| {}).unwrap();
    assert_eq!(later.economy().head(), writer.economy().head());
    let verified = Journal::open_verifying(scratch.location.clone(), &mut |_, _| {}).unwrap();
    assert_eq!(verified.economy().head(), writer.economy().head());

    drop(writer);
    let mut alone = Journal::open_reader(scratch.location.clone(), &mut |_, _| {}).unwrap();
    assert!(
        alone
            .submit(vec![Event::AssetRegistered(dataset("more"))])
            .is_err()
    );
    let _writer = Journal::open(scratch.location.clone(), &mut |_, _| {})
        .expect("a reader whose write failed stays a reader and holds no lock");
    assert!(
        alone
            .submit(vec![Event::AssetRegistered(dataset("more"))])
            .is_err()
    );
}

fn a_conflicting_batch_is_rolled_back_whole(scratch: Scratch) {
    let log = EventLog::open(&scratch.location).unwrap();
    let row = |seq| EventRow {
        seq,
        at_ms: 1,
        hash: Hash32([seq as u8; 32]),
        body: vec![seq as u8],
        lane: Lane::Bulk,
    };
    log.append(vec![row(0), row(1)], Attachments::default())
        .wait()
        .unwrap();
    let error = log
        .append(vec![row(2), row(1)], Attachments::default())
        .wait()
        .unwrap_err();
    assert!(
        error.to_string().contains("another process is writing"),
        "{error}"
    );
    assert_eq!(
        log.event_count().unwrap(),
        2,
        "event 2 must not be stored when its batch failed"
    );
    let later = log
        .append(vec![row(2)], Attachments::default())
        .wait()
        .unwrap_err();
    assert!(later.to_string().contains("reopen the store"), "{later}");
    drop(log);
    let log = EventLog::open(&scratch.location).unwrap();
    assert_eq!(log.read(0, 10).unwrap(), vec![row(0), row(1)]);
}

fn a_tampered_log_fails_to_open(scratch: Scratch, tamper: fn(&Location)) {
    let mut journal = open(&scratch.location);
    let asset = seed_economy(&mut journal);
    journal.submit(vec![usage(asset, 500)]).unwrap();
    drop(journal);
    tamper(&scratch.location);
    let error = refusal(
        Journal::open,
        &scratch.location,
        "a tampered log must not open",
    );
    assert!(error.contains("does not match its hash"), "{error}");
}

fn a_store_from_a_newer_caravan_is_refused(scratch: Scratch, bump: fn(&Location)) {
    drop(open(&scratch.location));
    bump(&scratch.location);
    let error = refusal(
        Journal::open,
        &scratch.location,
        "a newer schema must be refused",
    );
    assert!(
        error.contains("written by a newer caravan (schema version 99"),
        "{error}"
    );
}

/// A connection of its own to the SQLite store at `location`, for a test that changes the store
/// behind caravan's back.
fn sqlite_connection(location: &Location) -> rusqlite::Connection {
    let Location::DataDir(dir) = location else {
        unreachable!("a SQLite test on a PostgreSQL store")
    };
    rusqlite::Connection::open(dir.join("caravan.db")).unwrap()
}

/// The same for the PostgreSQL store at `location`.
fn postgres_client(location: &Location) -> postgres::Client {
    let Location::Postgres(url) = location else {
        unreachable!("a PostgreSQL test on a SQLite store")
    };
    postgres_tls::connect(url).unwrap()
}

fn bump_sqlite_schema(location: &Location) {
    sqlite_connection(location)
        .pragma_update(None, "user_version", 99)
        .unwrap();
}

fn bump_postgres_schema(location: &Location) {
    postgres_client(location)
        .execute("UPDATE caravan_schema SET version = 99", &[])
        .unwrap();
}

fn reopening_starts_from_the_latest_snapshot(scratch: Scratch) {
    let mut journal = open(&scratch.location);
    let asset = seed_economy(&mut journal);
    journal
        .submit(vec![usage(asset, 500), usage(asset, 600)])
        .unwrap();
    journal.close_epoch().unwrap();
    let snapshot_seq = journal.economy().head().next_seq;
    journal
        .submit(vec![
            usage(asset, 700),
            usage(asset, 800),
            usage(asset, 900),
        ])
        .unwrap();
    let hash = journal.economy().state_hash();
    drop(journal);

    let reopened = open(&scratch.location);
    assert_eq!(reopened.open_report().snapshot_seq, Some(snapshot_seq));
    assert_eq!(reopened.open_report().replayed, 3);
    assert_eq!(reopened.economy().state_hash(), hash);
    drop(reopened);
    let verified = Journal::open_verifying(scratch.location.clone(), &mut |_, _| {}).unwrap();
    assert_eq!(verified.open_report().snapshots_verified, 1);
    assert_eq!(verified.economy().state_hash(), hash);
}

fn only_the_newest_snapshots_are_kept(scratch: Scratch) {
    let mut journal = open(&scratch.location);
    let asset = seed_economy(&mut journal);
    for amount in 1..=5 {
        journal.submit(vec![usage(asset, 1_000 * amount)]).unwrap();
        journal.close_epoch().unwrap();
    }
    drop(journal);
    let log = EventLog::open(&scratch.location).unwrap();
    let kept: Vec<u64> = log.snapshots().unwrap().iter().map(|s| s.seq).collect();
    assert_eq!(kept.len(), SNAPSHOTS_KEPT);
    assert_eq!(*kept.last().unwrap(), log.event_count().unwrap());
}

fn a_damaged_snapshot_is_passed_over_and_caught_by_verification(
    scratch: Scratch,
    damage: fn(&Location),
) {
    let mut journal = open(&scratch.location);
    let asset = seed_economy(&mut journal);
    journal.submit(vec![usage(asset, 500)]).unwrap();
    journal.close_epoch().unwrap();
    let hash = journal.economy().state_hash();
    drop(journal);
    damage(&scratch.location);
    let reopened = open(&scratch.location);
    assert!(
        reopened
            .open_report()
            .snapshot_skipped
            .as_deref()
            .unwrap_or("")
            .contains("do not match its hash"),
        "{:?}",
        reopened.open_report()
    );
    assert_eq!(reopened.open_report().snapshot_seq, None);
    assert_eq!(
        reopened.economy().state_hash(),
        hash,
        "a full replay still reaches the same state"
    );
    drop(reopened);
    let error = refusal(
        Journal::open_verifying,
        &scratch.location,
        "verification must catch a damaged snapshot",
    );
    assert!(
        error.contains("does not match a replay of the log"),
        "{error}"
    );
}

fn a_failed_write_rolls_memory_back_to_the_disk(
    scratch: Scratch,
    refuse_writes: fn(&Location, bool),
) {
    let mut journal = open(&scratch.location);
    let asset = seed_economy(&mut journal);
    journal.submit(vec![usage(asset, 500)]).unwrap();
    let durable = journal.economy().state_hash();
    refuse_writes(&scratch.location, true);
    let error = journal
        .submit(vec![usage(asset, 600), usage(asset, 700)])
        .expect_err("the store refuses the write")
        .to_string();
    assert!(error.contains("injected failure"), "{error}");
    assert_eq!(
        journal.economy().state_hash(),
        durable,
        "memory must not keep what the disk refused"
    );
    assert_eq!(journal.generation(), 1);
    refuse_writes(&scratch.location, false);
    journal.submit(vec![usage(asset, 800)]).unwrap();
    let hash = journal.economy().state_hash();
    drop(journal);
    assert_eq!(open(&scratch.location).economy().state_hash(), hash);
}

fn concurrent_submitters_share_one_journal(scratch: Scratch, refuse_writes: fn(&Location, bool)) {
    const THREADS: usize = 12;
    const EACH: u128 = 40;
    let mut journal = open(&scratch.location);
    let asset = seed_economy(&mut journal);
    let shared = SharedJournal::new(journal);
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let shared = &shared;
            scope.spawn(move || {
                for k in 0..EACH {
                    let submitted = shared
                        .submit(vec![usage(asset, 1 + thread as u128 * 1_000 + k)])
                        .unwrap();
                    assert_eq!(submitted.accepted.len(), 1);
                }
            });
        }
    });
    let charged: u128 = (0..THREADS as u128)
        .flat_map(|t| (0..EACH).map(move |k| 1 + t * 1_000 + k))
        .sum();
    let (head, hash, paid) = shared.read(|j| {
        let economy = j.economy();
        let paid = 10_000_000
            - economy
                .ledger()
                .balance(
                    &AccountRef::Payer(Address::from_label("payer")),
                    &usdc().address,
                )
                .available();
        (economy.head().next_seq, economy.state_hash(), paid)
    });
    assert_eq!(head, 4 + THREADS as u64 * EACH as u64);
    assert_eq!(
        paid, charged,
        "every acknowledged call was charged exactly once"
    );

    refuse_writes(&scratch.location, true);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let shared = &shared;
            scope.spawn(move || assert!(shared.submit(vec![usage(asset, 5)]).is_err()));
        }
    });
    assert_eq!(
        shared.read(|j| j.economy().state_hash()),
        hash,
        "refused groups leave no trace in memory"
    );
    refuse_writes(&scratch.location, false);
    shared.submit(vec![usage(asset, 5)]).unwrap();
    let hash = shared.read(|j| j.economy().state_hash());
    drop(shared);
    assert_eq!(open(&scratch.location).economy().state_hash(), hash);
}

fn refuse_sqlite_writes(location: &Location, refuse: bool) {
    let connection = sqlite_connection(location);
    let sql = if refuse {
        "CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
    } else {
        "DROP TRIGGER refuse;"
    };
    connection.execute_batch(sql).unwrap();
}

fn refuse_postgres_writes(location: &Location, refuse: bool) {
    let mut client = postgres_client(location);
    let sql = if refuse {
        "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql;
         CREATE TRIGGER refuse BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse();"
    } else {
        "DROP TRIGGER refuse ON events; DROP FUNCTION refuse();"
    };
    client.batch_execute(sql).unwrap();
}

fn damage_sqlite_snapshot(location: &Location) {
    sqlite_connection(location)
        .execute("UPDATE snapshots SET state = zeroblob(64)", [])
        .unwrap();
}

fn damage_postgres_snapshot(location: &Location) {
    postgres_client(location)
        .execute(
            "UPDATE snapshots SET state = decode(repeat('00', 64), 'hex')",
            &[],
        )
        .unwrap();
}

/// Replaces every stored snapshot's state with `state` (and its hash), as an older caravan that
/// wrote another layout would have left it.
fn rewrite_snapshots(location: &Location, state: &[u8]) {
    let hash = keccak256(state);
    match location {
        Location::DataDir(_) => {
            sqlite_connection(location)
                .execute(
                    "UPDATE snapshots SET state = ?1, state_hash = ?2",
                    rusqlite::params![state, &hash.0[..]],
                )
                .unwrap();
        }
        Location::Postgres(_) => {
            postgres_client(location)
                .execute(
                    "UPDATE snapshots SET state = $1, state_hash = $2",
                    &[&state, &&hash.0[..]],
                )
                .unwrap();
        }
    }
}

fn a_snapshot_from_before_registration_times_is_replayed_over_and_still_verifies(scratch: Scratch) {
    let mut journal = open(&scratch.location);
    let asset = seed_economy(&mut journal);
    journal.submit(vec![usage(asset, 500)]).unwrap();
    journal.close_epoch().unwrap();
    let registered_ms = journal
        .economy()
        .lineage()
        .get(&asset)
        .unwrap()
        .registered_ms;
    assert!(registered_ms > 0, "an asset keeps when it was registered");
    let hash = journal.economy().state_hash();
    let old_layout = journal.economy().encode_state_as(4).unwrap();
    drop(journal);
    rewrite_snapshots(&scratch.location, &old_layout);

    let reopened = open(&scratch.location);
    let skipped = reopened.open_report().snapshot_skipped.clone();
    assert!(
        skipped
            .as_deref()
            .unwrap_or("")
            .contains("before assets' registration times were kept"),
        "{skipped:?}"
    );
    assert_eq!(
        reopened
            .economy()
            .lineage()
            .get(&asset)
            .unwrap()
            .registered_ms,
        registered_ms,
        "the replay recovers the registration time"
    );
    assert_eq!(reopened.economy().state_hash(), hash);
    drop(reopened);
    let verified = Journal::open_verifying(scratch.location.clone(), &mut |_, _| {})
        .expect("a snapshot in an older layout still matches the replay in that layout");
    assert_eq!(verified.open_report().snapshots_verified, 1);
}

fn a_snapshot_from_before_credits_were_kept_is_replayed_over_and_the_next_bundle_verifies(
    scratch: Scratch,
) {
    let mut journal = open(&scratch.location);
    let asset = seed_economy(&mut journal);
    journal.submit(vec![usage(asset, 500)]).unwrap();
    let (_, first) = journal.close_epoch().unwrap();
    let hash = journal.economy().state_hash();
    // The layout an older caravan wrote: entitlements, but no list of what was credited
    // since the close.
    let old_layout = journal.economy().encode_state_as(5).unwrap();
    drop(journal);
    rewrite_snapshots(&scratch.location, &old_layout);

    let mut reopened = open(&scratch.location);
    let skipped = reopened.open_report().snapshot_skipped.clone();
    assert!(
        skipped
            .as_deref()
            .unwrap_or("")
            .contains("before the credits between closes were kept"),
        "{skipped:?}"
    );
    assert_eq!(reopened.economy().state_hash(), hash);
    reopened.submit(vec![usage(asset, 700)]).unwrap();
    let (_, second) = reopened.close_epoch().unwrap();
    caravan_core::verify_bundle(&second, Some(&first)).unwrap();
    drop(reopened);
    let verified = Journal::open_verifying(scratch.location.clone(), &mut |_, _| {})
        .expect("a snapshot in an older layout still matches the replay in that layout");
    assert_eq!(verified.open_report().snapshots_verified, 2);
}

/// Deletes what a close stores after its event (its bundle and snapshot), as when a node stops
/// between the two commits.
fn forget_close_attachments(location: &Location) {
    match location {
        Location::DataDir(_) => {
            sqlite_connection(location)
                .execute_batch("DELETE FROM epoch_bundles; DELETE FROM snapshots;")
                .unwrap();
        }
        Location::Postgres(_) => {
            postgres_client(location)
                .batch_execute("DELETE FROM epoch_bundles; DELETE FROM snapshots;")
                .unwrap();
        }
    }
}

fn a_close_whose_bundle_never_reached_the_store_gets_it_back_at_the_next_open(scratch: Scratch) {
    let mut journal = open(&scratch.location);
    let asset = seed_economy(&mut journal);
    journal.submit(vec![usage(asset, 500)]).unwrap();
    let (_, bundle) = journal.close_epoch().unwrap();
    journal.submit(vec![usage(asset, 700)]).unwrap();
    let hash = journal.economy().state_hash();
    drop(journal);
    forget_close_attachments(&scratch.location);

    let reader = Journal::open_reader(scratch.location.clone(), &mut |_, _| {}).unwrap();
    assert!(
        reader.open_report().bundles_remade.is_empty()
            && matches!(reader.bundle(1), Err(JournalError::BundlePending(1))),
        "a reader writes nothing, and says the closed epoch's bundle is still to come"
    );
    drop(reader);
    let reopened = open(&scratch.location);
    assert_eq!(reopened.open_report().bundles_remade, vec![1]);
    assert_eq!(reopened.economy().state_hash(), hash);
    let remade = reopened
        .bundle(1)
        .unwrap()
        .expect("the bundle is stored again");
    assert_eq!(
        serde_json::to_value(&remade).unwrap(),
        serde_json::to_value(&bundle).unwrap(),
        "the bundle made again is the one the close made, to the byte"
    );
    drop(reopened);
    let again = open(&scratch.location);
    assert!(again.open_report().bundles_remade.is_empty());
}

fn a_bundle_being_stored_is_pending_not_missing(scratch: Scratch) {
    let mut journal = open(&scratch.location);
    let asset = seed_economy(&mut journal);
    journal.submit(vec![usage(asset, 500)]).unwrap();
    let closed = journal.close_epoch_pipelined().unwrap();
    closed.event.wait().unwrap();
    let shared = SharedJournal::new(journal);
    assert!(
        matches!(shared.bundle(1), Err(JournalError::BundlePending(1))),
        "a closed epoch whose bundle is on its way is pending"
    );
    assert!(shared.bundle(2).unwrap().is_none(), "epoch 2 is not closed");
    let attachments = closed.attachments.write(&closed.bundle);
    shared.read(|j| j.attach_close(attachments)).wait().unwrap();
    assert_eq!(shared.bundle(1).unwrap().unwrap().root, closed.bundle.root);
}

fn tampering_behind_a_snapshot_is_found_at_open(scratch: Scratch, tamper: fn(&Location)) {
    let mut journal = open(&scratch.location);
    let asset = seed_economy(&mut journal);
    journal.submit(vec![usage(asset, 500)]).unwrap();
    journal.close_epoch().unwrap();
    drop(journal);
    tamper(&scratch.location);
    let error = refusal(
        Journal::open,
        &scratch.location,
        "an open must not take a snapshot's word for a damaged history behind it",
    );
    assert!(
        error.contains("before the snapshot at event 6 are damaged")
            && error.contains("event 4 does not match its hash"),
        "{error}"
    );
    let error = refusal(
        Journal::open_verifying,
        &scratch.location,
        "a full replay must catch the altered event",
    );
    assert!(error.contains("does not match its hash"), "{error}");
}

/// Runs `sql` on the store at `location` behind caravan's back.
fn execute_behind(location: &Location, sql: &str) {
    match location {
        Location::DataDir(_) => {
            sqlite_connection(location).execute(sql, []).unwrap();
        }
        Location::Postgres(_) => {
            postgres_client(location).execute(sql, &[]).unwrap();
        }
    }
}

fn a_truncated_log_is_refused_at_open_naming_what_saw_more(scratch: Scratch) {
    let mut journal = open(&scratch.location);
    let asset = seed_economy(&mut journal);
    journal.submit(vec![usage(asset, 500)]).unwrap();
    journal.close_epoch().unwrap();
    let closed_at = journal.economy().head().next_seq;
    journal.submit(vec![usage(asset, 600)]).unwrap();
    drop(journal);

    // The end of the log is cut off; what was stored beside it stays.
    execute_behind(
        &scratch.location,
        &format!("DELETE FROM events WHERE seq >= {}", closed_at - 1),
    );
    let error = refusal(
        Journal::open,
        &scratch.location,
        "a log that lost its end must not open",
    );
    assert!(
        error.contains(&format!(
            "the event log is truncated: it holds {} events, but a snapshot was taken after {closed_at} events",
            closed_at - 1
        )),
        "{error}"
    );
    let error = refusal(Journal::open_reader, &scratch.location, "nor open to read");
    assert!(error.contains("the event log is truncated"), "{error}");

    // Without the snapshot, what else was stored with the lost events still tells.
    execute_behind(&scratch.location, "DELETE FROM snapshots");
    let error = refusal(
        Journal::open,
        &scratch.location,
        "a log that lost its end must not open",
    );
    assert!(
        error.contains("the event log is truncated")
            && (error.contains("the spend table has counted")
                || error.contains("the bundle of epoch 1 is stored")),
        "{error}"
    );
}

/// The caravan.db file of the SQLite store at `location`, checkpointed (nothing left in the
/// write-ahead log).
fn sqlite_file(location: &Location) -> std::path::PathBuf {
    let Location::DataDir(dir) = location else {
        unreachable!("a SQLite test on a PostgreSQL store")
    };
    sqlite_connection(location)
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    dir.join("caravan.db")
}

/// A SQLite store with a few thousand events and a snapshot after them; returns its state hash.
fn store_for_damage(location: &Location) -> Hash32 {
    let mut journal = open(location);
    let asset = seed_economy(&mut journal);
    for round in 0..20 {
        let events = (0..100)
            .map(|n| access(&format!("access record {round}-{n} flip-me")))
            .chain([usage(asset, 1 + round)])
            .collect();
        journal.submit(events).unwrap();
    }
    journal.close_epoch().unwrap();
    journal.submit(vec![usage(asset, 50)]).unwrap();
    let hash = journal.economy().state_hash();
    drop(journal);
    hash
}

#[test]
fn a_flipped_byte_in_an_old_event_is_found_at_open_and_named() {
    let scratch = sqlite();
    store_for_damage(&scratch.location);
    let file = sqlite_file(&scratch.location);
    let mut bytes = std::fs::read(&file).unwrap();
    let needle = b"access record 3-7 flip-me";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the record is stored as written");
    bytes[at + 15] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    let error = refusal(
        Journal::open,
        &scratch.location,
        "a flipped byte in an event the snapshot covers must be found",
    );
    assert!(
        error.contains("are damaged") && error.contains("does not match its hash"),
        "{error}"
    );
}

#[test]
fn a_cut_store_file_is_refused_at_open_and_named() {
    let scratch = sqlite();
    store_for_damage(&scratch.location);
    let file = sqlite_file(&scratch.location);
    let length = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(length / 2)
        .unwrap();
    let error = refusal(
        Journal::open,
        &scratch.location,
        "a store file cut in half must not open",
    );
    assert!(
        error.contains("caravan.db is damaged where it keeps"),
        "{error}"
    );
}

/// Flips one byte at a time, at random places of a SQLite store file, and opens it each time:
/// the open either refuses, or reaches exactly the state the store held. A flip it accepted and
/// that changed the economy would be damage silently taken for the truth.
#[test]
fn no_flipped_byte_in_the_store_file_changes_the_economy_unnoticed() {
    let scratch = sqlite();
    let held = store_for_damage(&scratch.location);
    let file = sqlite_file(&scratch.location);
    let pristine = std::fs::read(&file).unwrap();
    let flips: usize = std::env::var("CARAVAN_FLIPS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let (mut refused, mut same) = (0, 0);
    for _ in 0..flips {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let at = (seed % pristine.len() as u64) as usize;
        let mut bytes = pristine.clone();
        bytes[at] ^= 1 << (seed >> 61);
        std::fs::write(&file, &bytes).unwrap();
        let Location::DataDir(dir) = &scratch.location else {
            unreachable!()
        };
        for side in ["caravan.db-wal", "caravan.db-shm"] {
            let _ = std::fs::remove_file(dir.join(side));
        }
        match Journal::open_reader(scratch.location.clone(), &mut |_, _| {}) {
            Err(_) => refused += 1,
            Ok(journal) => {
                assert_eq!(
                    journal.economy().state_hash(),
                    held,
                    "byte {at} flipped: the store opened as another economy"
                );
                same += 1;
            }
        }
    }
    eprintln!(
        "{flips} flipped bytes: {refused} refused at open, {same} opened as the same economy"
    );
    assert_eq!(refused + same, flips);
    assert!(refused > 0, "some flips must land where they matter");
}

#[test]
#[ignore = "mounts a size-limited tmpfs, which needs root; `.ci/run` runs it with the PostgreSQL half"]
fn a_full_disk_refuses_the_commit_keeps_nothing_of_it_and_the_store_goes_on_once_there_is_space() {
    let small = caravan_testkit::SmallDisk::mount(16);
    let location = Location::DataDir(small.path().join("data"));
    let mut journal = open(&location);
    let asset = seed_economy(&mut journal);
    journal.submit(vec![usage(asset, 500)]).unwrap();

    let ballast = small.fill();
    let record = "a record the full disk has no room for ".repeat(5_000);
    let mut refusal = None;
    for _ in 0..200 {
        let before = journal.economy().state_hash();
        match journal.submit(vec![access(&record), usage(asset, 1)]) {
            Ok(_) => continue,
            Err(error) => {
                assert_eq!(
                    journal.economy().state_hash(),
                    before,
                    "a refused commit leaves nothing of itself in memory"
                );
                refusal = Some(error.to_string());
                break;
            }
        }
    }
    let refusal = refusal.expect("a full disk refuses a commit");
    assert!(
        refusal.contains("full"),
        "the refusal names the cause: {refusal}"
    );

    ballast.remove();
    journal
        .submit(vec![usage(asset, 700)])
        .expect("with space again, the store goes on without a restart");
    let hash = journal.economy().state_hash();
    drop(journal);
    assert_eq!(
        open(&location).economy().state_hash(),
        hash,
        "the store holds exactly what was acknowledged"
    );
}

fn tamper_sqlite(location: &Location) {
    let connection = sqlite_connection(location);
    connection.execute("UPDATE events SET body = CAST(replace(CAST(body AS TEXT), 'x', 'y') AS BLOB) WHERE seq = 4", []).unwrap();
    let changed: i64 = connection
        .query_row("SELECT count(*) FROM events WHERE seq = 4", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(changed, 1);
    connection
        .execute("UPDATE events SET at_ms = at_ms + 1 WHERE seq = 4", [])
        .unwrap();
}

fn tamper_postgres(location: &Location) {
    let mut client = postgres_client(location);
    client
        .execute("UPDATE events SET at_ms = at_ms + 1 WHERE seq = 4", &[])
        .unwrap();
}

fn acknowledged_events_survive_a_kill(scratch: Scratch, test_name: &str) {
    let location_arg = match &scratch.location {
        Location::DataDir(dir) => dir.display().to_string(),
        Location::Postgres(url) => url.clone(),
    };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test_name, "--include-ignored", "--nocapture"])
        .env("CARAVAN_CRASH_WRITER", &location_arg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acknowledged = 0u64;
    // Long enough for the writer to have written its spending to the table at least once, so
    // the kill falls between two such writes.
    let started = std::time::Instant::now();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(seq) = line.strip_prefix("acknowledged ") {
            acknowledged = seq.parse().unwrap();
            if acknowledged >= 2_000 && started.elapsed() > std::time::Duration::from_millis(1_500)
            {
                break;
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(acknowledged >= 2_000, "the writer child stopped early");
    let counted = match &scratch.location {
        Location::DataDir(_) => sqlite_connection(&scratch.location)
            .query_row("SELECT to_seq FROM spending_counted", [], |row| row.get(0))
            .unwrap(),
        Location::Postgres(_) => postgres_client(&scratch.location)
            .query_one("SELECT to_seq FROM spending_counted", &[])
            .unwrap()
            .get::<_, i64>(0),
    };
    assert!(
        counted > 0 && (counted as u64) < acknowledged,
        "the kill fell after a write of the spend table ({counted} events counted) and before the last events"
    );
    let journal = open(&scratch.location);
    assert!(
        journal.economy().head().next_seq >= acknowledged,
        "acknowledged {acknowledged} events, found {}",
        journal.economy().head().next_seq
    );
    // The spend table, written about once a second beside the log, says exactly what the
    // stored calls charged: what the kill lost was counted again at the open, nothing twice.
    let charged: u128 = journal
        .read_events(0, 1_000_000)
        .unwrap()
        .iter()
        .flat_map(|row| {
            Event::decode(&row.body)
                .unwrap()
                .spending(row.at_ms)
                .map(|spent| spent.amount)
                .collect::<Vec<_>>()
        })
        .sum();
    let tabled: u128 = journal
        .spending(Address::from_label("payer"), 0)
        .wait()
        .unwrap()
        .iter()
        .map(|row| row.amount)
        .sum();
    assert!(charged > 0);
    assert_eq!(tabled, charged);
}

/// Appends given a commit window share one transaction; an ordinary append, a read, or closing
/// the store ends the wait at once, and nothing windowed is lost.
fn windowed_appends_share_a_commit_that_anything_but_a_usage_report_starts(scratch: Scratch) {
    // Far longer than the test may take: if the wait were not cut short it would hang.
    let window = std::time::Duration::from_secs(600);
    let started = std::time::Instant::now();
    let mut journal = open(&scratch.location);
    let asset = seed_economy(&mut journal);
    let before = journal.commit_stats();
    let windowed: Vec<AppendTicket> = (1..=20)
        .map(|n| {
            journal
                .submit_pipelined_within(vec![usage(asset, n)], now_ms(), window)
                .1
        })
        .collect();
    // An ordinary append starts the commit; all 21 appends go in one transaction.
    journal.submit(vec![usage(asset, 100)]).unwrap();
    for ticket in windowed {
        journal.settle(ticket).unwrap();
    }
    let after = journal.commit_stats();
    assert_eq!(after.transactions - before.transactions, 1);
    assert_eq!(after.events - before.events, 21);

    // A read ends the wait too, and sees the windowed events once they are committed.
    let (_, ticket) = journal.submit_pipelined_within(vec![usage(asset, 7)], now_ms(), window);
    let stored = journal.read_events(0, 1_000).unwrap();
    journal.settle(ticket).unwrap();
    // The seed's 4 events, the 21 above and the windowed one.
    assert_eq!(stored.len(), 26);

    // A usage report neither ends the wait nor waits it out: it counts committed calls only.
    let counted = spent(&journal, 0);
    let (_, ticket) = journal.submit_pipelined_within(vec![usage(asset, 11)], now_ms(), window);
    let commits = journal.commit_stats().transactions;
    assert_eq!(spent(&journal, 0), counted, "a call still gathered counted");
    assert_eq!(
        journal.commit_stats().transactions,
        commits,
        "the report cut the wait short"
    );
    journal.read_events(0, 1).unwrap();
    journal.settle(ticket).unwrap();
    let [(_, calls, _, amount)] = spent(&journal, 0)[..] else {
        panic!("one asset was called")
    };
    assert_eq!((calls, amount), (counted[0].1 + 1, counted[0].3 + 11));

    // Closing the store commits what is still waiting.
    let (_, ticket) = journal.submit_pipelined_within(vec![usage(asset, 9)], now_ms(), window);
    let hash = journal.economy().state_hash();
    drop(ticket);
    drop(journal);
    assert_eq!(open(&scratch.location).economy().state_hash(), hash);
    assert!(started.elapsed() < window / 2, "a wait was not cut short");
}

fn answer(key: &str, fingerprint: &str, kept_at_ms: u64, expires_ms: u64) -> AnswerRow {
    AnswerRow {
        key: keccak256(key.as_bytes()),
        fingerprint: keccak256(fingerprint.as_bytes()),
        kept_at_ms,
        expires_ms,
        answer: format!("the answer to {fingerprint}").into_bytes(),
    }
}

/// Answers kept beside the log are found by key until they expire, replace an earlier one
/// under their key, forget expired ones as new ones come, survive a reopen, and never touch
/// the log itself.
fn kept_answers_are_found_until_they_expire_and_survive_a_reopen(scratch: Scratch) {
    let window = std::time::Duration::from_secs(600);
    let mut journal = open(&scratch.location);
    seed_economy(&mut journal);
    let head = journal.economy().state_hash();
    let first = answer("order-17", "two reviews", 1_000, 100_000);
    journal.keep_answer(first.clone(), window);
    // The lookup ends the commit window, so it sees the answer.
    assert_eq!(
        journal.answer(first.key, 1_001).unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        journal.answer(keccak256(b"never kept"), 1_001).unwrap(),
        None
    );

    let short = answer("order-18", "one review", 2_000, 3_000);
    journal.keep_answer(short.clone(), window);
    assert_eq!(
        journal.answer(short.key, 2_999).unwrap(),
        Some(short.clone())
    );
    assert_eq!(journal.answer(short.key, 3_000).unwrap(), None, "expired");

    // The same key kept again (a key used afresh) replaces the answer.
    let again = answer("order-17", "three reviews", 4_000, 200_000);
    journal.keep_answer(again.clone(), window);
    assert_eq!(
        journal.answer(again.key, 4_001).unwrap(),
        Some(again.clone())
    );

    // Keeping one at 5,000 deletes the answer that expired at 3,000: even asked as of before
    // it expired, it is gone.
    let later = answer("order-19", "a photo", 5_000, 300_000);
    journal.keep_answer(later.clone(), window);
    assert_eq!(
        journal.answer(later.key, 5_001).unwrap(),
        Some(later.clone())
    );
    assert_eq!(journal.answer(short.key, 2_500).unwrap(), None, "deleted");

    // Answers are not events: the log is as it was, and they outlive the process.
    assert_eq!(journal.economy().state_hash(), head);
    assert_eq!(journal.read_events(0, 100).unwrap().len(), 4);
    drop(journal);
    let journal = open(&scratch.location);
    assert_eq!(journal.economy().state_hash(), head);
    assert_eq!(journal.answer(again.key, 6_000).unwrap(), Some(again));
    assert_eq!(journal.answer(later.key, 6_000).unwrap(), Some(later));
}

/// A writer that never pauses still finds its write-ahead log copied into the database file
/// and started over: after 120 MiB of commits the log file is at most the writer's 64 MiB mark
/// and a little, not the sum of everything written, and every commit is there after a reopen.
#[test]
fn the_write_ahead_log_stays_bounded_under_commits_without_pause() {
    const ANSWERS: usize = 2_560;
    const ANSWER_BYTES: usize = 48 * 1024;
    let scratch = sqlite();
    let Location::DataDir(dir) = &scratch.location else {
        unreachable!("a SQLite store")
    };
    let journal = open(&scratch.location);
    let window = std::time::Duration::from_millis(2);
    let kept = |n: usize| AnswerRow {
        answer: vec![(n % 251) as u8; ANSWER_BYTES],
        ..answer(
            &format!("order-{n}"),
            &format!("request {n}"),
            1_000,
            u64::MAX / 2,
        )
    };
    for n in 0..ANSWERS {
        let answer = kept(n);
        let key = answer.key;
        journal.keep_answer(answer, window);
        // The lookup ends the commit window: one commit per answer, as a busy node makes.
        assert!(journal.answer(key, 2_000).unwrap().is_some());
    }
    let log_bytes = std::fs::metadata(dir.join("caravan.db-wal")).unwrap().len();
    let written = (ANSWERS * ANSWER_BYTES) as u64;
    assert!(
        log_bytes <= 80 << 20,
        "the write-ahead log grew to {} MiB for {} MiB written",
        log_bytes >> 20,
        written >> 20
    );
    drop(journal);
    let journal = open(&scratch.location);
    for n in [0, ANSWERS / 2, ANSWERS - 1] {
        assert_eq!(journal.answer(kept(n).key, 2_000).unwrap(), Some(kept(n)));
    }
}

fn session(label: &str, account: &str, expires_ms: u64) -> SessionRow {
    SessionRow {
        id_hash: keccak256(label.as_bytes()),
        account: Address::from_label(account),
        created_ms: 1_000,
        expires_ms,
    }
}

fn open_session(nonce: &str, session: SessionRow) -> SignInOp {
    SignInOp::OpenSession {
        nonce: nonce.into(),
        session,
    }
}

fn issue_nonce(nonce: &str, expires_ms: u64) -> SignInOp {
    SignInOp::IssueNonce {
        nonce: nonce.into(),
        expires_ms,
    }
}

fn a_nonce_opens_one_session_and_sessions_outlive_a_reopen_until_they_end(scratch: Scratch) {
    let mut journal = open(&scratch.location);
    seed_economy(&mut journal);
    let head = journal.economy().state_hash();
    let shared = SharedJournal::new(journal);
    let alice = session("alice's session", "alice", 100_000);
    assert_eq!(
        shared
            .sign_in(
                vec![issue_nonce("n1", 10_000), issue_nonce("n2", 5_000)],
                1_000
            )
            .unwrap(),
        vec![true, true]
    );
    // A nonce nobody issued, or one already used, opens nothing; of two sign-ins with one
    // nonce in one batch, only the first.
    assert_eq!(
        shared
            .sign_in(
                vec![
                    open_session("never issued", session("x", "mallory", 100_000)),
                    open_session("n1", alice.clone()),
                    open_session("n1", session("replay", "mallory", 100_000)),
                ],
                2_000
            )
            .unwrap(),
        vec![false, true, false]
    );
    assert_eq!(
        shared.session(alice.id_hash, 2_000).unwrap(),
        Some(alice.clone())
    );
    assert_eq!(shared.session(keccak256(b"replay"), 2_000).unwrap(), None);
    // An expired nonce is refused.
    assert_eq!(
        shared
            .sign_in(
                vec![open_session("n2", session("late", "bob", 100_000))],
                5_000
            )
            .unwrap(),
        vec![false]
    );
    // Nonces issued concurrently from many threads all work once.
    std::thread::scope(|scope| {
        for t in 0..8 {
            let shared = &shared;
            scope.spawn(move || {
                let nonce = format!("thread {t}");
                let issued = shared.sign_in(vec![issue_nonce(&nonce, 50_000)], 6_000);
                assert_eq!(issued.unwrap(), vec![true]);
                let opened = shared.sign_in(
                    vec![open_session(&nonce, session(&nonce, "carol", 100_000))],
                    6_000,
                );
                assert_eq!(opened.unwrap(), vec![true]);
            });
        }
    });

    // Sessions survive a reopen, and the log is untouched by any of this.
    let journal = shared.into_inner();
    assert_eq!(journal.economy().state_hash(), head);
    drop(journal);
    let shared = SharedJournal::new(open(&scratch.location));
    assert_eq!(shared.read(|j| j.economy().state_hash()), head);
    assert_eq!(
        shared.session(alice.id_hash, 7_000).unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        shared
            .session(keccak256(b"thread 3"), 7_000)
            .unwrap()
            .map(|s| s.account),
        Some(Address::from_label("carol"))
    );
    // Expired sessions are not found; ending one makes it unknown at once.
    assert_eq!(shared.session(alice.id_hash, 100_000).unwrap(), None);
    assert_eq!(
        shared
            .sign_in(
                vec![
                    SignInOp::EndSession {
                        id_hash: alice.id_hash
                    },
                    SignInOp::EndSession {
                        id_hash: alice.id_hash
                    }
                ],
                8_000
            )
            .unwrap(),
        vec![true, false]
    );
    assert_eq!(shared.session(alice.id_hash, 8_000).unwrap(), None);
}

/// The child half of `acknowledged_events_survive_a_kill`: writes until killed, printing what is durable.
fn crash_writer_child() -> bool {
    let Ok(target) = std::env::var("CARAVAN_CRASH_WRITER") else {
        return false;
    };
    let location = if target.starts_with("postgres") {
        Location::Postgres(target)
    } else {
        Location::DataDir(target.into())
    };
    let mut journal = open(&location);
    let asset = seed_economy(&mut journal);
    loop {
        let batch = (0..50).map(|i| usage(asset, 1 + i)).collect();
        let (_, ticket) = journal.submit_pipelined(batch, now_ms());
        journal.settle(ticket).unwrap();
        println!("acknowledged {}", journal.economy().head().next_seq);
    }
}

fn access(record: &str) -> Event {
    Event::AccessRecorded {
        record: record.into(),
    }
}

fn metered(asset: AssetId, request: Option<&str>) -> Event {
    Event::CallMetered(MeteredCall {
        payer: Address::from_label("payer"),
        token: usdc().address,
        node: Address::from_label("node"),
        request: request.map(|r| keccak256(r.as_bytes())),
        parts: vec![CallPart {
            asset,
            amount: 300,
            calls: 1,
        }],
        trace: "{}".into(),
    })
}

/// The sequence numbers of the events of `kind` among `rows`.
fn seqs_of(rows: &[EventRow], kind: &str) -> Vec<u64> {
    rows.iter()
        .filter(|row| Event::decode(&row.body).unwrap().kind_name() == kind)
        .map(|row| row.seq)
        .collect()
}

/// Every event of `lane` from `from` on, as the layers above read them.
fn lane_rows(journal: &Journal, lane: Lane, from: u64) -> Vec<EventRow> {
    let mut rows = Vec::new();
    journal
        .for_each_in_lane(lane, from, |row| -> Result<(), JournalError> {
            rows.push(row.clone());
            Ok(())
        })
        .unwrap();
    rows
}

fn a_lane_holds_just_its_events_and_a_store_from_before_lanes_misses_none(
    scratch: Scratch,
    forget_lanes: fn(&Location),
) {
    let mut journal = open(&scratch.location);
    let asset = seed_economy(&mut journal);
    let events = vec![
        usage(asset, 500),
        access("first"),
        metered(asset, None),
        metered(asset, Some("order-1")),
        usage(asset, 700),
        access("second"),
    ];
    assert!(journal.submit(events).unwrap().refused.is_empty());
    // seq: 0-3 the seed, 4 usage, 5 access, 6 call, 7 keyed call, 8 usage, 9 access.
    let access_rows = lane_rows(&journal, Lane::Access, 0);
    assert_eq!(
        access_rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [5, 9]
    );
    assert!(access_rows.iter().all(|r| r.lane == Lane::Access));
    assert_eq!(
        lane_rows(&journal, Lane::KeyedCall, 0)
            .iter()
            .map(|r| r.seq)
            .collect::<Vec<_>>(),
        [7]
    );
    assert_eq!(lane_rows(&journal, Lane::Access, 6).len(), 1);
    assert!(lane_rows(&journal, Lane::Work, 0).is_empty());
    // Stamps follow the log: the first event stamped at or after a time is found.
    let stamped = journal.read_events(7, 1).unwrap()[0].at_ms;
    let first = journal.first_seq_at(stamped).unwrap();
    assert!(first <= 7 && journal.read_events(first, 1).unwrap()[0].at_ms == stamped);
    assert_eq!(journal.first_seq_at(0).unwrap(), 0);
    assert_eq!(journal.first_seq_at(u64::MAX).unwrap(), 10);
    drop(journal);

    // The same store as a caravan from before lanes left it: its migration files nothing
    // already stored, so reading a lane returns all of that (for the reader to sort out) and
    // only the lane's events stored after.
    forget_lanes(&scratch.location);
    let mut journal = open(&scratch.location);
    assert!(
        journal
            .submit(vec![usage(asset, 900), access("third")])
            .unwrap()
            .refused
            .is_empty()
    );
    let rows = lane_rows(&journal, Lane::Access, 0);
    assert_eq!(
        rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11]
    );
    assert_eq!(seqs_of(&rows, "access recorded"), [5, 9, 11]);
    assert_eq!(
        seqs_of(&lane_rows(&journal, Lane::KeyedCall, 0), "call metered"),
        [6, 7]
    );
    assert_eq!(
        lane_rows(&journal, Lane::KeyedCall, 10).len(),
        0,
        "after the migration only the lane's own events"
    );
}

fn forget_sqlite_lanes(location: &Location) {
    sqlite_connection(location)
        .execute_batch(
            "DROP INDEX events_lane_1; DROP INDEX events_lane_2; DROP INDEX events_lane_3;
             DROP TABLE lanes; ALTER TABLE events DROP COLUMN lane; DROP TABLE kept_answers;
             DROP TABLE sign_in_nonces; DROP TABLE sessions; DROP TABLE spending;
             DROP TABLE spending_counted; DROP TABLE charged_requests;
             DROP TABLE charged_requests_from; PRAGMA user_version = 2;",
        )
        .unwrap();
}

fn forget_postgres_lanes(location: &Location) {
    postgres_client(location)
        .batch_execute(
            "DROP TABLE lanes; ALTER TABLE events DROP COLUMN lane; DROP TABLE kept_answers;
             DROP TABLE sign_in_nonces; DROP TABLE sessions; DROP TABLE spending;
             DROP TABLE spending_counted; DROP TABLE charged_requests;
             DROP TABLE charged_requests_from; UPDATE caravan_schema SET version = 2;",
        )
        .unwrap();
}

/// A call that paid two assets, as an agent's call pays the agent and the model it called.
fn agent_call(agent: AssetId, model: AssetId) -> Event {
    Event::CallMetered(MeteredCall {
        payer: Address::from_label("payer"),
        token: usdc().address,
        node: Address::from_label("node"),
        request: None,
        parts: vec![
            CallPart {
                asset: agent,
                amount: 40,
                calls: 1,
            },
            CallPart {
                asset: model,
                amount: 60,
                calls: 3,
            },
        ],
        trace: "{}".into(),
    })
}

/// `payer`'s spending from `from_day` as (asset, calls, uses, amount), the day checked to be
/// today's.
fn spent(journal: &Journal, from_day: u64) -> Vec<(AssetId, u64, u64, u128)> {
    let today = caravan_store::now_ms() / caravan_core::calendar::DAY_MS;
    journal
        .spending(Address::from_label("payer"), from_day)
        .wait()
        .unwrap()
        .iter()
        .map(|row| {
            assert_eq!((row.day, row.token), (today, usdc().address));
            (row.asset, row.calls, row.uses, row.amount)
        })
        .collect()
}

fn spending_adds_up_per_payer_day_and_asset_and_an_upgraded_store_counts_its_older_calls(
    scratch: Scratch,
    forget_spending: fn(&Location),
) {
    let mut journal = open(&scratch.location);
    let reviews = seed_economy(&mut journal);
    let agent = dataset("agent");
    let agent_id = agent.id();
    let events = vec![
        Event::AssetRegistered(agent),
        usage(reviews, 500),
        metered(reviews, None),
        agent_call(agent_id, reviews),
        // Refused (more than the balance): it charges nobody.
        usage(reviews, 1_000_000_000),
    ];
    let submitted = journal.submit(events).unwrap();
    assert_eq!(submitted.refused.len(), 1);
    // Calls queued one by one share a group commit: the writer adds them up before writing.
    let tickets: Vec<_> = (0..5)
        .map(|_| {
            journal
                .submit_pipelined(vec![metered(reviews, None)], caravan_store::now_ms())
                .1
        })
        .collect();
    for ticket in tickets {
        journal.settle(ticket).unwrap();
    }
    let mut expected = vec![
        (reviews, 1 + 1 + 5, 1 + 1 + 1 + 5, 500 + 300 + 60 + 5 * 300),
        (agent_id, 1, 1, 40),
    ];
    expected.sort();
    assert_eq!(spent(&journal, 0), expected);
    let today = caravan_store::now_ms() / caravan_core::calendar::DAY_MS;
    assert!(spent(&journal, today + 1).is_empty());
    assert!(
        journal
            .spending(Address::from_label("someone else"), 0)
            .wait()
            .unwrap()
            .is_empty()
    );
    drop(journal);

    let journal = open(&scratch.location);
    assert_eq!(spent(&journal, 0), expected, "the table outlives a reopen");
    drop(journal);

    // The same store as a caravan from before the spend table left it: the first writer to
    // open it counts what its calls charged, once.
    forget_spending(&scratch.location);
    let mut journal = open(&scratch.location);
    assert_eq!(spent(&journal, 0), expected);
    journal.submit(vec![metered(reviews, None)]).unwrap();
    drop(journal);
    let journal = open(&scratch.location);
    let after: Vec<_> = spent(&journal, 0);
    assert_eq!(
        after[0].3 + after[1].3,
        expected[0].3 + expected[1].3 + 300,
        "counted once"
    );
}

fn forget_sqlite_spending(location: &Location) {
    sqlite_connection(location)
        .execute_batch(
            "DROP TABLE spending; DROP TABLE spending_counted; DROP TABLE charged_requests;
             DROP TABLE charged_requests_from; PRAGMA user_version = 5;",
        )
        .unwrap();
}

fn forget_postgres_spending(location: &Location) {
    postgres_client(location)
        .batch_execute(
            "DROP TABLE spending; DROP TABLE spending_counted; DROP TABLE charged_requests;
             DROP TABLE charged_requests_from; UPDATE caravan_schema SET version = 5;",
        )
        .unwrap();
}

/// The request id of a [`metered`] call sent under `key`.
fn request_of(key: &str) -> Hash32 {
    keccak256(key.as_bytes())
}

/// Keyed calls are found by request id, the moment they are submitted (durable or not), after a
/// reopen, and until a day has passed; an upgraded store indexes the last day's calls it already
/// held, and only those.
fn keyed_calls_are_indexed_by_request_for_a_day_and_an_upgraded_store_indexes_its_last_day(
    scratch: Scratch,
    forget_index: fn(&Location),
) {
    const DAY: u64 = CHARGED_REQUESTS_KEPT_MS;
    let now = now_ms();
    let mut journal = open(&scratch.location);
    let asset = seed_economy_at(&mut journal, now - 3 * DAY);
    // Three days ago; then a day and a millisecond later, which forgets the first.
    let three_days_ago = now - 3 * DAY;
    submit_at(
        &mut journal,
        vec![metered(asset, Some("order-1"))],
        three_days_ago,
    );
    assert_eq!(
        journal.charged_at(request_of("order-1"), 0).unwrap(),
        Some(three_days_ago)
    );
    let two_days_ago = three_days_ago + DAY + 1;
    submit_at(
        &mut journal,
        vec![metered(asset, Some("order-2")), metered(asset, None)],
        two_days_ago,
    );
    assert_eq!(journal.charged_at(request_of("order-1"), 0).unwrap(), None);
    assert_eq!(
        journal.charged_at(request_of("order-2"), 0).unwrap(),
        Some(two_days_ago)
    );
    // Asked for charges since a later time, it is not found.
    assert_eq!(
        journal
            .charged_at(request_of("order-2"), two_days_ago + 1)
            .unwrap(),
        None
    );

    // A charge queued for a long commit window is found at once: the question ends the wait.
    let (submitted, ticket) = journal.submit_pipelined_within(
        vec![metered(asset, Some("order-3"))],
        now,
        std::time::Duration::from_secs(600),
    );
    assert!(submitted.refused.is_empty());
    assert_eq!(
        journal.charged_at(request_of("order-3"), 0).unwrap(),
        Some(now)
    );
    journal.settle(ticket).unwrap();
    // The same request charged again (its key used afresh a day later) is found at its latest.
    submit_at(&mut journal, vec![metered(asset, Some("order-2"))], now + 1);
    assert_eq!(
        journal.charged_at(request_of("order-2"), 0).unwrap(),
        Some(now + 1)
    );
    assert_eq!(
        journal.charged_at(request_of("never sent"), 0).unwrap(),
        None
    );
    let head = journal.economy().state_hash();
    drop(journal);

    let journal = open(&scratch.location);
    assert_eq!(
        journal.charged_at(request_of("order-3"), 0).unwrap(),
        Some(now)
    );
    drop(journal);

    // A store from before the index: the open indexes the keyed calls of the last day.
    forget_index(&scratch.location);
    let journal = open(&scratch.location);
    assert_eq!(journal.economy().state_hash(), head, "the log is untouched");
    assert_eq!(
        journal.charged_at(request_of("order-3"), 0).unwrap(),
        Some(now)
    );
    assert_eq!(
        journal.charged_at(request_of("order-2"), 0).unwrap(),
        Some(now + 1)
    );
    assert_eq!(journal.charged_at(request_of("order-1"), 0).unwrap(), None);
    drop(journal);
    // And the next open finds nothing left to index, and loses nothing.
    let journal = open(&scratch.location);
    assert_eq!(
        journal.charged_at(request_of("order-3"), 0).unwrap(),
        Some(now)
    );
}

fn forget_sqlite_index(location: &Location) {
    sqlite_connection(location)
        .execute_batch(
            "DROP TABLE charged_requests; DROP TABLE charged_requests_from; PRAGMA user_version = 6;",
        )
        .unwrap();
}

fn forget_postgres_index(location: &Location) {
    postgres_client(location)
        .batch_execute(
            "DROP TABLE charged_requests; DROP TABLE charged_requests_from; UPDATE caravan_schema SET version = 6;",
        )
        .unwrap();
}

macro_rules! suite {
    ($module:ident, $scratch:expr, $tamper:expr, $bump:expr, $damage:expr, $refuse:expr, $forget:expr, $forget_spending:expr, $forget_index:expr, $($ignore:tt)*) => {
        mod $module {
            use super::*;
            $($ignore)* #[test] fn reopen_reproduces_state_and_refused_events_are_not_stored() { super::reopen_reproduces_state_and_refused_events_are_not_stored($scratch) }
            $($ignore)* #[test] fn epoch_bundles_are_stored_with_their_event() { super::epoch_bundles_are_stored_with_their_event($scratch) }
            $($ignore)* #[test] fn a_second_writer_is_refused_with_a_clear_error() { super::a_second_writer_is_refused_with_a_clear_error($scratch) }
            $($ignore)* #[test] fn a_reader_opens_beside_the_writer_sees_its_commits_and_cannot_write() { super::a_reader_opens_beside_the_writer_sees_its_commits_and_cannot_write($scratch) }
            $($ignore)* #[test] fn a_conflicting_batch_is_rolled_back_whole() { super::a_conflicting_batch_is_rolled_back_whole($scratch) }
            $($ignore)* #[test] fn a_tampered_log_fails_to_open() { super::a_tampered_log_fails_to_open($scratch, $tamper) }
            $($ignore)* #[test] fn a_store_from_a_newer_caravan_is_refused() { super::a_store_from_a_newer_caravan_is_refused($scratch, $bump) }
            $($ignore)* #[test] fn reopening_starts_from_the_latest_snapshot() { super::reopening_starts_from_the_latest_snapshot($scratch) }
            $($ignore)* #[test] fn tampering_behind_a_snapshot_is_found_at_open() { super::tampering_behind_a_snapshot_is_found_at_open($scratch, $tamper) }
            $($ignore)* #[test] fn a_truncated_log_is_refused_at_open_naming_what_saw_more() { super::a_truncated_log_is_refused_at_open_naming_what_saw_more($scratch) }
            $($ignore)* #[test] fn a_failed_write_rolls_memory_back_to_the_disk() { super::a_failed_write_rolls_memory_back_to_the_disk($scratch, $refuse) }
            $($ignore)* #[test] fn concurrent_submitters_share_one_journal() { super::concurrent_submitters_share_one_journal($scratch, $refuse) }
            $($ignore)* #[test] fn only_the_newest_snapshots_are_kept() { super::only_the_newest_snapshots_are_kept($scratch) }
            $($ignore)* #[test] fn a_damaged_snapshot_is_passed_over_and_caught_by_verification() { super::a_damaged_snapshot_is_passed_over_and_caught_by_verification($scratch, $damage) }
            $($ignore)* #[test] fn a_snapshot_from_before_registration_times_is_replayed_over_and_still_verifies() { super::a_snapshot_from_before_registration_times_is_replayed_over_and_still_verifies($scratch) }
            $($ignore)* #[test] fn a_snapshot_from_before_credits_were_kept_is_replayed_over_and_the_next_bundle_verifies() { super::a_snapshot_from_before_credits_were_kept_is_replayed_over_and_the_next_bundle_verifies($scratch) }
            $($ignore)* #[test] fn a_close_whose_bundle_never_reached_the_store_gets_it_back_at_the_next_open() { super::a_close_whose_bundle_never_reached_the_store_gets_it_back_at_the_next_open($scratch) }
            $($ignore)* #[test] fn a_bundle_being_stored_is_pending_not_missing() { super::a_bundle_being_stored_is_pending_not_missing($scratch) }
            $($ignore)* #[test] fn windowed_appends_share_a_commit_that_anything_but_a_usage_report_starts() { super::windowed_appends_share_a_commit_that_anything_but_a_usage_report_starts($scratch) }
            $($ignore)* #[test] fn a_lane_holds_just_its_events_and_a_store_from_before_lanes_misses_none() { super::a_lane_holds_just_its_events_and_a_store_from_before_lanes_misses_none($scratch, $forget) }
            $($ignore)* #[test] fn spending_adds_up_per_payer_day_and_asset_and_an_upgraded_store_counts_its_older_calls() { super::spending_adds_up_per_payer_day_and_asset_and_an_upgraded_store_counts_its_older_calls($scratch, $forget_spending) }
            $($ignore)* #[test] fn keyed_calls_are_indexed_by_request_for_a_day_and_an_upgraded_store_indexes_its_last_day() { super::keyed_calls_are_indexed_by_request_for_a_day_and_an_upgraded_store_indexes_its_last_day($scratch, $forget_index) }
            $($ignore)* #[test] fn kept_answers_are_found_until_they_expire_and_survive_a_reopen() { super::kept_answers_are_found_until_they_expire_and_survive_a_reopen($scratch) }
            $($ignore)* #[test] fn a_nonce_opens_one_session_and_sessions_outlive_a_reopen_until_they_end() { super::a_nonce_opens_one_session_and_sessions_outlive_a_reopen_until_they_end($scratch) }
            $($ignore)* #[test] fn acknowledged_events_survive_a_kill() {
                if super::crash_writer_child() { return; }
                super::acknowledged_events_survive_a_kill($scratch, concat!(stringify!($module), "::acknowledged_events_survive_a_kill"))
            }
        }
    };
}

suite!(
    on_sqlite,
    sqlite(),
    tamper_sqlite,
    bump_sqlite_schema,
    damage_sqlite_snapshot,
    refuse_sqlite_writes,
    forget_sqlite_lanes,
    forget_sqlite_spending,
    forget_sqlite_index,
);
suite!(on_postgres, postgres(), tamper_postgres, bump_postgres_schema, damage_postgres_snapshot, refuse_postgres_writes, forget_postgres_lanes, forget_postgres_spending, forget_postgres_index, #[ignore = "needs CARAVAN_TEST_POSTGRES_URL; run with `cargo test -- --ignored`"]);

/// `url` with `parameters` added to its query.
fn with_query(url: &str, parameters: &str) -> String {
    let joiner = if url.contains('?') { '&' } else { '?' };
    format!("{url}{joiner}{parameters}")
}

fn encrypted(client: &mut postgres::Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0)
}

#[test]
#[ignore = "needs CARAVAN_TEST_POSTGRES_URL; run with `cargo test -- --ignored`"]
fn postgres_connections_are_secured_as_their_sslmode_says() {
    let admin = std::env::var("CARAVAN_TEST_POSTGRES_URL").expect("set CARAVAN_TEST_POSTGRES_URL");
    let connect = |parameters: &str| postgres_tls::connect(&with_query(&admin, parameters));
    let mut plain = connect("sslmode=disable").unwrap();
    assert!(!encrypted(&mut plain));
    let offered: String = plain.query_one("SHOW ssl", &[]).unwrap().get(0);
    if offered != "on" {
        let refused = connect("sslmode=require").err().unwrap().to_string();
        assert!(refused.contains("does not offer TLS"), "{refused}");
        eprintln!("this PostgreSQL server has ssl off: only the refusal was checked");
        return;
    }
    assert!(
        encrypted(&mut connect("").unwrap()),
        "prefer encrypts when offered"
    );
    assert!(encrypted(&mut connect("sslmode=require").unwrap()));

    // A whole store over TLS: the scratch database keeps the admin URL's sslmode.
    let name = format!("caravan_test_tls_{}", std::process::id());
    let location =
        Location::create_postgres_database(&with_query(&admin, "sslmode=require"), &name).unwrap();
    let scratch = Scratch {
        location,
        _dir: None,
        dropper: Some((admin.clone(), name)),
    };
    let mut journal = open(&scratch.location);
    seed_economy(&mut journal);
    drop(journal);
    assert_eq!(open(&scratch.location).economy().head().next_seq, 4);

    // verify-full checks the certificate: a server whose certificate no authority on this
    // machine vouches for is refused, with what to do; given its authority, it is accepted.
    let refused = connect("sslmode=verify-full").err().unwrap().to_string();
    assert!(refused.contains("sslrootcert=FILE"), "{refused}");
    let certificate: String = plain.query_one("SHOW ssl_cert_file", &[]).unwrap().get(0);
    let names_localhost =
        std::fs::read_to_string(&certificate).is_ok() && admin.contains("127.0.0.1");
    if names_localhost {
        let by_name = admin.replace("127.0.0.1", "localhost");
        let mut verified = postgres_tls::connect(&with_query(
            &by_name,
            &format!("sslmode=verify-full&sslrootcert={certificate}"),
        ))
        .unwrap();
        assert!(encrypted(&mut verified));
    }
}

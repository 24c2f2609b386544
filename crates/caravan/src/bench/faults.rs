//! `caravan bench faults`: the node killed with SIGKILL at random moments while clients work it.
//!
//! A real `caravan serve` (this binary, as a child process) serves a store on SQLite (or on
//! PostgreSQL, whose server the run may restart while the node serves) with a paid classifier,
//! a labelling project and scheduled epoch closes whose roots it posts on the embedded chain.
//! Clients call the classifier (half with an `Idempotency-Key`, retried with the same key until
//! answered) and submit judgments, a wallet deposits into caravan's vault on the embedded chain
//! (from this process, as a wallet beside the node would), and each keeps a record of every
//! answer it was given. The node is killed at a random moment, the store is checked with the node down, and
//! the node is started again, alternating the two charge durabilities. The checks, after every
//! kill and at the end:
//!
//! - every answered judgment, and every charge answered under `committed`, is in the log exactly
//!   once (a charge answered under `queued` may be lost with a crash: that is the mode's stated
//!   window, counted apart);
//! - no deposit is credited twice, and at the end every deposit the chain acknowledged is
//!   credited (between kills one may still wait for the node's follower);
//! - no idempotency key was charged twice, and a retry answered with the first call's charge;
//! - `caravan log verify` passes (a full replay checks every hash link, rule, snapshot and
//!   epoch bundle, and the ledger balances to zero in every token), and the state it reaches
//!   equals the one the node opens from its snapshots;
//! - the chain holds each posted epoch's root once, in order, equal to the log's; at the end the
//!   latest closed epoch's root is posted (an epoch closed just before a kill may be skipped by
//!   the next root, which pays everything it did: roots are cumulative; counted apart).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use caravan_core::{Address, Event, Hash32};
use caravan_node::keys::{KeyRecord, key_id};
use caravan_node::settlement::{Chains, EMBEDDED, chains_dir};
use caravan_store::Journal;
use caravan_tasks::board::TaskEvent;
use caravan_tasks::item::ItemId;
use clap::Args;

use super::clients::{Answered, Crowd, Dice, Team, spawn_clients};
use super::served::{
    CALLING_SCOPES, How, Serving, Site, Size, dev_token, free_port, prepare, scratch_site,
};
use super::store::ScratchStore;
use crate::present::table;

#[derive(Args)]
pub struct FaultsArgs {
    /// A short run for CI: 10 kills instead of 200.
    #[arg(long)]
    quick: bool,
    /// How many times the node is killed [default: 200, or 10 with --quick].
    #[arg(long)]
    kills: Option<u32>,
    /// Seed of the kill moments and the clients' choices: a run that fails replays with it.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory for the scratch store (a fresh temporary one inside it), and for the
    /// chains and bundles when the store is on PostgreSQL.
    #[arg(long, default_value = ".")]
    scratch_dir: PathBuf,
    /// Keep the store on PostgreSQL instead: a URL of a server where the run may create (and
    /// afterwards drop) a scratch database, e.g. postgres://postgres@127.0.0.1:5432/postgres.
    #[arg(long)]
    postgres: Option<String>,
    /// A shell command that restarts the PostgreSQL server (with --postgres), run while the
    /// node serves before every tenth kill, e.g. "pg_ctlcluster 15 main restart".
    #[arg(long, requires = "postgres")]
    restart_postgres: Option<String>,
}

/// The store the kill loop works: few clients, paced, so each check replays a small log.
const SIZE: Size = Size {
    callers: 4,
    labellers: 4,
    items: 50_000,
    key_scopes: CALLING_SCOPES,
};
/// How long the node serves between kills: a random moment in this range.
const UP_MS: (u64, u64) = (200, 3_500);
/// How long a client waits between its requests. The loop is about the moments a node dies,
/// not throughput: paced, a run of 200 kills leaves a log each check can replay in about a
/// second, where clients going flat out would grow it by millions of events.
const PACE: Duration = Duration::from_millis(5);

/// How often the wallet beside the node deposits.
const DEPOSIT_EVERY: Duration = Duration::from_millis(400);
/// The account the deposits fill. Each deposit's amount is its own (this plus its number), so
/// its credit is found by it.
const DEPOSIT_BASE: u128 = 1_000_000;

fn depositor() -> Address {
    Address::from_label("faults depositor")
}

/// A wallet beside the node: deposits the development token into the vault on the embedded
/// chain every [`DEPOSIT_EVERY`] until `stop`, and records each amount the chain acknowledged.
/// The node, killed and restarted meanwhile, credits them by following the vault's logs.
fn spawn_depositor(
    site: &Site,
    stop: Arc<AtomicBool>,
    made: Arc<Mutex<Vec<u128>>>,
) -> std::thread::JoinHandle<Result<(), String>> {
    let dir = chains_dir(&site.dir);
    std::thread::spawn(move || {
        let chains = Chains::new(dir, reqwest::Client::new());
        let token = dev_token();
        let mut amount = DEPOSIT_BASE;
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(DEPOSIT_EVERY);
            // Held from before the deposit until it is recorded: a check (which holds it too)
            // never finds a credit for a deposit not yet on its list.
            let mut made = made.lock().expect("deposits lock");
            let mut chain = chains
                .open(EMBEDDED, 0)
                .map_err(|e| format!("the wallet cannot open the embedded chain: {e}"))?;
            chain
                .deposit(token, amount, depositor(), caravan_store::now_ms() / 1000)
                .map_err(|e| format!("the wallet's deposit of {amount} failed: {e}"))?;
            made.push(amount);
            amount += 1;
        }
        Ok(())
    })
}

/// What one check of the store found.
#[derive(Default)]
struct Findings {
    events: u64,
    /// Answered under `committed` (or a judgment) and not in the log.
    lost: u64,
    /// Answered under `queued` and not in the log: the mode's stated window.
    lost_queued: u64,
    /// A charge with the same idempotency key twice, or one judgment stored twice.
    duplicated: u64,
    epochs_closed: u64,
    roots_posted: u64,
    /// Whether the latest closed epoch's root is on the chain.
    latest_posted: bool,
    /// Closed epochs whose root was never posted because a later one was posted first (the
    /// node died between a close and its post, and closed again before posting): roots are
    /// cumulative, so the later root pays everything the skipped one did.
    superseded: u64,
    /// Roots posted twice for one epoch, out of order, or unlike the log's.
    roots_wrong: u64,
    /// Deposits the chain acknowledged that the log credits (once).
    deposits_credited: u64,
    /// Deposits the chain acknowledged that the log does not credit yet.
    deposits_waiting: u64,
    problems: Vec<String>,
}

/// The node the loop starts: a root posted every second, under the durability given.
fn serving(committed: bool) -> How {
    How {
        committed,
        epoch_every: "1s",
        operator: None,
    }
}

pub fn faults(args: FaultsArgs) -> Result<(), String> {
    let kills = args.kills.unwrap_or(if args.quick { 10 } else { 200 });
    let (scratch, database, site) = scratch_site(
        "caravan-faults-",
        &args.scratch_dir,
        args.postgres.as_deref(),
    )?;
    let world = prepare(&site, SIZE)?;
    let port = free_port()?;
    let team = Arc::new(Team::new(format!("http://127.0.0.1:{port}"), PACE)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let clients = spawn_clients(
        &runtime,
        &team,
        &world,
        Crowd {
            issuers: 1,
            readers: 0,
            seed: args.seed,
        },
    );

    let deposits_stop = Arc::new(AtomicBool::new(false));
    let deposits_made = Arc::new(Mutex::new(Vec::new()));
    let wallet = spawn_depositor(
        &site,
        Arc::clone(&deposits_stop),
        Arc::clone(&deposits_made),
    );

    let log_path = site.log();
    let mut dice = Dice(args.seed);
    // Every check of the store, after each kill and in the closing wait for the last root.
    let mut checks = 0u32;
    let started = Instant::now();
    let bar = crate::present::progress(u64::from(kills), "kills");
    let mut node = Serving::start(&site, port, serving(true), &log_path)?;
    let mut database_restarts = 0;
    let mut answered_after_restarts = 0;
    for kill in 0..kills {
        let up = UP_MS.0 + dice.below(UP_MS.1 - UP_MS.0);
        std::thread::sleep(Duration::from_millis(up));
        if let Some(restart) = args.restart_postgres.as_deref().filter(|_| kill % 10 == 5) {
            restart_database(restart)?;
            database_restarts += 1;
            // The node serves on through the restart: what it answers afterwards shows it
            // came back to the new server.
            let before = team.served.load(Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(up));
            answered_after_restarts += team.served.load(Ordering::SeqCst) - before;
        }
        node.kill()?;
        let findings = check(
            &site,
            &team.answered.lock().expect("answers lock"),
            &deposits_made.lock().expect("deposits lock"),
        )?;
        checks += 1;
        if !findings.problems.is_empty() || findings.lost > 0 || findings.duplicated > 0 {
            return Err(format!(
                "after kill {}: {} lost, {} duplicated; {}; {}",
                kill + 1,
                findings.lost,
                findings.duplicated,
                findings.problems.join("; "),
                keep(scratch, database)
            ));
        }
        bar.inc(1);
        // The durability the next node answers with, set before it answers anything.
        let committed = kill % 2 == 1;
        team.durable.store(committed, Ordering::SeqCst);
        node = Serving::start(&site, port, serving(committed), &log_path)?;
    }
    bar.finish_and_clear();
    // The clients stop; a retry in flight still gets its answer from the node that is up.
    team.stop.store(true, Ordering::SeqCst);
    deposits_stop.store(true, Ordering::SeqCst);
    runtime.block_on(async {
        for client in clients {
            let _ = client.await;
        }
    });
    wallet
        .join()
        .map_err(|_| "the wallet's thread panicked".to_string())??;
    let deposits_made = deposits_made.lock().expect("deposits lock").clone();
    // With no new work the node only finishes what it started: the latest closed epoch's root
    // posted, and every deposit credited.
    let mut settled = None;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_secs(3));
        node.kill()?;
        let findings = check(
            &site,
            &team.answered.lock().expect("answers lock"),
            &deposits_made,
        )?;
        checks += 1;
        if (findings.latest_posted && findings.deposits_waiting == 0)
            || !findings.problems.is_empty()
        {
            settled = Some(findings);
            break;
        }
        team.durable.store(true, Ordering::SeqCst);
        node = Serving::start(&site, port, serving(true), &log_path)?;
    }
    let Some(last) = settled else {
        return Err(format!(
            "the node did not post the latest closed epoch's root, or credit every deposit, within a minute of the work stopping; {}",
            keep(scratch, database)
        ));
    };
    let answered = team.answered.lock().expect("answers lock");
    if !last.problems.is_empty() || last.lost > 0 || last.duplicated > 0 {
        return Err(format!(
            "at the end: {} lost, {} duplicated; {}; {}",
            last.lost,
            last.duplicated,
            last.problems.join("; "),
            keep(scratch, database)
        ));
    }
    let latency = team.latencies.overall();
    let idempotent = answered.calls.iter().filter(|c| c.key.is_some()).count();
    let mut t = table(&["figure", "value", "must be"], &[1]);
    let rows: Vec<(&str, String, &str)> = vec![
        (
            "kills survived (SIGKILL at a random moment)",
            kills.to_string(),
            "",
        ),
        (
            "store",
            if site.database().is_some() {
                "PostgreSQL".into()
            } else {
                "SQLite".into()
            },
            "",
        ),
        (
            "PostgreSQL restarts while the node served (answers after them)",
            format!("{database_restarts} ({answered_after_restarts})"),
            "",
        ),
        ("events in the log at the end", last.events.to_string(), ""),
        (
            "paid calls answered (with an Idempotency-Key)",
            format!("{} ({idempotent})", answered.calls.len()),
            "",
        ),
        (
            "retries answered from the first call",
            answered.replays.to_string(),
            "",
        ),
        (
            "retries of a key charged whose answer a crash took (409, not charged again)",
            answered.charged_unanswered.len().to_string(),
            "",
        ),
        (
            "judgments answered",
            answered.judgments.len().to_string(),
            "",
        ),
        (
            "API keys issued / revoked (signed by the payer's wallet)",
            format!("{} / {}", answered.keys.len(), answered.revoked.len()),
            "",
        ),
        (
            "deposits made on chain by a wallet beside the node / credited once",
            format!("{} / {}", deposits_made.len(), last.deposits_credited),
            "equal",
        ),
        (
            "answered under committed, judgments, keys and deposits not in the log (lost)",
            last.lost.to_string(),
            "0",
        ),
        (
            "answered under queued, lost with a crash (the mode's stated window)",
            last.lost_queued.to_string(),
            "",
        ),
        (
            "charged twice for one key, stored or credited twice (duplicated)",
            (last.duplicated + answered.replays_differing).to_string(),
            "0",
        ),
        (
            "epochs closed / roots posted",
            format!("{} / {}", last.epochs_closed, last.roots_posted),
            "",
        ),
        (
            "closed epochs skipped by a later root (the node died between close and post)",
            last.superseded.to_string(),
            "",
        ),
        (
            "the latest closed epoch's root posted",
            if last.latest_posted { "yes" } else { "no" }.into(),
            "yes",
        ),
        (
            "roots posted twice, out of order or unlike the log's",
            last.roots_wrong.to_string(),
            "0",
        ),
        (
            "answers a client did not cause (4xx, 5xx)",
            answered.unexpected.len().to_string(),
            "0",
        ),
        (
            "answers' p50 / p99 (ms; slowed by kills and checks)",
            format!(
                "{:.1} / {:.1}",
                latency.p50.as_secs_f64() * 1e3,
                latency.p99.as_secs_f64() * 1e3
            ),
            "",
        ),
        (
            "checks of the store (replay, ledger, snapshots)",
            checks.to_string(),
            "",
        ),
    ];
    for (figure, value, must) in rows {
        t.add_row(vec![figure.to_owned(), value, must.to_owned()]);
    }
    println!("{t}");
    println!(
        "{kills} kills in {:.0} s; calls and judgments answered between kills: {}",
        started.elapsed().as_secs_f64(),
        team.served.load(Ordering::Relaxed)
    );
    if let Some(first) = answered.unexpected.first() {
        return Err(format!(
            "{} answers the clients did not cause, the first: {first}",
            answered.unexpected.len()
        ));
    }
    println!("faults_kills: {kills}");
    println!("faults_lost: {}", last.lost);
    println!("faults_deposits_made: {}", deposits_made.len());
    println!("faults_deposits_credited: {}", last.deposits_credited);
    println!(
        "faults_duplicated: {}",
        last.duplicated + answered.replays_differing
    );
    Ok(())
}

/// Keeps the store as the run left it when a check fails, and says where it is.
fn keep(scratch: tempfile::TempDir, database: Option<ScratchStore>) -> String {
    let dir = scratch.keep();
    match database {
        Some(database) => {
            let kept = format!(
                "the store is kept in the database {} (chains and bundles in {})",
                database.name(),
                dir.display()
            );
            std::mem::forget(database);
            kept
        }
        None => format!("the store is kept in {}", dir.display()),
    }
}

/// Runs the command that restarts the PostgreSQL server.
fn restart_database(command: &str) -> Result<(), String> {
    let status = Command::new("sh")
        .args(["-c", command])
        .status()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if !status.success() {
        return Err(format!("{command:?} failed ({status})"));
    }
    Ok(())
}

/// Checks the store with the node down (see the module's list). `deposits` are the amounts the
/// chain acknowledged; one not credited yet is waiting (the follower had not read it before the
/// kill), not lost.
fn check(site: &Site, answered: &Answered, deposits: &[u128]) -> Result<Findings, String> {
    let (dir, location) = (&site.dir, site.location.clone());
    let mut findings = Findings::default();
    // Opened as the restarted node opens it (from its snapshots, finishing what the crash
    // left, such as an epoch's bundle), then replayed from the first event as `caravan log
    // verify` does: both must reach the same state.
    let journal = Journal::open(location.clone(), &mut |_, _| {})
        .map_err(|e| format!("the store does not open: {e}"))?;
    let opened_state = journal.economy().state_hash();
    findings.events = journal.economy().head().next_seq;
    // One pass over the log: charges by sequence number, keyed charges by request, judgments,
    // epoch roots.
    let mut charges: BTreeMap<u64, (u64, Address, Option<Hash32>)> = BTreeMap::new();
    let mut requests: BTreeMap<Hash32, u64> = BTreeMap::new();
    let mut judged: BTreeMap<(Address, ItemId), u64> = BTreeMap::new();
    let mut roots: BTreeMap<u64, Hash32> = BTreeMap::new();
    let mut keys: BTreeMap<String, u64> = BTreeMap::new();
    let mut revoked: BTreeMap<String, u64> = BTreeMap::new();
    let mut credited: BTreeMap<u128, u64> = BTreeMap::new();
    let mut from = 0;
    loop {
        let rows = journal
            .read_events(from, 10_000)
            .map_err(|e| e.to_string())?;
        let Some(last) = rows.last() else { break };
        from = last.seq + 1;
        for row in rows {
            let event = Event::decode(&row.body)
                .map_err(|e| format!("event {} does not decode: {e}", row.seq))?;
            match event {
                Event::CallMetered(call) => {
                    if let Some(request) = call.request {
                        *requests.entry(request).or_default() += 1;
                    }
                    charges.insert(row.seq, (row.at_ms, call.payer, call.request));
                }
                Event::WorkRecorded { record, .. } => {
                    if let Ok(TaskEvent::JudgmentSubmitted {
                        contributor, item, ..
                    }) = serde_json::from_str::<TaskEvent>(&record)
                    {
                        *judged.entry((contributor, item)).or_default() += 1;
                    }
                }
                Event::EpochClosed { epoch, root, .. } => {
                    roots.insert(epoch, root);
                }
                Event::AccessRecorded { record } => match serde_json::from_str(&record) {
                    Ok(KeyRecord::KeyIssued { key, .. }) => *keys.entry(key.id).or_default() += 1,
                    Ok(KeyRecord::KeyRevoked { hash, .. }) => {
                        *revoked.entry(key_id(&hash)).or_default() += 1;
                    }
                    Err(_) => {}
                },
                Event::DepositConfirmed(deposit) if deposit.account == depositor() => {
                    *credited.entry(deposit.amount).or_default() += 1;
                }
                _ => {}
            }
        }
    }
    drop(journal);
    let replayed = Journal::open_verifying(location, &mut |_, _| {})
        .map_err(|e| format!("the log does not replay: {e}"))?;
    if let Err(why) = crate::commands::verify_replayed(&replayed) {
        findings
            .problems
            .push(format!("caravan log verify fails: {why}"));
    }
    if replayed.economy().state_hash() != opened_state {
        findings.problems.push(
            "the state opened from the snapshots differs from a full replay of the log".into(),
        );
    }
    drop(replayed);
    let twice: Vec<String> = requests
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(request, n)| format!("the request {request} charged {n} times"))
        .chain(
            judged
                .iter()
                .filter(|(_, n)| **n > 1)
                .map(|((who, item), n)| {
                    format!("the judgment of {who} on {} stored {n} times", item.0)
                }),
        )
        .chain(
            keys.iter()
                .filter(|(_, n)| **n > 1)
                .map(|(id, n)| format!("the key {id} issued {n} times")),
        )
        .chain(
            revoked
                .iter()
                .filter(|(_, n)| **n > 1)
                .map(|(id, n)| format!("the key {id} revoked {n} times")),
        )
        .chain(
            credited
                .iter()
                .filter(|(_, n)| **n > 1)
                .map(|(amount, n)| format!("the deposit of {amount} credited {n} times")),
        )
        .collect();
    findings.duplicated = twice.len() as u64;
    findings.problems.extend(
        twice
            .into_iter()
            .take(3)
            .map(|what| format!("duplicated: {what}")),
    );
    if let Some(amount) = credited.keys().find(|amount| !deposits.contains(amount)) {
        findings.problems.push(format!(
            "a deposit of {amount} credited that the chain never acknowledged"
        ));
    }
    findings.deposits_credited =
        deposits.iter().filter(|a| credited.contains_key(a)).count() as u64;
    findings.deposits_waiting = deposits.len() as u64 - findings.deposits_credited;
    let mut lost = |what: String| {
        findings.lost += 1;
        if findings.lost <= 3 {
            findings.problems.push(format!("lost: {what}"));
        }
    };
    for id in answered.keys.iter().filter(|id| !keys.contains_key(*id)) {
        lost(format!("API key {id}"));
    }
    for id in answered
        .revoked
        .iter()
        .filter(|id| !revoked.contains_key(*id))
    {
        lost(format!("the revocation of API key {id}"));
    }
    for call in &answered.calls {
        let stored = charges.get(&call.seq);
        if stored.is_some_and(|&(at_ms, payer, _)| at_ms == call.at_ms && payer == call.payer) {
            continue;
        }
        if call.durable {
            lost(format!(
                "the charge answered as event {} at {} ms (key {:?}); the log holds {stored:?} there",
                call.seq, call.at_ms, call.key
            ));
        } else {
            findings.lost_queued += 1;
        }
    }
    for (contributor, item) in answered
        .judgments
        .iter()
        .filter(|j| !judged.contains_key(*j))
    {
        lost(format!("the judgment of {contributor} on item {}", item.0));
    }
    findings.epochs_closed = roots.len() as u64;
    let chains = Chains::new(
        chains_dir(dir),
        reqwest::Client::builder()
            .build()
            .map_err(|e| e.to_string())?,
    );
    let posted = chains
        .posted_roots("embedded")
        .map_err(|e| format!("the embedded chain cannot be read: {e}"))?;
    findings.roots_posted = posted.len() as u64;
    let mut last_posted = 0;
    for root in &posted {
        if root.epoch <= last_posted || roots.get(&root.epoch) != Some(&root.root) {
            findings.roots_wrong += 1;
        }
        last_posted = last_posted.max(root.epoch);
    }
    let on_chain: BTreeSet<u64> = posted.iter().map(|root| root.epoch).collect();
    findings.superseded = roots
        .keys()
        .filter(|&&epoch| epoch < last_posted && !on_chain.contains(&epoch))
        .count() as u64;
    findings.latest_posted = roots
        .keys()
        .next_back()
        .is_none_or(|latest| on_chain.contains(latest));
    if findings.roots_wrong > 0 {
        findings.problems.push(format!(
            "{} root(s) posted twice, out of order or unlike the log's",
            findings.roots_wrong
        ));
    }
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::clients::AnsweredCall;
    use caravan_core::{CallPart, MeteredCall};
    use caravan_store::Location;

    /// The check is what the figures rest on: it must see an answer the log lost (under each
    /// durability), a judgment, a key and a revocation that are not there, one key charged
    /// twice, one key revoked twice, one deposit credited twice and one credited that was never
    /// made.
    #[test]
    fn a_check_finds_what_the_log_lost_and_a_key_charged_twice() {
        let dir = tempfile::tempdir().unwrap();
        let site = Site {
            dir: dir.path().to_path_buf(),
            location: Location::DataDir(dir.path().to_path_buf()),
        };
        let world = prepare(&site, SIZE).unwrap();
        let mut answered = Answered::default();
        let clean = check(&site, &answered, &[]).unwrap();
        assert!(clean.problems.is_empty(), "{:?}", clean.problems);
        assert_eq!(
            (clean.lost, clean.duplicated, clean.epochs_closed),
            (0, 0, 0)
        );

        let payer = world.keys[0].0;
        let call = |seq, durable| AnsweredCall {
            seq,
            at_ms: 1,
            payer,
            key: None,
            durable,
        };
        answered.calls.push(call(clean.events + 5, true));
        answered.calls.push(call(clean.events + 6, false));
        answered.judgments.push((
            world.sessions[0].0,
            ItemId(caravan_core::keccak256(b"an item never judged")),
        ));
        answered.keys.push("key_0011223344556677".into());
        answered.revoked.push("key_8899aabbccddeeff".into());
        let revoked_twice = caravan_core::keccak256(b"a key revoked twice");
        let revocation = || Event::AccessRecorded {
            record: serde_json::to_string(&KeyRecord::KeyRevoked {
                hash: revoked_twice,
                at_ms: 1,
            })
            .unwrap(),
        };
        let request = caravan_core::keccak256(b"one idempotency key");
        let mut journal = Journal::open(site.location.clone(), &mut |_, _| {}).unwrap();
        let classifier = journal
            .read_events(0, 100)
            .unwrap()
            .iter()
            .find_map(|row| match Event::decode(&row.body).unwrap() {
                Event::AssetRegistered(manifest) => Some(manifest.id()),
                _ => None,
            })
            .unwrap();
        let charged = |request| {
            Event::CallMetered(MeteredCall {
                payer,
                token: dev_token(),
                node: world.node,
                request: Some(request),
                parts: vec![CallPart {
                    asset: classifier,
                    amount: 1_000,
                    calls: 1,
                }],
                trace: "[]".into(),
            })
        };
        let deposit = |tx: &[u8], amount| {
            Event::DepositConfirmed(caravan_core::ChainDeposit {
                chain_id: caravan_chain::embedded::EMBEDDED_CHAIN_ID,
                tx: caravan_core::keccak256(tx),
                log_index: 0,
                block: 1,
                account: depositor(),
                token: dev_token(),
                amount,
            })
        };
        let submitted = journal
            .submit(vec![
                charged(request),
                charged(request),
                deposit(b"first", DEPOSIT_BASE),
                deposit(b"again", DEPOSIT_BASE),
                deposit(b"never made", DEPOSIT_BASE + 7),
                revocation(),
                revocation(),
            ])
            .unwrap();
        assert!(submitted.refused.is_empty(), "{:?}", submitted.refused);
        drop(journal);

        let found = check(&site, &answered, &[DEPOSIT_BASE, DEPOSIT_BASE + 1]).unwrap();
        assert_eq!(
            found.lost, 4,
            "the committed call, the judgment, the key and the revocation"
        );
        assert_eq!(found.lost_queued, 1);
        assert_eq!(
            found.duplicated, 3,
            "one key charged twice, one deposit credited twice, one key revoked twice"
        );
        assert_eq!(
            (found.deposits_credited, found.deposits_waiting),
            (1, 1),
            "a deposit not credited yet waits for the follower"
        );
        let named = |kind: &str| {
            found
                .problems
                .iter()
                .filter(|p| p.starts_with(kind))
                .count()
        };
        assert_eq!(
            (
                named("lost: "),
                named("duplicated: "),
                named("a deposit of 1000007 credited that the chain never acknowledged"),
                found.problems.len()
            ),
            (3, 3, 1, 7),
            "each loss and each double is named: {:?}",
            found.problems
        );
    }

    #[test]
    fn the_dice_replay_with_their_seed_and_stay_below_the_bound() {
        let (mut a, mut b) = (Dice(7), Dice(7));
        let rolls: Vec<u64> = (0..1000).map(|_| a.below(6)).collect();
        assert!(rolls.iter().all(|&r| r < 6));
        assert_eq!(rolls, (0..1000).map(|_| b.below(6)).collect::<Vec<_>>());
        assert_eq!(
            rolls.iter().copied().collect::<BTreeSet<_>>().len(),
            6,
            "every face comes up"
        );
    }
}

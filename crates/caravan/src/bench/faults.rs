//! `caravan bench faults`: the node killed with SIGKILL at random moments while clients work it.
//!
//! A real `caravan serve` (this binary, as a child process) serves a store on SQLite (or on
//! PostgreSQL, whose server the run may restart while the node serves) with a paid classifier,
//! a labelling project and scheduled epoch closes whose roots it posts on the embedded chain.
//! Clients call the classifier (half with an `Idempotency-Key`, retried with the same key until
//! answered) and submit judgments, and keep a record of every answer they were given. The node is killed at a random moment, the store is checked with the node down, and
//! the node is started again, alternating the two charge durabilities. The checks, after every
//! kill and at the end:
//!
//! - every answered judgment, and every charge answered under `committed`, is in the log exactly
//!   once (a charge answered under `queued` may be lost with a crash: that is the mode's stated
//!   window, counted apart);
//! - no idempotency key was charged twice, and a retry answered with the first call's charge;
//! - `caravan log verify` passes (a full replay checks every hash link, rule, snapshot and
//!   epoch bundle, and the ledger balances to zero in every token), and the state it reaches
//!   equals the one the node opens from its snapshots;
//! - the chain holds each posted epoch's root once, in order, equal to the log's; at the end the
//!   latest closed epoch's root is posted (an epoch closed just before a kill may be skipped by
//!   the next root, which pays everything it did: roots are cumulative; counted apart).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use caravan_core::{Address, Event, Genesis, Hash32, Ppm, Token};
use caravan_models::ArtifactStore;
use caravan_node::gateway::receipt::NodeSigner;
use caravan_node::keys::{KeyRequest, Scope};
use caravan_node::settlement::{Chains, chains_dir};
use caravan_server::access::SESSION_COOKIE;
use caravan_store::{Journal, Location};
use caravan_tasks::board::TaskEvent;
use caravan_tasks::item::{Item, ItemId};
use caravan_tasks::schema::Answer;
use clap::Args;
use serde_json::{Value, json};

use super::gateway::{paid_model, stored_classifier};
use super::store::ScratchStore;
use super::task_node::{open_bench_node_at, sign_in, wallet};
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

/// Where the node keeps its store: the data directory (chains, bundles, keys; the SQLite
/// store too) and the store's location.
struct Site {
    dir: PathBuf,
    location: Location,
}

impl Site {
    /// `--database URL` for `caravan serve` when the store is on PostgreSQL.
    fn database(&self) -> Option<&str> {
        match &self.location {
            Location::Postgres(url) => Some(url),
            Location::DataDir(_) => None,
        }
    }
}

/// Clients calling the classifier, each as its own payer with its own key.
const CALLERS: usize = 4;
/// Clients submitting judgments, each a contributor signed in with a wallet.
const LABELLERS: usize = 4;
/// Items in the project: more than the labellers can judge in a run.
const ITEMS: usize = 50_000;
/// How long the node serves between kills: a random moment in this range.
const UP_MS: (u64, u64) = (200, 3_500);
/// How long a client waits for a node to come back before it tries again.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// How long a client waits between its requests. The loop is about the moments a node dies,
/// not throughput: paced, a run of 200 kills leaves a log each check can replay in about a
/// second, where clients going flat out would grow it by millions of events.
const PACE: Duration = Duration::from_millis(5);

/// What the clients were answered, kept until the end of the run.
#[derive(Default)]
struct Answered {
    /// Paid calls answered: the charge's sequence number, time, payer, idempotency key, and
    /// whether the node answered after the charge was durable (`committed`).
    calls: Vec<AnsweredCall>,
    /// Judgments answered: the contributor and the item.
    judgments: Vec<(Address, ItemId)>,
    /// API keys issued: their ids.
    keys: Vec<String>,
    /// Retries of an idempotency key whose answer named another charge than the first answer.
    replays_differing: u64,
    /// Retries answered from the first call (the node's replay header).
    replays: u64,
    /// Keys whose call was charged while a crash took the answer: the node answers such a
    /// retry with 409 `idempotency_key_charged` and charges nothing more.
    charged_unanswered: Vec<String>,
    /// Answers a client did not cause: a 4xx other than "nothing left to judge", or a 5xx
    /// other than the storage being down.
    unexpected: Vec<String>,
}

#[derive(Clone)]
struct AnsweredCall {
    seq: u64,
    at_ms: u64,
    payer: Address,
    key: Option<String>,
    durable: bool,
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
    problems: Vec<String>,
}

pub fn faults(args: FaultsArgs) -> Result<(), String> {
    let kills = args.kills.unwrap_or(if args.quick { 10 } else { 200 });
    std::fs::create_dir_all(&args.scratch_dir)
        .map_err(|e| format!("cannot make {}: {e}", args.scratch_dir.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix("caravan-faults-")
        .tempdir_in(&args.scratch_dir)
        .map_err(|e| format!("cannot make a scratch directory: {e}"))?;
    let dir = scratch.path().to_path_buf();
    let database = match &args.postgres {
        Some(admin) => Some(ScratchStore::postgres(admin, 900)?),
        None => None,
    };
    let site = Site {
        location: database
            .as_ref()
            .map_or_else(|| Location::DataDir(dir.clone()), |db| db.location.clone()),
        dir: dir.clone(),
    };
    let world = prepare(&site)?;
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let answered = Arc::new(Mutex::new(Answered::default()));
    let durable = Arc::new(AtomicBool::new(true));
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
    let mut clients = Vec::new();
    for (n, (payer, key)) in world.keys.iter().enumerate() {
        let client = Caller {
            http: http.clone(),
            base: base.clone(),
            payer: *payer,
            key: key.clone(),
            input: world.input.clone(),
            answered: Arc::clone(&answered),
            durable: Arc::clone(&durable),
            stop: Arc::clone(&stop),
            served: Arc::clone(&served),
            dice: Dice(args.seed ^ (n as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            name: n,
        };
        clients.push(runtime.spawn(client.run()));
    }
    for (contributor, session) in &world.sessions {
        let labeller = Labeller {
            http: http.clone(),
            base: base.clone(),
            project: world.project.clone(),
            contributor: *contributor,
            session: session.clone(),
            answered: Arc::clone(&answered),
            stop: Arc::clone(&stop),
            served: Arc::clone(&served),
        };
        clients.push(runtime.spawn(labeller.run()));
    }

    let issuer = Issuer {
        http: http.clone(),
        base: base.clone(),
        wallet: wallet("faults key holder"),
        node: world.node,
        answered: Arc::clone(&answered),
        stop: Arc::clone(&stop),
        served: Arc::clone(&served),
    };
    clients.push(runtime.spawn(issuer.run()));

    let log_path = dir.join("serve.log");
    let mut dice = Dice(args.seed);
    // Every check of the store, after each kill and in the closing wait for the last root.
    let mut checks = 0u32;
    let started = Instant::now();
    let bar = crate::present::progress(u64::from(kills), "kills");
    durable.store(true, Ordering::SeqCst);
    let mut node = Serving::start(&site, port, true, &log_path)?;
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
            let before = served.load(Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(up));
            answered_after_restarts += served.load(Ordering::SeqCst) - before;
        }
        node.kill()?;
        let findings = check(&site, &answered.lock().expect("answers lock"))?;
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
        durable.store(committed, Ordering::SeqCst);
        node = Serving::start(&site, port, committed, &log_path)?;
    }
    bar.finish_and_clear();
    // The clients stop; a retry in flight still gets its answer from the node that is up.
    stop.store(true, Ordering::SeqCst);
    runtime.block_on(async {
        for client in clients {
            let _ = client.await;
        }
    });
    // With no new work the node only finishes what it started: the latest closed epoch's root
    // posted.
    let mut settled = None;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_secs(3));
        node.kill()?;
        let findings = check(&site, &answered.lock().expect("answers lock"))?;
        checks += 1;
        if findings.latest_posted || !findings.problems.is_empty() {
            settled = Some(findings);
            break;
        }
        durable.store(true, Ordering::SeqCst);
        node = Serving::start(&site, port, true, &log_path)?;
    }
    let Some(last) = settled else {
        return Err(format!(
            "the node did not post the latest closed epoch's root within a minute of the work stopping; {}",
            keep(scratch, database)
        ));
    };
    let answered = answered.lock().expect("answers lock");
    if !last.problems.is_empty() || last.lost > 0 || last.duplicated > 0 {
        return Err(format!(
            "at the end: {} lost, {} duplicated; {}; {}",
            last.lost,
            last.duplicated,
            last.problems.join("; "),
            keep(scratch, database)
        ));
    }
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
            "API keys issued (signed by the payer's wallet)",
            answered.keys.len().to_string(),
            "",
        ),
        (
            "answered under committed, judgments and keys not in the log (lost)",
            last.lost.to_string(),
            "0",
        ),
        (
            "answered under queued, lost with a crash (the mode's stated window)",
            last.lost_queued.to_string(),
            "",
        ),
        (
            "charged twice for one key, or stored twice (duplicated)",
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
        served.load(Ordering::Relaxed)
    );
    if let Some(first) = answered.unexpected.first() {
        return Err(format!(
            "{} answers the clients did not cause, the first: {first}",
            answered.unexpected.len()
        ));
    }
    println!("faults_kills: {kills}");
    println!("faults_lost: {}", last.lost);
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

/// What the clients need: a key per payer, a session per labeller, the project, the input.
struct World {
    /// The node's address, which a payer's signed key request names.
    node: Address,
    keys: Vec<(Address, String)>,
    sessions: Vec<(Address, String)>,
    project: String,
    input: Value,
}

/// Sets the store up in-process: the development token of the embedded chain (so roots are
/// posted without funding), a paid classifier, payers with deposits and keys, and a project
/// with labellers signed in. Closes it before the first `caravan serve`.
fn prepare(site: &Site) -> Result<World, String> {
    let dir = &site.dir;
    let token = Token {
        address: Address(caravan_chain::settlement::DEV_TOKEN.into_array()),
        symbol: "USDC".into(),
        decimals: 6,
    };
    let artifacts = ArtifactStore::new(dir.join("models"));
    let (examples, content) = stored_classifier(&artifacts)?;
    let manifest = paid_model(
        "classifier",
        Address::from_label("faults developer"),
        content,
        token.address,
    );
    let payers: Vec<Address> = (0..CALLERS)
        .map(|n| Address::from_label(&format!("faults payer {n}")))
        .collect();
    let mut events = vec![
        Event::Genesis(Genesis {
            treasury: Address::from_label("faults treasury"),
            protocol_fee: Ppm::ZERO,
        }),
        Event::TokenRegistered(token.clone()),
        Event::AssetRegistered(manifest),
    ];
    events.extend(payers.iter().map(|&payer| Event::Deposited {
        payer,
        token: token.address,
        amount: 1 << 80,
    }));
    let mut journal =
        Journal::open(site.location.clone(), &mut |_, _| {}).map_err(|e| e.to_string())?;
    journal.submit(events).map_err(|e| e.to_string())?;
    let signer = NodeSigner::load_or_create(&dir.join("node.key")).map_err(|e| e.to_string())?;
    let node_address = signer.address();
    let bench = open_bench_node_at(journal, artifacts, signer, token.address)?;
    let node = &bench.node;
    let mut keys = Vec::new();
    for &payer in &payers {
        let (secret, _) = node
            .keys()
            .issue(
                payer,
                vec![Scope::Classify, Scope::Models],
                None,
                "faults".into(),
            )
            .map_err(|e| e.to_string())?;
        keys.push((payer, secret));
    }
    let desk = node.desk();
    let project = desk
        .create_project(bench.requester, bench.spec.clone())
        .map_err(|e| e.to_string())?;
    let items: Vec<Item> = (0..ITEMS)
        .map(|n| Item {
            data: json!({ "text": format!("faults article {n}") }),
            gold: None,
            predictions: Vec::new(),
        })
        .collect();
    desk.add_items(&project, bench.requester, items)
        .map_err(|e| e.to_string())?;
    let mut sessions = Vec::new();
    for n in 0..LABELLERS {
        let wallet = wallet(&format!("faults labeller {n}"));
        let contributor = caravan_core::attestation::address_of(wallet.verifying_key());
        sessions.push((contributor, sign_in(node, &wallet)?));
    }
    Ok(World {
        node: node_address,
        keys,
        sessions,
        project: project.to_string(),
        input: examples[0].data.clone(),
    })
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|e| e.to_string())
}

/// `caravan serve` as a child process.
struct Serving {
    child: Child,
}

impl Serving {
    /// Starts the node on `port` and waits until it answers.
    fn start(site: &Site, port: u16, committed: bool, log: &Path) -> Result<Serving, String> {
        let output = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let errors = output.try_clone().map_err(|e| e.to_string())?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut command = Command::new(exe);
        command.arg("--data-dir").arg(&site.dir);
        if let Some(url) = site.database() {
            command.args(["--database", url]);
        }
        let child = command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--epoch-every", "1s"])
            .args([
                "--charge-durability",
                if committed { "committed" } else { "queued" },
            ])
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            .spawn()
            .map_err(|e| format!("cannot start caravan serve: {e}"))?;
        let mut serving = Serving { child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = serving.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!(
                    "caravan serve exited ({status}) before it answered; its output is in {}",
                    log.display()
                ));
            }
            if Instant::now() > deadline {
                serving.kill()?;
                return Err(format!(
                    "caravan serve did not answer within a minute; its output is in {}",
                    log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(serving)
    }

    /// SIGKILL: no shutdown, no flush, no goodbye.
    fn kill(&mut self) -> Result<(), String> {
        self.child
            .kill()
            .map_err(|e| format!("cannot kill the node: {e}"))?;
        self.child.wait().map_err(|e| e.to_string())?;
        Ok(())
    }
}

impl Drop for Serving {
    /// A run that stops early (a failed check) leaves no node behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Checks the store with the node down (see the module's list).
fn check(site: &Site, answered: &Answered) -> Result<Findings, String> {
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
                Event::AccessRecorded { record } => {
                    if let Some(id) = issued_key(&record) {
                        *keys.entry(id).or_default() += 1;
                    }
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
        .collect();
    findings.duplicated = twice.len() as u64;
    findings.problems.extend(
        twice
            .into_iter()
            .take(3)
            .map(|what| format!("duplicated: {what}")),
    );
    let mut lost = |what: String| {
        findings.lost += 1;
        if findings.lost <= 3 {
            findings.problems.push(format!("lost: {what}"));
        }
    };
    for id in answered.keys.iter().filter(|id| !keys.contains_key(*id)) {
        lost(format!("API key {id}"));
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

/// A payer's client: calls the classifier again and again, half the calls with an
/// idempotency key that it retries until the node answers.
struct Caller {
    http: reqwest::Client,
    base: String,
    payer: Address,
    key: String,
    input: Value,
    answered: Arc<Mutex<Answered>>,
    durable: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    dice: Dice,
    name: usize,
}

impl Caller {
    async fn run(mut self) {
        let mut n = 0u64;
        while !self.stop.load(Ordering::SeqCst) {
            tokio::time::sleep(PACE).await;
            n += 1;
            let Some(key) = (self.dice.below(2) == 0).then(|| format!("c{}-{n}", self.name)) else {
                let durable = self.durable.load(Ordering::SeqCst);
                match self.call(None).await {
                    Outcome::Answered { seq, at_ms, .. } => {
                        self.answered(seq, at_ms, None, durable)
                    }
                    Outcome::Unavailable | Outcome::ChargedUnanswered => {
                        tokio::time::sleep(RETRY_PAUSE).await
                    }
                    Outcome::Unexpected(what) => self.unexpected(what),
                }
                continue;
            };
            // A keyed call is retried until answered, even after the stop: the client must
            // learn what its first attempt did.
            let Some((seq, durable)) = self.until_answered(&key).await else {
                continue;
            };
            // Now and then the answer is asked for again, as a client does that lost it: the
            // node must answer from the first call, not charge a second time. (Under `queued`
            // a crash may have taken the first charge and its kept answer with it; a new charge
            // is then right.)
            if self.dice.below(4) == 0
                && let Some((again, _)) = self.until_answered(&key).await
                && again != seq
                && durable
            {
                self.answered
                    .lock()
                    .expect("answers lock")
                    .replays_differing += 1;
            }
        }
    }

    /// Sends the keyed call until the node answers it: its charge's sequence number and
    /// whether it was answered under `committed`; `None` when the node refused it.
    async fn until_answered(&self, key: &str) -> Option<(u64, bool)> {
        loop {
            let durable = self.durable.load(Ordering::SeqCst);
            match self.call(Some(key)).await {
                Outcome::Answered {
                    seq,
                    at_ms,
                    replayed,
                } => {
                    // A replay answers with the first call's charge: from the store, or from
                    // this node's memory of a call it charged under the same durability.
                    if replayed {
                        self.answered.lock().expect("answers lock").replays += 1;
                    }
                    self.answered(seq, at_ms, Some(key.to_owned()), durable);
                    return Some((seq, durable));
                }
                Outcome::Unavailable => tokio::time::sleep(RETRY_PAUSE).await,
                Outcome::ChargedUnanswered => {
                    self.answered
                        .lock()
                        .expect("answers lock")
                        .charged_unanswered
                        .push(key.to_owned());
                    return None;
                }
                Outcome::Unexpected(what) => {
                    self.unexpected(what);
                    return None;
                }
            }
        }
    }

    fn answered(&self, seq: u64, at_ms: u64, key: Option<String>, durable: bool) {
        self.served.fetch_add(1, Ordering::Relaxed);
        self.answered
            .lock()
            .expect("answers lock")
            .calls
            .push(AnsweredCall {
                seq,
                at_ms,
                payer: self.payer,
                key,
                durable,
            });
    }

    fn unexpected(&self, what: String) {
        self.answered
            .lock()
            .expect("answers lock")
            .unexpected
            .push(what);
    }

    async fn call(&self, idempotency: Option<&str>) -> Outcome {
        let mut request = self
            .http
            .post(format!("{}/v1/classifications", self.base))
            .bearer_auth(&self.key)
            .json(&json!({ "model": "classifier", "input": self.input }));
        if let Some(key) = idempotency {
            request = request.header("Idempotency-Key", key);
        }
        let Ok(response) = request.send().await else {
            return Outcome::Unavailable;
        };
        let status = response.status();
        let replayed = response
            .headers()
            .contains_key(caravan_node::gateway::answer::REPLAYED_HEADER);
        let receipt = response
            .headers()
            .get(caravan_node::gateway::answer::RECEIPT_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| base64::engine::general_purpose::STANDARD.decode(text).ok())
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
        let Ok(body) = response.bytes().await else {
            return Outcome::Unavailable;
        };
        if status.is_server_error() && status.as_u16() == 503 {
            return Outcome::Unavailable;
        }
        if status.as_u16() == 409
            && serde_json::from_slice::<Value>(&body)
                .is_ok_and(|b| b["error"]["code"] == "idempotency_key_charged")
        {
            return Outcome::ChargedUnanswered;
        }
        if !status.is_success() {
            return Outcome::Unexpected(format!(
                "classify: {status} {}",
                String::from_utf8_lossy(&body)
            ));
        }
        let seq = receipt
            .as_ref()
            .and_then(|r| r["call"].as_str()?.strip_prefix("clf-")?.parse().ok());
        let at_ms = receipt.as_ref().and_then(|r| r["at_ms"].as_u64());
        match (seq, at_ms) {
            (Some(seq), Some(at_ms)) => Outcome::Answered {
                seq,
                at_ms,
                replayed,
            },
            _ => Outcome::Unexpected(format!("classify: a receipt without a call: {receipt:?}")),
        }
    }
}

enum Outcome {
    Answered {
        seq: u64,
        at_ms: u64,
        replayed: bool,
    },
    /// No answer, or the node said it cannot write now: try again.
    Unavailable,
    /// The key's call was charged, but a crash took its answer before the node kept it: the
    /// node says so and never charges the key again.
    ChargedUnanswered,
    Unexpected(String),
}

/// A labeller's client: asks for the next item and answers it, again and again.
struct Labeller {
    http: reqwest::Client,
    base: String,
    project: String,
    contributor: Address,
    session: String,
    answered: Arc<Mutex<Answered>>,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
}

impl Labeller {
    async fn run(self) {
        while !self.stop.load(Ordering::SeqCst) {
            tokio::time::sleep(PACE).await;
            match self.judge().await {
                Ok(Some(item)) => {
                    self.served.fetch_add(1, Ordering::Relaxed);
                    self.answered
                        .lock()
                        .expect("answers lock")
                        .judgments
                        .push((self.contributor, item));
                }
                Ok(None) => tokio::time::sleep(RETRY_PAUSE).await,
                Err(what) => {
                    self.answered
                        .lock()
                        .expect("answers lock")
                        .unexpected
                        .push(what);
                    return;
                }
            }
        }
    }

    /// One item asked for and answered: `Some(item)` once the node answered the judgment,
    /// `None` when the node was not there to ask or to answer.
    async fn judge(&self) -> Result<Option<ItemId>, String> {
        let cookie = format!("{SESSION_COOKIE}={}", self.session);
        let post = |path: String| {
            self.http
                .post(format!("{}/v1/projects/{}/{path}", self.base, self.project))
                .header("cookie", &cookie)
        };
        let Ok(next) = post("next".into()).send().await else {
            return Ok(None);
        };
        let status = next.status();
        let Ok(assigned) = next.json::<Value>().await else {
            return Ok(None);
        };
        // 503: the store cannot write now; 409 nothing_left: every item this labeller may
        // answer waits for others or is resolved. Both pass; the labeller asks again.
        if status.as_u16() == 503
            || (status.as_u16() == 409 && assigned["error"]["code"] == "nothing_left")
        {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(format!("next item: {status} {assigned}"));
        }
        let item: ItemId = serde_json::from_value(assigned["item"].clone())
            .map_err(|e| format!("next item: {e}: {assigned}"))?;
        let body = json!({ "item": assigned["item"], "answer": Answer::Choice("sports".into()) });
        let Ok(submitted) = post("judgments".into()).json(&body).send().await else {
            return Ok(None);
        };
        let status = submitted.status();
        let Ok(reply) = submitted.json::<Value>().await else {
            return Ok(None);
        };
        match status.as_u16() {
            200..=299 => Ok(Some(item)),
            503 => Ok(None),
            // The lease taken before a kill may have lapsed or moved: ask again.
            409 => Ok(None),
            _ => Err(format!("judgment: {status} {reply}")),
        }
    }
}

/// The id of the key an access record issues, if it issues one.
fn issued_key(record: &str) -> Option<String> {
    let record: Value = serde_json::from_str(record).ok()?;
    (record["type"] == "key_issued")
        .then(|| record["key"]["id"].as_str().map(str::to_owned))
        .flatten()
}

/// A payer issuing API keys with its wallet's signature, one after another.
struct Issuer {
    http: reqwest::Client,
    base: String,
    wallet: k256::ecdsa::SigningKey,
    node: Address,
    answered: Arc<Mutex<Answered>>,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
}

impl Issuer {
    async fn run(self) {
        let payer = caravan_core::attestation::address_of(self.wallet.verifying_key());
        let scopes = [Scope::Models];
        let mut n = 0u64;
        while !self.stop.load(Ordering::SeqCst) {
            n += 1;
            let name = format!("faults key {n}");
            let signed = KeyRequest::Issue {
                scopes: &scopes,
                expires_in_days: None,
                name: &name,
            }
            .sign(&self.wallet, &self.node, caravan_store::now_ms());
            let body = json!({
                "payer": payer,
                "scopes": scopes,
                "name": name,
                "signed_at_ms": signed.signed_at_ms,
                "signature": signed.signature,
            });
            let sent = self
                .http
                .post(format!("{}/v1/keys", self.base))
                .json(&body)
                .send()
                .await;
            let Ok(response) = sent else {
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            };
            let status = response.status();
            let Ok(reply) = response.json::<Value>().await else {
                continue;
            };
            match (status.as_u16(), reply["id"].as_str()) {
                (200..=299, Some(id)) => {
                    self.served.fetch_add(1, Ordering::Relaxed);
                    self.answered
                        .lock()
                        .expect("answers lock")
                        .keys
                        .push(id.to_owned());
                }
                (503, _) => tokio::time::sleep(RETRY_PAUSE).await,
                _ => {
                    self.answered
                        .lock()
                        .expect("answers lock")
                        .unexpected
                        .push(format!("key issue: {status} {reply}"));
                    return;
                }
            }
            // A person issues keys now and then, not in a loop.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A small deterministic generator (SplitMix64), so a run replays with its seed.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caravan_core::{CallPart, MeteredCall};

    /// The check is what the figures rest on: it must see an answer the log lost (under each
    /// durability), a judgment and a key that are not there, and one key charged twice.
    #[test]
    fn a_check_finds_what_the_log_lost_and_a_key_charged_twice() {
        let dir = tempfile::tempdir().unwrap();
        let site = Site {
            dir: dir.path().to_path_buf(),
            location: Location::DataDir(dir.path().to_path_buf()),
        };
        let world = prepare(&site).unwrap();
        let mut answered = Answered::default();
        let clean = check(&site, &answered).unwrap();
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
                token: Address(caravan_chain::settlement::DEV_TOKEN.into_array()),
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
        let submitted = journal
            .submit(vec![charged(request), charged(request)])
            .unwrap();
        assert!(submitted.refused.is_empty(), "{:?}", submitted.refused);
        drop(journal);

        let found = check(&site, &answered).unwrap();
        assert_eq!(
            found.lost, 3,
            "the committed call, the judgment and the key"
        );
        assert_eq!(found.lost_queued, 1);
        assert_eq!(found.duplicated, 1, "one key charged twice");
        let named = |kind: &str| {
            found
                .problems
                .iter()
                .filter(|p| p.starts_with(kind))
                .count()
        };
        assert_eq!(
            (named("lost: "), named("duplicated: "), found.problems.len()),
            (3, 1, 4),
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

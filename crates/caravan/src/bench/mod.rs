//! `caravan bench`: measures the economy on this machine and prints a table, then one
//! `name: value` line per figure so scripts can read them.

mod api;
mod board;
mod clients;
mod close;
mod earnings;
mod faults;
mod gateway;
mod ingest;
mod merkle;
mod pipeline;
mod served;
mod settlement;
mod soak;
mod start;
mod store;
mod task_node;
mod tasks;
mod workload;

use caravan_core::{Address, Token};
use clap::{Args, Subcommand};

use crate::present::table;
use close::{measure_close, measure_close_pause, measure_durable_close};
use earnings::measure_earnings;
use ingest::{measure_concurrent_ingest, measure_ingest};
use merkle::measure_merkle;
use pipeline::BATCH;
use start::measure_node_start;
use store::ScratchStore;
use workload::CloseWorkload;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Usage ingest into the durable log, epoch close at scale, and Merkle trees for millions.
    ///
    /// (a) usage events per second, validated, applied and durable (group commit) on SQLite
    ///     (and on PostgreSQL with --postgres);
    /// (b) closing an epoch after 10 million usage events over 10,000 assets and 200,000
    ///     contributors — after 1 million too, to show the close does not grow with calls — and
    ///     the same close done durably through the store with its bundle written;
    /// (c) building the Merkle tree over 3.2 million leaves and extracting every proof;
    /// (d) a node starting on the store (b) left; (e) the earnings page's statement for one of
    ///     its contributors, first view and later ones.
    Economy(EconomyArgs),
    /// Data tasks: durable judgment submissions and truth inference.
    ///
    /// Judgment submissions per second with 1,000 concurrent clients and 200,000 registered
    /// contributors, each submission durable before its client goes on (SQLite, and PostgreSQL
    /// with --postgres); the four truth-inference methods on S_Rel (98,453 judgments); and the
    /// task board page for a signed-in contributor with 10,000 projects and 1,000,000 items.
    Tasks(tasks::TasksArgs),
    /// Settlement on the embedded chain: gas of posting a root and of claims at tree depth 22
    /// (3.2 million leaves), and one epoch closed, posted and claimed by 1,000 people, timed.
    Settlement(settlement::SettlementArgs),
    /// The gateway: latency it adds to chat calls (metered, durable) at concurrency 1, 16 and 64
    /// at a fixed request rate, and first-party classifier calls per second end to end.
    ///
    /// The node and a stand-in upstream run in this process; the load comes from a separate
    /// process over loopback, first straight to the upstream, then through the gateway.
    Gateway(gateway::GatewayArgs),
    /// The node under faults: `caravan serve` killed with SIGKILL at random moments (200 times,
    /// 10 with --quick) while clients make paid calls (half with an Idempotency-Key, retried
    /// until answered; both charge durabilities) and submit judgments, and epochs close and
    /// post their roots on schedule. After every kill the store is checked: every answered
    /// event in the log exactly once, no key charged twice, a full replay that verifies and
    /// balances and equals the state opened from snapshots, every root posted once.
    Faults(faults::FaultsArgs),
    /// The HTTP API fuzzed from its own OpenAPI document: schemathesis (pinned, installed by
    /// scripts/schemathesis/install.sh) sends every operation of a served node generated
    /// requests with a payer's key and a contributor's session, and checks that no answer is a
    /// 5xx and every answer matches the document.
    Api(api::ApiArgs),
    /// A soak: 64 clients mixing every kind of request against `caravan serve` for 10 minutes
    /// (2 with --quick): paid calls, judgments, key issues, reads and web pages, each client
    /// pausing between requests. Prints each minute's answers, p50 and p99, and the node's
    /// resident memory; fails on any answer a client did not cause.
    Soak(soak::SoakArgs),
    /// The load generator `bench gateway` runs as a separate process.
    #[command(hide = true)]
    GatewayLoad(gateway::LoadArgs),
}

#[derive(Args)]
pub struct EconomyArgs {
    /// Divide every workload by 20: a quick check that the benchmark runs, not a measurement.
    #[arg(long)]
    quick: bool,
    /// Repetitions of the ingest and Merkle measurements; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    runs: u32,
    /// Directory for the scratch stores (a fresh temporary one inside it per run).
    #[arg(long, default_value = ".")]
    scratch_dir: std::path::PathBuf,
    /// Also measure ingest on PostgreSQL: a URL of a server where the benchmark may create (and
    /// afterwards drop) a scratch database per run, e.g. postgres://postgres@127.0.0.1:5432/postgres.
    #[arg(long)]
    postgres: Option<String>,
}

pub fn run(command: BenchCommand) -> Result<(), String> {
    match command {
        BenchCommand::Economy(args) => economy(args),
        BenchCommand::Tasks(args) => tasks::tasks(args),
        BenchCommand::Settlement(args) => settlement::settlement(args),
        BenchCommand::Gateway(args) => gateway::gateway(args),
        BenchCommand::Faults(args) => faults::faults(args),
        BenchCommand::Soak(args) => soak::soak(args),
        BenchCommand::Api(args) => api::api(args),
        BenchCommand::GatewayLoad(args) => gateway::load(args),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn listed(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn economy(args: EconomyArgs) -> Result<(), String> {
    let scale = if args.quick { 20 } else { 1 };
    let (ingest_events, assets, contributors, usage_events, merkle_leaves) = (
        1_000_000 / scale,
        10_000 / scale as usize,
        200_000 / scale as usize,
        10_000_000 / scale,
        3_200_000 / scale as usize,
    );
    let durable_calls = usage_events / 10;
    let concurrent_events = ingest_events / 5;
    let token = Token {
        address: Address::from_label("bench token"),
        symbol: "TKN".into(),
        decimals: 6,
    };

    let mut sqlite_rates = Vec::new();
    for run in 0..args.runs {
        let scratch = ScratchStore::sqlite(&args.scratch_dir)?;
        sqlite_rates.push(measure_ingest(
            &scratch.location,
            &token,
            ingest_events,
            &format!("SQLite run {}", run + 1),
        )?);
    }
    let clients = 64;
    let scratch = ScratchStore::sqlite(&args.scratch_dir)?;
    let (concurrent_rate, group_size) =
        measure_concurrent_ingest(&scratch.location, &token, concurrent_events, clients)?;
    drop(scratch);
    let mut postgres_rates = Vec::new();
    if let Some(admin_url) = &args.postgres {
        for run in 0..args.runs {
            let scratch = ScratchStore::postgres(admin_url, run)?;
            postgres_rates.push(measure_ingest(
                &scratch.location,
                &token,
                ingest_events,
                &format!("PostgreSQL run {}", run + 1),
            )?);
        }
    }

    let workload = CloseWorkload::new(&token, assets, contributors);
    let (close_tenth, close) = measure_close(&workload, usage_events);
    let scratch = ScratchStore::sqlite(&args.scratch_dir)?;
    let (durable, bundle_bytes) =
        measure_durable_close(&scratch.location, &workload, durable_calls)?;
    let (start_journal, start_desk, start_gateway) =
        measure_node_start(&scratch.location, &args.scratch_dir)?;
    let earnings = measure_earnings(&scratch.location, Address::from_label("contributor 0"), 20)?;
    let pause = measure_close_pause(&scratch.location, &workload, durable_calls)?;
    drop(scratch);

    let mut merkle_runs = Vec::new();
    let mut build_runs = Vec::new();
    for _ in 0..args.runs {
        let (build, total) = measure_merkle(&token, merkle_leaves);
        build_runs.push(build);
        merkle_runs.push(total);
    }
    let (merkle, merkle_build) = (median(merkle_runs), median(build_runs));
    let ingest = median(sqlite_rates.clone());

    let mut t = table(&["figure", "workload", "median", "target"], &[2]);
    t.add_row(vec![
        "(a) usage ingest, durable".into(),
        format!("{ingest_events} usage events into SQLite (WAL, synchronous=FULL), batches of {BATCH}, group commit; {} runs: {}", args.runs, listed(&sqlite_rates)),
        format!("{ingest:.0} events/s"),
        "≥ 200,000 events/s".into(),
    ]);
    if !postgres_rates.is_empty() {
        t.add_row(vec![
            "(a') the same on PostgreSQL".into(),
            format!(
                "synchronous commit; {} runs: {}",
                args.runs,
                listed(&postgres_rates)
            ),
            format!("{:.0} events/s", median(postgres_rates.clone())),
            "—".into(),
        ]);
    }
    t.add_row(vec![
        "(a'') usage ingest, concurrent clients".into(),
        format!("{concurrent_events} usage events from {clients} threads, one event per submission, each waiting until durable; {group_size:.1} events per group commit on average"),
        format!("{concurrent_rate:.0} events/s"),
        "—".into(),
    ]);
    t.add_row(vec![
        "(b) epoch close".into(),
        format!("{usage_events} usage events over {assets} assets, {contributors} contributors → {} payouts, {} leaves", close.payouts, close.leaves),
        format!("{:.3} s", close.seconds),
        "≤ 2 s".into(),
    ]);
    t.add_row(vec![
        "(b') epoch close, a tenth of the calls".into(),
        format!(
            "same lineage after {} usage events: the close does not grow with calls",
            usage_events / 10
        ),
        format!("{close_tenth:.3} s"),
        "≈ (b)".into(),
    ]);
    t.add_row(vec![
        "(b'') epoch close, durable".into(),
        format!("same lineage stored in SQLite with {durable_calls} calls; close, its event committed, then its {:.1} MB bundle and a state snapshot", bundle_bytes as f64 / 1e6),
        format!("{:.3} s", durable.seconds),
        "—".into(),
    ]);
    t.add_row(vec![
        "(b''') a paid call during a close".into(),
        format!("one caller charging usage, each charge durable before the next, while the next epoch of (b'') closes ({:.3} s; {} calls answered meanwhile); a call's usual wait {:.2} ms", pause.close_seconds, pause.answered_during, pause.usual_ms),
        format!("{:.0} ms longest", pause.longest_ms),
        "—".into(),
    ]);
    t.add_row(vec![
        "(c) Merkle root + every proof".into(),
        format!("{merkle_leaves} leaves (account, token, cumulative), OpenZeppelin layout; build alone {merkle_build:.3} s"),
        format!("{merkle:.3} s"),
        "≤ 3 s".into(),
    ]);
    t.add_row(vec![
        "(d) node start".into(),
        format!("reopen the store (b'') left ({durable_calls} calls and a snapshot): the journal from its snapshot {start_journal:.3} s, the desk's boards {start_desk:.3} s, the gateway's keys and models {start_gateway:.3} s"),
        format!("{:.3} s", start_journal + start_desk + start_gateway),
        "—".into(),
    ]);
    t.add_row(vec![
        "(e) earnings page statement".into(),
        format!("one contributor of (b''): the first view after start reads and indexes the {:.1} MB bundle ({:.3} s); later views, median of 20; {} royalties traced through the lineage", bundle_bytes as f64 / 1e6, earnings.first_s, earnings.royalties),
        format!("{:.2} ms", earnings.warm_ms),
        "—".into(),
    ]);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "caravan bench economy{} on {cores} cores",
        if args.quick {
            " --quick (NOT a measurement)"
        } else {
            ""
        }
    );
    println!("{t}");
    println!("ingest_events_per_s: {ingest:.0}");
    println!("ingest_events_per_s_64_clients: {concurrent_rate:.0}");
    println!("ingest_events_per_group_commit_64_clients: {group_size:.1}");
    if !postgres_rates.is_empty() {
        println!(
            "ingest_events_per_s_postgres: {:.0}",
            median(postgres_rates)
        );
    }
    println!("epoch_close_s: {:.3}", close.seconds);
    println!("epoch_close_tenth_calls_s: {close_tenth:.3}");
    println!("epoch_close_durable_s: {:.3}", durable.seconds);
    println!("epoch_close_longest_call_ms: {:.1}", pause.longest_ms);
    println!(
        "node_start_s: {:.3}",
        start_journal + start_desk + start_gateway
    );
    println!("earnings_first_view_s: {:.3}", earnings.first_s);
    println!("earnings_view_ms: {:.2}", earnings.warm_ms);
    println!("merkle_3m2_s: {merkle:.3}");
    println!("merkle_3m2_build_s: {merkle_build:.3}");
    Ok(())
}

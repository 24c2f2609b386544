//! `caravan bench soak`: 64 clients working a real `caravan serve` for ten minutes.
//!
//! The node (this binary, a child process, committed charges, an epoch closed and its root
//! posted every ten seconds) serves payers calling the classifier (half with an
//! Idempotency-Key), contributors judging items, wallets rotating API keys, and readers
//! opening balances, usage, models, the project, epochs and the web pages. Every client waits
//! a moment between its requests, so the load is bounded. Each minute prints how many answers
//! the clients got, their median and 99th percentile, and the node's resident memory: a node
//! that degrades shows it as a p99 or a memory that climbs from minute to minute. Any answer a
//! client did not cause (a 4xx other than "nothing left to judge", or any 5xx) fails the run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Args;

use super::clients::{Crowd, Latencies, Minute, Team, spawn_clients};
use super::served::{CALLING_SCOPES, How, Serving, Size, free_port, prepare, scratch_site};
use crate::present::table;

#[derive(Args)]
pub struct SoakArgs {
    /// A short run for CI: 2 minutes instead of 10 (the first and last minute still differ).
    #[arg(long)]
    quick: bool,
    /// How long the clients work the node [default: 10, or 2 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..=1440))]
    minutes: Option<u64>,
    /// How long each client waits between its requests, in milliseconds: 64 clients at the
    /// default ask at most about 2,500 times a second.
    #[arg(long, default_value_t = 25)]
    pace_ms: u64,
    /// Directory for the scratch store (a fresh temporary one inside it).
    #[arg(long, default_value = ".")]
    scratch_dir: PathBuf,
    /// Keep the store on PostgreSQL instead: a URL of a server where the run may create (and
    /// afterwards drop) a scratch database, e.g. postgres://postgres@127.0.0.1:5432/postgres.
    #[arg(long)]
    postgres: Option<String>,
}

/// The 64 clients: a caller per payer, a labeller per contributor, and the crowd.
const SIZE: Size = Size {
    callers: 24,
    labellers: 16,
    items: 150_000,
    key_scopes: CALLING_SCOPES,
};
const CROWD: Crowd = Crowd {
    issuers: 4,
    readers: 20,
    seed: 1,
};

/// One minute of the soak as the table shows it.
struct MinuteRow {
    answers: usize,
    p50: Duration,
    p99: Duration,
    resident: u64,
}

pub fn soak(args: SoakArgs) -> Result<(), String> {
    let minutes = args.minutes.unwrap_or(if args.quick { 2 } else { 10 });
    let (scratch, _database, site) =
        scratch_site("caravan-soak-", &args.scratch_dir, args.postgres.as_deref())?;
    eprintln!(
        "preparing the store: {} payers, {} contributors, {} items",
        SIZE.callers, SIZE.labellers, SIZE.items
    );
    let world = prepare(&site, SIZE)?;
    let port = free_port()?;
    let log = site.log();
    let mut node = Serving::start(&site, port, How::SERVING, &log)?;
    let team = Arc::new(Team::new(
        format!("http://127.0.0.1:{port}"),
        Duration::from_millis(args.pace_ms),
    )?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let clients = spawn_clients(&runtime, &team, &world, CROWD);
    eprintln!(
        "{} clients for {minutes} minutes; one line a minute",
        clients.len()
    );
    let started = Instant::now();
    let mut resident = Vec::new();
    for minute in 1..=minutes {
        let until = started + Duration::from_secs(60 * minute);
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
        resident.push(resident_bytes(node.pid())?);
        let unexpected = team.answered.lock().expect("answers lock").unexpected.len();
        let minutes_so_far = team.latencies.minutes();
        let Some(now) = minutes_so_far
            .get(minute as usize - 1)
            .filter(|now| now.answers > 0)
        else {
            let kept = scratch.keep();
            return Err(format!(
                "the node answered nothing in minute {minute}: it stalled; the store and its output (serve.log) are kept in {}",
                kept.display()
            ));
        };
        eprintln!(
            "minute {minute:>3}: {:>7} answers, p50 {:>6.2} ms, p99 {:>7.2} ms, node resident {:>6.1} MiB, {unexpected} unexpected",
            now.answers,
            ms(now.p50),
            ms(now.p99),
            mib(resident[resident.len() - 1]),
        );
    }
    team.stop.store(true, Ordering::SeqCst);
    // A client retrying a keyed call waits for its answer; a node that gives none in a minute
    // has stalled.
    let finished = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), async {
            for client in clients {
                let _ = client.await;
            }
        })
        .await
    });
    if finished.is_err() {
        let kept = scratch.keep();
        return Err(format!(
            "the clients' last requests were not answered within a minute of the stop: the node stalled; the store and its output (serve.log) are kept in {}",
            kept.display()
        ));
    }
    node.kill()?;
    let rows: Vec<MinuteRow> = team
        .latencies
        .minutes()
        .into_iter()
        .zip(&resident)
        .map(|(minute, &resident)| MinuteRow {
            answers: minute.answers,
            p50: minute.p50,
            p99: minute.p99,
            resident,
        })
        .collect();
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Err("the soak ended before its first minute".into());
    };
    let mut t = table(
        &["minute", "answers", "p50 ms", "p99 ms", "node resident MiB"],
        &[0, 1, 2, 3, 4],
    );
    for (n, row) in rows.iter().enumerate() {
        t.add_row(vec![
            (n + 1).to_string(),
            row.answers.to_string(),
            format!("{:.2}", ms(row.p50)),
            format!("{:.2}", ms(row.p99)),
            format!("{:.1}", mib(row.resident)),
        ]);
    }
    println!("{t}");
    println!("{}", by_request(&team.latencies, rows.len()));
    let answered = team.answered.lock().expect("answers lock");
    println!(
        "answered: {} paid calls ({} retries from the first call), {} judgments, {} keys issued and {} revoked, {} reads",
        answered.calls.len(),
        answered.replays,
        answered.judgments.len(),
        answered.keys.len(),
        answered.revoked.len(),
        answered.reads
    );
    println!("soak_minutes: {minutes}");
    println!("soak_p99_first_minute_ms: {:.2}", ms(first.p99));
    println!("soak_p99_last_minute_ms: {:.2}", ms(last.p99));
    println!("soak_resident_first_minute_mib: {:.1}", mib(first.resident));
    println!("soak_resident_last_minute_mib: {:.1}", mib(last.resident));
    println!("soak_unexpected: {}", answered.unexpected.len());
    if let Some(example) = answered.unexpected.first() {
        let kept = scratch.keep();
        return Err(format!(
            "{} answers the clients did not cause, the first: {example}; the store and the node's output (serve.log) are kept in {}",
            answered.unexpected.len(),
            kept.display()
        ));
    }
    Ok(())
}

/// Each kind of request in the first minute and the last: which one slows down, by name.
fn by_request(latencies: &Latencies, minutes: usize) -> comfy_table::Table {
    let first = latencies.by_request(0);
    let last: BTreeMap<&str, Minute> = latencies
        .by_request(minutes.saturating_sub(1))
        .into_iter()
        .collect();
    let mut t = table(
        &[
            "request",
            "answers, first minute",
            "p99 ms, first",
            "answers, last minute",
            "p99 ms, last",
        ],
        &[1, 2, 3, 4],
    );
    for (what, early) in first {
        let late = last.get(what);
        t.add_row(vec![
            what.to_owned(),
            early.answers.to_string(),
            format!("{:.2}", ms(early.p99)),
            late.map_or("0".into(), |m| m.answers.to_string()),
            late.map_or("-".into(), |m| format!("{:.2}", ms(m.p99))),
        ]);
    }
    t
}

/// The resident memory of a process, from the kernel's own account of it.
fn resident_bytes(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read the node's memory from {path}: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kib| kib.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| format!("{path} gives no VmRSS line"))
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

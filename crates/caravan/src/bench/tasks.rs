//! `caravan bench tasks`: durable judgment submissions under many concurrent clients, and truth
//! inference on the largest real crowd data set.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Instant;

use caravan_core::Address;
use caravan_node::Node;
use caravan_node::auth::Credentials;
use caravan_node::desk::{Desk, DeskError};
use caravan_node::keys::Scope;
use caravan_store::{Journal, Location};
use caravan_tasks::board::AssignError;
use caravan_tasks::inference::{Method, infer};
use caravan_tasks::item::Item;
use caravan_tasks::project::ProjectId;
use caravan_tasks::schema::Answer;
use caravan_tasks::{Answers, answers::parse_truth_csv, inference::accuracy};
use clap::Args;

use super::board;
use super::store::ScratchStore;
use super::task_node::{BenchNode, open_bench_node, sign_in, wallet};
use super::{listed, median};
use crate::present::{progress, table};

#[derive(Args)]
pub struct TasksArgs {
    /// Divide the workload by 20: a quick check that the benchmark runs, not a measurement.
    #[arg(long)]
    quick: bool,
    /// Repetitions of each measurement; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    runs: u32,
    /// Directory for the scratch stores (a fresh temporary one inside it per run).
    #[arg(long, default_value = ".")]
    scratch_dir: PathBuf,
    /// Also measure on PostgreSQL: a URL of a server where the benchmark may create (and
    /// afterwards drop) a scratch database per run.
    #[arg(long)]
    postgres: Option<String>,
    /// The crowd data sets (folders with answer.csv and truth.csv); S_Rel is `s4_Relevance`.
    #[arg(
        long,
        env = "CARAVAN_CROWD_DATA",
        default_value = "../shared/data/crowd"
    )]
    crowd_data: PathBuf,
}

/// Concurrent clients submitting judgments.
const CLIENTS: usize = 1_000;
/// Items in the measured project at full size.
const ITEMS: usize = 1_000_000;

struct Submissions {
    /// Timed judgments per second, each durable before its client sends the next.
    rate: f64,
    /// Wallet sign-ins per second while the contributors signed in (each a signed EIP-4361
    /// message checked and a session stored), before any judgment.
    sign_in_rate: f64,
    /// Judgments per second while the contributors registered (their first judgment each).
    warm_up_rate: f64,
    /// Seconds to reopen the store and rebuild the board from every stored record.
    reopen_seconds: f64,
    /// Judgments on the board when it was reopened.
    judgments: u64,
    /// Milliseconds for the requester's project page after the reopen, the first view (which
    /// builds the agreement tally and the contributors' ranking) and the median of four more,
    /// each after one more judgment: the board's counts, agreement and the first page of its
    /// contributors.
    request_page_ms: (f64, f64),
}

pub fn tasks(args: TasksArgs) -> Result<(), String> {
    let scale = if args.quick { 20 } else { 1 };
    let contributors = 200_000 / scale;
    let timed = 100_000 / scale;

    let mut sqlite = Vec::new();
    let mut sqlite_sign_ins = Vec::new();
    let mut sqlite_warm = Vec::new();
    let mut reopen = Vec::new();
    let mut request_pages = Vec::new();
    let mut reopened_judgments = 0;
    for run in 0..args.runs {
        let scratch = ScratchStore::sqlite(&args.scratch_dir)?;
        let label = format!("SQLite run {}", run + 1);
        let measured = measure_submissions(&scratch.location, scale, contributors, timed, &label)?;
        sqlite.push(measured.rate);
        sqlite_sign_ins.push(measured.sign_in_rate);
        sqlite_warm.push(measured.warm_up_rate);
        reopen.push(measured.reopen_seconds);
        request_pages.push(measured.request_page_ms);
        reopened_judgments = measured.judgments;
    }
    let mut postgres = Vec::new();
    if let Some(admin_url) = &args.postgres {
        for run in 0..args.runs {
            let scratch = ScratchStore::postgres(admin_url, 100 + run)?;
            let label = format!("PostgreSQL run {}", run + 1);
            postgres.push(
                measure_submissions(&scratch.location, scale, contributors, timed, &label)?.rate,
            );
        }
    }
    let inference = measure_inference(&args.crowd_data, args.runs)?;
    let (projects, per_project) = board::workload(scale);
    let board_scratch = ScratchStore::sqlite(&args.scratch_dir)?;
    let board = board::measure_task_board(&board_scratch.location, projects, per_project, 21)?;

    let mut t = table(&["figure", "workload", "median", "target"], &[2]);
    t.add_row(vec![
        "judgment submissions, SQLite".into(),
        format!(
            "{CLIENTS} concurrent clients, {contributors} contributors signed in with their wallets (at {:.0}/s) who each judge once (at {:.0}/s), then {timed} timed judgments: the session checked, next item + submit, each durable before the client goes on; {} runs: {}",
            median(sqlite_sign_ins.clone()),
            median(sqlite_warm),
            args.runs,
            listed(&sqlite)
        ),
        format!("{:.0} judgments/s", median(sqlite.clone())),
        "≥ 5,000/s".into(),
    ]);
    let reopen = median(reopen);
    t.add_row(vec![
        "reopen, SQLite".into(),
        format!(
            "open the store and rebuild the board from {reopened_judgments} judgments' records"
        ),
        format!("{reopen:.3} s"),
        "—".into(),
    ]);
    let request_first = median(request_pages.iter().map(|(first, _)| *first).collect());
    let request_page = median(request_pages.iter().map(|(_, later)| *later).collect());
    t.add_row(vec![
        "requester's project page".into(),
        format!(
            "the board of {} items, {reopened_judgments} judgments by {contributors} contributors: its counts, agreement, confidence bins and the first 50 contributors, most submissions first; the first view after a reopen builds the agreement tally and the ranking ({request_first:.1} ms), which every judgment then keeps in step; the median of four views, each after one more judgment",
            ITEMS / scale
        ),
        format!("{request_page:.3} ms"),
        "—".into(),
    ]);
    if !postgres.is_empty() {
        t.add_row(vec![
            "judgment submissions, PostgreSQL".into(),
            format!("the same; {} runs: {}", args.runs, listed(&postgres)),
            format!("{:.0} judgments/s", median(postgres.clone())),
            "≥ 5,000/s".into(),
        ]);
    }
    t.add_row(vec![
        "task board page, SQLite".into(),
        format!(
            "GET /tasks for a signed-in contributor (session checked, every project listed and counted into three tabs, 25 cards drawn) with {} open projects and {} items on the node; 21 requests per tab; In progress (their {} projects): {:.1} ms; slowest: {:.1} ms",
            board.projects, board.items, board::WORKED_ON, board.in_progress_ms, board.slowest_ms
        ),
        format!("{:.1} ms", board.new_ms),
        "< 200 ms".into(),
    ]);
    if let Some(rows) = &inference {
        for row in rows {
            t.add_row(vec![
                format!("{} on S_Rel", method_name(row.method)),
                format!(
                    "{} judgments, 4 classes; accuracy {:.4} over the items with truth",
                    row.judgments, row.accuracy
                ),
                format!("{:.3} s", row.seconds),
                if row.method == Method::DawidSkene {
                    "< 0.3 s"
                } else {
                    "—"
                }
                .into(),
            ]);
        }
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "caravan bench tasks{} on {cores} cores",
        if args.quick {
            " --quick (NOT a measurement)"
        } else {
            ""
        }
    );
    println!("{t}");
    println!("judgments_per_s_sqlite: {:.0}", median(sqlite));
    println!("sign_ins_per_s_sqlite: {:.0}", median(sqlite_sign_ins));
    println!("reopen_board_s: {reopen:.3}");
    println!("request_page_first_ms: {request_first:.1}");
    println!("request_page_ms: {request_page:.3}");
    println!("task_board_page_ms: {:.1}", board.new_ms);
    if !postgres.is_empty() {
        println!("judgments_per_s_postgres: {:.0}", median(postgres));
    }
    match inference {
        Some(rows) => {
            for row in rows {
                println!("{}_s_rel_s: {:.3}", row.method.code(), row.seconds);
            }
        }
        None => eprintln!(
            "note: no crowd data at {}; pass --crowd-data DIR to time truth inference",
            args.crowd_data.display()
        ),
    }
    Ok(())
}

fn method_name(method: Method) -> &'static str {
    match method {
        Method::MajorityVote => "majority vote",
        Method::Wawa => "Wawa",
        Method::DawidSkene => "Dawid–Skene",
        Method::Glad => "GLAD",
    }
}

/// One method timed on S_Rel.
struct InferenceTiming {
    method: Method,
    /// Median seconds.
    seconds: f64,
    /// Over the items with truth.
    accuracy: f64,
    judgments: usize,
}

/// Times every method on S_Rel; `None` without the data.
fn measure_inference(
    dir: &std::path::Path,
    runs: u32,
) -> Result<Option<Vec<InferenceTiming>>, String> {
    let set = dir.join("s4_Relevance");
    let Ok(answers_text) = std::fs::read_to_string(set.join("answer.csv")) else {
        return Ok(None);
    };
    let truth_text = std::fs::read_to_string(set.join("truth.csv"))
        .map_err(|e| format!("cannot read {}: {e}", set.join("truth.csv").display()))?;
    let answers = Answers::parse_csv(&answers_text).map_err(|e| e.to_string())?;
    let truth = parse_truth_csv(&truth_text).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for method in Method::ALL {
        let mut times = Vec::new();
        let mut result = None;
        for _ in 0..runs {
            let start = Instant::now();
            result = Some(infer(&answers, method));
            times.push(start.elapsed().as_secs_f64());
        }
        let scored = accuracy(&answers, &result.expect("runs >= 1"), &truth);
        rows.push(InferenceTiming {
            method,
            seconds: median(times),
            accuracy: scored.share().unwrap_or(0.0),
            judgments: answers.judgments().len(),
        });
    }
    Ok(Some(rows))
}

fn measure_submissions(
    location: &Location,
    scale: usize,
    contributors: usize,
    timed: usize,
    label: &str,
) -> Result<Submissions, String> {
    let BenchNode {
        node,
        requester,
        spec,
        _scratch,
    } = open_bench_node(location)?;
    let desk = Arc::clone(node.desk());
    let project = desk
        .create_project(requester, spec)
        .map_err(|e| e.to_string())?;
    // The node the issue sizes the console for: a million items, most never judged.
    let items = ITEMS / scale;
    let bar = progress(items as u64, &format!("{label}: items"));
    for chunk in 0..items.div_ceil(10_000) {
        let batch: Vec<Item> = (chunk * 10_000..((chunk + 1) * 10_000).min(items))
            .map(|n| Item {
                data: serde_json::json!({ "text": format!("article {n}") }),
                gold: (n < 500).then(|| Answer::Choice(topic(n as u64).into())),
                predictions: Vec::new(),
            })
            .collect();
        bar.inc(batch.len() as u64);
        desk.add_items(&project, requester, batch)
            .map_err(|e| e.to_string())?;
    }
    bar.finish_and_clear();

    let per_client = contributors.div_ceil(CLIENTS);
    let timed_per_client = timed.div_ceil(CLIENTS);
    let barrier = Arc::new(Barrier::new(CLIENTS + 1));
    let (warm_done, timed_done) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let bar = progress(
        (CLIENTS * (2 * per_client + timed_per_client)) as u64,
        label,
    );
    let phases = std::thread::scope(|scope| -> Result<[f64; 3], String> {
        let mut handles = Vec::new();
        for client in 0..CLIENTS {
            let (node, barrier, bar) = (node.clone(), barrier.clone(), bar.clone());
            let (warm_done, timed_done) = (&warm_done, &timed_done);
            let handle = std::thread::Builder::new()
                .stack_size(256 << 10)
                .spawn_scoped(scope, move || -> Result<(), String> {
                    let wallets: Vec<k256::ecdsa::SigningKey> = (0..per_client)
                        .map(|p| wallet(&format!("bench contributor {client} {p}")))
                        .collect();
                    barrier.wait();
                    let mut sessions = Vec::with_capacity(wallets.len());
                    for wallet in &wallets {
                        sessions.push(sign_in(&node, wallet)?);
                        bar.inc(1);
                    }
                    barrier.wait();
                    barrier.wait();
                    for session in &sessions {
                        if judge(&node, &project, session)? {
                            warm_done.fetch_add(1, Ordering::Relaxed);
                        }
                        bar.inc(1);
                    }
                    barrier.wait();
                    barrier.wait();
                    for n in 0..timed_per_client {
                        if judge(&node, &project, &sessions[n % sessions.len()])? {
                            timed_done.fetch_add(1, Ordering::Relaxed);
                        }
                        bar.inc(1);
                    }
                    barrier.wait();
                    Ok(())
                })
                .map_err(|e| format!("cannot start a client thread: {e}"))?;
            handles.push(handle);
        }
        let mut phases = [0.0; 3];
        for phase in &mut phases {
            barrier.wait();
            let start = Instant::now();
            barrier.wait();
            *phase = start.elapsed().as_secs_f64();
        }
        for handle in handles {
            handle
                .join()
                .map_err(|_| "a client thread panicked".to_owned())??;
        }
        Ok(phases)
    })?;
    let [signing_in, warm_up, timed_phase] = phases;
    bar.finish_and_clear();
    let judgments = desk
        .status(&project)
        .map_err(|e| e.to_string())?
        .1
        .judgments;
    drop(desk);
    drop(node);
    let start = Instant::now();
    let journal = Journal::open(location.clone(), &mut |_, _| {}).map_err(|e| e.to_string())?;
    let reopened = Desk::open(journal).map_err(|e| e.to_string())?;
    let reopen_seconds = start.elapsed().as_secs_f64();
    let rebuilt = reopened
        .status(&project)
        .map_err(|e| e.to_string())?
        .1
        .judgments;
    if rebuilt != judgments {
        return Err(format!(
            "the reopened board has {rebuilt} judgments, not {judgments}"
        ));
    }
    let mut request_page = Vec::new();
    for view in 0u64..5 {
        if view > 0 {
            // A new contributor answers between views, so no view finds the board unchanged.
            let late = Address::from_label(&format!("bench late contributor {view}"));
            let assignment = reopened
                .next_item(&project, late)
                .map_err(|e| e.to_string())?;
            reopened
                .submit(
                    &project,
                    late,
                    assignment.item,
                    Answer::Choice(topic(view).into()),
                )
                .map_err(|e| e.to_string())?;
        }
        let start = Instant::now();
        reopened
            .request_view(&project, requester, 0, 50)
            .map_err(|e| e.to_string())?;
        request_page.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(Submissions {
        rate: timed_done.into_inner() as f64 / timed_phase,
        sign_in_rate: (CLIENTS * per_client) as f64 / signing_in,
        warm_up_rate: warm_done.into_inner() as f64 / warm_up,
        reopen_seconds,
        judgments,
        request_page_ms: (request_page[0], median(request_page[1..].to_vec())),
    })
}

/// The topic an article is "really" about, for gold answers and mostly-right contributors.
fn topic(n: u64) -> &'static str {
    ["sports", "politics", "science", "arts"][(n.wrapping_mul(0x9E37_79B9) >> 7) as usize % 4]
}

/// A contributor's wallet, made from a label (the same on every run).
/// One next-item + submit round trip by the session's account, authenticated as every request
/// is; the answer is right four times in five. `false` when the contributor got no item
/// (paused by check questions), which the rate does not count.
fn judge(node: &Node, project: &ProjectId, session: &str) -> Result<bool, String> {
    let credentials = Credentials {
        session: Some(session),
        authorization: None,
    };
    let person = node
        .authenticate(credentials, Scope::Labeling)
        .map_err(|e| e.to_string())?
        .account;
    let desk = node.desk();
    let assignment = match desk.next_item(project, person) {
        Ok(assignment) => assignment,
        Err(DeskError::Assign(AssignError::Paused(_))) => return Ok(false),
        Err(e) => return Err(e.to_string()),
    };
    let n: u64 = assignment.data["text"]
        .as_str()
        .and_then(|t| t.strip_prefix("article "))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let noise = (n ^ u64::from_be_bytes(person.0[..8].try_into().expect("8 bytes"))) % 5;
    let answer = if noise == 0 { topic(n + 1) } else { topic(n) };
    let credentials = Credentials {
        session: Some(session),
        authorization: None,
    };
    let person = node
        .authenticate(credentials, Scope::Labeling)
        .map_err(|e| e.to_string())?
        .account;
    desk.submit(
        project,
        person,
        assignment.item,
        Answer::Choice(answer.into()),
    )
    .map(|_| true)
    .map_err(|e| e.to_string())
}

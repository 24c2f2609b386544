//! `caravan bench`: measures the economy on this machine and prints a table, then one
//! `name: value` line per figure so scripts can read them.

use std::collections::VecDeque;
use std::time::Instant;

use caravan_core::*;
use caravan_store::{Journal, Location};
use clap::{Args, Subcommand};
use rayon::prelude::*;

use crate::present::{progress, table};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Usage ingest into the durable SQLite log, epoch close at scale, and Merkle trees for millions.
    ///
    /// (a) usage events per second, validated, applied and durable (group commit) on SQLite;
    /// (b) closing an epoch after 10 million usage events over 10,000 assets and 200,000
    ///     contributors — and after 1 million, to show the close does not grow with calls;
    /// (c) building the Merkle tree over 3.2 million leaves and extracting every proof.
    Economy(EconomyArgs),
}

#[derive(Args)]
pub struct EconomyArgs {
    /// Divide every workload by 20: a quick check that the benchmark runs, not a measurement.
    #[arg(long)]
    quick: bool,
    /// Repetitions of the ingest and Merkle measurements; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    runs: u32,
    /// Directory for the ingest stores (a fresh temporary one inside it per run).
    #[arg(long, default_value = ".")]
    scratch_dir: std::path::PathBuf,
    /// Also measure ingest on PostgreSQL: a URL of a server where the benchmark may create (and
    /// afterwards drop) a scratch database per run, e.g. postgres://postgres@127.0.0.1:5432/postgres.
    #[arg(long)]
    postgres: Option<String>,
}

/// A fresh store for one ingest run, removed when dropped.
struct ScratchStore {
    location: Location,
    _dir: Option<tempfile::TempDir>,
    database: Option<(String, String)>,
}

impl ScratchStore {
    fn sqlite(parent: &std::path::Path) -> Result<ScratchStore, String> {
        let dir = tempfile::Builder::new()
            .prefix("caravan-bench-")
            .tempdir_in(parent)
            .map_err(|e| {
                format!(
                    "cannot create a scratch directory in {}: {e}",
                    parent.display()
                )
            })?;
        Ok(ScratchStore {
            location: Location::DataDir(dir.path().to_path_buf()),
            _dir: Some(dir),
            database: None,
        })
    }

    fn postgres(admin_url: &str, run: u32) -> Result<ScratchStore, String> {
        let name = format!("caravan_bench_{}_{run}", std::process::id());
        let location =
            Location::create_postgres_database(admin_url, &name).map_err(|e| e.to_string())?;
        Ok(ScratchStore {
            location,
            _dir: None,
            database: Some((admin_url.to_string(), name)),
        })
    }
}

impl Drop for ScratchStore {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = &self.database
            && let Err(why) = Location::drop_postgres_database(admin_url, name)
        {
            eprintln!("warning: could not drop the scratch database {name}: {why}");
        }
    }
}

pub fn run(command: BenchCommand) -> Result<(), String> {
    match command {
        BenchCommand::Economy(args) => economy(args),
    }
}

struct Workload {
    ingest_events: u64,
    assets: usize,
    contributors: usize,
    usage_events: u64,
    merkle_leaves: usize,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn economy(args: EconomyArgs) -> Result<(), String> {
    let scale = if args.quick { 20 } else { 1 };
    let work = Workload {
        ingest_events: 1_000_000 / scale,
        assets: 10_000 / scale as usize,
        contributors: 200_000 / scale as usize,
        usage_events: 10_000_000 / scale,
        merkle_leaves: 3_200_000 / scale as usize,
    };
    let token = Token {
        address: Address::from_label("bench token"),
        symbol: "TKN".into(),
        decimals: 6,
    };

    let mut ingest_rates = Vec::new();
    for run in 0..args.runs {
        let store = ScratchStore::sqlite(&args.scratch_dir)?;
        ingest_rates.push(measure_ingest(
            &store.location,
            &token,
            work.ingest_events,
            &format!("SQLite run {}", run + 1),
        )?);
    }
    let ingest = median(ingest_rates.clone());
    let mut postgres_rates = Vec::new();
    if let Some(admin_url) = &args.postgres {
        for run in 0..args.runs {
            let store = ScratchStore::postgres(admin_url, run)?;
            postgres_rates.push(measure_ingest(
                &store.location,
                &token,
                work.ingest_events,
                &format!("PostgreSQL run {}", run + 1),
            )?);
        }
    }

    let (close_1m, close_full, payouts, leaves) = measure_close(&token, &work);

    let mut merkle_runs = Vec::new();
    let mut build_runs = Vec::new();
    for _ in 0..args.runs {
        let (build, total) = measure_merkle(&token, work.merkle_leaves);
        build_runs.push(build);
        merkle_runs.push(total);
    }
    let merkle = median(merkle_runs);
    let merkle_build = median(build_runs);

    let mut t = table(&["figure", "workload", "median", "target"], &[2]);
    t.add_row(vec![
        "(a) usage ingest, durable".to_string(),
        format!("{} usage events into SQLite (WAL, synchronous=FULL), batches of {BATCH}, group commit; {} runs: {}", work.ingest_events, args.runs, ingest_rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ")),
        format!("{ingest:.0} events/s"),
        "≥ 200,000 events/s".into(),
    ]);
    if !postgres_rates.is_empty() {
        t.add_row(vec![
            "(a') usage ingest, durable, PostgreSQL".to_string(),
            format!(
                "the same on PostgreSQL (synchronous commit); {} runs: {}",
                args.runs,
                postgres_rates
                    .iter()
                    .map(|r| format!("{r:.0}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!("{:.0} events/s", median(postgres_rates.clone())),
            "—".into(),
        ]);
    }
    t.add_row(vec![
        "(b) epoch close".to_string(),
        format!(
            "{} usage events over {} assets, {} contributors → {payouts} payouts, {leaves} leaves",
            work.usage_events, work.assets, work.contributors
        ),
        format!("{close_full:.3} s"),
        "≤ 2 s".into(),
    ]);
    t.add_row(vec![
        "(b') epoch close, 1/10 the calls".to_string(),
        format!(
            "same lineage after {} usage events (the close should not grow with calls)",
            work.usage_events / 10
        ),
        format!("{close_1m:.3} s"),
        "≈ (b)".into(),
    ]);
    t.add_row(vec![
        "(c) Merkle root + every proof".to_string(),
        format!("{} leaves (account, token, cumulative), OpenZeppelin layout; build alone {merkle_build:.3} s", work.merkle_leaves),
        format!("{merkle:.3} s"),
        "≤ 3 s".into(),
    ]);
    println!(
        "caravan bench economy{} on {} cores",
        if args.quick {
            " --quick (NOT a measurement)"
        } else {
            ""
        },
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!("{t}");
    println!("ingest_events_per_s: {ingest:.0}");
    if !postgres_rates.is_empty() {
        println!(
            "ingest_events_per_s_postgres: {:.0}",
            median(postgres_rates)
        );
    }
    println!("epoch_close_s: {close_full:.3}");
    println!("epoch_close_tenth_calls_s: {close_1m:.3}");
    println!("merkle_3m2_s: {merkle:.3}");
    println!("merkle_3m2_build_s: {merkle_build:.3}");
    Ok(())
}

/// Events per submission in the ingest benchmark, and submissions kept in flight.
const BATCH: usize = 4_096;
const IN_FLIGHT: usize = 8;

fn measure_ingest(
    location: &Location,
    token: &Token,
    events: u64,
    label: &str,
) -> Result<f64, String> {
    let mut journal = Journal::open(location.clone(), &mut |_, _| {}).map_err(|e| e.to_string())?;
    let assets: Vec<Manifest> = (0..100)
        .map(|i| {
            bench_dataset(
                i,
                &[Address::from_label(&format!("ingest contributor {i}"))],
            )
        })
        .collect();
    let payers: Vec<Address> = (0..16)
        .map(|i| Address::from_label(&format!("ingest payer {i}")))
        .collect();
    let mut setup = vec![
        Event::Genesis(Genesis {
            treasury: Address::from_label("treasury"),
            protocol_fee: Ppm::new(20_000).expect("2%"),
        }),
        Event::TokenRegistered(token.clone()),
    ];
    setup.extend(assets.iter().cloned().map(Event::AssetRegistered));
    setup.extend(payers.iter().map(|payer| Event::Deposited {
        payer: *payer,
        token: token.address,
        amount: u64::MAX as u128,
    }));
    journal.submit(setup).map_err(|e| e.to_string())?;
    let ids: Vec<AssetId> = assets.iter().map(Manifest::id).collect();
    let nodes: Vec<Address> = (0..4)
        .map(|i| Address::from_label(&format!("node {i}")))
        .collect();

    let bar = progress(events, label);
    let mut pending = VecDeque::new();
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < events {
        let count = BATCH.min((events - sent) as usize);
        let batch = (0..count)
            .map(|k| {
                let n = sent as usize + k;
                Event::UsageRecorded(Usage {
                    asset: ids[n % ids.len()],
                    payer: payers[n % payers.len()],
                    token: token.address,
                    amount: 1_000 + (n % 97) as u128,
                    calls: 1,
                    node: nodes[n % nodes.len()],
                })
            })
            .collect();
        let (submitted, ticket) = journal.submit_pipelined(batch, caravan_store::now_ms());
        if let Some((_, why)) = submitted.refused.first() {
            return Err(format!("bench usage was refused: {why}"));
        }
        pending.push_back(ticket);
        if pending.len() >= IN_FLIGHT {
            journal
                .settle(pending.pop_front().expect("non-empty"))
                .map_err(|e| e.to_string())?;
        }
        sent += count as u64;
        bar.set_position(sent);
    }
    while let Some(ticket) = pending.pop_front() {
        journal.settle(ticket).map_err(|e| e.to_string())?;
    }
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    Ok(events as f64 / seconds)
}

fn bench_dataset(i: usize, contributors: &[Address]) -> Manifest {
    let mut manifest = Manifest {
        kind: AssetKind::Dataset,
        name: format!("bench dataset {i}"),
        owner: Address::from_label(&format!("bench owner {i}")),
        content: keccak256(&i.to_be_bytes()),
        licence: Licence::OpenUse,
        parents: vec![],
        roles: vec![
            RoleShare {
                role: Role::DataContributor,
                share: Ppm::new(900_000).expect("90%"),
                members: contributors
                    .iter()
                    .enumerate()
                    .map(|(k, a)| Member {
                        account: *a,
                        weight: 1 + (k as u64 * 7919) % 100,
                    })
                    .collect(),
            },
            RoleShare {
                role: Role::ComputeNode,
                share: Ppm::new(100_000).expect("10%"),
                members: vec![],
            },
        ],
    };
    manifest.normalise();
    manifest
}

/// Builds the (b) economy in memory and times the close after a tenth and after all the calls.
fn measure_close(token: &Token, work: &Workload) -> (f64, f64, usize, usize) {
    let mut economy = Economy::default();
    let append = |economy: &mut Economy, event| {
        economy.append(event, 0).expect("bench events are valid");
    };
    append(
        &mut economy,
        Event::Genesis(Genesis {
            treasury: Address::from_label("treasury"),
            protocol_fee: Ppm::new(20_000).expect("2%"),
        }),
    );
    append(&mut economy, Event::TokenRegistered(token.clone()));
    // A fifth of the assets are datasets sharing the contributors; the rest are models trained on
    // them or fine-tuned from earlier models, and agents composing models.
    let datasets = work.assets / 5;
    let per_dataset = work.contributors / datasets;
    let bar = progress(work.assets as u64, "registering assets");
    let mut ids = Vec::with_capacity(work.assets);
    let mut kinds = Vec::with_capacity(work.assets);
    for i in 0..work.assets {
        let manifest = if i < datasets {
            let contributors: Vec<Address> = (0..per_dataset)
                .map(|k| Address::from_label(&format!("contributor {}", i * per_dataset + k)))
                .collect();
            bench_dataset(i, &contributors)
        } else {
            let is_agent = i % 4 == 0;
            let kind = if is_agent {
                AssetKind::Agent
            } else {
                AssetKind::Model
            };
            let pick = |salt: usize, below: usize| {
                (i.wrapping_mul(2_654_435_761).wrapping_add(salt * 40_503)) % below
            };
            let mut parents: Vec<ParentEdge> = Vec::new();
            for salt in 0..3 {
                let candidate = pick(salt, i);
                let edge = EdgeKind::ALL
                    .iter()
                    .copied()
                    .find(|e| e.allows(kind, kinds[candidate]));
                if let Some(edge) = edge
                    && !parents.iter().any(|p| p.parent == ids[candidate])
                {
                    parents.push(ParentEdge {
                        parent: ids[candidate],
                        kind: edge,
                        share: Ppm::new(150_000).expect("15%"),
                    });
                }
            }
            let developer = Member {
                account: Address::from_label(&format!("developer {i}")),
                weight: 1,
            };
            Manifest {
                kind,
                name: format!("bench {} {i}", kind.name()),
                owner: developer.account,
                content: keccak256(&i.to_be_bytes()),
                licence: Licence::OpenUse,
                parents,
                roles: vec![
                    RoleShare {
                        role: Role::Developer,
                        share: Ppm::new(800_000).expect("80%"),
                        members: vec![developer],
                    },
                    RoleShare {
                        role: Role::ComputeNode,
                        share: Ppm::new(200_000).expect("20%"),
                        members: vec![],
                    },
                ],
            }
        };
        ids.push(manifest.id());
        kinds.push(manifest.kind);
        append(&mut economy, Event::AssetRegistered(manifest));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let payers: Vec<Address> = (0..64)
        .map(|i| Address::from_label(&format!("payer {i}")))
        .collect();
    for payer in &payers {
        append(
            &mut economy,
            Event::Deposited {
                payer: *payer,
                token: token.address,
                amount: u64::MAX as u128 * 1_000,
            },
        );
    }
    let nodes: Vec<Address> = (0..16)
        .map(|i| Address::from_label(&format!("node {i}")))
        .collect();
    let callable = &ids[datasets..];
    let bar = progress(work.usage_events, "recording usage");
    let mut close_tenth = 0.0;
    for n in 0..work.usage_events as usize {
        let asset = callable[(n.wrapping_mul(2_654_435_761)) % callable.len()];
        append(
            &mut economy,
            Event::UsageRecorded(Usage {
                asset,
                payer: payers[n % payers.len()],
                token: token.address,
                amount: 1_000 + (n % 1_013) as u128,
                calls: 1,
                node: nodes[n % nodes.len()],
            }),
        );
        if n + 1 == work.usage_events as usize / 10 {
            let mut snapshot = economy.clone();
            let started = Instant::now();
            snapshot.close_epoch(1).expect("genesis exists");
            close_tenth = started.elapsed().as_secs_f64();
        }
        if n % 65_536 == 0 {
            bar.set_position(n as u64);
        }
    }
    bar.finish_and_clear();
    let started = Instant::now();
    let (outcome, _, _) = economy.close_epoch(1).expect("genesis exists");
    let close = started.elapsed().as_secs_f64();
    (
        close_tenth,
        close,
        outcome.payouts.len(),
        outcome.leaves.len(),
    )
}

/// Returns (build seconds, build + every proof seconds).
fn measure_merkle(token: &Token, count: usize) -> (f64, f64) {
    let leaves: Vec<Leaf> = (0..count)
        .map(|i| {
            let mut account = [0u8; 20];
            account[..8]
                .copy_from_slice(&(i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
            account[12..].copy_from_slice(&(i as u64).to_be_bytes());
            Leaf {
                account: Address(account),
                token: token.address,
                cumulative: 1 + (i as u128 * 7_919) % 1_000_000_007,
            }
        })
        .collect();
    let started = Instant::now();
    let tree = MerkleTree::build(&leaves);
    let build = started.elapsed().as_secs_f64();
    // Every proof, extracted on all cores as a service publishing them would.
    let checksum = (0..count)
        .into_par_iter()
        .map_init(Vec::new, |proof, index| {
            tree.proof_into(index, proof);
            proof.first().map(|h| h.0[0]).unwrap_or(0)
        })
        .reduce(|| 0u8, |a, b| a ^ b);
    let total = started.elapsed().as_secs_f64();
    let root = tree.root();
    for index in (0..count).step_by((count / 1_000).max(1)) {
        assert!(
            verify_proof(&root, &leaves[index], &tree.proof(index)),
            "a benchmark proof failed to verify"
        );
    }
    std::hint::black_box(checksum);
    (build, total)
}

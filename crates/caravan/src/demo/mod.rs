//! `caravan demo`: a realistic day in a small caravan economy, end to end through the real store.

mod client;
mod gateway;
mod report;
mod settle;
mod tasks;
mod world;

use std::collections::BTreeMap;

use caravan_core::*;
use caravan_store::{Journal, Location, now_ms};
use clap::Args;

use crate::StoreArgs;
use crate::present::progress;
use world::{Cast, Dice, World, build_world};

#[derive(Args)]
pub struct DemoArgs {
    /// Paid calls to simulate over the day.
    #[arg(long, default_value_t = 40_000, value_parser = clap::value_parser!(u32).range(1..=5_000_000))]
    calls: u32,
    /// Seed of the simulation: the same seed gives the same day, the same payouts and the same root.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Skip the first two chapters (a crowd labeling handwritten digits through the API, and an
    /// app paying to call the model trained on their labels).
    #[arg(long)]
    skip_labeling: bool,
    /// Paid calls the app sends to the digit model through the gateway, over HTTP.
    #[arg(long, default_value_t = 3_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    model_calls: u32,
    /// When the demo is done, keep a node serving its store at ADDRESS [default:
    /// 127.0.0.1:8080], so you can open its pages (sign in with your wallet or `caravan login`)
    /// and its API in a browser. Stop it with Ctrl+C; the store stays for next time.
    #[arg(long, value_name = "ADDRESS", num_args = 0..=1, default_missing_value = "127.0.0.1:8080")]
    serve: Option<std::net::SocketAddr>,
}

pub fn run(store: &StoreArgs, args: DemoArgs) -> Result<(), String> {
    if store.database.is_some() {
        return Err("the demo always runs on a fresh embedded store; leave out --database".into());
    }
    let dir = store.data_dir.join(format!("demo-{}", now_ms()));
    let mut journal =
        Journal::open(Location::DataDir(dir.clone()), &mut |_, _| {}).map_err(|e| e.to_string())?;
    let mut dice = Dice(args.seed);
    let mut cast = Cast::default();
    println!("caravan demo — one day of paid AI calls, paid back to the people behind them");
    println!("store: {} (fresh)\n", dir.display());

    let world = build_world(&mut cast, &mut dice);
    refuse_nothing(
        journal
            .submit(world.setup.clone())
            .map_err(|e| e.to_string())?,
    )?;
    let mut journal = deposit(
        journal,
        &dir,
        &world
            .apps
            .iter()
            .map(|app| (*app, world.app_deposit))
            .collect::<Vec<_>>(),
    )?;
    let mut manifests = world.manifests.clone();
    let mut model_charged: Amount = 0;
    if !args.skip_labeling {
        journal = tasks::label_digits(journal, &dir, &world.usdc, &mut cast, args.seed)?;
        let digits = tasks::load_digits()?;
        let served = gateway::serve_model(
            journal,
            &dir,
            &world.usdc,
            &mut cast,
            &digits,
            args.model_calls,
        )?;
        journal = served.journal;
        manifests.extend(served.manifests);
        model_charged = served.charged;
        println!("chapter 3 — a day of paid calls, paid back along the lineage\n");
    }
    report::lineage(journal.economy(), &world.manifests);

    let per_asset = simulate_day(&mut journal, &world, &mut dice, args.calls)?;
    let charged = report::calls(&world.usdc, &per_asset);

    let (outcome, bundle) = journal.close_epoch().map_err(|e| e.to_string())?;
    let economy = journal.economy();
    report::flow(economy, &bundle, &manifests);
    report::labelers_paid_by_the_model(economy, &bundle, &manifests);
    println!("\nwho was paid, by role");
    crate::commands::print_close_summary(economy, &bundle);
    report::earners(economy, &bundle, &cast);
    report::conservation(&world.usdc, &bundle, charged + model_charged);
    let leaf = report::proof(&world.usdc, &outcome, &bundle, &cast)?;
    settle::settle_and_claim(&dir, &world.usdc, &outcome, &bundle, &cast)?;

    println!("\nexplore it:");
    let dir_arg = dir.display();
    println!("  caravan --data-dir {dir_arg} asset list");
    println!(
        "  caravan --data-dir {dir_arg} epoch show 1 --account {} --out epoch-1.json",
        leaf.account
    );
    println!("  caravan epoch verify-bundle epoch-1.json");
    println!("  caravan --data-dir {dir_arg} log verify");
    let Some(listen) = args.serve else {
        println!("  caravan --data-dir {dir_arg} serve    # its web pages and API, in a browser");
        return Ok(());
    };
    drop(journal);
    println!("\nserving the demo's store; open the address below in a browser (Ctrl+C stops it)");
    let mut served = store.clone();
    served.data_dir = dir;
    crate::serve::run(&served, crate::serve::ServeArgs::listening_on(listen))
}

/// Deposits `amounts` for their accounts as payers and requesters do: on the embedded chain of
/// the demo's store, credited from the vault's logs.
fn deposit(
    journal: Journal,
    dir: &std::path::Path,
    amounts: &[(Address, Amount)],
) -> Result<Journal, String> {
    let shared = std::sync::Arc::new(caravan_store::SharedJournal::new(journal));
    deposit_shared(&shared, dir, amounts)?;
    std::sync::Arc::try_unwrap(shared)
        .map(caravan_store::SharedJournal::into_inner)
        .map_err(|_| "the demo's journal is still shared".to_owned())
}

/// [`deposit`] into a journal a node shares.
fn deposit_shared(
    journal: &std::sync::Arc<caravan_store::SharedJournal>,
    dir: &std::path::Path,
    amounts: &[(Address, Amount)],
) -> Result<(), String> {
    let chains = caravan_node::settlement::Chains::new(
        caravan_node::settlement::chains_dir(dir),
        reqwest::Client::new(),
    );
    let credited =
        crate::commands::deposit_for_development(std::sync::Arc::new(chains), journal, amounts)?;
    if credited.len() != amounts.len() {
        return Err(format!(
            "{} deposits were made on the embedded chain but {} credited",
            amounts.len(),
            credited.len()
        ));
    }
    Ok(())
}

/// Records `count` paid calls spread over yesterday, busier in the afternoon, each served by the
/// node whose region is awake. Returns the calls and revenue per asset name.
fn simulate_day(
    journal: &mut Journal,
    world: &World,
    dice: &mut Dice,
    count: u32,
) -> Result<BTreeMap<&'static str, (u64, Amount)>, String> {
    let day_start = (now_ms() / 86_400_000 - 1) * 86_400_000;
    let hourly: Vec<u64> = (0..24)
        .map(|h: u64| {
            2 + if (8..22).contains(&h) {
                6 + (h.min(22 - h + 8))
            } else {
                0
            }
        })
        .collect();
    let mut calls: Vec<(u64, usize, usize, usize)> = (0..count)
        .map(|_| {
            let hour = dice.pick(&hourly) as u64;
            let at = day_start + hour * 3_600_000 + dice.below(3_600_000);
            let node = match hour {
                6..=13 => dice.pick(&[6, 2, 1]),
                14..=21 => dice.pick(&[2, 6, 1]),
                _ => dice.pick(&[1, 2, 6]),
            };
            (
                at,
                dice.pick(
                    &world
                        .callables
                        .iter()
                        .map(|c| c.popularity)
                        .collect::<Vec<_>>(),
                ),
                dice.pick(&world.app_traffic),
                node,
            )
        })
        .collect();
    calls.sort_unstable();
    let bar = progress(calls.len() as u64, "recording calls");
    let mut per_asset: BTreeMap<&str, (u64, Amount)> = BTreeMap::new();
    for chunk in calls.chunks(2_000) {
        let at_ms = chunk.last().expect("chunks are non-empty").0;
        let batch = chunk
            .iter()
            .map(|(_, target, app, node)| {
                let callable = &world.callables[*target];
                let entry = per_asset.entry(callable.name).or_default();
                entry.0 += 1;
                entry.1 += callable.price;
                Event::UsageRecorded(Usage {
                    asset: callable.id,
                    payer: world.apps[*app],
                    token: world.usdc.address,
                    amount: callable.price,
                    calls: 1,
                    node: world.nodes[*node],
                })
            })
            .collect();
        let (submitted, ticket) = journal.submit_pipelined(batch, at_ms);
        journal.settle(ticket).map_err(|e| e.to_string())?;
        refuse_nothing(submitted)?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(per_asset)
}

fn refuse_nothing(submitted: caravan_store::Submitted) -> Result<(), String> {
    match submitted.refused.first() {
        Some((index, why)) => Err(format!("demo event {index} was refused: {why}")),
        None => Ok(()),
    }
}

//! (a) Usage ingest: events validated, applied, hash-chained and durable, per second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use caravan_core::*;
use caravan_store::{Journal, Location, SharedJournal};

use super::pipeline::store_events;
use super::workload::bench_dataset;
use crate::present::progress;

/// A journal set up for ingest: 100 datasets, 16 payers with ample balances, 4 nodes; and the
/// `n`-th usage event over them.
fn ingest_journal(
    location: &Location,
    token: &Token,
) -> Result<(Journal, impl Fn(usize) -> Event + Sync), String> {
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
    let token = token.address;
    let usage = move |n: usize| {
        Event::UsageRecorded(Usage {
            asset: ids[n % ids.len()],
            payer: payers[n % payers.len()],
            token,
            amount: 1_000 + (n % 97) as u128,
            calls: 1,
            node: nodes[n % nodes.len()],
        })
    };
    Ok((journal, usage))
}

/// Usage events per second into the store at `location`, submitted from one thread in
/// pipelined batches.
pub fn measure_ingest(
    location: &Location,
    token: &Token,
    events: u64,
    label: &str,
) -> Result<f64, String> {
    let (mut journal, usage) = ingest_journal(location, token)?;
    let started = Instant::now();
    store_events(&mut journal, events, usage, label)?;
    Ok(events as f64 / started.elapsed().as_secs_f64())
}

/// Usage events per second when `clients` threads each submit one event at a time and wait for
/// it to be durable — the way a server's requests arrive; returns the rate and the mean number of
/// events per group commit.
pub fn measure_concurrent_ingest(
    location: &Location,
    token: &Token,
    events: u64,
    clients: usize,
) -> Result<(f64, f64), String> {
    let (journal, usage) = ingest_journal(location, token)?;
    let before = journal.commit_stats();
    let shared = SharedJournal::new(journal);
    let next = AtomicU64::new(0);
    let bar = progress(events, &format!("{clients} clients"));
    let started = Instant::now();
    let failure: Option<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| {
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= events {
                            return None;
                        }
                        match shared.submit(vec![usage(n as usize)]) {
                            Ok(submitted) if submitted.refused.is_empty() => bar.inc(1),
                            Ok(submitted) => {
                                return Some(format!(
                                    "benchmark event {n} was refused: {}",
                                    submitted.refused[0].1
                                ));
                            }
                            Err(error) => return Some(error.to_string()),
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .find_map(|w| w.join().expect("a benchmark client panicked"))
    });
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    if let Some(why) = failure {
        return Err(why);
    }
    let after = shared.read(|j| j.commit_stats());
    let transactions = (after.transactions - before.transactions).max(1);
    Ok((
        events as f64 / seconds,
        (after.events - before.events) as f64 / transactions as f64,
    ))
}

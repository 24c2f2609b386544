//! (a) Usage ingest: events validated, applied, hash-chained and durable, per second.

use std::collections::VecDeque;
use std::time::Instant;

use caravan_core::*;
use caravan_store::{Journal, Location};

use super::close::bench_dataset;
use crate::present::progress;

/// Events per submission in the ingest benchmark, and submissions kept in flight.
pub const BATCH: usize = 4_096;
pub const IN_FLIGHT: usize = 8;

pub fn measure_ingest(
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

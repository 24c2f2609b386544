//! (a) Usage ingest: events validated, applied, hash-chained and durable, per second.

use std::time::Instant;

use caravan_core::*;
use caravan_store::{Journal, Location};

use super::pipeline::store_events;
use super::workload::bench_dataset;

/// Usage events per second into the store at `location`, over 100 datasets, 16 payers, 4 nodes.
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
    let usage = |n: usize| {
        Event::UsageRecorded(Usage {
            asset: ids[n % ids.len()],
            payer: payers[n % payers.len()],
            token: token.address,
            amount: 1_000 + (n % 97) as u128,
            calls: 1,
            node: nodes[n % nodes.len()],
        })
    };
    let started = Instant::now();
    store_events(&mut journal, events, usage, label)?;
    Ok(events as f64 / started.elapsed().as_secs_f64())
}

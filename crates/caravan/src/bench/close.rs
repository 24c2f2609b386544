//! (b) Epoch close at scale: 10,000 assets, 200,000 contributors, millions of calls — in memory,
//! and durably through the store with the bundle written.

use std::time::Instant;

use caravan_core::*;
use caravan_store::{Journal, Location};

use super::pipeline::store_events;
use super::workload::CloseWorkload;
use crate::present::progress;

/// What a close produced and how long it took.
pub struct CloseFigures {
    pub seconds: f64,
    pub payouts: usize,
    pub leaves: usize,
}

/// Records `calls` usage events in memory and times the close after a tenth of them and after
/// all of them: (after a tenth, after all).
pub fn measure_close(workload: &CloseWorkload, calls: u64) -> (f64, CloseFigures) {
    let mut economy = Economy::default();
    for event in &workload.setup {
        economy
            .append(event.clone(), 0)
            .expect("bench events are valid");
    }
    let bar = progress(calls, "recording usage");
    let mut close_tenth = 0.0;
    for n in 0..calls as usize {
        economy
            .append(workload.usage(n), 0)
            .expect("bench usage is valid");
        if n + 1 == calls as usize / 10 {
            let mut early = economy.clone();
            let started = Instant::now();
            early.close_epoch(1).expect("genesis exists");
            close_tenth = started.elapsed().as_secs_f64();
        }
        if n % 65_536 == 0 {
            bar.set_position(n as u64);
        }
    }
    bar.finish_and_clear();
    let started = Instant::now();
    let (outcome, _, _) = economy.close_epoch(1).expect("genesis exists");
    let seconds = started.elapsed().as_secs_f64();
    (
        close_tenth,
        CloseFigures {
            seconds,
            payouts: outcome.payouts.len(),
            leaves: outcome.leaves.len(),
        },
    )
}

/// Writes the workload and `calls` usage events into the store at `location`, then times a
/// durable close: propagation, the Merkle tree, the bundle serialised and committed with the
/// `EpochClosed` event. Returns the figures and the bundle's size in bytes.
pub fn measure_durable_close(
    location: &Location,
    workload: &CloseWorkload,
    calls: u64,
) -> Result<(CloseFigures, usize), String> {
    let mut journal = Journal::open(location.clone(), &mut |_, _| {}).map_err(|e| e.to_string())?;
    journal
        .submit(workload.setup.clone())
        .map_err(|e| e.to_string())?;
    store_events(&mut journal, calls, |n| workload.usage(n), "storing usage")?;
    let started = Instant::now();
    let (outcome, bundle) = journal.close_epoch().map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    let bundle_bytes = serde_json::to_vec(&bundle).map(|b| b.len()).unwrap_or(0);
    Ok((
        CloseFigures {
            seconds,
            payouts: outcome.payouts.len(),
            leaves: outcome.leaves.len(),
        },
        bundle_bytes,
    ))
}

//! (b) Epoch close at scale: 10,000 assets, 200,000 contributors, millions of calls — in memory,
//! and durably through the store with the bundle written.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use caravan_core::*;
use caravan_store::{Journal, Location, SharedJournal};

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

/// What a paid call saw while an epoch closed.
pub struct ClosePause {
    /// The longest a call waited for its charge to be durable while the close ran.
    pub longest_ms: f64,
    /// The median wait of the calls outside the close.
    pub usual_ms: f64,
    /// How long the close took.
    pub close_seconds: f64,
    /// Calls answered while the close ran.
    pub answered_during: usize,
}

/// Reopens the store `measure_durable_close` left, keeps one caller charging usage (each
/// charge durable before the next, as `committed` paid calls are) and closes the next epoch
/// meanwhile: the longest wait a call saw overlapping the close is the pause.
pub fn measure_close_pause(
    location: &Location,
    workload: &CloseWorkload,
    calls: u64,
) -> Result<ClosePause, String> {
    let journal = Journal::open(location.clone(), &mut |_, _| {}).map_err(|e| e.to_string())?;
    let shared = Arc::new(SharedJournal::new(journal));
    let stop = Arc::new(AtomicBool::new(false));
    let origin = Instant::now();
    let caller = {
        let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
        let usage: Vec<Event> = (0..4_096)
            .map(|n| workload.usage(calls as usize + n))
            .collect();
        std::thread::spawn(move || {
            let mut waits = Vec::new();
            for event in usage.iter().cycle() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let started = origin.elapsed();
                shared
                    .submit(vec![event.clone()])
                    .expect("bench usage is valid");
                waits.push((started, origin.elapsed()));
            }
            waits
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let close_from = origin.elapsed();
    shared.close_epoch().map_err(|e| e.to_string())?;
    let close_to = origin.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let waits = caller.join().map_err(|_| "the caller thread panicked")?;
    let (during, outside): (Vec<_>, Vec<_>) = waits
        .iter()
        .partition(|(from, to)| *from < close_to && *to > close_from);
    let millis = |(from, to): &(Duration, Duration)| (*to - *from).as_secs_f64() * 1e3;
    Ok(ClosePause {
        longest_ms: during.iter().copied().map(millis).fold(0.0, f64::max),
        usual_ms: super::median(outside.iter().copied().map(millis).collect()),
        close_seconds: (close_to - close_from).as_secs_f64(),
        answered_during: during.len(),
    })
}

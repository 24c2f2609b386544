//! (e) The earnings page's statement for one contributor of a large epoch: the first view reads
//! and indexes the epoch's bundle (every beneficiary's payouts and leaves), later views use the
//! index. This is what a contributor waits for when opening the page.

use std::sync::Arc;
use std::time::Instant;

use caravan_core::Address;
use caravan_node::desk::Desk;
use caravan_node::earnings::Earnings;
use caravan_node::meter::Meter;
use caravan_store::{Journal, Location, SharedJournal, now_ms};

use super::median;

/// How long one contributor's statement took.
pub struct EarningsFigures {
    /// The first statement after the node opened: reads and indexes the bundle.
    pub first_s: f64,
    /// The median of the statements after it.
    pub warm_ms: f64,
    /// Royalties the statement traced.
    pub royalties: usize,
}

/// Opens the store at `location` (with a closed epoch) as a node does and times the statement
/// of `contributor`, once cold and `runs` times warm.
pub fn measure_earnings(
    location: &Location,
    contributor: Address,
    runs: usize,
) -> Result<EarningsFigures, String> {
    let journal = Journal::open(location.clone(), &mut |_, _| {}).map_err(|e| e.to_string())?;
    let journal = Arc::new(SharedJournal::new(journal));
    let desk = Desk::over(
        Arc::clone(&journal),
        Arc::new(Meter::default()),
        Arc::new(now_ms),
    )
    .map_err(|e| e.to_string())?;
    let earnings = Earnings::new(journal, Arc::new(desk), None);
    let started = Instant::now();
    let statement = earnings
        .statement(contributor, None)
        .map_err(|e| e.to_string())?;
    let first_s = started.elapsed().as_secs_f64();
    let mut warm = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        earnings
            .statement(contributor, None)
            .map_err(|e| e.to_string())?;
        warm.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(EarningsFigures {
        first_s,
        warm_ms: median(warm),
        royalties: statement.royalties.len(),
    })
}

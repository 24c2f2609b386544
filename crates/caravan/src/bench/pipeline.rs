//! Feeding many events into a journal the fast way: batches queued several at a time, so
//! consecutive batches share group commits, each settled before the count moves on.

use std::collections::VecDeque;

use caravan_core::Event;
use caravan_store::{Journal, now_ms};

use crate::present::progress;

/// Events per submission, and submissions queued before the oldest is settled.
pub const BATCH: usize = 4_096;
pub const IN_FLIGHT: usize = 8;

/// Submits events `0..count` (made by `event_of`) and returns once all are durable; any refused
/// event is an error, since benchmark workloads are valid by construction.
pub fn store_events(
    journal: &mut Journal,
    count: u64,
    event_of: impl Fn(usize) -> Event,
    label: &str,
) -> Result<(), String> {
    let bar = progress(count, label);
    let mut pending = VecDeque::new();
    let mut sent = 0usize;
    while (sent as u64) < count {
        let size = BATCH.min(count as usize - sent);
        let (submitted, ticket) =
            journal.submit_pipelined((sent..sent + size).map(&event_of).collect(), now_ms());
        if let Some((index, why)) = submitted.refused.first() {
            return Err(format!(
                "benchmark event {} was refused: {why}",
                sent + index
            ));
        }
        pending.push_back(ticket);
        if pending.len() >= IN_FLIGHT {
            journal
                .settle(pending.pop_front().expect("non-empty"))
                .map_err(|e| e.to_string())?;
        }
        sent += size;
        bar.set_position(sent as u64);
    }
    while let Some(ticket) = pending.pop_front() {
        journal.settle(ticket).map_err(|e| e.to_string())?;
    }
    bar.finish_and_clear();
    Ok(())
}

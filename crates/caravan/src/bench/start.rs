//! (d) Node start: how long `caravan serve` takes to be ready on a store that already holds
//! many calls — the journal from its latest snapshot, the desk's project boards and the
//! gateway's keys and served models, each read from the log.

use std::sync::Arc;
use std::time::Instant;

use caravan_server::desk::Desk;
use caravan_server::gateway::Gateway;
use caravan_server::gateway::receipt::NodeSigner;
use caravan_store::{Journal, Location};

/// The seconds each part of a node's start took on the store at `location`: (journal, desk,
/// gateway).
pub fn measure_node_start(
    location: &Location,
    scratch: &std::path::Path,
) -> Result<(f64, f64, f64), String> {
    let started = Instant::now();
    let journal = Journal::open(location.clone(), &mut |_, _| {}).map_err(|e| e.to_string())?;
    let journal_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let desk = Arc::new(Desk::open(journal).map_err(|e| e.to_string())?);
    let desk_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let artifacts = caravan_models::ArtifactStore::new(scratch.join("models"));
    Gateway::open(desk, artifacts, NodeSigner::generate()).map_err(|e| e.to_string())?;
    let gateway_s = started.elapsed().as_secs_f64();
    Ok((journal_s, desk_s, gateway_s))
}

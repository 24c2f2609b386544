//! (d) Node start: how long `caravan serve` takes to be ready on a store that already holds
//! many calls — the journal from its latest snapshot, the desk's project boards and the
//! gateway's keys and served models, each read from the log.

use std::sync::Arc;
use std::time::Instant;

use caravan_node::desk::Desk;
use caravan_node::gateway::Gateway;
use caravan_node::gateway::receipt::NodeSigner;
use caravan_node::keys::Keys;
use caravan_node::meter::Meter;
use caravan_store::{Journal, Location, SharedJournal, now_ms};

/// The seconds each part of a node's start took on the store at `location`: (journal, desk,
/// gateway with its keys).
pub fn measure_node_start(
    location: &Location,
    scratch: &std::path::Path,
) -> Result<(f64, f64, f64), String> {
    let started = Instant::now();
    let journal = Journal::open(location.clone(), &mut |_, _| {}).map_err(|e| e.to_string())?;
    let journal_s = started.elapsed().as_secs_f64();
    let journal = Arc::new(SharedJournal::new(journal));
    let meter = Arc::new(Meter::default());
    let started = Instant::now();
    Desk::over(Arc::clone(&journal), Arc::clone(&meter), Arc::new(now_ms))
        .map_err(|e| e.to_string())?;
    let desk_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let signer = NodeSigner::generate();
    let keys = Keys::open(Arc::clone(&journal), signer.address()).map_err(|e| e.to_string())?;
    let artifacts = caravan_models::ArtifactStore::new(scratch.join("models"));
    Gateway::open(journal, meter, Arc::new(keys), artifacts, signer).map_err(|e| e.to_string())?;
    let gateway_s = started.elapsed().as_secs_f64();
    Ok((journal_s, desk_s, gateway_s))
}

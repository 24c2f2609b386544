//! The store-backed commands: each opens the store, replays it, and writes through the core's rules.

mod assets;
mod chains;
mod epochs;
mod inspect;
mod keys;
mod models;
mod settle;
mod setup;
mod tasks;

pub use assets::{AssetCommand, UsageCommand, asset, usage};
pub use chains::{ChainCommand, PayoutChainArgs, chain, chains, payout_chain};
pub use epochs::{EpochCommand, epoch, print_close_summary};
pub use inspect::{BalancesArgs, LogCommand, balances, log, verify_replayed};
pub use keys::{KeyCommand, LoginArgs, key, login};
pub use models::{ModelCommand, artifact_store, model, training_examples};
pub use settle::{ChainArg, ClaimArgs, PostArgs, VerifyArgs, activate, claim, post, verify};
pub use setup::{
    DepositArgs, InitArgs, TokenCommand, deposit, deposit_for_development, init, token,
};
pub use tasks::{TaskCommand, project_id, task};

use std::path::Path;

use caravan_core::attestation::parse_secret_key;
use caravan_core::{Address, Envelope, Event, Genesis, Ppm};
use caravan_store::Journal;

/// Submits one event (setting up the economy first if it is not a genesis and none exists) and
/// returns its envelope, or the reason it was refused.
pub fn submit_one(journal: &mut Journal, event: Event) -> Result<Envelope, String> {
    if !matches!(event, Event::Genesis(_)) {
        ensure_genesis(journal)?;
    }
    Ok(submit_all(journal, vec![event])?.remove(0))
}

/// Submits `events` in one durable write and returns their envelopes, or why one was refused
/// (each event is checked on its own: the ones accepted stay recorded).
pub fn submit_all(journal: &mut Journal, events: Vec<Event>) -> Result<Vec<Envelope>, String> {
    let mut submitted = journal.submit(events).map_err(|e| e.to_string())?;
    if let Some((_, why)) = submitted.refused.pop() {
        return Err(why.to_string());
    }
    Ok(submitted.accepted)
}

/// Sets up an economy with no protocol fee if nobody ran `caravan init`.
pub fn ensure_genesis(journal: &mut Journal) -> Result<(), String> {
    if journal.economy().genesis().is_some() {
        return Ok(());
    }
    let genesis = Event::Genesis(Genesis {
        treasury: Address::ZERO,
        protocol_fee: Ppm::ZERO,
    });
    journal.submit(vec![genesis]).map_err(|e| e.to_string())?;
    eprintln!(
        "note: set up this store with a 0% protocol fee (run `caravan init` first to choose a treasury and fee)"
    );
    Ok(())
}

/// The secp256k1 secret key in a key file (64 hex digits, `0x` optional).
pub(crate) fn read_secret(path: &Path) -> Result<[u8; 32], String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the key file {}: {e}", path.display()))?;
    parse_secret_key(&text).map_err(|why| {
        format!(
            "the key file {} must hold a secret key as 64 hex digits ({why})",
            path.display()
        )
    })
}

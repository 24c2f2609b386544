//! Closing epochs, showing them with proofs, and re-checking bundles.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use caravan_core::epoch::{EpochBundle, verify_bundle};
use caravan_core::*;
use clap::Subcommand;

use super::ensure_genesis;
use crate::StoreArgs;
use crate::present::{amount, open_journal, open_reader, proof_json, table};

#[derive(Subcommand)]
pub enum EpochCommand {
    /// Close the current epoch: propagate royalties and fix the cumulative Merkle root.
    Close,
    /// Show a closed epoch (the latest by default); with --account, that account's proof.
    Show {
        /// Epoch number, counting from 1; the latest closed epoch when left out.
        epoch: Option<u64>,
        /// Print the leaves and Merkle proofs of this account.
        #[arg(long)]
        account: Option<Address>,
        /// Write the epoch bundle (JSON) to this file for others to verify.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Post a closed epoch's root on a chain, where everyone can claim against it.
    ///
    /// Checks first that no one's cumulative amount goes down and that the distributor holds
    /// what the root promises (on the embedded development chain it funds the difference).
    Post(super::PostArgs),
    /// Activate the posted root once its delay is over, opening claims against it.
    Activate(super::ChainArg),
    /// Re-check an epoch bundle file from its contents alone (and against the previous epoch's bundle).
    VerifyBundle {
        /// The bundle file, as `caravan epoch show N --out FILE` writes it.
        bundle: PathBuf,
        /// The previous epoch's bundle, to check every leaf as its previous leaf plus this epoch's payouts.
        #[arg(long)]
        previous: Option<PathBuf>,
    },
}

pub fn epoch(store: &StoreArgs, command: EpochCommand) -> Result<(), String> {
    match command {
        EpochCommand::Post(args) => super::post(store, args),
        EpochCommand::Activate(chain) => super::activate(store, chain),
        EpochCommand::Close => {
            let mut journal = open_journal(store)?;
            ensure_genesis(&mut journal)?;
            let (outcome, bundle) = journal.close_epoch().map_err(|e| e.to_string())?;
            print_close_summary(journal.economy(), &bundle);
            println!(
                "epoch {} closed: root {} over {} leaves",
                outcome.epoch,
                outcome.root,
                outcome.leaves.len()
            );
            Ok(())
        }
        EpochCommand::Show {
            epoch,
            account,
            out,
        } => {
            let journal = open_reader(store)?;
            let latest = journal
                .economy()
                .epochs()
                .last()
                .map(|r| r.epoch)
                .ok_or("no epoch has been closed yet; run `caravan epoch close`")?;
            let number = epoch.unwrap_or(latest);
            let bundle = journal
                .bundle(number)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("epoch {number} is not closed; the latest is {latest}"))?;
            println!(
                "epoch {}  root {}  (previous {})",
                bundle.epoch, bundle.root, bundle.previous_root
            );
            println!(
                "closed by event {} ({}), {} leaves, {} payouts",
                bundle.event_seq,
                bundle.event_hash.short(),
                bundle.leaves.len(),
                bundle.payouts.len()
            );
            print_close_summary(journal.economy(), &bundle);
            if !bundle.chains.is_empty() {
                let mut t = table(&["paid on", "root", "leaves"], &[2]);
                t.add_row(vec![
                    "home".to_string(),
                    bundle.chain_root(HOME_CHAIN).to_string(),
                    bundle.chain_leaves(HOME_CHAIN).len().to_string(),
                ]);
                for chain in &bundle.chains {
                    t.add_row(vec![
                        format!("chain id {}", chain.chain_id),
                        chain.root.to_string(),
                        chain.leaves.len().to_string(),
                    ]);
                }
                println!("{t}");
            }
            if let Some(account) = account {
                print_proofs(journal.economy(), &bundle, &account)?;
            }
            if let Some(path) = out {
                let json = serde_json::to_vec_pretty(&bundle).expect("bundles serialise");
                fs::write(&path, json)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                println!("bundle written to {}", path.display());
            }
            Ok(())
        }
        EpochCommand::VerifyBundle { bundle, previous } => {
            let read = |path: &PathBuf| -> Result<EpochBundle, String> {
                let bytes =
                    fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                serde_json::from_slice(&bytes)
                    .map_err(|e| format!("{} is not an epoch bundle: {e}", path.display()))
            };
            let current = read(&bundle)?;
            let previous = previous.as_ref().map(read).transpose()?;
            let report = verify_bundle(&current, previous.as_ref())
                .map_err(|e| format!("bundle does NOT verify: {e}"))?;
            println!(
                "epoch {} verifies: root {} rebuilt from {} leaves; {} payouts recomputed from the inputs",
                current.epoch, current.root, report.leaves, report.payouts
            );
            if report.checked_against_previous {
                println!("every leaf equals the previous epoch's leaf plus this epoch's payouts");
            } else {
                println!(
                    "leaves were not checked against the previous epoch (give --previous FILE to check them)"
                );
            }
            Ok(())
        }
    }
}

/// Who was paid what in an epoch, by role, and what was carried.
pub fn print_close_summary(economy: &Economy, bundle: &EpochBundle) {
    let mut by_role: BTreeMap<(String, Address), (Amount, usize)> = BTreeMap::new();
    for payout in &bundle.payouts {
        let label = match &payout.to {
            PayoutTo::Parent { .. } => continue,
            PayoutTo::Member { role, .. } => role.name().to_string(),
            PayoutTo::Owner {
                role: Some(role), ..
            } => format!("owner (no {} yet)", role.name()),
            PayoutTo::Owner { role: None, .. } => "owner".into(),
            PayoutTo::Carry => "carried to next epoch".into(),
        };
        let entry = by_role.entry((label, payout.token)).or_default();
        entry.0 += payout.amount;
        entry.1 += 1;
    }
    for fee in &bundle.treasury_fees {
        by_role.insert(
            ("treasury (protocol fee)".into(), fee.token),
            (fee.amount, 1),
        );
    }
    if by_role.is_empty() {
        println!("nothing accrued in epoch {}", bundle.epoch);
        return;
    }
    let mut t = table(&["paid to", "payouts", "amount"], &[1, 2]);
    for ((label, token), (total, count)) in by_role {
        t.add_row(vec![
            label,
            count.to_string(),
            amount(economy, &token, total),
        ]);
    }
    println!("{t}");
}

/// The account's leaves and proofs in each chain's tree (home first, then the chains accounts
/// chose), each against that chain's root.
fn print_proofs(economy: &Economy, bundle: &EpochBundle, account: &Address) -> Result<(), String> {
    let chains = bundle.proofs_for(account);
    if chains.is_empty() {
        return Err(format!(
            "{account} has no entitlement in epoch {}",
            bundle.epoch
        ));
    }
    for chain in chains {
        let on = match chain.chain {
            HOME_CHAIN => "on the home chain".to_string(),
            chain_id => format!("on chain id {chain_id}"),
        };
        for proven in &chain.leaves {
            let verified = verify_proof(&chain.root, &proven.leaf, &proven.proof);
            println!(
                "\n{} may claim up to {} {on} in total (cumulative through epoch {})",
                account,
                amount(economy, &proven.leaf.token, proven.leaf.cumulative),
                bundle.epoch
            );
            println!("{}", proof_json(&proven.leaf, &chain.root, &proven.proof));
            println!("proof verifies against the root: {verified}");
        }
    }
    Ok(())
}

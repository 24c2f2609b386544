//! Looking at a store: balances and a full verification of the log.

use caravan_core::epoch::{EpochBundle, verify_bundle};
use caravan_core::*;
use clap::{Args, Subcommand};

use crate::StoreArgs;
use crate::present::{amount, open_journal_verifying, open_reader, table};

#[derive(Args)]
pub struct BalancesArgs {
    /// Show only this address (as payer, beneficiary and depositor).
    #[arg(long)]
    account: Option<Address>,
    /// Show at most this many rows, largest first.
    #[arg(long, default_value_t = 40)]
    limit: usize,
    /// Also show the bookkeeping accounts: depositors' external accounts and emptied asset
    /// revenue, carry and treasury accounts.
    #[arg(long)]
    all: bool,
}

pub fn balances(store: &StoreArgs, args: BalancesArgs) -> Result<(), String> {
    let journal = open_reader(store)?;
    let economy = journal.economy();
    let mut rows: Vec<(AccountRef, Address, Balance)> = economy
        .ledger()
        .sorted_entries()
        .into_iter()
        .filter(|(account, _, balance)| {
            let mine = match (account, &args.account) {
                (_, None) => true,
                (
                    AccountRef::External(a) | AccountRef::Payer(a) | AccountRef::Beneficiary(a),
                    Some(wanted),
                ) => a == wanted,
                _ => false,
            };
            let bookkeeping = match account {
                AccountRef::External(_) => true,
                AccountRef::AssetRevenue(_)
                | AccountRef::CarryForward(_)
                | AccountRef::Treasury
                | AccountRef::Escrow(_) => balance.available() == 0,
                AccountRef::Payer(_) | AccountRef::Beneficiary(_) => false,
            };
            mine && (balance.credits > 0 || balance.debits > 0)
                && (args.all || args.account.is_some() || !bookkeeping)
        })
        .collect();
    rows.sort_by_key(|(_, _, b)| std::cmp::Reverse(b.credits));
    let shown = rows.len().min(args.limit);
    let mut t = table(
        &["account", "token", "balance", "credited in total"],
        &[2, 3],
    );
    for (account, token, balance) in &rows[..shown] {
        let signed = balance.signed();
        let balance_text = if signed < 0 {
            format!("−{}", amount(economy, token, signed.unsigned_abs()))
        } else {
            amount(economy, token, signed as u128)
        };
        t.add_row(vec![
            account.to_string(),
            economy
                .tokens()
                .get(token)
                .map(|t| t.symbol.clone())
                .unwrap_or_default(),
            balance_text,
            amount(economy, token, balance.credits),
        ]);
    }
    println!("{t}");
    if rows.len() > shown {
        println!(
            "… and {} more accounts (raise --limit to see them)",
            rows.len() - shown
        );
    }
    println!(
        "a beneficiary's credits are their cumulative entitlement; add --all for the bookkeeping accounts"
    );
    if let Some(account) = &args.account {
        let deposits: Vec<_> = economy
            .chain_deposits()
            .filter(|deposit| deposit.account == *account)
            .collect();
        if !deposits.is_empty() {
            let mut t = table(
                &["deposited", "chain id", "block", "transaction"],
                &[0, 1, 2],
            );
            for deposit in deposits {
                t.add_row(vec![
                    amount(economy, &deposit.token, deposit.amount),
                    deposit.chain_id.to_string(),
                    deposit.block.to_string(),
                    format!("{} (log {})", deposit.tx, deposit.log_index),
                ]);
            }
            println!("deposits on chain that filled {account}'s prepaid balance:\n{t}");
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum LogCommand {
    /// Replay the whole log from the first event: check every hash link, every rule, every epoch
    /// root, every stored bundle and every kept snapshot.
    ///
    /// Other commands start from the latest snapshot and trust the history behind it; this one
    /// trusts nothing but the rules.
    Verify,
}

pub fn log(store: &StoreArgs, command: LogCommand) -> Result<(), String> {
    let LogCommand::Verify = command;
    let journal = open_journal_verifying(store)?;
    verify_replayed(&journal)?;
    let economy = journal.economy();
    let head = economy.head();
    println!(
        "log verified: {} events, hash chain intact, every event valid under the rules",
        head.next_seq
    );
    println!("head hash   {}", head.hash);
    println!("state hash  {}", economy.state_hash());
    println!(
        "ledger balances to zero in every token; {} epoch(s) re-derived with matching roots and bundles",
        economy.epochs().len()
    );
    println!(
        "{} kept snapshot(s) equal the replayed state at their point",
        journal.open_report().snapshots_verified
    );
    Ok(())
}

/// What `caravan log verify` checks of a journal opened by a full replay
/// ([`caravan_store::Journal::open_verifying`], which already checked every hash link, every
/// rule and every kept snapshot): the ledger balances to zero in every token, and every
/// epoch's stored bundle has the log's root and re-derives.
pub fn verify_replayed(journal: &caravan_store::Journal) -> Result<(), String> {
    let economy = journal.economy();
    economy
        .ledger()
        .check_balanced()
        .map_err(|why| format!("ledger does not balance: {why}"))?;
    let mut previous: Option<EpochBundle> = None;
    for record in economy.epochs() {
        let bundle = journal
            .bundle(record.epoch)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("epoch {} has no stored bundle", record.epoch))?;
        if bundle.root != record.root {
            return Err(format!(
                "epoch {}: stored bundle root {} differs from the log's {}",
                record.epoch, bundle.root, record.root
            ));
        }
        verify_bundle(&bundle, previous.as_ref())
            .map_err(|e| format!("epoch {} bundle: {e}", record.epoch))?;
        previous = Some(bundle);
    }
    Ok(())
}

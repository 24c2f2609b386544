//! Setting up an economy: genesis, tokens and deposits.

use std::sync::Arc;

use caravan_chain::settlement::DEV_TOKEN;
use caravan_core::*;
use caravan_node::deposits::{Credited, DepositFollower};
use caravan_node::settlement::{Chains, EMBEDDED};
use caravan_store::{SharedJournal, now_ms};
use clap::{Args, Subcommand};

use super::submit_one;
use crate::StoreArgs;
use crate::present::{
    amount, open_journal, open_journal_unless_served, open_reader, parse_amount, table,
};

#[derive(Args)]
pub struct InitArgs {
    /// Address that receives protocol fees.
    #[arg(long)]
    treasury: Address,
    /// Fee taken from every paid call, in percent (e.g. 2 or 0.5).
    #[arg(long, default_value = "0", value_parser = Ppm::from_percent_text)]
    protocol_fee: Ppm,
}

pub fn init(store: &StoreArgs, args: InitArgs) -> Result<(), String> {
    let mut journal = open_journal(store)?;
    if journal.economy().genesis().is_some() {
        return Err(format!(
            "{} is already set up; the treasury and fee are fixed when a store is created",
            journal.location()
        ));
    }
    submit_one(
        &mut journal,
        Event::Genesis(Genesis {
            treasury: args.treasury,
            protocol_fee: args.protocol_fee,
        }),
    )?;
    println!(
        "set up {} with treasury {} and a {} protocol fee",
        journal.location(),
        args.treasury,
        args.protocol_fee
    );
    Ok(())
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Register an ERC-20 token: its address, symbol and decimals.
    Register {
        /// The token contract's address.
        #[arg(long)]
        address: Address,
        /// Its symbol, 1 to 16 letters or digits (USDC).
        #[arg(long)]
        symbol: String,
        /// Decimals of one whole token (6 for USDC, 18 for most tokens).
        #[arg(long)]
        decimals: u8,
    },
    /// List registered tokens.
    List,
}

pub fn token(store: &StoreArgs, command: TokenCommand) -> Result<(), String> {
    let mut journal = open_journal(store)?;
    match command {
        TokenCommand::Register {
            address,
            symbol,
            decimals,
        } => {
            submit_one(
                &mut journal,
                Event::TokenRegistered(Token {
                    address,
                    symbol: symbol.clone(),
                    decimals,
                }),
            )?;
            println!("registered {symbol} at {address} with {decimals} decimals");
        }
        TokenCommand::List => {
            let mut t = table(&["symbol", "address", "decimals"], &[2]);
            for token in journal.economy().tokens().values() {
                t.add_row(vec![
                    token.symbol.clone(),
                    token.address.to_string(),
                    token.decimals.to_string(),
                ]);
            }
            println!("{t}");
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct DepositArgs {
    /// Address whose prepaid balance receives the money.
    #[arg(long)]
    payer: Address,
    /// Token address: the embedded chain's development token (0x5FbDB2315678afecb367f032d93F642f64180aa3).
    #[arg(long)]
    token: Address,
    /// Amount in whole tokens, e.g. 250 or 12.5.
    #[arg(long)]
    amount: String,
}

/// Deposits `amount` of the development token for each `(account, amount)` on the embedded
/// chain of `chains`, from the development account that holds its supply, then credits them the
/// way a serving node does: by following the vault's logs into `journal`. Real deposits, for
/// development and the demo; what a serving node does with any wallet's.
pub fn deposit_for_development(
    chains: Arc<Chains>,
    journal: &Arc<SharedJournal>,
    deposits: &[(Address, Amount)],
) -> Result<Vec<Credited>, String> {
    deposit_on_embedded(&chains, deposits)?;
    let followed = DepositFollower::new(chains, Arc::clone(journal)).follow_once();
    if let Some((chain, why)) = followed.failures.first() {
        return Err(format!(
            "the deposit is on {chain} but could not be credited: {why}"
        ));
    }
    if let Some(waiting) = followed.waiting.first() {
        return Err(waiting.clone());
    }
    Ok(followed.credited)
}

/// The deposits of [`deposit_for_development`] on the embedded chain, not yet credited.
fn deposit_on_embedded(chains: &Chains, deposits: &[(Address, Amount)]) -> Result<(), String> {
    let development = Address(DEV_TOKEN.into_array());
    let mut chain = chains.open(EMBEDDED, 0).map_err(|e| e.to_string())?;
    for (account, amount) in deposits {
        chain
            .deposit(development, *amount, *account, now_ms() / 1000)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Deposits the development token on the embedded chain from the development account that holds
/// its supply, then credits it the way a serving node does: through the deposit's log. While a
/// node serves from the data directory, the node credits it.
pub fn deposit(store: &StoreArgs, args: DepositArgs) -> Result<(), String> {
    let on_chain = "payers and requesters deposit on chain: approve caravan's deposit vault (`caravan chain list` names it) and call its deposit(token, amount, account)";
    let chains = super::chains(store)?;
    let development = Address(DEV_TOKEN.into_array());
    if args.token != development {
        return Err(format!(
            "`caravan deposit` only moves the embedded chain's development token {development}; for token {}, {on_chain}",
            args.token
        ));
    }
    let Some(journal) = open_journal_unless_served(store)? else {
        let reader = open_reader(store)?;
        let value = parse_amount(reader.economy(), &args.token, &args.amount)?;
        deposit_on_embedded(&chains, &[(args.payer, value)])?;
        let shown = amount(reader.economy(), &args.token, value);
        println!(
            "deposited {shown} for {} on the embedded chain; the node serving {} credits it from the vault's log within its --follow-every (`caravan balances --account {}` shows it then; a development shortcut; {on_chain})",
            args.payer,
            store.data_dir.display(),
            args.payer
        );
        return Ok(());
    };
    let value = parse_amount(journal.economy(), &args.token, &args.amount)?;
    let journal = Arc::new(SharedJournal::new(journal));
    let credited = deposit_for_development(Arc::new(chains), &journal, &[(args.payer, value)])?;
    journal.read(|j| {
        let economy = j.economy();
        for credited in &credited {
            println!(
                "deposited {} for {} on the embedded chain (transaction {})",
                amount(economy, &credited.deposit.token, credited.deposit.amount),
                credited.deposit.account,
                credited.deposit.tx
            );
        }
        let balance = economy
            .ledger()
            .balance(&AccountRef::Payer(args.payer), &args.token)
            .available();
        println!(
            "{} now holds {} (a development shortcut; {on_chain})",
            args.payer,
            amount(economy, &args.token, balance)
        );
    });
    Ok(())
}

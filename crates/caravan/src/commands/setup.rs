//! Setting up an economy: genesis, tokens and deposits.

use caravan_core::*;
use clap::{Args, Subcommand};

use super::submit_one;
use crate::StoreArgs;
use crate::present::{amount, open_journal, parse_amount, table};

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
    /// Token address.
    #[arg(long)]
    token: Address,
    /// Amount in whole tokens, e.g. 250 or 12.5.
    #[arg(long)]
    amount: String,
}

pub fn deposit(store: &StoreArgs, args: DepositArgs) -> Result<(), String> {
    let mut journal = open_journal(store)?;
    let value = parse_amount(journal.economy(), &args.token, &args.amount)?;
    submit_one(
        &mut journal,
        Event::Deposited {
            payer: args.payer,
            token: args.token,
            amount: value,
        },
    )?;
    let balance = journal
        .economy()
        .ledger()
        .balance(&AccountRef::Payer(args.payer), &args.token)
        .available();
    println!(
        "{} now holds {}",
        args.payer,
        amount(journal.economy(), &args.token, balance)
    );
    Ok(())
}

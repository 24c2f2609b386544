//! The store-backed commands: init, tokens, assets, deposits, usage, epochs, balances, log checks.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::PathBuf;

use caravan_core::epoch::{EpochBundle, verify_bundle};
use caravan_core::*;
use caravan_store::Journal;
use clap::{Args, Subcommand};

use crate::StoreArgs;
use crate::present::{amount, open_journal, parse_amount, table};

/// Submits one event (setting up the economy first if it is not a genesis and none exists) and
/// returns its envelope, or the reason it was refused.
pub fn submit_one(journal: &mut Journal, event: Event) -> Result<Envelope, String> {
    if !matches!(event, Event::Genesis(_)) {
        ensure_genesis(journal)?;
    }
    let mut submitted = journal.submit(vec![event]).map_err(|e| e.to_string())?;
    if let Some((_, why)) = submitted.refused.pop() {
        return Err(why.to_string());
    }
    Ok(submitted.accepted.remove(0))
}

/// Sets up an economy with no protocol fee if nobody ran `caravan init`.
fn ensure_genesis(journal: &mut Journal) -> Result<(), String> {
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
        #[arg(long)]
        address: Address,
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

#[derive(Subcommand)]
pub enum AssetCommand {
    /// Register a dataset, model or agent from a JSON manifest (`-` reads standard input).
    ///
    /// The manifest fields: kind (dataset|model|agent), name, owner, content (0x + 64 hex: hash
    /// of the asset's content), licence ({"type":"open_use"}, {"type":"non_commercial"} or
    /// {"type":"commercial","token":ADDR,"price_per_call":"BASE_UNITS","derivative_royalty":PPM}),
    /// parents ([{"parent":ID,"kind":"TRAINED_ON","share":PPM}]) and roles
    /// ([{"role":"data_contributor","share":PPM,"members":[{"account":ADDR,"weight":N}]}]).
    /// Shares are parts per million. Members are sorted into canonical order before hashing;
    /// the printed id is the keccak-256 of the canonical manifest.
    Register {
        /// Path to the manifest JSON, or `-`.
        #[arg(long)]
        manifest: PathBuf,
    },
    /// Show an asset: its licence, parents, children, roles and what it holds this epoch.
    Show { id: AssetId },
    /// List every registered asset in registration order.
    List,
}

pub fn asset(store: &StoreArgs, command: AssetCommand) -> Result<(), String> {
    let mut journal = open_journal(store)?;
    match command {
        AssetCommand::Register { manifest } => {
            let text = if manifest.as_os_str() == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|e| format!("cannot read standard input: {e}"))?;
                text
            } else {
                fs::read_to_string(&manifest)
                    .map_err(|e| format!("cannot read {}: {e}", manifest.display()))?
            };
            let mut parsed: Manifest = serde_json::from_str(&text)
                .map_err(|e| format!("manifest {} is not valid: {e}", manifest.display()))?;
            parsed.normalise();
            let id = parsed.id();
            submit_one(&mut journal, Event::AssetRegistered(parsed))?;
            println!("{id}");
        }
        AssetCommand::Show { id } => show_asset(&journal, &id)?,
        AssetCommand::List => {
            let economy = journal.economy();
            let mut t = table(&["#", "id", "kind", "name", "parents", "licence"], &[0, 4]);
            for (position, asset) in economy.lineage().iter().enumerate() {
                t.add_row(vec![
                    position.to_string(),
                    asset.id.to_string(),
                    asset.manifest.kind.name().into(),
                    asset.manifest.name.clone(),
                    asset.manifest.parents.len().to_string(),
                    licence_text(economy, &asset.manifest.licence),
                ]);
            }
            println!("{t}");
        }
    }
    Ok(())
}

pub fn licence_text(economy: &Economy, licence: &Licence) -> String {
    match licence {
        Licence::OpenUse => "open use".into(),
        Licence::NonCommercial => "non-commercial".into(),
        Licence::Commercial {
            token,
            price_per_call,
            derivative_royalty,
        } => {
            format!(
                "commercial, {} per call, derivatives owe ≥ {derivative_royalty}",
                amount(economy, token, *price_per_call)
            )
        }
    }
}

fn show_asset(journal: &Journal, id: &AssetId) -> Result<(), String> {
    let economy = journal.economy();
    let lineage = economy.lineage();
    let asset = lineage.get(id).ok_or_else(|| {
        format!("asset {id} is not registered; `caravan asset list` shows what is")
    })?;
    let manifest = &asset.manifest;
    println!("{} {}  ({})", manifest.kind.name(), manifest.name, asset.id);
    println!("owner    {}", manifest.owner);
    println!("content  {}", manifest.content);
    println!("licence  {}", licence_text(economy, &manifest.licence));
    let name_of = |id: &AssetId| {
        lineage
            .get(id)
            .map(|a| a.manifest.name.clone())
            .unwrap_or_default()
    };
    if !manifest.parents.is_empty() {
        let mut t = table(&["parent", "name", "edge", "royalty share"], &[3]);
        for edge in &manifest.parents {
            t.add_row(vec![
                edge.parent.0.short(),
                name_of(&edge.parent),
                edge.kind.name().into(),
                edge.share.to_string(),
            ]);
        }
        println!("\nparents\n{t}");
    }
    let children: Vec<_> = lineage
        .iter()
        .filter(|a| a.manifest.parents.iter().any(|e| e.parent == *id))
        .collect();
    if !children.is_empty() {
        let mut t = table(&["child", "name", "edge", "royalty share"], &[3]);
        for child in children {
            let edge = child
                .manifest
                .parents
                .iter()
                .find(|e| e.parent == *id)
                .expect("filtered on it");
            t.add_row(vec![
                child.id.0.short(),
                child.manifest.name.clone(),
                edge.kind.name().into(),
                edge.share.to_string(),
            ]);
        }
        println!("\nchildren\n{t}");
    }
    if manifest.roles.is_empty() {
        println!("\nroles: none — everything the asset keeps goes to its owner");
    } else {
        let mut t = table(&["role", "share of what it keeps", "members"], &[1, 2]);
        for role in &manifest.roles {
            let members = if role.role == Role::ComputeNode {
                "the nodes that serve it".to_string()
            } else {
                role.members.len().to_string()
            };
            t.add_row(vec![
                role.role.name().into(),
                role.share.to_string(),
                members,
            ]);
        }
        println!("\nroles\n{t}");
    }
    let mut held = Vec::new();
    for token in economy.tokens().keys() {
        let revenue = economy
            .ledger()
            .balance(&AccountRef::AssetRevenue(*id), token)
            .available();
        let carried = economy
            .ledger()
            .balance(&AccountRef::CarryForward(*id), token)
            .available();
        if revenue + carried > 0 {
            held.push(format!(
                "{} accrued this epoch, {} carried",
                amount(economy, token, revenue),
                amount(economy, token, carried)
            ));
        }
    }
    if !held.is_empty() {
        println!("\nholds {}", held.join("; "));
    }
    Ok(())
}

#[derive(Args)]
pub struct DepositArgs {
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

#[derive(Subcommand)]
pub enum UsageCommand {
    /// Record paid calls to an asset, charged to a payer's prepaid balance.
    Record {
        #[arg(long)]
        asset: AssetId,
        #[arg(long)]
        payer: Address,
        /// The node that served the calls (shares the compute-node role).
        #[arg(long)]
        node: Address,
        #[arg(long, default_value_t = 1)]
        calls: u32,
        /// Total charged in whole tokens; default: the licence's price per call × calls.
        #[arg(long)]
        amount: Option<String>,
        /// Token to pay in; default: the licence's token (required for open-use assets).
        #[arg(long)]
        token: Option<Address>,
    },
}

pub fn usage(store: &StoreArgs, command: UsageCommand) -> Result<(), String> {
    let UsageCommand::Record {
        asset,
        payer,
        node,
        calls,
        amount: given,
        token,
    } = command;
    let mut journal = open_journal(store)?;
    let economy = journal.economy();
    let registered = economy
        .lineage()
        .get(&asset)
        .ok_or_else(|| format!("asset {asset} is not registered"))?;
    let (token, value) = match (&registered.manifest.licence, token, given) {
        (Licence::Commercial { token, .. }, Some(other), _) if other != *token => {
            return Err(format!(
                "asset {asset} is priced in {token}; --token {other} does not match"
            ));
        }
        (_, Some(token), Some(text)) => (token, parse_amount(economy, &token, &text)?),
        (
            Licence::Commercial {
                token,
                price_per_call,
                ..
            },
            _,
            None,
        ) => (
            *token,
            price_per_call
                .checked_mul(calls as u128)
                .ok_or("price × calls overflows")?,
        ),
        (Licence::Commercial { token, .. }, None, Some(text)) => {
            (*token, parse_amount(economy, token, &text)?)
        }
        (_, _, _) => return Err("this asset has no price: give both --token and --amount".into()),
    };
    let envelope = submit_one(
        &mut journal,
        Event::UsageRecorded(Usage {
            asset,
            payer,
            token,
            amount: value,
            calls,
            node,
        }),
    )?;
    println!(
        "recorded {calls} call(s) for {} as event {}",
        amount(journal.economy(), &token, value),
        envelope.seq
    );
    Ok(())
}

#[derive(Subcommand)]
pub enum EpochCommand {
    /// Close the current epoch: propagate royalties and fix the cumulative Merkle root.
    Close,
    /// Show a closed epoch (the latest by default); with --account, that account's proof.
    Show {
        epoch: Option<u64>,
        /// Print the leaves and Merkle proofs of this account.
        #[arg(long)]
        account: Option<Address>,
        /// Write the epoch bundle (JSON) to this file for others to verify.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Re-check an epoch bundle file from its contents alone (and against the previous epoch's bundle).
    VerifyBundle {
        bundle: PathBuf,
        #[arg(long)]
        previous: Option<PathBuf>,
    },
}

pub fn epoch(store: &StoreArgs, command: EpochCommand) -> Result<(), String> {
    match command {
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
            let journal = open_journal(store)?;
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

fn print_proofs(economy: &Economy, bundle: &EpochBundle, account: &Address) -> Result<(), String> {
    let tree = MerkleTree::build(&bundle.leaves);
    let mut found = false;
    for (index, leaf) in bundle
        .leaves
        .iter()
        .enumerate()
        .filter(|(_, l)| l.account == *account)
    {
        found = true;
        let proof = tree.proof(index);
        let verified = verify_proof(&bundle.root, leaf, &proof);
        println!(
            "\n{} may claim up to {} in total (cumulative through epoch {})",
            account,
            amount(economy, &leaf.token, leaf.cumulative),
            bundle.epoch
        );
        let json = serde_json::json!({ "account": leaf.account, "token": leaf.token, "cumulative": leaf.cumulative.to_string(), "root": bundle.root, "proof": proof });
        println!("{}", serde_json::to_string_pretty(&json).expect("json"));
        println!("proof verifies against the root: {verified}");
    }
    if !found {
        return Err(format!(
            "{account} has no entitlement in epoch {}",
            bundle.epoch
        ));
    }
    Ok(())
}

#[derive(Args)]
pub struct BalancesArgs {
    /// Show only this address (as payer, beneficiary and depositor).
    #[arg(long)]
    account: Option<Address>,
    /// Show at most this many rows, largest first.
    #[arg(long, default_value_t = 40)]
    limit: usize,
}

pub fn balances(store: &StoreArgs, args: BalancesArgs) -> Result<(), String> {
    let journal = open_journal(store)?;
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
            mine && (balance.credits > 0 || balance.debits > 0)
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
        "a beneficiary's credits are their cumulative entitlement; external accounts are negative by what their owner deposited"
    );
    Ok(())
}

#[derive(Subcommand)]
pub enum LogCommand {
    /// Replay the whole log: check every hash link, every rule, every epoch root, every stored bundle.
    Verify,
}

pub fn log(store: &StoreArgs, command: LogCommand) -> Result<(), String> {
    let LogCommand::Verify = command;
    let journal = open_journal(store)?;
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
    Ok(())
}

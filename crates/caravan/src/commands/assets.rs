//! Assets and their usage: register, show, list, record paid calls.

use std::path::PathBuf;

use caravan_core::*;
use caravan_store::Journal;
use clap::Subcommand;

use super::submit_one;
use crate::StoreArgs;
use crate::present::{amount, open_journal, open_reader, parse_amount, read_input, table};

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
    Show {
        /// The asset id (0x and 64 hex digits).
        id: AssetId,
    },
    /// List every registered asset in registration order.
    List,
    /// Register every asset (parents first) in a chain's on-chain asset registry, skipping
    /// those already there: owner, parent ids and the keccak-256 of the licence's JSON.
    Anchor {
        /// A chain from `caravan chain list`; the home chain when left out.
        #[arg(long)]
        chain: Option<String>,
    },
}

pub fn asset(store: &StoreArgs, command: AssetCommand) -> Result<(), String> {
    match command {
        AssetCommand::Anchor { chain } => {
            let chain = super::chains::named_or_home(store, chain)?;
            anchor(store, &open_reader(store)?, &chain)?
        }
        AssetCommand::Register { manifest } => {
            let text = read_input(&manifest)?;
            let mut parsed: Manifest = serde_json::from_str(&text)
                .map_err(|e| format!("manifest {} is not valid: {e}", manifest.display()))?;
            parsed.normalise();
            let id = parsed.id();
            submit_one(&mut open_journal(store)?, Event::AssetRegistered(parsed))?;
            println!("{id}");
        }
        AssetCommand::Show { id } => show_asset(&open_reader(store)?, &id)?,
        AssetCommand::List => list_assets(open_reader(store)?.economy()),
    }
    Ok(())
}

/// Every registered asset, in the order registered.
fn list_assets(economy: &Economy) {
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
    println!(
        "registered {}",
        crate::present::utc_time(asset.registered_ms)
    );
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
    let attestations = economy.attestations(id);
    if !attestations.is_empty() {
        let mut t = table(
            &["validator", "metric", "value", "data", "signed at (ms)"],
            &[2],
        );
        for attestation in attestations {
            t.add_row(vec![
                attestation.validator.to_string(),
                attestation.metric.clone(),
                format!("{:.4}", attestation.value_micros as f64 / 1e6),
                attestation.dataset.short(),
                attestation.issued_at_ms.to_string(),
            ]);
        }
        println!("\nattested by validators (signatures checked)\n{t}");
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

#[derive(Subcommand)]
pub enum UsageCommand {
    /// Record paid calls to an asset, charged to a payer's prepaid balance.
    Record {
        /// Id of the asset called (0x and 64 hex digits, as `caravan asset list` shows).
        #[arg(long)]
        asset: AssetId,
        /// Address whose prepaid balance pays (see `caravan deposit`).
        #[arg(long)]
        payer: Address,
        /// The node that served the calls (shares the compute-node role).
        #[arg(long)]
        node: Address,
        /// How many calls this record covers.
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

/// Registers the lineage in the chain's registry, parents first (registration order is a
/// topological order).
fn anchor(
    store: &StoreArgs,
    journal: &caravan_store::Journal,
    chain_name: &str,
) -> Result<(), String> {
    let mut chain = super::chains::open_settlement(store, chain_name, 0)?;
    let (mut sent, mut present) = (0, 0);
    for asset in journal.economy().lineage().iter() {
        let licence = serde_json::to_vec(&asset.manifest.licence).expect("licences serialise");
        let parents: Vec<AssetId> = asset.manifest.parents.iter().map(|p| p.parent).collect();
        let registered = chain
            .anchor_asset(
                asset.id,
                asset.manifest.owner,
                &parents,
                caravan_core::keccak256(&licence),
                caravan_store::now_ms() / 1000,
            )
            .map_err(|e| e.to_string())?;
        if registered {
            sent += 1;
        } else {
            present += 1;
        }
    }
    println!(
        "anchored {sent} assets in the registry at {} on {chain_name} ({present} were there already)",
        chain.deployment().registry
    );
    Ok(())
}

//! `caravan chain`: the chains a node settles on. `embedded` always exists; JSON-RPC chains are
//! added by name with their URL, chain id and the environment variable that holds the signer
//! key (the key itself is never written to disk). One chain is home: it pays everyone who did
//! not choose another with `caravan payout-chain`.

use caravan_chain::settlement::Settlement;
use caravan_core::{Address, Event, HOME_CHAIN};
use caravan_node::chains::{ChainDirectory, PayoutChain};
use caravan_node::settlement::{Chains, RpcConfig, chains_dir};
use clap::{Args, Subcommand};

use crate::StoreArgs;
use crate::outgoing::http_client;
use crate::present::{open_journal, open_reader, table};

pub use caravan_node::settlement::EMBEDDED;

#[derive(Subcommand)]
pub enum ChainCommand {
    /// Add a JSON-RPC chain to settle on.
    ///
    /// Example: CARAVAN_KEY_BASE=0x… caravan chain add base --url https://… --chain-id 8453 --key-env CARAVAN_KEY_BASE
    Add {
        /// A short name to refer to the chain by (letters, digits, `-`).
        name: String,
        /// The JSON-RPC endpoint.
        #[arg(long)]
        url: String,
        /// The chain id the endpoint must serve (checked on every connection).
        #[arg(long)]
        chain_id: u64,
        /// The environment variable holding the node's signer key (hex); it is read when the
        /// chain is used, never stored.
        #[arg(long)]
        key_env: String,
        /// Blocks a transaction must be buried under before it counts as done (the block
        /// holding it is the first). Raise it on chains that reorganise.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
        confirmations: u64,
    },
    /// List the configured chains, with the home chain marked and caravan's contracts on each.
    List,
    /// Deploy caravan's contracts on NAME now (the token on a development chain, the asset
    /// registry, the royalty distributor and the deposit vault), fixing the distributor's delay.
    ///
    /// Otherwise they are deployed, with no delay, by the first post or deposit there. A chain
    /// whose contracts are deployed is left as it is.
    Deploy {
        /// A chain from `caravan chain list`.
        name: String,
        /// Seconds a posted root waits before it can be activated, during which the guardian
        /// may pause it.
        #[arg(long, default_value_t = 0)]
        delay: u64,
    },
    /// Fund NAME's royalty distributor with a registered token from the node's account there,
    /// which must hold it: what a root promises beyond what deposits and earlier funding put in
    /// must be funded before the root can be posted.
    ///
    /// Example: CARAVAN_KEY_BASE=0x… caravan chain fund base --token 0x… --amount 250
    Fund {
        /// A chain from `caravan chain list`.
        name: String,
        /// A token from `caravan token list`.
        #[arg(long)]
        token: Address,
        /// Amount in whole tokens, e.g. 250 or 12.5.
        #[arg(long)]
        amount: String,
    },
    /// Make NAME the home chain: the one that pays everyone who never chose another.
    ///
    /// Only before any root is posted on the current or the new home chain, and not to a chain
    /// accounts already chose (their earnings there would have no chain left to pay them).
    Home {
        /// A chain from `caravan chain list`.
        name: String,
    },
}

#[derive(Args)]
pub struct PayoutChainArgs {
    /// The account whose payout chain to show or choose.
    #[arg(long)]
    account: Address,
    /// The chain to pay the account's earnings on from now on (a name from `caravan chain
    /// list`); leave out to show the current choice. What it earned before stays claimable on
    /// the chain that was paying it.
    #[arg(long)]
    chain: Option<String>,
}

/// The chains configured in the data directory, as the node's settlement service sees them.
/// They are the node's own (like its signing key), so they stay in the data directory whichever
/// store keeps the log.
pub fn chains(store: &StoreArgs) -> Result<Chains, String> {
    Ok(Chains::new(
        chains_dir(&store.data_dir),
        http_client(store)?,
    ))
}

pub fn chain(store: &StoreArgs, command: ChainCommand) -> Result<(), String> {
    let chains = chains(store)?;
    match command {
        ChainCommand::Add {
            name,
            url,
            chain_id,
            key_env,
            confirmations,
        } => {
            let config = RpcConfig {
                url,
                chain_id,
                key_env,
                confirmations,
            };
            let signer = chains.add(&name, config).map_err(|e| e.to_string())?;
            println!("added chain {name} (chain id {chain_id}); the node signs as {signer}");
        }
        ChainCommand::List => {
            let mut t = table(
                &[
                    "chain",
                    "kind",
                    "endpoint",
                    "chain id",
                    "confirmations",
                    "home",
                    "deposit vault",
                    "distributor",
                ],
                &[3, 4],
            );
            for info in chains.list().map_err(|e| e.to_string())? {
                let (kind, endpoint, confirmations) = match &info.rpc {
                    None => ("in-process EVM".to_string(), "—".to_string(), 1),
                    Some(config) => ("JSON-RPC".into(), config.url.clone(), config.confirmations),
                };
                t.add_row(vec![
                    info.chain.name.clone(),
                    kind,
                    endpoint,
                    info.chain.chain_id.to_string(),
                    confirmations.to_string(),
                    if info.chain.home { "home" } else { "" }.into(),
                    info.deployment
                        .as_ref()
                        .and_then(|d| d.vault)
                        .map_or("not deployed yet".into(), |vault| vault.to_string()),
                    info.deployment
                        .as_ref()
                        .map_or("not deployed yet".into(), |d| d.distributor.to_string()),
                ]);
            }
            println!("{t}");
        }
        ChainCommand::Deploy { name, delay } => {
            let chain = chains.open(&name, delay).map_err(|e| e.to_string())?;
            let d = chain.deployment();
            println!(
                "caravan's contracts on {name}: distributor {} ({} s delay), deposit vault {}, asset registry {}, token {}",
                d.distributor,
                d.delay,
                d.vault.map_or("none".into(), |v| v.to_string()),
                d.registry,
                d.token
            );
        }
        ChainCommand::Fund {
            name,
            token,
            amount: whole,
        } => {
            let journal = open_reader(store)?;
            let economy = journal.economy();
            let value = crate::present::parse_amount(economy, &token, &whole)?;
            let mut chain = chains.open(&name, 0).map_err(|e| e.to_string())?;
            let distributor = chain.deployment().distributor;
            chain
                .fund_token(token, value, caravan_store::now_ms() / 1000)
                .map_err(|e| {
                    format!(
                        "funding the distributor {distributor} on {name} with {}: {e}; the node's account there must hold the token (and gas)",
                        crate::present::amount(economy, &token, value)
                    )
                })?;
            let funded = chain.funded(token).map_err(|e| e.to_string())?;
            println!(
                "funded the distributor {distributor} on {name} with {}; it has been funded with {} of it in all (deposits included)",
                crate::present::amount(economy, &token, value),
                crate::present::amount(economy, &token, funded)
            );
        }
        ChainCommand::Home { name } => {
            let journal = open_journal(store)?;
            let economy = journal.economy();
            let latest = economy.next_epoch() - 1;
            let bundle = if latest > 0 {
                journal.bundle(latest).map_err(|e| e.to_string())?
            } else {
                None
            };
            let was_home = chains
                .directory()
                .map_err(|e| e.to_string())?
                .by_name(&name)?
                .home;
            let home = chains
                .set_home(&name, economy, bundle.as_ref())
                .map_err(|e| e.to_string())?;
            if was_home {
                println!("{name} is already the home chain");
            } else {
                println!(
                    "{name} (chain id {}) is now the home chain: it pays everyone who has not chosen another",
                    home.chain_id
                );
            }
        }
    }
    Ok(())
}

/// Every chain this node settles on, with the home chain marked.
pub fn directory(store: &StoreArgs) -> Result<ChainDirectory, String> {
    chains(store)?.directory().map_err(|e| e.to_string())
}

/// The chain `named`, or the home chain when none is named.
pub fn named_or_home(store: &StoreArgs, named: Option<String>) -> Result<String, String> {
    match named {
        Some(name) => Ok(name),
        None => Ok(directory(store)?
            .home()
            .map_or_else(|| EMBEDDED.to_owned(), |home| home.name.clone())),
    }
}

/// The chain named `name` and the share of the entitlements it pays, as the log names it.
pub fn payout_chain_named(store: &StoreArgs, name: &str) -> Result<(PayoutChain, u64), String> {
    let directory = directory(store)?;
    let chain = directory
        .by_name(name)
        .map_err(|why| {
            format!(
                "{why}; add one with `caravan chain add {name} --url … --chain-id … --key-env …`"
            )
        })?
        .clone();
    let partition = ChainDirectory::partition(&chain);
    Ok((chain, partition))
}

/// `caravan payout-chain`: shows or records the chain an account's earnings are paid on.
pub fn payout_chain(store: &StoreArgs, args: PayoutChainArgs) -> Result<(), String> {
    let directory = directory(store)?;
    let mut journal = open_journal(store)?;
    let describe = |partition: u64| match directory.of_partition(partition) {
        Some(chain) if chain.home => format!("{} (chain id {}, home)", chain.name, chain.chain_id),
        Some(chain) => format!("{} (chain id {})", chain.name, chain.chain_id),
        None if partition == HOME_CHAIN => "the home chain".into(),
        None => format!("chain id {partition}, which this node has no configuration for"),
    };
    let current = journal.economy().payout_chain(&args.account);
    let Some(name) = args.chain else {
        println!("{} is paid on {}", args.account, describe(current));
        return Ok(());
    };
    let partition = ChainDirectory::partition(directory.by_name(&name)?);
    if partition == current {
        println!("{} is already paid on {}", args.account, describe(current));
        return Ok(());
    }
    super::submit_one(
        &mut journal,
        Event::PayoutChainChosen {
            account: args.account,
            chain_id: partition,
        },
    )?;
    println!(
        "{} is paid on {} from now on; what it earned before stays claimable on {}",
        args.account,
        describe(partition),
        describe(current)
    );
    Ok(())
}

/// Opens the named chain with caravan's contracts (deploying them on first use, with `delay`;
/// a non-zero `delay` that differs from the deployed one is an error, since contracts are
/// immutable).
pub fn open_settlement(store: &StoreArgs, name: &str, delay: u64) -> Result<Settlement, String> {
    chains(store)?.open(name, delay).map_err(|e| e.to_string())
}

//! `caravan chain`: the chains a node settles on. `embedded` always exists; JSON-RPC chains are
//! added by name with their URL, chain id and the environment variable that holds the signer
//! key (the key itself is never written to disk). One chain is home: it pays everyone who did
//! not choose another with `caravan payout-chain`.

use std::path::{Path, PathBuf};

use caravan_chain::embedded::EMBEDDED_CHAIN_ID;
use caravan_chain::rpc::RpcChain;
use caravan_chain::settlement::{DEPLOYMENT, Settlement};
use caravan_core::{Address, Event, HOME_CHAIN};
use caravan_node::chains::{ChainDirectory, PayoutChain};
use caravan_store::now_ms;
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use crate::StoreArgs;
use crate::outgoing::http_client;
use crate::present::{open_journal, table};

/// The chain every store has: an EVM inside this process, kept in `<data dir>/chains/embedded`.
pub const EMBEDDED: &str = "embedded";
const CONFIG: &str = "chain.json";
/// The file in the chains directory that names the home chain (`embedded` when absent).
const HOME: &str = "home";

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
    /// List the configured chains, with the home chain marked.
    List,
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

#[derive(Serialize, Deserialize)]
struct RpcConfig {
    url: String,
    chain_id: u64,
    key_env: String,
    #[serde(default = "one")]
    confirmations: u64,
}

fn one() -> u64 {
    1
}

fn chains_dir(store: &StoreArgs) -> Result<PathBuf, String> {
    if store.database.is_some() {
        return Err("chains are kept in the data directory; use --data-dir with them".into());
    }
    Ok(store.data_dir.join("chains"))
}

pub fn chain(store: &StoreArgs, command: ChainCommand) -> Result<(), String> {
    let dir = chains_dir(store)?;
    match command {
        ChainCommand::Add {
            name,
            url,
            chain_id,
            key_env,
            confirmations,
        } => {
            if name == EMBEDDED
                || name == HOME
                || name.is_empty()
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(format!(
                    "{name:?} cannot name a chain: use letters, digits and `-`, and not `{EMBEDDED}` or `{HOME}`"
                ));
            }
            if let Some(twin) = directory(store)?
                .chains()
                .find(|c| c.chain_id == chain_id && c.name != name)
            {
                return Err(format!(
                    "chain id {chain_id} is already configured as {}; one name per chain",
                    twin.name
                ));
            }
            let key = std::env::var(&key_env)
                .map_err(|_| format!("set {key_env} to the signer key before adding the chain"))?;
            let connected = RpcChain::connect(&url, chain_id, &key, http_client(store)?)
                .map_err(|e| e.to_string())?;
            let chain_dir = dir.join(&name);
            std::fs::create_dir_all(&chain_dir)
                .map_err(|e| format!("cannot create {}: {e}", chain_dir.display()))?;
            let config = RpcConfig {
                url,
                chain_id,
                key_env,
                confirmations,
            };
            let text = serde_json::to_string_pretty(&config).expect("serialises");
            std::fs::write(chain_dir.join(CONFIG), text)
                .map_err(|e| format!("cannot write the chain's configuration: {e}"))?;
            println!(
                "added chain {name} (chain id {chain_id}); the node signs as {}",
                caravan_core::Address(caravan_chain::chain::Chain::sender(&connected).into_array())
            );
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
                ],
                &[3, 4],
            );
            for chain in directory(store)?.chains() {
                let (kind, endpoint, confirmations) = if chain.name == EMBEDDED {
                    ("in-process EVM".to_string(), "—".to_string(), 1)
                } else {
                    let config = read_config(&dir.join(&chain.name))?;
                    ("JSON-RPC".into(), config.url, config.confirmations)
                };
                t.add_row(vec![
                    chain.name.clone(),
                    kind,
                    endpoint,
                    chain.chain_id.to_string(),
                    confirmations.to_string(),
                    if chain.home { "home" } else { "" }.into(),
                ]);
            }
            println!("{t}");
        }
        ChainCommand::Home { name } => set_home(store, &name)?,
    }
    Ok(())
}

/// The configured JSON-RPC chains' names, sorted.
fn rpc_chain_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().join(CONFIG).exists())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The JSON-RPC chains configured in the data directory, each as its chain id and endpoint
/// (none for a store kept in a database, which has no chain configuration).
pub fn rpc_endpoints(store: &StoreArgs) -> Result<Vec<(u64, String)>, String> {
    if store.database.is_some() {
        return Ok(Vec::new());
    }
    let dir = chains_dir(store)?;
    rpc_chain_names(&dir)
        .into_iter()
        .map(|name| read_config(&dir.join(name)).map(|config| (config.chain_id, config.url)))
        .collect()
}

/// The name of the home chain (`embedded` unless `caravan chain home` chose another).
fn home_name(dir: &Path) -> Result<String, String> {
    match std::fs::read_to_string(dir.join(HOME)) {
        Ok(text) => Ok(text.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(EMBEDDED.into()),
        Err(e) => Err(format!("cannot read {}: {e}", dir.join(HOME).display())),
    }
}

/// Every chain this node settles on, with the home chain marked. A store kept in a database
/// rather than a data directory has no chain configuration: it pays on its home chain only.
pub fn directory(store: &StoreArgs) -> Result<ChainDirectory, String> {
    if store.database.is_some() {
        return Ok(ChainDirectory::default());
    }
    let dir = chains_dir(store)?;
    let home = home_name(&dir)?;
    let mut chains = vec![PayoutChain {
        name: EMBEDDED.into(),
        chain_id: EMBEDDED_CHAIN_ID,
        home: home == EMBEDDED,
    }];
    for name in rpc_chain_names(&dir) {
        let config = read_config(&dir.join(&name))?;
        chains.push(PayoutChain {
            home: home == name,
            name,
            chain_id: config.chain_id,
        });
    }
    ChainDirectory::new(chains).map_err(|why| {
        format!(
            "the chain configuration in {} is inconsistent: {why}",
            dir.display()
        )
    })
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

/// Whether any root was ever posted on the named chain (a chain whose contracts were never
/// deployed has none, and is not contacted).
fn has_posted(store: &StoreArgs, name: &str) -> Result<bool, String> {
    if !chains_dir(store)?.join(name).join(DEPLOYMENT).exists() {
        return Ok(false);
    }
    let (active, pending, _) = open_deployed(store, name, 0)?
        .epochs()
        .map_err(|e| e.to_string())?;
    Ok(active > 0 || pending > 0)
}

fn set_home(store: &StoreArgs, name: &str) -> Result<(), String> {
    let dir = chains_dir(store)?;
    let directory = directory(store)?;
    let chain = directory.by_name(name)?.clone();
    let current = home_name(&dir)?;
    if current == name {
        println!("{name} is already the home chain");
        return Ok(());
    }
    for posted_on in [current.as_str(), name] {
        if has_posted(store, posted_on)? {
            return Err(format!(
                "roots are already posted on {posted_on}; the home chain cannot change once it or the new one pays anyone (home's cumulative amounts would be owed twice)"
            ));
        }
    }
    let journal = open_journal(store)?;
    let economy = journal.economy();
    let chosen_by = economy
        .payout_chains()
        .values()
        .filter(|c| **c == chain.chain_id)
        .count();
    let latest = economy.next_epoch() - 1;
    let paid_there = latest > 0
        && journal
            .bundle(latest)
            .map_err(|e| e.to_string())?
            .is_some_and(|b| b.chains.iter().any(|c| c.chain_id == chain.chain_id));
    if chosen_by > 0 || paid_there {
        return Err(format!(
            "accounts chose {name} (chain id {}) to be paid on; it cannot become home, whose share the log keeps apart",
            chain.chain_id
        ));
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::fs::write(dir.join(HOME), name)
        .map_err(|e| format!("cannot write {}: {e}", dir.join(HOME).display()))?;
    println!(
        "{name} (chain id {}) is now the home chain: it pays everyone who has not chosen another",
        chain.chain_id
    );
    Ok(())
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

fn read_config(dir: &Path) -> Result<RpcConfig, String> {
    let path = dir.join(CONFIG);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Opens the named chain with caravan's contracts (deploying them on first use, with `delay`;
/// a non-zero `delay` that differs from the deployed one is an error, since contracts are
/// immutable).
pub fn open_settlement(store: &StoreArgs, name: &str, delay: u64) -> Result<Settlement, String> {
    let settlement = open_deployed(store, name, delay)?;
    let deployed = settlement.deployment().delay;
    if delay != 0 && delay != deployed {
        return Err(format!(
            "chain {name}'s distributor was deployed with a {deployed} s delay; contracts are immutable, so --delay only applies to a chain's first use"
        ));
    }
    Ok(settlement)
}

fn open_deployed(store: &StoreArgs, name: &str, delay: u64) -> Result<Settlement, String> {
    let dir = chains_dir(store)?.join(name);
    if name == EMBEDDED {
        return Settlement::open_embedded(&dir, delay, now_ms() / 1000).map_err(|e| e.to_string());
    }
    if !dir.join(CONFIG).exists() {
        return Err(format!(
            "unknown chain {name:?}; add it with `caravan chain add {name} --url … --chain-id … --key-env …`, or see `caravan chain list`"
        ));
    }
    let config = read_config(&dir)?;
    let key = std::env::var(&config.key_env)
        .map_err(|_| format!("set {} to the signer key of chain {name}", config.key_env))?;
    let rpc = RpcChain::connect(&config.url, config.chain_id, &key, http_client(store)?)
        .map_err(|e| e.to_string())?
        .with_confirmations(config.confirmations);
    Settlement::open(&dir, Box::new(rpc), delay, now_ms() / 1000).map_err(|e| e.to_string())
}

//! `caravan chain`: the chains a node settles on. `embedded` always exists; JSON-RPC chains are
//! added by name with their URL, chain id and the environment variable that holds the signer
//! key (the key itself is never written to disk).

use std::path::{Path, PathBuf};

use caravan_chain::rpc::RpcChain;
use caravan_chain::settlement::Settlement;
use caravan_store::now_ms;
use clap::Subcommand;
use serde::{Deserialize, Serialize};

use crate::StoreArgs;
use crate::present::table;

/// The chain every store has: an EVM inside this process, kept in `<data dir>/chains/embedded`.
pub const EMBEDDED: &str = "embedded";
const CONFIG: &str = "chain.json";

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
    },
    /// List the configured chains.
    List,
}

#[derive(Serialize, Deserialize)]
struct RpcConfig {
    url: String,
    chain_id: u64,
    key_env: String,
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
        } => {
            if name == EMBEDDED
                || name.is_empty()
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(format!(
                    "{name:?} cannot name a chain: use letters, digits and `-`, and not `{EMBEDDED}`"
                ));
            }
            let key = std::env::var(&key_env)
                .map_err(|_| format!("set {key_env} to the signer key before adding the chain"))?;
            let connected = RpcChain::connect(&url, chain_id, &key).map_err(|e| e.to_string())?;
            let chain_dir = dir.join(&name);
            std::fs::create_dir_all(&chain_dir)
                .map_err(|e| format!("cannot create {}: {e}", chain_dir.display()))?;
            let config = RpcConfig {
                url,
                chain_id,
                key_env,
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
            let mut t = table(&["chain", "kind", "endpoint", "chain id"], &[3]);
            t.add_row(vec![EMBEDDED, "in-process EVM", "—", "—"]);
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .map(|entries| {
                    entries
                        .filter_map(|e| e.ok())
                        .filter(|e| e.path().join(CONFIG).exists())
                        .filter_map(|e| e.file_name().into_string().ok())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            for name in names {
                let config = read_config(&dir.join(&name))?;
                t.add_row(vec![
                    name,
                    "JSON-RPC".into(),
                    config.url,
                    config.chain_id.to_string(),
                ]);
            }
            println!("{t}");
        }
    }
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
    let rpc = RpcChain::connect(&config.url, config.chain_id, &key).map_err(|e| e.to_string())?;
    Settlement::open(&dir, Box::new(rpc), delay, now_ms() / 1000).map_err(|e| e.to_string())
}

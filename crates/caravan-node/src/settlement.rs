//! The chains a node settles on, as its operator manages them — on the command line or, for a
//! node's operators, over HTTP — and posting an epoch's root on one.
//!
//! `embedded` always exists: an EVM inside the process, kept in `<data dir>/chains/embedded`.
//! JSON-RPC chains are added by name with their URL, chain id and the environment variable that
//! holds the signer key (the key itself is never written down). One chain is home: it pays
//! everyone who did not choose another, and it cannot change once a root is posted on it or on
//! the chain that would take its place. Chain operations run one at a time.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use caravan_chain::embedded::EMBEDDED_CHAIN_ID;
use caravan_chain::rpc::RpcChain;
use caravan_chain::settlement::{
    DEPLOYMENT, Deployment, EpochRoot, FundingLimits, Published, SettleError, Settlement,
    VaultDeposit,
};
use caravan_core::epoch::{ChainProofs, EpochBundle};
use caravan_core::money::format_units;
use caravan_core::{Address, Economy, Hash32, Leaf};
use caravan_store::now_ms;
use serde::{Deserialize, Serialize};

use crate::chains::{ChainDirectory, PayoutChain};
use crate::sessions::ContractWallets;

/// The chain every store has.
pub const EMBEDDED: &str = "embedded";
const CONFIG: &str = "chain.json";
/// The file in the chains directory that names the home chain (`embedded` when absent).
const HOME: &str = "home";

/// A JSON-RPC chain's configuration, as kept in its folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcConfig {
    pub url: String,
    pub chain_id: u64,
    /// The environment variable that holds the node's signer key for this chain.
    pub key_env: String,
    /// Blocks a transaction must be buried under before it counts as done.
    #[serde(default = "one")]
    pub confirmations: u64,
}

fn one() -> u64 {
    1
}

/// A configured chain and how it is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainInfo {
    pub chain: PayoutChain,
    /// `None` for the embedded chain.
    pub rpc: Option<RpcConfig>,
    /// caravan's contracts there, as recorded when they were deployed (`None` before the first
    /// post or deposit); read from the record, without asking the chain.
    pub deployment: Option<Deployment>,
}

/// Why a chain operation failed, by whose move would fix it; every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ChainsError {
    /// The request was wrong: a name, a setting or a delay that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// No chain goes by that name.
    #[error("{0}")]
    Unknown(String),
    /// The chains as they stand do not allow it (a chain id already named, a home that can no
    /// longer move).
    #[error("{0}")]
    Conflict(String),
    /// The chain could not be reached, or refused or failed a transaction.
    #[error("{0}")]
    Chain(String),
    /// The node's own side failed: its chain files, its embedded chain or its environment.
    #[error("{0}")]
    Node(String),
}

fn chain_fault<E: std::fmt::Display>(error: E) -> ChainsError {
    ChainsError::Chain(error.to_string())
}

/// Whose move a settlement failure calls for: funding the distributor is the operator's, a
/// failing chain is the chain's, and the node's own records or an entitlement going down (which
/// the log never produces) are the node's.
fn settle_fault(error: SettleError) -> ChainsError {
    match error {
        SettleError::Underfunded { .. } => ChainsError::Conflict(error.to_string()),
        SettleError::Chain(_) | SettleError::Transaction { .. } => {
            ChainsError::Chain(error.to_string())
        }
        SettleError::Store(_) | SettleError::Deployment { .. } | SettleError::Lowered { .. } => {
            ChainsError::Node(error.to_string())
        }
    }
}

/// What `read` finds in blocks `from..=to`, asked [`LOG_RANGE`] blocks at a time (public
/// endpoints refuse wider log queries).
fn in_log_ranges<T>(
    from: u64,
    to: u64,
    mut read: impl FnMut(u64, u64) -> Result<Vec<T>, SettleError>,
) -> Result<Vec<T>, ChainsError> {
    let mut found = Vec::new();
    let mut start = from;
    while start <= to {
        let end = to.min(start + LOG_RANGE - 1);
        found.extend(read(start, end).map_err(settle_fault)?);
        start = end + 1;
    }
    Ok(found)
}

/// A post's failure; one for want of funds names the chain's distributor, the token, the
/// amounts in whole tokens and the commands that fix it.
fn underfunded_on(name: &str, bundle: &EpochBundle, error: SettleError) -> ChainsError {
    let SettleError::Underfunded {
        epoch,
        token,
        promised,
        funded,
        distributor,
    } = error
    else {
        return settle_fault(error);
    };
    let known = bundle.tokens.iter().find(|t| t.address == token);
    let shown = |amount: u128| match known {
        Some(known) => known.format(amount),
        None => format!("{amount} base units of {token}"),
    };
    let missing = promised - funded;
    let whole = known.map_or_else(
        || missing.to_string(),
        |known| format_units(missing, known.decimals),
    );
    ChainsError::Conflict(format!(
        "epoch {epoch} promises {} on {name} but its distributor {distributor} holds {} of token {token}; fund the {} missing with `caravan chain fund {name} --token {token} --amount {whole}` from an account holding it, or let the node fund up to that much itself (`caravan serve --fund-limit {token}={whole}`)",
        shown(promised),
        shown(funded),
        shown(missing),
    ))
}

/// An epoch's root as the chain's own record has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostedRoot {
    pub epoch: u64,
    pub root: Hash32,
    /// Where it was posted: block and transaction.
    pub posted: (u64, Hash32),
    /// Where it was activated, if it was.
    pub activated: Option<(u64, Hash32)>,
    pub state: RootState,
}

/// Where an account's claims stand on one chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimPosition {
    /// The epoch whose root claims are checked against now (0 before the first activation).
    pub active_epoch: u64,
    pub active_root: Hash32,
    /// The epoch of a posted root still waiting out its delay (0 when none).
    pub pending_epoch: u64,
    /// The contract claims are sent to.
    pub distributor: Address,
    /// What the account has claimed so far, per token asked about.
    pub claimed: Vec<(Address, u128)>,
}

/// Where a posted root stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootState {
    /// Claims are checked against it now.
    Active,
    /// Waiting out the distributor's delay; activatable from `from` (seconds).
    Pending { from: u64 },
    /// The guardian stopped it during its delay: it is never activated.
    Paused,
    /// It was active; a later epoch's root replaced it (cumulative, so it owes nothing more).
    Superseded,
    /// A later root was posted over it while it was paused; it never became active.
    NeverActivated,
}

impl RootState {
    /// The state in a word or two, as people read it.
    pub fn describe(self) -> String {
        match self {
            RootState::Active => "active".into(),
            RootState::Pending { from } => format!("pending (activatable from {from} s)"),
            RootState::Paused => "paused by the guardian".into(),
            RootState::Superseded => "superseded by a later epoch".into(),
            RootState::NeverActivated => "never activated (paused, then replaced)".into(),
        }
    }
}

/// What [`Chains::activate_due`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Activation {
    /// No root is pending (or the guardian paused it).
    Nothing,
    /// The pending root of `epoch` was activated.
    Activated(u64),
    /// The pending root of `epoch` can be activated from `from` (seconds).
    Waiting { epoch: u64, from: u64 },
}

/// What posting an epoch came to.
#[derive(Debug)]
pub enum PostOutcome {
    /// The chain pays nobody in this epoch.
    NothingToPost { chain: PayoutChain },
    /// The chain already holds this epoch (or a later one).
    AlreadyPosted {
        chain: PayoutChain,
        active: u64,
        pending: u64,
    },
    Posted {
        chain: PayoutChain,
        root: Hash32,
        leaves: usize,
        published: Published,
        /// Seconds a root waits before it can be activated; 0 when it was activated at once.
        delay: u64,
    },
}

/// The chains a node settles on: their configuration in the data directory, and one chain
/// operation at a time.
pub struct Chains {
    dir: PathBuf,
    http: reqwest::Client,
    busy: Mutex<()>,
}

/// The file in a chain's folder that says from which block its deposits are still to be read.
const DEPOSIT_CURSOR: &str = "deposits.next-block";
/// The most blocks one log query spans: public endpoints refuse wider ranges.
const LOG_RANGE: u64 = 5_000;

/// Deposits a chain holds with enough confirmations.
#[derive(Debug)]
pub struct ConfirmedDeposits {
    pub deposits: Vec<VaultDeposit>,
    /// The first block not read.
    pub next_block: u64,
}

/// What one chain pays in an epoch: its leaves and their root.
pub struct ChainShare {
    pub root: Hash32,
    pub leaves: Vec<Leaf>,
}

impl ChainShare {
    /// The share of `bundle` paid on the chain holding log partition `partition`.
    pub fn of(bundle: &EpochBundle, partition: u64) -> ChainShare {
        ChainShare {
            root: bundle.chain_root(partition),
            leaves: bundle.chain_leaves(partition),
        }
    }

    fn epoch_root(&self, epoch: u64) -> EpochRoot<'_> {
        EpochRoot {
            epoch,
            root: self.root,
            leaves: &self.leaves,
        }
    }
}

impl Chains {
    /// The chains configured in `dir` (the data directory's `chains` folder), reached through
    /// `http` (which carries the operator's trusted authorities and timeouts).
    pub fn new(dir: PathBuf, http: reqwest::Client) -> Chains {
        Chains {
            dir,
            http,
            busy: Mutex::new(()),
        }
    }

    fn one_at_a_time(&self) -> std::sync::MutexGuard<'_, ()> {
        self.busy
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The configured JSON-RPC chains' names, sorted.
    fn rpc_chain_names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
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

    /// The name of the home chain (`embedded` unless another was made home).
    fn home_name(&self) -> Result<String, ChainsError> {
        match std::fs::read_to_string(self.dir.join(HOME)) {
            Ok(text) => Ok(text.trim().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(EMBEDDED.into()),
            Err(e) => Err(ChainsError::Node(format!(
                "cannot read {}: {e}",
                self.dir.join(HOME).display()
            ))),
        }
    }

    fn read_config(&self, name: &str) -> Result<RpcConfig, ChainsError> {
        let path = self.dir.join(name).join(CONFIG);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ChainsError::Node(format!("cannot read {}: {e}", path.display())))?;
        serde_json::from_str(&text)
            .map_err(|e| ChainsError::Node(format!("{}: {e}", path.display())))
    }

    /// Every chain, with its configuration, home first.
    pub fn list(&self) -> Result<Vec<ChainInfo>, ChainsError> {
        let directory = self.directory()?;
        directory
            .chains()
            .map(|chain| {
                Ok(ChainInfo {
                    deployment: std::fs::read_to_string(
                        self.dir.join(&chain.name).join(DEPLOYMENT),
                    )
                    .ok()
                    .and_then(|text| serde_json::from_str(&text).ok()),
                    rpc: if chain.name == EMBEDDED {
                        None
                    } else {
                        Some(self.read_config(&chain.name)?)
                    },
                    chain: chain.clone(),
                })
            })
            .collect()
    }

    /// Every chain this node settles on, with the home chain marked.
    pub fn directory(&self) -> Result<ChainDirectory, ChainsError> {
        let home = self.home_name()?;
        let mut chains = vec![PayoutChain {
            name: EMBEDDED.into(),
            chain_id: EMBEDDED_CHAIN_ID,
            home: home == EMBEDDED,
        }];
        for name in self.rpc_chain_names() {
            let config = self.read_config(&name)?;
            chains.push(PayoutChain {
                home: home == name,
                name,
                chain_id: config.chain_id,
            });
        }
        ChainDirectory::new(chains).map_err(|why| {
            ChainsError::Node(format!(
                "the chain configuration in {} is inconsistent: {why}",
                self.dir.display()
            ))
        })
    }

    /// The JSON-RPC chains' chain ids and endpoints (where contract wallets are asked).
    pub fn rpc_endpoints(&self) -> Result<Vec<(u64, String)>, ChainsError> {
        self.rpc_chain_names()
            .into_iter()
            .map(|name| {
                self.read_config(&name)
                    .map(|config| (config.chain_id, config.url))
            })
            .collect()
    }

    /// Adds a JSON-RPC chain after connecting to it with the key in `config.key_env` (which
    /// must be set) and checking it serves `config.chain_id`; returns the account the node
    /// signs with there.
    pub fn add(&self, name: &str, config: RpcConfig) -> Result<Address, ChainsError> {
        let _busy = self.one_at_a_time();
        if name == EMBEDDED
            || name == HOME
            || name.is_empty()
            || name.len() > 64
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(ChainsError::Invalid(format!(
                "{name:?} cannot name a chain: use up to 64 letters, digits and `-`, and not `{EMBEDDED}` or `{HOME}`"
            )));
        }
        if !(1..=1000).contains(&config.confirmations) {
            return Err(ChainsError::Invalid(format!(
                "confirmations must be 1 to 1000, not {}",
                config.confirmations
            )));
        }
        if let Some(twin) = self
            .directory()?
            .chains()
            .find(|c| c.chain_id == config.chain_id && c.name != name)
        {
            return Err(ChainsError::Conflict(format!(
                "chain id {} is already configured as {}; one name per chain",
                config.chain_id, twin.name
            )));
        }
        let key = std::env::var(&config.key_env).map_err(|_| {
            ChainsError::Invalid(format!(
                "set {} to the signer key before adding the chain (the node reads it from its environment; it is never stored)",
                config.key_env
            ))
        })?;
        let connected = RpcChain::connect(&config.url, config.chain_id, &key, self.http.clone())
            .map_err(chain_fault)?;
        let chain_dir = self.dir.join(name);
        std::fs::create_dir_all(&chain_dir).map_err(|e| {
            ChainsError::Node(format!("cannot create {}: {e}", chain_dir.display()))
        })?;
        let text = serde_json::to_string_pretty(&config).expect("a configuration serialises");
        std::fs::write(chain_dir.join(CONFIG), text).map_err(|e| {
            ChainsError::Node(format!("cannot write the chain's configuration: {e}"))
        })?;
        Ok(Address(
            caravan_chain::chain::Chain::sender(&connected).into_array(),
        ))
    }

    /// Whether any root was ever posted on the named chain (a chain whose contracts were never
    /// deployed has none, and is not contacted).
    fn has_posted(&self, name: &str) -> Result<bool, ChainsError> {
        if !self.dir.join(name).join(DEPLOYMENT).exists() {
            return Ok(false);
        }
        let Some(mut settlement) = self.attach(name)? else {
            return Ok(false);
        };
        let (active, pending, _) = settlement.epochs().map_err(settle_fault)?;
        Ok(active > 0 || pending > 0)
    }

    /// Makes `name` the home chain, unless a root is posted on it or on the current home, or
    /// accounts chose it (per `economy`, whose latest closed epoch's bundle is `latest`).
    /// Returns the new home; choosing the current home changes nothing.
    pub fn set_home(
        &self,
        name: &str,
        economy: &Economy,
        latest: Option<&EpochBundle>,
    ) -> Result<PayoutChain, ChainsError> {
        let _busy = self.one_at_a_time();
        let chain = self
            .directory()?
            .by_name(name)
            .map_err(ChainsError::Unknown)?
            .clone();
        let current = self.home_name()?;
        if current == name {
            return Ok(chain);
        }
        for posted_on in [current.as_str(), name] {
            if self.has_posted(posted_on)? {
                return Err(ChainsError::Conflict(format!(
                    "roots are already posted on {posted_on}; the home chain cannot change once it or the new one pays anyone (home's cumulative amounts would be owed twice)"
                )));
            }
        }
        let chosen_by = economy
            .payout_chains()
            .values()
            .filter(|c| **c == chain.chain_id)
            .count();
        let paid_there =
            latest.is_some_and(|b| b.chains.iter().any(|c| c.chain_id == chain.chain_id));
        if chosen_by > 0 || paid_there {
            return Err(ChainsError::Conflict(format!(
                "accounts chose {name} (chain id {}) to be paid on; it cannot become home, whose share the log keeps apart",
                chain.chain_id
            )));
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| ChainsError::Node(format!("cannot create {}: {e}", self.dir.display())))?;
        std::fs::write(self.dir.join(HOME), name).map_err(|e| {
            ChainsError::Node(format!(
                "cannot write {}: {e}",
                self.dir.join(HOME).display()
            ))
        })?;
        Ok(PayoutChain {
            home: true,
            ..chain
        })
    }

    /// The named chain with caravan's contracts (deploying them on first use, with `delay`; a
    /// non-zero `delay` that differs from the deployed one is an error, since contracts are
    /// immutable). For commands that write to the chain; readers use [`Chains::attach`].
    pub fn open(&self, name: &str, delay: u64) -> Result<Settlement, ChainsError> {
        let settlement = self.open_with(name, |dir, chain| match chain {
            None => Settlement::open_embedded(dir, delay, now_ms() / 1000).map(Some),
            Some(chain) => Settlement::open(dir, chain, delay, now_ms() / 1000).map(Some),
        })?;
        let settlement = settlement.expect("opening deploys when needed");
        let deployed = settlement.deployment().delay;
        if delay != 0 && delay != deployed {
            return Err(ChainsError::Invalid(format!(
                "chain {name}'s distributor was deployed with a {deployed} s delay; contracts are immutable, so a delay only applies to a chain's first use"
            )));
        }
        Ok(settlement)
    }

    /// The named chain with the contracts already deployed there, deploying nothing: `None`
    /// when caravan never deployed on it (so nothing was posted or deposited there).
    pub fn attach(&self, name: &str) -> Result<Option<Settlement>, ChainsError> {
        if !self.dir.join(name).join(DEPLOYMENT).exists() {
            if name != EMBEDDED && !self.dir.join(name).join(CONFIG).exists() {
                return Err(self.unknown(name));
            }
            return Ok(None);
        }
        self.open_with(name, |dir, chain| match chain {
            None => Settlement::attach_embedded(dir),
            Some(chain) => Settlement::attach(dir, chain),
        })
    }

    fn unknown(&self, name: &str) -> ChainsError {
        ChainsError::Unknown(format!(
            "unknown chain {name:?}; add it with `caravan chain add {name} --url … --chain-id … --key-env …`, or see `caravan chain list`"
        ))
    }

    /// Opens the named chain through `open`, which gets its directory and, for a JSON-RPC
    /// chain, the connection (`None` for the embedded chain).
    fn open_with(
        &self,
        name: &str,
        open: impl FnOnce(
            &Path,
            Option<Box<dyn caravan_chain::chain::Chain>>,
        ) -> Result<Option<Settlement>, SettleError>,
    ) -> Result<Option<Settlement>, ChainsError> {
        let dir = self.dir.join(name);
        if name == EMBEDDED {
            return open(&dir, None).map_err(settle_fault);
        }
        if !dir.join(CONFIG).exists() {
            return Err(self.unknown(name));
        }
        let config = self.read_config(name)?;
        let key = std::env::var(&config.key_env).map_err(|_| {
            ChainsError::Node(format!(
                "set {} in the node's environment to the signer key of chain {name}",
                config.key_env
            ))
        })?;
        let rpc = RpcChain::connect(&config.url, config.chain_id, &key, self.http.clone())
            .map_err(chain_fault)?
            .with_confirmations(config.confirmations);
        open(&dir, Some(Box::new(rpc))).map_err(settle_fault)
    }

    /// The deposits into the named chain's vault in blocks `from` onwards that have the chain's
    /// confirmations, and the first block not yet read. `None` when caravan's contracts are not
    /// on the chain or no block past `from` is confirmed yet. A deposit in a block that the
    /// chain's confirmations do not yet cover is never returned, so one that a reorganisation
    /// removes is never seen.
    pub fn confirmed_deposits(
        &self,
        name: &str,
        from: u64,
    ) -> Result<Option<ConfirmedDeposits>, ChainsError> {
        let confirmations = if name == EMBEDDED {
            1
        } else {
            self.read_config(name)?.confirmations
        };
        let _busy = self.one_at_a_time();
        let Some(mut settlement) = self.attach(name)? else {
            return Ok(None);
        };
        let head = settlement.head().map_err(settle_fault)?;
        let Some(last) = (head + 1).checked_sub(confirmations) else {
            return Ok(None);
        };
        if last < from {
            return Ok(None);
        }
        let deposits = in_log_ranges(from, last, |start, end| settlement.deposits(start, end))?;
        Ok(Some(ConfirmedDeposits {
            deposits,
            next_block: last + 1,
        }))
    }

    /// How far the node has read the named chain's deposits (0 when it never has).
    pub fn deposit_cursor(&self, name: &str) -> u64 {
        std::fs::read_to_string(self.dir.join(name).join(DEPOSIT_CURSOR))
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Records that the named chain's deposits before `next_block` were read and credited. The
    /// record only saves reading again: deposits are keyed in the log, so reading a block twice
    /// credits nothing twice.
    pub fn set_deposit_cursor(&self, name: &str, next_block: u64) -> Result<(), ChainsError> {
        let path = self.dir.join(name).join(DEPOSIT_CURSOR);
        let partial = path.with_extension("partial");
        std::fs::write(&partial, next_block.to_string())
            .and_then(|()| std::fs::rename(&partial, &path))
            .map_err(|e| ChainsError::Node(format!("cannot write {}: {e}", path.display())))
    }

    /// The chain's folder, where its embedded journal or its configuration is kept.
    pub fn chain_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Every root ever posted on the named chain, oldest first, from the distributor's own logs
    /// and state; deploys nothing (empty when caravan's contracts are not there).
    pub fn posted_roots(&self, name: &str) -> Result<Vec<PostedRoot>, ChainsError> {
        let _busy = self.one_at_a_time();
        let Some(mut settlement) = self.attach(name)? else {
            return Ok(Vec::new());
        };
        let head = settlement.head().map_err(settle_fault)?;
        let first = settlement.deployment().first_block;
        let logs = in_log_ranges(first, head, |start, end| settlement.root_logs(start, end))?;
        let (active, _, _) = settlement.epochs().map_err(settle_fault)?;
        let pending = settlement.pending_activation().map_err(settle_fault)?;
        let mut roots: Vec<PostedRoot> = Vec::new();
        for log in logs {
            if log.activated {
                if let Some(root) = roots.iter_mut().rev().find(|r| r.epoch == log.epoch) {
                    root.activated = Some((log.block, log.tx));
                }
                continue;
            }
            roots.push(PostedRoot {
                epoch: log.epoch,
                root: log.root,
                posted: (log.block, log.tx),
                activated: None,
                state: RootState::NeverActivated,
            });
        }
        let latest = roots.last().map(|root| root.epoch);
        for root in &mut roots {
            root.state = match (root.activated, pending) {
                _ if root.epoch == active && root.activated.is_some() => RootState::Active,
                (Some(_), _) => RootState::Superseded,
                (None, Some((epoch, from))) if epoch == root.epoch => RootState::Pending { from },
                (None, _) if Some(root.epoch) == latest => RootState::Paused,
                (None, _) => RootState::NeverActivated,
            };
        }
        Ok(roots)
    }

    /// The calls a wallet sends to deposit `amount` (whole tokens, as people write them) of
    /// `token` into caravan's vault on the chain with id `chain_id` for `account`: the token's
    /// approval of the vault, then the deposit. The node credits it once the chain confirms it.
    pub fn deposit_calls(
        &self,
        chain_id: u64,
        token: &caravan_core::Token,
        amount: &str,
        account: Address,
    ) -> Result<[(Address, Vec<u8>); 2], ChainsError> {
        let chain = self
            .list()?
            .into_iter()
            .find(|info| info.chain.chain_id == chain_id)
            .ok_or_else(|| {
                ChainsError::Unknown(format!(
                    "this node does not follow chain {chain_id}; the developer page lists the chains it does"
                ))
            })?;
        let vault = chain
            .deployment
            .and_then(|deployment| deployment.vault)
            .ok_or_else(|| {
                ChainsError::Conflict(format!(
                    "caravan's deposit vault is not on {} yet; the operator deploys it with the first root posted there",
                    chain.chain.name
                ))
            })?;
        let amount = token.parse_amount(amount).map_err(|why| {
            ChainsError::Invalid(format!(
                "the amount: {why}; write it in whole {} such as 2.5",
                token.symbol
            ))
        })?;
        if amount == 0 {
            return Err(ChainsError::Invalid("the amount must be above zero".into()));
        }
        Ok(caravan_chain::settlement::deposit_calldata(
            Address(vault.into_array()),
            token.address,
            amount,
            account,
        ))
    }

    /// Where `account`'s claims of `tokens` stand on the named chain, as the chain's own
    /// contracts say; `None` when caravan's contracts are not there (nothing was posted).
    pub fn claim_position(
        &self,
        name: &str,
        account: Address,
        tokens: &[Address],
    ) -> Result<Option<ClaimPosition>, ChainsError> {
        let _busy = self.one_at_a_time();
        let Some(mut chain) = self.attach(name)? else {
            return Ok(None);
        };
        let (active_epoch, pending_epoch, _) = chain.epochs().map_err(settle_fault)?;
        let active_root = chain.active_root().map_err(settle_fault)?;
        let mut claimed = Vec::with_capacity(tokens.len());
        for token in tokens {
            claimed.push((
                *token,
                chain.claimed(account, *token).map_err(settle_fault)?,
            ));
        }
        Ok(Some(ClaimPosition {
            active_epoch,
            active_root,
            pending_epoch,
            distributor: Address(chain.deployment().distributor.into_array()),
            claimed,
        }))
    }

    /// Claims on the named chain each leaf of `proofs` that pays something new, sent from the
    /// node's account: anyone may submit a claim, and the money goes only to the leaf's
    /// account. `proofs` must be against the chain's active root. Returns what each paid.
    pub fn claim(
        &self,
        name: &str,
        proofs: &ChainProofs,
    ) -> Result<Vec<(Address, u128)>, ChainsError> {
        let _busy = self.one_at_a_time();
        let mut chain = self.attach(name)?.ok_or_else(|| {
            ChainsError::Conflict(format!(
                "no root was posted on {name} yet, so nothing can be claimed there"
            ))
        })?;
        let root = chain.active_root().map_err(settle_fault)?;
        if root != proofs.root {
            return Err(ChainsError::Conflict(format!(
                "the root active on {name} is {root}, not {} which these proofs are against; a newer root was activated meanwhile: load the page again and claim",
                proofs.root
            )));
        }
        let mut paid = Vec::new();
        for proven in &proofs.leaves {
            let leaf = &proven.leaf;
            let before = chain
                .claimed(leaf.account, leaf.token)
                .map_err(settle_fault)?;
            if before < leaf.cumulative {
                chain
                    .claim(leaf, &proven.proof, root, now_ms() / 1000)
                    .map_err(settle_fault)?;
                paid.push((leaf.token, leaf.cumulative - before));
            }
        }
        Ok(paid)
    }

    /// Activates the named chain's pending root when its delay is over by `now_s`. Deploys
    /// nothing.
    pub fn activate_due(&self, name: &str, now_s: u64) -> Result<Activation, ChainsError> {
        let _busy = self.one_at_a_time();
        let Some(mut settlement) = self.attach(name)? else {
            return Ok(Activation::Nothing);
        };
        match settlement.pending_activation().map_err(settle_fault)? {
            Some((epoch, from)) if from <= now_s => {
                settlement.activate(now_s).map_err(settle_fault)?;
                Ok(Activation::Activated(epoch))
            }
            Some((epoch, from)) => Ok(Activation::Waiting { epoch, from }),
            None => Ok(Activation::Nothing),
        }
    }

    /// Posts `current`'s root on the named chain — its share of the epoch, checked against
    /// `previous`'s share (nobody's cumulative amount goes down) — funding shortfalls from the
    /// node's account within `funding` first and activating at once when the chain has no delay
    /// (see [`Settlement::publish`]). Posting an epoch the chain already holds (or a later one)
    /// sends nothing, so a post retried after a failure or a restart never posts a root twice.
    pub fn post(
        &self,
        name: &str,
        delay: u64,
        current: &EpochBundle,
        previous: Option<&EpochBundle>,
        funding: &FundingLimits,
    ) -> Result<PostOutcome, ChainsError> {
        let directory = self.directory()?;
        let chain = directory.by_name(name).map_err(|why| {
            ChainsError::Unknown(format!(
                "{why}; add one with `caravan chain add {name} --url … --chain-id … --key-env …`"
            ))
        })?;
        let partition = ChainDirectory::partition(chain);
        let share = ChainShare::of(current, partition);
        if share.leaves.is_empty() {
            return Ok(PostOutcome::NothingToPost {
                chain: chain.clone(),
            });
        }
        let previous = previous.map(|bundle| ChainShare::of(bundle, partition));
        let _busy = self.one_at_a_time();
        let mut settlement = self.open(name, delay)?;
        let (active, pending, _) = settlement.epochs().map_err(settle_fault)?;
        if current.epoch <= active.max(pending) {
            return Ok(PostOutcome::AlreadyPosted {
                chain: chain.clone(),
                active,
                pending,
            });
        }
        let published = settlement
            .publish(
                share.epoch_root(current.epoch),
                previous
                    .as_ref()
                    .map(|share| share.epoch_root(current.epoch - 1)),
                funding,
                now_ms() / 1000,
            )
            .map_err(|error| underfunded_on(name, current, error))?;
        Ok(PostOutcome::Posted {
            chain: chain.clone(),
            root: share.root,
            leaves: share.leaves.len(),
            delay: if published.activated {
                0
            } else {
                settlement.deployment().delay
            },
            published,
        })
    }
}

/// Contract wallets (ERC-1271) are asked on the configured JSON-RPC chains as they are when the
/// signature is checked, so a chain an operator just added serves sign-in at once: a sign-in
/// message names its chain id, and the wallet's contract on that chain says whether it accepts
/// the signature.
impl ContractWallets for Chains {
    fn accepts(
        &self,
        chain_id: u64,
        wallet: &Address,
        digest: &Hash32,
        signature: &[u8],
    ) -> Option<Result<bool, String>> {
        let endpoints = match self.rpc_endpoints() {
            Ok(endpoints) => endpoints,
            Err(why) => return Some(Err(why.to_string())),
        };
        let (_, url) = endpoints.iter().find(|(id, _)| *id == chain_id)?;
        Some(caravan_chain::rpc::contract_accepts(
            url,
            self.http.clone(),
            alloy_primitives::Address::from(wallet.0),
            alloy_primitives::B256::from(digest.0),
            signature,
        ))
    }
}

/// The data directory's chains folder.
pub fn chains_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("chains")
}

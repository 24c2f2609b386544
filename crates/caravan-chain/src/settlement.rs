//! Settling epochs on a chain: deploy once (addresses recorded), fund, post each epoch's root
//! after checking it off chain, activate, claim, read what was claimed. The same code runs on
//! the embedded chain and on any JSON-RPC chain.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use alloy_primitives::{Address, B256, Bytes, U256, address};
use alloy_sol_types::{SolCall, SolConstructor, SolEvent, SolInterface};
use caravan_core::{EpochBundle, Leaf};
use serde::{Deserialize, Serialize};

use crate::chain::{Chain, ChainFault};
use crate::contracts::{AssetRegistry, CaravanToken, DepositVault, RoyaltyDistributor};
use crate::embedded::{ChainError, Receipt};
use crate::persistent::{PersistentEvm, StoreError};

/// Where the development token lands (the deployer's first contract).
pub const DEV_TOKEN: Address = address!("5FbDB2315678afecb367f032d93F642f64180aa3");
/// The development token's supply (10^12 whole tokens of 6 decimals), all held by the deployer.
const DEV_SUPPLY: u128 = 1_000_000_000_000 * 1_000_000;

/// The file in a chain's directory that records its contracts' addresses once deployed.
pub const DEPLOYMENT: &str = "deployment.json";

/// The contracts of one chain, recorded in the chain's directory after the first deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub token: Address,
    pub registry: Address,
    pub distributor: Address,
    /// Where payers and requesters deposit (absent in records written before deposits came in
    /// on chain; added the next time the chain is opened to write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<Address>,
    pub poster: Address,
    pub guardian: Address,
    /// Seconds a posted root waits before it can be activated.
    pub delay: u64,
    /// The chain's newest block just before the contracts were deployed: their logs come after
    /// it (0 in records written before it was kept, so those are read from the first block).
    #[serde(default)]
    pub first_block: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Chain(#[from] ChainFault),
    #[error("{path}: {why}")]
    Deployment { path: PathBuf, why: String },
    #[error("{what} failed: {why}")]
    Transaction { what: String, why: String },
    #[error(
        "epoch {epoch} would lower {account}'s cumulative amount of token {token} from {before} to {after}; a root may never lower anyone's entitlement"
    )]
    Lowered {
        epoch: u64,
        account: caravan_core::Address,
        token: caravan_core::Address,
        before: u128,
        after: u128,
    },
    #[error(
        "epoch {epoch} promises {promised} of token {token} but only {funded} was funded into the distributor {distributor}; {} more must be funded first",
        promised - funded
    )]
    Underfunded {
        epoch: u64,
        token: caravan_core::Address,
        promised: u128,
        funded: u128,
        distributor: Address,
    },
}

/// A deposit into caravan's vault as the chain holds it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultDeposit {
    pub block: u64,
    pub tx: caravan_core::Hash32,
    pub log_index: u64,
    /// Whose prepaid balance it fills.
    pub account: caravan_core::Address,
    pub token: caravan_core::Address,
    /// Who sent the money.
    pub from: caravan_core::Address,
    pub amount: u128,
}

/// What the distributor logged about a root: that it was posted, or activated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootLog {
    /// `true` for `RootActivated`, `false` for `RootPosted`.
    pub activated: bool,
    pub epoch: u64,
    pub root: caravan_core::Hash32,
    pub block: u64,
    pub tx: caravan_core::Hash32,
}

/// What posting an epoch needs: its number, its root and the leaves the root commits to. An
/// epoch bundle gives one (`(&bundle).into()`); so can any set of leaves.
#[derive(Clone, Copy, Debug)]
pub struct EpochRoot<'a> {
    pub epoch: u64,
    pub root: caravan_core::Hash32,
    pub leaves: &'a [Leaf],
}

impl<'a> From<&'a EpochBundle> for EpochRoot<'a> {
    fn from(bundle: &'a EpochBundle) -> EpochRoot<'a> {
        EpochRoot {
            epoch: bundle.epoch,
            root: bundle.root,
            leaves: &bundle.leaves,
        }
    }
}

/// What [`Settlement::publish`] did.
#[derive(Clone, Debug)]
pub struct Published {
    /// The post's receipt.
    pub posted: Receipt,
    /// What the root promises in all, per token.
    pub promised: Vec<(caravan_core::Address, u128)>,
    /// What was funded into the distributor from the node's account first, per token.
    pub funded_now: Vec<(caravan_core::Address, u128)>,
    /// Whether the root was activated too (no delay), so claims are open.
    pub activated: bool,
}

/// The most of each token a post may move from the node's own account into the distributor to
/// cover what the root promises beyond its funds (the operator's limit; the development token
/// needs none).
pub type FundingLimits = BTreeMap<caravan_core::Address, u128>;

/// A chain with caravan's contracts on it.
pub struct Settlement {
    chain: Box<dyn Chain>,
    deployment: Deployment,
}

impl Settlement {
    /// Opens the embedded chain kept in `dir`.
    pub fn open_embedded(dir: &Path, delay: u64, at: u64) -> Result<Settlement, SettleError> {
        let chain = PersistentEvm::open(dir)?;
        Settlement::open(dir, Box::new(chain), delay, at)
    }

    /// Uses `chain`, whose deployment is recorded in `dir`: on first use the contracts are
    /// deployed (the node's account posts roots and guards them, as on a development chain)
    /// and their addresses written down; afterwards the recorded addresses are checked to hold
    /// code and reused (and a deposit vault is added to a deployment recorded before vaults).
    /// This is the door for commands that write to the chain; readers use
    /// [`Settlement::attach`], which never deploys.
    pub fn open(
        dir: &Path,
        mut chain: Box<dyn Chain>,
        delay: u64,
        at: u64,
    ) -> Result<Settlement, SettleError> {
        std::fs::create_dir_all(dir).map_err(|e| SettleError::Deployment {
            path: dir.to_path_buf(),
            why: e.to_string(),
        })?;
        let path = dir.join(DEPLOYMENT);
        let deployment = match read_deployment(&path, chain.as_mut())? {
            Some(mut deployment) => {
                if deployment.vault.is_none() {
                    deployment.vault =
                        Some(deploy_vault(chain.as_mut(), deployment.distributor, at)?);
                    record(&path, &deployment)?;
                }
                deployment
            }
            None => {
                let deployment = deploy(chain.as_mut(), delay, at)?;
                record(&path, &deployment)?;
                deployment
            }
        };
        Ok(Settlement { chain, deployment })
    }

    /// Uses `chain` with the contracts recorded in `dir`, deploying nothing: `None` when
    /// caravan's contracts were never deployed there (nothing was ever posted or deposited).
    pub fn attach(
        dir: &Path,
        mut chain: Box<dyn Chain>,
    ) -> Result<Option<Settlement>, SettleError> {
        Ok(read_deployment(&dir.join(DEPLOYMENT), chain.as_mut())?
            .map(|deployment| Settlement { chain, deployment }))
    }

    /// The embedded chain kept in `dir`, deploying nothing (see [`Settlement::attach`]).
    pub fn attach_embedded(dir: &Path) -> Result<Option<Settlement>, SettleError> {
        if !dir.join(DEPLOYMENT).exists() {
            return Ok(None);
        }
        Settlement::attach(dir, Box::new(PersistentEvm::open(dir)?))
    }

    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// Funds the distributor with `amount` of the development token from the node's account.
    pub fn fund(&mut self, amount: u128, at: u64) -> Result<Receipt, SettleError> {
        let token = caravan_core::Address(self.deployment.token.into_array());
        self.fund_token(token, amount, at)
    }

    /// Funds the distributor with `amount` of `token` from the node's account, which must hold
    /// it: approves the distributor, then calls its `fund`.
    pub fn fund_token(
        &mut self,
        token: caravan_core::Address,
        amount: u128,
        at: u64,
    ) -> Result<Receipt, SettleError> {
        let d = self.deployment.clone();
        let token = Address::from(token.0);
        let approve = CaravanToken::approveCall {
            spender: d.distributor,
            value: U256::from(amount),
        };
        self.send(
            &format!(
                "approving the distributor {} to take {amount} of token {token}",
                d.distributor
            ),
            at,
            token,
            approve,
        )?;
        let fund = RoyaltyDistributor::fundCall {
            token,
            amount: U256::from(amount),
        };
        self.send(
            &format!(
                "funding the distributor {} with {amount} of token {token}",
                d.distributor
            ),
            at,
            d.distributor,
            fund,
        )
    }

    /// Deposits `amount` of `token` from the node's account into the vault for `account`:
    /// approves the vault, then calls its `deposit`. The node credits `account` when it follows
    /// the chain and finds the log.
    pub fn deposit(
        &mut self,
        token: caravan_core::Address,
        amount: u128,
        account: caravan_core::Address,
        at: u64,
    ) -> Result<Receipt, SettleError> {
        let vault = self.vault()?;
        let token = Address::from(token.0);
        let approve = CaravanToken::approveCall {
            spender: vault,
            value: U256::from(amount),
        };
        self.send(
            &format!("approving the deposit vault {vault} to take {amount} of token {token}"),
            at,
            token,
            approve,
        )?;
        let deposit = DepositVault::depositCall {
            token,
            amount: U256::from(amount),
            account: Address::from(account.0),
        };
        self.send(
            &format!("depositing {amount} of token {token} for {account}"),
            at,
            vault,
            deposit,
        )
    }

    /// The deposit vault, or an error when the deployment predates vaults and was only read.
    pub fn vault(&self) -> Result<Address, SettleError> {
        self.deployment.vault.ok_or_else(|| SettleError::Transaction {
            what: "finding the deposit vault".into(),
            why: "this chain's contracts were deployed before deposits came in on chain; the next post or `caravan chain fund` adds the vault".into(),
        })
    }

    /// The chain's newest block.
    pub fn head(&mut self) -> Result<u64, SettleError> {
        Ok(self.chain.head()?)
    }

    /// The deposits into the vault in blocks `from..=to`, in chain order (none when the
    /// deployment has no vault yet).
    pub fn deposits(&mut self, from: u64, to: u64) -> Result<Vec<VaultDeposit>, SettleError> {
        let Some(vault) = self.deployment.vault else {
            return Ok(Vec::new());
        };
        let logs = self
            .chain
            .logs(vault, DepositVault::Deposited::SIGNATURE_HASH, from, to)?;
        logs.into_iter()
            .map(|log| {
                let event = DepositVault::Deposited::decode_log_data(&log.data).map_err(|e| {
                    SettleError::Chain(ChainFault::Call(format!(
                        "the vault {vault} logged a deposit in transaction {} that does not decode: {e}",
                        log.tx
                    )))
                })?;
                let amount = u128::try_from(event.amount).map_err(|_| {
                    SettleError::Chain(ChainFault::Call(format!(
                        "the deposit in transaction {} is over 2^128 base units",
                        log.tx
                    )))
                })?;
                Ok(VaultDeposit {
                    block: log.block,
                    tx: caravan_core::Hash32(log.tx.0),
                    log_index: log.log_index,
                    account: caravan_core::Address(event.account.into_array()),
                    token: caravan_core::Address(event.token.into_array()),
                    from: caravan_core::Address(event.from.into_array()),
                    amount,
                })
            })
            .collect()
    }

    /// What the distributor logged in blocks `from..=to` about roots (posted and activated),
    /// in chain order: the chain's own record of every epoch ever posted there.
    pub fn root_logs(&mut self, from: u64, to: u64) -> Result<Vec<RootLog>, SettleError> {
        let distributor = self.deployment.distributor;
        let mut logs = Vec::new();
        for (activated, topic) in [
            (false, RoyaltyDistributor::RootPosted::SIGNATURE_HASH),
            (true, RoyaltyDistributor::RootActivated::SIGNATURE_HASH),
        ] {
            for log in self.chain.logs(distributor, topic, from, to)? {
                let undecodable = |e: alloy_sol_types::Error| {
                    SettleError::Chain(ChainFault::Call(format!(
                        "the distributor {distributor} logged a root in transaction {} that does not decode: {e}",
                        log.tx
                    )))
                };
                let (epoch, root) = if activated {
                    let event = RoyaltyDistributor::RootActivated::decode_log_data(&log.data)
                        .map_err(undecodable)?;
                    (event.epoch, event.root)
                } else {
                    let event = RoyaltyDistributor::RootPosted::decode_log_data(&log.data)
                        .map_err(undecodable)?;
                    (event.epoch, event.root)
                };
                logs.push((
                    (log.block, log.log_index),
                    RootLog {
                        activated,
                        epoch,
                        root: caravan_core::Hash32(root.0),
                        block: log.block,
                        tx: caravan_core::Hash32(log.tx.0),
                    },
                ));
            }
        }
        logs.sort_by_key(|(place, _)| *place);
        Ok(logs.into_iter().map(|(_, log)| log).collect())
    }

    /// Checks `bundle` against the previous posted one (nobody's cumulative amount goes down)
    /// and against the distributor's funds, then posts its root.
    pub fn post(
        &mut self,
        bundle: EpochRoot<'_>,
        previous: Option<EpochRoot<'_>>,
        at: u64,
    ) -> Result<Receipt, SettleError> {
        if let Some(previous) = previous {
            check_not_lowered(bundle, previous)?;
        }
        let mut totals: BTreeMap<caravan_core::Address, u128> = BTreeMap::new();
        for leaf in bundle.leaves {
            *totals.entry(leaf.token).or_default() += leaf.cumulative;
        }
        for (token, promised) in &totals {
            let funded = self.funded_raw(Address::from(token.0))?;
            if *promised > funded {
                return Err(SettleError::Underfunded {
                    epoch: bundle.epoch,
                    token: *token,
                    promised: *promised,
                    funded,
                    distributor: self.deployment.distributor,
                });
            }
        }
        let call = RoyaltyDistributor::postRootCall {
            root: B256::from(bundle.root.0),
            epoch: bundle.epoch,
            totals: totals
                .iter()
                .map(|(token, cumulative)| RoyaltyDistributor::TokenTotal {
                    token: Address::from(token.0),
                    cumulative: U256::from(*cumulative),
                })
                .collect(),
        };
        let distributor = self.deployment.distributor;
        self.send(
            &format!("posting the root of epoch {}", bundle.epoch),
            at,
            distributor,
            call,
        )
    }

    /// Posts an epoch's root the way a node settles: whatever the root promises in a token
    /// beyond what the distributor holds is funded from the node's account first when
    /// `funding` allows it (the development token, which the node minted, always; any other
    /// token up to its limit there — a larger shortfall is left for whoever holds the token, and
    /// the post then fails naming it), the root is posted (checked against `previous` and the
    /// funds, see [`Settlement::post`]), and activated at once when the distributor has no
    /// delay.
    pub fn publish(
        &mut self,
        epoch: EpochRoot<'_>,
        previous: Option<EpochRoot<'_>>,
        funding: &FundingLimits,
        at: u64,
    ) -> Result<Published, SettleError> {
        let mut promised: BTreeMap<caravan_core::Address, u128> = BTreeMap::new();
        for leaf in epoch.leaves {
            *promised.entry(leaf.token).or_default() += leaf.cumulative;
        }
        let development = caravan_core::Address(self.deployment.token.into_array());
        let mut funded_now = Vec::new();
        for (token, owed) in &promised {
            let shortfall = owed.saturating_sub(self.funded(*token)?);
            let allowed = if *token == development {
                u128::MAX
            } else {
                funding.get(token).copied().unwrap_or(0)
            };
            if shortfall > 0 && shortfall <= allowed {
                self.fund_token(*token, shortfall, at)?;
                funded_now.push((*token, shortfall));
            }
        }
        let posted = self.post(epoch, previous, at)?;
        let activated = self.deployment.delay == 0;
        if activated {
            self.activate(at)?;
        }
        Ok(Published {
            posted,
            promised: promised.into_iter().collect(),
            funded_now,
            activated,
        })
    }

    /// The pending root's epoch and the time (seconds) from which it can be activated; `None`
    /// when no root is pending or the guardian paused it.
    pub fn pending_activation(&mut self) -> Result<Option<(u64, u64)>, SettleError> {
        let d = self.deployment.distributor;
        let since = self.read(d, RoyaltyDistributor::pendingSinceCall {})?;
        if since == 0 || self.read(d, RoyaltyDistributor::pendingPausedCall {})? {
            return Ok(None);
        }
        let epoch = self.read(d, RoyaltyDistributor::pendingEpochCall {})?;
        Ok(Some((epoch, since + self.deployment.delay)))
    }

    /// Activates the pending root once its delay is over.
    pub fn activate(&mut self, at: u64) -> Result<Receipt, SettleError> {
        let d = self.deployment.clone();
        let call = RoyaltyDistributor::activateCall {};
        self.send("activating the pending root", at, d.distributor, call)
    }

    /// Claims `leaf` with `proof` against `root`, submitted by the node's account and paid to
    /// the leaf's account. Returns the receipt; the amount paid is `cumulative − already claimed`.
    pub fn claim(
        &mut self,
        leaf: &Leaf,
        proof: &[caravan_core::Hash32],
        root: caravan_core::Hash32,
        at: u64,
    ) -> Result<Receipt, SettleError> {
        let call = claim_call(leaf, proof, root);
        let distributor = self.deployment.distributor;
        self.send(
            &format!("claiming for {}", leaf.account),
            at,
            distributor,
            call,
        )
    }

    /// Registers an asset in the on-chain registry unless it is there already (so anchoring
    /// the lineage again is harmless). Parents must be anchored first; returns whether a
    /// transaction was sent.
    pub fn anchor_asset(
        &mut self,
        id: caravan_core::AssetId,
        owner: caravan_core::Address,
        parents: &[caravan_core::AssetId],
        licence_hash: caravan_core::Hash32,
        at: u64,
    ) -> Result<bool, SettleError> {
        let registry = self.deployment.registry;
        let id = B256::from(id.0.0);
        let existing: Address = self.read(registry, AssetRegistry::ownerOfCall(id))?;
        if existing != Address::ZERO {
            return Ok(false);
        }
        let call = AssetRegistry::registerCall {
            id,
            owner: Address::from(owner.0),
            parents: parents.iter().map(|p| B256::from(p.0.0)).collect(),
            licenceHash: B256::from(licence_hash.0),
        };
        self.send(&format!("registering asset {id}"), at, registry, call)?;
        Ok(true)
    }

    /// What `account` has claimed of `token` so far.
    pub fn claimed(
        &mut self,
        account: caravan_core::Address,
        token: caravan_core::Address,
    ) -> Result<u128, SettleError> {
        let call = RoyaltyDistributor::claimedCall {
            account: Address::from(account.0),
            token: Address::from(token.0),
        };
        Ok(self.read(self.deployment.distributor, call)?.to::<u128>())
    }

    /// The development token balance of `account`.
    pub fn balance(&mut self, account: caravan_core::Address) -> Result<u128, SettleError> {
        let call = CaravanToken::balanceOfCall(Address::from(account.0));
        Ok(self.read(self.deployment.token, call)?.to::<u128>())
    }

    /// The root claims are checked against now (zero before the first activation).
    pub fn active_root(&mut self) -> Result<caravan_core::Hash32, SettleError> {
        let root: B256 = self.read(
            self.deployment.distributor,
            RoyaltyDistributor::activeRootCall {},
        )?;
        Ok(caravan_core::Hash32(root.0))
    }

    /// The epochs of the active and of the pending root (0 when none), and the pending root.
    pub fn epochs(&mut self) -> Result<(u64, u64, caravan_core::Hash32), SettleError> {
        let d = self.deployment.distributor;
        let active = self.read(d, RoyaltyDistributor::activeEpochCall {})?;
        let pending = self.read(d, RoyaltyDistributor::pendingEpochCall {})?;
        let root: B256 = self.read(d, RoyaltyDistributor::pendingRootCall {})?;
        Ok((active, pending, caravan_core::Hash32(root.0)))
    }

    /// What the distributor may still promise of `token` in total (everything funded).
    pub fn funded(&mut self, token: caravan_core::Address) -> Result<u128, SettleError> {
        self.funded_raw(Address::from(token.0))
    }

    fn funded_raw(&mut self, token: Address) -> Result<u128, SettleError> {
        let call = RoyaltyDistributor::fundedCall { token };
        Ok(self.read(self.deployment.distributor, call)?.to::<u128>())
    }

    fn read<C: SolCall>(&mut self, to: Address, call: C) -> Result<C::Return, SettleError> {
        let out = self.chain.call(to, Bytes::from(call.abi_encode()))?;
        C::abi_decode_returns(&out).map_err(|e| {
            SettleError::Chain(ChainFault::Call(format!(
                "{to} answered {} bytes that do not decode: {e}; is this caravan's contract?",
                out.len()
            )))
        })
    }

    fn send<C: SolCall>(
        &mut self,
        what: &str,
        at: u64,
        to: Address,
        call: C,
    ) -> Result<Receipt, SettleError> {
        self.chain
            .send(at, Some(to), call.abi_encode().into())?
            .map_err(|e| SettleError::Transaction {
                what: what.to_owned(),
                why: explain(e),
            })
    }
}

/// The deployment recorded at `path`, its contracts checked to hold code; `None` when none is
/// recorded.
/// The distributor's `claim` of `leaf` with `proof` against `root`.
fn claim_call(
    leaf: &Leaf,
    proof: &[caravan_core::Hash32],
    root: caravan_core::Hash32,
) -> RoyaltyDistributor::claimCall {
    RoyaltyDistributor::claimCall {
        account: Address::from(leaf.account.0),
        token: Address::from(leaf.token.0),
        cumulative: U256::from(leaf.cumulative),
        expectedRoot: B256::from(root.0),
        proof: proof.iter().map(|h| B256::from(h.0)).collect(),
    }
}

/// The calldata of the distributor's `claim(account, token, cumulative, expectedRoot, proof)`
/// for `leaf`: what a wallet sends to the distributor to claim it itself.
pub fn claim_calldata(
    leaf: &Leaf,
    proof: &[caravan_core::Hash32],
    root: caravan_core::Hash32,
) -> Vec<u8> {
    claim_call(leaf, proof, root).abi_encode()
}

/// The two calls a wallet sends to deposit `amount` of `token` into `vault` for `account`: the
/// token's `approve` of the vault, then the vault's `deposit`. Each is (contract, calldata).
pub fn deposit_calldata(
    vault: caravan_core::Address,
    token: caravan_core::Address,
    amount: u128,
    account: caravan_core::Address,
) -> [(caravan_core::Address, Vec<u8>); 2] {
    let approve = CaravanToken::approveCall {
        spender: Address::from(vault.0),
        value: U256::from(amount),
    };
    let deposit = DepositVault::depositCall {
        token: Address::from(token.0),
        amount: U256::from(amount),
        account: Address::from(account.0),
    };
    [(token, approve.abi_encode()), (vault, deposit.abi_encode())]
}

fn read_deployment(path: &Path, chain: &mut dyn Chain) -> Result<Option<Deployment>, SettleError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(SettleError::Deployment {
                path: path.to_path_buf(),
                why: e.to_string(),
            });
        }
    };
    let deployment: Deployment =
        serde_json::from_str(&text).map_err(|e| SettleError::Deployment {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
    for contract in [
        Some(deployment.token),
        Some(deployment.registry),
        Some(deployment.distributor),
        deployment.vault,
    ]
    .into_iter()
    .flatten()
    {
        if !chain.has_code(contract)? {
            return Err(SettleError::Deployment {
                path: path.to_path_buf(),
                why: format!(
                    "no contract at recorded address {contract}; the chain's journal and its deployment record disagree"
                ),
            });
        }
    }
    Ok(Some(deployment))
}

fn record(path: &Path, deployment: &Deployment) -> Result<(), SettleError> {
    write_atomically(
        path,
        &serde_json::to_vec_pretty(deployment).expect("serialises"),
    )
    .map_err(|e| SettleError::Deployment {
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}

fn deploy_vault(
    chain: &mut dyn Chain,
    distributor: Address,
    at: u64,
) -> Result<Address, SettleError> {
    let mut code = DepositVault::BYTECODE.to_vec();
    code.extend(
        DepositVault::constructorCall {
            distributor_: distributor,
        }
        .abi_encode(),
    );
    chain
        .send(at, None, code.into())?
        .map_err(|e| SettleError::Transaction {
            what: "deploying the deposit vault".into(),
            why: explain(e),
        })
        .map(|r| r.created.expect("a deployment creates a contract"))
}

fn deploy(chain: &mut dyn Chain, delay: u64, at: u64) -> Result<Deployment, SettleError> {
    let node = chain.sender();
    let first_block = chain.head()?;
    let mut create = |what: &str, mut code: Vec<u8>, args: Vec<u8>| {
        code.extend(args);
        chain
            .send(at, None, code.into())?
            .map_err(|e| SettleError::Transaction {
                what: format!("deploying the {what}"),
                why: explain(e),
            })
            .map(|r| r.created.expect("a deployment creates a contract"))
    };
    let token = create(
        "development token",
        CaravanToken::BYTECODE.to_vec(),
        CaravanToken::constructorCall {
            name_: "caravan dev USD".into(),
            symbol_: "USDC".into(),
            decimals_: 6,
            holder: node,
            supply: U256::from(DEV_SUPPLY),
        }
        .abi_encode(),
    )?;
    let registry = create(
        "asset registry",
        AssetRegistry::BYTECODE.to_vec(),
        Vec::new(),
    )?;
    let distributor = create(
        "royalty distributor",
        RoyaltyDistributor::BYTECODE.to_vec(),
        RoyaltyDistributor::constructorCall {
            poster_: node,
            guardian_: node,
            delay_: U256::from(delay),
        }
        .abi_encode(),
    )?;
    let vault = deploy_vault(chain, distributor, at)?;
    Ok(Deployment {
        token,
        registry,
        distributor,
        vault: Some(vault),
        poster: node,
        guardian: node,
        delay,
        first_block,
    })
}

/// Every leaf of `previous` must appear in `bundle` with at least the same cumulative amount.
fn check_not_lowered(bundle: EpochRoot<'_>, previous: EpochRoot<'_>) -> Result<(), SettleError> {
    let now: BTreeMap<_, _> = bundle
        .leaves
        .iter()
        .map(|l| ((l.account, l.token), l.cumulative))
        .collect();
    for leaf in previous.leaves {
        let after = now.get(&(leaf.account, leaf.token)).copied().unwrap_or(0);
        if after < leaf.cumulative {
            return Err(SettleError::Lowered {
                epoch: bundle.epoch,
                account: leaf.account,
                token: leaf.token,
                before: leaf.cumulative,
                after,
            });
        }
    }
    Ok(())
}

/// A revert as a person reads it: the distributor's or registry's named error when it is one.
fn explain(error: ChainError) -> String {
    match &error {
        ChainError::Reverted { data, .. } => {
            if let Ok(e) = RoyaltyDistributor::RoyaltyDistributorErrors::abi_decode(data) {
                return format!("the distributor reverted with {e:?}");
            }
            if let Ok(e) = AssetRegistry::AssetRegistryErrors::abi_decode(data) {
                return format!("the registry reverted with {e:?}");
            }
            if let Ok(e) = DepositVault::DepositVaultErrors::abi_decode(data) {
                return format!("the deposit vault reverted with {e:?}");
            }
            error.to_string()
        }
        _ => error.to_string(),
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let partial = path.with_extension("partial");
    let mut file = std::fs::File::create(&partial)?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.sync_all()?;
    std::fs::rename(&partial, path)
}

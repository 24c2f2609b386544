//! The services of a caravan node, which both the HTTP routes (`caravan-server`) and the command
//! line call: no HTTP is served here, and no rule that `caravan-core` or `caravan-tasks` owns is
//! decided here.
//!
//! - [`desk::Desk`] keeps the data-task boards in step with the durable log;
//! - [`gateway::Gateway`] serves paid calls to models, metered and receipted;
//! - [`keys::Keys`] issues and checks the API keys programs act with;
//! - [`sessions::Sessions`] signs people in with their wallets (EIP-4361);
//! - [`deposits::DepositFollower`] credits what payers and requesters deposit on chain;
//! - [`rhythm::Rhythm`] closes epochs on schedule and settles them on the home chain;
//! - [`earnings::Earnings`] tells an account what it earned, where from, and what it can claim;
//! - [`meter::Meter`] holds money for calls in flight and budgets being escrowed, so that two
//!   spenders of one prepaid balance never count the same money twice.
//!
//! [`Node`] opens them together over one journal and says who a request's caller is
//! ([`auth`]): every service acts for the account the credentials prove, never one a request
//! names.

pub mod access;
pub mod auth;
pub mod chains;
pub mod deposits;
pub mod desk;
pub mod earnings;
pub mod gateway;
pub mod keys;
pub mod meter;
pub mod operator;
pub mod rhythm;
pub mod sessions;
pub mod settlement;
pub mod training;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use caravan_chain::settlement::FundingLimits;
use caravan_core::Address;
use caravan_models::ArtifactStore;
use caravan_store::{Journal, SharedJournal, now_ms};

use auth::{AuthError, Caller, Credentials, Via};
use chains::ChainDirectory;
use deposits::DepositFollower;
use desk::{Clock, Desk, DeskError};
use earnings::Earnings;
use gateway::receipt::NodeSigner;
use gateway::{ChargeDurability, Gateway, GatewayError};
use keys::{Keys, KeysError, Scope};
use meter::Meter;
use sessions::origin::PublicOrigin;
use sessions::{ContractWallets, Sessions, SignInPolicy};
use settlement::{Chains, ChainsError};

/// Why a node could not open.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Desk(#[from] DeskError),
    #[error(transparent)]
    Keys(#[from] KeysError),
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error(transparent)]
    Chains(#[from] ChainsError),
}

/// A node's services over one journal. Cheap to share: wrap it in an `Arc`.
pub struct Node {
    journal: Arc<SharedJournal>,
    desk: Arc<Desk>,
    earnings: Arc<Earnings>,
    keys: Arc<Keys>,
    gateway: Arc<Gateway>,
    sessions: Arc<Sessions>,
    operators: BTreeSet<Address>,
    /// The chains it settles on, when its store keeps their configuration (a data directory).
    settlement: Option<Arc<Chains>>,
    /// Follows those chains' deposits.
    deposits: Option<Arc<DepositFollower>>,
    /// How much the node may fund a distributor with from its own account when it posts.
    funding: FundingLimits,
}

/// What a node is opened with; everything but the journal, the artifact store and the signer
/// has a default.
pub struct NodeBuilder {
    journal: Journal,
    artifacts: ArtifactStore,
    signer: NodeSigner,
    clock: Clock,
    chains: ChainDirectory,
    durability: ChargeDurability,
    models_dir: Option<PathBuf>,
    http: Option<reqwest::Client>,
    sign_in: Option<SignInPolicy>,
    wallets: Option<Arc<dyn ContractWallets>>,
    operators: BTreeSet<Address>,
    settlement: Option<Arc<Chains>>,
    funding: FundingLimits,
}

/// Where a node that was not told its public URL says people reach it: the default listening
/// address.
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

impl Node {
    /// Starts building a node over `journal`, serving classifiers from `artifacts` and signing
    /// receipts with `signer`.
    pub fn builder(journal: Journal, artifacts: ArtifactStore, signer: NodeSigner) -> NodeBuilder {
        NodeBuilder {
            journal,
            artifacts,
            signer,
            clock: Arc::new(now_ms),
            chains: ChainDirectory::default(),
            durability: ChargeDurability::default(),
            models_dir: None,
            http: None,
            sign_in: None,
            wallets: None,
            operators: BTreeSet::new(),
            settlement: None,
            funding: FundingLimits::new(),
        }
    }

    pub fn desk(&self) -> &Arc<Desk> {
        &self.desk
    }

    pub fn earnings(&self) -> &Arc<Earnings> {
        &self.earnings
    }

    pub fn keys(&self) -> &Arc<Keys> {
        &self.keys
    }

    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    pub fn journal(&self) -> &Arc<SharedJournal> {
        &self.journal
    }

    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.sessions
    }

    /// The chains the node settles on, if its store keeps their configuration.
    pub fn settlement(&self) -> Option<&Arc<Chains>> {
        self.settlement.as_ref()
    }

    /// What credits deposits made on the chains the node settles on, if it settles on any.
    pub fn deposits(&self) -> Option<&Arc<DepositFollower>> {
        self.deposits.as_ref()
    }

    /// The most of each token a post may move from the node's own account into a distributor.
    pub fn funding_limits(&self) -> &FundingLimits {
        &self.funding
    }

    /// Whether `account` may do operator work here.
    pub fn is_operator(&self, account: &Address) -> bool {
        self.operators.contains(account)
    }

    /// The caller a request's credentials prove, if it may do what `scope` allows: an API key
    /// (when the request sends one) with that scope, else the session — which may do anything
    /// its account may.
    pub fn authenticate(
        &self,
        credentials: Credentials<'_>,
        scope: Scope,
    ) -> Result<Caller, AuthError> {
        if credentials.authorization.is_some() {
            let key = self.keys.authenticate(credentials.authorization, scope)?;
            return Ok(Caller {
                account: key.payer,
                via: Via::Key(key),
            });
        }
        match credentials.session {
            Some(secret) => self.session_caller(secret),
            None => Err(AuthError::Unauthenticated(scope)),
        }
    }

    /// The caller signed in with a session (an API key will not do).
    pub fn authenticate_session(&self, credentials: Credentials<'_>) -> Result<Caller, AuthError> {
        self.session_caller(credentials.session.ok_or(AuthError::SessionRequired)?)
    }

    fn session_caller(&self, secret: &str) -> Result<Caller, AuthError> {
        let session = self.sessions.authenticate(secret)?;
        Ok(Caller {
            account: session.account,
            via: Via::Session {
                expires_ms: session.expires_ms,
            },
        })
    }

    /// The caller, if it is an operator signed in with a session (operator work is done at a
    /// browser or with `caravan`, never with an API key a program holds).
    pub fn authenticate_operator(&self, credentials: Credentials<'_>) -> Result<Caller, AuthError> {
        let secret = credentials
            .session
            .ok_or(AuthError::OperatorUnauthenticated)?;
        let caller = self.session_caller(secret)?;
        if !self.is_operator(&caller.account) {
            return Err(AuthError::NotOperator {
                account: caller.account,
            });
        }
        Ok(caller)
    }

    /// Stops the services and hands the journal back, for commands that go on with the
    /// economy after serving; an error if a service is still shared elsewhere.
    pub fn into_journal(self) -> Result<Journal, String> {
        let Node {
            journal,
            desk,
            earnings,
            keys,
            gateway,
            sessions,
            settlement,
            deposits,
            ..
        } = self;
        drop((
            earnings, desk, keys, gateway, sessions, settlement, deposits,
        ));
        Arc::try_unwrap(journal)
            .map(SharedJournal::into_inner)
            .map_err(|_| "a service of the node is still in use elsewhere".to_owned())
    }
}

impl NodeBuilder {
    /// Reads time from `clock` (milliseconds since the Unix epoch) for the task platform's
    /// leases, minimum times and daily caps: simulations run a day of work in moments.
    pub fn clock(mut self, clock: Clock) -> NodeBuilder {
        self.clock = clock;
        self
    }

    /// The chains accounts may choose to be paid on (without them, only home).
    pub fn chains(mut self, chains: ChainDirectory) -> NodeBuilder {
        self.chains = chains;
        self
    }

    /// Settles on the chains configured in `chains`, which also say which chains accounts may
    /// choose and sign in on, and where contract wallets are asked (unless
    /// [`NodeBuilder::contract_wallets`] names another judge); operators manage them and post
    /// roots through the node.
    pub fn settlement(mut self, chains: Chains) -> Result<NodeBuilder, ChainsError> {
        self.chains = chains.directory()?;
        let chains = Arc::new(chains);
        if self.wallets.is_none() {
            self.wallets = Some(chains.clone());
        }
        self.settlement = Some(chains);
        Ok(self)
    }

    /// When paid calls are answered relative to their charge's commit.
    pub fn charge_durability(mut self, durability: ChargeDurability) -> NodeBuilder {
        self.durability = durability;
        self
    }

    /// Where installed models (the sentence encoder) are read from.
    pub fn models_dir(mut self, dir: PathBuf) -> NodeBuilder {
        self.models_dir = Some(dir);
        self
    }

    /// The client that forwards to upstream model servers (see [`Gateway::with_http_client`]).
    pub fn http_client(mut self, http: reqwest::Client) -> NodeBuilder {
        self.http = Some(http);
        self
    }

    /// What sign-in messages must name (the public origin, the chains); by default
    /// [`DEFAULT_PUBLIC_URL`] and the chains given to [`NodeBuilder::chains`].
    pub fn sign_in(mut self, policy: SignInPolicy) -> NodeBuilder {
        self.sign_in = Some(policy);
        self
    }

    /// Checks contract wallets' sign-in signatures (ERC-1271) through `wallets`.
    pub fn contract_wallets(mut self, wallets: Arc<dyn ContractWallets>) -> NodeBuilder {
        self.wallets = Some(wallets);
        self
    }

    /// The accounts whose sessions may do operator work.
    pub fn operators(mut self, operators: impl IntoIterator<Item = Address>) -> NodeBuilder {
        self.operators.extend(operators);
        self
    }

    /// Lets posts fund a distributor's shortfall in each token from the node's own account, up
    /// to the limit given per token (none by default; the development token needs none).
    pub fn funding_limits(mut self, funding: FundingLimits) -> NodeBuilder {
        self.funding = funding;
        self
    }

    /// Opens every service: the boards, the keys and the gateway's catalogue are rebuilt from
    /// the log.
    pub fn open(self) -> Result<Node, NodeError> {
        let policy = self.sign_in.unwrap_or_else(|| SignInPolicy {
            origin: PublicOrigin::parse(DEFAULT_PUBLIC_URL).expect("the default URL parses"),
            chain_ids: self.chains.chains().map(|chain| chain.chain_id).collect(),
        });
        let journal = Arc::new(SharedJournal::new(self.journal));
        let meter = Arc::new(Meter::default());
        let mut sessions = Sessions::new(Arc::clone(&journal), policy, Arc::clone(&self.clock));
        if let Some(wallets) = self.wallets {
            sessions = sessions.with_contract_wallets(wallets);
        }
        let desk = Desk::over(Arc::clone(&journal), Arc::clone(&meter), self.clock)?
            .with_chains(self.chains);
        let keys = Arc::new(Keys::open(Arc::clone(&journal), self.signer.address())?);
        let mut gateway = Gateway::open(
            Arc::clone(&journal),
            meter,
            Arc::clone(&keys),
            self.artifacts,
            self.signer,
        )?
        .with_charge_durability(self.durability);
        if let Some(dir) = self.models_dir {
            gateway = gateway.with_models_dir(dir);
        }
        if let Some(http) = self.http {
            gateway = gateway.with_http_client(http);
        }
        let deposits = self.settlement.as_ref().map(|chains| {
            Arc::new(DepositFollower::new(
                Arc::clone(chains),
                Arc::clone(&journal),
            ))
        });
        let desk = Arc::new(desk);
        let earnings = Arc::new(Earnings::new(
            Arc::clone(&journal),
            Arc::clone(&desk),
            self.settlement.clone(),
        ));
        Ok(Node {
            deposits,
            journal,
            desk,
            earnings,
            keys,
            gateway: Arc::new(gateway),
            sessions: Arc::new(sessions),
            operators: self.operators,
            settlement: self.settlement,
            funding: self.funding,
        })
    }
}

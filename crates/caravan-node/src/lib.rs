//! The services of a caravan node, which both the HTTP routes (`caravan-server`) and the command
//! line call: no HTTP is served here, and no rule that `caravan-core` or `caravan-tasks` owns is
//! decided here.
//!
//! - [`desk::Desk`] keeps the data-task boards in step with the durable log;
//! - [`gateway::Gateway`] serves paid calls to models, metered and receipted;
//! - [`keys::Keys`] issues and checks the API keys programs act with;
//! - [`meter::Meter`] holds money for calls in flight and budgets being escrowed, so that two
//!   spenders of one prepaid balance never count the same money twice.
//!
//! [`Node`] opens them together over one journal.

pub mod access;
pub mod chains;
pub mod desk;
pub mod gateway;
pub mod keys;
pub mod meter;

use std::path::PathBuf;
use std::sync::Arc;

use caravan_models::ArtifactStore;
use caravan_store::{Journal, SharedJournal, now_ms};

use chains::ChainDirectory;
use desk::{Clock, Desk, DeskError};
use gateway::receipt::NodeSigner;
use gateway::{ChargeDurability, Gateway, GatewayError};
use keys::{Keys, KeysError};
use meter::Meter;

/// Why a node could not open.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Desk(#[from] DeskError),
    #[error(transparent)]
    Keys(#[from] KeysError),
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}

/// A node's services over one journal. Cheap to share: wrap it in an `Arc`.
pub struct Node {
    journal: Arc<SharedJournal>,
    desk: Arc<Desk>,
    keys: Arc<Keys>,
    gateway: Arc<Gateway>,
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
}

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
        }
    }

    pub fn desk(&self) -> &Arc<Desk> {
        &self.desk
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

    /// Stops the services and hands the journal back, for commands that go on with the
    /// economy after serving; an error if a service is still shared elsewhere.
    pub fn into_journal(self) -> Result<Journal, String> {
        let Node {
            journal,
            desk,
            keys,
            gateway,
        } = self;
        drop((desk, keys, gateway));
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

    /// Opens every service: the boards, the keys and the gateway's catalogue are rebuilt from
    /// the log.
    pub fn open(self) -> Result<Node, NodeError> {
        let journal = Arc::new(SharedJournal::new(self.journal));
        let meter = Arc::new(Meter::default());
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
        Ok(Node {
            journal,
            desk: Arc::new(desk),
            keys,
            gateway: Arc::new(gateway),
        })
    }
}

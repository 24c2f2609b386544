//! The OpenAI-compatible gateway: the model catalogue, metering and signed receipts.
//!
//! Every paid call goes the same way: authenticate the key ([`crate::keys`]), resolve the model
//! ([`catalogue`]), hold the call's maximum cost against the payer's prepaid balance
//! ([`crate::meter`]), run the model, commit one `CallMetered` event with the actual cost
//! (durable before the answer is sent, unless the node chose [`ChargeDurability::Queued`]),
//! release the hold, and answer with a receipt signed by the node ([`charge`]). The HTTP routes
//! that put it on the wire in OpenAI's format live in `caravan-server`.

pub mod agent;
pub mod answer;
pub mod attestations;
pub mod balance;
pub mod catalogue;
pub mod charge;
pub mod chat;
pub mod classify;
pub mod embeddings;
pub mod idempotency;
pub mod receipt;
pub mod upstream;
pub mod usage;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use caravan_core::{Address, Amount, AssetId, AssetKind, Event, Hash32, Lane};
use caravan_models::{ArtifactStore, Classifier};
use caravan_store::{JournalError, QueuedCommit, SharedJournal, now_ms};
use serde_json::Value;

use crate::access::{self, AccessError};
use crate::keys::{ApiKey, KeyError, Keys, Scope};
use crate::meter::Meter;
use agent::AgentProgram;
use catalogue::{Registry, ServingRecord};
use embeddings::{EncoderServing, EncoderSlot};
use idempotency::Idempotency;
use receipt::NodeSigner;
use upstream::Upstream;

/// The most inputs one classification request may carry.
pub const MAX_INPUTS: usize = 2_048;

/// Why a gateway request failed. Nothing was charged for any of these.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    BadParam { param: String, message: String },
    #[error("the model {0:?} does not exist; GET /v1/models lists the models this node serves")]
    UnknownModel(String),
    #[error("{0}")]
    NotServed(String),
    #[error(
        "the balance of {payer} cannot pay this call: it needs {needed} base units of {token}, and {available} are available (the balance less calls in flight). Deposit more, then retry"
    )]
    InsufficientQuota {
        payer: Address,
        token: Address,
        needed: Amount,
        available: Amount,
    },
    /// A chat call's reserve is above the balance: the gateway holds the most the call can
    /// cost, which `max_tokens` bounds, so a smaller `max_tokens` may fit where the call would.
    #[error(
        "the balance of {payer} cannot cover this chat call's reserve: before a call runs the gateway holds the most it can cost, here {needed} base units of {token} for up to {completion_tokens} completion tokens (the request's max_tokens, or 4096 when it sets none) and a prompt of up to {prompt_tokens} tokens, and {available} are available (the balance less calls in flight). {}",
        match fits {
            Some(0) | None => "Deposit more, then retry".to_string(),
            Some(tokens) => format!("Send max_tokens of at most {tokens}, which the balance covers, or deposit more"),
        }
    )]
    ChatReserveTooLarge {
        payer: Address,
        token: Address,
        needed: Amount,
        available: Amount,
        completion_tokens: u64,
        prompt_tokens: u64,
        /// The largest `max_tokens` the available balance covers, if any.
        fits: Option<u64>,
    },
    #[error(
        "the attestation is signed by {signer}, not by the validator it names, {validator}; a validator signs its own attestations with its own key"
    )]
    NotValidatorsSignature { signer: Address, validator: Address },
    /// The economy refused an asset's registration (an operator's request).
    #[error("the economy refused the registration: {0}")]
    Refused(String),
    /// The economy refused the charge of a call the gateway had priced and reserved: the two
    /// disagree, a fault in the node; nothing was charged.
    #[error(
        "the economy refused the charge ({0}); nothing was charged. This is a fault in the node, not in the request: please report it"
    )]
    ChargeRefused(String),
    /// Something inside the node failed (a task that panicked, a client it could not make).
    #[error("the node failed inside: {0}")]
    Internal(String),
    #[error("the upstream server of {model} failed: {why}")]
    Upstream { model: String, why: String },
    #[error("storage is unavailable; nothing was charged, retry: {0}")]
    Store(#[from] JournalError),
    #[error(transparent)]
    Corrupt(#[from] AccessError),
}

/// When a call's answer may be sent, relative to its charge reaching the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChargeDurability {
    /// After the charge is durable (the group commit's fsync): a crash never loses a charge
    /// that was answered. The default.
    #[default]
    Committed,
    /// As soon as the charge is applied and queued for a group commit that starts within
    /// [`QUEUED_CHARGES_COMMIT_WITHIN`], which a thread of the gateway then waits for. Balances
    /// and holds are exact either way (they are checked in memory), and a retry is never charged
    /// twice; but a crash, or a failed commit, before that commit loses those charges — their
    /// calls go unpaid. This saves the commit's wait (one fsync) on every answer, and the window
    /// lets a stream of calls share one sync instead of paying one each.
    Queued,
}

/// How long a queued charge may wait for its commit to start, gathering others to share the
/// sync: the most (besides the commit itself) a crash can lose with [`ChargeDurability::Queued`].
pub const QUEUED_CHARGES_COMMIT_WITHIN: std::time::Duration = std::time::Duration::from_millis(5);

/// How long a kept answer may wait for a commit to carry it to the store. Answers ride along
/// with the charges' commits; one lost to a crash in between only leaves its retry told that the
/// call was served instead of given the answer again.
pub const KEPT_ANSWERS_COMMIT_WITHIN: std::time::Duration = std::time::Duration::from_millis(50);

/// A served call's answer and its signed receipt.
pub struct Served {
    pub body: Value,
    /// The receipt JSON exactly as signed.
    pub receipt: String,
    /// The node's EIP-191 signature over `receipt`.
    pub signature: String,
}

/// A model the gateway can call.
#[derive(Clone, Debug)]
pub struct ServedModel {
    pub asset: AssetId,
    /// When the asset was registered (milliseconds since the Unix epoch).
    pub registered_ms: u64,
    pub name: String,
    pub kind: AssetKind,
    pub content: Hash32,
    pub token: Address,
    pub price_per_call: Amount,
}

/// The gateway. Cheap to share: wrap it in an `Arc`.
pub struct Gateway {
    journal: Arc<SharedJournal>,
    keys: Arc<Keys>,
    artifacts: ArtifactStore,
    classifiers: Mutex<HashMap<Hash32, Arc<Classifier>>>,
    upstreams: Registry<Upstream>,
    agents: Registry<AgentProgram>,
    encoders: Registry<EncoderServing>,
    encoder: EncoderSlot,
    http: reqwest::Client,
    /// Where queued charges' commits are sent to be awaited; `None` answers after each commit.
    queued_commits: Option<std::sync::mpsc::Sender<QueuedCommit>>,
    /// The thread that awaits them, joined when the gateway is dropped so that every answered
    /// charge's commit has been awaited (and the journal is no longer shared) by then.
    commit_waiter: Option<std::thread::JoinHandle<()>>,
    /// Set when a queued charge's commit failed, cleared by the next charge that commits: while
    /// set, calls are answered only once their charge is durable, so a store that cannot write
    /// refuses calls (503) instead of answering them unpaid.
    store_failing: Arc<std::sync::atomic::AtomicBool>,
    meter: Arc<Meter>,
    idempotency: Idempotency,
    signer: NodeSigner,
}

impl Gateway {
    /// Opens the gateway over `journal`: replays how each registered model is served and the
    /// idempotency ids of the last day's charges from the log. Calls are authenticated by
    /// `keys` and held against balances by `meter`, which the node shares with the desk (a
    /// project's budget and a call in flight never count the same money twice).
    pub fn open(
        journal: Arc<SharedJournal>,
        meter: Arc<Meter>,
        keys: Arc<Keys>,
        artifacts: ArtifactStore,
        signer: NodeSigner,
    ) -> Result<Gateway, GatewayError> {
        let gateway = Gateway {
            journal,
            keys,
            artifacts,
            classifiers: Mutex::new(HashMap::new()),
            upstreams: Registry::default(),
            agents: Registry::default(),
            encoders: Registry::default(),
            encoder: EncoderSlot::new(caravan_models::embedding::default_models_dir()),
            http: upstream::client_builder()
                .build()
                .map_err(|e| GatewayError::Internal(format!("cannot make an HTTP client: {e}")))?,
            queued_commits: None,
            commit_waiter: None,
            store_failing: Arc::default(),
            meter,
            idempotency: Idempotency::default(),
            signer: signer.with_prepared_nonces(),
        };
        gateway.replay()?;
        Ok(gateway)
    }

    /// Sets when answers are sent relative to their charge's commit (see [`ChargeDurability`]).
    pub fn with_charge_durability(mut self, durability: ChargeDurability) -> Gateway {
        self.stop_commit_waiter();
        if durability == ChargeDurability::Queued {
            let (commits, queue) = std::sync::mpsc::channel::<QueuedCommit>();
            let journal = Arc::clone(&self.journal);
            let failing = Arc::clone(&self.store_failing);
            let waiter = std::thread::Builder::new()
                .name("charge commits".into())
                .spawn(move || {
                    for commit in queue {
                        if let Err(error) = journal.await_commit(commit) {
                            let first = !failing.swap(true, std::sync::atomic::Ordering::SeqCst);
                            eprintln!(
                                "charges already answered were lost: their commit failed ({error}); those calls go unpaid{}",
                                if first {
                                    "; calls are answered only once charged until the store commits again"
                                } else {
                                    ""
                                }
                            );
                        }
                    }
                })
                .expect("the operating system starts a thread");
            self.queued_commits = Some(commits);
            self.commit_waiter = Some(waiter);
        }
        self
    }

    /// Closes the queue of charges' commits and waits until the thread has awaited them all.
    fn stop_commit_waiter(&mut self) {
        self.queued_commits = None;
        if let Some(waiter) = self.commit_waiter.take() {
            let _ = waiter.join();
        }
    }

    /// Whether answers go out before their charge's commit ([`ChargeDurability::Queued`]), so
    /// charging never waits.
    pub fn answers_before_commit(&self) -> bool {
        self.queued_commits.is_some() && !self.store_failing()
    }

    /// Whether a queued charge's commit failed and no charge has committed since.
    fn store_failing(&self) -> bool {
        self.store_failing.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Forwards to upstream servers with `http` instead of a client that trusts only the
    /// system's certificate authorities (the node passes one that also trusts the operator's
    /// `--extra-ca-certs`); build it from [`upstream::client_builder`] to keep the timeouts.
    pub fn with_http_client(mut self, http: reqwest::Client) -> Gateway {
        self.http = http;
        self
    }

    /// Reads installed models (the sentence encoder) from `dir` instead of the default folder
    /// (`$CARAVAN_MODELS_DIR`, else `~/.cache/caravan/models`).
    pub fn with_models_dir(mut self, dir: std::path::PathBuf) -> Gateway {
        self.encoder = EncoderSlot::new(dir);
        self
    }

    fn replay(&self) -> Result<(), GatewayError> {
        let since = now_ms().saturating_sub(idempotency::RETENTION_MS);
        let records = self.journal.read(|j| {
            let records: Vec<ServingRecord> = access::recorded(j, &ServingRecord::KINDS)?;
            let recent = j.first_seq_at(since)?;
            j.for_each_in_lane(Lane::KeyedCall, recent, |row| -> Result<(), GatewayError> {
                if row.at_ms >= since
                    && let Ok(Event::CallMetered(call)) = Event::decode(&row.body)
                    && let Some(request) = call.request
                {
                    self.idempotency.charged_earlier(request, row.at_ms);
                }
                Ok(())
            })?;
            Ok::<_, GatewayError>(records)
        })?;
        records.iter().for_each(|record| self.serve(record));
        Ok(())
    }

    /// The API key behind a request's `Authorization` header, if it allows `scope`.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        scope: Scope,
    ) -> Result<ApiKey, GatewayError> {
        Ok(self.keys.authenticate(authorization, scope)?)
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn journal(&self) -> &SharedJournal {
        &self.journal
    }

    /// The node's address: where its compute share is paid and who signs its receipts.
    pub fn node(&self) -> Address {
        self.signer.address()
    }

    pub fn idempotency(&self) -> &Idempotency {
        &self.idempotency
    }

    pub fn meter(&self) -> &Meter {
        &self.meter
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop_commit_waiter();
    }
}

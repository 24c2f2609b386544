//! The OpenAI-compatible gateway: API keys, the model catalogue, metering and signed receipts.
//!
//! Every paid call goes the same way: authenticate the key, resolve the model, hold the call's
//! maximum cost against the payer's prepaid balance, run the model, commit one `CallMetered`
//! event with the actual cost (durable before the answer is sent, unless the node chose
//! [`ChargeDurability::Queued`]), release the hold, and answer
//! with a receipt signed by the node. [`routes`] puts it on HTTP in OpenAI's wire format.

pub mod access;
pub mod agent;
pub mod chat;
pub mod embeddings;
pub mod idempotency;
pub mod keys;
pub mod meter;
pub mod receipt;
pub mod routes;
pub mod upstream;
pub mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use caravan_core::{
    Address, Amount, AssetId, AssetKind, CallPart, Event, Hash32, Lane, Licence, MeteredCall,
};
use caravan_models::{ArtifactStore, Classifier};
use caravan_store::{AnswerRow, JournalError, QueuedCommit, SharedJournal, now_ms};
use serde_json::{Value, json};

use crate::desk::Desk;
use access::AccessRecord;
use agent::AgentProgram;
use embeddings::{EmbeddingInput, EncoderServing, EncoderSlot, EncodingFormat};
use idempotency::{Admission, Idempotency, Stored};
use keys::{ApiKey, KeyError, KeyRequest, KeyRing, PayerSignature, Scope};
use meter::Meter;
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
    #[error("the economy refused the charge: {0}")]
    Refused(String),
    #[error("the upstream server of {model} failed: {why}")]
    Upstream { model: String, why: String },
    #[error("storage is unavailable; nothing was charged, retry: {0}")]
    Store(#[from] JournalError),
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

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

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
    pub name: String,
    pub kind: AssetKind,
    pub content: Hash32,
    pub token: Address,
    pub price_per_call: Amount,
}

/// How the node serves assets of one kind (upstreams, agents, encoders), by asset id.
struct Registry<T>(RwLock<HashMap<AssetId, T>>);

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Registry(RwLock::new(HashMap::new()))
    }
}

impl<T: Clone> Registry<T> {
    fn insert(&self, asset: AssetId, serving: T) {
        self.0
            .write()
            .expect("a registry's lock is never poisoned")
            .insert(asset, serving);
    }

    fn get(&self, asset: &AssetId) -> Option<T> {
        self.0
            .read()
            .expect("a registry's lock is never poisoned")
            .get(asset)
            .cloned()
    }
}

/// The gateway. Cheap to share: wrap it in an `Arc`.
pub struct Gateway {
    desk: Arc<Desk>,
    artifacts: ArtifactStore,
    classifiers: Mutex<HashMap<Hash32, Arc<Classifier>>>,
    keys: RwLock<KeyRing>,
    /// Held from checking that a signed request has not issued a key to recording its key.
    issuing: Mutex<()>,
    upstreams: Registry<Upstream>,
    agents: Registry<AgentProgram>,
    encoders: Registry<EncoderServing>,
    encoder: EncoderSlot,
    http: reqwest::Client,
    /// Where queued charges' commits are sent to be awaited; `None` answers after each commit.
    queued_commits: Option<std::sync::mpsc::Sender<QueuedCommit>>,
    meter: Arc<Meter>,
    idempotency: Idempotency,
    signer: NodeSigner,
}

impl Gateway {
    /// Opens the gateway over the desk's journal: replays the access records (keys) and the
    /// idempotency ids of the last day's charges from the log.
    pub fn open(
        desk: Arc<Desk>,
        artifacts: ArtifactStore,
        signer: NodeSigner,
    ) -> Result<Gateway, GatewayError> {
        let gateway = Gateway {
            desk,
            artifacts,
            classifiers: Mutex::new(HashMap::new()),
            keys: RwLock::new(KeyRing::default()),
            issuing: Mutex::new(()),
            upstreams: Registry::default(),
            agents: Registry::default(),
            encoders: Registry::default(),
            encoder: EncoderSlot::new(caravan_models::embedding::default_models_dir()),
            http: upstream::client_builder()
                .build()
                .map_err(|e| GatewayError::Refused(format!("cannot make an HTTP client: {e}")))?,
            queued_commits: None,
            meter: Arc::new(Meter::default()),
            idempotency: Idempotency::default(),
            signer: signer.with_prepared_nonces(),
        };
        gateway.replay()?;
        Ok(gateway)
    }

    /// Sets when answers are sent relative to their charge's commit (see [`ChargeDurability`]).
    pub fn with_charge_durability(mut self, durability: ChargeDurability) -> Gateway {
        self.queued_commits = match durability {
            ChargeDurability::Committed => None,
            ChargeDurability::Queued => {
                let (commits, queue) = std::sync::mpsc::channel::<QueuedCommit>();
                let desk = Arc::clone(&self.desk);
                std::thread::Builder::new()
                    .name("charge commits".into())
                    .spawn(move || {
                        for commit in queue {
                            if let Err(error) = desk.journal().await_commit(commit) {
                                eprintln!(
                                    "charges already answered were lost: their commit failed ({error}); those calls go unpaid"
                                );
                            }
                        }
                    })
                    .expect("the operating system starts a thread");
                Some(commits)
            }
        };
        self
    }

    /// Whether answers go out before their charge's commit ([`ChargeDurability::Queued`]), so
    /// charging never waits.
    pub fn answers_before_commit(&self) -> bool {
        self.queued_commits.is_some()
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
        let records = self.journal().read(|j| {
            let records = access::recorded(j)?;
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
        records.iter().for_each(|record| self.apply_access(record));
        Ok(())
    }

    fn apply_access(&self, record: &AccessRecord) {
        match record {
            AccessRecord::UpstreamRegistered { asset, upstream } => {
                self.upstreams.insert(*asset, upstream.clone());
            }
            AccessRecord::AgentRegistered { asset, program } => {
                self.agents.insert(*asset, program.clone());
            }
            AccessRecord::EncoderRegistered { asset, encoder } => {
                self.encoders.insert(*asset, encoder.clone());
            }
            AccessRecord::KeyIssued {
                hash,
                key,
                authorization,
            } => {
                self.keys
                    .write()
                    .expect("key ring lock")
                    .issue(*hash, key.clone(), *authorization);
            }
            AccessRecord::KeyRevoked { hash, .. } => {
                self.keys.write().expect("key ring lock").revoke(hash);
            }
        }
    }

    /// The upstream a model forwards to, if it is an upstream model.
    pub fn upstream(&self, asset: &AssetId) -> Option<Upstream> {
        self.upstreams.get(asset)
    }

    /// The encoder an embedding model runs, if the asset is one.
    pub fn encoder(&self, asset: &AssetId) -> Option<EncoderServing> {
        self.encoders.get(asset)
    }

    /// The program an agent runs, if the asset is an agent this node serves.
    pub fn agent(&self, asset: &AssetId) -> Option<AgentProgram> {
        self.agents.get(asset)
    }

    /// Registers an agent asset and its program in one durable write.
    pub fn register_agent(
        &self,
        manifest: caravan_core::Manifest,
        program: AgentProgram,
    ) -> Result<AssetId, GatewayError> {
        let asset = manifest.id();
        let events = self
            .journal()
            .read(|j| access::agent_events(manifest, program.clone(), j.economy().lineage()))?;
        self.register(events, AccessRecord::AgentRegistered { asset, program })?;
        Ok(asset)
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Registers `manifest` (a model whose content is `upstream`'s hash) and the upstream it
    /// forwards to, in one durable write.
    pub fn register_upstream(
        &self,
        manifest: caravan_core::Manifest,
        upstream: Upstream,
    ) -> Result<AssetId, GatewayError> {
        let asset = manifest.id();
        let events = access::upstream_events(manifest, upstream.clone())?;
        self.register(events, AccessRecord::UpstreamRegistered { asset, upstream })?;
        Ok(asset)
    }

    /// Registers `manifest` (a model whose content is `encoder`'s hash) as an embedding model
    /// served by this node's sentence encoder, in one durable write.
    pub fn register_encoder(
        &self,
        manifest: caravan_core::Manifest,
        encoder: EncoderServing,
    ) -> Result<AssetId, GatewayError> {
        let asset = manifest.id();
        let events = access::encoder_events(manifest, encoder.clone())?;
        self.register(events, AccessRecord::EncoderRegistered { asset, encoder })?;
        Ok(asset)
    }

    /// Writes an asset's registration `events` durably, then serves it as `record` says.
    fn register(&self, events: Vec<Event>, record: AccessRecord) -> Result<(), GatewayError> {
        let mut submitted = self.journal().submit(events)?;
        if let Some((_, why)) = submitted.refused.pop() {
            return Err(GatewayError::Refused(why.to_string()));
        }
        self.apply_access(&record);
        Ok(())
    }

    pub fn journal(&self) -> &SharedJournal {
        self.desk.journal()
    }

    pub fn desk(&self) -> &Arc<Desk> {
        &self.desk
    }

    /// The node's address: where its compute share is paid and who signs its receipts.
    pub fn node(&self) -> Address {
        self.signer.address()
    }

    pub fn idempotency(&self) -> &Idempotency {
        &self.idempotency
    }

    /// Admits a request sent with an idempotency key (see [`Idempotency::admit`]). A request
    /// the memory knows only as charged is looked up among the answers kept in the store:
    /// replayed if it is the same request, refused if its body differs. Only that rare path
    /// reads the store (a point lookup, well under a millisecond).
    pub fn admit_keyed(
        &self,
        request: Hash32,
        fingerprint: Hash32,
    ) -> Result<Admission, GatewayError> {
        let now = now_ms();
        let admission = self.idempotency.admit(request, fingerprint, now);
        if !matches!(admission, Admission::ChargedEarlier) {
            return Ok(admission);
        }
        let kept = self.journal().read(|j| j.answer(request, now))?;
        Ok(
            match kept.and_then(|row| Some((row.fingerprint, Stored::decode(&row.answer)?))) {
                Some((first, stored)) if first == fingerprint => Admission::Replay(stored),
                Some(_) => Admission::DifferentBody,
                None => Admission::ChargedEarlier,
            },
        )
    }

    /// Keeps a served call's answer for retries under its idempotency key: in memory, and (up
    /// to [`idempotency::KEPT_ANSWER_MAX_BYTES`]) in the store, which a retry after a restart,
    /// or after memory let the answer go, is answered from. Never waits for the store.
    pub fn keep_answer(&self, request: Hash32, stored: Stored) {
        let answer =
            (stored.body.len() <= idempotency::KEPT_ANSWER_MAX_BYTES).then(|| stored.encode());
        let Some(finished) = self.idempotency.finish(request, stored) else {
            return;
        };
        if let Some(answer) = answer {
            let row = AnswerRow {
                key: request,
                fingerprint: finished.fingerprint,
                kept_at_ms: now_ms(),
                expires_ms: finished.admitted_ms + idempotency::RETENTION_MS,
                answer,
            };
            self.journal()
                .read(|j| j.keep_answer(row, KEPT_ANSWERS_COMMIT_WITHIN));
        }
    }

    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    /// Checks a request's `Authorization` header for `scope`.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        scope: Scope,
    ) -> Result<ApiKey, GatewayError> {
        Ok(self
            .keys
            .read()
            .expect("key ring lock")
            .authenticate(authorization, scope, now_ms())?)
    }

    fn record_access(&self, record: &AccessRecord) -> Result<(), GatewayError> {
        let text = serde_json::to_string(record).expect("access records serialise");
        let mut submitted = self
            .journal()
            .submit(vec![Event::AccessRecorded { record: text }])?;
        if let Some((_, why)) = submitted.refused.pop() {
            return Err(GatewayError::Refused(why.to_string()));
        }
        self.apply_access(record);
        Ok(())
    }

    /// Issues a key for `payer` on the operator's authority (in-process callers such as the
    /// demo); returns the secret (shown this once) and what is stored. Over HTTP only the payer
    /// may: see [`Gateway::issue_signed_key`].
    pub fn issue_key(
        &self,
        payer: Address,
        scopes: Vec<Scope>,
        expires_ms: Option<u64>,
        name: String,
    ) -> Result<(String, ApiKey), GatewayError> {
        self.record_key(payer, scopes, expires_ms, name, None)
    }

    /// Issues a key the payer asked for with its wallet's signature: `scopes` in the order
    /// signed, expiring `expires_in_days` after the signing time. A signed request issues one
    /// key only. Blocking: waits until the key is durable.
    pub fn issue_signed_key(
        &self,
        payer: Address,
        scopes: Vec<Scope>,
        expires_in_days: Option<u32>,
        name: String,
        signed: Option<&PayerSignature>,
    ) -> Result<(String, ApiKey), GatewayError> {
        if expires_in_days == Some(0) {
            return Err(GatewayError::BadParam {
                param: "expires_in_days".into(),
                message: "a key must live at least a day; leave expires_in_days out for a key that never expires".into(),
            });
        }
        let request = KeyRequest::Issue {
            scopes: &scopes,
            expires_in_days,
            name: &name,
        };
        let signed = request.check(&payer, &self.node(), signed, now_ms())?;
        let expires_ms = expires_in_days.map(|days| signed.signed_at_ms + u64::from(days) * DAY_MS);
        // One signed request at a time between the replay check and the key's record.
        let _issuing = self.issuing.lock().expect("key issuing lock");
        if self
            .keys
            .read()
            .expect("key ring lock")
            .authorized_before(&signed.digest)
        {
            return Err(KeyError::SignatureReused.into());
        }
        self.record_key(payer, scopes, expires_ms, name, Some(signed.digest))
    }

    fn record_key(
        &self,
        payer: Address,
        scopes: Vec<Scope>,
        expires_ms: Option<u64>,
        name: String,
        authorization: Option<Hash32>,
    ) -> Result<(String, ApiKey), GatewayError> {
        if scopes.is_empty() {
            return Err(GatewayError::BadParam {
                param: "scopes".into(),
                message: "a key needs at least one scope: models, chat, embeddings, classify"
                    .into(),
            });
        }
        if name.len() > 120 {
            return Err(GatewayError::BadParam {
                param: "name".into(),
                message: "a key's name is at most 120 bytes".into(),
            });
        }
        let (secret, hash) = keys::new_secret();
        let mut scopes = scopes;
        scopes.sort();
        scopes.dedup();
        let key = ApiKey {
            id: keys::key_id(&hash),
            payer,
            scopes,
            expires_ms,
            name,
            created_ms: now_ms(),
        };
        self.record_access(&AccessRecord::KeyIssued {
            hash,
            key: key.clone(),
            authorization,
        })?;
        Ok((secret, key))
    }

    /// Revokes the payer's key `id`, asked for with the payer's wallet signature; a revoked key
    /// stops working at once. Blocking: waits until the revocation is durable.
    pub fn revoke_key(
        &self,
        payer: Address,
        id: &str,
        signed: Option<&PayerSignature>,
    ) -> Result<(), GatewayError> {
        KeyRequest::Revoke { key: id }.check(&payer, &self.node(), signed, now_ms())?;
        let hash = self
            .keys
            .read()
            .expect("key ring lock")
            .find(&payer, id)
            .ok_or_else(|| GatewayError::BadParam {
                param: "id".into(),
                message: format!(
                    "{payer} has no live key {id}; `caravan key list` (GET /v1/keys) lists them"
                ),
            })?;
        self.record_access(&AccessRecord::KeyRevoked {
            hash,
            at_ms: now_ms(),
        })
    }

    /// The payer's live keys (without secrets), asked for with the payer's wallet signature.
    pub fn list_keys(
        &self,
        payer: &Address,
        signed: Option<&PayerSignature>,
    ) -> Result<Vec<ApiKey>, GatewayError> {
        KeyRequest::List.check(payer, &self.node(), signed, now_ms())?;
        Ok(self.keys_of(payer))
    }

    pub fn keys_of(&self, payer: &Address) -> Vec<ApiKey> {
        self.keys.read().expect("key ring lock").of_payer(payer)
    }

    /// Records a validator's signed evaluation of `model_name`; the economy checks the
    /// signature. Blocking: waits until it is durable.
    pub fn attest(
        &self,
        model_name: &str,
        attestation: caravan_core::Attestation,
    ) -> Result<caravan_core::Attestation, GatewayError> {
        let model = self.resolve_any_model(model_name)?;
        if attestation.model != model {
            return Err(GatewayError::BadParam {
                param: "model".into(),
                message: format!(
                    "the attestation is signed for model {}, not {model}",
                    attestation.model
                ),
            });
        }
        let mut submitted = self
            .journal()
            .submit(vec![Event::ValidationAttested(attestation.clone())])?;
        if let Some((_, why)) = submitted.refused.pop() {
            return Err(GatewayError::BadParam {
                param: "signature".into(),
                message: why.to_string(),
            });
        }
        Ok(attestation)
    }

    /// A model's attestations, in the order they were accepted.
    pub fn attestations(
        &self,
        model_name: &str,
    ) -> Result<Vec<caravan_core::Attestation>, GatewayError> {
        let model = self.resolve_any_model(model_name)?;
        Ok(self
            .journal()
            .read(|j| j.economy().attestations(&model).to_vec()))
    }

    /// The id of the model (not agent or dataset) a name or id names, whatever its licence.
    pub fn resolve_any_model(&self, name: &str) -> Result<AssetId, GatewayError> {
        let found = self.named(name, |kind| kind == AssetKind::Model);
        match found.as_slice() {
            [(id, _)] => Ok(*id),
            [] => Err(GatewayError::UnknownModel(name.to_owned())),
            _ => Err(GatewayError::BadParam {
                param: "model".into(),
                message: format!("several models are named {name}; name one by its asset id"),
            }),
        }
    }

    /// The endpoint that calls `model`: chat for upstreams and agents, embeddings for
    /// encoders, classifications for first-party classifiers.
    pub fn endpoint(&self, model: &ServedModel) -> &'static str {
        if self.encoder(&model.asset).is_some() {
            "/v1/embeddings"
        } else if self.upstream(&model.asset).is_some() || self.agent(&model.asset).is_some() {
            "/v1/chat/completions"
        } else {
            "/v1/classifications"
        }
    }

    /// The paid models this node can serve, in registration order.
    pub fn models(&self) -> Vec<ServedModel> {
        self.journal().read(|j| {
            j.economy()
                .lineage()
                .iter()
                .filter_map(|asset| served_model(&asset.id, &asset.manifest))
                .filter(|model| {
                    self.upstream(&model.asset).is_some()
                        || self.agent(&model.asset).is_some()
                        || self.encoder(&model.asset).is_some()
                        || self.artifacts_have(&model.content)
                })
                .collect()
        })
    }

    fn artifacts_have(&self, content: &Hash32) -> bool {
        self.classifiers
            .lock()
            .expect("classifier cache lock")
            .contains_key(content)
            || self.artifacts.contains(content)
    }

    /// The assets of the kinds `keep` accepts that `name` names: the asset with that id (looked
    /// up directly), or every asset with that name.
    fn named(
        &self,
        name: &str,
        keep: impl Fn(AssetKind) -> bool,
    ) -> Vec<(AssetId, caravan_core::Manifest)> {
        self.journal().read(|j| {
            let lineage = j.economy().lineage();
            match name.parse::<AssetId>() {
                Ok(id) => lineage
                    .get(&id)
                    .filter(|a| keep(a.manifest.kind))
                    .map(|a| (a.id, a.manifest.clone()))
                    .into_iter()
                    .collect(),
                Err(_) => lineage
                    .named(name)
                    .filter(|a| keep(a.manifest.kind))
                    .map(|a| (a.id, a.manifest.clone()))
                    .collect(),
            }
        })
    }

    /// The model a request names: an asset id, or a name (which must name one model).
    pub fn resolve(&self, name: &str) -> Result<ServedModel, GatewayError> {
        let found = self.named(name, |kind| kind != AssetKind::Dataset);
        match found.as_slice() {
            [] => Err(GatewayError::UnknownModel(name.to_owned())),
            [(id, manifest)] => served_model(id, manifest).ok_or_else(|| {
                GatewayError::NotServed(format!(
                    "model {name} is not licensed for paid calls (its licence is {}); the gateway serves commercially licensed models",
                    match manifest.licence {
                        Licence::OpenUse => "open use",
                        _ => "non-commercial",
                    }
                ))
            }),
            several => Err(GatewayError::BadParam {
                param: "model".into(),
                message: format!(
                    "{} assets are named {name}; name one by its id: {}",
                    several.len(),
                    several
                        .iter()
                        .map(|(id, _)| id.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }

    pub(crate) fn classifier(&self, model: &ServedModel) -> Result<Arc<Classifier>, GatewayError> {
        if let Some(loaded) = self
            .classifiers
            .lock()
            .expect("classifier cache lock")
            .get(&model.content)
        {
            return Ok(Arc::clone(loaded));
        }
        let bytes = self.artifacts.get(&model.content).map_err(|e| {
            GatewayError::NotServed(format!(
                "model {} is not a classifier this node holds: {e}",
                model.name
            ))
        })?;
        let mut classifier = Classifier::from_artifact(&bytes).map_err(|e| {
            GatewayError::NotServed(format!("model {} cannot be loaded: {e}", model.name))
        })?;
        if let Some(weights) = classifier.encoder_weights() {
            let encoder = self.encoder.get(&weights).map_err(|e| {
                GatewayError::NotServed(format!(
                    "model {} reads sentence embeddings: {e}",
                    model.name
                ))
            })?;
            classifier = classifier
                .with_encoder(encoder)
                .map_err(|e| GatewayError::NotServed(e.to_string()))?;
        }
        let classifier = Arc::new(classifier);
        self.classifiers
            .lock()
            .expect("classifier cache lock")
            .insert(model.content, Arc::clone(&classifier));
        Ok(classifier)
    }

    /// Classifies `inputs` (item data objects) with a first-party classifier, charging the
    /// model's price per input once the answers exist. Blocking: it waits for the charge to be
    /// durable.
    pub fn classify(
        &self,
        key: &ApiKey,
        model_name: &str,
        inputs: Vec<Value>,
        request: Option<Hash32>,
    ) -> Result<Served, GatewayError> {
        if inputs.is_empty() || inputs.len() > MAX_INPUTS {
            return Err(GatewayError::BadParam {
                param: "input".into(),
                message: format!(
                    "send 1 to {MAX_INPUTS} inputs (an object of item fields, or an array of them); got {}",
                    inputs.len()
                ),
            });
        }
        let model = self.resolve(model_name)?;
        let classifier = self.classifier(&model)?;
        let count = inputs.len() as u32;
        let cost = model
            .price_per_call
            .checked_mul(Amount::from(count))
            .ok_or_else(|| GatewayError::BadRequest("the call's cost overflows 2^128".into()))?;
        let hold = self.hold(key, model.token, cost)?;
        let refs: Vec<&Value> = inputs.iter().collect();
        let predictions = classifier.predict_many(&refs).map_err(|error| {
            // Name the first input that fails on its own; the batch's error otherwise.
            let (index, error) = inputs
                .iter()
                .enumerate()
                .find_map(|(i, input)| classifier.predict(input).err().map(|e| (i, e)))
                .unwrap_or((0, error));
            GatewayError::BadParam {
                param: format!("input[{index}]"),
                message: format!("input {index}: {error}"),
            }
        })?;
        let data: Vec<Value> = predictions
            .into_iter()
            .enumerate()
            .map(|(index, prediction)| {
                let probabilities: serde_json::Map<String, Value> = prediction
                    .probabilities
                    .iter()
                    .map(|(label, p)| (label.clone(), json!(p)))
                    .collect();
                json!({
                    "object": "classification",
                    "index": index,
                    "label": prediction.label,
                    "confidence": prediction.confidence,
                    "probabilities": probabilities,
                })
            })
            .collect();
        let trace = json!([{ "asset": model.asset, "model": model.name, "inputs": count, "cost": cost.to_string() }]);
        let (seq, at_ms) = self.charge(
            hold,
            key,
            &model,
            vec![CallPart {
                asset: model.asset,
                amount: cost,
                calls: count,
            }],
            trace,
            request,
        )?;
        let id = format!("clf-{seq}");
        let body = json!({
            "id": id,
            "object": "list",
            "model": model.name,
            "data": data,
            "usage": { "inputs": count, "cost": cost.to_string(), "token": model.token },
        });
        Ok(self.receipted(body, &id, key, &model, cost, count, at_ms))
    }

    /// Embeds `input` with an embedding model, charging the per-call price plus the tokens the
    /// model reads (known before it runs, so the hold is the exact cost). Blocking: it waits
    /// for the charge to be durable.
    pub fn embed(
        &self,
        key: &ApiKey,
        model_name: &str,
        input: &EmbeddingInput,
        format: EncodingFormat,
        dimensions: Option<u32>,
        request: Option<Hash32>,
    ) -> Result<Served, GatewayError> {
        let model = self.resolve(model_name)?;
        let serving = self.encoder(&model.asset).ok_or_else(|| {
            GatewayError::NotServed(format!(
                "model {} is not an embedding model; GET /v1/models lists each model's kind",
                model.name
            ))
        })?;
        if let Some(asked) = dimensions.filter(|d| *d != serving.dimensions) {
            return Err(GatewayError::BadParam {
                param: "dimensions".into(),
                message: format!(
                    "{} gives {} numbers per embedding and cannot shorten them; leave dimensions out or send {} (asked for {asked})",
                    model.name, serving.dimensions, serving.dimensions
                ),
            });
        }
        let encoder = self.encoder.get(&serving.weights)?;
        let tokens = input.tokenize(&encoder)?;
        let count: usize = tokens.iter().map(Vec::len).sum();
        let cost = serving
            .cost(model.price_per_call, count as u64)
            .ok_or_else(|| GatewayError::BadRequest("the call's cost overflows 2^128".into()))?;
        let hold = self.hold(key, model.token, cost)?;
        let vectors = encoder
            .embed_tokens(&tokens)
            .map_err(|e| GatewayError::NotServed(e.to_string()))?;
        let trace = json!([{ "asset": model.asset, "model": model.name, "inputs": tokens.len(), "tokens": count, "cost": cost.to_string() }]);
        let (seq, at_ms) = self.charge(
            hold,
            key,
            &model,
            vec![CallPart {
                asset: model.asset,
                amount: cost,
                calls: 1,
            }],
            trace,
            request,
        )?;
        let data: Vec<Value> = vectors
            .iter()
            .enumerate()
            .map(|(index, vector)| {
                json!({
                    "object": "embedding",
                    "index": index,
                    "embedding": embeddings::embedding_value(vector, format),
                })
            })
            .collect();
        let id = format!("emb-{seq}");
        let body = json!({
            "id": id,
            "object": "list",
            "model": model.name,
            "data": data,
            "usage": { "prompt_tokens": count, "total_tokens": count },
        });
        Ok(self.receipted(body, &id, key, &model, cost, 1, at_ms))
    }

    /// Holds the most a call of the key's payer can cost, or says what is available.
    pub(crate) fn hold(
        &self,
        key: &ApiKey,
        token: Address,
        amount: Amount,
    ) -> Result<meter::Hold, GatewayError> {
        self.meter
            .reserve(self.journal(), key.payer, token, amount)
            .map_err(|shortfall| GatewayError::InsufficientQuota {
                payer: key.payer,
                token,
                needed: shortfall.needed,
                available: shortfall.available,
            })
    }

    /// Commits the call's charge (or queues it, with [`ChargeDurability::Queued`]); returns the
    /// event's sequence number and time.
    /// The hold is released as the charge is applied (see [`Meter::settle`]).
    pub(crate) fn charge(
        &self,
        hold: meter::Hold,
        key: &ApiKey,
        model: &ServedModel,
        parts: Vec<CallPart>,
        trace: Value,
        request: Option<Hash32>,
    ) -> Result<(u64, u64), GatewayError> {
        let call = MeteredCall {
            payer: key.payer,
            token: model.token,
            node: self.node(),
            request,
            parts,
            trace: trace.to_string(),
        };
        let window = if self.answers_before_commit() {
            QUEUED_CHARGES_COMMIT_WITHIN
        } else {
            std::time::Duration::ZERO
        };
        let pending = self.meter.settle(hold, || {
            self.journal()
                .enqueue_within(vec![Event::CallMetered(call)], window)
        });
        let mut submitted = match &self.queued_commits {
            None => pending.wait()?,
            Some(commits) => {
                let (submitted, commit) = pending.detach();
                if let Err(unsent) = commits.send(commit) {
                    self.journal().await_commit(unsent.0)?;
                }
                submitted
            }
        };
        if let Some((_, why)) = submitted.refused.pop() {
            return Err(GatewayError::Refused(why.to_string()));
        }
        let envelope = submitted.accepted.remove(0);
        Ok((envelope.seq, envelope.at_ms))
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn receipted(
        &self,
        body: Value,
        id: &str,
        key: &ApiKey,
        model: &ServedModel,
        cost: Amount,
        calls: u32,
        at_ms: u64,
    ) -> Served {
        let receipt = json!({
            "call": id,
            "payer": key.payer,
            "key": key.id,
            "model": model.asset,
            "token": model.token,
            "charged": cost.to_string(),
            "calls": calls,
            "node": self.node(),
            "at_ms": at_ms,
        })
        .to_string();
        let signature = self.signer.sign(receipt.as_bytes());
        Served {
            body,
            receipt,
            signature,
        }
    }
}

fn served_model(id: &AssetId, manifest: &caravan_core::Manifest) -> Option<ServedModel> {
    let Licence::Commercial {
        token,
        price_per_call,
        ..
    } = manifest.licence
    else {
        return None;
    };
    (manifest.kind != AssetKind::Dataset).then(|| ServedModel {
        asset: *id,
        name: manifest.name.clone(),
        kind: manifest.kind,
        content: manifest.content,
        token,
        price_per_call,
    })
}

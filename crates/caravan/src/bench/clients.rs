//! The clients that work a served node from outside: payers calling the classifier, labellers
//! judging items, a wallet issuing API keys, and readers looking at balances, epochs and pages.
//! Each keeps a record of what it was answered (for the kill loop's checks) and how long each
//! answer took (for the soak's minutes).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use caravan_core::Address;
use caravan_node::keys::{KeyRequest, Scope};
use caravan_server::access::SESSION_COOKIE;
use caravan_tasks::item::ItemId;
use caravan_tasks::schema::Answer;
use serde_json::{Value, json};

use super::served::{PAID_MODEL, World};
use super::task_node::wallet;

/// How long a client waits for a node to come back before it tries again.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// What every client shares: where the node is, what it was answered, and when to stop.
pub struct Team {
    pub http: reqwest::Client,
    pub base: String,
    pub answered: Mutex<Answered>,
    /// Whether the node now answers a charge only once it is durable (`committed`).
    pub durable: AtomicBool,
    pub stop: AtomicBool,
    /// Calls, judgments and keys answered.
    pub served: AtomicU64,
    pub latencies: Latencies,
    /// How long a client waits between its requests.
    pub pace: Duration,
}

impl Team {
    pub fn new(base: String, pace: Duration) -> Result<Team, String> {
        Ok(Team {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| format!("cannot make an HTTP client: {e}"))?,
            base,
            answered: Mutex::new(Answered::default()),
            durable: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            served: AtomicU64::new(0),
            latencies: Latencies::new(),
            pace,
        })
    }

    /// Sends `request` and reads the whole answer, recording how long it took in the minute it
    /// was sent; `None` when the node was not there to answer (not recorded).
    /// Sends `request` (of the kind `what` names, as the per-request figures show it) and
    /// reads its whole answer, recording how long it took; `None` if no answer came.
    async fn exchange(
        &self,
        what: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Option<Exchanged> {
        let sent = Instant::now();
        let response = request.send().await.ok()?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.ok()?;
        self.latencies.record(what, sent);
        Some(Exchanged {
            status,
            headers,
            body,
        })
    }

    fn answers(&self) -> std::sync::MutexGuard<'_, Answered> {
        self.answered.lock().expect("answers lock")
    }

    fn unexpected(&self, what: String) {
        self.answers().unexpected.push(what);
    }
}

/// How many clients besides one caller per payer and one labeller per contributor.
pub struct Crowd {
    /// Wallets issuing API keys.
    pub issuers: usize,
    /// Readers of balances, epochs and pages.
    pub readers: usize,
    /// Seed of the callers' choices: a run replays with it.
    pub seed: u64,
}

/// Starts the clients on `runtime`: a caller per payer of `world`, a labeller per contributor,
/// and the crowd's issuers and readers (readers take the payers' keys and the contributors'
/// sessions in turn).
pub fn spawn_clients(
    runtime: &tokio::runtime::Runtime,
    team: &Arc<Team>,
    world: &World,
    crowd: Crowd,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut clients = Vec::new();
    for (n, (payer, key)) in world.keys.iter().enumerate() {
        let caller = Caller {
            team: Arc::clone(team),
            payer: *payer,
            key: key.clone(),
            input: world.input.clone(),
            dice: Dice(crowd.seed ^ (n as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            name: n,
        };
        clients.push(runtime.spawn(caller.run()));
    }
    for (contributor, session) in &world.sessions {
        let labeller = Labeller {
            team: Arc::clone(team),
            project: world.project.clone(),
            contributor: *contributor,
            session: session.clone(),
        };
        clients.push(runtime.spawn(labeller.run()));
    }
    for n in 0..crowd.issuers {
        let issuer = Issuer {
            team: Arc::clone(team),
            wallet: wallet(&format!("key holder {n}")),
            node: world.node,
            name: n,
        };
        clients.push(runtime.spawn(issuer.run()));
    }
    for n in 0..crowd.readers {
        let (_, key) = &world.keys[n % world.keys.len()];
        let (contributor, session) = &world.sessions[n % world.sessions.len()];
        let reader = Reader {
            team: Arc::clone(team),
            key: key.clone(),
            session: session.clone(),
            contributor: *contributor,
            project: world.project.clone(),
        };
        clients.push(runtime.spawn(reader.run()));
    }
    clients
}

/// An answer the node gave, read whole.
struct Exchanged {
    status: reqwest::StatusCode,
    headers: reqwest::header::HeaderMap,
    body: axum::body::Bytes,
}

/// What the clients were answered, kept until the end of the run.
#[derive(Default)]
pub struct Answered {
    /// Paid calls answered: the charge's sequence number, time, payer, idempotency key, and
    /// whether the node answered after the charge was durable (`committed`).
    pub calls: Vec<AnsweredCall>,
    /// Judgments answered: the contributor and the item.
    pub judgments: Vec<(Address, ItemId)>,
    /// API keys issued: their ids.
    pub keys: Vec<String>,
    /// API keys revoked, by id (each issuer revokes its previous key after issuing the next).
    pub revoked: Vec<String>,
    /// Pages and reads answered.
    pub reads: u64,
    /// Retries of an idempotency key whose answer named another charge than the first answer.
    pub replays_differing: u64,
    /// Retries answered from the first call (the node's replay header).
    pub replays: u64,
    /// Keys whose call was charged while a crash took the answer: the node answers such a
    /// retry with 409 `idempotency_key_charged` and charges nothing more.
    pub charged_unanswered: Vec<String>,
    /// Answers a client did not cause: a 4xx other than "nothing left to judge", or a 5xx
    /// other than the storage being down.
    pub unexpected: Vec<String>,
}

#[derive(Clone)]
pub struct AnsweredCall {
    pub seq: u64,
    pub at_ms: u64,
    pub payer: Address,
    pub key: Option<String>,
    pub durable: bool,
}

/// How long answers took, by minute of the run and kind of request, in microseconds.
pub struct Latencies {
    started: Instant,
    minutes: Mutex<Vec<BTreeMap<&'static str, Vec<u32>>>>,
}

/// One minute's answers: how many, and their median and 99th percentile.
pub struct Minute {
    pub answers: usize,
    pub p50: Duration,
    pub p99: Duration,
}

impl Latencies {
    fn new() -> Latencies {
        Latencies {
            started: Instant::now(),
            minutes: Mutex::new(Vec::new()),
        }
    }

    /// Records an answer to a request of kind `what` sent at `sent`, in the minute it was sent.
    fn record(&self, what: &'static str, sent: Instant) {
        let took = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
        let minute = (sent - self.started).as_secs() as usize / 60;
        let mut minutes = self.minutes.lock().expect("latencies lock");
        if minutes.len() <= minute {
            minutes.resize_with(minute + 1, BTreeMap::new);
        }
        minutes[minute].entry(what).or_default().push(took);
    }

    /// The answers of each minute so far, every kind together, the first minute first.
    pub fn minutes(&self) -> Vec<Minute> {
        let minutes = self.minutes.lock().expect("latencies lock");
        minutes
            .iter()
            .map(|kinds| summary(&kinds.values().flatten().copied().collect::<Vec<_>>()))
            .collect()
    }

    /// The answers of minute `minute` (from 0), kind by kind: what slows down shows by name.
    pub fn by_request(&self, minute: usize) -> Vec<(&'static str, Minute)> {
        let minutes = self.minutes.lock().expect("latencies lock");
        minutes.get(minute).map_or_else(Vec::new, |kinds| {
            kinds
                .iter()
                .map(|(what, answers)| (*what, summary(answers)))
                .collect()
        })
    }

    /// All answers of the run.
    pub fn overall(&self) -> Minute {
        let minutes = self.minutes.lock().expect("latencies lock");
        let all: Vec<u32> = minutes
            .iter()
            .flat_map(|kinds| kinds.values().flatten().copied())
            .collect();
        summary(&all)
    }
}

fn summary(answers: &[u32]) -> Minute {
    let mut sorted = answers.to_vec();
    sorted.sort_unstable();
    let at = |q: usize| {
        sorted
            .get((sorted.len() * q / 100).min(sorted.len().saturating_sub(1)))
            .map_or(Duration::ZERO, |&us| Duration::from_micros(u64::from(us)))
    };
    Minute {
        answers: sorted.len(),
        p50: at(50),
        p99: at(99),
    }
}

/// A payer's client: calls the classifier again and again, half the calls with an
/// idempotency key that it retries until the node answers.
struct Caller {
    team: Arc<Team>,
    payer: Address,
    key: String,
    input: Value,
    dice: Dice,
    name: usize,
}

impl Caller {
    async fn run(mut self) {
        let mut n = 0u64;
        while !self.team.stop.load(Ordering::SeqCst) {
            tokio::time::sleep(self.team.pace).await;
            n += 1;
            let Some(key) = (self.dice.below(2) == 0).then(|| format!("c{}-{n}", self.name)) else {
                let durable = self.team.durable.load(Ordering::SeqCst);
                match self.call(None).await {
                    Outcome::Answered { seq, at_ms, .. } => {
                        self.answered(seq, at_ms, None, durable)
                    }
                    Outcome::Unavailable | Outcome::ChargedUnanswered => {
                        tokio::time::sleep(RETRY_PAUSE).await
                    }
                    Outcome::Unexpected(what) => self.team.unexpected(what),
                }
                continue;
            };
            // A keyed call is retried until answered, even after the stop: the client must
            // learn what its first attempt did.
            let Some((seq, durable)) = self.until_answered(&key).await else {
                continue;
            };
            // Now and then the answer is asked for again, as a client does that lost it: the
            // node must answer from the first call, not charge a second time. (Under `queued`
            // a crash may have taken the first charge and its kept answer with it; a new charge
            // is then right.)
            if self.dice.below(4) == 0
                && let Some((again, _)) = self.until_answered(&key).await
                && again != seq
                && durable
            {
                self.team.answers().replays_differing += 1;
            }
        }
    }

    /// Sends the keyed call until the node answers it: its charge's sequence number and
    /// whether it was answered under `committed`; `None` when the node refused it.
    async fn until_answered(&self, key: &str) -> Option<(u64, bool)> {
        loop {
            let durable = self.team.durable.load(Ordering::SeqCst);
            match self.call(Some(key)).await {
                Outcome::Answered {
                    seq,
                    at_ms,
                    replayed,
                } => {
                    // A replay answers with the first call's charge: from the store, or from
                    // this node's memory of a call it charged under the same durability.
                    if replayed {
                        self.team.answers().replays += 1;
                    }
                    self.answered(seq, at_ms, Some(key.to_owned()), durable);
                    return Some((seq, durable));
                }
                Outcome::Unavailable => tokio::time::sleep(RETRY_PAUSE).await,
                Outcome::ChargedUnanswered => {
                    self.team.answers().charged_unanswered.push(key.to_owned());
                    return None;
                }
                Outcome::Unexpected(what) => {
                    self.team.unexpected(what);
                    return None;
                }
            }
        }
    }

    fn answered(&self, seq: u64, at_ms: u64, key: Option<String>, durable: bool) {
        self.team.served.fetch_add(1, Ordering::Relaxed);
        self.team.answers().calls.push(AnsweredCall {
            seq,
            at_ms,
            payer: self.payer,
            key,
            durable,
        });
    }

    async fn call(&self, idempotency: Option<&str>) -> Outcome {
        let mut request = self
            .team
            .http
            .post(format!("{}/v1/classifications", self.team.base))
            .bearer_auth(&self.key)
            .json(&json!({ "model": PAID_MODEL, "input": self.input }));
        if let Some(key) = idempotency {
            request = request.header("Idempotency-Key", key);
        }
        let Some(Exchanged {
            status,
            headers,
            body,
        }) = self
            .team
            .exchange("POST /v1/classifications", request)
            .await
        else {
            return Outcome::Unavailable;
        };
        let replayed = headers.contains_key(caravan_node::gateway::answer::REPLAYED_HEADER);
        let receipt = headers
            .get(caravan_node::gateway::answer::RECEIPT_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| base64::engine::general_purpose::STANDARD.decode(text).ok())
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
        if status.as_u16() == 503 {
            return Outcome::Unavailable;
        }
        if status.as_u16() == 409
            && serde_json::from_slice::<Value>(&body)
                .is_ok_and(|b| b["error"]["code"] == "idempotency_key_charged")
        {
            return Outcome::ChargedUnanswered;
        }
        if !status.is_success() {
            return Outcome::Unexpected(format!(
                "classify: {status} {}",
                String::from_utf8_lossy(&body)
            ));
        }
        let seq = receipt
            .as_ref()
            .and_then(|r| r["call"].as_str()?.strip_prefix("clf-")?.parse().ok());
        let at_ms = receipt.as_ref().and_then(|r| r["at_ms"].as_u64());
        match (seq, at_ms) {
            (Some(seq), Some(at_ms)) => Outcome::Answered {
                seq,
                at_ms,
                replayed,
            },
            _ => Outcome::Unexpected(format!("classify: a receipt without a call: {receipt:?}")),
        }
    }
}

enum Outcome {
    Answered {
        seq: u64,
        at_ms: u64,
        replayed: bool,
    },
    /// No answer, or the node said it cannot write now: try again.
    Unavailable,
    /// The key's call was charged, but a crash took its answer before the node kept it: the
    /// node says so and never charges the key again.
    ChargedUnanswered,
    Unexpected(String),
}

/// A labeller's client: asks for the next item and answers it, again and again.
struct Labeller {
    team: Arc<Team>,
    project: String,
    contributor: Address,
    session: String,
}

impl Labeller {
    async fn run(self) {
        while !self.team.stop.load(Ordering::SeqCst) {
            tokio::time::sleep(self.team.pace).await;
            match self.judge().await {
                Ok(Some(item)) => {
                    self.team.served.fetch_add(1, Ordering::Relaxed);
                    self.team.answers().judgments.push((self.contributor, item));
                }
                Ok(None) => tokio::time::sleep(RETRY_PAUSE).await,
                Err(what) => {
                    self.team.unexpected(what);
                    return;
                }
            }
        }
    }

    /// One item asked for and answered: `Some(item)` once the node answered the judgment,
    /// `None` when the node was not there to ask or to answer.
    async fn judge(&self) -> Result<Option<ItemId>, String> {
        let cookie = format!("{SESSION_COOKIE}={}", self.session);
        let post = |path: String| {
            self.team
                .http
                .post(format!(
                    "{}/v1/projects/{}/{path}",
                    self.team.base, self.project
                ))
                .header("cookie", &cookie)
        };
        let Some(next) = self
            .team
            .exchange("POST /v1/projects/{id}/next", post("next".into()))
            .await
        else {
            return Ok(None);
        };
        let status = next.status;
        let Ok(assigned) = serde_json::from_slice::<Value>(&next.body) else {
            return Ok(None);
        };
        // 503: the store cannot write now; 409 nothing_left: every item this labeller may
        // answer waits for others or is resolved. Both pass; the labeller asks again.
        if status.as_u16() == 503
            || (status.as_u16() == 409 && assigned["error"]["code"] == "nothing_left")
        {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(format!("next item: {status} {assigned}"));
        }
        let item: ItemId = serde_json::from_value(assigned["item"].clone())
            .map_err(|e| format!("next item: {e}: {assigned}"))?;
        let body = json!({ "item": assigned["item"], "answer": Answer::Choice("sports".into()) });
        let Some(submitted) = self
            .team
            .exchange(
                "POST /v1/projects/{id}/judgments",
                post("judgments".into()).json(&body),
            )
            .await
        else {
            return Ok(None);
        };
        let status = submitted.status;
        let Ok(reply) = serde_json::from_slice::<Value>(&submitted.body) else {
            return Ok(None);
        };
        match status.as_u16() {
            200..=299 => Ok(Some(item)),
            503 => Ok(None),
            // The lease taken before a kill may have lapsed or moved: ask again.
            409 => Ok(None),
            _ => Err(format!("judgment: {status} {reply}")),
        }
    }
}

/// A payer rotating API keys with its wallet's signature: it issues a key, then revokes the one
/// issued before, so it holds one live key at a time as a careful payer would.
struct Issuer {
    team: Arc<Team>,
    wallet: k256::ecdsa::SigningKey,
    /// The node's address, which the signed request names.
    node: Address,
    /// Issuers told apart, so that two never sign the same key name.
    name: usize,
}

impl Issuer {
    async fn run(self) {
        let payer = caravan_core::attestation::address_of(self.wallet.verifying_key());
        let scopes = [Scope::Models];
        let mut n = 0u64;
        let mut previous: Option<String> = None;
        while !self.team.stop.load(Ordering::SeqCst) {
            n += 1;
            let name = format!("key {n} of issuer {}", self.name);
            let signed = KeyRequest::Issue {
                scopes: &scopes,
                expires_in_days: None,
                name: &name,
            }
            .sign(&self.wallet, &self.node, caravan_store::now_ms());
            let body = json!({
                "payer": payer,
                "scopes": scopes,
                "name": name,
                "signed_at_ms": signed.signed_at_ms,
                "signature": signed.signature,
            });
            let request = self
                .team
                .http
                .post(format!("{}/v1/keys", self.team.base))
                .json(&body);
            let Some(answer) = self.team.exchange("POST /v1/keys", request).await else {
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            };
            let status = answer.status;
            let Ok(reply) = serde_json::from_slice::<Value>(&answer.body) else {
                continue;
            };
            match (status.as_u16(), reply["id"].as_str()) {
                (200..=299, Some(id)) => {
                    self.team.served.fetch_add(1, Ordering::Relaxed);
                    self.team.answers().keys.push(id.to_owned());
                    if let Some(old) = previous.replace(id.to_owned())
                        && !self.revoke(payer, &old).await
                    {
                        return;
                    }
                }
                (503, _) => tokio::time::sleep(RETRY_PAUSE).await,
                _ => {
                    self.team.unexpected(format!("key issue: {status} {reply}"));
                    return;
                }
            }
            // A person issues keys now and then, not in a loop.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Revokes the payer's key `id`: `false` when the node answered what a client would not
    /// cause. Not retried: a node that crashed meanwhile may have revoked it, and revoking it
    /// again would be refused.
    async fn revoke(&self, payer: Address, id: &str) -> bool {
        let signed =
            KeyRequest::Revoke { key: id }.sign(&self.wallet, &self.node, caravan_store::now_ms());
        let request = self.team.http.delete(format!(
            "{}/v1/keys/{id}?{}",
            self.team.base,
            signed.query(&payer)
        ));
        let Some(answer) = self.team.exchange("DELETE /v1/keys/{id}", request).await else {
            return true;
        };
        match answer.status.as_u16() {
            200..=299 => {
                self.team.served.fetch_add(1, Ordering::Relaxed);
                self.team.answers().revoked.push(id.to_owned());
                true
            }
            503 => true,
            _ => {
                let reply = String::from_utf8_lossy(&answer.body);
                self.team
                    .unexpected(format!("key revocation: {} {reply}", answer.status));
                false
            }
        }
    }
}

/// Someone looking around: their balance and usage with an API key, the models, the project,
/// the epochs, and the web pages a signed-in contributor opens, in turn.
struct Reader {
    team: Arc<Team>,
    /// A payer's API key.
    key: String,
    /// A contributor's session.
    session: String,
    contributor: Address,
    project: String,
}

impl Reader {
    async fn run(self) {
        let paths = [
            ("GET /v1/balance", "/v1/balance".to_owned()),
            ("GET /v1/usage", "/v1/usage".to_owned()),
            ("GET /v1/models", "/v1/models".to_owned()),
            (
                "GET /v1/projects/{id}",
                format!("/v1/projects/{}", self.project),
            ),
            ("GET /v1/epochs", "/v1/epochs".to_owned()),
            ("GET /tasks", "/tasks".to_owned()),
            ("GET /earnings", "/earnings".to_owned()),
            ("GET /explorer", "/explorer".to_owned()),
            (
                "GET /explorer/accounts/{account}",
                format!("/explorer/accounts/{}", self.contributor),
            ),
        ];
        let cookie = format!("{SESSION_COOKIE}={}", self.session);
        for (what, path) in paths.iter().cycle() {
            if self.team.stop.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(self.team.pace).await;
            let request = self
                .team
                .http
                .get(format!("{}{path}", self.team.base))
                .bearer_auth(&self.key)
                .header("cookie", &cookie);
            let Some(Exchanged { status, body, .. }) = self.team.exchange(what, request).await
            else {
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            };
            if status.is_success() {
                self.team.answers().reads += 1;
            } else if status.as_u16() != 503 {
                self.team.unexpected(format!(
                    "GET {path}: {status} {}",
                    String::from_utf8_lossy(&body)
                ));
            }
        }
    }
}

/// A small deterministic generator (SplitMix64), so a run replays with its seed.
pub struct Dice(pub u64);

impl Dice {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

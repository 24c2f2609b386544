//! What the server's tests share: a node over a real SQLite store, people with wallets who sign
//! in as a browser would (EIP-4361), and a client that sends their session cookie or API key.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use caravan_core::attestation::{address_of, personal_message_digest, sign_digest};
use caravan_core::{Address, Event, Genesis, Ppm, Token, keccak256};
use caravan_models::ArtifactStore;
use caravan_node::chains::ChainDirectory;
use caravan_node::gateway::receipt::NodeSigner;
use caravan_node::settlement::{Chains, chains_dir};
use caravan_node::{Node, NodeBuilder};
use caravan_server::access::SESSION_COOKIE;
use caravan_store::{Journal, Location};
use k256::ecdsa::SigningKey;
use serde_json::{Value, json};
use tower::ServiceExt;

/// The development USDC: where the embedded chain deploys its token, so roots paying in it can
/// be posted there (the chain funds the distributor from its supply).
pub fn token() -> Address {
    "0x5FbDB2315678afecb367f032d93F642f64180aa3"
        .parse()
        .expect("a checksummed address")
}

/// Someone with a wallet.
#[derive(Clone)]
pub struct Person {
    pub wallet: SigningKey,
    pub address: Address,
}

impl Person {
    pub fn new(label: &str) -> Person {
        let wallet =
            SigningKey::from_bytes((&keccak256(format!("wallet of {label}").as_bytes()).0).into())
                .unwrap();
        let address = address_of(wallet.verifying_key());
        Person { wallet, address }
    }

    /// Signs in through the API and returns the session cookie's value.
    pub async fn sign_in(&self, app: &Router) -> String {
        let reply = call(
            app,
            Method::GET,
            &format!("/v1/auth/nonce?address={}", self.address),
            Auth::None,
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let message = reply.body["message"].as_str().unwrap().to_owned();
        let signature = sign_digest(&self.wallet, &personal_message_digest(message.as_bytes()));
        let reply = call(
            app,
            Method::POST,
            "/v1/auth/siwe",
            Auth::None,
            Some(json!({ "message": message, "signature": signature.to_hex() })),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        session_of(&reply.headers).expect("a session cookie")
    }
}

/// The session cookie a response sets, if any.
pub fn session_of(headers: &HeaderMap) -> Option<String> {
    let cookie = headers.get(header::SET_COOKIE)?.to_str().ok()?;
    let pair = cookie.split(';').next()?;
    pair.strip_prefix(&format!("{SESSION_COOKIE}="))
        .map(str::to_owned)
}

/// A store with genesis, USDC, and `deposits` in prepaid balances.
pub fn journal(dir: &Path, deposits: &[(Address, u128)]) -> Journal {
    let mut journal = Journal::open(Location::DataDir(dir.to_path_buf()), &mut |_, _| {}).unwrap();
    if journal.economy().genesis().is_none() {
        let mut events = vec![
            Event::Genesis(Genesis {
                treasury: Address::from_label("treasury"),
                protocol_fee: Ppm::ZERO,
            }),
            Event::TokenRegistered(Token {
                address: token(),
                symbol: "USDC".into(),
                decimals: 6,
            }),
        ];
        events.extend(deposits.iter().map(|(payer, amount)| Event::Deposited {
            payer: *payer,
            token: token(),
            amount: *amount,
        }));
        journal.submit(events).unwrap();
    }
    journal
}

/// What a node over the store in `dir` (made with `deposits` when new), run with `operators`,
/// is opened with.
fn node_builder(dir: &Path, deposits: &[(Address, u128)], operators: &[Address]) -> NodeBuilder {
    let signer = NodeSigner::load_or_create(&dir.join("node.key")).unwrap();
    Node::builder(
        journal(dir, deposits),
        ArtifactStore::new(dir.join("models")),
        signer,
    )
    .operators(operators.iter().copied())
}

/// A node over the store in `dir` (made with `deposits` when new), run with `operators`,
/// letting accounts choose among `chains` (none: it keeps no chain configuration, as a node
/// over a database; sign-in then names anvil's chain id).
pub fn open_node(
    dir: &Path,
    deposits: &[(Address, u128)],
    chains: ChainDirectory,
    operators: &[Address],
) -> Arc<Node> {
    let no_chains = chains.chains().next().is_none();
    let mut builder = node_builder(dir, deposits, operators).chains(chains);
    if no_chains {
        builder = builder.sign_in(caravan_node::sessions::SignInPolicy {
            origin: caravan_node::sessions::origin::PublicOrigin::parse(
                caravan_node::DEFAULT_PUBLIC_URL,
            )
            .unwrap(),
            chain_ids: vec![31_337],
        });
    }
    Arc::new(builder.open().unwrap())
}

/// A node as `caravan serve` runs over a data directory: it settles on the chains configured
/// in `dir`'s `chains` folder (the embedded chain, until an operator adds another).
pub fn open_settling_node(
    dir: &Path,
    deposits: &[(Address, u128)],
    operators: &[Address],
) -> Arc<Node> {
    let chains = Chains::new(chains_dir(dir), reqwest::Client::new());
    let builder = node_builder(dir, deposits, operators)
        .settlement(chains)
        .unwrap();
    Arc::new(builder.open().unwrap())
}

/// The credentials a request carries.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    None,
    Session(&'a str),
    Key(&'a str),
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

/// Sends a request with `auth` and, when given, a JSON body.
pub async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    auth: Auth<'_>,
    body: Option<Value>,
) -> Reply {
    let body = match body {
        Some(json) => Body::from(json.to_string()),
        None => Body::empty(),
    };
    send(app, method, uri, auth, body, "application/json").await
}

/// Sends a request with `auth` and a raw body of `content_type`.
pub async fn send(
    app: &Router,
    method: Method,
    uri: &str,
    auth: Auth<'_>,
    body: Body,
    content_type: &str,
) -> Reply {
    send_with(app, method, uri, auth, body, content_type, &[]).await
}

/// [`send`] with `extra` headers (such as the `Origin` a browser sends).
pub async fn send_with(
    app: &Router,
    method: Method,
    uri: &str,
    auth: Auth<'_>,
    body: Body,
    content_type: &str,
    extra: &[(&str, &str)],
) -> Reply {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, content_type);
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    match auth {
        Auth::None => {}
        Auth::Session(secret) => {
            request = request.header(header::COOKIE, format!("{SESSION_COOKIE}={secret}"));
        }
        Auth::Key(key) => {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
    }
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Reply {
        status,
        headers,
        body,
    }
}

/// A single-choice project spec in USDC with this overlap and budget.
pub fn spec(overlap: u32, budget: u128) -> Value {
    json!({
        "title": "Sentiment of product reviews",
        "instructions": "Pick the sentiment the review expresses.",
        "schema": { "type": "single_choice", "options": ["pos", "neg"] },
        "overlap": { "min": overlap, "max": overlap + 2, "confidence": 0.9 },
        "token": token(),
        "bounty": "1000",
        "budget": budget.to_string(),
        "gold_rate": 0,
        "skill_bar": 500000,
        "gold_grace": 3,
        "min_seconds_per_item": 0,
        "daily_cap": 1000,
        "deadline_ms": u64::MAX,
        "lease_seconds": 600,
        "method": "ds"
    })
}

/// Posts a project as the signed-in `session` and imports `items` reviews (alternately
/// positive and negative, the truth in a column); returns the project id.
pub async fn post_project(app: &Router, session: &str, overlap: u32, items: usize) -> String {
    let created = call(
        app,
        Method::POST,
        "/v1/projects",
        Auth::Session(session),
        Some(json!({ "spec": spec(overlap, 1_000_000) })),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let project = created.body["project"].as_str().unwrap().to_owned();
    let mut csv = String::from("text,truth\n");
    for n in 0..items {
        let truth = if n % 2 == 0 { "pos" } else { "neg" };
        csv.push_str(&format!("review number {n},{truth}\n"));
    }
    let added = send(
        app,
        Method::POST,
        &format!("/v1/projects/{project}/items?format=csv"),
        Auth::Session(session),
        Body::from(csv),
        "text/csv",
    )
    .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    assert_eq!(added.body["added"], items);
    project
}

/// Registers on `gateway` a chat model named `name` forwarding to the OpenAI server at `url`:
/// `price_per_call` in `token`, plus 0.1 per prompt token and 0.4 per completion token (base
/// units).
pub fn upstream_chat_model(
    gateway: &caravan_node::gateway::Gateway,
    name: &str,
    url: &str,
    token: Address,
    price_per_call: u128,
) -> caravan_core::AssetId {
    use caravan_core::{AssetKind, Licence, Manifest};
    use caravan_node::gateway::upstream::Upstream;

    let upstream = Upstream {
        base_url: url.to_owned(),
        model: "llama-up".into(),
        prompt_per_million: 100_000,
        completion_per_million: 400_000,
        api_key_env: None,
    };
    let mut manifest = Manifest {
        kind: AssetKind::Model,
        name: name.into(),
        owner: Address::from_label("developer"),
        content: upstream.content_hash(),
        licence: Licence::Commercial {
            token,
            price_per_call,
            derivative_royalty: Ppm::ZERO,
        },
        parents: vec![],
        roles: vec![],
    };
    manifest.normalise();
    gateway.register_upstream(manifest, upstream).unwrap()
}

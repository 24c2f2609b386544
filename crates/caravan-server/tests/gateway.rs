//! The gateway as an application uses it, over a real SQLite store and a real linfa classifier:
//! keys, the OpenAI error shape, paid classifications with signed receipts, idempotent retries,
//! and 64 clients racing one prepaid balance.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine;
use caravan_core::attestation::address_of;
use caravan_core::{
    AccountRef, Address, AssetId, AssetKind, Event, Genesis, Licence, Manifest, Member, Ppm, Role,
    RoleShare, Token, keccak256,
};
use caravan_models::embedding::{MINILM, default_models_dir};
use caravan_models::{ArtifactStore, Classifier, Example, SentenceEncoder, TrainOptions};
use caravan_node::gateway::ChargeDurability;
use caravan_node::gateway::Gateway;
use caravan_node::gateway::embeddings::EncoderServing;
use caravan_node::gateway::receipt::{NodeSigner, recover_signer};
use caravan_node::keys::{KeyRecord, KeyRequest, Scope};
use caravan_node::{Node, NodeBuilder};
use caravan_server::gateway::{RECEIPT_HEADER, REPLAYED_HEADER, SIGNATURE_HEADER};
use caravan_server::router;
use caravan_store::{Journal, Location, now_ms};
use serde_json::{Value, json};
use tower::ServiceExt;

const PRICE: u128 = 2_000;

fn token() -> Address {
    Address::from_label("usdc")
}

/// The shop's wallet: it pays for calls and signs its key requests.
fn shop_wallet() -> k256::ecdsa::SigningKey {
    k256::ecdsa::SigningKey::from_bytes((&keccak256(b"shop wallet").0).into()).unwrap()
}

fn shop() -> Address {
    address_of(shop_wallet().verifying_key())
}

/// The node's address, as a client learns it: `GET /v1/node`, which needs no key.
async fn node_of(app: &Router) -> Address {
    let reply = call(app, Method::GET, "/v1/node", None, &[], None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["object"], "node");
    reply.body["address"].as_str().unwrap().parse().unwrap()
}

/// The query string of a key listing or revocation the shop's wallet signed now for `node`.
fn signed_query(node: &Address, request: KeyRequest) -> String {
    request.sign(&shop_wallet(), node, now_ms()).query(&shop())
}

/// The body of a key request for `scopes`, named `name`, that `wallet` signed at `signed_at_ms`
/// for `payer`, to `node`.
fn signed_issue(
    wallet: &k256::ecdsa::SigningKey,
    node: &Address,
    payer: Address,
    scopes: &[Scope],
    name: &str,
    signed_at_ms: u64,
) -> Value {
    let request = KeyRequest::Issue {
        scopes,
        expires_in_days: None,
        name,
    };
    let signed = request.sign(wallet, node, signed_at_ms);
    json!({
        "payer": payer,
        "scopes": scopes,
        "name": name,
        "signed_at_ms": signed.signed_at_ms,
        "signature": signed.signature,
    })
}

/// Short reviews labelled by sentiment, built from word lists.
fn reviews() -> Vec<Example> {
    let good = ["great", "love", "excellent", "perfect", "happy"];
    let bad = ["broken", "terrible", "refund", "awful", "disappointed"];
    (0..200u32)
        .map(|n| {
            let positive = n % 2 == 0;
            let words = if positive { &good } else { &bad };
            let text = format!(
                "the phone {} and the battery {}",
                words[(n as usize / 2) % 5],
                words[(n as usize / 3) % 5]
            );
            Example {
                key: keccak256(&n.to_be_bytes()),
                data: json!({ "text": text }),
                label: if positive { "positive" } else { "negative" }.into(),
            }
        })
        .collect()
}

/// A store with a sentiment classifier registered as a paid model, and the shop holding
/// `deposit` base units; returns the gateway over it and the model's id.
fn gateway(dir: &Path, deposit: u128) -> (Arc<Node>, AssetId) {
    gateway_reading_models(dir, deposit, default_models_dir())
}

/// As [`gateway`], with installed models (the sentence encoder) read from `models_dir`.
fn gateway_reading_models(dir: &Path, deposit: u128, models_dir: PathBuf) -> (Arc<Node>, AssetId) {
    gateway_configured(dir, deposit, |node| node.models_dir(models_dir))
}

/// As [`gateway`], with `configure` applied to the node before it opens.
fn gateway_configured(
    dir: &Path,
    deposit: u128,
    configure: impl FnOnce(NodeBuilder) -> NodeBuilder,
) -> (Arc<Node>, AssetId) {
    let artifacts = ArtifactStore::new(dir.join("models"));
    let trained = Classifier::train(&reviews(), &TrainOptions::default()).unwrap();
    let content = artifacts.put(&trained.classifier.to_artifact()).unwrap();
    let mut model = Manifest {
        kind: AssetKind::Model,
        name: "review-sentiment".into(),
        owner: Address::from_label("developer"),
        content,
        licence: Licence::Commercial {
            token: token(),
            price_per_call: PRICE,
            derivative_royalty: Ppm::ZERO,
        },
        parents: vec![],
        roles: vec![
            RoleShare {
                role: Role::Developer,
                share: Ppm::new(800_000).unwrap(),
                members: vec![Member {
                    account: Address::from_label("developer"),
                    weight: 1,
                }],
            },
            RoleShare {
                role: Role::ComputeNode,
                share: Ppm::new(200_000).unwrap(),
                members: vec![],
            },
        ],
    };
    model.normalise();
    let id = model.id();
    let mut journal = Journal::open(Location::DataDir(dir.to_path_buf()), &mut |_, _| {}).unwrap();
    if journal.economy().genesis().is_none() {
        journal
            .submit(vec![
                Event::Genesis(Genesis {
                    treasury: Address::from_label("treasury"),
                    protocol_fee: Ppm::ZERO,
                }),
                Event::TokenRegistered(Token {
                    address: token(),
                    symbol: "USDC".into(),
                    decimals: 6,
                }),
                Event::AssetRegistered(model),
                Event::Deposited {
                    payer: shop(),
                    token: token(),
                    amount: deposit,
                },
            ])
            .unwrap();
    }
    let signer = NodeSigner::load_or_create(&dir.join("node.key")).unwrap();
    (
        Arc::new(
            configure(Node::builder(journal, artifacts, signer))
                .open()
                .unwrap(),
        ),
        id,
    )
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    key: Option<&str>,
    extra: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let request = match body {
        Some(json) => request
            .header("content-type", "application/json")
            .body(Body::from(json.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
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

/// A chat completion request with `key`, not streamed unless `body` asks.
async fn chat(app: &Router, key: &str, body: Value) -> Reply {
    call(
        app,
        Method::POST,
        "/v1/chat/completions",
        Some(key),
        &[],
        Some(body),
    )
    .await
}

/// The shop's keys, listed with its wallet's signature.
async fn list_keys(app: &Router) -> Reply {
    let uri = format!(
        "/v1/keys?{}",
        signed_query(&node_of(app).await, KeyRequest::List)
    );
    call(app, Method::GET, &uri, None, &[], None).await
}

async fn issue(app: &Router, scopes: &[Scope]) -> String {
    let node = node_of(app).await;
    let body = signed_issue(
        &shop_wallet(),
        &node,
        shop(),
        scopes,
        "shop backend",
        now_ms(),
    );
    let reply = call(app, Method::POST, "/v1/keys", None, &[], Some(body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body["key"].as_str().unwrap().to_owned()
}

fn payer_balance(gateway: &Gateway) -> u128 {
    gateway.journal().read(|j| {
        j.economy()
            .ledger()
            .balance(&AccountRef::Payer(shop()), &token())
            .available()
    })
}

/// Every `CallMetered` in the log: (sum charged, calls).
fn metered(gateway: &Gateway) -> (u128, usize) {
    let rows = gateway
        .journal()
        .read(|j| j.read_events(0, 1_000_000))
        .unwrap();
    let mut sum = 0;
    let mut count = 0;
    for row in rows {
        if let Event::CallMetered(call) = Event::decode(&row.body).unwrap() {
            sum += call.total().unwrap();
            count += 1;
        }
    }
    (sum, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paid_classification_is_charged_once_receipted_and_replayed_on_retry() {
    let dir = tempfile::tempdir().unwrap();
    let before_s = now_ms() / 1000;
    let (services, model) = gateway(dir.path(), 1_000_000);
    let after_s = now_ms().div_ceil(1000);
    let gateway = services.gateway();
    let app = router(Arc::clone(&services));
    let key = issue(&app, &[Scope::Models, Scope::Classify]).await;

    // The key is listed without its secret; the model list shows the classifier.
    let listed = list_keys(&app).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
    assert!(!listed.body.to_string().contains(&key[4..]));
    let models = call(&app, Method::GET, "/v1/models", Some(&key), &[], None).await;
    assert_eq!(models.status, StatusCode::OK);
    assert_eq!(models.body["object"], "list");
    assert_eq!(models.body["data"][0]["id"], "review-sentiment");
    let created = models.body["data"][0]["created"].as_u64().unwrap();
    assert!(
        (before_s..=after_s).contains(&created),
        "created is when the model was registered, in seconds: {created} not in {before_s}..={after_s}"
    );

    let request = json!({
        "model": "review-sentiment",
        "input": [{ "text": "terrible, it arrived broken" }, { "text": "I love it, excellent" }],
    });
    let retry = [("idempotency-key", "order-17")];
    let first = call(
        &app,
        Method::POST,
        "/v1/classifications",
        Some(&key),
        &retry,
        Some(request.clone()),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["data"][0]["label"], "negative");
    assert_eq!(first.body["data"][1]["label"], "positive");
    assert_eq!(first.body["usage"]["cost"], (2 * PRICE).to_string());
    assert_eq!(payer_balance(gateway), 1_000_000 - 2 * PRICE);

    // The receipt is signed by the node, names the charge, and a forged one does not verify.
    let receipt = base64::engine::general_purpose::STANDARD
        .decode(first.headers[RECEIPT_HEADER].as_bytes())
        .unwrap();
    let signature = first.headers[SIGNATURE_HEADER].to_str().unwrap();
    assert_eq!(recover_signer(&receipt, signature).unwrap(), gateway.node());
    let parsed: Value = serde_json::from_slice(&receipt).unwrap();
    assert_eq!(parsed["charged"], (2 * PRICE).to_string());
    assert_eq!(parsed["model"], json!(model));
    assert_eq!(parsed["payer"], json!(shop()));
    let forged = String::from_utf8(receipt).unwrap().replace("4000", "1");
    assert_ne!(
        recover_signer(forged.as_bytes(), signature).unwrap(),
        gateway.node()
    );

    // A retry with the same key returns the same answer and charges nothing more.
    let again = call(
        &app,
        Method::POST,
        "/v1/classifications",
        Some(&key),
        &retry,
        Some(request.clone()),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.headers[REPLAYED_HEADER], "true");
    assert_eq!(again.body, first.body);
    assert_eq!(payer_balance(gateway), 1_000_000 - 2 * PRICE);
    let other = json!({ "model": "review-sentiment", "input": { "text": "great" } });
    let reused = call(
        &app,
        Method::POST,
        "/v1/classifications",
        Some(&key),
        &retry,
        Some(other.clone()),
    )
    .await;
    assert_eq!(reused.status, StatusCode::BAD_REQUEST);
    assert_eq!(reused.body["error"]["code"], "idempotency_key_reused");

    // After a restart the retry still gets the first answer, receipt included, from the store,
    // and is not charged again; another body under the key is still refused.
    drop(app);
    drop(services);
    let (services, _) = self::gateway(dir.path(), 1_000_000);
    let gateway = services.gateway();
    let app = router(Arc::clone(&services));
    let after = call(
        &app,
        Method::POST,
        "/v1/classifications",
        Some(&key),
        &retry,
        Some(request),
    )
    .await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.body);
    assert_eq!(after.headers[REPLAYED_HEADER], "true");
    assert_eq!(after.body, first.body);
    assert_eq!(after.headers[RECEIPT_HEADER], first.headers[RECEIPT_HEADER]);
    assert_eq!(
        after.headers[SIGNATURE_HEADER],
        first.headers[SIGNATURE_HEADER]
    );
    let reused = call(
        &app,
        Method::POST,
        "/v1/classifications",
        Some(&key),
        &retry,
        Some(other),
    )
    .await;
    assert_eq!(reused.status, StatusCode::BAD_REQUEST, "{}", reused.body);
    assert_eq!(reused.body["error"]["code"], "idempotency_key_reused");
    assert_eq!(payer_balance(gateway), 1_000_000 - 2 * PRICE);
    assert_eq!(metered(gateway), (2 * PRICE, 1));

    // The serving node is paid its compute share at the epoch close.
    gateway.journal().close_epoch().unwrap();
    let node_paid = gateway.journal().read(|j| {
        j.economy()
            .ledger()
            .balance(&AccountRef::Beneficiary(gateway.node()), &token())
            .credits
    });
    assert_eq!(node_paid, 2 * PRICE / 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_openai_errors_that_say_what_to_do_and_cost_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (services, _) = gateway(dir.path(), 3_000);
    let gateway = services.gateway();
    let app = router(Arc::clone(&services));
    let key = issue(&app, &[Scope::Classify]).await;
    let classify = |body: Value, key: Option<String>| {
        let app = app.clone();
        async move {
            call(
                &app,
                Method::POST,
                "/v1/classifications",
                key.as_deref(),
                &[],
                Some(body),
            )
            .await
        }
    };
    let good = json!({ "model": "review-sentiment", "input": { "text": "great" } });

    let cases = [
        (
            classify(good.clone(), None).await,
            StatusCode::UNAUTHORIZED,
            "missing_api_key",
        ),
        (
            classify(good.clone(), Some("crv_wrong".into())).await,
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
        ),
        (
            call(&app, Method::GET, "/v1/models", Some(&key), &[], None).await,
            StatusCode::FORBIDDEN,
            "insufficient_scope",
        ),
        (
            classify(json!({ "model": "gpt-9", "input": {} }), Some(key.clone())).await,
            StatusCode::NOT_FOUND,
            "model_not_found",
        ),
        (
            classify(
                json!({ "model": "review-sentiment", "input": { "body": "x" } }),
                Some(key.clone()),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_value",
        ),
        (
            classify(
                json!({ "model": "review-sentiment", "input": 7 }),
                Some(key.clone()),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_value",
        ),
        (
            classify(json!({ "model": "review-sentiment" }), Some(key.clone())).await,
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        // Two inputs cost 4,000 of the 3,000 held.
        (
            classify(
                json!({ "model": "review-sentiment", "input": [{ "text": "a" }, { "text": "b" }] }),
                Some(key.clone()),
            )
            .await,
            StatusCode::TOO_MANY_REQUESTS,
            "insufficient_quota",
        ),
    ];
    for (reply, status, code) in cases {
        assert_eq!(reply.status, status, "{}", reply.body);
        let error = &reply.body["error"];
        assert_eq!(error["code"], code, "{}", reply.body);
        for field in ["message", "type", "param", "code"] {
            assert!(error.get(field).is_some(), "{field} missing from {error}");
        }
        assert!(!error["message"].as_str().unwrap().contains(&key[4..]));
    }
    assert_eq!(payer_balance(gateway), 3_000);
    assert_eq!(metered(gateway), (0, 0));

    // A revoked key stops working at once.
    let revoke = |id: String| {
        let app = app.clone();
        async move {
            let node = node_of(&app).await;
            let query = signed_query(&node, KeyRequest::Revoke { key: &id });
            call(
                &app,
                Method::DELETE,
                &format!("/v1/keys/{id}?{query}"),
                None,
                &[],
                None,
            )
            .await
        }
    };
    let id = services.keys().of(&shop())[0].id.clone();
    let revoked = revoke(id.clone()).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    let after = classify(good, Some(key.clone())).await;
    assert_eq!(after.body["error"]["code"], "invalid_api_key");

    // Revoking it again names the key as unknown (404), and an id not shaped like one is the
    // request's fault (400); neither writes a record.
    let again = revoke(id.clone()).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.body);
    assert_eq!(again.body["error"]["code"], "unknown_key");
    assert!(
        again.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked already or never issued"),
        "{}",
        again.body
    );
    let malformed = revoke("key_12345".into()).await;
    assert_eq!(
        malformed.status,
        StatusCode::BAD_REQUEST,
        "{}",
        malformed.body
    );
    assert_eq!(malformed.body["error"]["param"], "id");
    let revocations: Vec<KeyRecord> = services
        .journal()
        .read(|j| caravan_node::access::recorded(j, &["key_revoked"]))
        .unwrap();
    assert_eq!(revocations.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_payers_wallet_issues_lists_and_revokes_its_keys_and_a_signed_request_issues_one_key()
 {
    let dir = tempfile::tempdir().unwrap();
    let (services, _) = gateway(dir.path(), 1_000_000);
    let gateway = services.gateway();
    let app = router(Arc::clone(&services));
    let post = |body: Value| {
        let app = app.clone();
        async move { call(&app, Method::POST, "/v1/keys", None, &[], Some(body)).await }
    };
    let thief = k256::ecdsa::SigningKey::from_bytes((&keccak256(b"thief").0).into()).unwrap();
    let node = node_of(&app).await;
    assert_eq!(node, gateway.node());
    let scopes = [Scope::Chat];
    let now = now_ms();
    let unsigned = json!({ "payer": shop(), "scopes": ["chat"], "name": "stolen" });
    let mut widened = signed_issue(&shop_wallet(), &node, shop(), &scopes, "backend", now);
    widened["scopes"] = json!(["chat", "classify"]);
    let refused = [
        (
            post(unsigned).await,
            StatusCode::UNAUTHORIZED,
            "signature_required",
        ),
        // Someone else's wallet signing for the shop.
        (
            post(signed_issue(&thief, &node, shop(), &scopes, "stolen", now)).await,
            StatusCode::FORBIDDEN,
            "not_your_account",
        ),
        // The shop's own request, signed for another node: replayed here, it is refused.
        (
            post(signed_issue(
                &shop_wallet(),
                &Address::from_label("another node"),
                shop(),
                &scopes,
                "backend",
                now,
            ))
            .await,
            StatusCode::FORBIDDEN,
            "not_your_account",
        ),
        // The shop's signature, with a scope added after signing.
        (
            post(widened).await,
            StatusCode::FORBIDDEN,
            "not_your_account",
        ),
        // Signed ten minutes ago.
        (
            post(signed_issue(
                &shop_wallet(),
                &node,
                shop(),
                &scopes,
                "old",
                now - 600_000,
            ))
            .await,
            StatusCode::UNAUTHORIZED,
            "signature_expired",
        ),
    ];
    for (reply, status, code) in refused {
        assert_eq!(reply.status, status, "{}", reply.body);
        assert_eq!(reply.body["error"]["code"], code, "{}", reply.body);
    }
    assert!(services.keys().of(&shop()).is_empty());

    // The shop's own request issues one key; the same signed request again issues none, also
    // after a restart.
    let request = signed_issue(&shop_wallet(), &node, shop(), &scopes, "backend", now);
    let issued = post(request.clone()).await;
    assert_eq!(issued.status, StatusCode::CREATED, "{}", issued.body);
    let key = issued.body["key"].as_str().unwrap().to_owned();
    let replayed = post(request.clone()).await;
    assert_eq!(replayed.status, StatusCode::CONFLICT, "{}", replayed.body);
    assert_eq!(replayed.body["error"]["code"], "signature_reused");
    drop(app);
    drop(services);
    let (services, _) = self::gateway(dir.path(), 1_000_000);
    let app = router(Arc::clone(&services));
    let replayed = call(&app, Method::POST, "/v1/keys", None, &[], Some(request)).await;
    assert_eq!(replayed.body["error"]["code"], "signature_reused");
    assert_eq!(services.keys().of(&shop()).len(), 1);

    // Listing and revoking need the shop's signature too, on that very request.
    let id = services.keys().of(&shop())[0].id.clone();
    let thief_list = KeyRequest::List.sign(&thief, &node, now_ms());
    let unsigned_list = format!("/v1/keys?payer={}", shop());
    let thief_list = format!("/v1/keys?{}", thief_list.query(&shop()));
    // A signature for revoking another key does not revoke this one.
    let other_revoke = format!(
        "/v1/keys/{id}?{}",
        signed_query(
            &node,
            KeyRequest::Revoke {
                key: "key_0000000000000000"
            }
        )
    );
    let garbled = format!("/v1/keys?payer={}&signed_at_ms=1&signature=0x12", shop());
    for (method, uri, status, code) in [
        (
            Method::GET,
            unsigned_list,
            StatusCode::UNAUTHORIZED,
            "signature_required",
        ),
        (
            Method::GET,
            thief_list,
            StatusCode::FORBIDDEN,
            "not_your_account",
        ),
        (
            Method::DELETE,
            other_revoke,
            StatusCode::FORBIDDEN,
            "not_your_account",
        ),
        (
            Method::GET,
            garbled,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
    ] {
        let reply = call(&app, method, &uri, None, &[], None).await;
        assert_eq!(reply.status, status, "{}", reply.body);
        assert_eq!(reply.body["error"]["code"], code, "{}", reply.body);
        assert!(!reply.body.to_string().contains(&key[4..]));
    }
    let models = call(&app, Method::GET, "/v1/models", Some(&key), &[], None).await;
    assert_eq!(models.body["error"]["code"], "insufficient_scope");
    let listed = list_keys(&app).await;
    assert_eq!(listed.body["data"][0]["id"], id.as_str(), "{}", listed.body);
    assert_eq!(listed.body["data"][0]["scopes"], json!(["chat"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_clients_racing_one_balance_never_overdraw_it_and_every_charge_is_recorded() {
    race_one_balance(ChargeDurability::Committed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn answering_before_the_commit_still_never_overdraws_and_every_charge_reaches_the_store() {
    race_one_balance(ChargeDurability::Queued).await;
}

/// Returns once every charge queued so far is in the store: it makes one more durable write,
/// and commits are in order.
fn wait_for_earlier_commits(gateway: &Gateway) {
    gateway
        .journal()
        .submit(vec![Event::Deposited {
            payer: Address::from_label("another shop"),
            token: token(),
            amount: 1,
        }])
        .unwrap();
}

/// 64 clients race a balance worth 100 calls through a gateway with `durability`.
async fn race_one_balance(durability: ChargeDurability) {
    let dir = tempfile::tempdir().unwrap();
    // Enough for 100 calls; 64 clients send 4 each.
    let deposit = 100 * PRICE + PRICE / 2;
    let (services, _) = gateway_configured(dir.path(), deposit, |node| {
        node.charge_durability(durability)
    });
    let gateway = services.gateway();
    let app = router(Arc::clone(&services));
    let key = issue(&app, &[Scope::Classify]).await;
    let mut clients = Vec::new();
    for client in 0..64 {
        let app = app.clone();
        let key = key.clone();
        clients.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for n in 0..4 {
                let body = json!({ "model": "review-sentiment", "input": { "text": format!("great {client} {n}") } });
                let reply = call(&app, Method::POST, "/v1/classifications", Some(&key), &[], Some(body)).await;
                outcomes.push((reply.status, reply.body["error"]["code"].clone()));
            }
            outcomes
        }));
    }
    let mut served = 0u128;
    for client in clients {
        for (status, code) in client.await.unwrap() {
            match status {
                StatusCode::OK => served += 1,
                StatusCode::TOO_MANY_REQUESTS => assert_eq!(code, "insufficient_quota"),
                other => panic!("unexpected {other}: {code}"),
            }
        }
    }
    wait_for_earlier_commits(gateway);
    let (charged, records) = metered(gateway);
    assert_eq!(served, 100, "the balance pays for exactly 100 calls");
    assert_eq!(records as u128, served);
    assert_eq!(charged, served * PRICE);
    assert_eq!(payer_balance(gateway), deposit - charged);
    assert_eq!(gateway.meter().held(&shop(), &token()), 0);
}

/// Reading a balance (which counts what calls in flight hold) while paid calls reserve and
/// settle must never stall either: both take the meter's lock and the journal's, in one
/// order. A node that took them in opposite orders stopped answering within a second of a soak
/// mixing the two; here a watchdog fails the test instead of letting it hang.
#[test]
fn balance_reads_racing_paid_calls_never_stall_the_node() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (services, _) = gateway(dir.path(), 1 << 60);
        let app = router(Arc::clone(&services));
        let answered = runtime.block_on(async {
            let key = issue(&app, &[Scope::Classify, Scope::Models]).await;
            let mut clients = Vec::new();
            for client in 0..16 {
                let (app, key) = (app.clone(), key.clone());
                clients.push(tokio::spawn(async move {
                    let mut statuses = Vec::new();
                    for n in 0..40 {
                        let reply = if client % 2 == 0 {
                            let body = json!({ "model": "review-sentiment",
                                "input": { "text": format!("great {client} {n}") } });
                            call(
                                &app,
                                Method::POST,
                                "/v1/classifications",
                                Some(&key),
                                &[],
                                Some(body),
                            )
                            .await
                        } else {
                            call(&app, Method::GET, "/v1/balance", Some(&key), &[], None).await
                        };
                        statuses.push(reply.status);
                    }
                    statuses
                }));
            }
            let mut answered = Vec::new();
            for client in clients {
                answered.extend(client.await.unwrap());
            }
            answered
        });
        let _ = done.send(answered);
    });
    let answered = finished
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("640 calls and balance reads are answered within two minutes, not stalled");
    assert_eq!(answered.len(), 640);
    assert!(
        answered.iter().all(|status| *status == StatusCode::OK),
        "{answered:?}"
    );
}

/// A stand-in OpenAI-compatible upstream (allowed here: the test is about the gateway): it
/// answers with `words` words, streamed one per chunk every `delay_ms`, and says whether a
/// stream was cut off before its end.
struct MockUpstream {
    url: String,
    address: std::net::SocketAddr,
    seen: Arc<std::sync::Mutex<Vec<Value>>>,
    cancelled: Arc<std::sync::atomic::AtomicBool>,
}

/// What the mock upstream records: the requests it saw, and whether a stream was cut off.
type Observed = (
    Arc<std::sync::Mutex<Vec<Value>>>,
    Arc<std::sync::atomic::AtomicBool>,
);

/// Sets `cancelled` if dropped before the stream's end.
struct Cutoff {
    cancelled: Arc<std::sync::atomic::AtomicBool>,
    done: bool,
}

impl Drop for Cutoff {
    fn drop(&mut self) {
        if !self.done {
            self.cancelled
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

async fn mock_upstream(words: usize, delay_ms: u64) -> MockUpstream {
    use axum::routing::post;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let cancelled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let state = (Arc::clone(&seen), Arc::clone(&cancelled));
    let app = Router::new()
        .route(
            "/v1/chat/completions",
            post(
                move |axum::extract::State((seen, cancelled)): axum::extract::State<Observed>,
                      axum::Json(body): axum::Json<Value>| async move {
                    seen.lock().unwrap().push(body.clone());
                    let usage = json!({ "prompt_tokens": 11, "completion_tokens": words,
                        "total_tokens": 11 + words });
                    if body["stream"] != true {
                        let text: Vec<String> = (0..words).map(|i| format!("word{i}")).collect();
                        return axum::Json(json!({ "id": "up-1", "object": "chat.completion",
                            "created": 1, "model": "llama-up",
                            "choices": [{ "index": 0, "finish_reason": "stop",
                                "message": { "role": "assistant", "content": text.join(" ") } }],
                            "usage": usage }))
                        .into_response();
                    }
                    let include_usage = body["stream_options"]["include_usage"] == true;
                    let cutoff = Cutoff {
                        cancelled,
                        done: false,
                    };
                    let frames =
                        futures_util::stream::unfold((0usize, cutoff), move |(i, mut cutoff)| {
                            let usage = usage.clone();
                            async move {
                                let frame = if i < words {
                                    // Even a zero sleep waits for the timer's next
                                    // millisecond tick, which a fuzz run pays per frame.
                                    if delay_ms > 0 {
                                        tokio::time::sleep(std::time::Duration::from_millis(
                                            delay_ms,
                                        ))
                                        .await;
                                    }
                                    json!({ "id": "up-1", "object": "chat.completion.chunk",
                                        "created": 1, "model": "llama-up",
                                        "choices": [{ "index": 0,
                                            "delta": { "content": format!("word{i} ") } }] })
                                    .to_string()
                                } else if i == words && include_usage {
                                    json!({ "id": "up-1", "object": "chat.completion.chunk",
                                        "created": 1, "model": "llama-up", "choices": [],
                                        "usage": usage })
                                    .to_string()
                                } else if i <= words + 1 {
                                    cutoff.done = true;
                                    "[DONE]".to_owned()
                                } else {
                                    return None;
                                };
                                let next = if i == words && !include_usage {
                                    words + 1
                                } else {
                                    i + 1
                                };
                                let next = if frame == "[DONE]" { words + 2 } else { next };
                                Some((
                                    Ok::<_, std::convert::Infallible>(format!("data: {frame}\n\n")),
                                    (next, cutoff),
                                ))
                            }
                        });
                    (
                        [("content-type", "text/event-stream")],
                        Body::from_stream(frames),
                    )
                        .into_response()
                },
            ),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let url = format!("http://{address}/v1");
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    MockUpstream {
        url,
        address,
        seen,
        cancelled,
    }
}

use axum::response::IntoResponse;

/// Registers a chat model forwarding to `url`: 1,000 per call, 0.1 per prompt token and 0.4
/// per completion token (base units).
fn chat_model(gateway: &Gateway, name: &str, url: &str) -> AssetId {
    common::upstream_chat_model(gateway, name, url, token(), 1_000)
}

/// The whole body of a streamed reply, frame by frame.
fn chat_request(key: &str, body: &Value) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri("/v1/chat/completions")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// A chat request sent with `Idempotency-Key: idempotency`.
fn keyed_chat_request(key: &str, body: &Value, idempotency: &str) -> Request<Body> {
    let mut request = chat_request(key, body);
    request
        .headers_mut()
        .insert("idempotency-key", idempotency.parse().unwrap());
    request
}

async fn stream_text(app: &Router, key: &str, body: Value) -> (StatusCode, String) {
    let request = chat_request(key, &body);
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

fn chunks(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str(data).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chat_calls_are_forwarded_metered_by_tokens_and_streamed_with_a_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let (services, _) = gateway(dir.path(), 1_000_000);
    let gateway = services.gateway();
    let upstream = mock_upstream(5, 1).await;
    chat_model(gateway, "chat-upstream", &upstream.url);
    let app = router(Arc::clone(&services));
    let key = issue(&app, &[Scope::Models, Scope::Chat]).await;
    let models = call(&app, Method::GET, "/v1/models", Some(&key), &[], None).await;
    assert!(
        models.body.to_string().contains("chat-upstream"),
        "{}",
        models.body
    );

    // Not streamed: 1,000 + ceil(11 × 0.1) + ceil(5 × 0.4) = 1,004, from the upstream's usage.
    let ask =
        json!({ "model": "chat-upstream", "messages": [{ "role": "user", "content": "hello" }] });
    let reply = chat(&app, &key, ask.clone()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["model"], "chat-upstream");
    assert_eq!(
        reply.body["choices"][0]["message"]["content"],
        "word0 word1 word2 word3 word4"
    );
    assert_eq!(payer_balance(gateway), 1_000_000 - 1_004);
    let receipt = base64::engine::general_purpose::STANDARD
        .decode(reply.headers[RECEIPT_HEADER].as_bytes())
        .unwrap();
    let signature = reply.headers[SIGNATURE_HEADER].to_str().unwrap();
    assert_eq!(recover_signer(&receipt, signature).unwrap(), gateway.node());
    let whole_id = reply.body["id"].as_str().unwrap().to_owned();
    assert!(whole_id.starts_with("chatcmpl-"), "{whole_id}");
    assert_eq!(
        serde_json::from_slice::<Value>(&receipt).unwrap()["call"],
        whole_id.as_str(),
        "the answer and its receipt name one call"
    );
    {
        let seen = upstream.seen.lock().unwrap();
        assert_eq!(seen[0]["model"], "llama-up");
        assert_eq!(seen[0]["max_tokens"], 4_096, "the completion is bounded");
    }

    // Streamed without asking for usage: the upstream is asked anyway, the client sees none,
    // and the call is charged the same.
    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    let (status, text) = stream_text(&app, &key, streamed.clone()).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let frames = chunks(&text);
    assert_eq!(frames.len(), 5, "{text}");
    assert!(
        frames
            .iter()
            .all(|f| f.get("usage").is_none() && f["model"] == "chat-upstream")
    );
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert_eq!(
        upstream.seen.lock().unwrap()[1]["stream_options"]["include_usage"],
        true
    );
    assert_eq!(payer_balance(gateway), 1_000_000 - 2 * 1_004);
    let comment = text
        .lines()
        .find_map(|l| l.strip_prefix(": caravan-receipt "))
        .expect("the stream carries its receipt");
    let (encoded, signature) = comment.split_once(' ').unwrap();
    let receipt = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    assert_eq!(recover_signer(&receipt, signature).unwrap(), gateway.node());
    let receipt: Value = serde_json::from_slice(&receipt).unwrap();
    assert_eq!(receipt["charged"], "1004");
    assert!(
        frames.iter().all(|frame| frame["id"] == receipt["call"]),
        "every chunk carries the receipt's call id, not the upstream's: {text}"
    );
    assert_ne!(
        receipt["call"],
        whole_id.as_str(),
        "each call has its own id"
    );

    // Asking for usage shows it.
    streamed["stream_options"] = json!({ "include_usage": true });
    let (_, text) = stream_text(&app, &key, streamed).await;
    let usage = chunks(&text)
        .into_iter()
        .find_map(|f| f.get("usage").cloned());
    assert_eq!(usage.unwrap()["completion_tokens"], 5);
    assert_eq!(metered(gateway), (3 * 1_004, 3));

    // An upstream that is down costs nothing and says so.
    chat_model(gateway, "chat-down", "http://127.0.0.1:9/v1");
    let down = json!({ "model": "chat-down", "messages": [{ "role": "user", "content": "hi" }] });
    let reply = chat(&app, &key, down).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], "upstream_error");
    assert_eq!(metered(gateway), (3 * 1_004, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_model_behind_https_is_reached_once_its_authority_is_trusted() {
    let upstream = mock_upstream(3, 0).await;
    let front = caravan_testkit::TlsFront::start(upstream.address).await;
    let ask = json!({ "model": "chat-tls", "messages": [{ "role": "user", "content": "hi" }] });

    // A node that trusts only the system's authorities refuses the certificate, charges
    // nothing and says what to do.
    let dir = tempfile::tempdir().unwrap();
    let (services, _) = gateway(dir.path(), 1_000_000);
    let gateway = services.gateway();
    chat_model(gateway, "chat-tls", &front.url("/v1"));
    let app = router(Arc::clone(&services));
    let key = issue(&app, &[Scope::Chat]).await;
    let reply = chat(&app, &key, ask.clone()).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.body);
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("certificate"), "{message}");
    assert!(message.contains("--extra-ca-certs"), "{message}");
    assert_eq!(metered(gateway), (0, 0));
    assert_eq!(payer_balance(gateway), 1_000_000);

    // A node given the authority forwards, streams and charges as over plain HTTP:
    // 1,000 + ceil(11 × 0.1) + ceil(3 × 0.4) = 1,004 per call.
    let trusting = reqwest::Client::builder()
        .tls_certs_merge(reqwest::Certificate::from_pem_bundle(front.ca_pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (services, _) =
        gateway_configured(dir.path(), 1_000_000, |node| node.http_client(trusting));
    let gateway = services.gateway();
    chat_model(gateway, "chat-tls", &front.url("/v1"));
    let app = router(Arc::clone(&services));
    let key = issue(&app, &[Scope::Chat]).await;
    let reply = chat(&app, &key, ask.clone()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body["choices"][0]["message"]["content"],
        "word0 word1 word2"
    );
    let mut streamed = ask;
    streamed["stream"] = json!(true);
    let (status, text) = stream_text(&app, &key, streamed).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(chunks(&text).len(), 3, "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert_eq!(metered(gateway), (2 * 1_004, 2));
    assert_eq!(payer_balance(gateway), 1_000_000 - 2 * 1_004);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_call_answered_before_its_commit_is_charged_receipted_and_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (services, _) = gateway_configured(dir.path(), 1_000_000, |node| {
        node.charge_durability(ChargeDurability::Queued)
    });
    let gateway = services.gateway();
    assert!(gateway.answers_before_commit());
    let upstream = mock_upstream(5, 1).await;
    chat_model(gateway, "chat-upstream", &upstream.url);
    let app = router(Arc::clone(&services));
    let key = issue(&app, &[Scope::Chat]).await;
    let ask =
        json!({ "model": "chat-upstream", "messages": [{ "role": "user", "content": "hello" }] });
    let retry = [("idempotency-key", "queued-1")];
    for _ in 0..2 {
        let reply = call(
            &app,
            Method::POST,
            "/v1/chat/completions",
            Some(&key),
            &retry,
            Some(ask.clone()),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let receipt = base64::engine::general_purpose::STANDARD
            .decode(reply.headers[RECEIPT_HEADER].as_bytes())
            .unwrap();
        let signature = reply.headers[SIGNATURE_HEADER].to_str().unwrap();
        assert_eq!(recover_signer(&receipt, signature).unwrap(), gateway.node());
    }
    // Charged once (the retry replays), as with committed charges: 1,000 + 2 + 2.
    assert_eq!(payer_balance(gateway), 1_000_000 - 1_004);
    wait_for_earlier_commits(gateway);
    assert_eq!(metered(gateway), (1_004, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_streamed_answer_is_replayed_whole_after_a_restart_and_charged_once() {
    let dir = tempfile::tempdir().unwrap();
    let (services, _) = gateway(dir.path(), 1_000_000);
    let gateway = services.gateway();
    let upstream = mock_upstream(5, 1).await;
    chat_model(gateway, "chat-upstream", &upstream.url);
    let app = router(Arc::clone(&services));
    let key = issue(&app, &[Scope::Chat]).await;
    let ask = json!({ "model": "chat-upstream", "stream": true,
        "messages": [{ "role": "user", "content": "hello" }] });
    let send = |app: Router| {
        let request = keyed_chat_request(&key, &ask, "stream-2");
        async move {
            let response = app.oneshot(request).await.unwrap();
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            (parts, String::from_utf8(bytes.to_vec()).unwrap())
        }
    };
    let (first, streamed) = send(app.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{streamed}");
    assert!(streamed.ends_with("data: [DONE]\n\n"), "{streamed}");
    assert_eq!(payer_balance(gateway), 1_000_000 - 1_004);

    drop(app);
    drop(services);
    let (services, _) = self::gateway(dir.path(), 1_000_000);
    let gateway = services.gateway();
    let (again, replayed) = send(router(Arc::clone(&services))).await;
    assert_eq!(again.status, StatusCode::OK, "{replayed}");
    assert_eq!(again.headers[REPLAYED_HEADER], "true");
    assert_eq!(again.headers["content-type"], "text/event-stream");
    assert_eq!(replayed, streamed, "the same frames, receipt included");
    assert_eq!(payer_balance(gateway), 1_000_000 - 1_004);
    assert_eq!(metered(gateway), (1_004, 1));
    assert_eq!(upstream.seen.lock().unwrap().len(), 1, "not asked again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_leaves_mid_stream_pays_for_what_was_produced_and_the_upstream_stops() {
    use http_body_util::BodyExt;
    let dir = tempfile::tempdir().unwrap();
    let (services, _) = gateway(dir.path(), 1_000_000);
    let gateway = services.gateway();
    let upstream = mock_upstream(200, 10).await;
    chat_model(gateway, "chat-upstream", &upstream.url);
    let app = router(Arc::clone(&services));
    let key = issue(&app, &[Scope::Chat]).await;
    let ask = json!({ "model": "chat-upstream", "stream": true,
        "messages": [{ "role": "user", "content": "hello" }] });
    let request = keyed_chat_request(&key, &ask, "stream-1");
    let response = app.clone().oneshot(request).await.unwrap();
    let mut body = response.into_body();
    for _ in 0..3 {
        body.frame().await.unwrap().unwrap();
    }
    drop(body);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while metered(gateway).1 == 0 || !upstream.cancelled.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(
            std::time::Instant::now() < deadline,
            "no charge or no cancellation"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // 1,000 + the prompt estimate (ceil(7 bytes / 4) = 2 tokens → 1) + what was produced
    // (at least the 3 chunks read, far fewer than 200 → at most 80).
    let (charged, records) = metered(gateway);
    assert_eq!(records, 1);
    assert!(
        (1_000 + 1 + 2..1_000 + 1 + 80).contains(&charged),
        "charged {charged}"
    );
    assert_eq!(payer_balance(gateway), 1_000_000 - charged);
    assert_eq!(gateway.meter().held(&shop(), &token()), 0);
    // The client's retry under the same key is told it was charged (after "still running",
    // which clients retry, while the charge is being marked), and is not charged again.
    let send_retry = |app: Router| {
        let (key, ask) = (key.clone(), ask.clone());
        async move {
            let idempotency = [("idempotency-key", "stream-1")];
            let path = "/v1/chat/completions";
            call(
                &app,
                Method::POST,
                path,
                Some(&key),
                &idempotency,
                Some(ask),
            )
            .await
        }
    };
    let retry = loop {
        let retry = send_retry(app.clone()).await;
        if retry.body["error"]["code"] != "idempotency_in_progress" {
            break retry;
        }
        assert!(std::time::Instant::now() < deadline, "{}", retry.body);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    assert_eq!(retry.status, StatusCode::CONFLICT, "{}", retry.body);
    assert_eq!(retry.body["error"]["code"], "idempotency_key_charged");
    assert_eq!(metered(gateway), (charged, 1));

    // After a restart memory knows the request only as "maybe charged"; the store's index says
    // it was, and there is no answer to give: still refused, still charged once.
    drop(app);
    drop(services);
    let (services, _) = self::gateway(dir.path(), 1_000_000);
    let retry = send_retry(router(Arc::clone(&services))).await;
    assert_eq!(retry.status, StatusCode::CONFLICT, "{}", retry.body);
    assert_eq!(retry.body["error"]["code"], "idempotency_key_charged");
    assert_eq!(metered(services.gateway()), (charged, 1));
    assert_eq!(upstream.seen.lock().unwrap().len(), 1, "not asked again");
}

/// Memory keeps the day's charged requests in a filter of fixed size that may take a new
/// request for a charged one. The store's index then says it was never charged, so the call
/// runs, is charged once, and its retry is replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_call_the_memory_takes_for_a_charged_one_runs_and_is_charged_once() {
    use caravan_node::gateway::idempotency::request_id;
    let dir = tempfile::tempdir().unwrap();
    let (services, _) = gateway(dir.path(), 1_000_000);
    let gateway = services.gateway();
    let app = router(Arc::clone(&services));
    let key = issue(&app, &[Scope::Classify]).await;
    let request = json!({ "model": "review-sentiment", "input": { "text": "great phone" } });
    let classify = || {
        call(
            &app,
            Method::POST,
            "/v1/classifications",
            Some(&key),
            &[("idempotency-key", "fresh-1")],
            Some(request.clone()),
        )
    };
    // The filter's false positive, made on purpose: the id is marked, nothing was charged.
    gateway
        .idempotency()
        .charged_earlier(request_id(&shop(), "fresh-1"), now_ms());
    let first = classify().await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert!(first.headers.get(REPLAYED_HEADER).is_none());
    assert_eq!(payer_balance(gateway), 1_000_000 - PRICE);
    let again = classify().await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.headers[REPLAYED_HEADER], "true");
    assert_eq!(again.body, first.body);
    assert_eq!(payer_balance(gateway), 1_000_000 - PRICE);
    assert_eq!(metered(gateway), (PRICE, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_call_pays_the_agent_and_each_component_it_called_with_the_trace() {
    use caravan_core::{EdgeKind, ParentEdge};
    use caravan_node::gateway::agent::{AgentProgram, ChatStep, ClassifyStep};
    let dir = tempfile::tempdir().unwrap();
    let (services, classifier) = gateway(dir.path(), 1_000_000);
    let gateway = services.gateway();
    let upstream = mock_upstream(5, 1).await;
    let chat_id = chat_model(gateway, "chat-upstream", &upstream.url);
    let program = AgentProgram {
        classify: Some(ClassifyStep {
            model: classifier,
            field: "text".into(),
        }),
        chat: ChatStep {
            model: chat_id,
            system: "The customer sounds {label}. Answer kindly.".into(),
        },
    };
    let agent = |parents: Vec<AssetId>| {
        let mut manifest = Manifest {
            kind: AssetKind::Agent,
            name: "support-agent".into(),
            owner: Address::from_label("agent builder"),
            content: program.content_hash(),
            licence: Licence::Commercial {
                token: token(),
                price_per_call: 500,
                derivative_royalty: Ppm::ZERO,
            },
            parents: parents
                .into_iter()
                .map(|parent| ParentEdge {
                    parent,
                    kind: EdgeKind::ComposedOf,
                    share: Ppm::ZERO,
                })
                .collect(),
            roles: vec![],
        };
        manifest.normalise();
        manifest
    };
    // Every model the program calls must be declared, so its lineage is paid.
    let undeclared = gateway
        .register_agent(agent(vec![chat_id]), program.clone())
        .unwrap_err();
    assert!(
        undeclared.to_string().contains("COMPOSED_OF"),
        "{undeclared}"
    );
    let agent_id = gateway
        .register_agent(agent(vec![classifier, chat_id]), program)
        .unwrap();

    let app = router(Arc::clone(&services));
    let key = issue(&app, &[Scope::Chat]).await;
    let ask = json!({ "model": "support-agent",
        "messages": [{ "role": "user", "content": "terrible, it arrived broken" }] });
    let reply = chat(&app, &key, ask).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["model"], "support-agent");
    // The chat model saw the agent's system message with the classifier's label.
    let seen = upstream.seen.lock().unwrap()[0].clone();
    assert_eq!(seen["messages"][0]["role"], "system");
    assert_eq!(
        seen["messages"][0]["content"],
        "The customer sounds negative. Answer kindly."
    );
    // 500 (agent) + 2,000 (classifier) + 1,004 (chat: 1,000 + ceil(11×0.1) + ceil(5×0.4)).
    assert_eq!(payer_balance(gateway), 1_000_000 - 3_504);
    let rows = gateway
        .journal()
        .read(|j| j.read_events(0, 1_000_000))
        .unwrap();
    let metered_call = rows
        .iter()
        .find_map(|row| match Event::decode(&row.body).unwrap() {
            Event::CallMetered(call) => Some(call),
            _ => None,
        })
        .unwrap();
    let parts: Vec<(AssetId, u128)> = metered_call
        .parts
        .iter()
        .map(|p| (p.asset, p.amount))
        .collect();
    assert_eq!(
        parts,
        vec![(agent_id, 500), (classifier, PRICE), (chat_id, 1_004)]
    );
    let trace: Value = serde_json::from_str(&metered_call.trace).unwrap();
    assert_eq!(trace.as_array().unwrap().len(), 3);
    assert_eq!(trace[1]["label"], "negative");
    assert_eq!(trace[2]["completion_tokens"], 5);
    let receipt = base64::engine::general_purpose::STANDARD
        .decode(reply.headers[RECEIPT_HEADER].as_bytes())
        .unwrap();
    let receipt: Value = serde_json::from_slice(&receipt).unwrap();
    assert_eq!(receipt["charged"], "3504");
    assert_eq!(receipt["model"], json!(agent_id));

    // The shop's usage: the call counted once, against the agent it called; each component
    // used by it, with what it was paid.
    let reader = issue(&app, &[Scope::Models]).await;
    let usage = call(
        &app,
        Method::GET,
        "/v1/usage?days=7",
        Some(&reader),
        &[],
        None,
    )
    .await;
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.body);
    assert_eq!(usage.body["payer"], json!(shop()));
    assert_eq!(usage.body["days"], 7);
    let usdc = &usage.body["tokens"][0];
    assert_eq!(
        (usdc["calls"].as_u64(), usdc["amount"].as_str()),
        (Some(1), Some("3504"))
    );
    let per_day = usdc["per_day"].as_array().unwrap();
    assert_eq!(per_day.len(), 7, "every day, those without calls too");
    assert_eq!(per_day[6]["amount"], "3504", "today is the last");
    assert_eq!(per_day[0]["amount"], "0");
    let models: Vec<(String, u64, u64, String)> = usdc["per_model"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_owned(),
                m["calls"].as_u64().unwrap(),
                m["uses"].as_u64().unwrap(),
                m["amount"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        models,
        [
            ("review-sentiment".to_owned(), 0, 1, "2000".to_owned()),
            ("chat-upstream".to_owned(), 0, 1, "1004".to_owned()),
            ("support-agent".to_owned(), 1, 1, "500".to_owned()),
        ],
        "the largest spending first"
    );
    for bad in [
        "/v1/usage?days=0",
        "/v1/usage?days=367",
        "/v1/usage?days=week",
    ] {
        let refused = call(&app, Method::GET, bad, Some(&reader), &[], None).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            refused.body
        );
        assert_eq!(refused.body["error"]["param"], "days", "{bad}");
    }
    let chat_only = call(&app, Method::GET, "/v1/usage", Some(&key), &[], None).await;
    assert_eq!(
        chat_only.status,
        StatusCode::FORBIDDEN,
        "needs the models scope"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_posts_a_signed_evaluation_and_a_forged_one_is_refused() {
    use caravan_core::Attestation;
    let dir = tempfile::tempdir().unwrap();
    let (services, model) = gateway(dir.path(), 1_000);
    let app = router(Arc::clone(&services));
    let signed = Attestation::sign(
        &[7; 32],
        model,
        keccak256(b"my test set"),
        "accuracy",
        912_000,
        1,
    )
    .unwrap();
    let body = |attestation: &Attestation| {
        let mut body = serde_json::to_value(attestation).unwrap();
        body.as_object_mut().unwrap().remove("model");
        body
    };
    let uri = "/v1/models/review-sentiment/attestations";
    let posted = call(&app, Method::POST, uri, None, &[], Some(body(&signed))).await;
    assert_eq!(posted.status, StatusCode::CREATED, "{}", posted.body);
    assert_eq!(posted.body["validator"], json!(signed.validator));

    let inflated = Attestation {
        value_micros: 999_000,
        ..signed.clone()
    };
    let refused = call(&app, Method::POST, uri, None, &[], Some(body(&inflated))).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(refused.body["error"]["param"], "signature");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not by the validator"),
        "{}",
        refused.body
    );
    let listed = call(&app, Method::GET, uri, None, &[], None).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["data"][0]["value_micros"], 912_000);
    let unknown = call(
        &app,
        Method::GET,
        "/v1/models/nope/attestations",
        None,
        &[],
        None,
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

/// The installed sentence encoder; the test fails, naming the install script, when it is not
/// installed (`scripts/test.sh` installs it before the tests).
fn installed_encoder() -> SentenceEncoder {
    SentenceEncoder::load_installed(&default_models_dir()).unwrap_or_else(|error| {
        panic!(
            "{error}; run scripts/models/install.sh (or scripts/test.sh, which installs everything the tests need)"
        )
    })
}

/// Registers all-MiniLM-L6-v2 as the paid model `minilm`: 100 base units per call and one per
/// token read.
fn embedding_model(gateway: &Gateway, encoder: &SentenceEncoder) -> AssetId {
    let serving = EncoderServing {
        encoder: MINILM.into(),
        weights: encoder.weights_hash(),
        dimensions: 384,
        input_per_million: 1_000_000,
    };
    let mut manifest = Manifest {
        kind: AssetKind::Model,
        name: "minilm".into(),
        owner: Address::from_label("developer"),
        content: serving.content_hash(),
        licence: Licence::Commercial {
            token: token(),
            price_per_call: 100,
            derivative_royalty: Ppm::ZERO,
        },
        parents: vec![],
        roles: vec![],
    };
    manifest.normalise();
    gateway.register_encoder(manifest, serving).unwrap()
}

fn floats(value: &Value) -> Vec<f32> {
    match value {
        Value::Array(numbers) => numbers.iter().map(|n| n.as_f64().unwrap() as f32).collect(),
        Value::String(text) => base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        other => panic!("not an embedding: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_are_charged_by_the_tokens_read_in_any_input_shape_and_format() {
    let encoder = installed_encoder();
    let dir = tempfile::tempdir().unwrap();
    let (services, _) = gateway(dir.path(), 1_000_000);
    let gateway = services.gateway();
    let model = embedding_model(gateway, &encoder);
    let app = router(Arc::clone(&services));
    let key = issue(&app, &[Scope::Models, Scope::Embeddings]).await;
    let models = call(&app, Method::GET, "/v1/models", Some(&key), &[], None).await;
    let listed = models.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "minilm")
        .cloned()
        .unwrap();
    assert_eq!(listed["endpoint"], "/v1/embeddings");
    let embed = |body: Value| {
        let app = app.clone();
        let key = key.clone();
        async move {
            call(
                &app,
                Method::POST,
                "/v1/embeddings",
                Some(&key),
                &[],
                Some(body),
            )
            .await
        }
    };

    // "hello world" is [CLS] hello world [SEP]: four tokens, 100 + 4 base units.
    let text = embed(json!({ "model": "minilm", "input": "hello world" })).await;
    assert_eq!(text.status, StatusCode::OK, "{}", text.body);
    assert_eq!(text.body["object"], "list");
    assert_eq!(text.body["data"][0]["object"], "embedding");
    assert_eq!(text.body["usage"]["prompt_tokens"], 4);
    let vector = floats(&text.body["data"][0]["embedding"]);
    assert_eq!(vector.len(), 384);
    let norm: f32 = vector.iter().map(|v| v * v).sum();
    assert!((norm - 1.0).abs() < 1e-4);
    assert_eq!(payer_balance(gateway), 1_000_000 - 104);
    let receipt: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(text.headers[RECEIPT_HEADER].as_bytes())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(receipt["charged"], "104");
    assert_eq!(receipt["model"], json!(model));

    // The same words as token ids, and as base64, give the same vector at the same price.
    let ids =
        embed(json!({ "model": "minilm", "input": [7592, 2088], "encoding_format": "base64" }))
            .await;
    assert_eq!(ids.status, StatusCode::OK, "{}", ids.body);
    assert_eq!(ids.body["usage"]["prompt_tokens"], 4);
    for (a, b) in floats(&ids.body["data"][0]["embedding"])
        .iter()
        .zip(&vector)
    {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
    assert_eq!(payer_balance(gateway), 1_000_000 - 208);

    // A batch is one call: one per-call price plus every token, answers in input order.
    let batch = embed(json!({ "model": "minilm", "input": ["hello world", "a longer sentence about the sea", "hi"] }))
        .await;
    assert_eq!(batch.status, StatusCode::OK, "{}", batch.body);
    let data = batch.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    assert_eq!(data[2]["index"], 2);
    for (a, b) in floats(&data[0]["embedding"]).iter().zip(&vector) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    let tokens = batch.body["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_eq!(tokens, 4 + 8 + 3);
    let lists =
        embed(json!({ "model": "minilm", "input": [[7592, 2088], [7632]], "dimensions": 384 }))
            .await;
    assert_eq!(lists.status, StatusCode::OK, "{}", lists.body);
    assert_eq!(lists.body["usage"]["prompt_tokens"], 4 + 3);
    let spent = 104 + 104 + (100 + tokens as u128) + 107;
    assert_eq!(payer_balance(gateway), 1_000_000 - spent);
    assert_eq!(metered(gateway), (spent, 4));

    // Mistakes are named with the parameter to fix, and cost nothing.
    for (body, param, needle) in [
        (
            json!({ "model": "minilm", "input": [30522] }),
            "input",
            "not in the model's vocabulary",
        ),
        (
            json!({ "model": "minilm", "input": [] }),
            "input",
            "send 1 to 2048 inputs",
        ),
        (
            json!({ "model": "minilm", "input": "" }),
            "input",
            "input 0: an input is empty",
        ),
        (
            json!({ "model": "minilm", "input": [1, "a"] }),
            "input",
            "array of token ids",
        ),
        (
            json!({ "model": "minilm", "input": "x", "dimensions": 256 }),
            "dimensions",
            "gives 384 numbers",
        ),
        (
            json!({ "model": "minilm", "input": "x", "encoding_format": "int8" }),
            "encoding_format",
            "\"float\" or \"base64\"",
        ),
        (
            json!({ "model": "review-sentiment", "input": "x" }),
            "model",
            "not an embedding model",
        ),
    ] {
        let reply = embed(body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.body
        );
        assert_eq!(reply.body["error"]["param"], param, "{}", reply.body);
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{message}");
    }
    let too_many = vec!["word"; 2_049];
    let reply = embed(json!({ "model": "minilm", "input": too_many })).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let chat_only = issue(&app, &[Scope::Chat]).await;
    let forbidden = call(
        &app,
        Method::POST,
        "/v1/embeddings",
        Some(&chat_only),
        &[],
        Some(json!({ "model": "minilm", "input": "x" })),
    )
    .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert_eq!(payer_balance(gateway), 1_000_000 - spent);
    assert_eq!(metered(gateway), (spent, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_the_encoder_installed_says_how_to_install_it_and_charges_nothing() {
    let encoder = installed_encoder();
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let (services, _) = gateway_reading_models(dir.path(), 1_000_000, empty.path().to_owned());
    let gateway = services.gateway();
    embedding_model(gateway, &encoder);
    let app = router(Arc::clone(&services));
    let key = issue(&app, &[Scope::Embeddings]).await;
    let reply = call(
        &app,
        Method::POST,
        "/v1/embeddings",
        Some(&key),
        &[],
        Some(json!({ "model": "minilm", "input": "hello" })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], "model_not_served");
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("scripts/models/install.sh"), "{message}");
    assert!(
        message.contains(&empty.path().display().to_string()),
        "{message}"
    );
    assert_eq!(payer_balance(gateway), 1_000_000);
    assert_eq!(metered(gateway), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classifier_on_embeddings_pays_the_embedding_model_from_every_call() {
    let encoder = installed_encoder();
    let dir = tempfile::tempdir().unwrap();
    let (services, _) = gateway(dir.path(), 1_000_000);
    let gateway = services.gateway();
    let embedder = embedding_model(gateway, &encoder);
    let weights = encoder.weights_hash();

    // The log says which embedding model runs these weights.
    let registered = gateway
        .journal()
        .read(caravan_node::gateway::catalogue::encoder_models)
        .unwrap();
    assert_eq!(registered.len(), 1);
    assert_eq!(registered[0].0, embedder);
    assert_eq!(registered[0].1.weights, weights);

    // A classifier trained on its embeddings pays it a quarter of its revenue.
    let options = TrainOptions {
        encoder: Some(Arc::new(encoder)),
        ..TrainOptions::default()
    };
    let trained = Classifier::train(&reviews(), &options).unwrap();
    assert_eq!(trained.classifier.encoder_weights(), Some(weights));
    let content = ArtifactStore::new(dir.path().join("models"))
        .put(&trained.classifier.to_artifact())
        .unwrap();
    let classifier_developer = Address::from_label("classifier developer");
    let mut manifest = Manifest {
        kind: AssetKind::Model,
        name: "review-meaning".into(),
        owner: classifier_developer,
        content,
        licence: Licence::Commercial {
            token: token(),
            price_per_call: PRICE,
            derivative_royalty: Ppm::ZERO,
        },
        parents: vec![caravan_core::ParentEdge {
            parent: embedder,
            kind: caravan_core::EdgeKind::DerivedFrom,
            share: Ppm::new(250_000).unwrap(),
        }],
        roles: vec![RoleShare {
            role: Role::Developer,
            share: Ppm::ONE,
            members: vec![Member {
                account: classifier_developer,
                weight: 1,
            }],
        }],
    };
    manifest.normalise();
    gateway
        .journal()
        .submit(vec![Event::AssetRegistered(manifest)])
        .unwrap();

    let app = router(Arc::clone(&services));
    let key = issue(&app, &[Scope::Classify]).await;
    let reply = call(
        &app,
        Method::POST,
        "/v1/classifications",
        Some(&key),
        &[],
        Some(json!({ "model": "review-meaning",
            "input": [{ "text": "it broke on the first day" }, { "text": "wonderful, I adore it" }] })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["usage"]["cost"], (2 * PRICE).to_string());

    // At the close the embedding model's owner is paid its quarter; the classifier's developer
    // keeps the rest.
    gateway.journal().close_epoch().unwrap();
    let credited = |account: Address| {
        gateway.journal().read(|j| {
            j.economy()
                .ledger()
                .balance(&AccountRef::Beneficiary(account), &token())
                .credits
        })
    };
    assert_eq!(credited(Address::from_label("developer")), 2 * PRICE / 4);
    assert_eq!(credited(classifier_developer), 2 * PRICE * 3 / 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_upstream_fails_the_call_in_time_and_costs_nothing() {
    // Accepts connections and reads requests, but never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = listener.accept().await {
            held.push(connection);
        }
    });
    let impatient = caravan_node::gateway::upstream::client_builder()
        .read_timeout(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (services, _) =
        gateway_configured(dir.path(), 1_000_000, |node| node.http_client(impatient));
    let gateway = services.gateway();
    chat_model(gateway, "chat-silent", &url);
    let app = router(Arc::clone(&services));
    let key = issue(&app, &[Scope::Chat]).await;
    let ask = json!({ "model": "chat-silent", "messages": [{ "role": "user", "content": "hi" }] });
    let reply = chat(&app, &key, ask).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.body);
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("did not answer in time"), "{message}");
    // Nothing charged, and nothing left held: the whole balance is there for the next call.
    assert_eq!(metered(gateway), (0, 0));
    assert_eq!(gateway.meter().held(&shop(), &token()), 0);
    assert_eq!(payer_balance(gateway), 1_000_000);
}

/// A chat call whose reserve (the most it can cost, bounded by max_tokens — 4,096 when the
/// client sets none) is above the balance is refused with what was reserved, why, and the
/// largest max_tokens that fits; the official clients are told not to retry, and the call with
/// that max_tokens goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chat_call_refused_for_its_reserve_says_which_max_tokens_fits_and_not_to_retry() {
    let dir = tempfile::tempdir().unwrap();
    let (services, _) = gateway(dir.path(), 1_500);
    let gateway = services.gateway();
    let upstream = mock_upstream(5, 1).await;
    chat_model(gateway, "chat-upstream", &upstream.url);
    let app = router(Arc::clone(&services));
    let key = issue(&app, &[Scope::Models, Scope::Chat]).await;
    let ask =
        json!({ "model": "chat-upstream", "messages": [{ "role": "user", "content": "hello" }] });

    let refused = chat(&app, &key, ask.clone()).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.body
    );
    assert_eq!(refused.headers["x-should-retry"], "false");
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("up to 4096 completion tokens"),
        "{message}"
    );
    assert!(message.contains("1500 are available"), "{message}");
    let fits: u64 = message
        .split("max_tokens of at most ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no max_tokens that fits in: {message}"));
    assert!((1..4_096).contains(&fits), "{message}");

    let mut far_too_many = ask.clone();
    far_too_many["max_tokens"] = json!(fits * 2);
    assert_eq!(
        chat(&app, &key, far_too_many).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let mut smaller = ask;
    smaller["max_tokens"] = json!(fits);
    let served = chat(&app, &key, smaller).await;
    assert_eq!(served.status, StatusCode::OK, "{}", served.body);
    assert_eq!(payer_balance(gateway), 1_500 - 1_004);
}

/// Any JSON value, with the field names the OpenAI-shaped bodies use most of the time.
fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (0u64..100_000).prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::from),
        prop::sample::select(vec![
            "user",
            "system",
            "assistant",
            "tool",
            "float",
            "base64",
            "llama",
            "minilm",
            "review-sentiment",
            ""
        ])
        .prop_map(Value::from),
    ];
    let name = prop_oneof![
        prop::sample::select(vec![
            "model",
            "input",
            "messages",
            "role",
            "content",
            "stream",
            "stream_options",
            "include_usage",
            "max_tokens",
            "encoding_format",
            "dimensions",
            "n",
            "tools",
            "text",
        ])
        .prop_map(String::from),
        "[a-z_]{1,10}",
    ];
    leaf.prop_recursive(3, 32, 5, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(name.clone(), inner, 0..5)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// The `at`-th node of `value` in document order (the whole value is node 0): replaced by
/// `with`, or, when `with` is `None` and the node is a field or an element, taken out.
fn change_node(value: &mut Value, at: &mut usize, with: &Option<Value>) -> bool {
    if *at == 0 {
        if let Some(with) = with {
            *value = with.clone();
        }
        return true;
    }
    *at -= 1;
    match value {
        Value::Array(items) => {
            for i in 0..items.len() {
                if *at == 0 && with.is_none() {
                    items.remove(i);
                    return true;
                }
                if change_node(&mut items[i], at, with) {
                    return true;
                }
            }
            false
        }
        Value::Object(fields) => {
            let names: Vec<String> = fields.keys().cloned().collect();
            for name in names {
                if *at == 0 && with.is_none() {
                    fields.remove(&name);
                    return true;
                }
                if change_node(fields.get_mut(&name).expect("listed"), at, with) {
                    return true;
                }
            }
            false
        }
        _ => false,
    }
}

/// Whatever body reaches the OpenAI-shaped routes (classifications, chat completions,
/// streamed or not, and embeddings) — arbitrary bytes, arbitrary JSON, or a real request with
/// one part replaced by anything or taken out — the gateway answers it or says what was wrong
/// with a 4xx; never a 5xx or a panic; and a call it did not answer costs the payer nothing
/// and adds nothing to the log.
/// `PROPTEST_CASES` sets the cases (default 256); the count of inputs is printed as
/// `fuzzed OpenAI-shaped bodies: N inputs`.
#[test]
fn any_body_on_the_openai_routes_is_answered_or_refused_with_a_4xx_and_only_answers_cost() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let encoder = installed_encoder();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Answers go out before their charge is durable: the commit parses no outside input, and
    // waiting for the disk on every answered input would make a million inputs take hours.
    let (services, _) = gateway_configured(dir.path(), 1 << 100, |node| {
        node.charge_durability(ChargeDurability::Queued)
    });
    let gateway = services.gateway();
    embedding_model(gateway, &encoder);
    let app = router(Arc::clone(&services));
    let (key, _upstream) = runtime.block_on(async {
        let upstream = mock_upstream(3, 0).await;
        chat_model(gateway, "llama", &upstream.url);
        let scopes = [Scope::Classify, Scope::Chat, Scope::Embeddings];
        (issue(&app, &scopes).await, upstream)
    });
    let routes = [
        (
            "/v1/classifications",
            json!({ "model": "review-sentiment", "input": { "text": "great phone" } }),
        ),
        (
            "/v1/chat/completions",
            json!({ "model": "llama", "messages": [{ "role": "user", "content": "hi" }],
                    "max_tokens": 5 }),
        ),
        (
            "/v1/chat/completions",
            json!({ "model": "llama", "messages": [{ "role": "user", "content": "hi" }],
                    "stream": true, "stream_options": { "include_usage": true } }),
        ),
        (
            "/v1/embeddings",
            json!({ "model": "minilm", "input": ["a phone", "a battery"],
                    "encoding_format": "base64", "dimensions": 384 }),
        ),
    ];
    let nodes = |value: &Value| -> usize {
        fn count(value: &Value) -> usize {
            1 + match value {
                Value::Array(items) => items.iter().map(count).sum(),
                Value::Object(fields) => fields.values().map(count).sum(),
                _ => 0,
            }
        }
        count(value)
    };
    let templates: Vec<(usize, usize)> = routes
        .iter()
        .enumerate()
        .map(|(n, (_, body))| (n, nodes(body)))
        .collect();
    let real = routes.clone();
    let changed = prop::sample::select(templates)
        .prop_flat_map(|(route, size)| (Just(route), 0..size, prop::option::of(any_json())))
        .prop_map(move |(route, at, with)| {
            let mut body = real[route].1.clone();
            change_node(&mut body, &mut { at }, &with);
            (route, body.to_string().into_bytes())
        });
    let raw = (0..routes.len(), prop::collection::vec(any::<u8>(), 0..256));
    let json =
        (0..routes.len(), any_json()).prop_map(|(route, v)| (route, v.to_string().into_bytes()));
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::default()
    });
    let inputs = std::cell::Cell::new(0u64);
    let answered = std::cell::Cell::new(0u64);
    runner
        .run(&prop_oneof![raw, json, changed], |(route, body)| {
            inputs.set(inputs.get() + 1);
            let events = || gateway.journal().read(|j| j.economy().head().next_seq);
            let before = (payer_balance(gateway), events());
            let request = Request::builder()
                .method(Method::POST)
                .uri(routes[route].0)
                .header("authorization", format!("Bearer {key}"))
                .header("content-type", "application/json")
                .body(Body::from(body.clone()))
                .unwrap();
            let (status, reply) = runtime.block_on(async {
                let response = app.clone().oneshot(request).await.unwrap();
                let status = response.status();
                let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .unwrap();
                (status, String::from_utf8_lossy(&bytes).into_owned())
            });
            prop_assert!(
                status.is_success() || status.is_client_error(),
                "{} answered {status} to {}: {reply}",
                routes[route].0,
                String::from_utf8_lossy(&body)
            );
            if status.is_success() {
                answered.set(answered.get() + 1);
            } else {
                prop_assert_eq!(
                    (payer_balance(gateway), events()),
                    before,
                    "a refused call cost the payer: {} {}",
                    status,
                    reply
                );
            }
            Ok(())
        })
        .unwrap();
    println!("fuzzed OpenAI-shaped bodies: {} inputs", inputs.get());
    assert!(
        runner.config().cases < 256 || answered.get() > 0,
        "some changed requests are still answered (the changes reach past the parser)"
    );
}

/// A node whose store lives on a 16 MiB filesystem that fills up while it serves: the paid call
/// the disk has no room for is answered 503 with the cause and costs nothing; a key issue is
/// either refused the same way or, when its record fits in the space SQLite's log file already
/// holds, issued whole and usable; and once there is space again the node serves on without a
/// restart — the refused call's retry runs and is charged once, and the store holds exactly the
/// answered calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "mounts a size-limited tmpfs, which needs root; `.ci/run` runs it with the PostgreSQL half"]
async fn a_full_disk_answers_503_with_its_cause_charges_nothing_and_the_node_serves_on_once_there_is_space()
 {
    let small = caravan_testkit::SmallDisk::mount(16);
    let data = small.path().join("data");
    let deposit = 1_000_000 * PRICE;
    let (services, _) = gateway(&data, deposit);
    let gateway = services.gateway();
    let app = router(Arc::clone(&services));
    let key = issue(&app, &[Scope::Classify]).await;
    let classify = |n: usize| {
        let app = app.clone();
        let key = key.clone();
        async move {
            let order = format!("order-{n}");
            let body = json!({ "model": "review-sentiment", "input": { "text": format!("great, order {n}") } });
            call(
                &app,
                Method::POST,
                "/v1/classifications",
                Some(&key),
                &[("idempotency-key", order.as_str())],
                Some(body),
            )
            .await
        }
    };
    assert_eq!(classify(0).await.status, StatusCode::OK);
    let mut answered = 1;

    let ballast = small.fill();
    let mut refused = None;
    for n in 1..5_000 {
        let before = payer_balance(gateway);
        let reply = classify(n).await;
        if reply.status == StatusCode::OK {
            answered += 1;
            continue;
        }
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "a full disk is the node's fault, not the caller's: {}",
            reply.body
        );
        assert_eq!(reply.body["error"]["code"], "storage_unavailable");
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("full"),
            "the answer names the cause: {message}"
        );
        assert!(
            !message.contains(&key[4..]),
            "the key stays secret: {message}"
        );
        assert_eq!(
            payer_balance(gateway),
            before,
            "a refused call costs nothing"
        );
        refused = Some(n);
        break;
    }
    let refused = refused.expect("the full disk refuses a call before 5,000");
    let node = node_of(&app).await;
    let body = signed_issue(
        &shop_wallet(),
        &node,
        shop(),
        &[Scope::Classify],
        "full",
        now_ms(),
    );
    let issued = call(&app, Method::POST, "/v1/keys", None, &[], Some(body)).await;
    // Once a checkpoint has copied the log into the database file, SQLite writes the next
    // commit over the log's own start, which needs no new space.
    let issued_on_a_full_disk = if issued.status == StatusCode::CREATED {
        Some(issued.body["key"].as_str().unwrap().to_owned())
    } else {
        assert_eq!(
            issued.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            issued.body
        );
        assert_eq!(issued.body["error"]["code"], "storage_unavailable");
        None
    };

    ballast.remove();
    let before = payer_balance(gateway);
    let retried = classify(refused).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.body);
    assert!(
        !retried.headers.contains_key(REPLAYED_HEADER),
        "the refused call ran for the first time"
    );
    assert_eq!(payer_balance(gateway), before - PRICE);
    assert_eq!(classify(refused).await.headers[REPLAYED_HEADER], "true");
    assert_eq!(
        payer_balance(gateway),
        before - PRICE,
        "and its retry is free"
    );
    answered += 1;
    if let Some(issued) = issued_on_a_full_disk {
        let body =
            json!({ "model": "review-sentiment", "input": { "text": "issued on a full disk" } });
        let served = call(
            &app,
            Method::POST,
            "/v1/classifications",
            Some(&issued),
            &[],
            Some(body),
        )
        .await;
        assert_eq!(served.status, StatusCode::OK, "{}", served.body);
        answered += 1;
    }

    let (charged, calls) = metered(gateway);
    assert_eq!(calls, answered, "the store holds every answered call, once");
    assert_eq!(charged, answered as u128 * PRICE);
    drop(app);
    drop(services);
    let reopened = Journal::open(Location::DataDir(data), &mut |_, _| {}).unwrap();
    let balance = reopened
        .economy()
        .ledger()
        .balance(&AccountRef::Payer(shop()), &token())
        .available();
    assert_eq!(
        balance,
        deposit - charged,
        "a restart finds the same balance"
    );
}

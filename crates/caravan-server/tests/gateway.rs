//! The gateway as an application uses it, over a real SQLite store and a real linfa classifier:
//! keys, the OpenAI error shape, paid classifications with signed receipts, idempotent retries,
//! and 64 clients racing one prepaid balance.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine;
use caravan_core::{
    AccountRef, Address, AssetId, AssetKind, Event, Genesis, Licence, Manifest, Member, Ppm, Role,
    RoleShare, Token, keccak256,
};
use caravan_models::{ArtifactStore, Classifier, Example, TrainOptions};
use caravan_server::desk::Desk;
use caravan_server::gateway::Gateway;
use caravan_server::gateway::receipt::{NodeSigner, recover_signer};
use caravan_server::gateway::routes::{RECEIPT_HEADER, REPLAYED_HEADER, SIGNATURE_HEADER, router};
use caravan_store::{Journal, Location};
use serde_json::{Value, json};
use tower::ServiceExt;

const PRICE: u128 = 2_000;

fn token() -> Address {
    Address::from_label("usdc")
}

fn shop() -> Address {
    Address::from_label("shop")
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
fn gateway(dir: &Path, deposit: u128) -> (Arc<Gateway>, AssetId) {
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
    let desk = Arc::new(Desk::open(journal).unwrap());
    let signer = NodeSigner::load_or_create(&dir.join("node.key")).unwrap();
    (
        Arc::new(Gateway::open(desk, artifacts, signer).unwrap()),
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

async fn issue(app: &Router, scopes: Value) -> String {
    let reply = call(
        app,
        Method::POST,
        "/v1/keys",
        None,
        &[],
        Some(json!({ "payer": shop(), "scopes": scopes, "name": "shop backend" })),
    )
    .await;
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
    let (gateway, model) = gateway(dir.path(), 1_000_000);
    let app = router(Arc::clone(&gateway));
    let key = issue(&app, json!(["models", "classify"])).await;

    // The key is listed without its secret; the model list shows the classifier.
    let listed = call(
        &app,
        Method::GET,
        &format!("/v1/keys?payer={}", shop()),
        None,
        &[],
        None,
    )
    .await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
    assert!(!listed.body.to_string().contains(&key[4..]));
    let models = call(&app, Method::GET, "/v1/models", Some(&key), &[], None).await;
    assert_eq!(models.status, StatusCode::OK);
    assert_eq!(models.body["object"], "list");
    assert_eq!(models.body["data"][0]["id"], "review-sentiment");

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
    assert_eq!(payer_balance(&gateway), 1_000_000 - 2 * PRICE);

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
    assert_eq!(payer_balance(&gateway), 1_000_000 - 2 * PRICE);
    let other = json!({ "model": "review-sentiment", "input": { "text": "great" } });
    let reused = call(
        &app,
        Method::POST,
        "/v1/classifications",
        Some(&key),
        &retry,
        Some(other),
    )
    .await;
    assert_eq!(reused.status, StatusCode::BAD_REQUEST);
    assert_eq!(reused.body["error"]["code"], "idempotency_key_reused");

    // After a restart the node still knows the request was charged and does not charge again.
    drop(app);
    drop(gateway);
    let (gateway, _) = self::gateway(dir.path(), 1_000_000);
    let app = router(Arc::clone(&gateway));
    let after = call(
        &app,
        Method::POST,
        "/v1/classifications",
        Some(&key),
        &retry,
        Some(request),
    )
    .await;
    assert_eq!(after.status, StatusCode::CONFLICT, "{}", after.body);
    assert_eq!(after.body["error"]["code"], "idempotency_key_charged");
    assert_eq!(payer_balance(&gateway), 1_000_000 - 2 * PRICE);
    assert_eq!(metered(&gateway), (2 * PRICE, 1));

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
    let (gateway, _) = gateway(dir.path(), 3_000);
    let app = router(Arc::clone(&gateway));
    let key = issue(&app, json!(["classify"])).await;
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
    assert_eq!(payer_balance(&gateway), 3_000);
    assert_eq!(metered(&gateway), (0, 0));

    // A revoked key stops working at once.
    let id = gateway.keys_of(&shop())[0].id.clone();
    let revoked = call(
        &app,
        Method::DELETE,
        &format!("/v1/keys/{id}?payer={}", shop()),
        None,
        &[],
        None,
    )
    .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    let after = classify(good, Some(key.clone())).await;
    assert_eq!(after.body["error"]["code"], "invalid_api_key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_clients_racing_one_balance_never_overdraw_it_and_every_charge_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    // Enough for 100 calls; 64 clients send 4 each.
    let deposit = 100 * PRICE + PRICE / 2;
    let (gateway, _) = gateway(dir.path(), deposit);
    let app = router(Arc::clone(&gateway));
    let key = issue(&app, json!(["classify"])).await;
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
    let (charged, records) = metered(&gateway);
    assert_eq!(served, 100, "the balance pays for exactly 100 calls");
    assert_eq!(records as u128, served);
    assert_eq!(charged, served * PRICE);
    assert_eq!(payer_balance(&gateway), deposit - charged);
    assert_eq!(gateway.meter().held(&shop(), &token()), 0);
}

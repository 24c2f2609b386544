//! What the access guard costs a request: the same cheap routes with no guard (a bare axum
//! route), through the route table as a public route, with an API key checked, and with a
//! session checked. `cargo bench -p caravan-server --bench access`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use axum::routing::get;
use caravan_core::attestation::{address_of, personal_message_digest, sign_digest};
use caravan_core::{Address, Event, Genesis, Ppm, Token, keccak256};
use caravan_models::ArtifactStore;
use caravan_node::Node;
use caravan_node::gateway::receipt::NodeSigner;
use caravan_node::keys::Scope;
use caravan_server::access::SESSION_COOKIE;
use caravan_store::{Journal, Location};
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt;

fn node(dir: &std::path::Path) -> Arc<Node> {
    let mut journal = Journal::open(Location::DataDir(dir.to_owned()), &mut |_, _| {}).unwrap();
    journal
        .submit(vec![
            Event::Genesis(Genesis {
                treasury: Address::from_label("treasury"),
                protocol_fee: Ppm::ZERO,
            }),
            Event::TokenRegistered(Token {
                address: Address::from_label("usdc"),
                symbol: "USDC".into(),
                decimals: 6,
            }),
        ])
        .unwrap();
    Arc::new(
        Node::builder(
            journal,
            ArtifactStore::new(dir.join("models")),
            NodeSigner::generate(),
        )
        .sign_in(caravan_node::sessions::SignInPolicy {
            origin: caravan_node::sessions::origin::PublicOrigin::parse(
                caravan_node::DEFAULT_PUBLIC_URL,
            )
            .unwrap(),
            chain_ids: vec![31_337],
        })
        .open()
        .unwrap(),
    )
}

fn session(node: &Node) -> String {
    let wallet =
        k256::ecdsa::SigningKey::from_bytes((&keccak256(b"bench wallet").0).into()).unwrap();
    let challenge = node.sessions().challenge().unwrap();
    let message = challenge
        .message(&address_of(wallet.verifying_key()), 31_337)
        .to_string();
    let signature = sign_digest(&wallet, &personal_message_digest(message.as_bytes()));
    node.sessions()
        .sign_in(&message, &signature.to_hex())
        .unwrap()
        .secret
}

fn guarded_requests(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path());
    let (key, _) = node
        .keys()
        .issue(
            Address::from_label("shop"),
            Scope::GATEWAY.to_vec(),
            None,
            "bench".into(),
        )
        .unwrap();
    let secret = session(&node);
    let app = caravan_server::router(Arc::clone(&node));
    let bare: Router = Router::new().route(
        "/v1/node",
        get(|| async { axum::Json(serde_json::json!({ "object": "node" })) }),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let send = |app: &Router, request: Request<Body>| {
        runtime.block_on(async {
            let response = app.clone().oneshot(request).await.unwrap();
            assert!(response.status().is_success());
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap()
        })
    };
    let mut group = c.benchmark_group("a request through the router");
    group.bench_function("GET /v1/node, a bare axum route", |b| {
        b.iter(|| send(&bare, Request::get("/v1/node").body(Body::empty()).unwrap()))
    });
    group.bench_function("GET /v1/node, public, through the route table", |b| {
        b.iter(|| send(&app, Request::get("/v1/node").body(Body::empty()).unwrap()))
    });
    group.bench_function("GET /v1/models, an API key checked", |b| {
        b.iter(|| {
            let request = Request::get("/v1/models")
                .header(header::AUTHORIZATION, format!("Bearer {key}"))
                .body(Body::empty())
                .unwrap();
            send(&app, request)
        })
    });
    group.bench_function("GET /v1/auth/session, a session checked", |b| {
        b.iter(|| {
            let request = Request::get("/v1/auth/session")
                .header(header::COOKIE, format!("{SESSION_COOKIE}={secret}"))
                .body(Body::empty())
                .unwrap();
            send(&app, request)
        })
    });
    group.finish();
}

criterion_group!(benches, guarded_requests);
criterion_main!(benches);

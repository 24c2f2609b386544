//! The data-task API as a client uses it, over a real SQLite store: a project from posting to
//! publishing, clear errors for bad input, many concurrent contributors, and a restart.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use caravan_core::{AccountRef, Address, Event, Genesis, Ppm, Token};
use caravan_node::chains::{ChainDirectory, PayoutChain};
use caravan_node::desk::Desk;
use caravan_server::api::router;
use caravan_store::{Journal, Location};
use serde_json::{Value, json};
use tower::ServiceExt;

fn token() -> Address {
    Address::from_label("usdc")
}

fn requester() -> Address {
    Address::from_label("requester")
}

fn open_desk(dir: &Path) -> Arc<Desk> {
    Arc::new(Desk::open(journal_with_genesis(dir)).unwrap())
}

fn journal_with_genesis(dir: &Path) -> Journal {
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
                Event::Deposited {
                    payer: requester(),
                    token: token(),
                    amount: 10_000_000,
                },
            ])
            .unwrap();
    }
    journal
}

async fn call(app: &Router, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let request = Request::builder().method(method).uri(uri);
    let request = match body {
        Some(json) => request
            .header("content-type", "application/json")
            .body(Body::from(json.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    send(app, request).await
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

fn spec(overlap: u32) -> Value {
    json!({
        "title": "Sentiment of product reviews",
        "instructions": "Pick the sentiment the review expresses.",
        "schema": { "type": "single_choice", "options": ["pos", "neg"] },
        "overlap": { "min": overlap, "max": overlap + 2, "confidence": 0.9 },
        "token": token(),
        "bounty": "1000",
        "budget": "1000000",
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

async fn post_project(app: &Router, overlap: u32, items: usize) -> String {
    let (status, created) = call(
        app,
        Method::POST,
        "/v1/projects",
        Some(json!({ "requester": requester(), "spec": spec(overlap) })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let project = created["project"].as_str().unwrap().to_owned();
    let mut csv = String::from("text,truth\n");
    for n in 0..items {
        let truth = if n % 2 == 0 { "pos" } else { "neg" };
        csv.push_str(&format!("review number {n},{truth}\n"));
    }
    let uri = format!(
        "/v1/projects/{project}/items?format=csv&requester={}",
        requester()
    );
    let request = Request::post(uri).body(Body::from(csv)).unwrap();
    let (status, added) = send(app, request).await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["added"], items);
    project
}

#[tokio::test]
async fn a_project_goes_from_posting_to_a_published_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let desk = open_desk(dir.path());
    let app = router(desk.clone());
    let project = post_project(&app, 3, 4).await;

    let mut paid = 0u64;
    for n in 0..12 {
        let contributor = Address::from_label(&format!("worker {}", n % 3));
        let uri = format!("/v1/projects/{project}/next");
        let (status, assignment) = call(
            &app,
            Method::POST,
            &uri,
            Some(json!({ "contributor": contributor })),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{assignment}");
        let truth = assignment["data"]["truth"].as_str().unwrap();
        let uri = format!("/v1/projects/{project}/judgments");
        let body = json!({ "contributor": contributor, "item": assignment["item"], "answer": { "choice": truth } });
        let (status, receipt) = call(&app, Method::POST, &uri, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{receipt}");
        paid += receipt["effects"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "paid")
            .count() as u64;
    }
    assert_eq!(paid, 12, "every agreeing judgment is paid");
    let (_, status) = call(&app, Method::GET, &format!("/v1/projects/{project}"), None).await;
    assert_eq!(status["status"]["resolved"], 4);
    assert_eq!(status["status"]["paid"], "12000");

    let worker = Address::from_label("worker 0");
    let (_, standing) = call(
        &app,
        Method::GET,
        &format!("/v1/projects/{project}/contributors/{worker}"),
        None,
    )
    .await;
    assert_eq!(standing["earned"], "4000");

    // The bounties are entitlements in the ledger, out of the requester's escrow.
    let entitled = desk.journal().read(|j| {
        j.economy()
            .ledger()
            .balance(&AccountRef::Beneficiary(worker), &token())
            .credits
    });
    assert_eq!(entitled, 4000);

    let export_uri = format!("/v1/projects/{project}/export?format=jsonl");
    let (status, body) = call(&app, Method::GET, &export_uri, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_published"))
    );

    let publish = json!({ "requester": requester(), "name": "review-sentiment",
                          "licence": { "type": "open_use" }, "curator_share": "10%" });
    let (status, published) = call(
        &app,
        Method::POST,
        &format!("/v1/projects/{project}/publish"),
        Some(publish.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{published}");
    assert_eq!(published["rows"], 4);
    assert_eq!(published["contributors"].as_array().unwrap().len(), 3);
    let (status, again) = call(
        &app,
        Method::POST,
        &format!("/v1/projects/{project}/publish"),
        Some(publish),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already registered"),
        "{again}"
    );

    // Work goes on after publishing; the export still gives the published rows.
    let uri = format!(
        "/v1/projects/{project}/items?format=jsonl&requester={}",
        requester()
    );
    let more = "{\"text\": \"late review\", \"truth\": \"pos\"}\n";
    let (status, _) = send(&app, Request::post(uri).body(Body::from(more)).unwrap()).await;
    assert_eq!(status, StatusCode::CREATED);
    for n in 0..3 {
        let contributor = Address::from_label(&format!("worker {n}"));
        let next = format!("/v1/projects/{project}/next");
        let (_, assignment) = call(
            &app,
            Method::POST,
            &next,
            Some(json!({ "contributor": contributor })),
        )
        .await;
        let body = json!({ "contributor": contributor, "item": assignment["item"], "answer": { "choice": "pos" } });
        let judgments = format!("/v1/projects/{project}/judgments");
        let (status, _) = call(&app, Method::POST, &judgments, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (_, live) = call(&app, Method::GET, &format!("/v1/projects/{project}"), None).await;
    assert_eq!(live["status"]["resolved"], 5);
    let (status, export) = call(&app, Method::GET, &export_uri, None).await;
    assert_eq!(status, StatusCode::OK);
    let rows: Vec<Value> = export
        .as_str()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4, "the published snapshot, not the live board");
    assert!(rows.iter().all(|r| r["data"]["text"] != "late review"));

    // The bounties settle at the next epoch close; a worker fetches their proof to claim.
    desk.journal().close_epoch().unwrap();
    let (status, epochs) = call(&app, Method::GET, "/v1/epochs", None).await;
    assert_eq!(status, StatusCode::OK);
    let root: caravan_core::Hash32 = epochs[0]["root"].as_str().unwrap().parse().unwrap();
    let (status, proofs) = call(
        &app,
        Method::GET,
        &format!("/v1/epochs/1/proofs/{worker}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{proofs}");
    assert_eq!(proofs["chains"].as_array().unwrap().len(), 1);
    assert_eq!(proofs["chains"][0]["home"], true);
    assert_eq!(
        proofs["chains"][0]["root"].as_str().unwrap(),
        root.to_string(),
        "while nobody chose a chain, home's root is the epoch's root"
    );
    assert_eq!(
        proven_amount(&proofs["chains"][0], worker),
        5_000,
        "four bounties before publishing and one after"
    );
    let (status, _) = call(&app, Method::GET, "/v1/epochs/2", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let stranger = Address::from_label("stranger");
    let (status, body) = call(
        &app,
        Method::GET,
        &format!("/v1/epochs/1/proofs/{stranger}"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("no_entitlement"))
    );

    let (status, doc) = call(&app, Method::GET, "/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
}

/// Parses one chain's proof entry for `account` in `token` and checks it against the chain's root.
fn proven_amount(chain: &Value, account: Address) -> u128 {
    let root: caravan_core::Hash32 = chain["root"].as_str().unwrap().parse().unwrap();
    let entry = &chain["leaves"][0];
    let leaf = caravan_core::Leaf {
        account,
        token: token(),
        cumulative: entry["cumulative"].as_str().unwrap().parse().unwrap(),
    };
    let proof: Vec<caravan_core::Hash32> = entry["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().parse().unwrap())
        .collect();
    assert!(caravan_core::verify_proof(&root, &leaf, &proof), "{chain}");
    leaf.cumulative
}

#[tokio::test]
async fn an_account_chooses_its_payout_chain_and_later_earnings_are_proved_there() {
    let dir = tempfile::tempdir().unwrap();
    let directory = ChainDirectory::new(vec![
        PayoutChain {
            name: "embedded".into(),
            chain_id: 6_513_010,
            home: true,
        },
        PayoutChain {
            name: "base".into(),
            chain_id: 8453,
            home: false,
        },
    ])
    .unwrap();
    let desk = Arc::new(
        Desk::open(journal_with_genesis(dir.path()))
            .unwrap()
            .with_chains(directory),
    );
    let app = router(desk.clone());
    let earner = requester();
    let project = caravan_core::keccak256(b"a project");
    let earn = |amount| {
        desk.journal()
            .submit(vec![Event::EscrowReleased {
                project,
                requester: earner,
                token: token(),
                amount,
            }])
            .unwrap();
    };
    desk.journal()
        .submit(vec![Event::BudgetEscrowed {
            project,
            requester: earner,
            token: token(),
            amount: 100,
        }])
        .unwrap();
    earn(40);
    desk.journal().close_epoch().unwrap();

    let (status, chains) = call(&app, Method::GET, "/v1/chains", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(chains[0]["name"], "embedded", "home comes first: {chains}");
    assert_eq!(chains[1]["chain_id"], 8453);
    let choice_uri = format!("/v1/accounts/{earner}/payout-chain");
    let (_, choice) = call(&app, Method::GET, &choice_uri, None).await;
    assert_eq!(choice["chain"]["home"], true);

    let (status, body) = call(
        &app,
        Method::PUT,
        &choice_uri,
        Some(json!({ "chain_id": 10 })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "unknown_chain");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("base (chain id 8453)"),
        "{body}"
    );
    let (status, body) = call(
        &app,
        Method::PUT,
        &choice_uri,
        Some(json!({ "chain": "base" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, choice) = call(
        &app,
        Method::PUT,
        &choice_uri,
        Some(json!({ "chain_id": 8453 })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{choice}");
    assert_eq!(choice["chain"]["name"], "base");
    let events = desk.journal().read(|j| j.economy().head().next_seq);
    let (status, _) = call(
        &app,
        Method::PUT,
        &choice_uri,
        Some(json!({ "chain_id": 8453 })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "choosing again is idempotent");
    assert_eq!(desk.journal().read(|j| j.economy().head().next_seq), events);

    // Earnings after the choice are proved against base's root; home keeps the first 40.
    earn(60);
    desk.journal().close_epoch().unwrap();
    let (status, proofs) = call(
        &app,
        Method::GET,
        &format!("/v1/epochs/2/proofs/{earner}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{proofs}");
    let chains = proofs["chains"].as_array().unwrap();
    assert_eq!(chains.len(), 2, "{proofs}");
    assert_eq!(
        (
            chains[0]["home"].as_bool(),
            proven_amount(&chains[0], earner)
        ),
        (Some(true), 40)
    );
    assert_eq!(chains[1]["chain"]["name"], "base");
    assert_eq!(proven_amount(&chains[1], earner), 60);

    let (status, choice) = call(
        &app,
        Method::PUT,
        &choice_uri,
        Some(json!({ "chain_id": 0 })),
    )
    .await;
    assert_eq!(
        (status, choice["chain"]["name"].as_str()),
        (StatusCode::OK, Some("embedded"))
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let app = router(open_desk(dir.path()));
    let project = post_project(&app, 1, 2).await;

    let (status, body) = call(
        &app,
        Method::POST,
        "/v1/projects",
        Some(json!({ "requester": "0x1234", "spec": spec(1) })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("requester"),
        "{body}"
    );

    let mut bad_spec = spec(1);
    bad_spec["token"] = json!(Address::from_label("unknown"));
    let (status, body) = call(
        &app,
        Method::POST,
        "/v1/projects",
        Some(json!({ "requester": requester(), "spec": bad_spec })),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_token"))
    );

    let mut bad_overlap = spec(1);
    bad_overlap["overlap"]["confidence"] = json!(1.5);
    let (status, body) = call(
        &app,
        Method::POST,
        "/v1/projects",
        Some(json!({ "requester": requester(), "spec": bad_overlap })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("confidence 1.5"),
        "{body}"
    );

    let unknown = format!("0x{}", "ab".repeat(32));
    let (status, _) = call(&app, Method::GET, &format!("/v1/projects/{unknown}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let stranger = Address::from_label("stranger");
    let uri = format!("/v1/projects/{project}/items?format=jsonl&requester={stranger}");
    let (status, body) = send(
        &app,
        Request::post(uri)
            .body(Body::from("{\"text\":\"x\"}\n"))
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_requester"))
    );

    let uri = format!(
        "/v1/projects/{project}/items?format=jsonl&requester={}",
        requester()
    );
    let bad = "{\"data\": {\"text\": \"x\"}, \"gold\": {\"choice\": \"maybe\"}}\n";
    let (status, body) = send(&app, Request::post(uri).body(Body::from(bad)).unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 1: gold"),
        "{body}"
    );

    let contributor = Address::from_label("worker");
    let uri = format!("/v1/projects/{project}/judgments");
    let never_leased =
        json!({ "contributor": contributor, "item": unknown, "answer": { "choice": "pos" } });
    let (status, body) = call(&app, Method::POST, &uri, Some(never_leased)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no lease"),
        "{body}"
    );

    let (status, body) = call(
        &app,
        Method::POST,
        &uri,
        Some(json!({ "contributor": contributor })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing field"),
        "{body}"
    );
}

/// Many contributors at once through the shared desk: no item is handed out beyond its overlap
/// or twice to one person, every payment is covered by the escrow, and a restart rebuilds the
/// same boards from the log.
#[test]
fn concurrent_contributors_never_double_assign_and_a_restart_rebuilds_the_boards() {
    let dir = tempfile::tempdir().unwrap();
    let desk = open_desk(dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let project = runtime.block_on(post_project(&router(desk.clone()), 3, 200));
    let project: caravan_tasks::project::ProjectId =
        caravan_tasks::project::ProjectId(project.parse().unwrap());
    std::thread::scope(|scope| {
        for t in 0..64 {
            let desk = desk.clone();
            scope.spawn(move || {
                let contributor = Address::from_label(&format!("client {t}"));
                while let Ok(assignment) = desk.next_item(&project, contributor) {
                    let truth = assignment.data["truth"].as_str().unwrap().to_owned();
                    let answer = caravan_tasks::schema::Answer::Choice(truth);
                    desk.submit(&project, contributor, assignment.item, answer)
                        .unwrap();
                }
            });
        }
    });
    let (spec, status) = desk.status(&project).unwrap();
    assert_eq!(status.resolved, 200);
    let mut pairs = std::collections::HashSet::new();
    desk.with_board(&project, |board| {
        for item in board.items() {
            assert!(item.judgments.len() as u32 <= spec.overlap.max);
        }
        for j in board.judgments() {
            assert!(pairs.insert((j.contributor, j.item)), "judged twice");
        }
    })
    .unwrap();
    assert_eq!(
        status.paid,
        600 * spec.bounty,
        "three agreeing judgments per item"
    );
    let escrow = desk.journal().read(|j| {
        j.economy()
            .ledger()
            .balance(&AccountRef::Escrow(project.0), &token())
            .available()
    });
    assert_eq!(escrow, spec.budget - status.paid);

    drop(desk);
    let reopened = open_desk(dir.path());
    let (_, after) = reopened.status(&project).unwrap();
    assert_eq!(after, status);

    // Closing returns the unspent budget to the requester and leaves the escrow empty.
    let released = reopened.close_project(&project, requester()).unwrap();
    assert_eq!(released, spec.budget - status.paid);
    let (escrow, refunded) = reopened.journal().read(|j| {
        let ledger = j.economy().ledger();
        (
            ledger
                .balance(&AccountRef::Escrow(project.0), &token())
                .available(),
            ledger
                .balance(&AccountRef::Beneficiary(requester()), &token())
                .credits,
        )
    });
    assert_eq!((escrow, refunded), (0, released));
    assert!(
        reopened
            .next_item(&project, Address::from_label("late"))
            .is_err()
    );
}

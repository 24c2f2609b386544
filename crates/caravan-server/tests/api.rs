//! The data-task API as its users meet it, over a real SQLite store: people sign in with their
//! wallets and act only as themselves; a project goes from posting to publishing; bad input gets a
//! clear error; many contributors work at once; a restart rebuilds the boards.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use caravan_core::{AccountRef, Address, Event};
use caravan_node::chains::{ChainDirectory, PayoutChain};
use caravan_server::router;
use common::{
    Auth, Person, call, open_node, open_settling_node, post_project, send, send_with, spec, token,
};
use serde_json::{Value, json};

const DEPOSIT: u128 = 10_000_000;

fn requester() -> Person {
    Person::new("requester")
}

#[tokio::test]
async fn a_label_studio_export_names_its_results_as_the_config_the_items_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let node = open_node(
        dir.path(),
        &[(requester().address, DEPOSIT)],
        ChainDirectory::default(),
        &[],
    );
    let app = router(Arc::clone(&node));
    let lab = requester().sign_in(&app).await;
    let created = call(
        &app,
        Method::POST,
        "/v1/projects",
        Auth::Session(&lab),
        Some(json!({ "spec": spec(3, 1_000_000) })),
    )
    .await;
    let project = created.body["project"].as_str().unwrap().to_owned();
    // Tasks as a Label Studio project whose config says
    // <Text name="review" value="$text"/><Choices name="sentiment" toName="review">.
    let tasks: Vec<Value> = ["great phone", "broken on arrival"]
        .iter()
        .zip(["pos", "neg"])
        .enumerate()
        .map(|(n, (text, choice))| {
            json!({ "id": n + 1, "data": { "text": text }, "annotations": [{ "result": [
                { "from_name": "sentiment", "to_name": "review", "type": "choices",
                  "value": { "choices": [choice] } }] }] })
        })
        .collect();
    let added = send(
        &app,
        Method::POST,
        &format!("/v1/projects/{project}/items?format=label_studio"),
        Auth::Session(&lab),
        Body::from(Value::Array(tasks).to_string()),
        "application/json",
    )
    .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    for n in 0..3 {
        let worker = Person::new(&format!("worker {n}"));
        let session = worker.sign_in(&app).await;
        for _ in 0..2 {
            let next = format!("/v1/projects/{project}/next");
            let assignment = call(&app, Method::POST, &next, Auth::Session(&session), None).await;
            let choice = if assignment.body["data"]["text"] == "great phone" {
                "pos"
            } else {
                "neg"
            };
            let body = json!({ "item": assignment.body["item"], "answer": { "choice": choice } });
            let uri = format!("/v1/projects/{project}/judgments");
            let judged = call(
                &app,
                Method::POST,
                &uri,
                Auth::Session(&session),
                Some(body),
            )
            .await;
            assert_eq!(judged.status, StatusCode::CREATED, "{}", judged.body);
        }
    }
    let publish =
        json!({ "name": "reviews", "licence": { "type": "open_use" }, "curator_share": "0%" });
    let published = call(
        &app,
        Method::POST,
        &format!("/v1/projects/{project}/publish"),
        Auth::Session(&lab),
        Some(publish),
    )
    .await;
    assert_eq!(published.status, StatusCode::CREATED, "{}", published.body);

    let export = |query: &'static str| {
        let uri = format!("/v1/projects/{project}/export?{query}");
        let app = app.clone();
        let lab = lab.clone();
        async move { call(&app, Method::GET, &uri, Auth::Session(&lab), None).await }
    };
    let names = |reply: &common::Reply| -> Vec<(String, String)> {
        reply
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|task| {
                let result = &task["annotations"][0]["result"][0];
                (
                    result["from_name"].as_str().unwrap().to_owned(),
                    result["to_name"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let kept = export("format=label_studio").await;
    assert_eq!(kept.status, StatusCode::OK);
    assert_eq!(
        names(&kept),
        vec![("sentiment".to_owned(), "review".to_owned()); 2],
        "the names the import found"
    );
    let disposition = kept.headers["content-disposition"].to_str().unwrap();
    assert_eq!(
        disposition,
        format!(
            r#"attachment; filename="caravan-{}.label-studio.json""#,
            &project[2..14]
        )
    );
    let given = export("format=label_studio&from_name=mood&to_name=body").await;
    assert_eq!(
        names(&given),
        vec![("mood".to_owned(), "body".to_owned()); 2]
    );
    for bad in [
        "format=label_studio&from_name=",
        "format=jsonl&to_name=body",
    ] {
        let refused = export(bad).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            refused.body
        );
        assert!(
            refused.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Label Studio"),
            "{}",
            refused.body
        );
    }
}

#[tokio::test]
async fn a_project_goes_from_posting_to_a_published_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let node = open_node(
        dir.path(),
        &[(requester().address, DEPOSIT)],
        ChainDirectory::default(),
        &[],
    );
    let app = router(Arc::clone(&node));
    let lab = requester().sign_in(&app).await;
    let project = post_project(&app, &lab, 3, 4).await;
    let workers: Vec<Person> = (0..3)
        .map(|n| Person::new(&format!("worker {n}")))
        .collect();
    let mut sessions = Vec::new();
    for worker in &workers {
        sessions.push(worker.sign_in(&app).await);
    }

    let mut paid = 0u64;
    for n in 0..12 {
        let (worker, session) = (&workers[n % 3], Auth::Session(&sessions[n % 3]));
        let next = format!("/v1/projects/{project}/next");
        // Older clients name themselves in the body, which is fine when it is themselves.
        let naming = (n == 0).then(|| json!({ "contributor": worker.address }));
        let assignment = call(&app, Method::POST, &next, session, naming).await;
        assert_eq!(assignment.status, StatusCode::OK, "{}", assignment.body);
        let truth = assignment.body["data"]["truth"].as_str().unwrap();
        let uri = format!("/v1/projects/{project}/judgments");
        let body = json!({ "item": assignment.body["item"], "answer": { "choice": truth } });
        let receipt = call(&app, Method::POST, &uri, session, Some(body)).await;
        assert_eq!(receipt.status, StatusCode::CREATED, "{}", receipt.body);
        paid += receipt.body["effects"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "paid")
            .count() as u64;
    }
    assert_eq!(paid, 12, "every agreeing judgment is paid");
    let status = call(
        &app,
        Method::GET,
        &format!("/v1/projects/{project}"),
        Auth::None,
        None,
    )
    .await;
    assert_eq!(status.body["status"]["resolved"], 4);
    assert_eq!(status.body["status"]["paid"], "12000");
    assert_eq!(status.body["requester"], json!(requester().address));

    // A contributor sees their own standing, and the requester everyone's; nobody else does.
    let worker = workers[0].address;
    let standing_uri = format!("/v1/projects/{project}/contributors/{worker}");
    for session in [&sessions[0], &lab] {
        let standing = call(
            &app,
            Method::GET,
            &standing_uri,
            Auth::Session(session),
            None,
        )
        .await;
        assert_eq!(standing.body["earned"], "4000", "{}", standing.body);
    }
    let nosy = call(
        &app,
        Method::GET,
        &standing_uri,
        Auth::Session(&sessions[1]),
        None,
    )
    .await;
    assert_eq!(
        (nosy.status, nosy.body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_your_account"))
    );

    // The bounties are entitlements in the ledger, out of the requester's escrow.
    let entitled = node.journal().read(|j| {
        j.economy()
            .ledger()
            .balance(&AccountRef::Beneficiary(worker), &token())
            .credits
    });
    assert_eq!(entitled, 4000);

    let export_uri = format!("/v1/projects/{project}/export?format=jsonl");
    let export = call(&app, Method::GET, &export_uri, Auth::Session(&lab), None).await;
    assert_eq!(
        (export.status, export.body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_published"))
    );

    let publish = json!({ "name": "review-sentiment",
                          "licence": { "type": "open_use" }, "curator_share": "10%" });
    let publish_uri = format!("/v1/projects/{project}/publish");
    let stolen = call(
        &app,
        Method::POST,
        &publish_uri,
        Auth::Session(&sessions[0]),
        Some(publish.clone()),
    )
    .await;
    assert_eq!(
        (stolen.status, stolen.body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_requester")),
        "only the requester publishes"
    );
    let published = call(
        &app,
        Method::POST,
        &publish_uri,
        Auth::Session(&lab),
        Some(publish.clone()),
    )
    .await;
    assert_eq!(published.status, StatusCode::CREATED, "{}", published.body);
    assert_eq!(published.body["rows"], 4);
    assert_eq!(published.body["contributors"].as_array().unwrap().len(), 3);
    let again = call(
        &app,
        Method::POST,
        &publish_uri,
        Auth::Session(&lab),
        Some(publish),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert!(
        again.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already registered"),
        "{}",
        again.body
    );

    // Work goes on after publishing; the export still gives the published rows.
    let more = "{\"text\": \"late review\", \"truth\": \"pos\"}\n";
    let added = send(
        &app,
        Method::POST,
        &format!("/v1/projects/{project}/items?format=jsonl"),
        Auth::Session(&lab),
        Body::from(more),
        "application/jsonl",
    )
    .await;
    assert_eq!(added.status, StatusCode::CREATED);
    for session in &sessions {
        let next = format!("/v1/projects/{project}/next");
        let assignment = call(&app, Method::POST, &next, Auth::Session(session), None).await;
        let body = json!({ "item": assignment.body["item"], "answer": { "choice": "pos" } });
        let judgments = format!("/v1/projects/{project}/judgments");
        let judged = call(
            &app,
            Method::POST,
            &judgments,
            Auth::Session(session),
            Some(body),
        )
        .await;
        assert_eq!(judged.status, StatusCode::CREATED);
    }
    let live = call(
        &app,
        Method::GET,
        &format!("/v1/projects/{project}"),
        Auth::None,
        None,
    )
    .await;
    assert_eq!(live.body["status"]["resolved"], 5);
    let export = call(&app, Method::GET, &export_uri, Auth::Session(&lab), None).await;
    assert_eq!(export.status, StatusCode::OK);
    let rows: Vec<Value> = export
        .body
        .as_str()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4, "the published snapshot, not the live board");
    assert!(rows.iter().all(|r| r["data"]["text"] != "late review"));
    let theirs = call(
        &app,
        Method::GET,
        &export_uri,
        Auth::Session(&sessions[0]),
        None,
    )
    .await;
    assert_eq!(
        theirs.status,
        StatusCode::FORBIDDEN,
        "the data is the requester's"
    );

    // The bounties settle at the next epoch close; a worker fetches their proof to claim.
    node.close_epoch().unwrap();
    let epochs = call(&app, Method::GET, "/v1/epochs", Auth::None, None).await;
    assert_eq!(epochs.status, StatusCode::OK);
    let root: caravan_core::Hash32 = epochs.body[0]["root"].as_str().unwrap().parse().unwrap();
    let proofs = call(
        &app,
        Method::GET,
        &format!("/v1/epochs/1/proofs/{worker}"),
        Auth::None,
        None,
    )
    .await;
    assert_eq!(proofs.status, StatusCode::OK, "{}", proofs.body);
    let proofs = proofs.body;
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
    let missing = call(&app, Method::GET, "/v1/epochs/2", Auth::None, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let stranger = Address::from_label("stranger");
    let none = call(
        &app,
        Method::GET,
        &format!("/v1/epochs/1/proofs/{stranger}"),
        Auth::None,
        None,
    )
    .await;
    assert_eq!(
        (none.status, none.body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("no_entitlement"))
    );

    let doc = call(&app, Method::GET, "/v1/openapi.json", Auth::None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.body["openapi"], "3.1.0");
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
    let earner = requester();
    let node = open_node(dir.path(), &[(earner.address, DEPOSIT)], directory, &[]);
    let app = router(Arc::clone(&node));
    let session = earner.sign_in(&app).await;
    let project = caravan_core::keccak256(b"a project");
    let earn = |amount| {
        node.journal()
            .submit(vec![Event::EscrowReleased {
                project,
                requester: earner.address,
                token: token(),
                amount,
            }])
            .unwrap();
    };
    node.journal()
        .submit(vec![Event::BudgetEscrowed {
            project,
            requester: earner.address,
            token: token(),
            amount: 100,
        }])
        .unwrap();
    earn(40);
    node.close_epoch().unwrap();

    let chains = call(&app, Method::GET, "/v1/chains", Auth::None, None).await;
    assert_eq!(chains.status, StatusCode::OK);
    assert_eq!(
        chains.body[0]["name"], "embedded",
        "home comes first: {}",
        chains.body
    );
    assert_eq!(chains.body[1]["chain_id"], 8453);
    let choice_uri = format!("/v1/accounts/{}/payout-chain", earner.address);
    let choice = call(&app, Method::GET, &choice_uri, Auth::None, None).await;
    assert_eq!(choice.body["chain"]["home"], true);
    let put = |session: String, body: Value| {
        let (app, uri) = (app.clone(), choice_uri.clone());
        async move { call(&app, Method::PUT, &uri, Auth::Session(&session), Some(body)).await }
    };

    // Only the account itself chooses where it is paid.
    let other = Person::new("someone else").sign_in(&app).await;
    let refused = put(other, json!({ "chain_id": 8453 })).await;
    assert_eq!(
        (refused.status, refused.body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_your_account"))
    );
    let unsigned = call(
        &app,
        Method::PUT,
        &choice_uri,
        Auth::None,
        Some(json!({ "chain_id": 8453 })),
    )
    .await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);

    let unknown = put(session.clone(), json!({ "chain_id": 10 })).await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unknown.body["error"]["code"], "unknown_chain");
    assert!(
        unknown.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("base (chain id 8453)"),
        "{}",
        unknown.body
    );
    let wrong = put(session.clone(), json!({ "chain": "base" })).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.body);
    let chosen = put(session.clone(), json!({ "chain_id": 8453 })).await;
    assert_eq!(chosen.status, StatusCode::OK, "{}", chosen.body);
    assert_eq!(chosen.body["chain"]["name"], "base");
    let events = node.journal().read(|j| j.economy().head().next_seq);
    let again = put(session.clone(), json!({ "chain_id": 8453 })).await;
    assert_eq!(again.status, StatusCode::OK, "choosing again is idempotent");
    assert_eq!(node.journal().read(|j| j.economy().head().next_seq), events);

    // Earnings after the choice are proved against base's root; home keeps the first 40.
    earn(60);
    node.close_epoch().unwrap();
    let proofs = call(
        &app,
        Method::GET,
        &format!("/v1/epochs/2/proofs/{}", earner.address),
        Auth::None,
        None,
    )
    .await;
    assert_eq!(proofs.status, StatusCode::OK, "{}", proofs.body);
    let chains = proofs.body["chains"].as_array().unwrap().clone();
    assert_eq!(chains.len(), 2, "{}", proofs.body);
    assert_eq!(
        (
            chains[0]["home"].as_bool(),
            proven_amount(&chains[0], earner.address)
        ),
        (Some(true), 40)
    );
    assert_eq!(chains[1]["chain"]["name"], "base");
    assert_eq!(proven_amount(&chains[1], earner.address), 60);

    let home = put(session, json!({ "chain_id": 0 })).await;
    assert_eq!(
        (home.status, home.body["chain"]["name"].as_str()),
        (StatusCode::OK, Some("embedded"))
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let node = open_node(
        dir.path(),
        &[(requester().address, DEPOSIT)],
        ChainDirectory::default(),
        &[],
    );
    let app = router(node);
    let lab = requester().sign_in(&app).await;
    let project = post_project(&app, &lab, 1, 2).await;
    let post = |body: Value| {
        let (app, lab) = (app.clone(), lab.clone());
        async move {
            call(
                &app,
                Method::POST,
                "/v1/projects",
                Auth::Session(&lab),
                Some(body),
            )
            .await
        }
    };

    let malformed = post(json!({ "requester": "0x1234", "spec": spec(1, 1_000) })).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert!(
        malformed.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("requester"),
        "{}",
        malformed.body
    );
    let someone = Address::from_label("someone");
    let impersonating = post(json!({ "requester": someone, "spec": spec(1, 1_000) })).await;
    assert_eq!(
        (
            impersonating.status,
            impersonating.body["error"]["code"].as_str()
        ),
        (StatusCode::FORBIDDEN, Some("not_your_account"))
    );
    assert!(
        impersonating.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("you may act only as yourself"),
        "{}",
        impersonating.body
    );

    // A budget beyond the prepaid balance is refused with what is there and how to add to it.
    let costly = post(json!({ "spec": spec(1, DEPOSIT) })).await;
    assert_eq!(
        (costly.status, costly.body["error"]["code"].as_str()),
        (StatusCode::PAYMENT_REQUIRED, Some("insufficient_balance"))
    );
    assert!(
        costly.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("9 USDC is available"),
        "the first project escrowed 1 of the 10: {}",
        costly.body
    );

    let mut bad_spec = spec(1, 1_000);
    bad_spec["token"] = json!(Address::from_label("unknown"));
    let unknown_token = post(json!({ "spec": bad_spec })).await;
    assert_eq!(
        (
            unknown_token.status,
            unknown_token.body["error"]["code"].as_str()
        ),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_token"))
    );

    let mut bad_overlap = spec(1, 1_000);
    bad_overlap["overlap"]["confidence"] = json!(1.5);
    let overlap = post(json!({ "spec": bad_overlap })).await;
    assert_eq!(overlap.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        overlap.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("confidence 1.5"),
        "{}",
        overlap.body
    );

    let unknown = format!("0x{}", "ab".repeat(32));
    let missing = call(
        &app,
        Method::GET,
        &format!("/v1/projects/{unknown}"),
        Auth::None,
        None,
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // Importing into someone else's project, or naming someone else, is refused.
    let stranger = Person::new("stranger").sign_in(&app).await;
    let import = |session: String, query: String| {
        let (app, project) = (app.clone(), project.clone());
        async move {
            send(
                &app,
                Method::POST,
                &format!("/v1/projects/{project}/items?format=jsonl{query}"),
                Auth::Session(&session),
                Body::from("{\"text\":\"x\"}\n"),
                "application/jsonl",
            )
            .await
        }
    };
    let theirs = import(stranger.clone(), String::new()).await;
    assert_eq!(
        (theirs.status, theirs.body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_requester"))
    );
    let named = import(stranger, format!("&requester={}", requester().address)).await;
    assert_eq!(
        (named.status, named.body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_your_account"))
    );

    let bad = "{\"data\": {\"text\": \"x\"}, \"gold\": {\"choice\": \"maybe\"}}\n";
    let refused = send(
        &app,
        Method::POST,
        &format!("/v1/projects/{project}/items?format=jsonl"),
        Auth::Session(&lab),
        Body::from(bad),
        "application/jsonl",
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 1: gold"),
        "{}",
        refused.body
    );

    let worker = Person::new("worker").sign_in(&app).await;
    let uri = format!("/v1/projects/{project}/judgments");
    let never_leased = json!({ "item": unknown, "answer": { "choice": "pos" } });
    let refused = call(
        &app,
        Method::POST,
        &uri,
        Auth::Session(&worker),
        Some(never_leased),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no lease"),
        "{}",
        refused.body
    );
    let incomplete = call(
        &app,
        Method::POST,
        &uri,
        Auth::Session(&worker),
        Some(json!({})),
    )
    .await;
    assert_eq!(incomplete.status, StatusCode::BAD_REQUEST);
    assert!(
        incomplete.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing field"),
        "{}",
        incomplete.body
    );

    // An id that cannot be one is the caller's mistake (400, saying how ids are written); an
    // id that could be one but names nothing the node holds is 404.
    let unknown_project = format!("0x{}", "ab".repeat(32));
    for (uri, status, code, says) in [
        (
            "/v1/projects/0x12".to_owned(),
            StatusCode::BAD_REQUEST,
            "malformed_id",
            "64 hexadecimal digits",
        ),
        (
            format!("/v1/projects/{unknown_project}"),
            StatusCode::NOT_FOUND,
            "unknown_project",
            "",
        ),
        (
            "/v1/epochs/first".to_owned(),
            StatusCode::BAD_REQUEST,
            "malformed_id",
            "epochs count from 1",
        ),
        (
            "/v1/epochs/7".to_owned(),
            StatusCode::NOT_FOUND,
            "unknown_epoch",
            "",
        ),
        // A query string the route cannot read is answered in the API's shape too, not in
        // the framework's plain text.
        (
            "/v1/auth/nonce?chain_id=null".to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "chain_id",
        ),
    ] {
        let answer = call(&app, Method::GET, &uri, Auth::None, None).await;
        assert_eq!(
            (answer.status, answer.body["error"]["code"].as_str()),
            (status, Some(code)),
            "{uri}: {}",
            answer.body
        );
        assert!(
            answer.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(says),
            "{uri}: {}",
            answer.body
        );
    }
}

/// Many contributors at once through the shared desk: no item is handed out beyond its overlap
/// or twice to one person, every payment is covered by the escrow, and a restart rebuilds the
/// same boards from the log.
#[test]
fn concurrent_contributors_never_double_assign_and_a_restart_rebuilds_the_boards() {
    let dir = tempfile::tempdir().unwrap();
    let deposits = [(requester().address, DEPOSIT)];
    let node = open_node(dir.path(), &deposits, ChainDirectory::default(), &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let project = runtime.block_on(async {
        let app = router(Arc::clone(&node));
        let lab = requester().sign_in(&app).await;
        post_project(&app, &lab, 3, 200).await
    });
    let project: caravan_tasks::project::ProjectId =
        caravan_tasks::project::ProjectId(project.parse().unwrap());
    let desk = Arc::clone(node.desk());
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
    // Every item resolved, so the serving board holds none of the judgments any more; the
    // log has them all.
    let held = desk.with_board(&project, |board| board.judgments().count());
    assert_eq!(held.unwrap(), 0);
    let board = desk.board_with_every_judgment(&project).unwrap();
    assert_eq!(board.judgments().count() as u64, status.judgments);
    for item in board.items() {
        assert!(item.judgments.len() as u32 <= spec.overlap.max);
    }
    for (_, j) in board.judgments() {
        assert!(pairs.insert((j.contributor, j.item)), "judged twice");
    }
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

    drop((desk, node));
    let reopened = open_node(dir.path(), &deposits, ChainDirectory::default(), &[]);
    let desk = reopened.desk();
    let (_, after) = desk.status(&project).unwrap();
    assert_eq!(after, status);

    // Closing returns the unspent budget to the requester and leaves the escrow empty.
    let released = desk.close_project(&project, requester().address).unwrap();
    assert_eq!(released, spec.budget - status.paid);
    let (escrow, refunded) = desk.journal().read(|j| {
        let ledger = j.economy().ledger();
        (
            ledger
                .balance(&AccountRef::Escrow(project.0), &token())
                .available(),
            ledger
                .balance(&AccountRef::Beneficiary(requester().address), &token())
                .credits,
        )
    });
    assert_eq!((escrow, refunded), (0, released));
    assert!(
        desk.next_item(&project, Address::from_label("late"))
            .is_err()
    );
}

/// A page on another site cannot act with a signed-in person's session: a change sent with the
/// session cookie from a foreign origin is refused, while reads, requests from the node's own
/// origin and requests with an API key (which browsers never attach by themselves) go through.
#[tokio::test]
async fn a_session_cookie_cannot_act_from_another_site() {
    let dir = tempfile::tempdir().unwrap();
    let node = open_node(
        dir.path(),
        &[(requester().address, DEPOSIT)],
        ChainDirectory::default(),
        &[],
    );
    let app = router(Arc::clone(&node));
    let lab = requester().sign_in(&app).await;
    let create = |origin: &'static str| {
        let (app, lab) = (app.clone(), lab.clone());
        async move {
            send_with(
                &app,
                Method::POST,
                "/v1/projects",
                Auth::Session(&lab),
                Body::from(json!({ "spec": spec(1, 1_000) }).to_string()),
                "application/json",
                &[("origin", origin)],
            )
            .await
        }
    };
    let forged = create("https://evil.example").await;
    assert_eq!(
        (forged.status, forged.body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("cross_site"))
    );
    assert!(node.desk().projects().is_empty(), "nothing was posted");
    let ours = create(caravan_node::DEFAULT_PUBLIC_URL).await;
    assert_eq!(ours.status, StatusCode::CREATED, "{}", ours.body);
    let read = send_with(
        &app,
        Method::GET,
        "/v1/auth/session",
        Auth::Session(&lab),
        Body::empty(),
        "application/json",
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(read.status, StatusCode::OK, "reads are not changes");
    let (key, _) = node
        .keys()
        .issue(
            requester().address,
            vec![caravan_node::keys::Scope::Requesting],
            None,
            "pipeline".into(),
        )
        .unwrap();
    let scripted = send_with(
        &app,
        Method::POST,
        "/v1/projects",
        Auth::Key(&key),
        Body::from(json!({ "spec": spec(1, 1_000) }).to_string()),
        "application/json",
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(scripted.status, StatusCode::CREATED, "{}", scripted.body);
}

/// A payer deposits on chain, sees the deposit beside its balance with the transaction that made
/// it, and takes back part of it: more than is available is refused with what is, and what it
/// takes is promised to it by the next epoch's root.
#[tokio::test]
async fn a_deposit_made_on_chain_shows_in_the_balance_and_what_is_withdrawn_is_in_the_next_root() {
    let dir = tempfile::tempdir().unwrap();
    let payer = Person::new("depositor");
    let node = open_settling_node(dir.path(), &[], &[]);
    let app = router(Arc::clone(&node));
    let session = payer.sign_in(&app).await;
    node.settlement()
        .unwrap()
        .open("embedded", 0)
        .unwrap()
        .deposit(token(), 3_000_000, payer.address, 1)
        .unwrap();
    let followed = node.deposits().unwrap().follow_once();
    assert_eq!(followed.credited.len(), 1, "{followed:?}");

    let balance = call(
        &app,
        Method::GET,
        "/v1/balance",
        Auth::Session(&session),
        None,
    )
    .await;
    assert_eq!(balance.status, StatusCode::OK, "{}", balance.body);
    let usdc = &balance.body["balances"][0];
    assert_eq!(usdc["available"], "3000000", "{}", balance.body);
    let deposit = &usdc["deposits"][0];
    assert_eq!(deposit["amount"], "3000000");
    assert_eq!(deposit["chain_id"], followed.credited[0].deposit.chain_id);
    assert_eq!(
        deposit["transaction"],
        json!(followed.credited[0].deposit.tx),
        "the balance names the transaction that made the deposit"
    );

    let withdraw = |amount: &str| {
        let body = json!({ "token": token(), "amount": amount });
        call(
            &app,
            Method::POST,
            "/v1/balance/withdrawals",
            Auth::Session(&session),
            Some(body),
        )
    };
    let too_much = withdraw("5000000").await;
    assert_eq!(
        too_much.status,
        StatusCode::PAYMENT_REQUIRED,
        "{}",
        too_much.body
    );
    let message = too_much.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("3 USDC available"), "{message}");
    let taken = withdraw("1000000").await;
    assert_eq!(taken.status, StatusCode::CREATED, "{}", taken.body);
    assert_eq!(taken.body["available"], "2000000");
    assert_eq!(taken.body["claimable_from_epoch"], 1);

    node.close_epoch().unwrap();
    let proofs = call(
        &app,
        Method::GET,
        &format!("/v1/epochs/1/proofs/{}", payer.address),
        Auth::None,
        None,
    )
    .await;
    assert_eq!(proofs.status, StatusCode::OK, "{}", proofs.body);
    assert!(
        proofs.body.to_string().contains("\"1000000\""),
        "the withdrawal is the payer's entitlement in epoch 1: {}",
        proofs.body
    );
}

#[tokio::test]
async fn closed_epochs_are_listed_newest_first_a_page_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let node = open_node(dir.path(), &[], ChainDirectory::default(), &[]);
    for _ in 0..5 {
        node.close_epoch().unwrap();
    }
    let app = router(node);
    let numbers = |reply: &common::Reply| -> Vec<u64> {
        reply
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|epoch| epoch["epoch"].as_u64().unwrap())
            .collect()
    };
    let next_link = |reply: &common::Reply| {
        reply
            .headers
            .get("link")
            .map(|link| link.to_str().unwrap().to_owned())
    };

    let all = call(&app, Method::GET, "/v1/epochs", Auth::None, None).await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(numbers(&all), [5, 4, 3, 2, 1], "newest first");
    assert_eq!(next_link(&all), None, "one page holds them all");

    let first = call(&app, Method::GET, "/v1/epochs?limit=2", Auth::None, None).await;
    assert_eq!(numbers(&first), [5, 4]);
    assert_eq!(
        next_link(&first).as_deref(),
        Some("</v1/epochs?before=4&limit=2>; rel=\"next\"")
    );
    let second = call(
        &app,
        Method::GET,
        "/v1/epochs?before=4&limit=2",
        Auth::None,
        None,
    )
    .await;
    assert_eq!(numbers(&second), [3, 2]);
    let last = call(
        &app,
        Method::GET,
        "/v1/epochs?before=2&limit=2",
        Auth::None,
        None,
    )
    .await;
    assert_eq!(numbers(&last), [1]);
    assert_eq!(next_link(&last), None, "epoch 1 is on the last page");

    for (query, code) in [
        ("limit=0", "bad_page"),
        ("limit=1001", "bad_page"),
        ("limit=many", "invalid_query"),
        ("before=-1", "invalid_query"),
    ] {
        let refused = call(
            &app,
            Method::GET,
            &format!("/v1/epochs?{query}"),
            Auth::None,
            None,
        )
        .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(refused.body["error"]["code"], code, "{query}");
    }

    let explorer = |uri: &'static str| {
        let app = app.clone();
        async move {
            send(
                &app,
                Method::GET,
                uri,
                Auth::None,
                Body::empty(),
                "text/html",
            )
            .await
        }
    };
    let page = explorer("/explorer?before=3").await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.body.as_str().unwrap();
    assert!(html.contains("href=\"/explorer/epochs/2\""), "{html}");
    assert!(html.contains("href=\"/explorer/epochs/1\""));
    assert!(
        !html.contains("href=\"/explorer/epochs/3\""),
        "the explorer's page starts below epoch 3"
    );
    assert!(
        html.contains("Newest epochs"),
        "and links back to the newest"
    );
    assert!(
        !html.contains("Older epochs"),
        "nothing is older than epoch 1"
    );
    let refused = explorer("/explorer?before=soon").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
}

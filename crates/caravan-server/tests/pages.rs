//! The web pages over a real node, as a browser meets them: who is sent to sign in, the one-time
//! sign-in link, the task board, and the labeling screen's fragments and answers, each change
//! refused without the session's CSRF token.

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use caravan_core::attestation::{personal_message_digest, sign_digest};
use caravan_node::chains::ChainDirectory;
use caravan_server::web::page::short_address;
use common::{Auth, Person, call, open_node, post_project, send_with, session_of};
use serde_json::{Value, json};

fn text(reply: &common::Reply) -> &str {
    reply.body.as_str().unwrap_or_default()
}

fn location(reply: &common::Reply) -> &str {
    reply
        .headers
        .get(header::LOCATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

/// The CSRF token a page carries for its scripts and forms.
fn csrf_of(page: &str) -> String {
    page.split(r#"<meta name="csrf-token" content=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page carries a CSRF token")
        .to_owned()
}

async fn page(app: &axum::Router, path: &str, session: &str) -> common::Reply {
    send_with(
        app,
        Method::GET,
        path,
        Auth::Session(session),
        Body::empty(),
        "text/html",
        &[],
    )
    .await
}

async fn script(
    app: &axum::Router,
    path: &str,
    session: &str,
    csrf: Option<&str>,
    body: Option<Value>,
) -> common::Reply {
    let mut extra = Vec::new();
    if let Some(csrf) = csrf {
        extra.push(("x-csrf-token", csrf));
    }
    send_with(
        app,
        Method::POST,
        path,
        Auth::Session(session),
        body.map_or_else(Body::empty, |body| Body::from(body.to_string())),
        "application/json",
        &extra,
    )
    .await
}

#[tokio::test]
async fn a_visitor_is_sent_to_sign_in_and_back_and_an_ended_session_is_told_so() {
    let dir = tempfile::tempdir().unwrap();
    let node = open_node(dir.path(), &[], ChainDirectory::default(), &[]);
    let app = caravan_server::router(node);

    let anonymous = call(&app, Method::GET, "/tasks?tab=new", Auth::None, None).await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&anonymous), "/sign-in?next=/tasks%3Ftab%3Dnew");

    let stale = page(&app, "/tasks", "crs_not_a_session").await;
    assert_eq!(stale.status, StatusCode::SEE_OTHER);
    assert!(
        location(&stale).ends_with("&ended=1"),
        "{}",
        location(&stale)
    );
    assert_eq!(
        session_of(&stale.headers).as_deref(),
        Some(""),
        "the dead cookie is cleared"
    );
    let told = call(
        &app,
        Method::GET,
        "/sign-in?next=/tasks&ended=1",
        Auth::None,
        None,
    )
    .await;
    assert_eq!(told.status, StatusCode::OK);
    assert!(text(&told).contains("Your session has ended"));
    assert!(text(&told).contains("Sign in with your wallet"));

    let someone = Person::new("visitor");
    let session = someone.sign_in(&app).await;
    let home = page(&app, "/", &session).await;
    assert_eq!(location(&home), "/tasks");
    let back = page(&app, "/sign-in?next=/projects/0x12/label", &session).await;
    assert_eq!(location(&back), "/projects/0x12/label");
    let elsewhere = page(&app, "/sign-in?next=//evil.example/", &session).await;
    assert_eq!(location(&elsewhere), "/tasks", "never sent to another site");
}

#[tokio::test]
async fn a_sign_in_link_works_once_and_only_from_this_nodes_pages() {
    let dir = tempfile::tempdir().unwrap();
    let node = open_node(dir.path(), &[], ChainDirectory::default(), &[]);
    let origin = node.sessions().origin().to_string();
    let app = caravan_server::router(node);
    let keeper = Person::new("key in a file");
    let challenge = call(
        &app,
        Method::GET,
        &format!("/v1/auth/nonce?address={}", keeper.address),
        Auth::None,
        None,
    )
    .await;
    let message = challenge.body["message"].as_str().unwrap().to_owned();
    let signature = sign_digest(&keeper.wallet, &personal_message_digest(message.as_bytes()));
    let form = format!(
        "message={}&signature={}",
        caravan_server::web::page::url_encode(&message),
        signature.to_hex()
    );

    let shown = call(
        &app,
        Method::GET,
        &format!("/sign-in/link?{form}"),
        Auth::None,
        None,
    )
    .await;
    assert_eq!(shown.status, StatusCode::OK, "{}", text(&shown));
    assert!(
        text(&shown).contains(&keeper.address.to_checksum()),
        "the page names the account before anything is used"
    );

    let post = |origin: String| {
        let app = app.clone();
        let form = form.clone();
        async move {
            send_with(
                &app,
                Method::POST,
                "/sign-in/link",
                Auth::None,
                Body::from(form),
                "application/x-www-form-urlencoded",
                &[("origin", origin.as_str())],
            )
            .await
        }
    };
    let foreign = post("https://evil.example".to_owned()).await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    assert!(session_of(&foreign.headers).is_none());

    let used = post(origin.clone()).await;
    assert_eq!(used.status, StatusCode::SEE_OTHER, "{}", text(&used));
    let session = session_of(&used.headers).expect("a session cookie");
    let board = page(&app, "/tasks", &session).await;
    assert_eq!(board.status, StatusCode::OK);
    assert!(text(&board).contains(&keeper.address.to_checksum()));

    let again = post(origin).await;
    assert!(again.status.is_client_error(), "a link works once");
    assert!(text(&again).contains("make a new one with `caravan login"));
    assert!(
        !text(&again).contains(&signature.to_hex()),
        "the error page does not repeat the signature"
    );
}

#[tokio::test]
async fn a_contributor_sees_the_board_and_labels_through_the_screen() {
    let dir = tempfile::tempdir().unwrap();
    let requester = Person::new("requester");
    let worker = Person::new("worker");
    let other = Person::new("other worker");
    let node = open_node(
        dir.path(),
        &[(requester.address, 10_000_000)],
        ChainDirectory::default(),
        &[],
    );
    let app = caravan_server::router(node);
    let requester_session = requester.sign_in(&app).await;
    let project = post_project(&app, &requester_session, 1, 3).await;

    let session = worker.sign_in(&app).await;
    let board = page(&app, "/tasks", &session).await;
    assert_eq!(board.status, StatusCode::OK);
    let html = text(&board);
    assert!(html.contains("Sentiment of product reviews"), "{html}");
    assert!(html.contains("0.001 USDC"), "the bounty in its token");
    assert!(html.contains("<dt>Items left</dt><dd>3</dd>"), "{html}");
    let csrf = csrf_of(html);

    let screen = page(&app, &format!("/projects/{project}/label"), &session).await;
    assert_eq!(screen.status, StatusCode::OK);
    assert!(text(&screen).contains("At most 1000 answers a day"));

    let next = format!("/projects/{project}/label/next");
    let forged = script(&app, &next, &session, Some("0123"), None).await;
    assert_eq!(
        forged.status,
        StatusCode::FORBIDDEN,
        "no item without the token"
    );
    let missing = script(&app, &next, &session, None, None).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);

    let fragment = script(&app, &next, &session, Some(&csrf), None).await;
    assert_eq!(fragment.status, StatusCode::OK);
    let fragment = text(&fragment).to_owned();
    assert!(fragment.contains(r#"data-kind="single_choice""#));
    assert!(fragment.contains("review number 0"));
    assert!(fragment.contains(r#"<kbd aria-hidden="true">1</kbd>"#));
    let item = fragment
        .split(r#"data-item=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();

    let answer = format!("/projects/{project}/label/answer");
    let body = json!({ "item": item, "answer": { "choice": "pos" } });
    let unsigned = script(&app, &answer, &session, None, Some(body.clone())).await;
    assert_eq!(unsigned.status, StatusCode::FORBIDDEN);
    let others_session = other.sign_in(&app).await;
    let others_csrf = csrf_of(text(&page(&app, "/tasks", &others_session).await));
    let not_theirs = script(
        &app,
        &answer,
        &others_session,
        Some(&others_csrf),
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        not_theirs.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an item leased to someone else cannot be answered: {}",
        not_theirs.body
    );

    let answered = script(&app, &answer, &session, Some(&csrf), Some(body)).await;
    assert_eq!(answered.status, StatusCode::OK, "{}", answered.body);
    let said = answered.body["messages"][0].as_str().unwrap();
    assert!(
        said.starts_with("Saved. It is paid once the item's label is settled"),
        "one answer of an overlap of at least one more is saved, not yet paid: {said}"
    );

    let second = script(&app, &next, &session, Some(&csrf), None).await;
    let second_item = text(&second)
        .split(r#"data-item=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    assert_ne!(second_item, item, "the next item arrives after an answer");
    let skipped = script(
        &app,
        &format!("/projects/{project}/label/skip"),
        &session,
        Some(&csrf),
        Some(json!({ "item": second_item })),
    )
    .await;
    assert_eq!(skipped.status, StatusCode::NO_CONTENT, "{}", skipped.body);
    let third = script(&app, &next, &session, Some(&csrf), None).await;
    assert!(
        !text(&third).contains(&second_item),
        "a skipped item comes back only when nothing else is left"
    );

    let board = page(&app, "/tasks?tab=in-progress", &session).await;
    let html = text(&board);
    assert!(
        html.contains("1 submitted, 0 accepted, 0 rejected"),
        "{html}"
    );
    assert!(html.contains("999 of 1000 left today"), "{html}");

    let gone = script(&app, &next, "crs_ended", Some(&csrf), None).await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
    assert_eq!(gone.body["error"]["code"], "session_ended");

    let sign_out = send_with(
        &app,
        Method::POST,
        "/sign-out",
        Auth::Session(&session),
        Body::from("csrf=wrong"),
        "application/x-www-form-urlencoded",
        &[],
    )
    .await;
    assert_eq!(sign_out.status, StatusCode::FORBIDDEN);
    let sign_out = send_with(
        &app,
        Method::POST,
        "/sign-out",
        Auth::Session(&session),
        Body::from(format!("csrf={csrf}")),
        "application/x-www-form-urlencoded",
        &[],
    )
    .await;
    assert_eq!(sign_out.status, StatusCode::SEE_OTHER);
    let after = page(&app, "/tasks", &session).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER, "the session is over");
}

/// The page's text without its tags, whitespace collapsed: what a reader sees.
fn visible(page: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in page.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

async fn form(app: &axum::Router, path: &str, session: &str, body: &str) -> common::Reply {
    send_with(
        app,
        Method::POST,
        path,
        Auth::Session(session),
        Body::from(body.to_owned()),
        "application/x-www-form-urlencoded",
        &[],
    )
    .await
}

#[tokio::test]
async fn a_labeller_sees_bounties_then_a_royalty_traced_to_their_labels_and_claims_it() {
    use caravan_core::{
        Address, AssetKind, Event, Hash32, Licence, Manifest, Member, ParentEdge, Ppm, Role,
        RoleShare, Usage,
    };
    use caravan_node::earnings::EMBEDDED_CHAIN_ID;

    let dir = tempfile::tempdir().unwrap();
    let requester = Person::new("requester");
    let labeller = Person::new("labeller");
    let node = common::open_settling_node(dir.path(), &[(requester.address, 10_000_000)], &[]);
    let app = caravan_server::router(std::sync::Arc::clone(&node));
    let lab = requester.sign_in(&app).await;
    let mut spec = common::spec(1, 1_000_000);
    spec["overlap"] = json!({ "min": 1, "max": 1, "confidence": 0.5 });
    spec["method"] = json!("mv");
    let created = call(
        &app,
        Method::POST,
        "/v1/projects",
        Auth::Session(&lab),
        Some(json!({ "spec": spec })),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let project = created.body["project"].as_str().unwrap().to_owned();
    let csv = "text\ngreat phone\nbroke in a day\nworks well\n";
    let added = common::send(
        &app,
        Method::POST,
        &format!("/v1/projects/{project}/items?format=csv"),
        Auth::Session(&lab),
        Body::from(csv),
        "text/csv",
    )
    .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);

    let mine = labeller.sign_in(&app).await;
    for _ in 0..3 {
        let next = format!("/v1/projects/{project}/next");
        let assignment = call(&app, Method::POST, &next, Auth::Session(&mine), None).await;
        let body = json!({ "item": assignment.body["item"], "answer": { "choice": "pos" } });
        let uri = format!("/v1/projects/{project}/judgments");
        let judged = call(&app, Method::POST, &uri, Auth::Session(&mine), Some(body)).await;
        assert_eq!(judged.status, StatusCode::CREATED, "{}", judged.body);
    }

    let before = page(&app, "/earnings", &mine).await;
    assert_eq!(before.status, StatusCode::OK);
    let seen = visible(text(&before));
    assert!(
        seen.contains("1 (open) not yet 0.003 USDC 3 0 USDC 0.003 USDC"),
        "three accepted judgments at 0.001 USDC show in the open epoch: {seen}"
    );
    assert!(seen.contains("No royalty in these epochs"), "{seen}");

    let published = call(
        &app,
        Method::POST,
        &format!("/v1/projects/{project}/publish"),
        Auth::Session(&lab),
        Some(json!({ "name": "review-sentiment", "licence": { "type": "open_use" } })),
    )
    .await;
    assert_eq!(published.status, StatusCode::CREATED, "{}", published.body);
    let dataset: caravan_core::AssetId =
        serde_json::from_value(published.body["asset"].clone()).unwrap();
    let developer = Address::from_label("developer");
    let model = Manifest {
        kind: AssetKind::Model,
        name: "review-reader".into(),
        owner: developer,
        content: Hash32([7; 32]),
        licence: Licence::OpenUse,
        parents: vec![ParentEdge {
            parent: dataset,
            kind: caravan_core::EdgeKind::TrainedOn,
            share: Ppm::new(300_000).unwrap(),
        }],
        roles: vec![RoleShare {
            role: Role::Developer,
            share: Ppm::ONE,
            members: vec![Member {
                account: developer,
                weight: 1,
            }],
        }],
    };
    let usage = Usage {
        asset: model.id(),
        payer: requester.address,
        token: common::token(),
        amount: 1_000_000,
        calls: 100,
        node: Address::from_label("serving node"),
    };
    node.journal()
        .enqueue(vec![
            Event::AssetRegistered(model),
            Event::UsageRecorded(usage),
        ])
        .wait()
        .unwrap();
    let epoch_node = std::sync::Arc::clone(&node);
    tokio::task::spawn_blocking(move || {
        epoch_node.close_epoch().unwrap();
        epoch_node.post_epoch(1, None).unwrap();
    })
    .await
    .unwrap();

    let after = page(&app, "/earnings", &mine).await;
    let seen = visible(text(&after));
    assert!(
        seen.contains("0.3 USDC from review-sentiment in epoch 1"),
        "30% of the model's 1 USDC reaches the only labeller: {seen}"
    );
    assert!(
        seen.contains(
            "review-reader → TRAINED_ON → review-sentiment → your 3 accepted labels on “Sentiment of product reviews”"
        ),
        "the royalty is traced through the lineage to the labels: {seen}"
    );
    assert!(
        seen.contains("Epoch 1's root is active"),
        "the chain's root is shown: {seen}"
    );
    assert!(
        seen.contains("USDC 0.303 USDC 0 USDC 0 USDC 0.303 USDC"),
        "bounties and the royalty are claimable now: {seen}"
    );
    assert!(
        text(&after).contains("<svg class=\"chart\""),
        "a chart is drawn"
    );

    let call_page = page(
        &app,
        &format!("/earnings/claims/{EMBEDDED_CHAIN_ID}"),
        &mine,
    )
    .await;
    assert_eq!(call_page.status, StatusCode::OK);
    let seen = visible(text(&call_page));
    assert!(seen.contains(&labeller.address.to_checksum()), "{seen}");
    assert!(seen.contains("cumulative 303000"), "{seen}");

    let csrf = csrf_of(text(&after));
    let claim = format!("chain_id={EMBEDDED_CHAIN_ID}");
    let forged = form(&app, "/earnings/claim", &mine, &claim).await;
    assert_eq!(
        forged.status,
        StatusCode::FORBIDDEN,
        "a claim without the token"
    );
    let other_chain = form(
        &app,
        "/earnings/claim",
        &mine,
        &format!("csrf={csrf}&chain_id=1"),
    )
    .await;
    assert_eq!(
        other_chain.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the node claims only on its embedded chain"
    );
    let claimed = form(
        &app,
        "/earnings/claim",
        &mine,
        &format!("csrf={csrf}&{claim}"),
    )
    .await;
    assert_eq!(claimed.status, StatusCode::SEE_OTHER);
    assert_eq!(
        location(&claimed),
        format!("/earnings?claimed={EMBEDDED_CHAIN_ID}")
    );
    let settled = visible(text(&page(&app, "/earnings", &mine).await));
    assert!(
        settled.contains("USDC 0 USDC 0.303 USDC 0 USDC 0.303 USDC"),
        "the chain shows it claimed: {settled}"
    );
    let again = form(
        &app,
        "/earnings/claim",
        &mine,
        &format!("csrf={csrf}&{claim}"),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "nothing left to claim");
    assert!(
        text(&again).contains("has claimed everything"),
        "{}",
        text(&again)
    );

    // The explorer, for anyone.
    let anonymous = |path: &'static str| call(&app, Method::GET, path, Auth::None, None);
    let list = anonymous("/explorer").await;
    assert_eq!(list.status, StatusCode::OK);
    let seen = visible(text(&list));
    assert!(
        seen.contains("Closed epochs Newest first Epoch Closed Beneficiaries Root 1 "),
        "{seen}"
    );
    let epoch = visible(text(&anonymous("/explorer/epochs/1").await));
    assert!(
        epoch.contains("USDC 1 USDC 1 USDC 0 USDC 0 USDC"),
        "the model's 1 USDC propagated, all of it paid: {epoch}"
    );
    assert!(
        epoch.contains("review-reader 1 USDC 1 USDC review-sentiment 0 USDC 0.3 USDC"),
        "the assets that earned, each with its own revenue and all that reached it: {epoch}"
    );
    assert!(
        epoch.contains("embedded chain id 6513010") && epoch.contains("State active"),
        "where the root was posted and that it is active: {epoch}"
    );
    let verified = call(
        &app,
        Method::POST,
        "/explorer/epochs/1/verify",
        Auth::None,
        None,
    )
    .await;
    assert_eq!(verified.status, StatusCode::OK);
    assert!(
        visible(text(&verified)).contains("Match: the root rebuilt from the bundle's"),
        "{}",
        text(&verified)
    );
    let bundle = anonymous("/explorer/epochs/1/bundle").await;
    assert_eq!(bundle.status, StatusCode::OK);
    assert_eq!(bundle.body["format"], "caravan-epoch-bundle/1");
    assert_eq!(
        anonymous("/explorer/epochs/9").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        anonymous("/explorer/epochs/one").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        anonymous("/explorer/accounts/0x12").await.status,
        StatusCode::BAD_REQUEST
    );
    let account = call(
        &app,
        Method::GET,
        &format!("/explorer/accounts/{}", labeller.address),
        Auth::None,
        None,
    )
    .await;
    let seen = visible(text(&account));
    assert!(
        seen.contains("0.3 USDC 0.303 USDC"),
        "royalties and all credited in epoch 1: {seen}"
    );
    assert!(
        seen.contains("review-reader → TRAINED_ON → review-sentiment → this address's data in it"),
        "traced, without the labels a contributor alone sees: {seen}"
    );
    assert!(
        seen.contains("USDC 0.303 USDC 0 USDC 0 USDC 0.303 USDC"),
        "what it claimed: {seen}"
    );
    let asset = call(
        &app,
        Method::GET,
        &format!("/explorer/assets/{dataset}"),
        Auth::None,
        None,
    )
    .await;
    assert_eq!(asset.status, StatusCode::OK);
    assert!(
        text(&asset).contains(r#"<svg class="lineage""#),
        "the lineage is drawn"
    );
    let seen = visible(text(&asset));
    assert!(
        seen.contains("review-reader child (TRAINED_ON): sends this asset 30% of what it earns"),
        "{seen}"
    );
    assert!(
        seen.contains("1 0 USDC 0.3 USDC"),
        "none of its own revenue, 0.3 USDC from the model: {seen}"
    );
    assert!(
        seen.contains(&format!(
            "{} data contributor 0.3 USDC",
            labeller.address.to_checksum()
        )),
        "{seen}"
    );
    assert_eq!(
        anonymous("/explorer/assets/0x12").await.status,
        StatusCode::BAD_REQUEST
    );
    let unknown = format!(
        "/explorer/assets/{}",
        caravan_core::AssetId(Hash32([5; 32]))
    );
    let unknown = call(&app, Method::GET, &unknown, Auth::None, None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

/// The `data-item` of an item fragment.
fn item_of(fragment: &str) -> String {
    fragment
        .split(r#"data-item=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("an item fragment")
        .to_owned()
}

#[tokio::test]
async fn u_takes_back_the_latest_unsettled_answer_and_shows_its_item_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let requester = Person::new("requester");
    let worker = Person::new("worker");
    let node = open_node(
        dir.path(),
        &[(requester.address, 10_000_000)],
        ChainDirectory::default(),
        &[],
    );
    let app = caravan_server::router(node);
    let requester_session = requester.sign_in(&app).await;
    let project = post_project(&app, &requester_session, 1, 3).await;
    let session = worker.sign_in(&app).await;
    let csrf = csrf_of(text(&page(&app, "/tasks", &session).await));
    let next = format!("/projects/{project}/label/next");
    let undo = format!("/projects/{project}/label/undo");

    let nothing = script(&app, &undo, &session, Some(&csrf), None).await;
    assert_eq!(nothing.status, StatusCode::CONFLICT);
    assert!(
        nothing.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no submission of yours here to take back"),
        "{}",
        nothing.body
    );

    let item = item_of(text(
        &script(&app, &next, &session, Some(&csrf), None).await,
    ));
    let body = json!({ "item": item, "answer": { "choice": "neg" } });
    let answer = format!("/projects/{project}/label/answer");
    let answered = script(&app, &answer, &session, Some(&csrf), Some(body)).await;
    assert_eq!(answered.status, StatusCode::OK, "{}", answered.body);
    let meanwhile = item_of(text(
        &script(&app, &next, &session, Some(&csrf), None).await,
    ));
    assert_ne!(meanwhile, item);
    let progress = format!("/projects/{project}/label/progress");
    let strip = visible(text(&page(&app, &progress, &session).await));
    assert!(
        strip.contains("Today: 1 of 1000 answers")
            && strip.contains("3 items left here · you: 1 submitted, 0 accepted, 0 USDC earned"),
        "{strip}"
    );

    let unsigned = script(&app, &undo, &session, None, None).await;
    assert_eq!(unsigned.status, StatusCode::FORBIDDEN);
    let taken_back = script(&app, &undo, &session, Some(&csrf), None).await;
    assert_eq!(taken_back.status, StatusCode::OK, "{}", taken_back.body);
    let fragment = text(&taken_back);
    assert_eq!(item_of(fragment), item, "the answered item comes back");
    assert!(
        fragment.contains(r#"data-taken-back="{&#34;choice&#34;:&#34;neg&#34;}""#),
        "with the answer to put back in the form: {fragment}"
    );
    let board = text(&page(&app, "/tasks?tab=in-progress", &session).await).to_owned();
    assert!(
        board.contains("0 submitted, 0 accepted, 0 rejected"),
        "the taken-back answer no longer counts: {board}"
    );
    assert!(board.contains("1000 of 1000 left today"), "{board}");
    let strip = visible(text(&page(&app, &progress, &session).await));
    assert!(
        strip.contains("Today: 0 of 1000 answers") && strip.contains("you: 0 submitted"),
        "the strip no longer counts it: {strip}"
    );
    let again = script(&app, &undo, &session, Some(&csrf), None).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "only once");

    let body = json!({ "item": item, "answer": { "choice": "pos" } });
    let resent = script(&app, &answer, &session, Some(&csrf), Some(body)).await;
    assert_eq!(resent.status, StatusCode::OK, "{}", resent.body);
}

#[tokio::test]
async fn the_developer_page_shows_the_balance_the_keys_and_snippets_for_this_node() {
    use caravan_node::keys::{KeyRequest, Scope};

    let dir = tempfile::tempdir().unwrap();
    let payer = Person::new("shop");
    let node = open_node(
        dir.path(),
        &[(payer.address, 2_500_000)],
        ChainDirectory::default(),
        &[],
    );
    let node_address = node.keys().node();
    let model = common::upstream_chat_model(
        node.gateway(),
        "shop-assistant",
        "http://127.0.0.1:9/v1",
        common::token(),
        2_500,
    );
    let app = caravan_server::router(std::sync::Arc::clone(&node));
    let session = payer.sign_in(&app).await;
    let before = visible(text(&page(&app, "/developer", &session).await));
    assert!(before.contains("USDC 2.5 USDC 0 USDC 0"), "{before}");
    assert!(before.contains("No key yet"), "{before}");
    assert!(
        before.contains("No paid calls in the last 30 days"),
        "{before}"
    );

    // Two calls the gateway charged, as it records them.
    let charge = caravan_core::Event::CallMetered(caravan_core::MeteredCall {
        payer: payer.address,
        token: common::token(),
        node: node_address,
        request: None,
        parts: vec![caravan_core::CallPart {
            asset: model,
            amount: 2_500,
            calls: 1,
        }],
        trace: "[]".into(),
    });
    let charged = node.journal().submit(vec![charge.clone(), charge]).unwrap();
    assert!(charged.refused.is_empty(), "{:?}", charged.refused);
    let spent = page(&app, "/developer?days=7", &session).await;
    let html = text(&spent);
    assert!(
        html.contains(r#"<a href="/developer?days=7#spend" aria-current="page">7 days</a>"#),
        "{html}"
    );
    assert!(html.contains("<title id=\"spend-USDC-title\">Spending per day in USDC</title>"));
    let seen = visible(html);
    assert!(
        seen.contains("0.005 USDC in 2 call(s) over 7 days"),
        "{seen}"
    );
    assert!(
        seen.contains("shop-assistant model 2 2 0.005 USDC"),
        "the model's row: {seen}"
    );
    let today =
        caravan_core::calendar::utc_date(caravan_store::now_ms() / caravan_core::calendar::DAY_MS);
    assert!(
        seen.contains(&format!("{today} 2 0.005 USDC")),
        "today's row: {seen}"
    );
    let bad_days = page(&app, "/developer?days=0", &session).await;
    assert_eq!(bad_days.status, StatusCode::BAD_REQUEST);
    assert!(visible(text(&bad_days)).contains("days must be from 1 to 366, got 0"));
    assert!(
        before.contains(r#"OpenAI(base_url="http://127.0.0.1:8080/v1""#),
        "the snippets point at this node: {before}"
    );
    assert!(
        before.contains(r#"curl http://127.0.0.1:8080/v1/chat/completions"#)
            && before.contains(r#"-d '{"model": "shop-assistant", "messages""#),
        "the snippets call a model the node serves: {before}"
    );

    let scopes = [Scope::Chat, Scope::Models];
    let signed = KeyRequest::Issue {
        scopes: &scopes,
        expires_in_days: Some(30),
        name: "shop backend",
    }
    .sign(&payer.wallet, &node_address, caravan_store::now_ms());
    let issued = call(
        &app,
        Method::POST,
        "/v1/keys",
        Auth::None,
        Some(json!({
            "payer": payer.address,
            "scopes": ["chat", "models"],
            "expires_in_days": 30,
            "name": "shop backend",
            "signed_at_ms": signed.signed_at_ms,
            "signature": signed.signature,
        })),
    )
    .await;
    assert_eq!(issued.status, StatusCode::CREATED, "{}", issued.body);
    let id = issued.body["id"].as_str().unwrap();
    let after = visible(text(&page(&app, "/developer", &session).await));
    assert!(
        after.contains(&format!("{id} shop backend models, chat")),
        "the key is listed with its scopes: {after}"
    );
    assert!(
        !after.contains(issued.body["key"].as_str().unwrap()),
        "the secret is never shown again"
    );
    let anonymous = call(&app, Method::GET, "/developer", Auth::None, None).await;
    assert_eq!(
        anonymous.status,
        StatusCode::SEE_OTHER,
        "only for the signed in"
    );
    let token = common::token();
    let no_chain = page(
        &app,
        &format!("/developer/deposit?chain_id=31337&token={token}&amount=1"),
        &session,
    )
    .await;
    assert_eq!(
        (no_chain.status, no_chain.body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("no_chains")),
        "{}",
        no_chain.body
    );
    let unknown = page(
        &app,
        "/developer/deposit?chain_id=31337&token=0x000000000000000000000000000000000000dEaD&amount=1",
        &session,
    )
    .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn the_model_catalogue_lists_what_the_node_serves_with_price_lineage_and_attestations() {
    let dir = tempfile::tempdir().unwrap();
    let node = open_node(dir.path(), &[], ChainDirectory::default(), &[]);
    let empty = call(
        &caravan_server::router(std::sync::Arc::clone(&node)),
        Method::GET,
        "/models",
        Auth::None,
        None,
    )
    .await;
    assert!(visible(text(&empty)).contains("This node serves no paid model yet"));

    let asset = common::upstream_chat_model(
        node.gateway(),
        "shop-assistant",
        "http://127.0.0.1:9/v1",
        common::token(),
        2_500,
    );
    let app = caravan_server::router(node);
    let listed = call(&app, Method::GET, "/models", Auth::None, None).await;
    assert_eq!(listed.status, StatusCode::OK, "open to anyone");
    let html = text(&listed);
    assert!(
        html.contains(&format!(r#"href="/explorer/assets/{asset}""#)),
        "{html}"
    );
    let seen = visible(html);
    assert!(
        seen.contains("shop-assistant model · /v1/chat/completions 0.0025 USDC per call + 0.1 USDC per million prompt tokens + 0.4 USDC per million completion tokens"),
        "{seen}"
    );
    assert!(seen.contains("No validator has attested it yet"), "{seen}");
    assert!(seen.contains("Call shop-assistant"), "{seen}");
}

#[tokio::test]
async fn a_requester_watches_their_project_and_publishes_it_from_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let requester = Person::new("requester");
    let worker = Person::new("worker");
    let node = open_node(
        dir.path(),
        &[(requester.address, 10_000_000)],
        ChainDirectory::default(),
        &[],
    );
    let app = caravan_server::router(node);
    let lab = requester.sign_in(&app).await;
    let project = post_project(&app, &lab, 1, 2).await;
    let session = worker.sign_in(&app).await;
    for _ in 0..2 {
        let next = format!("/v1/projects/{project}/next");
        let assignment = call(&app, Method::POST, &next, Auth::Session(&session), None).await;
        let body = json!({ "item": assignment.body["item"], "answer": { "choice": "pos" } });
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

    let mine = visible(text(&page(&app, "/requests", &lab).await));
    assert!(
        mine.contains("Sentiment of product reviews 2 open"),
        "{mine}"
    );
    let theirs = visible(text(&page(&app, "/requests", &session).await));
    assert!(theirs.contains("You have posted no project"), "{theirs}");

    let path = format!("/requests/{project}");
    let watched = page(&app, &path, &lab).await;
    assert_eq!(watched.status, StatusCode::OK);
    let seen = visible(text(&watched));
    assert!(seen.contains("Judgments 2"), "{seen}");
    assert!(seen.contains("Contributors 1 (0 paused)"), "{seen}");
    // The worker's row shows the address short, linked to the account in the explorer.
    let address = worker.address.to_checksum();
    assert!(
        seen.contains(&format!("{} 2 0 0 —", short_address(&address))),
        "the worker's record: {seen}"
    );
    assert!(
        text(&watched).contains(&format!(
            r#"<a href="/explorer/accounts/{address}" title="{address}""#
        )),
        "no link to the worker's account"
    );
    let refused = page(&app, &path, &session).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "only its requester");

    let csrf = csrf_of(text(&watched));
    let publish = format!("{path}/publish");
    let forged = form(
        &app,
        &publish,
        &lab,
        "name=reviews&licence=open_use&curator_share=0%25",
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let bad_share = form(
        &app,
        &publish,
        &lab,
        &format!("csrf={csrf}&name=reviews&licence=open_use&curator_share=lots"),
    )
    .await;
    assert_eq!(bad_share.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(&bad_share).contains("Write a percentage such as 10%"));
    let nothing = form(
        &app,
        &publish,
        &lab,
        &format!("csrf={csrf}&name=reviews&licence=open_use&curator_share=0%25"),
    )
    .await;
    assert_eq!(
        nothing.status,
        StatusCode::CONFLICT,
        "an overlap of 1 to 3 at 90% confidence resolves nothing with one answer each: {}",
        text(&nothing)
    );
    assert!(
        text(&nothing).contains("nothing to publish yet"),
        "{}",
        text(&nothing)
    );
}

/// A `multipart/form-data` body of `fields` and one file, as a browser's upload form sends it.
fn upload_body(fields: &[(&str, &str)], file_name: &str, file: &str) -> (String, String) {
    let boundary = "caravan-test-boundary";
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n{file}\r\n--{boundary}--\r\n"
    ));
    (body, format!("multipart/form-data; boundary={boundary}"))
}

async fn upload(
    app: &axum::Router,
    path: &str,
    session: &str,
    fields: &[(&str, &str)],
    file_name: &str,
    file: &str,
) -> common::Reply {
    let (body, content_type) = upload_body(fields, file_name, file);
    send_with(
        app,
        Method::POST,
        path,
        Auth::Session(session),
        Body::from(body),
        &content_type,
        &[],
    )
    .await
}

/// A urlencoded form body from pairs.
fn encoded(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| {
            let value: String = value
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{name}={value}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
async fn a_requester_posts_a_project_imports_items_adds_a_reviewer_who_reviews_in_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let requester = Person::new("requester");
    let worker = Person::new("worker");
    let reviewer = Person::new("reviewer");
    let node = open_node(
        dir.path(),
        &[(requester.address, 10_000_000)],
        ChainDirectory::default(),
        &[],
    );
    let app = caravan_server::router(node);
    let lab = requester.sign_in(&app).await;

    let blank = page(&app, "/requests/new", &lab).await;
    assert_eq!(blank.status, StatusCode::OK);
    let shown = visible(text(&blank));
    assert!(
        shown.contains("USDC — 10 USDC available to escrow"),
        "{shown}"
    );
    let csrf = csrf_of(text(&blank));
    let token = common::token().to_checksum();
    let filled = |changes: &[(&'static str, &'static str)]| {
        let mut pairs: Vec<(&str, &str)> = vec![
            ("csrf", csrf.as_str()),
            ("title", "Summaries of support tickets"),
            ("instructions", "Summarise the ticket in one sentence."),
            ("kind", "free_text"),
            ("min_chars", "5"),
            ("max_chars", "200"),
            ("token", token.as_str()),
            ("bounty", "0.5"),
            ("budget", "4"),
            ("overlap_min", "1"),
            ("overlap_max", "1"),
            ("confidence", "90%"),
            ("gold_rate", "0%"),
            ("exam_questions", "0"),
            ("pass_mark", "80%"),
            ("skill_bar", "50%"),
            ("gold_grace", "3"),
            ("min_seconds", "0"),
            ("daily_cap", "100"),
            ("lease_minutes", "10"),
            ("deadline", ""),
            ("method", "mv"),
            ("order", "import_order"),
        ];
        for (name, value) in changes {
            pairs.retain(|(n, _)| n != name);
            pairs.push((name, value));
        }
        encoded(&pairs)
    };

    let forged = form(&app, "/requests/new", &lab, &filled(&[("csrf", "")])).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let wrong = form(
        &app,
        "/requests/new",
        &lab,
        &filled(&[("max_chars", "2"), ("bounty", "half"), ("daily_cap", "0")]),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    let said = visible(text(&wrong));
    assert!(said.contains("change these 3"), "{said}");
    assert!(said.contains("min_chars 5 and max_chars 2"), "{said}");
    assert!(
        said.contains("in whole tokens: amount `half` for USDC"),
        "{said}"
    );
    assert!(
        said.contains("Answers per day must be at least 1"),
        "{said}"
    );
    assert!(
        text(&wrong).contains(r#"value="Summaries of support tickets""#),
        "what was typed stays in the form"
    );
    assert!(
        text(&wrong).contains(r##"href="#max_chars""##)
            || text(&wrong).contains(r##"href="#min_chars""##)
    );

    let short = form(&app, "/requests/new", &lab, &filled(&[("budget", "11")])).await;
    assert_eq!(short.status, StatusCode::PAYMENT_REQUIRED);
    let said = visible(text(&short));
    assert!(said.contains("Deposit at least 1 USDC more"), "{said}");
    assert!(text(&short).contains(r#"<a href="/developer">developer page</a>"#));

    let posted = form(&app, "/requests/new", &lab, &filled(&[])).await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER, "{}", text(&posted));
    let to = location(&posted).to_owned();
    let project = to
        .strip_prefix("/requests/")
        .and_then(|rest| rest.strip_suffix("?created=1"))
        .expect("the new project's page")
        .to_owned();
    let opened = visible(text(&page(&app, &to, &lab).await));
    assert!(
        opened.contains("Posted, and the budget is escrowed"),
        "{opened}"
    );
    assert!(
        opened.contains("Budget 0 USDC paid, 0 USDC committed, of 4 USDC"),
        "{opened}"
    );
    let balance = call(&app, Method::GET, "/v1/balance", Auth::Session(&lab), None).await;
    assert!(
        balance.body.to_string().contains("6000000"),
        "4 of 10 USDC escrowed: {}",
        balance.body
    );

    let items = format!("/requests/{project}/items");
    let bad = "{\"ticket\": \"fine\", \"data\": 3}\n{\"data\": {\"ticket\": \"x\"}, \"gold\": {\"text\": \"no\"}}\n{\"ticket\": \"ok\"}\n{\"ticket\": \n";
    let refused = upload(
        &app,
        &items,
        &lab,
        &[("csrf", &csrf), ("format", "auto")],
        "tickets.jsonl",
        bad,
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let said = visible(text(&refused));
    assert!(
        said.contains("tickets.jsonl was not imported: 2 bad records, nothing was added"),
        "{said}"
    );
    assert!(
        said.contains("line 2 gold text must be 5 to 200 characters, got 2"),
        "{said}"
    );
    assert!(said.contains("line 4 json not valid JSON"), "{said}");
    assert!(said.contains("Items resolved 0 of 0"), "{said}");
    let unsigned = upload(
        &app,
        &items,
        &lab,
        &[("format", "auto")],
        "tickets.jsonl",
        bad,
    )
    .await;
    assert_eq!(unsigned.status, StatusCode::FORBIDDEN);
    let unknown = upload(
        &app,
        &items,
        &lab,
        &[("csrf", &csrf), ("format", "auto")],
        "tickets.txt",
        "a",
    )
    .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(&unknown).contains("choose the format in the form"));

    let good = "{\"ticket\": \"The printer on floor 3 jams on every job.\"}\n{\"ticket\": \"VPN drops every ten minutes since the update.\"}\n";
    let imported = upload(
        &app,
        &items,
        &lab,
        &[("csrf", &csrf), ("format", "jsonl")],
        "tickets.jsonl",
        good,
    )
    .await;
    assert_eq!(
        imported.status,
        StatusCode::SEE_OTHER,
        "{}",
        text(&imported)
    );
    let said = visible(text(&page(&app, location(&imported), &lab).await));
    assert!(said.contains("Imported 2 items."), "{said}");
    let again = upload(
        &app,
        &items,
        &lab,
        &[("csrf", &csrf), ("format", "jsonl")],
        "tickets.jsonl",
        good,
    )
    .await;
    let said = visible(text(&page(&app, location(&again), &lab).await));
    assert!(
        said.contains("Imported 0 items; 2 were already in the project"),
        "{said}"
    );

    let reviewers = format!("/requests/{project}/reviewers");
    let typo = form(
        &app,
        &reviewers,
        &lab,
        &encoded(&[("csrf", &csrf), ("reviewer", "0x12")]),
    )
    .await;
    assert_eq!(typo.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(&typo).contains("paste the reviewer"));
    let reviewer_address = reviewer.address.to_checksum();
    let added = form(
        &app,
        &reviewers,
        &lab,
        &encoded(&[("csrf", &csrf), ("reviewer", &reviewer_address)]),
    )
    .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER);
    let said = visible(text(&page(&app, location(&added), &lab).await));
    assert!(
        said.contains(&format!("{reviewer_address} may now review answers here")),
        "{said}"
    );

    let labeller = worker.sign_in(&app).await;
    for summary in ["Printer jams on floor 3.", "VPN dropz after update"] {
        let next = format!("/v1/projects/{project}/next");
        let assignment = call(&app, Method::POST, &next, Auth::Session(&labeller), None).await;
        let body = json!({ "item": assignment.body["item"], "answer": { "text": summary } });
        let uri = format!("/v1/projects/{project}/judgments");
        let judged = call(
            &app,
            Method::POST,
            &uri,
            Auth::Session(&labeller),
            Some(body),
        )
        .await;
        assert_eq!(judged.status, StatusCode::CREATED, "{}", judged.body);
    }
    let watched = visible(text(
        &page(&app, &format!("/requests/{project}"), &lab).await,
    ));
    assert!(
        watched.contains("2 answers waiting for review"),
        "{watched}"
    );
    let worker_row = format!("{} 2 0 0 — ", short_address(&worker.address.to_checksum()));
    let median = watched
        .split(&worker_row)
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .expect("the worker's row");
    assert!(
        median.parse::<f64>().is_ok(),
        "a median time in seconds: {watched}"
    );

    let queue = format!("/projects/{project}/review");
    assert_eq!(
        page(&app, &queue, &labeller).await.status,
        StatusCode::FORBIDDEN,
        "only reviewers"
    );
    let checker = reviewer.sign_in(&app).await;
    // The reviewer finds the queue on their task board, with how many answers wait.
    let board = text(&page(&app, "/tasks", &checker).await).to_owned();
    assert!(
        board.contains(&format!(r#"<a href="{queue}">"#)),
        "the queue is linked from the task board: {board}"
    );
    assert!(visible(&board).contains("Your review queues"), "{board}");
    assert!(visible(&board).contains("2 answer(s) wait"), "{board}");
    let theirs = visible(text(&page(&app, "/tasks", &labeller).await));
    assert!(
        !theirs.contains("Your review queues"),
        "only reviewers see queues: {theirs}"
    );
    let screen = page(&app, &queue, &checker).await;
    assert_eq!(screen.status, StatusCode::OK);
    assert!(visible(text(&screen)).contains("2 answers waiting when this page opened"));
    let csrf = csrf_of(text(&screen));
    let first = script(&app, &format!("{queue}/next"), &checker, Some(&csrf), None).await;
    let fragment = text(&first).to_owned();
    assert!(
        fragment.contains("The printer on floor 3 jams on every job."),
        "the item as the labeller saw it: {fragment}"
    );
    assert!(
        fragment.contains("Printer jams on floor 3."),
        "the answer in the form: {fragment}"
    );
    assert!(fragment.contains("Accept as written"));
    let judgment: u32 = fragment
        .split(r#"data-judgment=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|n| n.parse().ok())
        .expect("the judgment under review");
    let verdict = format!("{queue}/verdict");
    let unsigned = script(
        &app,
        &verdict,
        &checker,
        None,
        Some(json!({ "judgment": judgment, "verdict": { "decision": "accept" } })),
    )
    .await;
    assert_eq!(unsigned.status, StatusCode::FORBIDDEN);
    let accepted = script(
        &app,
        &verdict,
        &checker,
        Some(&csrf),
        Some(json!({ "judgment": judgment, "verdict": { "decision": "accept" } })),
    )
    .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.body);
    assert_eq!(
        accepted.body["messages"][0],
        "Accepted: 0.5 USDC paid to its labeller."
    );

    let second = script(&app, &format!("{queue}/next"), &checker, Some(&csrf), None).await;
    assert!(text(&second).contains("VPN dropz after update"));
    let judgment: u32 = text(&second)
        .split(r#"data-judgment=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    let too_short = script(&app, &verdict, &checker, Some(&csrf), Some(json!({ "judgment": judgment, "verdict": { "decision": "fix", "answer": { "text": "VPN" } } }))).await;
    assert_eq!(too_short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        too_short
            .body
            .to_string()
            .contains("text must be 5 to 200 characters")
    );
    let fixed = script(&app, &verdict, &checker, Some(&csrf), Some(json!({ "judgment": judgment, "verdict": { "decision": "fix", "answer": { "text": "The VPN drops after the update." } } }))).await;
    assert_eq!(fixed.status, StatusCode::OK, "{}", fixed.body);
    assert!(
        fixed.body["messages"][0]
            .as_str()
            .unwrap()
            .starts_with("Accepted with your fix")
    );
    let done = script(&app, &format!("{queue}/next"), &checker, Some(&csrf), None).await;
    assert!(visible(text(&done)).contains("Nothing waits for review"));
    let emptied = visible(text(&page(&app, "/tasks", &checker).await));
    assert!(emptied.contains("nothing waits"), "{emptied}");

    let watched = visible(text(
        &page(&app, &format!("/requests/{project}"), &lab).await,
    ));
    assert!(watched.contains("Items resolved 2 of 2"), "{watched}");
    assert!(watched.contains("Budget 1 USDC paid"), "{watched}");
    assert!(
        watched.contains("0 answers waiting for review"),
        "{watched}"
    );
}

#[tokio::test]
async fn label_studios_own_export_uploads_with_its_annotations_as_gold_and_the_page_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let requester = Person::new("requester");
    let node = open_node(
        dir.path(),
        &[(requester.address, 10_000_000)],
        ChainDirectory::default(),
        &[],
    );
    let app = caravan_server::router(node);
    let lab = requester.sign_in(&app).await;
    let mut spec = common::spec(1, 1_000_000);
    spec["schema"]["options"] = json!(["Positive", "Negative"]);
    let created = call(
        &app,
        Method::POST,
        "/v1/projects",
        Auth::Session(&lab),
        Some(json!({ "spec": spec })),
    )
    .await;
    let project = created.body["project"].as_str().unwrap().to_owned();
    let csrf = csrf_of(text(&page(&app, "/requests", &lab).await));
    let exported = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../caravan-tasks/tests/label_studio/sentiment.json.export"
    ))
    .unwrap();
    let uploaded = upload(
        &app,
        &format!("/requests/{project}/items"),
        &lab,
        &[("csrf", &csrf), ("format", "auto"), ("annotations", "gold")],
        "project-1-at-2026-12-06.json",
        &exported,
    )
    .await;
    assert_eq!(
        uploaded.status,
        StatusCode::SEE_OTHER,
        "{}",
        text(&uploaded)
    );
    let said = visible(text(&page(&app, location(&uploaded), &lab).await));
    assert!(said.contains("Imported 2 items."), "{said}");
    assert!(
        said.contains("2 prediction(s) were listed only by id and were skipped"),
        "{said}"
    );
    assert!(
        said.contains("2 annotation(s) became gold answers"),
        "{said}"
    );
    let status = call(
        &app,
        Method::GET,
        &format!("/v1/projects/{project}"),
        Auth::Session(&lab),
        None,
    )
    .await;
    assert_eq!(status.body["status"]["gold_items"], 2, "{}", status.body);
}

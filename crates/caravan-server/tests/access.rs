//! Every route of the router, walked with no credentials, with another account's (or a key
//! without the scope), and with the right ones. The routes come from the table the router is
//! built from, and a route without a case here fails the walk: no route can be added without an
//! authorization decision and its test.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use caravan_core::{Address, AssetId, AssetKind, Attestation, Licence, Manifest, Ppm, keccak256};
use caravan_models::embedding::{MINILM, default_models_dir};
use caravan_models::{ArtifactStore, Classifier, Example, SentenceEncoder, TrainOptions};
use caravan_node::Node;
use caravan_node::gateway::embeddings::EncoderServing;
use caravan_node::gateway::upstream::Upstream;
use caravan_node::keys::{KeyRequest, Scope};
use caravan_server::access::Access;
use caravan_server::router;
use caravan_server::routes::table;
use caravan_store::now_ms;
use caravan_tasks::project::ProjectId;
use caravan_tasks::schema::Answer;
use common::{Auth, Person, call, open_settling_node, send, spec, token};
use serde_json::{Value, json};

/// The credentials a request carries, owned.
#[derive(Clone, Debug)]
enum Creds {
    None,
    Session(String),
    Key(String),
}

/// One request of a case.
#[derive(Clone, Debug)]
struct Req {
    method: Method,
    uri: String,
    creds: Creds,
    body: Option<Value>,
    /// A raw text body (item imports) instead of JSON.
    text: Option<String>,
}

impl Req {
    fn new(method: Method, uri: impl Into<String>, creds: Creds) -> Req {
        Req {
            method,
            uri: uri.into(),
            creds,
            body: None,
            text: None,
        }
    }

    fn json(mut self, body: Value) -> Req {
        self.body = Some(body);
        self
    }

    fn text(mut self, text: &str) -> Req {
        self.text = Some(text.to_owned());
        self
    }

    fn with(&self, creds: Creds) -> Req {
        Req {
            creds,
            ..self.clone()
        }
    }

    async fn send(&self, app: &Router) -> common::Reply {
        let auth = match &self.creds {
            Creds::None => Auth::None,
            Creds::Session(secret) => Auth::Session(secret),
            Creds::Key(key) => Auth::Key(key),
        };
        match (&self.body, &self.text) {
            (_, Some(text)) => {
                send(
                    app,
                    self.method.clone(),
                    &self.uri,
                    auth,
                    Body::from(text.clone()),
                    "text/csv",
                )
                .await
            }
            (body, None) => call(app, self.method.clone(), &self.uri, auth, body.clone()).await,
        }
    }
}

/// How a route is walked: what a request without credentials, one with the wrong ones (and the
/// status it must get), and one with the right ones send.
struct Case {
    unauthenticated: Option<Req>,
    wrong: Option<(Req, StatusCode)>,
    right: Req,
    /// The right request's success may depend on something this test does not have (a
    /// JSON-RPC chain); then only its passing the access check is asserted.
    right_may_lack: Option<&'static str>,
}

impl Case {
    /// A route anyone may call: the request without credentials is the right one.
    fn public(right: Req) -> Case {
        Case {
            unauthenticated: None,
            wrong: None,
            right,
            right_may_lack: None,
        }
    }

    /// A route behind credentials: without them it is `right` with none; with the wrong ones,
    /// `wrong`, which must get `status`.
    fn guarded(right: Req, wrong: Req, status: StatusCode) -> Case {
        Case {
            unauthenticated: Some(right.with(Creds::None)),
            wrong: Some((wrong, status)),
            right,
            right_may_lack: None,
        }
    }

    /// A route whose credential is a signature in the request itself.
    fn signed(unsigned: Req, signed_by_another: Req, right: Req) -> Case {
        Case {
            unauthenticated: Some(unsigned),
            wrong: Some((signed_by_another, StatusCode::FORBIDDEN)),
            right,
            right_may_lack: None,
        }
    }
}

/// Short reviews labelled by sentiment, enough to train a classifier.
fn reviews() -> Vec<Example> {
    let good = ["great", "love", "excellent", "perfect", "happy"];
    let bad = ["broken", "terrible", "refund", "awful", "disappointed"];
    (0..60u32)
        .map(|n| {
            let positive = n % 2 == 0;
            let words = if positive { &good } else { &bad };
            Example {
                key: keccak256(&n.to_be_bytes()),
                data: json!({ "text": format!("the phone is {}", words[(n as usize / 2) % 5]) }),
                label: if positive { "positive" } else { "negative" }.into(),
            }
        })
        .collect()
}

fn paid_model(name: &str, content: caravan_core::Hash32) -> Manifest {
    let mut manifest = Manifest {
        kind: AssetKind::Model,
        name: name.into(),
        owner: Address::from_label("developer"),
        content,
        licence: Licence::Commercial {
            token: token(),
            price_per_call: 1_000,
            derivative_royalty: Ppm::ZERO,
        },
        parents: vec![],
        roles: vec![],
    };
    manifest.normalise();
    manifest
}

/// An upstream chat server that answers every completion with two words.
async fn upstream() -> String {
    use axum::routing::post;
    let app = Router::new().route(
        "/v1/chat/completions",
        post(|| async {
            axum::Json(
                json!({ "id": "up-1", "object": "chat.completion", "created": 1,
                "model": "up", "choices": [{ "index": 0, "finish_reason": "stop",
                    "message": { "role": "assistant", "content": "hello there" } }],
                "usage": { "prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7 } }),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
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

/// A project spec where one judgment resolves an item.
fn one_judgment() -> Value {
    let mut spec = spec(1, 1_000_000);
    spec["overlap"]["max"] = json!(1);
    spec
}

fn free_text_spec() -> Value {
    let mut spec = one_judgment();
    spec["schema"] = json!({ "type": "free_text", "min_chars": 1, "max_chars": 200 });
    spec
}

fn project(node: &Node, requester: Address, spec: Value, items: usize) -> ProjectId {
    let desk = node.desk();
    let id = desk
        .create_project(requester, serde_json::from_value(spec).unwrap())
        .unwrap();
    let items = (0..items)
        .map(|n| caravan_tasks::item::Item {
            data: json!({ "text": format!("item {n} of {id}") }),
            gold: None,
            predictions: Vec::new(),
        })
        .collect();
    desk.add_items(&id, requester, items).unwrap();
    id
}

/// Leases the contributor's next item on `project` and answers it.
fn judge(node: &Node, project: &ProjectId, contributor: Address, answer: Answer) {
    let desk = node.desk();
    let assignment = desk.next_item(project, contributor).unwrap();
    desk.submit(project, contributor, assignment.item, answer)
        .unwrap();
}

fn key_body(person: &Person, node: Address, scopes: &[Scope], name: &str) -> Value {
    let request = KeyRequest::Issue {
        scopes,
        expires_in_days: None,
        name,
    };
    let signed = request.sign(&person.wallet, &node, now_ms());
    json!({ "payer": person.address, "scopes": scopes, "name": name,
            "signed_at_ms": signed.signed_at_ms, "signature": signed.signature })
}

fn signed_query(person: &Person, payer: Address, node: Address, request: KeyRequest) -> String {
    request.sign(&person.wallet, &node, now_ms()).query(&payer)
}

fn attestation(validator: &Person, named: Option<Address>, model: AssetId) -> Value {
    let signed = Attestation::sign(
        &validator.wallet.to_bytes().into(),
        model,
        keccak256(b"held-out reviews"),
        "accuracy",
        931_000,
        now_ms(),
    )
    .unwrap();
    json!({ "validator": named.unwrap_or(signed.validator), "dataset": signed.dataset,
            "metric": signed.metric, "value_micros": signed.value_micros,
            "issued_at_ms": signed.issued_at_ms, "signature": signed.signature })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_the_wrong_callers_and_serves_the_right_one() {
    let dir = tempfile::tempdir().unwrap();
    let [
        requester,
        stranger,
        shop,
        operator,
        reviewer,
        judge_person,
        next_person,
    ] = [
        "requester",
        "stranger",
        "shop",
        "operator",
        "reviewer",
        "judge",
        "next",
    ]
    .map(Person::new);
    let (author, validator, thief, leaver, new_reviewer) = (
        Person::new("author"),
        Person::new("validator"),
        Person::new("thief"),
        Person::new("leaver"),
        Person::new("new reviewer"),
    );
    let node = open_settling_node(
        dir.path(),
        &[
            (requester.address, 100_000_000),
            (stranger.address, 10_000_000),
            (shop.address, 10_000_000),
        ],
        &[operator.address],
    );
    let app = router(Arc::clone(&node));
    let node_address = node.gateway().node();

    // Projects: one to label (two items already judged, one leased for a judgment), one
    // published (for the export), one to publish, one to close, one with work to review.
    let labeling = project(&node, requester.address, one_judgment(), 6);
    for _ in 0..2 {
        judge(
            &node,
            &labeling,
            judge_person.address,
            Answer::Choice("pos".into()),
        );
    }
    node.desk()
        .publish(
            &labeling,
            requester.address,
            "published".into(),
            Licence::OpenUse,
            Ppm::ZERO,
        )
        .unwrap();
    let leased = node
        .desk()
        .next_item(&labeling, judge_person.address)
        .unwrap()
        .item;
    let to_publish = project(&node, requester.address, one_judgment(), 1);
    judge(
        &node,
        &to_publish,
        judge_person.address,
        Answer::Choice("neg".into()),
    );
    let to_close = project(&node, requester.address, one_judgment(), 1);
    let reviewed = project(&node, requester.address, free_text_spec(), 2);
    node.desk()
        .add_reviewer(&reviewed, requester.address, reviewer.address)
        .unwrap();
    judge(
        &node,
        &reviewed,
        author.address,
        Answer::Text("a fine answer".into()),
    );
    node.close_epoch().unwrap();

    // Models: a classifier, a chat model behind an upstream, the embedding model if installed.
    let artifacts = ArtifactStore::new(dir.path().join("models"));
    let trained = Classifier::train(&reviews(), &TrainOptions::default()).unwrap();
    let content = artifacts.put(&trained.classifier.to_artifact()).unwrap();
    let classifier = paid_model("sentiment", content);
    let classifier_id = classifier.id();
    node.journal()
        .submit(vec![caravan_core::Event::AssetRegistered(classifier)])
        .unwrap();
    let upstream = Upstream {
        base_url: upstream().await,
        model: "up".into(),
        prompt_per_million: 100_000,
        completion_per_million: 400_000,
        api_key_env: None,
    };
    node.gateway()
        .register_upstream(paid_model("chat", upstream.content_hash()), upstream)
        .unwrap();
    let serving = EncoderServing {
        encoder: MINILM.into(),
        weights: installed_encoder().weights_hash(),
        dimensions: 384,
        input_per_million: 1_000,
    };
    node.gateway()
        .register_encoder(paid_model("minilm", serving.content_hash()), serving)
        .unwrap();

    // Credentials.
    let session = |person: &Person| {
        let app = app.clone();
        let person = person.clone();
        async move { Creds::Session(person.sign_in(&app).await) }
    };
    let (as_requester, as_stranger, as_shop, as_operator) = (
        session(&requester).await,
        session(&stranger).await,
        session(&shop).await,
        session(&operator).await,
    );
    let (as_reviewer, as_judge, as_next, as_leaver) = (
        session(&reviewer).await,
        session(&judge_person).await,
        session(&next_person).await,
        session(&leaver).await,
    );
    let issue = |scopes: Vec<Scope>, name: &str| {
        node.keys()
            .issue(shop.address, scopes, None, name.into())
            .unwrap()
    };
    let shop_key = Creds::Key(issue(Scope::GATEWAY.to_vec(), "backend").0);
    let labeling_key = Creds::Key(issue(vec![Scope::Labeling], "labeler").0);
    let (_, revocable) = issue(vec![Scope::Chat], "to revoke");

    // A fresh signed sign-in message, for the sign-in route itself.
    let nonce = call(
        &app,
        Method::GET,
        &format!("/v1/auth/nonce?address={}", leaver.address),
        Auth::None,
        None,
    )
    .await;
    let message = nonce.body["message"].as_str().unwrap().to_owned();
    let signature = caravan_core::attestation::sign_digest(
        &leaver.wallet,
        &caravan_core::attestation::personal_message_digest(message.as_bytes()),
    );

    let p = |id: &ProjectId| format!("/v1/projects/{id}");
    let forbidden = StatusCode::FORBIDDEN;
    let mut cases: BTreeMap<(&str, &str), Case> = BTreeMap::new();
    let mut case = |method: &'static str, path: &'static str, case: Case| {
        assert!(cases.insert((method, path), case).is_none());
    };
    use Method as M;
    case(
        "get",
        "/v1/openapi.json",
        Case::public(Req::new(M::GET, "/v1/openapi.json", Creds::None)),
    );
    case(
        "get",
        "/v1/auth/nonce",
        Case::public(Req::new(M::GET, "/v1/auth/nonce", Creds::None)),
    );
    case(
        "post",
        "/v1/auth/siwe",
        Case::public(
            Req::new(M::POST, "/v1/auth/siwe", Creds::None)
                .json(json!({ "message": message, "signature": signature.to_hex() })),
        ),
    );
    case(
        "get",
        "/v1/auth/session",
        Case::guarded(
            Req::new(M::GET, "/v1/auth/session", as_shop.clone()),
            Req::new(M::GET, "/v1/auth/session", shop_key.clone()),
            StatusCode::UNAUTHORIZED,
        ),
    );
    case(
        "post",
        "/v1/auth/logout",
        Case::guarded(
            Req::new(M::POST, "/v1/auth/logout", as_leaver.clone()),
            Req::new(M::POST, "/v1/auth/logout", shop_key.clone()),
            StatusCode::UNAUTHORIZED,
        ),
    );
    case(
        "post",
        "/v1/projects",
        Case::guarded(
            Req::new(M::POST, "/v1/projects", as_requester.clone())
                .json(json!({ "spec": spec(1, 1_000) })),
            Req::new(M::POST, "/v1/projects", as_stranger.clone())
                .json(json!({ "requester": requester.address, "spec": spec(1, 1_000) })),
            forbidden,
        ),
    );
    case(
        "get",
        "/v1/projects",
        Case::public(Req::new(M::GET, "/v1/projects", Creds::None)),
    );
    case(
        "get",
        "/v1/projects/{project}",
        Case::public(Req::new(M::GET, p(&labeling), Creds::None)),
    );
    let items = format!("{}/items?format=csv", p(&labeling));
    case(
        "post",
        "/v1/projects/{project}/items",
        Case::guarded(
            Req::new(M::POST, &items, as_requester.clone()).text("text\nanother review\n"),
            Req::new(M::POST, &items, as_stranger.clone()).text("text\nmine now\n"),
            forbidden,
        ),
    );
    let reviewers = format!("{}/reviewers", p(&reviewed));
    case(
        "post",
        "/v1/projects/{project}/reviewers",
        Case::guarded(
            Req::new(M::POST, &reviewers, as_requester.clone())
                .json(json!({ "reviewer": new_reviewer.address })),
            Req::new(M::POST, &reviewers, as_stranger.clone())
                .json(json!({ "reviewer": stranger.address })),
            forbidden,
        ),
    );
    let next = format!("{}/next", p(&labeling));
    case(
        "post",
        "/v1/projects/{project}/next",
        Case::guarded(
            Req::new(M::POST, &next, as_next.clone()),
            Req::new(M::POST, &next, as_stranger.clone())
                .json(json!({ "contributor": next_person.address })),
            forbidden,
        ),
    );
    let judgments = format!("{}/judgments", p(&labeling));
    case(
        "post",
        "/v1/projects/{project}/judgments",
        Case::guarded(
            Req::new(M::POST, &judgments, as_judge.clone())
                .json(json!({ "item": leased, "answer": { "choice": "pos" } })),
            Req::new(M::POST, &judgments, as_stranger.clone()).json(
                json!({ "contributor": judge_person.address, "item": leased, "answer": { "choice": "neg" } }),
            ),
            forbidden,
        ),
    );
    let next_review = format!("{}/reviews/next", p(&reviewed));
    case(
        "post",
        "/v1/projects/{project}/reviews/next",
        Case::guarded(
            Req::new(M::POST, &next_review, as_reviewer.clone()),
            Req::new(M::POST, &next_review, as_stranger.clone()),
            forbidden,
        ),
    );
    let reviews_uri = format!("{}/reviews", p(&reviewed));
    case(
        "post",
        "/v1/projects/{project}/reviews",
        Case::guarded(
            Req::new(M::POST, &reviews_uri, as_reviewer.clone())
                .json(json!({ "judgment": 0, "verdict": { "decision": "accept" } })),
            Req::new(M::POST, &reviews_uri, as_stranger.clone()).json(
                json!({ "reviewer": reviewer.address, "judgment": 0, "verdict": { "decision": "accept" } }),
            ),
            forbidden,
        ),
    );
    let standing = format!("{}/contributors/{}", p(&labeling), judge_person.address);
    case(
        "get",
        "/v1/projects/{project}/contributors/{account}",
        Case::guarded(
            Req::new(M::GET, &standing, as_judge.clone()),
            Req::new(M::GET, &standing, as_stranger.clone()),
            forbidden,
        ),
    );
    let publish = format!("{}/publish", p(&to_publish));
    let publication = json!({ "name": "to publish", "licence": { "type": "open_use" } });
    case(
        "post",
        "/v1/projects/{project}/publish",
        Case::guarded(
            Req::new(M::POST, &publish, as_requester.clone()).json(publication.clone()),
            Req::new(M::POST, &publish, as_stranger.clone()).json(publication),
            forbidden,
        ),
    );
    let close = format!("{}/close", p(&to_close));
    case(
        "post",
        "/v1/projects/{project}/close",
        Case::guarded(
            Req::new(M::POST, &close, as_requester.clone()),
            Req::new(M::POST, &close, as_stranger.clone()),
            forbidden,
        ),
    );
    let export = format!("{}/export?format=jsonl", p(&labeling));
    case(
        "get",
        "/v1/projects/{project}/export",
        Case::guarded(
            Req::new(M::GET, &export, as_requester.clone()),
            Req::new(M::GET, &export, as_stranger.clone()),
            forbidden,
        ),
    );
    case(
        "get",
        "/v1/epochs",
        Case::public(Req::new(M::GET, "/v1/epochs", Creds::None)),
    );
    case(
        "post",
        "/v1/epochs",
        Case::guarded(
            Req::new(M::POST, "/v1/epochs", as_operator.clone()),
            Req::new(M::POST, "/v1/epochs", as_stranger.clone()),
            forbidden,
        ),
    );
    case(
        "get",
        "/v1/epochs/{epoch}",
        Case::public(Req::new(M::GET, "/v1/epochs/1", Creds::None)),
    );
    case(
        "get",
        "/v1/epochs/{epoch}/proofs/{account}",
        Case::public(Req::new(
            M::GET,
            format!("/v1/epochs/1/proofs/{}", judge_person.address),
            Creds::None,
        )),
    );
    case(
        "get",
        "/v1/chains",
        Case::public(Req::new(M::GET, "/v1/chains", Creds::None)),
    );
    let unreachable_chain = json!({ "name": "elsewhere", "url": "http://127.0.0.1:9",
        "chain_id": 31_337, "key_env": "CARAVAN_WALK_HAS_NO_SUCH_KEY" });
    let mut add_chain = Case::guarded(
        Req::new(M::POST, "/v1/chains", as_operator.clone()).json(unreachable_chain.clone()),
        Req::new(M::POST, "/v1/chains", as_stranger.clone()).json(unreachable_chain),
        forbidden,
    );
    add_chain.right_may_lack = Some("a JSON-RPC chain (the CLI's anvil test adds one over HTTP)");
    case("post", "/v1/chains", add_chain);
    let embedded_home = json!({ "name": "embedded" });
    case(
        "put",
        "/v1/chains/home",
        Case::guarded(
            Req::new(M::PUT, "/v1/chains/home", as_operator.clone()).json(embedded_home.clone()),
            Req::new(M::PUT, "/v1/chains/home", as_stranger.clone()).json(embedded_home),
            forbidden,
        ),
    );
    case(
        "post",
        "/v1/epochs/{epoch}/roots",
        Case::guarded(
            Req::new(M::POST, "/v1/epochs/1/roots", as_operator.clone()).json(json!({})),
            Req::new(M::POST, "/v1/epochs/1/roots", as_stranger.clone()).json(json!({})),
            forbidden,
        ),
    );
    let payout = format!("/v1/accounts/{}/payout-chain", judge_person.address);
    case(
        "get",
        "/v1/accounts/{account}/payout-chain",
        Case::public(Req::new(M::GET, &payout, Creds::None)),
    );
    case(
        "put",
        "/v1/accounts/{account}/payout-chain",
        Case::guarded(
            Req::new(M::PUT, &payout, as_judge.clone()).json(json!({ "chain_id": 0 })),
            Req::new(M::PUT, &payout, as_stranger.clone()).json(json!({ "chain_id": 0 })),
            forbidden,
        ),
    );
    let token_body =
        json!({ "address": Address::from_label("dai"), "symbol": "DAI", "decimals": 18 });
    case(
        "post",
        "/v1/tokens",
        Case::guarded(
            Req::new(M::POST, "/v1/tokens", as_operator.clone()).json(token_body.clone()),
            Req::new(M::POST, "/v1/tokens", as_stranger.clone()).json(token_body),
            forbidden,
        ),
    );
    case(
        "get",
        "/v1/models",
        Case::guarded(
            Req::new(M::GET, "/v1/models", shop_key.clone()),
            Req::new(M::GET, "/v1/models", labeling_key.clone()),
            forbidden,
        ),
    );
    case(
        "get",
        "/v1/models/{model}",
        Case::guarded(
            Req::new(M::GET, "/v1/models/sentiment", shop_key.clone()),
            Req::new(M::GET, "/v1/models/sentiment", labeling_key.clone()),
            forbidden,
        ),
    );
    let attestations = "/v1/models/sentiment/attestations";
    let mut unsigned = attestation(&validator, None, classifier_id);
    unsigned.as_object_mut().unwrap().remove("signature");
    case(
        "post",
        "/v1/models/{model}/attestations",
        Case::signed(
            Req::new(M::POST, attestations, Creds::None).json(unsigned),
            Req::new(M::POST, attestations, Creds::None).json(attestation(
                &thief,
                Some(validator.address),
                classifier_id,
            )),
            Req::new(M::POST, attestations, Creds::None).json(attestation(
                &validator,
                None,
                classifier_id,
            )),
        ),
    );
    case(
        "get",
        "/v1/models/{model}/attestations",
        Case::public(Req::new(M::GET, attestations, Creds::None)),
    );
    case(
        "post",
        "/v1/classifications",
        Case::guarded(
            Req::new(M::POST, "/v1/classifications", shop_key.clone())
                .json(json!({ "model": "sentiment", "input": { "text": "great phone" } })),
            Req::new(M::POST, "/v1/classifications", labeling_key.clone())
                .json(json!({ "model": "sentiment", "input": { "text": "great phone" } })),
            forbidden,
        ),
    );
    let embeddings = Case::guarded(
        Req::new(M::POST, "/v1/embeddings", shop_key.clone())
            .json(json!({ "model": "minilm", "input": "a sentence" })),
        Req::new(M::POST, "/v1/embeddings", labeling_key.clone())
            .json(json!({ "model": "minilm", "input": "a sentence" })),
        forbidden,
    );
    case("post", "/v1/embeddings", embeddings);
    let chat = json!({ "model": "chat", "messages": [{ "role": "user", "content": "hi" }] });
    case(
        "post",
        "/v1/chat/completions",
        Case::guarded(
            Req::new(M::POST, "/v1/chat/completions", shop_key.clone()).json(chat.clone()),
            Req::new(M::POST, "/v1/chat/completions", labeling_key.clone()).json(chat),
            forbidden,
        ),
    );
    let mut unsigned_key = key_body(&shop, node_address, &[Scope::Chat], "unsigned");
    unsigned_key.as_object_mut().unwrap().remove("signature");
    let mut stolen_key = key_body(&thief, node_address, &[Scope::Chat], "stolen");
    stolen_key["payer"] = json!(shop.address);
    case(
        "post",
        "/v1/keys",
        Case::signed(
            Req::new(M::POST, "/v1/keys", Creds::None).json(unsigned_key),
            Req::new(M::POST, "/v1/keys", Creds::None).json(stolen_key),
            Req::new(M::POST, "/v1/keys", Creds::None).json(key_body(
                &shop,
                node_address,
                &[Scope::Chat],
                "new",
            )),
        ),
    );
    let list = |signer: &Person| {
        format!(
            "/v1/keys?{}",
            signed_query(signer, shop.address, node_address, KeyRequest::List)
        )
    };
    case(
        "get",
        "/v1/keys",
        Case::signed(
            Req::new(
                M::GET,
                format!("/v1/keys?payer={}", shop.address),
                Creds::None,
            ),
            Req::new(M::GET, list(&thief), Creds::None),
            Req::new(M::GET, list(&shop), Creds::None),
        ),
    );
    let revoke = |signer: &Person| {
        format!(
            "/v1/keys/{}?{}",
            revocable.id,
            signed_query(
                signer,
                shop.address,
                node_address,
                KeyRequest::Revoke { key: &revocable.id }
            )
        )
    };
    case(
        "delete",
        "/v1/keys/{id}",
        Case::signed(
            Req::new(
                M::DELETE,
                format!("/v1/keys/{}?payer={}", revocable.id, shop.address),
                Creds::None,
            ),
            Req::new(M::DELETE, revoke(&thief), Creds::None),
            Req::new(M::DELETE, revoke(&shop), Creds::None),
        ),
    );
    case(
        "get",
        "/v1/balance",
        Case::guarded(
            Req::new(M::GET, "/v1/balance", as_shop.clone()),
            Req::new(M::GET, "/v1/balance", labeling_key.clone()),
            forbidden,
        ),
    );
    case(
        "get",
        "/v1/usage",
        Case::guarded(
            Req::new(M::GET, "/v1/usage?days=7", as_shop.clone()),
            Req::new(M::GET, "/v1/usage?days=7", labeling_key.clone()),
            forbidden,
        ),
    );
    let withdrawal = json!({ "token": token(), "amount": "1" });
    case(
        "post",
        "/v1/balance/withdrawals",
        Case::guarded(
            Req::new(M::POST, "/v1/balance/withdrawals", as_shop.clone()).json(withdrawal.clone()),
            Req::new(M::POST, "/v1/balance/withdrawals", shop_key.clone()).json(withdrawal),
            StatusCode::UNAUTHORIZED,
        ),
    );
    case(
        "get",
        "/v1/node",
        Case::public(Req::new(M::GET, "/v1/node", Creds::None)),
    );

    for route in table() {
        let name = format!("{} {}", route.method.to_uppercase(), route.path);
        let case = cases
            .remove(&(route.method, route.path))
            .unwrap_or_else(|| panic!("{name} has no authorization case here: add one"));
        assert_eq!(
            route.access == Access::Public,
            case.unauthenticated.is_none(),
            "{name}: a public route is walked without credentials, every other also with none"
        );
        if let Some(request) = &case.unauthenticated {
            let reply = request.send(&app).await;
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{name} without credentials: {}",
                reply.body
            );
        }
        if let Some((request, status)) = &case.wrong {
            let reply = request.send(&app).await;
            assert_eq!(
                reply.status, *status,
                "{name} with the wrong credentials: {}",
                reply.body
            );
        }
        let reply = case.right.send(&app).await;
        match case.right_may_lack {
            Some(missing) if !reply.status.is_success() => {
                assert!(
                    reply.status != StatusCode::UNAUTHORIZED && reply.status != forbidden,
                    "{name} with the right credentials: {}",
                    reply.body
                );
                eprintln!("{name}: without {missing}, only access was checked");
            }
            _ => assert!(
                reply.status.is_success(),
                "{name} with the right credentials: {} {}",
                reply.status,
                reply.body
            ),
        }
    }
    assert!(
        cases.is_empty(),
        "cases for routes the router no longer has: {:?}",
        cases.keys().collect::<Vec<_>>()
    );

    // The sessions used up above: the one that signed out is gone.
    let gone = Req::new(M::GET, "/v1/auth/session", as_leaver)
        .send(&app)
        .await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
}

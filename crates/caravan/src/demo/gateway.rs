//! The demo's second chapter: the crowd's published digits train a classifier, the node serves it
//! through the OpenAI-style gateway on a loopback port, and an app's client pays for thousands of
//! calls over HTTP. The epoch close that follows sends part of that revenue to the labelers.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use caravan_core::*;
use caravan_models::{ArtifactStore, Classifier, TrainOptions};
use caravan_node::Node;
use caravan_node::gateway::receipt::{NodeSigner, recover_signer};
use caravan_node::keys::{KeyRequest, Scope};
use caravan_node::training;
use caravan_server::gateway::{RECEIPT_HEADER, SIGNATURE_HEADER};
use caravan_server::router;
use caravan_store::Journal;
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::client::Api;
use super::tasks::Digit;
use super::world::Cast;
use crate::present::{progress, table};

/// How many calls the app keeps in flight at once.
const CONCURRENCY: usize = 16;
/// The dataset the first chapter publishes.
pub const DATASET: &str = "handwritten-digits-8x8";

/// What the chapter leaves for the rest of the demo.
pub struct Served {
    pub journal: Journal,
    /// The digits dataset and the model trained on it, to show in the money's flow.
    pub manifests: Vec<Manifest>,
    /// What the app was charged in all.
    pub charged: Amount,
}

pub fn serve_model(
    journal: Journal,
    dir: &Path,
    usdc: &Token,
    cast: &mut Cast,
    digits: &[Digit],
    calls: u32,
) -> Result<Served, String> {
    println!("chapter 2 — the crowd's labels train a model, and an app pays to call it\n");
    let artifacts = ArtifactStore::new(dir.join("models"));
    let signer = NodeSigner::load_or_create(&dir.join("node.key")).map_err(|e| e.to_string())?;
    let services = Arc::new(
        Node::builder(journal, artifacts.clone(), signer)
            .open()
            .map_err(|e| e.to_string())?,
    );
    let desk = services.desk();
    let dataset = desk.journal().read(|j| {
        j.economy()
            .lineage()
            .named(DATASET)
            .next()
            .map(|a| (a.id, a.manifest.clone()))
    });
    let (dataset, dataset_manifest) =
        dataset.ok_or("the first chapter published no digits dataset")?;
    let examples = crate::commands::training_examples(desk, &[dataset])?;
    let started = Instant::now();
    let trained =
        Classifier::train(&examples, &TrainOptions::default()).map_err(|e| e.to_string())?;
    let evaluation = trained.evaluation.as_ref().ok_or("nothing was held out")?;
    println!(
        "trained a logistic-regression classifier (linfa) on {} crowd-labelled images in {:.1} s ({}); it agrees with the crowd's label on {:.1}% of {} held-out images",
        trained.train_examples,
        started.elapsed().as_secs_f64(),
        trained.classifier.features.describe(),
        evaluation.accuracy * 100.0,
        evaluation.examples
    );
    let content = artifacts
        .put(&trained.classifier.to_artifact())
        .map_err(|e| e.to_string())?;
    let developer = cast.person("digit-model developer");
    let app = cast.person("receipt-scanner app");
    // 10% from derivatives; of what stays, 20% to the serving node and the rest (80%, no
    // validator yet) to the developer.
    let shares = ModelShares {
        validator: Ppm::ZERO,
        ..ModelShares::default()
    };
    let terms = training::ModelTerms {
        name: "digit-reader".into(),
        role: Role::Developer,
        owner: developer,
        token: usdc.address,
        price_per_call: 2_000,
        shares,
    };
    let from = training::TrainedFrom {
        datasets: vec![dataset],
        dataset_share: Ppm::new(300_000).expect("30%"),
        base: None,
        encoder: None,
    };
    let model = desk
        .journal()
        .read(|j| training::trained_model(&terms, content, from, j.economy().lineage(), &[]))
        .map_err(|e| e.to_string())?
        .manifest;
    let model_id = model.id();
    let submitted = desk
        .journal()
        .submit(vec![Event::AssetRegistered(model.clone())])
        .map_err(|e| e.to_string())?;
    if let Some((_, why)) = submitted.refused.first() {
        return Err(format!("the model could not be registered: {why}"));
    }
    super::deposit_shared(services.journal(), dir, &[(app, 20_000_000)])?;
    println!(
        "registered model digit-reader {} — 0.002 USDC per call, 30% to the dataset (TRAINED_ON)",
        model_id.0.short()
    );

    let node = services.gateway().node();
    cast.call(node, "this demo's node");
    let key = issue_app_key(&Api::new(Arc::clone(&services))?, cast, app, node)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let outcome = runtime.block_on(call_over_http(Arc::clone(&services), key, digits, calls))?;
    drop(runtime);

    let mut t = table(
        &["paid calls", "answered", "true digit", "charged", "calls/s"],
        &[0, 1, 2, 3, 4],
    );
    t.add_row(vec![
        calls.to_string(),
        outcome.answered.to_string(),
        format!(
            "{:.1}%",
            100.0 * outcome.right as f64 / outcome.answered.max(1) as f64
        ),
        usdc.format(outcome.charged),
        format!("{:.0}", outcome.answered as f64 / outcome.seconds),
    ]);
    println!(
        "the receipt-scanner app classifies digits through the gateway (HTTP on loopback, {CONCURRENCY} at a time, an API key, each call charged from its prepaid balance)\n{t}"
    );
    println!(
        "every answer carries a usage receipt signed by the node; the last one verifies against the node's address {node}: {}\n",
        outcome.receipt_verified
    );
    let journal = Arc::try_unwrap(services)
        .map_err(|_| "the node is still shared".to_owned())?
        .into_journal()?;
    Ok(Served {
        journal,
        manifests: vec![dataset_manifest, model],
        charged: outcome.charged,
    })
}

/// The app's wallet signs a request for an API key that may only classify, for this node, and
/// the node hands the key over (as `caravan key issue` or a web console would have it do).
fn issue_app_key(api: &Api, cast: &Cast, app: Address, node: Address) -> Result<String, String> {
    let scopes = [Scope::Classify];
    let name = "receipt scanner";
    let request = KeyRequest::Issue {
        scopes: &scopes,
        expires_in_days: Some(30),
        name,
    };
    let signed = request.sign(cast.wallet(&app), &node, caravan_store::now_ms());
    let issued = api
        .json(
            "POST",
            "/v1/keys",
            None,
            &json!({ "payer": app, "scopes": scopes, "expires_in_days": 30, "name": name,
                     "signed_at_ms": signed.signed_at_ms, "signature": signed.signature.to_hex() }),
        )
        .expect("POST /v1/keys")?;
    issued["key"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("the node issued no key: {issued}"))
}

/// One call as the app saw it: right about the digit, what it cost, and its signed receipt.
struct Answer {
    right: bool,
    cost: Amount,
    receipt: Option<(Vec<u8>, String)>,
}

struct Outcome {
    answered: u64,
    right: u64,
    charged: Amount,
    seconds: f64,
    receipt_verified: bool,
}

async fn call_over_http(
    services: Arc<Node>,
    key: String,
    digits: &[Digit],
    calls: u32,
) -> Result<Outcome, String> {
    let node = services.gateway().node();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen on loopback: {e}"))?;
    let url = format!(
        "http://{}/v1/classifications",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let server = tokio::spawn(async move { axum::serve(listener, router(services)).await });
    let client = reqwest::Client::new();
    let bar = progress(u64::from(calls), "paid calls");
    let started = Instant::now();
    let results: Vec<Result<Answer, String>> = futures_util::stream::iter(0..calls as usize)
        .map(|n| {
            let digit = &digits[(n * 7) % digits.len()];
            let request = client
                .post(&url)
                .bearer_auth(&key)
                .json(&json!({ "model": "digit-reader", "input": { "pixels": digit.pixels } }));
            let bar = &bar;
            async move {
                let response = request.send().await.map_err(|e| e.to_string())?;
                let receipt = response
                    .headers()
                    .get(RECEIPT_HEADER)
                    .zip(response.headers().get(SIGNATURE_HEADER))
                    .and_then(|(r, s)| {
                        let receipt = base64::engine::general_purpose::STANDARD
                            .decode(r.as_bytes())
                            .ok()?;
                        Some((receipt, s.to_str().ok()?.to_owned()))
                    });
                let body: Value = response.json().await.map_err(|e| e.to_string())?;
                bar.inc(1);
                let label = body["data"][0]["label"]
                    .as_str()
                    .ok_or_else(|| format!("the gateway answered {body}"))?;
                let cost: Amount = body["usage"]["cost"]
                    .as_str()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                Ok(Answer {
                    right: label == digit.truth.to_string(),
                    cost,
                    receipt,
                })
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    server.abort();
    let mut outcome = Outcome {
        answered: 0,
        right: 0,
        charged: 0,
        seconds,
        receipt_verified: false,
    };
    for result in results {
        let answer = result?;
        outcome.answered += 1;
        outcome.right += u64::from(answer.right);
        outcome.charged += answer.cost;
        if let Some((receipt, signature)) = answer.receipt {
            outcome.receipt_verified = recover_signer(&receipt, &signature) == Ok(node);
        }
    }
    Ok(outcome)
}

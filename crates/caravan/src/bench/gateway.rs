//! `caravan bench gateway`: the latency the gateway adds to a chat call, with metering and
//! durable usage on, and first-party classifier calls per second end to end.
//!
//! The node (gateway over a scratch SQLite store) and a stand-in upstream run in this process on
//! loopback ports; the load comes from a separate process (`caravan bench gateway-load`, the same
//! binary) so the client's work is not counted as the gateway's. At each concurrency the load
//! first calls the upstream directly, then through the gateway, at the same request rate; the
//! added latency is the difference of the two percentiles. Each call through the gateway is
//! authenticated, held against the balance, forwarded, and charged by a `CallMetered` event
//! stored durably (group commit, `synchronous=FULL`). It is measured twice: with the answer sent
//! once the charge is durable (the default, `added_*` figures) and once it is applied and queued
//! for the commit (`caravan serve --charge-durability queued`, `added_*_queued` figures).
//! With all-MiniLM-L6-v2 installed it also measures embeddings per second.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use caravan_core::*;
use caravan_models::embedding::MINILM;
use caravan_models::{ArtifactStore, Classifier, Example, SentenceEncoder, TrainOptions};
use caravan_node::gateway::ChargeDurability;
use caravan_node::gateway::embeddings::EncoderServing;
use caravan_node::gateway::receipt::NodeSigner;
use caravan_node::gateway::upstream::Upstream;
use caravan_node::keys::Scope;

use caravan_store::{Journal, Location};
use clap::Args;
use serde_json::json;

use crate::present::table;
use crate::serve::Durability;

#[derive(Args)]
pub struct GatewayArgs {
    /// One second per measurement and a quarter of the rate: a check that it runs.
    #[arg(long)]
    quick: bool,
    /// Requests per second the load keeps up at each concurrency, spread over its clients.
    #[arg(long, default_value_t = 1_000)]
    rate: u32,
    /// Seconds of load per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u32,
    /// Concurrent clients for the chat latency, one measurement per value (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// When answers go out relative to their charge's commit; both by default (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "committed,queued")]
    durability: Vec<Durability>,
    /// Directory for the scratch store (a fresh temporary one inside it).
    #[arg(long, default_value = ".")]
    scratch_dir: PathBuf,
}

/// The load generator's side, run as a separate process by `caravan bench gateway`.
#[derive(Args, Clone)]
pub struct LoadArgs {
    /// Where to POST.
    #[arg(long)]
    url: String,
    /// Sent as `Authorization: Bearer KEY` when given.
    #[arg(long)]
    key: Option<String>,
    /// The JSON body of every request.
    #[arg(long)]
    body: String,
    #[arg(long)]
    concurrency: usize,
    /// Requests per second over all clients; 0 sends as fast as answers come back.
    #[arg(long)]
    rate: u32,
    #[arg(long)]
    seconds: u32,
}

/// What the load process reports.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
struct LoadReport {
    count: u64,
    errors: u64,
    per_second: f64,
    p50_us: f64,
    p99_us: f64,
}

/// Runs the load (in the load process) and prints its report as one JSON line.
pub fn load(args: LoadArgs) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let report = runtime.block_on(generate(args))?;
    println!(
        "{}",
        serde_json::to_string(&report).expect("a report serialises")
    );
    Ok(())
}

async fn generate(args: LoadArgs) -> Result<LoadReport, String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .map_err(|e| e.to_string())?;
    let body = axum::body::Bytes::from(args.body.clone());
    // A short warm-up opens the connections.
    for _ in 0..args.concurrency.min(8) {
        let _ = send(&client, &args, body.clone()).await;
    }
    let interval = (args.rate > 0)
        .then(|| Duration::from_secs_f64(args.concurrency as f64 / f64::from(args.rate)));
    let start = Instant::now();
    let end = start + Duration::from_secs(u64::from(args.seconds));
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let client = client.clone();
        let body = body.clone();
        let args = args.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            // Clients start staggered across one interval so the rate is even.
            let offset = interval.map_or(Duration::ZERO, |i| {
                i.mul_f64(worker as f64 / args.concurrency as f64)
            });
            let mut next = start + offset;
            while next < end {
                if let Some(interval) = interval {
                    tokio::time::sleep_until(next.into()).await;
                    next += interval;
                } else {
                    next = Instant::now();
                }
                let sent = Instant::now();
                match send(&client, &args, body.clone()).await {
                    Ok(()) => latencies.push(sent.elapsed().as_secs_f64() * 1e6),
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (mut worker_latencies, worker_errors) = worker.await.map_err(|e| e.to_string())?;
        latencies.append(&mut worker_latencies);
        errors += worker_errors;
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    Ok(LoadReport {
        count: latencies.len() as u64,
        errors,
        per_second: latencies.len() as f64 / elapsed,
        p50_us: percentile(0.50),
        p99_us: percentile(0.99),
    })
}

async fn send(
    client: &reqwest::Client,
    args: &LoadArgs,
    body: axum::body::Bytes,
) -> Result<(), ()> {
    let mut request = client
        .post(&args.url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(key) = &args.key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.map_err(|_| ())?;
    let ok = response.status().is_success();
    response.bytes().await.map_err(|_| ())?;
    ok.then_some(()).ok_or(())
}

/// A stand-in upstream: every chat request gets the same short answer with its usage.
fn mock_upstream() -> Router {
    let answer = json!({ "id": "up-1", "object": "chat.completion", "created": 1, "model": "mock",
        "choices": [{ "index": 0, "finish_reason": "stop",
            "message": { "role": "assistant", "content": "a short answer" } }],
        "usage": { "prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15 } });
    Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let answer = answer.clone();
            async move { axum::Json(answer) }
        }),
    )
}

/// Two clusters of 16 numbers, for a classifier that needs no download.
/// The benchmarks' classifier: trained on [`blobs`] and stored in `artifacts`; returns the
/// examples it was trained on and its artifact's content hash.
pub(super) fn stored_classifier(
    artifacts: &ArtifactStore,
) -> Result<(Vec<Example>, Hash32), String> {
    let examples = blobs();
    let classifier = Classifier::train(&examples, &TrainOptions::default())
        .map_err(|e| e.to_string())?
        .classifier;
    let content = artifacts
        .put(&classifier.to_artifact())
        .map_err(|e| e.to_string())?;
    Ok((examples, content))
}

/// A model the benchmarks' payers call: `owner`'s, 1,000 base units of `token` per call, no
/// derivative royalty.
pub(super) fn paid_model(name: &str, owner: Address, content: Hash32, token: Address) -> Manifest {
    let mut manifest = Manifest {
        kind: AssetKind::Model,
        name: name.into(),
        owner,
        content,
        licence: Licence::Commercial {
            token,
            price_per_call: 1_000,
            derivative_royalty: Ppm::ZERO,
        },
        parents: vec![],
        roles: vec![],
    };
    manifest.normalise();
    manifest
}

pub(super) fn blobs() -> Vec<Example> {
    let mut state = 7u64;
    let mut noise = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as f64 / (1u64 << 31) as f64 - 0.5
    };
    (0..400u32)
        .map(|n| {
            let centre = if n % 2 == 0 { 1.0 } else { -1.0 };
            let features: Vec<f64> = (0..16).map(|_| centre + noise()).collect();
            Example {
                key: keccak256(&n.to_be_bytes()),
                data: json!({ "features": features }),
                label: if n % 2 == 0 { "a" } else { "b" }.into(),
            }
        })
        .collect()
}

struct Node {
    gateway_url: String,
    upstream_url: String,
    key: String,
    classify_body: String,
}

/// What the embedding benchmark sends per call: eight sentences of about 15 tokens.
const EMBEDDING_INPUTS: [&str; 8] = [
    "The courier left the parcel with a neighbour across the street.",
    "Interest rates rose again, and mortgage holders felt the squeeze.",
    "Simmer the onions slowly in butter until they turn golden and soft.",
    "The striker scored twice in the second half to win the final.",
    "Our support team answers most questions within a single working day.",
    "A new study links regular walking to better sleep in older adults.",
    "The train to the coast was delayed by forty minutes this morning.",
    "Please reset your password using the link we sent to your email.",
];

/// Sets up the scratch store, the models and the payer, and serves the gateway and the upstream;
/// with `encoder` (installed in `models_dir`) the node also serves it as `minilm`.
async fn start_node(
    dir: &std::path::Path,
    durability: ChargeDurability,
    models_dir: &std::path::Path,
    encoder: Option<&SentenceEncoder>,
) -> Result<Node, String> {
    let upstream_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let upstream_url = format!(
        "http://{}/v1",
        upstream_listener.local_addr().map_err(|e| e.to_string())?
    );
    tokio::spawn(async move { axum::serve(upstream_listener, mock_upstream()).await });

    let usdc = Token {
        address: Address::from_label("bench usdc"),
        symbol: "USDC".into(),
        decimals: 6,
    };
    let payer = Address::from_label("bench payer");
    let artifacts = ArtifactStore::new(dir.join("models"));
    let (examples, content) = stored_classifier(&artifacts)?;
    let developer = Address::from_label("bench developer");
    let model = |name: &str, content: Hash32| paid_model(name, developer, content, usdc.address);
    let upstream = Upstream {
        base_url: upstream_url.clone(),
        model: "mock".into(),
        prompt_per_million: 100_000,
        completion_per_million: 400_000,
        api_key_env: None,
    };
    let mut journal = Journal::open(Location::DataDir(dir.to_path_buf()), &mut |_, _| {})
        .map_err(|e| e.to_string())?;
    journal
        .submit(vec![
            Event::Genesis(Genesis {
                treasury: Address::from_label("bench treasury"),
                protocol_fee: Ppm::ZERO,
            }),
            Event::TokenRegistered(usdc.clone()),
            Event::AssetRegistered(model("classifier", content)),
            Event::Deposited {
                payer,
                token: usdc.address,
                amount: 1 << 100,
            },
        ])
        .map_err(|e| e.to_string())?;
    let services = Arc::new(
        caravan_node::Node::builder(journal, artifacts, NodeSigner::generate())
            .charge_durability(durability)
            .models_dir(models_dir.to_owned())
            .open()
            .map_err(|e| e.to_string())?,
    );
    let gateway = services.gateway();
    gateway
        .register_upstream(model("chat", upstream.content_hash()), upstream)
        .map_err(|e| e.to_string())?;
    if let Some(encoder) = encoder {
        let serving = EncoderServing {
            encoder: MINILM.into(),
            weights: encoder.weights_hash(),
            dimensions: encoder.dimensions() as u32,
            input_per_million: 20_000,
        };
        gateway
            .register_encoder(model("minilm", serving.content_hash()), serving)
            .map_err(|e| e.to_string())?;
    }
    let (key, _) = services
        .keys()
        .issue(payer, Scope::GATEWAY.to_vec(), None, "bench".into())
        .map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let gateway_url = format!(
        "http://{}/v1",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    tokio::spawn(async move { axum::serve(listener, caravan_server::router(services)).await });
    Ok(Node {
        gateway_url,
        upstream_url,
        key,
        classify_body: json!({ "model": "classifier", "input": examples[0].data }).to_string(),
    })
}

fn run_load(
    url: &str,
    key: Option<&str>,
    body: &str,
    concurrency: usize,
    rate: u32,
    seconds: u32,
) -> Result<LoadReport, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut command = Command::new(exe);
    command.args(["bench", "gateway-load", "--url", url, "--body", body]);
    command.args(["--concurrency", &concurrency.to_string()]);
    command.args([
        "--rate",
        &rate.to_string(),
        "--seconds",
        &seconds.to_string(),
    ]);
    if let Some(key) = key {
        command.args(["--key", key]);
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot start the load process: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "the load process failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let report: LoadReport = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("the load process printed no report: {e}"))?;
    if report.errors > 0 {
        return Err(format!("{} of the calls to {url} failed", report.errors));
    }
    Ok(report)
}

pub fn gateway(args: GatewayArgs) -> Result<(), String> {
    let (rate, seconds) = if args.quick {
        (args.rate / 4, 1)
    } else {
        (args.rate, args.seconds)
    };
    let scratch = tempfile::tempdir_in(&args.scratch_dir)
        .map_err(|e| format!("cannot make a scratch directory: {e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // The encoder is read once (90 MB) for every node's registration and the token count.
    let models_dir = caravan_models::embedding::default_models_dir();
    let encoder = SentenceEncoder::load_installed(&models_dir).ok();
    let mut durabilities = Vec::new();
    for durability in &args.durability {
        if !durabilities.contains(durability) {
            durabilities.push(*durability);
        }
    }
    if durabilities.is_empty() || args.concurrency.contains(&0) {
        return Err(
            "give at least one --durability and concurrencies of 1 or more (e.g. --concurrency 1,16,64)"
                .into(),
        );
    }
    let mut nodes = Vec::new();
    for durability in durabilities {
        let dir = scratch.path().join(durability.name());
        let started = start_node(&dir, durability.into(), &models_dir, encoder.as_ref());
        nodes.push((durability, runtime.block_on(started)?));
    }
    let node = &nodes[0].1;
    let chat = json!({ "model": "chat", "max_tokens": 16,
        "messages": [{ "role": "user", "content": "How long is a caravan?" }] });
    let direct = chat.to_string().replace("\"chat\"", "\"mock\"");
    let mut t = table(
        &[
            "concurrency",
            "answered once the charge is",
            "calls/s",
            "upstream p50",
            "gateway p50",
            "added p50",
            "upstream p99",
            "gateway p99",
            "added p99",
        ],
        &[0, 2, 3, 4, 5, 6, 7, 8],
    );
    let mut figures = Vec::new();
    let upstream_chat = format!("{}/chat/completions", node.upstream_url);
    for &concurrency in &args.concurrency {
        let alone = run_load(&upstream_chat, None, &direct, concurrency, rate, seconds)?;
        for (durability, node) in &nodes {
            let through = run_load(
                &format!("{}/chat/completions", node.gateway_url),
                Some(&node.key),
                &chat.to_string(),
                concurrency,
                rate,
                seconds,
            )?;
            let added_p50 = (through.p50_us - alone.p50_us).max(0.0);
            let added_p99 = (through.p99_us - alone.p99_us).max(0.0);
            let us = |v: f64| format!("{v:.0} µs");
            t.add_row(vec![
                concurrency.to_string(),
                durability.name().to_string(),
                format!("{:.0}", through.per_second),
                us(alone.p50_us),
                us(through.p50_us),
                us(added_p50),
                us(alone.p99_us),
                us(through.p99_us),
                us(added_p99),
            ]);
            let suffix = match durability {
                Durability::Committed => "",
                Durability::Queued => "_queued",
            };
            figures.push((format!("added_p50_us_c{concurrency}{suffix}"), added_p50));
            figures.push((format!("added_p99_us_c{concurrency}{suffix}"), added_p99));
        }
    }
    let classify = run_load(
        &format!("{}/classifications", node.gateway_url),
        Some(&node.key),
        &node.classify_body,
        16,
        0,
        seconds,
    )?;
    figures.push(("classifier_calls_per_s".into(), classify.per_second));
    println!(
        "chat calls through the gateway at {rate} calls/s (load from a separate process, stand-in upstream on loopback; every call metered and stored durably, answered after or before its commit)\n{t}"
    );
    println!(
        "first-party classifier, 16 clients as fast as answers come: {:.0} calls/s (p50 {:.0} µs, p99 {:.0} µs)",
        classify.per_second, classify.p50_us, classify.p99_us
    );
    if let Some(encoder) = &encoder {
        let mut tokens_per_call = 0;
        for text in EMBEDDING_INPUTS {
            tokens_per_call += encoder.tokenize(text).map_err(|e| e.to_string())?.len();
        }
        let body = json!({ "model": "minilm", "input": EMBEDDING_INPUTS }).to_string();
        let embed = run_load(
            &format!("{}/embeddings", node.gateway_url),
            Some(&node.key),
            &body,
            4,
            0,
            seconds,
        )?;
        println!(
            "all-MiniLM-L6-v2 embeddings, 4 clients, 8 sentences per call: {:.1} calls/s, about {:.0} sentences/s (p50 {:.1} ms)",
            embed.per_second,
            embed.per_second * 8.0,
            embed.p50_us / 1000.0
        );
        figures.push(("embedding_sentences_per_s".into(), embed.per_second * 8.0));
        figures.push((
            "embedding_tokens_per_s".into(),
            embed.per_second * tokens_per_call as f64,
        ));
    } else {
        println!(
            "all-MiniLM-L6-v2 is not installed (scripts/models/install.sh): no embedding figures"
        );
    }
    drop(runtime);
    for (name, value) in figures {
        println!("{name}: {value:.0}");
    }
    Ok(())
}

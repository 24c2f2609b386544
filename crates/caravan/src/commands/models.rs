//! `caravan model`: train a classifier on published datasets, fine-tune one, and register each
//! as a model asset whose lineage pays the datasets (and, through them, the people who labelled
//! them) from every paid call.

use std::path::PathBuf;

use caravan_core::{
    Address, AssetId, AssetKind, Attestation, Event, Licence, Manifest, ModelShares, Ppm, Role,
};
use std::sync::Arc;

use caravan_models::embedding::MINILM;
use caravan_models::{ArtifactStore, Classifier, Example, SentenceEncoder, TrainOptions, Trained};
use caravan_node::desk::Desk;
use caravan_node::gateway::agent::{AgentProgram, ChatStep, ClassifyStep};
use caravan_node::gateway::catalogue::{
    agent_events, encoder_events, encoder_models, upstream_events,
};
use caravan_node::gateway::embeddings::EncoderServing;
use caravan_node::gateway::upstream::Upstream;
use caravan_node::training::{self, EncoderPayment, TrainedFrom, TrainingError};
use clap::{Args, Subcommand, ValueEnum};

use crate::StoreArgs;
use crate::commands::{ensure_genesis, read_secret};
use crate::present::{open_journal, parse_amount, read_input, table};

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Train a classifier on one or more published datasets and register it as a model asset.
    ///
    /// Features are chosen from the items: arrays of numbers (pixels) if there are any, else
    /// the text fields (TF-IDF, or sentence embeddings with `--text-features embeddings`), else
    /// the scalar numbers; `--fields` picks them by name. A
    /// share of the items (chosen by item id, so the same on every run) is held out and the model
    /// is scored on it. The artifact is stored under its content hash in the data directory's
    /// `models/`, and the model asset gets a TRAINED_ON edge to each dataset with
    /// `--dataset-share` of the model's revenue: the dataset's contributors are paid from every
    /// call to the model. A model trained on sentence embeddings also gets a DERIVED_FROM edge to
    /// the embedding model registered for the installed encoder (`--encoder-share`), since every
    /// call runs that encoder.
    Train(Box<TrainArgs>),
    /// Fine-tune a registered model on more published data: a child model with a FINETUNED_FROM
    /// edge to the base (paid `--base-share`) and TRAINED_ON edges to the new datasets.
    Finetune(Box<FinetuneArgs>),
    /// Predict labels for items (a JSON object per line of FILE, or `-` for standard input).
    Predict(PredictArgs),
    /// Register a model served by an OpenAI-compatible server you run (vLLM, llama.cpp,
    /// Ollama …): the gateway forwards `/v1/chat/completions` to it, streaming included, and
    /// charges the per-call price plus the prices per million prompt and completion tokens.
    ///
    /// The asset's content is the keccak-256 of the upstream configuration, so the asset names
    /// exactly one server and price list. The URL may be http:// or https:// (HTTPS trusts the
    /// system's certificate authorities plus --extra-ca-certs).
    Upstream(UpstreamArgs),
    /// Register the sentence encoder this node runs (all-MiniLM-L6-v2, installed by
    /// scripts/models/install.sh) as a paid embedding model: `/v1/embeddings` serves it,
    /// charging the per-call price plus the price per million tokens it reads.
    ///
    /// The asset's content is the keccak-256 of the encoder configuration, which names the
    /// exact weights (their keccak-256), so a node with other weights refuses to serve it.
    Embedder(EmbedderArgs),
    /// Register an agent that composes models: it may classify the user's message with a
    /// first-party classifier, then answers with a chat model whose system prompt can name the
    /// label (`{label}`). Clients call it at /v1/chat/completions by name.
    ///
    /// Each model it calls becomes a COMPOSED_OF parent with `--component-share` of the agent's
    /// revenue, and every call is charged the agent's price plus what each component it called
    /// costs, so each component's lineage is paid from that call.
    Agent(AgentArgs),
    /// Evaluate a model on labelled data you hold and record a signed attestation: you become
    /// one of the model's validators and share its validator part from then on.
    ///
    /// FILE has one `{"data": {…item fields…}, "label": "…"}` per line. The attestation names
    /// the keccak-256 of FILE, the metric (accuracy) and its value, and is signed with EIP-712
    /// by the key in --key-file (64 hex digits), whose address is the validator.
    Attest(AttestArgs),
}

#[derive(Args)]
pub struct AttestArgs {
    /// The model's asset id.
    #[arg(long)]
    model: AssetId,
    /// The validator's secp256k1 secret key, as 64 hex digits in a file.
    #[arg(long)]
    key_file: PathBuf,
    /// The labelled evaluation data (JSON lines).
    data: PathBuf,
}

#[derive(Args)]
pub struct AgentArgs {
    /// The agent's name, as clients will send it.
    #[arg(long)]
    name: String,
    /// Who builds and owns the agent.
    #[arg(long)]
    owner: Address,
    /// The chat model that answers (an upstream model's asset id).
    #[arg(long)]
    chat: AssetId,
    /// A classifier to run on the user's message first (a model's asset id).
    #[arg(long)]
    classify: Option<AssetId>,
    /// The item field the classifier reads the message as.
    #[arg(long, default_value = "text")]
    field: String,
    /// The system message put before the conversation; `{label}` becomes the classifier's label.
    #[arg(long, default_value = "")]
    system: String,
    /// The token calls are paid in (the same as its components').
    #[arg(long)]
    token: Address,
    /// The agent's own price per call, in whole tokens.
    #[arg(long)]
    price: String,
    /// Each component's share of the agent's own revenue (at least what its licence asks of
    /// derivatives).
    #[arg(long, default_value = "10%")]
    component_share: String,
}

#[derive(Args)]
pub struct UpstreamArgs {
    /// The model's name, as clients will send it.
    #[arg(long)]
    name: String,
    /// The developer: owns the model and is paid the developer share.
    #[arg(long)]
    developer: Address,
    /// The server's OpenAI base URL, e.g. http://127.0.0.1:8000/v1 or https://llm.example.org/v1.
    #[arg(long)]
    url: String,
    /// The model name the upstream server knows.
    #[arg(long)]
    upstream_model: String,
    /// The environment variable `caravan serve` reads the upstream's API key from, if it needs one.
    #[arg(long)]
    api_key_env: Option<String>,
    /// The token calls are paid in.
    #[arg(long)]
    token: Address,
    /// The price of one call, in whole tokens, e.g. 0.0005.
    #[arg(long)]
    price: String,
    /// The price per million prompt tokens, in whole tokens, e.g. 0.15.
    #[arg(long)]
    prompt_price: String,
    /// The price per million completion tokens, in whole tokens, e.g. 0.60.
    #[arg(long)]
    completion_price: String,
    #[command(flatten)]
    shares: Shares,
}

#[derive(Args)]
pub struct EmbedderArgs {
    /// The model's name, as clients will send it.
    #[arg(long, default_value = MINILM)]
    name: String,
    /// Who registers and owns the model; paid the developer share.
    #[arg(long)]
    developer: Address,
    /// The token calls are paid in.
    #[arg(long)]
    token: Address,
    /// The price of one call, in whole tokens, e.g. 0.0001 (above zero: a commercial licence
    /// needs a price per call).
    #[arg(long)]
    price: String,
    /// The price per million tokens read, in whole tokens, e.g. 0.02.
    #[arg(long)]
    token_price: String,
    #[command(flatten)]
    shares: Shares,
}

/// What text fields become when a classifier is trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TextFeatures {
    /// TF-IDF over the training vocabulary (needs nothing installed).
    Tfidf,
    /// all-MiniLM-L6-v2 sentence embeddings: the meaning of the text, not its words, so the
    /// model copes with words it never saw (needs scripts/models/install.sh).
    Embeddings,
}

/// How what stays with a model is split between its owner, validators and serving nodes
/// (the defaults are caravan's, `caravan_core::ModelShares::default()`).
#[derive(Args)]
pub struct Shares {
    /// What derivatives (fine-tunes, agents) must pay this model at least.
    #[arg(long, default_value_t = ModelShares::default().derivative_royalty)]
    derivative_royalty: Ppm,
    /// The validators' share of what stays with the model.
    #[arg(long, default_value_t = ModelShares::default().validator)]
    validator_share: Ppm,
    /// The serving nodes' share of what stays with the model, split by revenue served.
    #[arg(long, default_value_t = ModelShares::default().compute)]
    compute_share: Ppm,
}

impl Shares {
    fn terms(&self) -> ModelShares {
        ModelShares {
            derivative_royalty: self.derivative_royalty,
            validator: self.validator_share,
            compute: self.compute_share,
        }
    }
}

#[derive(Args)]
pub struct ModelTerms {
    /// A published dataset's asset id (repeat for several).
    #[arg(long = "dataset", required = true)]
    datasets: Vec<AssetId>,
    /// The model's name.
    #[arg(long)]
    name: String,
    /// The token calls are paid in (registered with `caravan token add`).
    #[arg(long)]
    token: Address,
    /// The price of one call, in whole tokens, e.g. 0.002.
    #[arg(long)]
    price: String,
    /// Each dataset's share of the model's revenue, e.g. "20%".
    #[arg(long, default_value = "20%")]
    dataset_share: String,
    #[command(flatten)]
    shares: Shares,
    /// Item fields to learn from, comma-separated (default: chosen from the data).
    #[arg(long, value_delimiter = ',')]
    fields: Vec<String>,
    /// Percent of items held out to score the model.
    #[arg(long, default_value_t = 20)]
    test_percent: u8,
    /// What text fields become.
    #[arg(long, value_enum, default_value = "tfidf")]
    text_features: TextFeatures,
    /// With `--text-features embeddings`: the embedding model (from `caravan model embedder`)
    /// whose encoder computes the features. The classifier gets a DERIVED_FROM edge to it, so
    /// every call pays the encoder's owner too. Needed only when several embedding models run
    /// the installed weights; with one, it is found by itself.
    #[arg(long)]
    encoder_model: Option<AssetId>,
    /// The embedding model's share of the classifier's revenue (default: what its licence asks
    /// of derivatives, the least it accepts).
    #[arg(long)]
    encoder_share: Option<String>,
}

#[derive(Args)]
pub struct TrainArgs {
    /// The developer: owns the model and is paid the developer share.
    #[arg(long)]
    developer: Address,
    #[command(flatten)]
    terms: ModelTerms,
}

#[derive(Args)]
pub struct FinetuneArgs {
    /// The model to start from.
    #[arg(long)]
    base: AssetId,
    /// Who fine-tunes: owns the child and is paid the fine-tuner share.
    #[arg(long)]
    fine_tuner: Address,
    /// The base model's share of the child's revenue (at least what the base's licence asks).
    #[arg(long, default_value = "30%")]
    base_share: String,
    #[command(flatten)]
    terms: ModelTerms,
}

#[derive(Args)]
pub struct PredictArgs {
    /// The model's asset id.
    #[arg(long)]
    model: AssetId,
    /// Items, one JSON object per line, or `-`.
    file: PathBuf,
}

/// Where the node keeps model artifacts.
pub fn artifact_store(store: &StoreArgs) -> ArtifactStore {
    ArtifactStore::new(store.data_dir.join("models"))
}

pub fn model(store: &StoreArgs, command: ModelCommand) -> Result<(), String> {
    match command {
        ModelCommand::Train(args) => {
            let desk = open_desk(store)?;
            let examples = training_examples(&desk, &args.terms.datasets)?;
            let trained = Classifier::train(&examples, &train_options(store, &args.terms)?)
                .map_err(|e| e.to_string())?;
            let role = (Role::Developer, args.developer);
            register(store, desk, &args.terms, trained, role, None)
        }
        ModelCommand::Finetune(args) => {
            if args.terms.encoder_model.is_some() || args.terms.encoder_share.is_some() {
                return Err(
                    "a fine-tune pays the encoder through its base model's lineage; leave out --encoder-model and --encoder-share".into(),
                );
            }
            let desk = open_desk(store)?;
            let base = load_classifier(store, &desk, &args.base)?;
            let examples = training_examples(&desk, &args.terms.datasets)?;
            let trained = base
                .finetune(&examples, &train_options(store, &args.terms)?)
                .map_err(|e| e.to_string())?;
            let share = percent("--base-share", &args.base_share)?;
            let role = (Role::FineTuner, args.fine_tuner);
            register(
                store,
                desk,
                &args.terms,
                trained,
                role,
                Some((args.base, share)),
            )
        }
        ModelCommand::Predict(args) => predict(store, args),
        ModelCommand::Upstream(args) => register_upstream(store, args),
        ModelCommand::Embedder(args) => register_embedder(store, args),
        ModelCommand::Agent(args) => register_agent(store, args),
        ModelCommand::Attest(args) => attest(store, args),
    }
}

fn open_desk(store: &StoreArgs) -> Result<Desk, String> {
    let mut journal = open_journal(store)?;
    ensure_genesis(&mut journal)?;
    Desk::open(journal).map_err(|e| e.to_string())
}

fn percent(flag: &str, text: &str) -> Result<Ppm, String> {
    Ppm::from_percent_text(text).map_err(|e| format!("{flag}: {e}"))
}

fn train_options(store: &StoreArgs, terms: &ModelTerms) -> Result<TrainOptions, String> {
    if terms.text_features != TextFeatures::Embeddings
        && (terms.encoder_model.is_some() || terms.encoder_share.is_some())
    {
        return Err(
            "--encoder-model and --encoder-share belong with --text-features embeddings".into(),
        );
    }
    let encoder = match terms.text_features {
        TextFeatures::Tfidf => None,
        TextFeatures::Embeddings => Some(load_encoder(store)?),
    };
    Ok(TrainOptions {
        fields: terms.fields.clone(),
        encoder,
        test_percent: terms.test_percent,
        ..TrainOptions::default()
    })
}

/// The installed sentence encoder, or the error that says how to install it.
pub fn load_encoder(store: &StoreArgs) -> Result<Arc<SentenceEncoder>, String> {
    SentenceEncoder::load_installed(&store.models_dir())
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// Every labelled row of the datasets as an example: the item's data and its published label.
/// Only datasets of single choices or ratings can train a classifier.
pub fn training_examples(desk: &Desk, datasets: &[AssetId]) -> Result<Vec<Example>, String> {
    training::training_examples(desk, datasets).map_err(|e| e.to_string())
}

/// The classifier a model asset's content hash names, from the node's artifacts.
pub fn load_classifier(
    store: &StoreArgs,
    desk: &Desk,
    model: &AssetId,
) -> Result<Classifier, String> {
    let content = desk
        .journal()
        .read(|j| {
            j.economy()
                .lineage()
                .get(model)
                .map(|a| (a.manifest.kind, a.manifest.content))
        })
        .ok_or_else(|| {
            format!("model {model} is not registered; `caravan asset list` shows the assets")
        })?;
    if content.0 != AssetKind::Model {
        return Err(format!(
            "asset {model} is a {}, not a model",
            content.0.name()
        ));
    }
    let bytes = artifact_store(store)
        .get(&content.1)
        .map_err(|e| e.to_string())?;
    let classifier = Classifier::from_artifact(&bytes)?;
    match classifier.encoder_weights() {
        Some(_) => classifier
            .with_encoder(load_encoder(store)?)
            .map_err(|e| e.to_string()),
        None => Ok(classifier),
    }
}

fn register(
    store: &StoreArgs,
    desk: Desk,
    terms: &ModelTerms,
    trained: Trained,
    (role, owner): (Role, Address),
    base: Option<(AssetId, Ppm)>,
) -> Result<(), String> {
    let hash = artifact_store(store)
        .put(&trained.classifier.to_artifact())
        .map_err(|e| e.to_string())?;
    let mut journal = desk.into_journal();
    let economy = journal.economy();
    let model_terms = training::ModelTerms {
        name: terms.name.clone(),
        role,
        owner,
        token: terms.token,
        price_per_call: parse_amount(economy, &terms.token, &terms.price)
            .map_err(|e| format!("--price: {e}"))?,
        shares: terms.shares.terms(),
    };
    // A fine-tune pays the encoder through its base's lineage.
    let encoder = match (trained.classifier.encoder_weights(), base) {
        (Some(weights), None) => Some(EncoderPayment {
            weights,
            model: terms.encoder_model,
            share: terms
                .encoder_share
                .as_deref()
                .map(|text| percent("--encoder-share", text))
                .transpose()?,
        }),
        _ => None,
    };
    let from = TrainedFrom {
        datasets: terms.datasets.clone(),
        dataset_share: percent("--dataset-share", &terms.dataset_share)?,
        base,
        encoder,
    };
    let encoders = if from.encoder.is_some() {
        encoder_models(&journal).map_err(|e| e.to_string())?
    } else {
        Vec::new()
    };
    let asked_for_encoder = from.encoder.is_some();
    let registration =
        training::trained_model(&model_terms, hash, from, economy.lineage(), &encoders).map_err(
            |e| match e {
                TrainingError::Shares(too_large) => {
                    format!("--validator-share and --compute-share: {too_large}")
                }
                TrainingError::SeveralEncoders { .. } => format!("{e} with --encoder-model"),
                TrainingError::NotTheEncoder { .. } => format!("--encoder-model: {e}"),
                other => other.to_string(),
            },
        )?;
    let id = registration.manifest.id();
    let features = trained.classifier.features.describe();
    let classes = trained.classifier.classes.len();
    super::submit_one(&mut journal, Event::AssetRegistered(registration.manifest))?;

    println!("model asset {id}");
    match &registration.encoder_edge {
        Some(edge) => println!(
            "pays embedding model {} {} of its revenue: every call runs its encoder",
            edge.parent, edge.share
        ),
        None if asked_for_encoder => println!(
            "no embedding model on this node runs the encoder, so no one is paid for it (register one with `caravan model embedder` before training to pay its owner)"
        ),
        None => {}
    }
    println!("artifact {hash} ({features}, {classes} labels)");
    match &trained.evaluation {
        Some(evaluation) => {
            println!(
                "trained on {} items; held-out accuracy {:.1}% ({} of {})",
                trained.train_examples,
                evaluation.accuracy * 100.0,
                evaluation.correct,
                evaluation.examples
            );
            let mut t = table(&["label", "held out", "right", "accuracy"], &[1, 2, 3]);
            for (label, total, right) in &evaluation.per_class {
                t.add_row(vec![
                    label.clone(),
                    total.to_string(),
                    right.to_string(),
                    format!("{:.1}%", *right as f64 * 100.0 / *total as f64),
                ]);
            }
            println!("{t}");
        }
        None => println!(
            "trained on {} items; nothing held out (--test-percent 0)",
            trained.train_examples
        ),
    }
    Ok(())
}

/// The manifest of a model without parents, owned and developed by `developer`, sold at
/// `price_per_call` in `token`.
fn developer_model(
    name: &str,
    developer: Address,
    content: caravan_core::Hash32,
    (token, price_per_call): (Address, caravan_core::Amount),
    shares: &Shares,
) -> Result<Manifest, String> {
    training::ModelTerms {
        name: name.to_owned(),
        role: Role::Developer,
        owner: developer,
        token,
        price_per_call,
        shares: shares.terms(),
    }
    .standalone(content)
    .map_err(|e| format!("--validator-share and --compute-share: {e}"))
}

fn register_upstream(store: &StoreArgs, args: UpstreamArgs) -> Result<(), String> {
    let mut journal = open_journal(store)?;
    ensure_genesis(&mut journal)?;
    let economy = journal.economy();
    let price = |flag: &str, text: &str| {
        parse_amount(economy, &args.token, text).map_err(|e| format!("{flag}: {e}"))
    };
    let upstream = Upstream {
        base_url: args.url.clone(),
        model: args.upstream_model.clone(),
        prompt_per_million: price("--prompt-price", &args.prompt_price)?,
        completion_per_million: price("--completion-price", &args.completion_price)?,
        api_key_env: args.api_key_env.clone(),
    };
    let manifest = developer_model(
        &args.name,
        args.developer,
        upstream.content_hash(),
        (args.token, price("--price", &args.price)?),
        &args.shares,
    )?;
    let id = manifest.id();
    let events = upstream_events(manifest, upstream).map_err(|e| e.to_string())?;
    super::submit_all(&mut journal, events)?;
    println!("model asset {id}");
    println!(
        "forwards to {} (model {}); `caravan serve` serves it at /v1/chat/completions",
        args.url, args.upstream_model
    );
    Ok(())
}

fn register_embedder(store: &StoreArgs, args: EmbedderArgs) -> Result<(), String> {
    let encoder = load_encoder(store)?;
    let mut journal = open_journal(store)?;
    ensure_genesis(&mut journal)?;
    let economy = journal.economy();
    let price = |flag: &str, text: &str| {
        parse_amount(economy, &args.token, text).map_err(|e| format!("{flag}: {e}"))
    };
    let serving = EncoderServing {
        encoder: MINILM.to_owned(),
        weights: encoder.weights_hash(),
        dimensions: encoder.dimensions() as u32,
        input_per_million: price("--token-price", &args.token_price)?,
    };
    let manifest = developer_model(
        &args.name,
        args.developer,
        serving.content_hash(),
        (args.token, price("--price", &args.price)?),
        &args.shares,
    )?;
    let id = manifest.id();
    let events = encoder_events(manifest, serving).map_err(|e| e.to_string())?;
    super::submit_all(&mut journal, events)?;
    println!("model asset {id}");
    println!(
        "{MINILM} (weights {}, {} numbers per embedding); `caravan serve` serves it at /v1/embeddings as {}",
        encoder.weights_hash(),
        encoder.dimensions(),
        args.name
    );
    Ok(())
}

fn register_agent(store: &StoreArgs, args: AgentArgs) -> Result<(), String> {
    let mut journal = open_journal(store)?;
    ensure_genesis(&mut journal)?;
    let program = AgentProgram {
        classify: args.classify.map(|model| ClassifyStep {
            model,
            field: args.field.clone(),
        }),
        chat: ChatStep {
            model: args.chat,
            system: args.system.clone(),
        },
    };
    let share = percent("--component-share", &args.component_share)?;
    let price_per_call = parse_amount(journal.economy(), &args.token, &args.price)
        .map_err(|e| format!("--price: {e}"))?;
    let manifest = program.manifest(
        args.name.clone(),
        args.owner,
        Licence::Commercial {
            token: args.token,
            price_per_call,
            derivative_royalty: Ppm::ZERO,
        },
        share,
    );
    let id = manifest.id();
    let events =
        agent_events(manifest, program, journal.economy().lineage()).map_err(|e| e.to_string())?;
    super::submit_all(&mut journal, events)?;
    println!("agent asset {id}");
    println!(
        "calls {}; `caravan serve` serves it at /v1/chat/completions as {}",
        if args.classify.is_some() {
            "a classifier, then a chat model"
        } else {
            "a chat model"
        },
        args.name
    );
    Ok(())
}

fn attest(store: &StoreArgs, args: AttestArgs) -> Result<(), String> {
    let secret = read_secret(&args.key_file)?;
    let bytes = std::fs::read(&args.data)
        .map_err(|e| format!("cannot read {}: {e}", args.data.display()))?;
    let text = String::from_utf8(bytes.clone())
        .map_err(|_| format!("{} is not UTF-8 text", args.data.display()))?;
    let mut examples = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let row: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: not JSON: {e}", n + 1))?;
        let label = match &row["label"] {
            serde_json::Value::String(label) => label.clone(),
            serde_json::Value::Number(label) => label.to_string(),
            _ => return Err(format!("line {}: needs a \"label\" (text)", n + 1)),
        };
        examples.push(Example {
            key: caravan_core::keccak256(line.as_bytes()),
            data: row["data"].clone(),
            label,
        });
    }
    if examples.is_empty() {
        return Err(format!("{} holds no examples", args.data.display()));
    }
    let desk = open_desk(store)?;
    let classifier = load_classifier(store, &desk, &args.model)?;
    let evaluation = classifier.evaluate(&examples).map_err(|e| e.to_string())?;
    let value_micros = (evaluation.accuracy * 1e6).round() as u64;
    let attestation = Attestation::sign(
        &secret,
        args.model,
        caravan_core::keccak256(&bytes),
        "accuracy",
        value_micros,
        caravan_store::now_ms(),
    )?;
    let mut journal = desk.into_journal();
    super::submit_one(&mut journal, Event::ValidationAttested(attestation.clone()))?;
    println!(
        "validator {} attests accuracy {:.2}% ({} of {} examples) for model {}",
        attestation.validator,
        evaluation.accuracy * 100.0,
        evaluation.correct,
        evaluation.examples,
        args.model
    );
    println!(
        "data {} (keccak-256 of {})",
        attestation.dataset,
        args.data.display()
    );
    println!("signature {}", attestation.signature.to_hex());
    Ok(())
}

/// A secp256k1 secret key from a file of 64 hex digits (an optional 0x is fine).
fn predict(store: &StoreArgs, args: PredictArgs) -> Result<(), String> {
    let desk = open_desk(store)?;
    let classifier = load_classifier(store, &desk, &args.model)?;
    let text = read_input(&args.file)?;
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let data: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: not JSON: {e}", n + 1))?;
        let prediction = classifier
            .predict(&data)
            .map_err(|e| format!("line {}: {e}", n + 1))?;
        println!(
            "{}",
            serde_json::json!({ "label": prediction.label, "confidence": prediction.confidence })
        );
    }
    Ok(())
}

//! `caravan model`: train a classifier on published datasets, fine-tune one, and register each
//! as a model asset whose lineage pays the datasets (and, through them, the people who labelled
//! them) from every paid call.

use std::path::PathBuf;

use caravan_core::{
    Address, AssetId, AssetKind, Attestation, EdgeKind, Event, Licence, Manifest, ModelShares,
    ParentEdge, Ppm, Role, RoleShare,
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
use caravan_tasks::schema::Answer;
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

    /// The model's roles: `role` (the owner's) keeps what validators and nodes do not take.
    fn roles(&self, role: Role, owner: Address) -> Result<Vec<RoleShare>, String> {
        self.terms()
            .roles(role, owner)
            .map_err(|e| format!("--validator-share and --compute-share: {e}"))
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
    let mut examples = Vec::new();
    for asset in datasets {
        let (_, dataset, board) = desk.dataset(asset).map_err(|e| e.to_string())?;
        for row in &dataset.rows {
            let label = match &row.answer {
                Answer::Choice(choice) => choice.clone(),
                Answer::Rating(rating) => rating.to_string(),
                _ => {
                    return Err(format!(
                        "dataset {asset} holds {} answers; a classifier learns from single-choice or rating datasets",
                        dataset.schema.answer_kind()
                    ));
                }
            };
            let item = board.item(&row.item).ok_or_else(|| {
                format!("dataset {asset} names item {} its project lacks", row.item)
            })?;
            examples.push(Example {
                key: row.item.0,
                data: item.item.data.clone(),
                label,
            });
        }
    }
    Ok(examples)
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
    let dataset_share = percent("--dataset-share", &terms.dataset_share)?;
    let roles = terms.shares.roles(role, owner)?;
    let mut journal = desk.into_journal();
    let economy = journal.economy();
    let licence = terms.shares.terms().licence(
        terms.token,
        parse_amount(economy, &terms.token, &terms.price).map_err(|e| format!("--price: {e}"))?,
    );
    let mut parents: Vec<ParentEdge> = terms
        .datasets
        .iter()
        .map(|dataset| ParentEdge {
            parent: *dataset,
            kind: EdgeKind::TrainedOn,
            share: dataset_share,
        })
        .collect();
    // What the classifier owes the encoder it runs on every call, said once it is registered.
    let mut encoder_paid = None;
    if let (Some(weights), None) = (trained.classifier.encoder_weights(), base) {
        let registered = encoder_models(&journal).map_err(|e| e.to_string())?;
        let share = terms
            .encoder_share
            .as_deref()
            .map(|text| percent("--encoder-share", text))
            .transpose()?;
        let edge = encoder_edge(
            &registered,
            weights,
            journal.economy().lineage(),
            terms.encoder_model,
            share,
        )?;
        encoder_paid = Some(match &edge {
            Some(edge) => format!(
                "pays embedding model {} {} of its revenue: every call runs its encoder",
                edge.parent, edge.share
            ),
            None => "no embedding model on this node runs the encoder, so no one is paid for it (register one with `caravan model embedder` before training to pay its owner)".to_owned(),
        });
        parents.extend(edge);
    }
    if let Some((parent, share)) = base {
        parents.insert(
            0,
            ParentEdge {
                parent,
                kind: EdgeKind::FinetunedFrom,
                share,
            },
        );
    }
    let mut manifest = Manifest {
        kind: AssetKind::Model,
        name: terms.name.clone(),
        owner,
        content: hash,
        licence,
        parents,
        roles,
    };
    manifest.normalise();
    let id = manifest.id();
    let features = trained.classifier.features.describe();
    let classes = trained.classifier.classes.len();
    super::submit_one(&mut journal, Event::AssetRegistered(manifest))?;

    println!("model asset {id}");
    if let Some(line) = encoder_paid {
        println!("{line}");
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

/// The DERIVED_FROM edge a classifier computing its features with the encoder `weights` owes
/// the embedding model registered for them: `chosen` if given (it must be one), else the only
/// one; none when no embedding model runs these weights (nobody registered the encoder to be
/// paid). `share` defaults to the least the embedding model's licence accepts.
fn encoder_edge(
    registered: &[(AssetId, EncoderServing)],
    weights: caravan_core::Hash32,
    lineage: &caravan_core::lineage::Lineage,
    chosen: Option<AssetId>,
    share: Option<Ppm>,
) -> Result<Option<ParentEdge>, String> {
    let matching: Vec<AssetId> = registered
        .iter()
        .filter(|(_, serving)| serving.weights == weights)
        .map(|(asset, _)| *asset)
        .collect();
    let named = |asset: &AssetId| {
        let name = lineage.get(asset).map_or("?", |a| a.manifest.name.as_str());
        format!("{asset} ({name})")
    };
    let listing = || matching.iter().map(named).collect::<Vec<_>>().join(", ");
    let model = match (chosen, matching.as_slice()) {
        (Some(asset), _) if matching.contains(&asset) => asset,
        (Some(asset), []) => {
            return Err(format!(
                "--encoder-model {asset}: no embedding model on this node runs the installed encoder (weights {weights}); register it with `caravan model embedder`"
            ));
        }
        (Some(asset), _) => {
            return Err(format!(
                "--encoder-model {asset} is not an embedding model running the installed encoder (weights {weights}); those that do: {}",
                listing()
            ));
        }
        (None, []) => return Ok(None),
        (None, [only]) => *only,
        (None, _) => {
            return Err(format!(
                "several embedding models run the installed encoder: {}; choose the one to pay with --encoder-model",
                listing()
            ));
        }
    };
    let least = match lineage.get(&model).map(|a| &a.manifest.licence) {
        Some(Licence::Commercial {
            derivative_royalty, ..
        }) => *derivative_royalty,
        _ => Ppm::ZERO,
    };
    Ok(Some(ParentEdge {
        parent: model,
        kind: EdgeKind::DerivedFrom,
        share: share.unwrap_or(least),
    }))
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
    let mut manifest = Manifest {
        kind: AssetKind::Model,
        name: name.to_owned(),
        owner: developer,
        content,
        licence: shares.terms().licence(token, price_per_call),
        parents: Vec::new(),
        roles: shares.roles(Role::Developer, developer)?,
    };
    manifest.normalise();
    Ok(manifest)
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
    let mut manifest = Manifest {
        kind: AssetKind::Agent,
        name: args.name.clone(),
        owner: args.owner,
        content: program.content_hash(),
        licence: Licence::Commercial {
            token: args.token,
            price_per_call: parse_amount(journal.economy(), &args.token, &args.price)
                .map_err(|e| format!("--price: {e}"))?,
            derivative_royalty: Ppm::ZERO,
        },
        parents: program
            .components()
            .into_iter()
            .map(|parent| ParentEdge {
                parent,
                kind: EdgeKind::ComposedOf,
                share,
            })
            .collect(),
        roles: Vec::new(),
    };
    manifest.normalise();
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

#[cfg(test)]
mod tests {
    use super::*;
    use caravan_core::lineage::Lineage;
    use caravan_core::{Hash32, keccak256};

    /// An embedding model asset named `name` whose licence asks derivatives for 5%, registered
    /// in `lineage`, with the encoder configuration for `weights`.
    fn embedder(
        lineage: &mut Lineage,
        name: &str,
        weights: Hash32,
        price: u128,
    ) -> (AssetId, EncoderServing) {
        let serving = EncoderServing {
            encoder: MINILM.to_owned(),
            weights,
            dimensions: 384,
            input_per_million: price,
        };
        let shares = Shares {
            derivative_royalty: "5%".parse().unwrap(),
            validator_share: "10%".parse().unwrap(),
            compute_share: "20%".parse().unwrap(),
        };
        let manifest = developer_model(
            name,
            Address::from_label(name),
            serving.content_hash(),
            (Address::from_label("usdc"), 1),
            &shares,
        )
        .unwrap();
        let (id, _) = lineage.register(manifest).unwrap();
        (id, serving)
    }

    #[test]
    fn a_classifier_on_embeddings_pays_the_one_embedding_model_running_its_encoder() {
        let weights = keccak256(b"all-MiniLM-L6-v2 weights");
        let other = keccak256(b"other weights");
        let mut lineage = Lineage::default();
        let elsewhere = embedder(&mut lineage, "other-encoder", other, 1);
        let edge = |registered: &[(AssetId, EncoderServing)], chosen, share| {
            encoder_edge(registered, weights, &lineage, chosen, share)
        };

        // Nobody registered these weights: nobody to pay.
        assert_eq!(edge(std::slice::from_ref(&elsewhere), None, None), Ok(None));

        // One did: it is found and paid at least what its licence asks of derivatives.
        let mut lineage_with = lineage.clone();
        let minilm = embedder(&mut lineage_with, "minilm", weights, 1);
        let registered = vec![elsewhere.clone(), minilm.clone()];
        let found = encoder_edge(&registered, weights, &lineage_with, None, None)
            .unwrap()
            .unwrap();
        assert_eq!(found.parent, minilm.0);
        assert_eq!(found.kind, EdgeKind::DerivedFrom);
        assert_eq!(found.share, Ppm::from_percent_text("5%").unwrap());
        let more = Ppm::from_percent_text("12%").unwrap();
        let generous = encoder_edge(&registered, weights, &lineage_with, None, Some(more));
        assert_eq!(generous.unwrap().unwrap().share, more);

        // Two run the same weights (say, at different prices): the developer must choose.
        let cheaper = embedder(&mut lineage_with, "minilm-cheap", weights, 0);
        let both = vec![minilm.clone(), cheaper.clone()];
        let ambiguous = encoder_edge(&both, weights, &lineage_with, None, None).unwrap_err();
        assert!(
            ambiguous.contains("--encoder-model")
                && ambiguous.contains("minilm-cheap")
                && ambiguous.contains(&minilm.0.to_string()),
            "{ambiguous}"
        );
        let chosen = encoder_edge(&both, weights, &lineage_with, Some(cheaper.0), None);
        assert_eq!(chosen.unwrap().unwrap().parent, cheaper.0);

        // A chosen asset must run these weights.
        let wrong = encoder_edge(&both, weights, &lineage_with, Some(elsewhere.0), None);
        assert!(
            wrong
                .unwrap_err()
                .contains("is not an embedding model running the installed encoder")
        );
        let none = edge(&[], Some(minilm.0), None).unwrap_err();
        assert!(none.contains("caravan model embedder"), "{none}");
    }
}
